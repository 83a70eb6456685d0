//! Security of named segments through every higher-level open-by-name API:
//! segments are created 0600 and exclusively; a segment with a group- or
//! world-writable mode, one owned by another user, or a name that points
//! through a symlink is refused with a typed error; names are validated.

use multiproc_core::name::{path_of, unique_name};
use multiproc_core::object::ObjectError;
use multiproc_core::SegmentError;
use multiproc_queue::broadcast::{self, BroadcastRing};
use multiproc_queue::mpmc::{self, Mpmc};
use multiproc_queue::spsc::SpscRing;
use multiproc_sync::{Barrier, Condvar, Event, Mutex, ReentrantMutex, RwLock, Semaphore};
use std::any::Any;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// What an open or create came back with.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    InvalidName,
    AlreadyExists,
    InsecureMode,
    WrongOwner,
    NotRegular,
    Other(String),
}

fn of_segment(e: &SegmentError) -> Outcome {
    match e {
        SegmentError::InvalidName { .. } => Outcome::InvalidName,
        SegmentError::AlreadyExists { .. } => Outcome::AlreadyExists,
        SegmentError::InsecureMode { .. } => Outcome::InsecureMode,
        SegmentError::WrongOwner { .. } => Outcome::WrongOwner,
        SegmentError::NotRegular { .. } => Outcome::NotRegular,
        other => Outcome::Other(other.to_string()),
    }
}

fn sync<T>(r: Result<T, multiproc_sync::ObjectError>) -> Result<T, Outcome> {
    r.map_err(|e| match &e {
        multiproc_sync::ObjectError::Segment(s) => of_segment(s),
        other => Outcome::Other(other.to_string()),
    })
}

fn queue<T>(r: Result<T, ObjectError>) -> Result<T, Outcome> {
    r.map_err(|e| match &e {
        ObjectError::Segment(s) => of_segment(s),
        other => Outcome::Other(other.to_string()),
    })
}

fn outcome<T>(r: Result<T, Outcome>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(o) => o,
    }
}

type Created = Result<Box<dyn Any>, Outcome>;

/// One primitive's create and open by name.
struct Api {
    what: &'static str,
    create: fn(&str) -> Created,
    open: fn(&str) -> Outcome,
}

fn boxed<T: 'static>(r: Result<T, Outcome>) -> Created {
    r.map(|v| Box::new(v) as Box<dyn Any>)
}

const APIS: &[Api] = &[
    Api {
        what: "Mutex",
        create: |n| boxed(sync(Mutex::<u64>::create(n, 0))),
        open: |n| outcome(sync(Mutex::<u64>::open(n))),
    },
    Api {
        what: "ReentrantMutex",
        create: |n| boxed(sync(ReentrantMutex::<u64>::create(n, 0))),
        open: |n| outcome(sync(ReentrantMutex::<u64>::open(n))),
    },
    Api {
        what: "RwLock",
        create: |n| boxed(sync(RwLock::<u64>::create(n, 0))),
        open: |n| outcome(sync(RwLock::<u64>::open(n))),
    },
    Api {
        what: "Semaphore",
        create: |n| boxed(sync(Semaphore::create(n, 1))),
        open: |n| outcome(sync(Semaphore::open(n))),
    },
    Api {
        what: "Event",
        create: |n| boxed(sync(Event::create(n))),
        open: |n| outcome(sync(Event::open(n))),
    },
    Api {
        what: "Condvar",
        create: |n| boxed(sync(Condvar::create(n))),
        open: |n| outcome(sync(Condvar::open(n))),
    },
    Api {
        what: "Barrier",
        create: |n| boxed(sync(Barrier::create(n, 2))),
        open: |n| outcome(sync(Barrier::open(n))),
    },
    Api {
        what: "SpscRing",
        create: |n| boxed(queue(SpscRing::builder().name(n).capacity(1024).create())),
        open: |n| outcome(queue(SpscRing::open(n))),
    },
    Api {
        what: "Mpmc",
        create: |n| boxed(queue(Mpmc::create(n, mpmc::Config::new(4, 64)))),
        open: |n| outcome(queue(Mpmc::open(n))),
    },
    Api {
        what: "broadcast",
        create: |n| {
            boxed(queue(BroadcastRing::create(
                n,
                broadcast::Config::new(4, 64),
            )))
        },
        open: |n| outcome(queue(BroadcastRing::open(n))),
    },
];

/// Removes a path on drop (a symlink or a stray file), even when a check
/// fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn set_mode(name: &str, mode: u32) {
    std::fs::set_permissions(path_of(name), std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn segments_are_created_0600_and_exclusively() {
    for api in APIS {
        let name = unique_name("chaos-sec-excl");
        let held = (api.create)(&name).unwrap_or_else(|e| panic!("{}: create: {e:?}", api.what));
        let meta = std::fs::symlink_metadata(path_of(&name)).unwrap();
        assert_eq!(
            meta.mode() & 0o7777,
            0o600,
            "{}: mode {:o}",
            api.what,
            meta.mode()
        );
        // SAFETY: geteuid has no preconditions.
        assert_eq!(meta.uid(), unsafe { libc::geteuid() }, "{}", api.what);
        assert!(meta.file_type().is_file(), "{}", api.what);
        assert_eq!(
            outcome((api.create)(&name)),
            Outcome::AlreadyExists,
            "{}: a second create of a live name",
            api.what
        );
        assert_eq!((api.open)(&name), Outcome::Ok, "{}: open", api.what);
        drop(held);
        assert!(
            !path_of(&name).exists(),
            "{}: the creator's drop unlinks",
            api.what
        );
    }
}

#[test]
fn group_or_world_writable_segments_are_refused() {
    for api in APIS {
        let name = unique_name("chaos-sec-mode");
        let _held = (api.create)(&name).unwrap_or_else(|e| panic!("{}: create: {e:?}", api.what));
        for mode in [0o620, 0o602, 0o666, 0o622] {
            set_mode(&name, mode);
            assert_eq!(
                (api.open)(&name),
                Outcome::InsecureMode,
                "{}: mode {mode:o}",
                api.what
            );
        }
        // Readable by others but not writable is a choice of the creator,
        // not a hole; back to 0600 the same segment opens again.
        set_mode(&name, 0o600);
        assert_eq!((api.open)(&name), Outcome::Ok, "{}: back to 0600", api.what);
    }
}

#[test]
fn another_users_segment_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: changing a segment's owner needs root (running as a normal user)");
        return;
    }
    for api in APIS {
        let name = unique_name("chaos-sec-owner");
        let _held = (api.create)(&name).unwrap_or_else(|e| panic!("{}: create: {e:?}", api.what));
        let path = path_of(&name);
        std::os::unix::fs::chown(&path, Some(4242), Some(4242)).unwrap();
        assert_eq!((api.open)(&name), Outcome::WrongOwner, "{}", api.what);
        std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
        assert_eq!(
            (api.open)(&name),
            Outcome::Ok,
            "{}: owner restored",
            api.what
        );
    }
}

#[test]
fn names_pointing_through_a_symlink_are_refused() {
    let outside = std::env::temp_dir().join(unique_name("chaos-sec-outside"));
    std::fs::write(&outside, vec![0u8; 4096]).unwrap();
    let _outside = RemoveOnDrop(outside.clone());
    for api in APIS {
        let real = unique_name("chaos-sec-real");
        let _held = (api.create)(&real).unwrap_or_else(|e| panic!("{}: create: {e:?}", api.what));
        // To a live segment of the right kind, and to a file elsewhere.
        for target in [path_of(&real), outside.clone()] {
            let link = unique_name("chaos-sec-link");
            std::os::unix::fs::symlink(&target, path_of(&link)).unwrap();
            let _link = RemoveOnDrop(path_of(&link));
            assert_eq!(
                (api.open)(&link),
                Outcome::NotRegular,
                "{}: link to {}",
                api.what,
                target.display()
            );
            // Creating over the link is refused too (the name is taken, and
            // is no segment), and leaves the link as it was.
            let created = outcome((api.create)(&link));
            assert!(
                matches!(created, Outcome::AlreadyExists | Outcome::NotRegular),
                "{}: create over a symlink: {created:?}",
                api.what
            );
            assert!(std::fs::symlink_metadata(path_of(&link))
                .unwrap()
                .file_type()
                .is_symlink());
        }
        assert_eq!((api.open)(&real), Outcome::Ok, "{}", api.what);
    }
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        vec![0u8; 4096],
        "nothing wrote through a link"
    );
}

#[test]
fn names_are_validated() {
    let long = "x".repeat(multiproc_core::name::MAX_NAME_LEN + 1);
    let bad = [
        "",
        ".",
        "..",
        "a/b",
        "../../etc/passwd",
        "nul\0byte",
        "space name",
        "ünï",
        "a\nb",
        &long,
    ];
    let before: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for api in APIS {
        for name in bad {
            assert_eq!(
                (api.open)(name),
                Outcome::InvalidName,
                "{}: open {name:?}",
                api.what
            );
            assert_eq!(
                outcome((api.create)(name)),
                Outcome::InvalidName,
                "{}: create {name:?}",
                api.what
            );
        }
    }
    let after: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    // Only what the bad names themselves could have made: other tests of
    // this binary create segments of their own at the same time.
    let new: Vec<_> = after
        .iter()
        .filter(|n| !before.contains(n))
        .filter(|n| {
            n.to_str()
                .and_then(|s| s.strip_prefix("ipc."))
                .is_some_and(|rest| bad.contains(&rest) || rest.starts_with("xxxxxxxx"))
        })
        .collect();
    assert!(new.is_empty(), "bad names created {new:?}");
}
