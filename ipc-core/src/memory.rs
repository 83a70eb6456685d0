//! How much memory a new segment may take: the machine's, the memory
//! cgroup's, and (for named segments) `/dev/shm`'s.
//!
//! A segment is sized with `posix_fallocate`, which takes every page at
//! once. On a named segment a full `/dev/shm` makes that fail cleanly
//! (`ENOSPC`), but an anonymous `memfd` has no size limit of its own, and
//! neither form is stopped by a memory cgroup: the pages are charged as they
//! are taken, and past the cgroup's limit (or the machine's memory) the
//! answer is the OOM killer's `SIGKILL`, not an error. So before sizing a
//! segment its creator compares the size with what is free:
//!
//! - the machine: `MemAvailable` of `/proc/meminfo` (what the kernel
//!   estimates it can hand out without swapping);
//! - the memory cgroup, at every level from the caller's up to the root of
//!   its hierarchy: limit minus usage plus the inactive page cache that can
//!   be reclaimed (cgroup v2 `memory.max`, `memory.current`,
//!   `memory.stat`; cgroup v1 `memory.limit_in_bytes`,
//!   `memory.usage_in_bytes`, `memory.stat`), the cgroup found through
//!   `/proc/self/cgroup` and `/proc/self/mountinfo`;
//! - for a named segment, the free space of `/dev/shm` (`statvfs`).
//!
//! Segments of at most [`CHECK_ABOVE`] bytes are not checked. What remains
//! the caller's risk: these are snapshots. Other processes (or
//! other segments of this one) may take the memory between the check and
//! the allocation, a limit that cannot be read (no free descriptor, a
//! cgroup file system that is not mounted) is not checked, and pages that
//! could only be had by swapping count as unavailable. A segment that
//! passes the check can still meet the OOM killer if memory runs out while
//! it is being sized.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Which limit a segment did not fit in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryLimit {
    /// The machine's available memory (`MemAvailable`).
    Machine,
    /// The memory cgroup at this directory (the tightest level).
    Cgroup(PathBuf),
    /// The free space of the `/dev/shm` file system.
    DevShm,
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryLimit::Machine => f.write_str("the machine's available memory (MemAvailable)"),
            MemoryLimit::Cgroup(dir) => write!(f, "the memory cgroup {}", dir.display()),
            MemoryLimit::DevShm => f.write_str("the free space of /dev/shm"),
        }
    }
}

/// The tightest limit a new segment (named or anonymous) meets now and the
/// bytes free under it, or `None` if no limit could be read.
pub fn available(named: bool) -> Option<(u64, MemoryLimit)> {
    tightest(named, u64::MAX)
}

/// Segments up to this size are not checked: reading the limits costs
/// about 50 us, more than creating a small segment, and a few MiB are no
/// more at risk than any other allocation of the program.
pub const CHECK_ABOVE: u64 = 4 << 20;

/// The limit a segment of `total` bytes does not fit in, with the bytes free
/// under it; `None` when it fits every limit that could be read (or is at
/// most [`CHECK_ABOVE`] bytes).
pub(crate) fn shortfall(total: u64, named: bool) -> Option<(u64, MemoryLimit)> {
    if total <= CHECK_ABOVE {
        return None;
    }
    tightest(named, total).filter(|(free, _)| total > *free)
}

/// The tightest limit; `need` lets a cgroup level skip reading its page
/// cache statistics when its plain room already suffices.
fn tightest(named: bool, need: u64) -> Option<(u64, MemoryLimit)> {
    let mut best: Option<(u64, MemoryLimit)> = None;
    let mut consider = |free: Option<u64>, limit: MemoryLimit| {
        if let Some(free) = free {
            if best.as_ref().is_none_or(|(b, _)| free < *b) {
                best = Some((free, limit));
            }
        }
    };
    consider(mem_available(), MemoryLimit::Machine);
    if let Some((free, dir)) = cgroup_available(need) {
        consider(Some(free), MemoryLimit::Cgroup(dir));
    }
    if named {
        consider(dev_shm_free(), MemoryLimit::DevShm);
    }
    best
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The free bytes of the `/dev/shm` file system.
fn dev_shm_free() -> Option<u64> {
    let path = CString::new("/dev/shm").ok()?;
    // SAFETY: an all-zero statvfs is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` writable; statvfs opens
    // nothing.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    (st.f_bavail as u64).checked_mul(st.f_frsize as u64)
}

/// A memory cgroup hierarchy the calling process belongs to.
#[derive(Clone)]
struct Hierarchy {
    /// Where the hierarchy's root is mounted, as seen here.
    mount_point: PathBuf,
    /// The caller's cgroup directory.
    dir: PathBuf,
    /// Version 2 (unified) or 1.
    v2: bool,
}

/// Finds the caller's memory cgroup: a cgroup v1 hierarchy with the
/// `memory` controller, else the v2 hierarchy if it has one.
fn hierarchy(cgroups: &str) -> Option<Hierarchy> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut v1_path = None;
    let mut v2_path = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            v2_path = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1_path = Some(path.to_owned());
        }
    }
    for line in mountinfo.lines() {
        // "id parent major:minor root mount-point options ... - fstype source super-options"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let theirs: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let fstype = theirs.first().copied().unwrap_or("");
        let options = theirs.get(2).copied().unwrap_or("");
        let (path, v2) = match fstype {
            "cgroup" if options.split(',').any(|o| o == "memory") => (v1_path.as_deref(), false),
            "cgroup2" if v1_path.is_none() => (v2_path.as_deref(), true),
            _ => continue,
        };
        let Some(path) = path else { continue };
        let Some(rel) = relative_to(path, root) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        let dir = mount_point.join(rel);
        if v2 && !has_memory_controller(&dir) {
            continue;
        }
        return Some(Hierarchy {
            mount_point,
            dir,
            v2,
        });
    }
    None
}

/// `path` below the mount's `root`, without a leading `/`; `None` when the
/// cgroup is not under what is mounted here.
fn relative_to<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    Some(rest.trim_start_matches('/'))
}

/// Mount points in mountinfo escape space, tab, newline and backslash as
/// `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn has_memory_controller(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
}

/// The caller's memory cgroup hierarchy, found again only when
/// `/proc/self/cgroup` changes (the process moved): parsing the mount table
/// each time would cost more than the rest of a segment's creation.
fn hierarchy_cached() -> Option<Hierarchy> {
    static CACHE: Mutex<Option<(String, Hierarchy)>> = Mutex::new(None);
    let key = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, h)) = cache.as_ref() {
        if *k == key {
            return Some(h.clone());
        }
    }
    let h = hierarchy(&key)?;
    *cache = Some((key, h.clone()));
    Some(h)
}

/// The least room over the caller's memory cgroup and its ancestors, and
/// the directory where it is least.
fn cgroup_available(need: u64) -> Option<(u64, PathBuf)> {
    let h = hierarchy_cached()?;
    let mut best: Option<(u64, PathBuf)> = None;
    let mut dir = h.dir.clone();
    loop {
        if let Some(free) = level_available(&dir, h.v2, need) {
            if best.as_ref().is_none_or(|(b, _)| free < *b) {
                best = Some((free, dir.clone()));
            }
        }
        if dir == h.mount_point || !dir.pop() || !dir.starts_with(&h.mount_point) {
            break;
        }
    }
    best
}

/// Limit minus usage, plus the reclaimable page cache when that room alone
/// is less than `need`, of one cgroup directory; `None` for a level without
/// a limit (or whose files cannot be read).
fn level_available(dir: &Path, v2: bool, need: u64) -> Option<u64> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let (limit_file, usage_file, inactive_key) = if v2 {
        ("memory.max", "memory.current", "inactive_file")
    } else {
        (
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
        )
    };
    // "max" (v2) does not parse: no limit at this level.
    let limit: u64 = read(limit_file)?.trim().parse().ok()?;
    if limit >= i64::MAX as u64 / 2 {
        return None; // v1 writes "no limit" as a huge number
    }
    let usage: u64 = read(usage_file)?.trim().parse().ok()?;
    let room = limit.saturating_sub(usage);
    if room >= need {
        return Some(room);
    }
    let inactive = read("memory.stat")
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(inactive_key)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0u64);
    Some(room.saturating_add(inactive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_and_escapes() {
        assert_eq!(relative_to("/a/b", "/"), Some("a/b"));
        assert_eq!(relative_to("/a/b", "/a"), Some("b"));
        assert_eq!(relative_to("/a", "/a"), Some(""));
        assert_eq!(relative_to("/ab", "/a"), None);
        assert_eq!(relative_to("/x", "/a"), None);
        assert_eq!(unescape(r"/sys/fs/with\040space"), "/sys/fs/with space");
        assert_eq!(unescape(r"plain\0"), r"plain\0");
    }

    #[test]
    fn this_machine_has_a_limit() {
        let (free, _) = available(false).expect("/proc/meminfo is readable");
        assert!(free > 0);
        assert!(mem_available().is_some());
        assert!(dev_shm_free().is_some());
    }
}
