//! A segment larger than the machine can hold is a typed error before
//! anything is allocated, never a kill by the OOM killer.

use multiproc_core::memory::MemoryLimit;
use multiproc_core::{Kind, Segment, SegmentError};

#[test]
fn a_terabyte_anonymous_segment_is_a_typed_error() {
    let available = multiproc_core::memory::available(false)
        .map(|(free, _)| free)
        .expect("/proc/meminfo is readable");
    assert!(available < 1 << 40, "this test needs a machine below 1 TiB");
    match Segment::builder(Kind::BYTES).size(1 << 40).create() {
        Err(SegmentError::InsufficientMemory {
            size,
            available,
            limit,
        }) => {
            assert!(size >= 1 << 40);
            assert!((available as usize) < size);
            assert!(matches!(
                limit,
                MemoryLimit::Machine | MemoryLimit::Cgroup(_)
            ));
        }
        other => panic!("expected InsufficientMemory, got {other:?}"),
    }
}

#[test]
fn what_fits_is_still_created() {
    let seg = Segment::builder(Kind::BYTES)
        .size(1 << 20)
        .create()
        .unwrap();
    assert_eq!(seg.payload_len(), 1 << 20);
}
