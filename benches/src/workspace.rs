//! Measurements of this workspace's own types that need no peer crate
//! beyond ipc-core: starting a child process.

use crate::machine::pin_to_core;
use crate::outcome::{Latency, Outcome};
use crate::runner::{Ctx, Speed};
use ipc_core::process::{ExitStatus, Process};
use std::time::Instant;

/// ns to start a child with `Process::builder().fork(..)` and join it.
///
/// # Errors
/// A start or join failed, or the child exited badly.
pub fn start_fork(ctx: &Ctx) -> Result<Outcome, String> {
    start_join(ctx, |i| {
        Process::builder()
            .name("ipc-bench-fork")
            .fork(move || (i % 100) as i32)
    })
}

/// ns to start a child with `Process::builder().spawn(..)` (re-executing the
/// harness, which runs the entry from `init()`) and join it.
///
/// # Errors
/// As [`start_fork`].
pub fn start_spawn(ctx: &Ctx) -> Result<Outcome, String> {
    start_join(ctx, |i| {
        Process::builder()
            .name("ipc-bench-spawn")
            .spawn(spawn_with_code, &[(i % 100) as u8])
    })
}

/// The entry a spawned child runs (from the harness main's
/// `ipc_core::process::init()`): exits with the code it was given.
fn spawn_with_code(args: &[u8]) -> i32 {
    i32::from(args.first().copied().unwrap_or(0))
}

fn start_join(
    ctx: &Ctx,
    start: impl Fn(u64) -> Result<Process, ipc_core::ProcessError>,
) -> Result<Outcome, String> {
    pin_to_core(ctx.cores.0)?;
    let (warm, n) = ctx.rounds(Speed::Slow);
    let (warm, n) = (warm, n * 2);
    let w = ctx.watch();
    let mut lat = Latency::new(1.0);
    let started = Instant::now();
    for i in 0..warm + n {
        let t0 = Instant::now();
        let child = start(i).map_err(|e| format!("start: {e}"))?;
        let status = child.join().map_err(|e| format!("join: {e}"))?;
        let ns = t0.elapsed().as_nanos() as f64;
        let want = ExitStatus::Code((i % 100) as i32);
        if status != want {
            return Err(format!("child {i} ended with {status}, expected {want}"));
        }
        if i >= warm {
            lat.record_ns(ns);
        }
        w.check("process starts")?;
        if lat.samples() >= 10 && started.elapsed() > ctx.budget() {
            break;
        }
    }
    Ok(Outcome::Latency(lat))
}
