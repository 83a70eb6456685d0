//! Python's `multiprocessing`, measured by small scripts run through
//! `python3` (when it is installed). Each script pins itself like the
//! harness does, sets up (starting its child process or pool), prints
//! `ready`, and then serves blocks: for each line `N` on its standard input
//! it runs a short untimed warm-up and N samples, timing each with
//! `time.perf_counter_ns`, and prints one line `samples v1 v2 ...`; the
//! harness records the values in the same HDR histograms as its own. Between
//! blocks the script sleeps in a read of its standard input, so it can take
//! turns with another measurement.

use crate::outcome::Latency;
use crate::runner::{Ctx, Mode, Pace};
use crate::side::{Block, BoxSide, NotMade, Side};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Shared prelude: arguments (cores, warm-up rounds per block), pinning,
/// the sampling loop and the block server.
const PRELUDE: &str = r#"
import os, sys, time, multiprocessing as mp
A, B, WARM = (int(x) for x in sys.argv[1:4])
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
def sample(n, step, check=None, after=None, per=1, warm=None):
    # Times step(i) for warm + n rounds; check(i, r) must hold for its
    # result r, after(r) runs untimed. Returns the n samples past the
    # warm-up, each divided by per.
    warm = WARM if warm is None else warm
    out = []
    for i in range(warm + n):
        t0 = ns()
        r = step(i)
        t1 = ns()
        if after is not None:
            after(r)
        if check is not None and not check(i, r):
            sys.exit("wrong answer")
        if i >= warm:
            out.append((t1 - t0) / per)
    return out
def serve(block):
    print("ready", flush=True)
    for line in sys.stdin:
        print("samples", *block(int(line)), flush=True)
"#;

/// `Connection.send_bytes` / `recv_bytes` round trips of 8 bytes over
/// `multiprocessing.Pipe()`.
const PIPE_RTT: &str = r#"
def child(conn):
    pin(B)
    while True:
        v = int.from_bytes(conn.recv_bytes(), "little")
        conn.send_bytes((v + 1).to_bytes(8, "little"))
if __name__ == "__main__":
    pin(A)
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=child, args=(b,), daemon=True)
    p.start()
    def step(i):
        a.send_bytes(i.to_bytes(8, "little"))
        return int.from_bytes(a.recv_bytes(), "little")
    serve(lambda n: sample(n, step, lambda i, r: r == i + 1))
    p.terminate()
    p.join()
"#;

/// `Queue.put` / `Queue.get` round trips of an int over two
/// `multiprocessing.Queue`s.
const QUEUE_RTT: &str = r#"
def child(qin, qout):
    pin(B)
    while True:
        qout.put(qin.get() + 1)
if __name__ == "__main__":
    pin(A)
    ctx = mp.get_context("fork")
    q1, q2 = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=child, args=(q1, q2), daemon=True)
    p.start()
    def step(i):
        q1.put(i)
        return q2.get()
    serve(lambda n: sample(n, step, lambda i, r: r == i + 1))
    p.terminate()
    p.join()
"#;

/// `Queue.put` / `Queue.get` round trips of a value the child puts back
/// unchanged, over two `multiprocessing.Queue`s; argv[4] says which value:
/// `string64` (a 64-character string) or `words4` (a list of four
/// 16-character strings), as the workspace's `Queue<String>` and
/// `Queue<Vec<String>>` rows send.
const QUEUE_ECHO: &str = r#"
def child(qin, qout):
    pin(B)
    while True:
        qout.put(qin.get())
if __name__ == "__main__":
    kind = sys.argv[4]
    pin(A)
    ctx = mp.get_context("fork")
    q1, q2 = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=child, args=(q1, q2), daemon=True)
    p.start()
    if kind == "string64":
        make = lambda i: "%064d" % i
    else:
        make = lambda i: ["%016d" % (i + k) for k in range(4)]
    def step(i):
        v = make(i)
        q1.put(v)
        return q2.get() == v
    serve(lambda n: sample(n, step, lambda i, r: r))
    p.terminate()
    p.join()
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
    serve(lambda n: sample(n, step, per=1000))
"#;

/// `d[k] = v` then `d[k]` through a `Manager().dict()` proxy (the manager's
/// server process and this one on the two cores): batches of 20 pairs,
/// the per-pair cost of each batch.
const MANAGER_DICT: &str = r#"
if __name__ == "__main__":
    pin_both()
    with mp.get_context("fork").Manager() as m:
        d = m.dict()
        def step(i):
            for k in range(20):
                d[k] = i
                if d[k] != i:
                    sys.exit("wrong answer")
        serve(lambda n: sample(n, step, per=20))
"#;

/// Per-task cost of `Pool(2).map` over a trivial function; argv[4] is the
/// chunksize (0: the default), argv[5] the tasks per map. A sample is one
/// map's time over its task count.
const POOL: &str = r#"
def f(x):
    return x + 1
if __name__ == "__main__":
    chunk, tasks = int(sys.argv[4]), int(sys.argv[5])
    kw = {"chunksize": chunk} if chunk > 0 else {}
    pin_both()
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(f, range(tasks // 4 + 1), **kw)
        def step(_):
            return pool.map(f, range(tasks), **kw)
        def ok(_, r):
            return len(r) == tasks and r[-1] == tasks
        serve(lambda n: sample(n, step, ok, per=tasks, warm=0))
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
    serve(lambda n: sample(n, step, lambda i, r: r[1] == 42, after, warm=0))
"#;

/// Tasks per map of the pool measurements: 2 000 with chunksize 1, 50 000
/// with the default chunksize (100 and 2 000 when smoke-testing). The
/// `multiproc-pool` figures use the same counts, so the two pools do the same
/// work.
pub fn pool_tasks(ctx: &Ctx, default_chunksize: bool) -> u64 {
    match (ctx.mode, default_chunksize) {
        (Mode::Smoke, false) => 100,
        (Mode::Smoke, true) => 2_000,
        (_, false) => 2_000,
        (_, true) => 50_000,
    }
}

/// Which Python measurement to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PyBench {
    /// `baseline.python.pipe.rtt`
    PipeRtt,
    /// `baseline.python.queue.rtt`
    QueueRtt,
    /// `baseline.python.queue.rtt.string64`
    QueueEchoString64,
    /// `baseline.python.queue.rtt.words4`
    QueueEchoWords4,
    /// `baseline.python.lock`
    Lock,
    /// `baseline.python.manager.dict.set_get`
    ManagerDict,
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

/// A Python measurement as a side: the script runs as long as the side,
/// one request per block.
pub struct PySide {
    which: PyBench,
    /// Samples per block.
    n: u64,
    /// Histogram units per ns of the samples (1000 for per-operation
    /// figures, which keep their decimals).
    per_ns: f64,
    child: Option<(Child, ChildStdin, ChildStdout)>,
    timeout: Duration,
}

/// The side measuring `which`; unavailable (a skipped row) without
/// `python3` or its `multiprocessing`.
///
/// # Errors
/// [`NotMade::Unavailable`] when `python3` cannot run the scripts.
pub fn side(ctx: &Ctx, which: PyBench) -> Result<BoxSide, NotMade> {
    static AVAILABLE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(why) = AVAILABLE.get_or_init(availability) {
        return Err(NotMade::Unavailable(why.clone()));
    }
    let (n, per_ns) = match which {
        PyBench::PipeRtt
        | PyBench::QueueRtt
        | PyBench::QueueEchoString64
        | PyBench::QueueEchoWords4 => (ctx.block(Pace::Python).1, 1.0),
        PyBench::Lock => (ctx.block(Pace::Op).1, 1000.0),
        PyBench::ManagerDict => (ctx.block(Pace::Python).1, 1000.0),
        PyBench::PoolTask | PyBench::PoolTaskDefault => (1, 1000.0),
        PyBench::PoolStartup => (1, 1.0),
    };
    Ok(Box::new(PySide {
        which,
        n,
        per_ns,
        child: None,
        timeout: ctx.timeout,
    }))
}

impl Side for PySide {
    fn start(&mut self, ctx: &Ctx) -> Result<(), String> {
        let (script, extra): (&str, Vec<String>) = match self.which {
            PyBench::PipeRtt => (PIPE_RTT, vec![]),
            PyBench::QueueRtt => (QUEUE_RTT, vec![]),
            PyBench::QueueEchoString64 => (QUEUE_ECHO, vec!["string64".into()]),
            PyBench::QueueEchoWords4 => (QUEUE_ECHO, vec!["words4".into()]),
            PyBench::Lock => (LOCK, vec![]),
            PyBench::ManagerDict => (MANAGER_DICT, vec![]),
            PyBench::PoolTask => (POOL, vec!["1".into(), pool_tasks(ctx, false).to_string()]),
            PyBench::PoolTaskDefault => (POOL, vec!["0".into(), pool_tasks(ctx, true).to_string()]),
            PyBench::PoolStartup => (POOL_START, vec![]),
        };
        let warm = ctx.block(Pace::Python).0;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(format!("{PRELUDE}{script}"))
            .arg(ctx.cores.0.to_string())
            .arg(ctx.cores.1.to_string())
            .arg(warm.to_string())
            .args(&extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("python3 without pipes".into());
        };
        self.child = Some((child, stdin, stdout));
        match self.read_line() {
            Ok(l) if l.trim() == "ready" => Ok(()),
            Ok(l) => Err(self.fail(format!("python printed {l:?} instead of ready"))),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn block(&mut self, _ctx: &Ctx) -> Result<Block, String> {
        let (_, stdin, _) = self.child.as_mut().ok_or("not started")?;
        writeln!(stdin, "{}", self.n)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to python3: {e}"))?;
        let line = self.read_line()?;
        let values = line
            .strip_prefix("samples")
            .ok_or_else(|| format!("python printed {:?}", line.trim()))?;
        let mut lat = Latency::new(self.per_ns);
        for v in values.split_whitespace() {
            let ns: f64 = v
                .parse()
                .map_err(|_| format!("python printed a bad number {v:?}"))?;
            lat.record_ns(ns);
        }
        if lat.samples() == 0 {
            return Err("python printed no samples".into());
        }
        Ok(Block::Latency(lat))
    }

    fn stop(&mut self) -> Result<(), String> {
        let Some((mut child, stdin, stdout)) = self.child.take() else {
            return Ok(());
        };
        drop(stdin);
        drop(stdout);
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => {
                    return Err(format!("python3 failed ({s}): {}", last_err(&mut child)))
                }
                Ok(None) if start.elapsed() > Duration::from_secs(10) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("python3 did not finish".into());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("waiting for python3: {e}")),
            }
        }
    }

    fn fail(&mut self, err: String) -> String {
        let Some((mut child, stdin, stdout)) = self.child.take() else {
            return err;
        };
        drop(stdin);
        drop(stdout);
        let _ = child.kill();
        let _ = child.wait();
        match last_err(&mut child) {
            e if e.is_empty() => err,
            e => format!("{err}: python3 said {e}"),
        }
    }
}

/// The last line python3 wrote to its standard error (after it exited).
fn last_err(child: &mut Child) -> String {
    use std::io::Read;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err.lines().last().unwrap_or("").to_owned()
}

impl PySide {
    /// One line of the script's output, waiting at most the run's timeout
    /// (`poll` on the pipe, so a hung script cannot hang the harness).
    fn read_line(&mut self) -> Result<String, String> {
        let (child, _, stdout) = self.child.as_mut().ok_or("not started")?;
        let deadline = Instant::now() + self.timeout;
        let mut line = Vec::new();
        let fd = stdout.as_raw_fd();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("python3 gave no answer within {:?}", self.timeout));
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(1000) as libc::c_int;
            // SAFETY: one valid pollfd, count 1.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r <= 0 {
                if let Ok(Some(s)) = child.try_wait() {
                    return Err(format!("python3 exited ({s})"));
                }
                continue;
            }
            // Reads up to a newline, in chunks of what is there.
            let mut buf = [0u8; 65_536];
            // SAFETY: `buf` is a writable buffer of the given length; the
            // descriptor is the child's stdout, open while `stdout` lives.
            let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if got == 0 {
                return Err(format!(
                    "python3 closed its output: {}",
                    child
                        .try_wait()
                        .ok()
                        .flatten()
                        .map_or_else(|| "still running".to_owned(), |s| s.to_string())
                ));
            }
            if got < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(format!("reading python3: {e}"));
            }
            line.extend_from_slice(&buf[..got as usize]);
            if line.ends_with(b"\n") {
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }
}
