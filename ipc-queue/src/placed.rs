//! How the raw rings meet [`multiproc_core::object`]: the [`ShmObject`]
//! contract of a ring's control block, written once ([`ring_object!`]).
//!
//! The raw ring does the work over a [`PtrMem`](crate::raw::PtrMem) of the
//! object's bytes: it knows its memory size, writes a fresh ring, and
//! checks one another process wrote. The object adds its kind, and any
//! check of its own (a queue ring must be joinable, a pipe holds two rings).
//!
//! [`ShmObject`]: multiproc_core::object::ShmObject

use crate::raw::PtrMem;
use multiproc_core::object::{Placed, ShmObject};
use multiproc_core::Segment;
use std::sync::Arc;

/// A raw ring and the segment that keeps its memory mapped: what a ring
/// handle and the endpoints made from it share.
#[derive(Debug)]
pub(crate) struct InSegment<R> {
    pub(crate) raw: R,
    pub(crate) seg: Arc<Segment>,
}

impl<R> InSegment<R> {
    /// The raw ring `view` makes of the memory `placed` checked.
    pub(crate) fn new<O: ShmObject>(
        placed: &Placed<O>,
        view: impl FnOnce(PtrMem) -> R,
    ) -> InSegment<R> {
        let (mem, len) = placed.memory();
        // SAFETY: the bytes `Placed` checked, inside the segment's mapping,
        // which this value keeps beside the ring.
        let mem = unsafe { PtrMem::new(mem, len) };
        InSegment {
            raw: view(mem),
            seg: Arc::clone(placed.segment()),
        }
    }
}

/// The accessors of a handle on a slotted ring (a field `shared` derefs to
/// an [`InSegment`] of a ring with `capacity()` and `slot_size()`).
macro_rules! slotted_ring_accessors {
    ($t:ident) => {
        impl $t {
            #[doc = concat!("The segment's descriptor, to pass to a child ([`", stringify!($t), "::from_fd`]).")]
            pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.shared.seg.fd()
            }

            /// The segment holding the ring.
            pub fn segment(&self) -> &multiproc_core::Segment {
                &self.shared.seg
            }

            /// The segment's name, if it has one.
            pub fn name(&self) -> Option<&str> {
                self.shared.seg.name()
            }

            /// Number of slots.
            pub fn capacity(&self) -> usize {
                self.shared.raw.capacity()
            }

            /// The largest message in bytes.
            pub fn slot_size(&self) -> usize {
                self.shared.raw.slot_size()
            }

            /// The largest message in bytes: the same as `slot_size`.
            pub fn max_message_len(&self) -> usize {
                self.shared.raw.slot_size()
            }
        }
    };
}
pub(crate) use slotted_ring_accessors;

/// Implements [`ShmObject`](multiproc_core::object::ShmObject) for the control
/// block `$obj` of a raw ring:
///
/// - `size`: `fn(&Config) -> Result<usize, ObjectError>`, the memory a ring
///   of the configuration needs, checked before anything is allocated;
/// - `init`: `fn(PtrMem, &Config)`, writes a fresh ring there;
/// - `check`: `fn(PtrMem) -> Result<(), ObjectError>`, checks a ring another
///   process wrote, everything the ring will read.
macro_rules! ring_object {
    // A ring whose raw module has the usual `memory_size(&Config)`,
    // `$ring::init(mem, &Config)` and `$ring::attach(mem)`.
    ($obj:ty, $kind:expr, $what:expr, $module:ident::$ring:ident) => {
        $crate::placed::ring_object! {
            impl[] $obj,
            kind: $kind,
            config: $module::Config,
            size: |cfg| {
                $module::memory_size(cfg).map_err(|e| $crate::error::invalid_config($what, e))
            },
            init: |mem, cfg| {
                let _ = $module::$ring::init(mem, cfg);
            },
            check: |mem| {
                $module::$ring::attach(mem).map_err(|c| $crate::error::wrong_object($what, c))?;
                Ok(())
            },
        }
    };
    (
        impl[$($g:tt)*] $obj:ty,
        kind: $kind:expr,
        config: $cfg:ty,
        size: $size:expr,
        init: $init:expr,
        check: $check:expr $(,)?
    ) => {
        // SAFETY: `$obj` is a ring's control block, atomics only (every bit
        // pattern valid, no pointers). `init_in` writes a whole ring into
        // the `memory_size(cfg)` bytes, which `attach` accepts. `attach`
        // checks size and alignment, then lets the raw ring check everything
        // it reads (magic, geometry against the memory); the ring keeps what
        // it checked in process-local memory, so every offset it later uses
        // derives from checked values, never from a second read.
        unsafe impl<$($g)*> multiproc_core::object::ShmObject for $obj {
            const KIND: multiproc_core::Kind = $kind;
            type Config = $cfg;

            fn memory_size(cfg: &$cfg) -> Result<usize, multiproc_core::object::ObjectError> {
                let size: fn(&$cfg) -> Result<usize, multiproc_core::object::ObjectError> = $size;
                size(cfg)
            }

            unsafe fn init_in(mem: std::ptr::NonNull<u8>, len: usize, cfg: $cfg) {
                let init: fn(crate::raw::PtrMem, &$cfg) = $init;
                // SAFETY: `len` writable bytes at `mem`, aligned to 128
                // (the object's alignment), used by nobody else during the
                // call: the caller's promise. `memory_size(&cfg)` succeeded
                // before, so the ring fits; one not written fails `attach`.
                init(unsafe { crate::raw::PtrMem::new(mem, len) }, &cfg);
            }

            unsafe fn attach<'a>(
                mem: std::ptr::NonNull<u8>,
                len: usize,
            ) -> Result<&'a Self, multiproc_core::object::ObjectError> {
                // SAFETY: `len` bytes at `mem` for `'a`, only accessed
                // atomically (the caller's promise); size and alignment are
                // checked there.
                let obj = unsafe { multiproc_core::object::checked_ref::<Self>(mem, len)? };
                let check: fn(crate::raw::PtrMem) -> Result<(), multiproc_core::object::ObjectError> =
                    $check;
                // SAFETY: as above, and 128-aligned (just checked); the ring
                // made for the check lives only during it.
                check(unsafe { crate::raw::PtrMem::new(mem, len) })?;
                Ok(obj)
            }
        }
    };
}
pub(crate) use ring_object;
