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
//! the data area of `capacity` bytes (a power of two, at least 32).
//!
//! | line | contents | written by |
//! |---|---|---|
//! | 0 | capacity, fixed message length, endpoint owners, closed and busy-spin flags | attach, close (rarely) |
//! | 1 | `tail`: bytes ever committed | the producer, once per publish |
//! | 2 | `head`: bytes ever released | the consumer, once per release (and the producer, to release a pad of a drained ring) |
//! | 3 | `not_empty` event count (the consumer parks here) | the consumer when it parks |
//! | 4 | `not_full` event count (the producer parks here) | the producer when it parks |
//!
//! Lines are 128 bytes, not 64: x86-64's adjacent-line prefetcher pulls cache
//! lines in pairs, so two indices 64 bytes apart would still bounce together.
//!
//! `head` and `tail` are positions in bytes that only grow (a `u64` does not
//! wrap in the lifetime of a machine); the offset in the data area is the
//! position masked by `capacity - 1`.
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
//! cannot slip a value past the checks.
//!
//! The per-message paths are split in two: an inlined fast path that covers
//! the common case (a message record, room that the cached `head` already
//! shows) with a few comparisons, and an out-of-line slow path for everything
//! else (pads, reloads that find the ring full, records that fail a check),
//! which redoes every check and names the failure. The fast path accepts
//! nothing the slow path would refuse.
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
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

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
const CONTROL_MAGIC: u64 = u64::from_le_bytes(*b"SPSCRNG2");

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

/// A cache line, as far as the producer's prefetching is concerned.
const LINE: u64 = 64;
/// How far ahead of its tail the producer asks for cache lines it will write:
/// enough lines that the ownership requests overlap (a request takes about
/// half a cache-line round trip, 40 to 220 ns on the machine this was tuned
/// on, while streaming 8-byte messages fills a line every 30 ns or so),
/// close enough that the lines are free (checked against the room) and stay
/// in the cache. 4, 8 and 16 lines were measured; 8 was best.
const PREFETCH_AHEAD: u64 = 8 * LINE;

/// Hints the CPU to fetch the cache line at `at` for writing. No effect on
/// the program's meaning: a prefetch reads nothing and cannot fault.
#[inline(always)]
fn prefetch_for_write(at: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `prefetchw` only hints the cache; it does not access memory
    // architecturally, cannot fault, and touches no register but its
    // address operand. CPUs without the instruction treat it as a no-op.
    unsafe {
        std::arch::asm!("prefetchw [{0}]", in(reg) at, options(nostack, preserves_flags, readonly));
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    let _ = at;
}

/// A record header word.
#[inline(always)]
const fn header_word(len: u64, kind: u32) -> u64 {
    len | ((kind as u64) << 32)
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
    if !(ptr.as_ptr() as usize).is_multiple_of(128) {
        return Err(Corrupt::new(
            "memory is not 128-byte aligned",
            ptr.as_ptr() as u64,
        ));
    }
    // SAFETY: the caller gives exclusive, writable memory of at least `size`
    // bytes; `SpscControl` is valid when zeroed (atomics only), and writing
    // it whole is the initialization. Zeroing the data area clears every
    // header slot.
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
    if !(ptr.as_ptr() as usize).is_multiple_of(128) {
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

/// A record header that passed its checks.
enum Record {
    /// A message record.
    Msg(Peeked),
    /// A pad record of this many bytes, reaching the end of the data area.
    Pad(u64),
}

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
        self.cap as usize - HEADER_LEN - SLACK
    }

    /// The fixed message length of a typed ring (0 for a byte ring).
    pub fn fixed_len(&self) -> u64 {
        self.ctrl().config.0.fixed_len.load(Ordering::Relaxed)
    }

    /// Bytes committed and not yet released (records, headers and pads
    /// included), as far as the published indices show. A snapshot: it may
    /// change at any moment.
    pub fn used_bytes(&self) -> usize {
        let c = self.ctrl();
        let head = c.head.0.load(Ordering::Acquire);
        let tail = c.tail.0.load(Ordering::Acquire);
        // The consumer may already have read records whose `tail` is not
        // stored yet: then `head` is ahead and nothing is known to be queued.
        let used = tail.wrapping_sub(head);
        if used > self.cap {
            0
        } else {
            used as usize
        }
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

    /// A producer end that continues after the last committed record.
    ///
    /// That is normally the published `tail`, but a producer that died
    /// between publishing a record (its header) and storing `tail` leaves
    /// records past it, and the consumer may even have read them: the new
    /// end starts from whichever index is further along and walks over the
    /// committed records it finds there, up to the cleared slot.
    ///
    /// Only one producer may exist at a time (across every process); the
    /// public layer enforces it with [`RawRing::claim`].
    pub fn producer(&self) -> Result<RawProducer, Corrupt> {
        let c = self.ctrl();
        let head = c.head.0.load(Ordering::Acquire);
        let tail = c.tail.0.load(Ordering::Acquire);
        if !(tail | head).is_multiple_of(RECORD_ALIGN as u64) {
            return Err(Corrupt::new("index is not record-aligned", tail | head));
        }
        // The consumer may be ahead of the stored `tail`; otherwise `tail`
        // must be at most the capacity ahead of `head`.
        let mut end = if head.wrapping_sub(tail) <= self.cap {
            head
        } else {
            self.check_span(tail, head)?;
            tail
        };
        loop {
            if end.wrapping_sub(head) > self.cap - SLACK as u64 {
                return Err(Corrupt::new(
                    "committed records leave no free slot",
                    end.wrapping_sub(head),
                ));
            }
            let off = end & self.mask;
            // SYNC POINT: pairs with the release store of each header.
            let word = self.header_at(off).load(Ordering::Acquire);
            if word == 0 {
                break;
            }
            end = end.wrapping_add(match self.parse(off, word)? {
                Record::Msg(p) => p.need(),
                Record::Pad(n) => n,
            });
        }
        let mut p = RawProducer {
            ring: *self,
            tail: end,
            published_tail: tail,
            cached_head: head,
            pad_published: false,
        };
        p.publish();
        Ok(p)
    }

    /// A consumer end starting at the ring's published `head`.
    pub fn consumer(&self) -> Result<RawConsumer, Corrupt> {
        let head = self.ctrl().head.0.load(Ordering::Acquire);
        if !head.is_multiple_of(RECORD_ALIGN as u64) {
            return Err(Corrupt::new("index is not record-aligned", head));
        }
        Ok(RawConsumer {
            ring: *self,
            head,
            published_head: head,
            released_pad: false,
        })
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

    /// The header slot at `off` in the data area.
    ///
    /// `off` must be 8-aligned and below the capacity (checked in debug
    /// builds; every caller derives it from an 8-aligned position masked by
    /// `capacity - 1`, or from a checked record end).
    #[inline(always)]
    fn header_at(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off < self.cap);
        // SAFETY: `off` is 8-aligned and `off + 8 <= cap`, so the word lies
        // inside the data area, which starts 128-aligned: the pointer is
        // aligned for `AtomicU64`, any bits are a valid value, and the
        // memory stays mapped while `self` is used (the contract of
        // `attach`). Header slots are only ever accessed as atomics while
        // they can be read by the other end (see the module docs).
        unsafe { AtomicU64::from_ptr(self.at(off).cast::<u64>()) }
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
            return Some(Peeked { off, len });
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
    /// Bytes written so far; every record below it is published.
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

    /// Free bytes by the cached `head`, less the slot kept clear. `tail -
    /// cached_head` was checked to be at most the capacity less the slack
    /// when `head` was loaded and grows only by reserved amounts since; the
    /// subtraction saturates all the same, so that a reservation committed
    /// out of turn (a misuse of this safe API) reads as a full ring instead
    /// of a panic.
    #[inline(always)]
    fn room(&self) -> u64 {
        (self.ring.cap - SLACK as u64).saturating_sub(self.tail.wrapping_sub(self.cached_head))
    }

    /// Whether a record of `need` bytes can be placed, reloading `head` only
    /// if the cached copy says it cannot.
    #[inline]
    fn has_room(&mut self, need: u64) -> Result<bool, Corrupt> {
        if self.room() >= need {
            return Ok(true);
        }
        self.reload_head()?;
        Ok(self.room() >= need)
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
        if self.tail.wrapping_sub(head) > self.ring.cap - SLACK as u64 {
            return Err(Corrupt::new("head is behind the free slot", head));
        }
        self.cached_head = head;
        Ok(())
    }

    /// Free bytes as far as this end knows (reloads the consumer's head).
    pub fn free_bytes(&mut self) -> Result<usize, Corrupt> {
        self.reload_head()?;
        Ok(self.room() as usize)
    }

    /// Reserves room for a `len`-byte message. On success the payload bytes
    /// are at [`RawProducer::payload`] until [`RawProducer::commit`].
    ///
    /// May publish a pad record to reach the start of the data area (even when
    /// it then fails with `Full`); [`RawProducer::take_pad_published`] tells
    /// the caller to wake the consumer, who must skip the pad to free room.
    /// If the consumer has already released everything before the pad (the
    /// ring is drained), the producer releases the pad itself instead of
    /// waiting for the consumer to poll, so a message of
    /// [`RawRing::max_message_len`] bytes always fits a drained ring.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        // Fast path: the record fits before the end of the data area and the
        // cached `head` already shows room for it. Anything else takes the
        // slow path, which redoes every check and reports why.
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
            if need <= self.ring.cap - off && self.room() >= need {
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
            // `to_end >= 8` free bytes from `off` (8-aligned) to the end,
            // and the slot after them: this process alone may write them.
            let pad_at = self.tail;
            self.put_header(off, to_end, header_word(to_end, KIND_PAD));
            self.tail = self.tail.wrapping_add(to_end);
            self.publish();
            self.pad_published = true;
            off = 0;
            if self.room() < need {
                self.release_pad(pad_at).map_err(ReserveError::Corrupt)?;
            }
        }
        if !self.has_room(need).map_err(ReserveError::Corrupt)? {
            return Err(ReserveError::Full);
        }
        Ok(Reservation { off, len })
    }

    /// The pad just published at position `pad_at` leaves too little room:
    /// if the consumer has released everything before the pad (the ring is
    /// drained, and the consumer may not poll again for a long time), moves
    /// `head` past the pad on the consumer's behalf, so the record can start
    /// at offset 0 now. One compare-and-swap from exactly `pad_at`: if the
    /// consumer got there first (it read the pad and released it), its own
    /// store already says the same. The consumer notices the move when it
    /// next reads a header ([`RawConsumer::try_peek`]).
    #[cold]
    fn release_pad(&mut self, pad_at: u64) -> Result<(), Corrupt> {
        self.reload_head()?;
        if self.cached_head != pad_at {
            return Ok(());
        }
        let head = &self.ring.ctrl().head.0;
        if head
            .compare_exchange(pad_at, self.tail, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SYNC POINT: pairs with the consumer's acquire load of a header
            // in `RawConsumer::header`: whatever this producer writes from
            // now on (over the pad, too) is seen only with the new `head`.
            fence(Ordering::Release);
            self.cached_head = self.tail;
            Ok(())
        } else {
            self.reload_head()
        }
    }

    /// Publishes the record of `need` bytes at `off` (free, checked room)
    /// with the header `word`: clears the slot after it, then stores the
    /// header with release ordering.
    #[inline(always)]
    fn put_header(&self, off: u64, need: u64, word: u64) {
        let next = (off + need) & self.ring.mask;
        self.ring.header_at(next).store(0, Ordering::Relaxed);
        // SYNC POINT: pairs with the consumer's acquire load of this header:
        // the payload and the cleared slot after it are visible with it.
        self.ring.header_at(off).store(word, Ordering::Release);
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

    /// Publishes a reservation, shortened to `len` bytes (`len <= r.len()`):
    /// the consumer may read it from now on. [`RawProducer::publish`] then
    /// stores the new `tail` for [`RawRing::used_bytes`].
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
        let need = record_len(len) as u64;
        self.put_header(r.off, need, header_word(len as u64, KIND_MSG));
        let before = self.tail;
        self.tail = (self.tail & !self.ring.mask) + r.off + need;
        if (before ^ self.tail) & !(LINE - 1) != 0 && self.room() >= PREFETCH_AHEAD + LINE {
            // A new cache line: ask now for ownership of the line this
            // producer will write a few lines on. The consumer read it a lap
            // ago, so a plain write would first wait for the consumer's copy
            // to be invalidated; streaming, that wait is most of the cost of
            // a message.
            let ahead = self.tail.wrapping_add(PREFETCH_AHEAD) & self.ring.mask;
            // SAFETY: `ahead` is masked into the data area.
            prefetch_for_write(unsafe { self.ring.at(ahead) });
        }
    }

    /// Stores the `tail` of every committed record (one store, on a line the
    /// consumer does not read per message).
    #[inline]
    pub fn publish(&mut self) {
        if self.tail != self.published_tail {
            // SYNC POINT: pairs with the acquire loads of `tail` in
            // `used_bytes` and in a producer taking over.
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
}

impl Peeked {
    /// The length of the message's record.
    #[inline]
    fn need(&self) -> u64 {
        record_len(self.len) as u64
    }

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

/// The reading end of a ring. Process-local state: the authoritative head.
#[derive(Debug)]
pub struct RawConsumer {
    ring: RawRing,
    /// Bytes consumed so far, published or not.
    head: u64,
    published_head: u64,
    released_pad: bool,
}

impl RawConsumer {
    /// The ring.
    #[inline]
    pub fn ring(&self) -> &RawRing {
        &self.ring
    }

    /// The header word at `head`, loaded with acquire ordering, with its
    /// offset; `None` if the producer has moved `head` past a pad for this
    /// (drained) consumer, so that what lies at `head` may be anything now
    /// ([`RawConsumer::sync_head`] catches up).
    #[inline(always)]
    fn header(&self) -> Option<(u64, u64)> {
        // `head` is 8-aligned (checked at attach and advanced by checked
        // record lengths only), so the slot lies inside the data area.
        let off = self.head & self.ring.mask;
        // SYNC POINT: pairs with the producer's release store of the header
        // in `put_header`: the record's payload is visible with it. Also
        // pairs with the release fence in `RawProducer::release_pad`: if this
        // load sees anything the producer wrote over a pad it released, the
        // load of `head` below sees that release.
        let word = self.ring.header_at(off).load(Ordering::Acquire);
        // Our own line, only ever written by the producer in that case: an
        // L1 hit on the fast path.
        let shared = self.ring.ctrl().head.0.load(Ordering::Relaxed);
        (shared == self.published_head).then_some((off, word))
    }

    /// Catches up with a `head` the producer moved to the start of the next
    /// lap, past a pad this consumer had not read yet: that happens only when
    /// the consumer had released everything up to the pad (see
    /// [`RawProducer::try_reserve`]). Any other move of `head` is corrupt.
    #[cold]
    fn sync_head(&mut self) -> Result<(), Corrupt> {
        let shared = self.ring.ctrl().head.0.load(Ordering::Acquire);
        if shared == self.published_head {
            return Ok(());
        }
        let at = self.published_head;
        let lap_start = (at | self.ring.mask).wrapping_add(1);
        if self.head != at || at & self.ring.mask == 0 || shared != lap_start {
            return Err(Corrupt::new("head was moved by another process", shared));
        }
        self.head = shared;
        self.published_head = shared;
        Ok(())
    }

    /// Whether a message (or pad) is committed and unread.
    pub fn has_data(&mut self) -> Result<bool, Corrupt> {
        loop {
            match self.header() {
                Some((_, word)) => return Ok(word != 0),
                None => self.sync_head()?,
            }
        }
    }

    /// The next message, if one is committed, after checking its header.
    /// Pad records on the way are skipped (and released at once, see
    /// [`RawConsumer::take_released_pad`]).
    #[inline]
    pub fn try_peek(&mut self) -> Result<Option<Peeked>, Corrupt> {
        let Some((off, word)) = self.header() else {
            return self.try_peek_slow();
        };
        if let Some(p) = self.ring.check_message(off, word) {
            return Ok(Some(p));
        }
        if word == 0 {
            return Ok(None);
        }
        self.try_peek_slow()
    }

    /// The next message if one is committed and its header passes every
    /// check; `None` otherwise (then [`RawConsumer::try_peek`] decides).
    #[inline(always)]
    pub(crate) fn try_peek_fast(&mut self) -> Option<Peeked> {
        let (off, word) = self.header()?;
        self.ring.check_message(off, word)
    }

    /// [`RawConsumer::try_peek`] in full: pads, and the precise error for a
    /// record that fails its checks.
    #[cold]
    #[inline(never)]
    fn try_peek_slow(&mut self) -> Result<Option<Peeked>, Corrupt> {
        loop {
            let Some((off, word)) = self.header() else {
                self.sync_head()?;
                continue;
            };
            if word == 0 {
                return Ok(None);
            }
            match self.ring.parse(off, word)? {
                Record::Msg(p) => return Ok(Some(p)),
                Record::Pad(n) => {
                    self.head = self.head.wrapping_add(n);
                    self.publish();
                    self.released_pad = true;
                }
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
        // area, in a record the producer published and no longer writes.
        unsafe { std::slice::from_raw_parts(self.ring.at(p.off + HEADER_LEN as u64), p.len) }
    }

    /// Moves past a peeked message (locally; see [`RawConsumer::publish`]).
    #[inline]
    pub fn advance(&mut self, p: Peeked) {
        self.head = self.head.wrapping_add(p.need());
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
        copy_short(buf, unsafe { self.payload(p) });
        self.advance(p);
        self.publish();
        Ok(Some(p.len))
    }
}

/// Copies `src` to the front of `dst` (`dst.len() >= src.len()`). Messages
/// of 8 to 16 bytes, the common small case, take two overlapping 8-byte
/// moves inline instead of a call to `memcpy`.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (8..=16).contains(&n) && dst.len() >= n {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else {
        dst[..n].copy_from_slice(src);
    }
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
    fn copy_short_copies_every_length_exactly() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=32 {
            for extra in [0, 1, 9] {
                let mut dst = vec![0u8; n + extra];
                copy_short(&mut dst, &src[..n]);
                assert_eq!(&dst[..n], &src[..n], "length {n}");
                assert!(dst[n..].iter().all(|&b| b == 0), "length {n}: wrote past");
            }
        }
    }

    #[test]
    fn sizes_and_capacities() {
        assert_eq!(memory_size(16), None);
        assert_eq!(memory_size(32), Some(640 + 32));
        assert_eq!(memory_size(48), None);
        assert_eq!(capacity_for_message(0), Some(32));
        assert_eq!(capacity_for_message(8), Some(32));
        assert_eq!(capacity_for_message(16), Some(32));
        assert_eq!(capacity_for_message(17), Some(64));
        assert_eq!(record_len(0), 8);
        assert_eq!(record_len(1), 16);
        for len in [0, 1, 8, 16, 17, 100, 4096] {
            let h = HeapRing::new(capacity_for_message(len).unwrap()).unwrap();
            assert!(h.ring().max_message_len() >= len);
        }
    }

    #[test]
    fn push_peek_wrap_and_pad() {
        let h = HeapRing::new(64).unwrap();
        let mut p = h.ring().producer().unwrap();
        let mut c = h.ring().consumer().unwrap();
        assert_eq!(h.ring().max_message_len(), 48);
        assert_eq!(p.try_push(&[0; 49]), Err(ReserveError::TooLarge));
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
        // The largest message needs the whole area but the free slot: the
        // producer pads to the end, and once the consumer has skipped the
        // pad it fits.
        if p.try_push(&[1; 48]) == Err(ReserveError::Full) {
            assert!(p.take_pad_published());
            assert_eq!(c.try_peek(), Ok(None));
            assert!(c.take_released_pad());
            p.try_push(&[1; 48]).unwrap();
        }
        assert_eq!(p.try_push(&[]), Err(ReserveError::Full));
        let mut buf = [0u8; 48];
        assert_eq!(c.try_pop_into(&mut buf[..10]), Err(Ok(48)));
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(48)));
        assert_eq!(buf, [1; 48]);
    }

    #[test]
    fn a_record_is_visible_before_tail_is_stored() {
        let h = HeapRing::new(64).unwrap();
        let mut p = h.ring().producer().unwrap();
        let mut c = h.ring().consumer().unwrap();
        let r = p.try_reserve(3).unwrap();
        // SAFETY: just reserved.
        unsafe { p.payload(r) }.copy_from_slice(b"abc");
        assert_eq!(c.try_peek(), Ok(None));
        p.commit(r, 3);
        // Not published: `tail` still says empty, the header says otherwise.
        assert_eq!(h.ring().used_bytes(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(3)));
        // The consumer is now ahead of the stored `tail`.
        assert_eq!(h.ring().used_bytes(), 0);
        p.publish();
        assert_eq!(h.ring().used_bytes(), 0);
    }

    #[test]
    fn a_new_producer_continues_after_unpublished_records() {
        let h = HeapRing::new(128).unwrap();
        let mut p = h.ring().producer().unwrap();
        let mut c = h.ring().consumer().unwrap();
        p.try_push(b"one").unwrap();
        // Two records committed, `tail` never stored (a producer that died
        // right after publishing them).
        for msg in [&b"two"[..], b"three"] {
            let r = p.try_reserve(msg.len()).unwrap();
            // SAFETY: just reserved.
            unsafe { p.payload(r) }.copy_from_slice(msg);
            p.commit(r, msg.len());
        }
        let mut p = h.ring().producer().unwrap();
        assert_eq!(h.ring().used_bytes(), 48);
        p.try_push(b"four").unwrap();
        let mut buf = [0u8; 8];
        for want in [&b"one"[..], b"two", b"three", b"four"] {
            let n = c.try_pop_into(&mut buf).unwrap().unwrap();
            assert_eq!(&buf[..n], want);
        }
        // The consumer read records whose `tail` was never stored: the next
        // producer starts from `head`.
        let r = p.try_reserve(4).unwrap();
        // SAFETY: just reserved.
        unsafe { p.payload(r) }.copy_from_slice(b"five");
        p.commit(r, 4);
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(4)));
        let mut p = h.ring().producer().unwrap();
        p.try_push(b"six").unwrap();
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(3)));
        assert_eq!(&buf[..3], b"six");
        assert_eq!(c.try_pop_into(&mut buf), Ok(None));
    }

    #[test]
    fn a_reservation_committed_out_of_turn_does_not_panic() {
        let h = HeapRing::new(64).unwrap();
        let mut p = h.ring().producer().unwrap();
        let mut c = h.ring().consumer().unwrap();
        let mut buf = [0u8; 48];
        // A reservation near the end of the area, kept past a wrap.
        p.try_push(&[1; 24]).unwrap();
        let stale = p.try_reserve(16).unwrap();
        p.commit(stale, 16);
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(24)));
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(16)));
        p.publish();
        for _ in 0..3 {
            let _ = p.try_push(&[2; 8]);
            let _ = c.try_pop_into(&mut buf);
        }
        // Committed again, a lap later: the ring's state is wrong from here
        // on, but every call returns.
        p.commit(stale, 16);
        let _ = p.try_reserve(8);
        let _ = p.free_bytes();
        let _ = c.try_pop_into(&mut buf);
    }

    #[test]
    fn corrupt_records_and_indices_are_errors() {
        let h = HeapRing::new(64).unwrap();
        let ring = *h.ring();
        let mut p = ring.producer().unwrap();
        let mut c = ring.consumer().unwrap();
        p.try_push(b"hello").unwrap();
        let slot = ring.header_at(0);
        let good = slot.load(Ordering::Relaxed);
        let cases = [
            (header_word(49, KIND_MSG), "message length exceeds the ring"),
            (header_word(5, 77), "unknown record kind"),
            (
                header_word(16, KIND_PAD),
                "pad does not reach the end of the ring",
            ),
        ];
        for (word, what) in cases {
            slot.store(word, Ordering::Relaxed);
            assert_eq!(c.try_peek().unwrap_err().what, what);
        }
        slot.store(good, Ordering::Relaxed);
        let mut buf = [0u8; 8];
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(5)));
        for _ in 0..2 {
            p.try_push(b"x").unwrap();
            assert_eq!(c.try_pop_into(&mut buf), Ok(Some(1)));
        }
        // The consumer is at offset 48: a 16-byte message would cross the end.
        ring.header_at(48)
            .store(header_word(16, KIND_MSG), Ordering::Relaxed);
        assert_eq!(
            c.try_peek().unwrap_err().what,
            "message crosses the end of the ring"
        );
        ring.header_at(48).store(0, Ordering::Relaxed);
        // Indices: a misaligned head, and a tail far from head.
        ring.ctrl().head.0.store(3, Ordering::Release);
        assert!(p.free_bytes().is_err());
        assert!(ring.consumer().is_err());
        ring.ctrl().head.0.store(48, Ordering::Release);
        ring.ctrl().tail.0.store(1 << 40, Ordering::Release);
        assert_eq!(
            ring.producer().unwrap_err().what,
            "tail and head are further apart than the capacity"
        );
        // Records claimed all the way round the ring.
        ring.ctrl().tail.0.store(48, Ordering::Release);
        for off in [48, 0, 16, 32] {
            ring.header_at(off)
                .store(header_word(8, KIND_MSG), Ordering::Relaxed);
        }
        assert_eq!(
            ring.producer().unwrap_err().what,
            "committed records leave no free slot"
        );
    }
}
