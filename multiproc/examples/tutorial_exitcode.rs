//! Two children; the second is terminated at once; both exit statuses are
//! printed (Python prints `-15` for the second).
//!
//! Run: `cargo run --release --example tutorial_exitcode`

use multiproc::Process;
use std::time::Duration;

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let first = Process::start(nap, 10u64)?;
    let second = Process::start(nap, 10_000u64)?;
    second.terminate()?;
    nap(300);
    for (i, child) in [first, second].iter().enumerate() {
        let status = Process::join(child)?; // the exit status, not the value
        println!(
            "child {}: {status} (Python's exitcode: {})",
            i + 1,
            status.exitcode()
        );
    }
    Ok(())
}
