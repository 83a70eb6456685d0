//! Claiming a slot of an MPMC-layout ring, waiting as the calling form says
//! (`try_`, blocking, `_timeout`), and finishing the send or receive into
//! that form's error type. Shared by [`super::Sender`], [`super::Receiver`]
//! and the queues.

use super::{Message, RawMpmc, Reservation};
use crate::error::{
    Corrupt, MessageTooLarge, RecvError, RecvTimeoutError, SendTimeoutError, TryRecvError,
};
use crate::raw::mpmc::{RawError, Watch, DATA_ALIGN};
use multiproc_core::liveness::OsJudge;
use multiproc_core::wait::{EventCount, WaitStrategy};
use multiproc_core::{IdentityError, Shareable};
use std::time::{Duration, Instant};

/// A blocked waiter re-checks its condition at least this often, so a peer
/// that died holding a slot is noticed even though it will never notify.
const POLL: Duration = Duration::from_millis(10);

/// Why a claim ended without a slot.
pub(crate) enum Fail {
    /// No slot (send) or message (receive) now, and no waiting asked for.
    NotNow,
    Timeout,
    Closed,
    TooLarge(MessageTooLarge),
    TooLong(usize),
    Corrupt(Corrupt),
    UnknownIdentity(IdentityError),
}

impl Fail {
    /// As the most detailed send error, handing `v` back; the other forms
    /// convert from it (a blocking send that stops did so because the ring
    /// closed).
    pub(crate) fn send<T>(self, v: T) -> SendTimeoutError<T> {
        match self {
            Fail::Closed => SendTimeoutError::Closed(v),
            Fail::TooLarge(m) => SendTimeoutError::TooLarge(v, m),
            Fail::Corrupt(c) => SendTimeoutError::Corrupt(v, c),
            Fail::UnknownIdentity(e) => SendTimeoutError::UnknownIdentity(v, e),
            Fail::NotNow | Fail::Timeout | Fail::TooLong(_) => SendTimeoutError::Timeout(v),
        }
    }

    /// As the most detailed receive error, for a buffer of `capacity` bytes.
    pub(crate) fn recv(self, capacity: usize) -> RecvTimeoutError {
        match self {
            Fail::Closed => RecvTimeoutError::Closed,
            Fail::TooLong(needed) => RecvTimeoutError::BufferTooSmall { needed, capacity },
            Fail::Corrupt(c) => RecvTimeoutError::Corrupt(c),
            Fail::UnknownIdentity(e) => RecvTimeoutError::UnknownIdentity(e),
            Fail::NotNow | Fail::Timeout | Fail::TooLarge(_) => RecvTimeoutError::Timeout,
        }
    }
}

/// How long a call may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all (`try_` forms).
    No,
    /// Until the deadline, or for ever.
    Until(Option<Instant>),
}

impl Wait {
    /// For ever (blocking forms).
    pub(crate) const FOREVER: Wait = Wait::Until(None);

    /// At most `timeout` (`_timeout` forms; a timeout too long to represent
    /// waits a year).
    pub(crate) fn at_most(timeout: Duration) -> Wait {
        let now = Instant::now();
        Wait::Until(Some(
            now.checked_add(timeout)
                .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365)),
        ))
    }
}

/// What a claim that did not succeed means to a waiting call: `None` to
/// try again (full, empty, or a slot a live peer holds), or why it ends.
fn retry_or_fail<T>(e: RawError) -> Option<Result<T, Fail>> {
    let f = match e {
        RawError::Full | RawError::Empty | RawError::Busy => return None,
        RawError::Closed => Fail::Closed,
        RawError::TooLarge(m) => Fail::TooLarge(m),
        RawError::TooLong { needed } => Fail::TooLong(needed),
        RawError::Corrupt(c) => Fail::Corrupt(c),
        RawError::UnknownIdentity(e) => Fail::UnknownIdentity(e),
    };
    Some(Err(f))
}

/// Makes `attempt` once, then, as `wait` says, waits on `event` (parking
/// and re-checking at least every [`POLL`]) until it gives an answer.
/// Always inlined: the first attempt is the fast path of every send and
/// receive, and inlining it lets the message's length reach the copy.
#[inline(always)]
fn wait_for<T>(
    event: &EventCount,
    strategy: WaitStrategy,
    wait: Wait,
    mut attempt: impl FnMut() -> Option<Result<T, Fail>>,
) -> Result<T, Fail> {
    if let Some(r) = attempt() {
        return r;
    }
    match wait {
        Wait::No => Err(Fail::NotNow),
        Wait::Until(deadline) => event
            .wait(strategy, deadline, Some(POLL), attempt)
            .unwrap_or(Err(Fail::Timeout)),
    }
}

/// Claims a slot to send `len` bytes, waiting as `wait` says.
#[inline]
pub(crate) fn claim_send(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    len: usize,
    wait: Wait,
) -> Result<Reservation<'_>, Fail> {
    let mut watch = Watch::new();
    wait_for(raw.not_full(), strategy, wait, || {
        match raw.try_claim_send(len, &mut watch, &OsJudge) {
            Ok(c) => Some(Ok(c)),
            Err(e) => retry_or_fail(e),
        }
    })
}

/// Claims the next message of at most `max` bytes, waiting as `wait` says.
/// A closed ring hands out what was sent before it closed, then `Closed`.
#[inline]
fn claim_recv(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    max: usize,
    wait: Wait,
) -> Result<Message<'_>, Fail> {
    let mut watch = Watch::new();
    wait_for(raw.not_empty(), strategy, wait, || {
        match raw.try_claim_recv(max, &mut watch, &OsJudge) {
            Ok(c) => Some(Ok(c)),
            // Closed: drain what was sent before the close, then report.
            Err(RawError::Empty) if raw.is_closed() => {
                match raw.try_claim_recv(max, &mut watch, &OsJudge) {
                    Ok(c) => Some(Ok(c)),
                    Err(RawError::Empty) => Some(Err(Fail::Closed)),
                    Err(e) => retry_or_fail(e),
                }
            }
            Err(e) => retry_or_fail(e),
        }
    })
}

/// Sends `value` in a slot of `len` bytes claimed waiting as `wait` says,
/// `write`ing it there; or hands it back in the calling form's error `E`. In
/// a joinable ring the message counts as an unfinished task from before
/// its claim (and stops counting if no slot was claimed).
#[inline]
pub(crate) fn send<T, E: From<SendTimeoutError<T>>>(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    wait: Wait,
    len: usize,
    value: T,
    write: impl FnOnce(Reservation<'_>, &T),
) -> Result<(), E> {
    let claim = if raw.is_joinable() {
        raw.unfinished_inc();
        claim_send(raw, strategy, len, wait).inspect_err(|_| {
            raw.unfinished_dec();
        })
    } else {
        claim_send(raw, strategy, len, wait)
    };
    match claim {
        Ok(c) => {
            write(c, &value);
            Ok(())
        }
        Err(f) => Err(E::from(f.send(value))),
    }
}

/// Sends a copy of `bytes`, waiting as `wait` says; the error of the
/// calling form, without the bytes (the caller still has them).
#[inline]
pub(crate) fn send_bytes_as<E: From<SendTimeoutError<()>>>(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    wait: Wait,
    bytes: &[u8],
) -> Result<(), E> {
    send::<&[u8], SendTimeoutError<&[u8]>>(raw, strategy, wait, bytes.len(), bytes, write_bytes)
        .map_err(|e| E::from(e.map(drop)))
}

/// Sends the encoding of `value` (written straight into the slot),
/// waiting as `wait` says.
#[inline]
pub(crate) fn send_encoded<T: multiproc_core::message::Message, E: From<SendTimeoutError<()>>>(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    wait: Wait,
    value: &T,
) -> Result<(), E> {
    match value.with_encoded(|b| send_bytes_as::<SendTimeoutError<()>>(raw, strategy, wait, b)) {
        Ok(sent) => sent.map_err(E::from),
        Err(e) => Err(E::from(SendTimeoutError::Encode((), e))),
    }
}

/// The next message decoded as a `T` in its slot, waiting as `wait` says;
/// one that does not decode is consumed and reported as `Decode`.
#[inline]
pub(crate) fn recv_decoded<T: multiproc_core::message::Message, E: From<RecvTimeoutError>>(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    wait: Wait,
) -> Result<T, E> {
    let m = recv_message::<E>(raw, strategy, wait)?;
    T::decode(m.bytes()).map_err(|e| E::from(RecvTimeoutError::Decode(e)))
}

/// Finishes a receive into a buffer of `capacity` bytes (`usize::MAX` for
/// none): `read`s the claimed message, or the calling form's error `E`.
#[inline]
fn finish_recv<R, E: From<RecvTimeoutError>>(
    claim: Result<Message<'_>, Fail>,
    capacity: usize,
    read: impl FnOnce(Message<'_>) -> Result<R, E>,
) -> Result<R, E> {
    match claim {
        Ok(c) => read(c),
        Err(f) => Err(E::from(f.recv(capacity))),
    }
}

/// Copies a byte string into a claimed slot and publishes it.
#[inline]
fn write_bytes(mut c: Reservation<'_>, bytes: &&[u8]) {
    c.write(bytes);
    c.commit();
}

/// Writes `v` into a claimed slot and publishes it.
#[inline]
pub(crate) fn write_value<T: Shareable + Copy>(mut c: Reservation<'_>, v: &T) {
    const { assert!(std::mem::align_of::<T>() <= DATA_ALIGN) };
    debug_assert_eq!(c.len(), std::mem::size_of::<T>());
    // SAFETY: the claim holds `size_of::<T>()` bytes of slot data, 16-byte
    // aligned (so aligned for `T`), owned by this endpoint until commit.
    unsafe { std::ptr::write(c.as_mut_ptr() as *mut T, *v) };
    c.commit();
}

/// The message length a typed receive refuses.
pub(crate) const WRONG_LEN: &str = "message length differs from the size of the type";

/// Reads a `T` out of a claimed message of exactly `size_of::<T>()` bytes.
#[inline]
pub(crate) fn read_value<T: Shareable + Copy>(c: Message<'_>) -> Result<T, &'static str> {
    const { assert!(std::mem::align_of::<T>() <= DATA_ALIGN) };
    if c.len() != std::mem::size_of::<T>() {
        return Err(WRONG_LEN);
    }
    // SAFETY: the claim holds `size_of::<T>()` bytes, 16-byte aligned; `T` is
    // `Shareable`, so any bit pattern is a valid `T`.
    Ok(unsafe { std::ptr::read(c.as_ptr() as *const T) })
}

/// A decode error of the calling receive form.
pub(crate) trait Decode {
    fn decode(what: &'static str) -> Self;
}

macro_rules! decode {
    ($($e:ident),*) => {
        $(impl Decode for $e {
            fn decode(what: &'static str) -> Self {
                $e::Decode(multiproc_core::message::DecodeError::Invalid(what))
            }
        })*
    };
}
decode!(TryRecvError, RecvError, RecvTimeoutError);

/// The next message, in place, waiting as `wait` says.
#[inline]
pub(crate) fn recv_message<E: From<RecvTimeoutError>>(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    wait: Wait,
) -> Result<Message<'_>, E> {
    claim_recv(raw, strategy, usize::MAX, wait).map_err(|f| f.recv(usize::MAX).into())
}

/// Copies the next message into `buf`, waiting as `wait` says; a longer one
/// stays queued (`BufferTooSmall`).
#[inline]
pub(crate) fn recv_into<E: From<RecvTimeoutError>>(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    wait: Wait,
    buf: &mut [u8],
) -> Result<usize, E> {
    let max = buf.len();
    finish_recv(claim_recv(raw, strategy, max, wait), max, |c| {
        Ok(c.read(buf))
    })
}

/// The next message as a `T`, waiting as `wait` says; one of another length
/// is consumed and reported as `Decode`.
#[inline]
pub(crate) fn recv_value<T: Shareable + Copy, E: From<RecvTimeoutError> + Decode>(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    wait: Wait,
) -> Result<T, E> {
    finish_recv(
        claim_recv(raw, strategy, usize::MAX, wait),
        usize::MAX,
        |c| read_value(c).map_err(E::decode),
    )
}

/// `with_wait_strategy`, `set_wait_strategy` and `wait_strategy` for a
/// handle whose blocking calls wait as its `strategy` field says.
macro_rules! wait_strategy_accessors {
    ($t:ident $(<$g:ident>)?) => {
        impl$(<$g>)? $t$(<$g>)? {
            /// The same handle with another wait strategy for its blocking
            /// calls.
            pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
                self.strategy = strategy;
                self
            }

            /// Sets the wait strategy of this handle's blocking calls.
            pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
                self.strategy = strategy;
            }

            /// The wait strategy of this handle.
            pub fn wait_strategy(&self) -> WaitStrategy {
                self.strategy
            }
        }
    };
}
pub(crate) use wait_strategy_accessors;
