//! The SPSC ring across real processes: a long sequenced run with a checksum,
//! single-producer enforcement, takeover of a dead end, close and death of a
//! peer, named rings, and every wait strategy.

use multiproc_core::object::ObjectError;
use multiproc_core::process::{self, take_inherited_fd, test_exec_args, ExitStatus, Process};
use multiproc_core::wait::WaitStrategy;
use multiproc_queue::error::{AttachError, RecvError, RecvTimeoutError, SendError};
use multiproc_queue::spsc::Side;
use multiproc_queue::spsc::SpscRing;
use std::time::{Duration, Instant};

fn ring_from_parent() -> SpscRing {
    let fd = take_inherited_fd(0).expect("the parent passes the ring's fd");
    SpscRing::from_fd(fd).expect("the inherited ring maps")
}

fn arg_u64(args: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(args[i * 8..i * 8 + 8].try_into().unwrap())
}

/// A message's payload: its sequence number, then `extra` bytes derived from
/// it; `extra` cycles through 0..=16 so records of several sizes wrap.
fn payload(seq: u64, buf: &mut [u8; 32]) -> usize {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let extra = (seq % 17) as usize;
    for (i, b) in buf[8..8 + extra].iter_mut().enumerate() {
        *b = (seq as u8) ^ (i as u8);
    }
    8 + extra
}

fn mix(sum: u64, msg: &[u8]) -> u64 {
    msg.iter().fold(sum, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// How many messages the long run sends: 10 million in release builds;
/// 1 million in debug builds, unless `IPC_STRESS=1` (10 million) or
/// `IPC_SPSC_MESSAGES=<n>` says otherwise.
fn long_run_count() -> u64 {
    if let Some(n) = std::env::var("IPC_SPSC_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return n;
    }
    if cfg!(debug_assertions) && std::env::var_os("IPC_STRESS").is_none() {
        1_000_000
    } else {
        10_000_000
    }
}

fn sequenced_producer(args: &[u8]) -> i32 {
    let n = arg_u64(args, 0);
    let ring = ring_from_parent();
    let mut tx = ring.producer().expect("producer attaches");
    let mut buf = [0u8; 32];
    let mut sum = 0xcbf2_9ce4_8422_2325u64;
    for seq in 0..n {
        let len = payload(seq, &mut buf);
        sum = mix(sum, &buf[..len]);
        // Alternate the in-place and the copying forms.
        if seq % 2 == 0 {
            tx.send(&buf[..len]).expect("send");
        } else {
            let mut g = tx.reserve(len).expect("reserve");
            g.copy_from_slice(&buf[..len]);
            g.commit();
        }
    }
    tx.send(&sum.to_le_bytes()).expect("send checksum");
    0
}

/// One producer process and one consumer process exchange sequenced,
/// checksummed messages of varying sizes through a small ring (so it wraps
/// and fills thousands of times); every message arrives once, in order.
#[test]
fn sequenced_messages_between_processes() {
    process::init();
    let n = long_run_count();
    let ring = SpscRing::builder().capacity(4096).create().unwrap();
    let mut rx = ring.consumer().unwrap();
    let child = Process::builder()
        .name("spsc-producer")
        .inherit_fd(ring.fd())
        .exec_args(test_exec_args("sequenced_messages_between_processes"))
        .spawn(sequenced_producer, &n.to_le_bytes())
        .unwrap();
    let mut sum = 0xcbf2_9ce4_8422_2325u64;
    let mut expect = [0u8; 32];
    let start = Instant::now();
    for seq in 0..n {
        let m = rx.recv().expect("recv");
        let len = payload(seq, &mut expect);
        assert_eq!(&*m, &expect[..len], "message {seq}");
        sum = mix(sum, &m);
    }
    let elapsed = start.elapsed();
    let theirs = rx.recv().expect("checksum");
    assert_eq!(&*theirs, &sum.to_le_bytes());
    drop(theirs);
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
    eprintln!(
        "{n} messages in {elapsed:?} ({:.1} M msg/s)",
        n as f64 / elapsed.as_secs_f64() / 1e6
    );
}

fn hold_producer(_: &[u8]) -> i32 {
    let ring = ring_from_parent();
    let mut tx = ring.producer().expect("producer attaches");
    tx.send(b"attached").expect("send");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A live producer in another process keeps the end; once it is killed, the
/// consumer learns it (instead of waiting for ever) and a new producer takes
/// the end over, continuing where the dead one stopped.
#[test]
fn a_live_producer_is_exclusive_and_a_dead_one_is_taken_over() {
    process::init();
    let ring = SpscRing::builder().capacity(1024).create().unwrap();
    let mut rx = ring.consumer().unwrap();
    let child = Process::builder()
        .daemon(true)
        .inherit_fd(ring.fd())
        .exec_args(test_exec_args(
            "a_live_producer_is_exclusive_and_a_dead_one_is_taken_over",
        ))
        .spawn(hold_producer, b"")
        .unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"attached");
    match ring.producer() {
        Err(AttachError::AlreadyAttached { role, pid }) => {
            assert_eq!(role, "producer");
            assert_eq!(pid, child.pid());
        }
        other => panic!("expected AlreadyAttached, got {other:?}"),
    }
    assert_eq!(ring.owner_pid(Side::Producer), Some(child.pid()));
    assert!(rx.is_peer_alive());
    child.kill().unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Signal(libc::SIGKILL));
    // The dead producer never closed: the blocking receive notices its death.
    let t = Instant::now();
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(!rx.is_peer_alive());
    let mut tx = ring
        .producer()
        .expect("a dead producer's end is taken over");
    assert_eq!(ring.attach_counts(), (2, 1));
    tx.send(b"after takeover").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"after takeover");
}

fn send_and_close(args: &[u8]) -> i32 {
    let n = arg_u64(args, 0);
    let ring = ring_from_parent();
    let mut tx = ring.producer().expect("producer attaches");
    for i in 0..n {
        tx.send(&i.to_le_bytes()).expect("send");
    }
    tx.close();
    0
}

/// A consumer drains everything sent before the producer closed, then
/// gets `Closed`; the producer exits without waiting for it.
#[test]
fn a_consumer_drains_then_sees_close() {
    process::init();
    let ring = SpscRing::builder().capacity(1 << 16).create().unwrap();
    let mut rx = ring.consumer().unwrap();
    let child = Process::builder()
        .inherit_fd(ring.fd())
        .exec_args(test_exec_args("a_consumer_drains_then_sees_close"))
        .spawn(send_and_close, &100u64.to_le_bytes())
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    assert!(rx.is_closed());
    for i in 0..100u64 {
        assert_eq!(&*rx.recv().unwrap(), &i.to_le_bytes());
    }
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(1)).unwrap_err(),
        RecvTimeoutError::Closed
    );
}

fn read_one_then_hang(_: &[u8]) -> i32 {
    let ring = ring_from_parent();
    let mut rx = ring.consumer().expect("consumer attaches");
    let _ = rx.recv().expect("recv");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A producer blocked on a full ring learns that its consumer died.
#[test]
fn a_blocked_producer_learns_the_consumer_died() {
    process::init();
    let ring = SpscRing::builder().capacity(64).create().unwrap();
    let mut tx = ring.producer().unwrap();
    let child = Process::builder()
        .daemon(true)
        .inherit_fd(ring.fd())
        .exec_args(test_exec_args(
            "a_blocked_producer_learns_the_consumer_died",
        ))
        .spawn(read_one_then_hang, b"")
        .unwrap();
    tx.send(b"first").unwrap();
    // Wait until the child has taken the first message and so is attached.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ring.used_bytes() != 0 {
        assert!(Instant::now() < deadline, "the child never read");
        std::thread::sleep(Duration::from_millis(1));
    }
    for strategy in [WaitStrategy::Blocking, WaitStrategy::BusySpin] {
        tx.set_wait_strategy(strategy);
        while tx.try_send(&[0; 8]).is_ok() {}
        assert!(matches!(
            tx.send_timeout(&[0; 8], Duration::from_millis(20)),
            Err(multiproc_queue::error::SendTimeoutError::Timeout(()))
        ));
    }
    tx.set_wait_strategy(WaitStrategy::ADAPTIVE);
    child.kill().unwrap();
    child.join().unwrap();
    assert!(matches!(tx.send(&[1; 8]), Err(SendError::Closed(()))));
}

fn echo_named(args: &[u8]) -> i32 {
    let strategy = match args[0] {
        0 => WaitStrategy::BusySpin,
        1 => WaitStrategy::ADAPTIVE,
        _ => WaitStrategy::Blocking,
    };
    let names = std::str::from_utf8(&args[1..]).unwrap();
    let (ping, pong) = names.split_once(' ').unwrap();
    let ping = SpscRing::open(ping).expect("open ping by name");
    let pong = SpscRing::open(pong).expect("open pong by name");
    let mut rx = ping.consumer().unwrap().with_wait_strategy(strategy);
    let mut tx = pong.producer().unwrap().with_wait_strategy(strategy);
    loop {
        let m = match rx.recv() {
            Ok(m) => m,
            Err(RecvError::Closed) => return 0,
            Err(e) => panic!("{e}"),
        };
        tx.send(&m).expect("echo");
    }
}

/// Round trips through two named rings opened by name in another process,
/// under each wait strategy (both ends use the same one).
#[test]
fn ping_pong_over_named_rings_with_every_wait_strategy() {
    process::init();
    for (code, strategy, rounds) in [
        (0u8, WaitStrategy::BusySpin, 20_000u32),
        (1, WaitStrategy::ADAPTIVE, 20_000),
        (2, WaitStrategy::Blocking, 500),
    ] {
        let ping_name = multiproc_core::name::unique_name("spsc-ping");
        let pong_name = multiproc_core::name::unique_name("spsc-pong");
        let ping = SpscRing::builder()
            .name(&ping_name)
            .capacity(256)
            .create()
            .unwrap();
        let pong = SpscRing::builder()
            .name(&pong_name)
            .capacity(256)
            .create()
            .unwrap();
        let mut tx = ping.producer().unwrap().with_wait_strategy(strategy);
        let mut rx = pong.consumer().unwrap().with_wait_strategy(strategy);
        let mut args = vec![code];
        args.extend_from_slice(format!("{ping_name} {pong_name}").as_bytes());
        let child = Process::builder()
            .daemon(true)
            .exec_args(test_exec_args(
                "ping_pong_over_named_rings_with_every_wait_strategy",
            ))
            .spawn(echo_named, &args)
            .unwrap();
        let start = Instant::now();
        for i in 0..rounds {
            tx.send(&i.to_le_bytes()).unwrap();
            assert_eq!(&*rx.recv().unwrap(), &i.to_le_bytes());
        }
        let per = start.elapsed() / rounds;
        drop(tx);
        assert_eq!(child.join().unwrap(), ExitStatus::Code(0), "{strategy:?}");
        eprintln!("{strategy:?}: {per:?} per round trip (debug build, noisy VM)");
    }
}

/// Opening refuses segments of another kind and names that do not exist.
#[test]
fn opening_checks_kind_and_name() {
    let name = multiproc_core::name::unique_name("spsc-kind");
    let _other = multiproc_core::Segment::builder(multiproc_core::Kind::BYTES)
        .name(&name)
        .size(4096)
        .create()
        .unwrap();
    assert!(matches!(
        SpscRing::open(&name),
        Err(ObjectError::Segment(
            multiproc_core::SegmentError::Header { .. }
        ))
    ));
    assert!(matches!(
        SpscRing::open(&multiproc_core::name::unique_name("spsc-missing")),
        Err(ObjectError::Segment(
            multiproc_core::SegmentError::NotFound { .. }
        ))
    ));
}
