//! Round-trip baselines between two processes, 8-byte messages: the
//! cache-line ping-pong (the physical floor) and one kernel wake-up per
//! message each way (futex, eventfd, pipe, Unix socket, POSIX semaphore),
//! plus a lock hand-off through a process-shared `pthread_mutex_t`.

use super::fdio::{eventfd, pipe, read_exact, socketpair, write_all};
use crate::runner::{PingPong, Watch};
use crate::shm::{Shm, LINE};
use multiproc_core::futex::{self, WaitOutcome};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

/// Cache-line ping-pong: one 64-bit word, the message itself, written by
/// each side in turn (odd numbers by the harness, even ones by the peer),
/// each side spinning until the other's value appears.
#[derive(Debug)]
pub struct C2c {
    shm: Shm,
}

impl C2c {
    /// The shared word, zeroed.
    ///
    /// # Errors
    /// The segment could not be created.
    pub fn new() -> Result<C2c, String> {
        Ok(C2c {
            shm: Shm::new(LINE)?,
        })
    }
}

impl PingPong for C2c {
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        let word = self.shm.u64_at(0);
        for i in 0..rounds {
            let want = 2 * i + 1;
            w.spin_until("the harness", || word.load(Ordering::Acquire) == want)?;
            let v = word.load(Ordering::Acquire);
            word.store(v + 1, Ordering::Release);
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        let word = self.shm.u64_at(0);
        word.store(2 * i + 1, Ordering::Release);
        w.spin_until("the peer", || word.load(Ordering::Acquire) == 2 * i + 2)
    }
}

/// Cache-line ping-pong over two lines, one per direction (as two rings
/// are): the harness writes the round's number into the first line, the
/// peer answers in the second; each side only reads the other's line.
#[derive(Debug)]
pub struct C2cTwoLines {
    shm: Shm,
}

impl C2cTwoLines {
    /// The two words, zeroed, 128 bytes apart.
    ///
    /// # Errors
    /// The segment could not be created.
    pub fn new() -> Result<C2cTwoLines, String> {
        Ok(C2cTwoLines {
            shm: Shm::new(2 * LINE)?,
        })
    }
}

impl PingPong for C2cTwoLines {
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        let (ping, pong) = (self.shm.u64_at(0), self.shm.u64_at(LINE));
        for i in 0..rounds {
            w.spin_until("the harness", || ping.load(Ordering::Acquire) == i + 1)?;
            pong.store(i + 1, Ordering::Release);
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        let (ping, pong) = (self.shm.u64_at(0), self.shm.u64_at(LINE));
        ping.store(i + 1, Ordering::Release);
        w.spin_until("the peer", || pong.load(Ordering::Acquire) == i + 1)
    }
}

/// Futex ping-pong: the message goes in a shared 64-bit slot, then a 32-bit
/// sequence word is bumped and `FUTEX_WAKE` called every time; the other side
/// sleeps in `FUTEX_WAIT` until the word changes. No spinning at all.
#[derive(Debug)]
pub struct Futex {
    shm: Shm,
}

impl Futex {
    /// The shared words, zeroed.
    ///
    /// # Errors
    /// The segment could not be created.
    pub fn new() -> Result<Futex, String> {
        Ok(Futex {
            shm: Shm::new(2 * LINE)?,
        })
    }
}

/// Sleeps on `word` until it holds `want`.
#[inline]
fn futex_wait_for(word: &AtomicU32, want: u32, w: &Watch) -> Result<(), String> {
    loop {
        let v = word.load(Ordering::Acquire);
        if v == want {
            return Ok(());
        }
        if futex::wait_until(word, v, Some(w.slice_end())) == WaitOutcome::TimedOut {
            w.check("FUTEX_WAIT")?;
        }
    }
}

impl PingPong for Futex {
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        let (word, msg) = (self.shm.u32_at(0), self.shm.u64_at(LINE));
        for i in 0..rounds {
            futex_wait_for(word, (2 * i + 1) as u32, w)?;
            let v = msg.load(Ordering::Relaxed);
            msg.store(v + 1, Ordering::Relaxed);
            word.store((2 * i + 2) as u32, Ordering::Release);
            futex::wake(word, 1);
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        let (word, msg) = (self.shm.u32_at(0), self.shm.u64_at(LINE));
        msg.store(i, Ordering::Relaxed);
        word.store((2 * i + 1) as u32, Ordering::Release);
        futex::wake(word, 1);
        futex_wait_for(word, (2 * i + 2) as u32, w)?;
        check_reply(i, msg.load(Ordering::Relaxed))
    }
}

#[inline]
fn check_reply(i: u64, got: u64) -> Result<(), String> {
    if got == i + 1 {
        Ok(())
    } else {
        Err(format!(
            "round {i}: the answer was {got}, expected {}",
            i + 1
        ))
    }
}

/// Which kernel object carries the 8-byte messages of an [`FdPingPong`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// Two pipes, one per direction.
    Pipe,
    /// One Unix stream socket pair.
    Uds,
    /// Two eventfds; the message is the counter value itself.
    Eventfd,
}

/// 8-byte messages through pipes, a Unix socket pair or eventfds, with
/// blocking reads: each message is one `write` and one `read` system call.
#[derive(Debug)]
pub struct FdPingPong {
    /// The harness's (send, receive) descriptors.
    mine: Option<(OwnedFd, OwnedFd)>,
    /// The peer's (send, receive) descriptors.
    theirs: Option<(OwnedFd, OwnedFd)>,
}

impl FdPingPong {
    /// Opens the descriptors for `kind`.
    ///
    /// # Errors
    /// The OS error.
    pub fn new(kind: FdKind) -> Result<FdPingPong, String> {
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
        let (mine, theirs) = match kind {
            FdKind::Pipe => {
                let (to_peer_r, to_peer_w) = pipe()?;
                let (from_peer_r, from_peer_w) = pipe()?;
                ((to_peer_w, from_peer_r), (from_peer_w, to_peer_r))
            }
            FdKind::Uds => {
                let (a, b) = socketpair()?;
                ((dup(&a)?, a), (dup(&b)?, b))
            }
            FdKind::Eventfd => {
                let (to_peer, from_peer) = (eventfd()?, eventfd()?);
                ((dup(&to_peer)?, dup(&from_peer)?), (from_peer, to_peer))
            }
        };
        Ok(FdPingPong {
            mine: Some(mine),
            theirs: Some(theirs),
        })
    }
}

impl PingPong for FdPingPong {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.mine = None;
        Ok(())
    }

    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let (tx, rx) = self.theirs.as_ref().ok_or("no descriptors")?;
        let mut buf = [0u8; 8];
        for _ in 0..rounds {
            read_exact(rx, &mut buf)?;
            let v = u64::from_le_bytes(buf);
            write_all(tx, &(v + 1).to_le_bytes())?;
        }
        Ok(())
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.theirs = None;
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let (tx, rx) = self.mine.as_ref().ok_or("no descriptors")?;
        // Eventfd counters must not be written with 0: send i + 1.
        write_all(tx, &(i + 1).to_le_bytes())?;
        let mut buf = [0u8; 8];
        read_exact(rx, &mut buf)?;
        check_reply(i + 1, u64::from_le_bytes(buf))
    }
}

/// Two process-shared POSIX semaphores (`sem_init` with `pshared = 1`) in
/// shared memory, one per direction; the message sits in a shared slot.
#[derive(Debug)]
pub struct PosixSem {
    shm: Shm,
}

const SEM_TO_PEER: usize = 0;
const SEM_FROM_PEER: usize = LINE;
const SEM_MSG: usize = 2 * LINE;

impl PosixSem {
    /// Initializes both semaphores at 0.
    ///
    /// # Errors
    /// The segment or `sem_init` failed.
    pub fn new() -> Result<PosixSem, String> {
        let shm = Shm::new(3 * LINE)?;
        for off in [SEM_TO_PEER, SEM_FROM_PEER] {
            let p = shm
                .raw(off, std::mem::size_of::<libc::sem_t>(), 8)
                .cast::<libc::sem_t>();
            // SAFETY: `p` points at zeroed shared memory large and aligned
            // enough for a sem_t (checked by `raw`), which no one uses yet.
            if unsafe { libc::sem_init(p, 1, 0) } != 0 {
                return Err(format!("sem_init: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(PosixSem { shm })
    }

    fn sem(&self, off: usize) -> *mut libc::sem_t {
        self.shm
            .raw(off, std::mem::size_of::<libc::sem_t>(), 8)
            .cast::<libc::sem_t>()
    }

    #[inline]
    fn post(&self, off: usize) -> Result<(), String> {
        // SAFETY: the semaphore was initialized in `new` and lives as long
        // as the mapping, which `self` holds.
        if unsafe { libc::sem_post(self.sem(off)) } != 0 {
            return Err(format!("sem_post: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    #[inline]
    fn wait(&self, off: usize, w: &Watch) -> Result<(), String> {
        loop {
            let until = realtime_in(50_000_000);
            // SAFETY: as in `post`; `until` is a valid timespec.
            if unsafe { libc::sem_timedwait(self.sem(off), &until) } == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::ETIMEDOUT) => w.check("sem_timedwait")?,
                _ => return Err(format!("sem_timedwait: {e}")),
            }
        }
    }
}

impl PingPong for PosixSem {
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        let msg = self.shm.u64_at(SEM_MSG);
        for _ in 0..rounds {
            self.wait(SEM_TO_PEER, w)?;
            let v = msg.load(Ordering::Relaxed);
            msg.store(v + 1, Ordering::Relaxed);
            self.post(SEM_FROM_PEER)?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        let msg = self.shm.u64_at(SEM_MSG);
        msg.store(i, Ordering::Relaxed);
        self.post(SEM_TO_PEER)?;
        self.wait(SEM_FROM_PEER, w)?;
        check_reply(i, msg.load(Ordering::Relaxed))
    }
}

/// `CLOCK_REALTIME` now plus `ns` nanoseconds (for `sem_timedwait`).
fn realtime_in(ns: libc::c_long) -> libc::timespec {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    t.tv_nsec += ns;
    while t.tv_nsec >= 1_000_000_000 {
        t.tv_nsec -= 1_000_000_000;
        t.tv_sec += 1;
    }
    t
}

/// A lock that guards the three words of a hand-off: whose turn it is, the
/// message and the answer.
pub trait TurnLock {
    /// Runs `f` on the guarded words with the lock held.
    ///
    /// # Errors
    /// The lock failed (for example its owner died).
    fn locked<R>(&self, f: impl FnOnce(&mut [u64; 3]) -> R) -> Result<R, String>;
}

/// Lock hand-off ping-pong: each side, in a loop, locks, looks whether it is
/// its turn, and if so reads the message, writes the answer and passes the
/// turn before unlocking; otherwise it unlocks and tries again. A round trip
/// is the harness passing the turn and getting it back.
#[derive(Debug)]
pub struct Handoff<L> {
    lock: L,
}

impl<L: TurnLock> Handoff<L> {
    /// A hand-off over `lock`, whose words must start zeroed (turn 0: the
    /// harness's).
    pub fn new(lock: L) -> Handoff<L> {
        Handoff { lock }
    }

    /// Waits until the turn word says `me`, then runs `f` under the lock
    /// (which may pass the turn on).
    #[inline]
    fn when_turn(&self, me: u64, w: &Watch, f: impl Fn(&mut [u64; 3])) -> Result<(), String> {
        let mut failure = None;
        w.spin_until("the lock hand-off", || {
            let r = self.lock.locked(|d| {
                let mine = d[0] == me;
                if mine {
                    f(d);
                }
                mine
            });
            r.unwrap_or_else(|e| {
                failure = Some(e);
                true
            })
        })?;
        failure.map_or(Ok(()), Err)
    }
}

impl<L: TurnLock> PingPong for Handoff<L> {
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        for _ in 0..rounds {
            self.when_turn(1, w, |d| {
                d[2] = d[1] + 1;
                d[0] = 0;
            })?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        // Turn 0 is the harness's at the start of every round.
        self.lock.locked(|d| {
            d[1] = i;
            d[0] = 1;
        })?;
        let reply = std::cell::Cell::new(0u64);
        self.when_turn(0, w, |d| reply.set(d[2]))?;
        check_reply(i, reply.get())
    }
}

/// A process-shared `pthread_mutex_t` followed by the three hand-off words,
/// in shared memory.
#[derive(Debug)]
pub struct PthreadTurnLock {
    shm: Shm,
}

const PM_DATA: usize = LINE;

impl PthreadTurnLock {
    /// Initializes a process-shared (not robust) mutex.
    ///
    /// # Errors
    /// The segment or a `pthread_*` call failed.
    pub fn new() -> Result<PthreadTurnLock, String> {
        let shm = Shm::new(2 * LINE)?;
        init_pthread_mutex(shm.raw(0, std::mem::size_of::<libc::pthread_mutex_t>(), 8))?;
        Ok(PthreadTurnLock { shm })
    }

    /// The mutex.
    pub fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.shm
            .raw(0, std::mem::size_of::<libc::pthread_mutex_t>(), 8)
            .cast()
    }
}

/// Initializes a process-shared `pthread_mutex_t` at `p`.
///
/// # Errors
/// The failing `pthread_*` call.
pub fn init_pthread_mutex(p: *mut u8) -> Result<(), String> {
    // SAFETY: an all-zero attribute object is a valid target for init.
    let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a local, initialized before use and destroyed after;
    // `p` points at zeroed, unused shared memory sized and aligned for a
    // pthread_mutex_t (the caller checked it through `Shm::raw`).
    let r = unsafe {
        let mut r = libc::pthread_mutexattr_init(&mut attr);
        if r == 0 {
            r = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        }
        if r == 0 {
            r = libc::pthread_mutex_init(p.cast(), &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
        r
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "pthread mutex init: {}",
            std::io::Error::from_raw_os_error(r)
        ))
    }
}

impl TurnLock for PthreadTurnLock {
    #[inline]
    fn locked<R>(&self, f: impl FnOnce(&mut [u64; 3]) -> R) -> Result<R, String> {
        let m = self.mutex();
        // SAFETY: the mutex was initialized in `new` and lives as long as the
        // mapping `self` holds.
        let r = unsafe { libc::pthread_mutex_lock(m) };
        if r != 0 {
            return Err(format!(
                "pthread_mutex_lock: {}",
                std::io::Error::from_raw_os_error(r)
            ));
        }
        let words = self.shm.raw(PM_DATA, 24, 8).cast::<[u64; 3]>();
        // SAFETY: in bounds and aligned (checked by `raw`); the mutex is held,
        // and every process touches these words only while holding it.
        let out = f(unsafe { &mut *words });
        // SAFETY: this thread holds the mutex (locked above).
        unsafe { libc::pthread_mutex_unlock(m) };
        Ok(out)
    }
}
