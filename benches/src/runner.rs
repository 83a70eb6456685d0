//! How measurements run: two processes pinned to two cores, a warm-up, then
//! timed round trips into an HDR histogram, or timed streams of messages.
//!
//! The harness is single-threaded whenever it forks (the progress bar does
//! not tick on a thread of its own), so a forked peer may use anything.

use crate::clock::Clock;
use crate::machine::pin_to_core;
use crate::outcome::{Latency, Outcome};
use crate::shm::{Shm, LINE};
use ipc_core::Process;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long the suite runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The default: the whole suite in well under two minutes.
    Quick,
    /// Ten times the samples of the quick suite.
    Full,
    /// A few hundred samples each: checks that everything runs (tests).
    Smoke,
}

/// How fast one round trip of a measurement is, which sets its sample count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    /// Spinning on shared memory: well under a microsecond.
    Spin,
    /// A kernel wake-up per message: tens of microseconds on a VM.
    Kernel,
    /// Starting a process or a Python interpreter: milliseconds.
    Slow,
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
    /// How long one measurement may take before it is abandoned.
    pub timeout: Duration,
}

impl Ctx {
    /// Warm-up rounds and timed rounds for a round-trip measurement.
    pub fn rounds(&self, speed: Speed) -> (u64, u64) {
        let (warm, n) = match speed {
            Speed::Spin => (20_000, 200_000),
            Speed::Kernel => (1_000, 20_000),
            Speed::Slow => (5, 100),
        };
        self.scaled(warm, n)
    }

    /// Scales a quick-suite (warm-up, samples) pair to the mode.
    pub fn scaled(&self, warm: u64, n: u64) -> (u64, u64) {
        match self.mode {
            Mode::Quick => (warm, n),
            Mode::Full => (warm * 2, n * 10),
            Mode::Smoke => ((warm / 100).max(2), (n / 100).clamp(20, 300)),
        }
    }

    /// Scales a quick-suite count (messages, operations) to the mode.
    pub fn count(&self, quick: u64) -> u64 {
        match self.mode {
            Mode::Quick => quick,
            Mode::Full => quick * 10,
            Mode::Smoke => (quick / 1000).max(100),
        }
    }

    /// How many timed repetitions a throughput measurement makes.
    pub fn reps(&self) -> u32 {
        match self.mode {
            Mode::Quick => 5,
            Mode::Full => 15,
            Mode::Smoke => 2,
        }
    }

    /// How long one measurement may keep collecting samples: it stops early,
    /// with the samples it has (the `samples` field says how many), once this
    /// has passed. Keeps the quick suite short on a loaded machine, where a
    /// kernel wake-up can wait for a whole time slice.
    pub fn budget(&self) -> Duration {
        match self.mode {
            Mode::Quick => Duration::from_millis(2500),
            Mode::Full => Duration::from_secs(30),
            Mode::Smoke => Duration::from_secs(1),
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
}

impl Watch {
    /// A watch expiring `timeout` from now.
    pub fn new(timeout: Duration) -> Watch {
        Watch {
            deadline: Instant::now() + timeout,
            peer: None,
        }
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
        } else if self.peer_exited() {
            Err(format!("the peer exited while waiting for {what}"))
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
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String>;
    /// In the harness, right after the fork (close the peer's descriptors,
    /// attach ends).
    fn after_fork(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// In the harness: send message `i`, wait for the answer, check it.
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String>;
}

/// Where a peer leaves the text of its error for the harness to report.
struct ErrorBox {
    shm: Shm,
}

impl ErrorBox {
    const CAP: usize = 1024 - 8;

    fn new() -> Result<ErrorBox, String> {
        Ok(ErrorBox {
            shm: Shm::new(1024)?,
        })
    }

    /// In the peer: records `msg` (cut to the box's size).
    fn put(&self, msg: &str) {
        let b = msg.as_bytes();
        let n = b.len().min(Self::CAP);
        // SAFETY: only the peer writes these bytes, once, before publishing
        // their length; the harness reads them only after seeing the length.
        unsafe { self.shm.bytes_mut(8, n) }.copy_from_slice(&b[..n]);
        self.shm.u64_at(0).store(n as u64, Ordering::Release);
    }

    /// In the harness: the peer's error, if it recorded one.
    fn take(&self) -> Option<String> {
        let n = (self.shm.u64_at(0).load(Ordering::Acquire) as usize).min(Self::CAP);
        if n == 0 {
            return None;
        }
        // SAFETY: the peer wrote these bytes before publishing `n` (acquired
        // above) and never writes them again.
        let b = unsafe { self.shm.bytes_mut(8, n) };
        Some(String::from_utf8_lossy(b).into_owned())
    }
}

/// Runs a peer process for `f`, pinned to the second core, and returns it.
/// An error of the peer is left in `errors`.
fn start_peer(
    ctx: &Ctx,
    errors: &ErrorBox,
    f: impl FnOnce() -> Result<(), String>,
) -> Result<Process, String> {
    let core = ctx.cores.1;
    let b = Process::builder().name("ipc-bench-peer").daemon(true);
    // SAFETY: a peer runs one measurement: it pins itself, then touches only
    // the shared memory of that measurement and reports through `errors`
    // (shared memory too); it takes no lock another thread of the harness
    // (or of the test harness running it) may hold.
    unsafe {
        b.fork_unchecked(move || -> i32 {
            match pin_to_core(core).and_then(|()| f()) {
                Ok(()) => 0,
                Err(e) => {
                    errors.put(&e);
                    1
                }
            }
        })
    }
    .map_err(|e| format!("cannot start the peer: {e}"))
}

/// Waits for the peer to exit and turns its status into a result; kills it
/// if it is still running after `grace`.
fn finish_peer(peer: Process, errors: &ErrorBox, grace: Duration) -> Result<(), String> {
    match peer.join_timeout(grace) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(match errors.take() {
            Some(e) => format!("peer: {e}"),
            None => format!("the peer failed ({s})"),
        }),
        Ok(None) => {
            let _ = peer.kill();
            let _ = peer.join();
            Err("the peer did not finish".into())
        }
        Err(e) => Err(format!("joining the peer: {e}")),
    }
}

/// Stops a peer that is waiting for work the harness will not send (the
/// measurement used up its time budget).
fn stop_peer(peer: Process) {
    let _ = peer.kill();
    let _ = peer.join();
}

/// Stops a peer after the harness side failed; returns the peer's own error
/// if it left one (the cause), else the harness's.
fn abandon_peer(peer: Process, errors: &ErrorBox, err: String) -> String {
    let _ = peer.kill();
    let _ = peer.join();
    match errors.take() {
        Some(e) => format!("peer: {e}"),
        None => err,
    }
}

/// Measures round trips of `pp` at `speed`: a warm-up, then one histogram
/// sample per round trip, timed with the context's clock, until the planned
/// count or [`Ctx::budget`] is reached.
///
/// # Errors
/// Pinning, starting the peer, a wrong answer, a timeout, or a failed peer.
pub fn measure_rtt(ctx: &Ctx, speed: Speed, pp: &mut impl PingPong) -> Result<Outcome, String> {
    let (warm, n) = ctx.rounds(speed);
    measure_rtt_n(ctx, warm, n, pp)
}

/// [`measure_rtt`] with explicit warm-up and sample counts.
///
/// # Errors
/// As [`measure_rtt`].
pub fn measure_rtt_n(
    ctx: &Ctx,
    warm: u64,
    n: u64,
    pp: &mut impl PingPong,
) -> Result<Outcome, String> {
    let mut lat = Latency::new(1.0);
    measure_rtt_each(ctx, warm, n, pp, |_, ns| lat.record_ns(ns))?;
    Ok(Outcome::Latency(lat))
}

/// Round trips taking turns between two ping-pongs in blocks, so that both
/// see the same placement of the two virtual CPUs: `a` serves rounds in
/// even-numbered blocks, `b` in odd ones, in one peer process.
struct Interleaved<'a, A, B> {
    a: &'a mut A,
    b: &'a mut B,
    /// Round trips per block.
    block: u64,
}

/// Round trips per block of an interleaved measurement: long enough that
/// the first, colder round trips of a block do not move the median, short
/// enough (well under a millisecond) that both sides see every placement.
/// Short runs (`--quick-test`) use smaller blocks, at least 8 per run.
pub const INTERLEAVE_BLOCK: u64 = 1000;

/// Whether round `round` of an interleaved measurement belongs to `a`.
fn in_a(round: u64, block: u64) -> bool {
    (round / block).is_multiple_of(2)
}

impl<A: PingPong, B: PingPong> PingPong for Interleaved<'_, A, B> {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.a.peer_setup()?;
        self.b.peer_setup()
    }

    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        let mut round = 0;
        while round < rounds {
            let n = self.block.min(rounds - round);
            if in_a(round, self.block) {
                self.a.serve(n, w)?;
            } else {
                self.b.serve(n, w)?;
            }
            round += n;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.a.after_fork()?;
        self.b.after_fork()
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        // Each block numbers its rounds from 0, as each `serve` call does.
        let j = i % self.block;
        if in_a(i, self.block) {
            self.a.round_trip(j, w)
        } else {
            self.b.round_trip(j, w)
        }
    }
}

/// Measures the round trips of `a` and `b` taking turns in blocks of
/// [`INTERLEAVE_BLOCK`] within one run at `speed`, and returns the two
/// distributions. On a virtual machine whose CPUs the host moves every few
/// seconds, the ratio of their medians is steady where two measurements made
/// one after the other are not.
///
/// # Errors
/// As [`measure_rtt`].
pub fn measure_rtt_interleaved(
    ctx: &Ctx,
    speed: Speed,
    a: &mut impl PingPong,
    b: &mut impl PingPong,
) -> Result<(Latency, Latency), String> {
    let (warm, n) = ctx.rounds(speed);
    let block = (n / 8).clamp(1, INTERLEAVE_BLOCK);
    // Whole blocks, so that the warm-up ends where a block of `a` starts.
    let warm = warm.div_ceil(2 * block) * 2 * block;
    let (mut la, mut lb) = (Latency::new(1.0), Latency::new(1.0));
    let mut pp = Interleaved { a, b, block };
    measure_rtt_each(ctx, warm, n, &mut pp, |round, ns| {
        if in_a(round, block) {
            la.record_ns(ns);
        } else {
            lb.record_ns(ns);
        }
    })?;
    Ok((la, lb))
}

/// The body of [`measure_rtt_n`]: `record` gets each timed round's number
/// and round-trip time in ns.
fn measure_rtt_each(
    ctx: &Ctx,
    warm: u64,
    n: u64,
    pp: &mut impl PingPong,
    mut record: impl FnMut(u64, f64),
) -> Result<(), String> {
    pin_to_core(ctx.cores.0)?;
    let total = warm + n;
    let w = ctx.watch();
    let ready = Shm::new(LINE)?;
    let errors = ErrorBox::new()?;
    let peer = {
        let pp = &mut *pp;
        let ready = &ready;
        start_peer(ctx, &errors, move || {
            pp.peer_setup()?;
            ready.u64_at(0).store(1, Ordering::Release);
            pp.serve(total, &w)
        })?
    };
    let w = w.with_peer(peer.pid());
    let clock = ctx.clock;
    let budget = ctx.budget();
    let run = (|| {
        pp.after_fork()?;
        w.spin_until("the peer to be ready", || {
            ready.u64_at(0).load(Ordering::Acquire) == 1
        })?;
        // Rounds are numbered on: a warm-up cut short by the budget leaves
        // the peer expecting more rounds than the harness sends, which the
        // count below notices.
        let mut round = 0;
        let start = Instant::now();
        while round < warm {
            pp.round_trip(round, &w)?;
            round += 1;
            if round % 64 == 0 && start.elapsed() > budget / 4 {
                break;
            }
        }
        let start = Instant::now();
        for k in 0..n {
            let t0 = clock.now();
            pp.round_trip(round, &w)?;
            let t1 = clock.now();
            record(round, clock.ns(t0, t1));
            round += 1;
            if k % 64 == 63 && start.elapsed() > budget {
                break;
            }
        }
        // Fewer rounds than the peer serves: it waits for one that never
        // comes, and is stopped.
        Ok::<bool, String>(round == total)
    })();
    match run {
        Err(e) => return Err(abandon_peer(peer, &errors, e)),
        Ok(true) => finish_peer(peer, &errors, Duration::from_secs(10))?,
        Ok(false) => stop_peer(peer),
    }
    Ok(())
}

/// A throughput measurement: the harness produces, the peer consumes and
/// checks every message.
pub trait Stream {
    /// In the peer, before it waits for the first start signal.
    fn peer_setup(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// In the peer: receive `n` messages and check them.
    fn consume(&mut self, n: u64, w: &Watch) -> Result<(), String>;
    /// In the harness, right after the fork.
    fn after_fork(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// In the harness: send `n` messages.
    fn produce(&mut self, n: u64, w: &Watch) -> Result<(), String>;
}

/// Measures messages per second of `s`: an untimed warm-up of `n / 4`
/// messages, then [`Ctx::reps`] timed runs of `n` messages each (fewer, but
/// at least one, if [`Ctx::budget`] runs out), from the harness's start
/// signal to the peer's "all received" flag. Returns the median rate and the
/// number of messages timed.
///
/// # Errors
/// As [`measure_rtt`].
pub fn measure_stream(ctx: &Ctx, n: u64, s: &mut impl Stream) -> Result<(f64, u64), String> {
    pin_to_core(ctx.cores.0)?;
    let ctl = Shm::new(2 * LINE)?;
    let errors = ErrorBox::new()?;
    let reps = ctx.reps() as u64;
    let warm = (n / 4).max(1);
    let w = ctx.watch();
    let peer = {
        let s = &mut *s;
        let ctl = &ctl;
        start_peer(ctx, &errors, move || {
            s.peer_setup()?;
            for r in 1..=reps + 1 {
                w.spin_until("the start signal", || {
                    ctl.u64_at(0).load(Ordering::Acquire) == r
                })?;
                s.consume(if r == 1 { warm } else { n }, &w)?;
                ctl.u64_at(LINE).store(r, Ordering::Release);
            }
            Ok(())
        })?
    };
    let w = w.with_peer(peer.pid());
    let mut rates = Vec::new();
    let budget = ctx.budget();
    let start = Instant::now();
    let run = (|| {
        s.after_fork()?;
        for r in 1..=reps + 1 {
            if r > 2 && start.elapsed() > budget {
                // Out of time: the peer waits for a start that never comes.
                return Ok(false);
            }
            let count = if r == 1 { warm } else { n };
            let t0 = Instant::now();
            ctl.u64_at(0).store(r, Ordering::Release);
            s.produce(count, &w)?;
            w.spin_until("the consumer", || {
                ctl.u64_at(LINE).load(Ordering::Acquire) == r
            })?;
            let secs = t0.elapsed().as_secs_f64();
            if r > 1 {
                rates.push(count as f64 / secs);
            }
        }
        Ok::<bool, String>(true)
    })();
    match run {
        Err(e) => return Err(abandon_peer(peer, &errors, e)),
        Ok(true) => finish_peer(peer, &errors, Duration::from_secs(10))?,
        Ok(false) => stop_peer(peer),
    }
    let timed = rates.len() as u64;
    Ok((median(&mut rates), n * timed))
}

/// Times `batches` batches of `batch` calls of `op` on this thread and
/// records the per-call cost of each batch (in picoseconds, so a 20 ns
/// operation keeps its decimals).
pub fn measure_batches(ctx: &Ctx, batch: u64, batches: u64, mut op: impl FnMut()) -> Outcome {
    let clock = ctx.clock;
    let mut lat = Latency::new(1000.0);
    for _ in 0..(batches / 10).max(1) {
        for _ in 0..batch {
            op();
        }
    }
    for _ in 0..batches {
        let t0 = clock.now();
        for _ in 0..batch {
            op();
        }
        let t1 = clock.now();
        lat.record_ns(clock.ns(t0, t1) / batch as f64);
    }
    Outcome::Latency(lat)
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

    /// A cache-line ping-pong whose harness side dawdles 10 ms per round.
    struct Slow(crate::baselines::rtt::C2c);

    impl PingPong for Slow {
        fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
            self.0.serve(rounds, w)
        }
        fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
            std::thread::sleep(Duration::from_millis(10));
            self.0.round_trip(i, w)
        }
    }

    #[test]
    fn the_budget_cuts_warm_up_and_sampling_and_stops_the_peer() {
        let ctx = Ctx {
            mode: Mode::Smoke,
            cores: (0, ipc_core::cpu_count().min(2) - 1),
            clock: Clock::instant(),
            timeout: Duration::from_secs(30),
        };
        let mut pp = Slow(crate::baselines::rtt::C2c::new().expect("segment"));
        // 100 warm-up rounds would take 1 s: cut at 64 (a quarter of the
        // 1 s budget is gone by then); sampling is cut at the first multiple
        // of 64 rounds past the budget (128 need 1.28 s at least, so never
        // all 200); the peer, still owed rounds, is stopped, not awaited.
        let out = measure_rtt_n(&ctx, 100, 200, &mut pp).expect("measured");
        let Outcome::Latency(l) = out else {
            panic!("not a latency: {out:?}");
        };
        assert!([64, 128].contains(&l.samples()), "{} samples", l.samples());
        assert!(
            l.quantile_ns(0.5) >= 10e6,
            "each sample includes the 10 ms pause"
        );
    }

    #[test]
    fn smoke_mode_keeps_counts_small() {
        let ctx = Ctx {
            mode: Mode::Smoke,
            cores: (0, 0),
            clock: Clock::instant(),
            timeout: Duration::from_secs(1),
        };
        let (w, n) = ctx.rounds(Speed::Spin);
        assert!(w >= 2 && n <= 300);
    }
}
