//! The reading end of an SPSC ring, and the guard over a message read in
//! place.

use super::endpoint::{deadline_after, end_common, Endpoint, Waited};
use crate::error::{received, Corrupt, RecvError, RecvTimeoutError, TryRecvError};
use crate::raw::spsc::{Peeked, RawConsumer, Side};
use crate::raw::PtrMem;
use multiproc_core::liveness::OsJudge;
use multiproc_core::message::Message;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Segment;
use std::time::{Duration, Instant};

/// The reading end of an [`SpscRing`](super::SpscRing). One per ring, across every process.
#[derive(Debug)]
pub struct Consumer {
    // Dropped first: it closes the end while `ep` keeps the mapping.
    raw: RawConsumer<PtrMem, OsJudge>,
    ep: Endpoint,
}

/// A received message, read in place: dereferences to its bytes inside the
/// ring. Dropping it gives the room back to the producer.
#[derive(Debug)]
pub struct RecvGuard<'a> {
    consumer: &'a mut Consumer,
    p: Peeked,
}

impl RecvGuard<'_> {
    /// The payload's offset from the start of the ring's data area.
    pub fn offset_in_ring(&self) -> usize {
        self.p.offset()
    }
}

impl std::ops::Deref for RecvGuard<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `p` is the consumer's current peeked message, not yet
        // released (the release happens in drop).
        unsafe { self.consumer.raw.payload(self.p) }
    }
}

impl Drop for RecvGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.raw.advance(self.p);
        self.consumer.raw.publish();
        self.consumer.raw.wake_peer();
    }
}

end_common!(Consumer, "producer");

impl Consumer {
    /// Has a child being started with this end in its arguments entered
    /// among the end's holders once it runs.
    #[cfg(feature = "serde")]
    pub(crate) fn hold_for_child(&self) {
        self.ep.hold_for_child();
    }

    pub(super) fn new(raw: RawConsumer<PtrMem, OsJudge>, ep: Endpoint) -> Consumer {
        Consumer { raw, ep }
    }

    /// Whether nothing is waiting to be read now.
    ///
    /// # Errors
    /// [`Corrupt`] if the ring's index was moved by someone else.
    pub fn is_empty(&mut self) -> Result<bool, Corrupt> {
        Ok(!self.raw.has_data()?)
    }

    #[inline]
    fn peek(&mut self) -> Result<Option<Peeked>, Corrupt> {
        let r = self.raw.try_peek();
        if self.raw.take_released_pad() {
            self.raw.wake_peer();
        }
        r
    }

    /// After an empty peek: closed and still empty means drained.
    fn try_peek_or_closed(&mut self) -> Result<Peeked, TryRecvError> {
        if let Some(p) = self.peek()? {
            return Ok(p);
        }
        if self.raw.peer_closed() {
            // The producer stores `closed` after its last publish; seeing
            // `closed` (acquire), a new look at the header sees everything.
            if let Some(p) = self.peek()? {
                return Ok(p);
            }
            return Err(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    fn wait_peek(&mut self, deadline: Option<Instant>) -> Result<Peeked, RecvTimeoutError> {
        match self.try_peek_or_closed() {
            Ok(p) => return Ok(p),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
            Err(TryRecvError::Corrupt(c)) => return Err(RecvTimeoutError::Corrupt(c)),
            // Peeking reports only empty, closed or corrupt.
            Err(_) => return Err(RecvTimeoutError::Closed),
        }
        let ring = self.ep.ring;
        let raw = &mut self.raw;
        let ready = || {
            let r = raw.try_peek();
            if raw.take_released_pad() {
                ring.wake(Side::Producer);
            }
            match r {
                Ok(Some(p)) => Some(Ok(p)),
                Ok(None) => None,
                Err(c) => Some(Err(c)),
            }
        };
        match self.ep.wait(self.ep.strategy, deadline, ready) {
            Waited::Ready(Ok(p)) => Ok(p),
            Waited::Ready(Err(c)) => Err(RecvTimeoutError::Corrupt(c)),
            Waited::PeerGone => Err(RecvTimeoutError::Closed),
            Waited::TimedOut => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Receives the next message as any [`Message`] type, decoded in place,
    /// if one is ready.
    ///
    /// # Errors
    /// As [`Consumer::try_recv`], and `Decode` if the message is not a `T`
    /// (it is consumed).
    pub fn try_recv_message<T: Message>(&mut self) -> Result<T, TryRecvError> {
        let g = self.try_recv()?;
        T::decode(&g).map_err(TryRecvError::Decode)
    }

    /// Receives `T`s as they come, waiting for each, until the producer has
    /// closed (or died) and the ring is drained; a message that does not
    /// decode comes as its error, and the iteration goes on.
    ///
    /// ```
    /// use multiproc_queue::spsc::{Config, SpscRing};
    /// let ring = SpscRing::anonymous(Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send_message(&"one".to_string())?;
    /// tx.send_message(&"two".to_string())?;
    /// drop(tx);
    /// let got: Vec<String> = rx.iter().collect::<Result<_, _>>()?;
    /// assert_eq!(got, ["one", "two"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter<'a, T: Message + 'a>(
        &'a mut self,
    ) -> impl Iterator<Item = Result<T, RecvError>> + 'a {
        received(|| self.recv_message())
    }

    /// Receives the `T`s that are ready now, without waiting.
    pub fn try_iter<'a, T: Message + 'a>(
        &'a mut self,
    ) -> impl Iterator<Item = Result<T, TryRecvError>> + 'a {
        received(|| self.try_recv_message())
    }

    /// Receives the next message as a `T`, waiting for one.
    ///
    /// # Errors
    /// As [`Consumer::recv`], and `Decode`.
    pub fn recv_message<T: Message>(&mut self) -> Result<T, RecvError> {
        let g = self.recv()?;
        T::decode(&g).map_err(RecvError::Decode)
    }

    /// Receives the next message as a `T`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Consumer::recv_timeout`], and `Decode`.
    pub fn recv_message_timeout<T: Message>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError> {
        let g = self.recv_timeout(timeout)?;
        T::decode(&g).map_err(RecvTimeoutError::Decode)
    }

    /// The next message, read in place, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if nothing is committed now,
    /// [`TryRecvError::Closed`] if the producer closed and everything it
    /// sent has been read, [`TryRecvError::Corrupt`] if the ring's indices or
    /// the message's header fail their checks.
    #[inline]
    pub fn try_recv(&mut self) -> Result<RecvGuard<'_>, TryRecvError> {
        let p = self.try_peek_or_closed()?;
        Ok(RecvGuard { consumer: self, p })
    }

    /// The next message, read in place, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once the producer closed (or died) and the ring
    /// is drained; [`RecvError::Corrupt`].
    #[inline(always)]
    pub fn recv(&mut self) -> Result<RecvGuard<'_>, RecvError> {
        let p = match self.peek() {
            Ok(Some(p)) => p,
            Ok(None) => self.wait_peek(None).map_err(RecvError::from)?,
            Err(c) => return Err(RecvError::Corrupt(c)),
        };
        Ok(RecvGuard { consumer: self, p })
    }

    /// The next message, read in place, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Consumer::recv`], and [`RecvTimeoutError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<RecvGuard<'_>, RecvTimeoutError> {
        let p = self.wait_peek(deadline_after(timeout))?;
        Ok(RecvGuard { consumer: self, p })
    }

    /// Waits until a message can be read (it is not consumed), at most
    /// `timeout` (`None`: without limit). `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`RecvError::Closed`] if the producer is gone and the ring drained.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool, RecvError> {
        match self.wait_peek(timeout.and_then(deadline_after)) {
            Ok(_) => Ok(true),
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(e) => Err(RecvError::from(e)),
        }
    }

    #[inline]
    fn copy_out(&mut self, p: Peeked, buf: &mut [u8]) -> Result<usize, (usize, usize)> {
        if p.len() > buf.len() {
            return Err((p.len(), buf.len()));
        }
        // SAFETY: `p` is the current peeked message, and `buf` holds it.
        unsafe { self.raw.read(p, buf) };
        self.raw.advance(p);
        self.raw.publish();
        self.raw.wake_peer();
        Ok(p.len())
    }

    /// Copies the next message into `buf` without waiting; returns its
    /// length.
    ///
    /// # Errors
    /// As [`Consumer::try_recv`], and [`TryRecvError::BufferTooSmall`] (the
    /// message stays in the ring).
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        let p = self.try_peek_or_closed()?;
        self.copy_out(p, buf)
            .map_err(|(needed, capacity)| TryRecvError::BufferTooSmall { needed, capacity })
    }

    /// Copies the next message into `buf`, waiting for one.
    ///
    /// # Errors
    /// As [`Consumer::recv`], and [`RecvError::BufferTooSmall`] (the message
    /// stays in the ring).
    #[inline(always)]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        // Fast path: a committed message that passes every check and fits.
        if let Some(p) = self.raw.try_peek_fast() {
            if let Ok(n) = self.copy_out(p, buf) {
                return Ok(n);
            }
        }
        self.recv_into_slow(buf)
    }

    #[cold]
    #[inline(never)]
    fn recv_into_slow(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let p = match self.peek() {
            Ok(Some(p)) => p,
            Ok(None) => self.wait_peek(None).map_err(RecvError::from)?,
            Err(c) => return Err(RecvError::Corrupt(c)),
        };
        self.copy_out(p, buf)
            .map_err(|(needed, capacity)| RecvError::BufferTooSmall { needed, capacity })
    }

    /// Copies the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Consumer::recv_into`], and [`RecvTimeoutError::Timeout`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        let p = self.wait_peek(deadline_after(timeout))?;
        self.copy_out(p, buf)
            .map_err(|(needed, capacity)| RecvTimeoutError::BufferTooSmall { needed, capacity })
    }

    /// Calls `f` on every message committed now (at most `max`), in place,
    /// then releases them all at once (one index store, at most one
    /// wake-up). Returns how many were read.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] or [`TryRecvError::Closed`] if there was none
    /// to read; [`TryRecvError::Corrupt`] (messages read before the corrupt
    /// one are released).
    pub fn try_recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, TryRecvError> {
        let first = self.try_peek_or_closed()?;
        self.drain_from(first, max, &mut f)
            .map_err(TryRecvError::Corrupt)
    }

    /// Like [`Consumer::try_recv_batch`], but waits until at least one
    /// message is there.
    ///
    /// # Errors
    /// [`RecvError::Closed`] if the producer is gone and the ring drained,
    /// [`RecvError::Corrupt`].
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let first = match self.peek() {
            Ok(Some(p)) => p,
            Ok(None) => self.wait_peek(None).map_err(RecvError::from)?,
            Err(c) => return Err(RecvError::Corrupt(c)),
        };
        self.drain_from(first, max, &mut f)
            .map_err(RecvError::Corrupt)
    }

    fn drain_from(
        &mut self,
        first: Peeked,
        max: usize,
        f: &mut impl FnMut(&[u8]),
    ) -> Result<usize, Corrupt> {
        let mut n = 0;
        let mut next = Some(first);
        let mut err = None;
        while let Some(p) = next {
            if n >= max {
                break;
            }
            // SAFETY: `p` is the current peeked message.
            f(unsafe { self.raw.payload(p) });
            self.raw.advance(p);
            n += 1;
            if n >= max {
                break;
            }
            next = match self.raw.try_peek() {
                Ok(p) => p,
                Err(c) => {
                    err = Some(c);
                    None
                }
            };
        }
        let _ = self.raw.take_released_pad();
        self.raw.publish();
        self.raw.wake_peer();
        match err {
            Some(c) if n == 0 => Err(c),
            _ => Ok(n),
        }
    }
}
