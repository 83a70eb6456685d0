//! A lock held in another pid namespace (another container sharing
//! `/dev/shm`, modelled with `unshare -p -f --mount-proc`) is never taken
//! for dead: its pid and start time mean nothing outside, so opening it from
//! outside is a typed error, and it is never reclaimed.
//!
//! The holder is this test binary re-executed under `unshare` with a role in
//! `IPC_TEST_ROLE`; the test is skipped, with the reason printed, where
//! `unshare` is missing or not permitted.

#![cfg(not(loom))]

use multiproc_core::name::{path_of, unique_name};
use multiproc_core::process::test_exec_args;
use multiproc_core::SegmentError;
use multiproc_sync::{Mutex, ObjectError};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

const ROLE: &str = "IPC_TEST_ROLE";

/// Removes `/dev/shm/ipc.<name>` on drop, also when the test fails.
struct NameGuard(String);

impl Drop for NameGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(path_of(&self.0));
    }
}

/// Kills and reaps the child on drop, also when the test fails.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The role: creates the named mutex, locks it, says so, and holds it
/// until stdin closes.
fn hold(name: &str) -> i32 {
    let m = match Mutex::<u64>::create(name, 0) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("role: create: {e}");
            return 2;
        }
    };
    let mut g = match m.lock() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("role: lock: {e}");
            return 3;
        }
    };
    *g = 1;
    println!("ready");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    *g = 2;
    drop(g);
    0
}

#[test]
fn a_lock_held_in_another_pid_namespace_is_refused_not_taken_over() {
    if let Ok(name) = std::env::var(ROLE) {
        std::process::exit(hold(&name));
    }
    match Command::new("unshare")
        .args(["-p", "-f", "--mount-proc", "true"])
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) => {
            println!("skipped: cannot run unshare: {e}");
            return;
        }
        Ok(out) if !out.status.success() => {
            println!(
                "skipped: unshare -p -f --mount-proc is not permitted here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Ok(_) => {}
    }
    let name = unique_name("pidns-mutex");
    let _guard = NameGuard(name.clone());
    let mut child = ChildGuard(
        Command::new("unshare")
            .args(["-p", "-f", "--kill-child", "--mount-proc"])
            .arg(std::env::current_exe().expect("test binary"))
            .args(test_exec_args(
                "a_lock_held_in_another_pid_namespace_is_refused_not_taken_over",
            ))
            .env(ROLE, &name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start unshare"),
    );
    let out = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l == "ready" => break,
            Ok(_) => continue,
            Err(_) => panic!("the holder in the new pid namespace never got ready"),
        }
    }
    // The holder is inside its critical section now.
    let opened = Mutex::<u64>::open(&name);
    let verdict = match &opened {
        Ok(m) => format!(
            "opened; lock_timeout gave {:?}",
            m.lock_timeout(Duration::from_millis(10)).map(|g| *g)
        ),
        Err(e) => e.to_string(),
    };
    assert!(
        matches!(
            opened,
            Err(ObjectError::Segment(
                SegmentError::ForeignPidNamespace { .. }
            ))
        ),
        "opening a lock held in another pid namespace: {verdict}"
    );
    let created = Mutex::<u64>::create(&name, 7);
    assert!(
        matches!(
            created,
            Err(ObjectError::Segment(SegmentError::AlreadyExists { .. }))
        ),
        "the live holder's lock was reclaimed: {created:?}"
    );
    drop(child.0.stdin.take());
    let mut status = None;
    for _ in 0..2000 {
        status = child.0.try_wait().expect("try_wait");
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "the holder did not finish cleanly: {status:?}"
    );
}
