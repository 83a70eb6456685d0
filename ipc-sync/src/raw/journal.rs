//! The undo journal: how a container held by the caller is changed so
//! that an update survives its holder being killed at any instruction.
//!
//! # The protocol
//!
//! The container's robust [`RawMutex`](super::RawMutex) guards everything;
//! nothing is read or written without it. Within an update:
//!
//! 1. Bytes of new items are appended to the active arena above `top`:
//!    memory the state at the start of the update does not reference.
//! 2. Every change of a word that state references (a state word, an index
//!    slot of the bank active at the start) is preceded by a journal entry
//!    `(offset, old value)`, then the journal's length is published
//!    (`Release`), then the word is changed (`Release`): a kill at any
//!    point leaves either an unchanged word or a change the journal names.
//!    A state word is journaled once per update (its first old value is
//!    the one to restore); words of the scratch banks are not journaled.
//! 3. A rebuild (compaction, a large shift, a rehash, clearing a dict)
//!    writes its result into the banks that are not active, unjournaled,
//!    then switches `active` with one journaled store; from then on those
//!    banks are scratch for the rest of the update, rebuilt in place if
//!    needed again, and the banks of the start are never written.
//! 4. The update ends by setting the journal's length to 0 (`Release`,
//!    after every change): the commit point. Then the lock is released.
//!
//! The next locker that is told the holder died ([`Acquired::OwnerDied`],
//! or any locker that finds a non-empty journal) restores the journaled
//! words in reverse order and clears the journal: the container is exactly
//! as before the interrupted update. Restoring is idempotent, so a
//! recoverer killed while restoring leaves the same work to the next one.
//! A journal entry naming anything but a state word or an index word, or a
//! length beyond the journal, cannot be rolled back: the lock is then made
//! not recoverable ([`ContainerError::NotRecoverable`]).
//!
//! A live holder that returns an error or panics mid-update rolls back the
//! same way when its `Locked` is dropped, so an operation that fails has no
//! effect.
//!
//! # What checks it
//!
//! No part of this protocol runs outside the lock: readers lock too, and
//! the journal is written by the holder and read by the next holder only.
//! What crosses between processes is therefore exactly what the robust
//! mutex hands over, which the loom models of the mutex check on its own
//! code (`tests/loom.rs`: a dead holder's writes are seen by the one thread
//! that takes the lock over, and by the lockers after it). The `Release`
//! stores above order nothing for another thread; they keep the compiler
//! from moving a change before its journal entry, since a kill stops the
//! holder between any two of its instructions. That property is checked by
//! stopping every update of the unit tests at every step, and the recovery
//! at every step too (`container_tests.rs`), and by writers SIGKILLed in
//! the middle of their updates (`tests/container_kills.rs`, and the chaos
//! suite's `containers` scenario).

use super::mutex::Acquired;
use super::store::{
    copy_bytes, equal_bytes, out_of_bounds, Header, Layout, Shape, ACTIVE, ARENA_BIT, ENTRY_BYTES,
    HEADER_BYTES, INDEX_BIT, LEN, LIVE, STATE_OFFSET, STATE_WORDS, TOMBS, TOP,
};
use crate::container::ContainerError;
use crate::error::{LockError, LockTimeoutError};
use multiproc_core::liveness::Judge;
use multiproc_core::wait::WaitStrategy;
use std::convert::Infallible;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A container locked by the calling thread, in the middle of an update.
/// Dropping it without [`commit`](Locked::commit) rolls the update back;
/// either way the lock is released.
pub(crate) struct Locked<'a> {
    mem: NonNull<u8>,
    layout: &'a Layout,
    header: &'a Header,
    /// The state words as this update has left them.
    state: [u64; STATE_WORDS],
    /// `active` and `len` at the start of the update (what a rollback
    /// restores): which bank and slots the update must journal.
    start: (u64, u64),
    /// Entries written to the journal.
    journal_len: u64,
    /// State words journaled already (bit per word).
    journaled: u8,
    /// The lock was released (or abandoned by an injected fault).
    finished: bool,
}

/// Where a rebuild writes and what `active` becomes once it is done.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    /// Offset of the index bank to write.
    pub(crate) index: u64,
    /// Offset of the arena bank to write (the active one when not
    /// compacting).
    pub(crate) arena: u64,
    /// The `active` word after the switch.
    active: u64,
}

impl Header {
    /// Locks the container, rolling back a dead holder's interrupted
    /// update first: [`Header::acquire`], then [`Locked::held`] and
    /// [`Locked::begin`].
    ///
    /// # Errors
    /// Those of [`Header::acquire`] and [`Locked::begin`].
    ///
    /// # Safety
    /// As [`Locked::held`], less the lock, which this takes.
    #[inline(always)]
    pub(crate) unsafe fn lock<'a, J: Judge>(
        &'a self,
        mem: NonNull<u8>,
        layout: &'a Layout,
        judge: &J,
        strategy: WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<Locked<'a>, ContainerError> {
        let acquired = self.acquire(judge, strategy, timeout)?;
        // SAFETY: the caller's promise; the lock is held (just acquired).
        let mut g = unsafe { Locked::held(mem, layout, self) };
        g.begin(acquired)?;
        Ok(g)
    }

    /// Takes the container's robust lock; the caller then makes a
    /// [`Locked`] of it ([`Locked::held`], [`Locked::begin`]) at once.
    ///
    /// # Errors
    /// [`ContainerError::NotRecoverable`], [`ContainerError::WouldDeadlock`],
    /// [`ContainerError::TimedOut`], [`ContainerError::UnknownIdentity`];
    /// the lock is not held.
    #[inline(always)]
    pub(crate) fn acquire<J: Judge>(
        &self,
        judge: &J,
        strategy: WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<Acquired, ContainerError> {
        match timeout {
            None => self.lock.lock(judge, strategy).map_err(lock_error),
            Some(t) => self
                .lock
                .lock_timeout(judge, strategy, t)
                .map_err(timeout_error),
        }
    }
}

fn lock_error(e: LockError<Infallible>) -> ContainerError {
    match e {
        LockError::NotRecoverable => ContainerError::NotRecoverable,
        LockError::WouldDeadlock => ContainerError::WouldDeadlock,
        LockError::UnknownIdentity(e) => ContainerError::UnknownIdentity(e),
        // The raw lock reports a dead holder as `Acquired::OwnerDied`.
        LockError::OwnerDied(_) => ContainerError::NotRecoverable,
    }
}

fn timeout_error(e: LockTimeoutError<Infallible>) -> ContainerError {
    match e {
        LockTimeoutError::NotRecoverable => ContainerError::NotRecoverable,
        LockTimeoutError::WouldDeadlock => ContainerError::WouldDeadlock,
        LockTimeoutError::UnknownIdentity(e) => ContainerError::UnknownIdentity(e),
        LockTimeoutError::WouldBlock | LockTimeoutError::TimedOut => ContainerError::TimedOut,
        // The raw lock reports a dead holder as `Acquired::OwnerDied`.
        LockTimeoutError::OwnerDied(_) => ContainerError::NotRecoverable,
    }
}

impl<'a> Locked<'a> {
    /// The container whose lock the calling thread holds (from
    /// [`Header::acquire`]), not yet checked: call [`Locked::begin`] before
    /// anything else. Dropping it releases the lock.
    ///
    /// # Safety
    /// The calling thread holds `header`'s lock; `mem` is the address of
    /// `header` and valid, for `'a`, for `layout.total` bytes that are only
    /// accessed under this lock (or atomically); `layout` was computed by
    /// [`Header::check`] of this header.
    #[inline(always)]
    pub(crate) unsafe fn held(mem: NonNull<u8>, layout: &'a Layout, header: &'a Header) -> Self {
        debug_assert_eq!(mem.as_ptr().cast_const(), (header as *const Header).cast());
        Locked {
            mem,
            layout,
            header,
            state: [0; STATE_WORDS],
            start: (0, 0),
            journal_len: 0,
            journaled: 0,
            finished: false,
        }
    }

    /// Starts the update: rolls back a dead holder's (after
    /// [`Acquired::OwnerDied`], or whenever the journal is not empty), then
    /// reads and checks the state words.
    ///
    /// # Errors
    /// A journal that cannot be rolled back
    /// ([`ContainerError::NotRecoverable`]: the lock is made not
    /// recoverable); state words out of their bounds
    /// ([`ContainerError::Corrupted`]: dropping `self` releases the lock).
    #[inline(always)]
    pub(crate) fn begin(&mut self, acquired: Acquired) -> Result<(), ContainerError> {
        let dirty = self.header.journal_len.load(Ordering::Acquire) != 0;
        if matches!(acquired, Acquired::OwnerDied { .. }) || dirty {
            self.recover()?;
        }
        self.load_state()
    }

    /// The layout.
    #[inline]
    pub(crate) fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// A state word as this update left it.
    #[inline]
    pub(crate) fn state(&self, word: usize) -> u64 {
        self.state[word]
    }

    /// Offset of the active index bank.
    #[inline]
    pub(crate) fn index_base(&self) -> u64 {
        self.layout.index[(self.state[ACTIVE] & INDEX_BIT) as usize]
    }

    /// Whether the active index bank is scratch for this update (a rebuild
    /// switched to it): its words change without journal entries.
    #[inline]
    pub(crate) fn index_scratch(&self) -> bool {
        (self.state[ACTIVE] ^ self.start.0) & INDEX_BIT != 0
    }

    /// Journal entries still free in this update.
    #[inline]
    pub(crate) fn journal_room(&self) -> u64 {
        self.layout.journal - self.journal_len
    }

    /// Offset of the active arena bank.
    #[inline]
    fn arena_base(&self) -> u64 {
        self.layout.arenas[((self.state[ACTIVE] & ARENA_BIT) >> 1) as usize]
    }

    /// The shared word at `off`, checked to lie in the container.
    #[inline]
    fn word(&self, off: u64) -> Result<&AtomicU64, ContainerError> {
        if !off.is_multiple_of(8) || off.checked_add(8).is_none_or(|end| end > self.layout.total) {
            return Err(out_of_bounds("word offset", off, self.layout.total));
        }
        // SAFETY: `off..off + 8` lies in the container's `total` bytes
        // (checked above), which the caller of `lock` promised valid for
        // `'a`; 8-aligned (the container starts 8-aligned and `off % 8 ==
        // 0`); shared words are only accessed atomically.
        Ok(unsafe { self.mem.add(off as usize).cast::<AtomicU64>().as_ref() })
    }

    /// Reads the word at `off`.
    #[inline]
    pub(crate) fn load(&self, off: u64) -> Result<u64, ContainerError> {
        Ok(self.word(off)?.load(Ordering::Relaxed))
    }

    /// Whether a change of the word at `off` must be journaled: it lies in
    /// the index bank active at the start, in a slot that state references
    /// (every slot of a dict; the first `len` of a list).
    #[inline]
    fn needs_undo(&self, off: u64) -> bool {
        let bank = self.layout.index[(self.start.0 & INDEX_BIT) as usize];
        if off < bank || off >= bank + self.layout.bank_bytes() {
            return false;
        }
        match self.layout.shape {
            Shape::Dict => true,
            Shape::List => (off - bank) / 8 < self.start.1,
        }
    }

    /// Stores `v` at `off` (an index word), journaling the old value first
    /// if the start of the update references it.
    #[inline]
    pub(crate) fn store(&mut self, off: u64, v: u64) -> Result<(), ContainerError> {
        let w = self.word(off)?;
        if self.needs_undo(off) {
            let old = w.load(Ordering::Relaxed);
            self.journal(off, old)?;
        }
        self.step()?;
        // SYNC POINT: Release keeps the journal entry (and its published
        // length) before this change, also for a kill between them.
        self.word(off)?.store(v, Ordering::Release);
        Ok(())
    }

    /// Sets a state word, journaling its first old value of the update.
    #[inline]
    pub(crate) fn set_state(&mut self, word: usize, v: u64) -> Result<(), ContainerError> {
        let off = STATE_OFFSET + 8 * word as u64;
        if self.journaled & (1 << word) == 0 {
            self.journal(off, self.state[word])?;
            self.journaled |= 1 << word;
        }
        self.step()?;
        self.header.state[word].store(v, Ordering::Release);
        self.state[word] = v;
        Ok(())
    }

    /// Appends `(off, old)` to the journal, then publishes its length.
    fn journal(&mut self, off: u64, old: u64) -> Result<(), ContainerError> {
        if self.journal_len >= self.layout.journal {
            return Err(ContainerError::TransactionTooLarge {
                journal_entries: self.layout.journal as usize,
            });
        }
        self.step()?;
        let entry = HEADER_BYTES + self.journal_len * ENTRY_BYTES;
        self.word(entry)?.store(off, Ordering::Relaxed);
        self.word(entry + 8)?.store(old, Ordering::Relaxed);
        self.step()?;
        self.journal_len += 1;
        // SYNC POINT: Release publishes the entry before its length.
        self.header
            .journal_len
            .store(self.journal_len, Ordering::Release);
        Ok(())
    }

    /// Commits the update: clears the journal (the commit point), then
    /// releases the lock.
    ///
    /// # Errors
    /// Only an injected fault in unit tests.
    #[inline]
    pub(crate) fn commit(&mut self) -> Result<(), ContainerError> {
        if self.finished {
            return Ok(());
        }
        if self.journal_len != 0 {
            self.step()?;
            // SYNC POINT: Release keeps every change of the update before
            // the commit point.
            self.header.journal_len.store(0, Ordering::Release);
            self.journal_len = 0;
        }
        self.step()?;
        self.finished = true;
        self.header.lock.unlock_held();
        Ok(())
    }

    /// Rolls back a dead holder's update, after a takeover.
    #[cold]
    fn recover(&mut self) -> Result<(), ContainerError> {
        self.header.recoveries.fetch_add(1, Ordering::Relaxed);
        match self.rollback() {
            Ok(()) => {
                log::warn!("shared container: a dead holder's update was rolled back");
                Ok(())
            }
            Err(e) => {
                if !self.finished {
                    self.header.lock.make_not_recoverable();
                    self.finished = true;
                }
                Err(e)
            }
        }
    }

    /// Restores every journaled word, last first, then clears the journal.
    fn rollback(&mut self) -> Result<(), ContainerError> {
        let n = self.header.journal_len.load(Ordering::Acquire);
        if n > self.layout.journal {
            log::error!("shared container: journal length {n} is corrupted");
            return Err(ContainerError::NotRecoverable);
        }
        for i in (0..n).rev() {
            let entry = HEADER_BYTES + i * ENTRY_BYTES;
            let off = self.load(entry)?;
            let old = self.load(entry + 8)?;
            if !self.layout.is_undo_target(off) {
                log::error!("shared container: journal entry {i} names offset {off}");
                return Err(ContainerError::NotRecoverable);
            }
            self.step()?;
            self.word(off)?.store(old, Ordering::Relaxed);
        }
        self.step()?;
        // SYNC POINT: Release keeps the restored words before the cleared
        // journal; a recoverer killed before this point leaves the whole
        // journal to the next one, which restores the same words again.
        self.header.journal_len.store(0, Ordering::Release);
        self.journal_len = 0;
        self.journaled = 0;
        Ok(())
    }

    /// Reads and checks the state words: the start of the update.
    #[inline(always)]
    fn load_state(&mut self) -> Result<(), ContainerError> {
        let l = self.layout;
        for (v, w) in self.state.iter_mut().zip(&self.header.state) {
            *v = w.load(Ordering::Relaxed);
        }
        let s = &self.state;
        let ok = s[ACTIVE] <= INDEX_BIT | ARENA_BIT
            && s[LEN] <= l.capacity
            && s[TOP] <= l.arena
            && s[LIVE] <= s[TOP]
            && s[TOMBS] <= l.slots - s[LEN].min(l.slots);
        if !ok {
            return Err(self.bad_state());
        }
        self.start = (s[ACTIVE], s[LEN]);
        Ok(())
    }

    /// Which state word is out of its bounds.
    #[cold]
    fn bad_state(&self) -> ContainerError {
        let (l, s) = (self.layout, &self.state);
        let checks = [
            ("active", s[ACTIVE], INDEX_BIT | ARENA_BIT),
            ("len", s[LEN], l.capacity),
            ("top", s[TOP], l.arena),
            ("live", s[LIVE], s[TOP]),
            ("tombs", s[TOMBS], l.slots - s[LEN].min(l.slots)),
        ];
        let (what, value, limit) = checks
            .into_iter()
            .find(|&(_, v, limit)| v > limit)
            .unwrap_or(("state", 0, 0));
        out_of_bounds(what, value, limit)
    }

    // ---- the arena ----

    /// Checks that `len` bytes at `off` of the active arena hold an item
    /// (below `top`); returns their address.
    #[inline]
    fn item(&self, off: u64, len: u64) -> Result<*mut u8, ContainerError> {
        let top = self.state[TOP];
        if off.checked_add(len).is_none_or(|end| end > top) {
            return Err(ContainerError::corrupted(format!(
                "an item of {len} bytes at {off} lies beyond the arena's top {top}"
            )));
        }
        // SAFETY: `off + len <= top <= arena` (checked above and by
        // `load_state`), and the active arena bank of `arena` bytes lies in
        // the container's memory (`Layout::new`).
        Ok(unsafe { self.mem.as_ptr().add((self.arena_base() + off) as usize) })
    }

    /// Appends the bytes of item `off..off + len` to `out`.
    #[inline]
    pub(crate) fn read_item(
        &self,
        off: u64,
        len: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), ContainerError> {
        let src = self.item(off, len)?;
        out.reserve(len as usize);
        // SAFETY: `src` holds `len` readable bytes (`item`), `out` has room
        // for them after its length (reserved), and the two do not overlap
        // (one is shared memory, the other this process's heap). Nobody
        // writes the arena while we hold the lock.
        unsafe {
            copy_bytes(src, out.as_mut_ptr().add(out.len()), len as usize);
            out.set_len(out.len() + len as usize);
        }
        Ok(())
    }

    /// Whether item `off..off + len` holds exactly `bytes`.
    #[inline]
    pub(crate) fn item_is(&self, off: u64, len: u64, bytes: &[u8]) -> Result<bool, ContainerError> {
        if len != bytes.len() as u64 {
            return Ok(false);
        }
        let src = self.item(off, len)?;
        // SAFETY: `src` holds `len == bytes.len()` readable bytes (`item`),
        // only read here, under the lock.
        Ok(unsafe { equal_bytes(src, bytes) })
    }

    /// Appends the concatenated `parts` to the active arena at `top`, or
    /// returns `None` if they do not fit above it (a compaction may make
    /// room: see [`Locked::room_after_compaction`]). Advances `top` and
    /// `live`.
    pub(crate) fn append(&mut self, parts: &[&[u8]]) -> Result<Option<u64>, ContainerError> {
        let n: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let top = self.state[TOP];
        if top + n > self.layout.arena {
            return Ok(None);
        }
        self.write_arena(self.arena_base(), top, parts)?;
        self.set_state(TOP, top + n)?;
        self.set_state(LIVE, self.state[LIVE] + n)?;
        Ok(Some(top))
    }

    /// The bytes free once every unreferenced byte is compacted away.
    #[inline]
    pub(crate) fn room_after_compaction(&self) -> u64 {
        self.layout.arena - self.state[LIVE]
    }

    /// Writes `parts` at `off` of the arena bank at `bank`, which the start
    /// of the update does not reference there (above its `top`, or a bank
    /// that is not the start's).
    pub(crate) fn write_arena(
        &mut self,
        bank: u64,
        off: u64,
        parts: &[&[u8]],
    ) -> Result<(), ContainerError> {
        let n: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let valid = self.layout.arenas.contains(&bank)
            && off
                .checked_add(n)
                .is_some_and(|end| end <= self.layout.arena);
        if !valid {
            return Err(out_of_bounds(
                "arena write end",
                off.saturating_add(n),
                self.layout.arena,
            ));
        }
        // SAFETY: `bank` is one of the two arena banks and `off + n` is
        // within its `arena` bytes (checked above), inside the container's
        // memory; the parts are this process's memory, so nothing overlaps.
        let mut dst = unsafe { self.mem.as_ptr().add((bank + off) as usize) };
        for p in parts {
            // SAFETY: as above; `dst` advances by each part's length, and
            // they add up to `n`.
            unsafe {
                copy_bytes(p.as_ptr(), dst, p.len());
                dst = dst.add(p.len());
            }
        }
        Ok(())
    }

    // ---- rebuilds ----

    /// Where a rebuild writes: the banks that are scratch for this update
    /// already (rebuilt in place: the caller has copied out what it keeps),
    /// or the banks the start does not use. With `compact`, a new arena
    /// too; otherwise items stay where they are.
    pub(crate) fn rebuild_target(&self, compact: bool) -> Target {
        let (now, start) = (self.state[ACTIVE], self.start.0);
        // A bank that differs from the start's is scratch: rebuilt in
        // place. Otherwise the other bank, which the start does not use.
        let index_bit = if (now ^ start) & INDEX_BIT != 0 {
            now & INDEX_BIT
        } else {
            (now & INDEX_BIT) ^ INDEX_BIT
        };
        let arena_bit = if !compact || (now ^ start) & ARENA_BIT != 0 {
            now & ARENA_BIT
        } else {
            (now & ARENA_BIT) ^ ARENA_BIT
        };
        let active = index_bit | arena_bit;
        Target {
            index: self.layout.index[(active & INDEX_BIT) as usize],
            arena: self.layout.arenas[((active & ARENA_BIT) >> 1) as usize],
            active,
        }
    }

    /// Writes an index word of a rebuild's target bank (not journaled: the
    /// start does not reference that bank).
    #[inline]
    pub(crate) fn store_scratch(&mut self, off: u64, v: u64) -> Result<(), ContainerError> {
        debug_assert!(!self.needs_undo(off), "a rebuild writes the start's bank");
        self.word(off)?.store(v, Ordering::Relaxed);
        Ok(())
    }

    /// Switches to a rebuild's target: `active`, and the arena's `top` and
    /// `live` after a compaction (`Some(bytes)`), and no tombstones.
    pub(crate) fn switch(
        &mut self,
        t: Target,
        compacted: Option<u64>,
    ) -> Result<(), ContainerError> {
        self.set_state(ACTIVE, t.active)?;
        if let Some(bytes) = compacted {
            self.set_state(TOP, bytes)?;
            self.set_state(LIVE, bytes)?;
        }
        if self.state[TOMBS] != 0 {
            self.set_state(TOMBS, 0)?;
        }
        Ok(())
    }

    /// One step of an update, where a unit test may stop it as if the
    /// holder were killed there (the lock stays held by a thread the
    /// test's judge then calls dead).
    #[inline(always)]
    fn step(&mut self) -> Result<(), ContainerError> {
        #[cfg(test)]
        if fault::hit() {
            self.finished = true;
            return Err(ContainerError::Injected);
        }
        Ok(())
    }
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.journal_len != 0 {
            if let Err(e) = self.rollback() {
                if !self.finished {
                    log::error!("shared container: rollback failed ({e}); closing it");
                    self.header.lock.make_not_recoverable();
                }
                return;
            }
        }
        self.header.lock.unlock_held();
    }
}

/// Fault injection for the unit tests: stop the `n`-th step from now.
#[cfg(test)]
pub(crate) mod fault {
    use std::cell::Cell;

    std::thread_local! {
        static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
    }

    /// Stops the `n`-th step from now (1: the next one); 0 disarms.
    pub(crate) fn arm(n: u32) {
        COUNTDOWN.with(|c| c.set(n));
    }

    /// Whether this step is the one to stop at (disarms then).
    pub(crate) fn hit() -> bool {
        COUNTDOWN.with(|c| match c.get() {
            0 => false,
            1 => {
                c.set(0);
                true
            }
            n => {
                c.set(n - 1);
                false
            }
        })
    }

    /// Whether a fault is still armed (the update ended before it).
    pub(crate) fn armed() -> bool {
        COUNTDOWN.with(|c| c.get() != 0)
    }
}
