//! The parent joins a busy child with a timeout, in a loop, until it ends.
//!
//! Run: `cargo run --release --example tutorial_join_timeout [seconds]`

use multiproc::Process;
use std::time::{Duration, Instant};

fn busy(seconds: f64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let child = Process::start(busy, seconds)?;
    while child.join_timeout(Duration::from_secs(1))?.is_none() {
        println!("in loop");
    }
    println!(
        "exit code {}",
        child.exit_status().map_or(0, |s| s.exitcode())
    );
    Ok(())
}
