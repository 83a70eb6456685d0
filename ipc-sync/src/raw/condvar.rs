//! A condition variable as a futex sequence counter.
//!
//! A waiter, still holding the mutex, announces itself (`waiters += 1`) and
//! reads `seq`; it unlocks, sleeps while `seq` is unchanged, then
//! un-announces and relocks. A notifier bumps `seq`, then wakes one or all
//! sleepers if `waiters` is non-zero. Since the waiter read `seq` before it
//! released the mutex, a notification made after that changes `seq` and the
//! sleep returns at once: nothing is lost. The pair `seq += 1` / `waiters`
//! read against `waiters += 1` / `seq` read is sequentially consistent.
//!
//! Nothing here belongs to a waiter: a waiter that dies leaves `waiters`
//! one too high, which costs later notifications a spare `FUTEX_WAKE`. No
//! `pthread_cond_t` is involved, whose internal state a dead waiter can
//! wedge.

use super::{raw_object, spin, tag};
use crate::primitive::futex::{self, WaitOutcome};
use crate::primitive::{AtomicU32, Ordering};
use multiproc_core::wait::WaitStrategy;
use std::time::Instant;

/// A condition variable over caller memory. 12 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct RawCondvar {
    seq: AtomicU32,
    waiters: AtomicU32,
    tag: AtomicU32,
}

raw_object!(RawCondvar, "ipc-sync/condvar", 1, size = 12, align = 4);

impl RawCondvar {
    fn fresh((): ()) -> RawCondvar {
        RawCondvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            tag: AtomicU32::new(tag::CONDVAR),
        }
    }

    pub(crate) fn check(&self) -> Result<(), multiproc_core::object::ObjectError> {
        multiproc_core::object::check_tag("condvar", tag::CONDVAR, self.tag.load(Ordering::Acquire))
    }

    /// Step 1 of a wait, called while holding the mutex: announces the
    /// waiter and returns the key to sleep on.
    #[inline]
    pub fn prepare_wait(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.seq.load(Ordering::SeqCst)
    }

    /// Step 2, after unlocking the mutex: sleeps until notified (or a
    /// spurious wake-up) or `deadline`, then un-announces. Returns `false` if
    /// the deadline passed without a notification.
    /// Spins first by `strategy` (a busy-spinning waiter never sleeps).
    pub fn park(&self, strategy: WaitStrategy, key: u32, deadline: Option<Instant>) -> bool {
        let changed = || self.seq.load(Ordering::Acquire) != key;
        let notified = spin(strategy, deadline, changed).unwrap_or_else(|| {
            let r = futex::wait_until(&self.seq, key, deadline);
            r != WaitOutcome::TimedOut || changed()
        });
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        notified
    }

    /// Wakes one waiter (at least one, if any waits). No syscall when
    /// nobody waits.
    #[inline]
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex::wake(&self.seq, 1);
        }
    }

    /// Wakes every waiter. No syscall when nobody waits.
    #[inline]
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex::wake_all(&self.seq);
        }
    }

    /// How many waiters are announced (a dead waiter stays counted).
    pub fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }
}
