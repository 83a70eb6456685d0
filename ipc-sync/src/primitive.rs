//! The atomics and futex calls the raw lock algorithm is built on, switched
//! to loom's models under `cfg(loom)` so that the same code is
//! model-checked (`RUSTFLAGS="--cfg loom" cargo test -p ipc-sync --test loom`).
//!
//! Under loom a futex wait yields to the model scheduler and returns as a
//! timeout (the caller re-checks the word and, as after a real timeout,
//! checks the holder's liveness), and a wake does nothing: a waiter never
//! depends on being woken, only on re-checking, which is the property the
//! real futex protocol must also have.

#[cfg(not(loom))]
pub(crate) use ipc_core::futex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) mod futex {
    pub(crate) use ipc_core::futex::WaitOutcome;
    use loom::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    pub(crate) fn wait_until(
        word: &AtomicU32,
        expected: u32,
        _deadline: Option<Instant>,
    ) -> WaitOutcome {
        if word.load(Ordering::SeqCst) != expected {
            return WaitOutcome::ValueChanged;
        }
        loom::thread::yield_now();
        WaitOutcome::TimedOut
    }

    pub(crate) fn wake(_word: &AtomicU32, _n: u32) -> usize {
        0
    }

    pub(crate) fn wake_all(_word: &AtomicU32) -> usize {
        0
    }
}
