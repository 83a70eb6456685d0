//! A process pool, as Python's `multiprocessing.Pool`, that never hangs when
//! a worker dies.
//!
//! [`Pool`] starts worker processes (spawned by re-executing the program, or
//! forked) and runs a plain `fn` over inputs in them: [`Pool::map`],
//! [`Pool::map_async`], [`Pool::imap`], [`Pool::imap_unordered`],
//! [`Pool::apply`], [`Pool::apply_async`], [`Pool::starmap`] (and a
//! capturing closure with forked workers: [`PoolBuilder::build_with`]), with Python's
//! chunking, `close`, `join` and `terminate`. Inputs and outputs cross the
//! process boundary through shared-memory rings (`multiproc-queue`), encoded by
//! [`Message`]: plain-old-data is copied as it is.
//!
//! What it does differently from Python:
//! - A worker killed mid-task (SIGKILL, `abort`, the OOM killer) fails only
//!   the task it was running, with [`TaskError::WorkerDied`] naming its pid
//!   and exit status (or retries it, by [`DeathPolicy`]); it is replaced and
//!   every other task completes. Python's `Pool.map` hangs for ever here, and
//!   `ProcessPoolExecutor` breaks the whole pool.
//! - A panicking task fails alone ([`TaskError::Panicked`] with its message).
//! - An initializer that crashes every worker breaks the pool with
//!   [`PoolError::InitializerFailed`] instead of respawning in a loop.
//! - A per-task timeout kills and replaces a stuck worker.
//! - Workers die with the parent, even if it is SIGKILLed.
//!
//! The functions a pool runs are function items (`square`) or closures that
//! capture nothing (`|x| x + 1`): workers re-create them from their type,
//! never from an address, so they run the same code in every build profile.
//! A function pointer or a capturing closure is refused when the program is
//! compiled; for a capturing closure, use [`PoolBuilder::build_with`].
//!
//! Spawned workers (the default) re-execute the program, so call
//! `multiproc_core::process::init()` first thing in `main` (in a test, see
//! `multiproc_core::process::test_exec_args`). If the program does not, its
//! workers exit without serving and the pool breaks at once with an error
//! that says so ([`TaskError::PoolBroken`] for the tasks, [`PoolError::Broken`]
//! afterwards). Forked workers need no `init`, but are chosen with the
//! `unsafe` [`PoolBuilder::fork_workers`]: they are forked from the pool's
//! thread while the rest of the program runs.
//!
//! # Example
//!
//! ```
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! multiproc_core::process::init(); // first thing in main: spawned workers start here
//! let pool = multiproc_pool::Pool::new(2)?;
//! assert_eq!(pool.map(square, 0..5u64)?, vec![0, 1, 4, 9, 16]);
//! let lazy: Vec<u64> = pool.imap(square, 0..3u64, 1)?.map(Result::unwrap).collect();
//! assert_eq!(lazy, vec![0, 1, 4]);
//! # Ok::<(), multiproc_pool::PoolError>(())
//! ```
//!
//! # Features
//!
//! None of its own: task values are `multiproc-core` messages, so any
//! `serde` type is one while `multiproc-core`'s `serde` feature (on by
//! default) is on. The pool's rings use `multiproc-queue` without its
//! `serde` and `rkyv` features.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiproc-pool runs on Linux only (kernel 5.3 or newer): it needs memfd_create and file \
     seals (3.17), futex, pidfd_send_signal (5.1) and pidfd_open (5.3)"
);

mod builder;
mod control;
pub mod error;
mod fn_pool;
mod imap;
mod job;
mod link;
mod pool;
mod protocol;
mod results;
mod supervisor;
mod worker;

pub use builder::{PoolBuilder, DEFAULT_RING_BYTES};
pub use error::{PoolError, TaskError};
pub use fn_pool::FnPool;
pub use imap::IMap;
pub use multiproc_core::message::{Message, Pod};
pub use pool::{default_chunksize, Pool};
pub use results::{AsyncResult, MapResult};
pub use supervisor::{DeathPolicy, Progress};

/// Maps `f` over `inputs` on a pool with one worker per CPU, started for
/// this call and shut down after it: the common case in one line.
///
/// Needs `multiproc_core::process::init()` first thing in `main`, as every spawned
/// pool does.
///
/// ```
/// fn cube(x: i64) -> i64 {
///     x * x * x
/// }
/// multiproc_core::process::init();
/// assert_eq!(multiproc_pool::map(cube, vec![1, 2, 3])?, vec![1, 8, 27]);
/// # Ok::<(), multiproc_pool::PoolError>(())
/// ```
///
/// # Errors
/// [`PoolError::Closed`] after `close` or `terminate`;
/// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
/// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
/// message; [`PoolError::Encode`] for an input its serializer refuses.
/// [`PoolError::Task`] with the index and [`TaskError`]
/// of the first input that failed.
pub fn map<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
    f: F,
    inputs: impl IntoIterator<Item = I>,
) -> Result<Vec<O>, PoolError> {
    let mut pool = Pool::new(multiproc_core::cpu_count())?;
    let out = pool.map(f, inputs);
    pool.join();
    out
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
