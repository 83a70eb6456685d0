//! Child processes across real fork and exec, from inside the multi-threaded
//! test harness.

mod common;
use common::ForkInTest;
use multiproc_core::process::{self, test_exec_args, ExitStatus, Process};
use multiproc_core::ProcessError;
use std::time::{Duration, Instant};

fn exit_with(args: &[u8]) -> i32 {
    i32::from(args.first().copied().unwrap_or(0))
}

fn report_identity(_: &[u8]) -> i32 {
    let me = multiproc_core::current_process();
    let parent = multiproc_core::parent_process();
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
fn fork_refuses_a_multi_threaded_process() {
    let r = Process::builder().fork(|| 0);
    assert!(
        matches!(r, Err(ProcessError::MultiThreaded { .. })),
        "{r:?}"
    );
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("fork_unchecked"), "{msg}");
}

/// Run as a spawned child: a `main` that does not call `init` first. It
/// tries to start a process, as a program re-run from the top would.
#[test]
fn role_a_main_without_init() {
    if std::env::var_os(process::SPAWN_ENV).is_none() {
        return; // run by the harness itself: nothing to do
    }
    let refused = matches!(
        Process::builder().spawn(exit_with, &[1]),
        Err(ProcessError::NotInitialized)
    );
    if !refused {
        // SAFETY: leaving at once, with a code the parent checks.
        unsafe { libc::_exit(3) };
    }
    // Returning lets the harness exit, which the spawn guard turns into
    // EXIT_NO_INIT.
}

#[test]
fn a_child_that_skips_init_fails_loudly_and_join_reports_it() {
    process::init();
    let child = Process::builder()
        .exec_args(test_exec_args("role_a_main_without_init"))
        .spawn(exit_with, &[0])
        .unwrap();
    match child.join() {
        Err(ProcessError::EntryNotRun { status, .. }) => {
            assert_eq!(status, ExitStatus::Code(process::EXIT_NO_INIT))
        }
        other => panic!("expected EntryNotRun, got {other:?}"),
    }
    // Joining again reports the same.
    assert!(matches!(
        child.join(),
        Err(ProcessError::EntryNotRun { .. })
    ));
    assert_eq!(
        child.exit_status(),
        Some(ExitStatus::Code(process::EXIT_NO_INIT))
    );
}

/// Runs this test binary as a child that calls `init` with `token` in its
/// environment, and returns how it ended and what it printed on stderr.
fn init_with_forged_token(token: &str) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(test_exec_args("role_calls_init"))
        .env(process::SPAWN_ENV, token)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run as a child with a forged token: calls `init`, which must refuse.
#[test]
fn role_calls_init() {
    process::init();
}

#[test]
fn a_forged_spawn_token_is_refused_with_an_exit_code_not_a_jump() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::ExitStatusExt;
    let exe = std::fs::metadata("/proc/self/exe").unwrap();
    let (dev, ino) = (exe.dev(), exe.ino());
    for token in [
        // The first token format, with an offset that names nothing.
        format!("1;deadbeef;{dev:x};{ino:x};0;;;1;"),
        "2:0:00000000000000000000000000000000".to_owned(),
        "2:1:00000000000000000000000000000000".to_owned(),
        "2:2:0123456789abcdef0123456789abcdef".to_owned(),
        "2:99:00000000000000000000000000000000".to_owned(),
        "2:-4:00".to_owned(),
        "garbage".to_owned(),
    ] {
        let (status, stderr) = init_with_forged_token(&token);
        assert_eq!(status.signal(), None, "{token}: killed by a signal");
        assert_eq!(
            status.code(),
            Some(process::EXIT_BAD_TOKEN),
            "{token}: {stderr}"
        );
        assert!(stderr.contains("cannot run as a spawned child"), "{stderr}");
    }
}

#[test]
fn try_init_reports_a_bad_token_and_lets_the_program_go_on() {
    // Only the flag's absence matters to the rest of this test binary.
    if std::env::var_os(process::SPAWN_ENV).is_some() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(test_exec_args("role_try_init"))
        .env(process::SPAWN_ENV, "2:0:00")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run as a child with a bad token: `try_init` returns the error, the
/// variable is gone, and the program may go on (and spawn).
#[test]
fn role_try_init() {
    if std::env::var_os(process::SPAWN_ENV).is_none() {
        return;
    }
    let e = process::try_init().unwrap_err();
    assert!(matches!(e, ProcessError::BadSpawnToken { .. }), "{e}");
    assert!(std::env::var_os(process::SPAWN_ENV).is_none());
    let child = Process::builder()
        .exec_args(test_exec_args("role_try_init"))
        .spawn(exit_with, &[4])
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(4));
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
        .fork_in_test(|| -> i32 {
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
        .fork_in_test(|| -> i32 { panic!("boom") })
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(1));
    let child = Process::builder().fork_in_test(|| 9).unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(9));
    let child = Process::builder()
        .name("forked-child")
        .fork_in_test(|| {
            let parent = multiproc_core::parent_process();
            let ok = multiproc_core::current_process().name == "forked-child"
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
        multiproc_core::parent_process().is_none(),
        "the test process has no ipc parent"
    );
    let child = Process::builder()
        .fork_in_test(|| -> Result<(), String> { Err("no".into()) })
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(1));
}

#[test]
fn dropping_a_running_daemon_kills_and_reaps_it() {
    let child = Process::builder()
        .daemon(true)
        .fork_in_test(|| -> i32 {
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
        .fork_in_test(|| std::thread::sleep(Duration::from_secs(30)))
        .unwrap();
    let fast = Process::builder().fork_in_test(|| 0).unwrap();
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
        .fork_in_test(move || {
            // A forked child has one thread: the checked fork accepts it.
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
    while multiproc_core::ProcessId::of(pid).is_some_and(|p| p.is_alive()) {
        assert!(
            Instant::now() < deadline,
            "daemon grandchild {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
