//! The writing end of the SPSC ring: reservations, pads, commits.

use super::{header_word, record_len, Claim, RawRing, Side, HEADER_LEN, KIND_MSG, KIND_PAD, SLACK};
use crate::primitive::{fence, order, Ordering, Site};
use crate::raw::{Addressable, Corrupt, Memory};
use multiproc_core::liveness::Judge;

/// A cache line, as far as the producer's prefetching is concerned.
const LINE: u64 = 64;
/// How far ahead of its tail the producer asks for cache lines it will write:
/// enough lines that the ownership requests overlap (a request takes about
/// half a cache-line round trip, 40 to 220 ns on the machine this was tuned
/// on, while streaming 8-byte messages fills a line every 30 ns or so),
/// close enough that the lines are free (checked against the room) and stay
/// in the cache. 4, 8 and 16 lines were measured; 8 was best.
const PREFETCH_AHEAD: u64 = 8 * LINE;

/// Where a reserved record lies: handed out by [`RawProducer::try_reserve`]
/// and given back to [`RawProducer::commit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    off: u64,
    len: usize,
}

impl Reservation {
    /// The payload's offset from the start of the data area (8-aligned).
    #[inline]
    pub fn offset(&self) -> usize {
        (self.off as usize) + HEADER_LEN
    }
}

/// Why [`RawProducer::try_reserve`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveError {
    /// Not enough free room now.
    Full,
    /// The message is larger than [`RawRing::max_message_len`].
    TooLarge,
    /// The consumer's `head` failed its check.
    Corrupt(Corrupt),
}

/// The writing end of a ring, made only by claiming it
/// ([`RawRing::producer`]); dropping it closes the end and gives the claim
/// back. Process-local state: the authoritative tail and a cached copy of
/// the consumer's head.
#[derive(Debug)]
pub struct RawProducer<M: Memory, J: Judge> {
    /// The ring, and the claim of this end (which closes it when dropped).
    end: Claim<M, J>,
    /// Bytes written so far; every record below it is published.
    tail: u64,
    /// The tail as last stored in shared memory.
    published_tail: u64,
    cached_head: u64,
    pad_published: bool,
    /// Messages and payload bytes committed, stored with `tail`.
    counted: super::EndCounters,
}

impl<M: Memory, J: Judge> RawProducer<M, J> {
    /// The end for the claim just made: continues after the last committed
    /// record (see [`RawRing::producer`]). On error the end is dropped,
    /// which gives the claim back.
    pub(super) fn start(end: Claim<M, J>) -> Result<Self, Corrupt> {
        let head = end.ring.head().load(Ordering::Acquire);
        let tail = end.ring.tail().load(Ordering::Acquire);
        let mut p = RawProducer {
            end,
            tail,
            published_tail: tail,
            cached_head: head,
            pad_published: false,
            counted: super::EndCounters::default(),
        };
        p.counted = p.end.ring.counters(super::Side::Producer);
        let ring = &p.end.ring;
        if !(tail | head).is_multiple_of(super::RECORD_ALIGN as u64) {
            return Err(Corrupt::new("index is not record-aligned", tail | head));
        }
        // The consumer may be ahead of the stored `tail`; otherwise `tail`
        // must be at most the capacity ahead of `head`.
        let mut end = if head.wrapping_sub(tail) <= ring.cap {
            head
        } else {
            ring.check_span(tail, head)?;
            tail
        };
        loop {
            if end.wrapping_sub(head) > ring.cap - SLACK as u64 {
                return Err(Corrupt::new(
                    "committed records leave no free slot",
                    end.wrapping_sub(head),
                ));
            }
            let off = end & ring.mask;
            // SYNC POINT: pairs with the release store of each header.
            let word = ring.header_at(off).load(Ordering::Acquire);
            if word == 0 {
                break;
            }
            end = end.wrapping_add(match ring.parse(off, word)? {
                super::Record::Msg(p) => p.need(),
                super::Record::Pad(n) => n,
            });
        }
        p.tail = end;
        p.publish();
        Ok(p)
    }

    /// Free bytes by the cached `head`, less the slot kept clear. `tail -
    /// cached_head` was checked to be at most the capacity less the slack
    /// when `head` was loaded and grows only by reserved amounts since; the
    /// subtraction saturates all the same, so that a reservation committed
    /// out of turn (a misuse of this safe API) reads as a full ring instead
    /// of a panic.
    #[inline(always)]
    fn room(&self) -> u64 {
        (self.end.ring.cap - SLACK as u64).saturating_sub(self.tail.wrapping_sub(self.cached_head))
    }

    /// Whether a record of `need` bytes can be placed, reloading `head` only
    /// if the cached copy says it cannot.
    #[inline]
    fn has_room(&mut self, need: u64) -> Result<bool, Corrupt> {
        if self.room() >= need {
            return Ok(true);
        }
        self.reload_head()?;
        Ok(self.room() >= need)
    }

    #[cold]
    fn reload_head(&mut self) -> Result<(), Corrupt> {
        // SYNC POINT: pairs with the consumer's release store of `head`: the
        // consumer is done reading every byte below `head`.
        let head = self.end.ring.head().load(Ordering::Acquire);
        self.end.ring.check_span(self.tail, head)?;
        if head.wrapping_sub(self.cached_head) > self.end.ring.cap {
            return Err(Corrupt::new("head moved backwards", head));
        }
        if self.tail.wrapping_sub(head) > self.end.ring.cap - SLACK as u64 {
            return Err(Corrupt::new("head is behind the free slot", head));
        }
        self.cached_head = head;
        Ok(())
    }

    /// Wakes the consumer if it may be parked ([`RawRing::wake`] with the
    /// side known here, so the offsets are constants).
    #[inline]
    pub fn wake_peer(&self) {
        self.end.ring.wake(Side::Consumer);
    }

    /// Whether the consumer closed its end.
    #[inline]
    pub fn peer_closed(&self) -> bool {
        self.end.ring.is_closed(Side::Consumer)
    }

    /// Free bytes as far as this end knows (reloads the consumer's head).
    ///
    /// # Errors
    /// [`Corrupt`] if the consumer's `head` fails its checks.
    pub fn free_bytes(&mut self) -> Result<usize, Corrupt> {
        self.reload_head()?;
        Ok(self.room() as usize)
    }

    /// Reserves room for a `len`-byte message. On success the payload bytes
    /// are this end's until [`RawProducer::commit`]: written with
    /// [`RawProducer::write`] (or in place, [`RawProducer::payload`]).
    ///
    /// May publish a pad record to reach the start of the data area (even when
    /// it then fails with `Full`); [`RawProducer::take_pad_published`] tells
    /// the caller to wake the consumer, who must skip the pad to free room.
    /// If the consumer has already released everything before the pad (the
    /// ring is drained), the producer releases the pad itself instead of
    /// waiting for the consumer to poll, so a message of
    /// [`RawRing::max_message_len`] bytes always fits a drained ring.
    ///
    /// # Errors
    /// [`ReserveError::Full`], [`ReserveError::TooLarge`],
    /// [`ReserveError::Corrupt`] if the consumer's `head` fails its checks.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        // Fast path: the record fits before the end of the data area and the
        // cached `head` already shows room for it. Anything else takes the
        // slow path, which redoes every check and reports why.
        match self.try_reserve_fast(len) {
            Some(r) => Ok(r),
            None => self.try_reserve_slow(len),
        }
    }

    /// The fast path of [`RawProducer::try_reserve`] alone: `None` when it
    /// does not apply (then `try_reserve` decides). Never publishes a pad.
    #[inline(always)]
    pub fn try_reserve_fast(&mut self, len: usize) -> Option<Reservation> {
        let off = self.tail & self.end.ring.mask;
        if len <= self.end.ring.max_message_len() {
            let need = record_len(len) as u64;
            if need <= self.end.ring.cap - off && self.room() >= need {
                return Some(Reservation { off, len });
            }
        }
        None
    }

    /// [`RawProducer::try_reserve`] when the fast path does not apply: too
    /// large, a pad needed, or the cached `head` says full.
    #[cold]
    #[inline(never)]
    fn try_reserve_slow(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        if len > self.end.ring.max_message_len() {
            return Err(ReserveError::TooLarge);
        }
        let need = record_len(len) as u64;
        let mut off = self.tail & self.end.ring.mask;
        let to_end = self.end.ring.cap - off;
        if need > to_end {
            if !self.has_room(to_end).map_err(ReserveError::Corrupt)? {
                self.end.ring.count_full();
                return Err(ReserveError::Full);
            }
            // `to_end >= 8` free bytes from `off` (8-aligned) to the end,
            // and the slot after them: this end alone may write them.
            let pad_at = self.tail;
            self.put_header(off, to_end, header_word(to_end, KIND_PAD));
            self.tail = self.tail.wrapping_add(to_end);
            self.publish();
            self.pad_published = true;
            off = 0;
            if self.room() < need {
                self.release_pad(pad_at).map_err(ReserveError::Corrupt)?;
            }
        }
        if !self.has_room(need).map_err(ReserveError::Corrupt)? {
            self.end.ring.count_full();
            return Err(ReserveError::Full);
        }
        Ok(Reservation { off, len })
    }

    /// The pad just published at position `pad_at` leaves too little room:
    /// if the consumer has released everything before the pad (the ring is
    /// drained, and the consumer may not poll again for a long time), moves
    /// `head` past the pad on the consumer's behalf, so the record can start
    /// at offset 0 now. One compare-and-swap from exactly `pad_at`: if the
    /// consumer got there first (it read the pad and released it), its own
    /// store already says the same. The consumer notices the move when it
    /// next reads a header ([`RawConsumer::try_peek`](super::RawConsumer::try_peek)).
    #[cold]
    fn release_pad(&mut self, pad_at: u64) -> Result<(), Corrupt> {
        self.reload_head()?;
        if self.cached_head != pad_at {
            return Ok(());
        }
        if self
            .end
            .ring
            .head()
            .compare_exchange(pad_at, self.tail, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SYNC POINT: pairs with the consumer's acquire load of a header
            // in `RawConsumer::header`: whatever this producer writes from
            // now on (over the pad, too) is seen only with the new `head`.
            fence(Site::SpscPadReleaseFence, Ordering::Release);
            self.cached_head = self.tail;
            Ok(())
        } else {
            self.reload_head()
        }
    }

    /// Publishes the record of `need` bytes at `off` (free, checked room)
    /// with the header `word`: clears the slot after it, then stores the
    /// header with release ordering.
    #[inline(always)]
    fn put_header(&self, off: u64, need: u64, word: u64) {
        let next = (off + need) & self.end.ring.mask;
        self.end.ring.header_at(next).store(0, Ordering::Relaxed);
        // SYNC POINT: pairs with the consumer's acquire load of this header:
        // the payload and the cleared slot after it are visible with it.
        self.end
            .ring
            .header_at(off)
            .store(word, order(Site::SpscHeaderPublish, Ordering::Release));
    }

    /// Whether a pad record was published since the last call (the consumer
    /// should be woken so it skips it).
    #[inline]
    pub fn take_pad_published(&mut self) -> bool {
        std::mem::take(&mut self.pad_published)
    }

    /// Copies `src` into the start of a reservation's payload.
    ///
    /// # Safety
    /// `r` comes from this producer's latest `try_reserve` and was not
    /// committed, and `src.len() <= r.len()`.
    #[inline(always)]
    pub unsafe fn write(&mut self, r: Reservation, src: &[u8]) {
        debug_assert!(src.len() <= r.len);
        // SAFETY: the reservation lies inside the data area (the record is
        // contiguous, `off + need <= cap`) and is free, so no other party
        // reads or writes it until it is published (the caller's promise
        // that `r` is live and `src` fits).
        unsafe { self.end.ring.mem.copy_in(super::DATA + r.offset(), src) };
    }

    /// Publishes a reservation, shortened to `len` bytes (`len <= r.len()`):
    /// the consumer may read it from now on. [`RawProducer::publish`] then
    /// stores the new `tail` for [`RawRing::used_bytes`].
    ///
    /// # Panics
    /// If `len > r.len()`.
    #[inline]
    pub fn commit(&mut self, r: Reservation, len: usize) {
        assert!(
            len <= r.len,
            "commit of {len} bytes into a grant of {}",
            r.len
        );
        let need = record_len(len) as u64;
        self.put_header(r.off, need, header_word(len as u64, KIND_MSG));
        self.counted.messages = self.counted.messages.wrapping_add(1);
        self.counted.bytes = self.counted.bytes.wrapping_add(len as u64);
        let before = self.tail;
        self.tail = (self.tail & !self.end.ring.mask) + r.off + need;
        if (before ^ self.tail) & !(LINE - 1) != 0 && self.room() >= PREFETCH_AHEAD + LINE {
            // A new cache line: ask now for ownership of the line this
            // producer will write a few lines on. The consumer read it a lap
            // ago, so a plain write would first wait for the consumer's copy
            // to be invalidated; streaming, that wait is most of the cost of
            // a message.
            let ahead = self.tail.wrapping_add(PREFETCH_AHEAD) & self.end.ring.mask;
            self.end
                .ring
                .mem
                .prefetch_for_write(super::DATA + ahead as usize);
        }
    }

    /// Stores the `tail` of every committed record (one store, on a line the
    /// consumer does not read per message).
    #[inline]
    pub fn publish(&mut self) {
        if self.tail != self.published_tail {
            // SYNC POINT: pairs with the acquire loads of `tail` in
            // `used_bytes` and in a producer taking over.
            self.end.ring.tail().store(self.tail, Ordering::Release);
            self.published_tail = self.tail;
            self.end
                .ring
                .store_counters(super::Side::Producer, &self.counted);
        }
    }

    /// Reserves, copies `msg` in, commits and publishes.
    ///
    /// # Errors
    /// As [`RawProducer::try_reserve`].
    #[inline]
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ReserveError> {
        let r = self.try_reserve(msg.len())?;
        // SAFETY: `r` was just reserved by this producer for `msg.len()`.
        unsafe { self.write(r, msg) };
        self.commit(r, msg.len());
        self.publish();
        Ok(())
    }
}

impl<M: Addressable, J: Judge> RawProducer<M, J> {
    /// The payload bytes of a reservation, in place.
    ///
    /// # Safety
    /// `r` must come from this producer's latest `try_reserve` and not have
    /// been committed; the slice must not outlive that.
    #[inline]
    pub unsafe fn payload(&mut self, r: Reservation) -> &mut [u8] {
        // SAFETY: the reservation lies inside the data area (the record is
        // contiguous, `off + need <= cap`) and is free, so no other party
        // reads or writes it until it is published.
        unsafe { std::slice::from_raw_parts_mut(self.end.ring.data_addr(r.offset() as u64), r.len) }
    }

    /// The payload bytes of a reservation, for reading back.
    ///
    /// # Safety
    /// As [`RawProducer::payload`].
    #[inline]
    pub unsafe fn payload_ref(&self, r: Reservation) -> &[u8] {
        // SAFETY: as in `payload`: inside the data area, unpublished.
        unsafe { std::slice::from_raw_parts(self.end.ring.data_addr(r.offset() as u64), r.len) }
    }
}

message_len!(impl[] Reservation);

super::claimed_end!(RawProducer);
