//! Handles are values: passed in the arguments of `Process::start`, a lock,
//! event, semaphore, value or barrier arrives usable in the child (an
//! anonymous one by its descriptor, a named one by its name).
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::message::Message;
use multiproc_core::name::unique_name;
use multiproc_core::process::{test_exec_args, Process};
use multiproc_sync::{Barrier, Event, Mutex, Semaphore, Value, WaitStrategy};

/// Locks, increments, sets the event; returns what it saw and the wait
/// strategy that travelled with the mutex.
fn bump((m, e): (Mutex<u64>, Event)) -> (u64, bool) {
    let mut g = m.lock().expect("lock");
    *g += 1;
    let v = *g;
    drop(g);
    e.set();
    (v, m.wait_strategy() == WaitStrategy::Blocking)
}

#[test]
fn an_anonymous_mutex_and_event_arrive_usable_in_a_spawned_child() {
    multiproc_core::process::init();
    let m = Mutex::anonymous(41u64)
        .unwrap()
        .with_wait_strategy(WaitStrategy::Blocking);
    let e = Event::anonymous().unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "an_anonymous_mutex_and_event_arrive_usable_in_a_spawned_child",
        ))
        .start(bump, (m.clone(), e.clone()))
        .unwrap();
    assert_eq!(child.join().unwrap(), (42, true));
    assert!(e.is_set());
    assert_eq!(*m.lock().unwrap(), 42);
}

/// Adds to the mutex, releases the semaphore, sets the value, then meets
/// the parent at the barrier; returns the barrier's arrival index.
fn named_child((m, s, v, b): (Mutex<u64>, Semaphore, Value<u32>, Barrier)) -> u32 {
    *m.lock().expect("lock") += 10;
    s.release().expect("release");
    v.set(7).expect("set");
    b.wait().expect("barrier").index
}

#[test]
fn named_handles_arrive_by_name() {
    multiproc_core::process::init();
    let names: Vec<String> = ["hm", "hs", "hv", "hb"]
        .iter()
        .map(|n| unique_name(n))
        .collect();
    let m = Mutex::create(&names[0], 1u64).unwrap();
    let s = Semaphore::create(&names[1], 0).unwrap();
    let v = Value::create(&names[2], 0u32).unwrap();
    let b = Barrier::create(&names[3], 2).unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args("named_handles_arrive_by_name"))
        .start(named_child, (m.clone(), s.clone(), v.clone(), b.clone()))
        .unwrap();
    let mine = b.wait().unwrap().index;
    let theirs = child.join().unwrap();
    assert_eq!(mine + theirs, 1, "one arrived first, the other second");
    assert_eq!(*m.lock().unwrap(), 11);
    assert!(s.try_acquire());
    assert_eq!(v.get().unwrap(), 7);
    drop((m, s, v, b));
    for n in &names {
        assert_no_leftover(n);
    }
}

#[test]
fn an_anonymous_handle_cannot_travel_outside_a_spawn() {
    let m = Mutex::anonymous(0u64).unwrap();
    let mut bytes = Vec::new();
    let e = m.encode(&mut bytes).unwrap_err();
    assert!(
        bytes.is_empty(),
        "nothing of a failed encoding is left: {e}"
    );
    assert!(
        matches!(e, multiproc_core::message::EncodeError::Handle(ref r) if r.contains("arguments of a child")),
        "the reason survives the serializer: {e}"
    );
}

#[test]
fn a_named_handle_round_trips_and_is_checked_on_arrival() {
    let name = unique_name("hround");
    let m = Mutex::create(&name, 5u64).unwrap();
    let mut bytes = Vec::new();
    m.encode(&mut bytes).unwrap();
    let back = Mutex::<u64>::decode(&bytes).unwrap();
    *back.lock().unwrap() += 1;
    assert_eq!(*m.lock().unwrap(), 6);
    // The same bytes do not make a handle of another kind or value type.
    assert!(Semaphore::decode(&bytes).is_err());
    assert!(Mutex::<u32>::decode(&bytes).is_err());
    // Nor a handle to a segment that is gone.
    drop((m, back));
    assert!(Mutex::<u64>::decode(&bytes).is_err());
    assert_no_leftover(&name);
}
