//! Describing a child and starting it: fork (checked or unchecked) and
//! spawn.

use super::child::{reap_orphans, Process};
use super::error::ProcessError;
use super::identity::{
    current_process, kernel_name, set_kernel_name, thread_count, NAME, PARENT, PARENT_NAME,
};
use super::spawn;
use super::status::{ChildOutcome, StartMethod};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Describes a child before it starts. Obtained from [`Process::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct Builder {
    pub(super) name: Option<String>,
    daemon: bool,
    pub(super) method: StartMethod,
    pub(super) inherit: Vec<RawFd>,
    pub(super) exec_args: Option<Vec<OsString>>,
}

static NEXT_CHILD: AtomicU64 = AtomicU64::new(1);

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: None,
            daemon: false,
            method: start_method(),
            inherit: Vec::new(),
            exec_args: None,
        }
    }
}

/// The program-wide start method: 0 unset (spawn), else `StartMethod as
/// u8 + 1`.
static START_METHOD: AtomicU8 = AtomicU8::new(0);

/// Python's `set_start_method`: the start method every [`Builder`] (and so
/// every pool) uses unless told otherwise. Chosen once, early in `main`
/// (after [`init`](crate::process::init)); the default is spawn.
///
/// # Errors
/// [`ProcessError::Invalid`] if a start method was already chosen (even the
/// same one): as in Python, a program picks one once.
pub fn set_start_method(method: StartMethod) -> Result<(), ProcessError> {
    START_METHOD
        .compare_exchange(0, method as u8 + 1, Ordering::AcqRel, Ordering::Acquire)
        .map(drop)
        .map_err(|_| ProcessError::Invalid("the start method was already chosen for this program"))
}

/// Python's `get_start_method`: the program-wide start method (spawn
/// unless [`set_start_method`] chose another).
pub fn start_method() -> StartMethod {
    match START_METHOD.load(Ordering::Acquire) {
        v if v == StartMethod::Fork as u8 + 1 => StartMethod::Fork,
        v if v == StartMethod::ForkServer as u8 + 1 => StartMethod::ForkServer,
        _ => StartMethod::Spawn,
    }
}

/// How long [`Builder::fork`] looks again for a thread that was just
/// joined but is still listed, before it refuses to fork.
const JOINED_THREAD_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

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
    /// takes it with [`take_inherited_fd`](crate::process::take_inherited_fd), by the order of `inherit_fd`
    /// calls. (A forked child has every descriptor of its parent anyway.)
    pub fn inherit_fd(mut self, fd: BorrowedFd<'_>) -> Self {
        self.inherit.push(fd.as_raw_fd());
        self
    }

    /// The arguments (after `argv[0]`) of the re-executed binary. By default
    /// the parent's own arguments, which suits a binary that calls [`init`](crate::process::init)
    /// first thing in `main`; in a test binary, use [`test_exec_args`](crate::process::test_exec_args).
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
    /// (see the [module docs](crate::process) and [`fork_unchecked`](Self::fork_unchecked));
    /// a thread joined just before is waited for up to 20 ms, as the kernel
    /// may still list it for a moment after `join` returns,
    /// [`ProcessError::NotInitialized`] in a spawned child that did not call
    /// [`init`](crate::process::init), [`ProcessError::Start`] if `fork` fails.
    pub fn fork<F, R>(self, f: F) -> Result<Process, ProcessError>
    where
        F: FnOnce() -> R,
        R: ChildOutcome,
    {
        // A thread that was just joined can still be listed for a moment
        // (the kernel releases it after `join` returns): look again for a
        // short while before refusing.
        let mut threads = thread_count();
        let give_up = std::time::Instant::now() + JOINED_THREAD_GRACE;
        while threads != Some(1) && std::time::Instant::now() < give_up {
            std::thread::sleep(std::time::Duration::from_millis(1));
            threads = thread_count();
        }
        if threads != Some(1) {
            return Err(ProcessError::MultiThreaded { threads });
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
        // The child holds whatever ends this process holds (it has copies):
        // entered now, before this process can drop its own.
        if let Some(child) = crate::ProcessId::of(pid as u32) {
            crate::holders::Hold::enter_child_everywhere(child.to_u64(), &crate::liveness::OsJudge);
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
    /// [`init`](crate::process::init) first thing in `main` (see the [module docs](crate::process)).
    ///
    /// # Errors
    /// [`ProcessError::NotInitialized`] in a spawned child that did not call
    /// [`init`](crate::process::init); [`ProcessError::Entry`] if `entry` is not linked into the
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
        self.spawn_entry(entry, spawn::CallKind::Bytes, args, &[], None, false)
    }

    /// Runs `entry(args)` in a child forked from the fork server (see
    /// [`StartMethod::ForkServer`]), starting the server first if this
    /// process has none yet: `entry` and `args` as for
    /// [`spawn`](Self::spawn), at fork speed, and safe in a multi-threaded
    /// caller. The server re-executes the program once, so `main` must
    /// call [`init`](crate::process::init) first, as for spawn.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn), and [`ProcessError::ForkServer`] if the
    /// server refused the request or died twice in a row; at most 15
    /// descriptors can be inherited ([`ProcessError::Invalid`]).
    pub fn forkserver<F>(self, entry: F, args: &[u8]) -> Result<Process, ProcessError>
    where
        F: Fn(&[u8]) -> i32 + Copy + 'static,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "a fork server entry must be a function item or a closure that captures nothing"
            )
        };
        let _ = entry; // zero-sized: the child makes its own from the type.
        let entry = crate::entry::EntryRef::of(spawn::SpawnEntry::<F>::DESC)?;
        self.spawn_entry(entry, spawn::CallKind::Bytes, args, &[], None, true)
    }

    /// Re-executes the current binary to run the entry `entry` of `kind`
    /// with `args`, passing the inherited descriptors and `extra` after
    /// them, and (for a typed entry) the result memfd.
    pub(super) fn spawn_entry(
        self,
        entry: crate::entry::EntryRef,
        kind: spawn::CallKind,
        args: &[u8],
        extra: &[RawFd],
        result: Option<&OwnedFd>,
        via_server: bool,
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
        if via_server {
            let mut passed = fds;
            if result_fd >= 0 {
                passed.push(result_fd);
            }
            let pid = super::forkserver::request(
                &self,
                &name,
                token.fd.as_fd(),
                &token.nonce,
                &passed,
                self.daemon,
            )?;
            return Process::started(pid, name, self.daemon, Some(token.fd), "forkserver");
        }
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
        cmd.env(spawn::SPAWN_ENV, &token.env);
        if let Some(level) = crate::logging::child_level() {
            cmd.env(crate::logging::LOG_ENV, level);
        }
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

impl Process {
    /// A builder for a child process.
    ///
    /// ```
    /// use multiproc_core::process::{ExitStatus, Process};
    /// let child = Process::builder().name("doc-child").fork(|| 7)?;
    /// assert_eq!(child.join()?, ExitStatus::Code(7));
    /// # Ok::<(), multiproc_core::ProcessError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }
}
