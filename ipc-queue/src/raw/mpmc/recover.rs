//! Waiting behind a claimed slot, and finishing the claims of dead
//! processes.

use super::{my_id, RawError, RawMpmc, BUSY, ID_MASK, LOST, NOT_EMPTY, NOT_FULL, READING};
use crate::primitive::{order, spin_loop, yield_now, Instant, Ordering, Site};
use crate::raw::Memory;
use multiproc_core::liveness::Judge;
use std::time::Duration;

/// How long a slot may stay claimed, as seen by one waiter, before that waiter
/// checks whether the claimer is still alive.
pub const STUCK_AFTER: Duration = Duration::from_micros(200);
/// The longest interval between two liveness checks of the same live claimer.
const MAX_CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// Past this, a waiter behind a claimed slot yields instead of spinning: the
/// claimer is probably descheduled and may need this very CPU.
const YIELD_AFTER: Duration = Duration::from_micros(20);
/// Claims one call may recover before it gives up with [`RawError::Busy`].
const RECOVERY_LIMIT: u32 = 64;

/// What one waiter has seen of a claimed slot, so it checks the claimer's
/// liveness only after the slot stayed claimed for [`STUCK_AFTER`], and then
/// at growing intervals. Keep one per blocking call.
#[derive(Debug)]
pub struct Watch {
    key: (u64, u64),
    since: Option<Instant>,
    next_check: Duration,
    checked: bool,
    recovered: u32,
}

impl Default for Watch {
    fn default() -> Self {
        Watch::new()
    }
}

enum Verdict {
    Spin,
    Yield,
    Check,
    GiveUp,
}

impl Watch {
    /// A watch that has seen nothing yet.
    pub const fn new() -> Watch {
        Watch {
            key: (u64::MAX, 0),
            since: None,
            next_check: STUCK_AFTER,
            checked: false,
            recovered: 0,
        }
    }

    #[cold]
    fn observe(&mut self, idx: u64, state: u64) -> Verdict {
        let now = Instant::now();
        if self.key != (idx, state) || self.since.is_none() {
            self.key = (idx, state);
            self.since = Some(now);
            self.next_check = STUCK_AFTER;
            self.checked = false;
            return Verdict::Spin;
        }
        let since = self.since.unwrap_or(now);
        let waited = now.saturating_duration_since(since);
        if waited >= self.next_check {
            self.next_check = waited + (self.next_check * 2).min(MAX_CHECK_INTERVAL);
            self.checked = true;
            Verdict::Check
        } else if self.checked {
            Verdict::GiveUp
        } else if waited >= YIELD_AFTER {
            Verdict::Yield
        } else {
            Verdict::Spin
        }
    }
}

impl<M: Memory> RawMpmc<M> {
    /// A slot needed at `pos` is claimed (`state`): spin, check the claimer,
    /// or give up with [`RawError::Busy`].
    #[cold]
    pub(super) fn busy<J: Judge>(
        &self,
        pos: u64,
        state: u64,
        watch: &mut Watch,
        judge: &J,
    ) -> Result<(), RawError> {
        match watch.observe(pos & self.at.slots.mask, state) {
            Verdict::Spin => {
                spin_loop();
                Ok(())
            }
            Verdict::Yield => {
                yield_now();
                Ok(())
            }
            Verdict::GiveUp => Err(RawError::Busy),
            Verdict::Check => {
                if watch.recovered < RECOVERY_LIMIT && self.recover(pos, state, judge) {
                    let recovered = watch.recovered + 1;
                    *watch = Watch::new();
                    watch.recovered = recovered;
                    Ok(())
                } else {
                    Err(RawError::Busy)
                }
            }
        }
    }

    /// If the claimer recorded in `state` (the state of the slot serving
    /// `pos`) is dead by `judge`, takes its claim over and finishes it.
    /// Returns whether the slot changed (recovered here or moved on
    /// meanwhile).
    #[cold]
    fn recover<J: Judge>(&self, pos: u64, state: u64, judge: &J) -> bool {
        let owner = state & ID_MASK;
        // Without an identity of its own this process cannot take a claim
        // over (it would have to record itself): leave it to another waiter.
        let Ok(me) = my_id(judge) else {
            return false;
        };
        if owner == me || !judge.is_dead(owner) {
            return self.state(pos).load(Ordering::Acquire) != state;
        }
        let takeover = (state & (BUSY | READING)) | me;
        if self
            .state(pos)
            .compare_exchange(state, takeover, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return true;
        }
        let idx = pos & self.at.slots.mask;
        // SYNC POINT (both branches): the final store pairs with the acquire
        // load of the state by the next claimer of the slot, which then sees
        // `len`, `lost` and the index moved here.
        let finished = order(Site::MpmcRecovered, Ordering::Release);
        if state & READING == 0 {
            // A producer died between its claim and its publication.
            let head = self.head().load(Ordering::Acquire);
            let p = head.wrapping_add(idx.wrapping_sub(head) & self.at.slots.mask);
            self.len_word(p).store(super::ABORTED, Ordering::Relaxed);
            self.at.word(LOST).fetch_add(1, Ordering::Relaxed);
            self.unfinished_dec();
            self.tail().fetch_max(p.wrapping_add(1), Ordering::AcqRel);
            self.state(p)
                .store(p.wrapping_mul(2).wrapping_add(1), finished);
            self.at.notify(NOT_EMPTY);
            log::warn!(
                "mpmc: producer {} died holding position {p}; message marked lost",
                owner >> 32
            );
        } else {
            // A consumer died between its claim and its release.
            let tail = self.tail().load(Ordering::Acquire);
            let lo = tail.wrapping_sub(self.at.slots.cap);
            let p = lo.wrapping_add(idx.wrapping_sub(lo) & self.at.slots.mask);
            if self.len_word(p).load(Ordering::Relaxed) != super::ABORTED {
                self.at.word(LOST).fetch_add(1, Ordering::Relaxed);
                self.unfinished_dec();
            }
            self.head().fetch_max(p.wrapping_add(1), Ordering::AcqRel);
            self.state(p)
                .store(p.wrapping_add(self.at.slots.cap).wrapping_mul(2), finished);
            self.at.notify(NOT_FULL);
            log::warn!(
                "mpmc: consumer {} died holding message {p}; message counted lost",
                owner >> 32
            );
        }
        true
    }

    /// Finds every slot claimed by a process `judge` finds dead and finishes
    /// its claim (as a waiter on that slot would); returns how many it
    /// recovered. Costs one judgement per claimed slot (a `/proc` read for
    /// the operating system's judge): call it on a slow path, e.g. while
    /// waiting for something no live process may be about to do.
    pub fn sweep<J: Judge>(&self, judge: &J) -> u64 {
        let mut n = 0;
        for idx in 0..self.at.slots.cap {
            let s = self.state(idx).load(Ordering::Acquire);
            if s & BUSY != 0 && judge.is_dead(s & ID_MASK) && self.recover(idx, s, judge) {
                n += 1;
            }
        }
        n
    }
}
