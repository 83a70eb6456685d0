//! In a process confined by a memory cgroup, rings and segments too large
//! for it are typed errors, not kills by the OOM killer.
//!
//! The test makes a memory cgroup of 256 MiB below its own (it needs root
//! and a mounted memory controller; otherwise it is skipped with the reason
//! printed), starts a child that moves itself into it, and has the child ask
//! for each size. A child killed by a signal fails the test.

use multiproc_core::name::unique_name;
use multiproc_core::object::ObjectError;
use multiproc_core::process::{self, test_exec_args, ExitStatus, Process};
use multiproc_core::{Kind, Segment, SegmentError};
use multiproc_queue::broadcast::{self, BroadcastRing};
use multiproc_queue::mpmc::{self, Mpmc};
use multiproc_queue::queue::Queue;
use multiproc_queue::spsc::SpscRing;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: u64 = 256 << 20;

/// A memory cgroup made for one test, removed on drop.
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    /// Makes a child cgroup of this process's memory cgroup with `limit`
    /// bytes, or says why it cannot.
    fn create(limit: u64) -> Result<Cgroup, String> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let mine = cgroups
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, ctrl, path) = (p.next()?, p.next()?, p.next()?);
                ctrl.split(',')
                    .any(|c| c == "memory")
                    .then(|| path.to_owned())
            })
            .ok_or("no cgroup v1 memory controller for this process")?;
        let (root, mount) = mountinfo
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let f: Vec<&str> = left.split(' ').collect();
                let r: Vec<&str> = right.split(' ').collect();
                (r.first() == Some(&"cgroup") && r.get(2)?.split(',').any(|o| o == "memory"))
                    .then(|| (f[3].to_owned(), f[4].to_owned()))
            })
            .ok_or("the memory controller is not mounted")?;
        let rel = mine
            .strip_prefix(root.trim_end_matches('/'))
            .ok_or("this process's memory cgroup is not under the mount")?
            .trim_start_matches('/');
        let dir = Path::new(&mount)
            .join(rel)
            .join(unique_name("ipc-test-memory"));
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cg = Cgroup { dir };
        std::fs::write(cg.dir.join("memory.limit_in_bytes"), limit.to_string())
            .map_err(|e| format!("setting the limit: {e}"))?;
        Ok(cg)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Its members have exited; the kernel may take a moment to let go.
        for _ in 0..500 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("could not remove the test cgroup {}", self.dir.display());
    }
}

/// Whether an error is one of the typed refusals of a size.
fn refused_segment(e: &SegmentError) -> bool {
    matches!(
        e,
        SegmentError::InsufficientMemory { .. }
            | SegmentError::NoSpace { .. }
            | SegmentError::InvalidSize { .. }
    )
}

fn refused(e: &ObjectError) -> bool {
    match e {
        ObjectError::InvalidConfig { .. } => true,
        ObjectError::Segment(s) => refused_segment(s),
        _ => false,
    }
}

/// Moves itself into the cgroup at `args`, then asks for every size; prints
/// each outcome and exits 0 if each was a typed refusal (and a small
/// segment still fits), 1 otherwise.
fn child_in_cgroup(args: &[u8]) -> i32 {
    let dir = PathBuf::from(std::str::from_utf8(args).expect("utf-8 path"));
    if let Err(e) = std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()) {
        eprintln!("child: joining the cgroup: {e}");
        return 2;
    }
    let mut ok = true;
    let mut check = |what: &str, outcome: Result<(), String>| {
        println!("{what}: {outcome:?}");
        ok &= outcome.is_ok();
    };
    let seg = |r: Result<Segment, SegmentError>| match r {
        Ok(_) => Err("created".to_owned()),
        Err(e) if refused_segment(&e) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    fn ring<T>(r: Result<T, ObjectError>) -> Result<(), String> {
        match r {
            Ok(_) => Err("created".to_owned()),
            Err(e) if refused(&e) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
    check(
        "anonymous segment of 2^40 bytes",
        seg(Segment::builder(Kind::BYTES).size(1 << 40).create()),
    );
    check(
        "anonymous segment of 512 MiB",
        seg(Segment::builder(Kind::BYTES).size(512 << 20).create()),
    );
    let name = unique_name("memory-limits");
    check(
        "named segment of 512 MiB",
        seg(Segment::builder(Kind::BYTES)
            .name(&name)
            .size(512 << 20)
            .create()),
    );
    check(
        "Mpmc of 2^30 slots of 2^30 bytes",
        ring(Mpmc::anonymous(mpmc::Config::new(1 << 30, 1 << 30))),
    );
    check(
        "Mpmc of 2^20 slots of 2^20 bytes",
        ring(Mpmc::anonymous(mpmc::Config::new(1 << 20, 1 << 20))),
    );
    check(
        "broadcast of 2^30 slots of 2^20 bytes",
        ring(BroadcastRing::anonymous(broadcast::Config::new(
            1 << 30,
            1 << 20,
        ))),
    );
    check(
        "Queue::<u64> of 2^30 slots",
        ring(Queue::<u64>::new(1 << 30)),
    );
    check(
        "SPSC ring of 2 GiB",
        ring(SpscRing::builder().capacity(1 << 31).create()),
    );
    check(
        "anonymous segment of 16 MiB (fits)",
        Segment::builder(Kind::BYTES)
            .size(16 << 20)
            .create()
            .map(drop)
            .map_err(|e| e.to_string()),
    );
    i32::from(!ok)
}

#[test]
fn sizes_a_memory_cgroup_cannot_hold_are_typed_errors() {
    process::init();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: making a memory cgroup needs root");
        return;
    }
    let cg = match Cgroup::create(LIMIT) {
        Ok(cg) => cg,
        Err(why) => {
            println!("skipped: cannot make a memory cgroup: {why}");
            return;
        }
    };
    let child = Process::builder()
        .exec_args(test_exec_args(
            "sizes_a_memory_cgroup_cannot_hold_are_typed_errors",
        ))
        .spawn(child_in_cgroup, cg.dir.as_os_str().as_encoded_bytes())
        .expect("spawn");
    let status = match child.join_timeout(Duration::from_secs(120)).unwrap() {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.join();
            panic!("the child in the cgroup did not finish");
        }
    };
    assert_eq!(
        status,
        ExitStatus::Code(0),
        "each size must be a typed error (a signal is the OOM killer); see the child's output"
    );
}

#[test]
fn sizes_that_overflow_are_typed_errors_before_any_allocation() {
    let r = SpscRing::builder().max_message_len(usize::MAX).create();
    assert!(matches!(r, Err(ObjectError::InvalidConfig { .. })), "{r:?}");
    let r = SpscRing::builder().capacity(usize::MAX).create();
    assert!(matches!(r, Err(ObjectError::InvalidConfig { .. })), "{r:?}");
    let r = Mpmc::anonymous(mpmc::Config::new(usize::MAX, usize::MAX));
    assert!(matches!(r, Err(ObjectError::InvalidConfig { .. })), "{r:?}");
    let r = Mpmc::anonymous(mpmc::Config::new(1 << 30, usize::MAX));
    assert!(matches!(r, Err(ObjectError::InvalidConfig { .. })), "{r:?}");
    let r = BroadcastRing::anonymous(broadcast::Config::new(usize::MAX, 1 << 20));
    assert!(matches!(r, Err(ObjectError::InvalidConfig { .. })), "{r:?}");
    let r = multiproc_queue::pipe::Pipe::builder()
        .capacity(usize::MAX)
        .create();
    assert!(matches!(r, Err(ObjectError::InvalidConfig { .. })), "{r:?}");
    let r = Queue::<u64>::new(usize::MAX);
    assert!(matches!(r, Err(ObjectError::InvalidConfig { .. })), "{r:?}");
}
