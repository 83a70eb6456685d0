//! [`RawDict`]: a hash map from byte strings to byte strings in shared
//! memory, every update atomic across a SIGKILL of its holder (see the
//! [journal](super::journal)).
//!
//! The index bank is an open-addressing table with linear probing, at most
//! three quarters full (live entries and tombstones together). A slot is
//! two words:
//!
//! | word | bits 0..32 | bits 32..64 |
//! |---|---|---|
//! | 0 | tag: 0 empty, 1 tombstone, else the high half of the key's hash with bit 1 set | key length |
//! | 1 | offset of the entry in the arena | value length |
//!
//! An entry's bytes are its key then its value, appended to the arena; a
//! key's home slot is derived from its tag ([`hash_bytes`] of the key, part
//! of the layout). Replacing a value appends a new entry and changes word 1
//! of its slot; removing marks the slot a tombstone (or empty, when the next
//! slot is empty, since no probe then passes through it). When tombstones
//! leave no room, the table is rehashed into the other bank.

use super::journal::Locked;
use super::mutex::Acquired;
use super::store::{hash_bytes, Header, Layout, Shape, LEN, LIVE, TOMBS};
use crate::container::ContainerError;
use multiproc_core::object::ObjectError;
use multiproc_core::Kind;

const EMPTY: u64 = 0;
const TOMB: u64 = 1;
const LOW: u64 = 0xffff_ffff;

/// A hash map of byte strings in shared memory: the header of the
/// container, followed by its journal, index banks and arena banks. See
/// the [module docs](self).
#[repr(transparent)]
#[derive(Debug)]
pub struct RawDict {
    header: Header,
}

super::store::raw_container!(
    RawDict,
    RawDictTx,
    Shape::Dict,
    "dict",
    kind: Kind::new(
        "ipc-sync/dict",
        1,
        multiproc_core::header::layout_hash(&[256, 8, 16, 16]),
    ),
);

impl RawDict {
    /// Checks the fingerprints of the key and value types recorded at
    /// creation.
    ///
    /// # Errors
    /// [`ObjectError::WrongObject`] naming the type that differs.
    pub fn check_types(&self, types: (u64, u64), names: (&str, &str)) -> Result<(), ObjectError> {
        self.header.check_types(Shape::Dict, types, names)
    }
}

/// A [`RawDict`] locked by the calling thread: its operations change it
/// through the journal; [`commit`](RawDictTx::commit) makes them one
/// update, dropping it undoes them.
pub struct RawDictTx<'a> {
    g: Locked<'a>,
    /// Rebuilds so far: slots move when this changes.
    rebuilds: u32,
}

/// Where a key is, or would go.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// In `slot`, its entry at `off`.
    Found {
        slot: u64,
        off: u64,
        klen: u64,
        vlen: u64,
    },
    /// Absent; it would go into `slot`, a tombstone or an empty slot.
    Vacant { slot: u64, tomb: bool },
}

/// The tag of a key's hash: never empty or a tombstone.
#[inline]
pub(crate) fn tag_of(hash: u64) -> u64 {
    (hash >> 32) | 2
}

/// The home slot of a tag in a table of `slots` (a power of two).
#[inline]
pub(crate) fn home(tag: u64, slots: u64) -> u64 {
    tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - slots.trailing_zeros())
}

impl RawDictTx<'_> {
    /// Rolls back a dead holder's update and checks the state (see
    /// [`RawDict::held`]).
    #[inline(always)]
    pub(crate) fn begin(&mut self, acquired: Acquired) -> Result<(), ContainerError> {
        self.g.begin(acquired)
    }

    /// The number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.g.state(LEN) as usize
    }

    /// Whether the dict is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn layout(&self) -> &Layout {
        self.g.layout()
    }

    #[inline]
    fn slot_off(&self, i: u64) -> u64 {
        self.g.index_base() + 16 * i
    }

    /// The two words of slot `i`.
    #[inline]
    fn slot(&self, i: u64) -> Result<(u64, u64), ContainerError> {
        let off = self.slot_off(i);
        Ok((self.g.load(off)?, self.g.load(off + 8)?))
    }

    /// Looks `key` (of hash tag `tag`) up.
    fn find(&self, key: &[u8], tag: u64) -> Result<Probe, ContainerError> {
        let slots = self.layout().slots;
        let mut i = home(tag, slots);
        let mut tomb = None;
        for _ in 0..slots {
            let (w0, w1) = self.slot(i)?;
            match w0 & LOW {
                EMPTY => {
                    return Ok(match tomb {
                        Some(t) => Probe::Vacant {
                            slot: t,
                            tomb: true,
                        },
                        None => Probe::Vacant {
                            slot: i,
                            tomb: false,
                        },
                    })
                }
                TOMB => {
                    tomb.get_or_insert(i);
                }
                t if t == tag && w0 >> 32 == key.len() as u64 => {
                    let (off, vlen) = (w1 & LOW, w1 >> 32);
                    if self.g.item_is(off, key.len() as u64, key)? {
                        return Ok(Probe::Found {
                            slot: i,
                            off,
                            klen: key.len() as u64,
                            vlen,
                        });
                    }
                }
                _ => {}
            }
            i = (i + 1) & (slots - 1);
        }
        match tomb {
            Some(t) => Ok(Probe::Vacant {
                slot: t,
                tomb: true,
            }),
            None => Err(ContainerError::corrupted("a full table has no empty slot")),
        }
    }

    /// Appends the value of `key` to `out`; `false` if it is absent.
    ///
    /// # Errors
    /// [`ContainerError::Corrupted`].
    #[inline]
    pub fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, ContainerError> {
        match self.find(key, tag_of(hash_bytes(key)))? {
            Probe::Found {
                off, klen, vlen, ..
            } => {
                self.g.read_item(off + klen, vlen, out)?;
                Ok(true)
            }
            Probe::Vacant { .. } => Ok(false),
        }
    }

    /// Whether `key` is present.
    ///
    /// # Errors
    /// [`ContainerError::Corrupted`].
    pub fn contains(&self, key: &[u8]) -> Result<bool, ContainerError> {
        Ok(matches!(
            self.find(key, tag_of(hash_bytes(key)))?,
            Probe::Found { .. }
        ))
    }

    /// Appends every entry's key and value to `out`, back to back, and
    /// their lengths to `lens`, in table order.
    ///
    /// # Errors
    /// [`ContainerError::Corrupted`].
    pub fn read_all(
        &self,
        out: &mut Vec<u8>,
        lens: &mut Vec<(usize, usize)>,
    ) -> Result<(), ContainerError> {
        for i in 0..self.layout().slots {
            let (w0, w1) = self.slot(i)?;
            if w0 & LOW > TOMB {
                let (klen, off, vlen) = (w0 >> 32, w1 & LOW, w1 >> 32);
                let total = klen
                    .checked_add(vlen)
                    .ok_or_else(|| ContainerError::corrupted("entry length overflows"))?;
                self.g.read_item(off, total, out)?;
                lens.push((klen as usize, vlen as usize));
            }
        }
        Ok(())
    }

    /// Inserts `key -> value`; if `key` was present, appends its old value
    /// to `old` and returns `true`.
    ///
    /// # Errors
    /// [`ContainerError::CapacityFull`] (a new key),
    /// [`ContainerError::ArenaFull`], [`ContainerError::ItemTooLarge`],
    /// [`ContainerError::TransactionTooLarge`], [`ContainerError::Corrupted`];
    /// the dict is unchanged.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: &[u8],
        old: &mut Vec<u8>,
    ) -> Result<bool, ContainerError> {
        let tag = tag_of(hash_bytes(key));
        let mut probe = self.find(key, tag)?;
        if let Probe::Vacant { .. } = probe {
            if self.g.state(LEN) >= self.layout().capacity {
                return Err(ContainerError::CapacityFull {
                    capacity: self.layout().capacity as usize,
                });
            }
        }
        let rebuilds = self.rebuilds;
        let off = self.append(key, value)?;
        if let Probe::Vacant { tomb: false, .. } = probe {
            let slots = self.layout().slots;
            if self.g.state(LEN) + self.g.state(TOMBS) + 1 > slots - slots / 4 {
                self.rebuild(false)?;
            }
        }
        if self.rebuilds != rebuilds {
            probe = self.find(key, tag)?;
        }
        let w1 = off | ((value.len() as u64) << 32);
        match probe {
            Probe::Found {
                slot,
                off: old_off,
                klen,
                vlen,
            } => {
                self.g.read_item(old_off + klen, vlen, old)?;
                self.g.store(self.slot_off(slot) + 8, w1)?;
                let freed = klen + vlen;
                self.g
                    .set_state(LIVE, self.g.state(LIVE).saturating_sub(freed))?;
                Ok(true)
            }
            Probe::Vacant { slot, tomb } => {
                self.g.store(self.slot_off(slot) + 8, w1)?;
                self.g
                    .store(self.slot_off(slot), tag | ((key.len() as u64) << 32))?;
                self.g.set_state(LEN, self.g.state(LEN) + 1)?;
                if tomb {
                    self.g
                        .set_state(TOMBS, self.g.state(TOMBS).saturating_sub(1))?;
                }
                Ok(false)
            }
        }
    }

    /// Removes `key`, appending its value to `out`; `false` if it was
    /// absent.
    ///
    /// # Errors
    /// [`ContainerError::Corrupted`], [`ContainerError::TransactionTooLarge`].
    pub fn remove(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, ContainerError> {
        let Probe::Found {
            slot,
            off,
            klen,
            vlen,
        } = self.find(key, tag_of(hash_bytes(key)))?
        else {
            return Ok(false);
        };
        self.g.read_item(off + klen, vlen, out)?;
        let slots = self.layout().slots;
        let (next, _) = self.slot((slot + 1) & (slots - 1))?;
        if next & LOW == EMPTY {
            // No probe passes through a slot followed by an empty one.
            self.g.store(self.slot_off(slot), EMPTY)?;
        } else {
            self.g.store(self.slot_off(slot), TOMB)?;
            self.g.set_state(TOMBS, self.g.state(TOMBS) + 1)?;
        }
        self.g.set_state(LEN, self.g.state(LEN).saturating_sub(1))?;
        self.g
            .set_state(LIVE, self.g.state(LIVE).saturating_sub(klen + vlen))?;
        Ok(true)
    }

    /// Removes every entry: switches to an empty table.
    ///
    /// # Errors
    /// [`ContainerError::TransactionTooLarge`], [`ContainerError::Corrupted`].
    pub fn clear(&mut self) -> Result<(), ContainerError> {
        if self.g.state(LEN) == 0 && self.g.state(TOMBS) == 0 {
            return Ok(());
        }
        let t = self.g.rebuild_target(false);
        for w in 0..2 * self.layout().slots {
            self.g.store_scratch(t.index + 8 * w, 0)?;
        }
        self.g.switch(t, None)?;
        self.rebuilds += 1;
        self.g.set_state(LEN, 0)?;
        self.g.set_state(LIVE, 0)
    }

    /// Appends an entry's bytes to the arena, compacting it first if that
    /// makes room; returns their offset.
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<u64, ContainerError> {
        let n = key.len() as u64 + value.len() as u64;
        let arena = self.layout().arena;
        if n > arena {
            return Err(ContainerError::ItemTooLarge {
                size: n as usize,
                arena_bytes: arena as usize,
            });
        }
        if let Some(off) = self.g.append(&[key, value])? {
            return Ok(off);
        }
        if self.g.room_after_compaction() < n {
            return Err(ContainerError::ArenaFull {
                arena_bytes: arena as usize,
                needed: n as usize,
                available: self.g.room_after_compaction() as usize,
            });
        }
        self.rebuild(true)?;
        self.g
            .append(&[key, value])?
            .ok_or_else(|| ContainerError::corrupted("no room after a compaction"))
    }

    /// Rehashes every entry into the target bank, without tombstones (and,
    /// with `compact`, copies the entries into a fresh arena), then
    /// switches to it.
    fn rebuild(&mut self, compact: bool) -> Result<(), ContainerError> {
        let slots = self.layout().slots;
        let mut entries = Vec::with_capacity(self.len());
        let mut bytes = Vec::new();
        for i in 0..slots {
            let (w0, w1) = self.slot(i)?;
            if w0 & LOW <= TOMB {
                continue;
            }
            let (off, vlen) = (w1 & LOW, w1 >> 32);
            if compact {
                let new = bytes.len() as u64;
                self.g.read_item(off, (w0 >> 32) + vlen, &mut bytes)?;
                entries.push((w0, new | (vlen << 32)));
            } else {
                entries.push((w0, w1));
            }
        }
        if entries.len() as u64 > self.layout().capacity {
            return Err(ContainerError::corrupted(format!(
                "{} entries in a dict of capacity {}",
                entries.len(),
                self.layout().capacity
            )));
        }
        let t = self.g.rebuild_target(compact);
        if compact {
            self.g.write_arena(t.arena, 0, &[&bytes])?;
        }
        for w in 0..2 * slots {
            self.g.store_scratch(t.index + 8 * w, 0)?;
        }
        for (w0, w1) in entries {
            // Fewer entries than slots: an empty one is always found.
            let mut i = home(w0 & LOW, slots);
            let mut probes = 0;
            while self.g.load(t.index + 16 * i)? != EMPTY {
                i = (i + 1) & (slots - 1);
                probes += 1;
                if probes == slots {
                    return Err(ContainerError::corrupted(
                        "no empty slot in a rebuilt table",
                    ));
                }
            }
            self.g.store_scratch(t.index + 16 * i + 8, w1)?;
            self.g.store_scratch(t.index + 16 * i, w0)?;
        }
        self.g.switch(t, compact.then_some(bytes.len() as u64))?;
        self.rebuilds += 1;
        Ok(())
    }

    /// Tombstones in the table (for tests and statistics).
    pub fn tombstones(&self) -> u64 {
        self.g.state(TOMBS)
    }

    /// Rebuilds (compactions, rehashes) in this update so far.
    #[cfg(test)]
    pub(crate) fn rebuilds(&self) -> u32 {
        self.rebuilds
    }

    /// Checks every invariant of the table: `len` and `tombs` count its
    /// slots, every key is found where it is, and `live` is the sum of the
    /// entries' lengths.
    #[cfg(test)]
    pub(crate) fn audit(&self) -> Result<(), String> {
        let (mut full, mut tombs, mut sum) = (0, 0, 0);
        let mut key = Vec::new();
        for i in 0..self.layout().slots {
            let (w0, w1) = self.slot(i).map_err(|e| e.to_string())?;
            match w0 & LOW {
                EMPTY => {}
                TOMB => tombs += 1,
                tag => {
                    full += 1;
                    let (klen, off, vlen) = (w0 >> 32, w1 & LOW, w1 >> 32);
                    sum += klen + vlen;
                    key.clear();
                    self.g
                        .read_item(off, klen + vlen, &mut key)
                        .map_err(|e| e.to_string())?;
                    key.truncate(klen as usize);
                    if tag_of(hash_bytes(&key)) != tag {
                        return Err(format!("slot {i}: tag of another key"));
                    }
                    match self.find(&key, tag).map_err(|e| e.to_string())? {
                        Probe::Found { slot, .. } if slot == i => {}
                        other => return Err(format!("slot {i}: its key finds {other:?}")),
                    }
                }
            }
        }
        let state = (self.g.state(LEN), self.g.state(TOMBS), self.g.state(LIVE));
        if (full, tombs, sum) != state {
            return Err(format!(
                "slots hold (len, tombs, live) {:?}, the state says {state:?}",
                (full, tombs, sum)
            ));
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
