//! The list of measurements, which baseline each is compared with, and the
//! run of a selection of them.

use crate::baselines::python::{self, PyBench};
use crate::baselines::rtt::{C2c, FdKind, FdPingPong, Futex, Handoff, PosixSem, PthreadTurnLock};
use crate::baselines::{locks, throughput};
use crate::outcome::{ratio, Outcome, Record, Unit};
use crate::runner::{measure_rtt, Ctx, Speed};
use crate::workspace;

/// One measurement of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Its id (the JSON `id`).
    pub id: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The id its ratio is taken against.
    pub baseline: Option<&'static str>,
    /// Further ids worth comparing with, listed under the table.
    pub also: &'static [&'static str],
    /// Runs it. `Ok(Outcome::Skipped)` for "cannot run here", `Err` for a
    /// failure (reported as skipped with the error).
    pub run: fn(&Ctx) -> Result<Outcome, String>,
}

impl Entry {
    /// Whether this is a round-trip latency (plotted by `--plot`).
    pub fn is_round_trip(&self) -> bool {
        self.id.contains(".rtt")
    }
}

const fn e(
    id: &'static str,
    unit: Unit,
    baseline: Option<&'static str>,
    run: fn(&Ctx) -> Result<Outcome, String>,
) -> Entry {
    Entry {
        id,
        unit,
        baseline,
        also: &[],
        run,
    }
}

/// Every measurement, baselines first (in the order they run).
pub fn entries() -> Vec<Entry> {
    use Unit::*;
    let mut v = vec![
        e("baseline.c2c.rtt", Ns, None, |c| {
            measure_rtt(c, Speed::Spin, &mut C2c::new()?)
        }),
        e("baseline.futex.rtt", Ns, None, |c| {
            measure_rtt(c, Speed::Kernel, &mut Futex::new()?)
        }),
        e("baseline.eventfd.rtt", Ns, None, |c| {
            measure_rtt(c, Speed::Kernel, &mut FdPingPong::new(FdKind::Eventfd)?)
        }),
        e("baseline.pipe.rtt", Ns, None, |c| {
            measure_rtt(c, Speed::Kernel, &mut FdPingPong::new(FdKind::Pipe)?)
        }),
        e("baseline.uds.rtt", Ns, None, |c| {
            measure_rtt(c, Speed::Kernel, &mut FdPingPong::new(FdKind::Uds)?)
        }),
        e("baseline.posix_sem.rtt", Ns, None, |c| {
            measure_rtt(c, Speed::Kernel, &mut PosixSem::new()?)
        }),
        e(
            "baseline.pthread_mutex.lock_unlock",
            Ns,
            None,
            locks::pthread_lock_unlock,
        ),
        e("baseline.pthread_mutex.handoff.rtt", Ns, None, |c| {
            measure_rtt(c, Speed::Kernel, &mut Handoff::new(PthreadTurnLock::new()?))
        }),
        e(
            "baseline.raw_sync.mutex.lock_unlock",
            Ns,
            None,
            locks::raw_sync_lock_unlock,
        ),
        e(
            "baseline.rtrb.throughput",
            MsgPerSec,
            None,
            throughput::rtrb_throughput,
        ),
        e(
            "baseline.pipe.throughput.64",
            MsgPerSec,
            None,
            throughput::pipe_throughput,
        ),
        e(
            "baseline.memcpy.bandwidth",
            GbPerSec,
            None,
            throughput::memcpy_bandwidth,
        ),
        e("baseline.python.pipe.rtt", Ns, None, |c| {
            python::run(c, PyBench::PipeRtt)
        }),
        e("baseline.python.queue.rtt", Ns, None, |c| {
            python::run(c, PyBench::QueueRtt)
        }),
        e("baseline.python.lock", Ns, None, |c| {
            python::run(c, PyBench::Lock)
        }),
        e("baseline.python.pool.task", Ns, None, |c| {
            python::run(c, PyBench::PoolTask)
        }),
        e("baseline.python.pool.task.default", Ns, None, |c| {
            python::run(c, PyBench::PoolTaskDefault)
        }),
        e("baseline.python.pool.startup", Ns, None, |c| {
            python::run(c, PyBench::PoolStartup)
        }),
        e("process.start.fork", Ns, None, workspace::start_fork),
        e("process.start.spawn", Ns, None, workspace::start_spawn),
    ];
    v.extend(crate::queue_benches::entries());
    v.extend(crate::sync_benches::entries());
    v.extend(crate::pool_benches::entries());
    v
}

/// The entries `filter` selects (by substring of the id; `None`: all),
/// plus the baselines those need for their ratios, in suite order.
pub fn select(all: &[Entry], filter: Option<&str>) -> Vec<Entry> {
    let Some(f) = filter else {
        return all.to_vec();
    };
    let chosen: Vec<&Entry> = all.iter().filter(|e| e.id.contains(f)).collect();
    all.iter()
        .filter(|e| {
            chosen
                .iter()
                .any(|c| c.id == e.id || c.baseline == Some(e.id))
        })
        .copied()
        .collect()
}

/// Runs `entries` in order, calling `progress` (index, entry) before each, and returns one
/// record per entry with its ratios filled in.
pub fn run(ctx: &Ctx, entries: &[Entry], mut progress: impl FnMut(usize, &Entry)) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        progress(i, e);
        let t0 = std::time::Instant::now();
        let outcome = match (e.run)(ctx) {
            Ok(o) => o,
            Err(err) => Outcome::Skipped(format!("failed: {err}")),
        };
        records.push(Record {
            id: e.id,
            unit: e.unit,
            outcome,
            baseline: e.baseline,
            ratio: None,
            also: vec![],
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    for (i, e) in entries.iter().enumerate() {
        let find = |id: &str| records.iter().find(|r| r.id == id).map(|r| &r.outcome);
        let main = e
            .baseline
            .and_then(find)
            .and_then(|b| ratio(&records[i].outcome, b));
        let also: Vec<(&'static str, f64)> = e
            .also
            .iter()
            .filter_map(|id| Some((*id, ratio(&records[i].outcome, find(id)?)?)))
            .collect();
        records[i].ratio = main;
        records[i].also = also;
    }
    records
}

/// Measures the cache-line floor again (as `baseline.c2c.rtt` does) and
/// returns its p50 in ns. Run at the end of a suite, it shows whether the
/// floor moved during the run: on a virtual machine the host may place the
/// two virtual CPUs nearer or farther apart at any time.
///
/// # Errors
/// As the measurement.
pub fn floor_p50(ctx: &Ctx) -> Result<f64, String> {
    match measure_rtt(ctx, Speed::Spin, &mut C2c::new()?)? {
        Outcome::Latency(l) => Ok(l.quantile_ns(0.5)),
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
    fn ids_are_unique_and_baselines_exist() {
        let all = entries();
        for (i, e) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|o| o.id != e.id), "duplicate {}", e.id);
            if let Some(b) = e.baseline {
                let pos = all.iter().position(|o| o.id == b);
                assert!(
                    pos.is_some_and(|p| p < i),
                    "{}: baseline {b} must run first",
                    e.id
                );
            }
            for a in e.also {
                assert!(all.iter().any(|o| o.id == *a), "{}: unknown {a}", e.id);
            }
        }
    }

    #[test]
    fn a_filter_brings_its_baselines() {
        let all = entries();
        let ids: Vec<&str> = select(&all, Some("queue.spsc.rtt.8"))
            .iter()
            .map(|e| e.id)
            .collect();
        // A substring: the interleaved row matches too, and brings its own
        // baseline (which comes first in the suite, as it measures both).
        assert_eq!(
            ids,
            [
                "baseline.c2c.rtt",
                "queue.spsc.rtt.8",
                "baseline.c2c.rtt.interleaved",
                "queue.spsc.rtt.8.interleaved"
            ]
        );
    }
}
