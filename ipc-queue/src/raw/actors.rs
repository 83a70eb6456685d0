//! A [`Judge`] for several actors in one process: threads (or loom model
//! threads) that each stand for a process of their own, with an identity
//! of their own, and that a test can declare dead, as a `SIGKILL` would.
//!
//! The raw rings record owners and judge them only through the judge they
//! are given, so a test on the heap or in a model can play several
//! processes, kill one between any two of its steps, and watch the others
//! take its claims over.
//!
//! ```
//! use multiproc_core::liveness::Judge;
//! use multiproc_queue::raw::actors::Actors;
//!
//! let world = Actors::new();
//! let (a, b) = (world.actor(0), world.actor(1));
//! assert_ne!(a.me().unwrap(), b.me().unwrap());
//! assert!(!b.is_dead(a.me().unwrap()));
//! a.die();
//! assert!(b.is_dead(a.me().unwrap()));
//! ```

use crate::primitive::{AtomicU64, Ordering};
use multiproc_core::liveness::Judge;
use multiproc_core::IdentityError;
use std::sync::Arc;

/// The actors of one test: up to 64, each alive until it is declared dead.
///
/// A death is published with release ordering and judged with acquire
/// ordering (a loom atomic in a model): whoever finds an actor dead sees
/// everything that actor did before it died, as whoever reads a process's
/// exit from the kernel knows its accesses are over. Make the actors of a
/// loom model inside the model.
#[derive(Clone, Debug)]
pub struct Actors {
    dead: Arc<AtomicU64>,
}

impl Default for Actors {
    fn default() -> Self {
        Actors::new()
    }
}

impl Actors {
    /// A world where every actor is alive.
    pub fn new() -> Actors {
        Actors {
            dead: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Actor `n` (`0..64`; larger numbers wrap).
    pub fn actor(&self, n: u32) -> Actor {
        Actor {
            n: n % 64,
            dead: Arc::clone(&self.dead),
        }
    }

    /// Whether any actor died.
    pub fn any_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire) != 0
    }
}

/// One actor: its identity, and the judgement of the others.
#[derive(Clone, Debug)]
pub struct Actor {
    n: u32,
    dead: Arc<AtomicU64>,
}

impl Actor {
    /// The packed id this actor records as an owner: pid `n + 1`, start
    /// time 1 (as [`ProcessId::to_u64`](multiproc_core::ProcessId::to_u64) packs
    /// them; never zero).
    pub fn id(&self) -> u64 {
        packed(self.n)
    }

    /// Declares this actor dead: from now on every judge counts its claims
    /// as a dead process's.
    pub fn die(&self) {
        self.dead.fetch_or(1 << self.n, Ordering::Release);
    }

    /// Whether this actor was declared dead.
    pub fn is_declared_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire) & (1 << self.n) != 0
    }
}

fn packed(n: u32) -> u64 {
    (u64::from(n + 1) << 32) | 1
}

impl Judge for Actor {
    fn me(&self) -> Result<u64, IdentityError> {
        Ok(self.id())
    }

    fn is_dead(&self, owner: u64) -> bool {
        let dead = self.dead.load(Ordering::Acquire);
        (0..64).any(|n| dead & (1 << n) != 0 && packed(n) == owner)
    }

    fn thread_is_dead(&self, owner: u64, _tid: u32) -> bool {
        self.is_dead(owner)
    }
}
