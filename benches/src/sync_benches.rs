//! Measurements of `multiproc-sync`: its mutex (uncontended, and a hand-off
//! between two processes), its semaphore and its event, each beside the OS
//! primitive a program would otherwise use. The primitives keep their
//! default wait strategy (adaptive: spin, yield, then futex), as a user gets
//! them.

use crate::baselines::locks::batch_side;
use crate::baselines::rtt::{Handoff, TurnLock};
use crate::outcome::{Unit, Wait};
use crate::runner::{Ctx, Pace, PingPong, Watch};
use crate::shm::{Shm, LINE};
use crate::side::{BoxSide, NotMade, PingPongSide};
use crate::suite::{cmp, Entry};
use multiproc_sync::{ContainerConfig, Event, Mutex, Semaphore, SharedDict};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long one wait of the semaphore and event ping-pongs may take before
/// the measurement is abandoned.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// ns per uncontended `lock` + guard drop of `multiproc_sync::Mutex<u64>` in an
/// anonymous segment.
///
/// # Errors
/// Creating or locking the mutex failed.
pub fn mutex_lock_unlock(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let m = Mutex::anonymous(0u64).map_err(|e| format!("mutex: {e}"))?;
    {
        let mut g = m.lock().map_err(|e| format!("lock: {e}"))?;
        *g = 7;
    }
    if m.try_lock().map(|g| *g).ok() != Some(7) {
        return Err("the mutex did not keep its value".into());
    }
    {
        let _g = m.lock().map_err(|e| format!("lock: {e}"))?;
        if m.try_lock().is_ok() {
            return Err("try_lock took a held mutex".into());
        }
    }
    Ok(batch_side(ctx, move || {
        if let Ok(g) = m.lock() {
            std::hint::black_box(&*g);
        }
    }))
}

/// Keys the dict rows cycle through (a map that stays small).
const DICT_KEYS: u64 = 256;

/// ns per `insert` + `get` of a `u64` key and value in an
/// `multiproc_sync::SharedDict` (anonymous, uncontended): what one
/// `d[k] = v; d[k]` costs through Python's `Manager().dict()` proxy.
///
/// # Errors
/// Creating the dict failed, or it lost a value.
pub fn dict_set_get(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let d = SharedDict::<u64, u64>::anonymous(ContainerConfig::default())
        .map_err(|e| format!("dict: {e}"))?;
    d.insert(1, 11).map_err(|e| format!("insert: {e}"))?;
    if d.get(&1).ok().flatten() != Some(11) {
        return Err("the dict did not keep its value".into());
    }
    let mut k = 0;
    Ok(batch_side(ctx, move || {
        k = (k + 1) % DICT_KEYS;
        let _ = d.insert(k, k);
        std::hint::black_box(d.get(&k).ok());
    }))
}

/// The same over a `std::sync::Mutex<HashMap>` in this process: the cost
/// of one process's map, against which the shared one's cost of sharing
/// shows.
///
/// # Errors
/// Never: the signature of a measurement.
pub fn mutex_hashmap_set_get(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let d = std::sync::Mutex::new(std::collections::HashMap::<u64, u64>::new());
    let mut k = 0;
    Ok(batch_side(ctx, move || {
        k = (k + 1) % DICT_KEYS;
        if let Ok(mut m) = d.lock() {
            m.insert(k, k);
        }
        if let Ok(m) = d.lock() {
            std::hint::black_box(m.get(&k).copied());
        }
    }))
}

/// The three hand-off words under an `multiproc_sync::Mutex`.
struct SyncTurnLock(Mutex<[u64; 3]>);

impl TurnLock for SyncTurnLock {
    #[inline]
    fn locked<R>(&self, f: impl FnOnce(&mut [u64; 3]) -> R) -> Result<R, String> {
        match self.0.lock() {
            Ok(mut g) => Ok(f(&mut g)),
            Err(e) => Err(format!("lock: {e}")),
        }
    }
}

/// Semaphore ping-pong: two semaphores at 0, one per direction; the message
/// sits in a shared slot.
struct SemPingPong {
    to_peer: Semaphore,
    from_peer: Semaphore,
    msg: Shm,
}

impl SemPingPong {
    fn new() -> Result<SemPingPong, String> {
        let sem = || Semaphore::anonymous(0).map_err(|e| format!("semaphore: {e}"));
        Ok(SemPingPong {
            to_peer: sem()?,
            from_peer: sem()?,
            msg: Shm::new(LINE)?,
        })
    }
}

fn acquire(s: &Semaphore) -> Result<(), String> {
    if s.acquire_timeout(WAIT_LIMIT) {
        Ok(())
    } else {
        Err("timed out acquiring the semaphore".into())
    }
}

fn release(s: &Semaphore) -> Result<(), String> {
    s.release().map_err(|e| format!("release: {e}"))
}

fn check(i: u64, got: u64) -> Result<(), String> {
    if got == i + 1 {
        Ok(())
    } else {
        Err(format!("round {i}: answer {got}"))
    }
}

impl PingPong for SemPingPong {
    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let msg = self.msg.u64_at(0);
        for _ in 0..rounds {
            acquire(&self.to_peer)?;
            msg.store(msg.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            release(&self.from_peer)?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let msg = self.msg.u64_at(0);
        msg.store(i, Ordering::Relaxed);
        release(&self.to_peer)?;
        acquire(&self.from_peer)?;
        check(i, msg.load(Ordering::Relaxed))
    }
}

/// Event ping-pong: the sender sets an event, the waiter wakes, clears it
/// and answers through the other event.
struct EventPingPong {
    to_peer: Event,
    from_peer: Event,
    msg: Shm,
}

impl EventPingPong {
    fn new() -> Result<EventPingPong, String> {
        let ev = || Event::anonymous().map_err(|e| format!("event: {e}"));
        Ok(EventPingPong {
            to_peer: ev()?,
            from_peer: ev()?,
            msg: Shm::new(LINE)?,
        })
    }
}

fn wait_event(e: &Event) -> Result<(), String> {
    if e.wait_timeout(WAIT_LIMIT) {
        e.clear();
        Ok(())
    } else {
        Err("timed out waiting for the event".into())
    }
}

impl PingPong for EventPingPong {
    fn serve(&mut self, rounds: u64, _w: &Watch) -> Result<(), String> {
        let msg = self.msg.u64_at(0);
        for _ in 0..rounds {
            wait_event(&self.to_peer)?;
            msg.store(msg.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            self.from_peer.set();
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, _w: &Watch) -> Result<(), String> {
        let msg = self.msg.u64_at(0);
        msg.store(i, Ordering::Relaxed);
        self.to_peer.set();
        wait_event(&self.from_peer)?;
        check(i, msg.load(Ordering::Relaxed))
    }
}

/// The multiproc-sync entries of the suite.
pub fn entries() -> Vec<Entry> {
    use Pace::{Kernel, Op};
    use Wait::{Adaptive as Ad, None as Nw};
    vec![
        cmp(
            "sync.mutex.lock_unlock",
            Unit::Ns,
            Nw,
            Op,
            "baseline.pthread_mutex.lock_unlock",
            &["baseline.raw_sync.mutex.lock_unlock"],
            mutex_lock_unlock,
        ),
        cmp(
            "sync.dict.set_get",
            Unit::Ns,
            Nw,
            Op,
            "baseline.python.manager.dict.set_get",
            &["baseline.mutex_hashmap.set_get"],
            dict_set_get,
        ),
        cmp(
            "sync.mutex.handoff.rtt",
            Unit::Ns,
            Ad,
            Kernel,
            "baseline.pthread_mutex.handoff.rtt",
            &[],
            |c| {
                let m = Mutex::anonymous([0u64; 3]).map_err(|e| format!("mutex: {e}"))?;
                Ok(PingPongSide::boxed(
                    Handoff::new(SyncTurnLock(m)),
                    c.block(Kernel),
                ))
            },
        ),
        cmp(
            "sync.semaphore.rtt",
            Unit::Ns,
            Ad,
            Kernel,
            "baseline.posix_sem.rtt",
            &[],
            |c| Ok(PingPongSide::boxed(SemPingPong::new()?, c.block(Kernel))),
        ),
        cmp(
            "sync.event.rtt",
            Unit::Ns,
            Ad,
            Kernel,
            "baseline.futex.rtt",
            &["baseline.raw_sync.event.rtt"],
            |c| Ok(PingPongSide::boxed(EventPingPong::new()?, c.block(Kernel))),
        ),
    ]
}
