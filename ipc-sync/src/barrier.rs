//! [`Barrier`] between processes.

use crate::error::BarrierError;
use crate::raw::{deadline_after, BarrierWait, RawBarrier};
use crate::shm::{common_methods, RawObject, Shared};
use crate::Error;
use ipc_core::header::layout_hash;
use ipc_core::wait::WaitStrategy;
use ipc_core::{Kind, Segment};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

impl RawObject for RawBarrier {
    const KIND: Kind = Kind::new(
        "ipc-sync/barrier",
        1,
        layout_hash(&[RawBarrier::memory_size() as u64, 8]),
    );
    fn check_object(&self) -> Result<(), Error> {
        self.check()
    }
}

type Action = Box<dyn Fn() + Send + Sync>;

/// A barrier for a fixed number of parties in any processes (Python's
/// `Barrier`): `wait` returns when `parties` calls are waiting; the last one
/// to arrive first runs this handle's action, if any.
///
/// **Broken, never wedged**: when a party's timeout passes, when a member
/// process dies (each handle registers its process; a waiter checks them
/// every [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD)), when the action
/// panics, or on [`Barrier::abort`], every waiter returns
/// [`BarrierError::Broken`] (the one that timed out:
/// [`BarrierError::TimedOut`]) until [`Barrier::reset`].
///
/// A process that is done with the barrier leaves by dropping its handle.
/// One that exits without running destructors (a forked child leaving with
/// `_exit`, as [`ipc_core::Process`]'s fork does) must call
/// [`Barrier::leave`] first, or its exit reads as a death and breaks the
/// barrier for the others.
///
/// ```
/// let b = ipc_sync::Barrier::anonymous(1)?;
/// assert!(b.wait()?.is_leader);
/// assert!(ipc_sync::Barrier::anonymous(0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Barrier {
    inner: Shared<RawBarrier>,
    strategy: WaitStrategy,
    action: Option<Action>,
    /// The member slot this handle holds and the process it holds it for
    /// (a forked child registers again under its own id).
    slot: AtomicUsize,
    slot_owner: AtomicU64,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}

common_methods!(Barrier, "barrier");

const NO_SLOT: usize = usize::MAX;

impl Barrier {
    fn from_shared(inner: Shared<RawBarrier>) -> Self {
        let b = Barrier {
            inner,
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

    fn ensure_member(&self) -> Result<(), BarrierError> {
        let me = ipc_core::ProcessId::current()?.to_u64();
        if self.slot_owner.load(Ordering::Relaxed) != me {
            let slot = self.inner.get().register()?.unwrap_or(NO_SLOT);
            self.slot.store(slot, Ordering::Relaxed);
            self.slot_owner.store(me, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Creates a barrier for `parties` in a new named segment.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero parties or more than
    /// [`MAX_PARTIES`](crate::raw::MAX_PARTIES); segment errors.
    pub fn create(name: &str, parties: u32) -> Result<Self, Error> {
        Self::create_in(Some(name), parties)
    }

    /// Creates one in an anonymous segment.
    pub fn anonymous(parties: u32) -> Result<Self, Error> {
        Self::create_in(None, parties)
    }

    fn create_in(name: Option<&str>, parties: u32) -> Result<Self, Error> {
        if parties == 0 || parties > crate::raw::MAX_PARTIES {
            return Err(Error::InvalidArgument("a barrier needs 1 to 65535 parties"));
        }
        Ok(Self::from_shared(Shared::create(
            name,
            |r: &RawBarrier| r.reset_to(parties),
        )?))
    }

    /// Initializes one at `offset` of any segment.
    pub fn init_at(seg: Arc<Segment>, offset: u64, parties: u32) -> Result<Self, Error> {
        if parties == 0 || parties > crate::raw::MAX_PARTIES {
            return Err(Error::InvalidArgument("a barrier needs 1 to 65535 parties"));
        }
        Ok(Self::from_shared(Shared::init_at(
            seg,
            offset,
            |r: &RawBarrier| {
                r.reset_to(parties);
                Ok(())
            },
        )?))
    }

    /// The same handle with an action: when this handle's `wait` arrives
    /// last, it runs `action` before releasing the others. If the action
    /// panics, the barrier breaks and the panic goes on.
    pub fn with_action(mut self, action: impl Fn() + Send + Sync + 'static) -> Self {
        self.action = Some(Box::new(action));
        self
    }

    /// Waits for all parties.
    ///
    /// # Errors
    /// [`BarrierError::Broken`]; [`BarrierError::UnknownIdentity`] if this
    /// process cannot learn the identity a party records (the barrier is
    /// left as it was).
    pub fn wait(&self) -> Result<BarrierWait, BarrierError> {
        self.wait_deadline(None)
    }

    /// Waits `timeout` at most; when it passes the barrier breaks
    /// ([`BarrierError::TimedOut`] here, [`BarrierError::Broken`] for the
    /// others). A zero timeout succeeds only for the last party.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWait, BarrierError> {
        self.wait_deadline(Some(deadline_after(timeout).unwrap_or_else(|| {
            std::time::Instant::now() + Duration::from_secs(3600 * 24 * 365)
        })))
    }

    fn wait_deadline(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<BarrierWait, BarrierError> {
        self.ensure_member()?;
        let action = || {
            if let Some(a) = &self.action {
                a()
            }
        };
        self.inner.get().wait_until(self.strategy, deadline, action)
    }

    /// Stops watching this process for death (what dropping the handle
    /// does); a later `wait` through this handle joins again.
    pub fn leave(&self) {
        // Without an identity this process holds no membership of its own.
        let Ok(me) = ipc_core::ProcessId::current().map(|p| p.to_u64()) else {
            return;
        };
        let slot = self.slot.swap(NO_SLOT, Ordering::Relaxed);
        if slot != NO_SLOT && self.slot_owner.swap(0, Ordering::Relaxed) == me {
            self.inner.get().unregister(slot);
        }
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.inner.get().parties()
    }

    /// How many parties are waiting now.
    pub fn n_waiting(&self) -> u32 {
        self.inner.get().n_waiting()
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.inner.get().is_broken()
    }

    /// Breaks the barrier (Python's `abort`).
    pub fn abort(&self) {
        self.inner.get().abort()
    }

    /// Makes a broken barrier usable again; parties still waiting get
    /// [`BarrierError::Broken`].
    pub fn reset(&self) {
        self.inner.get().reset()
    }

    /// The raw barrier in shared memory.
    pub fn as_raw(&self) -> &RawBarrier {
        self.inner.get()
    }
}

impl Drop for Barrier {
    fn drop(&mut self) {
        self.leave();
    }
}
