//! `rkyv` messages over the SPSC ring: serialized straight into the ring,
//! read in place as `&Archived<T>`.
//!
//! [`ArchiveProducer::send`] serializes a value directly into space reserved
//! in the ring (no intermediate buffer); [`ArchiveConsumer::recv`] checks the
//! archive with `bytecheck` and hands out an [`ArchivedGuard`] that
//! dereferences to `&Archived<T>` inside the ring, releasing the room when
//! dropped. Unchecked access exists only behind the `unsafe`
//! [`ArchiveConsumer::recv_unchecked`].
//!
//! Archives start 16-byte aligned in the ring (enough for every archived
//! primitive rkyv has), so a record may carry 8 bytes of leading padding.
//!
//! The producer does not know an archive's size before writing it: it
//! reserves room for about the size of the last archive it wrote (at least
//! 256 bytes) and, when that is too small, doubles the reservation and
//! serializes again. Before it asks for the ring's largest message it checks
//! (by serializing into a scratch buffer, off the fast path) that the value
//! fits at all; if not, it is [`TooLarge`](crate::error::TrySendError::TooLarge)
//! at once, without waiting for room.
//!
//! # Trust
//!
//! Checked access protects against archives that were malformed when the
//! consumer validated them: a buggy or crashed producer. The bytes stay in
//! shared memory while the guard lives, so a producer process that keeps
//! rewriting a message *after* committing it could change what the guard
//! shows after validation; treat such a peer as hostile and copy the bytes
//! out ([`ArchivedGuard::bytes`]) and validate the copy if that matters.
//!
//! ```
//! use multiproc_queue::spsc::SpscRing;
//!
//! #[derive(rkyv::Archive, rkyv::Serialize)]
//! struct Order { id: u64, symbol: String }
//!
//! let ring = SpscRing::builder().capacity(4096).create()?;
//! let mut tx = ring.archive_producer::<Order>()?;
//! let mut rx = ring.archive_consumer::<Order>()?;
//! tx.send(&Order { id: 7, symbol: "ABC".into() })?;
//! let order = rx.recv()?;
//! assert_eq!(order.id, 7);
//! assert_eq!(order.symbol, "ABC");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::endpoint::typed_end;
use super::{Consumer, Grant, Producer, RecvGuard, SpscRing};
use crate::error::{
    AttachError, MessageTooLarge, RecvError, RecvTimeoutError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use ::rkyv::api::high::{HighSerializer, HighValidator};
use ::rkyv::rancor::Failure;
use ::rkyv::ser::allocator::ArenaHandle;
use ::rkyv::ser::writer::Buffer;
use ::rkyv::{Archive, Portable};
use multiproc_core::message::DecodeError;
use multiproc_core::wait::WaitStrategy;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// Archives start at multiples of this in the ring.
pub const ARCHIVE_ALIGN: usize = 16;

const FIRST_GUESS: usize = 256;

/// The bound a value needs to be sent: serializable by rkyv's high-level
/// serializer into a fixed buffer.
pub trait SerializeInPlace:
    for<'a, 'b> ::rkyv::Serialize<HighSerializer<Buffer<'b>, ArenaHandle<'a>, Failure>>
{
}

impl<T> SerializeInPlace for T where
    T: for<'a, 'b> ::rkyv::Serialize<HighSerializer<Buffer<'b>, ArenaHandle<'a>, Failure>>
{
}

/// The bound an archived type needs for checked access.
pub trait CheckedArchive:
    Portable + for<'a> ::rkyv::bytecheck::CheckBytes<HighValidator<'a, Failure>>
{
}

impl<A> CheckedArchive for A where
    A: Portable + for<'a> ::rkyv::bytecheck::CheckBytes<HighValidator<'a, Failure>>
{
}

impl SpscRing {
    /// Attaches the producing end for `rkyv` values of `T`.
    ///
    /// # Errors
    /// As [`SpscRing::producer`].
    pub fn archive_producer<T: Archive + SerializeInPlace>(
        &self,
    ) -> Result<ArchiveProducer<T>, AttachError> {
        Ok(ArchiveProducer {
            inner: self.producer()?,
            guess: FIRST_GUESS,
            _t: PhantomData,
        })
    }

    /// Attaches the consuming end for `rkyv` values of `T`.
    ///
    /// # Errors
    /// As [`SpscRing::consumer`].
    pub fn archive_consumer<T: Archive>(&self) -> Result<ArchiveConsumer<T>, AttachError> {
        Ok(ArchiveConsumer {
            inner: self.consumer()?,
            _t: PhantomData,
        })
    }
}

/// The writing end for `rkyv` values of `T`.
#[derive(Debug)]
pub struct ArchiveProducer<T> {
    inner: Producer,
    guess: usize,
    _t: PhantomData<fn(&T)>,
}

/// The reading end for `rkyv` values of `T`.
#[derive(Debug)]
pub struct ArchiveConsumer<T> {
    inner: Consumer,
    _t: PhantomData<fn() -> T>,
}

/// A received archive, read in place: dereferences to `&Archived<T>`.
/// Dropping it gives the room back to the producer.
pub struct ArchivedGuard<'a, T: Archive> {
    guard: RecvGuard<'a>,
    start: usize,
    _t: PhantomData<&'a T::Archived>,
}

impl<T: Archive> std::fmt::Debug for ArchivedGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivedGuard")
            .field("len", &(self.guard.len() - self.start))
            .finish()
    }
}

impl<T: Archive> ArchivedGuard<'_, T> {
    /// The archive's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.guard[self.start..]
    }
}

impl<T: Archive> std::ops::Deref for ArchivedGuard<'_, T> {
    type Target = T::Archived;
    #[inline]
    fn deref(&self) -> &T::Archived {
        // SAFETY: the bytes were validated as a `T::Archived` when the guard
        // was made (or the caller of `recv_unchecked` vouched for them), and
        // they stay in the ring, unreleased, while the guard lives.
        unsafe { ::rkyv::access_unchecked::<T::Archived>(self.bytes()) }
    }
}

/// Leading padding that puts a payload at `offset` on a 16-byte boundary.
/// The data area starts 128-aligned in every process, so both ends compute
/// the same value from the offset.
#[inline]
fn lead(offset: usize) -> usize {
    (ARCHIVE_ALIGN - offset % ARCHIVE_ALIGN) % ARCHIVE_ALIGN
}

enum Attempt {
    Done(usize),
    TooSmall,
}

fn serialize_into<T: SerializeInPlace>(value: &T, mut grant: Grant<'_>) -> Attempt {
    let pad = lead(grant.offset_in_ring());
    let written = {
        let buf = Buffer::from(&mut grant[pad..]);
        match ::rkyv::api::high::to_bytes_in::<_, Failure>(value, buf) {
            Ok(buf) => buf.len(),
            Err(Failure) => return Attempt::TooSmall,
        }
    };
    grant.commit_len(pad + written);
    Attempt::Done(written)
}

/// How long a send may wait for room.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Forever,
    Until(Instant),
}

/// Whether the archive of `value` fits in `room` bytes, found by
/// serializing it into a scratch buffer (an allocation: slow path only).
fn fits<T: SerializeInPlace>(value: &T, room: usize) -> bool {
    let mut scratch = vec![0u8; room];
    ::rkyv::api::high::to_bytes_in::<_, Failure>(value, Buffer::from(&mut scratch[..])).is_ok()
}

/// Serializes `value` into `p`'s ring; `guess` is the reservation size
/// learned so far. `Timeout` stands for `Full` when not waiting.
fn send_inner<T: SerializeInPlace>(
    p: &mut Producer,
    guess: &mut usize,
    value: &T,
    wait: Wait,
) -> Result<(), SendTimeoutError<()>> {
    let max = p.max_message_len();
    let too_large = MessageTooLarge { len: max + 1, max };
    loop {
        let len = (*guess + ARCHIVE_ALIGN).min(max);
        // Before asking for the largest reservation (which may mean waiting
        // for the whole ring to drain), make sure the value fits at all.
        if len == max && !fits(value, max - ARCHIVE_ALIGN) {
            *guess = FIRST_GUESS;
            return Err(SendTimeoutError::TooLarge((), too_large));
        }
        let grant = match wait {
            Wait::No => p.try_reserve(len).map_err(SendTimeoutError::from)?,
            Wait::Forever => p.reserve(len)?,
            Wait::Until(d) => {
                p.reserve_timeout(len, d.saturating_duration_since(Instant::now()))?
            }
        };
        match serialize_into(value, grant) {
            Attempt::Done(written) => {
                // Next time, reserve for an archive of about this size.
                *guess = written.next_power_of_two().max(FIRST_GUESS);
                return Ok(());
            }
            Attempt::TooSmall if len < max => *guess = guess.saturating_mul(2).min(max),
            Attempt::TooSmall => {
                *guess = FIRST_GUESS;
                return Err(SendTimeoutError::TooLarge((), too_large));
            }
        }
    }
}

/// Serializes `value` into `p`'s ring, waiting for room.
pub(crate) fn send_blocking<T: SerializeInPlace>(
    p: &mut Producer,
    guess: &mut usize,
    value: &T,
) -> Result<(), SendError<()>> {
    send_inner(p, guess, value, Wait::Forever).map_err(|e| match e {
        SendTimeoutError::TooLarge((), m) => SendError::TooLarge((), m),
        SendTimeoutError::Corrupt((), c) => SendError::Corrupt((), c),
        _ => SendError::Closed(()),
    })
}

/// Checks a received message as an archive of `T`.
pub(crate) fn check_guard<T: Archive>(
    g: RecvGuard<'_>,
) -> Result<ArchivedGuard<'_, T>, &'static str>
where
    T::Archived: CheckedArchive,
{
    ArchiveConsumer::<T>::checked(g)
}

/// The first reservation size tried for an archive.
pub(crate) const fn first_guess() -> usize {
    FIRST_GUESS
}

impl<T: Archive + SerializeInPlace> ArchiveProducer<T> {
    /// Serializes `value` into the ring without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if there is no room for the reservation now,
    /// [`TrySendError::Closed`], [`TrySendError::TooLarge`] if the archive
    /// does not fit in the largest message, [`TrySendError::Corrupt`].
    pub fn try_send(&mut self, value: &T) -> Result<(), TrySendError<()>> {
        send_inner(&mut self.inner, &mut self.guess, value, Wait::No).map_err(|e| match e {
            SendTimeoutError::Timeout(()) => TrySendError::Full(()),
            SendTimeoutError::TooLarge((), m) => TrySendError::TooLarge((), m),
            SendTimeoutError::Corrupt((), c) => TrySendError::Corrupt((), c),
            _ => TrySendError::Closed(()),
        })
    }

    /// Serializes `value` into the ring, waiting for room.
    ///
    /// # Errors
    /// [`SendError::Closed`], [`SendError::TooLarge`], [`SendError::Corrupt`].
    pub fn send(&mut self, value: &T) -> Result<(), SendError<()>> {
        send_blocking(&mut self.inner, &mut self.guess, value)
    }

    /// Serializes `value` into the ring, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`ArchiveProducer::send`], and [`SendTimeoutError::Timeout`].
    pub fn send_timeout(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        let deadline = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        send_inner(&mut self.inner, &mut self.guess, value, deadline)
    }
}

const MISALIGNED: &str = "archive shorter than its alignment padding";
const INVALID: &str = "archive failed its bytecheck validation";

impl<T: Archive> ArchiveConsumer<T> {
    fn start_of(g: &RecvGuard<'_>) -> Option<usize> {
        let pad = lead(g.offset_in_ring());
        (g.len() >= pad).then_some(pad)
    }

    fn checked(g: RecvGuard<'_>) -> Result<ArchivedGuard<'_, T>, &'static str>
    where
        T::Archived: CheckedArchive,
    {
        let start = Self::start_of(&g).ok_or(MISALIGNED)?;
        ::rkyv::access::<T::Archived, Failure>(&g[start..]).map_err(|_| INVALID)?;
        Ok(ArchivedGuard {
            guard: g,
            start,
            _t: PhantomData,
        })
    }

    /// The next archive, checked, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], [`TryRecvError::Closed`],
    /// [`TryRecvError::Decode`] if the archive fails its check (it is
    /// consumed), [`TryRecvError::Corrupt`].
    pub fn try_recv(&mut self) -> Result<ArchivedGuard<'_, T>, TryRecvError>
    where
        T::Archived: CheckedArchive,
    {
        let g = self.inner.try_recv()?;
        Self::checked(g).map_err(|e| TryRecvError::Decode(DecodeError::Invalid(e)))
    }

    /// The next archive, checked, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Closed`], [`RecvError::Decode`], [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<ArchivedGuard<'_, T>, RecvError>
    where
        T::Archived: CheckedArchive,
    {
        let g = self.inner.recv()?;
        Self::checked(g).map_err(|e| RecvError::Decode(DecodeError::Invalid(e)))
    }

    /// The next archive, checked, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`ArchiveConsumer::recv`], and [`RecvTimeoutError::Timeout`].
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<ArchivedGuard<'_, T>, RecvTimeoutError>
    where
        T::Archived: CheckedArchive,
    {
        let g = self.inner.recv_timeout(timeout)?;
        Self::checked(g).map_err(|e| RecvTimeoutError::Decode(DecodeError::Invalid(e)))
    }

    /// The next archive, **not** checked, waiting for one.
    ///
    /// # Safety
    /// The producer must be trusted to have written a valid archive of `T`
    /// (same program version, not corrupt): reading a malformed archive
    /// unchecked is undefined behaviour. The framing (lengths and indices)
    /// is still checked.
    ///
    /// # Errors
    /// As [`ArchiveConsumer::recv`], without the validation failure.
    pub unsafe fn recv_unchecked(&mut self) -> Result<ArchivedGuard<'_, T>, RecvError> {
        let g = self.inner.recv()?;
        let start =
            Self::start_of(&g).ok_or(RecvError::Decode(DecodeError::Invalid(MISALIGNED)))?;
        Ok(ArchivedGuard {
            guard: g,
            start,
            _t: PhantomData,
        })
    }
}

typed_end!(ArchiveProducer, Producer);
typed_end!(ArchiveConsumer, Consumer);
