//! Measurements of `ipc-queue`: round trips and throughput of its rings.

use crate::outcome::{Outcome, Unit};
use crate::suite::Entry;

const NOT_YET: &str = "ipc-queue has no usable ring API in the committed tree yet";

fn pending(_: &crate::runner::Ctx) -> Result<Outcome, String> {
    Ok(Outcome::Skipped(NOT_YET.to_owned()))
}

/// The ipc-queue entries of the suite.
pub fn entries() -> Vec<Entry> {
    use Unit::*;
    let e = |id, unit, baseline, also: &'static [&'static str]| Entry {
        id,
        unit,
        baseline,
        also,
        run: pending,
    };
    vec![
        e("queue.spsc.rtt.8", Ns, Some("baseline.c2c.rtt"), &[]),
        e("queue.spsc.rtt.64", Ns, Some("baseline.c2c.rtt"), &[]),
        e("queue.spsc.rtt.adaptive", Ns, Some("queue.spsc.rtt.8"), &[]),
        e(
            "queue.spsc.rtt.blocking",
            Ns,
            Some("baseline.futex.rtt"),
            &[],
        ),
        e(
            "queue.mpmc.rtt",
            Ns,
            Some("queue.spsc.rtt.8"),
            &["baseline.c2c.rtt"],
        ),
        e(
            "queue.broadcast.rtt",
            Ns,
            Some("queue.spsc.rtt.8"),
            &["baseline.c2c.rtt"],
        ),
        e(
            "queue.pipe.rtt",
            Ns,
            Some("baseline.pipe.rtt"),
            &["baseline.uds.rtt", "baseline.python.pipe.rtt"],
        ),
        e(
            "queue.spsc.throughput.8",
            MsgPerSec,
            Some("baseline.rtrb.throughput"),
            &[],
        ),
        e(
            "queue.spsc.throughput.64",
            MsgPerSec,
            Some("baseline.pipe.throughput.64"),
            &[],
        ),
        e(
            "queue.spsc.bandwidth.4096",
            GbPerSec,
            Some("baseline.memcpy.bandwidth"),
            &[],
        ),
        e(
            "queue.mpmc.throughput",
            MsgPerSec,
            Some("queue.spsc.throughput.8"),
            &[],
        ),
    ]
}
