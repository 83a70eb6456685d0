//! A forked writer updates a pair under a readers-writer lock while the
//! parent reads it; then a writer dies mid-update and the parent repairs.
//!
//! Run: `cargo run --release -p multiproc-sync --example rwlock`

use multiproc_core::Process;
use multiproc_sync::{LockError, RwLock};

const ITERS: u64 = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let l = RwLock::<[u64; 2]>::anonymous([0, 0])?;
    let writer = Process::builder().name("writer").fork(|| {
        for _ in 0..ITERS {
            let mut g = l.write().expect("write");
            g[0] += 1;
            g[1] += 1;
        }
    })?;
    let mut reads = 0u64;
    loop {
        let g = l.read().expect("read");
        reads += 1;
        if g[0] != g[1] {
            return Err("a reader saw half an update".into());
        }
        if g[0] == ITERS {
            break;
        }
    }
    if !writer.join()?.success() {
        return Err("the writer failed".into());
    }
    println!("{reads} consistent reads while {ITERS} writes went on");

    // A writer that exits mid-update (as a killed process would).
    let dying = Process::builder().name("dying-writer").fork(|| {
        let mut g = l.write().expect("write");
        g[0] += 1;
        g.leak();
    })?;
    dying.join()?;
    match l.write() {
        Err(LockError::OwnerDied(d)) => {
            let mut g = d.into_guard();
            println!("writer died mid-update, left {:?}; repairing", *g);
            g[1] = g[0];
            g.mark_consistent();
        }
        Err(e) => return Err(format!("{e}").into()),
        Ok(_) => return Err("expected OwnerDied".into()),
    }
    println!("after repair: {:?}", *l.read().expect("read"));
    Ok(())
}
