//! Resource hygiene: after chaos rounds nothing of the run is left in
//! `/dev/shm`, no child process is left running or unreaped, and the runner
//! holds exactly the file descriptors it held before.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn open_fds() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string());
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.unwrap_or_default()
            )
        })
        .collect()
}

fn ours_in_dev_shm() -> Vec<String> {
    let tag = format!("-{}-", std::process::id());
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(multiproc_core::name::PREFIX) && n.contains(&tag))
        .collect()
}

#[test]
fn a_chaos_round_of_each_kind_leaves_nothing_behind() {
    multiproc_core::process::init();
    // The fd listing itself opens a descriptor: take it once to settle.
    let _ = open_fds();
    let before = open_fds();
    let cfg = ipc_chaos::Config {
        duration: None,
        rounds: Some(6),
        scenarios: [
            "spsc",
            "mpmc",
            "mutex",
            "barrier",
            "pool-map",
            "hostile-broadcast",
        ]
        .map(String::from)
        .to_vec(),
        round_len: Duration::from_millis(300),
        exec_args: Some(multiproc_core::process::test_exec_args(
            "a_chaos_round_of_each_kind_leaves_nothing_behind",
        )),
        ..ipc_chaos::Config::default()
    };
    let report = ipc_chaos::run(&cfg);
    println!("{report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.rounds, 6);
    assert!(report.processes_killed > 0);

    assert_eq!(
        ours_in_dev_shm(),
        Vec::<String>::new(),
        "segments left in /dev/shm"
    );
    let kids = ipc_chaos::children_of(std::process::id());
    assert!(
        kids.is_empty(),
        "children left (running or zombies): {kids:?}"
    );
    // Reaper threads close their descriptors as they finish.
    let end = Instant::now() + Duration::from_secs(5);
    let mut after = open_fds();
    while after != before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        after = open_fds();
    }
    let leaked: Vec<_> = after.difference(&before).collect();
    let closed: Vec<_> = before.difference(&after).collect();
    assert!(
        leaked.is_empty() && closed.is_empty(),
        "leaked {leaked:?}, closed {closed:?}"
    );
}
