//! The conformance suite (`conformance_suite.rs`) run against the SPSC byte
//! ring, the SPSC plain-old-data ring and `pipe()`.

#[path = "conformance_suite.rs"]
mod suite;

use multiproc_queue::error::{TryRecvError, TrySendError};
use multiproc_queue::pipe::{Connection, Pipe};
use multiproc_queue::raw::spsc::{record_len, SLACK};
use multiproc_queue::spsc::pod::{PodConsumer, PodProducer};
use multiproc_queue::spsc::{Consumer, Producer, SpscRing};
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

fn bytes_recv(rx: &mut Consumer, out: &mut Vec<u8>) -> Outcome {
    out.clear();
    match rx.try_recv() {
        Ok(g) => {
            out.extend_from_slice(&g);
            Outcome::Done
        }
        Err(e) => recv_outcome(e),
    }
}

// --- the byte ring ---

struct Bytes;

impl SuiteTx for Producer {
    fn try_send(&mut self, msg: &[u8]) -> Outcome {
        send_outcome(Producer::try_send(self, msg))
    }
    fn close(self) {
        Producer::close(self)
    }
}

impl SuiteRx for Consumer {
    fn try_recv(&mut self, out: &mut Vec<u8>) -> Outcome {
        bytes_recv(self, out)
    }
}

impl Conformance for Bytes {
    type Tx = Producer;
    type Rx = Consumer;
    const VARIABLE: bool = true;
    fn channel(capacity: usize, max_len: usize) -> (Producer, Consumer) {
        let ring = SpscRing::builder()
            .capacity(record_len(max_len) * capacity + SLACK)
            .create()
            .unwrap();
        (ring.producer().unwrap(), ring.consumer().unwrap())
    }
    fn max_len(tx: &Producer) -> usize {
        tx.max_message_len()
    }
}

conformance_tests!(spsc_bytes, crate::Bytes);

// --- plain-old-data values (u64) ---

struct Pod;

impl SuiteTx for PodProducer<u64> {
    fn try_send(&mut self, msg: &[u8]) -> Outcome {
        let Ok(b) = <[u8; 8]>::try_from(msg) else {
            return Outcome::TooLarge;
        };
        send_outcome(PodProducer::try_send(self, u64::from_le_bytes(b)))
    }
    fn close(self) {
        PodProducer::close(self)
    }
}

impl SuiteRx for PodConsumer<u64> {
    fn try_recv(&mut self, out: &mut Vec<u8>) -> Outcome {
        out.clear();
        match PodConsumer::try_recv(self) {
            Ok(v) => {
                out.extend_from_slice(&v.to_le_bytes());
                Outcome::Done
            }
            Err(e) => recv_outcome(e),
        }
    }
}

impl Conformance for Pod {
    type Tx = PodProducer<u64>;
    type Rx = PodConsumer<u64>;
    const VARIABLE: bool = false;
    fn channel(capacity: usize, _max_len: usize) -> (Self::Tx, Self::Rx) {
        multiproc_queue::spsc::pod::channel::<u64>(capacity).unwrap()
    }
    fn max_len(_: &Self::Tx) -> usize {
        8
    }
}

conformance_tests!(spsc_pod, crate::Pod);

// --- pipe(): end A sends, end B receives ---

struct PipeAtoB;

struct PipeTx(Connection);
struct PipeRx(Connection);

impl SuiteTx for PipeTx {
    fn try_send(&mut self, msg: &[u8]) -> Outcome {
        send_outcome(self.0.sender().try_send(msg))
    }
    fn close(self) {
        self.0.close()
    }
}

impl SuiteRx for PipeRx {
    fn try_recv(&mut self, out: &mut Vec<u8>) -> Outcome {
        bytes_recv(self.0.receiver(), out)
    }
}

impl Conformance for PipeAtoB {
    type Tx = PipeTx;
    type Rx = PipeRx;
    const VARIABLE: bool = true;
    fn channel(capacity: usize, max_len: usize) -> (PipeTx, PipeRx) {
        let p = Pipe::builder()
            .capacity(record_len(max_len) * capacity + SLACK)
            .create()
            .unwrap();
        (PipeTx(p.end_a().unwrap()), PipeRx(p.end_b().unwrap()))
    }
    fn max_len(tx: &PipeTx) -> usize {
        tx.0.max_message_len()
    }
}

conformance_tests!(pipe_a_to_b, crate::PipeAtoB);
