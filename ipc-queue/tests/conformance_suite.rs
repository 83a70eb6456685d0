//! The conformance suite every ring of this crate passes: FIFO order, no
//! loss, no duplication, wrap-around, capacity 1 and 2, full and empty edges,
//! zero-length and largest messages, close-then-drain, and a two-thread run
//! with sequenced, checksummed messages.
//!
//! A ring joins the suite by implementing [`Conformance`] (a small adapter
//! over its `try_` operations) and invoking [`conformance_tests!`]. Another
//! test file uses it with
//!
//! ```ignore
//! #[path = "conformance_suite.rs"]
//! mod suite;
//! suite::conformance_tests!(my_ring, MyAdapter);
//! ```
//!
//! Compiled on its own (as `cargo test` does with every file in `tests/`),
//! it holds no tests.

#![allow(dead_code, unused_macros, unused_imports, unreachable_pub)]

use std::time::{Duration, Instant};

/// What a `try_` operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent, or received into the buffer.
    Done,
    /// No room now.
    Full,
    /// Nothing to read now.
    Empty,
    /// The other side closed and (for receives) everything was read.
    Closed,
    /// The message can never fit.
    TooLarge,
    /// Anything else (a bug as far as the suite is concerned).
    Other(String),
}

/// The sending side of a ring under test.
pub trait SuiteTx: Send + 'static {
    /// Sends `msg` without waiting.
    fn try_send(&mut self, msg: &[u8]) -> Outcome;
    /// Closes the sending side.
    fn close(self);
}

/// The receiving side of a ring under test.
pub trait SuiteRx: Send + 'static {
    /// Receives the next message into `out` (cleared first) without waiting.
    fn try_recv(&mut self, out: &mut Vec<u8>) -> Outcome;
}

/// A ring type under test.
pub trait Conformance {
    /// The sending side.
    type Tx: SuiteTx;
    /// The receiving side.
    type Rx: SuiteRx;
    /// Whether messages may have any length up to the maximum (byte rings);
    /// if not, every message has exactly [`Conformance::FIXED_LEN`] bytes.
    const VARIABLE: bool;
    /// The length of every message of a fixed-size ring (at least 8).
    const FIXED_LEN: usize = 8;
    /// A ring holding at least `capacity` messages of up to `max_len` bytes
    /// (fixed-size rings ignore `max_len`).
    fn channel(capacity: usize, max_len: usize) -> (Self::Tx, Self::Rx);
    /// The largest message the sending side accepts.
    fn max_len(tx: &Self::Tx) -> usize;
}

/// Message `seq` of length `len` (at least 8 for sequenced messages): the
/// sequence number, then bytes derived from it.
pub fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len];
    let s = seq.to_le_bytes();
    let n = len.min(8);
    m[..n].copy_from_slice(&s[..n]);
    for (i, b) in m.iter_mut().enumerate().skip(8) {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    m
}

/// Checks a message built by [`message`] and returns its sequence number.
pub fn check_message(m: &[u8]) -> u64 {
    assert!(m.len() >= 8, "sequenced message of {} bytes", m.len());
    let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(m, &message(seq, m.len())[..], "message {seq} corrupted");
    seq
}

fn len_for<Q: Conformance>(seq: u64, max: usize) -> usize {
    if Q::VARIABLE {
        8 + (seq as usize * 13) % (max.max(8) - 7)
    } else {
        Q::FIXED_LEN
    }
}

fn fill<Q: Conformance>(tx: &mut Q::Tx, len: usize, limit: usize) -> usize {
    let mut n = 0;
    while n < limit {
        match tx.try_send(&message(n as u64, len)) {
            Outcome::Done => n += 1,
            Outcome::Full => break,
            other => panic!("send {n}: {other:?}"),
        }
    }
    n
}

fn recv_one<Q: Conformance>(rx: &mut Q::Rx, buf: &mut Vec<u8>) -> Outcome {
    // Some rings publish lazily (pads, batches); give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match rx.try_recv(buf) {
            Outcome::Empty if Instant::now() < deadline => std::thread::yield_now(),
            other => return other,
        }
    }
}

/// Messages come out in the order they went in, unchanged.
pub fn fifo<Q: Conformance>() {
    let (mut tx, mut rx) = Q::channel(64, 64);
    let max = Q::max_len(&tx).min(64);
    let mut buf = Vec::new();
    assert_eq!(rx.try_recv(&mut buf), Outcome::Empty);
    for seq in 0..64u64 {
        assert_eq!(
            tx.try_send(&message(seq, len_for::<Q>(seq, max))),
            Outcome::Done,
            "send {seq}"
        );
    }
    for seq in 0..64u64 {
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert_eq!(check_message(&buf), seq);
        assert_eq!(buf.len(), len_for::<Q>(seq, max));
    }
    assert_eq!(rx.try_recv(&mut buf), Outcome::Empty);
}

/// A full ring refuses, one receive makes room for exactly the next send.
pub fn full_edge<Q: Conformance>() {
    let len = if Q::VARIABLE { 8 } else { Q::FIXED_LEN };
    let (mut tx, mut rx) = Q::channel(8, len);
    let n = fill::<Q>(&mut tx, len, 10_000);
    assert!(n >= 8, "a ring of capacity 8 took only {n}");
    assert_eq!(tx.try_send(&message(n as u64, len)), Outcome::Full);
    let mut buf = Vec::new();
    assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
    assert_eq!(check_message(&buf), 0);
    assert_eq!(tx.try_send(&message(n as u64, len)), Outcome::Done);
    assert_eq!(tx.try_send(&message(n as u64 + 1, len)), Outcome::Full);
    for seq in 1..=n as u64 {
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert_eq!(check_message(&buf), seq);
    }
    assert_eq!(rx.try_recv(&mut buf), Outcome::Empty);
}

/// An empty ring reports `Empty` before, between and after messages.
pub fn empty_edge<Q: Conformance>() {
    let len = if Q::VARIABLE { 8 } else { Q::FIXED_LEN };
    let (mut tx, mut rx) = Q::channel(4, len);
    let mut buf = Vec::new();
    for seq in 0..100u64 {
        assert_eq!(rx.try_recv(&mut buf), Outcome::Empty);
        assert_eq!(tx.try_send(&message(seq, len)), Outcome::Done);
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert_eq!(check_message(&buf), seq);
    }
    assert_eq!(rx.try_recv(&mut buf), Outcome::Empty);
}

/// Many laps around a small ring, with lengths that do not divide it.
pub fn wrap_around<Q: Conformance>() {
    let (mut tx, mut rx) = Q::channel(4, 40);
    let max = Q::max_len(&tx).min(40);
    let mut buf = Vec::new();
    let (mut sent, mut got) = (0u64, 0u64);
    while got < 2_000 {
        while sent < got + 3 {
            match tx.try_send(&message(sent, len_for::<Q>(sent, max))) {
                Outcome::Done => sent += 1,
                Outcome::Full => break,
                other => panic!("send {sent}: {other:?}"),
            }
        }
        match rx.try_recv(&mut buf) {
            Outcome::Done => {
                assert_eq!(check_message(&buf), got);
                got += 1;
            }
            Outcome::Empty => {}
            other => panic!("recv {got}: {other:?}"),
        }
    }
}

fn small_capacity<Q: Conformance>(cap: usize) {
    let len = if Q::VARIABLE { 8 } else { Q::FIXED_LEN };
    let (mut tx, mut rx) = Q::channel(cap, len);
    let n = fill::<Q>(&mut tx, len, 10_000);
    assert!(n >= cap, "capacity {cap} took only {n}");
    let mut buf = Vec::new();
    for seq in 0..n as u64 {
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert_eq!(check_message(&buf), seq);
    }
    // Lap after lap, full each time.
    let mut next = n as u64;
    for _ in 0..200 {
        for k in 0..n as u64 {
            assert_eq!(tx.try_send(&message(next + k, len)), Outcome::Done);
        }
        assert_eq!(tx.try_send(&message(0, len)), Outcome::Full);
        for k in 0..n as u64 {
            assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
            assert_eq!(check_message(&buf), next + k);
        }
        assert_eq!(rx.try_recv(&mut buf), Outcome::Empty);
        next += n as u64;
    }
}

/// A ring of capacity 1.
pub fn capacity_1<Q: Conformance>() {
    small_capacity::<Q>(1);
}

/// A ring of capacity 2.
pub fn capacity_2<Q: Conformance>() {
    small_capacity::<Q>(2);
}

/// Zero-length messages are messages (variable-length rings only).
pub fn zero_length<Q: Conformance>() {
    if !Q::VARIABLE {
        return;
    }
    let (mut tx, mut rx) = Q::channel(8, 16);
    let mut buf = vec![1, 2, 3];
    for _ in 0..50 {
        assert_eq!(tx.try_send(&[]), Outcome::Done);
        assert_eq!(tx.try_send(&message(7, 8)), Outcome::Done);
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert!(buf.is_empty());
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert_eq!(check_message(&buf), 7);
    }
}

/// The largest message goes through whole; one byte more is refused.
pub fn largest_message<Q: Conformance>() {
    let (mut tx, mut rx) = Q::channel(2, 1000);
    let max = Q::max_len(&tx);
    let mut buf = Vec::new();
    for seq in 0..5u64 {
        let m = message(seq, max);
        let mut tries = 0;
        loop {
            match tx.try_send(&m) {
                Outcome::Done => break,
                // A ring may need the reader to move past padding first.
                Outcome::Full if tries < 3 => {
                    tries += 1;
                    let _ = rx.try_recv(&mut buf);
                }
                other => panic!("largest message {seq}: {other:?}"),
            }
        }
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert_eq!(buf.len(), max);
        assert_eq!(check_message(&buf), seq);
    }
    if Q::VARIABLE {
        assert_eq!(tx.try_send(&message(9, max + 1)), Outcome::TooLarge);
    }
}

/// After the sender closes, everything sent before is still received, then
/// `Closed`.
pub fn close_then_drain<Q: Conformance>() {
    let len = if Q::VARIABLE { 16 } else { Q::FIXED_LEN };
    let (mut tx, mut rx) = Q::channel(8, len);
    for seq in 0..5u64 {
        assert_eq!(tx.try_send(&message(seq, len)), Outcome::Done);
    }
    tx.close();
    let mut buf = Vec::new();
    for seq in 0..5u64 {
        assert_eq!(recv_one::<Q>(&mut rx, &mut buf), Outcome::Done);
        assert_eq!(check_message(&buf), seq);
    }
    assert_eq!(rx.try_recv(&mut buf), Outcome::Closed);
}

/// A producer thread and a consumer thread: every message arrives once, in
/// order, intact. `IPC_STRESS=1` runs 50 times more messages.
pub fn threads_no_loss_no_dup<Q: Conformance>() {
    let n: u64 = if std::env::var_os("IPC_STRESS").is_some() {
        5_000_000
    } else {
        100_000
    };
    let (mut tx, mut rx) = Q::channel(32, 64);
    let max = Q::max_len(&tx).min(64);
    let producer = std::thread::spawn(move || {
        let mut seq = 0;
        while seq < n {
            match tx.try_send(&message(seq, len_for::<Q>(seq, max))) {
                Outcome::Done => seq += 1,
                Outcome::Full => std::thread::yield_now(),
                other => panic!("send {seq}: {other:?}"),
            }
        }
        tx.close();
    });
    let mut buf = Vec::new();
    let mut next = 0u64;
    loop {
        match rx.try_recv(&mut buf) {
            Outcome::Done => {
                assert_eq!(
                    check_message(&buf),
                    next,
                    "out of order, lost or duplicated"
                );
                next += 1;
            }
            Outcome::Empty => std::thread::yield_now(),
            Outcome::Closed => break,
            other => panic!("recv {next}: {other:?}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(next, n);
}

/// Generates one `#[test]` per suite function for the ring adapter `$q`,
/// inside a module named `$name`.
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $q:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn fifo() {
                $crate::suite::fifo::<$q>();
            }
            #[test]
            fn full_edge() {
                $crate::suite::full_edge::<$q>();
            }
            #[test]
            fn empty_edge() {
                $crate::suite::empty_edge::<$q>();
            }
            #[test]
            fn wrap_around() {
                $crate::suite::wrap_around::<$q>();
            }
            #[test]
            fn capacity_1() {
                $crate::suite::capacity_1::<$q>();
            }
            #[test]
            fn capacity_2() {
                $crate::suite::capacity_2::<$q>();
            }
            #[test]
            fn zero_length() {
                $crate::suite::zero_length::<$q>();
            }
            #[test]
            fn largest_message() {
                $crate::suite::largest_message::<$q>();
            }
            #[test]
            fn close_then_drain() {
                $crate::suite::close_then_drain::<$q>();
            }
            #[test]
            fn threads_no_loss_no_dup() {
                $crate::suite::threads_no_loss_no_dup::<$q>();
            }
        }
    };
}
