//! Two processes share a named segment: the parent creates it, a spawned child
//! opens it by name, checks the header, and writes a message the parent reads.
//!
//! Run: `cargo run --release -p multiproc-core --example two_processes`

use multiproc_core::process::{self, Process};
use multiproc_core::{Kind, Segment};
use std::sync::atomic::{AtomicU64, Ordering};

const GREETING: Kind = Kind::new("example/greeting", 1, 0);

/// Runs in the child: opens the segment by the name passed as arguments.
fn child(args: &[u8]) -> i32 {
    let name = String::from_utf8_lossy(args).into_owned();
    let seg = match Segment::builder(GREETING).name(&name).open() {
        Ok(seg) => seg,
        Err(e) => {
            eprintln!("child: {e}");
            return 2;
        }
    };
    let counter: &AtomicU64 = seg.get(0).expect("offset 0 is inside the payload");
    counter.store(u64::from(std::process::id()), Ordering::Release);
    println!(
        "child  (pid {}): opened {name:?} and wrote its pid",
        std::process::id()
    );
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let name = multiproc_core::name::unique_name("example");
    let seg = Segment::builder(GREETING).name(&name).size(4096).create()?;
    println!(
        "parent (pid {}): created {:?}, {} bytes",
        std::process::id(),
        name,
        seg.total_len()
    );
    let child = Process::builder()
        .name("greeter")
        .spawn(child, name.as_bytes())?;
    let status = child.join()?;
    let written = seg.get::<AtomicU64>(0)?.load(Ordering::Acquire);
    println!(
        "parent: child {} exited with {status}; it wrote {written}",
        child.pid()
    );
    if written != u64::from(child.pid()) {
        return Err("the child's write did not arrive".into());
    }
    Ok(())
}
