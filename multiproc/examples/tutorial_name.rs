//! A child started with a name of the parent's choice prints its own name
//! and the message it was given.
//!
//! Run: `cargo run --release --example tutorial_name`

use multiproc::{current_process, Process};

fn speak(message: String) {
    println!("{}", current_process().name);
    println!("{message}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let child = Process::builder()
        .name("Worker-7")
        .start(speak, "a message from the parent".to_string())?;
    child.join()?;
    Ok(())
}
