//! `ipc watch`: counters as rates, refreshed like `top` until Ctrl-C.

use crate::objects;
use crate::segments::{check_prefix, human, Failure, MAX_PAYLOAD};
use serde_json::{Map, Value};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by the SIGINT handler; the loop ends at its next check.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // An atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes Ctrl-C (and SIGTERM) end the loop cleanly instead of killing the
/// process in the middle of a frame.
fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero `sigaction` is a valid value to fill in; the
        // handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// One sample of every watched segment: its counters, or why there are
/// none.
fn sample(names: &[String]) -> Vec<Result<Map<String, Value>, String>> {
    names
        .iter()
        .map(|name| {
            let mut snap =
                multiproc_core::inspect::snapshot(name, MAX_PAYLOAD).map_err(|e| e.to_string())?;
            objects::describe(&mut snap)
                .map(|d| d.counters)
                .ok_or_else(|| "no counters for this kind".to_owned())
        })
        .collect()
}

/// Sleeps `d` in short steps; false if interrupted meanwhile.
fn pause(d: Duration) -> bool {
    let until = Instant::now() + d;
    while !INTERRUPTED.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    false
}

/// `ipc watch NAME...`: `frames` frames (`None`: until interrupted), each
/// `interval` seconds after the previous sample.
pub(crate) fn watch(
    prefix: &str,
    names: &[String],
    interval: f64,
    frames: Option<u64>,
) -> Result<(), Failure> {
    for n in names {
        check_prefix(prefix, n)?;
        // Fail at once (exit status 1) for a segment that cannot be read.
        multiproc_core::inspect::snapshot(n, 0)?;
    }
    if !(interval.is_finite() && interval > 0.0) {
        return Err("--interval must be a positive number of seconds".into());
    }
    let interval = Duration::from_secs_f64(interval);
    catch_interrupts();
    let tty = std::io::stdout().is_terminal();
    let mut prev = sample(names);
    let mut prev_at = Instant::now();
    let mut shown = 0u64;
    while frames.is_none_or(|f| shown < f) {
        if !pause(interval) {
            break;
        }
        let now = sample(names);
        let at = Instant::now();
        let dt = at.duration_since(prev_at).as_secs_f64();
        let mut out = String::new();
        if tty {
            // Home and clear, as `top` redraws.
            out.push_str("\x1b[H\x1b[2J");
        }
        out.push_str(&format!(
            "ipc watch: every {:.1}s, Ctrl-C to quit\n",
            interval.as_secs_f64()
        ));
        for ((name, cur), old) in names.iter().zip(&now).zip(&prev) {
            out.push_str(&format!("\n{name}\n"));
            match (cur, old) {
                (Ok(cur), Ok(old)) => {
                    out.push_str(&format!(
                        "  {:<28} {:>14} {:>12}\n",
                        "COUNTER", "TOTAL", "PER SEC"
                    ));
                    for (k, v) in cur {
                        let v = v.as_u64().unwrap_or(0);
                        let o = old.get(k).and_then(Value::as_u64).unwrap_or(v);
                        let rate = v.wrapping_sub(o) as f64 / dt;
                        let rate = if k.ends_with("bytes") {
                            format!("{}/s", human(rate as u64))
                        } else {
                            format!("{rate:.1}")
                        };
                        out.push_str(&format!("  {k:<28} {v:>14} {rate:>12}\n"));
                    }
                    if cur.is_empty() {
                        out.push_str("  (this kind keeps no counters)\n");
                    }
                }
                (Err(e), _) | (_, Err(e)) => out.push_str(&format!("  {e}\n")),
            }
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        prev = now;
        prev_at = at;
        shown += 1;
    }
    Ok(())
}
