//! The two figures every other one is read against, on this machine: the
//! cache-line round trip between two cores (the physical floor) and a futex
//! wake-up round trip (what any blocking wait costs), next to this
//! workspace's SPSC ring measured paired with the floor, in a few seconds.
//!
//! ```sh
//! cargo run --release -p ipc-benches --example floor
//! ```

use ipc_benches::clock::Clock;
use ipc_benches::runner::{Ctx, Mode};
use ipc_benches::{report, suite};
use std::time::Duration;

fn main() {
    let ctx = Ctx {
        mode: Mode::Quick,
        cores: (0, 1),
        clock: Clock::calibrated(),
        timeout: Duration::from_secs(60),
    };
    let wanted = ["baseline.c2c.rtt", "baseline.futex.rtt", "queue.spsc.rtt.8"];
    let picked: Vec<suite::Entry> = suite::entries()
        .into_iter()
        .filter(|e| wanted.contains(&e.id))
        .collect();
    let results = suite::run(&ctx, &picked, |_, what| eprintln!("measuring {what}"));
    print!("{}", report::table(&results.records));
    print!("{}", report::comparisons_table(&results));
}
