//! A forked consumer waits on a condition variable for items a parent
//! produces into a small buffer guarded by a robust mutex.
//!
//! Run: `cargo run --release -p multiproc-sync --example condvar`

use multiproc_core::Process;
use multiproc_sync::{Condvar, Mutex};

/// `[produced, consumed, sum of consumed items]`.
type Queue = [u64; 3];
const ITEMS: u64 = 10_000;
const SLACK: u64 = 8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m = Mutex::<Queue>::anonymous([0, 0, 0])?;
    let changed = Condvar::anonymous()?;
    let consumer = Process::builder().name("consumer").fork(|| {
        for _ in 0..ITEMS {
            let mut g = changed
                .wait_while(m.lock().expect("lock"), |q| q[1] == q[0])
                .expect("wait");
            g[1] += 1;
            g[2] += g[1];
            drop(g);
            changed.notify_all();
        }
    })?;
    for _ in 0..ITEMS {
        let mut g = changed
            .wait_while(m.lock().expect("lock"), |q| q[0] - q[1] >= SLACK)
            .expect("wait");
        g[0] += 1;
        drop(g);
        changed.notify_all();
    }
    if !consumer.join()?.success() {
        return Err("the consumer failed".into());
    }
    let q = *m.lock().expect("lock");
    println!("produced {}, consumed {}, sum {}", q[0], q[1], q[2]);
    if q != [ITEMS, ITEMS, ITEMS * (ITEMS + 1) / 2] {
        return Err("the consumer missed items".into());
    }
    Ok(())
}
