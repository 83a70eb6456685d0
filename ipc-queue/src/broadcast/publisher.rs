//! The one writing end of a broadcast ring.

use super::{BroadcastRing, Start, Subscriber};
use crate::error::MessageTooLarge;
use crate::raw::broadcast::RawPublisher;
use crate::raw::PtrMem;
use multiproc_core::liveness::OsJudge;
use multiproc_core::Shareable;
use std::os::fd::BorrowedFd;

/// The one publishing end of a broadcast ring, from
/// [`BroadcastRing::publisher`]. Dropping it closes the ring.
#[derive(Debug)]
pub struct Publisher {
    // Dropped first: it closes the ring while `ring` keeps the mapping.
    raw: RawPublisher<PtrMem, OsJudge>,
    ring: BroadcastRing,
}

impl Publisher {
    pub(super) fn new(raw: RawPublisher<PtrMem, OsJudge>, ring: BroadcastRing) -> Publisher {
        Publisher { raw, ring }
    }

    /// Publishes a copy of `msg`. Never waits: the oldest message is
    /// overwritten when the ring is full.
    ///
    /// # Errors
    /// [`MessageTooLarge`] (nothing is published).
    #[inline]
    pub fn publish(&mut self, msg: &[u8]) -> Result<(), MessageTooLarge> {
        self.raw.publish(msg)
    }

    /// Publishes a plain-old-data value (its `size_of::<T>()` bytes).
    ///
    /// # Errors
    /// [`MessageTooLarge`].
    #[inline]
    pub fn publish_value<T: Shareable + Copy>(&mut self, value: T) -> Result<(), MessageTooLarge> {
        // SAFETY: `T: Shareable` has no padding-dependent validity and no
        // pointers; viewing its bytes is what sending it means.
        let bytes = unsafe {
            std::slice::from_raw_parts(&value as *const T as *const u8, std::mem::size_of::<T>())
        };
        self.publish(bytes)
    }

    /// A subscriber in this process.
    pub fn subscribe(&self, start: Start) -> Subscriber {
        self.ring.subscribe(start)
    }

    /// The ring this end publishes into.
    pub fn ring(&self) -> &BroadcastRing {
        &self.ring
    }

    /// Messages published so far (by every publisher of this ring).
    pub fn published(&self) -> u64 {
        self.raw.published()
    }

    /// The segment's descriptor, for children
    /// ([`BroadcastRing::from_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ring.fd()
    }

    /// The ring's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.ring.name()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.ring.slot_size()
    }

    /// The largest message in bytes: the same as `slot_size`.
    pub fn max_message_len(&self) -> usize {
        self.ring.slot_size()
    }

    /// Closes the ring: subscribers drain, then get
    /// [`ReadError::Closed`](super::ReadError::Closed). (Dropping the
    /// publisher does the same.)
    pub fn close(self) {}
}
