//! Python's `JoinableQueue` pattern across processes: the parent puts jobs
//! (a `serde` struct) into a joinable queue, two worker processes started
//! with the queues as their arguments do the jobs, put results into a
//! second queue and call `task_done`; the parent's `join` returns once
//! every job is done.
//!
//! Run: `cargo run --release -p multiproc-queue --example queue`

use multiproc_core::process::{self, Process};
use multiproc_queue::error::RecvError;
use multiproc_queue::queue::{JoinableQueue, Queue};
use serde::{Deserialize, Serialize};

/// A job: square `n`, tagged with who asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
    from: String,
}

/// Runs in each worker; returns how many jobs it did.
fn worker((jobs, results): (JoinableQueue<Job>, Queue<(u64, u64)>)) -> u64 {
    let mut done = 0;
    loop {
        match jobs.get() {
            Ok(job) => {
                results.put((job.n, job.n * job.n)).expect("results queue");
                jobs.task_done().expect("one task_done per job");
                done += 1;
            }
            Err(RecvError::Closed) => return done,
            Err(e) => panic!("worker: {e}"),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let jobs = JoinableQueue::<Job>::new(64)?;
    let results = Queue::<(u64, u64)>::new(1024)?;
    let workers = (0..2)
        .map(|_| Process::start(worker, (jobs.clone(), results.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    const JOBS: u64 = 1000;
    let mut expected = 0;
    let mut got = 0;
    for n in 0..JOBS {
        jobs.put(Job {
            n,
            from: "parent".into(),
        })?;
        expected += n * n;
        // Keep the results queue from filling while we put.
        while let Ok((_, sq)) = results.get_nowait() {
            got += sq;
        }
    }
    jobs.join(); // every job has been marked done by some worker
    while let Ok((_, sq)) = results.get_nowait() {
        got += sq;
    }
    println!("parent: {JOBS} jobs done, sum of squares {got} (expected {expected})");
    jobs.close(); // workers drain and leave
    for (i, w) in workers.iter().enumerate() {
        println!("worker {i} did {} jobs", w.join()?);
    }
    if got != expected {
        return Err("results are missing".into());
    }
    Ok(())
}
