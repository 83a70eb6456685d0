//! Measurements of `ipc-queue`: round trips and throughput of its rings,
//! between two processes pinned to the two cores, every message written and
//! read (its sequence number checked).
//!
//! - SPSC round trips use two byte rings (one per direction), the in-place
//!   API: `reserve` + `commit` to send, a `recv` guard to read. The ends'
//!   wait strategy is what the id says (busy-spin unless noted).
//! - SPSC throughputs stream one message at a time, as the `rtrb` baseline
//!   pushes and pops one at a time: the producer writes each message in place
//!   (`reserve`, fill, `commit`), the consumer copies it out (`recv_into`), so
//!   every byte is written once and read once. MPMC streams use `send` and a
//!   `recv` guard.
//! - `baseline.c2c.rtt.interleaved` and `queue.spsc.rtt.8.interleaved` are
//!   one run in which the cache-line ping-pong and the 8-byte SPSC round
//!   trip take turns in blocks of [`crate::runner::INTERLEAVE_BLOCK`] round
//!   trips, so that their ratio compares the two under the same placement of
//!   the virtual CPUs (which the host may change every few seconds).
//! - Broadcast round trips use two rings, one publisher each way; `pipe()`
//!   round trips use the two ends of one pipe with their default (adaptive)
//!   wait strategy, as a user would.

use crate::baselines::rtt::C2c;
use crate::baselines::throughput::{COPY, FAST_MESSAGES};
use crate::outcome::{Latency, Outcome, Unit};
use crate::runner::{
    measure_rtt, measure_rtt_interleaved, measure_stream, Ctx, PingPong, Speed, Stream, Watch,
};
use crate::suite::Entry;
use ipc_core::wait::WaitStrategy;
use ipc_queue::broadcast::{
    BroadcastRing, Config as BroadcastConfig, Publisher, Start, Subscriber,
};
use ipc_queue::mpmc::{Config as MpmcConfig, Mpmc, Receiver, Sender};
use ipc_queue::pipe::{Connection, Pipe};
use ipc_queue::spsc::{Consumer, Producer, SpscRing};
use std::sync::Mutex;

/// Ring size of the round-trip measurements (one message in flight).
const RTT_RING: usize = 4096;

/// Ring size of the 8- and 64-byte throughput measurements.
const STREAM_RING: usize = 64 * 1024;

/// Ring size of the 4 KiB bandwidth measurement.
const BULK_RING: usize = 256 * 1024;

fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Writes message `v` of `len` bytes: the number first, then its low byte
/// repeated, so the reader can check both ends.
#[inline]
fn fill(buf: &mut [u8], v: u64) {
    buf[..8].copy_from_slice(&v.to_le_bytes());
    if buf.len() > 8 {
        buf[8..].fill(v as u8);
    }
}

/// Reads back what [`fill`] wrote; `None` if the bytes do not match.
#[inline]
fn read_msg(buf: &[u8], len: usize) -> Option<u64> {
    if buf.len() != len || len < 8 {
        return None;
    }
    let v = u64::from_le_bytes(buf[..8].try_into().ok()?);
    (buf[len - 1] == if len > 8 { v as u8 } else { buf[7] }).then_some(v)
}

/// SPSC ping-pong over two byte rings.
struct SpscPingPong {
    to_peer: SpscRing,
    from_peer: SpscRing,
    len: usize,
    strategy: WaitStrategy,
    ends: Option<(Producer, Consumer)>,
}

impl SpscPingPong {
    fn new(len: usize, strategy: WaitStrategy) -> Result<SpscPingPong, String> {
        let ring = || {
            SpscRing::builder()
                .capacity(RTT_RING)
                .prefault(true)
                .create()
                .map_err(|e| format!("spsc ring: {e}"))
        };
        Ok(SpscPingPong {
            to_peer: ring()?,
            from_peer: ring()?,
            len,
            strategy,
            ends: None,
        })
    }

    fn attach(&mut self, tx: bool) -> Result<(), String> {
        let (p, c) = if tx {
            (&self.to_peer, &self.from_peer)
        } else {
            (&self.from_peer, &self.to_peer)
        };
        let mut prod = p.producer().map_err(|e| err("attach producer")(&e))?;
        let mut cons = c.consumer().map_err(|e| err("attach consumer")(&e))?;
        prod.set_wait_strategy(self.strategy);
        cons.set_wait_strategy(self.strategy);
        self.ends = Some((prod, cons));
        Ok(())
    }

    #[inline]
    fn send(prod: &mut Producer, len: usize, v: u64) -> Result<(), String> {
        let mut g = prod.reserve(len).map_err(|e| err("reserve")(&e))?;
        fill(&mut g, v);
        g.commit();
        Ok(())
    }

    #[inline]
    fn recv(cons: &mut Consumer, len: usize) -> Result<u64, String> {
        let g = cons.recv().map_err(|e| err("recv")(&e))?;
        read_msg(&g, len).ok_or_else(|| format!("a garbled message of {} bytes", g.len()))
    }
}

impl PingPong for SpscPingPong {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.attach(false)
    }

    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let len = self.len;
        let (prod, cons) = self.ends.as_mut().ok_or("not attached")?;
        for _ in 0..rounds {
            let v = Self::recv(cons, len)?;
            Self::send(prod, len, v + 1)?;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.attach(true)
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let len = self.len;
        let (prod, cons) = self.ends.as_mut().ok_or("not attached")?;
        Self::send(prod, len, i)?;
        let got = Self::recv(cons, len)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

/// SPSC stream: the harness produces, the peer consumes.
struct SpscStream {
    ring: SpscRing,
    len: usize,
    prod: Option<Producer>,
    cons: Option<Consumer>,
}

impl SpscStream {
    fn new(len: usize, capacity: usize) -> Result<SpscStream, String> {
        Ok(SpscStream {
            ring: SpscRing::builder()
                .capacity(capacity)
                .prefault(true)
                .create()
                .map_err(|e| format!("spsc ring: {e}"))?,
            len,
            prod: None,
            cons: None,
        })
    }
}

impl Stream for SpscStream {
    fn peer_setup(&mut self) -> Result<(), String> {
        let c = self
            .ring
            .consumer()
            .map_err(|e| err("attach consumer")(&e))?;
        self.cons = Some(c.with_wait_strategy(WaitStrategy::BusySpin));
        Ok(())
    }

    fn consume(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let len = self.len;
        let cons = self.cons.as_mut().ok_or("not attached")?;
        let mut buf = vec![0u8; len];
        for want in 0..n {
            let got = cons.recv_into(&mut buf).map_err(|e| err("recv_into")(&e))?;
            match read_msg(&buf[..got], len) {
                Some(v) if v == want => {}
                other => return Err(format!("message {want}: got {other:?}")),
            }
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        let p = self
            .ring
            .producer()
            .map_err(|e| err("attach producer")(&e))?;
        self.prod = Some(p.with_wait_strategy(WaitStrategy::BusySpin));
        Ok(())
    }

    fn produce(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let len = self.len;
        let prod = self.prod.as_mut().ok_or("not attached")?;
        for i in 0..n {
            let mut g = prod.reserve(len).map_err(|e| err("reserve")(&e))?;
            fill(&mut g, i);
            g.commit();
        }
        Ok(())
    }
}

/// MPMC ping-pong: two rings, one sender and one receiver on each side.
struct MpmcPingPong {
    to_peer: Mpmc,
    from_peer: Mpmc,
    ends: Option<(Sender, Receiver)>,
}

impl MpmcPingPong {
    fn new() -> Result<MpmcPingPong, String> {
        let ring =
            || Mpmc::anonymous(MpmcConfig::new(64, 64)).map_err(|e| format!("mpmc ring: {e}"));
        Ok(MpmcPingPong {
            to_peer: ring()?,
            from_peer: ring()?,
            ends: None,
        })
    }

    fn attach(&mut self, harness: bool) {
        let (s, r) = if harness {
            (&self.to_peer, &self.from_peer)
        } else {
            (&self.from_peer, &self.to_peer)
        };
        self.ends = Some((
            s.sender().with_wait_strategy(WaitStrategy::BusySpin),
            r.receiver().with_wait_strategy(WaitStrategy::BusySpin),
        ));
    }

    #[inline]
    fn recv(rx: &Receiver) -> Result<u64, String> {
        let m = rx.recv().map_err(|e| err("recv")(&e))?;
        read_msg(m.bytes(), 8).ok_or_else(|| "a garbled message".to_owned())
    }
}

impl PingPong for MpmcPingPong {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.attach(false);
        Ok(())
    }

    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let (tx, rx) = self.ends.as_ref().ok_or("not attached")?;
        for _ in 0..rounds {
            let v = Self::recv(rx)?;
            tx.send(&(v + 1).to_le_bytes())
                .map_err(|e| err("send")(&e))?;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.attach(true);
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let (tx, rx) = self.ends.as_ref().ok_or("not attached")?;
        tx.send(&i.to_le_bytes()).map_err(|e| err("send")(&e))?;
        let got = Self::recv(rx)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

/// MPMC stream of 8-byte messages, one producer process, one consumer.
struct MpmcStream {
    ring: Mpmc,
}

impl Stream for MpmcStream {
    fn consume(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let rx = self
            .ring
            .receiver()
            .with_wait_strategy(WaitStrategy::BusySpin);
        for want in 0..n {
            let v = Self::recv_value(&rx)?;
            if v != want {
                return Err(format!("message {want}: got {v}"));
            }
        }
        Ok(())
    }

    fn produce(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let tx = self
            .ring
            .sender()
            .with_wait_strategy(WaitStrategy::BusySpin);
        for i in 0..n {
            tx.send(&i.to_le_bytes()).map_err(|e| err("send")(&e))?;
        }
        Ok(())
    }
}

impl MpmcStream {
    #[inline]
    fn recv_value(rx: &Receiver) -> Result<u64, String> {
        let m = rx.recv().map_err(|e| err("recv")(&e))?;
        read_msg(m.bytes(), 8).ok_or_else(|| "a garbled message".to_owned())
    }
}

/// Broadcast ping-pong: one ring per direction, each with one publisher and
/// one subscriber. Everything is made before the fork and nothing is dropped
/// in the peer (dropping a publisher closes its ring for everybody; the peer
/// leaves with `_exit`, which runs no destructor).
struct BroadcastPingPong {
    harness: (Publisher, Subscriber),
    peer: (Publisher, Subscriber),
}

impl BroadcastPingPong {
    fn new() -> Result<BroadcastPingPong, String> {
        let ring = || {
            BroadcastRing::anonymous(BroadcastConfig::new(64, 64))
                .map_err(|e| format!("broadcast ring: {e}"))?
                .publisher()
                .map_err(|e| format!("broadcast publisher: {e}"))
        };
        let (to_peer, from_peer) = (ring()?, ring()?);
        let spin = |s: Subscriber| s.with_wait_strategy(WaitStrategy::BusySpin);
        let peer_sub = spin(to_peer.subscribe(Start::Next));
        let harness_sub = spin(from_peer.subscribe(Start::Next));
        Ok(BroadcastPingPong {
            harness: (to_peer, harness_sub),
            peer: (from_peer, peer_sub),
        })
    }

    #[inline]
    fn recv(sub: &mut Subscriber) -> Result<u64, String> {
        let mut buf = [0u8; 64];
        let n = sub.recv_into(&mut buf).map_err(|e| err("recv_into")(&e))?;
        read_msg(&buf[..n], 8).ok_or_else(|| "a garbled message".to_owned())
    }
}

impl PingPong for BroadcastPingPong {
    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let (publisher, sub) = &mut self.peer;
        for _ in 0..rounds {
            let v = Self::recv(sub)?;
            publisher
                .publish(&(v + 1).to_le_bytes())
                .map_err(|e| err("publish")(&e))?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let (publisher, sub) = &mut self.harness;
        publisher
            .publish(&i.to_le_bytes())
            .map_err(|e| err("publish")(&e))?;
        let got = Self::recv(sub)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

/// `pipe()` ping-pong: 8-byte `send_bytes` / `recv_bytes_into` on the two
/// ends of one pipe, default wait strategy.
struct PipePingPong {
    pipe: Pipe,
    end: Option<Connection>,
}

impl PipePingPong {
    fn new() -> Result<PipePingPong, String> {
        Ok(PipePingPong {
            pipe: Pipe::builder()
                .prefault(true)
                .create()
                .map_err(|e| format!("pipe: {e}"))?,
            end: None,
        })
    }

    #[inline]
    fn recv(end: &mut Connection) -> Result<u64, String> {
        let mut buf = [0u8; 8];
        let n = end
            .recv_bytes_into(&mut buf)
            .map_err(|e| err("recv_bytes_into")(&e))?;
        read_msg(&buf[..n], 8).ok_or_else(|| "a garbled message".to_owned())
    }
}

impl PingPong for PipePingPong {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.end = Some(self.pipe.end_b().map_err(|e| err("end_b")(&e))?);
        Ok(())
    }

    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let end = self.end.as_mut().ok_or("not attached")?;
        for _ in 0..rounds {
            let v = Self::recv(end)?;
            end.send_bytes(&(v + 1).to_le_bytes())
                .map_err(|e| err("send_bytes")(&e))?;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.end = Some(self.pipe.end_a().map_err(|e| err("end_a")(&e))?);
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let end = self.end.as_mut().ok_or("not attached")?;
        end.send_bytes(&i.to_le_bytes())
            .map_err(|e| err("send_bytes")(&e))?;
        let got = Self::recv(end)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

fn spsc_rtt(
    ctx: &Ctx,
    len: usize,
    strategy: WaitStrategy,
    speed: Speed,
) -> Result<Outcome, String> {
    measure_rtt(ctx, speed, &mut SpscPingPong::new(len, strategy)?)
}

/// The SPSC half of the interleaved measurement, from the run of
/// `baseline.c2c.rtt.interleaved` to the row after it.
static INTERLEAVED_SPSC: Mutex<Option<Latency>> = Mutex::new(None);

/// `baseline.c2c.rtt.interleaved`: runs both halves, reports the cache-line
/// half and keeps the SPSC half for `queue.spsc.rtt.8.interleaved`.
fn c2c_interleaved(ctx: &Ctx) -> Result<Outcome, String> {
    let mut spsc = SpscPingPong::new(8, WaitStrategy::BusySpin)?;
    let (c2c, ours) = measure_rtt_interleaved(ctx, Speed::Spin, &mut C2c::new()?, &mut spsc)?;
    *INTERLEAVED_SPSC.lock().map_err(|_| "a poisoned lock")? = Some(ours);
    Ok(Outcome::Latency(c2c))
}

/// `queue.spsc.rtt.8.interleaved`: the SPSC half of the run above.
fn spsc_interleaved(_ctx: &Ctx) -> Result<Outcome, String> {
    let ours = INTERLEAVED_SPSC
        .lock()
        .map_err(|_| "a poisoned lock")?
        .take();
    Ok(ours.map_or_else(
        || Outcome::Skipped("measured by baseline.c2c.rtt.interleaved, which did not run".into()),
        Outcome::Latency,
    ))
}

fn spsc_stream(ctx: &Ctx, len: usize, ring: usize, quick: u64) -> Result<(f64, u64), String> {
    measure_stream(ctx, ctx.count(quick), &mut SpscStream::new(len, ring)?)
}

/// The ipc-queue entries of the suite.
pub fn entries() -> Vec<Entry> {
    use Unit::*;
    let e = |id, unit, baseline, also: &'static [&'static str], run| Entry {
        id,
        unit,
        baseline,
        also,
        run,
    };
    vec![
        e("queue.spsc.rtt.8", Ns, Some("baseline.c2c.rtt"), &[], |c| {
            spsc_rtt(c, 8, WaitStrategy::BusySpin, Speed::Spin)
        }),
        e(
            "queue.spsc.rtt.64",
            Ns,
            Some("baseline.c2c.rtt"),
            &[],
            |c| spsc_rtt(c, 64, WaitStrategy::BusySpin, Speed::Spin),
        ),
        e(
            "baseline.c2c.rtt.interleaved",
            Ns,
            Some("baseline.c2c.rtt"),
            &[],
            c2c_interleaved,
        ),
        e(
            "queue.spsc.rtt.8.interleaved",
            Ns,
            Some("baseline.c2c.rtt.interleaved"),
            &[],
            spsc_interleaved,
        ),
        e(
            "queue.spsc.rtt.adaptive",
            Ns,
            Some("queue.spsc.rtt.8"),
            &[],
            |c| spsc_rtt(c, 8, WaitStrategy::ADAPTIVE, Speed::Spin),
        ),
        e(
            "queue.spsc.rtt.blocking",
            Ns,
            Some("baseline.futex.rtt"),
            &[],
            |c| spsc_rtt(c, 8, WaitStrategy::Blocking, Speed::Kernel),
        ),
        e(
            "queue.mpmc.rtt",
            Ns,
            Some("queue.spsc.rtt.8"),
            &["baseline.c2c.rtt"],
            |c| measure_rtt(c, Speed::Spin, &mut MpmcPingPong::new()?),
        ),
        e(
            "queue.broadcast.rtt",
            Ns,
            Some("queue.spsc.rtt.8"),
            &["baseline.c2c.rtt"],
            |c| measure_rtt(c, Speed::Spin, &mut BroadcastPingPong::new()?),
        ),
        e(
            "queue.pipe.rtt",
            Ns,
            Some("baseline.pipe.rtt"),
            &["baseline.uds.rtt", "baseline.python.pipe.rtt"],
            |c| measure_rtt(c, Speed::Kernel, &mut PipePingPong::new()?),
        ),
        e(
            "queue.spsc.throughput.8",
            MsgPerSec,
            Some("baseline.rtrb.throughput"),
            &[],
            |c| {
                let (value, samples) = spsc_stream(c, 8, STREAM_RING, FAST_MESSAGES)?;
                Ok(Outcome::Throughput { value, samples })
            },
        ),
        e(
            "queue.spsc.throughput.64",
            MsgPerSec,
            Some("baseline.pipe.throughput.64"),
            &["queue.spsc.throughput.8"],
            |c| {
                let (value, samples) = spsc_stream(c, 64, STREAM_RING, FAST_MESSAGES)?;
                Ok(Outcome::Throughput { value, samples })
            },
        ),
        e(
            "queue.spsc.bandwidth.4096",
            GbPerSec,
            Some("baseline.memcpy.bandwidth"),
            &[],
            |c| {
                let (rate, samples) = spsc_stream(c, COPY, BULK_RING, 200_000)?;
                Ok(Outcome::Throughput {
                    value: rate * COPY as f64 / 1e9,
                    samples,
                })
            },
        ),
        e(
            "queue.mpmc.throughput",
            MsgPerSec,
            Some("queue.spsc.throughput.8"),
            &[],
            |c| {
                let ring = Mpmc::anonymous(MpmcConfig::new(1024, 8))
                    .map_err(|e| format!("mpmc ring: {e}"))?;
                let (value, samples) =
                    measure_stream(c, c.count(FAST_MESSAGES), &mut MpmcStream { ring })?;
                Ok(Outcome::Throughput { value, samples })
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_fill_and_read() {
        for len in [8, 64, 4096] {
            let mut b = vec![0u8; len];
            fill(&mut b, 0x1234_5678_9abc);
            assert_eq!(read_msg(&b, len), Some(0x1234_5678_9abc));
            if len > 8 {
                b[len - 1] ^= 1;
                assert_eq!(read_msg(&b, len), None);
            }
            assert_eq!(read_msg(&b[..len - 1], len), None);
        }
    }
}
