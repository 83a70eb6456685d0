//! Runs every tutorial example, as a user would, and checks what it prints.
//! The examples are built by `cargo test` next to this test binary.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("the test binary's path");
    dir.pop(); // deps
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples").join(name)
}

/// Runs example `name` with `args`; fails the test after a minute (a hang).
fn run(name: &str, args: &[&str]) -> Output {
    let path = example(name);
    assert!(path.exists(), "{} was not built", path.display());
    let mut child = Command::new(&path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the example");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{name} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn tutorial_spawn() {
    let out = stdout(&run("tutorial_spawn", &[]));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["This is a spawn", "This is a spawn 2", "This is a spawn 3"]
    );
}

#[test]
fn tutorial_name() {
    assert_eq!(
        stdout(&run("tutorial_name", &[])),
        "Worker-7\na message from the parent\n"
    );
}

#[test]
fn tutorial_daemon() {
    let out = stdout(&run("tutorial_daemon", &[]));
    let pid: i32 = out
        .split_whitespace()
        .nth(6)
        .and_then(|p| p.parse().ok())
        .expect("the daemon's pid is printed");
    // Gone with its parent (killed on drop, and by the parent-death signal).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if !stat.contains("tutorial_daemo") {
            break; // the pid now names another process
        }
        assert!(
            Instant::now() < deadline,
            "the daemon {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn tutorial_join_timeout() {
    let out = stdout(&run("tutorial_join_timeout", &["1.5"]));
    assert!(out.matches("in loop").count() >= 1, "{out}");
    assert!(out.ends_with("exit code 0\n"), "{out}");
}

#[test]
fn tutorial_exitcode() {
    let out = stdout(&run("tutorial_exitcode", &[]));
    assert!(out.contains("child 1: exit code 0"), "{out}");
    assert!(
        out.contains("child 2: killed by signal 15") && out.contains("exitcode: -15"),
        "{out}"
    );
}

#[test]
fn tutorial_is_alive() {
    assert_eq!(stdout(&run("tutorial_is_alive", &[])), "true\nfalse\n");
}

#[test]
fn tutorial_cpu_count() {
    let n: usize = stdout(&run("tutorial_cpu_count", &[]))
        .trim()
        .parse()
        .expect("a number");
    assert!(n >= 1);
}

#[test]
fn tutorial_logging() {
    let out = run("tutorial_logging", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("started by spawn"), "{err}");
    assert!(err.contains("sent SIGTERM"), "{err}");
    assert!(err.contains("exited: exit code 0"), "{err}");
}

#[test]
fn tutorial_manager_list() {
    assert_eq!(
        stdout(&run("tutorial_manager_list", &[])),
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n16\n[4, 9, 16]\n100\n"
    );
}
