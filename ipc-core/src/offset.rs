//! Offsets, never pointers: positions inside a segment, checked before use.
//!
//! A pointer means nothing in another process (each maps the segment at its
//! own address), and an offset read from shared memory may have been written
//! by a faulty or hostile peer. Every offset is therefore checked against the
//! size of the region it points into before it is turned into a pointer.

use crate::error::OffsetError;
use std::marker::PhantomData;
use std::ops::Range;

/// Checks that `len` bytes at `offset` fit in a region of `size` bytes, and
/// returns the byte range.
///
/// ```
/// use multiproc_core::offset::check_range;
/// assert_eq!(check_range(8, 8, 16), Ok(8..16));
/// assert!(check_range(9, 8, 16).is_err());
/// assert!(check_range(u64::MAX, 2, 16).is_err());
/// ```
///
/// # Errors
/// [`OffsetError::OutOfBounds`] if the range passes `size` or overflows.
#[inline]
pub fn check_range(offset: u64, len: u64, size: u64) -> Result<Range<usize>, OffsetError> {
    match offset.checked_add(len) {
        Some(end) if end <= size && end <= usize::MAX as u64 => Ok(offset as usize..end as usize),
        _ => Err(OffsetError::OutOfBounds { offset, len, size }),
    }
}

/// The offset of a `T` inside a segment's payload. It holds no pointer and
/// can itself be stored in shared memory.
#[repr(transparent)]
pub struct ShmOffset<T> {
    raw: u64,
    _type: PhantomData<fn() -> T>,
}

// SAFETY: a transparent `u64`; every bit pattern is a value (checked when
// resolved), no pointer, no drop glue.
unsafe impl<T: 'static> crate::Shareable for ShmOffset<T> {}

impl<T> Clone for ShmOffset<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ShmOffset<T> {}
impl<T> std::fmt::Debug for ShmOffset<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShmOffset({})", self.raw)
    }
}
impl<T> PartialEq for ShmOffset<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T> Eq for ShmOffset<T> {}

impl<T: crate::Shareable> ShmOffset<T> {
    /// An offset from the start of the payload, not yet checked.
    pub const fn new(raw: u64) -> Self {
        ShmOffset {
            raw,
            _type: PhantomData,
        }
    }

    /// The offset in bytes.
    pub const fn get(self) -> u64 {
        self.raw
    }
}
