//! Read-only inspection of named segments, for tools such as the `ipc`
//! command: list what lies under `/dev/shm`, and take a snapshot of one
//! segment's header and payload.
//!
//! Nothing here writes to a segment, takes a lock on it or waits for a peer:
//! each object is opened read-only with `O_NOFOLLOW | O_NONBLOCK` (a symlink
//! is refused, a FIFO planted under the prefix opens at once and is then
//! refused as not regular), `fstat` must show a regular file, and its bytes
//! are read with `pread` into process-local memory. The object is never
//! mapped, so a peer that shrinks it cannot raise `SIGBUS` here, and a peer
//! writing it concurrently changes at most the numbers read. The header's
//! magic, version and recorded size are checked before any payload byte is
//! read, and nothing read is trusted: what a caller decodes from a
//! [`Snapshot`] must be bounds-checked against [`Snapshot::payload`] like any
//! other bytes from another process.
//!
//! ```
//! use multiproc_core::{inspect, name::unique_name, Kind, Segment};
//!
//! let name = unique_name("inspect-doc");
//! let seg = Segment::builder(Kind::BYTES).name(&name).size(64).create()?;
//! let listed = inspect::list(&name)?;
//! assert_eq!(listed.len(), 1);
//! assert_eq!(listed[0].name, name);
//! assert_eq!(listed[0].creator_status(), inspect::CreatorStatus::Alive);
//! let snap = inspect::snapshot(&name, 64)?;
//! assert!(snap.is_complete());
//! assert_eq!(snap.payload().len(), 64);
//! drop(seg); // the creator's drop unlinks the name
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::SegmentError;
use crate::header::{HeaderFields, HEADER_SIZE, HEADER_VERSION, MAGIC};
use crate::liveness::{Liveness, PidNamespace};
use crate::name;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

/// One entry of `/dev/shm` under the workspace prefix.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    /// The segment name (without the workspace prefix [`name::PREFIX`]).
    pub name: String,
    /// The object's size in bytes.
    pub size: u64,
    /// The owner's uid.
    pub uid: u32,
    /// The permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Last change of the object's status, seconds since the epoch (its
    /// creation, for a segment: nobody resizes one afterwards).
    pub ctime: i64,
    /// The header, if the object holds one of this workspace's layout.
    pub header: Option<HeaderFields>,
    /// Why there is no header, or why it is suspect (another program's
    /// object, another header version, a size that differs from the one
    /// recorded, an object that could not be read).
    pub problem: Option<String>,
}

/// How the creator recorded in a header is judged from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreatorStatus {
    /// The creator is alive (or its death cannot be proven).
    Alive,
    /// The creator is proven dead: a sweep removes the segment.
    Dead,
    /// The creator lived in another pid namespace: its pid means nothing
    /// here, so it is never judged (and never swept) from this one.
    OtherNamespace,
    /// The header is not one this build can judge (no header yet, another
    /// header version, another program's object).
    Unknown,
}

impl CreatorStatus {
    /// `"alive"`, `"dead"`, `"other-pid-namespace"` or `"unknown"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CreatorStatus::Alive => "alive",
            CreatorStatus::Dead => "dead",
            CreatorStatus::OtherNamespace => "other-pid-namespace",
            CreatorStatus::Unknown => "unknown",
        }
    }
}

impl SegmentInfo {
    /// How the creator is judged, by the rule [`crate::sweep`] uses.
    pub fn creator_status(&self) -> CreatorStatus {
        match &self.header {
            Some(h) if h.magic == MAGIC && h.header_version == HEADER_VERSION => {
                if h.creator_pid_ns != PidNamespace::current() {
                    CreatorStatus::OtherNamespace
                } else if h.creator.liveness() == Liveness::Dead {
                    CreatorStatus::Dead
                } else {
                    CreatorStatus::Alive
                }
            }
            _ => CreatorStatus::Unknown,
        }
    }
}

/// The header and the first bytes of one segment's payload, copied into
/// process-local memory aligned to 128 bytes (as a segment's payload is).
#[derive(Debug)]
pub struct Snapshot {
    /// The entry, with its header.
    pub info: SegmentInfo,
    /// The header (also in `info`), checked: this workspace's magic and
    /// header version, and a recorded size equal to the object's.
    pub header: HeaderFields,
    buf: Vec<Chunk>,
    len: usize,
}

#[repr(C, align(128))]
#[derive(Clone, Copy, Debug)]
struct Chunk([u8; 128]);

impl Snapshot {
    /// The payload bytes read (at most the `max_payload` asked for).
    pub fn payload(&self) -> &[u8] {
        // SAFETY: `buf` holds `buf.len() * 128 >= len` initialized bytes.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len) }
    }

    /// The payload bytes read, mutable: a tool may attach an object's
    /// checking code to this private copy, which is 128-byte aligned.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `payload`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<u8>(), self.len) }
    }

    /// Whether the whole payload recorded in the header was read.
    pub fn is_complete(&self) -> bool {
        self.len as u64 == self.header.payload_len
    }
}

/// Opens `/dev/shm/<file>` read-only, never following a symlink and never
/// blocking, and checks that it is a regular file.
fn open_entry(name: &str) -> Result<(File, std::fs::Metadata), SegmentError> {
    let io = |op: &'static str| {
        move |source: std::io::Error| match source.raw_os_error() {
            Some(libc::ENOENT) => SegmentError::NotFound { name: name.into() },
            Some(libc::EACCES) | Some(libc::EPERM) => {
                SegmentError::PermissionDenied { name: name.into() }
            }
            Some(libc::ELOOP) => SegmentError::NotRegular { name: name.into() },
            _ => SegmentError::Io {
                op,
                name: name.into(),
                source,
            },
        }
    };
    name::validate(name)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(name::path_of(name))
        .map_err(io("open"))?;
    let meta = file.metadata().map_err(io("fstat"))?;
    if !meta.file_type().is_file() {
        return Err(SegmentError::NotRegular { name: name.into() });
    }
    Ok((file, meta))
}

/// Reads the entry `name`: its status and header.
fn read_info(name: &str) -> Result<(SegmentInfo, File), SegmentError> {
    let (file, meta) = open_entry(name)?;
    let mut info = SegmentInfo {
        name: name.to_owned(),
        size: meta.size(),
        uid: meta.uid(),
        mode: meta.mode() & 0o7777,
        ctime: meta.ctime(),
        header: None,
        problem: None,
    };
    let mut bytes = [0u8; HEADER_SIZE];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => {
            let h = HeaderFields::from_bytes(&bytes);
            if h.magic == 0 {
                info.problem = Some("no header yet (being created, or left half-made)".into());
            } else if h.magic != MAGIC {
                info.problem = Some("not a segment of this workspace (bad magic)".into());
            } else {
                if h.header_version != HEADER_VERSION {
                    info.problem = Some(format!(
                        "header version {}, this build reads {HEADER_VERSION}",
                        h.header_version
                    ));
                } else if h.total_size != info.size {
                    info.problem = Some(format!(
                        "the header records {} bytes, the object has {}",
                        h.total_size, info.size
                    ));
                }
                info.header = Some(h);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            info.problem = Some("smaller than a header".into());
        }
        Err(e) => info.problem = Some(format!("cannot read the header: {e}")),
    }
    Ok((info, file))
}

/// Every object of `/dev/shm` named with the workspace prefix and then
/// `prefix` (`""` for all), sorted by name. An entry that vanishes while it
/// is examined is left out; one that cannot be opened (a symlink, a FIFO,
/// another user's object without read permission) is listed with the
/// reason in [`SegmentInfo::problem`] and what `lstat` tells of it.
///
/// # Errors
/// [`SegmentError::Io`] only if `/dev/shm` itself cannot be read.
pub fn list(prefix: &str) -> Result<Vec<SegmentInfo>, SegmentError> {
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
        if !name.starts_with(prefix) || name::validate(name).is_err() {
            continue;
        }
        match read_info(name) {
            Ok((info, _)) => out.push(info),
            Err(SegmentError::NotFound { .. }) => {}
            Err(e) => {
                // `symlink_metadata` never follows a link.
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                out.push(SegmentInfo {
                    name: name.to_owned(),
                    size: meta.size(),
                    uid: meta.uid(),
                    mode: meta.mode() & 0o7777,
                    ctime: meta.ctime(),
                    header: None,
                    problem: Some(e.to_string()),
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The header of segment `name` and at most `max_payload` bytes of its
/// payload, read without writing, locking or waiting.
///
/// # Errors
/// [`SegmentError::NotFound`], [`SegmentError::PermissionDenied`],
/// [`SegmentError::NotRegular`] (a symlink, a FIFO, a directory),
/// [`SegmentError::InvalidName`]; [`SegmentError::Header`] when the object
/// holds no header of this workspace's magic and version, or one whose
/// recorded sizes do not fit the object; [`SegmentError::Io`] when a read
/// fails.
pub fn snapshot(name: &str, max_payload: usize) -> Result<Snapshot, SegmentError> {
    let (info, file) = read_info(name)?;
    let header_error = |source| SegmentError::Header {
        name: name.into(),
        source,
    };
    let Some(h) = info.header else {
        return Err(header_error(crate::HeaderError::TooSmall {
            size: info.size,
            min: HEADER_SIZE as u64,
        }));
    };
    if h.header_version != HEADER_VERSION {
        return Err(header_error(crate::HeaderError::HeaderVersion {
            expected: HEADER_VERSION,
            found: h.header_version,
        }));
    }
    let room = info.size.saturating_sub(HEADER_SIZE as u64);
    if h.total_size != info.size || h.payload_len > room {
        return Err(header_error(crate::HeaderError::Size {
            header: h.total_size,
            actual: info.size,
        }));
    }
    let len = usize::try_from(h.payload_len)
        .unwrap_or(usize::MAX)
        .min(max_payload);
    let mut snap = Snapshot {
        info,
        header: h,
        buf: vec![Chunk([0; 128]); len.div_ceil(128)],
        len,
    };
    file.read_exact_at(snap.payload_mut(), HEADER_SIZE as u64)
        .map_err(|source| SegmentError::Io {
            op: "pread",
            name: name.into(),
            source,
        })?;
    Ok(snap)
}

/// Size and free space of the file system behind `/dev/shm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmUsage {
    /// Total bytes.
    pub total: u64,
    /// Bytes an unprivileged process may still allocate.
    pub available: u64,
}

/// The size and free space of `/dev/shm` (a container often gets a small
/// one: 64 MiB by default under Docker).
///
/// # Errors
/// The `statvfs` error, if `/dev/shm` cannot be examined.
pub fn shm_usage() -> std::io::Result<ShmUsage> {
    // SAFETY: an all-zero `statvfs` is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable struct.
    if unsafe { libc::statvfs(c"/dev/shm".as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frag = st.f_frsize as u64;
    Ok(ShmUsage {
        total: (st.f_blocks as u64).saturating_mul(frag),
        available: (st.f_bavail as u64).saturating_mul(frag),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Segment};

    #[test]
    fn a_segment_is_listed_and_read_without_writing() {
        let name = name::unique_name("inspect");
        let seg = Segment::builder(Kind::BYTES)
            .name(&name)
            .size(300)
            .create()
            .unwrap();
        let list = list(&name).unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].creator_status(), CreatorStatus::Alive);
        assert!(list[0].problem.is_none(), "{list:?}");
        let snap = snapshot(&name, 1 << 20).unwrap();
        assert_eq!(snap.header.type_tag, Kind::BYTES.tag);
        assert!(snap.is_complete());
        assert_eq!(snap.payload().len(), 300);
        assert_eq!(snap.payload().as_ptr() as usize % 128, 0);
        drop(seg);
        assert!(matches!(
            snapshot(&name, 0),
            Err(SegmentError::NotFound { .. })
        ));
    }

    #[test]
    fn planted_files_are_refused() {
        let name = name::unique_name("inspect-planted");
        let path = name::path_of(&name);
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let r = snapshot(&name, 16);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(r, Err(SegmentError::NotRegular { .. })), "{r:?}");
        std::fs::write(&path, b"not a segment").unwrap();
        let l = list(&name);
        std::fs::remove_file(&path).unwrap();
        let l = l.unwrap();
        assert_eq!(l[0].creator_status(), CreatorStatus::Unknown);
        assert!(l[0].problem.is_some());
    }

    #[test]
    fn usage_is_known() {
        let u = shm_usage().unwrap();
        assert!(u.total >= u.available);
    }
}
