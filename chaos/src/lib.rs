//! A crash-and-corruption suite for the `ipc` workspace.
//!
//! [`run`] plays rounds of scenarios in which child processes use the
//! workspace's primitives and are SIGKILLed at random moments, or share a
//! segment with a hostile process that scribbles over its control words:
//!
//! - a producer and a consumer on each ring type (`multiproc-queue`'s SPSC, MPMC
//!   and broadcast rings) exchanging sequenced, checksummed messages
//!   ([`message`]); every message is received once, intact, or reported lost
//!   by the ring's own counters (`sent = received + lost`);
//! - processes contending on an `multiproc-sync` `Mutex` that guards two counters
//!   that must stay equal, killed while holding it; the next locker repairs
//!   the data after `OwnerDied`;
//! - semaphore, condvar, event and barrier waiters killed while they wait;
//!   the survivors get through (or are told the barrier broke) in bounded
//!   time;
//! - writers of an `multiproc-sync` `SharedDict` and `SharedList` killed in the
//!   middle of their transactions; the runner replays every committed
//!   operation on a model and asks for equality, after every kill;
//! - an `multiproc-pool` `Pool` whose workers are killed during `map` and
//!   `imap_unordered`: every task has its result or `WorkerDied`;
//! - hostile peers writing random bytes over a live segment: every call
//!   returns a value or a typed error within its timeout, and nobody crashes.
//!
//! Children record what they did in a shared [`ledger`], so the figures
//! survive their death. A watchdog bounds every round. The [`Report`] ends
//! with rows whose goal is zero (duplicates, torn messages, invariant
//! violations, hangs, segments left in `/dev/shm`, orphan processes, ...);
//! the `ipc-chaos` binary prints it and exits non-zero unless they are all
//! zero. The seed is printed first so a failing run can be replayed
//! (`--seed`): kill moments and choices follow from it, the machine's
//! timing does not.
//!
//! # Example
//!
//! Children re-execute the program, so `multiproc_core::process::init()` comes
//! first in `main`:
//!
//! ```
//! multiproc_core::process::init();
//! let cfg = ipc_chaos::Config {
//!     duration: None,
//!     rounds: Some(2),
//!     scenarios: vec!["semaphore".into(), "event".into()],
//!     ..ipc_chaos::Config::default()
//! };
//! let report = ipc_chaos::run(&cfg);
//! println!("{report}");
//! assert!(report.is_clean());
//! ```
//!
//! A runnable version is `examples/one_round.rs`.

#![deny(unsafe_op_in_unsafe_fn)]

mod child;
pub mod ledger;
pub mod message;
mod report;
pub mod rng;
mod runner;
mod scenario;

pub use report::Report;
pub use runner::{children_of, count_orphans, leftover_segments, run, seed_from_clock, Config};
pub use scenario::names as scenario_names;
