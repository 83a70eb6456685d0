//! [`Semaphore`] and [`BoundedSemaphore`] between processes.

use crate::error::ReleaseError;
use crate::raw::{RawRecoverableSemaphore, RawSemaphore};
use crate::shm::{common_methods, RawObject, Shared};
use crate::Error;
use ipc_core::header::layout_hash;
use ipc_core::wait::WaitStrategy;
use ipc_core::{IdentityError, Kind, Segment};
use std::sync::Arc;
use std::time::Duration;

impl RawObject for RawSemaphore {
    const KIND: Kind = Kind::new(
        "ipc-sync/semaphore",
        1,
        layout_hash(&[RawSemaphore::memory_size() as u64, 4]),
    );
    fn check_object(&self) -> Result<(), Error> {
        self.check()?;
        if self.bound().is_some() {
            return Err(Error::Layout {
                what: "semaphore",
                detail: "it is bounded: open it as a BoundedSemaphore".into(),
            });
        }
        Ok(())
    }
}

/// The shared state of a [`BoundedSemaphore`]: a [`RawSemaphore`] with a
/// bound, under a segment kind of its own.
#[repr(transparent)]
#[derive(Debug)]
pub struct BoundedCell(RawSemaphore);

// SAFETY: a transparent wrapper of a `Shareable` type.
unsafe impl ipc_core::Shareable for BoundedCell {}

impl RawObject for BoundedCell {
    const KIND: Kind = Kind::new(
        "ipc-sync/bounded-semaphore",
        1,
        layout_hash(&[RawSemaphore::memory_size() as u64, 4]),
    );
    fn check_object(&self) -> Result<(), Error> {
        self.0.check()?;
        if self.0.bound().is_none() {
            return Err(Error::Layout {
                what: "bounded semaphore",
                detail: "it has no bound: open it as a Semaphore".into(),
            });
        }
        Ok(())
    }
}

/// A counting semaphore shared between processes (Python's `Semaphore`).
///
/// `acquire` takes a permit (waiting while there is none), `release` gives
/// one back; no syscall unless somebody has to wait or be woken.
///
/// **A process that dies holding permits takes them with it**: the count
/// stays lower by that many (as with a POSIX `sem_t`); a semaphore records
/// no holders. Where that matters, use a [`RecoverableSemaphore`], whose
/// permits record their holder and come back when it dies. A process that
/// dies while *waiting* leaves nothing behind that blocks the others.
///
/// ```
/// let s = ipc_sync::Semaphore::anonymous(2)?;
/// s.acquire();
/// assert!(s.try_acquire());
/// assert!(!s.try_acquire());
/// s.release()?;
/// assert_eq!(s.value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Semaphore {
    inner: Shared<RawSemaphore>,
    strategy: WaitStrategy,
}

/// A semaphore that refuses to be released above its initial value
/// (Python's `BoundedSemaphore`): such a release is
/// [`ReleaseError::AboveBound`] and changes nothing.
///
/// ```
/// let s = ipc_sync::BoundedSemaphore::anonymous(1)?;
/// assert!(s.release().is_err());
/// s.acquire();
/// s.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BoundedSemaphore {
    inner: Shared<BoundedCell>,
    strategy: WaitStrategy,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value())
            .field("bound", &self.bound())
            .finish_non_exhaustive()
    }
}

common_methods!(Semaphore, "semaphore");
common_methods!(BoundedSemaphore, "bounded semaphore");

/// Releases its permit when dropped. From [`Semaphore::access`].
#[must_use = "the permit is released when the guard is dropped"]
#[derive(Debug)]
pub struct SemaphorePermit<'a> {
    sem: &'a RawSemaphore,
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.sem.release() {
            log::warn!("releasing a semaphore permit: {e}");
        }
    }
}

trait AsSemaphore {
    fn sem(&self) -> &RawSemaphore;
}

impl AsSemaphore for RawSemaphore {
    fn sem(&self) -> &RawSemaphore {
        self
    }
}

impl AsSemaphore for BoundedCell {
    fn sem(&self) -> &RawSemaphore {
        &self.0
    }
}

macro_rules! semaphore_ops {
    ($t:ident) => {
        impl $t {
            #[inline]
            fn raw(&self) -> &RawSemaphore {
                self.inner.get().sem()
            }

            /// Takes a permit, waiting as long as it takes.
            #[inline]
            pub fn acquire(&self) {
                self.raw().acquire(self.strategy)
            }

            /// Takes a permit if one is free; never waits.
            #[inline]
            pub fn try_acquire(&self) -> bool {
                self.raw().try_acquire()
            }

            /// Takes a permit, waiting `timeout` at most (a zero timeout
            /// tries once). Returns whether it got one.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.raw().acquire_timeout(self.strategy, timeout)
            }

            /// Takes a permit and returns a guard that releases it on drop.
            pub fn access(&self) -> SemaphorePermit<'_> {
                self.acquire();
                SemaphorePermit { sem: self.raw() }
            }

            /// The number of free permits now (may change at any moment).
            pub fn value(&self) -> u32 {
                self.raw().value()
            }

            /// The raw semaphore in shared memory.
            pub fn as_raw(&self) -> &RawSemaphore {
                self.raw()
            }
        }
    };
}

semaphore_ops!(Semaphore);
semaphore_ops!(BoundedSemaphore);

impl Semaphore {
    fn from_shared(inner: Shared<RawSemaphore>) -> Self {
        Semaphore {
            inner,
            strategy: WaitStrategy::ADAPTIVE,
        }
    }

    /// Creates a semaphore with `value` permits in a new named segment.
    pub fn create(name: &str, value: u32) -> Result<Self, Error> {
        Self::create_in(Some(name), value)
    }

    /// Creates a semaphore in an anonymous segment (for children started by
    /// fork, or given the descriptor).
    pub fn anonymous(value: u32) -> Result<Self, Error> {
        Self::create_in(None, value)
    }

    fn create_in(name: Option<&str>, value: u32) -> Result<Self, Error> {
        let fresh = RawSemaphore::new(value, None)?;
        Ok(Self::from_shared(Shared::create(
            name,
            |r: &RawSemaphore| r.reset_from(&fresh),
        )?))
    }

    /// Initializes a semaphore at `offset` of any segment.
    pub fn init_at(seg: Arc<Segment>, offset: u64, value: u32) -> Result<Self, Error> {
        let fresh = RawSemaphore::new(value, None)?;
        Ok(Self::from_shared(Shared::init_at(
            seg,
            offset,
            |r: &RawSemaphore| {
                r.reset_from(&fresh);
                Ok(())
            },
        )?))
    }

    /// Adds a permit, waking one waiter if any.
    ///
    /// # Errors
    /// [`ReleaseError::Overflow`] at `u32::MAX` permits.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().release()
    }
}

impl BoundedSemaphore {
    fn from_shared(inner: Shared<BoundedCell>) -> Self {
        BoundedSemaphore {
            inner,
            strategy: WaitStrategy::ADAPTIVE,
        }
    }

    /// Creates a bounded semaphore with `value` permits (also its bound) in
    /// a new named segment.
    pub fn create(name: &str, value: u32) -> Result<Self, Error> {
        Self::create_in(Some(name), value)
    }

    /// Creates one in an anonymous segment.
    pub fn anonymous(value: u32) -> Result<Self, Error> {
        Self::create_in(None, value)
    }

    fn create_in(name: Option<&str>, value: u32) -> Result<Self, Error> {
        if value == u32::MAX {
            return Err(Error::InvalidArgument("the bound must be below u32::MAX"));
        }
        let fresh = RawSemaphore::new(value, Some(value))?;
        Ok(Self::from_shared(Shared::create(
            name,
            |r: &BoundedCell| r.0.reset_from(&fresh),
        )?))
    }

    /// Initializes one at `offset` of any segment.
    pub fn init_at(seg: Arc<Segment>, offset: u64, value: u32) -> Result<Self, Error> {
        if value == u32::MAX {
            return Err(Error::InvalidArgument("the bound must be below u32::MAX"));
        }
        let fresh = RawSemaphore::new(value, Some(value))?;
        Ok(Self::from_shared(Shared::init_at(
            seg,
            offset,
            |r: &BoundedCell| {
                r.0.reset_from(&fresh);
                Ok(())
            },
        )?))
    }

    /// Adds a permit back, waking one waiter if any.
    ///
    /// # Errors
    /// [`ReleaseError::AboveBound`] if all permits are already free; nothing
    /// changes.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().release()
    }

    /// The bound (the initial value).
    pub fn bound(&self) -> u32 {
        self.raw().bound().unwrap_or(u32::MAX)
    }
}

impl RawObject for RawRecoverableSemaphore {
    const KIND: Kind = Kind::new(
        "ipc-sync/recoverable-semaphore",
        1,
        layout_hash(&[RawRecoverableSemaphore::memory_size() as u64, 8]),
    );
    fn check_object(&self) -> Result<(), Error> {
        self.check()
    }
}

/// A semaphore that gives back the permits of a process that dies holding
/// them: each permit records its holder process (at most
/// [`MAX_PERMITS`](crate::raw::recoverable::MAX_PERMITS) permits).
///
/// Waiters reclaim dead holders' permits by themselves (checking every
/// [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD) while they wait);
/// [`RecoverableSemaphore::recover`] does it on demand. Permits belong to
/// the process: only a process holding one may release one
/// ([`ReleaseError::NotHeld`] otherwise), from any of its threads.
///
/// ```
/// let s = ipc_sync::RecoverableSemaphore::anonymous(1)?;
/// assert!(s.release().is_err()); // holds none
/// s.acquire()?;
/// assert_eq!(s.held_by_me(), 1);
/// s.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RecoverableSemaphore {
    inner: Shared<RawRecoverableSemaphore>,
    strategy: WaitStrategy,
}

impl std::fmt::Debug for RecoverableSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverableSemaphore")
            .field("value", &self.value())
            .field("permits", &self.permits())
            .finish_non_exhaustive()
    }
}

common_methods!(RecoverableSemaphore, "recoverable semaphore");

impl RecoverableSemaphore {
    fn from_shared(inner: Shared<RawRecoverableSemaphore>) -> Self {
        RecoverableSemaphore {
            inner,
            strategy: WaitStrategy::ADAPTIVE,
        }
    }

    fn check(permits: u32) -> Result<(), Error> {
        if permits > crate::raw::recoverable::MAX_PERMITS {
            return Err(Error::InvalidArgument(
                "a recoverable semaphore has at most 64 permits",
            ));
        }
        Ok(())
    }

    /// Creates one with `permits` free permits in a new named segment.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] above 64 permits; segment errors.
    pub fn create(name: &str, permits: u32) -> Result<Self, Error> {
        Self::check(permits)?;
        Ok(Self::from_shared(Shared::create(
            Some(name),
            |r: &RawRecoverableSemaphore| r.reset_to(permits),
        )?))
    }

    /// Creates one in an anonymous segment.
    pub fn anonymous(permits: u32) -> Result<Self, Error> {
        Self::check(permits)?;
        Ok(Self::from_shared(Shared::create(
            None,
            |r: &RawRecoverableSemaphore| r.reset_to(permits),
        )?))
    }

    /// Initializes one at `offset` of any segment.
    pub fn init_at(seg: Arc<Segment>, offset: u64, permits: u32) -> Result<Self, Error> {
        Self::check(permits)?;
        Ok(Self::from_shared(Shared::init_at(
            seg,
            offset,
            |r: &RawRecoverableSemaphore| {
                r.reset_to(permits);
                Ok(())
            },
        )?))
    }

    fn raw(&self) -> &RawRecoverableSemaphore {
        self.inner.get()
    }

    /// Takes a permit, waiting as long as it takes.
    ///
    /// # Errors
    /// [`IdentityError`]: this process cannot learn the identity a permit
    /// records (most often: no free file descriptor); no permit was taken.
    pub fn acquire(&self) -> Result<(), IdentityError> {
        while !self.raw().acquire_until(self.strategy, None)? {}
        Ok(())
    }

    /// Takes a permit if one is free; never waits.
    ///
    /// # Errors
    /// As [`RecoverableSemaphore::acquire`].
    pub fn try_acquire(&self) -> Result<bool, IdentityError> {
        self.raw().try_acquire()
    }

    /// Takes a permit, waiting `timeout` at most (zero: one try).
    ///
    /// # Errors
    /// As [`RecoverableSemaphore::acquire`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, IdentityError> {
        self.raw().acquire_timeout(self.strategy, timeout)
    }

    /// Gives back a permit this process holds.
    ///
    /// # Errors
    /// [`ReleaseError::NotHeld`].
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().release()
    }

    /// Frees the permits of dead holders now; returns how many.
    pub fn recover(&self) -> u32 {
        self.raw().recover()
    }

    /// Free permits now.
    pub fn value(&self) -> u32 {
        self.raw().value()
    }

    /// Permits the calling process holds.
    pub fn held_by_me(&self) -> u32 {
        self.raw().held_by_me()
    }

    /// The total number of permits.
    pub fn permits(&self) -> u32 {
        self.raw().permits()
    }

    /// The raw semaphore in shared memory.
    pub fn as_raw(&self) -> &RawRecoverableSemaphore {
        self.raw()
    }
}
