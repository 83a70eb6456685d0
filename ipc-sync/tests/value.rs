//! `Value` and `Array` shared by name between processes.
#![cfg(not(loom))]

mod common;

use common::*;
use multiproc_core::header::HeaderError;
use multiproc_core::name::unique_name;
use multiproc_core::{ExitStatus, SegmentError};
use multiproc_sync::{Array, IndexError, Mutex, ObjectError, Value};

const ITERS: u64 = 20_000;

fn value_child(args: &[u8]) -> i32 {
    let v = Value::<u64>::open(&arg_name(args)).unwrap();
    for _ in 0..ITERS {
        v.update(|x| *x += 1).unwrap();
    }
    0
}

#[test]
fn a_value_is_shared_by_name() {
    multiproc_core::process::init();
    let name = unique_name("val");
    let v = Value::create(&name, 0u64).unwrap();
    let c = spawn("a_value_is_shared_by_name", value_child, &name_arg(&name));
    for _ in 0..ITERS {
        *v.get_lock().lock().unwrap() += 1;
    }
    assert_eq!(join(&c), ExitStatus::Code(0));
    assert_eq!(v.get().unwrap(), 2 * ITERS);
    v.set(3).unwrap();
    assert_eq!(v.get().unwrap(), 3);
    // A value is not a mutex, and the element type is checked.
    assert!(matches!(
        Mutex::<u64>::open(&name),
        Err(ObjectError::Segment(SegmentError::Header {
            source: HeaderError::TypeTag { .. },
            ..
        }))
    ));
    assert!(matches!(
        Value::<u32>::open(&name),
        Err(ObjectError::Segment(SegmentError::Header {
            source: HeaderError::LayoutHash { .. },
            ..
        }))
    ));
}

fn array_child(args: &[u8]) -> i32 {
    let a = Array::<u32, 8>::open(&arg_name(args)).unwrap();
    for i in 0..a.len() {
        a.set(i, i as u32 * 10).unwrap();
    }
    let code = match a.set(8, 1) {
        Err(IndexError::OutOfBounds { index: 8, len: 8 }) => 0,
        _ => 1,
    };
    code
}

#[test]
fn an_array_is_shared_by_name_and_bounds_checked() {
    multiproc_core::process::init();
    let name = unique_name("arr");
    let a = Array::create(&name, [0u32; 8]).unwrap();
    let c = spawn(
        "an_array_is_shared_by_name_and_bounds_checked",
        array_child,
        &name_arg(&name),
    );
    assert_eq!(join(&c), ExitStatus::Code(0));
    assert_eq!(a.to_array().unwrap(), [0, 10, 20, 30, 40, 50, 60, 70]);
    assert_eq!(a.get(3).unwrap(), 30);
    assert!(matches!(a.get(99), Err(IndexError::OutOfBounds { .. })));
    assert!(!a.is_empty());
    assert!(Array::<u32, 4>::open(&name).is_err());
}
