//! `Queue<T>` and `JoinableQueue<T>`: Python's `multiprocessing.Queue` and
//! `JoinableQueue` over the [MPMC ring](crate::mpmc).
//!
//! Every process that holds the queue may put and get. Items are any
//! [`Message`]: numbers and [`Pod`](multiproc_core::message::Pod) values are
//! copied into a slot as they are, with no encoding; `String`, `Vec<String>`,
//! tuples and every `serde` type are encoded (postcard) straight into a
//! slot. Each slot holds one message of up to [`Queue::max_message_bytes`]
//! bytes (fixed-size types: exactly their size; others:
//! [`DEFAULT_MAX_BYTES`] unless [`QueueBuilder::max_bytes`] says otherwise);
//! a longer one is refused with `TooLarge`, naming its size and the limit,
//! never truncated. Byte strings travel too ([`Queue::put_bytes`],
//! [`Queue::get_bytes`]).
//!
//! The item type is checked per message, not when a queue is opened: a
//! message that does not decode as `T` (another process put another type)
//! is consumed and reported as `Decode`, never undefined behaviour.
//!
//! | Python | here |
//! |---|---|
//! | `Queue(maxsize)` | [`Queue::new`]`(maxsize)` (anonymous), [`Queue::builder`] (named, options), or any of the six constructors of a placed object ([`Queue::create`], [`Queue::open`], [`Queue::anonymous`], [`Queue::from_fd`], [`Queue::init_at`], [`Queue::at`]) |
//! | `put(item)` / `put(item, timeout=t)` / `put_nowait(item)` | [`Queue::put`] / [`Queue::put_timeout`] / [`Queue::put_nowait`] |
//! | `get()` / `get(timeout=t)` / `get_nowait()` | [`Queue::get`] / [`Queue::get_timeout`] / [`Queue::get_nowait`] |
//! | `qsize()`, `empty()`, `full()` | same names; approximate while others put or get |
//! | `close()` | [`Queue::close`]: for every process, not just this one |
//! | `JoinableQueue.task_done()`, `join()` | [`JoinableQueue::task_done`], [`JoinableQueue::join`] |
//! | `SimpleQueue()`: `put`, `get`, `empty`, `close` | [`SimpleQueue::new`] and the same names |
//! | `Process(target=f, args=(q,))` | a queue is an argument like any other (`serde` feature): named queues travel by name, anonymous ones by descriptor |
//!
//! Differences from Python: `maxsize` is rounded up to a power of two (and
//! there is no unbounded queue); `close` closes the queue for everybody
//! (puts fail with `Closed`, gets drain then fail with `Closed`) instead of
//! only this process's feeder thread; a process that dies mid-put or mid-get
//! does not wedge the queue: the item is counted in [`Queue::lost`] (and, in a
//! joinable queue, no longer awaited by `join`).
//!
//! ```
//! use multiproc_queue::queue::Queue;
//! let q = Queue::<Vec<String>>::new(8)?;
//! q.put(vec!["hello".to_string(), "world".to_string()])?;
//! assert_eq!(q.get()?, ["hello", "world"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use multiproc_queue::queue::JoinableQueue;
//! use std::time::Duration;
//! let q = JoinableQueue::<u64>::new(16)?;
//! let worker = {
//!     let q = q.clone();
//!     std::thread::spawn(move || {
//!         let mut sum = 0;
//!         while let Ok(v) = q.get_timeout(Duration::from_millis(200)) {
//!             sum += v;
//!             q.task_done().unwrap();
//!         }
//!         sum
//!     })
//! };
//! for v in 1..=10u64 {
//!     q.put(v)?;
//! }
//! q.join(); // every item has been marked done
//! assert_eq!(worker.join().unwrap(), 55);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Waiting follows the endpoint's [`WaitStrategy`]: spin, then yield, then
//! sleep on an [`EventCount`](multiproc_core::wait::EventCount) for not-empty,
//! not-full or all-done; a put or get that finds what it needs makes no
//! system call, and a futex wake is issued only when someone is parked.

use crate::error::{
    received, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::mpmc::{
    self, recv_decoded, recv_message, send_bytes_as, send_encoded, Mpmc, RawMpmc, Wait,
};
use crate::raw::mpmc::{MpmcControl, DATA_ALIGN, SLOT_HEADER};
use crate::raw::PtrMem;
use multiproc_core::header::layout_hash;
use multiproc_core::liveness::OsJudge;
use multiproc_core::message::Message;
use multiproc_core::object::{Handle, ObjectError, PlaceBuilder, Placed, ShmObject};
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Kind;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

mod simple;
pub use simple::SimpleQueue;

/// How often a waiting [`JoinableQueue::join`] looks for items held by dead
/// processes.
pub const JOIN_SWEEP: Duration = Duration::from_millis(50);

/// The room of each slot of a queue of a variable-size type (`String`,
/// `Vec<T>`, structs) when [`QueueBuilder::max_bytes`] does not say: 1 KiB
/// per message.
pub const DEFAULT_MAX_BYTES: usize = 1024;

/// The most items a [`SimpleQueue`] holds (a put waits while it is full).
pub const SIMPLE_QUEUE_MAXSIZE: usize = 1024;

/// `task_done` was called more times than items were put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task_done() called more times than there were items put")]
pub struct TaskDoneError;

/// What a new queue is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The most items the queue holds (rounded up to a power of two; 1 to
    /// 2^30). Unlike Python's `Queue(0)`, 0 does not mean unbounded: every
    /// queue here is bounded, and 0 is refused.
    pub maxsize: usize,
    /// The longest message in bytes, encoded. Every slot has room for one
    /// message of this size. 0 means [`DEFAULT_MAX_BYTES`] here;
    /// [`Queue::new`] and [`Queue::builder`] instead make it the size of a
    /// fixed-size `T` (a number, a [`Pod`](multiproc_core::message::Pod)), and
    /// never less than that size.
    pub max_bytes: usize,
}

impl Config {
    /// A queue of up to `maxsize` items of the default size.
    pub const fn new(maxsize: usize) -> Config {
        Config {
            maxsize,
            max_bytes: 0,
        }
    }

    /// The ring of a queue of `T`, checked.
    fn ring(&self, joinable: bool) -> Result<mpmc::Config, ObjectError> {
        if self.maxsize == 0 {
            return Err(ObjectError::InvalidConfig {
                what: "queue",
                reason: "maxsize 0 would be an unbounded queue, which is not supported: \
                         give a bound from 1 to 2^30 items"
                    .into(),
            });
        }
        let slot = match self.max_bytes {
            0 => DEFAULT_MAX_BYTES,
            n => n,
        };
        Ok(mpmc::Config::new(self.maxsize, slot).joinable(joinable))
    }

    /// The configuration of a queue of `T`: `max_bytes` filled in.
    fn of<T: Message>(mut self) -> Config {
        let fixed = T::fixed_size();
        self.max_bytes = match (self.max_bytes, fixed) {
            (0, Some(n)) => n,
            (0, None) => DEFAULT_MAX_BYTES,
            (m, n) => m.max(n.unwrap_or(0)),
        };
        self
    }
}

/// The kind of a queue's segment. The item type is not part of it: every
/// message is checked when it is decoded.
pub const KIND: Kind = Kind::new(
    "ipc-queue/queue",
    2,
    layout_hash(&[SLOT_HEADER as u64, DATA_ALIGN as u64]),
);

/// The ring under a [`Queue`] (its placed object): an MPMC ring.
#[repr(transparent)]
#[derive(Debug)]
pub struct QueueRing {
    ctrl: MpmcControl,
}

/// The ring under a [`JoinableQueue`] (its placed object): a queue ring
/// that counts unfinished tasks. A joinable queue also opens as a plain
/// [`Queue`]; a plain one does not open as joinable.
#[repr(transparent)]
#[derive(Debug)]
pub struct JoinableRing {
    ctrl: MpmcControl,
}

const QUEUE: &str = "queue";
const JOINABLE: &str = "joinable queue";

/// Checks the queue ring in `mem`: joinable if `joinable`.
fn check_ring(what: &'static str, mem: PtrMem, joinable: bool) -> Result<(), ObjectError> {
    if mpmc::check(what, mem)?.is_joinable() || !joinable {
        return Ok(());
    }
    Err(ObjectError::WrongObject {
        expected: what,
        detail: "the queue is not joinable".into(),
    })
}

/// The placement of both queue rings, which differ in name and in the
/// joinable flag only.
macro_rules! queue_rings {
    ($($ring:ident: $what:expr, joinable: $joinable:literal;)*) => {$(
        crate::placed::ring_object! {
            impl[] $ring,
            kind: KIND,
            config: Config,
            size: |cfg| mpmc::memory_size($what, &cfg.ring($joinable)?),
            init: |mem, cfg| {
                if let Ok(ring) = cfg.ring($joinable) {
                    let _ = RawMpmc::init(mem, &ring);
                }
            },
            check: |mem| check_ring($what, mem, $joinable),
        }
    )*};
}

queue_rings! {
    QueueRing: QUEUE, joinable: false;
    JoinableRing: JOINABLE, joinable: true;
}

/// Options for a [`Queue`] or [`JoinableQueue`]. From [`Queue::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct QueueBuilder<T> {
    name: Option<String>,
    cfg: Config,
    strategy: WaitStrategy,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Message> QueueBuilder<T> {
    /// Names the queue so unrelated processes can open it
    /// ([`Queue::open`]); without a name it is anonymous.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The most items the queue holds (see [`Config::maxsize`]; default 64).
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.cfg.maxsize = maxsize;
        self
    }

    /// The longest message in bytes, encoded (see [`Config::max_bytes`];
    /// default: the size of a fixed-size `T`, else [`DEFAULT_MAX_BYTES`]).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.cfg.max_bytes = max_bytes;
        self
    }

    /// The wait strategy of the handle created (default adaptive).
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    fn placer<O: ShmObject>(&self) -> PlaceBuilder<O> {
        match &self.name {
            Some(n) => Placed::builder().name(n.clone()),
            None => Placed::builder(),
        }
    }

    /// Creates the queue.
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`] for a `maxsize` of 0 or above 2^30
    /// (before anything is allocated), [`ObjectError::Segment`] (e.g. the
    /// name is taken, or
    /// [`SegmentError::InsufficientMemory`](multiproc_core::SegmentError::InsufficientMemory):
    /// more than the machine or the memory cgroup can still give).
    pub fn create(self) -> Result<Queue<T>, ObjectError> {
        let q = Queue::from_placed(self.placer::<QueueRing>().create(self.cfg.of::<T>())?);
        Ok(q.with_wait_strategy(self.strategy))
    }

    /// Creates a joinable queue.
    ///
    /// # Errors
    /// As [`QueueBuilder::create`].
    pub fn create_joinable(self) -> Result<JoinableQueue<T>, ObjectError> {
        let placed = self.placer::<JoinableRing>().create(self.cfg.of::<T>())?;
        let q = JoinableQueue::from_placed(placed);
        Ok(q.with_wait_strategy(self.strategy))
    }
}

/// A multi-producer multi-consumer queue of `T` between processes, shaped
/// like Python's `multiprocessing.Queue`. See the [module docs](self).
///
/// Clones share the queue (one mapping); each has its own wait strategy.
///
/// With the `serde` feature a queue is itself a value a child can be given
/// in its arguments ([`multiproc_core::process::Process::start`]): a named queue
/// travels by name, an anonymous one by its descriptor. The child's handle
/// waits with the default strategy.
///
/// ```
/// use multiproc_core::Process;
/// use multiproc_queue::Queue;
///
/// fn greet((q, who): (Queue<String>, String)) {
///     q.put(format!("hello from {who}")).expect("the queue is open");
/// }
///
/// multiproc_core::process::init(); // first thing in main: spawned children start here
/// let q = Queue::<String>::new(4)?;
/// let child = Process::start(greet, (q.clone(), "a child".to_string()))?;
/// assert_eq!(q.get()?, "hello from a child");
/// child.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Queue<T> {
    ring: Mpmc,
    placed: Either,
    strategy: WaitStrategy,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            placed: self.placed.clone(),
            strategy: self.strategy,
            _t: PhantomData,
        }
    }
}

impl<T: Message> Handle for Queue<T> {
    type Object = QueueRing;

    fn from_placed(placed: Placed<QueueRing>) -> Queue<T> {
        Queue::wrap(Mpmc::from_layout(&placed), Either::Plain(placed))
    }
}

/// The placed ring of a queue handle: a plain or a joinable queue ring
/// (kept for sending the handle to a child).
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
enum Either {
    Plain(Placed<QueueRing>),
    Joinable(Placed<JoinableRing>),
}

#[cfg(feature = "serde")]
impl<T> serde::Serialize for Queue<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.placed {
            Either::Plain(p) => p.serialize(s),
            Either::Joinable(p) => p.serialize(s),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de, T: Message> serde::Deserialize<'de> for Queue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Queue::from_placed(Placed::<QueueRing>::deserialize(d)?))
    }
}

multiproc_core::handle_constructors!(impl[T: Message] Queue<T>, "queue");
mpmc::wait_strategy_accessors!(Queue<T>);

impl<T: Message> Queue<T> {
    /// An anonymous queue holding up to `maxsize` items (rounded up to a
    /// power of two), for this process and its children: Python's
    /// `Queue(maxsize)`.
    ///
    /// # Errors
    /// As [`QueueBuilder::create`]; [`ObjectError::InvalidConfig`] for a
    /// `maxsize` of 0 (an unbounded queue, which is not supported) or above
    /// 2^30.
    pub fn new(maxsize: usize) -> Result<Queue<T>, ObjectError> {
        Queue::anonymous(Config::new(maxsize).of::<T>())
    }

    /// Options: name, maxsize, room for byte strings, wait strategy.
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder {
            name: None,
            cfg: Config::new(64),
            strategy: WaitStrategy::default(),
            _t: PhantomData,
        }
    }

    fn wrap(ring: Mpmc, placed: Either) -> Queue<T> {
        Queue {
            ring,
            placed,
            strategy: WaitStrategy::default(),
            _t: PhantomData,
        }
    }

    /// The queue's segment descriptor, for a child ([`Queue::from_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ring.fd()
    }

    /// The queue's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.ring.name()
    }

    /// The ring under the queue.
    pub fn ring(&self) -> &Mpmc {
        &self.ring
    }

    fn raw(&self) -> &RawMpmc {
        self.ring.raw()
    }

    /// Puts `item`, waiting for room.
    ///
    /// # Errors
    /// `Closed` (the queue was closed), `TooLarge` (its encoding is longer
    /// than [`Queue::max_message_bytes`]), `Encode` (the serializer refused
    /// it), `Corrupt`; the item is handed back.
    #[inline]
    pub fn put(&self, item: T) -> Result<(), SendError<T>> {
        self.put_with(item, Wait::FOREVER)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// `Timeout`, and as [`Queue::put`]; the item is handed back.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.put_with(item, Wait::at_most(timeout))
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    /// `Full`, and as [`Queue::put`]; the item is handed back.
    #[inline]
    pub fn put_nowait(&self, item: T) -> Result<(), TrySendError<T>> {
        self.put_with(item, Wait::No)
    }

    /// Encodes `item` straight into a slot claimed waiting as `wait` says.
    #[inline(always)]
    fn put_with<E: From<SendTimeoutError<T>>>(&self, item: T, wait: Wait) -> Result<(), E> {
        send_encoded::<T, SendTimeoutError<()>>(self.raw(), self.strategy, wait, &item)
            .map_err(|e| E::from(e.map(|()| item)))
    }

    /// Takes an item, waiting for one.
    ///
    /// # Errors
    /// `Closed` (closed and drained), `Decode` (the next message is not a
    /// `T`; it is consumed), `Corrupt`.
    #[inline]
    pub fn get(&self) -> Result<T, RecvError> {
        self.get_with(Wait::FOREVER)
    }

    /// Takes an item, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `Decode`, `Corrupt`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.get_with(Wait::at_most(timeout))
    }

    /// Takes an item if one is ready.
    ///
    /// # Errors
    /// `Empty`, `Closed`, `Decode`, `Corrupt`.
    #[inline]
    pub fn get_nowait(&self) -> Result<T, TryRecvError> {
        self.get_with(Wait::No)
    }

    /// Takes items as they come, waiting for each, until the queue is
    /// closed and drained; an item that cannot be taken (one that does not
    /// decode, a corrupt ring) comes as its error, and the iteration goes
    /// on.
    ///
    /// ```
    /// let q = multiproc_queue::Queue::<String>::new(4)?;
    /// q.put("a".into())?;
    /// q.put("b".into())?;
    /// q.close();
    /// let items: Vec<String> = q.iter().collect::<Result<_, _>>()?;
    /// assert_eq!(items, ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Result<T, RecvError>> + '_ {
        received(|| self.get())
    }

    /// Takes the items that are ready now, without waiting: ends when the
    /// queue is empty (or closed and drained).
    pub fn try_iter(&self) -> impl Iterator<Item = Result<T, TryRecvError>> + '_ {
        received(|| self.get_nowait())
    }

    /// Decodes the next message in its slot, claimed waiting as `wait` says.
    #[inline(always)]
    fn get_with<E: From<RecvTimeoutError>>(&self, wait: Wait) -> Result<T, E> {
        recv_decoded(self.raw(), self.strategy, wait)
    }

    /// Puts a byte string of at most [`Queue::max_message_bytes`] bytes,
    /// waiting for room.
    ///
    /// # Errors
    /// `Closed`, `TooLarge`, `Corrupt`.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(), SendError<()>> {
        self.put_bytes_with(bytes, Wait::FOREVER)
    }

    /// [`Queue::put_bytes`], waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `TooLarge`, `Corrupt`.
    pub fn put_bytes_timeout(
        &self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        self.put_bytes_with(bytes, Wait::at_most(timeout))
    }

    /// [`Queue::put_bytes`] if there is room now.
    ///
    /// # Errors
    /// `Full`, `Closed`, `TooLarge`, `Corrupt`.
    pub fn put_bytes_nowait(&self, bytes: &[u8]) -> Result<(), TrySendError<()>> {
        self.put_bytes_with(bytes, Wait::No)
    }

    fn put_bytes_with<E: From<SendTimeoutError<()>>>(
        &self,
        bytes: &[u8],
        wait: Wait,
    ) -> Result<(), E> {
        send_bytes_as(self.raw(), self.strategy, wait, bytes)
    }

    /// The longest message a slot holds, in bytes (encoded).
    ///
    /// ```
    /// use multiproc_queue::queue::{Queue, DEFAULT_MAX_BYTES};
    /// assert_eq!(Queue::<u32>::new(2)?.max_message_bytes(), 4);
    /// assert_eq!(Queue::<String>::new(2)?.max_message_bytes(), DEFAULT_MAX_BYTES);
    /// let q = Queue::<String>::builder().max_bytes(16).create()?;
    /// assert!(q.put_nowait("x".repeat(100)).unwrap_err().to_string().contains("larger"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_message_bytes(&self) -> usize {
        self.ring.raw().slot_size()
    }

    /// Takes the next message as bytes (an item put with [`Queue::put`]
    /// comes out as its encoding), waiting for one.
    ///
    /// # Errors
    /// `Closed`, `Corrupt`.
    pub fn get_bytes(&self) -> Result<Vec<u8>, RecvError> {
        let m = recv_message::<RecvError>(self.raw(), self.strategy, Wait::FOREVER)?;
        Ok(m.bytes().to_vec())
    }

    /// [`Queue::get_bytes`], waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, `Closed`, `Corrupt`.
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        let wait = Wait::at_most(timeout);
        let m = recv_message::<RecvTimeoutError>(self.raw(), self.strategy, wait)?;
        Ok(m.bytes().to_vec())
    }

    /// [`Queue::get_bytes`] if a message is ready.
    ///
    /// # Errors
    /// `Empty`, `Closed`, `Corrupt`.
    pub fn get_bytes_nowait(&self) -> Result<Vec<u8>, TryRecvError> {
        let m = recv_message::<TryRecvError>(self.raw(), self.strategy, Wait::No)?;
        Ok(m.bytes().to_vec())
    }

    /// The number of items in the queue: approximate, since other processes
    /// put and get concurrently (as in Python); it counts items being put or
    /// taken at this moment.
    pub fn qsize(&self) -> usize {
        self.ring.len()
    }

    /// Whether the queue looked empty (it may stop being empty at any moment).
    pub fn empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Whether the queue looked full (it may stop being full at any moment).
    pub fn full(&self) -> bool {
        self.ring.is_full()
    }

    /// The most items the queue holds (`maxsize` rounded up to a power of
    /// two).
    pub fn maxsize(&self) -> usize {
        self.ring.capacity()
    }

    /// Closes the queue for every process: puts fail with `Closed`, gets
    /// drain what was put before and then fail with `Closed`.
    pub fn close(&self) {
        self.ring.close();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// Items lost to processes that died mid-put or mid-get. See
    /// [`Mpmc::lost`].
    pub fn lost(&self) -> u64 {
        self.ring.lost()
    }
}

/// A [`Queue`] that counts unfinished items, as Python's `JoinableQueue`:
/// every put adds one, [`JoinableQueue::task_done`] removes one, and
/// [`JoinableQueue::join`] waits until the count is zero. It dereferences to
/// the [`Queue`] for `put`, `get` and the rest (a put through it counts).
///
/// An item lost to a process that died mid-put or mid-get is uncounted when
/// it is recovered, so `join` does not wait for it. An item a consumer took
/// and then died without marking done is still counted (its work was not
/// done), and so is one whose producer died in the few instructions between
/// counting it and claiming its slot: use [`JoinableQueue::join_timeout`]
/// where processes may die.
#[derive(Debug)]
pub struct JoinableQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue { q: self.q.clone() }
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.q
    }
}

impl<T: Message> Handle for JoinableQueue<T> {
    type Object = JoinableRing;

    fn from_placed(placed: Placed<JoinableRing>) -> JoinableQueue<T> {
        JoinableQueue {
            q: Queue::wrap(Mpmc::from_layout(&placed), Either::Joinable(placed)),
        }
    }
}

#[cfg(feature = "serde")]
impl<T> serde::Serialize for JoinableQueue<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

#[cfg(feature = "serde")]
impl<'de, T: Message> serde::Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(JoinableQueue::from_placed(
            Placed::<JoinableRing>::deserialize(d)?,
        ))
    }
}

multiproc_core::handle_constructors!(impl[T: Message] JoinableQueue<T>, "joinable queue");

impl<T: Message> JoinableQueue<T> {
    /// An anonymous joinable queue of up to `maxsize` items (rounded up to a
    /// power of two): Python's `JoinableQueue(maxsize)`.
    ///
    /// # Errors
    /// As [`QueueBuilder::create`].
    pub fn new(maxsize: usize) -> Result<JoinableQueue<T>, ObjectError> {
        JoinableQueue::anonymous(Config::new(maxsize).of::<T>())
    }

    /// The same queue with another wait strategy for this handle.
    pub fn with_wait_strategy(self, strategy: WaitStrategy) -> JoinableQueue<T> {
        JoinableQueue {
            q: self.q.with_wait_strategy(strategy),
        }
    }

    /// The plain queue handle (puts through it still count).
    pub fn queue(&self) -> &Queue<T> {
        &self.q
    }

    /// Marks one item taken from the queue as done.
    ///
    /// # Errors
    /// [`TaskDoneError`] if every item put has already been marked done
    /// (nothing changes).
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        if self.q.raw().unfinished_dec() {
            Ok(())
        } else {
            Err(TaskDoneError)
        }
    }

    /// Items put and not yet marked done (by any process).
    pub fn unfinished(&self) -> u64 {
        self.q.raw().unfinished()
    }

    /// Waits until every item put has been marked done.
    ///
    /// While it waits it also looks, every [`JOIN_SWEEP`], for items that
    /// processes died holding ([`Mpmc::sweep`]), so that such an item is
    /// uncounted even if nobody puts again.
    pub fn join(&self) {
        self.join_until(None);
    }

    /// Waits at most `timeout` until every item put has been marked done;
    /// returns whether they all were. Sweeps as [`JoinableQueue::join`].
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        match Wait::at_most(timeout) {
            Wait::Until(deadline) => self.join_until(deadline),
            Wait::No => self.q.raw().unfinished() == 0,
        }
    }

    fn join_until(&self, deadline: Option<Instant>) -> bool {
        let raw = self.q.raw();
        let mut next_sweep = Instant::now() + JOIN_SWEEP;
        raw.all_done()
            .wait(self.q.strategy, deadline, Some(JOIN_SWEEP), || {
                if raw.unfinished() == 0 {
                    return Some(());
                }
                let now = Instant::now();
                if now >= next_sweep {
                    next_sweep = now + JOIN_SWEEP;
                    raw.sweep(&OsJudge);
                }
                None
            })
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use multiproc_core::message::Pod;
    use multiproc_core::Shareable;

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Job {
        id: u64,
        cost: f64,
    }
    // SAFETY: `#[repr(C)]`, two 8-byte numbers, no padding, no pointers,
    // every bit pattern valid.
    unsafe impl Shareable for Job {}

    fn job(id: u64, cost: f64) -> Pod<Job> {
        Pod(Job { id, cost })
    }

    #[test]
    fn python_shaped_calls() {
        let q = Queue::<Pod<Job>>::builder()
            .maxsize(2)
            .max_bytes(32)
            .create()
            .unwrap();
        assert!(q.empty());
        q.put(job(1, 0.5)).unwrap();
        q.put_bytes(b"hello").unwrap();
        assert!(q.full());
        assert_eq!(q.qsize(), 2);
        let back = q.put_nowait(job(3, 1.0)).unwrap_err();
        assert!(back.is_full());
        assert_eq!(back.into_inner().id, 3);
        assert!(matches!(
            q.put_timeout(job(4, 0.0), Duration::from_millis(2)),
            Err(SendTimeoutError::Timeout(Pod(Job { id: 4, .. })))
        ));
        assert_eq!(q.get().unwrap(), job(1, 0.5));
        // A byte string of the wrong length for `Job` is a decode error.
        assert!(matches!(q.get_nowait(), Err(TryRecvError::Decode(_))));
        assert_eq!(q.get_nowait(), Err(TryRecvError::Empty));
        assert_eq!(
            q.get_timeout(Duration::from_millis(2)),
            Err(RecvTimeoutError::Timeout)
        );
        q.put_bytes(b"bytes").unwrap();
        assert_eq!(q.get_bytes().unwrap(), b"bytes");
        q.put(job(9, 2.0)).unwrap();
        q.close();
        assert!(q.put_nowait(job(5, 0.0)).unwrap_err().is_closed());
        assert_eq!(q.get().unwrap().id, 9);
        assert_eq!(q.get(), Err(RecvError::Closed));
    }

    #[test]
    fn strings_and_structs_travel_and_too_large_is_refused() {
        let q = Queue::<Vec<String>>::builder()
            .maxsize(4)
            .max_bytes(64)
            .create()
            .unwrap();
        assert_eq!(q.max_message_bytes(), 64);
        let words = vec!["hello".to_string(), "world".to_string()];
        q.put(words.clone()).unwrap();
        assert_eq!(q.get().unwrap(), words);
        let long = vec!["x".repeat(100)];
        match q.put_nowait(long.clone()) {
            Err(TrySendError::TooLarge(v, m)) => {
                assert_eq!(v, long);
                assert_eq!(m.max, 64);
                assert!(m.len > 100);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Another type's message is a decode error, and is consumed.
        q.put_bytes(&[0xff; 3]).unwrap();
        assert!(matches!(q.get_nowait(), Err(TryRecvError::Decode(_))));
        assert_eq!(q.get_nowait(), Err(TryRecvError::Empty));
        // The default room of a variable-size type.
        let q = Queue::<String>::new(2).unwrap();
        assert_eq!(q.max_message_bytes(), DEFAULT_MAX_BYTES);
        let q = Queue::<u32>::new(2).unwrap();
        assert_eq!(q.max_message_bytes(), 4);
    }

    #[test]
    fn iterators_end_at_closed_or_empty_and_carry_other_errors() {
        let q = Queue::<u32>::new(8).unwrap();
        q.put(1).unwrap();
        q.put_bytes(b"xyz").unwrap(); // not a u32
        q.put(3).unwrap();
        let ready: Vec<_> = q.try_iter().collect();
        assert_eq!(ready.len(), 3);
        assert_eq!(ready[0], Ok(1));
        assert!(matches!(ready[1], Err(TryRecvError::Decode(_))));
        assert_eq!(ready[2], Ok(3));
        assert_eq!(q.try_iter().count(), 0);
        q.put(4).unwrap();
        q.close();
        assert_eq!(q.iter().collect::<Vec<_>>(), [Ok(4)]);
    }

    #[test]
    fn errors_go_through_question_mark() {
        fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let q = Queue::<String>::new(1)?;
            q.put("a".into())?;
            q.put_nowait("b".into())?;
            Ok(())
        }
        assert!(run().unwrap_err().to_string().contains("full"));
    }

    #[test]
    fn task_done_and_join() {
        let q = JoinableQueue::<u32>::new(4).unwrap();
        assert_eq!(q.task_done(), Err(TaskDoneError));
        q.put(1).unwrap();
        q.put(2).unwrap();
        assert_eq!(q.unfinished(), 2);
        assert!(!q.join_timeout(Duration::from_millis(2)));
        assert_eq!(q.get().unwrap(), 1);
        q.task_done().unwrap();
        // A failed put does not count.
        q.put_nowait(3).unwrap();
        q.put_nowait(4).unwrap();
        q.put_nowait(5).unwrap();
        assert!(q.put_nowait(6).is_err());
        assert_eq!(q.unfinished(), 4);
        for _ in 0..4 {
            q.get().unwrap();
            q.task_done().unwrap();
        }
        q.join();
        assert_eq!(q.task_done(), Err(TaskDoneError));
    }
}
