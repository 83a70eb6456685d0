//! Measurements of `multiproc-pool`: the per-task cost of `map` (chunksize 1 and
//! the default chunksize, the same task counts as the Python baselines),
//! starting a pool of two workers, and the speed-up of a CPU-bound map on two
//! workers over running it in one process.
//!
//! A pool runs a supervisor thread in the harness, so these measurements
//! come last in the suite and join every pool they start: the harness is
//! single-threaded again before anything else forks. The workers are spawned
//! (the pool's default), allowed on both cores.

use crate::baselines::python::pool_tasks;
use crate::machine::pin_to_cores;
use crate::outcome::{Latency, Unit, Wait};
use crate::runner::{Ctx, Mode, Pace};
use crate::side::{Block, BoxSide, LocalSide, NotMade, Side};
use crate::suite::{base, cmp, Entry};
use multiproc_core::process::StartMethod;
use multiproc_pool::Pool;
use std::time::Instant;

/// The trivial task of the per-task measurements (Python's is `x + 1` too).
fn add_one(x: u64) -> u64 {
    x + 1
}

/// Spins of the CPU-bound task: a few milliseconds of xorshift.
const BURN_ITERS: u64 = 1_000_000;

/// A CPU-bound task: `BURN_ITERS` rounds of xorshift from `seed`.
fn burn(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..BURN_ITERS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn two_workers(ctx: &Ctx) -> Result<Pool, String> {
    two_workers_by(ctx, StartMethod::Spawn)
}

fn two_workers_by(ctx: &Ctx, method: StartMethod) -> Result<Pool, String> {
    pin_to_cores(&[ctx.cores.0, ctx.cores.1])?;
    let b = Pool::builder().workers(2);
    let b = match method {
        StartMethod::Spawn => b,
        // SAFETY: the workers run `add_one` and `burn`, pure computation
        // that touches no lock of the harness's other threads.
        StartMethod::Fork => unsafe { b.fork_workers() },
        StartMethod::ForkServer => b.forkserver_workers(),
    };
    b.build().map_err(|e| format!("pool: {e}"))
}

fn check_add_one(out: &[u64], n: u64) -> Result<(), String> {
    let ok = out.len() as u64 == n && out.iter().enumerate().all(|(i, &v)| v == i as u64 + 1);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "map returned {} wrong or missing results",
            out.len()
        ))
    }
}

/// ns per task of `Pool(2).map` over `add_one`, chunksize 1 or the
/// default: the pool lives as long as the side; a block is one map of
/// [`pool_tasks`] tasks (its time over the task count).
struct MapSide {
    default_chunksize: bool,
    tasks: u64,
    pool: Option<Pool>,
}

impl Side for MapSide {
    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        let pool = two_workers(ctx)?;
        self.pool = Some(pool);
        // One untimed map of a quarter of the tasks: workers warm.
        self.map(self.tasks / 4 + 1).map(|_| ())
    }

    fn block(&mut self, _ctx: &Ctx) -> Result<Block, String> {
        let ns = self.map(self.tasks)?;
        let mut lat = Latency::new(1000.0);
        lat.record_ns(ns);
        Ok(Block::Latency(lat))
    }

    fn stop(&mut self) -> Result<(), String> {
        if let Some(mut p) = self.pool.take() {
            p.join();
        }
        Ok(())
    }
}

impl MapSide {
    /// One map of `n` tasks; ns per task.
    fn map(&mut self, n: u64) -> Result<f64, String> {
        let pool = self.pool.as_ref().ok_or("not started")?;
        let t0 = Instant::now();
        let out = if self.default_chunksize {
            pool.map(add_one, 0..n)
        } else {
            pool.map_chunked(add_one, 0..n, 1)
        }
        .map_err(|e| format!("map: {e}"))?;
        let ns = t0.elapsed().as_nanos() as f64;
        check_add_one(&out, n)?;
        Ok(ns / n as f64)
    }
}

fn map_task(ctx: &Ctx, default_chunksize: bool) -> Result<BoxSide, NotMade> {
    Ok(Box::new(MapSide {
        default_chunksize,
        tasks: pool_tasks(ctx, default_chunksize),
        pool: None,
    }))
}

/// Starting a pool of two workers until its first `apply` has answered (as
/// the Python baseline does); the pool is then joined, untimed. A block is
/// one start.
fn startup(_ctx: &Ctx, method: StartMethod) -> Result<BoxSide, NotMade> {
    Ok(LocalSide::boxed(move |c: &Ctx| {
        let t0 = Instant::now();
        let mut pool = two_workers_by(c, method)?;
        let got = pool.apply(add_one, 41);
        let ns = t0.elapsed().as_nanos() as f64;
        pool.join();
        if got.map_err(|e| format!("apply: {e}"))? != 42 {
            return Err("apply returned a wrong result".into());
        }
        let mut lat = Latency::new(1.0);
        lat.record_ns(ns);
        Ok(Block::Latency(lat))
    }))
}

/// Sequential time over parallel time of `burn` mapped over N inputs (64 in
/// the quick suite), on two workers with the default chunksize; a block is
/// one comparison, the figure the median of the blocks.
fn cpu_bound_speedup(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let n: u64 = match ctx.mode {
        Mode::Smoke => 4,
        Mode::Quick => 64,
        Mode::Full => 1024,
    };
    let expected: Vec<u64> = (0..n).map(burn).collect();
    let mut pool: Option<Pool> = None;
    Ok(LocalSide::boxed(move |c: &Ctx| {
        if pool.is_none() {
            pool = Some(two_workers(c)?);
        }
        let p = pool.as_ref().ok_or("no pool")?;
        let t0 = Instant::now();
        let seq: Vec<u64> = (0..n).map(|x| burn(std::hint::black_box(x))).collect();
        let t_seq = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let par = p.map(burn, 0..n).map_err(|e| format!("map: {e}"))?;
        let t_par = t1.elapsed().as_secs_f64();
        if seq != expected || par != expected {
            return Err("the CPU-bound map returned wrong results".into());
        }
        Ok(Block::Rate {
            value: t_seq / t_par,
            count: 1,
        })
    }))
}

/// The multiproc-pool entries of the suite.
pub fn entries() -> Vec<Entry> {
    use Pace::Slow;
    use Wait::{Adaptive as Ad, None as Nw};
    vec![
        cmp(
            "pool.map.task",
            Unit::Ns,
            Ad,
            Slow,
            "baseline.python.pool.task",
            &[],
            |c| map_task(c, false),
        ),
        cmp(
            "pool.map.task.default",
            Unit::Ns,
            Ad,
            Slow,
            "baseline.python.pool.task.default",
            &[],
            |c| map_task(c, true),
        ),
        cmp(
            "pool.startup",
            Unit::Ns,
            Nw,
            Slow,
            "baseline.python.pool.startup",
            &[],
            |c| startup(c, StartMethod::Spawn),
        ),
        cmp(
            "pool.startup.fork",
            Unit::Ns,
            Nw,
            Slow,
            "baseline.python.pool.startup",
            &[],
            |c| startup(c, StartMethod::Fork),
        ),
        cmp(
            "pool.startup.forkserver",
            Unit::Ns,
            Nw,
            Slow,
            "baseline.python.pool.startup",
            &["pool.startup"],
            |c| startup(c, StartMethod::ForkServer),
        ),
        base(
            "pool.cpu_bound.speedup",
            Unit::Speedup,
            Nw,
            Slow,
            cpu_bound_speedup,
        ),
    ]
}
