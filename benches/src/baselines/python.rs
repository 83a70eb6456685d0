//! Python's `multiprocessing`, measured by small scripts run through
//! `python3` (when it is installed) with a time limit. Each script pins
//! itself like the harness does, times every sample with
//! `time.perf_counter_ns`, and prints one line `samples v1 v2 ...`; the
//! harness records the values in the same HDR histograms as its own.

use crate::outcome::{Latency, Outcome};
use crate::runner::{Ctx, Mode};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Shared prelude: arguments (cores, warm-up and sample counts, the time
/// budget in ns after which sampling stops early), pinning, the sampling
/// loop and output.
const PRELUDE: &str = r#"
import os, sys, time, multiprocessing as mp
A, B, WARM, N, BUDGET = (int(x) for x in sys.argv[1:6])
ns = time.perf_counter_ns
def pin(core):
    try:
        os.sched_setaffinity(0, {core})
    except OSError as e:
        sys.exit("cannot pin to core %d: %s" % (core, e))
def pin_both():
    try:
        os.sched_setaffinity(0, {A, B})
    except OSError as e:
        sys.exit("cannot use cores %d,%d: %s" % (A, B, e))
def sample(step, check=None, after=None, per=1):
    # Times step(i) for WARM + N rounds; check(i, r) must hold for its
    # result r, after(r) runs untimed. Returns the samples past the warm-up,
    # each divided by per; fewer once BUDGET ns have passed (at least 10).
    out, stop = [], None
    for i in range(WARM + N):
        if i == WARM:
            stop = ns() + BUDGET
        t0 = ns()
        r = step(i)
        t1 = ns()
        if after is not None:
            after(r)
        if check is not None and not check(i, r):
            sys.exit("wrong answer")
        if i >= WARM:
            out.append((t1 - t0) / per)
            if len(out) >= 10 and ns() > stop:
                break
    return out
def emit(values):
    print("samples", *values)
"#;

/// `Connection.send_bytes` / `recv_bytes` round trips of 8 bytes over
/// `multiprocessing.Pipe()`.
const PIPE_RTT: &str = r#"
def child(conn, rounds):
    pin(B)
    for _ in range(rounds):
        v = int.from_bytes(conn.recv_bytes(), "little")
        conn.send_bytes((v + 1).to_bytes(8, "little"))
if __name__ == "__main__":
    pin(A)
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=child, args=(b, WARM + N))
    p.start()
    def step(i):
        a.send_bytes(i.to_bytes(8, "little"))
        return int.from_bytes(a.recv_bytes(), "little")
    out = sample(step, lambda i, r: r == i + 1)
    p.terminate()
    p.join()
    emit(out)
"#;

/// `Queue.put` / `Queue.get` round trips of an int over two
/// `multiprocessing.Queue`s.
const QUEUE_RTT: &str = r#"
def child(qin, qout, rounds):
    pin(B)
    for _ in range(rounds):
        qout.put(qin.get() + 1)
if __name__ == "__main__":
    pin(A)
    ctx = mp.get_context("fork")
    q1, q2 = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=child, args=(q1, q2, WARM + N))
    p.start()
    def step(i):
        q1.put(i)
        return q2.get()
    out = sample(step, lambda i, r: r == i + 1)
    p.terminate()
    p.join()
    emit(out)
"#;

/// Uncontended `Lock.acquire()` + `release()`: N batches of 1000, the
/// per-pair cost of each batch.
const LOCK: &str = r#"
if __name__ == "__main__":
    pin(A)
    lock = mp.get_context("fork").Lock()
    acq, rel = lock.acquire, lock.release
    def step(_):
        for _ in range(1000):
            acq()
            rel()
    emit(sample(step, per=1000))
"#;

/// Per-task cost of `Pool(2).map` over a trivial function; argv[6] is the
/// chunksize (0: the default), argv[7] the tasks per map. N maps are timed
/// (fewer if the budget runs out).
const POOL: &str = r#"
def f(x):
    return x + 1
if __name__ == "__main__":
    chunk, tasks = int(sys.argv[6]), int(sys.argv[7])
    kw = {"chunksize": chunk} if chunk > 0 else {}
    pin_both()
    with mp.get_context("fork").Pool(2) as pool:
        for _ in range(WARM):
            pool.map(f, range(tasks // 4 + 1), **kw)
        out = []
        stop = ns() + BUDGET
        for _ in range(N):
            if out and ns() > stop:
                break
            t0 = ns()
            r = pool.map(f, range(tasks), **kw)
            t1 = ns()
            if r[-1] != tasks or len(r) != tasks:
                sys.exit("wrong results")
            out.append((t1 - t0) / tasks)
    emit(out)
"#;

/// Starting `Pool(2)` (fork context, Python's default on Linux) until its
/// first `apply` has answered; the pool is then closed and joined, untimed.
const POOL_START: &str = r#"
def f(x):
    return x + 1
if __name__ == "__main__":
    pin_both()
    ctx = mp.get_context("fork")
    def step(_):
        pool = ctx.Pool(2)
        return pool, pool.apply(f, (41,))
    def after(r):
        r[0].close()
        r[0].join()
    emit(sample(step, lambda i, r: r[1] == 42, after))
"#;

/// Scales a quick-suite count of a Python measurement to the mode (Python
/// runs are slower than the harness's own, so `--full` multiplies by 5).
fn scale(ctx: &Ctx, quick: u64) -> u64 {
    match ctx.mode {
        Mode::Quick => quick,
        Mode::Full => quick * 5,
        Mode::Smoke => (quick / 50).max(20),
    }
}

/// How many timed maps the pool measurements make (Python's and
/// `ipc-pool`'s alike); each gives one sample, its per-task cost.
pub const POOL_MAPS: u64 = 5;

/// Tasks per map of the pool measurements: 2 000 with chunksize 1, 50 000
/// with the default chunksize (in the quick suite). The `ipc-pool` figures
/// use the same counts, so the two pools do the same work.
pub fn pool_tasks(ctx: &Ctx, default_chunksize: bool) -> u64 {
    scale(ctx, if default_chunksize { 50_000 } else { 2_000 })
}

/// Which Python measurement to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PyBench {
    /// `baseline.python.pipe.rtt`
    PipeRtt,
    /// `baseline.python.queue.rtt`
    QueueRtt,
    /// `baseline.python.lock`
    Lock,
    /// `baseline.python.pool.task` (chunksize 1)
    PoolTask,
    /// `baseline.python.pool.task.default` (default chunksize)
    PoolTaskDefault,
    /// `baseline.python.pool.startup` (`Pool(2)` until its first `apply`)
    PoolStartup,
}

/// Whether `python3` with `multiprocessing` can run here; the reason if not.
pub fn availability() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import multiprocessing, os; os.sched_getaffinity(0)"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err("python3 is present but its multiprocessing module does not load".into()),
        Err(_) => Err("python3 is not installed".into()),
    }
}

/// Runs one Python measurement; skipped (with the reason) when `python3` or
/// its `multiprocessing` is missing.
///
/// # Errors
/// The script failing or timing out, or unparsable output.
pub fn run(ctx: &Ctx, which: PyBench) -> Result<Outcome, String> {
    static AVAILABLE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(why) = AVAILABLE.get_or_init(availability) {
        return Ok(Outcome::Skipped(why.clone()));
    }
    let scale = |quick: u64| scale(ctx, quick);
    let (script, warm, n, extra, per_ns): (&str, u64, u64, Vec<String>, f64) = match which {
        PyBench::PipeRtt => (PIPE_RTT, 500, scale(5_000), vec![], 1.0),
        PyBench::QueueRtt => (QUEUE_RTT, 200, scale(2_000), vec![], 1.0),
        PyBench::Lock => (LOCK, 50, scale(500), vec![], 1000.0),
        PyBench::PoolTask => {
            let tasks = pool_tasks(ctx, false);
            (
                POOL,
                1,
                POOL_MAPS,
                vec!["1".into(), tasks.to_string()],
                1000.0,
            )
        }
        PyBench::PoolStartup => (POOL_START, 1, scale(10), vec![], 1.0),
        PyBench::PoolTaskDefault => {
            let tasks = pool_tasks(ctx, true);
            (
                POOL,
                1,
                POOL_MAPS,
                vec!["0".into(), tasks.to_string()],
                1000.0,
            )
        }
    };
    let warm = if ctx.mode == Mode::Smoke {
        warm.min(5)
    } else {
        warm
    };
    let source = format!("{PRELUDE}{script}");
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(&source)
        .arg(ctx.cores.0.to_string())
        .arg(ctx.cores.1.to_string())
        .arg(warm.to_string())
        .arg(n.to_string())
        .arg(ctx.budget().as_nanos().to_string())
        .args(&extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_with_timeout(cmd, ctx.timeout)?;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("samples"))
        .ok_or_else(|| format!("python printed no samples: {:?}", out.trim()))?;
    let mut lat = Latency::new(per_ns);
    for v in line.split_whitespace() {
        let ns: f64 = v
            .parse()
            .map_err(|_| format!("python printed a bad number {v:?}"))?;
        lat.record_ns(ns);
    }
    if lat.samples() == 0 {
        return Err("python printed no samples".into());
    }
    Ok(Outcome::Latency(lat))
}

/// Runs `cmd`, kills it if it runs past `timeout`; returns its stdout.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<String, String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let start = Instant::now();
    // The output is small (tens of kilobytes at most); read it once the
    // script has exited, so the pipe never fills while we only poll.
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(format!("python3 ran longer than {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for python3: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let last = err.lines().last().unwrap_or("").to_owned();
        return Err(format!("python3 failed ({status}): {last}"));
    }
    Ok(out)
}
