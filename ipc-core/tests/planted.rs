//! Objects a same-user peer plants at a segment's path (a FIFO, a symlink, a
//! directory), and a process with no free descriptor: dropping, unlinking and
//! sweeping neither block, nor give up silently, nor touch what is not ours.
//!
//! Every check that could hang runs in a spawned child; a child that has not
//! exited within a generous bound is killed and the test fails.

mod common;
use common::spawn;
use multiproc_core::name::{path_of, unique_name};
use multiproc_core::process::{self, ExitStatus, Process};
use multiproc_core::{Kind, Segment};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const K: Kind = Kind::new("ipc-core-tests/planted", 1, 0);

/// A child that has not exited by then is taken as hung.
const HANG_BOUND: Duration = Duration::from_secs(20);

/// Removes whatever this test made at `/dev/shm/ipc.<name>` (a file, a FIFO, a
/// symlink or an empty directory) on drop, also when the test fails.
struct PathGuard(String);

impl Drop for PathGuard {
    fn drop(&mut self) {
        let p = path_of(&self.0);
        if std::fs::remove_file(&p).is_err() {
            let _ = std::fs::remove_dir(&p);
        }
    }
}

fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(path_of(name)).is_ok()
}

/// What a peer plants at the path.
#[derive(Clone, Copy, Debug)]
enum Plant {
    Fifo,
    Symlink,
    Directory,
}

impl Plant {
    fn code(self) -> u8 {
        match self {
            Plant::Fifo => b'f',
            Plant::Symlink => b'l',
            Plant::Directory => b'd',
        }
    }

    fn from_code(c: u8) -> Option<Plant> {
        match c {
            b'f' => Some(Plant::Fifo),
            b'l' => Some(Plant::Symlink),
            b'd' => Some(Plant::Directory),
            _ => None,
        }
    }

    /// Makes the object at `name`'s path; a symlink points at `target`'s.
    fn make(self, name: &str, target: &str) -> std::io::Result<()> {
        let p = path_of(name);
        match self {
            Plant::Fifo => {
                let c = CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL");
                // SAFETY: `c` is a valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            }
            Plant::Symlink => std::os::unix::fs::symlink(path_of(target), p),
            Plant::Directory => std::fs::create_dir(p),
        }
    }

    fn is_there(self, name: &str) -> bool {
        let Ok(m) = std::fs::symlink_metadata(path_of(name)) else {
            return false;
        };
        let t = m.file_type();
        match self {
            Plant::Fifo => t.is_fifo(),
            Plant::Symlink => t.is_symlink(),
            Plant::Directory => t.is_dir(),
        }
    }
}

/// Joins `child`, killing it if it has not exited within [`HANG_BOUND`].
fn join_or_kill(child: &Process, what: &str) -> ExitStatus {
    match child.join_timeout(HANG_BOUND).expect("join") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.join();
            panic!("{what}: the child did not exit within {HANG_BOUND:?}: it hung");
        }
    }
}

// ---------- children ----------

/// Creates the named segment, then plays the peer: removes the name and
/// plants an object there. Then drops the segment (or unlinks it first, if
/// asked). Exit 0 when every call returned.
fn child_drop_over_plant(args: &[u8]) -> i32 {
    let (Some(&plant), Some(&unlink_first)) = (args.first(), args.get(1)) else {
        return 2;
    };
    let Some(plant) = Plant::from_code(plant) else {
        return 2;
    };
    let text = std::str::from_utf8(&args[2..]).expect("utf-8");
    let (name, target) = text.split_once(' ').expect("name and target");
    let seg = match Segment::builder(K).name(name).size(64).create() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: create: {e}");
            return 3;
        }
    };
    if std::fs::remove_file(path_of(name)).is_err() {
        return 4;
    }
    if let Err(e) = plant.make(name, target) {
        eprintln!("child: plant: {e}");
        return 5;
    }
    if unlink_first == b'u' {
        if let Err(e) = seg.unlink() {
            eprintln!("child: unlink: {e}");
            return 6;
        }
    }
    drop(seg);
    0
}

/// Lowers `RLIMIT_NOFILE`, creates the named segment, fills every free
/// descriptor, then drops the segment while none is free.
fn child_drop_without_descriptors(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).expect("utf-8");
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return 2;
    }
    let seg = match Segment::builder(K).name(name).size(64).create() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: create: {e}");
            return 3;
        }
    };
    let mut fillers = Vec::with_capacity(64);
    loop {
        // SAFETY: dup of a descriptor we hold open; the result, if any, is a
        // fresh descriptor we own.
        let fd = unsafe { libc::dup(seg.as_raw_fd()) };
        if fd < 0 {
            break;
        }
        // SAFETY: `fd` was just returned by dup and belongs to nobody else.
        fillers.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // SAFETY: dup as above; it must fail now.
    let probe = unsafe { libc::dup(0) };
    if probe >= 0 {
        return 4; // the table was not full
    }
    drop(seg);
    drop(fillers);
    0
}

/// Creates the named segment and exits without dropping it: a creator that
/// died and left its name behind.
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

// ---------- drop and unlink over a planted object ----------

fn drop_over(test: &str, plant: Plant, unlink_first: bool) {
    process::init();
    let name = unique_name("planted");
    let target = unique_name("planted-target");
    let _guards = (PathGuard(name.clone()), PathGuard(target.clone()));
    // A symlink points at a segment of someone else's, which must survive.
    let other = Segment::builder(K).name(&target).size(64).create().unwrap();
    let mut args = vec![plant.code(), if unlink_first { b'u' } else { b'd' }];
    args.extend_from_slice(format!("{name} {target}").as_bytes());
    let child = spawn(test, child_drop_over_plant, &args);
    let status = join_or_kill(&child, &format!("{plant:?}"));
    assert_eq!(status, ExitStatus::Code(0), "{plant:?}");
    assert!(plant.is_there(&name), "the planted {plant:?} was removed");
    assert!(exists(&target), "the symlink's target was removed");
    other
        .get::<AtomicU64>(0)
        .unwrap()
        .store(1, Ordering::Relaxed);
}

#[test]
fn dropping_a_segment_whose_name_is_now_a_fifo_returns() {
    drop_over(
        "dropping_a_segment_whose_name_is_now_a_fifo_returns",
        Plant::Fifo,
        false,
    );
}

#[test]
fn unlinking_a_segment_whose_name_is_now_a_fifo_returns() {
    drop_over(
        "unlinking_a_segment_whose_name_is_now_a_fifo_returns",
        Plant::Fifo,
        true,
    );
}

#[test]
fn dropping_a_segment_whose_name_is_now_a_symlink_leaves_it() {
    drop_over(
        "dropping_a_segment_whose_name_is_now_a_symlink_leaves_it",
        Plant::Symlink,
        false,
    );
}

#[test]
fn dropping_a_segment_whose_name_is_now_a_directory_leaves_it() {
    drop_over(
        "dropping_a_segment_whose_name_is_now_a_directory_leaves_it",
        Plant::Directory,
        true,
    );
}

// ---------- no free descriptor ----------

#[test]
fn a_segment_dropped_with_no_free_descriptor_removes_its_name() {
    process::init();
    let name = unique_name("planted-nofile");
    let _guard = PathGuard(name.clone());
    let child = spawn(
        "a_segment_dropped_with_no_free_descriptor_removes_its_name",
        child_drop_without_descriptors,
        name.as_bytes(),
    );
    assert_eq!(join_or_kill(&child, "nofile"), ExitStatus::Code(0));
    assert!(
        !exists(&name),
        "the creator's drop left its name behind when no descriptor was free"
    );
}

// ---------- sweep ----------

#[test]
fn sweep_skips_planted_objects_and_sweeps_the_rest() {
    process::init();
    let prefix = unique_name("planted-sweep");
    let n = |s: &str| format!("{prefix}-{s}");
    let names = [
        n("a-link"),
        n("a-dir"),
        n("stale"),
        n("z-link"),
        n("z-dir"),
        n("live"),
    ];
    let _guards: Vec<PathGuard> = names.iter().map(|s| PathGuard(s.clone())).collect();
    let live = Segment::builder(K)
        .name(n("live"))
        .size(64)
        .create()
        .unwrap();
    // Planted before the stale segment (in creation order, and so in
    // directory order on tmpfs) ...
    Plant::Symlink.make(&n("a-link"), &n("live")).unwrap();
    Plant::Directory.make(&n("a-dir"), "").unwrap();
    let child = spawn(
        "sweep_skips_planted_objects_and_sweeps_the_rest",
        child_create_and_vanish,
        n("stale").as_bytes(),
    );
    assert_eq!(join_or_kill(&child, "stale creator"), ExitStatus::Code(0));
    assert!(exists(&n("stale")));
    // ... and after it.
    Plant::Symlink.make(&n("z-link"), &n("live")).unwrap();
    Plant::Directory.make(&n("z-dir"), "").unwrap();
    let removed = multiproc_core::sweep(&prefix).expect("sweep skips what is not ours");
    assert_eq!(removed, vec![n("stale")]);
    assert!(!exists(&n("stale")));
    for (name, plant) in [
        (n("a-link"), Plant::Symlink),
        (n("a-dir"), Plant::Directory),
        (n("z-link"), Plant::Symlink),
        (n("z-dir"), Plant::Directory),
    ] {
        assert!(plant.is_there(&name), "sweep touched the planted {name}");
    }
    assert!(exists(&n("live")));
    drop(live);
}
