//! Two children each put one string into one queue; the parent joins both,
//! then drains the queue until it is empty.
//!
//! Run: `cargo run --release --example tutorial_queue_two_children`

use multiproc::{Process, Queue};

fn put_message((q, n): (Queue<String>, u32)) {
    q.put(format!("Message by Child Proc {n}"))
        .expect("the queue is open");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let q = Queue::<String>::new(8)?;
    let children = [1, 2].map(|n| Process::start(put_message, (q.clone(), n)));
    for child in children {
        child?.join()?;
    }
    while let Ok(message) = q.get_nowait() {
        println!("{message}");
    }
    Ok(())
}
