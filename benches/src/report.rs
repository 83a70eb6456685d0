//! The tables printed at the end of a run and the JSON document.

use crate::machine::Machine;
use crate::outcome::{percentile_holds, Comparison, Outcome, Record, Unit};
use crate::side::{Paired, MAX_SPREAD};
use crate::suite::{Goal, GoalStatus, Results, GOALS};
use crate::sweep::Sweep;
use serde_json::{json, Map, Value};

/// The JSON schema version written in every report.
pub const SCHEMA: u64 = 2;

/// Formats a number for the table: three significant digits for small
/// values, whole numbers with `_` groups for large ones, SI prefixes for
/// rates.
pub fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ns => {
            if v < 10.0 {
                format!("{v:.2}")
            } else if v < 100.0 {
                format!("{v:.1}")
            } else {
                group(v.round() as u64)
            }
        }
        Unit::MsgPerSec => {
            let (d, p) = if v >= 1e9 {
                (1e9, "G")
            } else if v >= 1e6 {
                (1e6, "M")
            } else if v >= 1e3 {
                (1e3, "k")
            } else {
                (1.0, "")
            };
            format!("{:.3}{p}", v / d)
        }
        Unit::GbPerSec | Unit::Speedup => format!("{v:.2}"),
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// The table of all rows, one line each: p50 (or the rate), p99 and p99.9
/// where there are enough samples for them, max, unit, how it waits, the
/// samples, and the pairing its figures come from.
pub fn table(records: &[Record]) -> String {
    let idw = records.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let mut out = format!(
        "{:<idw$}  {:>10} {:>10} {:>10} {:>11}  {:<5}  {:<8} {:>6}  {}\n",
        "id", "p50|value", "p99", "p99.9", "max", "unit", "waits", "n", "measured in"
    );
    out.push_str(&"-".repeat(idw + 96));
    out.push('\n');
    for r in records {
        let u = r.unit;
        let within = r.measured_in.as_deref().unwrap_or("alone");
        let line = match &r.outcome {
            Outcome::Latency(l) => {
                let s = l.summary();
                let n = l.samples();
                let q = |q: f64, v: f64| {
                    if percentile_holds(q, n) {
                        fmt_value(v, u)
                    } else {
                        "-".into()
                    }
                };
                format!(
                    "{:<idw$}  {:>10} {:>10} {:>10} {:>11}  {:<5}  {:<8} {:>6}  {within}",
                    r.id,
                    fmt_value(s.p50, u),
                    q(0.99, s.p99),
                    q(0.999, s.p999),
                    fmt_value(s.max, u),
                    u.as_str(),
                    r.wait.as_str(),
                    fmt_count(n),
                )
            }
            Outcome::Throughput { value, samples } => format!(
                "{:<idw$}  {:>10} {:>10} {:>10} {:>11}  {:<5}  {:<8} {:>6}  {within}",
                r.id,
                fmt_value(*value, u),
                "",
                "",
                "",
                u.as_str(),
                r.wait.as_str(),
                fmt_count(*samples),
            ),
            Outcome::Skipped(why) => format!("{:<idw$}  skipped: {why}", r.id),
            Outcome::Failed(why) => format!("{:<idw$}  failed: {why}", r.id),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A sample count as the table shows it: 950, 20k, 1.5M.
pub fn fmt_count(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 10_000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// A ratio as the table shows it.
pub fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{r:.4}x")
    }
}

/// A ratio with its interquartile range, or why it is not a result.
pub fn fmt_paired(p: &Paired) -> String {
    if p.flagged() {
        format!(
            "noisy: IQR {}-{} over {} pairs",
            fmt_ratio(p.q25),
            fmt_ratio(p.q75),
            p.pairs
        )
    } else {
        format!(
            "{}  IQR {}-{}  {} pairs",
            fmt_ratio(p.median),
            fmt_ratio(p.q25),
            fmt_ratio(p.q75),
            p.pairs
        )
    }
}

/// The unit of a row, from the records.
fn unit_of(records: &[Record], id: &str) -> Unit {
    records
        .iter()
        .find(|r| r.id == id)
        .map_or(Unit::Ns, |r| r.unit)
}

/// The paired comparisons: A, B, both headlines within the pairing, and
/// the median per-pair ratio with its interquartile range (or "noisy").
pub fn comparisons_table(results: &Results) -> String {
    let aw = results
        .comparisons
        .iter()
        .map(|c| c.a.len())
        .max()
        .unwrap_or(1);
    let bw = results
        .comparisons
        .iter()
        .map(|c| c.b.len())
        .max()
        .unwrap_or(1);
    let mut out = format!(
        "{:<aw$}  {:<bw$}  {:>10} {:>10}  ratio A/B (median of per-pair ratios)\n",
        "A", "B", "A", "B"
    );
    out.push_str(&"-".repeat(aw + bw + 70));
    out.push('\n');
    for c in &results.comparisons {
        let unit = unit_of(&results.records, c.a);
        let (ha, hb) = c.heads.map_or(("-".into(), "-".into()), |(a, b)| {
            (
                fmt_value(a, unit),
                fmt_value(b, unit_of(&results.records, c.b)),
            )
        });
        let ratio = match (&c.paired, &c.error) {
            (Some(p), _) => fmt_paired(p),
            (None, Some(e)) => format!("not measured: {e}"),
            (None, None) => "not measured".into(),
        };
        let line = format!("{:<aw$}  {:<bw$}  {ha:>10} {hb:>10}  {ratio}", c.a, c.b);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Each goal whose rows ran, with its status.
pub fn goal_statuses(results: &Results) -> Vec<(Goal, GoalStatus, Option<&Comparison>)> {
    GOALS
        .iter()
        .filter_map(|g| {
            let c = results.comparison(g.a, g.b)?;
            Some((*g, g.status(c.paired.as_ref()), Some(c)))
        })
        .collect()
}

/// The goal lines: each goal, its bound, the paired ratio, met or missed.
pub fn goals_text(results: &Results) -> String {
    let mut out = String::new();
    for (g, status, c) in goal_statuses(results) {
        let ratio = c.and_then(|c| c.paired.as_ref()).map_or_else(
            || "-".to_owned(),
            |p| {
                format!(
                    "{} (IQR {}-{})",
                    fmt_ratio(p.median),
                    fmt_ratio(p.q25),
                    fmt_ratio(p.q75)
                )
            },
        );
        out.push_str(&format!(
            "  {:<7} {} / {}: {} (goal {})\n",
            status.as_str(),
            g.a,
            g.b,
            ratio,
            g.bound_text()
        ));
    }
    out
}

/// Whether any row or comparison failed (skipped ones, for a missing
/// program, do not count).
pub fn any_failed(results: &Results) -> bool {
    results
        .records
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Failed(_)))
        || results.comparisons.iter().any(|c| {
            c.error
                .as_deref()
                .is_some_and(|e| !e.starts_with("skipped"))
        })
}

/// The sweep as two small tables: round-trip p50 and bandwidth, one line
/// per size, one column per method.
pub fn sweep_text(sweep: &Sweep) -> String {
    let mut out = String::new();
    for (title, points, methods, unit) in [
        (
            "round trip p50 (ns)",
            &sweep.rtt,
            &crate::sweep::RTT_METHODS,
            Unit::Ns,
        ),
        (
            "bandwidth (GB/s)",
            &sweep.bandwidth,
            &crate::sweep::BW_METHODS,
            Unit::GbPerSec,
        ),
    ] {
        if points.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}\n{:>9}", "bytes"));
        for m in methods.iter() {
            out.push_str(&format!(" {m:>14}"));
        }
        out.push('\n');
        let mut sizes: Vec<usize> = points.iter().map(|p| p.size).collect();
        sizes.dedup();
        for s in sizes {
            out.push_str(&format!("{s:>9}"));
            for m in methods.iter() {
                let cell = points
                    .iter()
                    .find(|p| p.size == s && p.method == *m)
                    .map_or_else(
                        || "-".to_owned(),
                        |p| match &p.outcome {
                            o @ (Outcome::Latency(_) | Outcome::Throughput { .. }) => {
                                o.headline().map_or("-".into(), |v| fmt_value(v, unit))
                            }
                            Outcome::Skipped(_) => "skipped".into(),
                            Outcome::Failed(_) => "failed".into(),
                        },
                    );
                out.push_str(&format!(" {cell:>14}"));
            }
            out.push('\n');
        }
        for p in points {
            if let Outcome::Failed(e) = &p.outcome {
                out.push_str(&format!("  {} at {} B failed: {e}\n", p.method, p.size));
                break;
            }
        }
    }
    out
}

/// Where and how the run was made, for the JSON.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The suite's mode name.
    pub mode: &'static str,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// The whole run's wall time, seconds.
    pub seconds: f64,
    /// The floor measured again at the end (p50, ns).
    pub floor_at_end: Option<f64>,
}

/// The JSON report: schema, tool, time, machine, pairing, results,
/// comparisons, goals and sweep.
pub fn json(machine: &Machine, info: &RunInfo, results: &Results, sweep: &Sweep) -> Value {
    let mut m = machine.to_json();
    if let Some(obj) = m.as_object_mut() {
        obj.insert("suite".into(), Value::from(info.mode));
        if let Some(f) = info.floor_at_end {
            obj.insert("c2c_rtt_p50_at_end".into(), num(f));
        }
    }
    let goals: Vec<Value> = goal_statuses(results)
        .iter()
        .map(|(g, s, c)| {
            json!({
                "a": g.a, "b": g.b,
                "bound": if g.at_most { "at_most" } else { "at_least" },
                "target": g.target,
                "ratio": c.and_then(|c| c.paired.as_ref()).map(|p| num(p.median)),
                "status": s.as_str(),
            })
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "tool": tool_json(),
        "time": {
            "started_unix": info.started_unix,
            "started_utc": utc_string(info.started_unix),
            "seconds": num(info.seconds),
        },
        "machine": m,
        "pairing": {
            "order": "blocks of each side in turns, the order flipped every round (A B, B A, ...)",
            "ratio": "median of the per-pair ratios of block headlines (p50 or rate)",
            "spread": "interquartile range of the per-pair ratios",
            "max_spread": MAX_SPREAD,
            "min_pairs": 5,
        },
        "results": results.records.iter().map(record_json).collect::<Vec<_>>(),
        "comparisons": results.comparisons.iter().map(comparison_json).collect::<Vec<_>>(),
        "goals": goals,
        "sweep": sweep_json(sweep),
    })
}

/// The tool's name, version, git commit and rustc version (the last two
/// captured when it was built).
pub fn tool_json() -> Value {
    json!({
        "name": "ipc-bench",
        "version": env!("CARGO_PKG_VERSION"),
        "git_commit": option_env!("IPC_BENCH_GIT_COMMIT").filter(|s| !s.is_empty()),
        "rustc": option_env!("IPC_BENCH_RUSTC").filter(|s| !s.is_empty()),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch.
pub fn utc_string(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One row as JSON; percentiles only where there are enough samples.
pub fn record_json(r: &Record) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), Value::from(r.id));
    o.insert("unit".into(), Value::from(r.unit.as_str()));
    o.insert("waits".into(), Value::from(r.wait.as_str()));
    match &r.outcome {
        Outcome::Latency(l) => {
            let s = l.summary();
            let n = l.samples();
            o.insert("samples".into(), Value::from(n));
            o.insert("p50".into(), num(s.p50));
            if percentile_holds(0.99, n) {
                o.insert("p99".into(), num(s.p99));
            }
            if percentile_holds(0.999, n) {
                o.insert("p999".into(), num(s.p999));
            }
            o.insert("max".into(), num(s.max));
        }
        Outcome::Throughput { value, samples } => {
            o.insert("samples".into(), Value::from(*samples));
            o.insert("value".into(), num(*value));
        }
        Outcome::Skipped(why) => {
            o.insert("skipped".into(), Value::from(why.as_str()));
        }
        Outcome::Failed(why) => {
            o.insert("failed".into(), Value::from(why.as_str()));
        }
    }
    if let Some(m) = &r.measured_in {
        o.insert("measured_in".into(), Value::from(m.as_str()));
    }
    o.insert("seconds".into(), num(r.seconds));
    Value::Object(o)
}

fn comparison_json(c: &Comparison) -> Value {
    let mut o = Map::new();
    o.insert("a".into(), Value::from(c.a));
    o.insert("b".into(), Value::from(c.b));
    o.insert("main".into(), Value::from(c.main));
    if let Some((a, b)) = c.heads {
        o.insert("a_headline".into(), num(a));
        o.insert("b_headline".into(), num(b));
    }
    if let Some(p) = &c.paired {
        if !p.flagged() {
            o.insert("ratio".into(), num(p.median));
        }
        o.insert("ratio_median".into(), num(p.median));
        o.insert("ratio_q25".into(), num(p.q25));
        o.insert("ratio_q75".into(), num(p.q75));
        o.insert("pairs".into(), Value::from(p.pairs));
        o.insert("flagged".into(), Value::from(p.flagged()));
    }
    if let Some(e) = &c.error {
        o.insert("error".into(), Value::from(e.as_str()));
    }
    o.insert("seconds".into(), num(c.seconds));
    Value::Object(o)
}

fn sweep_json(s: &Sweep) -> Value {
    let pts = |v: &Vec<crate::sweep::Point>| -> Vec<Value> {
        v.iter()
            .map(|p| {
                let mut o = Map::new();
                o.insert("size".into(), Value::from(p.size));
                o.insert("method".into(), Value::from(p.method));
                match &p.outcome {
                    Outcome::Latency(l) => {
                        o.insert("p50".into(), num(l.quantile_ns(0.5)));
                        if percentile_holds(0.99, l.samples()) {
                            o.insert("p99".into(), num(l.quantile_ns(0.99)));
                        }
                        o.insert("samples".into(), Value::from(l.samples()));
                    }
                    Outcome::Throughput { value, samples } => {
                        o.insert("value".into(), num(*value));
                        o.insert("samples".into(), Value::from(*samples));
                    }
                    Outcome::Skipped(e) => {
                        o.insert("skipped".into(), Value::from(e.as_str()));
                    }
                    Outcome::Failed(e) => {
                        o.insert("failed".into(), Value::from(e.as_str()));
                    }
                }
                if let Some(r) = &p.vs_in_place {
                    o.insert("vs_spsc_in_place".into(), num(r.median));
                }
                Value::Object(o)
            })
            .collect()
    };
    json!({ "rtt_unit": "ns", "bandwidth_unit": "GB/s", "rtt": pts(&s.rtt), "bandwidth": pts(&s.bandwidth) })
}

/// A finite number rounded to 4 decimals (nanoseconds have no more).
fn num(v: f64) -> Value {
    let r = (v * 1e4).round() / 1e4;
    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Latency, Wait};

    #[test]
    fn values_format_for_reading() {
        assert_eq!(fmt_value(3.456, Unit::Ns), "3.46");
        assert_eq!(fmt_value(67_412.0, Unit::Ns), "67_412");
        assert_eq!(fmt_value(12_345_678.0, Unit::MsgPerSec), "12.346M");
        assert_eq!(fmt_ratio(1.234), "1.23x");
        assert_eq!(fmt_ratio(0.0123), "0.0123x");
        assert_eq!(fmt_count(200_000), "200k");
        assert_eq!(fmt_count(1_500_000), "1.5M");
        assert_eq!(fmt_count(950), "950");
    }

    fn rec(outcome: Outcome) -> Record {
        Record {
            id: "x.y",
            unit: Unit::Ns,
            wait: Wait::Spin,
            outcome,
            measured_in: None,
            seconds: 0.0,
        }
    }

    #[test]
    fn skipped_and_failed_rows_carry_their_reason() {
        let r = rec(Outcome::Skipped("not built".into()));
        let v = record_json(&r);
        assert_eq!(v["skipped"], "not built");
        assert!(v.get("p50").is_none());
        assert!(table(&[r]).contains("skipped: not built"));
        let f = rec(Outcome::Failed("boom".into()));
        assert_eq!(record_json(&f)["failed"], "boom");
        assert!(table(&[f]).contains("failed: boom"));
    }

    #[test]
    fn few_samples_print_no_high_percentiles() {
        let mut l = Latency::new(1.0);
        for i in 0..5 {
            l.record_ns(100.0 + f64::from(i));
        }
        let r = rec(Outcome::Latency(l));
        let v = record_json(&r);
        assert!(v.get("p50").is_some() && v.get("max").is_some());
        assert!(v.get("p99").is_none() && v.get("p999").is_none());
        let t = table(&[r]);
        let row = t.lines().nth(2).expect("a row");
        assert_eq!(row.matches(" - ").count(), 2, "{row}");
    }

    #[test]
    fn utc_strings_are_civil_dates() {
        assert_eq!(utc_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_string(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_string(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
