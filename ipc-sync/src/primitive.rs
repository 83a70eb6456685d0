//! The atomics and futex calls every raw algorithm is built on, switched to
//! loom's models under `cfg(loom)` so that the same code is model-checked
//! (crossbeam's `primitive` module does the same).
//!
//! Under loom a futex wait yields to the model scheduler and returns as a
//! timeout (the caller re-checks its word and, as after a real timeout,
//! asks its [`Judge`](multiproc_core::liveness::Judge) about the holder), and a
//! wake does nothing: a waiter never depends on being woken, only on
//! re-checking, which is the property the real futex protocol must have.
//!
//! [`ord`] names the orderings that the loom negative controls weaken on
//! purpose (see [`Site`]); outside loom it is the identity, and costs
//! nothing.

pub(crate) use std::sync::atomic::Ordering;

#[cfg(not(loom))]
pub(crate) use multiproc_core::futex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};

/// An ordering that a loom negative control may weaken to `Relaxed`, to
/// prove that the models notice when it is too weak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
pub enum Site {
    /// The `Acquire` of the mutex's uncontended lock `CAS`.
    MutexAcquire,
    /// The `Release` of the mutex's unlock `swap`.
    MutexRelease,
    /// The `Release` that publishes the mutex holder's process with its tid.
    MutexRecord,
    /// The `Release` of the event's `set`.
    EventSet,
    /// The `Acquire` of a semaphore permit's `CAS`.
    SemaphoreAcquire,
}

/// `order`, or `Relaxed` where a loom negative control weakened `site`.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) const fn ord(_site: Site, order: Ordering) -> Ordering {
    order
}

/// `order`, or `Relaxed` where a loom negative control weakened `site`.
#[cfg(loom)]
#[inline]
pub(crate) fn ord(site: Site, order: Ordering) -> Ordering {
    if weaken::is(site) {
        Ordering::Relaxed
    } else {
        order
    }
}

/// The knob of the negative controls: per test thread (loom runs a model's
/// threads as coroutines on the thread of the test), so concurrent tests do
/// not see each other's.
#[cfg(loom)]
pub(crate) mod weaken {
    use super::Site;
    use std::cell::Cell;

    std::thread_local! {
        static WEAK: Cell<Option<Site>> = const { Cell::new(None) };
    }

    pub(crate) fn set(site: Option<Site>) {
        WEAK.with(|w| w.set(site));
    }

    pub(crate) fn is(site: Site) -> bool {
        WEAK.with(|w| w.get() == Some(site))
    }
}

#[cfg(loom)]
pub(crate) mod futex {
    use loom::sync::atomic::{AtomicU32, Ordering};
    pub(crate) use multiproc_core::futex::WaitOutcome;
    use std::time::Instant;

    pub(crate) fn wait_until(
        word: &AtomicU32,
        expected: u32,
        _deadline: Option<Instant>,
    ) -> WaitOutcome {
        if word.load(Ordering::SeqCst) != expected {
            return WaitOutcome::ValueChanged;
        }
        loom::thread::yield_now();
        WaitOutcome::TimedOut
    }

    pub(crate) fn wake(_word: &AtomicU32, _n: u32) -> usize {
        0
    }

    pub(crate) fn wake_all(_word: &AtomicU32) -> usize {
        0
    }
}
