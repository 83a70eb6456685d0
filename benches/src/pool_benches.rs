//! Measurements of `ipc-pool`: the per-task cost of `map` (chunksize 1 and
//! the default chunksize, the same task counts as the Python baselines),
//! starting a pool of two workers, and the speed-up of a CPU-bound map on two
//! workers over running it in one process.
//!
//! A pool runs a supervisor thread in the harness, so these measurements
//! come last in the suite and join every pool they start: the harness is
//! single-threaded again before anything else forks. The workers are spawned
//! (the pool's default), allowed on both cores.

use crate::baselines::python::{pool_tasks, POOL_MAPS};
use crate::machine::pin_to_cores;
use crate::outcome::{Latency, Outcome, Unit};
use crate::runner::{median, Ctx, Mode};
use crate::suite::Entry;
use ipc_core::process::StartMethod;
use ipc_pool::Pool;
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

/// ns per task of `Pool(2).map` over `add_one`, with chunksize 1 or the
/// default: one warm-up map, then [`POOL_MAPS`] timed maps, each one sample.
fn map_task(ctx: &Ctx, default_chunksize: bool) -> Result<Outcome, String> {
    let tasks = pool_tasks(ctx, default_chunksize);
    let mut pool = two_workers(ctx)?;
    let run = |pool: &Pool, n: u64| -> Result<f64, String> {
        let t0 = Instant::now();
        let out = if default_chunksize {
            pool.map(add_one, 0..n)
        } else {
            pool.map_chunked(add_one, 0..n, 1)
        }
        .map_err(|e| format!("map: {e}"))?;
        let ns = t0.elapsed().as_nanos() as f64;
        check_add_one(&out, n)?;
        Ok(ns / n as f64)
    };
    let result = (|| {
        run(&pool, tasks / 4 + 1)?;
        let mut lat = Latency::new(1000.0);
        for _ in 0..POOL_MAPS {
            lat.record_ns(run(&pool, tasks)?);
        }
        Ok(Outcome::Latency(lat))
    })();
    pool.join();
    result
}

/// ns from `Pool::builder().workers(2).build()` to the first result of an
/// `apply` (both workers spawned and one task served).
/// Starting a pool of two workers until its first `apply` has answered (as
/// the Python baseline does); the pool is then joined, untimed.
fn startup(ctx: &Ctx, method: StartMethod) -> Result<Outcome, String> {
    let mut lat = Latency::new(1.0);
    for i in 0..=ctx.reps() {
        let t0 = Instant::now();
        let mut pool = two_workers_by(ctx, method)?;
        let got = pool.apply(add_one, 41);
        let ns = t0.elapsed().as_nanos() as f64;
        pool.join();
        if got.map_err(|e| format!("apply: {e}"))? != 42 {
            return Err("apply returned a wrong result".into());
        }
        if i > 0 {
            lat.record_ns(ns);
        }
    }
    Ok(Outcome::Latency(lat))
}

/// Sequential time over parallel time of `burn` mapped over N inputs (128 in
/// the quick suite), on two workers with the default chunksize; the median
/// of [`Ctx::reps`] runs (fewer if the budget runs out).
fn cpu_bound_speedup(ctx: &Ctx) -> Result<Outcome, String> {
    let n: u64 = match ctx.mode {
        Mode::Smoke => 4,
        Mode::Quick => 128,
        Mode::Full => 1024,
    };
    let mut pool = two_workers(ctx)?;
    let result = (|| {
        let expected: Vec<u64> = (0..n).map(burn).collect();
        let mut ratios = Vec::new();
        let started = Instant::now();
        for rep in 0..=ctx.reps() {
            if rep > 1 && started.elapsed() > ctx.budget() {
                break;
            }
            let t0 = Instant::now();
            let seq: Vec<u64> = (0..n).map(|x| burn(std::hint::black_box(x))).collect();
            let t_seq = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let par = pool.map(burn, 0..n).map_err(|e| format!("map: {e}"))?;
            let t_par = t1.elapsed().as_secs_f64();
            if seq != expected || par != expected {
                return Err("the CPU-bound map returned wrong results".into());
            }
            if rep > 0 {
                ratios.push(t_seq / t_par);
            }
        }
        Ok(Outcome::Throughput {
            samples: ratios.len() as u64,
            value: median(&mut ratios),
        })
    })();
    pool.join();
    result
}

/// The ipc-pool entries of the suite.
pub fn entries() -> Vec<Entry> {
    let e = |id, unit, baseline, run| Entry {
        id,
        unit,
        baseline,
        also: &[],
        run,
    };
    vec![
        e(
            "pool.map.task",
            Unit::Ns,
            Some("baseline.python.pool.task"),
            |c| map_task(c, false),
        ),
        e(
            "pool.map.task.default",
            Unit::Ns,
            Some("baseline.python.pool.task.default"),
            |c| map_task(c, true),
        ),
        e(
            "pool.startup",
            Unit::Ns,
            Some("baseline.python.pool.startup"),
            |c| startup(c, StartMethod::Spawn),
        ),
        e(
            "pool.startup.fork",
            Unit::Ns,
            Some("baseline.python.pool.startup"),
            |c| startup(c, StartMethod::Fork),
        ),
        e(
            "pool.cpu_bound.speedup",
            Unit::Speedup,
            None,
            cpu_bound_speedup,
        ),
    ]
}
