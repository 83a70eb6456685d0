//! A randomized model check of the raw SPSC algorithm on heap memory: two
//! threads drive a ring in [`HeapMemory`] through every operation in random mixes
//! (single and batched commits, reservations committed shorter, batched
//! releases, zero-length and largest messages) on tiny rings, where every
//! wrap, pad and full/empty edge is hit thousands of times. The consumer
//! knows exactly which message must come next, byte for byte.
//!
//! Each seed is a different schedule of operations; the threads' timing adds
//! the interleavings. `IPC_STRESS=1` runs ten times as many messages.
//!
//! On x86 the hardware orders memory more strongly than the ring asks for,
//! so a missing release or acquire would pass here. Under Miri the same
//! schedules run with every access checked for data races, which catches it
//! (a payload read that no release/acquire pair orders after its write is
//! reported; weakening the header's release store to relaxed is found in
//! seconds):
//!
//! ```text
//! MIRIFLAGS=-Zmiri-disable-weak-memory-emulation \
//!     cargo +nightly miri test -p multiproc-queue --test spsc_model
//! ```
//!
//! (about 12 minutes; Miri's weak-memory emulation is off because it does
//! not handle memory that is accessed atomically at one time and not at
//! another, as a data-area word is when it is a header slot in one lap and
//! payload in the next.)

use multiproc_core::liveness::OsJudge;
use multiproc_queue::raw::heap::HeapMemory;
use multiproc_queue::raw::spsc::{self, RawRing, ReserveError};

type RawProducer = spsc::RawProducer<HeapMemory, OsJudge>;
type RawConsumer = spsc::RawConsumer<HeapMemory, OsJudge>;

fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The length of message `seq` on a ring whose largest message is `max`:
/// mostly small, sometimes zero, sometimes the largest.
fn len_of(seq: u64, max: usize) -> usize {
    let h = hash(seq);
    match h % 16 {
        0 => 0,
        1 => max,
        2..=5 => (h >> 8) as usize % (max + 1),
        _ => (h >> 8) as usize % (max.min(24) + 1),
    }
}

fn byte_of(seq: u64, i: usize) -> u8 {
    (hash(seq) >> (i % 7 * 8)) as u8 ^ i as u8
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = hash(self.0.wrapping_add(0x9e37_79b9_7f4a_7c15));
        self.0
    }
}

fn produce(mut p: RawProducer, total: u64, max: usize, seed: u64) {
    let mut rng = Rng(seed);
    let mut seq = 0;
    while seq < total {
        // Commit a burst of 1..4 messages, then publish once.
        let burst = 1 + rng.next() % 4;
        let mut committed = 0;
        while committed < burst && seq < total {
            let len = len_of(seq, max);
            // Sometimes reserve more than needed and commit less.
            let extra = if rng.next().is_multiple_of(4) {
                (rng.next() % 16) as usize
            } else {
                0
            };
            let ask = (len + extra).min(max);
            match p.try_reserve(ask) {
                Ok(r) => {
                    // SAFETY: `r` was just reserved and is not committed.
                    let bytes = unsafe { p.payload(r) };
                    for (i, b) in bytes[..len].iter_mut().enumerate() {
                        *b = byte_of(seq, i);
                    }
                    p.commit(r, len);
                    seq += 1;
                    committed += 1;
                }
                Err(ReserveError::Full) => break,
                Err(e) => panic!("reserve {seq}: {e:?}"),
            }
        }
        p.publish();
        let _ = p.take_pad_published();
        if committed == 0 {
            std::thread::yield_now();
        }
    }
}

fn consume(mut c: RawConsumer, total: u64, max: usize, seed: u64) {
    let mut rng = Rng(seed ^ 0xabcdef);
    let mut seq = 0;
    while seq < total {
        let batch = 1 + rng.next() % 5;
        let mut got = 0;
        while got < batch {
            match c.try_peek().expect("the ring is never corrupt here") {
                Some(m) => {
                    let len = len_of(seq, max);
                    assert_eq!(m.len(), len, "message {seq}: length");
                    // SAFETY: `m` was just peeked and not advanced past.
                    let bytes = unsafe { c.payload(m) };
                    for (i, &b) in bytes.iter().enumerate() {
                        assert_eq!(b, byte_of(seq, i), "message {seq}: byte {i}");
                    }
                    assert_eq!(m.offset() % 8, 0);
                    c.advance(m);
                    seq += 1;
                    got += 1;
                }
                None => break,
            }
        }
        c.publish();
        let _ = c.take_released_pad();
        if got == 0 {
            std::thread::yield_now();
        }
    }
    assert_eq!(
        c.try_peek().unwrap(),
        None,
        "nothing after the last message"
    );
}

fn run(capacity: usize, total: u64, seed: u64) {
    let cfg = spsc::Config::new(capacity);
    let raw = RawRing::init(HeapMemory::new(spsc::memory_size(&cfg).unwrap()), &cfg).unwrap();
    let max = raw.max_message_len();
    let p = raw.producer(OsJudge).unwrap();
    let c = raw.consumer(OsJudge).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| produce(p, total, max, seed));
        s.spawn(|| consume(c, total, max, seed));
    });
    assert_eq!(raw.used_bytes(), 0);
}

fn total() -> u64 {
    if cfg!(miri) {
        // Miri interprets every access and checks it for data races: a few
        // hundred messages still wrap the tiny rings many times.
        300
    } else if std::env::var_os("IPC_STRESS").is_some() {
        100_000
    } else {
        5_000
    }
}

#[test]
fn tiny_rings_under_random_schedules() {
    for (i, capacity) in [32usize, 64, 128, 256].into_iter().enumerate() {
        for seed in 0..3 {
            run(capacity, total(), seed * 31 + i as u64);
        }
    }
}

#[test]
fn a_larger_ring_under_random_schedules() {
    run(4096, total() * 4, 99);
}
