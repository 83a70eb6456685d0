//! The single-producer single-consumer byte ring, over a [`Memory`].
//!
//! This is the algorithm alone, with no operating system in it: it works on
//! any memory it is handed (a shared segment, the heap, a loom model), so
//! the same code is model-checked, stress-tested on threads and run between
//! processes. The public [`spsc`](crate::spsc) types place it in an
//! `multiproc-core` segment and add waiting.
//!
//! # Layout
//!
//! [`memory_size`] bytes: a [`SpscControl`] block of six 128-byte lines,
//! then the data area of `capacity` bytes (a power of two, at least 32).
//!
//! | line | contents | written by |
//! |---|---|---|
//! | 0 | capacity, fixed message length, endpoint owners, closed and busy-spin flags | init, claims and releases of an end (rarely) |
//! | 1 | `tail`: bytes ever committed; the producer's [`EndCounters`] | the producer, once per publish |
//! | 2 | `head`: bytes ever released; the consumer's [`EndCounters`] | the consumer, once per release (and the producer, to release a pad of a drained ring: `head` only) |
//! | 3 | `not_empty` event count (the consumer parks here) | the consumer when it parks |
//! | 4 | `not_full` event count (the producer parks here) | the producer when it parks |
//! | 5 | the holders of each end: eight packed process ids each | claims, joins and drops of an end (rarely) |
//!
//! Lines are 128 bytes ([`Line`]), so that the two ends' hot words never
//! share what the prefetcher treats as one line.
//!
//! Each end's counters (messages and payload bytes, and for the producer
//! the tries that found the ring full) sit beside its index, on the line
//! only that end writes and the other end does not read per message. An end
//! counts in process-local fields and stores the totals with its index
//! (relaxed stores to a line it already holds), so a counter costs the hot
//! path no atomic read-modify-write and no extra cache line. They were
//! zero padding before, so a ring made by an older build reads as counters
//! that start at zero and the layout (size, offsets, hash) is unchanged.
//!
//! `head` and `tail` are positions in bytes that only grow (a `u64` does not
//! wrap in the lifetime of a machine); the offset in the data area is the
//! position masked by `capacity - 1`.
//!
//! # The ends
//!
//! Each end records its owner's packed process id in line 0. A
//! [`RawProducer`] or [`RawConsumer`] is made only by
//! [`RawRing::producer`] / [`RawRing::consumer`], which claim that word with
//! one compare-and-swap: from "nobody", or from an owner the [`Judge`] they
//! are given proves dead (a takeover). A second claim while the owner lives
//! fails, in this process as in any other, so two producers of one ring
//! cannot exist, and neither can the aliasing `&mut [u8]` two of them would
//! hand out.
//!
//! An end may be held by several processes: the one that claimed it and
//! those that joined it ([`RawRing::join_producer`]: a child given the end
//! when it was started), each recorded in line 5. Dropping an end leaves
//! that list; the last holder to leave (or die) closes the end and gives
//! its owner word back, so a parent dropping its copy of the end it gave a
//! child closes nothing. An end is gone for the peer when it is closed, or
//! when its owner and every holder are dead.
//!
//! # Framing and publication
//!
//! Each message is a record: an 8-byte header word (`len: u32`, `kind: u32`),
//! the payload, and padding up to a multiple of 8. Payloads are therefore
//! 8-byte aligned. A record is always contiguous in the data area: when it
//! does not fit before the end, the producer writes a *pad record* covering
//! the rest of the area and places the message at offset 0 (the consumer
//! skips pad records).
//!
//! A record is published by its own header: the producer writes the payload,
//! clears the header slot that follows the record (stores 0 there), then
//! stores the header word with release ordering. The consumer loads the
//! header word at its `head` with acquire ordering: 0 means nothing is
//! committed there yet, anything else is a record whose payload is visible.
//! The cleared slot is what makes this sound: when the consumer moves past a
//! record, the slot it reaches next was cleared before that record was
//! published, so it can never mistake what an earlier lap left there (an old
//! header, or payload bytes) for a new record. The producer therefore keeps
//! [`SLACK`] bytes free after its last record, and the largest message is
//! `capacity - 16` bytes ([`RawRing::max_message_len`]); it fits once the
//! ring has drained.
//!
//! That largest record fills the data area, so it can only start at offset
//! 0, where the consumer's `head` is not, unless the consumer is at a lap's
//! start. When the producer needs a pad to get there and finds the ring
//! drained up to the pad (`head` equals the pad's position: the consumer has
//! released everything and may not poll again soon), it releases the pad
//! itself: a compare-and-swap of `head` from the pad's position to the next
//! lap's start, then a release fence, before it writes the record (over the
//! pad). The consumer loads `head` after each header it reads (its own
//! cache line, so an L1 hit on the fast path); a value it did not publish
//! means the producer released a pad it had not read, and that whatever it
//! just read may be the new record's bytes: it moves to the lap's start
//! instead. The fence pairs with the consumer's acquire load of the header,
//! so a consumer that reads anything written after the compare-and-swap also
//! sees the new `head`. Any other change of `head` by someone else is
//! reported as corrupt.
//!
//! So a message costs the consumer one cache line (the record's own) in the
//! steady state, not two (an index and the record): the consumer never reads
//! `tail`. The producer still stores `tail` after each publish, on a line
//! that nobody reads on the per-message path; it serves [`RawRing::used_bytes`]
//! and a producer taking over from a dead one. The producer keeps a cached
//! copy of `head` in process-local memory and reloads it only when the cached
//! value says the ring is full.
//!
//! # Trust
//!
//! Everything read from the shared memory is checked before use: `head` and
//! `tail` must be 8-aligned and at most `capacity` apart; a record header must
//! have a known kind and a length that fits in the data area without
//! crossing its end; a pad must cover exactly the rest of the area. A failed
//! check is a [`Corrupt`] error. The header is loaded once and the loaded
//! value is what gets checked and used, so a peer rewriting it concurrently
//! cannot slip a value past the checks. The capacity is read once, when
//! attaching, and kept in the process-local [`RawRing`].
//!
//! The per-message paths are split in two: an inlined fast path that covers
//! the common case (a message record, room that the cached `head` already
//! shows) with a few comparisons, and an out-of-line slow path for everything
//! else (pads, reloads that find the ring full, records that fail a check),
//! which redoes every check and names the failure. The fast path accepts
//! nothing the slow path would refuse.
//!
//! Payload bytes are handed out as slices into the shared memory (for an
//! [`Addressable`] memory). Another process may write them at any time (that
//! is the nature of shared memory, outside what the Rust abstract machine
//! describes); the ring's protocol guarantees that a well-behaved producer
//! does not touch a record between its commit and the consumer's release,
//! and a misbehaving one can at worst change the bytes read, never make a
//! read leave the data area.

mod consumer;
mod holders;
#[cfg(loom)]
mod model;
#[cfg(loom)]
pub use model::model_layout;
mod producer;
#[cfg(all(test, not(loom)))]
mod tests;

pub use consumer::{Peeked, RawConsumer};
pub use producer::{RawProducer, Reservation, ReserveError};

use super::{
    claim_owner, release_owner, Addressable, ClaimError, ConfigError, Corrupt, Line, Memory,
};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use multiproc_core::liveness::Judge;
use multiproc_core::wait::EventCount;

/// Size of a record header in bytes.
pub const HEADER_LEN: usize = 8;
/// Records start, and payloads are aligned, at multiples of this.
pub const RECORD_ALIGN: usize = 8;
/// Bytes the producer keeps free after its last record: the header slot it
/// clears before publishing a record.
pub const SLACK: usize = HEADER_LEN;
/// The smallest data area: one record holding an 8-byte message, and the
/// slot after it.
pub const MIN_CAPACITY: usize = 32;
/// The largest data area accepted (lengths are stored as `u32`).
pub const MAX_CAPACITY: usize = 1 << 31;

const KIND_MSG: u32 = 0x4d53_4731; // "1GSM"
const KIND_PAD: u32 = 0x5041_4431; // "1DAP"
const CONTROL_MAGIC: u64 = u64::from_le_bytes(*b"SPSCRNG3");
/// Holders each end records (see [`RawRing::join_producer`]).
pub const HOLDERS: usize = 8;

/// Line 0 of the control block: configuration and endpoints.
#[repr(C)]
#[derive(Debug, Default)]
struct Words {
    magic: std::sync::atomic::AtomicU64,
    capacity: std::sync::atomic::AtomicU64,
    /// Non-zero for a typed ring: every message has exactly this length.
    fixed_len: std::sync::atomic::AtomicU64,
    producer_owner: std::sync::atomic::AtomicU64,
    consumer_owner: std::sync::atomic::AtomicU64,
    producer_closed: std::sync::atomic::AtomicU32,
    consumer_closed: std::sync::atomic::AtomicU32,
    producer_spins: std::sync::atomic::AtomicU32,
    consumer_spins: std::sync::atomic::AtomicU32,
    producer_attaches: std::sync::atomic::AtomicU32,
    consumer_attaches: std::sync::atomic::AtomicU32,
}

/// Lines 1 and 2 of the control block: one end's index (`tail` or `head`)
/// and its counters, written by that end only (but `head`, see the module
/// docs).
#[repr(C)]
#[derive(Debug, Default)]
struct EndLine {
    index: std::sync::atomic::AtomicU64,
    messages: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    full: std::sync::atomic::AtomicU64,
}

/// One end's counters as read from its line: totals since the ring was
/// made, continued by an end that takes over from a dead one (which may
/// have counted a few messages it did not yet store). Each is written by
/// one end only, with relaxed stores: a snapshot, never exact while the end
/// runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndCounters {
    /// Messages committed (producer) or released (consumer).
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Producer only: reservations that found the ring full.
    pub full: u64,
}

/// The control block at the start of a ring's memory: its layout, which the
/// ring reaches word by word through its [`Memory`]. `#[repr(C)]`, atomics
/// only (valid when zeroed, never holds a pointer).
#[repr(C)]
#[derive(Debug, Default)]
pub struct SpscControl {
    config: Line<Words>,
    tail: Line<EndLine>,
    head: Line<EndLine>,
    not_empty: Line<EventCount>,
    not_full: Line<EventCount>,
    /// The processes holding each end: the producer's eight packed ids,
    /// then the consumer's (0: a free slot).
    holders: Line<[std::sync::atomic::AtomicU64; 2 * HOLDERS]>,
}

multiproc_core::assert_layout!(SpscControl, size = 768, align = 128);

macro_rules! word {
    ($($f:tt)+) => {
        std::mem::offset_of!(SpscControl, config.0.$($f)+)
    };
}
const MAGIC: usize = word!(magic);
const CAPACITY: usize = word!(capacity);
const FIXED_LEN: usize = word!(fixed_len);
const TAIL: usize = std::mem::offset_of!(SpscControl, tail);
const HEAD: usize = std::mem::offset_of!(SpscControl, head);
/// Offsets of the counters after an end's index (`TAIL` or `HEAD`).
const MESSAGES: usize = std::mem::offset_of!(EndLine, messages);
const BYTES: usize = std::mem::offset_of!(EndLine, bytes);
const FULL: usize = std::mem::offset_of!(EndLine, full);
const _: () = assert!(std::mem::offset_of!(EndLine, index) == 0);
const NOT_EMPTY: usize = std::mem::offset_of!(SpscControl, not_empty);
const NOT_FULL: usize = std::mem::offset_of!(SpscControl, not_full);
const HOLDERS_AT: usize = std::mem::offset_of!(SpscControl, holders);
/// Where the data area starts.
pub const DATA: usize = std::mem::size_of::<SpscControl>();

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

    /// The other end.
    pub const fn peer(self) -> Side {
        match self {
            Side::Producer => Side::Consumer,
            Side::Consumer => Side::Producer,
        }
    }

    /// The offsets of this side's words: owner, closed flag, busy-spin
    /// flag, attach count, and the event count it parks on (the producer
    /// waits for room, the consumer for messages).
    const fn words(self) -> [usize; 5] {
        match self {
            Side::Producer => [
                word!(producer_owner),
                word!(producer_closed),
                word!(producer_spins),
                word!(producer_attaches),
                NOT_FULL,
            ],
            Side::Consumer => [
                word!(consumer_owner),
                word!(consumer_closed),
                word!(consumer_spins),
                word!(consumer_attaches),
                NOT_EMPTY,
            ],
        }
    }

    const fn owner(self) -> usize {
        self.words()[0]
    }

    const fn closed(self) -> usize {
        self.words()[1]
    }

    const fn spins(self) -> usize {
        self.words()[2]
    }

    const fn attaches(self) -> usize {
        self.words()[3]
    }

    /// The offset of this side's first holder word.
    const fn holders(self) -> usize {
        match self {
            Side::Producer => HOLDERS_AT,
            Side::Consumer => HOLDERS_AT + 8 * HOLDERS,
        }
    }

    const fn event(self) -> usize {
        self.words()[4]
    }

    /// The offset of this side's line: its index, then its counters.
    const fn line(self) -> usize {
        match self {
            Side::Producer => TAIL,
            Side::Consumer => HEAD,
        }
    }
}

/// What a new ring is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The data area's size in bytes, rounded up to a power of two of at
    /// least [`MIN_CAPACITY`] (at most [`MAX_CAPACITY`]).
    pub capacity: usize,
    /// 0 for a byte ring; for a typed ring, the length of every message
    /// (checked by typed ends when they attach).
    pub fixed_len: usize,
}

impl Config {
    /// A byte ring of `capacity` bytes (rounded up).
    pub const fn new(capacity: usize) -> Config {
        Config {
            capacity,
            fixed_len: 0,
        }
    }

    /// The same ring, typed: every message has exactly `len` bytes.
    pub const fn with_fixed_len(self, len: usize) -> Config {
        Config {
            fixed_len: len,
            ..self
        }
    }

    /// The data area's size: the capacity rounded up to a power of two, at
    /// least [`MIN_CAPACITY`].
    ///
    /// # Errors
    /// [`ConfigError`] for a capacity above [`MAX_CAPACITY`], or one that
    /// cannot hold a message of the fixed length.
    pub fn data_size(&self) -> Result<usize, ConfigError> {
        let c = self
            .capacity
            .max(MIN_CAPACITY)
            .checked_next_power_of_two()
            .filter(|&c| c <= MAX_CAPACITY)
            .ok_or(ConfigError(
                "the capacity is larger than 2 GiB, the largest an SPSC ring holds",
            ))?;
        if self.fixed_len != 0 && capacity_for_message(self.fixed_len).is_none_or(|n| n > c) {
            return Err(ConfigError("the capacity cannot hold one message"));
        }
        Ok(c)
    }
}

/// The bytes of memory a ring of `cfg` needs.
///
/// # Errors
/// As [`Config::data_size`].
pub fn memory_size(cfg: &Config) -> Result<usize, ConfigError> {
    Ok(DATA + cfg.data_size()?)
}

/// The data-area size (power of two) needed so that a message of `len`
/// bytes fits, or `None` if that is larger than [`MAX_CAPACITY`].
pub const fn capacity_for_message(len: usize) -> Option<usize> {
    // Checked first, so that `record_len` below cannot overflow.
    if len > MAX_CAPACITY {
        return None;
    }
    let need = record_len(len) + SLACK;
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

/// A record header word.
#[inline(always)]
const fn header_word(len: u64, kind: u32) -> u64 {
    len | ((kind as u64) << 32)
}

/// A ring attached in some memory: the memory and the capacity read (and
/// checked) when attaching. Cheap to clone; the ends are made by
/// [`RawRing::producer`] and [`RawRing::consumer`].
#[derive(Clone, Copy, Debug)]
pub struct RawRing<M> {
    mem: M,
    cap: u64,
    mask: u64,
}

/// A record header that passed its checks.
enum Record {
    /// A message record.
    Msg(Peeked),
    /// A pad record of this many bytes, reaching the end of the data area.
    Pad(u64),
}

impl<M: Memory> RawRing<M> {
    /// Writes a fresh ring of `cfg` into `mem` and attaches it.
    ///
    /// # Errors
    /// [`ConfigError`] for a configuration out of range or larger than
    /// `mem`.
    pub fn init(mem: M, cfg: &Config) -> Result<RawRing<M>, ConfigError> {
        let cap = cfg.data_size()?;
        let size = DATA + cap;
        if mem.len() < size {
            return Err(ConfigError("the memory is smaller than the ring"));
        }
        // SAFETY: `size <= len` bytes; the caller gives the memory before
        // any other party uses it (it cannot attach before the magic).
        unsafe { mem.clear(size) };
        let ring = RawRing {
            mem,
            cap: cap as u64,
            mask: cap as u64 - 1,
        };
        ring.word(CAPACITY).store(cap as u64, Ordering::Relaxed);
        ring.word(FIXED_LEN)
            .store(cfg.fixed_len as u64, Ordering::Relaxed);
        // SYNC POINT: pairs with the acquire load of the magic in `attach`.
        ring.word(MAGIC).store(CONTROL_MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Attaches to a ring [`RawRing::init`] wrote into `mem` (in this or
    /// another process), checking its control block.
    ///
    /// # Errors
    /// [`Corrupt`] for a memory that holds no ring, or one larger than it.
    pub fn attach(mem: M) -> Result<RawRing<M>, Corrupt> {
        if mem.len() < DATA + MIN_CAPACITY {
            return Err(Corrupt::new(
                "memory is smaller than the smallest ring",
                mem.len() as u64,
            ));
        }
        let probe = RawRing {
            mem,
            cap: 0,
            mask: 0,
        };
        let magic = probe.word(MAGIC).load(Ordering::Acquire);
        if magic != CONTROL_MAGIC {
            return Err(Corrupt::new("bad control-block magic", magic));
        }
        let cap = probe.word(CAPACITY).load(Ordering::Relaxed);
        let size = usize::try_from(cap)
            .ok()
            .filter(|c| c.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(c))
            .ok_or(Corrupt::new("capacity is not a power of two in range", cap))?
            + DATA;
        if size > probe.mem.len() {
            return Err(Corrupt::new("capacity is larger than the memory", cap));
        }
        Ok(RawRing {
            mem: probe.mem,
            cap,
            mask: cap - 1,
        })
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The ring in `mem` as [`RawRing::attach`] finds it; or, if its control
    /// block no longer passes the checks (a peer rewrote it after an attach
    /// of the same memory succeeded), the smallest ring, which fits in any
    /// memory `attach` accepted: every operation then stays inside the
    /// memory, and ends attach afresh and report the corruption. For
    /// handles made from an attach that already succeeded, which cannot
    /// fail.
    #[cfg(not(loom))]
    pub(crate) fn attach_or_smallest(mem: M) -> RawRing<M> {
        debug_assert!(mem.len() >= DATA + MIN_CAPACITY);
        match RawRing::attach(mem.clone()) {
            Ok(ring) => ring,
            Err(_) => RawRing {
                mem,
                cap: MIN_CAPACITY as u64,
                mask: MIN_CAPACITY as u64 - 1,
            },
        }
    }

    /// The 64-bit word at `off` of the control block.
    #[inline(always)]
    fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off < DATA);
        // SAFETY: control-block offsets are 8-aligned constants below `DATA`,
        // and every ring's memory holds at least `DATA + MIN_CAPACITY` bytes
        // (checked by `init` and `attach`).
        unsafe { self.mem.u64_at(off) }
    }

    /// The 32-bit word at `off` of the control block.
    #[inline(always)]
    fn word32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off < DATA);
        // SAFETY: as in `word`, for 4-aligned constants.
        unsafe { self.mem.u32_at(off) }
    }

    /// `tail`.
    #[inline(always)]
    fn tail(&self) -> &AtomicU64 {
        self.word(TAIL)
    }

    /// `head`.
    #[inline(always)]
    fn head(&self) -> &AtomicU64 {
        self.word(HEAD)
    }

    /// The header slot at `off` in the data area.
    ///
    /// `off` must be 8-aligned and below the capacity (checked in debug
    /// builds; every caller derives it from an 8-aligned position masked by
    /// `capacity - 1`, or from a checked record end).
    #[inline(always)]
    fn header_at(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off < self.cap);
        // SAFETY: `off` is 8-aligned and `off + 8 <= cap`, so the word lies
        // inside the data area, which `attach` checked fits in the memory.
        // Header slots are only ever accessed as atomics while they can be
        // read by the other end (see the module docs).
        unsafe { self.mem.u64_at(DATA + off as usize) }
    }

    /// The data area's size in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest message the ring carries.
    #[inline]
    pub fn max_message_len(&self) -> usize {
        self.cap as usize - HEADER_LEN - SLACK
    }

    /// The fixed message length of a typed ring (0 for a byte ring).
    pub fn fixed_len(&self) -> u64 {
        self.word(FIXED_LEN).load(Ordering::Relaxed)
    }

    /// Bytes committed and not yet released (records, headers and pads
    /// included), as far as the published indices show. A snapshot: it may
    /// change at any moment.
    pub fn used_bytes(&self) -> usize {
        let head = self.head().load(Ordering::Acquire);
        let tail = self.tail().load(Ordering::Acquire);
        // The consumer may already have read records whose `tail` is not
        // stored yet: then `head` is ahead and nothing is known to be queued.
        let used = tail.wrapping_sub(head);
        if used > self.cap {
            0
        } else {
            used as usize
        }
    }

    /// The packed owner id of `side` (0: nobody).
    pub fn owner(&self, side: Side) -> u64 {
        self.word(side.owner()).load(Ordering::Acquire)
    }

    /// `side`'s counters (see [`EndCounters`]).
    pub fn counters(&self, side: Side) -> EndCounters {
        let at = |o: usize| self.word(side.line() + o).load(Ordering::Relaxed);
        EndCounters {
            messages: at(MESSAGES),
            bytes: at(BYTES),
            full: at(FULL),
        }
    }

    /// Stores `side`'s counters; called by that end only (single writer).
    #[inline(always)]
    fn store_counters(&self, side: Side, c: &EndCounters) {
        self.word(side.line() + MESSAGES)
            .store(c.messages, Ordering::Relaxed);
        self.word(side.line() + BYTES)
            .store(c.bytes, Ordering::Relaxed);
    }

    /// Counts one reservation that found the ring full (producer only).
    #[cold]
    fn count_full(&self) {
        let w = self.word(TAIL + FULL);
        w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// How many times `side` has been claimed (takeovers included).
    pub fn attach_count(&self, side: Side) -> u32 {
        self.word32(side.attaches()).load(Ordering::Relaxed)
    }

    /// Whether `side` closed its end (it may still have left messages to
    /// drain).
    #[inline]
    pub fn is_closed(&self, side: Side) -> bool {
        self.word32(side.closed()).load(Ordering::Acquire) != 0
    }

    /// Whether `side` closed, or its recorded owner is dead by `judge` (a
    /// slow check for waiting loops: the judge may read `/proc`).
    pub fn is_gone<J: Judge>(&self, side: Side, judge: &J) -> bool {
        if self.is_closed(side) {
            return true;
        }
        let owner = self.owner(side);
        owner != 0 && judge.is_dead(owner) && self.live_holder(side, judge, 0).is_none()
    }

    /// Declares whether `side` busy-spins (never parks), so that the other
    /// side skips waking it.
    pub fn set_spins(&self, side: Side, spins: bool) {
        self.word32(side.spins())
            .store(u32::from(spins), Ordering::SeqCst);
    }

    /// Wakes `side` if it may be parked: one load, and the event count's
    /// fence and load, skipped while `side` declares that it busy-spins.
    #[inline]
    pub fn wake(&self, side: Side) {
        if self.word32(side.spins()).load(Ordering::Relaxed) == 0 {
            // SAFETY: an event count lies at each side's event offset.
            unsafe { self.mem.notify(side.event()) };
        }
    }

    /// Claims `side`'s owner word for `judge`'s process, and counts the
    /// attach; the end is open again from now on.
    fn claim<J: Judge>(&self, side: Side, judge: J) -> Result<Claim<M, J>, ClaimError> {
        let me = judge.me()?;
        // Held by a live process that joined (a child given the end) even
        // if the process that claimed it is gone.
        if let Some(owner) = self.live_holder(side, &judge, me) {
            return Err(ClaimError::Held { owner });
        }
        let me = claim_owner(self.word(side.owner()), &judge)?;
        for i in 0..HOLDERS {
            self.holder(side, i).store(0, Ordering::Relaxed);
        }
        self.add_holder(side, me, &judge)?;
        self.word32(side.attaches()).fetch_add(1, Ordering::Relaxed);
        self.word32(side.closed()).store(0, Ordering::Release);
        Ok(Claim {
            ring: self.clone(),
            side,
            judge,
            me,
        })
    }

    /// Claims the producing end for `judge`'s process and returns it,
    /// continuing after the last committed record.
    ///
    /// That is normally the published `tail`, but a producer that died
    /// between publishing a record (its header) and storing `tail` leaves
    /// records past it, and the consumer may even have read them: the new
    /// end starts from whichever index is further along and walks over the
    /// committed records it finds there, up to the cleared slot.
    ///
    /// # Errors
    /// [`ClaimError::Held`] while a live owner (this process included)
    /// holds the end; [`ClaimError::UnknownIdentity`];
    /// [`ClaimError::Corrupt`] if the indices fail their checks (the claim
    /// is then given back).
    pub fn producer<J: Judge>(&self, judge: J) -> Result<RawProducer<M, J>, ClaimError> {
        RawProducer::start(self.claim(Side::Producer, judge)?).map_err(ClaimError::Corrupt)
    }

    /// Claims the consuming end for `judge`'s process and returns it,
    /// starting at the published `head`.
    ///
    /// # Errors
    /// As [`RawRing::producer`].
    pub fn consumer<J: Judge>(&self, judge: J) -> Result<RawConsumer<M, J>, ClaimError> {
        RawConsumer::start(self.claim(Side::Consumer, judge)?).map_err(ClaimError::Corrupt)
    }

    /// Checks the consumer's `head` against the producer's `tail`: 8-aligned,
    /// at most the capacity behind. Returns the bytes in use.
    #[inline]
    fn check_span(&self, tail: u64, head: u64) -> Result<u64, Corrupt> {
        let used = tail.wrapping_sub(head);
        if used > self.cap {
            return Err(Corrupt::new(
                "tail and head are further apart than the capacity",
                used,
            ));
        }
        if !head.is_multiple_of(RECORD_ALIGN as u64) {
            return Err(Corrupt::new("index is not record-aligned", head));
        }
        Ok(used)
    }

    /// The message record whose header `word` was read at `off`, if it is a
    /// message (not a pad) whose record fits before the end of the area and
    /// leaves the free slot; `None` for anything else.
    #[inline(always)]
    fn check_message(&self, off: u64, word: u64) -> Option<Peeked> {
        // From a `u32` length, so it cannot overflow.
        let len = (word & 0xffff_ffff) as usize;
        let need = record_len(len) as u64;
        if (word >> 32) as u32 == KIND_MSG
            && need <= self.cap - off
            && need <= self.cap - SLACK as u64
        {
            return Some(Peeked::new(off, len));
        }
        None
    }

    /// Checks the non-zero header `word` read at `off` in full, naming what
    /// is wrong.
    fn parse(&self, off: u64, word: u64) -> Result<Record, Corrupt> {
        let len = word & 0xffff_ffff;
        let to_end = self.cap - off;
        match (word >> 32) as u32 {
            KIND_MSG => {
                if len > self.max_message_len() as u64 {
                    return Err(Corrupt::new("message length exceeds the ring", len));
                }
                if record_len(len as usize) as u64 > to_end {
                    return Err(Corrupt::new("message crosses the end of the ring", len));
                }
                self.check_message(off, word)
                    .map(Record::Msg)
                    .ok_or(Corrupt::new("bad message header", word))
            }
            KIND_PAD => {
                if len != to_end {
                    return Err(Corrupt::new("pad does not reach the end of the ring", len));
                }
                Ok(Record::Pad(len))
            }
            _ => Err(Corrupt::new("unknown record kind", word)),
        }
    }
}

/// One end's claim of its owner word: the ring, the side, and who holds it.
/// Made only by a successful claim ([`RawRing::producer`],
/// [`RawRing::consumer`]); dropping it closes the end and gives the word
/// back, in the claiming process only.
#[derive(Debug)]
pub(crate) struct Claim<M: Memory, J: Judge> {
    pub(crate) ring: RawRing<M>,
    side: Side,
    judge: J,
    /// The owner id the claim recorded (0 once abandoned).
    me: u64,
}

impl<M: Memory, J: Judge> Claim<M, J> {
    /// Leaves the end claimed and open when dropped, as a process killed
    /// holding it leaves it.
    pub(crate) fn abandon(&mut self) {
        self.me = 0;
    }
}

impl<M: Memory, J: Judge> Drop for Claim<M, J> {
    /// Leaves the end's holders; the last holder alive closes the end and
    /// gives its owner word back, and wakes the peer, who may be waiting
    /// for something this end will never do. A copy in a forked child that
    /// was never entered as a holder leaves nothing and closes nothing
    /// while the holders live.
    fn drop(&mut self) {
        if self.me == 0 {
            return;
        }
        let (ring, side) = (&self.ring, self.side);
        let Ok(now) = self.judge.me() else { return };
        ring.remove_holder(side, now);
        if ring.live_holder(side, &self.judge, 0).is_some() {
            return;
        }
        ring.word32(side.closed()).store(1, Ordering::Release);
        ring.word32(side.spins()).store(0, Ordering::Relaxed);
        // Whoever claimed it has left or died: nobody holds it now.
        release_owner(ring.word(side.owner()), ring.owner(side));
        // SAFETY: an event count lies at each side's event offset.
        unsafe { ring.mem.notify(side.peer().event()) };
    }
}

/// `ring` and `abandon` for an end holding its [`Claim`] in `end`.
macro_rules! claimed_end {
    ($end:ident) => {
        impl<M: Memory, J: Judge> $end<M, J> {
            /// The ring.
            #[inline]
            pub fn ring(&self) -> &RawRing<M> {
                &self.end.ring
            }

            /// Drops this end without closing it or giving its claim back,
            /// as a process killed while holding it leaves it (for tests and
            /// models: the claim is taken over once the judge finds the
            /// owner dead).
            pub fn abandon(mut self) {
                self.end.abandon();
            }
        }
    };
}
use claimed_end;

impl<M: Addressable> RawRing<M> {
    /// The event count `side` parks on (the consumer on `not_empty`,
    /// signalled after a commit; the producer on `not_full`, signalled after
    /// a release).
    #[cfg(not(loom))]
    #[inline]
    pub fn event(&self, side: Side) -> &EventCount {
        // SAFETY: an event count lies at each side's event offset, inside
        // the control block the memory holds.
        unsafe { super::event_at(self.mem.addr(side.event())) }
    }

    /// The address of byte `off` of the data area (`off <= capacity`).
    #[inline(always)]
    fn data_addr(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.cap);
        self.mem.addr(DATA + off as usize)
    }
}
