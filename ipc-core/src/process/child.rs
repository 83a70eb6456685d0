//! A started child: join, signal, reap.

use super::error::ProcessError;
use super::spawn;
use super::status::{signal_name, ExitStatus};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    pub(super) fn started(
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
        lock(&CHILDREN).push((pid, name.clone()));
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
    /// did not call [`init`](crate::process::init) first, or its spawn token was refused (the
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
    ///
    /// # Errors
    /// As [`Process::terminate`].
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGKILL)
    }

    /// Sends `sig` through the pidfd, so it can reach no other process.
    ///
    /// # Errors
    /// [`ProcessError::AlreadyExited`] if the child has exited (nothing is
    /// sent); [`ProcessError::Io`] if `pidfd_send_signal` fails.
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
        forget_child(self.pid);
        log::info!("process {:?} (pid {}) exited: {s}", self.name, self.pid);
        Ok(Some(s))
    }

    /// Python's `close`: releases the handle of a child that has exited and
    /// returns how it ended.
    ///
    /// # Errors
    /// [`StillRunning`], holding this handle, if the child still runs
    /// (join, terminate or kill it first).
    pub fn close(self) -> Result<ExitStatus, StillRunning> {
        match self.try_reap() {
            Ok(Some(s)) => Ok(s),
            _ => Err(StillRunning(self)),
        }
    }
}

/// [`Process::close`] of a child that still runs: the handle, given back.
#[derive(Debug)]
pub struct StillRunning(pub Process);

impl std::fmt::Display for StillRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {:?} (pid {}) is still running; join, terminate or kill it before closing it",
            self.0.name, self.0.pid
        )
    }
}

impl std::error::Error for StillRunning {}

/// Every child started by this process and not yet reaped, by pid.
static CHILDREN: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn forget_child(pid: u32) {
    lock(&CHILDREN).retain(|(p, _)| *p != pid);
}

/// Whether child `pid` has exited, without reaping it (its handle reaps).
fn has_exited(pid: u32) -> bool {
    // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is writable; WNOWAIT leaves the child waitable.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (zero pid when no child has changed).
    r != 0 || unsafe { info.si_pid() } != 0
}

/// Python's `active_children()`: the children this process started that
/// still run, by pid and name. Children whose handle was dropped are reaped
/// on the way; children with a handle are left for it to reap (it reports
/// their exit status).
pub fn active_children() -> Vec<super::ProcessInfo> {
    reap_orphans();
    lock(&CHILDREN)
        .iter()
        .filter(|(pid, _)| !has_exited(*pid))
        .map(|(pid, name)| super::ProcessInfo {
            pid: *pid,
            name: name.clone(),
        })
        .collect()
}

/// The child's pidfd: readable once the child has exited, so an event loop
/// (epoll, mio, tokio's `AsyncFd`) can wait for it.
impl AsFd for Process {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
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
pub(super) fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|p| p.into_inner());
    orphans.retain(|(pid, name)| {
        let mut status = 0;
        // SAFETY: `pid` is our unreaped child; `status` is writable.
        let r = unsafe { libc::waitpid(*pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == 0 {
            return true;
        }
        forget_child(*pid);
        if r > 0 {
            log::info!(
                "process {name:?} (pid {pid}) exited: {}",
                ExitStatus::from_wait_status(status)
            );
        }
        false
    });
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
