//! A worker is SIGKILLed in the middle of a `map`: the task it ran fails with
//! an error naming it, a replacement takes its place, and every other task
//! completes. (Python's `Pool.map` would hang here for ever.)
//!
//! Run: `cargo run --release -p multiproc-pool --example worker_crash`

use multiproc_pool::{Pool, TaskError};
use std::time::Duration;

fn slow_double(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x * 2
}

fn main() -> Result<(), multiproc_pool::PoolError> {
    multiproc_core::process::init();
    let pool = Pool::new(2)?;
    let victim = pool.worker_pids()[0];
    let results = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            println!("killing worker {victim} with SIGKILL");
            // SAFETY: kill has no memory-safety preconditions; `victim` is a
            // worker of this pool.
            unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
        });
        pool.map_results(slow_double, 0..500u64, Some(1))
    })?;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    for (i, r) in results.iter().enumerate() {
        if let Err(e @ TaskError::WorkerDied { .. }) = r {
            println!("task {i} failed: {e}");
        }
    }
    println!(
        "{ok} of {} tasks completed; workers now: {:?}",
        results.len(),
        pool.worker_pids()
    );
    println!(
        "the pool keeps serving: {:?}",
        pool.map(slow_double, 0..5u64)?
    );
    Ok(())
}
