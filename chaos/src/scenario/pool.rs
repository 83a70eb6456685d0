//! A `Pool` whose workers are SIGKILLed during `map` and `imap_unordered`:
//! every task must end with its right result or `WorkerDied` naming a worker
//! that was killed, and the call must return.

use crate::runner::Round;
use multiproc_core::process::ExitStatus;
use multiproc_pool::{DeathPolicy, Pool, PoolError, TaskError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

/// The work: a little spinning, then an output every input maps to alone.
fn task(x: u64) -> u64 {
    for _ in 0..(1 + x % 5) * 20_000 {
        std::hint::spin_loop();
    }
    expected(x)
}

fn expected(x: u64) -> u64 {
    crate::rng::mix(x ^ 0xc4a0_5e11)
}

/// Builds the round's pool; a third of the rounds retry a dead worker's
/// task instead of failing it (then every task must succeed). Returns the
/// pool and whether it retries.
fn build(round: &mut Round<'_>) -> Option<(Pool, bool)> {
    let retry = round.rng.chance(1, 3);
    let mut b = Pool::builder()
        .workers(2)
        .max_init_failures(1_000_000) // kills also land on workers still starting
        .max_respawns_per_sec(500);
    if retry {
        b = b.on_worker_death(DeathPolicy::Retry(1000));
    }
    if let Some(a) = &round.cfg.exec_args {
        b = b.exec_args(a.clone());
    }
    match b.build() {
        Ok(p) => Some((p, retry)),
        Err(e) => {
            round.fail(format!("pool: {e}"));
            round.report.pool_bad_results += 1;
            None
        }
    }
}

/// SIGKILLs a random worker every `lo..hi` ms until `stop` or `until`;
/// returns the pids it killed.
fn killer(
    pool: &Pool,
    stop: &AtomicBool,
    until: Instant,
    seed: u64,
    lo: u64,
    hi: u64,
) -> HashSet<u32> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut killed = HashSet::new();
    while !stop.load(Ordering::Acquire) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(rng.range(lo, hi)));
        let pids = pool.worker_pids();
        if pids.is_empty() {
            continue;
        }
        let pid = pids[rng.range(0, pids.len() as u64) as usize];
        // SAFETY: kill has no memory-safety preconditions; the pid is a
        // worker of this pool (at worst one that exited a moment ago).
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
            killed.insert(pid);
        }
    }
    killed
}

/// Judges one task's result.
fn judge(
    round: &mut Round<'_>,
    killed: &HashSet<u32>,
    retry: bool,
    what: &str,
    r: &Result<u64, TaskError>,
    want: Option<u64>,
) -> bool {
    round.report.pool_tasks += 1;
    match r {
        Ok(v) if want.is_none_or(|w| w == *v) => true,
        Err(TaskError::WorkerDied { .. }) if retry => {
            round.report.pool_bad_results += 1;
            round.fail(format!(
                "{what}: {r:?} although the pool retries dead workers' tasks"
            ));
            false
        }
        Err(TaskError::WorkerDied { pid, status }) => {
            if killed.contains(pid) && *status == ExitStatus::Signal(libc::SIGKILL) {
                round.report.pool_worker_died += 1;
                true
            } else {
                round.report.pool_bad_results += 1;
                round.fail(format!(
                    "{what}: WorkerDied blames pid {pid} ({status}), which was not killed"
                ));
                false
            }
        }
        other => {
            round.report.pool_bad_results += 1;
            round.fail(format!("{what}: {other:?} (want {want:?})"));
            false
        }
    }
}

fn finish_pool(round: &mut Round<'_>, mut pool: Pool, killed: &HashSet<u32>) {
    round.report.processes_killed += killed.len() as u64;
    for &pid in killed {
        round.note_pid(pid);
    }
    pool.terminate();
    drop(pool);
}

pub(crate) fn map_round(round: &mut Round<'_>) {
    let Some((pool, retry)) = build(round) else {
        return;
    };
    let n = round.rng.range(100, 1500);
    let chunk = round.rng.range(1, 9) as usize;
    let seed = round.rng.next_u64();
    let until = Instant::now() + round.cfg.round_len;
    let wait = round.left().saturating_sub(Duration::from_secs(5));
    let stop = AtomicBool::new(false);
    let (res, killed) = std::thread::scope(|s| {
        let k = s.spawn(|| killer(&pool, &stop, until, seed, 2, 60));
        let res = pool.map_async(task, 0..n, Some(chunk)).map(|m| {
            let done = m.wait_timeout(wait);
            (done, m)
        });
        stop.store(true, Ordering::Release);
        (res, k.join().unwrap_or_default())
    });
    match res {
        Ok((true, m)) => {
            let results = m.results();
            if results.len() as u64 != n {
                round.report.pool_bad_results += 1;
                round.fail(format!("map of {n} returned {} results", results.len()));
            }
            for (i, r) in results.iter().enumerate() {
                judge(
                    round,
                    &killed,
                    retry,
                    &format!("map task {i}"),
                    r,
                    Some(expected(i as u64)),
                );
            }
        }
        Ok((false, _)) => {
            round.report.hangs += 1;
            round.fail(format!(
                "map of {n} (chunks of {chunk}) not done within {wait:?}"
            ));
        }
        Err(PoolError::Task { index, error }) => {
            round.report.pool_bad_results += 1;
            round.fail(format!("map submission failed at {index}: {error}"));
        }
        Err(e) => {
            round.report.pool_bad_results += 1;
            round.fail(format!("map submission failed: {e}"));
        }
    }
    finish_pool(round, pool, &killed);
}

pub(crate) fn imap_round(round: &mut Round<'_>) {
    let Some((pool, retry)) = build(round) else {
        return;
    };
    let n = round.rng.range(100, 1500);
    let chunk = round.rng.range(1, 9) as usize;
    let seed = round.rng.next_u64();
    let until = Instant::now() + round.cfg.round_len;
    let stop = AtomicBool::new(false);
    let collected: StdMutex<Vec<Result<u64, TaskError>>> = StdMutex::new(Vec::new());
    let (outcome, killed) = std::thread::scope(|s| {
        let k = s.spawn(|| killer(&pool, &stop, until, seed, 2, 60));
        let outcome = pool.imap_unordered(task, 0..n, chunk).map(|it| {
            let mut out = collected.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(it);
        });
        stop.store(true, Ordering::Release);
        (outcome, k.join().unwrap_or_default())
    });
    if let Err(e) = outcome {
        round.report.pool_bad_results += 1;
        round.fail(format!("imap_unordered: {e}"));
    }
    let results = collected.into_inner().unwrap_or_else(|p| p.into_inner());
    if results.len() as u64 != n {
        round.report.pool_bad_results += 1;
        round.fail(format!(
            "imap_unordered of {n} yielded {} results",
            results.len()
        ));
    }
    // Outputs identify their inputs: each must appear at most once.
    let mut want: HashMap<u64, u64> = (0..n).map(|x| (expected(x), x)).collect();
    for (i, r) in results.iter().enumerate() {
        let ok = judge(round, &killed, retry, &format!("imap result {i}"), r, None);
        if let (true, Ok(v)) = (ok, r) {
            if want.remove(v).is_none() {
                round.report.pool_bad_results += 1;
                round.fail(format!(
                    "imap result {i}: {v:#x} is no input's output, or a second copy"
                ));
            }
        }
    }
    finish_pool(round, pool, &killed);
}
