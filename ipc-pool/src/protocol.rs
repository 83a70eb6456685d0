//! The pool's wire protocol, all of it: the frames on the rings between the
//! parent and a worker, how values are framed inside them, the arguments a
//! worker starts with, and the exit codes a worker ends with.
//!
//! Parent to worker, a [`Frame::Task`] (48-byte header, then the inputs) or
//! a [`Frame::Shutdown`]:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `chunk`: the chunk id |
//! | 8 | 8 | `runner`: [`EntryRef`](multiproc_core::entry::EntryRef) of the runner's descriptor, made for the user's function and its types |
//! | 16 | 8 | `func`: address of an `FnPool`'s closure in forked workers; 0 otherwise |
//! | 24 | 8 | `tag`: keyed hash of (`runner`, `func`) |
//! | 32 | 4 | `count`: number of inputs |
//! | 36 | 4 | kind: 1 task, 2 shutdown |
//! | 40 | 8 | reserved |
//!
//! Worker to parent, one result frame per task (16-byte header):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `chunk` |
//! | 8 | 4 | status: 0 [`Frame::Outputs`], 1 [`Frame::DecodeFailed`] (a UTF-8 reason follows), 2 [`Frame::TooLarge`] (the size follows, u64) |
//! | 12 | 4 | `count` |
//!
//! The inputs and outputs of a chunk are values framed one after another
//! ([`put_value`], [`take_value`]): a value of fixed size (plain-old-data)
//! as its bytes, any other with a 4-byte length before it. Each output is
//! preceded by one byte: 0 and the value, or 1 and the panic message.
//!
//! The worker runs a function only if `tag` matches: the key is handed to it
//! at start-up, outside shared memory, so bytes written into the ring by
//! anything but the parent are refused. And it never jumps to an address it
//! was sent: `runner` names a descriptor, which the worker checks in its own
//! read-only data before it reads the function from it.

use multiproc_core::message::{DecodeError, Message};

/// A frame on one of the two rings between the parent and a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// Run `count` inputs through a runner.
    Task {
        chunk: u64,
        runner: u64,
        func: u64,
        tag: u64,
        count: u32,
        inputs: &'a [u8],
    },
    /// Exit.
    Shutdown,
    /// The outputs of a task: per input a status byte and a value.
    Outputs {
        chunk: u64,
        count: u32,
        body: &'a [u8],
    },
    /// The task's inputs could not be decoded.
    DecodeFailed {
        chunk: u64,
        count: u32,
        reason: &'a str,
    },
    /// The task's outputs took `len` bytes, more than a ring message.
    TooLarge { chunk: u64, count: u32, len: u64 },
}

const TASK_HEADER: usize = 48;
const RESULT_HEADER: usize = 16;
const KIND_TASK: u32 = 1;
const KIND_SHUTDOWN: u32 = 2;
const STATUS_OUTPUTS: u32 = 0;
const STATUS_DECODE_FAILED: u32 = 1;
const STATUS_TOO_LARGE: u32 = 2;

/// Why bytes on a ring are not a frame (or a value in one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    /// Fewer bytes than the header or a length needs.
    #[error("a frame of {len} bytes is shorter than its header or lengths say")]
    Short { len: usize },
    /// A kind or status this protocol does not have.
    #[error("unknown frame kind {0}")]
    UnknownKind(u32),
    /// A reason that is not UTF-8.
    #[error("a reason that is not UTF-8")]
    NotUtf8,
    /// A value that does not decode.
    #[error(transparent)]
    Value(#[from] DecodeError),
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

impl<'a> Frame<'a> {
    /// The bytes of a task frame's header, before its inputs; the caller
    /// appends the inputs.
    pub(crate) fn task_header(
        chunk: u64,
        runner: u64,
        func: u64,
        tag: u64,
        count: u32,
    ) -> [u8; TASK_HEADER] {
        let mut h = [0u8; TASK_HEADER];
        h[0..8].copy_from_slice(&chunk.to_le_bytes());
        h[8..16].copy_from_slice(&runner.to_le_bytes());
        h[16..24].copy_from_slice(&func.to_le_bytes());
        h[24..32].copy_from_slice(&tag.to_le_bytes());
        h[32..36].copy_from_slice(&count.to_le_bytes());
        h[36..40].copy_from_slice(&KIND_TASK.to_le_bytes());
        h
    }

    /// The bytes of an [`Frame::Outputs`] header, before its body; the
    /// worker writes the body after it.
    pub(crate) fn outputs_header(chunk: u64, count: u32) -> [u8; RESULT_HEADER] {
        let mut h = [0u8; RESULT_HEADER];
        h[0..8].copy_from_slice(&chunk.to_le_bytes());
        h[8..12].copy_from_slice(&STATUS_OUTPUTS.to_le_bytes());
        h[12..16].copy_from_slice(&count.to_le_bytes());
        h
    }

    /// Appends the frame's bytes to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let result = |out: &mut Vec<u8>, chunk: u64, status: u32, count: u32| {
            out.extend_from_slice(&chunk.to_le_bytes());
            out.extend_from_slice(&status.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        };
        match *self {
            Frame::Task {
                chunk,
                runner,
                func,
                tag,
                count,
                inputs,
            } => {
                out.extend_from_slice(&Frame::task_header(chunk, runner, func, tag, count));
                out.extend_from_slice(inputs);
            }
            Frame::Shutdown => {
                let mut h = [0u8; TASK_HEADER];
                h[36..40].copy_from_slice(&KIND_SHUTDOWN.to_le_bytes());
                out.extend_from_slice(&h);
            }
            Frame::Outputs { chunk, count, body } => {
                result(out, chunk, STATUS_OUTPUTS, count);
                out.extend_from_slice(body);
            }
            Frame::DecodeFailed {
                chunk,
                count,
                reason,
            } => {
                result(out, chunk, STATUS_DECODE_FAILED, count);
                out.extend_from_slice(reason.as_bytes());
            }
            Frame::TooLarge { chunk, count, len } => {
                result(out, chunk, STATUS_TOO_LARGE, count);
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
    }

    /// A frame the parent sent to a worker.
    pub(crate) fn read_task(b: &'a [u8]) -> Result<Frame<'a>, ProtocolError> {
        if b.len() < TASK_HEADER {
            return Err(ProtocolError::Short { len: b.len() });
        }
        match u32_at(b, 36) {
            KIND_TASK => Ok(Frame::Task {
                chunk: u64_at(b, 0),
                runner: u64_at(b, 8),
                func: u64_at(b, 16),
                tag: u64_at(b, 24),
                count: u32_at(b, 32),
                inputs: &b[TASK_HEADER..],
            }),
            KIND_SHUTDOWN => Ok(Frame::Shutdown),
            k => Err(ProtocolError::UnknownKind(k)),
        }
    }

    /// A frame a worker sent to the parent.
    pub(crate) fn read_result(b: &'a [u8]) -> Result<Frame<'a>, ProtocolError> {
        if b.len() < RESULT_HEADER {
            return Err(ProtocolError::Short { len: b.len() });
        }
        let (chunk, count, body) = (u64_at(b, 0), u32_at(b, 12), &b[RESULT_HEADER..]);
        match u32_at(b, 8) {
            STATUS_OUTPUTS => Ok(Frame::Outputs { chunk, count, body }),
            STATUS_DECODE_FAILED => Ok(Frame::DecodeFailed {
                chunk,
                count,
                reason: std::str::from_utf8(body).map_err(|_| ProtocolError::NotUtf8)?,
            }),
            STATUS_TOO_LARGE if body.len() == 8 => Ok(Frame::TooLarge {
                chunk,
                count,
                len: u64_at(body, 0),
            }),
            STATUS_TOO_LARGE => Err(ProtocolError::Short { len: b.len() }),
            s => Err(ProtocolError::UnknownKind(s)),
        }
    }
}

/// Appends `v` framed: its bytes if its size is fixed, else a 4-byte length
/// and its encoding.
///
/// # Errors
/// The value's own encoding error, or a value of 4 GiB or more.
pub(crate) fn put_value<T: Message>(v: &T, out: &mut Vec<u8>) -> Result<(), String> {
    if T::fixed_size().is_some() {
        return v.encode(out).map_err(|e| e.to_string());
    }
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(e) = v.encode(out) {
        out.truncate(at);
        return Err(e.to_string());
    }
    let len = u32::try_from(out.len() - at - 4).map_err(|_| {
        out.truncate(at);
        "a value of 4 GiB or more".to_owned()
    })?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Takes one framed value from the front of `input`.
///
/// # Errors
/// [`ProtocolError::Short`] if the bytes end early, or the value's decode
/// error.
pub(crate) fn take_value<T: Message>(input: &mut &[u8]) -> Result<T, ProtocolError> {
    let len = match T::fixed_size() {
        Some(n) => n,
        None => {
            if input.len() < 4 {
                return Err(ProtocolError::Short { len: input.len() });
            }
            let n = u32_at(input, 0) as usize;
            *input = &input[4..];
            n
        }
    };
    if input.len() < len {
        return Err(ProtocolError::Short { len: input.len() });
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    Ok(T::decode(bytes)?)
}

/// Several values framed one after another as one input: what `starmap`
/// sends for the arguments of one call, whatever kind of [`Message`] each
/// argument is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args<T>(pub(crate) T);

macro_rules! args_message {
    ($($name:ident),+) => {
        impl<$($name: Message),+> Message for Args<($($name,)+)> {
            fn encode(&self, out: &mut Vec<u8>) -> Result<(), multiproc_core::message::EncodeError> {
                #[allow(non_snake_case)]
                let ($($name,)+) = &self.0;
                $(put_value($name, out).map_err(multiproc_core::message::EncodeError::Serialize)?;)+
                Ok(())
            }

            fn decode(mut bytes: &[u8]) -> Result<Self, DecodeError> {
                let input = &mut bytes;
                let v = ($(take_value::<$name>(input).map_err(|e| match e {
                    ProtocolError::Value(d) => d,
                    other => DecodeError::Deserialize(other.to_string()),
                })?,)+);
                if !input.is_empty() {
                    return Err(DecodeError::TrailingBytes(input.len()));
                }
                Ok(Args(v))
            }
        }
    };
}

args_message!(A, B);
args_message!(A, B, C);

/// The byte before each output: the value follows.
pub(crate) const OUTPUT_VALUE: u8 = 0;
/// The byte before each output: the task panicked; its message follows.
pub(crate) const OUTPUT_PANIC: u8 = 1;

/// How a worker process ends when it does not exit with 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkerExit {
    /// The initializer panicked.
    InitFailed = 3,
    /// A frame the worker must not run (bad tag, unknown descriptor or
    /// kind).
    BadTask = 4,
    /// The worker could not map its segments or read its arguments.
    AttachFailed = 5,
}

impl WorkerExit {
    /// The exit code.
    pub(crate) const fn code(self) -> i32 {
        self as i32
    }
}

/// Everything a worker needs, as passed at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkerArgs {
    pub(crate) slot: u32,
    pub(crate) slots: u32,
    pub(crate) key: (u64, u64),
    /// Offset and tag of the initializer's descriptor, if any.
    pub(crate) init: Option<(u64, u64)>,
    /// Exit after this many chunks (0: never).
    pub(crate) max_tasks: u64,
    /// Whether the pool has a task timeout (so chunks need a start time).
    pub(crate) timed: bool,
}

const WORKER_ARGS: usize = 4 + 4 + 8 + 8 + 1 + 8 + 8 + 8 + 1;

impl WorkerArgs {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(WORKER_ARGS);
        v.extend_from_slice(&self.slot.to_le_bytes());
        v.extend_from_slice(&self.slots.to_le_bytes());
        v.extend_from_slice(&self.key.0.to_le_bytes());
        v.extend_from_slice(&self.key.1.to_le_bytes());
        let (has, off, tag) = match self.init {
            Some((o, t)) => (1u8, o, t),
            None => (0, 0, 0),
        };
        v.push(has);
        v.extend_from_slice(&off.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&self.max_tasks.to_le_bytes());
        v.push(u8::from(self.timed));
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<WorkerArgs, ProtocolError> {
        if b.len() != WORKER_ARGS {
            return Err(ProtocolError::Short { len: b.len() });
        }
        let flag = |byte: u8| match byte {
            0 => Ok(false),
            1 => Ok(true),
            k => Err(ProtocolError::UnknownKind(u32::from(k))),
        };
        let has = flag(b[24])?;
        Ok(WorkerArgs {
            slot: u32_at(b, 0),
            slots: u32_at(b, 4),
            key: (u64_at(b, 8), u64_at(b, 16)),
            init: has.then(|| (u64_at(b, 25), u64_at(b, 33))),
            max_tasks: u64_at(b, 41),
            timed: flag(b[49])?,
        })
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
    fn frames_round_trip_and_short_input_is_refused() {
        let frames = [
            Frame::Task {
                chunk: 9,
                runner: 1,
                func: 2,
                tag: 3,
                count: 4,
                inputs: &[0xaa],
            },
            Frame::Shutdown,
        ];
        for f in frames {
            let mut b = Vec::new();
            f.write(&mut b);
            assert_eq!(Frame::read_task(&b).unwrap(), f);
            assert!(Frame::read_task(&b[..47]).is_err());
        }
        let results = [
            Frame::Outputs {
                chunk: 5,
                count: 2,
                body: &[1, 2],
            },
            Frame::DecodeFailed {
                chunk: 6,
                count: 1,
                reason: "bad",
            },
            Frame::TooLarge {
                chunk: 7,
                count: 3,
                len: 1 << 40,
            },
        ];
        for f in results {
            let mut b = Vec::new();
            f.write(&mut b);
            assert_eq!(Frame::read_result(&b).unwrap(), f);
            assert!(Frame::read_result(&b[..15]).is_err());
        }
        let mut b = Vec::new();
        Frame::Shutdown.write(&mut b);
        b[36] = 9;
        assert_eq!(Frame::read_task(&b), Err(ProtocolError::UnknownKind(9)));
    }

    #[test]
    fn values_are_framed_and_checked() {
        let mut b = Vec::new();
        put_value(&7u64, &mut b).unwrap();
        put_value(&"héllo".to_string(), &mut b).unwrap();
        put_value(&vec![1u16, 2], &mut b).unwrap();
        assert_eq!(b.len(), 8 + (4 + 1 + 6) + (4 + 3));
        let mut input = &b[..];
        assert_eq!(take_value::<u64>(&mut input).unwrap(), 7);
        assert_eq!(take_value::<String>(&mut input).unwrap(), "héllo");
        assert_eq!(take_value::<Vec<u16>>(&mut input).unwrap(), [1, 2]);
        assert!(input.is_empty());
        let mut short = &b[..10];
        take_value::<u64>(&mut short).unwrap();
        assert!(matches!(
            take_value::<String>(&mut short),
            Err(ProtocolError::Short { .. })
        ));
    }

    #[test]
    fn worker_args_round_trip() {
        let a = WorkerArgs {
            slot: 3,
            slots: 4,
            key: (1, 2),
            init: Some((7, 8)),
            max_tasks: 9,
            timed: true,
        };
        assert_eq!(WorkerArgs::decode(&a.encode()).unwrap(), a);
        assert!(WorkerArgs::decode(&a.encode()[..10]).is_err());
        let mut bad = a.encode();
        bad[24] = 7;
        assert!(WorkerArgs::decode(&bad).is_err());
    }

    #[test]
    fn tags_depend_on_the_key() {
        assert_eq!(tag((1, 2), 3, 4), tag((1, 2), 3, 4));
        assert_ne!(tag((1, 2), 3, 4), tag((1, 3), 3, 4));
        assert_ne!(tag((1, 2), 3, 4), tag((1, 2), 4, 3));
    }
}
