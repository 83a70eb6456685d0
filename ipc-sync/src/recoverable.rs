//! [`RecoverableSemaphore`]: permits that come back from a dead holder.

use crate::error::NotHeldError;
use crate::handle::handle;
use crate::raw::RawRecoverableSemaphore;
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::Placed;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::IdentityError;
use std::time::Duration;

/// A semaphore that gives back the permits of a process that dies holding
/// them: each permit records its holder process (at most
/// [`MAX_PERMITS`](crate::raw::MAX_PERMITS) permits). Its configuration is
/// the number of permits, all free.
///
/// Waiters reclaim dead holders' permits by themselves (checking every
/// [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD) while they wait);
/// [`RecoverableSemaphore::recover`] does it on demand. Permits belong to
/// the process: only a process holding one may release one
/// ([`NotHeldError`] otherwise), from any of its threads.
///
/// ```
/// let s = multiproc_sync::RecoverableSemaphore::anonymous(1)?;
/// assert!(s.release().is_err()); // holds none
/// s.acquire()?;
/// assert_eq!(s.held_by_me(), 1);
/// s.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RecoverableSemaphore {
    placed: Placed<RawRecoverableSemaphore>,
    strategy: WaitStrategy,
}

multiproc_core::handle_constructors!(impl[] RecoverableSemaphore, "recoverable semaphore");
handle!(impl[] RecoverableSemaphore, RawRecoverableSemaphore, "recoverable semaphore");

impl std::fmt::Debug for RecoverableSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverableSemaphore")
            .field("value", &self.value())
            .field("permits", &self.permits())
            .finish_non_exhaustive()
    }
}

impl RecoverableSemaphore {
    /// The raw semaphore in shared memory.
    pub fn as_raw(&self) -> &RawRecoverableSemaphore {
        &self.placed
    }

    /// Takes a permit, waiting as long as it takes.
    ///
    /// # Errors
    /// [`IdentityError`]: this process cannot learn the identity a permit
    /// records (most often: no free file descriptor); no permit was taken.
    pub fn acquire(&self) -> Result<(), IdentityError> {
        while !self.as_raw().acquire_until(&OsJudge, self.strategy, None)? {}
        Ok(())
    }

    /// Takes a permit if one is free; never waits.
    ///
    /// # Errors
    /// As [`RecoverableSemaphore::acquire`].
    pub fn try_acquire(&self) -> Result<bool, IdentityError> {
        self.as_raw().try_acquire(&OsJudge)
    }

    /// Takes a permit, waiting `timeout` at most (zero: one try).
    ///
    /// # Errors
    /// As [`RecoverableSemaphore::acquire`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, IdentityError> {
        self.as_raw()
            .acquire_timeout(&OsJudge, self.strategy, timeout)
    }

    /// Gives back a permit this process holds.
    ///
    /// # Errors
    /// [`NotHeldError`]: this process holds none.
    pub fn release(&self) -> Result<(), NotHeldError> {
        self.as_raw().release(&OsJudge)
    }

    /// Frees the permits of dead holders now; returns how many.
    pub fn recover(&self) -> u32 {
        self.as_raw().recover(&OsJudge)
    }

    /// Free permits now.
    pub fn value(&self) -> u32 {
        self.as_raw().value()
    }

    /// Permits the calling process holds.
    pub fn held_by_me(&self) -> u32 {
        self.as_raw().held_by_me(&OsJudge)
    }

    /// The total number of permits.
    pub fn permits(&self) -> u32 {
        self.as_raw().permits()
    }
}
