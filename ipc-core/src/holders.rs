//! Which processes hold one end of a shared object, so that the end is
//! closed only when every one of them has dropped it or died.
//!
//! A pipe end or ring end handed to a child is held by two processes for a
//! while: the parent (until it drops its copy, as Python programs do right
//! after starting the child) and the child. Dropping a copy must not close
//! the end for the other. So an end records its holders in shared memory
//! ([`Holders`]: a few packed process ids), and its peer sees it closed
//! when the table is empty or every holder recorded there is dead.
//!
//! A process enters the table when it creates, opens or receives the end
//! ([`Hold::enter`]) and leaves it when it drops its handle. A child is
//! entered *by its parent*, before the parent can drop anything: a forked
//! child through [`Builder::fork`](crate::process::Builder::fork), which
//! enters it into every table this process holds, right after the fork; a
//! spawned child through the hooks its arguments' handles register while
//! they are encoded ([`message::on_child_started`](crate::message::on_child_started)).

use crate::liveness::Judge;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Holders one end can record.
pub const HOLDERS: usize = 8;

/// The holders of one end: packed process ids
/// ([`ProcessId::to_u64`](crate::ProcessId::to_u64)), 0 for a free slot.
/// `#[repr(C)]`, 64 bytes of atomics, valid for every bit pattern.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Holders {
    slots: [AtomicU64; HOLDERS],
}

crate::assert_layout!(Holders, size = 64, align = 8);
// SAFETY: `#[repr(C)]`, eight `AtomicU64`s, no padding, no pointers, no
// drop glue; every bit pattern is a set of (possibly stale) ids.
unsafe impl crate::Shareable for Holders {}

/// The table is full of live holders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an end is held by {HOLDERS} live processes already, the most it records")]
pub struct TooManyHolders;

impl Holders {
    /// An empty table.
    pub const fn new() -> Holders {
        Holders {
            slots: [const { AtomicU64::new(0) }; HOLDERS],
        }
    }

    /// Records `id` (idempotent). A slot of a holder `judge` proves dead is
    /// reused.
    ///
    /// # Errors
    /// [`TooManyHolders`] if every slot holds a live process.
    pub fn add(&self, id: u64, judge: &impl Judge) -> Result<(), TooManyHolders> {
        if id == 0 || self.contains(id) {
            return Ok(());
        }
        for s in &self.slots {
            let cur = s.load(Ordering::Acquire);
            if (cur == 0 || judge.is_dead(cur))
                && s.compare_exchange(cur, id, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Ok(());
            }
        }
        Err(TooManyHolders)
    }

    /// Forgets `id` (every slot holding it).
    pub fn remove(&self, id: u64) {
        for s in &self.slots {
            let _ = s.compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Whether `id` is recorded.
    pub fn contains(&self, id: u64) -> bool {
        self.slots.iter().any(|s| s.load(Ordering::Acquire) == id)
    }

    /// Whether any recorded holder may still be alive (a slow path: it may
    /// read `/proc` once per holder).
    pub fn any_alive(&self, judge: &impl Judge) -> bool {
        self.slots.iter().any(|s| {
            let id = s.load(Ordering::Acquire);
            id != 0 && !judge.is_dead(id)
        })
    }

    /// Forgets every holder.
    pub fn clear(&self) {
        for s in &self.slots {
            s.store(0, Ordering::Release);
        }
    }
}

/// This process's place in one [`Holders`] table, kept while the handle
/// lives: leaving it on drop. Also known to [`Builder::fork`](crate::process::Builder::fork),
/// which enters a forked child into every table a live `Hold` names.
pub struct Hold {
    inner: Arc<HoldInner>,
}

struct HoldInner {
    table: std::ptr::NonNull<Holders>,
    /// Keeps the memory of `table` mapped (the segment, or whatever owns
    /// it).
    _owner: Arc<dyn std::any::Any + Send + Sync>,
}

// SAFETY: `table` points at atomics in memory `_owner` keeps alive.
unsafe impl Send for HoldInner {}
// SAFETY: as above; only shared access to atomics.
unsafe impl Sync for HoldInner {}

impl HoldInner {
    fn table(&self) -> &Holders {
        // SAFETY: checked non-null at construction; mapped while `_owner`
        // lives, which this value keeps.
        unsafe { self.table.as_ref() }
    }
}

/// Every live [`Hold`] of this process, for the fork path.
static HELD: Mutex<Vec<Weak<HoldInner>>> = Mutex::new(Vec::new());

impl Hold {
    /// Enters this process into `table` (which lives in memory `owner`
    /// keeps mapped) for as long as the returned value lives.
    ///
    /// # Errors
    /// [`TooManyHolders`], or this process cannot learn its identity
    /// (then it is entered as nothing, and the error is returned).
    ///
    /// # Safety
    /// `table` must stay valid (mapped, and only accessed atomically by
    /// others) for as long as `owner` lives.
    pub unsafe fn enter(
        table: &Holders,
        owner: Arc<dyn std::any::Any + Send + Sync>,
        judge: &impl Judge,
    ) -> Result<Hold, HoldError> {
        let me = judge.me().map_err(HoldError::Identity)?;
        table.add(me, judge).map_err(HoldError::Full)?;
        let inner = Arc::new(HoldInner {
            table: std::ptr::NonNull::from(table),
            _owner: owner,
        });
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|w| w.strong_count() > 0);
        held.push(Arc::downgrade(&inner));
        Ok(Hold { inner })
    }

    /// The table.
    pub fn table(&self) -> &Holders {
        self.inner.table()
    }

    /// Enters process `child` wherever this one holds something: called by
    /// the parent right after a fork, before it can drop anything.
    pub(crate) fn enter_child_everywhere(child: u64, judge: &impl Judge) {
        let held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        for h in held.iter().filter_map(Weak::upgrade) {
            if let Err(e) = h.table().add(child, judge) {
                log::warn!("a forked child could not be recorded as a holder: {e}");
            }
        }
    }

    /// A closure that enters a child into this table once it has started:
    /// for handles encoded into a spawned child's arguments.
    pub fn child_hook(&self) -> impl FnOnce(u64) + Send + 'static {
        let inner = Arc::clone(&self.inner);
        move |child| {
            if let Err(e) = inner.table().add(child, &crate::liveness::OsJudge) {
                log::warn!("a child could not be recorded as a holder: {e}");
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // This process's identity, whichever process drops it: a forked
        // child's copy leaves the child's entry, not the parent's.
        if let Ok(me) = crate::liveness::Judge::me(&crate::liveness::OsJudge) {
            self.inner.table().remove(me);
        }
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("table", self.table()).finish()
    }
}

/// Why [`Hold::enter`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HoldError {
    /// The table is full of live holders.
    #[error(transparent)]
    Full(TooManyHolders),
    /// This process cannot learn its identity.
    #[error(transparent)]
    Identity(crate::liveness::IdentityError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::{IdentityError, Judge};

    /// A judge for which ids below 100 are dead.
    struct Model(u64);
    impl Judge for Model {
        fn me(&self) -> Result<u64, IdentityError> {
            Ok(self.0)
        }
        fn is_dead(&self, id: u64) -> bool {
            id < 100
        }
        fn thread_is_dead(&self, _: u64, _: u32) -> bool {
            false
        }
    }

    #[test]
    fn holders_come_and_go_and_the_dead_make_room() {
        let t = Holders::new();
        let j = Model(500);
        assert!(!t.any_alive(&j));
        t.add(500, &j).unwrap();
        t.add(500, &j).unwrap();
        t.add(600, &j).unwrap();
        assert!(t.any_alive(&j));
        t.remove(500);
        assert!(t.contains(600) && !t.contains(500));
        t.remove(600);
        assert!(!t.any_alive(&j));
        for i in 0..HOLDERS as u64 {
            t.add(1000 + i, &j).unwrap();
        }
        assert_eq!(t.add(2000, &j), Err(TooManyHolders));
        // Dead holders count as gone and their slots are reused.
        t.clear();
        for i in 0..HOLDERS as u64 {
            t.add(10 + i, &j).unwrap();
        }
        assert!(!t.any_alive(&j));
        t.add(2000, &j).unwrap();
        assert!(t.any_alive(&j));
    }

    #[test]
    fn a_hold_leaves_on_drop() {
        let t = Box::leak(Box::new(Holders::new()));
        let owner: Arc<dyn std::any::Any + Send + Sync> = Arc::new(());
        // SAFETY: a leaked table lives for ever.
        let h = unsafe { Hold::enter(t, owner, &crate::liveness::OsJudge) }.unwrap();
        let me = crate::liveness::OsJudge.me().unwrap();
        assert!(h.table().contains(me));
        let hook = h.child_hook();
        hook(me ^ 1);
        assert!(t.contains(me ^ 1));
        drop(h);
        assert!(!t.contains(me));
    }
}
