//! A reentrant lock taken twice by its owner, while a forked child waits
//! for it and then takes it in turn.
//!
//! Run: `cargo run --release -p multiproc-sync --example reentrant`

use multiproc_core::Process;
use multiproc_sync::ReentrantMutex;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m = ReentrantMutex::anonymous(0u32)?;
    let outer = m.lock().expect("lock");
    let inner = m.lock().expect("lock again");
    inner.set(1);
    println!("the owner holds {} levels", m.depth());
    let child = Process::builder().name("waiter").fork(|| {
        let g = m
            .lock_timeout(Duration::from_secs(30))
            .expect("lock in the child");
        g.set(g.get() + 10);
    })?;
    std::thread::sleep(Duration::from_millis(10));
    drop(inner);
    outer.set(outer.get() + 1);
    drop(outer);
    if !child.join()?.success() {
        return Err("the child failed".into());
    }
    let v = m.lock().expect("lock").get();
    println!("value after both: {v}");
    if v != 12 {
        return Err("unexpected value".into());
    }
    Ok(())
}
