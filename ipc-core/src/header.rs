//! The header at the start of every segment, and the identity of what a
//! segment holds.
//!
//! Layout (128 bytes, every field an atomic so a concurrent writer in another
//! process can never make a read undefined behaviour):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | [`MAGIC`]: this is a segment of this workspace |
//! | 8 | `header_version` | [`HEADER_VERSION`]: the layout of this header |
//! | 12 | `state` | [`State`]: initializing, ready, poisoned |
//! | 16 | `type_tag` | [`Kind::tag`]: what the payload holds |
//! | 24 | `layout_hash` | [`Kind::layout_hash`]: the layout of the payload |
//! | 32 | `type_version` | [`Kind::version`] |
//! | 36 | `abi` | [`ABI`]: architecture, pointer width, byte order, libc |
//! | 40 | `total_size` | size of the whole segment in bytes |
//! | 48 | `payload_len` | bytes the creator asked for |
//! | 56 | `creator_pid` | pid of the creator |
//! | 64 | `creator_start` | start time of the creator (clock ticks since boot) |
//! | 72 | `creator_pid_ns_dev` | device of the creator's pid namespace (0: unknown) |
//! | 80 | `creator_pid_ns_ino` | inode of the creator's pid namespace (0: unknown) |
//! | 88..128 | reserved | zero |
//!
//! The creator's pid and start time mean something only inside its pid
//! namespace, which is why the namespace is recorded beside them: a segment
//! made in another pid namespace is refused (see [`crate::liveness`]).
//!
//! The creator writes every field, then stores `state = Ready` with release
//! ordering; an opener loads `state` with acquire ordering before it trusts
//! the other fields, and then checks each of them.

use crate::liveness::{PidNamespace, ProcessId};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `b"IPCSEG\0\x01"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCSEG\0\x01");
/// The version of this header's layout. Version 2 added the creator's pid
/// namespace; a segment of version 1 is refused like any other version.
pub const HEADER_VERSION: u32 = 2;
/// The size of the header; the payload starts at this offset, so it is
/// aligned to 128 bytes (two cache lines).
pub const HEADER_SIZE: usize = 128;

/// The ABI of this build: architecture, pointer width, byte order and libc.
/// A segment written by a build with another ABI (for example a peer built
/// against musl, whose `pthread_mutex_t` differs from glibc's) is refused.
pub const ABI: u32 = {
    let arch: u32 = if cfg!(target_arch = "x86_64") {
        1
    } else if cfg!(target_arch = "aarch64") {
        2
    } else if cfg!(target_arch = "x86") {
        3
    } else if cfg!(target_arch = "riscv64") {
        4
    } else {
        0xff
    };
    let libc: u32 = if cfg!(target_env = "gnu") {
        1
    } else if cfg!(target_env = "musl") {
        2
    } else {
        0xff
    };
    let endian: u32 = if cfg!(target_endian = "little") { 0 } else { 1 };
    let width = usize::BITS;
    arch | (libc << 8) | (endian << 16) | (width << 20)
};

/// The state word of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// Zero-filled: nobody has written the header yet.
    Empty = 0,
    /// The creator is writing the header and initializing the payload.
    Initializing = 1,
    /// Initialized: openers may use it.
    Ready = 2,
    /// Declared unusable (a failed initialization, or a user's
    /// [`Segment::poison`](crate::Segment::poison)). Opening it fails.
    Poisoned = 3,
}

impl State {
    fn from_u32(v: u32) -> Option<State> {
        match v {
            0 => Some(State::Empty),
            1 => Some(State::Initializing),
            2 => Some(State::Ready),
            3 => Some(State::Poisoned),
            _ => None,
        }
    }
}

/// What a segment holds: a type tag, a version and a layout hash, chosen by
/// the crate that places data in the segment.
///
/// ```
/// use multiproc_core::Kind;
/// const RING: Kind = Kind::new("example/ring", 1, multiproc_core::header::layout_hash(&[64, 8]));
/// assert_eq!(RING.tag, multiproc_core::header::fnv1a64(b"example/ring"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    /// A human-readable name, for error messages (not stored).
    pub name: &'static str,
    /// The type tag stored in the header: [`fnv1a64`] of `name`.
    pub tag: u64,
    /// The version of the payload's layout.
    pub version: u32,
    /// A hash of the payload's layout (sizes, alignments, capacities).
    pub layout_hash: u64,
}

impl Kind {
    /// A kind named `name` (the tag is its FNV-1a hash).
    pub const fn new(name: &'static str, version: u32, layout_hash: u64) -> Kind {
        Kind {
            name,
            tag: fnv1a64(name.as_bytes()),
            version,
            layout_hash,
        }
    }

    /// The same kind with another layout hash (for payloads whose layout
    /// depends on a runtime parameter, such as a ring's slot size).
    pub const fn with_layout_hash(self, layout_hash: u64) -> Kind {
        Kind {
            layout_hash,
            ..self
        }
    }

    /// Plain bytes with no structure of their own.
    pub const BYTES: Kind = Kind::new("ipc-core/bytes", 1, 0);
}

/// The 64-bit FNV-1a hash of `bytes`, usable in constants.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// A hash of a list of layout numbers (sizes, alignments, offsets,
/// capacities), usable in constants.
pub const fn layout_hash(parts: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].to_le_bytes();
        let mut j = 0;
        while j < 8 {
            h ^= bytes[j] as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    h
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The segment is smaller than a header.
    #[error("segment is {size} bytes, smaller than the {min}-byte header")]
    TooSmall {
        /// The segment's size.
        size: u64,
        /// The header's size.
        min: u64,
    },
    /// The magic number is wrong: not a segment of this workspace.
    #[error("bad magic {found:#018x}: not a segment of this workspace")]
    BadMagic {
        /// The magic found.
        found: u64,
    },
    /// The header was written by another version of this workspace.
    #[error("header version {found}, expected {expected}")]
    HeaderVersion {
        /// This build's header version.
        expected: u32,
        /// The version found.
        found: u32,
    },
    /// The segment holds another type.
    #[error("segment holds type tag {found:#018x}, expected {expected_name} ({expected:#018x})")]
    TypeTag {
        /// The tag asked for.
        expected: u64,
        /// The name of the kind asked for.
        expected_name: &'static str,
        /// The tag found.
        found: u64,
    },
    /// The segment holds the right type at another layout version.
    #[error("type version {found}, expected {expected}")]
    TypeVersion {
        /// The version asked for.
        expected: u32,
        /// The version found.
        found: u32,
    },
    /// The payload's layout differs (another capacity, slot size, ...).
    #[error("layout hash {found:#018x}, expected {expected:#018x}")]
    LayoutHash {
        /// The hash asked for.
        expected: u64,
        /// The hash found.
        found: u64,
    },
    /// The segment was written by a build with another ABI.
    #[error("ABI {found:#x}, this build is {expected:#x}")]
    Abi {
        /// This build's ABI word.
        expected: u32,
        /// The ABI word found.
        found: u32,
    },
    /// The size recorded in the header is not the segment's real size, or
    /// the payload is smaller than the caller needs.
    #[error("size mismatch: header says {header} bytes, segment has {actual}")]
    Size {
        /// The size in the header (or the payload size asked for).
        header: u64,
        /// The real size.
        actual: u64,
    },
    /// The state word holds no known state.
    #[error("state word holds {found}, which is no known state")]
    BadState {
        /// The value found.
        found: u32,
    },
}

/// The header, as it sits at offset 0 of every segment.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct SegmentHeader {
    magic: AtomicU64,
    header_version: AtomicU32,
    state: AtomicU32,
    type_tag: AtomicU64,
    layout_hash: AtomicU64,
    type_version: AtomicU32,
    abi: AtomicU32,
    total_size: AtomicU64,
    payload_len: AtomicU64,
    creator_pid: AtomicU64,
    creator_start: AtomicU64,
    creator_pid_ns_dev: AtomicU64,
    creator_pid_ns_ino: AtomicU64,
    reserved: [AtomicU64; 5],
}

crate::assert_layout!(SegmentHeader, size = HEADER_SIZE, align = 128);

impl SegmentHeader {
    /// Writes every field but the state (left `Initializing`). Called by the
    /// creator only, before anyone else may trust the segment.
    pub(crate) fn write_initializing(
        &self,
        me: ProcessId,
        ns: PidNamespace,
        kind: &Kind,
        total_size: u64,
        payload_len: u64,
    ) {
        self.creator_pid.store(u64::from(me.pid), Ordering::Relaxed);
        self.creator_start.store(me.start_time, Ordering::Relaxed);
        self.creator_pid_ns_dev.store(ns.dev, Ordering::Relaxed);
        self.creator_pid_ns_ino.store(ns.ino, Ordering::Relaxed);
        self.header_version.store(HEADER_VERSION, Ordering::Relaxed);
        self.type_tag.store(kind.tag, Ordering::Relaxed);
        self.layout_hash.store(kind.layout_hash, Ordering::Relaxed);
        self.type_version.store(kind.version, Ordering::Relaxed);
        self.abi.store(ABI, Ordering::Relaxed);
        self.total_size.store(total_size, Ordering::Relaxed);
        self.payload_len.store(payload_len, Ordering::Relaxed);
        self.state
            .store(State::Initializing as u32, Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// Publishes the segment: everything written before is visible to an
    /// opener that sees `Ready`.
    pub(crate) fn mark_ready(&self) {
        self.state.store(State::Ready as u32, Ordering::Release);
    }

    /// Marks the segment unusable; openers get an error from now on.
    pub(crate) fn mark_poisoned(&self) {
        self.state.store(State::Poisoned as u32, Ordering::Release);
    }

    /// The magic number as stored.
    pub fn magic(&self) -> u64 {
        self.magic.load(Ordering::Acquire)
    }

    /// The state word, decoded.
    ///
    /// # Errors
    /// [`HeaderError::BadState`] for a state word that names no state (another
    /// process wrote garbage).
    pub fn state(&self) -> Result<State, HeaderError> {
        let v = self.state.load(Ordering::Acquire);
        State::from_u32(v).ok_or(HeaderError::BadState { found: v })
    }

    /// The creator recorded in the header (pid 0 if not yet written).
    pub fn creator(&self) -> ProcessId {
        ProcessId {
            pid: self.creator_pid.load(Ordering::Relaxed) as u32,
            reserved: 0,
            start_time: self.creator_start.load(Ordering::Relaxed),
        }
    }

    /// The pid namespace of the creator recorded in the header
    /// ([`PidNamespace::UNKNOWN`] if the creator could not learn it).
    pub fn creator_pid_namespace(&self) -> PidNamespace {
        PidNamespace {
            dev: self.creator_pid_ns_dev.load(Ordering::Relaxed),
            ino: self.creator_pid_ns_ino.load(Ordering::Relaxed),
        }
    }

    /// The header layout version as stored (not yet validated).
    pub fn header_version(&self) -> u32 {
        self.header_version.load(Ordering::Relaxed)
    }

    /// The type tag recorded in the header.
    pub fn type_tag(&self) -> u64 {
        self.type_tag.load(Ordering::Relaxed)
    }

    /// The payload length recorded in the header (not yet validated).
    pub fn payload_len(&self) -> u64 {
        self.payload_len.load(Ordering::Relaxed)
    }

    /// The total size recorded in the header (not yet validated).
    pub fn total_size(&self) -> u64 {
        self.total_size.load(Ordering::Relaxed)
    }

    /// Checks every field against what the caller expects and against the
    /// segment's real size. Call after `state()` said `Ready`.
    ///
    /// # Errors
    /// [`HeaderError`] naming the first field that does not match: magic,
    /// header version, type tag, kind version, layout hash, ABI, sizes, or the
    /// state (not ready, poisoned).
    pub fn validate(
        &self,
        kind: &Kind,
        actual_size: u64,
        min_payload: u64,
    ) -> Result<(), HeaderError> {
        if actual_size < HEADER_SIZE as u64 {
            return Err(HeaderError::TooSmall {
                size: actual_size,
                min: HEADER_SIZE as u64,
            });
        }
        let magic = self.magic();
        if magic != MAGIC {
            return Err(HeaderError::BadMagic { found: magic });
        }
        let v = self.header_version.load(Ordering::Relaxed);
        if v != HEADER_VERSION {
            return Err(HeaderError::HeaderVersion {
                expected: HEADER_VERSION,
                found: v,
            });
        }
        let abi = self.abi.load(Ordering::Relaxed);
        if abi != ABI {
            return Err(HeaderError::Abi {
                expected: ABI,
                found: abi,
            });
        }
        let tag = self.type_tag();
        if tag != kind.tag {
            return Err(HeaderError::TypeTag {
                expected: kind.tag,
                expected_name: kind.name,
                found: tag,
            });
        }
        let tv = self.type_version.load(Ordering::Relaxed);
        if tv != kind.version {
            return Err(HeaderError::TypeVersion {
                expected: kind.version,
                found: tv,
            });
        }
        let lh = self.layout_hash.load(Ordering::Relaxed);
        if lh != kind.layout_hash {
            return Err(HeaderError::LayoutHash {
                expected: kind.layout_hash,
                found: lh,
            });
        }
        let total = self.total_size();
        if total != actual_size {
            return Err(HeaderError::Size {
                header: total,
                actual: actual_size,
            });
        }
        let payload = self.payload_len();
        let room = actual_size - HEADER_SIZE as u64;
        if payload > room || payload < min_payload {
            return Err(HeaderError::Size {
                header: payload.max(min_payload),
                actual: room.min(payload),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Box<SegmentHeader> {
        // SAFETY: every field is an atomic integer, for which zero is valid.
        Box::new(unsafe { std::mem::zeroed() })
    }

    const K: Kind = Kind::new("test/kind", 3, 99);

    #[test]
    fn a_written_header_validates() {
        let h = header();
        let me = ProcessId::current().unwrap();
        h.write_initializing(me, PidNamespace::current(), &K, 4096, 100);
        h.mark_ready();
        assert_eq!(h.state(), Ok(State::Ready));
        assert_eq!(h.validate(&K, 4096, 100), Ok(()));
        assert_eq!(h.creator(), me);
        assert_eq!(h.creator_pid_namespace(), PidNamespace::current());
        assert_eq!(h.header_version(), HEADER_VERSION);
    }

    #[test]
    fn each_mismatch_is_named() {
        let h = header();
        assert!(matches!(
            h.validate(&K, 64, 0),
            Err(HeaderError::TooSmall { .. })
        ));
        assert!(matches!(
            h.validate(&K, 4096, 0),
            Err(HeaderError::BadMagic { found: 0 })
        ));
        h.write_initializing(
            ProcessId::current().unwrap(),
            PidNamespace::current(),
            &K,
            4096,
            100,
        );
        let other = Kind::new("test/other", 3, 99);
        assert!(matches!(
            h.validate(&other, 4096, 0),
            Err(HeaderError::TypeTag { .. })
        ));
        assert!(matches!(
            h.validate(&Kind::new("test/kind", 4, 99), 4096, 0),
            Err(HeaderError::TypeVersion { .. })
        ));
        assert!(matches!(
            h.validate(&K.with_layout_hash(1), 4096, 0),
            Err(HeaderError::LayoutHash { .. })
        ));
        assert!(matches!(
            h.validate(&K, 8192, 0),
            Err(HeaderError::Size { .. })
        ));
        assert!(matches!(
            h.validate(&K, 4096, 200),
            Err(HeaderError::Size { .. })
        ));
        h.abi.store(ABI ^ 1, Ordering::Relaxed);
        assert!(matches!(
            h.validate(&K, 4096, 0),
            Err(HeaderError::Abi { .. })
        ));
        h.abi.store(ABI, Ordering::Relaxed);
        h.header_version.store(9, Ordering::Relaxed);
        assert!(matches!(
            h.validate(&K, 4096, 0),
            Err(HeaderError::HeaderVersion { found: 9, .. })
        ));
        h.state.store(77, Ordering::Relaxed);
        assert_eq!(h.state(), Err(HeaderError::BadState { found: 77 }));
    }

    #[test]
    fn a_payload_larger_than_the_segment_is_refused() {
        let h = header();
        h.write_initializing(
            ProcessId::current().unwrap(),
            PidNamespace::current(),
            &K,
            4096,
            1 << 40,
        );
        assert!(matches!(
            h.validate(&K, 4096, 0),
            Err(HeaderError::Size { .. })
        ));
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(layout_hash(&[1, 2]), layout_hash(&[2, 1]));
    }
}

/// What a reclaimer or a sweep learns from the raw bytes of a header, read
/// with `pread` (never trusted beyond deciding whether the creator is dead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peek {
    pub(crate) magic: u64,
    pub(crate) version: u32,
    pub(crate) creator: ProcessId,
    pub(crate) pid_ns: PidNamespace,
}

impl Peek {
    pub(crate) fn from_bytes(b: &[u8; HEADER_SIZE]) -> Peek {
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_ne_bytes(a)
        };
        let mut v = [0u8; 4];
        v.copy_from_slice(&b[8..12]);
        Peek {
            magic: u64_at(0),
            version: u32::from_ne_bytes(v),
            creator: ProcessId {
                pid: u64_at(56) as u32,
                reserved: 0,
                start_time: u64_at(64),
            },
            pid_ns: PidNamespace {
                dev: u64_at(72),
                ino: u64_at(80),
            },
        }
    }
}

/// Every field of a header, decoded from raw bytes read without mapping
/// (see [`crate::inspect`]). Nothing here is validated: each field is what
/// the bytes say, to be checked before use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderFields {
    /// The magic number ([`MAGIC`] for a segment of this workspace).
    pub magic: u64,
    /// The header layout version ([`HEADER_VERSION`] for this build).
    pub header_version: u32,
    /// The raw state word ([`State`] when it names one).
    pub state: u32,
    /// The type tag ([`Kind::tag`]).
    pub type_tag: u64,
    /// The payload's layout hash ([`Kind::layout_hash`]).
    pub layout_hash: u64,
    /// The payload's layout version ([`Kind::version`]).
    pub type_version: u32,
    /// The ABI word ([`ABI`] for this build).
    pub abi: u32,
    /// The size of the whole segment the creator recorded.
    pub total_size: u64,
    /// The payload length the creator asked for.
    pub payload_len: u64,
    /// The creator.
    pub creator: ProcessId,
    /// The creator's pid namespace.
    pub creator_pid_ns: PidNamespace,
}

impl HeaderFields {
    /// Decodes the first [`HEADER_SIZE`] bytes of a segment.
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> HeaderFields {
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_ne_bytes(a)
        };
        let u32_at = |o: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[o..o + 4]);
            u32::from_ne_bytes(a)
        };
        use std::mem::offset_of;
        HeaderFields {
            magic: u64_at(offset_of!(SegmentHeader, magic)),
            header_version: u32_at(offset_of!(SegmentHeader, header_version)),
            state: u32_at(offset_of!(SegmentHeader, state)),
            type_tag: u64_at(offset_of!(SegmentHeader, type_tag)),
            layout_hash: u64_at(offset_of!(SegmentHeader, layout_hash)),
            type_version: u32_at(offset_of!(SegmentHeader, type_version)),
            abi: u32_at(offset_of!(SegmentHeader, abi)),
            total_size: u64_at(offset_of!(SegmentHeader, total_size)),
            payload_len: u64_at(offset_of!(SegmentHeader, payload_len)),
            creator: ProcessId {
                pid: u64_at(offset_of!(SegmentHeader, creator_pid)) as u32,
                reserved: 0,
                start_time: u64_at(offset_of!(SegmentHeader, creator_start)),
            },
            creator_pid_ns: PidNamespace {
                dev: u64_at(offset_of!(SegmentHeader, creator_pid_ns_dev)),
                ino: u64_at(offset_of!(SegmentHeader, creator_pid_ns_ino)),
            },
        }
    }

    /// The state word, decoded (`None` for a value that names no state).
    pub fn state(&self) -> Option<State> {
        State::from_u32(self.state)
    }
}
