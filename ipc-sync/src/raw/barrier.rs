//! A barrier as one futex word, with a table of member processes so that a
//! party that dies breaks it instead of wedging the others.
//!
//! `state` packs the generation and the arrivals of the current one:
//!
//! | bits | meaning |
//! |---|---|
//! | 0..16 | parties arrived in this generation (`parties` = closing: the last party runs the action) |
//! | 16..31 | generation, wrapping |
//! | 31 | `BROKEN` |
//!
//! A party arrives with a `CAS` that adds one. The last one runs the action,
//! then stores the next generation with no arrivals and wakes everybody
//! (`FUTEX_WAKE` all) if anyone parked. The others sleep while `state` is
//! unchanged, with a bounded timeout ([`LIVENESS_PERIOD`]); each time it
//! passes they look at the member table: a registered process that is dead
//! breaks the barrier. A party whose own deadline passes breaks it too.
//! `resets` counts [`RawBarrier::reset`]s, so a waiter released by a reset
//! knows it was not released by a full barrier.

use super::{next_wake, raw_object, tag, Forever, Until, Wait, LIVENESS_PERIOD};
use crate::error::{BarrierError, BarrierTimeoutError, Broke, Fail};
use crate::primitive::{futex, AtomicU32, AtomicU64, Ordering};
use multiproc_core::liveness::Judge;
use multiproc_core::object::ObjectError;
use multiproc_core::wait::{Backoff, Phase, WaitStrategy};
use multiproc_core::IdentityError;
use std::time::Instant;

const ARRIVED: u32 = 0xffff;
const GEN_SHIFT: u32 = 16;
const GEN_MASK: u32 = 0x7fff;
const BROKEN: u32 = 1 << 31;
/// Set when some party parked on `state`.
const PARKED_FLAG: u32 = 1;

/// The most parties a barrier can have.
pub const MAX_PARTIES: u32 = 0xffff;
/// How many member processes the table tracks; processes beyond it are not
/// watched for death (they still count as parties).
pub const MEMBER_SLOTS: usize = 64;

/// What a successful barrier wait returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWait {
    /// The arrival index in this generation, `0..parties` (Python's return
    /// value of `Barrier.wait`, counted from the first arrival).
    pub index: u32,
    /// Whether this party arrived last and ran the action.
    pub is_leader: bool,
}

/// A barrier over caller memory (16 bytes of state plus the member table).
#[repr(C)]
#[derive(Debug)]
pub struct RawBarrier {
    state: AtomicU32,
    parties: AtomicU32,
    resets: AtomicU32,
    parked: AtomicU32,
    tag: AtomicU32,
    _reserved: AtomicU32,
    members: [AtomicU64; MEMBER_SLOTS],
}

raw_object!(
    RawBarrier,
    "ipc-sync/barrier",
    1,
    size = 24 + 8 * MEMBER_SLOTS,
    align = 8,
    config = u32,
    new
);

fn check_parties(parties: u32) -> Result<(), ObjectError> {
    if parties == 0 {
        return Err(super::invalid(
            "barrier",
            "a barrier needs at least one party",
        ));
    }
    if parties > MAX_PARTIES {
        return Err(super::invalid(
            "barrier",
            "a barrier has at most 65535 parties",
        ));
    }
    Ok(())
}

/// Why a wait for a change of state stopped.
enum Stop<X> {
    Broken,
    Expired(X),
}

impl RawBarrier {
    /// A barrier needs 1 to [`MAX_PARTIES`] parties.
    fn validate(parties: &u32) -> Result<(), ObjectError> {
        check_parties(*parties)
    }

    fn fresh(parties: u32) -> RawBarrier {
        RawBarrier {
            state: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
            resets: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            tag: AtomicU32::new(tag::BARRIER),
            _reserved: AtomicU32::new(0),
            members: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn check(&self) -> Result<(), ObjectError> {
        multiproc_core::object::check_tag(
            "barrier",
            tag::BARRIER,
            self.tag.load(Ordering::Acquire),
        )?;
        check_parties(self.parties.load(Ordering::Relaxed))
            .map_err(|e| super::corrupt("barrier", e.to_string()))
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    /// How many parties wait in the current generation.
    pub fn n_waiting(&self) -> u32 {
        let s = self.state.load(Ordering::Relaxed);
        (s & ARRIVED).min(self.parties().saturating_sub(1))
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state.load(Ordering::Acquire) & BROKEN != 0
    }

    /// Records the calling process as a member, so that its death breaks
    /// the barrier while others wait. Returns the slot, or `None` when the
    /// table is full (the process is then not watched).
    ///
    /// # Errors
    /// [`IdentityError`]: this process cannot learn the identity a member
    /// records; it was not registered.
    pub fn register<J: Judge>(&self, judge: &J) -> Result<Option<usize>, IdentityError> {
        let me = judge.me()?;
        for (i, m) in self.members.iter().enumerate() {
            let cur = m.load(Ordering::Relaxed);
            if (cur == 0 || judge.is_dead(cur))
                && m.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Removes a membership taken with [`RawBarrier::register`] (a process
    /// that leaves normally must not count as dead).
    pub fn unregister<J: Judge>(&self, judge: &J, slot: usize) {
        // Without an identity this process registered nothing.
        if let (Some(m), Ok(me)) = (self.members.get(slot), judge.me()) {
            let _ = m.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Breaks the barrier: every waiter (now and later) gets
    /// [`BarrierError::Broken`] until [`RawBarrier::reset`].
    pub fn abort(&self) {
        self.state.fetch_or(BROKEN, Ordering::SeqCst);
        self.wake();
    }

    /// Starts a fresh generation and clears `BROKEN`. Parties waiting in
    /// the old generation return [`BarrierError::Broken`].
    pub fn reset(&self) {
        self.resets.fetch_add(1, Ordering::AcqRel);
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let gen = (s >> GEN_SHIFT).wrapping_add(1) & GEN_MASK;
            match self.state.compare_exchange_weak(
                s,
                gen << GEN_SHIFT,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.wake();
    }

    fn wake(&self) {
        if self.parked.swap(0, Ordering::SeqCst) != 0 {
            futex::wake_all(&self.state);
        }
    }

    /// Waits until every party has arrived; the last one runs `action`
    /// first.
    ///
    /// # Errors
    /// [`BarrierError::Broken`]: broken before or during the wait (a party
    /// timed out or died, the action panicked, an abort or a reset).
    ///
    /// # Panics
    /// If `action` panics; the barrier is broken first.
    pub fn wait<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        action: impl FnOnce(),
    ) -> Result<BarrierWait, BarrierError> {
        self.wait_with(judge, strategy, Forever, action)
    }

    /// As [`RawBarrier::wait`], until `deadline` at most; when it passes
    /// the barrier breaks and this party gets
    /// [`BarrierTimeoutError::TimedOut`].
    ///
    /// # Errors
    /// [`BarrierTimeoutError::Broken`], [`BarrierTimeoutError::TimedOut`].
    ///
    /// # Panics
    /// If `action` panics; the barrier is broken first.
    pub fn wait_until<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        deadline: Instant,
        action: impl FnOnce(),
    ) -> Result<BarrierWait, BarrierTimeoutError> {
        self.wait_with(judge, strategy, Until(deadline), action)
    }

    fn wait_with<J: Judge, W: Wait, E: Fail<Broke> + Fail<W::Expired>>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        wait: W,
        action: impl FnOnce(),
    ) -> Result<BarrierWait, E> {
        let stop = |st: Stop<W::Expired>| match st {
            Stop::Broken => E::fail(Broke),
            Stop::Expired(x) => E::fail(x),
        };
        let parties = self.parties();
        if parties == 0 || parties > MAX_PARTIES {
            return Err(E::fail(Broke));
        }
        let resets = self.resets.load(Ordering::Acquire);
        let mut backoff = Backoff::new(strategy);
        // Arrive.
        let (arrived_state, index) = loop {
            let s = self.state.load(Ordering::Acquire);
            if s & BROKEN != 0 {
                return Err(E::fail(Broke));
            }
            let arrived = s & ARRIVED;
            if arrived >= parties {
                // The previous generation is closing (its action runs).
                self.wait_change(judge, s, &mut backoff, wait)
                    .map_err(stop)?;
                continue;
            }
            if self
                .state
                .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break (s + 1, arrived);
            }
        };
        let gen = (arrived_state >> GEN_SHIFT) & GEN_MASK;
        if index + 1 == parties {
            struct BreakOnUnwind<'a>(&'a RawBarrier);
            impl Drop for BreakOnUnwind<'_> {
                fn drop(&mut self) {
                    self.0.abort();
                }
            }
            let guard = BreakOnUnwind(self);
            action();
            std::mem::forget(guard);
            let next = (gen.wrapping_add(1) & GEN_MASK) << GEN_SHIFT;
            let ok = self
                .state
                .compare_exchange(arrived_state, next, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok();
            self.wake();
            return if ok {
                Ok(BarrierWait {
                    index,
                    is_leader: true,
                })
            } else {
                Err(E::fail(Broke))
            };
        }
        // Wait for the generation to end.
        loop {
            let s = self.state.load(Ordering::Acquire);
            if (s >> GEN_SHIFT) & GEN_MASK != gen {
                if self.resets.load(Ordering::Acquire) != resets {
                    return Err(E::fail(Broke));
                }
                return Ok(BarrierWait {
                    index,
                    is_leader: false,
                });
            }
            if s & BROKEN != 0 {
                return Err(E::fail(Broke));
            }
            match self.wait_change(judge, s, &mut backoff, wait) {
                Ok(()) => {}
                Err(Stop::Expired(x)) => {
                    // Break this generation (unless it just ended).
                    if self
                        .state
                        .compare_exchange(s, s | BROKEN, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.wake();
                        return Err(E::fail(x));
                    }
                }
                Err(Stop::Broken) => return Err(E::fail(Broke)),
            }
        }
    }

    /// Spins, then sleeps while `state == s`, for one liveness period at
    /// most; checks members' liveness when the period passes.
    fn wait_change<J: Judge, W: Wait>(
        &self,
        judge: &J,
        s: u32,
        backoff: &mut Backoff,
        wait: W,
    ) -> Result<(), Stop<W::Expired>> {
        let snoozed = backoff.snooze() == Phase::Retry;
        if let Some(x) = wait.expired() {
            return Err(Stop::Expired(x));
        }
        if snoozed {
            return Ok(());
        }
        self.parked.store(PARKED_FLAG, Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) != s {
            return Ok(());
        }
        let until = next_wake(wait.deadline(), LIVENESS_PERIOD);
        if futex::wait_until(&self.state, s, Some(until)) == futex::WaitOutcome::TimedOut
            && self.state.load(Ordering::Acquire) == s
            && self.a_member_died(judge)
        {
            self.abort();
            return Err(Stop::Broken);
        }
        Ok(())
    }

    /// Whether a registered member process is dead (its slot is cleared).
    fn a_member_died<J: Judge>(&self, judge: &J) -> bool {
        let mut died = false;
        for m in &self.members {
            let p = m.load(Ordering::Relaxed);
            if p != 0 && judge.is_dead(p) {
                let _ = m.compare_exchange(p, 0, Ordering::AcqRel, Ordering::Relaxed);
                log::warn!(
                    "barrier member {:?} died",
                    multiproc_core::ProcessId::from_u64(p)
                );
                died = true;
            }
        }
        died
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use multiproc_core::liveness::OsJudge;
    use std::sync::Arc;
    use std::time::Duration;

    fn boxed(parties: u32) -> Arc<RawBarrier> {
        Arc::new(RawBarrier::new(parties).unwrap())
    }

    #[test]
    fn threads_pass_together_many_times() {
        let b = boxed(3);
        let leaders = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (b, l) = (Arc::clone(&b), Arc::clone(&leaders));
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let r = b
                            .wait(&OsJudge, WaitStrategy::ADAPTIVE, || {
                                l.fetch_add(1, Ordering::Relaxed);
                            })
                            .unwrap();
                        assert!(r.index < 3);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(leaders.load(Ordering::Relaxed), 200);
    }

    #[test]
    fn a_timeout_breaks_it_for_the_others() {
        let b = boxed(3);
        let b2 = Arc::clone(&b);
        let h = std::thread::spawn(move || b2.wait(&OsJudge, WaitStrategy::Blocking, || {}));
        let r = b.wait_until(
            &OsJudge,
            WaitStrategy::Blocking,
            Instant::now() + Duration::from_millis(20),
            || {},
        );
        assert_eq!(r, Err(BarrierTimeoutError::TimedOut));
        assert_eq!(h.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.is_broken());
        assert_eq!(
            b.wait(&OsJudge, WaitStrategy::Blocking, || {}),
            Err(BarrierError::Broken)
        );
        b.reset();
        assert!(RawBarrier::new(0).is_err());
        let one = boxed(1);
        assert!(
            one.wait(&OsJudge, WaitStrategy::Blocking, || {})
                .unwrap()
                .is_leader
        );
    }
}
