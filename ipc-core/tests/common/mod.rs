//! Helpers shared by multiproc-core's integration tests.
#![allow(dead_code)]

use multiproc_core::process::{test_exec_args, Builder, ChildOutcome};
use multiproc_core::{Process, ProcessError};

/// Starts `entry(args)` in a re-executed copy of this test binary that runs
/// only `test` (which calls `init` first).
pub(crate) fn spawn<F: Fn(&[u8]) -> i32 + Copy + 'static>(
    test: &str,
    entry: F,
    args: &[u8],
) -> Process {
    Process::builder()
        .exec_args(test_exec_args(test))
        .spawn(entry, args)
        .expect("spawn")
}

/// Forking from inside the test harness, whose other threads run other
/// tests.
pub(crate) trait ForkInTest {
    /// [`Builder::fork_unchecked`] for the closures of these tests.
    fn fork_in_test<F: FnOnce() -> R, R: ChildOutcome>(self, f: F)
        -> Result<Process, ProcessError>;
}

impl ForkInTest for Builder {
    fn fork_in_test<F: FnOnce() -> R, R: ChildOutcome>(
        self,
        f: F,
    ) -> Result<Process, ProcessError> {
        // SAFETY: the harness's other threads run other tests. The closures
        // of these tests use this workspace's primitives, allocate, sleep,
        // and make raw system calls; their output (a panic message) goes to
        // the capture buffer of the forking test's own thread, not to a lock
        // another thread could hold.
        unsafe { self.fork_unchecked(f) }
    }
}
