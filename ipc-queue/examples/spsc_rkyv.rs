//! `rkyv` messages between two processes: the child serializes orders
//! straight into the ring; the parent checks each archive and reads it in
//! place as `&ArchivedOrder`, without deserializing.
//!
//! Run: `cargo run --release -p multiproc-queue --example spsc_rkyv`

use multiproc_core::process::{self, Process};
use multiproc_queue::spsc::SpscRing;

#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
struct Order {
    id: u64,
    symbol: String,
    quantities: Vec<u32>,
    note: Option<String>,
}

const ORDERS: u64 = 10_000;

fn sender(_: &[u8]) -> i32 {
    let ring = SpscRing::from_fd(process::take_inherited_fd(0).expect("ring fd")).expect("ring");
    let mut tx = ring.archive_producer::<Order>().expect("producer end");
    for id in 0..ORDERS {
        let order = Order {
            id,
            symbol: format!("SYM{}", id % 10),
            quantities: (1..=(id % 8) as u32).collect(),
            note: (id % 100 == 0).then(|| format!("order {id} is a round one")),
        };
        tx.send(&order).expect("the reader is there");
    }
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let ring = SpscRing::builder().capacity(64 * 1024).create()?;
    let mut rx = ring.archive_consumer::<Order>()?;
    let child = Process::builder()
        .name("order-sender")
        .inherit_fd(ring.fd())
        .spawn(sender, b"")?;
    let (mut count, mut units, mut notes) = (0u64, 0u64, 0u64);
    while let Ok(order) = rx.recv() {
        if order.id != count || order.symbol != format!("SYM{}", count % 10) {
            return Err(format!("order {count} arrived wrong").into());
        }
        units += order
            .quantities
            .iter()
            .map(|q| u64::from(q.to_native()))
            .sum::<u64>();
        notes += u64::from(order.note.is_some());
        count += 1;
    }
    let status = child.join()?;
    println!("{count} orders read in place: {units} units, {notes} notes; sender: {status}");
    if count != ORDERS || !status.success() {
        return Err("orders were lost".into());
    }
    Ok(())
}
