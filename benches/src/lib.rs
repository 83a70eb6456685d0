//! Benchmarks of the `ipc` workspace: the `ipc-bench` harness and its
//! building blocks, plus criterion benches for one-process costs.
//!
//! `cargo run --release -p ipc-benches --bin ipc-bench` runs the quick suite
//! and prints one table: each measurement of this workspace beside a
//! baseline measured in the same run on the same two cores (the cache-line
//! and cross-core copy floors, futex, eventfd, pipe, Unix socket, POSIX
//! semaphore, pthread mutex, iceoryx2, `ipc-channel`, `raw_sync`,
//! crossbeam, `rtrb`, Python's `multiprocessing`), and a payload sweep
//! ([`sweep`]). Latencies are
//! round trips between two processes pinned to two cores, timed one by one
//! into an HDR histogram after a warm-up, with the payload written and read;
//! throughputs are messages per second from one process to another. Every
//! number in the table and in the JSON (`--json FILE`) comes from the run
//! that printed it; a measurement that cannot run says why instead.
//!
//! Every comparison is paired: the row and its baseline run in short
//! alternating blocks over the whole measurement ([`side::measure`]), and
//! the ratio reported is the median of the per-pair ratios with its
//! interquartile range ([`side::Paired`]); a ratio whose spread is too wide
//! is flagged instead of printed. A measurement is a [`side::Side`]; most
//! are a [`runner::PingPong`] or a [`runner::Stream`] with a forked peer
//! ([`peer::Peer`]) that sleeps between blocks. Every wait has a deadline,
//! so a peer that dies turns into a "failed: ..." row instead of a hang.
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
//! let picked = suite::select(&suite::entries(), Some("baseline.pthread_mutex.lock"));
//! let results = suite::run(&ctx, &picked, |_, _| {});
//! assert_eq!(results.records.len(), 1);
//! print!("{}", report::table(&results.records));
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod baselines;
pub mod clock;
pub mod compare;
pub mod instructions;
pub mod machine;
pub mod outcome;
pub mod peer;
pub mod peers;
pub mod plot;
pub mod pool_benches;
pub mod queue_benches;
pub mod report;
pub mod runner;
pub mod shm;
pub mod side;
pub mod suite;
pub mod sweep;
pub mod sync_benches;
pub mod workspace;
