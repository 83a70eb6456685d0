//! This process as the workspace names it: its name, its parent's, the
//! kernel thread name, its thread and CPU counts.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn kernel_name(name: &str) -> [u8; 16] {
    let mut buf = [0u8; 16];
    for (d, s) in buf.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    buf
}

pub(super) fn set_kernel_name(buf: &[u8; 16]) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes;
    // `buf` is 16 bytes with a NUL at index 15 at the latest.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr()) };
}

pub(super) static NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());
pub(super) static PARENT: AtomicU32 = AtomicU32::new(0);
pub(super) static PARENT_NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());

/// Reads a name published in one of the statics above.
fn published(p: &AtomicPtr<String>, default: &str) -> String {
    let p = p.load(Ordering::Acquire);
    if p.is_null() {
        default.to_owned()
    } else {
        // SAFETY: these statics are only ever set to leaked `Box<String>`s
        // that are never freed, so a non-null pointer stays valid.
        unsafe { (*p).clone() }
    }
}

/// A process, as [`current_process`] and [`parent_process`] describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// Its name: `MainProcess` for a process not started by this crate.
    pub name: String,
}

/// The calling process: its pid and name (`MainProcess` unless it was
/// started by [`Builder`](crate::process::Builder)).
pub fn current_process() -> ProcessInfo {
    ProcessInfo {
        pid: std::process::id(),
        name: published(&NAME, "MainProcess"),
    }
}

/// The parent, if this process was started by [`Builder`](crate::process::Builder) and the parent
/// still runs; `None` otherwise.
pub fn parent_process() -> Option<ProcessInfo> {
    let parent = PARENT.load(Ordering::Acquire);
    // SAFETY: getppid cannot fail.
    let ppid = unsafe { libc::getppid() } as u32;
    (parent != 0 && parent == ppid).then(|| ProcessInfo {
        pid: parent,
        name: published(&PARENT_NAME, "MainProcess"),
    })
}

/// The number of CPUs this process may run on (its affinity mask), at
/// least 1.
pub fn cpu_count() -> usize {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and its size is passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r == 0 {
        // SAFETY: `set` was filled in by the kernel.
        let n = unsafe { libc::CPU_COUNT(&set) };
        if n > 0 {
            return n as usize;
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The number of threads of this process; `None` if it cannot be read.
/// The link count of `/proc/self/task` is two plus the threads (one
/// `stat`, a sixth of the cost of reading `/proc/self/stat`, which is the
/// fallback).
pub(super) fn thread_count() -> Option<usize> {
    if let Ok(m) = std::fs::metadata("/proc/self/task") {
        let links = std::os::unix::fs::MetadataExt::nlink(&m);
        if links >= 3 {
            return usize::try_from(links - 2).ok();
        }
    }
    let text = std::fs::read("/proc/self/stat").ok()?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // Field 20 (num_threads); the fields after the name start at field 3.
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(b"Process-1 \xff")).unwrap(), b"Process-1 \xff");
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn cpu_count_is_positive() {
        assert!(cpu_count() >= 1);
    }

    #[test]
    fn thread_count_reads_this_process() {
        let before = thread_count().unwrap();
        assert!(before >= 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count().unwrap() > before.min(1));
        drop(tx);
        let _ = t.join();
    }
}
