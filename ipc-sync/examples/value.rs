//! Python's `Value` and `Array`: a spawned child opens them by name and
//! updates them; the parent reads the result.
//!
//! Run: `cargo run --release -p multiproc-sync --example value`

use multiproc_core::process::{self, Process};
use multiproc_sync::{Array, Value};

fn child(args: &[u8]) -> i32 {
    let base = std::str::from_utf8(args).expect("name");
    let v = Value::<f64>::open(&format!("{base}.v")).expect("open value");
    let a = Array::<i32, 5>::open(&format!("{base}.a")).expect("open array");
    v.update(|x| *x *= 2.0).expect("update");
    let mut g = a.get_lock().lock().expect("lock");
    for x in g.iter_mut() {
        *x = -*x;
    }
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let base = multiproc_core::name::unique_name("example-value");
    let v = Value::create(&format!("{base}.v"), 3.25f64)?;
    let a = Array::create(&format!("{base}.a"), [1, 2, 3, 4, 5])?;
    let c = Process::builder()
        .name("doubler")
        .spawn(child, base.as_bytes())?;
    if !c.join()?.success() {
        return Err("the child failed".into());
    }
    let value = v.get().expect("read");
    let array = a.to_array().expect("read");
    println!("value {value}, array {array:?}");
    if value != 6.5 || array != [-1, -2, -3, -4, -5] {
        return Err("unexpected contents".into());
    }
    Ok(())
}
