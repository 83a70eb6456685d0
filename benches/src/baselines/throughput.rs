//! Throughput baselines: `rtrb` between two threads of one process, 64-byte
//! messages through a pipe between two processes, and `memcpy` of 4 KiB.

use super::fdio::{pipe, read_some, write_all};
use crate::machine::pin_to_core;
use crate::outcome::Outcome;
use crate::runner::{measure_stream, median, Ctx, Stream, Watch};
use std::os::fd::OwnedFd;
use std::time::Instant;

/// Quick-suite message count per repetition for fast (shared-memory) streams.
pub const FAST_MESSAGES: u64 = 2_000_000;

/// Quick-suite message count per repetition for the pipe stream.
pub const PIPE_MESSAGES: u64 = 200_000;

/// Messages per second of `rtrb` (8-byte `u64` messages, one `push` and one
/// `pop` per message) between two threads pinned to the two cores.
///
/// # Errors
/// Pinning or a lost or reordered message.
pub fn rtrb_throughput(ctx: &Ctx) -> Result<Outcome, String> {
    let n = ctx.count(FAST_MESSAGES);
    let mut rates = Vec::new();
    for rep in 0..=ctx.reps() {
        let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(4096);
        let count = if rep == 0 { n / 4 } else { n };
        let core = ctx.cores.1;
        let w = ctx.watch();
        let consumer = std::thread::spawn(move || -> Result<(), String> {
            pin_to_core(core)?;
            let mut expect = 0u64;
            let mut empty: u32 = 0;
            while expect < count {
                match rx.pop() {
                    Ok(v) if v == expect => expect += 1,
                    Ok(v) => return Err(format!("rtrb: got {v}, expected {expect}")),
                    Err(_) => {
                        std::hint::spin_loop();
                        empty = empty.wrapping_add(1);
                        if empty.is_multiple_of(65_536) {
                            w.check("the rtrb producer")?;
                        }
                    }
                }
            }
            Ok(())
        });
        pin_to_core(ctx.cores.0)?;
        let t0 = Instant::now();
        let mut i = 0u64;
        let mut full: u32 = 0;
        while i < count {
            match tx.push(i) {
                Ok(()) => i += 1,
                Err(_) => {
                    std::hint::spin_loop();
                    full = full.wrapping_add(1);
                    // A consumer that stopped (on a wrong value) leaves the
                    // ring full for ever: look now and then.
                    if full.is_multiple_of(65_536)
                        && (consumer.is_finished() || w.check("rtrb").is_err())
                    {
                        break;
                    }
                }
            }
        }
        consumer
            .join()
            .map_err(|_| "rtrb consumer panicked".to_string())??;
        if i < count {
            return Err(format!("rtrb: the producer stopped after {i} of {count}"));
        }
        let secs = t0.elapsed().as_secs_f64();
        if rep > 0 {
            rates.push(count as f64 / secs);
        }
    }
    Ok(Outcome::Throughput {
        value: median(&mut rates),
        samples: n * ctx.reps() as u64,
    })
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
/// As [`measure_stream`].
pub fn pipe_throughput(ctx: &Ctx) -> Result<Outcome, String> {
    // Every repetition's messages are numbered from 0 again, by both sides.
    let n = ctx.count(PIPE_MESSAGES);
    let (value, samples) = measure_stream(ctx, n, &mut PipeStream::new()?)?;
    Ok(Outcome::Throughput { value, samples })
}

/// Size of one copy in the memcpy baseline and the 4 KiB bandwidth figures.
pub const COPY: usize = 4096;

/// GB/s of copying 4 KiB blocks (`copy_from_slice`, i.e. `memcpy`) from one
/// buffer into successive slots of a 256 KiB ring (the size of the 4 KiB stream ring), on one core: what a copy
/// into a ring slot costs when nothing else is in the way.
///
/// # Errors
/// Pinning failed.
pub fn memcpy_bandwidth(ctx: &Ctx) -> Result<Outcome, String> {
    pin_to_core(ctx.cores.0)?;
    const RING: usize = 256 * 1024;
    let src: Vec<u8> = (0..COPY).map(|i| i as u8).collect();
    let mut dst = vec![0u8; RING];
    let copies = ctx.count(500_000);
    let slots = RING / COPY;
    let mut run = |n: u64| {
        let t0 = Instant::now();
        for i in 0..n as usize {
            let at = (i % slots) * COPY;
            dst[at..at + COPY].copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        t0.elapsed().as_secs_f64()
    };
    run(copies / 4);
    let mut rates = Vec::new();
    for _ in 0..ctx.reps() {
        let secs = run(copies);
        rates.push((copies as usize * COPY) as f64 / secs / 1e9);
    }
    if dst[COPY - 1] != src[COPY - 1] {
        return Err("memcpy did not copy".into());
    }
    Ok(Outcome::Throughput {
        value: median(&mut rates),
        samples: copies * ctx.reps() as u64,
    })
}
