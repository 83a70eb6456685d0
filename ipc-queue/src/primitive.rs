//! What the raw ring algorithms are built on: atomics, fences, the named
//! places where a memory ordering matters, spinning and a clock. Under
//! `cfg(loom)` every one of them is loom's model instead, so that the same
//! algorithms are model-checked (`tests/loom.rs`).
//!
//! - Atomics and fences come from `std` or from loom.
//! - [`Site`]: every ordering the correctness arguments rest on is written
//!   `order(Site::X, Ordering::Release)` (or `fence(Site::X, ..)`). Outside
//!   loom that is the constant ordering, inlined away. Under loom a model may
//!   name one site to weaken for its run ([`crate::raw::model::weakened`]):
//!   the ordering becomes `Relaxed` (a fence disappears), and the model must
//!   then fail. That is how each model shows it can see the bug it is there
//!   to catch, without a second build.
//! - `spin_loop` and `yield_now` hand the turn to another model thread under
//!   loom, so that a waiting loop lets the others progress.
//! - `Instant` is a clock that, under loom, advances by [`MODEL_TICK`] per
//!   reading of each model thread: the waiting decisions that depend on time
//!   (when to check a claimer's liveness) are then the same in every
//!   execution of a schedule, as loom requires.

pub(crate) use std::sync::atomic::Ordering;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};

/// A place in a raw algorithm where a memory ordering matters: a release
/// store that publishes, an acquire load that consumes, a fence. Named so
/// that a loom model can weaken exactly one of them and check that it fails
/// (see `tests/loom.rs`); outside loom a site is only a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Site {
    /// SPSC: the producer's release store of a record header, which
    /// publishes the payload written before it.
    SpscHeaderPublish,
    /// SPSC: the consumer's release store of `head`, which gives the bytes
    /// it read back to the producer.
    SpscHeadRelease,
    /// SPSC: the release fence after the producer moved `head` past a pad
    /// for a drained consumer.
    SpscPadReleaseFence,
    /// SPSC: the consumer's acquire load of a `head` the producer moved.
    SpscHeadResync,
    /// MPMC: the producer's release store of `FULL(p)`, which publishes the
    /// message.
    MpmcPublish,
    /// MPMC: the consumer's release store of `EMPTY(p + capacity)`, which
    /// gives the slot back after reading it.
    MpmcRelease,
    /// MPMC: the recoverer's release store that finishes a dead process's
    /// claim.
    MpmcRecovered,
    /// Broadcast: the publisher's release fence between marking a slot odd
    /// and writing its payload.
    BroadcastWriteFence,
    /// Broadcast: the subscriber's acquire fence between copying a payload
    /// and reading the slot's sequence again.
    BroadcastReadFence,
}

/// The ordering to use at `site`: `ord`, or `Relaxed` while a loom model
/// weakens that site.
#[inline(always)]
pub(crate) fn order(site: Site, ord: Ordering) -> Ordering {
    #[cfg(loom)]
    if weakened::is(site) {
        return Ordering::Relaxed;
    }
    let _ = site;
    ord
}

/// A fence of `ord` at `site` (none while a loom model weakens it).
#[inline(always)]
pub(crate) fn fence(site: Site, ord: Ordering) {
    #[cfg(loom)]
    if weakened::is(site) {
        return;
    }
    let _ = site;
    #[cfg(not(loom))]
    std::sync::atomic::fence(ord);
    #[cfg(loom)]
    loom::sync::atomic::fence(ord);
}

/// A full fence at no named site (the ones that order a load after a
/// store, between the two indices of a ring).
#[inline(always)]
pub(crate) fn fence_seq_cst() {
    #[cfg(not(loom))]
    std::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// One turn of a busy-wait loop.
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// Lets another thread run.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

#[cfg(not(loom))]
pub(crate) use std::time::Instant;

/// How far the model clock moves at each reading of a model thread.
#[cfg(loom)]
pub(crate) const MODEL_TICK: std::time::Duration = std::time::Duration::from_micros(250);

/// The model clock: each model thread's readings advance by
/// [`MODEL_TICK`], so time-dependent decisions repeat exactly in every
/// execution of a schedule.
#[cfg(loom)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant(std::time::Duration);

#[cfg(loom)]
loom::thread_local! {
    static CLOCK: std::cell::Cell<std::time::Duration> =
        std::cell::Cell::new(std::time::Duration::ZERO);
}

#[cfg(loom)]
impl Instant {
    pub(crate) fn now() -> Instant {
        CLOCK.with(|c| {
            let t = c.get() + MODEL_TICK;
            c.set(t);
            Instant(t)
        })
    }

    pub(crate) fn saturating_duration_since(&self, earlier: Instant) -> std::time::Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// Which site, if any, the running loom model weakens. Model threads are
/// coroutines on the test's own thread, so a `std` thread-local set around
/// `loom::model` reaches all of them, and tests running in parallel on
/// other threads do not see it.
#[cfg(loom)]
pub(crate) mod weakened {
    use super::Site;
    use std::cell::Cell;

    std::thread_local! {
        static SITE: Cell<Option<Site>> = const { Cell::new(None) };
    }

    pub(crate) fn is(site: Site) -> bool {
        SITE.with(|s| s.get() == Some(site))
    }

    pub(crate) fn set(site: Option<Site>) -> Option<Site> {
        SITE.with(|s| s.replace(site))
    }
}
