//! Python's `Process(target=f, args=...)`: a child running a function with
//! typed arguments, joined to its typed return value.
//!
//! The arguments are a [`Message`] (a number, a `String`, a tuple, a
//! `serde` struct, and handles such as queues and locks, whose descriptors
//! are passed to the child as it starts); the return value is one too. It
//! comes back through a memfd the child writes before it exits, so it may
//! be of any size. A panic comes back as its message.

use super::builder::Builder;
use super::child::Process;
use super::error::ProcessError;
use super::spawn::{CallKind, TypedCall};
use super::status::{ExitStatus, StartMethod};
use crate::entry::{zero_sized_fn, EntryDescriptor, EntryRef};
use crate::message::{self, Message};
use std::marker::PhantomData;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The first bytes of a result written by a child.
const RESULT_MAGIC: &[u8; 8] = b"IPCRSLT1";
/// What follows the header of a result.
const VALUE: u32 = 0;
const PANIC: u32 = 1;
const BAD_ARGS: u32 = 2;
const BAD_RESULT: u32 = 3;
/// Header: magic, kind (u32), reserved (u32), length (u64).
const HEADER: usize = 24;

/// Exit code of a child whose arguments could not be decoded.
pub const EXIT_BAD_ARGS: i32 = 124;

/// The typed entry for `F: Fn(A) -> R`.
pub(super) struct TypedEntry<A, R, F>(PhantomData<fn(A, F) -> R>);

impl<A: Message, R: Message, F: Fn(A) -> R + Copy + 'static> TypedEntry<A, R, F> {
    // SAFETY: evaluated in a constant.
    pub(super) const DESC: &'static EntryDescriptor<TypedCall> =
        &unsafe { EntryDescriptor::new(TypedCall(Self::run)) };

    fn run(args: &[u8], result_fd: RawFd) -> i32 {
        // SAFETY: the parent passed this descriptor (the result memfd) for
        // this child alone; the spawn token names it and nothing else here
        // owns it.
        let out = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(result_fd) });
        let args = match A::decode(args) {
            Ok(a) => a,
            Err(e) => {
                write_result(&out, BAD_ARGS, e.to_string().as_bytes());
                return EXIT_BAD_ARGS;
            }
        };
        run_and_report(&out, move || zero_sized_fn::<F>()(args))
    }
}

/// Runs `f`, writes its result (or its panic's message) to `out`, and
/// returns the exit code: 0, or 1 after a panic.
fn run_and_report<R: Message>(out: &std::fs::File, f: impl FnOnce() -> R) -> i32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => {
            let mut bytes = Vec::new();
            match r.encode(&mut bytes) {
                Ok(()) => write_result(out, VALUE, &bytes),
                Err(e) => write_result(out, BAD_RESULT, e.to_string().as_bytes()),
            }
            0
        }
        Err(p) => {
            write_result(out, PANIC, panic_message(&*p).as_bytes());
            1
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

fn write_result(out: &std::fs::File, kind: u32, bytes: &[u8]) {
    let mut head = [0u8; HEADER];
    head[..8].copy_from_slice(RESULT_MAGIC);
    head[8..12].copy_from_slice(&kind.to_le_bytes());
    head[16..24].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    // The body first, the header last: a child killed halfway leaves no
    // header, which the parent reads as "no result".
    let _ = std::os::unix::fs::FileExt::write_all_at(out, bytes, HEADER as u64);
    let _ = std::os::unix::fs::FileExt::write_all_at(out, &head, 0);
}

/// What a child wrote, read after it exited; `None` if it wrote nothing
/// (it was killed, or left by `std::process::exit` inside the function).
fn read_result(file: &std::fs::File) -> std::io::Result<Option<(u32, Vec<u8>)>> {
    let mut head = [0u8; HEADER];
    let n = std::os::unix::fs::FileExt::read_at(file, &mut head, 0)?;
    if n < HEADER || &head[..8] != RESULT_MAGIC {
        return Ok(None);
    }
    let kind = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[16..24]);
    let len = u64::from_le_bytes(len);
    let size = file.metadata()?.len();
    if len > size.saturating_sub(HEADER as u64) {
        return Ok(None);
    }
    let mut body = vec![0u8; len as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut body, HEADER as u64)?;
    Ok(Some((kind, body)))
}

/// A child started by [`Builder::start`], running a function whose return
/// value [`join`](Child::join) gives back. It dereferences to its
/// [`Process`] (pid, name, `is_alive`, `terminate`, `kill`, `exit_status`,
/// `join_timeout`, ...).
#[derive(Debug)]
pub struct Child<R> {
    process: Process,
    result: std::fs::File,
    _result: PhantomData<fn() -> R>,
}

impl<R> std::ops::Deref for Child<R> {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl<R: Message> Child<R> {
    /// Waits for the child to exit and returns the function's value
    /// (joining again decodes it again).
    ///
    /// # Errors
    /// [`ProcessError::Panicked`] with the panic's message;
    /// [`ProcessError::NoResult`] if the child ended without a result
    /// (killed by a signal, or it called `std::process::exit`);
    /// [`ProcessError::BadMessage`] if the arguments or the result could
    /// not be encoded or decoded; [`ProcessError::EntryNotRun`] if a spawned
    /// child's `main` does not call [`init`](super::init) first.
    pub fn join(&self) -> Result<R, ProcessError> {
        let status = self.process.join()?;
        self.result_of(status)
    }

    /// Waits at most `timeout`: `Ok(Some(value))` once the child has
    /// exited, `Ok(None)` while it runs.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<R>, ProcessError> {
        match self.process.join_timeout(timeout)? {
            Some(status) => self.result_of(status).map(Some),
            None => Ok(None),
        }
    }

    /// The process, for what the value does not need (its exit status).
    pub fn into_process(self) -> Process {
        self.process
    }

    fn result_of(&self, status: ExitStatus) -> Result<R, ProcessError> {
        let name = || self.process.name().to_owned();
        let pid = self.process.pid();
        let read = read_result(&self.result).map_err(|source| ProcessError::Io {
            op: "read the result",
            name: name(),
            source,
        })?;
        match read {
            Some((VALUE, bytes)) => R::decode(&bytes).map_err(|e| ProcessError::BadMessage {
                name: name(),
                reason: format!("the result: {e}"),
            }),
            Some((PANIC, msg)) => Err(ProcessError::Panicked {
                name: name(),
                pid,
                message: String::from_utf8_lossy(&msg).into_owned(),
            }),
            Some((BAD_ARGS, msg)) => Err(ProcessError::BadMessage {
                name: name(),
                reason: format!("the arguments: {}", String::from_utf8_lossy(&msg)),
            }),
            Some((_, msg)) => Err(ProcessError::BadMessage {
                name: name(),
                reason: format!("the result: {}", String::from_utf8_lossy(&msg)),
            }),
            None => Err(ProcessError::NoResult {
                name: name(),
                pid,
                status,
            }),
        }
    }
}

impl Builder {
    /// Python's `Process(target=f, args=args).start()`: starts a child
    /// running `f(args)` by the configured [start method](Self::start_method)
    /// (spawn by default), and returns a [`Child`] that joins to `f`'s
    /// return value.
    ///
    /// `f` is a function item or a closure that captures nothing (anything
    /// else is refused when the program is compiled); what it needs comes
    /// in `args`. `args` and the return value are any [`Message`]: numbers,
    /// strings, tuples, `serde` structs, and handles (queues, pipe ends,
    /// locks, events, semaphores, shared values), whose descriptors the
    /// child inherits. A spawned child must call [`init`](super::init)
    /// first thing in `main`.
    ///
    /// ```
    /// fn greet((name, times): (String, u32)) -> String {
    ///     format!("hello {name}").repeat(times as usize)
    /// }
    ///
    /// multiproc_core::process::init(); // first thing in main
    /// let child = multiproc_core::Process::builder().start(greet, ("world".to_string(), 2))?;
    /// assert_eq!(child.join()?, "hello worldhello world");
    /// # Ok::<(), multiproc_core::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProcessError::BadMessage`] if `args` cannot be encoded (for
    /// example an anonymous handle nested where it cannot be passed), and
    /// the errors of [`spawn`](Self::spawn) or [`fork`](Self::fork).
    pub fn start<A, R, F>(self, f: F, args: A) -> Result<Child<R>, ProcessError>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + 'static,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "the function of a child must be a function item or a closure that captures \
                 nothing; pass what it needs in its arguments"
            )
        };
        let _ = f; // zero-sized: the child makes its own from the type.
        let result =
            super::spawn::memfd(c"ipc-child-result", libc::MFD_CLOEXEC).map_err(|source| {
                ProcessError::Start {
                    name: self.name.clone().unwrap_or_default(),
                    source,
                }
            })?;
        let process = match self.method {
            StartMethod::Spawn | StartMethod::ForkServer => {
                let entry = EntryRef::of(TypedEntry::<A, R, F>::DESC)?;
                let base = self.inherit.len();
                let (encoded, exported, hooks) = message::with_exports(base, || {
                    let mut bytes = Vec::new();
                    args.encode(&mut bytes).map(|()| bytes)
                });
                let bytes = encoded.map_err(|e| ProcessError::BadMessage {
                    name: self.name.clone().unwrap_or_default(),
                    reason: format!("the arguments: {e}"),
                })?;
                let via_server = self.method == StartMethod::ForkServer;
                let p = self.spawn_entry(
                    entry,
                    CallKind::Typed,
                    &bytes,
                    &exported,
                    Some(&result),
                    via_server,
                )?;
                // Ends given to the child are held by it from now on, before
                // the caller can drop its own copies.
                if let Some(child) = crate::ProcessId::of(p.pid()) {
                    for hook in hooks {
                        hook(child.to_u64());
                    }
                }
                // The handles in `args` kept their descriptors open until
                // the child had them.
                drop(args);
                p
            }
            StartMethod::Fork => {
                let out = result.try_clone().map_err(|source| ProcessError::Start {
                    name: self.name.clone().unwrap_or_default(),
                    source,
                })?;
                self.fork(move || {
                    let out = std::fs::File::from(out);
                    run_and_report(&out, move || zero_sized_fn::<F>()(args))
                })?
            }
        };
        Ok(Child {
            process,
            result: std::fs::File::from(result),
            _result: PhantomData,
        })
    }
}

impl Process {
    /// Python's `Process(target=f, args=args).start()` with every option at
    /// its default: [`Builder::start`].
    ///
    /// # Errors
    /// As [`Builder::start`].
    pub fn start<A, R, F>(f: F, args: A) -> Result<Child<R>, ProcessError>
    where
        A: Message,
        R: Message,
        F: Fn(A) -> R + Copy + 'static,
    {
        Process::builder().start(f, args)
    }
}
