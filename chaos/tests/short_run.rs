//! The CI round of the chaos suite: every scenario at least once, processes
//! SIGKILLed at random moments, and every goal row of the table must be 0.
//!
//! About 30 s (debug). `IPC_CHAOS_SECS=N` runs it for N seconds instead
//! (the long run is the `ipc-chaos` binary: `--duration 10m`);
//! `IPC_CHAOS_SEED=S` replays a seed the table printed.

use std::time::Duration;

#[test]
fn short_run() {
    multiproc_core::process::init();
    let secs = std::env::var("IPC_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30u64);
    let seed = std::env::var("IPC_CHAOS_SEED")
        .ok()
        .and_then(|s| match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        })
        .unwrap_or_else(ipc_chaos::seed_from_clock);
    let cfg = ipc_chaos::Config {
        duration: Some(Duration::from_secs(secs)),
        rounds: None,
        seed,
        round_len: Duration::from_millis(400),
        exec_args: Some(multiproc_core::process::test_exec_args("short_run")),
        ..ipc_chaos::Config::default()
    };
    println!("ipc-chaos short run: seed {seed:#x}, {secs} s");
    let report = ipc_chaos::run(&cfg);
    println!("{report}");
    assert!(
        report.is_clean(),
        "a goal row is not 0 (seed {seed:#x}):\n{report}"
    );
    // A run too short to reach every scenario would prove little.
    let names = ipc_chaos::scenario_names();
    for n in &names {
        assert!(
            report.per_scenario.iter().any(|(s, c)| s == n && *c > 0),
            "scenario {n} never ran in {secs} s:\n{report}"
        );
    }
    assert!(report.processes_killed > 0 && report.messages_received > 0);
}
