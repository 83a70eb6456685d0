//! A writer SIGKILLed again and again in the middle of its updates: the
//! survivors' view of the list and the dict is always one a whole number of
//! updates made, and nobody waits for ever.
//!
//! The list always holds `0, 1, .., len - 1` (every update keeps that true:
//! a push of `len`, a pop, a set of `i` to `i`, an insert in the middle
//! undone by a remove in the same transaction, a clear). The dict holds up
//! to `KEYS` entries `k -> v` and two more, `SUM` and `COUNT`, that every
//! transaction keeps equal to the sum of the values and the number of
//! entries. Small arenas make the writer compact, shift long ranges and
//! rehash all the time, so kills land in rebuilds too.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::name::unique_name;
use multiproc_sync::{ContainerConfig, ContainerError, SharedDict, SharedList};
use std::time::{Duration, Instant};

const KEYS: u64 = 48;
const SUM: u64 = 1_000_000;
const COUNT: u64 = 1_000_001;
const LIST_CAP: usize = 160;

fn list_config() -> ContainerConfig {
    // Room for the longest list, and little more: compactions are frequent.
    ContainerConfig::new(LIST_CAP, LIST_CAP * 9 + 64)
}

fn dict_config() -> ContainerConfig {
    ContainerConfig::new(KEYS as usize + 2, 48 * 20).with_journal_entries(32)
}

/// A tiny generator, seeded by the pid.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One update of the list that keeps it `0..len`.
fn list_update(list: &SharedList<u64>, rng: &mut XorShift) -> Result<(), ContainerError> {
    let op = rng.below(10);
    let at = rng.below(1 << 20);
    list.transaction(|tx| {
        let len = tx.len() as u64;
        match op {
            0..=4 if len < LIST_CAP as u64 - 1 => tx.push(len),
            0..=4 => tx.clear(),
            5 => tx.pop().map(drop),
            6 if len > 0 => tx.set((at % len) as usize, at % len),
            _ if len > 1 && len + 2 <= LIST_CAP as u64 => {
                // Near the front: a long shift (copied into the other bank).
                let i = (at % 4.min(len)) as usize;
                tx.insert(i, u64::MAX)?;
                tx.insert(i + 1, u64::MAX - 1)?;
                tx.remove(i + 1)?;
                tx.remove(i).map(drop)
            }
            _ if len < LIST_CAP as u64 => tx.push(len),
            _ => tx.clear(),
        }
    })
}

/// One update of the dict that keeps `SUM` and `COUNT` true.
fn dict_update(dict: &SharedDict<u64, u64>, rng: &mut XorShift) -> Result<(), ContainerError> {
    let key = rng.below(KEYS);
    let value = rng.below(1000);
    let replace = rng.below(3) == 0;
    dict.transaction(|tx| {
        let sum = tx.get(&SUM)?.unwrap_or(0);
        let count = tx.get(&COUNT)?.unwrap_or(0);
        let (sum, count) = match tx.get(&key)? {
            Some(old) if replace => {
                tx.insert(key, value)?;
                (sum - old + value, count)
            }
            Some(old) => {
                tx.remove(&key)?;
                (sum - old, count - 1)
            }
            None => {
                tx.insert(key, value)?;
                (sum + value, count + 1)
            }
        };
        tx.insert(SUM, sum)?;
        tx.insert(COUNT, count).map(drop)
    })
}

/// Updates the list and the dict (named in the arguments) until killed.
fn writer(args: &[u8]) -> i32 {
    let text = arg_name(args);
    let Some((lname, dname)) = text.split_once('\n') else {
        return 2;
    };
    let (Ok(list), Ok(dict)) = (
        SharedList::<u64>::open(lname),
        SharedDict::<u64, u64>::open(dname),
    ) else {
        return 2;
    };
    let mut rng = XorShift(u64::from(std::process::id()) * 0x9e37_79b9 + 1);
    loop {
        let r = if rng.below(2) == 0 {
            list_update(&list, &mut rng)
        } else {
            dict_update(&dict, &mut rng)
        };
        if let Err(e) = r {
            eprintln!("writer: {e}");
            return 3;
        }
    }
}

/// What the survivors must see, each container read in one transaction:
/// the list is `0..len`; the dict's `SUM` and `COUNT` match its other
/// entries, all of them below `KEYS`.
fn check(list: &SharedList<u64>, dict: &SharedDict<u64, u64>) {
    let (items, len) = list
        .transaction(|tx| Ok((tx.to_vec()?, tx.len())))
        .expect("the list reads");
    assert_eq!(items.len(), len);
    assert!(
        items.iter().enumerate().all(|(i, &v)| v == i as u64),
        "the list is not 0..{len}: {items:?}"
    );
    let (entries, len) = dict
        .transaction(|tx| Ok((tx.items()?, tx.len())))
        .expect("the dict reads");
    assert_eq!(entries.len(), len);
    let mut snap: std::collections::HashMap<u64, u64> = entries.into_iter().collect();
    assert_eq!(snap.len(), len, "a key twice");
    let sum = snap.remove(&SUM).unwrap_or(0);
    let count = snap.remove(&COUNT).unwrap_or(0);
    assert!(snap.keys().all(|&k| k < KEYS), "{snap:?}");
    assert_eq!(count, snap.len() as u64, "COUNT");
    assert_eq!(sum, snap.values().sum::<u64>(), "SUM");
}

#[test]
fn a_writer_killed_mid_update_never_leaves_a_torn_or_locked_container() {
    multiproc_core::process::init();
    const T: &str = "a_writer_killed_mid_update_never_leaves_a_torn_or_locked_container";
    let (lname, dname) = (unique_name("kill-list"), unique_name("kill-dict"));
    // A generous timeout: a dead holder is noticed within milliseconds, so
    // reaching it means the container was left locked.
    let wait = Duration::from_secs(20);
    let list = SharedList::<u64>::create(&lname, list_config())
        .unwrap()
        .with_timeout(wait);
    let dict = SharedDict::<u64, u64>::create(&dname, dict_config())
        .unwrap()
        .with_timeout(wait);
    let args = format!("{lname}\n{dname}");
    let mut rng = XorShift(0x1234_5678_9abc);
    let (mut kills, start) = (0u32, Instant::now());
    // Until enough kills landed inside updates (each one a rollback by the
    // next user), or a bound that only a broken container would reach.
    while list.recoveries() + dict.recoveries() < 40 || kills < 60 {
        assert!(
            kills < 3000,
            "only {} + {} recoveries after {kills} kills",
            list.recoveries(),
            dict.recoveries()
        );
        let child = spawn(T, writer, args.as_bytes());
        // Let it run a while, reading (and so contending) meanwhile.
        let until = Instant::now() + Duration::from_micros(rng.below(4000) + 500);
        while Instant::now() < until {
            check(&list, &dict);
        }
        kill(&child);
        kills += 1;
        check(&list, &dict);
    }
    println!(
        "{kills} kills in {:?}: {} list and {} dict recoveries; list of {}, dict of {}",
        start.elapsed(),
        list.recoveries(),
        dict.recoveries(),
        list.len().unwrap(),
        dict.len().unwrap()
    );
    drop((list, dict));
    assert_no_leftover(&lname);
    assert_no_leftover(&dname);
}
