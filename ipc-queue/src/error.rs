//! Error types of every ring and front door of this crate, one per operation.
//!
//! Send errors hand the value back (`TrySendError::Full(value)`), so a full or
//! closed queue never loses what the caller tried to send. Receive errors tell
//! an empty ring from a closed one, and a ring whose shared indices or lengths
//! were found corrupt ([`Corrupt`]) from both: memory another process can write
//! is never trusted, and a bad value is reported, never followed.
//!
//! Placing a ring (creating, opening, mapping it) fails with
//! [`ObjectError`], the one placement error of the workspace; attaching an
//! end of a placed ring with [`AttachError`]. The operation errors are
//! shared by the SPSC, MPMC and broadcast rings and by `Queue` and `pipe`;
//! variants a given ring cannot produce are documented there.

use multiproc_core::message::{DecodeError, EncodeError};
use multiproc_core::object::ObjectError;
use multiproc_core::IdentityError;
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

/// Defines a send error: the variants every send error has, after the ones
/// of its own, each handing the value back; `into_inner`, `is_closed`,
/// `map`, and a `Debug` that does not need `T: Debug`.
macro_rules! send_error {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $extra:ident,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name<T> {
            $($(#[$vmeta])* $extra(T),)*
            /// The receiving side closed the ring (or died); nothing sent now
            /// would ever be read.
            #[error("the receiving side closed the ring")]
            Closed(T),
            /// The message can never fit.
            #[error("{1}")]
            TooLarge(T, MessageTooLarge),
            /// The value could not be encoded (a typed send of a value the
            /// serializer refuses). Nothing was sent.
            #[error("{1}")]
            Encode(T, EncodeError),
            /// The ring's shared state is corrupt.
            #[error("{1}")]
            Corrupt(T, Corrupt),
            /// This process cannot learn its own identity (most often: no
            /// free file descriptor), which a claim records so that others
            /// can recover it if this process dies. Nothing was sent.
            #[error("{1}")]
            UnknownIdentity(T, IdentityError),
        }

        impl<T> $name<T> {
            /// The value that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($name::$extra(v) => v,)*
                    $name::Closed(v)
                    | $name::TooLarge(v, _)
                    | $name::Encode(v, _)
                    | $name::Corrupt(v, _)
                    | $name::UnknownIdentity(v, _) => v,
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
                    $name::Encode(v, e) => $name::Encode(f(v), e),
                    $name::Corrupt(v, e) => $name::Corrupt(f(v), e),
                    $name::UnknownIdentity(v, e) => $name::UnknownIdentity(f(v), e),
                }
            }
        }

        // Debug without requiring `T: Debug`, as std's channel errors do.
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let name = stringify!($name);
                match self {
                    $($name::$extra(_) => write!(f, "{name}::{}(..)", stringify!($extra)),)*
                    $name::Closed(_) => write!(f, "{name}::Closed(..)"),
                    $name::TooLarge(_, e) => write!(f, "{name}::TooLarge(.., {e:?})"),
                    $name::Encode(_, e) => write!(f, "{name}::Encode(.., {e:?})"),
                    $name::Corrupt(_, e) => write!(f, "{name}::Corrupt(.., {e:?})"),
                    $name::UnknownIdentity(_, e) => write!(f, "{name}::UnknownIdentity(.., {e:?})"),
                }
            }
        }
    };
}

/// Defines a receive error: the variants of its own, then the ones every
/// receive error has.
macro_rules! recv_error {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $extra:ident,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $extra,)*
            /// The sending side closed the ring (or died) and everything it
            /// sent before has been read.
            #[error("the sending side closed the ring and it is drained")]
            Closed,
            /// The caller's buffer cannot hold the next message, which stays
            /// in the ring (`recv_into` and friends only).
            #[error("the next message has {needed} bytes, the buffer only {capacity}")]
            BufferTooSmall {
                /// The length of the next message.
                needed: usize,
                /// The length of the buffer given.
                capacity: usize,
            },
            /// The next message could not be decoded as the type asked for
            /// (a typed receive of a message of another length or encoding,
            /// or an archive that failed its check). The message was
            /// consumed.
            #[error("message could not be decoded: {0}")]
            Decode(DecodeError),
            /// The ring's shared state is corrupt.
            #[error(transparent)]
            Corrupt(#[from] Corrupt),
            /// This process cannot learn its own identity (most often: no
            /// free file descriptor), which a claim records so that others
            /// can recover it if this process dies. Nothing was received.
            #[error(transparent)]
            UnknownIdentity(IdentityError),
        }
    };
}

/// `impl From<$from> for $to`: the shared variants carry over, each listed
/// extra variant of `$from` becomes the one named.
macro_rules! convert {
    (send $from:ident => $to:ident { $($a:ident => $b:ident),* }) => {
        impl<T> From<$from<T>> for $to<T> {
            fn from(e: $from<T>) -> Self {
                match e {
                    $($from::$a(v) => $to::$b(v),)*
                    $from::Closed(v) => $to::Closed(v),
                    $from::TooLarge(v, m) => $to::TooLarge(v, m),
                    $from::Encode(v, e) => $to::Encode(v, e),
                    $from::Corrupt(v, c) => $to::Corrupt(v, c),
                    $from::UnknownIdentity(v, e) => $to::UnknownIdentity(v, e),
                }
            }
        }
    };
    (recv $from:ident => $to:ident { $($a:ident => $b:ident),* }) => {
        impl From<$from> for $to {
            fn from(e: $from) -> Self {
                match e {
                    $($from::$a => $to::$b,)*
                    $from::Closed => $to::Closed,
                    $from::BufferTooSmall { needed, capacity } => {
                        $to::BufferTooSmall { needed, capacity }
                    }
                    $from::Decode(w) => $to::Decode(w),
                    $from::Corrupt(c) => $to::Corrupt(c),
                    $from::UnknownIdentity(e) => $to::UnknownIdentity(e),
                }
            }
        }
    };
}

send_error! {
    /// Why a non-blocking send (`try_send`, `try_reserve`, `put_nowait`)
    /// failed. Every variant hands the value back.
    TrySendError {
        /// The ring has no room now. It may have room at any moment.
        #[error("the ring is full")]
        Full,
    }
}

send_error! {
    /// Why a blocking send (`send`, `reserve`, `put`) failed. Hands the value
    /// back.
    SendError {}
}

send_error! {
    /// Why a send with a time limit (`send_timeout`, `reserve_timeout`,
    /// `put_timeout`) failed. Hands the value back.
    SendTimeoutError {
        /// The ring stayed full until the deadline.
        #[error("timed out waiting for room in the ring")]
        Timeout,
    }
}

impl<T> TrySendError<T> {
    /// Whether the ring was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

convert!(send SendError => TrySendError {});
convert!(send SendError => SendTimeoutError {});
// A blocking call that found the ring full, or waited without a deadline
// and stopped, did so because the receiving side is gone.
convert!(send TrySendError => SendError { Full => Closed });
convert!(send SendTimeoutError => SendError { Timeout => Closed });
convert!(send TrySendError => SendTimeoutError { Full => Timeout });
convert!(send SendTimeoutError => TrySendError { Timeout => Full });

recv_error! {
    /// Why a non-blocking receive (`try_recv`, `get_nowait`) failed.
    TryRecvError {
        /// Nothing to read now. A message may arrive at any moment.
        #[error("the ring is empty")]
        Empty,
    }
}

recv_error! {
    /// Why a blocking receive (`recv`, `get`) failed.
    RecvError {}
}

recv_error! {
    /// Why a receive with a time limit (`recv_timeout`, `get_timeout`)
    /// failed.
    RecvTimeoutError {
        /// Nothing arrived before the deadline.
        #[error("timed out waiting for a message")]
        Timeout,
    }
}

convert!(recv RecvError => TryRecvError {});
convert!(recv RecvError => RecvTimeoutError {});
// A wait without a deadline ends only when the sending side is gone.
convert!(recv RecvTimeoutError => RecvError { Timeout => Closed });
convert!(recv TryRecvError => RecvTimeoutError { Empty => Timeout });
convert!(recv RecvTimeoutError => TryRecvError { Timeout => Empty });

/// A receive error that ends an iteration over received values: `Closed`
/// (closed and drained), and for the non-blocking forms `Empty` too.
pub(crate) trait EndsIteration {
    fn ends_iteration(&self) -> bool;
}

impl EndsIteration for RecvError {
    fn ends_iteration(&self) -> bool {
        matches!(self, RecvError::Closed)
    }
}

impl EndsIteration for TryRecvError {
    fn ends_iteration(&self) -> bool {
        matches!(self, TryRecvError::Closed | TryRecvError::Empty)
    }
}

/// The values `next` receives, each as its `Ok`, or as its error when one
/// that does not end the iteration comes (a message that does not decode,
/// a corrupt ring); ends at the first error that does (`Closed`, `Empty`).
pub(crate) fn received<T, E: EndsIteration>(
    mut next: impl FnMut() -> Result<T, E>,
) -> impl Iterator<Item = Result<T, E>> {
    std::iter::from_fn(move || match next() {
        Err(e) if e.ends_iteration() => None,
        r => Some(r),
    })
}

/// Why attaching an end of a ring (a producer, a consumer, a publisher, a
/// typed end) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The ring cannot carry this end (a typed end of a ring made for
    /// another message size, a joinable end of a plain queue, ...).
    #[error("invalid ring configuration: {0}")]
    InvalidConfig(&'static str),
    /// That endpoint (the producer, the consumer, the publisher) is held by
    /// another process that is still alive, or by this one. A dead holder's
    /// endpoint is taken over instead.
    #[error("the {role} of this ring is already attached by live process {pid}")]
    AlreadyAttached {
        /// Which endpoint: `"producer"`, `"consumer"`, ...
        role: &'static str,
        /// The pid of the live holder.
        pid: u32,
    },
    /// Every endpoint slot of the ring is taken by a live process (or
    /// every holder slot of an end given to several processes).
    #[error("every {role} slot of this ring is taken")]
    NoFreeSlot {
        /// Which kind of endpoint.
        role: &'static str,
    },
    /// The end a process was given has been closed since (every process
    /// that held it dropped it or died).
    #[error("the {role} end was closed before it could be joined")]
    Closed {
        /// Which endpoint.
        role: &'static str,
    },
    /// The ring's shared indices hold values no ring of this kind has.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// Placing or finding the ring itself failed (for the shorthands that
    /// open a ring and attach an end in one call).
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// This process cannot learn its own identity (most often: no free file
    /// descriptor), which an endpoint's owner records so that others can
    /// take it over if this process dies. Nothing was attached.
    #[error(transparent)]
    UnknownIdentity(#[from] IdentityError),
}

#[cfg(not(loom))]
impl AttachError {
    /// The error for a failed claim of the end named `role`.
    pub(crate) fn claim(role: &'static str, e: crate::raw::ClaimError) -> AttachError {
        match e {
            crate::raw::ClaimError::Held { owner } => AttachError::AlreadyAttached {
                role,
                pid: multiproc_core::ProcessId::from_u64(owner).pid,
            },
            crate::raw::ClaimError::UnknownIdentity(e) => AttachError::UnknownIdentity(e),
            crate::raw::ClaimError::Corrupt(c) => AttachError::Corrupt(c),
            crate::raw::ClaimError::TooManyHolders => AttachError::NoFreeSlot { role },
            crate::raw::ClaimError::Closed => AttachError::Closed { role },
        }
    }
}

/// The placement error for a configuration the raw ring `what` refuses.
#[cfg(not(loom))]
pub(crate) fn invalid_config(what: &'static str, e: crate::raw::ConfigError) -> ObjectError {
    ObjectError::InvalidConfig {
        what,
        reason: e.0.to_string(),
    }
}

/// The placement error for memory that holds no valid `what`.
#[cfg(not(loom))]
pub(crate) fn wrong_object(what: &'static str, e: Corrupt) -> ObjectError {
    ObjectError::WrongObject {
        expected: what,
        detail: e.to_string(),
    }
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
        assert_eq!(
            format!("{:?}", TrySendError::Full(())),
            "TrySendError::Full(..)"
        );
        assert!(SendError::from(SendTimeoutError::Timeout(1)).is_closed());
        assert!(TrySendError::from(SendTimeoutError::Timeout(1)).is_full());
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
        assert_eq!(
            RecvError::from(RecvTimeoutError::Timeout),
            RecvError::Closed
        );
        assert_eq!(c.to_string(), "corrupt ring: bad length (found 0x63)");
    }
}
