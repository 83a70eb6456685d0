//! Measures the pool's costs on this machine: per-task overhead of `map` for
//! a trivial function (chunksize 1 and the default), start + shutdown with
//! 2 workers, and the speed-up of a CPU-bound map on 2 workers.
//!
//! Run: `cargo run --release -p multiproc-pool --example overhead`

use multiproc_core::process::StartMethod;
use multiproc_pool::Pool;
use std::time::{Duration, Instant};

fn identity(x: u64) -> u64 {
    x
}

/// About a millisecond of arithmetic.
fn burn(x: u64) -> u64 {
    let mut h = x;
    for i in 0..600_000u64 {
        h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ i;
    }
    h
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc_core::process::init();
    let n: u64 = 200_000;
    let pool = Pool::new(2)?;
    pool.map(identity, 0..1000u64)?; // warm-up
    for chunksize in [Some(1), None] {
        let runs: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let out = match chunksize {
                    Some(c) => pool.map_chunked(identity, 0..n, c),
                    None => pool.map(identity, 0..n),
                }
                .expect("map");
                assert_eq!(out.len(), n as usize);
                t.elapsed()
            })
            .collect();
        let per = median(runs).as_secs_f64() * 1e9 / n as f64;
        println!(
            "map per-task overhead, chunksize {:<8} {per:>8.1} ns",
            format!("{chunksize:?}")
        );
    }
    for method in [StartMethod::Fork, StartMethod::Spawn] {
        let runs: Vec<Duration> = (0..10)
            .map(|_| {
                let t = Instant::now();
                let b = Pool::builder().workers(2);
                let b = match method {
                    // SAFETY: these workers run nothing but the pool's own
                    // loop (no task is given), which uses no lock of ours.
                    StartMethod::Fork => unsafe { b.fork_workers() },
                    _ => b,
                };
                let mut p = b.build().expect("pool");
                p.join();
                t.elapsed()
            })
            .collect();
        println!(
            "pool start + shutdown (2 workers, {method:?}): {:>8.1} us",
            median(runs).as_secs_f64() * 1e6
        );
    }
    let tasks: Vec<u64> = (0..2000).collect();
    let t = Instant::now();
    let seq: Vec<u64> = tasks.iter().map(|&x| burn(x)).collect();
    let sequential = t.elapsed();
    let t = Instant::now();
    let par = pool.map(burn, tasks)?;
    let parallel = t.elapsed();
    assert_eq!(seq, par);
    println!(
        "cpu-bound map, 2000 tasks of {:.2} ms: sequential {:.2} s, pool(2) {:.2} s, speed-up {:.2}x",
        sequential.as_secs_f64() * 1e3 / 2000.0,
        sequential.as_secs_f64(),
        parallel.as_secs_f64(),
        sequential.as_secs_f64() / parallel.as_secs_f64()
    );
    Ok(())
}
