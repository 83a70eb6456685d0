//! The two rings between the parent and one worker: tasks one way, results
//! the other, each an `multiproc-queue` SPSC ring in an anonymous segment of its
//! own. A replacement worker gets fresh rings, so nothing a dead worker left
//! half-written can reach its successor.

use crate::error::PoolError;
use multiproc_core::wait::WaitStrategy;
use multiproc_queue::error::{AttachError, RecvTimeoutError, TryRecvError, TrySendError};
use multiproc_queue::spsc::{Consumer, Producer, SpscRing};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The worker's two ring descriptors, to hand to its process.
pub(crate) struct WorkerFds {
    pub(crate) tasks: OwnedFd,
    pub(crate) results: OwnedFd,
}

/// Why a ring between the parent and a worker failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// Sending a frame failed for another reason than a full or closed ring.
    #[error("sending to a worker: {0}")]
    Send(TrySendError<()>),
    /// Receiving a frame failed for another reason than an empty or closed
    /// ring.
    #[error("receiving from a worker: {0}")]
    Recv(TryRecvError),
    /// A worker could not map or claim its rings.
    #[error("attaching a worker's rings: {0}")]
    Attach(#[from] AttachError),
    /// The parent has closed the rings (or died).
    #[error("the parent has gone")]
    ParentGone,
}

/// The parent's ends: it produces tasks and consumes results.
pub(crate) struct ParentEnd {
    tasks: Producer,
    results: Consumer,
}

fn ring_err(e: impl std::fmt::Display) -> PoolError {
    PoolError::Broken(format!("cannot set up a worker's rings: {e}"))
}

impl ParentEnd {
    /// Two fresh rings of `ring_bytes` each; the parent's ends and the
    /// worker's descriptors.
    pub(crate) fn create(ring_bytes: usize) -> Result<(ParentEnd, WorkerFds), PoolError> {
        let t = SpscRing::builder()
            .capacity(ring_bytes)
            .create()
            .map_err(ring_err)?;
        let r = SpscRing::builder()
            .capacity(ring_bytes)
            .create()
            .map_err(ring_err)?;
        let fds = WorkerFds {
            tasks: t.fd().try_clone_to_owned().map_err(ring_err)?,
            results: r.fd().try_clone_to_owned().map_err(ring_err)?,
        };
        // The parent only polls its ends (it sleeps on the pool's doorbell,
        // never on these rings): declaring them busy-spin tells the worker's
        // ends they need not fence and check for a parked peer per message.
        let end = ParentEnd {
            tasks: t
                .producer()
                .map_err(ring_err)?
                .with_wait_strategy(WaitStrategy::BusySpin),
            results: r
                .consumer()
                .map_err(ring_err)?
                .with_wait_strategy(WaitStrategy::BusySpin),
        };
        Ok((end, fds))
    }

    /// Queues a task; `Ok(false)` if the ring is full now.
    pub(crate) fn try_send(&mut self, msg: &[u8]) -> Result<bool, LinkError> {
        match self.tasks.try_send(msg) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(())) => Ok(false),
            // A worker that closed its end is exiting; its death is handled
            // by the supervisor's check.
            Err(TrySendError::Closed(())) => Ok(false),
            Err(e) => Err(LinkError::Send(e)),
        }
    }

    /// Runs `f` on the next result's bytes in place; `Ok(None)` if there is
    /// none.
    pub(crate) fn try_recv_with<R>(
        &mut self,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, LinkError> {
        match self.results.try_recv() {
            Ok(msg) => Ok(Some(f(&msg))),
            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => Ok(None),
            Err(e) => Err(LinkError::Recv(e)),
        }
    }

    /// Whether a result is waiting.
    pub(crate) fn has_message(&mut self) -> bool {
        self.results.is_empty().is_ok_and(|empty| !empty)
    }

    /// The largest message either ring carries.
    pub(crate) fn max_message(&self) -> usize {
        self.tasks
            .max_message_len()
            .min(self.results.max_message_len())
    }
}

/// The worker's ends: it consumes tasks and produces results.
pub(crate) struct WorkerEnd {
    tasks: Consumer,
    results: Producer,
}

impl WorkerEnd {
    /// Maps the rings the parent created.
    pub(crate) fn attach(fds: WorkerFds) -> Result<WorkerEnd, LinkError> {
        let t = SpscRing::from_fd(fds.tasks).map_err(AttachError::from)?;
        let r = SpscRing::from_fd(fds.results).map_err(AttachError::from)?;
        Ok(WorkerEnd {
            tasks: t.consumer()?,
            results: r.producer()?,
        })
    }

    /// Waits up to `timeout` for a task and runs `f` on its bytes in place.
    /// `Ok(None)` on timeout; `Err` once the parent has gone.
    pub(crate) fn with_task<R>(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&[u8], &mut Producer) -> R,
    ) -> Result<Option<R>, LinkError> {
        match self.tasks.recv_timeout(timeout) {
            Ok(msg) => Ok(Some(f(&msg, &mut self.results))),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(_) => Err(LinkError::ParentGone),
        }
    }

    /// The largest message the result ring carries.
    pub(crate) fn max_message(&self) -> usize {
        self.results.max_message_len()
    }
}
