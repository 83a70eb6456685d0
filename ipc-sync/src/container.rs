//! What the shared containers ([`SharedList`](crate::SharedList) and
//! [`SharedDict`](crate::SharedDict)) have in common: their configuration,
//! their error, and how a value type is named in the segment.

use multiproc_core::message::{DecodeError, EncodeError, Message};
use multiproc_core::IdentityError;

/// The capacity of a container made with [`ContainerConfig::default`].
pub const DEFAULT_CAPACITY: usize = 4096;
/// The arena of a container made with [`ContainerConfig::default`]: 64
/// bytes per entry on average.
pub const DEFAULT_ARENA_BYTES: usize = 256 * 1024;
/// The journal of a container made with [`ContainerConfig::default`].
pub const DEFAULT_JOURNAL_ENTRIES: usize = 64;
/// The fewest journal entries a container accepts: enough for every single
/// operation.
pub const MIN_JOURNAL_ENTRIES: usize = 16;
/// The most entries a container holds.
pub const MAX_CAPACITY: usize = 1 << 26;
/// The largest arena: offsets and lengths in it are 32-bit words.
pub const MAX_ARENA_BYTES: usize = u32::MAX as usize;

/// The size of a shared container, fixed when it is created.
///
/// A container holds at most `capacity` entries (list items, dict
/// entries), whose encoded bytes share an arena of `arena_bytes`. The
/// container reserves twice the arena and the index, so that a compaction
/// (or a large shift) can build the new state beside the old one and
/// switch to it in one journaled word; its memory is about
/// `2 * (arena_bytes + capacity * 8)` for a list and `2 * arena_bytes +
/// 43 * capacity` for a dict (slots of 16 bytes at most three quarters
/// full).
///
/// `journal_entries` bounds how many shared words one update may change in
/// place: every single operation fits the minimum; a
/// [transaction](crate::SharedDict::transaction) takes about three entries
/// per operation.
///
/// ```
/// use multiproc_sync::ContainerConfig;
/// let cfg = ContainerConfig::new(100, 8 * 1024);
/// assert_eq!(cfg.capacity, 100);
/// assert_eq!(ContainerConfig::default().capacity, multiproc_sync::DEFAULT_CAPACITY);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The most entries the container holds (1 to [`MAX_CAPACITY`]).
    pub capacity: usize,
    /// The bytes of encoded keys and values it holds at once (1 to
    /// [`MAX_ARENA_BYTES`]).
    pub arena_bytes: usize,
    /// The shared words one update or transaction may change in place
    /// ([`MIN_JOURNAL_ENTRIES`] to 65 536).
    pub journal_entries: usize,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            capacity: DEFAULT_CAPACITY,
            arena_bytes: DEFAULT_ARENA_BYTES,
            journal_entries: DEFAULT_JOURNAL_ENTRIES,
        }
    }
}

impl ContainerConfig {
    /// A container of `capacity` entries sharing `arena_bytes` of encoded
    /// bytes, with the default journal.
    pub const fn new(capacity: usize, arena_bytes: usize) -> Self {
        ContainerConfig {
            capacity,
            arena_bytes,
            journal_entries: DEFAULT_JOURNAL_ENTRIES,
        }
    }

    /// The same configuration with a journal of `entries` words, for
    /// larger transactions.
    pub const fn with_journal_entries(mut self, entries: usize) -> Self {
        self.journal_entries = entries;
        self
    }
}

/// Why an operation on a shared container failed. Whatever the error, the
/// container is as it was before the operation (or the transaction): an
/// update is applied whole or not at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// The container holds `capacity` entries already.
    #[error("the container is full: it holds at most {capacity} entries")]
    CapacityFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The encoded items do not fit the arena, even compacted.
    #[error(
        "the container's arena is full: {needed} more bytes are needed, {available} of its \
         {arena_bytes} bytes are free"
    )]
    ArenaFull {
        /// The configured arena size.
        arena_bytes: usize,
        /// The bytes the operation needs.
        needed: usize,
        /// The bytes not held by live items.
        available: usize,
    },
    /// One encoded item is larger than the whole arena.
    #[error("an item of {size} bytes cannot fit the container's arena of {arena_bytes} bytes")]
    ItemTooLarge {
        /// The encoded size of the item.
        size: usize,
        /// The configured arena size.
        arena_bytes: usize,
    },
    /// The update would change more shared words in place than the journal
    /// records; nothing was changed. Split the transaction, or create the
    /// container with more [`journal_entries`](ContainerConfig::journal_entries).
    #[error(
        "the update changes more words than the journal's {journal_entries} entries record; \
         nothing was changed"
    )]
    TransactionTooLarge {
        /// The configured journal size.
        journal_entries: usize,
    },
    /// An index or range past the end of a list.
    #[error("index {index} is out of range for a list of {len}")]
    OutOfRange {
        /// The index (or range end) given.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A key or value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Bytes in the container are not an encoding of the value type (a
    /// corrupted item).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The container's shared state is not one this build writes: a word
    /// or offset out of its bounds. Nothing was read past the container.
    #[error("the container's shared state is corrupted: {detail}")]
    Corrupted {
        /// What was found.
        detail: String,
    },
    /// A dead holder's interrupted update could not be rolled back (its
    /// journal is corrupted): the container is closed to everybody.
    #[error("the container is not recoverable: a dead holder's update could not be rolled back")]
    NotRecoverable,
    /// The calling thread is inside a transaction on this container
    /// already (an operation called from the transaction's closure).
    #[error("the calling thread is inside a transaction on this container already")]
    WouldDeadlock,
    /// The handle's timeout ([`with_timeout`](crate::SharedList::with_timeout))
    /// passed while another process held the container.
    #[error("timed out waiting for the container's lock")]
    TimedOut,
    /// This process cannot learn its own identity, which a holder records
    /// so that others can tell whether it died. Nothing was done.
    #[error(transparent)]
    UnknownIdentity(IdentityError),
    /// A fault injected by a unit test: the update stopped as if killed.
    
#[cfg(test)]
    #[error("a fault injected by a test")]
    Injected,
}

impl ContainerError {
    /// A [`ContainerError::Corrupted`] with `detail`.
    pub(crate) fn corrupted(detail: impl Into<String>) -> Self {
        ContainerError::Corrupted {
            detail: detail.into(),
        }
    }
}

/// How a value type is named in a container's segment: a hash of its type
/// name and encoded size, recorded at creation and compared when a handle
/// attaches, so that a list of `String` opened as a list of `u64` is a
/// typed error rather than a stream of decoding errors. Two programs
/// sharing a container by name must name the type the same way (the same
/// type from the same crate).
pub(crate) fn fingerprint<T: Message + 'static>() -> u64 {
    let name = std::any::type_name::<T>();
    let size = T::fixed_size().map_or(u64::MAX, |s| s as u64);
    (multiproc_core::header::fnv1a64(name.as_bytes()) ^ size.rotate_left(17)) | 1
}

/// What `type_name` says of `T`, for error messages.
pub(crate) fn type_label<T: 'static>() -> &'static str {
    std::any::type_name::<T>()
}

/// Buffers an operation encodes into and reads into, so that an operation
/// on small values does not allocate.
#[derive(Default)]
pub(crate) struct Scratch {
    input: Vec<u8>,
    output: Vec<u8>,
}

/// A handle's [`Scratch`]: used only by the thread that holds the
/// container's lock, through the transaction holding it
/// ([`ScratchCell::get`]). A clone of the handle gets buffers of its own.
#[derive(Default)]
pub(crate) struct ScratchCell(std::cell::UnsafeCell<Scratch>);

// SAFETY: the buffers are only reached through the pointer `get` returns,
// by a transaction while it holds the container's lock; one thread at a
// time holds it, so no two threads touch the buffers at once.
unsafe impl Sync for ScratchCell {}

impl Clone for ScratchCell {
    fn clone(&self) -> Self {
        ScratchCell::default()
    }
}

impl ScratchCell {
    /// The buffers, for the transaction that holds the container's lock.
    #[inline]
    pub(crate) fn get(&self) -> std::ptr::NonNull<Scratch> {
        // SAFETY: `UnsafeCell::get` never returns null.
        unsafe { std::ptr::NonNull::new_unchecked(self.0.get()) }
    }
}

impl Scratch {
    /// Both buffers, emptied: (to encode into, to read into).
    #[inline]
    pub(crate) fn clear(&mut self) -> (&mut Vec<u8>, &mut Vec<u8>) {
        self.input.clear();
        self.output.clear();
        (&mut self.input, &mut self.output)
    }

    /// `v` encoded into the emptied input buffer, and the emptied output
    /// buffer.
    #[inline]
    pub(crate) fn encode<T: Message>(
        &mut self,
        v: &T,
    ) -> Result<(&mut Vec<u8>, &mut Vec<u8>), ContainerError> {
        let (input, output) = self.clear();
        v.encode(input)?;
        Ok((input, output))
    }

    /// Lets huge buffers go once an operation is done with them.
    #[inline]
    pub(crate) fn trim(&mut self) {
        const KEEP: usize = 64 * 1024;
        if self.input.capacity() > KEEP || self.output.capacity() > KEEP {
            *self = Scratch::default();
        }
    }
}

/// What a container handle (`SharedList`, `SharedDict`: fields `placed`,
/// `strategy`, `layout`, `timeout`, `scratch`) has besides its operations:
/// [`Handle`](multiproc_core::object::Handle), `Clone`, the handle
/// accessors of every ipc-sync handle, and `with_timeout`, `config`,
/// `recoveries` and the layout it reaches the container through.
macro_rules! container_handle {
    (impl[$($g:tt)*] $t:ident<$($p:ident),*>, $cell:ty, $what:literal) => {
        impl<$($g)*> multiproc_core::object::Handle for $t<$($p),*> {
            type Object = $cell;
            fn from_placed(placed: multiproc_core::object::Placed<$cell>) -> Self {
                // Checked by `attach` already; computed again from the words
                // as they are now, and kept: a container whose
                // configuration words change later (a hostile peer) is
                // still reached through this layout.
                let layout = placed.raw.layout(placed.memory().1).ok();
                $t {
                    placed,
                    strategy: multiproc_core::wait::WaitStrategy::ADAPTIVE,
                    layout,
                    timeout: None,
                    scratch: $crate::container::ScratchCell::default(),
                }
            }
        }

        impl<$($g)*> Clone for $t<$($p),*> {
            #[doc = concat!("Another handle to the same ", $what, ", with the same wait strategy and")]
            /// timeout.
            fn clone(&self) -> Self {
                $t {
                    placed: self.placed.clone(),
                    strategy: self.strategy,
                    layout: self.layout,
                    timeout: self.timeout,
                    scratch: $crate::container::ScratchCell::default(),
                }
            }
        }

        crate::handle::handle!(parts impl[$($g)*] $t<$($p),*>, $cell, $what);

        impl<$($g)*> $t<$($p),*> {
            /// The same handle with a limit on how long each operation waits for
            /// another process's update ([`ContainerError::TimedOut`](crate::ContainerError::TimedOut) after it).
            #[doc = concat!("Without one (the default) an operation waits as long as a live process holds the ", $what, ";")]
            /// a dead holder is noticed within
            /// [`LIVENESS_PERIOD`](crate::raw::LIVENESS_PERIOD) either way.
            pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.timeout = Some(timeout);
                self
            }

            #[doc = concat!("The configuration the ", $what, " was created with.")]
            ///
            /// # Errors
            /// [`ContainerError::Corrupted`](crate::ContainerError::Corrupted) if its
            /// configuration words changed after it was attached.
            pub fn config(&self) -> Result<$crate::container::ContainerConfig, $crate::container::ContainerError> {
                Ok(self.layout()?.config())
            }

            #[doc = concat!("How many times a process took the ", $what, " over from a holder that died")]
            /// (rolling back its update, if it was in the middle of one).
            pub fn recoveries(&self) -> u64 {
                self.placed.raw.recoveries()
            }

            fn layout(&self) -> Result<&$crate::raw::Layout, $crate::container::ContainerError> {
                self.layout.as_ref().ok_or_else(|| {
                    $crate::container::ContainerError::corrupted(
                        "its configuration changed after attach",
                    )
                })
            }
        }
    };
}
pub(crate) use container_handle;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_types_apart() {
        assert_eq!(fingerprint::<u64>(), fingerprint::<u64>());
        assert_ne!(fingerprint::<u64>(), fingerprint::<i64>());
        assert_ne!(fingerprint::<u64>(), fingerprint::<String>());
        assert_ne!(fingerprint::<String>(), 0);
    }

    #[test]
    fn scratch_buffers_come_back_empty_and_huge_ones_go() {
        let cell = ScratchCell::default();
        // SAFETY: the only user of this cell.
        let s = unsafe { &mut *cell.get().as_ptr() };
        let (input, output) = s.encode(&7u32).unwrap();
        assert_eq!(input.len(), 4);
        output.extend_from_slice(b"abc");
        let (input, output) = s.clear();
        assert!(input.is_empty() && output.is_empty());
        assert!(input.capacity() >= 4);
        output.reserve(1 << 20);
        s.trim();
        assert_eq!(s.clear().1.capacity(), 0);
        assert!(cell.clone().get() != cell.get(), "a clone has its own");
    }
}
