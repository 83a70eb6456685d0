//! [`Condvar`] between processes, used with a [`Mutex`] guard.

use crate::cell::MutexLock;
use crate::error::{guarded, LockError};
use crate::handle::handle;
use crate::mutex::{Mutex, MutexGuard};
use crate::raw::{deadline_after, RawCondvar};
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::Placed;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::time::{Duration, Instant};

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
pub type WaitResult<'a, T, R, L = crate::raw::RawMutex> =
    Result<R, LockError<MutexGuard<'a, T, L>>>;

/// A condition variable shared between processes (Python's `Condition`,
/// Rust's `Condvar`), built on a futex sequence counter, never on
/// `pthread_cond_t`. It has no configuration.
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
/// use multiproc_sync::{Condvar, Mutex};
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
    placed: Placed<RawCondvar>,
    strategy: WaitStrategy,
}

multiproc_core::handle_constructors!(impl[] Condvar, "condition variable", ());
handle!(impl[] Condvar, RawCondvar, "condition variable");

impl std::fmt::Debug for Condvar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condvar")
            .field("waiters", &self.as_raw().waiters())
            .finish_non_exhaustive()
    }
}

impl Condvar {
    /// The raw condition variable in shared memory.
    #[inline]
    pub fn as_raw(&self) -> &RawCondvar {
        &self.placed
    }

    fn wait_deadline<'a, T: Shareable + Send + Sync, L: MutexLock>(
        &self,
        guard: MutexGuard<'a, T, L>,
        deadline: Option<Instant>,
    ) -> WaitResult<'a, T, (MutexGuard<'a, T, L>, WaitTimeoutResult), L> {
        let raw = self.as_raw();
        let key = raw.prepare_wait();
        let mutex: &'a Mutex<T, L> = guard.release();
        let notified = raw.park(self.strategy, key, deadline);
        let g = guarded(mutex.raw().lock(&OsJudge, mutex.wait_strategy()), |c| {
            mutex.guard(c)
        })?;
        Ok((g, WaitTimeoutResult(!notified)))
    }

    /// Unlocks the guard's mutex, sleeps until notified, relocks.
    ///
    /// # Errors
    /// Those of [`Mutex::lock`] when relocking.
    pub fn wait<'a, T: Shareable + Send + Sync, L: MutexLock>(
        &self,
        guard: MutexGuard<'a, T, L>,
    ) -> WaitResult<'a, T, MutexGuard<'a, T, L>, L> {
        self.wait_deadline(guard, None).map(|(g, _)| g)
    }

    /// As [`Condvar::wait`], for `timeout` at most (zero: unlocks, relocks).
    ///
    /// # Errors
    /// Those of [`Mutex::lock`] when relocking.
    pub fn wait_timeout<'a, T: Shareable + Send + Sync, L: MutexLock>(
        &self,
        guard: MutexGuard<'a, T, L>,
        timeout: Duration,
    ) -> WaitResult<'a, T, (MutexGuard<'a, T, L>, WaitTimeoutResult), L> {
        self.wait_deadline(guard, deadline_after(timeout))
    }

    /// Waits while `condition` holds on the protected value.
    ///
    /// # Errors
    /// Those of [`Mutex::lock`] when relocking.
    pub fn wait_while<'a, T: Shareable + Send + Sync, L: MutexLock>(
        &self,
        mut guard: MutexGuard<'a, T, L>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> WaitResult<'a, T, MutexGuard<'a, T, L>, L> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Waits while `condition` holds, for `timeout` at most; the result says
    /// whether the timeout passed with the condition still true.
    ///
    /// # Errors
    /// Those of [`Mutex::lock`] when relocking.
    pub fn wait_timeout_while<'a, T: Shareable + Send + Sync, L: MutexLock>(
        &self,
        mut guard: MutexGuard<'a, T, L>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> WaitResult<'a, T, (MutexGuard<'a, T, L>, WaitTimeoutResult), L> {
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
        self.as_raw().notify_one()
    }

    /// Wakes every waiter. No syscall when nobody waits.
    #[inline]
    pub fn notify_all(&self) {
        self.as_raw().notify_all()
    }
}
