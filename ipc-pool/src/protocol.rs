//! The messages between the parent and a worker, as bytes in a ring.
//!
//! Task (parent -> worker), 48-byte header then the encoded inputs:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `chunk`: the chunk id |
//! | 8 | 8 | `runner`: [`EntryRef`](ipc_core::entry::EntryRef) of the runner's descriptor, made for the user's function and its types |
//! | 16 | 8 | `func`: address of an `FnPool`'s closure in forked workers; 0 otherwise |
//! | 24 | 8 | `tag`: keyed hash of (`runner`, `func`) |
//! | 32 | 4 | `count`: number of inputs |
//! | 36 | 4 | `kind`: [`TASK`] or [`SHUTDOWN`] |
//! | 40 | 8 | reserved |
//!
//! Result (worker -> parent), 16-byte header then per input a status byte
//! (0: the encoded output follows; 1: a panic message follows, as a string):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `chunk` |
//! | 8 | 4 | `status`: [`OK`], [`DECODE_FAILED`] (a string follows) or [`TOO_LARGE`] (the size follows) |
//! | 12 | 4 | `count` |
//!
//! The worker runs a function only if `tag` matches: the key is handed to it
//! at start-up, outside shared memory, so bytes written into the ring by
//! anything but the parent are refused. And it never jumps to an address it
//! was sent: `runner` names a descriptor, which the worker checks in its own
//! read-only data before it reads the function from it.

/// A task message.
pub(crate) const TASK: u32 = 1;
/// Asks the worker to exit.
pub(crate) const SHUTDOWN: u32 = 2;

/// Result status: the outputs follow.
pub(crate) const OK: u32 = 0;
/// Result status: the inputs could not be decoded.
pub(crate) const DECODE_FAILED: u32 = 1;
/// Result status: the outputs did not fit in a message.
pub(crate) const TOO_LARGE: u32 = 2;

pub(crate) const TASK_HEADER: usize = 48;
pub(crate) const RESULT_HEADER: usize = 16;

/// A decoded task header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskHeader {
    pub(crate) chunk: u64,
    pub(crate) runner: u64,
    pub(crate) func: u64,
    pub(crate) tag: u64,
    pub(crate) count: u32,
    pub(crate) kind: u32,
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(a)
}

impl TaskHeader {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.chunk.to_le_bytes());
        out.extend_from_slice(&self.runner.to_le_bytes());
        out.extend_from_slice(&self.func.to_le_bytes());
        out.extend_from_slice(&self.tag.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
    }

    pub(crate) fn read(b: &[u8]) -> Option<(TaskHeader, &[u8])> {
        if b.len() < TASK_HEADER {
            return None;
        }
        let h = TaskHeader {
            chunk: u64_at(b, 0),
            runner: u64_at(b, 8),
            func: u64_at(b, 16),
            tag: u64_at(b, 24),
            count: u32_at(b, 32),
            kind: u32_at(b, 36),
        };
        Some((h, &b[TASK_HEADER..]))
    }
}

/// A decoded result header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResultHeader {
    pub(crate) chunk: u64,
    pub(crate) status: u32,
    pub(crate) count: u32,
}

impl ResultHeader {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.chunk.to_le_bytes());
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
    }

    pub(crate) fn read(b: &[u8]) -> Option<(ResultHeader, &[u8])> {
        if b.len() < RESULT_HEADER {
            return None;
        }
        let h = ResultHeader {
            chunk: u64_at(b, 0),
            status: u32_at(b, 8),
            count: u32_at(b, 12),
        };
        Some((h, &b[RESULT_HEADER..]))
    }
}

/// The keyed tag of a (runner, function) pair: SipHash-1-3 under the pool's
/// secret key.
pub(crate) fn tag(key: (u64, u64), runner: u64, func: u64) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(key.0, key.1);
    std::hash::Hasher::write_u64(&mut h, runner);
    std::hash::Hasher::write_u64(&mut h, func);
    std::hash::Hasher::finish(&h)
}

/// A fresh random key from the kernel.
pub(crate) fn random_key() -> (u64, u64) {
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is writable for 16 bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), 16, 0) };
    if n != 16 {
        // No entropy source: fall back to something unpredictable enough
        // for a key that only guards against accidental corruption.
        let t = crate::control::monotonic_ns();
        return (
            t ^ 0x9e37_79b9_7f4a_7c15,
            u64::from(std::process::id()).rotate_left(17) ^ t,
        );
    }
    (u64_at(&buf, 0), u64_at(&buf, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_short_input_is_refused() {
        let h = TaskHeader {
            chunk: 9,
            runner: 1,
            func: 2,
            tag: 3,
            count: 4,
            kind: TASK,
        };
        let mut b = Vec::new();
        h.write(&mut b);
        b.push(0xaa);
        let (back, rest) = TaskHeader::read(&b).unwrap();
        assert_eq!(back, h);
        assert_eq!(rest, &[0xaa]);
        assert!(TaskHeader::read(&b[..47]).is_none());
        let r = ResultHeader {
            chunk: 5,
            status: OK,
            count: 2,
        };
        let mut b = Vec::new();
        r.write(&mut b);
        assert_eq!(ResultHeader::read(&b).unwrap().0, r);
        assert!(ResultHeader::read(&b[..15]).is_none());
    }

    #[test]
    fn tags_depend_on_the_key() {
        assert_eq!(tag((1, 2), 3, 4), tag((1, 2), 3, 4));
        assert_ne!(tag((1, 2), 3, 4), tag((1, 3), 3, 4));
        assert_ne!(tag((1, 2), 3, 4), tag((1, 2), 4, 3));
    }
}
