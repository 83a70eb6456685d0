//! `Queue` and `JoinableQueue` across processes: worker processes get items,
//! mark them done, and the parent's `join` returns only once all are done.

use multiproc_core::process::{self, test_exec_args, ExitStatus, Process};
use multiproc_core::{Kind, Segment};
use multiproc_queue::error::RecvError;
use multiproc_queue::queue::{JoinableQueue, Queue, TaskDoneError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Gets items until the queue is closed and drained; adds each to a shared
/// sum *before* marking it done, so `join` returning proves the work is in.
fn worker(_: &[u8]) -> i32 {
    let q = JoinableQueue::<u64>::from_fd(process::take_inherited_fd(0).unwrap()).unwrap();
    let out = Segment::from_fd(process::take_inherited_fd(1).unwrap(), Kind::BYTES).unwrap();
    let sum: &AtomicU64 = out.get(0).unwrap();
    let count: &AtomicU64 = out.get(8).unwrap();
    loop {
        match q.get() {
            Ok(v) => {
                sum.fetch_add(v, Ordering::AcqRel);
                count.fetch_add(1, Ordering::AcqRel);
                if q.task_done().is_err() {
                    return 3;
                }
            }
            Err(RecvError::Closed) => return 0,
            Err(e) => {
                eprintln!("worker: {e}");
                return 4;
            }
        }
    }
}

#[test]
fn join_waits_for_task_done_from_worker_processes() {
    process::init();
    let q = JoinableQueue::<u64>::new(8).unwrap();
    let out = Segment::builder(Kind::BYTES).size(64).create().unwrap();
    let workers: Vec<Process> = (0..2)
        .map(|_| {
            Process::builder()
                .daemon(true)
                .exec_args(test_exec_args(
                    "join_waits_for_task_done_from_worker_processes",
                ))
                .inherit_fd(q.fd())
                .inherit_fd(out.fd())
                .spawn(worker, b"")
                .unwrap()
        })
        .collect();
    let sum: &AtomicU64 = out.get(0).unwrap();
    let count: &AtomicU64 = out.get(8).unwrap();
    let mut expected = 0;
    for batch in 0..3u64 {
        for v in 1..=1000u64 {
            q.put(v * (batch + 1)).unwrap();
            expected += v * (batch + 1);
        }
        assert!(q.join_timeout(Duration::from_secs(60)), "join timed out");
        // Every item of the batch was taken and accounted before task_done.
        assert_eq!(sum.load(Ordering::Acquire), expected);
        assert_eq!(count.load(Ordering::Acquire), 1000 * (batch + 1));
        assert_eq!(q.unfinished(), 0);
    }
    assert_eq!(q.task_done(), Err(TaskDoneError));
    q.close();
    for w in &workers {
        let st = w.join_timeout(Duration::from_secs(60)).unwrap();
        if st.is_none() {
            let _ = w.kill();
        }
        assert_eq!(st, Some(ExitStatus::Code(0)));
    }
    assert_eq!(q.lost(), 0);
}

fn named_producer(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).unwrap();
    let q = Queue::<[u32; 4]>::open(name).unwrap();
    for i in 0..500u32 {
        q.put([i, i * 2, i * 3, 0xfeed]).unwrap();
    }
    q.put_bytes(b"done").unwrap();
    0
}

#[test]
fn a_named_queue_is_opened_by_an_unrelated_process() {
    process::init();
    let name = multiproc_core::name::unique_name("queue-named");
    let q = Queue::<[u32; 4]>::builder()
        .name(&name)
        .maxsize(16)
        .create()
        .unwrap();
    // A plain queue does not open as joinable. (The item type is checked
    // per message: a message of another type is a decode error.)
    assert!(JoinableQueue::<[u32; 4]>::open(&name).is_err());
    let child = Process::builder()
        .daemon(true)
        .exec_args(test_exec_args(
            "a_named_queue_is_opened_by_an_unrelated_process",
        ))
        .spawn(named_producer, name.as_bytes())
        .unwrap();
    for i in 0..500u32 {
        assert_eq!(q.get().unwrap(), [i, i * 2, i * 3, 0xfeed]);
    }
    assert_eq!(q.get_bytes().unwrap(), b"done");
    assert_eq!(
        child.join_timeout(Duration::from_secs(60)).unwrap(),
        Some(ExitStatus::Code(0))
    );
}

/// Takes one item and holds it (the claim open) until killed.
fn holder(_: &[u8]) -> i32 {
    let q = JoinableQueue::<u64>::from_fd(process::take_inherited_fd(0).unwrap()).unwrap();
    let out = Segment::from_fd(process::take_inherited_fd(1).unwrap(), Kind::BYTES).unwrap();
    let rx = q.ring().receiver();
    let msg = rx.recv().unwrap();
    let flag: &AtomicU64 = out.get(0).unwrap();
    flag.store(1 + msg.len() as u64, Ordering::Release);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_worker_killed_holding_an_item_does_not_hang_join() {
    process::init();
    let q = JoinableQueue::<u64>::new(4).unwrap();
    let out = Segment::builder(Kind::BYTES).size(64).create().unwrap();
    let child = Process::builder()
        .daemon(true)
        .exec_args(test_exec_args(
            "a_worker_killed_holding_an_item_does_not_hang_join",
        ))
        .inherit_fd(q.fd())
        .inherit_fd(out.fd())
        .spawn(holder, b"")
        .unwrap();
    q.put(1).unwrap();
    let flag: &AtomicU64 = out.get(0).unwrap();
    let t = std::time::Instant::now();
    while flag.load(Ordering::Acquire) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "holder never took it"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(flag.load(Ordering::Acquire), 9);
    child.kill().unwrap();
    assert_eq!(
        child.join_timeout(Duration::from_secs(30)).unwrap(),
        Some(ExitStatus::Signal(libc::SIGKILL))
    );
    // join finds the dead worker's claim, releases the slot and uncounts the
    // item it held.
    assert!(q.join_timeout(Duration::from_secs(30)), "join hangs");
    assert_eq!((q.lost(), q.unfinished()), (1, 0));
    // The ring goes on, through the recovered slot.
    for v in 2..=5 {
        q.put_timeout(v, Duration::from_secs(30)).unwrap();
    }
    for v in 2..=5 {
        assert_eq!(q.get().unwrap(), v);
        q.task_done().unwrap();
    }
    assert!(q.join_timeout(Duration::from_secs(30)));
    assert_eq!((q.lost(), q.unfinished()), (1, 0));
}
