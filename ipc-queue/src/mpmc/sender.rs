//! The sending endpoint of an MPMC ring.

use super::{
    claim_send, endpoint_common, send, send_bytes_as, send_encoded, write_value, Mpmc, Reservation,
    Wait,
};
use crate::error::{SendError, SendTimeoutError, TrySendError};
use multiproc_core::message::Message;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::time::Duration;

/// The sending end of an MPMC ring. Clone it freely (threads); other
/// processes make their own from [`Mpmc::open`] or [`Mpmc::from_fd`].
#[derive(Clone, Debug)]
pub struct Sender {
    ring: Mpmc,
    strategy: WaitStrategy,
}

endpoint_common!(Sender);

impl Sender {
    pub(super) fn new(ring: Mpmc) -> Sender {
        Sender {
            ring,
            strategy: WaitStrategy::default(),
        }
    }

    /// Sends a copy of `msg` if a slot is free now.
    ///
    /// # Errors
    /// `Full` (also when the slot needed is held by a live peer past the spin
    /// budget), `Closed`, `TooLarge`, `Corrupt`.
    #[inline]
    pub fn try_send(&self, msg: &[u8]) -> Result<(), TrySendError<()>> {
        send_bytes_as(self.ring.raw(), self.strategy, Wait::No, msg)
    }

    /// Sends a copy of `msg`, waiting for a free slot.
    ///
    /// # Errors
    /// `Closed`, `TooLarge`, `Corrupt`.
    #[inline]
    pub fn send(&self, msg: &[u8]) -> Result<(), SendError<()>> {
        send_bytes_as(self.ring.raw(), self.strategy, Wait::FOREVER, msg)
    }

    /// Sends a copy of `msg`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `TooLarge`, `Corrupt`.
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError<()>> {
        send_bytes_as(self.ring.raw(), self.strategy, Wait::at_most(timeout), msg)
    }

    /// Sends any [`Message`] (numbers and `Pod` values as their bytes,
    /// `serde` types encoded straight into the slot) if a slot is free now.
    ///
    /// ```
    /// let (tx, rx) = multiproc_queue::mpmc::channel(8, 64)?;
    /// tx.try_send_message(&("tick".to_string(), 42u64))?;
    /// tx.send_message(&7u32)?;
    /// assert_eq!(rx.recv_message::<(String, u64)>()?, ("tick".to_string(), 42));
    /// assert_eq!(rx.try_recv_message::<u32>()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Sender::try_send`], and `Encode` if the serializer refuses the
    /// value; `TooLarge` if its encoding is longer than a slot.
    #[inline]
    pub fn try_send_message<T: Message>(&self, value: &T) -> Result<(), TrySendError<()>> {
        send_encoded(self.ring.raw(), self.strategy, Wait::No, value)
    }

    /// Sends any [`Message`], waiting for a free slot.
    ///
    /// # Errors
    /// As [`Sender::send`], and `Encode`.
    #[inline]
    pub fn send_message<T: Message>(&self, value: &T) -> Result<(), SendError<()>> {
        send_encoded(self.ring.raw(), self.strategy, Wait::FOREVER, value)
    }

    /// Sends any [`Message`], waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Sender::send_timeout`], and `Encode`.
    pub fn send_message_timeout<T: Message>(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        send_encoded(
            self.ring.raw(),
            self.strategy,
            Wait::at_most(timeout),
            value,
        )
    }

    /// Claims a slot for a message of `len` bytes, waiting as `wait` says.
    fn reserve_in<E: From<SendTimeoutError<usize>>>(
        &self,
        wait: Wait,
        len: usize,
    ) -> Result<Reservation<'_>, E> {
        claim_send(self.ring.raw(), self.strategy, len, wait).map_err(|f| f.send(len).into())
    }

    /// Claims a slot for a message of `len` bytes, to be written in place
    /// ([`Reservation::buf`]) and published with [`Reservation::commit`].
    /// Dropping the reservation uncommitted publishes an aborted message that
    /// receivers skip (counted in [`Mpmc::lost`]).
    ///
    /// # Errors
    /// As [`Sender::try_send`], handing `len` back.
    pub fn try_reserve(&self, len: usize) -> Result<Reservation<'_>, TrySendError<usize>> {
        self.reserve_in(Wait::No, len)
    }

    /// [`Sender::try_reserve`], waiting for a free slot.
    ///
    /// # Errors
    /// As [`Sender::send`], handing `len` back.
    pub fn reserve(&self, len: usize) -> Result<Reservation<'_>, SendError<usize>> {
        self.reserve_in(Wait::FOREVER, len)
    }

    /// [`Sender::try_reserve`], waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// As [`Sender::send_timeout`], handing `len` back.
    pub fn reserve_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> Result<Reservation<'_>, SendTimeoutError<usize>> {
        self.reserve_in(Wait::at_most(timeout), len)
    }

    /// Sends a plain-old-data value (its bytes, `size_of::<T>()` of them) if a
    /// slot is free now.
    ///
    /// # Errors
    /// As [`Sender::try_send`], handing `value` back.
    #[inline]
    pub fn try_send_value<T: Shareable + Copy>(&self, value: T) -> Result<(), TrySendError<T>> {
        send(
            self.ring.raw(),
            self.strategy,
            Wait::No,
            std::mem::size_of::<T>(),
            value,
            write_value,
        )
    }

    /// Sends a plain-old-data value, waiting for a free slot.
    ///
    /// # Errors
    /// As [`Sender::send`], handing `value` back.
    #[inline]
    pub fn send_value<T: Shareable + Copy>(&self, value: T) -> Result<(), SendError<T>> {
        send(
            self.ring.raw(),
            self.strategy,
            Wait::FOREVER,
            std::mem::size_of::<T>(),
            value,
            write_value,
        )
    }

    /// Sends a plain-old-data value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Sender::send_timeout`], handing `value` back.
    pub fn send_value_timeout<T: Shareable + Copy>(
        &self,
        value: T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        let len = std::mem::size_of::<T>();
        send(
            self.ring.raw(),
            self.strategy,
            Wait::at_most(timeout),
            len,
            value,
            write_value,
        )
    }
}
