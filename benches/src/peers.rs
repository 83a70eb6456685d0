//! The crates a program would pick instead of this workspace, each used as
//! its documentation shows, with the same payload written and read and
//! every answer checked:
//!
//! - iceoryx2 publish-subscribe between two processes, busy-polling its
//!   subscriber (`baseline.iceoryx2.rtt`), and with its event service for
//!   the blocking case (`baseline.iceoryx2.rtt.event`: the sender notifies,
//!   the receiver sleeps in its listener). Messages are `[u8]` slices,
//!   written in place into a loaned sample and read where they lie. Every
//!   measurement uses its own file prefix and root directory, removed when
//!   it ends, so nothing is left in `/dev/shm` or `/tmp`.
//! - `ipc-channel` (serde, over Unix sockets): a `u64` each way.
//! - `shared_memory` + `raw_sync` events: two auto-reset events (a
//!   process-shared pthread condition variable each) in one segment.
//! - crossbeam's `ArrayQueue` and bounded channel between two threads
//!   pinned to the two cores (crossbeam is in-process only).

use crate::baselines::throughput::{spin_on, FAST_MESSAGES};
use crate::outcome::{Unit, Wait};
use crate::queue_benches::{fill, read_msg};
use crate::runner::{Ctx, Pace, PingPong, Watch};
use crate::side::{BoxSide, NotMade, PingPongSide, ThreadShape, ThreadSide};
use crate::suite::{base, Entry};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// iceoryx2's files for one measurement: a prefix for its shared-memory
/// objects and a root directory, both unique to this process and
/// measurement; [`IoxFiles::remove`] deletes exactly those.
#[derive(Clone, Debug)]
pub struct IoxFiles {
    prefix: String,
    root: String,
}

impl IoxFiles {
    /// A fresh, unused prefix and root directory.
    pub fn new() -> IoxFiles {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        IoxFiles {
            prefix: format!("ipcb{pid}x{n}_"),
            root: format!("/tmp/ipc-bench-iox2-{pid}-{n}/"),
        }
    }

    /// The iceoryx2 configuration that puts every file under these names.
    ///
    /// # Errors
    /// A name iceoryx2 refuses.
    pub fn config(&self) -> Result<Config, String> {
        let mut cfg = Config::default();
        cfg.global.prefix =
            FileName::new(self.prefix.as_bytes()).map_err(|e| format!("iceoryx2 prefix: {e:?}"))?;
        cfg.global.set_root_path(
            &Path::new(self.root.as_bytes()).map_err(|e| format!("iceoryx2 root: {e:?}"))?,
        );
        Ok(cfg)
    }

    /// Removes the root directory and the `/dev/shm` entries with this
    /// prefix (which only this measurement made).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
        if let Ok(dir) = std::fs::read_dir("/dev/shm") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// How many `/dev/shm` entries and root-directory files are left.
    pub fn leftovers(&self) -> usize {
        let shm = std::fs::read_dir("/dev/shm").map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&self.prefix))
                .count()
        });
        shm + usize::from(std::path::Path::new(&self.root).exists())
    }
}

impl Default for IoxFiles {
    fn default() -> IoxFiles {
        IoxFiles::new()
    }
}

type IoxService = ipc::Service;

/// One process's iceoryx2 objects: a node, a publisher to the other side,
/// a subscriber from it, and (blocking case) a notifier and a listener.
/// Fields drop in order: ports first, the node last.
struct IoxEnds {
    publisher: Publisher<IoxService, [u8], ()>,
    subscriber: Subscriber<IoxService, [u8], ()>,
    notifier: Option<Notifier<IoxService>>,
    listener: Option<Listener<IoxService>>,
    _node: Node<IoxService>,
}

/// iceoryx2 publish-subscribe ping-pong: one service each way, payload of
/// `len` bytes written into a loaned sample and read in place.
pub struct IoxPingPong {
    files: IoxFiles,
    cfg: Config,
    len: usize,
    event: bool,
    ends: Option<IoxEnds>,
}

impl IoxPingPong {
    /// A ping-pong of `len`-byte messages, busy-polling or (`event`)
    /// sleeping in an event listener.
    ///
    /// # Errors
    /// The configuration could not be made.
    pub fn new(len: usize, event: bool) -> Result<IoxPingPong, String> {
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| set_log_level(LogLevel::Fatal));
        let files = IoxFiles::new();
        Ok(IoxPingPong {
            cfg: files.config()?,
            files,
            len,
            event,
            ends: None,
        })
    }

    fn attach(&mut self, harness: bool) -> Result<(), String> {
        let e = |what: &'static str| {
            move |err: &dyn std::fmt::Debug| format!("iceoryx2 {what}: {err:?}")
        };
        let node = NodeBuilder::new()
            .config(&self.cfg)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<IoxService>()
            .map_err(|x| e("node")(&x))?;
        let (out, inp) = if harness {
            ("ping", "pong")
        } else {
            ("pong", "ping")
        };
        let name = |s: &str| {
            ServiceName::new(&format!("ipc-bench/{s}")).map_err(|x| e("service name")(&x))
        };
        let out_svc = node
            .service_builder(&name(out)?)
            .publish_subscribe::<[u8]>()
            .open_or_create()
            .map_err(|x| e("service")(&x))?;
        let in_svc = node
            .service_builder(&name(inp)?)
            .publish_subscribe::<[u8]>()
            .open_or_create()
            .map_err(|x| e("service")(&x))?;
        let publisher = out_svc
            .publisher_builder()
            .initial_max_slice_len(self.len)
            .create()
            .map_err(|x| e("publisher")(&x))?;
        let subscriber = in_svc
            .subscriber_builder()
            .create()
            .map_err(|x| e("subscriber")(&x))?;
        let (notifier, listener) = if self.event {
            let ev = |s: &str| {
                node.service_builder(&name(&format!("{s}.event"))?)
                    .event()
                    .open_or_create()
                    .map_err(|x| e("event service")(&x))
            };
            let n = ev(out)?
                .notifier_builder()
                .create()
                .map_err(|x| e("notifier")(&x))?;
            let l = ev(inp)?
                .listener_builder()
                .create()
                .map_err(|x| e("listener")(&x))?;
            (Some(n), Some(l))
        } else {
            (None, None)
        };
        self.ends = Some(IoxEnds {
            publisher,
            subscriber,
            notifier,
            listener,
            _node: node,
        });
        Ok(())
    }

    /// Connects the publisher to the subscribers there are now (the other
    /// side's is, once it said ready): samples sent before a connection
    /// exists reach nobody.
    fn connect(ends: &IoxEnds) -> Result<(), String> {
        ends.publisher
            .update_connections()
            .map_err(|x| format!("iceoryx2 connections: {x:?}"))
    }

    #[inline]
    fn send(ends: &IoxEnds, len: usize, v: u64) -> Result<(), String> {
        let mut s = ends
            .publisher
            .loan_slice_uninit(len)
            .map_err(|x| format!("iceoryx2 loan: {x:?}"))?;
        let p = s.payload_mut();
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; the slice is the
        // loaned sample's payload of `len` bytes, written here and not read
        // before `fill` initialized every byte.
        let bytes = unsafe { std::slice::from_raw_parts_mut(p.as_mut_ptr().cast::<u8>(), p.len()) };
        fill(bytes, v);
        // SAFETY: `fill` wrote every byte of the payload just above.
        let s = unsafe { s.assume_init() };
        s.send().map_err(|x| format!("iceoryx2 send: {x:?}"))?;
        if let Some(n) = &ends.notifier {
            n.notify().map_err(|x| format!("iceoryx2 notify: {x:?}"))?;
        }
        Ok(())
    }

    #[inline]
    fn recv(ends: &IoxEnds, len: usize, w: &Watch) -> Result<u64, String> {
        let mut tries: u32 = 0;
        loop {
            if let Some(s) = ends
                .subscriber
                .receive()
                .map_err(|x| format!("iceoryx2 receive: {x:?}"))?
            {
                return read_msg(s.payload(), len)
                    .ok_or_else(|| format!("a garbled message of {} bytes", s.payload().len()));
            }
            match &ends.listener {
                Some(l) => {
                    let got = l
                        .timed_wait_one(Duration::from_millis(50))
                        .map_err(|x| format!("iceoryx2 wait: {x:?}"))?;
                    if got.is_none() {
                        w.check("an iceoryx2 sample")?;
                    }
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
    }
}

impl PingPong for IoxPingPong {
    fn peer_setup(&mut self) -> Result<(), String> {
        self.attach(false)
    }

    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        let ends = self.ends.as_ref().ok_or("not attached")?;
        Self::connect(ends)?;
        for _ in 0..rounds {
            let v = Self::recv(ends, self.len, w)?;
            Self::send(ends, self.len, v + 1)?;
        }
        Ok(())
    }

    fn peer_teardown(&mut self) {
        self.ends = None;
    }

    fn after_fork(&mut self) -> Result<(), String> {
        self.attach(true)
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        let ends = self.ends.as_ref().ok_or("not attached")?;
        if i == 0 {
            // The first, untimed round of a block.
            Self::connect(ends)?;
        }
        Self::send(ends, self.len, i)?;
        let got = Self::recv(ends, self.len, w)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

impl Drop for IoxPingPong {
    fn drop(&mut self) {
        // In the harness: after the peer has gone (the side stopped it).
        self.ends = None;
        self.files.remove();
    }
}

/// `ipc-channel` ping-pong: typed channels (serde, bincode over Unix
/// sockets), a `u64` each way.
pub struct IpcChannelPingPong {
    to_peer: (
        ipc_channel::ipc::IpcSender<u64>,
        ipc_channel::ipc::IpcReceiver<u64>,
    ),
    from_peer: (
        ipc_channel::ipc::IpcSender<u64>,
        ipc_channel::ipc::IpcReceiver<u64>,
    ),
}

impl IpcChannelPingPong {
    /// Two channels, made before the fork so both processes hold the ends.
    ///
    /// # Errors
    /// The sockets could not be made.
    pub fn new() -> Result<IpcChannelPingPong, String> {
        let ch = || ipc_channel::ipc::channel::<u64>().map_err(|e| format!("ipc-channel: {e}"));
        Ok(IpcChannelPingPong {
            to_peer: ch()?,
            from_peer: ch()?,
        })
    }

    fn recv(rx: &ipc_channel::ipc::IpcReceiver<u64>, w: &Watch) -> Result<u64, String> {
        loop {
            match rx.try_recv_timeout(Duration::from_millis(50)) {
                Ok(v) => return Ok(v),
                Err(ipc_channel::ipc::TryRecvError::Empty) => w.check("an ipc-channel message")?,
                Err(e) => return Err(format!("ipc-channel recv: {e:?}")),
            }
        }
    }
}

impl PingPong for IpcChannelPingPong {
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        for _ in 0..rounds {
            let v = Self::recv(&self.to_peer.1, w)?;
            self.from_peer
                .0
                .send(v + 1)
                .map_err(|e| format!("ipc-channel send: {e}"))?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        self.to_peer
            .0
            .send(i)
            .map_err(|e| format!("ipc-channel send: {e}"))?;
        let got = Self::recv(&self.from_peer.1, w)?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

/// `ipc-channel` echo of any serde value: the harness sends value `i`, the
/// peer sends it back, the harness checks it.
pub struct IpcChannelEcho<T: serde::Serialize + for<'de> serde::Deserialize<'de>> {
    to_peer: (
        ipc_channel::ipc::IpcSender<T>,
        ipc_channel::ipc::IpcReceiver<T>,
    ),
    from_peer: (
        ipc_channel::ipc::IpcSender<T>,
        ipc_channel::ipc::IpcReceiver<T>,
    ),
    make: fn(u64) -> T,
}

impl<T> IpcChannelEcho<T>
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + Clone + PartialEq,
{
    /// Two channels, made before the fork so both processes hold the ends.
    ///
    /// # Errors
    /// The sockets could not be made.
    pub fn new(make: fn(u64) -> T) -> Result<IpcChannelEcho<T>, String> {
        let ch = || ipc_channel::ipc::channel::<T>().map_err(|e| format!("ipc-channel: {e}"));
        Ok(IpcChannelEcho {
            to_peer: ch()?,
            from_peer: ch()?,
            make,
        })
    }

    fn recv(rx: &ipc_channel::ipc::IpcReceiver<T>, w: &Watch) -> Result<T, String> {
        loop {
            match rx.try_recv_timeout(Duration::from_millis(50)) {
                Ok(v) => return Ok(v),
                Err(ipc_channel::ipc::TryRecvError::Empty) => w.check("an ipc-channel message")?,
                Err(e) => return Err(format!("ipc-channel recv: {e:?}")),
            }
        }
    }
}

impl<T> PingPong for IpcChannelEcho<T>
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + Clone + PartialEq,
{
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        for _ in 0..rounds {
            let v = Self::recv(&self.to_peer.1, w)?;
            self.from_peer
                .0
                .send(v)
                .map_err(|e| format!("ipc-channel send: {e}"))?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        let v = (self.make)(i);
        self.to_peer
            .0
            .send(v.clone())
            .map_err(|e| format!("ipc-channel send: {e}"))?;
        if Self::recv(&self.from_peer.1, w)? != v {
            return Err(format!("round {i}: another value came back"));
        }
        Ok(())
    }
}

/// `shared_memory` + `raw_sync` ping-pong: two auto-reset events in one
/// segment (one per direction) and the message slot after them.
pub struct RawSyncEventPingPong {
    to_peer: Box<dyn raw_sync::events::EventImpl>,
    from_peer: Box<dyn raw_sync::events::EventImpl>,
    /// Offset of the 8-byte message slot in the segment.
    msg: usize,
    shmem: shared_memory::Shmem,
}

impl RawSyncEventPingPong {
    /// A segment of the `shared_memory` crate (a named POSIX object it
    /// removes when the harness drops it) holding two events.
    ///
    /// # Errors
    /// The crates failed to make the segment or the events.
    pub fn new() -> Result<RawSyncEventPingPong, String> {
        use raw_sync::events::{Event, EventInit};
        let shmem = shared_memory::ShmemConf::new()
            .size(4096)
            .create()
            .map_err(|e| format!("shared_memory segment: {e}"))?;
        let base = shmem.as_ptr();
        // SAFETY: a fresh 4096-byte mapping; each event takes the bytes it
        // reports (checked below to fit in 1024), the second starts 1024 in.
        let (to_peer, used_a) =
            unsafe { Event::new(base, true) }.map_err(|e| format!("raw_sync event: {e}"))?;
        // SAFETY: as above, 1024 bytes further, inside the mapping.
        let (from_peer, used_b) = unsafe { Event::new(base.add(1024), true) }
            .map_err(|e| format!("raw_sync event: {e}"))?;
        if used_a.max(used_b) > 1024 {
            return Err("a raw_sync event needs more than 1024 bytes".into());
        }
        Ok(RawSyncEventPingPong {
            to_peer,
            from_peer,
            msg: 2048,
            shmem,
        })
    }

    fn slot(&self) -> &AtomicU64 {
        // SAFETY: offset 2048 of a 4096-byte, page-aligned mapping: in
        // bounds and 8-aligned; both processes access it only atomically.
        unsafe { &*self.shmem.as_ptr().add(self.msg).cast::<AtomicU64>() }
    }

    fn wait(ev: &dyn raw_sync::events::EventImpl, w: &Watch) -> Result<(), String> {
        loop {
            if ev
                .wait(raw_sync::Timeout::Val(Duration::from_millis(50)))
                .is_ok()
            {
                return Ok(());
            }
            w.check("a raw_sync event")?;
        }
    }

    fn set(ev: &dyn raw_sync::events::EventImpl) -> Result<(), String> {
        ev.set(raw_sync::events::EventState::Signaled)
            .map_err(|e| format!("raw_sync set: {e}"))
    }
}

impl PingPong for RawSyncEventPingPong {
    fn serve(&mut self, rounds: u64, w: &Watch) -> Result<(), String> {
        for _ in 0..rounds {
            Self::wait(&*self.to_peer, w)?;
            let v = self.slot().load(Ordering::Acquire);
            self.slot().store(v + 1, Ordering::Release);
            Self::set(&*self.from_peer)?;
        }
        Ok(())
    }

    #[inline]
    fn round_trip(&mut self, i: u64, w: &Watch) -> Result<(), String> {
        self.slot().store(i, Ordering::Release);
        Self::set(&*self.to_peer)?;
        Self::wait(&*self.from_peer, w)?;
        let got = self.slot().load(Ordering::Acquire);
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    }
}

/// crossbeam `ArrayQueue` round trips between two threads: one queue each
/// way, both sides spinning on `pop`.
fn crossbeam_rtt(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    use crossbeam_queue::ArrayQueue;
    let to_peer = Arc::new(ArrayQueue::<u64>::new(64));
    let from_peer = Arc::new(ArrayQueue::<u64>::new(64));
    let (tp, fp) = (to_peer.clone(), from_peer.clone());
    let serve = Box::new(move |n: u64, w: &Watch| -> Result<(), String> {
        for _ in 0..n {
            let v = spin_on(w, "the harness", || tp.pop().ok_or(()))?;
            spin_on(w, "room", || fp.push(v + 1))?;
        }
        Ok(())
    });
    let harness = move |i: u64, w: &Watch| -> Result<(), String> {
        spin_on(w, "room", || to_peer.push(i))?;
        let got = spin_on(w, "the peer", || from_peer.pop().ok_or(()))?;
        if got != i + 1 {
            return Err(format!("round {i}: answer {got}"));
        }
        Ok(())
    };
    let (warm, n) = ctx.block(Pace::Spin);
    Ok(ThreadSide::boxed(
        serve,
        harness,
        ThreadShape::RoundTrips { warm, n },
    ))
}

/// crossbeam `ArrayQueue` stream of `u64`s between two threads, spinning.
fn crossbeam_queue_stream(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    use crossbeam_queue::ArrayQueue;
    let q = Arc::new(ArrayQueue::<u64>::new(4096));
    let qc = q.clone();
    let serve = Box::new(move |n: u64, w: &Watch| -> Result<(), String> {
        for want in 0..n {
            let v = spin_on(w, "the producer", || qc.pop().ok_or(()))?;
            if v != want {
                return Err(format!("got {v}, expected {want}"));
            }
        }
        Ok(())
    });
    let produce = move |n: u64, w: &Watch| -> Result<(), String> {
        for i in 0..n {
            spin_on(w, "the consumer", || q.push(i))?;
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

/// crossbeam bounded channel stream of `u64`s between two threads, with
/// the blocking `send` and `recv` (spinning a little, then parking).
fn crossbeam_channel_stream(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(4096);
    let serve = Box::new(move |n: u64, w: &Watch| -> Result<(), String> {
        for want in 0..n {
            let v = loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(v) => break v,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => w.check("the producer")?,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            };
            if v != want {
                return Err(format!("got {v}, expected {want}"));
            }
        }
        Ok(())
    });
    let produce = move |n: u64, _w: &Watch| -> Result<(), String> {
        for i in 0..n {
            tx.send(i).map_err(|e| format!("send: {e}"))?;
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

/// The peers' entries of the suite.
pub fn entries() -> Vec<Entry> {
    use Pace::{Kernel, Spin, Stream};
    use Unit::{MsgPerSec, Ns};
    use Wait::{Adaptive as Ad, Kernel as K, Spin as S};
    vec![
        base("baseline.iceoryx2.rtt", Ns, S, Spin, |c| {
            Ok(PingPongSide::boxed(
                IoxPingPong::new(8, false)?,
                c.block(Spin),
            ))
        }),
        base("baseline.iceoryx2.rtt.event", Ns, K, Kernel, |c| {
            Ok(PingPongSide::boxed(
                IoxPingPong::new(8, true)?,
                c.block(Kernel),
            ))
        }),
        base("baseline.ipc_channel.rtt", Ns, K, Kernel, |c| {
            Ok(PingPongSide::boxed(
                IpcChannelPingPong::new()?,
                c.block(Kernel),
            ))
        }),
        base("baseline.ipc_channel.rtt.string64", Ns, K, Kernel, |c| {
            Ok(PingPongSide::boxed(
                IpcChannelEcho::new(crate::queue_benches::string64)?,
                c.block(Kernel),
            ))
        }),
        base("baseline.ipc_channel.rtt.words4", Ns, K, Kernel, |c| {
            Ok(PingPongSide::boxed(
                IpcChannelEcho::new(crate::queue_benches::words4)?,
                c.block(Kernel),
            ))
        }),
        base("baseline.raw_sync.event.rtt", Ns, K, Kernel, |c| {
            Ok(PingPongSide::boxed(
                RawSyncEventPingPong::new()?,
                c.block(Kernel),
            ))
        }),
        base(
            "baseline.crossbeam.array_queue.rtt",
            Ns,
            S,
            Spin,
            crossbeam_rtt,
        ),
        base(
            "baseline.crossbeam.array_queue.throughput",
            MsgPerSec,
            S,
            Stream,
            crossbeam_queue_stream,
        ),
        base(
            "baseline.crossbeam.channel.throughput",
            MsgPerSec,
            Ad,
            Stream,
            crossbeam_channel_stream,
        ),
    ]
}
