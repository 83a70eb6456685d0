//! Measurements in blocks, and several of them taking turns.
//!
//! A [`Side`] is one thing measured (a ring, a baseline, a peer crate), able
//! to run a short block of work on command: a few thousand round trips, one
//! timed stream of messages, a few batches of lock operations. [`measure`]
//! starts the sides it is given and runs their blocks in turns: A, B, then
//! B, A, then A, B, ... (the order flips every round so that neither side
//! always follows the other), over the whole measurement. On a virtual
//! machine whose CPUs the host places nearer or farther apart every few
//! seconds, each pair of neighbouring blocks sees the same placement, so
//! the ratio of the two blocks holds still where two measurements made one
//! after the other do not; [`Paired`] summarizes those per-pair ratios.

use crate::outcome::{Latency, Outcome};
use crate::peer::{Ctl, Peer};
use crate::runner::{median, Ctx, PingPong, Plan, Stream, Watch};
use std::time::Instant;

/// What one block produced.
#[derive(Clone, Debug)]
pub enum Block {
    /// Latency samples (round trips or per-operation costs).
    Latency(Latency),
    /// A rate over `count` messages (or operations, or bytes).
    Rate {
        /// The rate, in the measurement's unit.
        value: f64,
        /// How many messages it was measured over.
        count: u64,
    },
}

impl Block {
    /// The block's headline: its median latency, or its rate.
    pub fn headline(&self) -> f64 {
        match self {
            Block::Latency(l) => l.quantile_ns(0.5),
            Block::Rate { value, .. } => *value,
        }
    }
}

/// Why a side could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotMade {
    /// It cannot run on this machine (a missing program): a skipped row.
    Unavailable(String),
    /// Making it failed: a failed row.
    Failed(String),
}

impl From<String> for NotMade {
    fn from(e: String) -> NotMade {
        NotMade::Failed(e)
    }
}

impl From<&str> for NotMade {
    fn from(e: &str) -> NotMade {
        NotMade::Failed(e.to_owned())
    }
}

/// One thing measured in blocks.
pub trait Side {
    /// Whether [`Side::start`] forks a process; those start before the
    /// others, so the harness forks while it is single-threaded.
    fn forks(&self) -> bool {
        false
    }
    /// Starts the side's peer (if any) and waits until it is ready.
    ///
    /// # Errors
    /// Whatever kept it from starting.
    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        let _ = ctx;
        Ok(())
    }
    /// Runs one block.
    ///
    /// # Errors
    /// A wrong answer, a timeout, a failed peer.
    fn block(&mut self, ctx: &Ctx) -> Result<Block, String>;
    /// Stops the peer and releases what `start` made.
    ///
    /// # Errors
    /// The peer failed or did not finish.
    fn stop(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Ends the side after a block failed with `err`; returns the cause (the
    /// peer's own error when it left one).
    fn fail(&mut self, err: String) -> String {
        let _ = self.stop();
        err
    }
}

/// A boxed side, as the suite makes them.
pub type BoxSide = Box<dyn Side>;

/// What one side of a measurement produced.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Every timed sample of every block (latencies), or the median of the
    /// block rates over all messages (rates).
    pub outcome: Outcome,
    /// Each round's block headline, in round order.
    pub heads: Vec<f64>,
}

/// A failure of [`measure`]: which side (index in the order given) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The side that failed.
    pub side: usize,
    /// Its error (the peer's own, when it left one).
    pub error: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

/// Runs `sides` in turns per `plan`: one untimed warm-up block each, then
/// rounds of one block per side, the order flipped every round, until
/// `plan.rounds` or (past `plan.min_rounds`) the budget. Returns one
/// result per side, in the order given.
///
/// # Errors
/// The first failure of any side, naming it; every side is stopped first.
pub fn measure(ctx: &Ctx, sides: &mut [BoxSide], plan: Plan) -> Result<Vec<Measured>, Failure> {
    // Forking sides first, while the harness has no other thread.
    let mut order: Vec<usize> = (0..sides.len()).collect();
    order.sort_by_key(|&i| !sides[i].forks());
    let mut started: Vec<usize> = Vec::new();
    for &i in &order {
        if let Err(e) = sides[i].start(ctx) {
            for &j in started.iter().rev() {
                let _ = sides[j].stop();
            }
            return Err(Failure { side: i, error: e });
        }
        started.push(i);
    }
    let run = run_rounds(ctx, sides, plan);
    match run {
        Ok(out) => {
            let mut first_err = None;
            for &j in started.iter().rev() {
                if let Err(e) = sides[j].stop() {
                    first_err.get_or_insert(Failure { side: j, error: e });
                }
            }
            first_err.map_or(Ok(out), Err)
        }
        Err((i, e)) => {
            let cause = sides[i].fail(e);
            for &j in started.iter().rev() {
                if j != i {
                    let _ = sides[j].stop();
                }
            }
            Err(Failure {
                side: i,
                error: cause,
            })
        }
    }
}

/// The rounds of [`measure`]; an error names the side that failed.
fn run_rounds(
    ctx: &Ctx,
    sides: &mut [BoxSide],
    plan: Plan,
) -> Result<Vec<Measured>, (usize, String)> {
    let k = sides.len();
    for (i, s) in sides.iter_mut().enumerate() {
        s.block(ctx).map_err(|e| (i, e))?;
    }
    let mut lat: Vec<Option<Latency>> = vec![None; k];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); k];
    let mut counts = vec![0u64; k];
    let mut heads: Vec<Vec<f64>> = vec![Vec::new(); k];
    let start = Instant::now();
    for round in 0..plan.rounds {
        if round >= plan.min_rounds && start.elapsed() > plan.budget {
            break;
        }
        for step in 0..k {
            let i = if round % 2 == 0 { step } else { k - 1 - step };
            let b = sides[i].block(ctx).map_err(|e| (i, e))?;
            heads[i].push(b.headline());
            match b {
                Block::Latency(l) => match &mut lat[i] {
                    Some(total) => {
                        total.hist.add(&l.hist).map_err(|e| (i, e.to_string()))?;
                    }
                    None => lat[i] = Some(l),
                },
                Block::Rate { value, count } => {
                    rates[i].push(value);
                    counts[i] += count;
                }
            }
        }
    }
    Ok((0..k)
        .map(|i| {
            let outcome = match lat[i].take() {
                Some(l) => Outcome::Latency(l),
                None => Outcome::Throughput {
                    value: median(&mut rates[i].clone()),
                    samples: counts[i],
                },
            };
            Measured {
                outcome,
                heads: std::mem::take(&mut heads[i]),
            }
        })
        .collect())
}

/// The widest spread a paired ratio may have and still be printed as a
/// result: its interquartile range, as a fraction of the median, at most
/// this (0.2: the middle half of the per-pair ratios lies within about
/// ±10% of the median).
pub const MAX_SPREAD: f64 = 0.2;

/// The per-pair ratios of two sides measured in turns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Median of the per-pair ratios a/b.
    pub median: f64,
    /// Their first quartile.
    pub q25: f64,
    /// Their third quartile.
    pub q75: f64,
    /// How many pairs.
    pub pairs: usize,
}

impl Paired {
    /// The per-pair ratios of two rounds' headlines (`None` without pairs).
    pub fn of(a: &[f64], b: &[f64]) -> Option<Paired> {
        let mut r: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(x, y)| **y > 0.0 && x.is_finite())
            .map(|(x, y)| x / y)
            .collect();
        if r.is_empty() {
            return None;
        }
        r.sort_by(|x, y| x.total_cmp(y));
        Some(Paired {
            median: quantile(&r, 0.5),
            q25: quantile(&r, 0.25),
            q75: quantile(&r, 0.75),
            pairs: r.len(),
        })
    }

    /// The interquartile range as a fraction of the median.
    pub fn spread(&self) -> f64 {
        (self.q75 - self.q25) / self.median.abs().max(f64::MIN_POSITIVE)
    }

    /// Whether the spread is too wide (or the pairs too few) for the ratio
    /// to count as a result.
    pub fn flagged(&self) -> bool {
        self.pairs < 5 || self.spread() > MAX_SPREAD
    }
}

/// The `q` quantile of sorted values, interpolated between neighbours.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let t = pos - lo as f64;
    sorted[lo] * (1.0 - t) + sorted[hi] * t
}

/// Round trips of a [`PingPong`] with a forked peer: each block is an
/// untimed warm-up and then `n` round trips timed one by one.
pub struct PingPongSide<P> {
    pp: P,
    warm: u64,
    n: u64,
    peer: Option<Peer>,
}

impl<P: PingPong> PingPongSide<P> {
    /// A side over `pp` with blocks of `warm` + `n` round trips.
    pub fn new(pp: P, (warm, n): (u64, u64)) -> PingPongSide<P> {
        PingPongSide {
            pp,
            warm,
            n,
            peer: None,
        }
    }

    /// The same, boxed.
    pub fn boxed(pp: P, block: (u64, u64)) -> BoxSide
    where
        P: 'static,
    {
        Box::new(PingPongSide::new(pp, block))
    }
}

impl<P: PingPong> Side for PingPongSide<P> {
    fn forks(&self) -> bool {
        true
    }

    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        crate::machine::pin_to_core(ctx.cores.0)?;
        let pp = &mut self.pp;
        let peer = Peer::fork(ctx, |c: &Ctl| {
            pp.peer_setup()?;
            c.ready();
            let r = c.serve(|n, w| pp.serve(n, w));
            pp.peer_teardown();
            r
        })?;
        match self.pp.after_fork().and_then(|()| peer.wait_ready()) {
            Ok(()) => {
                self.peer = Some(peer);
                Ok(())
            }
            Err(e) => Err(peer.fail(e)),
        }
    }

    fn block(&mut self, ctx: &Ctx) -> Result<Block, String> {
        let peer = self.peer.as_mut().ok_or("not started")?;
        let w = peer.begin(self.warm + self.n)?;
        peer.go();
        let clock = ctx.clock;
        let mut lat = Latency::new(1.0);
        for i in 0..self.warm {
            self.pp.round_trip(i, &w)?;
        }
        for i in self.warm..self.warm + self.n {
            let t0 = clock.now();
            self.pp.round_trip(i, &w)?;
            let t1 = clock.now();
            lat.record_ns(clock.ns(t0, t1));
        }
        peer.wait_done(&w)?;
        Ok(Block::Latency(lat))
    }

    fn stop(&mut self) -> Result<(), String> {
        self.peer.take().map_or(Ok(()), Peer::stop)
    }

    fn fail(&mut self, err: String) -> String {
        match self.peer.take() {
            Some(p) => p.fail(err),
            None => err,
        }
    }
}

/// Messages per second of a [`Stream`] with a forked consumer: each block
/// is one run of `n` messages, timed from the go signal (the consumer
/// already spinning) to the consumer's "all received".
pub struct StreamSide<S> {
    s: S,
    n: u64,
    /// Unit per message: 1 for messages per second, bytes / 1e9 for GB/s.
    scale: f64,
    peer: Option<Peer>,
}

impl<S: Stream + 'static> StreamSide<S> {
    /// A side streaming `n` messages per block, reporting messages per
    /// second times `scale`.
    pub fn boxed(s: S, n: u64, scale: f64) -> BoxSide {
        Box::new(StreamSide {
            s,
            n,
            scale,
            peer: None,
        })
    }
}

impl<S: Stream> Side for StreamSide<S> {
    fn forks(&self) -> bool {
        true
    }

    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        crate::machine::pin_to_core(ctx.cores.0)?;
        let s = &mut self.s;
        let peer = Peer::fork(ctx, |c: &Ctl| {
            s.peer_setup()?;
            c.ready();
            let r = c.serve(|n, w| s.consume(n, w));
            s.peer_teardown();
            r
        })?;
        match self.s.after_fork().and_then(|()| peer.wait_ready()) {
            Ok(()) => {
                self.peer = Some(peer);
                Ok(())
            }
            Err(e) => Err(peer.fail(e)),
        }
    }

    fn block(&mut self, _ctx: &Ctx) -> Result<Block, String> {
        let peer = self.peer.as_mut().ok_or("not started")?;
        let w = peer.begin(self.n)?;
        let t0 = Instant::now();
        peer.go();
        self.s.produce(self.n, &w)?;
        peer.wait_done(&w)?;
        let secs = t0.elapsed().as_secs_f64();
        Ok(Block::Rate {
            value: self.n as f64 / secs * self.scale,
            count: self.n,
        })
    }

    fn stop(&mut self) -> Result<(), String> {
        self.peer.take().map_or(Ok(()), Peer::stop)
    }

    fn fail(&mut self, err: String) -> String {
        match self.peer.take() {
            Some(p) => p.fail(err),
            None => err,
        }
    }
}

/// The peer half of a thread side: runs once per block with its argument.
pub type ThreadServe = Box<dyn FnMut(u64, &Watch) -> Result<(), String> + Send>;

/// What a thread side's harness half does per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadShape {
    /// Round trips: `warm` untimed and `n` timed calls of the harness
    /// closure with the round number; the peer serves `warm + n`.
    RoundTrips {
        /// Untimed round trips first.
        warm: u64,
        /// Timed round trips.
        n: u64,
    },
    /// A stream: one call of the harness closure with `n` (messages to
    /// send), timed from the go signal to the peer's "all received".
    Stream {
        /// Messages per block.
        n: u64,
    },
}

/// A measurement between two threads of the harness, the peer thread pinned
/// to the second core (what `rtrb` and crossbeam are made for).
pub struct ThreadSide<H> {
    serve: Option<ThreadServe>,
    harness: H,
    shape: ThreadShape,
    peer: Option<Peer>,
}

impl<H: FnMut(u64, &Watch) -> Result<(), String> + 'static> ThreadSide<H> {
    /// A side whose peer thread runs `serve` and whose harness half runs
    /// `harness`, per `shape`.
    pub fn boxed(serve: ThreadServe, harness: H, shape: ThreadShape) -> BoxSide {
        Box::new(ThreadSide {
            serve: Some(serve),
            harness,
            shape,
            peer: None,
        })
    }
}

impl<H: FnMut(u64, &Watch) -> Result<(), String>> Side for ThreadSide<H> {
    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        crate::machine::pin_to_core(ctx.cores.0)?;
        let mut serve = self.serve.take().ok_or("started twice")?;
        let peer = Peer::thread(ctx, move |c: &Ctl| {
            c.ready();
            c.serve(|n, w| serve(n, w))
        })?;
        match peer.wait_ready() {
            Ok(()) => {
                self.peer = Some(peer);
                Ok(())
            }
            Err(e) => Err(peer.fail(e)),
        }
    }

    fn block(&mut self, ctx: &Ctx) -> Result<Block, String> {
        let peer = self.peer.as_mut().ok_or("not started")?;
        match self.shape {
            ThreadShape::RoundTrips { warm, n } => {
                let w = peer.begin(warm + n)?;
                peer.go();
                let clock = ctx.clock;
                let mut lat = Latency::new(1.0);
                for i in 0..warm {
                    (self.harness)(i, &w)?;
                }
                for i in warm..warm + n {
                    let t0 = clock.now();
                    (self.harness)(i, &w)?;
                    let t1 = clock.now();
                    lat.record_ns(clock.ns(t0, t1));
                }
                peer.wait_done(&w)?;
                Ok(Block::Latency(lat))
            }
            ThreadShape::Stream { n } => {
                let w = peer.begin(n)?;
                let t0 = Instant::now();
                peer.go();
                (self.harness)(n, &w)?;
                peer.wait_done(&w)?;
                Ok(Block::Rate {
                    value: n as f64 / t0.elapsed().as_secs_f64(),
                    count: n,
                })
            }
        }
    }

    fn stop(&mut self) -> Result<(), String> {
        self.peer.take().map_or(Ok(()), Peer::stop)
    }

    fn fail(&mut self, err: String) -> String {
        match self.peer.take() {
            Some(p) => p.fail(err),
            None => err,
        }
    }
}

/// A side with no peer: each block is one call of a closure on the
/// harness's core (batches of lock operations, process starts).
pub struct LocalSide<F> {
    f: F,
}

impl<F: FnMut(&Ctx) -> Result<Block, String> + 'static> LocalSide<F> {
    /// A side whose blocks are calls of `f`.
    pub fn boxed(f: F) -> BoxSide {
        Box::new(LocalSide { f })
    }
}

impl<F: FnMut(&Ctx) -> Result<Block, String>> Side for LocalSide<F> {
    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        crate::machine::pin_to_core(ctx.cores.0)
    }

    fn block(&mut self, ctx: &Ctx) -> Result<Block, String> {
        (self.f)(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
    }

    #[test]
    fn paired_ratios_take_the_median_of_pairs() {
        // The baseline moves by 4x between pairs; the ratio does not.
        let b = [100.0, 400.0, 100.0, 400.0, 200.0, 100.0];
        let a: Vec<f64> = b.iter().map(|x| x * 1.5).collect();
        let p = Paired::of(&a, &b).expect("pairs");
        assert!((p.median - 1.5).abs() < 1e-9);
        assert!(p.spread() < 1e-9);
        assert!(!p.flagged());
        let noisy = [150.0, 100.0, 600.0, 150.0, 300.0, 50.0];
        assert!(Paired::of(&noisy, &b).expect("pairs").flagged());
    }

    /// A side that counts its blocks and fails on the third.
    struct Counting(u32, bool);

    impl Side for Counting {
        fn block(&mut self, _ctx: &Ctx) -> Result<Block, String> {
            self.0 += 1;
            if self.1 && self.0 == 3 {
                return Err("third block".into());
            }
            Ok(Block::Rate {
                value: f64::from(self.0),
                count: 1,
            })
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            mode: crate::runner::Mode::Smoke,
            cores: (0, 0),
            clock: crate::clock::Clock::instant(),
            timeout: std::time::Duration::from_secs(5),
        }
    }

    #[test]
    fn sides_take_turns_and_failures_surface() {
        let plan = Plan {
            rounds: 4,
            min_rounds: 4,
            budget: std::time::Duration::from_secs(60),
        };
        let mut sides: Vec<BoxSide> =
            vec![Box::new(Counting(0, false)), Box::new(Counting(0, false))];
        let out = measure(&ctx(), &mut sides, plan).expect("measured");
        // One warm-up block each, then four rounds.
        assert_eq!(out[0].heads, [2.0, 3.0, 4.0, 5.0]);
        assert_eq!(out[1].heads, [2.0, 3.0, 4.0, 5.0]);
        let mut sides: Vec<BoxSide> =
            vec![Box::new(Counting(0, false)), Box::new(Counting(0, true))];
        let err = measure(&ctx(), &mut sides, plan).expect_err("fails");
        assert_eq!(err.side, 1);
        assert_eq!(err.error, "third block");
    }
}
