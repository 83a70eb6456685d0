//! Child processes, as Python's `multiprocessing.Process`, typed.
//!
//! Two start methods:
//!
//! - [`StartMethod::Fork`] runs a closure in a `fork`ed copy of the caller.
//!   Fast (no exec, the child shares the parent's mappings), but **unsafe in a
//!   multi-threaded parent**: only the forking thread exists in the child, so
//!   a lock another thread held at the moment of the fork (inside `malloc`,
//!   `println!`, a `Mutex` of the program) stays locked for ever in the child.
//!   Use it from single-threaded programs, or keep the child to
//!   async-signal-safe work.
//! - [`StartMethod::Spawn`] re-executes the current binary. The child finds
//!   the entry function by its offset from an anchor function inside this
//!   binary (the same file, verified by device and inode of
//!   `/proc/self/exe`), so no code is serialized; arguments travel as bytes.
//!   Safe in multi-threaded parents. The child must call [`init`] early in
//!   `main` (before starting threads): there it runs the entry function and
//!   exits.
//!
//! In a `cargo test` binary there is no `main` of yours: call [`init`] as the
//! first statement of the test that spawns, and pass
//! [`test_exec_args`]`("that_test")` to [`Builder::exec_args`], so the
//! re-executed test binary runs only that test, whose `init` call runs the
//! entry function.
//!
//! Children are always reaped: [`Process::join`], [`Process::is_alive`] and
//! drop reap them; a daemon child still running on drop is killed first, any
//! other child still running on drop is reaped by a background thread when it
//! exits. Lifecycle events are logged through the `log` facade at `info`
//! (start, exit) and `debug` level; nothing is logged on a hot path.

use crate::error::ProcessError;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable that carries the spawn token to a child.
const SPAWN_ENV: &str = "IPC_CORE_SPAWN";

/// An entry function for a spawned child: it receives the argument bytes
/// given to [`Builder::spawn`] and returns the exit code.
pub type Entry = fn(&[u8]) -> i32;

/// How a child process is started. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StartMethod {
    /// `fork` and run in the copy: fast; unsafe in a multi-threaded parent.
    Fork,
    /// Re-execute the current binary: safe with threads; the child calls
    /// [`init`].
    #[default]
    Spawn,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitStatus {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }

    fn from_wait_status(status: libc::c_int) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s} ({})", signal_name(s)),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// What a forked child's closure may return; it becomes the exit code.
pub trait ChildOutcome {
    /// The exit code for this outcome.
    fn exit_code(self) -> i32;
}

impl ChildOutcome for () {
    fn exit_code(self) -> i32 {
        0
    }
}

impl ChildOutcome for i32 {
    fn exit_code(self) -> i32 {
        self
    }
}

impl<E: fmt::Debug> ChildOutcome for Result<(), E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: {e:?}");
                1
            }
        }
    }
}

/// Describes a child before it starts. Obtained from [`Process::builder`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    method: StartMethod,
    inherit: Vec<RawFd>,
    exec_args: Option<Vec<OsString>>,
}

static NEXT_CHILD: AtomicU64 = AtomicU64::new(1);

impl Builder {
    /// The child's name (default `Process-N`); also set as its kernel thread
    /// name (first 15 bytes), visible in `ps` and `top`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A daemon child dies with its parent (`PR_SET_PDEATHSIG` with
    /// `SIGKILL`, and a re-check that the parent has not already gone), and
    /// is killed when its [`Process`] is dropped while it runs.
    ///
    /// The kernel sends the death signal when the *thread* that started the
    /// child exits, so start daemons from a thread that lives as long as they
    /// should.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// The start method used by [`Builder::start`] (default: spawn).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// Keeps `fd` open, under the same number, in a spawned child. The child
    /// takes it with [`take_inherited_fd`], by the order of `inherit_fd`
    /// calls. (A forked child has every descriptor of its parent anyway.)
    pub fn inherit_fd(mut self, fd: BorrowedFd<'_>) -> Self {
        self.inherit.push(fd.as_raw_fd());
        self
    }

    /// The arguments (after `argv[0]`) of the re-executed binary. By default
    /// the parent's own arguments, which suits a binary that calls [`init`]
    /// first thing in `main`; in a test binary, use [`test_exec_args`].
    pub fn exec_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.exec_args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    fn child_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("Process-{}", NEXT_CHILD.fetch_add(1, Ordering::Relaxed)))
    }

    /// Starts `entry(args)` in a child, with the configured start method.
    pub fn start(self, entry: Entry, args: &[u8]) -> Result<Process, ProcessError> {
        match self.method {
            StartMethod::Spawn => self.spawn(entry, args),
            StartMethod::Fork => {
                let args = args.to_vec();
                self.fork(move || entry(&args))
            }
        }
    }

    /// Forks and runs `f` in the child; its result becomes the exit code
    /// ([`ChildOutcome`]). A panic in `f` prints its message on stderr (the
    /// panic hook) and exits with code 1. The child leaves with `_exit`,
    /// without running `atexit` handlers and without flushing stdout (whose
    /// lock another thread may have held at the fork): lines written with
    /// `println!` are out already, a trailing `print!` without a newline is
    /// lost unless the closure flushes it.
    ///
    /// # Safety of use
    /// Not `unsafe` in the Rust sense, but see the [module docs](self): in a
    /// multi-threaded parent the child may deadlock on a lock another thread
    /// held at the fork.
    pub fn fork<F, R>(self, f: F) -> Result<Process, ProcessError>
    where
        F: FnOnce() -> R,
        R: ChildOutcome,
    {
        let name = self.child_name();
        let kernel_name = kernel_name(&name);
        // Allocated before the fork, published by the child with one store.
        let boxed_name = Box::into_raw(Box::new(name.clone()));
        let boxed_parent = Box::into_raw(Box::new(current_process().name));
        let parent = std::process::id();
        // SAFETY: fork has no memory-safety preconditions; the child below
        // only runs the caller's closure and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            // SAFETY: both came from Box::into_raw just above.
            drop(unsafe { Box::from_raw(boxed_name) });
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(boxed_parent) });
            return Err(ProcessError::Start {
                name,
                source: std::io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            // The child.
            if self.daemon {
                // SAFETY: prctl and getppid are async-signal-safe syscalls.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    if libc::getppid() as u32 != parent {
                        libc::_exit(1);
                    }
                }
            }
            set_kernel_name(&kernel_name);
            NAME.store(boxed_name, Ordering::Release);
            PARENT_NAME.store(boxed_parent, Ordering::Release);
            PARENT.store(parent, Ordering::Release);
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(r) => r.exit_code(),
                Err(_) => 1,
            };
            // No flush of stdout here: its lock may have been held by another
            // thread of the parent at the fork, and would never be released.
            // `println!` output is already written (stdout is line-buffered).
            // SAFETY: leaving the child without unwinding into the parent's
            // stack frames or running its atexit handlers.
            unsafe { libc::_exit(code) }
        }
        // SAFETY: the parent's copies, from Box::into_raw above.
        drop(unsafe { Box::from_raw(boxed_name) });
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(boxed_parent) });
        Process::started(pid as u32, name, self.daemon, "fork")
    }

    /// Re-executes the current binary to run `entry(args)` in the child.
    /// `entry` must be a function of this binary (any `fn(&[u8]) -> i32`);
    /// the child must call [`init`]. See the [module docs](self).
    pub fn spawn(self, entry: Entry, args: &[u8]) -> Result<Process, ProcessError> {
        let name = self.child_name();
        let start_err = |source| ProcessError::Start {
            name: name.clone(),
            source,
        };
        let exe = std::fs::metadata("/proc/self/exe").map_err(start_err)?;
        let args_fd = args_memfd(args).map_err(start_err)?;
        let mut inherit = self.inherit.clone();
        inherit.push(args_fd.as_raw_fd());
        let offset = fn_offset(entry as *const ());
        let fds: Vec<String> = self.inherit.iter().map(|fd| fd.to_string()).collect();
        let token = format!(
            "1;{offset:x};{:x};{:x};{};{};{};{};{}",
            std::os::unix::fs::MetadataExt::dev(&exe),
            std::os::unix::fs::MetadataExt::ino(&exe),
            args_fd.as_raw_fd(),
            fds.join(","),
            hex(name.as_bytes()),
            std::process::id(),
            hex(current_process().name.as_bytes()),
        );
        let mut cmd = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = std::env::args_os().next() {
            cmd.arg0(arg0);
        }
        match &self.exec_args {
            Some(a) => cmd.args(a),
            None => cmd.args(std::env::args_os().skip(1)),
        };
        cmd.env(SPAWN_ENV, token);
        let daemon = self.daemon;
        let parent = std::process::id();
        // SAFETY: the hook runs in the forked child before exec and only
        // makes async-signal-safe syscalls (fcntl, prctl, getppid) over a
        // vector allocated before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &inherit {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if daemon {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    if libc::getppid() as u32 != parent {
                        return Err(std::io::Error::other(
                            "parent exited before the child started",
                        ));
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(start_err)?;
        let pid = child.id();
        drop(child); // std's handle neither waits nor kills on drop; we reap.
        drop(args_fd);
        Process::started(pid, name, daemon, "spawn")
    }
}

fn args_memfd(args: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: a valid C string literal; memfd_create returns a new fd or -1.
    let raw = unsafe { libc::memfd_create(c"ipc-spawn-args".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    file.write_all(args)?;
    Ok(file.into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn kernel_name(name: &str) -> [u8; 16] {
    let mut buf = [0u8; 16];
    for (d, s) in buf.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    buf
}

fn set_kernel_name(buf: &[u8; 16]) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes;
    // `buf` is 16 bytes with a NUL at index 15 at the latest.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr()) };
}

/// The anchor for function offsets: a function of this crate, linked into
/// every binary that spawns.
fn anchor() {}

/// The offset of the function at `addr` from an anchor inside this binary.
/// The offset is the same in every process running the same executable (it
/// is mapped as a whole at one base address), so it can name a function to
/// a spawned child. See [`fn_at_offset`].
pub fn fn_offset(addr: *const ()) -> u64 {
    (addr as usize).wrapping_sub(anchor as fn() as usize) as u64
}

/// The address in this process of the function whose [`fn_offset`] was
/// taken in another process running the same executable.
///
/// Casting the result to a function pointer is `unsafe`: the caller must
/// know the offset came from `fn_offset` of a function of that very type in
/// the same executable (as [`Builder::spawn`] checks for its entry).
pub fn fn_at_offset(offset: u64) -> *const () {
    (anchor as fn() as usize).wrapping_add(offset as usize) as *const ()
}

/// The arguments that make a re-executed `cargo test` binary run just the
/// test named `test` (its path inside the test crate, e.g.
/// `"spawn_tests::child_reads_segment"` or `"child_reads_segment"`).
pub fn test_exec_args(test: &str) -> Vec<OsString> {
    ["--exact", test, "--nocapture", "--test-threads=1", "-q"]
        .iter()
        .map(OsString::from)
        .collect()
}

/// Runs the entry function if this process is a spawned child, then exits;
/// returns at once otherwise. Call it first thing in `main` (before any
/// thread starts), or first thing in a test that spawns.
///
/// ```
/// // First statement of `main`:
/// ipc_core::process::init();
/// // ... the program, which may start children with Process::builder().spawn(...)
/// ```
pub fn init() {
    let Some(token) = std::env::var_os(SPAWN_ENV) else {
        return;
    };
    // Not for grandchildren: they get a token of their own if spawned.
    std::env::remove_var(SPAWN_ENV);
    let code = match run_spawned(&token.to_string_lossy()) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("ipc-core: cannot run spawned child: {msg}");
            125
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn run_spawned(token: &str) -> Result<i32, String> {
    let parts: Vec<&str> = token.split(';').collect();
    let [version, offset, dev, ino, args_fd, fds, name, parent, parent_name] = parts[..] else {
        return Err(format!("malformed token {token:?}"));
    };
    if version != "1" {
        return Err(format!("token version {version}, expected 1"));
    }
    let num =
        |s: &str, radix| u64::from_str_radix(s, radix).map_err(|_| format!("bad number {s:?}"));
    let exe = std::fs::metadata("/proc/self/exe").map_err(|e| e.to_string())?;
    if std::os::unix::fs::MetadataExt::dev(&exe) != num(dev, 16)?
        || std::os::unix::fs::MetadataExt::ino(&exe) != num(ino, 16)?
    {
        return Err("the parent runs another executable".into());
    }
    let name = unhex(name)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("bad name")?;
    set_kernel_name(&kernel_name(&name));
    NAME.store(Box::into_raw(Box::new(name)), Ordering::Release);
    let parent_name = unhex(parent_name)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("bad parent name")?;
    PARENT_NAME.store(Box::into_raw(Box::new(parent_name)), Ordering::Release);
    PARENT.store(num(parent, 10)? as u32, Ordering::Release);
    let inherited: Vec<Option<RawFd>> = fds
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<RawFd>().ok())
        .collect();
    // Close-on-exec again, as every descriptor of this crate is: otherwise
    // they would leak into whatever this child starts in turn.
    for fd in inherited.iter().flatten() {
        // SAFETY: fcntl on a descriptor number has no memory-safety
        // preconditions; a number that is not open only fails.
        unsafe { libc::fcntl(*fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    *INHERITED.lock().unwrap_or_else(|p| p.into_inner()) = inherited;
    let args_fd = num(args_fd, 10)? as RawFd;
    // SAFETY: the parent passed this descriptor (a memfd holding the
    // arguments) for this child alone; nothing else in this process owns it.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(args_fd) });
    let mut args = Vec::new();
    std::io::Seek::rewind(&mut file).map_err(|e| e.to_string())?;
    file.read_to_end(&mut args).map_err(|e| e.to_string())?;
    drop(file);
    let addr = fn_at_offset(num(offset, 16)?) as usize;
    // SAFETY: the parent computed `offset` as `entry - anchor` for an `Entry`
    // of this very executable (same device and inode, checked above), which
    // is mapped as a whole at one base address, so `anchor + offset` is that
    // function's address in this process.
    let entry: Entry = unsafe { std::mem::transmute::<usize, Entry>(addr) };
    Ok(std::panic::catch_unwind(|| entry(&args)).unwrap_or(1))
}

static INHERITED: Mutex<Vec<Option<RawFd>>> = Mutex::new(Vec::new());

/// Takes the `index`-th descriptor the parent passed with
/// [`Builder::inherit_fd`]. Each is handed out once; `None` if there is no
/// such descriptor or it was taken already.
pub fn take_inherited_fd(index: usize) -> Option<OwnedFd> {
    let mut fds = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    let fd = fds.get_mut(index)?.take()?;
    // SAFETY: the parent kept this descriptor open for us across exec, and
    // `take` above ensures it is wrapped in an `OwnedFd` only once.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

static NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());
static PARENT: AtomicU32 = AtomicU32::new(0);
static PARENT_NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());

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
/// started by [`Builder`]).
pub fn current_process() -> ProcessInfo {
    ProcessInfo {
        pid: std::process::id(),
        name: published(&NAME, "MainProcess"),
    }
}

/// The parent, if this process was started by [`Builder`] and the parent
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

/// A started child process.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    pidfd: OwnedFd,
    name: String,
    daemon: bool,
    status: Mutex<Option<ExitStatus>>,
}

impl Process {
    /// A builder for a child process.
    ///
    /// ```
    /// use ipc_core::process::{ExitStatus, Process};
    /// let child = Process::builder().name("doc-child").fork(|| 7)?;
    /// assert_eq!(child.join()?, ExitStatus::Code(7));
    /// # Ok::<(), ipc_core::ProcessError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn started(pid: u32, name: String, daemon: bool, how: &str) -> Result<Process, ProcessError> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if raw < 0 {
            let source = std::io::Error::last_os_error();
            // Without a pidfd we cannot supervise it: do not leave it behind.
            // SAFETY: `pid` is our unreaped child, so it cannot be reused yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
            return Err(ProcessError::Io {
                op: "pidfd_open",
                name,
                source,
            });
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
        log::info!("process {name:?} started by {how}: pid {pid}");
        Ok(Process {
            pid,
            pidfd,
            name,
            daemon,
            status: Mutex::new(None),
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child was started as a daemon.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// A pidfd for the child: it becomes readable (`poll`, `epoll`) when the
    /// child exits, so a caller can wait on many children at once (see
    /// [`wait_any`]).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// How the child ended, if it has (reaping it if needed); `None` while it
    /// runs.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.try_reap().ok().flatten()
    }

    /// Whether the child still runs (reaps it if it has exited).
    pub fn is_alive(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Waits for the child to exit and returns how it ended. Joining again
    /// returns the same status at once.
    pub fn join(&self) -> Result<ExitStatus, ProcessError> {
        loop {
            if let Some(s) = self.join_timeout(Duration::from_secs(3600))? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs then.
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(s) = self.try_reap()? {
                return Ok(Some(s));
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Ok(None);
            }
            poll_readable(&[self.pidfd.as_fd()], left);
        }
    }

    /// Sends `SIGTERM` (Python's `terminate`).
    ///
    /// # Errors
    /// [`ProcessError::AlreadyExited`] if the child has exited: its pid may
    /// name another process by now, so nothing is sent.
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGTERM)
    }

    /// Sends `SIGKILL` (Python's `kill`). Errors as [`Process::terminate`].
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGKILL)
    }

    /// Sends `sig` through the pidfd, so it can reach no other process.
    pub fn signal(&self, sig: i32) -> Result<(), ProcessError> {
        if let Some(status) = self.try_reap()? {
            return Err(ProcessError::AlreadyExited {
                name: self.name.clone(),
                pid: self.pid,
                status,
            });
        }
        // SAFETY: pidfd_send_signal takes the pidfd, a signal number, a null
        // siginfo pointer (allowed) and flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        if r != 0 {
            let source = std::io::Error::last_os_error();
            if source.raw_os_error() == Some(libc::ESRCH) {
                // Exited between the check and the signal.
                if let Some(status) = self.join_timeout(Duration::from_secs(1))? {
                    return Err(ProcessError::AlreadyExited {
                        name: self.name.clone(),
                        pid: self.pid,
                        status,
                    });
                }
            }
            return Err(ProcessError::Io {
                op: "pidfd_send_signal",
                name: self.name.clone(),
                source,
            });
        }
        log::info!(
            "process {:?} (pid {}) sent {}",
            self.name,
            self.pid,
            signal_name(sig)
        );
        Ok(())
    }

    /// Reaps the child if it has exited; caches and returns its status.
    fn try_reap(&self) -> Result<Option<ExitStatus>, ProcessError> {
        let mut cached = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = *cached {
            return Ok(Some(s));
        }
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is writable; `pid` is our child and, until reaped
        // here, cannot name another process.
        let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let source = std::io::Error::last_os_error();
            if source.raw_os_error() == Some(libc::EINTR) {
                return Ok(None);
            }
            return Err(ProcessError::Io {
                op: "waitpid",
                name: self.name.clone(),
                source,
            });
        }
        let s = ExitStatus::from_wait_status(status);
        *cached = Some(s);
        log::info!("process {:?} (pid {}) exited: {s}", self.name, self.pid);
        Ok(Some(s))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.try_reap(), Ok(Some(_)) | Err(_)) {
            return;
        }
        if self.daemon {
            let _ = self.kill();
            let _ = self.join();
            return;
        }
        // A non-daemon child outlives its handle (as in Python); a detached
        // thread reaps it when it exits, so it never lingers as a zombie.
        let pid = self.pid;
        let name = std::mem::take(&mut self.name);
        let spawned = std::thread::Builder::new()
            .name("ipc-reaper".into())
            .spawn(move || {
                let mut status = 0;
                // SAFETY: `pid` is our unreaped child; `status` is writable.
                unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
                log::info!(
                    "process {name:?} (pid {pid}) exited: {}",
                    ExitStatus::from_wait_status(status)
                );
            });
        if spawned.is_err() {
            log::warn!("could not start a reaper thread for pid {pid}");
        }
    }
}

/// Waits until one of `children` has exited, at most `timeout`; returns its
/// index, or `None` on timeout. Does not reap it (call `join` or
/// `exit_status` on it).
pub fn wait_any(children: &[&Process], timeout: Duration) -> Option<usize> {
    let fds: Vec<BorrowedFd<'_>> = children.iter().map(|c| c.pidfd()).collect();
    poll_readable(&fds, timeout)
}

/// Polls `fds` for readability; returns the index of the first ready one.
fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> Option<usize> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // Round sub-millisecond remainders up so a short timeout still sleeps.
    let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
    // SAFETY: `pfds` is a valid, writable array of `pfds.len()` entries.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if r <= 0 {
        return None;
    }
    pfds.iter().position(|p| p.revents != 0)
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
    fn exit_status_reads_like_python() {
        assert_eq!(ExitStatus::Signal(9).to_string(), "signal 9 (SIGKILL)");
        assert_eq!(ExitStatus::Code(3).to_string(), "exit code 3");
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Signal(15).success());
    }

    #[test]
    fn cpu_count_is_positive() {
        assert!(cpu_count() >= 1);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(run_spawned("garbage").is_err());
        assert!(run_spawned("2;0;0;0;0;;;0;").is_err());
        assert!(run_spawned("1;0;0;0;0;;;0;").is_err()); // wrong exe identity
    }

    #[test]
    fn function_offsets_round_trip() {
        fn f() {}
        let off = fn_offset(f as fn() as *const ());
        assert_eq!(fn_at_offset(off), f as fn() as *const ());
    }
}
