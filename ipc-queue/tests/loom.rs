//! Loom model checks of the three ring protocols' memory orderings: every
//! interleaving of the model threads (up to a preemption bound) under the
//! C11 memory model loom simulates, with every payload access checked for
//! data races.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p ipc-queue --test loom --release`
//!
//! The rings live in shared memory and address their words by offset, which
//! loom's atomics (objects, not views of bytes) cannot stand in for. So each
//! model restates its protocol's steps here, one for one and with the same
//! orderings, on a tiny ring of loom atomics. In the SPSC and MPMC models
//! the payload words are loom cells, so a read that no release/acquire pair
//! orders after the write it sees (or a write that races with an earlier
//! read) fails the model. The broadcast ring's payload is atomic words in the
//! ring itself, and its model fails if a reader accepts a torn message. Each
//! model names the functions it restates: a change to one of them must be
//! made here too. Crashes are not modelled here; `tests/mpmc_model.rs` covers
//! the MPMC recovery under sequential consistency.
//!
//! Each model also runs once with one ordering weakened, and must fail: that
//! shows the model can see the bug it is there to catch.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    // Every turn of a waiting loop is a branch point.
    b.max_branches = 100_000;
    b.check(f);
}

/// The payload value of word `i` of message `seq`.
fn value(seq: usize, i: usize) -> u64 {
    (seq as u64 + 1) * 100 + i as u64
}

// ---------------------------------------------------------------------------
// SPSC: a record publishes itself through its header
// (`spsc_raw::RawProducer::{try_reserve_slow, release_pad, put_header,
// commit}`, `RawConsumer::{header, sync_head, try_peek_slow, advance,
// publish}`, `RawProducer::reload_head`).
// ---------------------------------------------------------------------------

/// Data-area words (8 bytes each): the 32-byte minimum ring.
const SPSC_WORDS: usize = 4;
/// Words kept clear after the last record (`spsc_raw::SLACK`).
const SPSC_SLACK: usize = 1;

#[derive(Clone, Copy)]
struct SpscOrders {
    header_store: Ordering,
    head_store: Ordering,
    /// The fence after the producer releases a pad for a drained consumer.
    release_pad_fence: bool,
    /// The consumer's load of a `head` the producer moved (`sync_head`).
    sync_head_load: Ordering,
}

const SPSC_REAL: SpscOrders = SpscOrders {
    header_store: Ordering::Release,
    head_store: Ordering::Release,
    release_pad_fence: true,
    sync_head_load: Ordering::Acquire,
};

/// What a header slot holds once payload bytes were written over it: no
/// well-formed header (neither message nor pad), so a consumer that takes it
/// for one is caught.
const SPSC_PAYLOAD: u64 = u64::MAX;

/// One 8-byte word of the data area: a header slot in one lap and payload in
/// the next. Header use goes through `atom`; payload use and the producer's
/// claim on a word it is about to overwrite go through `cell`, which is
/// where loom checks the hand-over between the two ends.
struct Word {
    atom: AtomicU64,
    cell: UnsafeCell<u64>,
}

struct SpscRing {
    words: Vec<Word>,
    head: AtomicU64,
}

fn msg_header(len: usize) -> u64 {
    ((len as u64) << 1) | 1
}

fn pad_header(words: usize) -> u64 {
    (words as u64) << 1
}

impl SpscRing {
    fn new() -> SpscRing {
        SpscRing {
            words: (0..SPSC_WORDS)
                .map(|_| Word {
                    atom: AtomicU64::new(0),
                    cell: UnsafeCell::new(0),
                })
                .collect(),
            head: AtomicU64::new(0),
        }
    }

    /// The producer is about to overwrite word `i`: the consumer must be
    /// done with what it read there a lap ago.
    fn claim(&self, i: usize) {
        self.words[i].cell.with_mut(|_| ());
    }

    /// `put_header`: clear the slot after the record, then store the header.
    fn put_header(&self, off: usize, need: usize, word: u64, o: &SpscOrders) {
        let next = (off + need) % SPSC_WORDS;
        self.claim(next);
        self.words[next].atom.store(0, Ordering::Relaxed);
        self.claim(off);
        self.words[off].atom.store(word, o.header_store);
    }
}

struct SpscProducer {
    tail: usize,
    cached_head: usize,
}

impl SpscProducer {
    fn room(&self) -> usize {
        (SPSC_WORDS - SPSC_SLACK).saturating_sub(self.tail - self.cached_head)
    }

    /// `has_room` with `reload_head`, waiting until there is room.
    fn wait_room(&mut self, ring: &SpscRing, need: usize) {
        while self.room() < need {
            self.cached_head = ring.head.load(Ordering::Acquire) as usize;
            if self.room() < need {
                thread::yield_now();
            }
        }
    }

    fn send(&mut self, ring: &SpscRing, seq: usize, len: usize, o: &SpscOrders) {
        let need = 1 + len;
        let off = self.tail % SPSC_WORDS;
        let to_end = SPSC_WORDS - off;
        if need > to_end {
            self.wait_room(ring, to_end);
            let pad_at = self.tail;
            ring.put_header(off, to_end, pad_header(to_end), o);
            self.tail += to_end;
            if self.room() < need {
                // `release_pad`: the consumer has released everything up to
                // the pad; move `head` past it on its behalf.
                self.cached_head = ring.head.load(Ordering::Acquire) as usize;
                if self.cached_head == pad_at
                    && ring
                        .head
                        .compare_exchange(
                            pad_at as u64,
                            self.tail as u64,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                {
                    if o.release_pad_fence {
                        fence(Ordering::Release);
                    }
                    self.cached_head = self.tail;
                }
            }
        }
        self.wait_room(ring, need);
        let off = self.tail % SPSC_WORDS;
        for i in 0..len {
            // Payload bytes land where a header may have been (the pad the
            // producer just released, or an old lap's header).
            ring.words[off + 1 + i]
                .atom
                .store(SPSC_PAYLOAD, Ordering::Relaxed);
            ring.words[off + 1 + i].cell.with_mut(|p| {
                // SAFETY: loom checks that nobody else accesses the word.
                unsafe { *p = value(seq, i) }
            });
        }
        ring.put_header(off, need, msg_header(len), o);
        self.tail += need;
    }
}

/// Receives message `seq` of `len` words, skipping pads and following a
/// `head` the producer moved past a pad. `head` is the consumer's position,
/// always published here.
fn spsc_recv(ring: &SpscRing, head: &mut usize, seq: usize, len: usize, o: &SpscOrders) {
    loop {
        let off = *head % SPSC_WORDS;
        let word = ring.words[off].atom.load(Ordering::Acquire);
        // `header`: a `head` this consumer did not store means the producer
        // released the pad at `head` (`sync_head`).
        if ring.head.load(Ordering::Relaxed) as usize != *head {
            // `sync_head` loads it again with acquire: the pad and the slot
            // it cleared (at the lap's start) are seen with it.
            let shared = ring.head.load(o.sync_head_load) as usize;
            assert_eq!(
                off + (shared - *head),
                SPSC_WORDS,
                "head moved to a lap's start"
            );
            *head = shared;
            continue;
        }
        if word == 0 {
            thread::yield_now();
            continue;
        }
        assert_ne!(word, SPSC_PAYLOAD, "payload bytes taken for a header");
        let n = (word >> 1) as usize;
        if word & 1 == 0 {
            assert_eq!(off + n, SPSC_WORDS, "a pad runs to the end of the ring");
            *head += n;
            ring.head.store(*head as u64, o.head_store);
            continue;
        }
        assert_eq!(n, len, "message {seq}: wrong length");
        for i in 0..len {
            // SAFETY: loom checks the producer's write happened before.
            let v = ring.words[off + 1 + i].cell.with(|p| unsafe { *p });
            assert_eq!(v, value(seq, i), "message {seq}, word {i}");
        }
        *head += 1 + len;
        ring.head.store(*head as u64, o.head_store);
        return;
    }
}

/// Message lengths in words: every record size, pads and two wraps.
const SPSC_LENS: [usize; 5] = [1, 2, 0, 2, 1];

fn spsc_model(o: SpscOrders) {
    model(2, move || {
        let ring = Arc::new(SpscRing::new());
        let r = Arc::clone(&ring);
        let producer = thread::spawn(move || {
            let mut p = SpscProducer {
                tail: 0,
                cached_head: 0,
            };
            for (seq, &len) in SPSC_LENS.iter().enumerate() {
                p.send(&r, seq, len, &o);
            }
        });
        let mut head = 0;
        for (seq, &len) in SPSC_LENS.iter().enumerate() {
            spsc_recv(&ring, &mut head, seq, len, &o);
        }
        producer.join().unwrap();
    });
}

#[test]
fn spsc_records_publish_themselves() {
    spsc_model(SPSC_REAL);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn spsc_relaxed_header_store_is_caught() {
    spsc_model(SpscOrders {
        header_store: Ordering::Relaxed,
        ..SPSC_REAL
    });
}

#[test]
#[should_panic(expected = "payload bytes taken for a header")]
fn spsc_released_pad_without_fence_is_caught() {
    spsc_model(SpscOrders {
        release_pad_fence: false,
        ..SPSC_REAL
    });
}

#[test]
#[should_panic(expected = "wrong length")]
fn spsc_relaxed_sync_head_load_is_caught() {
    spsc_model(SpscOrders {
        sync_head_load: Ordering::Relaxed,
        ..SPSC_REAL
    });
}

#[test]
#[should_panic(expected = "Causality violation")]
fn spsc_relaxed_head_store_is_caught() {
    spsc_model(SpscOrders {
        head_store: Ordering::Relaxed,
        ..SPSC_REAL
    });
}

// ---------------------------------------------------------------------------
// Broadcast: seqlock slots (`broadcast_raw::RawBroadcast::{publish, read,
// not_there, overrun, written}`).
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct BcOrders {
    writer_fence: bool,
    reader_fence: bool,
}

const BC_REAL: BcOrders = BcOrders {
    writer_fence: true,
    reader_fence: true,
};

struct BcSlot {
    seq: AtomicU64,
    words: [AtomicU64; 2],
}

struct Bc {
    slots: Vec<BcSlot>,
    next: AtomicU64,
}

const BC_MESSAGES: usize = 3;

fn bc_publish(bc: &Bc, pos: usize, o: &BcOrders) {
    let slot = &bc.slots[pos % bc.slots.len()];
    let p = pos as u64;
    slot.seq.store(2 * p + 1, Ordering::Relaxed);
    if o.writer_fence {
        fence(Ordering::Release);
    }
    for (i, w) in slot.words.iter().enumerate() {
        w.store(value(pos, i), Ordering::Relaxed);
    }
    slot.seq.store(2 * p + 2, Ordering::Release);
    bc.next.store(p + 1, Ordering::Release);
}

enum BcRead {
    Message([u64; 2]),
    NotYet,
    Overrun(usize),
}

fn bc_read(bc: &Bc, pos: usize, o: &BcOrders) -> BcRead {
    let cap = bc.slots.len();
    let slot = &bc.slots[pos % cap];
    let want = 2 * pos as u64 + 2;
    let overrun = || {
        let next = bc.next.load(Ordering::Acquire) as usize;
        BcRead::Overrun(next.saturating_sub(cap).max(pos + 1))
    };
    let s1 = slot.seq.load(Ordering::Acquire);
    if s1 != want {
        if s1 == 0 || s1 < want {
            return BcRead::NotYet;
        }
        return overrun();
    }
    let got = [
        slot.words[0].load(Ordering::Relaxed),
        slot.words[1].load(Ordering::Relaxed),
    ];
    if o.reader_fence {
        fence(Ordering::Acquire);
    }
    if slot.seq.load(Ordering::Relaxed) != want {
        return overrun();
    }
    BcRead::Message(got)
}

fn bc_model(cap: usize, o: BcOrders) {
    model(2, move || {
        let bc = Arc::new(Bc {
            slots: (0..cap)
                .map(|_| BcSlot {
                    seq: AtomicU64::new(0),
                    words: [AtomicU64::new(0), AtomicU64::new(0)],
                })
                .collect(),
            next: AtomicU64::new(0),
        });
        let b = Arc::clone(&bc);
        let publisher = thread::spawn(move || {
            for pos in 0..BC_MESSAGES {
                bc_publish(&b, pos, &o);
            }
        });
        let (mut cursor, mut received, mut lost) = (0, 0, 0);
        while cursor < BC_MESSAGES {
            match bc_read(&bc, cursor, &o) {
                BcRead::Message(got) => {
                    assert_eq!(got, [value(cursor, 0), value(cursor, 1)], "torn read");
                    received += 1;
                    cursor += 1;
                }
                BcRead::NotYet => thread::yield_now(),
                BcRead::Overrun(resume) => {
                    assert!(resume > cursor && resume <= BC_MESSAGES);
                    lost += resume - cursor;
                    cursor = resume;
                }
            }
        }
        assert_eq!(received + lost, BC_MESSAGES);
        publisher.join().unwrap();
    });
}

#[test]
fn broadcast_never_returns_a_torn_message() {
    bc_model(1, BC_REAL);
}

#[test]
fn broadcast_two_slots() {
    bc_model(2, BC_REAL);
}

#[test]
#[should_panic(expected = "torn read")]
fn broadcast_without_the_reader_fence_is_caught() {
    bc_model(
        1,
        BcOrders {
            reader_fence: false,
            ..BC_REAL
        },
    );
}

#[test]
#[should_panic(expected = "torn read")]
fn broadcast_without_the_writer_fence_is_caught() {
    bc_model(
        1,
        BcOrders {
            writer_fence: false,
            ..BC_REAL
        },
    );
}

// ---------------------------------------------------------------------------
// MPMC: Vyukov slots with the claimer in the state word
// (`mpmc_raw::RawMpmc::{try_claim_send, try_claim_recv}`,
// `WriteClaim::publish`, `ReadClaim::drop`; no crashes).
//
// Two threads that both wait in loops make loom's state space explode, so
// here every wait is bounded: a send or a receive that would wait more than
// `MPMC_WAITS` times gives up (holding no claim), and the main thread drains
// what is left once every thread has joined. The checks then cover what was
// sent: each message received once, each producer's in order per receiver.
// ---------------------------------------------------------------------------

const BUSY: u64 = 1 << 63;
const READING: u64 = 1 << 62;
const MPMC_WAITS: u32 = 2;

#[derive(Clone, Copy)]
struct MpmcOrders {
    publish: Ordering,
    release: Ordering,
}

const MPMC_REAL: MpmcOrders = MpmcOrders {
    publish: Ordering::Release,
    release: Ordering::Release,
};

struct MpmcSlot {
    state: AtomicU64,
    val: UnsafeCell<u64>,
}

struct Mpmc {
    slots: Vec<MpmcSlot>,
    head: AtomicU64,
    tail: AtomicU64,
}

/// Counts the waits of one operation; `false` once it should give up.
struct Waits(u32);

impl Waits {
    fn wait(&mut self) -> bool {
        self.0 += 1;
        if self.0 > MPMC_WAITS {
            return false;
        }
        thread::yield_now();
        true
    }
}

impl Mpmc {
    fn new(cap: usize) -> Mpmc {
        Mpmc {
            slots: (0..cap as u64)
                .map(|i| MpmcSlot {
                    state: AtomicU64::new(2 * i),
                    val: UnsafeCell::new(0),
                })
                .collect(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
        }
    }

    fn cap(&self) -> u64 {
        self.slots.len() as u64
    }

    fn slot(&self, pos: u64) -> &MpmcSlot {
        &self.slots[(pos % self.cap()) as usize]
    }

    /// `try_claim_send` + write + `publish`. `false`: gave up waiting
    /// (full, or behind a busy slot), nothing sent.
    fn send(&self, v: u64, o: MpmcOrders) -> bool {
        let mut waits = Waits(0);
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            let s = slot.state.load(Ordering::Acquire);
            let empty = 2 * pos;
            if s == empty {
                if slot
                    .state
                    .compare_exchange_weak(s, BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.tail.store(pos + 1, Ordering::Relaxed);
                    // SAFETY: loom checks the last reader is done.
                    slot.val.with_mut(|p| unsafe { *p = v });
                    slot.state.store(2 * pos + 1, o.publish);
                    return true;
                }
                pos = self.tail.load(Ordering::Relaxed);
                continue;
            }
            if s & BUSY != 0 {
                if !waits.wait() {
                    return false;
                }
                pos = self.tail.load(Ordering::Relaxed);
                continue;
            }
            if s + 2 * self.cap() == empty + 1 {
                // The previous lap's message is still there.
                fence(Ordering::SeqCst);
                if self.head.load(Ordering::Relaxed) + self.cap() == pos && !waits.wait() {
                    return false;
                }
            }
            let now = self.tail.load(Ordering::Relaxed);
            if now == pos && !waits.wait() {
                return false;
            }
            pos = now;
        }
    }

    /// `try_claim_recv` + read + `ReadClaim::drop`. `None`: empty, or gave
    /// up waiting behind a busy slot.
    fn recv(&self, o: MpmcOrders) -> Option<u64> {
        let mut waits = Waits(0);
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            let s = slot.state.load(Ordering::Acquire);
            let full = 2 * pos + 1;
            if s == full {
                if slot
                    .state
                    .compare_exchange_weak(s, BUSY | READING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.head.store(pos + 1, Ordering::Relaxed);
                    // SAFETY: loom checks the producer's write happened before.
                    let v = slot.val.with(|p| unsafe { *p });
                    slot.state.store(2 * (pos + self.cap()), o.release);
                    return Some(v);
                }
                pos = self.head.load(Ordering::Relaxed);
                continue;
            }
            if s & BUSY != 0 {
                if !waits.wait() {
                    return None;
                }
                pos = self.head.load(Ordering::Relaxed);
                continue;
            }
            if s == full - 1 {
                fence(Ordering::SeqCst);
                if self.tail.load(Ordering::Relaxed) == pos {
                    return None;
                }
            }
            let now = self.head.load(Ordering::Relaxed);
            if now == pos && !waits.wait() {
                return None;
            }
            pos = now;
        }
    }
}

/// Producer `p`'s message `i`.
fn mpmc_value(p: usize, i: u64) -> u64 {
    (p as u64 + 1) * 100 + i
}

/// `counts[p]` messages from producer `p`, `receivers` receiving threads
/// making `attempts` receives each, a ring of `cap` slots.
fn mpmc_model(
    cap: usize,
    counts: &'static [u64],
    receivers: usize,
    attempts: usize,
    o: MpmcOrders,
) {
    model(1, move || {
        let q = Arc::new(Mpmc::new(cap));
        let producers: Vec<_> = counts
            .iter()
            .enumerate()
            .map(|(p, &n)| {
                let q = Arc::clone(&q);
                thread::spawn(move || {
                    (0..n)
                        .map(|i| mpmc_value(p, i))
                        .filter(|&v| q.send(v, o))
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let receivers: Vec<_> = (0..receivers)
            .map(|_| {
                let q = Arc::clone(&q);
                thread::spawn(move || (0..attempts).filter_map(|_| q.recv(o)).collect())
            })
            .collect();
        let mut sent: Vec<u64> = producers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let mut got: Vec<Vec<u64>> = receivers.into_iter().map(|h| h.join().unwrap()).collect();
        // Alone now: whatever is left is there to take.
        got.push(std::iter::from_fn(|| q.recv(o)).collect());
        for g in &got {
            for p in 0..counts.len() as u64 {
                let mine: Vec<u64> = g.iter().copied().filter(|v| v / 100 == p + 1).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "out of order: {g:?}");
            }
        }
        let mut every = got.concat();
        every.sort_unstable();
        sent.sort_unstable();
        assert_eq!(every, sent, "lost or duplicated");
    });
}

#[test]
fn mpmc_two_producers_one_receiver() {
    mpmc_model(1, &[2, 1], 1, 3, MPMC_REAL);
}

#[test]
fn mpmc_one_producer_two_receivers() {
    mpmc_model(1, &[3], 2, 1, MPMC_REAL);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mpmc_relaxed_publish_is_caught() {
    mpmc_model(
        1,
        &[1],
        1,
        1,
        MpmcOrders {
            publish: Ordering::Relaxed,
            ..MPMC_REAL
        },
    );
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mpmc_relaxed_release_is_caught() {
    mpmc_model(
        1,
        &[2],
        1,
        1,
        MpmcOrders {
            release: Ordering::Relaxed,
            ..MPMC_REAL
        },
    );
}
