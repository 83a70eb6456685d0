//! A pool of 3 workers maps `increment` over 1..=10; a pool of 5 maps
//! `square` over [1, 2, 3].
//!
//! Run: `cargo run --release --example tutorial_pool_map`

use multiproc::Pool;

fn increment(x: u64) -> u64 {
    x + 1
}

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let pool = Pool::new(3)?;
    println!("{:?}", pool.map(increment, 1..=10)?);
    let pool = Pool::new(5)?;
    println!("{:?}", pool.map(square, [1, 2, 3])?);
    Ok(())
}
