//! One-process costs of the workspace's primitives, with criterion: an
//! uncontended `multiproc_sync::Mutex` beside a process-shared `pthread_mutex_t`,
//! semaphore release + acquire, and on the rings (one process holding both
//! ends) SPSC `reserve` + `commit` + `recv`, `send` + `recv_into`, MPMC and
//! `pipe()` send + receive. Each bench checks the operation works before it
//! times it; `cargo test --benches` runs each once.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use multiproc_queue::mpmc::Mpmc;
use multiproc_queue::spsc::SpscRing;
use multiproc_sync::{Mutex, Semaphore};
use std::hint::black_box;

fn mutexes(c: &mut Criterion) {
    let m = Mutex::anonymous(0u64).expect("mutex");
    *m.lock().expect("lock") = 5;
    assert_eq!(*m.lock().expect("lock"), 5);
    {
        let _held = m.lock().expect("lock");
        assert!(m.try_lock().is_err(), "a held mutex refuses try_lock");
    }
    let shm = ipc_benches::shm::Shm::new(4096).expect("segment");
    let raw = shm.raw(0, std::mem::size_of::<libc::pthread_mutex_t>(), 8);
    ipc_benches::baselines::rtt::init_pthread_mutex(raw).expect("init");
    let pm = raw.cast::<libc::pthread_mutex_t>();
    // SAFETY: `pm` was initialized above and lives as long as `shm`; each
    // lock is paired with an unlock on this thread.
    unsafe {
        assert_eq!(libc::pthread_mutex_lock(pm), 0);
        assert_eq!(libc::pthread_mutex_trylock(pm), libc::EBUSY);
        assert_eq!(libc::pthread_mutex_unlock(pm), 0);
    }
    let mut g = c.benchmark_group("mutex lock+unlock, uncontended");
    g.bench_function(BenchmarkId::from_parameter("multiproc_sync::Mutex"), |b| {
        b.iter(|| {
            let guard = m.lock().expect("lock");
            black_box(*guard)
        })
    });
    g.bench_function(
        BenchmarkId::from_parameter("pthread_mutex (pshared)"),
        |b| {
            b.iter(|| {
                // SAFETY: as above.
                unsafe {
                    libc::pthread_mutex_lock(pm);
                    libc::pthread_mutex_unlock(pm);
                }
            })
        },
    );
    g.finish();
}

fn semaphore(c: &mut Criterion) {
    let s = Semaphore::anonymous(1).expect("semaphore");
    assert!(s.try_acquire());
    assert!(!s.try_acquire(), "the only permit is taken");
    s.release().expect("release");
    c.bench_function("semaphore/try_acquire+release", |b| {
        b.iter(|| {
            assert!(s.try_acquire());
            s.release().expect("release");
        })
    });
}

fn spsc(c: &mut Criterion) {
    let ring = SpscRing::builder()
        .capacity(64 * 1024)
        .create()
        .expect("ring");
    let mut tx = ring.producer().expect("producer");
    let mut rx = ring.consumer().expect("consumer");
    {
        let mut grant = tx.reserve(8).expect("reserve");
        grant.copy_from_slice(&42u64.to_le_bytes());
        grant.commit();
        assert_eq!(&*rx.recv().expect("recv"), &42u64.to_le_bytes());
    }
    let mut g = c.benchmark_group("spsc, one process");
    for len in [8usize, 64, 4096] {
        let msg = vec![7u8; len];
        let mut buf = vec![0u8; len];
        g.bench_with_input(
            BenchmarkId::new("reserve+commit+recv", len),
            &len,
            |b, &len| {
                b.iter(|| {
                    let mut grant = tx.reserve(len).expect("reserve");
                    grant.copy_from_slice(&msg);
                    grant.commit();
                    let m = rx.recv().expect("recv");
                    black_box(m[len - 1])
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("send+recv_into", len), &len, |b, _| {
            b.iter(|| {
                tx.send(&msg).expect("send");
                black_box(rx.recv_into(&mut buf).expect("recv_into"))
            })
        });
    }
    g.finish();
}

fn mpmc(c: &mut Criterion) {
    let ring = Mpmc::anonymous(multiproc_queue::mpmc::Config::new(64, 64)).expect("ring");
    let (tx, rx) = (ring.sender(), ring.receiver());
    tx.send(b"check").expect("send");
    assert_eq!(rx.recv().expect("recv").bytes(), b"check");
    c.bench_function("mpmc, one process/send+recv 8", |b| {
        b.iter(|| {
            tx.send(&1u64.to_le_bytes()).expect("send");
            black_box(rx.recv().expect("recv").bytes()[0])
        })
    });
}

fn pipe(c: &mut Criterion) {
    let (mut a, mut b) = multiproc_queue::pipe::pipe().expect("pipe");
    a.send_bytes(b"ping").expect("send");
    assert_eq!(b.recv_bytes().expect("recv"), b"ping");
    let mut buf = [0u8; 8];
    c.bench_function(
        "pipe(), one process/send_bytes+recv_bytes_into 8",
        |bench| {
            bench.iter(|| {
                a.send_bytes(&3u64.to_le_bytes()).expect("send");
                black_box(b.recv_bytes_into(&mut buf).expect("recv"))
            })
        },
    );
}

// The macro defines an undocumented `pub fn`; the group is documented above.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(primitives, mutexes, semaphore, spsc, mpmc, pipe);
}
criterion_main!(group::primitives);
