//! Two processes share an SPSC byte ring: the parent creates an anonymous
//! ring and starts a child that inherits it; the child writes variable-length
//! messages in place, the parent reads them in place and checks them.
//!
//! Run: `cargo run --release -p multiproc-queue --example spsc_bytes`

use multiproc_core::process::{self, Process};
use multiproc_queue::spsc::SpscRing;
use std::time::Instant;

const MESSAGES: u64 = 1_000_000;

/// The child: attaches the producer and writes each message straight into
/// the ring.
fn producer(_: &[u8]) -> i32 {
    let fd = process::take_inherited_fd(0).expect("the parent passes the ring");
    let ring = SpscRing::from_fd(fd).expect("the ring maps");
    let mut tx = ring.producer().expect("the producer end is free");
    for seq in 0..MESSAGES {
        let len = 8 + (seq % 57) as usize;
        let mut grant = tx.reserve(len).expect("the consumer is there");
        grant[..8].copy_from_slice(&seq.to_le_bytes());
        grant[8..].fill(seq as u8);
        grant.commit();
    }
    0 // dropping `tx` closes the ring: the parent drains it, then sees Closed
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let ring = SpscRing::builder().capacity(64 * 1024).create()?;
    let mut rx = ring.consumer()?;
    let child = Process::builder()
        .name("spsc-producer")
        .inherit_fd(ring.fd())
        .spawn(producer, b"")?;
    let start = Instant::now();
    let mut next = 0u64;
    while let Ok(msg) = rx.recv() {
        let seq = u64::from_le_bytes(msg[..8].try_into()?);
        if seq != next
            || msg.len() != 8 + (seq % 57) as usize
            || msg[8..].iter().any(|&b| b != seq as u8)
        {
            return Err(format!("message {next} arrived wrong").into());
        }
        next += 1;
    }
    let elapsed = start.elapsed();
    let status = child.join()?;
    println!(
        "received {next} messages in {elapsed:?} ({:.1} M msg/s); the producer exited with {status}",
        next as f64 / elapsed.as_secs_f64() / 1e6
    );
    if next != MESSAGES || !status.success() {
        return Err("messages were lost".into());
    }
    Ok(())
}
