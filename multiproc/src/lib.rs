//! Python's `multiprocessing`, for Rust programs, over shared memory.
//!
//! One import for what a Python program reaches for: [`Process`] with
//! typed arguments and return values, [`Queue`], [`pipe()`], locks,
//! semaphores, events, barriers, shared values, and a [`Pool`]. Each name
//! is the type of one of the workspace's crates (`multiproc-core`, `multiproc-sync`,
//! `multiproc-queue`, `multiproc-pool`), re-exported as it is; a program that needs
//! only one of them can depend on that crate alone.
//!
//! ```
//! use multiproc::Process;
//!
//! fn greet(name: String) -> String {
//!     format!("hello {name}")
//! }
//!
//! multiproc::init(); // first thing in main: spawned children start here
//! let child = Process::start(greet, "world".to_string())?;
//! assert_eq!(child.join()?, "hello world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The programs of a Python `multiprocessing` tutorial, each in a few lines,
//! are this crate's examples: `cargo run --release --example tutorial_pipe`
//! and its siblings `tutorial_spawn`, `tutorial_queue_list`,
//! `tutorial_pool_map`, `tutorial_manager_list`, ...
//!
//! | Python | here |
//! |---|---|
//! | `Process(target=f, args=a).start()`, `join()` | [`Process::start`]`(f, a)?`, [`Child::join`] (the return value) |
//! | `current_process()`, `parent_process()`, `active_children()`, `cpu_count()` | [`current_process`], [`parent_process`], [`active_children`], [`cpu_count`] |
//! | `set_start_method('fork' \| 'spawn' \| 'forkserver')` | [`set_start_method`]`(`[`StartMethod`]`::..)` |
//! | `log_to_stderr(level)` | [`log_to_stderr`]`(level)` |
//! | `Queue`, `JoinableQueue`, `SimpleQueue`, `Pipe()` | [`Queue`], [`JoinableQueue`], [`SimpleQueue`], [`pipe()`] (two [`Connection`]s) |
//! | `Lock`, `RLock`, `Semaphore`, `Event`, `Condition`, `Barrier`, `Value`, `Array` | [`Mutex`], [`ReentrantMutex`], [`Semaphore`], [`Event`], [`Condvar`], [`Barrier`], [`Value`], [`Array`] |
//! | `Manager()`, `.list()`, `.dict()` | [`Manager`], [`SharedList`], [`SharedDict`] (no server process) |
//! | `Pool` | [`Pool`] |
//!
//! # Features
//!
//! None of its own: it uses the four crates with their default features
//! (`serde`, and `rkyv` in `multiproc-queue`).

#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiproc runs on Linux only (kernel 5.3 or newer): it needs memfd_create and file \
     seals (3.17), futex, pidfd_send_signal (5.1) and pidfd_open (5.3)"
);

mod manager;

pub use manager::Manager;
pub use multiproc_core::log_to_stderr;
pub use multiproc_core::process::{
    active_children, cpu_count, current_process, init, parent_process, set_start_method,
    start_method, Child, ExitStatus, Process, ProcessInfo, StartMethod,
};
pub use multiproc_pool::Pool;
pub use multiproc_queue::{pipe, Connection, JoinableQueue, Queue, SimpleQueue};
pub use multiproc_sync::{
    Array, Barrier, Condvar, ContainerConfig, ContainerError, Event, LockError, Mutex,
    ReentrantMutex, Semaphore, SharedDict, SharedList, Value,
};

/// The crates behind the names above, for everything else they offer.
pub mod crates {
    pub use multiproc_core as core;
    pub use multiproc_pool as pool;
    pub use multiproc_queue as queue;
    pub use multiproc_sync as sync;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
