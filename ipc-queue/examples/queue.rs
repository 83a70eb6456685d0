//! Python's `JoinableQueue` pattern across processes: the parent puts jobs
//! into a named queue, two worker processes open it by name, do the jobs, put
//! results into a second queue and call `task_done`; the parent's `join`
//! returns once every job is done.
//!
//! Run: `cargo run --release -p ipc-queue --example queue`

use ipc_core::process::{self, Process};
use ipc_queue::error::RecvError;
use ipc_queue::queue::{JoinableQueue, Queue};

/// A job: square `n`. Plain-old-data, copied into the queue's slot.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Job {
    n: u64,
}
// SAFETY: `#[repr(C)]`, one `u64`: no padding, no pointers, any bits valid.
unsafe impl ipc_core::Shareable for Job {}

/// Runs in each worker: `args` holds the two queue names.
fn worker(args: &[u8]) -> i32 {
    let names = String::from_utf8_lossy(args).into_owned();
    let (jobs_name, results_name) = names.split_once(' ').expect("two names");
    let (jobs, results) = match (
        JoinableQueue::<Job>::open(jobs_name),
        Queue::<[u64; 2]>::open(results_name),
    ) {
        (Ok(j), Ok(r)) => (j, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("worker: {e}");
            return 2;
        }
    };
    let mut done = 0;
    loop {
        match jobs.get() {
            Ok(job) => {
                if results.put([job.n, job.n * job.n]).is_err() {
                    return 3;
                }
                jobs.task_done().expect("one task_done per job");
                done += 1;
            }
            Err(RecvError::Closed) => break,
            Err(e) => {
                eprintln!("worker: {e}");
                return 4;
            }
        }
    }
    println!("worker (pid {}): did {done} jobs", std::process::id());
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let jobs_name = ipc_core::name::unique_name("example-jobs");
    let results_name = ipc_core::name::unique_name("example-results");
    let jobs = Queue::<Job>::builder()
        .name(&jobs_name)
        .maxsize(64)
        .create_joinable()?;
    let results = Queue::<[u64; 2]>::builder()
        .name(&results_name)
        .maxsize(1024)
        .create()?;
    let args = format!("{jobs_name} {results_name}");
    let workers = (0..2)
        .map(|i| {
            Process::builder()
                .name(format!("worker-{i}"))
                .spawn(worker, args.as_bytes())
        })
        .collect::<Result<Vec<_>, _>>()?;
    const JOBS: u64 = 1000;
    let mut expected = 0;
    let mut got = 0;
    for n in 0..JOBS {
        jobs.put(Job { n })?;
        expected += n * n;
        // Keep the results queue from filling while we put.
        while let Ok([_, sq]) = results.get_nowait() {
            got += sq;
        }
    }
    jobs.join(); // every job has been marked done by some worker
    while let Ok([_, sq]) = results.get_nowait() {
        got += sq;
    }
    println!(
        "parent: {JOBS} jobs done, sum of squares {got} (expected {expected}), qsize now {}",
        jobs.qsize()
    );
    jobs.close(); // workers drain and leave
    for w in &workers {
        let status = w.join()?;
        if !status.success() {
            return Err(format!("{} exited with {status}", w.name()).into());
        }
    }
    if got != expected {
        return Err("results are missing".into());
    }
    Ok(())
}
