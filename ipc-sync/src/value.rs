//! [`Value`] and [`Array`]: Python's shared `Value` and `Array`, a
//! plain-old-data value in shared memory with its robust lock.

use crate::error::LockError;
use crate::mutex::{value_layout, Mutex, MutexCell, MutexGuard};
use crate::Error;
use ipc_core::header::layout_hash;
use ipc_core::{Kind, Segment, Shareable};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The result of a `Value` or `Array` access: the lock's errors carry the
/// guard (see [`LockError`]).
pub type ValueResult<'a, T, R> = Result<R, LockError<MutexGuard<'a, T>>>;

/// A `T` in shared memory with its own robust lock (Python's
/// `multiprocessing.Value`): [`Value::get`] and [`Value::set`] copy the value
/// under the lock, [`Value::get_lock`] gives the [`Mutex`] for longer
/// critical sections (Python's `with v.get_lock():`).
///
/// It has its own segment kind (`ipc-sync/value`), so a `Value` name opened
/// as a `Mutex` (or the other way round) is a typed error. For lock-free
/// access to an integer, place atomics in a segment instead
/// (`Segment::get::<AtomicU64>`).
///
/// ```
/// let v = ipc_sync::Value::anonymous(1.5f64)?;
/// v.set(2.5).expect("set");
/// assert_eq!(v.get().expect("get"), 2.5);
/// *v.get_lock().lock().expect("lock") += 1.0;
/// assert_eq!(v.get().expect("get"), 3.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T: Shareable + Copy> {
    mutex: Mutex<T>,
}

impl<T: Shareable + Copy> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value")
            .field("segment", &self.mutex.segment().name())
            .finish_non_exhaustive()
    }
}

impl<T: Shareable + Copy> Value<T> {
    /// The segment kind of a `Value<T>`.
    pub fn kind() -> Kind {
        Kind::new(
            "ipc-sync/value",
            1,
            layout_hash(&[
                std::mem::size_of::<MutexCell<T>>() as u64,
                std::mem::align_of::<MutexCell<T>>() as u64,
                value_layout::<T>(),
            ]),
        )
    }

    /// Creates a value in a new named segment.
    pub fn create(name: &str, value: T) -> Result<Self, Error> {
        Ok(Value {
            mutex: Mutex::create_kind(Self::kind(), Some(name), value)?,
        })
    }

    /// Creates a value in an anonymous segment.
    pub fn anonymous(value: T) -> Result<Self, Error> {
        Ok(Value {
            mutex: Mutex::create_kind(Self::kind(), None, value)?,
        })
    }

    /// Opens a named value (type tag, version and the layout of `T`
    /// checked).
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Value {
            mutex: Mutex::open_kind(Self::kind(), name)?,
        })
    }

    /// Maps a value's segment from a descriptor.
    ///
    /// # Errors
    /// [`Error::Segment`](crate::Error::Segment) with
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed) for a
    /// descriptor not sealed against resizing (its sender could shrink it
    /// under this mapping), or a segment holding something else.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
        Ok(Value {
            mutex: Mutex::from_fd_kind(Self::kind(), fd)?,
        })
    }

    /// Initializes a value at `offset` of any segment (a
    /// [`MutexCell<T>`] of [`Mutex::memory_size`] bytes).
    pub fn init_at(seg: Arc<Segment>, offset: u64, value: T) -> Result<Self, Error> {
        Ok(Value {
            mutex: Mutex::init_at(seg, offset, value)?,
        })
    }

    /// The value initialized at `offset` of `seg`.
    pub fn at(seg: Arc<Segment>, offset: u64) -> Result<Self, Error> {
        Ok(Value {
            mutex: Mutex::at(seg, offset)?,
        })
    }

    /// A copy of the value, read under the lock.
    ///
    /// # Errors
    /// Those of [`Mutex::lock`]; after [`LockError::OwnerDied`] repair the
    /// value through the carried guard.
    pub fn get(&self) -> ValueResult<'_, T, T> {
        Ok(*self.mutex.lock()?)
    }

    /// Stores `value` under the lock.
    pub fn set(&self, value: T) -> ValueResult<'_, T, ()> {
        *self.mutex.lock()? = value;
        Ok(())
    }

    /// Applies `f` to the value under the lock and returns its result.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> ValueResult<'_, T, R> {
        Ok(f(&mut *self.mutex.lock()?))
    }

    /// The lock that guards the value (Python's `get_lock()`).
    pub fn get_lock(&self) -> &Mutex<T> {
        &self.mutex
    }

    /// The segment holding the value.
    pub fn segment(&self) -> &Arc<Segment> {
        self.mutex.segment()
    }
}

/// A fixed-length array of `N` `T`s in shared memory with its robust lock
/// (Python's `multiprocessing.Array`). Element access checks the index: one
/// past the end is [`IndexError::OutOfBounds`] and touches nothing.
///
/// ```
/// let a = ipc_sync::Array::<u32, 4>::anonymous([0; 4])?;
/// a.set(2, 7).expect("in bounds");
/// assert_eq!(a.get(2).expect("in bounds"), 7);
/// assert!(a.get(4).is_err());
/// assert_eq!(a.to_array().expect("lock"), [0, 0, 7, 0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T: Shareable + Copy, const N: usize> {
    value: Value<[T; N]>,
}

impl<T: Shareable + Copy, const N: usize> std::fmt::Debug for Array<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("len", &N)
            .finish_non_exhaustive()
    }
}

/// Why an array element access failed.
#[derive(thiserror::Error)]
pub enum IndexError<G> {
    /// The index is past the end; nothing was read or written.
    #[error("index {index} is out of bounds for an array of {len}")]
    OutOfBounds {
        /// The index given.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// Locking failed (see [`LockError`]).
    #[error(transparent)]
    Lock(LockError<G>),
}

impl<G> std::fmt::Debug for IndexError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexError::OutOfBounds { index, len } => f
                .debug_struct("OutOfBounds")
                .field("index", index)
                .field("len", len)
                .finish(),
            IndexError::Lock(e) => f.debug_tuple("Lock").field(e).finish(),
        }
    }
}

impl<G> From<LockError<G>> for IndexError<G> {
    fn from(e: LockError<G>) -> Self {
        IndexError::Lock(e)
    }
}

/// The result of an [`Array`] element access.
pub type IndexResult<'a, T, const N: usize, R> = Result<R, IndexError<MutexGuard<'a, [T; N]>>>;

impl<T: Shareable + Copy, const N: usize> Array<T, N> {
    /// Creates an array in a new named segment.
    pub fn create(name: &str, values: [T; N]) -> Result<Self, Error> {
        Ok(Array {
            value: Value::create(name, values)?,
        })
    }

    /// Creates an array in an anonymous segment.
    pub fn anonymous(values: [T; N]) -> Result<Self, Error> {
        Ok(Array {
            value: Value::anonymous(values)?,
        })
    }

    /// Opens a named array (element layout and length checked).
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Array {
            value: Value::open(name)?,
        })
    }

    /// Maps an array's segment from a descriptor.
    ///
    /// # Errors
    /// [`Error::Segment`](crate::Error::Segment) with
    /// [`SegmentError::Unsealed`](ipc_core::SegmentError::Unsealed) for a
    /// descriptor not sealed against resizing (its sender could shrink it
    /// under this mapping), or a segment holding something else.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
        Ok(Array {
            value: Value::from_fd(fd)?,
        })
    }

    /// The number of elements.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    /// A copy of element `index`.
    pub fn get(&self, index: usize) -> IndexResult<'_, T, N, T> {
        if index >= N {
            return Err(IndexError::OutOfBounds { index, len: N });
        }
        Ok(self.value.get_lock().lock()?[index])
    }

    /// Stores `v` at `index`.
    pub fn set(&self, index: usize, v: T) -> IndexResult<'_, T, N, ()> {
        if index >= N {
            return Err(IndexError::OutOfBounds { index, len: N });
        }
        self.value.get_lock().lock()?[index] = v;
        Ok(())
    }

    /// A copy of every element, read under the lock.
    pub fn to_array(&self) -> ValueResult<'_, [T; N], [T; N]> {
        self.value.get()
    }

    /// The lock that guards the array; its guard derefs to `[T; N]`.
    pub fn get_lock(&self) -> &Mutex<[T; N]> {
        self.value.get_lock()
    }

    /// The segment holding the array.
    pub fn segment(&self) -> &Arc<Segment> {
        self.value.segment()
    }
}
