//! Benchmarks of the `ipc` workspace: the `ipc-bench` harness and its
//! building blocks, plus criterion benches for one-process costs.
//!
//! `cargo run --release -p ipc-benches --bin ipc-bench` runs the quick suite
//! and prints one table: each measurement of this workspace beside a
//! baseline measured in the same run on the same two cores (a cache-line
//! ping-pong, futex, eventfd, pipe, Unix socket, POSIX semaphore, pthread
//! mutex, `rtrb`, `raw_sync`, Python's `multiprocessing`). Latencies are
//! round trips between two processes pinned to two cores, timed one by one
//! into an HDR histogram after a warm-up, with the payload written and read;
//! throughputs are messages per second from one process to another. Every
//! number in the table and in the JSON (`--json FILE`) comes from the run
//! that printed it; a measurement that cannot run says why instead.
//!
//! The contract of a measurement is the [`runner::PingPong`] or
//! [`runner::Stream`] trait: the harness forks a peer (it is single-threaded
//! when it does), pins both sides, runs a warm-up and then the timed part,
//! and every wait has a deadline, so a peer that dies turns into a
//! "failed: ..." row instead of a hang.
//!
//! # Example
//!
//! Run one baseline in the smallest mode and print its row:
//!
//! ```
//! use ipc_benches::{clock::Clock, report, runner::{Ctx, Mode}, suite};
//! use std::time::Duration;
//!
//! let ctx = Ctx {
//!     mode: Mode::Smoke,
//!     cores: (0, 0),
//!     clock: Clock::calibrated(),
//!     timeout: Duration::from_secs(30),
//! };
//! let picked = suite::select(&suite::entries(), Some("baseline.memcpy"));
//! let records = suite::run(&ctx, &picked, |_, _| {});
//! assert_eq!(records.len(), 1);
//! print!("{}", report::table(&records));
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod baselines;
pub mod clock;
pub mod machine;
pub mod outcome;
pub mod plot;
pub mod pool_benches;
pub mod queue_benches;
pub mod report;
pub mod runner;
pub mod shm;
pub mod suite;
pub mod sync_benches;
pub mod workspace;
