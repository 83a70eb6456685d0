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

use super::{check_ptr, check_tag, deadline_after, past, tag};
use crate::error::ReleaseError;
use crate::Error;
use ipc_core::futex;
use ipc_core::wait::{Backoff, Phase, WaitStrategy};
use ipc_core::Segment;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The bound of a semaphore without one.
pub(crate) const UNBOUNDED: u32 = u32::MAX;

/// A counting semaphore (optionally bounded) over caller memory. 16 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct RawSemaphore {
    value: AtomicU32,
    waiters: AtomicU32,
    bound: AtomicU32,
    tag: AtomicU32,
}

ipc_core::assert_layout!(RawSemaphore, size = 16, align = 4);
// SAFETY: `#[repr(C)]` of four `AtomicU32`: no padding, no pointers, every
// bit pattern a valid (if odd) state.
unsafe impl ipc_core::Shareable for RawSemaphore {}

impl RawSemaphore {
    /// A semaphore holding `value` permits; with `bound`, releases may not
    /// raise it above `bound`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `value > bound`.
    pub fn new(value: u32, bound: Option<u32>) -> Result<RawSemaphore, Error> {
        let bound = bound.unwrap_or(UNBOUNDED);
        if value > bound {
            return Err(Error::InvalidArgument(
                "the initial value is above the bound",
            ));
        }
        Ok(RawSemaphore {
            value: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
            bound: AtomicU32::new(bound),
            tag: AtomicU32::new(tag::SEMAPHORE),
        })
    }

    /// The bytes it needs (align 4).
    pub const fn memory_size() -> usize {
        std::mem::size_of::<RawSemaphore>()
    }

    /// Writes a semaphore at `ptr`.
    ///
    /// # Safety
    /// `ptr` valid for writes of [`RawSemaphore::memory_size`] bytes,
    /// aligned to 4, mapped for `'a`, unused by others meanwhile.
    pub unsafe fn init_in<'a>(
        ptr: NonNull<u8>,
        value: u32,
        bound: Option<u32>,
    ) -> Result<&'a RawSemaphore, Error> {
        let s = RawSemaphore::new(value, bound)?;
        let p = check_ptr::<RawSemaphore>(ptr.as_ptr())?;
        // SAFETY: the caller guarantees a valid, exclusive place; aligned
        // (checked).
        unsafe {
            p.as_ptr().write(s);
            Ok(p.as_ref())
        }
    }

    /// Uses a semaphore initialized at `ptr`, checking its tag.
    ///
    /// # Safety
    /// `ptr` valid for reads and writes of the size for `'a`.
    pub unsafe fn attach<'a>(ptr: NonNull<u8>) -> Result<&'a RawSemaphore, Error> {
        let p = check_ptr::<RawSemaphore>(ptr.as_ptr())?;
        // SAFETY: valid and aligned; any bit pattern is valid.
        let s = unsafe { p.as_ref() };
        s.check()?;
        Ok(s)
    }

    /// Initializes a semaphore at `offset` of `seg`.
    pub fn init_at(
        seg: &Segment,
        offset: u64,
        value: u32,
        bound: Option<u32>,
    ) -> Result<&RawSemaphore, Error> {
        let fresh = RawSemaphore::new(value, bound)?;
        let s: &RawSemaphore = seg.get(offset)?;
        s.reset_from(&fresh);
        Ok(s)
    }

    /// The semaphore at `offset` of `seg`, tag checked.
    pub fn at(seg: &Segment, offset: u64) -> Result<&RawSemaphore, Error> {
        let s: &RawSemaphore = seg.get(offset)?;
        s.check()?;
        Ok(s)
    }

    pub(crate) fn reset_from(&self, fresh: &RawSemaphore) {
        self.value
            .store(fresh.value.load(Ordering::Relaxed), Ordering::Relaxed);
        self.waiters.store(0, Ordering::Relaxed);
        self.bound
            .store(fresh.bound.load(Ordering::Relaxed), Ordering::Relaxed);
        self.tag.store(tag::SEMAPHORE, Ordering::Release);
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        check_tag(
            self.tag.load(Ordering::Acquire),
            tag::SEMAPHORE,
            "semaphore",
        )
    }

    /// Takes a permit if one is free, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
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
        let mut backoff = Backoff::new(strategy);
        let mut spins: u32 = 0;
        loop {
            if self.try_acquire() {
                return true;
            }
            if backoff.snooze() == Phase::Retry {
                spins = spins.wrapping_add(1);
                if spins % 64 == 0 && past(deadline) {
                    return self.try_acquire();
                }
                continue;
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
    /// [`ReleaseError::AboveBound`] (bounded semaphore at its bound) or
    /// [`ReleaseError::Overflow`]; nothing changes then.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        let bound = self.bound.load(Ordering::Relaxed);
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            if v >= bound {
                return Err(if bound == UNBOUNDED {
                    ReleaseError::Overflow
                } else {
                    ReleaseError::AboveBound { bound }
                });
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

    /// The bound, if the semaphore is bounded.
    pub fn bound(&self) -> Option<u32> {
        let b = self.bound.load(Ordering::Relaxed);
        (b != UNBOUNDED).then_some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_bounds_and_times_out() {
        assert!(RawSemaphore::new(3, Some(2)).is_err());
        let s = RawSemaphore::new(1, Some(2)).unwrap();
        assert!(s.try_acquire());
        assert!(!s.try_acquire());
        assert!(!s.acquire_timeout(WaitStrategy::ADAPTIVE, Duration::ZERO));
        assert!(!s.acquire_timeout(WaitStrategy::Blocking, Duration::from_millis(5)));
        s.release().unwrap();
        s.release().unwrap();
        assert_eq!(s.release(), Err(ReleaseError::AboveBound { bound: 2 }));
        assert_eq!(s.value(), 2);
        let u = RawSemaphore::new(u32::MAX - 1, None).unwrap();
        u.release().unwrap();
        assert_eq!(u.release(), Err(ReleaseError::Overflow));
    }

    #[test]
    fn a_release_wakes_a_parked_thread() {
        let s = Arc::new(RawSemaphore::new(0, None).unwrap());
        let s2 = Arc::clone(&s);
        let h = std::thread::spawn(move || s2.acquire(WaitStrategy::Blocking));
        std::thread::sleep(Duration::from_millis(10));
        s.release().unwrap();
        h.join().unwrap();
        assert_eq!(s.value(), 0);
    }
}
