//! The number of CPUs this program may run on.
//!
//! Run: `cargo run --release --example tutorial_cpu_count`

fn main() {
    println!("{}", multiproc::cpu_count());
}
