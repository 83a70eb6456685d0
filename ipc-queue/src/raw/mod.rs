//! The raw layer: each ring's algorithm over caller-provided memory, with
//! no operating system in it.
//!
//! | algorithm | module | ends |
//! |---|---|---|
//! | single producer, single consumer byte ring | [`spsc`] | [`spsc::RawProducer`], [`spsc::RawConsumer`]: one each, made only by claiming the end's owner word |
//! | Vyukov's bounded MPMC ring, with recovery of dead claimers | [`mpmc`] | none: every slot claim records its claimer |
//! | one publisher, many subscribers, seqlock slots | [`broadcast`] | [`broadcast::RawPublisher`]: one, made only by claiming the publisher word |
//!
//! Each ring lives in a [`Memory`]: the ring addresses its words by byte
//! offset ("the atomic word at offset 256", "copy these payload bytes in at
//! offset 648"), and the memory says what is there. [`PtrMem`] is real
//! memory (a mapped segment, the heap: [`heap::HeapMemory`]), where every
//! method is one inlined pointer operation; under `cfg(loom)` the model
//! memory of `raw::model` (built under `cfg(loom)`) stands in with loom atomics and cells, so that
//! `tests/loom.rs` checks these very algorithms. Atomics, fences and the
//! orderings that matter come from one switchable module (see [`Site`]).
//!
//! Each ring has the same life: `memory_size(&cfg)` bytes, `init(mem, cfg)`
//! writes a fresh ring, `attach(mem)` checks one another process wrote and
//! keeps what it read (capacity, slot size) in the process-local handle, so
//! nothing written later moves a slot. The public types of the crate place
//! these rings in `multiproc-core` segments through
//! [`multiproc_core::object::Placed`].
//!
//! Who owns what is recorded in the ring as a packed process id, and judged
//! by the [`Judge`] the caller passes in (the public types pass
//! [`OsJudge`](multiproc_core::liveness::OsJudge)); no raw module reads `/proc`.
//! An end that only one party may hold (an SPSC producer or consumer, a
//! broadcast publisher) exists only as the result of a successful claim of
//! its owner word: holding the value is holding the claim, and dropping it
//! gives the claim back.
//!
//! Errors here are raw: [`Corrupt`] for shared state that fails a check,
//! [`ClaimError`], [`ConfigError`] and each ring's own; none speaks of
//! segments.

/// `len` and `is_empty` for a handle on one message (a `len` field).
macro_rules! message_len {
    (impl[$($g:tt)*] $t:ty) => {
        impl<$($g)*> $t {
            /// The message's length in bytes.
            #[inline]
            pub fn len(&self) -> usize {
                self.len
            }

            /// Whether the message is empty.
            #[inline]
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }
        }
    };
}

pub mod actors;
pub mod broadcast;
#[cfg(not(loom))]
pub mod heap;
#[cfg(loom)]
pub mod model;
pub mod mpmc;
mod slots;
pub mod spsc;

pub use crate::error::Corrupt;
pub use crate::primitive::Site;
pub(crate) use slots::{round_slots, Slots, Slotted};
pub use slots::{SlotWords, DATA_ALIGN, MAX_SLOTS, MAX_SLOT_SIZE, SLOT_HEADER};

use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use multiproc_core::liveness::Judge;
use multiproc_core::IdentityError;

/// One 128-byte line of a control block. 128 bytes, not 64: x86-64's
/// adjacent-line prefetcher pulls cache lines in pairs, so two hot words 64
/// bytes apart would still bounce between cores together.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct Line<T>(pub T);

/// The memory a raw ring lives in, addressed by byte offset.
///
/// The ring decides which offsets hold which words (its layout) and checks
/// them against [`Memory::len`] when it attaches; the memory gives access.
///
/// # Safety
/// Implementors promise, for as long as the value or any clone of it lives:
/// - [`u64_at`](Memory::u64_at) and [`u32_at`](Memory::u32_at) return the
///   same atomic word for the same offset every time, shared by every clone
///   (and, for shared memory, by every process mapping it);
/// - [`copy_in`](Memory::copy_in) and [`copy_out`](Memory::copy_out) move
///   exactly the bytes asked for, and nothing else.
pub unsafe trait Memory: Clone {
    /// The bytes available from the start of the ring.
    fn len(&self) -> usize;

    /// Whether [`Memory::len`] is zero.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The 64-bit atomic word at `off`.
    ///
    /// # Safety
    /// `off` is a multiple of 8 and `off + 8 <= len()`.
    unsafe fn u64_at(&self, off: usize) -> &AtomicU64;

    /// The 32-bit atomic word at `off`.
    ///
    /// # Safety
    /// `off` is a multiple of 4 and `off + 4 <= len()`.
    unsafe fn u32_at(&self, off: usize) -> &AtomicU32;

    /// Copies `src` into the payload bytes at `off`.
    ///
    /// # Safety
    /// `off + src.len() <= len()`, and the ring's protocol gives the caller
    /// those bytes now: no other party of this process reads or writes them
    /// until the caller publishes them.
    unsafe fn copy_in(&self, off: usize, src: &[u8]);

    /// Copies the payload bytes at `off` into `dst`.
    ///
    /// # Safety
    /// `off + dst.len() <= len()`, and the ring's protocol has published
    /// those bytes to the caller: no party of this process writes them until
    /// the caller releases them.
    unsafe fn copy_out(&self, off: usize, dst: &mut [u8]);

    /// Wakes whoever is parked on the [`EventCount`](multiproc_core::wait::EventCount)
    /// at `off` (nothing, in a model: a model waiter re-checks instead).
    ///
    /// # Safety
    /// An event count lies at `off`: `off` is a multiple of 4 and
    /// `off + 8 <= len()`.
    unsafe fn notify(&self, off: usize);

    /// Hints that the byte at `off` will be written soon (no effect on the
    /// program's meaning; by default nothing).
    #[inline(always)]
    fn prefetch_for_write(&self, off: usize) {
        let _ = off;
    }

    /// Zeroes the first `len` bytes (a fresh model memory is zero already).
    ///
    /// # Safety
    /// `len <= self.len()`, and nobody else uses the memory yet.
    unsafe fn clear(&self, len: usize);
}

/// A [`Memory`] of real bytes in this process's address space, which can
/// also be handed out in place (`&[u8]` into the ring).
///
/// # Safety
/// [`addr`](Addressable::addr) is the address of the byte the other methods
/// of [`Memory`] reach at that offset.
pub unsafe trait Addressable: Memory {
    /// The address of the byte at `off` (`off <= len()`).
    fn addr(&self, off: usize) -> *mut u8;
}

/// Real memory at an address: a segment's mapping, or the heap. Copying a
/// `PtrMem` copies the address only; whoever made it keeps the memory alive.
#[cfg(not(loom))]
#[derive(Clone, Copy, Debug)]
pub struct PtrMem {
    base: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a `PtrMem` names shared memory whose words are accessed atomically
// and whose payload bytes are handed over under each ring's protocol.
#[cfg(not(loom))]
unsafe impl Send for PtrMem {}
// SAFETY: as above.
#[cfg(not(loom))]
unsafe impl Sync for PtrMem {}

#[cfg(not(loom))]
impl PtrMem {
    /// The `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` is valid for reads and writes of `len` bytes, 128-byte
    /// aligned, for as long as this value, its copies and every ring or end
    /// made from them are used; the bytes are only ever accessed atomically
    /// or under a ring's protocol (shared memory).
    #[inline]
    pub unsafe fn new(base: std::ptr::NonNull<u8>, len: usize) -> PtrMem {
        PtrMem { base, len }
    }

    /// The bytes before `at` and those from `at` on, as two memories (for
    /// two objects side by side). `at` is clamped to the length and rounded
    /// down to a multiple of 128, so both halves are 128-byte aligned.
    pub fn split(self, at: usize) -> (PtrMem, PtrMem) {
        let at = at.min(self.len) & !127;
        // SAFETY: `at <= len`: the second half starts inside (or one past)
        // the memory this one vouches for, and covers the rest of it.
        let rest = unsafe { self.base.add(at) };
        (
            PtrMem {
                base: self.base,
                len: at,
            },
            PtrMem {
                base: rest,
                len: self.len - at,
            },
        )
    }
}

// SAFETY: every method is one pointer operation at `base + off`, inside the
// `len` bytes the maker of the `PtrMem` vouched for (the offsets are the
// callers' promise); words are 8- or 4-aligned because `base` is 128-aligned
// and the offsets are multiples of the word size.
#[cfg(not(loom))]
unsafe impl Memory for PtrMem {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    unsafe fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: in bounds and aligned (the caller's promise); any bits are
        // a valid `AtomicU64`, and the memory outlives `&self`.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    #[inline(always)]
    unsafe fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: as in `u64_at`.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    #[inline(always)]
    unsafe fn copy_in(&self, off: usize, src: &[u8]) {
        debug_assert!(off + src.len() <= self.len);
        // SAFETY: in bounds and handed to the caller by the protocol (the
        // caller's promise): nobody else reads or writes these bytes until
        // the caller publishes them; `src` is process-local, so they do not
        // overlap.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(off), src.len()) };
        copy_short(dst, src);
    }

    #[inline(always)]
    unsafe fn copy_out(&self, off: usize, dst: &mut [u8]) {
        debug_assert!(off + dst.len() <= self.len);
        // SAFETY: in bounds and published to the caller (the caller's
        // promise) for the duration of the copy.
        let src = unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(off), dst.len()) };
        copy_short(dst, src);
    }

    #[inline(always)]
    unsafe fn notify(&self, off: usize) {
        // SAFETY: an event count lies at `off` (the caller's promise); it is
        // two atomics, valid for every bit pattern.
        unsafe { event_at(self.base.as_ptr().add(off)) }.notify_all();
    }

    #[inline(always)]
    fn prefetch_for_write(&self, off: usize) {
        let at = self.base.as_ptr().wrapping_add(off);
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

    unsafe fn clear(&self, len: usize) {
        // SAFETY: `len` bytes in bounds, used by nobody else yet (the
        // caller's promise).
        unsafe { self.base.as_ptr().write_bytes(0, len) };
    }
}

// SAFETY: the address is the one every method above uses.
#[cfg(not(loom))]
unsafe impl Addressable for PtrMem {
    #[inline(always)]
    fn addr(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len);
        self.base.as_ptr().wrapping_add(off)
    }
}

/// The event count at `at`.
///
/// # Safety
/// `at` points at 8 bytes of live, 4-aligned memory.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) unsafe fn event_at<'a>(at: *mut u8) -> &'a multiproc_core::wait::EventCount {
    // SAFETY: the caller's promise; `EventCount` is `Shareable` (two
    // atomics, every bit pattern valid).
    unsafe { &*at.cast::<multiproc_core::wait::EventCount>() }
}

/// Copies `src` to the front of `dst` (`dst.len() >= src.len()`). Messages
/// of 8 to 16 bytes, the common small case, take two overlapping 8-byte
/// moves inline instead of a call to `memcpy`.
#[cfg(not(loom))]
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

/// A configuration no ring can have: zero or too large a capacity, a slot
/// too large, a size that overflows. The reason names the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub &'static str);

/// Why an end could not be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// A live owner (the caller itself included) holds the end; `owner` is
    /// its packed id.
    #[error("the end is held by {owner:#x}")]
    Held {
        /// The packed id of the holder.
        owner: u64,
    },
    /// The caller cannot learn its own identity, which the claim records.
    #[error(transparent)]
    UnknownIdentity(#[from] IdentityError),
    /// The ring's shared indices fail their checks.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// Every holder slot of the end is taken by a live process.
    #[error("the end is held by as many live processes as it records")]
    TooManyHolders,
    /// The end to join is closed, or was never claimed.
    #[error("the end is closed")]
    Closed,
}

/// Claims the owner word `word` for the caller: succeeds if nobody holds
/// it, or if `judge` proves the holder dead (a takeover). Returns the
/// caller's packed id, as recorded.
pub(crate) fn claim_owner<J: Judge>(word: &AtomicU64, judge: &J) -> Result<u64, ClaimError> {
    let me = judge.me()?;
    let mut cur = word.load(Ordering::Acquire);
    loop {
        if cur != 0 && (cur == me || !judge.is_dead(cur)) {
            return Err(ClaimError::Held { owner: cur });
        }
        match word.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(me),
            Err(now) => cur = now,
        }
    }
}

/// Whether the end whose claim recorded `me` belongs to the caller by
/// `judge`. A copy of an end in a forked child is another identity: it
/// closes nothing and gives nothing back when dropped.
pub(crate) fn still_mine<J: Judge>(me: u64, judge: &J) -> bool {
    judge.me().ok() == Some(me)
}

/// Gives the owner word back if `me` still holds it.
pub(crate) fn release_owner(word: &AtomicU64, me: u64) {
    let _ = word.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
}

#[cfg(all(test, not(loom)))]
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
}
