//! A process's own identity (pid and start time) is never a guess: a process
//! that has no free descriptor when it first needs its identity still records
//! the right one, or gets an error, never a wrong value that makes its peers
//! take it for dead.

mod common;
use common::spawn;
use multiproc_core::name::{path_of, unique_name};
use multiproc_core::process::{self, ExitStatus};
use multiproc_core::{Kind, ProcessId, Segment, SegmentError};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const K: Kind = Kind::new("ipc-core-tests/identity", 1, 0);

/// Removes `/dev/shm/ipc.<name>` on drop, also when the test fails.
struct NameGuard(String);

impl Drop for NameGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(path_of(&self.0));
    }
}

/// Lowers `RLIMIT_NOFILE` to 64 and takes every free descriptor; returns
/// them (dropping one frees it again).
fn fill_descriptor_table() -> Vec<OwnedFd> {
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut fillers = Vec::with_capacity(64);
    loop {
        // SAFETY: dup of stderr, which every test process has open; the
        // result, if any, is a fresh descriptor we own.
        let fd = unsafe { libc::dup(2) };
        if fd < 0 {
            break;
        }
        // SAFETY: `fd` was just returned by dup and belongs to nobody else.
        fillers.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    fillers
}

// ---------- children ----------

/// Takes every descriptor but one, creates the named segment (which uses the
/// last one), marks it, and waits to be killed.
fn child_create_with_one_descriptor(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).expect("utf-8");
    let mut fillers = fill_descriptor_table();
    drop(fillers.pop());
    let seg = match Segment::builder(K).name(name).size(64).create() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: create: {e}");
            return 3;
        }
    };
    seg.get::<AtomicU64>(0)
        .expect("in bounds")
        .store(1, Ordering::Release);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Forks while no descriptor is free; the forked copy (kept to raw calls)
/// exits 0 if its identity is refused as unknown, 1 if it got a value that is
/// not its own, 2 if it got its own (possible only if a descriptor was free).
fn child_fork_with_no_descriptor(_: &[u8]) -> i32 {
    let fillers = fill_descriptor_table();
    // SAFETY: the forked copy only calls ProcessId::current (raw syscalls on
    // a stack buffer when it fails, atomic loads otherwise) and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match ProcessId::current() {
            Err(_) => 0,
            // SAFETY: getpid has no preconditions.
            Ok(id) if id.pid != unsafe { libc::getpid() } as u32 => 1,
            Ok(id) if id.start_time <= 1 => 1,
            Ok(_) => 2,
        };
        // SAFETY: ending the forked copy without running anything else.
        unsafe { libc::_exit(code) };
    }
    drop(fillers);
    if pid < 0 {
        return 10;
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid || !libc::WIFEXITED(status) {
        return 11;
    }
    let code = libc::WEXITSTATUS(status);
    // Once a descriptor is free again, the identity is learned, and right.
    let later = ProcessId::current();
    if later.is_err() {
        return 12;
    }
    code
}

// ---------- tests ----------

#[test]
fn a_creator_short_of_descriptors_is_not_taken_for_dead() {
    process::init();
    let name = unique_name("identity");
    let _guard = NameGuard(name.clone());
    let child = spawn(
        "a_creator_short_of_descriptors_is_not_taken_for_dead",
        child_create_with_one_descriptor,
        name.as_bytes(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut opened = None;
    while Instant::now() < deadline {
        if let Ok(s) = Segment::builder(K).name(&name).open() {
            if s.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire) == 1 {
                opened = Some(s);
                break;
            }
        }
        if child.exit_status().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let seg = opened.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the child never created its segment: {:?}", child.join());
    });
    assert_eq!(seg.header().creator().pid, child.pid());
    let r = Segment::builder(K).name(&name).size(64).create();
    child.kill().unwrap();
    child.join().unwrap();
    assert!(
        matches!(r, Err(SegmentError::AlreadyExists { .. })),
        "a live creator's segment was reclaimed: {r:?}"
    );
}

#[test]
fn a_process_forked_with_no_free_descriptor_gets_an_error_not_a_guess() {
    process::init();
    let child = spawn(
        "a_process_forked_with_no_free_descriptor_gets_an_error_not_a_guess",
        child_fork_with_no_descriptor,
        b"",
    );
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
}

#[test]
fn the_identity_is_this_process() {
    let me = ProcessId::current().expect("a test process has free descriptors");
    assert_eq!(me.pid, std::process::id());
    assert!(me.start_time > 1);
    assert_eq!(ProcessId::of(me.pid), Some(me));
}
