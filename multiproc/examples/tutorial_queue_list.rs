//! A child puts a list of mixed values (two strings and a number) into a
//! queue; the parent gets it and prints it, intact.
//!
//! Run: `cargo run --release --example tutorial_queue_list`

use multiproc::{Process, Queue};

/// Python's `['Hello', 'World', 42]`: a tuple here, since a Rust list holds
/// one type (an enum would do as well).
type Mixed = (String, String, i64);

fn put_list(q: Queue<Mixed>) {
    q.put(("Hello".into(), "World".into(), 42))
        .expect("the queue is open");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let q = Queue::<Mixed>::new(4)?;
    let child = Process::start(put_list, q.clone())?;
    println!("{:?}", q.get()?);
    child.join()?;
    Ok(())
}
