//! A cheap clock for timing one round trip.
//!
//! Reading `Instant` costs about 20 ns through the vDSO, a sixth of a
//! cache-line round trip on this class of machine. On x86-64 with an
//! invariant TSC (`constant_tsc` and `nonstop_tsc` in `/proc/cpuinfo`) the
//! clock reads the time-stamp counter instead (`rdtscp`, which waits for the
//! instructions before it to finish) and converts ticks to nanoseconds with a
//! rate calibrated against `Instant` when the clock is made. Elsewhere it
//! falls back to `Instant`.

use std::time::{Duration, Instant};

/// A calibrated tick counter; [`Clock::now`] is cheap, [`Clock::ns`] converts.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    source: Source,
    ns_per_tick: f64,
    base: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Tsc,
    Instant,
}

impl Clock {
    /// Picks the time-stamp counter when it is invariant, calibrating it over
    /// about 20 ms, and `Instant` otherwise.
    pub fn calibrated() -> Clock {
        let base = Instant::now();
        if tsc_is_invariant() {
            if let Some(ns_per_tick) = calibrate_tsc(Duration::from_millis(20)) {
                return Clock {
                    source: Source::Tsc,
                    ns_per_tick,
                    base,
                };
            }
        }
        Clock::instant()
    }

    /// A clock that reads `Instant` (about 20 ns a read).
    pub fn instant() -> Clock {
        Clock {
            source: Source::Instant,
            ns_per_tick: 1.0,
            base: Instant::now(),
        }
    }

    /// What the clock reads: `"tsc"` or `"instant"`.
    pub fn source_name(&self) -> &'static str {
        match self.source {
            Source::Tsc => "tsc",
            Source::Instant => "instant",
        }
    }

    /// Nanoseconds per tick (1.0 for `Instant`).
    pub fn ns_per_tick(&self) -> f64 {
        self.ns_per_tick
    }

    /// The current tick count.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        match self.source {
            Source::Tsc => read_tsc(),
            Source::Instant => self.base.elapsed().as_nanos() as u64,
        }
    }

    /// Ticks between `start` and `end`, in nanoseconds.
    #[inline(always)]
    pub fn ns(&self, start: u64, end: u64) -> f64 {
        end.saturating_sub(start) as f64 * self.ns_per_tick
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn read_tsc() -> u64 {
    let mut aux = 0u32;
    // SAFETY: `rdtscp` is available on every x86-64 CPU this clock is used on
    // (checked through /proc/cpuinfo before the TSC source is chosen); it only
    // writes `aux`, a local.
    unsafe { core::arch::x86_64::__rdtscp(&mut aux) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn read_tsc() -> u64 {
    0
}

fn tsc_is_invariant() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return false;
    };
    let Some(flags) = info.lines().find(|l| l.starts_with("flags")) else {
        return false;
    };
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    has("constant_tsc") && has("nonstop_tsc") && has("rdtscp")
}

fn calibrate_tsc(span: Duration) -> Option<f64> {
    let t0 = Instant::now();
    let c0 = read_tsc();
    while t0.elapsed() < span {
        std::hint::spin_loop();
    }
    let c1 = read_tsc();
    let elapsed = t0.elapsed().as_nanos() as f64;
    let ticks = c1.checked_sub(c0)? as f64;
    (ticks > 0.0).then(|| elapsed / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_agrees_with_instant() {
        let c = Clock::calibrated();
        let t = Instant::now();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(30));
        let b = c.now();
        let real = t.elapsed().as_nanos() as f64;
        let measured = c.ns(a, b);
        // Loose bounds: only a wrong rate (off by a factor) fails this.
        assert!(
            measured > real * 0.5 && measured < real * 2.0,
            "{measured} vs {real}"
        );
    }
}
