//! A spawned child opens a named event and waits; the parent sets it. Then
//! the roles flip through a second event, and a round-trip timing follows.
//!
//! Run: `cargo run --release -p multiproc-sync --example event`

use multiproc_core::process::{self, Process};
use multiproc_sync::Event;
use std::time::{Duration, Instant};

const ROUNDS: u32 = 10_000;

fn names(base: &str) -> (String, String) {
    (format!("{base}.go"), format!("{base}.done"))
}

fn child(args: &[u8]) -> i32 {
    let (go, done) = names(std::str::from_utf8(args).expect("name"));
    let (go, done) = (
        Event::open(&go).expect("open"),
        Event::open(&done).expect("open"),
    );
    for _ in 0..ROUNDS {
        if !go.wait_timeout(Duration::from_secs(30)) {
            return 1;
        }
        go.clear();
        done.set();
    }
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let base = multiproc_core::name::unique_name("example-event");
    let (go_name, done_name) = names(&base);
    let go = Event::create(&go_name)?;
    let done = Event::create(&done_name)?;
    let c = Process::builder()
        .name("event-child")
        .spawn(child, base.as_bytes())?;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        go.set();
        if !done.wait_timeout(Duration::from_secs(30)) {
            return Err("the child stopped answering".into());
        }
        done.clear();
    }
    let elapsed = t.elapsed();
    if !c.join()?.success() {
        return Err("the child failed".into());
    }
    println!(
        "{ROUNDS} set -> wake round trips between two processes, {:.2} us each",
        elapsed.as_secs_f64() * 1e6 / f64::from(ROUNDS)
    );
    Ok(())
}
