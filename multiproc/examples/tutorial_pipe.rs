//! A child sends `["hello", "world"]` through its end of a duplex pipe and
//! closes it; the parent receives it and prints it.
//!
//! Run: `cargo run --release --example tutorial_pipe`

use multiproc::{pipe, Connection, Process};

fn send_words(mut end: Connection) {
    end.send(&vec!["hello".to_string(), "world".to_string()])
        .expect("the pipe is open");
    end.close();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let (mut parent_end, child_end) = pipe()?;
    // The child's end goes to the child; the parent's copy is dropped here.
    let child = Process::start(send_words, child_end)?;
    println!("{:?}", parent_end.recv::<Vec<String>>()?);
    child.join()?;
    Ok(())
}
