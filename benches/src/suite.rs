//! The list of measurements, which rows each is compared with, the goals,
//! and the run of a selection of them.
//!
//! Every comparison is measured paired ([`crate::side::measure`]): the row
//! and its baseline take turns in short blocks over the whole measurement,
//! and the ratio reported is the median of the per-pair ratios. A row's own
//! figures (p50, p99, ...) come from the first paired measurement it took
//! part in; a row that is compared with nothing is measured on its own.

use crate::baselines::python::{self, PyBench};
use crate::baselines::rtt::{
    C2c, C2cTwoLines, FdKind, FdPingPong, Futex, Handoff, PosixSem, PthreadTurnLock,
};
use crate::baselines::{locks, throughput};
use crate::outcome::{Comparison, Outcome, Record, Unit, Wait};
use crate::runner::{Ctx, Pace, Plan};
use crate::side::{measure, BoxSide, NotMade, Paired, PingPongSide};
use crate::workspace;

/// Makes the side that measures an entry.
pub type Make = fn(&Ctx) -> Result<BoxSide, NotMade>;

/// One measurement of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Its id (the JSON `id`).
    pub id: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// How the primitive waits.
    pub wait: Wait,
    /// Block size and count.
    pub pace: Pace,
    /// The id of its main comparison.
    pub baseline: Option<&'static str>,
    /// Further ids it is compared with (each paired too).
    pub also: &'static [&'static str],
    /// Makes its side.
    pub make: Make,
}

impl Entry {
    /// Whether this is a round-trip latency (drawn in the percentile plot).
    pub fn is_round_trip(&self) -> bool {
        self.id.contains(".rtt")
    }
}

/// An entry with no comparison.
pub const fn base(id: &'static str, unit: Unit, wait: Wait, pace: Pace, make: Make) -> Entry {
    Entry {
        id,
        unit,
        wait,
        pace,
        baseline: None,
        also: &[],
        make,
    }
}

/// An entry compared with `baseline` and then with `also`.
pub const fn cmp(
    id: &'static str,
    unit: Unit,
    wait: Wait,
    pace: Pace,
    baseline: &'static str,
    also: &'static [&'static str],
    make: Make,
) -> Entry {
    Entry {
        id,
        unit,
        wait,
        pace,
        baseline: Some(baseline),
        also,
        make,
    }
}

fn rtt<P: crate::runner::PingPong + 'static>(ctx: &Ctx, pace: Pace, pp: P) -> BoxSide {
    PingPongSide::boxed(pp, ctx.block(pace))
}

/// Every measurement, baselines and peers first, in suite order.
pub fn entries() -> Vec<Entry> {
    use Pace::*;
    use Unit::*;
    use Wait::{Kernel as K, None as Nw, Spin as S};
    let mut v = vec![
        base("baseline.c2c.rtt", Ns, S, Spin, |c| {
            Ok(rtt(c, Spin, C2c::new()?))
        }),
        base("baseline.c2c.two_lines.rtt", Ns, S, Spin, |c| {
            Ok(rtt(c, Spin, C2cTwoLines::new()?))
        }),
        base("baseline.futex.rtt", Ns, K, Kernel, |c| {
            Ok(rtt(c, Kernel, Futex::new()?))
        }),
        base("baseline.eventfd.rtt", Ns, K, Kernel, |c| {
            Ok(rtt(c, Kernel, FdPingPong::new(FdKind::Eventfd)?))
        }),
        base("baseline.pipe.rtt", Ns, K, Kernel, |c| {
            Ok(rtt(c, Kernel, FdPingPong::new(FdKind::Pipe)?))
        }),
        base("baseline.uds.rtt", Ns, K, Kernel, |c| {
            Ok(rtt(c, Kernel, FdPingPong::new(FdKind::Uds)?))
        }),
        base("baseline.posix_sem.rtt", Ns, K, Kernel, |c| {
            Ok(rtt(c, Kernel, PosixSem::new()?))
        }),
        base(
            "baseline.pthread_mutex.lock_unlock",
            Ns,
            Nw,
            Op,
            locks::pthread_lock_unlock,
        ),
        base("baseline.pthread_mutex.handoff.rtt", Ns, K, Kernel, |c| {
            Ok(rtt(c, Kernel, Handoff::new(PthreadTurnLock::new()?)))
        }),
        base(
            "baseline.raw_sync.mutex.lock_unlock",
            Ns,
            Nw,
            Op,
            locks::raw_sync_lock_unlock,
        ),
        base(
            "baseline.rtrb.throughput",
            MsgPerSec,
            S,
            Stream,
            throughput::rtrb_throughput,
        ),
        base(
            "baseline.pipe.throughput.64",
            MsgPerSec,
            K,
            Stream,
            throughput::pipe_throughput,
        ),
        base(
            "baseline.copy.bandwidth",
            GbPerSec,
            S,
            Stream,
            throughput::copy_floor,
        ),
        base("baseline.python.pipe.rtt", Ns, K, Python, |c| {
            python::side(c, PyBench::PipeRtt)
        }),
        base("baseline.python.queue.rtt", Ns, K, Python, |c| {
            python::side(c, PyBench::QueueRtt)
        }),
        base("baseline.python.queue.rtt.string64", Ns, K, Python, |c| {
            python::side(c, PyBench::QueueEchoString64)
        }),
        base("baseline.python.queue.rtt.words4", Ns, K, Python, |c| {
            python::side(c, PyBench::QueueEchoWords4)
        }),
        base("baseline.python.manager.dict.set_get", Ns, K, Python, |c| {
            python::side(c, PyBench::ManagerDict)
        }),
        base(
            "baseline.mutex_hashmap.set_get",
            Ns,
            Nw,
            Op,
            crate::sync_benches::mutex_hashmap_set_get,
        ),
        base("baseline.python.lock", Ns, Nw, Python, |c| {
            python::side(c, PyBench::Lock)
        }),
        base("baseline.python.pool.task", Ns, K, Slow, |c| {
            python::side(c, PyBench::PoolTask)
        }),
        base("baseline.python.pool.task.default", Ns, K, Slow, |c| {
            python::side(c, PyBench::PoolTaskDefault)
        }),
        base("baseline.python.pool.startup", Ns, Nw, Slow, |c| {
            python::side(c, PyBench::PoolStartup)
        }),
        base("process.start.fork", Ns, Nw, Slow, workspace::start_fork),
        base("process.start.spawn", Ns, Nw, Slow, workspace::start_spawn),
        cmp(
            "process.start.forkserver",
            Ns,
            Nw,
            Slow,
            "process.start.fork",
            &["process.start.spawn"],
            workspace::start_forkserver,
        ),
    ];
    v.extend(crate::peers::entries());
    v.extend(crate::queue_benches::entries());
    v.extend(crate::sync_benches::entries());
    v.extend(crate::pool_benches::entries());
    v
}

/// A goal the harness checks: `a / b` at most (or at least) `target`,
/// paired.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Goal {
    /// The measured row.
    pub a: &'static str,
    /// The row it is held against.
    pub b: &'static str,
    /// `true`: the ratio must be at most `target`; `false`: at least.
    pub at_most: bool,
    /// The bound.
    pub target: f64,
}

/// The goals, as the workspace states them.
pub const GOALS: &[Goal] = &[
    Goal {
        a: "queue.spsc.rtt.8",
        b: "baseline.c2c.rtt",
        at_most: true,
        target: 1.2,
    },
    Goal {
        a: "queue.spsc.rtt.8",
        b: "baseline.iceoryx2.rtt",
        at_most: true,
        target: 0.15,
    },
    Goal {
        a: "queue.mpmc.rtt",
        b: "queue.spsc.rtt.8",
        at_most: true,
        target: 2.0,
    },
    Goal {
        a: "queue.spsc.throughput.8",
        b: "baseline.rtrb.throughput",
        at_most: false,
        target: 1.0,
    },
    Goal {
        a: "queue.spsc.bandwidth.4096",
        b: "baseline.copy.bandwidth",
        at_most: false,
        target: 0.5,
    },
    Goal {
        a: "sync.mutex.lock_unlock",
        b: "baseline.pthread_mutex.lock_unlock",
        at_most: true,
        target: 1.0,
    },
    Goal {
        a: "process.start.forkserver",
        b: "process.start.fork",
        at_most: true,
        target: 2.0,
    },
    Goal {
        a: "process.start.forkserver",
        b: "process.start.spawn",
        at_most: true,
        target: 1.0 / 3.0,
    },
    Goal {
        a: "pool.map.task",
        b: "baseline.python.pool.task",
        at_most: true,
        target: 0.02,
    },
    Goal {
        a: "sync.dict.set_get",
        b: "baseline.python.manager.dict.set_get",
        at_most: true,
        target: 0.001,
    },
    Goal {
        a: "queue.queue.rtt.u64",
        b: "queue.mpmc.rtt",
        at_most: true,
        target: 1.1,
    },
    Goal {
        a: "queue.queue.rtt.string64",
        b: "baseline.python.queue.rtt.string64",
        at_most: true,
        target: 0.01,
    },
    Goal {
        a: "queue.queue.rtt.string64",
        b: "baseline.ipc_channel.rtt.string64",
        at_most: true,
        target: 0.1,
    },
];

/// Where a goal stands after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoalStatus {
    /// The paired ratio's median meets the bound.
    Met,
    /// It does not.
    Missed,
    /// The ratio's spread is too wide to tell (flagged).
    Unsure,
    /// The comparison did not run (failed or skipped).
    NotMeasured,
}

impl GoalStatus {
    /// The spelling of the table and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GoalStatus::Met => "met",
            GoalStatus::Missed => "missed",
            GoalStatus::Unsure => "unsure",
            GoalStatus::NotMeasured => "not measured",
        }
    }
}

impl Goal {
    /// Where this goal stands given its comparison's ratios: the median
    /// decides when the ratio is a result; when it is noisy, only an
    /// interquartile range wholly on one side of the bound does (and never
    /// with fewer than 5 pairs).
    pub fn status(&self, p: Option<&Paired>) -> GoalStatus {
        let Some(p) = p else {
            return GoalStatus::NotMeasured;
        };
        let meets = |r: f64| {
            if self.at_most {
                r <= self.target
            } else {
                r >= self.target
            }
        };
        if p.pairs < 5 {
            GoalStatus::Unsure
        } else if !p.flagged() {
            if meets(p.median) {
                GoalStatus::Met
            } else {
                GoalStatus::Missed
            }
        } else if meets(p.q25) && meets(p.q75) {
            GoalStatus::Met
        } else if !meets(p.q25) && !meets(p.q75) {
            GoalStatus::Missed
        } else {
            GoalStatus::Unsure
        }
    }

    /// "at most 1.2x", "at least 0.5x".
    pub fn bound_text(&self) -> String {
        // Three significant digits: 1/3 reads 0.333, 1.2 reads 1.2.
        let t = format!("{:.3}", self.target);
        let t = t.trim_end_matches('0').trim_end_matches('.');
        format!("{} {t}x", if self.at_most { "at most" } else { "at least" },)
    }
}

/// The entries `filter` selects (by substring of the id; `None`: all),
/// plus the rows those are compared with, in suite order.
pub fn select(all: &[Entry], filter: Option<&str>) -> Vec<Entry> {
    let Some(f) = filter else {
        return all.to_vec();
    };
    let chosen: Vec<&Entry> = all.iter().filter(|e| e.id.contains(f)).collect();
    all.iter()
        .filter(|e| {
            chosen
                .iter()
                .any(|c| c.id == e.id || c.baseline == Some(e.id) || c.also.contains(&e.id))
        })
        .copied()
        .collect()
}

/// The comparisons among `entries`: (a, b, main), in suite order.
pub fn comparisons(entries: &[Entry]) -> Vec<(Entry, Entry, bool)> {
    let find = |id: &str| entries.iter().find(|e| e.id == id).copied();
    let mut out = Vec::new();
    for e in entries {
        for (b, main) in e
            .baseline
            .iter()
            .map(|b| (*b, true))
            .chain(e.also.iter().map(|b| (*b, false)))
        {
            if let Some(be) = find(b) {
                out.push((*e, be, main));
            }
        }
    }
    out
}

/// What a run produced: one record per row, one comparison per pair.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// The rows, in suite order.
    pub records: Vec<Record>,
    /// The paired comparisons, in the order they ran.
    pub comparisons: Vec<Comparison>,
}

impl Results {
    /// The record of `id`.
    pub fn record(&self, id: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.id == id)
    }

    /// The comparison of `a` against `b`.
    pub fn comparison(&self, a: &str, b: &str) -> Option<&Comparison> {
        self.comparisons.iter().find(|c| c.a == a && c.b == b)
    }
}

/// How many measurements [`run`] makes for `entries` (comparisons times the
/// passes, plus the rows measured on their own), for a progress bar.
pub fn steps(ctx: &Ctx, entries: &[Entry]) -> usize {
    let cmps = comparisons(entries);
    let alone = entries
        .iter()
        .filter(|e| !cmps.iter().any(|(a, b, _)| a.id == e.id || b.id == e.id))
        .count();
    cmps.len() * ctx.passes() as usize + alone
}

/// The plan of a measurement of `sides` at these paces: the fewest rounds
/// and the longest budget of the two.
fn plan_of(ctx: &Ctx, paces: &[Pace]) -> Plan {
    let plans: Vec<Plan> = paces.iter().map(|p| ctx.plan(*p)).collect();
    Plan {
        rounds: plans.iter().map(|p| p.rounds).min().unwrap_or(1),
        min_rounds: plans.iter().map(|p| p.min_rounds).min().unwrap_or(1),
        budget: plans.iter().map(|p| p.budget).max().unwrap_or_default(),
    }
}

/// Makes the sides of `entries`, or the outcome that stands for all of
/// them when one cannot be made.
fn make_all(ctx: &Ctx, entries: &[&Entry]) -> Result<Vec<BoxSide>, Outcome> {
    let mut sides = Vec::new();
    for e in entries {
        match (e.make)(ctx) {
            Ok(s) => sides.push(s),
            Err(NotMade::Unavailable(why)) => {
                return Err(Outcome::Skipped(format!("{}: {why}", e.id)))
            }
            Err(NotMade::Failed(why)) => return Err(Outcome::Failed(format!("{}: {why}", e.id))),
        }
    }
    Ok(sides)
}

/// Measures `entries` together (paired when there are two) with the plan
/// of their paces; one outcome and one list of block headlines per entry.
pub fn measure_together(ctx: &Ctx, entries: &[&Entry]) -> Vec<(Outcome, Vec<f64>)> {
    let paces: Vec<Pace> = entries.iter().map(|e| e.pace).collect();
    measure_with(ctx, entries, plan_of(ctx, &paces))
}

/// [`measure_together`] with an explicit plan.
pub fn measure_with(ctx: &Ctx, entries: &[&Entry], plan: Plan) -> Vec<(Outcome, Vec<f64>)> {
    let fail_all = |o: Outcome| entries.iter().map(|_| (o.clone(), vec![])).collect();
    let mut sides = match make_all(ctx, entries) {
        Ok(s) => s,
        Err(o) => return fail_all(o),
    };
    match measure(ctx, &mut sides, plan) {
        Ok(m) => m.into_iter().map(|m| (m.outcome, m.heads)).collect(),
        Err(f) => fail_all(Outcome::Failed(format!(
            "{}: {}",
            entries[f.side].id, f.error
        ))),
    }
}

/// One side of a comparison, gathered over the passes.
#[derive(Default)]
struct Gathered {
    /// Latencies of every pass, merged; `None` for rates or before the
    /// first pass.
    lat: Option<crate::outcome::Latency>,
    /// Messages of every pass (rates).
    count: u64,
    /// Every block headline of every pass.
    heads: Vec<f64>,
    /// Why it stopped (failed or skipped).
    stopped: Option<Outcome>,
}

impl Gathered {
    fn add(&mut self, o: Outcome, heads: Vec<f64>) {
        match o {
            Outcome::Latency(l) => match &mut self.lat {
                Some(t) => {
                    if let Err(e) = t.hist.add(&l.hist) {
                        self.stopped = Some(Outcome::Failed(e.to_string()));
                    }
                }
                None => self.lat = Some(l),
            },
            Outcome::Throughput { samples, .. } => self.count += samples,
            stopped @ (Outcome::Skipped(_) | Outcome::Failed(_)) => self.stopped = Some(stopped),
        }
        self.heads.extend(heads);
    }

    fn outcome(&self) -> Outcome {
        if let Some(o) = &self.stopped {
            return o.clone();
        }
        match &self.lat {
            Some(l) => Outcome::Latency(l.clone()),
            None => Outcome::Throughput {
                value: crate::runner::median(&mut self.heads.clone()),
                samples: self.count,
            },
        }
    }
}

/// The plan of one pass of a comparison: its share of the rounds, the
/// minimum rounds and the budget.
fn pass_plan(plan: Plan, passes: u32) -> Plan {
    Plan {
        rounds: plan.rounds.div_ceil(passes),
        min_rounds: plan.min_rounds.div_ceil(passes),
        budget: plan.budget / passes,
    }
}

/// Runs `entries`: every comparison paired, in [`Ctx::passes`] passes over
/// all comparisons (so that each one's pairs are spread over the whole run
/// and meet every placement the host gives the two virtual CPUs), then the
/// rows no comparison measured, on their own; calls `progress` (step,
/// what) before each measurement.
pub fn run(ctx: &Ctx, entries: &[Entry], mut progress: impl FnMut(usize, &str)) -> Results {
    let mut figures: Vec<Option<(Outcome, Option<String>, f64)>> = vec![None; entries.len()];
    let pos = |id: &str| entries.iter().position(|e| e.id == id);
    let mut out = Results::default();
    let mut step = 0;
    let cmps = comparisons(entries);
    let passes = ctx.passes();
    let mut gathered: Vec<[Gathered; 2]> = cmps.iter().map(|_| Default::default()).collect();
    let mut seconds = vec![0.0f64; cmps.len()];
    for pass in 0..passes {
        for (k, (a, b, _)) in cmps.iter().enumerate() {
            if gathered[k].iter().any(|g| g.stopped.is_some()) {
                continue;
            }
            progress(step, &format!("{} / {} (pass {})", a.id, b.id, pass + 1));
            step += 1;
            let t0 = std::time::Instant::now();
            let plan = pass_plan(plan_of(ctx, &[a.pace, b.pace]), passes);
            let m = measure_with(ctx, &[a, b], plan);
            seconds[k] += t0.elapsed().as_secs_f64();
            for (g, (o, h)) in gathered[k].iter_mut().zip(m) {
                g.add(o, h);
            }
        }
    }
    for (k, (a, b, main)) in cmps.iter().enumerate() {
        let label = format!("{} / {}", a.id, b.id);
        let (oa, ob) = (gathered[k][0].outcome(), gathered[k][1].outcome());
        let error = match (&oa, &ob) {
            (Outcome::Failed(e), _) | (_, Outcome::Failed(e)) => Some(e.clone()),
            (Outcome::Skipped(e), _) | (_, Outcome::Skipped(e)) => Some(format!("skipped: {e}")),
            _ => None,
        };
        let paired = if error.is_none() {
            Paired::of(&gathered[k][0].heads, &gathered[k][1].heads)
        } else {
            None
        };
        let heads = oa.headline().zip(ob.headline());
        out.comparisons.push(Comparison {
            a: a.id,
            b: b.id,
            main: *main,
            heads,
            paired,
            error,
            seconds: seconds[k],
        });
        for (id, o) in [(a.id, oa), (b.id, ob)] {
            if let Some(i) = pos(id) {
                // A failed or skipped pairing does not settle a row that
                // another pairing may still measure.
                let settled = matches!(&figures[i], Some((o, _, _)) if o.headline().is_some());
                if !settled {
                    figures[i] = Some((o, Some(label.clone()), seconds[k]));
                }
            }
        }
    }
    for (i, e) in entries.iter().enumerate() {
        if figures[i].is_none() {
            progress(step, e.id);
            step += 1;
            let t0 = std::time::Instant::now();
            let (o, _) = measure_together(ctx, &[e])
                .pop()
                .unwrap_or((Outcome::Failed("no result".into()), vec![]));
            figures[i] = Some((o, None, t0.elapsed().as_secs_f64()));
        }
    }
    for (e, f) in entries.iter().zip(figures) {
        let (outcome, measured_in, seconds) =
            f.unwrap_or((Outcome::Failed("not measured".into()), None, 0.0));
        out.records.push(Record {
            id: e.id,
            unit: e.unit,
            wait: e.wait,
            outcome,
            measured_in,
            seconds,
        });
    }
    out
}

/// Measures the cache-line floor again, on its own, and returns its p50 in
/// ns. Run at the end of a suite, it shows whether the floor moved during
/// the run.
///
/// # Errors
/// As the measurement.
pub fn floor_p50(ctx: &Ctx) -> Result<f64, String> {
    let all = entries();
    let e = all
        .iter()
        .find(|e| e.id == "baseline.c2c.rtt")
        .ok_or("no floor entry")?;
    match measure_together(ctx, &[e]).pop() {
        Some((Outcome::Latency(l), _)) => Ok(l.quantile_ns(0.5)),
        other => Err(format!("unexpected outcome {other:?}")),
    }
}

/// Every id the suite reports, in order.
pub fn all_ids() -> Vec<&'static str> {
    entries().iter().map(|e| e.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_comparisons_exist() {
        let all = entries();
        for (i, e) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|o| o.id != e.id), "duplicate {}", e.id);
            for b in e.baseline.iter().chain(e.also) {
                assert!(all.iter().any(|o| o.id == *b), "{}: unknown {b}", e.id);
            }
        }
        for g in GOALS {
            let a = all.iter().find(|e| e.id == g.a).expect("goal row exists");
            assert!(
                a.baseline == Some(g.b) || a.also.contains(&g.b),
                "goal {} / {} is not a comparison",
                g.a,
                g.b
            );
        }
    }

    #[test]
    fn a_filter_brings_what_it_is_compared_with() {
        let all = entries();
        let ids: Vec<&str> = select(&all, Some("queue.spsc.rtt.8"))
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            ids,
            [
                "baseline.c2c.rtt",
                "baseline.c2c.two_lines.rtt",
                "baseline.iceoryx2.rtt",
                "queue.spsc.rtt.8"
            ]
        );
        let sel = select(&all, Some("queue.spsc.rtt.8"));
        let c: Vec<(&str, &str)> = comparisons(&sel)
            .iter()
            .map(|(a, b, _)| (a.id, b.id))
            .collect();
        assert_eq!(
            c,
            [
                ("queue.spsc.rtt.8", "baseline.c2c.rtt"),
                ("queue.spsc.rtt.8", "baseline.c2c.two_lines.rtt"),
                ("queue.spsc.rtt.8", "baseline.iceoryx2.rtt")
            ]
        );
    }

    #[test]
    fn goals_read_their_ratio() {
        let g = GOALS[0];
        let p = |m: f64, s: f64| Paired {
            median: m,
            q25: m - s,
            q75: m + s,
            pairs: 20,
        };
        assert_eq!(g.status(Some(&p(1.1, 0.01))), GoalStatus::Met);
        assert_eq!(g.status(Some(&p(1.3, 0.01))), GoalStatus::Missed);
        // Noisy: decided only by an IQR wholly on one side.
        assert_eq!(g.status(Some(&p(1.1, 0.5))), GoalStatus::Unsure);
        assert_eq!(g.status(Some(&p(0.7, 0.4))), GoalStatus::Met);
        assert_eq!(g.status(Some(&p(2.0, 0.5))), GoalStatus::Missed);
        let few = Paired {
            pairs: 3,
            ..p(1.1, 0.01)
        };
        assert_eq!(g.status(Some(&few)), GoalStatus::Unsure);
        assert_eq!(g.status(None), GoalStatus::NotMeasured);
    }
}
