//! A hostile peer scribbles over a live MPMC ring's indices, slot states and
//! lengths: every call still returns (a value or a typed error), nothing
//! panics, nothing reads outside the ring.

use multiproc_core::object::ObjectError;
use multiproc_core::Segment;
use multiproc_queue::error::TryRecvError;
use multiproc_queue::mpmc::{self, Mpmc};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::Rng;

const SLOT: usize = 32;
const STRIDE: u64 = 48; // 16-byte slot header + 32 bytes
const HEAD: u64 = 128;
const TAIL: u64 = 256;
const SLOTS: u64 = 384;

/// A second mapping of the ring's segment, for the scribbler.
fn mapping(ring: &Mpmc) -> Segment {
    let fd = ring.fd().try_clone_to_owned().unwrap();
    Segment::from_fd(fd, mpmc::KIND).unwrap()
}

fn state(seg: &Segment, i: u64) -> &AtomicU64 {
    seg.get(SLOTS + i * STRIDE).unwrap()
}

fn len(seg: &Segment, i: u64) -> &AtomicU32 {
    seg.get(SLOTS + i * STRIDE + 8).unwrap()
}

#[test]
fn a_length_beyond_the_slot_is_reported_corrupt() {
    let ring = Mpmc::anonymous(multiproc_queue::mpmc::Config::new(4, SLOT)).unwrap();
    let seg = mapping(&ring);
    let (tx, rx) = (ring.sender(), ring.receiver());
    tx.send(b"fine").unwrap();
    tx.send(b"next").unwrap();
    len(&seg, 0).store(1_000_000, Ordering::Release);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Corrupt(_))));
    // The corrupt message was consumed; the ring goes on.
    assert_eq!(rx.try_recv().unwrap().bytes(), b"next");
    len(&seg, 2).store(u32::MAX - 1, Ordering::Release);
    tx.send(b"x").unwrap(); // rewrites the length: nothing to see
    assert_eq!(rx.try_recv().unwrap().bytes(), b"x");
}

#[test]
fn a_scribbled_control_block_is_refused_on_attach() {
    let ring = Mpmc::anonymous(multiproc_queue::mpmc::Config::new(4, SLOT)).unwrap();
    let seg = mapping(&ring);
    let cap: &AtomicU64 = seg.get(8).unwrap();
    cap.store(1 << 40, Ordering::Release);
    let fd = ring.fd().try_clone_to_owned().unwrap();
    assert!(matches!(
        Mpmc::from_fd(fd),
        Err(ObjectError::WrongObject { .. })
    ));
    // The endpoints attached before keep their own checked copy.
    ring.sender().send(b"still fine").unwrap();
    assert_eq!(ring.receiver().recv().unwrap().bytes(), b"still fine");
}

#[test]
fn random_scribbles_over_a_live_ring_never_crash_a_call() {
    let ring = Mpmc::anonymous(multiproc_queue::mpmc::Config::new(8, SLOT)).unwrap();
    let seg = mapping(&ring);
    let stop = AtomicBool::new(false);
    let me = multiproc_core::ProcessId::current().unwrap().to_u64();
    let calls = AtomicU64::new(0);
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let (tx, rx) = (ring.sender(), ring.receiver());
            let (stop, calls) = (&stop, &calls);
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678 + w);
                let mut buf = [0u8; SLOT];
                while !stop.load(Ordering::Acquire) {
                    let short = Duration::from_micros(200);
                    match rng.next() % 6 {
                        0 => drop(tx.try_send(b"hostile?")),
                        1 => drop(tx.send_timeout(&[7; SLOT], short)),
                        2 => {
                            if let Ok(m) = rx.try_recv() {
                                assert!(m.len() <= SLOT);
                            }
                        }
                        3 => {
                            if let Ok(n) = rx.recv_into_timeout(&mut buf, short) {
                                assert!(n <= SLOT);
                            }
                        }
                        4 => drop(rx.try_recv_value::<u64>()),
                        _ => {
                            let _ = (rx.len(), rx.is_empty(), tx.is_full());
                        }
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(400) {
            let v = match rng.next() % 5 {
                0 => rng.next(),
                1 => rng.next() % 64,
                2 => (1 << 63) | (rng.next() >> 2),
                3 => (1 << 63) | me, // a live claimer that never finishes
                _ => (1 << 63) | (1 << 62) | (rng.next() % 1000),
            };
            match rng.next() % 4 {
                0 => seg
                    .get::<AtomicU64>(HEAD)
                    .unwrap()
                    .store(v, Ordering::Release),
                1 => seg
                    .get::<AtomicU64>(TAIL)
                    .unwrap()
                    .store(v, Ordering::Release),
                2 => state(&seg, rng.next() % 8).store(v, Ordering::Release),
                _ => len(&seg, rng.next() % 8).store(v as u32, Ordering::Release),
            }
            std::thread::sleep(Duration::from_micros(rng.next() % 500));
        }
        stop.store(true, Ordering::Release);
    });
    assert!(calls.load(Ordering::Relaxed) > 0);
}

#[test]
fn an_unsealed_copy_of_a_ring_is_refused() {
    use std::io::{Read, Seek, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let ring = Mpmc::anonymous(multiproc_queue::mpmc::Config::new(4, SLOT)).unwrap();
    ring.sender().send(b"image").unwrap();
    let mut image = Vec::new();
    let mut src = std::fs::File::from(ring.fd().try_clone_to_owned().unwrap());
    src.rewind().unwrap();
    src.read_to_end(&mut image).unwrap();
    // SAFETY: a valid NUL-terminated name; a new descriptor or -1.
    let raw = unsafe { libc::memfd_create(c"unsealed-ring".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let mut copy = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    copy.write_all(&image).unwrap();
    let r = Mpmc::from_fd(copy.try_clone().unwrap().into());
    assert!(
        matches!(
            r,
            Err(ObjectError::Segment(
                multiproc_core::SegmentError::Unsealed { .. }
            ))
        ),
        "{r:?}"
    );
    // The sender shrinks it: nothing here maps it.
    // SAFETY: ftruncate on a descriptor we hold.
    assert_eq!(unsafe { libc::ftruncate(copy.as_raw_fd(), 0) }, 0);
    // The ring's own (sealed) descriptor still maps.
    let again = Mpmc::from_fd(ring.fd().try_clone_to_owned().unwrap()).unwrap();
    assert_eq!(again.receiver().recv().unwrap().bytes(), b"image");
}
