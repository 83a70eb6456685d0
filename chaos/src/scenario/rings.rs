//! A producer and a consumer on each ring type, both SIGKILLed at random
//! moments and replaced; every message is sequenced and checksummed, and the
//! round ends with `sent = received + lost`.
//!
//! Accounting with kills: a producer records `STARTED` before a send and
//! `COMPLETED` after it; a consumer sets `PHASE` before a receive and clears
//! it after recording the message. A process killed in between leaves one
//! message whose fate the ledger cannot know (delivered or not, recorded or
//! not), so the check is
//! `completed - consumers killed mid-receive <= received + lost <= completed + producers killed mid-send`.

use crate::child::{ChildArgs, ChildResult, Role};
use crate::ledger::{field, Ledger, SEQS_PER_PRODUCER};
use crate::message;
use crate::runner::{Child, Round};
use multiproc_queue::broadcast::{self, BroadcastRing, ReadError, Start, Subscriber};
use multiproc_queue::error::{AttachError, RecvTimeoutError, SendTimeoutError};
use multiproc_queue::mpmc::{self, Mpmc};
use multiproc_queue::spsc::SpscRing;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CALL: Duration = Duration::from_millis(50);
const SPSC_MAX: usize = 200;
const MPMC_SLOT: usize = 128;
const BCAST_SLOT: usize = 200;

/// Retries `f` while the endpoint is still held by a live process (the
/// previous holder may be a moment from being noticed dead), for 5 s.
fn attach<T>(mut f: impl FnMut() -> Result<T, AttachError>) -> Result<T, String> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(AttachError::AlreadyAttached { .. }) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("attach: {e}")),
        }
    }
}

/// Producer slot `slot` sends `seq_base | n` for n from its `STARTED` word on.
fn produce(
    l: &Ledger,
    slot: usize,
    seq_base: u64,
    max: usize,
    mut send: impl FnMut(&[u8]) -> Result<(), String>,
) -> ChildResult {
    let mut buf = vec![0u8; max];
    l.set(slot, field::READY, 1);
    while !l.stopping() {
        let n = l.get(slot, field::STARTED);
        if n >= SEQS_PER_PRODUCER {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        l.set(slot, field::PHASE, 1);
        l.set(slot, field::STARTED, n + 1);
        let len = message::encode(seq_base | n, max, &mut buf);
        send(&buf[..len])?;
        l.add(slot, field::COMPLETED, 1);
        l.set(slot, field::PHASE, 0);
    }
    Ok(())
}

/// Records a received message: checks it, marks its sequence number.
fn record(l: &Ledger, slot: usize, msg: &[u8], last: &mut Option<u64>, ordered: bool) {
    match message::verify(msg) {
        Ok(seq) => {
            let producer = (seq >> 32) as usize;
            let n = seq & 0xffff_ffff;
            if !l.mark(producer, n) {
                l.add(slot, field::DUPS, 1);
            } else {
                l.add(slot, field::RECEIVED, 1);
                if ordered && last.is_some_and(|p| seq <= p) {
                    l.add(slot, field::REORDERED, 1);
                }
            }
            *last = Some(seq);
            if ordered {
                // The consumer's successor continues the order check.
                l.set(slot, field::OUTCOME, seq + 1);
            }
        }
        Err(d) => {
            eprintln!("ipc-chaos: damaged message: {d:?}");
            l.add(slot, field::TORN, 1);
        }
    }
}

// ---------------------------------------------------------------- SPSC

pub(crate) fn spsc_producer(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let ring = SpscRing::open(&a.target).map_err(|e| e.to_string())?;
    let mut p = attach(|| ring.producer())?;
    // Half the incarnations copy, half write in place (a kill between
    // reserve and commit must leave no trace).
    let in_place = a.seed % 2 == 1;
    produce(&l, a.slot, 0, SPSC_MAX, |m| {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let r = if in_place {
                p.reserve_timeout(m.len(), CALL).map(|mut g| {
                    g.copy_from_slice(m);
                    g.commit();
                })
            } else {
                p.send_timeout(m, CALL)
            };
            match r {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Timeout(())) if Instant::now() < give_up => {}
                Err(e) => return Err(format!("send: {e}")),
            }
        }
    })
}

pub(crate) fn spsc_consumer(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let ring = SpscRing::open(&a.target).map_err(|e| e.to_string())?;
    let mut c = attach(|| ring.consumer())?;
    let mut buf = vec![0u8; SPSC_MAX];
    let prev = l.get(a.slot, field::OUTCOME);
    let mut last = prev.checked_sub(1);
    // Half the incarnations read in place through a guard: a kill while it
    // lives must make the message come again, and it is recorded only after
    // the guard is gone.
    let in_place = a.seed % 2 == 1;
    l.set(a.slot, field::READY, 1);
    loop {
        l.set(a.slot, field::PHASE, 1);
        let r = if in_place {
            c.recv_timeout(CALL).map(|g| {
                let n = g.len();
                buf[..n].copy_from_slice(&g);
                n
            })
        } else {
            c.recv_into_timeout(&mut buf, CALL)
        };
        match r {
            Ok(n) => record(&l, a.slot, &buf[..n], &mut last, true),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Closed) if l.stopping() => {
                l.set(a.slot, field::PHASE, 0);
                return Ok(());
            }
            // A dead producer reads as closed until its successor attaches.
            Err(RecvTimeoutError::Closed) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("recv: {e}")),
        }
        l.set(a.slot, field::PHASE, 0);
    }
}

/// Kill bookkeeping shared by the ring rounds.
#[derive(Default)]
struct Slack {
    producers_mid_send: u64,
    consumers_mid_recv: u64,
}

impl Slack {
    /// Looks at what a killed ring child left: one message of slack if it
    /// died inside an operation. (Its successor starts at `STARTED`, after
    /// the message in flight, so no sequence number is used twice.)
    fn note(&mut self, l: &Ledger, a: &ChildArgs, producer: bool) {
        if l.get(a.slot, field::PHASE) != 0 {
            if producer {
                self.producers_mid_send += 1;
            } else {
                self.consumers_mid_recv += 1;
            }
        }
        l.set(a.slot, field::PHASE, 0);
    }
}

/// Whether `received + lost` is what `completed` sends allow, given the
/// messages whose fate kills made unknowable.
fn balanced(completed: u64, received: u64, lost: u64, slack: &Slack) -> bool {
    let delivered = received + lost;
    delivered >= completed.saturating_sub(slack.consumers_mid_recv)
        && delivered <= completed + slack.producers_mid_send
}

/// Adds a ring round's figures to the report and checks the balance.
#[allow(clippy::too_many_arguments)]
fn settle(
    round: &mut Round<'_>,
    l: &Ledger,
    producers: &[usize],
    consumers: &[usize],
    completed: u64,
    lost: u64,
    slack: &Slack,
) {
    let received: u64 = producers.iter().map(|&p| l.marked(p)).sum();
    let sum = |f: usize| consumers.iter().map(|&c| l.get(c, f)).sum::<u64>();
    let (dups, torn, reordered) = (sum(field::DUPS), sum(field::TORN), sum(field::REORDERED));
    let delivered = received + lost;
    let hi = completed + slack.producers_mid_send;
    round.report.messages_sent += delivered.clamp(completed, hi);
    round.report.kills_mid_operation += slack.producers_mid_send + slack.consumers_mid_recv;
    round.report.messages_received += received;
    round.report.messages_lost += lost;
    round.report.duplicates += dups;
    round.report.torn += torn;
    round.report.reordered += reordered;
    if dups + torn + reordered > 0 {
        round.fail(format!(
            "{dups} duplicates, {torn} torn, {reordered} reordered messages"
        ));
    }
    if !balanced(completed, received, lost, slack) {
        round.report.accounting_mismatches += 1;
        round.fail(format!(
            "sent {completed} (+{} in flight at a kill), received {received} + lost {lost} = \
             {delivered}; {} consumers were killed mid-receive",
            slack.producers_mid_send, slack.consumers_mid_recv
        ));
    }
}

/// Waits (bounded) for the children in `kids` to report READY, so the round
/// stops with live endpoints attached.
fn settle_ready(round: &mut Round<'_>, l: &Ledger, kids: &[Option<Child>]) {
    for c in kids.iter().flatten() {
        if !round.wait_ready(l, c.args.slot, Duration::from_secs(10)) {
            round.fail(format!("{} never attached", c.args.role.name()));
        }
    }
}

pub(crate) fn spsc_round(round: &mut Round<'_>) {
    let (rname, lname) = (round.name("spsc"), round.name("ledger"));
    let cap = [512usize, 1024, 4096][round.rng.range(0, 3) as usize];
    let ledger = match Ledger::create(&lname) {
        Ok(l) => l,
        Err(e) => return round.fail(format!("ledger: {e}")),
    };
    let ring = match SpscRing::builder().name(&rname).capacity(cap).create() {
        Ok(r) => r,
        Err(e) => return round.fail(format!("create spsc: {e}")),
    };
    let seed = round.rng.next_u64();
    let mut kids = [
        round.spawn(ChildArgs::new(Role::SpscProducer, &rname, &lname, 0, seed)),
        round.spawn(ChildArgs::new(Role::SpscConsumer, &rname, &lname, 1, seed)),
    ];
    let mut slack = Slack::default();
    round.chaos(
        &mut kids,
        5,
        120,
        |_| true,
        |a| slack.note(&ledger, a, a.role == Role::SpscProducer),
    );
    settle_ready(round, &ledger, &kids);
    round.stop(&ledger);
    let [p, c] = &mut kids;
    round.finish_all(std::slice::from_mut(p), Duration::from_secs(15));
    round.finish_all(std::slice::from_mut(c), Duration::from_secs(15));
    let completed = ledger.get(0, field::COMPLETED);
    settle(round, &ledger, &[0], &[1], completed, 0, &slack);
    drop(ring);
}

// ---------------------------------------------------------------- MPMC

pub(crate) fn mpmc_producer(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let ring = Mpmc::open(&a.target).map_err(|e| e.to_string())?;
    let tx = ring.sender();
    let in_place = a.seed % 2 == 1;
    produce(&l, a.slot, (a.slot as u64) << 32, MPMC_SLOT, |m| {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let r = if in_place {
                tx.reserve_timeout(m.len(), CALL)
                    .map(|mut c| {
                        c.buf().copy_from_slice(m);
                        c.commit();
                    })
                    .map_err(|e| e.to_string())
            } else {
                tx.send_timeout(m, CALL).map_err(|e| e.to_string())
            };
            match r {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < give_up && !tx.is_closed() => {}
                Err(e) => return Err(format!("send: {e}")),
            }
        }
    })
}

pub(crate) fn mpmc_consumer(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let ring = Mpmc::open(&a.target).map_err(|e| e.to_string())?;
    let rx = ring.receiver();
    let mut buf = vec![0u8; MPMC_SLOT];
    let mut last = None;
    // Half the incarnations read in place: a kill while the claim lives
    // makes the next receiver recover it as lost.
    let in_place = a.seed % 2 == 1;
    l.set(a.slot, field::READY, 1);
    loop {
        l.set(a.slot, field::PHASE, 1);
        let r = if in_place {
            rx.recv_timeout(CALL).map(|m| {
                let n = m.len();
                buf[..n].copy_from_slice(m.bytes());
                n
            })
        } else {
            rx.recv_into_timeout(&mut buf, CALL)
        };
        match r {
            Ok(n) => record(&l, a.slot, &buf[..n], &mut last, false),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Closed) => {
                l.set(a.slot, field::PHASE, 0);
                return Ok(());
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
        l.set(a.slot, field::PHASE, 0);
    }
}

pub(crate) fn mpmc_round(round: &mut Round<'_>) {
    let (rname, lname) = (round.name("mpmc"), round.name("ledger"));
    let cap = [1usize, 2, 8, 32][round.rng.range(0, 4) as usize];
    let ledger = match Ledger::create(&lname) {
        Ok(l) => l,
        Err(e) => return round.fail(format!("ledger: {e}")),
    };
    let ring = match Mpmc::create(&rname, mpmc::Config::new(cap, MPMC_SLOT)) {
        Ok(r) => r,
        Err(e) => return round.fail(format!("create mpmc: {e}")),
    };
    let seed = round.rng.next_u64();
    // Slots 0, 1: producers (and their bitmaps); 4, 5: consumers.
    let mut prods = [
        round.spawn(ChildArgs::new(Role::MpmcProducer, &rname, &lname, 0, seed)),
        round.spawn(ChildArgs::new(
            Role::MpmcProducer,
            &rname,
            &lname,
            1,
            seed ^ 1,
        )),
    ];
    let mut cons = [
        round.spawn(ChildArgs::new(
            Role::MpmcConsumer,
            &rname,
            &lname,
            4,
            seed ^ 2,
        )),
        round.spawn(ChildArgs::new(
            Role::MpmcConsumer,
            &rname,
            &lname,
            5,
            seed ^ 3,
        )),
    ];
    let mut slack = Slack::default();
    {
        let mut all: Vec<Option<Child>> = prods
            .iter_mut()
            .chain(cons.iter_mut())
            .map(Option::take)
            .collect();
        round.chaos(
            &mut all,
            5,
            120,
            |_| true,
            |a| slack.note(&ledger, a, a.role == Role::MpmcProducer),
        );
        settle_ready(round, &ledger, &all);
        let mut it = all.into_iter();
        for k in prods.iter_mut().chain(cons.iter_mut()) {
            *k = it.next().flatten();
        }
    }
    round.stop(&ledger);
    round.finish_all(&mut prods, Duration::from_secs(15));
    // Every send has returned: closing lets the consumers drain and leave.
    ring.close();
    round.finish_all(&mut cons, Duration::from_secs(15));
    let completed = ledger.get(0, field::COMPLETED) + ledger.get(1, field::COMPLETED);
    settle(
        round,
        &ledger,
        &[0, 1],
        &[4, 5],
        completed,
        ring.lost(),
        &slack,
    );
}

// ---------------------------------------------------------------- broadcast

pub(crate) fn publisher(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let mut p = attach(|| BroadcastRing::open(&a.target)?.publisher())?;
    let mut rng = crate::rng::Rng::new(a.seed);
    let mut buf = vec![0u8; BCAST_SLOT];
    l.set(a.slot, field::READY, 1);
    while !l.stopping() {
        let seq = p.published();
        l.set(a.slot, field::PHASE, 1);
        let len = message::encode(seq, BCAST_SLOT, &mut buf);
        p.publish(&buf[..len])
            .map_err(|e| format!("publish: {e}"))?;
        l.add(a.slot, field::COMPLETED, 1);
        l.set(a.slot, field::PHASE, 0);
        // Bursts and pauses: subscribers sometimes keep up, sometimes lag.
        if rng.chance(1, 16) {
            std::thread::sleep(Duration::from_micros(rng.range(50, 2000)));
        }
    }
    Ok(())
}

/// One subscriber's checks: every message is whole and sits at its own
/// position; lag is reported, never silent.
#[derive(Default)]
struct Audit {
    received: u64,
    lost: u64,
    torn: u64,
    misplaced: u64,
}

impl Audit {
    /// One receive; `Ok(false)` on timeout or a transient close.
    fn step(&mut self, s: &mut Subscriber, buf: &mut [u8]) -> Result<bool, ReadError> {
        let pos = s.position();
        match s.recv_into_timeout(buf, CALL) {
            Ok(n) => {
                match message::verify(&buf[..n]) {
                    Ok(seq) if seq == pos => self.received += 1,
                    Ok(seq) => {
                        eprintln!("ipc-chaos: broadcast message {seq} read at position {pos}");
                        self.misplaced += 1
                    }
                    Err(d) => {
                        eprintln!("ipc-chaos: damaged broadcast message at {pos}: {d:?}");
                        self.torn += 1
                    }
                }
                Ok(true)
            }
            Err(ReadError::Lagged(k)) => {
                self.lost += k;
                Ok(true)
            }
            Err(ReadError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

pub(crate) fn subscriber(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let mut s = BroadcastRing::open(&a.target)
        .map_err(|e| e.to_string())?
        .subscribe(Start::Oldest);
    let mut buf = vec![0u8; BCAST_SLOT];
    let mut audit = Audit::default();
    l.set(a.slot, field::READY, 1);
    loop {
        let before = (audit.received, audit.lost, audit.torn, audit.misplaced);
        match audit.step(&mut s, &mut buf) {
            Ok(_) => {}
            Err(ReadError::Closed) if l.stopping() => return Ok(()),
            Err(ReadError::Closed) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("recv: {e}")),
        }
        l.add(a.slot, field::RECEIVED, audit.received - before.0);
        l.add(a.slot, field::LOST, audit.lost - before.1);
        l.add(a.slot, field::TORN, audit.torn - before.2);
        l.add(a.slot, field::REORDERED, audit.misplaced - before.3);
    }
}

pub(crate) fn broadcast_round(round: &mut Round<'_>) {
    let (rname, lname) = (round.name("bcast"), round.name("ledger"));
    let cap = [1usize, 2, 4, 16, 64][round.rng.range(0, 5) as usize];
    let ledger = match Ledger::create(&lname) {
        Ok(l) => l,
        Err(e) => return round.fail(format!("ledger: {e}")),
    };
    let creator = match BroadcastRing::create(&rname, broadcast::Config::new(cap, BCAST_SLOT)) {
        Ok(p) => p,
        Err(e) => return round.fail(format!("create broadcast: {e}")),
    };
    // The runner's own subscriber is never killed: its figures are exact.
    let mut audit_sub = creator.subscribe(Start::Next);
    drop(creator); // hands the publisher role to the children
    let done = AtomicBool::new(false);
    let seed = round.rng.next_u64();
    let mut kids = [
        round.spawn(ChildArgs::new(Role::Publisher, &rname, &lname, 0, seed)),
        round.spawn(ChildArgs::new(
            Role::Subscriber,
            &rname,
            &lname,
            1,
            seed ^ 1,
        )),
        round.spawn(ChildArgs::new(
            Role::Subscriber,
            &rname,
            &lname,
            2,
            seed ^ 2,
        )),
    ];
    let mut slack = Slack::default();
    let (audit, audit_err) = std::thread::scope(|s| {
        let t = s.spawn(|| {
            let mut audit = Audit::default();
            let mut buf = vec![0u8; BCAST_SLOT];
            let give_up = Instant::now() + Duration::from_secs(120);
            loop {
                match audit.step(&mut audit_sub, &mut buf) {
                    Ok(_) => {}
                    Err(ReadError::Closed) if done.load(Ordering::Acquire) => return (audit, None),
                    Err(ReadError::Closed) => std::thread::sleep(Duration::from_millis(2)),
                    Err(e) => return (audit, Some(e.to_string())),
                }
                if Instant::now() > give_up {
                    return (
                        audit,
                        Some("the audit subscriber never saw the close".into()),
                    );
                }
            }
        });
        round.chaos(
            &mut kids,
            5,
            120,
            |_| true,
            |a| {
                if a.role == Role::Publisher {
                    slack.note(&ledger, a, true);
                }
            },
        );
        settle_ready(round, &ledger, &kids);
        round.stop(&ledger);
        round.finish_all(&mut kids, Duration::from_secs(15));
        done.store(true, Ordering::Release);
        t.join()
            .unwrap_or_else(|_| (Audit::default(), Some("audit thread panicked".into())))
    });
    if let Some(e) = audit_err {
        round.fail(format!("audit subscriber: {e}"));
        round.report.hangs += 1;
    }
    let written = audit_sub.position() + audit_sub.pending();
    let completed = ledger.get(0, field::COMPLETED);
    round.report.messages_sent += written;
    round.report.kills_mid_operation += slack.producers_mid_send;
    round.report.messages_received += audit.received;
    round.report.messages_lost += audit.lost;
    let kid_sum = |f: usize| ledger.get(1, f) + ledger.get(2, f);
    let torn = audit.torn + kid_sum(field::TORN);
    let misplaced = audit.misplaced + kid_sum(field::REORDERED);
    round.report.torn += torn;
    round.report.reordered += misplaced;
    if torn + misplaced > 0 {
        round.fail(format!(
            "{torn} torn, {misplaced} misplaced broadcast messages"
        ));
    }
    let balanced = audit.received + audit.lost + audit.torn + audit.misplaced == written;
    if !balanced || written < completed || written > completed + slack.producers_mid_send {
        round.report.accounting_mismatches += 1;
        round.fail(format!(
            "broadcast: written {written}, publishers completed {completed} (+{} in flight at a \
             kill), audit received {} + lost {} (+{} bad)",
            slack.producers_mid_send,
            audit.received,
            audit.lost,
            audit.torn + audit.misplaced
        ));
    }
    let _ = broadcast::POLL;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balance_allows_only_the_messages_kills_left_unknown() {
        let none = Slack::default();
        assert!(balanced(10, 7, 3, &none));
        assert!(!balanced(10, 7, 2, &none), "one message vanished");
        assert!(
            !balanced(10, 8, 3, &none),
            "one message appeared from nowhere"
        );
        let slack = Slack {
            producers_mid_send: 1,
            consumers_mid_recv: 2,
        };
        assert!(
            balanced(10, 8, 3, &slack),
            "a send in flight at a kill was delivered"
        );
        assert!(
            balanced(10, 6, 2, &slack),
            "two receives in flight at kills"
        );
        assert!(!balanced(10, 5, 2, &slack));
        assert!(!balanced(10, 9, 3, &slack));
    }
}
