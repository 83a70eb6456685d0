//! The reading end of the SPSC ring: headers, pads, releases.

use super::{record_len, Claim, RawRing, Record, Side, HEADER_LEN, RECORD_ALIGN};
use crate::primitive::{order, Ordering, Site};
use crate::raw::{Addressable, Corrupt, Memory};
use multiproc_core::liveness::Judge;

/// A record found by [`RawConsumer::try_peek`]: a message's place in the
/// data area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peeked {
    off: u64,
    len: usize,
}

impl Peeked {
    pub(super) fn new(off: u64, len: usize) -> Peeked {
        Peeked { off, len }
    }

    /// The length of the message's record.
    #[inline]
    pub(super) fn need(&self) -> u64 {
        record_len(self.len) as u64
    }

    /// The payload's offset from the start of the data area (8-aligned).
    #[inline]
    pub fn offset(&self) -> usize {
        self.off as usize + HEADER_LEN
    }
}

/// The reading end of a ring, made only by claiming it
/// ([`RawRing::consumer`]); dropping it closes the end and gives the claim
/// back. Process-local state: the authoritative head.
#[derive(Debug)]
pub struct RawConsumer<M: Memory, J: Judge> {
    /// The ring, and the claim of this end (which closes it when dropped).
    end: Claim<M, J>,
    /// Bytes consumed so far, published or not.
    head: u64,
    published_head: u64,
    released_pad: bool,
    /// Messages and payload bytes released, stored with `head`.
    counted: super::EndCounters,
}

impl<M: Memory, J: Judge> RawConsumer<M, J> {
    /// The end for the claim just made, at the published `head`. On error
    /// the end is dropped, which gives the claim back.
    pub(super) fn start(end: Claim<M, J>) -> Result<Self, Corrupt> {
        let head = end.ring.head().load(Ordering::Acquire);
        let counted = end.ring.counters(super::Side::Consumer);
        let c = RawConsumer {
            end,
            head,
            published_head: head,
            released_pad: false,
            counted,
        };
        if !head.is_multiple_of(RECORD_ALIGN as u64) {
            return Err(Corrupt::new("index is not record-aligned", head));
        }
        Ok(c)
    }

    /// The header word at `head`, loaded with acquire ordering, with its
    /// offset; `None` if the producer has moved `head` past a pad for this
    /// (drained) consumer, so that what lies at `head` may be anything now
    /// ([`RawConsumer::sync_head`] catches up).
    #[inline(always)]
    fn header(&self) -> Option<(u64, u64)> {
        // `head` is 8-aligned (checked at attach and advanced by checked
        // record lengths only), so the slot lies inside the data area.
        let off = self.head & self.end.ring.mask;
        // SYNC POINT: pairs with the producer's release store of the header
        // in `put_header`: the record's payload is visible with it. Also
        // pairs with the release fence in `RawProducer::release_pad`: if this
        // load sees anything the producer wrote over a pad it released, the
        // load of `head` below sees that release.
        let word = self.end.ring.header_at(off).load(Ordering::Acquire);
        // Our own line, only ever written by the producer in that case: an
        // L1 hit on the fast path.
        let shared = self.end.ring.head().load(Ordering::Relaxed);
        (shared == self.published_head).then_some((off, word))
    }

    /// Catches up with a `head` the producer moved to the start of the next
    /// lap, past a pad this consumer had not read yet: that happens only when
    /// the consumer had released everything up to the pad (see
    /// [`RawProducer::try_reserve`](super::RawProducer::try_reserve)). Any
    /// other move of `head` is corrupt.
    #[cold]
    fn sync_head(&mut self) -> Result<(), Corrupt> {
        // SYNC POINT: pairs with the producer's compare-and-swap of `head`
        // and the release fence after it: the producer's writes at the
        // lap's start before that fence are seen from here on.
        let shared = self
            .end
            .ring
            .head()
            .load(order(Site::SpscHeadResync, Ordering::Acquire));
        if shared == self.published_head {
            return Ok(());
        }
        let at = self.published_head;
        let lap_start = (at | self.end.ring.mask).wrapping_add(1);
        if self.head != at || at & self.end.ring.mask == 0 || shared != lap_start {
            return Err(Corrupt::new("head was moved by another process", shared));
        }
        self.head = shared;
        self.published_head = shared;
        Ok(())
    }

    /// Wakes the producer if it may be parked ([`RawRing::wake`] with the
    /// side known here, so the offsets are constants).
    #[inline]
    pub fn wake_peer(&self) {
        self.end.ring.wake(Side::Producer);
    }

    /// Whether the producer closed its end.
    #[inline]
    pub fn peer_closed(&self) -> bool {
        self.end.ring.is_closed(Side::Producer)
    }

    /// Whether a message (or pad) is committed and unread.
    ///
    /// # Errors
    /// [`Corrupt`] if `head` was moved by someone else than the producer
    /// releasing a pad.
    pub fn has_data(&mut self) -> Result<bool, Corrupt> {
        loop {
            match self.header() {
                Some((_, word)) => return Ok(word != 0),
                None => self.sync_head()?,
            }
        }
    }

    /// The next message, if one is committed, after checking its header.
    /// Pad records on the way are skipped (and released at once, see
    /// [`RawConsumer::take_released_pad`]).
    ///
    /// # Errors
    /// [`Corrupt`] naming what is wrong with the record at `head`.
    #[inline]
    pub fn try_peek(&mut self) -> Result<Option<Peeked>, Corrupt> {
        let Some((off, word)) = self.header() else {
            return self.try_peek_slow();
        };
        if let Some(p) = self.end.ring.check_message(off, word) {
            return Ok(Some(p));
        }
        if word == 0 {
            return Ok(None);
        }
        self.try_peek_slow()
    }

    /// The fast path of [`RawConsumer::try_peek`] alone: the next message if
    /// one is committed and its header passes every check; `None` otherwise
    /// (then `try_peek` decides). Never skips a pad.
    #[inline(always)]
    pub fn try_peek_fast(&mut self) -> Option<Peeked> {
        let (off, word) = self.header()?;
        self.end.ring.check_message(off, word)
    }

    /// [`RawConsumer::try_peek`] in full: pads, and the precise error for a
    /// record that fails its checks.
    #[cold]
    #[inline(never)]
    fn try_peek_slow(&mut self) -> Result<Option<Peeked>, Corrupt> {
        loop {
            let Some((off, word)) = self.header() else {
                self.sync_head()?;
                continue;
            };
            if word == 0 {
                return Ok(None);
            }
            match self.end.ring.parse(off, word)? {
                Record::Msg(p) => return Ok(Some(p)),
                Record::Pad(n) => {
                    self.head = self.head.wrapping_add(n);
                    self.publish();
                    self.released_pad = true;
                }
            }
        }
    }

    /// Whether a pad record was released since the last call (the producer
    /// may be waiting for that room).
    #[inline]
    pub fn take_released_pad(&mut self) -> bool {
        std::mem::take(&mut self.released_pad)
    }

    /// Copies the payload of a peeked message into the front of `dst`.
    ///
    /// # Safety
    /// `p` comes from this consumer's latest `try_peek`, not yet advanced
    /// past, and `dst.len() >= p.len()`.
    #[inline(always)]
    pub unsafe fn read(&self, p: Peeked, dst: &mut [u8]) {
        debug_assert!(dst.len() >= p.len);
        // SAFETY: checked by `try_peek`: the payload lies inside the data
        // area, in a record the producer published and no longer writes
        // (the caller's promise that `p` is current).
        unsafe {
            self.end
                .ring
                .mem
                .copy_out(super::DATA + p.offset(), &mut dst[..p.len])
        };
    }

    /// Moves past a peeked message (locally; see [`RawConsumer::publish`]).
    #[inline]
    pub fn advance(&mut self, p: Peeked) {
        self.head = self.head.wrapping_add(p.need());
        self.counted.messages = self.counted.messages.wrapping_add(1);
        self.counted.bytes = self.counted.bytes.wrapping_add(p.len as u64);
    }

    /// Gives every consumed byte back to the producer (one store).
    #[inline]
    pub fn publish(&mut self) {
        if self.head != self.published_head {
            // SYNC POINT: pairs with the producer's acquire load of `head`:
            // the reads of the released records happened before.
            self.end
                .ring
                .head()
                .store(self.head, order(Site::SpscHeadRelease, Ordering::Release));
            self.published_head = self.head;
            self.end
                .ring
                .store_counters(super::Side::Consumer, &self.counted);
        }
    }

    /// Copies the next message into `buf` and releases it. Returns its length,
    /// or `Ok(None)` if nothing is committed.
    ///
    /// # Errors
    /// `Err(Ok(len))` for a message longer than `buf` (left in the ring),
    /// `Err(Err(corrupt))` as [`RawConsumer::try_peek`].
    pub fn try_pop_into(
        &mut self,
        buf: &mut [u8],
    ) -> Result<Option<usize>, Result<usize, Corrupt>> {
        let Some(p) = self.try_peek().map_err(Err)? else {
            return Ok(None);
        };
        if p.len > buf.len() {
            return Err(Ok(p.len));
        }
        // SAFETY: `p` was just peeked and `buf` holds it.
        unsafe { self.read(p, buf) };
        self.advance(p);
        self.publish();
        Ok(Some(p.len))
    }
}

impl<M: Addressable, J: Judge> RawConsumer<M, J> {
    /// The payload of a peeked message, in place.
    ///
    /// # Safety
    /// `p` must come from this consumer's latest `try_peek`, not yet
    /// advanced past; the slice must not outlive that.
    #[inline]
    pub unsafe fn payload(&self, p: Peeked) -> &[u8] {
        // SAFETY: checked by `try_peek`: the payload lies inside the data
        // area, in a record the producer published and no longer writes.
        unsafe { std::slice::from_raw_parts(self.end.ring.data_addr(p.offset() as u64), p.len) }
    }
}

message_len!(impl[] Peeked);

super::claimed_end!(RawConsumer);
