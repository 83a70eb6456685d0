//! Claiming a slot to send or to receive, and the claims that publish or
//! release it.

use super::{my_id, RawError, RawMpmc, Watch, ABORTED, BUSY, NOT_EMPTY, NOT_FULL, READING};
use crate::error::MessageTooLarge;
use crate::primitive::{fence_seq_cst, order, spin_loop, AtomicU64, Ordering, Site};
use crate::raw::{Addressable, Corrupt, Memory, SLOT_HEADER};
use multiproc_core::liveness::Judge;

/// Re-reads of an unchanged index that saw a state word fitting no case
/// before the ring is declared corrupt.
const INCONSISTENT_LIMIT: u32 = 1 << 14;
/// Loop iterations one `try_` call may spend before it gives up with
/// [`RawError::Busy`]. Only a peer that keeps rewriting the indices (a
/// hostile or corrupt one) gets near it; it keeps every call finite.
const ITERATION_LIMIT: u32 = 1 << 20;

/// How far one `try_` call has got: its turns, bounded by
/// [`ITERATION_LIMIT`], and the re-reads of an index that did not move.
#[derive(Default)]
struct Progress {
    turns: u32,
    inconsistent: u32,
}

impl Progress {
    /// One more turn of the loop, or [`RawError::Busy`] past the limit.
    #[inline]
    fn turn(&mut self) -> Result<(), RawError> {
        self.turns += 1;
        if self.turns > ITERATION_LIMIT {
            return Err(RawError::Busy);
        }
        Ok(())
    }

    /// Rereads `index` after the slot at `pos` showed the state `s`, which
    /// fits no case for that position. A moved index is the normal race
    /// (another claimer went first): its new value is returned. An index
    /// that has not moved while the state still fits nothing counts towards
    /// [`INCONSISTENT_LIMIT`], past which the ring is corrupt (`what`).
    #[inline]
    fn reread(
        &mut self,
        index: &AtomicU64,
        pos: u64,
        s: u64,
        what: &'static str,
    ) -> Result<u64, RawError> {
        let now = index.load(Ordering::Relaxed);
        if now == pos {
            self.inconsistent += 1;
            if self.inconsistent >= INCONSISTENT_LIMIT {
                return Err(RawError::Corrupt(Corrupt::new(what, s)));
            }
            spin_loop();
        } else {
            self.inconsistent = 0;
        }
        Ok(now)
    }
}

impl<M: Memory> RawMpmc<M> {
    /// Claims a slot for a message of `len` bytes without blocking (it spins
    /// at most [`STUCK_AFTER`](super::STUCK_AFTER) behind a peer that holds
    /// the slot it needs). The claim records `judge`'s process; a claimer
    /// found dead by `judge` is recovered on the way.
    ///
    /// # Errors
    /// [`RawError::Full`], [`RawError::Busy`], [`RawError::Closed`],
    /// [`RawError::TooLarge`], [`RawError::Corrupt`],
    /// [`RawError::UnknownIdentity`].
    #[inline]
    pub fn try_claim_send<J: Judge>(
        &self,
        len: usize,
        watch: &mut Watch,
        judge: &J,
    ) -> Result<WriteClaim<'_, M>, RawError> {
        if len > self.at.slots.slot_size {
            return Err(RawError::TooLarge(MessageTooLarge {
                len,
                max: self.at.slots.slot_size,
            }));
        }
        if self.is_closed() {
            return Err(RawError::Closed);
        }
        let me = my_id(judge)?;
        // Each word is looked up at each use (free: a constant offset, or the
        // slot's, which the compiler keeps), so that a model can stop the
        // caller between any two of its operations.
        let mut pos = self.tail().load(Ordering::Relaxed);
        let mut progress = Progress::default();
        loop {
            progress.turn()?;
            let s = self.state(pos).load(Ordering::Acquire);
            let empty = pos.wrapping_mul(2);
            if s == empty {
                match self.state(pos).compare_exchange_weak(
                    s,
                    BUSY | me,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.tail().store(pos.wrapping_add(1), Ordering::Relaxed);
                        return Ok(WriteClaim {
                            ring: self,
                            pos,
                            slot: self.at.slot(pos),
                            len,
                            done: false,
                        });
                    }
                    Err(_) => {
                        pos = self.tail().load(Ordering::Relaxed);
                        continue;
                    }
                }
            }
            if s & BUSY != 0 {
                self.busy(pos, s, watch, judge)?;
                pos = self.tail().load(Ordering::Relaxed);
                continue;
            }
            if s == empty.wrapping_sub(2 * self.at.slots.cap).wrapping_add(1) {
                // The slot still holds the message of the previous lap.
                fence_seq_cst();
                let head = self.head().load(Ordering::Relaxed);
                if head.wrapping_add(self.at.slots.cap) == pos {
                    return Err(RawError::Full);
                }
            }
            pos = progress.reread(self.tail(), pos, s, "slot state does not match the tail")?;
        }
    }

    /// Claims the next message without blocking, if it is at most `max_len`
    /// bytes long (a longer one stays queued: [`RawError::TooLong`]).
    /// Aborted messages are skipped. The claim records `judge`'s process.
    ///
    /// # Errors
    /// [`RawError::Empty`], [`RawError::Busy`], [`RawError::TooLong`],
    /// [`RawError::Corrupt`], [`RawError::UnknownIdentity`]. A closed ring
    /// still hands out what it holds.
    #[inline]
    pub fn try_claim_recv<J: Judge>(
        &self,
        max_len: usize,
        watch: &mut Watch,
        judge: &J,
    ) -> Result<ReadClaim<'_, M>, RawError> {
        let me = my_id(judge)?;
        let mut pos = self.head().load(Ordering::Relaxed);
        let mut progress = Progress::default();
        loop {
            progress.turn()?;
            let s = self.state(pos).load(Ordering::Acquire);
            let full = pos.wrapping_mul(2).wrapping_add(1);
            if s == full {
                let len = self.len_word(pos).load(Ordering::Relaxed);
                if len != ABORTED
                    && len as usize > max_len
                    && len as usize <= self.at.slots.slot_size
                {
                    return Err(RawError::TooLong {
                        needed: len as usize,
                    });
                }
                match self.state(pos).compare_exchange_weak(
                    s,
                    BUSY | READING | me,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.head().store(pos.wrapping_add(1), Ordering::Relaxed);
                        // Unchanged since the load above: only a producer of
                        // the next lap writes `len`, after our release.
                        let len = self.len_word(pos).load(Ordering::Relaxed);
                        let claim = ReadClaim {
                            ring: self,
                            pos,
                            slot: self.at.slot(pos),
                            len: (len as usize).min(self.at.slots.slot_size),
                        };
                        if len == ABORTED {
                            drop(claim);
                            pos = self.head().load(Ordering::Relaxed);
                            continue;
                        }
                        if len as usize > self.at.slots.slot_size {
                            drop(claim);
                            return Err(RawError::Corrupt(Corrupt::new(
                                "message length exceeds the slot size",
                                u64::from(len),
                            )));
                        }
                        return Ok(claim);
                    }
                    Err(_) => {
                        pos = self.head().load(Ordering::Relaxed);
                        continue;
                    }
                }
            }
            if s & BUSY != 0 {
                self.busy(pos, s, watch, judge)?;
                pos = self.head().load(Ordering::Relaxed);
                continue;
            }
            if s == full.wrapping_sub(1) {
                // Nobody has claimed position `pos` yet.
                fence_seq_cst();
                let tail = self.tail().load(Ordering::Relaxed);
                if tail == pos {
                    return Err(RawError::Empty);
                }
            }
            pos = progress.reread(self.head(), pos, s, "slot state does not match the head")?;
        }
    }
}

/// A claimed slot for one outgoing message. [`WriteClaim::commit`] publishes
/// it; dropping it uncommitted publishes an aborted message that receivers
/// skip (counted in [`RawMpmc::lost`]). Leaking it (`mem::forget`) leaves the
/// slot claimed by a live process: the ring stops at that slot until this
/// process exits.
#[derive(Debug)]
pub struct WriteClaim<'a, M: Memory> {
    ring: &'a RawMpmc<M>,
    pos: u64,
    /// The offset of the slot serving `pos`.
    slot: usize,
    len: usize,
    done: bool,
}

impl<M: Memory> WriteClaim<'_, M> {
    /// Copies `src` (at most [`WriteClaim::len`] bytes) into the start of
    /// the message.
    ///
    /// # Panics
    /// If `src` is longer than the claim.
    #[inline]
    pub fn write(&mut self, src: &[u8]) {
        assert!(src.len() <= self.len, "a write longer than its claim");
        // SAFETY: the claim gives this endpoint the slot's data until it
        // publishes; `len <= slot_size` was checked, so the range lies inside
        // the slot.
        unsafe { self.ring.at.mem.copy_in(self.slot + SLOT_HEADER, src) };
    }

    /// Publishes the message.
    #[inline]
    pub fn commit(mut self) {
        self.publish(self.len as u32);
    }

    #[inline]
    fn publish(&mut self, len: u32) {
        self.done = true;
        self.ring.len_in(self.slot).store(len, Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire load of the state in
        // `try_claim_recv`; the bytes and `len` are visible to the consumer.
        self.ring.state_in(self.slot).store(
            self.pos.wrapping_mul(2).wrapping_add(1),
            order(Site::MpmcPublish, Ordering::Release),
        );
        self.ring.at.notify(NOT_EMPTY);
    }
}

impl<M: Addressable> WriteClaim<'_, M> {
    /// The message bytes, in place in the slot (`len` bytes, initially
    /// holding whatever the slot held before).
    #[inline]
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: the claim gives this endpoint the slot's data until it
        // publishes; `len <= slot_size` was checked, so the range lies inside
        // the slot. A peer breaking the protocol can only change bytes, for
        // which every value is valid.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// A raw pointer to the message bytes (16-byte aligned).
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ring.at.mem.addr(self.slot + SLOT_HEADER)
    }
}

impl<M: Memory> Drop for WriteClaim<'_, M> {
    fn drop(&mut self) {
        if !self.done {
            self.ring
                .at
                .word(super::LOST)
                .fetch_add(1, Ordering::Relaxed);
            self.ring.unfinished_dec();
            self.publish(ABORTED);
        }
    }
}

/// A claimed message. Dropping it releases the slot to producers (also when
/// a panic unwinds through it: the message counts as delivered). Leaking it
/// leaves the slot claimed until this process exits.
#[derive(Debug)]
pub struct ReadClaim<'a, M: Memory> {
    ring: &'a RawMpmc<M>,
    pos: u64,
    /// The offset of the slot serving `pos`.
    slot: usize,
    len: usize,
}

impl<M: Memory> ReadClaim<'_, M> {
    /// The message's position in the ring (0 for the first message ever).
    #[inline]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Copies the message into the front of `dst`; returns its length.
    ///
    /// # Panics
    /// If `dst` is shorter than the message.
    #[inline]
    pub fn read(&self, dst: &mut [u8]) -> usize {
        // SAFETY: the claim gives this endpoint the slot until it releases;
        // `len <= slot_size` was checked, and `dst[..len]` panics first if
        // `dst` is shorter.
        unsafe {
            self.ring
                .at
                .mem
                .copy_out(self.slot + SLOT_HEADER, &mut dst[..self.len])
        };
        self.len
    }
}

impl<M: Addressable> ReadClaim<'_, M> {
    /// The message bytes, in place in the slot.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the claim gives this endpoint the slot until it releases;
        // `len <= slot_size` was checked. Bytes have no invalid values.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// A raw pointer to the message bytes (16-byte aligned).
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.ring.at.mem.addr(self.slot + SLOT_HEADER)
    }
}

impl<M: Memory> Drop for ReadClaim<'_, M> {
    #[inline]
    fn drop(&mut self) {
        let next = self
            .pos
            .wrapping_add(self.ring.at.slots.cap)
            .wrapping_mul(2);
        // SYNC POINT: pairs with the Acquire load of the state in
        // `try_claim_send`; our reads of the bytes happen before the next
        // producer's writes.
        self.ring
            .state_in(self.slot)
            .store(next, order(Site::MpmcRelease, Ordering::Release));
        self.ring.at.notify(NOT_FULL);
    }
}

message_len!(impl['a, M: Memory] WriteClaim<'a, M>);
message_len!(impl['a, M: Memory] ReadClaim<'a, M>);
