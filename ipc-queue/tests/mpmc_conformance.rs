//! The crate's conformance suite (`conformance_suite.rs`) run against the
//! MPMC ring (byte messages) and `Queue<u64>`.

#[path = "conformance_suite.rs"]
mod suite;

use multiproc_queue::error::{TryRecvError, TrySendError};
use multiproc_queue::mpmc::{self, Receiver, Sender};
use multiproc_queue::queue::Queue;
use suite::{Conformance, Outcome, SuiteRx, SuiteTx};

fn send_outcome<T>(r: Result<(), TrySendError<T>>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done,
        Err(TrySendError::Full(_)) => Outcome::Full,
        Err(TrySendError::Closed(_)) => Outcome::Closed,
        Err(TrySendError::TooLarge(..)) => Outcome::TooLarge,
        Err(e) => Outcome::Other(format!("{e:?}")),
    }
}

fn recv_outcome(e: TryRecvError) -> Outcome {
    match e {
        TryRecvError::Empty => Outcome::Empty,
        TryRecvError::Closed => Outcome::Closed,
        e => Outcome::Other(e.to_string()),
    }
}

// --- the MPMC byte ring ---

struct MpmcBytes;

impl SuiteTx for Sender {
    fn try_send(&mut self, msg: &[u8]) -> Outcome {
        send_outcome(Sender::try_send(self, msg))
    }
    fn close(self) {
        Sender::close(&self)
    }
}

impl SuiteRx for Receiver {
    fn try_recv(&mut self, out: &mut Vec<u8>) -> Outcome {
        out.clear();
        match Receiver::try_recv(self) {
            Ok(m) => {
                out.extend_from_slice(m.bytes());
                Outcome::Done
            }
            Err(e) => recv_outcome(e),
        }
    }
}

impl Conformance for MpmcBytes {
    type Tx = Sender;
    type Rx = Receiver;
    const VARIABLE: bool = true;
    fn channel(capacity: usize, max_len: usize) -> (Sender, Receiver) {
        mpmc::channel(capacity, max_len).unwrap()
    }
    fn max_len(tx: &Sender) -> usize {
        tx.ring().slot_size()
    }
}

conformance_tests!(mpmc_bytes, crate::MpmcBytes);

// --- Queue<u64> ---

struct QueueU64;

struct QTx(Queue<u64>);
struct QRx(Queue<u64>);

impl SuiteTx for QTx {
    fn try_send(&mut self, msg: &[u8]) -> Outcome {
        let Ok(b) = <[u8; 8]>::try_from(msg) else {
            return Outcome::TooLarge;
        };
        send_outcome(self.0.put_nowait(u64::from_le_bytes(b)))
    }
    fn close(self) {
        self.0.close()
    }
}

impl SuiteRx for QRx {
    fn try_recv(&mut self, out: &mut Vec<u8>) -> Outcome {
        out.clear();
        match self.0.get_nowait() {
            Ok(v) => {
                out.extend_from_slice(&v.to_le_bytes());
                Outcome::Done
            }
            Err(e) => recv_outcome(e),
        }
    }
}

impl Conformance for QueueU64 {
    type Tx = QTx;
    type Rx = QRx;
    const VARIABLE: bool = false;
    fn channel(capacity: usize, _max_len: usize) -> (QTx, QRx) {
        let q = Queue::<u64>::new(capacity).unwrap();
        (QTx(q.clone()), QRx(q))
    }
    fn max_len(_: &QTx) -> usize {
        8
    }
}

conformance_tests!(queue_u64, crate::QueueU64);
