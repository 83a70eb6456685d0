//! A bounded multi-producer multi-consumer ring between processes.
//!
//! Any number of processes (and threads) send into and receive from one ring
//! of fixed-size slots. Each message is a byte string of at most
//! [`Mpmc::slot_size`] bytes, or a plain-old-data value
//! ([`Sender::send_value`]); it is written in place and read in place. A
//! process killed between claiming a slot and finishing with it does not
//! wedge the ring: the next process that waits on that slot for longer than
//! its spin budget finds the claimer dead and finishes the claim for it, and
//! the message is counted in [`Mpmc::lost`]. The protocol, with a table of
//! slot states, is documented in [`crate::raw::mpmc`].
//!
//! ```
//! use multiproc_queue::mpmc::{Config, Mpmc};
//! let ring = Mpmc::anonymous(Config::new(8, 64))?; // 8 slots of up to 64 bytes
//! let (tx, rx) = (ring.sender(), ring.receiver());
//! tx.send(b"hello")?;
//! let msg = rx.recv()?; // a guard over the bytes, in place
//! assert_eq!(msg.bytes(), b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A ring is placed by [`Placed`], with its six
//! constructors: by name for unrelated processes ([`Mpmc::create`] /
//! [`Mpmc::open`]), anonymous for a parent and its children
//! ([`Mpmc::anonymous`], then [`Mpmc::fd`] and [`Mpmc::from_fd`]), or at an
//! offset of a segment holding several objects ([`Mpmc::init_at`] /
//! [`Mpmc::at`]).
//!
//! `close` closes the ring for everybody: sends fail with `Closed`, receivers
//! drain what was sent before and then get `Closed`.

mod receiver;
mod sender;
mod wait;

pub use crate::raw::mpmc::Config;
pub use receiver::Receiver;
pub use sender::Sender;
pub(crate) use wait::{
    claim_send, recv_decoded, recv_into, recv_message, recv_value, send, send_bytes_as,
    send_encoded, wait_strategy_accessors, write_value, Wait,
};

use crate::error::{invalid_config, wrong_object};
use crate::placed::InSegment;
use crate::raw::mpmc::{self as raw, MpmcControl, DATA_ALIGN, SLOT_HEADER};
use crate::raw::PtrMem;
use multiproc_core::header::layout_hash;
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::{Handle, ObjectError, Placed, ShmObject};
use multiproc_core::Kind;
use std::sync::Arc;

/// A received message, read in place in its slot; dropping it releases the
/// slot.
pub type Message<'a> = raw::ReadClaim<'a, PtrMem>;
/// A claimed slot, written in place; [`Reservation::commit`] publishes it.
pub type Reservation<'a> = raw::WriteClaim<'a, PtrMem>;
/// The raw ring of a segment.
pub(crate) type RawMpmc = raw::RawMpmc<PtrMem>;

/// The segment kind of an MPMC ring.
pub const KIND: Kind = Kind::new(
    "ipc-queue/mpmc",
    1,
    layout_hash(&[128, SLOT_HEADER as u64, DATA_ALIGN as u64]),
);

const WHAT: &str = "MPMC ring";

/// The memory an MPMC-layout object of `cfg` needs (a plain ring, or the
/// ring under a queue), `what` naming it in errors.
pub(crate) fn memory_size(what: &'static str, cfg: &Config) -> Result<usize, ObjectError> {
    raw::memory_size(cfg).map_err(|e| invalid_config(what, e))
}

/// Checks the MPMC ring in `mem`, `what` naming it in errors; returns it
/// for the object's own checks.
pub(crate) fn check(what: &'static str, mem: PtrMem) -> Result<RawMpmc, ObjectError> {
    RawMpmc::attach(mem).map_err(|c| wrong_object(what, c))
}

crate::placed::ring_object!(MpmcControl, KIND, WHAT, raw::RawMpmc);

/// An MPMC ring placed in a shared-memory segment. Cheap to clone (the clones
/// share one mapping); hands out [`Sender`]s and [`Receiver`]s.
#[derive(Clone, Debug)]
pub struct Mpmc {
    shared: Arc<InSegment<RawMpmc>>,
}

impl Handle for Mpmc {
    type Object = MpmcControl;

    fn from_placed(placed: Placed<MpmcControl>) -> Mpmc {
        Mpmc::from_layout(&placed)
    }
}

multiproc_core::handle_constructors!(impl[] Mpmc, "MPMC ring");
crate::placed::slotted_ring_accessors!(Mpmc);

impl Mpmc {
    /// The ring an object of the MPMC layout (a plain ring, a queue's) was
    /// placed as; its attach checked the ring.
    pub(crate) fn from_layout<O: ShmObject>(placed: &Placed<O>) -> Mpmc {
        Mpmc {
            shared: Arc::new(InSegment::new(placed, RawMpmc::attach_or_smallest)),
        }
    }

    /// A sending endpoint with the default wait strategy.
    pub fn sender(&self) -> Sender {
        Sender::new(self.clone())
    }

    /// A receiving endpoint with the default wait strategy.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(self.clone())
    }

    /// The raw ring (for tests and for types built on it).
    pub fn raw(&self) -> &RawMpmc {
        &self.shared.raw
    }

    /// Messages queued now: approximate while others send or receive.
    pub fn len(&self) -> usize {
        self.raw().len()
    }

    /// Whether the ring looked empty (it may stop being empty at any moment).
    pub fn is_empty(&self) -> bool {
        self.raw().is_empty()
    }

    /// Whether the ring looked full (it may stop being full at any moment).
    pub fn is_full(&self) -> bool {
        self.raw().is_full()
    }

    /// Closes the ring for every process: sends fail with `Closed`, receivers
    /// drain what was sent before, then get `Closed`. Waiters are woken.
    pub fn close(&self) {
        self.raw().close();
    }

    /// Whether the ring was closed.
    pub fn is_closed(&self) -> bool {
        self.raw().is_closed()
    }

    /// Finishes every claim held by a dead process now, instead of when a
    /// waiter next needs that slot; returns how many it finished. Reads
    /// `/proc` once per claimed slot: a slow path.
    pub fn sweep(&self) -> u64 {
        self.raw().sweep(&OsJudge)
    }

    /// Messages claimed but never delivered, over the ring's life, by every
    /// process: sends a dead (or panicking) producer left unfinished, and
    /// messages a consumer died holding.
    pub fn lost(&self) -> u64 {
        self.raw().lost()
    }
}

/// The methods both endpoints have, written once: they speak of the ring.
macro_rules! endpoint_common {
    ($end:ident) => {
        $crate::mpmc::wait_strategy_accessors!($end);

        impl $end {
            /// The ring of this endpoint.
            pub fn ring(&self) -> Mpmc {
                self.ring.clone()
            }

            /// The largest message in bytes (the slot size).
            pub fn max_message_len(&self) -> usize {
                self.ring.slot_size()
            }

            /// Messages queued now (approximate). See [`Mpmc::len`].
            pub fn len(&self) -> usize {
                self.ring.len()
            }

            /// Whether the ring looked empty.
            pub fn is_empty(&self) -> bool {
                self.ring.is_empty()
            }

            /// Whether the ring looked full.
            pub fn is_full(&self) -> bool {
                self.ring.is_full()
            }

            /// Number of slots.
            pub fn capacity(&self) -> usize {
                self.ring.capacity()
            }

            /// Closes the ring for every process. See [`Mpmc::close`].
            pub fn close(&self) {
                self.ring.close();
            }

            /// Whether the ring was closed.
            pub fn is_closed(&self) -> bool {
                self.ring.is_closed()
            }

            /// See [`Mpmc::lost`].
            pub fn lost(&self) -> u64 {
                self.ring.lost()
            }
        }
    };
}
use endpoint_common;

/// An anonymous ring's two ends, in the style of `std::sync::mpsc::channel`.
/// Clone either end for more producers or consumers; pass
/// [`Sender::ring`]`().fd()` to a child to share it with another process.
///
/// # Errors
/// As [`Mpmc::anonymous`].
pub fn channel(capacity: usize, slot_size: usize) -> Result<(Sender, Receiver), ObjectError> {
    let ring = Mpmc::anonymous(Config::new(capacity, slot_size))?;
    Ok((ring.sender(), ring.receiver()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        MessageTooLarge, RecvError, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError,
    };
    use multiproc_core::wait::WaitStrategy;
    use std::time::Duration;

    #[test]
    fn values_bytes_and_reservations() {
        let (tx, rx) = channel(4, 16).unwrap();
        tx.send_value(7u64).unwrap();
        tx.send(b"abc").unwrap();
        let mut r = tx.try_reserve(2).unwrap();
        r.buf().copy_from_slice(b"zz");
        r.commit();
        assert_eq!(rx.recv_value::<u64>().unwrap(), 7);
        let mut small = [0u8; 2];
        assert_eq!(
            rx.try_recv_into(&mut small),
            Err(TryRecvError::BufferTooSmall {
                needed: 3,
                capacity: 2
            })
        );
        assert_eq!(rx.recv().unwrap().bytes(), b"abc");
        assert_eq!(rx.try_recv_into(&mut small), Ok(2));
        assert_eq!(&small, b"zz");
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Empty));
        assert!(matches!(
            tx.try_send(&[0; 17]),
            Err(TrySendError::TooLarge(
                _,
                MessageTooLarge { len: 17, max: 16 }
            ))
        ));
    }

    #[test]
    fn close_drains_then_reports_closed() {
        let (tx, rx) = channel(2, 8).unwrap();
        tx.send(b"a").unwrap();
        tx.close();
        assert!(tx.try_send(b"b").unwrap_err().is_closed());
        assert_eq!(rx.recv().unwrap().bytes(), b"a");
        assert_eq!(rx.recv().err(), Some(RecvError::Closed));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)).err(),
            Some(RecvTimeoutError::Closed)
        );
    }

    #[test]
    fn blocking_calls_time_out_and_wake() {
        let (tx, rx) = channel(1, 8).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)).err(),
            Some(RecvTimeoutError::Timeout)
        );
        tx.send(b"1").unwrap();
        assert!(matches!(
            tx.send_timeout(b"2", Duration::from_millis(5)),
            Err(SendTimeoutError::Timeout(()))
        ));
        for strategy in [
            WaitStrategy::Blocking,
            WaitStrategy::BusySpin,
            WaitStrategy::ADAPTIVE,
        ] {
            let tx2 = tx.clone().with_wait_strategy(strategy);
            let h = std::thread::spawn(move || tx2.send(b"2").map_err(|e| e.to_string()));
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(rx.recv().unwrap().len(), 1);
            h.join().unwrap().unwrap();
        }
    }
}
