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
//! writer holds the lock, they check its liveness (pid + start time, then
//! thread). Whoever finds it dead clears `WRITER` and sets `DIRTY`: from then
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
//! ([`RawLockError::TimedOut`]) bound the wait in those rare cases.

use super::mutex::{Acquired, RawLockError};
use super::{check_ptr, check_tag, deadline_after, next_wake, past, tag, LIVENESS_PERIOD};
use crate::error::UnlockError;
use crate::owner::{self, Me};
use crate::Error;
use ipc_core::futex::{self, WaitOutcome};
use ipc_core::wait::{Backoff, Phase, WaitStrategy};
use ipc_core::{ProcessId, Segment};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

ipc_core::assert_layout!(RawRwLock, size = 24 + 12 * READER_SLOTS, align = 8);
// SAFETY: `#[repr(C)]`, integer atomics, no padding, no pointers; every bit
// pattern is a state the algorithm handles (at worst a lock that looks held).
unsafe impl ipc_core::Shareable for RawRwLock {}

impl Default for RawRwLock {
    fn default() -> Self {
        RawRwLock::new()
    }
}

/// What a wait is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

impl RawRwLock {
    /// A free lock.
    pub const fn new() -> RawRwLock {
        RawRwLock {
            state: AtomicU32::new(0),
            writer_tid: AtomicU32::new(0),
            writer_process: AtomicU64::new(0),
            tag: AtomicU32::new(tag::RWLOCK),
            _reserved: AtomicU32::new(0),
            reader_process: [const { AtomicU64::new(0) }; READER_SLOTS],
            reader_count: [const { AtomicU32::new(0) }; READER_SLOTS],
        }
    }

    /// The bytes it needs (align 8).
    pub const fn memory_size() -> usize {
        std::mem::size_of::<RawRwLock>()
    }

    /// Writes a free lock at `ptr`.
    ///
    /// # Safety
    /// `ptr` valid for writes of [`RawRwLock::memory_size`] bytes, aligned
    /// to 8, mapped for `'a`, unused by others meanwhile.
    pub unsafe fn init_in<'a>(ptr: NonNull<u8>) -> &'a RawRwLock {
        let p = ptr.cast::<RawRwLock>();
        // SAFETY: the caller guarantees a valid, aligned, exclusive place.
        unsafe {
            p.as_ptr().write(RawRwLock::new());
            p.as_ref()
        }
    }

    /// Uses a lock initialized at `ptr`, checking its tag.
    ///
    /// # Safety
    /// `ptr` valid for reads and writes of the size for `'a`.
    pub unsafe fn attach<'a>(ptr: NonNull<u8>) -> Result<&'a RawRwLock, Error> {
        let p = check_ptr::<RawRwLock>(ptr.as_ptr())?;
        // SAFETY: valid and aligned; any bit pattern is valid.
        let l = unsafe { p.as_ref() };
        l.check()?;
        Ok(l)
    }

    /// Initializes a free lock at `offset` of `seg`.
    pub fn init_at(seg: &Segment, offset: u64) -> Result<&RawRwLock, Error> {
        let l: &RawRwLock = seg.get(offset)?;
        l.reset();
        Ok(l)
    }

    /// The lock at `offset` of `seg`, tag checked.
    pub fn at(seg: &Segment, offset: u64) -> Result<&RawRwLock, Error> {
        let l: &RawRwLock = seg.get(offset)?;
        l.check()?;
        Ok(l)
    }

    pub(crate) fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
        self.writer_tid.store(0, Ordering::Relaxed);
        self.writer_process.store(0, Ordering::Relaxed);
        for (p, c) in self.reader_process.iter().zip(&self.reader_count) {
            p.store(0, Ordering::Relaxed);
            c.store(0, Ordering::Relaxed);
        }
        self.tag.store(tag::RWLOCK, Ordering::Release);
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        check_tag(self.tag.load(Ordering::Acquire), tag::RWLOCK, "rwlock")
    }

    /// Takes a read lock, waiting until `deadline` (`None`: no limit).
    /// [`Acquired::OwnerDied`] means a writer died and the data was not yet
    /// repaired: the caller holds a read lock on possibly torn data.
    #[inline]
    pub fn read_until(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<Acquired, RawLockError> {
        let me = owner::me()?;
        let s = self.state.load(Ordering::Relaxed);
        if s & (WRITER | DIRTY | NOT_RECOVERABLE) == 0
            && s & READERS < READERS
            && self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            self.record_read(me.process);
            return Ok(Acquired::Clean);
        }
        self.slow(Mode::Read, strategy, deadline, false)
    }

    /// Takes a write lock, waiting until `deadline`. [`Acquired::OwnerDied`]
    /// means a writer died: repair, then unlock with `consistent = true`.
    #[inline]
    pub fn write_until(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<Acquired, RawLockError> {
        let me = owner::me()?;
        if self
            .state
            .compare_exchange(0, WRITER | me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.record(me);
            return Ok(Acquired::Clean);
        }
        self.slow(Mode::Write, strategy, deadline, false)
    }

    /// Tries once to take a read lock.
    pub fn try_read(&self) -> Result<Acquired, RawLockError> {
        self.slow(Mode::Read, WaitStrategy::Blocking, None, true)
    }

    /// Tries once to take the write lock.
    pub fn try_write(&self) -> Result<Acquired, RawLockError> {
        self.slow(Mode::Write, WaitStrategy::Blocking, None, true)
    }

    /// Read lock with a timeout (zero: one try).
    pub fn read_timeout(
        &self,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Result<Acquired, RawLockError> {
        if timeout.is_zero() {
            return self.try_read();
        }
        self.read_until(strategy, deadline_after(timeout))
    }

    /// Write lock with a timeout (zero: one try).
    pub fn write_timeout(
        &self,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Result<Acquired, RawLockError> {
        if timeout.is_zero() {
            return self.try_write();
        }
        self.write_until(strategy, deadline_after(timeout))
    }

    #[inline]
    fn record(&self, me: Me) {
        self.writer_tid.store(me.tid, Ordering::Relaxed);
        self.writer_process.store(me.process, Ordering::Relaxed);
    }

    /// One attempt for `mode` on state `s`: `Some` when it is decided.
    fn attempt(&self, mode: Mode, s: u32, me: Me) -> Option<Result<Acquired, RawLockError>> {
        if s & NOT_RECOVERABLE != 0 {
            return Some(Err(RawLockError::NotRecoverable));
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
            return Some(Err(RawLockError::WouldDeadlock));
        }
        None
    }

    #[cold]
    fn slow(
        &self,
        mode: Mode,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
        once: bool,
    ) -> Result<Acquired, RawLockError> {
        let me = owner::me()?;
        let mut backoff = Backoff::new(strategy);
        let mut spins: u32 = 0;
        let mut last_check: Option<Instant> = None;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if let Some(r) = self.attempt(mode, s, me) {
                return r;
            }
            if s != self.state.load(Ordering::Relaxed) {
                continue; // lost a race: try again at once
            }
            if once {
                if self.reclaim_dead(s) {
                    continue;
                }
                return Err(RawLockError::WouldBlock);
            }
            if backoff.snooze() == Phase::Retry {
                spins = spins.wrapping_add(1);
                if spins % 256 == 0 {
                    let now = Instant::now();
                    if last_check.is_some_and(|t| now - t >= LIVENESS_PERIOD)
                        && self.reclaim_dead(s)
                    {
                        continue;
                    }
                    if last_check.is_none_or(|t| now - t >= LIVENESS_PERIOD) {
                        last_check = Some(now);
                    }
                    if deadline.is_some_and(|d| now >= d) {
                        return Err(RawLockError::TimedOut);
                    }
                }
                continue;
            }
            if past(deadline) {
                if self.reclaim_dead(s) {
                    continue;
                }
                return Err(RawLockError::TimedOut);
            }
            if s & WAITERS == 0
                && self
                    .state
                    .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let until = next_wake(deadline, LIVENESS_PERIOD);
            if futex::wait_until(&self.state, s | WAITERS, Some(until)) == WaitOutcome::TimedOut {
                self.reclaim_dead(s | WAITERS);
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
    fn reclaim_dead(&self, s: u32) -> bool {
        if s & WRITER != 0 {
            self.reclaim_dead_writer(s)
        } else if s & READERS != 0 {
            self.reclaim_dead_readers()
        } else {
            false
        }
    }

    /// Subtracts the read locks of dead processes from the word; returns
    /// whether any were freed.
    #[cold]
    fn reclaim_dead_readers(&self) -> bool {
        let mut freed = 0;
        for (slot, count) in self.reader_process.iter().zip(&self.reader_count) {
            let p = slot.load(Ordering::Acquire);
            if p == 0 || owner::process_alive(p) {
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
    fn reclaim_dead_writer(&self, s: u32) -> bool {
        if s & WRITER == 0 {
            return false;
        }
        let tid = s & READERS;
        let rec_tid = self.writer_tid.load(Ordering::Acquire);
        let process = self.writer_process.load(Ordering::Acquire);
        if tid == 0 || owner::holder_alive(tid, rec_tid, process) {
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
    pub fn read_unlock(&self) -> Result<(), UnlockError> {
        let mut s = self.state.load(Ordering::Relaxed);
        if s & READERS == 0 || s & WRITER != 0 {
            return Err(UnlockError::NotLocked);
        }
        // A process without an identity recorded no read lock of its own.
        if let Ok(me) = owner::me() {
            self.unrecord_read(me.process);
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
    pub fn write_unlock(&self, consistent: bool) -> Result<(), UnlockError> {
        let s = self.state.load(Ordering::Relaxed);
        if s & WRITER == 0 {
            return Err(UnlockError::NotLocked);
        }
        let holder = s & READERS;
        let Ok(me) = owner::me() else {
            return Err(UnlockError::NotOwner { holder_tid: holder });
        };
        if holder != me.tid || self.writer_process.load(Ordering::Relaxed) != me.process {
            return Err(UnlockError::NotOwner { holder_tid: holder });
        }
        self.write_unlock_held(consistent);
        Ok(())
    }

    #[inline]
    pub(crate) fn write_unlock_held(&self, consistent: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn readers_share_writers_exclude() {
        let l = Arc::new(RawRwLock::new());
        assert_eq!(l.try_read(), Ok(Acquired::Clean));
        assert_eq!(l.try_read(), Ok(Acquired::Clean));
        assert_eq!(l.try_write(), Err(RawLockError::WouldBlock));
        l.read_unlock().unwrap();
        l.read_unlock().unwrap();
        assert_eq!(l.read_unlock(), Err(UnlockError::NotLocked));
        assert_eq!(l.try_write(), Ok(Acquired::Clean));
        assert_eq!(l.try_write(), Err(RawLockError::WouldDeadlock));
        let l2 = Arc::clone(&l);
        let r = std::thread::spawn(move || (l2.try_read(), l2.write_unlock(true)))
            .join()
            .unwrap();
        assert_eq!(r.0, Err(RawLockError::WouldBlock));
        assert!(matches!(r.1, Err(UnlockError::NotOwner { .. })));
        l.write_unlock(true).unwrap();
    }

    /// A writer killed between its `CAS` and writing its process record:
    /// the word names a thread that no longer exists, the record is stale.
    #[test]
    fn a_writer_killed_before_its_record_is_still_found_dead() {
        let dead_tid = owner::exited_thread_tid();
        let l = RawRwLock::new();
        l.state.store(WRITER | dead_tid, Ordering::Relaxed);
        assert!(matches!(l.try_write(), Ok(Acquired::OwnerDied { .. })));
        l.write_unlock(true).unwrap();
        assert_eq!(l.try_read(), Ok(Acquired::Clean));
    }

    #[test]
    fn a_dead_writer_is_reported_until_repaired() {
        let l = Arc::new(RawRwLock::new());
        let l2 = Arc::clone(&l);
        std::thread::spawn(move || assert_eq!(l2.try_write(), Ok(Acquired::Clean)))
            .join()
            .unwrap();
        assert!(matches!(
            l.read_until(WaitStrategy::Blocking, None),
            Ok(Acquired::OwnerDied { .. })
        ));
        l.read_unlock().unwrap();
        assert!(matches!(
            l.write_until(WaitStrategy::Blocking, None),
            Ok(Acquired::OwnerDied { .. })
        ));
        l.write_unlock(true).unwrap();
        assert_eq!(l.try_read(), Ok(Acquired::Clean));
        l.read_unlock().unwrap();
        // Another death, not repaired this time.
        let l3 = Arc::clone(&l);
        std::thread::spawn(move || assert_eq!(l3.try_write(), Ok(Acquired::Clean)))
            .join()
            .unwrap();
        assert!(matches!(
            l.write_until(WaitStrategy::Blocking, None),
            Ok(Acquired::OwnerDied { .. })
        ));
        l.write_unlock(false).unwrap();
        assert_eq!(l.try_read(), Err(RawLockError::NotRecoverable));
        assert_eq!(
            l.write_until(WaitStrategy::ADAPTIVE, None),
            Err(RawLockError::NotRecoverable)
        );
    }
}
