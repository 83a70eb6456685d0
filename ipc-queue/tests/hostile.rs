//! A hostile or corrupt peer: values written over a ring's indices and
//! message headers make receives (and sends) fail with `Corrupt`, never read
//! or write outside the ring.
//!
//! The first tests corrupt one field at a time and check the error; the last
//! lets another process scribble random values over a live ring for a while
//! and checks that every message handed out lies inside the data area.

use multiproc_core::process::{self, take_inherited_fd, test_exec_args, Process};
use multiproc_queue::error::{RecvError, SendError, TryRecvError, TrySendError};
use multiproc_queue::raw::spsc::SpscControl;
use multiproc_queue::spsc::SpscRing;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::Rng;

const TAIL: usize = 128;
const HEAD: usize = 256;
const DATA: usize = std::mem::size_of::<SpscControl>();

/// A word of the ring's memory, as another process would see it.
fn word(ring: &SpscRing, offset: usize) -> &AtomicU64 {
    ring.segment().get::<AtomicU64>(offset as u64).unwrap()
}

fn header(len: u32, kind: &[u8; 4]) -> u64 {
    u64::from(len) | (u64::from(u32::from_le_bytes(*kind)) << 32)
}

fn corrupt_what(e: TryRecvError) -> &'static str {
    match e {
        TryRecvError::Corrupt(c) => c.what,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn each_corrupt_field_is_reported() {
    let ring = SpscRing::builder().capacity(256).create().unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"0123456789").unwrap();
    let good_header = word(&ring, DATA).load(Ordering::Relaxed);

    let good_tail = word(&ring, TAIL).load(Ordering::Relaxed);

    // The consumer reads record headers, never `tail`: a wild `tail` does
    // not disturb it (a producer taking over refuses one; see the ring's
    // unit tests).
    word(&ring, TAIL).store(1 << 40, Ordering::Relaxed);

    word(&ring, DATA).store(header(u32::MAX, b"1GSM"), Ordering::Relaxed);
    assert_eq!(
        corrupt_what(rx.try_recv().unwrap_err()),
        "message length exceeds the ring"
    );
    // An unknown record kind, a pad that does not reach the end.
    word(&ring, DATA).store(header(10, b"XXXX"), Ordering::Relaxed);
    assert_eq!(
        corrupt_what(rx.try_recv().unwrap_err()),
        "unknown record kind"
    );
    word(&ring, DATA).store(header(16, b"1DAP"), Ordering::Relaxed);
    assert_eq!(
        corrupt_what(rx.try_recv().unwrap_err()),
        "pad does not reach the end of the ring"
    );
    // Blocking forms report it too.
    assert!(matches!(rx.recv(), Err(RecvError::Corrupt(_))));

    // Restored, the message reads fine: nothing was consumed on the way.
    word(&ring, DATA).store(good_header, Ordering::Relaxed);
    assert_eq!(&*rx.try_recv().unwrap(), b"0123456789");
    word(&ring, TAIL).store(good_tail, Ordering::Relaxed);

    // The producer checks the consumer's index the same way.
    while tx.try_send(&[0; 32]).is_ok() {}
    word(&ring, HEAD).store(7, Ordering::Relaxed);
    assert!(matches!(
        tx.try_send(&[0; 32]),
        Err(TrySendError::Corrupt((), _))
    ));
    assert!(matches!(tx.send(&[0; 32]), Err(SendError::Corrupt((), _))));
}

#[test]
fn a_message_crossing_the_end_is_refused() {
    let ring = SpscRing::builder().capacity(64).create().unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    // Move both indices to offset 48 of the 64-byte area.
    for _ in 0..3 {
        tx.send(&[1; 8]).unwrap();
        drop(rx.recv().unwrap());
    }
    tx.send(&[2; 8]).unwrap();
    // 16 bytes remain before the end; claim a 40-byte message there.
    word(&ring, DATA + 48).store(header(40, b"1GSM"), Ordering::Relaxed);
    assert_eq!(
        corrupt_what(rx.try_recv().unwrap_err()),
        "message crosses the end of the ring"
    );
}

/// The scribbler: maps the ring and writes random words over its indices,
/// endpoint words and data area until told to stop.
fn scribble(args: &[u8]) -> i32 {
    let millis = u64::from_le_bytes(args[..8].try_into().unwrap());
    let ring = SpscRing::from_fd(take_inherited_fd(0).unwrap()).unwrap();
    let cap = ring.capacity();
    let words = (DATA + cap) / 8;
    let mut rng = Rng(u64::from(std::process::id()) | 1);
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < Duration::from_millis(millis) {
        let x = rng.next();
        // Mostly the indices and the headers at the start of records.
        let index = match x % 4 {
            0 => TAIL / 8,
            1 => HEAD / 8,
            _ => ((x >> 8) as usize) % words,
        };
        // Skip the config word holding the magic and capacity: a reopen
        // check, not something a live ring rereads.
        if index == 0 || index == 1 {
            continue;
        }
        let value = match (x >> 40) % 4 {
            0 => x >> 20,                         // a large value
            1 => (x >> 30) % (4 * cap as u64),    // a plausible index
            2 => (x >> 33) | (0x4d53_4731 << 32), // a message header with a wild length
            _ => x,
        };
        word(&ring, index * 8).store(value, Ordering::Relaxed);
        writes += 1;
        if writes.is_multiple_of(64) {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    0
}

/// Another process scribbles over a live ring while this one sends and
/// receives: every outcome is a message inside the data area or an error,
/// never a crash or an out-of-bounds read.
#[test]
fn scribbling_over_a_live_ring_never_escapes_it() {
    process::init();
    let ring = SpscRing::builder().capacity(1024).create().unwrap();
    let millis: u64 = if std::env::var_os("IPC_STRESS").is_some() {
        10_000
    } else {
        1_000
    };
    let child = Process::builder()
        .daemon(true)
        .inherit_fd(ring.fd())
        .exec_args(test_exec_args(
            "scribbling_over_a_live_ring_never_escapes_it",
        ))
        .spawn(scribble, &millis.to_le_bytes())
        .unwrap();
    let data_start = ring.segment().payload_ptr().as_ptr() as usize + DATA;
    let data_end = data_start + ring.capacity();
    let (mut ok, mut corrupt, mut other) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    // New ends now and then, since a corrupt ring stays corrupt for the
    // ends that saw it; attaching rereads the (scribbled) shared indices.
    while start.elapsed() < Duration::from_millis(millis) {
        let (mut tx, mut rx) = match (ring.producer(), ring.consumer()) {
            (Ok(tx), Ok(rx)) => (tx, rx),
            _ => {
                corrupt += 1;
                // Scribbled owner words name no live process, or indices are
                // out of range: try again.
                continue;
            }
        };
        for i in 0..200u32 {
            let _ = tx.try_send(&i.to_le_bytes());
            match rx.try_recv() {
                Ok(m) => {
                    let (p, len) = (m.as_ptr() as usize, m.len());
                    assert!(
                        p >= data_start && p + len <= data_end,
                        "message at {p:#x}+{len} outside the data area {data_start:#x}..{data_end:#x}"
                    );
                    // Touch every byte: an out-of-bounds slice would fault.
                    std::hint::black_box(m.iter().fold(0u8, |a, &b| a ^ b));
                    ok += 1;
                }
                Err(TryRecvError::Corrupt(_)) => corrupt += 1,
                Err(_) => other += 1,
            }
        }
    }
    child.join().unwrap();
    eprintln!("{ok} messages read, {corrupt} corruptions reported, {other} empty or closed");
    assert!(corrupt > 0, "the scribbler never got noticed");
}
