//! The scenarios: each runs one round of processes, kills and checks.

pub(crate) mod containers;
pub(crate) mod hostile;
pub(crate) mod locks;
pub(crate) mod pool;
pub(crate) mod rings;
pub(crate) mod waiters;

use crate::runner::Round;

/// A named scenario.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) run: fn(&mut Round<'_>),
}

/// Every scenario, in the order `--scenario` help lists them.
pub(crate) const ALL: &[Scenario] = &[
    Scenario {
        name: "spsc",
        run: rings::spsc_round,
    },
    Scenario {
        name: "mpmc",
        run: rings::mpmc_round,
    },
    Scenario {
        name: "broadcast",
        run: rings::broadcast_round,
    },
    Scenario {
        name: "mutex",
        run: locks::mutex_round,
    },
    Scenario {
        name: "recoverable-semaphore",
        run: locks::permits_round,
    },
    Scenario {
        name: "semaphore",
        run: waiters::semaphore_round,
    },
    Scenario {
        name: "condvar",
        run: waiters::condvar_round,
    },
    Scenario {
        name: "event",
        run: waiters::event_round,
    },
    Scenario {
        name: "barrier",
        run: waiters::barrier_round,
    },
    Scenario {
        name: "pool-map",
        run: pool::map_round,
    },
    Scenario {
        name: "pool-imap-unordered",
        run: pool::imap_round,
    },
    Scenario {
        name: "hostile-spsc",
        run: hostile::spsc_round,
    },
    Scenario {
        name: "hostile-mpmc",
        run: hostile::mpmc_round,
    },
    Scenario {
        name: "hostile-broadcast",
        run: hostile::broadcast_round,
    },
    Scenario {
        name: "hostile-mutex",
        run: hostile::mutex_round,
    },
    Scenario {
        name: "containers",
        run: containers::containers_round,
    },
];

/// The names of every scenario.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|s| s.name).collect()
}
