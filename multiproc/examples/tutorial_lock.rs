//! The parent and two named children each write 400 numbered lines to
//! stdout, each line in three parts, flushed one by one, while holding one
//! lock: no line is ever torn.
//!
//! Run: `cargo run --release --example tutorial_lock`

use multiproc::{current_process, LockError, Mutex, Process};
use std::io::Write;

const LINES: u64 = 400;

/// Writes this process's lines; the lock's value counts every line written.
fn write_lines(lock: Mutex<u64>) -> Result<(), String> {
    let who = current_process().name;
    let mut out = std::io::stdout();
    for i in 1..=LINES {
        // A lock error carries the guard when a holder died; `?` needs an
        // error without it.
        let mut written = lock
            .lock()
            .map_err(|e| LockError::without_guard(e).to_string())?;
        for part in [
            format!("{who} "),
            "writes line ".to_string(),
            format!("{i}\n"),
        ] {
            out.write_all(part.as_bytes()).map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
        }
        *written += 1;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let lock = Mutex::anonymous(0u64)?;
    let children = ["Child-1", "Child-2"].map(|name| {
        Process::builder()
            .name(name)
            .start(write_lines, lock.clone())
    });
    write_lines(lock.clone())?;
    for child in children {
        child?.join()??;
    }
    let total = *lock.lock().map_err(LockError::without_guard)?;
    eprintln!("{total} lines written");
    Ok(())
}
