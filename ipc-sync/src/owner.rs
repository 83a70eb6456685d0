//! Who holds a lock: the calling thread's identity, cached, and the liveness
//! check of a recorded holder (a slow path that reads `/proc`).
//!
//! A holder is recorded as its thread id (in the futex word itself) plus its
//! process, packed as [`ProcessId::to_u64`] (pid and start time), in a second
//! word. The pair survives pid reuse: a new process with the old pid has
//! another start time.

#[cfg(not(loom))]
use ipc_core::liveness::{current_tid, thread_liveness, Liveness};
#[cfg(not(loom))]
use ipc_core::IdentityError;
#[cfg(not(loom))]
use ipc_core::ProcessId;
#[cfg(not(loom))]
use std::cell::Cell;
#[cfg(not(loom))]
use std::sync::Once;

/// The calling thread, as recorded in a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    /// `gettid()`.
    pub(crate) tid: u32,
    /// `ProcessId::current().to_u64()`.
    pub(crate) process: u64,
}

#[cfg(not(loom))]
thread_local! {
    static ME: Cell<Me> = const { Cell::new(Me { tid: 0, process: 0 }) };
}

#[cfg(not(loom))]
static ATFORK: Once = Once::new();

#[cfg(not(loom))]
extern "C" fn forget_after_fork() {
    // Runs in the child of a fork, in its only thread (the forking one): a
    // plain TLS store of a `Copy` value without destructor, which is
    // async-signal-safe.
    let _ = ME.try_with(|c| c.set(Me { tid: 0, process: 0 }));
}

/// The calling thread's identity: one thread-local load after the first call.
///
/// # Errors
/// The process's own identity is unknown ([`ProcessId::current`] failed);
/// nothing is cached then, and the next call tries again.
#[cfg(not(loom))]
#[inline]
pub(crate) fn me() -> Result<Me, IdentityError> {
    let m = ME.with(Cell::get);
    if m.tid != 0 {
        Ok(m)
    } else {
        me_slow()
    }
}

#[cfg(not(loom))]
#[cold]
fn me_slow() -> Result<Me, IdentityError> {
    ATFORK.call_once(|| {
        // SAFETY: registers a child handler that only does a thread-local
        // store; the function pointer is 'static. If registration fails
        // (ENOMEM) a forked child would keep its parent's cached tid: `me`
        // cross-checks the pid below.
        unsafe {
            libc::pthread_atfork(None, None, Some(forget_after_fork));
        }
    });
    let m = Me {
        tid: current_tid(),
        process: ProcessId::current()?.to_u64(),
    };
    ME.with(|c| c.set(m));
    Ok(m)
}

/// Whether the holder recorded as thread `tid` (from the lock word) with the
/// process record `rec_tid`/`rec_process` (written just after the lock word
/// was claimed) is still running. Reads `/proc`: slow path only.
///
/// If the record belongs to `tid`, the holder is alive when its process (pid
/// and start time) is alive and its thread still exists. If the record is
/// stale (the holder is between claiming the word and writing the record,
/// or died there), only the thread id is checked: a missing thread is dead.
/// Without a readable `/proc` every holder counts as alive (ipc-core's rule):
/// a lock is never taken over on a guess.
#[cfg(not(loom))]
pub(crate) fn holder_alive(tid: u32, rec_tid: u32, rec_process: u64) -> bool {
    if rec_tid == tid && rec_process != 0 {
        let id = ProcessId::from_u64(rec_process);
        process_alive(rec_process) && thread_liveness(Some(id.pid), tid) == Liveness::Alive
    } else {
        thread_liveness(None, tid) == Liveness::Alive
    }
}

/// Whether a process is alive, from its packed id (0 = nobody: not alive).
/// See [`ProcessId::liveness_packed`]: a zombie leader with a running thread
/// is alive, and so is everyone when `/proc` cannot be read.
#[cfg(not(loom))]
pub(crate) fn process_alive(packed: u64) -> bool {
    packed != 0 && ProcessId::liveness_packed(packed) == Liveness::Alive
}

/// Under loom: model threads get small ids, all in "process" 1, and a
/// thread is dead once it called [`die`]. The death is published through
/// loom atomics (a release store that the liveness check reads with
/// acquire), as the kernel publishes a process's exit to whoever reads
/// `/proc` after it: the taker then sees every write the dead holder made.
#[cfg(loom)]
mod model {
    use super::Me;
    use loom::sync::atomic::{AtomicU32 as LoomU32, Ordering as LoomOrdering};
    use std::sync::atomic::{AtomicU32, Ordering};

    static NEXT: AtomicU32 = AtomicU32::new(1);

    loom::lazy_static! {
        static ref DEAD: [LoomU32; 4] = [
            LoomU32::new(0),
            LoomU32::new(0),
            LoomU32::new(0),
            LoomU32::new(0),
        ];
    }

    loom::thread_local! {
        static ID: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn me() -> Result<Me, ipc_core::IdentityError> {
        Ok(Me {
            tid: ID.with(|id| *id),
            process: 1,
        })
    }

    pub(crate) fn holder_alive(tid: u32, _rec_tid: u32, _rec_process: u64) -> bool {
        !DEAD.iter().any(|d| d.load(LoomOrdering::Acquire) == tid)
    }

    pub(crate) fn die() {
        let tid = me().map(|m| m.tid).unwrap_or(0);
        let slot = DEAD.iter().find(|d| {
            d.compare_exchange(0, tid, LoomOrdering::Release, LoomOrdering::Relaxed)
                .is_ok()
        });
        assert!(slot.is_some(), "at most four deaths per model run");
    }
}

#[cfg(loom)]
pub(crate) use model::{die, holder_alive, me};

/// The tid of a thread that has exited and whose task is gone (a joined
/// thread's task can outlive `join` by a moment). For tests.
#[cfg(all(test, not(loom)))]
pub(crate) fn exited_thread_tid() -> u32 {
    let tid = std::thread::spawn(|| me().map(|m| m.tid).unwrap_or(0))
        .join()
        .unwrap_or(0);
    wait_gone(tid);
    tid
}

#[cfg(all(test, not(loom)))]
fn wait_gone(tid: u32) {
    let start = std::time::Instant::now();
    while holder_alive(tid, 0, 0) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "thread {tid} never went away"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn me_is_this_thread() {
        let m = me().unwrap();
        assert_eq!(m.tid, current_tid());
        assert_eq!(m.process, ProcessId::current().unwrap().to_u64());
        assert!(holder_alive(m.tid, m.tid, m.process));
        let other = std::thread::spawn(me).join().unwrap().unwrap();
        assert_ne!(other.tid, m.tid);
        // The thread has exited (its task may linger a moment after join):
        // its record says dead.
        wait_gone(other.tid);
        assert!(!holder_alive(other.tid, other.tid, other.process));
    }

    #[test]
    fn a_stale_record_falls_back_to_the_tid() {
        let m = me().unwrap();
        assert!(holder_alive(m.tid, 0, 0));
        assert!(!holder_alive(i32::MAX as u32, 0, 0));
        assert!(!process_alive(0));
        assert!(process_alive(m.process));
    }
}
