//! A semaphore whose permits know their holder, so a dead holder's permits
//! come back.
//!
//! Each permit is a slot holding the packed [`ProcessId`] of the process
//! that holds it (0 = free). Acquiring claims a free slot with one `CAS
//! 0 -> me`; releasing frees one of the caller's process's slots with
//! `CAS me -> 0`. There is no window in which a permit is taken but not
//! recorded, or recorded but not taken: the claim is the record. A waiter
//! that parks for a whole [`LIVENESS_PERIOD`] scans the slots and frees
//! those of dead processes (`CAS dead -> 0`, so each is freed once).
//!
//! Waiters sleep on `seq`, which every release bumps; a release makes a
//! `FUTEX_WAKE` only when `waiters` is non-zero (the same Dekker pairing as
//! [`RawSemaphore`](super::RawSemaphore)).
//!
//! Permits belong to a process, not a thread: any thread of the holding
//! process may release one. At most [`MAX_PERMITS`] permits; acquiring
//! scans the slots, so it costs a little more than a counting semaphore.

use super::{deadline_after, next_wake, past, raw_object, tag, LIVENESS_PERIOD};
use crate::error::NotHeldError;
use crate::primitive::futex::{self, WaitOutcome};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use multiproc_core::liveness::Judge;
use multiproc_core::object::ObjectError;
use multiproc_core::wait::{Backoff, Phase, WaitStrategy};
use multiproc_core::{IdentityError, ProcessId};
use std::time::{Duration, Instant};

/// The most permits a [`RawRecoverableSemaphore`] holds.
pub const MAX_PERMITS: u32 = 64;

/// A semaphore of at most [`MAX_PERMITS`] permits, each recording its
/// holder process. 528 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct RawRecoverableSemaphore {
    seq: AtomicU32,
    waiters: AtomicU32,
    permits: AtomicU32,
    tag: AtomicU32,
    slots: [AtomicU64; MAX_PERMITS as usize],
}

raw_object!(
    RawRecoverableSemaphore,
    "ipc-sync/recoverable-semaphore",
    1,
    size = 16 + 8 * MAX_PERMITS as usize,
    align = 8,
    config = u32,
    new
);

fn check_permits(permits: u32) -> Result<(), ObjectError> {
    if permits > MAX_PERMITS {
        return Err(super::invalid(
            "recoverable semaphore",
            "a recoverable semaphore has at most 64 permits",
        ));
    }
    Ok(())
}

impl RawRecoverableSemaphore {
    /// At most [`MAX_PERMITS`] permits.
    fn validate(permits: &u32) -> Result<(), ObjectError> {
        check_permits(*permits)
    }

    fn fresh(permits: u32) -> RawRecoverableSemaphore {
        RawRecoverableSemaphore {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            permits: AtomicU32::new(permits),
            tag: AtomicU32::new(tag::RECOVERABLE),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn check(&self) -> Result<(), ObjectError> {
        multiproc_core::object::check_tag(
            "recoverable semaphore",
            tag::RECOVERABLE,
            self.tag.load(Ordering::Acquire),
        )?;
        check_permits(self.permits.load(Ordering::Relaxed))
            .map_err(|e| super::corrupt("recoverable semaphore", e.to_string()))
    }

    fn slots(&self) -> &[AtomicU64] {
        let n = self.permits.load(Ordering::Relaxed).min(MAX_PERMITS) as usize;
        &self.slots[..n]
    }

    /// Takes a permit if one is free; never waits.
    ///
    /// # Errors
    /// [`IdentityError`]: this process cannot learn the identity a permit
    /// records (so that it comes back if the process dies); none was taken.
    pub fn try_acquire<J: Judge>(&self, judge: &J) -> Result<bool, IdentityError> {
        let me = judge.me()?;
        Ok(self.take(me))
    }

    fn take(&self, me: u64) -> bool {
        self.slots().iter().any(|s| {
            s.load(Ordering::Relaxed) == 0
                && s.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Takes a permit, waiting until `deadline` (`None`: no limit); returns
    /// whether it got one. Reclaims dead holders' permits while it waits.
    ///
    /// # Errors
    /// As [`RawRecoverableSemaphore::try_acquire`].
    pub fn acquire_until<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<bool, IdentityError> {
        let me = judge.me()?;
        if self.take(me) {
            return Ok(true);
        }
        let mut backoff = Backoff::new(strategy);
        loop {
            if backoff.snooze() == Phase::Retry {
                if self.take(me) {
                    return Ok(true);
                }
                if past(deadline) {
                    return Ok(self.recover(judge) > 0 && self.take(me));
                }
                continue;
            }
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let key = self.seq.load(Ordering::SeqCst);
            if self.take(me) {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return Ok(true);
            }
            let until = next_wake(deadline, LIVENESS_PERIOD);
            let r = futex::wait_until(&self.seq, key, Some(until));
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if self.take(me) {
                return Ok(true);
            }
            if r == WaitOutcome::TimedOut && self.recover(judge) > 0 && self.take(me) {
                return Ok(true);
            }
            if past(deadline) {
                return Ok(false);
            }
        }
    }

    /// Takes a permit, waiting `timeout` at most (zero: one try).
    ///
    /// # Errors
    /// As [`RawRecoverableSemaphore::try_acquire`].
    pub fn acquire_timeout<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Result<bool, IdentityError> {
        if timeout.is_zero() {
            return self.try_acquire(judge);
        }
        self.acquire_until(judge, strategy, deadline_after(timeout))
    }

    /// Gives back a permit the calling process holds.
    ///
    /// # Errors
    /// [`NotHeldError`] if this process holds none (nothing changes).
    pub fn release<J: Judge>(&self, judge: &J) -> Result<(), NotHeldError> {
        // Without an identity this process took no permit.
        let me = judge.me().map_err(|_| NotHeldError)?;
        let freed = self.slots().iter().any(|s| {
            s.load(Ordering::Relaxed) == me
                && s.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
        });
        if !freed {
            return Err(NotHeldError);
        }
        self.bump();
        Ok(())
    }

    fn bump(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex::wake_all(&self.seq);
        }
    }

    /// Frees the permits of dead holder processes (asks `judge` once per
    /// distinct holder) and returns how many it freed.
    pub fn recover<J: Judge>(&self, judge: &J) -> u32 {
        let mut freed = 0;
        let mut alive: Vec<u64> = Vec::new();
        for s in self.slots() {
            let p = s.load(Ordering::Acquire);
            if p == 0 || alive.contains(&p) {
                continue;
            }
            if !judge.is_dead(p) {
                alive.push(p);
                continue;
            }
            if s.compare_exchange(p, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                log::warn!(
                    "semaphore permit of dead process {:?} reclaimed",
                    ProcessId::from_u64(p)
                );
                freed += 1;
            }
        }
        if freed > 0 {
            self.bump();
        }
        freed
    }

    /// The number of free permits now.
    pub fn value(&self) -> u32 {
        self.slots()
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) == 0)
            .count() as u32
    }

    /// The number of permits the calling process holds.
    pub fn held_by_me<J: Judge>(&self, judge: &J) -> u32 {
        let Ok(me) = judge.me() else {
            return 0;
        };
        self.slots()
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) == me)
            .count() as u32
    }

    /// The total number of permits.
    pub fn permits(&self) -> u32 {
        self.slots().len() as u32
    }
}
