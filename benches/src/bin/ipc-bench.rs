//! `ipc-bench`: every primitive of the workspace measured against the OS,
//! the peers and the physical floor, in one run. See `--help`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipc_benches::clock::Clock;
use ipc_benches::machine::Machine;
use ipc_benches::outcome::Outcome;
use ipc_benches::runner::{Ctx, Mode};
use ipc_benches::{plot, report, suite};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const HELP: &str = "\
ipc-bench: this workspace's IPC primitives against the OS, the peers and the physical floor

USAGE: ipc-bench [OPTIONS]

  --full            run longer (about ten times the samples of the default quick suite)
  --quick-test      a few hundred samples per measurement: checks that everything runs
  --filter SUBSTR   only the measurements whose id contains SUBSTR (and their baselines)
  --cores A,B       the two cores to pin the two sides to (default 0,1)
  --json FILE       write the results as JSON
  --plot DIR        write latency-distribution SVG plots of the round trips into DIR
  --timeout SECS    abandon a measurement after SECS seconds (default 60)
  --list            list the measurement ids and exit
  -h, --help        this text

Reading the table: latencies are round trips (or per-operation costs) in ns;
n = samples (round trips, batches or messages timed); ratio = p50 / baseline
p50 for latencies (below 1: faster than the baseline),
value / baseline value for throughputs (above 1: more than the baseline).";

struct Args {
    mode: Mode,
    filter: Option<String>,
    cores: (usize, usize),
    json: Option<PathBuf>,
    plot: Option<PathBuf>,
    timeout: Duration,
    list: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        mode: Mode::Quick,
        filter: None,
        cores: (0, 1),
        json: None,
        plot: None,
        timeout: Duration::from_secs(60),
        list: false,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--full" => a.mode = Mode::Full,
            "--quick" => a.mode = Mode::Quick,
            "--quick-test" => a.mode = Mode::Smoke,
            "--list" => a.list = true,
            "--filter" => a.filter = Some(value("--filter")?),
            "--json" => a.json = Some(value("--json")?.into()),
            "--plot" => a.plot = Some(value("--plot")?.into()),
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v.parse().map_err(|_| format!("bad --timeout {v:?}"))?;
                a.timeout = Duration::from_secs(secs.max(1));
            }
            "--cores" => {
                let v = value("--cores")?;
                let (x, y) = v
                    .split_once(',')
                    .ok_or_else(|| format!("--cores wants A,B, got {v:?}"))?;
                let p = |s: &str| {
                    s.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad core number {s:?}"))
                };
                a.cores = (p(x)?, p(y)?);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(Some(a))
}

fn main() {
    // A spawned child (process.start.spawn) runs its entry here and exits.
    ipc_core::process::init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{HELP}");
            return;
        }
        Err(e) => {
            eprintln!("ipc-bench: {e}");
            std::process::exit(2);
        }
    };
    let all = suite::entries();
    if args.list {
        for e in &all {
            println!(
                "{:<40} {:<6} {}",
                e.id,
                e.unit.as_str(),
                e.baseline.unwrap_or("-")
            );
        }
        return;
    }
    let picked = suite::select(&all, args.filter.as_deref());
    if picked.is_empty() {
        eprintln!(
            "ipc-bench: no measurement id contains {:?} (see --list)",
            args.filter
        );
        std::process::exit(2);
    }
    let clock = Clock::calibrated();
    let machine = Machine::detect(args.cores, &clock);
    let mode_name = match args.mode {
        Mode::Quick => "quick",
        Mode::Full => "full",
        Mode::Smoke => "quick-test",
    };
    println!(
        "ipc-bench, {mode_name} suite, {} measurements",
        picked.len()
    );
    println!("{}", machine.header());
    if args.cores.0 == args.cores.1 {
        println!(
            "warning: both sides share core {}: spinning peers will crawl",
            args.cores.0
        );
    }
    if let Some(load) = machine.load_average.filter(|&l| l >= machine.cores as f64) {
        println!(
            "warning: the machine is busy (load average {load:.1} on {} cores): every figure, \
             the floor included, is noisy, and so are the ratios",
            machine.cores
        );
    }
    if machine.siblings == Some(true) {
        println!("note: the two cores are hyper-thread siblings; figures are not cross-core");
    }
    println!();
    let ctx = Ctx {
        mode: args.mode,
        cores: args.cores,
        clock,
        timeout: args.timeout,
    };
    // No steady tick: the bar draws only when told, so no thread of its own
    // exists while the harness forks its peers.
    let bar =
        ProgressBar::with_draw_target(Some(picked.len() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}") {
        bar.set_style(style);
    }
    let started = Instant::now();
    let records = suite::run(&ctx, &picked, |i, e| {
        bar.set_position(i as u64);
        bar.set_message(e.id);
    });
    // The floor again, to show whether it moved while the suite ran.
    let floor_start = records
        .iter()
        .find(|r| r.id == "baseline.c2c.rtt")
        .and_then(|r| match &r.outcome {
            Outcome::Latency(l) => Some(l.quantile_ns(0.5)),
            _ => None,
        });
    let floor_end = floor_start.and_then(|_| {
        bar.set_message("baseline.c2c.rtt again");
        suite::floor_p50(&ctx).ok()
    });
    bar.finish_and_clear();
    let took = started.elapsed();
    print!("{}", report::table(&records));
    let also = report::also_lines(&records);
    if !also.is_empty() {
        println!("\nfurther comparisons:\n{also}");
    }
    println!(
        "\nratio: latency p50 / baseline p50 (below 1 = faster); throughput value / baseline value (above 1 = more)"
    );
    if let (Some(a), Some(b)) = (floor_start, floor_end) {
        let moved = a.max(b) / a.min(b).max(1.0) > 1.5;
        println!(
            "floor check: baseline.c2c.rtt p50 {a:.0} ns at the start, {b:.0} ns at the end{}",
            if moved {
                " -- the floor moved during the run (on a VM the host may place the two \
                 virtual CPUs nearer or farther apart), so ratios against it carry that range"
            } else {
                " (steady)"
            }
        );
    }
    println!("ran in {:.1} s", took.as_secs_f64());
    let mut failed = false;
    if let Some(path) = &args.json {
        let mut doc = report::json(&machine, mode_name, &records);
        if let Some(b) = floor_end {
            doc["machine"]["c2c_rtt_p50_at_end"] = serde_json::json!(b);
        }
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("ipc-bench: cannot write {}: {e}", path.display());
            failed = true;
        } else {
            println!("results written to {}", path.display());
        }
    }
    if let Some(dir) = &args.plot {
        match write_plots(dir, &picked, &records) {
            Ok(n) => println!("{n} plots written to {}", dir.display()),
            Err(e) => {
                eprintln!("ipc-bench: plots: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

fn write_plots(
    dir: &std::path::Path,
    entries: &[suite::Entry],
    records: &[ipc_benches::outcome::Record],
) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut n = 0;
    for (e, r) in entries.iter().zip(records) {
        let Outcome::Latency(l) = &r.outcome else {
            continue;
        };
        if !e.is_round_trip() {
            continue;
        }
        let mut curves = vec![(r.id, l)];
        if let Some(b) = r.baseline {
            if let Some(Outcome::Latency(bl)) =
                records.iter().find(|x| x.id == b).map(|x| &x.outcome)
            {
                curves.push((b, bl));
            }
        }
        let path = dir.join(format!("{}.svg", r.id));
        std::fs::write(&path, plot::svg(r.id, &curves))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        n += 1;
    }
    Ok(n)
}
