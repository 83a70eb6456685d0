//! Runs the `ipc-bench` binary in its smallest mode and checks the JSON it
//! writes: the schema, every id of the suite's specification present, each
//! either measured (with consistent numbers) or skipped with a reason.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

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
    "baseline.memcpy.bandwidth",
    "baseline.python.pipe.rtt",
    "baseline.python.queue.rtt",
    "baseline.python.lock",
    "baseline.python.pool.task",
    "baseline.python.pool.task.default",
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
    "process.start.fork",
    "process.start.spawn",
];

/// A temporary file path removed on drop, even when the test fails.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        TempPath(
            std::env::temp_dir().join(format!("ipc-bench-test-{tag}-{}.json", std::process::id())),
        )
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One harness run at a time: two runs at once would each pin two spinning
/// processes to the same two cores and crawl.
static ONE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_harness(extra: &[&str], tag: &str) -> (Value, String) {
    let _one = ONE_RUN.lock().unwrap_or_else(|p| p.into_inner());
    let out_file = TempPath::new(tag);
    let out = Command::new(env!("CARGO_BIN_EXE_ipc-bench"))
        .arg("--quick-test")
        .arg("--json")
        .arg(&out_file.0)
        .args(extra)
        .output()
        .expect("run ipc-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ipc-bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file.0).expect("the JSON file exists");
    (serde_json::from_str(&text).expect("valid JSON"), stdout)
}

fn num(r: &Value, field: &str) -> f64 {
    r[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: {field} is not a number: {r}", r["id"]))
}

/// Checks one result object; returns whether it was measured.
fn check_result(r: &Value, ids: &[&str]) -> bool {
    let id = r["id"].as_str().expect("id is a string");
    let unit = r["unit"].as_str().expect("unit is a string");
    assert!(
        ["ns", "msg/s", "GB/s", "x"].contains(&unit),
        "{id}: unit {unit}"
    );
    if let Some(b) = r.get("baseline") {
        let b = b.as_str().expect("baseline is a string");
        assert!(ids.contains(&b), "{id}: baseline {b} is not in the results");
    }
    if let Some(why) = r.get("skipped") {
        let why = why.as_str().expect("skipped is a string");
        assert!(!why.trim().is_empty(), "{id}: skipped without a reason");
        for f in ["p50", "p99", "p999", "max", "value", "ratio", "samples"] {
            assert!(r.get(f).is_none(), "{id}: skipped but has {f}");
        }
        return false;
    }
    assert!(num(r, "samples") >= 1.0, "{id}: no samples");
    if r.get("value").is_some() {
        assert!(num(r, "value") > 0.0, "{id}: value");
    } else {
        let (p50, p99, p999, max) = (num(r, "p50"), num(r, "p99"), num(r, "p999"), num(r, "max"));
        assert!(
            p50 > 0.0 && p50 <= p99 && p99 <= p999 && p999 <= max,
            "{id}: percentiles out of order: {r}"
        );
    }
    if let Some(x) = r.get("ratio") {
        assert!(x.as_f64().is_some_and(|x| x > 0.0), "{id}: ratio {x}");
    }
    true
}

#[test]
fn quick_test_suite_reports_every_id() {
    let (doc, stdout) = run_harness(&[], "all");
    assert_eq!(doc["schema"], 1);
    let machine = &doc["machine"];
    assert!(machine["cpu_model"].is_string(), "{machine}");
    assert!(machine["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(machine["kernel"].is_string());
    assert!(
        machine["hyperthread_siblings"].is_boolean() || machine["hyperthread_siblings"].is_null()
    );
    let results = doc["results"].as_array().expect("results array");
    let ids: Vec<&str> = results.iter().filter_map(|r| r["id"].as_str()).collect();
    for want in REQUIRED {
        assert!(ids.contains(want), "{want} missing from the results");
        assert!(stdout.contains(want), "{want} missing from the table");
    }
    let mut measured = Vec::new();
    for r in results {
        if check_result(r, &ids) {
            measured.push(r["id"].as_str().unwrap_or_default());
        }
    }
    // Work that needs neither a second core nor another crate always runs.
    for id in [
        "baseline.memcpy.bandwidth",
        "baseline.pthread_mutex.lock_unlock",
    ] {
        assert!(
            measured.contains(&id),
            "{id} was not measured: {measured:?}"
        );
    }
}

#[test]
fn filter_selects_measurements_and_their_baselines() {
    let (doc, stdout) = run_harness(&["--filter", "queue.spsc.rtt.64"], "filter");
    let ids: Vec<&str> = doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["baseline.c2c.rtt", "queue.spsc.rtt.64"]);
    assert!(!stdout.contains("baseline.futex.rtt"));
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipc-bench"))
        .args(["--cores", "x,1"])
        .output()
        .expect("run ipc-bench");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad core number"));
}
