//! Plain-old-data values between two processes: a spawned child opens a named
//! ring and publishes market ticks, fixed-size structs copied into their slots
//! with no serialization; the parent reads them in place.
//!
//! Run: `cargo run --release -p multiproc-queue --example spsc_pod`

use bytemuck::{Pod, Zeroable};
use multiproc_core::process::{self, Process};
use multiproc_queue::spsc::SpscRing;

#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
    qty: u32,
    side: u32,
}
multiproc_core::impl_shareable!(Tick);

const TICKS: u64 = 100_000;

/// The child: opens the ring by name and sends the ticks.
fn publisher(args: &[u8]) -> i32 {
    let name = std::str::from_utf8(args).expect("the name is UTF-8");
    let ring = SpscRing::open(name).expect("the ring exists");
    let mut tx = ring.pod_producer::<Tick>().expect("the ring carries ticks");
    for seq in 0..TICKS {
        let tick = Tick {
            seq,
            price: 100.0 + (seq % 100) as f64 * 0.01,
            qty: (seq % 500) as u32 + 1,
            side: (seq % 2) as u32,
        };
        tx.send(tick).expect("the reader is there");
    }
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let name = multiproc_core::name::unique_name("example-ticks");
    // The creator removes the name when `ring` is dropped.
    let ring = SpscRing::builder().name(&name).pod::<Tick>(1024).create()?;
    let mut rx = ring.pod_consumer::<Tick>()?;
    let child = Process::builder()
        .name("tick-publisher")
        .spawn(publisher, name.as_bytes())?;
    let (mut count, mut notional) = (0u64, 0.0f64);
    loop {
        match rx.recv_ref() {
            Ok(tick) => {
                if tick.seq != count {
                    return Err(format!("tick {count} arrived as {}", tick.seq).into());
                }
                notional += tick.price * f64::from(tick.qty);
                count += 1;
            }
            Err(multiproc_queue::error::RecvError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let status = child.join()?;
    println!("{count} ticks through {name:?}, notional {notional:.2}; publisher: {status}");
    if count != TICKS || !status.success() {
        return Err("ticks were lost".into());
    }
    Ok(())
}
