//! Child processes, as Python's `multiprocessing.Process`, typed.
//!
//! Two start methods:
//!
//! - [`StartMethod::Spawn`] (the default) re-executes the current binary.
//!   The child runs an entry function of the same executable: a function
//!   item or a closure that captures nothing, such as `fn child(args: &[u8])
//!   -> i32`, with the argument bytes the parent gave. Nothing is
//!   serialized: the function is named by a descriptor in the executable's
//!   read-only data ([`crate::entry`]), which the child checks before it
//!   calls anything, so a wrong or forged name is an error, never a jump.
//!   Safe in multi-threaded parents. **The child must call [`init`] as the
//!   first statement of `main`**: there it runs the entry function and
//!   exits. A spawned child that does not fails loudly instead of running
//!   the parent's program again: it cannot start processes
//!   ([`ProcessError::NotInitialized`]), it exits with [`EXIT_NO_INIT`] and
//!   a message on stderr, and the parent's [`Process::join`] returns
//!   [`ProcessError::EntryNotRun`].
//! - [`StartMethod::Fork`] runs a closure in a `fork`ed copy of the caller:
//!   fast (no exec, the child shares the parent's mappings and captures
//!   anything). Only the forking thread exists in the child, so a lock
//!   another thread held at the moment of the fork (inside `println!`, a
//!   logger, a `Mutex` of the program) stays locked for ever there, and
//!   libraries that are not fork-safe may be left mid-operation.
//!   [`Builder::fork`] therefore refuses, with [`ProcessError::MultiThreaded`],
//!   when the calling process has other threads: a copy of a single-threaded
//!   process has nothing held by a thread that vanished, so any closure is
//!   sound there. [`Builder::fork_unchecked`] forks a multi-threaded process
//!   anyway; it is `unsafe`, with the rules in its `# Safety` section.
//!
//! In a `cargo test` binary there is no `main` of yours: call [`init`] as the
//! first statement of the test that spawns, and pass
//! [`test_exec_args`]`("that_test")` to [`Builder::exec_args`], so the
//! re-executed test binary runs only that test, whose `init` call runs the
//! entry function.
//!
//! Children are always reaped: [`Process::join`], [`Process::is_alive`] and
//! drop reap them; a daemon child still running on drop is killed first, any
//! other child still running on drop is reaped when it has exited, the next
//! time this process starts a child (as Python does). Lifecycle events are
//! logged through the `log` facade at `info` (start, exit) and `debug`
//! level; nothing is logged on a hot path.

mod builder;
mod child;
mod error;
mod forkserver;
mod identity;
mod spawn;
mod status;
mod typed;

pub use crate::inherit::take_inherited_fd;
pub use builder::Builder;
pub use builder::{set_start_method, start_method};
pub use child::{active_children, wait_any, Process, StillRunning};
pub use error::ProcessError;
pub use identity::{cpu_count, current_process, parent_process, ProcessInfo};
pub use spawn::{init, test_exec_args, try_init, EXIT_BAD_TOKEN, EXIT_NO_INIT, SPAWN_ENV};
pub use status::{ChildOutcome, ExitStatus, StartMethod};
pub use typed::{Child, EXIT_BAD_ARGS};
