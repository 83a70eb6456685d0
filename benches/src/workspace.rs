//! Measurements of this workspace's own types that need no peer crate
//! beyond multiproc-core: starting a child process.

use crate::outcome::Latency;
use crate::runner::{Ctx, Pace};
use crate::side::{Block, BoxSide, LocalSide, NotMade};
use multiproc_core::process::{ExitStatus, Process};
use std::time::Instant;

/// ns to start a child with `Process::builder().fork(..)` and join it.
///
/// # Errors
/// A start or join failed, or the child exited badly.
pub fn start_fork(ctx: &Ctx) -> Result<BoxSide, NotMade> {
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
pub fn start_spawn(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    start_join(ctx, |i| {
        Process::builder()
            .name("ipc-bench-spawn")
            .spawn(spawn_with_code, &[(i % 100) as u8])
    })
}

/// ns to start a child from the fork server
/// (`Process::builder().forkserver(..)`) and join it; the server itself is
/// started once, by the first block.
///
/// # Errors
/// As [`start_fork`].
pub fn start_forkserver(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    start_join(ctx, |i| {
        Process::builder()
            .name("ipc-bench-forkserver")
            .forkserver(spawn_with_code, &[(i % 100) as u8])
    })
}

/// The entry a spawned child runs (from the harness main's
/// `multiproc_core::process::init()`): exits with the code it was given.
fn spawn_with_code(args: &[u8]) -> i32 {
    i32::from(args.first().copied().unwrap_or(0))
}

/// A side whose blocks start and join [`Ctx::block`]`(Pace::Slow)`
/// children with `start` (given a counter, whose low digits are the exit
/// code the child must end with), each timed.
fn start_join(
    ctx: &Ctx,
    start: impl Fn(u64) -> Result<Process, multiproc_core::ProcessError> + 'static,
) -> Result<BoxSide, NotMade> {
    let (_, n) = ctx.block(Pace::Slow);
    let mut i = 0u64;
    Ok(LocalSide::boxed(move |c: &Ctx| {
        let w = c.watch();
        let mut lat = Latency::new(1.0);
        for _ in 0..n {
            i += 1;
            let t0 = Instant::now();
            let child = start(i).map_err(|e| format!("start: {e}"))?;
            let status = child.join().map_err(|e| format!("join: {e}"))?;
            lat.record_ns(t0.elapsed().as_nanos() as f64);
            let want = ExitStatus::Code((i % 100) as i32);
            if status != want {
                return Err(format!("child {i} ended with {status}, expected {want}"));
            }
            w.check("process starts")?;
        }
        Ok(Block::Latency(lat))
    }))
}
