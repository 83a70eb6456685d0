//! `ipc-chaos`: runs the crash-and-corruption suite and prints its table.
//!
//! Exits 0 when every goal row is zero, 1 otherwise, 2 on bad arguments
//! (`--help` lists the options).

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Processes killed at random moments and hostile peers, against every
/// primitive of the workspace; the table's goal rows must all be zero.
#[derive(Parser, Debug)]
#[command(name = "ipc-chaos", version, about, long_about = None)]
struct Args {
    /// How long to run: `60s`, `10m`, `1h`, `500ms` (default 60s unless
    /// --rounds is given).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many rounds.
    #[arg(long)]
    rounds: Option<u64>,
    /// The seed (decimal or 0x-hex); a failing run prints the seed to
    /// replay it.
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// Only scenarios whose name contains this (repeatable; see --list).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// How long the chaos phase of a round lasts, in milliseconds.
    #[arg(long, value_name = "MS")]
    round_ms: Option<u64>,
    /// A progress line on stderr every this many seconds (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    progress: u64,
    /// Write the report as JSON to FILE (`-` for stdout, which then carries
    /// only the JSON).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// One line per round on stderr.
    #[arg(short, long)]
    verbose: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 60s, 10m, 1h or 500ms");
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(secs))
}

fn parse_seed(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("{s:?} is not a seed (decimal or 0x-hex)"))
}

fn main() -> ExitCode {
    // Children re-execute this binary: they start, and end, here.
    multiproc_core::process::init();
    let args = Args::parse();
    if args.list {
        println!("{}", ipc_chaos::scenario_names().join("\n"));
        return ExitCode::SUCCESS;
    }
    let mut cfg = ipc_chaos::Config {
        verbose: args.verbose,
        scenarios: args.scenarios,
        progress: (args.progress > 0).then(|| Duration::from_secs(args.progress)),
        ..ipc_chaos::Config::default()
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(ms) = args.round_ms {
        cfg.round_len = Duration::from_millis(ms);
    }
    if let Some(n) = args.rounds {
        cfg.rounds = Some(n);
        cfg.duration = args.duration;
    } else if let Some(d) = args.duration {
        cfg.duration = Some(d);
    }
    let json_to_stdout = args.json.as_deref() == Some("-");
    // With the JSON on stdout, the human lines go to stderr.
    let say = |line: String| {
        if json_to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "ipc-chaos: seed {:#x} (replay with --seed {:#x}); duration {:?}, rounds {:?}, scenarios {}",
        cfg.seed,
        cfg.seed,
        cfg.duration,
        cfg.rounds,
        if cfg.scenarios.is_empty() {
            "all".to_owned()
        } else {
            cfg.scenarios.join(",")
        }
    ));
    let report = ipc_chaos::run(&cfg);
    say(report.to_string());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        let written = if json_to_stdout {
            writeln!(std::io::stdout(), "{text}")
        } else {
            std::fs::write(path, text + "\n")
        };
        if let Err(e) = written {
            eprintln!("ipc-chaos: cannot write {path}: {e}");
            return ExitCode::from(2);
        }
    }
    if report.is_clean() {
        say(format!(
            "ipc-chaos: every goal row is 0 (seed {:#x})",
            cfg.seed
        ));
        ExitCode::SUCCESS
    } else {
        say(format!("ipc-chaos: FAILED (seed {:#x})", cfg.seed));
        ExitCode::from(1)
    }
}
