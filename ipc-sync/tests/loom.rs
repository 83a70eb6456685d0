//! Loom model checking of the raw robust lock algorithm (`RawMutex`,
//! `RawReentrantMutex`) on the heap: every interleaving of the model
//! threads, under the C11 memory model loom simulates.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p ipc-sync --test loom --release`
#![cfg(loom)]

use ipc_sync::raw::loom_support::die;
use ipc_sync::raw::{Acquired, RawLockError, RawMutex, RawReentrantMutex};
use ipc_sync::WaitStrategy;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const S: WaitStrategy = WaitStrategy::Blocking;

#[test]
fn two_threads_exclude_each_other() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let data = Arc::new(UnsafeCell::new(0u32));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (m, data) = (Arc::clone(&m), Arc::clone(&data));
                thread::spawn(move || {
                    assert_eq!(m.lock(S), Ok(Acquired::Clean));
                    // SAFETY: loom checks this access is exclusive.
                    data.with_mut(|p| unsafe { *p += 1 });
                    m.unlock().unwrap();
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(m.lock(S), Ok(Acquired::Clean));
        // SAFETY: the lock is held, every other thread joined.
        assert_eq!(data.with(|p| unsafe { *p }), 2);
        m.unlock().unwrap();
    });
}

#[test]
fn try_lock_and_a_waiter() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let m2 = Arc::clone(&m);
        let h = thread::spawn(move || match m2.try_lock() {
            Ok(Acquired::Clean) => {
                m2.unlock().unwrap();
                true
            }
            Err(RawLockError::WouldBlock) => false,
            other => panic!("{other:?}"),
        });
        assert_eq!(m.lock(S), Ok(Acquired::Clean));
        m.unlock().unwrap();
        h.join().unwrap();
        assert!(!m.is_locked());
    });
}

#[test]
fn a_dead_holder_is_reported_exactly_once() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let died = Arc::new(AtomicUsize::new(0));
        let data = Arc::new(UnsafeCell::new(0u32));
        let (m1, d1) = (Arc::clone(&m), Arc::clone(&data));
        let victim = thread::spawn(move || {
            assert!(m1.lock(S).is_ok());
            // SAFETY: exclusive under the lock (loom checks).
            d1.with_mut(|p| unsafe { *p += 1 });
            die(); // holds the lock for ever
        });
        let (m2, died2, d2) = (Arc::clone(&m), Arc::clone(&died), Arc::clone(&data));
        let other = thread::spawn(move || {
            match m2.lock(S) {
                Ok(Acquired::Clean) => {}
                Ok(Acquired::OwnerDied { .. }) => {
                    died2.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => panic!("{e:?}"),
            }
            // SAFETY: exclusive under the lock, also after a takeover.
            d2.with_mut(|p| unsafe { *p += 1 });
            m2.unlock().unwrap();
        });
        victim.join().unwrap();
        other.join().unwrap();
        match m.lock(S) {
            Ok(Acquired::Clean) => {}
            Ok(Acquired::OwnerDied { .. }) => {
                died.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(died.load(Ordering::SeqCst), 1);
        // SAFETY: held, everyone else joined.
        assert_eq!(data.with(|p| unsafe { *p }), 2);
        m.unlock().unwrap();
    });
}

#[test]
fn an_unrepaired_takeover_is_not_recoverable() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let m1 = Arc::clone(&m);
        thread::spawn(move || {
            assert!(m1.lock(S).is_ok());
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
            move || match m.lock(S) {
                Ok(Acquired::OwnerDied { .. }) => {
                    took.fetch_add(1, Ordering::SeqCst);
                    m.unlock_not_recoverable().unwrap();
                }
                Err(RawLockError::NotRecoverable) => {
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
        assert_eq!(m.try_lock(), Err(RawLockError::NotRecoverable));
    });
}

#[test]
fn reentrant_owner_nests_and_others_wait() {
    loom::model(|| {
        let m = Arc::new(RawReentrantMutex::new());
        let m2 = Arc::clone(&m);
        let h = thread::spawn(move || {
            assert!(m2.lock_until(S, None).is_ok());
            assert!(m2.lock_until(S, None).is_ok());
            assert_eq!(m2.depth(), 2);
            m2.unlock().unwrap();
            m2.unlock().unwrap();
        });
        assert!(m.lock_until(S, None).is_ok());
        assert_eq!(m.depth(), 1);
        m.unlock().unwrap();
        h.join().unwrap();
        assert_eq!(m.depth(), 0);
    });
}
