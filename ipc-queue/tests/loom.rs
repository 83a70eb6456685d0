//! Loom model checks of the three ring algorithms: `multiproc_queue::raw::{spsc,
//! mpmc, broadcast}` themselves, built on loom's atomics (`--cfg loom`
//! switches `src/primitive.rs`), in a [`ModelMemory`] of loom atomics and
//! cells: every interleaving of the model threads (up to a preemption bound)
//! under the C11 memory model loom simulates, with every payload access
//! checked for data races.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test
//! --release -p multiproc-queue --test loom`
//!
//! Each model also runs once with one ordering weakened
//! ([`weakened`]`(Site::X, ..)`) and must fail: that shows the model can see
//! the bug it is there to catch. Crashes are modelled for the MPMC ring: a
//! model thread dies at a chosen access of the ring's memory (its `n`-th),
//! as a `SIGKILL` would stop it, and the survivors must recover its claim
//! (`mpmc_*_dies_*`). `tests/mpmc_model.rs` runs the same recovery with more
//! threads, on real threads and heap memory.
#![cfg(loom)]

use loom::thread;
use multiproc_queue::raw::actors::{Actor, Actors};
use multiproc_queue::raw::model::{crash_after, survive, weakened, ModelMemory};
use multiproc_queue::raw::{broadcast, mpmc, spsc, Site};
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `weakened_model` (a model run with one ordering weakened) and
/// checks that it fails with one of the `symptoms`: loom's race detector
/// (`"Causality violation"`) or one of the model's own checks.
fn fails_with(weakened_model: impl FnOnce(), symptoms: &[&str]) {
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(weakened_model))
        .expect_err("the model passed with an ordering weakened");
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(
        symptoms.iter().any(|s| msg.contains(s)),
        "the weakened model failed for another reason: {msg}"
    );
}

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    // Every turn of a waiting loop is a branch point.
    b.max_branches = 100_000;
    b.check(f);
}

/// The payload of message `seq`: `len` bytes, all of them telling.
fn message(seq: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq * 31 + i + 1) as u8).collect()
}

// ---------------------------------------------------------------------------
// SPSC: a record publishes itself through its header; the producer releases
// a pad for a drained consumer.
// ---------------------------------------------------------------------------

/// Message lengths: on the 32-byte ring (room for 24 bytes of records) they
/// take every record size, need pads and wrap twice.
const SPSC_LENS: [usize; 5] = [8, 16, 0, 16, 8];

fn spsc_model() {
    model(2, || {
        let cfg = spsc::Config::new(spsc::MIN_CAPACITY);
        let mem = ModelMemory::new(&spsc::model_layout(&cfg).unwrap());
        let ring = spsc::RawRing::init(mem, &cfg).unwrap();
        let world = Actors::new();
        let mut p = ring.producer(world.actor(0)).unwrap();
        let mut c = ring.consumer(world.actor(1)).unwrap();
        let producer = thread::spawn(move || {
            for (seq, &len) in SPSC_LENS.iter().enumerate() {
                let msg = message(seq, len);
                loop {
                    match p.try_push(&msg) {
                        Ok(()) => break,
                        Err(spsc::ReserveError::Full) => thread::yield_now(),
                        Err(e) => panic!("push {seq}: {e:?}"),
                    }
                }
            }
            p.abandon();
        });
        let mut buf = [0u8; 16];
        for (seq, &len) in SPSC_LENS.iter().enumerate() {
            loop {
                match c.try_pop_into(&mut buf) {
                    Ok(Some(n)) => {
                        assert_eq!(n, len, "message {seq}: wrong length");
                        assert_eq!(
                            buf[..n],
                            message(seq, len)[..],
                            "message {seq}: wrong bytes"
                        );
                        break;
                    }
                    Ok(None) => thread::yield_now(),
                    Err(e) => panic!("pop {seq}: {e:?}"),
                }
            }
        }
        producer.join().unwrap();
        c.abandon();
    });
}

#[test]
fn spsc_records_publish_themselves() {
    spsc_model();
}

#[test]
fn spsc_relaxed_header_store_is_caught() {
    fails_with(
        || weakened(Site::SpscHeaderPublish, spsc_model),
        &["Causality violation"],
    );
}

#[test]
fn spsc_relaxed_head_store_is_caught() {
    fails_with(
        || weakened(Site::SpscHeadRelease, spsc_model),
        &["Causality violation"],
    );
}

#[test]
fn spsc_released_pad_without_fence_is_caught() {
    fails_with(
        || weakened(Site::SpscPadReleaseFence, spsc_model),
        &["unknown record kind"],
    );
}

#[test]
fn spsc_relaxed_head_resync_is_caught() {
    fails_with(
        || weakened(Site::SpscHeadResync, spsc_model),
        &["Causality violation", "wrong length", "wrong bytes"],
    );
}

// ---------------------------------------------------------------------------
// Broadcast: seqlock slots; a reader never returns a torn message.
// ---------------------------------------------------------------------------

const BC_MESSAGES: usize = 3;
const BC_SLOT: usize = 16;

fn bc_model(cap: usize) {
    model(2, move || {
        let cfg = broadcast::Config::new(cap, BC_SLOT);
        let mem = ModelMemory::new(&broadcast::model_layout(&cfg).unwrap());
        let ring = broadcast::RawBroadcast::init(mem, &cfg).unwrap();
        let world = Actors::new();
        let mut p = ring.publisher(world.actor(0)).unwrap();
        let publisher = thread::spawn(move || {
            for seq in 0..BC_MESSAGES {
                p.publish(&message(seq, BC_SLOT)).unwrap();
            }
            p.abandon();
        });
        let (mut cursor, mut received, mut lost) = (0u64, 0, 0);
        let mut buf = [0u8; BC_SLOT];
        while (cursor as usize) < BC_MESSAGES {
            match ring.read(cursor, &mut buf) {
                broadcast::Read::Message(n) => {
                    assert_eq!(buf[..n], message(cursor as usize, BC_SLOT)[..], "torn read");
                    received += 1;
                    cursor += 1;
                }
                broadcast::Read::NotYet => thread::yield_now(),
                broadcast::Read::Overrun(resume) => {
                    assert!(resume > cursor && resume as usize <= BC_MESSAGES);
                    lost += resume - cursor;
                    cursor = resume;
                }
                other => panic!("read {cursor}: {other:?}"),
            }
        }
        assert_eq!(received + lost as usize, BC_MESSAGES);
        publisher.join().unwrap();
    });
}

#[test]
fn broadcast_never_returns_a_torn_message() {
    bc_model(1);
}

#[test]
fn broadcast_two_slots() {
    bc_model(2);
}

#[test]
fn broadcast_without_the_reader_fence_is_caught() {
    fails_with(
        || weakened(Site::BroadcastReadFence, || bc_model(1)),
        &["torn read"],
    );
}

#[test]
fn broadcast_without_the_writer_fence_is_caught() {
    fails_with(
        || weakened(Site::BroadcastWriteFence, || bc_model(1)),
        &["torn read"],
    );
}

// ---------------------------------------------------------------------------
// MPMC: Vyukov slots with the claimer in the state word.
//
// Two threads that both wait in loops make loom's state space explode, so
// every wait here is bounded: a send or a receive gives up after `tries`
// calls (holding no claim; a `try_` call itself is bounded: it spins, yields
// and judges a claimer before it returns `Full`, `Empty` or `Busy`), and the
// main thread drains what is left once every thread has joined. The checks then cover what was sent:
// each message received at most once, each producer's in order per
// receiver, and every message sent either received or counted lost (lost
// only when a process died, at most one per death).
// ---------------------------------------------------------------------------

const MPMC_SLOT: usize = 8;

type Ring = mpmc::RawMpmc<ModelMemory>;

fn mpmc_ring(cap: usize) -> Ring {
    let cfg = mpmc::Config::new(cap, MPMC_SLOT);
    mpmc::RawMpmc::init(ModelMemory::new(&mpmc::model_layout(&cfg).unwrap()), &cfg).unwrap()
}

/// Producer `p`'s message `i`.
fn value(p: usize, i: u64) -> u64 {
    (p as u64 + 1) * 100 + i
}

/// One send of `v`, claim and commit, as actor `judge`; the claim is never
/// dropped on a crash (see `ManuallyDrop`): a killed process runs no drop.
fn send(ring: &Ring, v: u64, judge: &Actor) -> Result<(), mpmc::RawError> {
    let claim = ring.try_claim_send(8, &mut mpmc::Watch::new(), judge)?;
    let mut claim = ManuallyDrop::new(claim);
    claim.write(&v.to_le_bytes());
    ManuallyDrop::into_inner(claim).commit();
    Ok(())
}

/// One receive, as actor `judge`; a crash leaves the claim held.
fn recv(ring: &Ring, judge: &Actor) -> Result<u64, mpmc::RawError> {
    let claim = ManuallyDrop::new(ring.try_claim_recv(8, &mut mpmc::Watch::new(), judge)?);
    let mut buf = [0u8; 8];
    claim.read(&mut buf);
    drop(ManuallyDrop::into_inner(claim));
    Ok(u64::from_le_bytes(buf))
}

/// Sends `v`, trying at most `tries` times; whether it was sent.
fn try_send(ring: &Ring, v: u64, judge: &Actor, tries: usize) -> bool {
    for _ in 0..tries {
        match send(ring, v, judge) {
            Ok(()) => return true,
            Err(mpmc::RawError::Full | mpmc::RawError::Busy) => thread::yield_now(),
            Err(e) => panic!("send {v}: {e:?}"),
        }
    }
    false
}

/// Receives, trying at most `tries` times.
fn try_recv(ring: &Ring, judge: &Actor, tries: usize) -> Option<u64> {
    for _ in 0..tries {
        match recv(ring, judge) {
            Ok(v) => return Some(v),
            Err(mpmc::RawError::Empty | mpmc::RawError::Busy) => thread::yield_now(),
            Err(e) => panic!("recv: {e:?}"),
        }
    }
    None
}

/// Takes every message left, alone with the ring (every other thread has
/// joined or died), recovering what the dead left behind.
fn drain(ring: &Ring, judge: &Actor) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match recv(ring, judge) {
            Ok(v) => got.push(v),
            Err(mpmc::RawError::Empty) => break,
            // A dead claimer noticed only after the watch's budget: again.
            Err(mpmc::RawError::Busy) => {}
            Err(e) => panic!("drain: {e:?}"),
        }
    }
    // Claims no waiter needed yet: a consumer that died after moving `head`.
    ring.sweep(judge);
    assert_eq!(ring.len(), 0, "ring not drained");
    got
}

/// The properties of a run: `got` holds what each receiver took, in order;
/// `sent` what was sent (its send returned), `tried` what a process that
/// died was sending (it may have got anywhere).
fn check(sent: &[u64], tried: &[u64], got: &[Vec<u64>], lost: u64, kills: u64) {
    for g in got {
        for p in 1..=3 {
            let mine: Vec<u64> = g.iter().copied().filter(|v| v / 100 == p).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "out of order: {g:?}");
        }
    }
    let mut every = got.concat();
    every.sort_unstable();
    let n = every.len();
    every.dedup();
    assert_eq!(every.len(), n, "duplicated: {got:?}");
    assert!(
        every.iter().all(|v| sent.contains(v) || tried.contains(v)),
        "received what nobody sent: {got:?}"
    );
    let missing = sent.iter().filter(|v| !every.contains(v)).count() as u64;
    assert!(
        missing <= lost,
        "{missing} sent and neither received nor lost ({lost})"
    );
    assert!(lost <= kills, "lost {lost} with {kills} deaths");
}

/// `counts[p]` messages from producer `p`, `receivers` receiving threads
/// making `attempts` receives each, a ring of `cap` slots; each send and
/// receive gives up after `tries` calls.
fn mpmc_model(cap: usize, counts: &'static [u64], receivers: usize, attempts: usize, tries: usize) {
    model(1, move || {
        let ring = mpmc_ring(cap);
        let world = Actors::new();
        let producers: Vec<_> = (0..counts.len())
            .map(|p| {
                let (ring, me) = (ring.clone(), world.actor(p as u32));
                thread::spawn(move || {
                    (0..counts[p])
                        .map(|i| value(p, i))
                        .filter(|&v| try_send(&ring, v, &me, tries))
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let receivers: Vec<_> = (0..receivers)
            .map(|r| {
                let (ring, me) = (ring.clone(), world.actor(10 + r as u32));
                thread::spawn(move || {
                    (0..attempts)
                        .filter_map(|_| try_recv(&ring, &me, tries))
                        .collect()
                })
            })
            .collect();
        let sent: Vec<u64> = producers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let mut got: Vec<Vec<u64>> = receivers.into_iter().map(|h| h.join().unwrap()).collect();
        got.push(drain(&ring, &world.actor(20)));
        check(&sent, &[], &got, ring.lost(), 0);
        assert_eq!(got.concat().len(), sent.len(), "lost without a death");
    });
}

#[test]
fn mpmc_two_producers_one_receiver() {
    mpmc_model(1, &[2, 1], 1, 3, 1);
}

#[test]
fn mpmc_one_producer_two_receivers() {
    mpmc_model(1, &[3], 2, 1, 2);
}

#[test]
fn mpmc_relaxed_publish_is_caught() {
    fails_with(
        || weakened(Site::MpmcPublish, || mpmc_model(1, &[1], 1, 1, 1)),
        &["Causality violation", "received what nobody sent"],
    );
}

#[test]
fn mpmc_relaxed_release_is_caught() {
    fails_with(
        // The second send must come after the receiver freed the slot.
        || weakened(Site::MpmcRelease, || mpmc_model(1, &[2], 1, 1, 2)),
        &["Causality violation"],
    );
}

/// A producer dies at its `step`-th operation on the ring while sending,
/// with `receivers` receivers waiting on the slot it claimed; then the main
/// thread sends once more and drains. `None` for `step`: it does not die.
fn producer_dies(cap: usize, receivers: usize, step: Option<u32>, recovered: &'static AtomicUsize) {
    model(1, move || {
        let ring = mpmc_ring(cap);
        let world = Actors::new();
        let victim = {
            let (ring, me) = (ring.clone(), world.actor(0));
            thread::spawn(move || {
                if let Some(n) = step {
                    crash_after(n);
                }
                match survive(|| try_send(&ring, value(0, 0), &me, 1)) {
                    Some(sent) => sent,
                    None => {
                        me.die();
                        false
                    }
                }
            })
        };
        let receivers: Vec<_> = (0..receivers)
            .map(|r| {
                let (ring, me) = (ring.clone(), world.actor(10 + r as u32));
                thread::spawn(move || try_recv(&ring, &me, 1).into_iter().collect::<Vec<u64>>())
            })
            .collect();
        let mut sent = Vec::new();
        if victim.join().unwrap() {
            sent.push(value(0, 0));
        }
        let mut got: Vec<Vec<u64>> = receivers.into_iter().map(|h| h.join().unwrap()).collect();
        let me = world.actor(20);
        if try_send(&ring, value(1, 0), &me, 1) {
            sent.push(value(1, 0));
        }
        got.push(drain(&ring, &me));
        let kills = u64::from(world.any_dead());
        check(&sent, &[value(0, 0)], &got, ring.lost(), kills);
        // Executions that found a dead claim and finished it (counted
        // outside the model, for the test to see the recovery happen).
        recovered.fetch_add(usize::from(ring.lost() > 0), Ordering::Relaxed);
    });
}

/// A consumer dies at its `step`-th operation on the ring while receiving,
/// with a producer that needs its slot; then the main thread drains.
fn consumer_dies(cap: usize, step: Option<u32>, recovered: &'static AtomicUsize) {
    model(1, move || {
        let ring = mpmc_ring(cap);
        let world = Actors::new();
        let first = world.actor(30);
        assert!(try_send(&ring, value(0, 0), &first, 1));
        let victim = {
            let (ring, me) = (ring.clone(), world.actor(10));
            thread::spawn(move || {
                if let Some(n) = step {
                    crash_after(n);
                }
                match survive(|| try_recv(&ring, &me, 1)) {
                    Some(got) => got.into_iter().collect(),
                    None => {
                        me.die();
                        Vec::new()
                    }
                }
            })
        };
        let producer = {
            let (ring, me) = (ring.clone(), world.actor(1));
            thread::spawn(move || try_send(&ring, value(1, 0), &me, 1))
        };
        let mut got = vec![victim.join().unwrap()];
        let sent_second = producer.join().unwrap();
        got.push(drain(&ring, &world.actor(20)));
        let kills = u64::from(world.any_dead());
        let mut sent = vec![value(0, 0)];
        if sent_second {
            sent.push(value(1, 0));
        }
        check(&sent, &[], &got, ring.lost(), kills);
        recovered.fetch_add(usize::from(ring.lost() > 0), Ordering::Relaxed);
    });
}

/// Every operation a send or a receive makes on the model ring (a load, a
/// store, a compare-and-swap, a word of payload) is a step where the process
/// may die; these models kill it at each in turn. A send and a receive take
/// 8 steps when nothing is in the way.
const STEPS: u32 = 9;

#[test]
fn mpmc_a_producer_that_dies_at_any_step_is_recovered() {
    static RECOVERED: AtomicUsize = AtomicUsize::new(0);
    for cap in [1, 2] {
        producer_dies(cap, 1, None, &RECOVERED);
    }
    assert_eq!(RECOVERED.load(Ordering::Relaxed), 0, "lost without a death");
    for cap in [1, 2] {
        for step in 1..=STEPS {
            producer_dies(cap, 1, Some(step), &RECOVERED);
        }
    }
    assert!(
        RECOVERED.load(Ordering::Relaxed) > 0,
        "no death left a claim to recover"
    );
}

#[test]
fn mpmc_a_consumer_that_dies_at_any_step_is_recovered() {
    static RECOVERED: AtomicUsize = AtomicUsize::new(0);
    for cap in [1, 2] {
        consumer_dies(cap, None, &RECOVERED);
    }
    assert_eq!(RECOVERED.load(Ordering::Relaxed), 0, "lost without a death");
    for cap in [1, 2] {
        for step in 1..=STEPS {
            consumer_dies(cap, Some(step), &RECOVERED);
        }
    }
    assert!(
        RECOVERED.load(Ordering::Relaxed) > 0,
        "no death left a claim to recover"
    );
}

/// One receiver recovers the dead producer's slot, the other takes it: the
/// recoverer's release store is what shows the second one the message was
/// aborted.
#[test]
fn mpmc_recovery_without_its_release_is_caught() {
    static RECOVERED: AtomicUsize = AtomicUsize::new(0);
    let run = || {
        for step in 4..=6 {
            producer_dies(1, 2, Some(step), &RECOVERED);
        }
    };
    fails_with(
        || weakened(Site::MpmcRecovered, run),
        &["received what nobody sent", "Causality violation"],
    );
}
