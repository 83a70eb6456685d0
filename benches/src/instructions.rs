//! `--instructions`: instruction counts of the fast paths, which hold still
//! where times on a shared virtual machine do not.
//!
//! The harness re-runs itself under `valgrind --tool=callgrind`, once per
//! operation, with collection off at the start and toggled on only inside
//! [`ipc_bench_counted`] (`--toggle-collect`), which runs N iterations of
//! the operation after an untimed warm-up outside it; the count of that
//! function and everything it calls, divided by N, is the instructions per
//! operation (the loop's own few instructions included). Only the process
//! under test is counted: `--trace-children=no`, and each process writes its
//! own output file.

use std::hint::black_box;
use std::process::Command;

/// The operations counted, with what one iteration does.
pub const OPS: &[(&str, &str)] = &[
    (
        "sync.mutex",
        "multiproc_sync::Mutex<u64> lock + guard drop, uncontended",
    ),
    (
        "pthread.mutex",
        "process-shared pthread_mutex_t lock + unlock",
    ),
    (
        "spsc.send_recv.8",
        "SPSC ring: reserve(8) + fill + commit, recv guard + read",
    ),
    (
        "spsc.send_recv_into.8",
        "SPSC ring: send(&[u8; 8]), recv_into",
    ),
    ("rtrb.push_pop", "rtrb: push(u64) + pop"),
    (
        "mpmc.send_recv.8",
        "MPMC ring: send(&[u8; 8]) + recv guard + read",
    ),
    (
        "crossbeam.array_queue.push_pop",
        "crossbeam ArrayQueue<u64>: push + pop",
    ),
    (
        "crossbeam.channel.send_recv",
        "crossbeam bounded channel<u64>: send + recv",
    ),
    (
        "pool.apply_async",
        "multiproc-pool (2 forked workers): apply_async of x + 1, the submitting side",
    ),
];

/// Runs `f(n)` with callgrind's collection on (the function callgrind's
/// `--toggle-collect` names).
#[no_mangle]
#[inline(never)]
pub fn ipc_bench_counted(f: &mut dyn FnMut(u64), n: u64) {
    f(n);
}

fn add_one(x: u64) -> u64 {
    x + 1
}

/// In the child under valgrind: runs operation `name` `n` times inside
/// [`ipc_bench_counted`] (after a warm-up outside it).
///
/// # Errors
/// An unknown name, or the operation failed.
pub fn child(name: &str, n: u64) -> Result<(), String> {
    let counted = |f: &mut dyn FnMut(u64)| {
        f(64);
        ipc_bench_counted(f, n);
    };
    match name {
        "sync.mutex" => {
            let m = multiproc_sync::Mutex::anonymous(0u64).map_err(|e| e.to_string())?;
            counted(&mut |k| {
                for _ in 0..k {
                    if let Ok(g) = m.lock() {
                        black_box(&*g);
                    }
                }
            });
        }
        "pthread.mutex" => {
            let shm = crate::shm::Shm::new(crate::shm::LINE)?;
            let raw = shm.raw(0, std::mem::size_of::<libc::pthread_mutex_t>(), 8);
            crate::baselines::rtt::init_pthread_mutex(raw)?;
            let m = raw.cast::<libc::pthread_mutex_t>();
            counted(&mut |k| {
                for _ in 0..k {
                    // SAFETY: initialized above, alive as long as `shm`;
                    // lock and unlock pair up on this thread.
                    unsafe {
                        libc::pthread_mutex_lock(m);
                        libc::pthread_mutex_unlock(m);
                    }
                }
            });
        }
        "spsc.send_recv.8" | "spsc.send_recv_into.8" => {
            let copied = name == "spsc.send_recv_into.8";
            let (mut p, mut c) = multiproc_queue::spsc::channel(4096).map_err(|e| e.to_string())?;
            let mut buf = [0u8; 8];
            let mut bad = 0u64;
            counted(&mut |k| {
                for i in 0..k {
                    if copied {
                        let _ = p.send(&i.to_le_bytes());
                        let _ = c.recv_into(&mut buf);
                        bad |= u64::from_le_bytes(buf) ^ i;
                    } else {
                        if let Ok(mut g) = p.reserve(8) {
                            g.copy_from_slice(&i.to_le_bytes());
                            g.commit();
                        }
                        if let Ok(g) = c.recv() {
                            bad |= u64::from_le_bytes(g[..8].try_into().unwrap_or([0; 8])) ^ i;
                        }
                    }
                }
            });
            if bad != 0 {
                return Err("the SPSC ring returned a wrong message".into());
            }
        }
        "rtrb.push_pop" => {
            let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(4096);
            let mut bad = 0u64;
            counted(&mut |k| {
                for i in 0..k {
                    let _ = p.push(i);
                    bad |= c.pop().unwrap_or(!i) ^ i;
                }
            });
            if bad != 0 {
                return Err("rtrb returned a wrong value".into());
            }
        }
        "mpmc.send_recv.8" => {
            let (s, r) = multiproc_queue::mpmc::channel(64, 8).map_err(|e| e.to_string())?;
            let mut bad = 0u64;
            counted(&mut |k| {
                for i in 0..k {
                    let _ = s.send(&i.to_le_bytes());
                    if let Ok(m) = r.recv() {
                        bad |= u64::from_le_bytes(m.bytes()[..8].try_into().unwrap_or([0; 8])) ^ i;
                    }
                }
            });
            if bad != 0 {
                return Err("the MPMC ring returned a wrong message".into());
            }
        }
        "crossbeam.array_queue.push_pop" => {
            let q = crossbeam_queue::ArrayQueue::<u64>::new(64);
            let mut bad = 0u64;
            counted(&mut |k| {
                for i in 0..k {
                    let _ = q.push(i);
                    bad |= q.pop().unwrap_or(!i) ^ i;
                }
            });
            if bad != 0 {
                return Err("ArrayQueue returned a wrong value".into());
            }
        }
        "crossbeam.channel.send_recv" => {
            let (s, r) = crossbeam_channel::bounded::<u64>(64);
            let mut bad = 0u64;
            counted(&mut |k| {
                for i in 0..k {
                    let _ = s.send(i);
                    bad |= r.recv().unwrap_or(!i) ^ i;
                }
            });
            if bad != 0 {
                return Err("the channel returned a wrong value".into());
            }
        }
        "pool.apply_async" => {
            // SAFETY: the workers run `add_one`, pure computation.
            let mut pool = unsafe { multiproc_pool::Pool::builder().workers(2).fork_workers() }
                .build()
                .map_err(|e| format!("pool: {e}"))?;
            let mut pending = Vec::new();
            let mut bad = 0u64;
            // Batches of 16 submissions counted, their results collected
            // outside the count, so no wait is counted.
            for batch in 0..(n / 16).max(1) {
                ipc_bench_counted(
                    &mut |k| {
                        for i in 0..k {
                            if let Ok(r) = pool.apply_async(add_one, batch * 16 + i) {
                                pending.push((batch * 16 + i, r));
                            }
                        }
                    },
                    16,
                );
                for (x, r) in pending.drain(..) {
                    bad |= r.get().map_or(1, |v| u64::from(v != x + 1));
                }
            }
            pool.join();
            if bad != 0 {
                return Err("the pool returned a wrong result".into());
            }
        }
        other => return Err(format!("no operation {other:?} to count")),
    }
    Ok(())
}

/// Whether `valgrind` can run here.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Instructions per operation of `name`, counted under callgrind over `n`
/// iterations.
///
/// # Errors
/// valgrind missing or failing, or an output without totals.
pub fn count(name: &str, n: u64) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = std::env::temp_dir().join(format!(
        "ipc-bench-callgrind-{}-{}",
        std::process::id(),
        name.replace('.', "_")
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let out = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--collect-atstart=no")
            .arg("--toggle-collect=ipc_bench_counted")
            .arg(format!("--callgrind-out-file={}/out.%p", dir.display()))
            .arg("--trace-children=no")
            .arg(&exe)
            .args(["--instructions-child", name, "--iterations", &n.to_string()])
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        if !out.status.success() {
            // The harness's own error, not valgrind's summary lines.
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("==") && !l.starts_with("--"))
                .unwrap_or("");
            return Err(format!("under valgrind ({}): {last}", out.status));
        }
        // The harness's file is the one with the most collected instructions
        // (forked pool workers write their own, with none collected).
        let mut best: Option<u64> = None;
        for e in std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(t) = totals(&text) {
                best = Some(best.map_or(t, |b| b.max(t)));
            }
        }
        let total = best.ok_or("callgrind wrote no totals")?;
        let iters = if name == "pool.apply_async" {
            (n / 16).max(1) * 16
        } else {
            n
        };
        Ok(total as f64 / iters as f64)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The `totals:` (or `summary:`) figure of a callgrind output file.
pub fn totals(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read() {
        assert_eq!(totals("events: Ir\nsummary: 1234\n"), Some(1234));
        assert_eq!(totals("totals: 99 1\n"), Some(99));
        assert_eq!(totals("nothing"), None);
    }

    #[test]
    fn every_operation_runs_outside_valgrind() {
        for (name, _) in OPS {
            if *name == "pool.apply_async" {
                continue; // starts worker processes; the harness test covers it
            }
            child(name, 100).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
