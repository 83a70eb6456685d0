//! The descriptors a spawned child was given by its parent, handed out once
//! each: by index to the program ([`take_inherited_fd`]) and to the handles
//! decoded from its arguments ([`crate::message::import_fd`]).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

static INHERITED: Mutex<Vec<Option<RawFd>>> = Mutex::new(Vec::new());

/// Takes the `index`-th descriptor the parent passed with
/// [`Builder::inherit_fd`](crate::process::Builder::inherit_fd). Each is handed out
/// once; `None` if there is no such descriptor or it was taken already.
pub fn take_inherited_fd(index: usize) -> Option<OwnedFd> {
    let mut fds = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    let fd = fds.get_mut(index)?.take()?;
    // SAFETY: fcntl only reads the flags of a descriptor number.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the parent kept this descriptor open for us across exec (it is
    // open: checked above), and `take` above ensures it is wrapped in an
    // `OwnedFd` only once.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Records the descriptors a spawn token named, in order.
pub(crate) fn set(fds: Vec<RawFd>) {
    *INHERITED.lock().unwrap_or_else(|p| p.into_inner()) = fds.into_iter().map(Some).collect();
}
