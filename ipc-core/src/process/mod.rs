//! Child processes, as Python's `multiprocessing.Process`, typed.
//!
//! Two start methods:
//!
//! - [`StartMethod::Spawn`] (the default) re-executes the current binary.
//!   The child runs an entry function of the same executable: a function
//!   item or a closure that captures nothing, such as `fn child(args: &[u8])
//!   -> i32`, with the argument bytes the parent gave. Nothing is
//!   serialized: the function is named by a descriptor in the executable's
//!   read-only data ([`crate::entry`]), which the child checks before it
//!   calls anything, so a wrong or forged name is an error, never a jump.
//!   Safe in multi-threaded parents. **The child must call [`init`] as the
//!   first statement of `main`**: there it runs the entry function and
//!   exits. A spawned child that does not fails loudly instead of running
//!   the parent's program again: it cannot start processes
//!   ([`ProcessError::NotInitialized`]), it exits with [`EXIT_NO_INIT`] and
//!   a message on stderr, and the parent's [`Process::join`] returns
//!   [`ProcessError::EntryNotRun`].
//! - [`StartMethod::Fork`] runs a closure in a `fork`ed copy of the caller:
//!   fast (no exec, the child shares the parent's mappings and captures
//!   anything). Only the forking thread exists in the child, so a lock
//!   another thread held at the moment of the fork (inside `println!`, a
//!   logger, a `Mutex` of the program) stays locked for ever there, and
//!   libraries that are not fork-safe may be left mid-operation.
//!   [`Builder::fork`] therefore refuses, with [`ProcessError::MultiThreaded`],
//!   when the calling process has other threads: a copy of a single-threaded
//!   process has nothing held by a thread that vanished, so any closure is
//!   sound there. [`Builder::fork_unchecked`] forks a multi-threaded process
//!   anyway; it is `unsafe`, with the rules in its `# Safety` section.
//!
//! In a `cargo test` binary there is no `main` of yours: call [`init`] as the
//! first statement of the test that spawns, and pass
//! [`test_exec_args`]`("that_test")` to [`Builder::exec_args`], so the
//! re-executed test binary runs only that test, whose `init` call runs the
//! entry function.
//!
//! Children are always reaped: [`Process::join`], [`Process::is_alive`] and
//! drop reap them; a daemon child still running on drop is killed first, any
//! other child still running on drop is reaped when it has exited, the next
//! time this process starts a child (as Python does). Lifecycle events are
//! logged through the `log` facade at `info` (start, exit) and `debug`
//! level; nothing is logged on a hot path.

mod spawn;
mod typed;

pub use spawn::{
    init, take_inherited_fd, test_exec_args, try_init, EXIT_BAD_TOKEN, EXIT_NO_INIT, SPAWN_ENV,
};
pub use typed::{Child, EXIT_BAD_ARGS};

use crate::error::ProcessError;
use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    /// The start method used by [`Builder::start`] (default: spawn; fork is
    /// the checked [`Builder::fork`]).
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

    /// Forks and runs `f` in the child; its result becomes the exit code
    /// ([`ChildOutcome`]). A panic in `f` prints its message on stderr (the
    /// panic hook) and exits with code 1. The child leaves with `_exit`,
    /// without running `atexit` handlers and without flushing stdout: lines
    /// written with `println!` are out already, a trailing `print!` without
    /// a newline is lost unless the closure flushes it.
    ///
    /// # Errors
    /// [`ProcessError::MultiThreaded`] if this process has other threads
    /// (see the [module docs](self) and [`fork_unchecked`](Self::fork_unchecked)),
    /// [`ProcessError::NotInitialized`] in a spawned child that did not call
    /// [`init`], [`ProcessError::Start`] if `fork` fails.
    pub fn fork<F, R>(self, f: F) -> Result<Process, ProcessError>
    where
        F: FnOnce() -> R,
        R: ChildOutcome,
    {
        match thread_count() {
            Some(1) => {}
            threads => return Err(ProcessError::MultiThreaded { threads }),
        }
        // SAFETY: this process has one thread (checked just above; only a
        // thread of this process could start another, and this is the only
        // one), so the child is a copy in which nothing is held by a thread
        // that vanished.
        unsafe { self.fork_unchecked(f) }
    }

    /// Forks and runs `f` in the child, as [`fork`](Self::fork), even if this
    /// process has other threads.
    ///
    /// # Safety
    /// Only the calling thread exists in the child. If this process has
    /// other threads, `f` must not use anything another thread may have been
    /// using at the moment of the fork: no lock another thread may hold
    /// (`std::sync` locks, stdout and stderr through `println!`/`eprintln!`,
    /// a `log` logger), no channel or scope fed by another thread, no
    /// library that is not fork-safe. Allocating is fine with glibc and
    /// musl, as are this workspace's shared-memory primitives and raw
    /// system calls. Breaking the rule may deadlock the child or leave it
    /// reading state another thread was halfway through changing.
    ///
    /// # Errors
    /// As [`fork`](Self::fork), without the thread check.
    pub unsafe fn fork_unchecked<F, R>(self, f: F) -> Result<Process, ProcessError>
    where
        F: FnOnce() -> R,
        R: ChildOutcome,
    {
        spawn::refuse_before_init()?;
        reap_orphans();
        let name = self.child_name();
        let kernel_name = kernel_name(&name);
        // Allocated before the fork, published by the child with one store.
        let boxed_name = Box::into_raw(Box::new(name.clone()));
        let boxed_parent = Box::into_raw(Box::new(current_process().name));
        let parent = std::process::id();
        // SAFETY: fork has no memory-safety preconditions of its own; what
        // the child may do is the caller's contract (see `# Safety`), and it
        // leaves with `_exit`.
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
        Process::started(pid as u32, name, self.daemon, None, "fork")
    }

    /// Re-executes the current binary to run `entry(args)` in the child.
    ///
    /// `entry` is a function item of this executable (`fn child(args:
    /// &[u8]) -> i32`) or a closure that captures nothing; anything else is
    /// refused when the program is compiled, since only a zero-sized
    /// function can be re-created in another process. Its return value is
    /// the child's exit code; a panic exits with code 1. The child must call
    /// [`init`] first thing in `main` (see the [module docs](self)).
    ///
    /// # Errors
    /// [`ProcessError::NotInitialized`] in a spawned child that did not call
    /// [`init`]; [`ProcessError::Entry`] if `entry` is not linked into the
    /// executable itself (for example, it lives in a shared library);
    /// [`ProcessError::Start`] if the memfds or the exec fail.
    pub fn spawn<F>(self, entry: F, args: &[u8]) -> Result<Process, ProcessError>
    where
        F: Fn(&[u8]) -> i32 + Copy + 'static,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "a spawn entry must be a function item or a closure that captures nothing"
            )
        };
        let _ = entry; // zero-sized: the child makes its own from the type.
        let entry = crate::entry::EntryRef::of(spawn::SpawnEntry::<F>::DESC)?;
        self.spawn_entry(entry, spawn::CallKind::Bytes, args, &[], None)
    }

    /// Re-executes the current binary to run the entry `entry` of `kind`
    /// with `args`, passing the inherited descriptors and `extra` after
    /// them, and (for a typed entry) the result memfd.
    fn spawn_entry(
        self,
        entry: crate::entry::EntryRef,
        kind: spawn::CallKind,
        args: &[u8],
        extra: &[RawFd],
        result: Option<&OwnedFd>,
    ) -> Result<Process, ProcessError> {
        spawn::refuse_before_init()?;
        reap_orphans();
        let name = self.child_name();
        let start_err = |source| ProcessError::Start {
            name: name.clone(),
            source,
        };
        let exe = std::fs::metadata("/proc/self/exe").map_err(start_err)?;
        let parent_name = current_process().name;
        let mut fds = self.inherit.clone();
        fds.extend_from_slice(extra);
        let result_fd = result.map_or(-1, |r| r.as_raw_fd());
        let token = spawn::Token {
            entry,
            kind,
            result_fd,
            exe: (
                std::os::unix::fs::MetadataExt::dev(&exe),
                std::os::unix::fs::MetadataExt::ino(&exe),
            ),
            parent: std::process::id(),
            fds: fds.clone(),
            name: &name,
            parent_name: &parent_name,
            args,
        }
        .seal()
        .map_err(start_err)?;
        let mut inherit = fds;
        inherit.push(token.fd.as_raw_fd());
        if result_fd >= 0 {
            inherit.push(result_fd);
        }
        let mut cmd = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = std::env::args_os().next() {
            cmd.arg0(arg0);
        }
        match &self.exec_args {
            Some(a) => cmd.args(a),
            None => cmd.args(std::env::args_os().skip(1)),
        };
        cmd.env(SPAWN_ENV, &token.env);
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
        Process::started(pid, name, daemon, Some(token.fd), "spawn")
    }
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
    exit: Mutex<Option<ExitStatus>>,
    /// A spawned child's token: the child writes a mark in it just before
    /// it runs its entry function.
    entered: Option<OwnedFd>,
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

    fn started(
        pid: u32,
        name: String,
        daemon: bool,
        entered: Option<OwnedFd>,
        how: &str,
    ) -> Result<Process, ProcessError> {
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
            exit: Mutex::new(None),
            entered,
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
    ///
    /// # Errors
    /// [`ProcessError::EntryNotRun`] if a spawned child exited (with a code,
    /// not by a signal) without ever running its entry function: its `main`
    /// did not call [`init`] first, or its spawn token was refused (the
    /// child printed why on stderr). [`ProcessError::Io`] if `waitpid`
    /// fails.
    pub fn join(&self) -> Result<ExitStatus, ProcessError> {
        loop {
            if let Some(s) = self.join_timeout(Duration::from_secs(3600))? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs then.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(s) = self.try_reap()? {
                self.check_entered(s)?;
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

    /// For a spawned child that exited with a code: whether it ran its
    /// entry function (a child killed by a signal may have been stopped
    /// before it could, which is not an error of the program).
    fn check_entered(&self, status: ExitStatus) -> Result<(), ProcessError> {
        let (Some(fd), ExitStatus::Code(_)) = (&self.entered, status) else {
            return Ok(());
        };
        let mut mark = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `mark` from a memfd we own.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                mark.as_mut_ptr().cast(),
                mark.len(),
                spawn::ENTERED_AT,
            )
        };
        if n == mark.len() as isize && &mark == spawn::ENTERED {
            return Ok(());
        }
        Err(ProcessError::EntryNotRun {
            name: self.name.clone(),
            pid: self.pid,
            status,
        })
    }

    /// Reaps the child if it has exited; caches and returns its status.
    fn try_reap(&self) -> Result<Option<ExitStatus>, ProcessError> {
        let mut cached = self.exit.lock().unwrap_or_else(|p| p.into_inner());
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
        // A non-daemon child outlives its handle (as in Python); it is
        // reaped once it has exited, the next time this process starts a
        // child, so it never lingers as a zombie for long. (No reaper thread:
        // a thread would make the checked `fork` refuse.)
        ORPHANS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((self.pid, std::mem::take(&mut self.name)));
    }
}

/// Children whose handle was dropped while they ran.
static ORPHANS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

/// Reaps the children in [`ORPHANS`] that have exited.
fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|p| p.into_inner());
    orphans.retain(|(pid, name)| {
        let mut status = 0;
        // SAFETY: `pid` is our unreaped child; `status` is writable.
        let r = unsafe { libc::waitpid(*pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == 0 {
            return true;
        }
        if r > 0 {
            log::info!(
                "process {name:?} (pid {pid}) exited: {}",
                ExitStatus::from_wait_status(status)
            );
        }
        false
    });
}

/// The number of threads of this process; `None` if it cannot be read.
/// The link count of `/proc/self/task` is two plus the threads (one
/// `stat`, a sixth of the cost of reading `/proc/self/stat`, which is the
/// fallback).
fn thread_count() -> Option<usize> {
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
