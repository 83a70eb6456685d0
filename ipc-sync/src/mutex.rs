//! [`Mutex<T>`]: a robust process-shared mutex with its data.

use crate::cell::{DataCell, MutexLock};
use crate::error::{guarded, LockError, LockTimeoutError, TryLockError};
use crate::handle::handle;
use crate::raw::{Acquired, RawMutex};
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::Placed;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// A robust mutex shared between processes, protecting a `T`.
///
/// It lives in shared memory: in a segment of its own, named
/// ([`Mutex::create`], [`Mutex::open`]) or anonymous ([`Mutex::anonymous`],
/// for children started by fork, or given the handle in their arguments
/// ([`Process::start`](multiproc_core::Process::start)) or the descriptor
/// ([`Mutex::from_fd`])), or at an offset of any segment
/// ([`Mutex::init_at`], [`Mutex::at`]). Its configuration is the initial
/// value.
///
/// **Robust**: when the holder dies (SIGKILL at any instruction, or a thread
/// that exits holding it), the next locker gets [`LockError::OwnerDied`],
/// which carries the guard: repair the data and call
/// [`MutexGuard::mark_consistent`]. Dropping that guard without doing so
/// makes the mutex unusable: every later lock gets
/// [`LockError::NotRecoverable`]. A dead holder is noticed within
/// [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD) by a waiter.
///
/// Uncontended `lock` + `unlock` is one `CAS` and one `swap` on a shared
/// word, no syscall. Waiting follows the [`WaitStrategy`] (default
/// [`WaitStrategy::ADAPTIVE`]). Not reentrant: locking it again from the
/// holding thread is [`LockError::WouldDeadlock`].
///
/// The second parameter is the raw lock: [`RawMutex`], or for the mutex of
/// a [`Value`](crate::Value), [`ValueLock`](crate::ValueLock).
///
/// ```
/// let m = multiproc_sync::Mutex::anonymous(0u64)?;
/// *m.lock().expect("lock") += 1;
/// assert_eq!(*m.lock().expect("lock"), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mutex<T: Shareable + Send + Sync, L: MutexLock = RawMutex> {
    placed: Placed<DataCell<L, T>>,
    strategy: WaitStrategy,
}

multiproc_core::handle_constructors!(impl[T: Shareable + Send + Sync] Mutex<T>, "mutex");
handle!(impl[T: Shareable + Send + Sync, L: MutexLock] Mutex<T, L>, DataCell<L, T>, "mutex");

impl<T: Shareable + Send + Sync, L: MutexLock> std::fmt::Debug for Mutex<T, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex")
            .field("segment", &self.placed.segment().name())
            .field("offset", &self.placed.offset())
            .field("locked", &self.raw().is_locked())
            .finish_non_exhaustive()
    }
}

impl<T: Shareable + Send + Sync, L: MutexLock> Mutex<T, L> {
    /// The raw lock word.
    #[inline]
    pub fn raw(&self) -> &RawMutex {
        self.placed.lock.raw()
    }

    #[inline]
    pub(crate) fn guard(&self, consistent: bool) -> MutexGuard<'_, T, L> {
        MutexGuard {
            mutex: self,
            consistent,
            _not_send: PhantomData,
        }
    }

    /// Locks, waiting as long as it takes.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (locked; carries the guard),
    /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`],
    /// [`LockError::UnknownIdentity`] (this process cannot learn the identity
    /// a holder records; not locked).
    #[inline]
    pub fn lock(&self) -> Result<MutexGuard<'_, T, L>, LockError<MutexGuard<'_, T, L>>> {
        let r = self.raw().lock(&OsJudge, self.strategy);
        if let Ok(Acquired::Clean) = r {
            return Ok(self.guard(true));
        }
        guarded(r, |c| self.guard(c))
    }

    /// Tries once; a held lock is [`TryLockError::WouldBlock`] (after
    /// checking that its holder is alive).
    ///
    /// # Errors
    /// As [`Mutex::lock`], and [`TryLockError::WouldBlock`].
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T, L>, TryLockError<MutexGuard<'_, T, L>>> {
        guarded(self.raw().try_lock(&OsJudge), |c| self.guard(c))
    }

    /// Locks, waiting `timeout` at most; a zero timeout tries once.
    ///
    /// # Errors
    /// As [`Mutex::lock`], and [`LockTimeoutError::TimedOut`] (or
    /// [`LockTimeoutError::WouldBlock`] for a zero timeout).
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<MutexGuard<'_, T, L>, LockTimeoutError<MutexGuard<'_, T, L>>> {
        guarded(
            self.raw().lock_timeout(&OsJudge, self.strategy, timeout),
            |c| self.guard(c),
        )
    }

    /// Whether the mutex is held right now (by anyone).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Whether a dead owner's data was left unrepaired.
    pub fn is_not_recoverable(&self) -> bool {
        self.raw().is_not_recoverable()
    }
}

/// Holds a [`Mutex`] locked; unlocks on drop. Gives `&T` and `&mut T`.
///
/// Not `Send`: the lock belongs to the thread that took it.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: Shareable + Send + Sync, L: MutexLock = RawMutex> {
    mutex: &'a Mutex<T, L>,
    consistent: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing `&MutexGuard` only hands out `&T` (`T: Sync`).
unsafe impl<T: Shareable + Send + Sync, L: MutexLock> Sync for MutexGuard<'_, T, L> {}

impl<'a, T: Shareable + Send + Sync, L: MutexLock> MutexGuard<'a, T, L> {
    /// Declares the data repaired after [`LockError::OwnerDied`]; the mutex
    /// stays usable after this guard is dropped.
    pub fn mark_consistent(&mut self) {
        self.consistent = true;
    }

    /// Whether the data counts as consistent (false between `OwnerDied` and
    /// [`MutexGuard::mark_consistent`]).
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }

    /// The mutex this guard holds.
    pub fn mutex(&self) -> &'a Mutex<T, L> {
        self.mutex
    }

    /// Forgets the guard without unlocking: the lock stays held by this
    /// thread, as if it had died holding it once it exits. For recovery tests.
    pub fn leak(self) {
        std::mem::forget(self);
    }

    /// Releases the lock without dropping the guard's borrow (a condition
    /// variable unlocks for its wait): unlocked if consistent, made not
    /// recoverable if not. Returns the mutex.
    pub(crate) fn release(self) -> &'a Mutex<T, L> {
        let mutex = self.mutex;
        drop(self);
        mutex
    }
}

impl<T: Shareable + Send + Sync, L: MutexLock> Deref for MutexGuard<'_, T, L> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other guard accesses the
        // value; the cell outlives the guard (borrowed from the mutex).
        unsafe { &*self.mutex.placed.value() }
    }
}

impl<T: Shareable + Send + Sync, L: MutexLock> DerefMut for MutexGuard<'_, T, L> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { &mut *self.mutex.placed.value() }
    }
}

impl<T: Shareable + Send + Sync, L: MutexLock> Drop for MutexGuard<'_, T, L> {
    #[inline]
    fn drop(&mut self) {
        if self.consistent {
            self.mutex.raw().unlock_held();
        } else {
            self.mutex.raw().make_not_recoverable();
        }
    }
}

impl<T: Shareable + Send + Sync + std::fmt::Debug, L: MutexLock> std::fmt::Debug
    for MutexGuard<'_, T, L>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}
