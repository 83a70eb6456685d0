//! Wait strategies: spin, then yield, then sleep on a futex.
//!
//! Every blocking call in the workspace goes through the same three phases,
//! chosen per endpoint by a [`WaitStrategy`]:
//!
//! | strategy | spins | yields | sleeps (futex) | who wants it |
//! |---|---|---|---|---|
//! | [`WaitStrategy::BusySpin`] | for ever | never | never | lowest latency; burns a core |
//! | [`WaitStrategy::Adaptive`] | for `spin` | for `yield_for` | afterwards | the default |
//! | [`WaitStrategy::Blocking`] | never | never | at once | many idle endpoints, little CPU |
//!
//! Why adaptive is the default: on a virtual machine a futex wake-up across
//! cores costs tens of microseconds (the sleeping vCPU must be woken by the
//! hypervisor), while a cache-line hand-off costs about a tenth of a
//! microsecond. A peer that answers within the spin budget is served at
//! cache-line speed; one that does not costs one futex round trip, and an
//! endpoint that stays idle past the budget uses no CPU.
//!
//! [`EventCount`] is the sleeping half: a `#[repr(C)]` pair of words that lives
//! in shared memory, that a waiter parks on and a notifier wakes. A notifier
//! makes a syscall only when a waiter has announced itself.

use crate::futex;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How a blocking call waits for its condition. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitStrategy {
    /// Spin on the shared word and never sleep: the lowest latency, one core
    /// kept busy for as long as the call waits.
    BusySpin,
    /// Spin for `spin`, then call `sched_yield` until `yield_for` more has
    /// passed, then sleep on a futex.
    Adaptive {
        /// How long to spin before yielding.
        spin: Duration,
        /// How long to yield after spinning, before sleeping.
        yield_for: Duration,
    },
    /// Sleep on a futex at once (after one check of the condition).
    Blocking,
}

impl WaitStrategy {
    /// The default adaptive budget: 50 us of spinning, then 50 us of yielding.
    ///
    /// 50 us is below the ~67 us a cross-core futex wake-up costs on a 2-vCPU
    /// KVM guest, so a peer that answers back-to-back is caught while spinning,
    /// and an idle endpoint stops using CPU after 0.1 ms.
    pub const ADAPTIVE: WaitStrategy = WaitStrategy::Adaptive {
        spin: Duration::from_micros(50),
        yield_for: Duration::from_micros(50),
    };

    /// An adaptive strategy with the given spin budget and no yield phase.
    pub const fn adaptive(spin: Duration) -> WaitStrategy {
        WaitStrategy::Adaptive {
            spin,
            yield_for: Duration::ZERO,
        }
    }
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::ADAPTIVE
    }
}

/// What [`Backoff::snooze`] says to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Check the condition again (the backoff spun or yielded meanwhile).
    Retry,
    /// The spin and yield budget is spent: sleep on a futex now.
    Park,
}

/// The spin-then-yield part of a wait, for callers that park on a futex word
/// of their own (a lock word, a ring index).
///
/// ```
/// use multiproc_core::wait::{Backoff, Phase, WaitStrategy};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// let flag = AtomicBool::new(true);
/// let mut b = Backoff::new(WaitStrategy::ADAPTIVE);
/// while !flag.load(Ordering::Acquire) {
///     if b.snooze() == Phase::Park { /* futex::wait(...) */ }
/// }
/// ```
#[derive(Debug)]
pub struct Backoff {
    strategy: WaitStrategy,
    start: Option<Instant>,
    step: u32,
}

/// Spins between two reads of the clock; reading it costs ~20 ns (vDSO).
const SPINS_PER_CLOCK_READ: u32 = 64;

impl Backoff {
    /// A fresh backoff for one wait.
    #[inline]
    pub const fn new(strategy: WaitStrategy) -> Self {
        Backoff {
            strategy,
            start: None,
            step: 0,
        }
    }

    /// Spins or yields once, or says it is time to park.
    ///
    /// With [`WaitStrategy::BusySpin`] it never says [`Phase::Park`]; with
    /// [`WaitStrategy::Blocking`] it always does.
    #[inline]
    pub fn snooze(&mut self) -> Phase {
        match self.strategy {
            WaitStrategy::BusySpin => {
                std::hint::spin_loop();
                Phase::Retry
            }
            WaitStrategy::Blocking => Phase::Park,
            WaitStrategy::Adaptive { spin, yield_for } => self.adaptive(spin, yield_for),
        }
    }

    #[cold]
    fn adaptive_clock(&mut self) -> Duration {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        now.saturating_duration_since(start)
    }

    #[inline]
    fn adaptive(&mut self, spin: Duration, yield_for: Duration) -> Phase {
        self.step = self.step.wrapping_add(1);
        if self.start.is_some() && !self.step.is_multiple_of(SPINS_PER_CLOCK_READ) {
            std::hint::spin_loop();
            return Phase::Retry;
        }
        let elapsed = self.adaptive_clock();
        if elapsed < spin {
            std::hint::spin_loop();
            Phase::Retry
        } else if elapsed < spin.saturating_add(yield_for) {
            std::thread::yield_now();
            Phase::Retry
        } else {
            Phase::Park
        }
    }

    /// Starts the budget again, for a waiter that was woken and must wait more.
    pub fn reset(&mut self) {
        self.start = None;
        self.step = 0;
    }
}

/// A futex-backed event count: waiters park on it until a notifier bumps it.
///
/// It holds no pointer and is valid when zeroed, so it can be placed in a
/// shared segment and used by every process that maps it. A notifier pays one
/// fence and one load when nobody waits, and a `FUTEX_WAKE` only when a waiter
/// has announced itself. A waiter that dies while parked leaves only its
/// announcement flag behind, which the next notification clears.
///
/// The protocol is the classic event count (a Dekker pair of sequentially
/// consistent accesses): the waiter announces itself, reads the sequence, then
/// re-checks its condition before sleeping on that sequence; the notifier
/// publishes its change, fences, and looks for announced waiters.
#[repr(C)]
#[derive(Debug, Default)]
pub struct EventCount {
    /// Bumped by every notification that found a waiter; waiters sleep on it.
    seq: AtomicU32,
    /// Non-zero while some waiter may be parked (or about to park).
    waiting: AtomicU32,
}

// SAFETY: two `AtomicU32`s, `#[repr(C)]`, no pointers; every bit pattern is a
// valid state (a garbage `waiting` only costs one extra wake-up).
unsafe impl crate::Shareable for EventCount {}

impl EventCount {
    /// A new event count with nobody waiting.
    pub const fn new() -> Self {
        EventCount {
            seq: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
        }
    }

    /// Wakes every parked waiter, after the caller has published the change
    /// they wait for. Makes no syscall when no waiter has announced itself.
    #[inline]
    pub fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) != 0 {
            self.notify_slow();
        }
    }

    #[cold]
    fn notify_slow(&self) {
        if self.waiting.swap(0, Ordering::SeqCst) != 0 {
            self.seq.fetch_add(1, Ordering::Release);
            futex::wake_all(&self.seq);
        }
    }

    /// How many notifications found a waiter to wake (wrapping at 2^32):
    /// the wake-ups of this event, for tools that watch it. Costs the
    /// notifier nothing: it is the sequence waiters sleep on.
    pub fn wakeups(&self) -> u32 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Whether some waiter has announced that it is parked or about to park.
    #[inline]
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) != 0
    }

    /// Waits until `check` returns `Some`, following `strategy`, and returns
    /// that value; returns `None` if `deadline` passes first.
    ///
    /// `check` is called often (it is the condition); it must be cheap and
    /// must not block. While parked, the waiter wakes at least every `poll`
    /// (if given) to call `check` again, so a condition that no notifier will
    /// signal, such as the death of a peer, is still noticed.
    pub fn wait<R>(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
        poll: Option<Duration>,
        mut check: impl FnMut() -> Option<R>,
    ) -> Option<R> {
        if let Some(r) = check() {
            return Some(r);
        }
        let mut backoff = Backoff::new(strategy);
        let mut spins: u32 = 0;
        loop {
            if backoff.snooze() == Phase::Park {
                break;
            }
            if let Some(r) = check() {
                return Some(r);
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS_PER_CLOCK_READ) && past(deadline) {
                return check();
            }
        }
        loop {
            self.waiting.store(1, Ordering::SeqCst);
            let key = self.seq.load(Ordering::SeqCst);
            if let Some(r) = check() {
                return Some(r);
            }
            if past(deadline) {
                return None;
            }
            let until = match (deadline, poll) {
                (Some(d), Some(p)) => Some(d.min(Instant::now() + p)),
                (Some(d), None) => Some(d),
                (None, Some(p)) => Some(Instant::now() + p),
                (None, None) => None,
            };
            futex::wait_until(&self.seq, key, until);
        }
    }
}

#[inline]
fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn busy_spin_never_parks() {
        let mut b = Backoff::new(WaitStrategy::BusySpin);
        for _ in 0..10_000 {
            assert_eq!(b.snooze(), Phase::Retry);
        }
    }

    #[test]
    fn blocking_parks_at_once() {
        assert_eq!(Backoff::new(WaitStrategy::Blocking).snooze(), Phase::Park);
    }

    #[test]
    fn adaptive_parks_after_budget() {
        let mut b = Backoff::new(WaitStrategy::adaptive(Duration::from_micros(200)));
        let t = Instant::now();
        while b.snooze() == Phase::Retry {}
        assert!(t.elapsed() >= Duration::from_micros(200));
    }

    #[test]
    fn event_count_times_out() {
        let ec = EventCount::new();
        let r: Option<()> = ec.wait(
            WaitStrategy::Blocking,
            Some(Instant::now() + Duration::from_millis(5)),
            None,
            || None,
        );
        assert!(r.is_none());
    }

    #[test]
    fn event_count_wakes_parked_waiter() {
        for strategy in [
            WaitStrategy::Blocking,
            WaitStrategy::ADAPTIVE,
            WaitStrategy::BusySpin,
        ] {
            let ec = Arc::new(EventCount::new());
            let flag = Arc::new(AtomicBool::new(false));
            let (e2, f2) = (Arc::clone(&ec), Arc::clone(&flag));
            let h = std::thread::spawn(move || {
                e2.wait(strategy, None, None, || {
                    f2.load(Ordering::Acquire).then_some(7)
                })
            });
            std::thread::sleep(Duration::from_millis(5));
            flag.store(true, Ordering::Release);
            ec.notify_all();
            assert_eq!(h.join().unwrap(), Some(7));
        }
    }

    #[test]
    fn notify_without_waiter_leaves_seq_alone() {
        let ec = EventCount::new();
        ec.notify_all();
        assert_eq!(ec.seq.load(Ordering::Relaxed), 0);
        assert!(!ec.has_waiters());
    }
}
