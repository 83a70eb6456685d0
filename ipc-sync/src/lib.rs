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
//! repair and [`MutexGuard::mark_consistent`]; the lock errors carry a
//! borrowed guard, so handle them in place rather than with `?` into a
//! `'static` error), a dead barrier party breaks
//! the barrier ([`BarrierError::Broken`]), and a dead waiter leaves nothing
//! behind.
//!
//! Every primitive lives either in a segment of its own, named
//! (`create(name, ..)` / `open(name)`, for unrelated processes) or anonymous
//! (`anonymous(..)`, for children started by fork or given the descriptor,
//! `from_fd`), or at an offset of any segment (`init_at` / `at`). Opening
//! checks the segment's type tag, layout version and ABI
//! ([`ipc_core::header::ABI`]): a semaphore opened as a mutex is a typed
//! error. The algorithms themselves work on caller memory in [`raw`].
//!
//! | Python `multiprocessing` | here | dead holder / waiter |
//! |---|---|---|
//! | `Lock` | [`Mutex<T>`] (with its data) | next locker gets [`LockError::OwnerDied`] |
//! | `RLock` | [`ReentrantMutex<T>`] | as `Mutex` |
//! | `Semaphore` | [`Semaphore`] | permits lost (as `sem_t`); waiter: nothing |
//! | `BoundedSemaphore` | [`BoundedSemaphore`] | as `Semaphore` |
//! | (none) | [`RecoverableSemaphore`] | permits come back |
//! | `Condition` | [`Condvar`] with a [`MutexGuard`] | waiter: nothing left behind |
//! | `Event` | [`Event`] | waiter: nothing left behind |
//! | `Barrier` | [`Barrier`] | [`BarrierError::Broken`] for the others |
//! | (none) | [`RwLock<T>`] | dead writer: `OwnerDied`; dead reader: writers time out |
//! | `Value`, `Array` | [`Value<T>`], [`Array<T, N>`] | as `Mutex` |
//!
//! Blocking calls come in three forms: plain (waits as long as it takes),
//! `try_*` (never waits) and `*_timeout(Duration)` (a zero timeout tries
//! once). Timeouts run on the monotonic clock.
//!
//! # Example
//!
//! A parent and a forked child add to a counter under a robust mutex:
//!
//! ```
//! use ipc_core::Process;
//! use ipc_sync::Mutex;
//!
//! let counter = Mutex::anonymous(0u64)?;
//! let child = Process::builder().fork(|| {
//!     for _ in 0..1000 {
//!         *counter.lock().expect("lock") += 1;
//!     }
//! })?;
//! for _ in 0..1000 {
//!     *counter.lock().expect("lock") += 1;
//! }
//! assert!(child.join()?.success());
//! assert_eq!(*counter.lock().expect("lock"), 2000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A holder that dies is reported to the next locker:
//!
//! ```
//! use ipc_sync::{LockError, Mutex};
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
//! assert_eq!(*m.lock().expect("repaired"), [1, 1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ipc-sync runs on Linux only (kernel 5.3 or newer): it needs memfd_create and file \
     seals (3.17), futex, pidfd_send_signal (5.1) and pidfd_open (5.3)"
);

#[cfg(not(loom))]
mod barrier;
#[cfg(not(loom))]
mod condvar;
mod error;
#[cfg(not(loom))]
mod event;
#[cfg(not(loom))]
mod mutex;
mod owner;
mod primitive;
pub mod raw;
#[cfg(not(loom))]
mod reentrant;
#[cfg(not(loom))]
mod rwlock;
#[cfg(not(loom))]
mod semaphore;
#[cfg(not(loom))]
mod shm;
#[cfg(not(loom))]
mod value;

#[cfg(not(loom))]
pub use barrier::Barrier;
#[cfg(not(loom))]
pub use condvar::{Condvar, WaitResult, WaitTimeoutResult};
pub use error::{BarrierError, Error, LockError, OwnerDied, ReleaseError, UnlockError};
#[cfg(not(loom))]
pub use event::Event;
pub use ipc_core::wait::WaitStrategy;
pub use ipc_core::IdentityError;
#[cfg(not(loom))]
pub use mutex::{Mutex, MutexCell, MutexGuard};
#[cfg(not(loom))]
pub use raw::BarrierWait;
#[cfg(not(loom))]
pub use reentrant::{ReentrantCell, ReentrantMutex, ReentrantMutexGuard};
#[cfg(not(loom))]
pub use rwlock::{RwLock, RwLockCell, RwLockReadGuard, RwLockWriteGuard};
#[cfg(not(loom))]
pub use semaphore::{
    BoundedCell, BoundedSemaphore, RecoverableSemaphore, Semaphore, SemaphorePermit,
};
#[cfg(not(loom))]
pub use value::{Array, IndexError, IndexResult, Value, ValueResult};
