//! Error types of `ipc-sync`, one per kind of operation.

use ipc_core::{IdentityError, OffsetError, ProcessId, SegmentError};

/// Why a primitive could not be created, opened or placed in a segment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating, opening or mapping the segment failed (this includes a name
    /// that holds another primitive or another layout version:
    /// [`SegmentError::Header`]).
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The offset does not fit the segment, or is misaligned.
    #[error(transparent)]
    Offset(#[from] OffsetError),
    /// The memory at the offset holds another primitive (or was never
    /// initialized).
    #[error("expected a {expected} at this place, found object tag {found:#010x}")]
    WrongObject {
        /// The primitive asked for.
        expected: &'static str,
        /// The tag found there.
        found: u32,
    },
    /// The memory at the offset holds this primitive with another
    /// configuration or value layout.
    #[error("the {what} at this place has another layout: {detail}")]
    Layout {
        /// The primitive asked for.
        what: &'static str,
        /// What differs.
        detail: String,
    },
    /// An argument is out of range (zero parties, an initial value above the
    /// bound, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// Why a lock was not granted cleanly. `G` is the guard type.
///
/// Which operation returns which variant:
///
/// | variant | `lock` | `try_lock` | `lock_timeout` |
/// |---|---|---|---|
/// | [`OwnerDied`](LockError::OwnerDied) | yes | yes | yes |
/// | [`NotRecoverable`](LockError::NotRecoverable) | yes | yes | yes |
/// | [`WouldDeadlock`](LockError::WouldDeadlock) | yes | yes | yes |
/// | [`WouldBlock`](LockError::WouldBlock) | no | yes | zero timeout |
/// | [`TimedOut`](LockError::TimedOut) | no | no | yes |
/// | [`UnknownIdentity`](LockError::UnknownIdentity) | yes | yes | yes |
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous holder died while holding the lock. **The lock is now
    /// held by the caller**: the error carries the guard. Repair the data and
    /// call `mark_consistent` on the guard; dropping the guard without doing
    /// so makes the lock unusable for everybody ([`LockError::NotRecoverable`]).
    #[error("the previous owner died while holding the lock; the data may be inconsistent")]
    OwnerDied(OwnerDied<G>),
    /// A holder that had been told [`LockError::OwnerDied`] released the
    /// lock without marking the data consistent; the lock is unusable.
    #[error("the lock is not recoverable: a dead owner's data was never marked consistent")]
    NotRecoverable,
    /// The calling thread already holds this (non-reentrant) lock.
    #[error("the calling thread already holds this lock")]
    WouldDeadlock,
    /// The lock is held by someone else (`try_lock`, zero timeout).
    #[error("the lock is held by another thread")]
    WouldBlock,
    /// The timeout passed before the lock was free.
    #[error("timed out waiting for the lock")]
    TimedOut,
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which a holder records so that others can tell whether
    /// it died. The lock was not taken.
    #[error(transparent)]
    UnknownIdentity(IdentityError),
}

impl<G> std::fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(d) => f
                .debug_struct("OwnerDied")
                .field("previous_owner", &d.previous_owner)
                .finish_non_exhaustive(),
            LockError::NotRecoverable => f.write_str("NotRecoverable"),
            LockError::WouldDeadlock => f.write_str("WouldDeadlock"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::TimedOut => f.write_str("TimedOut"),
            LockError::UnknownIdentity(e) => f.debug_tuple("UnknownIdentity").field(e).finish(),
        }
    }
}

impl<G> LockError<G> {
    /// Applies `f` to the carried guard, if any.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(d) => LockError::OwnerDied(OwnerDied {
                guard: f(d.guard),
                previous_owner: d.previous_owner,
            }),
            LockError::NotRecoverable => LockError::NotRecoverable,
            LockError::WouldDeadlock => LockError::WouldDeadlock,
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::TimedOut => LockError::TimedOut,
            LockError::UnknownIdentity(e) => LockError::UnknownIdentity(e),
        }
    }

    /// Whether this is [`LockError::OwnerDied`].
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }
}

/// The lock was acquired from a holder that died: carries the guard.
pub struct OwnerDied<G> {
    pub(crate) guard: G,
    pub(crate) previous_owner: Option<ProcessId>,
}

impl<G> OwnerDied<G> {
    /// The guard: the lock is held. Repair the data, then call its
    /// `mark_consistent`.
    pub fn into_guard(self) -> G {
        self.guard
    }

    /// The guard, borrowed.
    pub fn guard_mut(&mut self) -> &mut G {
        &mut self.guard
    }

    /// The process that died holding the lock, when it was recorded (its
    /// start time holds only the low 32 bits).
    pub fn previous_owner(&self) -> Option<ProcessId> {
        self.previous_owner
    }
}

/// Why a raw unlock (or release) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnlockError {
    /// The lock is not held at all.
    #[error("the lock is not held")]
    NotLocked,
    /// The lock is held by another thread (`holder_tid`).
    #[error("the lock is held by thread {holder_tid}, not by the caller")]
    NotOwner {
        /// The thread id recorded as holder.
        holder_tid: u32,
    },
}

/// Why a semaphore release was refused; no permit was added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Releasing would raise a bounded semaphore above its initial value.
    #[error("releasing would raise the bounded semaphore above its bound {bound}")]
    AboveBound {
        /// The bound (the initial value).
        bound: u32,
    },
    /// The count would overflow a `u32`.
    #[error("the semaphore's count would overflow")]
    Overflow,
    /// A recoverable semaphore: the calling process holds no permit.
    #[error("the calling process holds no permit of this semaphore")]
    NotHeld,
}

/// Why a barrier wait failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: a party timed out, died, its action panicked,
    /// or it was reset while this party waited. Call `reset` to use it again.
    #[error("the barrier is broken")]
    Broken,
    /// This party's timeout passed; the barrier is now broken for the others.
    #[error("timed out waiting at the barrier (the barrier is now broken)")]
    TimedOut,
    /// This process cannot learn its own identity, which a party records so
    /// that its death breaks the barrier; it did not arrive.
    #[error(transparent)]
    UnknownIdentity(#[from] IdentityError),
}
