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

#[test]
fn tutorial_queue_two_children() {
    let out = stdout(&run("tutorial_queue_two_children", &[]));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["Message by Child Proc 1", "Message by Child Proc 2"]
    );
}

#[test]
fn tutorial_queue_list() {
    assert_eq!(
        stdout(&run("tutorial_queue_list", &[])),
        "(\"Hello\", \"World\", 42)\n"
    );
}

#[test]
fn tutorial_pipe() {
    assert_eq!(
        stdout(&run("tutorial_pipe", &[])),
        "[\"hello\", \"world\"]\n"
    );
}

#[test]
fn tutorial_lock() {
    let out = stdout(&run("tutorial_lock", &[]));
    let mut per_writer = std::collections::BTreeMap::<&str, Vec<u64>>::new();
    for line in out.lines() {
        // Each line whole: "<name> writes line <n>".
        let (who, n) = line
            .split_once(" writes line ")
            .unwrap_or_else(|| panic!("a torn line: {line:?}"));
        let n: u64 = n
            .parse()
            .unwrap_or_else(|_| panic!("a torn line: {line:?}"));
        per_writer.entry(who).or_default().push(n);
    }
    assert_eq!(
        per_writer.keys().copied().collect::<Vec<_>>(),
        ["Child-1", "Child-2", "MainProcess"]
    );
    for (who, ns) in per_writer {
        assert_eq!(ns, (1..=400).collect::<Vec<_>>(), "{who}'s lines");
    }
}

#[test]
fn tutorial_pool_map() {
    assert_eq!(
        stdout(&run("tutorial_pool_map", &[])),
        "[2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n[1, 4, 9]\n"
    );
}

#[test]
fn tutorial_pool_work_log() {
    let out = stdout(&run("tutorial_pool_work_log", &[]));
    for name in ["V", "X", "Y", "Z"] {
        let waiting = out
            .lines()
            .position(|l| l.starts_with(&format!("Process {name} waiting")));
        let executed = out
            .lines()
            .position(|l| l == format!("Process {name} executed"));
        assert!(
            matches!((waiting, executed), (Some(w), Some(e)) if w < e),
            "{name} did not run: {out}"
        );
    }
}

#[test]
fn tutorial_task_queue() {
    let out = stdout(&run("tutorial_task_queue", &[]));
    let mut done: Vec<(u32, String)> = out
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Task no ")?;
            let (i, who) = rest.split_once(" is done by ")?;
            Some((i.parse().ok()?, who.to_string()))
        })
        .collect();
    done.sort();
    assert_eq!(
        done.iter().map(|d| d.0).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    for (_, who) in &done {
        assert!(
            ["Process-1", "Process-2", "Process-3"].contains(&who.as_str()),
            "{who}"
        );
    }
}

#[test]
fn tutorial_forkserver() {
    let out = stdout(&run("tutorial_forkserver", &[]));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "hello from child 1, started by the fork server",
            "hello from child 2, started by the fork server"
        ]
    );
}
