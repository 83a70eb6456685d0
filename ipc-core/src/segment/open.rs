//! Opening a segment by name or from a descriptor: waiting for ready and
//! checking everything another process wrote.

use super::os::*;
use super::{Segment, SegmentBuilder, DEFAULT_OPEN_TIMEOUT};
use crate::error::SegmentError;
use crate::header::{Kind, SegmentHeader, State, HEADER_SIZE, HEADER_VERSION, MAGIC};
use crate::liveness::Liveness;
use crate::liveness::PidNamespace;
use crate::name;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

impl Segment {
    /// Maps a segment from a file descriptor (inherited from a parent or
    /// received over a socket) and checks its header against `kind`.
    ///
    /// The descriptor must be sealed against shrinking and growing
    /// (`F_SEAL_SHRINK | F_SEAL_GROW`), as every anonymous segment of this
    /// workspace is: otherwise whoever else holds it could shrink it under
    /// the mapping, and the next access here would die of `SIGBUS`.
    ///
    /// # Errors
    /// [`SegmentError::Unsealed`] for a descriptor without those seals (a
    /// plain file, an unsealed memfd, a named segment's descriptor),
    /// [`SegmentError::Header`] for one that holds something else, or the
    /// other errors of [`SegmentBuilder::open`].
    pub fn from_fd(fd: OwnedFd, kind: Kind) -> Result<Segment, SegmentError> {
        let label = format!("<fd {}>", fd.as_raw_fd());
        check_sealed(&fd, &label)?;
        open_fd(fd, &label, None, None, kind, 0, false, DEFAULT_OPEN_TIMEOUT)
    }

    /// [`Segment::from_fd`] without the seal check: maps a descriptor that
    /// is not sealed against resizing (a named segment's descriptor, a file).
    ///
    /// **The risk is the caller's**: any process that holds the descriptor
    /// (or, for a named segment, can open its name) may shrink the object,
    /// and this process then dies of `SIGBUS` at its next access past the new
    /// end, in whatever code touches the segment. Use it only when every
    /// such process is trusted.
    ///
    /// # Errors
    /// As [`Segment::from_fd`], but never [`SegmentError::Unsealed`].
    pub fn from_fd_unsealed(fd: OwnedFd, kind: Kind) -> Result<Segment, SegmentError> {
        let label = format!("<fd {}>", fd.as_raw_fd());
        open_fd(fd, &label, None, None, kind, 0, false, DEFAULT_OPEN_TIMEOUT)
    }

    /// Receives a segment sent with [`Segment::send_over`] and checks it as
    /// [`Segment::from_fd`] does (seals included).
    ///
    /// # Errors
    /// [`SegmentError::Io`] if nothing (or no descriptor) arrives, else as
    /// [`Segment::from_fd`]: [`SegmentError::Unsealed`] for a descriptor
    /// not sealed against resizing.
    pub fn receive(sock: &UnixStream, kind: Kind) -> Result<Segment, SegmentError> {
        let mut buf = [0u8; 8];
        let (_, mut fds) =
            crate::fdpass::recv_fds(sock, &mut buf, 1).map_err(|source| SegmentError::Io {
                op: "recvmsg",
                name: "<socket>".into(),
                source,
            })?;
        let fd = fds.pop().ok_or_else(|| SegmentError::Io {
            op: "recvmsg",
            name: "<socket>".into(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "no file descriptor received"),
        })?;
        Segment::from_fd(fd, kind)
    }
}

impl SegmentBuilder {
    /// Opens an existing named segment: waits (up to the open timeout) for
    /// it to be ready, checks owner, mode and header.
    ///
    /// # Errors
    /// [`SegmentError::NotFound`], [`SegmentError::WrongOwner`],
    /// [`SegmentError::InsecureMode`], [`SegmentError::Header`] naming the
    /// wrong field, [`SegmentError::NotReady`], [`SegmentError::CreatorDied`],
    /// [`SegmentError::Poisoned`], [`SegmentError::ForeignPidNamespace`] for
    /// a segment created in another pid namespace, or an OS error.
    pub fn open(self) -> Result<Segment, SegmentError> {
        self.open_inner()
    }

    pub(super) fn open_inner(&self) -> Result<Segment, SegmentError> {
        let Some(n) = self.name.clone() else {
            return Err(SegmentError::InvalidName {
                name: String::new(),
                reason: "open needs a name",
            });
        };
        let os = name::os_name(&n)?;
        let fd = shm_open(&os, libc::O_RDWR, 0).map_err(|e| open_error(&n, "shm_open", e))?;
        check_owner_and_mode(&fd, &n)?;
        let min = self.size.unwrap_or(0) as u64;
        open_fd(
            fd,
            &n,
            Some(n.clone()),
            Some(os),
            self.kind,
            min,
            self.prefault,
            self.open_timeout,
        )
    }
}

/// Maps `fd` once it is ready, and checks its header.
#[allow(clippy::too_many_arguments)]
pub(super) fn open_fd(
    fd: OwnedFd,
    label: &str,
    name: Option<String>,
    os_name: Option<CString>,
    kind: Kind,
    min_payload: u64,
    prefault: bool,
    timeout: Duration,
) -> Result<Segment, SegmentError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    let header_err = |source| SegmentError::Header {
        name: label.to_owned(),
        source,
    };
    loop {
        let st = fstat(&fd).map_err(|source| SegmentError::Io {
            op: "fstat",
            name: label.into(),
            source,
        })?;
        let size = st.st_size.max(0) as u64;
        if size >= HEADER_SIZE as u64 {
            // The header alone first: nothing the object claims (its size
            // included) is acted on before the header checks out.
            let head = map_fd(&fd, HEADER_SIZE, false).map_err(|source| SegmentError::Io {
                op: "mmap",
                name: label.into(),
                source,
            })?;
            // SAFETY: the mapping is HEADER_SIZE bytes and page-aligned;
            // every header field is an atomic.
            let header = unsafe { &*(head.as_mut_ptr() as *const SegmentHeader) };
            let magic = header.magic();
            if magic != 0 && magic != MAGIC {
                return Err(header_err(crate::header::HeaderError::BadMagic {
                    found: magic,
                }));
            }
            if magic == MAGIC {
                let state = header.state().map_err(header_err)?;
                if state != State::Empty {
                    // Every other field is written before the state leaves
                    // Empty; judge nothing recorded by a creator of another
                    // layout or another pid namespace.
                    let version = header.header_version();
                    if version != HEADER_VERSION {
                        return Err(header_err(crate::header::HeaderError::HeaderVersion {
                            expected: HEADER_VERSION,
                            found: version,
                        }));
                    }
                    check_pid_namespace(header, label)?;
                }
                match state {
                    State::Ready => {
                        header
                            .validate(&kind, size, min_payload)
                            .map_err(header_err)?;
                        let payload_len = header.payload_len() as usize;
                        let map = map_fd(&fd, size as usize, prefault).map_err(|source| {
                            SegmentError::Io {
                                op: "mmap",
                                name: label.into(),
                                source,
                            }
                        })?;
                        log::debug!("segment {label:?} opened: {size} bytes, kind {}", kind.name);
                        return Ok(Segment {
                            map,
                            fd,
                            name,
                            os_name,
                            creator_pid: None,
                            unlinked: AtomicBool::new(false),
                            kind,
                            payload_len,
                        });
                    }
                    State::Poisoned => return Err(SegmentError::Poisoned { name: label.into() }),
                    // Nothing is recorded yet (only a hostile writer makes
                    // this state with the magic set): keep waiting.
                    State::Empty => {}
                    State::Initializing => {
                        let creator = header.creator();
                        if creator.pid != 0 && creator.liveness() == Liveness::Dead {
                            return Err(SegmentError::CreatorDied {
                                name: label.into(),
                                pid: creator.pid,
                            });
                        }
                    }
                }
            }
        }
        if start.elapsed() >= timeout {
            return Err(SegmentError::NotReady {
                name: label.into(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}
/// Refuses a segment whose creator lives in another pid namespace than
/// ours: neither side could tell whether the other died.
pub(super) fn check_pid_namespace(header: &SegmentHeader, label: &str) -> Result<(), SegmentError> {
    let theirs = header.creator_pid_namespace();
    let mine = PidNamespace::current();
    if theirs != mine {
        return Err(SegmentError::ForeignPidNamespace {
            name: label.into(),
            creator: theirs,
            mine,
        });
    }
    Ok(())
}
