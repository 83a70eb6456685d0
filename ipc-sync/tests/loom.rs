//! Loom model checking of the raw algorithms themselves (`multiproc_sync::raw`),
//! on the heap: every interleaving of the model threads, under the C11
//! memory model loom simulates. Their atomics and futex calls are loom's
//! under `cfg(loom)`; who a thread is and whether it died is asked of
//! [`ModelJudge`], whose threads can die.
//!
//! The negative controls weaken one ordering of the real code to `Relaxed`
//! ([`weaken`]) and expect the model to find the race it opens.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p multiproc-sync --test loom`
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use multiproc_core::liveness::Judge;
use multiproc_core::IdentityError;
use multiproc_sync::raw::loom::{weaken, Site};
use multiproc_sync::raw::{
    Acquired, RawBarrier, RawBoundedSemaphore, RawCondvar, RawEvent, RawMutex,
    RawRecoverableSemaphore, RawReentrantMutex, RawRwLock,
};
use multiproc_sync::{LockError, TryLockError, WaitStrategy};

const S: WaitStrategy = WaitStrategy::Blocking;

/// Model threads get ids of their own, each its own "process"; a thread is
/// dead once it called [`die`]. The death is published through loom
/// atomics (a release store the judge reads with acquire), as the kernel
/// publishes a process's exit to whoever reads `/proc` after it: a taker
/// then sees every write the dead holder made.
struct ModelJudge;

loom::lazy_static! {
    /// The next thread id, per execution: ids must be the same in every
    /// replay of a schedule (the rwlock's reader table is indexed by them).
    static ref NEXT: AtomicU32 = AtomicU32::new(1);
    static ref DEAD: [AtomicU32; 4] = [
        AtomicU32::new(0),
        AtomicU32::new(0),
        AtomicU32::new(0),
        AtomicU32::new(0),
    ];
}

loom::thread_local! {
    static ID: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
}

fn id() -> u32 {
    ID.with(|id| *id)
}

fn dead(id: u32) -> bool {
    DEAD.iter().any(|d| d.load(Ordering::Acquire) == id)
}

impl Judge for ModelJudge {
    fn me(&self) -> Result<u64, IdentityError> {
        Ok((u64::from(id()) << 32) | 1)
    }
    fn holder(&self) -> Result<(u32, u64), IdentityError> {
        Ok((id(), self.me()?))
    }
    fn is_dead(&self, packed: u64) -> bool {
        dead((packed >> 32) as u32)
    }
    fn thread_is_dead(&self, _packed: u64, tid: u32) -> bool {
        dead(tid)
    }
}

const J: &ModelJudge = &ModelJudge;

/// Marks the calling model thread dead: what it holds may be taken over,
/// as from a killed process.
fn die() {
    let me = id();
    let slot = DEAD.iter().find(|d| {
        d.compare_exchange(0, me, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    });
    assert!(slot.is_some(), "at most four deaths per model run");
}

/// Checks `f` in every interleaving with at most five preemptions, or
/// `LOOM_MAX_PREEMPTIONS` (the bugs of these algorithms need one or two;
/// the bound keeps the spin-and-yield waits of the futex model finite and
/// the run short).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = b.preemption_bound.or(Some(5));
    b.check(f);
}

/// Runs `f` as a model with `site` weakened, restoring the knob after.
fn weakened(site: Site, f: impl Fn() + Sync + Send + 'static) {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            weaken(None);
        }
    }
    let _restore = Restore;
    weaken(Some(site));
    model(f);
}

// ---- mutex ----

fn mutex_excludes() {
    let m = Arc::new(RawMutex::new());
    let data = Arc::new(UnsafeCell::new(0u32));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let (m, data) = (Arc::clone(&m), Arc::clone(&data));
            thread::spawn(move || {
                assert_eq!(m.lock(J, S).ok(), Some(Acquired::Clean));
                // SAFETY: loom checks this access is exclusive.
                data.with_mut(|p| unsafe { *p += 1 });
                m.unlock(J).unwrap();
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(m.lock(J, S).ok(), Some(Acquired::Clean));
    // SAFETY: the lock is held, every other thread joined.
    assert_eq!(data.with(|p| unsafe { *p }), 2);
    m.unlock(J).unwrap();
}

#[test]
fn mutex_two_threads_exclude_each_other() {
    model(mutex_excludes);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn negative_control_mutex_without_acquire_races() {
    weakened(Site::MutexAcquire, mutex_excludes);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn negative_control_mutex_without_release_races() {
    weakened(Site::MutexRelease, mutex_excludes);
}

#[test]
fn mutex_try_lock_and_a_waiter() {
    model(|| {
        let m = Arc::new(RawMutex::new());
        let m2 = Arc::clone(&m);
        let h = thread::spawn(move || match m2.try_lock(J) {
            Ok(Acquired::Clean) => {
                m2.unlock(J).unwrap();
                true
            }
            Err(TryLockError::WouldBlock) => false,
            other => panic!("{other:?}"),
        });
        assert_eq!(m.lock(J, S).ok(), Some(Acquired::Clean));
        m.unlock(J).unwrap();
        h.join().unwrap();
        assert!(!m.is_locked());
    });
}

#[test]
fn mutex_dead_holder_is_reported_exactly_once() {
    model(|| {
        let m = Arc::new(RawMutex::new());
        let died = Arc::new(AtomicUsize::new(0));
        let data = Arc::new(UnsafeCell::new(0u32));
        let (m1, d1) = (Arc::clone(&m), Arc::clone(&data));
        let victim = thread::spawn(move || {
            assert!(m1.lock(J, S).is_ok());
            // SAFETY: exclusive under the lock (loom checks).
            d1.with_mut(|p| unsafe { *p += 1 });
            die(); // holds the lock for ever
        });
        let (m2, died2, d2) = (Arc::clone(&m), Arc::clone(&died), Arc::clone(&data));
        let other = thread::spawn(move || {
            match m2.lock(J, S) {
                Ok(Acquired::Clean) => {}
                Ok(Acquired::OwnerDied { .. }) => {
                    died2.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => panic!("{e:?}"),
            }
            // SAFETY: exclusive under the lock, also after a takeover.
            d2.with_mut(|p| unsafe { *p += 1 });
            m2.unlock(J).unwrap();
        });
        victim.join().unwrap();
        other.join().unwrap();
        match m.lock(J, S) {
            Ok(Acquired::Clean) => {}
            Ok(Acquired::OwnerDied { .. }) => {
                died.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(died.load(Ordering::SeqCst), 1);
        // SAFETY: held, everyone else joined.
        assert_eq!(data.with(|p| unsafe { *p }), 2);
        m.unlock(J).unwrap();
    });
}

fn unrepaired_takeover() {
    {
        let m = Arc::new(RawMutex::new());
        let m1 = Arc::clone(&m);
        thread::spawn(move || {
            assert!(m1.lock(J, S).is_ok());
            die();
        })
        .join()
        .unwrap();
        // Two lockers race: exactly one takes the lock over and gives up on
        // repairing; the other is told NotRecoverable.
        let took = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let run = {
            let (m, took, refused) = (Arc::clone(&m), Arc::clone(&took), Arc::clone(&refused));
            move || match m.lock(J, S) {
                Ok(Acquired::OwnerDied { .. }) => {
                    took.fetch_add(1, Ordering::SeqCst);
                    m.unlock_not_recoverable(J).unwrap();
                }
                Err(LockError::NotRecoverable) => {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                other => panic!("{other:?}"),
            }
        };
        let h = thread::spawn(run.clone());
        run();
        h.join().unwrap();
        assert_eq!(took.load(Ordering::SeqCst), 1);
        assert_eq!(refused.load(Ordering::SeqCst), 1);
        assert!(matches!(m.try_lock(J), Err(TryLockError::NotRecoverable)));
    }
}

#[test]
fn mutex_unrepaired_takeover_is_not_recoverable() {
    model(unrepaired_takeover);
}

/// Without the Release that publishes a holder's process with its tid, a
/// waiter may pair the new holder's tid with the dead previous holder's
/// process and take over a live lock.
#[test]
#[should_panic]
fn negative_control_mutex_record_without_release_takes_over_a_live_holder() {
    weakened(Site::MutexRecord, unrepaired_takeover);
}

// ---- reentrant mutex ----

#[test]
fn reentrant_owner_nests_and_others_wait() {
    model(|| {
        let m = Arc::new(RawReentrantMutex::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        let (m2, d2) = (Arc::clone(&m), Arc::clone(&data));
        let h = thread::spawn(move || {
            assert!(m2.lock(J, S).is_ok());
            assert!(m2.lock(J, S).is_ok());
            assert_eq!(m2.depth(J), 2);
            // SAFETY: the owner's, until its last unlock (loom checks).
            d2.with_mut(|p| unsafe { *p += 1 });
            m2.unlock(J).unwrap();
            m2.unlock(J).unwrap();
        });
        assert!(m.lock(J, S).is_ok());
        assert_eq!(m.depth(J), 1);
        // SAFETY: as above.
        data.with_mut(|p| unsafe { *p += 1 });
        m.unlock(J).unwrap();
        h.join().unwrap();
        assert_eq!(m.depth(J), 0);
        // SAFETY: everyone else joined.
        assert_eq!(data.with(|p| unsafe { *p }), 2);
    });
}

// ---- rwlock ----

#[test]
fn rwlock_reader_sees_a_whole_write() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        let data = Arc::new(UnsafeCell::new((0u32, 0u32)));
        let (l2, d2) = (Arc::clone(&l), Arc::clone(&data));
        let w = thread::spawn(move || {
            assert_eq!(l2.write(J, S).ok(), Some(Acquired::Clean));
            // SAFETY: the write lock excludes readers (loom checks).
            d2.with_mut(|p| unsafe { *p = (1, 1) });
            l2.write_unlock(J, true).unwrap();
        });
        assert_eq!(l.read(J, S).ok(), Some(Acquired::Clean));
        // SAFETY: a read lock excludes the writer (loom checks).
        let (a, b) = data.with(|p| unsafe { *p });
        assert_eq!(a, b, "half an update");
        l.read_unlock(J).unwrap();
        w.join().unwrap();
    });
}

#[test]
fn rwlock_dead_writer_is_reported_to_the_next_writer() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        let l2 = Arc::clone(&l);
        let victim = thread::spawn(move || {
            assert!(l2.write(J, S).is_ok());
            die();
        });
        match l.write(J, S) {
            // The victim died first: its lock is taken over, dirty.
            Ok(Acquired::OwnerDied { .. }) => {
                l.write_unlock(J, true).unwrap();
                victim.join().unwrap();
            }
            // This thread wrote first; the victim then died holding it.
            Ok(Acquired::Clean) => {
                l.write_unlock(J, true).unwrap();
                victim.join().unwrap();
                assert!(matches!(l.write(J, S), Ok(Acquired::OwnerDied { .. })));
                l.write_unlock(J, true).unwrap();
            }
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(l.try_read(J).ok(), Some(Acquired::Clean));
    });
}

// ---- semaphores ----

fn semaphore_excludes() {
    let s = Arc::new(RawBoundedSemaphore::new(1, 1).unwrap());
    let data = Arc::new(UnsafeCell::new(0u32));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let (s, data) = (Arc::clone(&s), Arc::clone(&data));
            thread::spawn(move || {
                s.acquire(S);
                // SAFETY: one permit: loom checks the access is exclusive.
                data.with_mut(|p| unsafe { *p += 1 });
                s.release().unwrap();
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(s.value(), 1);
    // SAFETY: everyone else joined.
    assert_eq!(data.with(|p| unsafe { *p }), 2);
}

#[test]
fn semaphore_of_one_permit_excludes() {
    model(semaphore_excludes);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn negative_control_semaphore_without_acquire_races() {
    weakened(Site::SemaphoreAcquire, semaphore_excludes);
}

#[test]
fn recoverable_semaphore_gets_a_dead_holders_permit_back() {
    model(|| {
        let s = Arc::new(RawRecoverableSemaphore::new(1).unwrap());
        let s2 = Arc::clone(&s);
        thread::spawn(move || {
            assert_eq!(s2.try_acquire(J), Ok(true));
            die();
        })
        .join()
        .unwrap();
        assert_eq!(s.try_acquire(J), Ok(false));
        // A waiter reclaims the dead holder's permit by itself.
        assert_eq!(s.acquire_until(J, S, None), Ok(true));
        assert_eq!(s.held_by_me(J), 1);
        s.release(J).unwrap();
        assert_eq!(s.value(), 1);
    });
}

// ---- event ----

fn event_publishes() {
    let e = Arc::new(RawEvent::new());
    let data = Arc::new(UnsafeCell::new(0u32));
    let (e2, d2) = (Arc::clone(&e), Arc::clone(&data));
    let setter = thread::spawn(move || {
        // SAFETY: written before `set`, read after `wait` (loom checks).
        d2.with_mut(|p| unsafe { *p = 7 });
        e2.set();
    });
    e.wait(S);
    // SAFETY: as above.
    assert_eq!(data.with(|p| unsafe { *p }), 7);
    setter.join().unwrap();
}

#[test]
fn event_set_publishes_what_came_before() {
    model(event_publishes);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn negative_control_event_without_release_races() {
    weakened(Site::EventSet, event_publishes);
}

// ---- condvar ----

#[test]
fn condvar_notification_is_not_lost() {
    model(|| {
        let m = Arc::new(RawMutex::new());
        let cv = Arc::new(RawCondvar::new());
        let ready = Arc::new(UnsafeCell::new(false));
        let (m2, cv2, r2) = (Arc::clone(&m), Arc::clone(&cv), Arc::clone(&ready));
        let notifier = thread::spawn(move || {
            assert!(m2.lock(J, S).is_ok());
            // SAFETY: under the mutex (loom checks).
            r2.with_mut(|p| unsafe { *p = true });
            m2.unlock(J).unwrap();
            cv2.notify_one();
        });
        assert!(m.lock(J, S).is_ok());
        // SAFETY: under the mutex (loom checks).
        while !ready.with(|p| unsafe { *p }) {
            let key = cv.prepare_wait();
            m.unlock(J).unwrap();
            cv.park(S, key, None);
            assert!(m.lock(J, S).is_ok());
        }
        m.unlock(J).unwrap();
        notifier.join().unwrap();
    });
}

// ---- barrier ----

#[test]
fn barrier_releases_both_and_publishes_before_it() {
    model(|| {
        let b = Arc::new(RawBarrier::new(2).unwrap());
        let data = Arc::new([UnsafeCell::new(0u32), UnsafeCell::new(0u32)]);
        let leaders = Arc::new(AtomicUsize::new(0));
        let party = |i: usize| {
            let (b, data, leaders) = (Arc::clone(&b), Arc::clone(&data), Arc::clone(&leaders));
            move || {
                // SAFETY: each party writes its own cell before the barrier
                // and reads the other's after it (loom checks).
                data[i].with_mut(|p| unsafe { *p = 1 });
                let w = b
                    .wait(J, S, || {
                        leaders.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                // SAFETY: as above.
                assert_eq!(data[1 - i].with(|p| unsafe { *p }), 1);
                w.is_leader
            }
        };
        let h = thread::spawn(party(0));
        let mine = party(1)();
        let theirs = h.join().unwrap();
        assert!(mine != theirs, "exactly one leader");
        assert_eq!(leaders.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn barrier_with_a_dead_member_breaks() {
    model(|| {
        let b = Arc::new(RawBarrier::new(2).unwrap());
        let b2 = Arc::clone(&b);
        thread::spawn(move || {
            b2.register(J).unwrap();
            die();
        })
        .join()
        .unwrap();
        assert_eq!(
            b.wait(J, S, || {}),
            Err(multiproc_sync::BarrierError::Broken)
        );
        assert!(b.is_broken());
    });
}
