//! [`ReentrantMutex<T>`]: Python's `RLock`, robust, with its data.

use crate::error::{LockError, OwnerDied};
use crate::mutex::value_layout;
use crate::raw::{check_tag, tag, Acquired, RawLockError, RawReentrantMutex};
use crate::{shm, Error};
use ipc_core::header::layout_hash;
use ipc_core::wait::WaitStrategy;
use ipc_core::{Kind, Segment, Shareable};
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The shared state of a [`ReentrantMutex<T>`].
#[repr(C)]
pub struct ReentrantCell<T> {
    raw: RawReentrantMutex,
    layout: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: `#[repr(C)]` of `Shareable` parts; no pointers, no drop glue.
unsafe impl<T: Shareable> Shareable for ReentrantCell<T> {}

/// A robust mutex its owner may lock again (Python's `RLock`); only the
/// owner unlocks (by dropping its guards). Death of the owner is reported
/// as for [`crate::Mutex`]: [`LockError::OwnerDied`] with a guard to repair
/// and [`ReentrantMutexGuard::mark_consistent`].
///
/// Since one thread may hold several guards at once, a guard gives no
/// reference to the value, only copies: [`ReentrantMutexGuard::get`] and
/// [`ReentrantMutexGuard::set`] (`T: Copy`).
///
/// ```
/// let m = ipc_sync::ReentrantMutex::anonymous(1u32)?;
/// let a = m.lock().expect("lock");
/// let b = m.lock().expect("again, same thread");
/// b.set(a.get() + 1);
/// drop(b);
/// assert_eq!(a.get(), 2);
/// assert_eq!(m.depth(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReentrantMutex<T: Shareable> {
    seg: Arc<Segment>,
    cell: NonNull<ReentrantCell<T>>,
    strategy: WaitStrategy,
}

// SAFETY: the cell lives in the mapping `seg` keeps alive; the value is
// reached only by the lock's owner.
unsafe impl<T: Shareable + Send> Send for ReentrantMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Shareable + Send> Sync for ReentrantMutex<T> {}

impl<T: Shareable> std::fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReentrantMutex")
            .field("segment", &self.seg.name())
            .finish_non_exhaustive()
    }
}

impl<T: Shareable> ReentrantMutex<T> {
    /// The segment kind of a reentrant mutex holding a `T`.
    pub fn kind() -> Kind {
        Kind::new(
            "ipc-sync/reentrant-mutex",
            1,
            layout_hash(&[
                std::mem::size_of::<ReentrantCell<T>>() as u64,
                std::mem::align_of::<ReentrantCell<T>>() as u64,
                value_layout::<T>(),
            ]),
        )
    }

    /// The bytes a [`ReentrantCell<T>`] takes.
    pub const fn memory_size() -> usize {
        std::mem::size_of::<ReentrantCell<T>>()
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
        shm::check_align::<ReentrantCell<T>>()?;
        let mut value = Some(value);
        let seg = shm::create(Self::kind(), name, Self::memory_size(), |seg| {
            if let (Ok(c), Some(v)) = (seg.ptr_at::<ReentrantCell<T>>(0), value.take()) {
                // SAFETY: in bounds and aligned, in a mapping nobody else
                // uses before it is ready.
                unsafe { Self::init_cell(c, v) };
            }
        })?;
        Self::at(seg, 0)
    }

    /// # Safety
    /// `c` points at a valid, exclusive place for a cell.
    unsafe fn init_cell(c: NonNull<ReentrantCell<T>>, v: T) {
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
        shm::check_align::<ReentrantCell<T>>()?;
        let c = seg.ptr_at::<ReentrantCell<T>>(offset)?;
        // SAFETY: in bounds and aligned (`ptr_at`); the caller owns the place.
        unsafe { Self::init_cell(c, value) };
        Self::at(seg, offset)
    }

    /// The one initialized at `offset` of `seg` (tag and layout checked).
    pub fn at(seg: Arc<Segment>, offset: u64) -> Result<Self, Error> {
        shm::check_align::<ReentrantCell<T>>()?;
        let cell = seg.ptr_at::<ReentrantCell<T>>(offset)?;
        // SAFETY: in bounds and aligned; every bit pattern is valid.
        let c = unsafe { cell.as_ref() };
        check_tag(c.raw.tag(), tag::REENTRANT, "reentrant mutex")?;
        if c.layout.load(Ordering::Relaxed) != value_layout::<T>() {
            return Err(Error::Layout {
                what: "reentrant mutex",
                detail: "the value's size or alignment differs".into(),
            });
        }
        Ok(ReentrantMutex {
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

    fn cell(&self) -> &ReentrantCell<T> {
        // SAFETY: checked at construction; the mapping lives with `seg`.
        unsafe { self.cell.as_ref() }
    }

    /// The raw lock.
    pub fn raw(&self) -> &RawReentrantMutex {
        &self.cell().raw
    }

    fn convert(
        &self,
        r: Result<Acquired, RawLockError>,
    ) -> Result<ReentrantMutexGuard<'_, T>, LockError<ReentrantMutexGuard<'_, T>>> {
        let guard = |consistent| ReentrantMutexGuard {
            mutex: self,
            consistent,
            _not_send: PhantomData,
        };
        match r {
            Ok(Acquired::Clean) => Ok(guard(true)),
            Ok(Acquired::OwnerDied { previous }) => Err(LockError::OwnerDied(OwnerDied {
                guard: guard(false),
                previous_owner: previous,
            })),
            Err(e) => Err(crate::mutex::raw_error(e)),
        }
    }

    /// Locks, or locks again if the calling thread holds it.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (locked, carries the guard),
    /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`] when the
    /// recursion count would overflow, [`LockError::UnknownIdentity`] (this
    /// process cannot learn the identity a holder records; not locked).
    pub fn lock(
        &self,
    ) -> Result<ReentrantMutexGuard<'_, T>, LockError<ReentrantMutexGuard<'_, T>>> {
        self.convert(self.raw().lock_until(self.strategy, None))
    }

    /// Tries once.
    pub fn try_lock(
        &self,
    ) -> Result<ReentrantMutexGuard<'_, T>, LockError<ReentrantMutexGuard<'_, T>>> {
        self.convert(self.raw().try_lock())
    }

    /// Locks, waiting `timeout` at most (zero: tries once).
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ReentrantMutexGuard<'_, T>, LockError<ReentrantMutexGuard<'_, T>>> {
        if timeout.is_zero() {
            return self.try_lock();
        }
        self.convert(
            self.raw()
                .lock_until(self.strategy, crate::raw::deadline_after(timeout)),
        )
    }

    /// How many guards the calling thread holds (0: not the owner).
    pub fn depth(&self) -> u32 {
        self.raw().depth()
    }
}

/// One level of a [`ReentrantMutex`] lock; unlocks that level on drop.
#[must_use = "the level is unlocked as soon as the guard is dropped"]
pub struct ReentrantMutexGuard<'a, T: Shareable> {
    mutex: &'a ReentrantMutex<T>,
    consistent: bool,
    _not_send: PhantomData<*const ()>,
}

impl<T: Shareable> ReentrantMutexGuard<'_, T> {
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
        unsafe { self.mutex.cell().value.get().read() }
    }

    /// Stores `v`.
    pub fn set(&self, v: T)
    where
        T: Copy,
    {
        // SAFETY: as in `get`: owner thread, no outstanding references.
        unsafe { self.mutex.cell().value.get().write(v) }
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

impl<T: Shareable> Drop for ReentrantMutexGuard<'_, T> {
    fn drop(&mut self) {
        let raw = self.mutex.raw();
        let r = if self.consistent {
            raw.unlock()
        } else {
            raw.unlock_not_recoverable()
        };
        if let Err(e) = r {
            log::error!("reentrant guard dropped by a thread that does not own it: {e}");
        }
    }
}
