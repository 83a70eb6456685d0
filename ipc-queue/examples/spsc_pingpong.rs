//! Round-trip latency between two processes over two SPSC rings, for each
//! wait strategy: the parent sends an 8-byte message, the child echoes it.
//! Parent and child are pinned to CPUs 0 and 1.
//! Prints percentiles. A quick look, not a benchmark: pin the processes and
//! use the workspace's bench harness for figures worth comparing.
//!
//! Run: `cargo run --release -p multiproc-queue --example spsc_pingpong [rounds]`

use multiproc_core::process::{self, Process};
use multiproc_core::wait::WaitStrategy;
use multiproc_queue::error::RecvError;
use multiproc_queue::spsc::SpscRing;
use std::time::{Duration, Instant};

fn strategy(code: u8) -> WaitStrategy {
    match code {
        0 => WaitStrategy::BusySpin,
        1 => WaitStrategy::ADAPTIVE,
        _ => WaitStrategy::Blocking,
    }
}

/// The child: echoes every message until the parent closes.
fn echo(args: &[u8]) -> i32 {
    pin(1);
    let ping = SpscRing::from_fd(process::take_inherited_fd(0).expect("ping fd")).expect("ping");
    let pong = SpscRing::from_fd(process::take_inherited_fd(1).expect("pong fd")).expect("pong");
    let mut rx = ping
        .consumer()
        .expect("consumer")
        .with_wait_strategy(strategy(args[0]));
    let mut tx = pong
        .producer()
        .expect("producer")
        .with_wait_strategy(strategy(args[0]));
    loop {
        match rx.recv() {
            Ok(m) => tx.send(&m).expect("the parent is there"),
            Err(RecvError::Closed) => return 0,
            Err(e) => {
                eprintln!("child: {e}");
                return 1;
            }
        }
    }
}

/// Pins the calling process to one CPU (best effort): parent and child on
/// different cores, as the benchmarks do.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity only touch it and the calling process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let online = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        libc::CPU_SET(cpu % online, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    pin(0);
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    for code in 0..3u8 {
        let rounds = if code == 2 { rounds / 10 } else { rounds };
        let ping = SpscRing::builder().capacity(4096).prefault(true).create()?;
        let pong = SpscRing::builder().capacity(4096).prefault(true).create()?;
        let mut tx = ping.producer()?.with_wait_strategy(strategy(code));
        let mut rx = pong.consumer()?.with_wait_strategy(strategy(code));
        let child = Process::builder()
            .name("echo")
            .inherit_fd(ping.fd())
            .inherit_fd(pong.fd())
            .spawn(echo, &[code])?;
        let mut samples = Vec::with_capacity(rounds);
        for i in 0..rounds + 1000 {
            let payload = (i as u64).to_le_bytes();
            let t = Instant::now();
            tx.send(&payload)?;
            let back = rx.recv()?;
            let dt = t.elapsed();
            if *back != payload {
                return Err("echo mismatch".into());
            }
            if i >= 1000 {
                samples.push(dt); // the first thousand warm up
            }
        }
        drop(tx);
        let status = child.join()?;
        samples.sort();
        println!(
            "{:<45} p50 {:>9.2?}  p99 {:>9.2?}  p99.9 {:>9.2?}  max {:>9.2?}  ({rounds} round trips, child {status})",
            format!("{:?}", strategy(code)),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            percentile(&samples, 0.999),
            samples[samples.len() - 1],
        );
    }
    Ok(())
}
