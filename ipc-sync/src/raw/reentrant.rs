//! A robust lock its owner may take again (Python's `RLock`): the lock word
//! of [`RawMutex`], plus a recursion count that only the owner touches.
//!
//! Locking again from the owner (its thread id in the word, its record in
//! the owner fields) only counts; the last unlock releases the word. A dead
//! owner's levels are not inherited: whoever takes the lock over starts at
//! depth 1.

use super::mutex::{Me, TID_MASK};
use super::{raw_object, tag, Forever, Until, Wait};
use crate::error::{Fail, LockError, LockTimeoutError, Refused, TryLockError, UnlockError};
use crate::primitive::Ordering;
use crate::raw::{Acquired, RawMutex};
use multiproc_core::liveness::Judge;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::IdentityError;
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// A robust mutex word that its owner may lock again. Only the owner may
/// unlock. 24 bytes, align 8.
#[repr(C)]
#[derive(Debug)]
pub struct RawReentrantMutex {
    inner: RawMutex,
}

raw_object!(
    RawReentrantMutex,
    "ipc-sync/raw-reentrant-mutex",
    1,
    size = 24,
    align = 8
);

impl RawReentrantMutex {
    fn fresh((): ()) -> RawReentrantMutex {
        RawReentrantMutex {
            inner: RawMutex::with_tag(tag::REENTRANT),
        }
    }

    pub(crate) fn check(&self) -> Result<(), multiproc_core::object::ObjectError> {
        self.inner.check_tag(tag::REENTRANT, "reentrant mutex")
    }

    /// Locks (again, if the caller holds it), waiting as long as it takes.
    ///
    /// # Errors
    /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`] when the
    /// recursion count would overflow, [`LockError::UnknownIdentity`].
    pub fn lock<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
    ) -> Result<Acquired, LockError<Infallible>> {
        self.lock_with(judge, strategy, Forever)
    }

    /// Locks (again), waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`RawReentrantMutex::lock`], and [`LockTimeoutError::TimedOut`].
    pub fn lock_until<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        deadline: Instant,
    ) -> Result<Acquired, LockTimeoutError<Infallible>> {
        self.lock_with(judge, strategy, Until(deadline))
    }

    /// Locks (again), waiting `timeout` at most; zero tries once.
    ///
    /// # Errors
    /// As [`RawReentrantMutex::lock_until`], and
    /// [`LockTimeoutError::WouldBlock`] for a zero timeout.
    pub fn lock_timeout<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Result<Acquired, LockTimeoutError<Infallible>> {
        super::timed(
            timeout,
            || self.try_lock(judge),
            |d| self.lock_until(judge, strategy, d),
            || self.lock(judge, strategy),
        )
    }

    fn lock_with<J: Judge, W: Wait, E>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        wait: W,
    ) -> Result<Acquired, E>
    where
        E: Fail<Refused> + Fail<W::Expired> + Fail<IdentityError>,
    {
        if let Some(r) = self.relock(judge) {
            return r.map_err(E::fail);
        }
        let a = self.inner.lock_with(judge, strategy, wait)?;
        self.inner.count().store(1, Ordering::Relaxed);
        Ok(a)
    }

    /// Tries once (again, if the caller holds it).
    ///
    /// # Errors
    /// As [`RawReentrantMutex::lock`], and [`TryLockError::WouldBlock`].
    pub fn try_lock<J: Judge>(&self, judge: &J) -> Result<Acquired, TryLockError<Infallible>> {
        if let Some(r) = self.relock(judge) {
            return r.map_err(TryLockError::fail);
        }
        let a = self.inner.try_lock(judge)?;
        self.inner.count().store(1, Ordering::Relaxed);
        Ok(a)
    }

    /// `Some` when the caller holds the lock already: one more level, or
    /// `WouldDeadlock` when the count would overflow.
    fn relock<J: Judge>(&self, judge: &J) -> Option<Result<Acquired, Refused>> {
        let me = match Me::of(judge) {
            Ok(me) => me,
            Err(e) => return Some(Err(Refused::UnknownIdentity(e))),
        };
        if !self.inner.is_held_by(me) {
            return None;
        }
        let count = self.inner.count();
        Some(match count.load(Ordering::Relaxed).checked_add(1) {
            Some(n) => {
                count.store(n, Ordering::Relaxed);
                Ok(Acquired::Clean)
            }
            None => Err(Refused::WouldDeadlock),
        })
    }

    /// Undoes one lock of the owner; the last one releases the lock.
    ///
    /// # Errors
    /// [`UnlockError::NotLocked`], or [`UnlockError::NotOwner`] when another
    /// thread (or process) holds it. Nothing changes then.
    pub fn unlock<J: Judge>(&self, judge: &J) -> Result<(), UnlockError> {
        let Ok(me) = Me::of(judge) else {
            return Err(self.inner.not_ours());
        };
        let w = self.inner.word();
        self.inner.check_owner(me, w)?;
        if !self.inner.is_recorded_owner(me) {
            return Err(UnlockError::NotOwner {
                holder_tid: w & TID_MASK,
            });
        }
        let count = self.inner.count();
        let c = count.load(Ordering::Relaxed);
        if c > 1 {
            count.store(c - 1, Ordering::Relaxed);
        } else {
            count.store(0, Ordering::Relaxed);
            self.inner.unlock_held();
        }
        Ok(())
    }

    /// Releases every level and makes the lock unrecoverable.
    ///
    /// # Errors
    /// As [`RawReentrantMutex::unlock`].
    pub fn unlock_not_recoverable<J: Judge>(&self, judge: &J) -> Result<(), UnlockError> {
        self.inner.unlock_not_recoverable(judge)
    }

    /// How many times the caller holds it (0 if it does not).
    pub fn depth<J: Judge>(&self, judge: &J) -> u32 {
        if self.inner.is_held_by_current_thread(judge) {
            self.inner.count().load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether the calling thread holds it.
    pub fn is_held_by_current_thread<J: Judge>(&self, judge: &J) -> bool {
        self.inner.is_held_by_current_thread(judge)
    }

    /// Whether it was made unrecoverable.
    pub fn is_not_recoverable(&self) -> bool {
        self.inner.is_not_recoverable()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use multiproc_core::liveness::OsJudge;
    use std::sync::Arc;

    const J: &OsJudge = &OsJudge;

    #[test]
    fn reentrant_counts_and_refuses_strangers() {
        let m = Arc::new(RawReentrantMutex::new());
        assert_eq!(m.unlock(J), Err(UnlockError::NotLocked));
        for _ in 0..3 {
            assert_eq!(m.try_lock(J).ok(), Some(Acquired::Clean));
        }
        assert_eq!(m.depth(J), 3);
        let m2 = Arc::clone(&m);
        let r = std::thread::spawn(move || {
            (
                m2.unlock(J),
                m2.try_lock(J).map_err(|e| format!("{e:?}")),
                m2.depth(J),
            )
        })
        .join()
        .unwrap();
        assert!(matches!(r.0, Err(UnlockError::NotOwner { .. })));
        assert_eq!(r.1, Err("WouldBlock".to_string()));
        assert_eq!(r.2, 0);
        for _ in 0..3 {
            m.unlock(J).unwrap();
        }
        assert_eq!(m.unlock(J), Err(UnlockError::NotLocked));
    }
}
