//! The fast paths allocate nothing: a counting allocator watches sends and
//! receives on the MPMC ring, `Queue` and the broadcast ring once they are
//! warmed up.

use multiproc_queue::broadcast::{BroadcastRing, Start};
use multiproc_queue::mpmc::channel;
use multiproc_queue::queue::{JoinableQueue, Queue};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only bumps a thread-local counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

#[test]
fn mpmc_sends_and_receives_allocate_nothing() {
    let (tx, rx) = channel(64, 64).unwrap();
    let mut buf = [0u8; 64];
    tx.send(b"warm-up").unwrap();
    rx.recv_into(&mut buf).unwrap();
    let n = allocations(|| {
        for i in 0..10_000u64 {
            tx.try_send(&i.to_le_bytes()).unwrap();
            assert_eq!(rx.try_recv_into(&mut buf), Ok(8));
            tx.send_value(i).unwrap();
            assert_eq!(rx.recv_value::<u64>(), Ok(i));
            let mut r = tx.reserve(16).unwrap();
            r.buf().fill(1);
            r.commit();
            assert_eq!(rx.recv().unwrap().len(), 16);
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn queue_puts_and_gets_allocate_nothing() {
    let q = Queue::<[u64; 2]>::new(16).unwrap();
    let j = JoinableQueue::<u32>::new(16).unwrap();
    q.put([0, 0]).unwrap();
    q.get().unwrap();
    let n = allocations(|| {
        for i in 0..10_000u64 {
            q.put([i, i]).unwrap();
            q.put_nowait([i, 1]).unwrap();
            assert_eq!(q.get().unwrap(), [i, i]);
            assert_eq!(q.get_nowait().unwrap(), [i, 1]);
            j.put(i as u32).unwrap();
            j.get().unwrap();
            j.task_done().unwrap();
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn broadcast_publish_and_read_allocate_nothing() {
    let mut p = BroadcastRing::anonymous(multiproc_queue::broadcast::Config::new(64, 64))
        .unwrap()
        .publisher()
        .unwrap();
    let mut s = p.subscribe(Start::Next);
    let mut buf = [0u8; 64];
    p.publish(b"warm-up").unwrap();
    s.recv_into(&mut buf).unwrap();
    let n = allocations(|| {
        for i in 0..10_000u64 {
            p.publish(&i.to_le_bytes()).unwrap();
            assert_eq!(s.try_recv_into(&mut buf), Ok(8));
            p.publish(&[7; 64]).unwrap();
            assert_eq!(s.recv_into(&mut buf), Ok(64));
            p.publish_value(i).unwrap();
            assert_eq!(s.try_recv_value::<u64>(), Ok(i));
            p.publish_value(i).unwrap();
            assert_eq!(s.recv_value::<u64>(), Ok(i));
        }
    });
    assert_eq!(n, 0);
}
