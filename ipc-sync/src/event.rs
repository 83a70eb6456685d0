//! [`Event`] between processes.

use crate::raw::RawEvent;
use crate::shm::{common_methods, RawObject, Shared};
use crate::Error;
use ipc_core::header::layout_hash;
use ipc_core::wait::WaitStrategy;
use ipc_core::{Kind, Segment};
use std::sync::Arc;
use std::time::Duration;

impl RawObject for RawEvent {
    const KIND: Kind = Kind::new(
        "ipc-sync/event",
        1,
        layout_hash(&[RawEvent::memory_size() as u64, 4]),
    );
    fn check_object(&self) -> Result<(), Error> {
        self.check()
    }
}

/// A manual-reset event shared between processes (Python's `Event`):
/// `set` wakes every waiter and stays set until `clear`.
///
/// `set` makes no syscall unless a waiter is parked; waiters spin by their
/// [`WaitStrategy`] before parking. A waiter that dies leaves nothing that
/// blocks the others.
///
/// ```
/// let e = ipc_sync::Event::anonymous()?;
/// assert!(!e.wait_timeout(std::time::Duration::ZERO));
/// e.set();
/// e.wait();
/// assert!(e.is_set());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Event {
    inner: Shared<RawEvent>,
    strategy: WaitStrategy,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}

common_methods!(Event, "event");

impl Event {
    fn from_shared(inner: Shared<RawEvent>) -> Self {
        Event {
            inner,
            strategy: WaitStrategy::ADAPTIVE,
        }
    }

    /// Creates a clear event in a new named segment.
    pub fn create(name: &str) -> Result<Self, Error> {
        Ok(Self::from_shared(Shared::create(
            Some(name),
            RawEvent::reset,
        )?))
    }

    /// Creates a clear event in an anonymous segment.
    pub fn anonymous() -> Result<Self, Error> {
        Ok(Self::from_shared(Shared::create(None, RawEvent::reset)?))
    }

    /// Initializes a clear event at `offset` of any segment.
    pub fn init_at(seg: Arc<Segment>, offset: u64) -> Result<Self, Error> {
        Ok(Self::from_shared(Shared::init_at(
            seg,
            offset,
            |r: &RawEvent| {
                r.reset();
                Ok(())
            },
        )?))
    }

    /// Sets the event, waking every waiter.
    #[inline]
    pub fn set(&self) {
        self.inner.get().set()
    }

    /// Clears it.
    #[inline]
    pub fn clear(&self) {
        self.inner.get().clear()
    }

    /// Whether it is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.inner.get().is_set()
    }

    /// Waits until it is set.
    pub fn wait(&self) {
        self.inner.get().wait(self.strategy)
    }

    /// Waits `timeout` at most (zero: only looks); returns whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.inner.get().wait_timeout(self.strategy, timeout)
    }

    /// The raw event in shared memory.
    pub fn as_raw(&self) -> &RawEvent {
        self.inner.get()
    }
}
