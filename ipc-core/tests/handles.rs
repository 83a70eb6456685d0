//! Objects in shared memory passed to a child in its arguments arrive
//! usable: anonymous ones by an inherited descriptor, named ones by name.

#![cfg(feature = "serde")]

use multiproc_core::object::{check_tag, checked_ref, ObjectError, Placed, ShmObject};
use multiproc_core::process::{self, test_exec_args, Process};
use multiproc_core::Kind;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

#[repr(C)]
struct Counter {
    tag: AtomicU64,
    value: AtomicU64,
}

const TAG: u64 = 0x434e_5452;

// SAFETY: `init_in` writes a whole `Counter` into memory of its size and
// alignment; `attach` checks size, alignment and tag; two atomics are
// valid for every bit pattern.
unsafe impl ShmObject for Counter {
    const KIND: Kind = Kind::new("ipc-core-tests/counter", 1, 0);
    type Config = u64;
    fn memory_size(_: &u64) -> Result<usize, ObjectError> {
        Ok(std::mem::size_of::<Counter>())
    }
    unsafe fn init_in(mem: NonNull<u8>, _len: usize, start: u64) {
        // SAFETY: the caller gives `memory_size` aligned bytes.
        unsafe {
            mem.cast::<Counter>().write(Counter {
                tag: AtomicU64::new(TAG),
                value: AtomicU64::new(start),
            })
        };
    }
    unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Counter, ObjectError> {
        // SAFETY: the caller's promise, passed on.
        let c = unsafe { checked_ref::<Counter>(mem, len)? };
        check_tag("counter", TAG, c.tag.load(Ordering::Relaxed))?;
        Ok(c)
    }
}

fn bump((a, b, by): (Placed<Counter>, Placed<Counter>, u64)) -> (u64, u64) {
    (
        a.value.fetch_add(by, Ordering::AcqRel) + by,
        b.value.fetch_add(by, Ordering::AcqRel) + by,
    )
}

#[test]
fn placed_objects_travel_in_a_childs_arguments() {
    process::init();
    let anon = Placed::<Counter>::anonymous(10).unwrap();
    let name = multiproc_core::name::unique_name("handles");
    let named = Placed::<Counter>::create(&name, 100).unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args(
            "placed_objects_travel_in_a_childs_arguments",
        ))
        .start(bump, (anon.clone(), named.clone(), 5u64))
        .unwrap();
    assert_eq!(child.join().unwrap(), (15, 105));
    assert_eq!(anon.value.load(Ordering::Acquire), 15);
    assert_eq!(named.value.load(Ordering::Acquire), 105);
}

#[test]
fn an_anonymous_object_cannot_travel_outside_a_childs_arguments() {
    let anon = Placed::<Counter>::anonymous(1).unwrap();
    let mut bytes = Vec::new();
    let e = multiproc_core::message::Message::encode(&anon, &mut bytes).unwrap_err();
    assert!(e.to_string().contains("arguments of a child"), "{e}");
}

#[test]
fn the_refusal_reads_once() {
    let anon = Placed::<Counter>::anonymous(1).unwrap();
    let mut bytes = Vec::new();
    let e = multiproc_core::message::Message::encode(&anon, &mut bytes).unwrap_err();
    assert_eq!(
        e.to_string().matches("cannot send a handle").count(),
        1,
        "{e}"
    );
    assert!(bytes.is_empty());
}
