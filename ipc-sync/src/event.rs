//! [`Event`] between processes.

use crate::handle::handle;
use crate::raw::RawEvent;
use multiproc_core::object::Placed;
use multiproc_core::wait::WaitStrategy;
use std::time::Duration;

/// A manual-reset event shared between processes (Python's `Event`):
/// `set` wakes every waiter and stays set until `clear`. It has no
/// configuration: it starts clear.
///
/// `set` makes no syscall unless a waiter is parked; waiters spin by their
/// [`WaitStrategy`] before parking. A waiter that dies leaves nothing that
/// blocks the others.
///
/// ```
/// let e = multiproc_sync::Event::anonymous()?;
/// assert!(!e.wait_timeout(std::time::Duration::ZERO));
/// e.set();
/// e.wait();
/// assert!(e.is_set());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Event {
    placed: Placed<RawEvent>,
    strategy: WaitStrategy,
}

multiproc_core::handle_constructors!(impl[] Event, "event", ());
handle!(impl[] Event, RawEvent, "event");

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}

impl Event {
    /// The raw event in shared memory.
    #[inline]
    pub fn as_raw(&self) -> &RawEvent {
        &self.placed
    }

    /// Sets the event, waking every waiter.
    #[inline]
    pub fn set(&self) {
        self.as_raw().set()
    }

    /// Clears it.
    #[inline]
    pub fn clear(&self) {
        self.as_raw().clear()
    }

    /// Whether it is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.as_raw().is_set()
    }

    /// Waits until it is set.
    pub fn wait(&self) {
        self.as_raw().wait(self.strategy)
    }

    /// Waits `timeout` at most (zero: only looks); returns whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.as_raw().wait_timeout(self.strategy, timeout)
    }
}
