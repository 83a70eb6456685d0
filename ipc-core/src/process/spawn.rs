//! The spawn start method: the token a parent hands to the re-executed
//! binary, and [`init`], which runs the entry function in the child.
//!
//! The parent writes everything the child needs (which entry to run, its
//! arguments, its name, the descriptors it inherits) into a memfd, seals it
//! against growing and shrinking, and passes it to the child as an
//! inherited descriptor. The child writes one mark into it, at a fixed
//! place, just before it runs the entry, which tells the parent's `join`
//! that the entry ran. The environment variable [`SPAWN_ENV`] only says which
//! descriptor that is, with a 128-bit random nonce that must match the one
//! inside it: setting the variable alone cannot make a process run anything.
//! The entry is named by an [`EntryRef`](crate::entry::EntryRef), which the
//! child resolves to a descriptor in its own read-only data before it calls
//! anything (see [`crate::entry`]).
//!
//! A child that was spawned but whose `main` does not call [`init`] first
//! would run the parent's program again from the top. It is caught three
//! ways: starting a process from it fails with
//! [`ProcessError::NotInitialized`] (no chain of processes), it exits with
//! [`EXIT_NO_INIT`] and a message on stderr when its `main` returns, and the
//! parent's [`Process::join`](super::Process::join) reports
//! [`ProcessError::EntryNotRun`].

use super::error::ProcessError;
use super::identity::{hex, kernel_name, set_kernel_name, unhex, NAME, PARENT, PARENT_NAME};
use crate::entry::{zero_sized_fn, EntryDescriptor, EntryRef, Signature};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that tells a re-executed binary it is a
/// spawned child: `2:<descriptor>:<nonce>`.
pub const SPAWN_ENV: &str = "IPC_CORE_SPAWN";

/// Exit code of a child whose spawn token could not be used (see [`init`]).
pub const EXIT_BAD_TOKEN: i32 = 125;

/// Exit code of a spawned child whose `main` returned without calling
/// [`init`].
pub const EXIT_NO_INIT: i32 = 126;

const TOKEN_VERSION: &str = "2";
const TOKEN_MAGIC: &[u8; 8] = b"IPCSPWN2";
/// Written at [`ENTERED_AT`] of the token by a child about to run its
/// entry.
pub(super) const ENTERED: &[u8; 8] = b"IPCENTR1";
/// Where in the token the child writes [`ENTERED`]: right after the magic.
pub(super) const ENTERED_AT: i64 = 8;
/// Most descriptors a child may inherit, names' longest length: bounds on
/// what a token may claim.
const MAX_FDS: usize = 1024;
const MAX_NAME: usize = 4096;

/// The call of a spawn entry over bytes ([`Builder::spawn`](super::Builder::spawn)).
#[derive(Clone, Copy)]
pub(super) struct SpawnCall(pub(super) fn(&[u8]) -> i32);

/// The call of a typed entry ([`Builder::start`](super::Builder::start)):
/// decodes its arguments, runs, and writes its result to the descriptor.
#[derive(Clone, Copy)]
pub(super) struct TypedCall(pub(super) fn(&[u8], RawFd) -> i32);

// SAFETY: the label is used by this type alone.
unsafe impl Signature for TypedCall {
    const LABEL: &'static str = "ipc-core/typed-entry/fn(&[u8],RawFd)->i32/v1";
}

/// Which call a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CallKind {
    /// A [`SpawnCall`].
    Bytes = 1,
    /// A [`TypedCall`], with a result descriptor.
    Typed = 2,
}

// SAFETY: the label is used by this type alone.
unsafe impl Signature for SpawnCall {
    const LABEL: &'static str = "ipc-core/spawn-entry/fn(&[u8])->i32/v2";
}

/// The descriptor of the spawn entry `F`.
pub(super) struct SpawnEntry<F>(PhantomData<F>);

impl<F: Fn(&[u8]) -> i32 + Copy + 'static> SpawnEntry<F> {
    // SAFETY: evaluated in a constant.
    pub(super) const DESC: &'static EntryDescriptor<SpawnCall> =
        &unsafe { EntryDescriptor::new(SpawnCall(Self::run)) };

    fn run(args: &[u8]) -> i32 {
        zero_sized_fn::<F>()(args)
    }
}

/// What the parent hands to a spawned child.
pub(super) struct Token<'a> {
    pub(super) entry: EntryRef,
    pub(super) kind: CallKind,
    /// The result memfd of a typed entry (-1 for none).
    pub(super) result_fd: RawFd,
    pub(super) exe: (u64, u64),
    pub(super) parent: u32,
    pub(super) fds: Vec<RawFd>,
    pub(super) name: &'a str,
    pub(super) parent_name: &'a str,
    pub(super) args: &'a [u8],
}

/// A sealed memfd holding a token, and the environment value naming it.
pub(super) struct SealedToken {
    pub(super) fd: OwnedFd,
    pub(super) env: String,
    pub(super) nonce: [u8; 16],
}

impl Token<'_> {
    /// Writes the token into a new memfd, seals it, and returns it with the
    /// environment value that names it.
    pub(super) fn seal(&self) -> std::io::Result<SealedToken> {
        let nonce = random_nonce()?;
        let mut b = Vec::with_capacity(128 + self.args.len());
        b.extend_from_slice(TOKEN_MAGIC);
        b.extend_from_slice(&[0; 8]); // ENTERED, written by the child
        b.extend_from_slice(&nonce);
        b.extend_from_slice(&self.exe.0.to_le_bytes());
        b.extend_from_slice(&self.exe.1.to_le_bytes());
        b.extend_from_slice(&self.entry.to_raw().to_le_bytes());
        b.extend_from_slice(&(self.kind as u32).to_le_bytes());
        b.extend_from_slice(&self.result_fd.to_le_bytes());
        b.extend_from_slice(&self.parent.to_le_bytes());
        b.extend_from_slice(&(self.fds.len() as u32).to_le_bytes());
        for fd in &self.fds {
            b.extend_from_slice(&fd.to_le_bytes());
        }
        for s in [self.name, self.parent_name] {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(&(self.args.len() as u64).to_le_bytes());
        b.extend_from_slice(self.args);
        let fd = memfd(
            c"ipc-spawn-token",
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&b)?;
        // Not F_SEAL_WRITE: the child writes its mark. Only the parent and
        // the child hold the descriptor.
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        // SAFETY: F_ADD_SEALS on a memfd we own, created with sealing allowed.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from(file);
        let env = format!("{TOKEN_VERSION}:{}:{}", fd.as_raw_fd(), hex(&nonce));
        Ok(SealedToken { fd, env, nonce })
    }
}

/// A token as the child read and checked it.
pub(super) struct Received {
    entry: EntryRef,
    kind: CallKind,
    pub(super) result_fd: RawFd,
    token: std::fs::File,
    pub(super) fds: Vec<RawFd>,
    name: String,
    parent: u32,
    parent_name: String,
    args: Vec<u8>,
}

fn bad(reason: impl Into<String>) -> ProcessError {
    ProcessError::BadSpawnToken {
        reason: reason.into(),
    }
}

/// A reader over the token's bytes that checks every length.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProcessError> {
        if n > self.0.len() {
            return Err(bad("the token is truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, ProcessError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, ProcessError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String, ProcessError> {
        let len = self.u32()? as usize;
        if len > MAX_NAME {
            return Err(bad(format!(
                "a name of {len} bytes (the limit is {MAX_NAME})"
            )));
        }
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| bad("a name is not UTF-8"))
    }
}

/// Reads and checks the token named by the environment value `env`.
fn receive(env: &str) -> Result<Received, ProcessError> {
    let (fd, nonce) = parse_env(env)?;
    read_token(fd, &nonce)
}

/// The descriptor and nonce an environment value names.
fn parse_env(env: &str) -> Result<(RawFd, Vec<u8>), ProcessError> {
    let mut parts = env.split(':');
    let (Some(version), Some(fd), Some(nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("malformed {SPAWN_ENV} value {env:?}")));
    };
    if version != TOKEN_VERSION {
        return Err(bad(format!(
            "token version {version:?}, this binary reads version {TOKEN_VERSION} \
             (was the child started by another build?)"
        )));
    }
    let fd: RawFd = fd
        .parse()
        .ok()
        .filter(|&fd| fd >= 0)
        .ok_or_else(|| bad(format!("bad descriptor {fd:?}")))?;
    let nonce = unhex(nonce)
        .filter(|n| n.len() == 16)
        .ok_or_else(|| bad("bad nonce"))?;
    Ok((fd, nonce))
}

/// Reads and checks the sealed token at descriptor `fd`, whose nonce must
/// be `nonce`; takes the descriptor.
pub(super) fn read_token(fd: RawFd, nonce: &[u8]) -> Result<Received, ProcessError> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map_err(|_| bad(format!("descriptor {fd} is not open")))?;
    if !link.to_string_lossy().starts_with("/memfd:ipc-spawn-token") {
        return Err(bad(format!("descriptor {fd} is not a spawn token")));
    }
    // SAFETY: F_GET_SEALS on a descriptor number only reads its seals; a
    // descriptor that is not a memfd fails.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    if seals < 0 || seals & needed != needed {
        return Err(bad(format!("descriptor {fd} is not sealed")));
    }
    // SAFETY: the descriptor is open (checked above) and was passed to this
    // process alone; nothing else here owns it, and the token is read once.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::new();
    std::io::Seek::rewind(&mut file).map_err(|e| bad(e.to_string()))?;
    file.read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    let mut c = Cursor(&bytes);
    if c.take(8)? != TOKEN_MAGIC {
        return Err(bad("the token's magic is wrong"));
    }
    c.take(8)?; // the ENTERED mark
    if c.take(16)? != nonce {
        return Err(bad("the token's nonce does not match the environment"));
    }
    let exe = std::fs::metadata("/proc/self/exe").map_err(|e| bad(e.to_string()))?;
    let (dev, ino) = (c.u64()?, c.u64()?);
    if std::os::unix::fs::MetadataExt::dev(&exe) != dev
        || std::os::unix::fs::MetadataExt::ino(&exe) != ino
    {
        return Err(bad("the parent runs another executable"));
    }
    let entry = EntryRef::from_raw(c.u64()?);
    let kind = match c.u32()? {
        1 => CallKind::Bytes,
        2 => CallKind::Typed,
        k => return Err(bad(format!("unknown entry kind {k}"))),
    };
    let result_fd = c.u32()? as RawFd;
    let parent = c.u32()?;
    let nfds = c.u32()? as usize;
    if nfds > MAX_FDS {
        return Err(bad(format!(
            "{nfds} inherited descriptors (the limit is {MAX_FDS})"
        )));
    }
    let fds = (0..nfds)
        .map(|_| c.u32().map(|v| v as RawFd))
        .collect::<Result<Vec<_>, _>>()?;
    let name = c.string()?;
    let parent_name = c.string()?;
    let len = c.u64()?;
    if len != c.0.len() as u64 {
        return Err(bad("the arguments' length does not match the token"));
    }
    Ok(Received {
        entry,
        kind,
        result_fd,
        token: file,
        fds,
        name,
        parent,
        parent_name,
        args: c.0.to_vec(),
    })
}

/// Set before `main` in a process started with [`SPAWN_ENV`], cleared by
/// [`try_init`].
static PENDING: AtomicBool = AtomicBool::new(false);

/// Runs before `main` (from `.init_array`) in every program linking this
/// crate: in a spawned child, it arranges for a `main` that returns without
/// calling [`init`] to fail loudly instead of silently.
extern "C" fn spawn_guard() {
    // SAFETY: a NUL-terminated name; before `main` no other thread runs, so
    // nothing modifies the environment concurrently.
    if unsafe { libc::getenv(c"IPC_CORE_SPAWN".as_ptr()) }.is_null() {
        return;
    }
    PENDING.store(true, Ordering::Relaxed);
    // SAFETY: registers a function with the C signature atexit expects.
    unsafe { libc::atexit(exit_without_init) };
}

#[used]
#[link_section = ".init_array"]
static SPAWN_GUARD: extern "C" fn() = spawn_guard;

extern "C" fn exit_without_init() {
    if !PENDING.load(Ordering::Relaxed) {
        return;
    }
    let msg = b"multiproc-core: this process was spawned to run an entry function, but its main \
returned without calling multiproc_core::process::init(); call it as the first statement of main \
(in a test, as the first statement of the test)\n";
    // SAFETY: write and _exit are async-signal-safe and take valid
    // arguments; leaving with _exit skips the remaining exit handlers of a
    // program that should not have run.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(EXIT_NO_INIT);
    }
}

/// Whether this process was spawned and has not run [`init`]: starting a
/// process from it would run the parent's program again, for ever.
pub(super) fn refuse_before_init() -> Result<(), ProcessError> {
    if PENDING.load(Ordering::Relaxed) || std::env::var_os(SPAWN_ENV).is_some() {
        return Err(ProcessError::NotInitialized);
    }
    Ok(())
}

/// Runs the entry function if this process is a spawned child, then exits;
/// returns at once otherwise. Call it first thing in `main` (before any
/// thread starts), or first thing in a test that spawns.
///
/// If the spawn token cannot be used (it is malformed, names a descriptor
/// that is not a sealed spawn token, was made by another executable, or
/// names no entry of this one), the reason is printed on stderr and the
/// process exits with [`EXIT_BAD_TOKEN`]: nothing is run. Use [`try_init`]
/// to handle that case yourself.
///
/// ```
/// // First statement of `main`:
/// multiproc_core::process::init();
/// // ... the program, which may start children with Process::builder().spawn(...)
/// ```
pub fn init() {
    if let Err(e) = try_init() {
        eprintln!("multiproc-core: {e}");
        let _ = std::io::stdout().flush();
        std::process::exit(EXIT_BAD_TOKEN);
    }
}

/// As [`init`], but a token that cannot be used is returned as an error
/// instead of ending the process. Returns `Ok(())` at once in a process that
/// was not spawned; in a spawned child it runs the entry and exits, so it
/// returns only with an error.
///
/// # Errors
/// [`ProcessError::BadSpawnToken`] with the reason; the token is consumed
/// (the environment variable removed), so the program may go on as a
/// process that was not spawned.
pub fn try_init() -> Result<(), ProcessError> {
    let Some(token) = std::env::var_os(SPAWN_ENV) else {
        return Ok(());
    };
    // Not for grandchildren: they get a token of their own if spawned.
    std::env::remove_var(SPAWN_ENV);
    PENDING.store(false, Ordering::Relaxed);
    crate::logging::inherit_from_parent();
    let token = token
        .into_string()
        .map_err(|_| bad(format!("{SPAWN_ENV} is not UTF-8")))?;
    let r = receive(&token)?;
    let code = run(r)?;
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Runs the entry a checked token names, as a child started by spawn or by
/// the fork server; returns its exit code.
pub(super) fn run(r: Received) -> Result<i32, ProcessError> {
    enum Call {
        Bytes(SpawnCall),
        Typed(TypedCall, RawFd),
    }
    let call = match r.kind {
        CallKind::Bytes => Call::Bytes(r.entry.resolve().map_err(|e| bad(e.to_string()))?),
        CallKind::Typed => Call::Typed(
            r.entry.resolve().map_err(|e| bad(e.to_string()))?,
            r.result_fd,
        ),
    };
    set_kernel_name(&kernel_name(&r.name));
    NAME.store(Box::into_raw(Box::new(r.name)), Ordering::Release);
    PARENT_NAME.store(Box::into_raw(Box::new(r.parent_name)), Ordering::Release);
    PARENT.store(r.parent, Ordering::Release);
    // Close-on-exec again, as every descriptor of this crate is: otherwise
    // they would leak into whatever this child starts in turn.
    for &fd in r
        .fds
        .iter()
        .chain(Some(&r.result_fd).filter(|&&fd| fd >= 0))
    {
        // SAFETY: fcntl on a descriptor number has no memory-safety
        // preconditions; a number that is not open only fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    crate::inherit::set(r.fds);
    mark_entered(r.token);
    let code = std::panic::catch_unwind(|| match call {
        Call::Bytes(SpawnCall(f)) => f(&r.args),
        Call::Typed(TypedCall(f), result_fd) => f(&r.args, result_fd),
    })
    .unwrap_or(1);
    Ok(code)
}

/// Tells the parent the entry is about to run (see
/// [`Process::join`](super::Process::join)), and closes the token.
fn mark_entered(token: std::fs::File) {
    // The parent reads the mark after this process has exited; if this
    // write fails, `join` reports the entry as not run, which errs on the
    // side of telling.
    let _ = std::os::unix::fs::FileExt::write_all_at(&token, ENTERED, ENTERED_AT as u64);
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

pub(super) fn memfd(name: &std::ffi::CStr, flags: libc::c_uint) -> std::io::Result<OwnedFd> {
    // SAFETY: a valid C string; memfd_create returns a new fd or -1.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn random_nonce() -> std::io::Result<[u8; 16]> {
    let mut n = [0u8; 16];
    let mut got = 0;
    while got < n.len() {
        // SAFETY: writes at most `n.len() - got` bytes into `n[got..]`.
        let r = unsafe { libc::getrandom(n[got..].as_mut_ptr().cast(), n.len() - got, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += r as usize;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_tokens_are_refused() {
        for env in [
            "garbage",
            "1:3:00",
            "2:x:00",
            "2:-1:00",
            "2:0:zz",
            "2:0:00",
            "2:0:00:extra",
        ] {
            assert!(
                matches!(receive(env), Err(ProcessError::BadSpawnToken { .. })),
                "{env}"
            );
        }
    }

    #[test]
    fn a_token_round_trips_and_a_wrong_nonce_is_refused() {
        let t = Token {
            entry: EntryRef::from_raw(64),
            kind: CallKind::Typed,
            result_fd: 11,
            exe: exe_id(),
            parent: 7,
            fds: vec![3, 4],
            name: "child",
            parent_name: "MainProcess",
            args: b"hello",
        };
        let sealed = t.seal().unwrap();
        // The child owns (and closes) the descriptor it reads: hand it a
        // duplicate.
        let dup = sealed.fd.try_clone().unwrap();
        let env = sealed.env.replacen(
            &format!(":{}:", sealed.fd.as_raw_fd()),
            &format!(":{}:", dup.as_raw_fd()),
            1,
        );
        std::mem::forget(dup);
        let r = receive(&env).unwrap();
        assert_eq!(
            (r.entry, r.parent, r.fds, r.name.as_str(), r.args.as_slice()),
            (
                EntryRef::from_raw(64),
                7,
                vec![3, 4],
                "child",
                &b"hello"[..]
            )
        );
        let dup = sealed.fd.try_clone().unwrap();
        let forged = format!("2:{}:{}", dup.as_raw_fd(), "00".repeat(16));
        std::mem::forget(dup);
        assert!(matches!(
            receive(&forged),
            Err(ProcessError::BadSpawnToken { .. })
        ));
        // A plain file with the same bytes is not a token.
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let forged = format!(
            "2:{}:{}",
            f.as_raw_fd(),
            &sealed.env.rsplit(':').next().unwrap()
        );
        assert!(matches!(
            receive(&forged),
            Err(ProcessError::BadSpawnToken { .. })
        ));
    }

    fn exe_id() -> (u64, u64) {
        let m = std::fs::metadata("/proc/self/exe").unwrap();
        (
            std::os::unix::fs::MetadataExt::dev(&m),
            std::os::unix::fs::MetadataExt::ino(&m),
        )
    }
}
