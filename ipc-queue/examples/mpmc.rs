//! Two producer processes and one consumer (the parent) share an anonymous
//! MPMC ring; the parent checks that every message arrived exactly once.
//!
//! Run: `cargo run --release -p multiproc-queue --example mpmc`

use multiproc_core::process::{self, Process};
use multiproc_queue::mpmc::Mpmc;

const PER_PRODUCER: u64 = 100_000;

/// Runs in each child: sends `PER_PRODUCER` tagged sequence numbers.
fn producer(args: &[u8]) -> i32 {
    let id = u64::from(args[0]);
    let fd = process::take_inherited_fd(0).expect("the parent passes the ring");
    let ring = match Mpmc::from_fd(fd) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("producer {id}: {e}");
            return 2;
        }
    };
    let tx = ring.sender();
    for seq in 0..PER_PRODUCER {
        if let Err(e) = tx.send_value([id, seq]) {
            eprintln!("producer {id}: {e}");
            return 3;
        }
    }
    println!(
        "producer {id} (pid {}): sent {PER_PRODUCER}",
        std::process::id()
    );
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let ring = Mpmc::anonymous(multiproc_queue::mpmc::Config::new(1024, 16))?;
    let producers = (0..2u8)
        .map(|id| {
            Process::builder()
                .name(format!("producer-{id}"))
                .inherit_fd(ring.fd())
                .spawn(producer, &[id])
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rx = ring.receiver();
    let mut next = [0u64; 2];
    let start = std::time::Instant::now();
    for _ in 0..2 * PER_PRODUCER {
        let [id, seq] = rx.recv_value::<[u64; 2]>()?;
        // One producer's messages arrive in the order it sent them.
        if seq != next[id as usize] {
            return Err(format!("producer {id}: got {seq}, expected {}", next[id as usize]).into());
        }
        next[id as usize] += 1;
    }
    let took = start.elapsed();
    for p in &producers {
        let status = p.join()?;
        if !status.success() {
            return Err(format!("{} exited with {status}", p.name()).into());
        }
    }
    println!(
        "consumer (pid {}): {} messages in {took:.2?}, none lost ({} lost), none duplicated",
        std::process::id(),
        2 * PER_PRODUCER,
        ring.lost()
    );
    Ok(())
}
