//! `pipe()` between a parent and a child, as Python's `multiprocessing.Pipe`:
//! the parent sends requests, the child answers on the same connection.
//!
//! Run: `cargo run --release -p multiproc-queue --example pipe`

use multiproc_core::process::{self, Process};
use multiproc_queue::error::RecvError;
use multiproc_queue::pipe::Pipe;
use std::time::{Duration, Instant};

/// The child: squares every `u64` it receives until the parent hangs up.
fn squarer(_: &[u8]) -> i32 {
    let pipe = Pipe::from_fd(process::take_inherited_fd(0).expect("pipe fd")).expect("pipe");
    let mut conn = pipe.end_b().expect("end B is free");
    conn.send_bytes(b"ready").expect("the parent is there");
    loop {
        match conn.recv::<u64>() {
            Ok(x) => conn.send(&(x * x)).expect("the parent is there"),
            Err(RecvError::Closed) => return 0,
            Err(e) => {
                eprintln!("child: {e}");
                return 1;
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let pipe = Pipe::builder().create()?;
    let mut conn = pipe.end_a()?;
    let child = Process::builder()
        .name("squarer")
        .inherit_fd(pipe.fd())
        .spawn(squarer, b"")?;
    if !conn.poll(Some(Duration::from_secs(10)))? {
        return Err("the child did not start".into());
    }
    println!("child says {:?}", String::from_utf8(conn.recv_bytes()?)?);
    let rounds = 100_000u64;
    let start = Instant::now();
    for x in 0..rounds {
        conn.send(&x)?;
        if conn.recv::<u64>()? != x * x {
            return Err(format!("wrong square of {x}").into());
        }
    }
    let per = start.elapsed() / rounds as u32;
    conn.close(); // the child sees Closed and exits
    let status = child.join()?;
    println!("{rounds} round trips, {per:?} each; child: {status}");
    if !status.success() {
        return Err("the child failed".into());
    }
    Ok(())
}
