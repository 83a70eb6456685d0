//! A readers-writer lock on one futex word, robust to a dead writer.
//!
//! | bits of `state` | meaning |
//! |---|---|
//! | 0..28 `READERS` | without `WRITER`: readers holding the lock; with it: the writer's tid |
//! | 28 `WRITER` | a writer holds the lock (its process in `writer_process`) |
//! | 29 `DIRTY` | a writer died holding it; the data may be torn |
//! | 30 `NOT_RECOVERABLE` | a dead writer's data was never repaired |
//! | 31 `WAITERS` | someone may be parked on the word |
//!
//! Readers enter with a `CAS` adding one while `WRITER` is clear; a writer
//! enters with a `CAS` from a free word to `WRITER | tid`, so the writer's
//! identity is published with the lock itself (as in the mutex word), and
//! records its process just after. No
//! preference: a steady stream of readers can keep a writer waiting.
//! Waiters park on the word with a bounded timeout; when it passes and a
//! writer holds the lock, they ask their `Judge` whether it died (its process,
//! then its thread). Whoever finds it dead clears `WRITER` and sets `DIRTY`: from then
//! on readers get [`Acquired::OwnerDied`] (they may look, not repair), and the
//! next writer gets it too and repairs; a writer that releases after marking
//! the data consistent clears `DIRTY`, one that does not sets
//! `NOT_RECOVERABLE`.
//!
//! **Dead readers**: besides the count in the word, each process's read
//! locks are counted in a slot of a small table ([`READER_SLOTS`] processes,
//! the slot claimed with `CAS 0 -> process id`). A writer that waits for a
//! whole [`LIVENESS_PERIOD`] on readers checks the table and subtracts the
//! count of every dead process from the word. The slot is bumped *after* the
//! word when locking and dropped *before* it when unlocking, so a slot never
//! counts more than its process holds: recovery can leave a read lock behind
//! (a reader killed in the two instructions between, or a process beyond the
//! table's size), never take away a live reader's. Writers' timeouts
//! (`TimedOut`) bound the wait in those rare cases.

use super::mutex::{holder_dead, Me};
use super::{next_wake, raw_object, tag, Forever, Once, Until, Wait};
use super::{Acquired, LIVENESS_PERIOD};
use crate::error::{Fail, LockError, LockTimeoutError, Refused, TryLockError, UnlockError};
use crate::primitive::futex::{self, WaitOutcome};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use multiproc_core::liveness::Judge;
use multiproc_core::wait::{Backoff, Phase, WaitStrategy};
use multiproc_core::{IdentityError, ProcessId};
use std::convert::Infallible;
use std::time::{Duration, Instant};

const READERS: u32 = (1 << 28) - 1;
const WRITER: u32 = 1 << 28;
const DIRTY: u32 = 1 << 29;
const NOT_RECOVERABLE: u32 = 1 << 30;
const WAITERS: u32 = 1 << 31;

/// How many reader processes the dead-reader table tracks.
pub const READER_SLOTS: usize = 32;

/// A robust readers-writer lock word over caller memory: 24 bytes of lock
/// plus the reader table, 408 in all.
#[repr(C)]
#[derive(Debug)]
pub struct RawRwLock {
    state: AtomicU32,
    writer_tid: AtomicU32,
    writer_process: AtomicU64,
    tag: AtomicU32,
    _reserved: AtomicU32,
    reader_process: [AtomicU64; READER_SLOTS],
    reader_count: [AtomicU32; READER_SLOTS],
}

/// What a wait is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

type Lock = Result<Acquired, LockError<Infallible>>;
type TryLock = Result<Acquired, TryLockError<Infallible>>;
type Timed = Result<Acquired, LockTimeoutError<Infallible>>;

raw_object!(
    RawRwLock,
    "ipc-sync/raw-rwlock",
    1,
    size = 24 + 12 * READER_SLOTS,
    align = 8
);

impl RawRwLock {
    fn fresh((): ()) -> RawRwLock {
        RawRwLock {
            state: AtomicU32::new(0),
            writer_tid: AtomicU32::new(0),
            writer_process: AtomicU64::new(0),
            tag: AtomicU32::new(tag::RWLOCK),
            _reserved: AtomicU32::new(0),
            reader_process: std::array::from_fn(|_| AtomicU64::new(0)),
            reader_count: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    pub(crate) fn check(&self) -> Result<(), multiproc_core::object::ObjectError> {
        multiproc_core::object::check_tag("rwlock", tag::RWLOCK, self.tag.load(Ordering::Acquire))
    }

    /// Takes a read lock, waiting as long as it takes.
    /// [`Acquired::OwnerDied`] means a writer died and the data was not yet
    /// repaired: the caller holds a read lock on possibly torn data.
    ///
    /// # Errors
    /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`] (the
    /// caller holds the write lock), [`LockError::UnknownIdentity`].
    #[inline]
    pub fn read<J: Judge>(&self, judge: &J, strategy: WaitStrategy) -> Lock {
        self.lock_with(judge, Mode::Read, strategy, Forever)
    }

    /// Takes a read lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`RawRwLock::read`], and [`LockTimeoutError::TimedOut`].
    pub fn read_until<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        deadline: Instant,
    ) -> Timed {
        self.lock_with(judge, Mode::Read, strategy, Until(deadline))
    }

    /// Tries once to take a read lock.
    ///
    /// # Errors
    /// As [`RawRwLock::read`], and [`TryLockError::WouldBlock`].
    pub fn try_read<J: Judge>(&self, judge: &J) -> TryLock {
        self.slow(judge, Mode::Read, WaitStrategy::Blocking, Once)
    }

    /// Takes a read lock, waiting `timeout` at most (zero: one try).
    ///
    /// # Errors
    /// As [`RawRwLock::read_until`], and [`LockTimeoutError::WouldBlock`]
    /// for a zero timeout.
    pub fn read_timeout<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Timed {
        self.timed(judge, Mode::Read, strategy, timeout)
    }

    /// Takes the write lock, waiting as long as it takes.
    /// [`Acquired::OwnerDied`] means a writer died: repair, then unlock with
    /// `consistent = true`.
    ///
    /// # Errors
    /// [`LockError::NotRecoverable`], [`LockError::WouldDeadlock`],
    /// [`LockError::UnknownIdentity`].
    #[inline]
    pub fn write<J: Judge>(&self, judge: &J, strategy: WaitStrategy) -> Lock {
        self.lock_with(judge, Mode::Write, strategy, Forever)
    }

    /// Takes the write lock, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`RawRwLock::write`], and [`LockTimeoutError::TimedOut`].
    pub fn write_until<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        deadline: Instant,
    ) -> Timed {
        self.lock_with(judge, Mode::Write, strategy, Until(deadline))
    }

    /// Tries once to take the write lock.
    ///
    /// # Errors
    /// As [`RawRwLock::write`], and [`TryLockError::WouldBlock`].
    pub fn try_write<J: Judge>(&self, judge: &J) -> TryLock {
        self.slow(judge, Mode::Write, WaitStrategy::Blocking, Once)
    }

    /// Takes the write lock, waiting `timeout` at most (zero: one try).
    ///
    /// # Errors
    /// As [`RawRwLock::write_until`], and [`LockTimeoutError::WouldBlock`]
    /// for a zero timeout.
    pub fn write_timeout<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Timed {
        self.timed(judge, Mode::Write, strategy, timeout)
    }

    /// A wait of `timeout` (zero: one try; too long to name: no limit).
    fn timed<J: Judge>(
        &self,
        judge: &J,
        mode: Mode,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Timed {
        super::timed(
            timeout,
            || self.slow(judge, mode, WaitStrategy::Blocking, Once),
            |d| self.lock_with(judge, mode, strategy, Until(d)),
            || self.lock_with(judge, mode, strategy, Forever),
        )
    }

    /// One `CAS` for `mode` on a free word (no writer, not dirty), then the
    /// slow path.
    #[inline]
    fn lock_with<J: Judge, W: Wait, E>(
        &self,
        judge: &J,
        mode: Mode,
        strategy: WaitStrategy,
        wait: W,
    ) -> Result<Acquired, E>
    where
        E: Fail<Refused> + Fail<W::Expired> + Fail<IdentityError>,
    {
        let me = Me::of(judge).map_err(E::fail)?;
        let s = self.state.load(Ordering::Relaxed);
        let (free, new) = match mode {
            Mode::Read => (
                s & (WRITER | DIRTY | NOT_RECOVERABLE) == 0 && s & READERS < READERS,
                s + 1,
            ),
            Mode::Write => (s == 0, WRITER | me.tid),
        };
        if free
            && self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            match mode {
                Mode::Read => self.record_read(me.process),
                Mode::Write => self.record(me),
            }
            return Ok(Acquired::Clean);
        }
        self.slow(judge, mode, strategy, wait)
    }

    #[inline]
    fn record(&self, me: Me) {
        // SYNC POINT: as the mutex's record: process first, then the tid
        // with Release, read tid first with Acquire (`reclaim_dead_writer`).
        self.writer_process.store(me.process, Ordering::Relaxed);
        self.writer_tid.store(me.tid, Ordering::Release);
    }

    /// One attempt for `mode` on state `s`: `Some` when it is decided.
    fn attempt(&self, mode: Mode, s: u32, me: Me) -> Option<Result<Acquired, Refused>> {
        if s & NOT_RECOVERABLE != 0 {
            return Some(Err(Refused::NotRecoverable));
        }
        let how = if s & DIRTY != 0 {
            Acquired::OwnerDied { previous: None }
        } else {
            Acquired::Clean
        };
        match mode {
            Mode::Read => {
                if s & WRITER == 0 && s & READERS < READERS {
                    if self
                        .state
                        .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.record_read(me.process);
                        return Some(Ok(how));
                    }
                    return None;
                }
            }
            Mode::Write => {
                if s & (WRITER | READERS) == 0 {
                    if self
                        .state
                        .compare_exchange(
                            s,
                            s | WRITER | me.tid,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        self.record(me);
                        return Some(Ok(how));
                    }
                    return None;
                }
            }
        }
        if s & WRITER != 0
            && s & READERS == me.tid
            && self.writer_tid.load(Ordering::Relaxed) == me.tid
            && self.writer_process.load(Ordering::Relaxed) == me.process
        {
            return Some(Err(Refused::WouldDeadlock));
        }
        None
    }

    #[cold]
    fn slow<J: Judge, W: Wait, E>(
        &self,
        judge: &J,
        mode: Mode,
        strategy: WaitStrategy,
        wait: W,
    ) -> Result<Acquired, E>
    where
        E: Fail<Refused> + Fail<W::Expired> + Fail<IdentityError>,
    {
        let me = Me::of(judge).map_err(E::fail)?;
        let mut backoff = Backoff::new(strategy);
        let mut spins: u32 = 0;
        let mut last_check: Option<Instant> = None;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if let Some(r) = self.attempt(mode, s, me) {
                return r.map_err(E::fail);
            }
            if s != self.state.load(Ordering::Relaxed) {
                continue; // lost a race: try again at once
            }
            if backoff.snooze() == Phase::Retry {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(256) {
                    let now = Instant::now();
                    if last_check.is_some_and(|t| now - t >= LIVENESS_PERIOD)
                        && self.reclaim_dead(judge, s)
                    {
                        continue;
                    }
                    if last_check.is_none_or(|t| now - t >= LIVENESS_PERIOD) {
                        last_check = Some(now);
                    }
                    if let Some(x) = wait.expired() {
                        return Err(E::fail(x));
                    }
                }
                continue;
            }
            if let Some(x) = wait.expired() {
                // A single try, or the deadline passed: a last look for a
                // dead holder first.
                if self.reclaim_dead(judge, s) {
                    continue;
                }
                return Err(E::fail(x));
            }
            if s & WAITERS == 0
                && self
                    .state
                    .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let until = next_wake(wait.deadline(), LIVENESS_PERIOD);
            if futex::wait_until(&self.state, s | WAITERS, Some(until)) == WaitOutcome::TimedOut {
                self.reclaim_dead(judge, s | WAITERS);
            }
        }
    }

    /// The slot of process `me` in the reader table (claimed if needed).
    fn reader_slot(&self, me: u64, claim: bool) -> Option<usize> {
        let start = ((me ^ (me >> 32)) as usize) % READER_SLOTS;
        (0..READER_SLOTS)
            .map(|k| (start + k) % READER_SLOTS)
            .find(|&i| {
                let p = self.reader_process[i].load(Ordering::Relaxed);
                p == me
                    || (claim
                        && p == 0
                        && self.reader_process[i]
                            .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok())
            })
    }

    /// Counts a read lock just taken in the process's slot (after the word).
    #[inline]
    fn record_read(&self, me: u64) {
        if let Some(i) = self.reader_slot(me, true) {
            self.reader_count[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Uncounts a read lock about to be released (before the word); never
    /// below zero, so a slot never counts more than its process holds.
    #[inline]
    fn unrecord_read(&self, me: u64) {
        if let Some(i) = self.reader_slot(me, false) {
            let _ = self.reader_count[i]
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
        }
    }

    /// Frees what a dead holder of state `s` keeps: the writer's lock, or the
    /// read locks of dead processes.
    #[cold]
    fn reclaim_dead<J: Judge>(&self, judge: &J, s: u32) -> bool {
        if s & WRITER != 0 {
            self.reclaim_dead_writer(judge, s)
        } else if s & READERS != 0 {
            self.reclaim_dead_readers(judge)
        } else {
            false
        }
    }

    /// Subtracts the read locks of dead processes from the word; returns
    /// whether any were freed.
    #[cold]
    fn reclaim_dead_readers<J: Judge>(&self, judge: &J) -> bool {
        let mut freed = 0;
        for (slot, count) in self.reader_process.iter().zip(&self.reader_count) {
            let p = slot.load(Ordering::Acquire);
            if p == 0 || !judge.is_dead(p) {
                continue;
            }
            let c = count.swap(0, Ordering::AcqRel);
            let _ = slot.compare_exchange(p, 0, Ordering::AcqRel, Ordering::Relaxed);
            if c == 0 {
                continue;
            }
            let r = self
                .state
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
                    (s & WRITER == 0).then(|| s - c.min(s & READERS))
                });
            if r.is_ok() {
                log::warn!(
                    "rwlock: {c} read lock(s) of dead process {:?} released",
                    ProcessId::from_u64(p)
                );
                freed += c;
            }
        }
        if freed > 0 {
            futex::wake_all(&self.state);
        }
        freed > 0
    }

    /// If a writer holds the lock in state `s` and is dead, clears `WRITER`
    /// and sets `DIRTY`, wakes everybody, and returns true.
    #[cold]
    fn reclaim_dead_writer<J: Judge>(&self, judge: &J, s: u32) -> bool {
        if s & WRITER == 0 {
            return false;
        }
        let tid = s & READERS;
        let rec_tid = self.writer_tid.load(Ordering::Acquire);
        let process = self.writer_process.load(Ordering::Acquire);
        if tid == 0 || !holder_dead(judge, tid, rec_tid, process) {
            return false;
        }
        let cur = self.state.load(Ordering::Relaxed);
        if cur & (WRITER | READERS) != WRITER | tid
            || self
                .state
                .compare_exchange(
                    cur,
                    (cur & !(WRITER | WAITERS | READERS)) | DIRTY,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        log::warn!(
            "rwlock writer tid {tid} ({:?}) died holding the lock",
            ProcessId::from_u64(process)
        );
        futex::wake_all(&self.state);
        true
    }

    /// Releases a read lock.
    ///
    /// # Errors
    /// [`UnlockError::NotLocked`] if no reader holds it.
    pub fn read_unlock<J: Judge>(&self, judge: &J) -> Result<(), UnlockError> {
        let mut s = self.state.load(Ordering::Relaxed);
        if s & READERS == 0 || s & WRITER != 0 {
            return Err(UnlockError::NotLocked);
        }
        // A process without an identity recorded no read lock of its own.
        if let Ok(me) = judge.me() {
            self.unrecord_read(me);
        }
        loop {
            if s & READERS == 0 || s & WRITER != 0 {
                return Err(UnlockError::NotLocked);
            }
            let last = s & READERS == 1;
            let new = if last { (s - 1) & !WAITERS } else { s - 1 };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if last && s & WAITERS != 0 {
                        futex::wake_all(&self.state);
                    }
                    return Ok(());
                }
                Err(now) => s = now,
            }
        }
    }

    /// Releases the write lock. `consistent = false` makes the lock
    /// unrecoverable (for a writer that got `OwnerDied` and cannot repair);
    /// `true` also clears a dead writer's `DIRTY` mark.
    ///
    /// # Errors
    /// [`UnlockError::NotLocked`] / [`UnlockError::NotOwner`].
    pub fn write_unlock<J: Judge>(&self, judge: &J, consistent: bool) -> Result<(), UnlockError> {
        let s = self.state.load(Ordering::Relaxed);
        if s & WRITER == 0 {
            return Err(UnlockError::NotLocked);
        }
        let holder = s & READERS;
        let Ok(me) = Me::of(judge) else {
            return Err(UnlockError::NotOwner { holder_tid: holder });
        };
        if holder != me.tid || self.writer_process.load(Ordering::Relaxed) != me.process {
            return Err(UnlockError::NotOwner { holder_tid: holder });
        }
        self.write_unlock_held(consistent);
        Ok(())
    }

    /// Releases a write lock the caller knows it holds (a guard);
    /// `consistent` as for [`RawRwLock::write_unlock`].
    #[inline]
    pub fn write_unlock_held(&self, consistent: bool) {
        let old = if consistent {
            self.state
                .fetch_and(!(WRITER | WAITERS | DIRTY | READERS), Ordering::Release)
        } else {
            self.state.fetch_or(NOT_RECOVERABLE, Ordering::Release);
            self.state.fetch_and(!(WRITER | READERS), Ordering::Release) | WAITERS
        };
        if old & WAITERS != 0 {
            futex::wake_all(&self.state);
        }
    }

    /// The number of readers holding it now.
    pub fn readers(&self) -> u32 {
        let s = self.state.load(Ordering::Relaxed);
        if s & WRITER != 0 {
            0
        } else {
            s & READERS
        }
    }

    /// Whether a writer holds it now.
    pub fn is_write_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }

    /// Whether a dead writer's data awaits repair.
    pub fn is_dirty(&self) -> bool {
        self.state.load(Ordering::Relaxed) & DIRTY != 0
    }

    /// Whether it was made unrecoverable.
    pub fn is_not_recoverable(&self) -> bool {
        self.state.load(Ordering::Relaxed) & NOT_RECOVERABLE != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use multiproc_core::liveness::OsJudge;
    use std::sync::Arc;

    const J: &OsJudge = &OsJudge;
    const B: WaitStrategy = WaitStrategy::Blocking;

    #[test]
    fn readers_share_writers_exclude() {
        let l = Arc::new(RawRwLock::new());
        assert_eq!(l.try_read(J).ok(), Some(Acquired::Clean));
        assert_eq!(l.try_read(J).ok(), Some(Acquired::Clean));
        assert!(matches!(l.try_write(J), Err(TryLockError::WouldBlock)));
        l.read_unlock(J).unwrap();
        l.read_unlock(J).unwrap();
        assert_eq!(l.read_unlock(J), Err(UnlockError::NotLocked));
        assert_eq!(l.try_write(J).ok(), Some(Acquired::Clean));
        assert!(matches!(l.try_write(J), Err(TryLockError::WouldDeadlock)));
        let l2 = Arc::clone(&l);
        let r = std::thread::spawn(move || (l2.try_read(J), l2.write_unlock(J, true)))
            .join()
            .unwrap();
        assert!(matches!(r.0, Err(TryLockError::WouldBlock)));
        assert!(matches!(r.1, Err(UnlockError::NotOwner { .. })));
        l.write_unlock(J, true).unwrap();
    }

    /// A writer killed between its `CAS` and writing its process record:
    /// the word names a thread that no longer exists, the record is stale.
    #[test]
    fn a_writer_killed_before_its_record_is_still_found_dead() {
        let dead_tid = super::super::exited_thread_tid();
        let l = RawRwLock::new();
        l.state.store(WRITER | dead_tid, Ordering::Relaxed);
        assert!(matches!(l.try_write(J), Ok(Acquired::OwnerDied { .. })));
        l.write_unlock(J, true).unwrap();
        assert_eq!(l.try_read(J).ok(), Some(Acquired::Clean));
    }

    #[test]
    fn a_dead_writer_is_reported_until_repaired() {
        let l = Arc::new(RawRwLock::new());
        let l2 = Arc::clone(&l);
        std::thread::spawn(move || assert_eq!(l2.try_write(J).ok(), Some(Acquired::Clean)))
            .join()
            .unwrap();
        assert!(matches!(l.read(J, B), Ok(Acquired::OwnerDied { .. })));
        l.read_unlock(J).unwrap();
        assert!(matches!(l.write(J, B), Ok(Acquired::OwnerDied { .. })));
        l.write_unlock(J, true).unwrap();
        assert_eq!(l.try_read(J).ok(), Some(Acquired::Clean));
        l.read_unlock(J).unwrap();
        // Another death, not repaired this time.
        let l3 = Arc::clone(&l);
        std::thread::spawn(move || assert_eq!(l3.try_write(J).ok(), Some(Acquired::Clean)))
            .join()
            .unwrap();
        assert!(matches!(l.write(J, B), Ok(Acquired::OwnerDied { .. })));
        l.write_unlock(J, false).unwrap();
        assert!(matches!(l.try_read(J), Err(TryLockError::NotRecoverable)));
        assert!(matches!(
            l.write(J, WaitStrategy::ADAPTIVE),
            Err(LockError::NotRecoverable)
        ));
    }
}
