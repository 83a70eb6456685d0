//! [`RawList`]: a list of byte strings in shared memory, every update
//! atomic across a SIGKILL of its holder (see the
//! [journal](super::journal)).
//!
//! The index bank holds one 8-byte slot per item, in order: the item's
//! offset in the arena (low 32 bits) and its length (high 32 bits). `push`
//! appends the item's bytes and writes the slot past the end, which the
//! start of the update does not reference, so only `len`, `top` and `live`
//! are journaled. `insert` and `remove` in the middle shift the slots
//! after the index in place, journaling each, when that is at most
//! [`SHIFT_IN_PLACE`] slots; a longer shift copies the index into the
//! other bank with the gap opened or closed, and switches to it.

use super::journal::Locked;
use super::mutex::Acquired;
use super::store::{Header, Layout, Shape, LEN, LIVE, TOP};
use crate::container::ContainerError;
use multiproc_core::object::ObjectError;
use multiproc_core::Kind;

/// The longest shift of slots done in place (journaled) rather than by
/// copying the index into the other bank.
pub const SHIFT_IN_PLACE: u64 = 32;

/// A list of byte strings in shared memory: the header of the container,
/// followed by its journal, index banks and arena banks. See the [module
/// docs](self).
#[repr(transparent)]
#[derive(Debug)]
pub struct RawList {
    header: Header,
}

super::store::raw_container!(
    RawList,
    RawListTx,
    Shape::List,
    "list",
    kind: Kind::new(
        "ipc-sync/list",
        1,
        multiproc_core::header::layout_hash(&[256, 8, 16, 8]),
    ),
);

impl RawList {
    /// Checks the fingerprint of the item type recorded at creation.
    ///
    /// # Errors
    /// [`ObjectError::WrongObject`] naming `name`.
    pub fn check_type(&self, fingerprint: u64, name: &str) -> Result<(), ObjectError> {
        self.header
            .check_types(Shape::List, (fingerprint, 0), (name, "no value type"))
    }
}

/// A [`RawList`] locked by the calling thread: its operations change it
/// through the journal; [`commit`](RawListTx::commit) makes them one
/// update, dropping it undoes them.
pub struct RawListTx<'a> {
    g: Locked<'a>,
    /// Rebuilds (compactions, long shifts) in this update so far.
    rebuilds: u32,
}

/// How a rebuild changes the order of the slots.
#[derive(Clone, Copy)]
enum Edit {
    None,
    /// A slot (packed) inserted at an index.
    Insert(u64, u64),
    /// The slot at an index removed.
    Remove(u64),
}

fn pack(off: u64, len: u64) -> u64 {
    off | (len << 32)
}

fn unpack(w: u64) -> (u64, u64) {
    (w & 0xffff_ffff, w >> 32)
}

impl RawListTx<'_> {
    /// Rolls back a dead holder's update and checks the state (see
    /// [`RawList::held`]).
    #[inline(always)]
    pub(crate) fn begin(&mut self, acquired: Acquired) -> Result<(), ContainerError> {
        self.g.begin(acquired)
    }

    /// The number of items.
    #[inline]
    pub fn len(&self) -> usize {
        self.g.state(LEN) as usize
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn layout(&self) -> &Layout {
        self.g.layout()
    }

    #[inline]
    fn slot_off(&self, i: u64) -> u64 {
        self.g.index_base() + 8 * i
    }

    #[inline]
    fn slot(&self, i: u64) -> Result<(u64, u64), ContainerError> {
        Ok(unpack(self.g.load(self.slot_off(i))?))
    }

    #[inline]
    fn index(&self, i: usize) -> Result<u64, ContainerError> {
        if i >= self.len() {
            return Err(ContainerError::OutOfRange {
                index: i,
                len: self.len(),
            });
        }
        Ok(i as u64)
    }

    /// Appends the bytes of item `i` to `out`.
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`], [`ContainerError::Corrupted`].
    #[inline]
    pub fn get(&self, i: usize, out: &mut Vec<u8>) -> Result<(), ContainerError> {
        let (off, len) = self.slot(self.index(i)?)?;
        self.g.read_item(off, len, out)
    }

    /// Appends items `start..end` to `out`, and each one's length to
    /// `lens`.
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`] (for `end`, or `start > end`),
    /// [`ContainerError::Corrupted`].
    pub fn read_range(
        &self,
        start: usize,
        end: usize,
        out: &mut Vec<u8>,
        lens: &mut Vec<usize>,
    ) -> Result<(), ContainerError> {
        if start > end || end > self.len() {
            return Err(ContainerError::OutOfRange {
                index: if start > end { start } else { end },
                len: self.len(),
            });
        }
        for i in start..end {
            let (off, len) = self.slot(i as u64)?;
            self.g.read_item(off, len, out)?;
            lens.push(len as usize);
        }
        Ok(())
    }

    /// The index of the first item equal to `item`, if any.
    ///
    /// # Errors
    /// [`ContainerError::Corrupted`].
    pub fn position(&self, item: &[u8]) -> Result<Option<usize>, ContainerError> {
        for i in 0..self.g.state(LEN) {
            let (off, len) = self.slot(i)?;
            if self.g.item_is(off, len, item)? {
                return Ok(Some(i as usize));
            }
        }
        Ok(None)
    }

    /// Checks there is room for `n` more items.
    fn check_capacity(&self, n: u64) -> Result<(), ContainerError> {
        if self.g.state(LEN) + n > self.layout().capacity {
            return Err(ContainerError::CapacityFull {
                capacity: self.layout().capacity as usize,
            });
        }
        Ok(())
    }

    /// Appends `bytes` to the arena, compacting it first if that makes
    /// room; returns their offset.
    fn append(&mut self, bytes: &[u8]) -> Result<u64, ContainerError> {
        let n = bytes.len() as u64;
        let arena = self.layout().arena;
        if n > arena {
            return Err(ContainerError::ItemTooLarge {
                size: bytes.len(),
                arena_bytes: arena as usize,
            });
        }
        if let Some(off) = self.g.append(&[bytes])? {
            return Ok(off);
        }
        if self.g.room_after_compaction() < n {
            return Err(ContainerError::ArenaFull {
                arena_bytes: arena as usize,
                needed: bytes.len(),
                available: self.g.room_after_compaction() as usize,
            });
        }
        self.rebuild(true, Edit::None)?;
        self.g
            .append(&[bytes])?
            .ok_or_else(|| ContainerError::corrupted("no room after a compaction"))
    }

    /// Copies the index into the target bank with `edit` applied (and,
    /// with `compact`, the items into a fresh arena), then switches to it.
    fn rebuild(&mut self, compact: bool, edit: Edit) -> Result<(), ContainerError> {
        let n = self.g.state(LEN);
        let mut slots = Vec::with_capacity(n as usize + 1);
        let mut bytes = Vec::new();
        for i in 0..n {
            let (off, len) = self.slot(i)?;
            if compact {
                let new = bytes.len() as u64;
                self.g.read_item(off, len, &mut bytes)?;
                slots.push(pack(new, len));
            } else {
                slots.push(pack(off, len));
            }
        }
        match edit {
            Edit::None => {}
            Edit::Insert(i, w) => slots.insert(i as usize, w),
            Edit::Remove(i) => {
                slots.remove(i as usize);
            }
        }
        let t = self.g.rebuild_target(compact);
        if compact {
            self.g.write_arena(t.arena, 0, &[&bytes])?;
        }
        for (i, w) in slots.iter().enumerate() {
            self.g.store_scratch(t.index + 8 * i as u64, *w)?;
        }
        self.g.switch(t, compact.then_some(bytes.len() as u64))?;
        self.rebuilds += 1;
        Ok(())
    }

    /// Whether a shift of `k` slots is done in place.
    fn shift_in_place(&self, k: u64) -> bool {
        self.g.index_scratch() || k + 4 <= self.g.journal_room().min(SHIFT_IN_PLACE + 4)
    }

    /// Appends `item`.
    ///
    /// # Errors
    /// [`ContainerError::CapacityFull`], [`ContainerError::ArenaFull`],
    /// [`ContainerError::ItemTooLarge`], [`ContainerError::TransactionTooLarge`],
    /// [`ContainerError::Corrupted`]; the list is unchanged.
    #[inline]
    pub fn push(&mut self, item: &[u8]) -> Result<(), ContainerError> {
        self.check_capacity(1)?;
        let n = self.g.state(LEN);
        let off = self.append(item)?;
        self.g
            .store(self.slot_off(n), pack(off, item.len() as u64))?;
        self.g.set_state(LEN, n + 1)
    }

    /// Appends every item: `bytes` holds them back to back, `lens` their
    /// lengths. All or none.
    ///
    /// # Errors
    /// As [`RawListTx::push`] (`ArenaFull` names the total).
    pub fn extend(&mut self, bytes: &[u8], lens: &[usize]) -> Result<(), ContainerError> {
        let total: usize = lens.iter().sum();
        if total != bytes.len() {
            return Err(ContainerError::corrupted("item lengths do not add up"));
        }
        if lens.is_empty() {
            return Ok(());
        }
        self.check_capacity(lens.len() as u64)?;
        if let Some(&big) = lens.iter().find(|&&l| l as u64 > self.layout().arena) {
            return Err(ContainerError::ItemTooLarge {
                size: big,
                arena_bytes: self.layout().arena as usize,
            });
        }
        if bytes.len() as u64 > self.g.room_after_compaction() {
            return Err(ContainerError::ArenaFull {
                arena_bytes: self.layout().arena as usize,
                needed: bytes.len(),
                available: self.g.room_after_compaction() as usize,
            });
        }
        let mut off = self.append(bytes)?;
        let n = self.g.state(LEN);
        for (i, &len) in lens.iter().enumerate() {
            self.g
                .store(self.slot_off(n + i as u64), pack(off, len as u64))?;
            off += len as u64;
        }
        self.g.set_state(LEN, n + lens.len() as u64)
    }

    /// Removes the last item, appending its bytes to `out`; `false` if the
    /// list is empty.
    ///
    /// # Errors
    /// [`ContainerError::Corrupted`], [`ContainerError::TransactionTooLarge`].
    pub fn pop(&mut self, out: &mut Vec<u8>) -> Result<bool, ContainerError> {
        let n = self.g.state(LEN);
        if n == 0 {
            return Ok(false);
        }
        let (off, len) = self.slot(n - 1)?;
        self.g.read_item(off, len, out)?;
        self.g.set_state(LEN, n - 1)?;
        self.g
            .set_state(LIVE, self.g.state(LIVE).saturating_sub(len))?;
        Ok(true)
    }

    /// Replaces item `i` with `item`.
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`], and as [`RawListTx::push`].
    pub fn set(&mut self, i: usize, item: &[u8]) -> Result<(), ContainerError> {
        let i = self.index(i)?;
        let off = self.append(item)?;
        // Read after the append: a compaction moves items (not lengths).
        let (_, old) = self.slot(i)?;
        self.g
            .store(self.slot_off(i), pack(off, item.len() as u64))?;
        self.g
            .set_state(LIVE, self.g.state(LIVE).saturating_sub(old))
    }

    /// Inserts `item` at index `i` (`i == len` appends).
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`] for `i > len`, and as
    /// [`RawListTx::push`].
    pub fn insert(&mut self, i: usize, item: &[u8]) -> Result<(), ContainerError> {
        let n = self.g.state(LEN);
        if i as u64 > n {
            return Err(ContainerError::OutOfRange {
                index: i,
                len: n as usize,
            });
        }
        self.check_capacity(1)?;
        let i = i as u64;
        let w = pack(self.append(item)?, item.len() as u64);
        if self.shift_in_place(n - i) {
            for k in (i..n).rev() {
                let moved = self.g.load(self.slot_off(k))?;
                self.g.store(self.slot_off(k + 1), moved)?;
            }
            self.g.store(self.slot_off(i), w)?;
        } else {
            self.rebuild(false, Edit::Insert(i, w))?;
        }
        self.g.set_state(LEN, n + 1)
    }

    /// Removes item `i`, appending its bytes to `out`.
    ///
    /// # Errors
    /// [`ContainerError::OutOfRange`], [`ContainerError::Corrupted`],
    /// [`ContainerError::TransactionTooLarge`].
    pub fn remove(&mut self, i: usize, out: &mut Vec<u8>) -> Result<(), ContainerError> {
        let i = self.index(i)?;
        let n = self.g.state(LEN);
        let (off, len) = self.slot(i)?;
        self.g.read_item(off, len, out)?;
        if self.shift_in_place(n - 1 - i) {
            for k in i + 1..n {
                let moved = self.g.load(self.slot_off(k))?;
                self.g.store(self.slot_off(k - 1), moved)?;
            }
        } else {
            self.rebuild(false, Edit::Remove(i))?;
        }
        self.g.set_state(LEN, n - 1)?;
        self.g
            .set_state(LIVE, self.g.state(LIVE).saturating_sub(len))
    }

    /// Removes every item.
    ///
    /// # Errors
    /// [`ContainerError::TransactionTooLarge`].
    pub fn clear(&mut self) -> Result<(), ContainerError> {
        if self.g.state(LEN) != 0 {
            self.g.set_state(LEN, 0)?;
            self.g.set_state(LIVE, 0)?;
        }
        Ok(())
    }

    /// Bytes appended to the arena (for tests and statistics).
    pub fn arena_top(&self) -> u64 {
        self.g.state(TOP)
    }

    /// Rebuilds (compactions, long shifts) in this update so far.
    #[cfg(test)]
    pub(crate) fn rebuilds(&self) -> u32 {
        self.rebuilds
    }

    /// Checks every invariant of the list: each slot's item lies below
    /// `top`, and `live` is the sum of their lengths.
    #[cfg(test)]
    pub(crate) fn audit(&self) -> Result<(), String> {
        let mut sum = 0;
        for i in 0..self.g.state(LEN) {
            let (off, len) = self.slot(i).map_err(|e| e.to_string())?;
            if off + len > self.g.state(TOP) {
                return Err(format!("item {i} at {off}+{len} beyond top"));
            }
            sum += len;
        }
        if sum != self.g.state(LIVE) {
            return Err(format!("live {} but items hold {sum}", self.g.state(LIVE)));
        }
        Ok(())
    }

    /// Makes the changes one update: clears the journal, then unlocks.
    ///
    /// # Errors
    /// None in practice (the signature leaves room for fault injection in
    /// tests).
    pub fn commit(mut self) -> Result<(), ContainerError> {
        self.g.commit()
    }

    /// [`commit`](Self::commit) in place: a later drop does nothing.
    #[inline]
    pub(crate) fn commit_in_place(&mut self) -> Result<(), ContainerError> {
        self.g.commit()
    }
}
