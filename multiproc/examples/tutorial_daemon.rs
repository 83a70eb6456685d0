//! A daemon child waits for tasks for ever; the parent prints a line and
//! exits at once, and the daemon goes with it.
//!
//! Run: `cargo run --release --example tutorial_daemon`

use multiproc::Process;
use std::time::Duration;

fn wait_for_tasks(_: ()) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let daemon = Process::builder()
        .name("daemon")
        .daemon(true)
        .start(wait_for_tasks, ())?;
    println!(
        "the parent exits now; daemon pid {} goes with it",
        daemon.pid()
    );
    Ok(()) // dropping a running daemon kills it; so does the parent's death
}
