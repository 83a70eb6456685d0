//! The writing end of an SPSC ring, and the grant it writes in place.

use super::endpoint::{deadline_after, end_common, Endpoint, Waited};
use crate::error::{Corrupt, MessageTooLarge, SendError, SendTimeoutError, TrySendError};
use crate::raw::spsc::{RawProducer, Reservation, ReserveError, Side};
use crate::raw::PtrMem;
use multiproc_core::liveness::OsJudge;
use multiproc_core::message::Message;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Segment;
use std::time::{Duration, Instant};

/// The writing end of an [`SpscRing`](super::SpscRing). One per ring, across every process.
#[derive(Debug)]
pub struct Producer {
    // Dropped first: it closes the end while `ep` keeps the mapping.
    raw: RawProducer<PtrMem, OsJudge>,
    ep: Endpoint,
}

/// Room for one message inside the ring, handed out by
/// [`Producer::reserve`]. Dereferences to the payload bytes (`&mut [u8]` of
/// the length asked for; their initial contents are unspecified). Nothing is
/// visible to the consumer until [`Grant::commit`]; dropping the grant
/// without committing abandons it.
#[derive(Debug)]
#[must_use = "a grant is published only by commit()"]
pub struct Grant<'a> {
    producer: &'a mut Producer,
    r: Reservation,
}

end_common!(Producer, "consumer");

impl Producer {
    /// Has a child being started with this end in its arguments entered
    /// among the end's holders once it runs.
    #[cfg(feature = "serde")]
    pub(crate) fn hold_for_child(&self) {
        self.ep.hold_for_child();
    }

    pub(super) fn new(raw: RawProducer<PtrMem, OsJudge>, ep: Endpoint) -> Producer {
        Producer { raw, ep }
    }

    /// Free bytes in the ring now, less the 8-byte slot the ring keeps clear
    /// after its last record (records need 8 bytes of header and are rounded
    /// up to 8). It may grow at any moment.
    ///
    /// # Errors
    /// [`Corrupt`] if the consumer's index fails its checks.
    pub fn free_bytes(&mut self) -> Result<usize, Corrupt> {
        self.raw.free_bytes()
    }

    #[inline]
    fn too_large(&self, len: usize) -> MessageTooLarge {
        MessageTooLarge {
            len,
            max: self.max_message_len(),
        }
    }

    #[inline(always)]
    fn try_reserve_raw(&mut self, len: usize) -> Result<Reservation, TrySendError<()>> {
        // Fast path: open, and room that the cached head already shows (no
        // pad to publish, so nobody to wake).
        if !self.raw.peer_closed() {
            if let Some(r) = self.raw.try_reserve_fast(len) {
                return Ok(r);
            }
        }
        self.try_reserve_raw_slow(len)
    }

    #[cold]
    #[inline(never)]
    fn try_reserve_raw_slow(&mut self, len: usize) -> Result<Reservation, TrySendError<()>> {
        if self.raw.peer_closed() {
            return Err(TrySendError::Closed(()));
        }
        match self.raw.try_reserve(len) {
            Ok(r) => {
                if self.raw.take_pad_published() {
                    self.raw.wake_peer();
                }
                Ok(r)
            }
            Err(ReserveError::Full) => {
                if self.raw.take_pad_published() {
                    self.raw.wake_peer();
                }
                Err(TrySendError::Full(()))
            }
            Err(ReserveError::TooLarge) => Err(TrySendError::TooLarge((), self.too_large(len))),
            Err(ReserveError::Corrupt(c)) => Err(TrySendError::Corrupt((), c)),
        }
    }

    #[cold]
    #[inline(never)]
    fn reserve_raw(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Reservation, SendTimeoutError<()>> {
        match self.try_reserve_raw(len) {
            Ok(r) => return Ok(r),
            Err(TrySendError::Full(())) => {}
            Err(e) => return Err(e.into()),
        }
        let ring = self.ep.ring;
        let raw = &mut self.raw;
        let ready = || match raw.try_reserve(len) {
            Ok(r) => Some(Ok(r)),
            Err(ReserveError::Full) => {
                if raw.take_pad_published() {
                    ring.wake(Side::Consumer);
                }
                None
            }
            Err(ReserveError::Corrupt(c)) => Some(Err(c)),
            Err(ReserveError::TooLarge) => Some(Err(Corrupt::new("message length", len as u64))),
        };
        let waited = self.ep.wait(self.ep.strategy, deadline, ready);
        if self.raw.take_pad_published() {
            self.raw.wake_peer();
        }
        match waited {
            Waited::Ready(Ok(r)) => {
                if self.raw.peer_closed() {
                    return Err(SendTimeoutError::Closed(()));
                }
                Ok(r)
            }
            Waited::Ready(Err(c)) => Err(SendTimeoutError::Corrupt((), c)),
            Waited::PeerGone => Err(SendTimeoutError::Closed(())),
            Waited::TimedOut => Err(SendTimeoutError::Timeout(())),
        }
    }

    /// Reserves room for a `len`-byte message, without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if there is no room now (a pad record may have
    /// been placed to reach the start of the ring; the consumer skips it),
    /// [`TrySendError::Closed`] if the consumer closed,
    /// [`TrySendError::TooLarge`] if `len > max_message_len()`,
    /// [`TrySendError::Corrupt`] if the consumer's index is corrupt.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_>, TrySendError<()>> {
        let r = self.try_reserve_raw(len)?;
        Ok(Grant { producer: self, r })
    }

    /// Reserves room for a `len`-byte message, waiting for it.
    ///
    /// # Errors
    /// [`SendError::Closed`] if the consumer closed or died,
    /// [`SendError::TooLarge`], [`SendError::Corrupt`].
    #[inline(always)]
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_>, SendError<()>> {
        let r = match self.try_reserve_raw(len) {
            Ok(r) => r,
            Err(TrySendError::Full(())) => self.reserve_raw(len, None).map_err(SendError::from)?,
            Err(e) => return Err(SendError::from(e)),
        };
        Ok(Grant { producer: self, r })
    }

    /// Reserves room for a `len`-byte message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Producer::reserve`], and [`SendTimeoutError::Timeout`].
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Grant<'_>, SendTimeoutError<()>> {
        let r = self.reserve_raw(len, deadline_after(timeout))?;
        Ok(Grant { producer: self, r })
    }

    #[inline]
    fn commit_raw(&mut self, r: Reservation, len: usize) {
        self.raw.commit(r, len);
        self.raw.publish();
        self.raw.wake_peer();
    }

    #[inline]
    fn write_raw(&mut self, r: Reservation, msg: &[u8]) {
        // SAFETY: `r` was just reserved by this producer for `msg.len()`
        // bytes and not committed.
        unsafe { self.raw.write(r, msg) };
        self.commit_raw(r, msg.len());
    }

    /// Sends any [`Message`] (numbers and `Pod` values as their bytes,
    /// `serde` types encoded, then copied in) if there is room now.
    ///
    /// ```
    /// use multiproc_queue::spsc::{Config, SpscRing};
    /// let ring = SpscRing::anonymous(Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send_message(&vec!["a".to_string(), "b".to_string()])?;
    /// tx.send_message(&3.5f64)?;
    /// assert_eq!(rx.recv_message::<Vec<String>>()?, ["a", "b"]);
    /// assert_eq!(rx.try_recv_message::<f64>()?, 3.5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Producer::try_send`], and `Encode` if the serializer refuses the
    /// value.
    pub fn try_send_message<T: Message>(&mut self, value: &T) -> Result<(), TrySendError<()>> {
        match value.with_encoded(|b| self.try_send(b)) {
            Ok(sent) => sent,
            Err(e) => Err(TrySendError::Encode((), e)),
        }
    }

    /// Sends any [`Message`], waiting for room.
    ///
    /// # Errors
    /// As [`Producer::send`], and `Encode`.
    pub fn send_message<T: Message>(&mut self, value: &T) -> Result<(), SendError<()>> {
        match value.with_encoded(|b| self.send(b)) {
            Ok(sent) => sent,
            Err(e) => Err(SendError::Encode((), e)),
        }
    }

    /// Copies `msg` into the ring without waiting.
    ///
    /// # Errors
    /// As [`Producer::try_reserve`].
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError<()>> {
        let r = self.try_reserve_raw(msg.len())?;
        self.write_raw(r, msg);
        Ok(())
    }

    /// Copies `msg` into the ring, waiting for room.
    ///
    /// # Errors
    /// As [`Producer::reserve`].
    #[inline(always)]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        let r = match self.try_reserve_raw(msg.len()) {
            Ok(r) => r,
            Err(TrySendError::Full(())) => {
                self.reserve_raw(msg.len(), None).map_err(SendError::from)?
            }
            Err(e) => return Err(SendError::from(e)),
        };
        self.write_raw(r, msg);
        Ok(())
    }

    /// Copies `msg` into the ring, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Producer::reserve_timeout`].
    pub fn send_timeout(
        &mut self,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        let r = self.reserve_raw(msg.len(), deadline_after(timeout))?;
        self.write_raw(r, msg);
        Ok(())
    }

    /// Copies as many of `msgs` as fit now, in order. Each is readable as
    /// soon as it is written; the batch ends with one index store and at
    /// most one wake-up. Returns how many were sent; the caller retries with
    /// the rest.
    ///
    /// # Errors
    /// Only when not even the first message could be sent: as
    /// [`Producer::try_send`] for that message.
    pub fn try_send_batch<B: AsRef<[u8]>>(
        &mut self,
        msgs: &[B],
    ) -> Result<usize, TrySendError<()>> {
        self.batch_inner(
            msgs.len(),
            |i| msgs[i].as_ref().len(),
            |i, dst| dst.copy_from_slice(msgs[i].as_ref()),
        )
    }

    /// Writes up to `count` messages of `len` bytes each in place, as many as
    /// fit now: `write(i, bytes)` fills message `i`. Each is readable as
    /// soon as it is written; the batch ends with one index store and at
    /// most one wake-up. Returns how many were written.
    ///
    /// # Errors
    /// Only when not even the first message fits: as
    /// [`Producer::try_reserve`].
    pub fn try_write_batch(
        &mut self,
        count: usize,
        len: usize,
        write: impl FnMut(usize, &mut [u8]),
    ) -> Result<usize, TrySendError<()>> {
        self.batch_inner(count, |_| len, write)
    }

    fn batch_inner(
        &mut self,
        count: usize,
        len_of: impl Fn(usize) -> usize,
        mut write: impl FnMut(usize, &mut [u8]),
    ) -> Result<usize, TrySendError<()>> {
        if self.raw.peer_closed() {
            return Err(TrySendError::Closed(()));
        }
        let mut n = 0;
        while n < count {
            let len = len_of(n);
            match self.raw.try_reserve(len) {
                Ok(r) => {
                    // SAFETY: just reserved, not committed.
                    write(n, unsafe { self.raw.payload(r) });
                    self.raw.commit(r, len);
                    n += 1;
                }
                Err(e) => {
                    if n == 0 {
                        let _ = self.raw.take_pad_published();
                        self.raw.publish();
                        self.raw.wake_peer();
                        return Err(match e {
                            ReserveError::Full => TrySendError::Full(()),
                            ReserveError::TooLarge => {
                                TrySendError::TooLarge((), self.too_large(len))
                            }
                            ReserveError::Corrupt(c) => TrySendError::Corrupt((), c),
                        });
                    }
                    break;
                }
            }
        }
        let _ = self.raw.take_pad_published();
        self.raw.publish();
        self.raw.wake_peer();
        Ok(n)
    }

    /// Sends every message of `msgs`, waiting for room as needed and
    /// publishing in batches.
    ///
    /// # Errors
    /// As [`Producer::send`]; the error carries how many messages were sent
    /// before it.
    pub fn send_batch<B: AsRef<[u8]>>(&mut self, msgs: &[B]) -> Result<(), SendError<usize>> {
        let mut sent = 0;
        while sent < msgs.len() {
            match self.try_send_batch(&msgs[sent..]) {
                Ok(n) => sent += n,
                Err(TrySendError::Full(())) => {
                    let m = msgs[sent].as_ref();
                    let r = self
                        .reserve_raw(m.len(), None)
                        .map_err(|e| SendError::from(e).map(|()| sent))?;
                    self.write_raw(r, m);
                    sent += 1;
                }
                Err(e) => return Err(SendError::from(e).map(|()| sent)),
            }
        }
        Ok(())
    }
}

impl Grant<'_> {
    /// Publishes the whole grant as one message.
    #[inline]
    pub fn commit(self) {
        let len = self.r.len();
        self.producer.commit_raw(self.r, len);
    }

    /// Publishes the first `len` bytes as one message (for writers that learn
    /// the length as they go).
    ///
    /// # Panics
    /// If `len` is larger than the grant.
    #[inline]
    pub fn commit_len(self, len: usize) {
        self.producer.commit_raw(self.r, len);
    }

    /// The payload's offset from the start of the ring's data area.
    pub fn offset_in_ring(&self) -> usize {
        self.r.offset()
    }
}

impl std::ops::Deref for Grant<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `r` is this producer's live, uncommitted reservation; the
        // shared borrow of the grant covers the returned slice.
        unsafe { self.producer.raw.payload_ref(self.r) }
    }
}

impl std::ops::DerefMut for Grant<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: `r` is this producer's live, uncommitted reservation, and
        // the mutable borrow of the grant covers the returned slice.
        unsafe { self.producer.raw.payload(self.r) }
    }
}
