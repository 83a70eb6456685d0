//! Uncontended lock + unlock of the mutexes a program would use today: a
//! process-shared `pthread_mutex_t` in shared memory, and the `raw_sync`
//! crate's mutex in a segment of the `shared_memory` crate.

use super::rtt::init_pthread_mutex;
use crate::runner::{time_batches, Ctx, Pace};
use crate::shm::{Shm, LINE};
use crate::side::{Block, BoxSide, LocalSide, NotMade};

/// Operations per timed batch of the lock measurements.
pub const BATCH: u64 = 1_000;

/// A side whose blocks time [`Ctx::block`]`(Pace::Op)` batches of [`BATCH`]
/// calls of `op` (after as many untimed warm-up batches as it says).
pub fn batch_side(ctx: &Ctx, mut op: impl FnMut() + 'static) -> BoxSide {
    let (warm, batches) = ctx.block(Pace::Op);
    LocalSide::boxed(move |c: &Ctx| {
        for _ in 0..warm * BATCH {
            op();
        }
        Ok(Block::Latency(time_batches(c, BATCH, batches, &mut op)))
    })
}

/// ns per uncontended `pthread_mutex_lock` + `pthread_mutex_unlock` of a
/// process-shared mutex in an anonymous shared segment.
///
/// # Errors
/// The segment or a `pthread_*` call failed.
pub fn pthread_lock_unlock(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    let shm = Shm::new(LINE)?;
    let raw = shm.raw(0, std::mem::size_of::<libc::pthread_mutex_t>(), 8);
    init_pthread_mutex(raw)?;
    let m = raw.cast::<libc::pthread_mutex_t>();
    // Check that it works before timing it: a second locker must fail.
    // SAFETY: `m` was initialized just above and lives as long as `shm`.
    unsafe {
        if libc::pthread_mutex_lock(m) != 0 {
            return Err("pthread_mutex_lock failed".into());
        }
        let busy = libc::pthread_mutex_trylock(m);
        libc::pthread_mutex_unlock(m);
        if busy != libc::EBUSY {
            return Err(format!("trylock of a held mutex returned {busy}").into());
        }
    }
    Ok(batch_side(ctx, move || {
        let m = shm
            .raw(0, std::mem::size_of::<libc::pthread_mutex_t>(), 8)
            .cast::<libc::pthread_mutex_t>();
        // SAFETY: the mutex was initialized above and lives as long as
        // `shm`, which this closure owns; lock and unlock pair up on this
        // thread.
        unsafe {
            libc::pthread_mutex_lock(m);
            libc::pthread_mutex_unlock(m);
        }
    }))
}

/// ns per uncontended lock + unlock of `raw_sync::locks::Mutex` placed in a
/// `shared_memory::Shmem` segment (a named POSIX shared-memory object that
/// the crate removes when its owner drops it).
///
/// # Errors
/// The crates failed to create the segment or the lock.
pub fn raw_sync_lock_unlock(ctx: &Ctx) -> Result<BoxSide, NotMade> {
    use raw_sync::locks::{LockInit, Mutex};
    let shmem = shared_memory::ShmemConf::new()
        .size(4096)
        .create()
        .map_err(|e| format!("shared_memory segment: {e}"))?;
    let base = shmem.as_ptr();
    // SAFETY: `base` is a fresh mapping of 4096 bytes; the lock takes the
    // bytes it reports and its data pointer is placed 128 bytes further in,
    // inside the mapping. `shmem` outlives `lock` (dropped in reverse order).
    let (lock, used) =
        unsafe { Mutex::new(base, base.add(LINE)) }.map_err(|e| format!("raw_sync mutex: {e}"))?;
    if used > LINE {
        return Err(format!("raw_sync mutex needs {used} bytes, more than {LINE}").into());
    }
    {
        let guard = lock.lock().map_err(|e| format!("raw_sync lock: {e}"))?;
        // SAFETY: the guarded pointer is base + LINE, inside the mapping, and
        // the lock is held.
        unsafe { (*guard).write(7) };
    }
    {
        let guard = lock.lock().map_err(|e| format!("raw_sync lock: {e}"))?;
        // SAFETY: as above.
        let v = unsafe { (*guard).read() };
        if v != 7 {
            return Err(format!("raw_sync mutex data read back {v}").into());
        }
    }
    let held = RawSyncLock {
        lock,
        _shmem: shmem,
    };
    Ok(batch_side(ctx, move || held.lock_unlock()))
}

/// A `raw_sync` lock and the segment it lives in; the lock is dropped
/// first (fields drop in order).
struct RawSyncLock {
    lock: Box<dyn raw_sync::locks::LockImpl>,
    _shmem: shared_memory::Shmem,
}

impl RawSyncLock {
    /// One lock and unlock. A method, so a closure calling it owns the
    /// whole struct (the segment too), not only the lock field.
    fn lock_unlock(&self) {
        if let Ok(g) = self.lock.lock() {
            std::hint::black_box(&g);
        }
    }
}
