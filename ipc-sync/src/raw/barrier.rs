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

use super::{check_ptr, check_tag, past, tag, LIVENESS_PERIOD};
use crate::error::BarrierError;
use crate::owner;
use crate::Error;
use ipc_core::futex;
use ipc_core::wait::{Backoff, Phase, WaitStrategy};
use ipc_core::{IdentityError, Segment};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

ipc_core::assert_layout!(RawBarrier, size = 24 + 8 * MEMBER_SLOTS, align = 8);
// SAFETY: `#[repr(C)]`, integer atomics only, no padding, no pointers; any
// bit pattern is a state that at worst reads as broken or as a dead member.
unsafe impl ipc_core::Shareable for RawBarrier {}

fn check_parties(parties: u32) -> Result<(), Error> {
    if parties == 0 {
        return Err(Error::InvalidArgument("a barrier needs at least one party"));
    }
    if parties > MAX_PARTIES {
        return Err(Error::InvalidArgument(
            "a barrier has at most 65535 parties",
        ));
    }
    Ok(())
}

impl RawBarrier {
    /// The bytes it needs (align 8).
    pub const fn memory_size() -> usize {
        std::mem::size_of::<RawBarrier>()
    }

    /// Writes a barrier for `parties` at `ptr`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero or more than [`MAX_PARTIES`]
    /// parties, or a bad pointer.
    ///
    /// # Safety
    /// `ptr` valid for writes of [`RawBarrier::memory_size`] bytes, aligned
    /// to 8, mapped for `'a`, unused by others meanwhile.
    pub unsafe fn init_in<'a>(ptr: NonNull<u8>, parties: u32) -> Result<&'a RawBarrier, Error> {
        check_parties(parties)?;
        let p = check_ptr::<RawBarrier>(ptr.as_ptr())?;
        // SAFETY: the caller guarantees a valid, exclusive place of the
        // right size; aligned (checked); all-zero is a valid `RawBarrier`.
        let b = unsafe {
            p.as_ptr().write_bytes(0, 1);
            p.as_ref()
        };
        b.reset_to(parties);
        Ok(b)
    }

    /// Uses a barrier initialized at `ptr`, checking its tag.
    ///
    /// # Safety
    /// `ptr` valid for reads and writes of the size for `'a`.
    pub unsafe fn attach<'a>(ptr: NonNull<u8>) -> Result<&'a RawBarrier, Error> {
        let p = check_ptr::<RawBarrier>(ptr.as_ptr())?;
        // SAFETY: valid and aligned; any bit pattern is valid.
        let b = unsafe { p.as_ref() };
        b.check()?;
        Ok(b)
    }

    /// Initializes a barrier at `offset` of `seg`.
    pub fn init_at(seg: &Segment, offset: u64, parties: u32) -> Result<&RawBarrier, Error> {
        check_parties(parties)?;
        let b: &RawBarrier = seg.get(offset)?;
        b.reset_to(parties);
        Ok(b)
    }

    /// The barrier at `offset` of `seg`, tag checked.
    pub fn at(seg: &Segment, offset: u64) -> Result<&RawBarrier, Error> {
        let b: &RawBarrier = seg.get(offset)?;
        b.check()?;
        Ok(b)
    }

    pub(crate) fn reset_to(&self, parties: u32) {
        self.state.store(0, Ordering::Relaxed);
        self.parties.store(parties, Ordering::Relaxed);
        self.resets.store(0, Ordering::Relaxed);
        self.parked.store(0, Ordering::Relaxed);
        for m in &self.members {
            m.store(0, Ordering::Relaxed);
        }
        self.tag.store(tag::BARRIER, Ordering::Release);
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        check_tag(self.tag.load(Ordering::Acquire), tag::BARRIER, "barrier")?;
        check_parties(self.parties.load(Ordering::Relaxed))
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
    pub fn register(&self) -> Result<Option<usize>, IdentityError> {
        let me = owner::me()?.process;
        for (i, m) in self.members.iter().enumerate() {
            let cur = m.load(Ordering::Relaxed);
            if (cur == 0 || !owner::process_alive(cur))
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
    pub fn unregister(&self, slot: usize) {
        // Without an identity this process registered nothing.
        if let (Some(m), Ok(me)) = (self.members.get(slot), owner::me()) {
            let _ = m.compare_exchange(me.process, 0, Ordering::AcqRel, Ordering::Relaxed);
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
    /// first. `deadline` bounds the wait; when it passes the barrier breaks
    /// and this party gets [`BarrierError::TimedOut`].
    ///
    /// # Errors
    /// [`BarrierError::Broken`]: broken before or during the wait (a party
    /// timed out, died, the action panicked, or a reset);
    /// [`BarrierError::TimedOut`].
    pub fn wait_until(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
        action: impl FnOnce(),
    ) -> Result<BarrierWait, BarrierError> {
        let parties = self.parties();
        if parties == 0 || parties > MAX_PARTIES {
            return Err(BarrierError::Broken);
        }
        let resets = self.resets.load(Ordering::Acquire);
        let mut backoff = Backoff::new(strategy);
        // Arrive.
        let (arrived_state, index) = loop {
            let s = self.state.load(Ordering::Acquire);
            if s & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            let arrived = s & ARRIVED;
            if arrived >= parties {
                // The previous generation is closing (its action runs).
                self.wait_change(s, &mut backoff, deadline)?;
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
                Err(BarrierError::Broken)
            };
        }
        // Wait for the generation to end.
        loop {
            let s = self.state.load(Ordering::Acquire);
            if (s >> GEN_SHIFT) & GEN_MASK != gen {
                if self.resets.load(Ordering::Acquire) != resets {
                    return Err(BarrierError::Broken);
                }
                return Ok(BarrierWait {
                    index,
                    is_leader: false,
                });
            }
            if s & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            if let Err(e) = self.wait_change(s, &mut backoff, deadline) {
                if e == BarrierError::TimedOut {
                    // Break this generation (unless it just ended).
                    if self
                        .state
                        .compare_exchange(s, s | BROKEN, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.wake();
                        return Err(BarrierError::TimedOut);
                    }
                    continue;
                }
                return Err(e);
            }
        }
    }

    /// Spins, then sleeps while `state == s`, for one liveness period at
    /// most; checks members' liveness when the period passes.
    fn wait_change(
        &self,
        s: u32,
        backoff: &mut Backoff,
        deadline: Option<Instant>,
    ) -> Result<(), BarrierError> {
        if backoff.snooze() == Phase::Retry {
            if past(deadline) {
                return Err(BarrierError::TimedOut);
            }
            return Ok(());
        }
        if past(deadline) {
            return Err(BarrierError::TimedOut);
        }
        self.parked.store(PARKED_FLAG, Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) != s {
            return Ok(());
        }
        let until = super::next_wake(deadline, LIVENESS_PERIOD);
        if futex::wait_until(&self.state, s, Some(until)) == futex::WaitOutcome::TimedOut
            && self.state.load(Ordering::Acquire) == s
            && self.a_member_died()
        {
            self.abort();
            return Err(BarrierError::Broken);
        }
        Ok(())
    }

    /// Whether a registered member process is dead (its slot is cleared).
    fn a_member_died(&self) -> bool {
        let mut died = false;
        for m in &self.members {
            let p = m.load(Ordering::Relaxed);
            if p != 0 && !owner::process_alive(p) {
                let _ = m.compare_exchange(p, 0, Ordering::AcqRel, Ordering::Relaxed);
                log::warn!("barrier member {:?} died", ipc_core::ProcessId::from_u64(p));
                died = true;
            }
        }
        died
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn boxed(parties: u32) -> Arc<RawBarrier> {
        // SAFETY: all-zero is a valid `RawBarrier` (atomics only).
        let b: RawBarrier = unsafe { std::mem::zeroed() };
        b.reset_to(parties);
        Arc::new(b)
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
                            .wait_until(WaitStrategy::ADAPTIVE, None, || {
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
        let h = std::thread::spawn(move || b2.wait_until(WaitStrategy::Blocking, None, || {}));
        let r = b.wait_until(
            WaitStrategy::Blocking,
            Some(Instant::now() + Duration::from_millis(20)),
            || {},
        );
        assert_eq!(r, Err(BarrierError::TimedOut));
        assert_eq!(h.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.is_broken());
        assert_eq!(
            b.wait_until(WaitStrategy::Blocking, None, || {}),
            Err(BarrierError::Broken)
        );
        b.reset();
        let one = boxed(1);
        assert!(
            one.wait_until(WaitStrategy::Blocking, None, || {})
                .unwrap()
                .is_leader
        );
    }
}
