//! What the two slotted rings (MPMC and broadcast) share: the words their
//! control blocks start with, the geometry of their slots ([`Slots`]), and
//! the memory-plus-geometry pair they are made of ([`Slotted`]), which
//! reaches control words and slot words by offset.

use super::{ConfigError, Corrupt, Memory};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};

/// The words every slotted ring (MPMC, broadcast) starts its control block
/// with, at the same offsets: what the slot geometry code writes and reads.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SlotWords {
    pub(crate) magic: std::sync::atomic::AtomicU64,
    pub(crate) capacity: std::sync::atomic::AtomicU64,
    pub(crate) slot_size: std::sync::atomic::AtomicU64,
    pub(crate) stride: std::sync::atomic::AtomicU64,
}

/// The largest capacity of a slotted ring (slots).
pub const MAX_SLOTS: usize = 1 << 30;
/// The largest slot size of a slotted ring (bytes).
pub const MAX_SLOT_SIZE: usize = 1 << 30;
/// Bytes of bookkeeping in front of each slot's data.
pub const SLOT_HEADER: usize = 16;
/// Alignment of each slot's data (and of each slot).
pub const DATA_ALIGN: usize = 16;

/// `capacity` rounded up to a power of two (0 to 1); a capacity with no
/// power of two above it stays as given, and is refused as too large.
pub(crate) fn round_slots(capacity: usize) -> usize {
    capacity
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or(capacity)
}

/// Where the slots of a slotted ring lie: `cap` slots of `stride` bytes from
/// offset `first`, each a 16-byte header and `slot_size` bytes of data. Read
/// from the control block once, checked against the memory, and kept in the
/// process-local ring, so nothing another process writes later moves a slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slots {
    pub(crate) cap: u64,
    pub(crate) mask: u64,
    pub(crate) slot_size: usize,
    pub(crate) stride: usize,
    first: usize,
}

impl Slots {
    /// `capacity` slots (a power of two) of `slot_size` bytes after a
    /// control block of `first` bytes, and the memory they need.
    pub(crate) fn new(
        capacity: usize,
        slot_size: usize,
        first: usize,
    ) -> Result<(Slots, usize), ConfigError> {
        if capacity == 0 {
            return Err(ConfigError(
                "capacity is zero: a ring holds 1 to 2^30 slots",
            ));
        }
        if capacity > MAX_SLOTS {
            return Err(ConfigError(
                "capacity is larger than 2^30 slots, the largest a ring holds",
            ));
        }
        if !capacity.is_power_of_two() {
            return Err(ConfigError("capacity must be a power of two"));
        }
        if slot_size > MAX_SLOT_SIZE {
            return Err(ConfigError("slot size is larger than 2^30 bytes"));
        }
        let stride = (SLOT_HEADER + slot_size).div_ceil(DATA_ALIGN) * DATA_ALIGN;
        let size = stride
            .checked_mul(capacity)
            .and_then(|s| s.checked_add(first))
            .filter(|&s| s <= isize::MAX as usize / 2)
            .ok_or(ConfigError("ring is larger than the address space allows"))?;
        let cap = capacity as u64;
        let slots = Slots {
            cap,
            mask: cap - 1,
            slot_size,
            stride,
            first,
        };
        Ok((slots, size))
    }

    /// One slot of no data: fits after any control block of `first` bytes
    /// that an attach once accepted.
    #[cfg(not(loom))]
    pub(crate) fn smallest(first: usize) -> Slots {
        Slots {
            cap: 1,
            mask: 0,
            slot_size: 0,
            stride: SLOT_HEADER,
            first,
        }
    }

    /// The offset of the slot serving position `pos` (`idx < cap`, and
    /// `first + cap * stride` fits the memory: checked when made).
    #[inline(always)]
    pub(crate) fn slot(&self, pos: u64) -> usize {
        self.first + (pos & self.mask) as usize * self.stride
    }

    /// Each slot's offset.
    #[cfg(loom)]
    pub(crate) fn each(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.cap).map(|i| self.slot(i))
    }

    /// Writes the geometry into a fresh control block, then `magic` with
    /// release ordering (what [`Slots::read`] checks first).
    pub(crate) fn write<M: Memory>(&self, mem: &M, magic: u64) {
        let word = |f: usize| {
            // SAFETY: the slot words lie at offsets 0 to 32, 8-aligned,
            // inside the control block of `first >= 32` bytes the memory
            // holds (the ring checked `mem.len()` against the size).
            unsafe { mem.u64_at(f) }
        };
        word(std::mem::offset_of!(SlotWords, capacity)).store(self.cap, Ordering::Relaxed);
        word(std::mem::offset_of!(SlotWords, slot_size))
            .store(self.slot_size as u64, Ordering::Relaxed);
        word(std::mem::offset_of!(SlotWords, stride)).store(self.stride as u64, Ordering::Relaxed);
        // SYNC POINT: pairs with the acquire load of the magic in `read`.
        word(std::mem::offset_of!(SlotWords, magic)).store(magic, Ordering::Release);
    }

    /// Reads and checks the geometry of a ring whose magic is `magic`, in
    /// `mem` with the slots from offset `first`.
    pub(crate) fn read<M: Memory>(mem: &M, magic: u64, first: usize) -> Result<Slots, Corrupt> {
        if mem.len() < first {
            return Err(Corrupt::new("ring memory is too small", mem.len() as u64));
        }
        let word = |f: usize| {
            // SAFETY: offsets 0 to 32, inside the `first` bytes just checked.
            unsafe { mem.u64_at(f) }
        };
        let found = word(std::mem::offset_of!(SlotWords, magic)).load(Ordering::Acquire);
        if found != magic {
            return Err(Corrupt::new("bad ring magic", found));
        }
        let cap = word(std::mem::offset_of!(SlotWords, capacity)).load(Ordering::Relaxed);
        let slot = word(std::mem::offset_of!(SlotWords, slot_size)).load(Ordering::Relaxed);
        let stride = word(std::mem::offset_of!(SlotWords, stride)).load(Ordering::Relaxed);
        let slot_size = usize::try_from(slot).unwrap_or(usize::MAX);
        let (slots, need) = Slots::new(usize::try_from(cap).unwrap_or(0), slot_size, first)
            .map_err(|e| Corrupt::new(e.0, cap))?;
        if stride != slots.stride as u64 {
            return Err(Corrupt::new(
                "slot stride does not match the slot size",
                stride,
            ));
        }
        if need > mem.len() {
            return Err(Corrupt::new("ring is larger than its memory", need as u64));
        }
        Ok(slots)
    }

    /// The geometry of `capacity` slots of `slot_size` bytes after `first`
    /// bytes, and a loom model memory's layout with the geometry words in
    /// it (the ring adds its own).
    #[cfg(loom)]
    pub(crate) fn model_layout(
        capacity: usize,
        slot_size: usize,
        first: usize,
    ) -> Result<(Slots, super::model::Layout), ConfigError> {
        let (slots, size) = Slots::new(capacity, slot_size, first)?;
        let mut l = super::model::Layout::new(size);
        for f in [
            std::mem::offset_of!(SlotWords, magic),
            std::mem::offset_of!(SlotWords, capacity),
            std::mem::offset_of!(SlotWords, slot_size),
            std::mem::offset_of!(SlotWords, stride),
        ] {
            l = l.u64(f);
        }
        Ok((slots, l))
    }
}

/// A slotted ring's memory and the geometry checked in it: how the ring
/// reaches the words of its control block and of its slots.
#[derive(Clone, Debug)]
pub(crate) struct Slotted<M> {
    pub(crate) mem: M,
    pub(crate) slots: Slots,
}

impl<M: Memory> Slotted<M> {
    /// A fresh ring of `capacity` slots of `slot_size` bytes after a control
    /// block of `first` bytes: checks that `mem` holds it and zeroes it.
    /// The caller writes its own words, then [`Slotted::publish`].
    pub(crate) fn fresh(
        mem: M,
        capacity: usize,
        slot_size: usize,
        first: usize,
    ) -> Result<Slotted<M>, ConfigError> {
        let (slots, need) = Slots::new(capacity, slot_size, first)?;
        if mem.len() < need {
            return Err(ConfigError("memory is smaller than the ring needs"));
        }
        // SAFETY: `need <= len` bytes, given by the caller before any other
        // party uses them (nobody attaches before the magic).
        unsafe { mem.clear(need) };
        Ok(Slotted { mem, slots })
    }

    /// Writes the geometry and, last, `magic`: other processes may attach.
    pub(crate) fn publish(&self, magic: u64) {
        self.slots.write(&self.mem, magic);
    }

    /// The ring whose magic is `magic` in `mem`, its geometry checked.
    pub(crate) fn attach(mem: M, magic: u64, first: usize) -> Result<Slotted<M>, Corrupt> {
        let slots = Slots::read(&mem, magic, first)?;
        Ok(Slotted { mem, slots })
    }

    /// As [`Slotted::attach`], or one slot of no data if the check fails (a
    /// peer rewrote the geometry after an attach of the same memory
    /// succeeded): every operation then stays inside the memory.
    #[cfg(not(loom))]
    pub(crate) fn attach_or_smallest(mem: M, magic: u64, first: usize) -> Slotted<M> {
        let slots = Slots::read(&mem, magic, first).unwrap_or_else(|_| Slots::smallest(first));
        Slotted { mem, slots }
    }

    /// The 64-bit word at `off` of the control block.
    #[inline(always)]
    pub(crate) fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off < self.slots.first);
        // SAFETY: control-block offsets are 8-aligned constants below
        // `first`, and the memory holds at least `first` bytes (checked when
        // the geometry was made or read).
        unsafe { self.mem.u64_at(off) }
    }

    /// The 32-bit word at `off` of the control block.
    #[inline(always)]
    pub(crate) fn word32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off < self.slots.first);
        // SAFETY: as in `word`, for 4-aligned constants.
        unsafe { self.mem.u32_at(off) }
    }

    /// The 64-bit word `at` bytes into the slot serving `pos`.
    #[inline(always)]
    pub(crate) fn slot_word(&self, pos: u64, at: usize) -> &AtomicU64 {
        self.word_in(self.slots.slot(pos), at)
    }

    /// The 64-bit word `at` bytes into the slot at offset `slot` (what
    /// [`Slotted::slot`] returned: a claim keeps it rather than its
    /// position, so its accesses skip the slot arithmetic).
    #[inline(always)]
    pub(crate) fn word_in(&self, slot: usize, at: usize) -> &AtomicU64 {
        debug_assert!(at + 8 <= self.slots.stride);
        // SAFETY: the slot lies in the memory (its geometry was checked), is
        // 16-aligned, and `at`, 8-aligned, stays inside its stride.
        unsafe { self.mem.u64_at(slot + at) }
    }

    /// The 32-bit word `at` bytes into the slot serving `pos`.
    #[inline(always)]
    pub(crate) fn slot_word32(&self, pos: u64, at: usize) -> &AtomicU32 {
        self.word32_in(self.slots.slot(pos), at)
    }

    /// The 32-bit word `at` bytes into the slot at offset `slot`.
    #[inline(always)]
    pub(crate) fn word32_in(&self, slot: usize, at: usize) -> &AtomicU32 {
        debug_assert!(at + 4 <= self.slots.stride);
        // SAFETY: as in `word_in`, 4-aligned.
        unsafe { self.mem.u32_at(slot + at) }
    }

    /// The offset of the slot serving `pos`.
    #[inline(always)]
    pub(crate) fn slot(&self, pos: u64) -> usize {
        self.slots.slot(pos)
    }

    /// Wakes whoever waits on the event count at `off` of the control block.
    #[inline(always)]
    pub(crate) fn notify(&self, off: usize) {
        debug_assert!(off + 8 <= self.slots.first);
        // SAFETY: the callers pass the offsets of their event counts.
        unsafe { self.mem.notify(off) };
    }
}

#[cfg(not(loom))]
impl<M: super::Addressable> Slotted<M> {
    /// The event count at `off` of the control block.
    pub(crate) fn event(&self, off: usize) -> &multiproc_core::wait::EventCount {
        debug_assert!(off + 8 <= self.slots.first);
        // SAFETY: the callers pass the offsets of their event counts, inside
        // the control block the memory holds.
        unsafe { super::event_at(self.mem.addr(off)) }
    }
}
