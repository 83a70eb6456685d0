//! Measurements of `multiproc-queue`: round trips and throughput of its rings,
//! between two processes pinned to the two cores, every message written and
//! read (its sequence number and every byte checked).
//!
//! - SPSC round trips use two byte rings (one per direction). In place (the
//!   default): `reserve` + fill + `commit` to send, a `recv` guard read where
//!   it lies. Copied (the payload sweep's second curve): the message is
//!   copied in from the sender's buffer (`send`) and out into the receiver's
//!   (`recv_into`). The ends' wait strategy is what the id says (busy-spin
//!   unless noted).
//! - SPSC throughputs stream one message at a time, as the `rtrb` baseline
//!   pushes and pops one at a time: the producer writes each message in
//!   place, the consumer copies it out (`recv_into`), so every byte is
//!   written once and read once. MPMC streams use `send` and a `recv` guard.
//! - Broadcast round trips use two rings, one publisher each way; `pipe()`
//!   round trips use the two ends of one pipe with their default (adaptive)
//!   wait strategy, as a user would.

use crate::baselines::throughput::{COPY, FAST_MESSAGES};
use crate::outcome::{Unit, Wait};
use crate::runner::{Ctx, Pace, PingPong, Stream, Watch};
use crate::side::{BoxSide, NotMade, PingPongSide, StreamSide};
use crate::suite::{cmp, Entry};
use multiproc_core::message::Message;
use multiproc_core::wait::WaitStrategy;
use multiproc_queue::broadcast::{
    BroadcastRing, Config as BroadcastConfig, Publisher, Start, Subscriber,
};
use multiproc_queue::mpmc::{Config as MpmcConfig, Mpmc, Receiver, Sender};
use multiproc_queue::pipe::{Connection, Pipe};
use multiproc_queue::queue::Queue;
use multiproc_queue::spsc::{Consumer, Producer, SpscRing};

/// Ring size of the round-trip measurements of small messages (one message
/// in flight); larger messages get a ring that holds two.
const RTT_RING: usize = 4096;

/// Ring size of the 8- and 64-byte throughput measurements.
const STREAM_RING: usize = 64 * 1024;

/// Ring size of the 4 KiB bandwidth measurement (and the least of the
/// payload sweep's streams, which hold at least four messages).
pub const BULK_RING: usize = 256 * 1024;

fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The byte every message carries between its sequence numbers.
const PATTERN: u8 = 0xa5;

/// Writes message `v` of `buf.len()` (at least 8) bytes: the number first
/// and (from 16 bytes on) last, the byte `0xa5` in between.
#[inline]
pub fn fill(buf: &mut [u8], v: u64) {
    let len = buf.len();
    if len >= 16 {
        buf[8..len - 8].fill(PATTERN);
    }
    stamp(buf, v);
}

/// Writes only the sequence numbers of message `v` into a buffer that
/// [`fill`] wrote before (what a sender that copies its buffer changes per
/// message).
#[inline]
pub fn stamp(buf: &mut [u8], v: u64) {
    let len = buf.len();
    buf[..8].copy_from_slice(&v.to_le_bytes());
    if len >= 16 {
        buf[len - 8..].copy_from_slice(&v.to_le_bytes());
    }
}

/// Reads back what [`fill`] wrote, every byte; `None` if any does not
/// match or the length is wrong.
#[inline]
pub fn read_msg(buf: &[u8], len: usize) -> Option<u64> {
    if buf.len() != len || len < 8 {
        return None;
    }
    let v = u64::from_le_bytes(buf[..8].try_into().ok()?);
    if len >= 16 {
        let end = u64::from_le_bytes(buf[len - 8..].try_into().ok()?);
        // No early exit, so the compiler reads the middle in vector loads.
        let odd = buf[8..len - 8]
            .iter()
            .fold(0u8, |acc, &b| acc | (b ^ PATTERN));
        if end != v || odd != 0 {
            return None;
        }
    }
    Some(v)
}

/// SPSC ping-pong over two byte rings.
pub struct SpscPingPong {
    to_peer: SpscRing,
    from_peer: SpscRing,
    strategy: WaitStrategy,
    /// Copy in from and out to private buffers instead of working in place.
    copied: bool,
    buf: Vec<u8>,
    ends: Option<(Producer, Consumer)>,
}

impl SpscPingPong {
    /// Two rings for messages of `len` bytes, ends waiting by `strategy`,
    /// in place or `copied`.
    ///
    /// # Errors
    /// The rings could not be made.
    pub fn new(len: usize, strategy: WaitStrategy, copied: bool) -> Result<SpscPingPong, String> {
        let ring = || {
            SpscRing::builder()
                .capacity(RTT_RING)
                .max_message_len(2 * len)
                .prefault(true)
                .create()
                .map_err(|e| format!("spsc ring: {e}"))
        };
        let mut buf = vec![0u8; len];
        fill(&mut buf, 0);
        Ok(SpscPingPong {
            to_peer: ring()?,
            from_peer: ring()?,
            strategy,
            copied,
            buf,
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
    fn send(prod: &mut Producer, buf: &mut [u8], copied: bool, v: u64) -> Result<(), String> {
        if copied {
            stamp(buf, v);
            return prod.send(buf).map_err(|e| err("send")(&e));
        }
        let mut g = prod.reserve(buf.len()).map_err(|e| err("reserve")(&e))?;
        fill(&mut g, v);
        g.commit();
        Ok(())
    }

    #[inline]
    fn recv(cons: &mut Consumer, buf: &mut [u8], copied: bool) -> Result<u64, String> {
        let len = buf.len();
        if copied {
            let n = cons.recv_into(buf).map_err(|e| err("recv_into")(&e))?;
            return read_msg(&buf[..n], len)
                .ok_or_else(|| format!("a garbled message of {n} bytes"));
        }
        let g = cons.recv().map_err(|e| err("recv")(&e))?;
        read_msg(&g, len).ok_or_else(|| format!("a garbled message of {} bytes", g.len()))
    }
}

impl PingPong for SpscPingPong {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.attach(false)
    }

    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let copied = self.copied;
        let (prod, cons) = self.ends.as_mut().ok_or("not attached")?;
        let buf = &mut self.buf;
        for _ in 0..rounds {
            let v = Self::recv(cons, buf, copied)?;
            Self::send(prod, buf, copied, v + 1)?;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.attach(true)
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let copied = self.copied;
        let (prod, cons) = self.ends.as_mut().ok_or("not attached")?;
        let buf = &mut self.buf;
        Self::send(prod, buf, copied, i)?;
        let got = Self::recv(cons, buf, copied)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

/// How the two ends of an SPSC stream move the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// Written in place (`reserve` + fill + `commit`), read in place (a
    /// `recv` guard): no copy at all.
    InPlace,
    /// Copied in from the producer's buffer (`send`) and out into the
    /// consumer's (`recv_into`).
    Copied,
    /// Written in place, copied out (`recv_into`): the table's rows, as
    /// `rtrb` pushes a value and pops a copy.
    WriteCopyOut,
}

/// SPSC stream: the harness produces, the peer consumes.
pub struct SpscStream {
    ring: SpscRing,
    len: usize,
    io: Io,
    prod: Option<Producer>,
    cons: Option<Consumer>,
}

impl SpscStream {
    /// A ring of `capacity` bytes (at least four messages) for messages of
    /// `len` bytes.
    ///
    /// # Errors
    /// The ring could not be made.
    pub fn new(len: usize, capacity: usize, io: Io) -> Result<SpscStream, String> {
        Ok(SpscStream {
            ring: SpscRing::builder()
                .capacity(capacity)
                .max_message_len(4 * len)
                .prefault(true)
                .create()
                .map_err(|e| format!("spsc ring: {e}"))?,
            len,
            io,
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
            let got = if self.io == Io::InPlace {
                let g = cons.recv().map_err(|e| err("recv")(&e))?;
                read_msg(&g, len)
            } else {
                let got = cons.recv_into(&mut buf).map_err(|e| err("recv_into")(&e))?;
                read_msg(&buf[..got], len)
            };
            match got {
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
        if self.io == Io::Copied {
            let mut buf = vec![0u8; len];
            fill(&mut buf, 0);
            for i in 0..n {
                stamp(&mut buf, i);
                prod.send(&buf).map_err(|e| err("send")(&e))?;
            }
            return Ok(());
        }
        for i in 0..n {
            let mut g = prod.reserve(len).map_err(|e| err("reserve")(&e))?;
            fill(&mut g, i);
            g.commit();
        }
        Ok(())
    }
}

/// MPMC ping-pong: two rings, one sender and one receiver on each side.
pub struct MpmcPingPong {
    to_peer: Mpmc,
    from_peer: Mpmc,
    ends: Option<(Sender, Receiver)>,
}

impl MpmcPingPong {
    /// Two rings of 64 slots of 64 bytes.
    ///
    /// # Errors
    /// The rings could not be made.
    pub fn new() -> Result<MpmcPingPong, String> {
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

/// `i` in decimal, zero-padded to `width` digits (the last `width`
/// digits), without the formatting machinery: the rows measure the queue,
/// not `format!`.
fn padded(i: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    let mut v = i;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    String::from_utf8(digits).unwrap_or_default()
}

/// Message `i` of the `string64` rows: a 64-byte string (`i`, zero-padded,
/// as Python's `"%064d" % i`).
pub fn string64(i: u64) -> String {
    padded(i, 64)
}

/// Message `i` of the `words4` rows: four 16-byte strings.
pub fn words4(i: u64) -> Vec<String> {
    (0..4).map(|k| padded(i + k, 16)).collect()
}

/// `Queue<T>` ping-pong: the harness puts value `i` into one queue, the
/// peer gets it and puts it back into the other, the harness checks it.
/// Both busy-spin.
pub struct QueuePingPong<T> {
    to_peer: Queue<T>,
    from_peer: Queue<T>,
    make: fn(u64) -> T,
}

impl<T: Message + Clone + PartialEq> QueuePingPong<T> {
    /// Two queues of 64 items of up to `max_bytes` (0: `T`'s default).
    ///
    /// # Errors
    /// The queues could not be made.
    pub fn new(make: fn(u64) -> T, max_bytes: usize) -> Result<QueuePingPong<T>, String> {
        let queue = || {
            Queue::<T>::builder()
                .maxsize(64)
                .max_bytes(max_bytes)
                .wait_strategy(WaitStrategy::BusySpin)
                .create()
                .map_err(|e| format!("queue: {e}"))
        };
        Ok(QueuePingPong {
            to_peer: queue()?,
            from_peer: queue()?,
            make,
        })
    }
}

impl<T: Message + Clone + PartialEq> PingPong for QueuePingPong<T> {
    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        for _ in 0..rounds {
            let v = self.to_peer.get().map_err(|e| err("get")(&e))?;
            self.from_peer.put(v).map_err(|e| err("put")(&e))?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let v = (self.make)(i);
        self.to_peer.put(v.clone()).map_err(|e| err("put")(&e))?;
        let got = self.from_peer.get().map_err(|e| err("get")(&e))?;
        if got != v {
            return Err(format!("round {i}: another value came back"));
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

fn spsc_rtt(ctx: &Ctx, len: usize, strategy: WaitStrategy, pace: Pace) -> Result<BoxSide, NotMade> {
    Ok(PingPongSide::boxed(
        SpscPingPong::new(len, strategy, false)?,
        ctx.block(pace),
    ))
}

fn spsc_stream(
    ctx: &Ctx,
    len: usize,
    ring: usize,
    quick: u64,
    scale: f64,
) -> Result<BoxSide, NotMade> {
    Ok(StreamSide::boxed(
        SpscStream::new(len, ring, Io::WriteCopyOut)?,
        ctx.count(quick),
        scale,
    ))
}

/// The multiproc-queue entries of the suite.
pub fn entries() -> Vec<Entry> {
    use Pace::{Kernel, Spin, Stream as St};
    use Unit::*;
    use Wait::{Adaptive as Ad, Kernel as K, Spin as S};
    vec![
        cmp(
            "queue.spsc.rtt.8",
            Ns,
            S,
            Spin,
            "baseline.c2c.rtt",
            &["baseline.c2c.two_lines.rtt", "baseline.iceoryx2.rtt"],
            |c| spsc_rtt(c, 8, WaitStrategy::BusySpin, Spin),
        ),
        cmp(
            "queue.spsc.rtt.64",
            Ns,
            S,
            Spin,
            "baseline.c2c.rtt",
            &[],
            |c| spsc_rtt(c, 64, WaitStrategy::BusySpin, Spin),
        ),
        cmp(
            "queue.spsc.rtt.adaptive",
            Ns,
            Ad,
            Spin,
            "queue.spsc.rtt.8",
            &[],
            |c| spsc_rtt(c, 8, WaitStrategy::ADAPTIVE, Spin),
        ),
        cmp(
            "queue.spsc.rtt.blocking",
            Ns,
            K,
            Kernel,
            "baseline.futex.rtt",
            &["baseline.iceoryx2.rtt.event"],
            |c| spsc_rtt(c, 8, WaitStrategy::Blocking, Kernel),
        ),
        cmp(
            "queue.mpmc.rtt",
            Ns,
            S,
            Spin,
            "queue.spsc.rtt.8",
            &["baseline.c2c.rtt", "baseline.crossbeam.array_queue.rtt"],
            |c| Ok(PingPongSide::boxed(MpmcPingPong::new()?, c.block(Spin))),
        ),
        cmp(
            "queue.broadcast.rtt",
            Ns,
            S,
            Spin,
            "queue.spsc.rtt.8",
            &["baseline.iceoryx2.rtt"],
            |c| {
                Ok(PingPongSide::boxed(
                    BroadcastPingPong::new()?,
                    c.block(Spin),
                ))
            },
        ),
        cmp(
            "queue.pipe.rtt",
            Ns,
            Ad,
            Spin,
            "baseline.pipe.rtt",
            &[
                "baseline.uds.rtt",
                "baseline.ipc_channel.rtt",
                "baseline.python.pipe.rtt",
            ],
            |c| Ok(PingPongSide::boxed(PipePingPong::new()?, c.block(Spin))),
        ),
        cmp(
            "queue.queue.rtt.u64",
            Ns,
            S,
            Spin,
            "queue.mpmc.rtt",
            &[],
            |c| {
                Ok(PingPongSide::boxed(
                    QueuePingPong::new(|i| i, 0)?,
                    c.block(Spin),
                ))
            },
        ),
        cmp(
            "queue.queue.rtt.string64",
            Ns,
            S,
            Spin,
            "baseline.python.queue.rtt.string64",
            &["baseline.ipc_channel.rtt.string64", "queue.queue.rtt.u64"],
            |c| {
                Ok(PingPongSide::boxed(
                    QueuePingPong::new(string64, 128)?,
                    c.block(Spin),
                ))
            },
        ),
        cmp(
            "queue.queue.rtt.words4",
            Ns,
            S,
            Spin,
            "baseline.python.queue.rtt.words4",
            &["baseline.ipc_channel.rtt.words4"],
            |c| {
                Ok(PingPongSide::boxed(
                    QueuePingPong::new(words4, 128)?,
                    c.block(Spin),
                ))
            },
        ),
        cmp(
            "queue.spsc.throughput.8",
            MsgPerSec,
            S,
            St,
            "baseline.rtrb.throughput",
            &[],
            |c| spsc_stream(c, 8, STREAM_RING, FAST_MESSAGES, 1.0),
        ),
        cmp(
            "queue.spsc.throughput.64",
            MsgPerSec,
            S,
            St,
            "baseline.pipe.throughput.64",
            &["queue.spsc.throughput.8"],
            |c| spsc_stream(c, 64, STREAM_RING, FAST_MESSAGES, 1.0),
        ),
        cmp(
            "queue.spsc.bandwidth.4096",
            GbPerSec,
            S,
            St,
            "baseline.copy.bandwidth",
            &[],
            |c| spsc_stream(c, COPY, BULK_RING, 20_000, COPY as f64 / 1e9),
        ),
        cmp(
            "queue.mpmc.throughput",
            MsgPerSec,
            S,
            St,
            "queue.spsc.throughput.8",
            &[
                "baseline.crossbeam.array_queue.throughput",
                "baseline.crossbeam.channel.throughput",
            ],
            |c| {
                let ring = Mpmc::anonymous(MpmcConfig::new(1024, 8))
                    .map_err(|e| format!("mpmc ring: {e}"))?;
                Ok(StreamSide::boxed(
                    MpmcStream { ring },
                    c.count(FAST_MESSAGES),
                    1.0,
                ))
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_row_values_are_pythons() {
        assert_eq!(string64(42), format!("{:064}", 42));
        assert_eq!(string64(0).len(), 64);
        assert_eq!(
            words4(7),
            [
                "0000000000000007",
                "0000000000000008",
                "0000000000000009",
                "0000000000000010"
            ]
        );
    }

    #[test]
    fn messages_round_trip_through_fill_and_read() {
        for len in [8, 16, 64, 4096] {
            let mut b = vec![0u8; len];
            fill(&mut b, 0x1234_5678_9abc);
            assert_eq!(read_msg(&b, len), Some(0x1234_5678_9abc));
            stamp(&mut b, 7);
            assert_eq!(read_msg(&b, len), Some(7));
            if len > 16 {
                b[len / 2] ^= 1;
                assert_eq!(read_msg(&b, len), None);
            }
            assert_eq!(read_msg(&b[..len - 1], len), None);
        }
    }
}
