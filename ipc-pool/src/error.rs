//! Errors of the pool: per task ([`TaskError`]) and per call ([`PoolError`]).

use multiproc_core::process::ExitStatus;
use std::time::Duration;

/// Why one task (one input item) has no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The work function panicked; the worker survived and goes on.
    #[error("the task panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The worker running the task died (SIGKILL, abort, OOM killer, ...).
    #[error("worker pid {pid} died running the task: {status}")]
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },
    /// The task ran longer than the pool's task timeout; its worker was
    /// killed and replaced.
    #[error("the task ran longer than {limit:?} on worker pid {pid}, which was killed")]
    Timeout {
        /// The worker's pid.
        pid: u32,
        /// The pool's task timeout.
        limit: Duration,
    },
    /// The task's input or output could not be decoded (a bug, or memory
    /// corrupted by another process).
    #[error("the task's data could not be decoded: {0}")]
    Decode(String),
    /// The task's outputs were larger than a ring message.
    #[error(
        "the task's outputs take {len} bytes, more than the {limit} bytes a ring message carries; \
         raise PoolBuilder::ring_bytes or use a smaller chunksize"
    )]
    OutputTooLarge {
        /// The encoded size.
        len: usize,
        /// The largest message the rings carry.
        limit: usize,
    },
    /// The pool was terminated before the task ran to completion.
    #[error("the pool was terminated before the task completed")]
    Terminated,
    /// The initializer failed in too many fresh workers in a row, so the
    /// pool broke and the task was not run.
    #[error("the initializer failed in {attempts} fresh workers in a row (last: {status})")]
    InitializerFailed {
        /// How many workers failed in a row.
        attempts: u32,
        /// How the last one ended.
        status: ExitStatus,
    },
    /// The pool is broken (its policy gave up after a worker's death), so
    /// the task was not run.
    #[error("the pool is broken: {0}")]
    PoolBroken(String),
}

/// Why a pool operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A pool needs at least one worker.
    #[error("a pool needs at least one worker")]
    ZeroWorkers,
    /// A chunk size of zero was given.
    #[error("chunksize must be at least 1")]
    ZeroChunksize,
    /// An encoded input or output is larger than a ring can carry.
    #[error(
        "a message of {len} bytes is larger than the {limit} bytes a ring slot carries; \
         raise it with PoolBuilder::ring_bytes or use a smaller chunksize"
    )]
    MessageTooLarge {
        /// The encoded size.
        len: usize,
        /// The largest message the rings carry.
        limit: usize,
    },
    /// Work was submitted after [`close`](crate::Pool::close) or
    /// [`terminate`](crate::Pool::terminate).
    #[error("the pool is closed to new work")]
    Closed,
    /// An input could not be encoded (its `serde` serializer refused it).
    #[error("an input could not be encoded: {0}")]
    Encode(String),
    /// A task failed (the first failure of a `map`, or the task of `apply`).
    #[error("task {index} failed: {error}")]
    Task {
        /// The index of the failed input.
        index: usize,
        /// Why it failed.
        error: TaskError,
    },
    /// The initializer failed in a fresh worker too many times in a row.
    #[error("the initializer failed in {attempts} fresh workers in a row (last: {status})")]
    InitializerFailed {
        /// How many workers failed in a row.
        attempts: u32,
        /// How the last one ended.
        status: ExitStatus,
    },
    /// The pool is broken; see the reason.
    #[error("the pool is broken: {0}")]
    Broken(String),
    /// A result was not ready within the timeout.
    #[error("timed out waiting for the result")]
    Timeout,
    /// Starting a worker failed.
    #[error(transparent)]
    Process(#[from] multiproc_core::ProcessError),
    /// Creating shared memory failed.
    #[error(transparent)]
    Segment(#[from] multiproc_core::SegmentError),
}
