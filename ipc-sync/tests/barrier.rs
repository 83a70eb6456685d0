//! Barriers across processes: rounds with an action, timeouts, dead parties.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::name::unique_name;
use multiproc_core::{ExitStatus, Kind, Segment};
use multiproc_sync::{Barrier, BarrierError, BarrierTimeoutError, ObjectError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ROUNDS: u64 = 100;

fn open_stats(name: &str) -> Arc<Segment> {
    Arc::new(Segment::builder(Kind::BYTES).name(name).open().unwrap())
}

/// Args: barrier name, NUL, stats name. Each round checks that nobody is a
/// round ahead; the action counts rounds.
fn round_child(args: &[u8]) -> i32 {
    let text = arg_name(args);
    let (b, stats) = text.split_once('\0').unwrap();
    let seg = open_stats(stats);
    let seg2 = Arc::clone(&seg);
    let b = Barrier::open(b).unwrap().with_action(move || {
        seg2.get::<AtomicU64>(0)
            .unwrap()
            .fetch_add(1, Ordering::SeqCst);
    });
    rounds(&b, &seg)
}

fn rounds(b: &Barrier, seg: &Segment) -> i32 {
    let done: &AtomicU64 = seg.get(0).unwrap();
    for r in 0..ROUNDS {
        if done.load(Ordering::SeqCst) != r {
            return 3;
        }
        if b.wait().is_err() {
            return 4;
        }
    }
    0
}

#[test]
fn three_processes_pass_rounds_and_the_action_runs_once_per_round() {
    multiproc_core::process::init();
    let bname = unique_name("bar-rounds");
    let sname = unique_name("bar-stats");
    let seg = Arc::new(
        Segment::builder(Kind::BYTES)
            .name(&sname)
            .size(64)
            .create()
            .unwrap(),
    );
    let seg2 = Arc::clone(&seg);
    let b = Barrier::create(&bname, 3).unwrap().with_action(move || {
        seg2.get::<AtomicU64>(0)
            .unwrap()
            .fetch_add(1, Ordering::SeqCst);
    });
    let args = format!("{bname}\0{sname}");
    let kids: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                "three_processes_pass_rounds_and_the_action_runs_once_per_round",
                round_child,
                args.as_bytes(),
            )
        })
        .collect();
    assert_eq!(rounds(&b, &seg), 0);
    for k in &kids {
        assert_eq!(join(k), ExitStatus::Code(0));
    }
    assert_eq!(
        seg.get::<AtomicU64>(0).unwrap().load(Ordering::SeqCst),
        ROUNDS
    );
    assert!(!b.is_broken());
    drop((b, seg));
    assert_no_leftover(&bname);
    assert_no_leftover(&sname);
}

/// Waits once: 0 passed, 10 broken, 11 timed out.
fn wait_once_child(args: &[u8]) -> i32 {
    let b = Barrier::open(&arg_name(args)).unwrap();
    match b.wait_timeout(Duration::from_secs(30)) {
        Ok(_) => 0,
        Err(BarrierTimeoutError::Broken) => 10,
        Err(BarrierTimeoutError::TimedOut) => 11,
        Err(_) => 12,
    }
}

/// Joins the barrier as a member, never arrives.
fn member_child(args: &[u8]) -> i32 {
    let _b = Barrier::open(&arg_name(args)).unwrap();
    park_forever()
}

#[test]
fn a_party_that_dies_before_arriving_breaks_the_barrier() {
    multiproc_core::process::init();
    const T: &str = "a_party_that_dies_before_arriving_breaks_the_barrier";
    let name = unique_name("bar-dead");
    let b = Barrier::create(&name, 3).unwrap();
    let waiter = spawn(T, wait_once_child, &name_arg(&name));
    let member = spawn(T, member_child, &name_arg(&name));
    wait_for("the waiter to arrive", || b.n_waiting() == 1);
    std::thread::sleep(Duration::from_millis(20)); // let the member register
    kill(&member);
    assert_eq!(join(&waiter), ExitStatus::Code(10));
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
}

#[test]
fn a_party_killed_while_waiting_does_not_wedge_the_others() {
    multiproc_core::process::init();
    const T: &str = "a_party_killed_while_waiting_does_not_wedge_the_others";
    let name = unique_name("bar-kill");
    let b = Barrier::create(&name, 3).unwrap();
    let doomed = spawn(T, wait_once_child, &name_arg(&name));
    wait_for("the first to arrive", || b.n_waiting() == 1);
    let other = spawn(T, wait_once_child, &name_arg(&name));
    wait_for("the second to arrive", || b.n_waiting() == 2);
    kill(&doomed);
    // The survivor notices the death and breaks the barrier.
    assert_eq!(join(&other), ExitStatus::Code(10));
    assert!(b.is_broken());
    assert_eq!(
        b.wait_timeout(Duration::from_secs(5)),
        Err(BarrierTimeoutError::Broken)
    );
}

#[test]
fn a_timeout_breaks_the_barrier_and_zero_parties_is_refused() {
    assert!(matches!(
        Barrier::anonymous(0),
        Err(ObjectError::InvalidConfig { .. })
    ));
    assert!(matches!(
        Barrier::anonymous(70_000),
        Err(ObjectError::InvalidConfig { .. })
    ));
    let b = Barrier::anonymous(2).unwrap();
    assert_eq!(b.parties(), 2);
    assert_eq!(
        b.wait_timeout(Duration::ZERO),
        Err(BarrierTimeoutError::TimedOut)
    );
    assert!(b.is_broken());
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    b.reset();
    assert_eq!(
        b.wait_timeout(Duration::from_millis(5)),
        Err(BarrierTimeoutError::TimedOut)
    );
    b.reset();
    let one = Barrier::anonymous(1).unwrap();
    let w = one.wait_timeout(Duration::ZERO).unwrap();
    assert!(w.is_leader);
    assert_eq!(w.index, 0);
}

#[test]
fn a_panicking_action_breaks_the_barrier() {
    let b = Barrier::anonymous(1)
        .unwrap()
        .with_action(|| panic!("action failed"));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait()));
    assert!(r.is_err());
    assert!(b.is_broken());
}

#[test]
fn a_forked_party_that_leaves_does_not_break_it() {
    let b = Barrier::anonymous(2).unwrap();
    let child = multiproc_core::Process::builder().fork_in_test(|| {
        let ok = b.wait().is_ok();
        b.leave();
        i32::from(!ok)
    });
    b.wait().unwrap();
    assert_eq!(join(&child), ExitStatus::Code(0));
    // Longer than a liveness period: the exited child must not count as dead.
    assert_eq!(
        b.wait_timeout(Duration::from_millis(30)),
        Err(BarrierTimeoutError::TimedOut)
    );
}
