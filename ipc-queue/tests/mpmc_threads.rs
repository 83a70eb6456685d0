//! The MPMC ring between threads of one process, on a real shared mapping:
//! order per producer, no loss, no duplication, at the capacity-1 and
//! capacity-2 edges and under every wait strategy.

use multiproc_core::wait::WaitStrategy;
use multiproc_queue::error::{RecvError, TryRecvError};
use multiproc_queue::mpmc::{channel, Mpmc};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

fn run(capacity: usize, producers: u64, consumers: usize, per: u64, strategy: WaitStrategy) {
    let (tx, rx) = channel(capacity, 16).unwrap();
    let seen: Vec<AtomicU8> = (0..producers * per).map(|_| AtomicU8::new(0)).collect();
    std::thread::scope(|s| {
        let mut prod = Vec::new();
        for p in 0..producers {
            let tx = tx.clone().with_wait_strategy(strategy);
            prod.push(s.spawn(move || {
                for i in 0..per {
                    tx.send_value([p, i]).unwrap();
                }
            }));
        }
        for _ in 0..consumers {
            let rx = rx.clone().with_wait_strategy(strategy);
            let seen = &seen;
            s.spawn(move || {
                let mut last = vec![None::<u64>; producers as usize];
                loop {
                    match rx.recv_value::<[u64; 2]>() {
                        Ok([p, i]) => {
                            let l = &mut last[p as usize];
                            assert!(l.is_none_or(|l| l < i), "producer {p}: {i} after {l:?}");
                            *l = Some(i);
                            seen[(p * per + i) as usize].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(RecvError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
        for h in prod {
            h.join().unwrap();
        }
        tx.close();
    });
    for (k, n) in seen.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), 1, "message {k}");
    }
    assert_eq!(rx.lost(), 0);
}

#[test]
fn capacity_one_many_threads() {
    run(1, 3, 3, 3_000, WaitStrategy::ADAPTIVE);
}

#[test]
fn capacity_two_many_threads() {
    run(2, 3, 2, 5_000, WaitStrategy::ADAPTIVE);
}

#[test]
fn every_wait_strategy() {
    run(4, 2, 2, 5_000, WaitStrategy::Blocking);
    run(4, 2, 2, 5_000, WaitStrategy::BusySpin);
    run(
        64,
        4,
        2,
        20_000,
        WaitStrategy::adaptive(Duration::from_micros(20)),
    );
}

#[test]
fn capacity_is_rounded_up_and_edges_hold() {
    let ring = Mpmc::anonymous(multiproc_queue::mpmc::Config::new(3, 8)).unwrap();
    assert_eq!(ring.capacity(), 4);
    let (tx, rx) = (ring.sender(), ring.receiver());
    for round in 0..10u8 {
        for i in 0..4 {
            tx.try_send(&[round, i]).unwrap();
        }
        assert!(ring.is_full());
        assert!(tx.try_send(b"x").unwrap_err().is_full());
        for i in 0..4 {
            assert_eq!(rx.try_recv().unwrap().bytes(), [round, i]);
        }
        assert!(ring.is_empty());
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Empty));
    }
    // Zero-length and largest messages.
    tx.send(b"").unwrap();
    tx.send(&[9; 8]).unwrap();
    assert!(rx.recv().unwrap().is_empty());
    assert_eq!(rx.recv().unwrap().bytes(), [9; 8]);
}

#[test]
fn a_panicking_writer_aborts_its_message_and_the_ring_goes_on() {
    let (tx, rx) = channel(2, 8).unwrap();
    let tx2 = tx.clone();
    let r = std::thread::spawn(move || {
        let mut res = tx2.reserve(4).unwrap();
        res.buf()[0] = 1;
        panic!("writer panics while holding its reservation");
    })
    .join();
    assert!(r.is_err());
    tx.send(b"after").unwrap();
    assert_eq!(rx.recv().unwrap().bytes(), b"after");
    assert_eq!(rx.lost(), 1);
}

#[test]
fn close_wakes_parked_receivers_and_senders() {
    let (tx, rx) = channel(1, 8).unwrap();
    tx.send(b"fill").unwrap();
    let tx2 = tx.clone().with_wait_strategy(WaitStrategy::Blocking);
    let rx2 = rx.clone().with_wait_strategy(WaitStrategy::Blocking);
    let s = std::thread::spawn(move || tx2.send(b"blocked").map_err(|e| e.is_closed()));
    std::thread::sleep(Duration::from_millis(20));
    tx.close();
    assert_eq!(s.join().unwrap(), Err(true));
    assert_eq!(rx2.recv().unwrap().bytes(), b"fill");
    let r = std::thread::spawn(move || rx2.recv().map(|m| m.len()).err());
    assert_eq!(r.join().unwrap(), Some(RecvError::Closed));
}
