//! The raw containers on the heap, against a model, and stopped at every
//! step of an update as if the holder were killed there: the next locker
//! must find the container exactly as before the update (or, stopped after
//! the commit point, exactly as after it), also when the recoverer itself
//! is stopped while rolling back.
//!
//! A stop is injected with [`fault::arm`]: the update returns at that step
//! without releasing the lock (nor rolling back), and the test's judge then
//! calls the holder dead, as the operating system's would after a SIGKILL.

use super::journal::fault;
use super::list::SHIFT_IN_PLACE;
use super::{Layout, RawContainerConfig, RawDict, RawDictTx, RawList, RawListTx};
use crate::container::{ContainerConfig, ContainerError};
use multiproc_core::liveness::Judge;
use multiproc_core::object::ShmObject;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::IdentityError;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Threads that are ids of its own; a thread is dead once [`die`](Self::die)
/// named it, and the judge then speaks for a new thread.
struct TestJudge {
    me: Cell<u32>,
    dead: RefCell<Vec<u32>>,
}

impl TestJudge {
    fn new() -> Self {
        TestJudge {
            me: Cell::new(1_000_000),
            dead: RefCell::new(Vec::new()),
        }
    }

    /// The current thread dies (holding whatever it holds); the judge
    /// speaks for a fresh one.
    fn die(&self) {
        self.dead.borrow_mut().push(self.me.get());
        self.me.set(self.me.get() + 1);
    }
}

impl Judge for TestJudge {
    fn me(&self) -> Result<u64, IdentityError> {
        Ok((u64::from(self.me.get()) << 32) | 1)
    }
    fn holder(&self) -> Result<(u32, u64), IdentityError> {
        Ok((self.me.get(), self.me()?))
    }
    fn is_dead(&self, packed: u64) -> bool {
        self.dead.borrow().contains(&((packed >> 32) as u32))
    }
    fn thread_is_dead(&self, _packed: u64, tid: u32) -> bool {
        self.dead.borrow().contains(&tid)
    }
}

/// A container on the heap.
struct Heap<O> {
    words: Box<[AtomicU64]>,
    layout: Layout,
    _object: std::marker::PhantomData<O>,
}

/// The raw containers' `layout`.
trait Container: ShmObject<Config = RawContainerConfig> {
    fn layout_in(&self, len: usize) -> Layout;
}

impl Container for RawList {
    fn layout_in(&self, len: usize) -> Layout {
        self.layout(len).unwrap()
    }
}

impl Container for RawDict {
    fn layout_in(&self, len: usize) -> Layout {
        self.layout(len).unwrap()
    }
}

impl<O: Container> Heap<O> {
    fn new(cfg: ContainerConfig) -> Self {
        let cfg = RawContainerConfig::bytes(cfg);
        let len = O::memory_size(&cfg).unwrap();
        let words: Box<[AtomicU64]> = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        let mem = NonNull::new(words.as_ptr().cast_mut().cast::<u8>()).unwrap();
        // SAFETY: `len` bytes of 8-aligned memory nobody else uses; atomics
        // allow writes through a shared pointer.
        unsafe { O::init_in(mem, len, cfg) };
        // SAFETY: as above; `init_in` wrote a container there.
        let layout = unsafe { O::attach(mem, len) }.unwrap().layout_in(len);
        Heap {
            words,
            layout,
            _object: std::marker::PhantomData,
        }
    }

    fn mem(&self) -> (NonNull<u8>, usize) {
        let mem = NonNull::new(self.words.as_ptr().cast_mut().cast::<u8>()).unwrap();
        (mem, self.words.len() * 8)
    }

    fn object(&self) -> &O {
        let (mem, len) = self.mem();
        // SAFETY: the memory lives as long as `self` and is only accessed
        // atomically or under the container's lock.
        unsafe { O::attach(mem, len).unwrap() }
    }
}

impl Heap<RawList> {
    fn lock<'a>(&'a self, j: &TestJudge) -> Result<RawListTx<'a>, ContainerError> {
        // SAFETY: the memory and layout of this very list.
        unsafe {
            self.object().lock(
                self.mem().0,
                &self.layout,
                j,
                WaitStrategy::BusySpin,
                Some(Duration::ZERO),
            )
        }
    }

    /// The items, after checking every invariant.
    fn contents(&self, j: &TestJudge) -> Result<Vec<Vec<u8>>, ContainerError> {
        let tx = self.lock(j)?;
        tx.audit().unwrap();
        let (mut bytes, mut lens) = (Vec::new(), Vec::new());
        tx.read_range(0, tx.len(), &mut bytes, &mut lens)?;
        tx.commit()?;
        let mut at = 0;
        Ok(lens
            .iter()
            .map(|&l| {
                at += l;
                bytes[at - l..at].to_vec()
            })
            .collect())
    }
}

impl Heap<RawDict> {
    fn lock<'a>(&'a self, j: &TestJudge) -> Result<RawDictTx<'a>, ContainerError> {
        // SAFETY: the memory and layout of this very dict.
        unsafe {
            self.object().lock(
                self.mem().0,
                &self.layout,
                j,
                WaitStrategy::BusySpin,
                Some(Duration::ZERO),
            )
        }
    }

    /// The entries, after checking every invariant.
    fn contents(&self, j: &TestJudge) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ContainerError> {
        let tx = self.lock(j)?;
        tx.audit().unwrap();
        let (mut bytes, mut lens) = (Vec::new(), Vec::new());
        tx.read_all(&mut bytes, &mut lens)?;
        tx.commit()?;
        let mut at = 0;
        let mut out = BTreeMap::new();
        for (k, v) in lens {
            out.insert(
                bytes[at..at + k].to_vec(),
                bytes[at + k..at + k + v].to_vec(),
            );
            at += k + v;
        }
        Ok(out)
    }
}

/// Runs `op` on fresh containers, stopped at step 1, 2, ... until it runs
/// to the end. After each stop the holder is dead; the next locker is
/// stopped once more while it rolls back (at a step that varies with the
/// stop), dies too, and a third one recovers. What it finds must be the
/// state before `op`, except after a stop past the commit point (the last
/// step), where it is the state after. Returns the number of steps.
fn crash_everywhere<X, C: PartialEq + std::fmt::Debug>(
    fresh: impl Fn(&TestJudge) -> X,
    contents: impl Fn(&X, &TestJudge) -> Result<C, ContainerError>,
    op: impl Fn(&X, &TestJudge) -> Result<(), ContainerError>,
) -> u32 {
    let j = TestJudge::new();
    let x = fresh(&j);
    let before = contents(&x, &j).unwrap();
    op(&x, &j).unwrap();
    let after = contents(&x, &j).unwrap();
    let mut outcomes = Vec::new();
    for k in 1..100_000 {
        let j = TestJudge::new();
        let x = fresh(&j);
        fault::arm(k);
        let r = op(&x, &j);
        if fault::armed() {
            fault::arm(0);
            r.unwrap();
            assert_eq!(contents(&x, &j).unwrap(), after, "a whole run");
            break;
        }
        assert!(matches!(r, Err(ContainerError::Injected)), "{r:?}");
        j.die();
        // The recoverer is stopped too, at a rollback step that varies.
        fault::arm(k % 7 + 1);
        match contents(&x, &j) {
            Err(ContainerError::Injected) => j.die(),
            Ok(c) => assert!(c == before || c == after, "after a stop at {k}: {c:?}"),
            Err(e) => panic!("{e}"),
        }
        fault::arm(0);
        let got = contents(&x, &j).unwrap();
        outcomes.push(got == after && got != before);
        assert!(
            got == before || got == after,
            "after a stop at step {k}: {got:?}"
        );
    }
    let steps = outcomes.len() as u32;
    assert!(steps > 0);
    // Only the stop after the commit point leaves the update done.
    let done: Vec<usize> = (0..outcomes.len()).filter(|&i| outcomes[i]).collect();
    assert!(
        done.is_empty() || done == [outcomes.len() - 1],
        "an update was partly applied: done after stops {done:?} of {steps}"
    );
    steps
}

/// A list of `capacity` items and `arena` bytes holding `items`, after
/// `garbage` dead items of 8 bytes.
fn list_with(capacity: usize, arena: usize, items: &[&[u8]], garbage: usize) -> Heap<RawList> {
    let l = Heap::<RawList>::new(ContainerConfig::new(capacity, arena));
    let j = TestJudge::new();
    let mut tx = l.lock(&j).unwrap();
    // Dead bytes first (pushed and popped), so that the arena must compact.
    for _ in 0..garbage {
        tx.push(b"garbage!").unwrap();
        tx.pop(&mut Vec::new()).unwrap();
    }
    for it in items {
        tx.push(it).unwrap();
    }
    tx.commit().unwrap();
    l
}

fn numbered(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("item-{i}").into_bytes()).collect()
}

/// [`crash_everywhere`] for a list operation that rebuilds at least
/// `rebuilds` times.
fn list_op(
    setup: impl Fn() -> Heap<RawList>,
    rebuilds: u32,
    op: impl Fn(&mut RawListTx<'_>) -> Result<(), ContainerError>,
) -> u32 {
    crash_everywhere(
        |_| setup(),
        |l, j| l.contents(j),
        |l, j| {
            let mut tx = l.lock(j)?;
            op(&mut tx)?;
            assert!(tx.rebuilds() >= rebuilds, "{} rebuilds", tx.rebuilds());
            tx.commit()
        },
    )
}

#[test]
fn every_list_operation_is_atomic_at_every_step() {
    let few = numbered(5);
    let few: Vec<&[u8]> = few.iter().map(|v| v.as_slice()).collect();
    let many = numbered(SHIFT_IN_PLACE as usize + 20);
    let many: Vec<&[u8]> = many.iter().map(|v| v.as_slice()).collect();
    let small = || list_with(100, 4096, &few, 0);
    let tight = || list_with(100, 64, &few[..3], 5);
    let long = || list_with(100, 8192, &many, 0);
    let steps = [
        list_op(small, 0, |tx| tx.push(b"new")),
        list_op(tight, 1, |tx| tx.push(b"compacted")),
        list_op(small, 0, |tx| tx.pop(&mut Vec::new()).map(drop)),
        list_op(small, 0, |tx| tx.set(2, b"replaced")),
        list_op(tight, 1, |tx| tx.set(0, b"replaced, compacted")),
        list_op(small, 0, |tx| tx.insert(1, b"inserted")),
        list_op(long, 1, |tx| tx.insert(2, b"shifted by a rebuild")),
        list_op(small, 0, |tx| tx.remove(1, &mut Vec::new())),
        list_op(long, 1, |tx| tx.remove(0, &mut Vec::new())),
        list_op(small, 0, |tx| tx.extend(b"abcdef", &[1, 2, 3])),
        list_op(tight, 1, |tx| tx.extend(b"abcdefghijklmn", &[4, 10])),
        list_op(small, 0, |tx| tx.clear()),
        // Slots past the end now, referenced at the start: journaled.
        list_op(small, 0, |tx| {
            tx.pop(&mut Vec::new())?;
            tx.push(b"other")
        }),
        list_op(small, 0, |tx| {
            tx.clear()?;
            tx.extend(b"xyz", &[1, 2])
        }),
    ];
    assert!(steps.iter().all(|&s| s >= 2), "{steps:?}");
}

#[test]
fn a_list_transaction_that_rebuilds_again_stays_atomic() {
    let many = numbered(40);
    let many: Vec<&[u8]> = many.iter().map(|v| v.as_slice()).collect();
    let item = b"0123456789abcdef0123456789";
    // Long shifts: the first copies the index into the other bank, the
    // next ones shift in that scratch bank; an arena with little room
    // compacts twice (the second time in place, in the scratch bank).
    let steps = list_op(
        || list_with(100, 400, &many, 10),
        3,
        |tx| {
            for i in 0..6 {
                tx.insert(i, item)?;
                tx.remove(i + 1, &mut Vec::new())?;
            }
            Ok(())
        },
    );
    assert!(steps > 20);
    // An index rebuild, then a compaction with the index already scratch.
    list_op(
        || list_with(100, 360, &many[..35], 10),
        2,
        |tx| {
            tx.insert(0, b"front")?;
            for i in 0..4 {
                tx.set(i, item)?;
            }
            tx.pop(&mut Vec::new())?;
            tx.push(b"back")
        },
    );
}

/// A dict of `cfg` holding `n` entries of 12 bytes, after `churn` keys
/// inserted and removed.
fn dict_with(cfg: ContainerConfig, n: usize, churn: usize) -> Heap<RawDict> {
    let d = Heap::<RawDict>::new(cfg);
    let j = TestJudge::new();
    let mut tx = d.lock(&j).unwrap();
    let mut old = Vec::new();
    // Churn first (inserted and removed keys), for tombstones and dead bytes.
    for i in 0..churn {
        let k = format!("churn-{i}");
        tx.insert(k.as_bytes(), b"x", &mut old).unwrap();
        tx.remove(k.as_bytes(), &mut old).unwrap();
    }
    for i in 0..n {
        tx.insert(
            format!("key-{i}").as_bytes(),
            format!("value-{i}").as_bytes(),
            &mut old,
        )
        .unwrap();
    }
    tx.commit().unwrap();
    d
}

/// [`crash_everywhere`] for a dict operation that rebuilds at least
/// `rebuilds` times.
fn dict_op(
    setup: impl Fn() -> Heap<RawDict>,
    rebuilds: u32,
    op: impl Fn(&mut RawDictTx<'_>) -> Result<(), ContainerError>,
) -> u32 {
    crash_everywhere(
        |_| setup(),
        |d, j| d.contents(j),
        |d, j| {
            let mut tx = d.lock(j)?;
            op(&mut tx)?;
            assert!(tx.rebuilds() >= rebuilds, "{} rebuilds", tx.rebuilds());
            tx.commit()
        },
    )
}

#[test]
fn every_dict_operation_is_atomic_at_every_step() {
    let small = || dict_with(ContainerConfig::new(40, 4096), 10, 0);
    // 218 bytes appended, 120 live: the next entry compacts.
    let tight = || dict_with(ContainerConfig::new(40, 230), 10, 12);
    let steps = [
        dict_op(small, 0, |tx| {
            tx.insert(b"new", b"value", &mut Vec::new()).map(drop)
        }),
        dict_op(small, 0, |tx| {
            tx.insert(b"key-3", b"replaced", &mut Vec::new()).map(drop)
        }),
        dict_op(tight, 1, |tx| {
            tx.insert(b"compacting", b"value", &mut Vec::new())
                .map(drop)
        }),
        dict_op(small, 0, |tx| {
            tx.remove(b"key-4", &mut Vec::new()).map(drop)
        }),
        dict_op(small, 1, |tx| tx.clear()),
    ];
    assert!(steps.iter().all(|&s| s >= 2), "{steps:?}");
}

/// Pairs of keys with the same home slot in a table of `slots`.
fn colliding_pairs(slots: u64, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut by_home: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut pairs = Vec::new();
    for i in 0.. {
        let k = format!("c-{i}").into_bytes();
        let h = super::dict::home(super::dict::tag_of(super::store::hash_bytes(&k)), slots);
        match by_home.remove(&h) {
            Some(first) => pairs.push((first, k)),
            None => {
                by_home.insert(h, k);
            }
        }
        if pairs.len() == n {
            return pairs;
        }
    }
    unreachable!()
}

#[test]
fn a_dict_transaction_that_rebuilds_again_stays_atomic() {
    // Compactions in one transaction: the second in place, in the scratch
    // arena.
    let tight = || dict_with(ContainerConfig::new(40, 400), 10, 12);
    dict_op(tight, 2, |tx| {
        for i in 0..30 {
            let k = format!("key-{}", i % 10);
            tx.insert(k.as_bytes(), &[b'v'; 20], &mut Vec::new())?;
        }
        tx.remove(b"key-0", &mut Vec::new()).map(drop)
    });
    // Tombstones: the first of two colliding keys removed while the second
    // follows it, until the table is rehashed (into the other bank, then in
    // place), with a compaction between.
    let slots = super::store::Shape::Dict.slots(12);
    let pairs = colliding_pairs(slots, 80);
    let cfg = ContainerConfig::new(12, 600).with_journal_entries(512);
    dict_op(
        || dict_with(cfg, 4, 0),
        2,
        |tx| {
            for (a, b) in &pairs {
                tx.insert(a, b"1", &mut Vec::new())?;
                tx.insert(b, b"2", &mut Vec::new())?;
                tx.remove(a, &mut Vec::new())?;
                tx.remove(b, &mut Vec::new())?;
            }
            tx.insert(b"last", b"v", &mut Vec::new()).map(drop)
        },
    );
}

/// A tiny deterministic generator for the model tests.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn the_list_behaves_like_a_vec() {
    let l = list_with(64, 600, &[], 0);
    let j = TestJudge::new();
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut rng = XorShift(0x1234_5678);
    let mut out = Vec::new();
    for round in 0..3000 {
        let mut tx = l.lock(&j).unwrap();
        let item = format!("{round}-{}", "x".repeat(rng.below(12) as usize)).into_bytes();
        let len = model.len();
        let r = match rng.below(7) {
            0 | 1 => tx.push(&item).map(|_| model.push(item.clone())),
            2 => {
                out.clear();
                tx.pop(&mut out).map(|some| {
                    assert_eq!(some, model.pop().is_some_and(|m| m == out));
                })
            }
            3 => {
                let i = rng.below(len as u64 + 1) as usize;
                tx.insert(i, &item).map(|_| model.insert(i, item.clone()))
            }
            4 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                out.clear();
                tx.remove(i, &mut out)
                    .map(|_| assert_eq!(model.remove(i), out))
            }
            5 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                tx.set(i, &item).map(|_| model[i] = item.clone())
            }
            _ => {
                let i = rng.below(len as u64 + 1) as usize;
                out.clear();
                let r = tx.get(i, &mut out);
                if i < len {
                    assert_eq!(out, model[i]);
                }
                r
            }
        };
        match r {
            Ok(()) => tx.commit().unwrap(),
            Err(_) => drop(tx),
        }
        match r {
            Ok(()) => {}
            Err(ContainerError::CapacityFull { capacity: 64 }) => assert_eq!(len, 64),
            Err(ContainerError::ArenaFull { available, .. }) => assert!(available < item.len()),
            Err(ContainerError::OutOfRange { index, len: l }) => assert!(index >= l && l == len),
            Err(e) => panic!("{e}"),
        }
        if round % 64 == 0 {
            assert_eq!(l.contents(&j).unwrap(), model);
        }
    }
    assert_eq!(l.contents(&j).unwrap(), model);
}

#[test]
fn the_dict_behaves_like_a_map() {
    let d = dict_with(ContainerConfig::new(48, 900), 0, 0);
    let j = TestJudge::new();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut rng = XorShift(0x8765_4321);
    let mut out = Vec::new();
    for round in 0..4000 {
        let mut tx = d.lock(&j).unwrap();
        let key = format!("k{}", rng.below(60)).into_bytes();
        let value = vec![b'v'; rng.below(16) as usize];
        out.clear();
        let r = match rng.below(4) {
            0 | 1 => tx.insert(&key, &value, &mut out).map(|replaced| {
                let old = model.insert(key.clone(), value.clone());
                assert_eq!(replaced, old.is_some());
                assert_eq!(old.unwrap_or_default(), out);
            }),
            2 => tx.remove(&key, &mut out).map(|found| {
                assert_eq!(
                    found,
                    model
                        .remove(&key)
                        .inspect(|v| assert_eq!(v, &out))
                        .is_some()
                );
            }),
            _ => tx.get(&key, &mut out).map(|found| {
                assert_eq!(
                    found,
                    model.get(&key).inspect(|v| assert_eq!(*v, &out)).is_some()
                );
            }),
        };
        match r {
            Ok(()) => tx.commit().unwrap(),
            Err(_) => drop(tx),
        }
        match r {
            Ok(()) => {}
            Err(ContainerError::CapacityFull { capacity: 48 }) => assert_eq!(model.len(), 48),
            Err(ContainerError::ArenaFull { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        if round % 64 == 0 {
            assert_eq!(d.contents(&j).unwrap(), model);
        }
    }
    assert_eq!(d.contents(&j).unwrap(), model);
}

#[test]
fn an_error_inside_a_transaction_undoes_it() {
    let d = dict_with(ContainerConfig::new(8, 4096), 3, 0);
    let j = TestJudge::new();
    let before = d.contents(&j).unwrap();
    let mut tx = d.lock(&j).unwrap();
    tx.insert(b"a", b"1", &mut Vec::new()).unwrap();
    tx.remove(b"key-0", &mut Vec::new()).unwrap();
    drop(tx); // an error in the caller's closure: no commit
    assert_eq!(d.contents(&j).unwrap(), before);
    // A transaction larger than the journal is refused whole.
    let l = list_with(100, 4096, &[b"x".as_slice(); 80], 0);
    let before = l.contents(&j).unwrap();
    let mut tx = l.lock(&j).unwrap();
    let r = (0..80).try_for_each(|i| tx.set(i, b"y"));
    assert!(
        matches!(
            r,
            Err(ContainerError::TransactionTooLarge {
                journal_entries: 64
            })
        ),
        "{r:?}"
    );
    drop(tx);
    assert_eq!(l.contents(&j).unwrap(), before);
}
