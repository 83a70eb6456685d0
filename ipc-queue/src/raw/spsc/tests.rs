use super::*;
use crate::raw::actors::{Actor, Actors};
use crate::raw::heap::HeapMemory;
use crate::raw::ClaimError;

fn ring(capacity: usize) -> RawRing<HeapMemory> {
    let cfg = Config::new(capacity);
    RawRing::init(HeapMemory::new(memory_size(&cfg).unwrap()), &cfg).unwrap()
}

fn corrupt<T: std::fmt::Debug>(r: Result<T, ClaimError>) -> &'static str {
    match r {
        Err(ClaimError::Corrupt(c)) => c.what,
        other => panic!("expected a corrupt ring, got {other:?}"),
    }
}

#[test]
fn sizes_and_capacities() {
    assert_eq!(memory_size(&Config::new(16)), Ok(768 + 32));
    assert_eq!(memory_size(&Config::new(32)), Ok(768 + 32));
    assert_eq!(memory_size(&Config::new(48)), Ok(768 + 64));
    assert!(memory_size(&Config::new(MAX_CAPACITY + 1)).is_err());
    assert!(memory_size(&Config::new(64).with_fixed_len(57)).is_err());
    assert_eq!(capacity_for_message(0), Some(32));
    assert_eq!(capacity_for_message(8), Some(32));
    assert_eq!(capacity_for_message(16), Some(32));
    assert_eq!(capacity_for_message(17), Some(64));
    assert_eq!(record_len(0), 8);
    assert_eq!(record_len(1), 16);
    for len in [0, 1, 8, 16, 17, 100, 4096] {
        let r = ring(capacity_for_message(len).unwrap());
        assert!(r.max_message_len() >= len);
    }
}

#[test]
fn an_end_exists_once_until_it_is_dropped_or_its_owner_dies() {
    let r = ring(64);
    let world = Actors::new();
    let p = r.producer(world.actor(0)).unwrap();
    let owner = world.actor(0).id();
    for judge in [world.actor(0), world.actor(1)] {
        assert_eq!(r.producer(judge).err(), Some(ClaimError::Held { owner }));
    }
    assert_eq!(r.owner(Side::Producer), owner);
    drop(p);
    assert!(r.is_closed(Side::Producer));
    assert_eq!(r.owner(Side::Producer), 0);
    let p = r.producer(world.actor(1)).unwrap();
    assert!(!r.is_closed(Side::Producer));
    // The owner dies holding it (a dead process runs no drop): the next
    // claimer takes it over.
    world.actor(1).die();
    std::mem::forget(p);
    let _p = r.producer(world.actor(2)).unwrap();
    assert_eq!(r.attach_count(Side::Producer), 3);
    assert_eq!(r.attach_count(Side::Consumer), 0);
}

/// A judge whose identity changes, as a process's does for its forked
/// child's copy of an end.
struct Forking(std::rc::Rc<std::cell::Cell<u64>>);

impl Judge for Forking {
    fn me(&self) -> Result<u64, multiproc_core::IdentityError> {
        Ok(self.0.get())
    }
    fn is_dead(&self, _: u64) -> bool {
        false
    }
    fn thread_is_dead(&self, _: u64, _: u32) -> bool {
        false
    }
}

#[test]
fn a_copy_in_another_process_releases_nothing() {
    let r = ring(64);
    let identity = std::rc::Rc::new(std::cell::Cell::new(41 << 32 | 1));
    let c = r.consumer(Forking(identity.clone())).unwrap();
    // The end drops in a forked child: another identity.
    identity.set(42 << 32 | 1);
    drop(c);
    assert!(!r.is_closed(Side::Consumer));
    assert_eq!(r.owner(Side::Consumer), 41 << 32 | 1);
    // In the process that claimed it, dropping closes and releases.
    identity.set(41 << 32 | 1);
    let claim = Claim {
        ring: r.clone(),
        side: Side::Consumer,
        judge: Forking(identity),
        me: 41 << 32 | 1,
    };
    let c = RawConsumer::start(claim).unwrap();
    drop(c);
    assert!(r.is_closed(Side::Consumer));
    assert_eq!(r.owner(Side::Consumer), 0);
}

#[test]
fn push_peek_wrap_and_pad() {
    let r = ring(64);
    let world = Actors::new();
    let mut p = r.producer(world.actor(0)).unwrap();
    let mut c = r.consumer(world.actor(1)).unwrap();
    assert_eq!(r.max_message_len(), 48);
    assert_eq!(p.try_push(&[0; 49]), Err(ReserveError::TooLarge));
    for round in 0..50u8 {
        let len = (round as usize * 7) % 40;
        let msg: Vec<u8> = (0..len as u8).map(|b| b ^ round).collect();
        if p.try_push(&msg) == Err(ReserveError::Full) {
            // Only a pad stands in the way.
            assert!(p.take_pad_published());
            assert_eq!(c.try_peek(), Ok(None));
            p.try_push(&msg).unwrap();
        }
        let mut buf = [0u8; 64];
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(len)));
        assert_eq!(&buf[..len], &msg[..]);
        assert_eq!(c.try_pop_into(&mut buf), Ok(None));
    }
    // The largest message needs the whole area but the free slot: the
    // producer pads to the end, and once the consumer has skipped the
    // pad it fits.
    if p.try_push(&[1; 48]) == Err(ReserveError::Full) {
        assert!(p.take_pad_published());
        assert_eq!(c.try_peek(), Ok(None));
        assert!(c.take_released_pad());
        p.try_push(&[1; 48]).unwrap();
    }
    assert_eq!(p.try_push(&[]), Err(ReserveError::Full));
    let mut buf = [0u8; 48];
    assert_eq!(c.try_pop_into(&mut buf[..10]), Err(Ok(48)));
    assert_eq!(c.try_pop_into(&mut buf), Ok(Some(48)));
    assert_eq!(buf, [1; 48]);
}

#[test]
fn a_record_is_visible_before_tail_is_stored() {
    let r = ring(64);
    let world = Actors::new();
    let mut p = r.producer(world.actor(0)).unwrap();
    let mut c = r.consumer(world.actor(1)).unwrap();
    let res = p.try_reserve(3).unwrap();
    // SAFETY: just reserved, for 3 bytes.
    unsafe { p.write(res, b"abc") };
    assert_eq!(c.try_peek(), Ok(None));
    p.commit(res, 3);
    // Not published: `tail` still says empty, the header says otherwise.
    assert_eq!(r.used_bytes(), 0);
    let mut buf = [0u8; 8];
    assert_eq!(c.try_pop_into(&mut buf), Ok(Some(3)));
    // The consumer is now ahead of the stored `tail`.
    assert_eq!(r.used_bytes(), 0);
    p.publish();
    assert_eq!(r.used_bytes(), 0);
}

/// Commits `msg` without storing `tail`, as a producer that died right
/// after publishing the record would leave it.
fn commit_unpublished(p: &mut RawProducer<HeapMemory, Actor>, msg: &[u8]) {
    let res = p.try_reserve(msg.len()).unwrap();
    // SAFETY: just reserved, for `msg.len()` bytes.
    unsafe { p.write(res, msg) };
    p.commit(res, msg.len());
}

#[test]
fn a_new_producer_continues_after_unpublished_records() {
    let r = ring(128);
    let world = Actors::new();
    let mut p = r.producer(world.actor(0)).unwrap();
    let mut c = r.consumer(world.actor(9)).unwrap();
    p.try_push(b"one").unwrap();
    commit_unpublished(&mut p, b"two");
    commit_unpublished(&mut p, b"three");
    world.actor(0).die();
    std::mem::forget(p);
    let mut p = r.producer(world.actor(1)).unwrap();
    assert_eq!(r.used_bytes(), 48);
    p.try_push(b"four").unwrap();
    let mut buf = [0u8; 8];
    for want in [&b"one"[..], b"two", b"three", b"four"] {
        let n = c.try_pop_into(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], want);
    }
    // The consumer read records whose `tail` was never stored: the next
    // producer starts from `head`.
    commit_unpublished(&mut p, b"five");
    assert_eq!(c.try_pop_into(&mut buf), Ok(Some(4)));
    world.actor(1).die();
    std::mem::forget(p);
    let mut p = r.producer(world.actor(2)).unwrap();
    p.try_push(b"six").unwrap();
    assert_eq!(c.try_pop_into(&mut buf), Ok(Some(3)));
    assert_eq!(&buf[..3], b"six");
    assert_eq!(c.try_pop_into(&mut buf), Ok(None));
}

#[test]
fn a_reservation_committed_out_of_turn_does_not_panic() {
    let r = ring(64);
    let world = Actors::new();
    let mut p = r.producer(world.actor(0)).unwrap();
    let mut c = r.consumer(world.actor(1)).unwrap();
    let mut buf = [0u8; 48];
    // A reservation near the end of the area, kept past a wrap.
    p.try_push(&[1; 24]).unwrap();
    let stale = p.try_reserve(16).unwrap();
    p.commit(stale, 16);
    assert_eq!(c.try_pop_into(&mut buf), Ok(Some(24)));
    assert_eq!(c.try_pop_into(&mut buf), Ok(Some(16)));
    p.publish();
    for _ in 0..3 {
        let _ = p.try_push(&[2; 8]);
        let _ = c.try_pop_into(&mut buf);
    }
    // Committed again, a lap later: the ring's state is wrong from here
    // on, but every call returns.
    p.commit(stale, 16);
    let _ = p.try_reserve(8);
    let _ = p.free_bytes();
    let _ = c.try_pop_into(&mut buf);
}

#[test]
fn corrupt_records_and_indices_are_errors() {
    let r = ring(64);
    let world = Actors::new();
    let mut p = r.producer(world.actor(0)).unwrap();
    let mut c = r.consumer(world.actor(1)).unwrap();
    p.try_push(b"hello").unwrap();
    let slot = r.header_at(0);
    let good = slot.load(Ordering::Relaxed);
    let cases = [
        (header_word(49, KIND_MSG), "message length exceeds the ring"),
        (header_word(5, 77), "unknown record kind"),
        (
            header_word(16, KIND_PAD),
            "pad does not reach the end of the ring",
        ),
    ];
    for (word, what) in cases {
        slot.store(word, Ordering::Relaxed);
        assert_eq!(c.try_peek().unwrap_err().what, what);
    }
    slot.store(good, Ordering::Relaxed);
    let mut buf = [0u8; 8];
    assert_eq!(c.try_pop_into(&mut buf), Ok(Some(5)));
    for _ in 0..2 {
        p.try_push(b"x").unwrap();
        assert_eq!(c.try_pop_into(&mut buf), Ok(Some(1)));
    }
    // The consumer is at offset 48: a 16-byte message would cross the end.
    r.header_at(48)
        .store(header_word(16, KIND_MSG), Ordering::Relaxed);
    assert_eq!(
        c.try_peek().unwrap_err().what,
        "message crosses the end of the ring"
    );
    r.header_at(48).store(0, Ordering::Relaxed);
    drop((p, c));
    // Indices: a misaligned head, and a tail far from head. A failed
    // attach gives its claim back.
    r.head().store(3, Ordering::Release);
    assert_eq!(
        corrupt(r.consumer(world.actor(1))),
        "index is not record-aligned"
    );
    assert_eq!(r.owner(Side::Consumer), 0);
    r.head().store(48, Ordering::Release);
    r.tail().store(1 << 40, Ordering::Release);
    assert_eq!(
        corrupt(r.producer(world.actor(0))),
        "tail and head are further apart than the capacity"
    );
    // Records claimed all the way round the ring.
    r.tail().store(48, Ordering::Release);
    for off in [48, 0, 16, 32] {
        r.header_at(off)
            .store(header_word(8, KIND_MSG), Ordering::Relaxed);
    }
    assert_eq!(
        corrupt(r.producer(world.actor(0))),
        "committed records leave no free slot"
    );
    assert_eq!(r.owner(Side::Producer), 0);
}

#[test]
fn attach_checks_the_control_block() {
    let r = ring(64);
    let again = RawRing::attach(r.memory().clone()).unwrap();
    assert_eq!(again.capacity(), 64);
    r.word(CAPACITY).store(48, Ordering::Relaxed);
    assert_eq!(
        RawRing::attach(r.memory().clone()).unwrap_err().what,
        "capacity is not a power of two in range"
    );
    r.word(CAPACITY).store(1 << 20, Ordering::Relaxed);
    assert_eq!(
        RawRing::attach(r.memory().clone()).unwrap_err().what,
        "capacity is larger than the memory"
    );
    r.word(MAGIC).store(7, Ordering::Relaxed);
    assert_eq!(
        RawRing::attach(r.memory().clone()).unwrap_err().what,
        "bad control-block magic"
    );
}

#[test]
fn counters_count_each_end_and_survive_a_takeover() {
    use multiproc_core::liveness::OsJudge;
    let r = ring(64);
    let mut tx = r.producer(OsJudge).unwrap();
    let mut rx = r.consumer(OsJudge).unwrap();
    tx.try_push(b"abc").unwrap();
    tx.try_push(b"defgh").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_pop_into(&mut buf), Ok(Some(3)));
    let sent = r.counters(Side::Producer);
    assert_eq!((sent.messages, sent.bytes), (2, 8));
    let got = r.counters(Side::Consumer);
    assert_eq!((got.messages, got.bytes, got.full), (1, 3, 0));
    // Fill the ring: the refused reservations are counted.
    while tx.try_push(&[7; 20]).is_ok() {}
    assert!(r.counters(Side::Producer).full >= 1);
    drop(tx);
    let before = r.counters(Side::Producer).messages;
    let mut tx = r.producer(OsJudge).unwrap();
    while rx.try_pop_into(&mut buf).unwrap().is_some() {}
    tx.try_push(b"x").unwrap();
    assert_eq!(r.counters(Side::Producer).messages, before + 1);
}
