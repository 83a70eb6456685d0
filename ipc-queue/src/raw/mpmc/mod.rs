//! The MPMC ring algorithm over a [`Memory`], with recovery from processes
//! that die mid-operation.
//!
//! This is Dmitry Vyukov's bounded MPMC queue (the one behind crossbeam's
//! `ArrayQueue`): a power-of-two array of slots, a `head` and a `tail`
//! position on their own 128-byte lines, and a per-slot state word that says
//! which lap of the ring the slot is in. Vyukov's queue has one weakness
//! across processes: a producer that claims a slot (advances `tail`) and dies
//! before publishing it stops every consumer at that slot for ever, and a
//! consumer that dies between claiming and releasing stops every producer one
//! lap later. Here the claim itself records *who* claimed: the slot's state
//! word is swapped, with the one CAS that claims it, from a sequence value to
//! a busy value holding the claimer's packed process id, as the [`Judge`]
//! passed to the call names it. A waiter that finds a slot busy for longer
//! than its spin budget asks that judge whether the claimer is dead (for the
//! public types: `/proc`, slow path only); if it is, the waiter takes the
//! claim over with a second CAS and finishes it for the dead process.
//!
//! # The slot state word
//!
//! Positions `p` count messages from 0 and never wrap in practice (2^61 of
//! them). Slot `i` serves positions `p` with `p & mask == i`.
//!
//! | state value | name | meaning | who moves it on, and to what |
//! |---|---|---|---|
//! | `2p` | `EMPTY(p)` | free for the producer of position `p` | a producer: CAS to `WRITING(me)`, then `tail = p + 1` |
//! | `BUSY \| id` | `WRITING(id)` | producer `id` holds position `p` (`p` is the unique position of this slot in `[head, head + capacity)`) | that producer: writes `len` and bytes, stores `FULL(p)`; or a recoverer when `id` is dead: `len = ABORTED`, `lost += 1`, `tail = max(tail, p + 1)`, stores `FULL(p)` |
//! | `2p + 1` | `FULL(p)` | holds message `p` (or an aborted one: `len == ABORTED`) | a consumer: CAS to `READING(me)`, then `head = p + 1` |
//! | `BUSY \| READING \| id` | `READING(id)` | consumer `id` holds message `p` (the unique position of this slot in `[tail - capacity, tail)`) | that consumer: copies the bytes out, stores `EMPTY(p + capacity)`; or a recoverer when `id` is dead: `lost += 1` (unless aborted), `head = max(head, p + 1)`, stores `EMPTY(p + capacity)` |
//!
//! `BUSY` is bit 63 and `READING` bit 62; `id` is a packed process id
//! ([`ProcessId::to_u64`](multiproc_core::ProcessId::to_u64): pid below 2^22,
//! start time's low 32 bits), which fits in the other 62 bits. Using `2p` and
//! `2p + 1` instead of Vyukov's `p` and `p + 1` keeps "full for lap `p`" apart
//! from "empty for lap `p + 1`" when the capacity is 1.
//!
//! Invariants between the words: `head <= tail <= head + capacity`; every
//! position in `[head, tail)` is `WRITING`, `FULL` or `READING` (in that order
//! of time) and every other slot is `EMPTY` for its next position; `tail` is
//! stored by the claiming producer right after its CAS (so it briefly lags a
//! `WRITING` slot), `head` likewise by the claiming consumer.
//!
//! Why the recoverer can name `p` without the dead process's help: the dead
//! producer's CAS read `EMPTY(p)`, which the consumer of `p - capacity` stored
//! after moving `head` past `p - capacity`, and no consumer passes `p` while it
//! is `WRITING`; so `head` (read after the takeover CAS, which synchronizes
//! with both) lies in `(p - capacity, p]`. Symmetrically, `tail` lies in
//! `[p + 1, p + capacity]` while message `p` is `READING`.
//!
//! # Layout
//!
//! | bytes | contents |
//! |---|---|
//! | 0..128 | magic, capacity, slot size, stride, flags, closed, lost count, the `not_empty`, `not_full` and `all_done` event counts, the unfinished-task count |
//! | 128..256 | `head` ([`Line`]) |
//! | 256..384 | `tail` ([`Line`]) |
//! | 384.. | `capacity` slots of `stride` bytes: state (8), length (4), reserved (4), then the data, 16-byte aligned |
//!
//! # Fast path costs
//!
//! A send is one load of `tail`, one load and one CAS of the slot state, a
//! relaxed store of `tail`, the copy, a relaxed store of `len`, one release
//! store of the state and the not-empty notification (a fence and a load; a
//! `FUTEX_WAKE` only if a receiver is parked). A receive is the mirror image.
//!
//! # Trust
//!
//! The capacity, slot size and stride are read once, checked against the
//! memory's length, and kept in the process-local [`RawMpmc`]: nothing
//! another process writes later changes where a slot is. A length read from
//! a slot is checked against the slot size before use; a state word that
//! fits no case above is reported as [`Corrupt`] after the indices were
//! re-read, never followed.

mod claim;
mod recover;
#[cfg(all(test, not(loom)))]
mod tests;

pub use claim::{ReadClaim, WriteClaim};
pub use recover::{Watch, STUCK_AFTER};

use super::{round_slots, ConfigError, Corrupt, Line, Memory, SlotWords, Slots, Slotted};
use crate::error::MessageTooLarge;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use multiproc_core::liveness::Judge;
use multiproc_core::wait::EventCount;
use multiproc_core::IdentityError;

/// `b"IPCMPMC1"` as a little-endian `u64`: the first word of an initialized ring.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCMPMC1");
pub use super::{DATA_ALIGN, MAX_SLOTS as MAX_CAPACITY, MAX_SLOT_SIZE, SLOT_HEADER};

const BUSY: u64 = 1 << 63;
const READING: u64 = 1 << 62;
const ID_MASK: u64 = READING - 1;
/// `len` of a slot whose message was aborted (its producer died or dropped
/// the reservation); consumers skip it.
const ABORTED: u32 = u32::MAX;
const FLAG_JOINABLE: u32 = 1;

/// Line 0: the configuration, shared counters and event counts.
#[repr(C)]
#[derive(Debug, Default)]
struct Words {
    /// Magic, capacity, slot size and stride.
    slots: SlotWords,
    flags: std::sync::atomic::AtomicU32,
    closed: std::sync::atomic::AtomicU32,
    /// Messages claimed but never delivered (aborted sends, dead claimers).
    lost: std::sync::atomic::AtomicU64,
    not_empty: EventCount,
    not_full: EventCount,
    /// Joinable rings: messages put and not yet marked done.
    unfinished: std::sync::atomic::AtomicU64,
    all_done: EventCount,
}

/// The control block at the start of the ring memory (the slots follow):
/// its layout, which the ring reaches word by word through its [`Memory`].
#[repr(C)]
#[derive(Debug, Default)]
pub struct MpmcControl {
    config: Line<Words>,
    head: Line<std::sync::atomic::AtomicU64>,
    tail: Line<std::sync::atomic::AtomicU64>,
}
multiproc_core::assert_layout!(MpmcControl, size = 384, align = 128);

/// The bookkeeping in front of each slot's data.
#[repr(C)]
struct SlotHeader {
    state: std::sync::atomic::AtomicU64,
    len: std::sync::atomic::AtomicU32,
    reserved: std::sync::atomic::AtomicU32,
}
multiproc_core::assert_layout!(SlotHeader, size = SLOT_HEADER, align = 8);

macro_rules! word {
    ($f:ident) => {
        std::mem::offset_of!(MpmcControl, config.0.$f)
    };
}
const FLAGS: usize = word!(flags);
const CLOSED: usize = word!(closed);
const LOST: usize = word!(lost);
const NOT_EMPTY: usize = word!(not_empty);
const NOT_FULL: usize = word!(not_full);
const UNFINISHED: usize = word!(unfinished);
const ALL_DONE: usize = word!(all_done);
const HEAD: usize = std::mem::offset_of!(MpmcControl, head);
const TAIL: usize = std::mem::offset_of!(MpmcControl, tail);
/// Where the first slot starts.
pub const SLOTS: usize = std::mem::size_of::<MpmcControl>();
const LEN: usize = std::mem::offset_of!(SlotHeader, len);

/// The shape of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of slots; rounded up to a power of two by [`Config::new`].
    pub capacity: usize,
    /// The largest message in bytes (a slot's data size).
    pub slot_size: usize,
    /// Whether the ring keeps a count of unfinished tasks (`JoinableQueue`).
    pub joinable: bool,
}

impl Config {
    /// A configuration with `capacity` rounded up to a power of two (0 to 1;
    /// a capacity with no power of two above it stays as given, and is
    /// refused as too large).
    pub fn new(capacity: usize, slot_size: usize) -> Config {
        Config {
            capacity: round_slots(capacity),
            slot_size,
            joinable: false,
        }
    }

    /// The same configuration, joinable or not.
    pub fn joinable(self, joinable: bool) -> Config {
        Config { joinable, ..self }
    }
}

/// The bytes of memory an MPMC ring of `cfg` needs: the control block, then
/// the slots.
///
/// # Errors
/// [`ConfigError`] naming the limit a capacity or slot size exceeds.
pub fn memory_size(cfg: &Config) -> Result<usize, ConfigError> {
    Slots::new(cfg.capacity, cfg.slot_size, SLOTS).map(|(_, size)| size)
}

/// The words a ring of `cfg` uses, for a loom model's memory.
///
/// # Errors
/// As [`memory_size`].
#[cfg(loom)]
pub fn model_layout(cfg: &Config) -> Result<super::model::Layout, ConfigError> {
    let (slots, mut l) = Slots::model_layout(cfg.capacity, cfg.slot_size, SLOTS)?;
    for off in [LOST, UNFINISHED, HEAD, TAIL] {
        l = l.u64(off);
    }
    l = l.u32(FLAGS).u32(CLOSED);
    for slot in slots.each() {
        let data = slot + SLOT_HEADER;
        l = l
            .u64(slot)
            .u32(slot + LEN)
            .payload(data..data + cfg.slot_size, false);
    }
    Ok(l)
}

/// Why a raw operation did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawError {
    /// No free slot (send).
    Full,
    /// No published message (receive).
    Empty,
    /// The slot needed is claimed by a live process that has not finished
    /// with it within the spin budget.
    Busy,
    /// The ring was closed (send only; receives drain first).
    Closed,
    /// The message is larger than a slot.
    TooLarge(MessageTooLarge),
    /// The next message is larger than the caller's limit; it stays queued.
    TooLong {
        /// Its length.
        needed: usize,
    },
    /// Shared state fits no case of the protocol.
    Corrupt(Corrupt),
    /// This process cannot learn its own identity, which a claim records;
    /// nothing was claimed.
    UnknownIdentity(IdentityError),
}

/// A ring attached in some memory, with the geometry read (and checked)
/// when attaching. Cheap to share between threads; every process attaches
/// its own.
#[derive(Clone, Debug)]
pub struct RawMpmc<M> {
    at: Slotted<M>,
    joinable: bool,
}

impl<M: Memory> RawMpmc<M> {
    /// Writes a fresh ring of `cfg` into `mem` and attaches it.
    ///
    /// # Errors
    /// [`ConfigError`] for a configuration out of range or larger than
    /// `mem`.
    pub fn init(mem: M, cfg: &Config) -> Result<RawMpmc<M>, ConfigError> {
        let ring = RawMpmc {
            at: Slotted::fresh(mem, cfg.capacity, cfg.slot_size, SLOTS)?,
            joinable: cfg.joinable,
        };
        for i in 0..ring.at.slots.cap {
            ring.state(i).store(2 * i, Ordering::Relaxed);
        }
        let flags = if cfg.joinable { FLAG_JOINABLE } else { 0 };
        ring.at.word32(FLAGS).store(flags, Ordering::Relaxed);
        ring.at.publish(MAGIC);
        Ok(ring)
    }

    /// Attaches to a ring that [`RawMpmc::init`] wrote into `mem` (in any
    /// process), after checking its control block.
    ///
    /// # Errors
    /// [`Corrupt`] naming the field that does not describe a ring fitting
    /// in the memory.
    pub fn attach(mem: M) -> Result<RawMpmc<M>, Corrupt> {
        Ok(RawMpmc::with(Slotted::attach(mem, MAGIC, SLOTS)?))
    }

    /// The ring in `mem` as [`RawMpmc::attach`] finds it; or, if its control
    /// block no longer passes the checks (a peer rewrote it after an attach
    /// of the same memory succeeded), a ring of one slot of 0 bytes, which
    /// fits in any memory `attach` accepted. For handles made from an attach
    /// that already succeeded, which cannot fail.
    #[cfg(not(loom))]
    pub(crate) fn attach_or_smallest(mem: M) -> RawMpmc<M> {
        RawMpmc::with(Slotted::attach_or_smallest(mem, MAGIC, SLOTS))
    }

    fn with(at: Slotted<M>) -> RawMpmc<M> {
        let joinable = at.word32(FLAGS).load(Ordering::Relaxed) & FLAG_JOINABLE != 0;
        RawMpmc { at, joinable }
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.at.mem
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.at.slots.cap as usize
    }

    /// The largest message in bytes.
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.at.slots.slot_size
    }

    /// Whether the ring counts unfinished tasks.
    #[inline]
    pub fn is_joinable(&self) -> bool {
        self.joinable
    }

    #[inline(always)]
    fn head(&self) -> &AtomicU64 {
        self.at.word(HEAD)
    }

    #[inline(always)]
    fn tail(&self) -> &AtomicU64 {
        self.at.word(TAIL)
    }

    /// The state word of the slot serving `pos`.
    #[inline(always)]
    fn state(&self, pos: u64) -> &AtomicU64 {
        self.at.slot_word(pos, 0)
    }

    /// The length word of the slot serving `pos`.
    #[inline(always)]
    fn len_word(&self, pos: u64) -> &AtomicU32 {
        self.at.slot_word32(pos, LEN)
    }

    /// The state word of the slot at offset `slot`.
    #[inline(always)]
    fn state_in(&self, slot: usize) -> &AtomicU64 {
        self.at.word_in(slot, 0)
    }

    /// The length word of the slot at offset `slot`.
    #[inline(always)]
    fn len_in(&self, slot: usize) -> &AtomicU32 {
        self.at.word32_in(slot, LEN)
    }

    /// Messages claimed but never delivered: sends aborted by a dead or
    /// panicking producer, and messages a consumer died holding.
    pub fn lost(&self) -> u64 {
        self.at.word(LOST).load(Ordering::Relaxed)
    }

    /// Closes the ring for every process and wakes all waiters.
    pub fn close(&self) {
        self.at.word32(CLOSED).store(1, Ordering::Release);
        for event in [NOT_EMPTY, NOT_FULL, ALL_DONE] {
            self.at.notify(event);
        }
    }

    /// Whether [`RawMpmc::close`] was called (by any process).
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.at.word32(CLOSED).load(Ordering::Acquire) != 0
    }

    /// Messages in the ring now (an instantaneous estimate, clamped to
    /// `0..=capacity`).
    pub fn len(&self) -> usize {
        let head = self.head().load(Ordering::Acquire);
        let tail = self.tail().load(Ordering::Acquire);
        tail.saturating_sub(head).min(self.at.slots.cap) as usize
    }

    /// Whether [`RawMpmc::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`RawMpmc::len`] is the capacity.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Joinable rings: one more unfinished task (call before sending).
    pub fn unfinished_inc(&self) {
        self.at.word(UNFINISHED).fetch_add(1, Ordering::AcqRel);
    }

    /// Joinable rings: one task fewer. Returns `false` (and changes nothing)
    /// if the count is already zero.
    pub fn unfinished_dec(&self) -> bool {
        if !self.is_joinable() {
            return true;
        }
        let r = self
            .at
            .word(UNFINISHED)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        match r {
            Ok(1) => {
                self.at.notify(ALL_DONE);
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Joinable rings: tasks put and not yet done.
    pub fn unfinished(&self) -> u64 {
        self.at.word(UNFINISHED).load(Ordering::Acquire)
    }
}

#[cfg(not(loom))]
impl<M: super::Addressable> RawMpmc<M> {
    /// The event receivers wait on.
    pub fn not_empty(&self) -> &EventCount {
        self.at.event(NOT_EMPTY)
    }

    /// The event senders wait on.
    pub fn not_full(&self) -> &EventCount {
        self.at.event(NOT_FULL)
    }

    /// The event `join` waits on.
    pub fn all_done(&self) -> &EventCount {
        self.at.event(ALL_DONE)
    }
}

/// The caller as a claim records it.
#[inline]
fn my_id<J: Judge>(judge: &J) -> Result<u64, RawError> {
    judge
        .me()
        .map(|id| id & ID_MASK)
        .map_err(RawError::UnknownIdentity)
}
