//! `ipc-bench`: every primitive of the workspace measured against the OS,
//! the peer crates and the physical floor, in one run, every comparison
//! paired. See `--help`.

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipc_benches::clock::Clock;
use ipc_benches::machine::Machine;
use ipc_benches::outcome::Outcome;
use ipc_benches::runner::{Ctx, Mode};
use ipc_benches::suite::{GoalStatus, Results};
use ipc_benches::sweep::Sweep;
use ipc_benches::{compare, instructions, plot, report, suite, sweep};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The version line: the crate's version, the commit and the compiler it
/// was built from.
fn long_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let commit = option_env!("IPC_BENCH_GIT_COMMIT").filter(|s| !s.is_empty());
        let rustc = option_env!("IPC_BENCH_RUSTC").filter(|s| !s.is_empty());
        format!(
            "{} (commit {}, {})",
            env!("CARGO_PKG_VERSION"),
            commit.unwrap_or("unknown"),
            rustc.unwrap_or("rustc unknown")
        )
    })
}

/// This workspace's IPC primitives against the OS, the peer crates and the
/// physical floor, every comparison measured paired.
///
/// Latencies are round trips between two processes pinned to two cores (or
/// per-operation costs) in ns; throughputs in messages or GB per second.
/// Each comparison runs the row and its baseline in short alternating
/// blocks and reports the median of the per-pair ratios with its
/// interquartile range; a ratio whose range is wider than ±10% of the
/// median is printed as "noisy", not as a result.
///
/// Exit status: 0 when everything ran, 1 when a measurement failed (or an
/// output could not be written), 2 for bad arguments, 3 when `--goals` is
/// given and a goal is missed or cannot be told.
#[derive(Parser, Debug)]
#[command(name = "ipc-bench", version = long_version(), about, long_about)]
struct Args {
    /// Run about five times the blocks of the default quick suite.
    #[arg(long, conflicts_with = "quick_test")]
    full: bool,
    /// A few small blocks per measurement: checks that everything runs.
    #[arg(long)]
    quick_test: bool,
    /// Only the measurements whose id contains SUBSTR, and what they are
    /// compared with; the payload sweep runs when SUBSTR is part of "sweep".
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// The two cores the two sides are pinned to.
    #[arg(long, value_name = "A,B", default_value = "0,1", value_parser = parse_cores)]
    cores: (usize, usize),
    /// Write the results as JSON to FILE ("-": standard output, and the
    /// tables go to standard error).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print the change of every row and paired ratio since an earlier
    /// run's JSON.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
    /// Write overview.svg (p50 and p99 of every latency row, and every
    /// round trip's percentile curve) and sweep.svg into DIR.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// With --plot: also one percentile plot per round-trip row (DIR/rows/).
    #[arg(long, requires = "plot")]
    plot_rows: bool,
    /// Exit with status 3 when a goal is missed or cannot be told.
    #[arg(long)]
    goals: bool,
    /// Skip the payload sweep.
    #[arg(long)]
    no_sweep: bool,
    /// Count the instructions of the fast paths under valgrind's callgrind
    /// instead of timing anything.
    #[arg(long)]
    instructions: bool,
    /// Iterations per operation for --instructions.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    iterations: u64,
    /// Abandon a block that runs longer than SECS.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
    /// List the measurement ids, their units and comparisons, and exit.
    #[arg(long)]
    list: bool,
    /// (internal) run one counted operation under valgrind.
    #[arg(long, hide = true, value_name = "NAME")]
    instructions_child: Option<String>,
}

fn parse_cores(v: &str) -> Result<(usize, usize), String> {
    let (x, y) = v
        .split_once(',')
        .ok_or_else(|| format!("--cores wants A,B, got {v:?}"))?;
    let p = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("bad core number {s:?}"))
    };
    Ok((p(x)?, p(y)?))
}

/// Where the tables go: standard output, or standard error when the JSON
/// takes standard output.
struct Out {
    to_stderr: bool,
}

impl Out {
    fn say(&self, s: &str) {
        if self.to_stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }
}

fn main() {
    // A spawned child (process.start.spawn, pool workers) runs its entry
    // here and exits.
    multiproc_core::process::init();
    let args = Args::parse();
    if let Some(name) = &args.instructions_child {
        match instructions::child(name, args.iterations) {
            Ok(()) => return,
            Err(e) => {
                eprintln!("ipc-bench: {e}");
                std::process::exit(1);
            }
        }
    }
    let all = suite::entries();
    if args.list {
        for e in &all {
            let mut cmp: Vec<&str> = e.baseline.into_iter().collect();
            cmp.extend(e.also);
            println!(
                "{:<44} {:<6} {:<8} {}",
                e.id,
                e.unit.as_str(),
                e.wait.as_str(),
                if cmp.is_empty() {
                    "-".into()
                } else {
                    cmp.join(", ")
                }
            );
        }
        return;
    }
    let out = Out {
        to_stderr: args.json.as_deref() == Some(Path::new("-")),
    };
    if args.instructions {
        std::process::exit(count_instructions(&out, args.iterations));
    }
    let picked = suite::select(&all, args.filter.as_deref());
    let run_sweep = !args.no_sweep && args.filter.as_deref().is_none_or(|f| "sweep".contains(f));
    if picked.is_empty() && !run_sweep {
        eprintln!(
            "ipc-bench: no measurement id contains {:?} (see --list)",
            args.filter
        );
        std::process::exit(2);
    }
    let mode = if args.quick_test {
        Mode::Smoke
    } else if args.full {
        Mode::Full
    } else {
        Mode::Quick
    };
    let clock = Clock::calibrated();
    let machine = Machine::detect(args.cores, &clock);
    let ctx = Ctx {
        mode,
        cores: args.cores,
        clock,
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    out.say(&format!(
        "ipc-bench {}, {} suite, {} measurements{}",
        long_version(),
        mode.name(),
        suite::steps(&ctx, &picked),
        if run_sweep {
            " and the payload sweep"
        } else {
            ""
        }
    ));
    out.say(&machine.header());
    if args.cores.0 == args.cores.1 {
        out.say(&format!(
            "warning: both sides share core {}: spinning peers will crawl",
            args.cores.0
        ));
    }
    if let Some(load) = machine.load_average.filter(|&l| l >= machine.cores as f64) {
        out.say(&format!(
            "warning: the machine is busy (load average {load:.1} on {} cores): every figure is noisy; \
             paired ratios less so",
            machine.cores
        ));
    }
    if machine.siblings == Some(true) {
        out.say("note: the two cores are hyper-thread siblings; figures are not cross-core");
    }
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // No steady tick: the bar draws only when told, so no thread of its own
    // exists while the harness forks its peers.
    let steps = suite::steps(&ctx, &picked)
        + if run_sweep {
            2 * sweep::sizes(&ctx).len()
        } else {
            0
        };
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}") {
        bar.set_style(style);
    }
    let started = Instant::now();
    let results = suite::run(&ctx, &picked, |i, what| {
        bar.set_position(i as u64);
        bar.set_message(what.to_owned());
    });
    let done = suite::steps(&ctx, &picked);
    let mut k = 0;
    let sw = if run_sweep {
        sweep::run(&ctx, |what| {
            bar.set_position((done + k) as u64);
            k += 1;
            bar.set_message(what.to_owned());
        })
    } else {
        Sweep::default()
    };
    // The floor again, to show whether it moved while the suite ran.
    let floor_start = results
        .record("baseline.c2c.rtt")
        .and_then(|r| r.outcome.headline());
    let floor_end = floor_start.and_then(|_| {
        bar.set_message("baseline.c2c.rtt again");
        suite::floor_p50(&ctx).ok()
    });
    bar.finish_and_clear();
    let took = started.elapsed();
    print_tables(&out, &results, &sw, floor_start, floor_end);
    out.say(&format!("ran in {:.1} s", took.as_secs_f64()));
    let mut status = 0;
    if report::any_failed(&results) || sw_failed(&sw) {
        out.say("some measurements failed (see above): exit status 1");
        status = 1;
    }
    let info = report::RunInfo {
        mode: mode.name(),
        started_unix,
        seconds: took.as_secs_f64(),
        floor_at_end: floor_end,
    };
    let doc = report::json(&machine, &info, &results, &sw);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        let written = if path.as_os_str() == "-" {
            std::io::stdout().write_all(text.as_bytes())
        } else {
            std::fs::write(path, text)
        };
        match written {
            Ok(()) if path.as_os_str() != "-" => {
                out.say(&format!("results written to {}", path.display()))
            }
            Ok(()) => {}
            Err(e) => {
                eprintln!("ipc-bench: cannot write {}: {e}", path.display());
                status = 1;
            }
        }
    }
    if let Some(old) = &args.compare {
        match std::fs::read_to_string(old)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(o) => out.say(&format!(
                "\nchanges since {}:\n{}",
                old.display(),
                compare::compare(&o, &doc)
            )),
            Err(e) => {
                eprintln!("ipc-bench: cannot read {}: {e}", old.display());
                status = 1;
            }
        }
    }
    if let Some(dir) = &args.plot {
        match write_plots(dir, &picked, &results, &sw, args.plot_rows) {
            Ok(files) => out.say(&format!(
                "plots written to {}: {}",
                dir.display(),
                files.join(", ")
            )),
            Err(e) => {
                eprintln!("ipc-bench: plots: {e}");
                status = 1;
            }
        }
    }
    if args.goals && status == 0 {
        let bad = report::goal_statuses(&results).iter().any(|(_, s, _)| {
            matches!(
                s,
                GoalStatus::Missed | GoalStatus::Unsure | GoalStatus::NotMeasured
            )
        });
        if bad {
            out.say("a goal is missed or cannot be told: exit status 3");
            status = 3;
        }
    }
    std::process::exit(status);
}

fn sw_failed(s: &Sweep) -> bool {
    s.rtt
        .iter()
        .chain(&s.bandwidth)
        .any(|p| matches!(p.outcome, Outcome::Failed(_)))
}

fn print_tables(
    out: &Out,
    results: &Results,
    sw: &Sweep,
    floor_start: Option<f64>,
    floor_end: Option<f64>,
) {
    out.say("");
    out.say(report::table(&results.records).trim_end());
    if !results.comparisons.is_empty() {
        out.say("\npaired comparisons (A and B take turns in blocks; ratio = median of the per-pair ratios A/B;");
        out.say("latencies: below 1 = A is faster; rates: above 1 = A moves more):");
        out.say(report::comparisons_table(results).trim_end());
    }
    let goals = report::goals_text(results);
    if !goals.is_empty() {
        out.say("\ngoals (paired ratios):");
        out.say(goals.trim_end());
    }
    if !sw.rtt.is_empty() || !sw.bandwidth.is_empty() {
        out.say("\npayload sweep (methods in turns at each size):");
        out.say(report::sweep_text(sw).trim_end());
    }
    if let (Some(a), Some(b)) = (floor_start, floor_end) {
        let moved = a.max(b) / a.min(b).max(1.0) > 1.5;
        out.say(&format!(
            "\nfloor check: baseline.c2c.rtt p50 {a:.0} ns in the suite, {b:.0} ns at the end{}",
            if moved {
                " -- the floor moved during the run (the host placed the two virtual CPUs \
                 nearer or farther apart); absolute figures carry that range, paired ratios less so"
            } else {
                " (steady)"
            }
        ));
    }
}

fn write_plots(
    dir: &Path,
    entries: &[suite::Entry],
    results: &Results,
    sw: &Sweep,
    rows: bool,
) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let mut write = |name: &str, text: String| -> Result<(), String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(name.to_owned());
        Ok(())
    };
    if results
        .records
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Latency(_)))
    {
        write("overview.svg", plot::overview(entries, results)?)?;
    }
    let floor = results
        .record("baseline.copy.bandwidth")
        .and_then(|r| r.outcome.headline());
    if !sw.rtt.is_empty() || !sw.bandwidth.is_empty() {
        write("sweep.svg", plot::sweep(sw, floor)?)?;
    }
    if rows {
        std::fs::create_dir_all(dir.join("rows")).map_err(|e| e.to_string())?;
        for e in entries.iter().filter(|e| e.is_round_trip()) {
            let Some(Outcome::Latency(l)) = results.record(e.id).map(|r| &r.outcome) else {
                continue;
            };
            let mut curves = vec![(e.id, l)];
            for b in e.baseline.iter().chain(e.also) {
                if let Some(Outcome::Latency(bl)) = results.record(b).map(|r| &r.outcome) {
                    curves.push((*b, bl));
                }
            }
            write(
                &format!("rows/{}.svg", e.id),
                plot::row_plot(e.id, &curves)?,
            )?;
        }
    }
    Ok(files)
}

/// `--instructions`: counts every operation under callgrind and prints a
/// table; returns the exit status.
fn count_instructions(out: &Out, n: u64) -> i32 {
    if !instructions::available() {
        out.say("--instructions needs valgrind, which is not installed");
        return 1;
    }
    out.say(&format!(
        "instructions per operation (valgrind --tool=callgrind, {n} iterations each, \
         the loop's own instructions included)"
    ));
    let mut status = 0;
    for (name, what) in instructions::OPS {
        match instructions::count(name, n) {
            Ok(per) => out.say(&format!("{name:<32} {per:>9.1}   {what}")),
            // valgrind lacks some system calls (pidfd_open, which multiproc-pool
            // watches its workers with): not countable here, not a failure.
            Err(e) if e.contains("Function not implemented") => {
                out.say(&format!("{name:<32} not countable here: {e}"));
            }
            Err(e) => {
                out.say(&format!("{name:<32} failed: {e}"));
                status = 1;
            }
        }
    }
    status
}
