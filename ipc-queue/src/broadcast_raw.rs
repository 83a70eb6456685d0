//! The broadcast ring algorithm over caller-provided memory: one publisher,
//! any number of subscribers, seqlock slots.
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

use crate::error::{Corrupt, MessageTooLarge};
use ipc_core::wait::EventCount;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// `b"IPCBCST1"` as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCBCST1");
/// The largest capacity accepted (slots).
pub const MAX_CAPACITY: usize = 1 << 30;
/// The largest slot size accepted (bytes).
pub const MAX_SLOT_SIZE: usize = 1 << 30;
const SLOT_HEADER: usize = 16;
const CONTROL_SIZE: usize = 128;
const NEXT_OFFSET: usize = CONTROL_SIZE;
const SLOTS_OFFSET: usize = CONTROL_SIZE + 128;

#[repr(C, align(128))]
struct Control {
    magic: AtomicU64,
    capacity: AtomicU64,
    slot_size: AtomicU64,
    stride: AtomicU64,
    /// Packed [`ipc_core::ProcessId`] of the publisher; 0 = none.
    publisher: AtomicU64,
    closed: AtomicU32,
    reserved: AtomicU32,
    new_data: EventCount,
}
ipc_core::assert_layout!(Control, size = 128, align = 128);

#[repr(C, align(128))]
struct Line {
    pos: AtomicU64,
}
ipc_core::assert_layout!(Line, size = 128, align = 128);

#[repr(C)]
struct SlotHeader {
    seq: AtomicU64,
    len: AtomicU32,
    reserved: AtomicU32,
}
ipc_core::assert_layout!(SlotHeader, size = SLOT_HEADER, align = 8);

fn stride_of(slot_size: usize) -> usize {
    (SLOT_HEADER + slot_size).div_ceil(16) * 16
}

fn check(capacity: usize, slot_size: usize) -> Result<usize, &'static str> {
    if capacity == 0 {
        return Err("capacity is zero: a ring holds 1 to 2^30 slots");
    }
    if capacity > MAX_CAPACITY {
        return Err("capacity is larger than 2^30 slots, the largest a ring holds");
    }
    if !capacity.is_power_of_two() {
        return Err("capacity must be a power of two");
    }
    if slot_size > MAX_SLOT_SIZE {
        return Err("slot size is larger than 2^30 bytes");
    }
    stride_of(slot_size)
        .checked_mul(capacity)
        .and_then(|s| s.checked_add(SLOTS_OFFSET))
        .filter(|&s| s <= isize::MAX as usize / 2)
        .ok_or("ring is larger than the address space allows")
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

/// A broadcast ring in caller memory.
#[derive(Debug)]
pub struct RawBroadcast {
    base: NonNull<u8>,
    cap: u64,
    mask: u64,
    slot_size: usize,
    stride: usize,
}

// SAFETY: the memory is shared by design and every access goes through
// atomics (payload words included).
unsafe impl Send for RawBroadcast {}
// SAFETY: as above.
unsafe impl Sync for RawBroadcast {}

impl RawBroadcast {
    /// Bytes of memory a ring of `capacity` slots (a power of two) of
    /// `slot_size` bytes needs.
    ///
    /// # Errors
    /// What is wrong with the configuration.
    pub fn memory_size(capacity: usize, slot_size: usize) -> Result<usize, &'static str> {
        check(capacity, slot_size)
    }

    /// Initializes a ring in `len` bytes at `ptr`.
    ///
    /// # Errors
    /// Invalid configuration, too little memory, or a misaligned pointer.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes while any ring
    /// attached to it is used, and unused by others during initialization.
    pub unsafe fn init_in(
        ptr: NonNull<u8>,
        len: usize,
        capacity: usize,
        slot_size: usize,
    ) -> Result<RawBroadcast, &'static str> {
        let need = check(capacity, slot_size)?;
        if len < need {
            return Err("memory is smaller than the ring needs");
        }
        if !(ptr.as_ptr() as usize).is_multiple_of(128) {
            return Err("ring memory must be 128-byte aligned");
        }
        // SAFETY: exclusive access to `need <= len` bytes (caller's promise).
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, need) };
        let ring = RawBroadcast {
            base: ptr,
            cap: capacity as u64,
            mask: capacity as u64 - 1,
            slot_size,
            stride: stride_of(slot_size),
        };
        let c = ring.control();
        c.capacity.store(capacity as u64, Ordering::Relaxed);
        c.slot_size.store(slot_size as u64, Ordering::Relaxed);
        c.stride.store(ring.stride as u64, Ordering::Relaxed);
        c.magic.store(MAGIC, Ordering::Release);
        Ok(ring)
    }

    /// Attaches to an initialized ring after checking its control block.
    ///
    /// # Errors
    /// [`Corrupt`] naming the bad field.
    ///
    /// # Safety
    /// As [`RawBroadcast::init_in`], minus the exclusivity.
    pub unsafe fn attach(ptr: NonNull<u8>, len: usize) -> Result<RawBroadcast, Corrupt> {
        if !(ptr.as_ptr() as usize).is_multiple_of(128) || len < SLOTS_OFFSET {
            return Err(Corrupt::new(
                "ring memory is misaligned or too small",
                len as u64,
            ));
        }
        // SAFETY: at least CONTROL_SIZE bytes, 128-aligned; atomics only.
        let c = unsafe { &*(ptr.as_ptr() as *const Control) };
        let magic = c.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(Corrupt::new("bad ring magic", magic));
        }
        let cap = c.capacity.load(Ordering::Relaxed);
        let slot = c.slot_size.load(Ordering::Relaxed);
        let stride = c.stride.load(Ordering::Relaxed);
        let capacity = usize::try_from(cap).unwrap_or(0);
        let slot_size = usize::try_from(slot).unwrap_or(usize::MAX);
        let need = check(capacity, slot_size).map_err(|w| Corrupt::new(w, cap))?;
        if stride != stride_of(slot_size) as u64 {
            return Err(Corrupt::new(
                "slot stride does not match the slot size",
                stride,
            ));
        }
        if need > len {
            return Err(Corrupt::new("ring is larger than its memory", need as u64));
        }
        Ok(RawBroadcast {
            base: ptr,
            cap,
            mask: cap - 1,
            slot_size,
            stride: stride as usize,
        })
    }

    fn control(&self) -> &Control {
        // SAFETY: checked at attach: in bounds, aligned, atomics only.
        unsafe { &*(self.base.as_ptr() as *const Control) }
    }

    fn next(&self) -> &AtomicU64 {
        // SAFETY: `NEXT_OFFSET + 128 <= SLOTS_OFFSET <= len`, 128-aligned.
        unsafe { &(*(self.base.as_ptr().add(NEXT_OFFSET) as *const Line)).pos }
    }

    fn slot(&self, pos: u64) -> &SlotHeader {
        let idx = (pos & self.mask) as usize;
        // SAFETY: `idx < cap` and `SLOTS_OFFSET + cap * stride <= len` (checked
        // at attach with values kept here); 16-aligned; atomics only.
        unsafe { &*(self.base.as_ptr().add(SLOTS_OFFSET + idx * self.stride) as *const SlotHeader) }
    }

    /// The payload of slot `pos` as atomic words: `ceil(slot_size / 8)` of
    /// them (the stride leaves room for the rounding).
    fn words(&self, pos: u64) -> &[AtomicU64] {
        let header = self.slot(pos) as *const SlotHeader as *const u8;
        // SAFETY: the payload follows the 16-byte header; the stride is
        // `16 + slot_size` rounded up to 16, so `ceil(slot_size / 8)` words
        // fit; the address is 16-aligned and `AtomicU64` is valid for any
        // bit pattern.
        unsafe {
            std::slice::from_raw_parts(
                header.add(SLOT_HEADER) as *const AtomicU64,
                self.slot_size.div_ceil(8),
            )
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// The position the next message will get (= messages published so far).
    pub fn written(&self) -> u64 {
        self.next().load(Ordering::Acquire)
    }

    /// The packed id of the publisher (0: none).
    pub fn publisher(&self) -> &AtomicU64 {
        &self.control().publisher
    }

    /// The event subscribers wait on.
    pub fn new_data(&self) -> &EventCount {
        &self.control().new_data
    }

    /// Marks the ring closed (or reopened) and wakes subscribers.
    pub fn set_closed(&self, closed: bool) {
        self.control()
            .closed
            .store(u32::from(closed), Ordering::Release);
        self.control().new_data.notify_all();
    }

    /// Whether the ring is closed.
    pub fn is_closed(&self) -> bool {
        self.control().closed.load(Ordering::Acquire) != 0
    }

    /// Publishes `msg` as message `pos`. Only the one publisher calls this,
    /// with `pos` = [`RawBroadcast::written`] and increasing by one.
    ///
    /// # Errors
    /// [`MessageTooLarge`].
    pub fn publish(&self, pos: u64, msg: &[u8]) -> Result<(), MessageTooLarge> {
        if msg.len() > self.slot_size {
            return Err(MessageTooLarge {
                len: msg.len(),
                max: self.slot_size,
            });
        }
        let slot = self.slot(pos);
        slot.seq
            .store(pos.wrapping_mul(2).wrapping_add(1), Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire fence in `read`: a reader that
        // sees any new payload word sees the odd sequence afterwards.
        fence(Ordering::Release);
        slot.len.store(msg.len() as u32, Ordering::Relaxed);
        let words = self.words(pos);
        let mut chunks = msg.chunks_exact(8);
        for (w, c) in words.iter().zip(&mut chunks) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            words[msg.len() / 8].store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        // SYNC POINT: pairs with the Acquire load of `seq` in `read`.
        slot.seq
            .store(pos.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        self.next().store(pos.wrapping_add(1), Ordering::Release);
        self.control().new_data.notify_all();
        Ok(())
    }

    /// Copies message `pos` into `buf`, if it is there and complete.
    pub fn read(&self, pos: u64, buf: &mut [u8]) -> Read {
        let slot = self.slot(pos);
        let want = pos.wrapping_mul(2).wrapping_add(2);
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 != want {
            return self.not_there(pos, s1);
        }
        let len = slot.len.load(Ordering::Relaxed) as usize;
        let n = len.min(self.slot_size);
        if n > buf.len() {
            // Only trust the length if the message is still the same one.
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) != want {
                return self.overrun(pos);
            }
            return Read::TooLong(n);
        }
        let words = self.words(pos);
        let mut chunks = buf[..n].chunks_exact_mut(8);
        for (w, c) in words.iter().zip(&mut chunks) {
            c.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let b = words[n / 8].load(Ordering::Relaxed).to_ne_bytes();
            let k = rest.len();
            rest.copy_from_slice(&b[..k]);
        }
        // SYNC POINT: pairs with the Release fence in `publish`.
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != want {
            return self.overrun(pos);
        }
        if len > self.slot_size {
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
        let oldest = next.saturating_sub(self.cap);
        Read::Overrun(oldest.max(pos.wrapping_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(cap: usize, slot: usize) -> (Vec<u128>, RawBroadcast) {
        let size = RawBroadcast::memory_size(cap, slot).unwrap();
        let mut v = vec![0u128; size / 16 + 9];
        let p = v.as_mut_ptr() as *mut u8;
        let off = p.align_offset(128);
        // SAFETY: 9 spare u128s cover the alignment offset; the Vec's buffer
        // does not move when the Vec is returned.
        let p = NonNull::new(unsafe { p.add(off) }).unwrap();
        // SAFETY: as above; the buffer outlives the ring in every test.
        let r = unsafe { RawBroadcast::init_in(p, size, cap, slot) }.unwrap();
        (v, r)
    }

    #[test]
    fn reads_what_was_published_and_detects_overrun() {
        let (_m, r) = ring(4, 13);
        let mut buf = [0u8; 13];
        assert_eq!(r.read(0, &mut buf), Read::NotYet);
        for p in 0..6u64 {
            let msg: Vec<u8> = (0..(p as u8 * 2 + 1)).collect();
            r.publish(p, &msg).unwrap();
        }
        // 0 and 1 were overwritten by 4 and 5.
        assert_eq!(r.read(0, &mut buf), Read::Overrun(2));
        assert_eq!(r.read(2, &mut buf), Read::Message(5));
        assert_eq!(&buf[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(r.read(5, &mut buf), Read::Message(11));
        assert_eq!(r.read(6, &mut buf), Read::NotYet);
        assert_eq!(r.read(5, &mut buf[..3]), Read::TooLong(11));
        assert!(r.publish(6, &[0; 14]).is_err());
    }

    #[test]
    fn a_reader_racing_the_publisher_never_sees_a_torn_message() {
        let (_m, r) = ring(2, 64);
        let r = &r;
        std::thread::scope(|s| {
            s.spawn(move || {
                for p in 0..50_000u64 {
                    let b = (p as u8).wrapping_mul(31);
                    r.publish(p, &[b; 64]).unwrap();
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
