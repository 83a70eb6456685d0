//! The ledger: a shared segment where children record what they did, so the
//! figures survive their SIGKILL.
//!
//! Every child writes only atomics of its own role slot (and the bits of the
//! sequence bitmap for messages it received). A word updated just before a
//! kill is either written or not: the runner allows one message of slack per
//! process killed in the middle of an operation, which the role's `PHASE`
//! word tells it.

use multiproc_core::header::layout_hash;
use multiproc_core::{Kind, Segment, SegmentError};
use std::sync::atomic::{AtomicU64, Ordering};

/// Role slots in a ledger.
pub const SLOTS: usize = 16;
/// Words per role slot.
pub const SLOT_WORDS: usize = 16;
/// Message sequence numbers tracked per producer slot.
pub const SEQS_PER_PRODUCER: u64 = 1 << 20;
/// Producer slots with a bitmap.
pub const BITMAPS: usize = 4;

const GLOBAL_WORDS: usize = 16;
const BITMAP_WORDS: usize = (SEQS_PER_PRODUCER / 64) as usize;
const WORDS: usize = GLOBAL_WORDS + SLOTS * SLOT_WORDS + BITMAPS * BITMAP_WORDS;

/// The segment kind of a ledger.
pub const KIND: Kind = Kind::new(
    "ipc-chaos/ledger",
    1,
    layout_hash(&[
        SLOTS as u64,
        SLOT_WORDS as u64,
        BITMAPS as u64,
        SEQS_PER_PRODUCER,
    ]),
);

/// Global words.
pub mod global {
    /// Non-zero: children finish their loop and exit cleanly.
    pub const STOP: usize = 0;
    /// Non-zero: the waiters' condition holds (condvar scenario).
    pub const GO: usize = 1;
}

/// Words of a role slot.
pub mod field {
    /// Operations begun (a producer: sequence numbers handed out).
    pub const STARTED: usize = 0;
    /// Operations finished (a producer: sends that returned `Ok`).
    pub const COMPLETED: usize = 1;
    /// 1 while inside an operation whose result is not yet recorded.
    pub const PHASE: usize = 2;
    /// Messages received and recorded.
    pub const RECEIVED: usize = 3;
    /// Messages that failed their checks.
    pub const TORN: usize = 4;
    /// Messages received twice.
    pub const DUPS: usize = 5;
    /// Messages the API reported lost to this role (broadcast lag).
    pub const LOST: usize = 6;
    /// Invariant violations seen.
    pub const VIOLATIONS: usize = 7;
    /// Calls that overran their timeout by more than the grace.
    pub const OVERLONG: usize = 8;
    /// Calls that returned a typed error.
    pub const TYPED_ERRORS: usize = 9;
    /// Calls that returned a value.
    pub const OK_CALLS: usize = 10;
    /// The child reached its steady state (attached, waiting, ...).
    pub const READY: usize = 11;
    /// Outcome code of a waiter (see the waiters scenario).
    pub const OUTCOME: usize = 12;
    /// Lock takeovers after a dead holder (`OwnerDied`).
    pub const RECOVERIES: usize = 13;
    /// Out-of-order messages (a stream that must stay ordered).
    pub const REORDERED: usize = 14;
}

/// A ledger mapping.
#[derive(Debug)]
pub struct Ledger {
    seg: Segment,
}

impl Ledger {
    /// Creates a named ledger, all zero.
    ///
    /// # Errors
    /// Those of creating the segment.
    pub fn create(name: &str) -> Result<Ledger, SegmentError> {
        let seg = Segment::builder(KIND).name(name).size(WORDS * 8).create()?;
        Ok(Ledger { seg })
    }

    /// Opens the named ledger another process created.
    ///
    /// # Errors
    /// Those of opening the segment.
    pub fn open(name: &str) -> Result<Ledger, SegmentError> {
        let seg = Segment::builder(KIND).name(name).size(WORDS * 8).open()?;
        Ok(Ledger { seg })
    }

    fn word_at(&self, index: usize) -> &AtomicU64 {
        // In bounds by construction (index < WORDS, payload >= WORDS * 8);
        // a failure would be a bug of this module, so it falls back to a
        // word nobody reads rather than panicking in a child.
        static SINK: AtomicU64 = AtomicU64::new(0);
        self.seg
            .get::<AtomicU64>((index * 8) as u64)
            .unwrap_or(&SINK)
    }

    /// A global word.
    pub fn global(&self, word: usize) -> &AtomicU64 {
        self.word_at(word % GLOBAL_WORDS)
    }

    /// A word of a role slot.
    pub fn slot(&self, slot: usize, word: usize) -> &AtomicU64 {
        self.word_at(GLOBAL_WORDS + (slot % SLOTS) * SLOT_WORDS + word % SLOT_WORDS)
    }

    /// Reads a word of a role slot.
    pub fn get(&self, slot: usize, word: usize) -> u64 {
        self.slot(slot, word).load(Ordering::Acquire)
    }

    /// Adds to a word of a role slot.
    pub fn add(&self, slot: usize, word: usize, n: u64) {
        self.slot(slot, word).fetch_add(n, Ordering::AcqRel);
    }

    /// Sets a word of a role slot.
    pub fn set(&self, slot: usize, word: usize, v: u64) {
        self.slot(slot, word).store(v, Ordering::Release);
    }

    /// Whether the runner asked children to stop.
    pub fn stopping(&self) -> bool {
        self.global(global::STOP).load(Ordering::Acquire) != 0
    }

    /// Marks sequence number `n` of producer `producer` received; returns
    /// `false` if it was marked already (a duplicate) or is out of range.
    pub fn mark(&self, producer: usize, n: u64) -> bool {
        if producer >= BITMAPS || n >= SEQS_PER_PRODUCER {
            return false;
        }
        let index = GLOBAL_WORDS + SLOTS * SLOT_WORDS + producer * BITMAP_WORDS + (n / 64) as usize;
        let bit = 1u64 << (n % 64);
        self.word_at(index).fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// How many sequence numbers of `producer` are marked.
    pub fn marked(&self, producer: usize) -> u64 {
        if producer >= BITMAPS {
            return 0;
        }
        let base = GLOBAL_WORDS + SLOTS * SLOT_WORDS + producer * BITMAP_WORDS;
        (0..BITMAP_WORDS)
            .map(|i| u64::from(self.word_at(base + i).load(Ordering::Acquire).count_ones()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_once_and_counts() {
        let name = multiproc_core::name::unique_name("chaos-ledger-unit");
        let l = Ledger::create(&name).unwrap();
        let o = Ledger::open(&name).unwrap();
        assert!(l.mark(1, 5));
        assert!(!o.mark(1, 5));
        assert!(o.mark(1, SEQS_PER_PRODUCER - 1));
        assert!(!o.mark(1, SEQS_PER_PRODUCER));
        assert_eq!(l.marked(1), 2);
        assert_eq!(l.marked(0), 0);
        o.add(3, field::RECEIVED, 2);
        assert_eq!(l.get(3, field::RECEIVED), 2);
    }
}
