//! Ring memory on the heap, for tests, tools and rings used by the threads
//! of one process: [`HeapMemory`], zeroed, 128-byte aligned and shared by
//! its clones, so a ring and every end made from it keep it alive.
//!
//! ```
//! use multiproc_core::liveness::OsJudge;
//! use multiproc_queue::raw::heap::HeapMemory;
//! use multiproc_queue::raw::spsc::{self, RawRing};
//!
//! let cfg = spsc::Config::new(64);
//! let mem = HeapMemory::new(spsc::memory_size(&cfg)?);
//! let ring = RawRing::init(mem, &cfg)?;
//! let mut tx = ring.producer(OsJudge)?;
//! let mut rx = ring.consumer(OsJudge)?;
//! tx.try_push(b"hi").unwrap();
//! let mut buf = [0u8; 8];
//! assert_eq!(rx.try_pop_into(&mut buf), Ok(Some(2)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{Addressable, Memory, PtrMem};
use crate::primitive::{AtomicU32, AtomicU64};
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

/// Zeroed, 128-byte aligned heap memory for a ring. Cloning shares it; it
/// is freed when the last clone goes.
#[derive(Clone, Debug)]
pub struct HeapMemory {
    block: Arc<Block>,
}

#[derive(Debug)]
struct Block {
    mem: PtrMem,
    layout: Layout,
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `HeapMemory::new` with this layout; the last
        // clone (and with it every ring and end holding one) is gone.
        unsafe { std::alloc::dealloc(self.mem.addr(0), self.layout) };
    }
}

impl HeapMemory {
    /// `len` zeroed bytes (at least one), 128-byte aligned.
    ///
    /// # Panics
    /// If the allocation fails or `len` is larger than the address space
    /// allows, as `Vec` does.
    pub fn new(len: usize) -> HeapMemory {
        let layout = Layout::from_size_align(len.max(1), 128).expect("a ring size fits in isize");
        // SAFETY: the layout has a non-zero size.
        let Some(base) = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }) else {
            std::alloc::handle_alloc_error(layout)
        };
        HeapMemory {
            block: Arc::new(Block {
                // SAFETY: a fresh allocation of `len` bytes, 128-aligned,
                // freed only when the last clone of this memory goes.
                mem: unsafe { PtrMem::new(base, len) },
                layout,
            }),
        }
    }

    /// The first byte, for tests that scribble over the ring as a hostile
    /// peer would (with atomic or volatile writes).
    pub fn as_ptr(&self) -> *mut u8 {
        self.block.mem.addr(0)
    }
}

// SAFETY: delegates to the `PtrMem` of an allocation that lives as long as
// any clone of this value.
unsafe impl Memory for HeapMemory {
    #[inline(always)]
    fn len(&self) -> usize {
        self.block.mem.len()
    }

    #[inline(always)]
    unsafe fn u64_at(&self, off: usize) -> &AtomicU64 {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.block.mem.u64_at(off) }
    }

    #[inline(always)]
    unsafe fn u32_at(&self, off: usize) -> &AtomicU32 {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.block.mem.u32_at(off) }
    }

    #[inline(always)]
    unsafe fn copy_in(&self, off: usize, src: &[u8]) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.block.mem.copy_in(off, src) }
    }

    #[inline(always)]
    unsafe fn copy_out(&self, off: usize, dst: &mut [u8]) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.block.mem.copy_out(off, dst) }
    }

    #[inline(always)]
    unsafe fn notify(&self, off: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.block.mem.notify(off) }
    }

    #[inline(always)]
    fn prefetch_for_write(&self, off: usize) {
        self.block.mem.prefetch_for_write(off);
    }

    unsafe fn clear(&self, len: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.block.mem.clear(len) }
    }
}

// SAFETY: the same addresses as the `PtrMem` every method delegates to.
unsafe impl Addressable for HeapMemory {
    #[inline(always)]
    fn addr(&self, off: usize) -> *mut u8 {
        self.block.mem.addr(off)
    }
}
