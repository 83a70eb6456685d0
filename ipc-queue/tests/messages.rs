//! Typed messages across processes: plain-old-data values in fixed-size
//! slots and `rkyv` archives read in place, with their error cases.

use bytemuck::{Pod, Zeroable};
use multiproc_core::process::{self, take_inherited_fd, test_exec_args, ExitStatus, Process};
use multiproc_queue::error::{AttachError, RecvError, SendError, TryRecvError, TrySendError};
use multiproc_queue::spsc::SpscRing;

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
    qty: u32,
    side: u32,
}
multiproc_core::impl_shareable!(Tick);

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        price: seq as f64 * 0.5,
        qty: (seq % 1000) as u32,
        side: (seq % 2) as u32,
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
struct Order {
    id: u64,
    symbol: String,
    legs: Vec<u32>,
    note: Option<String>,
}

fn order(id: u64) -> Order {
    Order {
        id,
        symbol: format!("SYM{}", id % 97),
        legs: (0..(id % 50) as u32).collect(),
        note: id
            .is_multiple_of(3)
            .then(|| "x".repeat((id % 700) as usize)),
    }
}

const TICKS: u64 = 50_000;
const ORDERS: u64 = 5_000;

fn tick_producer(_: &[u8]) -> i32 {
    let ring = SpscRing::from_fd(take_inherited_fd(0).unwrap()).unwrap();
    let mut tx = ring.pod_producer::<Tick>().unwrap();
    for seq in 0..TICKS {
        tx.send(tick(seq)).unwrap();
    }
    0
}

#[test]
fn pod_values_cross_processes_in_place() {
    process::init();
    let ring = SpscRing::builder().pod::<Tick>(64).create().unwrap();
    let mut rx = ring.pod_consumer::<Tick>().unwrap();
    let child = Process::builder()
        .inherit_fd(ring.fd())
        .exec_args(test_exec_args("pod_values_cross_processes_in_place"))
        .spawn(tick_producer, b"")
        .unwrap();
    let mut seq = 0;
    while seq < TICKS {
        if seq % 3 == 0 {
            let t = rx.recv_ref().unwrap();
            assert_eq!(*t, tick(seq));
            seq += 1;
        } else {
            let (n, bad) = rx
                .recv_batch(16, |t| {
                    assert_eq!(*t, tick(seq));
                    seq += 1;
                })
                .unwrap();
            assert!(n >= 1);
            assert_eq!(bad, 0);
        }
    }
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
}

#[test]
fn typed_ends_check_the_slot_size() {
    let ring = SpscRing::builder().pod::<Tick>(4).create().unwrap();
    assert!(matches!(
        ring.pod_producer::<u64>(),
        Err(AttachError::InvalidConfig(_))
    ));
    // A byte end on the same ring can send a message of another length; the
    // typed consumer reports it and moves past it.
    let mut raw = ring.producer().unwrap();
    let mut rx = ring.pod_consumer::<Tick>().unwrap();
    raw.send(b"short").unwrap();
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Decode(_))));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    drop(raw);
    let ring = SpscRing::builder().pod::<Tick>(4).create().unwrap();
    let mut tx = ring.pod_producer::<Tick>().unwrap();
    let mut sent = 0;
    loop {
        match tx.try_send(tick(sent)) {
            Ok(()) => sent += 1,
            Err(TrySendError::Full(t)) => {
                assert_eq!(t, tick(sent), "a full ring hands the value back");
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent >= 4);
}

fn order_producer(_: &[u8]) -> i32 {
    let ring = SpscRing::from_fd(take_inherited_fd(0).unwrap()).unwrap();
    let mut tx = ring.archive_producer::<Order>().unwrap();
    for id in 0..ORDERS {
        tx.send(&order(id)).unwrap();
    }
    0
}

#[test]
fn rkyv_archives_cross_processes_and_are_checked() {
    process::init();
    let ring = SpscRing::builder().capacity(8192).create().unwrap();
    let mut rx = ring.archive_consumer::<Order>().unwrap();
    let child = Process::builder()
        .inherit_fd(ring.fd())
        .exec_args(test_exec_args(
            "rkyv_archives_cross_processes_and_are_checked",
        ))
        .spawn(order_producer, b"")
        .unwrap();
    for id in 0..ORDERS {
        let o = rx.recv().unwrap();
        let want = order(id);
        assert_eq!(o.id, want.id);
        assert_eq!(o.symbol, want.symbol);
        assert_eq!(o.legs.len(), want.legs.len());
        assert!(o.legs.iter().zip(&want.legs).all(|(a, b)| *a == *b));
        assert_eq!(o.note.as_deref(), want.note.as_deref());
        assert_eq!(
            o.bytes().as_ptr() as usize % 16,
            0,
            "archives are 16-aligned"
        );
    }
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
}

#[test]
fn bad_archives_and_oversized_values_are_errors() {
    let ring = SpscRing::builder().capacity(1024).create().unwrap();
    let mut tx = ring.archive_producer::<Order>().unwrap();
    let mut rx = ring.archive_consumer::<Order>().unwrap();
    // Garbage where an archive should be: the check refuses it.
    tx.as_bytes().send(&[0xff; 64]).unwrap();
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Decode(_))));
    // Larger than the ring can ever hold.
    let huge = Order {
        id: 1,
        symbol: "X".repeat(5000),
        legs: vec![],
        note: None,
    };
    assert!(matches!(
        tx.try_send(&huge),
        Err(TrySendError::TooLarge((), _))
    ));
    assert!(matches!(tx.send(&huge), Err(SendError::TooLarge((), _))));
    // Nothing was left behind by the failed attempts.
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    tx.send(&order(3)).unwrap();
    assert_eq!(rx.recv().unwrap().id, 3);
    // Unchecked access, for a producer the caller trusts.
    tx.send(&order(4)).unwrap();
    // SAFETY: the archive was just written by this test's own producer.
    let o = unsafe { rx.recv_unchecked() }.unwrap();
    assert_eq!(o.symbol, "SYM4");
}

#[test]
fn serde_values_through_the_rings_ends() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Fill {
        id: u64,
        venue: String,
    }
    let fill = Fill {
        id: 9,
        venue: "XLON".into(),
    };
    let (tx, rx) = multiproc_queue::mpmc::channel(4, 64).unwrap();
    tx.send_message(&fill).unwrap();
    assert_eq!(rx.recv_message::<Fill>().unwrap(), fill);
    let long = "x".repeat(100);
    assert!(matches!(
        tx.try_send_message(&long),
        Err(multiproc_queue::error::TrySendError::TooLarge((), _))
    ));
    tx.send(b"\xff").unwrap();
    assert!(matches!(
        rx.try_recv_message::<Fill>(),
        Err(multiproc_queue::error::TryRecvError::Decode(_))
    ));

    let ring = multiproc_queue::spsc::SpscRing::builder()
        .capacity(1024)
        .create()
        .unwrap();
    let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
    p.send_message(&fill).unwrap();
    p.try_send_message(&vec!["a".to_string()]).unwrap();
    assert_eq!(c.recv_message::<Fill>().unwrap(), fill);
    assert_eq!(c.try_recv_message::<Vec<String>>().unwrap(), ["a"]);
}
