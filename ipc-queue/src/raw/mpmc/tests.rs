use super::*;
use crate::raw::actors::{Actor, Actors};
use crate::raw::heap::HeapMemory;
use multiproc_core::liveness::OsJudge;

fn ring(cap: usize, slot: usize) -> RawMpmc<HeapMemory> {
    let cfg = Config::new(cap, slot);
    RawMpmc::init(HeapMemory::new(memory_size(&cfg).unwrap()), &cfg).unwrap()
}

fn send<J: Judge>(r: &RawMpmc<HeapMemory>, msg: &[u8], judge: &J) -> Result<(), RawError> {
    let mut c = r.try_claim_send(msg.len(), &mut Watch::new(), judge)?;
    c.write(msg);
    c.commit();
    Ok(())
}

fn recv<J: Judge>(r: &RawMpmc<HeapMemory>, judge: &J) -> Result<Vec<u8>, RawError> {
    let c = r.try_claim_recv(usize::MAX, &mut Watch::new(), judge)?;
    Ok(c.bytes().to_vec())
}

/// A world with a live actor 0 and a dead actor 1, whose claims are left
/// in the ring as a killed process leaves them.
fn world() -> (Actor, u64) {
    let w = Actors::new();
    let dead = w.actor(1);
    dead.die();
    (w.actor(0), dead.id())
}

#[test]
fn fifo_wraps_and_reports_full_and_empty() {
    for cap in [1, 2, 4] {
        let r = ring(cap, 8);
        for round in 0..5u8 {
            for i in 0..cap as u8 {
                send(&r, &[round, i], &OsJudge).unwrap();
            }
            assert_eq!(send(&r, b"x", &OsJudge), Err(RawError::Full));
            assert_eq!(r.len(), cap);
            for i in 0..cap as u8 {
                assert_eq!(recv(&r, &OsJudge).unwrap(), vec![round, i]);
            }
            assert_eq!(recv(&r, &OsJudge), Err(RawError::Empty));
        }
    }
}

#[test]
fn too_large_and_too_long() {
    let r = ring(2, 4);
    assert!(matches!(
        send(&r, b"12345", &OsJudge),
        Err(RawError::TooLarge(_))
    ));
    send(&r, b"1234", &OsJudge).unwrap();
    assert!(matches!(
        r.try_claim_recv(2, &mut Watch::new(), &OsJudge),
        Err(RawError::TooLong { needed: 4 })
    ));
    let c = r.try_claim_recv(4, &mut Watch::new(), &OsJudge).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(c.read(&mut buf), 4);
    assert_eq!(&buf, b"1234");
}

#[test]
fn dropped_reservation_is_skipped_and_counted() {
    let r = ring(4, 4);
    drop(r.try_claim_send(3, &mut Watch::new(), &OsJudge).unwrap());
    send(&r, b"ok", &OsJudge).unwrap();
    assert_eq!(recv(&r, &OsJudge).unwrap(), b"ok");
    assert_eq!(r.lost(), 1);
    assert_eq!(recv(&r, &OsJudge), Err(RawError::Empty));
}

#[test]
fn a_dead_producers_claim_is_recovered() {
    let r = ring(4, 4);
    // The operating system's judge: pid 0 is never a live process.
    let dead = 7;
    send(&r, b"a", &OsJudge).unwrap();
    r.state(1).store(BUSY | dead, Ordering::Release);
    r.tail().store(2, Ordering::Release);
    send(&r, b"c", &OsJudge).unwrap();
    assert_eq!(recv(&r, &OsJudge).unwrap(), b"a");
    // The receiver spins on position 1, finds the claimer dead, skips it.
    assert_eq!(recv(&r, &OsJudge).unwrap(), b"c");
    assert_eq!(r.lost(), 1);
    // The same when the dead producer never stored the tail.
    r.state(3).store(BUSY | dead, Ordering::Release);
    send(&r, b"d", &OsJudge).unwrap();
    assert_eq!(recv(&r, &OsJudge).unwrap(), b"d");
    assert_eq!(r.lost(), 2);
}

/// Sends "a" and "b" into `r`, then leaves message 0 as a consumer that
/// died holding it leaves it: claimed, `head` already moved past.
fn died_holding_the_first(r: &RawMpmc<HeapMemory>, me: &Actor, dead: u64) {
    send(r, b"a", me).unwrap();
    send(r, b"b", me).unwrap();
    r.state(0).store(BUSY | READING | dead, Ordering::Release);
    r.head().store(1, Ordering::Release);
}

#[test]
fn a_dead_consumers_claim_is_recovered() {
    let r = ring(2, 4);
    let (me, dead) = world();
    died_holding_the_first(&r, &me, dead);
    assert_eq!(recv(&r, &me).unwrap(), b"b");
    // The producer of position 2 needs slot 0: it recovers the claim.
    send(&r, b"c", &me).unwrap();
    assert_eq!(recv(&r, &me).unwrap(), b"c");
    assert_eq!(r.lost(), 1);
}

#[test]
fn sweep_finishes_dead_claims_only() {
    let r = ring(4, 4);
    let (me, dead) = world();
    died_holding_the_first(&r, &me, dead);
    let live = r.try_claim_send(1, &mut Watch::new(), &me).unwrap();
    assert_eq!(r.sweep(&me), 1);
    assert_eq!(r.lost(), 1);
    assert_eq!(r.sweep(&me), 0);
    drop(live);
    assert_eq!(recv(&r, &me).unwrap(), b"b");
}

#[test]
fn a_live_claimer_makes_try_calls_busy() {
    let r = ring(2, 4);
    let w = Actors::new();
    let _claim = r.try_claim_send(1, &mut Watch::new(), &w.actor(0)).unwrap();
    // Its own claim, and another live actor's: the receiver gives up.
    for judge in [w.actor(0), w.actor(1)] {
        assert_eq!(
            r.try_claim_recv(8, &mut Watch::new(), &judge).err(),
            Some(RawError::Busy)
        );
    }
}

#[test]
fn attach_checks_the_control_block() {
    let r = ring(4, 8);
    let a = RawMpmc::attach(r.memory().clone()).unwrap();
    assert_eq!((a.capacity(), a.slot_size()), (4, 8));
    send(&r, b"x", &OsJudge).unwrap();
    assert_eq!(recv(&a, &OsJudge).unwrap(), b"x");
    r.at.word(std::mem::offset_of!(crate::raw::SlotWords, capacity))
        .store(3, Ordering::Relaxed);
    assert!(RawMpmc::attach(r.memory().clone()).is_err());
    r.at.word(std::mem::offset_of!(crate::raw::SlotWords, capacity))
        .store(1 << 20, Ordering::Relaxed);
    assert_eq!(
        RawMpmc::attach(r.memory().clone()).unwrap_err().what,
        "ring is larger than its memory"
    );
}

#[test]
fn threads_lose_and_duplicate_nothing() {
    let r = ring(8, 8);
    let r = &r;
    const PER: u64 = 20_000;
    let seen = std::sync::Mutex::new(vec![0u8; 4 * PER as usize]);
    std::thread::scope(|s| {
        for p in 0..4u64 {
            s.spawn(move || {
                for i in 0..PER {
                    let v = (p * PER + i).to_le_bytes();
                    loop {
                        match send(r, &v, &OsJudge) {
                            Ok(()) => break,
                            Err(RawError::Full | RawError::Busy) => std::thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            });
        }
        for _ in 0..2 {
            let seen = &seen;
            s.spawn(move || {
                let mut last = [None::<u64>; 4];
                let mut got = 0;
                while got < 2 * PER {
                    match recv(r, &OsJudge) {
                        Ok(b) => {
                            let v = u64::from_le_bytes(b.try_into().unwrap());
                            let (p, i) = ((v / PER) as usize, v % PER);
                            assert!(last[p].is_none_or(|l| l < i), "order");
                            last[p] = Some(i);
                            seen.lock().unwrap()[v as usize] += 1;
                            got += 1;
                        }
                        Err(RawError::Empty | RawError::Busy) => std::thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
        }
    });
    assert!(seen.lock().unwrap().iter().all(|&n| n == 1));
    assert_eq!(r.lost(), 0);
}
