//! A user's program: spawns processes and runs pools of spawned and forked
//! workers, with functions from this crate, from a library crate and
//! closures, and checks every result. Run by `downstream/run.sh` under
//! several build profiles; prints `downstream: all checks passed` and exits
//! 0 when every check holds.

use multiproc_core::process::{self, ExitStatus, Process};
use multiproc_core::ProcessError;
use multiproc_pool::Pool;
use std::sync::atomic::{AtomicU64, Ordering};

type Check = Result<(), String>;

fn exit_with_first(args: &[u8]) -> i32 {
    i32::from(args.first().copied().unwrap_or(0))
}

fn double(x: u64) -> u64 {
    2 * x
}

static OFFSET: AtomicU64 = AtomicU64::new(0);

fn set_offset() {
    OFFSET.store(1000, Ordering::Relaxed);
}

fn plus_offset(x: u64) -> u64 {
    x + OFFSET.load(Ordering::Relaxed)
}

fn expect_code(p: &Process, code: i32, what: &str) -> Check {
    match p.join() {
        Ok(ExitStatus::Code(c)) if c == code => Ok(()),
        other => Err(format!("{what}: expected exit code {code}, got {other:?}")),
    }
}

fn spawns() -> Check {
    let own = Process::builder()
        .spawn(exit_with_first, &[42])
        .map_err(|e| e.to_string())?;
    let lib = Process::builder()
        .spawn(downstream_lib::sum_entry, &[1, 2, 3])
        .map_err(|e| e.to_string())?;
    let from_lib = downstream_lib::spawn_sum(&[10, 20]).map_err(|e| e.to_string())?;
    let closure = Process::builder()
        .spawn(|args: &[u8]| args.len() as i32, b"four")
        .map_err(|e| e.to_string())?;
    expect_code(&own, 42, "entry of the application")?;
    expect_code(&lib, 6, "entry of the library")?;
    expect_code(&from_lib, 30, "entry spawned by the library")?;
    expect_code(&closure, 4, "closure entry")?;
    let served = Process::builder()
        .forkserver(downstream_lib::sum_entry, &[5, 6])
        .map_err(|e| e.to_string())?;
    expect_code(&served, 11, "entry of the library by the fork server")?;
    let typed = Process::start(downstream_lib::repeat, ("ab".to_string(), 3u32))
        .map_err(|e| e.to_string())?;
    match typed.join() {
        Ok((s, 6)) if s == "ababab" => {}
        other => return Err(format!("typed child of the library: {other:?}")),
    }
    let typed = Process::start(|v: Vec<u64>| v.iter().sum::<u64>(), vec![1u64, 2, 3])
        .map_err(|e| e.to_string())?;
    match typed.join() {
        Ok(6) => Ok(()),
        other => Err(format!("typed closure child: {other:?}")),
    }
}

fn pool_checks(pool: &Pool, how: &str) -> Check {
    let want: Vec<u64> = (0..50).map(|x| 2 * x).collect();
    let got = pool.map(double, 0..50u64).map_err(|e| format!("{how} map: {e}"))?;
    if got != want {
        return Err(format!("{how} map(double) gave {got:?}"));
    }
    let got = pool
        .map_chunked(downstream_lib::cube, 0..20u64, 1)
        .map_err(|e| format!("{how} map: {e}"))?;
    if got != (0..20u64).map(|x| x * x * x).collect::<Vec<_>>() {
        return Err(format!("{how} map(cube) gave {got:?}"));
    }
    let got = pool
        .map(|x: u64| x + 7, 0..5u64)
        .map_err(|e| format!("{how} map: {e}"))?;
    if got != vec![7, 8, 9, 10, 11] {
        return Err(format!("{how} map(closure) gave {got:?}"));
    }
    let got = pool
        .starmap(downstream_lib::pair_sum::<u64>, vec![(1u64, 2u64), (3, 4)])
        .map_err(|e| format!("{how} starmap: {e}"))?;
    if got != vec![3, 7] {
        return Err(format!("{how} starmap gave {got:?}"));
    }
    let got = pool
        .apply(plus_offset, 5u64)
        .map_err(|e| format!("{how} apply: {e}"))?;
    if got != 1005 {
        return Err(format!("{how}: the initializer did not run (apply gave {got})"));
    }
    Ok(())
}

fn pools() -> Check {
    let pool = Pool::builder()
        .workers(2)
        .initializer(set_offset)
        .build()
        .map_err(|e| format!("spawned pool: {e}"))?;
    pool_checks(&pool, "spawned pool")?;
    drop(pool);
    // SAFETY: the workers run the pure functions above and the initializer,
    // which stores to an atomic; none takes a lock.
    let pool = unsafe { Pool::builder().workers(2).fork_workers() }
        .initializer(set_offset)
        .build()
        .map_err(|e| format!("forked pool: {e}"))?;
    pool_checks(&pool, "forked pool")?;
    drop(pool);
    let pool = Pool::builder()
        .workers(2)
        .forkserver_workers()
        .initializer(set_offset)
        .build()
        .map_err(|e| format!("fork server pool: {e}"))?;
    pool_checks(&pool, "fork server pool")?;
    drop(pool);
    let table: Vec<u64> = (0..10).map(|x| x * 11).collect();
    // SAFETY: the closure reads what it captured; it takes no lock.
    let fn_pool = unsafe {
        Pool::builder()
            .workers(2)
            .build_with(move |i: u64| table[i as usize])
    }
    .map_err(|e| format!("closure pool: {e}"))?;
    let got = fn_pool.map(0..10u64).map_err(|e| e.to_string())?;
    if got != (0..10).map(|x| x * 11).collect::<Vec<u64>>() {
        return Err(format!("closure pool gave {got:?}"));
    }
    Ok(())
}

/// This program, run with `args` and `env`; returns its exit status and
/// stderr.
fn run_self(args: &[&str], env: Option<(&str, &str)>) -> Result<(Option<i32>, String), String> {
    let mut cmd = std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.args(args);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn forged_tokens() -> Check {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe").map_err(|e| e.to_string())?;
    for token in [
        format!("1;deadbeef;{:x};{:x};0;;;1;", exe.dev(), exe.ino()),
        "2:0:00000000000000000000000000000000".to_owned(),
        "2:3:0123456789abcdef0123456789abcdef".to_owned(),
    ] {
        let (code, stderr) = run_self(&[], Some((process::SPAWN_ENV, &token)))?;
        if code != Some(process::EXIT_BAD_TOKEN) {
            return Err(format!(
                "forged token {token:?}: expected exit code {}, got {code:?} ({stderr})",
                process::EXIT_BAD_TOKEN
            ));
        }
    }
    Ok(())
}

fn missing_init() -> Check {
    let child = Process::builder()
        .exec_args(["skip-init"])
        .spawn(exit_with_first, &[0])
        .map_err(|e| e.to_string())?;
    match child.join() {
        Err(ProcessError::EntryNotRun {
            status: ExitStatus::Code(c),
            ..
        }) if c == process::EXIT_NO_INIT => Ok(()),
        other => Err(format!("a child without init: expected EntryNotRun, got {other:?}")),
    }
}

/// `main` of a spawned child that forgot `init`: it runs the program from
/// the top, which would spawn again.
fn without_init() {
    match Process::builder().spawn(exit_with_first, &[1]) {
        Err(ProcessError::NotInitialized) => {}
        // SAFETY: leaving at once with a code the parent does not expect.
        _ => unsafe { libc_exit(3) },
    }
}

extern "C" {
    #[link_name = "_exit"]
    fn libc_exit(code: i32) -> !;
}

fn checked_fork() -> Check {
    // Single-threaded here: the checked fork accepts.
    let child = Process::builder()
        .fork(|| 9)
        .map_err(|e| format!("fork in a single-threaded process: {e}"))?;
    expect_code(&child, 9, "forked closure")?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || rx.recv());
    let refused = matches!(
        Process::builder().fork(|| 0),
        Err(ProcessError::MultiThreaded { .. })
    );
    drop(tx);
    let _ = t.join();
    if refused {
        Ok(())
    } else {
        Err("fork in a multi-threaded process was not refused".into())
    }
}

/// Queues, pipe ends and locks given to children, and a user's struct
/// through all of them and a pool.
fn handles() -> Check {
    use downstream_lib::{order, Order};
    use multiproc_queue::error::RecvError;
    use multiproc_queue::{pipe, Queue};
    let e = |e: &dyn std::fmt::Display| e.to_string();

    // The Python idiom over fork: the child's end moved into the closure,
    // the parent's copy dropped; nothing the child sends is lost.
    let (mut mine, theirs) = pipe().map_err(|x| e(&x))?;
    let child = Process::builder()
        .fork(move || {
            let mut end = theirs;
            std::thread::sleep(std::time::Duration::from_millis(100));
            end.send(&order(9)).map(|()| 0).unwrap_or(1)
        })
        .map_err(|x| e(&x))?;
    if mine.recv::<Order>().map_err(|x| e(&x))? != order(9) {
        return Err("fork idiom: another order came back".into());
    }
    expect_code(&child, 0, "forked sender")?;
    if mine.recv::<Order>() != Err(RecvError::Closed) {
        return Err("fork idiom: the end did not close after the child".into());
    }

    // A queue in a spawned child's arguments, and by the fork server.
    let q = Queue::<Order>::new(16).map_err(|x| e(&x))?;
    for method in [process::StartMethod::Spawn, process::StartMethod::ForkServer] {
        let child = Process::builder()
            .start_method(method)
            .start(downstream_lib::put_orders, (q.clone(), 5))
            .map_err(|x| e(&x))?;
        for id in 0..5 {
            if q.get().map_err(|x| e(&x))? != order(id) {
                return Err(format!("{method:?}: order {id} came back changed"));
            }
        }
        if child.join().map_err(|x| e(&x))? != 5 {
            return Err(format!("{method:?}: the child's return value"));
        }
    }

    // A pipe end in a spawned child's arguments.
    let (mut mine, theirs) = pipe().map_err(|x| e(&x))?;
    let child = Process::start(downstream_lib::reply, theirs).map_err(|x| e(&x))?;
    mine.send(&vec!["hello".to_string(), "world".to_string()])
        .map_err(|x| e(&x))?;
    if mine.recv::<String>().map_err(|x| e(&x))? != "hello world" {
        return Err("pipe end in the arguments: wrong answer".into());
    }
    if child.join().map_err(|x| e(&x))? != 2 {
        return Err("pipe end in the arguments: the child's return value".into());
    }

    // A lock in the arguments.
    let m = multiproc_sync::Mutex::anonymous(0u64).map_err(|x| e(&x))?;
    let child = Process::start(downstream_lib::bump, m.clone()).map_err(|x| e(&x))?;
    if child.join().map_err(|x| e(&x))? != Ok(1) {
        return Err("the child did not add under the lock".into());
    }

    // The struct through a pool.
    let pool = Pool::new(2).map_err(|x| e(&x))?;
    let got = pool
        .map(downstream_lib::leg_total, (0..6).map(order))
        .map_err(|x| e(&x))?;
    if got != (0..6).map(|id| 3 + id).collect::<Vec<u64>>() {
        return Err(format!("pool over orders gave {got:?}"));
    }
    Ok(())
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("skip-init") {
        without_init();
        return;
    }
    process::init();
    let checks: [(&str, fn() -> Check); 6] = [
        ("checked fork", checked_fork),
        ("handles in children", handles),
        ("spawn", spawns),
        ("pools", pools),
        ("forged tokens", forged_tokens),
        ("missing init", missing_init),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => println!("ok: {name}"),
            Err(e) => {
                println!("FAILED: {name}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
    println!("downstream: all checks passed");
}
