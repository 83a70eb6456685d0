//! Processes contending on a robust `Mutex` that guards an invariant (two
//! counters that must stay equal), SIGKILLed while holding it; the next
//! locker is told `OwnerDied`, repairs the half-done update and marks the
//! data consistent. After the round the invariant must hold.

use crate::child::{ChildArgs, ChildResult, Role};
use crate::ledger::{field, Ledger};
use crate::rng::Rng;
use crate::runner::Round;
use multiproc_sync::{LockTimeoutError, Mutex, MutexGuard, RecoverableSemaphore};
use std::time::{Duration, Instant};

/// `[a, b, updates, recoveries]`: an update does `a += 1`, some work,
/// `b += 1`; so outside the lock `a == b`, and a holder killed mid-update
/// leaves `a == b + 1`.
pub(crate) type Guarded = [u64; 4];

/// How long a locker waits before calling the lock wedged (holders keep it
/// for microseconds; a dead holder is noticed within milliseconds).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Repairs the state a dead holder left; returns `false` if it is not a
/// state any update could leave (an invariant violation).
pub(crate) fn repair(v: &mut Guarded) -> bool {
    let ok = v[0] == v[1] || v[0] == v[1] + 1;
    v[1] = v[0];
    v[3] += 1;
    ok
}

fn update(g: &mut MutexGuard<'_, Guarded>, rng: &mut Rng) {
    g[0] += 1;
    // Work inside the critical section, so kills land there often.
    for _ in 0..rng.range(0, 20_000) {
        std::hint::spin_loop();
    }
    if rng.chance(1, 3) {
        std::thread::sleep(Duration::from_micros(rng.range(10, 300)));
    }
    g[1] += 1;
    g[2] += 1;
}

pub(crate) fn locker(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let m = Mutex::<Guarded>::open(&a.target).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(a.seed);
    l.set(a.slot, field::READY, 1);
    while !l.stopping() {
        let mut g = match m.lock_timeout(LOCK_WAIT) {
            Ok(g) => {
                if g[0] != g[1] {
                    l.add(a.slot, field::VIOLATIONS, 1);
                }
                g
            }
            Err(LockTimeoutError::OwnerDied(d)) => {
                let mut g = d.into_guard();
                l.set(a.slot, field::PHASE, 1);
                if !repair(&mut g) {
                    l.add(a.slot, field::VIOLATIONS, 1);
                }
                // A kill here, repaired but not yet marked consistent, must
                // hand the next locker OwnerDied again, not NotRecoverable.
                for _ in 0..rng.range(0, 20_000) {
                    std::hint::spin_loop();
                }
                g.mark_consistent();
                l.add(a.slot, field::RECOVERIES, 1);
                g
            }
            Err(LockTimeoutError::TimedOut) => {
                l.add(a.slot, field::OVERLONG, 1);
                continue;
            }
            Err(e) => {
                l.add(a.slot, field::VIOLATIONS, 1);
                return Err(format!("lock: {e}"));
            }
        };
        l.set(a.slot, field::PHASE, 1);
        update(&mut g, &mut rng);
        drop(g);
        l.set(a.slot, field::PHASE, 0);
        l.add(a.slot, field::OK_CALLS, 1);
        if rng.chance(1, 4) {
            std::thread::yield_now();
        }
    }
    Ok(())
}

/// The runner's check after the round: lock, recover if needed, and look.
/// Returns (violations, recoveries).
pub(crate) fn final_check(m: &Mutex<Guarded>) -> Result<(u64, u64), String> {
    let t0 = Instant::now();
    let (g, recovered, mut bad) = match m.lock_timeout(LOCK_WAIT) {
        Ok(g) => (g, 0, 0),
        Err(LockTimeoutError::OwnerDied(d)) => {
            let mut g = d.into_guard();
            let bad = u64::from(!repair(&mut g));
            g.mark_consistent();
            (g, 1, bad)
        }
        Err(e) => return Err(format!("final lock after {:?}: {e}", t0.elapsed())),
    };
    if g[0] != g[1] {
        bad += 1;
    }
    Ok((bad, recovered))
}

pub(crate) fn mutex_round(round: &mut Round<'_>) {
    let (mname, lname) = (round.name("mutex"), round.name("ledger"));
    let ledger = match Ledger::create(&lname) {
        Ok(l) => l,
        Err(e) => return round.fail(format!("ledger: {e}")),
    };
    let m = match Mutex::<Guarded>::create(&mname, [0; 4]) {
        Ok(m) => m,
        Err(e) => return round.fail(format!("create mutex: {e}")),
    };
    let n = round.rng.range(2, 5) as usize;
    let mut kids: Vec<_> = (0..n)
        .map(|i| {
            let seed = round.rng.next_u64();
            round.spawn(ChildArgs::new(Role::Locker, &mname, &lname, i, seed))
        })
        .collect();
    let mut holding = 0u64;
    round.chaos(
        &mut kids,
        3,
        60,
        |_| true,
        |a| {
            if ledger.get(a.slot, field::PHASE) != 0 {
                holding += 1;
            }
            ledger.set(a.slot, field::PHASE, 0);
        },
    );
    round.stop(&ledger);
    round.finish_all(&mut kids, Duration::from_secs(15));
    let sum = |f: usize| (0..n).map(|i| ledger.get(i, f)).sum::<u64>();
    let (mut violations, mut recoveries) = (sum(field::VIOLATIONS), sum(field::RECOVERIES));
    let wedged = sum(field::OVERLONG);
    match final_check(&m) {
        Ok((v, r)) => {
            violations += v;
            recoveries += r;
        }
        Err(e) => {
            violations += 1;
            round.fail(e);
        }
    }
    round.report.owner_died_recoveries += recoveries;
    round.report.kills_mid_operation += holding;
    round.report.invariant_violations += violations;
    round.report.wedged_waiters += wedged;
    if violations > 0 || wedged > 0 {
        round.fail(format!(
            "{violations} invariant violations, {wedged} lock waits over {LOCK_WAIT:?} \
             ({holding} kills while holding, {recoveries} recoveries)"
        ));
    }
}

/// Takes and gives back permits of a `RecoverableSemaphore`, holding each
/// a random while; a kill while holding must not lose the permit.
pub(crate) fn permit_holder(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let s = RecoverableSemaphore::open(&a.target).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(a.seed);
    l.set(a.slot, field::READY, 1);
    while !l.stopping() {
        if !s
            .acquire_timeout(LOCK_WAIT)
            .map_err(|e| format!("acquire: {e}"))?
        {
            l.add(a.slot, field::OVERLONG, 1);
            continue;
        }
        l.set(a.slot, field::PHASE, 1);
        for _ in 0..rng.range(0, 20_000) {
            std::hint::spin_loop();
        }
        if rng.chance(1, 3) {
            std::thread::sleep(Duration::from_micros(rng.range(10, 500)));
        }
        l.set(a.slot, field::PHASE, 0);
        if let Err(e) = s.release() {
            l.add(a.slot, field::VIOLATIONS, 1);
            return Err(format!("release: {e}"));
        }
        l.add(a.slot, field::OK_CALLS, 1);
    }
    Ok(())
}

/// Holders of a recoverable semaphore killed at random moments, holding or
/// not: the others never wait out a permit a dead process held, and at the
/// end every permit is back.
pub(crate) fn permits_round(round: &mut Round<'_>) {
    let (sname, lname) = (round.name("permits"), round.name("ledger"));
    let ledger = match Ledger::create(&lname) {
        Ok(l) => l,
        Err(e) => return round.fail(format!("ledger: {e}")),
    };
    let permits = round.rng.range(1, 4) as u32;
    let s = match RecoverableSemaphore::create(&sname, permits) {
        Ok(s) => s,
        Err(e) => return round.fail(format!("create recoverable semaphore: {e}")),
    };
    let n = permits as usize + round.rng.range(1, 4) as usize;
    let mut kids: Vec<_> = (0..n)
        .map(|i| {
            let seed = round.rng.next_u64();
            round.spawn(ChildArgs::new(Role::PermitHolder, &sname, &lname, i, seed))
        })
        .collect();
    let mut holding = 0u64;
    round.chaos(
        &mut kids,
        3,
        60,
        |_| true,
        |a| {
            if ledger.get(a.slot, field::PHASE) != 0 {
                holding += 1;
            }
            ledger.set(a.slot, field::PHASE, 0);
        },
    );
    round.stop(&ledger);
    round.finish_all(&mut kids, Duration::from_secs(15));
    let sum = |f: usize| (0..n).map(|i| ledger.get(i, f)).sum::<u64>();
    let wedged = sum(field::OVERLONG);
    let mut violations = sum(field::VIOLATIONS);
    s.recover();
    if s.value() != permits {
        violations += 1;
        round.fail(format!(
            "{} of {permits} permits free after every holder exited or was reaped              ({holding} kills while holding)",
            s.value()
        ));
    }
    round.report.kills_mid_operation += holding;
    round.report.invariant_violations += violations;
    round.report.wedged_waiters += wedged;
    if wedged > 0 {
        round.fail(format!("{wedged} permit waits over {LOCK_WAIT:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_accepts_only_states_an_update_leaves() {
        let mut v = [5, 4, 0, 0];
        assert!(repair(&mut v));
        assert_eq!(v, [5, 5, 0, 1]);
        let mut v = [5, 5, 0, 0];
        assert!(repair(&mut v));
        let mut v = [7, 4, 0, 0];
        assert!(!repair(&mut v));
    }
}
