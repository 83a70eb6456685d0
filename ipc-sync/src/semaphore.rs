//! [`Semaphore`] and [`BoundedSemaphore`] between processes.

use crate::error::ReleaseError;
use crate::handle::handle;
use crate::raw::{RawBoundedSemaphore, RawSemaphore};
use multiproc_core::object::Placed;
use multiproc_core::wait::WaitStrategy;
use std::time::Duration;

/// A counting semaphore shared between processes (Python's `Semaphore`).
/// Its configuration is the initial number of permits.
///
/// `acquire` takes a permit (waiting while there is none), `release` gives
/// one back; no syscall unless somebody has to wait or be woken.
///
/// **A process that dies holding permits takes them with it**: the count
/// stays lower by that many (as with a POSIX `sem_t`); a semaphore records
/// no holders. Where that matters, use a
/// [`RecoverableSemaphore`](crate::RecoverableSemaphore), whose permits
/// record their holder and come back when it dies. A process that dies
/// while *waiting* leaves nothing behind that blocks the others.
///
/// ```
/// let s = multiproc_sync::Semaphore::anonymous(2)?;
/// s.acquire();
/// assert!(s.try_acquire());
/// assert!(!s.try_acquire());
/// s.release()?;
/// assert_eq!(s.value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Semaphore {
    placed: Placed<RawSemaphore>,
    strategy: WaitStrategy,
}

/// A semaphore that refuses to be released above its bound (Python's
/// `BoundedSemaphore`, whose bound is its initial value): such a release is
/// a [`ReleaseError`] and changes nothing. Its configuration is
/// `(value, bound)`.
///
/// ```
/// let s = multiproc_sync::BoundedSemaphore::anonymous((1, 1))?;
/// assert!(s.release().is_err());
/// s.acquire();
/// s.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BoundedSemaphore {
    placed: Placed<RawBoundedSemaphore>,
    strategy: WaitStrategy,
}

multiproc_core::handle_constructors!(impl[] Semaphore, "semaphore");
handle!(impl[] Semaphore, RawSemaphore, "semaphore");
multiproc_core::handle_constructors!(impl[] BoundedSemaphore, "bounded semaphore");
handle!(impl[] BoundedSemaphore, RawBoundedSemaphore, "bounded semaphore");

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

/// Releases its permit when dropped. From `access` of a semaphore.
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

/// The operations both counting semaphores share.
macro_rules! semaphore_ops {
    ($t:ident) => {
        impl $t {
            /// The raw semaphore in shared memory.
            #[inline]
            pub fn as_raw(&self) -> &RawSemaphore {
                &self.placed
            }

            /// Takes a permit, waiting as long as it takes.
            #[inline]
            pub fn acquire(&self) {
                self.as_raw().acquire(self.strategy)
            }

            /// Takes a permit if one is free; never waits.
            #[inline]
            pub fn try_acquire(&self) -> bool {
                self.as_raw().try_acquire()
            }

            /// Takes a permit, waiting `timeout` at most (a zero timeout
            /// tries once). Returns whether it got one.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.as_raw().acquire_timeout(self.strategy, timeout)
            }

            /// Takes a permit and returns a guard that releases it on drop.
            pub fn access(&self) -> SemaphorePermit<'_> {
                self.acquire();
                SemaphorePermit { sem: self.as_raw() }
            }

            /// The number of free permits now (may change at any moment).
            pub fn value(&self) -> u32 {
                self.as_raw().value()
            }

            /// Adds a permit, waking one waiter if any.
            ///
            /// # Errors
            /// [`ReleaseError`] when the count is at its bound (`u32::MAX`
            /// for a `Semaphore`); nothing changes.
            #[inline]
            pub fn release(&self) -> Result<(), ReleaseError> {
                self.as_raw().release()
            }
        }
    };
}

semaphore_ops!(Semaphore);
semaphore_ops!(BoundedSemaphore);

impl BoundedSemaphore {
    /// The bound.
    pub fn bound(&self) -> u32 {
        self.placed.bound()
    }
}
