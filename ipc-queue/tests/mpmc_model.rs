//! The MPMC ring's recovery from processes that die mid-operation, with more
//! threads than a loom model holds: `multiproc_queue::raw::mpmc` itself, on heap
//! memory, driven by real threads that stand for processes (each an
//! [`Actor`] with an identity of its own) under many random schedules, with
//! threads killed at random steps.
//!
//! A thread is killed at its `n`-th operation on the ring's memory (a load, a
//! store, a compare-and-swap, a word of payload copied), before that
//! operation: the [`Crashing`] memory panics there, the thread catches it,
//! leaves every claim it held as it was (claims are held in `ManuallyDrop`,
//! since a killed process runs no drop) and is declared dead, as a
//! `SIGKILL`ed process is. Random yields at the memory's operations widen
//! the interleavings. After each schedule it checks:
//!
//! - nothing wedges: the survivors finish (a step budget, not a clock);
//! - no message is delivered twice, and per consumer each producer's
//!   messages arrive in order;
//! - every published message is delivered, or counted in `lost`, and `lost`
//!   never exceeds the number of deaths;
//! - the ring ends empty, with no slot left claimed.
//!
//! The loom models of `tests/loom.rs` check the same recovery exhaustively on
//! tiny configurations under the C11 memory model; this test reaches more
//! threads, kills and laps. `IPC_STRESS=1` runs ten times as many schedules.

use multiproc_queue::raw::actors::{Actor, Actors};
use multiproc_queue::raw::heap::HeapMemory;
use multiproc_queue::raw::mpmc::{self, RawError, RawMpmc, Watch};
use multiproc_queue::raw::Memory;
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

mod common;
use common::Rng;

/// The panic payload of a thread killed at its chosen step.
struct Crash;

thread_local! {
    /// Operations this thread may still make before it dies (0: never).
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
    /// Drives this thread's random yields.
    static YIELDS: Cell<u64> = const { Cell::new(0) };
}

/// Heap memory that kills the calling thread at its chosen operation, and
/// yields at random ones.
#[derive(Clone)]
struct Crashing(HeapMemory);

fn step() {
    let die = COUNTDOWN.with(|c| match c.get() {
        0 => false,
        1 => {
            c.set(0);
            true
        }
        n => {
            c.set(n - 1);
            false
        }
    });
    if die {
        std::panic::panic_any(Crash);
    }
    let y = YIELDS.with(|y| {
        let v = y.get() ^ (y.get() << 13);
        let v = v ^ (v >> 7);
        let v = v ^ (v << 17);
        y.set(v);
        v
    });
    if y.is_multiple_of(16) {
        std::thread::yield_now();
    }
}

// SAFETY: every method steps, then delegates to the heap memory, which keeps
// the contract.
unsafe impl Memory for Crashing {
    fn len(&self) -> usize {
        self.0.len()
    }
    unsafe fn u64_at(&self, off: usize) -> &AtomicU64 {
        step();
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.u64_at(off) }
    }
    unsafe fn u32_at(&self, off: usize) -> &AtomicU32 {
        step();
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.u32_at(off) }
    }
    unsafe fn copy_in(&self, off: usize, src: &[u8]) {
        step();
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.copy_in(off, src) }
    }
    unsafe fn copy_out(&self, off: usize, dst: &mut [u8]) {
        step();
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.copy_out(off, dst) }
    }
    unsafe fn notify(&self, off: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.notify(off) }
    }
    unsafe fn clear(&self, len: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.clear(len) }
    }
}

type Ring = RawMpmc<Crashing>;

/// Runs `f` as a thread that may be killed: `None` if it was (and then
/// `me` is dead).
fn mortal<R>(me: &Actor, f: impl FnOnce() -> R) -> Option<R> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Crash>() {
                previous(info);
            }
        }));
    });
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(e) if e.is::<Crash>() => {
            COUNTDOWN.with(|c| c.set(0));
            me.die();
            None
        }
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// A schedule's operations before a thread gives up waiting: survivors
/// always finish well within it.
const BUDGET: u32 = 200_000;

fn encode(p: u64, s: u64) -> u64 {
    (p << 32) | s
}

/// Sends `items` messages as producer `p`; returns those whose publication
/// completed. A claim is held in `ManuallyDrop`, so a kill leaves it held.
fn produce(ring: &Ring, me: &Actor, p: u64, items: u64, published: &Mutex<Vec<u64>>) {
    for s in 0..items {
        let v = encode(p, s);
        let mut n = 0;
        loop {
            n += 1;
            assert!(n < BUDGET, "producer {p} wedged at {s}");
            match ring.try_claim_send(8, &mut Watch::new(), me) {
                Ok(claim) => {
                    let mut claim = ManuallyDrop::new(claim);
                    claim.write(&v.to_le_bytes());
                    ManuallyDrop::into_inner(claim).commit();
                    published.lock().unwrap().push(v);
                    break;
                }
                Err(RawError::Full | RawError::Busy) => std::thread::yield_now(),
                Err(e) => panic!("producer {p}: {e:?}"),
            }
        }
    }
}

/// Receives until `done` says every producer has finished or died and the
/// ring is empty; returns what it received, in order.
fn consume(ring: &Ring, me: &Actor, done: &AtomicU32, got: &mut Vec<u64>) {
    let mut n = 0;
    loop {
        n += 1;
        assert!(n < BUDGET, "consumer wedged");
        let producers_done = done.load(Ordering::Acquire) != 0;
        match ring.try_claim_recv(8, &mut Watch::new(), me) {
            Ok(claim) => {
                let claim = ManuallyDrop::new(claim);
                let mut buf = [0u8; 8];
                claim.read(&mut buf);
                got.push(u64::from_le_bytes(buf));
                drop(ManuallyDrop::into_inner(claim));
            }
            Err(RawError::Empty) if producers_done => return,
            Err(RawError::Empty | RawError::Busy) => std::thread::yield_now(),
            Err(e) => panic!("consumer: {e:?}"),
        }
    }
}

/// One schedule; panics if a property fails. Returns the deaths and the
/// messages lost to them.
fn run(
    seed: u64,
    cap: usize,
    producers: u64,
    consumers: u32,
    items: u64,
    kills: u32,
) -> (u64, u64) {
    let cfg = mpmc::Config::new(cap, 8);
    let mem = Crashing(HeapMemory::new(mpmc::memory_size(&cfg).unwrap()));
    let ring = RawMpmc::init(mem, &cfg).unwrap();
    let world = Actors::new();
    let mut rng = Rng(seed | 1);
    // Who dies, and at which of its operations (producers, then consumers
    // but the first one: someone must be left to drain).
    let mut doom = vec![0u32; producers as usize + consumers as usize];
    for _ in 0..kills {
        let k = (rng.next() % (doom.len() as u64 - 1)) as usize;
        let k = if k >= producers as usize { k + 1 } else { k };
        doom[k] = 1 + (rng.next() % 60) as u32;
    }
    let published = Mutex::new(Vec::new());
    let done = AtomicU32::new(0);
    let mut received: Vec<Vec<u64>> = Vec::new();
    std::thread::scope(|s| {
        let ps: Vec<_> = (0..producers)
            .map(|p| {
                let (ring, me, published) = (&ring, world.actor(p as u32), &published);
                let (doom, yields) = (doom[p as usize], rng.next() | 1);
                s.spawn(move || {
                    COUNTDOWN.with(|c| c.set(doom));
                    YIELDS.with(|y| y.set(yields));
                    mortal(&me, || produce(ring, &me, p, items, published))
                })
            })
            .collect();
        let cs: Vec<_> = (0..consumers)
            .map(|c| {
                let (ring, me, done) = (&ring, world.actor(32 + c), &done);
                let (doom, yields) = (doom[(producers + u64::from(c)) as usize], rng.next() | 1);
                s.spawn(move || {
                    COUNTDOWN.with(|c| c.set(doom));
                    YIELDS.with(|y| y.set(yields));
                    let mut got = Vec::new();
                    mortal(&me, || consume(ring, &me, done, &mut got));
                    got
                })
            })
            .collect();
        for p in ps {
            p.join().unwrap();
        }
        done.store(1, Ordering::Release);
        received = cs.into_iter().map(|c| c.join().unwrap()).collect();
    });
    // A consumer that died after moving `head` leaves its claim until the
    // producer of the next lap needs the slot: finish it now.
    let judge = world.actor(63);
    ring.sweep(&judge);
    let mut last = Vec::new();
    consume(&ring, &judge, &done, &mut last);
    received.push(last);
    // Properties.
    let mut delivered = std::collections::HashSet::new();
    for got in &received {
        let mut order = vec![None::<u64>; producers as usize];
        for &v in got {
            let (p, s) = ((v >> 32) as usize, v & 0xffff_ffff);
            assert!(order[p].is_none_or(|l| l < s), "seed {seed:#x}: order");
            order[p] = Some(s);
            assert!(delivered.insert(v), "seed {seed:#x}: duplicate delivery");
        }
    }
    let actors = (0..producers as u32).chain((0..consumers).map(|c| 32 + c));
    let deaths = actors
        .filter(|&n| world.actor(n).is_declared_dead())
        .count() as u64;
    let missing = published
        .lock()
        .unwrap()
        .iter()
        .filter(|v| !delivered.contains(v))
        .count() as u64;
    let lost = ring.lost();
    assert!(
        missing <= lost,
        "seed {seed:#x}: {missing} published messages missing, {lost} lost"
    );
    assert!(
        lost <= deaths,
        "seed {seed:#x}: lost {lost} > deaths {deaths}"
    );
    assert_eq!(ring.len(), 0, "seed {seed:#x}: ring not drained");
    // No slot is left claimed: a whole lap goes through.
    for i in 0..cap as u64 {
        let mut c = ring
            .try_claim_send(8, &mut Watch::new(), &judge)
            .unwrap_or_else(|e| panic!("seed {seed:#x}: slot left claimed: {e:?}"));
        c.write(&i.to_le_bytes());
        c.commit();
    }
    for _ in 0..cap {
        ring.try_claim_recv(8, &mut Watch::new(), &judge)
            .unwrap_or_else(|e| panic!("seed {seed:#x}: slot left claimed: {e:?}"));
    }
    (deaths, lost)
}

fn schedules() -> u64 {
    if std::env::var_os("IPC_STRESS").is_some() {
        10_000
    } else {
        1_000
    }
}

#[test]
fn random_schedules_without_deaths() {
    for seed in 0..schedules() / 4 {
        let cap = 1 << (seed % 3);
        assert_eq!(run(seed * 0x9e37_79b9 + 1, cap, 2, 2, 4, 0), (0, 0));
    }
}

#[test]
fn random_schedules_with_deaths() {
    let (mut deaths, mut lost) = (0, 0);
    for seed in 0..schedules() {
        let cap = 1 << (seed % 3);
        let (d, l) = run(seed * 0x2545_f491 + 7, cap, 2, 3, 4, 1 + (seed % 3) as u32);
        deaths += d;
        lost += l;
    }
    eprintln!("{deaths} deaths, {lost} messages lost to them and recovered");
    // The schedules kill threads holding claims, which others finish.
    assert!(deaths > schedules() / 2 && lost > 0);
}
