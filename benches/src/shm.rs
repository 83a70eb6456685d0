//! Shared memory for the baselines: an anonymous `multiproc_core::Segment` (a
//! memfd) created before the fork, so parent and child map the same pages.

use multiproc_core::{Kind, Segment};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Bytes between two independently written fields: x86-64 prefetches cache
/// lines in pairs, so 128 bytes keeps two writers from sharing a pair.
pub const LINE: usize = 128;

/// An anonymous shared mapping of at least `len` bytes, prefaulted.
#[derive(Debug)]
pub struct Shm {
    seg: Segment,
}

impl Shm {
    /// Creates a prefaulted anonymous segment with a payload of `len` bytes.
    ///
    /// # Errors
    /// The segment error, as text.
    pub fn new(len: usize) -> Result<Shm, String> {
        let seg = Segment::builder(Kind::BYTES)
            .size(len.max(LINE))
            .prefault(true)
            .create()
            .map_err(|e| format!("anonymous segment of {len} bytes: {e}"))?;
        Ok(Shm { seg })
    }

    /// The payload length.
    pub fn len(&self) -> usize {
        self.seg.payload_len()
    }

    /// Whether the payload is empty (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment, for code that wants the multiproc-core view.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// A raw pointer to `len` bytes at `off`, checked against the payload.
    ///
    /// # Panics
    /// If the range is outside the payload or `off` is not aligned to
    /// `align`: a bug in the caller, found on the first run.
    pub fn raw(&self, off: usize, len: usize, align: usize) -> *mut u8 {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len()),
            "range {off}+{len} outside a payload of {}",
            self.len()
        );
        assert!(
            off.is_multiple_of(align),
            "offset {off} is not {align}-aligned"
        );
        // SAFETY: `off + len <= payload_len`, checked above, so the result
        // stays inside the mapping; the payload start is 128-aligned.
        unsafe { self.seg.payload_ptr().as_ptr().add(off) }
    }

    /// The atomic 64-bit word at `off`.
    pub fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.seg
            .get::<AtomicU64>(off as u64)
            .expect("offset inside the payload")
    }

    /// The atomic 32-bit word at `off`.
    pub fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.seg
            .get::<AtomicU32>(off as u64)
            .expect("offset inside the payload")
    }

    /// `len` bytes at `off` as a mutable slice.
    ///
    /// # Safety
    /// No other reference to these bytes may be alive in this process while
    /// the slice is used, and the other process must not write them at the
    /// same time (the measurements hand them over through an atomic flag).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, off: usize, len: usize) -> &mut [u8] {
        let p = self.raw(off, len, 1);
        // SAFETY: in bounds (checked by `raw`); exclusivity is the caller's
        // contract.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }
}
