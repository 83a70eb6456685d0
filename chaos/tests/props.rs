//! Property tests over the raw layers: segment header validation, ring index
//! arithmetic and framing (SPSC and MPMC rings on heap memory, against a
//! model, and with scribbled indices and record headers), and rkyv
//! validation of messages read from a ring after their bytes were corrupted.
//!
//! `PROPTEST_CASES=N` changes the number of cases (default 256; the cases
//! that create segments run a quarter of that).

use multiproc_core::header::HEADER_SIZE;
use multiproc_core::liveness::OsJudge;
use multiproc_core::{Kind, Segment, SegmentError};
use multiproc_queue::raw::heap::HeapMemory;
use multiproc_queue::raw::mpmc::{self, Config, RawError, RawMpmc, Watch};
use multiproc_queue::raw::spsc::{self as spsc_raw, RawRing, ReserveError};
use multiproc_queue::spsc::SpscRing;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicU8;
use std::time::Duration;

fn cases(div: u32) -> ProptestConfig {
    let base = ProptestConfig::default().cases;
    ProptestConfig::with_cases((base / div).max(8))
}

// ------------------------------------------------------------ segment header

const PROP_KIND: Kind = Kind::new("ipc-chaos/prop", 3, 0x1234_5678);

proptest! {
    #![proptest_config(cases(4))]

    /// Any bytes written over a live segment's header make `open` return the
    /// segment or a typed error, never panic or wait past its timeout; a
    /// changed magic, version, tag, layout hash, ABI, size or creator's pid
    /// namespace is refused.
    #[test]
    fn a_corrupted_header_is_a_typed_error(
        offset in 0usize..HEADER_SIZE,
        bytes in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let name = multiproc_core::name::unique_name("chaos-prop-hdr");
        let seg = Segment::builder(PROP_KIND).name(&name).size(256).create().unwrap();
        let path = multiproc_core::name::path_of(&name);
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let n = bytes.len().min(HEADER_SIZE - offset);
        let mut old = vec![0u8; n];
        file.read_exact_at(&mut old, offset as u64).unwrap();
        file.write_all_at(&bytes[..n], offset as u64).unwrap();
        let opened = Segment::builder(PROP_KIND)
            .name(&name)
            .size(256)
            .open_timeout(Duration::from_millis(20))
            .open();
        // Fields checked against the caller's kind and the real size: magic
        // 0..8, header version 8..12, type tag 16..24, layout hash 24..32,
        // type version 32..36, ABI 36..40, total size 40..48; and against
        // the opener's pid namespace: 72..88. The payload length (48..56)
        // may say anything between what the opener needs and the room the
        // file has.
        let checked = |lo: usize, hi: usize| (lo..hi).any(|i| {
            i >= offset && i < offset + n && bytes[i - offset] != old[i - offset]
        });
        let file_len = file.metadata().unwrap().len();
        let mut word = [0u8; 8];
        file.read_exact_at(&mut word, 48).unwrap();
        let payload = u64::from_le_bytes(word);
        let room = file_len - HEADER_SIZE as u64;
        let must_fail = checked(0, 12)
            || checked(16, 48)
            || checked(72, 88)
            || payload < 256
            || payload > room;
        match &opened {
            Ok(s) => {
                prop_assert!(!must_fail, "a changed checked field was accepted");
                prop_assert!(s.payload_len() as u64 <= room, "the payload reaches past the file");
            }
            Err(SegmentError::Header { .. }
                | SegmentError::NotReady { .. }
                | SegmentError::Poisoned { .. }
                | SegmentError::CreatorDied { .. }
                | SegmentError::ForeignPidNamespace { .. }
                | SegmentError::InvalidSize { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
        drop(opened);
        drop(seg);
        prop_assert!(!path.exists());
    }
}

// ------------------------------------------------------------ SPSC raw ring

#[derive(Clone, Debug)]
enum Op {
    Push(usize),
    Pop,
}

fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![(0..max_len).prop_map(Op::Push), Just(Op::Pop)],
        1..200,
    )
}

fn payload(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
}

fn spsc_ring(cap: usize) -> RawRing<HeapMemory> {
    let cfg = spsc_raw::Config::new(cap);
    RawRing::init(HeapMemory::new(spsc_raw::memory_size(&cfg).unwrap()), &cfg).unwrap()
}

proptest! {
    /// Record arithmetic: a record holds its header and message, 8-aligned,
    /// with less than 8 bytes of padding; a capacity made for a message
    /// holds its record and the free slot after it.
    #[test]
    fn spsc_record_arithmetic(len in 0usize..(1 << 20)) {
        let r = spsc_raw::record_len(len);
        prop_assert_eq!(r % spsc_raw::RECORD_ALIGN, 0);
        prop_assert!(r >= len + spsc_raw::HEADER_LEN && r < len + spsc_raw::HEADER_LEN + 8);
        let cap = spsc_raw::capacity_for_message(len).unwrap();
        prop_assert!(cap.is_power_of_two() && cap >= r + spsc_raw::SLACK && cap >= spsc_raw::MIN_CAPACITY);
        let size = |c| spsc_raw::memory_size(&spsc_raw::Config::new(c)).unwrap();
        prop_assert!(size(cap) >= cap);
        // A capacity that is not a power of two is rounded up to the next.
        prop_assert_eq!(size(cap + 1), size(2 * cap));
    }

    /// The SPSC ring against a queue model: a push succeeds exactly when
    /// its record fits beside the bytes in use (a wrapped record may need a
    /// pad record first), pops return the messages in order, intact.
    #[test]
    fn spsc_ring_matches_a_model(cap_log in 5u32..10, script in ops(300)) {
        let cap = 1usize << cap_log;
        let ring = spsc_ring(cap);
        let mut p = ring.producer(OsJudge).unwrap();
        let mut c = ring.consumer(OsJudge).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut buf = vec![0u8; cap];
        let mut n = 0u64;
        for op in script {
            match op {
                Op::Push(len) => {
                    let msg = payload(n, len);
                    match p.try_push(&msg) {
                        Ok(()) => {
                            model.push_back(msg);
                            n += 1;
                        }
                        Err(ReserveError::TooLarge) => {
                            prop_assert!(len > ring.max_message_len());
                        }
                        Err(ReserveError::Full) => {
                            // Full only with something queued, and only when
                            // the free room is short of the record plus at
                            // most a pad record shorter than it.
                            let rec = spsc_raw::record_len(len);
                            prop_assert!(cap - ring.used_bytes() < 2 * rec,
                                "full with {} of {cap} bytes used, record {rec}", ring.used_bytes());
                            if model.is_empty() {
                                // Only a pad record before the wrap is in the
                                // way: once the consumer skips it, it fits.
                                prop_assert_eq!(c.try_pop_into(&mut buf), Ok(None));
                                prop_assert_eq!(p.try_push(&msg), Ok(()), "full while empty");
                                model.push_back(msg);
                                n += 1;
                            }
                        }
                        Err(ReserveError::Corrupt(e)) => prop_assert!(false, "corrupt: {e}"),
                    }
                }
                Op::Pop => match c.try_pop_into(&mut buf) {
                    Ok(Some(len)) => {
                        let want = model.pop_front();
                        prop_assert_eq!(Some(&buf[..len]), want.as_deref());
                    }
                    Ok(None) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "pop: {e:?}"),
                },
            }
            let live: usize = model.iter().map(|m| spsc_raw::record_len(m.len())).sum();
            prop_assert!(ring.used_bytes() <= cap && ring.used_bytes() >= live);
        }
    }

    /// Scribbled indices and record headers: every call returns, and what a
    /// read hands out lies inside the data area.
    #[test]
    fn spsc_scribbled_ring_never_reads_outside(
        cap_log in 5u32..10,
        prefill in 0usize..20,
        writes in proptest::collection::vec((0usize..4, any::<u64>()), 1..8),
        script in ops(100),
    ) {
        let cap = 1usize << cap_log;
        let ring = spsc_ring(cap);
        let mut p = ring.producer(OsJudge).unwrap();
        for i in 0..prefill {
            let _ = p.try_push(&payload(i as u64, i * 3));
        }
        for (what, v) in writes {
            // Lines of the control block: 1 = tail, 2 = head; then record
            // headers at the start of the data area.
            let off = match what {
                0 => 128,
                1 => 256,
                2 => DATA,
                _ => (DATA + v as usize % cap) & !7,
            };
            // SAFETY: `off` is 8-aligned and inside the ring memory
            // (DATA + cap bytes); nothing else uses it on this thread.
            unsafe { ring.memory().as_ptr().add(off).cast::<u64>().write_volatile(v) };
        }
        let mut c = match ring.consumer(OsJudge) {
            Ok(c) => c,
            Err(_) => return Ok(()),
        };
        let mut buf = vec![0u8; cap];
        for op in script {
            match op {
                Op::Push(len) => {
                    let _ = p.try_push(&payload(1, len));
                }
                Op::Pop => {
                    if let Ok(Some(peeked)) = c.try_peek() {
                        prop_assert!(peeked.offset() + peeked.len() <= cap,
                            "peek at {} + {} escapes a {cap}-byte area", peeked.offset(), peeked.len());
                    }
                    if let Ok(Some(n)) = c.try_pop_into(&mut buf) {
                        prop_assert!(n <= cap);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------ MPMC raw ring

fn mpmc(cap: usize, slot: usize) -> (HeapMemory, RawMpmc<HeapMemory>) {
    let cfg = Config::new(cap, slot);
    let mem = HeapMemory::new(mpmc::memory_size(&cfg).unwrap());
    let ring = RawMpmc::init(mem.clone(), &cfg).unwrap();
    (mem, ring)
}

proptest! {
    /// The MPMC ring against a queue model, one process: sends succeed
    /// while fewer than `capacity` messages wait, receives return them in
    /// order, oversized messages are refused.
    #[test]
    fn mpmc_ring_matches_a_model(cap_log in 0u32..5, slot in 1usize..64, script in ops(80)) {
        let (mem, ring) = mpmc(1 << cap_log, slot);
        let cap = ring.capacity();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut n = 0u64;
        for op in script {
            let mut w = Watch::new();
            match op {
                Op::Push(len) => {
                    let msg = payload(n, len);
                    match ring.try_claim_send(len, &mut w, &OsJudge) {
                        Ok(mut claim) => {
                            prop_assert!(len <= ring.slot_size() && model.len() < cap);
                            claim.buf().copy_from_slice(&msg);
                            claim.commit();
                            model.push_back(msg);
                            n += 1;
                        }
                        Err(RawError::TooLarge(_)) => prop_assert!(len > ring.slot_size()),
                        Err(RawError::Full) => prop_assert_eq!(model.len(), cap),
                        Err(e) => prop_assert!(false, "send: {e:?}"),
                    }
                }
                Op::Pop => match ring.try_claim_recv(usize::MAX, &mut w, &OsJudge) {
                    Ok(claim) => {
                        let want = model.pop_front();
                        prop_assert_eq!(Some(claim.bytes()), want.as_deref());
                    }
                    Err(RawError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "recv: {e:?}"),
                },
            }
            prop_assert_eq!(ring.len(), model.len());
        }
        let _ = &mem;
    }
}

proptest! {
    // Each case may spin out a scribbled claim's budget: fewer cases.
    #![proptest_config(cases(4))]

    /// Scribbled head, tail, slot states and lengths: every call returns
    /// (a value or a typed error) and a message never exceeds its slot.
    #[test]
    fn mpmc_scribbled_ring_never_reads_outside(
        cap_log in 0u32..4,
        prefill in 0usize..10,
        writes in proptest::collection::vec((0usize..6, any::<u64>()), 1..8),
        script in ops(40),
    ) {
        let slot = 48;
        let (mem, ring) = mpmc(1 << cap_log, slot);
        let cap = ring.capacity();
        let stride = (16 + slot).div_ceil(16) * 16;
        for i in 0..prefill {
            if let Ok(mut c) = ring.try_claim_send(i % slot, &mut Watch::new(), &OsJudge) {
                c.buf().fill(i as u8);
                c.commit();
            }
        }
        for (what, v) in writes {
            let s = (v as usize >> 8) % cap;
            // head 128, tail 256, slot i at 384 + i * stride: state, len.
            let off = match what {
                0 => 128,
                1 => 256,
                2 => 384 + s * stride,
                3 => 384 + s * stride + 8,
                4 => 32, // flags and closed
                _ => 40, // the lost counter
            };
            // SAFETY: 8-aligned and inside the ring memory; nothing else
            // uses it on this thread.
            unsafe { mem.as_ptr().add(off).cast::<u64>().write_volatile(v) };
        }
        for op in script {
            let mut w = Watch::new();
            match op {
                Op::Push(len) => {
                    if let Ok(mut c) = ring.try_claim_send(len, &mut w, &OsJudge) {
                        prop_assert!(c.buf().len() <= slot);
                        c.commit();
                    }
                }
                Op::Pop => {
                    if let Ok(c) = ring.try_claim_recv(usize::MAX, &mut w, &OsJudge) {
                        prop_assert!(c.bytes().len() <= slot);
                    }
                }
            }
        }
        let _ = &mem;
    }
}

// ------------------------------------------------------------ rkyv messages

#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq, Clone)]
struct Order {
    id: u64,
    urgent: bool,
    symbol: String,
    legs: Vec<u32>,
    tag: Option<char>,
}

fn order() -> impl Strategy<Value = Order> {
    (
        any::<u64>(),
        any::<bool>(),
        "[a-zA-Z0-9]{0,40}",
        proptest::collection::vec(any::<u32>(), 0..20),
        any::<Option<char>>(),
    )
        .prop_map(|(id, urgent, symbol, legs, tag)| Order {
            id,
            urgent,
            symbol,
            legs,
            tag,
        })
}

/// Where the data area starts in an SPSC ring's payload (after its control
/// lines), and where the first message's archive starts in it (an 8-byte
/// record header, then padding to 16).
const DATA: usize = multiproc_queue::raw::spsc::DATA;
const FIRST_ARCHIVE: usize = 16;

proptest! {
    #![proptest_config(cases(4))]

    /// A message whose archive bytes were corrupted in the ring is handed
    /// out by the checked receive exactly when `bytecheck` accepts those
    /// bytes: a structurally invalid archive (a bool that is not 0 or 1, a
    /// string or vector pointing outside, an invalid char) is a typed
    /// `Decode` error, never a reference into garbage.
    #[test]
    fn rkyv_checked_receive_agrees_with_bytecheck(
        value in order(),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
    ) {
        let ring = SpscRing::builder().capacity(4096).create().unwrap();
        let mut tx = ring.archive_producer::<Order>().unwrap();
        let mut rx = ring.archive_consumer::<Order>().unwrap();
        tx.try_send(&value).unwrap();
        let seg = ring.segment();
        let header: &std::sync::atomic::AtomicU32 = seg.get(DATA as u64).unwrap();
        let record = header.load(std::sync::atomic::Ordering::Acquire) as usize;
        let archive_len = record - (FIRST_ARCHIVE - 8);
        prop_assume!(archive_len > 0);
        for (at, x) in &flips {
            let b: &AtomicU8 = seg.get((DATA + FIRST_ARCHIVE + at % archive_len) as u64).unwrap();
            b.fetch_xor(*x, std::sync::atomic::Ordering::Relaxed);
        }
        let mut copy = rkyv::util::AlignedVec::<16>::new();
        for i in 0..archive_len {
            let b: &AtomicU8 = seg.get((DATA + FIRST_ARCHIVE + i) as u64).unwrap();
            copy.push(b.load(std::sync::atomic::Ordering::Relaxed));
        }
        let reference = rkyv::access::<ArchivedOrder, rkyv::rancor::Error>(&copy).is_ok();
        let got = rx.try_recv();
        match &got {
            Ok(g) => {
                prop_assert!(reference, "the ring handed out an archive bytecheck refuses");
                // Reading every field of the checked archive is sound.
                let _ = (g.id, g.urgent, g.symbol.len(), g.legs.iter().count(), g.tag.as_ref().map(|c| c.to_native()));
            }
            Err(multiproc_queue::error::TryRecvError::Decode(_)) => {
                prop_assert!(!reference, "the ring refused an archive bytecheck accepts");
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        drop(got);
    }
}
