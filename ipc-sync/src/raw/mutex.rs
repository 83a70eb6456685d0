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
//!   owner record (`owner_tid`, `owner_process`) into the same cache line. No
//!   syscall.
//! - **Unlock**: one `swap(0)`; a `FUTEX_WAKE` of one waiter only if the old
//!   word had `WAITERS`.
//! - **Contended**: spin and yield by the caller's [`WaitStrategy`], then set
//!   `WAITERS` and `FUTEX_WAIT` with a bounded timeout
//!   ([`LIVENESS_PERIOD`]). Each time a period passes
//!   with the same holder, the waiter checks the holder's liveness in `/proc`
//!   (pid + start time of the process, then the thread). A dead holder is
//!   taken over with a `CAS` on the exact word seen, so exactly one waiter
//!   wins; it gets [`Acquired::OwnerDied`].
//!
//! A holder killed between its `CAS` and the owner record leaves a record
//! that belongs to the previous holder; the waiter notices the mismatch
//! (`owner_tid` differs from the word) and falls back to checking whether
//! thread `tid` still exists. Thread ids are unique per pid namespace while
//! the thread lives, so a missing thread is a dead holder.
//!
//! Unlike glibc's robust `pthread_mutex_t`, nothing is registered with the
//! kernel (no `set_robust_list` entry), so the owner's thread id and process
//! record are the only state, and the uncontended path costs the same as a
//! plain futex mutex.

use super::{check_ptr, check_tag, deadline_after, next_wake, past, tag, LIVENESS_PERIOD};
use crate::error::UnlockError;
use crate::owner::{self, Me};
use crate::primitive::futex::{self, WaitOutcome};
use crate::primitive::{AtomicU32, AtomicU64};
use crate::Error;
use ipc_core::wait::{Backoff, Phase, WaitStrategy};
#[cfg(not(loom))]
use ipc_core::Segment;
use ipc_core::{IdentityError, ProcessId};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The tid bits of the lock word (Linux tids are below 2^22).
const TID_MASK: u32 = 0x3fff_ffff;
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

/// Why a raw lock was not acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RawLockError {
    /// The lock was made unrecoverable.
    #[error("the lock is not recoverable")]
    NotRecoverable,
    /// The calling thread holds it already (or, for the reentrant lock, the
    /// recursion count would overflow).
    #[error("the calling thread already holds this lock")]
    WouldDeadlock,
    /// Held by someone else (`try_lock`).
    #[error("the lock is held by another thread")]
    WouldBlock,
    /// The deadline passed.
    #[error("timed out waiting for the lock")]
    TimedOut,
    /// This process cannot learn its own identity, which a holder records
    /// so that others can tell whether it died; the lock was not taken.
    #[error(transparent)]
    UnknownIdentity(#[from] IdentityError),
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
    /// The recursion count of [`RawReentrantMutex`]; only its owner touches it.
    count: AtomicU32,
}

#[cfg(not(loom))]
ipc_core::assert_layout!(RawMutex, size = 24, align = 8);
#[cfg(not(loom))]
// SAFETY: `#[repr(C)]`, only integer atomics, no padding (4+4+8+4+4), no
// pointers, no drop glue; every bit pattern is a state the algorithm copes
// with (at worst a lock that looks held, whose liveness check then fails).
unsafe impl ipc_core::Shareable for RawMutex {}

impl Default for RawMutex {
    fn default() -> Self {
        RawMutex::new()
    }
}

impl RawMutex {
    /// A free lock (for the heap or a `static`; in shared memory use
    /// [`RawMutex::init_in`] or [`RawMutex::init_at`]).
    pub fn new() -> RawMutex {
        Self::with_tag(tag::MUTEX)
    }

    fn with_tag(t: u32) -> RawMutex {
        RawMutex {
            word: AtomicU32::new(0),
            owner_tid: AtomicU32::new(0),
            owner_process: AtomicU64::new(0),
            tag: AtomicU32::new(t),
            count: AtomicU32::new(0),
        }
    }

    /// The bytes a `RawMutex` needs (align to `align_of::<RawMutex>()` = 8).
    pub const fn memory_size() -> usize {
        std::mem::size_of::<RawMutex>()
    }

    /// Writes a free lock at `ptr` and returns it.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`RawMutex::memory_size`] bytes,
    /// aligned to 8, and stay mapped for `'a`; no other thread may use the
    /// memory while it is initialized.
    pub unsafe fn init_in<'a>(ptr: NonNull<u8>) -> &'a RawMutex {
        let p = ptr.cast::<RawMutex>();
        // SAFETY: the caller guarantees a valid, aligned, exclusive place.
        unsafe {
            p.as_ptr().write(RawMutex::new());
            p.as_ref()
        }
    }

    /// Uses the lock another party initialized at `ptr`, after checking its
    /// object tag.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a null or misaligned pointer,
    /// [`Error::WrongObject`] if the tag is not a mutex's.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of
    /// [`RawMutex::memory_size`] bytes for `'a` (any content is fine).
    pub unsafe fn attach<'a>(ptr: NonNull<u8>) -> Result<&'a RawMutex, Error> {
        let p = check_ptr::<RawMutex>(ptr.as_ptr())?;
        // SAFETY: valid and aligned (caller and check above); every bit
        // pattern is a valid `RawMutex` and all fields are atomics.
        let m = unsafe { p.as_ref() };
        check_tag(m.tag.load(Ordering::Acquire), tag::MUTEX, "mutex")?;
        Ok(m)
    }

    /// Initializes a free lock at `offset` in `seg`'s payload (bounds and
    /// alignment checked) and returns it.
    #[cfg(not(loom))]
    pub fn init_at(seg: &Segment, offset: u64) -> Result<&RawMutex, Error> {
        let m: &RawMutex = seg.get(offset)?;
        m.reset(tag::MUTEX);
        Ok(m)
    }

    /// The lock at `offset` in `seg`'s payload, after checking bounds,
    /// alignment and the object tag.
    #[cfg(not(loom))]
    pub fn at(seg: &Segment, offset: u64) -> Result<&RawMutex, Error> {
        let m: &RawMutex = seg.get(offset)?;
        check_tag(m.tag.load(Ordering::Acquire), tag::MUTEX, "mutex")?;
        Ok(m)
    }

    pub(crate) fn tag(&self) -> u32 {
        self.tag.load(Ordering::Acquire)
    }

    pub(crate) fn reset(&self, t: u32) {
        self.word.store(0, Ordering::Relaxed);
        self.owner_tid.store(0, Ordering::Relaxed);
        self.owner_process.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.tag.store(t, Ordering::Release);
    }

    /// Locks, waiting as long as it takes.
    ///
    /// # Errors
    /// [`RawLockError::NotRecoverable`], [`RawLockError::WouldDeadlock`],
    /// [`RawLockError::UnknownIdentity`].
    #[inline]
    pub fn lock(&self, strategy: WaitStrategy) -> Result<Acquired, RawLockError> {
        self.lock_until(strategy, None)
    }

    /// Locks, waiting until `deadline` at most (`None`: no limit).
    #[inline]
    pub fn lock_until(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<Acquired, RawLockError> {
        let me = owner::me()?;
        if self
            .word
            .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.record(me);
            return Ok(Acquired::Clean);
        }
        self.lock_slow(me, strategy, deadline)
    }

    /// Locks, waiting `timeout` at most; a zero timeout tries once
    /// ([`RawMutex::try_lock`]).
    pub fn lock_timeout(
        &self,
        strategy: WaitStrategy,
        timeout: Duration,
    ) -> Result<Acquired, RawLockError> {
        if timeout.is_zero() {
            return self.try_lock();
        }
        self.lock_until(strategy, deadline_after(timeout))
    }

    /// Tries once. When the lock is held, checks whether its holder is
    /// alive (a `/proc` read) and takes it over if not.
    pub fn try_lock(&self) -> Result<Acquired, RawLockError> {
        let me = owner::me()?;
        match self
            .word
            .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                self.record(me);
                Ok(Acquired::Clean)
            }
            Err(w) => {
                self.check_held(w, me)?;
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
                    return Err(RawLockError::WouldBlock);
                }
                self.take_over_if_dead(w, me)
                    .unwrap_or(Err(RawLockError::WouldBlock))
            }
        }
    }

    #[inline]
    fn record(&self, me: Me) {
        self.owner_tid.store(me.tid, Ordering::Relaxed);
        self.owner_process.store(me.process, Ordering::Relaxed);
    }

    /// Errors that do not depend on waiting: unrecoverable, or our own.
    #[inline]
    fn check_held(&self, w: u32, me: Me) -> Result<(), RawLockError> {
        let holder = w & TID_MASK;
        if holder == NOT_RECOVERABLE {
            return Err(RawLockError::NotRecoverable);
        }
        if holder == me.tid && self.is_recorded_owner(me) {
            return Err(RawLockError::WouldDeadlock);
        }
        Ok(())
    }

    #[inline]
    fn is_recorded_owner(&self, me: Me) -> bool {
        self.owner_tid.load(Ordering::Relaxed) == me.tid
            && self.owner_process.load(Ordering::Relaxed) == me.process
    }

    #[cold]
    fn lock_slow(
        &self,
        me: Me,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<Acquired, RawLockError> {
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
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.record(me);
                        return Ok(Acquired::Clean);
                    }
                    Err(_) => continue,
                }
            }
            self.check_held(w, me)?;
            if backoff.snooze() == Phase::Retry {
                spins = spins.wrapping_add(1);
                if spins % 256 == 0 {
                    // A busy-spinning waiter must still notice a dead holder
                    // and its own deadline.
                    let now = Instant::now();
                    let due = last_check.is_none_or(|t| now - t >= LIVENESS_PERIOD);
                    if due {
                        if last_check.is_some() {
                            if let Some(r) = self.take_over_if_dead(w, me) {
                                return r;
                            }
                        }
                        last_check = Some(now);
                    }
                    if deadline.is_some_and(|d| now >= d) {
                        return self.give_up(w, me);
                    }
                }
                continue;
            }
            if past(deadline) {
                return self.give_up(w, me);
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
            let until = next_wake(deadline, LIVENESS_PERIOD);
            if futex::wait_until(&self.word, w | WAITERS, Some(until)) == WaitOutcome::TimedOut {
                if let Some(r) = self.take_over_if_dead(w | WAITERS, me) {
                    return r;
                }
            }
        }
    }

    /// The deadline passed: a last check that the holder is alive, then
    /// `TimedOut`.
    #[cold]
    fn give_up(&self, w: u32, me: Me) -> Result<Acquired, RawLockError> {
        self.take_over_if_dead(w, me)
            .unwrap_or(Err(RawLockError::TimedOut))
    }

    /// If the holder in `w` is dead, claims the word from it (exactly one
    /// caller can succeed, by `CAS` on the exact word).
    #[cold]
    fn take_over_if_dead(&self, w: u32, me: Me) -> Option<Result<Acquired, RawLockError>> {
        let holder = w & TID_MASK;
        if holder == 0 || holder == NOT_RECOVERABLE {
            return None;
        }
        let rec_tid = self.owner_tid.load(Ordering::Acquire);
        let rec_process = self.owner_process.load(Ordering::Acquire);
        if owner::holder_alive(holder, rec_tid, rec_process) {
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
        Some(Ok(Acquired::OwnerDied { previous }))
    }

    /// Unlocks, after checking that the calling thread holds the lock.
    ///
    /// # Errors
    /// [`UnlockError::NotLocked`] or [`UnlockError::NotOwner`]; the lock is
    /// left as it was.
    #[inline]
    pub fn unlock(&self) -> Result<(), UnlockError> {
        let Ok(me) = owner::me() else {
            // Without an identity this process never took the lock.
            return Err(self.not_ours());
        };
        match self
            .word
            .compare_exchange(me.tid, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(w) => self.unlock_slow(me, w),
        }
    }

    /// The unlock error for a caller that cannot hold the lock.
    #[cold]
    fn not_ours(&self) -> UnlockError {
        match self.word.load(Ordering::Relaxed) & TID_MASK {
            0 => UnlockError::NotLocked,
            holder => UnlockError::NotOwner { holder_tid: holder },
        }
    }

    #[cold]
    fn unlock_slow(&self, me: Me, w: u32) -> Result<(), UnlockError> {
        let holder = w & TID_MASK;
        if holder == 0 {
            return Err(UnlockError::NotLocked);
        }
        if holder != me.tid || holder == NOT_RECOVERABLE {
            return Err(UnlockError::NotOwner { holder_tid: holder });
        }
        self.unlock_held();
        Ok(())
    }

    /// Unlocks a lock the caller knows it holds (a guard): one `swap`, and a
    /// `FUTEX_WAKE` only if a waiter announced itself.
    #[inline]
    pub(crate) fn unlock_held(&self) {
        if self.word.swap(0, Ordering::Release) & WAITERS != 0 {
            self.wake_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        futex::wake(&self.word, 1);
    }

    /// Releases the lock and makes it unrecoverable: every later lock fails
    /// with [`RawLockError::NotRecoverable`]. For a holder that got
    /// [`Acquired::OwnerDied`] and cannot repair the data.
    pub fn unlock_not_recoverable(&self) -> Result<(), UnlockError> {
        let Ok(me) = owner::me() else {
            return Err(self.not_ours());
        };
        let w = self.word.load(Ordering::Relaxed);
        let holder = w & TID_MASK;
        if holder == 0 {
            return Err(UnlockError::NotLocked);
        }
        if holder != me.tid {
            return Err(UnlockError::NotOwner { holder_tid: holder });
        }
        self.make_not_recoverable();
        Ok(())
    }

    pub(crate) fn make_not_recoverable(&self) {
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

    /// Whether the calling thread holds the lock.
    pub fn is_held_by_current_thread(&self) -> bool {
        owner::me().is_ok_and(|me| {
            self.word.load(Ordering::Relaxed) & TID_MASK == me.tid && self.is_recorded_owner(me)
        })
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
}

/// A robust mutex word that its owner may lock again (Python's `RLock`):
/// the same lock word as [`RawMutex`], plus a recursion count that only the
/// owner touches. Only the owner may unlock.
#[repr(C)]
#[derive(Debug)]
pub struct RawReentrantMutex {
    inner: RawMutex,
}

#[cfg(not(loom))]
ipc_core::assert_layout!(RawReentrantMutex, size = 24, align = 8);
#[cfg(not(loom))]
// SAFETY: a transparent-in-practice `#[repr(C)]` wrapper of `RawMutex`,
// which is `Shareable`.
unsafe impl ipc_core::Shareable for RawReentrantMutex {}

impl Default for RawReentrantMutex {
    fn default() -> Self {
        RawReentrantMutex::new()
    }
}

impl RawReentrantMutex {
    /// A free lock.
    pub fn new() -> RawReentrantMutex {
        RawReentrantMutex {
            inner: RawMutex::with_tag(tag::REENTRANT),
        }
    }

    /// The bytes it needs (align 8).
    pub const fn memory_size() -> usize {
        std::mem::size_of::<RawReentrantMutex>()
    }

    /// Writes a free lock at `ptr`.
    ///
    /// # Safety
    /// As [`RawMutex::init_in`].
    pub unsafe fn init_in<'a>(ptr: NonNull<u8>) -> &'a RawReentrantMutex {
        let p = ptr.cast::<RawReentrantMutex>();
        // SAFETY: the caller guarantees a valid, aligned, exclusive place.
        unsafe {
            p.as_ptr().write(RawReentrantMutex::new());
            p.as_ref()
        }
    }

    /// Uses a lock initialized at `ptr`, checking its tag.
    ///
    /// # Safety
    /// As [`RawMutex::attach`].
    pub unsafe fn attach<'a>(ptr: NonNull<u8>) -> Result<&'a RawReentrantMutex, Error> {
        let p = check_ptr::<RawReentrantMutex>(ptr.as_ptr())?;
        // SAFETY: valid and aligned; every bit pattern is valid.
        let m = unsafe { p.as_ref() };
        check_tag(
            m.inner.tag.load(Ordering::Acquire),
            tag::REENTRANT,
            "reentrant mutex",
        )?;
        Ok(m)
    }

    /// Initializes a free lock at `offset` in `seg`.
    #[cfg(not(loom))]
    pub fn init_at(seg: &Segment, offset: u64) -> Result<&RawReentrantMutex, Error> {
        let m: &RawReentrantMutex = seg.get(offset)?;
        m.inner.reset(tag::REENTRANT);
        Ok(m)
    }

    /// The lock at `offset` in `seg`, tag checked.
    #[cfg(not(loom))]
    pub fn at(seg: &Segment, offset: u64) -> Result<&RawReentrantMutex, Error> {
        let m: &RawReentrantMutex = seg.get(offset)?;
        check_tag(
            m.inner.tag.load(Ordering::Acquire),
            tag::REENTRANT,
            "reentrant mutex",
        )?;
        Ok(m)
    }

    pub(crate) fn reset(&self) {
        self.inner.reset(tag::REENTRANT);
    }

    pub(crate) fn tag(&self) -> u32 {
        self.inner.tag()
    }

    /// Locks (again, if the caller holds it), waiting until `deadline`.
    /// A zero-length wait is a single try.
    pub fn lock_until(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<Acquired, RawLockError> {
        if let Some(r) = self.relock() {
            return r;
        }
        let a = self.inner.lock_until(strategy, deadline)?;
        self.inner.count.store(1, Ordering::Relaxed);
        Ok(a)
    }

    /// Tries once (again, if the caller holds it).
    pub fn try_lock(&self) -> Result<Acquired, RawLockError> {
        if let Some(r) = self.relock() {
            return r;
        }
        let a = self.inner.try_lock()?;
        self.inner.count.store(1, Ordering::Relaxed);
        Ok(a)
    }

    fn relock(&self) -> Option<Result<Acquired, RawLockError>> {
        let me = match owner::me() {
            Ok(me) => me,
            Err(e) => return Some(Err(e.into())),
        };
        if self.inner.word.load(Ordering::Relaxed) & TID_MASK == me.tid
            && self.inner.is_recorded_owner(me)
        {
            let c = self.inner.count.load(Ordering::Relaxed);
            return Some(match c.checked_add(1) {
                Some(n) => {
                    self.inner.count.store(n, Ordering::Relaxed);
                    Ok(Acquired::Clean)
                }
                None => Err(RawLockError::WouldDeadlock),
            });
        }
        None
    }

    /// Undoes one lock of the owner; the last one releases the lock.
    ///
    /// # Errors
    /// [`UnlockError::NotLocked`], or [`UnlockError::NotOwner`] when another
    /// thread (or process) holds it. Nothing changes then.
    pub fn unlock(&self) -> Result<(), UnlockError> {
        let Ok(me) = owner::me() else {
            return Err(self.inner.not_ours());
        };
        let w = self.inner.word.load(Ordering::Relaxed);
        let holder = w & TID_MASK;
        if holder == 0 {
            return Err(UnlockError::NotLocked);
        }
        if holder != me.tid || !self.inner.is_recorded_owner(me) {
            return Err(UnlockError::NotOwner { holder_tid: holder });
        }
        let c = self.inner.count.load(Ordering::Relaxed);
        if c > 1 {
            self.inner.count.store(c - 1, Ordering::Relaxed);
        } else {
            self.inner.count.store(0, Ordering::Relaxed);
            self.inner.unlock_held();
        }
        Ok(())
    }

    /// Releases every level and makes the lock unrecoverable.
    pub fn unlock_not_recoverable(&self) -> Result<(), UnlockError> {
        self.inner.unlock_not_recoverable()
    }

    /// How many times the caller holds it (0 if it does not).
    pub fn depth(&self) -> u32 {
        if self.inner.is_held_by_current_thread() {
            self.inner.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether the calling thread holds it.
    pub fn is_held_by_current_thread(&self) -> bool {
        self.inner.is_held_by_current_thread()
    }

    /// Whether it was made unrecoverable.
    pub fn is_not_recoverable(&self) -> bool {
        self.inner.is_not_recoverable()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_unlock_and_misuse() {
        let m = RawMutex::new();
        assert_eq!(m.unlock(), Err(UnlockError::NotLocked));
        assert_eq!(m.lock(WaitStrategy::ADAPTIVE), Ok(Acquired::Clean));
        assert!(m.is_held_by_current_thread());
        assert_eq!(m.try_lock(), Err(RawLockError::WouldDeadlock));
        assert_eq!(
            m.lock(WaitStrategy::ADAPTIVE),
            Err(RawLockError::WouldDeadlock)
        );
        let m = Arc::new(m);
        let m2 = Arc::clone(&m);
        let r = std::thread::spawn(move || (m2.unlock(), m2.try_lock()))
            .join()
            .unwrap();
        assert!(matches!(r.0, Err(UnlockError::NotOwner { .. })));
        assert_eq!(r.1, Err(RawLockError::WouldBlock));
        m.unlock().unwrap();
        assert!(!m.is_locked());
    }

    #[test]
    fn a_thread_that_exits_holding_the_lock_is_a_dead_owner() {
        let m = Arc::new(RawMutex::new());
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || assert_eq!(m2.try_lock(), Ok(Acquired::Clean)))
            .join()
            .unwrap();
        assert!(matches!(
            m.lock(WaitStrategy::Blocking),
            Ok(Acquired::OwnerDied { previous: Some(_) })
        ));
        m.unlock_not_recoverable().unwrap();
        assert_eq!(m.try_lock(), Err(RawLockError::NotRecoverable));
        assert_eq!(
            m.lock_timeout(WaitStrategy::ADAPTIVE, Duration::from_millis(1)),
            Err(RawLockError::NotRecoverable)
        );
    }

    /// A holder killed between its `CAS` and its owner record: the record
    /// names the previous holder (alive), the word a thread that is gone.
    #[test]
    fn a_holder_killed_before_its_record_is_still_found_dead() {
        let dead_tid = owner::exited_thread_tid();
        let m = RawMutex::new();
        assert_eq!(m.try_lock(), Ok(Acquired::Clean)); // record: this thread
        m.word.store(dead_tid | WAITERS, Ordering::Relaxed);
        assert_eq!(
            m.try_lock(),
            Ok(Acquired::OwnerDied { previous: None }),
            "a stale record must not hide the dead holder"
        );
        m.unlock().unwrap();
    }

    #[test]
    fn timeouts_and_zero_timeout() {
        let m = Arc::new(RawMutex::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let m2 = Arc::clone(&m);
        let h = std::thread::spawn(move || {
            assert_eq!(m2.try_lock(), Ok(Acquired::Clean));
            tx.send(()).unwrap();
            done_rx.recv().unwrap();
            m2.unlock().unwrap();
        });
        rx.recv().unwrap();
        assert_eq!(
            m.lock_timeout(WaitStrategy::ADAPTIVE, Duration::ZERO),
            Err(RawLockError::WouldBlock)
        );
        for s in [WaitStrategy::BusySpin, WaitStrategy::Blocking] {
            assert_eq!(
                m.lock_timeout(s, Duration::from_millis(15)),
                Err(RawLockError::TimedOut)
            );
        }
        done_tx.send(()).unwrap();
        h.join().unwrap();
        assert_eq!(m.lock(WaitStrategy::Blocking), Ok(Acquired::Clean));
        m.unlock().unwrap();
    }

    #[test]
    fn reentrant_counts_and_refuses_strangers() {
        let m = Arc::new(RawReentrantMutex::new());
        assert_eq!(m.unlock(), Err(UnlockError::NotLocked));
        for _ in 0..3 {
            assert_eq!(m.try_lock(), Ok(Acquired::Clean));
        }
        assert_eq!(m.depth(), 3);
        let m2 = Arc::clone(&m);
        let r = std::thread::spawn(move || (m2.unlock(), m2.try_lock(), m2.depth()))
            .join()
            .unwrap();
        assert!(matches!(r.0, Err(UnlockError::NotOwner { .. })));
        assert_eq!(r.1, Err(RawLockError::WouldBlock));
        assert_eq!(r.2, 0);
        for _ in 0..3 {
            m.unlock().unwrap();
        }
        assert_eq!(m.unlock(), Err(UnlockError::NotLocked));
    }
}
