//! Fault injection: producers and consumers of an SPSC ring are SIGKILLed at
//! random points (inside a reservation, inside a receive guard, between
//! operations), many times. The survivors keep going, a new process takes the
//! dead end over, nothing hangs, and every committed message is received
//! exactly once: a message is committed when the producer publishes it and
//! received when the consumer releases it, so the ledgers below account for
//! the single window (between the ring operation and the ledger write) where
//! a kill leaves the ledger one behind.
//!
//! `IPC_STRESS=1` kills ten times as often.

use multiproc_core::process::{self, take_inherited_fd, test_exec_args, ExitStatus, Process};
use multiproc_core::{Kind, Segment};
use multiproc_queue::error::{RecvError, SendError};
use multiproc_queue::spsc::SpscRing;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn kills() -> usize {
    if std::env::var_os("IPC_STRESS").is_some() {
        150
    } else {
        15
    }
}

struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        Rng((t ^ (u64::from(std::process::id()) << 32)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn cell(ledger: &Segment, index: usize) -> &AtomicU64 {
    ledger
        .get::<AtomicU64>(index as u64 * 8)
        .expect("ledger cell")
}

fn child_ring_and_ledger() -> (SpscRing, Segment) {
    let ring = SpscRing::from_fd(take_inherited_fd(0).expect("ring fd")).expect("ring");
    let ledger =
        Segment::from_fd(take_inherited_fd(1).expect("ledger fd"), Kind::BYTES).expect("ledger");
    (ring, ledger)
}

/// Fills a message: incarnation, sequence number, then bytes derived from
/// both.
fn fill(buf: &mut [u8], inc: u32, seq: u32) {
    buf[..4].copy_from_slice(&inc.to_le_bytes());
    buf[4..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(inc as u8).wrapping_mul(7) ^ i as u8;
    }
}

fn check(buf: &[u8]) -> Option<(u32, u32)> {
    if buf.len() < 8 {
        return None;
    }
    let inc = u32::from_le_bytes(buf[..4].try_into().unwrap());
    let seq = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let mut want = vec![0u8; buf.len()];
    fill(&mut want, inc, seq);
    (want == buf).then_some((inc, seq))
}

// Ledger of the producer test: cell 0 counts kills that landed inside a
// grant (the child sets cell 1 while it holds one); cell 2 + i is how many
// messages incarnation i has committed.
const IN_GRANT: usize = 1;
const COMMITTED: usize = 2;
const DONE: u32 = u32::MAX;

fn doomed_producer(args: &[u8]) -> i32 {
    let inc = u32::from_le_bytes(args[..4].try_into().unwrap());
    let last = args[4] == 1;
    let (ring, ledger) = child_ring_and_ledger();
    let mut tx = ring.producer().expect("takes the dead producer's end over");
    let mut rng = Rng::seeded();
    let committed = cell(&ledger, COMMITTED + inc as usize);
    let in_grant = cell(&ledger, IN_GRANT);
    let mut seq = 0u32;
    loop {
        if last && seq == 2_000 {
            let mut g = tx.reserve(8).expect("reserve");
            fill(&mut g, DONE, 0);
            g.commit();
            return 0;
        }
        let len = 8 + rng.below(200) as usize;
        in_grant.store(1, Ordering::SeqCst);
        let mut g = tx.reserve(len).expect("reserve");
        g[..len / 2].fill(0xa5);
        // Linger inside the grant so kills land here often.
        for _ in 0..rng.below(2_000) {
            std::hint::spin_loop();
        }
        fill(&mut g, inc, seq);
        g.commit();
        committed.store(u64::from(seq) + 1, Ordering::SeqCst);
        in_grant.store(0, Ordering::SeqCst);
        seq += 1;
    }
}

/// Producers are killed one after another at random points while the
/// consumer keeps reading; each new producer takes the dead one's end over.
#[test]
fn killed_producers_lose_no_committed_message() {
    process::init();
    let ring = SpscRing::builder().capacity(2048).create().unwrap();
    let ledger = Segment::builder(Kind::BYTES).size(4096).create().unwrap();
    let n = kills();
    let mut rx = ring.consumer().unwrap();
    let reader = std::thread::spawn(move || {
        let mut received = vec![0u64; 512];
        let mut current = 0u32;
        loop {
            let m = match rx.recv() {
                Ok(m) => m,
                // The producer died; the next one will take over.
                Err(RecvError::Closed) => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(e) => panic!("recv: {e}"),
            };
            let (inc, seq) = check(&m).expect("a committed message is intact");
            if inc == DONE {
                return received;
            }
            assert!(inc >= current, "incarnation {inc} after {current}");
            current = inc;
            assert_eq!(
                u64::from(seq),
                received[inc as usize],
                "incarnation {inc}: lost or duplicated"
            );
            received[inc as usize] += 1;
        }
    });
    let mut rng = Rng::seeded();
    let mut mid_grant = 0;
    for inc in 0..=n as u32 {
        let last = inc == n as u32;
        let mut args = inc.to_le_bytes().to_vec();
        args.push(u8::from(last));
        let child = Process::builder()
            .daemon(true)
            .inherit_fd(ring.fd())
            .inherit_fd(ledger.fd())
            .exec_args(test_exec_args("killed_producers_lose_no_committed_message"))
            .spawn(doomed_producer, &args)
            .unwrap();
        if last {
            assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
            break;
        }
        std::thread::sleep(Duration::from_millis(5 + rng.below(25)));
        let _ = child.kill();
        assert!(matches!(
            child.join().unwrap(),
            ExitStatus::Signal(libc::SIGKILL) | ExitStatus::Code(_)
        ));
        if cell(&ledger, IN_GRANT).swap(0, Ordering::SeqCst) == 1 {
            mid_grant += 1;
        }
    }
    let received = reader.join().unwrap();
    let mut window = 0;
    for (inc, &got) in received.iter().enumerate().take(n) {
        let committed = cell(&ledger, COMMITTED + inc).load(Ordering::SeqCst);
        assert!(
            got == committed || got == committed + 1,
            "incarnation {inc}: committed {committed}, received {got}"
        );
        window += got - committed;
    }
    eprintln!(
        "{n} producers killed ({mid_grant} inside reserve or a grant, {window} between commit and ledger); \
         received {} messages",
        received.iter().sum::<u64>()
    );
}

// Ledger of the consumer test.
const PROGRESS: usize = 0; // last released sequence number + 1
const VIOLATIONS: usize = 1;
const IN_GUARD: usize = 2;
const FINAL: usize = 3;

fn doomed_consumer(args: &[u8]) -> i32 {
    let last = args[0] == 1;
    let (ring, ledger) = child_ring_and_ledger();
    let mut rx = ring.consumer().expect("takes the dead consumer's end over");
    let progress = cell(&ledger, PROGRESS);
    let violations = cell(&ledger, VIOLATIONS);
    let in_guard = cell(&ledger, IN_GUARD);
    let start = progress.load(Ordering::SeqCst);
    let mut rng = Rng::seeded();
    let mut expect: Option<u64> = None;
    loop {
        in_guard.store(1, Ordering::SeqCst);
        let m = match rx.recv() {
            Ok(m) => m,
            Err(RecvError::Closed) if last => {
                cell(&ledger, FINAL).store(expect.unwrap_or(start), Ordering::SeqCst);
                return 0;
            }
            Err(e) => panic!("recv: {e}"),
        };
        let seq = match check(&m) {
            Some((0, seq)) => u64::from(seq),
            _ => {
                violations.fetch_add(1, Ordering::SeqCst);
                return 3;
            }
        };
        let ok = match expect {
            // A killed predecessor either released its last message without
            // recording it (start + 1) or died holding it (start: delivered
            // again, as it was never released).
            None => seq == start || seq == start + 1,
            Some(e) => seq == e,
        };
        if !ok {
            violations.fetch_add(1, Ordering::SeqCst);
        }
        for _ in 0..rng.below(2_000) {
            std::hint::spin_loop();
        }
        drop(m);
        progress.store(seq + 1, Ordering::SeqCst);
        in_guard.store(0, Ordering::SeqCst);
        expect = Some(seq + 1);
    }
}

/// Consumers are killed one after another at random points while the
/// producer keeps sending; each new consumer takes over and continues at the
/// first message not released.
#[test]
fn killed_consumers_receive_every_message_once() {
    process::init();
    let ring = SpscRing::builder().capacity(1024).create().unwrap();
    let ledger = Segment::builder(Kind::BYTES).size(4096).create().unwrap();
    let n = kills();
    let total: u32 = 20_000 + n as u32 * 1_000;
    let mut tx = ring.producer().unwrap();
    let writer = std::thread::spawn(move || {
        let mut rng = Rng::seeded();
        let mut seq = 0u32;
        let mut buf = vec![0u8; 256];
        while seq < total {
            let len = 8 + rng.below(120) as usize;
            fill(&mut buf[..len], 0, seq);
            match tx.send(&buf[..len]) {
                Ok(()) => seq += 1,
                // The consumer died with the ring full; the next one comes.
                Err(SendError::Closed(())) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("send: {e}"),
            }
        }
        tx.close();
    });
    let mut rng = Rng::seeded();
    let mut mid_guard = 0;
    let start = Instant::now();
    for j in 0..=n {
        let last = j == n;
        let child = Process::builder()
            .daemon(true)
            .inherit_fd(ring.fd())
            .inherit_fd(ledger.fd())
            .exec_args(test_exec_args(
                "killed_consumers_receive_every_message_once",
            ))
            .spawn(doomed_consumer, &[u8::from(last)])
            .unwrap();
        if last {
            assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
            break;
        }
        std::thread::sleep(Duration::from_millis(5 + rng.below(25)));
        let _ = child.kill();
        let _ = child.join().unwrap();
        if cell(&ledger, IN_GUARD).swap(0, Ordering::SeqCst) == 1 {
            mid_guard += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(cell(&ledger, VIOLATIONS).load(Ordering::SeqCst), 0);
    assert_eq!(
        cell(&ledger, FINAL).load(Ordering::SeqCst),
        u64::from(total)
    );
    eprintln!(
        "{n} consumers killed ({mid_guard} inside recv or a guard), {total} messages in {:?}",
        start.elapsed()
    );
}
