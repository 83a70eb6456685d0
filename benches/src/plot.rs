//! The charts `--plot DIR` writes, drawn with `plotters` (SVG backend, text
//! laid out by estimate, no font libraries):
//!
//! - `overview.svg`: every latency row as a dot at its p50 with a whisker
//!   to its p99 (log scale), each workspace primitive followed by what it is
//!   compared with, the cache-line floor as a vertical line; below it, the
//!   latency against percentile of every round trip, overlaid.
//! - `sweep.svg`: round-trip p50 and bandwidth against payload size
//!   (log-log) for each method of the payload sweep, the cross-core copy
//!   floor as the bandwidth ceiling.
//! - with `--plot-rows`, one percentile plot per round-trip row beside what
//!   it is compared with (`rows/ID.svg`).

use crate::outcome::{percentile_holds, Latency, Outcome, Record, Unit};
use crate::suite::{Entry, Results};
use crate::sweep::{Sweep, BW_METHODS, RTT_METHODS};
use plotters::prelude::*;

/// The x axis of percentile plots runs from 0 to this many nines (99.999%).
const NINES: f64 = 5.0;

/// Colours of the series, in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn perr(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// "120 ns", "67.4 us", "3.1 ms": what the axes and legends show.
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

/// "8 B", "4 KiB", "1 MiB".
pub fn size_label(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.0} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// A payload axis tick: the log axis puts its ticks at powers of ten, so
/// they read in decimal units ("10 B", "1 kB", "100 kB", "1 MB").
pub fn axis_size_label(b: f64) -> String {
    if b >= 1e6 {
        format!("{} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

/// Who a row belongs to, for its colour in the overview.
fn family(id: &str) -> (usize, &'static str) {
    if id == "baseline.c2c.rtt" {
        (1, "cache-line floor")
    } else if !id.starts_with("baseline.") && !id.starts_with("process.") {
        (0, "this workspace")
    } else if id.contains("iceoryx2")
        || id.contains("crossbeam")
        || id.contains("rtrb")
        || id.contains("raw_sync")
        || id.contains("ipc_channel")
        || id.contains("python")
    {
        (3, "other crates, Python")
    } else {
        (7, "the kernel, pthread")
    }
}

/// The latency rows in overview order: each workspace row, then what it is
/// compared with (once), then the rest.
fn overview_rows<'a>(entries: &[Entry], records: &'a [Record]) -> Vec<(&'a Record, &'a Latency)> {
    let lat = |id: &str| {
        records.iter().find_map(|r| match &r.outcome {
            Outcome::Latency(l) if r.id == id && r.unit == Unit::Ns => Some((r, l)),
            _ => None,
        })
    };
    let mut out: Vec<(&Record, &Latency)> = Vec::new();
    let push = |id: &str, out: &mut Vec<(&'a Record, &'a Latency)>| {
        if out.iter().all(|(r, _)| r.id != id) {
            if let Some(x) = lat(id) {
                out.push(x);
            }
        }
    };
    for e in entries.iter().filter(|e| e.baseline.is_some()) {
        push(e.id, &mut out);
        for b in e.baseline.iter().chain(e.also) {
            push(b, &mut out);
        }
    }
    for e in entries {
        push(e.id, &mut out);
    }
    out
}

/// The overview image: p50 dots with p99 whiskers, then every round trip's
/// percentile curve.
///
/// # Errors
/// A drawing error, or nothing to draw.
pub fn overview(entries: &[Entry], results: &Results) -> Result<String, String> {
    let rows = overview_rows(entries, &results.records);
    if rows.is_empty() {
        return Err("no latency row was measured".into());
    }
    let row_h = 18u32;
    let top_h = 90 + row_h * rows.len() as u32;
    let (w, h) = (1100u32, top_h + 560);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let (top, bottom) = root.split_vertically(top_h);
        dots(&top, &rows, results)?;
        let rtts: Vec<(&str, &Latency)> = rows
            .iter()
            .filter(|(r, _)| r.id.contains(".rtt"))
            .map(|(r, l)| (r.id, *l))
            .collect();
        percentiles(
            &bottom,
            "latency against percentile, every round trip",
            &rtts,
        )?;
        root.present().map_err(perr)?;
    }
    Ok(svg)
}

fn dots<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[(&Record, &Latency)],
    results: &Results,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let lo = rows
        .iter()
        .map(|(_, l)| l.quantile_ns(0.5))
        .fold(f64::INFINITY, f64::min)
        .max(0.1);
    let hi = rows
        .iter()
        .map(|(r, l)| {
            if percentile_holds(0.99, l.samples()) {
                l.quantile_ns(0.99)
            } else {
                l.quantile_ns(0.5)
            }
            .max(if r.id.is_empty() { 0.0 } else { 1.0 })
        })
        .fold(0.0f64, f64::max);
    let (xlo, xhi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    );
    let n = rows.len();
    let ids: Vec<String> = rows.iter().map(|(r, _)| r.id.to_owned()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "p50 (dot) and p99 (whisker) of every latency row, log scale",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(300)
        .build_cartesian_2d((xlo..xhi).log_scale(), -0.5f64..(n as f64 - 0.5))
        .map_err(perr)?;
    let label = |y: &f64| {
        let i = y.round();
        if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            ids[n - 1 - i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&label)
        .x_label_formatter(&|v| ns_label(*v))
        .x_desc("ns (log scale)")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(perr)?;
    if let Some(floor) = results
        .record("baseline.c2c.rtt")
        .and_then(|r| r.outcome.headline())
    {
        chart
            .draw_series(LineSeries::new(
                [(floor, -0.5), (floor, n as f64 - 0.5)],
                color(1).stroke_width(1),
            ))
            .map_err(perr)?
            .label(format!("cache-line floor p50 {}", ns_label(floor)))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], color(1)));
    }
    let mut seen = [false; 10];
    for (i, (r, l)) in rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let (fam, name) = family(r.id);
        let c = color(fam);
        let p50 = l.quantile_ns(0.5);
        if percentile_holds(0.99, l.samples()) {
            chart
                .draw_series(LineSeries::new(
                    [(p50, y), (l.quantile_ns(0.99).max(p50), y)],
                    c.stroke_width(2),
                ))
                .map_err(perr)?;
        }
        let s = chart
            .draw_series(std::iter::once(Circle::new((p50, y), 4, c.filled())))
            .map_err(perr)?;
        if !seen[fam] {
            seen[fam] = true;
            s.label(name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(perr)?;
    Ok(())
}

/// Latency against percentile ("nines" axis: 0, 90%, 99%, ...), one curve
/// per histogram, the legend in a column on the right.
fn percentiles<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    curves: &[(&str, &Latency)],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    let (plot_area, legend) = area.split_horizontally(w.saturating_sub(290));
    let pts: Vec<Vec<(f64, f64)>> = curves.iter().map(|(_, l)| nines(l)).collect();
    let ys = pts.iter().flatten().map(|p| p.1);
    let lo = ys.clone().fold(f64::INFINITY, f64::min).max(0.1);
    let hi = ys.fold(0.0f64, f64::max).max(lo * 10.0);
    let top = pts
        .iter()
        .filter_map(|p| p.last().map(|q| q.0))
        .fold(1.0f64, f64::max)
        .ceil();
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(
            0.0..top,
            (10f64.powf(lo.log10().floor())..10f64.powf(hi.log10().ceil())).log_scale(),
        )
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_labels(top as usize + 1)
        .x_label_formatter(&|x| match x.round() as i32 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => "99.999%".into(),
        })
        .y_label_formatter(&|v| ns_label(*v))
        .x_desc("percentile")
        .y_desc("round trip (log scale)")
        .draw()
        .map_err(perr)?;
    for (i, p) in pts.iter().enumerate() {
        let style = color(i).stroke_width(2);
        let line = p.iter().copied();
        match (i / PALETTE.len()) % 3 {
            0 => chart.draw_series(LineSeries::new(line, style)).map(|_| ()),
            1 => chart
                .draw_series(DashedLineSeries::new(line, 8, 4, style))
                .map(|_| ()),
            _ => chart
                .draw_series(DashedLineSeries::new(line, 2, 3, style))
                .map(|_| ()),
        }
        .map_err(perr)?;
    }
    for (i, (name, l)) in curves.iter().enumerate() {
        let y = 40 + 17 * i as i32;
        let c = color(i);
        let (dash, gap) = match (i / PALETTE.len()) % 3 {
            0 => (16, 0),
            1 => (8, 4),
            _ => (2, 3),
        };
        let mut x = 4;
        while x < 20 {
            let end = (x + dash).min(20);
            legend
                .draw(&PathElement::new([(x, y), (end, y)], c.stroke_width(2)))
                .map_err(perr)?;
            x = end + gap.max(1);
        }
        legend
            .draw(&Text::new(
                format!("{name} (p50 {})", ns_label(l.quantile_ns(0.5))),
                (26, y - 6),
                ("sans-serif", 11),
            ))
            .map_err(perr)?;
    }
    Ok(())
}

/// The points of a percentile curve: (nines, ns), nines = -log10(1 - q),
/// up to the nines the samples support.
fn nines(l: &Latency) -> Vec<(f64, f64)> {
    let top = ((l.samples().max(1) as f64) / 10.0)
        .log10()
        .clamp(0.3, NINES);
    (0..=120)
        .map(|k| {
            let x = top * f64::from(k) / 120.0;
            let q = 1.0 - 10f64.powf(-x);
            (x, l.quantile_ns(q).max(0.1))
        })
        .collect()
}

/// The sweep image: round-trip p50 and bandwidth against payload size.
///
/// # Errors
/// A drawing error, or an empty sweep.
pub fn sweep(sweep: &Sweep, floor_gbs: Option<f64>) -> Result<String, String> {
    if sweep.rtt.is_empty() && sweep.bandwidth.is_empty() {
        return Err("the sweep did not run".into());
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let (left, right) = root.split_horizontally(600);
        curves(
            &left,
            "round trip p50 against payload",
            "round trip (log scale)",
            &sweep.rtt,
            &RTT_METHODS,
            None,
            true,
        )?;
        curves(
            &right,
            "bandwidth against payload",
            "GB/s (log scale)",
            &sweep.bandwidth,
            &BW_METHODS,
            floor_gbs,
            false,
        )?;
        root.present().map_err(perr)?;
    }
    Ok(svg)
}

fn curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    ydesc: &str,
    points: &[crate::sweep::Point],
    methods: &[&str],
    floor: Option<f64>,
    ns: bool,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let ok: Vec<(&str, f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.method, p.size as f64, p.outcome.headline()?)))
        .filter(|p| p.2 > 0.0)
        .collect();
    if ok.is_empty() {
        return Ok(());
    }
    let xs = ok.iter().map(|p| p.1);
    let (xlo, xhi) = (
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(0.0f64, f64::max).max(16.0),
    );
    let ys = ok.iter().map(|p| p.2).chain(floor);
    let (ylo, yhi) = (
        ys.clone().fold(f64::INFINITY, f64::min),
        ys.fold(0.0f64, f64::max),
    );
    let (ylo, yhi) = (
        10f64.powf(ylo.log10().floor()),
        10f64.powf(yhi.log10().ceil()).max(ylo * 10.0),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d((xlo..xhi * 1.05).log_scale(), (ylo..yhi).log_scale())
        .map_err(perr)?;
    let yfmt = |v: &f64| {
        if ns {
            ns_label(*v)
        } else {
            format!("{v}")
        }
    };
    chart
        .configure_mesh()
        .x_label_formatter(&|v| axis_size_label(*v))
        .y_label_formatter(&yfmt)
        .x_desc("payload (log scale; points at 8 B, then 16 B to 1 MiB in powers of 4)")
        .y_desc(ydesc)
        .draw()
        .map_err(perr)?;
    for (i, m) in methods.iter().enumerate() {
        let c = color(i);
        let line: Vec<(f64, f64)> = ok
            .iter()
            .filter(|p| p.0 == *m)
            .map(|p| (p.1, p.2))
            .collect();
        if line.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(line.iter().copied(), c.stroke_width(2)))
            .map_err(perr)?
            .label(*m)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(line.iter().map(|p| Circle::new(*p, 3, c.filled())))
            .map_err(perr)?;
    }
    if let Some(f) = floor {
        chart
            .draw_series(LineSeries::new([(xlo, f), (xhi, f)], BLACK.stroke_width(1)))
            .map_err(perr)?
            .label("cross-core copy floor")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .position(if ns {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(perr)?;
    Ok(())
}

/// One percentile plot of `curves` (per-row plots of `--plot-rows`).
///
/// # Errors
/// A drawing error.
pub fn row_plot(title: &str, curves: &[(&str, &Latency)]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        percentiles(&root, title, curves)?;
        root.present().map_err(perr)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_like_durations_and_sizes() {
        assert_eq!(ns_label(120.0), "120 ns");
        assert_eq!(ns_label(67_412.0), "67.4 us");
        assert_eq!(ns_label(1e6), "1 ms");
        assert_eq!(size_label(8.0), "8 B");
        assert_eq!(size_label(4096.0), "4 KiB");
        assert_eq!(size_label(1_048_576.0), "1 MiB");
        assert_eq!(axis_size_label(100_000.0), "100 kB");
        assert_eq!(axis_size_label(10.0), "10 B");
    }

    #[test]
    fn a_row_plot_is_an_svg_with_one_curve_per_histogram() {
        let mut a = Latency::new(1.0);
        let mut b = Latency::new(1.0);
        for i in 1..1000 {
            a.record_ns(100.0 + f64::from(i));
            b.record_ns(50_000.0 + f64::from(i));
        }
        let doc = row_plot("x.rtt", &[("x.rtt", &a), ("base", &b)]).expect("drawn");
        assert!(doc.starts_with("<svg"), "{}", &doc[..60]);
        assert!(doc.trim_end().ends_with("</svg>"));
        assert!(doc.contains("x.rtt") && doc.contains("base"));
    }
}
