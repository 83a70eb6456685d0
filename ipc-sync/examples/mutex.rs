//! Two processes share a named robust mutex: a spawned child adds to a
//! counter, then a second child is killed while holding the lock and the
//! parent repairs the data it left half-written.
//!
//! Run: `cargo run --release -p multiproc-sync --example mutex`

use multiproc_core::process::{self, Process};
use multiproc_sync::{LockError, Mutex};
use std::time::{Duration, Instant};

/// `[count, checksum]`: the checksum is `2 * count` when consistent.
type Counter = [u64; 2];
const ROUNDS: u64 = 100_000;

fn add(m: &Mutex<Counter>) {
    for _ in 0..ROUNDS {
        let mut g = m.lock().expect("lock");
        g[0] += 1;
        g[1] += 2;
    }
}

fn adder(args: &[u8]) -> i32 {
    let m = Mutex::<Counter>::open(std::str::from_utf8(args).expect("name")).expect("open");
    add(&m);
    0
}

fn dies_holding(args: &[u8]) -> i32 {
    let m = Mutex::<Counter>::open(std::str::from_utf8(args).expect("name")).expect("open");
    let mut g = m.lock().expect("lock");
    g[0] += 1; // the checksum is never updated: the parent must repair
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let name = multiproc_core::name::unique_name("example-mutex");
    let m = Mutex::<Counter>::create(&name, [0, 0])?;

    let child = Process::builder()
        .name("adder")
        .spawn(adder, name.as_bytes())?;
    add(&m);
    if !child.join()?.success() {
        return Err("the adder failed".into());
    }
    let total = *m.lock().expect("lock");
    println!("two processes added {ROUNDS} each: {total:?}");
    if total != [2 * ROUNDS, 4 * ROUNDS] {
        return Err("lost updates".into());
    }

    let victim = Process::builder()
        .name("victim")
        .daemon(true)
        .spawn(dies_holding, name.as_bytes())?;
    while m.raw().holder().map(|(_, p)| p.pid) != Some(victim.pid()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    victim.kill()?;
    println!("victim {} killed while holding the lock", victim.pid());
    victim.join()?;
    match m.lock() {
        Err(LockError::OwnerDied(died)) => {
            println!(
                "OwnerDied (previous owner {:?}); repairing",
                died.previous_owner()
            );
            let mut g = died.into_guard();
            g[1] = 2 * g[0];
            g.mark_consistent();
        }
        Ok(_) => return Err("expected OwnerDied".into()),
        Err(e) => return Err(format!("{e}").into()),
    }
    println!("after repair: {:?}", *m.lock().expect("lock"));

    // A sanity timing of the uncontended path (not a benchmark).
    let n = 2_000_000;
    let t = Instant::now();
    for _ in 0..n {
        drop(m.lock().expect("lock"));
    }
    println!(
        "uncontended lock+unlock: {:.1} ns",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    Ok(())
}
