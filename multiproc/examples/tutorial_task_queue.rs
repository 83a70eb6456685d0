//! Eight task strings go into a queue; three worker processes take tasks
//! with a non-blocking get until the queue is empty, and put
//! `"Task no i is done by Process-k"` into a second queue; the parent joins
//! them and prints the second queue.
//!
//! Run: `cargo run --release --example tutorial_task_queue`

use multiproc::{current_process, Process, Queue};
use std::time::Duration;

fn do_tasks((to_do, done): (Queue<String>, Queue<String>)) {
    while let Ok(task) = to_do.get_nowait() {
        println!("{task}");
        let who = current_process().name;
        done.put(format!("{task} is done by {who}"))
            .expect("the queue is open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let to_do = Queue::<String>::new(16)?;
    let done = Queue::<String>::new(16)?;
    for i in 0..8 {
        to_do.put(format!("Task no {i}"))?;
    }
    let workers = (1..=3)
        .map(|k| {
            Process::builder()
                .name(format!("Process-{k}"))
                .start(do_tasks, (to_do.clone(), done.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for w in workers {
        w.join()?;
    }
    while let Ok(line) = done.get_nowait() {
        println!("{line}");
    }
    Ok(())
}
