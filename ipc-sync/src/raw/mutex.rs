//! The robust lock word: a futex holding the owner's thread id.
//!
//! The lock is one 32-bit futex word plus a record of the owner's process:
//!
//! | `word` | meaning |
//! |---|---|
//! | `0` | free |
//! | `tid` | held by thread `tid`, nobody parked |
//! | `tid \| WAITERS` | held by thread `tid`; someone may be parked on the word |
//! | `NOT_RECOVERABLE` (all tid bits set) | a dead owner's data was never repaired; unusable for ever |
//!
//! Invariant: only the holder (or a taker that proved the holder dead)
//! changes a non-zero word's tid bits; `WAITERS` is only ever set while the
//! word is held and is cleared by the release.
//!
//! - **Lock, uncontended**: one `CAS(0 -> tid)`, then two plain stores of the
//!   owner record (`owner_process`, then `owner_tid`) into the same cache
//!   line. No syscall.
//! - **Unlock**: one `swap(0)`; a `FUTEX_WAKE` of one waiter only if the old
//!   word had `WAITERS`.
//! - **Contended**: spin and yield by the caller's [`WaitStrategy`], then set
//!   `WAITERS` and `FUTEX_WAIT` with a bounded timeout ([`LIVENESS_PERIOD`]).
//!   Each time a period passes with the same holder, the waiter asks its
//!   [`Judge`] whether the holder died (its process, then its thread). A
//!   dead holder is taken over with a `CAS` on the exact word seen, so
//!   exactly one waiter wins; it gets [`Acquired::OwnerDied`].
//!
//! The record is written process first, then tid (with `Release`), and read
//! tid first (with `Acquire`): a waiter that finds the holder's tid in the
//! record also finds the holder's process there, never the previous
//! holder's (which may be dead, and would make a live holder look dead).
//!
//! A holder killed between its `CAS` and the owner record leaves a record
//! that belongs to the previous holder; the waiter notices the mismatch
//! (`owner_tid` differs from the word) and falls back to asking whether
//! thread `tid` still exists. Thread ids are unique per pid namespace while
//! the thread lives, so a missing thread is a dead holder.
//!
//! Unlike glibc's robust `pthread_mutex_t`, nothing is registered with the
//! kernel (no `set_robust_list` entry), so the owner's thread id and process
//! record are the only state, and the uncontended path costs the same as a
//! plain futex mutex.

use super::{next_wake, raw_object, tag, Forever, Until, Wait, LIVENESS_PERIOD};
use crate::error::{Fail, LockError, LockTimeoutError, Refused, TryLockError, UnlockError};
use crate::primitive::futex::{self, WaitOutcome};
use crate::primitive::{ord, AtomicU32, AtomicU64, Ordering, Site};
use multiproc_core::liveness::Judge;
use multiproc_core::wait::{Backoff, Phase, WaitStrategy};
use multiproc_core::{IdentityError, ProcessId};
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// The tid bits of the lock word (Linux tids are below 2^22).
pub(crate) const TID_MASK: u32 = 0x3fff_ffff;
/// Set while some waiter may be parked on the word.
const WAITERS: u32 = 1 << 31;
/// The word of a lock whose dead owner's data was never repaired.
const NOT_RECOVERABLE: u32 = TID_MASK;

/// How a lock was acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "OwnerDied means the protected data may be inconsistent"]
pub enum Acquired {
    /// From a live holder, or free: the data is as the last holder left it.
    Clean,
    /// From a holder that died holding it. The caller holds the lock and must
    /// repair the data, then either `unlock` (repaired) or
    /// `unlock_not_recoverable` (cannot repair).
    OwnerDied {
        /// The dead holder's process, when its record was complete.
        previous: Option<ProcessId>,
    },
}

/// The calling thread, as a holder records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    /// The thread id, in the lock word.
    pub(crate) tid: u32,
    /// The packed process id, in the owner record.
    pub(crate) process: u64,
}

impl Me {
    /// Asks `judge` who the caller is.
    #[inline]
    pub(crate) fn of<J: Judge>(judge: &J) -> Result<Me, IdentityError> {
        let (tid, process) = judge.holder()?;
        Ok(Me { tid, process })
    }
}

/// Whether the holder recorded as thread `tid` (from the lock word) with the
/// owner record `rec_tid`/`rec_process` (written just after the word was
/// claimed) is proven dead.
///
/// If the record belongs to `tid`, the holder is dead when its process or
/// its thread is. If the record is stale (the holder is between claiming the
/// word and writing the record, or died there), only the thread id is asked
/// about: a missing thread is dead. "Unknown" is alive.
pub(crate) fn holder_dead<J: Judge>(judge: &J, tid: u32, rec_tid: u32, rec_process: u64) -> bool {
    if rec_tid == tid && rec_process != 0 {
        judge.is_dead(rec_process) || judge.thread_is_dead(rec_process, tid)
    } else {
        judge.thread_is_dead(0, tid)
    }
}

/// A robust, process-shared mutex word (no data). See the [module
/// docs](self) for the algorithm.
///
/// 24 bytes, align 8, valid for every bit pattern.
#[repr(C)]
#[derive(Debug)]
pub struct RawMutex {
    /// The futex word (table above).
    word: AtomicU32,
    /// The holder's tid, written just after `word` was claimed.
    owner_tid: AtomicU32,
    /// The holder's process (`ProcessId::to_u64`), written with `owner_tid`.
    owner_process: AtomicU64,
    /// [`tag::MUTEX`] (or [`tag::REENTRANT`]).
    tag: AtomicU32,
    /// The recursion count of a reentrant lock; only its owner touches it.
    count: AtomicU32,
}

raw_object!(RawMutex, "ipc-sync/raw-mutex", 1, size = 24, align = 8);

impl RawMutex {
    fn fresh((): ()) -> RawMutex {
        Self::with_tag(tag::MUTEX)
    }

    pub(crate) fn check(&self) -> Result<(), multiproc_core::object::ObjectError> {
        self.check_tag(tag::MUTEX, "mutex")
    }

    pub(crate) fn with_tag(t: u32) -> RawMutex {
        RawMutex {
            word: AtomicU32::new(0),
            owner_tid: AtomicU32::new(0),
            owner_process: AtomicU64::new(0),
            tag: AtomicU32::new(t),
            count: AtomicU32::new(0),
        }
    }

    /// Checks the object tag another process wrote.
    pub(crate) fn check_tag(
        &self,
        expected: u32,
        what: &'static str,
    ) -> Result<(), multiproc_core::object::ObjectError> {
        multiproc_core::object::check_tag(what, expected, self.tag.load(Ordering::Acquire))
    }

    /// Locks, waiting as long as it takes.
    ///
    /// # Errors
    /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`],
    /// [`LockError::UnknownIdentity`]; never `OwnerDied` (that is
    /// [`Acquired::OwnerDied`]).
    #[inline]
    pub fn lock<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
    ) -> Result<Acquired, LockError<Infallible>> {
        let me = Me::of(judge).map_err(LockError::UnknownIdentity)?;
        if self.try_fast(me) {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(judge, me, strategy, Forever)
    }

    /// Locks, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`RawMutex::lock`], and [`LockTimeoutError::TimedOut`].
    #[inline]
    pub fn lock_until<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        deadline: Instant,
    ) -> Result<Acquired, LockTimeoutError<Infallible>> {
        let me = Me::of(judge).map_err(LockTimeoutError::UnknownIdentity)?;
        if self.try_fast(me) {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(judge, me, strategy, Until(deadline))
    }

    /// Locks, waiting `timeout` at most; a zero timeout tries once
    /// ([`RawMutex::try_lock`]).
    ///
    /// # Errors
    /// As [`RawMutex::lock_until`], and [`LockTimeoutError::WouldBlock`] for
    /// a zero timeout.
    pub fn lock_timeout<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Result<Acquired, LockTimeoutError<Infallible>> {
        super::timed(
            timeout,
            || self.try_lock(judge),
            |d| self.lock_until(judge, strategy, d),
            || self.lock(judge, strategy),
        )
    }

    /// One `CAS` from free to held by `me`, and the owner record.
    #[inline]
    fn try_fast(&self, me: Me) -> bool {
        let ok = self
            .word
            .compare_exchange(
                0,
                me.tid,
                ord(Site::MutexAcquire, Ordering::Acquire),
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            self.record(me);
        }
        ok
    }

    /// Tries once. When the lock is held, asks `judge` whether its holder
    /// is alive and takes it over if not.
    ///
    /// # Errors
    /// As [`RawMutex::lock`], and [`TryLockError::WouldBlock`].
    pub fn try_lock<J: Judge>(&self, judge: &J) -> Result<Acquired, TryLockError<Infallible>> {
        let me = Me::of(judge).map_err(TryLockError::UnknownIdentity)?;
        match self.word.compare_exchange(
            0,
            me.tid,
            ord(Site::MutexAcquire, Ordering::Acquire),
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                self.record(me);
                Ok(Acquired::Clean)
            }
            Err(w) => {
                self.check_held(w, me).map_err(TryLockError::fail)?;
                if w & TID_MASK == 0 {
                    // Only a stray WAITERS bit: claim it keeping the bit.
                    if self
                        .word
                        .compare_exchange(w, me.tid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.record(me);
                        return Ok(Acquired::Clean);
                    }
                    return Err(TryLockError::WouldBlock);
                }
                self.take_over_if_dead(judge, w, me)
                    .ok_or(TryLockError::WouldBlock)
            }
        }
    }

    #[inline]
    fn record(&self, me: Me) {
        // SYNC POINT: the process first, then the tid with Release; a waiter
        // that reads this tid (Acquire) reads this process too, never the
        // previous holder's, which may be dead (loom found that pairing).
        self.owner_process.store(me.process, Ordering::Relaxed);
        self.owner_tid
            .store(me.tid, ord(Site::MutexRecord, Ordering::Release));
    }

    /// What refuses the lock whatever the wait: unrecoverable, or our own.
    #[inline]
    fn check_held(&self, w: u32, me: Me) -> Result<(), Refused> {
        let holder = w & TID_MASK;
        if holder == NOT_RECOVERABLE {
            return Err(Refused::NotRecoverable);
        }
        if holder == me.tid && self.is_recorded_owner(me) {
            return Err(Refused::WouldDeadlock);
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn is_recorded_owner(&self, me: Me) -> bool {
        self.owner_tid.load(Ordering::Relaxed) == me.tid
            && self.owner_process.load(Ordering::Relaxed) == me.process
    }

    #[cold]
    fn lock_slow<J: Judge, W: Wait, E: Fail<Refused> + Fail<W::Expired>>(
        &self,
        judge: &J,
        me: Me,
        strategy: WaitStrategy,
        wait: W,
    ) -> Result<Acquired, E> {
        let mut backoff = Backoff::new(strategy);
        // Once this thread has parked, it claims the word with WAITERS set:
        // other waiters may still sleep on it and must be woken by our unlock.
        let mut claim = me.tid;
        let mut spins: u32 = 0;
        let mut last_check: Option<Instant> = None;
        loop {
            let w = self.word.load(Ordering::Relaxed);
            if w & TID_MASK == 0 {
                match self.word.compare_exchange_weak(
                    w,
                    claim | (w & WAITERS),
                    ord(Site::MutexAcquire, Ordering::Acquire),
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.record(me);
                        return Ok(Acquired::Clean);
                    }
                    Err(_) => continue,
                }
            }
            self.check_held(w, me).map_err(E::fail)?;
            if backoff.snooze() == Phase::Retry {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(256) {
                    // A busy-spinning waiter must still notice a dead holder
                    // and its own deadline.
                    let now = Instant::now();
                    let due = last_check.is_none_or(|t| now - t >= LIVENESS_PERIOD);
                    if due {
                        if last_check.is_some() {
                            if let Some(a) = self.take_over_if_dead(judge, w, me) {
                                return Ok(a);
                            }
                        }
                        last_check = Some(now);
                    }
                    if let Some(x) = wait.expired() {
                        return self.give_up(judge, w, me, x);
                    }
                }
                continue;
            }
            if let Some(x) = wait.expired() {
                return self.give_up(judge, w, me, x);
            }
            if w & WAITERS == 0
                && self
                    .word
                    .compare_exchange(w, w | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            claim = me.tid | WAITERS;
            let until = next_wake(wait.deadline(), LIVENESS_PERIOD);
            if futex::wait_until(&self.word, w | WAITERS, Some(until)) == WaitOutcome::TimedOut {
                if let Some(a) = self.take_over_if_dead(judge, w | WAITERS, me) {
                    return Ok(a);
                }
            }
        }
    }

    /// The wait ran out: a last check that the holder is alive, then `x`.
    #[cold]
    fn give_up<J: Judge, X, E: Fail<X>>(
        &self,
        judge: &J,
        w: u32,
        me: Me,
        x: X,
    ) -> Result<Acquired, E> {
        self.take_over_if_dead(judge, w, me)
            .ok_or_else(|| E::fail(x))
    }

    /// If the holder in `w` is dead, claims the word from it (exactly one
    /// caller can succeed, by `CAS` on the exact word).
    #[cold]
    fn take_over_if_dead<J: Judge>(&self, judge: &J, w: u32, me: Me) -> Option<Acquired> {
        let holder = w & TID_MASK;
        if holder == 0 || holder == NOT_RECOVERABLE {
            return None;
        }
        // SYNC POINT: pairs with the Release of `record`: tid first.
        let rec_tid = self.owner_tid.load(Ordering::Acquire);
        let rec_process = self.owner_process.load(Ordering::Acquire);
        if !holder_dead(judge, holder, rec_tid, rec_process) {
            return None;
        }
        let cur = self.word.load(Ordering::Relaxed);
        if cur & TID_MASK != holder {
            return None; // released or taken meanwhile
        }
        // Keep WAITERS: others may be parked and must be woken by our unlock.
        if self
            .word
            .compare_exchange(cur, me.tid | WAITERS, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        self.record(me);
        let previous =
            (rec_tid == holder && rec_process != 0).then(|| ProcessId::from_u64(rec_process));
        log::warn!("robust lock taken over from dead holder tid {holder} ({previous:?})");
        Some(Acquired::OwnerDied { previous })
    }

    /// Unlocks, after checking that the calling thread holds the lock.
    ///
    /// # Errors
    /// [`UnlockError::NotLocked`] or [`UnlockError::NotOwner`]; the lock is
    /// left as it was.
    #[inline]
    pub fn unlock<J: Judge>(&self, judge: &J) -> Result<(), UnlockError> {
        let Ok(me) = Me::of(judge) else {
            // Without an identity this process never took the lock.
            return Err(self.not_ours());
        };
        match self.word.compare_exchange(
            me.tid,
            0,
            ord(Site::MutexRelease, Ordering::Release),
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok(()),
            Err(w) => self.unlock_slow(me, w),
        }
    }

    /// The unlock error for a caller that cannot hold the lock.
    #[cold]
    pub(crate) fn not_ours(&self) -> UnlockError {
        match self.word.load(Ordering::Relaxed) & TID_MASK {
            0 => UnlockError::NotLocked,
            holder => UnlockError::NotOwner { holder_tid: holder },
        }
    }

    #[cold]
    fn unlock_slow(&self, me: Me, w: u32) -> Result<(), UnlockError> {
        self.check_owner(me, w)?;
        self.unlock_held();
        Ok(())
    }

    /// Whether `me` holds the word `w` (tid bits only).
    pub(crate) fn check_owner(&self, me: Me, w: u32) -> Result<(), UnlockError> {
        match w & TID_MASK {
            0 => Err(UnlockError::NotLocked),
            h if h != me.tid || h == NOT_RECOVERABLE => {
                Err(UnlockError::NotOwner { holder_tid: h })
            }
            _ => Ok(()),
        }
    }

    /// Unlocks a lock the caller knows it holds (a guard): one `swap`, and a
    /// `FUTEX_WAKE` only if a waiter announced itself.
    #[inline]
    pub fn unlock_held(&self) {
        if self
            .word
            .swap(0, ord(Site::MutexRelease, Ordering::Release))
            & WAITERS
            != 0
        {
            self.wake_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        futex::wake(&self.word, 1);
    }

    /// Releases the lock and makes it unrecoverable: every later lock fails
    /// with `NotRecoverable`. For a holder that got [`Acquired::OwnerDied`]
    /// and cannot repair the data.
    ///
    /// # Errors
    /// [`UnlockError::NotLocked`] or [`UnlockError::NotOwner`]; the lock is
    /// left as it was.
    pub fn unlock_not_recoverable<J: Judge>(&self, judge: &J) -> Result<(), UnlockError> {
        let Ok(me) = Me::of(judge) else {
            return Err(self.not_ours());
        };
        self.check_owner(me, self.word.load(Ordering::Relaxed))?;
        self.make_not_recoverable();
        Ok(())
    }

    /// Releases a lock the caller knows it holds and makes it unrecoverable
    /// (a guard dropped after `OwnerDied` without repair).
    pub fn make_not_recoverable(&self) {
        self.word.store(NOT_RECOVERABLE, Ordering::Release);
        futex::wake_all(&self.word);
    }

    /// Whether the lock is held (by anyone, alive or not) right now.
    pub fn is_locked(&self) -> bool {
        let h = self.word.load(Ordering::Relaxed) & TID_MASK;
        h != 0 && h != NOT_RECOVERABLE
    }

    /// Whether the lock was made unrecoverable.
    pub fn is_not_recoverable(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK == NOT_RECOVERABLE
    }

    /// Whether the calling thread (as `judge` names it) holds the lock.
    pub fn is_held_by_current_thread<J: Judge>(&self, judge: &J) -> bool {
        Me::of(judge).is_ok_and(|me| self.is_held_by(me))
    }

    pub(crate) fn is_held_by(&self, me: Me) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK == me.tid && self.is_recorded_owner(me)
    }

    /// The recorded holder (thread id and process), if the lock is held.
    pub fn holder(&self) -> Option<(u32, ProcessId)> {
        let h = self.word.load(Ordering::Relaxed) & TID_MASK;
        (h != 0 && h != NOT_RECOVERABLE).then(|| {
            (
                h,
                ProcessId::from_u64(self.owner_process.load(Ordering::Relaxed)),
            )
        })
    }

    /// Whether some waiter has announced that it sleeps on the lock word (a
    /// snapshot, for tools that show the lock's state).
    pub fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }

    /// The recursion count (for [`RawReentrantMutex`](super::RawReentrantMutex)).
    pub(crate) fn count(&self) -> &AtomicU32 {
        &self.count
    }

    /// The lock word (for [`RawReentrantMutex`](super::RawReentrantMutex)).
    pub(crate) fn word(&self) -> u32 {
        self.word.load(Ordering::Relaxed)
    }

    /// Locks with a wait of any limit (for the reentrant lock).
    pub(crate) fn lock_with<
        J: Judge,
        W: Wait,
        E: Fail<Refused> + Fail<W::Expired> + Fail<IdentityError>,
    >(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        wait: W,
    ) -> Result<Acquired, E> {
        let me = Me::of(judge).map_err(E::fail)?;
        if self.try_fast(me) {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(judge, me, strategy, wait)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use multiproc_core::liveness::OsJudge;
    use std::sync::Arc;

    const J: &OsJudge = &OsJudge;

    #[test]
    fn lock_unlock_and_misuse() {
        let m = RawMutex::new();
        assert_eq!(m.unlock(J), Err(UnlockError::NotLocked));
        assert_eq!(
            m.lock(J, WaitStrategy::ADAPTIVE).ok(),
            Some(Acquired::Clean)
        );
        assert!(m.is_held_by_current_thread(J));
        assert!(matches!(m.try_lock(J), Err(TryLockError::WouldDeadlock)));
        assert!(matches!(
            m.lock(J, WaitStrategy::ADAPTIVE),
            Err(LockError::WouldDeadlock)
        ));
        let m = Arc::new(m);
        let m2 = Arc::clone(&m);
        let r = std::thread::spawn(move || {
            (m2.unlock(J), m2.try_lock(J).map_err(|e| format!("{e:?}")))
        })
        .join()
        .unwrap();
        assert!(matches!(r.0, Err(UnlockError::NotOwner { .. })));
        assert_eq!(r.1, Err("WouldBlock".to_string()));
        m.unlock(J).unwrap();
        assert!(!m.is_locked());
    }

    #[test]
    fn a_thread_that_exits_holding_the_lock_is_a_dead_owner() {
        let m = Arc::new(RawMutex::new());
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || assert_eq!(m2.try_lock(J).ok(), Some(Acquired::Clean)))
            .join()
            .unwrap();
        assert!(matches!(
            m.lock(J, WaitStrategy::Blocking),
            Ok(Acquired::OwnerDied { previous: Some(_) })
        ));
        m.unlock_not_recoverable(J).unwrap();
        assert!(matches!(m.try_lock(J), Err(TryLockError::NotRecoverable)));
        assert!(matches!(
            m.lock_timeout(J, WaitStrategy::ADAPTIVE, Duration::from_millis(1)),
            Err(LockTimeoutError::NotRecoverable)
        ));
    }

    /// A holder killed between its `CAS` and its owner record: the record
    /// names the previous holder (alive), the word a thread that is gone.
    #[test]
    fn a_holder_killed_before_its_record_is_still_found_dead() {
        let dead_tid = super::super::exited_thread_tid();
        let m = RawMutex::new();
        assert_eq!(m.try_lock(J).ok(), Some(Acquired::Clean)); // record: this thread
        m.word.store(dead_tid | WAITERS, Ordering::Relaxed);
        assert_eq!(
            m.try_lock(J).ok(),
            Some(Acquired::OwnerDied { previous: None }),
            "a stale record must not hide the dead holder"
        );
        m.unlock(J).unwrap();
    }

    #[test]
    fn timeouts_and_zero_timeout() {
        let m = Arc::new(RawMutex::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let m2 = Arc::clone(&m);
        let h = std::thread::spawn(move || {
            assert_eq!(m2.try_lock(J).ok(), Some(Acquired::Clean));
            tx.send(()).unwrap();
            done_rx.recv().unwrap();
            m2.unlock(J).unwrap();
        });
        rx.recv().unwrap();
        assert!(matches!(
            m.lock_timeout(J, WaitStrategy::ADAPTIVE, Duration::ZERO),
            Err(LockTimeoutError::WouldBlock)
        ));
        for s in [WaitStrategy::BusySpin, WaitStrategy::Blocking] {
            assert!(matches!(
                m.lock_timeout(J, s, Duration::from_millis(15)),
                Err(LockTimeoutError::TimedOut)
            ));
        }
        done_tx.send(()).unwrap();
        h.join().unwrap();
        assert_eq!(
            m.lock(J, WaitStrategy::Blocking).ok(),
            Some(Acquired::Clean)
        );
        m.unlock(J).unwrap();
    }
}
