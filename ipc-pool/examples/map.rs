//! `map`, `map_chunked`, `starmap` and `map_results` on a pool of two
//! spawned workers.
//!
//! Run: `cargo run --release -p multiproc-pool --example map`

use multiproc_pool::{Pool, TaskError};

fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

fn power(base: u64, exp: u32) -> u64 {
    base.pow(exp)
}

fn checked_inverse(x: i32) -> f64 {
    assert!(x != 0, "cannot invert zero");
    1.0 / f64::from(x)
}

fn main() -> Result<(), multiproc_pool::PoolError> {
    multiproc_core::process::init();
    let mut pool = Pool::new(2)?;
    println!("workers: {:?}", pool.worker_pids());

    let steps = pool.map(collatz_steps, 1..=100_000u64)?;
    let (n, most) = steps
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| **s)
        .expect("non-empty");
    println!(
        "map: below 100000, {} takes the most Collatz steps ({most})",
        n + 1
    );

    let same = pool.map_chunked(collatz_steps, 1..=1000u64, 1)?;
    assert_eq!(same, steps[..1000]);
    println!("map_chunked(chunksize 1): same first 1000 results");

    println!(
        "starmap: {:?}",
        pool.starmap(power, vec![(2u64, 10u32), (3, 4), (10, 3)])?
    );

    for (x, r) in (-1..=1).zip(pool.map_results(checked_inverse, -1..=1, Some(1))?) {
        match r {
            Ok(v) => println!("map_results: 1/{x} = {v}"),
            Err(TaskError::Panicked { message }) => {
                println!("map_results: 1/{x} failed alone: {message}")
            }
            Err(e) => println!("map_results: 1/{x}: {e}"),
        }
    }
    pool.close();
    pool.join();
    Ok(())
}
