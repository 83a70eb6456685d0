//! Events across processes: wake every waiter, timeouts, a killed waiter.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::name::unique_name;
use multiproc_core::ExitStatus;
use multiproc_sync::{Event, WaitStrategy};
use std::time::Duration;

/// Exit 0 if the event was set within 30 s, 1 if not.
fn wait_child(args: &[u8]) -> i32 {
    let e = Event::open(&arg_name(args)).unwrap();
    i32::from(!e.wait_timeout(Duration::from_secs(30)))
}

/// Exit 0 if a short wait times out on the clear event.
fn short_wait_child(args: &[u8]) -> i32 {
    let e = Event::open(&arg_name(args))
        .unwrap()
        .with_wait_strategy(WaitStrategy::Blocking);
    i32::from(e.wait_timeout(Duration::from_millis(20)))
}

#[test]
fn set_wakes_every_waiting_process() {
    multiproc_core::process::init();
    const T: &str = "set_wakes_every_waiting_process";
    let name = unique_name("evt-wake");
    let e = Event::create(&name).unwrap();
    let timeout = spawn(T, short_wait_child, &name_arg(&name));
    assert_eq!(join(&timeout), ExitStatus::Code(0));
    let waiters: Vec<_> = (0..2)
        .map(|_| spawn(T, wait_child, &name_arg(&name)))
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        waiters.iter().all(|w| w.is_alive()),
        "nobody may pass a clear event"
    );
    e.set();
    for w in &waiters {
        assert_eq!(join(w), ExitStatus::Code(0));
    }
    assert!(e.is_set());
    e.clear();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(Duration::ZERO));
    drop(e);
    assert_no_leftover(&name);
}

#[test]
fn a_killed_waiter_does_not_wedge_the_event() {
    multiproc_core::process::init();
    const T: &str = "a_killed_waiter_does_not_wedge_the_event";
    let name = unique_name("evt-kill");
    let e = Event::create(&name)
        .unwrap()
        .with_wait_strategy(WaitStrategy::Blocking);
    let doomed = spawn(T, wait_child, &name_arg(&name));
    std::thread::sleep(Duration::from_millis(20));
    kill(&doomed);
    let live = spawn(T, wait_child, &name_arg(&name));
    std::thread::sleep(Duration::from_millis(20));
    e.set();
    assert_eq!(join(&live), ExitStatus::Code(0));
    e.wait();
}

#[test]
fn threads_wait_with_each_strategy() {
    let e = std::sync::Arc::new(Event::anonymous().unwrap());
    let hs: Vec<_> = [
        WaitStrategy::BusySpin,
        WaitStrategy::Blocking,
        WaitStrategy::ADAPTIVE,
    ]
    .into_iter()
    .map(|s| {
        let seg = e.segment().clone();
        std::thread::spawn(move || {
            Event::at(seg, 0).unwrap().with_wait_strategy(s).wait();
        })
    })
    .collect();
    std::thread::sleep(Duration::from_millis(5));
    e.set();
    for h in hs {
        h.join().unwrap();
    }
}
