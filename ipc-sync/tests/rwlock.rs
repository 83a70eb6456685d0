//! `RwLock`: readers see whole updates across processes; a killed writer.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::liveness::OsJudge;
use multiproc_core::name::unique_name;
use multiproc_core::ExitStatus;
use multiproc_sync::{LockError, LockTimeoutError, RwLock, TryLockError};
use std::time::Duration;

const ITERS: u64 = 20_000;

fn writer_child(args: &[u8]) -> i32 {
    let l = RwLock::<[u64; 2]>::open(&arg_name(args)).unwrap();
    for _ in 0..ITERS {
        let mut g = l.write().unwrap();
        g[0] += 1;
        g[1] += 1;
    }
    0
}

#[test]
fn readers_never_see_half_an_update() {
    multiproc_core::process::init();
    let name = unique_name("rw-count");
    let l = RwLock::create(&name, [0u64, 0]).unwrap();
    let w = spawn(
        "readers_never_see_half_an_update",
        writer_child,
        &name_arg(&name),
    );
    loop {
        let g = l.read().unwrap();
        assert_eq!(g[0], g[1], "a reader saw a torn update");
        if g[0] == ITERS {
            break;
        }
    }
    assert_eq!(join(&w), ExitStatus::Code(0));
    drop(l);
    assert_no_leftover(&name);
}

fn die_writing(args: &[u8]) -> i32 {
    let l = RwLock::<[u64; 2]>::open(&arg_name(args)).unwrap();
    let mut g = l.write().unwrap();
    g[0] += 1; // half an update
    g.leak();
    park_forever()
}

#[test]
fn a_killed_writer_is_reported_to_readers_and_writers() {
    multiproc_core::process::init();
    const T: &str = "a_killed_writer_is_reported_to_readers_and_writers";
    let name = unique_name("rw-kill");
    let l = RwLock::create(&name, [0u64, 0]).unwrap();

    let c = spawn(T, die_writing, &name_arg(&name));
    wait_for("the child to write-lock", || l.raw().is_write_locked());
    kill(&c);
    match l.read() {
        Err(LockError::OwnerDied(d)) => assert_eq!(*d.into_guard(), [1, 0]),
        Err(e) => panic!("expected OwnerDied, got {e:?}"),
        Ok(_) => panic!("expected OwnerDied, got a clean read"),
    }
    let mut g = match l.write() {
        Err(LockError::OwnerDied(d)) => d.into_guard(),
        Err(e) => panic!("expected OwnerDied, got {e:?}"),
        Ok(_) => panic!("expected OwnerDied, got a clean write"),
    };
    g[1] = g[0];
    g.mark_consistent();
    drop(g);
    assert_eq!(*l.read().unwrap(), [1, 1]);

    let c = spawn(T, die_writing, &name_arg(&name));
    wait_for("the child to write-lock", || l.raw().is_write_locked());
    kill(&c);
    match l.write_timeout(Duration::from_secs(30)) {
        Err(LockTimeoutError::OwnerDied(d)) => drop(d.into_guard()),
        Err(e) => panic!("expected OwnerDied, got {e:?}"),
        Ok(_) => panic!("expected OwnerDied, got a clean write"),
    }
    assert!(matches!(l.read(), Err(LockError::NotRecoverable)));
    assert!(matches!(l.try_write(), Err(TryLockError::NotRecoverable)));
}

/// Takes two read locks and waits to be killed.
fn die_reading(args: &[u8]) -> i32 {
    let l = RwLock::<[u64; 2]>::open(&arg_name(args)).unwrap();
    let a = l.read().unwrap();
    let b = l.read().unwrap();
    std::mem::forget((a, b));
    park_forever()
}

#[test]
fn a_killed_readers_locks_are_released_for_writers() {
    multiproc_core::process::init();
    let name = unique_name("rw-reader");
    let l = RwLock::create(&name, [0u64, 0]).unwrap();
    let c = spawn(
        "a_killed_readers_locks_are_released_for_writers",
        die_reading,
        &name_arg(&name),
    );
    wait_for("the child to read-lock twice", || l.raw().readers() == 2);
    let mine = l.read().unwrap();
    assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
    kill(&c);
    assert!(
        matches!(l.try_write(), Err(TryLockError::WouldBlock)),
        "a live reader remains"
    );
    assert_eq!(
        l.raw().readers(),
        1,
        "only the dead process's locks are released"
    );
    drop(mine);
    // No timeout: the writer must get in once the dead reader is noticed.
    let mut g = l.write().unwrap();
    g[0] = 1;
    drop(g);
    assert_eq!(*l.read().unwrap(), [1, 0]);
}

#[test]
fn misuse_and_timeouts() {
    let l = RwLock::anonymous(0u32).unwrap();
    let r = l.read().unwrap();
    assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
    assert!(matches!(
        l.write_timeout(Duration::ZERO),
        Err(LockTimeoutError::WouldBlock)
    ));
    assert!(matches!(
        l.write_timeout(Duration::from_millis(5)),
        Err(LockTimeoutError::TimedOut)
    ));
    drop(r);
    let w = l.write().unwrap();
    assert!(matches!(l.write(), Err(LockError::WouldDeadlock)));
    assert!(matches!(l.read(), Err(LockError::WouldDeadlock)));
    drop(w);
    assert!(l.raw().read_unlock(&OsJudge).is_err());
    assert!(l.raw().write_unlock(&OsJudge, true).is_err());
    assert_eq!(*l.read_timeout(Duration::ZERO).unwrap(), 0);
}
