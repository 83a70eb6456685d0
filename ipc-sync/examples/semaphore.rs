//! A semaphore with one permit passes a turn back and forth between a
//! parent and a forked child (a post/wait ping-pong), a bounded semaphore
//! refuses a release past its bound, and a recoverable semaphore gets back
//! the permits of a child that exited holding them.
//!
//! Run: `cargo run --release -p multiproc-sync --example semaphore`

use multiproc_core::Process;
use multiproc_sync::{BoundedSemaphore, RecoverableSemaphore, ReleaseError, Semaphore};
use std::time::Instant;

const ROUNDS: u32 = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ping = Semaphore::anonymous(0)?;
    let pong = Semaphore::anonymous(0)?;
    let child = Process::builder().name("ponger").fork(|| {
        for _ in 0..ROUNDS {
            ping.acquire();
            pong.release().expect("release");
        }
    })?;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        ping.release()?;
        pong.acquire();
    }
    let elapsed = t.elapsed();
    if !child.join()?.success() {
        return Err("the child failed".into());
    }
    println!(
        "{ROUNDS} semaphore round trips between two processes, {:.2} us each",
        elapsed.as_secs_f64() * 1e6 / f64::from(ROUNDS)
    );

    let bounded = BoundedSemaphore::anonymous((1, 1))?;
    match bounded.release() {
        Err(ReleaseError { bound }) => {
            println!("releasing a full bounded semaphore is refused (bound {bound})")
        }
        other => return Err(format!("expected AboveBound, got {other:?}").into()),
    }

    // A process that exits holding permits: a recoverable semaphore gets
    // them back.
    let pool = RecoverableSemaphore::anonymous(2)?;
    let holder = Process::builder().name("holder").fork(|| {
        pool.acquire().expect("the child knows its identity");
        pool.acquire().expect("the child knows its identity");
    })?;
    holder.join()?;
    println!("a child exited holding {} of 2 permits", 2 - pool.value());
    let back = pool.recover();
    println!("recovered {back}; free now: {}", pool.value());
    if pool.value() != 2 {
        return Err("permits were not recovered".into());
    }
    Ok(())
}
