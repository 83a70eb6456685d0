//! Cross-process locks, semaphores, condition variables, events and
//! barriers in shared memory, that survive a dead holder.
//!
//! The primitives of Python's `multiprocessing` (`Lock`, `RLock`,
//! `Semaphore`, `BoundedSemaphore`, `Condition`, `Event`, `Barrier`,
//! `Value`, `Array`), for Rust processes that map the same memory. The
//! contract: the uncontended paths are a few atomic instructions on shared
//! words and make no syscall; waiting spins, yields, then sleeps on a futex by
//! the handle's [`WaitStrategy`]; a waker makes a `FUTEX_WAKE` only when a
//! waiter announced itself; a process killed at any instruction never makes
//! the others hang and never hands them torn data silently: a dead mutex
//! holder is reported as [`LockError::OwnerDied`] (carrying the guard, to
//! repair and [`MutexGuard::mark_consistent`]), a dead barrier party breaks
//! the barrier ([`BarrierError::Broken`]), and a dead waiter leaves nothing
//! behind.
//!
//! **The shape.** Each algorithm is a raw type in [`raw`], `#[repr(C)]`
//! atomics over caller memory that know nothing of the operating system:
//! each implements [`ShmObject`](multiproc_core::object::ShmObject) (its segment
//! kind, a configuration, its size, how to initialize it and how to check
//! what another process wrote), and asks a
//! [`Judge`](multiproc_core::liveness::Judge) passed to each call who the caller
//! is and whether a recorded holder died. Its atomics and futex calls come
//! from one module that switches to loom under `cfg(loom)`, so the loom
//! models (`tests/loom.rs`) check this very code, with a judge whose model
//! threads can die. Each public type wraps a
//! [`Placed`](multiproc_core::object::Placed) raw object with this process's wait
//! strategy and passes the operating system's judge
//! ([`OsJudge`](multiproc_core::liveness::OsJudge)); all get the same
//! constructors: `create(name, cfg)` / `open(name)` for unrelated
//! processes, `anonymous(cfg)` for children (or `from_fd`), and
//! `init_at(segment, offset, cfg)` / `at(segment, offset)` inside any
//! segment; constructors fail with
//! [`ObjectError`]. Opening checks the
//! segment's type tag, layout version and ABI: a semaphore opened as a
//! mutex is a typed error. With feature `serde` (on by default) every
//! handle is a value: passed in the arguments of
//! [`Process::start`](multiproc_core::Process::start), it arrives usable in the
//! child (a named one by name, an anonymous one by its descriptor).
//!
//! | Python `multiprocessing` | here | configuration | dead holder / waiter |
//! |---|---|---|---|
//! | `Lock` | [`Mutex<T>`] (with its data) | the value | next locker gets [`LockError::OwnerDied`] |
//! | `RLock` | [`ReentrantMutex<T>`] | the value | as `Mutex` |
//! | `Semaphore` | [`Semaphore`] | permits | permits lost (as `sem_t`); waiter: nothing |
//! | `BoundedSemaphore` | [`BoundedSemaphore`] | `(value, bound)` | as `Semaphore` |
//! | (none) | [`RecoverableSemaphore`] | permits | permits come back |
//! | `Condition` | [`Condvar`] with a [`MutexGuard`] | none | waiter: nothing left behind |
//! | `Event` | [`Event`] | none | waiter: nothing left behind |
//! | `Barrier` | [`Barrier`] | parties | [`BarrierError::Broken`] for the others |
//! | (none) | [`RwLock<T>`] | the value | dead writer: `OwnerDied`; dead reader: writers time out |
//! | `Value`, `Array` | [`Value<T>`], [`Array<T, N>`] | the value | as `Mutex` |
//! | `Manager().list()` | [`SharedList<T>`] | [`ContainerConfig`] | update rolled back by the next user |
//! | `Manager().dict()` | [`SharedDict<K, V>`] | [`ContainerConfig`] | update rolled back by the next user |
//!
//! The shared containers are Python's manager proxies without the manager:
//! no server process, no socket round trip per call. Every process holding
//! a handle locks the container and copies items in or out of shared
//! memory directly; every update (or [transaction](SharedDict::transaction)
//! of several) goes through an undo journal, so a process killed in the
//! middle of one leaves the container exactly as before it, for the next
//! user to find ([`raw::journal`]).
//!
//! Blocking calls come in three forms: plain (waits as long as it takes),
//! `try_*` (never waits) and `*_timeout(Duration)` (a zero timeout tries
//! once), each with an error type of its own ([`LockError`],
//! [`TryLockError`], [`LockTimeoutError`]). Timeouts run on the monotonic
//! clock.
//!
//! # Example
//!
//! A parent and a child add to a counter under a robust mutex; the mutex
//! and an event travel to the child in its arguments:
//!
//! ```
//! use multiproc_core::Process;
//! use multiproc_sync::{Event, Mutex};
//!
//! fn child((counter, done): (Mutex<u64>, Event)) -> u64 {
//!     for _ in 0..1000 {
//!         *counter.lock().expect("lock") += 1;
//!     }
//!     done.set();
//!     0
//! }
//!
//! multiproc_core::process::init(); // first thing in main
//! let counter = Mutex::anonymous(0u64)?;
//! let done = Event::anonymous()?;
//! let worker = Process::start(child, (counter.clone(), done.clone()))?;
//! for _ in 0..1000 {
//!     *counter.lock().expect("lock") += 1;
//! }
//! worker.join()?;
//! assert!(done.is_set());
//! assert_eq!(*counter.lock().expect("lock"), 2000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A holder that dies is reported to the next locker, who repairs; where
//! repairing is not the caller's business, the error goes on with `?` once
//! its guard is dropped ([`LockError::without_guard`], which leaves the
//! mutex not recoverable) or taken back ([`LockError::into_parts`]):
//!
//! ```
//! use multiproc_sync::{LockError, Mutex};
//!
//! fn total(m: &Mutex<[u64; 2]>) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
//!     let g = m.lock().map_err(LockError::without_guard)?;
//!     Ok(g[0] + g[1])
//! }
//!
//! let m = Mutex::anonymous([0u64; 2])?;
//! let seg = m.segment().clone();
//! // A thread that exits holding the lock stands in for a killed process.
//! std::thread::spawn(move || {
//!     let m = Mutex::<[u64; 2]>::at(seg, 0).unwrap();
//!     let mut g = m.lock().unwrap();
//!     g[0] = 1; // half of an update...
//!     g.leak(); // ...and the holder is gone
//! })
//! .join()
//! .unwrap();
//! let mut g = match m.lock() {
//!     Err(LockError::OwnerDied(d)) => d.into_guard(),
//!     other => panic!("{other:?}"),
//! };
//! g[1] = g[0]; // repair
//! g.mark_consistent();
//! drop(g);
//! assert_eq!(total(&m)?, 2);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
//!
//! # Features
//!
//! | feature | default | what it gives | what it pulls in |
//! |---|---|---|---|
//! | `serde` | on | every handle travels in a child's arguments; the shared containers hold any `serde` key and value | `serde`, and `multiproc-core`'s `serde` (`postcard`) |

#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiproc-sync runs on Linux only (kernel 5.3 or newer): it needs memfd_create and file \
     seals (3.17), futex, pidfd_send_signal (5.1) and pidfd_open (5.3)"
);

/// The public layer places objects in segments: the loom build (which
/// checks the raw layer) leaves it out.
macro_rules! outside_loom {
    ($($item:item)*) => {
        $( #[cfg(not(loom))] $item )*
    };
}

mod error;
mod primitive;
pub mod raw;

pub use error::{
    BarrierError, BarrierTimeoutError, LockError, LockTimeoutError, NotHeldError, OwnerDied,
    ReleaseError, TryLockError, UnlockError,
};
pub use multiproc_core::object::ObjectError;
pub use multiproc_core::wait::WaitStrategy;
pub use multiproc_core::IdentityError;
pub use raw::BarrierWait;

outside_loom! {
    mod barrier;
    mod cell;
    mod condvar;
    mod container;
    mod dict;
    mod event;
    mod handle;
    mod list;
    mod mutex;
    mod recoverable;
    mod reentrant;
    mod rwlock;
    mod semaphore;
    mod value;

    pub use barrier::Barrier;
    pub use cell::{DataCell, DataLock, MutexLock, ValueLock};
    pub use condvar::{Condvar, WaitResult, WaitTimeoutResult};
    pub use container::{
        ContainerConfig, ContainerError, DEFAULT_ARENA_BYTES, DEFAULT_CAPACITY,
        DEFAULT_JOURNAL_ENTRIES, MAX_ARENA_BYTES, MAX_CAPACITY, MIN_JOURNAL_ENTRIES,
    };
    pub use dict::{DictCell, DictTx, SharedDict};
    pub use event::Event;
    pub use list::{ListCell, ListTx, SharedList};
    pub use mutex::{Mutex, MutexGuard};
    pub use recoverable::RecoverableSemaphore;
    pub use reentrant::{ReentrantMutex, ReentrantMutexGuard};
    pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
    pub use semaphore::{BoundedSemaphore, Semaphore, SemaphorePermit};
    pub use value::{Array, IndexError, IndexResult, Value, ValueResult};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
