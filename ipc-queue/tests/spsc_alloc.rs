//! The fast paths allocate nothing: a counting global allocator watches
//! sends and receives of every SPSC form (bytes in place and copied, batches,
//! plain-old-data values, `rkyv` archives after the first, the pipe).

use multiproc_queue::pipe::pipe;
use multiproc_queue::spsc::SpscRing;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Quote {
    id: u64,
    bid: u32,
    ask: u32,
    venue: [u8; 4],
}

#[test]
fn byte_messages_allocate_nothing() {
    let ring = SpscRing::builder().capacity(1024).create().unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = [0u8; 64];
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            tx.try_send(&i.to_le_bytes()).unwrap();
            tx.send(&[7; 40]).unwrap();
            let mut g = tx.reserve(24).unwrap();
            g[..8].copy_from_slice(&i.to_le_bytes());
            g.commit_len(8);
            assert_eq!(&*rx.try_recv().unwrap(), &i.to_le_bytes());
            assert_eq!(rx.recv_into(&mut buf).unwrap(), 40);
            assert_eq!(&*rx.recv().unwrap(), &i.to_le_bytes());
            let sent = tx.try_send_batch(&[b"ab", b"cd", b"ef"]).unwrap();
            let mut seen = 0;
            rx.try_recv_batch(usize::MAX, |m| seen += m.len()).unwrap();
            assert_eq!(seen, 2 * sent);
        }
    });
    assert_eq!(n, 0, "{n} allocations on the fast path");
}

#[test]
fn typed_messages_allocate_nothing() {
    let (mut tx, mut rx) = multiproc_queue::spsc::pod::channel::<[u64; 4]>(64).unwrap();
    let ring = SpscRing::builder().capacity(4096).create().unwrap();
    let mut atx = ring.archive_producer::<Quote>().unwrap();
    let mut arx = ring.archive_consumer::<Quote>().unwrap();
    let quote = |i: u64| Quote {
        id: i,
        bid: 10,
        ask: 11,
        venue: *b"XNAS",
    };
    // The first archive warms rkyv's thread-local arena up.
    atx.send(&quote(0)).unwrap();
    assert_eq!(arx.recv().unwrap().id, 0);
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            tx.try_send([i, 1, 2, 3]).unwrap();
            assert_eq!(rx.recv().unwrap(), [i, 1, 2, 3]);
            tx.send([i, 4, 5, 6]).unwrap();
            assert_eq!(rx.try_recv_ref().unwrap()[1], 4);
            atx.send(&quote(i)).unwrap();
            let q = arx.recv().unwrap();
            assert_eq!(q.id, i);
            assert_eq!(q.venue, *b"XNAS");
        }
    });
    assert_eq!(n, 0, "{n} allocations on the fast path");
}

#[test]
fn pipe_messages_allocate_nothing() {
    let (mut a, mut b) = pipe().unwrap();
    let mut buf = [0u8; 32];
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            a.send_bytes(&i.to_le_bytes()).unwrap();
            assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 8);
            b.send(&i).unwrap();
            assert_eq!(a.recv::<u64>().unwrap(), i);
            assert!(!a.poll(Some(std::time::Duration::ZERO)).unwrap());
        }
    });
    assert_eq!(n, 0, "{n} allocations on the fast path");
}
