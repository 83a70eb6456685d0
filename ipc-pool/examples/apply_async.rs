//! `apply`, `apply_async` with a callback, and `map_async` with a timeout.
//!
//! Run: `cargo run --release -p multiproc-pool --example apply_async`

use multiproc_pool::Pool;
use std::time::Duration;

fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

fn main() -> Result<(), multiproc_pool::PoolError> {
    multiproc_core::process::init();
    let pool = Pool::new(2)?;
    println!("apply: fib(30) = {}", pool.apply(fib, 30)?);

    let (tx, rx) = std::sync::mpsc::channel();
    let handle = pool.apply_async_with(fib, 32, move |r| {
        let _ = tx.send(r);
    })?;
    println!("apply_async: submitted, ready = {}", handle.ready());
    let from_callback = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the callback runs");
    println!(
        "apply_async: callback got {from_callback:?}; get() = {}",
        handle.get()?
    );

    let batch = pool.map_async(fib, 20..30u32, None)?;
    match batch.get_timeout(Duration::from_secs(60)) {
        Ok(v) => println!("map_async: {v:?} (successful: {:?})", batch.successful()),
        Err(e) => println!("map_async: {e}"),
    }
    Ok(())
}
