//! [`RwLock<T>`]: a readers-writer lock between processes, robust to a dead
//! writer.

use crate::error::{LockError, OwnerDied};
use crate::mutex::{raw_error, value_layout};
use crate::raw::{deadline_after, Acquired, RawLockError, RawRwLock};
use crate::{shm, Error};
use ipc_core::header::layout_hash;
use ipc_core::wait::WaitStrategy;
use ipc_core::{Kind, Segment, Shareable};
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The shared state of a [`RwLock<T>`].
#[repr(C)]
pub struct RwLockCell<T> {
    raw: RawRwLock,
    layout: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: `#[repr(C)]` of `Shareable` parts; no pointers, no drop glue.
unsafe impl<T: Shareable> Shareable for RwLockCell<T> {}

/// Many readers or one writer, between processes (`T` shareable).
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
/// let l = ipc_sync::RwLock::anonymous(5u64)?;
/// {
///     let a = l.read().expect("read");
///     let b = l.read().expect("read");
///     assert_eq!(*a + *b, 10);
/// }
/// *l.write().expect("write") += 1;
/// assert_eq!(*l.read().expect("read"), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RwLock<T: Shareable> {
    seg: Arc<Segment>,
    cell: NonNull<RwLockCell<T>>,
    strategy: WaitStrategy,
}

// SAFETY: the cell lives in the mapping kept alive by `seg`; access to the
// value goes through the lock (shared for readers, so `T: Sync`).
unsafe impl<T: Shareable + Send + Sync> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: Shareable + Send + Sync> Sync for RwLock<T> {}

impl<T: Shareable> std::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RwLock")
            .field("segment", &self.seg.name())
            .field("readers", &self.raw().readers())
            .field("write_locked", &self.raw().is_write_locked())
            .finish_non_exhaustive()
    }
}

type ReadResult<'a, T> = Result<RwLockReadGuard<'a, T>, LockError<RwLockReadGuard<'a, T>>>;
type WriteResult<'a, T> = Result<RwLockWriteGuard<'a, T>, LockError<RwLockWriteGuard<'a, T>>>;

impl<T: Shareable> RwLock<T> {
    /// The segment kind of an rwlock holding a `T`.
    pub fn kind() -> Kind {
        Kind::new(
            "ipc-sync/rwlock",
            1,
            layout_hash(&[
                std::mem::size_of::<RwLockCell<T>>() as u64,
                std::mem::align_of::<RwLockCell<T>>() as u64,
                value_layout::<T>(),
            ]),
        )
    }

    /// The bytes a [`RwLockCell<T>`] takes.
    pub const fn memory_size() -> usize {
        std::mem::size_of::<RwLockCell<T>>()
    }

    /// Creates one holding `value` in a new named segment.
    pub fn create(name: &str, value: T) -> Result<Self, Error> {
        Self::create_in(Some(name), value)
    }

    /// Creates one in an anonymous segment.
    pub fn anonymous(value: T) -> Result<Self, Error> {
        Self::create_in(None, value)
    }

    fn create_in(name: Option<&str>, value: T) -> Result<Self, Error> {
        shm::check_align::<RwLockCell<T>>()?;
        let mut value = Some(value);
        let seg = shm::create(Self::kind(), name, Self::memory_size(), |seg| {
            if let (Ok(c), Some(v)) = (seg.ptr_at::<RwLockCell<T>>(0), value.take()) {
                // SAFETY: in bounds and aligned, in a mapping nobody else
                // uses before it is ready.
                unsafe { Self::init_cell(c, v) };
            }
        })?;
        Self::at(seg, 0)
    }

    /// # Safety
    /// `c` points at a valid, exclusive place for a cell.
    unsafe fn init_cell(c: NonNull<RwLockCell<T>>, v: T) {
        // SAFETY: per the contract above.
        let cell = unsafe { c.as_ref() };
        cell.raw.reset();
        cell.layout.store(value_layout::<T>(), Ordering::Relaxed);
        // SAFETY: exclusive place (contract above).
        unsafe { cell.value.get().write(v) };
    }

    /// Opens a named one.
    pub fn open(name: &str) -> Result<Self, Error> {
        Self::at(shm::open(Self::kind(), name, Self::memory_size())?, 0)
    }

    /// Maps one from a descriptor.
    ///
    /// # Errors
    /// [`Error::Segment`](crate::Error::Segment) with
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed) for a
    /// descriptor not sealed against resizing (its sender could shrink it
    /// under this mapping), or a segment holding something else.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
        Self::at(shm::from_fd(fd, Self::kind(), Self::memory_size())?, 0)
    }

    /// Initializes one at `offset` of any segment; nobody may use that place
    /// meanwhile.
    pub fn init_at(seg: Arc<Segment>, offset: u64, value: T) -> Result<Self, Error> {
        shm::check_align::<RwLockCell<T>>()?;
        let c = seg.ptr_at::<RwLockCell<T>>(offset)?;
        // SAFETY: in bounds and aligned (`ptr_at`); the caller owns the place.
        unsafe { Self::init_cell(c, value) };
        Self::at(seg, offset)
    }

    /// The one initialized at `offset` of `seg` (tag and layout checked).
    pub fn at(seg: Arc<Segment>, offset: u64) -> Result<Self, Error> {
        shm::check_align::<RwLockCell<T>>()?;
        let cell = seg.ptr_at::<RwLockCell<T>>(offset)?;
        // SAFETY: in bounds and aligned; every bit pattern is valid.
        let c = unsafe { cell.as_ref() };
        c.raw.check()?;
        if c.layout.load(Ordering::Relaxed) != value_layout::<T>() {
            return Err(Error::Layout {
                what: "rwlock",
                detail: "the value's size or alignment differs".into(),
            });
        }
        Ok(RwLock {
            seg,
            cell,
            strategy: WaitStrategy::ADAPTIVE,
        })
    }

    /// The same handle with another wait strategy.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The segment holding it.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    fn cell(&self) -> &RwLockCell<T> {
        // SAFETY: checked at construction; the mapping lives with `seg`.
        unsafe { self.cell.as_ref() }
    }

    /// The raw lock word.
    pub fn raw(&self) -> &RawRwLock {
        &self.cell().raw
    }

    fn read_guard(&self, r: Result<Acquired, RawLockError>) -> ReadResult<'_, T> {
        let g = || RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        };
        match r {
            Ok(Acquired::Clean) => Ok(g()),
            Ok(Acquired::OwnerDied { previous }) => Err(LockError::OwnerDied(OwnerDied {
                guard: g(),
                previous_owner: previous,
            })),
            Err(e) => Err(raw_error(e)),
        }
    }

    fn write_guard(&self, r: Result<Acquired, RawLockError>) -> WriteResult<'_, T> {
        let g = |consistent| RwLockWriteGuard {
            lock: self,
            consistent,
            _not_send: PhantomData,
        };
        match r {
            Ok(Acquired::Clean) => Ok(g(true)),
            Ok(Acquired::OwnerDied { previous }) => Err(LockError::OwnerDied(OwnerDied {
                guard: g(false),
                previous_owner: previous,
            })),
            Err(e) => Err(raw_error(e)),
        }
    }

    /// Takes a read lock, waiting as long as it takes.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (a writer died; the read guard is carried),
    /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`] (this
    /// thread holds the write lock), [`LockError::UnknownIdentity`] (this
    /// process cannot learn the identity a holder records; not locked).
    pub fn read(&self) -> ReadResult<'_, T> {
        self.read_guard(self.raw().read_until(self.strategy, None))
    }

    /// Tries once to take a read lock ([`LockError::WouldBlock`]).
    pub fn try_read(&self) -> ReadResult<'_, T> {
        self.read_guard(self.raw().try_read())
    }

    /// Takes a read lock, waiting `timeout` at most (zero: one try).
    pub fn read_timeout(&self, timeout: Duration) -> ReadResult<'_, T> {
        self.read_guard(self.raw().read_timeout(self.strategy, timeout))
    }

    /// Takes the write lock, waiting as long as it takes.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (a writer died; repair through the carried
    /// guard), [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`],
    /// [`LockError::UnknownIdentity`].
    pub fn write(&self) -> WriteResult<'_, T> {
        self.write_guard(self.raw().write_until(self.strategy, None))
    }

    /// Tries once to take the write lock.
    pub fn try_write(&self) -> WriteResult<'_, T> {
        self.write_guard(self.raw().try_write())
    }

    /// Takes the write lock, waiting `timeout` at most (zero: one try).
    pub fn write_timeout(&self, timeout: Duration) -> WriteResult<'_, T> {
        let deadline = deadline_after(timeout);
        if timeout.is_zero() {
            return self.try_write();
        }
        self.write_guard(self.raw().write_until(self.strategy, deadline))
    }
}

/// A shared read lock on a [`RwLock`]; gives `&T`.
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: Shareable> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Shareable> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held: no writer can hold a `&mut T`.
        unsafe { &*self.lock.cell().value.get() }
    }
}

impl<T: Shareable> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        let _ = self.lock.raw().read_unlock();
    }
}

/// The write lock on a [`RwLock`]; gives `&mut T`.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: Shareable> {
    lock: &'a RwLock<T>,
    consistent: bool,
    _not_send: PhantomData<*const ()>,
}

impl<T: Shareable> RwLockWriteGuard<'_, T> {
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

impl<T: Shareable> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held: this guard is the only access.
        unsafe { &*self.lock.cell().value.get() }
    }
}

impl<T: Shareable> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes it unique.
        unsafe { &mut *self.lock.cell().value.get() }
    }
}

impl<T: Shareable> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw().write_unlock_held(self.consistent);
    }
}
