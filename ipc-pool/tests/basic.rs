//! The pool's operations across real worker processes.

use multiproc_core::process::{init, test_exec_args};
use multiproc_pool::{Pool, PoolError, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

fn pool(test: &str, workers: usize) -> Pool {
    Pool::builder()
        .workers(workers)
        .exec_args(test_exec_args(test))
        .build()
        .expect("pool starts")
}

#[test]
fn map_of_100k_items_matches_the_sequential_result_in_order() {
    init();
    let p = pool(
        "map_of_100k_items_matches_the_sequential_result_in_order",
        2,
    );
    let input: Vec<u64> = (0..100_000).collect();
    let expected: Vec<u64> = input.iter().map(|&x| square(x)).collect();
    assert_eq!(p.map(square, input.clone()).unwrap(), expected);
    assert_eq!(p.map_chunked(square, input, 1).unwrap(), expected);
}

#[test]
fn fork_workers_map_too() {
    // SAFETY: the workers run `square`, which touches no lock of the
    // harness's other threads.
    let p = unsafe { Pool::builder().workers(2).fork_workers() }
        .build()
        .unwrap();
    assert_eq!(
        p.map(square, 0..1000u64).unwrap(),
        (0..1000u64).map(square).collect::<Vec<_>>()
    );
}

fn panics_on_7(x: u64) -> u64 {
    assert_ne!(x, 7, "seven is not allowed");
    x
}

#[test]
fn a_panicking_task_fails_alone() {
    init();
    let p = pool("a_panicking_task_fails_alone", 2);
    let r = p.map_results(panics_on_7, 0..20u64, Some(3)).unwrap();
    for (i, v) in r.iter().enumerate() {
        if i == 7 {
            assert!(
                matches!(v, Err(TaskError::Panicked { message }) if message.contains("seven")),
                "{v:?}"
            );
        } else {
            assert_eq!(v.as_ref().unwrap(), &(i as u64));
        }
    }
    match p.map(panics_on_7, 0..20u64) {
        Err(PoolError::Task {
            index: 7,
            error: TaskError::Panicked { .. },
        }) => {}
        other => panic!("expected task 7 to fail, got {other:?}"),
    }
    // The pool keeps serving.
    assert_eq!(p.apply(square, 9).unwrap(), 81);
}

static INITIALIZED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn mark_initialized() {
    INITIALIZED.store(true, std::sync::atomic::Ordering::Release);
}

fn was_initialized(_: u64) -> bool {
    INITIALIZED.load(std::sync::atomic::Ordering::Acquire)
}

#[test]
fn the_initializer_runs_in_every_worker_before_tasks() {
    init();
    let p = Pool::builder()
        .workers(2)
        .initializer(mark_initialized)
        .exec_args(test_exec_args(
            "the_initializer_runs_in_every_worker_before_tasks",
        ))
        .build()
        .unwrap();
    assert!(p
        .map_chunked(was_initialized, 0..200u64, 1)
        .unwrap()
        .into_iter()
        .all(|b| b));
    assert!(
        !INITIALIZED.load(std::sync::atomic::Ordering::Acquire),
        "it ran in the workers, not here"
    );
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[test]
fn imap_over_10_million_items_keeps_memory_flat() {
    init();
    let p = pool("imap_over_10_million_items_keeps_memory_flat", 2);
    let n: u64 = std::env::var("IPC_POOL_IMAP_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let mut sum = 0u64;
    let mut count = 0u64;
    let mut peak_growth = 0u64;
    let base = rss_kib();
    for (i, r) in p.imap(square, 0..n, 1000).unwrap().enumerate() {
        let v = r.unwrap();
        assert_eq!(v, (i as u64) * (i as u64), "in order");
        sum = sum.wrapping_add(v);
        count += 1;
        if i % 1_000_000 == 0 {
            peak_growth = peak_growth.max(rss_kib().saturating_sub(base));
        }
    }
    assert_eq!(count, n);
    assert_eq!(sum, (0..n).map(square).fold(0u64, u64::wrapping_add));
    // A bounded window of chunks is in flight; the input (80 MB as u64s)
    // never is. Allow generous slack for the allocator.
    assert!(
        peak_growth < 64 * 1024,
        "resident memory grew by {peak_growth} KiB"
    );
}

#[test]
fn imap_unordered_returns_each_item_exactly_once() {
    init();
    let p = pool("imap_unordered_returns_each_item_exactly_once", 2);
    let mut got: Vec<u64> = p
        .imap_unordered(square, 0..20_000u64, 7)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..20_000u64).map(square).collect::<Vec<_>>());
}

fn add(a: u64, b: u32) -> u64 {
    a + u64::from(b)
}

fn add3(a: u64, b: u64, c: u64) -> u64 {
    a + b + c
}

fn describe(x: u32) -> String {
    format!("item {x}")
}

#[test]
fn starmap_apply_async_callbacks_and_progress() {
    init();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d2 = std::sync::Arc::clone(&done);
    let p = Pool::builder()
        .workers(2)
        .on_progress(move |pr| {
            d2.store(pr.done, std::sync::atomic::Ordering::Relaxed);
        })
        .exec_args(test_exec_args("starmap_apply_async_callbacks_and_progress"))
        .build()
        .unwrap();
    assert_eq!(
        p.starmap(add, vec![(1u64, 2u32), (3, 4)]).unwrap(),
        vec![3, 7]
    );
    assert_eq!(p.starmap3(add3, vec![(1u64, 2u64, 3u64)]).unwrap(), vec![6]);
    assert_eq!(
        p.map(describe, [1u32, 2]).unwrap(),
        vec!["item 1".to_owned(), "item 2".to_owned()]
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let h = p
        .apply_async_with(square, 12, move |r| tx.send(r).unwrap())
        .unwrap();
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap(),
        Ok(144)
    );
    assert_eq!(h.get().unwrap(), 144);
    assert_eq!(h.successful(), Some(true));
    assert!(h.ready());
    let m = p.map_async(square, 0..10u64, Some(2)).unwrap();
    assert_eq!(
        m.get_timeout(std::time::Duration::from_secs(30))
            .unwrap()
            .len(),
        10
    );
    let pr = p.progress();
    assert_eq!(pr.done, pr.total);
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), pr.done);
}

fn big_output(n: u32) -> Vec<u8> {
    vec![7; n as usize]
}

fn length(v: Vec<u8>) -> usize {
    v.len()
}

#[test]
fn bad_input_is_a_typed_error() {
    init();
    assert!(matches!(
        Pool::builder().workers(0).build(),
        Err(PoolError::ZeroWorkers)
    ));
    let mut p = Pool::builder()
        .workers(1)
        .ring_bytes(64 * 1024)
        .exec_args(test_exec_args("bad_input_is_a_typed_error"))
        .build()
        .unwrap();
    assert!(matches!(
        p.map_chunked(square, 0..3u64, 0),
        Err(PoolError::ZeroChunksize)
    ));
    assert!(matches!(
        p.imap(square, 0..3u64, 0),
        Err(PoolError::ZeroChunksize)
    ));
    match p.apply(length, vec![0u8; 1 << 20]) {
        Err(PoolError::MessageTooLarge { len, limit }) => {
            assert!(len > limit && limit == p.max_message())
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    match p.apply(big_output, 1 << 20) {
        Err(PoolError::Task {
            error: TaskError::OutputTooLarge { len, limit },
            ..
        }) => assert!(len > limit),
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
    assert_eq!(
        p.apply(length, vec![1u8; 1000]).unwrap(),
        1000,
        "the pool still serves"
    );
    p.close();
    assert!(matches!(p.apply(square, 1), Err(PoolError::Closed)));
    p.join();
}

#[test]
fn a_panicking_callback_or_progress_hook_does_not_stop_the_pool() {
    init();
    let p = Pool::builder()
        .workers(1)
        .on_progress(|_| panic!("progress hook fails on purpose"))
        .exec_args(test_exec_args(
            "a_panicking_callback_or_progress_hook_does_not_stop_the_pool",
        ))
        .build()
        .unwrap();
    let h = p
        .apply_async_with(square, 3, |_| panic!("callback fails on purpose"))
        .unwrap();
    assert_eq!(h.get().unwrap(), 9);
    assert_eq!(p.map(square, 0..10u64).unwrap().len(), 10);
}

#[test]
fn a_capturing_closure_runs_in_forked_workers() {
    let table: Vec<u64> = (0..100).map(|x| x * 3).collect();
    let salt = String::from("captured");
    // SAFETY: the closure reads what it captured; it touches no lock of the
    // harness's other threads.
    let mut p = unsafe {
        Pool::builder()
            .workers(2)
            .build_with(move |i: u64| (table[i as usize], salt.len() as u64))
    }
    .unwrap();
    let out = p.map(0..100u64).unwrap();
    assert!(out
        .iter()
        .enumerate()
        .all(|(i, &(v, l))| v == 3 * i as u64 && l == 8));
    assert_eq!(p.apply(7).unwrap(), (21, 8));
    let lazy: Vec<(u64, u64)> = p.imap(0..10u64, 3).unwrap().map(Result::unwrap).collect();
    assert_eq!(lazy.len(), 10);
    assert_eq!(p.map_results(0..3u64, Some(1)).unwrap().len(), 3);
    p.pool_mut().join();
}

fn total_len(v: Vec<u8>) -> u64 {
    v.len() as u64
}

#[test]
fn a_default_map_cuts_large_inputs_into_chunks_that_fit() {
    init();
    let p = Pool::builder()
        .workers(2)
        .ring_bytes(64 * 1024)
        .exec_args(test_exec_args(
            "a_default_map_cuts_large_inputs_into_chunks_that_fit",
        ))
        .build()
        .unwrap();
    // 400 inputs of 10 KB: 4 MB, far more than one ring message, and the
    // default chunksize (400 / 8 = 50 inputs, 500 KB) would not fit either.
    let inputs: Vec<Vec<u8>> = (0..400).map(|i| vec![i as u8; 10_000]).collect();
    assert_eq!(
        p.map(total_len, inputs.clone()).unwrap(),
        vec![10_000u64; 400]
    );
    // An explicit chunksize is taken as given, and refused when it cannot fit.
    assert!(matches!(
        p.map_chunked(total_len, inputs, 50),
        Err(PoolError::MessageTooLarge { .. })
    ));
}

fn busy_ms(ms: u64) -> u32 {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    while std::time::Instant::now() < end {
        std::hint::spin_loop();
    }
    std::process::id()
}

#[test]
fn long_chunks_after_tiny_tasks_are_spread_over_every_worker() {
    init();
    let p = pool(
        "long_chunks_after_tiny_tasks_are_spread_over_every_worker",
        2,
    );
    // Thousands of tiny tasks teach the dispatcher that chunks are quick...
    p.map_chunked(square, 0..20_000u64, 1).unwrap();
    // ...then eight long chunks must still go to both workers, not all to one.
    let pids: std::collections::HashSet<u32> = p
        .map_chunked(busy_ms, vec![30u64; 8], 1)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(pids.len(), 2, "every chunk ran on one worker");
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    symbol: String,
    tags: Vec<String>,
}

fn tag_order(mut o: Order) -> Order {
    o.tags.push(format!("seen-{}", o.id));
    o
}

fn greet(name: String, times: u32) -> String {
    format!("hello {name}").repeat(times as usize)
}

#[test]
fn serde_values_cross_spawned_workers() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .exec_args(test_exec_args("serde_values_cross_spawned_workers"))
        .build()
        .unwrap();
    let orders: Vec<Order> = (0..20)
        .map(|i| Order {
            id: i,
            symbol: format!("S{i}"),
            tags: vec!["new".into()],
        })
        .collect();
    let out = pool.map(tag_order, orders.clone()).unwrap();
    for (o, back) in orders.iter().zip(&out) {
        assert_eq!(back.tags, vec!["new".to_string(), format!("seen-{}", o.id)]);
        assert_eq!(back.symbol, o.symbol);
    }
    let words = pool
        .starmap(greet, vec![("a".to_string(), 2u32), ("b".to_string(), 1)])
        .unwrap();
    assert_eq!(words, vec!["hello ahello a", "hello b"]);
    let lists = pool
        .map(
            |v: Vec<String>| v.join("+"),
            vec![vec!["x".to_string(), "y".to_string()]],
        )
        .unwrap();
    assert_eq!(lists, vec!["x+y"]);
    // Plain-old-data through Pod, copied as its bytes.
    let pods = pool
        .map(
            |p: multiproc_pool::Pod<[u32; 4]>| p.0.iter().sum::<u32>(),
            [multiproc_pool::Pod([1, 2, 3, 4])],
        )
        .unwrap();
    assert_eq!(pods, vec![10]);
}

#[test]
fn forkserver_workers_map() {
    init();
    let pool = Pool::builder()
        .workers(2)
        .forkserver_workers()
        .exec_args(test_exec_args("forkserver_workers_map"))
        .build()
        .unwrap();
    assert_eq!(
        pool.map(square, 0..500u64).unwrap(),
        (0..500u64).map(square).collect::<Vec<_>>()
    );
}
