//! `ReentrantMutex`: nesting, owner-only unlock, a killed owner.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::liveness::OsJudge;
use multiproc_core::name::unique_name;
use multiproc_core::ExitStatus;
use multiproc_sync::{LockError, ReentrantMutex, TryLockError, UnlockError};
use std::sync::Arc;
use std::time::Duration;

const ITERS: u64 = 20_000;

fn nested_increments(m: &ReentrantMutex<u64>, n: u64) -> Result<(), String> {
    for _ in 0..n {
        let outer = m.lock().map_err(|e| e.to_string())?;
        let inner = m.lock().map_err(|e| e.to_string())?;
        inner.set(outer.get() + 1);
    }
    Ok(())
}

fn count_child(args: &[u8]) -> i32 {
    let m = ReentrantMutex::<u64>::open(&arg_name(args)).unwrap();
    i32::from(nested_increments(&m, ITERS).is_err())
}

#[test]
fn processes_count_with_nested_locks() {
    multiproc_core::process::init();
    let name = unique_name("rlock-count");
    let m = ReentrantMutex::create(&name, 0u64).unwrap();
    let c = spawn(
        "processes_count_with_nested_locks",
        count_child,
        &name_arg(&name),
    );
    nested_increments(&m, ITERS).unwrap();
    assert_eq!(join(&c), ExitStatus::Code(0));
    assert_eq!(m.lock().unwrap().get(), 2 * ITERS);
    assert_eq!(m.depth(), 0);
}

#[test]
fn only_the_owner_unlocks() {
    let m = ReentrantMutex::anonymous(1u32).unwrap();
    assert_eq!(m.raw().unlock(&OsJudge), Err(UnlockError::NotLocked));
    let g1 = m.lock().unwrap();
    let g2 = m.try_lock().unwrap();
    let g3 = m.lock_timeout(Duration::ZERO).unwrap();
    assert_eq!(m.depth(), 3);
    let seg = Arc::clone(m.segment());
    let r = std::thread::spawn(move || {
        let other = ReentrantMutex::<u32>::at(seg, 0).unwrap();
        (
            other.raw().unlock(&OsJudge),
            other.try_lock().map(|_| ()).map_err(|e| format!("{e:?}")),
            other
                .lock_timeout(Duration::from_millis(5))
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            other.depth(),
        )
    })
    .join()
    .unwrap();
    assert!(matches!(r.0, Err(UnlockError::NotOwner { .. })));
    assert_eq!(r.1, Err("WouldBlock".into()));
    assert_eq!(r.2, Err("TimedOut".into()));
    assert_eq!(r.3, 0);
    assert_eq!(g2.replace(9), 1);
    drop((g1, g2, g3));
    assert_eq!(m.depth(), 0);
    assert_eq!(m.lock().unwrap().get(), 9);
}

fn die_holding_twice(args: &[u8]) -> i32 {
    let m = ReentrantMutex::<u64>::open(&arg_name(args)).unwrap();
    let a = m.lock().unwrap();
    let b = m.lock().unwrap();
    b.set(77);
    std::mem::forget((a, b));
    park_forever()
}

#[test]
fn a_killed_owner_is_reported_and_repaired() {
    multiproc_core::process::init();
    let name = unique_name("rlock-kill");
    let m = ReentrantMutex::create(&name, 0u64).unwrap();
    let c = spawn(
        "a_killed_owner_is_reported_and_repaired",
        die_holding_twice,
        &name_arg(&name),
    );
    wait_for("the child to hold it", || {
        m.raw().is_held_by_current_thread(&OsJudge)
            || matches!(m.try_lock(), Err(TryLockError::WouldBlock))
    });
    kill(&c);
    let mut g = match m.lock() {
        Err(LockError::OwnerDied(d)) => d.into_guard(),
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| g.get())),
    };
    assert_eq!(g.get(), 77);
    assert_eq!(m.depth(), 1, "a dead owner's levels are not inherited");
    g.set(0);
    g.mark_consistent();
    drop(g);
    assert_eq!(m.lock().unwrap().get(), 0);
}
