//! A broadcast ring: one publisher, many subscribers across processes, each
//! with its own cursor (market-data fan-out).
//!
//! The publisher never waits: it overwrites the oldest message when the ring
//! is full. A subscriber that falls more than the capacity behind learns how
//! many messages it missed ([`ReadError::Lagged`], [`Subscriber::overruns`])
//! and resumes at the oldest message still in the ring; it never gets a torn
//! message (seqlock slots, see [`crate::raw::broadcast`]). A late subscriber
//! chooses where to start ([`Start`]).
//!
//! ```
//! use multiproc_queue::broadcast::{BroadcastRing, Config, ReadError, Start};
//! let ring = BroadcastRing::anonymous(Config::new(4, 32))?;
//! let mut publisher = ring.publisher()?;
//! let mut early = publisher.subscribe(Start::Next);
//! for i in 0..6u8 {
//!     publisher.publish(&[i])?;
//! }
//! let mut late = ring.subscribe(Start::Oldest);
//! let mut buf = [0u8; 32];
//! // `early` was lapped: messages 0 and 1 are gone.
//! assert_eq!(early.try_recv_into(&mut buf), Err(ReadError::Lagged(2)));
//! assert_eq!(early.try_recv_into(&mut buf), Ok(1));
//! assert_eq!(buf[0], 2);
//! assert_eq!(late.try_recv_into(&mut buf), Ok(1));
//! assert_eq!(buf[0], 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The ring is placed by [`Placed`], with the six
//! constructors of every ring ([`BroadcastRing::create`],
//! [`BroadcastRing::open`], [`BroadcastRing::anonymous`],
//! [`BroadcastRing::from_fd`], [`BroadcastRing::init_at`],
//! [`BroadcastRing::at`]); any process holding it may subscribe, and one at
//! a time may publish ([`BroadcastRing::publisher`]).
//!
//! Dropping the [`Publisher`] closes the ring: subscribers drain what is left
//! and then get [`ReadError::Closed`]; so do they when the publisher's
//! process dies (noticed while waiting, within [`POLL`]). A new publisher may
//! then take over with [`BroadcastRing::publisher`].

mod publisher;
mod subscriber;

pub use crate::raw::broadcast::Config;
pub use publisher::Publisher;
pub use subscriber::Subscriber;

use crate::error::{AttachError, Corrupt};
use crate::placed::InSegment;
use crate::raw::broadcast::{self as raw, BroadcastControl};
use crate::raw::PtrMem;
use multiproc_core::header::layout_hash;
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::{Handle, Placed};
use multiproc_core::Kind;
use std::sync::Arc;
use std::time::Duration;

type RawBroadcast = raw::RawBroadcast<PtrMem>;

/// The segment kind of a broadcast ring.
pub const KIND: Kind = Kind::new("ipc-queue/broadcast", 1, layout_hash(&[128, 128, 16]));

/// How often a waiting subscriber checks that the publisher's process is
/// still alive.
pub const POLL: Duration = Duration::from_millis(10);

const WHAT: &str = "broadcast ring";

/// Where a new subscriber starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Start {
    /// The oldest message still in the ring.
    Oldest,
    /// The newest message published (or the first one, if none was yet).
    Newest,
    /// The next message published after subscribing.
    Next,
}

/// Why a subscriber's receive returned no message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing new now (`try_` forms only).
    #[error("no new message")]
    Empty,
    /// Nothing arrived before the deadline (`_timeout` forms only).
    #[error("timed out waiting for a message")]
    Timeout,
    /// The publisher lapped this subscriber: this many messages were
    /// overwritten before it read them. The next receive returns the oldest
    /// message still in the ring.
    #[error("subscriber fell behind and lost {0} messages")]
    Lagged(u64),
    /// The publisher closed the ring (or died) and everything it published
    /// has been read.
    #[error("the publisher closed the ring")]
    Closed,
    /// The next message does not fit in the buffer; it stays unread.
    #[error("the next message has {needed} bytes, the buffer only {capacity}")]
    BufferTooSmall {
        /// Its length.
        needed: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// A typed receive found a message it could not decode (it is
    /// consumed).
    #[error("message could not be decoded: {0}")]
    Decode(multiproc_core::message::DecodeError),
    /// The ring's shared state is corrupt.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

crate::placed::ring_object!(BroadcastControl, KIND, WHAT, raw::RawBroadcast);

/// A broadcast ring in a shared segment. Cheap to clone (the mapping is
/// shared); [`BroadcastRing::publisher`] claims the one writing end,
/// [`BroadcastRing::subscribe`] makes as many readers as wanted.
#[derive(Clone, Debug)]
pub struct BroadcastRing {
    shared: Arc<InSegment<RawBroadcast>>,
}

impl Handle for BroadcastRing {
    type Object = BroadcastControl;

    fn from_placed(placed: Placed<BroadcastControl>) -> BroadcastRing {
        BroadcastRing {
            shared: Arc::new(InSegment::new(&placed, RawBroadcast::attach_or_smallest)),
        }
    }
}

multiproc_core::handle_constructors!(impl[] BroadcastRing, "broadcast ring");
crate::placed::slotted_ring_accessors!(BroadcastRing);

impl BroadcastRing {
    /// Becomes the publisher of the ring: of a new one, or of one whose
    /// publisher closed it or died. Publishing resumes after the last
    /// complete message.
    ///
    /// # Errors
    /// [`AttachError::AlreadyAttached`] if a live process (this one
    /// included) publishes, [`AttachError::UnknownIdentity`] if this process
    /// cannot learn the identity the publisher slot records.
    pub fn publisher(&self) -> Result<Publisher, AttachError> {
        let raw = self
            .shared
            .raw
            .publisher(OsJudge)
            .map_err(|e| AttachError::claim("publisher", e))?;
        Ok(Publisher::new(raw, self.clone()))
    }

    /// A subscriber in this process, starting at `start`.
    pub fn subscribe(&self, start: Start) -> Subscriber {
        Subscriber::new(self.clone(), start)
    }

    fn raw(&self) -> &RawBroadcast {
        &self.shared.raw
    }

    /// Messages published so far (by every publisher of this ring).
    pub fn written(&self) -> u64 {
        self.raw().written()
    }

    /// Whether the publisher closed the ring or its process died (reads
    /// `/proc`: not for hot paths).
    pub fn is_closed(&self) -> bool {
        self.raw().publisher_gone(&OsJudge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(capacity: usize, slot_size: usize) -> BroadcastRing {
        BroadcastRing::anonymous(Config::new(capacity, slot_size)).unwrap()
    }

    #[test]
    fn start_positions_and_close() {
        let mut p = ring(4, 8).publisher().unwrap();
        for i in 0..6u64 {
            p.publish_value(i).unwrap();
        }
        let mut oldest = p.subscribe(Start::Oldest);
        let mut newest = p.subscribe(Start::Newest);
        let mut next = p.subscribe(Start::Next);
        assert_eq!(oldest.try_recv_value::<u64>(), Ok(2));
        assert_eq!(newest.try_recv_value::<u64>(), Ok(5));
        assert_eq!(next.try_recv_value::<u64>(), Err(ReadError::Empty));
        p.publish_value(6u64).unwrap();
        assert_eq!(next.recv_value::<u64>(), Ok(6));
        assert_eq!(
            next.recv_timeout(Duration::from_millis(2)),
            Err(ReadError::Timeout)
        );
        assert!(p.publish(&[0; 9]).is_err());
        drop(p);
        assert_eq!(newest.recv_value::<u64>(), Ok(6));
        assert_eq!(newest.recv_value::<u64>(), Err(ReadError::Closed));
        assert_eq!(oldest.overruns(), 0);
    }

    #[test]
    fn a_second_live_publisher_is_refused() {
        let name = multiproc_core::name::unique_name("bcast-pub");
        let p = BroadcastRing::create(&name, Config::new(2, 8))
            .unwrap()
            .publisher()
            .unwrap();
        assert!(matches!(
            BroadcastRing::open(&name).unwrap().publisher(),
            Err(AttachError::AlreadyAttached {
                role: "publisher",
                ..
            })
        ));
        drop(p);
        // A descriptor of a named ring is not sealed against resizing, so
        // taking over through a descriptor needs an anonymous ring.
        let p = ring(2, 8).publisher().unwrap();
        let fd = p.fd().try_clone_to_owned().unwrap();
        let mut s = BroadcastRing::from_fd(fd.try_clone().unwrap())
            .unwrap()
            .subscribe(Start::Next);
        assert!(matches!(
            BroadcastRing::from_fd(fd.try_clone().unwrap())
                .unwrap()
                .publisher(),
            Err(AttachError::AlreadyAttached {
                role: "publisher",
                ..
            })
        ));
        drop(p);
        assert_eq!(s.try_recv(), Err(ReadError::Closed));
        let mut p2 = BroadcastRing::from_fd(fd).unwrap().publisher().unwrap();
        p2.publish(b"again").unwrap();
        assert_eq!(s.try_recv().unwrap(), b"again");
    }
}
