//! A hostile peer scribbles over a live broadcast ring's write position,
//! slot sequences and lengths: subscribers get messages or typed errors,
//! never a panic, never a read outside the ring.

use multiproc_core::Segment;
use multiproc_queue::broadcast::{BroadcastRing, ReadError, Start, KIND};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::Rng;

const SLOT: usize = 24;
const STRIDE: u64 = 48; // 16-byte header + 24 bytes, rounded to 16
const NEXT: u64 = 128;
const SLOTS: u64 = 256;

#[test]
fn scribbles_give_typed_errors_never_a_crash() {
    let mut publisher = BroadcastRing::anonymous(multiproc_queue::broadcast::Config::new(8, SLOT))
        .unwrap()
        .publisher()
        .unwrap();
    let seg = Segment::from_fd(publisher.fd().try_clone_to_owned().unwrap(), KIND).unwrap();
    let subs: Vec<_> = (0..2).map(|_| publisher.subscribe(Start::Oldest)).collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for mut sub in subs {
            let stop = &stop;
            s.spawn(move || {
                let mut buf = [0u8; SLOT];
                let mut ok = 0u64;
                while !stop.load(Ordering::Acquire) {
                    match sub.recv_into_timeout(&mut buf, Duration::from_micros(300)) {
                        Ok(n) => {
                            assert!(n <= SLOT);
                            ok += 1;
                        }
                        Err(
                            ReadError::Timeout
                            | ReadError::Lagged(_)
                            | ReadError::Corrupt(_)
                            | ReadError::BufferTooSmall { .. },
                        ) => {}
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                    let _ = (sub.pending(), sub.try_recv_value::<u64>());
                }
                ok
            });
        }
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let t = Instant::now();
        let mut seq = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            publisher.publish(&seq.to_le_bytes()).unwrap();
            seq += 1;
            let v = match rng.next() % 3 {
                0 => rng.next(),
                1 => seq * 2 + rng.next() % 40,
                _ => rng.next() % 64,
            };
            match rng.next() % 3 {
                0 => seg
                    .get::<AtomicU64>(NEXT)
                    .unwrap()
                    .store(v, Ordering::Release),
                1 => seg
                    .get::<AtomicU64>(SLOTS + (rng.next() % 8) * STRIDE)
                    .unwrap()
                    .store(v, Ordering::Release),
                _ => seg
                    .get::<AtomicU32>(SLOTS + (rng.next() % 8) * STRIDE + 8)
                    .unwrap()
                    .store(v as u32, Ordering::Release),
            }
            std::thread::sleep(Duration::from_micros(rng.next() % 200));
        }
        stop.store(true, Ordering::Release);
    });
}

#[test]
fn an_oversized_length_is_corrupt_not_an_overread() {
    let mut publisher = BroadcastRing::anonymous(multiproc_queue::broadcast::Config::new(4, SLOT))
        .unwrap()
        .publisher()
        .unwrap();
    let seg = Segment::from_fd(publisher.fd().try_clone_to_owned().unwrap(), KIND).unwrap();
    let mut sub = publisher.subscribe(Start::Next);
    publisher.publish(b"abc").unwrap();
    publisher.publish(b"def").unwrap();
    seg.get::<AtomicU32>(SLOTS + 8)
        .unwrap()
        .store(100_000, Ordering::Release);
    let mut big = [0u8; 200_000];
    assert!(matches!(
        sub.try_recv_into(&mut big),
        Err(ReadError::Corrupt(_))
    ));
    assert_eq!(sub.try_recv().unwrap(), b"def");
}
