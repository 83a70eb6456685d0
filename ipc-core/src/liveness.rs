//! Identity and liveness of a process: pid plus start time.
//!
//! A pid alone does not name a process for long: once it exits, the kernel may
//! hand the same pid to a new process. The start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot) tells the two apart, so a
//! [`ProcessId`] recorded in a segment still says "that process is dead" after
//! the pid has been reused.
//!
//! # The one rule
//!
//! Every crate of the workspace judges a recorded peer (a lock holder, a
//! ring end, a claim, a publisher, a segment's creator) through this module,
//! and a peer is [`Liveness::Dead`] only when `/proc` proves it: its entry is
//! gone, names a process with another start time, or is a zombie whose
//! threads have all ended. Whenever that cannot be proven the peer counts as
//! alive, so nothing a live process holds is ever taken over on a guess:
//!
//! - `/proc` is unreadable, or is not the `/proc` of the caller's pid
//!   namespace (`/proc/self` names another pid than `getpid()`, as after
//!   `unshare -p -f` without `--mount-proc`): nobody can be judged, everybody
//!   is alive ([`liveness_known`] says which), with a warning through `log`;
//! - reading a peer's entry fails for any reason but "no such process" (no
//!   free descriptor, no memory): that peer is alive this time, and the next
//!   check reads again. Nothing learned from a failed read is cached.
//!
//! Pids and start times only mean something inside one pid namespace. Peers
//! in two namespaces that share `/dev/shm` (two containers) cannot judge each
//! other at all, so the segment layer records the creator's pid namespace
//! ([`PidNamespace`]) and refuses to open, receive or reclaim a segment made
//! in another one ([`crate::SegmentError::ForeignPidNamespace`]). Memory
//! shared some other way (a raw primitive placed in a mapping of the
//! caller's) must keep to one pid namespace by itself.

pub use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A process, named by pid and start time. `#[repr(C)]`, 16 bytes, no padding:
/// it may be stored in shared memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ProcessId {
    /// The process id.
    pub pid: u32,
    /// Reserved; always zero. Keeps the layout free of padding.
    pub reserved: u32,
    /// The start time in clock ticks since boot, from `/proc/<pid>/stat`.
    pub start_time: u64,
}

// SAFETY: `#[repr(C)]`, plain integers, no padding (4 + 4 + 8 bytes), every
// bit pattern valid; the checks below keep it that way.
unsafe impl crate::Shareable for ProcessId {}
const _: () = assert!(std::mem::size_of::<ProcessId>() == 16);

/// Liveness of a recorded process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The process exists and is the same one (same start time).
    Alive,
    /// No such process, a zombie, or the pid now names another process.
    Dead,
}

/// The start time of the calling process, learned from `/proc/self/stat`;
/// 0 while it is unknown. Written only with a value actually read, never a
/// guess; reset and learned again in a forked child.
static CURRENT: AtomicU64 = AtomicU64::new(0);
/// The pid that goes with [`CURRENT`] (stored before it).
static CURRENT_PID: AtomicU64 = AtomicU64::new(0);
/// [`ProcessId::to_u64`] of the calling process once learned, 0 while
/// unknown: what [`OsJudge::me`] hands every lock, in one load.
static CURRENT_PACKED: AtomicU64 = AtomicU64::new(0);
static ATFORK_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Learns the identity before `main` (from `.init_array`), while the
/// descriptor table is surely not yet full of the program's own descriptors,
/// so that a program that later runs out of descriptors still knows who it
/// is. A failure here is not stored: the first [`ProcessId::current`] tries
/// again.
#[used]
#[link_section = ".init_array"]
static LEARN_AT_START: extern "C" fn() = learn_at_start;

extern "C" fn learn_at_start() {
    register_atfork();
    let _ = learn();
}

/// In a forked child: the parent's identity is not ours. Forget it, then
/// learn ours at once (the child usually has the parent's free descriptors),
/// with raw system calls on a stack buffer only, which are async-signal-safe.
/// If that fails the identity stays unknown and [`ProcessId::current`] tries
/// again (and reports the failure) when it is needed.
extern "C" fn relearn_after_fork() {
    CURRENT_PACKED.store(0, Ordering::Relaxed);
    CURRENT.store(0, Ordering::Relaxed);
    CURRENT_PID.store(0, Ordering::Relaxed);
    // The forking thread's id is not the child's: a plain store into a
    // thread-local without destructor, which is async-signal-safe.
    let _ = HOLDER.try_with(|h| h.set((0, 0)));
    let _ = learn();
}

/// What the `pthread_atfork` child handler does, for a child made by a raw
/// `clone` (which runs no atfork handlers): the fork server's children.
pub(crate) fn forget_after_fork() {
    relearn_after_fork();
}

fn register_atfork() {
    if ATFORK_REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: registers a child handler that makes only async-signal-safe
    // calls; the function pointer is 'static. If registration fails (ENOMEM)
    // a forked child keeps its parent's identity: `Process` children are
    // started through std or libc `fork`, which run the handler, so this only
    // matters for a program that calls the raw clone system call itself.
    if unsafe { libc::pthread_atfork(None, None, Some(relearn_after_fork)) } != 0 {
        ATFORK_REGISTERED.store(false, Ordering::Release);
    }
}

/// Reads the calling process's identity and caches it. Async-signal-safe:
/// raw system calls, a stack buffer, atomics; nothing is stored on failure.
fn learn() -> Result<ProcessId, IdentityError> {
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    let start_time = read_own_start_time()?;
    CURRENT_PID.store(u64::from(pid), Ordering::Relaxed);
    CURRENT.store(start_time, Ordering::Release);
    let id = ProcessId {
        pid,
        reserved: 0,
        start_time,
    };
    CURRENT_PACKED.store(id.to_u64(), Ordering::Release);
    Ok(id)
}

/// The start time of the calling process, from `/proc/self/stat`, read with
/// `open`/`read`/`close` into a stack buffer (no allocation, no lock).
fn read_own_start_time() -> Result<u64, IdentityError> {
    let errno = || IdentityError {
        errno: io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    };
    // SAFETY: a valid NUL-terminated path; open returns a new descriptor or -1.
    let fd = unsafe {
        libc::open(
            c"/proc/self/stat".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    let mut buf = [0u8; 4096];
    let mut len = 0;
    let result = loop {
        if len == buf.len() {
            // Longer than any stat line: refuse rather than parse a cut one.
            break Err(IdentityError {
                errno: libc::EOVERFLOW,
            });
        }
        // SAFETY: `buf[len..]` is writable for `buf.len() - len` bytes.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n < 0 {
            let e = errno();
            if e.errno == libc::EINTR {
                continue;
            }
            break Err(e);
        }
        if n == 0 {
            break Ok(len);
        }
        len += n as usize;
    };
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    let len = result?;
    match parse_stat(&buf[..len]) {
        Some((_, start)) if start != 0 => Ok(start),
        _ => Err(IdentityError { errno: libc::EIO }),
    }
}

impl ProcessId {
    /// The calling process: its pid and start time.
    ///
    /// The identity is learned before `main` runs (and again in a forked
    /// child, right after the fork), then cached: on the hot path this is one
    /// atomic load. It is never guessed: if it could not be learned then (no
    /// free descriptor, no readable `/proc`), each call tries again, and
    /// fails until it succeeds.
    ///
    /// # Errors
    /// [`IdentityError`] when `/proc/self/stat` cannot be read now (most
    /// often: no free file descriptor). Callers that record ownership turn
    /// it into their own typed error rather than record a wrong owner.
    #[inline]
    pub fn current() -> Result<ProcessId, IdentityError> {
        let start_time = CURRENT.load(Ordering::Acquire);
        if start_time != 0 {
            return Ok(ProcessId {
                pid: CURRENT_PID.load(Ordering::Relaxed) as u32,
                reserved: 0,
                start_time,
            });
        }
        Self::current_slow()
    }

    #[cold]
    fn current_slow() -> Result<ProcessId, IdentityError> {
        // Referring to the constructor keeps it linked into every program
        // that asks for its identity.
        std::hint::black_box(&LEARN_AT_START);
        register_atfork();
        learn()
    }

    /// The process `pid`, as it is now; `None` if there is no such process
    /// (or its `/proc` entry cannot be read now).
    pub fn of(pid: u32) -> Option<ProcessId> {
        read_start_time(pid).map(|start_time| ProcessId {
            pid,
            reserved: 0,
            start_time,
        })
    }

    /// Whether this process still runs. Reads `/proc`: a slow path (a few
    /// microseconds), never call it per message.
    pub fn liveness(&self) -> Liveness {
        alive_if(self.pid, |start| start == self.start_time)
    }

    /// Shorthand for `liveness() == Liveness::Alive`.
    pub fn is_alive(&self) -> bool {
        self.liveness() == Liveness::Alive
    }

    /// Packs pid and the low 32 bits of the start time into one `u64`, for
    /// places that must claim or compare an owner with one atomic operation.
    /// Zero is never produced for a real process (pid 0 is never a user
    /// process), so 0 can mean "no owner". Linux pids are below 2^22
    /// (`PID_MAX_LIMIT`), so bits 54 to 63 of a packed id are always zero:
    /// callers may use them as flags of their own.
    #[inline]
    pub const fn to_u64(&self) -> u64 {
        ((self.pid as u64) << 32) | (self.start_time & 0xffff_ffff)
    }

    /// The inverse of [`ProcessId::to_u64`]. The start time holds only its low
    /// 32 bits; [`ProcessId::liveness`] of a packed id compares those only.
    #[inline]
    pub const fn from_u64(packed: u64) -> ProcessId {
        ProcessId {
            pid: (packed >> 32) as u32,
            reserved: 0,
            start_time: packed & 0xffff_ffff,
        }
    }

    /// Liveness of a packed id from [`ProcessId::to_u64`].
    pub fn liveness_packed(packed: u64) -> Liveness {
        let id = ProcessId::from_u64(packed);
        alive_if(id.pid, |start| start & 0xffff_ffff == id.start_time)
    }
}

/// Whether `pid` runs and its start time passes `same`. A zombie thread-group
/// leader with another thread still running is alive: the process lives as
/// long as any of its threads does (the leader may have left with
/// `pthread_exit`). Alive too whenever death cannot be proven (see the
/// [module docs](self)).
fn alive_if(pid: u32, same: impl Fn(u64) -> bool) -> Liveness {
    if pid == 0 {
        return Liveness::Dead;
    }
    if !liveness_known() {
        return Liveness::Alive;
    }
    match read_stat(&format!("/proc/{pid}/stat"), pid) {
        Stat::Found(state, start) if same(start) => {
            if !is_dead_state(state) || any_task_running(pid) {
                Liveness::Alive
            } else {
                Liveness::Dead
            }
        }
        Stat::Found(..) | Stat::Gone => Liveness::Dead,
        Stat::Unknown => Liveness::Alive,
    }
}

/// Zombie, or dead (`X`, and `x` on old kernels).
fn is_dead_state(state: u8) -> bool {
    matches!(state, b'Z' | b'X' | b'x')
}

/// Whether any thread of process `pid` runs (is neither zombie nor dead).
/// A listing or a thread's entry that cannot be read counts as running.
fn any_task_running(pid: u32) -> bool {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(t) => t,
        Err(e) if gone(&e) => return false,
        Err(e) => {
            unreadable(&e);
            return true;
        }
    };
    for t in tasks {
        let Ok(t) = t else {
            return true;
        };
        match read_stat(&t.path().join("stat").to_string_lossy(), pid) {
            Stat::Found(state, _) if !is_dead_state(state) => return true,
            Stat::Found(..) | Stat::Gone => {}
            Stat::Unknown => return true,
        }
    }
    false
}

/// Whether `/proc` can be read (it may be missing in a container). Asked
/// anew each time: nothing learned from a failed look is kept.
pub fn proc_readable() -> bool {
    std::fs::metadata("/proc/self/stat").is_ok()
}

/// Whether `/proc` is the one of the calling process's pid namespace: its
/// `/proc/self` names the pid `getpid()` returns. After `unshare -p -f`
/// without a fresh `/proc` mount it names the pid in the parent namespace,
/// and every pid read there means another process than it says here.
pub fn proc_is_own() -> bool {
    // SAFETY: getpid has no preconditions and cannot fail.
    let me = unsafe { libc::getpid() };
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse::<libc::pid_t>().ok()))
        == Some(me)
}

/// Whether a peer can be judged dead at all here: `/proc` is readable and
/// belongs to this process's pid namespace. When it is not, everybody counts
/// as alive (and a warning is logged, once per reason).
pub fn liveness_known() -> bool {
    static UNREADABLE: AtomicBool = AtomicBool::new(false);
    static FOREIGN: AtomicBool = AtomicBool::new(false);
    if !proc_readable() {
        if !UNREADABLE.swap(true, Ordering::Relaxed) {
            log::warn!("/proc is not readable: no peer can be proven dead, all count as alive");
        }
        return false;
    }
    if !proc_is_own() {
        if !FOREIGN.swap(true, Ordering::Relaxed) {
            log::warn!(
                "/proc belongs to another pid namespace (its /proc/self is not getpid()): \
                 no peer can be proven dead, all count as alive; mount a /proc for this namespace"
            );
        }
        return false;
    }
    true
}

/// The pid namespace a process lives in: the device and inode of its
/// `/proc/<pid>/ns/pid`. Two processes whose namespaces differ cannot tell
/// whether the other is alive; segments record their creator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PidNamespace {
    /// The device of the namespace file system (`nsfs`).
    pub dev: u64,
    /// The namespace's inode (the number in `pid:[N]`).
    pub ino: u64,
}

impl PidNamespace {
    /// What is recorded when the namespace cannot be learned (no `/proc`).
    pub const UNKNOWN: PidNamespace = PidNamespace { dev: 0, ino: 0 };

    /// The calling process's pid namespace, or [`PidNamespace::UNKNOWN`]
    /// when `/proc/self/ns/pid` cannot be examined. Needs no descriptor
    /// (`stat` only), and is asked anew each time.
    pub fn current() -> PidNamespace {
        std::fs::metadata("/proc/self/ns/pid")
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                PidNamespace {
                    dev: m.dev(),
                    ino: m.ino(),
                }
            })
            .unwrap_or(PidNamespace::UNKNOWN)
    }
}

impl std::fmt::Display for PidNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == PidNamespace::UNKNOWN {
            f.write_str("an unknown pid namespace")
        } else {
            write!(f, "pid:[{}] on device {:#x}", self.ino, self.dev)
        }
    }
}

/// Liveness of one thread: thread `tid` of process `pid`, or, with `pid`
/// `None`, whatever process thread `tid` belongs to. Alive while the thread
/// exists and is not a zombie; alive too whenever its death cannot be proven
/// (see the [module docs](self)).
pub fn thread_liveness(pid: Option<u32>, tid: u32) -> Liveness {
    if tid == 0 {
        return Liveness::Dead;
    }
    if !liveness_known() {
        return Liveness::Alive;
    }
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/task/{tid}/stat"),
        None => format!("/proc/{tid}/stat"),
    };
    match read_stat(&path, tid) {
        Stat::Found(state, _) if !is_dead_state(state) => Liveness::Alive,
        Stat::Found(..) | Stat::Gone => Liveness::Dead,
        Stat::Unknown => Liveness::Alive,
    }
}

/// What reading a `/proc/.../stat` file told.
enum Stat {
    /// The state letter and start time.
    Found(u8, u64),
    /// No such process or thread: proof of death (or of pid reuse).
    Gone,
    /// The read failed for another reason: nothing is proven.
    Unknown,
}

/// Whether an error reading `/proc/<pid>/...` means the process is gone.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Logs a read of `/proc` that proved nothing: a warning the first time,
/// then at debug level (it may repeat every liveness period).
fn unreadable(e: &io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!("reading /proc failed ({e}): the peer counts as alive until a read succeeds");
    } else {
        log::debug!("reading /proc failed ({e}): the peer counts as alive");
    }
}

/// Reads the state letter and start time from the stat file at `path`
/// (for process or thread `id`).
fn read_stat(path: &str, id: u32) -> Stat {
    if id == 0 || id > i32::MAX as u32 {
        return Stat::Gone;
    }
    match std::fs::read(path) {
        Ok(text) => match parse_stat(&text) {
            Some((state, start)) => Stat::Found(state, start),
            None => Stat::Unknown,
        },
        Err(e) if gone(&e) => Stat::Gone,
        Err(e) => {
            unreadable(&e);
            Stat::Unknown
        }
    }
}

fn read_start_time(pid: u32) -> Option<u64> {
    match read_stat(&format!("/proc/{pid}/stat"), pid) {
        Stat::Found(_, start) => Some(start),
        Stat::Gone | Stat::Unknown => None,
    }
}

/// Parses `/proc/<pid>/stat`: the command name (field 2) is in parentheses and
/// may itself hold spaces or parentheses, so fields are counted from the last
/// `)`. Field 3 is the state, field 22 the start time.
fn parse_stat(text: &[u8]) -> Option<(u8, u64)> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// How a raw algorithm learns who it is and whether a recorded peer is
/// dead: passed in, so the algorithms stay free of the operating system
/// (and a model checker can kill its threads). Every raw algorithm of the
/// workspace that records owners takes one; the public types pass
/// [`OsJudge`].
pub trait Judge {
    /// The caller's packed identity ([`ProcessId::to_u64`]), to record as
    /// an owner.
    ///
    /// # Errors
    /// [`IdentityError`] if this process cannot learn its identity: nothing
    /// may then be recorded in its name.
    fn me(&self) -> Result<u64, IdentityError>;

    /// Whether the owner recorded as `packed` is proven dead. "Unknown" is
    /// alive: nothing a live process holds is ever taken over.
    fn is_dead(&self, packed: u64) -> bool;

    /// Whether thread `tid` of the process recorded as `packed` (0: any
    /// process) is proven dead.
    fn thread_is_dead(&self, packed: u64, tid: u32) -> bool;

    /// The calling thread as a lock records its holder: its thread id and
    /// its process's packed id ([`Judge::me`]). The default asks the
    /// operating system for the thread id ([`current_tid`]) each time;
    /// [`OsJudge`] caches the pair per thread (one thread-local load on a
    /// lock's fast path); a model checker's judge names its model threads
    /// (they share one thread of the operating system).
    ///
    /// # Errors
    /// As [`Judge::me`].
    fn holder(&self) -> Result<(u32, u64), IdentityError> {
        Ok((current_tid(), self.me()?))
    }
}

thread_local! {
    /// The calling thread's id and packed process id once learned; zeros
    /// until then, and again in a forked child (see [`relearn_after_fork`]).
    static HOLDER: std::cell::Cell<(u32, u64)> = const { std::cell::Cell::new((0, 0)) };
}

#[cold]
fn learn_holder() -> Result<(u32, u64), IdentityError> {
    // The child handler that forgets the cache must be in place before
    // anything is cached.
    register_atfork();
    let h = (current_tid(), me_slow()?);
    HOLDER.with(|c| c.set(h));
    Ok(h)
}

#[cold]
fn me_slow() -> Result<u64, IdentityError> {
    ProcessId::current().map(|p| p.to_u64())
}

/// The operating system's judgement: this module's one rule, by `/proc`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsJudge;

impl Judge for OsJudge {
    #[inline]
    fn me(&self) -> Result<u64, IdentityError> {
        // One load on every lock's fast path (a packed id is never 0).
        match CURRENT_PACKED.load(Ordering::Acquire) {
            0 => me_slow(),
            packed => Ok(packed),
        }
    }

    fn is_dead(&self, packed: u64) -> bool {
        ProcessId::liveness_packed(packed) == Liveness::Dead
    }

    fn thread_is_dead(&self, packed: u64, tid: u32) -> bool {
        let pid = (packed != 0).then(|| ProcessId::from_u64(packed).pid);
        thread_liveness(pid, tid) == Liveness::Dead
    }

    #[inline]
    fn holder(&self) -> Result<(u32, u64), IdentityError> {
        let h = HOLDER.with(std::cell::Cell::get);
        if h.0 != 0 {
            Ok(h)
        } else {
            learn_holder()
        }
    }
}

/// The id of the calling thread (`gettid`).
#[inline]
pub fn current_tid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// The calling process could not learn its own identity (pid and start
/// time): reading `/proc/self/stat` failed, most often because no file
/// descriptor was free. Nothing was recorded in its name; free a descriptor
/// (or make `/proc` readable) and try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityError {
    pub(crate) errno: i32,
}

impl IdentityError {
    /// The `errno` of the failed read (`EMFILE` when no descriptor was free).
    pub fn raw_os_error(&self) -> i32 {
        self.errno
    }
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this process cannot learn its own identity: reading /proc/self/stat failed ({}); \
             free a file descriptor (or make /proc readable) and try again",
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for IdentityError {}

impl From<IdentityError> for std::io::Error {
    fn from(e: IdentityError) -> Self {
        std::io::Error::new(std::io::Error::from_raw_os_error(e.errno).kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_is_alive_and_cached() {
        let a = ProcessId::current().unwrap();
        assert_eq!(a.pid, std::process::id());
        assert!(a.is_alive());
        assert_eq!(ProcessId::current(), Ok(a));
        assert_eq!(ProcessId::liveness_packed(a.to_u64()), Liveness::Alive);
    }

    #[test]
    fn reused_pid_is_dead() {
        let mut a = ProcessId::current().unwrap();
        a.start_time += 1;
        assert_eq!(a.liveness(), Liveness::Dead);
        assert_eq!(ProcessId::liveness_packed(a.to_u64()), Liveness::Dead);
    }

    #[test]
    fn missing_and_zero_pids_are_dead() {
        assert!(!ProcessId {
            pid: 0,
            reserved: 0,
            start_time: 1
        }
        .is_alive());
        assert!(!ProcessId {
            pid: i32::MAX as u32,
            reserved: 0,
            start_time: 1
        }
        .is_alive());
        assert!(ProcessId::of(0).is_none());
    }

    #[test]
    fn a_process_whose_main_thread_left_is_alive_while_others_run() {
        // A forked child whose main thread leaves while a second thread
        // runs: its leader is a zombie, the process is not.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes raw syscalls and thread calls, then
        // ends by pthread_exit / _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            extern "C" fn worker(_: *mut libc::c_void) -> *mut libc::c_void {
                // SAFETY: sleeping and exiting are async-signal-safe.
                unsafe {
                    libc::sleep(30);
                    libc::_exit(0)
                }
            }
            // SAFETY: a zeroed pthread_t is only written by pthread_create.
            let mut t: libc::pthread_t = unsafe { std::mem::zeroed() };
            // SAFETY: `worker` matches the start routine's signature.
            unsafe { libc::pthread_create(&mut t, std::ptr::null(), worker, std::ptr::null_mut()) };
            // SAFETY: closing our copy of the write end, then ending this
            // thread alone with the raw exit syscall (not exit_group, and no
            // unwinding through Rust frames, which pthread_exit would force).
            unsafe {
                libc::close(fds[1]);
                libc::syscall(libc::SYS_exit, 0);
            }
            unreachable!("SYS_exit does not return");
        }
        // SAFETY: our copy of the write end.
        unsafe { libc::close(fds[1]) };
        let mut b = [0u8; 1];
        // The write end closes when the leader has left.
        // SAFETY: reading into a 1-byte buffer.
        unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
        // SAFETY: our read end.
        unsafe { libc::close(fds[0]) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !matches!(
            read_stat(&format!("/proc/{pid}/stat"), pid as u32),
            Stat::Found(b'Z', _)
        ) {
            assert!(
                std::time::Instant::now() < deadline,
                "the leader never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let id = ProcessId::of(pid as u32).unwrap();
        assert!(id.is_alive(), "a live thread keeps the process alive");
        assert_eq!(ProcessId::liveness_packed(id.to_u64()), Liveness::Alive);
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        assert!(!id.is_alive());
    }

    #[test]
    fn parses_names_with_parentheses() {
        let line = b"42 (a) b) (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
        assert_eq!(parse_stat(line), Some((b'S', 987654)));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) S 1"), None);
    }

    #[test]
    fn the_top_bits_of_a_packed_id_are_free() {
        let max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
        let max: u64 = max.trim().parse().unwrap();
        assert!(max <= 1 << 22);
        // Pids are below pid_max, so the largest is 2^22 - 1.
        let id = ProcessId {
            pid: (1 << 22) - 1,
            reserved: 0,
            start_time: u64::MAX,
        };
        assert_eq!(id.to_u64() >> 54, 0);
    }

    #[test]
    fn the_judges_holder_is_this_thread_of_this_process() {
        let me = ProcessId::current().unwrap().to_u64();
        assert_eq!(OsJudge.holder(), Ok((current_tid(), me)));
        assert_eq!(OsJudge.holder(), Ok((current_tid(), me)), "cached");
        assert_eq!(OsJudge.me(), Ok(me));
        let (mine, theirs) = std::thread::spawn(|| (OsJudge.holder(), current_tid()))
            .join()
            .unwrap();
        assert_eq!(mine, Ok((theirs, me)));
        assert_ne!(theirs, current_tid());
    }

    #[test]
    fn packing_round_trips() {
        let id = ProcessId {
            pid: 12345,
            reserved: 0,
            start_time: 0x1_2345_6789,
        };
        let back = ProcessId::from_u64(id.to_u64());
        assert_eq!(back.pid, 12345);
        assert_eq!(back.start_time, 0x2345_6789);
        assert_ne!(id.to_u64(), 0);
    }
}
