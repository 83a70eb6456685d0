//! Nobody is judged dead on a guess: not by a process that cannot read
//! `/proc` for want of a descriptor, not by one whose `/proc` belongs to
//! another pid namespace, and not across pid namespaces, where a pid and a
//! start time mean nothing (segments from another pid namespace are refused).
//!
//! The pid-namespace tests re-execute this test binary under
//! `unshare -p -f` with a role in `IPC_TEST_ROLE`; they are skipped, with
//! the reason printed, where `unshare` is missing or not permitted.

use multiproc_core::name::{path_of, unique_name};
use multiproc_core::process::{self, test_exec_args, ExitStatus, Process};
use multiproc_core::{Kind, Liveness, ProcessId, Segment, SegmentError};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const K: Kind = Kind::new("ipc-core-tests/liveness", 1, 0);

/// The environment variable naming the role a re-executed test runs.
const ROLE: &str = "IPC_TEST_ROLE";

/// Removes `/dev/shm/ipc.<name>` on drop, also when the test fails.
struct NameGuard(String);

impl Drop for NameGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(path_of(&self.0));
    }
}

fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(path_of(name)).is_ok()
}

// ---------- a judge with no free descriptor ----------

/// Fills the descriptor table, then judges the process named by `args`
/// (`pid start_time`, alive): exit 0 if it is found alive, 1 if dead.
fn child_judge_without_descriptors(args: &[u8]) -> i32 {
    let text = std::str::from_utf8(args).expect("utf-8");
    let (pid, start) = text.split_once(' ').expect("pid and start");
    let id = ProcessId {
        pid: pid.parse().expect("pid"),
        reserved: 0,
        start_time: start.parse().expect("start time"),
    };
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return 2;
    }
    let mut fillers = Vec::with_capacity(64);
    loop {
        // SAFETY: dup of stderr; the result, if any, is ours.
        let fd = unsafe { libc::dup(2) };
        if fd < 0 {
            break;
        }
        // SAFETY: `fd` was just returned by dup and belongs to nobody else.
        fillers.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let whole = id.liveness();
    let packed = ProcessId::liveness_packed(id.to_u64());
    drop(fillers);
    if whole == Liveness::Alive && packed == Liveness::Alive {
        0
    } else {
        eprintln!("child: judged {whole:?} / {packed:?} with no free descriptor");
        1
    }
}

#[test]
fn a_judge_with_no_free_descriptor_declares_nobody_dead() {
    process::init();
    let me = ProcessId::current().unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "a_judge_with_no_free_descriptor_declares_nobody_dead",
        ))
        .spawn(
            child_judge_without_descriptors,
            format!("{} {}", me.pid, me.start_time).as_bytes(),
        )
        .expect("spawn");
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
}

// ---------- other pid namespaces ----------

/// Why `unshare` cannot be used here, if it cannot.
fn unshare_unavailable(mount_proc: bool) -> Option<String> {
    let mut cmd = Command::new("unshare");
    cmd.args(["-p", "-f"]);
    if mount_proc {
        cmd.arg("--mount-proc");
    }
    match cmd.arg("true").stderr(Stdio::piped()).output() {
        Err(e) => Some(format!("cannot run unshare: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "unshare -p -f{} is not permitted here: {}",
            if mount_proc { " --mount-proc" } else { "" },
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// A re-executed copy of this test binary running `role` in a new pid
/// namespace (with its own `/proc` if `mount_proc`). It prints one line
/// when ready and runs until its stdin closes.
struct InNamespace {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl InNamespace {
    fn start(test: &str, mount_proc: bool, role: &str) -> InNamespace {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = Command::new("unshare");
        cmd.args(["-p", "-f", "--kill-child"]);
        if mount_proc {
            cmd.arg("--mount-proc");
        }
        let mut child = cmd
            .arg(exe)
            .args(test_exec_args(test))
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start unshare");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        InNamespace { child, lines }
    }

    /// The role's ready line (bounded wait).
    fn ready(&mut self) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.starts_with("ready") => return l,
                Ok(_) => continue,
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("the child in the new pid namespace never got ready");
                }
            }
        }
    }

    /// Closes its stdin and waits (bounded) for it to exit.
    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        for _ in 0..2000 {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("the child in the new pid namespace did not exit");
    }
}

impl Drop for InNamespace {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the role named in `IPC_TEST_ROLE`, if any, and exits.
fn run_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let code = match role.split_once(':') {
        Some(("segment", names)) => role_segment(names),
        Some(("judge", "")) => role_judge(),
        _ => 100,
    };
    std::process::exit(code);
}

fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// Inside the new namespace: creates segment `mine`, then checks that the
/// outside segment `theirs` can neither be opened nor reclaimed from here.
fn role_segment(names: &str) -> i32 {
    let Some((mine, theirs)) = names.split_once(' ') else {
        return 101;
    };
    let seg = match Segment::builder(K).name(mine).size(64).create() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("role: create: {e}");
            return 102;
        }
    };
    let open = Segment::builder(K).name(theirs).open();
    let open_ok = matches!(open, Err(SegmentError::ForeignPidNamespace { .. }));
    let create = Segment::builder(K).name(theirs).size(64).create();
    let create_ok = matches!(create, Err(SegmentError::AlreadyExists { .. }));
    println!("ready open={open_ok} create={create_ok} ({open:?} / {create:?})");
    wait_for_stdin_eof();
    drop(seg);
    0
}

/// Inside a new pid namespace that still sees the outer `/proc`: nobody can
/// be judged there, so nobody is dead.
fn role_judge() -> i32 {
    let ours = ProcessId::current().expect("identity");
    let strangers = [
        // Pid 1 of the outer `/proc` (another process with another start).
        ProcessId {
            pid: 1,
            reserved: 0,
            start_time: ours.start_time ^ 0x5a5a,
        },
        // A pid no process has.
        ProcessId {
            pid: (1 << 22) - 3,
            reserved: 0,
            start_time: 1,
        },
    ];
    let verdicts: Vec<Liveness> = strangers.iter().map(|p| p.liveness()).collect();
    let all_alive = verdicts.iter().all(|&v| v == Liveness::Alive);
    println!("ready alive={all_alive} {verdicts:?}");
    wait_for_stdin_eof();
    0
}

#[test]
fn a_segment_from_another_pid_namespace_is_refused_both_ways() {
    run_role();
    if let Some(why) = unshare_unavailable(true) {
        println!("skipped: {why}");
        return;
    }
    let prefix = unique_name("pidns");
    let (inside, outside) = (format!("{prefix}-in"), format!("{prefix}-out"));
    let _guards = (NameGuard(inside.clone()), NameGuard(outside.clone()));
    let ours = Segment::builder(K)
        .name(&outside)
        .size(64)
        .create()
        .unwrap();
    let mut child = InNamespace::start(
        "a_segment_from_another_pid_namespace_is_refused_both_ways",
        true,
        &format!("segment:{inside} {outside}"),
    );
    let line = child.ready();
    // From outside: the inside creator can be neither opened nor reclaimed.
    let open = Segment::builder(K).name(&inside).open();
    let create = Segment::builder(K).name(&inside).size(64).create();
    let swept = multiproc_core::sweep(&prefix).unwrap();
    assert!(exists(&inside), "the live inside segment was removed");
    assert!(exists(&outside), "our segment was removed from inside");
    assert!(
        matches!(open, Err(SegmentError::ForeignPidNamespace { .. })),
        "open from outside: {open:?}"
    );
    assert!(
        matches!(create, Err(SegmentError::AlreadyExists { .. })),
        "create from outside: {create:?}"
    );
    assert!(swept.is_empty(), "sweep removed {swept:?}");
    assert!(
        line.contains("open=true create=true"),
        "from inside: {line}"
    );
    assert!(child.finish().success());
    drop(ours);
}

#[test]
fn in_a_pid_namespace_without_its_own_proc_nobody_is_judged_dead() {
    run_role();
    if let Some(why) = unshare_unavailable(false) {
        println!("skipped: {why}");
        return;
    }
    let mut child = InNamespace::start(
        "in_a_pid_namespace_without_its_own_proc_nobody_is_judged_dead",
        false,
        "judge:",
    );
    let line = child.ready();
    assert!(child.finish().success());
    assert!(line.contains("alive=true"), "from inside: {line}");
}

// ---------- a header that names another pid namespace ----------

/// Overwrites the pid-namespace inode recorded in the header of the segment
/// behind `fd` (offset 80 of the header).
fn forge_namespace(fd: &impl std::os::fd::AsRawFd, ino: u64) {
    let bytes = ino.to_ne_bytes();
    // SAFETY: pwrite of 8 bytes from a live buffer to a descriptor we hold.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), bytes.as_ptr().cast(), 8, 80) };
    assert_eq!(n, 8);
}

/// Creates the named segment and exits without dropping it: a dead creator.
fn child_create_and_vanish(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).expect("utf-8");
    match Segment::builder(K).name(name).size(64).create() {
        Ok(seg) => {
            std::mem::forget(seg);
            0
        }
        Err(e) => {
            eprintln!("child: create: {e}");
            3
        }
    }
}

#[test]
fn a_header_naming_another_pid_namespace_is_refused_and_never_reclaimed() {
    process::init();
    let here = multiproc_core::liveness::PidNamespace::current();
    assert_ne!(here.ino, 0, "a test process can read /proc/self/ns/pid");
    // Opened by name, and mapped from a descriptor.
    let name = unique_name("pidns-forged");
    let seg = Segment::builder(K).name(&name).size(64).create().unwrap();
    assert_eq!(seg.header().creator_pid_namespace(), here);
    forge_namespace(&seg, here.ino ^ 1);
    let r = Segment::builder(K).name(&name).open();
    assert!(
        matches!(r, Err(SegmentError::ForeignPidNamespace { .. })),
        "{r:?}"
    );
    let anon = Segment::builder(K).size(64).create().unwrap();
    forge_namespace(&anon, here.ino ^ 1);
    let r = Segment::from_fd(anon.fd().try_clone_to_owned().unwrap(), K);
    assert!(
        matches!(r, Err(SegmentError::ForeignPidNamespace { .. })),
        "{r:?}"
    );
    drop(seg);
    // A dead creator of another namespace: neither create nor sweep may
    // judge it; once it names ours again, it is reclaimed.
    let prefix = unique_name("pidns-stale");
    let stale = format!("{prefix}-a");
    let _guard = NameGuard(stale.clone());
    let child = Process::builder()
        .exec_args(test_exec_args(
            "a_header_naming_another_pid_namespace_is_refused_and_never_reclaimed",
        ))
        .spawn(child_create_and_vanish, stale.as_bytes())
        .expect("spawn");
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path_of(&stale))
        .unwrap();
    forge_namespace(&file, here.ino ^ 1);
    let r = Segment::builder(K).name(&stale).size(64).create();
    assert!(
        matches!(r, Err(SegmentError::AlreadyExists { .. })),
        "{r:?}"
    );
    assert!(multiproc_core::sweep(&prefix).unwrap().is_empty());
    assert!(exists(&stale));
    forge_namespace(&file, here.ino);
    assert_eq!(multiproc_core::sweep(&prefix).unwrap(), vec![stale.clone()]);
    assert!(!exists(&stale));
}
