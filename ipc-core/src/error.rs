//! Error types of `ipc-core`.

use crate::header::HeaderError;
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

/// Why starting, signalling or joining a child process failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `fork`, `exec` or `pidfd_open` failed.
    #[error("could not start process {name:?}: {source}")]
    Start {
        /// The process's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The child has already exited (and was reaped), so it cannot be
    /// signalled: its pid may belong to another process by now.
    #[error("process {name:?} (pid {pid}) has already exited with {status}")]
    AlreadyExited {
        /// The process's name.
        name: String,
        /// Its pid, when it ran.
        pid: u32,
        /// How it exited.
        status: crate::process::ExitStatus,
    },
    /// The operation is not valid here (bad arguments, wrong process).
    #[error("invalid process operation: {0}")]
    Invalid(&'static str),
    /// [`Builder::fork`](crate::process::Builder::fork) was called in a
    /// process with other threads (or whose thread count cannot be read):
    /// the child would be a copy in which locks held by those threads stay
    /// locked for ever.
    #[error(
        "refusing to fork a process with {} threads: a forked child could deadlock on a lock \
         another thread held; spawn instead, fork before starting threads, or see \
         Builder::fork_unchecked",
        match .threads { Some(n) => n.to_string(), None => "an unknown number of".to_string() }
    )]
    MultiThreaded {
        /// The threads of this process, if they could be counted.
        threads: Option<usize>,
    },
    /// This process was spawned by `ipc-core` but has not called
    /// [`init`](crate::process::init): it is running its parent's program
    /// from the top, and starting a process from there would do so again.
    #[error(
        "this process was spawned but its main did not call ipc_core::process::init() first; \
         call it as the first statement of main (in a test, first in the test)"
    )]
    NotInitialized,
    /// The spawn token in the environment could not be used (see
    /// [`init`](crate::process::init)).
    #[error("cannot run as a spawned child: {reason}")]
    BadSpawnToken {
        /// What is wrong with it.
        reason: String,
    },
    /// A spawned child exited without running its entry function.
    #[error(
        "process {name:?} (pid {pid}) exited with {status} without running its entry function: \
         its main must call ipc_core::process::init() as its first statement (the child printed \
         the reason on stderr)"
    )]
    EntryNotRun {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it exited.
        status: crate::process::ExitStatus,
    },
    /// The function of a child started with `start` panicked.
    #[error("process {name:?} (pid {pid}) panicked: {message}")]
    Panicked {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The panic's message.
        message: String,
    },
    /// A child started with `start` ended without a result: it was killed
    /// by a signal, or left by `std::process::exit` inside its function.
    #[error("process {name:?} (pid {pid}) ended with {status} before returning a result")]
    NoResult {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: crate::process::ExitStatus,
    },
    /// The arguments or the result of a child could not be encoded or
    /// decoded.
    #[error("process {name:?}: {reason}")]
    BadMessage {
        /// The process's name.
        name: String,
        /// What could not be encoded or decoded, and why.
        reason: String,
    },
    /// The entry function cannot be named to a child.
    #[error(transparent)]
    Entry(#[from] crate::entry::EntryError),
    /// Any other OS error, with the call that failed.
    #[error("{op} failed for process {name:?}: {source}")]
    Io {
        /// The failing call.
        op: &'static str,
        /// The process's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The calling process could not learn its own identity (pid and start
/// time): reading `/proc/self/stat` failed, most often because no file
/// descriptor was free. Nothing was recorded in its name; free a descriptor
/// (or make `/proc` readable) and try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityError {
    pub(crate) errno: i32,
}

impl IdentityError {
    /// The `errno` of the failed read (`EMFILE` when no descriptor was free).
    pub fn raw_os_error(&self) -> i32 {
        self.errno
    }
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this process cannot learn its own identity: reading /proc/self/stat failed ({}); \
             free a file descriptor (or make /proc readable) and try again",
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for IdentityError {}

impl From<IdentityError> for std::io::Error {
    fn from(e: IdentityError) -> Self {
        std::io::Error::new(std::io::Error::from_raw_os_error(e.errno).kind(), e)
    }
}
