//! The ring in shared memory: its placement (the control block's
//! [`ShmObject`] contract, the six constructors, the builder) and the
//! attachment of its two ends.

use super::endpoint::Endpoint;
use super::{Config, Consumer, Producer, Side, DEFAULT_CAPACITY, KIND};
use crate::error::AttachError;
use crate::raw::spsc::{self as raw, RawRing, SpscControl};
use crate::raw::{ClaimError, PtrMem};
use multiproc_core::liveness::OsJudge;
use multiproc_core::object::{Handle, ObjectError, PlaceBuilder, Placed};
use multiproc_core::{ProcessId, Segment};
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

const WHAT: &str = "SPSC ring";

crate::placed::ring_object!(SpscControl, KIND, WHAT, raw::RawRing);

/// An SPSC ring in a shared segment. Cheap to clone (the mapping is shared);
/// attach the ends with [`SpscRing::producer`] and [`SpscRing::consumer`].
///
/// ```
/// use multiproc_queue::spsc::{Config, SpscRing};
///
/// let name = multiproc_core::name::unique_name("doc-spsc");
/// let ring = SpscRing::create(&name, Config::new(4096))?;
/// let other = SpscRing::open(&name)?; // what another process would do
/// assert_eq!(other.capacity(), 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SpscRing {
    seg: Arc<Segment>,
    raw: RawRing<PtrMem>,
}

impl Handle for SpscRing {
    type Object = SpscControl;

    fn from_placed(placed: Placed<SpscControl>) -> SpscRing {
        let (mem, len) = placed.memory();
        // SAFETY: the bytes `Placed` checked, inside its segment's mapping.
        unsafe { SpscRing::view(Arc::clone(placed.segment()), mem, len) }
    }
}

multiproc_core::handle_constructors!(impl[] SpscRing, "SPSC ring");

impl SpscRing {
    /// The ring a successful attach found in `len` bytes at `mem`.
    ///
    /// # Safety
    /// `len` bytes at `mem` lie in `seg`'s mapping, 128-aligned, and
    /// [`ShmObject::attach`] accepted them.
    pub(crate) unsafe fn view(seg: Arc<Segment>, mem: NonNull<u8>, len: usize) -> SpscRing {
        // SAFETY: the caller's promise; `seg` stays beside the ring and every
        // end made from it, keeping the mapping alive.
        let mem = unsafe { PtrMem::new(mem, len) };
        SpscRing {
            seg,
            raw: RawRing::attach_or_smallest(mem),
        }
    }

    /// A builder for a ring of [`DEFAULT_CAPACITY`] bytes, for the options
    /// of its segment (name, mode, prefault, open timeout) and the shorthands
    /// [`SpscBuilder::max_message_len`] and [`SpscBuilder::pod`].
    pub fn builder() -> SpscBuilder {
        SpscBuilder {
            cfg: Config::new(DEFAULT_CAPACITY),
            name: None,
            mode: 0o600,
            prefault: false,
            open_timeout: None,
        }
    }

    /// The segment holding the ring.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The segment's file descriptor, to pass to a child
    /// ([`multiproc_core::process::Builder::inherit_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.seg.fd()
    }

    /// The data area's size in bytes.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// The largest message the ring carries: `capacity - 16` (a record
    /// header, and the free slot the ring keeps after its last record).
    pub fn max_message_len(&self) -> usize {
        self.raw.max_message_len()
    }

    /// Bytes held by unread records. A snapshot.
    pub fn used_bytes(&self) -> usize {
        self.raw.used_bytes()
    }

    /// The pid of the process holding `side`'s end, if any (it may be dead).
    pub fn owner_pid(&self, side: Side) -> Option<u32> {
        let o = self.raw.owner(side);
        (o != 0).then(|| ProcessId::from_u64(o).pid)
    }

    /// How many times each end was attached so far: `(producer, consumer)`.
    pub fn attach_counts(&self) -> (u32, u32) {
        (
            self.raw.attach_count(Side::Producer),
            self.raw.attach_count(Side::Consumer),
        )
    }

    /// The raw ring, for tests and tools.
    pub fn raw(&self) -> &RawRing<PtrMem> {
        &self.raw
    }

    /// The fixed message length of a typed ring (0 for a byte ring).
    pub fn fixed_message_len(&self) -> u64 {
        self.raw.fixed_len()
    }

    /// Claims `side` with `claim` on the ring as it is now (checked
    /// again: an end never runs on a geometry a peer rewrote), and the
    /// endpoint that goes with it.
    fn attach_end<E>(
        &self,
        side: Side,
        claim: impl FnOnce(&RawRing<PtrMem>) -> Result<E, ClaimError>,
    ) -> Result<(E, Endpoint), AttachError> {
        let ring = RawRing::attach(*self.raw.memory()).map_err(AttachError::Corrupt)?;
        let end = claim(&ring).map_err(|e| AttachError::claim(side.name(), e))?;
        Ok((end, Endpoint::new(Arc::clone(&self.seg), ring, side)))
    }

    /// Attaches the producing end.
    ///
    /// # Errors
    /// [`AttachError::AlreadyAttached`] if a live process (this one
    /// included) holds it; [`AttachError::Corrupt`] if the ring's indices
    /// fail their checks; [`AttachError::UnknownIdentity`] if this process
    /// cannot learn the identity an owner records. A dead holder's end is
    /// taken over.
    pub fn producer(&self) -> Result<Producer, AttachError> {
        let (raw, ep) = self.attach_end(Side::Producer, |r| r.producer(OsJudge))?;
        Ok(Producer::new(raw, ep))
    }

    /// Attaches the consuming end.
    ///
    /// # Errors
    /// As [`SpscRing::producer`].
    pub fn consumer(&self) -> Result<Consumer, AttachError> {
        let (raw, ep) = self.attach_end(Side::Consumer, |r| r.consumer(OsJudge))?;
        Ok(Consumer::new(raw, ep))
    }

    /// Joins the producing end another process claimed, as one more of its
    /// holders (a child given the end).
    #[cfg(feature = "serde")]
    pub(crate) fn join_producer(&self) -> Result<Producer, AttachError> {
        let (raw, ep) = self.attach_end(Side::Producer, |r| r.join_producer(OsJudge))?;
        Ok(Producer::new(raw, ep))
    }

    /// Joins the consuming end another process claimed.
    #[cfg(feature = "serde")]
    pub(crate) fn join_consumer(&self) -> Result<Consumer, AttachError> {
        let (raw, ep) = self.attach_end(Side::Consumer, |r| r.join_consumer(OsJudge))?;
        Ok(Consumer::new(raw, ep))
    }
}

/// The options of a new [`SpscRing`] or of opening one. Obtained from
/// [`SpscRing::builder`]; [`SpscBuilder::create`] and [`SpscBuilder::open`]
/// place the ring through [`Placed::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct SpscBuilder {
    cfg: Config,
    name: Option<String>,
    mode: u32,
    prefault: bool,
    open_timeout: Option<Duration>,
}

impl SpscBuilder {
    /// The data area's size in bytes, rounded up to a power of two (at least
    /// 32). Records take 8 bytes of header plus the message rounded up to 8,
    /// and the ring keeps one 8-byte slot free after its last record, so a
    /// ring of `c` bytes holds `c / 16 - 1` messages of 8 bytes.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.cfg.capacity = bytes;
        self
    }

    /// Makes the ring large enough for messages of `len` bytes (at least).
    pub fn max_message_len(mut self, len: usize) -> Self {
        let need = raw::capacity_for_message(len).unwrap_or(usize::MAX);
        self.cfg.capacity = self.cfg.capacity.max(need);
        self
    }

    /// Names the ring's segment, so unrelated processes can open it; without
    /// a name it is an anonymous `memfd`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Permission bits of a named segment (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Touches every page when mapping, so the first messages take no page
    /// fault.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.prefault = yes;
        self
    }

    /// How long `open` waits for the creator to finish initializing.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = Some(timeout);
        self
    }

    /// Marks the ring as typed: every message has exactly `len` bytes
    /// (used by [`super::pod`]; typed ends check it when attaching).
    pub fn fixed_message_len(mut self, len: usize) -> Self {
        self.cfg.fixed_len = len;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> Config {
        self.cfg
    }

    fn placer(self) -> PlaceBuilder<SpscControl> {
        let mut b = Placed::builder().mode(self.mode).prefault(self.prefault);
        if let Some(n) = self.name {
            b = b.name(n);
        }
        if let Some(t) = self.open_timeout {
            b = b.open_timeout(t);
        }
        b
    }

    /// Creates the ring (named if a name was given, else anonymous). A named
    /// segment must not exist yet, unless its creator died.
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`] for a capacity above 2 GiB or one that
    /// cannot hold a message of the fixed length, before anything is
    /// allocated; [`ObjectError::Segment`] if the segment cannot be created
    /// (e.g. [`SegmentError::InsufficientMemory`](multiproc_core::SegmentError::InsufficientMemory):
    /// more than the machine or the memory cgroup can still give).
    pub fn create(self) -> Result<SpscRing, ObjectError> {
        let cfg = self.cfg;
        self.placer().create(cfg).map(SpscRing::from_placed)
    }

    /// Opens the named ring another process created.
    ///
    /// # Errors
    /// [`ObjectError::Segment`] (not found, another kind, ...) or
    /// [`ObjectError::WrongObject`] if its control block fails its checks.
    pub fn open(self) -> Result<SpscRing, ObjectError> {
        self.placer().open().map(SpscRing::from_placed)
    }
}
