//! Segments across real processes, crashes, and bad input.

mod common;
use common::{spawn, ForkInTest};
use multiproc_core::header::{layout_hash, HeaderError};
use multiproc_core::name::{path_of, unique_name};
use multiproc_core::process::{self, take_inherited_fd, test_exec_args, ExitStatus, Process};
use multiproc_core::{Kind, Segment, SegmentError};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const K: Kind = Kind::new("ipc-core-tests/cells", 1, layout_hash(&[8, 64]));

/// Removes `/dev/shm/ipc.<name>` on drop, for objects a test makes by hand.
struct NameGuard(String);

impl Drop for NameGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(path_of(&self.0));
    }
}

fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(path_of(name)).is_ok()
}

/// Waits (bounded) until `cond` holds; false if it never did.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

// ---------- children ----------

/// Opens the segment named by `args`, checks it, writes 1..=8 into cells.
fn child_open_and_write(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).expect("utf-8 name");
    let seg = match Segment::builder(K).name(name).size(64).open() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: {e}");
            return 2;
        }
    };
    if seg.is_creator() || seg.header().creator().pid == std::process::id() {
        return 3;
    }
    for i in 0..8u64 {
        seg.get::<AtomicU64>(i * 8)
            .expect("in bounds")
            .store(i + 1, Ordering::Release);
    }
    0
}

/// Maps the anonymous segment inherited as fd 0 and writes its pid.
fn child_inherited(_: &[u8]) -> i32 {
    let Some(fd) = take_inherited_fd(0) else {
        return 2;
    };
    if take_inherited_fd(0).is_some() {
        return 4; // handed out twice
    }
    let Ok(seg) = Segment::from_fd(fd, K) else {
        return 3;
    };
    seg.get::<AtomicU64>(0)
        .expect("in bounds")
        .store(u64::from(std::process::id()), Ordering::Release);
    0
}

/// Receives a segment over the inherited socket and writes into it.
fn child_receives_over_socket(_: &[u8]) -> i32 {
    let Some(fd) = take_inherited_fd(0) else {
        return 2;
    };
    let sock = UnixStream::from(fd);
    let seg = match Segment::receive(&sock, K) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: {e}");
            return 3;
        }
    };
    seg.get::<AtomicU64>(8)
        .expect("in bounds")
        .store(77, Ordering::Release);
    0
}

/// Creates the named segment, announces it, then waits to be killed.
fn child_create_and_hang(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).expect("utf-8 name");
    let seg = Segment::builder(K)
        .name(name)
        .size(64)
        .create()
        .expect("create");
    seg.get::<AtomicU64>(0)
        .expect("in bounds")
        .store(1, Ordering::Release);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts creating the named segment and hangs inside the initializer.
fn child_hang_in_init(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).expect("utf-8 name");
    let _ = Segment::builder(K)
        .name(name)
        .size(64)
        .create_with(|_| loop {
            std::thread::sleep(Duration::from_secs(1));
        });
    1
}

/// Races open_or_create; counts creators in the inherited anonymous segment
/// and holds its segment until every racer has one.
fn child_race(args: &[u8]) -> i32 {
    let (n, name) = (
        args[0] as u32,
        std::str::from_utf8(&args[1..]).expect("utf-8"),
    );
    let Some(fd) = take_inherited_fd(0) else {
        return 2;
    };
    let Ok(shared) = Segment::from_fd(fd, Kind::BYTES) else {
        return 3;
    };
    let seg = match Segment::builder(K).name(name).size(64).open_or_create() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: {e}");
            return 4;
        }
    };
    let creators: &AtomicU32 = shared.get(0).expect("in bounds");
    let arrived: &AtomicU32 = shared.get(4).expect("in bounds");
    if seg.is_creator() {
        creators.fetch_add(1, Ordering::AcqRel);
    }
    arrived.fetch_add(1, Ordering::AcqRel);
    if !eventually(|| arrived.load(Ordering::Acquire) >= n) {
        return 5;
    }
    drop(seg);
    0
}

// ---------- across processes ----------

#[test]
fn a_child_opens_by_name_checks_the_header_and_writes() {
    process::init();
    let name = unique_name("seg-name");
    let seg = Segment::builder(K).name(&name).size(64).create().unwrap();
    assert!(seg.is_creator());
    let child = spawn(
        "a_child_opens_by_name_checks_the_header_and_writes",
        child_open_and_write,
        name.as_bytes(),
    );
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    for i in 0..8u64 {
        assert_eq!(
            seg.get::<AtomicU64>(i * 8).unwrap().load(Ordering::Acquire),
            i + 1
        );
    }
    assert!(exists(&name), "an opener must not unlink");
    drop(seg);
    assert!(!exists(&name), "the creator unlinks on drop");
}

#[test]
fn a_spawned_child_maps_an_inherited_anonymous_segment() {
    process::init();
    let seg = Segment::builder(K).size(64).create().unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "a_spawned_child_maps_an_inherited_anonymous_segment",
        ))
        .inherit_fd(seg.fd())
        .spawn(child_inherited, b"")
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    assert_eq!(
        seg.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire),
        u64::from(child.pid())
    );
}

#[test]
fn anonymous_segments_are_sealed_against_resizing() {
    let seg = Segment::builder(K).size(64).create().unwrap();
    // SAFETY: F_GET_SEALS on a descriptor we own.
    let seals = unsafe { libc::fcntl(seg.fd().as_raw_fd(), libc::F_GET_SEALS) };
    assert_eq!(seals & libc::F_SEAL_SHRINK, libc::F_SEAL_SHRINK);
    assert_eq!(seals & libc::F_SEAL_GROW, libc::F_SEAL_GROW);
    // SAFETY: ftruncate on a descriptor we own; the seal makes it fail.
    assert_ne!(unsafe { libc::ftruncate(seg.fd().as_raw_fd(), 1 << 20) }, 0);
}

#[test]
fn a_segment_travels_over_a_unix_socket() {
    process::init();
    let seg = Segment::builder(K).size(64).create().unwrap();
    let (mine, theirs) = UnixStream::pair().unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args("a_segment_travels_over_a_unix_socket"))
        .inherit_fd(theirs.as_fd())
        .spawn(child_receives_over_socket, b"")
        .unwrap();
    drop(theirs);
    seg.send_over(&mine).unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    assert_eq!(seg.get::<AtomicU64>(8).unwrap().load(Ordering::Acquire), 77);
}

#[test]
fn a_killed_creator_leaves_a_name_that_create_reclaims() {
    process::init();
    let name = unique_name("seg-crash");
    let _guard = NameGuard(name.clone());
    let child = spawn(
        "a_killed_creator_leaves_a_name_that_create_reclaims",
        child_create_and_hang,
        name.as_bytes(),
    );
    assert!(eventually(|| Segment::builder(K)
        .name(&name)
        .open()
        .is_ok_and(|s| s
            .get::<AtomicU64>(0)
            .unwrap()
            .load(Ordering::Acquire)
            == 1)));
    // A live creator holds the name.
    assert!(matches!(
        Segment::builder(K).name(&name).size(64).create(),
        Err(SegmentError::AlreadyExists { .. })
    ));
    child.kill().unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Signal(libc::SIGKILL));
    assert!(exists(&name), "SIGKILL leaves the name behind");
    // Opening still works (the data is intact) ...
    let old = Segment::builder(K).name(&name).open().unwrap();
    assert_eq!(old.header().creator().pid, child.pid());
    // ... and creating by the same name reclaims it.
    let fresh = Segment::builder(K).name(&name).size(64).create().unwrap();
    assert!(fresh.is_creator());
    assert_eq!(
        fresh.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire),
        0
    );
    assert_eq!(
        old.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire),
        1,
        "old mapping stays valid"
    );
    drop(fresh);
    assert!(!exists(&name));
}

#[test]
fn a_creator_killed_during_init_is_reported_and_reclaimed() {
    process::init();
    let name = unique_name("seg-init");
    let _guard = NameGuard(name.clone());
    let child = spawn(
        "a_creator_killed_during_init_is_reported_and_reclaimed",
        child_hang_in_init,
        name.as_bytes(),
    );
    // Kill it once its header is written (the magic is the last field the
    // creator stores before running the initializer).
    assert!(eventually(
        || std::fs::read(path_of(&name)).is_ok_and(|b| b.len() >= 8 && b[..8] != [0u8; 8])
    ));
    child.kill().unwrap();
    child.join().unwrap();
    match Segment::builder(K)
        .name(&name)
        .open_timeout(Duration::from_secs(5))
        .open()
    {
        Err(SegmentError::CreatorDied { pid, .. }) => assert_eq!(pid, child.pid()),
        other => panic!("expected CreatorDied, got {other:?}"),
    }
    let seg = Segment::builder(K)
        .name(&name)
        .size(64)
        .open_or_create()
        .unwrap();
    assert!(
        seg.is_creator(),
        "open_or_create reclaims a dead creator's segment"
    );
}

#[test]
fn sweep_removes_dead_creators_segments_only() {
    process::init();
    let prefix = unique_name("sweep");
    let dead = [format!("{prefix}-a"), format!("{prefix}-b")];
    let _guards: Vec<NameGuard> = dead.iter().map(|n| NameGuard(n.clone())).collect();
    for n in &dead {
        let child = spawn(
            "sweep_removes_dead_creators_segments_only",
            child_create_and_hang,
            n.as_bytes(),
        );
        assert!(eventually(|| Segment::builder(K).name(n).open().is_ok_and(
            |s| s.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire) == 1
        )));
        child.kill().unwrap();
        child.join().unwrap();
    }
    let live_name = format!("{prefix}-live");
    let live = Segment::builder(K)
        .name(&live_name)
        .size(64)
        .create()
        .unwrap();
    let mut removed = multiproc_core::sweep(&prefix).unwrap();
    removed.sort();
    assert_eq!(removed, dead.to_vec());
    assert!(exists(&live_name));
    assert!(dead.iter().all(|n| !exists(n)));
    drop(live);
}

#[test]
fn racing_open_or_create_has_exactly_one_creator() {
    process::init();
    const N: u8 = 4;
    let name = unique_name("seg-race");
    let _guard = NameGuard(name.clone());
    let shared = Segment::builder(Kind::BYTES).size(64).create().unwrap();
    let mut args = vec![N];
    args.extend_from_slice(name.as_bytes());
    let children: Vec<Process> = (0..N)
        .map(|_| {
            Process::builder()
                .exec_args(test_exec_args(
                    "racing_open_or_create_has_exactly_one_creator",
                ))
                .inherit_fd(shared.fd())
                .spawn(child_race, &args)
                .unwrap()
        })
        .collect();
    for c in &children {
        assert_eq!(c.join().unwrap(), ExitStatus::Code(0));
    }
    assert_eq!(
        shared.get::<AtomicU32>(0).unwrap().load(Ordering::Acquire),
        1
    );
    assert!(!exists(&name), "the creator unlinked it");
}

#[test]
fn a_forked_child_never_unlinks_the_parents_segment() {
    let name = unique_name("seg-fork");
    let seg = Segment::builder(K).name(&name).size(64).create().unwrap();
    let child = Process::builder()
        .fork_in_test(|| {
            // The child's copy of `seg` is dropped when the child returns
            // through `_exit`... and a segment it opens itself is dropped here.
            let mine = Segment::builder(K)
                .name(&name)
                .open()
                .expect("open in child");
            drop(mine);
            0
        })
        .unwrap();
    assert!(child.join().unwrap().success());
    assert!(exists(&name));
    drop(seg);
    assert!(!exists(&name));
}

// ---------- bad input ----------

#[test]
fn bad_names_are_typed_errors() {
    for bad in ["", "a/b", "..", "white space", &"x".repeat(201)] {
        assert!(
            matches!(
                Segment::builder(K).name(bad).size(64).create(),
                Err(SegmentError::InvalidName { .. })
            ),
            "{bad:?}"
        );
        assert!(matches!(
            Segment::builder(K).name(bad).open(),
            Err(SegmentError::InvalidName { .. })
        ));
    }
    assert!(matches!(
        Segment::builder(K).open(),
        Err(SegmentError::InvalidName { .. })
    ));
}

#[test]
fn a_missing_name_is_not_found() {
    let name = unique_name("seg-missing");
    assert!(matches!(
        Segment::builder(K).name(&name).open(),
        Err(SegmentError::NotFound { .. })
    ));
}

#[test]
fn bad_sizes_are_typed_errors() {
    assert!(matches!(
        Segment::builder(K).size(0).create(),
        Err(SegmentError::InvalidSize { .. })
    ));
    assert!(matches!(
        Segment::builder(K).create(),
        Err(SegmentError::InvalidSize { .. })
    ));
    assert!(matches!(
        Segment::builder(K).size(usize::MAX).create(),
        Err(SegmentError::InvalidSize { .. })
    ));
}

#[test]
fn a_full_dev_shm_is_no_space_and_leaves_no_name() {
    // Far more than /dev/shm (or the machine) holds: refused before
    // anything is allocated.
    let name = unique_name("seg-full");
    let _guard = NameGuard(name.clone());
    let r = Segment::builder(K).name(&name).size(1 << 44).create();
    assert!(
        matches!(
            r,
            Err(SegmentError::NoSpace { .. })
                | Err(SegmentError::InsufficientMemory { .. })
                | Err(SegmentError::InvalidSize { .. })
        ),
        "{r:?}"
    );
    assert!(!exists(&name));
}

#[test]
fn each_header_mismatch_is_named() {
    let name = unique_name("seg-kind");
    let _seg = Segment::builder(K).name(&name).size(64).create().unwrap();
    let open = |kind: Kind, size: usize| Segment::builder(kind).name(&name).size(size).open();
    let header_err = |r: Result<Segment, SegmentError>| match r {
        Err(SegmentError::Header { source, .. }) => source,
        other => panic!("expected a header error, got {other:?}"),
    };
    assert!(matches!(
        header_err(open(
            Kind::new("ipc-core-tests/other", 1, K.layout_hash),
            64
        )),
        HeaderError::TypeTag { .. }
    ));
    assert!(matches!(
        header_err(open(Kind::new(K.name, 2, K.layout_hash), 64)),
        HeaderError::TypeVersion { .. }
    ));
    assert!(matches!(
        header_err(open(K.with_layout_hash(1), 64)),
        HeaderError::LayoutHash { .. }
    ));
    assert!(matches!(header_err(open(K, 65)), HeaderError::Size { .. }));
    assert!(open(K, 64).is_ok());
}

/// Makes a raw shared-memory object of `len` bytes filled with `byte`.
fn raw_object(name: &str, len: usize, byte: u8) {
    std::fs::write(path_of(name), vec![byte; len]).unwrap();
    let mut perms = std::fs::metadata(path_of(name)).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(path_of(name), perms).unwrap();
}

#[test]
fn a_foreign_object_is_bad_magic() {
    let name = unique_name("seg-magic");
    let _guard = NameGuard(name.clone());
    raw_object(&name, 4096, 0xab);
    match Segment::builder(K).name(&name).open() {
        Err(SegmentError::Header {
            source: HeaderError::BadMagic { found },
            ..
        }) => {
            assert_eq!(found, 0xabab_abab_abab_abab)
        }
        other => panic!("expected BadMagic, got {other:?}"),
    }
    // A foreign object is never reclaimed.
    assert!(matches!(
        Segment::builder(K).name(&name).size(64).create(),
        Err(SegmentError::AlreadyExists { .. })
    ));
}

#[test]
fn a_segment_that_never_becomes_ready_times_out() {
    let name = unique_name("seg-never");
    let _guard = NameGuard(name.clone());
    raw_object(&name, 4096, 0);
    let r = Segment::builder(K)
        .name(&name)
        .open_timeout(Duration::from_millis(30))
        .open();
    assert!(matches!(r, Err(SegmentError::NotReady { .. })), "{r:?}");
}

#[test]
fn a_poisoned_segment_is_refused_and_a_panicking_init_poisons() {
    let name = unique_name("seg-poison");
    let seg = Segment::builder(K).name(&name).size(64).create().unwrap();
    seg.poison();
    assert!(matches!(
        Segment::builder(K).name(&name).open(),
        Err(SegmentError::Poisoned { .. })
    ));
    drop(seg);

    let name = unique_name("seg-poison-init");
    let r = std::panic::catch_unwind(|| {
        Segment::builder(K)
            .name(&name)
            .size(64)
            .create_with(|_| panic!("init failed"))
    });
    assert!(r.is_err());
    assert!(!exists(&name), "a failed init leaves no name");
}

#[test]
fn insecure_modes_are_refused_on_create_and_open() {
    let name = unique_name("seg-mode");
    assert!(matches!(
        Segment::builder(K)
            .name(&name)
            .size(64)
            .mode(0o666)
            .create(),
        Err(SegmentError::InsecureMode { .. })
    ));
    assert!(!exists(&name));
    let seg = Segment::builder(K)
        .name(&name)
        .size(64)
        .mode(0o640)
        .create()
        .unwrap();
    assert!(
        Segment::builder(K).name(&name).open().is_ok(),
        "group-readable is fine"
    );
    // SAFETY: fchmod on a descriptor we own.
    assert_eq!(unsafe { libc::fchmod(seg.fd().as_raw_fd(), 0o622) }, 0);
    match Segment::builder(K).name(&name).open() {
        Err(SegmentError::InsecureMode { mode, .. }) => assert_eq!(mode, 0o622),
        other => panic!("expected InsecureMode, got {other:?}"),
    }
}

#[test]
fn another_users_segment_is_refused() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: giving a segment to another user needs root");
        return;
    }
    let name = unique_name("seg-owner");
    let seg = Segment::builder(K).name(&name).size(64).create().unwrap();
    // SAFETY: fchown on a descriptor we own.
    assert_eq!(unsafe { libc::fchown(seg.fd().as_raw_fd(), 4242, 4242) }, 0);
    match Segment::builder(K).name(&name).open() {
        Err(SegmentError::WrongOwner { owner, .. }) => assert_eq!(owner, 4242),
        other => panic!("expected WrongOwner, got {other:?}"),
    }
}

#[test]
fn a_symlinked_name_is_refused() {
    let target = unique_name("seg-target");
    let link = unique_name("seg-link");
    let _seg = Segment::builder(K).name(&target).size(64).create().unwrap();
    let _guard = NameGuard(link.clone());
    std::os::unix::fs::symlink(path_of(&target), path_of(&link)).unwrap();
    assert!(matches!(
        Segment::builder(K).name(&link).open(),
        Err(SegmentError::NotRegular { .. })
    ));
}

#[test]
fn prefaulted_segments_and_explicit_unlink() {
    let name = unique_name("seg-prefault");
    let seg = Segment::builder(K)
        .name(&name)
        .size(1 << 20)
        .prefault(true)
        .create()
        .unwrap();
    assert!(seg.payload_len() >= 1 << 20);
    seg.unlink().unwrap();
    assert!(!exists(&name));
    // A new segment may take the name; dropping the old one leaves it alone.
    let other = Segment::builder(K).name(&name).size(64).create().unwrap();
    drop(seg);
    assert!(exists(&name));
    drop(other);
    assert!(!exists(&name));
}

// ---------- descriptors from others ----------

/// A copy of `seg`'s bytes (a valid, ready segment image) in a new memfd
/// that carries no seals.
fn unsealed_copy(seg: &Segment) -> std::os::fd::OwnedFd {
    use std::io::{Read, Seek, Write};
    let mut image = Vec::new();
    let mut src = std::fs::File::from(seg.fd().try_clone_to_owned().unwrap());
    src.rewind().unwrap();
    src.read_to_end(&mut image).unwrap();
    assert_eq!(image.len(), seg.total_len());
    // SAFETY: a valid NUL-terminated name; memfd_create returns a new
    // descriptor or -1.
    let raw = unsafe { libc::memfd_create(c"unsealed-copy".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let mut dst = std::fs::File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) });
    dst.write_all(&image).unwrap();
    dst.into()
}

/// Shrinks the object behind `fd` to nothing, as a hostile sender would.
fn shrink(fd: &impl AsRawFd) {
    // SAFETY: ftruncate on a descriptor we hold.
    assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 0) }, 0);
}

#[test]
fn an_unsealed_memfd_holding_a_valid_segment_is_refused() {
    let seg = Segment::builder(K).size(64).create().unwrap();
    let fd = unsealed_copy(&seg);
    let keep = fd.try_clone().unwrap();
    let r = Segment::from_fd(fd, K);
    assert!(matches!(r, Err(SegmentError::Unsealed { .. })), "{r:?}");
    // The sender shrinks it now: nothing of ours maps it, nothing breaks.
    shrink(&keep);
    assert!(matches!(
        Segment::from_fd(keep, K),
        Err(SegmentError::Unsealed { .. })
    ));
}

#[test]
fn a_plain_file_holding_a_valid_segment_is_refused() {
    use std::io::{Read, Seek};
    let seg = Segment::builder(K).size(64).create().unwrap();
    let mut image = Vec::new();
    let mut src = std::fs::File::from(seg.fd().try_clone_to_owned().unwrap());
    src.rewind().unwrap();
    src.read_to_end(&mut image).unwrap();
    let path = std::env::temp_dir().join(unique_name("plain-segment"));
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(path.clone());
    std::fs::write(&path, &image).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let keep = file.try_clone().unwrap();
    let r = Segment::from_fd(file.into(), K);
    assert!(matches!(r, Err(SegmentError::Unsealed { .. })), "{r:?}");
    shrink(&keep);
}

#[test]
fn an_unsealed_memfd_received_over_a_socket_is_refused() {
    let seg = Segment::builder(K).size(64).create().unwrap();
    let fd = unsealed_copy(&seg);
    let (a, b) = UnixStream::pair().unwrap();
    multiproc_core::fdpass::send_fds(&a, &K.tag.to_le_bytes(), &[fd.as_fd()]).unwrap();
    let r = Segment::receive(&b, K);
    assert!(matches!(r, Err(SegmentError::Unsealed { .. })), "{r:?}");
    shrink(&fd);
    // A sealed one still travels.
    seg.send_over(&a).unwrap();
    assert!(Segment::receive(&b, K).is_ok());
}

#[test]
fn an_unsealed_descriptor_maps_only_by_explicit_choice() {
    let seg = Segment::builder(K).size(64).create().unwrap();
    seg.get::<AtomicU64>(0).unwrap().store(9, Ordering::Release);
    let fd = unsealed_copy(&seg);
    let copy = Segment::from_fd_unsealed(fd, K).unwrap();
    assert_eq!(copy.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire), 9);
}
