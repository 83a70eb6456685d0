//! The receiving endpoint of an MPMC ring.

use super::{
    endpoint_common, recv_decoded, recv_into, recv_message, recv_value, Message, Mpmc, Wait,
};
use crate::error::{received, RecvError, RecvTimeoutError, TryRecvError};
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::time::Duration;

/// The receiving end of an MPMC ring. Clone it freely (threads); other
/// processes make their own from [`Mpmc::open`] or [`Mpmc::from_fd`].
#[derive(Clone, Debug)]
pub struct Receiver {
    ring: Mpmc,
    strategy: WaitStrategy,
}

endpoint_common!(Receiver);

impl Receiver {
    pub(super) fn new(ring: Mpmc) -> Receiver {
        Receiver {
            ring,
            strategy: WaitStrategy::default(),
        }
    }

    /// Takes the next message if one is ready, as a guard over its bytes in
    /// place; the slot is released when the guard is dropped.
    ///
    /// # Errors
    /// `Empty` (also when the next message is still being written by a live
    /// producer past the spin budget), `Closed` (closed and drained),
    /// `Corrupt`.
    #[inline]
    pub fn try_recv(&self) -> Result<Message<'_>, TryRecvError> {
        recv_message(self.ring.raw(), self.strategy, Wait::No)
    }

    /// Takes the next message, waiting for one.
    ///
    /// # Errors
    /// `Closed` (closed and drained), `Corrupt`.
    #[inline]
    pub fn recv(&self) -> Result<Message<'_>, RecvError> {
        recv_message(self.ring.raw(), self.strategy, Wait::FOREVER)
    }

    /// Takes the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `Corrupt`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message<'_>, RecvTimeoutError> {
        recv_message(self.ring.raw(), self.strategy, Wait::at_most(timeout))
    }

    /// Takes the next message as any [`Message`](multiproc_core::message::Message)
    /// type, decoded in place,
    /// if one is ready.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`], and `Decode` if the message is not a `T`
    /// (it is consumed).
    #[inline]
    pub fn try_recv_message<T: multiproc_core::message::Message>(&self) -> Result<T, TryRecvError> {
        recv_decoded(self.ring.raw(), self.strategy, Wait::No)
    }

    /// Takes `T`s as they come, waiting for each, until the ring is closed
    /// and drained; a message that does not decode comes as its error, and
    /// the iteration goes on.
    ///
    /// ```
    /// let (tx, rx) = multiproc_queue::mpmc::channel(8, 64)?;
    /// tx.send_message(&1u64)?;
    /// tx.send_message(&2u64)?;
    /// tx.close();
    /// assert_eq!(rx.iter::<u64>().collect::<Result<Vec<_>, _>>()?, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter<'a, T: multiproc_core::message::Message + 'a>(
        &'a self,
    ) -> impl Iterator<Item = Result<T, RecvError>> + 'a {
        received(|| self.recv_message())
    }

    /// Takes the `T`s that are ready now, without waiting.
    pub fn try_iter<'a, T: multiproc_core::message::Message + 'a>(
        &'a self,
    ) -> impl Iterator<Item = Result<T, TryRecvError>> + 'a {
        received(|| self.try_recv_message())
    }

    /// Takes the next message as a `T`, waiting for one.
    ///
    /// # Errors
    /// As [`Receiver::recv`], and `Decode`.
    #[inline]
    pub fn recv_message<T: multiproc_core::message::Message>(&self) -> Result<T, RecvError> {
        recv_decoded(self.ring.raw(), self.strategy, Wait::FOREVER)
    }

    /// Takes the next message as a `T`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`], and `Decode`.
    pub fn recv_message_timeout<T: multiproc_core::message::Message>(
        &self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError> {
        recv_decoded(self.ring.raw(), self.strategy, Wait::at_most(timeout))
    }

    /// Copies the next message into `buf` if one is ready; returns its length.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`], and `BufferTooSmall` (the message stays
    /// queued).
    #[inline]
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        recv_into(self.ring.raw(), self.strategy, Wait::No, buf)
    }

    /// Copies the next message into `buf`, waiting for one.
    ///
    /// # Errors
    /// As [`Receiver::recv`], and `BufferTooSmall` (the message stays queued).
    #[inline]
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        recv_into(self.ring.raw(), self.strategy, Wait::FOREVER, buf)
    }

    /// Copies the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`], and `BufferTooSmall`.
    pub fn recv_into_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        recv_into(self.ring.raw(), self.strategy, Wait::at_most(timeout), buf)
    }

    /// Takes the next message as a plain-old-data value, if one is ready.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`], and `Decode` if the message is not
    /// `size_of::<T>()` bytes long (it is consumed).
    #[inline]
    pub fn try_recv_value<T: Shareable + Copy>(&self) -> Result<T, TryRecvError> {
        recv_value(self.ring.raw(), self.strategy, Wait::No)
    }

    /// Takes the next message as a plain-old-data value, waiting for one.
    ///
    /// # Errors
    /// As [`Receiver::recv`], and `Decode`.
    #[inline]
    pub fn recv_value<T: Shareable + Copy>(&self) -> Result<T, RecvError> {
        recv_value(self.ring.raw(), self.strategy, Wait::FOREVER)
    }

    /// Takes the next message as a plain-old-data value, waiting at most
    /// `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`], and `Decode`.
    pub fn recv_value_timeout<T: Shareable + Copy>(
        &self,
        timeout: Duration,
    ) -> Result<T, RecvTimeoutError> {
        recv_value(self.ring.raw(), self.strategy, Wait::at_most(timeout))
    }
}
