//! `imap` over an input far too large to hold in memory, with a progress
//! hook, and `imap_unordered`.
//!
//! Run: `cargo run --release -p multiproc-pool --example imap`

use multiproc_pool::Pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn main() -> Result<(), multiproc_pool::PoolError> {
    multiproc_core::process::init();
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = Arc::clone(&seen);
    let pool = Pool::builder()
        .workers(2)
        .on_progress(move |p| {
            let before = s2.swap(p.done, Ordering::Relaxed);
            if p.done / 1_000_000 != before / 1_000_000 {
                println!("  progress: {} inputs done", p.done);
            }
        })
        .build()?;

    // Lazily: the 5 million inputs are produced as results are consumed.
    let primes = pool
        .imap(is_prime, 0..5_000_000u64, 10_000)?
        .filter(|r| matches!(r, Ok(true)))
        .count();
    println!("imap: {primes} primes below 5 million");

    let order: Vec<bool> = pool
        .imap_unordered(is_prime, (0..200u64).rev(), 1)?
        .map(|r| r.unwrap_or(false))
        .collect();
    println!(
        "imap_unordered: {} results, {} primes, in completion order ({} inputs done in all)",
        order.len(),
        order.iter().filter(|p| **p).count(),
        seen.load(Ordering::Relaxed)
    );
    Ok(())
}
