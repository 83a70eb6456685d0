//! Configurations no ring can have are typed errors whose message names the
//! limit, never a silently different ring.

use multiproc_core::object::ObjectError;
use multiproc_queue::pipe::Pipe;
use multiproc_queue::queue::{JoinableQueue, Queue};

fn invalid<T: std::fmt::Debug>(r: Result<T, ObjectError>) -> String {
    match r {
        Err(ObjectError::InvalidConfig { reason, .. }) => reason,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn a_queue_of_maxsize_zero_is_refused_not_made_of_one_slot() {
    for m in [
        invalid(Queue::<u64>::new(0)),
        invalid(JoinableQueue::<u64>::new(0)),
        invalid(Queue::<u64>::builder().maxsize(0).create()),
    ] {
        assert!(m.contains("unbounded"), "{m}");
        assert!(m.contains("2^30"), "{m}");
    }
    assert_eq!(Queue::<u64>::new(1).unwrap().maxsize(), 1);
}

#[test]
fn a_queue_too_large_names_the_limit() {
    for n in [usize::MAX, (1 << 30) + 1, 1 << 62] {
        let m = invalid(Queue::<u64>::new(n));
        assert!(m.contains("2^30"), "{n}: {m}");
    }
}

#[test]
fn a_pipe_of_capacity_zero_is_refused() {
    let m = invalid(Pipe::builder().capacity(0).create());
    assert!(m.contains("32"), "{m}");
    let m = invalid(Pipe::builder().capacity(usize::MAX).create());
    assert!(m.contains("2 GiB"), "{m}");
    assert!(Pipe::builder().capacity(1).create().is_ok());
}

#[test]
fn rings_too_large_name_the_limit() {
    use multiproc_queue::broadcast::{self, BroadcastRing};
    use multiproc_queue::mpmc::Mpmc;
    for m in [
        invalid(Mpmc::anonymous(multiproc_queue::mpmc::Config::new(
            usize::MAX,
            8,
        ))),
        invalid(BroadcastRing::anonymous(broadcast::Config::new(
            usize::MAX,
            8,
        ))),
    ] {
        assert!(m.contains("2^30"), "{m}");
    }
}
