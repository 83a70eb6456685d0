//! Writers of an `multiproc-sync` `SharedDict` and `SharedList`, SIGKILLed at
//! random moments (often in the middle of a transaction, a compaction or a
//! long shift); after every kill and at the end of the round the runner
//! checks both containers exactly.
//!
//! Each writer `s` plays a sequence of operations fixed by `(s, k)` alone
//! (its `k`-th dict operation inserts, replaces or removes one of its own
//! keys; its `k`-th list operation inserts one of its own tokens at a random
//! place or removes its oldest one), and records `k` in the same
//! transaction (the dict key `PROGRESS | s`, list item `s`). So the runner
//! knows, from the containers alone, how many operations of each writer
//! committed, replays them on a model, and asks for equality: a lost,
//! duplicated, torn or half-applied update is a mismatch. The dict also
//! keeps `SUM` and `COUNT` of every writer's entries, checked against them.

use crate::child::{ChildArgs, ChildResult, Role};
use crate::ledger::{field, Ledger};
use crate::rng::{mix, Rng};
use crate::runner::Round;
use multiproc_sync::{ContainerConfig, ContainerError, SharedDict, SharedList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Most writers of a round; list items `0..WRITERS` are their progress.
const WRITERS: u64 = 4;
/// Keys (and live list tokens) per writer at most.
const OWN: u64 = 16;
/// The dict key holding the sum of every writer's values.
const SUM: u64 = u64::MAX;
/// The dict key holding the number of writer entries.
const COUNT: u64 = u64::MAX - 1;
/// The dict keys `PROGRESS | s` hold writer `s`'s committed operations.
const PROGRESS: u64 = 1 << 62;
/// How long anyone waits for the containers (holders keep them for
/// microseconds; a dead holder is noticed within milliseconds).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Small arenas, so that compactions happen every few dozen operations.
fn dict_config() -> ContainerConfig {
    ContainerConfig::new((WRITERS * (OWN + 1) + 2) as usize, 2048)
}

fn list_config() -> ContainerConfig {
    ContainerConfig::new((WRITERS * (OWN + 1)) as usize, 1024)
}

fn list_name(dict: &str) -> String {
    format!("{dict}.l")
}

/// Writer `s`'s `k`-th dict operation: its key, the value, and whether a
/// present key is replaced (or removed).
fn dict_op(s: u64, k: u64) -> (u64, u64, bool) {
    let h = mix((s << 48) ^ k ^ 0xd1c7);
    (
        (s << 32) | (h % OWN),
        (h >> 16) % 1000 + 1,
        (h >> 40) & 1 == 0,
    )
}

/// Writer `s`'s `k`-th list operation when it has `own` tokens: `None` to
/// remove its oldest, or `Some((token, where))` to insert a token.
fn list_op(s: u64, k: u64, own: usize) -> Option<(u64, u64)> {
    let h = mix((s << 48) ^ k ^ 0x1157);
    if own as u64 >= OWN || (own > 0 && h.is_multiple_of(3)) {
        None
    } else {
        Some((((s + 1) << 32) | k, h >> 8))
    }
}

/// What one step of a writer can end in.
enum Step {
    /// The containers disagree with what this writer committed.
    Violation(String),
    /// A container operation failed.
    Failed(ContainerError),
}

impl From<ContainerError> for Step {
    fn from(e: ContainerError) -> Self {
        Step::Failed(e)
    }
}

/// Writer `s`'s `k`-th dict operation, with `SUM`, `COUNT` and its
/// progress, in one transaction.
fn dict_step(dict: &SharedDict<u64, u64>, s: u64, k: u64) -> Result<(), Step> {
    let r = dict.transaction(|tx| {
        let done = tx.get(&(PROGRESS | s))?.unwrap_or(0);
        if done != k - 1 {
            return Ok(Err(format!(
                "dict progress of writer {s} is {done}, not {}",
                k - 1
            )));
        }
        let (key, value, replace) = dict_op(s, k);
        let sum = tx.get(&SUM)?.unwrap_or(0);
        let count = tx.get(&COUNT)?.unwrap_or(0);
        let (sum, count) = match tx.get(&key)? {
            Some(old) if replace => {
                tx.insert(key, value)?;
                (sum.wrapping_sub(old).wrapping_add(value), count)
            }
            Some(old) => {
                tx.remove(&key)?;
                (sum.wrapping_sub(old), count.wrapping_sub(1))
            }
            None => {
                tx.insert(key, value)?;
                (sum.wrapping_add(value), count + 1)
            }
        };
        tx.insert(SUM, sum)?;
        tx.insert(COUNT, count)?;
        tx.insert(PROGRESS | s, k)?;
        Ok(Ok(()))
    })?;
    r.map_err(Step::Violation)
}

/// Writer `s`'s `k`-th list operation and its progress, in one
/// transaction.
fn list_step(list: &SharedList<u64>, s: u64, k: u64) -> Result<(), Step> {
    let r = list.transaction(|tx| {
        let items = tx.to_vec()?;
        let done = items.get(s as usize).copied().unwrap_or(u64::MAX);
        if done != k - 1 {
            return Ok(Err(format!(
                "list progress of writer {s} is {done}, not {}",
                k - 1
            )));
        }
        let mine: Vec<(usize, u64)> = items
            .iter()
            .copied()
            .enumerate()
            .skip(WRITERS as usize)
            .filter(|&(_, t)| t >> 32 == s + 1)
            .collect();
        match list_op(s, k, mine.len()) {
            Some((token, place)) => {
                let data = (items.len() - WRITERS as usize) as u64;
                tx.insert(WRITERS as usize + (place % (data + 1)) as usize, token)?;
            }
            None => {
                if let Some(&(i, _)) = mine.iter().min_by_key(|&&(_, t)| t) {
                    tx.remove(i)?;
                }
            }
        }
        tx.set(s as usize, k)?;
        Ok(Ok(()))
    })?;
    r.map_err(Step::Violation)
}

/// A writer: dict and list operations, one transaction each, until told to
/// stop (or killed).
pub(crate) fn container_writer(a: &ChildArgs) -> ChildResult {
    let l = Ledger::open(&a.ledger).map_err(|e| e.to_string())?;
    let open_err = |e: multiproc_sync::ObjectError| e.to_string();
    let dict = SharedDict::<u64, u64>::open(&a.target)
        .map_err(open_err)?
        .with_timeout(LOCK_WAIT);
    let list = SharedList::<u64>::open(&list_name(&a.target))
        .map_err(open_err)?
        .with_timeout(LOCK_WAIT);
    let s = a.slot as u64;
    let mut rng = Rng::new(a.seed);
    // Where an earlier writer of this slot (killed) left off.
    let mut dict_done = dict
        .get(&(PROGRESS | s))
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let mut list_done = list.get(s as usize).map_err(|e| e.to_string())?;
    l.set(a.slot, field::READY, 1);
    while !l.stopping() {
        l.set(a.slot, field::PHASE, 1);
        let r = if rng.chance(1, 2) {
            dict_step(&dict, s, dict_done + 1).map(|()| dict_done += 1)
        } else {
            list_step(&list, s, list_done + 1).map(|()| list_done += 1)
        };
        l.set(a.slot, field::PHASE, 0);
        match r {
            Ok(()) => l.add(a.slot, field::OK_CALLS, 1),
            Err(Step::Failed(ContainerError::TimedOut)) => l.add(a.slot, field::OVERLONG, 1),
            Err(Step::Failed(e)) => {
                l.add(a.slot, field::VIOLATIONS, 1);
                return Err(format!("container operation: {e}"));
            }
            Err(Step::Violation(why)) => {
                l.add(a.slot, field::VIOLATIONS, 1);
                return Err(why);
            }
        }
    }
    Ok(())
}

/// The runner's model: what each writer's committed operations made.
struct Model {
    writers: u64,
    dict_done: Vec<u64>,
    dict: Vec<BTreeMap<u64, u64>>,
    list_done: Vec<u64>,
    list: Vec<BTreeSet<u64>>,
}

impl Model {
    fn new(writers: u64) -> Model {
        let n = writers as usize;
        Model {
            writers,
            dict_done: vec![0; n],
            dict: vec![BTreeMap::new(); n],
            list_done: vec![0; n],
            list: vec![BTreeSet::new(); n],
        }
    }

    /// Replays writer `s`'s dict operations up to `done`.
    fn advance_dict(&mut self, s: usize, done: u64) -> Result<(), String> {
        if done < self.dict_done[s] {
            return Err(format!(
                "writer {s}'s committed dict operations went back from {} to {done}",
                self.dict_done[s]
            ));
        }
        for k in self.dict_done[s] + 1..=done {
            let (key, value, replace) = dict_op(s as u64, k);
            let m = &mut self.dict[s];
            match m.get(&key) {
                Some(_) if !replace => {
                    m.remove(&key);
                }
                _ => {
                    m.insert(key, value);
                }
            }
        }
        self.dict_done[s] = done;
        Ok(())
    }

    /// Replays writer `s`'s list operations up to `done`.
    fn advance_list(&mut self, s: usize, done: u64) -> Result<(), String> {
        if done < self.list_done[s] {
            return Err(format!(
                "writer {s}'s committed list operations went back from {} to {done}",
                self.list_done[s]
            ));
        }
        for k in self.list_done[s] + 1..=done {
            let m = &mut self.list[s];
            match list_op(s as u64, k, m.len()) {
                Some((token, _)) => {
                    m.insert(token);
                }
                None => {
                    m.pop_first();
                }
            }
        }
        self.list_done[s] = done;
        Ok(())
    }

    /// Reads both containers (each in one transaction) and compares them
    /// with the model, advanced to what they say committed.
    fn check(&mut self, dict: &SharedDict<u64, u64>, list: &SharedList<u64>) -> Result<(), String> {
        let entries: BTreeMap<u64, u64> = dict
            .items()
            .map_err(|e| format!("reading the dict: {e}"))?
            .into_iter()
            .collect();
        let (mut sum, mut count) = (0u64, 0u64);
        for s in 0..self.writers as usize {
            let done = entries.get(&(PROGRESS | s as u64)).copied().unwrap_or(0);
            self.advance_dict(s, done)?;
            let theirs: BTreeMap<u64, u64> = entries
                .range((s as u64) << 32..(s as u64 + 1) << 32)
                .map(|(&k, &v)| (k, v))
                .collect();
            if theirs != self.dict[s] {
                return Err(format!(
                    "writer {s}'s dict entries after {done} operations: {theirs:?}, \
                     expected {:?}",
                    self.dict[s]
                ));
            }
            sum = sum.wrapping_add(theirs.values().sum::<u64>());
            count += theirs.len() as u64;
        }
        let known = |k: &u64| {
            *k == SUM
                || *k == COUNT
                || (*k & PROGRESS != 0 && *k & !PROGRESS < self.writers)
                || (*k >> 32 < self.writers && *k & 0xffff_ffff < OWN)
        };
        if let Some(k) = entries.keys().find(|k| !known(k)) {
            return Err(format!("a key nobody wrote: {k:#x}"));
        }
        let (s_found, c_found) = (
            entries.get(&SUM).copied().unwrap_or(0),
            entries.get(&COUNT).copied().unwrap_or(0),
        );
        if (s_found, c_found) != (sum, count) {
            return Err(format!(
                "dict SUM/COUNT are {s_found}/{c_found}, its entries make {sum}/{count}"
            ));
        }
        self.check_list(list)
    }

    fn check_list(&mut self, list: &SharedList<u64>) -> Result<(), String> {
        let items = list
            .to_vec()
            .map_err(|e| format!("reading the list: {e}"))?;
        if items.len() < WRITERS as usize {
            return Err(format!("the list lost its progress items: {items:?}"));
        }
        let data = &items[WRITERS as usize..];
        let unique: BTreeSet<u64> = data.iter().copied().collect();
        if unique.len() != data.len() {
            return Err(format!("a token twice in the list: {data:?}"));
        }
        for (s, &done) in items.iter().enumerate().take(self.writers as usize) {
            self.advance_list(s, done)?;
            let theirs: BTreeSet<u64> = unique
                .iter()
                .copied()
                .filter(|t| t >> 32 == s as u64 + 1)
                .collect();
            if theirs != self.list[s] {
                return Err(format!(
                    "writer {s}'s list tokens after {done} operations: {theirs:?}, expected {:?}",
                    self.list[s]
                ));
            }
        }
        if let Some(t) = unique
            .iter()
            .find(|&&t| t >> 32 == 0 || t >> 32 > self.writers)
        {
            return Err(format!("a token nobody wrote: {t:#x}"));
        }
        Ok(())
    }
}

pub(crate) fn containers_round(round: &mut Round<'_>) {
    let (dname, lname) = (round.name("dict"), round.name("ledger"));
    let ledger = match Ledger::create(&lname) {
        Ok(l) => l,
        Err(e) => return round.fail(format!("ledger: {e}")),
    };
    let made = SharedDict::<u64, u64>::create(&dname, dict_config()).and_then(|d| {
        let l = SharedList::<u64>::create(&list_name(&dname), list_config())?;
        Ok((d.with_timeout(LOCK_WAIT), l.with_timeout(LOCK_WAIT)))
    });
    let (dict, list) = match made {
        Ok(c) => c,
        Err(e) => return round.fail(format!("create the containers: {e}")),
    };
    if let Err(e) = list.extend([0; WRITERS as usize]) {
        return round.fail(format!("initialise the list: {e}"));
    }
    let n = round.rng.range(2, WRITERS + 1);
    let mut kids: Vec<_> = (0..n as usize)
        .map(|i| {
            let seed = round.rng.next_u64();
            round.spawn(ChildArgs::new(
                Role::ContainerWriter,
                &dname,
                &lname,
                i,
                seed,
            ))
        })
        .collect();
    let mut model = Model::new(n);
    let (mut holding, mut problems) = (0u64, Vec::new());
    round.chaos(
        &mut kids,
        2,
        40,
        |_| true,
        |a| {
            if ledger.get(a.slot, field::PHASE) != 0 {
                holding += 1;
            }
            ledger.set(a.slot, field::PHASE, 0);
            if let Err(e) = model.check(&dict, &list) {
                problems.push(e);
            }
        },
    );
    round.stop(&ledger);
    round.finish_all(&mut kids, Duration::from_secs(15));
    if let Err(e) = model.check(&dict, &list) {
        problems.push(format!("at the end of the round: {e}"));
    }
    let sum = |f: usize| (0..n as usize).map(|i| ledger.get(i, f)).sum::<u64>();
    let violations = sum(field::VIOLATIONS) + problems.len() as u64;
    let wedged = sum(field::OVERLONG);
    round.report.owner_died_recoveries += dict.recoveries() + list.recoveries();
    round.report.kills_mid_operation += holding;
    round.report.invariant_violations += violations;
    round.report.wedged_waiters += wedged;
    for p in problems.iter().take(3) {
        round.fail(p);
    }
    if violations > 0 || wedged > 0 {
        round.fail(format!(
            "{violations} invariant violations, {wedged} waits over {LOCK_WAIT:?} \
             ({holding} kills mid-operation, {} recoveries, {:?} dict and {:?} list \
             operations committed)",
            dict.recoveries() + list.recoveries(),
            model.dict_done,
            model.list_done
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operations_are_fixed_by_writer_and_number() {
        assert_eq!(dict_op(1, 7), dict_op(1, 7));
        assert_ne!(dict_op(1, 7), dict_op(2, 7));
        let keys: BTreeSet<u64> = (1..200).map(|k| dict_op(3, k).0).collect();
        assert_eq!(keys.len() as u64, OWN, "every own key is used");
        assert!(keys.iter().all(|k| k >> 32 == 3));
        assert_eq!(list_op(0, 5, OWN as usize), None, "a full writer removes");
        assert!(list_op(0, 5, 0).is_some(), "an empty one inserts");
        assert_eq!(list_op(2, 9, 0).map(|t| t.0 >> 32), Some(3));
    }

    #[test]
    fn the_model_notices_what_went_back() {
        let mut m = Model::new(2);
        m.advance_dict(0, 10).unwrap();
        m.advance_list(1, 10).unwrap();
        assert!(m.advance_dict(0, 9).is_err());
        assert!(m.advance_list(1, 3).is_err());
        assert!(m.dict[0].len() as u64 <= OWN && !m.dict[0].is_empty());
        assert!(m.list[1].len() as u64 <= OWN && !m.list[1].is_empty());
    }
}
