//! Hostile peers: a process writes random bytes over the control words,
//! indices and lengths of a live segment (its header, the ring's control
//! block and slot headers, the lock word) while others use it.
//!
//! Every call must return a value or a typed error within its timeout (plus
//! a grace for a loaded machine); no user may crash (a panic, or any signal
//! but the runner's SIGKILL). Where the control words sit, from the start of
//! the segment file (the 128-byte `SegmentHeader` comes first):
//!
//! | object | words the scribbler aims at (payload offsets) |
//! |---|---|
//! | SPSC ring | six 128-byte lines: config and owners, `tail`, `head`, two event counts, holders (0..768), then record headers |
//! | MPMC ring | control (magic, capacity, slot size, stride, flags, closed, lost, event counts) 0..128, `head` 128, `tail` 256, then 16-byte slot headers (state, len) |
//! | broadcast | control (magic, capacity, slot size, stride, publisher, closed) 0..128, `next` 128, then 16-byte slot headers (seq, len) |
//! | mutex | lock word, owner tid, owner process, tag, count (0..24), layout hash (24..32), value |

use crate::child::{ChildArgs, ChildResult, Role};
use crate::ledger::{field, Ledger};
use crate::rng::Rng;
use crate::runner::Round;
use crate::scenario::locks::Guarded;
use multiproc_core::header::HEADER_SIZE;
use multiproc_queue::broadcast::{self, BroadcastRing, Start, Subscriber};
use multiproc_queue::error::AttachError;
use multiproc_queue::mpmc::{self, Mpmc};
use multiproc_queue::spsc::SpscRing;
use multiproc_sync::{LockTimeoutError, Mutex};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// The timeout of every call a user makes.
const CALL: Duration = Duration::from_millis(20);
/// What a call may take beyond its timeout on a loaded 2-core machine
/// before it counts as overlong.
const GRACE: Duration = Duration::from_secs(2);
const MSG: usize = 64;

/// Bytes of payload holding control words, per object (see the table).
fn control_len(role: Role) -> u64 {
    match role {
        Role::HostileSpsc => multiproc_queue::raw::spsc::DATA as u64 + 256,
        Role::HostileMpmc => 384 + 16 * 8,
        Role::HostileBroadcast => 256 + 16 * 8,
        _ => 64,
    }
}

/// Writes random bytes over the segment's file until told to stop.
pub(crate) fn scribbler(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let path = multiproc_core::name::path_of(&a.target);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let control = HEADER_SIZE as u64 + a.param;
    let mut rng = Rng::new(a.seed);
    l.set(a.slot, field::READY, 1);
    while !l.stopping() {
        let (lo, hi) = match rng.range(0, 10) {
            0 => (0, HEADER_SIZE as u64),
            1..=6 => (HEADER_SIZE as u64, control.min(len)),
            _ => (0, len),
        };
        let off = rng.range(lo, hi.max(lo + 1)) & !7;
        let word: u64 = match rng.range(0, 8) {
            0 => 0,
            1 => u64::MAX,
            2 => 1 << 63,
            3 => rng.range(0, 4096),
            4 => len,
            5 => u64::from(u32::MAX),
            _ => rng.next_u64(),
        };
        let n = rng.range(1, 9) as usize;
        let bytes = word.to_le_bytes();
        if off + n as u64 <= len && f.write_at(&bytes[..n], off).is_ok() {
            l.add(a.slot, field::OK_CALLS, 1);
        }
        if rng.chance(1, 4) {
            std::thread::sleep(Duration::from_micros(rng.range(0, 500)));
        }
    }
    Ok(())
}

/// The longest an attach may take: opening waits up to the segment's open
/// timeout for a creator that has not marked it ready (a scribbled state
/// word reads as that).
const OPEN: Duration = multiproc_core::segment::DEFAULT_OPEN_TIMEOUT;

/// Times one call and books its outcome; `limit` is the call's own timeout.
fn timed<T, E>(
    l: &Ledger,
    slot: usize,
    limit: Duration,
    f: impl FnOnce() -> Result<T, E>,
) -> Option<T> {
    let t0 = Instant::now();
    let r = f();
    if t0.elapsed() > limit + GRACE {
        l.add(slot, field::OVERLONG, 1);
    }
    match r {
        Ok(v) => {
            l.add(slot, field::OK_CALLS, 1);
            Some(v)
        }
        Err(_) => {
            l.add(slot, field::TYPED_ERRORS, 1);
            None
        }
    }
}

/// Uses the object under attack with timed calls until told to stop.
pub(crate) fn user(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(a.seed);
    let writer = a.param == 0;
    let mut buf = vec![0u8; MSG];
    l.set(a.slot, field::READY, 1);
    while !l.stopping() {
        // (Re)attach: the header or control block may be garbage by now,
        // which must be a typed error.
        match a.role {
            Role::HostileSpsc => {
                let Some(ring) = timed(&l, a.slot, OPEN, || SpscRing::open(&a.target)) else {
                    std::thread::sleep(CALL);
                    continue;
                };
                if writer {
                    let Some(mut p) = timed(&l, a.slot, OPEN, || ring.producer()) else {
                        std::thread::sleep(CALL);
                        continue;
                    };
                    for i in 0..rng.range(10, 500) {
                        let len = crate::message::encode(i, MSG, &mut buf);
                        timed(&l, a.slot, CALL, || p.send_timeout(&buf[..len], CALL));
                    }
                } else {
                    let Some(mut c) = timed(&l, a.slot, OPEN, || ring.consumer()) else {
                        std::thread::sleep(CALL);
                        continue;
                    };
                    for _ in 0..rng.range(10, 500) {
                        timed(&l, a.slot, CALL, || c.recv_into_timeout(&mut buf, CALL));
                    }
                }
            }
            Role::HostileMpmc => {
                let Some(ring) = timed(&l, a.slot, OPEN, || Mpmc::open(&a.target)) else {
                    std::thread::sleep(CALL);
                    continue;
                };
                for i in 0..rng.range(10, 500) {
                    if writer {
                        let tx = ring.sender();
                        let len = crate::message::encode(i, MSG, &mut buf);
                        timed(&l, a.slot, CALL, || tx.send_timeout(&buf[..len], CALL));
                    } else {
                        let rx = ring.receiver();
                        timed(&l, a.slot, CALL, || rx.recv_into_timeout(&mut buf, CALL));
                    }
                }
            }
            Role::HostileBroadcast => {
                if writer {
                    let Some(mut p) = timed(&l, a.slot, OPEN, || {
                        BroadcastRing::open(&a.target)
                            .map_err(AttachError::from)
                            .and_then(|r| r.publisher())
                    }) else {
                        std::thread::sleep(CALL);
                        continue;
                    };
                    for i in 0..rng.range(10, 500) {
                        let len = crate::message::encode(i, MSG, &mut buf);
                        timed(&l, a.slot, CALL, || p.publish(&buf[..len]));
                    }
                } else {
                    let Some(mut s) = timed(&l, a.slot, OPEN, || {
                        BroadcastRing::open(&a.target).map(|r| r.subscribe(Start::Oldest))
                    }) else {
                        std::thread::sleep(CALL);
                        continue;
                    };
                    for _ in 0..rng.range(10, 500) {
                        timed(&l, a.slot, CALL, || s.recv_into_timeout(&mut buf, CALL));
                    }
                }
            }
            Role::HostileMutex => {
                let Some(m) = timed(&l, a.slot, OPEN, || Mutex::<Guarded>::open(&a.target)) else {
                    std::thread::sleep(CALL);
                    continue;
                };
                for _ in 0..rng.range(10, 500) {
                    let t0 = Instant::now();
                    let r = m.lock_timeout(CALL);
                    if t0.elapsed() > CALL + GRACE {
                        l.add(a.slot, field::OVERLONG, 1);
                    }
                    match r {
                        Ok(mut g) => {
                            g[0] = g[0].wrapping_add(1);
                            g[1] = g[0];
                            l.add(a.slot, field::OK_CALLS, 1);
                        }
                        Err(LockTimeoutError::OwnerDied(d)) => {
                            let mut g = d.into_guard();
                            g.mark_consistent();
                            l.add(a.slot, field::OK_CALLS, 1);
                        }
                        Err(_) => {
                            l.add(a.slot, field::TYPED_ERRORS, 1);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            }
            other => return Err(format!("not a hostile user role: {}", other.name())),
        }
    }
    Ok(())
}

/// What the runner keeps of the object under attack (the creator's handle
/// unlinks the name when dropped).
enum Object {
    Spsc(SpscRing),
    Mpmc(Mpmc),
    Broadcast(Subscriber),
    Mutex(Mutex<Guarded>),
}

fn hostile_round(round: &mut Round<'_>, role: Role) {
    let (target, lname) = (round.name("hostile"), round.name("ledger"));
    let ledger = match Ledger::create(&lname) {
        Ok(l) => l,
        Err(e) => return round.fail(format!("ledger: {e}")),
    };
    let created = match role {
        Role::HostileSpsc => SpscRing::builder()
            .name(&target)
            .capacity(1024)
            .create()
            .map(Object::Spsc)
            .map_err(|e| e.to_string()),
        Role::HostileMpmc => Mpmc::create(&target, mpmc::Config::new(8, MSG))
            .map(Object::Mpmc)
            .map_err(|e| e.to_string()),
        Role::HostileBroadcast => BroadcastRing::create(&target, broadcast::Config::new(8, MSG))
            .map(|r| Object::Broadcast(r.subscribe(Start::Oldest)))
            .map_err(|e| e.to_string()),
        _ => Mutex::<Guarded>::create(&target, [0; 4])
            .map(Object::Mutex)
            .map_err(|e| e.to_string()),
    };
    let object = match created {
        Ok(o) => o,
        Err(e) => return round.fail(format!("create: {e}")),
    };
    let seed = round.rng.next_u64();
    let mut kids = vec![
        round.spawn(ChildArgs::new(role, &target, &lname, 0, seed).param(0)),
        round.spawn(ChildArgs::new(role, &target, &lname, 1, seed ^ 1).param(1)),
    ];
    // Let the users attach before the scribbling starts.
    for i in 0..2 {
        round.wait_ready(&ledger, i, Duration::from_secs(10));
    }
    std::thread::sleep(Duration::from_millis(round.rng.range(0, 20)));
    kids.push(round.spawn(
        ChildArgs::new(Role::Scribbler, &target, &lname, 2, seed ^ 2).param(control_len(role)),
    ));
    // Users are killed now and then too; the scribbler never is.
    round.chaos(&mut kids, 50, 400, |a| a.role != Role::Scribbler, |_| {});
    round.stop(&ledger);
    round.finish_all(&mut kids, Duration::from_secs(15));
    let sum = |f: usize| (0..3).map(|i| ledger.get(i, f)).sum::<u64>();
    round.report.hostile_ok_calls += sum(field::OK_CALLS);
    round.report.hostile_typed_errors += sum(field::TYPED_ERRORS);
    let overlong = sum(field::OVERLONG);
    round.report.overlong_calls += overlong;
    if overlong > 0 {
        round.fail(format!(
            "{overlong} calls overran {CALL:?} by more than {GRACE:?}"
        ));
    }
    // The runner attaches anew to the scribbled object and uses it: a value
    // or a typed error, never a panic.
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runner_probe(&object, &target)
    }));
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            round.report.overlong_calls += 1;
            round.fail(e);
        }
        Err(_) => {
            round.report.child_failures += 1;
            round.fail("the runner's probe of the scribbled object panicked");
        }
    }
    drop(object);
}

/// A few calls on a fresh attachment and on the creator's handle; returns
/// an error only for a call that overran its timeout.
fn runner_probe(object: &Object, name: &str) -> Result<(), String> {
    let mut buf = vec![0u8; MSG];
    let t0 = Instant::now();
    match object {
        Object::Spsc(ring) => {
            let _ = SpscRing::open(name);
            if let Ok(mut c) = ring.consumer() {
                let _ = c.recv_into_timeout(&mut buf, CALL);
            }
        }
        Object::Mpmc(ring) => {
            let _ = Mpmc::open(name);
            let _ = ring.receiver().recv_into_timeout(&mut buf, CALL);
            let _ = ring.sender().send_timeout(&buf[..8], CALL);
        }
        Object::Broadcast(s) => {
            let _ = BroadcastRing::open(name).map(|r| r.subscribe(Start::Oldest));
            let mut s = s.clone();
            let _ = s.recv_into_timeout(&mut buf, CALL);
        }
        Object::Mutex(m) => {
            let _ = Mutex::<Guarded>::open(name);
            match m.lock_timeout(CALL) {
                Ok(_) => {}
                Err(LockTimeoutError::OwnerDied(d)) => d.into_guard().mark_consistent(),
                Err(_) => {}
            }
        }
    }
    let took = t0.elapsed();
    if took > 2 * OPEN + 4 * CALL + GRACE {
        return Err(format!("the runner's probe took {took:?}"));
    }
    Ok(())
}

pub(crate) fn spsc_round(round: &mut Round<'_>) {
    hostile_round(round, Role::HostileSpsc)
}

pub(crate) fn mpmc_round(round: &mut Round<'_>) {
    hostile_round(round, Role::HostileMpmc)
}

pub(crate) fn broadcast_round(round: &mut Round<'_>) {
    hostile_round(round, Role::HostileBroadcast)
}

pub(crate) fn mutex_round(round: &mut Round<'_>) {
    hostile_round(round, Role::HostileMutex)
}
