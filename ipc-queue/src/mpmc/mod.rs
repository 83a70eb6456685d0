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
//! use ipc_queue::mpmc::{Config, Mpmc};
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
    claim_send, recv_into, recv_message, recv_value, send, write_bytes, write_value, Wait,
};

use crate::error::{invalid_config, wrong_object};
use crate::raw::mpmc::{self as raw, MpmcControl, DATA_ALIGN, SLOT_HEADER};
use crate::raw::PtrMem;
use ipc_core::header::layout_hash;
use ipc_core::liveness::OsJudge;
use ipc_core::object::{Handle, ObjectError, Placed, ShmObject};
use ipc_core::{Kind, Segment};
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
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

/// The placement contract of every ring with the MPMC layout (a plain ring,
/// and the rings under `Queue` and `JoinableQueue`): `Self` is the control
/// block, `check` what `attach` demands beyond a valid ring.
///
/// # Safety
/// `Self` is a `#[repr(C)]` or `#[repr(transparent)]` view of
/// [`MpmcControl`] (same size and alignment, atomics only).
pub(crate) unsafe trait MpmcLayout: Sized + Sync {
    /// What the ring is called in errors.
    const WHAT: &'static str;
    /// Checks the attached ring beyond its geometry.
    fn check(_ring: &RawMpmc) -> Result<(), ObjectError> {
        Ok(())
    }
}

/// `ShmObject::memory_size` of an MPMC-layout object.
pub(crate) fn memory_size(what: &'static str, cfg: &Config) -> Result<usize, ObjectError> {
    raw::memory_size(cfg).map_err(|e| invalid_config(what, e))
}

/// `ShmObject::init_in` of an MPMC-layout object.
///
/// # Safety
/// As [`ShmObject::init_in`]: `len` writable bytes at `mem`, 128-aligned,
/// unused by anyone else.
pub(crate) unsafe fn init_in(mem: NonNull<u8>, len: usize, cfg: &Config) {
    // SAFETY: the caller's promise.
    let mem = unsafe { PtrMem::new(mem, len) };
    // `memory_size(&cfg)` succeeded before this call, so this cannot fail;
    // a ring it did not write would fail `attach`.
    let _ = RawMpmc::init(mem, cfg);
}

/// `ShmObject::attach` of an MPMC-layout object.
///
/// # Safety
/// As [`ShmObject::attach`]: `len` bytes at `mem` for `'a`, accessed
/// atomically.
pub(crate) unsafe fn attach<'a, O: MpmcLayout>(
    mem: NonNull<u8>,
    len: usize,
) -> Result<&'a O, ObjectError> {
    // SAFETY: the caller's promise; size and alignment are checked there.
    let ctrl = unsafe { ipc_core::object::checked_ref::<O>(mem, len)? };
    // SAFETY: as above, and 128-aligned (just checked); for the check only.
    let ring =
        RawMpmc::attach(unsafe { PtrMem::new(mem, len) }).map_err(|c| wrong_object(O::WHAT, c))?;
    O::check(&ring)?;
    Ok(ctrl)
}

// SAFETY: it is the control block itself.
unsafe impl MpmcLayout for MpmcControl {
    const WHAT: &'static str = WHAT;
}

// SAFETY: `MpmcControl` is atomics only (valid for every bit pattern, no
// pointers); `init_in` writes a whole ring, which `attach` accepts; `attach`
// checks size, alignment, magic and that capacity, slot size and stride fit
// the memory, and the ring keeps those checked values: every slot offset it
// later uses is derived from them, never reread.
unsafe impl ShmObject for MpmcControl {
    const KIND: Kind = KIND;
    type Config = Config;

    fn memory_size(cfg: &Config) -> Result<usize, ObjectError> {
        memory_size(WHAT, cfg)
    }

    unsafe fn init_in(mem: NonNull<u8>, len: usize, cfg: Config) {
        // SAFETY: the caller's promise, passed on.
        unsafe { init_in(mem, len, &cfg) }
    }

    unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Self, ObjectError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { attach(mem, len) }
    }
}

/// A ring in a segment; the handle every endpoint shares.
#[derive(Debug)]
struct Shared {
    raw: RawMpmc,
    seg: Arc<Segment>,
}

/// An MPMC ring placed in a shared-memory segment. Cheap to clone (the clones
/// share one mapping); hands out [`Sender`]s and [`Receiver`]s.
#[derive(Clone, Debug)]
pub struct Mpmc {
    shared: Arc<Shared>,
}

impl Handle for Mpmc {
    type Object = MpmcControl;

    fn from_placed(placed: Placed<MpmcControl>) -> Mpmc {
        Mpmc::from_layout(placed)
    }
}

ipc_core::handle_constructors!(impl[] Mpmc, "MPMC ring");

impl Mpmc {
    /// The ring an MPMC-layout object was placed as.
    pub(crate) fn from_layout<O: MpmcLayout + ShmObject>(placed: Placed<O>) -> Mpmc {
        let (mem, len) = placed.memory();
        // SAFETY: the bytes `Placed` checked, inside the segment's mapping,
        // which `Shared` keeps beside the ring.
        let mem = unsafe { PtrMem::new(mem, len) };
        Mpmc {
            shared: Arc::new(Shared {
                raw: RawMpmc::attach_or_smallest(mem),
                seg: Arc::clone(placed.segment()),
            }),
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

    /// The segment's descriptor, to pass to a child ([`Mpmc::from_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.seg.fd()
    }

    /// The segment holding the ring.
    pub fn segment(&self) -> &Segment {
        &self.shared.seg
    }

    /// The segment's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.shared.seg.name()
    }

    /// The raw ring (for tests and for types built on it).
    pub fn raw(&self) -> &RawMpmc {
        &self.shared.raw
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.raw().capacity()
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.raw().slot_size()
    }

    /// The largest message in bytes: the same as [`Mpmc::slot_size`].
    pub fn max_message_len(&self) -> usize {
        self.raw().slot_size()
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
        impl $end {
            /// The same endpoint with another wait strategy for its blocking
            /// calls.
            pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> $end {
                self.strategy = strategy;
                self
            }

            /// Sets the wait strategy of this endpoint's blocking calls.
            pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
                self.strategy = strategy;
            }

            /// The wait strategy of this endpoint.
            pub fn wait_strategy(&self) -> WaitStrategy {
                self.strategy
            }

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
    use ipc_core::wait::WaitStrategy;
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
            Err(SendTimeoutError::Timeout(b"2"))
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
