//! What one measurement produced: a latency histogram, a throughput, or the
//! reason it did not run.

use hdrhistogram::Histogram;

/// The unit of a measurement, as the JSON spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds (latencies and per-operation costs); lower is better.
    Ns,
    /// Messages per second; higher is better.
    MsgPerSec,
    /// Gigabytes (10^9 bytes) per second; higher is better.
    GbPerSec,
    /// A speed-up factor (`pool.cpu_bound.speedup`: sequential time over
    /// parallel time); higher is better.
    Speedup,
}

impl Unit {
    /// The JSON spelling: `"ns"`, `"msg/s"`, `"GB/s"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::MsgPerSec => "msg/s",
            Unit::GbPerSec => "GB/s",
            Unit::Speedup => "x",
        }
    }
}

/// How a measured primitive waits for the other side, which the table
/// marks: spinning ones burn a core and answer in nanoseconds, kernel ones
/// sleep and pay a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Busy-polls shared memory.
    Spin,
    /// Sleeps in the kernel (futex, a blocking system call).
    Kernel,
    /// Spins a while, then sleeps (the workspace's default strategy).
    Adaptive,
    /// Nothing to wait for (uncontended operations, one-sided work).
    None,
}

impl Wait {
    /// The table's and the JSON's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Kernel => "kernel",
            Wait::Adaptive => "adaptive",
            Wait::None => "-",
        }
    }
}

/// A latency histogram and the number of histogram units per nanosecond
/// (1 for per-operation timings, 1000 when batches are timed and the
/// per-operation cost is recorded in picoseconds).
#[derive(Clone, Debug)]
pub struct Latency {
    /// The recorded values.
    pub hist: Histogram<u64>,
    /// Histogram units per nanosecond.
    pub per_ns: f64,
}

/// The four figures a latency row shows, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value recorded.
    pub max: f64,
}

impl Latency {
    /// An empty histogram for values from 1 ns to one minute (times
    /// `per_ns`), three significant digits.
    pub fn new(per_ns: f64) -> Latency {
        let high = (60e9 * per_ns).max(2.0) as u64;
        Latency {
            hist: Histogram::new_with_bounds(1, high, 3).expect("valid histogram bounds"),
            per_ns,
        }
    }

    /// Records one value given in nanoseconds (clamped to the bounds).
    #[inline]
    pub fn record_ns(&mut self, ns: f64) {
        let v = (ns * self.per_ns).round().max(1.0) as u64;
        self.hist.saturating_record(v);
    }

    /// How many values were recorded.
    pub fn samples(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0..=1), in nanoseconds.
    pub fn quantile_ns(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / self.per_ns
    }

    /// p50, p99, p99.9 and max, in nanoseconds.
    pub fn summary(&self) -> Summary {
        Summary {
            p50: self.quantile_ns(0.5),
            p99: self.quantile_ns(0.99),
            p999: self.quantile_ns(0.999),
            max: self.hist.max() as f64 / self.per_ns,
        }
    }
}

/// What one measurement produced.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A distribution of latencies.
    Latency(Latency),
    /// A rate: `value` in the measurement's unit over `samples` messages
    /// (or operations, or bytes moved in 4 KiB copies).
    Throughput {
        /// The rate (median over the repetitions).
        value: f64,
        /// How many messages or operations were timed in all.
        samples: u64,
    },
    /// The measurement cannot run on this machine, and why.
    Skipped(String),
    /// The measurement failed, and how.
    Failed(String),
}

impl Outcome {
    /// The figure ratios are taken of: p50 for a latency, the value for a
    /// throughput; `None` when skipped.
    pub fn headline(&self) -> Option<f64> {
        match self {
            Outcome::Latency(l) => Some(l.quantile_ns(0.5)),
            Outcome::Throughput { value, .. } => Some(*value),
            Outcome::Skipped(_) | Outcome::Failed(_) => None,
        }
    }

    /// How many samples (latencies) or messages (rates) it holds.
    pub fn samples(&self) -> u64 {
        match self {
            Outcome::Latency(l) => l.samples(),
            Outcome::Throughput { samples, .. } => *samples,
            Outcome::Skipped(_) | Outcome::Failed(_) => 0,
        }
    }
}

/// Whether a percentile `q` of `n` samples means something: at least ten
/// samples must lie above it (p99 needs 1 000 samples, p99.9 10 000).
pub fn percentile_holds(q: f64, n: u64) -> bool {
    n as f64 * (1.0 - q) >= 10.0 - 1e-9
}

/// One row of the report: what one primitive measured.
#[derive(Clone, Debug)]
pub struct Record {
    /// The measurement id (the JSON `id`).
    pub id: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// How it waits.
    pub wait: Wait,
    /// What it produced.
    pub outcome: Outcome,
    /// The paired measurement its figures come from (`"A / B"`), or `None`
    /// when it was measured on its own.
    pub measured_in: Option<String>,
    /// Wall time of the measurement its figures come from, in seconds.
    pub seconds: f64,
}

/// Two rows measured in turns, and the ratio of their blocks.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The measured row.
    pub a: &'static str,
    /// The row it is compared with.
    pub b: &'static str,
    /// Whether `b` is `a`'s main baseline (else a further comparison).
    pub main: bool,
    /// Both rows' headlines within this pairing (p50 or rate).
    pub heads: Option<(f64, f64)>,
    /// The per-pair ratios; `None` when the measurement failed.
    pub paired: Option<crate::side::Paired>,
    /// Why it failed or did not run.
    pub error: Option<String>,
    /// Wall time, seconds.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picosecond_histograms_report_nanoseconds() {
        let mut l = Latency::new(1000.0);
        for ns in [10.5, 10.5, 10.5, 20.25] {
            l.record_ns(ns);
        }
        let s = l.summary();
        assert!((s.p50 - 10.5).abs() < 0.02, "{s:?}");
        assert!((s.max - 20.25).abs() < 0.05, "{s:?}");
        assert_eq!(l.samples(), 4);
    }

    #[test]
    fn percentiles_need_enough_samples() {
        assert!(percentile_holds(0.99, 1000));
        assert!(!percentile_holds(0.99, 999));
        assert!(!percentile_holds(0.999, 5));
        assert!(percentile_holds(0.999, 10_000));
    }
}
