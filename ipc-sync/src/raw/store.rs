//! The memory of a shared container and how it is laid out: a header with
//! the robust lock, the undo journal, two index banks and two arena banks.
//!
//! | offset | what |
//! |---|---|
//! | 0 | [`RawMutex`] (24 bytes), tag, configuration, type fingerprints, total size, recoveries |
//! | 128 | state words: `active` (bit 0: index bank, bit 1: arena bank), `len`, `top`, `live`, `tombs` |
//! | 168 | `journal_len` |
//! | 256 | journal: `journal_entries` pairs (word offset, old value) |
//! | after | index bank 0, index bank 1 (`slots` slots of 8 or 16 bytes each) |
//! | after | arena bank 0, arena bank 1 (`arena_bytes` each) |
//!
//! Only the active banks hold the container; the other two are scratch
//! space for a rebuild (compaction, a large shift, a rehash), which writes
//! the new state there and switches `active` in one journaled word. Items
//! are appended to the active arena at `top`; `live` counts the bytes still
//! referenced, so a compaction knows what it would free. How an update
//! stays atomic across a SIGKILL is in the [journal](super::journal).

use super::mutex::RawMutex;
use crate::container::{
    ContainerConfig, ContainerError, MAX_ARENA_BYTES, MAX_CAPACITY, MIN_JOURNAL_ENTRIES,
};
use multiproc_core::object::ObjectError;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes before the journal.
pub(crate) const HEADER_BYTES: u64 = 256;
/// Offset of the first state word.
pub(crate) const STATE_OFFSET: u64 = 128;
/// The state words, in order from [`STATE_OFFSET`].
pub(crate) const ACTIVE: usize = 0;
/// Entries in the container.
pub(crate) const LEN: usize = 1;
/// Bytes appended to the active arena.
pub(crate) const TOP: usize = 2;
/// Bytes of the active arena still referenced.
pub(crate) const LIVE: usize = 3;
/// Tombstones in the active index bank (a dict's removed slots).
pub(crate) const TOMBS: usize = 4;
/// How many state words there are.
pub(crate) const STATE_WORDS: usize = 5;
/// The bit of `active` that selects the index bank.
pub(crate) const INDEX_BIT: u64 = 1;
/// The bit of `active` that selects the arena bank.
pub(crate) const ARENA_BIT: u64 = 2;
/// The most journal entries a container accepts.
pub(crate) const MAX_JOURNAL: usize = 1 << 16;
/// Bytes of one journal entry.
pub(crate) const ENTRY_BYTES: u64 = 16;

/// What a container is: the tag in its header, the width of its index
/// slots and how many slots its capacity needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One 8-byte slot per item, in order.
    List,
    /// An open-addressing hash table of 16-byte slots, at most three
    /// quarters full.
    Dict,
}

impl Shape {
    pub(crate) const fn tag(self) -> u32 {
        match self {
            Shape::List => 0x4c53_5431, // "LST1"
            Shape::Dict => 0x4443_5431, // "DCT1"
        }
    }

    pub(crate) const fn what(self) -> &'static str {
        match self {
            Shape::List => "shared list",
            Shape::Dict => "shared dict",
        }
    }

    /// Words per index slot.
    pub(crate) const fn slot_words(self) -> u64 {
        match self {
            Shape::List => 1,
            Shape::Dict => 2,
        }
    }

    /// Index slots per bank for `capacity` entries.
    pub(crate) fn slots(self, capacity: u64) -> u64 {
        match self {
            Shape::List => capacity,
            // At most three quarters full, a power of two.
            Shape::Dict => (capacity + capacity / 3 + 1).next_power_of_two().max(8),
        }
    }
}

/// The configuration a raw container is made from: a [`ContainerConfig`]
/// and the fingerprints of its key and value types (0 for raw bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawContainerConfig {
    /// The size of the container.
    pub config: ContainerConfig,
    /// The fingerprint of the key (or item) type, checked on attach.
    pub key_type: u64,
    /// The fingerprint of the value type (0 for a list).
    pub value_type: u64,
}

impl RawContainerConfig {
    /// A container of byte strings of `config`.
    pub fn bytes(config: ContainerConfig) -> Self {
        RawContainerConfig {
            config,
            key_type: 0,
            value_type: 0,
        }
    }
}

/// Where everything of a container lies, in bytes from its start: derived
/// from its configuration and checked against the memory it has. Every
/// process computes its own, once, and never reads the configuration
/// words again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub(crate) shape: Shape,
    pub(crate) capacity: u64,
    pub(crate) slots: u64,
    pub(crate) arena: u64,
    pub(crate) journal: u64,
    /// Offsets of the two index banks.
    pub(crate) index: [u64; 2],
    /// Offsets of the two arena banks.
    pub(crate) arenas: [u64; 2],
    pub(crate) total: u64,
}

impl Layout {
    /// The layout of a `shape` of `cfg`, or why it is refused (naming the
    /// limit).
    pub(crate) fn new(shape: Shape, cfg: &ContainerConfig) -> Result<Layout, String> {
        if cfg.capacity == 0 || cfg.capacity > MAX_CAPACITY {
            return Err(format!(
                "capacity {} is not in 1..={MAX_CAPACITY}",
                cfg.capacity
            ));
        }
        if cfg.arena_bytes == 0 || cfg.arena_bytes > MAX_ARENA_BYTES {
            return Err(format!(
                "arena_bytes {} is not in 1..={MAX_ARENA_BYTES}",
                cfg.arena_bytes
            ));
        }
        if !(MIN_JOURNAL_ENTRIES..=MAX_JOURNAL).contains(&cfg.journal_entries) {
            return Err(format!(
                "journal_entries {} is not in {MIN_JOURNAL_ENTRIES}..={MAX_JOURNAL}",
                cfg.journal_entries
            ));
        }
        let capacity = cfg.capacity as u64;
        let slots = shape.slots(capacity);
        let bank = slots * shape.slot_words() * 8;
        let arena = (cfg.arena_bytes as u64).next_multiple_of(8);
        let journal = cfg.journal_entries as u64;
        let index0 = HEADER_BYTES + journal * ENTRY_BYTES;
        let arena0 = index0 + 2 * bank;
        let total = arena0 + 2 * arena;
        if total > isize::MAX as u64 / 2 {
            return Err(format!("{total} bytes do not fit this address space"));
        }
        Ok(Layout {
            shape,
            capacity,
            slots,
            arena: cfg.arena_bytes as u64,
            journal,
            index: [index0, index0 + bank],
            arenas: [arena0, arena0 + arena],
            total,
        })
    }

    /// Bytes of one index bank.
    pub(crate) fn bank_bytes(&self) -> u64 {
        self.slots * self.shape.slot_words() * 8
    }

    /// The configuration it was made from.
    pub fn config(&self) -> ContainerConfig {
        ContainerConfig {
            capacity: self.capacity as usize,
            arena_bytes: self.arena as usize,
            journal_entries: self.journal as usize,
        }
    }

    /// Whether `off` is a word an update may change in place and so a
    /// journal entry may name: a state word other than the journal's
    /// length, or a word of an index bank.
    pub(crate) fn is_undo_target(&self, off: u64) -> bool {
        if !off.is_multiple_of(8) {
            return false;
        }
        let state = STATE_OFFSET..STATE_OFFSET + 8 * STATE_WORDS as u64;
        let banks = self.index[0]..self.index[1] + self.bank_bytes();
        state.contains(&off) || banks.contains(&off)
    }
}

/// The header of a container: its lock, what it is, and its state words.
/// `#[repr(C)]`, 256 bytes of atomics, valid for every bit pattern.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) lock: RawMutex,
    tag: AtomicU32,
    reserved0: AtomicU32,
    capacity: AtomicU64,
    arena: AtomicU64,
    journal: AtomicU64,
    key_type: AtomicU64,
    value_type: AtomicU64,
    total: AtomicU64,
    /// Takeovers from dead holders (statistics; not journaled).
    pub(crate) recoveries: AtomicU64,
    reserved1: [AtomicU64; 5],
    /// The state words, journaled ([`ACTIVE`], [`LEN`], ...).
    pub(crate) state: [AtomicU64; STATE_WORDS],
    /// Valid entries of the journal; 0 outside an update.
    pub(crate) journal_len: AtomicU64,
    reserved2: [AtomicU64; 10],
}

multiproc_core::assert_layout!(Header, size = 256, align = 8);
const _: () = assert!(std::mem::offset_of!(Header, state) as u64 == STATE_OFFSET);

impl Header {
    /// The bytes a `shape` of `cfg` needs.
    pub(crate) fn memory_size(
        shape: Shape,
        cfg: &RawContainerConfig,
    ) -> Result<usize, ObjectError> {
        let layout =
            Layout::new(shape, &cfg.config).map_err(|r| super::invalid(shape.what(), &r))?;
        Ok(layout.total as usize)
    }

    /// Writes an empty container into `mem`.
    ///
    /// # Safety
    /// `mem` is valid for writes of `memory_size` bytes, 8-aligned, and no
    /// other process uses it yet.
    pub(crate) unsafe fn init_in(mem: NonNull<u8>, shape: Shape, cfg: &RawContainerConfig) {
        let Ok(layout) = Layout::new(shape, &cfg.config) else {
            // `memory_size` refused this configuration, so `Placed` never
            // calls this with it; leave the memory as it is (attach fails).
            return;
        };
        let header = Header {
            lock: RawMutex::new(),
            tag: AtomicU32::new(shape.tag()),
            reserved0: AtomicU32::new(0),
            capacity: AtomicU64::new(layout.capacity),
            arena: AtomicU64::new(layout.arena),
            journal: AtomicU64::new(layout.journal),
            key_type: AtomicU64::new(cfg.key_type),
            value_type: AtomicU64::new(cfg.value_type),
            total: AtomicU64::new(layout.total),
            recoveries: AtomicU64::new(0),
            reserved1: Default::default(),
            state: Default::default(),
            journal_len: AtomicU64::new(0),
            reserved2: Default::default(),
        };
        // SAFETY: the caller gives `layout.total` writable, 8-aligned bytes
        // nobody else uses; the header and index bank 0 lie inside them
        // (`Layout::new` computed both from the same configuration).
        unsafe {
            mem.cast::<Header>().write(header);
            let bank = mem.as_ptr().add(layout.index[0] as usize);
            std::ptr::write_bytes(bank, 0, layout.bank_bytes() as usize);
        }
    }

    /// Checks a header another process wrote and computes its layout.
    ///
    /// # Errors
    /// [`ObjectError::WrongObject`] for another tag or an inconsistent
    /// configuration, [`ObjectError::TooSmall`] if the container needs more
    /// than `len` bytes.
    pub(crate) fn check(&self, shape: Shape, len: usize) -> Result<Layout, ObjectError> {
        let what = shape.what();
        multiproc_core::object::check_tag(what, shape.tag(), self.tag.load(Ordering::Acquire))?;
        self.lock.check_tag(super::tag::MUTEX, what)?;
        let word = |w: &AtomicU64| usize::try_from(w.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        let cfg = ContainerConfig {
            capacity: word(&self.capacity),
            arena_bytes: word(&self.arena),
            journal_entries: word(&self.journal),
        };
        let layout = Layout::new(shape, &cfg).map_err(|r| super::corrupt(what, r))?;
        let total = self.total.load(Ordering::Relaxed);
        if total != layout.total {
            return Err(super::corrupt(
                what,
                format!(
                    "its size {total} does not match its configuration ({})",
                    layout.total
                ),
            ));
        }
        if layout.total > len as u64 {
            return Err(ObjectError::TooSmall {
                needed: layout.total as usize,
                available: len,
            });
        }
        Ok(layout)
    }

    /// Checks the fingerprints of the key and value types recorded at
    /// creation against `expected`.
    ///
    /// # Errors
    /// [`ObjectError::WrongObject`] naming the type expected.
    pub(crate) fn check_types(
        &self,
        shape: Shape,
        expected: (u64, u64),
        names: (&str, &str),
    ) -> Result<(), ObjectError> {
        let found = (
            self.key_type.load(Ordering::Relaxed),
            self.value_type.load(Ordering::Relaxed),
        );
        for (found, expected, name) in [
            (found.0, expected.0, names.0),
            (found.1, expected.1, names.1),
        ] {
            if found != expected {
                return Err(super::corrupt(
                    shape.what(),
                    format!(
                        "it holds another type than {name} (fingerprint {found:#x}, \
                         expected {expected:#x})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Takeovers from dead holders so far.
    pub(crate) fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }
}

/// A 64-bit hash of a key's bytes, the same in every process and build (it
/// is part of a dict's layout): eight bytes at a time, multiplied and
/// folded, then mixed.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K) ^ 0x2545_f491_4f6c_dd1d;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 32)
}

/// Copies `len` bytes from `src` to `dst`: items of up to 16 bytes (keys
/// and numbers, mostly) with two unaligned loads and stores rather than a
/// call into the C library.
///
/// # Safety
/// `src` is readable and `dst` writable for `len` bytes, and they do not
/// overlap.
#[inline(always)]
pub(crate) unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: every access below lies in `0..len` of `src` or `dst`: the
    // two chunks of 8 (or 4) bytes start at 0 and at `len - 8` (`len - 4`),
    // both inside for a `len` of 8..=16 (4..8); the caller's promise does
    // the rest.
    unsafe {
        if (8..=16).contains(&len) {
            let (a, b) = (
                src.cast::<u64>().read_unaligned(),
                src.add(len - 8).cast::<u64>().read_unaligned(),
            );
            dst.cast::<u64>().write_unaligned(a);
            dst.add(len - 8).cast::<u64>().write_unaligned(b);
        } else if (4..8).contains(&len) {
            let (a, b) = (
                src.cast::<u32>().read_unaligned(),
                src.add(len - 4).cast::<u32>().read_unaligned(),
            );
            dst.cast::<u32>().write_unaligned(a);
            dst.add(len - 4).cast::<u32>().write_unaligned(b);
        } else {
            std::ptr::copy_nonoverlapping(src, dst, len);
        }
    }
}

/// Whether the `bytes.len()` bytes at `shared` equal `bytes`, short ones
/// compared as in [`copy_bytes`].
///
/// # Safety
/// `shared` is readable for `bytes.len()` bytes.
#[inline(always)]
pub(crate) unsafe fn equal_bytes(shared: *const u8, bytes: &[u8]) -> bool {
    let len = bytes.len();
    let b = bytes.as_ptr();
    // SAFETY: as in `copy_bytes`: both chunks lie in `0..len` of each.
    unsafe {
        if (8..=16).contains(&len) {
            let word = |p: *const u8, at: usize| p.add(at).cast::<u64>().read_unaligned();
            word(shared, 0) == word(b, 0) && word(shared, len - 8) == word(b, len - 8)
        } else if (4..8).contains(&len) {
            let word = |p: *const u8, at: usize| p.add(at).cast::<u32>().read_unaligned();
            word(shared, 0) == word(b, 0) && word(shared, len - 4) == word(b, len - 4)
        } else {
            std::slice::from_raw_parts(shared, len) == bytes
        }
    }
}

/// An error for a word of the container found out of its bounds.
pub(crate) fn out_of_bounds(what: &str, value: u64, limit: u64) -> ContainerError {
    ContainerError::corrupted(format!("{what} {value} is beyond its limit {limit}"))
}

/// What a raw container (a transparent [`Header`] of one [`Shape`]) is
/// besides its own operations: `Shareable`, its [`ShmObject`] placement,
/// and the checked layout, the two-step and one-step locking and the
/// recovery count, for the container `$raw` whose transaction type `$tx`
/// holds the lock guard `g` and a rebuild count `rebuilds`.
///
/// [`ShmObject`]: multiproc_core::object::ShmObject
macro_rules! raw_container {
    (
        $raw:ident, $tx:ident, $shape:expr, $what:literal,
        kind: $kind:expr $(,)?
    ) => {
        // SAFETY: a transparent `Header`: `#[repr(C)]` atomics, no
        // pointers, no drop glue, valid for every bit pattern.
        unsafe impl multiproc_core::Shareable for $raw {}

        // SAFETY: `init_in` writes a whole empty container into the
        // `memory_size` bytes it is given; `attach` checks the tag, the
        // configuration and that the container fits `len`; every later
        // access goes through the `Layout` computed there and checks what
        // it reads.
        unsafe impl multiproc_core::object::ShmObject for $raw {
            const KIND: multiproc_core::Kind = $kind;
            type Config = $crate::raw::store::RawContainerConfig;

            fn memory_size(
                cfg: &$crate::raw::store::RawContainerConfig,
            ) -> Result<usize, multiproc_core::object::ObjectError> {
                $crate::raw::store::Header::memory_size($shape, cfg)
            }

            unsafe fn init_in(
                mem: std::ptr::NonNull<u8>,
                _len: usize,
                cfg: $crate::raw::store::RawContainerConfig,
            ) {
                // SAFETY: the caller's promise, passed on.
                unsafe { $crate::raw::store::Header::init_in(mem, $shape, &cfg) }
            }

            unsafe fn attach<'a>(
                mem: std::ptr::NonNull<u8>,
                len: usize,
            ) -> Result<&'a $raw, multiproc_core::object::ObjectError> {
                // SAFETY: the caller's promise, passed on.
                let c = unsafe { multiproc_core::object::checked_ref::<$raw>(mem, len)? };
                c.header.check($shape, len)?;
                Ok(c)
            }
        }

        impl $raw {
            /// The container's layout, checked against the `len` bytes it
            /// has.
            ///
            /// # Errors
            /// As [`ShmObject::attach`](multiproc_core::object::ShmObject::attach).
            pub fn layout(
                &self,
                len: usize,
            ) -> Result<$crate::raw::store::Layout, multiproc_core::object::ObjectError> {
                self.header.check($shape, len)
            }

            #[doc = concat!("Locks the ", $what, " for an update, rolling back a dead holder's first.")]
            ///
            /// # Errors
            /// See [`ContainerError`](crate::container::ContainerError): the
            /// lock's errors, or a corrupted state.
            ///
            /// # Safety
            #[doc = concat!("`mem` is this ", $what, "'s address, valid for `layout.total` bytes")]
            #[doc = concat!("for `'a`, and `layout` came from [`", stringify!($raw), "::layout`] of this ", $what, ".")]
            #[inline(always)]
            pub unsafe fn lock<'a, J: multiproc_core::liveness::Judge>(
                &'a self,
                mem: std::ptr::NonNull<u8>,
                layout: &'a $crate::raw::store::Layout,
                judge: &J,
                strategy: multiproc_core::wait::WaitStrategy,
                timeout: Option<std::time::Duration>,
            ) -> Result<$tx<'a>, crate::container::ContainerError> {
                // SAFETY: the caller's promise, passed on.
                let g = unsafe { self.header.lock(mem, layout, judge, strategy, timeout)? };
                Ok($tx { g, rebuilds: 0 })
            }

            #[doc = concat!("[`", stringify!($raw), "::lock`] in two steps, so that the caller builds the")]
            /// transaction where it keeps it: takes the lock.
            #[inline(always)]
            pub(crate) fn acquire<J: multiproc_core::liveness::Judge>(
                &self,
                judge: &J,
                strategy: multiproc_core::wait::WaitStrategy,
                timeout: Option<std::time::Duration>,
            ) -> Result<$crate::raw::mutex::Acquired, crate::container::ContainerError> {
                self.header.acquire(judge, strategy, timeout)
            }

            #[doc = concat!("The second step of [`", stringify!($raw), "::lock`]: the held ", $what, ", to")]
            #[doc = concat!("[`begin`](", stringify!($tx), "::begin).")]
            ///
            /// # Safety
            #[doc = concat!("The calling thread holds the lock ([`", stringify!($raw), "::acquire`]); `mem`")]
            #[doc = concat!("and `layout` as for [`", stringify!($raw), "::lock`].")]
            #[inline(always)]
            pub(crate) unsafe fn held<'a>(
                &'a self,
                mem: std::ptr::NonNull<u8>,
                layout: &'a $crate::raw::store::Layout,
            ) -> $tx<'a> {
                $tx {
                    // SAFETY: the caller's promise, passed on.
                    g: unsafe { $crate::raw::journal::Locked::held(mem, layout, &self.header) },
                    rebuilds: 0,
                }
            }

            /// Takeovers from dead holders so far (each rolled back, if it
            /// was in the middle of an update).
            pub fn recoveries(&self) -> u64 {
                self.header.recoveries()
            }
        }
    };
}
pub(crate) use raw_container;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_name_their_limits() {
        let ok = Layout::new(Shape::Dict, &ContainerConfig::new(100, 1000)).unwrap();
        assert_eq!(ok.slots, 256);
        assert_eq!(ok.index[1] - ok.index[0], 256 * 16);
        assert!(ok.total > 2 * 1000 + 2 * 256 * 16);
        let list = Layout::new(Shape::List, &ContainerConfig::new(100, 1000)).unwrap();
        assert_eq!(list.slots, 100);
        for (cfg, limit) in [
            (ContainerConfig::new(0, 10), "capacity"),
            (ContainerConfig::new(MAX_CAPACITY + 1, 10), "capacity"),
            (ContainerConfig::new(1, 0), "arena_bytes"),
            (
                ContainerConfig::new(1, 10).with_journal_entries(3),
                "journal_entries",
            ),
        ] {
            let e = Layout::new(Shape::List, &cfg).unwrap_err();
            assert!(e.contains(limit), "{e}");
        }
    }

    #[test]
    fn a_dict_never_fills_its_slots() {
        for cap in [1u64, 3, 6, 7, 100, 4096] {
            let slots = Shape::Dict.slots(cap);
            assert!(slots.is_power_of_two());
            assert!(cap * 4 <= slots * 3, "{cap} entries in {slots} slots");
        }
    }

    #[test]
    fn undo_targets_are_state_words_and_index_words() {
        let l = Layout::new(Shape::List, &ContainerConfig::new(10, 100)).unwrap();
        assert!(l.is_undo_target(STATE_OFFSET));
        assert!(l.is_undo_target(STATE_OFFSET + 8 * (STATE_WORDS as u64 - 1)));
        assert!(
            !l.is_undo_target(STATE_OFFSET + 8 * STATE_WORDS as u64),
            "journal_len"
        );
        assert!(!l.is_undo_target(0), "the lock");
        assert!(l.is_undo_target(l.index[0]));
        assert!(l.is_undo_target(l.index[1] + 72));
        assert!(!l.is_undo_target(l.index[1] + 80), "past the banks");
        assert!(!l.is_undo_target(l.index[0] + 3), "misaligned");
        assert!(!l.is_undo_target(l.arenas[0]));
    }

    #[test]
    fn short_copies_and_comparisons_cover_every_length() {
        let src: Vec<u8> = (0..40).collect();
        for len in 0..40 {
            let mut dst = vec![0xffu8; 40];
            // SAFETY: both buffers hold 40 bytes, `len < 40`.
            unsafe { copy_bytes(src.as_ptr(), dst.as_mut_ptr(), len) };
            assert_eq!(dst[..len], src[..len]);
            assert!(dst[len..].iter().all(|&b| b == 0xff), "{len}");
            // SAFETY: as above.
            assert!(unsafe { equal_bytes(src.as_ptr(), &dst[..len]) });
            for i in 0..len {
                let mut other = dst[..len].to_vec();
                other[i] ^= 1;
                // SAFETY: as above.
                assert!(!unsafe { equal_bytes(src.as_ptr(), &other) }, "{len} {i}");
            }
        }
    }

    #[test]
    fn the_hash_spreads_small_keys() {
        let hashes: std::collections::HashSet<u64> = (0u64..10_000)
            .map(|k| hash_bytes(&k.to_le_bytes()) & 0xffff)
            .collect();
        assert!(hashes.len() > 8_000, "{}", hashes.len());
        assert_ne!(hash_bytes(b""), hash_bytes(&[0]));
        assert_ne!(hash_bytes(&[1, 0]), hash_bytes(&[1]));
    }
}
