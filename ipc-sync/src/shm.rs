//! Placing a primitive in a segment of its own (named or anonymous), or at an
//! offset of a caller's segment.

use crate::Error;
use ipc_core::{Kind, Segment};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Creates a segment for one primitive: named if `name` is given, else an
/// anonymous memfd. `init` runs before the segment is marked ready.
pub(crate) fn create(
    kind: Kind,
    name: Option<&str>,
    size: usize,
    init: impl FnOnce(&Segment),
) -> Result<Arc<Segment>, Error> {
    let mut b = Segment::builder(kind).size(size.max(1));
    if let Some(n) = name {
        b = b.name(n);
    }
    Ok(Arc::new(b.create_with(init)?))
}

/// Opens a named primitive's segment, checking its kind (type tag, version,
/// layout hash, ABI) and that it holds `size` bytes at least.
pub(crate) fn open(kind: Kind, name: &str, size: usize) -> Result<Arc<Segment>, Error> {
    Ok(Arc::new(
        Segment::builder(kind).name(name).size(size.max(1)).open()?,
    ))
}

/// Maps a primitive's segment from a descriptor, checking kind and size.
pub(crate) fn from_fd(fd: OwnedFd, kind: Kind, size: usize) -> Result<Arc<Segment>, Error> {
    let seg = Segment::from_fd(fd, kind)?;
    if seg.payload_len() < size {
        return Err(Error::Layout {
            what: kind.name,
            detail: format!(
                "the segment holds {} bytes, {size} are needed",
                seg.payload_len()
            ),
        });
    }
    Ok(Arc::new(seg))
}

/// Refuses types whose alignment the 128-byte aligned payload cannot give.
pub(crate) fn check_align<S>() -> Result<(), Error> {
    if std::mem::align_of::<S>() > 128 {
        return Err(Error::InvalidArgument(
            "the value's alignment is above 128 bytes",
        ));
    }
    Ok(())
}

/// A raw primitive that can live in a segment of its own.
pub(crate) trait RawObject: ipc_core::Shareable + Sync {
    /// The segment kind.
    const KIND: Kind;
    /// Checks the object tag (and configuration) of memory another process
    /// initialized.
    fn check_object(&self) -> Result<(), Error>;
}

/// A raw primitive inside a mapping that this value keeps alive.
pub(crate) struct Shared<R: RawObject> {
    seg: Arc<Segment>,
    ptr: std::ptr::NonNull<R>,
}

// SAFETY: `R: Sync` (atomics only) lives in a mapping kept alive by `seg`;
// sharing or sending the handle only shares `&R`.
unsafe impl<R: RawObject> Send for Shared<R> {}
// SAFETY: as above.
unsafe impl<R: RawObject> Sync for Shared<R> {}

impl<R: RawObject> Shared<R> {
    /// Creates a segment holding one `R`, initialized by `init`.
    pub(crate) fn create(name: Option<&str>, init: impl FnOnce(&R)) -> Result<Self, Error> {
        let seg = create(R::KIND, name, std::mem::size_of::<R>(), |seg| {
            if let Ok(r) = seg.get::<R>(0) {
                init(r);
            }
        })?;
        Self::at(seg, 0)
    }

    pub(crate) fn open(name: &str) -> Result<Self, Error> {
        Self::at(open(R::KIND, name, std::mem::size_of::<R>())?, 0)
    }

    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
        Self::at(from_fd(fd, R::KIND, std::mem::size_of::<R>())?, 0)
    }

    pub(crate) fn init_at(
        seg: Arc<Segment>,
        offset: u64,
        init: impl FnOnce(&R) -> Result<(), Error>,
    ) -> Result<Self, Error> {
        init(seg.get::<R>(offset)?)?;
        Self::at(seg, offset)
    }

    pub(crate) fn at(seg: Arc<Segment>, offset: u64) -> Result<Self, Error> {
        let r: &R = seg.get(offset)?;
        r.check_object()?;
        let ptr = std::ptr::NonNull::from(r);
        Ok(Shared { seg, ptr })
    }

    #[inline]
    pub(crate) fn get(&self) -> &R {
        // SAFETY: checked in bounds and aligned at construction; the mapping
        // lives as long as `self.seg`; `R` is all atomics (Sync).
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }
}

/// Generates the constructors every public primitive shares (open by name,
/// from a descriptor, at an offset) and its `segment` accessor, for a type
/// `$t { inner: Shared<$raw>, strategy: WaitStrategy, .. }` with a
/// `from_shared` constructor.
macro_rules! common_methods {
    ($t:ident, $what:literal) => {
        impl $t {
            #[doc = concat!("Opens the named ", $what, " another process created.")]
            ///
            /// # Errors
            /// [`Error::Segment`](crate::Error::Segment): no such name, or it
            /// holds another primitive or another layout version
            /// ([`ipc_core::SegmentError::Header`]).
            pub fn open(name: &str) -> Result<Self, crate::Error> {
                Ok(Self::from_shared(crate::shm::Shared::open(name)?))
            }

            #[doc = concat!("Maps a ", $what, "'s segment from a descriptor (inherited by a")]
            /// spawned child, or received over a socket), checking its kind.
            ///
            /// # Errors
            /// [`Error::Segment`](crate::Error::Segment) with
            /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed)
            /// for a descriptor not sealed against resizing (its sender
            /// could shrink it under this mapping), or a segment holding
            /// something else.
            pub fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Self, crate::Error> {
                Ok(Self::from_shared(crate::shm::Shared::from_fd(fd)?))
            }

            #[doc = concat!("The ", $what, " initialized at `offset` of `seg`, after checking")]
            /// bounds, alignment and the object tag.
            pub fn at(
                seg: std::sync::Arc<ipc_core::Segment>,
                offset: u64,
            ) -> Result<Self, crate::Error> {
                Ok(Self::from_shared(crate::shm::Shared::at(seg, offset)?))
            }

            #[doc = concat!("The segment holding the ", $what, " (for its name or descriptor).")]
            pub fn segment(&self) -> &std::sync::Arc<ipc_core::Segment> {
                self.inner.segment()
            }

            /// The same handle with another wait strategy.
            pub fn with_wait_strategy(mut self, strategy: ipc_core::wait::WaitStrategy) -> Self {
                self.strategy = strategy;
                self
            }
        }
    };
}
pub(crate) use common_methods;
