//! Python's `Process(target, args)`: typed arguments and return values
//! (`serde` values here), by spawn and by the checked fork.
#![cfg(feature = "serde")]

use multiproc_core::process::{self, test_exec_args, ExitStatus, Process, StartMethod};
use multiproc_core::ProcessError;
use std::time::Duration;

fn triple(x: u32) -> u32 {
    3 * x
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    symbol: String,
    tags: Vec<String>,
}

fn fill(mut o: Order) -> (Order, usize) {
    o.tags.push(format!("filled-{}", o.id));
    let n = o.tags.len();
    (o, n)
}

fn typed_panics(why: String) -> u8 {
    panic!("{why}")
}

fn sleeps(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

#[test]
fn start_runs_a_typed_function_and_joins_to_its_value() {
    process::init();
    let child = Process::builder()
        .start_method(StartMethod::Spawn)
        .exec_args(test_exec_args(
            "start_runs_a_typed_function_and_joins_to_its_value",
        ))
        .start(triple, 7u32)
        .unwrap();
    assert!(child.pid() > 0);
    assert_eq!(child.join().unwrap(), 21);
    let order = Order {
        id: 9,
        symbol: "XYZ".into(),
        tags: vec!["ioc".into()],
    };
    let child = Process::builder()
        .exec_args(test_exec_args(
            "start_runs_a_typed_function_and_joins_to_its_value",
        ))
        .start(fill, order)
        .unwrap();
    let (back, n) = child.join().unwrap();
    assert_eq!(n, 2);
    assert_eq!(back.tags, ["ioc", "filled-9"]);
    assert_eq!(back.symbol, "XYZ");
    // A closure that captures nothing is a function too.
    let child = Process::builder()
        .exec_args(test_exec_args(
            "start_runs_a_typed_function_and_joins_to_its_value",
        ))
        .start(
            |v: Vec<String>| v.join(" "),
            vec!["a".to_string(), "b".to_string()],
        )
        .unwrap();
    assert_eq!(child.join().unwrap(), "a b");
    // The harness runs this test on a thread of its own: a fork here would
    // copy a multi-threaded process, which the checked start refuses.
    match Process::builder()
        .start_method(StartMethod::Fork)
        .start(triple, 7u32)
    {
        Err(ProcessError::MultiThreaded { threads: Some(n) }) => assert!(n >= 2),
        other => panic!("expected MultiThreaded, got {other:?}"),
    }
}

#[test]
fn a_typed_child_that_panics_or_is_killed_reports_it() {
    process::init();
    let args = test_exec_args("a_typed_child_that_panics_or_is_killed_reports_it");
    let child = Process::builder()
        .exec_args(args.clone())
        .start(typed_panics, "on purpose".to_string())
        .unwrap();
    match child.join() {
        Err(ProcessError::Panicked { message, .. }) => assert_eq!(message, "on purpose"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let child = Process::builder()
        .exec_args(args)
        .start(sleeps, 60u64)
        .unwrap();
    assert_eq!(child.join_timeout(Duration::from_millis(10)).unwrap(), None);
    child.kill().unwrap();
    match child.join() {
        Err(ProcessError::NoResult { status, .. }) => {
            assert_eq!(status, ExitStatus::Signal(libc::SIGKILL))
        }
        other => panic!("expected NoResult, got {other:?}"),
    }
}
