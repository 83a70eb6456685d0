//! A manual-reset event on one futex word.
//!
//! | `state` | meaning |
//! |---|---|
//! | `0` | clear, nobody parked |
//! | `1` | set |
//! | `2` | clear, some waiter may be parked |
//!
//! `set` swaps in 1 and makes a `FUTEX_WAKE` (all) only if it replaced 2.
//! A waiter spins by its strategy, then moves 0 to 2 and sleeps while the
//! word is 2. A waiter that dies while parked leaves a 2, which costs the
//! next `set` one spare wake-up and nothing else.

use super::{deadline_after, past, raw_object, spin, tag};
use crate::primitive::{futex, ord, AtomicU32, Ordering, Site};
use multiproc_core::wait::WaitStrategy;
use std::time::{Duration, Instant};

const CLEAR: u32 = 0;
const SET: u32 = 1;
const PARKED: u32 = 2;

/// A manual-reset event over caller memory. 8 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct RawEvent {
    state: AtomicU32,
    tag: AtomicU32,
}

raw_object!(RawEvent, "ipc-sync/event", 1, size = 8, align = 4);

impl RawEvent {
    fn fresh((): ()) -> RawEvent {
        RawEvent {
            state: AtomicU32::new(CLEAR),
            tag: AtomicU32::new(tag::EVENT),
        }
    }

    pub(crate) fn check(&self) -> Result<(), multiproc_core::object::ObjectError> {
        multiproc_core::object::check_tag("event", tag::EVENT, self.tag.load(Ordering::Acquire))
    }

    /// Sets the event and wakes every waiter. No syscall unless a waiter
    /// parked.
    #[inline]
    pub fn set(&self) {
        if self.state.swap(SET, ord(Site::EventSet, Ordering::Release)) == PARKED {
            futex::wake_all(&self.state);
        }
    }

    /// Clears the event (waiters from now on wait for the next `set`).
    #[inline]
    pub fn clear(&self) {
        let _ = self
            .state
            .compare_exchange(SET, CLEAR, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether the event is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) == SET
    }

    /// Waits until the event is set.
    pub fn wait(&self, strategy: WaitStrategy) {
        let _ = self.wait_until(strategy, None);
    }

    /// Waits `timeout` at most; a zero timeout only looks. Returns whether
    /// the event was set.
    pub fn wait_timeout(&self, strategy: WaitStrategy, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return self.is_set();
        }
        self.wait_until(strategy, deadline_after(timeout))
    }

    /// Waits until `deadline` at most; returns whether the event was set.
    #[inline]
    pub fn wait_until(&self, strategy: WaitStrategy, deadline: Option<Instant>) -> bool {
        self.is_set() || self.wait_slow(strategy, deadline)
    }

    #[cold]
    fn wait_slow(&self, strategy: WaitStrategy, deadline: Option<Instant>) -> bool {
        if let Some(set) = spin(strategy, deadline, || self.is_set()) {
            return set;
        }
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s == SET {
                return true;
            }
            if past(deadline) {
                return false;
            }
            if s != PARKED
                && self
                    .state
                    .compare_exchange(s, PARKED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            futex::wait_until(&self.state, PARKED, deadline);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn set_clear_wait() {
        let e = Arc::new(RawEvent::new());
        assert!(!e.wait_timeout(WaitStrategy::ADAPTIVE, Duration::ZERO));
        assert!(!e.wait_timeout(WaitStrategy::Blocking, Duration::from_millis(5)));
        let e2 = Arc::clone(&e);
        let h = std::thread::spawn(move || e2.wait(WaitStrategy::Blocking));
        std::thread::sleep(Duration::from_millis(10));
        e.set();
        h.join().unwrap();
        assert!(e.is_set());
        e.clear();
        assert!(!e.is_set());
    }
}
