//! Measures what starting things costs on this machine: segment
//! create + open + unlink, and child start + join by fork and by spawn.
//! Prints the median and 90th percentile of many runs.
//!
//! Run: `cargo run --release -p multiproc-core --example startup_times [runs]`

use multiproc_core::process::{self, Process, StartMethod};
use multiproc_core::{Kind, Segment};
use std::time::{Duration, Instant};

fn child(x: u64) -> u64 {
    x + 1
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<40} median {:>9.1} us   p90 {:>9.1} us   ({} runs)",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.9).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn time<E: std::fmt::Debug>(
    runs: usize,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<Vec<Duration>, E> {
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        out.push(t.elapsed());
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let kind = Kind::new("example/startup", 1, 0);
    let name = multiproc_core::name::unique_name("startup");

    report(
        "named segment create+open+unlink (4 KiB)",
        time(runs * 5, || {
            let created = Segment::builder(kind).name(&name).size(4096).create()?;
            let opened = Segment::builder(kind).name(&name).open()?;
            drop(opened);
            drop(created); // the creator unlinks
            Ok::<(), multiproc_core::SegmentError>(())
        })?,
    );
    report(
        "anonymous segment create (4 KiB)",
        time(runs * 5, || {
            Segment::builder(kind).size(4096).create().map(drop)
        })?,
    );
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let samples = time(runs, || {
            let value = Process::builder()
                .start_method(method)
                .start(child, 41u64)?
                .join()?;
            if value == 42 {
                Ok(())
            } else {
                Err(multiproc_core::ProcessError::Invalid("the child failed"))
            }
        })?;
        report(&format!("process start+join ({method:?})"), samples);
    }
    Ok(())
}
