//! Who holds a lock: the calling thread's identity, cached, and the liveness
//! check of a recorded holder (a slow path that reads `/proc`).
//!
//! A holder is recorded as its thread id (in the futex word itself) plus its
//! process, packed as [`ProcessId::to_u64`] (pid and start time), in a second
//! word. The pair survives pid reuse: a new process with the old pid has
//! another start time.

#[cfg(not(loom))]
use ipc_core::liveness::current_tid;
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
#[cfg(not(loom))]
#[inline]
pub(crate) fn me() -> Me {
    let m = ME.with(Cell::get);
    if m.tid != 0 {
        m
    } else {
        me_slow()
    }
}

#[cfg(not(loom))]
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
#[cfg(not(loom))]
pub(crate) fn holder_alive(tid: u32, rec_tid: u32, rec_process: u64) -> bool {
    if !proc_readable() {
        // Without /proc nobody can be proven dead: never take a lock over.
        return true;
    }
    if rec_tid == tid && rec_process != 0 {
        // The record is the holder's: the same process (pid and start time;
        // its leader may be a zombie while other threads run) and the
        // thread still there.
        let id = ProcessId::from_u64(rec_process);
        let same_process = read_stat(&format!("/proc/{}/stat", id.pid))
            .is_some_and(|(_, start)| start & 0xffff_ffff == id.start_time);
        same_process && task_running(&format!("/proc/{}/task/{tid}/stat", id.pid))
    } else {
        task_running(&format!("/proc/{tid}/stat"))
    }
}

/// Whether a process is alive, from its packed id (0 = nobody: not alive).
/// Without a readable `/proc`, every recorded process counts as alive.
/// A process whose main thread has exited shows a zombie leader while its
/// other threads run: it counts as alive while any of its tasks runs.
#[cfg(not(loom))]
pub(crate) fn process_alive(packed: u64) -> bool {
    if packed == 0 {
        return false;
    }
    if !proc_readable() {
        return true;
    }
    let id = ProcessId::from_u64(packed);
    match read_stat(&format!("/proc/{}/stat", id.pid)) {
        Some((state, start)) if start & 0xffff_ffff == id.start_time => {
            if !matches!(state, b'Z' | b'X' | b'x') {
                return true;
            }
            std::fs::read_dir(format!("/proc/{}/task", id.pid)).is_ok_and(|tasks| {
                tasks
                    .flatten()
                    .any(|t| task_running(&format!("{}/stat", t.path().display())))
            })
        }
        _ => false,
    }
}

/// Whether `/proc` can tell us about processes (it may be unmounted in a
/// container); checked once.
#[cfg(not(loom))]
fn proc_readable() -> bool {
    static READABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READABLE.get_or_init(|| {
        let ok = std::fs::metadata("/proc/self/stat").is_ok();
        if !ok {
            log::warn!("/proc is not readable: dead lock holders cannot be detected");
        }
        ok
    })
}

/// Whether the task of a `stat` file exists and is not a zombie.
#[cfg(not(loom))]
fn task_running(path: &str) -> bool {
    read_stat(path).is_some_and(|(state, _)| !matches!(state, b'Z' | b'X' | b'x'))
}

/// The state letter and start time (field 22) of a `stat` file. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
#[cfg(not(loom))]
fn read_stat(path: &str) -> Option<(u8, u64)> {
    let text = std::fs::read(path).ok()?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
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

    pub(crate) fn me() -> Me {
        Me {
            tid: ID.with(|id| *id),
            process: 1,
        }
    }

    pub(crate) fn holder_alive(tid: u32, _rec_tid: u32, _rec_process: u64) -> bool {
        !DEAD.iter().any(|d| d.load(LoomOrdering::Acquire) == tid)
    }

    pub(crate) fn die() {
        let tid = me().tid;
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
    let tid = std::thread::spawn(|| me().tid).join().unwrap_or(0);
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
        let m = me();
        assert_eq!(m.tid, current_tid());
        assert_eq!(m.process, ProcessId::current().to_u64());
        assert!(holder_alive(m.tid, m.tid, m.process));
        let other = std::thread::spawn(me).join().unwrap();
        assert_ne!(other.tid, m.tid);
        // The thread has exited (its task may linger a moment after join):
        // its record says dead.
        wait_gone(other.tid);
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
