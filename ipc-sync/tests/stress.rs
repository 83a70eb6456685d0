//! Randomized interleaving stress of the raw algorithms on the heap, with
//! threads: random wait strategies, deadlines, preemption points, and
//! holders that die (a thread that exits holding a lock is a dead owner, as
//! a killed process is). Stands in for a model checker: every run takes other
//! interleavings, and the invariants are checked at every step.
//!
//! The default size keeps `cargo test` short; `IPC_STRESS=1` runs each test
//! twenty times longer.
#![cfg(not(loom))]

use multiproc_core::liveness::OsJudge;
use multiproc_sync::raw::{Acquired, RawBoundedSemaphore, RawMutex, RawRwLock};
use multiproc_sync::{LockTimeoutError, WaitStrategy};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scale() -> u64 {
    if std::env::var_os("IPC_STRESS").is_some() {
        20
    } else {
        1
    }
}

/// xorshift64*, seeded per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
    fn strategy(&mut self) -> WaitStrategy {
        match self.next() % 3 {
            0 => WaitStrategy::BusySpin,
            1 => WaitStrategy::Blocking,
            _ => WaitStrategy::adaptive(Duration::from_micros(self.next() % 20)),
        }
    }
    fn deadline(&mut self) -> Option<Instant> {
        if self.one_in(4) {
            Some(Instant::now() + Duration::from_micros(self.next() % 300))
        } else {
            None
        }
    }
    /// A preemption point: nothing, a spin, or a yield.
    fn preempt(&mut self) {
        match self.next() % 8 {
            0 => std::thread::yield_now(),
            1 => {
                for _ in 0..(self.next() % 64) {
                    std::hint::spin_loop();
                }
            }
            _ => {}
        }
    }
}

const J: &OsJudge = &OsJudge;

/// A raw lock call with an optional deadline: the timed form, or the plain
/// one (whose error converts).
fn with_deadline(
    deadline: Option<Instant>,
    until: impl FnOnce(Instant) -> Result<Acquired, LockTimeoutError<Infallible>>,
    forever: impl FnOnce() -> Result<Acquired, multiproc_sync::LockError<Infallible>>,
) -> Result<Acquired, LockTimeoutError<Infallible>> {
    match deadline {
        Some(d) => until(d),
        None => forever().map_err(Into::into),
    }
}

fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("stress seed {s}");
    s
}

#[test]
fn raw_mutex_mutual_exclusion_with_random_deaths() {
    let m = Arc::new(RawMutex::new());
    let inside = Arc::new(AtomicU32::new(0));
    let count = Arc::new(AtomicU64::new(0));
    let deaths = Arc::new(AtomicU64::new(0));
    let reported = Arc::new(AtomicU64::new(0));
    let base = seed();
    for round in 0..(4 * scale()) {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let (m, inside, count, deaths, reported) = (
                    Arc::clone(&m),
                    Arc::clone(&inside),
                    Arc::clone(&count),
                    Arc::clone(&deaths),
                    Arc::clone(&reported),
                );
                std::thread::spawn(move || {
                    let mut rng = Rng::new(base ^ (round << 8) ^ t);
                    for _ in 0..3_000 {
                        let strategy = rng.strategy();
                        let r = with_deadline(
                            rng.deadline(),
                            |d| m.lock_until(J, strategy, d),
                            || m.lock(J, strategy),
                        );
                        match r {
                            Ok(Acquired::Clean) => {}
                            Ok(Acquired::OwnerDied { .. }) => {
                                reported.fetch_add(1, Ordering::SeqCst);
                                inside.store(0, Ordering::SeqCst); // repair
                            }
                            Err(LockTimeoutError::TimedOut) => continue,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                        assert_eq!(inside.swap(1, Ordering::SeqCst), 0, "two holders");
                        count.fetch_add(1, Ordering::Relaxed);
                        rng.preempt();
                        if rng.one_in(700) {
                            deaths.fetch_add(1, Ordering::SeqCst);
                            return; // dies holding the lock
                        }
                        inside.store(0, Ordering::SeqCst);
                        rng.preempt();
                        m.unlock(J).expect("the holder unlocks");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    // A death at the very end is found by this last lock.
    match m.lock(J, WaitStrategy::Blocking) {
        Ok(Acquired::Clean) => {}
        Ok(Acquired::OwnerDied { .. }) => {
            reported.fetch_add(1, Ordering::SeqCst);
        }
        Err(e) => panic!("{e:?}"),
    }
    assert_eq!(
        deaths.load(Ordering::SeqCst),
        reported.load(Ordering::SeqCst),
        "every dead holder is reported exactly once"
    );
    assert!(count.load(Ordering::Relaxed) > 0);
    m.unlock(J).unwrap();
}

#[test]
fn raw_rwlock_readers_see_whole_updates_with_random_writer_deaths() {
    let l = Arc::new(RawRwLock::new());
    let pair = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let writers_inside = Arc::new(AtomicU32::new(0));
    let deaths = Arc::new(AtomicU64::new(0));
    let base = seed();
    for round in 0..(3 * scale()) {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let (l, pair, wi, deaths) = (
                    Arc::clone(&l),
                    Arc::clone(&pair),
                    Arc::clone(&writers_inside),
                    Arc::clone(&deaths),
                );
                std::thread::spawn(move || {
                    let mut rng = Rng::new(base ^ (round << 8) ^ t);
                    for _ in 0..2_000 {
                        let strategy = rng.strategy();
                        if rng.one_in(3) {
                            let r = with_deadline(
                                rng.deadline(),
                                |d| l.write_until(J, strategy, d),
                                || l.write(J, strategy),
                            );
                            let dirty = match r {
                                Ok(Acquired::Clean) => false,
                                Ok(Acquired::OwnerDied { .. }) => true,
                                Err(LockTimeoutError::TimedOut) => continue,
                                Err(e) => panic!("{e:?}"),
                            };
                            if dirty {
                                wi.store(0, Ordering::SeqCst);
                                let a = pair[0].load(Ordering::SeqCst);
                                pair[1].store(a, Ordering::SeqCst); // repair
                            }
                            assert_eq!(wi.swap(1, Ordering::SeqCst), 0, "two writers");
                            pair[0].fetch_add(1, Ordering::SeqCst);
                            rng.preempt();
                            if rng.one_in(300) {
                                deaths.fetch_add(1, Ordering::SeqCst);
                                return; // dies mid-update
                            }
                            pair[1].fetch_add(1, Ordering::SeqCst);
                            wi.store(0, Ordering::SeqCst);
                            l.write_unlock(J, true).unwrap();
                        } else {
                            let r = with_deadline(
                                rng.deadline(),
                                |d| l.read_until(J, strategy, d),
                                || l.read(J, strategy),
                            );
                            let dirty = match r {
                                Ok(Acquired::Clean) => false,
                                Ok(Acquired::OwnerDied { .. }) => true,
                                Err(LockTimeoutError::TimedOut) => continue,
                                Err(e) => panic!("{e:?}"),
                            };
                            if !dirty {
                                assert_eq!(wi.load(Ordering::SeqCst), 0, "a writer inside");
                            }
                            let (a, b) = (
                                pair[0].load(Ordering::SeqCst),
                                pair[1].load(Ordering::SeqCst),
                            );
                            if !dirty {
                                assert_eq!(a, b, "a clean read saw half an update");
                            }
                            rng.preempt();
                            l.read_unlock(J).unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    match l.write(J, WaitStrategy::Blocking) {
        Ok(Acquired::Clean) => {}
        Ok(Acquired::OwnerDied { .. }) => {
            let a = pair[0].load(Ordering::SeqCst);
            pair[1].store(a, Ordering::SeqCst);
        }
        Err(e) => panic!("{e:?}"),
    }
    l.write_unlock(J, true).unwrap();
    assert_eq!(
        pair[0].load(Ordering::SeqCst),
        pair[1].load(Ordering::SeqCst)
    );
    assert!(!l.is_dirty());
}

#[test]
fn raw_semaphore_never_lends_more_than_its_permits() {
    const PERMITS: u32 = 2;
    let s = Arc::new(RawBoundedSemaphore::new(PERMITS, PERMITS).unwrap());
    let inside = Arc::new(AtomicU32::new(0));
    let base = seed();
    let hs: Vec<_> = (0..4)
        .map(|t| {
            let (s, inside) = (Arc::clone(&s), Arc::clone(&inside));
            std::thread::spawn(move || {
                let mut rng = Rng::new(base ^ t);
                for _ in 0..(5_000 * scale()) {
                    let got = if rng.one_in(3) {
                        s.try_acquire()
                    } else {
                        s.acquire_until(rng.strategy(), rng.deadline())
                    };
                    if !got {
                        continue;
                    }
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(n <= PERMITS, "{n} holders of {PERMITS} permits");
                    rng.preempt();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    s.release().unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(s.value(), PERMITS);
}
