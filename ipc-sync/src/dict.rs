//! [`SharedDict<K, V>`]: Python's `Manager().dict()` without a server
//! process: a hash map in shared memory that every process holding a
//! handle changes directly, under a robust lock.

use crate::container::{
    fingerprint, type_label, ContainerConfig, ContainerError, Scratch, ScratchCell,
};
use crate::raw::{Layout, RawContainerConfig, RawDict, RawDictTx};
use multiproc_core::liveness::OsJudge;
use multiproc_core::message::Message;
use multiproc_core::object::{ObjectError, Placed, ShmObject};
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Kind;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

/// A map from `K` to `V` in shared memory, for every process that holds a
/// handle.
///
/// Each operation locks the map (a robust mutex: a holder killed in the
/// middle of an update is rolled back by the next process that locks it,
/// so the map is never left half-changed or locked), copies the encoded
/// key and value in or out, and unlocks: there is no server to ask and no
/// round trip. Keys and values are any [`Message`]: numbers and
/// [`Pod`](multiproc_core::message::Pod) values are copied as their bytes,
/// `serde` types are encoded with postcard.
///
/// **Keys are compared and hashed by their encoded bytes**, not by `K`'s
/// `Eq` and `Hash`: two keys are the same key when they encode to the same
/// bytes. For numbers, strings, tuples and derived structs that is the
/// same thing. A key whose encoding is not deterministic (a `HashMap` or
/// `HashSet` inside the key, whose iteration order varies) may not be found
/// again: that is the caller's risk. Entries come back in no particular
/// order.
///
/// The capacity (entries and bytes) is fixed at creation
/// ([`ContainerConfig`]); a full map refuses with
/// [`ContainerError::CapacityFull`] or [`ContainerError::ArenaFull`], and
/// changes nothing. Several operations can be made one atomic update with
/// [`transaction`](SharedDict::transaction).
///
/// Placement is that of every handle of this crate: named
/// ([`create`](SharedDict::create), [`open`](SharedDict::open)), anonymous
/// for children ([`anonymous`](SharedDict::anonymous), passed in the
/// arguments of [`Process::start`](multiproc_core::Process::start)), or at an
/// offset of a segment ([`init_at`](SharedDict::init_at),
/// [`at`](SharedDict::at)). Opening checks the key and value types.
///
/// ```
/// use multiproc_sync::{ContainerConfig, SharedDict};
///
/// let ages = SharedDict::<String, u32>::anonymous(ContainerConfig::default())?;
/// ages.insert("ada".to_string(), 36)?;
/// assert_eq!(ages.insert("ada".to_string(), 37)?, Some(36));
/// assert_eq!(ages.get(&"ada".to_string())?, Some(37));
/// assert!(!ages.contains_key(&"bob".to_string())?);
/// assert_eq!(ages.len()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedDict<K: Message + 'static, V: Message + 'static> {
    placed: Placed<DictCell<K, V>>,
    strategy: WaitStrategy,
    layout: Option<Layout>,
    timeout: Option<Duration>,
    scratch: ScratchCell,
}

/// The shared state of a [`SharedDict<K, V>`]: a [`RawDict`] whose key and
/// value types are checked when it is attached. Its configuration is a
/// [`ContainerConfig`].
#[repr(transparent)]
pub struct DictCell<K, V> {
    raw: RawDict,
    _types: PhantomData<fn() -> (K, V)>,
}

// SAFETY: a transparent `RawDict` (the `PhantomData` is zero-sized):
// `init_in` writes an empty dict recording the types' fingerprints,
// `attach` checks everything `RawDict::attach` checks, and the
// fingerprints.
unsafe impl<K: Message + 'static, V: Message + 'static> ShmObject for DictCell<K, V> {
    const KIND: Kind = RawDict::KIND;
    type Config = ContainerConfig;

    fn memory_size(cfg: &ContainerConfig) -> Result<usize, ObjectError> {
        RawDict::memory_size(&raw_config::<K, V>(*cfg))
    }

    unsafe fn init_in(mem: NonNull<u8>, len: usize, cfg: ContainerConfig) {
        // SAFETY: the caller's promise, passed on.
        unsafe { RawDict::init_in(mem, len, raw_config::<K, V>(cfg)) }
    }

    unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Self, ObjectError> {
        // SAFETY: the caller's promise, passed on.
        let raw = unsafe { RawDict::attach(mem, len)? };
        raw.check_types(
            (fingerprint::<K>(), fingerprint::<V>()),
            (type_label::<K>(), type_label::<V>()),
        )?;
        // SAFETY: `DictCell<K, V>` is a transparent `RawDict`, so the same
        // address holds one, for the same lifetime.
        Ok(unsafe { &*(raw as *const RawDict).cast::<DictCell<K, V>>() })
    }
}

fn raw_config<K: Message + 'static, V: Message + 'static>(
    config: ContainerConfig,
) -> RawContainerConfig {
    RawContainerConfig {
        config,
        key_type: fingerprint::<K>(),
        value_type: fingerprint::<V>(),
    }
}

multiproc_core::handle_constructors!(impl[K: Message + 'static, V: Message + 'static] SharedDict<K, V>, "shared dict");
crate::container::container_handle!(impl[K: Message + 'static, V: Message + 'static] SharedDict<K, V>, DictCell<K, V>, "map");

impl<K: Message + 'static, V: Message + 'static> std::fmt::Debug for SharedDict<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDict")
            .field("keys", &type_label::<K>())
            .field("values", &type_label::<V>())
            .field("segment", &self.placed.segment().name())
            .field("offset", &self.placed.offset())
            .finish_non_exhaustive()
    }
}

/// A map locked by the calling thread, inside
/// [`SharedDict::transaction`]: its operations are those of the map, and
/// take effect together when the transaction's closure returns `Ok`, or
/// not at all.
pub struct DictTx<'a, K, V> {
    raw: RawDictTx<'a>,
    raw_scratch: NonNull<Scratch>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: Message + 'static, V: Message + 'static> SharedDict<K, V> {
    /// Runs `f` on the locked map: every change `f` makes takes effect
    /// when it returns `Ok`, and none if it returns an error (or panics, or
    /// the process is killed meanwhile). Other processes wait meanwhile.
    ///
    /// ```
    /// # let d = multiproc_sync::SharedDict::<String, i64>::anonymous(Default::default())?;
    /// # d.insert("alice".into(), 10)?;
    /// // Move 5 from one account to another, atomically.
    /// d.transaction(|tx| {
    ///     let from = tx.get(&"alice".to_string())?.unwrap_or(0);
    ///     let to = tx.get(&"bob".to_string())?.unwrap_or(0);
    ///     tx.insert("alice".to_string(), from - 5)?;
    ///     tx.insert("bob".to_string(), to + 5)?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(d.get(&"bob".to_string())?, Some(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Those of locking ([`ContainerError::TimedOut`],
    /// [`ContainerError::NotRecoverable`], [`ContainerError::WouldDeadlock`]
    /// when called from inside another transaction on this map,
    /// [`ContainerError::UnknownIdentity`], [`ContainerError::Corrupted`]),
    /// [`ContainerError::TransactionTooLarge`], and whatever `f` returns.
    #[inline]
    pub fn transaction<R>(
        &self,
        f: impl FnOnce(&mut DictTx<'_, K, V>) -> Result<R, ContainerError>,
    ) -> Result<R, ContainerError> {
        let layout = self.layout()?;
        let (mem, _) = self.placed.memory();
        let raw = &self.placed.raw;
        let acquired = raw.acquire(&OsJudge, self.strategy, self.timeout)?;
        let mut tx = DictTx {
            // SAFETY: the lock is held (just acquired); `mem` is the map's
            // address in a mapping `self.placed` keeps alive, with at least
            // `layout.total` bytes (checked by `RawDict::layout`, which
            // computed `layout`).
            raw: unsafe { raw.held(mem, layout) },
            raw_scratch: self.scratch.get(),
            _types: PhantomData,
        };
        tx.raw.begin(acquired)?;
        let r = f(&mut tx)?;
        tx.split().1.trim();
        tx.raw.commit_in_place()?;
        Ok(r)
    }

    /// The number of entries.
    ///
    /// # Errors
    /// Those of locking (see [`transaction`](SharedDict::transaction)).
    pub fn len(&self) -> Result<usize, ContainerError> {
        self.transaction(|tx| Ok(tx.len()))
    }

    /// Whether the map is empty.
    ///
    /// # Errors
    /// As [`len`](SharedDict::len).
    pub fn is_empty(&self) -> Result<bool, ContainerError> {
        self.transaction(|tx| Ok(tx.is_empty()))
    }

    /// A copy of the value of `key`, if present (Python's `d.get(k)`).
    ///
    /// # Errors
    /// [`ContainerError::Encode`] (the key), [`ContainerError::Decode`]
    /// (the value), and those of locking.
    #[inline]
    pub fn get(&self, key: &K) -> Result<Option<V>, ContainerError> {
        self.transaction(|tx| tx.get(key))
    }

    /// Whether `key` is present (Python's `k in d`).
    ///
    /// # Errors
    /// [`ContainerError::Encode`], and those of locking.
    pub fn contains_key(&self, key: &K) -> Result<bool, ContainerError> {
        self.transaction(|tx| tx.contains_key(key))
    }

    /// Sets `key` to `value` (Python's `d[k] = v`); returns the old value,
    /// if `key` was present.
    ///
    /// # Errors
    /// [`ContainerError::CapacityFull`] (a new key),
    /// [`ContainerError::ArenaFull`], [`ContainerError::ItemTooLarge`],
    /// [`ContainerError::Encode`], [`ContainerError::Decode`] (the old
    /// value; the new one is set), and those of locking; on any other
    /// error the map is unchanged.
    #[inline]
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, ContainerError> {
        self.transaction(|tx| tx.insert(key, value))
    }

    /// Removes `key`; returns its value, if it was present (Python's
    /// `d.pop(k, None)`).
    ///
    /// # Errors
    /// [`ContainerError::Encode`], [`ContainerError::Decode`] (the entry is
    /// removed all the same), and those of locking.
    pub fn remove(&self, key: &K) -> Result<Option<V>, ContainerError> {
        self.transaction(|tx| tx.remove(key))
    }

    /// Sets every `(key, value)` of `entries`, all or none (Python's
    /// `update`).
    ///
    /// # Errors
    /// As [`insert`](SharedDict::insert), for all of them together.
    pub fn extend(&self, entries: impl IntoIterator<Item = (K, V)>) -> Result<(), ContainerError> {
        self.transaction(|tx| {
            for (k, v) in entries {
                tx.insert(k, v)?;
            }
            Ok(())
        })
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// Those of locking.
    pub fn clear(&self) -> Result<(), ContainerError> {
        self.transaction(|tx| tx.clear())
    }

    /// Copies of every entry, in no particular order; the bytes are copied
    /// under the lock and decoded after it is released.
    ///
    /// # Errors
    /// [`ContainerError::Decode`], and those of locking.
    pub fn items(&self) -> Result<Vec<(K, V)>, ContainerError> {
        let mut bytes = Vec::new();
        let mut lens = Vec::new();
        self.transaction(|tx| tx.raw.read_all(&mut bytes, &mut lens))?;
        decode_entries(&bytes, &lens)
    }

    /// Copies of every key, in no particular order.
    ///
    /// # Errors
    /// As [`items`](SharedDict::items).
    pub fn keys(&self) -> Result<Vec<K>, ContainerError> {
        Ok(self.items()?.into_iter().map(|(k, _)| k).collect())
    }

    /// Copies of every value, in no particular order.
    ///
    /// # Errors
    /// As [`items`](SharedDict::items).
    pub fn values(&self) -> Result<Vec<V>, ContainerError> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }

    /// A copy of the map as a `HashMap` (Python's `dict(d)`).
    ///
    /// # Errors
    /// As [`items`](SharedDict::items).
    pub fn snapshot(&self) -> Result<HashMap<K, V>, ContainerError>
    where
        K: Eq + Hash,
    {
        Ok(self.items()?.into_iter().collect())
    }
}

/// Decodes entries stored key then value, back to back, of lengths `lens`.
fn decode_entries<K: Message, V: Message>(
    bytes: &[u8],
    lens: &[(usize, usize)],
) -> Result<Vec<(K, V)>, ContainerError> {
    let mut out = Vec::with_capacity(lens.len());
    let mut at = 0;
    for &(klen, vlen) in lens {
        let k = K::decode(&bytes[at..at + klen])?;
        let v = V::decode(&bytes[at + klen..at + klen + vlen])?;
        out.push((k, v));
        at += klen + vlen;
    }
    Ok(out)
}

impl<'a, K: Message + 'static, V: Message + 'static> DictTx<'a, K, V> {
    /// The locked container and the handle's buffers.
    #[inline]
    fn split(&mut self) -> (&mut RawDictTx<'a>, &mut Scratch) {
        // SAFETY: the buffers of the handle this transaction came from,
        // which only a transaction holding the container's lock reaches;
        // `self.raw` holds it, and `&mut self` makes this the only use.
        (&mut self.raw, unsafe { self.raw_scratch.as_mut() })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// A copy of the value of `key`, if present.
    ///
    /// # Errors
    /// As [`SharedDict::get`].
    #[inline]
    pub fn get(&mut self, key: &K) -> Result<Option<V>, ContainerError> {
        let (raw, scratch) = self.split();
        let (key, out) = scratch.encode(key)?;
        if !raw.get(key, out)? {
            return Ok(None);
        }
        Ok(Some(V::decode(out)?))
    }

    /// Whether `key` is present.
    ///
    /// # Errors
    /// As [`SharedDict::contains_key`].
    pub fn contains_key(&mut self, key: &K) -> Result<bool, ContainerError> {
        let (raw, scratch) = self.split();
        let (key, _) = scratch.encode(key)?;
        raw.contains(key)
    }

    /// Sets `key` to `value`; returns the old value, if any.
    ///
    /// # Errors
    /// As [`SharedDict::insert`].
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>, ContainerError> {
        let (raw, scratch) = self.split();
        let (bytes, out) = scratch.encode(&key)?;
        let k = bytes.len();
        value.encode(bytes)?;
        let (key, value) = bytes.split_at(k);
        if !raw.insert(key, value, out)? {
            return Ok(None);
        }
        Ok(Some(V::decode(out)?))
    }

    /// Removes `key`; returns its value, if it was present.
    ///
    /// # Errors
    /// As [`SharedDict::remove`].
    pub fn remove(&mut self, key: &K) -> Result<Option<V>, ContainerError> {
        let (raw, scratch) = self.split();
        let (key, out) = scratch.encode(key)?;
        if !raw.remove(key, out)? {
            return Ok(None);
        }
        Ok(Some(V::decode(out)?))
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// [`ContainerError::TransactionTooLarge`], [`ContainerError::Corrupted`].
    pub fn clear(&mut self) -> Result<(), ContainerError> {
        self.raw.clear()
    }

    /// Copies of every entry, in no particular order.
    ///
    /// # Errors
    /// As [`SharedDict::items`].
    pub fn items(&mut self) -> Result<Vec<(K, V)>, ContainerError> {
        let mut lens = Vec::new();
        let (raw, scratch) = self.split();
        let (_, out) = scratch.clear();
        raw.read_all(out, &mut lens)?;
        decode_entries(out, &lens)
    }
}
