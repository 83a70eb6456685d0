//! The MPMC ring algorithm over caller-provided memory, with recovery from
//! processes that die mid-operation.
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
//! a busy value holding the claimer's packed [`ProcessId`]. A waiter that
//! finds a slot busy for longer than its spin budget reads `/proc` for that
//! process (slow path only); if it is dead, the waiter takes the claim over
//! with a second CAS and finishes it for the dead process.
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
//! `BUSY` is bit 63 and `READING` bit 62; `id` is [`ProcessId::to_u64`] (pid
//! below 2^22, start time's low 32 bits), which fits in the other 62 bits.
//! Using `2p` and `2p + 1` instead of Vyukov's `p` and `p + 1` keeps "full for
//! lap `p`" apart from "empty for lap `p + 1`" when the capacity is 1.
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
//! memory's length, and kept in the endpoint: nothing another process writes
//! later changes where a slot is. A length read from a slot is checked against
//! the slot size before use; a state word that fits no case above is reported
//! as [`Corrupt`] after the indices were re-read, never followed.

use crate::error::{Corrupt, MessageTooLarge};
use ipc_core::liveness::Liveness;
use ipc_core::wait::EventCount;
use ipc_core::{IdentityError, ProcessId};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `b"IPCMPMC1"` as a little-endian `u64`: the first word of an initialized ring.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCMPMC1");
/// The largest capacity accepted (slots).
pub const MAX_CAPACITY: usize = 1 << 30;
/// The largest slot size accepted (bytes).
pub const MAX_SLOT_SIZE: usize = 1 << 30;
/// Bytes of bookkeeping in front of each slot's data (state and length).
pub const SLOT_HEADER: usize = 16;
/// Alignment of each slot's data, and so the largest alignment a typed
/// message may have.
pub const DATA_ALIGN: usize = 16;
/// How long a slot may stay claimed, as seen by one waiter, before that waiter
/// checks whether the claimer is still alive.
pub const STUCK_AFTER: Duration = Duration::from_micros(200);
/// The longest interval between two liveness checks of the same live claimer.
const MAX_CHECK_INTERVAL: Duration = Duration::from_millis(20);

const BUSY: u64 = 1 << 63;
const READING: u64 = 1 << 62;
const ID_MASK: u64 = READING - 1;
/// `len` of a slot whose message was aborted (its producer died or dropped
/// the reservation); consumers skip it.
const ABORTED: u32 = u32::MAX;
/// Re-reads of an unchanged index that saw a state word fitting no case
/// before the ring is declared corrupt.
const INCONSISTENT_LIMIT: u32 = 1 << 14;
/// Rereads `index` after the slot at `pos` showed the state `s`, which
/// fits no case for that position. A moved index is the normal race (another
/// claimer went first): its new value is returned. An index that has not
/// moved while the state still fits nothing counts towards
/// [`INCONSISTENT_LIMIT`], past which the ring is corrupt (`what`).
#[inline]
fn reread(
    index: &AtomicU64,
    pos: u64,
    s: u64,
    inconsistent: &mut u32,
    what: &'static str,
) -> Result<u64, RawError> {
    let now = index.load(Ordering::Relaxed);
    if now == pos {
        *inconsistent += 1;
        if *inconsistent >= INCONSISTENT_LIMIT {
            return Err(RawError::Corrupt(Corrupt::new(what, s)));
        }
        std::hint::spin_loop();
    } else {
        *inconsistent = 0;
    }
    Ok(now)
}

/// The calling process as a claim records it.
#[inline]
fn my_id() -> Result<u64, RawError> {
    ProcessId::current()
        .map(|p| p.to_u64() & ID_MASK)
        .map_err(RawError::UnknownIdentity)
}

/// Loop iterations one `try_` call may spend before it gives up with
/// [`RawError::Busy`]. Only a peer that keeps rewriting the indices (a
/// hostile or corrupt one) gets near it; it keeps every call finite.
const ITERATION_LIMIT: u32 = 1 << 20;
/// Claims one call may recover before it gives up with [`RawError::Busy`].
const RECOVERY_LIMIT: u32 = 64;

const FLAG_JOINABLE: u32 = 1;

const CONTROL_SIZE: usize = 128;
const HEAD_OFFSET: usize = CONTROL_SIZE;
const TAIL_OFFSET: usize = CONTROL_SIZE + 128;
const SLOTS_OFFSET: usize = CONTROL_SIZE + 256;

/// The control block at the start of the ring memory.
#[repr(C, align(128))]
struct Control {
    magic: AtomicU64,
    capacity: AtomicU64,
    slot_size: AtomicU64,
    stride: AtomicU64,
    flags: AtomicU32,
    closed: AtomicU32,
    /// Messages claimed but never delivered (aborted sends, dead claimers).
    lost: AtomicU64,
    not_empty: EventCount,
    not_full: EventCount,
    /// Joinable rings: messages put and not yet marked done.
    unfinished: AtomicU64,
    all_done: EventCount,
}
ipc_core::assert_layout!(Control, size = 128, align = 128);

/// An index on a line of its own: 128 bytes, because the x86-64 prefetcher
/// pulls cache lines in pairs, so 64 bytes apart is not far enough.
#[repr(C, align(128))]
struct Line {
    pos: AtomicU64,
}
ipc_core::assert_layout!(Line, size = 128, align = 128);

#[repr(C)]
struct SlotHeader {
    state: AtomicU64,
    len: AtomicU32,
    reserved: AtomicU32,
}
ipc_core::assert_layout!(SlotHeader, size = SLOT_HEADER, align = 8);

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
            capacity: capacity
                .max(1)
                .checked_next_power_of_two()
                .unwrap_or(capacity),
            slot_size,
            joinable: false,
        }
    }

    /// The same configuration, joinable or not.
    pub fn joinable(self, joinable: bool) -> Config {
        Config { joinable, ..self }
    }

    fn check(&self) -> Result<usize, &'static str> {
        if self.capacity == 0 {
            return Err("capacity is zero: a ring holds 1 to 2^30 slots");
        }
        if self.capacity > MAX_CAPACITY {
            return Err("capacity is larger than 2^30 slots, the largest a ring holds");
        }
        if !self.capacity.is_power_of_two() {
            return Err("capacity must be a power of two");
        }
        if self.slot_size > MAX_SLOT_SIZE {
            return Err("slot size is larger than 2^30 bytes");
        }
        let stride = stride_of(self.slot_size);
        stride
            .checked_mul(self.capacity)
            .and_then(|s| s.checked_add(SLOTS_OFFSET))
            .filter(|&s| s <= isize::MAX as usize / 2)
            .ok_or("ring is larger than the address space allows")
    }
}

fn stride_of(slot_size: usize) -> usize {
    (SLOT_HEADER + slot_size).div_ceil(DATA_ALIGN) * DATA_ALIGN
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

/// What one waiter has seen of a claimed slot, so it checks the claimer's
/// liveness only after the slot stayed claimed for [`STUCK_AFTER`], and then
/// at growing intervals. Keep one per blocking call.
#[derive(Debug)]
pub struct Watch {
    key: (u64, u64),
    since: Option<Instant>,
    next_check: Duration,
    checked: bool,
    recovered: u32,
}

impl Default for Watch {
    fn default() -> Self {
        Watch::new()
    }
}

enum Verdict {
    Spin,
    Yield,
    Check,
    GiveUp,
}

/// Past this, a waiter behind a claimed slot yields instead of spinning: the
/// claimer is probably descheduled and may need this very CPU.
const YIELD_AFTER: Duration = Duration::from_micros(20);

impl Watch {
    /// A watch that has seen nothing yet.
    pub const fn new() -> Watch {
        Watch {
            key: (u64::MAX, 0),
            since: None,
            next_check: STUCK_AFTER,
            checked: false,
            recovered: 0,
        }
    }

    #[cold]
    fn observe(&mut self, idx: u64, state: u64) -> Verdict {
        let now = Instant::now();
        if self.key != (idx, state) || self.since.is_none() {
            self.key = (idx, state);
            self.since = Some(now);
            self.next_check = STUCK_AFTER;
            self.checked = false;
            return Verdict::Spin;
        }
        let since = self.since.unwrap_or(now);
        let waited = now.saturating_duration_since(since);
        if waited >= self.next_check {
            self.next_check = waited + (self.next_check * 2).min(MAX_CHECK_INTERVAL);
            self.checked = true;
            Verdict::Check
        } else if self.checked {
            Verdict::GiveUp
        } else if waited >= YIELD_AFTER {
            Verdict::Yield
        } else {
            Verdict::Spin
        }
    }
}

/// A ring placed in caller memory. Cheap to share between threads (`Sync`);
/// every process maps the memory and attaches its own `RawMpmc`.
#[derive(Debug)]
pub struct RawMpmc {
    base: NonNull<u8>,
    cap: u64,
    mask: u64,
    slot_size: usize,
    stride: usize,
    joinable: bool,
}

// SAFETY: `RawMpmc` only holds the address of memory that is shared by design;
// every access to it is atomic, or to slot bytes owned through a claim.
unsafe impl Send for RawMpmc {}
// SAFETY: as above: concurrent use from several threads is the point, and all
// shared words are atomics.
unsafe impl Sync for RawMpmc {}

impl RawMpmc {
    /// The bytes of memory a ring of this configuration needs.
    ///
    /// # Errors
    /// A message naming what is wrong with the configuration.
    pub fn memory_size(cfg: &Config) -> Result<usize, &'static str> {
        cfg.check()
    }

    /// Initializes a ring in `len` bytes at `ptr`.
    ///
    /// # Errors
    /// The configuration is invalid, `len` is too small or `ptr` is not
    /// 128-byte aligned.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as
    /// the returned value (and any attached to the same memory) is used, and
    /// nobody else may use the memory while it is initialized.
    pub unsafe fn init_in(
        ptr: NonNull<u8>,
        len: usize,
        cfg: &Config,
    ) -> Result<RawMpmc, &'static str> {
        let need = cfg.check()?;
        if len < need {
            return Err("memory is smaller than the ring needs");
        }
        if !(ptr.as_ptr() as usize).is_multiple_of(128) {
            return Err("ring memory must be 128-byte aligned");
        }
        // SAFETY: the caller gives exclusive access to `len >= need` bytes.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, need) };
        let ring = RawMpmc {
            base: ptr,
            cap: cfg.capacity as u64,
            mask: cfg.capacity as u64 - 1,
            slot_size: cfg.slot_size,
            stride: stride_of(cfg.slot_size),
            joinable: cfg.joinable,
        };
        for i in 0..ring.cap {
            ring.slot(i).state.store(2 * i, Ordering::Relaxed);
        }
        let c = ring.control();
        c.capacity.store(ring.cap, Ordering::Relaxed);
        c.slot_size.store(cfg.slot_size as u64, Ordering::Relaxed);
        c.stride.store(ring.stride as u64, Ordering::Relaxed);
        c.flags.store(
            if cfg.joinable { FLAG_JOINABLE } else { 0 },
            Ordering::Relaxed,
        );
        c.magic.store(MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Attaches to a ring that [`RawMpmc::init_in`] initialized in this
    /// memory (in any process), after checking its control block.
    ///
    /// # Errors
    /// [`Corrupt`] naming the field that does not describe a ring fitting
    /// in `len` bytes.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as
    /// the returned value is used.
    pub unsafe fn attach(ptr: NonNull<u8>, len: usize) -> Result<RawMpmc, Corrupt> {
        if !(ptr.as_ptr() as usize).is_multiple_of(128) || len < SLOTS_OFFSET {
            return Err(Corrupt::new(
                "ring memory is misaligned or too small",
                len as u64,
            ));
        }
        // SAFETY: `len >= CONTROL_SIZE` and the pointer is 128-aligned; every
        // field of `Control` is an atomic valid for any bit pattern.
        let c = unsafe { &*(ptr.as_ptr() as *const Control) };
        let magic = c.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(Corrupt::new("bad ring magic", magic));
        }
        let cap = c.capacity.load(Ordering::Relaxed);
        let slot_size = c.slot_size.load(Ordering::Relaxed);
        let stride = c.stride.load(Ordering::Relaxed);
        let cfg = Config {
            capacity: usize::try_from(cap).unwrap_or(0),
            slot_size: usize::try_from(slot_size).unwrap_or(usize::MAX),
            joinable: false,
        };
        let need = cfg.check().map_err(|what| Corrupt::new(what, cap))?;
        if stride != stride_of(cfg.slot_size) as u64 {
            return Err(Corrupt::new(
                "slot stride does not match the slot size",
                stride,
            ));
        }
        if need > len {
            return Err(Corrupt::new("ring is larger than its memory", need as u64));
        }
        Ok(RawMpmc {
            base: ptr,
            cap,
            mask: cap - 1,
            slot_size: cfg.slot_size,
            stride: stride as usize,
            joinable: c.flags.load(Ordering::Relaxed) & FLAG_JOINABLE != 0,
        })
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest message in bytes.
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Whether the ring counts unfinished tasks.
    #[inline]
    pub fn is_joinable(&self) -> bool {
        self.joinable
    }

    #[inline]
    fn control(&self) -> &Control {
        // SAFETY: `attach`/`init_in` checked that the memory holds at least
        // `SLOTS_OFFSET` bytes at a 128-aligned address; `Control` is atomics.
        unsafe { &*(self.base.as_ptr() as *const Control) }
    }

    #[inline]
    fn head(&self) -> &AtomicU64 {
        // SAFETY: `HEAD_OFFSET + 128 <= SLOTS_OFFSET <= len`, 128-aligned.
        unsafe { &(*(self.base.as_ptr().add(HEAD_OFFSET) as *const Line)).pos }
    }

    #[inline]
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: `TAIL_OFFSET + 128 <= SLOTS_OFFSET <= len`, 128-aligned.
        unsafe { &(*(self.base.as_ptr().add(TAIL_OFFSET) as *const Line)).pos }
    }

    /// The slot serving position `pos`. All slot addressing goes through here.
    #[inline]
    fn slot_ptr(&self, pos: u64) -> *mut u8 {
        let idx = (pos & self.mask) as usize;
        // SAFETY: `idx < cap`, and `SLOTS_OFFSET + cap * stride` was checked
        // against the memory's length when attaching, with values kept here.
        unsafe { self.base.as_ptr().add(SLOTS_OFFSET + idx * self.stride) }
    }

    #[inline]
    fn slot(&self, pos: u64) -> &SlotHeader {
        // SAFETY: `slot_ptr` is in bounds and 16-aligned (the base is
        // 128-aligned, offsets and strides are multiples of 16); the header is
        // atomics, valid for any bit pattern.
        unsafe { &*(self.slot_ptr(pos) as *const SlotHeader) }
    }

    #[inline]
    fn data_ptr(&self, pos: u64) -> *mut u8 {
        // SAFETY: the data follows the 16-byte slot header inside the stride.
        unsafe { self.slot_ptr(pos).add(SLOT_HEADER) }
    }

    /// Messages claimed but never delivered: sends aborted by a dead or
    /// panicking producer, and messages a consumer died holding.
    pub fn lost(&self) -> u64 {
        self.control().lost.load(Ordering::Relaxed)
    }

    /// Closes the ring for every process and wakes all waiters.
    pub fn close(&self) {
        self.control().closed.store(1, Ordering::Release);
        self.control().not_empty.notify_all();
        self.control().not_full.notify_all();
        self.control().all_done.notify_all();
    }

    /// Whether [`RawMpmc::close`] was called (by any process).
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.control().closed.load(Ordering::Acquire) != 0
    }

    /// Messages in the ring now (an instantaneous estimate, clamped to
    /// `0..=capacity`).
    pub fn len(&self) -> usize {
        let head = self.head().load(Ordering::Acquire);
        let tail = self.tail().load(Ordering::Acquire);
        tail.saturating_sub(head).min(self.cap) as usize
    }

    /// Whether [`RawMpmc::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`RawMpmc::len`] is the capacity.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// The event receivers wait on.
    pub fn not_empty(&self) -> &EventCount {
        &self.control().not_empty
    }

    /// The event senders wait on.
    pub fn not_full(&self) -> &EventCount {
        &self.control().not_full
    }

    /// Claims a slot for a message of `len` bytes without blocking (it spins
    /// at most [`STUCK_AFTER`] behind a peer that holds the slot it needs).
    ///
    /// # Errors
    /// [`RawError::Full`], [`RawError::Busy`], [`RawError::Closed`],
    /// [`RawError::TooLarge`], [`RawError::Corrupt`],
    /// [`RawError::UnknownIdentity`].
    #[inline]
    pub fn try_claim_send(
        &self,
        len: usize,
        watch: &mut Watch,
    ) -> Result<WriteClaim<'_>, RawError> {
        if len > self.slot_size {
            return Err(RawError::TooLarge(MessageTooLarge {
                len,
                max: self.slot_size,
            }));
        }
        if self.is_closed() {
            return Err(RawError::Closed);
        }
        let me = my_id()?;
        let tail = self.tail();
        let mut pos = tail.load(Ordering::Relaxed);
        let mut inconsistent = 0u32;
        let mut iterations = 0u32;
        loop {
            iterations += 1;
            if iterations > ITERATION_LIMIT {
                return Err(RawError::Busy);
            }
            let slot = self.slot(pos);
            let s = slot.state.load(Ordering::Acquire);
            let empty = pos.wrapping_mul(2);
            if s == empty {
                match slot.state.compare_exchange_weak(
                    s,
                    BUSY | me,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        tail.store(pos.wrapping_add(1), Ordering::Relaxed);
                        return Ok(WriteClaim {
                            ring: self,
                            pos,
                            len,
                            done: false,
                        });
                    }
                    Err(_) => {
                        pos = tail.load(Ordering::Relaxed);
                        continue;
                    }
                }
            }
            if s & BUSY != 0 {
                self.busy(pos, s, watch)?;
                pos = tail.load(Ordering::Relaxed);
                continue;
            }
            if s == empty.wrapping_sub(2 * self.cap).wrapping_add(1) {
                // The slot still holds the message of the previous lap.
                fence(Ordering::SeqCst);
                let head = self.head().load(Ordering::Relaxed);
                if head.wrapping_add(self.cap) == pos {
                    return Err(RawError::Full);
                }
            }
            pos = reread(
                tail,
                pos,
                s,
                &mut inconsistent,
                "slot state does not match the tail",
            )?;
        }
    }

    /// Claims the next message without blocking, if it is at most `max_len`
    /// bytes long (a longer one stays queued: [`RawError::TooLong`]).
    /// Aborted messages are skipped.
    ///
    /// # Errors
    /// [`RawError::Empty`], [`RawError::Busy`], [`RawError::TooLong`],
    /// [`RawError::Corrupt`], [`RawError::UnknownIdentity`]. A closed ring
    /// still hands out what it holds.
    #[inline]
    pub fn try_claim_recv(
        &self,
        max_len: usize,
        watch: &mut Watch,
    ) -> Result<ReadClaim<'_>, RawError> {
        let me = my_id()?;
        let head = self.head();
        let mut pos = head.load(Ordering::Relaxed);
        let mut inconsistent = 0u32;
        let mut iterations = 0u32;
        loop {
            iterations += 1;
            if iterations > ITERATION_LIMIT {
                return Err(RawError::Busy);
            }
            let slot = self.slot(pos);
            let s = slot.state.load(Ordering::Acquire);
            let full = pos.wrapping_mul(2).wrapping_add(1);
            if s == full {
                let len = slot.len.load(Ordering::Relaxed);
                if len != ABORTED && len as usize > max_len && len as usize <= self.slot_size {
                    return Err(RawError::TooLong {
                        needed: len as usize,
                    });
                }
                match slot.state.compare_exchange_weak(
                    s,
                    BUSY | READING | me,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        head.store(pos.wrapping_add(1), Ordering::Relaxed);
                        // Unchanged since the load above: only a producer of
                        // the next lap writes `len`, after our release.
                        let len = slot.len.load(Ordering::Relaxed);
                        let claim = ReadClaim {
                            ring: self,
                            pos,
                            len: (len as usize).min(self.slot_size),
                        };
                        if len == ABORTED {
                            drop(claim);
                            pos = head.load(Ordering::Relaxed);
                            continue;
                        }
                        if len as usize > self.slot_size {
                            drop(claim);
                            return Err(RawError::Corrupt(Corrupt::new(
                                "message length exceeds the slot size",
                                u64::from(len),
                            )));
                        }
                        return Ok(claim);
                    }
                    Err(_) => {
                        pos = head.load(Ordering::Relaxed);
                        continue;
                    }
                }
            }
            if s & BUSY != 0 {
                self.busy(pos, s, watch)?;
                pos = head.load(Ordering::Relaxed);
                continue;
            }
            if s == full.wrapping_sub(1) {
                // Nobody has claimed position `pos` yet.
                fence(Ordering::SeqCst);
                let tail = self.tail().load(Ordering::Relaxed);
                if tail == pos {
                    return Err(RawError::Empty);
                }
            }
            pos = reread(
                head,
                pos,
                s,
                &mut inconsistent,
                "slot state does not match the head",
            )?;
        }
    }

    /// A slot needed at `pos` is claimed (`state`): spin, check the claimer,
    /// or give up with [`RawError::Busy`].
    #[cold]
    fn busy(&self, pos: u64, state: u64, watch: &mut Watch) -> Result<(), RawError> {
        match watch.observe(pos & self.mask, state) {
            Verdict::Spin => {
                std::hint::spin_loop();
                Ok(())
            }
            Verdict::Yield => {
                std::thread::yield_now();
                Ok(())
            }
            Verdict::GiveUp => Err(RawError::Busy),
            Verdict::Check => {
                if watch.recovered < RECOVERY_LIMIT && self.recover(pos, state) {
                    let recovered = watch.recovered + 1;
                    *watch = Watch::new();
                    watch.recovered = recovered;
                    Ok(())
                } else {
                    Err(RawError::Busy)
                }
            }
        }
    }

    /// If the claimer recorded in `state` (the state of the slot serving
    /// `pos`) is dead, takes its claim over and finishes it. Returns whether
    /// the slot changed (recovered here or moved on meanwhile).
    #[cold]
    fn recover(&self, pos: u64, state: u64) -> bool {
        let slot = self.slot(pos);
        let owner = state & ID_MASK;
        // Without an identity of its own this process cannot take a claim
        // over (it would have to record itself): leave it to another waiter.
        let Ok(me) = my_id() else {
            return false;
        };
        if owner == me || ProcessId::liveness_packed(owner) == Liveness::Alive {
            return slot.state.load(Ordering::Acquire) != state;
        }
        let takeover = (state & (BUSY | READING)) | me;
        if slot
            .state
            .compare_exchange(state, takeover, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return true;
        }
        let idx = pos & self.mask;
        let c = self.control();
        if state & READING == 0 {
            // A producer died between its claim and its publication.
            let head = self.head().load(Ordering::Acquire);
            let p = head.wrapping_add(idx.wrapping_sub(head) & self.mask);
            slot.len.store(ABORTED, Ordering::Relaxed);
            c.lost.fetch_add(1, Ordering::Relaxed);
            self.unfinished_dec();
            self.tail().fetch_max(p.wrapping_add(1), Ordering::AcqRel);
            slot.state
                .store(p.wrapping_mul(2).wrapping_add(1), Ordering::Release);
            c.not_empty.notify_all();
            log::warn!(
                "mpmc: producer {} died holding position {p}; message marked lost",
                owner >> 32
            );
        } else {
            // A consumer died between its claim and its release.
            let tail = self.tail().load(Ordering::Acquire);
            let lo = tail.wrapping_sub(self.cap);
            let p = lo.wrapping_add(idx.wrapping_sub(lo) & self.mask);
            if slot.len.load(Ordering::Relaxed) != ABORTED {
                c.lost.fetch_add(1, Ordering::Relaxed);
                self.unfinished_dec();
            }
            self.head().fetch_max(p.wrapping_add(1), Ordering::AcqRel);
            slot.state
                .store(p.wrapping_add(self.cap).wrapping_mul(2), Ordering::Release);
            c.not_full.notify_all();
            log::warn!(
                "mpmc: consumer {} died holding message {p}; message counted lost",
                owner >> 32
            );
        }
        true
    }

    /// Finds every slot claimed by a dead process and finishes its claim
    /// (as a waiter on that slot would); returns how many it recovered.
    /// Costs a `/proc` read per claimed slot: call it on a slow path, e.g.
    /// while waiting for something no live process may be about to do.
    pub fn sweep(&self) -> u64 {
        let mut n = 0;
        for idx in 0..self.cap {
            let s = self.slot(idx).state.load(Ordering::Acquire);
            if s & BUSY != 0 {
                let owner = s & ID_MASK;
                if ProcessId::liveness_packed(owner) == Liveness::Dead && self.recover(idx, s) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Joinable rings: one more unfinished task (call before sending).
    pub fn unfinished_inc(&self) {
        self.control().unfinished.fetch_add(1, Ordering::AcqRel);
    }

    /// Joinable rings: one task fewer. Returns `false` (and changes nothing)
    /// if the count is already zero.
    pub fn unfinished_dec(&self) -> bool {
        if !self.is_joinable() {
            return true;
        }
        let c = self.control();
        let r = c
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        match r {
            Ok(1) => {
                c.all_done.notify_all();
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Joinable rings: tasks put and not yet done.
    pub fn unfinished(&self) -> u64 {
        self.control().unfinished.load(Ordering::Acquire)
    }

    /// The event `join` waits on.
    pub fn all_done(&self) -> &EventCount {
        &self.control().all_done
    }
}

/// A claimed slot for one outgoing message. [`WriteClaim::commit`] publishes
/// it; dropping it uncommitted publishes an aborted message that receivers
/// skip (counted in [`RawMpmc::lost`]). Leaking it (`mem::forget`) leaves the
/// slot claimed by a live process: the ring stops at that slot until this
/// process exits.
#[derive(Debug)]
pub struct WriteClaim<'a> {
    ring: &'a RawMpmc,
    pos: u64,
    len: usize,
    done: bool,
}

impl WriteClaim<'_> {
    /// The message bytes, in place in the slot (`len` bytes, initially
    /// holding whatever the slot held before).
    #[inline]
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: the claim gives this endpoint the slot's data until it
        // publishes; `len <= slot_size` was checked, so the range lies inside
        // the slot. A peer breaking the protocol can only change bytes, for
        // which every value is valid.
        unsafe { std::slice::from_raw_parts_mut(self.ring.data_ptr(self.pos), self.len) }
    }

    /// A raw pointer to the message bytes (16-byte aligned).
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ring.data_ptr(self.pos)
    }

    /// Publishes the message.
    #[inline]
    pub fn commit(mut self) {
        self.publish(self.len as u32);
    }

    #[inline]
    fn publish(&mut self, len: u32) {
        self.done = true;
        let slot = self.ring.slot(self.pos);
        slot.len.store(len, Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire load of the state in
        // `try_claim_recv`; the bytes and `len` are visible to the consumer.
        slot.state
            .store(self.pos.wrapping_mul(2).wrapping_add(1), Ordering::Release);
        self.ring.control().not_empty.notify_all();
    }
}

impl Drop for WriteClaim<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.ring.control().lost.fetch_add(1, Ordering::Relaxed);
            self.ring.unfinished_dec();
            self.publish(ABORTED);
        }
    }
}

/// A claimed message. Dropping it releases the slot to producers (also when
/// a panic unwinds through it: the message counts as delivered). Leaking it
/// leaves the slot claimed until this process exits.
#[derive(Debug)]
pub struct ReadClaim<'a> {
    ring: &'a RawMpmc,
    pos: u64,
    len: usize,
}

impl ReadClaim<'_> {
    /// The message bytes, in place in the slot.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the claim gives this endpoint the slot until it releases;
        // `len <= slot_size` was checked. Bytes have no invalid values.
        unsafe { std::slice::from_raw_parts(self.ring.data_ptr(self.pos), self.len) }
    }

    /// A raw pointer to the message bytes (16-byte aligned).
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.ring.data_ptr(self.pos)
    }

    /// The message length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message's position in the ring (0 for the first message ever).
    #[inline]
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Drop for ReadClaim<'_> {
    #[inline]
    fn drop(&mut self) {
        let next = self.pos.wrapping_add(self.ring.cap).wrapping_mul(2);
        // SYNC POINT: pairs with the Acquire load of the state in
        // `try_claim_send`; our reads of the bytes happen before the next
        // producer's writes.
        self.ring
            .slot(self.pos)
            .state
            .store(next, Ordering::Release);
        self.ring.control().not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 128-aligned heap memory for a ring.
    pub(crate) struct Mem {
        buf: Vec<u128>,
        len: usize,
    }

    impl Mem {
        pub(crate) fn new(len: usize) -> Mem {
            Mem {
                buf: vec![0u128; len.div_ceil(16) + 8],
                len,
            }
        }
        pub(crate) fn ptr(&mut self) -> NonNull<u8> {
            let p = self.buf.as_mut_ptr() as *mut u8;
            let off = p.align_offset(128);
            // SAFETY: 8 spare u128s (128 bytes) cover the alignment offset.
            NonNull::new(unsafe { p.add(off) }).unwrap()
        }
    }

    fn ring(cap: usize, slot: usize) -> (Mem, RawMpmc) {
        let cfg = Config::new(cap, slot);
        let size = RawMpmc::memory_size(&cfg).unwrap();
        let mut mem = Mem::new(size);
        // SAFETY: the memory lives as long as the returned ring (both moved
        // out together; the Vec's heap buffer does not move).
        let r = unsafe { RawMpmc::init_in(mem.ptr(), mem.len, &cfg) }.unwrap();
        (mem, r)
    }

    fn send(r: &RawMpmc, msg: &[u8]) -> Result<(), RawError> {
        let mut c = r.try_claim_send(msg.len(), &mut Watch::new())?;
        c.buf().copy_from_slice(msg);
        c.commit();
        Ok(())
    }

    fn recv(r: &RawMpmc) -> Result<Vec<u8>, RawError> {
        let c = r.try_claim_recv(usize::MAX, &mut Watch::new())?;
        Ok(c.bytes().to_vec())
    }

    #[test]
    fn fifo_wraps_and_reports_full_and_empty() {
        for cap in [1, 2, 4] {
            let (_m, r) = ring(cap, 8);
            for round in 0..5u8 {
                for i in 0..cap as u8 {
                    send(&r, &[round, i]).unwrap();
                }
                assert_eq!(send(&r, b"x"), Err(RawError::Full));
                assert_eq!(r.len(), cap);
                for i in 0..cap as u8 {
                    assert_eq!(recv(&r).unwrap(), vec![round, i]);
                }
                assert_eq!(recv(&r), Err(RawError::Empty));
            }
        }
    }

    #[test]
    fn too_large_and_too_long() {
        let (_m, r) = ring(2, 4);
        assert!(matches!(send(&r, b"12345"), Err(RawError::TooLarge(_))));
        send(&r, b"1234").unwrap();
        assert!(matches!(
            r.try_claim_recv(2, &mut Watch::new()),
            Err(RawError::TooLong { needed: 4 })
        ));
        assert_eq!(recv(&r).unwrap(), b"1234");
    }

    #[test]
    fn dropped_reservation_is_skipped_and_counted() {
        let (_m, r) = ring(4, 4);
        drop(r.try_claim_send(3, &mut Watch::new()).unwrap());
        send(&r, b"ok").unwrap();
        assert_eq!(recv(&r).unwrap(), b"ok");
        assert_eq!(r.lost(), 1);
        assert_eq!(recv(&r), Err(RawError::Empty));
    }

    #[test]
    fn a_dead_producers_claim_is_recovered() {
        let (_m, r) = ring(4, 4);
        send(&r, b"a").unwrap();
        // Pretend a dead process claimed position 1: pid 0 is never alive.
        let dead = 7; // pid 0 (never a user process), start time 7
        r.slot(1).state.store(BUSY | dead, Ordering::Release);
        r.tail().store(2, Ordering::Release);
        send(&r, b"c").unwrap();
        assert_eq!(recv(&r).unwrap(), b"a");
        // The receiver spins on position 1, finds the claimer dead, skips it.
        assert_eq!(recv(&r).unwrap(), b"c");
        assert_eq!(r.lost(), 1);
        // The same when the dead producer never stored the tail.
        r.slot(3).state.store(BUSY | dead, Ordering::Release);
        send(&r, b"d").unwrap();
        assert_eq!(recv(&r).unwrap(), b"d");
        assert_eq!(r.lost(), 2);
    }

    #[test]
    fn a_dead_consumers_claim_is_recovered() {
        let (_m, r) = ring(2, 4);
        send(&r, b"a").unwrap();
        send(&r, b"b").unwrap();
        let dead = 7; // pid 0: never alive
                      // A dead consumer claimed message 0 and stored the head.
        r.slot(0)
            .state
            .store(BUSY | READING | dead, Ordering::Release);
        r.head().store(1, Ordering::Release);
        assert_eq!(recv(&r).unwrap(), b"b");
        // The producer of position 2 needs slot 0: it recovers the claim.
        send(&r, b"c").unwrap();
        assert_eq!(recv(&r).unwrap(), b"c");
        assert_eq!(r.lost(), 1);
    }

    #[test]
    fn sweep_finishes_dead_claims_only() {
        let (_m, r) = ring(4, 4);
        send(&r, b"a").unwrap();
        send(&r, b"b").unwrap();
        let dead = 7; // pid 0: never alive
        r.slot(0)
            .state
            .store(BUSY | READING | dead, Ordering::Release);
        r.head().store(1, Ordering::Release);
        let live = r.try_claim_send(1, &mut Watch::new()).unwrap();
        assert_eq!(r.sweep(), 1);
        assert_eq!(r.lost(), 1);
        assert_eq!(r.sweep(), 0);
        drop(live);
        assert_eq!(recv(&r).unwrap(), b"b");
    }

    #[test]
    fn a_live_claimer_makes_try_calls_busy() {
        let (_m, r) = ring(2, 4);
        let _claim = r.try_claim_send(1, &mut Watch::new()).unwrap();
        // Our own claim (this process is alive): the receiver gives up.
        assert_eq!(
            r.try_claim_recv(8, &mut Watch::new()).err(),
            Some(RawError::Busy)
        );
    }

    #[test]
    fn attach_checks_the_control_block() {
        let (mut m, r) = ring(4, 8);
        let len = m.len;
        // SAFETY: same live memory.
        let a = unsafe { RawMpmc::attach(m.ptr(), len) }.unwrap();
        assert_eq!((a.capacity(), a.slot_size()), (4, 8));
        send(&r, b"x").unwrap();
        assert_eq!(recv(&a).unwrap(), b"x");
        // SAFETY: as above.
        assert!(unsafe { RawMpmc::attach(m.ptr(), len - 1) }.is_err());
        r.control().capacity.store(3, Ordering::Relaxed);
        // SAFETY: as above.
        assert!(unsafe { RawMpmc::attach(m.ptr(), len) }.is_err());
    }

    #[test]
    fn threads_lose_and_duplicate_nothing() {
        let (_m, r) = ring(8, 8);
        let r = &r;
        const PER: u64 = 20_000;
        let seen = std::sync::Mutex::new(vec![0u8; 4 * PER as usize]);
        std::thread::scope(|s| {
            for p in 0..4u64 {
                s.spawn(move || {
                    for i in 0..PER {
                        let v = (p * PER + i).to_le_bytes();
                        loop {
                            match send(r, &v) {
                                Ok(()) => break,
                                Err(RawError::Full | RawError::Busy) => std::thread::yield_now(),
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                    }
                });
            }
            for _ in 0..2 {
                let seen = &seen;
                s.spawn(move || {
                    let mut last = [None::<u64>; 4];
                    let mut got = 0;
                    while got < 2 * PER {
                        match recv(r) {
                            Ok(b) => {
                                let v = u64::from_le_bytes(b.try_into().unwrap());
                                let (p, i) = ((v / PER) as usize, v % PER);
                                assert!(last[p].is_none_or(|l| l < i), "order");
                                last[p] = Some(i);
                                seen.lock().unwrap()[v as usize] += 1;
                                got += 1;
                            }
                            Err(RawError::Empty | RawError::Busy) => std::thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                });
            }
        });
        assert!(seen.lock().unwrap().iter().all(|&n| n == 1));
        assert_eq!(r.lost(), 0);
    }
}
