//! The raw layer: each primitive's algorithm over caller-provided memory.
//!
//! Every raw type is `#[repr(C)]`, made only of atomics and plain integers,
//! holds no pointer, and is valid for every bit pattern (another process may
//! write anything into it: the worst a garbage state can do is make a call
//! fail or wait, never undefined behaviour). Each implements
//! [`ShmObject`](multiproc_core::object::ShmObject) (its segment kind, a
//! configuration, `memory_size`, `init_in`, and an `attach` that checks the
//! object tag and every number it relies on), so
//! [`Placed`](multiproc_core::object::Placed) puts it in a segment of its own or
//! at an offset of any segment; on the heap, `new` makes one.
//!
//! The algorithms know nothing of the operating system. Who the caller is
//! and whether a recorded holder died is asked of a
//! [`Judge`](multiproc_core::liveness::Judge) passed to each call (the public
//! types pass [`OsJudge`](multiproc_core::liveness::OsJudge), which reads
//! `/proc`); their atomics and futex calls come from one module that
//! switches to loom's models under `cfg(loom)`, so `tests/loom.rs` checks
//! this very code, with a judge whose model threads can die.
//!
//! # Shared-memory layout (ABI)
//!
//! What this crate places in shared memory, all little-endian words of the
//! machine, no pointers. Sizes and alignments are checked at compile time
//! ([`multiproc_core::assert_layout!`]). A segment of its own records the type tag
//! (the FNV-1a hash of the kind name), the version, a layout hash (size and
//! alignment of the object and, for the data-carrying types, of `T`) and
//! the build's ABI word ([`multiproc_core::header::ABI`]: architecture, libc,
//! endianness, pointer width); opening refuses any mismatch with a typed
//! error. Nothing here depends on libc's types (no `pthread_*`), so the libc
//! part of the ABI word is stricter than the layout needs.
//!
//! | type | size, align | words | segment kind, version |
//! |---|---|---|---|
//! | [`RawMutex`] | 24, 8 | `word: u32` (tid \| waiters), `owner_tid: u32`, `owner_process: u64`, `tag: u32`, `count: u32` | `ipc-sync/mutex` 1 (as [`DataCell`](crate::DataCell): + `layout: u64` + `T`) |
//! | [`RawReentrantMutex`] | 24, 8 | a `RawMutex`, `count` = depth | `ipc-sync/reentrant-mutex` 1 (as `DataCell`) |
//! | [`RawRwLock`] | 408, 8 | `state: u32`, `writer_tid: u32`, `writer_process: u64`, `tag: u32`, reserved, 32 reader processes (u64), 32 reader counts (u32) | `ipc-sync/rwlock` 1 (as `DataCell`) |
//! | [`RawSemaphore`] | 16, 4 | `value`, `waiters`, `bound`, `tag` (u32) | `ipc-sync/semaphore` 1 |
//! | [`RawBoundedSemaphore`] | 16, 4 | a `RawSemaphore` whose `bound` is below `u32::MAX` | `ipc-sync/bounded-semaphore` 1 |
//! | [`RawRecoverableSemaphore`] | 528, 8 | `seq`, `waiters`, `permits`, `tag` (u32), 64 holder slots (u64) | `ipc-sync/recoverable-semaphore` 1 |
//! | [`RawEvent`] | 8, 4 | `state`, `tag` (u32) | `ipc-sync/event` 1 |
//! | [`RawCondvar`] | 12, 4 | `seq`, `waiters`, `tag` (u32) | `ipc-sync/condvar` 1 |
//! | [`RawBarrier`] | 536, 8 | `state`, `parties`, `resets`, `parked`, `tag`, reserved (u32), 64 member slots (u64) | `ipc-sync/barrier` 1 |
//! | [`RawList`] | 256 + journal + 2 index banks (8-byte slots) + 2 arenas, 8 | a `RawMutex`, `tag`, configuration, type fingerprints, size, recoveries; state words `active`, `len`, `top`, `live`, `tombs`, `journal_len` (u64) | `ipc-sync/list` 1 |
//! | [`RawDict`] | as `RawList`, 16-byte slots | as `RawList` | `ipc-sync/dict` 1 |
//!
//! The containers' layout is in [`list`] and [`dict`] (and their shared
//! header and journal in `store.rs` and `journal.rs`); the hash of a
//! dict's keys is part of it.
//!
//! `Value<T>` and `Array<T, N>` are a `DataCell` of a `RawMutex` under the
//! kind `ipc-sync/value` 1. A layout hash covers the object's size and
//! alignment, and those of `T` for the data-carrying kinds, computed as in
//! every earlier build: segments made by those builds still open.

pub mod barrier;
pub mod condvar;
#[cfg(all(test, not(loom)))]
mod container_tests;
#[cfg(not(loom))]
pub mod dict;
pub mod event;
#[cfg(not(loom))]
pub mod journal;
#[cfg(not(loom))]
pub mod list;
pub mod mutex;
pub mod recoverable;
pub mod reentrant;
pub mod rwlock;
pub mod semaphore;
#[cfg(not(loom))]
pub mod store;
mod wait;

pub use barrier::{BarrierWait, RawBarrier, MAX_PARTIES, MEMBER_SLOTS};
pub use condvar::RawCondvar;
#[cfg(not(loom))]
pub use dict::{RawDict, RawDictTx};
pub use event::RawEvent;
#[cfg(not(loom))]
pub use list::{RawList, RawListTx};
pub use mutex::{Acquired, RawMutex};
pub use recoverable::{RawRecoverableSemaphore, MAX_PERMITS};
pub use reentrant::RawReentrantMutex;
pub use rwlock::{RawRwLock, READER_SLOTS};
pub use semaphore::{RawBoundedSemaphore, RawSemaphore};
#[cfg(not(loom))]
pub use store::{Layout, RawContainerConfig};
pub(crate) use wait::{deadline_after, next_wake, past, spin, timed, Forever, Once, Until, Wait};

/// Hooks for the loom models (`cfg(loom)` only).
#[cfg(loom)]
pub mod loom {
    pub use crate::primitive::Site;

    /// Weakens the ordering at `site` to `Relaxed` for the models this
    /// test thread runs next (`None`: none weakened): a negative control.
    pub fn weaken(site: Option<Site>) {
        crate::primitive::weaken::set(site);
    }
}

use std::time::Duration;

/// How often a parked waiter wakes to ask whether the holder it waits for
/// is still alive. A dead holder is noticed within about this long; a live
/// one costs a `/proc` read per period per waiter.
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(10);

/// Object tags written by `init_in` and checked by `attach`.
pub(crate) mod tag {
    pub(crate) const MUTEX: u32 = 0x4d54_5831; // "MTX1"
    pub(crate) const REENTRANT: u32 = 0x524d_5431; // "RMT1"
    pub(crate) const SEMAPHORE: u32 = 0x5345_4d31; // "SEM1"
    pub(crate) const EVENT: u32 = 0x4556_5431; // "EVT1"
    pub(crate) const CONDVAR: u32 = 0x434e_4431; // "CND1"
    pub(crate) const BARRIER: u32 = 0x4241_5231; // "BAR1"
    pub(crate) const RWLOCK: u32 = 0x5257_4c31; // "RWL1"
    pub(crate) const RECOVERABLE: u32 = 0x5253_4d31; // "RSM1"
}

/// Makes a raw type of fixed size an object for shared memory: checks its
/// layout, marks it `Shareable` and implements
/// [`ShmObject`](multiproc_core::object::ShmObject) with its own segment kind
/// (layout hash of its size and alignment), from the type's `validate`
/// (the configuration), `fresh` (a new state) and `check` (what another
/// process wrote). Without a configuration, also `new()` and `Default`.
macro_rules! raw_object {
    ($t:ident, $kind:literal, $version:literal, size = $size:expr, align = $align:expr) => {
        impl $t {
            /// A fresh one, on the heap or in a `static`; in shared memory,
            /// place it with [`Placed`](multiproc_core::object::Placed).
            pub fn new() -> $t {
                Self::fresh(())
            }

            fn validate(_: &()) -> Result<(), multiproc_core::object::ObjectError> {
                Ok(())
            }
        }

        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }

        crate::raw::raw_object!(
            $t,
            $kind,
            $version,
            size = $size,
            align = $align,
            config = ()
        );
    };
    ($t:ident, $kind:literal, $version:literal, size = $size:expr, align = $align:expr, config = $cfg:ty, new) => {
        impl $t {
            /// A fresh one of `cfg`, on the heap; in shared memory, place it
            /// with [`Placed`](multiproc_core::object::Placed).
            ///
            /// # Errors
            /// [`ObjectError::InvalidConfig`](multiproc_core::object::ObjectError::InvalidConfig)
            /// for a configuration it does not accept, naming the limit.
            pub fn new(cfg: $cfg) -> Result<$t, multiproc_core::object::ObjectError> {
                Self::validate(&cfg)?;
                Ok(Self::fresh(cfg))
            }
        }

        crate::raw::raw_object!(
            $t,
            $kind,
            $version,
            size = $size,
            align = $align,
            config = $cfg
        );
    };
    ($t:ident, $kind:literal, $version:literal, size = $size:expr, align = $align:expr, config = $cfg:ty) => {
        #[cfg(not(loom))]
        multiproc_core::assert_layout!($t, size = $size, align = $align);

        #[cfg(not(loom))]
        // SAFETY: `#[repr(C)]` (or transparent) of integer atomics whose
        // sizes add up to the size checked above (no padding), no pointers,
        // no drop glue; every bit pattern is a state the algorithm copes
        // with (at worst a call that fails or waits).
        unsafe impl multiproc_core::Shareable for $t {}

        #[cfg(not(loom))]
        // SAFETY: `$t` is `Shareable` (above) and `Sync` (atomics);
        // `init_in` writes a whole fresh state into memory the caller sized
        // and aligned for it, and `attach` checks size, alignment, the
        // object tag and every configuration word the algorithm relies on
        // (`check`).
        unsafe impl multiproc_core::object::ShmObject for $t {
            const KIND: multiproc_core::Kind = multiproc_core::Kind::new(
                $kind,
                $version,
                multiproc_core::header::layout_hash(&[$size as u64, $align as u64]),
            );
            type Config = $cfg;

            fn memory_size(cfg: &$cfg) -> Result<usize, multiproc_core::object::ObjectError> {
                $t::validate(cfg)?;
                Ok(std::mem::size_of::<$t>())
            }

            unsafe fn init_in(mem: std::ptr::NonNull<u8>, _len: usize, cfg: $cfg) {
                // SAFETY: the caller gives `memory_size` bytes aligned for
                // `$t` that nobody else uses yet.
                unsafe { mem.cast::<$t>().write($t::fresh(cfg)) };
            }

            unsafe fn attach<'a>(
                mem: std::ptr::NonNull<u8>,
                len: usize,
            ) -> Result<&'a $t, multiproc_core::object::ObjectError> {
                // SAFETY: the caller's promise, passed on.
                let obj = unsafe { multiproc_core::object::checked_ref::<$t>(mem, len)? };
                obj.check()?;
                Ok(obj)
            }
        }
    };
}
pub(crate) use raw_object;

/// An [`ObjectError::InvalidConfig`](multiproc_core::object::ObjectError) for
/// `what`, naming the limit.
pub(crate) fn invalid(what: &'static str, reason: &str) -> multiproc_core::object::ObjectError {
    multiproc_core::object::ObjectError::InvalidConfig {
        what,
        reason: reason.into(),
    }
}

/// An [`ObjectError::WrongObject`](multiproc_core::object::ObjectError) for a
/// `what` whose state another process wrote is not one this build reads.
pub(crate) fn corrupt(what: &'static str, detail: String) -> multiproc_core::object::ObjectError {
    multiproc_core::object::ObjectError::WrongObject {
        expected: what,
        detail,
    }
}

/// The tid of a thread that has exited and whose task is gone (a joined
/// thread's task can outlive `join` by a moment). For tests.
#[cfg(all(test, not(loom)))]
pub(crate) fn exited_thread_tid() -> u32 {
    use multiproc_core::liveness::{Judge, OsJudge};
    let tid = std::thread::spawn(|| OsJudge.holder().map_or(0, |h| h.0))
        .join()
        .unwrap_or(0);
    let start = std::time::Instant::now();
    while !OsJudge.thread_is_dead(0, tid) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "thread {tid} never went away"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    tid
}
