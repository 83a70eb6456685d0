//! Why starting, signalling or joining a child failed.

use super::status::ExitStatus;

/// Why starting, signalling or joining a child process failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `fork`, `exec` or `pidfd_open` failed.
    #[error("could not start process {name:?}: {source}")]
    Start {
        /// The process's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The child has already exited (and was reaped), so it cannot be
    /// signalled: its pid may belong to another process by now.
    #[error("process {name:?} (pid {pid}) has already exited with {status}")]
    AlreadyExited {
        /// The process's name.
        name: String,
        /// Its pid, when it ran.
        pid: u32,
        /// How it exited.
        status: ExitStatus,
    },
    /// The operation is not valid here (bad arguments, wrong process).
    #[error("invalid process operation: {0}")]
    Invalid(&'static str),
    /// [`Builder::fork`](crate::process::Builder::fork) was called in a
    /// process with other threads (or whose thread count cannot be read):
    /// the child would be a copy in which locks held by those threads stay
    /// locked for ever.
    #[error(
        "refusing to fork a process with {} threads: a forked child could deadlock on a lock \
         another thread held; spawn instead, fork before starting threads, or see \
         Builder::fork_unchecked",
        match .threads { Some(n) => n.to_string(), None => "an unknown number of".to_string() }
    )]
    MultiThreaded {
        /// The threads of this process, if they could be counted.
        threads: Option<usize>,
    },
    /// This process was spawned by `multiproc-core` but has not called
    /// [`init`](crate::process::init): it is running its parent's program
    /// from the top, and starting a process from there would do so again.
    #[error(
        "this process was spawned but its main did not call multiproc_core::process::init() first; \
         call it as the first statement of main (in a test, first in the test)"
    )]
    NotInitialized,
    /// The spawn token in the environment could not be used (see
    /// [`init`](crate::process::init)).
    #[error("cannot run as a spawned child: {reason}")]
    BadSpawnToken {
        /// What is wrong with it.
        reason: String,
    },
    /// A spawned child exited without running its entry function.
    #[error(
        "process {name:?} (pid {pid}) exited with {status} without running its entry function: \
         its main must call multiproc_core::process::init() as its first statement (the child printed \
         the reason on stderr)"
    )]
    EntryNotRun {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it exited.
        status: ExitStatus,
    },
    /// The function of a child started with `start` panicked.
    #[error("process {name:?} (pid {pid}) panicked: {message}")]
    Panicked {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The panic's message.
        message: String,
    },
    /// A child started with `start` ended without a result: it was killed
    /// by a signal, or left by `std::process::exit` inside its function.
    #[error("process {name:?} (pid {pid}) ended with {status} before returning a result")]
    NoResult {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },
    /// The arguments or the result of a child could not be encoded or
    /// decoded.
    #[error("process {name:?}: {reason}")]
    BadMessage {
        /// The process's name.
        name: String,
        /// What could not be encoded or decoded, and why.
        reason: String,
    },
    /// The fork server refused to start a child, or kept dying.
    #[error("the fork server could not start process {name:?}: {reason}")]
    ForkServer {
        /// The process's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The entry function cannot be named to a child.
    #[error(transparent)]
    Entry(#[from] crate::entry::EntryError),
    /// Any other OS error, with the call that failed.
    #[error("{op} failed for process {name:?}: {source}")]
    Io {
        /// The failing call.
        op: &'static str,
        /// The process's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
