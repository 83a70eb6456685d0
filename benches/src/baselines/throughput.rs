//! Throughput baselines: `rtrb` between two threads of one process, 64-byte
//! messages through a pipe between two processes, and the cross-core copy
//! floor for bandwidth.

use super::fdio::{pipe, read_some, write_all};
use crate::peer::{Ctl, Peer};
use crate::runner::{Ctx, Stream, Watch};
use crate::shm::Shm;
use crate::side::{Block, BoxSide, NotMade, Side, StreamSide, ThreadShape, ThreadSide};
use std::os::fd::OwnedFd;
use std::time::Instant;

/// Message count per block for fast (shared-memory) streams: about 10 ms
/// at 100 M/s, long enough that the lock-step and run-ahead phases of a
/// producer and its consumer average out within a block.
pub const FAST_MESSAGES: u64 = 1_000_000;

/// Quick-suite message count per block for the pipe stream.
pub const PIPE_MESSAGES: u64 = 20_000;

/// Spins until `f` succeeds, looking at the watch every 64 Ki tries.
#[inline]
pub fn spin_on<T, E>(
    w: &Watch,
    what: &str,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, String> {
    let mut tries: u32 = 0;
    loop {
        if let Ok(v) = f() {
            return Ok(v);
        }
        std::hint::spin_loop();
        tries = tries.wrapping_add(1);
        if tries.is_multiple_of(65_536) {
            w.check(what)?;
        }
    }
}

/// Messages per second of `rtrb` (8-byte `u64` messages, one `push` and one
/// `pop` per message) between two threads pinned to the two cores; the
/// consumer checks every value.
///
/// # Errors
/// Never: the ring is made in memory.
pub fn rtrb_throughput(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(4096);
    let serve = Box::new(move |n: u64, w: &Watch| -> Result<(), String> {
        for want in 0..n {
            let v = spin_on(w, "the rtrb producer", || rx.pop())?;
            if v != want {
                return Err(format!("rtrb: got {v}, expected {want}"));
            }
        }
        Ok(())
    });
    let produce = move |n: u64, w: &Watch| -> Result<(), String> {
        for i in 0..n {
            spin_on(w, "the rtrb consumer", || tx.push(i))?;
        }
        Ok(())
    };
    Ok(ThreadSide::boxed(
        serve,
        produce,
        ThreadShape::Stream {
            n: ctx.count(FAST_MESSAGES),
        },
    ))
}

/// 64-byte messages through a pipe: one `write` per message; the reader
/// reads whatever is there (up to 64 KiB at a time) and checks every
/// message's sequence number.
#[derive(Debug)]
pub struct PipeStream {
    tx: Option<OwnedFd>,
    rx: Option<OwnedFd>,
}

/// Size of one pipe message.
pub const PIPE_MSG: usize = 64;

impl PipeStream {
    /// A fresh pipe.
    ///
    /// # Errors
    /// The OS error.
    pub fn new() -> Result<PipeStream, String> {
        let (rx, tx) = pipe()?;
        Ok(PipeStream {
            tx: Some(tx),
            rx: Some(rx),
        })
    }
}

impl Stream for PipeStream {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.tx = None;
        Ok(())
    }

    fn consume(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let rx = self.rx.as_ref().ok_or("no pipe")?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut have = 0usize;
        let mut seen = 0u64;
        while seen < n {
            let r = read_some(rx, &mut buf[have..])?;
            if r == 0 {
                return Err("the pipe closed early".into());
            }
            have += r;
            let whole = have / PIPE_MSG * PIPE_MSG;
            for msg in buf[..whole].chunks_exact(PIPE_MSG) {
                let v = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
                if v != seen {
                    return Err(format!("pipe: message {v}, expected {seen}"));
                }
                seen += 1;
            }
            buf.copy_within(whole..have, 0);
            have -= whole;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.rx = None;
        Ok(())
    }

    fn produce(&mut self, n: u64, _w: &Watch) -> Result<(), String> {
        let tx = self.tx.as_ref().ok_or("no pipe")?;
        let mut msg = [0xa5u8; PIPE_MSG];
        for i in 0..n {
            msg[..8].copy_from_slice(&i.to_le_bytes());
            write_all(tx, &msg)?;
        }
        Ok(())
    }
}

/// Messages per second of [`PipeStream`] between two processes.
///
/// # Errors
/// The pipe could not be made.
pub fn pipe_throughput(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    Ok(StreamSide::boxed(
        PipeStream::new()?,
        ctx.count(PIPE_MESSAGES),
        1.0,
    ))
}

/// Size of one message of the 4 KiB bandwidth figures.
pub const COPY: usize = 4096;

/// The size of the copy floor's buffer: the largest cache plus 64 MiB, at
/// least 64 MiB and at most 512 MiB.
pub fn floor_bytes() -> usize {
    let mut largest = 0usize;
    for i in 0..8 {
        let p = format!("/sys/devices/system/cpu/cpu0/cache/index{i}/size");
        let Ok(s) = std::fs::read_to_string(p) else {
            continue;
        };
        let s = s.trim();
        let (num, mult) = match s.strip_suffix('K') {
            Some(n) => (n, 1024),
            None => match s.strip_suffix('M') {
                Some(n) => (n, 1024 * 1024),
                None => (s, 1),
            },
        };
        if let Ok(v) = num.parse::<usize>() {
            largest = largest.max(v * mult);
        }
    }
    (largest + (64 << 20)).clamp(64 << 20, 512 << 20)
}

/// The cross-core streaming-copy floor: the peer, on the other core, writes
/// a buffer larger than the caches; the harness then copies it into a
/// buffer of its own, timed (GB/s of the copy). What moving bytes that
/// another core wrote costs, with nothing in the way.
pub struct CopyFloor {
    src: Shm,
    dst: Vec<u8>,
    peer: Option<Peer>,
    round: u64,
}

/// The [`CopyFloor`] side, with a buffer of [`floor_bytes`] (1 MiB when
/// smoke-testing).
///
/// # Errors
/// The shared buffer could not be made.
pub fn copy_floor(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let len = if ctx.mode == crate::runner::Mode::Smoke {
        1 << 20
    } else {
        floor_bytes()
    };
    Ok(Box::new(CopyFloor {
        src: Shm::new(len)?,
        dst: vec![1u8; len],
        peer: None,
        round: 0,
    }))
}

impl Side for CopyFloor {
    fn forks(&self) -> bool {
        true
    }

    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        crate::machine::pin_to_core(ctx.cores.0)?;
        let src = &self.src;
        let len = self.dst.len();
        let peer = Peer::fork(ctx, |c: &Ctl| {
            c.ready();
            c.serve(|v, _w| {
                // SAFETY: the harness reads the buffer only after this block
                // is done, and never writes it.
                unsafe { src.bytes_mut(0, len) }.fill(v as u8);
                Ok(())
            })
        })?;
        match peer.wait_ready() {
            Ok(()) => {
                self.peer = Some(peer);
                Ok(())
            }
            Err(e) => Err(peer.fail(e)),
        }
    }

    fn block(&mut self, _ctx: &Ctx) -> Result<Block, String> {
        let peer = self.peer.as_mut().ok_or("not started")?;
        self.round += 1;
        let v = self.round % 251 + 1;
        let w = peer.begin(v)?;
        peer.go();
        peer.wait_done(&w)?;
        let len = self.dst.len();
        // SAFETY: the peer finished writing (its block is done) and writes
        // again only in the next block.
        let src = unsafe { self.src.bytes_mut(0, len) };
        let t0 = Instant::now();
        self.dst.copy_from_slice(src);
        std::hint::black_box(&mut self.dst);
        let secs = t0.elapsed().as_secs_f64();
        if self.dst[0] != v as u8 || self.dst[len - 1] != v as u8 {
            return Err("the copy did not read what the peer wrote".into());
        }
        Ok(Block::Rate {
            value: len as f64 / secs / 1e9,
            count: 1,
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
