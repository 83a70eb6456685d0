//! What every measurement shares: the run's settings ([`Ctx`]), how many
//! blocks and round trips a measurement makes ([`Pace`], [`Plan`]), the
//! deadline every wait checks ([`Watch`]), and the two shapes of a
//! measurement between two processes ([`PingPong`], [`Stream`]).
//!
//! The harness is single-threaded whenever it forks (the progress bar does
//! not tick on a thread of its own, and thread peers start after process
//! peers), so a forked peer may use anything.

use crate::clock::Clock;
use crate::outcome::Latency;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the suite runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The default: the whole suite in a few minutes.
    Quick,
    /// About five times the blocks of the quick suite.
    Full,
    /// A few blocks of a few samples each: checks that everything runs.
    Smoke,
}

impl Mode {
    /// The name the header and the JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
            Mode::Smoke => "quick-test",
        }
    }
}

/// How fast one unit of a measurement's work is, which sets its block size
/// and block count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Round trips spinning on shared memory: well under a microsecond.
    Spin,
    /// Round trips with a kernel wake-up per message: tens of microseconds.
    Kernel,
    /// A stream of messages (a block is one timed run).
    Stream,
    /// Uncontended operations timed in batches, on one core.
    Op,
    /// Work driven by a Python script (a block is one script request).
    Python,
    /// Starting processes or pools: milliseconds each.
    Slow,
}

/// How many blocks a measurement runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Rounds of blocks (one block of every side per round).
    pub rounds: u32,
    /// Rounds run even when the budget has run out.
    pub min_rounds: u32,
    /// Time after which no new round starts (past `min_rounds`).
    pub budget: Duration,
}

/// Everything a measurement needs to know about the run.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Quick, full or smoke.
    pub mode: Mode,
    /// The two cores: the harness side, the peer side.
    pub cores: (usize, usize),
    /// The clock for per-sample timing.
    pub clock: Clock,
    /// How long one block may take before it is abandoned.
    pub timeout: Duration,
}

impl Ctx {
    /// (untimed warm-up, timed) round trips per block at `pace`.
    pub fn block(&self, pace: Pace) -> (u64, u64) {
        let (warm, n) = match pace {
            Pace::Spin => (64, 2000),
            Pace::Kernel => (4, 200),
            Pace::Python => (5, 100),
            Pace::Op => (2, 25),
            Pace::Stream | Pace::Slow => (1, 5),
        };
        match self.mode {
            Mode::Quick | Mode::Full => (warm, n),
            Mode::Smoke => (warm.min(4), (n / 10).max(2)),
        }
    }

    /// Scales a quick-suite count of messages or operations per block to
    /// the mode (smaller blocks when smoke-testing).
    pub fn count(&self, quick: u64) -> u64 {
        match self.mode {
            Mode::Quick | Mode::Full => quick,
            Mode::Smoke => (quick / 1000).max(16),
        }
    }

    /// How many rounds of blocks a measurement at `pace` makes.
    pub fn plan(&self, pace: Pace) -> Plan {
        let quick = match pace {
            Pace::Spin | Pace::Kernel => 50,
            Pace::Op => 30,
            Pace::Stream => 20,
            Pace::Python | Pace::Slow => 15,
        };
        match self.mode {
            Mode::Quick => Plan {
                rounds: quick,
                min_rounds: 8,
                budget: Duration::from_secs(3),
            },
            Mode::Full => Plan {
                rounds: quick * 5,
                min_rounds: 20,
                budget: Duration::from_secs(30),
            },
            Mode::Smoke => Plan {
                rounds: 3,
                min_rounds: 2,
                budget: Duration::from_secs(1),
            },
        }
    }

    /// How many passes over all comparisons a suite makes: each comparison
    /// runs its share of the rounds in every pass, so its pairs are spread
    /// over the whole run.
    pub fn passes(&self) -> u32 {
        match self.mode {
            Mode::Quick => 4,
            Mode::Full => 10,
            Mode::Smoke => 1,
        }
    }

    /// A watch whose deadline is this context's timeout from now.
    pub fn watch(&self) -> Watch {
        Watch::new(self.timeout)
    }
}

/// A deadline for one measurement, checked by every wait, so a peer that
/// died or hung turns into an error instead of a hang.
#[derive(Clone, Copy, Debug)]
pub struct Watch {
    deadline: Instant,
    /// In the harness: the peer, whose exit ends every wait at once.
    peer: Option<libc::pid_t>,
    /// The address of a word in a shared control segment that, once
    /// non-zero, ends every wait (0: none). See [`Watch::with_flag`].
    flag: usize,
}

impl Watch {
    /// A watch expiring `timeout` from now.
    pub fn new(timeout: Duration) -> Watch {
        Watch {
            deadline: Instant::now() + timeout,
            peer: None,
            flag: 0,
        }
    }

    /// The same watch, also ending waits once `flag` is non-zero (the other
    /// side gave up or left).
    ///
    /// The flag must outlive every copy of the watch: it lives in the
    /// control segment of a [`crate::peer::Peer`], and watches made from it
    /// are used only while that peer runs.
    pub fn with_flag(self, flag: &AtomicU64) -> Watch {
        Watch {
            flag: flag as *const AtomicU64 as usize,
            ..self
        }
    }

    /// Whether the flag of [`Watch::with_flag`] is set.
    fn flagged(&self) -> bool {
        if self.flag == 0 {
            return false;
        }
        let p = self.flag as *const AtomicU64;
        // SAFETY: `flag` is the address of an AtomicU64 in a mapping that
        // outlives this watch (the contract of `with_flag`); at the same
        // address in a forked child, which inherited the mapping.
        unsafe { &*p }.load(Ordering::Acquire) != 0
    }

    /// The same watch, also ending waits when the child `pid` has exited.
    pub fn with_peer(self, pid: u32) -> Watch {
        Watch {
            peer: Some(pid as libc::pid_t),
            ..self
        }
    }

    /// Whether the watched peer has exited (without reaping it, so its
    /// `Process` still collects the status).
    pub fn peer_exited(&self) -> bool {
        let Some(pid) = self.peer else {
            return false;
        };
        // SAFETY: an all-zero siginfo_t is a valid output buffer.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is writable; WNOWAIT leaves the child unreaped and
        // WNOHANG makes the call return at once.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed: pid 0, not exited).
        r == 0 && unsafe { info.si_pid() } != 0
    }

    /// The monotonic deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// An error if the deadline has passed.
    pub fn check(&self, what: &str) -> Result<(), String> {
        if Instant::now() >= self.deadline {
            Err(format!("timed out waiting for {what}"))
        } else if self.peer_exited() || self.flagged() {
            Err(format!("the other side left while waiting for {what}"))
        } else {
            Ok(())
        }
    }

    /// The end of the next slice of a long wait: 50 ms from now, or the
    /// deadline if sooner; blocking waits sleep in slices and call
    /// [`Watch::check`] between them.
    pub fn slice_end(&self) -> Instant {
        (Instant::now() + Duration::from_millis(50)).min(self.deadline)
    }

    /// Spins until `ready` returns true; reads the clock every few thousand
    /// spins only.
    ///
    /// Only a wait that has lasted some milliseconds looks at the clock and
    /// the peer, so short waits (every timed one) are never disturbed by a
    /// system call.
    #[inline]
    pub fn spin_until(&self, what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let mut n: u32 = 0;
        let mut first: Option<Instant> = None;
        while !ready() {
            std::hint::spin_loop();
            n = n.wrapping_add(1);
            if n.is_multiple_of(16_384) {
                let now = Instant::now();
                let since = *first.get_or_insert(now);
                if now >= self.deadline {
                    return Err(format!("timed out waiting for {what}"));
                }
                if now.duration_since(since) >= Duration::from_millis(10) {
                    first = Some(now);
                    self.check(what)?;
                }
            }
        }
        Ok(())
    }
}

/// A round-trip measurement: the peer (a forked child) answers, the harness
/// asks and times.
pub trait PingPong {
    /// In the peer, before it says it is ready (attach ends, close the
    /// harness's descriptors).
    fn peer_setup(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// In the peer: answer `rounds` round trips, checking each message.
    /// Each call numbers its rounds from 0, as the harness's calls of
    /// [`PingPong::round_trip`] within one block do.
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String>;
    /// In the peer, when the harness says stop: release what `peer_setup`
    /// made (a forked peer leaves with `_exit`, which runs no destructor).
    fn peer_teardown(&mut self) {}
    /// In the harness, right after the fork (close the peer's descriptors,
    /// attach ends).
    fn after_fork(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// In the harness: send message `i`, wait for the answer, check it.
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String>;
}

/// A throughput measurement: the harness produces, the peer consumes and
/// checks every message.
pub trait Stream {
    /// In the peer, before it waits for the first start signal.
    fn peer_setup(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// In the peer: receive `n` messages and check them (numbered from 0 in
    /// every block).
    fn consume(&mut self, n: u64, w: &Watch) -> Result<(), String>;
    /// In the peer, when the harness says stop: release what `peer_setup`
    /// made.
    fn peer_teardown(&mut self) {}
    /// In the harness, right after the fork.
    fn after_fork(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// In the harness: send `n` messages.
    fn produce(&mut self, n: u64, w: &Watch) -> Result<(), String>;
}

/// Times `batches` batches of `batch` calls of `op` on this thread and
/// records the per-call cost of each batch (in picoseconds, so a 20 ns
/// operation keeps its decimals).
pub fn time_batches(ctx: &Ctx, batch: u64, batches: u64, mut op: impl FnMut()) -> Latency {
    let clock = ctx.clock;
    let mut lat = Latency::new(1000.0);
    for _ in 0..batches {
        let t0 = clock.now();
        for _ in 0..batch {
            op();
        }
        let t1 = clock.now();
        lat.record_ns(clock.ns(t0, t1) / batch as f64);
    }
    lat
}

/// The median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn smoke_mode_keeps_counts_small() {
        let ctx = Ctx {
            mode: Mode::Smoke,
            cores: (0, 0),
            clock: Clock::instant(),
            timeout: Duration::from_secs(1),
        };
        let (w, n) = ctx.block(Pace::Spin);
        assert!(w >= 2 && n <= 300);
        assert!(ctx.plan(Pace::Spin).rounds <= 5);
    }
}
