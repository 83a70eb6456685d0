//! `pipe()`: two duplex ends over two SPSC rings, as Python's
//! `multiprocessing.Pipe()`.
//!
//! A [`Pipe`] is one segment holding two [`SpscRing`]s, one per direction.
//! Each [`Connection`] is the producer of one ring and the consumer of the
//! other: [`Connection::send`] / [`Connection::recv`] move any
//! [`Message`] (numbers, `String`, `Vec<String>`, every `serde` type),
//! [`Connection::send_bytes`] / [`Connection::recv_bytes`] byte strings,
//! [`Connection::send_archive`] / [`Connection::recv_archive`] `rkyv`
//! values read in place, and [`Connection::poll`] waits for something to
//! read. Everything inherits the ring's properties: no system call on the
//! fast path, a peer that closes or dies is reported as
//! [`RecvError::Closed`] / [`SendError::Closed`] after the data it sent has
//! been read, and each end may be held by one process at a time.
//!
//! ```
//! let (mut a, mut b) = multiproc_queue::pipe::pipe()?;
//! a.send_bytes(b"ping")?;
//! assert_eq!(b.recv_bytes()?, b"ping");
//! b.send(&42u64)?;
//! assert_eq!(a.recv::<u64>()?, 42);
//! a.send(&vec!["hello".to_string(), "world".to_string()])?;
//! assert_eq!(b.recv::<Vec<String>>()?, ["hello", "world"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Between processes, create the [`Pipe`] first, start the child (it
//! inherits the segment's file descriptor, or opens the pipe by name), and
//! let each process take its end with [`Pipe::end_a`] or [`Pipe::end_b`]. A
//! pipe is one placed object ([`PipeControl`]: two rings back to back) with
//! the six constructors of every placed object ([`Pipe::create`],
//! [`Pipe::open`], [`Pipe::anonymous`], [`Pipe::from_fd`], [`Pipe::init_at`],
//! [`Pipe::at`]), and [`Pipe::builder`] for the options.

use crate::error::{
    wrong_object, AttachError, RecvError, RecvTimeoutError, SendError, TryRecvError,
};
use crate::raw::spsc::{self as spsc_raw, RawRing, SpscControl, DATA, MIN_CAPACITY};
use crate::raw::Memory;
#[cfg(feature = "rkyv")]
use crate::spsc::rkyv::{self as archive, ArchivedGuard, CheckedArchive, SerializeInPlace};
use crate::spsc::{Consumer, Producer, RecvGuard, SpscRing};
#[cfg(feature = "rkyv")]
use multiproc_core::message::DecodeError;
use multiproc_core::message::Message;
use multiproc_core::object::{Handle, ObjectError, Placed};
use multiproc_core::wait::WaitStrategy;
use multiproc_core::{Kind, Segment};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

/// The segment kind of a pipe (two SPSC rings back to back).
pub const KIND: Kind = Kind::new(
    "ipc-queue/pipe",
    2,
    multiproc_core::header::layout_hash(&[
        std::mem::size_of::<SpscControl>() as u64,
        spsc_raw::HEADER_LEN as u64,
        spsc_raw::SLACK as u64,
        2,
    ]),
);

/// The default size of each direction's ring: 64 KiB.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

const WHAT: &str = "pipe";

/// What a new pipe is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Each direction's ring size in bytes, rounded up to a power of two of
    /// 32 bytes to 2 GiB. 0 is refused.
    pub capacity: usize,
}

impl Config {
    /// Each direction `capacity` bytes.
    pub const fn new(capacity: usize) -> Config {
        Config { capacity }
    }

    /// The configuration of each direction's ring, and the offset of the
    /// second one (the first one's size, rounded up to 128 bytes).
    fn rings(&self) -> Result<(spsc_raw::Config, usize), ObjectError> {
        let invalid = |reason: &str| ObjectError::InvalidConfig {
            what: WHAT,
            reason: reason.into(),
        };
        if self.capacity == 0 {
            return Err(invalid(
                "the capacity is zero: each direction of a pipe holds 32 bytes to 2 GiB",
            ));
        }
        let ring = spsc_raw::Config::new(self.capacity);
        let size = spsc_raw::memory_size(&ring).map_err(|e| invalid(e.0))?;
        Ok((ring, size.next_multiple_of(128)))
    }
}

/// Where the second ring of a pipe starts, for a first ring of `capacity`
/// bytes.
fn second_offset(capacity: usize) -> usize {
    (DATA + capacity).next_multiple_of(128)
}

/// The placed object of a [`Pipe`]: two SPSC rings of the same capacity back
/// to back, the second at the first one's size rounded up to 128 bytes.
/// This is the first ring's control block; the rest follows it.
#[repr(transparent)]
#[derive(Debug)]
pub struct PipeControl(SpscControl);

crate::placed::ring_object! {
    impl[] PipeControl,
    kind: KIND,
    config: Config,
    size: |cfg| Ok(2 * cfg.rings()?.1),
    init: |mem, cfg| {
        if let Ok((ring, off)) = cfg.rings() {
            let (a, b) = mem.split(off);
            let _ = RawRing::init(a, &ring).and_then(|_| RawRing::init(b, &ring));
        }
    },
    check: |mem| {
        let wrong = |detail: &str| ObjectError::WrongObject {
            expected: WHAT,
            detail: detail.into(),
        };
        let a = RawRing::attach(mem).map_err(|c| wrong_object(WHAT, c))?;
        let off = second_offset(a.capacity());
        if off >= mem.len() {
            return Err(wrong("the second ring lies beyond the memory"));
        }
        let b = RawRing::attach(mem.split(off).1).map_err(|c| wrong_object(WHAT, c))?;
        if b.capacity() != a.capacity() {
            return Err(wrong("the two rings differ in capacity"));
        }
        Ok(())
    },
}

/// Creates or opens a [`Pipe`] with options. Obtained from [`Pipe::builder`];
/// places it through [`Placed::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct PipeBuilder {
    capacity: usize,
    name: Option<String>,
    prefault: bool,
}

/// Two SPSC rings in one segment, one per direction. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Pipe {
    a_to_b: SpscRing,
    b_to_a: SpscRing,
    placed: Placed<PipeControl>,
}

impl PipeBuilder {
    /// Each direction's ring size in bytes, rounded up to a power of two of
    /// 32 bytes to 2 GiB. A capacity of 0, or above 2 GiB, makes
    /// [`PipeBuilder::create`] fail with [`ObjectError::InvalidConfig`].
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Names the segment so an unrelated process can [`Pipe::open`] it;
    /// without a name it is anonymous.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Touches every page when mapping.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.prefault = yes;
        self
    }

    /// Creates the pipe.
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`] for a capacity out of range,
    /// [`ObjectError::Segment`] if the segment cannot be created (e.g.
    /// [`SegmentError::InsufficientMemory`](multiproc_core::SegmentError::InsufficientMemory)).
    pub fn create(self) -> Result<Pipe, ObjectError> {
        let mut b = Placed::<PipeControl>::builder().prefault(self.prefault);
        if let Some(n) = self.name {
            b = b.name(n);
        }
        b.create(Config::new(self.capacity)).map(Pipe::from_placed)
    }
}

impl Handle for Pipe {
    type Object = PipeControl;

    fn from_placed(placed: Placed<PipeControl>) -> Pipe {
        let (mem, len) = placed.memory();
        let seg = placed.segment();
        // SAFETY: the bytes `Placed` checked (both rings), in the mapping of
        // `seg`, which each ring keeps.
        let a_to_b = unsafe { SpscRing::view(Arc::clone(seg), mem, len) };
        // Where `attach` found the second ring; kept inside the memory even
        // if a peer rewrote the first one's capacity since.
        let smallest = DATA + MIN_CAPACITY;
        let off = second_offset(a_to_b.capacity()).min((len - smallest) & !127);
        // SAFETY: `off + smallest <= len`, 128-aligned, in the same mapping.
        let b_to_a = unsafe { SpscRing::view(Arc::clone(seg), mem.add(off), len - off) };
        Pipe {
            a_to_b,
            b_to_a,
            placed,
        }
    }
}

multiproc_core::handle_constructors!(impl[] Pipe, "pipe");

impl Pipe {
    /// A builder for a pipe of [`DEFAULT_CAPACITY`] bytes per direction.
    pub fn builder() -> PipeBuilder {
        PipeBuilder {
            capacity: DEFAULT_CAPACITY,
            name: None,
            prefault: false,
        }
    }

    /// The segment's file descriptor, to pass to a child.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.a_to_b.fd()
    }

    /// The segment holding both rings.
    pub fn segment(&self) -> &Segment {
        self.a_to_b.segment()
    }

    /// Each direction's ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.a_to_b.capacity()
    }

    /// The ring carrying messages from end A to end B.
    pub fn a_to_b(&self) -> &SpscRing {
        &self.a_to_b
    }

    /// The ring carrying messages from end B to end A.
    pub fn b_to_a(&self) -> &SpscRing {
        &self.b_to_a
    }

    /// Attaches end A (sends on `a_to_b`, receives on `b_to_a`).
    ///
    /// # Errors
    /// [`AttachError::AlreadyAttached`] if a live process holds end A,
    /// otherwise as [`SpscRing::producer`].
    pub fn end_a(&self) -> Result<Connection, AttachError> {
        Connection::attach(self, End::A)
    }

    /// Attaches end B (sends on `b_to_a`, receives on `a_to_b`).
    ///
    /// # Errors
    /// As [`Pipe::end_a`], for end B.
    pub fn end_b(&self) -> Result<Connection, AttachError> {
        Connection::attach(self, End::B)
    }

    /// The rings end `end` sends on and receives from.
    fn rings(&self, end: End) -> (&SpscRing, &SpscRing) {
        match end {
            End::A => (&self.a_to_b, &self.b_to_a),
            End::B => (&self.b_to_a, &self.a_to_b),
        }
    }
}

/// An anonymous pipe with both ends attached in this process (Python's
/// `multiprocessing.Pipe()`); for a child process, create a [`Pipe`] and
/// attach one end in each process instead.
///
/// # Errors
/// [`AttachError::Object`] if the segment cannot be made (memory short),
/// [`AttachError::UnknownIdentity`].
pub fn pipe() -> Result<(Connection, Connection), AttachError> {
    let p = Pipe::builder().create()?;
    Ok((p.end_a()?, p.end_b()?))
}

/// Which end of a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
enum End {
    A,
    B,
}

/// One end of a [`Pipe`]: sends to the other end and receives from it.
///
/// An end may be held by several processes at once: the one that attached
/// it, a child forked while it held it ([`Builder::fork`](multiproc_core::process::Builder::fork)
/// enters the child among the end's holders), and (`serde` feature) a
/// child started with the end in its arguments
/// ([`Process::start`](multiproc_core::Process::start)). Dropping one copy never
/// closes the end for the others: it is closed when every holder has
/// dropped it or died, or by [`Connection::close`] in the last one. So the
/// Python idiom works: start the child with its end, drop the parent's copy
/// of it, and the parent's `recv` returns what the child sent, then
/// `Closed` once the child is done. Which holder uses the end, one at a
/// time, is the program's affair, as with a descriptor shared by `fork`.
///
/// ```
/// use multiproc_core::Process;
/// use multiproc_queue::error::RecvError;
/// use multiproc_queue::{pipe, Connection};
///
/// fn child(mut end: Connection) {
///     end.send(&vec!["hello".to_string(), "world".to_string()])
///         .expect("the pipe is open");
/// }
///
/// multiproc_core::process::init(); // first thing in main: spawned children start here
/// let (mut mine, theirs) = pipe()?;
/// let c = Process::start(child, theirs)?; // the parent's copy is dropped here
/// assert_eq!(mine.recv::<Vec<String>>()?, ["hello", "world"]);
/// c.join()?;
/// assert_eq!(mine.recv::<Vec<String>>(), Err(RecvError::Closed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Connection {
    tx: Producer,
    rx: Consumer,
    /// The size the next archive is first tried at.
    #[cfg(feature = "rkyv")]
    guess: usize,
    /// The pipe and which end this is, for sending the end to a child.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pipe: Placed<PipeControl>,
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    end: End,
}

/// A connection in a child's arguments: the pipe, and which end.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct ConnectionRepr {
    pipe: Placed<PipeControl>,
    end: End,
}

#[cfg(feature = "serde")]
impl serde::Serialize for Connection {
    /// The pipe (by name, or by descriptor to a child being started) and
    /// the end; a child being started is entered among the end's holders
    /// before its parent can drop its own copy.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.tx.hold_for_child();
        self.rx.hold_for_child();
        ConnectionRepr {
            pipe: self.pipe.clone(),
            end: self.end,
        }
        .serialize(s)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Connection {
    /// Joins the end as one more of its holders.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let r = ConnectionRepr::deserialize(d)?;
        let pipe = Pipe::from_placed(r.pipe);
        let (out, inp) = pipe.rings(r.end);
        let tx = out.join_producer().map_err(D::Error::custom)?;
        let rx = inp.join_consumer().map_err(D::Error::custom)?;
        Ok(Connection::new(tx, rx, pipe.placed, r.end))
    }
}

impl Connection {
    fn attach(pipe: &Pipe, end: End) -> Result<Connection, AttachError> {
        let (out, inp) = pipe.rings(end);
        let tx = out.producer()?;
        let rx = inp.consumer()?;
        Ok(Connection::new(tx, rx, pipe.placed.clone(), end))
    }

    fn new(tx: Producer, rx: Consumer, pipe: Placed<PipeControl>, end: End) -> Connection {
        Connection {
            tx,
            rx,
            #[cfg(feature = "rkyv")]
            guess: archive::first_guess(),
            pipe,
            end,
        }
    }

    /// Sets how both directions of this end wait.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.tx.set_wait_strategy(strategy);
        self.rx.set_wait_strategy(strategy);
    }

    /// [`Connection::set_wait_strategy`], by value.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.set_wait_strategy(strategy);
        self
    }

    /// The largest message this end can send.
    pub fn max_message_len(&self) -> usize {
        self.tx.max_message_len()
    }

    /// Sends a byte string, waiting for room.
    ///
    /// # Errors
    /// [`SendError::Closed`] if the other end closed or died,
    /// [`SendError::TooLarge`], [`SendError::Corrupt`].
    #[inline]
    pub fn send_bytes(&mut self, msg: &[u8]) -> Result<(), SendError<()>> {
        self.tx.send(msg)
    }

    /// Receives a byte string into a new `Vec` (allocates; see
    /// [`Connection::recv_bytes_into`] and [`Connection::recv_in_place`]).
    ///
    /// # Errors
    /// [`RecvError::Closed`] once the other end closed (or died) and
    /// everything it sent was read; [`RecvError::Corrupt`].
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>, RecvError> {
        Ok(self.rx.recv()?.to_vec())
    }

    /// Receives a byte string into `buf`; returns its length.
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`], and [`RecvError::BufferTooSmall`] (the
    /// message stays).
    #[inline]
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.rx.recv_into(buf)
    }

    /// Receives a byte string with a time limit.
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`], and [`RecvTimeoutError::Timeout`].
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        Ok(self.rx.recv_timeout(timeout)?.to_vec())
    }

    /// Receives the next message in place: a guard over its bytes in the
    /// ring, released when dropped.
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`].
    #[inline]
    pub fn recv_in_place(&mut self) -> Result<RecvGuard<'_>, RecvError> {
        self.rx.recv()
    }

    /// Receives without waiting into `buf`.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if nothing is there now, otherwise as
    /// [`Connection::recv_bytes_into`].
    pub fn try_recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        self.rx.try_recv_into(buf)
    }

    /// Sends a value: any [`Message`] (numbers and
    /// [`Pod`](multiproc_core::message::Pod) values as their bytes, `serde` types
    /// encoded straight into the ring's buffer), waiting for room.
    ///
    /// # Errors
    /// As [`Connection::send_bytes`]; [`SendError::TooLarge`] if the
    /// encoding is longer than [`Connection::max_message_len`],
    /// [`SendError::Encode`] if the serializer refuses the value.
    #[inline]
    pub fn send<T: Message>(&mut self, value: &T) -> Result<(), SendError<()>> {
        self.tx.send_message(value)
    }

    /// Receives a value, waiting for one.
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`], and [`RecvError::Decode`] if the
    /// message is not a `T` (it is consumed).
    #[inline]
    pub fn recv<T: Message>(&mut self) -> Result<T, RecvError> {
        self.rx.recv_message()
    }

    /// Receives values as they come, waiting for each, until the other end
    /// is closed (by every process holding it) and everything it sent is
    /// read; a message that does not decode comes as its error.
    pub fn iter<'a, T: Message + 'a>(
        &'a mut self,
    ) -> impl Iterator<Item = Result<T, RecvError>> + 'a {
        self.rx.iter()
    }

    /// Receives the values that are ready now, without waiting.
    pub fn try_iter<'a, T: Message + 'a>(
        &'a mut self,
    ) -> impl Iterator<Item = Result<T, TryRecvError>> + 'a {
        self.rx.try_iter()
    }

    /// Receives a value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Connection::recv`], and [`RecvTimeoutError::Timeout`].
    pub fn recv_timeout<T: Message>(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.rx.recv_message_timeout(timeout)
    }

    /// Receives a value if one is ready.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if nothing is there now, otherwise as
    /// [`Connection::recv`].
    pub fn try_recv<T: Message>(&mut self) -> Result<T, TryRecvError> {
        self.rx.try_recv_message()
    }

    /// Serializes an `rkyv` value straight into the ring (feature `rkyv`).
    ///
    /// # Errors
    /// As [`Connection::send_bytes`]; [`SendError::TooLarge`] if the
    /// archive exceeds the largest message.
    #[cfg(feature = "rkyv")]
    pub fn send_archive<T: SerializeInPlace>(&mut self, value: &T) -> Result<(), SendError<()>> {
        archive::send_blocking(&mut self.tx, &mut self.guess, value)
    }

    /// Receives an `rkyv` archive of `T`, checked, read in place (feature
    /// `rkyv`).
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`], and [`RecvError::Decode`] if the
    /// archive fails its check (it is consumed).
    #[cfg(feature = "rkyv")]
    pub fn recv_archive<T: ::rkyv::Archive>(&mut self) -> Result<ArchivedGuard<'_, T>, RecvError>
    where
        T::Archived: CheckedArchive,
    {
        let g = self.rx.recv()?;
        archive::check_guard::<T>(g).map_err(|e| RecvError::Decode(DecodeError::Invalid(e)))
    }

    /// Waits until a message can be read, at most `timeout` (`None`: no
    /// limit; `Some(Duration::ZERO)`: just look). `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`RecvError::Closed`] if the other end is gone and nothing is left.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool, RecvError> {
        self.rx.poll(timeout)
    }

    /// The sending half.
    pub fn sender(&mut self) -> &mut Producer {
        &mut self.tx
    }

    /// The receiving half.
    pub fn receiver(&mut self) -> &mut Consumer {
        &mut self.rx
    }

    /// Leaves both directions of this end (as dropping it does): once no
    /// other process holds it, the other end reads what was sent, then gets
    /// `Closed`.
    pub fn close(self) {}
}
