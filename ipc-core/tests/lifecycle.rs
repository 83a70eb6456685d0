//! Python's lifecycle calls: `close`, `active_children`, `log_to_stderr`.

use multiproc_core::process::{self, active_children, test_exec_args, ExitStatus, Process};
use std::time::Duration;

fn sleeps(_: &[u8]) -> i32 {
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn says_hello(_: &[u8]) -> i32 {
    log::info!("hello from the child");
    0
}

#[test]
fn close_refuses_a_running_child_and_hands_it_back() {
    process::init();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "close_refuses_a_running_child_and_hands_it_back",
        ))
        .spawn(sleeps, b"")
        .unwrap();
    let still = child.close().unwrap_err();
    assert!(still.to_string().contains("still running"));
    let child = still.0;
    child.kill().unwrap();
    child.join().unwrap();
    assert_eq!(child.close().unwrap(), ExitStatus::Signal(libc::SIGKILL));
}

#[test]
fn active_children_lists_the_live_ones() {
    process::init();
    let args = test_exec_args("active_children_lists_the_live_ones");
    let a = Process::builder()
        .name("live-a")
        .exec_args(args.clone())
        .spawn(sleeps, b"")
        .unwrap();
    let b = Process::builder()
        .name("live-b")
        .exec_args(args)
        .spawn(sleeps, b"")
        .unwrap();
    let names = |v: Vec<process::ProcessInfo>| -> Vec<String> {
        v.into_iter()
            .filter(|p| p.name.starts_with("live-"))
            .map(|p| p.name)
            .collect()
    };
    let mut live = names(active_children());
    live.sort();
    assert_eq!(live, ["live-a", "live-b"]);
    a.kill().unwrap();
    a.join().unwrap();
    assert_eq!(names(active_children()), ["live-b"]);
    // A dropped handle of a child that has exited is reaped on the way.
    b.kill().unwrap();
    let pid = b.pid();
    drop(b);
    std::thread::sleep(Duration::from_millis(50));
    assert!(active_children().iter().all(|p| p.pid != pid));
}

/// Run as a child program: logs to stderr and spawns a child that logs.
#[test]
fn role_logs_to_stderr() {
    process::init();
    if std::env::var_os("IPC_TEST_ROLE_LOG").is_none() {
        return;
    }
    assert!(multiproc_core::log_to_stderr(log::LevelFilter::Info));
    assert!(
        !multiproc_core::log_to_stderr(log::LevelFilter::Info),
        "installed once"
    );
    let child = Process::builder()
        .name("log-child")
        .exec_args(test_exec_args("role_logs_to_stderr"))
        .spawn(says_hello, b"")
        .unwrap();
    child.join().unwrap();
}

#[test]
fn log_to_stderr_shows_the_lifecycle_of_parent_and_child() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(test_exec_args("role_logs_to_stderr"))
        .env("IPC_TEST_ROLE_LOG", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MainProcess") && err.contains("\"log-child\" started by spawn"),
        "{err}"
    );
    assert!(
        err.contains("log-child") && err.contains("hello from the child"),
        "{err}"
    );
    assert!(err.contains("exited: exit code 0"), "{err}");
}
