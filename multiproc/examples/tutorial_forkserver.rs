//! With the forkserver start method chosen once for the program, two
//! children put messages into a queue; the parent prints them.
//!
//! Run: `cargo run --release --example tutorial_forkserver`

use multiproc::{set_start_method, Process, Queue, StartMethod};

fn greet((q, n): (Queue<String>, u32)) {
    q.put(format!("hello from child {n}, started by the fork server"))
        .expect("the queue is open");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    set_start_method(StartMethod::ForkServer)?;
    let q = Queue::<String>::new(4)?;
    let children = [1, 2].map(|n| Process::start(greet, (q.clone(), n)));
    for child in children {
        child?.join()?;
    }
    for _ in 0..2 {
        println!("{}", q.get()?);
    }
    Ok(())
}
