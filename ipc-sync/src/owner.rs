//! Who holds a lock: the calling thread's identity, cached, and the liveness
//! check of a recorded holder (a slow path that reads `/proc`).
//!
//! A holder is recorded as its thread id (in the futex word itself) plus its
//! process, packed as [`ProcessId::to_u64`] (pid and start time), in a second
//! word. The pair survives pid reuse: a new process with the old pid has
//! another start time.

use ipc_core::liveness::current_tid;
use ipc_core::{Liveness, ProcessId};
use std::cell::Cell;
use std::sync::Once;

/// The calling thread, as recorded in a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    /// `gettid()`.
    pub(crate) tid: u32,
    /// `ProcessId::current().to_u64()`.
    pub(crate) process: u64,
}

thread_local! {
    static ME: Cell<Me> = const { Cell::new(Me { tid: 0, process: 0 }) };
}

static ATFORK: Once = Once::new();

extern "C" fn forget_after_fork() {
    // Runs in the child of a fork, in its only thread (the forking one): a
    // plain TLS store of a `Copy` value without destructor, which is
    // async-signal-safe.
    let _ = ME.try_with(|c| c.set(Me { tid: 0, process: 0 }));
}

/// The calling thread's identity: one thread-local load after the first call.
#[inline]
pub(crate) fn me() -> Me {
    let m = ME.with(Cell::get);
    if m.tid != 0 {
        m
    } else {
        me_slow()
    }
}

#[cold]
fn me_slow() -> Me {
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
        process: ProcessId::current().to_u64(),
    };
    ME.with(|c| c.set(m));
    m
}

/// Whether the holder recorded as thread `tid` (from the lock word) with the
/// process record `rec_tid`/`rec_process` (written just after the lock word
/// was claimed) is still running. Reads `/proc`: slow path only.
///
/// If the record belongs to `tid`, the holder is alive when its process (pid
/// and start time) is alive and its thread still exists. If the record is
/// stale (the holder is between claiming the word and writing the record,
/// or died there), only the thread id is checked: a missing thread is dead.
pub(crate) fn holder_alive(tid: u32, rec_tid: u32, rec_process: u64) -> bool {
    if rec_tid == tid && rec_process != 0 {
        if ProcessId::liveness_packed(rec_process) == Liveness::Dead {
            return false;
        }
        let pid = ProcessId::from_u64(rec_process).pid;
        task_running(&format!("/proc/{pid}/task/{tid}/stat"))
    } else {
        task_running(&format!("/proc/{tid}/stat"))
    }
}

/// Whether a process is alive, from its packed id (0 = nobody: not alive).
pub(crate) fn process_alive(packed: u64) -> bool {
    packed != 0 && ProcessId::liveness_packed(packed) == Liveness::Alive
}

/// Reads a `stat` file and says whether the task exists and is not a zombie.
fn task_running(path: &str) -> bool {
    let Ok(text) = std::fs::read(path) else {
        return false;
    };
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let state = text
        .get(close + 1..)
        .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()).copied());
    !matches!(state, None | Some(b'Z') | Some(b'X') | Some(b'x'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me_is_this_thread() {
        let m = me();
        assert_eq!(m.tid, current_tid());
        assert_eq!(m.process, ProcessId::current().to_u64());
        assert!(holder_alive(m.tid, m.tid, m.process));
        let other = std::thread::spawn(me).join().unwrap();
        assert_ne!(other.tid, m.tid);
        // The thread has exited: its record says dead.
        assert!(!holder_alive(other.tid, other.tid, other.process));
    }

    #[test]
    fn a_stale_record_falls_back_to_the_tid() {
        let m = me();
        assert!(holder_alive(m.tid, 0, 0));
        assert!(!holder_alive(i32::MAX as u32, 0, 0));
        assert!(!process_alive(0));
        assert!(process_alive(m.process));
    }
}
