//! `Mutex<T>`: misuse, counters across processes, and a holder killed with
//! SIGKILL.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::header::HeaderError;
use multiproc_core::liveness::OsJudge;
use multiproc_core::name::unique_name;
use multiproc_core::{ExitStatus, Kind, SegmentError};
use multiproc_sync::{
    LockError, LockTimeoutError, Mutex, ObjectError, TryLockError, UnlockError, WaitStrategy,
};
use std::sync::Arc;
use std::time::Duration;

/// `[count, inside]`: `inside` catches two holders at once.
type Counter = [u64; 2];

const ITERS: u64 = 100_000;

fn increment(m: &Mutex<Counter>, iters: u64) -> Result<(), String> {
    for _ in 0..iters {
        let mut g = m.lock().map_err(|e| format!("lock: {e}"))?;
        if g[1] != 0 {
            return Err("two holders at once".into());
        }
        g[1] = 1;
        g[0] += 1;
        g[1] = 0;
    }
    Ok(())
}

fn counter_child(args: &[u8]) -> i32 {
    let m = match Mutex::<Counter>::open(&arg_name(args)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("open: {e}");
            return 2;
        }
    };
    match increment(&m, ITERS) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            3
        }
    }
}

#[test]
fn processes_increment_a_counter_exactly() {
    multiproc_core::process::init();
    let name = unique_name("mtx-count");
    let m = Mutex::<Counter>::create(&name, [0, 0]).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                "processes_increment_a_counter_exactly",
                counter_child,
                &name_arg(&name),
            )
        })
        .collect();
    increment(&m, ITERS).unwrap();
    for c in &children {
        assert_eq!(join(c), ExitStatus::Code(0));
    }
    assert_eq!(*m.lock().unwrap(), [3 * ITERS, 0]);
    drop(m);
    assert_no_leftover(&name);
}

#[test]
fn threads_and_strategies_share_one_mutex() {
    let m = Arc::new(Mutex::<Counter>::anonymous([0, 0]).unwrap());
    let handles: Vec<_> = [
        WaitStrategy::BusySpin,
        WaitStrategy::Blocking,
        WaitStrategy::ADAPTIVE,
    ]
    .into_iter()
    .map(|s| {
        let seg = Arc::clone(m.segment());
        std::thread::spawn(move || {
            let m = Mutex::<Counter>::at(seg, 0).unwrap().with_wait_strategy(s);
            increment(&m, 20_000).unwrap();
        })
    })
    .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(m.lock().unwrap()[0], 60_000);
}

/// Locks, tells the parent through the data, then waits to be killed.
fn die_holding(args: &[u8]) -> i32 {
    let m = Mutex::<Counter>::open(&arg_name(args)).unwrap();
    let mut g = m.lock().unwrap();
    g[0] += 1;
    g[1] = 1; // "torn": the parent must repair it
    park_forever()
}

/// Opens the mutex and reports how locking went: 0 clean, 10 not
/// recoverable, 11 owner died, 12 other.
fn try_lock_child(args: &[u8]) -> i32 {
    let m = Mutex::<Counter>::open(&arg_name(args)).unwrap();
    let code = match m.lock_timeout(Duration::from_secs(30)) {
        Ok(_) => 0,
        Err(LockTimeoutError::NotRecoverable) => 10,
        Err(LockTimeoutError::OwnerDied(d)) => {
            let mut g = d.into_guard();
            g[1] = 0;
            g.mark_consistent();
            11
        }
        Err(e) => {
            eprintln!("{e}");
            12
        }
    };
    code
}

fn kill_holder(test: &str, name: &str, m: &Mutex<Counter>) {
    let c = spawn(test, die_holding, &name_arg(name));
    wait_for("the child to hold the lock", || {
        m.is_locked() && m.raw().holder().is_some_and(|(_, p)| p.pid == c.pid())
    });
    kill(&c);
}

#[test]
fn a_killed_holder_gives_owner_died_then_not_recoverable() {
    multiproc_core::process::init();
    const T: &str = "a_killed_holder_gives_owner_died_then_not_recoverable";
    let name = unique_name("mtx-kill");
    let m = Mutex::<Counter>::create(&name, [0, 0]).unwrap();

    // First death: repaired.
    kill_holder(T, &name, &m);
    let mut g = match m.lock() {
        Err(LockError::OwnerDied(d)) => {
            assert!(d.previous_owner().is_some());
            d.into_guard()
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    };
    assert!(!g.is_consistent());
    assert_eq!(*g, [1, 1]);
    g[1] = 0;
    g.mark_consistent();
    drop(g);
    *m.lock().unwrap() = [5, 0];
    assert_eq!(*m.try_lock().unwrap(), [5, 0]);

    // Second death, and this time the repair is abandoned.
    kill_holder(T, &name, &m);
    match m.lock_timeout(Duration::from_secs(30)) {
        Err(LockTimeoutError::OwnerDied(d)) => drop(d.into_guard()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(m.is_not_recoverable());
    assert!(matches!(m.lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(m.try_lock(), Err(TryLockError::NotRecoverable)));
    let c = spawn(T, try_lock_child, &name_arg(&name));
    assert_eq!(join(&c), ExitStatus::Code(10));
    drop(m);
    assert_no_leftover(&name);
}

#[test]
fn waiters_parked_on_a_dead_holder_are_released() {
    multiproc_core::process::init();
    const T: &str = "waiters_parked_on_a_dead_holder_are_released";
    let name = unique_name("mtx-park");
    let m = Mutex::<Counter>::create(&name, [0, 0]).unwrap();
    let holder = spawn(T, die_holding, &name_arg(&name));
    wait_for("the child to hold the lock", || m.is_locked());
    // Another process parks on the lock, then the holder dies: exactly one
    // of the two waiters sees OwnerDied and repairs.
    let waiter = spawn(T, try_lock_child, &name_arg(&name));
    std::thread::sleep(Duration::from_millis(20));
    kill(&holder);
    let i_repaired = match m.lock_timeout(Duration::from_secs(30)) {
        Ok(g) => {
            assert_eq!(g[1], 0, "a clean lock must see repaired data");
            drop(g);
            false
        }
        Err(LockTimeoutError::OwnerDied(d)) => {
            let mut g = d.into_guard();
            g[1] = 0;
            g.mark_consistent();
            true
        }
        Err(e) => panic!("{e:?}"),
    };
    let theirs = join(&waiter);
    if i_repaired {
        assert_eq!(theirs, ExitStatus::Code(0));
    } else {
        assert_eq!(theirs, ExitStatus::Code(11));
    }
    drop(m);
    assert_no_leftover(&name);
}

#[test]
fn misuse_gets_typed_errors() {
    let m = Mutex::<u64>::anonymous(7).unwrap();
    let g = m.lock().unwrap();
    assert!(matches!(m.lock(), Err(LockError::WouldDeadlock)));
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldDeadlock)));
    // Unlock by a thread that does not hold it.
    let seg = Arc::clone(m.segment());
    let r = std::thread::spawn(move || {
        let other = Mutex::<u64>::at(seg, 0).unwrap();
        (
            other.raw().unlock(&OsJudge),
            other.try_lock().map(|_| ()).map_err(|e| format!("{e:?}")),
            other
                .lock_timeout(Duration::ZERO)
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            other
                .lock_timeout(Duration::from_millis(5))
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
        )
    })
    .join()
    .unwrap();
    assert!(matches!(r.0, Err(UnlockError::NotOwner { .. })));
    assert_eq!(r.1, Err("WouldBlock".to_string()));
    assert_eq!(r.2, Err("WouldBlock".to_string()));
    assert_eq!(r.3, Err("TimedOut".to_string()));
    assert!(m.is_locked());
    drop(g);
    assert_eq!(m.raw().unlock(&OsJudge), Err(UnlockError::NotLocked));
    assert_eq!(*m.lock_timeout(Duration::ZERO).unwrap(), 7);
}

#[test]
fn opening_another_layout_or_version_is_refused() {
    let name = unique_name("mtx-layout");
    let _m = Mutex::<u64>::create(&name, 1).unwrap();
    // Same primitive, another value type.
    match Mutex::<[u64; 4]>::open(&name) {
        Err(ObjectError::Segment(SegmentError::Header {
            source: HeaderError::LayoutHash { .. },
            ..
        })) => {}
        other => panic!("expected a layout error, got {other:?}"),
    }
    // Another layout version of the mutex.
    let v2 = unique_name("mtx-v2");
    let k = <multiproc_sync::DataCell<multiproc_sync::raw::RawMutex, u64> as multiproc_core::object::ShmObject>::KIND;
    let _seg = multiproc_core::Segment::builder(Kind::new("ipc-sync/mutex", 2, k.layout_hash))
        .name(&v2)
        .size(64)
        .create()
        .unwrap();
    match Mutex::<u64>::open(&v2) {
        Err(ObjectError::Segment(SegmentError::Header {
            source: HeaderError::TypeVersion { found: 2, .. },
            ..
        })) => {}
        other => panic!("expected a version error, got {other:?}"),
    }
    // Not a mutex at all.
    let bytes = unique_name("mtx-bytes");
    let _b = multiproc_core::Segment::builder(Kind::BYTES)
        .name(&bytes)
        .size(64)
        .create()
        .unwrap();
    assert!(matches!(
        Mutex::<u64>::open(&bytes),
        Err(ObjectError::Segment(SegmentError::Header {
            source: HeaderError::TypeTag { .. },
            ..
        }))
    ));
    assert!(matches!(
        Mutex::<u64>::open(&unique_name("mtx-none")),
        Err(ObjectError::Segment(SegmentError::NotFound { .. }))
    ));
}

#[test]
fn placed_at_an_offset_of_any_segment() {
    let seg = Arc::new(
        multiproc_core::Segment::builder(Kind::BYTES)
            .size(4096)
            .create()
            .unwrap(),
    );
    let a = Mutex::<u64>::init_at(Arc::clone(&seg), 0, 1).unwrap();
    let b = Mutex::<u64>::init_at(Arc::clone(&seg), 128, 2).unwrap();
    *a.lock().unwrap() += 10;
    let b2 = Mutex::<u64>::at(Arc::clone(&seg), 128).unwrap();
    let _held = b.lock().unwrap();
    assert!(matches!(b2.try_lock(), Err(TryLockError::WouldDeadlock)));
    assert_eq!(
        *Mutex::<u64>::at(Arc::clone(&seg), 0)
            .unwrap()
            .lock()
            .unwrap(),
        11
    );
    // Out of bounds, misaligned, and a place holding no mutex.
    assert!(matches!(
        Mutex::<u64>::at(Arc::clone(&seg), 4090),
        Err(ObjectError::Offset(_))
    ));
    assert!(matches!(
        Mutex::<u64>::at(Arc::clone(&seg), 3),
        Err(ObjectError::Offset(_))
    ));
    assert!(matches!(
        Mutex::<u64>::at(Arc::clone(&seg), 1024),
        Err(ObjectError::WrongObject { .. })
    ));
    assert!(matches!(
        Mutex::<[u64; 2]>::at(Arc::clone(&seg), 0),
        Err(ObjectError::WrongObject { .. })
    ));
}

#[test]
fn a_forked_child_shares_an_anonymous_mutex() {
    let m = Mutex::<Counter>::anonymous([0, 0]).unwrap();
    // The parent's thread identity is cached before the fork: the child
    // must not inherit it (it would take the parent's lock for its own).
    drop(m.lock().unwrap());
    let held = m.lock().unwrap();
    let child = multiproc_core::Process::builder()
        .fork_in_test(|| matches!(m.try_lock(), Err(TryLockError::WouldBlock)) as i32);
    assert_eq!(join(&child), ExitStatus::Code(1));
    drop(held);
    let child =
        multiproc_core::Process::builder().fork_in_test(|| increment(&m, 10_000).is_ok() as i32);
    increment(&m, 10_000).unwrap();
    assert_eq!(join(&child), ExitStatus::Code(1));
    assert_eq!(m.lock().unwrap()[0], 20_000);
}

fn fd_child(_: &[u8]) -> i32 {
    let fd = multiproc_core::process::take_inherited_fd(0).expect("fd 0");
    let m = Mutex::<Counter>::from_fd(fd).unwrap();
    increment(&m, 1000).is_ok() as i32
}

#[test]
fn a_spawned_child_gets_an_anonymous_mutex_by_descriptor() {
    multiproc_core::process::init();
    let m = Mutex::<Counter>::anonymous([0, 0]).unwrap();
    let c = spawn_with_fd(
        "a_spawned_child_gets_an_anonymous_mutex_by_descriptor",
        fd_child,
        b"",
        m.segment().fd(),
    );
    assert_eq!(join(&c), ExitStatus::Code(1));
    assert_eq!(m.lock().unwrap()[0], 1000);
}
