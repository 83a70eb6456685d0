//! The supervisor: one thread in the parent that owns the workers. It hands
//! chunks to workers, collects their results, notices deaths and timeouts,
//! and replaces workers, so that no caller ever waits on a dead process.
//!
//! Per worker it keeps the chunks it sent and that are not answered yet, in
//! order. When a worker dies, the results it managed to send are collected
//! first; then the chunk its control slot says it was running is the victim
//! (failed, retried or fatal by policy), and the chunks queued behind it,
//! which it never started, go back to the front of the queue for another
//! worker.

use crate::control::{monotonic_ns, Control, READY};
use crate::error::{PoolError, TaskError};
use crate::job::{ChunkOutcome, Job};
use crate::link::ParentEnd;
use crate::protocol::{self, Frame, WorkerArgs, WorkerExit};
use crate::worker;
use multiproc_core::process::{ExitStatus, Process, StartMethod};
use multiproc_core::wait::{Backoff, Phase, WaitStrategy};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What happens to the task a worker was running when it died.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeathPolicy {
    /// The task fails with [`TaskError::WorkerDied`]; everything else goes
    /// on (the default).
    #[default]
    FailTask,
    /// The task runs again on another worker, up to this many times, then
    /// fails. (A task that timed out is not run again.)
    Retry(u32),
    /// The pool breaks: every outstanding task fails and new work is refused.
    BreakPool,
}

/// Progress of all the work submitted to a pool, in inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Inputs whose result (or error) is in.
    pub done: u64,
    /// Inputs submitted so far.
    pub total: u64,
}

/// A chunk of inputs, encoded as a complete task message.
pub(crate) struct Chunk {
    pub(crate) id: u64,
    pub(crate) job: Arc<Job>,
    pub(crate) index: usize,
    pub(crate) items: usize,
    pub(crate) message: Vec<u8>,
    pub(crate) attempts: u32,
}

type ProgressHook = Arc<dyn Fn(Progress) + Send + Sync>;

/// The pool's configuration, as the builder set it.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) method: StartMethod,
    pub(crate) initializer: Option<&'static multiproc_core::entry::EntryDescriptor<worker::Init>>,
    pub(crate) max_tasks_per_child: u64,
    pub(crate) ring_bytes: usize,
    pub(crate) policy: DeathPolicy,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_init_failures: u32,
    pub(crate) max_respawns_per_sec: u32,
    pub(crate) depth: usize,
    pub(crate) exec_args: Option<Vec<OsString>>,
    pub(crate) progress: Option<ProgressHook>,
}

/// State shared by the pool's handle and its supervisor.
pub(crate) struct Shared {
    pub(crate) control: Control,
    pub(crate) pending: Mutex<VecDeque<Chunk>>,
    pub(crate) closed: AtomicBool,
    pub(crate) terminate: AtomicBool,
    pub(crate) broken: Mutex<Option<TaskError>>,
    pub(crate) key: (u64, u64),
    pub(crate) next_chunk: AtomicU64,
    pub(crate) submitted: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) pids: Mutex<Vec<u32>>,
}

impl Shared {
    pub(crate) fn broken(&self) -> Option<TaskError> {
        self.broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues chunks for the supervisor and rings its doorbell.
    pub(crate) fn submit(&self, chunks: impl IntoIterator<Item = Chunk>) -> Result<(), PoolError> {
        match self.broken() {
            Some(TaskError::InitializerFailed { attempts, status }) => {
                return Err(PoolError::InitializerFailed { attempts, status })
            }
            Some(why) => return Err(PoolError::Broken(why.to_string())),
            None => {}
        }
        if self.closed.load(Ordering::Acquire) || self.terminate.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for c in chunks {
            self.submitted.fetch_add(c.items as u64, Ordering::Relaxed);
            q.push_back(c);
        }
        drop(q);
        self.control.head().doorbell.notify_all();
        Ok(())
    }
}

struct Worker {
    slot: usize,
    process: Process,
    link: ParentEnd,
    in_flight: VecDeque<Chunk>,
    dispatched: u64,
    timed_out: Option<u64>,
    /// When the last result came in, and a moving average of the time
    /// between results while the worker was busy: how long a chunk takes.
    last_result: Option<Instant>,
    chunk_ns: f64,
}

/// Work the supervisor tries to keep queued ahead of each worker.
const QUEUED_WORK_NS: f64 = 200_000.0;

impl Worker {
    /// How many chunks this worker may hold now, at most `limit`.
    fn depth(&self, limit: usize) -> usize {
        let limit = limit.max(1);
        if self.chunk_ns <= 0.0 {
            return limit.min(8);
        }
        ((QUEUED_WORK_NS / self.chunk_ns) as usize)
            .max(2)
            .min(limit)
    }
}

/// Starts worker `slot`.
fn start_worker(shared: &Arc<Shared>, cfg: &Config, slot: usize) -> Result<Worker, PoolError> {
    let (link, worker_fds) = ParentEnd::create(cfg.ring_bytes)?;
    let s = shared
        .control
        .slot(slot)
        .ok_or(PoolError::Broken("no such worker slot".into()))?;
    s.reset(0);
    let init = match cfg.initializer {
        Some(desc) => {
            let off = multiproc_core::entry::EntryRef::of(desc)
                .map_err(|e| PoolError::Process(e.into()))?
                .to_raw();
            Some((off, protocol::tag(shared.key, 0, off)))
        }
        None => None,
    };
    let args = WorkerArgs {
        slot: slot as u32,
        slots: cfg.workers as u32,
        key: shared.key,
        init,
        max_tasks: cfg.max_tasks_per_child,
        timed: cfg.task_timeout.is_some(),
    };
    let mut b = Process::builder()
        .name(format!("PoolWorker-{slot}"))
        .daemon(true);
    if let Some(a) = &cfg.exec_args {
        b = b.exec_args(a.clone());
    }
    let process = match cfg.method {
        StartMethod::Spawn | StartMethod::ForkServer => {
            let b = b
                .inherit_fd(shared.control.segment().fd())
                .inherit_fd(worker_fds.tasks.as_fd())
                .inherit_fd(worker_fds.results.as_fd());
            if cfg.method == StartMethod::ForkServer {
                b.forkserver(worker::spawn_entry, &args.encode())?
            } else {
                b.spawn(worker::spawn_entry, &args.encode())?
            }
        }
        StartMethod::Fork => {
            let shared2 = Arc::clone(shared);
            // SAFETY: forked workers are chosen with the `unsafe`
            // `PoolBuilder::fork_workers` (or `build_with`), whose caller
            // promised that the functions the workers run use nothing
            // another thread of this process may hold at the fork. The
            // worker loop itself only uses the rings and the control
            // segment, which belong to this pool, and allocates.
            unsafe {
                b.fork_unchecked(move || match crate::link::WorkerEnd::attach(worker_fds) {
                    Ok(link) => worker::worker_main(&args, &shared2.control, link),
                    Err(_) => WorkerExit::AttachFailed.code(),
                })?
            }
        }
    };
    s.pid.store(process.pid(), Ordering::Relaxed);
    Ok(Worker {
        slot,
        process,
        link,
        in_flight: VecDeque::new(),
        dispatched: 0,
        timed_out: None,
        last_result: None,
        chunk_ns: 0.0,
    })
}

/// The supervisor's loop. `started` receives the outcome of starting the
/// first workers.
pub(crate) fn run(
    shared: Arc<Shared>,
    cfg: Config,
    started: std::sync::mpsc::Sender<Result<usize, PoolError>>,
) {
    let mut workers: Vec<Option<Worker>> = Vec::with_capacity(cfg.workers);
    for slot in 0..cfg.workers {
        match start_worker(&shared, &cfg, slot) {
            Ok(w) => workers.push(Some(w)),
            Err(e) => {
                for w in workers.iter().flatten() {
                    let _ = w.process.kill();
                }
                let _ = started.send(Err(e));
                return;
            }
        }
    }
    publish_pids(&shared, &workers);
    let max_message = workers
        .iter()
        .flatten()
        .map(|w| w.link.max_message())
        .min()
        .unwrap_or(0);
    let _ = started.send(Ok(max_message));
    let mut sup = Supervisor {
        shared,
        cfg,
        workers,
        init_failures: 0,
        respawns: VecDeque::new(),
        rotate: 0,
    };
    // A bug here must not leave callers waiting for ever: break the pool,
    // which fails every outstanding task and kills the workers.
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sup.main_loop())) {
        let why = format!("the supervisor panicked: {}", worker::panic_message(&*p));
        sup.break_pool(TaskError::PoolBroken(why));
    }
}

fn publish_pids(shared: &Shared, workers: &[Option<Worker>]) {
    let pids = workers.iter().flatten().map(|w| w.process.pid()).collect();
    *shared.pids.lock().unwrap_or_else(|p| p.into_inner()) = pids;
}

struct Supervisor {
    shared: Arc<Shared>,
    cfg: Config,
    workers: Vec<Option<Worker>>,
    init_failures: u32,
    respawns: VecDeque<Instant>,
    rotate: usize,
}

impl Supervisor {
    fn main_loop(&mut self) {
        let mut last_check = Instant::now();
        let mut backoff = Backoff::new(WaitStrategy::ADAPTIVE);
        loop {
            if self.shared.terminate.load(Ordering::Acquire) {
                self.terminate_all(TaskError::Terminated);
                return;
            }
            let mut progress = self.collect();
            progress |= self.dispatch();
            // A death rings no doorbell: look for one every 2 ms (a waitpid
            // per worker), and before sleeping.
            if last_check.elapsed() >= Duration::from_millis(2) {
                self.check_workers();
                self.check_timeouts();
                last_check = Instant::now();
            }
            if self.shared.broken().is_some() {
                return;
            }
            if self.shared.closed.load(Ordering::Acquire) && self.idle() {
                self.shutdown_workers();
                return;
            }
            if progress {
                backoff.reset();
                continue;
            }
            if backoff.snooze() == Phase::Park {
                self.check_workers();
                self.check_timeouts();
                last_check = Instant::now();
                if self.shared.broken().is_some() {
                    return;
                }
                let busy = self
                    .workers
                    .iter()
                    .flatten()
                    .any(|w| !w.in_flight.is_empty());
                let poll = if busy {
                    Duration::from_millis(2)
                } else {
                    Duration::from_millis(20)
                };
                let doorbell = &self.shared.control.head().doorbell;
                let deadline = Instant::now() + poll;
                let workers = &mut self.workers;
                let shared = &self.shared;
                let limit = self.cfg.depth;
                let max_tasks = self.cfg.max_tasks_per_child;
                doorbell.wait(WaitStrategy::Blocking, Some(deadline), None, || {
                    // Pending work only counts if some worker has room for it:
                    // otherwise the supervisor would spin while workers compute.
                    let room = || {
                        workers.iter().flatten().any(|w| {
                            w.in_flight.len() < w.depth(limit)
                                && (max_tasks == 0 || w.dispatched < max_tasks)
                        })
                    };
                    let ready = shared.terminate.load(Ordering::Acquire)
                        || shared.closed.load(Ordering::Acquire)
                        || (!shared
                            .pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .is_empty()
                            && room())
                        || workers.iter_mut().flatten().any(|w| w.link.has_message());
                    ready.then_some(())
                });
                backoff.reset();
            }
        }
    }

    fn idle(&self) -> bool {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            && self
                .workers
                .iter()
                .flatten()
                .all(|w| w.in_flight.is_empty())
    }

    /// Takes every result the workers have sent.
    fn collect(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.workers.len() {
            any |= self.drain(i);
        }
        any
    }

    /// Takes every result worker `i` has sent; whether there was any. A
    /// malformed result or a corrupt ring gets the worker killed.
    fn drain(&mut self, i: usize) -> bool {
        let mut any = false;
        while let Some(w) = self.workers[i].as_mut() {
            // The body is copied once, out of the ring into the outcome.
            let limit = w.link.max_message();
            let msg = w.link.try_recv_with(|m| {
                Frame::read_result(m).map(|f| match f {
                    Frame::Outputs { chunk, body, .. } => {
                        (chunk, ChunkOutcome::Done(body.to_vec()))
                    }
                    Frame::DecodeFailed { chunk, reason, .. } => (
                        chunk,
                        ChunkOutcome::Failed(TaskError::Decode(reason.to_owned())),
                    ),
                    Frame::TooLarge { chunk, len, .. } => (
                        chunk,
                        ChunkOutcome::Failed(TaskError::OutputTooLarge {
                            len: usize::try_from(len).unwrap_or(usize::MAX),
                            limit,
                        }),
                    ),
                    Frame::Task { .. } | Frame::Shutdown => (
                        u64::MAX,
                        ChunkOutcome::Failed(TaskError::Decode(
                            "a task frame on the result ring".into(),
                        )),
                    ),
                })
            });
            match msg {
                Ok(Some(Ok((chunk, outcome)))) => {
                    any = true;
                    self.on_result(i, chunk, outcome);
                }
                Ok(None) => break,
                Ok(Some(Err(why))) => {
                    log::warn!("pool worker {i} sent a malformed result ({why}); killing it");
                    let _ = w.process.kill();
                    break;
                }
                Err(why) => {
                    log::warn!("pool worker {i}: {why}; killing it");
                    let _ = w.process.kill();
                    break;
                }
            }
        }
        any
    }

    fn on_result(&mut self, i: usize, id: u64, outcome: ChunkOutcome) {
        let Some(w) = self.workers[i].as_mut() else {
            return;
        };
        let Some(pos) = w.in_flight.iter().position(|c| c.id == id) else {
            log::warn!("pool worker {i} answered chunk {id} it does not hold");
            return;
        };
        let chunk = w.in_flight.remove(pos).expect("position is in range");
        let now = Instant::now();
        if let Some(last) = w.last_result {
            // Only gaps in which the worker was busy say how long a chunk takes.
            if !w.in_flight.is_empty() || w.chunk_ns == 0.0 {
                let gap = now.duration_since(last).as_nanos() as f64;
                w.chunk_ns = if w.chunk_ns == 0.0 {
                    gap
                } else {
                    0.8 * w.chunk_ns + 0.2 * gap
                };
            }
        }
        w.last_result = Some(now);
        self.finish(chunk, outcome);
    }

    fn finish(&self, chunk: Chunk, outcome: ChunkOutcome) {
        let items = chunk.items as u64;
        let done = self.shared.done.fetch_add(items, Ordering::Relaxed) + items;
        // Report progress before the result becomes visible, so a caller
        // that has its result has also seen it counted.
        if let Some(hook) = &self.cfg.progress {
            let p = Progress {
                done,
                total: self.shared.submitted.load(Ordering::Relaxed),
            };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(p))).is_err() {
                log::warn!("the pool's progress hook panicked");
            }
        }
        chunk.job.complete(chunk.index, outcome);
    }

    /// Hands pending chunks to workers with room.
    fn dispatch(&mut self) -> bool {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return false;
        }
        let n = self.workers.len();
        let limit = self.cfg.depth;
        let max_tasks = self.cfg.max_tasks_per_child;
        // One chunk per worker per pass, round-robin: chunks are spread over
        // the workers as evenly as their room allows, whatever the depth
        // estimate (a stale one, from earlier tiny tasks, must not hand a
        // whole map of long chunks to the first worker).
        let mut full = vec![false; n];
        let mut any = false;
        while !pending.is_empty() && full.iter().any(|f| !f) {
            for k in 0..n {
                let i = (self.rotate + k) % n;
                if full[i] {
                    continue;
                }
                let Some(w) = self.workers[i].as_mut() else {
                    full[i] = true;
                    continue;
                };
                if w.in_flight.len() >= w.depth(limit)
                    || (max_tasks != 0 && w.dispatched >= max_tasks)
                {
                    full[i] = true;
                    continue;
                }
                let Some(chunk) = pending.pop_front() else {
                    break;
                };
                match w.link.try_send(&chunk.message) {
                    Ok(true) => {
                        w.dispatched += 1;
                        w.in_flight.push_back(chunk);
                        any = true;
                    }
                    Ok(false) => {
                        pending.push_front(chunk);
                        full[i] = true;
                    }
                    Err(why) => {
                        pending.push_front(chunk);
                        full[i] = true;
                        log::warn!("pool worker {i}: {why}; killing it");
                        let _ = w.process.kill();
                    }
                }
            }
        }
        self.rotate = self.rotate.wrapping_add(1);
        any
    }

    /// Notices dead workers, settles their chunks and replaces them.
    fn check_workers(&mut self) {
        for i in 0..self.workers.len() {
            let Some(status) = self.workers[i]
                .as_ref()
                .and_then(|w| w.process.exit_status())
            else {
                if self.workers[i].is_none() {
                    self.respawn(i);
                }
                continue;
            };
            // Results it sent before dying are valid: take them first.
            self.drain(i);
            let Some(mut w) = self.workers[i].take() else {
                continue;
            };
            let slot = self.shared.control.slot(w.slot).expect("slot exists");
            let was_ready = slot.state.load(Ordering::Acquire) == READY;
            let current = slot.current.load(Ordering::Acquire);
            let pid = w.process.pid();
            let retired = self.cfg.max_tasks_per_child != 0
                && status == ExitStatus::Code(0)
                && slot.done.load(Ordering::Acquire) >= self.cfg.max_tasks_per_child;
            if !retired {
                log::warn!("pool worker {i} (pid {pid}) died: {status}");
            }
            let victim = (current != 0)
                .then(|| w.in_flight.iter().position(|c| c.id == current - 1))
                .flatten()
                .and_then(|p| w.in_flight.remove(p));
            // The rest never started: back to the front of the queue, in order.
            {
                let mut pending = self
                    .shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                while let Some(c) = w.in_flight.pop_back() {
                    pending.push_front(c);
                }
            }
            if let Some(chunk) = victim {
                let error = match w.timed_out {
                    Some(id) if id == chunk.id => TaskError::Timeout {
                        pid,
                        limit: self.cfg.task_timeout.unwrap_or_default(),
                    },
                    _ => TaskError::WorkerDied { pid, status },
                };
                self.settle_victim(chunk, error);
                if self.shared.broken().is_some() {
                    return;
                }
            }
            if was_ready || retired {
                self.init_failures = 0;
            } else if let Err(e @ multiproc_core::ProcessError::EntryNotRun { .. }) =
                w.process.join()
            {
                // Its program never ran the worker (no `init()` first in
                // `main`): every replacement would do the same.
                self.break_pool(TaskError::PoolBroken(e.to_string()));
                return;
            } else {
                self.init_failures += 1;
                if self.init_failures >= self.cfg.max_init_failures {
                    self.break_pool(TaskError::InitializerFailed {
                        attempts: self.init_failures,
                        status,
                    });
                    return;
                }
            }
            self.respawn(i);
        }
    }

    fn settle_victim(&mut self, mut chunk: Chunk, error: TaskError) {
        match self.cfg.policy {
            DeathPolicy::Retry(n)
                if chunk.attempts < n && !matches!(error, TaskError::Timeout { .. }) =>
            {
                chunk.attempts += 1;
                self.shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_front(chunk);
            }
            DeathPolicy::BreakPool => {
                let why = TaskError::PoolBroken(error.to_string());
                self.finish(chunk, ChunkOutcome::Failed(error));
                self.break_pool(why);
            }
            _ => self.finish(chunk, ChunkOutcome::Failed(error)),
        }
    }

    /// Starts a replacement in slot `i`, unless the respawn rate is spent.
    fn respawn(&mut self, i: usize) {
        let now = Instant::now();
        while self
            .respawns
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.respawns.pop_front();
        }
        if self.respawns.len() >= self.cfg.max_respawns_per_sec as usize {
            return; // tried again on a later check
        }
        self.respawns.push_back(now);
        match start_worker(&self.shared, &self.cfg, i) {
            Ok(w) => {
                log::info!("pool worker {i} replaced by pid {}", w.process.pid());
                self.workers[i] = Some(w);
                publish_pids(&self.shared, &self.workers);
            }
            Err(e) => log::warn!("pool worker {i} could not be replaced: {e}"),
        }
    }

    fn check_timeouts(&mut self) {
        let Some(limit) = self.cfg.task_timeout else {
            return;
        };
        let now = monotonic_ns();
        for w in self.workers.iter_mut().flatten() {
            let slot = self.shared.control.slot(w.slot).expect("slot exists");
            let current = slot.current.load(Ordering::Acquire);
            if current == 0 || w.timed_out.is_some() {
                continue;
            }
            let started = slot.started_ns.load(Ordering::Relaxed);
            if now.saturating_sub(started) > limit.as_nanos() as u64 {
                log::warn!(
                    "pool worker {} (pid {}) exceeded the task timeout; killing it",
                    w.slot,
                    w.process.pid()
                );
                w.timed_out = Some(current - 1);
                let _ = w.process.kill();
            }
        }
    }

    /// Fails everything outstanding with `error` and refuses new work.
    fn break_pool(&mut self, error: TaskError) {
        log::error!("pool broken: {error}");
        *self.shared.broken.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        self.terminate_all(error);
    }

    /// Kills every worker and fails everything outstanding with `error`.
    fn terminate_all(&mut self, error: TaskError) {
        for w in self.workers.iter().flatten() {
            let _ = w.process.kill();
        }
        let mut chunks: Vec<Chunk> = Vec::new();
        for w in self.workers.iter_mut().flatten() {
            let _ = w.process.join_timeout(Duration::from_secs(5));
            chunks.extend(w.in_flight.drain(..));
        }
        chunks.extend(
            self.shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..),
        );
        for c in chunks {
            self.finish(c, ChunkOutcome::Failed(error.clone()));
        }
        self.workers.clear();
    }

    /// Asks every worker to exit, waits for them, kills stragglers.
    fn shutdown_workers(&mut self) {
        let mut shutdown = Vec::new();
        Frame::Shutdown.write(&mut shutdown);
        for w in self.workers.iter_mut().flatten() {
            let _ = w.link.try_send(&shutdown);
        }
        for w in self.workers.iter().flatten() {
            if let Ok(None) = w.process.join_timeout(Duration::from_secs(5)) {
                let _ = w.process.kill();
                let _ = w.process.join();
            }
        }
        self.workers.clear();
    }
}
