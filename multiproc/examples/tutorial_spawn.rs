//! Three processes, each running one function with its own argument.
//!
//! Run: `cargo run --release --example tutorial_spawn`

use multiproc::Process;

fn show(message: String) {
    println!("{message}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let children = ["This is a spawn", "This is a spawn 2", "This is a spawn 3"]
        .map(|m| Process::start(show, m.to_string()));
    for child in children {
        child?.join()?;
    }
    Ok(())
}
