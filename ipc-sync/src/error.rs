//! Error types, one per operation: each lists only what that operation can
//! return.
//!
//! The lock errors are generic over the guard `G` that
//! [`OwnerDied`](LockError::OwnerDied) carries: a dead holder's lock is
//! *held by the caller*, who repairs the data through the guard. In the raw
//! layer `G` is [`Infallible`]: a raw lock reports a dead holder as
//! [`Acquired::OwnerDied`](crate::raw::Acquired::OwnerDied) instead.
//!
//! A guard borrows its lock, so an error that carries one is neither
//! `'static` nor `Send`. To pass it on with `?` (into
//! `Box<dyn Error + Send + Sync>`, `anyhow::Error`, ...), drop the guard
//! first with `without_guard` (which makes a dead holder's lock not
//! recoverable, as dropping any unrepaired guard does), or take it back
//! with `into_parts` and repair; see the [crate docs](crate).

use multiproc_core::{IdentityError, ProcessId};
use std::convert::Infallible;

/// The lock was taken over from a holder that died: **the caller holds the
/// lock**, through the guard this carries. Repair the data, then call the
/// guard's `mark_consistent`; dropping the guard without doing so makes the
/// lock unusable for everybody (`NotRecoverable`).
pub struct OwnerDied<G> {
    guard: G,
    previous_owner: Option<ProcessId>,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G, previous_owner: Option<ProcessId>) -> Self {
        OwnerDied {
            guard,
            previous_owner,
        }
    }

    /// The guard: the lock is held. Repair the data, then call its
    /// `mark_consistent` (std's `PoisonError::into_inner`).
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

    /// The same report with `f` applied to the guard.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> OwnerDied<H> {
        OwnerDied {
            guard: f(self.guard),
            previous_owner: self.previous_owner,
        }
    }
}

impl<G> std::fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerDied")
            .field("previous_owner", &self.previous_owner)
            .finish_non_exhaustive()
    }
}

/// What refuses a lock before any wait: a lock made unusable, the caller's
/// own lock, or an identity this process cannot learn.
pub(crate) enum Refused {
    NotRecoverable,
    WouldDeadlock,
    UnknownIdentity(IdentityError),
}

/// A wait that ran out because its timeout passed.
pub(crate) struct TimedOut;

/// A single try that found the lock held.
pub(crate) struct WouldBlock;

/// Builds an operation's error from what ended it (crate-private, so the
/// conversions do not become part of the public API).
pub(crate) trait Fail<X>: Sized {
    fn fail(x: X) -> Self;
}

/// A lock error type that can carry a guard `G`: how it is made from the
/// raw layer's (which carries none) and from a dead holder's report.
pub(crate) trait WithGuard<G>: Sized {
    /// The same error in the raw layer.
    type Raw;
    fn from_raw(raw: Self::Raw) -> Self;
    fn owner_died(d: OwnerDied<G>) -> Self;
}

/// The three lock error types: the common variants, the extra ones of each
/// operation, and the conversions between them.
macro_rules! lock_errors {
    ($(
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $extra:ident = $msg:literal ),* }
    )*) => {$(
        $(#[$meta])*
        #[derive(thiserror::Error)]
        #[non_exhaustive]
        pub enum $name<G> {
            /// The previous holder died while holding the lock. **The lock
            /// is now held by the caller**: the error carries the guard, to
            /// repair the data and mark it consistent.
            #[error("the previous owner died while holding the lock; the data may be inconsistent")]
            OwnerDied(OwnerDied<G>),
            /// A holder that had been told `OwnerDied` released the lock
            /// without marking the data consistent; the lock is unusable.
            #[error("the lock is not recoverable: a dead owner's data was never marked consistent")]
            NotRecoverable,
            /// The calling thread holds this lock already (for a reentrant
            /// lock: its recursion count would overflow).
            #[error("the calling thread already holds this lock")]
            WouldDeadlock,
            /// This process cannot learn its own identity (most often: no
            /// free file descriptor), which a holder records so that others
            /// can tell whether it died. The lock was not taken.
            #[error(transparent)]
            UnknownIdentity(IdentityError),
            $( $(#[$vmeta])* #[error($msg)] $extra, )*
        }

        impl<G> $name<G> {
            /// The same error with `f` applied to the carried guard, if any.
            pub fn map<H>(self, f: impl FnOnce(G) -> H) -> $name<H> {
                match self {
                    $name::OwnerDied(d) => $name::OwnerDied(d.map(f)),
                    $name::NotRecoverable => $name::NotRecoverable,
                    $name::WouldDeadlock => $name::WouldDeadlock,
                    $name::UnknownIdentity(e) => $name::UnknownIdentity(e),
                    $( $name::$extra => $name::$extra, )*
                }
            }

            /// Whether this is `OwnerDied` (the caller holds the lock).
            pub fn is_owner_died(&self) -> bool {
                matches!(self, $name::OwnerDied(_))
            }

            /// Splits off the guard that `OwnerDied` carries: the error
            /// without it (`'static`, `Send`, `Sync`) and the guard, if any,
            /// to repair the data through before it is dropped.
            pub fn into_parts(self) -> ($name<()>, Option<G>) {
                let mut guard = None;
                let e = self.map(|g| guard = Some(g));
                (e, guard)
            }

            /// The error without a guard (`'static`, `Send`, `Sync`), for `?`
            /// into `Box<dyn Error + Send + Sync>` or `anyhow::Error`. A
            /// carried guard is dropped unrepaired, which makes the lock not
            /// recoverable.
            pub fn without_guard(self) -> $name<()> {
                self.into_parts().0
            }
        }

        impl<G> std::fmt::Debug for $name<G> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $name::OwnerDied(d) => f.debug_tuple("OwnerDied").field(d).finish(),
                    $name::NotRecoverable => f.write_str("NotRecoverable"),
                    $name::WouldDeadlock => f.write_str("WouldDeadlock"),
                    $name::UnknownIdentity(e) => {
                        f.debug_tuple("UnknownIdentity").field(e).finish()
                    }
                    $( $name::$extra => f.write_str(stringify!($extra)), )*
                }
            }
        }

        impl<G> WithGuard<G> for $name<G> {
            type Raw = $name<Infallible>;
            fn from_raw(raw: $name<Infallible>) -> Self {
                raw.map(|never| match never {})
            }
            fn owner_died(d: OwnerDied<G>) -> Self {
                $name::OwnerDied(d)
            }
        }

        impl<G> Fail<Refused> for $name<G> {
            fn fail(r: Refused) -> Self {
                match r {
                    Refused::NotRecoverable => $name::NotRecoverable,
                    Refused::WouldDeadlock => $name::WouldDeadlock,
                    Refused::UnknownIdentity(e) => $name::UnknownIdentity(e),
                }
            }
        }

        impl<G> Fail<IdentityError> for $name<G> {
            fn fail(e: IdentityError) -> Self {
                $name::UnknownIdentity(e)
            }
        }

        impl<G> Fail<Infallible> for $name<G> {
            fn fail(never: Infallible) -> Self {
                match never {}
            }
        }
    )*};
}

lock_errors! {
    /// Why `lock` (`read`, `write`) did not grant the lock cleanly.
    LockError {}

    /// Why `try_lock` (`try_read`, `try_write`) did not grant the lock
    /// cleanly.
    TryLockError {
        /// The lock is held by someone else (alive).
        WouldBlock = "the lock is held by another thread"
    }

    /// Why `lock_timeout` (`read_timeout`, `write_timeout`) did not grant
    /// the lock cleanly.
    LockTimeoutError {
        /// A zero timeout found the lock held by someone else (alive).
        WouldBlock = "the lock is held by another thread",
        /// The timeout passed before the lock was free.
        TimedOut = "timed out waiting for the lock"
    }
}

impl<G> Fail<WouldBlock> for TryLockError<G> {
    fn fail(_: WouldBlock) -> Self {
        TryLockError::WouldBlock
    }
}

impl<G> Fail<WouldBlock> for LockTimeoutError<G> {
    fn fail(_: WouldBlock) -> Self {
        LockTimeoutError::WouldBlock
    }
}

impl<G> Fail<TimedOut> for LockTimeoutError<G> {
    fn fail(_: TimedOut) -> Self {
        LockTimeoutError::TimedOut
    }
}

impl<G> From<LockError<G>> for TryLockError<G> {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(d) => TryLockError::OwnerDied(d),
            LockError::NotRecoverable => TryLockError::NotRecoverable,
            LockError::WouldDeadlock => TryLockError::WouldDeadlock,
            LockError::UnknownIdentity(e) => TryLockError::UnknownIdentity(e),
        }
    }
}

impl<G> From<TryLockError<G>> for LockTimeoutError<G> {
    fn from(e: TryLockError<G>) -> Self {
        match e {
            TryLockError::OwnerDied(d) => LockTimeoutError::OwnerDied(d),
            TryLockError::NotRecoverable => LockTimeoutError::NotRecoverable,
            TryLockError::WouldDeadlock => LockTimeoutError::WouldDeadlock,
            TryLockError::UnknownIdentity(e) => LockTimeoutError::UnknownIdentity(e),
            TryLockError::WouldBlock => LockTimeoutError::WouldBlock,
        }
    }
}

impl<G> From<LockError<G>> for LockTimeoutError<G> {
    fn from(e: LockError<G>) -> Self {
        TryLockError::from(e).into()
    }
}

/// Why a raw unlock was refused; the lock is left as it was.
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

/// Why a semaphore release was refused: the count is at its bound (a
/// [`BoundedSemaphore`](crate::BoundedSemaphore)'s initial value, or
/// `u32::MAX` for a [`Semaphore`](crate::Semaphore)). No permit was added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("releasing would raise the semaphore above its bound {bound}")]
pub struct ReleaseError {
    /// The bound the count is at.
    pub bound: u32,
}

/// Why a [`RecoverableSemaphore`](crate::RecoverableSemaphore) release was
/// refused: the calling process holds no permit. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the calling process holds no permit of this semaphore")]
pub struct NotHeldError;

/// Why a barrier `wait` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: a party timed out, died, its action panicked,
    /// or it was aborted or reset while this party waited. Call `reset` to
    /// use it again.
    #[error("the barrier is broken")]
    Broken,
    /// This process cannot learn its own identity, which a party records so
    /// that its death breaks the barrier; it did not arrive.
    #[error(transparent)]
    UnknownIdentity(#[from] IdentityError),
}

/// Why a barrier `wait_timeout` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierTimeoutError {
    /// As [`BarrierError::Broken`].
    #[error("the barrier is broken")]
    Broken,
    /// This party's timeout passed; the barrier is now broken for the
    /// others.
    #[error("timed out waiting at the barrier (the barrier is now broken)")]
    TimedOut,
    /// As [`BarrierError::UnknownIdentity`].
    #[error(transparent)]
    UnknownIdentity(#[from] IdentityError),
}

impl From<BarrierError> for BarrierTimeoutError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Broken => BarrierTimeoutError::Broken,
            BarrierError::UnknownIdentity(e) => BarrierTimeoutError::UnknownIdentity(e),
        }
    }
}

impl Fail<Infallible> for BarrierError {
    fn fail(never: Infallible) -> Self {
        match never {}
    }
}

impl Fail<TimedOut> for BarrierTimeoutError {
    fn fail(_: TimedOut) -> Self {
        BarrierTimeoutError::TimedOut
    }
}

/// A barrier wait that broke (crate-private, converted per operation).
pub(crate) struct Broke;

impl Fail<Broke> for BarrierError {
    fn fail(_: Broke) -> Self {
        BarrierError::Broken
    }
}

impl Fail<Broke> for BarrierTimeoutError {
    fn fail(_: Broke) -> Self {
        BarrierTimeoutError::Broken
    }
}

/// The guard for a raw lock result, or the error (carrying the guard for a
/// dead holder's lock). `guard(consistent)` makes the guard.
pub(crate) fn guarded<G, E: WithGuard<G>>(
    r: Result<crate::raw::Acquired, E::Raw>,
    guard: impl FnOnce(bool) -> G,
) -> Result<G, E> {
    match r {
        Ok(crate::raw::Acquired::Clean) => Ok(guard(true)),
        Ok(crate::raw::Acquired::OwnerDied { previous }) => {
            Err(E::owner_died(OwnerDied::new(guard(false), previous)))
        }
        Err(e) => Err(E::from_raw(e)),
    }
}
