//! An initializer, `max_tasks_per_child`, a per-task timeout, `close` +
//! `join`, and `terminate`.
//!
//! Run: `cargo run --release -p multiproc-pool --example lifecycle`

use multiproc_pool::{Pool, TaskError};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static CONFIG: AtomicU64 = AtomicU64::new(0);

fn load_config() {
    CONFIG.store(42, Ordering::Release); // runs once in each worker
}

fn tagged(x: u64) -> (u32, u64) {
    (std::process::id(), x + CONFIG.load(Ordering::Acquire))
}

fn maybe_stuck(x: u64) -> u64 {
    if x == 3 {
        std::thread::sleep(Duration::from_secs(3600));
    }
    x
}

fn main() -> Result<(), multiproc_pool::PoolError> {
    multiproc_core::process::init();
    let mut pool = Pool::builder()
        .workers(2)
        .initializer(load_config)
        .max_tasks_per_child(10)
        .task_timeout(Duration::from_millis(500))
        .build()?;
    let out = pool.map_chunked(tagged, 0..40u64, 1)?;
    let pids: BTreeSet<u32> = out.iter().map(|(p, _)| *p).collect();
    println!(
        "initializer ran: first value {}; 40 tasks at 10 per worker used {} workers",
        out[0].1,
        pids.len()
    );

    for (i, r) in pool
        .map_results(maybe_stuck, 0..6u64, Some(1))?
        .into_iter()
        .enumerate()
    {
        match r {
            Err(e @ TaskError::Timeout { .. }) => println!("task {i}: {e}"),
            r => println!("task {i}: {r:?}"),
        }
    }
    pool.close();
    pool.join();
    println!("closed and joined");

    let mut pool = Pool::new(2)?;
    let pending = pool.map_async(maybe_stuck, 3..4u64, None)?;
    pool.terminate();
    println!("terminated: {:?}", pending.results());
    Ok(())
}
