//! Small helpers over file descriptors for the pipe, socket and eventfd
//! baselines: an owned descriptor, whole reads and writes with `EINTR`
//! retried and end-of-file reported.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pipe's two ends: (read, write).
///
/// # Errors
/// The OS error.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a writable array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of Unix stream sockets.
///
/// # Errors
/// The OS error.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a writable array of two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(format!("socketpair: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A new eventfd (counter mode, blocking).
///
/// # Errors
/// The OS error.
pub fn eventfd() -> Result<OwnedFd, String> {
    // SAFETY: eventfd takes an initial value and flags, returns a new fd.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes all of `buf`.
///
/// # Errors
/// The OS error.
#[inline]
pub fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<(), String> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid readable slice of the given length.
        let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(format!("write: {e}"));
        }
        buf = &buf[r as usize..];
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes; returns how many (0 only at end of file).
///
/// # Errors
/// The OS error.
#[inline]
pub fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, String> {
    loop {
        // SAFETY: `buf` is a valid writable slice of the given length.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(format!("read: {e}"));
        }
        return Ok(r as usize);
    }
}

/// Fills `buf` completely.
///
/// # Errors
/// The OS error, or end of file (the peer closed or died) before it is full.
#[inline]
pub fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> Result<(), String> {
    let mut got = 0;
    while got < buf.len() {
        let r = read_some(fd, &mut buf[got..])?;
        if r == 0 {
            return Err("end of file: the peer closed or died".into());
        }
        got += r;
    }
    Ok(())
}
