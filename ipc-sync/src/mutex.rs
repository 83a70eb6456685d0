//! [`Mutex<T>`]: a robust process-shared mutex with its data.

use crate::error::{LockError, OwnerDied};
use crate::raw::{check_tag, tag, Acquired, RawLockError, RawMutex};
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

/// The shared state of a [`Mutex<T>`]: the lock word, a layout check and the
/// value. `#[repr(C)]`; place it with [`Mutex::init_at`].
#[repr(C)]
pub struct MutexCell<T> {
    raw: RawMutex,
    layout: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: `#[repr(C)]` of a `Shareable` lock word, an atomic and a
// `Shareable` value: no pointers, no drop glue, every bit pattern valid.
unsafe impl<T: Shareable> Shareable for MutexCell<T> {}
// SAFETY: the value is only reached through a guard, which holds the lock.
unsafe impl<T: Shareable + Send> Sync for MutexCell<T> {}

pub(crate) fn value_layout<T>() -> u64 {
    layout_hash(&[
        std::mem::size_of::<T>() as u64,
        std::mem::align_of::<T>() as u64,
    ])
}

impl<T: Shareable> MutexCell<T> {
    fn init(&self, value: T) {
        self.raw.reset(tag::MUTEX);
        self.layout.store(value_layout::<T>(), Ordering::Relaxed);
        // SAFETY: called before anybody else can use the cell (creation),
        // or by `init_at` whose caller owns the place; the pointer is valid.
        unsafe { self.value.get().write(value) };
    }

    fn check(&self) -> Result<(), Error> {
        check_tag(self.raw.tag(), tag::MUTEX, "mutex")?;
        if self.layout.load(Ordering::Relaxed) != value_layout::<T>() {
            return Err(Error::Layout {
                what: "mutex",
                detail: "the value's size or alignment differs".into(),
            });
        }
        Ok(())
    }
}

/// A robust mutex shared between processes, protecting a `T`.
///
/// It lives in shared memory: in a segment of its own, named
/// ([`Mutex::create`], [`Mutex::open`]) or anonymous ([`Mutex::anonymous`],
/// handed to children by fork or by descriptor, [`Mutex::from_fd`]), or at an
/// offset of any segment ([`Mutex::init_at`], [`Mutex::at`]).
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
/// ```
/// let m = ipc_sync::Mutex::anonymous(0u64)?;
/// *m.lock().expect("lock") += 1;
/// assert_eq!(*m.lock().expect("lock"), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mutex<T: Shareable> {
    seg: Arc<Segment>,
    cell: NonNull<MutexCell<T>>,
    strategy: WaitStrategy,
}

// SAFETY: the cell lives in the mapping kept alive by `seg`; every access to
// the value goes through the lock.
unsafe impl<T: Shareable + Send> Send for Mutex<T> {}
// SAFETY: as above; the lock serializes access from several threads.
unsafe impl<T: Shareable + Send> Sync for Mutex<T> {}

impl<T: Shareable> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex")
            .field("segment", &self.seg.name())
            .field("locked", &self.raw().is_locked())
            .finish_non_exhaustive()
    }
}

impl<T: Shareable> Mutex<T> {
    /// The segment kind of a mutex holding a `T`.
    pub fn kind() -> Kind {
        Kind::new(
            "ipc-sync/mutex",
            1,
            layout_hash(&[
                std::mem::size_of::<MutexCell<T>>() as u64,
                std::mem::align_of::<MutexCell<T>>() as u64,
                value_layout::<T>(),
            ]),
        )
    }

    /// The bytes a [`MutexCell<T>`] takes in a segment (align it to
    /// `align_of::<MutexCell<T>>()`).
    pub const fn memory_size() -> usize {
        std::mem::size_of::<MutexCell<T>>()
    }

    /// Creates a mutex holding `value` in a new named segment.
    ///
    /// # Errors
    /// [`Error::Segment`] (name taken by a live creator, invalid name, no
    /// space or memory), [`Error::InvalidArgument`] for a type aligned above
    /// 128.
    pub fn create(name: &str, value: T) -> Result<Self, Error> {
        Self::create_in(Some(name), value)
    }

    /// Creates a mutex in an anonymous segment, for this process and the
    /// children it forks or hands the descriptor ([`Mutex::segment`]) to.
    pub fn anonymous(value: T) -> Result<Self, Error> {
        Self::create_in(None, value)
    }

    fn create_in(name: Option<&str>, value: T) -> Result<Self, Error> {
        Self::create_kind(Self::kind(), name, value)
    }

    /// Creates a mutex in a segment of the given kind (`Value` uses its own).
    pub(crate) fn create_kind(kind: Kind, name: Option<&str>, value: T) -> Result<Self, Error> {
        shm::check_align::<MutexCell<T>>()?;
        let mut value = Some(value);
        let seg = shm::create(kind, name, Self::memory_size(), |seg| {
            if let (Ok(c), Some(v)) = (seg.ptr_at::<MutexCell<T>>(0), value.take()) {
                // SAFETY: in bounds and aligned (`ptr_at`), inside the new
                // mapping, which nobody else can use before it is ready.
                unsafe { c.as_ref() }.init(v);
            }
        })?;
        Self::at(seg, 0)
    }

    /// Opens the named mutex another process created.
    ///
    /// # Errors
    /// [`Error::Segment`]: no such name, or it holds another primitive,
    /// another value layout or another version
    /// ([`ipc_core::SegmentError::Header`]).
    pub fn open(name: &str) -> Result<Self, Error> {
        Self::open_kind(Self::kind(), name)
    }

    pub(crate) fn open_kind(kind: Kind, name: &str) -> Result<Self, Error> {
        Self::at(shm::open(kind, name, Self::memory_size())?, 0)
    }

    pub(crate) fn from_fd_kind(kind: Kind, fd: OwnedFd) -> Result<Self, Error> {
        Self::at(shm::from_fd(fd, kind, Self::memory_size())?, 0)
    }

    /// Maps a mutex's segment from a descriptor (inherited by a spawned
    /// child, or received over a socket).
    ///
    /// # Errors
    /// [`Error::Segment`](crate::Error::Segment) with
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed) for a
    /// descriptor not sealed against resizing (its sender could shrink it
    /// under this mapping), or a segment holding something else.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
        Self::at(shm::from_fd(fd, Self::kind(), Self::memory_size())?, 0)
    }

    /// Initializes a mutex holding `value` at `offset` of any segment.
    /// Nobody may use that place meanwhile.
    pub fn init_at(seg: Arc<Segment>, offset: u64, value: T) -> Result<Self, Error> {
        shm::check_align::<MutexCell<T>>()?;
        let c = seg.ptr_at::<MutexCell<T>>(offset)?;
        // SAFETY: in bounds and aligned (`ptr_at`), inside the mapping `seg`
        // keeps alive; the caller owns the place while it is initialized.
        unsafe { c.as_ref() }.init(value);
        Self::at(seg, offset)
    }

    /// The mutex initialized at `offset` of `seg`, after checking bounds,
    /// alignment, object tag and value layout.
    pub fn at(seg: Arc<Segment>, offset: u64) -> Result<Self, Error> {
        shm::check_align::<MutexCell<T>>()?;
        let cell = seg.ptr_at::<MutexCell<T>>(offset)?;
        // SAFETY: in bounds and aligned (checked by `ptr_at`), inside the
        // mapping `seg` keeps alive; every bit pattern is valid.
        unsafe { cell.as_ref() }.check()?;
        Ok(Mutex {
            seg,
            cell,
            strategy: WaitStrategy::ADAPTIVE,
        })
    }

    /// The same mutex with another wait strategy for this handle.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// This handle's wait strategy.
    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The segment holding the mutex (for its descriptor or name).
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    fn cell(&self) -> &MutexCell<T> {
        // SAFETY: checked at construction; the mapping lives as long as
        // `self.seg`.
        unsafe { self.cell.as_ref() }
    }

    /// The raw lock word.
    pub fn raw(&self) -> &RawMutex {
        &self.cell().raw
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            consistent: true,
            _not_send: PhantomData,
        }
    }

    pub(crate) fn convert(
        &self,
        r: Result<Acquired, RawLockError>,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        match r {
            Ok(Acquired::Clean) => Ok(self.guard()),
            Ok(Acquired::OwnerDied { previous }) => {
                let mut g = self.guard();
                g.consistent = false;
                Err(LockError::OwnerDied(OwnerDied {
                    guard: g,
                    previous_owner: previous,
                }))
            }
            Err(e) => Err(raw_error(e)),
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
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        let r = self.raw().lock(self.strategy);
        if let Ok(Acquired::Clean) = r {
            return Ok(self.guard());
        }
        self.convert(r)
    }

    /// Tries once; a held lock is [`LockError::WouldBlock`] (after checking
    /// that its holder is alive).
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.convert(self.raw().try_lock())
    }

    /// Locks, waiting `timeout` at most ([`LockError::TimedOut`]); a zero
    /// timeout tries once ([`LockError::WouldBlock`]).
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        self.convert(self.raw().lock_timeout(self.strategy, timeout))
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

pub(crate) fn raw_error<G>(e: RawLockError) -> LockError<G> {
    match e {
        RawLockError::NotRecoverable => LockError::NotRecoverable,
        RawLockError::WouldDeadlock => LockError::WouldDeadlock,
        RawLockError::WouldBlock => LockError::WouldBlock,
        RawLockError::TimedOut => LockError::TimedOut,
        RawLockError::UnknownIdentity(e) => LockError::UnknownIdentity(e),
    }
}

/// Holds a [`Mutex`] locked; unlocks on drop. Gives `&T` and `&mut T`.
///
/// Not `Send`: the lock belongs to the thread that took it.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: Shareable> {
    pub(crate) mutex: &'a Mutex<T>,
    consistent: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing `&MutexGuard` only hands out `&T`.
unsafe impl<T: Shareable + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: Shareable> MutexGuard<'a, T> {
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
    pub fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Forgets the guard without unlocking: the lock stays held by this
    /// thread, as if it had died holding it once it exits. For recovery tests.
    pub fn leak(self) {
        std::mem::forget(self);
    }

    /// Consumes the guard without unlocking (a condition variable unlocks
    /// itself), returning the mutex and the consistency flag.
    pub(crate) fn into_parts(self) -> (&'a Mutex<T>, bool) {
        let parts = (self.mutex, self.consistent);
        std::mem::forget(self);
        parts
    }
}

impl<T: Shareable> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other guard accesses the
        // value; the cell outlives the guard (borrowed from the mutex).
        unsafe { &*self.mutex.cell().value.get() }
    }
}

impl<T: Shareable> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { &mut *self.mutex.cell().value.get() }
    }
}

impl<T: Shareable> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.consistent {
            self.mutex.raw().unlock_held();
        } else {
            self.mutex.raw().make_not_recoverable();
        }
    }
}

impl<T: Shareable + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}
