//! Queues and pipe ends handed to child processes, both ways a child
//! starts: captured by a forked closure, and given in a spawned child's
//! arguments. A plain `main` (no test harness), because fork is refused in
//! a process with threads and the harness runs tests on threads.
//!
//! The Python idiom is checked first: the parent gives the child its end
//! and drops its own copy, the child sends after a while, and the parent
//! still receives what the child sent, then `Closed` once the child is
//! done, never a silent loss.

use multiproc_core::process::{self, Process};
use multiproc_queue::error::RecvError;
use multiproc_queue::pipe::{pipe, Connection};
use multiproc_queue::queue::{JoinableQueue, Queue, SimpleQueue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A user's struct, derived, with no hand-made encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    symbol: String,
    legs: Vec<(String, f64)>,
}

fn order(id: u64) -> Order {
    Order {
        id,
        symbol: format!("SYM{id}"),
        legs: vec![("buy".into(), 1.5), ("sell".into(), id as f64)],
    }
}

fn words() -> Vec<String> {
    vec!["hello".to_string(), "world".to_string()]
}

/// The child of the spawn case: sends late, after the parent dropped its
/// copy of this end.
fn send_late(mut end: Connection) -> u32 {
    std::thread::sleep(Duration::from_millis(200));
    end.send(&words()).expect("send");
    end.send(&order(7)).expect("send");
    2
}

/// Puts orders into a queue given as an argument and returns the last one.
fn put_orders((q, n): (Queue<Order>, u64)) -> Order {
    for id in 0..n {
        q.put(order(id)).expect("put");
    }
    order(n - 1)
}

/// A worker of a joinable queue given as an argument: doubles every leg's
/// price into a simple queue.
fn double_legs((jobs, out): (JoinableQueue<Order>, SimpleQueue<f64>)) {
    while let Ok(o) = jobs.get_timeout(Duration::from_secs(5)) {
        for (_, px) in &o.legs {
            out.put(px * 2.0).expect("put");
        }
        jobs.task_done().expect("task_done");
    }
}

fn fork_idiom() {
    let (mut mine, theirs) = pipe().expect("pipe");
    let child = Process::builder()
        .fork(move || {
            let mut end = theirs;
            std::thread::sleep(Duration::from_millis(200));
            end.send(&words()).expect("send");
            0
        })
        .expect("fork");
    // The closure, and the parent's copy of the child's end in it, are
    // dropped here: the end stays open for the child.
    assert_eq!(mine.recv::<Vec<String>>().expect("recv"), words());
    child.join().expect("join");
    assert_eq!(mine.recv::<Vec<String>>(), Err(RecvError::Closed));
    println!("fork idiom: ok");
}

fn spawn_idiom() {
    let (mut mine, theirs) = pipe().expect("pipe");
    let child = Process::start(send_late, theirs).expect("start");
    // `theirs` was moved into `start`, which dropped the parent's copy.
    assert_eq!(mine.recv::<Vec<String>>().expect("recv"), words());
    assert_eq!(mine.recv::<Order>().expect("recv"), order(7));
    assert_eq!(child.join().expect("join"), 2);
    assert_eq!(
        mine.recv_timeout::<Order>(Duration::from_secs(5)),
        Err(multiproc_queue::error::RecvTimeoutError::Closed)
    );
    println!("spawn idiom: ok");
}

fn queues_as_arguments() {
    let q = Queue::<Order>::new(64).expect("queue");
    let child = Process::start(put_orders, (q.clone(), 20)).expect("start");
    for id in 0..20 {
        assert_eq!(q.get().expect("get"), order(id));
    }
    assert_eq!(child.join().expect("join"), order(19));

    // A named queue travels by name, to a forked child and back.
    let name = multiproc_core::name::unique_name("ends-in-children");
    let named = Queue::<Order>::builder()
        .name(&name)
        .maxsize(8)
        .create()
        .expect("named queue");
    let child = Process::builder()
        .start_method(process::StartMethod::Fork)
        .start(put_orders, (named.clone(), 3))
        .expect("start");
    assert_eq!(child.join().expect("join"), order(2));
    for id in 0..3 {
        assert_eq!(named.get().expect("get"), order(id));
    }

    let jobs = JoinableQueue::<Order>::new(16).expect("joinable");
    let out = SimpleQueue::<f64>::new().expect("simple");
    let workers: Vec<_> = (0..2)
        .map(|_| Process::start(double_legs, (jobs.clone(), out.clone())).expect("start"))
        .collect();
    for id in 1..=10 {
        jobs.put(order(id)).expect("put");
    }
    jobs.join();
    let mut total = 0.0;
    for _ in 0..20 {
        total += out.get().expect("get");
    }
    // Each order: 1.5 and id, doubled.
    assert_eq!(total, 2.0 * (10.0 * 1.5 + 55.0));
    jobs.close();
    for w in workers {
        w.join().expect("join");
    }
    println!("queues as arguments: ok");
}

fn main() {
    process::init();
    fork_idiom();
    spawn_idiom();
    queues_as_arguments();
}
