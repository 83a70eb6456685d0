//! The broadcast ring across processes: one publisher, three subscriber
//! processes (one deliberately slow), overrun counts checked against what
//! each subscriber received. `IPC_STRESS=1` publishes ten times as many
//! messages (`BROADCAST_MESSAGES` sets the count).

use multiproc_core::process::{self, test_exec_args, ExitStatus, Process};
use multiproc_core::{Kind, Segment};
use multiproc_queue::broadcast::{BroadcastRing, ReadError, Start};
use multiproc_queue::error::AttachError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const MSG: usize = 64;

fn messages() -> u64 {
    if let Some(v) = std::env::var("BROADCAST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return v;
    }
    if std::env::var_os("IPC_STRESS").is_some() {
        1_000_000
    } else {
        100_000
    }
}

fn message(seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(7).wrapping_add(i as u8);
    }
    m
}

/// Per subscriber: ready, received, overruns, final position (4 words).
fn word(seg: &Segment, sub: u64, field: u64) -> &AtomicU64 {
    seg.get(8 * (4 * sub + field)).unwrap()
}

/// Args: subscriber index, slow (0/1), total messages.
fn subscriber(args: &[u8]) -> i32 {
    let a: Vec<u64> = args
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let (me, slow, total) = (a[0], a[1] != 0, a[2]);
    let fd = process::take_inherited_fd(0).unwrap();
    let results = Segment::from_fd(process::take_inherited_fd(1).unwrap(), Kind::BYTES).unwrap();
    let mut sub = BroadcastRing::from_fd(fd).unwrap().subscribe(Start::Oldest);
    word(&results, me, 0).store(1, Ordering::Release);
    let mut buf = [0u8; MSG];
    let (mut expected, mut received, mut lagged) = (0u64, 0u64, 0u64);
    loop {
        match sub.recv_into_timeout(&mut buf, Duration::from_secs(30)) {
            Ok(n) => {
                let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                if n != MSG || buf != message(seq) {
                    eprintln!("subscriber {me}: torn or garbled message at {expected}");
                    return 4;
                }
                if seq != expected {
                    eprintln!("subscriber {me}: got {seq}, expected {expected}");
                    return 5;
                }
                expected += 1;
                received += 1;
                if slow {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Err(ReadError::Lagged(n)) => {
                expected += n;
                lagged += n;
            }
            Err(ReadError::Closed) => break,
            Err(e) => {
                eprintln!("subscriber {me}: {e}");
                return 3;
            }
        }
    }
    if lagged != sub.overruns() {
        return 6;
    }
    word(&results, me, 1).store(received, Ordering::Release);
    word(&results, me, 2).store(lagged, Ordering::Release);
    word(&results, me, 3).store(expected, Ordering::Release);
    if expected == total {
        0
    } else {
        7
    }
}

#[test]
fn three_subscriber_processes_get_every_message_or_an_overrun_count() {
    process::init();
    let total = messages();
    let mut publisher = BroadcastRing::anonymous(multiproc_queue::broadcast::Config::new(64, MSG))
        .unwrap()
        .publisher()
        .unwrap();
    let results = Segment::builder(Kind::BYTES).size(256).create().unwrap();
    let subs: Vec<Process> = (0..3u64)
        .map(|i| {
            let slow = u64::from(i == 2);
            let args: Vec<u8> = [i, slow, total]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            Process::builder()
                .daemon(true)
                .exec_args(test_exec_args(
                    "three_subscriber_processes_get_every_message_or_an_overrun_count",
                ))
                .inherit_fd(publisher.fd())
                .inherit_fd(results.fd())
                .spawn(subscriber, &args)
                .unwrap()
        })
        .collect();
    for i in 0..3 {
        let t = std::time::Instant::now();
        while word(&results, i, 0).load(Ordering::Acquire) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "subscriber {i} never started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for seq in 0..total {
        publisher.publish(&message(seq)).unwrap();
        if seq % 1024 == 0 {
            // Give the fast subscribers a chance on two cores; the publisher
            // itself never waits for anyone.
            std::thread::yield_now();
        }
    }
    drop(publisher); // closes the ring
    for (i, s) in subs.iter().enumerate() {
        let st = s.join_timeout(Duration::from_secs(120)).unwrap();
        if st.is_none() {
            let _ = s.kill();
        }
        assert_eq!(st, Some(ExitStatus::Code(0)), "subscriber {i}");
    }
    for i in 0..3 {
        let received = word(&results, i, 1).load(Ordering::Acquire);
        let lagged = word(&results, i, 2).load(Ordering::Acquire);
        eprintln!("subscriber {i}: {received} received, {lagged} lost to overruns");
        assert_eq!(received + lagged, total);
    }
    // The slow subscriber sleeps 200 us per message: it was lapped.
    assert!(word(&results, 2, 2).load(Ordering::Acquire) > 0);
}

/// Takes the ring over as its publisher and publishes from where the last
/// publisher stopped, until killed.
fn endless_publisher(_: &[u8]) -> i32 {
    let fd = process::take_inherited_fd(0).unwrap();
    let mut p = match BroadcastRing::from_fd(fd)
        .map_err(AttachError::from)
        .and_then(|ring| ring.publisher())
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("publisher: {e}");
            return 2;
        }
    };
    loop {
        let seq = p.published();
        p.publish(&message(seq)).unwrap();
        if seq % 64 == 0 {
            std::thread::yield_now();
        }
    }
}

#[test]
fn a_killed_publisher_is_noticed_and_replaced() {
    process::init();
    let creator = BroadcastRing::anonymous(multiproc_queue::broadcast::Config::new(32, MSG))
        .unwrap()
        .publisher()
        .unwrap();
    let fd = creator.fd().try_clone_to_owned().unwrap();
    let mut sub = creator.subscribe(Start::Oldest);
    drop(creator); // closed; a child takes over
    let mut buf = [0u8; MSG];
    let mut expected = 0u64;
    let rounds = if std::env::var_os("IPC_STRESS").is_some() {
        100
    } else {
        10
    };
    for round in 0..rounds {
        let child = Process::builder()
            .daemon(true)
            .exec_args(test_exec_args("a_killed_publisher_is_noticed_and_replaced"))
            .inherit_fd(std::os::fd::AsFd::as_fd(&fd))
            .spawn(endless_publisher, b"")
            .unwrap();
        let mut received = 0;
        let mut killed = false;
        loop {
            match sub.recv_into_timeout(&mut buf, Duration::from_secs(30)) {
                Ok(n) => {
                    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    assert_eq!((n, buf), (MSG, message(seq)), "torn message");
                    assert_eq!(seq, expected, "round {round}");
                    expected += 1;
                    received += 1;
                    if received == 2_000 + 500 * round && !killed {
                        // Kill it while it publishes as fast as it can.
                        child.kill().unwrap();
                        killed = true;
                    }
                }
                Err(ReadError::Lagged(n)) => expected += n,
                Err(ReadError::Closed) if killed => break,
                // Closed until the new publisher has taken over: not final.
                Err(ReadError::Closed) => {
                    assert!(child.is_alive(), "the new publisher exited");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("round {round}: {e:?} (killed: {killed})"),
            }
        }
        assert_eq!(
            child.join_timeout(Duration::from_secs(30)).unwrap(),
            Some(ExitStatus::Signal(libc::SIGKILL))
        );
    }
    assert!(expected > 0);
}
