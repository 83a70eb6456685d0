//! How a child is started and how it ended.

use std::fmt;

/// How a child process is started. See the [module docs](crate::process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StartMethod {
    /// `fork` and run in the copy: fast; refused (checked) in a process
    /// with other threads.
    Fork,
    /// Re-execute the current binary: safe with threads; the child calls
    /// [`init`](crate::process::init).
    #[default]
    Spawn,
    /// Fork from a fork server: a clean, single-threaded image of the
    /// program spawned once, so children start at fork speed and safely in
    /// a multi-threaded caller; entries and arguments as spawn takes them.
    /// See [`Builder::forkserver`](crate::process::Builder::forkserver).
    ForkServer,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitStatus {
    /// Python's `exitcode`: the exit code, or minus the signal that killed
    /// the child.
    pub fn exitcode(&self) -> i32 {
        match *self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => -s,
        }
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }

    pub(super) fn from_wait_status(status: libc::c_int) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s} ({})", signal_name(s)),
        }
    }
}

pub(super) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// What a forked child's closure may return; it becomes the exit code.
pub trait ChildOutcome {
    /// The exit code for this outcome.
    fn exit_code(self) -> i32;
}

impl ChildOutcome for () {
    fn exit_code(self) -> i32 {
        0
    }
}

impl ChildOutcome for i32 {
    fn exit_code(self) -> i32 {
        self
    }
}

impl<E: fmt::Debug> ChildOutcome for Result<(), E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: {e:?}");
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_reads_like_python() {
        assert_eq!(
            ExitStatus::Signal(9).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(ExitStatus::Signal(15).exitcode(), -15);
        assert_eq!(ExitStatus::Code(3).exitcode(), 3);
        assert_eq!(ExitStatus::Code(3).to_string(), "exit code 3");
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Signal(15).success());
    }
}
