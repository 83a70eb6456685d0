//! Latency-distribution plots as hand-written SVG: latency (log scale)
//! against percentile, on the usual "nines" axis (50%, 90%, 99%, 99.9%...),
//! one curve for the measurement and one for its baseline.

use crate::outcome::Latency;
use std::fmt::Write as _;

const W: f64 = 820.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 45.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// The x axis runs from 0 to this many nines (99.999%).
const NINES: f64 = 5.0;
const COLORS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];

/// One curve: a label and its histogram.
pub type Curve<'a> = (&'a str, &'a Latency);

/// The points of a curve: (nines, ns), where nines = -log10(1 - q).
fn points(l: &Latency) -> Vec<(f64, f64)> {
    let top = (l.samples().max(1) as f64).log10().min(NINES);
    (0..=200)
        .map(|k| {
            let x = top * k as f64 / 200.0;
            let q = 1.0 - 10f64.powf(-x);
            (x, l.quantile_ns(q).max(0.001))
        })
        .collect()
}

/// An SVG document plotting `curves` under `title`.
pub fn svg(title: &str, curves: &[Curve<'_>]) -> String {
    let all: Vec<Vec<(f64, f64)>> = curves.iter().map(|(_, l)| points(l)).collect();
    let ys = all.iter().flatten().map(|p| p.1);
    let lo = ys.clone().fold(f64::INFINITY, f64::min).max(0.001);
    let hi = ys.fold(0.0f64, f64::max).max(lo * 10.0);
    let (ylo, yhi) = (lo.log10().floor(), hi.log10().ceil());
    let px = |x: f64| LEFT + (W - LEFT - RIGHT) * x / NINES;
    let py = |ns: f64| {
        let t = (ns.log10() - ylo) / (yhi - ylo).max(1e-9);
        H - BOTTOM - (H - TOP - BOTTOM) * t
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Vertical grid: percentiles.
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = px(i as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 14.0
    );
    // Horizontal grid: powers of ten in ns.
    let mut e = ylo;
    while e <= yhi {
        let v = 10f64.powf(e);
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            ns_label(v)
        );
        e += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" transform="rotate(-90 18 {:.1})" text-anchor="middle">latency (log scale)</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    );
    for (i, ((label, l), pts)) in curves.iter().zip(&all).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, v)| format!("{:.1},{:.1}", px(x), py(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let sum = l.summary();
        let ly = TOP + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{} (p50 {}, p99 {}, n={})</text>"#,
            LEFT + 10.0,
            ly - 4.0,
            LEFT + 30.0,
            ly,
            escape(label),
            ns_label(sum.p50),
            ns_label(sum.p99),
            l.samples()
        );
    }
    s.push_str("</svg>\n");
    s
}

/// "120 ns", "67.4 us", "3.1 ms": what the plot's axis and legend show.
pub fn ns_label(ns: f64) -> String {
    let (v, unit) = if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "us")
    } else {
        (ns, "ns")
    };
    if v >= 100.0 || v == v.round() {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_is_an_svg_with_one_curve_per_histogram() {
        let mut a = Latency::new(1.0);
        let mut b = Latency::new(1.0);
        for i in 1..1000 {
            a.record_ns(100.0 + i as f64);
            b.record_ns(50_000.0 + i as f64);
        }
        let doc = svg("x.rtt", &[("x.rtt", &a), ("base", &b)]);
        assert!(doc.starts_with("<svg"));
        assert!(doc.trim_end().ends_with("</svg>"));
        assert_eq!(doc.matches("<polyline").count(), 2);
    }

    #[test]
    fn labels_read_like_durations() {
        assert_eq!(ns_label(120.0), "120 ns");
        assert_eq!(ns_label(67_412.0), "67.4 us");
        assert_eq!(ns_label(1e6), "1 ms");
        assert_eq!(ns_label(3.5), "3.5 ns");
    }
}
