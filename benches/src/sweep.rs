//! The payload sweep: round trip and bandwidth from 8 bytes to 1 MiB, for
//! the SPSC ring in place and copied, beside iceoryx2 and a kernel pipe, so
//! a reader sees where each method bends.
//!
//! At each size the methods take turns in blocks ([`crate::side::measure`]),
//! like every comparison of the suite: a round of blocks sees one placement
//! of the two virtual CPUs. Round trips: one message each way, timed one by
//! one. Bandwidth: a stream of messages from the harness to its peer, timed
//! from the go signal to the peer's "all received", in GB/s of payload. The
//! cross-core copy floor (`baseline.copy.bandwidth` of the main table) is the
//! bandwidth curves' ceiling line.

use crate::baselines::fdio::{pipe, read_exact, write_all};
use crate::outcome::Outcome;
use crate::peers::IoxFiles;
use crate::queue_benches::{fill, read_msg, stamp, Io, SpscPingPong, SpscStream, BULK_RING};
use crate::runner::{Ctx, Mode, PingPong, Plan, Stream, Watch};
use crate::side::{measure, BoxSide, Paired, PingPongSide, StreamSide};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;
use multiproc_core::wait::WaitStrategy;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Payload sizes: 8 bytes, then the powers of 4 from 16 bytes to 1 MiB.
pub const SIZES: [usize; 10] = [8, 16, 64, 256, 1024, 4096, 16384, 65536, 262_144, 1_048_576];

/// The methods of the round-trip sweep, in the order of the table.
pub const RTT_METHODS: [&str; 4] = ["spsc.in_place", "spsc.copied", "iceoryx2", "pipe"];

/// The methods of the bandwidth sweep.
pub const BW_METHODS: [&str; 4] = ["spsc.in_place", "spsc.copied", "iceoryx2", "pipe"];

/// One point of a curve.
#[derive(Clone, Debug)]
pub struct Point {
    /// Payload bytes.
    pub size: usize,
    /// Which method (one of [`RTT_METHODS`] or [`BW_METHODS`]).
    pub method: &'static str,
    /// Round-trip latencies (ns) or a bandwidth (GB/s).
    pub outcome: Outcome,
    /// Paired ratio to the in-place SPSC ring at this size.
    pub vs_in_place: Option<Paired>,
}

/// Both curves' points.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    /// Round trips.
    pub rtt: Vec<Point>,
    /// Bandwidths.
    pub bandwidth: Vec<Point>,
}

/// The sizes a mode sweeps (three when smoke-testing).
pub fn sizes(ctx: &Ctx) -> Vec<usize> {
    match ctx.mode {
        Mode::Smoke => vec![8, 4096, 65536],
        _ => SIZES.to_vec(),
    }
}

/// Round trips per block at `size`: about 2 MiB moved each way, 20 to 1000.
fn rtt_block(ctx: &Ctx, size: usize) -> (u64, u64) {
    let n = ((2 << 20) / size).clamp(20, 1000) as u64;
    match ctx.mode {
        Mode::Smoke => (2, 10),
        _ => ((n / 20).max(2), n),
    }
}

/// Messages per block of the bandwidth sweep at `size`: about 32 MiB, 32
/// to 100 000.
fn bw_block(ctx: &Ctx, size: usize) -> u64 {
    let n = ((32 << 20) / size).clamp(32, 100_000) as u64;
    match ctx.mode {
        Mode::Smoke => n.min(64),
        _ => n,
    }
}

fn plan(ctx: &Ctx) -> Plan {
    match ctx.mode {
        Mode::Quick => Plan {
            rounds: 10,
            min_rounds: 4,
            budget: Duration::from_millis(1500),
        },
        Mode::Full => Plan {
            rounds: 50,
            min_rounds: 10,
            budget: Duration::from_secs(10),
        },
        Mode::Smoke => Plan {
            rounds: 2,
            min_rounds: 2,
            budget: Duration::from_millis(500),
        },
    }
}

/// Runs the sweep, calling `progress` with a label before each size.
pub fn run(ctx: &Ctx, mut progress: impl FnMut(&str)) -> Sweep {
    let mut out = Sweep::default();
    for size in sizes(ctx) {
        progress(&format!("sweep: round trips of {size} B"));
        let block = rtt_block(ctx, size);
        let made = || -> Result<Vec<BoxSide>, String> {
            Ok(vec![
                PingPongSide::boxed(
                    SpscPingPong::new(size, WaitStrategy::BusySpin, false)?,
                    block,
                ),
                PingPongSide::boxed(
                    SpscPingPong::new(size, WaitStrategy::BusySpin, true)?,
                    block,
                ),
                PingPongSide::boxed(crate::peers::IoxPingPong::new(size, false)?, block),
                PingPongSide::boxed(PipeBytes::new(size)?, block),
            ])
        };
        out.rtt.extend(points(ctx, size, &RTT_METHODS, made));
        progress(&format!("sweep: bandwidth of {size} B"));
        let n = bw_block(ctx, size);
        let scale = size as f64 / 1e9;
        let ring = BULK_RING.max(8 * size);
        let made = || -> Result<Vec<BoxSide>, String> {
            Ok(vec![
                StreamSide::boxed(SpscStream::new(size, ring, Io::InPlace)?, n, scale),
                StreamSide::boxed(SpscStream::new(size, ring, Io::Copied)?, n, scale),
                StreamSide::boxed(IoxStream::new(size)?, n, scale),
                StreamSide::boxed(PipeBytes::new(size)?, n, scale),
            ])
        };
        out.bandwidth.extend(points(ctx, size, &BW_METHODS, made));
    }
    out
}

/// Measures the sides of one size together; one point per method. A
/// method that fails gets its error, and the others are measured again
/// without it (each side is made afresh by `make`).
fn points(
    ctx: &Ctx,
    size: usize,
    methods: &[&'static str],
    make: impl Fn() -> Result<Vec<BoxSide>, String>,
) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::new();
    let mut live: Vec<usize> = (0..methods.len()).collect();
    while !live.is_empty() {
        let made = make().map(|all| {
            all.into_iter()
                .enumerate()
                .filter(|(i, _)| live.contains(i))
                .map(|(_, s)| s)
                .collect::<Vec<BoxSide>>()
        });
        let mut sides = match made {
            Ok(s) => s,
            Err(e) => {
                for &i in &live {
                    out.push(point(size, methods[i], Outcome::Failed(e.clone())));
                }
                break;
            }
        };
        match measure(ctx, &mut sides, plan(ctx)) {
            Ok(m) => {
                // Ratios to the in-place ring, when it is still measured.
                let first = (live[0] == 0).then(|| m[0].heads.clone());
                for (m, &i) in m.into_iter().zip(&live) {
                    let mut p = point(size, methods[i], m.outcome);
                    p.vs_in_place = first.as_ref().and_then(|f| Paired::of(&m.heads, f));
                    out.push(p);
                }
                break;
            }
            Err(f) => {
                let i = live.remove(f.side);
                out.push(point(size, methods[i], Outcome::Failed(f.error)));
            }
        }
    }
    out.sort_by_key(|p| methods.iter().position(|m| *m == p.method));
    out
}

fn point(size: usize, method: &'static str, outcome: Outcome) -> Point {
    Point {
        size,
        method,
        outcome,
        vs_in_place: None,
    }
}

/// `len`-byte messages through a pipe each way (round trips), or one way
/// (a stream): one `write` of the whole message, read back in full and
/// checked.
pub struct PipeBytes {
    len: usize,
    buf: Vec<u8>,
    /// The harness's (send, receive) ends.
    mine: Option<(OwnedFd, OwnedFd)>,
    /// The peer's (send, receive) ends.
    theirs: Option<(OwnedFd, OwnedFd)>,
}

impl PipeBytes {
    /// Two pipes, one per direction.
    ///
    /// # Errors
    /// The OS error.
    pub fn new(len: usize) -> Result<PipeBytes, String> {
        let (a_r, a_w) = pipe()?;
        let (b_r, b_w) = pipe()?;
        let mut buf = vec![0u8; len];
        fill(&mut buf, 0);
        Ok(PipeBytes {
            len,
            buf,
            mine: Some((a_w, b_r)),
            theirs: Some((b_w, a_r)),
        })
    }

    fn get(rx: &OwnedFd, buf: &mut [u8]) -> Result<u64, String> {
        read_exact(rx, buf)?;
        read_msg(buf, buf.len()).ok_or_else(|| "a garbled message".to_owned())
    }
}

impl PingPong for PipeBytes {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.mine = None;
        Ok(())
    }

    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let (tx, rx) = self.theirs.as_ref().ok_or("no pipes")?;
        for _ in 0..rounds {
            let v = Self::get(rx, &mut self.buf)?;
            stamp(&mut self.buf, v + 1);
            write_all(tx, &self.buf)?;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.theirs = None;
        Ok(())
    }

    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let (tx, rx) = self.mine.as_ref().ok_or("no pipes")?;
        stamp(&mut self.buf, i);
        write_all(tx, &self.buf)?;
        let got = Self::get(rx, &mut self.buf)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

impl Stream for PipeBytes {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.mine = None;
        Ok(())
    }

    fn consume(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let (_, rx) = self.theirs.as_ref().ok_or("no pipes")?;
        debug_assert_eq!(self.buf.len(), self.len);
        for want in 0..n {
            let v = Self::get(rx, &mut self.buf)?;
            if v != want {
                return Err(format!("message {want}: got {v}"));
            }
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.theirs = None;
        Ok(())
    }

    fn produce(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let (tx, _) = self.mine.as_ref().ok_or("no pipes")?;
        for i in 0..n {
            stamp(&mut self.buf, i);
            write_all(tx, &self.buf)?;
        }
        Ok(())
    }
}

/// iceoryx2 stream: one publish-subscribe service, the harness publishes,
/// the peer busy-polls; no sample is dropped (safe overflow off, the
/// publisher retries until delivered).
pub struct IoxStream {
    files: IoxFiles,
    cfg: Config,
    len: usize,
    publisher: Option<Publisher<ipc::Service, [u8], ()>>,
    subscriber: Option<Subscriber<ipc::Service, [u8], ()>>,
    node: Option<Node<ipc::Service>>,
}

impl IoxStream {
    /// A stream of `len`-byte messages.
    ///
    /// # Errors
    /// The configuration could not be made.
    pub fn new(len: usize) -> Result<IoxStream, String> {
        let files = IoxFiles::new();
        Ok(IoxStream {
            cfg: files.config()?,
            files,
            len,
            publisher: None,
            subscriber: None,
            node: None,
        })
    }

    fn service(
        &mut self,
    ) -> Result<
        iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
        String,
    > {
        let node = NodeBuilder::new()
            .config(&self.cfg)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(|e| format!("iceoryx2 node: {e:?}"))?;
        let svc = node
            .service_builder(
                &ServiceName::new("ipc-bench/stream")
                    .map_err(|e| format!("iceoryx2 name: {e:?}"))?,
            )
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(16)
            .open_or_create()
            .map_err(|e| format!("iceoryx2 service: {e:?}"))?;
        self.node = Some(node);
        Ok(svc)
    }
}

impl Stream for IoxStream {
    fn peer_setup(&mut self) -> Result<(), String> {
        let svc = self.service()?;
        self.subscriber = Some(
            svc.subscriber_builder()
                .create()
                .map_err(|e| format!("iceoryx2 subscriber: {e:?}"))?,
        );
        Ok(())
    }

    fn consume(&mut self, n: u64, w: &Watch) -> Result<(), String> {
        let sub = self.subscriber.as_ref().ok_or("not attached")?;
        let mut tries: u32 = 0;
        let mut want = 0;
        while want < n {
            match sub
                .receive()
                .map_err(|e| format!("iceoryx2 receive: {e:?}"))?
            {
                Some(s) => {
                    match read_msg(s.payload(), self.len) {
                        Some(v) if v == want => {}
                        other => return Err(format!("message {want}: got {other:?}")),
                    }
                    want += 1;
                }
                None => {
                    std::hint::spin_loop();
                    tries = tries.wrapping_add(1);
                    if tries.is_multiple_of(65_536) {
                        w.check("an iceoryx2 sample")?;
                    }
                }
            }
        }
        Ok(())
    }

    fn peer_teardown(&mut self) {
        self.subscriber = None;
        self.node = None;
    }

    fn after_fork(&mut self) -> Result<(), String> {
        let svc = self.service()?;
        self.publisher = Some(
            svc.publisher_builder()
                .initial_max_slice_len(self.len)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .map_err(|e| format!("iceoryx2 publisher: {e:?}"))?,
        );
        Ok(())
    }

    fn produce(&mut self, n: u64, w: &Watch) -> Result<(), String> {
        let publ = self.publisher.as_ref().ok_or("not attached")?;
        // The subscriber is there (the peer said ready): connect to it
        // before the first sample, not during the stream.
        publ.update_connections()
            .map_err(|e| format!("iceoryx2 connections: {e:?}"))?;
        let len = self.len;
        let mut i = 0;
        while i < n {
            let mut s =
                crate::baselines::throughput::spin_on(w, "an iceoryx2 sample to loan", || {
                    publ.loan_slice_uninit(len)
                })?;
            let p = s.payload_mut();
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; the payload is
            // written by `fill` before anything reads it.
            let bytes =
                unsafe { std::slice::from_raw_parts_mut(p.as_mut_ptr().cast::<u8>(), p.len()) };
            fill(bytes, i);
            // SAFETY: `fill` wrote every byte just above.
            let s = unsafe { s.assume_init() };
            let delivered = s.send().map_err(|e| format!("iceoryx2 send: {e:?}"))?;
            if delivered == 0 {
                // The subscriber's connection was not there for this sample
                // (iceoryx2 renews connections lazily): renew it and send
                // the same message again, so the stream the peer checks
                // stays gapless.
                publ.update_connections()
                    .map_err(|e| format!("iceoryx2 connections: {e:?}"))?;
                w.check("an iceoryx2 subscriber")?;
                continue;
            }
            i += 1;
        }
        Ok(())
    }
}

impl Drop for IoxStream {
    fn drop(&mut self) {
        self.publisher = None;
        self.subscriber = None;
        self.node = None;
        self.files.remove();
    }
}
