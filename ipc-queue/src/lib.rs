//! Lock-free rings between processes: SPSC, MPMC and broadcast, with byte,
//! plain-old-data and `rkyv` messages written and read in place, any value
//! of [`multiproc_core::message::Message`] (numbers, `String`, `Vec<String>`,
//! every `serde` type) encoded straight into a slot, and the Python-shaped
//! front doors `Queue`, `JoinableQueue`, `SimpleQueue` and `pipe()`.
//!
//! Every ring lives in an `multiproc-core` segment: named, so unrelated processes
//! connect by name, or anonymous (a `memfd`) for a parent and the children it
//! starts. Opening checks the segment's type tag and layout; every index and
//! length read from shared memory is checked before use, so a corrupted or
//! hostile peer makes a call fail with [`error::Corrupt`], never read or
//! write outside the ring. Nothing makes a system call on the fast path: a
//! side issues `FUTEX_WAKE` only when the other has announced it is parked.
//! Each endpoint chooses its [`WaitStrategy`](multiproc_core::wait::WaitStrategy):
//! busy-spin, adaptive (the default) or blocking.
//!
//! | ring | module | what it is for |
//! |---|---|---|
//! | single producer, single consumer | [`spsc`] ([`spsc::pod`], [`spsc::rkyv`], algorithm in [`raw::spsc`]) | the lowest latency: variable-length messages reserved and committed in place |
//! | many producers, many consumers | [`mpmc`] (algorithm in [`raw::mpmc`]) | work queues; a producer or consumer SIGKILLed mid-operation does not wedge the others ([`mpmc::Mpmc::lost`] counts what it took with it) |
//! | one publisher, many subscribers | [`broadcast`] (algorithm in [`raw::broadcast`]) | fan-out; a subscriber that falls behind learns how many messages it lost, and never reads a torn one |
//! | Python's `Queue`, `JoinableQueue`, `SimpleQueue` | [`queue`] | `put`/`get` of any message type, with `_nowait` and `_timeout` forms, `task_done`/`join` |
//! | Python's `Pipe` | [`mod@pipe`], [`pipe()`] | two duplex [`Connection`]s over two SPSC rings |
//!
//! Errors are per operation and hand the value back ([`error`]): a full ring
//! is `TrySendError::Full(value)`, a closed or dead peer `Closed`, a message
//! that can never fit `TooLarge` at send time (its size and the limit, never
//! truncated), one that does not decode as the type asked for `Decode`.
//! They are `'static`, `Send` and `Sync` for a `'static` value, so `?` takes
//! them into `Box<dyn Error + Send + Sync>` or `anyhow::Error`.
//!
//! Queues and pipe ends are values themselves (feature `serde`, on by
//! default): give them to a child in its arguments
//! (`Process::start(f, (queue, end))`) and they arrive usable, a named one
//! by name, an anonymous one by its descriptor. An SPSC end (so a pipe end)
//! given to a child, or held across a fork, has several holders; it closes
//! when the last of them drops it or dies, so a parent that drops its copy
//! of the child's end closes nothing.
//!
//! # How the crate is laid out
//!
//! Each ring is two layers. Its algorithm lives in [`raw`], one file (or
//! folder) per ring, written against a [`raw::Memory`] (the atomic word at
//! an offset, payload bytes copied in and out) and an injected
//! [`Judge`](multiproc_core::liveness::Judge) of who is alive, with its atomics and
//! orderings taken from one switchable module: the same code runs in a
//! segment, on the heap, and under the loom model checker (`tests/loom.rs`).
//! The ends that only one process may hold (an SPSC producer or consumer,
//! the broadcast publisher) are made only by claiming their owner word.
//! Above it, each public ring type ([`spsc::SpscRing`], [`mpmc::Mpmc`],
//! [`broadcast::BroadcastRing`], [`Queue`], [`JoinableQueue`],
//! [`pipe::Pipe`]) is a control block placed in shared memory by
//! [`multiproc_core::object::Placed`], and so has the same six constructors:
//! `create(name, cfg)`, `open(name)`, `anonymous(cfg)`, `from_fd(fd)`,
//! `init_at(segment, offset, cfg)` and `at(segment, offset)`; builders add
//! the options. Then one file per concept: the ring and its placement, the
//! wait loop, each end, each message form.
//!
//! Sizes are checked before anything is allocated: a configuration whose
//! size overflows or exceeds a limit is
//! [`ObjectError::InvalidConfig`](multiproc_core::object::ObjectError::InvalidConfig)
//! naming the limit, and a ring larger than the machine or the process's
//! memory cgroup can still give is
//! [`SegmentError::InsufficientMemory`](multiproc_core::SegmentError::InsufficientMemory),
//! not a kill by the OOM killer. What stays the caller's risk is described
//! in [`multiproc_core::memory`].
//!
//! # Example
//!
//! A forked child produces three messages in place; the parent reads them
//! in place:
//!
//! ```
//! use multiproc_core::Process;
//! use multiproc_queue::spsc::{Config, SpscRing};
//!
//! let ring = SpscRing::anonymous(Config::new(4096))?;
//! let child = Process::builder().fork(|| {
//!     let mut tx = ring.producer().expect("the producer end is free");
//!     for i in 0..3u8 {
//!         let mut grant = tx.reserve(2).expect("the consumer is alive");
//!         grant.copy_from_slice(&[i, i * 10]); // written straight into the ring
//!         grant.commit();
//!     }
//! })?;
//! let mut rx = ring.consumer()?;
//! for i in 0..3u8 {
//!     let msg = rx.recv()?; // a guard over the bytes in the ring
//!     assert_eq!(&*msg, &[i, i * 10]);
//! }
//! assert!(child.join()?.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The `examples/` folder has a runnable two-process program per ring type:
//! `spsc_bytes`, `spsc_pod`, `spsc_rkyv`, `spsc_pingpong`, `mpmc`, `queue`,
//! `broadcast` and `pipe` (`cargo run --release -p multiproc-queue --example pipe`).
//!
//! # Features
//!
//! | feature | default | what it gives | what it pulls in |
//! |---|---|---|---|
//! | `serde` | on | any `serde` type is a message of the queues and rings; queues and pipe ends travel in a child's arguments | `serde`, and `multiproc-core`'s `serde` (`postcard`) |
//! | `rkyv` | on | archives written and read in place: `spsc::rkyv`, the pipe's `send_archive` / `recv_archive` | `rkyv` with `bytecheck` |
//!
//! `multiproc-pool` uses this crate with neither.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiproc-queue runs on Linux only (kernel 5.3 or newer): it needs memfd_create and file \
     seals (3.17), futex, pidfd_send_signal (5.1) and pidfd_open (5.3)"
);

// Under `--cfg loom` only the raw algorithms are built, on loom's atomics,
// for the model checks of `tests/loom.rs`.
#[cfg(not(loom))]
pub mod broadcast;
pub mod error;
#[cfg(not(loom))]
pub mod mpmc;
#[cfg(not(loom))]
pub mod pipe;
#[cfg(not(loom))]
mod placed;
mod primitive;
#[cfg(not(loom))]
pub mod queue;
pub mod raw;
#[cfg(not(loom))]
pub mod spsc;

#[cfg(not(loom))]
pub use pipe::{pipe, Connection};
#[cfg(not(loom))]
pub use queue::{JoinableQueue, Queue, SimpleQueue};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
