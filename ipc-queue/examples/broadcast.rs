//! One publisher (the parent), two subscriber processes: a fast one that
//! keeps up and a slow one that is lapped and learns how many messages it
//! lost.
//!
//! Run: `cargo run --release -p multiproc-queue --example broadcast`

use multiproc_core::process::{self, Process};
use multiproc_queue::broadcast::{BroadcastRing, Config, ReadError, Start};
use std::time::Duration;

const TICKS: u64 = 200_000;

/// A market-data tick.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: u64,
}
// SAFETY: `#[repr(C)]`, two `u64`s: no padding, no pointers, any bits valid.
unsafe impl multiproc_core::Shareable for Tick {}

/// Runs in each subscriber; `args[0]` says whether to be slow.
fn subscriber(args: &[u8]) -> i32 {
    let slow = args[0] == 1;
    let fd = process::take_inherited_fd(0).expect("the parent passes the ring");
    let mut sub = match BroadcastRing::from_fd(fd) {
        Ok(ring) => ring.subscribe(Start::Oldest),
        Err(e) => {
            eprintln!("subscriber: {e}");
            return 2;
        }
    };
    let (mut received, mut expected) = (0u64, 0u64);
    loop {
        match sub.recv_value::<Tick>() {
            Ok(t) => {
                if t.seq != expected || t.price != 100 + t.seq % 7 {
                    eprintln!("subscriber: bad tick {t:?}, expected seq {expected}");
                    return 3;
                }
                expected += 1;
                received += 1;
                if slow && received % 16 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(ReadError::Lagged(n)) => expected += n,
            Err(ReadError::Closed) => break,
            Err(e) => {
                eprintln!("subscriber: {e}");
                return 4;
            }
        }
    }
    println!(
        "{} subscriber (pid {}): {received} ticks received, {} lost to overruns, {} in all",
        if slow { "slow" } else { "fast" },
        std::process::id(),
        sub.overruns(),
        received + sub.overruns()
    );
    if received + sub.overruns() == TICKS {
        0
    } else {
        5
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let ring = BroadcastRing::anonymous(Config::new(4096, std::mem::size_of::<Tick>()))?;
    let mut publisher = ring.publisher()?;
    let subs = [0u8, 1]
        .iter()
        .map(|slow| {
            Process::builder()
                .name(if *slow == 1 { "slow" } else { "fast" })
                .inherit_fd(publisher.fd())
                .spawn(subscriber, &[*slow])
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Let the subscribers attach before the first tick.
    std::thread::sleep(Duration::from_millis(200));
    for seq in 0..TICKS {
        publisher.publish_value(Tick {
            seq,
            price: 100 + seq % 7,
        })?;
        if seq % 256 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    println!("publisher: {TICKS} ticks published, never waited");
    drop(publisher); // closes the ring: subscribers drain and leave
    for s in &subs {
        let status = s.join()?;
        if !status.success() {
            return Err(format!("{} subscriber exited with {status}", s.name()).into());
        }
    }
    Ok(())
}
