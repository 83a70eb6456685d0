//! A pool of 2 maps a function over four `(name, tenths of a second)`
//! pairs; each task prints its name, sleeps, and prints that it executed.
//! The wall time is about the longest chain of tasks on one worker, not
//! the sum of all of them.
//!
//! Run: `cargo run --release --example tutorial_pool_work_log`

use multiproc::Pool;
use std::time::{Duration, Instant};

fn work_log((name, tenths): (String, u64)) {
    println!("Process {name} waiting {tenths} tenths of a second");
    std::thread::sleep(Duration::from_millis(100 * tenths));
    println!("Process {name} executed");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let work = [("V", 5), ("X", 2), ("Y", 1), ("Z", 3)].map(|(n, t)| (n.to_string(), t));
    let pool = Pool::new(2)?;
    let start = Instant::now();
    pool.map(work_log, work)?;
    eprintln!(
        "wall time {:.1} s (the tasks sum to 1.1 s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
