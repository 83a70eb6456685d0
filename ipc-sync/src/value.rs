//! [`Value`] and [`Array`]: Python's shared `Value` and `Array`, a
//! plain-old-data value in shared memory with its robust lock.

use crate::cell::{DataCell, ValueLock};
use crate::error::LockError;
use crate::handle::handle;
use crate::mutex::{Mutex, MutexGuard};
use multiproc_core::Shareable;

/// The result of a `Value` or `Array` access: the lock's errors carry the
/// guard (see [`LockError`]).
pub type ValueResult<'a, T, R> = Result<R, LockError<MutexGuard<'a, T, ValueLock>>>;

/// A `T` in shared memory with its own robust lock (Python's
/// `multiprocessing.Value`): [`Value::get`] and [`Value::set`] copy the value
/// under the lock, [`Value::get_lock`] gives the [`Mutex`] for longer
/// critical sections (Python's `with v.get_lock():`). Its configuration is
/// the initial value.
///
/// It has its own segment kind (`ipc-sync/value`), so a `Value` name opened
/// as a `Mutex` (or the other way round) is a typed error. For lock-free
/// access to an integer, place atomics in a segment instead
/// (`Segment::get::<AtomicU64>`).
///
/// ```
/// let v = multiproc_sync::Value::anonymous(1.5f64)?;
/// v.set(2.5).expect("set");
/// assert_eq!(v.get().expect("get"), 2.5);
/// *v.get_lock().lock().expect("lock") += 1.0;
/// assert_eq!(v.get().expect("get"), 3.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T: Shareable + Copy + Send + Sync> {
    mutex: Mutex<T, ValueLock>,
}

multiproc_core::handle_constructors!(impl[T: Shareable + Copy + Send + Sync] Value<T>, "value");
handle!(delegate impl[T: Shareable + Copy + Send + Sync] Value<T> to mutex: Mutex<T, ValueLock>, DataCell<ValueLock, T>, "value");

impl<T: Shareable + Copy + Send + Sync> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value")
            .field("segment", &self.segment().name())
            .finish_non_exhaustive()
    }
}

impl<T: Shareable + Copy + Send + Sync> Value<T> {
    /// A copy of the value, read under the lock.
    ///
    /// # Errors
    /// Those of [`Mutex::lock`]; after [`LockError::OwnerDied`] repair the
    /// value through the carried guard.
    pub fn get(&self) -> ValueResult<'_, T, T> {
        Ok(*self.mutex.lock()?)
    }

    /// Stores `value` under the lock.
    ///
    /// # Errors
    /// As [`Value::get`].
    pub fn set(&self, value: T) -> ValueResult<'_, T, ()> {
        *self.mutex.lock()? = value;
        Ok(())
    }

    /// Applies `f` to the value under the lock and returns its result.
    ///
    /// # Errors
    /// As [`Value::get`].
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> ValueResult<'_, T, R> {
        Ok(f(&mut *self.mutex.lock()?))
    }

    /// The lock that guards the value (Python's `get_lock()`).
    pub fn get_lock(&self) -> &Mutex<T, ValueLock> {
        &self.mutex
    }
}

/// A fixed-length array of `N` `T`s in shared memory with its robust lock
/// (Python's `multiprocessing.Array`). Element access checks the index: one
/// past the end is [`IndexError::OutOfBounds`] and touches nothing. Its
/// configuration is the initial elements.
///
/// ```
/// let a = multiproc_sync::Array::<u32, 4>::anonymous([0; 4])?;
/// a.set(2, 7).expect("in bounds");
/// assert_eq!(a.get(2).expect("in bounds"), 7);
/// assert!(a.get(4).is_err());
/// assert_eq!(a.to_array().expect("lock"), [0, 0, 7, 0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T: Shareable + Copy + Send + Sync, const N: usize> {
    value: Value<[T; N]>,
}

multiproc_core::handle_constructors!(impl[T: Shareable + Copy + Send + Sync, const N: usize] Array<T, N>, "array");
handle!(delegate impl[T: Shareable + Copy + Send + Sync, const N: usize] Array<T, N> to value: Value<[T; N]>, DataCell<ValueLock, [T; N]>, "array");

impl<T: Shareable + Copy + Send + Sync, const N: usize> std::fmt::Debug for Array<T, N> {
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

impl<G> IndexError<G> {
    /// The error without a guard (`'static`, `Send`, `Sync`), for `?`; see
    /// [`LockError::without_guard`].
    pub fn without_guard(self) -> IndexError<()> {
        match self {
            IndexError::OutOfBounds { index, len } => IndexError::OutOfBounds { index, len },
            IndexError::Lock(e) => IndexError::Lock(e.without_guard()),
        }
    }
}

/// The result of an [`Array`] element access.
pub type IndexResult<'a, T, const N: usize, R> =
    Result<R, IndexError<MutexGuard<'a, [T; N], ValueLock>>>;

impl<T: Shareable + Copy + Send + Sync, const N: usize> Array<T, N> {
    /// The number of elements.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    /// A copy of element `index`.
    ///
    /// # Errors
    /// [`IndexError::OutOfBounds`], or the lock's errors
    /// ([`IndexError::Lock`]).
    pub fn get(&self, index: usize) -> IndexResult<'_, T, N, T> {
        if index >= N {
            return Err(IndexError::OutOfBounds { index, len: N });
        }
        Ok(self.value.get_lock().lock()?[index])
    }

    /// Stores `v` at `index`.
    ///
    /// # Errors
    /// As [`Array::get`].
    pub fn set(&self, index: usize, v: T) -> IndexResult<'_, T, N, ()> {
        if index >= N {
            return Err(IndexError::OutOfBounds { index, len: N });
        }
        self.value.get_lock().lock()?[index] = v;
        Ok(())
    }

    /// A copy of every element, read under the lock.
    ///
    /// # Errors
    /// As [`Value::get`].
    pub fn to_array(&self) -> ValueResult<'_, [T; N], [T; N]> {
        self.value.get()
    }

    /// The lock that guards the array; its guard derefs to `[T; N]`.
    pub fn get_lock(&self) -> &Mutex<[T; N], ValueLock> {
        self.value.get_lock()
    }
}
