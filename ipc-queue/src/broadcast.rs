//! A broadcast ring: one publisher, many subscribers across processes, each
//! with its own cursor (market-data fan-out).
//!
//! The publisher never waits: it overwrites the oldest message when the ring
//! is full. A subscriber that falls more than the capacity behind learns how
//! many messages it missed ([`ReadError::Lagged`], [`Subscriber::overruns`])
//! and resumes at the oldest message still in the ring; it never gets a torn
//! message (seqlock slots, see [`raw`]). A late subscriber chooses where to
//! start ([`Start`]).
//!
//! ```
//! use ipc_queue::broadcast::{Publisher, ReadError, Start};
//! let mut publisher = Publisher::anonymous(4, 32)?;
//! let mut early = publisher.subscribe(Start::Next);
//! for i in 0..6u8 {
//!     publisher.publish(&[i])?;
//! }
//! let mut late = publisher.subscribe(Start::Oldest);
//! let mut buf = [0u8; 32];
//! // `early` was lapped: messages 0 and 1 are gone.
//! assert_eq!(early.try_recv_into(&mut buf), Err(ReadError::Lagged(2)));
//! assert_eq!(early.try_recv_into(&mut buf), Ok(1));
//! assert_eq!(buf[0], 2);
//! assert_eq!(late.try_recv_into(&mut buf), Ok(1));
//! assert_eq!(buf[0], 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Dropping the [`Publisher`] closes the ring: subscribers drain what is left
//! and then get [`ReadError::Closed`]; so do they when the publisher's
//! process dies (noticed while waiting, within [`POLL`]). A new publisher may
//! then take over with [`Publisher::open`].

pub use crate::raw::broadcast as raw;

use crate::error::{AttachError, Corrupt, MessageTooLarge};
use crate::raw::{ClaimError, PtrMem};
use ipc_core::header::layout_hash;
use ipc_core::liveness::OsJudge;
use ipc_core::wait::WaitStrategy;
use ipc_core::{Kind, ProcessId, Segment, Shareable};
use raw::{RawPublisher, Read};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

type RawBroadcast = raw::RawBroadcast<PtrMem>;
use std::time::{Duration, Instant};

/// The segment kind of a broadcast ring.
pub const KIND: Kind = Kind::new("ipc-queue/broadcast", 1, layout_hash(&[128, 128, 16]));

/// How often a waiting subscriber checks that the publisher's process is
/// still alive.
pub const POLL: Duration = Duration::from_millis(10);

/// Where a new subscriber starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Start {
    /// The oldest message still in the ring.
    Oldest,
    /// The newest message published (or the first one, if none was yet).
    Newest,
    /// The next message published after subscribing.
    Next,
}

/// Why a subscriber's receive returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing new now (`try_` forms only).
    #[error("no new message")]
    Empty,
    /// Nothing arrived before the deadline (`_timeout` forms only).
    #[error("timed out waiting for a message")]
    Timeout,
    /// The publisher lapped this subscriber: this many messages were
    /// overwritten before it read them. The next receive returns the oldest
    /// message still in the ring.
    #[error("subscriber fell behind and lost {0} messages")]
    Lagged(u64),
    /// The publisher closed the ring (or died) and everything it published
    /// has been read.
    #[error("the publisher closed the ring")]
    Closed,
    /// The next message does not fit in the buffer; it stays unread.
    #[error("the next message has {needed} bytes, the buffer only {capacity}")]
    BufferTooSmall {
        /// Its length.
        needed: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// A typed receive found a message of another length (it is consumed).
    #[error("message could not be decoded: {0}")]
    Decode(&'static str),
    /// The ring's shared state is corrupt.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

#[derive(Debug)]
struct Shared {
    raw: RawBroadcast,
    seg: Segment,
}

fn create(name: Option<&str>, capacity: usize, slot_size: usize) -> Result<Shared, AttachError> {
    // A capacity with no power of two above it stays as given and is refused
    // as too large.
    let capacity = capacity
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or(capacity);
    let cfg = raw::Config {
        capacity,
        slot_size,
    };
    let size = raw::memory_size(&cfg).map_err(|e| AttachError::InvalidConfig(e.0))?;
    let mut b = Segment::builder(KIND).size(size);
    if let Some(n) = name {
        b = b.name(n);
    }
    let mut init_err = None;
    let seg = b.create_with(|seg| {
        // SAFETY: fresh, 128-aligned payload of `size` bytes that nobody
        // uses before the segment is marked ready.
        let mem = unsafe { PtrMem::new(seg.payload_ptr(), seg.payload_len()) };
        if let Err(e) = RawBroadcast::init(mem, &cfg) {
            init_err = Some(e);
        }
    })?;
    if let Some(e) = init_err {
        return Err(AttachError::InvalidConfig(e.0));
    }
    wrap(seg)
}

fn wrap(seg: Segment) -> Result<Shared, AttachError> {
    // SAFETY: the payload stays mapped as long as `seg`, kept beside the ring.
    let raw = RawBroadcast::attach(unsafe { PtrMem::new(seg.payload_ptr(), seg.payload_len()) })?;
    Ok(Shared { raw, seg })
}

/// The one publishing end of a broadcast ring.
#[derive(Debug)]
pub struct Publisher {
    // Dropped first: it closes the ring while `shared` keeps the mapping.
    raw: RawPublisher<PtrMem, OsJudge>,
    shared: Arc<Shared>,
}

impl Publisher {
    /// Creates a named ring of `capacity` slots (rounded up to a power of
    /// two) of up to `slot_size` bytes, with this process as its publisher.
    ///
    /// # Errors
    /// [`AttachError::InvalidConfig`], [`AttachError::Segment`] (e.g.
    /// [`SegmentError::InsufficientMemory`](ipc_core::SegmentError::InsufficientMemory):
    /// more than the machine or the memory cgroup can still give).
    pub fn create(name: &str, capacity: usize, slot_size: usize) -> Result<Publisher, AttachError> {
        Publisher::claim(create(Some(name), capacity, slot_size)?)
    }

    /// Creates an anonymous ring (pass [`Publisher::fd`] to children).
    ///
    /// # Errors
    /// As [`Publisher::create`].
    pub fn anonymous(capacity: usize, slot_size: usize) -> Result<Publisher, AttachError> {
        Publisher::claim(create(None, capacity, slot_size)?)
    }

    /// Becomes the publisher of an existing named ring whose publisher closed
    /// it or died. Publishing resumes after the last complete message.
    ///
    /// # Errors
    /// [`AttachError::AlreadyAttached`] if a live process publishes,
    /// [`AttachError::UnknownIdentity`] if this process cannot learn the
    /// identity the publisher slot records, or as [`Subscriber::open`].
    pub fn open(name: &str) -> Result<Publisher, AttachError> {
        Publisher::claim(wrap(Segment::builder(KIND).name(name).open()?)?)
    }

    /// [`Publisher::open`] for a ring passed as a descriptor.
    ///
    /// # Errors
    /// As [`Publisher::open`]; a descriptor not sealed against resizing
    /// (its sender could shrink it under this mapping) is
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed).
    pub fn from_fd(fd: OwnedFd) -> Result<Publisher, AttachError> {
        Publisher::claim(wrap(Segment::from_fd(fd, KIND)?)?)
    }

    fn claim(shared: Shared) -> Result<Publisher, AttachError> {
        let raw = shared.raw.publisher(OsJudge).map_err(|e| match e {
            ClaimError::Held { owner } => AttachError::AlreadyAttached {
                role: "publisher",
                pid: ProcessId::from_u64(owner).pid,
            },
            ClaimError::UnknownIdentity(e) => AttachError::UnknownIdentity(e),
            ClaimError::Corrupt(c) => AttachError::Corrupt(c),
        })?;
        Ok(Publisher {
            raw,
            shared: Arc::new(shared),
        })
    }

    /// Publishes a copy of `msg`. Never waits: the oldest message is
    /// overwritten when the ring is full.
    ///
    /// # Errors
    /// [`MessageTooLarge`] (nothing is published).
    #[inline]
    pub fn publish(&mut self, msg: &[u8]) -> Result<(), MessageTooLarge> {
        self.raw.publish(msg)
    }

    /// Publishes a plain-old-data value (its `size_of::<T>()` bytes).
    ///
    /// # Errors
    /// [`MessageTooLarge`].
    #[inline]
    pub fn publish_value<T: Shareable + Copy>(&mut self, value: T) -> Result<(), MessageTooLarge> {
        // SAFETY: `T: Shareable` has no padding-dependent validity and no
        // pointers; viewing its bytes is what sending it means.
        let bytes = unsafe {
            std::slice::from_raw_parts(&value as *const T as *const u8, std::mem::size_of::<T>())
        };
        self.publish(bytes)
    }

    /// A subscriber in this process.
    pub fn subscribe(&self, start: Start) -> Subscriber {
        Subscriber::new(Arc::clone(&self.shared), start)
    }

    /// Messages published so far (by every publisher of this ring).
    pub fn published(&self) -> u64 {
        self.raw.published()
    }

    /// The segment's descriptor, for children ([`Subscriber::from_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.seg.fd()
    }

    /// The ring's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.shared.seg.name()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.raw.capacity()
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// The largest message in bytes: the same as `slot_size`.
    pub fn max_message_len(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// Closes the ring: subscribers drain, then get [`ReadError::Closed`].
    /// (Dropping the publisher does the same.)
    pub fn close(self) {}
}

/// A subscribing end: its own cursor, its own overrun count. Cloning gives an
/// independent subscriber at the same position.
#[derive(Clone, Debug)]
pub struct Subscriber {
    shared: Arc<Shared>,
    cursor: u64,
    overruns: u64,
    strategy: WaitStrategy,
    next_check: Option<Instant>,
}

impl Subscriber {
    fn new(shared: Arc<Shared>, start: Start) -> Subscriber {
        let written = shared.raw.written();
        let cursor = match start {
            Start::Oldest => written.saturating_sub(shared.raw.capacity() as u64),
            Start::Newest => written.saturating_sub(1),
            Start::Next => written,
        };
        Subscriber {
            shared,
            cursor,
            overruns: 0,
            strategy: WaitStrategy::default(),
            next_check: None,
        }
    }

    /// Subscribes to a named ring.
    ///
    /// # Errors
    /// [`AttachError::Segment`] or [`AttachError::Corrupt`].
    pub fn open(name: &str, start: Start) -> Result<Subscriber, AttachError> {
        let shared = wrap(Segment::builder(KIND).name(name).open()?)?;
        Ok(Subscriber::new(Arc::new(shared), start))
    }

    /// Subscribes to a ring passed as a descriptor ([`Publisher::fd`]).
    ///
    /// # Errors
    /// As [`Subscriber::open`]; a descriptor not sealed against resizing
    /// (its sender could shrink it under this mapping) is
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed).
    pub fn from_fd(fd: OwnedFd, start: Start) -> Result<Subscriber, AttachError> {
        let shared = wrap(Segment::from_fd(fd, KIND)?)?;
        Ok(Subscriber::new(Arc::new(shared), start))
    }

    /// The same subscriber with another wait strategy.
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Subscriber {
        self.strategy = strategy;
        self
    }

    /// Sets the wait strategy of this subscriber's blocking calls.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// The wait strategy of this subscriber.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Messages this subscriber missed because the publisher lapped it.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The position of the next message this subscriber reads.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Messages published and not yet read by this subscriber (may exceed
    /// the capacity, in which case the excess is lost).
    pub fn pending(&self) -> u64 {
        self.shared.raw.written().saturating_sub(self.cursor)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.raw.capacity()
    }

    /// The largest message in bytes.
    pub fn slot_size(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// The largest message in bytes: the same as `slot_size`.
    pub fn max_message_len(&self) -> usize {
        self.shared.raw.slot_size()
    }

    /// Whether the publisher closed the ring or its process died.
    pub fn is_closed(&self) -> bool {
        self.shared.raw.publisher_gone(&OsJudge)
    }

    /// One attempt: `None` means nothing yet.
    fn attempt(&mut self, buf: &mut [u8]) -> Option<Result<usize, ReadError>> {
        match self.shared.raw.read(self.cursor, buf) {
            Read::Message(n) => {
                self.cursor += 1;
                Some(Ok(n))
            }
            Read::TooLong(needed) => Some(Err(ReadError::BufferTooSmall {
                needed,
                capacity: buf.len(),
            })),
            Read::Overrun(to) => {
                let lost = to.saturating_sub(self.cursor);
                self.cursor = to;
                self.overruns += lost;
                Some(Err(ReadError::Lagged(lost)))
            }
            Read::Corrupt(c) => {
                self.cursor += 1;
                Some(Err(ReadError::Corrupt(c)))
            }
            Read::NotYet => {
                if self.closed_now() {
                    // Drain anything published before the close.
                    return match self.shared.raw.read(self.cursor, buf) {
                        Read::NotYet => Some(Err(ReadError::Closed)),
                        _ => self.attempt(buf),
                    };
                }
                None
            }
        }
    }

    /// Whether the ring is closed; checks the publisher's liveness at most
    /// every [`POLL`].
    #[cold]
    fn closed_now(&mut self) -> bool {
        if self.shared.raw.is_closed() {
            return true;
        }
        let now = Instant::now();
        if self.next_check.is_some_and(|t| now < t) {
            return false;
        }
        self.next_check = Some(now + POLL);
        self.shared.raw.publisher_gone(&OsJudge)
    }

    fn wait_into(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize, ReadError> {
        let shared = Arc::clone(&self.shared);
        let strategy = self.strategy;
        shared
            .raw
            .new_data()
            .wait(strategy, deadline, Some(POLL), || self.attempt(buf))
            .unwrap_or(Err(ReadError::Timeout))
    }

    /// Copies the next message into `buf` if there is one; returns its length.
    ///
    /// # Errors
    /// [`ReadError::Empty`], [`ReadError::Lagged`], [`ReadError::Closed`],
    /// [`ReadError::BufferTooSmall`], [`ReadError::Corrupt`].
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.attempt(buf).unwrap_or(Err(ReadError::Empty))
    }

    /// Copies the next message into `buf`, waiting for one.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv_into`], except `Empty`.
    #[inline]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.wait_into(buf, None)
    }

    /// Copies the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into`], and [`ReadError::Timeout`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, ReadError> {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_into(buf, deadline)
    }

    /// The next message as a new vector, if there is one.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv_into`], except `BufferTooSmall`.
    pub fn try_recv(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; self.slot_size()];
        let n = self.try_recv_into(&mut v)?;
        v.truncate(n);
        Ok(v)
    }

    /// The next message as a new vector, waiting for one.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into`], except `BufferTooSmall`.
    pub fn recv(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; self.slot_size()];
        let n = self.recv_into(&mut v)?;
        v.truncate(n);
        Ok(v)
    }

    /// The next message as a new vector, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into_timeout`], except `BufferTooSmall`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; self.slot_size()];
        let n = self.recv_into_timeout(&mut v, timeout)?;
        v.truncate(n);
        Ok(v)
    }

    fn value<T: Shareable + Copy>(
        &mut self,
        r: Result<usize, ReadError>,
        buf: &[u8],
    ) -> Result<T, ReadError> {
        let n = match r {
            Err(ReadError::BufferTooSmall { .. }) => {
                // Longer than a `T`: consume it, as a typed receive does.
                self.cursor += 1;
                return Err(ReadError::Decode(
                    "message length differs from the size of the type",
                ));
            }
            r => r?,
        };
        if n != std::mem::size_of::<T>() {
            return Err(ReadError::Decode(
                "message length differs from the size of the type",
            ));
        }
        // SAFETY: `buf` holds `size_of::<T>()` initialized bytes; `T` is
        // `Shareable`, so any bit pattern is a valid `T`; the read is
        // unaligned-safe.
        Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) })
    }

    /// The next message as a plain-old-data value, if there is one.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv_into`], and [`ReadError::Decode`].
    pub fn try_recv_value<T: Shareable + Copy>(&mut self) -> Result<T, ReadError> {
        let mut buf = ValueBuf::<T>::new();
        let r = self.try_recv_into(buf.bytes_mut());
        self.value(r, buf.bytes_mut())
    }

    /// The next message as a plain-old-data value, waiting for one.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into`], and [`ReadError::Decode`].
    pub fn recv_value<T: Shareable + Copy>(&mut self) -> Result<T, ReadError> {
        let mut buf = ValueBuf::<T>::new();
        let r = self.recv_into(buf.bytes_mut());
        self.value(r, buf.bytes_mut())
    }

    /// The next message as a plain-old-data value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscriber::recv_into_timeout`], and [`ReadError::Decode`].
    pub fn recv_value_timeout<T: Shareable + Copy>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, ReadError> {
        let mut buf = ValueBuf::<T>::new();
        let r = self.recv_into_timeout(buf.bytes_mut(), timeout);
        self.value(r, buf.bytes_mut())
    }
}

/// Room for one `T` on the stack, zero-initialized.
struct ValueBuf<T> {
    value: std::mem::MaybeUninit<T>,
}

impl<T: Shareable> ValueBuf<T> {
    fn new() -> Self {
        ValueBuf {
            value: std::mem::MaybeUninit::zeroed(),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `size_of::<T>()` bytes owned by `self`, zero-initialized;
        // `u8` has no alignment requirement and no invalid values.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.value.as_mut_ptr() as *mut u8,
                std::mem::size_of::<T>(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_and_close() {
        let mut p = Publisher::anonymous(4, 8).unwrap();
        for i in 0..6u64 {
            p.publish_value(i).unwrap();
        }
        let mut oldest = p.subscribe(Start::Oldest);
        let mut newest = p.subscribe(Start::Newest);
        let mut next = p.subscribe(Start::Next);
        assert_eq!(oldest.try_recv_value::<u64>(), Ok(2));
        assert_eq!(newest.try_recv_value::<u64>(), Ok(5));
        assert_eq!(next.try_recv_value::<u64>(), Err(ReadError::Empty));
        p.publish_value(6u64).unwrap();
        assert_eq!(next.recv_value::<u64>(), Ok(6));
        assert_eq!(
            next.recv_timeout(Duration::from_millis(2)),
            Err(ReadError::Timeout)
        );
        assert!(p.publish(&[0; 9]).is_err());
        drop(p);
        assert_eq!(newest.recv_value::<u64>(), Ok(6));
        assert_eq!(newest.recv_value::<u64>(), Err(ReadError::Closed));
        assert_eq!(oldest.overruns(), 0);
    }

    #[test]
    fn a_second_live_publisher_is_refused() {
        let name = ipc_core::name::unique_name("bcast-pub");
        let p = Publisher::create(&name, 2, 8).unwrap();
        assert!(matches!(
            Publisher::open(&name),
            Err(AttachError::AlreadyAttached {
                role: "publisher",
                ..
            })
        ));
        drop(p);
        // A descriptor of a named ring is not sealed against resizing, so
        // taking over through a descriptor needs an anonymous ring.
        let p = Publisher::anonymous(2, 8).unwrap();
        let fd = p.fd().try_clone_to_owned().unwrap();
        let mut s = Subscriber::from_fd(fd.try_clone().unwrap(), Start::Next).unwrap();
        assert!(matches!(
            Publisher::from_fd(fd.try_clone().unwrap()),
            Err(AttachError::AlreadyAttached {
                role: "publisher",
                ..
            })
        ));
        drop(p);
        assert_eq!(s.try_recv(), Err(ReadError::Closed));
        let mut p2 = Publisher::from_fd(fd).unwrap();
        p2.publish(b"again").unwrap();
        assert_eq!(s.try_recv().unwrap(), b"again");
    }
}
