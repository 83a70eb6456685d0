//! [`Condvar`] between processes, used with a [`Mutex`] guard.

use crate::error::LockError;
use crate::mutex::{Mutex, MutexGuard};
use crate::raw::{deadline_after, RawCondvar};
use crate::shm::{common_methods, RawObject, Shared};
use crate::Error;
use ipc_core::header::layout_hash;
use ipc_core::wait::WaitStrategy;
use ipc_core::{Kind, Segment, Shareable};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl RawObject for RawCondvar {
    const KIND: Kind = Kind::new(
        "ipc-sync/condvar",
        1,
        layout_hash(&[RawCondvar::memory_size() as u64, 4]),
    );
    fn check_object(&self) -> Result<(), Error> {
        self.check()
    }
}

/// Whether a timed wait returned because its timeout passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout passed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// The result of a condvar wait: the guard back, or the mutex's lock error
/// when relocking found a dead owner (carrying the guard) or an
/// unrecoverable mutex.
pub type WaitResult<'a, T, R> = Result<R, LockError<MutexGuard<'a, T>>>;

/// A condition variable shared between processes (Python's `Condition`,
/// Rust's `Condvar`), built on a futex sequence counter, never on
/// `pthread_cond_t`.
///
/// Use it with a guard of a [`Mutex`] in shared memory. A waiter spins by
/// the handle's [`WaitStrategy`] before it sleeps. Spurious wake-ups
/// may happen: wait in a loop, or use [`Condvar::wait_while`]. A waiter that
/// dies leaves no state that blocks notifiers or other waiters.
///
/// Relocking after the wait goes through the robust mutex, so a wait can
/// return [`LockError::OwnerDied`] (carrying the guard) like a lock does.
/// Waiting with a guard that was not marked consistent after `OwnerDied`
/// makes the mutex unrecoverable, as dropping that guard would.
///
/// ```
/// use ipc_sync::{Condvar, Mutex};
/// let m = Mutex::anonymous(0u32)?;
/// let cv = Condvar::anonymous()?;
/// let g = m.lock().expect("lock");
/// let (g, r) = cv
///     .wait_timeout(g, std::time::Duration::from_millis(1))
///     .expect("relock");
/// assert!(r.timed_out() || *g == 0);
/// cv.notify_all();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Condvar {
    inner: Shared<RawCondvar>,
    strategy: WaitStrategy,
}

impl std::fmt::Debug for Condvar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condvar")
            .field("waiters", &self.inner.get().waiters())
            .finish_non_exhaustive()
    }
}

common_methods!(Condvar, "condition variable");

impl Condvar {
    fn from_shared(inner: Shared<RawCondvar>) -> Self {
        Condvar {
            inner,
            strategy: WaitStrategy::ADAPTIVE,
        }
    }

    /// Creates one in a new named segment.
    pub fn create(name: &str) -> Result<Self, Error> {
        Ok(Self::from_shared(Shared::create(
            Some(name),
            RawCondvar::reset,
        )?))
    }

    /// Creates one in an anonymous segment.
    pub fn anonymous() -> Result<Self, Error> {
        Ok(Self::from_shared(Shared::create(None, RawCondvar::reset)?))
    }

    /// Initializes one at `offset` of any segment.
    pub fn init_at(seg: Arc<Segment>, offset: u64) -> Result<Self, Error> {
        Ok(Self::from_shared(Shared::init_at(
            seg,
            offset,
            |r: &RawCondvar| {
                r.reset();
                Ok(())
            },
        )?))
    }

    fn wait_deadline<'a, T: Shareable>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> WaitResult<'a, T, (MutexGuard<'a, T>, WaitTimeoutResult)> {
        let raw = self.inner.get();
        let key = raw.prepare_wait();
        let (mutex, consistent): (&'a Mutex<T>, bool) = guard.into_parts();
        if consistent {
            mutex.raw().unlock_held();
        } else {
            mutex.raw().make_not_recoverable();
        }
        let notified = raw.park(self.strategy, key, deadline);
        let g = mutex.convert(mutex.raw().lock(mutex_strategy(mutex)))?;
        Ok((g, WaitTimeoutResult(!notified)))
    }

    /// Unlocks the guard's mutex, sleeps until notified, relocks.
    ///
    /// # Errors
    /// Those of [`Mutex::lock`] when relocking.
    pub fn wait<'a, T: Shareable>(
        &self,
        guard: MutexGuard<'a, T>,
    ) -> WaitResult<'a, T, MutexGuard<'a, T>> {
        self.wait_deadline(guard, None).map(|(g, _)| g)
    }

    /// As [`Condvar::wait`], for `timeout` at most (zero: unlocks, relocks).
    pub fn wait_timeout<'a, T: Shareable>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> WaitResult<'a, T, (MutexGuard<'a, T>, WaitTimeoutResult)> {
        self.wait_deadline(guard, deadline_after(timeout))
    }

    /// Waits while `condition` holds on the protected value.
    pub fn wait_while<'a, T: Shareable>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> WaitResult<'a, T, MutexGuard<'a, T>> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Waits while `condition` holds, for `timeout` at most; the result says
    /// whether the timeout passed with the condition still true.
    pub fn wait_timeout_while<'a, T: Shareable>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> WaitResult<'a, T, (MutexGuard<'a, T>, WaitTimeoutResult)> {
        let deadline = deadline_after(timeout);
        loop {
            if !condition(&mut guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.wait_deadline(guard, deadline)?.0;
        }
    }

    /// Wakes one waiter (at least one if any waits; a waiter that was about
    /// to sleep may return too). No syscall when nobody waits.
    #[inline]
    pub fn notify_one(&self) {
        self.inner.get().notify_one()
    }

    /// Wakes every waiter. No syscall when nobody waits.
    #[inline]
    pub fn notify_all(&self) {
        self.inner.get().notify_all()
    }

    /// The raw condition variable in shared memory.
    pub fn as_raw(&self) -> &RawCondvar {
        self.inner.get()
    }
}

fn mutex_strategy<T: Shareable>(m: &Mutex<T>) -> WaitStrategy {
    m.strategy()
}
