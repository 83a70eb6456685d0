//! The fork server: Python's `forkserver` start method.
//!
//! A child started by fork is fast but is a copy of the caller, with its
//! locks and threads' leftovers; one started by spawn is clean but pays an
//! exec and the program's start-up. The fork server gives both: a server
//! process is spawned once (at the first request), so it is a fresh,
//! single-threaded image of the program, and it forks every child from
//! there. Children start at fork speed, from a clean image, whatever
//! threads the caller runs.
//!
//! The request travels over a Unix socket: the child's spawn token (the
//! same sealed memfd [`spawn`](super::Builder::spawn) passes, naming the
//! entry by descriptor) and the descriptors it inherits, by `SCM_RIGHTS`.
//! The server forks with `CLONE_PARENT`, so the child is the caller's own
//! child: [`Process`] joins, signals and reaps it as any other. Entry
//! functions and arguments are what spawn takes: no closures.
//!
//! The server dies with the process that started it (it is a daemon: the
//! kernel's parent-death signal follows the *thread* that first asked for
//! it, and so do the daemon children it forks, so make the first request
//! from a thread that lives as long as they should, such as `main`'s), and
//! exits when the caller closes its socket. If it dies, the next request
//! starts a new one; a request the server cannot answer is an error, never
//! a hang.

use super::builder::Builder;
use super::child::Process;
use super::error::ProcessError;
use super::spawn::{self, Received};
use crate::fdpass::{recv_fds, send_fds, MAX_FDS};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

/// The first bytes of every request.
const REQUEST_MAGIC: &[u8; 8] = b"IPCFSRQ1";

/// The server this process started, if it runs: its socket and process.
static SERVER: Mutex<Option<Server>> = Mutex::new(None);

struct Server {
    sock: UnixStream,
    process: Process,
}

/// A seqpacket socket pair (message boundaries kept, close-on-exec).
fn socket_pair() -> std::io::Result<(UnixStream, UnixStream)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((UnixStream::from(a), UnixStream::from(b)))
}

/// Starts the server by spawn, with the requesting builder's arguments for
/// the re-executed program.
fn start_server(like: &Builder) -> Result<Server, ProcessError> {
    let (mine, theirs) = socket_pair().map_err(|source| ProcessError::Start {
        name: "ForkServer".into(),
        source,
    })?;
    let mut b = Builder::default()
        .name("ForkServer")
        .daemon(true)
        .inherit_fd(theirs.as_fd());
    if let Some(args) = &like.exec_args {
        b = b.exec_args(args.clone());
    }
    let process = b.spawn(serve, b"")?;
    drop(theirs);
    Ok(Server {
        sock: mine,
        process,
    })
}

/// Asks the server to start a child from `token` with the descriptors
/// `fds` (the token's inherited ones, then the result memfd if any).
/// Starts the server if needed, and once more if it has died.
pub(super) fn request(
    like: &Builder,
    name: &str,
    token: BorrowedFd<'_>,
    nonce: &[u8; 16],
    fds: &[RawFd],
    daemon: bool,
) -> Result<u32, ProcessError> {
    if fds.len() + 1 > MAX_FDS {
        return Err(ProcessError::Invalid(
            "the fork server passes at most 15 inherited descriptors",
        ));
    }
    let mut data = Vec::with_capacity(32);
    data.extend_from_slice(REQUEST_MAGIC);
    data.extend_from_slice(nonce);
    data.extend_from_slice(&std::process::id().to_le_bytes());
    data.push(u8::from(daemon));
    data.push(fds.len() as u8);
    let mut all: Vec<BorrowedFd<'_>> = vec![token];
    all.extend(fds.iter().map(|&fd| {
        // SAFETY: the caller keeps every descriptor in `fds` open for the
        // whole call, and the borrows do not outlive it.
        unsafe { BorrowedFd::borrow_raw(fd) }
    }));
    let mut guard = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = None;
    for _ in 0..2 {
        if guard.as_ref().is_none_or(|s| !s.process.is_alive()) {
            *guard = Some(start_server(like)?);
        }
        let server = guard.as_ref().expect("just started");
        match exchange(&server.sock, &data, &all) {
            Ok(Ok(pid)) => return Ok(pid),
            Ok(Err(reason)) => {
                return Err(ProcessError::ForkServer {
                    name: name.to_owned(),
                    reason,
                })
            }
            Err(e) => {
                // The server died (or its socket broke): start another.
                log::warn!("the fork server stopped answering ({e}); starting a new one");
                last = Some(e);
                if let Some(s) = guard.take() {
                    let _ = s.process.kill();
                    let _ = s.process.join();
                }
            }
        }
    }
    Err(ProcessError::ForkServer {
        name: name.to_owned(),
        reason: format!(
            "the fork server died twice: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    })
}

/// One request and its answer: the child's pid, or the server's reason.
fn exchange(
    sock: &UnixStream,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<Result<u32, String>> {
    send_fds(sock, data, fds)?;
    let mut buf = [0u8; 512];
    let (n, _) = recv_fds(sock, &mut buf, 0)?;
    match buf.get(..n) {
        Some([b'P', a, b, c, d]) => Ok(Ok(u32::from_le_bytes([*a, *b, *c, *d]))),
        Some([b'E', reason @ ..]) => Ok(Err(String::from_utf8_lossy(reason).into_owned())),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no answer from the fork server",
        )),
    }
}

/// The server's entry: answers requests until its socket closes.
fn serve(_: &[u8]) -> i32 {
    let Some(sock) = crate::inherit::take_inherited_fd(0).map(UnixStream::from) else {
        return 2;
    };
    let mut buf = [0u8; 64];
    loop {
        let Ok((n, fds)) = recv_fds(&sock, &mut buf, MAX_FDS) else {
            return 0;
        };
        if n == 0 {
            return 0; // the caller closed its end
        }
        let answer = match fork_child(&sock, &buf[..n], fds) {
            Ok(pid) => {
                let mut a = vec![b'P'];
                a.extend_from_slice(&pid.to_le_bytes());
                a
            }
            Err(reason) => {
                let mut a = vec![b'E'];
                a.extend_from_slice(reason.as_bytes());
                a
            }
        };
        if send_fds(&sock, &answer, &[]).is_err() {
            return 0;
        }
    }
}

/// Checks a request and forks its child; returns the child's pid.
fn fork_child(sock: &UnixStream, data: &[u8], mut fds: Vec<OwnedFd>) -> Result<u32, String> {
    if data.len() != 8 + 16 + 4 + 2 || &data[..8] != REQUEST_MAGIC {
        return Err("malformed request".into());
    }
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&data[8..24]);
    let requester = u32::from_le_bytes([data[24], data[25], data[26], data[27]]);
    let daemon = data[28] == 1;
    let inherited = usize::from(data[29]);
    if fds.len() != inherited + 1 {
        return Err(format!(
            "{} descriptors came with a request for {}",
            fds.len(),
            inherited + 1
        ));
    }
    let token = fds.remove(0);
    // SAFETY: clone with CLONE_PARENT and SIGCHLD and no new stack is a
    // fork whose child is the requester's child. This process has one
    // thread (it is the server loop of a spawned, single-threaded image),
    // so nothing is held by a thread that vanished; the child fixes what a
    // raw clone leaves stale (this crate's identity cache) before anything
    // else, and leaves with `exit` only after running its entry.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(format!("clone: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        crate::liveness::forget_after_fork();
        let code = child(sock, requester, daemon, token, fds, &nonce);
        let _ = std::io::Write::flush(&mut std::io::stdout());
        std::process::exit(code);
    }
    Ok(pid as u32)
}

/// In the forked child: becomes the child the token describes.
fn child(
    sock: &UnixStream,
    requester: u32,
    daemon: bool,
    token: OwnedFd,
    fds: Vec<OwnedFd>,
    nonce: &[u8; 16],
) -> i32 {
    // SAFETY: closing our copy of the server's socket, which this child
    // never uses (a child holding it would keep the server's caller from
    // seeing the server die).
    unsafe { libc::close(sock.as_raw_fd()) };
    if daemon {
        // SAFETY: prctl and getppid take no pointers here.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() as u32 != requester {
                return 1;
            }
        }
    }
    let raw = token.as_raw_fd();
    std::mem::forget(token); // `read_token` takes the descriptor
    let mut r: Received = match spawn::read_token(raw, nonce) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("multiproc-core: fork server child: {e}");
            return spawn::EXIT_BAD_TOKEN;
        }
    };
    // The token numbers descriptors as the requester saw them; here they
    // are the ones that came with the request, in the same order.
    let mut fds: Vec<RawFd> = fds
        .into_iter()
        .map(std::os::fd::IntoRawFd::into_raw_fd)
        .collect();
    let typed = r.result_fd >= 0;
    if fds.len() != r.fds.len() + usize::from(typed) {
        eprintln!("multiproc-core: fork server child: the descriptors do not match the token");
        return spawn::EXIT_BAD_TOKEN;
    }
    if typed {
        r.result_fd = fds.pop().unwrap_or(-1);
    }
    r.fds = fds;
    match spawn::run(r) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("multiproc-core: fork server child: {e}");
            spawn::EXIT_BAD_TOKEN
        }
    }
}
