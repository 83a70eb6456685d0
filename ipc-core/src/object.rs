//! One contract for an object in caller memory, and one way to place it.
//!
//! Every lock, semaphore, event, barrier and ring of the workspace is an
//! [`ShmObject`]: a `#[repr(C)]` state of atomics and integers that knows
//! how many bytes it needs for a configuration ([`ShmObject::memory_size`]),
//! how to write a fresh state into such memory ([`ShmObject::init_in`]) and
//! how to check a state another process wrote ([`ShmObject::attach`]). The
//! algorithm never asks where the memory is, so it runs the same in a
//! segment, on the heap, or under a model checker.
//!
//! [`Placed`] puts any such object into memory, six ways:
//!
//! | call | where the object lives |
//! |---|---|
//! | [`Placed::create`]`(name, cfg)` | a new named segment of its own, for unrelated processes |
//! | [`Placed::open`]`(name)` | an existing named segment, its kind checked |
//! | [`Placed::anonymous`]`(cfg)` | a new anonymous segment (a sealed memfd), for children |
//! | [`Placed::from_fd`]`(fd)` | a segment whose descriptor was inherited or received, seals and kind checked |
//! | [`Placed::init_at`]`(segment, offset, cfg)` | a fresh object at an offset of any segment |
//! | [`Placed::at`]`(segment, offset)` | an object another process initialized at an offset |
//!
//! and [`Placed::builder`] for the segment's options (mode, prefault, open
//! timeout). The public types of the other crates wrap a `Placed<O>` with
//! their per-process state (a wait strategy, cached indices) and get the
//! same six constructors from [`handle_constructors!`](crate::handle_constructors).
//!
//! ```
//! use multiproc_core::object::{ObjectError, Placed, ShmObject};
//! use multiproc_core::{Kind, Shareable};
//! use std::ptr::NonNull;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! /// A counter shared between processes.
//! #[repr(C)]
//! struct Counter {
//!     tag: AtomicU64,
//!     value: AtomicU64,
//! }
//! const TAG: u64 = 0x434e_5452; // "CNTR"
//!
//! // SAFETY: `init_in` writes a whole `Counter` into memory of its size and
//! // alignment; `attach` checks size, alignment and tag; a `Counter` is two
//! // atomics, valid for every bit pattern.
//! unsafe impl ShmObject for Counter {
//!     const KIND: Kind = Kind::new("example/counter", 1, 0);
//!     type Config = u64;
//!     fn memory_size(_: &u64) -> Result<usize, ObjectError> {
//!         Ok(std::mem::size_of::<Counter>())
//!     }
//!     unsafe fn init_in(mem: NonNull<u8>, _len: usize, start: u64) {
//!         let c = Counter { tag: AtomicU64::new(TAG), value: AtomicU64::new(start) };
//!         // SAFETY: the caller gives `memory_size` aligned bytes.
//!         unsafe { mem.cast::<Counter>().write(c) };
//!     }
//!     unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Counter, ObjectError> {
//!         let c = multiproc_core::object::checked_ref::<Counter>(mem, len)?;
//!         multiproc_core::object::check_tag("counter", TAG, c.tag.load(Ordering::Relaxed))?;
//!         Ok(c)
//!     }
//! }
//!
//! let c = Placed::<Counter>::anonymous(41)?;
//! c.value.fetch_add(1, Ordering::Relaxed);
//! let again = Placed::<Counter>::at(c.segment().clone(), 0)?;
//! assert_eq!(again.value.load(Ordering::Relaxed), 42);
//! # Ok::<(), multiproc_core::object::ObjectError>(())
//! ```

use crate::error::{OffsetError, SegmentError};
use crate::header::Kind;
use crate::segment::{Segment, SegmentBuilder};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

/// Why an object could not be placed in memory or found there.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// Creating, opening or mapping the segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The offset is outside the segment or misaligned.
    #[error(transparent)]
    Offset(#[from] OffsetError),
    /// The memory does not hold the expected object (another object, a
    /// corrupted state, a layout this build does not read).
    #[error("expected {expected}: {detail}")]
    WrongObject {
        /// The object expected.
        expected: &'static str,
        /// What was found instead.
        detail: String,
    },
    /// The configuration is not one the object accepts (a zero capacity, a
    /// size that overflows); `reason` names the limit.
    #[error("invalid {what} configuration: {reason}")]
    InvalidConfig {
        /// The object.
        what: &'static str,
        /// What is wrong, with the limit.
        reason: String,
    },
    /// The memory given is smaller than the object needs.
    #[error("the object needs {needed} bytes, {available} are available")]
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

/// An object that lives in caller-provided memory and can be shared between
/// processes. See the [module docs](self).
///
/// # Safety
/// Implementors promise that:
/// - `Self` is sound to reach from several processes at once: `Sync`, no
///   pointers or process-local handles, every field valid for every bit
///   pattern another process may write (atomics and plain integers);
/// - [`init_in`](Self::init_in), given at least
///   [`memory_size`](Self::memory_size) bytes aligned to
///   `align_of::<Self>()`, leaves a state that [`attach`](Self::attach)
///   accepts;
/// - [`attach`](Self::attach) checks everything it relies on (size,
///   alignment, tag, every length and index it will use), so that for any
///   contents of the memory it returns an error or a reference through
///   which every operation of the object is memory-safe.
pub unsafe trait ShmObject: Sync + Sized + 'static {
    /// The segment kind of an object in a segment of its own: type tag,
    /// layout version and layout hash, checked when opening.
    const KIND: Kind;

    /// What a new object is made from (a capacity, an initial value, ...).
    type Config;

    /// The bytes an object of `cfg` needs (at least `size_of::<Self>()`).
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`] for a configuration the object does
    /// not accept, or whose size overflows.
    fn memory_size(cfg: &Self::Config) -> Result<usize, ObjectError>;

    /// Writes a fresh object of `cfg` into `mem`.
    ///
    /// # Safety
    /// `mem` is valid for writes of `len` bytes, `len >=
    /// memory_size(&cfg)`, aligned to `align_of::<Self>()`, and nothing else
    /// uses the memory during the call (no other process has attached yet).
    unsafe fn init_in(mem: NonNull<u8>, len: usize, cfg: Self::Config);

    /// The object another process (or this one) initialized in `mem`, after
    /// checking it.
    ///
    /// # Errors
    /// [`ObjectError::WrongObject`] if `mem` holds anything but a valid
    /// object, [`ObjectError::TooSmall`] if it needs more than `len` bytes.
    ///
    /// # Safety
    /// `mem` is valid for reads and atomic writes of `len` bytes for `'a`,
    /// and is only ever accessed atomically by others (shared memory).
    unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Self, ObjectError>;
}

/// A `&T` at `mem`, after checking that `len` bytes hold it and `mem` is
/// aligned for it: the first step of most [`ShmObject::attach`]es.
///
/// # Errors
/// [`ObjectError::TooSmall`] or [`ObjectError::Offset`] (misaligned).
///
/// # Safety
/// As [`ShmObject::attach`]: `mem` is valid for `len` bytes for `'a`, and
/// `T` is valid for every bit pattern and only accessed atomically.
pub unsafe fn checked_ref<'a, T: Sync>(mem: NonNull<u8>, len: usize) -> Result<&'a T, ObjectError> {
    let needed = std::mem::size_of::<T>();
    if len < needed {
        return Err(ObjectError::TooSmall {
            needed,
            available: len,
        });
    }
    let align = std::mem::align_of::<T>();
    if !(mem.as_ptr() as usize).is_multiple_of(align) {
        return Err(ObjectError::Offset(OffsetError::Misaligned {
            offset: mem.as_ptr() as u64,
            align: align as u64,
        }));
    }
    // SAFETY: `len >= size_of::<T>()` bytes valid for `'a` (the caller's
    // promise, size checked above), aligned (checked above); `T` is valid
    // for every bit pattern and only accessed atomically (the caller's
    // promise).
    Ok(unsafe { mem.cast::<T>().as_ref() })
}

/// Compares an object tag read from memory with the one expected.
///
/// # Errors
/// [`ObjectError::WrongObject`] naming both.
pub fn check_tag<T: PartialEq + std::fmt::LowerHex>(
    what: &'static str,
    expected: T,
    found: T,
) -> Result<(), ObjectError> {
    if expected == found {
        Ok(())
    } else {
        Err(ObjectError::WrongObject {
            expected: what,
            detail: format!("object tag {found:#x}, expected {expected:#x}"),
        })
    }
}

/// An [`ShmObject`] in a segment, kept mapped for as long as this value
/// (or a clone) lives. Dereferences to the object.
pub struct Placed<O: ShmObject> {
    seg: Arc<Segment>,
    offset: u64,
    len: usize,
    obj: NonNull<O>,
    /// The object's memory, derived from the mapping (not from `&O`), so it
    /// may reach the whole region a variable-size object owns.
    mem: NonNull<u8>,
}

// SAFETY: `O: Sync` lives in a mapping kept alive by `seg`; sending or
// sharing the handle only shares `&O`.
unsafe impl<O: ShmObject> Send for Placed<O> {}
// SAFETY: as above.
unsafe impl<O: ShmObject> Sync for Placed<O> {}

impl<O: ShmObject> Clone for Placed<O> {
    fn clone(&self) -> Self {
        Placed {
            seg: Arc::clone(&self.seg),
            offset: self.offset,
            len: self.len,
            obj: self.obj,
            mem: self.mem,
        }
    }
}

impl<O: ShmObject> std::fmt::Debug for Placed<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placed")
            .field("kind", &O::KIND.name)
            .field("segment", &self.seg.name())
            .field("offset", &self.offset)
            .finish()
    }
}

impl<O: ShmObject> std::ops::Deref for Placed<O> {
    type Target = O;
    #[inline]
    fn deref(&self) -> &O {
        // SAFETY: `attach` checked the object at construction; the mapping
        // lives as long as `self.seg`; `O: Sync` and only shared access is
        // handed out.
        unsafe { self.obj.as_ref() }
    }
}

impl<O: ShmObject> Placed<O> {
    /// A builder for the object's own segment, to set its name, mode,
    /// prefault and open timeout.
    pub fn builder() -> PlaceBuilder<O> {
        PlaceBuilder {
            seg: Segment::builder(O::KIND),
            _object: std::marker::PhantomData,
        }
    }

    /// Creates a named segment holding a new object of `cfg`.
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`], or [`ObjectError::Segment`] (the name
    /// is taken by a live creator, `/dev/shm` or memory is short, ...).
    pub fn create(name: &str, cfg: O::Config) -> Result<Self, ObjectError> {
        Self::builder().name(name).create(cfg)
    }

    /// Opens the named segment another process created, checking its kind
    /// and the object in it.
    ///
    /// # Errors
    /// [`ObjectError::Segment`] (no such name, another kind or layout
    /// version, another pid namespace, ...), [`ObjectError::WrongObject`].
    pub fn open(name: &str) -> Result<Self, ObjectError> {
        Self::builder().name(name).open()
    }

    /// Creates an anonymous segment (a sealed memfd) holding a new object
    /// of `cfg`, for children started by fork or given the descriptor.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn anonymous(cfg: O::Config) -> Result<Self, ObjectError> {
        Self::builder().create(cfg)
    }

    /// Maps the segment of a descriptor inherited or received from another
    /// process, checking its seals, kind and object.
    ///
    /// # Errors
    /// [`ObjectError::Segment`] (unsealed, another kind, ...),
    /// [`ObjectError::WrongObject`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ObjectError> {
        Self::at(Arc::new(Segment::from_fd(fd, O::KIND)?), 0)
    }

    /// Writes a new object of `cfg` at `offset` of `seg` (a segment holding
    /// several objects) and returns it. The caller keeps other objects out
    /// of its bytes.
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`], [`ObjectError::Offset`] if the object
    /// does not fit there or the offset is misaligned.
    pub fn init_at(seg: Arc<Segment>, offset: u64, cfg: O::Config) -> Result<Self, ObjectError> {
        let size = O::memory_size(&cfg)?;
        let (mem, len) = region::<O>(&seg, offset, size)?;
        // SAFETY: `region` checked that `size` bytes at `offset` lie in the
        // payload, aligned for `O`; the mapping is writable and lives while
        // `seg` does.
        unsafe { O::init_in(mem, len, cfg) };
        Self::at(seg, offset)
    }

    /// The object another process initialized at `offset` of `seg`, after
    /// checking bounds, alignment and the object itself.
    ///
    /// # Errors
    /// [`ObjectError::Offset`], [`ObjectError::TooSmall`],
    /// [`ObjectError::WrongObject`].
    pub fn at(seg: Arc<Segment>, offset: u64) -> Result<Self, ObjectError> {
        let rest = (seg.payload_len() as u64).saturating_sub(offset) as usize;
        let (mem, len) = region::<O>(&seg, offset, std::mem::size_of::<O>().max(1))?;
        let len = len.max(rest);
        // SAFETY: `len` bytes from `mem` lie in the payload (checked by
        // `region`, then extended to the payload's end), which stays mapped
        // while `seg` does and is accessed atomically by every process.
        let obj = unsafe { O::attach(mem, len)? };
        Ok(Placed {
            obj: NonNull::from(obj),
            mem,
            seg,
            offset,
            len,
        })
    }

    /// The segment holding the object (its name, descriptor, header).
    pub fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// The object's offset in its segment's payload.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The object's memory: its start and the bytes available from there to
    /// the end of the segment (what [`ShmObject::attach`] checked).
    pub fn memory(&self) -> (NonNull<u8>, usize) {
        (self.mem, self.len)
    }
}

/// A placed object travels to a child in its arguments
/// ([`Process::start`](crate::process::Process::start)): a named segment
/// by its name, an anonymous one by its descriptor, which the child
/// inherits ([`message::export_fd`](crate::message::export_fd)); the offset
/// goes along. On arrival the segment is opened or mapped and the object
/// checked, as [`Placed::open`] and [`Placed::from_fd`] do.
///
/// Only an object in a segment of its own kind travels this way (every
/// object created by `create`, `anonymous`, or `init_at` into a segment of
/// that kind); one placed into a segment of another kind travels with that
/// segment.
#[cfg(feature = "serde")]
impl<O: ShmObject> serde::Serialize for Placed<O> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::message::refuse_handle;
        if self.seg.kind().tag != O::KIND.tag {
            return Err(refuse_handle(format!(
                "a {} placed in a segment of kind {} travels with that segment",
                O::KIND.name,
                self.seg.kind().name
            )));
        }
        let repr = match self.seg.name() {
            Some(name) => PlacedRepr::Named {
                name: name.to_owned(),
                offset: self.offset,
            },
            None => PlacedRepr::Fd {
                index: crate::message::export_fd(std::os::fd::AsFd::as_fd(&*self.seg)).map_err(
                    |e| match e {
                        crate::message::EncodeError::Handle(reason) => refuse_handle(reason),
                        other => refuse_handle(other),
                    },
                )?,
                offset: self.offset,
            },
        };
        serde::Serialize::serialize(&repr, s)
    }
}

#[cfg(feature = "serde")]
impl<'de, O: ShmObject> serde::Deserialize<'de> for Placed<O> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let seg = match <PlacedRepr as serde::Deserialize>::deserialize(d)? {
            PlacedRepr::Named { name, offset } => (
                Segment::builder(O::KIND)
                    .name(name)
                    .open()
                    .map_err(D::Error::custom)?,
                offset,
            ),
            PlacedRepr::Fd { index, offset } => {
                let fd = crate::message::import_fd(index).map_err(D::Error::custom)?;
                (
                    Segment::from_fd(fd, O::KIND).map_err(D::Error::custom)?,
                    offset,
                )
            }
        };
        Placed::at(Arc::new(seg.0), seg.1).map_err(D::Error::custom)
    }
}

/// How a [`Placed`] object is written into a child's arguments.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
enum PlacedRepr {
    Named { name: String, offset: u64 },
    Fd { index: u32, offset: u64 },
}

/// `size` bytes at `offset` of `seg`'s payload, checked and aligned for `O`.
fn region<O: ShmObject>(
    seg: &Segment,
    offset: u64,
    size: usize,
) -> Result<(NonNull<u8>, usize), ObjectError> {
    let range = seg.check_range(offset, size as u64)?;
    let align = std::mem::align_of::<O>() as u64;
    if !offset.is_multiple_of(align) || align > 128 {
        return Err(OffsetError::Misaligned { offset, align }.into());
    }
    // SAFETY: `range` lies inside the payload, which lies inside the mapping.
    let mem = unsafe { seg.payload_ptr().add(range.start) };
    Ok((mem, range.len()))
}

/// Creates or opens an object's own segment with options. Obtained from
/// [`Placed::builder`] (or a handle type's `builder`).
#[must_use]
pub struct PlaceBuilder<O: ShmObject> {
    seg: SegmentBuilder,
    _object: std::marker::PhantomData<fn() -> O>,
}

impl<O: ShmObject> PlaceBuilder<O> {
    /// Names the segment; without a name, [`create`](Self::create) makes an
    /// anonymous one.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.seg = self.seg.name(name);
        self
    }

    /// The permission bits of a named segment (default `0o600`; see
    /// [`SegmentBuilder::mode`]).
    pub fn mode(mut self, mode: u32) -> Self {
        self.seg = self.seg.mode(mode);
        self
    }

    /// Touches every page when mapping, so the first use takes no page
    /// fault.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.seg = self.seg.prefault(yes);
        self
    }

    /// How long [`open`](Self::open) waits for the creator to finish.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.seg = self.seg.open_timeout(timeout);
        self
    }

    /// Creates the segment (named if a name was given) with a new object of
    /// `cfg`, initialized before any other process can open it.
    ///
    /// # Errors
    /// [`ObjectError::InvalidConfig`], [`ObjectError::Segment`].
    pub fn create(self, cfg: O::Config) -> Result<Placed<O>, ObjectError> {
        let size = O::memory_size(&cfg)?;
        let mut cfg = Some(cfg);
        let seg = self.seg.size(size).create_with(|seg| {
            if let (Ok((mem, len)), Some(cfg)) = (region::<O>(seg, 0, size), cfg.take()) {
                // SAFETY: a fresh segment of `size` payload bytes, 128-byte
                // aligned, that no other process can open until it is
                // marked ready after this closure.
                unsafe { O::init_in(mem, len, cfg) };
            }
        })?;
        Placed::at(Arc::new(seg), 0)
    }

    /// Opens the named segment, checking its kind and the object.
    ///
    /// # Errors
    /// As [`Placed::open`].
    pub fn open(self) -> Result<Placed<O>, ObjectError> {
        Placed::at(Arc::new(self.seg.open()?), 0)
    }
}

/// A public type that wraps a [`Placed`] object with per-process state; see
/// [`handle_constructors!`](crate::handle_constructors).
pub trait Handle: Sized {
    /// The object it wraps.
    type Object: ShmObject;
    /// The handle for a placed object.
    fn from_placed(placed: Placed<Self::Object>) -> Self;
}

/// Gives a [`Handle`] type the six constructors of [`Placed`] as inherent
/// functions, with their documentation: `create`, `open`, `anonymous`,
/// `from_fd`, `init_at`, `at`, and `builder` for the options.
///
/// For an object whose configuration is `()`, the form ending in `, ()`
/// gives `create(name)`, `anonymous()` and `init_at(seg, offset)` without
/// the configuration argument.
///
/// ```ignore
/// multiproc_core::handle_constructors!(impl[] Semaphore, "semaphore");
/// multiproc_core::handle_constructors!(impl[T: Shareable] Mutex<T>, "mutex");
/// multiproc_core::handle_constructors!(impl[] Event, "event", ());
/// ```
#[macro_export]
macro_rules! handle_constructors {
    (impl[$($g:tt)*] $t:ty, $what:literal, ()) => {
        impl<$($g)*> $t {
            #[doc = concat!("Creates a named ", $what, " in a segment of its own, for unrelated processes.")]
            ///
            /// # Errors
            /// The segment could not be made (the name is taken by a live
            /// creator, memory or `/dev/shm` is short):
            /// [`ObjectError`]($crate::object::ObjectError).
            pub fn create(name: &str) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::create(name, ()).map(<Self as $crate::object::Handle>::from_placed)
            }

            #[doc = concat!("Creates a ", $what, " in an anonymous segment (a sealed memfd), for children.")]
            ///
            /// # Errors
            /// As `create`.
            pub fn anonymous() -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::anonymous(()).map(<Self as $crate::object::Handle>::from_placed)
            }

            #[doc = concat!("Writes a new ", $what, " at `offset` of a segment holding several objects.")]
            ///
            /// # Errors
            /// The object does not fit at that offset:
            /// [`ObjectError`]($crate::object::ObjectError).
            pub fn init_at(
                seg: std::sync::Arc<$crate::Segment>,
                offset: u64,
            ) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::init_at(seg, offset, ())
                    .map(<Self as $crate::object::Handle>::from_placed)
            }
        }
        $crate::handle_constructors!(@attach impl[$($g)*] $t, $what);
    };
    (@attach impl[$($g:tt)*] $t:ty, $what:literal) => {
        impl<$($g)*> $t {
            #[doc = concat!("Opens the named ", $what, " another process created, checking its kind.")]
            ///
            /// # Errors
            /// No such name, another kind or layout version, another pid
            /// namespace, a corrupted state:
            /// [`ObjectError`]($crate::object::ObjectError).
            pub fn open(name: &str) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::open(name).map(<Self as $crate::object::Handle>::from_placed)
            }

            #[doc = concat!("Maps a ", $what, "'s segment from an inherited or received descriptor.")]
            ///
            /// # Errors
            /// The descriptor is not sealed, holds another kind, or a
            /// corrupted state: [`ObjectError`]($crate::object::ObjectError).
            pub fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::from_fd(fd).map(<Self as $crate::object::Handle>::from_placed)
            }

            #[doc = concat!("The ", $what, " another process initialized at `offset` of a segment.")]
            ///
            /// # Errors
            /// The offset is out of bounds or misaligned, or no valid object
            /// is there: [`ObjectError`]($crate::object::ObjectError).
            pub fn at(
                seg: std::sync::Arc<$crate::Segment>,
                offset: u64,
            ) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::at(seg, offset).map(<Self as $crate::object::Handle>::from_placed)
            }
        }
    };
    (impl[$($g:tt)*] $t:ty, $what:literal) => {
        impl<$($g)*> $t {
            #[doc = concat!("Creates a named ", $what, " in a segment of its own, for unrelated processes.")]
            ///
            /// # Errors
            /// An invalid configuration, or the segment could not be made
            /// (the name is taken by a live creator, memory or `/dev/shm`
            /// is short): [`ObjectError`]($crate::object::ObjectError).
            pub fn create(
                name: &str,
                cfg: <<Self as $crate::object::Handle>::Object as $crate::object::ShmObject>::Config,
            ) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::create(name, cfg).map(<Self as $crate::object::Handle>::from_placed)
            }

            #[doc = concat!("Creates a ", $what, " in an anonymous segment (a sealed memfd), for children.")]
            ///
            /// # Errors
            /// As `create`.
            pub fn anonymous(
                cfg: <<Self as $crate::object::Handle>::Object as $crate::object::ShmObject>::Config,
            ) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::anonymous(cfg).map(<Self as $crate::object::Handle>::from_placed)
            }

            #[doc = concat!("Writes a new ", $what, " at `offset` of a segment holding several objects.")]
            ///
            /// # Errors
            /// An invalid configuration, or the object does not fit at that
            /// offset: [`ObjectError`]($crate::object::ObjectError).
            pub fn init_at(
                seg: std::sync::Arc<$crate::Segment>,
                offset: u64,
                cfg: <<Self as $crate::object::Handle>::Object as $crate::object::ShmObject>::Config,
            ) -> Result<Self, $crate::object::ObjectError> {
                $crate::object::Placed::init_at(seg, offset, cfg)
                    .map(<Self as $crate::object::Handle>::from_placed)
            }
        }
        $crate::handle_constructors!(@attach impl[$($g)*] $t, $what);
    };
}

#[cfg(test)]
#[allow(unreachable_pub)] // the macro's constructors on a test-only type
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A variable-size test object: a count and that many words after it.
    #[repr(C)]
    struct Words {
        tag: AtomicU32,
        count: AtomicU32,
    }

    const TAG: u32 = 0x5744_5331;

    // SAFETY: `init_in` writes the header and zeroes `count` words after it;
    // `attach` checks the tag and that `count` words fit in `len`.
    unsafe impl ShmObject for Words {
        const KIND: Kind = Kind::new("ipc-core/test-words", 1, 0);
        type Config = u32;
        fn memory_size(n: &u32) -> Result<usize, ObjectError> {
            if *n == 0 {
                return Err(ObjectError::InvalidConfig {
                    what: "words",
                    reason: "at least one word".into(),
                });
            }
            Ok(8 + 4 * *n as usize)
        }
        unsafe fn init_in(mem: NonNull<u8>, _len: usize, n: u32) {
            // SAFETY: the caller gives `memory_size(n)` aligned bytes.
            unsafe {
                mem.cast::<Words>().write(Words {
                    tag: AtomicU32::new(TAG),
                    count: AtomicU32::new(n),
                });
                std::ptr::write_bytes(mem.as_ptr().add(8), 0, 4 * n as usize);
            }
        }
        unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Words, ObjectError> {
            // SAFETY: the caller's promise, passed on.
            let w = unsafe { checked_ref::<Words>(mem, len)? };
            check_tag("words", TAG, w.tag.load(Ordering::Relaxed))?;
            let needed = 8 + 4 * w.count.load(Ordering::Relaxed) as usize;
            if needed > len {
                return Err(ObjectError::TooSmall {
                    needed,
                    available: len,
                });
            }
            Ok(w)
        }
    }

    #[test]
    fn every_placement_reaches_the_same_kind_of_object() {
        let a = Placed::<Words>::anonymous(4).unwrap();
        assert_eq!(a.count.load(Ordering::Relaxed), 4);
        let seg = Arc::new(Segment::builder(Kind::BYTES).size(4096).create().unwrap());
        let b = Placed::<Words>::init_at(Arc::clone(&seg), 128, 10).unwrap();
        let b2 = Placed::<Words>::at(seg.clone(), 128).unwrap();
        assert_eq!(b2.count.load(Ordering::Relaxed), 10);
        assert_eq!(b.offset(), 128);
        // Nothing valid at another offset, nor out of bounds, nor misaligned.
        assert!(matches!(
            Placed::<Words>::at(seg.clone(), 0),
            Err(ObjectError::WrongObject { .. })
        ));
        assert!(matches!(
            Placed::<Words>::at(seg.clone(), 4096),
            Err(ObjectError::Offset(_))
        ));
        assert!(matches!(
            Placed::<Words>::init_at(seg.clone(), 2, 1),
            Err(ObjectError::Offset(_))
        ));
        assert!(matches!(
            Placed::<Words>::init_at(seg.clone(), 4000, 100),
            Err(ObjectError::Offset(_))
        ));
        assert!(matches!(
            Placed::<Words>::anonymous(0),
            Err(ObjectError::InvalidConfig { .. })
        ));
        // A count that claims more than the segment holds is refused.
        b.count.store(10_000, Ordering::Relaxed);
        assert!(matches!(
            Placed::<Words>::at(seg, 128),
            Err(ObjectError::TooSmall { .. })
        ));
    }

    /// A handle with per-process state, given the constructors by the macro.
    struct WordsHandle {
        inner: Placed<Words>,
        local: u32,
    }

    impl Handle for WordsHandle {
        type Object = Words;
        fn from_placed(inner: Placed<Words>) -> Self {
            WordsHandle { inner, local: 7 }
        }
    }

    crate::handle_constructors!(impl[] WordsHandle, "word list");

    #[test]
    fn a_handle_gets_the_six_constructors() {
        let h = WordsHandle::anonymous(2).unwrap();
        assert_eq!((h.inner.count.load(Ordering::Relaxed), h.local), (2, 7));
        let seg = Arc::new(Segment::builder(Kind::BYTES).size(256).create().unwrap());
        WordsHandle::init_at(seg.clone(), 0, 5).unwrap();
        assert_eq!(
            WordsHandle::at(seg, 0)
                .unwrap()
                .inner
                .count
                .load(Ordering::Relaxed),
            5
        );
        let name = crate::name::unique_name("handle");
        let made = WordsHandle::create(&name, 1).unwrap();
        assert!(WordsHandle::open(&name).is_ok());
        assert!(
            WordsHandle::from_fd(made.inner.segment().fd().try_clone_to_owned().unwrap()).is_err(),
            "a named segment's descriptor is not sealed"
        );
    }

    #[test]
    fn a_named_object_opens_by_name_and_checks_its_kind() {
        let name = crate::name::unique_name("object");
        let made = Placed::<Words>::create(&name, 3).unwrap();
        let opened = Placed::<Words>::open(&name).unwrap();
        assert_eq!(opened.count.load(Ordering::Relaxed), 3);
        let other = Segment::builder(Kind::BYTES).name(&name).open();
        assert!(other.is_err(), "another kind is refused");
        drop((made, opened));
        assert!(!crate::name::path_of(&name).exists());
    }
}
