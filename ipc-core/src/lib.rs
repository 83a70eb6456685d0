//! Shared memory, futexes and child processes: the operating-system layer of
//! the `ipc` workspace.
//!
//! This crate is the only one in the workspace that talks to the kernel for
//! shared memory, waiting and processes; `multiproc-sync`, `multiproc-queue` and
//! `multiproc-pool` build on it. It gives:
//!
//! - [`Segment`]: a named (`shm_open`) or anonymous (`memfd_create`) mapping
//!   that starts with a validated [`SegmentHeader`]; the payload behind it is
//!   reached through checked offsets ([`offset`]), never raw pointers;
//! - [`futex`] wait and wake on shared 32-bit words, and the spin-yield-park
//!   [`wait`] strategies every blocking call of the workspace uses;
//! - [`Process`]: child processes started by fork or by re-executing the
//!   binary, joined, signalled and always reaped; a spawned child must call
//!   [`process::init`] first thing in `main`;
//! - [`entry`]: how a function is named to another process of the same
//!   executable (descriptors in read-only data, checked before anything is
//!   called), correct in every build profile;
//! - [`ProcessId`]: pid plus start time, so a recorded peer is known dead
//!   even after its pid is reused; a process's own identity is learned
//!   before `main` and never guessed ([`IdentityError`] instead);
//! - [`Shareable`]: the marker for types that may live in shared memory.
//!
//! Linux only. Everything fallible returns a typed error ([`SegmentError`],
//! [`ProcessError`], [`HeaderError`], [`OffsetError`]); nothing panics on bad
//! input.
//!
//! # Example
//!
//! A parent creates an anonymous segment, a forked child writes into it, the
//! parent reads what the child wrote:
//!
//! ```
//! use multiproc_core::{Kind, Process, Segment};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let seg = Segment::builder(Kind::BYTES).size(64).create()?;
//! let child = Process::builder().name("writer").fork(|| {
//!     let cell: &AtomicU64 = seg.get(0).expect("offset 0 is in bounds");
//!     cell.store(42, Ordering::Release);
//! })?;
//! assert!(child.join()?.success());
//! let cell: &AtomicU64 = seg.get(0)?;
//! assert_eq!(cell.load(Ordering::Acquire), 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! | feature | default | what it gives | what it pulls in |
//! |---|---|---|---|
//! | `serde` | on | every `serde` type is a [`message::Message`] (numbers stay raw bytes), and placed objects travel in a child's arguments | `serde`, `postcard` |
//!
//! Without `serde`, the numbers and [`message::Pod`] values are the
//! messages.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiproc-core runs on Linux only (kernel 5.3 or newer): it needs memfd_create and file \
     seals (3.17), futex, pidfd_send_signal (5.1) and pidfd_open (5.3)"
);

pub mod entry;
pub mod error;
pub mod fdpass;
pub mod futex;
pub mod header;
pub mod holders;
mod inherit;
pub mod inspect;
pub mod liveness;
mod logging;
pub mod memory;
pub mod message;
pub mod name;
pub mod object;
pub mod offset;
pub mod process;
pub mod segment;
mod shareable;
pub mod wait;

pub use error::{OffsetError, SegmentError};
pub use header::{HeaderError, Kind, SegmentHeader};
pub use liveness::IdentityError;
pub use liveness::{Liveness, PidNamespace, ProcessId};
pub use logging::log_to_stderr;
pub use process::ProcessError;
pub use process::{cpu_count, current_process, parent_process, ExitStatus, Process, StartMethod};
pub use segment::{sweep, sweep_dry_run, Segment, SegmentBuilder};
pub use shareable::Shareable;

#[doc(hidden)]
pub mod __private {
    pub use bytemuck;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
