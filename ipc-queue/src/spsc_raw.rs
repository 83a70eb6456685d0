//! The single-producer single-consumer byte ring, over caller-provided memory.
//!
//! This is the algorithm alone, with no operating system in it: it works on
//! any memory the caller hands it (a shared segment, or a heap buffer in a
//! test), so it can be model-checked and stress-tested on threads. The public
//! [`spsc`](crate::spsc) types place it in an `ipc-core` segment and add
//! waiting, closing and endpoint ownership.
//!
//! # Layout
//!
//! [`memory_size`] bytes: a [`SpscControl`] block of five 128-byte lines, then
//! the data area of `capacity` bytes (a power of two, at least 16).
//!
//! | line | contents | written by |
//! |---|---|---|
//! | 0 | capacity, fixed message length, endpoint owners, closed and busy-spin flags | attach, close (rarely) |
//! | 1 | `tail`: bytes ever committed | the producer, once per publish |
//! | 2 | `head`: bytes ever released | the consumer, once per release |
//! | 3 | `not_empty` event count (the consumer parks here) | the consumer when it parks |
//! | 4 | `not_full` event count (the producer parks here) | the producer when it parks |
//!
//! Lines are 128 bytes, not 64: x86-64's adjacent-line prefetcher pulls cache
//! lines in pairs, so two indices 64 bytes apart would still bounce together.
//!
//! `head` and `tail` are positions in bytes that only grow (a `u64` does not
//! wrap in the lifetime of a machine); the offset in the data area is the
//! position masked by `capacity - 1`. The producer keeps its own `tail` and a
//! cached copy of `head` in process-local memory and reloads `head` only when
//! the cached value says the ring is full; the consumer does the same with
//! `tail`. So in the steady state each side writes one line of its own and
//! reads the other's only when it has to.
//!
//! # Framing
//!
//! Each message is a record: an 8-byte header (`len: u32`, `kind: u32`), the
//! payload, and padding up to a multiple of 8. Payloads are therefore 8-byte
//! aligned. A record is always contiguous in the data area: when it does not
//! fit before the end, the producer writes a *pad record* covering the rest
//! of the area, publishes it, and places the message at offset 0 (the
//! consumer skips pad records). The largest message is `capacity - 8` bytes
//! ([`RawRing::max_message_len`]); it fits once the ring has drained.
//!
//! # Trust
//!
//! Everything read from the shared memory is checked before use: `tail` and
//! `head` must be 8-aligned and at most `capacity` apart; a record header must
//! have a known kind, a length that fits in the data area without crossing its
//! end and within the committed bytes; a pad must cover exactly the rest of
//! the area. A failed check is a [`Corrupt`] error. The header is read once
//! (a volatile copy) and the copy is what gets checked and used, so a peer
//! rewriting it concurrently cannot slip a value past the checks.
//!
//! The per-message paths are split in two: an inlined fast path that covers
//! the common case (a message record that fits the cached span, room that
//! the cached `head` already shows) with a few comparisons, and an
//! out-of-line slow path for everything else (pads, reloads that find the
//! ring full, records that fail a check), which redoes every check and names
//! the failure. The fast path accepts nothing the slow path would refuse.
//!
//! Payload bytes are handed out as slices into the shared memory. Another
//! process may write them at any time (that is the nature of shared memory,
//! outside what the Rust abstract machine describes); the ring's protocol
//! guarantees that a well-behaved producer does not touch a record between
//! its commit and the consumer's release, and a misbehaving one can at worst
//! change the bytes read, never make a read leave the data area.

use crate::error::Corrupt;
use ipc_core::wait::EventCount;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Size of a record header in bytes.
pub const HEADER_LEN: usize = 8;
/// Records start, and payloads are aligned, at multiples of this.
pub const RECORD_ALIGN: usize = 8;
/// The smallest data area: one record holding an 8-byte message.
pub const MIN_CAPACITY: usize = 16;
/// The largest data area accepted (lengths are stored as `u32`).
pub const MAX_CAPACITY: usize = 1 << 31;

const KIND_MSG: u32 = 0x4d53_4731; // "1GSM"
const KIND_PAD: u32 = 0x5041_4431; // "1DAP"
const CONTROL_MAGIC: u64 = u64::from_le_bytes(*b"SPSCRNG1");

/// One 128-byte line.
#[repr(C, align(128))]
#[derive(Debug, Default)]
struct Line<T>(T);

/// Line 0: configuration and endpoints.
#[repr(C)]
#[derive(Debug, Default)]
struct Config {
    magic: AtomicU64,
    capacity: AtomicU64,
    /// Non-zero for a typed ring: every message has exactly this length.
    fixed_len: AtomicU64,
    producer_owner: AtomicU64,
    consumer_owner: AtomicU64,
    producer_closed: AtomicU32,
    consumer_closed: AtomicU32,
    producer_spins: AtomicU32,
    consumer_spins: AtomicU32,
    producer_attaches: AtomicU32,
    consumer_attaches: AtomicU32,
}

/// The control block at the start of a ring's memory. `#[repr(C)]`, made of
/// atomics only (valid when zeroed, never holds a pointer).
#[repr(C)]
#[derive(Debug, Default)]
pub struct SpscControl {
    config: Line<Config>,
    tail: Line<AtomicU64>,
    head: Line<AtomicU64>,
    not_empty: Line<EventCount>,
    not_full: Line<EventCount>,
}

ipc_core::assert_layout!(SpscControl, size = 640, align = 128);

/// Which end of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The writing end.
    Producer,
    /// The reading end.
    Consumer,
}

impl Side {
    /// `"producer"` or `"consumer"`.
    pub const fn name(self) -> &'static str {
        match self {
            Side::Producer => "producer",
            Side::Consumer => "consumer",
        }
    }
}

/// The bytes of memory a ring with a data area of `capacity` bytes needs, or
/// `None` if `capacity` is not a power of two in
/// [`MIN_CAPACITY`]`..=`[`MAX_CAPACITY`].
pub const fn memory_size(capacity: usize) -> Option<usize> {
    if capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || !capacity.is_power_of_two() {
        return None;
    }
    Some(std::mem::size_of::<SpscControl>() + capacity)
}

/// The data-area size (power of two) needed so that a message of `len`
/// bytes fits, or `None` if that is larger than [`MAX_CAPACITY`].
pub const fn capacity_for_message(len: usize) -> Option<usize> {
    let need = record_len(len);
    if need > MAX_CAPACITY {
        return None;
    }
    let c = need.next_power_of_two();
    Some(if c < MIN_CAPACITY { MIN_CAPACITY } else { c })
}

/// The length of the record holding a `len`-byte message.
#[inline]
pub const fn record_len(len: usize) -> usize {
    (HEADER_LEN + len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Initializes a ring in `len` bytes at `ptr`.
///
/// `fixed_len` is 0 for a byte ring, or the length of every message of a
/// typed ring (checked by typed endpoints when they attach).
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes, aligned to 128 bytes, and
/// not in use by any other ring end while this runs.
pub unsafe fn init_in(
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
    fixed_len: usize,
) -> Result<RawRing, Corrupt> {
    let size = memory_size(capacity).ok_or(Corrupt::new(
        "capacity is not a power of two in range",
        capacity as u64,
    ))?;
    if len < size {
        return Err(Corrupt::new("memory is smaller than the ring", len as u64));
    }
    if ptr.as_ptr() as usize % 128 != 0 {
        return Err(Corrupt::new(
            "memory is not 128-byte aligned",
            ptr.as_ptr() as u64,
        ));
    }
    // SAFETY: the caller gives exclusive, writable memory of at least `size`
    // bytes; `SpscControl` is valid when zeroed (atomics only), and writing
    // it whole is the initialization.
    unsafe {
        ptr.as_ptr().write_bytes(0, size);
        ptr.cast::<SpscControl>()
            .as_ptr()
            .write(SpscControl::default());
    }
    // SAFETY: just initialized, aligned, in bounds.
    let ctrl = unsafe { ptr.cast::<SpscControl>().as_ref() };
    ctrl.config
        .0
        .capacity
        .store(capacity as u64, Ordering::Relaxed);
    ctrl.config
        .0
        .fixed_len
        .store(fixed_len as u64, Ordering::Relaxed);
    ctrl.config.0.magic.store(CONTROL_MAGIC, Ordering::Release);
    // SAFETY: the same memory, now initialized.
    unsafe { attach(ptr, len) }
}

/// Attaches to a ring initialized by [`init_in`] (in this or another
/// process), checking its control block against `len`.
///
/// # Safety
/// `ptr` must be valid for reads and writes of `len` bytes, 128-byte
/// aligned, and stay mapped while the returned [`RawRing`] (and every end
/// made from it) is used.
pub unsafe fn attach(ptr: NonNull<u8>, len: usize) -> Result<RawRing, Corrupt> {
    if len < std::mem::size_of::<SpscControl>() {
        return Err(Corrupt::new(
            "memory is smaller than the control block",
            len as u64,
        ));
    }
    if ptr.as_ptr() as usize % 128 != 0 {
        return Err(Corrupt::new(
            "memory is not 128-byte aligned",
            ptr.as_ptr() as u64,
        ));
    }
    // SAFETY: in bounds and aligned (checked above); atomics only, so any
    // bytes another process wrote are a valid `SpscControl`.
    let ctrl = unsafe { ptr.cast::<SpscControl>().as_ref() };
    let magic = ctrl.config.0.magic.load(Ordering::Acquire);
    if magic != CONTROL_MAGIC {
        return Err(Corrupt::new("bad control-block magic", magic));
    }
    let cap = ctrl.config.0.capacity.load(Ordering::Relaxed);
    let size = usize::try_from(cap)
        .ok()
        .and_then(memory_size)
        .ok_or(Corrupt::new("capacity is not a power of two in range", cap))?;
    if size > len {
        return Err(Corrupt::new("capacity is larger than the memory", cap));
    }
    Ok(RawRing {
        ctrl: ptr.cast(),
        // SAFETY: the data area starts right after the control block and
        // `size <= len` keeps all of it inside the caller's memory.
        data: unsafe { ptr.add(std::mem::size_of::<SpscControl>()) },
        cap,
        mask: cap - 1,
    })
}

/// A handle on an attached ring: the control block and data area. Cheap to
/// copy; it does not own the memory.
#[derive(Clone, Copy, Debug)]
pub struct RawRing {
    ctrl: NonNull<SpscControl>,
    data: NonNull<u8>,
    cap: u64,
    mask: u64,
}

// SAFETY: a `RawRing` only points at memory whose shared parts are atomics;
// the data area is written under the ring's protocol (the producer writes only
// unpublished bytes, the consumer reads only published ones).
unsafe impl Send for RawRing {}
// SAFETY: as above; `&RawRing` gives access to atomics only.
unsafe impl Sync for RawRing {}

impl RawRing {
    #[inline]
    fn ctrl(&self) -> &SpscControl {
        // SAFETY: checked at attach; the caller of `attach` keeps it mapped.
        unsafe { self.ctrl.as_ref() }
    }

    /// The data area's size in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest message the ring carries.
    #[inline]
    pub fn max_message_len(&self) -> usize {
        self.cap as usize - HEADER_LEN
    }

    /// The fixed message length of a typed ring (0 for a byte ring).
    pub fn fixed_len(&self) -> u64 {
        self.ctrl().config.0.fixed_len.load(Ordering::Relaxed)
    }

    /// Bytes committed and not yet released (records, headers and pads
    /// included). A snapshot: it may change at any moment.
    pub fn used_bytes(&self) -> usize {
        let c = self.ctrl();
        let head = c.head.0.load(Ordering::Acquire);
        let tail = c.tail.0.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.cap) as usize
    }

    /// The event count the consumer parks on (signalled after a commit).
    #[inline]
    pub fn not_empty(&self) -> &EventCount {
        &self.ctrl().not_empty.0
    }

    /// The event count the producer parks on (signalled after a release).
    #[inline]
    pub fn not_full(&self) -> &EventCount {
        &self.ctrl().not_full.0
    }

    fn owner_word(&self, side: Side) -> &AtomicU64 {
        let c = &self.ctrl().config.0;
        match side {
            Side::Producer => &c.producer_owner,
            Side::Consumer => &c.consumer_owner,
        }
    }

    /// The closed flag of `side` (set when that side closed).
    pub fn closed_flag(&self, side: Side) -> &AtomicU32 {
        let c = &self.ctrl().config.0;
        match side {
            Side::Producer => &c.producer_closed,
            Side::Consumer => &c.consumer_closed,
        }
    }

    /// The busy-spin flag of `side`: non-zero while that side never parks.
    pub fn spins_flag(&self, side: Side) -> &AtomicU32 {
        let c = &self.ctrl().config.0;
        match side {
            Side::Producer => &c.producer_spins,
            Side::Consumer => &c.consumer_spins,
        }
    }

    /// The packed owner id of `side` (0: nobody).
    pub fn owner(&self, side: Side) -> u64 {
        self.owner_word(side).load(Ordering::Acquire)
    }

    /// How many times `side` has been attached (takeovers included).
    pub fn attach_count(&self, side: Side) -> u32 {
        let c = &self.ctrl().config.0;
        match side {
            Side::Producer => c.producer_attaches.load(Ordering::Relaxed),
            Side::Consumer => c.consumer_attaches.load(Ordering::Relaxed),
        }
    }

    /// Claims `side` for the owner id `me` (non-zero). Succeeds if nobody
    /// holds it, or if the holder is dead by `is_dead` (a takeover). On
    /// failure returns the live holder's id.
    pub fn claim(&self, side: Side, me: u64, is_dead: impl Fn(u64) -> bool) -> Result<(), u64> {
        let word = self.owner_word(side);
        let mut cur = word.load(Ordering::Acquire);
        loop {
            if cur != 0 && (cur == me || !is_dead(cur)) {
                return Err(cur);
            }
            match word.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let c = &self.ctrl().config.0;
        match side {
            Side::Producer => c.producer_attaches.fetch_add(1, Ordering::Relaxed),
            Side::Consumer => c.consumer_attaches.fetch_add(1, Ordering::Relaxed),
        };
        self.closed_flag(side).store(0, Ordering::Release);
        Ok(())
    }

    /// Marks `side` closed and gives up its ownership if `me` still holds it.
    pub fn release_side(&self, side: Side, me: u64) {
        self.closed_flag(side).store(1, Ordering::Release);
        self.spins_flag(side).store(0, Ordering::Relaxed);
        let _ = self
            .owner_word(side)
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// A producer end starting at the ring's published `tail`.
    ///
    /// Only one producer may exist at a time (across every process); the
    /// public layer enforces it with [`RawRing::claim`].
    pub fn producer(&self) -> Result<RawProducer, Corrupt> {
        let c = self.ctrl();
        let tail = c.tail.0.load(Ordering::Acquire);
        let head = c.head.0.load(Ordering::Acquire);
        self.check_span(tail, head)?;
        Ok(RawProducer {
            ring: *self,
            tail,
            published_tail: tail,
            cached_head: head,
            pad_published: false,
        })
    }

    /// A consumer end starting at the ring's published `head`.
    pub fn consumer(&self) -> Result<RawConsumer, Corrupt> {
        let c = self.ctrl();
        let head = c.head.0.load(Ordering::Acquire);
        let tail = c.tail.0.load(Ordering::Acquire);
        self.check_span(tail, head)?;
        Ok(RawConsumer {
            ring: *self,
            head,
            published_head: head,
            cached_tail: head,
            released_pad: false,
        })
    }

    #[inline]
    fn check_span(&self, tail: u64, head: u64) -> Result<u64, Corrupt> {
        let used = tail.wrapping_sub(head);
        if used > self.cap {
            return Err(Corrupt::new(
                "tail and head are further apart than the capacity",
                used,
            ));
        }
        if (tail | head) % RECORD_ALIGN as u64 != 0 {
            return Err(Corrupt::new("index is not record-aligned", tail | head));
        }
        Ok(used)
    }

    /// The message record whose header `word` was read at `off`, if it is a
    /// message (not a pad) that lies within the `avail` committed bytes and
    /// before the end of the area; `None` for anything else.
    #[inline(always)]
    fn check_message(&self, off: u64, word: u64, avail: u64) -> Option<Peeked> {
        // Computed in `u64` from a `u32` length, so it cannot overflow;
        // `need` within the rest of the area also bounds the length by the
        // largest message.
        let len32 = word & 0xffff_ffff;
        let need = (len32 + (HEADER_LEN + RECORD_ALIGN - 1) as u64) & !(RECORD_ALIGN as u64 - 1);
        if (word >> 32) as u32 == KIND_MSG && need <= avail && need <= self.cap - off {
            return Some(Peeked {
                off,
                len: len32 as usize,
                need,
            });
        }
        None
    }

    /// A pointer to `off` in the data area.
    ///
    /// # Safety
    /// `off` must be at most the capacity.
    #[inline]
    unsafe fn at(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.cap);
        // SAFETY: the caller keeps `off` within the data area (or one past).
        unsafe { self.data.as_ptr().add(off as usize) }
    }
}

/// Where a reserved record lies: handed out by [`RawProducer::try_reserve`]
/// and given back to [`RawProducer::commit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    off: u64,
    len: usize,
}

impl Reservation {
    /// The payload's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload's offset from the start of the data area (8-aligned).
    #[inline]
    pub fn offset(&self) -> usize {
        (self.off as usize) + HEADER_LEN
    }
}

/// Why [`RawProducer::try_reserve`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveError {
    /// Not enough free room now.
    Full,
    /// The message is larger than [`RawRing::max_message_len`].
    TooLarge,
    /// The consumer's `head` failed its check.
    Corrupt(Corrupt),
}

/// The writing end of a ring. Process-local state: the authoritative tail and
/// a cached copy of the consumer's head.
#[derive(Debug)]
pub struct RawProducer {
    ring: RawRing,
    /// Bytes written so far, published or not.
    tail: u64,
    /// The tail as last stored in shared memory.
    published_tail: u64,
    cached_head: u64,
    pad_published: bool,
}

impl RawProducer {
    /// The ring.
    #[inline]
    pub fn ring(&self) -> &RawRing {
        &self.ring
    }

    /// Whether `need` bytes are free, reloading `head` only if the cached
    /// copy says they are not.
    #[inline]
    fn has_room(&mut self, need: u64) -> Result<bool, Corrupt> {
        if self.ring.cap - self.tail.wrapping_sub(self.cached_head) >= need {
            return Ok(true);
        }
        self.reload_head()?;
        Ok(self.ring.cap - self.tail.wrapping_sub(self.cached_head) >= need)
    }

    #[cold]
    fn reload_head(&mut self) -> Result<(), Corrupt> {
        // SYNC POINT: pairs with the consumer's release store of `head`: the
        // consumer is done reading every byte below `head`.
        let head = self.ring.ctrl().head.0.load(Ordering::Acquire);
        self.ring.check_span(self.tail, head)?;
        if head.wrapping_sub(self.cached_head) > self.ring.cap {
            return Err(Corrupt::new("head moved backwards", head));
        }
        self.cached_head = head;
        Ok(())
    }

    /// Free bytes as far as this end knows (reloads the consumer's head).
    pub fn free_bytes(&mut self) -> Result<usize, Corrupt> {
        self.reload_head()?;
        Ok((self.ring.cap - self.tail.wrapping_sub(self.cached_head)) as usize)
    }

    /// Reserves room for a `len`-byte message. On success the payload bytes
    /// are at [`RawProducer::payload`] until [`RawProducer::commit`].
    ///
    /// May publish a pad record to reach the start of the data area (even when
    /// it then fails with `Full`); [`RawProducer::take_pad_published`] tells
    /// the caller to wake the consumer, who must skip the pad to free room.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        // Fast path: the record fits before the end of the data area and the
        // cached `head` already shows room for it. `tail - cached_head` was
        // checked to be at most the capacity when `head` was last loaded and
        // only grows by reserved (checked) amounts since, so the subtraction
        // cannot wrap. Anything else takes the slow path, which redoes every
        // check and reports why.
        match self.try_reserve_fast(len) {
            Some(r) => Ok(r),
            None => self.try_reserve_slow(len),
        }
    }

    /// The fast path of [`RawProducer::try_reserve`] alone: `None` when it
    /// does not apply (then `try_reserve` decides). Never publishes a pad.
    #[inline(always)]
    pub(crate) fn try_reserve_fast(&mut self, len: usize) -> Option<Reservation> {
        let off = self.tail & self.ring.mask;
        if len <= self.ring.max_message_len() {
            let need = record_len(len) as u64;
            if need <= self.ring.cap - off
                && self.ring.cap - self.tail.wrapping_sub(self.cached_head) >= need
            {
                return Some(Reservation { off, len });
            }
        }
        None
    }

    /// [`RawProducer::try_reserve`] when the fast path does not apply: too
    /// large, a pad needed, or the cached `head` says full.
    #[cold]
    #[inline(never)]
    fn try_reserve_slow(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        if len > self.ring.max_message_len() {
            return Err(ReserveError::TooLarge);
        }
        let need = record_len(len) as u64;
        let mut off = self.tail & self.ring.mask;
        let to_end = self.ring.cap - off;
        if need > to_end {
            if !self.has_room(to_end).map_err(ReserveError::Corrupt)? {
                return Err(ReserveError::Full);
            }
            // SAFETY: `off` is 8-aligned and `to_end >= 8` bytes remain, all
            // free (checked), so this process alone may write them.
            unsafe { write_header(self.ring.at(off), to_end as u32, KIND_PAD) };
            self.tail = self.tail.wrapping_add(to_end);
            self.publish();
            self.pad_published = true;
            off = 0;
        }
        if !self.has_room(need).map_err(ReserveError::Corrupt)? {
            return Err(ReserveError::Full);
        }
        Ok(Reservation { off, len })
    }

    /// Whether a pad record was published since the last call (the consumer
    /// should be woken so it skips it).
    #[inline]
    pub fn take_pad_published(&mut self) -> bool {
        std::mem::take(&mut self.pad_published)
    }

    /// The payload bytes of a reservation.
    ///
    /// # Safety
    /// `r` must come from this producer's latest `try_reserve` and not have
    /// been committed; the slice must not outlive that.
    #[inline]
    pub unsafe fn payload(&mut self, r: Reservation) -> &mut [u8] {
        // SAFETY: the reservation lies inside the data area (the record is
        // contiguous, `off + need <= cap`) and is free, so no other party
        // reads or writes it until it is published.
        unsafe { std::slice::from_raw_parts_mut(self.ring.at(r.off + HEADER_LEN as u64), r.len) }
    }

    /// The payload bytes of a reservation, for reading back.
    ///
    /// # Safety
    /// As [`RawProducer::payload`].
    #[inline]
    pub unsafe fn payload_ref(&self, r: Reservation) -> &[u8] {
        // SAFETY: as in `payload`: inside the data area, unpublished.
        unsafe { std::slice::from_raw_parts(self.ring.at(r.off + HEADER_LEN as u64), r.len) }
    }

    /// Writes the header of a reservation, shortened to `len` bytes
    /// (`len <= r.len()`), and moves the local tail past it. Not visible to
    /// the consumer until [`RawProducer::publish`].
    ///
    /// # Panics
    /// If `len > r.len()`.
    #[inline]
    pub fn commit(&mut self, r: Reservation, len: usize) {
        assert!(
            len <= r.len,
            "commit of {len} bytes into a grant of {}",
            r.len
        );
        // SAFETY: the header slot is the first 8 bytes of the reserved,
        // still unpublished record.
        unsafe { write_header(self.ring.at(r.off), len as u32, KIND_MSG) };
        self.tail = (self.tail & !self.ring.mask) + r.off + record_len(len) as u64;
    }

    /// Makes every committed record visible to the consumer (one store).
    #[inline]
    pub fn publish(&mut self) {
        if self.tail != self.published_tail {
            // SYNC POINT: pairs with the consumer's acquire load of `tail`:
            // every record and header written before is visible with it.
            self.ring.ctrl().tail.0.store(self.tail, Ordering::Release);
            self.published_tail = self.tail;
        }
    }

    /// Reserves, copies `msg` in, commits and publishes.
    #[inline]
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ReserveError> {
        let r = self.try_reserve(msg.len())?;
        // SAFETY: `r` was just reserved by this producer.
        unsafe { self.payload(r) }.copy_from_slice(msg);
        self.commit(r, msg.len());
        self.publish();
        Ok(())
    }
}

/// A record found by [`RawConsumer::try_peek`]: a message's place in the
/// data area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peeked {
    off: u64,
    len: usize,
    need: u64,
}

impl Peeked {
    /// The message's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload's offset from the start of the data area (8-aligned).
    #[inline]
    pub fn offset(&self) -> usize {
        self.off as usize + HEADER_LEN
    }
}

/// The reading end of a ring. Process-local state: the authoritative head and
/// a cached copy of the producer's tail.
#[derive(Debug)]
pub struct RawConsumer {
    ring: RawRing,
    /// Bytes consumed so far, published or not.
    head: u64,
    published_head: u64,
    cached_tail: u64,
    released_pad: bool,
}

impl RawConsumer {
    /// The ring.
    #[inline]
    pub fn ring(&self) -> &RawRing {
        &self.ring
    }

    #[inline]
    fn reload_tail(&mut self) -> Result<u64, Corrupt> {
        // SYNC POINT: pairs with the producer's release store of `tail`.
        let tail = self.ring.ctrl().tail.0.load(Ordering::Acquire);
        let used = self.ring.check_span(tail, self.head)?;
        self.cached_tail = tail;
        Ok(used)
    }

    /// Whether a message (or pad) is committed and unread. Reloads `tail`.
    pub fn has_data(&mut self) -> Result<bool, Corrupt> {
        Ok(self.reload_tail()? != 0)
    }

    /// The next message, if one is committed, after checking its header.
    /// Pad records on the way are skipped (and released at once, see
    /// [`RawConsumer::take_released_pad`]).
    #[inline]
    pub fn try_peek(&mut self) -> Result<Option<Peeked>, Corrupt> {
        // Fast path: a message record (no pad) that passes every check. The
        // span `cached_tail - head` was checked against the capacity when
        // `tail` was loaded and shrinks only by checked record lengths, so
        // `avail` needs no new check; anything unusual (a pad, a bad header)
        // goes to the slow path, which reads the header again and checks it
        // in full.
        let off = self.head & self.ring.mask;
        // SAFETY: `head` is 8-aligned (checked at attach and advanced by
        // record lengths only), so `off + 8 <= cap`: the header slot lies
        // inside the data area.
        let slot = unsafe { self.ring.at(off) }.cast::<u64>();
        let mut avail = self.cached_tail.wrapping_sub(self.head);
        let word;
        if avail == 0 {
            // SYNC POINT: pairs with the producer's release store of `tail`;
            // the early header read is explained in `try_peek_slow`.
            let tail = self.ring.ctrl().tail.0.load(Ordering::Acquire);
            // SAFETY: inside the data area (see above); a volatile read of
            // memory another process may be writing, used only if `tail`
            // says it was committed.
            word = unsafe { slot.read_volatile() };
            avail = self.ring.check_span(tail, self.head)?;
            self.cached_tail = tail;
            if avail == 0 {
                return Ok(None);
            }
        } else {
            // SAFETY: as above; at least 8 committed bytes lie there.
            word = unsafe { slot.read_volatile() };
        }
        match self.ring.check_message(off, word, avail) {
            Some(p) => Ok(Some(p)),
            None => self.try_peek_slow(),
        }
    }

    /// The next message if the cached `tail` already shows one and its
    /// header passes every check; `None` otherwise (then
    /// [`RawConsumer::try_peek`] decides). Loads no shared index.
    #[inline(always)]
    pub(crate) fn try_peek_cached(&mut self) -> Option<Peeked> {
        let avail = self.cached_tail.wrapping_sub(self.head);
        if avail == 0 {
            return None;
        }
        let off = self.head & self.ring.mask;
        // SAFETY: `head` is 8-aligned, so the header slot lies inside the
        // data area, and at least 8 committed bytes lie there (`avail` was
        // checked against the capacity when `tail` was loaded).
        let word = unsafe { self.ring.at(off).cast::<u64>().read_volatile() };
        self.ring.check_message(off, word, avail)
    }

    /// [`RawConsumer::try_peek`] in full: pads, and the precise error for a
    /// record that fails its checks.
    #[cold]
    #[inline(never)]
    fn try_peek_slow(&mut self) -> Result<Option<Peeked>, Corrupt> {
        loop {
            let off = self.head & self.ring.mask;
            // SAFETY: `head` is 8-aligned (checked at attach and advanced by
            // record lengths only), so `off + 8 <= cap`: the header slot lies
            // inside the data area.
            let slot = unsafe { self.ring.at(off) }.cast::<u64>();
            let mut avail = self.cached_tail.wrapping_sub(self.head);
            let word;
            if avail == 0 {
                // SYNC POINT: pairs with the producer's release store of
                // `tail`. The header is read right after, before `tail`'s
                // value is known, so that on x86 both cache misses overlap
                // (loads are not reordered with loads: if `tail` shows the
                // record, the header read sees it too). The word is only used
                // if `tail` says it was committed.
                let tail = self.ring.ctrl().tail.0.load(Ordering::Acquire);
                // SAFETY: inside the data area (see above); a volatile read
                // of memory another process may be writing.
                word = unsafe { slot.read_volatile() };
                avail = self.ring.check_span(tail, self.head)?;
                self.cached_tail = tail;
                if avail == 0 {
                    return Ok(None);
                }
            } else {
                // SAFETY: as above; at least 8 committed bytes lie there.
                word = unsafe { slot.read_volatile() };
            }
            let len = (word & 0xffff_ffff) as usize;
            let kind = (word >> 32) as u32;
            let to_end = self.ring.cap - off;
            match kind {
                KIND_MSG => {
                    if len > self.ring.max_message_len() {
                        return Err(Corrupt::new("message length exceeds the ring", len as u64));
                    }
                    let need = record_len(len) as u64;
                    if need > to_end {
                        return Err(Corrupt::new(
                            "message crosses the end of the ring",
                            len as u64,
                        ));
                    }
                    if need > avail {
                        return Err(Corrupt::new(
                            "message length exceeds the committed bytes",
                            len as u64,
                        ));
                    }
                    return Ok(Some(Peeked { off, len, need }));
                }
                KIND_PAD => {
                    if len as u64 != to_end {
                        return Err(Corrupt::new(
                            "pad does not reach the end of the ring",
                            len as u64,
                        ));
                    }
                    if to_end > avail {
                        return Err(Corrupt::new("pad exceeds the committed bytes", len as u64));
                    }
                    self.head = self.head.wrapping_add(to_end);
                    self.publish();
                    self.released_pad = true;
                }
                _ => return Err(Corrupt::new("unknown record kind", word)),
            }
        }
    }

    /// Whether a pad record was released since the last call (the producer
    /// may be waiting for that room).
    #[inline]
    pub fn take_released_pad(&mut self) -> bool {
        std::mem::take(&mut self.released_pad)
    }

    /// The payload of a peeked message.
    ///
    /// # Safety
    /// `p` must come from this consumer's latest `try_peek`, not yet
    /// advanced past; the slice must not outlive that.
    #[inline]
    pub unsafe fn payload(&self, p: Peeked) -> &[u8] {
        // SAFETY: checked by `try_peek`: the payload lies inside the data
        // area and within committed bytes the producer no longer writes.
        unsafe { std::slice::from_raw_parts(self.ring.at(p.off + HEADER_LEN as u64), p.len) }
    }

    /// Moves past a peeked message (locally; see [`RawConsumer::publish`]).
    #[inline]
    pub fn advance(&mut self, p: Peeked) {
        self.head = self.head.wrapping_add(p.need);
    }

    /// Gives every consumed byte back to the producer (one store).
    #[inline]
    pub fn publish(&mut self) {
        if self.head != self.published_head {
            // SYNC POINT: pairs with the producer's acquire load of `head`:
            // the reads of the released records happened before.
            self.ring.ctrl().head.0.store(self.head, Ordering::Release);
            self.published_head = self.head;
        }
    }

    /// Copies the next message into `buf` and releases it. Returns its length,
    /// or `Ok(None)` if nothing is committed. A message longer than `buf` is
    /// left in the ring and reported as `Err(Ok(len))`.
    pub fn try_pop_into(
        &mut self,
        buf: &mut [u8],
    ) -> Result<Option<usize>, Result<usize, Corrupt>> {
        let Some(p) = self.try_peek().map_err(Err)? else {
            return Ok(None);
        };
        if p.len > buf.len() {
            return Err(Ok(p.len));
        }
        // SAFETY: `p` was just peeked.
        buf[..p.len].copy_from_slice(unsafe { self.payload(p) });
        self.advance(p);
        self.publish();
        Ok(Some(p.len))
    }
}

/// Writes a record header.
///
/// # Safety
/// `at` must be 8-aligned and writable for 8 bytes, inside a record this
/// producer owns.
#[inline]
unsafe fn write_header(at: *mut u8, len: u32, kind: u32) {
    let word = u64::from(len) | (u64::from(kind) << 32);
    // SAFETY: per the contract above.
    unsafe { at.cast::<u64>().write_volatile(word) };
}

/// A ring over heap memory, for tests and single-process use.
#[derive(Debug)]
pub struct HeapRing {
    mem: NonNull<u8>,
    layout: std::alloc::Layout,
    ring: RawRing,
}

// SAFETY: owns its allocation; `RawRing` is Send + Sync.
unsafe impl Send for HeapRing {}
// SAFETY: shared access only reaches atomics and protocol-guarded bytes.
unsafe impl Sync for HeapRing {}

impl HeapRing {
    /// A ring with a data area of `capacity` bytes (a power of two) on the
    /// heap, or `None` for a bad capacity.
    pub fn new(capacity: usize) -> Option<HeapRing> {
        let size = memory_size(capacity)?;
        let layout = std::alloc::Layout::from_size_align(size, 128).ok()?;
        // SAFETY: the layout has a non-zero size.
        let mem = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
        // SAFETY: fresh, exclusive, 128-aligned allocation of `size` bytes.
        let ring = match unsafe { init_in(mem, size, capacity, 0) } {
            Ok(r) => r,
            Err(_) => {
                // SAFETY: allocated just above with this layout.
                unsafe { std::alloc::dealloc(mem.as_ptr(), layout) };
                return None;
            }
        };
        Some(HeapRing { mem, layout, ring })
    }

    /// The ring.
    pub fn ring(&self) -> &RawRing {
        &self.ring
    }

    /// The raw bytes of the whole ring memory (control block and data), for
    /// tests that scribble over it.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mem.as_ptr()
    }
}

impl Drop for HeapRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; every end made from
        // the ring borrows or outlives nothing past this drop by contract.
        unsafe { std::alloc::dealloc(self.mem.as_ptr(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_capacities() {
        assert_eq!(memory_size(16), Some(640 + 16));
        assert_eq!(memory_size(24), None);
        assert_eq!(memory_size(8), None);
        assert_eq!(capacity_for_message(8), Some(16));
        assert_eq!(capacity_for_message(9), Some(32));
        assert_eq!(capacity_for_message(0), Some(16));
        assert_eq!(record_len(0), 8);
        assert_eq!(record_len(1), 16);
    }

    #[test]
    fn push_peek_wrap_and_pad() {
        let h = HeapRing::new(64).unwrap();
        let mut p = h.ring().producer().unwrap();
        let mut c = h.ring().consumer().unwrap();
        assert_eq!(h.ring().max_message_len(), 56);
        assert_eq!(p.try_push(&[0; 57]), Err(ReserveError::TooLarge));
        for round in 0..50u8 {
            let len = (round as usize * 7) % 40;
            let msg: Vec<u8> = (0..len as u8).map(|b| b ^ round).collect();
            if p.try_push(&msg) == Err(ReserveError::Full) {
                // Only a pad stands in the way.
                assert!(p.take_pad_published());
                assert_eq!(c.try_peek(), Ok(None));
                p.try_push(&msg).unwrap();
            }
            let mut buf = [0u8; 64];
            assert_eq!(c.try_pop_into(&mut buf), Ok(Some(len)));
            assert_eq!(&buf[..len], &msg[..]);
            assert_eq!(c.try_pop_into(&mut buf), Ok(None));
        }
        // The largest message needs the whole area: the producer pads to the
        // end, and once the consumer has skipped the pad it fits.
        if p.try_push(&[1; 56]) == Err(ReserveError::Full) {
            assert!(p.take_pad_published());
            assert_eq!(c.try_peek(), Ok(None));
            assert!(c.take_released_pad());
            p.try_push(&[1; 56]).unwrap();
        }
        assert_eq!(p.try_push(&[]), Err(ReserveError::Full));
        let mut buf = [0u8; 56];
        assert_eq!(c.try_pop_into(&mut buf[..10]), Err(Ok(56)));
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(56)));
        assert_eq!(buf, [1; 56]);
    }

    #[test]
    fn corrupt_indices_are_errors() {
        let h = HeapRing::new(64).unwrap();
        let mut p = h.ring().producer().unwrap();
        let mut c = h.ring().consumer().unwrap();
        p.try_push(b"hello").unwrap();
        // A tail far ahead of head.
        h.ring().ctrl().tail.0.store(1 << 40, Ordering::Release);
        assert!(c.try_peek().is_err());
        // A header claiming more bytes than committed.
        h.ring().ctrl().tail.0.store(16, Ordering::Release);
        // SAFETY: offset 0 of the data area, 8-aligned, test-owned memory.
        unsafe { write_header(h.ring().at(0), 40, KIND_MSG) };
        assert_eq!(
            c.try_peek().unwrap_err().what,
            "message length exceeds the committed bytes"
        );
        // SAFETY: as above.
        unsafe { write_header(h.ring().at(0), 5, 77) };
        assert_eq!(c.try_peek().unwrap_err().what, "unknown record kind");
        h.ring().ctrl().head.0.store(3, Ordering::Release);
        assert!(p.free_bytes().is_err());
    }
}
