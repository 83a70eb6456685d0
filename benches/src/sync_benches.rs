//! Measurements of `ipc-sync`: its mutex, semaphore and event.

use crate::outcome::{Outcome, Unit};
use crate::suite::Entry;

const NOT_YET: &str = "ipc-sync has no usable API in the committed tree yet";

fn pending(_: &crate::runner::Ctx) -> Result<Outcome, String> {
    Ok(Outcome::Skipped(NOT_YET.to_owned()))
}

/// The ipc-sync entries of the suite.
pub fn entries() -> Vec<Entry> {
    use Unit::*;
    let e = |id, baseline, also: &'static [&'static str]| Entry {
        id,
        unit: Ns,
        baseline,
        also,
        run: pending,
    };
    vec![
        e(
            "sync.mutex.lock_unlock",
            Some("baseline.pthread_mutex.lock_unlock"),
            &["baseline.raw_sync.mutex.lock_unlock"],
        ),
        e(
            "sync.mutex.handoff.rtt",
            Some("baseline.pthread_mutex.handoff.rtt"),
            &[],
        ),
        e("sync.semaphore.rtt", Some("baseline.posix_sem.rtt"), &[]),
        e("sync.event.rtt", Some("baseline.futex.rtt"), &[]),
    ]
}
