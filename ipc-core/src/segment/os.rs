//! The system calls behind segments: opening, checking and mapping
//! descriptors and names, without following or blocking on what a peer
//! planted.

use crate::error::SegmentError;
use crate::name;
use memmap2::{MmapOptions, MmapRaw};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

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
pub(super) fn shm_open(os: &CString, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
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
pub(super) fn open_error(name: &str, op: &'static str, e: io::Error) -> SegmentError {
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
pub(super) fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
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
pub(super) const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
/// Refuses a descriptor that is not sealed against shrinking and growing
/// (a file other than a sealable memfd has no seals at all).
pub(super) fn check_sealed(fd: &OwnedFd, label: &str) -> Result<(), SegmentError> {
    // SAFETY: F_GET_SEALS only reads the descriptor's seals; it fails
    // (EINVAL) on a file that cannot carry any.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & REQUIRED_SEALS != REQUIRED_SEALS {
        return Err(SegmentError::Unsealed { name: label.into() });
    }
    Ok(())
}
pub(super) fn check_owner_and_mode(fd: &OwnedFd, name: &str) -> Result<(), SegmentError> {
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
pub(super) fn map_fd(fd: &OwnedFd, len: usize, prefault: bool) -> io::Result<MmapRaw> {
    let mut opts = MmapOptions::new();
    opts.len(len);
    if prefault {
        opts.populate();
    }
    opts.map_raw(fd.as_raw_fd())
}
/// `lstat` of `path`: opens nothing, so it neither blocks on a FIFO nor
/// needs a free descriptor, and does not follow a symlink.
pub(super) fn lstat(path: &CString) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated; `st` is writable.
    if unsafe { libc::lstat(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}
/// How often a check of a name that failed for a transient reason is tried.
pub(super) const NAME_CHECK_TRIES: u32 = 4;
/// Whether the name `name` (under `/dev/shm`) is, right now, the very
/// regular file `fd` refers to: same device and inode, by `lstat` of the
/// path and `fstat` of the descriptor we already hold, so no descriptor is
/// opened. `Ok(false)` when the name is gone or is anything else. An error
/// means it could not be told (retried a few times first).
pub(super) fn name_refers_to(name: &str, fd: &OwnedFd) -> io::Result<bool> {
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
