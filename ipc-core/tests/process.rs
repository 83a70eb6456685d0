//! Child processes across real fork and exec, from inside the multi-threaded
//! test harness.

use ipc_core::process::{self, test_exec_args, ExitStatus, Process, StartMethod};
use ipc_core::ProcessError;
use std::time::{Duration, Instant};

fn exit_with(args: &[u8]) -> i32 {
    i32::from(args.first().copied().unwrap_or(0))
}

fn report_identity(_: &[u8]) -> i32 {
    let me = ipc_core::current_process();
    let parent = ipc_core::parent_process();
    if me.name == "spawned-child" && parent.as_ref().is_some_and(|p| p.name == "MainProcess") {
        0
    } else {
        eprintln!("identity: {me:?}, parent {parent:?}");
        3
    }
}

/// Checks that the inherited descriptor is close-on-exec again.
fn inherited_fd_is_cloexec(_: &[u8]) -> i32 {
    let Some(fd) = process::take_inherited_fd(0) else {
        return 2;
    };
    // SAFETY: F_GETFD on a descriptor we own.
    let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFD) };
    if flags & libc::FD_CLOEXEC != 0 {
        0
    } else {
        3
    }
}

#[test]
fn inherited_descriptors_do_not_leak_into_grandchildren() {
    process::init();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "inherited_descriptors_do_not_leak_into_grandchildren",
        ))
        .inherit_fd(std::os::fd::AsFd::as_fd(&a))
        .spawn(inherited_fd_is_cloexec, b"")
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
}

fn sleep_forever(_: &[u8]) -> i32 {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn panics(_: &[u8]) -> i32 {
    panic!("entry panicked on purpose")
}

#[test]
fn spawn_runs_the_entry_with_its_arguments() {
    process::init();
    let child = Process::builder()
        .exec_args(test_exec_args("spawn_runs_the_entry_with_its_arguments"))
        .spawn(exit_with, &[42])
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(42));
    // Joining twice returns the same status and touches no other process.
    assert_eq!(child.join().unwrap(), ExitStatus::Code(42));
    assert!(!child.is_alive());
}

#[test]
fn spawned_child_knows_its_name_and_parent() {
    process::init();
    let child = Process::builder()
        .name("spawned-child")
        .exec_args(test_exec_args("spawned_child_knows_its_name_and_parent"))
        .spawn(report_identity, b"")
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
}

#[test]
fn a_panicking_entry_exits_with_code_1() {
    process::init();
    let child = Process::builder()
        .exec_args(test_exec_args("a_panicking_entry_exits_with_code_1"))
        .spawn(panics, b"")
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(1));
}

#[test]
fn fork_and_spawn_share_one_start_interface() {
    process::init();
    for method in [StartMethod::Fork, StartMethod::Spawn] {
        let child = Process::builder()
            .start_method(method)
            .exec_args(test_exec_args("fork_and_spawn_share_one_start_interface"))
            .start(exit_with, &[7])
            .unwrap();
        assert_eq!(child.join().unwrap(), ExitStatus::Code(7), "{method:?}");
    }
}

#[test]
fn terminate_kill_and_signalling_an_exited_child() {
    process::init();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "terminate_kill_and_signalling_an_exited_child",
        ))
        .spawn(sleep_forever, b"")
        .unwrap();
    assert!(child.is_alive());
    assert_eq!(child.join_timeout(Duration::from_millis(20)).unwrap(), None);
    child.terminate().unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Signal(libc::SIGTERM));
    match child.kill() {
        Err(ProcessError::AlreadyExited { status, .. }) => {
            assert_eq!(status, ExitStatus::Signal(libc::SIGTERM))
        }
        other => panic!("expected AlreadyExited, got {other:?}"),
    }

    let child = Process::builder()
        .fork(|| -> i32 {
            loop {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    child.kill().unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Signal(libc::SIGKILL));
}

#[test]
fn forked_closure_panic_is_exit_code_1_and_result_is_the_code() {
    let child = Process::builder()
        .fork(|| -> i32 { panic!("boom") })
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(1));
    let child = Process::builder().fork(|| 9).unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(9));
    let child = Process::builder()
        .name("forked-child")
        .fork(|| {
            let parent = ipc_core::parent_process();
            let ok = ipc_core::current_process().name == "forked-child"
                && parent.is_some_and(|p| p.name == "MainProcess");
            if ok {
                0
            } else {
                5
            }
        })
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    assert!(
        ipc_core::parent_process().is_none(),
        "the test process has no ipc parent"
    );
    let child = Process::builder()
        .fork(|| -> Result<(), String> { Err("no".into()) })
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(1));
}

#[test]
fn dropping_a_running_daemon_kills_and_reaps_it() {
    let child = Process::builder()
        .daemon(true)
        .fork(|| -> i32 {
            loop {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    let pid = child.pid();
    drop(child);
    // Reaped: the pid is no longer our child.
    // SAFETY: waitpid on a pid that is not (any more) our child only fails.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
    assert_eq!(r, -1);
}

#[test]
fn wait_any_reports_the_child_that_exited() {
    let slow = Process::builder()
        .daemon(true)
        .fork(|| std::thread::sleep(Duration::from_secs(30)))
        .unwrap();
    let fast = Process::builder().fork(|| 0).unwrap();
    let start = Instant::now();
    assert_eq!(
        process::wait_any(&[&slow, &fast], Duration::from_secs(10)),
        Some(1)
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(fast.join().unwrap(), ExitStatus::Code(0));
    slow.kill().unwrap();
    assert_eq!(slow.join().unwrap(), ExitStatus::Signal(libc::SIGKILL));
}

#[test]
fn a_daemon_dies_with_its_parent() {
    process::init();
    // The middle process starts a daemon grandchild, reports its pid through
    // a pipe, then exits; the grandchild must die with it.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    let middle = Process::builder()
        .fork(move || {
            let grandchild = Process::builder()
                .daemon(true)
                .fork(|| std::thread::sleep(Duration::from_secs(60)))
                .expect("fork grandchild");
            let pid = grandchild.pid().to_ne_bytes();
            // SAFETY: `w` is the open write end; `pid` is 4 readable bytes.
            unsafe { libc::write(w, pid.as_ptr().cast(), 4) };
            std::mem::forget(grandchild); // exit without killing it ourselves
            0
        })
        .unwrap();
    assert!(middle.join().unwrap().success());
    let mut buf = [0u8; 4];
    // SAFETY: `r` is the open read end; `buf` has room for 4 bytes.
    assert_eq!(unsafe { libc::read(r, buf.as_mut_ptr().cast(), 4) }, 4);
    // SAFETY: closing the two pipe ends we own.
    unsafe {
        libc::close(r);
    }
    // SAFETY: as above.
    unsafe {
        libc::close(w);
    }
    let pid = u32::from_ne_bytes(buf);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ipc_core::ProcessId::of(pid).is_some_and(|p| p.is_alive()) {
        assert!(
            Instant::now() < deadline,
            "daemon grandchild {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
