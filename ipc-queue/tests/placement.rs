//! Every ring type is placed by `multiproc_core::object::Placed`, so each has the
//! same six constructors. These tests place several rings side by side in
//! one segment (`init_at`), find them again at their offsets (`at`, as
//! another process mapping the same segment would), and check the
//! refusals: an offset outside the segment or misaligned, memory holding
//! another ring or nothing, a configuration no ring can have.

use multiproc_core::object::ObjectError;
use multiproc_core::{Kind, Segment};
use multiproc_queue::broadcast::{self, BroadcastRing, Start};
use multiproc_queue::mpmc::{self, Mpmc};
use multiproc_queue::queue::{self, JoinableQueue, Queue};
use multiproc_queue::spsc::{self, SpscRing};
use std::sync::Arc;

fn segment(size: usize) -> Arc<Segment> {
    Arc::new(Segment::builder(Kind::BYTES).size(size).create().unwrap())
}

#[test]
fn rings_of_every_kind_share_one_segment() {
    let seg = segment(64 * 1024);
    let spsc_at = 0;
    let mpmc_at = 8192;
    let bcast_at = 16384;
    let queue_at = 24576;
    let ring = SpscRing::init_at(seg.clone(), spsc_at, spsc::Config::new(1024)).unwrap();
    let work = Mpmc::init_at(seg.clone(), mpmc_at, mpmc::Config::new(4, 16)).unwrap();
    let news = BroadcastRing::init_at(seg.clone(), bcast_at, broadcast::Config::new(4, 8)).unwrap();
    let jobs = JoinableQueue::<u64>::init_at(seg.clone(), queue_at, queue::Config::new(8)).unwrap();

    // Another view of each, at its offset, as another process finds them.
    let mut tx = SpscRing::at(seg.clone(), spsc_at)
        .unwrap()
        .producer()
        .unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"spsc").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"spsc");

    Mpmc::at(seg.clone(), mpmc_at)
        .unwrap()
        .sender()
        .send(b"mpmc")
        .unwrap();
    assert_eq!(work.receiver().recv().unwrap().bytes(), b"mpmc");

    let mut sub = news.subscribe(Start::Next);
    let mut publisher = BroadcastRing::at(seg.clone(), bcast_at)
        .unwrap()
        .publisher()
        .unwrap();
    publisher.publish(b"news").unwrap();
    assert_eq!(sub.try_recv().unwrap(), b"news");

    let other = JoinableQueue::<u64>::at(seg.clone(), queue_at).unwrap();
    other.put(7).unwrap();
    assert_eq!(jobs.get().unwrap(), 7);
    jobs.task_done().unwrap();
    assert_eq!(other.unfinished(), 0);
    // A joinable queue is a queue too.
    assert_eq!(Queue::<u64>::at(seg, queue_at).unwrap().maxsize(), 8);
}

#[test]
fn offsets_and_contents_are_checked() {
    let seg = segment(16 * 1024);
    let cfg = mpmc::Config::new(4, 16);
    assert!(matches!(
        Mpmc::init_at(seg.clone(), 64, cfg),
        Err(ObjectError::Offset(_))
    ));
    assert!(matches!(
        Mpmc::init_at(seg.clone(), 16 * 1024, cfg),
        Err(ObjectError::Offset(_))
    ));
    assert!(matches!(
        Mpmc::init_at(seg.clone(), 0, mpmc::Config::new(1 << 20, 16)),
        Err(ObjectError::Offset(_))
    ));
    Mpmc::init_at(seg.clone(), 0, cfg).unwrap();
    // Nothing there, or another ring there.
    assert!(matches!(
        Mpmc::at(seg.clone(), 4096),
        Err(ObjectError::WrongObject { .. })
    ));
    assert!(matches!(
        SpscRing::at(seg.clone(), 0),
        Err(ObjectError::WrongObject { .. })
    ));
    assert!(matches!(
        BroadcastRing::at(seg.clone(), 0),
        Err(ObjectError::WrongObject { .. })
    ));
    // A plain queue does not open as a joinable one.
    Queue::<u32>::init_at(seg.clone(), 8192, queue::Config::new(4)).unwrap();
    assert!(matches!(
        JoinableQueue::<u32>::at(seg.clone(), 8192),
        Err(ObjectError::WrongObject { .. })
    ));
    // Configurations no ring can have are refused before anything is
    // written.
    assert!(matches!(
        Queue::<u32>::init_at(seg.clone(), 12288, queue::Config::new(0)),
        Err(ObjectError::InvalidConfig { .. })
    ));
    assert!(matches!(
        SpscRing::init_at(seg, 12288, spsc::Config::new(usize::MAX)),
        Err(ObjectError::InvalidConfig { .. })
    ));
}

#[test]
fn named_rings_open_by_name_and_check_their_kind() {
    let name = multiproc_core::name::unique_name("placement");
    let made = Mpmc::create(&name, mpmc::Config::new(2, 8)).unwrap();
    assert_eq!(Mpmc::open(&name).unwrap().capacity(), 2);
    assert!(matches!(
        BroadcastRing::open(&name),
        Err(ObjectError::Segment(_))
    ));
    assert!(matches!(
        Queue::<u64>::open(&name),
        Err(ObjectError::Segment(_))
    ));
    drop(made);
    assert!(!multiproc_core::name::path_of(&name).exists());
}
