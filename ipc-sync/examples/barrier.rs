//! A parent and a forked child meet at a barrier each round; the last to
//! arrive runs the action. Then a lone party times out and breaks it.
//!
//! Run: `cargo run --release -p multiproc-sync --example barrier`

use multiproc_core::Process;
use multiproc_sync::{Barrier, BarrierTimeoutError, Value};
use std::time::Duration;

const ROUNDS: u64 = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = std::sync::Arc::new(Value::anonymous(0u64)?);
    let r2 = std::sync::Arc::clone(&rounds);
    let b = Barrier::anonymous(2)?.with_action(move || {
        r2.update(|n| *n += 1).expect("count");
    });
    let child = Process::builder().name("party").fork(|| {
        for _ in 0..ROUNDS {
            b.wait().expect("barrier");
        }
        // A forked child leaves with `_exit`, without dropping `b`.
        b.leave();
    })?;
    let mut led = 0;
    for _ in 0..ROUNDS {
        if b.wait()?.is_leader {
            led += 1;
        }
    }
    if !child.join()?.success() {
        return Err("the child failed".into());
    }
    let n = rounds.get().expect("read");
    println!("{n} rounds, the parent arrived last in {led} of them");
    if n != ROUNDS {
        return Err("the action did not run once per round".into());
    }
    match b.wait_timeout(Duration::from_millis(10)) {
        Err(BarrierTimeoutError::TimedOut) => {
            println!("a lone party timed out; broken: {}", b.is_broken())
        }
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }
    b.reset();
    Ok(())
}
