//! Helpers shared by the multi-process tests.
#![allow(dead_code)]

use multiproc_core::process::{test_exec_args, Builder, ChildOutcome, Process};
use multiproc_core::ExitStatus;
use std::time::{Duration, Instant};

/// Starts `entry(args)` in a re-executed copy of this test binary that runs
/// only `test`. Daemon: killed if the test panics and drops it.
pub(crate) fn spawn<F: Fn(&[u8]) -> i32 + Copy + 'static>(
    test: &str,
    entry: F,
    args: &[u8],
) -> Process {
    Process::builder()
        .daemon(true)
        .exec_args(test_exec_args(test))
        .spawn(entry, args)
        .expect("spawn child")
}

/// Like [`spawn`], passing `fd` as the child's inherited descriptor 0.
pub(crate) fn spawn_with_fd<F: Fn(&[u8]) -> i32 + Copy + 'static>(
    test: &str,
    entry: F,
    args: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> Process {
    Process::builder()
        .daemon(true)
        .inherit_fd(fd)
        .exec_args(test_exec_args(test))
        .spawn(entry, args)
        .expect("spawn child")
}

/// Joins, failing the test if it takes more than a minute (a hang).
pub(crate) fn join(p: &Process) -> ExitStatus {
    match p.join_timeout(Duration::from_secs(60)).expect("join") {
        Some(s) => s,
        None => {
            let _ = p.kill();
            panic!("child {} hung", p.pid());
        }
    }
}

/// Kills and reaps a child.
pub(crate) fn kill(p: &Process) {
    p.kill().expect("kill");
    assert_eq!(join(p), ExitStatus::Signal(libc::SIGKILL));
}

/// Polls `cond` until it holds, failing after a minute (a hang, not a
/// performance bound).
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sleeps for ever (until killed).
pub(crate) fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub(crate) fn name_arg(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

pub(crate) fn arg_name(args: &[u8]) -> String {
    String::from_utf8_lossy(args).into_owned()
}

/// No segment of this test binary's pid may be left in /dev/shm.
pub(crate) fn assert_no_leftover(name: &str) {
    assert!(
        !multiproc_core::name::path_of(name).exists(),
        "segment {name} left behind"
    );
}

/// Forking from inside the test harness, whose other threads run other
/// tests.
pub(crate) trait ForkInTest {
    /// [`Builder::fork_unchecked`] for the closures of these tests.
    fn fork_in_test<F: FnOnce() -> R, R: ChildOutcome>(self, f: F) -> Process;
}

impl ForkInTest for Builder {
    fn fork_in_test<F: FnOnce() -> R, R: ChildOutcome>(self, f: F) -> Process {
        // SAFETY: the harness's other threads run other tests. The closures
        // of these tests use this workspace's locks and barriers in shared
        // memory, which no other test touches, and return a code; a panic
        // message goes to the capture buffer of the forking test's own
        // thread, not to a lock another thread could hold.
        unsafe { self.fork_unchecked(f) }.expect("fork child")
    }
}
