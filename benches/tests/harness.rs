//! Runs the `ipc-bench` binary in its smallest mode and checks what it
//! writes: the JSON (schema, tool, time, machine, pairing, every id of the
//! suite's specification measured or skipped with a reason, the paired
//! comparisons, the goals, the sweep), the two plots, the exit status on
//! failure and with `--goals`, `--compare`, `--json -`, `--help` and
//! `--version`. Nothing here asserts a time.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The ids the harness must report, as its specification lists them.
const REQUIRED: &[&str] = &[
    "baseline.c2c.rtt",
    "baseline.futex.rtt",
    "baseline.eventfd.rtt",
    "baseline.pipe.rtt",
    "baseline.uds.rtt",
    "baseline.posix_sem.rtt",
    "baseline.pthread_mutex.lock_unlock",
    "baseline.raw_sync.mutex.lock_unlock",
    "baseline.rtrb.throughput",
    "baseline.pipe.throughput.64",
    "baseline.copy.bandwidth",
    "baseline.python.pipe.rtt",
    "baseline.python.queue.rtt",
    "baseline.python.lock",
    "baseline.python.pool.task",
    "baseline.python.pool.task.default",
    "baseline.iceoryx2.rtt",
    "baseline.iceoryx2.rtt.event",
    "baseline.ipc_channel.rtt",
    "baseline.raw_sync.event.rtt",
    "baseline.crossbeam.array_queue.rtt",
    "baseline.crossbeam.array_queue.throughput",
    "baseline.crossbeam.channel.throughput",
    "queue.spsc.rtt.8",
    "queue.spsc.rtt.64",
    "queue.spsc.rtt.adaptive",
    "queue.spsc.rtt.blocking",
    "queue.mpmc.rtt",
    "queue.broadcast.rtt",
    "queue.pipe.rtt",
    "queue.spsc.throughput.8",
    "queue.spsc.throughput.64",
    "queue.spsc.bandwidth.4096",
    "queue.mpmc.throughput",
    "sync.mutex.lock_unlock",
    "sync.mutex.handoff.rtt",
    "sync.semaphore.rtt",
    "sync.event.rtt",
    "pool.map.task",
    "pool.map.task.default",
    "pool.startup",
    "pool.cpu_bound.speedup",
    "pool.startup.forkserver",
    "process.start.fork",
    "process.start.spawn",
    "process.start.forkserver",
];

/// A temporary path removed on drop (file or directory), even when the
/// test fails.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(format!("ipc-bench-test-{tag}-{}", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One harness run at a time: two runs at once would each pin two spinning
/// processes to the same two cores and crawl.
static ONE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bench(args: &[&str]) -> Output {
    let _one = ONE_RUN.lock().unwrap_or_else(|p| p.into_inner());
    Command::new(env!("CARGO_BIN_EXE_ipc-bench"))
        .args(args)
        .output()
        .expect("run ipc-bench")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the smallest mode with `extra`, expects success, returns the JSON
/// and the standard output.
fn run_json(extra: &[&str], tag: &str) -> (Value, String) {
    let out_file = TempPath::new(&format!("{tag}.json"));
    let path = out_file.0.to_str().expect("a UTF-8 temp path").to_owned();
    let mut args = vec!["--quick-test", "--json", &path];
    args.extend(extra);
    let out = bench(&args);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "ipc-bench failed: {}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    let doc = std::fs::read_to_string(&out_file.0).expect("the JSON file exists");
    (serde_json::from_str(&doc).expect("valid JSON"), stdout)
}

fn num(r: &Value, field: &str) -> f64 {
    r[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: {field} is not a number: {r}", r["id"]))
}

/// Checks one result object; returns whether it was measured.
fn check_result(r: &Value) -> bool {
    let id = r["id"].as_str().expect("id is a string");
    let unit = r["unit"].as_str().expect("unit is a string");
    assert!(
        ["ns", "msg/s", "GB/s", "x"].contains(&unit),
        "{id}: unit {unit}"
    );
    assert!(
        ["spin", "kernel", "adaptive", "-"].contains(&r["waits"].as_str().unwrap_or("?")),
        "{id}: waits {}",
        r["waits"]
    );
    if let Some(why) = r.get("skipped").or_else(|| r.get("failed")) {
        let why = why.as_str().expect("the reason is a string");
        assert!(
            !why.trim().is_empty(),
            "{id}: not measured without a reason"
        );
        for f in ["p50", "p99", "p999", "max", "value", "samples"] {
            assert!(r.get(f).is_none(), "{id}: not measured but has {f}");
        }
        return false;
    }
    let n = num(r, "samples");
    assert!(n >= 1.0, "{id}: no samples");
    if r.get("value").is_some() {
        assert!(num(r, "value") > 0.0, "{id}: value");
    } else {
        let (p50, max) = (num(r, "p50"), num(r, "max"));
        assert!(
            p50 > 0.0 && p50 <= max,
            "{id}: p50 and max out of order: {r}"
        );
        // Percentiles only where there are enough samples for them.
        assert_eq!(
            r.get("p99").is_some(),
            n >= 1000.0,
            "{id}: p99 with {n} samples"
        );
        assert_eq!(
            r.get("p999").is_some(),
            n >= 10_000.0,
            "{id}: p99.9 with {n} samples"
        );
    }
    true
}

#[test]
fn quick_test_suite_reports_every_id_pairs_and_plots() {
    let plots = TempPath::new("plots");
    let dir = plots.0.to_str().expect("UTF-8").to_owned();
    let (doc, stdout) = run_json(&["--plot", &dir], "all");
    assert_eq!(doc["schema"], 2);
    assert_eq!(doc["tool"]["name"], "ipc-bench");
    assert!(doc["tool"]["version"].is_string());
    assert!(doc["tool"]["rustc"]
        .as_str()
        .is_some_and(|s| s.starts_with("rustc")));
    assert!(doc["tool"]["git_commit"].is_string() || doc["tool"]["git_commit"].is_null());
    assert!(doc["time"]["started_unix"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000));
    assert!(doc["time"]["started_utc"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(doc["pairing"]["max_spread"].as_f64().is_some());
    let machine = &doc["machine"];
    assert!(machine["cpu_model"].is_string(), "{machine}");
    assert!(machine["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(machine["kernel"].is_string());
    assert_eq!(machine["suite"], "quick-test");
    let results = doc["results"].as_array().expect("results array");
    let ids: Vec<&str> = results.iter().filter_map(|r| r["id"].as_str()).collect();
    for want in REQUIRED {
        assert!(ids.contains(want), "{want} missing from the results");
        assert!(stdout.contains(want), "{want} missing from the table");
    }
    let measured: Vec<&str> = results
        .iter()
        .filter(|r| check_result(r))
        .filter_map(|r| r["id"].as_str())
        .collect();
    // Work that needs neither a second core nor another program always runs.
    for id in [
        "baseline.pthread_mutex.lock_unlock",
        "sync.mutex.lock_unlock",
    ] {
        assert!(
            measured.contains(&id),
            "{id} was not measured: {measured:?}"
        );
    }
    // Every comparison names two rows and carries its per-pair ratios.
    let cmps = doc["comparisons"].as_array().expect("comparisons");
    assert!(cmps.len() >= 20, "{} comparisons", cmps.len());
    for c in cmps {
        let (a, b) = (c["a"].as_str().expect("a"), c["b"].as_str().expect("b"));
        assert!(ids.contains(&a) && ids.contains(&b), "{c}");
        if c.get("error").is_none() {
            let (lo, m, hi) = (
                num(c, "ratio_q25"),
                num(c, "ratio_median"),
                num(c, "ratio_q75"),
            );
            assert!(lo <= m && m <= hi && lo > 0.0, "{c}");
            assert!(c["pairs"].as_u64().is_some_and(|p| p >= 1), "{c}");
            // A quick test has too few pairs for a ratio to count.
            assert_eq!(c["flagged"], true, "{c}");
            assert!(c.get("ratio").is_none(), "{c}");
        }
    }
    let goals = doc["goals"].as_array().expect("goals");
    assert_eq!(goals.len(), ipc_benches::suite::GOALS.len(), "{goals:?}");
    assert!(stdout.contains("goals (paired ratios)"));
    let sweep = &doc["sweep"];
    for kind in ["rtt", "bandwidth"] {
        let pts = sweep[kind].as_array().expect("sweep points");
        assert!(pts.len() >= 12, "{kind}: {} points", pts.len());
        for p in pts {
            assert!(
                p["size"].as_u64().is_some() && p["method"].is_string(),
                "{p}"
            );
        }
    }
    for f in ["overview.svg", "sweep.svg"] {
        let svg = std::fs::read_to_string(plots.0.join(f)).expect("the plot exists");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}"
        );
    }
    assert!(
        !plots.0.join("rows").exists(),
        "per-row plots only on request"
    );
}

#[test]
fn filter_selects_measurements_and_what_they_are_compared_with() {
    let (doc, stdout) = run_json(&["--filter", "queue.spsc.rtt.64"], "filter");
    let ids: Vec<&str> = doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["baseline.c2c.rtt", "queue.spsc.rtt.64"]);
    assert!(!stdout.contains("baseline.futex.rtt"));
    assert!(doc["sweep"]["rtt"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(doc["comparisons"][0]["a"], "queue.spsc.rtt.64");
    assert_eq!(doc["comparisons"][0]["b"], "baseline.c2c.rtt");
}

#[test]
fn json_to_stdout_and_compare() {
    let old = TempPath::new("old.json");
    let out = bench(&[
        "--quick-test",
        "--filter",
        "baseline.pthread_mutex.lock",
        "--json",
        "-",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Standard output is the JSON alone; the tables went to standard error.
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(
        doc["results"][0]["id"],
        "baseline.pthread_mutex.lock_unlock"
    );
    assert!(text(&out.stderr).contains("baseline.pthread_mutex.lock_unlock"));
    std::fs::write(&old.0, &out.stdout).expect("write the old report");
    let out = bench(&[
        "--quick-test",
        "--filter",
        "baseline.pthread_mutex.lock",
        "--compare",
        old.0.to_str().expect("UTF-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("changes since"), "{stdout}");
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("baseline.pthread_mutex.lock_unlock"))
        .expect("a change line");
    assert!(line.trim_end().ends_with('%'), "{line}");
}

#[test]
fn a_failed_row_fails_the_run() {
    // A core that does not exist: the peer cannot pin itself.
    let out = bench(&[
        "--quick-test",
        "--filter",
        "baseline.c2c.rtt",
        "--no-sweep",
        "--cores",
        "0,999",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failed:"), "{stdout}");
}

#[test]
fn goals_that_cannot_be_told_fail_with_goals() {
    // A quick test has too few pairs to settle any ratio: the mutex goal
    // is "unsure", which --goals turns into exit status 3.
    let args = [
        "--quick-test",
        "--filter",
        "sync.mutex.lock_unlock",
        "--no-sweep",
    ];
    let out = bench(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut with_goals = args.to_vec();
    with_goals.push("--goals");
    let out = bench(&with_goals);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("sync.mutex.lock_unlock / baseline.pthread_mutex.lock_unlock"),
        "{stdout}"
    );
}

#[test]
fn help_version_and_bad_arguments() {
    let out = bench(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for opt in [
        "--json",
        "--compare",
        "--plot",
        "--goals",
        "--instructions",
        "--filter",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}");
    }
    let out = bench(&["--version"]);
    assert!(out.status.success());
    let v = text(&out.stdout);
    assert!(v.starts_with("ipc-bench ") && v.contains("rustc"), "{v}");
    let out = bench(&["--cores", "x,1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad core number"));
}
