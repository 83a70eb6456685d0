//! `ipc-chaos`: runs the crash-and-corruption suite and prints its table.
//!
//! ```text
//! ipc-chaos [--duration 60s|10m|1h] [--rounds N] [--seed S] [--scenario NAME]...
//!           [--round-ms MS] [--verbose] [--list]
//! ```
//!
//! Exits 0 when every goal row is zero, 1 otherwise, 2 on bad arguments.

use std::process::ExitCode;
use std::time::Duration;

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "ms" => return Some(Duration::from_millis(n)),
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: ipc-chaos [--duration 60s|10m|1h] [--rounds N] [--seed S] [--scenario NAME]... \
         [--round-ms MS] [--verbose] [--list]\nscenarios: {}",
        ipc_chaos::scenario_names().join(", ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // Children re-execute this binary: they start, and end, here.
    ipc_core::process::init();
    let mut cfg = ipc_chaos::Config::default();
    let mut explicit_duration = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next();
        match a.as_str() {
            "--duration" => match value().as_deref().and_then(parse_duration) {
                Some(d) => {
                    cfg.duration = Some(d);
                    explicit_duration = true;
                }
                None => return usage(),
            },
            "--rounds" => match value().and_then(|v| v.parse().ok()) {
                Some(n) => {
                    cfg.rounds = Some(n);
                    if !explicit_duration {
                        cfg.duration = None;
                    }
                }
                None => return usage(),
            },
            "--seed" => match value().as_deref().and_then(parse_seed) {
                Some(s) => cfg.seed = s,
                None => return usage(),
            },
            "--scenario" => match value() {
                Some(s) => cfg.scenarios.push(s),
                None => return usage(),
            },
            "--round-ms" => match value().and_then(|v| v.parse().ok()) {
                Some(ms) => cfg.round_len = Duration::from_millis(ms),
                None => return usage(),
            },
            "--verbose" | "-v" => cfg.verbose = true,
            "--list" => {
                println!("{}", ipc_chaos::scenario_names().join("\n"));
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    println!(
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
    );
    let report = ipc_chaos::run(&cfg);
    println!("{report}");
    if report.is_clean() {
        println!("ipc-chaos: every goal row is 0 (seed {:#x})", cfg.seed);
        ExitCode::SUCCESS
    } else {
        println!("ipc-chaos: FAILED (seed {:#x})", cfg.seed);
        ExitCode::from(1)
    }
}
