//! [`SharedList<T>`]: Python's `Manager().list()` without a server
//! process: a list in shared memory that every process holding a handle
//! changes directly, under a robust lock.

use crate::container::{
    fingerprint, type_label, ContainerConfig, ContainerError, Scratch, ScratchCell,
};
use crate::raw::{Layout, RawContainerConfig, RawList, RawListTx};
use multiproc_core::liveness::OsJudge;
use multiproc_core::message::Message;
use multiproc_core::object::{ObjectError, Placed, ShmObject};
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Kind;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::ptr::NonNull;
use std::time::Duration;

/// A list of `T` in shared memory, for every process that holds a handle.
///
/// Each operation locks the list (a robust mutex: a holder killed in the
/// middle of an update is rolled back by the next process that locks it,
/// so the list is never left half-changed or locked), copies the encoded
/// items in or out, and unlocks: there is no server to ask and no
/// round trip. Items are any [`Message`]: numbers and [`Pod`] values are
/// copied as their bytes, `serde` types (`String`, tuples, your structs)
/// are encoded with postcard. Equality ([`contains`](SharedList::contains),
/// [`position`](SharedList::position)) compares encoded bytes.
///
/// The capacity (items and bytes) is fixed at creation
/// ([`ContainerConfig`]); a full list refuses with
/// [`ContainerError::CapacityFull`] or [`ContainerError::ArenaFull`], and
/// changes nothing. Several operations can be made one atomic update with
/// [`transaction`](SharedList::transaction).
///
/// Placement is that of every handle of this crate: named
/// ([`create`](SharedList::create), [`open`](SharedList::open)), anonymous
/// for children ([`anonymous`](SharedList::anonymous), passed in the
/// arguments of [`Process::start`](multiproc_core::Process::start)), or at an
/// offset of a segment ([`init_at`](SharedList::init_at),
/// [`at`](SharedList::at)). Opening checks the item type: a list of
/// `String` opened as a list of `u64` is an [`ObjectError`].
///
/// ```
/// use multiproc_sync::{ContainerConfig, SharedList};
///
/// let squares = SharedList::<u64>::anonymous(ContainerConfig::default())?;
/// squares.extend((0..10).map(|i| i * i))?;
/// assert_eq!(squares.get(4)?, 16);
/// assert_eq!(squares.slice(2..5)?, [4, 9, 16]);
/// squares.push(100)?;
/// assert_eq!(squares.len()?, 11);
/// assert_eq!(squares.pop()?, Some(100));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Pod`]: multiproc_core::message::Pod
pub struct SharedList<T: Message + 'static> {
    placed: Placed<ListCell<T>>,
    strategy: WaitStrategy,
    layout: Option<Layout>,
    timeout: Option<Duration>,
    scratch: ScratchCell,
}

/// The shared state of a [`SharedList<T>`]: a [`RawList`] whose item type
/// is checked when it is attached. Its configuration is a
/// [`ContainerConfig`].
#[repr(transparent)]
pub struct ListCell<T> {
    raw: RawList,
    _items: PhantomData<fn() -> T>,
}

// SAFETY: a transparent `RawList` (the `PhantomData` is zero-sized):
// `init_in` writes an empty list recording `T`'s fingerprint, `attach`
// checks everything `RawList::attach` checks, and the fingerprint.
unsafe impl<T: Message + 'static> ShmObject for ListCell<T> {
    const KIND: Kind = RawList::KIND;
    type Config = ContainerConfig;

    fn memory_size(cfg: &ContainerConfig) -> Result<usize, ObjectError> {
        RawList::memory_size(&raw_config::<T>(*cfg))
    }

    unsafe fn init_in(mem: NonNull<u8>, len: usize, cfg: ContainerConfig) {
        // SAFETY: the caller's promise, passed on.
        unsafe { RawList::init_in(mem, len, raw_config::<T>(cfg)) }
    }

    unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Self, ObjectError> {
        // SAFETY: the caller's promise, passed on.
        let raw = unsafe { RawList::attach(mem, len)? };
        raw.check_type(fingerprint::<T>(), type_label::<T>())?;
        // SAFETY: `ListCell<T>` is a transparent `RawList`, so the same
        // address holds one, for the same lifetime.
        Ok(unsafe { &*(raw as *const RawList).cast::<ListCell<T>>() })
    }
}

fn raw_config<T: Message + 'static>(config: ContainerConfig) -> RawContainerConfig {
    RawContainerConfig {
        config,
        key_type: fingerprint::<T>(),
        value_type: 0,
    }
}

multiproc_core::handle_constructors!(impl[T: Message + 'static] SharedList<T>, "shared list");
crate::container::container_handle!(impl[T: Message + 'static] SharedList<T>, ListCell<T>, "list");

impl<T: Message + 'static> std::fmt::Debug for SharedList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedList")
            .field("items", &type_label::<T>())
            .field("segment", &self.placed.segment().name())
            .field("offset", &self.placed.offset())
            .finish_non_exhaustive()
    }
}

/// A list locked by the calling thread, inside
/// [`SharedList::transaction`]: its operations are those of the list, and
/// take effect together when the transaction's closure returns `Ok`, or
/// not at all.
pub struct ListTx<'a, T> {
    raw: RawListTx<'a>,
    raw_scratch: NonNull<Scratch>,
    _items: PhantomData<fn() -> T>,
}

impl<T: Message + 'static> SharedList<T> {
    /// Runs `f` on the locked list: every change `f` makes takes effect
    /// when it returns `Ok`, and none if it returns an error (or panics, or
    /// the process is killed meanwhile). Other processes wait meanwhile.
    ///
    /// ```
    /// # let list = multiproc_sync::SharedList::<u64>::anonymous(Default::default())?;
    /// // Move the last item to the front, atomically.
    /// list.extend([1, 2, 3])?;
    /// list.transaction(|tx| {
    ///     if let Some(last) = tx.pop()? {
    ///         tx.insert(0, last)?;
    ///     }
    ///     Ok(())
    /// })?;
    /// assert_eq!(list.to_vec()?, [3, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Those of locking ([`ContainerError::TimedOut`],
    /// [`ContainerError::NotRecoverable`], [`ContainerError::WouldDeadlock`]
    /// when called from inside another transaction on this list,
    /// [`ContainerError::UnknownIdentity`], [`ContainerError::Corrupted`]),
    /// [`ContainerError::TransactionTooLarge`], and whatever `f` returns.
    #[inline]
    pub fn transaction<R>(
        &self,
        f: impl FnOnce(&mut ListTx<'_, T>) -> Result<R, ContainerError>,
    ) -> Result<R, ContainerError> {
        let layout = self.layout()?;
        let (mem, _) = self.placed.memory();
        let raw = &self.placed.raw;
        let acquired = raw.acquire(&OsJudge, self.strategy, self.timeout)?;
        let mut tx = ListTx {
            // SAFETY: the lock is held (just acquired); `mem` is the list's
            // address in a mapping `self.placed` keeps alive, with at least
            // `layout.total` bytes (checked by `RawList::layout`, which
            // computed `layout`).
            raw: unsafe { raw.held(mem, layout) },
            raw_scratch: self.scratch.get(),
            _items: PhantomData,
        };
        tx.raw.begin(acquired)?;
        let r = f(&mut tx)?;
        tx.split().1.trim();
        tx.raw.commit_in_place()?;
        Ok(r)
    }

    /// The number of items.
    ///
    /// # Errors
    /// Those of locking (see [`transaction`](SharedList::transaction)).
    pub fn len(&self) -> Result<usize, ContainerError> {
        self.transaction(|tx| Ok(tx.len()))
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    /// As [`len`](SharedList::len).
    pub fn is_empty(&self) -> Result<bool, ContainerError> {
        self.transaction(|tx| Ok(tx.is_empty()))
    }

    /// A copy of item `index` (Python's `l[i]`, for `i >= 0`).
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`], [`ContainerError::Decode`], and those
    /// of locking.
    #[inline]
    pub fn get(&self, index: usize) -> Result<T, ContainerError> {
        self.transaction(|tx| tx.get(index))
    }

    /// Replaces item `index` with `item` (Python's `l[i] = v`).
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`], [`ContainerError::ArenaFull`],
    /// [`ContainerError::ItemTooLarge`], [`ContainerError::Encode`], and
    /// those of locking; the list is unchanged.
    pub fn set(&self, index: usize, item: T) -> Result<(), ContainerError> {
        self.transaction(|tx| tx.set(index, item))
    }

    /// Appends `item` (Python's `append`).
    ///
    /// # Errors
    /// [`ContainerError::CapacityFull`], [`ContainerError::ArenaFull`],
    /// [`ContainerError::ItemTooLarge`], [`ContainerError::Encode`], and
    /// those of locking; the list is unchanged.
    #[inline]
    pub fn push(&self, item: T) -> Result<(), ContainerError> {
        self.transaction(|tx| tx.push(item))
    }

    /// Appends every item of `items`, all or none (Python's `extend`).
    ///
    /// # Errors
    /// As [`push`](SharedList::push), for all of them together.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), ContainerError> {
        self.transaction(|tx| tx.extend(items))
    }

    /// Removes and returns the last item; `None` if the list is empty.
    ///
    /// # Errors
    /// [`ContainerError::Decode`] (the item is removed all the same), and
    /// those of locking.
    pub fn pop(&self) -> Result<Option<T>, ContainerError> {
        self.transaction(|tx| tx.pop())
    }

    /// Inserts `item` at `index`, shifting the items after it (Python's
    /// `insert`, for `0 <= index <= len`).
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`] for `index > len`, and as
    /// [`push`](SharedList::push).
    pub fn insert(&self, index: usize, item: T) -> Result<(), ContainerError> {
        self.transaction(|tx| tx.insert(index, item))
    }

    /// Removes and returns item `index`, shifting the items after it
    /// (Python's `pop(i)`).
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`], [`ContainerError::Decode`], and
    /// those of locking.
    pub fn remove(&self, index: usize) -> Result<T, ContainerError> {
        self.transaction(|tx| tx.remove(index))
    }

    /// Removes every item.
    ///
    /// # Errors
    /// Those of locking.
    pub fn clear(&self) -> Result<(), ContainerError> {
        self.transaction(|tx| tx.clear())
    }

    /// Copies of the items in `range` (Python's `l[a:b]`); the bytes are
    /// copied under the lock and decoded after it is released.
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`] if the range does not lie in the list
    /// (unlike Python, nothing is clamped), [`ContainerError::Decode`], and
    /// those of locking.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>, ContainerError> {
        let mut bytes = Vec::new();
        let mut lens = Vec::new();
        self.transaction(|tx| {
            let (start, end) = bounds(&range, tx.len());
            tx.raw.read_range(start, end, &mut bytes, &mut lens)
        })?;
        decode_all(&bytes, &lens)
    }

    /// Copies of every item, in order.
    ///
    /// # Errors
    /// As [`slice`](SharedList::slice).
    pub fn to_vec(&self) -> Result<Vec<T>, ContainerError> {
        self.slice(..)
    }

    /// An iterator over copies of the items as they are now.
    ///
    /// # Errors
    /// As [`to_vec`](SharedList::to_vec).
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>, ContainerError> {
        Ok(self.to_vec()?.into_iter())
    }

    /// Whether an item encodes to the same bytes as `item` (Python's `in`).
    ///
    /// # Errors
    /// [`ContainerError::Encode`], and those of locking.
    pub fn contains(&self, item: &T) -> Result<bool, ContainerError> {
        Ok(self.position(item)?.is_some())
    }

    /// The index of the first item that encodes to the same bytes as
    /// `item` (Python's `index`, with `None` for its `ValueError`).
    ///
    /// # Errors
    /// As [`contains`](SharedList::contains).
    pub fn position(&self, item: &T) -> Result<Option<usize>, ContainerError> {
        self.transaction(|tx| tx.position(item))
    }
}

/// `range` as `start..end` in a list of `len`.
fn bounds(range: &impl RangeBounds<usize>, len: usize) -> (usize, usize) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    (start, end)
}

/// Decodes items stored back to back in `bytes`, of lengths `lens`.
fn decode_all<T: Message>(bytes: &[u8], lens: &[usize]) -> Result<Vec<T>, ContainerError> {
    let mut out = Vec::with_capacity(lens.len());
    let mut at = 0;
    for &len in lens {
        out.push(T::decode(&bytes[at..at + len])?);
        at += len;
    }
    Ok(out)
}

impl<'a, T: Message + 'static> ListTx<'a, T> {
    /// The locked container and the handle's buffers.
    #[inline]
    fn split(&mut self) -> (&mut RawListTx<'a>, &mut Scratch) {
        // SAFETY: the buffers of the handle this transaction came from,
        // which only a transaction holding the container's lock reaches;
        // `self.raw` holds it, and `&mut self` makes this the only use.
        (&mut self.raw, unsafe { self.raw_scratch.as_mut() })
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// A copy of item `index`.
    ///
    /// # Errors
    /// As [`SharedList::get`].
    #[inline]
    pub fn get(&mut self, index: usize) -> Result<T, ContainerError> {
        let (raw, scratch) = self.split();
        let (_, out) = scratch.clear();
        raw.get(index, out)?;
        Ok(T::decode(out)?)
    }

    /// Replaces item `index`.
    ///
    /// # Errors
    /// As [`SharedList::set`].
    pub fn set(&mut self, index: usize, item: T) -> Result<(), ContainerError> {
        let (raw, scratch) = self.split();
        let (bytes, _) = scratch.encode(&item)?;
        raw.set(index, bytes)
    }

    /// Appends `item`.
    ///
    /// # Errors
    /// As [`SharedList::push`].
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), ContainerError> {
        let (raw, scratch) = self.split();
        let (bytes, _) = scratch.encode(&item)?;
        raw.push(bytes)
    }

    /// Appends every item of `items`, all or none.
    ///
    /// # Errors
    /// As [`SharedList::extend`].
    pub fn extend(&mut self, items: impl IntoIterator<Item = T>) -> Result<(), ContainerError> {
        let (raw, scratch) = self.split();
        let (bytes, _) = scratch.clear();
        let mut lens = Vec::new();
        for item in items {
            let start = bytes.len();
            item.encode(bytes)?;
            lens.push(bytes.len() - start);
        }
        raw.extend(bytes, &lens)
    }

    /// Removes and returns the last item.
    ///
    /// # Errors
    /// As [`SharedList::pop`].
    pub fn pop(&mut self) -> Result<Option<T>, ContainerError> {
        let (raw, scratch) = self.split();
        let (_, out) = scratch.clear();
        if !raw.pop(out)? {
            return Ok(None);
        }
        Ok(Some(T::decode(out)?))
    }

    /// Inserts `item` at `index`.
    ///
    /// # Errors
    /// As [`SharedList::insert`].
    pub fn insert(&mut self, index: usize, item: T) -> Result<(), ContainerError> {
        let (raw, scratch) = self.split();
        let (bytes, _) = scratch.encode(&item)?;
        raw.insert(index, bytes)
    }

    /// Removes and returns item `index`.
    ///
    /// # Errors
    /// As [`SharedList::remove`].
    pub fn remove(&mut self, index: usize) -> Result<T, ContainerError> {
        let (raw, scratch) = self.split();
        let (_, out) = scratch.clear();
        raw.remove(index, out)?;
        Ok(T::decode(out)?)
    }

    /// Removes every item.
    ///
    /// # Errors
    /// [`ContainerError::TransactionTooLarge`].
    pub fn clear(&mut self) -> Result<(), ContainerError> {
        self.raw.clear()
    }

    /// Copies of the items in `range`.
    ///
    /// # Errors
    /// As [`SharedList::slice`].
    pub fn slice(&mut self, range: impl RangeBounds<usize>) -> Result<Vec<T>, ContainerError> {
        let (start, end) = bounds(&range, self.len());
        let mut lens = Vec::new();
        let (raw, scratch) = self.split();
        let (_, out) = scratch.clear();
        raw.read_range(start, end, out, &mut lens)?;
        decode_all(out, &lens)
    }

    /// Copies of every item.
    ///
    /// # Errors
    /// As [`SharedList::to_vec`].
    pub fn to_vec(&mut self) -> Result<Vec<T>, ContainerError> {
        self.slice(..)
    }

    /// The index of the first item that encodes like `item`.
    ///
    /// # Errors
    /// As [`SharedList::position`].
    pub fn position(&mut self, item: &T) -> Result<Option<usize>, ContainerError> {
        let (raw, scratch) = self.split();
        let (bytes, _) = scratch.encode(item)?;
        raw.position(bytes)
    }
}
