//! Semaphore, condvar, event and barrier waiters SIGKILLed while they wait;
//! the survivors must get through (or, for a barrier, be told it broke) in
//! bounded time.
//!
//! A waiter reports its outcome in its ledger slot: 1 = got through,
//! 2 = its own (long) timeout passed, 3 = the barrier broke.

use crate::child::{ChildArgs, ChildResult, Role};
use crate::ledger::{field, Ledger};
use crate::runner::{Child, Round};
use multiproc_sync::{
    Barrier, BarrierTimeoutError, Condvar, Event, LockError, LockTimeoutError, Mutex, Semaphore,
};
use std::time::{Duration, Instant};

/// A waiter's own timeout: far longer than any wake-up should take.
const WAIT: Duration = Duration::from_secs(20);
/// How long the runner gives the survivors after the wake-up.
const SURVIVORS: Duration = Duration::from_secs(10);

const GOT_THROUGH: u64 = 1;
const TIMED_OUT: u64 = 2;
const BROKEN: u64 = 3;

fn mutex_name(target: &str) -> String {
    format!("{target}.m")
}

pub(crate) fn waiter(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let outcome = match a.role {
        Role::SemWaiter => {
            let s = Semaphore::open(&a.target).map_err(|e| e.to_string())?;
            l.set(a.slot, field::READY, 1);
            if s.acquire_timeout(WAIT) {
                GOT_THROUGH
            } else {
                TIMED_OUT
            }
        }
        Role::EventWaiter => {
            let e = Event::open(&a.target).map_err(|e| e.to_string())?;
            l.set(a.slot, field::READY, 1);
            if e.wait_timeout(WAIT) {
                GOT_THROUGH
            } else {
                TIMED_OUT
            }
        }
        Role::CondvarWaiter => condvar_wait(a, &l)?,
        Role::BarrierWaiter => {
            let b = Barrier::open(&a.target).map_err(|e| e.to_string())?;
            l.set(a.slot, field::READY, 1);
            match b.wait_timeout(WAIT) {
                Ok(_) => GOT_THROUGH,
                Err(BarrierTimeoutError::Broken) => BROKEN,
                Err(_) => TIMED_OUT,
            }
        }
        other => return Err(format!("not a waiter role: {}", other.name())),
    };
    l.set(a.slot, field::OUTCOME, outcome);
    Ok(())
}

fn condvar_wait(a: &ChildArgs, l: &Ledger) -> Result<u64, String> {
    let m = Mutex::<u64>::open(&mutex_name(&a.target)).map_err(|e| e.to_string())?;
    let cv = Condvar::open(&a.target).map_err(|e| e.to_string())?;
    let g = match m.lock_timeout(WAIT) {
        Ok(g) => g,
        Err(LockTimeoutError::OwnerDied(d)) => {
            // A waiter killed while relocking: nothing to repair in a flag.
            let mut g = d.into_guard();
            g.mark_consistent();
            l.add(a.slot, field::RECOVERIES, 1);
            g
        }
        Err(e) => return Err(format!("lock: {e}")),
    };
    l.set(a.slot, field::READY, 1);
    let outcome = match cv.wait_timeout_while(g, WAIT, |v| *v == 0) {
        Ok((_, t)) if t.timed_out() => Ok(TIMED_OUT),
        Ok(_) => Ok(GOT_THROUGH),
        Err(LockError::OwnerDied(d)) => {
            let mut g = d.into_guard();
            g.mark_consistent();
            l.add(a.slot, field::RECOVERIES, 1);
            Ok(if *g != 0 { GOT_THROUGH } else { TIMED_OUT })
        }
        Err(e) => Err(format!("condvar wait: {e}")),
    };
    outcome
}

/// Starts `n` waiters, waits until they wait, kills some at random moments.
/// Returns the survivors.
fn start_and_kill(
    round: &mut Round<'_>,
    role: Role,
    target: &str,
    ledger: &Ledger,
    lname: &str,
    n: usize,
    kill: usize,
) -> Vec<Child> {
    let mut kids: Vec<Child> = (0..n)
        .filter_map(|i| {
            let seed = round.rng.next_u64();
            round.spawn(ChildArgs::new(role, target, lname, i, seed))
        })
        .collect();
    for k in &kids {
        if !round.wait_ready(ledger, k.args.slot, Duration::from_secs(10)) {
            round.fail(format!("{} {} never got ready", role.name(), k.args.slot));
        }
    }
    for _ in 0..kill.min(kids.len()) {
        // Spin phase, yield phase, parked: any moment of the wait.
        round.pause_ms(0, 30);
        let i = round.rng.range(0, kids.len() as u64) as usize;
        let victim = kids.swap_remove(i);
        if round.kill(victim) {
            round.report.waiters_killed += 1;
            round.report.kills_mid_operation += 1;
        }
    }
    kids
}

/// Waits for every survivor's outcome; returns how many got `want`.
fn judge_survivors(round: &mut Round<'_>, ledger: &Ledger, kids: Vec<Child>, want: u64) {
    let end = Instant::now() + SURVIVORS;
    for k in &kids {
        while ledger.get(k.args.slot, field::OUTCOME) == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for k in kids {
        let got = ledger.get(k.args.slot, field::OUTCOME);
        if got != want {
            round.report.wedged_waiters += 1;
            round.fail(format!(
                "{} {}: outcome {got} (want {want}) within {SURVIVORS:?} of the wake-up",
                k.args.role.name(),
                k.args.slot
            ));
        }
        round.finish(k, Duration::from_secs(10));
    }
}

fn setup(round: &mut Round<'_>, what: &str) -> Option<(String, String, Ledger)> {
    let (target, lname) = (round.name(what), round.name("ledger"));
    match Ledger::create(&lname) {
        Ok(l) => Some((target, lname, l)),
        Err(e) => {
            round.fail(format!("ledger: {e}"));
            None
        }
    }
}

pub(crate) fn semaphore_round(round: &mut Round<'_>) {
    let Some((target, lname, ledger)) = setup(round, "sem") else {
        return;
    };
    let sem = match Semaphore::create(&target, 0) {
        Ok(s) => s,
        Err(e) => return round.fail(format!("create semaphore: {e}")),
    };
    let n = round.rng.range(2, 6) as usize;
    let kill = round.rng.range(1, n as u64) as usize;
    let kids = start_and_kill(round, Role::SemWaiter, &target, &ledger, &lname, n, kill);
    for _ in 0..kids.len() {
        if let Err(e) = sem.release() {
            round.fail(format!("release: {e}"));
        }
    }
    judge_survivors(round, &ledger, kids, GOT_THROUGH);
    if sem.value() != 0 {
        round.fail(format!("{} permits left over", sem.value()));
        round.report.invariant_violations += 1;
    }
}

pub(crate) fn event_round(round: &mut Round<'_>) {
    let Some((target, lname, ledger)) = setup(round, "event") else {
        return;
    };
    let ev = match Event::create(&target) {
        Ok(e) => e,
        Err(e) => return round.fail(format!("create event: {e}")),
    };
    let n = round.rng.range(2, 6) as usize;
    let kill = round.rng.range(1, n as u64) as usize;
    let kids = start_and_kill(round, Role::EventWaiter, &target, &ledger, &lname, n, kill);
    ev.set();
    judge_survivors(round, &ledger, kids, GOT_THROUGH);
}

pub(crate) fn condvar_round(round: &mut Round<'_>) {
    let Some((target, lname, ledger)) = setup(round, "cv") else {
        return;
    };
    let m = match Mutex::<u64>::create(&mutex_name(&target), 0) {
        Ok(m) => m,
        Err(e) => return round.fail(format!("create mutex: {e}")),
    };
    let cv = match Condvar::create(&target) {
        Ok(c) => c,
        Err(e) => return round.fail(format!("create condvar: {e}")),
    };
    let n = round.rng.range(2, 6) as usize;
    let kill = round.rng.range(1, n as u64) as usize;
    let kids = start_and_kill(
        round,
        Role::CondvarWaiter,
        &target,
        &ledger,
        &lname,
        n,
        kill,
    );
    match m.lock_timeout(Duration::from_secs(10)) {
        Ok(mut g) => *g = 1,
        Err(LockTimeoutError::OwnerDied(d)) => {
            let mut g = d.into_guard();
            *g = 1;
            g.mark_consistent();
            round.report.owner_died_recoveries += 1;
        }
        Err(e) => {
            round.report.wedged_waiters += 1;
            round.fail(format!("runner could not lock the condvar's mutex: {e}"));
        }
    }
    cv.notify_all();
    judge_survivors(round, &ledger, kids, GOT_THROUGH);
}

pub(crate) fn barrier_round(round: &mut Round<'_>) {
    let Some((target, lname, ledger)) = setup(round, "barrier") else {
        return;
    };
    let n = round.rng.range(2, 6) as usize;
    // The runner is a party too: it joins the wait when nobody is killed.
    let b = match Barrier::create(&target, n as u32 + 1) {
        Ok(b) => b,
        Err(e) => return round.fail(format!("create barrier: {e}")),
    };
    let kill = if round.rng.chance(1, 4) {
        0
    } else {
        round.rng.range(1, n as u64) as usize
    };
    let kids = start_and_kill(
        round,
        Role::BarrierWaiter,
        &target,
        &ledger,
        &lname,
        n,
        kill,
    );
    if kill == 0 {
        if let Err(e) = b.wait_timeout(SURVIVORS) {
            round.report.wedged_waiters += 1;
            round.fail(format!("runner's barrier wait with every party alive: {e}"));
        }
        judge_survivors(round, &ledger, kids, GOT_THROUGH);
    } else {
        judge_survivors(round, &ledger, kids, BROKEN);
    }
}
