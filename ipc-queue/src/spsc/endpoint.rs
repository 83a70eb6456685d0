//! What both ends of an SPSC ring share: the mapping, the side, the wait
//! strategy, and the loop that waits for the ring or the peer.

use crate::raw::spsc::{RawRing, Side};
use crate::raw::PtrMem;
use multiproc_core::holders::Hold;
use multiproc_core::liveness::OsJudge;
use multiproc_core::wait::{Backoff, EventCount, Phase, WaitStrategy};
use multiproc_core::Segment;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LIVENESS_POLL;

/// What an end holds besides its raw state: the mapping (kept alive while
/// the raw end, dropped first, releases its claim), which side it is, and
/// how it waits.
#[derive(Debug)]
pub(super) struct Endpoint {
    seg: Arc<Segment>,
    pub(super) ring: RawRing<PtrMem>,
    side: Side,
    pub(super) strategy: WaitStrategy,
    /// This process's entry among the end's holders, known to the fork
    /// path (which enters a forked child there too); leaves it when
    /// dropped.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    hold: Option<Hold>,
}

pub(super) enum Waited<R> {
    Ready(R),
    PeerGone,
    TimedOut,
}

/// `now + timeout`, or no deadline when that overflows.
pub(super) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl Endpoint {
    /// The endpoint of the end of `side` this process has just claimed or
    /// joined (so it is among its holders already).
    pub(super) fn new(seg: Arc<Segment>, ring: RawRing<PtrMem>, side: Side) -> Endpoint {
        let owner: Arc<dyn std::any::Any + Send + Sync> = seg.clone();
        // SAFETY: the table lies in the segment's mapping, which `owner`
        // keeps mapped as long as the hold lives. Entering cannot fail for
        // a process already entered (as the claim or join did), so a
        // failure only loses the fork path's entry of a child.
        let hold = unsafe { Hold::enter(ring.holders_table(side), owner, &OsJudge) }.ok();
        Endpoint {
            seg,
            ring,
            side,
            strategy: WaitStrategy::ADAPTIVE,
            hold,
        }
    }

    /// Asks for a child being started with this end in its arguments to be
    /// entered among its holders once it runs (see
    /// [`on_child_started`](multiproc_core::message::on_child_started)).
    #[cfg(feature = "serde")]
    pub(super) fn hold_for_child(&self) {
        if let Some(h) = &self.hold {
            multiproc_core::message::on_child_started(h.child_hook());
        }
    }

    fn peer(&self) -> Side {
        self.side.peer()
    }

    fn own_event(&self) -> &EventCount {
        self.ring.event(self.side)
    }

    #[inline]
    pub(super) fn peer_closed(&self) -> bool {
        self.ring.is_closed(self.peer())
    }

    /// The slow check: closed, or recorded owner dead.
    pub(super) fn peer_gone(&self) -> bool {
        self.ring.is_gone(self.peer(), &OsJudge)
    }

    /// Whether a peer is attached and its process alive.
    pub(super) fn is_peer_alive(&self) -> bool {
        !self.peer_gone() && self.ring.owner(self.peer()) != 0
    }

    pub(super) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Sets the strategy, declaring a busy-spinning end in the ring so that
    /// the peer skips waking it.
    pub(super) fn set_strategy(&mut self, s: WaitStrategy) {
        self.strategy = s;
        self.ring.set_spins(self.side, s == WaitStrategy::BusySpin);
    }

    /// Waits until `ready` gives a value, the peer is gone, or `deadline`.
    pub(super) fn wait<R>(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Option<R>,
    ) -> Waited<R> {
        // A zero timeout (`poll(Some(ZERO))`): look once, do not spin.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return match ready() {
                Some(r) => Waited::Ready(r),
                // Closed after its last publish: look again before saying so.
                None if self.peer_closed() => match ready() {
                    Some(r) => Waited::Ready(r),
                    None => Waited::PeerGone,
                },
                None => Waited::TimedOut,
            };
        }
        let mut next_liveness = None;
        let gone = |this: &Endpoint, next: &mut Option<Instant>| -> bool {
            if this.peer_closed() {
                return true;
            }
            let now = Instant::now();
            let due = *next.get_or_insert(now + LIVENESS_POLL);
            if now >= due {
                *next = Some(now + LIVENESS_POLL);
                return this.peer_gone();
            }
            false
        };
        if strategy != WaitStrategy::Blocking {
            let mut backoff = Backoff::new(strategy);
            let mut n: u32 = 0;
            loop {
                if let Some(r) = ready() {
                    return Waited::Ready(r);
                }
                n = n.wrapping_add(1);
                if n.is_multiple_of(256) {
                    if gone(self, &mut next_liveness) {
                        return match ready() {
                            Some(r) => Waited::Ready(r),
                            None => Waited::PeerGone,
                        };
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Waited::TimedOut;
                    }
                }
                if backoff.snooze() == Phase::Park {
                    break;
                }
            }
        }
        let mut peer_gone = false;
        let r = self.own_event().wait(
            WaitStrategy::Blocking,
            deadline,
            Some(LIVENESS_POLL),
            || {
                if let Some(r) = ready() {
                    return Some(Some(r));
                }
                if gone(self, &mut next_liveness) {
                    if let Some(r) = ready() {
                        return Some(Some(r));
                    }
                    peer_gone = true;
                    return Some(None);
                }
                None
            },
        );
        match r {
            Some(Some(r)) => Waited::Ready(r),
            _ if peer_gone => Waited::PeerGone,
            _ => Waited::TimedOut,
        }
    }
}

/// The methods both ends have, written once.
macro_rules! end_common {
    ($end:ident, $peer:literal) => {
        impl $end {
            /// Sets how this end waits (see [`WaitStrategy`]); declares
            /// [`WaitStrategy::BusySpin`] in the ring so the peer skips
            /// waking it.
            pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
                self.ep.set_strategy(strategy);
            }

            #[doc = concat!("[`", stringify!($end), "::set_wait_strategy`], by value.")]
            pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
                self.set_wait_strategy(strategy);
                self
            }

            /// This end's wait strategy.
            pub fn wait_strategy(&self) -> WaitStrategy {
                self.ep.strategy
            }

            /// The data area's size in bytes.
            pub fn capacity(&self) -> usize {
                self.ep.ring.capacity()
            }

            /// The largest message this ring carries.
            pub fn max_message_len(&self) -> usize {
                self.ep.ring.max_message_len()
            }

            #[doc = concat!("Whether the ", $peer, " closed its end (a dead ", $peer, " is only")]
            /// noticed by blocking calls, or by `is_peer_alive`).
            pub fn is_closed(&self) -> bool {
                self.ep.peer_closed()
            }

            #[doc = concat!("Whether a ", $peer, " is attached and its process alive (reads")]
            /// `/proc`: not for hot paths).
            pub fn is_peer_alive(&self) -> bool {
                self.ep.is_peer_alive()
            }

            /// The segment holding the ring.
            pub fn segment(&self) -> &Segment {
                self.ep.segment()
            }

            /// Closes this end (as dropping it does): the peer learns it
            /// once it has read what was sent before.
            pub fn close(self) {}
        }
    };
}
pub(super) use end_common;

/// The methods a typed end (plain-old-data, `rkyv`) shares with the byte end
/// it wraps in `inner`.
macro_rules! typed_end {
    ($end:ident, $bytes:ident) => {
        impl<T> $end<T> {
            #[doc = concat!("Sets how this end waits (see [`", stringify!($bytes), "::set_wait_strategy`]).")]
            pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
                self.inner.set_wait_strategy(strategy);
            }

            #[doc = concat!("Whether the other end closed (see [`", stringify!($bytes), "::is_closed`]).")]
            pub fn is_closed(&self) -> bool {
                self.inner.is_closed()
            }

            /// The untyped end underneath.
            pub fn as_bytes(&mut self) -> &mut $bytes {
                &mut self.inner
            }

            /// Closes this end (as dropping it does).
            pub fn close(self) {}
        }
    };
}
pub(super) use typed_end;
