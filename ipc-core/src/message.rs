//! Values that cross to another process: one trait for every front door.
//!
//! A [`Message`] is encoded into bytes by the sender and decoded by the
//! receiver. Every queue, pipe, spawn argument, spawn return value and pool
//! task of the workspace takes its values through this trait, so one value
//! type works everywhere. Three kinds of values implement it:
//!
//! - **Plain-old-data**, copied as it is, with no encoding: the primitive
//!   integers and floats directly, and any [`Shareable`] type wrapped in
//!   [`Pod`]. [`Message::fixed_size`] tells a ring the exact size, so it can
//!   give each value a fixed slot.
//! - **Any `serde` type** (feature `serde`, on by default): `String`,
//!   `Vec<String>`, tuples, `Option`, maps, and every struct or enum with
//!   `#[derive(Serialize, Deserialize)]`, through
//!   [postcard](https://postcard.jamesmunns.com/)'s compact format (a
//!   stable, documented wire format; variable-length integers, no padding).
//! - `rkyv` archives, read in place, have their own receive calls on the
//!   rings that support them.
//!
//! Decoding checks everything it reads: a wrong length, trailing bytes or a
//! malformed encoding is a [`DecodeError`], never undefined behaviour, so
//! bytes written by a hostile peer can only make the receive fail.
//!
//! ```
//! use multiproc_core::message::{Message, Pod};
//!
//! let mut bytes = Vec::new();
//! 42u64.encode(&mut bytes)?;
//! assert_eq!(bytes.len(), 8); // copied, not encoded
//! assert_eq!(u64::decode(&bytes)?, 42);
//!
//! # #[cfg(feature = "serde")] {
//! let words = vec!["hello".to_string(), "world".to_string()];
//! let mut bytes = Vec::new();
//! words.encode(&mut bytes)?;
//! assert_eq!(Vec::<String>::decode(&bytes)?, words);
//! # }
//!
//! let tick = Pod([1u32, 2, 3]);
//! let mut bytes = Vec::new();
//! tick.encode(&mut bytes)?;
//! assert_eq!(Pod::<[u32; 3]>::decode(&bytes)?.0, [1, 2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::Shareable;
use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A value that can be sent to another process.
///
/// Implemented for the primitive numbers, for [`Pod`], and (feature
/// `serde`) for every type that is `Serialize + DeserializeOwned`.
pub trait Message: Sized {
    /// The size of every encoding, for values copied as plain bytes;
    /// `None` for variable-size encodings.
    fn fixed_size() -> Option<usize> {
        None
    }

    /// Appends the encoding of `self` to `out`.
    ///
    /// # Errors
    /// [`EncodeError`] if the value cannot be encoded (a `serde`
    /// serializer's error, such as a map with non-string keys the format
    /// refuses, or a handle that cannot travel this way).
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Decodes a value from all of `bytes`.
    ///
    /// # Errors
    /// [`DecodeError`] if `bytes` is not exactly one encoding of a value of
    /// this type.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;

    /// Calls `f` with the encoding of `self`, and returns what it returns.
    ///
    /// The front doors send through this: a plain-old-data value hands
    /// out its own bytes (no copy, no allocation), any other value is
    /// encoded into a buffer kept per thread and reused, so a send
    /// allocates only while that buffer grows to the largest message.
    ///
    /// ```
    /// use multiproc_core::message::Message;
    ///
    /// // A number lends its own bytes; a string is encoded into the buffer.
    /// assert_eq!(7u64.with_encoded(|bytes| bytes.len())?, 8);
    /// let copied = "hello".to_string().with_encoded(|bytes| bytes.to_vec())?;
    /// assert_eq!(String::decode(&copied)?, "hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Message::encode`]; `f` is then not called.
    #[inline]
    fn with_encoded<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, EncodeError> {
        encode_in_scratch(self, f)
    }
}

/// A scratch buffer larger than this is given back after use, so one huge
/// message does not keep its memory for the life of the thread.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    /// The per-thread encoding buffer of [`Message::with_encoded`].
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes `v` into this thread's scratch buffer and calls `f` with the
/// bytes (a fresh buffer if the scratch one is in use further up the
/// stack, as when a value's `Serialize` sends).
fn encode_in_scratch<T: Message, R>(v: &T, f: impl FnOnce(&[u8]) -> R) -> Result<R, EncodeError> {
    let encode = |buf: &mut Vec<u8>| {
        v.encode(buf)?;
        Ok(f(buf))
    };
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = encode(&mut buf);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => encode(&mut Vec::new()),
    })
}

/// Why a value could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The serializer refused the value.
    #[error("cannot encode the value: {0}")]
    Serialize(String),
    /// A handle in the value cannot be sent this way (for example an
    /// anonymous segment's descriptor outside a spawn's arguments).
    #[error("cannot send a handle this way: {0}")]
    Handle(String),
}

/// Why bytes could not be decoded into a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A fixed-size value was sent with another length.
    #[error("expected {expected} bytes, got {found}")]
    Length {
        /// The size of the type.
        expected: usize,
        /// The bytes received.
        found: usize,
    },
    /// Bytes were left after one value.
    #[error("{0} bytes left after the value")]
    TrailingBytes(usize),
    /// The bytes are not an encoding of this type.
    #[error("cannot decode the value: {0}")]
    Deserialize(String),
    /// A handle in the value cannot be received here.
    #[error("cannot receive a handle: {0}")]
    Handle(String),
    /// The bytes failed a check of the receiving side (an archive's
    /// validation, an alignment).
    #[error("{0}")]
    Invalid(&'static str),
}

/// A [`Shareable`] value sent as its bytes, with no encoding.
///
/// ```
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Tick { price: u64, qty: u32, side: u32 }
/// multiproc_core::impl_shareable!(Tick);
///
/// use multiproc_core::message::{Message, Pod};
/// let mut bytes = Vec::new();
/// Pod(Tick { price: 10, qty: 2, side: 1 }).encode(&mut bytes)?;
/// assert_eq!(bytes.len(), 16);
/// assert_eq!(Pod::<Tick>::decode(&bytes)?.0.price, 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Pod<T>(pub T);

impl<T> std::ops::Deref for Pod<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Pod<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// The bytes of a shareable value.
fn bytes_of<T: Shareable>(v: &T) -> &[u8] {
    // SAFETY: `Shareable` types have no padding-free guarantee violated by
    // reading them as bytes: they are plain data valid for every bit pattern
    // with no interior pointers; reading `size_of::<T>()` bytes of a live
    // `&T` is in bounds.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// A shareable value read from exactly its size in bytes.
fn from_bytes<T: Shareable>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() != std::mem::size_of::<T>() {
        return Err(DecodeError::Length {
            expected: std::mem::size_of::<T>(),
            found: bytes.len(),
        });
    }
    // SAFETY: `bytes` holds exactly `size_of::<T>()` bytes (checked above),
    // read unaligned, and every bit pattern is a valid `T` (`Shareable`).
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

impl<T: Shareable> Message for Pod<T> {
    fn fixed_size() -> Option<usize> {
        Some(std::mem::size_of::<T>())
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(bytes_of(&self.0));
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        from_bytes(bytes).map(Pod)
    }

    #[inline]
    fn with_encoded<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, EncodeError> {
        Ok(f(bytes_of(&self.0)))
    }
}

thread_local! {
    /// While the arguments of a spawn are encoded: the index the first
    /// exported descriptor gets in the child, and the descriptors exported.
    static EXPORTS: RefCell<Option<(usize, Vec<RawFd>)>> = const { RefCell::new(None) };
    /// While the arguments of a spawn are encoded: what to do once the
    /// child runs (enter it as a holder of the ends it was given).
    static CHILD_HOOKS: RefCell<Option<Vec<ChildHook>>> = const { RefCell::new(None) };
    /// Why a handle refused to be encoded: serializers keep only their own
    /// error, so the reason waits here for [`Message::encode`].
    static HANDLE_REFUSAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The error a handle type's `Serialize` returns when it cannot travel
/// (see [`export_fd`]); [`Message::encode`] reports `reason` as
/// [`EncodeError::Handle`] whatever the serializer makes of it.
#[cfg(feature = "serde")]
pub fn refuse_handle<E: serde::ser::Error>(reason: impl std::fmt::Display) -> E {
    let reason = reason.to_string();
    HANDLE_REFUSAL.with(|r| *r.borrow_mut() = Some(reason.clone()));
    E::custom(reason)
}

/// The reason recorded by [`refuse_handle`], if any (cleared).
#[cfg(feature = "serde")]
fn take_refusal() -> Option<String> {
    HANDLE_REFUSAL.with(|r| r.borrow_mut().take())
}

/// Passes a handle's descriptor to the child whose arguments are being
/// encoded, and returns the index under which the child finds it
/// ([`import_fd`]). Handle types (queues, locks, segments) call this from
/// their `Serialize` implementation.
///
/// The descriptor must stay open until the child has started (the handle
/// being encoded keeps it open).
///
/// # Errors
/// [`EncodeError::Handle`] outside the encoding of a spawn's arguments: a
/// descriptor cannot travel through shared memory, so an anonymous handle
/// can only be given to a child when it is started (a named one travels by
/// name anywhere).
pub fn export_fd(fd: BorrowedFd<'_>) -> Result<u32, EncodeError> {
    EXPORTS.with(|e| match &mut *e.borrow_mut() {
        Some((base, fds)) => {
            fds.push(fd.as_raw_fd());
            u32::try_from(*base + fds.len() - 1)
                .map_err(|_| EncodeError::Handle("too many descriptors".into()))
        }
        None => Err(EncodeError::Handle(
            "an anonymous handle can only be passed in the arguments of a child being \
             started (Process::start); create it with a name to send it anywhere"
                .into(),
        )),
    })
}

/// What a handle asks to be done with the child once it has started: it is
/// given the child's packed identity ([`ProcessId::to_u64`](crate::ProcessId::to_u64)).
pub type ChildHook = Box<dyn FnOnce(u64) + Send>;

/// Asks, while a spawn's arguments are encoded, for `hook` to run with the
/// child's identity once the child has started (before the caller gets
/// its handle back): how an end passed to a child gets the child entered
/// as its holder ([`crate::holders`]) before the parent can drop its copy.
/// Outside the encoding of a spawn's arguments the hook is dropped
/// unrun, and `false` is returned.
pub fn on_child_started(hook: impl FnOnce(u64) + Send + 'static) -> bool {
    CHILD_HOOKS.with(|h| match &mut *h.borrow_mut() {
        Some(hooks) => {
            hooks.push(Box::new(hook));
            true
        }
        None => false,
    })
}

/// Takes the descriptor a handle was exported with ([`export_fd`]), in the
/// child decoding its arguments. Handle types call this from their
/// `Deserialize` implementation.
///
/// # Errors
/// [`DecodeError::Handle`] if this process was not given a descriptor of
/// that index, or it was taken already.
pub fn import_fd(index: u32) -> Result<OwnedFd, DecodeError> {
    crate::inherit::take_inherited_fd(index as usize).ok_or_else(|| {
        DecodeError::Handle(format!(
            "no inherited descriptor {index}: handles are received by a child in its arguments"
        ))
    })
}

/// Runs `encode` with descriptor export enabled, numbering exported
/// descriptors from `base`; returns its result and the descriptors.
pub(crate) fn with_exports<T>(
    base: usize,
    encode: impl FnOnce() -> T,
) -> (T, Vec<RawFd>, Vec<ChildHook>) {
    /// Restores the previous context, also when `encode` panics.
    struct Restore(Option<(usize, Vec<RawFd>)>, Option<Vec<ChildHook>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let (previous, hooks) = (self.0.take(), self.1.take());
            EXPORTS.with(|e| *e.borrow_mut() = previous);
            CHILD_HOOKS.with(|h| *h.borrow_mut() = hooks);
        }
    }
    let restore = Restore(
        EXPORTS.with(|e| e.borrow_mut().replace((base, Vec::new()))),
        CHILD_HOOKS.with(|h| h.borrow_mut().replace(Vec::new())),
    );
    let out = encode();
    let fds = EXPORTS
        .with(|e| e.borrow_mut().take())
        .map(|(_, fds)| fds)
        .unwrap_or_default();
    let hooks = CHILD_HOOKS
        .with(|h| h.borrow_mut().take())
        .unwrap_or_default();
    drop(restore);
    (out, fds, hooks)
}

#[cfg(not(feature = "serde"))]
macro_rules! plain_messages {
    ($($t:ty),*) => {
        $(
            impl Message for $t {
                fn fixed_size() -> Option<usize> {
                    Some(std::mem::size_of::<$t>())
                }
                fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                    out.extend_from_slice(bytes_of(self));
                    Ok(())
                }
                fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                    from_bytes(bytes)
                }
                #[inline]
                fn with_encoded<R>(
                    &self,
                    f: impl FnOnce(&[u8]) -> R,
                ) -> Result<R, EncodeError> {
                    Ok(f(bytes_of(self)))
                }
            }
        )*
    };
}

#[cfg(not(feature = "serde"))]
plain_messages!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

#[cfg(feature = "serde")]
mod serde_impl {
    use super::{DecodeError, EncodeError, Message};
    use std::any::TypeId;

    /// The size of `T` if it is a primitive number, which is sent as its
    /// bytes rather than encoded (every bit pattern of these is valid).
    #[inline(always)]
    fn primitive_size<T: 'static>() -> Option<usize> {
        macro_rules! any_of {
            ($($t:ty),*) => {
                [$(TypeId::of::<$t>()),*].contains(&TypeId::of::<T>())
            };
        }
        any_of!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64)
            .then(std::mem::size_of::<T>)
    }

    /// The bytes of `v` if `T` is a primitive number.
    #[inline(always)]
    fn primitive_bytes<T: 'static>(v: &T) -> Option<&[u8]> {
        let n = primitive_size::<T>()?;
        // SAFETY: `T` is a primitive number (its TypeId is one of theirs):
        // `n` bytes, no padding, no pointers, borrowed from a live `&T`.
        Some(unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), n) })
    }

    impl<T: serde::Serialize + serde::de::DeserializeOwned + 'static> Message for T {
        #[inline]
        fn with_encoded<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, EncodeError> {
            match primitive_bytes(self) {
                Some(bytes) => Ok(f(bytes)),
                None => super::encode_in_scratch(self, f),
            }
        }

        fn fixed_size() -> Option<usize> {
            primitive_size::<T>()
        }

        fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
            if let Some(bytes) = primitive_bytes(self) {
                out.extend_from_slice(bytes);
                return Ok(());
            }
            let start = out.len();
            match postcard::to_io(self, &mut *out) {
                Ok(_) => Ok(()),
                Err(e) => {
                    // Nothing of a failed encoding is left behind.
                    out.truncate(start);
                    Err(match super::take_refusal() {
                        Some(reason) => EncodeError::Handle(reason),
                        None => EncodeError::Serialize(e.to_string()),
                    })
                }
            }
        }

        fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
            if let Some(n) = primitive_size::<T>() {
                if bytes.len() != n {
                    return Err(DecodeError::Length {
                        expected: n,
                        found: bytes.len(),
                    });
                }
                // SAFETY: `T` is a primitive number of `n` bytes (its TypeId
                // is one of theirs), valid for every bit pattern; `bytes`
                // holds exactly `n` bytes, read unaligned.
                return Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() });
            }
            let (v, rest) = postcard::take_from_bytes::<T>(bytes)
                .map_err(|e| DecodeError::Deserialize(e.to_string()))?;
            if !rest.is_empty() {
                return Err(DecodeError::TrailingBytes(rest.len()));
            }
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Message + PartialEq + std::fmt::Debug>(v: T) -> Vec<u8> {
        let mut b = Vec::new();
        v.encode(&mut b).unwrap();
        assert_eq!(T::decode(&b).unwrap(), v);
        b
    }

    #[test]
    fn numbers_are_their_bytes() {
        assert_eq!(round_trip(0x0102_0304u32), 0x0102_0304u32.to_ne_bytes());
        assert_eq!(round_trip(-1.5f64).len(), 8);
        assert_eq!(u64::fixed_size(), Some(8));
        assert!(matches!(
            u64::decode(&[1, 2, 3]),
            Err(DecodeError::Length {
                expected: 8,
                found: 3
            })
        ));
    }

    #[test]
    fn pod_values_are_their_bytes() {
        let b = round_trip(Pod([7u16; 5]));
        assert_eq!(b.len(), 10);
        assert_eq!(Pod::<[u16; 5]>::fixed_size(), Some(10));
        assert!(Pod::<[u16; 5]>::decode(&b[1..]).is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_values_round_trip_and_bad_bytes_are_errors() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Order {
            id: u64,
            sym: String,
            tags: Vec<String>,
            px: Option<f64>,
        }
        let o = Order {
            id: 7,
            sym: "ABC".into(),
            tags: vec!["ioc".into(), "day".into()],
            px: Some(1.5),
        };
        let b = round_trip(o);
        assert_eq!(Order::fixed_size(), None);
        assert!(matches!(
            Order::decode(&b[..b.len() - 1]),
            Err(DecodeError::Deserialize(_))
        ));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Order::decode(&long), Err(DecodeError::TrailingBytes(1)));
        round_trip(String::from("héllo"));
        round_trip(vec!["a".to_string(); 3]);
        round_trip((1u8, "x".to_string(), vec![1i64, -2]));
        // Invalid UTF-8 in a string is refused.
        assert!(String::decode(&[2, 0xff, 0xfe]).is_err());
        // A length far beyond the bytes allocates nothing and fails.
        assert!(Vec::<u64>::decode(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn with_encoded_lends_the_encoding() {
        assert_eq!(
            7u32.with_encoded(|b| b.to_vec()).unwrap(),
            7u32.to_ne_bytes()
        );
        assert_eq!(Pod([1u8, 2]).with_encoded(|b| b.len()).unwrap(), 2);
        #[cfg(feature = "serde")]
        {
            let s = "x".repeat(100);
            let mut direct = Vec::new();
            s.encode(&mut direct).unwrap();
            assert_eq!(s.with_encoded(|b| b.to_vec()).unwrap(), direct);
            // Nested use (a value encoded while another is) gets its own
            // buffer.
            let both = s
                .with_encoded(|outer| {
                    let inner = 5u8.to_string().with_encoded(|b| b.to_vec()).unwrap();
                    (outer.len(), inner)
                })
                .unwrap();
            assert_eq!(both.0, direct.len());
        }
    }

    #[test]
    fn encoding_appends() {
        let mut b = vec![9u8];
        5u8.encode(&mut b).unwrap();
        assert_eq!(b, [9, 5]);
    }
}
