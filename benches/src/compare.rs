//! `--compare OLD.json`: the change of every row and every paired ratio
//! between an earlier run's JSON and this one.

use serde_json::Value;

/// A row's headline in a JSON report: its p50 or its rate.
fn headline(r: &Value) -> Option<f64> {
    r.get("p50").or_else(|| r.get("value"))?.as_f64()
}

fn find<'a>(doc: &'a Value, list: &str, key: impl Fn(&Value) -> bool) -> Option<&'a Value> {
    doc.get(list)?.as_array()?.iter().find(|r| key(r))
}

/// The lines of the comparison of `new` against `old` (both JSON reports
/// of this tool): per row the old and new headline and the change; per
/// paired ratio the old and new median and whether the new one lies within
/// the old interquartile range.
pub fn compare(old: &Value, new: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<44} {:>14} {:>14} {:>8}\n",
        "row", "old", "new", "change"
    ));
    let Some(rows) = new.get("results").and_then(Value::as_array) else {
        return "the new report has no results\n".into();
    };
    for r in rows {
        let Some(id) = r["id"].as_str() else { continue };
        let Some(o) = find(old, "results", |x| x["id"] == id) else {
            out.push_str(&format!("{id:<44} {:>14}\n", "(new row)"));
            continue;
        };
        match (headline(o), headline(r)) {
            (Some(a), Some(b)) if a > 0.0 => out.push_str(&format!(
                "{id:<44} {a:>14.4} {b:>14.4} {:>+7.1}%\n",
                (b / a - 1.0) * 100.0
            )),
            _ => out.push_str(&format!("{id:<44} {:>14}\n", "(not measured in both)")),
        }
    }
    if let Some(cmps) = new.get("comparisons").and_then(Value::as_array) {
        out.push_str(&format!(
            "\n{:<70} {:>20} {:>9}  {}\n",
            "paired ratio", "old (IQR)", "new", "within the old IQR"
        ));
        for c in cmps {
            let (Some(a), Some(b)) = (c["a"].as_str(), c["b"].as_str()) else {
                continue;
            };
            let name = format!("{a} / {b}");
            let o = find(old, "comparisons", |x| x["a"] == a && x["b"] == b);
            let new_m = c["ratio_median"].as_f64();
            match (o, new_m) {
                (Some(o), Some(m)) => {
                    let (om, lo, hi) = (
                        o["ratio_median"].as_f64(),
                        o["ratio_q25"].as_f64(),
                        o["ratio_q75"].as_f64(),
                    );
                    match (om, lo, hi) {
                        (Some(om), Some(lo), Some(hi)) => out.push_str(&format!(
                            "{name:<70} {:>20} {m:>9.4}  {}\n",
                            format!("{om:.4} ({lo:.3}-{hi:.3})"),
                            if (lo..=hi).contains(&m) { "yes" } else { "no" }
                        )),
                        _ => out.push_str(&format!("{name:<70} {:>20} {m:>9.4}\n", "-")),
                    }
                }
                (None, _) => out.push_str(&format!("{name:<70} {:>20}\n", "(new comparison)")),
                (Some(_), None) => {
                    out.push_str(&format!("{name:<70} {:>20}\n", "(not measured now)"))
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_and_ratios_are_listed() {
        let old = json!({
            "results": [{"id": "a", "p50": 100.0}, {"id": "t", "value": 10.0}],
            "comparisons": [{"a": "a", "b": "b", "ratio_median": 1.5, "ratio_q25": 1.4, "ratio_q75": 1.6}]
        });
        let new = json!({
            "results": [{"id": "a", "p50": 110.0}, {"id": "t", "value": 5.0}, {"id": "z", "p50": 1.0}],
            "comparisons": [{"a": "a", "b": "b", "ratio_median": 1.55}]
        });
        let text = compare(&old, &new);
        assert!(text.contains("+10.0%"), "{text}");
        assert!(text.contains("-50.0%"), "{text}");
        assert!(text.contains("(new row)"), "{text}");
        assert!(text.contains("yes"), "{text}");
    }
}
