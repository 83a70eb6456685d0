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
//! operation on any model memory (a word looked up for a load, a store or a
//! read-modify-write; a word of payload copied), before that operation
//! happens: it panics with [`Crash`], and [`survive`] around the thread's
//! work catches it. A crashed thread has done exactly the accesses before that point;
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

/// What a ring uses of its memory, word by word: the words a
/// [`ModelMemory`] makes loom objects for. Each raw ring gives its own
/// (`raw::spsc::model_layout`, ...), from its layout constants; a ring that
/// touches anything else panics, naming the offset. (Making objects for
/// every word, padding lines included, made each execution ten times as
/// expensive.)
#[derive(Clone, Debug, Default)]
pub struct Layout {
    len: usize,
    u64s: Vec<usize>,
    u32s: Vec<usize>,
    payload: Vec<(std::ops::Range<usize>, bool)>,
}

impl Layout {
    /// A memory of `len` bytes of which nothing is used yet.
    pub fn new(len: usize) -> Layout {
        Layout {
            len,
            ..Layout::default()
        }
    }

    /// A 64-bit atomic word at `off`.
    pub fn u64(mut self, off: usize) -> Layout {
        self.u64s.push(off);
        self
    }

    /// A 32-bit atomic word at `off`.
    pub fn u32(mut self, off: usize) -> Layout {
        self.u32s.push(off);
        self
    }

    /// Payload bytes; with `headers`, their words are also read and written
    /// as 64-bit atomics (header slots, in another lap).
    pub fn payload(mut self, bytes: std::ops::Range<usize>, headers: bool) -> Layout {
        self.payload.push((bytes, headers));
        self
    }
}

/// One 8-byte word of model memory: the parts the ring uses of it.
#[derive(Debug, Default)]
struct Word {
    atom: Option<AtomicU64>,
    halves: [Option<AtomicU32>; 2],
    cell: Option<UnsafeCell<u64>>,
}

/// A ring's memory in a loom model: loom atomics and cells for the words
/// the ring uses (see the [module docs](self) and [`Layout`]). Zero when
/// made; clones share it. Make it inside the model closure: loom objects
/// live for one execution.
#[derive(Clone, Debug)]
pub struct ModelMemory {
    words: Arc<[Word]>,
    len: usize,
}

impl ModelMemory {
    /// The words `layout` names, all zero.
    pub fn new(layout: &Layout) -> ModelMemory {
        let mut words: Vec<Word> = (0..layout.len.div_ceil(8))
            .map(|_| Word::default())
            .collect();
        for &off in &layout.u64s {
            words[off / 8].atom = Some(AtomicU64::new(0));
        }
        for &off in &layout.u32s {
            words[off / 8].halves[off % 8 / 4] = Some(AtomicU32::new(0));
        }
        for (bytes, headers) in &layout.payload {
            for w in &mut words[bytes.start / 8..bytes.end.div_ceil(8)] {
                w.cell = Some(UnsafeCell::new(0));
                if *headers {
                    w.atom = Some(AtomicU64::new(0));
                }
            }
        }
        ModelMemory {
            words: words.into(),
            len: layout.len,
        }
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

fn missing(what: &str, off: usize) -> ! {
    panic!("the model memory has no {what} at offset {off}: add it to the ring's model layout")
}

// SAFETY: every offset maps to one word's loom objects, the same for every
// clone (they share the `Arc`); copies touch exactly the bytes asked for.
unsafe impl Memory for ModelMemory {
    fn len(&self) -> usize {
        self.len
    }

    unsafe fn u64_at(&self, off: usize) -> &loom::sync::atomic::AtomicU64 {
        self.word(off)
            .atom
            .as_ref()
            .unwrap_or_else(|| missing("64-bit word", off))
    }

    unsafe fn u32_at(&self, off: usize) -> &loom::sync::atomic::AtomicU32 {
        self.word(off).halves[off % 8 / 4]
            .as_ref()
            .unwrap_or_else(|| missing("32-bit word", off))
    }

    unsafe fn copy_in(&self, off: usize, src: &[u8]) {
        for (w, bytes, from) in Self::spans(off, src.len()) {
            let word = self.word(w * 8);
            let cell = word
                .cell
                .as_ref()
                .unwrap_or_else(|| missing("payload", w * 8));
            cell.with_mut(|p| {
                // SAFETY: loom checks that no other access to this cell
                // overlaps this one.
                let mut v = unsafe { *p }.to_ne_bytes();
                v[bytes.clone()].copy_from_slice(&src[from..from + bytes.len()]);
                // SAFETY: as above.
                unsafe { *p = u64::from_ne_bytes(v) };
            });
            if let Some(atom) = &word.atom {
                atom.store(POISON, Ordering::Relaxed);
            }
        }
    }

    unsafe fn copy_out(&self, off: usize, dst: &mut [u8]) {
        for (w, bytes, to) in Self::spans(off, dst.len()) {
            let cell = self.word(w * 8).cell.as_ref();
            let cell = cell.unwrap_or_else(|| missing("payload", w * 8));
            // SAFETY: loom checks that no write to this cell overlaps.
            let v = cell.with(|p| unsafe { *p }).to_ne_bytes();
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
