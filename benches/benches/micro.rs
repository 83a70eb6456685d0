//! One-process costs, measured with criterion: creating and opening a
//! segment, a futex wake with nobody waiting, an `EventCount` notify with
//! nobody waiting, `ProcessId::current`, and an uncontended process-shared
//! `pthread_mutex_t` for reference. Each bench checks that the operation
//! works before timing it. `cargo test --benches` runs each once.

use criterion::{criterion_group, criterion_main, Criterion};
use multiproc_core::wait::EventCount;
use multiproc_core::{futex, Kind, ProcessId, Segment};
use std::hint::black_box;
use std::sync::atomic::AtomicU32;

fn segment_create_open_unlink(c: &mut Criterion) {
    let name = multiproc_core::name::unique_name("bench-seg");
    // Check first: an opener sees what the creator wrote.
    {
        let seg = Segment::builder(Kind::BYTES)
            .name(&name)
            .size(4096)
            .create_with(|s| {
                s.get::<std::sync::atomic::AtomicU64>(0)
                    .expect("in bounds")
                    .store(42, std::sync::atomic::Ordering::Relaxed)
            })
            .expect("create");
        let other = Segment::builder(Kind::BYTES)
            .name(&name)
            .open()
            .expect("open");
        let v = other
            .get::<std::sync::atomic::AtomicU64>(0)
            .expect("in bounds")
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(v, 42);
        drop(other);
        drop(seg);
    }
    assert!(
        !multiproc_core::name::path_of(&name).exists(),
        "creator unlinks on drop"
    );
    c.bench_function("segment/create+open+unlink 4KiB", |b| {
        b.iter(|| {
            let seg = Segment::builder(Kind::BYTES)
                .name(&name)
                .size(4096)
                .create()
                .expect("create");
            let other = Segment::builder(Kind::BYTES)
                .name(&name)
                .open()
                .expect("open");
            drop(black_box(other));
            drop(seg);
        })
    });
    c.bench_function("segment/create anonymous 4KiB", |b| {
        b.iter(|| {
            black_box(
                Segment::builder(Kind::BYTES)
                    .size(4096)
                    .create()
                    .expect("create"),
            )
        })
    });
}

fn futex_wake_no_waiter(c: &mut Criterion) {
    let word = AtomicU32::new(0);
    assert_eq!(futex::wake(&word, 1), 0, "nobody waits, nobody is woken");
    c.bench_function("futex/wake, no waiter", |b| {
        b.iter(|| futex::wake(black_box(&word), 1))
    });
}

fn event_count_notify_no_waiter(c: &mut Criterion) {
    let ec = EventCount::new();
    ec.notify_all();
    assert!(!ec.has_waiters());
    c.bench_function("event_count/notify_all, no waiter", |b| {
        b.iter(|| black_box(&ec).notify_all())
    });
}

fn process_id_current(c: &mut Criterion) {
    let me = ProcessId::current().expect("a bench process knows its identity");
    assert_eq!(ProcessId::from_u64(me.to_u64()), me);
    assert!(me.is_alive());
    c.bench_function("process_id/current", |b| {
        b.iter(|| black_box(ProcessId::current()))
    });
}

fn pthread_mutex_uncontended(c: &mut Criterion) {
    let shm = ipc_benches::shm::Shm::new(4096).expect("segment");
    let raw = shm.raw(0, std::mem::size_of::<libc::pthread_mutex_t>(), 8);
    ipc_benches::baselines::rtt::init_pthread_mutex(raw).expect("init");
    let m = raw.cast::<libc::pthread_mutex_t>();
    // SAFETY: `m` was initialized above and lives as long as `shm`; each
    // lock below is paired with an unlock on this thread.
    unsafe {
        assert_eq!(libc::pthread_mutex_lock(m), 0);
        assert_eq!(libc::pthread_mutex_trylock(m), libc::EBUSY);
        assert_eq!(libc::pthread_mutex_unlock(m), 0);
    }
    c.bench_function("pthread_mutex (pshared)/lock+unlock", |b| {
        b.iter(|| {
            // SAFETY: as above.
            unsafe {
                libc::pthread_mutex_lock(m);
                libc::pthread_mutex_unlock(m);
            }
        })
    });
}

// The macro defines an undocumented `pub fn`; the group is documented above.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(
        core,
        segment_create_open_unlink,
        futex_wake_no_waiter,
        event_count_notify_no_waiter,
        process_id_current,
        pthread_mutex_uncontended
    );
}
criterion_main!(group::core);
