//! The pool's control segment: one slot per worker, shared by the parent and
//! every worker, plus the doorbell the parent sleeps on.
//!
//! A worker writes its own slot only; the parent reads them. Nothing here is
//! trusted for memory safety: a slot holds numbers the parent compares with
//! its own bookkeeping, never offsets or pointers.

use multiproc_core::header::layout_hash;
use multiproc_core::wait::EventCount;
use multiproc_core::{Kind, Segment, SegmentError};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Worker slot states.
pub(crate) const STARTING: u32 = 0;
/// The initializer ran; the worker takes tasks.
pub(crate) const READY: u32 = 1;

/// One worker's slot: 64 bytes, its own cache line.
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// `STARTING` or `READY`.
    pub(crate) state: AtomicU32,
    /// The pid of the worker that owns the slot now.
    pub(crate) pid: AtomicU32,
    /// Id + 1 of the chunk being run; 0 while idle.
    pub(crate) current: AtomicU64,
    /// When the current chunk started (CLOCK_MONOTONIC, nanoseconds).
    pub(crate) started_ns: AtomicU64,
    /// Chunks this worker has finished.
    pub(crate) done: AtomicU64,
    reserved: [AtomicU64; 4],
}

// SAFETY: `#[repr(C)]`, atomics only (every bit pattern valid), no pointers.
unsafe impl multiproc_core::Shareable for Slot {}
multiproc_core::assert_layout!(Slot, size = 64, align = 64);

/// The head of the control segment.
#[repr(C, align(64))]
pub(crate) struct Head {
    /// Workers ring it after sending a result or becoming ready; API calls
    /// ring it after queueing work. The supervisor sleeps on it.
    pub(crate) doorbell: EventCount,
    reserved: [AtomicU64; 7],
}

// SAFETY: `#[repr(C)]`, an EventCount (shareable) and atomics, no pointers.
unsafe impl multiproc_core::Shareable for Head {}
multiproc_core::assert_layout!(Head, size = 64, align = 64);

const KIND: Kind = Kind::new("ipc-pool/control", 1, layout_hash(&[64, 64]));

/// The mapped control segment.
pub(crate) struct Control {
    seg: Segment,
    slots: usize,
}

impl Control {
    /// A fresh anonymous control segment with `slots` worker slots.
    pub(crate) fn create(slots: usize) -> Result<Control, SegmentError> {
        let seg = Segment::builder(KIND.with_layout_hash(layout_hash(&[64, 64, slots as u64])))
            .size(64 * (1 + slots))
            .create()?;
        Ok(Control { seg, slots })
    }

    /// Maps a control segment received from the parent.
    pub(crate) fn attach(fd: std::os::fd::OwnedFd, slots: usize) -> Result<Control, SegmentError> {
        let seg = Segment::from_fd(
            fd,
            KIND.with_layout_hash(layout_hash(&[64, 64, slots as u64])),
        )?;
        Ok(Control { seg, slots })
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    pub(crate) fn head(&self) -> &Head {
        self.seg
            .get::<Head>(0)
            .expect("the control segment holds its head")
    }

    /// The slot of worker `i` (`None` past the end).
    pub(crate) fn slot(&self, i: usize) -> Option<&Slot> {
        if i >= self.slots {
            return None;
        }
        self.seg.get::<Slot>(64 * (1 + i as u64)).ok()
    }
}

/// Nanoseconds on the monotonic clock, comparable between processes.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is writable; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Slot {
    pub(crate) fn reset(&self, pid: u32) {
        self.current.store(0, Ordering::Relaxed);
        self.started_ns.store(0, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.pid.store(pid, Ordering::Relaxed);
        self.state.store(STARTING, Ordering::Release);
    }
}
