//! Whether a child is alive, before and after it is joined.
//!
//! Run: `cargo run --release --example tutorial_is_alive`

use multiproc::Process;
use std::time::Duration;

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let child = Process::start(nap, 500u64)?;
    println!("{}", child.is_alive());
    child.join()?;
    println!("{}", child.is_alive());
    Ok(())
}
