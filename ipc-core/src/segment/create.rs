//! Creating a segment: sized, checked against the memory limits, and
//! initialized before anyone may open it.

use super::os::*;
use super::reclaim::{reclaim_if_stale, Reclaim};
use super::{Segment, SegmentBuilder};
use crate::error::SegmentError;
use crate::header::{Kind, HEADER_SIZE};
use crate::liveness::{PidNamespace, ProcessId};
use crate::name;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

impl SegmentBuilder {
    /// Creates the segment with a zeroed payload.
    ///
    /// # Errors
    /// As [`SegmentBuilder::create_with`].
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

    /// Opens the named segment if it exists, creates it otherwise (with a
    /// zeroed payload). Safe when several processes race: exactly one
    /// creates, the others open what it created. [`Segment::is_creator`] says
    /// which happened. A segment whose creator died is reclaimed and created
    /// afresh.
    ///
    /// # Errors
    /// As [`SegmentBuilder::create_with`] and [`SegmentBuilder::open`];
    /// [`SegmentError::Busy`] if the name kept being removed and recreated by
    /// others.
    pub fn open_or_create(self) -> Result<Segment, SegmentError> {
        self.open_or_create_with(|_| {})
    }

    /// [`open_or_create`](Self::open_or_create) with an initializer that runs
    /// only if this call creates the segment.
    ///
    /// # Errors
    /// As [`open_or_create`](Self::open_or_create).
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
pub(super) fn check_memory(total: usize, named: bool) -> Result<(), SegmentError> {
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
pub(super) fn total_size(payload: usize) -> Result<usize, SegmentError> {
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
pub(super) fn size_fd(fd: &OwnedFd, total: usize, label: &str) -> Result<(), SegmentError> {
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
pub(super) fn create_memfd(kind: &Kind, total: usize) -> Result<OwnedFd, SegmentError> {
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
pub(super) fn create_named(
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
