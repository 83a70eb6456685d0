//! Error types of every ring and front door of this crate, one per operation.
//!
//! Send errors hand the value back (`TrySendError::Full(value)`), so a full or
//! closed queue never loses what the caller tried to send. Receive errors tell
//! an empty ring from a closed one, and a ring whose shared indices or lengths
//! were found corrupt ([`Corrupt`]) from both: memory another process can write
//! is never trusted, and a bad value is reported, never followed.
//!
//! The types are shared by the SPSC, MPMC and broadcast rings and by `Queue`
//! and `pipe`; variants a given ring cannot produce are documented there.

use ipc_core::{IdentityError, SegmentError};
use std::fmt;

/// A message does not fit in the ring (or slot) at all, whatever the consumer
/// does: it is refused at send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("message of {len} bytes is larger than the largest this ring carries ({max} bytes)")]
pub struct MessageTooLarge {
    /// The length of the refused message in bytes.
    pub len: usize,
    /// The largest message the ring accepts, in bytes.
    pub max: usize,
}

/// A value read from shared memory failed its check: an index, a length or a
/// message header that no well-behaved peer could have written. The ring
/// should be considered unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt ring: {what} (found {value:#x})")]
pub struct Corrupt {
    /// What was wrong, e.g. `"message length exceeds the committed bytes"`.
    pub what: &'static str,
    /// The offending value as read from shared memory (or a derived one).
    pub value: u64,
}

impl Corrupt {
    /// A corruption report.
    pub const fn new(what: &'static str, value: u64) -> Self {
        Corrupt { what, value }
    }
}

/// Why a non-blocking send (`try_send`, `try_reserve`, `put_nowait`) failed.
/// Every variant hands the value back.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The ring has no room now. It may have room at any moment.
    #[error("the ring is full")]
    Full(T),
    /// The receiving side closed the ring (or died); nothing sent now would
    /// ever be read.
    #[error("the receiving side closed the ring")]
    Closed(T),
    /// The message can never fit.
    #[error("{1}")]
    TooLarge(T, MessageTooLarge),
    /// The ring's shared state is corrupt.
    #[error("{1}")]
    Corrupt(T, Corrupt),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which a claim records so that others can recover it if
    /// this process dies. Nothing was sent.
    #[error("{1}")]
    UnknownIdentity(T, IdentityError),
}

/// Why a blocking send (`send`, `reserve`, `put`) failed. Hands the value back.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T> {
    /// The receiving side closed the ring (or died).
    #[error("the receiving side closed the ring")]
    Closed(T),
    /// The message can never fit.
    #[error("{1}")]
    TooLarge(T, MessageTooLarge),
    /// The ring's shared state is corrupt.
    #[error("{1}")]
    Corrupt(T, Corrupt),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which a claim records so that others can recover it if
    /// this process dies. Nothing was sent.
    #[error("{1}")]
    UnknownIdentity(T, IdentityError),
}

/// Why a send with a time limit (`send_timeout`, `reserve_timeout`,
/// `put_timeout`) failed. Hands the value back.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendTimeoutError<T> {
    /// The ring stayed full until the deadline.
    #[error("timed out waiting for room in the ring")]
    Timeout(T),
    /// The receiving side closed the ring (or died).
    #[error("the receiving side closed the ring")]
    Closed(T),
    /// The message can never fit.
    #[error("{1}")]
    TooLarge(T, MessageTooLarge),
    /// The ring's shared state is corrupt.
    #[error("{1}")]
    Corrupt(T, Corrupt),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which a claim records so that others can recover it if
    /// this process dies. Nothing was sent.
    #[error("{1}")]
    UnknownIdentity(T, IdentityError),
}

macro_rules! send_error_common {
    ($name:ident { $($extra:ident),* }) => {
        impl<T> $name<T> {
            /// The value that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($name::$extra(v) => v,)*
                    $name::Closed(v) => v,
                    $name::TooLarge(v, _) => v,
                    $name::Corrupt(v, _) => v,
                    $name::UnknownIdentity(v, _) => v,
                }
            }

            /// Whether the receiving side closed the ring (or died).
            pub fn is_closed(&self) -> bool {
                matches!(self, $name::Closed(_))
            }

            /// The same error with the value mapped (e.g. dropped to `()`).
            pub fn map<U>(self, f: impl FnOnce(T) -> U) -> $name<U> {
                match self {
                    $($name::$extra(v) => $name::$extra(f(v)),)*
                    $name::Closed(v) => $name::Closed(f(v)),
                    $name::TooLarge(v, e) => $name::TooLarge(f(v), e),
                    $name::Corrupt(v, e) => $name::Corrupt(f(v), e),
                    $name::UnknownIdentity(v, e) => $name::UnknownIdentity(f(v), e),
                }
            }
        }

        // Debug without requiring `T: Debug`, as std's channel errors do.
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$extra(_) => f.write_str(concat!(stringify!($name), "::", stringify!($extra), "(..)")),)*
                    $name::Closed(_) => f.write_str(concat!(stringify!($name), "::Closed(..)")),
                    $name::TooLarge(_, e) => write!(f, "{}::TooLarge(.., {e:?})", stringify!($name)),
                    $name::Corrupt(_, e) => write!(f, "{}::Corrupt(.., {e:?})", stringify!($name)),
                    $name::UnknownIdentity(_, e) => write!(f, "{}::UnknownIdentity(.., {e:?})", stringify!($name)),
                }
            }
        }
    };
}

send_error_common!(TrySendError { Full });
send_error_common!(SendError {});
send_error_common!(SendTimeoutError { Timeout });

impl<T> TrySendError<T> {
    /// Whether the ring was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Closed(v) => TrySendError::Closed(v),
            SendError::TooLarge(v, m) => TrySendError::TooLarge(v, m),
            SendError::Corrupt(v, c) => TrySendError::Corrupt(v, c),
            SendError::UnknownIdentity(v, e) => TrySendError::UnknownIdentity(v, e),
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Closed(v) => SendTimeoutError::Closed(v),
            SendError::TooLarge(v, m) => SendTimeoutError::TooLarge(v, m),
            SendError::Corrupt(v, c) => SendTimeoutError::Corrupt(v, c),
            SendError::UnknownIdentity(v, e) => SendTimeoutError::UnknownIdentity(v, e),
        }
    }
}

/// Why a non-blocking receive (`try_recv`, `get_nowait`) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing to read now. A message may arrive at any moment.
    #[error("the ring is empty")]
    Empty,
    /// The sending side closed the ring (or died) and everything it sent
    /// before has been read.
    #[error("the sending side closed the ring and it is drained")]
    Closed,
    /// The caller's buffer cannot hold the next message, which stays in the
    /// ring (`recv_into` and friends only).
    #[error("the next message has {needed} bytes, the buffer only {capacity}")]
    BufferTooSmall {
        /// The length of the next message.
        needed: usize,
        /// The length of the buffer given.
        capacity: usize,
    },
    /// The next message could not be decoded as the type asked for (a typed
    /// receive of a message of another length, or an archive that failed its
    /// check). The message was consumed.
    #[error("message could not be decoded: {0}")]
    Decode(&'static str),
    /// The ring's shared state is corrupt.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which a claim records so that others can recover it if
    /// this process dies. Nothing was received.
    #[error(transparent)]
    UnknownIdentity(IdentityError),
}

/// Why a blocking receive (`recv`, `get`) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The sending side closed the ring (or died) and it is drained.
    #[error("the sending side closed the ring and it is drained")]
    Closed,
    /// The caller's buffer cannot hold the next message, which stays in the
    /// ring.
    #[error("the next message has {needed} bytes, the buffer only {capacity}")]
    BufferTooSmall {
        /// The length of the next message.
        needed: usize,
        /// The length of the buffer given.
        capacity: usize,
    },
    /// The next message could not be decoded as the type asked for; it was
    /// consumed.
    #[error("message could not be decoded: {0}")]
    Decode(&'static str),
    /// The ring's shared state is corrupt.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which a claim records so that others can recover it if
    /// this process dies. Nothing was received.
    #[error(transparent)]
    UnknownIdentity(IdentityError),
}

/// Why a receive with a time limit (`recv_timeout`, `get_timeout`) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// Nothing arrived before the deadline.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The sending side closed the ring (or died) and it is drained.
    #[error("the sending side closed the ring and it is drained")]
    Closed,
    /// The caller's buffer cannot hold the next message, which stays in the
    /// ring.
    #[error("the next message has {needed} bytes, the buffer only {capacity}")]
    BufferTooSmall {
        /// The length of the next message.
        needed: usize,
        /// The length of the buffer given.
        capacity: usize,
    },
    /// The next message could not be decoded as the type asked for; it was
    /// consumed.
    #[error("message could not be decoded: {0}")]
    Decode(&'static str),
    /// The ring's shared state is corrupt.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which a claim records so that others can recover it if
    /// this process dies. Nothing was received.
    #[error(transparent)]
    UnknownIdentity(IdentityError),
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Closed => TryRecvError::Closed,
            RecvError::BufferTooSmall { needed, capacity } => {
                TryRecvError::BufferTooSmall { needed, capacity }
            }
            RecvError::Decode(w) => TryRecvError::Decode(w),
            RecvError::Corrupt(c) => TryRecvError::Corrupt(c),
            RecvError::UnknownIdentity(e) => TryRecvError::UnknownIdentity(e),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Closed => RecvTimeoutError::Closed,
            RecvError::BufferTooSmall { needed, capacity } => {
                RecvTimeoutError::BufferTooSmall { needed, capacity }
            }
            RecvError::Decode(w) => RecvTimeoutError::Decode(w),
            RecvError::Corrupt(c) => RecvTimeoutError::Corrupt(c),
            RecvError::UnknownIdentity(e) => RecvTimeoutError::UnknownIdentity(e),
        }
    }
}

/// Why creating, opening or attaching to a ring failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The configuration cannot describe a ring (zero or oversized capacity,
    /// a slot of the wrong size, ...).
    #[error("invalid ring configuration: {0}")]
    InvalidConfig(&'static str),
    /// That endpoint (the producer, the consumer, a subscriber slot) is held
    /// by another process that is still alive. A dead holder's endpoint is
    /// taken over instead.
    #[error("the {role} of this ring is already attached by live process {pid}")]
    AlreadyAttached {
        /// Which endpoint: `"producer"`, `"consumer"`, ...
        role: &'static str,
        /// The pid of the live holder.
        pid: u32,
    },
    /// Every endpoint slot of the ring is taken by a live process.
    #[error("every {role} slot of this ring is taken")]
    NoFreeSlot {
        /// Which kind of endpoint.
        role: &'static str,
    },
    /// The segment's control block holds values no ring of this kind has.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// Creating, opening or mapping the segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which an endpoint's owner records so that others can
    /// take it over if this process dies. Nothing was attached.
    #[error(transparent)]
    UnknownIdentity(#[from] IdentityError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_errors_hand_the_value_back() {
        let e = TrySendError::Full(vec![1u8, 2]);
        assert!(e.is_full());
        assert_eq!(e.into_inner(), vec![1, 2]);
        let e = SendTimeoutError::TooLarge(7u32, MessageTooLarge { len: 9, max: 8 });
        assert_eq!(
            format!("{e:?}"),
            "SendTimeoutError::TooLarge(.., MessageTooLarge { len: 9, max: 8 })"
        );
        assert_eq!(
            e.to_string(),
            "message of 9 bytes is larger than the largest this ring carries (8 bytes)"
        );
        let e: TrySendError<u32> = SendError::Closed(3).into();
        assert!(e.is_closed());
        assert_eq!(e.map(|v| v * 2).into_inner(), 6);
    }

    #[test]
    fn recv_errors_convert() {
        let c = Corrupt::new("bad length", 99);
        assert_eq!(
            TryRecvError::from(RecvError::Corrupt(c)),
            TryRecvError::Corrupt(c)
        );
        assert_eq!(
            RecvTimeoutError::from(RecvError::Closed),
            RecvTimeoutError::Closed
        );
        assert_eq!(c.to_string(), "corrupt ring: bad length (found 0x63)");
    }
}
