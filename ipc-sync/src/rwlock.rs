//! [`RwLock<T>`]: a readers-writer lock between processes, robust to a dead
//! writer.

use crate::cell::DataCell;
#[cfg(doc)]
use crate::error::{LockError, LockTimeoutError, TryLockError};
use crate::handle::{handle, lock_forms};
use crate::raw::RawRwLock;
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::Placed;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Many readers or one writer, between processes (`T` shareable). Its
/// configuration is the initial value.
///
/// **Robust to a dead writer**: when a writer dies holding the lock, it is
/// released and marked dirty; readers then get [`LockError::OwnerDied`]
/// carrying a read guard (they may look at the possibly torn data), and the
/// next writer gets it with a write guard: it repairs and calls
/// [`RwLockWriteGuard::mark_consistent`], or the lock becomes
/// [`LockError::NotRecoverable`] when that guard is dropped.
///
/// **Dead readers**: read locks are also counted per process, and a writer
/// that waits on readers for a [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD)
/// releases those of dead processes (readers change nothing, so the data
/// stays consistent). A reader killed within the two instructions between
/// the lock word and its count, or beyond 32 reading processes, is not
/// recovered: give writers a timeout ([`RwLock::write_timeout`]) where that
/// matters. There is no writer preference.
///
/// ```
/// let l = multiproc_sync::RwLock::anonymous(5u64)?;
/// {
///     let a = l.read().expect("read");
///     let b = l.read().expect("read");
///     assert_eq!(*a + *b, 10);
/// }
/// *l.write().expect("write") += 1;
/// assert_eq!(*l.read().expect("read"), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RwLock<T: Shareable + Send + Sync> {
    placed: Placed<DataCell<RawRwLock, T>>,
    strategy: WaitStrategy,
}

multiproc_core::handle_constructors!(impl[T: Shareable + Send + Sync] RwLock<T>, "rwlock");
handle!(impl[T: Shareable + Send + Sync] RwLock<T>, DataCell<RawRwLock, T>, "rwlock");

impl<T: Shareable + Send + Sync> std::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RwLock")
            .field("segment", &self.placed.segment().name())
            .field("readers", &self.raw().readers())
            .field("write_locked", &self.raw().is_write_locked())
            .finish_non_exhaustive()
    }
}

type Read<'a, T> = RwLockReadGuard<'a, T>;
type Write<'a, T> = RwLockWriteGuard<'a, T>;

impl<T: Shareable + Send + Sync> RwLock<T> {
    /// The raw lock word.
    pub fn raw(&self) -> &RawRwLock {
        &self.placed.lock
    }

    fn read_guard(&self, _consistent: bool) -> Read<'_, T> {
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    fn write_guard(&self, consistent: bool) -> Write<'_, T> {
        RwLockWriteGuard {
            lock: self,
            consistent,
            _not_send: PhantomData,
        }
    }

    lock_forms! {
        read_guard -> Read<'_, T>:
        /// Takes a read lock, waiting as long as it takes.
        ///
        /// # Errors
        /// [`LockError::OwnerDied`] (a writer died; the read guard is
        /// carried), [`LockError::NotRecoverable`],
        /// [`LockError::WouldDeadlock`] (this thread holds the write lock),
        /// [`LockError::UnknownIdentity`] (this process cannot learn the
        /// identity a holder records; not locked).
        read => read,
        /// Tries once to take a read lock.
        ///
        /// # Errors
        /// As [`RwLock::read`], and [`TryLockError::WouldBlock`].
        try_read => try_read,
        /// Takes a read lock, waiting `timeout` at most (zero: one try).
        ///
        /// # Errors
        /// As [`RwLock::read`], and [`LockTimeoutError::TimedOut`] (or
        /// [`LockTimeoutError::WouldBlock`] for a zero timeout).
        read_timeout => read_timeout
    }

    lock_forms! {
        write_guard -> Write<'_, T>:
        /// Takes the write lock, waiting as long as it takes.
        ///
        /// # Errors
        /// [`LockError::OwnerDied`] (a writer died; repair through the
        /// carried guard), [`LockError::NotRecoverable`],
        /// [`LockError::WouldDeadlock`], [`LockError::UnknownIdentity`].
        write => write,
        /// Tries once to take the write lock.
        ///
        /// # Errors
        /// As [`RwLock::write`], and [`TryLockError::WouldBlock`].
        try_write => try_write,
        /// Takes the write lock, waiting `timeout` at most (zero: one try).
        ///
        /// # Errors
        /// As [`RwLock::write`], and [`LockTimeoutError::TimedOut`] (or
        /// [`LockTimeoutError::WouldBlock`] for a zero timeout).
        write_timeout => write_timeout
    }
}

/// A shared read lock on a [`RwLock`]; gives `&T`.
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: Shareable + Send + Sync> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Shareable + Send + Sync> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held: no writer can hold a `&mut T`.
        unsafe { &*self.lock.placed.value() }
    }
}

impl<T: Shareable + Send + Sync> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        let _ = self.lock.raw().read_unlock(&OsJudge);
    }
}

/// The write lock on a [`RwLock`]; gives `&mut T`.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: Shareable + Send + Sync> {
    lock: &'a RwLock<T>,
    consistent: bool,
    _not_send: PhantomData<*const ()>,
}

impl<T: Shareable + Send + Sync> RwLockWriteGuard<'_, T> {
    /// Declares the data repaired after [`LockError::OwnerDied`].
    pub fn mark_consistent(&mut self) {
        self.consistent = true;
    }

    /// Forgets the guard without unlocking (for recovery tests: the lock
    /// stays held until this thread or process is found dead).
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

impl<T: Shareable + Send + Sync> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held: this guard is the only access.
        unsafe { &*self.lock.placed.value() }
    }
}

impl<T: Shareable + Send + Sync> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes it unique.
        unsafe { &mut *self.lock.placed.value() }
    }
}

impl<T: Shareable + Send + Sync> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw().write_unlock_held(self.consistent);
    }
}
