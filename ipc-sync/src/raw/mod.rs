//! The raw layer: each primitive's algorithm over caller-provided memory.
//!
//! Every raw type is `#[repr(C)]`, made only of atomics and plain integers,
//! holds no pointer, and is valid for every bit pattern (another process may
//! write anything into it: the worst a garbage state can do is make a call
//! fail or wait, never undefined behaviour). Each follows the same
//! three-step life, so it can live in a segment, on the heap, or anywhere
//! else:
//!
//! - `memory_size(..)`: how many bytes it needs (alignment: `align_of`);
//! - `init_in(ptr, ..)` (`unsafe`): writes a fresh state at `ptr`;
//! - `attach(ptr)` (`unsafe`): uses a state another process initialized,
//!   after checking its object tag.
//!
//! `T::at(&segment, offset)` and `T::init_at(&segment, offset, ..)` do the
//! same inside an [`ipc_core::Segment`], with the offset checked against the
//! segment's size. The public types of the crate ([`crate::Mutex`], ...) are
//! these states placed in a segment of their own.
//!
//! # Shared-memory layout (ABI)
//!
//! What this crate places in shared memory, all little-endian words of the
//! machine, no pointers. Sizes and alignments are checked at compile time
//! ([`ipc_core::assert_layout!`]). A segment of its own records the type tag
//! (the FNV-1a hash of the kind name), the version, a layout hash (sizes,
//! alignments and, for the data-carrying types, the size and alignment of
//! `T`) and the build's ABI word ([`ipc_core::header::ABI`]: architecture,
//! libc, endianness, pointer width); opening refuses any mismatch with a
//! typed error. Nothing here depends on libc's types (no `pthread_*`), so
//! the libc part of the ABI word is stricter than the layout needs.
//!
//! | type | size, align | words | segment kind, version |
//! |---|---|---|---|
//! | [`RawMutex`] | 24, 8 | `word: u32` (tid \| waiters), `owner_tid: u32`, `owner_process: u64`, `tag: u32`, `count: u32` | `ipc-sync/mutex` 1 (as `MutexCell<T>`: + `layout: u64` + `T`) |
//! | [`RawReentrantMutex`] | 24, 8 | a `RawMutex`, `count` = depth | `ipc-sync/reentrant-mutex` 1 |
//! | [`RawRwLock`] | 408, 8 | `state: u32`, `writer_tid: u32`, `writer_process: u64`, `tag: u32`, reserved, 32 reader processes (u64), 32 reader counts (u32) | `ipc-sync/rwlock` 1 |
//! | [`RawSemaphore`] | 16, 4 | `value`, `waiters`, `bound`, `tag` (u32) | `ipc-sync/semaphore` 1, `ipc-sync/bounded-semaphore` 1 |
//! | [`RawRecoverableSemaphore`] | 528, 8 | `seq`, `waiters`, `permits`, `tag` (u32), 64 holder slots (u64) | `ipc-sync/recoverable-semaphore` 1 |
//! | [`RawEvent`] | 8, 4 | `state`, `tag` (u32) | `ipc-sync/event` 1 |
//! | [`RawCondvar`] | 12, 4 | `seq`, `waiters`, `tag` (u32) | `ipc-sync/condvar` 1 |
//! | [`RawBarrier`] | 536, 8 | `state`, `parties`, `resets`, `parked`, `tag`, reserved (u32), 64 member slots (u64) | `ipc-sync/barrier` 1 |
//!
//! `Value<T>` and `Array<T, N>` are a `MutexCell` under the kinds
//! `ipc-sync/value` 1. Each raw state starts life through `init_in` or
//! `init_at`, which write its object tag; `attach` and `at` check it.

#[cfg(not(loom))]
pub mod barrier;
#[cfg(not(loom))]
pub mod condvar;
#[cfg(not(loom))]
pub mod event;
pub mod mutex;
#[cfg(not(loom))]
pub mod recoverable;
#[cfg(not(loom))]
pub mod rwlock;
#[cfg(not(loom))]
pub mod semaphore;

#[cfg(not(loom))]
pub use barrier::{BarrierWait, RawBarrier, MAX_PARTIES, MEMBER_SLOTS};
#[cfg(not(loom))]
pub use condvar::RawCondvar;
#[cfg(not(loom))]
pub use event::RawEvent;
pub use mutex::{Acquired, RawLockError, RawMutex, RawReentrantMutex};

/// Hooks for the loom model of the lock algorithm (`cfg(loom)` only).
#[cfg(loom)]
pub mod loom_support {
    /// Marks the calling model thread dead: a lock it holds may be taken
    /// over, as from a killed process.
    pub fn die() {
        crate::owner::die();
    }
}
#[cfg(not(loom))]
pub use recoverable::RawRecoverableSemaphore;
#[cfg(not(loom))]
pub use rwlock::RawRwLock;
#[cfg(not(loom))]
pub use semaphore::RawSemaphore;

use crate::Error;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// How often a parked waiter wakes to check that the process it waits for
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

/// Checks an object tag read from shared memory.
pub(crate) fn check_tag(found: u32, expected: u32, what: &'static str) -> Result<(), Error> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::WrongObject {
            expected: what,
            found,
        })
    }
}

/// Checks that `ptr` is non-null and aligned for `T` (the caller vouches for
/// the size).
pub(crate) fn check_ptr<T>(ptr: *mut u8) -> Result<NonNull<T>, Error> {
    let p = NonNull::new(ptr).ok_or(Error::InvalidArgument("null pointer"))?;
    if (ptr as usize) % std::mem::align_of::<T>() != 0 {
        return Err(Error::InvalidArgument("misaligned pointer"));
    }
    Ok(p.cast())
}

/// `now + timeout`, or `None` (no limit) when that overflows.
#[inline]
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

#[inline]
pub(crate) fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// The earlier of `deadline` and `now + period`.
#[inline]
pub(crate) fn next_wake(deadline: Option<Instant>, period: Duration) -> Instant {
    let p = Instant::now() + period;
    match deadline {
        Some(d) if d < p => d,
        _ => p,
    }
}
