//! [`ReentrantMutex<T>`]: Python's `RLock`, robust, with its data.

use crate::cell::DataCell;
#[cfg(doc)]
use crate::error::{LockError, LockTimeoutError, TryLockError};
use crate::handle::{handle, lock_forms};
use crate::raw::RawReentrantMutex;
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::Placed;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::marker::PhantomData;

/// A robust mutex its owner may lock again (Python's `RLock`); only the
/// owner unlocks (by dropping its guards). Death of the owner is reported
/// as for [`crate::Mutex`]: [`LockError::OwnerDied`] with a guard to repair
/// and [`ReentrantMutexGuard::mark_consistent`]. Its configuration is the
/// initial value.
///
/// Since one thread may hold several guards at once, a guard gives no
/// reference to the value, only copies: [`ReentrantMutexGuard::get`] and
/// [`ReentrantMutexGuard::set`] (`T: Copy`).
///
/// ```
/// let m = multiproc_sync::ReentrantMutex::anonymous(1u32)?;
/// let a = m.lock().expect("lock");
/// let b = m.lock().expect("again, same thread");
/// b.set(a.get() + 1);
/// drop(b);
/// assert_eq!(a.get(), 2);
/// assert_eq!(m.depth(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReentrantMutex<T: Shareable + Send + Sync> {
    placed: Placed<DataCell<RawReentrantMutex, T>>,
    strategy: WaitStrategy,
}

multiproc_core::handle_constructors!(impl[T: Shareable + Send + Sync] ReentrantMutex<T>, "reentrant mutex");
handle!(impl[T: Shareable + Send + Sync] ReentrantMutex<T>, DataCell<RawReentrantMutex, T>, "reentrant mutex");

impl<T: Shareable + Send + Sync> std::fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReentrantMutex")
            .field("segment", &self.placed.segment().name())
            .finish_non_exhaustive()
    }
}

type Guard<'a, T> = ReentrantMutexGuard<'a, T>;

impl<T: Shareable + Send + Sync> ReentrantMutex<T> {
    /// The raw lock.
    pub fn raw(&self) -> &RawReentrantMutex {
        &self.placed.lock
    }

    fn guard(&self, consistent: bool) -> Guard<'_, T> {
        ReentrantMutexGuard {
            mutex: self,
            consistent,
            _not_send: PhantomData,
        }
    }

    lock_forms! {
        guard -> Guard<'_, T>:
        /// Locks, or locks again if the calling thread holds it.
        ///
        /// # Errors
        /// [`LockError::OwnerDied`] (locked, carries the guard),
        /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`] when
        /// the recursion count would overflow, [`LockError::UnknownIdentity`]
        /// (this process cannot learn the identity a holder records; not
        /// locked).
        lock => lock,
        /// Tries once (again, if the calling thread holds it).
        ///
        /// # Errors
        /// As [`ReentrantMutex::lock`], and [`TryLockError::WouldBlock`].
        try_lock => try_lock,
        /// Locks, waiting `timeout` at most (zero: tries once).
        ///
        /// # Errors
        /// As [`ReentrantMutex::lock`], and [`LockTimeoutError::TimedOut`]
        /// (or [`LockTimeoutError::WouldBlock`] for a zero timeout).
        lock_timeout => lock_timeout
    }

    /// How many guards the calling thread holds (0: not the owner).
    pub fn depth(&self) -> u32 {
        self.raw().depth(&OsJudge)
    }
}

/// One level of a [`ReentrantMutex`] lock; unlocks that level on drop.
#[must_use = "the level is unlocked as soon as the guard is dropped"]
pub struct ReentrantMutexGuard<'a, T: Shareable + Send + Sync> {
    mutex: &'a ReentrantMutex<T>,
    consistent: bool,
    _not_send: PhantomData<*const ()>,
}

impl<T: Shareable + Send + Sync> ReentrantMutexGuard<'_, T> {
    /// Declares the data repaired after [`LockError::OwnerDied`].
    pub fn mark_consistent(&mut self) {
        self.consistent = true;
    }

    /// A copy of the value.
    pub fn get(&self) -> T
    where
        T: Copy,
    {
        // SAFETY: the calling thread owns the lock; no reference to the
        // value exists (guards hand out none), so a plain read is exclusive.
        unsafe { self.mutex.placed.value().read() }
    }

    /// Stores `v`.
    pub fn set(&self, v: T)
    where
        T: Copy,
    {
        // SAFETY: as in `get`: owner thread, no outstanding references.
        unsafe { self.mutex.placed.value().write(v) }
    }

    /// Stores `v` and returns the previous value.
    pub fn replace(&self, v: T) -> T
    where
        T: Copy,
    {
        let old = self.get();
        self.set(v);
        old
    }
}

impl<T: Shareable + Send + Sync> Drop for ReentrantMutexGuard<'_, T> {
    fn drop(&mut self) {
        let raw = self.mutex.raw();
        let r = if self.consistent {
            raw.unlock(&OsJudge)
        } else {
            raw.unlock_not_recoverable(&OsJudge)
        };
        if let Err(e) = r {
            log::error!("reentrant guard dropped by a thread that does not own it: {e}");
        }
    }
}
