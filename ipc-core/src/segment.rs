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
use crate::header::{Kind, Peek, SegmentHeader, State, HEADER_SIZE, HEADER_VERSION, MAGIC};
use crate::liveness::{Liveness, PidNamespace, ProcessId};
use crate::name;
use memmap2::{MmapOptions, MmapRaw};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long [`SegmentBuilder::open`] waits for the creator to mark a segment
/// ready, unless [`SegmentBuilder::open_timeout`] says otherwise.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// A named object with no header yet is presumed to belong to a creator that
/// is still sizing it for this long; after that it counts as stale.
const INIT_GRACE: Duration = Duration::from_secs(2);

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
    /// use ipc_core::{Kind, Segment};
    /// let seg = Segment::builder(Kind::BYTES).size(4096).create()?; // anonymous
    /// assert!(seg.payload_len() >= 4096);
    /// # Ok::<(), ipc_core::SegmentError>(())
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

    /// Maps a segment from a file descriptor (inherited from a parent or
    /// received over a socket) and checks its header against `kind`.
    ///
    /// The descriptor must be sealed against shrinking and growing
    /// (`F_SEAL_SHRINK | F_SEAL_GROW`), as every anonymous segment of this
    /// workspace is: otherwise whoever else holds it could shrink it under
    /// the mapping, and the next access here would die of `SIGBUS`.
    ///
    /// # Errors
    /// [`SegmentError::Unsealed`] for a descriptor without those seals (a
    /// plain file, an unsealed memfd, a named segment's descriptor),
    /// [`SegmentError::Header`] for one that holds something else, or the
    /// other errors of [`SegmentBuilder::open`].
    pub fn from_fd(fd: OwnedFd, kind: Kind) -> Result<Segment, SegmentError> {
        let label = format!("<fd {}>", fd.as_raw_fd());
        check_sealed(&fd, &label)?;
        open_fd(fd, &label, None, None, kind, 0, false, DEFAULT_OPEN_TIMEOUT)
    }

    /// [`Segment::from_fd`] without the seal check: maps a descriptor that
    /// is not sealed against resizing (a named segment's descriptor, a file).
    ///
    /// **The risk is the caller's**: any process that holds the descriptor
    /// (or, for a named segment, can open its name) may shrink the object,
    /// and this process then dies of `SIGBUS` at its next access past the new
    /// end, in whatever code touches the segment. Use it only when every
    /// such process is trusted.
    ///
    /// # Errors
    /// As [`Segment::from_fd`], but never [`SegmentError::Unsealed`].
    pub fn from_fd_unsealed(fd: OwnedFd, kind: Kind) -> Result<Segment, SegmentError> {
        let label = format!("<fd {}>", fd.as_raw_fd());
        open_fd(fd, &label, None, None, kind, 0, false, DEFAULT_OPEN_TIMEOUT)
    }

    /// Sends this segment's file descriptor over a connected Unix socket
    /// (`SCM_RIGHTS`); the peer maps it with [`Segment::receive`].
    pub fn send_over(&self, sock: &UnixStream) -> io::Result<()> {
        crate::fdpass::send_fds(sock, &self.kind.tag.to_le_bytes(), &[self.fd.as_fd()])
    }

    /// Receives a segment sent with [`Segment::send_over`] and checks it as
    /// [`Segment::from_fd`] does (seals included).
    ///
    /// # Errors
    /// [`SegmentError::Io`] if nothing (or no descriptor) arrives, else as
    /// [`Segment::from_fd`]: [`SegmentError::Unsealed`] for a descriptor
    /// not sealed against resizing.
    pub fn receive(sock: &UnixStream, kind: Kind) -> Result<Segment, SegmentError> {
        let mut buf = [0u8; 8];
        let (_, mut fds) =
            crate::fdpass::recv_fds(sock, &mut buf, 1).map_err(|source| SegmentError::Io {
                op: "recvmsg",
                name: "<socket>".into(),
                source,
            })?;
        let fd = fds.pop().ok_or_else(|| SegmentError::Io {
            op: "recvmsg",
            name: "<socket>".into(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "no file descriptor received"),
        })?;
        Segment::from_fd(fd, kind)
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
    pub fn ptr_at<T: crate::Shareable>(&self, offset: u64) -> Result<NonNull<T>, OffsetError> {
        let range = self.check_range(offset, std::mem::size_of::<T>() as u64)?;
        let align = std::mem::align_of::<T>() as u64;
        if offset % align != 0 {
            return Err(OffsetError::Misaligned { offset, align });
        }
        // SAFETY: `range` lies inside the payload, which lies inside the
        // mapping; the payload start is 128-aligned and `offset` is a multiple
        // of `align_of::<T>()` (≤ 128 for any type placed here).
        Ok(unsafe { self.payload_ptr().add(range.start).cast() })
    }

    /// A shared reference to a `T` at `offset`, for types whose every field
    /// is safe to share while other processes write it (atomics).
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
    /// anonymous `memfd`. See [`name::validate`].
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

    /// Creates the segment with a zeroed payload.
    pub fn create(self) -> Result<Segment, SegmentError> {
        self.create_with(|_| {})
    }

    /// Creates the segment and runs `init` on it before marking it ready, so
    /// no opener sees a half-initialized payload. If `init` panics the
    /// segment is poisoned and unlinked, and the panic goes on.
    ///
    /// # Errors
    /// [`SegmentError::InvalidName`], [`SegmentError::InvalidSize`],
    /// [`SegmentError::AlreadyExists`] (a live creator holds the name),
    /// [`SegmentError::NoSpace`] (`/dev/shm` is full),
    /// [`SegmentError::InsufficientMemory`] (more than the machine or the
    /// memory cgroup can still give; see [`crate::memory`]),
    /// [`SegmentError::Busy`],
    /// [`SegmentError::UnknownIdentity`] (this process cannot learn the
    /// identity it must record as creator), or an OS error.
    pub fn create_with(self, init: impl FnOnce(&Segment)) -> Result<Segment, SegmentError> {
        self.create_inner(&mut Some(init))
    }

    /// Creates the segment; `init` is taken out of its `Option` only once the
    /// segment exists, so a caller that retries can pass it again.
    fn create_inner<F: FnOnce(&Segment)>(
        &self,
        init: &mut Option<F>,
    ) -> Result<Segment, SegmentError> {
        let payload = self.size.unwrap_or(0);
        let total = total_size(payload)?;
        if self.mode & !0o755 != 0 {
            let name = self.name.clone().unwrap_or_default();
            return Err(SegmentError::InsecureMode {
                name,
                mode: self.mode,
            });
        }
        check_memory(total, self.name.is_some())?;
        // Known before anything exists, so a failure leaves nothing behind.
        let me = ProcessId::current().map_err(|source| SegmentError::UnknownIdentity {
            name: self.name.clone().unwrap_or_else(|| "<anonymous>".into()),
            source,
        })?;
        let ns = PidNamespace::current();
        let (fd, os_name) = match &self.name {
            None => (create_memfd(&self.kind, total)?, None),
            Some(n) => {
                let os = name::os_name(n)?;
                (create_named(n, &os, self.mode, total)?, Some(os))
            }
        };
        let label = self.name.clone().unwrap_or_else(|| "<anonymous>".into());
        let map = match map_fd(&fd, total, self.prefault) {
            Ok(m) => m,
            Err(source) => {
                if let Some(os) = &os_name {
                    // SAFETY: valid NUL-terminated name, just created by us.
                    unsafe { libc::shm_unlink(os.as_ptr()) };
                }
                return Err(SegmentError::Io {
                    op: "mmap",
                    name: label,
                    source,
                });
            }
        };
        let seg = Segment {
            map,
            fd,
            name: self.name.clone(),
            os_name,
            creator_pid: Some(std::process::id()),
            unlinked: AtomicBool::new(false),
            kind: self.kind,
            payload_len: payload,
        };
        seg.header()
            .write_initializing(me, ns, &self.kind, total as u64, payload as u64);
        if let Some(f) = init.take() {
            if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&seg))) {
                seg.poison();
                drop(seg);
                std::panic::resume_unwind(panic);
            }
        }
        seg.header().mark_ready();
        log::debug!(
            "segment {label:?} created: {total} bytes, kind {}",
            self.kind.name
        );
        Ok(seg)
    }

    /// Opens an existing named segment: waits (up to the open timeout) for
    /// it to be ready, checks owner, mode and header.
    ///
    /// # Errors
    /// [`SegmentError::NotFound`], [`SegmentError::WrongOwner`],
    /// [`SegmentError::InsecureMode`], [`SegmentError::Header`] naming the
    /// wrong field, [`SegmentError::NotReady`], [`SegmentError::CreatorDied`],
    /// [`SegmentError::Poisoned`], [`SegmentError::ForeignPidNamespace`] for
    /// a segment created in another pid namespace, or an OS error.
    pub fn open(self) -> Result<Segment, SegmentError> {
        self.open_inner()
    }

    fn open_inner(&self) -> Result<Segment, SegmentError> {
        let Some(n) = self.name.clone() else {
            return Err(SegmentError::InvalidName {
                name: String::new(),
                reason: "open needs a name",
            });
        };
        let os = name::os_name(&n)?;
        let fd = shm_open(&os, libc::O_RDWR, 0).map_err(|e| open_error(&n, "shm_open", e))?;
        check_owner_and_mode(&fd, &n)?;
        let min = self.size.unwrap_or(0) as u64;
        open_fd(
            fd,
            &n,
            Some(n.clone()),
            Some(os),
            self.kind,
            min,
            self.prefault,
            self.open_timeout,
        )
    }

    /// Opens the named segment if it exists, creates it otherwise (with a
    /// zeroed payload). Safe when several processes race: exactly one
    /// creates, the others open what it created. [`Segment::is_creator`] says
    /// which happened. A segment whose creator died is reclaimed and created
    /// afresh.
    pub fn open_or_create(self) -> Result<Segment, SegmentError> {
        self.open_or_create_with(|_| {})
    }

    /// [`open_or_create`](Self::open_or_create) with an initializer that runs
    /// only if this call creates the segment.
    pub fn open_or_create_with(self, init: impl FnOnce(&Segment)) -> Result<Segment, SegmentError> {
        let mut init = Some(init);
        for _ in 0..64 {
            match self.create_inner(&mut init) {
                Ok(seg) => return Ok(seg),
                Err(SegmentError::AlreadyExists { .. }) | Err(SegmentError::Busy { .. }) => {}
                Err(e) => return Err(e),
            }
            match self.open_inner() {
                Ok(seg) => return Ok(seg),
                // Removed (or reclaimed) between our create and open: again.
                Err(SegmentError::NotFound { .. }) | Err(SegmentError::Busy { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(SegmentError::Busy {
            name: self.name.clone().unwrap_or_default(),
        })
    }
}

/// Refuses a segment of `total` bytes that the machine, the memory cgroup
/// or (for a named one) `/dev/shm` has no room for, before anything is
/// allocated: `posix_fallocate` would otherwise take pages until the OOM
/// killer ends this process. See [`crate::memory`] for what stays the
/// caller's risk.
fn check_memory(total: usize, named: bool) -> Result<(), SegmentError> {
    let Some((free, limit)) = crate::memory::shortfall(total as u64, named) else {
        return Ok(());
    };
    Err(match limit {
        crate::memory::MemoryLimit::DevShm => SegmentError::NoSpace { size: total },
        limit => SegmentError::InsufficientMemory {
            size: total,
            available: free,
            limit,
        },
    })
}

/// `HEADER_SIZE + payload`, rounded up to whole pages, checked.
fn total_size(payload: usize) -> Result<usize, SegmentError> {
    if payload == 0 {
        return Err(SegmentError::InvalidSize {
            requested: 0,
            reason: "the size is zero",
        });
    }
    let page = page_size();
    payload
        .checked_add(HEADER_SIZE + page - 1)
        .map(|t| t / page * page)
        .filter(|&t| t <= isize::MAX as usize / 2)
        .ok_or(SegmentError::InvalidSize {
            requested: payload,
            reason: "the size is larger than the system allows",
        })
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// `shm_open` that never follows a symlink and never blocks: a FIFO a peer
/// put at the name opens at once (and is then refused as not regular).
fn shm_open(os: &CString, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `os` is a valid NUL-terminated string; shm_open returns a new
    // descriptor we take ownership of, or -1.
    let fd = unsafe {
        libc::shm_open(
            os.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            mode as libc::mode_t,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_error(name: &str, op: &'static str, e: io::Error) -> SegmentError {
    let name = name.to_owned();
    match e.raw_os_error() {
        Some(libc::ENOENT) => SegmentError::NotFound { name },
        Some(libc::EEXIST) => SegmentError::AlreadyExists { name },
        Some(libc::EACCES) | Some(libc::EPERM) => SegmentError::PermissionDenied { name },
        Some(libc::ELOOP) => SegmentError::NotRegular { name },
        Some(libc::ENAMETOOLONG) => SegmentError::InvalidName {
            name,
            reason: "the name is too long",
        },
        _ => SegmentError::Io {
            op,
            name,
            source: e,
        },
    }
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the duration of the call; `st` is writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// The seals a descriptor from another process must carry: without them
/// its sender could resize the object under our mapping.
const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;

/// Refuses a descriptor that is not sealed against shrinking and growing
/// (a file other than a sealable memfd has no seals at all).
fn check_sealed(fd: &OwnedFd, label: &str) -> Result<(), SegmentError> {
    // SAFETY: F_GET_SEALS only reads the descriptor's seals; it fails
    // (EINVAL) on a file that cannot carry any.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & REQUIRED_SEALS != REQUIRED_SEALS {
        return Err(SegmentError::Unsealed { name: label.into() });
    }
    Ok(())
}

fn check_owner_and_mode(fd: &OwnedFd, name: &str) -> Result<(), SegmentError> {
    let st = fstat(fd).map_err(|source| SegmentError::Io {
        op: "fstat",
        name: name.into(),
        source,
    })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(SegmentError::NotRegular { name: name.into() });
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if st.st_uid != me {
        return Err(SegmentError::WrongOwner {
            name: name.into(),
            owner: st.st_uid,
            me,
        });
    }
    let mode = st.st_mode & 0o777;
    if mode & 0o022 != 0 {
        return Err(SegmentError::InsecureMode {
            name: name.into(),
            mode,
        });
    }
    Ok(())
}

fn size_fd(fd: &OwnedFd, total: usize, label: &str) -> Result<(), SegmentError> {
    // SAFETY: `fd` is an open descriptor we own.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), total as libc::off_t) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EFBIG) | Some(libc::EINVAL) => SegmentError::InvalidSize {
                requested: total,
                reason: "the size is larger than the system allows",
            },
            Some(libc::ENOSPC) | Some(libc::ENOMEM) => SegmentError::NoSpace { size: total },
            _ => SegmentError::Io {
                op: "ftruncate",
                name: label.into(),
                source: e,
            },
        });
    }
    // SAFETY: as above; posix_fallocate returns an errno value, not -1.
    let r = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, total as libc::off_t) };
    match r {
        0 => Ok(()),
        libc::ENOSPC | libc::ENOMEM => Err(SegmentError::NoSpace { size: total }),
        libc::EFBIG => Err(SegmentError::InvalidSize {
            requested: total,
            reason: "the size is larger than the system allows",
        }),
        // A filesystem without fallocate: the pages are allocated on first touch.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(SegmentError::Io {
            op: "posix_fallocate",
            name: label.into(),
            source: io::Error::from_raw_os_error(e),
        }),
    }
}

fn create_memfd(kind: &Kind, total: usize) -> Result<OwnedFd, SegmentError> {
    let label = "<anonymous>";
    let cname = CString::new(format!("ipc:{}", kind.name).replace('\0', "?"))
        .unwrap_or_else(|_| CString::from(c"ipc"));
    // SAFETY: `cname` is a valid NUL-terminated string; memfd_create returns
    // a new descriptor or -1.
    let raw =
        unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(SegmentError::Io {
            op: "memfd_create",
            name: label.into(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    size_fd(&fd, total, label)?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: `fd` is an open memfd created with MFD_ALLOW_SEALING.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(SegmentError::Io {
            op: "fcntl(F_ADD_SEALS)",
            name: label.into(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

fn create_named(
    name: &str,
    os: &CString,
    mode: u32,
    total: usize,
) -> Result<OwnedFd, SegmentError> {
    let mut busy = 0;
    let fd = loop {
        match shm_open(os, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, mode) {
            Ok(fd) => break fd,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => match reclaim_if_stale(name, os)? {
                Reclaim::Removed => continue,
                Reclaim::Live => return Err(SegmentError::AlreadyExists { name: name.into() }),
                Reclaim::Busy if busy < 100 => {
                    busy += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Reclaim::Busy => return Err(SegmentError::Busy { name: name.into() }),
            },
            Err(e) => return Err(open_error(name, "shm_open", e)),
        }
    };
    let fail = |e: SegmentError| {
        // SAFETY: valid NUL-terminated name of the object we just created.
        unsafe { libc::shm_unlink(os.as_ptr()) };
        e
    };
    // The umask may have cleared bits of `mode`; set exactly what was asked.
    // SAFETY: `fd` is open and ours.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } != 0 {
        return Err(fail(SegmentError::Io {
            op: "fchmod",
            name: name.into(),
            source: io::Error::last_os_error(),
        }));
    }
    size_fd(&fd, total, name).map_err(fail)?;
    Ok(fd)
}

fn map_fd(fd: &OwnedFd, len: usize, prefault: bool) -> io::Result<MmapRaw> {
    let mut opts = MmapOptions::new();
    opts.len(len);
    if prefault {
        opts.populate();
    }
    opts.map_raw(fd.as_raw_fd())
}

/// Maps `fd` once it is ready, and checks its header.
#[allow(clippy::too_many_arguments)]
fn open_fd(
    fd: OwnedFd,
    label: &str,
    name: Option<String>,
    os_name: Option<CString>,
    kind: Kind,
    min_payload: u64,
    prefault: bool,
    timeout: Duration,
) -> Result<Segment, SegmentError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    let header_err = |source| SegmentError::Header {
        name: label.to_owned(),
        source,
    };
    loop {
        let st = fstat(&fd).map_err(|source| SegmentError::Io {
            op: "fstat",
            name: label.into(),
            source,
        })?;
        let size = st.st_size.max(0) as u64;
        if size >= HEADER_SIZE as u64 {
            // The header alone first: nothing the object claims (its size
            // included) is acted on before the header checks out.
            let head = map_fd(&fd, HEADER_SIZE, false).map_err(|source| SegmentError::Io {
                op: "mmap",
                name: label.into(),
                source,
            })?;
            // SAFETY: the mapping is HEADER_SIZE bytes and page-aligned;
            // every header field is an atomic.
            let header = unsafe { &*(head.as_mut_ptr() as *const SegmentHeader) };
            let magic = header.magic();
            if magic != 0 && magic != MAGIC {
                return Err(header_err(crate::header::HeaderError::BadMagic {
                    found: magic,
                }));
            }
            if magic == MAGIC {
                let state = header.state().map_err(header_err)?;
                if state != State::Empty {
                    // Every other field is written before the state leaves
                    // Empty; judge nothing recorded by a creator of another
                    // layout or another pid namespace.
                    let version = header.header_version();
                    if version != HEADER_VERSION {
                        return Err(header_err(crate::header::HeaderError::HeaderVersion {
                            expected: HEADER_VERSION,
                            found: version,
                        }));
                    }
                    check_pid_namespace(header, label)?;
                }
                match state {
                    State::Ready => {
                        header
                            .validate(&kind, size, min_payload)
                            .map_err(header_err)?;
                        let payload_len = header.payload_len() as usize;
                        let map = map_fd(&fd, size as usize, prefault).map_err(|source| {
                            SegmentError::Io {
                                op: "mmap",
                                name: label.into(),
                                source,
                            }
                        })?;
                        log::debug!("segment {label:?} opened: {size} bytes, kind {}", kind.name);
                        return Ok(Segment {
                            map,
                            fd,
                            name,
                            os_name,
                            creator_pid: None,
                            unlinked: AtomicBool::new(false),
                            kind,
                            payload_len,
                        });
                    }
                    State::Poisoned => return Err(SegmentError::Poisoned { name: label.into() }),
                    // Nothing is recorded yet (only a hostile writer makes
                    // this state with the magic set): keep waiting.
                    State::Empty => {}
                    State::Initializing => {
                        let creator = header.creator();
                        if creator.pid != 0 && creator.liveness() == Liveness::Dead {
                            return Err(SegmentError::CreatorDied {
                                name: label.into(),
                                pid: creator.pid,
                            });
                        }
                    }
                }
            }
        }
        if start.elapsed() >= timeout {
            return Err(SegmentError::NotReady {
                name: label.into(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Refuses a segment whose creator lives in another pid namespace than
/// ours: neither side could tell whether the other died.
fn check_pid_namespace(header: &SegmentHeader, label: &str) -> Result<(), SegmentError> {
    let theirs = header.creator_pid_namespace();
    let mine = PidNamespace::current();
    if theirs != mine {
        return Err(SegmentError::ForeignPidNamespace {
            name: label.into(),
            creator: theirs,
            mine,
        });
    }
    Ok(())
}

/// `lstat` of `path`: opens nothing, so it neither blocks on a FIFO nor
/// needs a free descriptor, and does not follow a symlink.
fn lstat(path: &CString) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated; `st` is writable.
    if unsafe { libc::lstat(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// How often a check of a name that failed for a transient reason is tried.
const NAME_CHECK_TRIES: u32 = 4;

/// Whether the name `name` (under `/dev/shm`) is, right now, the very
/// regular file `fd` refers to: same device and inode, by `lstat` of the
/// path and `fstat` of the descriptor we already hold, so no descriptor is
/// opened. `Ok(false)` when the name is gone or is anything else. An error
/// means it could not be told (retried a few times first).
fn name_refers_to(name: &str, fd: &OwnedFd) -> io::Result<bool> {
    let path = CString::new(name::path_of(name).into_os_string().into_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name holds NUL"))?;
    let mine = fstat(fd)?;
    let mut tries = 0;
    loop {
        tries += 1;
        match lstat(&path) {
            Ok(st) => {
                return Ok(st.st_mode & libc::S_IFMT == libc::S_IFREG
                    && st.st_dev == mine.st_dev
                    && st.st_ino == mine.st_ino)
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(false)
            }
            Err(e) if tries < NAME_CHECK_TRIES => {
                log::debug!("lstat of segment {name:?} failed ({e}); trying again");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

enum Reclaim {
    /// The stale object was removed (or had already gone): create again.
    Removed,
    /// A live creator (or a foreign object) holds the name.
    Live,
    /// Another process is deciding about the same object right now.
    Busy,
}

/// Removes the object named `os` if its creator is dead. Reclaimers take an
/// exclusive `flock` on the object first, and check that the name still
/// refers to the object they examined before unlinking, so two racing
/// reclaimers never remove a segment a third process has just created.
fn reclaim_if_stale(name: &str, os: &CString) -> Result<Reclaim, SegmentError> {
    let fd = match shm_open(os, libc::O_RDWR, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Reclaim::Removed),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Ok(Reclaim::Live),
        Err(e) => return Err(open_error(name, "shm_open", e)),
    };
    let st = fstat(&fd).map_err(|source| SegmentError::Io {
        op: "fstat",
        name: name.into(),
        source,
    })?;
    // SAFETY: geteuid cannot fail.
    if st.st_uid != unsafe { libc::geteuid() } || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(Reclaim::Live);
    }
    // SAFETY: `fd` is open; flock has no memory-safety preconditions.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(Reclaim::Busy);
    }
    let mut bytes = [0u8; HEADER_SIZE];
    // SAFETY: `bytes` is writable for HEADER_SIZE bytes; pread never reads
    // past the end of the object (it returns a short count instead).
    let n = unsafe { libc::pread(fd.as_raw_fd(), bytes.as_mut_ptr().cast(), HEADER_SIZE, 0) };
    let peek = Peek::from_bytes(&bytes);
    let stale = if n < HEADER_SIZE as isize || peek.magic == 0 {
        let age = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|now| now.as_secs().saturating_sub(st.st_ctime.max(0) as u64))
            .unwrap_or(0);
        age >= INIT_GRACE.as_secs()
    } else if peek.magic == MAGIC {
        // A creator of another header layout, or of another pid namespace,
        // cannot be judged from here: its segment is left alone.
        peek.version == HEADER_VERSION
            && peek.pid_ns == PidNamespace::current()
            && peek.creator.liveness() == Liveness::Dead
    } else {
        false
    };
    if !stale {
        return Ok(Reclaim::Live);
    }
    match name_refers_to(name, &fd) {
        Ok(true) => {
            // SAFETY: valid NUL-terminated name.
            unsafe { libc::shm_unlink(os.as_ptr()) };
            log::info!(
                "segment {name:?} reclaimed: its creator (pid {}) is dead",
                peek.creator.pid
            );
        }
        Ok(false) => {}
        Err(source) => {
            return Err(SegmentError::Io {
                op: "lstat",
                name: name.into(),
                source,
            })
        }
    }
    Ok(Reclaim::Removed)
}

/// Removes every stale segment of this workspace whose name starts with
/// `prefix` (`""` for all): those whose recorded creator is dead, and those
/// never initialized for longer than a grace period. Segments of live
/// creators, segments made in another pid namespace or with another header
/// version (whose creators cannot be judged from here) and other programs'
/// objects are left alone, and so is anything
/// that is not a regular file of this user (a symlink, a directory, a FIFO
/// someone put under the prefix): the sweep skips it and goes on. An entry
/// that cannot be examined is skipped too, with a warning through the `log`
/// facade.
///
/// Returns the names removed.
///
/// # Errors
/// [`SegmentError::Io`] only if `/dev/shm` itself cannot be read.
pub fn sweep(prefix: &str) -> Result<Vec<String>, SegmentError> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|source| SegmentError::Io {
        op: "read_dir",
        name: "/dev/shm".into(),
        source,
    })?;
    let mut removed = Vec::new();
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(name) = file.strip_prefix(name::PREFIX) else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        let Ok(os) = name::os_name(name) else {
            continue;
        };
        // Only regular files can be segments; the file type comes from the
        // directory entry (or an lstat), never from following a link.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            log::debug!("sweep: skipping {file:?}, which is not a regular file");
            continue;
        }
        match reclaim_if_stale(name, &os) {
            Ok(Reclaim::Removed) => removed.push(name.to_owned()),
            Ok(Reclaim::Live) | Ok(Reclaim::Busy) => {}
            Err(e) => log::warn!("sweep: skipping {file:?}: {e}"),
        }
    }
    Ok(removed)
}

/// Raw descriptor of a segment, for passing to a child.
impl AsRawFd for Segment {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
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
