//! Workers that die, hang or fail to start: the pool returns, names the
//! dead, and keeps serving.

use multiproc_core::process::{init, test_exec_args, ExitStatus, Process};
use multiproc_core::ProcessId;
use multiproc_pool::{DeathPolicy, Pool, PoolError, TaskError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(200));
    x * x
}

fn square(x: u64) -> u64 {
    x * x
}

/// SIGKILLs a random worker every `every` until `stop`; returns the pids killed.
fn killer(pool: &Pool, stop: &AtomicBool, every: Duration) -> HashSet<u32> {
    let mut killed = HashSet::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(every);
        let pids = pool.worker_pids();
        if pids.is_empty() {
            continue;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let pid = pids[(seed % pids.len() as u64) as usize];
        // SAFETY: kill has no memory-safety preconditions; the pid is a
        // worker of this test's pool (at worst one that just exited).
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
            killed.insert(pid);
        }
    }
    killed
}

#[test]
fn killing_random_workers_during_a_map_of_10k_tasks() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .max_init_failures(1_000_000) // the killer also hits workers still starting
        .max_respawns_per_sec(200)
        .exec_args(test_exec_args(
            "killing_random_workers_during_a_map_of_10k_tasks",
        ))
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    let (results, killed) = std::thread::scope(|s| {
        let k = s.spawn(|| killer(&pool, &stop, Duration::from_millis(15)));
        let r = pool
            .map_results(slow_square, 0..10_000u64, Some(1))
            .unwrap();
        stop.store(true, Ordering::Release);
        (r, k.join().unwrap())
    });
    assert_eq!(results.len(), 10_000);
    let mut failed = 0;
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, (i as u64) * (i as u64)),
            Err(TaskError::WorkerDied { pid, status }) => {
                assert!(
                    killed.contains(pid),
                    "task {i} blames pid {pid}, which was not killed"
                );
                assert_eq!(*status, ExitStatus::Signal(libc::SIGKILL));
                failed += 1;
            }
            Err(e) => panic!("task {i}: unexpected error {e}"),
        }
    }
    assert!(
        failed <= killed.len(),
        "{failed} failures for {} kills",
        killed.len()
    );
    eprintln!(
        "killed {} workers, {failed} of 10000 tasks failed",
        killed.len()
    );
    // The pool keeps serving.
    assert_eq!(
        pool.map(square, 0..100u64).unwrap(),
        (0..100u64).map(square).collect::<Vec<_>>()
    );
}

fn aborts_on_5(x: u64) -> u64 {
    if x == 5 {
        std::process::abort();
    }
    x
}

#[test]
fn a_task_that_aborts_fails_alone_with_the_workers_status() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .exec_args(test_exec_args(
            "a_task_that_aborts_fails_alone_with_the_workers_status",
        ))
        .build()
        .unwrap();
    let r = pool.map_results(aborts_on_5, 0..50u64, Some(1)).unwrap();
    for (i, v) in r.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(
                    v,
                    Err(TaskError::WorkerDied {
                        status: ExitStatus::Signal(libc::SIGABRT),
                        ..
                    })
                ),
                "{v:?}"
            );
        } else {
            assert_eq!(*v.as_ref().unwrap(), i as u64);
        }
    }
    // get() on the dead worker's task is a typed error, too.
    let h = pool.apply_async(aborts_on_5, 5).unwrap();
    assert!(matches!(
        h.get(),
        Err(PoolError::Task {
            error: TaskError::WorkerDied { .. },
            ..
        })
    ));
    assert_eq!(h.successful(), Some(false));
}

#[test]
fn retry_policy_reruns_the_victim_elsewhere() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .on_worker_death(DeathPolicy::Retry(2))
        .exec_args(test_exec_args("retry_policy_reruns_the_victim_elsewhere"))
        .build()
        .unwrap();
    // Input 5 aborts every time: after 2 retries it fails; the rest succeed.
    let r = pool.map_results(aborts_on_5, 0..20u64, Some(1)).unwrap();
    assert!(matches!(r[5], Err(TaskError::WorkerDied { .. })));
    assert_eq!(r.iter().filter(|v| v.is_ok()).count(), 19);
}

#[test]
fn break_policy_fails_everything_and_refuses_new_work() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .on_worker_death(DeathPolicy::BreakPool)
        .exec_args(test_exec_args(
            "break_policy_fails_everything_and_refuses_new_work",
        ))
        .build()
        .unwrap();
    let r = pool.map_results(aborts_on_5, 0..20u64, Some(1)).unwrap();
    assert!(matches!(r[5], Err(TaskError::WorkerDied { .. })));
    assert!(matches!(
        pool.map(square, 0..3u64),
        Err(PoolError::Broken(_))
    ));
}

fn sleeps_on_3(x: u64) -> u64 {
    if x == 3 {
        std::thread::sleep(Duration::from_secs(60));
    }
    x
}

#[test]
fn a_stuck_task_times_out_and_its_worker_is_replaced() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .task_timeout(Duration::from_millis(300))
        .exec_args(test_exec_args(
            "a_stuck_task_times_out_and_its_worker_is_replaced",
        ))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let r = pool.map_results(sleeps_on_3, 0..10u64, Some(1)).unwrap();
    match &r[3] {
        Err(TaskError::Timeout { pid, limit }) => {
            assert!(before.contains(pid));
            assert_eq!(*limit, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(r.iter().filter(|v| v.is_ok()).count(), 9);
    assert_eq!(pool.apply(square, 4).unwrap(), 16);
}

fn failing_init() {
    panic!("the initializer fails on purpose");
}

#[test]
fn an_initializer_that_always_fails_breaks_the_pool_instead_of_looping() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .initializer(failing_init)
        .exec_args(test_exec_args(
            "an_initializer_that_always_fails_breaks_the_pool_instead_of_looping",
        ))
        .build()
        .unwrap();
    match pool.map(square, 0..10u64) {
        Err(PoolError::InitializerFailed { attempts, status }) => {
            assert_eq!(attempts, 3);
            assert_eq!(status, ExitStatus::Code(3));
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    assert!(matches!(
        pool.apply(square, 1),
        Err(PoolError::InitializerFailed { .. })
    ));
}

fn slow(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    x
}

#[test]
fn terminate_during_a_map_fails_the_rest_and_kills_every_worker() {
    init();
    let mut pool = Pool::builder()
        .workers(2)
        .exec_args(test_exec_args(
            "terminate_during_a_map_fails_the_rest_and_kills_every_worker",
        ))
        .build()
        .unwrap();
    let pids = pool.worker_pids();
    let handle = pool.map_async(slow, 0..1000u64, Some(1)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    pool.terminate();
    let r = handle.results();
    let ok = r.iter().filter(|v| v.is_ok()).count();
    assert!(ok < 1000);
    assert!(r
        .iter()
        .all(|v| v.is_ok() || matches!(v, Err(TaskError::Terminated))));
    for pid in pids {
        assert!(
            !ProcessId::of(pid).is_some_and(|p| p.is_alive()),
            "worker {pid} survived terminate"
        );
    }
    assert!(matches!(pool.map(square, 0..3u64), Err(PoolError::Closed)));
}

/// The middle process: builds a pool, reports its workers' pids on fd 1 of
/// its inherited pipe, then waits to be killed.
fn pool_parent(_: &[u8]) -> i32 {
    let Some(fd) = multiproc_core::process::take_inherited_fd(0) else {
        return 2;
    };
    let pool = match Pool::builder()
        .workers(2)
        .exec_args(test_exec_args("workers_die_with_a_killed_parent"))
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 3;
        }
    };
    let pids = pool.worker_pids();
    let mut out = std::fs::File::from(fd);
    for pid in &pids {
        std::io::Write::write_all(&mut out, &pid.to_ne_bytes()).expect("write pid");
    }
    drop(out);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn workers_die_with_a_killed_parent() {
    init();
    let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    let parent = Process::builder()
        .exec_args(test_exec_args("workers_die_with_a_killed_parent"))
        .inherit_fd(std::os::fd::AsFd::as_fd(&w))
        .spawn(pool_parent, b"")
        .unwrap();
    drop(w);
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut &r, &mut buf).unwrap();
    let pids: Vec<u32> = buf
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(pids.len(), 2, "the middle process reported its workers");
    parent.kill().unwrap();
    parent.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for pid in pids {
        while ProcessId::of(pid).is_some_and(|p| p.is_alive()) {
            assert!(
                Instant::now() < deadline,
                "worker {pid} outlived its killed parent"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .max_tasks_per_child(5)
        .exec_args(test_exec_args("max_tasks_per_child_replaces_workers"))
        .build()
        .unwrap();
    let pids = pool.map_chunked(pid_of, 0..100u64, 1).unwrap();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert!(
        distinct.len() >= 20,
        "100 tasks at 5 per worker need 20 workers, saw {}",
        distinct.len()
    );
    let mut counts = std::collections::HashMap::new();
    for p in &pids {
        *counts.entry(*p).or_insert(0) += 1;
    }
    assert!(counts.values().all(|&n| n <= 5));
}

/// Run as a worker's program: a `main` that does not call `init`.
#[test]
fn role_worker_program_without_init() {}

#[test]
fn workers_whose_program_skips_init_break_the_pool_with_the_reason() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .exec_args(test_exec_args("role_worker_program_without_init"))
        .build()
        .unwrap();
    let e = pool.map(square, 0..4u64).unwrap_err();
    match &e {
        PoolError::Broken(why)
        | PoolError::Task {
            error: TaskError::PoolBroken(why),
            ..
        } => assert!(why.contains("init()"), "{why}"),
        other => panic!("expected a broken pool, got {other:?}"),
    }
}
