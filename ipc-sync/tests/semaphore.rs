//! Semaphores across processes: limits, bounds, misuse, a killed waiter.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::header::HeaderError;
use multiproc_core::name::unique_name;
use multiproc_core::{ExitStatus, Kind, Segment, SegmentError};
use multiproc_sync::{BoundedSemaphore, Mutex, NotHeldError, ObjectError, ReleaseError, Semaphore};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PERMITS: u32 = 2;
const ROUNDS: u32 = 300;

/// Args: semaphore name, NUL, stats segment name. Counts how many holders
/// are inside at once; records the maximum.
fn limited_child(args: &[u8]) -> i32 {
    let text = arg_name(args);
    let (sem, stats) = text.split_once('\0').unwrap();
    let s = Semaphore::open(sem).unwrap();
    let seg = Segment::builder(Kind::BYTES).name(stats).open().unwrap();
    let inside: &AtomicU32 = seg.get(0).unwrap();
    let max: &AtomicU32 = seg.get(4).unwrap();
    for _ in 0..ROUNDS {
        s.acquire();
        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(n, Ordering::SeqCst);
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        inside.fetch_sub(1, Ordering::SeqCst);
        s.release().unwrap();
    }
    0
}

#[test]
fn a_semaphore_limits_concurrency_across_processes() {
    multiproc_core::process::init();
    let sem_name = unique_name("sem-limit");
    let stats_name = unique_name("sem-stats");
    let s = Semaphore::create(&sem_name, PERMITS).unwrap();
    let stats = Segment::builder(Kind::BYTES)
        .name(&stats_name)
        .size(64)
        .create()
        .unwrap();
    let args = format!("{sem_name}\0{stats_name}");
    let children: Vec<_> = (0..3)
        .map(|_| {
            spawn(
                "a_semaphore_limits_concurrency_across_processes",
                limited_child,
                args.as_bytes(),
            )
        })
        .collect();
    for c in &children {
        assert_eq!(join(c), ExitStatus::Code(0));
    }
    let max = stats.get::<AtomicU32>(4).unwrap().load(Ordering::SeqCst);
    assert!((1..=PERMITS).contains(&max), "max inside {max}");
    assert_eq!(s.value(), PERMITS);
    drop((s, stats));
    assert_no_leftover(&sem_name);
    assert_no_leftover(&stats_name);
}

fn acquire_child(args: &[u8]) -> i32 {
    let s = Semaphore::open(&arg_name(args)).unwrap();
    if s.acquire_timeout(Duration::from_secs(30)) {
        0
    } else {
        1
    }
}

#[test]
fn a_killed_waiter_does_not_wedge_the_others() {
    multiproc_core::process::init();
    const T: &str = "a_killed_waiter_does_not_wedge_the_others";
    let name = unique_name("sem-kill");
    let s = Semaphore::create(&name, 0).unwrap();
    let doomed = spawn(T, acquire_child, &name_arg(&name));
    wait_for("the child to park", || s.as_raw().waiters() == 1);
    kill(&doomed);
    let live = spawn(T, acquire_child, &name_arg(&name));
    wait_for("the second child to park", || s.as_raw().waiters() == 2);
    s.release().unwrap();
    assert_eq!(join(&live), ExitStatus::Code(0));
    assert_eq!(s.value(), 0);
    // The dead waiter's announcement only costs spare wake-ups.
    s.release().unwrap();
    assert!(s.try_acquire());
}

#[test]
fn bounded_release_past_the_bound_is_refused() {
    let b = BoundedSemaphore::anonymous((2, 2)).unwrap();
    assert_eq!(b.bound(), 2);
    assert_eq!(b.release(), Err(ReleaseError { bound: 2 }));
    assert_eq!(b.value(), 2);
    b.acquire();
    assert!(b.try_acquire());
    assert!(!b.try_acquire());
    assert!(!b.acquire_timeout(Duration::ZERO));
    assert!(!b.acquire_timeout(Duration::from_millis(5)));
    b.release().unwrap();
    {
        let _permit = b.access();
        assert_eq!(b.value(), 0);
    }
    b.release().unwrap();
    assert_eq!(b.release(), Err(ReleaseError { bound: 2 }));
    assert!(matches!(
        BoundedSemaphore::anonymous((1, u32::MAX)),
        Err(ObjectError::InvalidConfig { .. })
    ));
    assert!(matches!(
        BoundedSemaphore::anonymous((3, 2)),
        Err(ObjectError::InvalidConfig { .. })
    ));
    // A bound above the initial value: releases may raise it that far.
    let c = BoundedSemaphore::anonymous((0, 2)).unwrap();
    c.release().unwrap();
    c.release().unwrap();
    assert_eq!(c.release(), Err(ReleaseError { bound: 2 }));
}

#[test]
fn an_unbounded_semaphore_refuses_to_overflow() {
    let s = Semaphore::anonymous(u32::MAX - 1).unwrap();
    s.release().unwrap();
    assert_eq!(s.release(), Err(ReleaseError { bound: u32::MAX }));
    assert_eq!(s.value(), u32::MAX - 1 + 1);
}

#[test]
fn opening_a_name_holding_another_primitive_is_refused() {
    let name = unique_name("sem-tag");
    let _s = Semaphore::create(&name, 1).unwrap();
    let tag_error = |e: ObjectError| {
        matches!(
            e,
            ObjectError::Segment(SegmentError::Header {
                source: HeaderError::TypeTag { .. },
                ..
            })
        )
    };
    assert!(tag_error(Mutex::<u64>::open(&name).unwrap_err()));
    assert!(tag_error(BoundedSemaphore::open(&name).unwrap_err()));
    assert!(tag_error(multiproc_sync::Event::open(&name).unwrap_err()));
    assert_eq!(Semaphore::open(&name).unwrap().value(), 1);
    let m = unique_name("mtx-as-sem");
    let _m = Mutex::<u64>::create(&m, 0).unwrap();
    assert!(tag_error(Semaphore::open(&m).unwrap_err()));
}

#[test]
fn placed_at_an_offset_and_checked() {
    let seg = std::sync::Arc::new(Segment::builder(Kind::BYTES).size(256).create().unwrap());
    let s = Semaphore::init_at(seg.clone(), 16, 3).unwrap();
    let b = BoundedSemaphore::init_at(seg.clone(), 32, (1, 1)).unwrap();
    assert_eq!(Semaphore::at(seg.clone(), 16).unwrap().value(), 3);
    assert!(matches!(
        Semaphore::at(seg.clone(), 32),
        Err(ObjectError::WrongObject { .. })
    ));
    assert!(matches!(
        BoundedSemaphore::at(seg.clone(), 16),
        Err(ObjectError::WrongObject { .. })
    ));
    assert!(matches!(
        Semaphore::at(seg.clone(), 64),
        Err(ObjectError::WrongObject { .. })
    ));
    assert!(matches!(
        Semaphore::at(seg.clone(), 250),
        Err(ObjectError::Offset(_))
    ));
    s.acquire();
    b.acquire();
    assert_eq!((s.value(), b.value()), (2, 0));
}

/// Takes `args[1]` permits of the recoverable semaphore named `args[2..]`,
/// then waits to be killed.
fn hold_permits(args: &[u8]) -> i32 {
    let n = args[0];
    let s = multiproc_sync::RecoverableSemaphore::open(&arg_name(&args[1..])).unwrap();
    for _ in 0..n {
        s.acquire().unwrap();
    }
    park_forever()
}

#[test]
fn a_dead_holders_permits_come_back() {
    multiproc_core::process::init();
    const T: &str = "a_dead_holders_permits_come_back";
    let name = unique_name("rsem");
    let s = multiproc_sync::RecoverableSemaphore::create(&name, 3).unwrap();
    assert_eq!(s.release(), Err(NotHeldError));
    let mut args = vec![2u8];
    args.extend_from_slice(name.as_bytes());
    let c = spawn(T, hold_permits, &args);
    wait_for("the child to take two permits", || s.value() == 1);
    assert_eq!(s.try_acquire(), Ok(true));
    assert_eq!(s.try_acquire(), Ok(false));
    assert_eq!(s.recover(), 0, "a live holder keeps its permits");
    kill(&c);
    // A waiter reclaims the dead holder's permits by itself.
    assert_eq!(s.acquire_timeout(Duration::from_secs(30)), Ok(true));
    assert_eq!(s.held_by_me(), 2);
    assert_eq!(s.try_acquire(), Ok(true));
    assert_eq!(s.value(), 0);
    for _ in 0..3 {
        s.release().unwrap();
    }
    assert_eq!(s.release(), Err(NotHeldError));
    assert_eq!(s.value(), 3);
    // And on demand.
    let c = spawn(T, hold_permits, &args);
    wait_for("the child to take two permits", || s.value() == 1);
    kill(&c);
    assert_eq!(s.recover(), 2);
    assert_eq!(s.value(), 3);
    assert!(matches!(
        multiproc_sync::RecoverableSemaphore::anonymous(65),
        Err(ObjectError::InvalidConfig { .. })
    ));
    assert!(Semaphore::open(&name).is_err());
}
