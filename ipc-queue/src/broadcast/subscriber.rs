//! A subscribing end of a broadcast ring.

use super::{BroadcastRing, ReadError, Start, POLL};
use crate::mpmc::wait_strategy_accessors;
use crate::raw::broadcast::Read;
use multiproc_core::liveness::OsJudge;
use multiproc_core::message::DecodeError;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::time::{Duration, Instant};

const WRONG_LEN: &str = "message length differs from the size of the type";

/// A subscribing end: its own cursor, its own overrun count. Cloning gives an
/// independent subscriber at the same position.
#[derive(Clone, Debug)]
pub struct Subscriber {
    ring: BroadcastRing,
    cursor: u64,
    overruns: u64,
    strategy: WaitStrategy,
    next_check: Option<Instant>,
}

wait_strategy_accessors!(Subscriber);

impl Subscriber {
    pub(super) fn new(ring: BroadcastRing, start: Start) -> Subscriber {
        let written = ring.raw().written();
        let cursor = match start {
            Start::Oldest => written.saturating_sub(ring.capacity() as u64),
            Start::Newest => written.saturating_sub(1),
            Start::Next => written,
        };
        Subscriber {
            ring,
            cursor,
            overruns: 0,
            strategy: WaitStrategy::default(),
            next_check: None,
        }
    }

    /// Messages this subscriber missed because the publisher lapped it.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The position of the next message this subscriber reads.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Messages published and not yet read by this subscriber (may exceed
    /// the capacity, in which case the excess is lost).
    pub fn pending(&self) -> u64 {
        self.ring.raw().written().saturating_sub(self.cursor)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.ring.raw().capacity()
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.ring.raw().slot_size()
    }

    /// The largest message in bytes: the same as `slot_size`.
    pub fn max_message_len(&self) -> usize {
        self.ring.raw().slot_size()
    }

    /// Whether the publisher closed the ring or its process died.
    pub fn is_closed(&self) -> bool {
        self.ring.raw().publisher_gone(&OsJudge)
    }

    /// One attempt: `None` means nothing yet.
    fn attempt(&mut self, buf: &mut [u8]) -> Option<Result<usize, ReadError>> {
        match self.ring.raw().read(self.cursor, buf) {
            Read::Message(n) => {
                self.cursor += 1;
                Some(Ok(n))
            }
            Read::TooLong(needed) => Some(Err(ReadError::BufferTooSmall {
                needed,
                capacity: buf.len(),
            })),
            Read::Overrun(to) => {
                let lost = to.saturating_sub(self.cursor);
                self.cursor = to;
                self.overruns += lost;
                Some(Err(ReadError::Lagged(lost)))
            }
            Read::Corrupt(c) => {
                self.cursor += 1;
                Some(Err(ReadError::Corrupt(c)))
            }
            Read::NotYet => {
                if self.closed_now() {
                    // Drain anything published before the close.
                    return match self.ring.raw().read(self.cursor, buf) {
                        Read::NotYet => Some(Err(ReadError::Closed)),
                        _ => self.attempt(buf),
                    };
                }
                None
            }
        }
    }

    /// Whether the ring is closed; checks the publisher's liveness at most
    /// every [`POLL`].
    #[cold]
    fn closed_now(&mut self) -> bool {
        if self.ring.raw().is_closed() {
            return true;
        }
        let now = Instant::now();
        if self.next_check.is_some_and(|t| now < t) {
            return false;
        }
        self.next_check = Some(now + POLL);
        self.ring.raw().publisher_gone(&OsJudge)
    }

    fn wait_into(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize, ReadError> {
        let ring = self.ring.clone();
        let strategy = self.strategy;
        ring.raw()
            .new_data()
            .wait(strategy, deadline, Some(POLL), || self.attempt(buf))
            .unwrap_or(Err(ReadError::Timeout))
    }

    /// Copies the next message into `buf` if there is one; returns its length.
    ///
    /// # Errors
    /// [`ReadError::Empty`], [`ReadError::Lagged`], [`ReadError::Closed`],
    /// [`ReadError::BufferTooSmall`], [`ReadError::Corrupt`].
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.attempt(buf).unwrap_or(Err(ReadError::Empty))
    }

    /// Copies the next message into `buf`, waiting for one.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv_into`], except `Empty`.
    #[inline]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.wait_into(buf, None)
    }

    /// Copies the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into`], and [`ReadError::Timeout`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, ReadError> {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_into(buf, deadline)
    }

    /// The next message as a new vector, if there is one.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv_into`], except `BufferTooSmall`.
    pub fn try_recv(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; self.slot_size()];
        let n = self.try_recv_into(&mut v)?;
        v.truncate(n);
        Ok(v)
    }

    /// The next message as a new vector, waiting for one.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into`], except `BufferTooSmall`.
    pub fn recv(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; self.slot_size()];
        let n = self.recv_into(&mut v)?;
        v.truncate(n);
        Ok(v)
    }

    /// The next message as a new vector, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into_timeout`], except `BufferTooSmall`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; self.slot_size()];
        let n = self.recv_into_timeout(&mut v, timeout)?;
        v.truncate(n);
        Ok(v)
    }

    fn value<T: Shareable + Copy>(
        &mut self,
        r: Result<usize, ReadError>,
        buf: &[u8],
    ) -> Result<T, ReadError> {
        let n = match r {
            Err(ReadError::BufferTooSmall { .. }) => {
                // Longer than a `T`: consume it, as a typed receive does.
                self.cursor += 1;
                return Err(ReadError::Decode(DecodeError::Invalid(WRONG_LEN)));
            }
            r => r?,
        };
        if n != std::mem::size_of::<T>() {
            return Err(ReadError::Decode(DecodeError::Invalid(WRONG_LEN)));
        }
        // SAFETY: `buf` holds `size_of::<T>()` initialized bytes; `T` is
        // `Shareable`, so any bit pattern is a valid `T`; the read is
        // unaligned-safe.
        Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) })
    }

    /// The next message as a plain-old-data value, if there is one.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv_into`], and [`ReadError::Decode`].
    pub fn try_recv_value<T: Shareable + Copy>(&mut self) -> Result<T, ReadError> {
        let mut buf = ValueBuf::<T>::new();
        let r = self.try_recv_into(buf.bytes_mut());
        self.value(r, buf.bytes_mut())
    }

    /// The next message as a plain-old-data value, waiting for one.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into`], and [`ReadError::Decode`].
    pub fn recv_value<T: Shareable + Copy>(&mut self) -> Result<T, ReadError> {
        let mut buf = ValueBuf::<T>::new();
        let r = self.recv_into(buf.bytes_mut());
        self.value(r, buf.bytes_mut())
    }

    /// The next message as a plain-old-data value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into_timeout`], and [`ReadError::Decode`].
    pub fn recv_value_timeout<T: Shareable + Copy>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, ReadError> {
        let mut buf = ValueBuf::<T>::new();
        let r = self.recv_into_timeout(buf.bytes_mut(), timeout);
        self.value(r, buf.bytes_mut())
    }
}

/// Room for one `T` on the stack, zero-initialized.
struct ValueBuf<T> {
    value: std::mem::MaybeUninit<T>,
}

impl<T: Shareable> ValueBuf<T> {
    fn new() -> Self {
        ValueBuf {
            value: std::mem::MaybeUninit::zeroed(),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `size_of::<T>()` bytes owned by `self`, zero-initialized;
        // `u8` has no alignment requirement and no invalid values.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.value.as_mut_ptr() as *mut u8,
                std::mem::size_of::<T>(),
            )
        }
    }
}
