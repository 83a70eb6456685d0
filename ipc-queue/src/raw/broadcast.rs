//! The broadcast ring algorithm over a [`Memory`]: one publisher, any
//! number of subscribers, seqlock slots.
//!
//! The publisher writes message `p` into slot `p & mask` and never waits:
//! subscribers keep their own cursors (in their own memory), so the ring has
//! no idea how far behind anyone is. Each slot carries a sequence word
//! written before and after the payload:
//!
//! | slot `seq` | meaning |
//! |---|---|
//! | `2p + 1` | the publisher is writing message `p` in this slot |
//! | `2p + 2` | the slot holds message `p`, complete |
//! | `0` | never written |
//!
//! A subscriber that wants message `c` loads `seq` (acquire), copies `len`
//! and the bytes with relaxed atomic loads, fences (acquire) and loads `seq`
//! again. The copy is valid only if both loads read `2c + 2`; a newer value
//! means the publisher lapped the subscriber (an *overrun*): message `c` is
//! gone, and the subscriber skips to the oldest message still in the ring and
//! reports how many it lost. A torn copy is therefore never returned. The
//! publisher stores `seq = 2p + 1`, fences (release), writes the payload with
//! relaxed atomic stores, stores `seq = 2p + 2` (release) and then the
//! shared `next = p + 1` (release); the fence pair is the classic seqlock
//! argument: a reader that saw any byte of the new payload also sees the odd
//! sequence on its second load.
//!
//! Payload bytes move through `AtomicU64` words, so a concurrent overwrite is
//! a detected race, not undefined behaviour.
//!
//! There is one writer: a [`RawPublisher`], made only by claiming the ring's
//! publisher word ([`RawBroadcast::publisher`]), from nobody or from an owner
//! the [`Judge`] proves dead. Dropping it closes the ring and gives the word
//! back, in the claiming process only.
//!
//! # Layout
//!
//! | bytes | contents |
//! |---|---|
//! | 0..128 | magic, capacity, slot size, stride, the publisher's packed id, closed, the `new_data` event count |
//! | 128..256 | `next`: the position of the next message ([`Line`]) |
//! | 256.. | `capacity` slots of `stride` bytes: `seq` (8), `len` (4), reserved (4), then the payload words |

use super::{
    claim_owner, release_owner, round_slots, still_mine, ClaimError, ConfigError, Corrupt, Line,
    Memory, SlotWords, Slots, Slotted, SLOT_HEADER,
};
use crate::error::MessageTooLarge;
use crate::primitive::{fence, AtomicU32, AtomicU64, Ordering, Site};
use multiproc_core::liveness::Judge;
use multiproc_core::wait::EventCount;

/// `b"IPCBCST1"` as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCBCST1");
pub use super::{MAX_SLOTS as MAX_CAPACITY, MAX_SLOT_SIZE};

#[repr(C)]
#[derive(Debug, Default)]
struct Words {
    /// Magic, capacity, slot size and stride.
    slots: SlotWords,
    /// Packed process id of the publisher; 0 = none.
    publisher: std::sync::atomic::AtomicU64,
    closed: std::sync::atomic::AtomicU32,
    reserved: std::sync::atomic::AtomicU32,
    new_data: EventCount,
}

/// The control block at the start of the ring memory (the slots follow):
/// its layout, which the ring reaches word by word through its [`Memory`].
#[repr(C)]
#[derive(Debug, Default)]
pub struct BroadcastControl {
    config: Line<Words>,
    next: Line<std::sync::atomic::AtomicU64>,
}
multiproc_core::assert_layout!(BroadcastControl, size = 256, align = 128);

macro_rules! word {
    ($f:ident) => {
        std::mem::offset_of!(BroadcastControl, config.0.$f)
    };
}
const PUBLISHER: usize = word!(publisher);
const CLOSED: usize = word!(closed);
const NEW_DATA: usize = word!(new_data);
const NEXT: usize = std::mem::offset_of!(BroadcastControl, next);
/// Where the first slot starts.
pub const SLOTS: usize = std::mem::size_of::<BroadcastControl>();
/// The length word's offset in a slot.
const LEN: usize = 8;

/// The shape of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of slots; rounded up to a power of two by [`Config::new`].
    pub capacity: usize,
    /// The largest message in bytes.
    pub slot_size: usize,
}

impl Config {
    /// A configuration with `capacity` rounded up to a power of two (0 to 1;
    /// a capacity with no power of two above it stays as given, and is
    /// refused as too large).
    pub fn new(capacity: usize, slot_size: usize) -> Config {
        Config {
            capacity: round_slots(capacity),
            slot_size,
        }
    }
}

/// The bytes of memory a broadcast ring of `cfg` needs: the control block, then
/// the slots.
///
/// # Errors
/// [`ConfigError`] naming the limit a capacity or slot size exceeds.
pub fn memory_size(cfg: &Config) -> Result<usize, ConfigError> {
    Slots::new(cfg.capacity, cfg.slot_size, SLOTS).map(|(_, size)| size)
}

/// The words a ring of `cfg` uses, for a loom model's memory.
///
/// # Errors
/// As [`memory_size`].
#[cfg(loom)]
pub fn model_layout(cfg: &Config) -> Result<super::model::Layout, ConfigError> {
    let (slots, mut l) = Slots::model_layout(cfg.capacity, cfg.slot_size, SLOTS)?;
    l = l.u64(PUBLISHER).u64(NEXT).u32(CLOSED);
    for slot in slots.each() {
        l = l.u64(slot).u32(slot + LEN);
        for w in 0..cfg.slot_size.div_ceil(8) {
            l = l.u64(slot + SLOT_HEADER + 8 * w);
        }
    }
    Ok(l)
}

/// What a read of one position found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The message, `len` bytes copied out.
    Message(usize),
    /// Not published yet.
    NotYet,
    /// The message is longer than the caller's buffer (nothing consumed).
    TooLong(usize),
    /// The publisher overwrote it; the oldest message still readable is at
    /// this position.
    Overrun(u64),
    /// The slot holds a length no publisher writes.
    Corrupt(Corrupt),
}

/// A broadcast ring attached in some memory, with the geometry read (and
/// checked) when attaching.
#[derive(Clone, Debug)]
pub struct RawBroadcast<M> {
    at: Slotted<M>,
}

impl<M: Memory> RawBroadcast<M> {
    /// Writes a fresh ring of `cfg` into `mem` and attaches it.
    ///
    /// # Errors
    /// [`ConfigError`] for a configuration out of range or larger than
    /// `mem`.
    pub fn init(mem: M, cfg: &Config) -> Result<RawBroadcast<M>, ConfigError> {
        let at = Slotted::fresh(mem, cfg.capacity, cfg.slot_size, SLOTS)?;
        at.publish(MAGIC);
        Ok(RawBroadcast { at })
    }

    /// Attaches to an initialized ring after checking its control block.
    ///
    /// # Errors
    /// [`Corrupt`] naming the bad field.
    pub fn attach(mem: M) -> Result<RawBroadcast<M>, Corrupt> {
        Ok(RawBroadcast {
            at: Slotted::attach(mem, MAGIC, SLOTS)?,
        })
    }

    /// The ring in `mem` as [`RawBroadcast::attach`] finds it; or, if its
    /// control block no longer passes the checks (a peer rewrote it after
    /// an attach of the same memory succeeded), a ring of one slot of 0
    /// bytes, which fits in any memory `attach` accepted. For handles made
    /// from an attach that already succeeded, which cannot fail.
    #[cfg(not(loom))]
    pub(crate) fn attach_or_smallest(mem: M) -> RawBroadcast<M> {
        RawBroadcast {
            at: Slotted::attach_or_smallest(mem, MAGIC, SLOTS),
        }
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &M {
        &self.at.mem
    }

    #[inline(always)]
    fn seq(&self, pos: u64) -> &AtomicU64 {
        self.at.slot_word(pos, 0)
    }

    #[inline(always)]
    fn len_word(&self, pos: u64) -> &AtomicU32 {
        self.at.slot_word32(pos, LEN)
    }

    /// Payload word `i` of the slot serving `pos` (`i < ceil(slot_size /
    /// 8)`, which the stride, `16 + slot_size` rounded up to 16, holds).
    #[inline(always)]
    fn payload_word(&self, pos: u64, i: usize) -> &AtomicU64 {
        self.at.slot_word(pos, SLOT_HEADER + 8 * i)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.at.slots.cap as usize
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.at.slots.slot_size
    }

    /// The position the next message will get (= messages published so far).
    pub fn written(&self) -> u64 {
        self.at.word(NEXT).load(Ordering::Acquire)
    }

    /// The packed id of the publisher (0: none).
    pub fn publisher_id(&self) -> u64 {
        self.at.word(PUBLISHER).load(Ordering::Acquire)
    }

    /// Whether the ring is closed.
    pub fn is_closed(&self) -> bool {
        self.at.word32(CLOSED).load(Ordering::Acquire) != 0
    }

    /// Whether the ring is closed, or its publisher's process is dead by
    /// `judge` (or there is none): nothing more will be published.
    pub fn publisher_gone<J: Judge>(&self, judge: &J) -> bool {
        if self.is_closed() {
            return true;
        }
        let p = self.publisher_id();
        p == 0 || judge.is_dead(p)
    }

    /// Marks the ring closed (or reopened) and wakes subscribers.
    fn set_closed(&self, closed: bool) {
        self.at
            .word32(CLOSED)
            .store(u32::from(closed), Ordering::Release);
        self.at.notify(NEW_DATA);
    }

    /// Claims the publisher word for `judge`'s process and returns the one
    /// writing end; publishing resumes after the last complete message, and
    /// the ring is open again.
    ///
    /// # Errors
    /// [`ClaimError::Held`] while a live publisher (this process included)
    /// holds it, [`ClaimError::UnknownIdentity`].
    pub fn publisher<J: Judge>(&self, judge: J) -> Result<RawPublisher<M, J>, ClaimError> {
        let me = claim_owner(self.at.word(PUBLISHER), &judge)?;
        let next = self.written();
        self.set_closed(false);
        Ok(RawPublisher {
            ring: self.clone(),
            next,
            judge,
            me,
        })
    }

    /// Copies message `pos` into `buf`, if it is there and complete.
    pub fn read(&self, pos: u64, buf: &mut [u8]) -> Read {
        let want = pos.wrapping_mul(2).wrapping_add(2);
        let s1 = self.seq(pos).load(Ordering::Acquire);
        if s1 != want {
            return self.not_there(pos, s1);
        }
        let len = self.len_word(pos).load(Ordering::Relaxed) as usize;
        let n = len.min(self.at.slots.slot_size);
        if n > buf.len() {
            // Only trust the length if the message is still the same one.
            fence(Site::BroadcastReadFence, Ordering::Acquire);
            if self.seq(pos).load(Ordering::Relaxed) != want {
                return self.overrun(pos);
            }
            return Read::TooLong(n);
        }
        let mut chunks = buf[..n].chunks_exact_mut(8);
        for (i, c) in (&mut chunks).enumerate() {
            c.copy_from_slice(
                &self
                    .payload_word(pos, i)
                    .load(Ordering::Relaxed)
                    .to_ne_bytes(),
            );
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let b = self
                .payload_word(pos, n / 8)
                .load(Ordering::Relaxed)
                .to_ne_bytes();
            let k = rest.len();
            rest.copy_from_slice(&b[..k]);
        }
        // SYNC POINT: pairs with the Release fence in `publish`.
        fence(Site::BroadcastReadFence, Ordering::Acquire);
        if self.seq(pos).load(Ordering::Relaxed) != want {
            return self.overrun(pos);
        }
        if len > self.at.slots.slot_size {
            return Read::Corrupt(Corrupt::new(
                "message length exceeds the slot size",
                len as u64,
            ));
        }
        Read::Message(len)
    }

    fn not_there(&self, pos: u64, seq: u64) -> Read {
        let want = pos.wrapping_mul(2).wrapping_add(2);
        // Older lap, never written, or being written now: not yet.
        if seq == 0 || (seq.wrapping_sub(want) as i64) < 0 {
            return Read::NotYet;
        }
        self.overrun(pos)
    }

    /// Message `pos` was overwritten: where to resume.
    fn overrun(&self, pos: u64) -> Read {
        let next = self.written();
        // If the publisher is writing `next` over `next - cap` right now, the
        // next read finds that out and skips one more.
        let oldest = next.saturating_sub(self.at.slots.cap);
        Read::Overrun(oldest.max(pos.wrapping_add(1)))
    }
}

#[cfg(not(loom))]
impl<M: super::Addressable> RawBroadcast<M> {
    /// The event subscribers wait on.
    pub fn new_data(&self) -> &EventCount {
        self.at.event(NEW_DATA)
    }
}

/// The one writing end of a broadcast ring, made only by claiming it
/// ([`RawBroadcast::publisher`]). Dropping it closes the ring (subscribers
/// drain, then learn it is closed) and gives the claim back.
#[derive(Debug)]
pub struct RawPublisher<M: Memory, J: Judge> {
    ring: RawBroadcast<M>,
    next: u64,
    judge: J,
    me: u64,
}

impl<M: Memory, J: Judge> RawPublisher<M, J> {
    /// The ring.
    pub fn ring(&self) -> &RawBroadcast<M> {
        &self.ring
    }

    /// Drops this end without closing it or giving its claim back, as a
    /// process killed while holding it leaves it (for tests and models: the
    /// claim is taken over once the judge finds the owner dead).
    pub fn abandon(mut self) {
        self.me = 0;
    }

    /// Messages published so far (by every publisher of this ring).
    pub fn published(&self) -> u64 {
        self.next
    }

    /// Publishes `msg` as the next message. Never waits: the oldest message
    /// is overwritten when the ring is full.
    ///
    /// # Errors
    /// [`MessageTooLarge`] (nothing is published).
    pub fn publish(&mut self, msg: &[u8]) -> Result<(), MessageTooLarge> {
        let ring = &self.ring;
        if msg.len() > ring.at.slots.slot_size {
            return Err(MessageTooLarge {
                len: msg.len(),
                max: ring.at.slots.slot_size,
            });
        }
        let pos = self.next;
        ring.seq(pos)
            .store(pos.wrapping_mul(2).wrapping_add(1), Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire fence in `read`: a reader that
        // sees any new payload word sees the odd sequence afterwards.
        fence(Site::BroadcastWriteFence, Ordering::Release);
        ring.len_word(pos)
            .store(msg.len() as u32, Ordering::Relaxed);
        let mut chunks = msg.chunks_exact(8);
        for (i, c) in (&mut chunks).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            ring.payload_word(pos, i)
                .store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            ring.payload_word(pos, msg.len() / 8)
                .store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        // SYNC POINT: pairs with the Acquire load of `seq` in `read`.
        ring.seq(pos)
            .store(pos.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        ring.at
            .word(NEXT)
            .store(pos.wrapping_add(1), Ordering::Release);
        ring.at.notify(NEW_DATA);
        self.next = pos.wrapping_add(1);
        Ok(())
    }
}

impl<M: Memory, J: Judge> Drop for RawPublisher<M, J> {
    fn drop(&mut self) {
        if still_mine(self.me, &self.judge) {
            self.ring.set_closed(true);
            release_owner(self.ring.at.word(PUBLISHER), self.me);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::raw::actors::Actors;
    use crate::raw::heap::HeapMemory;

    fn ring(cap: usize, slot: usize) -> RawBroadcast<HeapMemory> {
        let cfg = Config::new(cap, slot);
        RawBroadcast::init(HeapMemory::new(memory_size(&cfg).unwrap()), &cfg).unwrap()
    }

    #[test]
    fn reads_what_was_published_and_detects_overrun() {
        let r = ring(4, 13);
        let mut p = r.publisher(multiproc_core::liveness::OsJudge).unwrap();
        let mut buf = [0u8; 13];
        assert_eq!(r.read(0, &mut buf), Read::NotYet);
        for n in 0..6u8 {
            let msg: Vec<u8> = (0..(n * 2 + 1)).collect();
            p.publish(&msg).unwrap();
        }
        // 0 and 1 were overwritten by 4 and 5.
        assert_eq!(r.read(0, &mut buf), Read::Overrun(2));
        assert_eq!(r.read(2, &mut buf), Read::Message(5));
        assert_eq!(&buf[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(r.read(5, &mut buf), Read::Message(11));
        assert_eq!(r.read(6, &mut buf), Read::NotYet);
        assert_eq!(r.read(5, &mut buf[..3]), Read::TooLong(11));
        assert!(p.publish(&[0; 14]).is_err());
    }

    #[test]
    fn one_publisher_at_a_time_and_a_dead_one_is_replaced() {
        let r = ring(2, 8);
        let w = Actors::new();
        let mut p = r.publisher(w.actor(0)).unwrap();
        let held = Err(ClaimError::Held {
            owner: w.actor(0).id(),
        });
        assert_eq!(r.publisher(w.actor(0)).map(|_| ()), held);
        assert_eq!(r.publisher(w.actor(1)).map(|_| ()), held);
        p.publish(b"a").unwrap();
        assert!(!r.publisher_gone(&w.actor(1)));
        w.actor(0).die();
        std::mem::forget(p);
        assert!(r.publisher_gone(&w.actor(1)));
        let mut p = r.publisher(w.actor(1)).unwrap();
        assert_eq!(p.published(), 1);
        p.publish(b"b").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(1, &mut buf), Read::Message(1));
        assert_eq!(buf[0], b'b');
        drop(p);
        assert!(r.is_closed() && r.publisher_gone(&w.actor(2)));
        assert_eq!(r.publisher_id(), 0);
    }

    #[test]
    fn a_reader_racing_the_publisher_never_sees_a_torn_message() {
        let r = ring(2, 64);
        let mut p = r.publisher(multiproc_core::liveness::OsJudge).unwrap();
        let r = &r;
        std::thread::scope(|s| {
            s.spawn(move || {
                for n in 0..50_000u64 {
                    let b = (n as u8).wrapping_mul(31);
                    p.publish(&[b; 64]).unwrap();
                }
            });
            s.spawn(move || {
                let mut buf = [0u8; 64];
                let mut pos = 0;
                let (mut got, mut lost) = (0u64, 0u64);
                while pos < 50_000 {
                    match r.read(pos, &mut buf) {
                        Read::Message(64) => {
                            assert!(buf.iter().all(|&x| x == buf[0]), "torn read");
                            assert_eq!(buf[0], (pos as u8).wrapping_mul(31));
                            got += 1;
                            pos += 1;
                        }
                        Read::NotYet => std::hint::spin_loop(),
                        Read::Overrun(to) => {
                            lost += to - pos;
                            pos = to;
                        }
                        other => panic!("{other:?}"),
                    }
                }
                assert_eq!(got + lost, 50_000);
            });
        });
    }
}
