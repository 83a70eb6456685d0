//! [`Barrier`] between processes.

use crate::error::{BarrierError, BarrierTimeoutError};
use crate::handle::handle;
use crate::raw::{deadline_after, BarrierWait, RawBarrier};
use multiproc_core::liveness::{Judge, OsJudge};
use multiproc_core::object::{Handle, Placed};
use multiproc_core::wait::WaitStrategy;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Action = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A barrier for a fixed number of parties in any processes (Python's
/// `Barrier`): `wait` returns when `parties` calls are waiting; the last one
/// to arrive first runs this handle's action, if any. Its configuration is
/// the number of parties (1 to [`MAX_PARTIES`](crate::raw::MAX_PARTIES)).
///
/// **Broken, never wedged**: when a party's timeout passes, when a member
/// process dies (each handle registers its process; a waiter checks them
/// every [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD)), when the action
/// panics, or on [`Barrier::abort`], every waiter returns
/// [`BarrierError::Broken`] (the one that timed out:
/// [`BarrierTimeoutError::TimedOut`]) until [`Barrier::reset`].
///
/// A process that is done with the barrier leaves by dropping its handle.
/// One that exits without running destructors (a forked child leaving with
/// `_exit`, as [`multiproc_core::Process`]'s fork does) must call
/// [`Barrier::leave`] first, or its exit reads as a death and breaks the
/// barrier for the others. A handle sent to another process arrives
/// without its action, registered for its new process.
///
/// ```
/// let b = multiproc_sync::Barrier::anonymous(1)?;
/// assert!(b.wait()?.is_leader);
/// assert!(multiproc_sync::Barrier::anonymous(0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Barrier {
    placed: Placed<RawBarrier>,
    strategy: WaitStrategy,
    action: Option<Action>,
    /// The member slot this handle holds and the process it holds it for
    /// (a forked child registers again under its own id).
    slot: AtomicUsize,
    slot_owner: AtomicU64,
}

const NO_SLOT: usize = usize::MAX;

impl Clone for Barrier {
    /// Another handle to the same barrier, with the same wait strategy and
    /// action, registered as a member on its own.
    fn clone(&self) -> Self {
        let mut b = Barrier::from_placed(self.placed.clone());
        b.strategy = self.strategy;
        b.action = self.action.clone();
        b
    }
}

impl Handle for Barrier {
    type Object = RawBarrier;
    fn from_placed(placed: Placed<RawBarrier>) -> Self {
        let b = Barrier {
            placed,
            strategy: WaitStrategy::ADAPTIVE,
            action: None,
            slot: AtomicUsize::new(NO_SLOT),
            slot_owner: AtomicU64::new(0),
        };
        // A process that cannot learn its identity now joins at its first
        // `wait`, which reports the failure if it persists.
        let _ = b.ensure_member();
        b
    }
}

multiproc_core::handle_constructors!(impl[] Barrier, "barrier");
handle!(parts impl[] Barrier, RawBarrier, "barrier");

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}

impl Barrier {
    /// The raw barrier in shared memory.
    pub fn as_raw(&self) -> &RawBarrier {
        &self.placed
    }

    fn ensure_member(&self) -> Result<(), BarrierError> {
        let me = OsJudge.me()?;
        if self.slot_owner.load(Ordering::Relaxed) != me {
            let slot = self.as_raw().register(&OsJudge)?.unwrap_or(NO_SLOT);
            self.slot.store(slot, Ordering::Relaxed);
            self.slot_owner.store(me, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The same handle with an action: when this handle's `wait` arrives
    /// last, it runs `action` before releasing the others. If the action
    /// panics, the barrier breaks and the panic goes on.
    pub fn with_action(mut self, action: impl Fn() + Send + Sync + 'static) -> Self {
        self.action = Some(std::sync::Arc::new(action));
        self
    }

    fn run_action(&self) {
        if let Some(a) = &self.action {
            a()
        }
    }

    /// Waits for all parties.
    ///
    /// # Errors
    /// [`BarrierError::Broken`]; [`BarrierError::UnknownIdentity`] if this
    /// process cannot learn the identity a party records (the barrier is
    /// left as it was).
    ///
    /// # Panics
    /// If this handle's action panics (the barrier is broken first).
    pub fn wait(&self) -> Result<BarrierWait, BarrierError> {
        self.ensure_member()?;
        self.as_raw()
            .wait(&OsJudge, self.strategy, || self.run_action())
    }

    /// Waits `timeout` at most; when it passes the barrier breaks
    /// ([`BarrierTimeoutError::TimedOut`] here, `Broken` for the others). A
    /// zero timeout succeeds only for the last party.
    ///
    /// # Errors
    /// [`BarrierTimeoutError::Broken`], [`BarrierTimeoutError::TimedOut`],
    /// [`BarrierTimeoutError::UnknownIdentity`].
    ///
    /// # Panics
    /// If this handle's action panics (the barrier is broken first).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWait, BarrierTimeoutError> {
        self.ensure_member()?;
        let deadline = deadline_after(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600 * 24 * 365));
        self.as_raw()
            .wait_until(&OsJudge, self.strategy, deadline, || self.run_action())
    }

    /// Stops watching this process for death (what dropping the handle
    /// does); a later `wait` through this handle joins again.
    pub fn leave(&self) {
        // Without an identity this process holds no membership of its own.
        let Ok(me) = OsJudge.me() else {
            return;
        };
        let slot = self.slot.swap(NO_SLOT, Ordering::Relaxed);
        if slot != NO_SLOT && self.slot_owner.swap(0, Ordering::Relaxed) == me {
            self.as_raw().unregister(&OsJudge, slot);
        }
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.as_raw().parties()
    }

    /// How many parties are waiting now.
    pub fn n_waiting(&self) -> u32 {
        self.as_raw().n_waiting()
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.as_raw().is_broken()
    }

    /// Breaks the barrier (Python's `abort`).
    pub fn abort(&self) {
        self.as_raw().abort()
    }

    /// Makes a broken barrier usable again; parties still waiting get
    /// [`BarrierError::Broken`].
    pub fn reset(&self) {
        self.as_raw().reset()
    }
}

impl Drop for Barrier {
    fn drop(&mut self) {
        self.leave();
    }
}
