//! How long a raw wait may last, and what it says when it runs out: the
//! limit decides the error type, so a wait without end cannot return a
//! timeout, nor a single try a `TimedOut`.

use crate::error::{LockError, LockTimeoutError, TimedOut, TryLockError, WouldBlock};
use multiproc_core::wait::{Backoff, Phase, WaitStrategy};
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// A limit on one wait.
pub(crate) trait Wait: Copy {
    /// What a wait that ran out reports.
    type Expired;
    /// The instant the wait ends, if any (for the futex timeout).
    fn deadline(&self) -> Option<Instant>;
    /// `Some` once the wait has run out (reads the clock if it has a
    /// deadline).
    fn expired(&self) -> Option<Self::Expired>;
}

/// No limit: waits as long as it takes.
#[derive(Clone, Copy)]
pub(crate) struct Forever;

impl Wait for Forever {
    type Expired = Infallible;
    #[inline]
    fn deadline(&self) -> Option<Instant> {
        None
    }
    #[inline]
    fn expired(&self) -> Option<Infallible> {
        None
    }
}

/// Waits until an instant.
#[derive(Clone, Copy)]
pub(crate) struct Until(pub(crate) Instant);

impl Wait for Until {
    type Expired = TimedOut;
    fn deadline(&self) -> Option<Instant> {
        Some(self.0)
    }
    fn expired(&self) -> Option<TimedOut> {
        (Instant::now() >= self.0).then_some(TimedOut)
    }
}

/// One try, no wait.
#[derive(Clone, Copy)]
pub(crate) struct Once;

impl Wait for Once {
    type Expired = WouldBlock;
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn expired(&self) -> Option<WouldBlock> {
        Some(WouldBlock)
    }
}

/// `now + timeout`, or `None` (no limit) when that overflows.
#[inline]
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Whether `deadline` has passed.
#[inline]
pub(crate) fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// The earlier of `deadline` and `now + period`.
#[inline]
pub(crate) fn next_wake(deadline: Option<Instant>, period: Duration) -> Instant {
    let p = Instant::now() + period;
    match deadline {
        Some(d) if d < p => d,
        _ => p,
    }
}

/// The spin-and-yield phase of a wait, by `strategy`: `Some(true)` once
/// `ready`, `Some(ready())` once `deadline` passed (looked at every 64
/// snoozes), `None` when it is time to park on a futex.
#[inline]
pub(crate) fn spin(
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> bool,
) -> Option<bool> {
    let mut backoff = Backoff::new(strategy);
    let mut spins: u32 = 0;
    loop {
        if ready() {
            return Some(true);
        }
        if backoff.snooze() != Phase::Retry {
            return None;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) && past(deadline) {
            return Some(ready());
        }
    }
}

/// A lock of `timeout`: a zero timeout is one try (`once`), one too long to
/// name has no limit (`forever`), any other a deadline (`until`).
pub(crate) fn timed<A, G>(
    timeout: Duration,
    once: impl FnOnce() -> Result<A, TryLockError<G>>,
    until: impl FnOnce(Instant) -> Result<A, LockTimeoutError<G>>,
    forever: impl FnOnce() -> Result<A, LockError<G>>,
) -> Result<A, LockTimeoutError<G>> {
    if timeout.is_zero() {
        return once().map_err(Into::into);
    }
    match deadline_after(timeout) {
        Some(d) => until(d),
        None => forever().map_err(Into::into),
    }
}
