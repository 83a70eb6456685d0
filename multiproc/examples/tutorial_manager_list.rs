//! A manager's shared list of the squares 0..10: print it, an item and a
//! slice; a child process appends the next square, and the parent sees it.
//!
//! Run: `cargo run --release --example tutorial_manager_list`

use multiproc::{Manager, Process, SharedList};

fn append_next_square(squares: SharedList<u64>) {
    let n = squares.len().expect("len") as u64;
    squares.push(n * n).expect("push");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let manager = Manager::new();
    let squares = manager.list::<u64>()?;
    squares.extend((0..10).map(|i| i * i))?;
    println!("{:?}", squares.to_vec()?);
    println!("{}", squares.get(4)?);
    println!("{:?}", squares.slice(2..5)?);
    Process::start(append_next_square, squares.clone())?.join()?;
    println!("{}", squares.get(10)?);
    Ok(())
}
