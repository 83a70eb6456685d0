//! The holders of each end (line 5 of the control block): the processes
//! that hold an end besides the one that claimed it, and the joins that
//! enter them. See the module docs of [`super`] for when an end closes.

use super::{Claim, RawConsumer, RawProducer, RawRing, Side, HOLDERS};
use crate::primitive::{AtomicU64, Ordering};
use crate::raw::{ClaimError, Memory};
use multiproc_core::liveness::Judge;

impl<M: Memory> RawRing<M> {
    /// The holder word `i` of `side`.
    #[inline]
    pub(super) fn holder(&self, side: Side, i: usize) -> &AtomicU64 {
        self.word(side.holders() + 8 * i)
    }

    /// A holder of `side` other than `except` that may be alive by `judge`
    /// (a slow path: the judge may read `/proc`).
    pub fn live_holder<J: Judge>(&self, side: Side, judge: &J, except: u64) -> Option<u64> {
        (0..HOLDERS)
            .map(|i| self.holder(side, i).load(Ordering::Acquire))
            .find(|&id| id != 0 && id != except && !judge.is_dead(id))
    }

    /// Records `id` as a holder of `side` (idempotent), reusing the slot of
    /// a holder `judge` proves dead.
    pub(super) fn add_holder<J: Judge>(
        &self,
        side: Side,
        id: u64,
        judge: &J,
    ) -> Result<(), ClaimError> {
        let words = (0..HOLDERS).map(|i| self.holder(side, i));
        if words.clone().any(|w| w.load(Ordering::Acquire) == id) {
            return Ok(());
        }
        for w in words {
            let cur = w.load(Ordering::Acquire);
            if (cur == 0 || judge.is_dead(cur))
                && w.compare_exchange(cur, id, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Ok(());
            }
        }
        Err(ClaimError::TooManyHolders)
    }

    /// Forgets `id` as a holder of `side`.
    pub(super) fn remove_holder(&self, side: Side, id: u64) {
        for i in 0..HOLDERS {
            let _ =
                self.holder(side, i)
                    .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Joins `side`'s end as one more holder: for a process given an end
    /// another one claimed (a child started with it in its arguments). The
    /// end stays open until every holder has dropped it or died; which of
    /// them uses it, one at a time, is the program's affair, as with a
    /// file descriptor shared by a fork.
    fn join<J: Judge>(&self, side: Side, judge: J) -> Result<Claim<M, J>, ClaimError> {
        let me = judge.me()?;
        if self.is_closed(side) || self.owner(side) == 0 {
            return Err(ClaimError::Closed);
        }
        self.add_holder(side, me, &judge)?;
        // The last holder may have left between the look and the entry:
        // then the end was closed, and this process must not hold it.
        if self.is_closed(side) {
            self.remove_holder(side, me);
            return Err(ClaimError::Closed);
        }
        Ok(Claim {
            ring: self.clone(),
            side,
            judge,
            me,
        })
    }

    /// Joins the producing end as one more holder (a process given an end
    /// another one claimed: a child started with it in its arguments; the
    /// end stays open until every holder has dropped it or died),
    /// continuing after the last committed record.
    ///
    /// # Errors
    /// [`ClaimError::Closed`] if the end is closed or was never claimed,
    /// [`ClaimError::TooManyHolders`], [`ClaimError::UnknownIdentity`],
    /// [`ClaimError::Corrupt`].
    pub fn join_producer<J: Judge>(&self, judge: J) -> Result<RawProducer<M, J>, ClaimError> {
        RawProducer::start(self.join(Side::Producer, judge)?).map_err(ClaimError::Corrupt)
    }

    /// Joins the consuming end as one more holder, at the published `head`.
    ///
    /// # Errors
    /// As [`RawRing::join_producer`].
    pub fn join_consumer<J: Judge>(&self, judge: J) -> Result<RawConsumer<M, J>, ClaimError> {
        RawConsumer::start(self.join(Side::Consumer, judge)?).map_err(ClaimError::Corrupt)
    }
}

#[cfg(not(loom))]
impl<M: crate::raw::Addressable> RawRing<M> {
    /// The holders of `side`'s end as the workspace's holder table, for a
    /// front end to register with the fork path
    /// ([`Hold`](multiproc_core::holders::Hold)).
    pub fn holders_table(&self, side: Side) -> &multiproc_core::holders::Holders {
        const { assert!(std::mem::size_of::<multiproc_core::holders::Holders>() == 8 * HOLDERS) };
        // SAFETY: `HOLDERS` 8-aligned `u64` words at `side.holders()` inside
        // the control block (which every ring's memory holds), only ever
        // accessed atomically; `Holders` is `#[repr(C)]`, that many
        // `AtomicU64`s (size checked above), valid for every bit pattern.
        unsafe {
            &*self
                .mem
                .addr(side.holders())
                .cast::<multiproc_core::holders::Holders>()
        }
    }
}
