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
    /// The measurement did not run (or failed), and why.
    Skipped(String),
}

impl Outcome {
    /// The figure ratios are taken of: p50 for a latency, the value for a
    /// throughput; `None` when skipped.
    pub fn headline(&self) -> Option<f64> {
        match self {
            Outcome::Latency(l) => Some(l.quantile_ns(0.5)),
            Outcome::Throughput { value, .. } => Some(*value),
            Outcome::Skipped(_) => None,
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug)]
pub struct Record {
    /// The measurement id (the JSON `id`).
    pub id: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// What it produced.
    pub outcome: Outcome,
    /// The id it is compared with, if any.
    pub baseline: Option<&'static str>,
    /// This headline divided by the baseline's, when both ran.
    pub ratio: Option<f64>,
    /// Further comparisons worth reading beside the main one: (id, ratio).
    pub also: Vec<(&'static str, f64)>,
    /// Wall time the measurement took, in seconds (set-up included).
    pub seconds: f64,
}

/// Ratio of two headlines, when both exist and the denominator is positive.
pub fn ratio(this: &Outcome, base: &Outcome) -> Option<f64> {
    let (a, b) = (this.headline()?, base.headline()?);
    (b > 0.0 && a.is_finite()).then(|| a / b)
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
    fn ratios_need_both_sides() {
        let a = Outcome::Throughput {
            value: 10.0,
            samples: 1,
        };
        let b = Outcome::Throughput {
            value: 5.0,
            samples: 1,
        };
        assert_eq!(ratio(&a, &b), Some(2.0));
        assert_eq!(ratio(&a, &Outcome::Skipped("x".into())), None);
    }
}
