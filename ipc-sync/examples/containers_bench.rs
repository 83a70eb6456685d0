//! What one operation on a shared container costs, uncontended, beside a
//! `std::sync::Mutex` around a `HashMap` or `Vec` in one process, and
//! (when `python3` is on the `PATH`) beside Python's `Manager().dict()` and
//! `Manager().list()`, which send every call to a server process.
//!
//! Run: `cargo run --release -p multiproc-sync --example containers_bench`
//! (`-- --quick` for fewer operations, `-- --no-python` to leave Python
//! out). Each figure is the median of five
//! runs of the mean time per operation.

use multiproc_sync::{ContainerConfig, SharedDict, SharedList};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys cycle through this many values (the dict stays small and hot).
const KEYS: u64 = 1024;

/// The median over five runs of `f(n)`'s time divided by `n`.
fn per_op(n: u64, mut f: impl FnMut(u64)) -> Duration {
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            f(n);
            t0.elapsed() / n as u32
        })
        .collect();
    runs.sort();
    runs[2]
}

fn row(what: &str, ours: Duration, std_mutex: Duration, python: Option<Duration>) {
    let py = match python {
        Some(p) => format!(
            "{:>10.2} µs  {:>8.0}x",
            p.as_secs_f64() * 1e6,
            p.as_secs_f64() / ours.as_secs_f64()
        ),
        None => "         (no python3)".to_owned(),
    };
    println!(
        "{what:<28} {:>8} ns {:>12} ns {py}",
        ours.as_nanos(),
        std_mutex.as_nanos()
    );
}

/// Python's manager proxies: µs per `d[k] = v`, `d[k]`, `l.append(v)`,
/// `l[i]`, measured by `python3` itself.
fn python(n: u64) -> Option<[Duration; 4]> {
    let script = format!(
        r#"
import time
from multiprocessing import Manager
def per_op(f, n):
    t = time.perf_counter(); f(n); return (time.perf_counter() - t) / n
if __name__ == "__main__":
    with Manager() as m:
        d, l = m.dict(), m.list()
        def dset(n):
            for i in range(n): d[i % {KEYS}] = i
        def dget(n):
            for i in range(n): d[i % {KEYS}]
        def lpush(n):
            for i in range(n): l.append(i)
        def lget(n):
            for i in range(n): l[i % 100]
        print(*(per_op(f, {n}) for f in (dset, dget, lpush, lget)))
"#
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let v: Vec<Duration> = text
        .split_whitespace()
        .filter_map(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect();
    v.try_into().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc_core::process::init();
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 100_000 } else { 2_000_000 };

    let dict = SharedDict::<u64, u64>::anonymous(ContainerConfig::default())?;
    let std_map = Mutex::new(HashMap::<u64, u64>::new());
    for k in 0..KEYS {
        dict.insert(k, k)?;
        std_map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k, k);
    }
    let list = SharedList::<u64>::anonymous(ContainerConfig::default())?;
    let std_vec = Mutex::new(Vec::<u64>::new());
    list.extend(0..100)?;
    std_vec
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(0..100);

    // Check the containers work before timing them.
    assert_eq!(dict.get(&7)?, Some(7));
    assert_eq!(list.get(42)?, 42);

    let d_insert = per_op(n, |n| {
        for i in 0..n {
            dict.insert(i % KEYS, i).expect("insert");
        }
    });
    let d_get = per_op(n, |n| {
        for i in 0..n {
            black_box(dict.get(&(i % KEYS)).expect("get"));
        }
    });
    let m_insert = per_op(n, |n| {
        for i in 0..n {
            let mut m = std_map.lock().unwrap_or_else(|p| p.into_inner());
            black_box(m.insert(i % KEYS, i));
        }
    });
    let m_get = per_op(n, |n| {
        for i in 0..n {
            let m = std_map.lock().unwrap_or_else(|p| p.into_inner());
            black_box(m.get(&(i % KEYS)).copied());
        }
    });
    let l_push_pop = per_op(n, |n| {
        for i in 0..n / 2 {
            list.push(i).expect("push");
            black_box(list.pop().expect("pop"));
        }
    }) * 2;
    let l_get = per_op(n, |n| {
        for i in 0..n {
            black_box(list.get((i % 100) as usize).expect("get"));
        }
    });
    let v_push_pop = per_op(n, |n| {
        for i in 0..n / 2 {
            std_vec.lock().unwrap_or_else(|p| p.into_inner()).push(i);
            black_box(std_vec.lock().unwrap_or_else(|p| p.into_inner()).pop());
        }
    }) * 2;
    let v_get = per_op(n, |n| {
        for i in 0..n {
            black_box(std_vec.lock().unwrap_or_else(|p| p.into_inner())[(i % 100) as usize]);
        }
    });

    let py = if std::env::args().any(|a| a == "--no-python") {
        None
    } else {
        python(if quick { 2_000 } else { 20_000 })
    };
    println!("per operation, uncontended, u64 keys and values ({n} operations, median of 5 runs)");
    println!(
        "{:<28} {:>11} {:>15} {:>13} {:>9}",
        "operation", "shared", "std Mutex", "Python Manager", "ratio"
    );
    row(
        "dict insert (replace)",
        d_insert,
        m_insert,
        py.map(|p| p[0]),
    );
    row("dict get", d_get, m_get, py.map(|p| p[1]));
    row(
        "list push (+ pop)",
        l_push_pop,
        v_push_pop,
        py.map(|p| p[2]),
    );
    row("list get(i)", l_get, v_get, py.map(|p| p[3]));
    println!(
        "(the std Mutex column is one process only; the shared containers work across processes)"
    );
    Ok(())
}
