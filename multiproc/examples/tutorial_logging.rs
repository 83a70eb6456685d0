//! Lifecycle logging to stderr: two children start, one is terminated.
//!
//! Run: `cargo run --release --example tutorial_logging`

use multiproc::Process;
use std::time::Duration;

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    multiproc::log_to_stderr(log::LevelFilter::Debug);
    let (a, b) = (Process::start(nap, 50u64)?, Process::start(nap, 10_000u64)?);
    b.terminate()?;
    a.join()?;
    let _ = Process::join(&b); // terminated: no value, an exit status
    Ok(())
}
