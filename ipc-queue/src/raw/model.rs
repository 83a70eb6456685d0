//! What the loom models of `tests/loom.rs` run the raw rings on
//! (`cfg(loom)` only): a [`Memory`] of loom atomics and cells, a way to
//! weaken one ordering [`Site`] for a run, and crashes at a chosen step.
//!
//! # The model memory
//!
//! The rings address their words by byte offset, which loom's atomics
//! (objects, not views of bytes) cannot stand in for directly. A
//! [`ModelMemory`] therefore keeps, for every 8-byte word of the ring, a
//! loom `AtomicU64`, two loom `AtomicU32` halves and a loom
//! `UnsafeCell<u64>`, and maps each access of the [`Memory`] contract to
//! one of them:
//!
//! - `u64_at` / `u32_at`: the word's atomics, so every ordering of the
//!   ring's atomic protocol is explored by loom;
//! - `copy_in` / `copy_out` of payload: the word's cell (`with_mut` /
//!   `with`), so a payload read that no release/acquire pair orders after
//!   the write it sees, or a write that races an earlier read, fails the
//!   model with a causality violation;
//! - `copy_in` also stores [`POISON`] into the word's 64-bit atomic: payload
//!   written over what was a header slot reads, as a header, as something
//!   no header can be. A consumer that takes payload for a header is then
//!   caught by the ring's own checks (an unknown record kind), as it would
//!   read garbage in real memory.
//!
//! A ring never accesses one word both as a 64-bit and as 32-bit atomics,
//! so keeping them apart changes nothing the ring can observe.
//!
//! # Crashes
//!
//! [`crash_after`]`(n)` makes the calling model thread die at its `n`-th
//! access to any model memory, before that access happens: the access
//! panics with [`Crash`], and [`survive`] around the thread's work catches
//! it. A crashed thread has done exactly the accesses before that point;
//! whatever the dying code would have done after it (the rest of an
//! operation, a claim's release) never happens, as with `SIGKILL`. Its
//! [`Actor`](super::actors::Actor) is then declared dead, and the others
//! must recover. (Values that were on the crashed thread's stack are still
//! dropped while unwinding; the models abandon an end's claim explicitly
//! where a dead process must leave it held.)

use super::{Memory, Site};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// What a payload write leaves in the 64-bit atomic view of a word: no
/// record header, slot state or sequence any ring writes.
pub const POISON: u64 = u64::MAX;

/// Runs `f` (a whole `loom::model`, or anything) with `site` weakened to
/// `Relaxed` (a fence at that site disappears). Models check that each
/// such run fails.
pub fn weakened<R>(site: Site, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Site>);
    impl Drop for Restore {
        fn drop(&mut self) {
            crate::primitive::weakened::set(self.0);
        }
    }
    let _restore = Restore(crate::primitive::weakened::set(Some(site)));
    f()
}

/// One 8-byte word of model memory.
#[derive(Debug)]
struct Word {
    atom: AtomicU64,
    halves: [AtomicU32; 2],
    cell: UnsafeCell<u64>,
}

/// A ring's memory in a loom model: loom atomics and cells per 8-byte word
/// (see the [module docs](self)). Zero when made; clones share it. Make it
/// inside the model closure: loom objects live for one execution.
#[derive(Clone, Debug)]
pub struct ModelMemory {
    words: Arc<[Word]>,
    len: usize,
}

impl ModelMemory {
    /// `len` bytes (rounded up to whole words), all zero.
    pub fn new(len: usize) -> ModelMemory {
        let words = (0..len.div_ceil(8))
            .map(|_| Word {
                atom: AtomicU64::new(0),
                halves: [AtomicU32::new(0), AtomicU32::new(0)],
                cell: UnsafeCell::new(0),
            })
            .collect();
        ModelMemory { words, len }
    }

    fn word(&self, off: usize) -> &Word {
        tick();
        &self.words[off / 8]
    }

    /// The words touched by `len` bytes at `off`, with the byte range of
    /// each inside its word and inside the caller's buffer.
    fn spans(
        off: usize,
        len: usize,
    ) -> impl Iterator<Item = (usize, std::ops::Range<usize>, usize)> {
        let mut at = off;
        std::iter::from_fn(move || {
            if at >= off + len {
                return None;
            }
            let (w, start) = (at / 8, at % 8);
            let n = (8 - start).min(off + len - at);
            let item = (w, start..start + n, at - off);
            at += n;
            Some(item)
        })
    }
}

// SAFETY: every offset maps to one word's loom objects, the same for every
// clone (they share the `Arc`); copies touch exactly the bytes asked for.
unsafe impl Memory for ModelMemory {
    fn len(&self) -> usize {
        self.len
    }

    unsafe fn u64_at(&self, off: usize) -> &loom::sync::atomic::AtomicU64 {
        &self.word(off).atom
    }

    unsafe fn u32_at(&self, off: usize) -> &loom::sync::atomic::AtomicU32 {
        &self.word(off).halves[off % 8 / 4]
    }

    unsafe fn copy_in(&self, off: usize, src: &[u8]) {
        for (w, bytes, from) in Self::spans(off, src.len()) {
            let word = self.word(w * 8);
            word.cell.with_mut(|p| {
                // SAFETY: loom checks that no other access to this cell
                // overlaps this one.
                let mut v = unsafe { *p }.to_ne_bytes();
                v[bytes.clone()].copy_from_slice(&src[from..from + bytes.len()]);
                // SAFETY: as above.
                unsafe { *p = u64::from_ne_bytes(v) };
            });
            word.atom.store(POISON, Ordering::Relaxed);
        }
    }

    unsafe fn copy_out(&self, off: usize, dst: &mut [u8]) {
        for (w, bytes, to) in Self::spans(off, dst.len()) {
            // SAFETY: loom checks that no write to this cell overlaps.
            let v = self.word(w * 8).cell.with(|p| unsafe { *p }).to_ne_bytes();
            dst[to..to + bytes.len()].copy_from_slice(&v[bytes]);
        }
    }

    unsafe fn notify(&self, _off: usize) {
        // A model waiter never parks: it re-checks, as a real one does
        // after a timeout.
    }

    unsafe fn clear(&self, _len: usize) {
        // A model memory is zero when made.
    }
}

/// The panic payload of a model thread dying at its chosen step.
#[derive(Debug)]
pub struct Crash;

loom::thread_local! {
    /// Accesses the calling model thread may still make before it dies.
    static COUNTDOWN: std::cell::Cell<Option<u32>> = std::cell::Cell::new(None);
}

/// The calling model thread dies at its `n`-th model-memory access from
/// now (`n >= 1`), before that access.
pub fn crash_after(n: u32) {
    COUNTDOWN.with(|c| c.set(Some(n)));
}

fn tick() {
    let die = COUNTDOWN.with(|c| match c.get() {
        Some(1) => {
            c.set(None);
            true
        }
        Some(n) => {
            c.set(Some(n - 1));
            false
        }
        None => false,
    });
    if die {
        std::panic::panic_any(Crash);
    }
}

/// Runs `f`; `None` if the thread crashed in it (see [`crash_after`]). Any
/// other panic goes on unwinding.
pub fn survive<R>(f: impl FnOnce() -> R) -> Option<R> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Crash>().is_none() {
                previous(info);
            }
        }));
    });
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(e) if e.downcast_ref::<Crash>().is_some() => {
            COUNTDOWN.with(|c| c.set(None));
            None
        }
        Err(e) => std::panic::resume_unwind(e),
    }
}
