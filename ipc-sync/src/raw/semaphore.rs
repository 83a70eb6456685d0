//! A counting semaphore on one futex word.
//!
//! `value` is the number of free permits and the futex word waiters sleep
//! on (while it is 0). `waiters` counts threads parked or about to park; a
//! release makes a `FUTEX_WAKE` only when it is non-zero. The two sides pair
//! up with sequentially consistent read-modify-writes (a Dekker pair): the
//! releaser bumps `value` then reads `waiters`, the waiter bumps `waiters`
//! then reads `value`, so at least one of them sees the other.
//!
//! **Permits of a dead process**: a permit is a number, not a record of who
//! took it, so permits held by a process that dies are lost (the value stays
//! lower for ever), exactly as with a POSIX `sem_t`. A waiter that dies while
//! parked leaves `waiters` one too high, which only costs later releases one
//! spare `FUTEX_WAKE` each; nobody is wedged.

use super::{deadline_after, past, raw_object, spin, tag};
use crate::error::ReleaseError;
use crate::primitive::{futex, ord, AtomicU32, Ordering, Site};
use multiproc_core::object::ObjectError;
use multiproc_core::wait::WaitStrategy;
use std::time::{Duration, Instant};

/// The bound of a semaphore without one.
const UNBOUNDED: u32 = u32::MAX;

/// A counting semaphore over caller memory (without a bound: releases stop
/// only at `u32::MAX`). 16 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct RawSemaphore {
    value: AtomicU32,
    waiters: AtomicU32,
    bound: AtomicU32,
    tag: AtomicU32,
}

/// A semaphore whose releases stop at a bound (Python's
/// `BoundedSemaphore`): a [`RawSemaphore`] with a bound below `u32::MAX`,
/// under a segment kind of its own. Dereferences to the semaphore.
#[repr(transparent)]
#[derive(Debug)]
pub struct RawBoundedSemaphore(RawSemaphore);

raw_object!(
    RawSemaphore,
    "ipc-sync/semaphore",
    1,
    size = 16,
    align = 4,
    config = u32
);
raw_object!(
    RawBoundedSemaphore,
    "ipc-sync/bounded-semaphore",
    1,
    size = 16,
    align = 4,
    config = (u32, u32)
);

impl std::ops::Deref for RawBoundedSemaphore {
    type Target = RawSemaphore;
    fn deref(&self) -> &RawSemaphore {
        &self.0
    }
}

impl RawBoundedSemaphore {
    /// A semaphore holding `value` permits that releases may not raise
    /// above `bound`.
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`] if `value > bound` or `bound` is
    /// `u32::MAX` (that is an unbounded [`RawSemaphore`]).
    pub fn new(value: u32, bound: u32) -> Result<RawBoundedSemaphore, ObjectError> {
        Self::validate(&(value, bound))?;
        Ok(Self::fresh((value, bound)))
    }

    fn fresh((value, bound): (u32, u32)) -> RawBoundedSemaphore {
        RawBoundedSemaphore(RawSemaphore::with_bound(value, bound))
    }

    fn check(&self) -> Result<(), ObjectError> {
        self.0.check_bound(true)
    }

    fn validate(&(value, bound): &(u32, u32)) -> Result<(), ObjectError> {
        if bound == UNBOUNDED {
            return Err(super::invalid(
                "bounded semaphore",
                "the bound must be below u32::MAX",
            ));
        }
        if value > bound {
            return Err(super::invalid(
                "bounded semaphore",
                "the initial value is above the bound",
            ));
        }
        Ok(())
    }

    /// The bound.
    pub fn bound(&self) -> u32 {
        self.0.bound.load(Ordering::Relaxed)
    }
}

impl RawSemaphore {
    /// A semaphore holding `value` permits.
    pub fn new(value: u32) -> RawSemaphore {
        Self::with_bound(value, UNBOUNDED)
    }

    fn with_bound(value: u32, bound: u32) -> RawSemaphore {
        RawSemaphore {
            value: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
            bound: AtomicU32::new(bound),
            tag: AtomicU32::new(tag::SEMAPHORE),
        }
    }

    fn fresh(value: u32) -> RawSemaphore {
        Self::new(value)
    }

    fn validate(_: &u32) -> Result<(), ObjectError> {
        Ok(())
    }

    fn check(&self) -> Result<(), ObjectError> {
        self.check_bound(false)
    }

    /// Checks the tag, and that the bound is there (or not) as expected.
    fn check_bound(&self, bounded: bool) -> Result<(), ObjectError> {
        multiproc_core::object::check_tag(
            "semaphore",
            tag::SEMAPHORE,
            self.tag.load(Ordering::Acquire),
        )?;
        match (bounded, self.bound.load(Ordering::Relaxed) == UNBOUNDED) {
            (false, false) => Err(super::corrupt(
                "semaphore",
                "it is bounded: open it as a BoundedSemaphore".into(),
            )),
            (true, true) => Err(super::corrupt(
                "bounded semaphore",
                "it has no bound: open it as a Semaphore".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Takes a permit if one is free, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            match self.value.compare_exchange_weak(
                v,
                v - 1,
                ord(Site::SemaphoreAcquire, Ordering::Acquire),
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes a permit, waiting as long as it takes.
    #[inline]
    pub fn acquire(&self, strategy: WaitStrategy) {
        let _ = self.acquire_until(strategy, None);
    }

    /// Takes a permit, waiting `timeout` at most; a zero timeout tries once.
    /// Returns whether it got one.
    pub fn acquire_timeout(&self, strategy: WaitStrategy, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return self.try_acquire();
        }
        self.acquire_until(strategy, deadline_after(timeout))
    }

    /// Takes a permit, waiting until `deadline` at most (`None`: no limit).
    #[inline]
    pub fn acquire_until(&self, strategy: WaitStrategy, deadline: Option<Instant>) -> bool {
        self.try_acquire() || self.acquire_slow(strategy, deadline)
    }

    #[cold]
    fn acquire_slow(&self, strategy: WaitStrategy, deadline: Option<Instant>) -> bool {
        if let Some(got) = spin(strategy, deadline, || self.try_acquire()) {
            return got;
        }
        loop {
            if self.try_acquire() {
                return true;
            }
            if past(deadline) {
                return self.try_acquire();
            }
            self.waiters.fetch_add(1, Ordering::SeqCst);
            if self.value.load(Ordering::SeqCst) == 0 {
                futex::wait_until(&self.value, 0, deadline);
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Adds a permit and wakes one waiter, if any.
    ///
    /// # Errors
    /// [`ReleaseError`] when the count is at its bound (a bounded
    /// semaphore's, or `u32::MAX`); nothing changes then.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        let bound = self.bound.load(Ordering::Relaxed);
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            if v >= bound {
                return Err(ReleaseError { bound });
            }
            match self
                .value
                .compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex::wake(&self.value, 1);
        }
        Ok(())
    }

    /// The number of free permits right now (may change at any moment).
    pub fn value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }

    /// How many waiters are announced (parked or about to park; a waiter
    /// that died parked stays counted).
    pub fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_bounds_and_times_out() {
        assert!(RawBoundedSemaphore::new(3, 2).is_err());
        assert!(RawBoundedSemaphore::new(3, u32::MAX).is_err());
        let s = RawBoundedSemaphore::new(1, 2).unwrap();
        assert!(s.try_acquire());
        assert!(!s.try_acquire());
        assert!(!s.acquire_timeout(WaitStrategy::ADAPTIVE, Duration::ZERO));
        assert!(!s.acquire_timeout(WaitStrategy::Blocking, Duration::from_millis(5)));
        s.release().unwrap();
        s.release().unwrap();
        assert_eq!(s.release(), Err(ReleaseError { bound: 2 }));
        assert_eq!(s.value(), 2);
        let u = RawSemaphore::new(u32::MAX - 1);
        u.release().unwrap();
        assert_eq!(u.release(), Err(ReleaseError { bound: u32::MAX }));
    }

    #[test]
    fn a_release_wakes_a_parked_thread() {
        let s = Arc::new(RawSemaphore::new(0));
        let s2 = Arc::clone(&s);
        let h = std::thread::spawn(move || s2.acquire(WaitStrategy::Blocking));
        std::thread::sleep(Duration::from_millis(10));
        s.release().unwrap();
        h.join().unwrap();
        assert_eq!(s.value(), 0);
    }
}
