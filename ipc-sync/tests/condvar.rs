//! Condition variables across processes with the robust mutex.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::name::unique_name;
use multiproc_core::ExitStatus;
use multiproc_sync::{Condvar, Mutex};
use std::time::Duration;

/// `[turn, wanted]`.
type State = [u64; 2];
const ROUNDS: u64 = 500;

fn open(args: &[u8]) -> (Mutex<State>, Condvar) {
    let name = arg_name(args);
    (
        Mutex::open(&format!("{name}.m")).unwrap(),
        Condvar::open(&format!("{name}.c")).unwrap(),
    )
}

fn create(name: &str) -> (Mutex<State>, Condvar) {
    (
        Mutex::create(&format!("{name}.m"), [0, 0]).unwrap(),
        Condvar::create(&format!("{name}.c")).unwrap(),
    )
}

/// Takes the odd turns.
fn odd_child(args: &[u8]) -> i32 {
    let (m, cv) = open(args);
    for _ in 0..ROUNDS {
        let mut g = cv.wait_while(m.lock().unwrap(), |s| s[0] % 2 == 0).unwrap();
        g[0] += 1;
        drop(g);
        cv.notify_all();
    }
    0
}

#[test]
fn two_processes_take_turns() {
    multiproc_core::process::init();
    let name = unique_name("cv-turns");
    let (m, cv) = create(&name);
    let c = spawn("two_processes_take_turns", odd_child, &name_arg(&name));
    for _ in 0..ROUNDS {
        let mut g = cv.wait_while(m.lock().unwrap(), |s| s[0] % 2 == 1).unwrap();
        g[0] += 1;
        drop(g);
        cv.notify_one();
    }
    assert_eq!(join(&c), ExitStatus::Code(0));
    assert_eq!(m.lock().unwrap()[0], 2 * ROUNDS);
}

/// Waits until `wanted` names this child (args: name, NUL, id); exit 0.
fn wanted_child(args: &[u8]) -> i32 {
    let text = arg_name(args);
    let (name, id) = text.split_once('\0').unwrap();
    let id: u64 = id.parse().unwrap();
    let (m, cv) = open(name.as_bytes());
    let (g, r) = cv
        .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(30), |s| s[1] != id)
        .unwrap();
    i32::from(r.timed_out() || g[1] != id)
}

#[test]
fn notify_wakes_the_party_whose_condition_holds() {
    multiproc_core::process::init();
    const T: &str = "notify_wakes_the_party_whose_condition_holds";
    let name = unique_name("cv-right");
    let (m, cv) = create(&name);
    let a = spawn(T, wanted_child, format!("{name}\x001").as_bytes());
    let b = spawn(T, wanted_child, format!("{name}\x002").as_bytes());
    wait_for("both to wait", || cv.as_raw().waiters() == 2);
    m.lock().unwrap()[1] = 1;
    cv.notify_all();
    assert_eq!(join(&a), ExitStatus::Code(0));
    wait_for("b to wait again", || cv.as_raw().waiters() == 1);
    assert!(b.is_alive());
    m.lock().unwrap()[1] = 2;
    cv.notify_one();
    assert_eq!(join(&b), ExitStatus::Code(0));
}

#[test]
fn a_killed_waiter_does_not_wedge_the_condvar() {
    multiproc_core::process::init();
    const T: &str = "a_killed_waiter_does_not_wedge_the_condvar";
    let name = unique_name("cv-kill");
    let (m, cv) = create(&name);
    let doomed = spawn(T, wanted_child, format!("{name}\x007").as_bytes());
    wait_for("the child to wait", || cv.as_raw().waiters() == 1);
    kill(&doomed);
    // The mutex is free (the waiter released it), the condvar still works.
    let live = spawn(T, wanted_child, format!("{name}\x003").as_bytes());
    wait_for("the second child to wait", || cv.as_raw().waiters() == 2);
    m.lock().unwrap()[1] = 3;
    cv.notify_one();
    assert_eq!(join(&live), ExitStatus::Code(0));
}

#[test]
fn timeouts_return_timed_out_and_the_guard() {
    let m = Mutex::anonymous([0u64, 0]).unwrap();
    let cv = Condvar::anonymous().unwrap();
    let (g, r) = cv
        .wait_timeout(m.lock().unwrap(), Duration::from_millis(5))
        .unwrap();
    assert!(r.timed_out());
    let (g, r) = cv.wait_timeout(g, Duration::ZERO).unwrap();
    assert!(r.timed_out());
    let (g, r) = cv
        .wait_timeout_while(g, Duration::from_millis(5), |s| s[0] == 0)
        .unwrap();
    assert!(r.timed_out());
    let (_g, r) = cv
        .wait_timeout_while(g, Duration::ZERO, |s| s[0] != 0)
        .unwrap();
    assert!(!r.timed_out());
    cv.notify_all();
    cv.notify_one();
}

#[test]
fn a_waiter_relocking_after_a_dead_holder_gets_owner_died() {
    let m = std::sync::Arc::new(Mutex::anonymous([0u64, 0]).unwrap());
    let cv = std::sync::Arc::new(Condvar::anonymous().unwrap());
    let g = m.lock().unwrap();
    let (seg_m, seg_c) = (m.segment().clone(), cv.segment().clone());
    // A thread that takes the lock, notifies and exits holding it: the
    // waiter wakes, and relocking finds a dead owner.
    let h = std::thread::spawn(move || {
        let m = Mutex::<State>::at(seg_m, 0).unwrap();
        let cv = Condvar::at(seg_c, 0).unwrap();
        let mut g = m.lock().unwrap();
        g[0] = 1;
        cv.notify_all();
        g.leak();
    });
    let r = cv.wait_while(g, |s| s[0] == 0);
    h.join().unwrap();
    match r {
        Err(multiproc_sync::LockError::OwnerDied(d)) => {
            let mut g = d.into_guard();
            assert_eq!(g[0], 1);
            g.mark_consistent();
        }
        Err(e) => panic!("expected OwnerDied, got {e:?}"),
        Ok(_) => panic!("expected OwnerDied, got a clean relock"),
    }
    assert_eq!(m.lock().unwrap()[0], 1);
}
