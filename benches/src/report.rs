//! The table printed at the end of a run and the JSON file.

use crate::machine::Machine;
use crate::outcome::{Outcome, Record, Unit};
use serde_json::{json, Map, Value};

/// The JSON schema version written in every report.
pub const SCHEMA: u64 = 1;

/// Formats a number for the table: three significant digits for small
/// values, whole numbers with thin groups for large ones, SI prefixes for
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

/// The table of all records, one line each.
pub fn table(records: &[Record]) -> String {
    let idw = records.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let basew = records
        .iter()
        .filter_map(|r| r.baseline.map(str::len))
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!(
        "{:<idw$}  {:>10} {:>10} {:>10} {:>11}  {:<5} {:>6}  {:<basew$}  {:>8}\n",
        "id", "p50|value", "p99", "p99.9", "max", "unit", "n", "baseline", "ratio"
    );
    out.push_str(&"-".repeat(idw + basew + 73));
    out.push('\n');
    for r in records {
        let base = r.baseline.unwrap_or("-");
        let ratio = r.ratio.map_or_else(|| "-".to_owned(), fmt_ratio);
        let u = r.unit;
        let line = match &r.outcome {
            Outcome::Latency(l) => {
                let s = l.summary();
                format!(
                    "{:<idw$}  {:>10} {:>10} {:>10} {:>11}  {:<5} {:>6}  {:<basew$}  {:>8}",
                    r.id,
                    fmt_value(s.p50, u),
                    fmt_value(s.p99, u),
                    fmt_value(s.p999, u),
                    fmt_value(s.max, u),
                    u.as_str(),
                    fmt_count(l.samples()),
                    base,
                    ratio
                )
            }
            Outcome::Throughput { value, samples } => format!(
                "{:<idw$}  {:>10} {:>10} {:>10} {:>11}  {:<5} {:>6}  {:<basew$}  {:>8}",
                r.id,
                fmt_value(*value, u),
                "",
                "",
                "",
                u.as_str(),
                fmt_count(*samples),
                base,
                ratio
            ),
            Outcome::Skipped(why) => format!("{:<idw$}  skipped: {why}", r.id),
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

/// Lines under the table: the further comparisons of some rows.
pub fn also_lines(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        for (id, x) in &r.also {
            out.push_str(&format!("  {} is {} of {}\n", r.id, fmt_ratio(*x), id));
        }
    }
    out
}

/// The JSON report: `{"schema": 1, "machine": {...}, "results": [...]}`.
pub fn json(machine: &Machine, mode: &str, records: &[Record]) -> Value {
    let results: Vec<Value> = records.iter().map(record_json).collect();
    let mut m = machine.to_json();
    if let Some(obj) = m.as_object_mut() {
        obj.insert("suite".into(), Value::from(mode));
    }
    json!({ "schema": SCHEMA, "machine": m, "results": results })
}

fn record_json(r: &Record) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), Value::from(r.id));
    o.insert("unit".into(), Value::from(r.unit.as_str()));
    match &r.outcome {
        Outcome::Latency(l) => {
            let s = l.summary();
            o.insert("samples".into(), Value::from(l.samples()));
            o.insert("p50".into(), num(s.p50));
            o.insert("p99".into(), num(s.p99));
            o.insert("p999".into(), num(s.p999));
            o.insert("max".into(), num(s.max));
        }
        Outcome::Throughput { value, samples } => {
            o.insert("samples".into(), Value::from(*samples));
            o.insert("value".into(), num(*value));
        }
        Outcome::Skipped(why) => {
            o.insert("skipped".into(), Value::from(why.as_str()));
        }
    }
    if let Some(b) = r.baseline {
        o.insert("baseline".into(), Value::from(b));
        if let Some(x) = r.ratio {
            o.insert("ratio".into(), num(x));
        }
    }
    o.insert("seconds".into(), num(r.seconds));
    if !r.also.is_empty() {
        let also: Vec<Value> = r
            .also
            .iter()
            .map(|(id, x)| json!({"baseline": id, "ratio": num(*x)}))
            .collect();
        o.insert("also".into(), Value::from(also));
    }
    Value::Object(o)
}

/// A finite number rounded to 4 decimals (nanoseconds have no more).
fn num(v: f64) -> Value {
    let r = (v * 1e4).round() / 1e4;
    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn skipped_rows_carry_their_reason() {
        let r = Record {
            id: "x.y",
            unit: Unit::Ns,
            outcome: Outcome::Skipped("not built".into()),
            baseline: Some("b"),
            ratio: None,
            also: vec![],
            seconds: 0.0,
        };
        let v = record_json(&r);
        assert_eq!(v["skipped"], "not built");
        assert!(v.get("p50").is_none());
        assert!(table(&[r]).contains("skipped: not built"));
    }
}
