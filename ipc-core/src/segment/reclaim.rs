//! Stale segments: reclaiming a dead creator's name and sweeping the
//! prefix.

use super::os::{fstat, name_refers_to, open_error, shm_open};
use crate::error::SegmentError;
use crate::header::{Peek, MAGIC};
use crate::header::{HEADER_SIZE, HEADER_VERSION};
use crate::liveness::{Liveness, PidNamespace};
use crate::name;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// A named object with no header yet is presumed to belong to a creator that
/// is still sizing it for this long; after that it counts as stale.
const INIT_GRACE: Duration = Duration::from_secs(2);

pub(super) enum Reclaim {
    /// The stale object was removed (or had already gone): create again.
    Removed,
    /// A live creator (or a foreign object) holds the name.
    Live,
    /// Another process is deciding about the same object right now.
    Busy,
}
/// The one decision of stale or not, shared by [`reclaim_if_stale`] and
/// [`sweep_dry_run`]: from the `n` header bytes read (`peek`) and the
/// object's `ctime` (seconds since the epoch).
///
/// An object with no header (short, or a zero magic) is stale once it is
/// older than [`INIT_GRACE`]. A header of this workspace is stale only when
/// it has this build's header layout, was written in the caller's pid
/// namespace and its creator is proven dead. Anything else (another
/// program's object, another layout, another namespace) is never stale.
fn is_stale(n: isize, peek: &Peek, ctime: i64) -> bool {
    if n < HEADER_SIZE as isize || peek.magic == 0 {
        let age = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|now| now.as_secs().saturating_sub(ctime.max(0) as u64))
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
    }
}

/// Removes the object named `os` if its creator is dead. Reclaimers take an
/// exclusive `flock` on the object first, and check that the name still
/// refers to the object they examined before unlinking, so two racing
/// reclaimers never remove a segment a third process has just created.
pub(super) fn reclaim_if_stale(name: &str, os: &CString) -> Result<Reclaim, SegmentError> {
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
    let stale = is_stale(n, &peek, st.st_ctime);
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
    let mut removed = Vec::new();
    for (name, os) in candidates(prefix)? {
        match reclaim_if_stale(&name, &os) {
            Ok(Reclaim::Removed) => removed.push(name),
            Ok(Reclaim::Live) | Ok(Reclaim::Busy) => {}
            Err(e) => log::warn!("sweep: skipping {name:?}: {e}"),
        }
    }
    Ok(removed)
}

/// The names [`sweep`]`(prefix)` would remove now, decided exactly as it
/// decides, without removing anything and without writing: each object is
/// opened read-only (never following a symlink, never blocking on a FIFO),
/// must be a regular file of this user, and only its header is read. No
/// lock is taken, so an object another process is reclaiming at the same
/// moment may be listed here and then be gone.
///
/// # Errors
/// [`SegmentError::Io`] only if `/dev/shm` itself cannot be read.
pub fn sweep_dry_run(prefix: &str) -> Result<Vec<String>, SegmentError> {
    let mut stale = Vec::new();
    for (name, os) in candidates(prefix)? {
        let Ok(fd) = shm_open(&os, libc::O_RDONLY, 0) else {
            continue;
        };
        let Ok(st) = fstat(&fd) else { continue };
        // SAFETY: geteuid cannot fail.
        if st.st_uid != unsafe { libc::geteuid() } || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        let mut bytes = [0u8; HEADER_SIZE];
        // SAFETY: as in `reclaim_if_stale`.
        let n = unsafe { libc::pread(fd.as_raw_fd(), bytes.as_mut_ptr().cast(), HEADER_SIZE, 0) };
        if is_stale(n, &Peek::from_bytes(&bytes), st.st_ctime) {
            stale.push(name);
        }
    }
    Ok(stale)
}

/// The regular files of `/dev/shm` named with the workspace prefix and then
/// `prefix`, as (segment name, `shm_open` name): what [`sweep`] considers.
fn candidates(prefix: &str) -> Result<Vec<(String, CString)>, SegmentError> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|source| SegmentError::Io {
        op: "read_dir",
        name: "/dev/shm".into(),
        source,
    })?;
    let mut out = Vec::new();
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
        out.push((name.to_owned(), os));
    }
    Ok(out)
}
