//! Single-producer single-consumer byte ring between processes.
//!
//! An [`SpscRing`] is a ring placed in shared memory by
//! [`Placed`](multiproc_core::object::Placed), with its six constructors:
//! [`SpscRing::create`]`(name, cfg)` and [`SpscRing::open`]`(name)` for
//! unrelated processes, [`SpscRing::anonymous`]`(cfg)` (a sealed `memfd`) for a
//! parent and the children it starts, [`SpscRing::from_fd`],
//! [`SpscRing::init_at`] and [`SpscRing::at`] for a ring at an offset of a
//! segment holding several objects; [`SpscRing::builder`] for the options.
//! Each process attaches the end it needs: one [`Producer`] and one
//! [`Consumer`] per ring, enforced across processes (the owner's pid and
//! start time are recorded in the ring; a second live attacher gets
//! [`AttachError::AlreadyAttached`], a dead owner's end is taken over).
//!
//! Messages are byte strings of any length up to
//! [`SpscRing::max_message_len`], written and read in place:
//! [`Producer::reserve`] hands out a [`Grant`] (`&mut [u8]` inside the ring)
//! that [`Grant::commit`] publishes, and [`Consumer::recv`] a [`RecvGuard`]
//! over the bytes in the ring that gives the room back when dropped. Copying
//! forms ([`Producer::send`], [`Consumer::recv_into`]) and batches
//! ([`Producer::try_send_batch`], [`Consumer::recv_batch`]) sit on top.
//! Plain-old-data values travel with no encoding ([`pod`]), `rkyv` archives
//! are written and read in place ([`rkyv`](mod@rkyv)). The algorithm and
//! framing are described in [`crate::raw::spsc`].
//!
//! # Waiting
//!
//! Every blocking call has a `try_` form that never blocks and a `_timeout`
//! form. How an end waits is its [`WaitStrategy`](multiproc_core::wait::WaitStrategy) (default
//! [`WaitStrategy::ADAPTIVE`](multiproc_core::wait::WaitStrategy::ADAPTIVE): spin, yield, then sleep on a futex). Nothing
//! makes a system call while the ring is neither full nor empty; a side only
//! calls `FUTEX_WAKE` when the other has announced it is parked, and skips
//! even the check (a fence) while the other declares
//! [`WaitStrategy::BusySpin`](multiproc_core::wait::WaitStrategy::BusySpin).
//!
//! # Closing and dying
//!
//! Dropping an end (or [`Producer::close`], [`Consumer::close`]) marks it
//! closed: a blocked peer wakes up; a consumer still drains every message
//! committed before the close, then gets [`RecvError::Closed`](crate::error::RecvError::Closed); a producer
//! gets [`SendError::Closed`](crate::error::SendError::Closed) at once. A peer that dies without closing is
//! noticed by blocking calls within [`LIVENESS_POLL`] (its recorded pid and
//! start time no longer name a live process). A new process may then attach
//! the dead end and carry on where it stopped: committed messages are never
//! lost, a message the dead producer had reserved but not committed never
//! appears, and a message the dead consumer was reading (a live guard) is
//! delivered again.
//!
//! # Example
//!
//! ```
//! use multiproc_queue::spsc::SpscRing;
//!
//! let ring = SpscRing::builder().capacity(4096).create()?; // anonymous
//! let mut tx = ring.producer()?;
//! let mut rx = ring.consumer()?;
//! let mut grant = tx.reserve(5)?;
//! grant.copy_from_slice(b"hello");
//! grant.commit();
//! assert_eq!(&*rx.recv()?, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod consumer;
mod endpoint;
pub mod pod;
mod producer;
mod ring;
#[cfg(feature = "rkyv")]
pub mod rkyv;

pub use crate::raw::spsc::{Config, Side};
pub use consumer::{Consumer, RecvGuard};
pub use producer::{Grant, Producer};
pub use ring::{SpscBuilder, SpscRing};

use crate::error::AttachError;
use crate::raw::spsc as raw;
use multiproc_core::Kind;
use std::time::Duration;

/// The segment kind of an SPSC ring. The layout hash covers the control
/// block; the capacity is read from the ring and checked when attaching.
pub const KIND: Kind = Kind::new(
    "ipc-queue/spsc",
    2,
    multiproc_core::header::layout_hash(&[
        std::mem::size_of::<raw::SpscControl>() as u64,
        std::mem::align_of::<raw::SpscControl>() as u64,
        raw::HEADER_LEN as u64,
        raw::RECORD_ALIGN as u64,
        raw::SLACK as u64,
    ]),
);

/// How often a parked end checks whether its peer is still alive.
pub const LIVENESS_POLL: Duration = Duration::from_millis(100);

/// The default data-area size of a new ring: 64 KiB.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Creates an anonymous ring of `capacity` bytes and attaches both ends in
/// this process (for threads, or for a forked child that takes one end).
///
/// # Errors
/// [`AttachError::Object`] if the ring cannot be made (a capacity above
/// 2 GiB, memory short), [`AttachError::UnknownIdentity`].
pub fn channel(capacity: usize) -> Result<(Producer, Consumer), AttachError> {
    let ring = SpscRing::anonymous(Config::new(capacity))?;
    Ok((ring.producer()?, ring.consumer()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        MessageTooLarge, RecvError, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError,
    };

    #[test]
    fn single_process_round_trip() {
        let (mut tx, mut rx) = channel(256).unwrap();
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        tx.send(b"abc").unwrap();
        let mut g = tx.reserve(4).unwrap();
        g.copy_from_slice(b"wxyz");
        g.commit();
        assert_eq!(&*rx.recv().unwrap(), b"abc");
        let mut buf = [0u8; 2];
        assert_eq!(
            rx.try_recv_into(&mut buf).unwrap_err(),
            TryRecvError::BufferTooSmall {
                needed: 4,
                capacity: 2
            }
        );
        assert_eq!(&*rx.try_recv().unwrap(), b"wxyz");
        assert!(matches!(
            tx.try_send(&[0; 249]),
            Err(TrySendError::TooLarge(
                (),
                MessageTooLarge { len: 249, max: 240 }
            ))
        ));
        tx.close();
        assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
    }

    #[test]
    fn second_attacher_is_refused() {
        let ring = SpscRing::builder().capacity(64).create().unwrap();
        let tx = ring.producer().unwrap();
        assert!(matches!(
            ring.producer(),
            Err(AttachError::AlreadyAttached {
                role: "producer",
                ..
            })
        ));
        drop(tx);
        let _tx = ring.producer().unwrap();
        assert_eq!(ring.attach_counts(), (2, 0));
    }

    #[test]
    fn timeouts_expire() {
        let (mut tx, mut rx) = channel(16).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        tx.send(&[1; 8]).unwrap();
        assert!(matches!(
            tx.send_timeout(&[2; 8], Duration::from_millis(5)),
            Err(SendTimeoutError::Timeout(()))
        ));
        assert!(rx.poll(Some(Duration::ZERO)).unwrap());
    }
}
