//! Single-producer single-consumer byte ring between processes.
//!
//! An [`SpscRing`] is a ring placed in an `ipc-core` [`Segment`]: named, so
//! unrelated processes connect by name, or anonymous (a `memfd`) for a parent
//! and the children it starts. Each process attaches the end it needs: one
//! [`Producer`] and one [`Consumer`] per ring, enforced across processes (the
//! owner's pid and start time are recorded in the ring; a second live
//! attacher gets [`AttachError::AlreadyAttached`], a dead owner's end is taken
//! over).
//!
//! Messages are byte strings of any length up to
//! [`SpscRing::max_message_len`], written and read in place:
//! [`Producer::reserve`] hands out a [`Grant`] (`&mut [u8]` inside the ring)
//! that [`Grant::commit`] publishes, and [`Consumer::recv`] a [`RecvGuard`]
//! over the bytes in the ring that gives the room back when dropped. Copying
//! forms ([`Producer::send`], [`Consumer::recv_into`]) and batches
//! ([`Producer::try_send_batch`], [`Consumer::recv_batch`]) sit on top. The
//! algorithm and framing are described in [`crate::spsc_raw`].
//!
//! # Waiting
//!
//! Every blocking call has a `try_` form that never blocks and a `_timeout`
//! form. How an end waits is its [`WaitStrategy`] (default
//! [`WaitStrategy::ADAPTIVE`]: spin, yield, then sleep on a futex). Nothing
//! makes a system call while the ring is neither full nor empty; a side only
//! calls `FUTEX_WAKE` when the other has announced it is parked, and skips
//! even the check (a fence) while the other declares
//! [`WaitStrategy::BusySpin`].
//!
//! # Closing and dying
//!
//! Dropping an end (or [`Producer::close`], [`Consumer::close`]) marks it
//! closed: a blocked peer wakes up; a consumer still drains every message
//! committed before the close, then gets [`RecvError::Closed`]; a producer
//! gets [`SendError::Closed`] at once. A peer that dies without closing is
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
//! use ipc_queue::spsc::SpscRing;
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

use crate::error::{
    AttachError, Corrupt, MessageTooLarge, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
use crate::spsc_raw::{
    self, Peeked, RawConsumer, RawProducer, RawRing, Reservation, ReserveError, Side,
};
use ipc_core::wait::{Backoff, EventCount, Phase, WaitStrategy};
use ipc_core::{Kind, Liveness, ProcessId, Segment};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The segment kind of an SPSC ring. The layout hash covers the control
/// block; the capacity is read from the ring and checked when attaching.
pub const KIND: Kind = Kind::new(
    "ipc-queue/spsc",
    2,
    ipc_core::header::layout_hash(&[
        std::mem::size_of::<spsc_raw::SpscControl>() as u64,
        std::mem::align_of::<spsc_raw::SpscControl>() as u64,
        spsc_raw::HEADER_LEN as u64,
        spsc_raw::RECORD_ALIGN as u64,
        spsc_raw::SLACK as u64,
    ]),
);

/// How often a parked end checks whether its peer is still alive.
pub const LIVENESS_POLL: Duration = Duration::from_millis(100);

/// The default data-area size of a new ring: 64 KiB.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Creates or opens an [`SpscRing`]. Obtained from [`SpscRing::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct SpscBuilder {
    capacity: usize,
    name: Option<String>,
    mode: u32,
    prefault: bool,
    fixed_len: usize,
    open_timeout: Option<Duration>,
}

/// An SPSC ring in a shared segment. Cheap to clone (the mapping is shared);
/// attach the ends with [`SpscRing::producer`] and [`SpscRing::consumer`].
#[derive(Clone, Debug)]
pub struct SpscRing {
    seg: Arc<Segment>,
    raw: RawRing,
}

/// A requested data-area size rounded up to the power of two a ring uses
/// (at least [`spsc_raw::MIN_CAPACITY`]), or the error for one above
/// [`spsc_raw::MAX_CAPACITY`].
pub(crate) fn round_capacity(bytes: usize) -> Result<usize, AttachError> {
    bytes
        .max(spsc_raw::MIN_CAPACITY)
        .checked_next_power_of_two()
        .filter(|&c| c <= spsc_raw::MAX_CAPACITY)
        .ok_or(AttachError::InvalidConfig(
            "the capacity is larger than 2 GiB",
        ))
}

impl SpscBuilder {
    /// The data area's size in bytes, rounded up to a power of two (at least
    /// 32). Records take 8 bytes of header plus the message rounded up to 8,
    /// and the ring keeps one 8-byte slot free after its last record, so a
    /// ring of `c` bytes holds `c / 16 - 1` messages of 8 bytes.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Makes the ring large enough for messages of `len` bytes (at least).
    pub fn max_message_len(mut self, len: usize) -> Self {
        let need = spsc_raw::capacity_for_message(len).unwrap_or(usize::MAX);
        self.capacity = self.capacity.max(need);
        self
    }

    /// Names the ring's segment, so unrelated processes can open it; without
    /// a name it is an anonymous `memfd`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Permission bits of a named segment (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Touches every page when mapping, so the first messages take no page
    /// fault.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.prefault = yes;
        self
    }

    /// How long `open` waits for the creator to finish initializing.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = Some(timeout);
        self
    }

    /// Marks the ring as typed: every message has exactly `len` bytes
    /// (used by [`crate::spsc_pod`]; typed ends check it when attaching).
    pub fn fixed_message_len(mut self, len: usize) -> Self {
        self.fixed_len = len;
        self
    }

    fn rounded_capacity(&self) -> Result<usize, AttachError> {
        let c = round_capacity(self.capacity)?;
        if self.fixed_len != 0
            && spsc_raw::capacity_for_message(self.fixed_len).is_none_or(|need| need > c)
        {
            return Err(AttachError::InvalidConfig(
                "the capacity cannot hold one message",
            ));
        }
        Ok(c)
    }

    fn segment_builder(&self, size: usize) -> ipc_core::SegmentBuilder {
        let mut b = Segment::builder(KIND)
            .size(size)
            .mode(self.mode)
            .prefault(self.prefault);
        if let Some(n) = &self.name {
            b = b.name(n.clone());
        }
        if let Some(t) = self.open_timeout {
            b = b.open_timeout(t);
        }
        b
    }

    /// Creates the ring (a named segment must not exist yet, unless its
    /// creator died).
    ///
    /// # Errors
    /// [`AttachError::InvalidConfig`] for a capacity out of range,
    /// [`AttachError::Segment`] if the segment cannot be created (e.g.
    /// [`SegmentError::InsufficientMemory`](ipc_core::SegmentError::InsufficientMemory):
    /// more than the machine or the memory cgroup can still give).
    pub fn create(self) -> Result<SpscRing, AttachError> {
        let cap = self.rounded_capacity()?;
        let size = spsc_raw::memory_size(cap)
            .ok_or(AttachError::InvalidConfig("capacity out of range"))?;
        let fixed = self.fixed_len;
        let mut init_err = None;
        let seg = self.segment_builder(size).create_with(|seg| {
            // SAFETY: the payload is 128-aligned, `payload_len` bytes long
            // and not yet visible to any other process.
            let r = unsafe { spsc_raw::init_in(seg.payload_ptr(), seg.payload_len(), cap, fixed) };
            if let Err(e) = r {
                init_err = Some(e);
            }
        })?;
        if let Some(e) = init_err {
            return Err(e.into());
        }
        SpscRing::from_segment(seg)
    }

    /// Opens an existing named ring.
    ///
    /// # Errors
    /// [`AttachError::Segment`] (not found, wrong kind, ...) or
    /// [`AttachError::Corrupt`] if its control block fails its checks.
    pub fn open(self) -> Result<SpscRing, AttachError> {
        let seg = self
            .segment_builder(0)
            .size(std::mem::size_of::<spsc_raw::SpscControl>())
            .open()?;
        SpscRing::from_segment(seg)
    }

    /// Opens the named ring, or creates it (with this builder's capacity) if
    /// it does not exist. Safe when several processes race.
    pub fn open_or_create(self) -> Result<SpscRing, AttachError> {
        let cap = self.rounded_capacity()?;
        let size = spsc_raw::memory_size(cap)
            .ok_or(AttachError::InvalidConfig("capacity out of range"))?;
        let fixed = self.fixed_len;
        let seg = self.segment_builder(size).open_or_create_with(|seg| {
            // SAFETY: as in `create`: fresh, exclusive, aligned payload.
            let _ = unsafe { spsc_raw::init_in(seg.payload_ptr(), seg.payload_len(), cap, fixed) };
        })?;
        SpscRing::from_segment(seg)
    }
}

impl SpscRing {
    /// A builder for a ring of [`DEFAULT_CAPACITY`] bytes.
    pub fn builder() -> SpscBuilder {
        SpscBuilder {
            capacity: DEFAULT_CAPACITY,
            name: None,
            mode: 0o600,
            prefault: false,
            fixed_len: 0,
            open_timeout: None,
        }
    }

    /// Opens the named ring (shorthand for `builder().name(name).open()`).
    pub fn open(name: &str) -> Result<SpscRing, AttachError> {
        SpscRing::builder().name(name).open()
    }

    /// Maps a ring from a segment's file descriptor (inherited from a parent
    /// or received over a socket).
    ///
    /// # Errors
    /// [`AttachError::Segment`] with
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed) for a
    /// descriptor not sealed against resizing (its sender could shrink it
    /// under this mapping), or a segment holding something else;
    /// [`AttachError::Corrupt`] for a control block that fails its checks.
    pub fn from_fd(fd: OwnedFd) -> Result<SpscRing, AttachError> {
        SpscRing::from_segment(Segment::from_fd(fd, KIND)?)
    }

    /// Uses a segment that already holds a ring (its kind is checked).
    pub fn from_segment(seg: Segment) -> Result<SpscRing, AttachError> {
        if seg.kind() != KIND {
            return Err(AttachError::InvalidConfig(
                "the segment does not hold an SPSC ring",
            ));
        }
        // SAFETY: the payload is 128-aligned and `payload_len` bytes long,
        // and `seg` (kept in the Arc beside the handle) keeps it mapped.
        let raw = unsafe { spsc_raw::attach(seg.payload_ptr(), seg.payload_len()) }?;
        Ok(SpscRing {
            seg: Arc::new(seg),
            raw,
        })
    }

    /// A ring placed `offset` bytes into a segment that holds several
    /// (checked like [`SpscRing::from_segment`], without the kind check).
    pub(crate) fn from_shared(seg: Arc<Segment>, offset: usize) -> Result<SpscRing, AttachError> {
        let range = seg
            .check_range(
                offset as u64,
                std::mem::size_of::<spsc_raw::SpscControl>() as u64,
            )
            .map_err(|_| Corrupt::new("ring offset outside the segment", offset as u64))?;
        if !offset.is_multiple_of(128) {
            return Err(Corrupt::new("ring offset is not 128-aligned", offset as u64).into());
        }
        // SAFETY: `range.start` lies inside the payload (checked) and is
        // 128-aligned from a 128-aligned payload start; `attach` checks the
        // capacity against the `payload_len - offset` bytes that remain, and
        // `seg` is kept alive beside the handle.
        let raw = unsafe {
            spsc_raw::attach(
                seg.payload_ptr().add(range.start),
                seg.payload_len() - range.start,
            )
        }?;
        Ok(SpscRing { seg, raw })
    }

    /// The segment holding the ring.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The segment's file descriptor, to pass to a child
    /// ([`ipc_core::process::Builder::inherit_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.seg.fd()
    }

    /// The data area's size in bytes.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// The largest message the ring carries: `capacity - 16` (a record
    /// header, and the free slot the ring keeps after its last record).
    pub fn max_message_len(&self) -> usize {
        self.raw.max_message_len()
    }

    /// Bytes held by unread records. A snapshot.
    pub fn used_bytes(&self) -> usize {
        self.raw.used_bytes()
    }

    /// The pid of the process holding `side`'s end, if any (it may be dead).
    pub fn owner_pid(&self, side: Side) -> Option<u32> {
        let o = self.raw.owner(side);
        (o != 0).then(|| ProcessId::from_u64(o).pid)
    }

    /// How many times each end was attached so far: `(producer, consumer)`.
    pub fn attach_counts(&self) -> (u32, u32) {
        (
            self.raw.attach_count(Side::Producer),
            self.raw.attach_count(Side::Consumer),
        )
    }

    /// The raw ring, for tests and tools.
    pub fn raw(&self) -> &RawRing {
        &self.raw
    }

    /// The fixed message length of a typed ring (0 for a byte ring).
    pub fn fixed_message_len(&self) -> u64 {
        self.raw.fixed_len()
    }

    fn claim(&self, side: Side) -> Result<Endpoint, AttachError> {
        let me = ProcessId::current()?.to_u64();
        self.raw
            .claim(side, me, |o| {
                ProcessId::liveness_packed(o) == Liveness::Dead
            })
            .map_err(|holder| AttachError::AlreadyAttached {
                role: side.name(),
                pid: ProcessId::from_u64(holder).pid,
            })?;
        Ok(Endpoint {
            seg: Arc::clone(&self.seg),
            ring: self.raw,
            side,
            me,
        })
    }

    /// Attaches the producing end.
    ///
    /// # Errors
    /// [`AttachError::AlreadyAttached`] if a live process (this one
    /// included) holds it; [`AttachError::Corrupt`] if the ring's indices
    /// fail their checks; [`AttachError::UnknownIdentity`] if this process
    /// cannot learn the identity an owner records. A dead holder's end is
    /// taken over.
    pub fn producer(&self) -> Result<Producer, AttachError> {
        let ep = self.claim(Side::Producer)?;
        let raw = self.raw.producer()?;
        Ok(Producer {
            raw,
            ep,
            strategy: WaitStrategy::ADAPTIVE,
        })
    }

    /// Attaches the consuming end. Errors as [`SpscRing::producer`].
    pub fn consumer(&self) -> Result<Consumer, AttachError> {
        let ep = self.claim(Side::Consumer)?;
        let raw = self.raw.consumer()?;
        Ok(Consumer {
            raw,
            ep,
            strategy: WaitStrategy::ADAPTIVE,
        })
    }
}

/// Creates an anonymous ring of `capacity` bytes and attaches both ends in
/// this process (for threads, or for a forked child that takes one end).
pub fn channel(capacity: usize) -> Result<(Producer, Consumer), AttachError> {
    let ring = SpscRing::builder().capacity(capacity).create()?;
    Ok((ring.producer()?, ring.consumer()?))
}

/// What an end holds besides its raw state: the mapping and its identity.
#[derive(Debug)]
struct Endpoint {
    seg: Arc<Segment>,
    ring: RawRing,
    side: Side,
    me: u64,
}

impl Endpoint {
    fn peer(&self) -> Side {
        match self.side {
            Side::Producer => Side::Consumer,
            Side::Consumer => Side::Producer,
        }
    }

    /// The event count the peer parks on.
    fn peer_event(&self) -> &EventCount {
        match self.side {
            Side::Producer => self.ring.not_empty(),
            Side::Consumer => self.ring.not_full(),
        }
    }

    fn own_event(&self) -> &EventCount {
        match self.side {
            Side::Producer => self.ring.not_full(),
            Side::Consumer => self.ring.not_empty(),
        }
    }

    /// Wakes the peer if it may be parked. One fence and one load, skipped
    /// while the peer declares that it busy-spins.
    #[inline]
    fn wake_peer(&self) {
        if self.ring.spins_flag(self.peer()).load(Ordering::Relaxed) == 0 {
            self.peer_event().notify_all();
        }
    }

    #[inline]
    fn peer_closed(&self) -> bool {
        self.ring.closed_flag(self.peer()).load(Ordering::Acquire) != 0
    }

    /// The slow check: closed, or recorded owner dead.
    fn peer_gone(&self) -> bool {
        if self.peer_closed() {
            return true;
        }
        let owner = self.ring.owner(self.peer());
        owner != 0 && ProcessId::liveness_packed(owner) == Liveness::Dead
    }

    fn set_strategy(&self, s: WaitStrategy) {
        let spins = u32::from(s == WaitStrategy::BusySpin);
        self.ring
            .spins_flag(self.side)
            .store(spins, Ordering::SeqCst);
    }

    /// Whether the calling process attached this end (not a forked copy).
    /// A process that cannot learn its identity is not the one that
    /// attached: that one knew its identity, and keeps knowing it.
    fn still_mine(&self) -> bool {
        ProcessId::current().is_ok_and(|p| p.to_u64() == self.me)
    }

    /// Waits until `ready` gives a value, the peer is gone, or `deadline`.
    fn wait<R>(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Option<R>,
    ) -> Waited<R> {
        // A zero timeout (`poll(Some(ZERO))`): look once, do not spin.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return match ready() {
                Some(r) => Waited::Ready(r),
                // Closed after its last publish: look again before saying so.
                None if self.peer_closed() => match ready() {
                    Some(r) => Waited::Ready(r),
                    None => Waited::PeerGone,
                },
                None => Waited::TimedOut,
            };
        }
        let mut next_liveness = None;
        let gone = |this: &Endpoint, next: &mut Option<Instant>| -> bool {
            if this.peer_closed() {
                return true;
            }
            let now = Instant::now();
            let due = *next.get_or_insert(now + LIVENESS_POLL);
            if now >= due {
                *next = Some(now + LIVENESS_POLL);
                return this.peer_gone();
            }
            false
        };
        if strategy != WaitStrategy::Blocking {
            let mut backoff = Backoff::new(strategy);
            let mut n: u32 = 0;
            loop {
                if let Some(r) = ready() {
                    return Waited::Ready(r);
                }
                n = n.wrapping_add(1);
                if n.is_multiple_of(256) {
                    if gone(self, &mut next_liveness) {
                        return match ready() {
                            Some(r) => Waited::Ready(r),
                            None => Waited::PeerGone,
                        };
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Waited::TimedOut;
                    }
                }
                if backoff.snooze() == Phase::Park {
                    break;
                }
            }
        }
        let mut peer_gone = false;
        let r = self.own_event().wait(
            WaitStrategy::Blocking,
            deadline,
            Some(LIVENESS_POLL),
            || {
                if let Some(r) = ready() {
                    return Some(Some(r));
                }
                if gone(self, &mut next_liveness) {
                    if let Some(r) = ready() {
                        return Some(Some(r));
                    }
                    peer_gone = true;
                    return Some(None);
                }
                None
            },
        );
        match r {
            Some(Some(r)) => Waited::Ready(r),
            _ if peer_gone => Waited::PeerGone,
            _ => Waited::TimedOut,
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // An end copied into a forked child belongs to the process that
        // attached it; only that process closes it.
        if self.still_mine() {
            self.ring.release_side(self.side, self.me);
            self.peer_event().notify_all();
        }
    }
}

enum Waited<R> {
    Ready(R),
    PeerGone,
    TimedOut,
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The writing end of an [`SpscRing`]. One per ring, across every process.
#[derive(Debug)]
pub struct Producer {
    raw: RawProducer,
    ep: Endpoint,
    strategy: WaitStrategy,
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

impl Producer {
    /// Sets how this end waits for room (see [`WaitStrategy`]); declares
    /// [`WaitStrategy::BusySpin`] in the ring so the consumer skips waking
    /// it.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
        self.ep.set_strategy(strategy);
    }

    /// [`Producer::set_wait_strategy`], by value.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.set_wait_strategy(strategy);
        self
    }

    /// This end's wait strategy.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The data area's size in bytes.
    pub fn capacity(&self) -> usize {
        self.raw.ring().capacity()
    }

    /// The largest message this ring carries.
    pub fn max_message_len(&self) -> usize {
        self.raw.ring().max_message_len()
    }

    /// Free bytes in the ring now, less the 8-byte slot the ring keeps clear
    /// after its last record (records need 8 bytes of header and are rounded
    /// up to 8). It may grow at any moment.
    pub fn free_bytes(&mut self) -> Result<usize, Corrupt> {
        self.raw.free_bytes()
    }

    /// Whether the consumer closed its end (a dead consumer is only noticed
    /// by blocking calls, or by [`Producer::is_peer_alive`]).
    pub fn is_closed(&self) -> bool {
        self.ep.peer_closed()
    }

    /// Whether a consumer is attached and its process alive (reads `/proc`:
    /// not for hot paths).
    pub fn is_peer_alive(&self) -> bool {
        !self.ep.peer_gone() && self.ep.ring.owner(Side::Consumer) != 0
    }

    /// The segment holding the ring.
    pub fn segment(&self) -> &Segment {
        &self.ep.seg
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
        if !self.ep.peer_closed() {
            if let Some(r) = self.raw.try_reserve_fast(len) {
                return Ok(r);
            }
        }
        self.try_reserve_raw_slow(len)
    }

    #[cold]
    #[inline(never)]
    fn try_reserve_raw_slow(&mut self, len: usize) -> Result<Reservation, TrySendError<()>> {
        if self.ep.peer_closed() {
            return Err(TrySendError::Closed(()));
        }
        match self.raw.try_reserve(len) {
            Ok(r) => {
                if self.raw.take_pad_published() {
                    self.ep.wake_peer();
                }
                Ok(r)
            }
            Err(ReserveError::Full) => {
                if self.raw.take_pad_published() {
                    self.ep.wake_peer();
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
            Err(TrySendError::Closed(())) => return Err(SendTimeoutError::Closed(())),
            Err(TrySendError::TooLarge((), m)) => return Err(SendTimeoutError::TooLarge((), m)),
            Err(TrySendError::Corrupt((), c)) => return Err(SendTimeoutError::Corrupt((), c)),
            Err(TrySendError::UnknownIdentity((), e)) => {
                return Err(SendTimeoutError::UnknownIdentity((), e))
            }
        }
        let ring = self.ep.ring;
        let raw = &mut self.raw;
        let ready = || match raw.try_reserve(len) {
            Ok(r) => Some(Ok(r)),
            Err(ReserveError::Full) => {
                if raw.take_pad_published()
                    && ring.spins_flag(Side::Consumer).load(Ordering::Relaxed) == 0
                {
                    ring.not_empty().notify_all();
                }
                None
            }
            Err(ReserveError::Corrupt(c)) => Some(Err(c)),
            Err(ReserveError::TooLarge) => Some(Err(Corrupt::new("message length", len as u64))),
        };
        let waited = self.ep.wait(self.strategy, deadline, ready);
        if self.raw.take_pad_published() {
            self.ep.wake_peer();
        }
        match waited {
            Waited::Ready(Ok(r)) => {
                if self.ep.peer_closed() {
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
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_>, SendError<()>> {
        let r = match self.try_reserve_raw(len) {
            Ok(r) => r,
            Err(TrySendError::Full(())) => self.reserve_raw(len, None).map_err(timeout_to_send)?,
            Err(e) => return Err(try_to_send(e)),
        };
        Ok(Grant { producer: self, r })
    }

    /// Reserves room for a `len`-byte message, waiting at most `timeout`.
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
        self.ep.wake_peer();
    }

    #[inline]
    fn write_raw(&mut self, r: Reservation, msg: &[u8]) {
        // SAFETY: `r` was just reserved by this producer and not committed.
        unsafe { self.raw.payload(r) }.copy_from_slice(msg);
        self.commit_raw(r, msg.len());
    }

    /// Copies `msg` into the ring without waiting. Errors as
    /// [`Producer::try_reserve`].
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError<()>> {
        let r = self.try_reserve_raw(msg.len())?;
        self.write_raw(r, msg);
        Ok(())
    }

    /// Copies `msg` into the ring, waiting for room. Errors as
    /// [`Producer::reserve`].
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        let r = match self.try_reserve_raw(msg.len()) {
            Ok(r) => r,
            Err(TrySendError::Full(())) => {
                self.reserve_raw(msg.len(), None).map_err(timeout_to_send)?
            }
            Err(e) => return Err(try_to_send(e)),
        };
        self.write_raw(r, msg);
        Ok(())
    }

    /// Copies `msg` into the ring, waiting at most `timeout` for room.
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
        if self.ep.peer_closed() {
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
                        self.ep.wake_peer();
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
        self.ep.wake_peer();
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
                        .map_err(|e| timeout_to_send(e).map(|()| sent))?;
                    self.write_raw(r, m);
                    sent += 1;
                }
                Err(e) => return Err(try_to_send(e).map(|()| sent)),
            }
        }
        Ok(())
    }

    /// Closes this end: the consumer drains what was committed, then learns
    /// the ring is closed. (Dropping the producer does the same.)
    pub fn close(self) {}
}

fn timeout_to_send<T>(e: SendTimeoutError<T>) -> SendError<T> {
    match e {
        SendTimeoutError::Closed(v) | SendTimeoutError::Timeout(v) => SendError::Closed(v),
        SendTimeoutError::TooLarge(v, m) => SendError::TooLarge(v, m),
        SendTimeoutError::Corrupt(v, c) => SendError::Corrupt(v, c),
        SendTimeoutError::UnknownIdentity(v, e) => SendError::UnknownIdentity(v, e),
    }
}

fn try_to_send<T>(e: TrySendError<T>) -> SendError<T> {
    match e {
        TrySendError::Closed(v) | TrySendError::Full(v) => SendError::Closed(v),
        TrySendError::TooLarge(v, m) => SendError::TooLarge(v, m),
        TrySendError::Corrupt(v, c) => SendError::Corrupt(v, c),
        TrySendError::UnknownIdentity(v, e) => SendError::UnknownIdentity(v, e),
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

/// The reading end of an [`SpscRing`]. One per ring, across every process.
#[derive(Debug)]
pub struct Consumer {
    raw: RawConsumer,
    ep: Endpoint,
    strategy: WaitStrategy,
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
        self.consumer.ep.wake_peer();
    }
}

impl Consumer {
    /// Sets how this end waits for messages; declares
    /// [`WaitStrategy::BusySpin`] in the ring so the producer skips waking
    /// it.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
        self.ep.set_strategy(strategy);
    }

    /// [`Consumer::set_wait_strategy`], by value.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.set_wait_strategy(strategy);
        self
    }

    /// This end's wait strategy.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The data area's size in bytes.
    pub fn capacity(&self) -> usize {
        self.raw.ring().capacity()
    }

    /// The largest message this ring carries.
    pub fn max_message_len(&self) -> usize {
        self.raw.ring().max_message_len()
    }

    /// Whether the producer closed its end (it may still have left messages
    /// to drain).
    pub fn is_closed(&self) -> bool {
        self.ep.peer_closed()
    }

    /// Whether a producer is attached and its process alive (reads `/proc`:
    /// not for hot paths).
    pub fn is_peer_alive(&self) -> bool {
        !self.ep.peer_gone() && self.ep.ring.owner(Side::Producer) != 0
    }

    /// Whether nothing is waiting to be read now.
    pub fn is_empty(&mut self) -> Result<bool, Corrupt> {
        Ok(!self.raw.has_data()?)
    }

    /// The segment holding the ring.
    pub fn segment(&self) -> &Segment {
        &self.ep.seg
    }

    #[inline]
    fn peek(&mut self) -> Result<Option<Peeked>, Corrupt> {
        let r = self.raw.try_peek();
        if self.raw.take_released_pad() {
            self.ep.wake_peer();
        }
        r
    }

    /// After an empty peek: closed and still empty means drained.
    fn try_peek_or_closed(&mut self) -> Result<Peeked, TryRecvError> {
        if let Some(p) = self.peek()? {
            return Ok(p);
        }
        if self.ep.peer_closed() {
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
            if raw.take_released_pad()
                && ring.spins_flag(Side::Producer).load(Ordering::Relaxed) == 0
            {
                ring.not_full().notify_all();
            }
            match r {
                Ok(Some(p)) => Some(Ok(p)),
                Ok(None) => None,
                Err(c) => Some(Err(c)),
            }
        };
        match self.ep.wait(self.strategy, deadline, ready) {
            Waited::Ready(Ok(p)) => Ok(p),
            Waited::Ready(Err(c)) => Err(RecvTimeoutError::Corrupt(c)),
            Waited::PeerGone => Err(RecvTimeoutError::Closed),
            Waited::TimedOut => Err(RecvTimeoutError::Timeout),
        }
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
    #[inline]
    pub fn recv(&mut self) -> Result<RecvGuard<'_>, RecvError> {
        let p = match self.peek() {
            Ok(Some(p)) => p,
            Ok(None) => self.wait_peek(None).map_err(timeout_to_recv)?,
            Err(c) => return Err(RecvError::Corrupt(c)),
        };
        Ok(RecvGuard { consumer: self, p })
    }

    /// The next message, read in place, waiting at most `timeout`.
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
            Err(e) => Err(timeout_to_recv(e)),
        }
    }

    #[inline]
    fn copy_out(&mut self, p: Peeked, buf: &mut [u8]) -> Result<usize, (usize, usize)> {
        if p.len() > buf.len() {
            return Err((p.len(), buf.len()));
        }
        // SAFETY: `p` is the current peeked message.
        spsc_raw::copy_short(buf, unsafe { self.raw.payload(p) });
        self.raw.advance(p);
        self.raw.publish();
        self.ep.wake_peer();
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
            Ok(None) => self.wait_peek(None).map_err(timeout_to_recv)?,
            Err(c) => return Err(RecvError::Corrupt(c)),
        };
        self.copy_out(p, buf)
            .map_err(|(needed, capacity)| RecvError::BufferTooSmall { needed, capacity })
    }

    /// Copies the next message into `buf`, waiting at most `timeout`.
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
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let first = match self.peek() {
            Ok(Some(p)) => p,
            Ok(None) => self.wait_peek(None).map_err(timeout_to_recv)?,
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
        self.ep.wake_peer();
        match err {
            Some(c) if n == 0 => Err(c),
            _ => Ok(n),
        }
    }

    /// Closes this end: the producer's sends fail with `Closed` from now on.
    /// (Dropping the consumer does the same.)
    pub fn close(self) {}
}

fn timeout_to_recv(e: RecvTimeoutError) -> RecvError {
    match e {
        RecvTimeoutError::Timeout | RecvTimeoutError::Closed => RecvError::Closed,
        RecvTimeoutError::BufferTooSmall { needed, capacity } => {
            RecvError::BufferTooSmall { needed, capacity }
        }
        RecvTimeoutError::Decode(w) => RecvError::Decode(w),
        RecvTimeoutError::Corrupt(c) => RecvError::Corrupt(c),
        RecvTimeoutError::UnknownIdentity(e) => RecvError::UnknownIdentity(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
