//! `SharedList` and `SharedDict` across processes: a child that appends, a
//! child given the containers in its arguments, concurrent writers, full
//! containers, another item type, transactions, and corrupted bytes.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::name::unique_name;
use multiproc_core::process::{test_exec_args, Process};
use multiproc_core::{ExitStatus, Kind, Segment};
use multiproc_sync::{ContainerConfig, ContainerError, ObjectError, SharedDict, SharedList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Opens the named list and appends three strings.
fn append_child(args: &[u8]) -> i32 {
    let list = match SharedList::<String>::open(&arg_name(args)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("open: {e}");
            return 2;
        }
    };
    let pid = std::process::id();
    for i in 0..3 {
        if let Err(e) = list.push(format!("child {pid} item {i}")) {
            eprintln!("push: {e}");
            return 3;
        }
    }
    0
}

#[test]
fn a_child_appends_and_the_parent_sees_it() {
    multiproc_core::process::init();
    let name = unique_name("list-append");
    let list = SharedList::<String>::create(&name, ContainerConfig::default()).unwrap();
    list.push("parent".to_string()).unwrap();
    let child = spawn(
        "a_child_appends_and_the_parent_sees_it",
        append_child,
        &name_arg(&name),
    );
    assert_eq!(join(&child), ExitStatus::Code(0));
    let pid = child.pid();
    assert_eq!(
        list.to_vec().unwrap(),
        [
            "parent".to_string(),
            format!("child {pid} item 0"),
            format!("child {pid} item 1"),
            format!("child {pid} item 2"),
        ]
    );
    assert_eq!(list.slice(1..3).unwrap().len(), 2);
    drop(list);
    assert_no_leftover(&name);
}

/// Given both containers in its arguments: appends to the list, counts
/// into the dict, and returns what it saw.
fn started_child((list, dict): (SharedList<u64>, SharedDict<String, u64>)) -> (usize, u64) {
    list.push(100).expect("push");
    let seen = dict.get(&"parent".to_string()).expect("get").unwrap_or(0);
    dict.insert("child".to_string(), seen + 1).expect("insert");
    (list.len().expect("len"), seen)
}

#[test]
fn containers_passed_in_start_arguments_arrive_usable() {
    multiproc_core::process::init();
    let list = SharedList::<u64>::anonymous(ContainerConfig::default()).unwrap();
    let dict = SharedDict::<String, u64>::anonymous(ContainerConfig::new(16, 1024)).unwrap();
    list.extend((0..10).map(|i| i * i)).unwrap();
    dict.insert("parent".to_string(), 41).unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "containers_passed_in_start_arguments_arrive_usable",
        ))
        .start(started_child, (list.clone(), dict.clone()))
        .unwrap();
    assert_eq!(child.join().unwrap(), (11, 41));
    assert_eq!(list.get(10).unwrap(), 100);
    assert_eq!(dict.get(&"child".to_string()).unwrap(), Some(42));
    assert_eq!(dict.len().unwrap(), 2);
}

const PUSHES: u64 = 2000;

/// Pushes `PUSHES` numbers tagged with its slot (in the arguments), as
/// fast as it can, in single pushes and small transactions.
fn pusher(args: &[u8]) -> i32 {
    let text = arg_name(args);
    let Some((name, slot)) = text.split_once('\n') else {
        return 2;
    };
    let (Ok(list), Ok(slot)) = (SharedList::<u64>::open(name), slot.parse::<u64>()) else {
        return 2;
    };
    push_tagged(&list, slot).map_or(3, |()| 0)
}

fn push_tagged(list: &SharedList<u64>, slot: u64) -> Result<(), ContainerError> {
    let mut i = 0;
    while i < PUSHES {
        if i % 3 == 0 && i + 2 < PUSHES {
            list.extend([(slot << 32) | i, (slot << 32) | (i + 1)])?;
            i += 2;
        } else {
            list.push((slot << 32) | i)?;
            i += 1;
        }
    }
    Ok(())
}

#[test]
fn concurrent_writers_lose_nothing_and_duplicate_nothing() {
    multiproc_core::process::init();
    let name = unique_name("list-writers");
    let cfg = ContainerConfig::new(3 * PUSHES as usize, 3 * PUSHES as usize * 8);
    let list = SharedList::<u64>::create(&name, cfg).unwrap();
    let kids: Vec<_> = (1..=2)
        .map(|slot| {
            spawn(
                "concurrent_writers_lose_nothing_and_duplicate_nothing",
                pusher,
                format!("{name}\n{slot}").as_bytes(),
            )
        })
        .collect();
    push_tagged(&list, 0).unwrap();
    for k in &kids {
        assert_eq!(join(k), ExitStatus::Code(0));
    }
    let items = list.to_vec().unwrap();
    assert_eq!(items.len() as u64, 3 * PUSHES);
    for slot in 0..3u64 {
        // Each writer's items, in its order, exactly once.
        let mine: Vec<u64> = items
            .iter()
            .filter(|&&v| v >> 32 == slot)
            .map(|&v| v & 0xffff_ffff)
            .collect();
        assert_eq!(mine, (0..PUSHES).collect::<Vec<_>>(), "writer {slot}");
    }
    drop(list);
    assert_no_leftover(&name);
}

#[test]
fn full_containers_refuse_with_the_limit_and_change_nothing() {
    let list = SharedList::<u64>::anonymous(ContainerConfig::new(4, 1024)).unwrap();
    list.extend([1, 2, 3, 4]).unwrap();
    match list.push(5) {
        Err(ContainerError::CapacityFull { capacity: 4 }) => {}
        other => panic!("{other:?}"),
    }
    list.pop().unwrap();
    assert!(matches!(
        list.extend([7, 8]),
        Err(ContainerError::CapacityFull { capacity: 4 })
    ));
    assert_eq!(list.to_vec().unwrap(), [1, 2, 3], "extend is all or none");

    let strings = SharedList::<String>::anonymous(ContainerConfig::new(100, 64)).unwrap();
    strings.push("a".repeat(30)).unwrap();
    match strings.push("b".repeat(40)) {
        Err(ContainerError::ArenaFull {
            arena_bytes: 64,
            needed: 41,
            available: 33,
        }) => {}
        other => panic!("{other:?}"),
    }
    match strings.push("c".repeat(100)) {
        Err(ContainerError::ItemTooLarge {
            size: 101,
            arena_bytes: 64,
        }) => {}
        other => panic!("{other:?}"),
    }
    // Space freed by a pop is found again (by compaction).
    strings.pop().unwrap();
    strings.push("d".repeat(60)).unwrap();
    assert_eq!(strings.len().unwrap(), 1);

    let dict = SharedDict::<u32, String>::anonymous(ContainerConfig::new(2, 4096)).unwrap();
    dict.insert(1, "one".into()).unwrap();
    dict.insert(2, "two".into()).unwrap();
    assert!(matches!(
        dict.insert(3, "three".into()),
        Err(ContainerError::CapacityFull { capacity: 2 })
    ));
    // Replacing a key needs no new entry.
    assert_eq!(dict.insert(2, "deux".into()).unwrap(), Some("two".into()));
    assert_eq!(dict.len().unwrap(), 2);
    let e = dict.insert(9, "x".into()).unwrap_err();
    assert!(e.to_string().contains("at most 2 entries"), "{e}");

    assert!(matches!(
        SharedList::<u64>::anonymous(ContainerConfig::new(0, 64)),
        Err(ObjectError::InvalidConfig { .. })
    ));
}

#[test]
fn another_item_type_is_refused_on_open() {
    let name = unique_name("list-type");
    let _list = SharedList::<u64>::create(&name, ContainerConfig::default()).unwrap();
    match SharedList::<String>::open(&name) {
        Err(ObjectError::WrongObject { detail, .. }) => {
            assert!(detail.contains("String"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(SharedList::<i64>::open(&name).is_err());
    assert!(
        SharedDict::<u64, u64>::open(&name).is_err(),
        "a list is no dict"
    );
    assert!(SharedList::<u64>::open(&name).is_ok());
    let dname = unique_name("dict-type");
    let _dict = SharedDict::<String, u64>::create(&dname, ContainerConfig::default()).unwrap();
    assert!(SharedDict::<String, u32>::open(&dname).is_err());
    assert!(SharedDict::<u64, u64>::open(&dname).is_err());
    assert!(SharedDict::<String, u64>::open(&dname).is_ok());
}

#[test]
fn transactions_are_all_or_nothing() {
    let dict = SharedDict::<String, i64>::anonymous(ContainerConfig::default()).unwrap();
    dict.extend([("a".to_string(), 10), ("b".to_string(), 0)])
        .unwrap();
    let r: Result<(), ContainerError> = dict.transaction(|tx| {
        tx.insert("a".to_string(), 5)?;
        tx.insert("b".to_string(), 5)?;
        tx.remove(&"a".to_string())?;
        Err(ContainerError::TimedOut) // any error: nothing happened
    });
    assert!(r.is_err());
    let mut items = dict.items().unwrap();
    items.sort();
    assert_eq!(items, [("a".to_string(), 10), ("b".to_string(), 0)]);
    // The same container inside its own transaction: a typed error.
    let r = dict.transaction(|_| dict.len());
    assert!(matches!(r, Err(ContainerError::WouldDeadlock)), "{r:?}");
    // Another container inside a transaction is fine.
    let log = SharedList::<String>::anonymous(ContainerConfig::default()).unwrap();
    dict.transaction(|tx| {
        let a = tx.get(&"a".to_string())?.unwrap_or(0);
        log.push(format!("a was {a}"))?;
        tx.insert("a".to_string(), a + 1).map(drop)
    })
    .unwrap();
    assert_eq!(log.to_vec().unwrap(), ["a was 10"]);
    assert_eq!(dict.get(&"a".to_string()).unwrap(), Some(11));
    // A panic inside a transaction rolls it back too.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = dict.transaction(|tx| {
            tx.clear()?;
            panic!("in the middle");
            #[allow(unreachable_code)]
            Ok(())
        });
    }));
    assert!(caught.is_err());
    assert_eq!(dict.len().unwrap(), 2);
}

#[test]
fn the_list_operations_match_a_vec() {
    let list = SharedList::<String>::anonymous(ContainerConfig::new(64, 2048)).unwrap();
    let mut model: Vec<String> = Vec::new();
    for i in 0..40 {
        let s = format!("s{i}");
        list.push(s.clone()).unwrap();
        model.push(s);
    }
    list.insert(3, "inserted".into()).unwrap();
    model.insert(3, "inserted".into());
    let removed = model.remove(10);
    assert_eq!(list.remove(10).unwrap(), removed);
    list.set(0, "zero".into()).unwrap();
    model[0] = "zero".into();
    assert_eq!(list.pop().unwrap(), model.pop());
    assert_eq!(list.to_vec().unwrap(), model);
    assert_eq!(list.slice(2..=4).unwrap(), model[2..=4]);
    assert_eq!(list.slice(..3).unwrap(), model[..3]);
    assert!(list.contains(&"inserted".to_string()).unwrap());
    let s5 = "s5".to_string();
    assert_eq!(
        list.position(&s5).unwrap(),
        model.iter().position(|s| *s == s5)
    );
    assert_eq!(list.position(&removed).unwrap(), None, "removed");
    assert!(matches!(
        list.get(model.len()),
        Err(ContainerError::OutOfRange { .. })
    ));
    assert!(matches!(
        list.slice(5..100),
        Err(ContainerError::OutOfRange { index: 100, .. })
    ));
    assert!(matches!(
        list.insert(100, "x".into()),
        Err(ContainerError::OutOfRange { index: 100, .. })
    ));
    assert_eq!(list.iter().unwrap().count(), model.len());
    list.clear().unwrap();
    assert!(list.is_empty().unwrap());
    assert_eq!(list.pop().unwrap(), None);
}

#[test]
fn containers_at_offsets_of_one_segment() {
    let seg = Arc::new(
        Segment::builder(Kind::BYTES)
            .size(1 << 20)
            .create()
            .unwrap(),
    );
    let cfg = ContainerConfig::new(32, 1024);
    let list = SharedList::<u32>::init_at(Arc::clone(&seg), 0, cfg).unwrap();
    let off = 128 * 1024;
    let dict = SharedDict::<u32, u32>::init_at(Arc::clone(&seg), off, cfg).unwrap();
    list.push(7).unwrap();
    dict.insert(1, 2).unwrap();
    assert_eq!(
        SharedList::<u32>::at(Arc::clone(&seg), 0)
            .unwrap()
            .get(0)
            .unwrap(),
        7
    );
    assert_eq!(
        SharedDict::<u32, u32>::at(Arc::clone(&seg), off)
            .unwrap()
            .get(&1)
            .unwrap(),
        Some(2)
    );
    assert!(SharedList::<u32>::at(Arc::clone(&seg), off).is_err());
    assert!(SharedList::<u32>::at(Arc::clone(&seg), 64 * 1024).is_err());
}

#[test]
fn a_forked_child_uses_an_anonymous_dict() {
    let dict = SharedDict::<u64, u64>::anonymous(ContainerConfig::new(64, 4096)).unwrap();
    dict.insert(0, 1).unwrap();
    let child = Process::builder().fork_in_test(|| {
        let ok = (1..50).all(|k| dict.insert(k, k * k).is_ok());
        i32::from(ok)
    });
    assert_eq!(join(&child), ExitStatus::Code(1));
    assert_eq!(dict.len().unwrap(), 50);
    assert_eq!(dict.get(&7).unwrap(), Some(49));
    let snap = dict.snapshot().unwrap();
    assert_eq!(
        snap.values().sum::<u64>(),
        1 + (1..50u64).map(|k| k * k).sum::<u64>()
    );
}

// ---- corrupted bytes ----

/// Offsets in a container's memory (its layout, documented in
/// `multiproc_sync::raw::store`).
const LEN: u64 = 136;
const TOP: u64 = 144;
const JOURNAL_LEN: u64 = 168;
const JOURNAL: u64 = 256;

fn word(seg: &Segment, off: u64) -> &AtomicU64 {
    seg.get::<AtomicU64>(off).unwrap()
}

/// Where the active index bank of a list or dict of `cfg` starts.
fn index0(cfg: ContainerConfig) -> u64 {
    JOURNAL + cfg.journal_entries as u64 * 16
}

#[test]
fn corrupted_words_are_typed_errors() {
    let cfg = ContainerConfig::new(8, 256);
    let list = SharedList::<String>::anonymous(cfg).unwrap();
    list.extend(["a".to_string(), "bc".to_string()]).unwrap();
    let seg = Arc::clone(list.segment());
    let corrupted = |r: Result<Vec<String>, ContainerError>| match r {
        Err(ContainerError::Corrupted { detail }) => detail,
        other => panic!("expected Corrupted, got {other:?}"),
    };

    // A length beyond the capacity.
    word(&seg, LEN).store(9, Ordering::Relaxed);
    assert!(corrupted(list.to_vec()).contains("len 9"));
    word(&seg, LEN).store(2, Ordering::Relaxed);
    // A top beyond the arena.
    word(&seg, TOP).store(1 << 40, Ordering::Relaxed);
    assert!(corrupted(list.to_vec()).contains("top"));
    word(&seg, TOP).store(5, Ordering::Relaxed);
    assert_eq!(list.to_vec().unwrap(), ["a", "bc"]);
    // A slot pointing past the top.
    let slot1 = index0(cfg) + 8;
    let saved = word(&seg, slot1).load(Ordering::Relaxed);
    word(&seg, slot1).store(1000 | (4 << 32), Ordering::Relaxed);
    assert!(corrupted(list.to_vec()).contains("beyond the arena's top"));
    assert!(list.get(0).is_ok(), "the other item is still read");
    word(&seg, slot1).store(saved, Ordering::Relaxed);
    // Item bytes that do not decode.
    let arena0 = index0(cfg) + 2 * 8 * 8;
    seg.get::<std::sync::atomic::AtomicU8>(arena0 + 2)
        .unwrap()
        .store(0xff, Ordering::Relaxed);
    assert!(matches!(list.get(1), Err(ContainerError::Decode(_))));
    assert_eq!(list.get(0).unwrap(), "a");

    // A journal naming a word outside the container: not recoverable,
    // for everybody, for ever.
    word(&seg, JOURNAL).store(8, Ordering::Relaxed); // the lock's owner
    word(&seg, JOURNAL_LEN).store(1, Ordering::Relaxed);
    assert!(matches!(list.len(), Err(ContainerError::NotRecoverable)));
    assert!(matches!(
        list.push("x".into()),
        Err(ContainerError::NotRecoverable)
    ));
    let again = SharedList::<String>::at(Arc::clone(&seg), 0).unwrap();
    assert!(matches!(again.len(), Err(ContainerError::NotRecoverable)));
}

#[test]
fn a_dirty_journal_is_rolled_back_by_the_next_user() {
    // What a holder killed after changing `len` leaves behind: the old
    // value in the journal, the new one in place.
    let cfg = ContainerConfig::new(8, 256);
    let list = SharedList::<u32>::anonymous(cfg).unwrap();
    list.extend([1, 2, 3]).unwrap();
    let seg = Arc::clone(list.segment());
    word(&seg, JOURNAL).store(LEN, Ordering::Relaxed);
    word(&seg, JOURNAL + 8).store(3, Ordering::Relaxed);
    word(&seg, JOURNAL_LEN).store(1, Ordering::Relaxed);
    word(&seg, LEN).store(1, Ordering::Relaxed);
    assert_eq!(list.to_vec().unwrap(), [1, 2, 3]);
    assert_eq!(list.recoveries(), 1);
    assert_eq!(word(&seg, JOURNAL_LEN).load(Ordering::Relaxed), 0);
}

/// A tiny generator for the scribbling test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_scribbles_give_values_or_typed_errors_never_a_panic() {
    let cfg = ContainerConfig::new(16, 512);
    let mut rng = XorShift(0x5eed_1234_abcd);
    let mut errors = 0;
    for round in 0..300 {
        let dict = SharedDict::<String, u64>::anonymous(cfg)
            .unwrap()
            .with_timeout(Duration::from_secs(5));
        for k in 0..8u64 {
            dict.insert(format!("key {k}"), k).unwrap();
        }
        let seg = Arc::clone(dict.segment());
        let end = seg.payload_len() as u64;
        for _ in 0..1 + round % 4 {
            // Mostly the header, journal and index; sometimes anywhere.
            let off = match rng.next() % 4 {
                0 => 128 + rng.next() % 64,
                1 => JOURNAL + rng.next() % (16 * 64),
                2 => index0(cfg) + rng.next() % (2 * 32 * 16),
                _ => rng.next() % end,
            } & !7;
            let v = match rng.next() % 5 {
                0 => 0,
                1 => u64::MAX,
                2 => rng.next() % 4096,
                3 => 1,
                _ => rng.next(),
            };
            // Not the lock word (a scribbled holder is the mutex's own
            // business, tested with it).
            if off >= 24 {
                word(&seg, off).store(v, Ordering::Relaxed);
            }
        }
        let results = [
            dict.get(&"key 3".to_string()).map(drop),
            dict.insert("new".to_string(), 1).map(drop),
            dict.remove(&"key 5".to_string()).map(drop),
            dict.items().map(drop),
            dict.len().map(drop),
            dict.clear(),
        ];
        errors += results.iter().filter(|r| r.is_err()).count();
    }
    assert!(errors > 0, "the scribbles were never noticed");
}

#[test]
fn a_named_container_travels_as_a_message_and_is_checked_on_arrival() {
    use multiproc_core::message::Message;
    let name = unique_name("list-msg");
    let list = SharedList::<u64>::create(&name, ContainerConfig::new(8, 64)).unwrap();
    let mut bytes = Vec::new();
    list.encode(&mut bytes).unwrap();
    let back = SharedList::<u64>::decode(&bytes).unwrap();
    back.push(3).unwrap();
    assert_eq!(list.to_vec().unwrap(), [3]);
    assert!(
        SharedList::<String>::decode(&bytes).is_err(),
        "another type"
    );
    assert!(
        SharedDict::<u64, u64>::decode(&bytes).is_err(),
        "another kind"
    );
    drop((list, back));
    assert!(SharedList::<u64>::decode(&bytes).is_err(), "gone");
    assert_no_leftover(&name);
    // An anonymous one only travels in a child's arguments.
    let anon = SharedDict::<u64, u64>::anonymous(ContainerConfig::new(8, 64)).unwrap();
    assert!(matches!(
        anon.encode(&mut Vec::new()),
        Err(multiproc_core::message::EncodeError::Handle(_))
    ));
}
