//! Shared-memory segments: named (`shm_open`) and anonymous (`memfd_create`).
//!
//! A segment is one mapping: a 128-byte [`SegmentHeader`] followed by the
//! payload. The creator writes the header and initializes the payload, then
//! marks it ready; an opener waits (bounded) for ready and checks the header
//! against the [`Kind`] it expects.
//!
//! Named segments live at `/dev/shm/ipc.<name>`, are created exclusively with
//! mode 0600 (configurable), are sized with `ftruncate` and `posix_fallocate`
//! so a full `/dev/shm` is an error at creation instead of a `SIGBUS` later
//! (and, for both kinds, a size the machine or the memory cgroup cannot hold
//! is refused before anything is allocated: [`crate::memory`]),
//! and are unlinked by their creator on drop, never by an opener. A creator
//! that crashed leaves its segment behind; creating the same name again sees
//! that the recorded creator (pid and start time) is dead and reclaims it, and
//! [`sweep`] removes every such stale segment.
//!
//! Anonymous segments are `memfd`s sealed against resizing. They have no name
//! to leak: a forked child inherits the mapping, a spawned child the file
//! descriptor ([`crate::process::Builder::inherit_fd`]), and an unrelated
//! process can receive the descriptor over a Unix socket
//! ([`Segment::send_over`], [`Segment::receive`]). A descriptor that comes
//! from another process is mapped only if it carries those seals
//! ([`SegmentError::Unsealed`] otherwise), unless the caller takes the risk
//! with [`Segment::from_fd_unsealed`].

use crate::error::{OffsetError, SegmentError};
use crate::header::{Kind, SegmentHeader, HEADER_SIZE};
use memmap2::MmapRaw;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long [`SegmentBuilder::open`] waits for the creator to mark a segment
/// ready, unless [`SegmentBuilder::open_timeout`] says otherwise.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// A mapped shared-memory segment.
///
/// Dropping it unmaps it; if this process created a named segment through
/// this value, dropping it also unlinks the name.
#[derive(Debug)]
pub struct Segment {
    map: MmapRaw,
    fd: OwnedFd,
    name: Option<String>,
    os_name: Option<CString>,
    /// The pid that created the segment through this value; only that
    /// process unlinks (a forked child that drops its copy does not).
    creator_pid: Option<u32>,
    unlinked: AtomicBool,
    kind: Kind,
    payload_len: usize,
}

/// Creates or opens a [`Segment`]. Obtained from [`Segment::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct SegmentBuilder {
    kind: Kind,
    name: Option<String>,
    size: Option<usize>,
    mode: u32,
    prefault: bool,
    open_timeout: Duration,
}

impl Segment {
    /// A builder for a segment holding `kind`.
    ///
    /// ```
    /// use multiproc_core::{Kind, Segment};
    /// let seg = Segment::builder(Kind::BYTES).size(4096).create()?; // anonymous
    /// assert!(seg.payload_len() >= 4096);
    /// # Ok::<(), multiproc_core::SegmentError>(())
    /// ```
    pub fn builder(kind: Kind) -> SegmentBuilder {
        SegmentBuilder {
            kind,
            name: None,
            size: None,
            mode: 0o600,
            prefault: false,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
        }
    }

    /// Sends this segment's file descriptor over a connected Unix socket
    /// (`SCM_RIGHTS`); the peer maps it with [`Segment::receive`].
    ///
    /// # Errors
    /// The OS error of `sendmsg`.
    pub fn send_over(&self, sock: &UnixStream) -> io::Result<()> {
        crate::fdpass::send_fds(sock, &self.kind.tag.to_le_bytes(), &[self.fd.as_fd()])
    }

    /// The header at the start of the segment.
    pub fn header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked when it
        // was created or opened), page-aligned (so 128-aligned), and lives as
        // long as `self`. Every header field is an atomic, so shared access
        // while other processes write it is sound.
        unsafe { &*(self.map.as_mut_ptr() as *const SegmentHeader) }
    }

    /// The start of the payload (128-byte aligned).
    pub fn payload_ptr(&self) -> NonNull<u8> {
        // SAFETY: the mapping is non-null and at least HEADER_SIZE long, so
        // the pointer HEADER_SIZE bytes in stays inside it (or one past it).
        unsafe { NonNull::new_unchecked(self.map.as_mut_ptr().add(HEADER_SIZE)) }
    }

    /// The payload's usable length in bytes (what the creator asked for).
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The size of the whole mapping, header included.
    pub fn total_len(&self) -> usize {
        self.map.len()
    }

    /// Checks that `len` bytes at `offset` lie inside the payload.
    ///
    /// # Errors
    /// [`OffsetError::OutOfBounds`] if the range leaves the payload.
    pub fn check_range(
        &self,
        offset: u64,
        len: u64,
    ) -> Result<std::ops::Range<usize>, OffsetError> {
        crate::offset::check_range(offset, len, self.payload_len as u64)
    }

    /// A pointer to a `T` at `offset` in the payload, after checking bounds
    /// and alignment. Dereferencing it is the caller's business (`unsafe`);
    /// `T: Shareable` makes any bit pattern another process wrote valid.
    ///
    /// # Errors
    /// [`OffsetError::OutOfBounds`] if the `T` would leave the payload,
    /// [`OffsetError::Misaligned`] if `offset` is not a multiple of its
    /// alignment.
    pub fn ptr_at<T: crate::Shareable>(&self, offset: u64) -> Result<NonNull<T>, OffsetError> {
        let range = self.check_range(offset, std::mem::size_of::<T>() as u64)?;
        let align = std::mem::align_of::<T>() as u64;
        if !offset.is_multiple_of(align) {
            return Err(OffsetError::Misaligned { offset, align });
        }
        // SAFETY: `range` lies inside the payload, which lies inside the
        // mapping; the payload start is 128-aligned and `offset` is a multiple
        // of `align_of::<T>()` (≤ 128 for any type placed here).
        Ok(unsafe { self.payload_ptr().add(range.start).cast() })
    }

    /// A shared reference to a `T` at `offset`, for types whose every field
    /// is safe to share while other processes write it (atomics).
    ///
    /// # Errors
    /// As [`Segment::ptr_at`].
    pub fn get<T: crate::Shareable + Sync>(&self, offset: u64) -> Result<&T, OffsetError> {
        let p = self.ptr_at::<T>(offset)?;
        // SAFETY: in bounds and aligned (checked by `ptr_at`); `Shareable`
        // makes every bit pattern valid; the reference lives no longer than
        // the mapping (`&self`). `T: Sync` is asked so that only types meant
        // for concurrent access (atomics) are handed out this way.
        Ok(unsafe { p.as_ref() })
    }

    /// The name this segment was created or opened by (`None` if anonymous).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// What the segment holds.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether this process created the segment through this value (and so
    /// unlinks it on drop, if named).
    pub fn is_creator(&self) -> bool {
        self.creator_pid == Some(std::process::id())
    }

    /// The segment's file descriptor (close-on-exec).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Marks the segment poisoned: every later open fails with
    /// [`SegmentError::Poisoned`]. Processes that already mapped it are not
    /// told; the crates that place data here check the state where it matters.
    pub fn poison(&self) {
        self.header().mark_poisoned();
        log::warn!("segment {:?} poisoned", self.label());
    }

    /// Removes the name now (any process may call this; normally the creator
    /// does it on drop). The mapping stays valid until every process unmaps
    /// it. Does nothing for an anonymous segment or a name already removed;
    /// a name that meanwhile refers to anything else (another segment, or a
    /// FIFO, symlink or directory a peer put there) is left alone.
    ///
    /// Whether the name is still this segment is decided by comparing the
    /// device and inode of the path (`lstat`, which opens nothing and so
    /// neither blocks on a FIFO nor needs a free descriptor) with those of the
    /// descriptor this segment holds. A peer that swaps the name in the
    /// instant between that check and the unlink can still have its object
    /// removed: no system call unlinks a name only if it is a given inode.
    ///
    /// # Errors
    /// [`SegmentError::Io`] if the path cannot be examined (after a few
    /// retries) or `shm_unlink` fails; the name is then left in place, and
    /// [`sweep`] removes it once this process has exited.
    pub fn unlink(&self) -> Result<(), SegmentError> {
        let (Some(name), Some(os)) = (&self.name, &self.os_name) else {
            return Ok(());
        };
        if self.unlinked.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match name_refers_to(name, &self.fd) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(source) => {
                return Err(SegmentError::Io {
                    op: "lstat",
                    name: name.clone(),
                    source,
                })
            }
        }
        // SAFETY: `os` is a valid NUL-terminated name.
        if unsafe { libc::shm_unlink(os.as_ptr()) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(SegmentError::Io {
                    op: "shm_unlink",
                    name: name.clone(),
                    source: e,
                });
            }
        }
        log::debug!("segment {name:?} unlinked");
        Ok(())
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("<fd {}>", self.fd.as_raw_fd()))
    }
}

impl<T: crate::Shareable> crate::offset::ShmOffset<T> {
    /// A pointer into `segment`, after checking bounds and alignment.
    ///
    /// # Errors
    /// [`OffsetError`] if the `T` at the offset would leave the payload or
    /// is misaligned.
    pub fn resolve(self, segment: &Segment) -> Result<NonNull<T>, OffsetError> {
        segment.ptr_at::<T>(self.get())
    }
}

/// Dropping never blocks on what another process put at the segment's path,
/// and needs no free descriptor. A name that cannot be removed (see
/// [`Segment::unlink`]) is reported through the `log` facade at warning level.
impl Drop for Segment {
    fn drop(&mut self) {
        if self.is_creator() {
            if let Err(e) = self.unlink() {
                log::warn!("dropping segment: {e}; its name stays until sweep() removes it");
            }
        }
    }
}

impl SegmentBuilder {
    /// Names the segment (`/dev/shm/ipc.<name>`); without a name it is an
    /// anonymous `memfd`. See [`name::validate`](crate::name::validate).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The payload size in bytes. Required to create; when opening, the
    /// payload must be at least this large.
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = Some(bytes);
        self
    }

    /// The permission bits of a named segment (default `0o600`). A group- or
    /// world-writable mode (or bits beyond `0o777`) is refused when creating
    /// ([`SegmentError::InsecureMode`]), as it is when opening: only read bits
    /// may be given beyond the owner's.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Touches every page at map time (`MAP_POPULATE`) so the first access
    /// on a latency-sensitive path takes no page fault.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.prefault = yes;
        self
    }

    /// How long `open` waits for the creator to mark the segment ready.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }
}

mod create;
mod open;
mod os;
mod reclaim;

use os::name_refers_to;
pub use reclaim::{sweep, sweep_dry_run};

/// Raw descriptor of a segment, for passing to a child.
impl AsRawFd for Segment {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The segment's descriptor, for an event loop or to pass to a child (it
/// never becomes readable: segments are memory, not streams).
impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offset::ShmOffset;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn offsets_are_checked_against_the_payload() {
        let seg = Segment::builder(Kind::BYTES).size(64).create().unwrap();
        assert!(ShmOffset::<u64>::new(56).resolve(&seg).is_ok());
        assert!(matches!(
            ShmOffset::<u64>::new(4).resolve(&seg),
            Err(OffsetError::Misaligned { .. })
        ));
        assert!(matches!(
            ShmOffset::<u64>::new(64).resolve(&seg),
            Err(OffsetError::OutOfBounds { .. })
        ));
        assert!(matches!(
            ShmOffset::<u64>::new(u64::MAX - 3).resolve(&seg),
            Err(OffsetError::OutOfBounds { .. })
        ));
        let a: &AtomicU64 = seg.get(8).unwrap();
        a.store(5, Ordering::Relaxed);
        let b: &AtomicU64 = seg.get(8).unwrap();
        assert_eq!(b.load(Ordering::Relaxed), 5);
    }
}
