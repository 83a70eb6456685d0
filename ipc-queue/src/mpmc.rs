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
//! slot states, is documented in [`raw`].
//!
//! ```
//! use ipc_queue::mpmc::Mpmc;
//! let ring = Mpmc::anonymous(8, 64)?; // 8 slots of up to 64 bytes
//! let (tx, rx) = (ring.sender(), ring.receiver());
//! tx.send(b"hello")?;
//! let msg = rx.recv()?; // a guard over the bytes, in place
//! assert_eq!(msg.bytes(), b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Across processes, create the ring by name ([`Mpmc::create`] /
//! [`Mpmc::open`]), or pass an anonymous ring's descriptor ([`Mpmc::fd`],
//! [`Mpmc::from_fd`]) to a child.
//!
//! `close` closes the ring for everybody: sends fail with `Closed`, receivers
//! drain what was sent before and then get `Closed`.

pub use crate::raw::mpmc as raw;

use crate::error::{
    AttachError, Corrupt, MessageTooLarge, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
use crate::raw::PtrMem;
use ipc_core::header::layout_hash;
use ipc_core::liveness::OsJudge;
use ipc_core::wait::WaitStrategy;
use ipc_core::{IdentityError, Kind, Segment, Shareable};
use raw::{Config, RawError, Watch};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    layout_hash(&[128, raw::SLOT_HEADER as u64, raw::DATA_ALIGN as u64]),
);

/// A blocked waiter re-checks its condition at least this often, so a peer
/// that died holding a slot is noticed even though it will never notify.
const POLL: Duration = Duration::from_millis(10);

/// A ring in a segment; the handle every endpoint shares.
#[derive(Debug)]
struct Shared {
    raw: RawMpmc,
    seg: Segment,
}

/// An MPMC ring placed in a shared-memory segment. Cheap to clone (the clones
/// share one mapping); hands out [`Sender`]s and [`Receiver`]s.
#[derive(Clone, Debug)]
pub struct Mpmc {
    shared: Arc<Shared>,
}

impl Mpmc {
    /// Creates a named ring of `capacity` slots (rounded up to a power of
    /// two) of `slot_size` bytes each. Other processes open it with
    /// [`Mpmc::open`]; the name is removed when this process drops the last
    /// handle.
    ///
    /// # Errors
    /// [`AttachError::InvalidConfig`] or [`AttachError::Segment`] (e.g.
    /// [`SegmentError::InsufficientMemory`](ipc_core::SegmentError::InsufficientMemory):
    /// more than the machine or the memory cgroup can still give).
    pub fn create(name: &str, capacity: usize, slot_size: usize) -> Result<Mpmc, AttachError> {
        Mpmc::create_in(KIND, Some(name), Config::new(capacity, slot_size))
    }

    /// Creates an anonymous ring (a `memfd`), for this process and its
    /// children.
    ///
    /// # Errors
    /// As [`Mpmc::create`].
    pub fn anonymous(capacity: usize, slot_size: usize) -> Result<Mpmc, AttachError> {
        Mpmc::create_in(KIND, None, Config::new(capacity, slot_size))
    }

    /// Opens the named ring another process created.
    ///
    /// # Errors
    /// [`AttachError::Segment`] (no such ring, wrong kind, ...) or
    /// [`AttachError::Corrupt`].
    pub fn open(name: &str) -> Result<Mpmc, AttachError> {
        Mpmc::open_in(KIND, name)
    }

    /// Maps a ring from a descriptor given by [`Mpmc::fd`] in another
    /// process (inherited or received over a socket).
    ///
    /// # Errors
    /// As [`Mpmc::open`]; a descriptor not sealed against resizing (its
    /// sender could shrink it under this mapping) is
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed).
    pub fn from_fd(fd: OwnedFd) -> Result<Mpmc, AttachError> {
        Mpmc::from_fd_in(KIND, fd)
    }

    pub(crate) fn create_in(
        kind: Kind,
        name: Option<&str>,
        cfg: Config,
    ) -> Result<Mpmc, AttachError> {
        let size = raw::memory_size(&cfg).map_err(|e| AttachError::InvalidConfig(e.0))?;
        let mut b = Segment::builder(kind).size(size);
        if let Some(n) = name {
            b = b.name(n);
        }
        let mut init_err = None;
        let seg = b.create_with(|seg| {
            // SAFETY: the payload is `size` bytes of fresh memory, 128-aligned,
            // that nobody else uses before the segment is marked ready.
            let mem = unsafe { PtrMem::new(seg.payload_ptr(), seg.payload_len()) };
            if let Err(e) = RawMpmc::init(mem, &cfg) {
                init_err = Some(e);
            }
        })?;
        if let Some(e) = init_err {
            return Err(AttachError::InvalidConfig(e.0));
        }
        Mpmc::wrap(seg)
    }

    pub(crate) fn open_in(kind: Kind, name: &str) -> Result<Mpmc, AttachError> {
        Mpmc::wrap(Segment::builder(kind).name(name).open()?)
    }

    pub(crate) fn from_fd_in(kind: Kind, fd: OwnedFd) -> Result<Mpmc, AttachError> {
        Mpmc::wrap(Segment::from_fd(fd, kind)?)
    }

    fn wrap(seg: Segment) -> Result<Mpmc, AttachError> {
        let ptr: NonNull<u8> = seg.payload_ptr();
        // SAFETY: the payload stays mapped as long as `seg`, which `Shared`
        // keeps beside the ring.
        let raw = RawMpmc::attach(unsafe { PtrMem::new(ptr, seg.payload_len()) })?;
        Ok(Mpmc {
            shared: Arc::new(Shared { raw, seg }),
        })
    }

    /// A sending endpoint with the default wait strategy.
    pub fn sender(&self) -> Sender {
        Sender {
            shared: Arc::clone(&self.shared),
            strategy: WaitStrategy::default(),
        }
    }

    /// A receiving endpoint with the default wait strategy.
    pub fn receiver(&self) -> Receiver {
        Receiver {
            shared: Arc::clone(&self.shared),
            strategy: WaitStrategy::default(),
        }
    }

    /// The segment's descriptor, to pass to a child ([`Mpmc::from_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.seg.fd()
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
        self.shared.raw.capacity()
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// The largest message in bytes: the same as [`Mpmc::slot_size`].
    pub fn max_message_len(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// Messages queued now: approximate while others send or receive.
    pub fn len(&self) -> usize {
        self.shared.raw.len()
    }

    /// Whether the ring looked empty (it may stop being empty at any moment).
    pub fn is_empty(&self) -> bool {
        self.shared.raw.is_empty()
    }

    /// Whether the ring looked full (it may stop being full at any moment).
    pub fn is_full(&self) -> bool {
        self.shared.raw.is_full()
    }

    /// Closes the ring for every process: sends fail with `Closed`, receivers
    /// drain what was sent before, then get `Closed`. Waiters are woken.
    pub fn close(&self) {
        self.shared.raw.close();
    }

    /// Whether the ring was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.raw.is_closed()
    }

    /// Finishes every claim held by a dead process now, instead of when a
    /// waiter next needs that slot; returns how many it finished. Reads
    /// `/proc` once per claimed slot: a slow path.
    pub fn sweep(&self) -> u64 {
        self.shared.raw.sweep(&OsJudge)
    }

    /// Messages claimed but never delivered, over the ring's life, by every
    /// process: sends a dead (or panicking) producer left unfinished, and
    /// messages a consumer died holding.
    pub fn lost(&self) -> u64 {
        self.shared.raw.lost()
    }
}

/// Why an internal wait ended without a claim.
pub(crate) enum Fail {
    Full,
    Empty,
    Timeout,
    Closed,
    TooLarge(MessageTooLarge),
    TooLong(usize),
    Corrupt(Corrupt),
    UnknownIdentity(IdentityError),
}

pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Some(Instant::now().checked_add(d).unwrap_or_else(far_future))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// How long a blocking call may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    No,
    Until(Option<Instant>),
}

/// Claims a slot to send `len` bytes, waiting as `wait` says.
pub(crate) fn claim_send(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    len: usize,
    wait: Wait,
) -> Result<Reservation<'_>, Fail> {
    let mut watch = Watch::new();
    let mut attempt = || match raw.try_claim_send(len, &mut watch, &OsJudge) {
        Ok(c) => Some(Ok(c)),
        Err(RawError::Full | RawError::Busy) => None,
        Err(RawError::Closed) => Some(Err(Fail::Closed)),
        Err(RawError::TooLarge(m)) => Some(Err(Fail::TooLarge(m))),
        Err(RawError::Corrupt(c)) => Some(Err(Fail::Corrupt(c))),
        Err(RawError::UnknownIdentity(e)) => Some(Err(Fail::UnknownIdentity(e))),
        Err(RawError::Empty | RawError::TooLong { .. }) => None,
    };
    if let Some(r) = attempt() {
        return r;
    }
    match wait {
        Wait::No => Err(Fail::Full),
        Wait::Until(deadline) => raw
            .not_full()
            .wait(strategy, deadline, Some(POLL), attempt)
            .unwrap_or(Err(Fail::Timeout)),
    }
}

/// Claims the next message of at most `max` bytes, waiting as `wait` says.
pub(crate) fn claim_recv(
    raw: &RawMpmc,
    strategy: WaitStrategy,
    max: usize,
    wait: Wait,
) -> Result<Message<'_>, Fail> {
    let mut watch = Watch::new();
    let mut attempt = || {
        let r = match raw.try_claim_recv(max, &mut watch, &OsJudge) {
            Err(RawError::Empty) if raw.is_closed() => {
                // Closed: drain what was sent before the close, then report.
                match raw.try_claim_recv(max, &mut watch, &OsJudge) {
                    Err(RawError::Empty) => return Some(Err(Fail::Closed)),
                    other => other,
                }
            }
            other => other,
        };
        match r {
            Ok(c) => Some(Ok(c)),
            Err(RawError::Empty | RawError::Busy | RawError::Full) => None,
            Err(RawError::Closed) => Some(Err(Fail::Closed)),
            Err(RawError::TooLong { needed }) => Some(Err(Fail::TooLong(needed))),
            Err(RawError::Corrupt(c)) => Some(Err(Fail::Corrupt(c))),
            Err(RawError::UnknownIdentity(e)) => Some(Err(Fail::UnknownIdentity(e))),
            Err(RawError::TooLarge(_)) => None,
        }
    };
    if let Some(r) = attempt() {
        return r;
    }
    match wait {
        Wait::No => Err(Fail::Empty),
        Wait::Until(deadline) => raw
            .not_empty()
            .wait(strategy, deadline, Some(POLL), attempt)
            .unwrap_or(Err(Fail::Timeout)),
    }
}

impl Fail {
    pub(crate) fn try_send<T>(self, v: T) -> TrySendError<T> {
        match self {
            Fail::Closed => TrySendError::Closed(v),
            Fail::TooLarge(m) => TrySendError::TooLarge(v, m),
            Fail::Corrupt(c) => TrySendError::Corrupt(v, c),
            Fail::UnknownIdentity(e) => TrySendError::UnknownIdentity(v, e),
            _ => TrySendError::Full(v),
        }
    }

    pub(crate) fn send<T>(self, v: T) -> SendError<T> {
        match self {
            Fail::TooLarge(m) => SendError::TooLarge(v, m),
            Fail::Corrupt(c) => SendError::Corrupt(v, c),
            Fail::UnknownIdentity(e) => SendError::UnknownIdentity(v, e),
            _ => SendError::Closed(v),
        }
    }

    pub(crate) fn send_timeout<T>(self, v: T) -> SendTimeoutError<T> {
        match self {
            Fail::Closed => SendTimeoutError::Closed(v),
            Fail::TooLarge(m) => SendTimeoutError::TooLarge(v, m),
            Fail::Corrupt(c) => SendTimeoutError::Corrupt(v, c),
            Fail::UnknownIdentity(e) => SendTimeoutError::UnknownIdentity(v, e),
            _ => SendTimeoutError::Timeout(v),
        }
    }

    pub(crate) fn try_recv(self, capacity: usize) -> TryRecvError {
        match self {
            Fail::Closed => TryRecvError::Closed,
            Fail::TooLong(needed) => TryRecvError::BufferTooSmall { needed, capacity },
            Fail::Corrupt(c) => TryRecvError::Corrupt(c),
            Fail::UnknownIdentity(e) => TryRecvError::UnknownIdentity(e),
            _ => TryRecvError::Empty,
        }
    }

    pub(crate) fn recv(self, capacity: usize) -> RecvError {
        match self {
            Fail::TooLong(needed) => RecvError::BufferTooSmall { needed, capacity },
            Fail::Corrupt(c) => RecvError::Corrupt(c),
            Fail::UnknownIdentity(e) => RecvError::UnknownIdentity(e),
            _ => RecvError::Closed,
        }
    }

    pub(crate) fn recv_timeout(self, capacity: usize) -> RecvTimeoutError {
        match self {
            Fail::Closed => RecvTimeoutError::Closed,
            Fail::TooLong(needed) => RecvTimeoutError::BufferTooSmall { needed, capacity },
            Fail::Corrupt(c) => RecvTimeoutError::Corrupt(c),
            Fail::UnknownIdentity(e) => RecvTimeoutError::UnknownIdentity(e),
            _ => RecvTimeoutError::Timeout,
        }
    }
}

/// Writes `v` into a claimed slot.
pub(crate) fn write_value<T: Shareable + Copy>(mut c: Reservation<'_>, v: &T) {
    const { assert!(std::mem::align_of::<T>() <= raw::DATA_ALIGN) };
    // SAFETY: the claim holds `size_of::<T>()` bytes of slot data, 16-byte
    // aligned (so aligned for `T`), owned by this endpoint until commit.
    unsafe { std::ptr::write(c.as_mut_ptr() as *mut T, *v) };
    c.commit();
}

/// Reads a `T` out of a claimed message of exactly `size_of::<T>()` bytes.
pub(crate) fn read_value<T: Shareable + Copy>(c: Message<'_>) -> Result<T, &'static str> {
    const { assert!(std::mem::align_of::<T>() <= raw::DATA_ALIGN) };
    if c.len() != std::mem::size_of::<T>() {
        return Err("message length differs from the size of the type");
    }
    // SAFETY: the claim holds `size_of::<T>()` bytes, 16-byte aligned; `T` is
    // `Shareable`, so any bit pattern is a valid `T`.
    Ok(unsafe { std::ptr::read(c.as_ptr() as *const T) })
}

/// The sending end of an MPMC ring. Clone it freely (threads); other
/// processes make their own from [`Mpmc::open`] or [`Mpmc::from_fd`].
#[derive(Clone, Debug)]
pub struct Sender {
    shared: Arc<Shared>,
    strategy: WaitStrategy,
}

impl Sender {
    /// The same endpoint with another wait strategy for its blocking calls.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Sender {
        self.strategy = strategy;
        self
    }

    /// Sets the wait strategy of this endpoint's blocking calls.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// The largest message in bytes (the slot size).
    pub fn max_message_len(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// The wait strategy of this endpoint.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The ring this endpoint sends into.
    pub fn ring(&self) -> Mpmc {
        Mpmc {
            shared: Arc::clone(&self.shared),
        }
    }

    fn raw(&self) -> &RawMpmc {
        &self.shared.raw
    }

    /// Sends a copy of `msg` if a slot is free now.
    ///
    /// # Errors
    /// `Full` (also when the slot needed is held by a live peer past the spin
    /// budget), `Closed`, `TooLarge`, `Corrupt`; each hands `msg` back.
    #[inline]
    pub fn try_send<'m>(&self, msg: &'m [u8]) -> Result<(), TrySendError<&'m [u8]>> {
        match claim_send(self.raw(), self.strategy, msg.len(), Wait::No) {
            Ok(mut c) => {
                c.buf().copy_from_slice(msg);
                c.commit();
                Ok(())
            }
            Err(f) => Err(f.try_send(msg)),
        }
    }

    /// Sends a copy of `msg`, waiting for a free slot.
    ///
    /// # Errors
    /// `Closed`, `TooLarge`, `Corrupt`; each hands `msg` back.
    #[inline]
    pub fn send<'m>(&self, msg: &'m [u8]) -> Result<(), SendError<&'m [u8]>> {
        match claim_send(self.raw(), self.strategy, msg.len(), Wait::Until(None)) {
            Ok(mut c) => {
                c.buf().copy_from_slice(msg);
                c.commit();
                Ok(())
            }
            Err(f) => Err(f.send(msg)),
        }
    }

    /// Sends a copy of `msg`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `TooLarge`, `Corrupt`; each hands `msg` back.
    pub fn send_timeout<'m>(
        &self,
        msg: &'m [u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<&'m [u8]>> {
        let wait = Wait::Until(deadline_after(timeout));
        match claim_send(self.raw(), self.strategy, msg.len(), wait) {
            Ok(mut c) => {
                c.buf().copy_from_slice(msg);
                c.commit();
                Ok(())
            }
            Err(f) => Err(f.send_timeout(msg)),
        }
    }

    /// Claims a slot for a message of `len` bytes, to be written in place
    /// ([`Reservation::buf`]) and published with [`Reservation::commit`].
    /// Dropping the reservation uncommitted publishes an aborted message that
    /// receivers skip (counted in [`Mpmc::lost`]).
    ///
    /// # Errors
    /// As [`Sender::try_send`], handing `len` back.
    pub fn try_reserve(&self, len: usize) -> Result<Reservation<'_>, TrySendError<usize>> {
        claim_send(self.raw(), self.strategy, len, Wait::No).map_err(|f| f.try_send(len))
    }

    /// [`Sender::try_reserve`], waiting for a free slot.
    ///
    /// # Errors
    /// As [`Sender::send`], handing `len` back.
    pub fn reserve(&self, len: usize) -> Result<Reservation<'_>, SendError<usize>> {
        claim_send(self.raw(), self.strategy, len, Wait::Until(None)).map_err(|f| f.send(len))
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
        let wait = Wait::Until(deadline_after(timeout));
        claim_send(self.raw(), self.strategy, len, wait).map_err(|f| f.send_timeout(len))
    }

    /// Sends a plain-old-data value (its bytes, `size_of::<T>()` of them) if a
    /// slot is free now.
    ///
    /// # Errors
    /// As [`Sender::try_send`], handing `value` back.
    #[inline]
    pub fn try_send_value<T: Shareable + Copy>(&self, value: T) -> Result<(), TrySendError<T>> {
        let len = std::mem::size_of::<T>();
        match claim_send(self.raw(), self.strategy, len, Wait::No) {
            Ok(c) => {
                write_value(c, &value);
                Ok(())
            }
            Err(f) => Err(f.try_send(value)),
        }
    }

    /// Sends a plain-old-data value, waiting for a free slot.
    ///
    /// # Errors
    /// As [`Sender::send`], handing `value` back.
    #[inline]
    pub fn send_value<T: Shareable + Copy>(&self, value: T) -> Result<(), SendError<T>> {
        let len = std::mem::size_of::<T>();
        match claim_send(self.raw(), self.strategy, len, Wait::Until(None)) {
            Ok(c) => {
                write_value(c, &value);
                Ok(())
            }
            Err(f) => Err(f.send(value)),
        }
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
        let wait = Wait::Until(deadline_after(timeout));
        match claim_send(self.raw(), self.strategy, len, wait) {
            Ok(c) => {
                write_value(c, &value);
                Ok(())
            }
            Err(f) => Err(f.send_timeout(value)),
        }
    }

    /// Messages queued now (approximate). See [`Mpmc::len`].
    pub fn len(&self) -> usize {
        self.raw().len()
    }

    /// Whether the ring looked empty.
    pub fn is_empty(&self) -> bool {
        self.raw().is_empty()
    }

    /// Whether the ring looked full.
    pub fn is_full(&self) -> bool {
        self.raw().is_full()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.raw().capacity()
    }

    /// Closes the ring for every process. See [`Mpmc::close`].
    pub fn close(&self) {
        self.raw().close();
    }

    /// Whether the ring was closed.
    pub fn is_closed(&self) -> bool {
        self.raw().is_closed()
    }

    /// See [`Mpmc::lost`].
    pub fn lost(&self) -> u64 {
        self.raw().lost()
    }
}

/// The receiving end of an MPMC ring. Clone it freely (threads); other
/// processes make their own from [`Mpmc::open`] or [`Mpmc::from_fd`].
#[derive(Clone, Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    strategy: WaitStrategy,
}

impl Receiver {
    /// The same endpoint with another wait strategy for its blocking calls.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Receiver {
        self.strategy = strategy;
        self
    }

    /// Sets the wait strategy of this endpoint's blocking calls.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// The largest message in bytes (the slot size).
    pub fn max_message_len(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// The wait strategy of this endpoint.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The ring this endpoint receives from.
    pub fn ring(&self) -> Mpmc {
        Mpmc {
            shared: Arc::clone(&self.shared),
        }
    }

    fn raw(&self) -> &RawMpmc {
        &self.shared.raw
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
        claim_recv(self.raw(), self.strategy, usize::MAX, Wait::No)
            .map_err(|f| f.try_recv(usize::MAX))
    }

    /// Takes the next message, waiting for one.
    ///
    /// # Errors
    /// `Closed` (closed and drained), `Corrupt`.
    #[inline]
    pub fn recv(&self) -> Result<Message<'_>, RecvError> {
        claim_recv(self.raw(), self.strategy, usize::MAX, Wait::Until(None))
            .map_err(|f| f.recv(usize::MAX))
    }

    /// Takes the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `Corrupt`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message<'_>, RecvTimeoutError> {
        let wait = Wait::Until(deadline_after(timeout));
        claim_recv(self.raw(), self.strategy, usize::MAX, wait)
            .map_err(|f| f.recv_timeout(usize::MAX))
    }

    /// Copies the next message into `buf` if one is ready; returns its length.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`], and `BufferTooSmall` (the message stays
    /// queued).
    #[inline]
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        let c = claim_recv(self.raw(), self.strategy, buf.len(), Wait::No)
            .map_err(|f| f.try_recv(buf.len()))?;
        buf[..c.len()].copy_from_slice(c.bytes());
        Ok(c.len())
    }

    /// Copies the next message into `buf`, waiting for one.
    ///
    /// # Errors
    /// As [`Receiver::recv`], and `BufferTooSmall` (the message stays queued).
    #[inline]
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let c = claim_recv(self.raw(), self.strategy, buf.len(), Wait::Until(None))
            .map_err(|f| f.recv(buf.len()))?;
        buf[..c.len()].copy_from_slice(c.bytes());
        Ok(c.len())
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
        let wait = Wait::Until(deadline_after(timeout));
        let c = claim_recv(self.raw(), self.strategy, buf.len(), wait)
            .map_err(|f| f.recv_timeout(buf.len()))?;
        buf[..c.len()].copy_from_slice(c.bytes());
        Ok(c.len())
    }

    /// Takes the next message as a plain-old-data value, if one is ready.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`], and `Decode` if the message is not
    /// `size_of::<T>()` bytes long (it is consumed).
    #[inline]
    pub fn try_recv_value<T: Shareable + Copy>(&self) -> Result<T, TryRecvError> {
        let c = claim_recv(self.raw(), self.strategy, usize::MAX, Wait::No)
            .map_err(|f| f.try_recv(usize::MAX))?;
        read_value(c).map_err(TryRecvError::Decode)
    }

    /// Takes the next message as a plain-old-data value, waiting for one.
    ///
    /// # Errors
    /// As [`Receiver::recv`], and `Decode`.
    #[inline]
    pub fn recv_value<T: Shareable + Copy>(&self) -> Result<T, RecvError> {
        let c = claim_recv(self.raw(), self.strategy, usize::MAX, Wait::Until(None))
            .map_err(|f| f.recv(usize::MAX))?;
        read_value(c).map_err(RecvError::Decode)
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
        let wait = Wait::Until(deadline_after(timeout));
        let c = claim_recv(self.raw(), self.strategy, usize::MAX, wait)
            .map_err(|f| f.recv_timeout(usize::MAX))?;
        read_value(c).map_err(RecvTimeoutError::Decode)
    }

    /// Messages queued now (approximate). See [`Mpmc::len`].
    pub fn len(&self) -> usize {
        self.raw().len()
    }

    /// Whether the ring looked empty.
    pub fn is_empty(&self) -> bool {
        self.raw().is_empty()
    }

    /// Whether the ring looked full.
    pub fn is_full(&self) -> bool {
        self.raw().is_full()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.raw().capacity()
    }

    /// Closes the ring for every process. See [`Mpmc::close`].
    pub fn close(&self) {
        self.raw().close();
    }

    /// Whether the ring was closed.
    pub fn is_closed(&self) -> bool {
        self.raw().is_closed()
    }

    /// See [`Mpmc::lost`].
    pub fn lost(&self) -> u64 {
        self.raw().lost()
    }
}

/// An anonymous ring's two ends, in the style of `std::sync::mpsc::channel`.
/// Clone either end for more producers or consumers; pass
/// [`Sender::ring`]`().fd()` to a child to share it with another process.
///
/// # Errors
/// As [`Mpmc::anonymous`].
pub fn channel(capacity: usize, slot_size: usize) -> Result<(Sender, Receiver), AttachError> {
    let ring = Mpmc::anonymous(capacity, slot_size)?;
    Ok((ring.sender(), ring.receiver()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
