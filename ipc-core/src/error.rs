//! Error types of `multiproc-core`.

use crate::header::HeaderError;
use crate::liveness::IdentityError;
use std::time::Duration;

/// Why creating, opening or mapping a segment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The name is not acceptable; `reason` says why.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The size is zero, overflows, or is larger than the system allows.
    #[error("invalid segment size {requested}: {reason}")]
    InvalidSize {
        /// The payload size asked for.
        requested: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A segment of that name exists and its creator is alive.
    #[error("segment {name:?} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// No segment of that name exists.
    #[error("segment {name:?} does not exist")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The operating system refused access.
    #[error("permission denied for segment {name:?}")]
    PermissionDenied {
        /// The name.
        name: String,
    },
    /// The segment belongs to another user.
    #[error("segment {name:?} is owned by uid {owner}, this process runs as uid {me}")]
    WrongOwner {
        /// The name.
        name: String,
        /// The owner's uid.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// The segment is writable by its group or by everybody.
    #[error("segment {name:?} has mode {mode:o}: group- or world-writable segments are refused")]
    InsecureMode {
        /// The name.
        name: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The name is not a plain shared-memory object (a symlink, a directory).
    #[error("segment {name:?} is not a regular shared-memory object")]
    NotRegular {
        /// The name.
        name: String,
    },
    /// A descriptor received from another process (inherited, or passed over
    /// a socket) is not a memfd sealed against resizing: its sender could
    /// shrink it under the mapping and make this process die of `SIGBUS`.
    #[error(
        "segment {name:?}: the descriptor is not sealed against resizing \
         (F_SEAL_SHRINK and F_SEAL_GROW), so its sender could shrink it under \
         the mapping; pass an anonymous segment of this workspace, or use \
         Segment::from_fd_unsealed if the sender is trusted"
    )]
    Unsealed {
        /// `<fd N>`, the descriptor's number when it was refused.
        name: String,
    },
    /// The segment is larger than the memory this process can still take:
    /// the machine's available memory or its memory cgroup's room (see
    /// [`crate::memory`]). Nothing was allocated.
    #[error(
        "a segment of {size} bytes does not fit in {limit}, which has {available} bytes \
         free; ask for less, or free memory or raise that limit"
    )]
    InsufficientMemory {
        /// The total size asked for (header included, whole pages).
        size: usize,
        /// The bytes free under `limit` when it was checked.
        available: u64,
        /// The limit it did not fit in.
        limit: crate::memory::MemoryLimit,
    },
    /// `/dev/shm` (or the memory cgroup) has no room for the segment.
    #[error("no space left for a segment of {size} bytes (is /dev/shm full?)")]
    NoSpace {
        /// The total size that did not fit.
        size: usize,
    },
    /// The header is not what the caller expects.
    #[error("segment {name:?}: {source}")]
    Header {
        /// The name (or `<fd N>` for an unnamed segment).
        name: String,
        /// Which field is wrong.
        #[source]
        source: HeaderError,
    },
    /// The creator did not mark the segment ready in time.
    #[error("segment {name:?} did not become ready within {waited:?}")]
    NotReady {
        /// The name.
        name: String,
        /// How long the opener waited.
        waited: Duration,
    },
    /// The creator died before the segment was ready.
    #[error("segment {name:?}: its creator (pid {pid}) died before the segment was ready")]
    CreatorDied {
        /// The name.
        name: String,
        /// The dead creator's pid.
        pid: u32,
    },
    /// The segment was poisoned and must not be used.
    #[error("segment {name:?} is poisoned")]
    Poisoned {
        /// The name.
        name: String,
    },
    /// Another process is reclaiming the stale segment of that name right now.
    #[error("segment {name:?} is being reclaimed by another process; try again")]
    Busy {
        /// The name.
        name: String,
    },
    /// The segment was created in another pid namespace (another container
    /// sharing `/dev/shm`): pids and start times recorded there mean nothing
    /// here, so no process of one namespace could tell whether one of the
    /// other died. Such segments are refused, never judged.
    #[error(
        "segment {name:?} was created in another pid namespace ({creator}; this \
         process is in {mine}): peers must share a pid namespace; use a segment \
         created in this one"
    )]
    ForeignPidNamespace {
        /// The name (or `<fd N>`).
        name: String,
        /// The creator's pid namespace, as recorded in the header.
        creator: crate::liveness::PidNamespace,
        /// This process's pid namespace.
        mine: crate::liveness::PidNamespace,
    },
    /// This process could not learn its own identity, which a creator
    /// records in the header; nothing was created.
    #[error("cannot create segment {name:?}: {source}")]
    UnknownIdentity {
        /// The name (or `<anonymous>`).
        name: String,
        /// Why the identity is unknown.
        #[source]
        source: IdentityError,
    },
    /// Any other operating-system error, with the call that failed.
    #[error("{op} failed for segment {name:?}: {source}")]
    Io {
        /// The failing call (`shm_open`, `mmap`, ...).
        op: &'static str,
        /// The name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// An offset or range that does not fit in its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetError {
    /// `offset + len` passes the end of the region (or overflows).
    #[error("range {offset}+{len} is outside a region of {size} bytes")]
    OutOfBounds {
        /// The offset.
        offset: u64,
        /// The length.
        len: u64,
        /// The region's size.
        size: u64,
    },
    /// The offset is not aligned for the type read there.
    #[error("offset {offset} is not aligned to {align}")]
    Misaligned {
        /// The offset.
        offset: u64,
        /// The alignment required.
        align: u64,
    },
}
