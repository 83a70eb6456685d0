//! The other side of a measurement: a forked process or a thread, pinned to
//! the second core, that runs one block of work each time the harness asks
//! and sleeps in `FUTEX_WAIT` in between.
//!
//! Sleeping between blocks is what lets two measurements take turns in one
//! run (see [`crate::side`]): while one side's block runs, the other side's
//! peer is asleep, not spinning on the same core.
//!
//! One block goes like this (every wait has a deadline, checked between
//! slices):
//!
//! | harness | peer |
//! |---|---|
//! | writes the block's argument, bumps `cmd`, `FUTEX_WAKE` | asleep on `cmd` |
//! | spins until `awake == cmd` | wakes, stores `awake = cmd`, spins on `go` |
//! | stores `go = cmd`, then does its part (timed) | does its part |
//! | spins until `done == cmd` | stores `done = cmd`, sleeps on `cmd` again |
//!
//! The peer's wake-up (tens of microseconds on a VM) happens before `go`,
//! outside anything the harness times.

use crate::machine::pin_to_core;
use crate::runner::{Ctx, Watch};
use crate::shm::{Shm, LINE};
use multiproc_core::futex;
use multiproc_core::Process;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The command that tells the peer to leave its loop.
const STOP: u32 = u32::MAX;

const CMD: usize = 0;
const ARG: usize = 8;
const AWAKE: usize = LINE;
const GO: usize = 2 * LINE;
const DONE: usize = 3 * LINE;
const READY: usize = 4 * LINE;
/// Set by the peer when its body returned (or failed).
const GONE: usize = 5 * LINE;
/// Set by the harness when it gives up on a block.
const ABORT: usize = 6 * LINE;
const ERR_LEN: usize = 7 * LINE;
const ERR_TEXT: usize = 7 * LINE + 8;
const ERR_CAP: usize = 1024 - 8;
const CTL_SIZE: usize = 8 * LINE + 1024;

/// The shared control words of one peer (an anonymous segment, so a forked
/// child and a thread see the same words).
#[derive(Debug)]
pub struct Ctl {
    shm: Shm,
    /// How long one block may take before either side gives up.
    timeout: Duration,
}

impl Ctl {
    fn new(timeout: Duration) -> Result<Ctl, String> {
        Ok(Ctl {
            shm: Shm::new(CTL_SIZE)?,
            timeout,
        })
    }

    fn cmd(&self) -> &AtomicU32 {
        self.shm.u32_at(CMD)
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        self.shm.u64_at(off)
    }

    /// In the peer: says the set-up is done; the harness waits for this
    /// before its first block.
    pub fn ready(&self) {
        self.word(READY).store(1, Ordering::Release);
    }

    /// In the peer: runs `serve(arg, watch)` once per block the harness asks
    /// for, until it says stop. The watch of each block expires after the
    /// run's timeout and ends early if the harness gives up.
    ///
    /// # Errors
    /// The first error of `serve`, or a timeout waiting for the go signal.
    pub fn serve(
        &self,
        mut serve: impl FnMut(u64, &Watch) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut last = 0u32;
        loop {
            let c = loop {
                let c = self.cmd().load(Ordering::Acquire);
                if c != last {
                    break c;
                }
                // Sleep until the harness bumps the word; the slices only
                // bound how long a lost wake-up could delay us.
                let until = Instant::now() + Duration::from_millis(100);
                futex::wait_until(self.cmd(), c, Some(until));
                if self.word(ABORT).load(Ordering::Acquire) != 0 {
                    return Err("the harness gave up".into());
                }
            };
            if c == STOP {
                return Ok(());
            }
            last = c;
            let arg = self.word(ARG).load(Ordering::Acquire);
            let w = Watch::new(self.timeout).with_flag(self.word(ABORT));
            self.word(AWAKE).store(u64::from(c), Ordering::Release);
            w.spin_until("the go signal", || {
                self.word(GO).load(Ordering::Acquire) == u64::from(c)
            })?;
            serve(arg, &w)?;
            self.word(DONE).store(u64::from(c), Ordering::Release);
        }
    }

    /// Records `msg` for the harness (cut to the box's size); first one wins.
    fn put_error(&self, msg: &str) {
        if self.word(ERR_LEN).load(Ordering::Acquire) != 0 {
            return;
        }
        let b = msg.as_bytes();
        let n = b.len().min(ERR_CAP);
        // SAFETY: only the peer writes these bytes, once (the length is
        // still 0), before publishing their length; the harness reads them
        // only after seeing the length.
        unsafe { self.shm.bytes_mut(ERR_TEXT, n) }.copy_from_slice(&b[..n]);
        self.word(ERR_LEN).store(n.max(1) as u64, Ordering::Release);
    }

    /// The peer's error, if it recorded one.
    fn take_error(&self) -> Option<String> {
        let n = (self.word(ERR_LEN).load(Ordering::Acquire) as usize).min(ERR_CAP);
        if n == 0 {
            return None;
        }
        // SAFETY: the peer wrote these bytes before publishing `n` (acquired
        // above) and never writes them again.
        let b = unsafe { self.shm.bytes_mut(ERR_TEXT, n) };
        Some(String::from_utf8_lossy(b).into_owned())
    }

    /// Runs the peer's body and leaves its error (if any) and the "gone"
    /// flag behind; returns whether it succeeded.
    fn run_body(&self, core: usize, body: impl FnOnce(&Ctl) -> Result<(), String>) -> bool {
        let r = pin_to_core(core).and_then(|()| body(self));
        if let Err(e) = &r {
            self.put_error(e);
        }
        self.word(GONE).store(1, Ordering::Release);
        r.is_ok()
    }
}

enum Who {
    Process(Process),
    Thread(JoinHandle<bool>),
}

/// A running peer, driven block by block.
pub struct Peer {
    ctl: Arc<Ctl>,
    who: Option<Who>,
    seq: u32,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("seq", &self.seq).finish()
    }
}

impl Peer {
    /// Forks a peer process pinned to the second core that runs `body`
    /// (which sets up, calls [`Ctl::ready`] and then [`Ctl::serve`]). The
    /// harness must be single-threaded when it calls this.
    ///
    /// # Errors
    /// The control segment or the fork failed.
    pub fn fork(ctx: &Ctx, body: impl FnOnce(&Ctl) -> Result<(), String>) -> Result<Peer, String> {
        let ctl = Arc::new(Ctl::new(ctx.timeout)?);
        let core = ctx.cores.1;
        let c = &*ctl;
        let b = Process::builder().name("ipc-bench-peer").daemon(true);
        // SAFETY: a peer runs one measurement: it pins itself, then touches
        // only the memory of that measurement and reports through the
        // control segment; the harness forks only while single-threaded, so
        // no lock another thread holds is copied into the child.
        let p = unsafe { b.fork_unchecked(move || -> i32 { i32::from(!c.run_body(core, body)) }) }
            .map_err(|e| format!("cannot start the peer: {e}"))?;
        Ok(Peer {
            ctl,
            who: Some(Who::Process(p)),
            seq: 0,
        })
    }

    /// Starts a peer thread pinned to the second core that runs `body`.
    ///
    /// # Errors
    /// The control segment or the thread could not be made.
    pub fn thread(
        ctx: &Ctx,
        body: impl FnOnce(&Ctl) -> Result<(), String> + Send + 'static,
    ) -> Result<Peer, String> {
        let ctl = Arc::new(Ctl::new(ctx.timeout)?);
        let core = ctx.cores.1;
        let c = ctl.clone();
        let h = std::thread::Builder::new()
            .name("ipc-bench-peer".into())
            .spawn(move || c.run_body(core, body))
            .map_err(|e| format!("cannot start the peer thread: {e}"))?;
        Ok(Peer {
            ctl,
            who: Some(Who::Thread(h)),
            seq: 0,
        })
    }

    /// A watch for the harness's waits of one block: the run's timeout from
    /// now, ended early when the peer exits or fails.
    pub fn watch(&self) -> Watch {
        let w = Watch::new(self.ctl.timeout).with_flag(self.ctl.word(GONE));
        match &self.who {
            Some(Who::Process(p)) => w.with_peer(p.pid()),
            _ => w,
        }
    }

    /// Waits until the peer's set-up called [`Ctl::ready`].
    ///
    /// # Errors
    /// A timeout, or the peer failed first.
    pub fn wait_ready(&self) -> Result<(), String> {
        self.watch().spin_until("the peer to be ready", || {
            self.ctl.word(READY).load(Ordering::Acquire) == 1
        })
    }

    /// Starts a block with argument `arg` and waits until the peer is awake
    /// and spinning on the go signal; returns the block's watch.
    ///
    /// # Errors
    /// A timeout, or the peer failed.
    pub fn begin(&mut self, arg: u64) -> Result<Watch, String> {
        self.seq += 1;
        let seq = self.seq;
        self.ctl.word(ARG).store(arg, Ordering::Release);
        self.ctl.cmd().store(seq, Ordering::Release);
        futex::wake(self.ctl.cmd(), 1);
        let w = self.watch();
        w.spin_until("the peer to wake", || {
            self.ctl.word(AWAKE).load(Ordering::Acquire) == u64::from(seq)
        })?;
        Ok(w)
    }

    /// Lets the peer run the block [`Peer::begin`] announced.
    pub fn go(&self) {
        self.ctl
            .word(GO)
            .store(u64::from(self.seq), Ordering::Release);
    }

    /// Waits until the peer has finished the current block.
    ///
    /// # Errors
    /// A timeout, or the peer failed.
    pub fn wait_done(&self, w: &Watch) -> Result<(), String> {
        let seq = u64::from(self.seq);
        w.spin_until("the peer to finish its block", || {
            self.ctl.word(DONE).load(Ordering::Acquire) == seq
        })
    }

    /// Tells the peer to leave and waits for it (10 s at most; then it is
    /// killed, if a process).
    ///
    /// # Errors
    /// The peer failed, or did not finish.
    pub fn stop(mut self) -> Result<(), String> {
        self.ctl.cmd().store(STOP, Ordering::Release);
        futex::wake(self.ctl.cmd(), 1);
        match self.who.take() {
            Some(Who::Process(p)) => match p.join_timeout(Duration::from_secs(10)) {
                Ok(Some(s)) if s.success() => Ok(()),
                Ok(Some(s)) => Err(self.ctl.take_error().map_or_else(
                    || format!("the peer failed ({s})"),
                    |e| format!("peer: {e}"),
                )),
                Ok(None) => {
                    let _ = p.kill();
                    let _ = p.join();
                    Err("the peer did not finish".into())
                }
                Err(e) => Err(format!("joining the peer: {e}")),
            },
            Some(Who::Thread(h)) => match h.join() {
                Ok(true) => Ok(()),
                Ok(false) => Err(self
                    .ctl
                    .take_error()
                    .map_or_else(|| "the peer thread failed".into(), |e| format!("peer: {e}"))),
                Err(_) => Err("the peer thread panicked".into()),
            },
            None => Ok(()),
        }
    }

    /// Ends a peer after the harness's side of a block failed with `err`;
    /// returns the peer's own error if it left one (the cause), else `err`.
    pub fn fail(mut self, err: String) -> String {
        self.ctl.word(ABORT).store(1, Ordering::Release);
        self.ctl.cmd().store(STOP, Ordering::Release);
        futex::wake(self.ctl.cmd(), 1);
        match self.who.take() {
            Some(Who::Process(p)) => {
                let _ = p.kill();
                let _ = p.join();
            }
            Some(Who::Thread(h)) => {
                let _ = h.join();
            }
            None => {}
        }
        match self.ctl.take_error() {
            Some(e) => format!("peer: {e}"),
            None => err,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.who.is_some() {
            self.ctl.word(ABORT).store(1, Ordering::Release);
            self.ctl.cmd().store(STOP, Ordering::Release);
            futex::wake(self.ctl.cmd(), 1);
            match self.who.take() {
                Some(Who::Process(p)) => {
                    let _ = p.kill();
                    let _ = p.join();
                }
                Some(Who::Thread(h)) => {
                    let _ = h.join();
                }
                None => {}
            }
        }
    }
}
