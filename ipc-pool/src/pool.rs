//! The pool: a builder, the operations of Python's `multiprocessing.Pool`,
//! and the handles they return.

use crate::control::Control;
use crate::error::{PoolError, TaskError};
use crate::job::{decode_outputs, Job, JobState, Wake};
use crate::protocol::{self, TaskHeader};
use crate::supervisor::{self, Chunk, Config, DeathPolicy, Progress, Shared};
use crate::wire::Wire;
use crate::worker::{self, Runner};
use ipc_core::entry::{EntryDescriptor, EntryRef};
use ipc_core::process::StartMethod;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A function to run in the workers: the descriptor of the runner made for
/// the user's function and its argument and result types, and (for an
/// `FnPool`'s closure only) the closure's address.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    pub(crate) runner: &'static EntryDescriptor<Runner>,
    pub(crate) func: usize,
}

impl Target {
    fn map<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(_: F) -> Target {
        Target {
            runner: worker::MapOf::<I, O, F>::DESC,
            func: 0,
        }
    }
}

/// How many inputs go into a chunk, and whether it also closes when its
/// encoding reaches half a ring message (the default chunk size does).
#[derive(Clone, Copy)]
struct Chunking {
    items: usize,
    cap_bytes: bool,
}

/// Bytes of each ring (one per direction per worker) unless set otherwise.
pub const DEFAULT_RING_BYTES: usize = 256 << 10;

/// Configures and starts a [`Pool`]. Obtained from [`Pool::builder`].
#[must_use]
pub struct PoolBuilder {
    cfg: Config,
}

impl PoolBuilder {
    /// The number of worker processes (default: [`ipc_core::cpu_count`]).
    pub fn workers(mut self, n: usize) -> Self {
        self.cfg.workers = n;
        self
    }

    /// Workers are forked copies of this process instead of spawned ones
    /// (the default re-executes the program, which needs
    /// `ipc_core::process::init()` first thing in `main`; see
    /// [`ipc_core::process`]). Forked workers start several times faster
    /// and need no `init`.
    ///
    /// # Safety
    /// Workers are forked from the pool's supervisor thread while the rest
    /// of the program runs, whenever one is started or replaced, so the
    /// rules of [`ipc_core::process::Builder::fork_unchecked`] apply to
    /// everything the workers run (the functions given to the pool and the
    /// initializer): they must not use a lock another thread of this
    /// process may hold at a fork (`std::sync` locks of the program,
    /// `println!` while another thread prints, a logger), nor a library that
    /// is not fork-safe. Pure computation, allocation and this workspace's
    /// shared-memory primitives are fine.
    pub unsafe fn fork_workers(mut self) -> Self {
        self.cfg.method = StartMethod::Fork;
        self
    }

    /// A function run once in every worker before it takes tasks: a
    /// function item or a closure that captures nothing (a capturing
    /// closure is refused when the program is compiled). If it panics, the
    /// worker exits; after [`max_init_failures`](Self::max_init_failures)
    /// fresh workers in a row fail it, the pool breaks with
    /// [`PoolError::InitializerFailed`] instead of respawning for ever.
    pub fn initializer<F: Fn() + Copy + 'static>(mut self, f: F) -> Self {
        let _ = f; // zero-sized: workers make their own from the type
        self.cfg.initializer = Some(worker::InitOf::<F>::DESC);
        self
    }

    /// Replace a worker after it has run this many chunks (0: never).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.cfg.max_tasks_per_child = n;
        self
    }

    /// Bytes of each ring between the parent and a worker (default 256 KiB;
    /// each worker has two, created when it starts). With the default
    /// chunksize, chunks are cut to fit; with an explicit one, a chunk whose
    /// encoded inputs exceed a ring message is refused with
    /// [`PoolError::MessageTooLarge`], and one whose outputs do fails with
    /// [`TaskError::OutputTooLarge`]. A message may take the whole ring
    /// less 8 bytes ([`Pool::max_message`]).
    pub fn ring_bytes(mut self, n: usize) -> Self {
        self.cfg.ring_bytes = n;
        self
    }

    /// What happens to a task whose worker dies (default:
    /// [`DeathPolicy::FailTask`]).
    pub fn on_worker_death(mut self, p: DeathPolicy) -> Self {
        self.cfg.policy = p;
        self
    }

    /// Kill and replace a worker whose chunk runs longer than this; the
    /// chunk fails with [`TaskError::Timeout`].
    pub fn task_timeout(mut self, d: Duration) -> Self {
        self.cfg.task_timeout = Some(d);
        self
    }

    /// How many fresh workers in a row may die before becoming ready
    /// (default 3) before the pool breaks.
    pub fn max_init_failures(mut self, n: u32) -> Self {
        self.cfg.max_init_failures = n.max(1);
        self
    }

    /// At most this many workers are replaced per second (default 20); more
    /// deaths wait for the next second.
    pub fn max_respawns_per_sec(mut self, n: u32) -> Self {
        self.cfg.max_respawns_per_sec = n.max(1);
        self
    }

    /// The most chunks handed to one worker ahead of its answers (default
    /// 64). The supervisor keeps about 200 us of work queued per worker
    /// (from how fast it answers), between 2 chunks and this limit: enough
    /// that a worker never waits for its next chunk, few enough that the
    /// last chunks of a long map are not stuck behind one worker.
    pub fn depth(mut self, n: usize) -> Self {
        self.cfg.depth = n.max(1);
        self
    }

    /// Arguments of the re-executed binary for spawned workers (see
    /// [`ipc_core::process::Builder::exec_args`]); in a test binary,
    /// `ipc_core::process::test_exec_args("the_test")`.
    pub fn exec_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.cfg.exec_args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Called on the supervisor thread each time a chunk completes, with
    /// the inputs done and submitted so far; keep it quick (a progress bar).
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.cfg.progress = Some(Arc::new(f));
        self
    }

    /// Starts forked workers bound to the closure `f`, which may capture
    /// anything: each worker is a copy of this process taken after `f`
    /// exists, so it runs `f` with what it captured. The start method is
    /// always fork (a spawned worker would not have the closure).
    ///
    /// ```
    /// let offset = 100u64; // captured
    /// // SAFETY: the closure only adds; it uses no lock another thread holds.
    /// let pool = unsafe { ipc_pool::Pool::builder().workers(2).build_with(move |x: u64| x + offset) }?;
    /// assert_eq!(pool.map(0..3u64)?, vec![100, 101, 102]);
    /// # Ok::<(), ipc_pool::PoolError>(())
    /// ```
    ///
    /// # Safety
    /// As [`fork_workers`](Self::fork_workers): `f` and the initializer run
    /// in copies of this process forked while its other threads run.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub unsafe fn build_with<I, O, F>(mut self, f: F) -> Result<crate::FnPool<I, O, F>, PoolError>
    where
        I: Wire,
        O: Wire,
        F: Fn(I) -> O + 'static,
    {
        let f = Box::new(f);
        self.cfg.method = StartMethod::Fork;
        let pool = self.build()?;
        Ok(crate::fn_pool::FnPool::new(pool, f))
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// [`PoolError::ZeroWorkers`], or the error of starting a worker or
    /// creating shared memory.
    pub fn build(self) -> Result<Pool, PoolError> {
        let cfg = self.cfg;
        if cfg.workers == 0 {
            return Err(PoolError::ZeroWorkers);
        }
        let control = Control::create(cfg.workers)?;
        let shared = Arc::new(Shared {
            control,
            pending: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            terminate: AtomicBool::new(false),
            broken: Mutex::new(None),
            key: protocol::random_key(),
            next_chunk: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            pids: Mutex::new(Vec::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, c2) = (Arc::clone(&shared), cfg.clone());
        let thread = std::thread::Builder::new()
            .name("ipc-pool-supervisor".into())
            .spawn(move || supervisor::run(s2, c2, tx))
            .map_err(|e| PoolError::Broken(format!("cannot start the supervisor thread: {e}")))?;
        let max_message = match rx.recv() {
            Ok(Ok(max)) => max,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(PoolError::Broken(
                    "the supervisor thread died while starting".into(),
                ));
            }
        };
        log::info!("pool started: {} workers ({:?})", cfg.workers, cfg.method);
        Ok(Pool {
            shared,
            supervisor: Some(thread),
            workers: cfg.workers,
            max_message,
        })
    }
}

/// A pool of worker processes. See the [crate docs](crate).
///
/// Dropping it terminates and reaps every worker; workers also die with the
/// parent process.
pub struct Pool {
    shared: Arc<Shared>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    workers: usize,
    max_message: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers)
            .field("pids", &self.worker_pids())
            .finish()
    }
}

/// Python's default chunk size for `map`: about len / (4 x workers).
pub fn default_chunksize(len: usize, workers: usize) -> usize {
    let per = workers.max(1) * 4;
    (len / per + usize::from(len % per != 0)).max(1)
}

impl Pool {
    /// A builder with the defaults.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            cfg: Config {
                workers: ipc_core::cpu_count(),
                method: StartMethod::Spawn,
                initializer: None,
                max_tasks_per_child: 0,
                ring_bytes: DEFAULT_RING_BYTES,
                policy: DeathPolicy::FailTask,
                task_timeout: None,
                max_init_failures: 3,
                max_respawns_per_sec: 20,
                depth: 64,
                exec_args: None,
                progress: None,
            },
        }
    }

    /// A pool of `workers` spawned workers, all else default.
    pub fn new(workers: usize) -> Result<Pool, PoolError> {
        Pool::builder().workers(workers).build()
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The pids of the current workers (they change as workers are replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Inputs done and submitted so far, over every call.
    pub fn progress(&self) -> Progress {
        Progress {
            done: self.shared.done.load(Ordering::Relaxed),
            total: self.shared.submitted.load(Ordering::Relaxed),
        }
    }

    /// The largest encoded chunk (inputs or outputs) a ring carries.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Encodes `items` into chunk messages of `chunksize` inputs each.
    fn chunks<I: Wire>(
        &self,
        job: &Arc<Job>,
        target: Target,
        first_index: usize,
        items: &mut dyn Iterator<Item = I>,
        size: Chunking,
        max_chunks: usize,
    ) -> Result<Vec<(Chunk, usize)>, PoolError> {
        let chunksize = size.items;
        // A default-sized chunk also closes at half a ring message, so a
        // default map of large inputs never meets MessageTooLarge.
        let byte_cap = if size.cap_bytes {
            self.max_message / 2
        } else {
            usize::MAX
        };
        let runner_off = EntryRef::of(target.runner)
            .map_err(|e| PoolError::Process(e.into()))?
            .to_raw();
        let func_off = target.func as u64;
        let tag = protocol::tag(self.shared.key, runner_off, func_off);
        let mut out = Vec::new();
        let mut index = first_index;
        while out.len() < max_chunks {
            let guess = chunksize.saturating_mul(16).min(self.max_message);
            let mut message = Vec::with_capacity(protocol::TASK_HEADER + guess);
            message.resize(protocol::TASK_HEADER, 0);
            let mut count = 0u32;
            for x in (&mut *items).take(chunksize) {
                x.encode(&mut message);
                count += 1;
                if message.len() >= byte_cap {
                    break;
                }
            }
            if count == 0 {
                break;
            }
            if message.len() > self.max_message {
                return Err(PoolError::MessageTooLarge {
                    len: message.len(),
                    limit: self.max_message,
                });
            }
            let id = self.shared.next_chunk.fetch_add(1, Ordering::Relaxed);
            let mut header = Vec::with_capacity(protocol::TASK_HEADER);
            TaskHeader {
                chunk: id,
                runner: runner_off,
                func: func_off,
                tag,
                count,
                kind: protocol::TASK,
            }
            .write(&mut header);
            message[..protocol::TASK_HEADER].copy_from_slice(&header);
            let chunk = Chunk {
                id,
                job: Arc::clone(job),
                index,
                items: count as usize,
                message,
                attempts: 0,
            };
            out.push((chunk, count as usize));
            index += 1;
        }
        Ok(out)
    }

    fn submit_all<I: Wire>(
        &self,
        target: Target,
        items: Vec<I>,
        chunksize: Option<usize>,
    ) -> Result<(Arc<Job>, Vec<usize>), PoolError> {
        let (chunksize, default) = match chunksize {
            Some(0) => return Err(PoolError::ZeroChunksize),
            Some(c) => (c, false),
            None => (default_chunksize(items.len(), self.workers), true),
        };
        let job = Job::new();
        let chunks = self.chunks(
            &job,
            target,
            0,
            &mut items.into_iter(),
            Chunking {
                items: chunksize,
                cap_bytes: default,
            },
            usize::MAX,
        )?;
        let sizes = chunks.iter().map(|(_, n)| *n).collect();
        self.shared.submit(chunks.into_iter().map(|(c, _)| c))?;
        Ok((job, sizes))
    }

    /// Runs `f(x)` in a worker and waits for the result.
    pub fn apply<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        x: I,
    ) -> Result<O, PoolError> {
        self.apply_async(f, x)?.get()
    }

    /// Runs `f(x)` in a worker; returns at once with a handle to the result.
    pub fn apply_async<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        x: I,
    ) -> Result<AsyncResult<O>, PoolError> {
        let (job, sizes) = self.submit_all(Target::map(f), vec![x], Some(1))?;
        Ok(AsyncResult {
            inner: MapResult {
                job,
                sizes,
                _out: PhantomData,
            },
        })
    }

    /// [`apply_async`](Self::apply_async) with a callback run (on the
    /// supervisor thread) with the result or the error when it is in. Keep
    /// the callback short.
    pub fn apply_async_with<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        x: I,
        callback: impl FnOnce(Result<O, TaskError>) + Send + 'static,
    ) -> Result<AsyncResult<O>, PoolError> {
        let r = self.apply_async(f, x)?;
        r.inner.job.on_complete(
            1,
            Box::new(move |state: &JobState| {
                let mut out = Vec::with_capacity(1);
                if let Some(o) = state.outcomes.get(&0) {
                    decode_outputs::<O>(o, 1, &mut out);
                }
                if let Some(v) = out.pop() {
                    callback(v);
                }
            }),
        );
        Ok(r)
    }

    /// Python's `map`: `f` over `items` in the workers, in order, waiting for
    /// all. The first failed input makes it return [`PoolError::Task`];
    /// [`map_results`](Self::map_results) gives every input its own result.
    /// The chunk size defaults to Python's (about len / (4 x workers)).
    pub fn map<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
    ) -> Result<Vec<O>, PoolError> {
        self.map_async(f, items, None)?.get()
    }

    /// [`map`](Self::map) with an explicit chunk size.
    pub fn map_chunked<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
        chunksize: usize,
    ) -> Result<Vec<O>, PoolError> {
        self.map_async(f, items, Some(chunksize))?.get()
    }

    /// Like [`map`](Self::map), but every input gets its own result: a
    /// panic, a dead worker or a timeout fails only the inputs it touched.
    pub fn map_results<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
        chunksize: Option<usize>,
    ) -> Result<Vec<Result<O, TaskError>>, PoolError> {
        let r = self.map_async(f, items, chunksize)?;
        r.wait();
        Ok(r.results())
    }

    /// Python's `map_async`: submits the work and returns a handle at once.
    pub fn map_async<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<O>, PoolError> {
        self.map_async_target(Target::map(f), items, chunksize)
    }

    pub(crate) fn map_async_target<I: Wire, O: Wire>(
        &self,
        target: Target,
        items: impl IntoIterator<Item = I>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<O>, PoolError> {
        let items: Vec<I> = items.into_iter().collect();
        let (job, sizes) = self.submit_all(target, items, chunksize)?;
        Ok(MapResult {
            job,
            sizes,
            _out: PhantomData,
        })
    }

    /// Python's `starmap` for two-argument functions.
    pub fn starmap<A: Wire, B: Wire, O: Wire, F: Fn(A, B) -> O + Copy + 'static>(
        &self,
        _f: F,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<O>, PoolError> {
        let items: Vec<(A, B)> = items.into_iter().collect();
        let (job, sizes) = self.submit_all(
            Target {
                runner: worker::Star2Of::<A, B, O, F>::DESC,
                func: 0,
            },
            items,
            None,
        )?;
        MapResult::<O> {
            job,
            sizes,
            _out: PhantomData,
        }
        .get()
    }

    /// Python's `starmap` for three-argument functions.
    pub fn starmap3<A: Wire, B: Wire, C: Wire, O: Wire, F: Fn(A, B, C) -> O + Copy + 'static>(
        &self,
        _f: F,
        items: impl IntoIterator<Item = (A, B, C)>,
    ) -> Result<Vec<O>, PoolError> {
        let items: Vec<(A, B, C)> = items.into_iter().collect();
        let (job, sizes) = self.submit_all(
            Target {
                runner: worker::Star3Of::<A, B, C, O, F>::DESC,
                func: 0,
            },
            items,
            None,
        )?;
        MapResult::<O> {
            job,
            sizes,
            _out: PhantomData,
        }
        .get()
    }

    /// Python's `imap`: a lazy, ordered iterator of results. Inputs are read
    /// from `items` only as results are consumed, with a bounded number of
    /// chunks in flight, so an endless input does not fill memory.
    pub fn imap<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static, It: IntoIterator<Item = I>>(
        &self,
        f: F,
        items: It,
        chunksize: usize,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        self.imap_impl(f, items, chunksize, true)
    }

    /// Python's `imap_unordered`: like [`imap`](Self::imap), results in the
    /// order they complete.
    pub fn imap_unordered<
        I: Wire,
        O: Wire,
        F: Fn(I) -> O + Copy + 'static,
        It: IntoIterator<Item = I>,
    >(
        &self,
        f: F,
        items: It,
        chunksize: usize,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        self.imap_impl(f, items, chunksize, false)
    }

    fn imap_impl<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static, It: IntoIterator<Item = I>>(
        &self,
        f: F,
        items: It,
        chunksize: usize,
        ordered: bool,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        let target = Target::map(f);
        self.imap_target(target, items, chunksize, ordered)
    }

    pub(crate) fn imap_target<I: Wire, O: Wire, It: IntoIterator<Item = I>>(
        &self,
        target: Target,
        items: It,
        chunksize: usize,
        ordered: bool,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        if chunksize == 0 {
            return Err(PoolError::ZeroChunksize);
        }
        Ok(IMap {
            pool: self,
            job: Job::new(),
            input: Some(items.into_iter()),
            target,
            chunksize,
            ordered,
            window: 2 * self.workers + 2,
            submitted: Vec::new(),
            next_index: 0,
            yielded_chunks: 0,
            ready: VecDeque::new(),
            _out: PhantomData,
        })
    }

    /// Python's `close`: no new work is accepted; the workers exit once the
    /// work already submitted is done.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.control.head().doorbell.notify_all();
    }

    /// Python's `join`: waits until the workers have exited. Closes the pool
    /// first if it is not closed (Python raises an error instead).
    pub fn join(&mut self) {
        self.close();
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
    }

    /// Python's `terminate`: kills the workers now; unfinished tasks fail
    /// with [`TaskError::Terminated`].
    pub fn terminate(&mut self) {
        self.shared.terminate.store(true, Ordering::Release);
        self.shared.control.head().doorbell.notify_all();
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The handle of [`Pool::map_async`].
pub struct MapResult<O> {
    job: Arc<Job>,
    sizes: Vec<usize>,
    _out: PhantomData<fn() -> O>,
}

impl<O: Wire> MapResult<O> {
    /// Whether every input has its result (or error).
    pub fn ready(&self) -> bool {
        self.job.lock().finished >= self.sizes.len()
    }

    /// Waits until [`ready`](Self::ready).
    pub fn wait(&self) {
        let _ = self.job.wait_until(None, Wake::Finished(self.sizes.len()));
    }

    /// Waits at most `timeout`; whether it is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.job
            .wait_until(
                Instant::now().checked_add(timeout),
                Wake::Finished(self.sizes.len()),
            )
            .1
    }

    /// Whether it is ready and every input succeeded; `None` while not ready.
    pub fn successful(&self) -> Option<bool> {
        self.ready()
            .then(|| self.results().iter().all(Result::is_ok))
    }

    /// Every input's result, in input order (waits for them).
    pub fn results(&self) -> Vec<Result<O, TaskError>> {
        self.wait();
        let state = self.job.lock();
        let mut out = Vec::with_capacity(self.sizes.iter().sum());
        for (i, &n) in self.sizes.iter().enumerate() {
            match state.outcomes.get(&i) {
                Some(o) => decode_outputs::<O>(o, n, &mut out),
                None => out.extend((0..n).map(|_| Err(TaskError::Terminated))),
            }
        }
        out
    }

    /// Waits and returns the outputs, or the first input's error
    /// ([`PoolError::InitializerFailed`] if the pool broke because its
    /// initializer kept failing).
    pub fn get(&self) -> Result<Vec<O>, PoolError> {
        self.results()
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                r.map_err(|error| match error {
                    TaskError::InitializerFailed { attempts, status } => {
                        PoolError::InitializerFailed { attempts, status }
                    }
                    error => PoolError::Task { index, error },
                })
            })
            .collect()
    }

    /// [`get`](Self::get) waiting at most `timeout` ([`PoolError::Timeout`]).
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<O>, PoolError> {
        if !self.wait_timeout(timeout) {
            return Err(PoolError::Timeout);
        }
        self.get()
    }
}

/// The handle of [`Pool::apply_async`].
pub struct AsyncResult<O> {
    inner: MapResult<O>,
}

impl<O> From<MapResult<O>> for AsyncResult<O> {
    fn from(inner: MapResult<O>) -> Self {
        AsyncResult { inner }
    }
}

impl<O: Wire> AsyncResult<O> {
    /// Whether the result (or error) is in.
    pub fn ready(&self) -> bool {
        self.inner.ready()
    }

    /// Waits until it is in.
    pub fn wait(&self) {
        self.inner.wait()
    }

    /// Waits at most `timeout`; whether it is in.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.inner.wait_timeout(timeout)
    }

    /// `Some(true)` if it is in and succeeded; `None` while not in.
    pub fn successful(&self) -> Option<bool> {
        self.inner.successful()
    }

    /// Waits and returns the output, or the task's error.
    pub fn get(&self) -> Result<O, PoolError> {
        self.inner.get()?.pop().ok_or(PoolError::Task {
            index: 0,
            error: TaskError::Terminated,
        })
    }

    /// [`get`](Self::get) waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<O, PoolError> {
        self.inner
            .get_timeout(timeout)?
            .pop()
            .ok_or(PoolError::Task {
                index: 0,
                error: TaskError::Terminated,
            })
    }
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: yields
/// `Ok(output)` or the input's [`TaskError`]; a submission error ends it.
pub struct IMap<'p, O, It> {
    pool: &'p Pool,
    job: Arc<Job>,
    input: Option<It>,
    target: Target,
    chunksize: usize,
    ordered: bool,
    window: usize,
    /// Sizes of the chunks submitted, by chunk index.
    submitted: Vec<usize>,
    next_index: usize,
    yielded_chunks: usize,
    ready: VecDeque<Result<O, TaskError>>,
    _out: PhantomData<fn() -> O>,
}

impl<O: Wire, I: Wire, It: Iterator<Item = I>> IMap<'_, O, It> {
    /// Tops up the chunks in flight to the window.
    fn fill(&mut self) -> Result<(), PoolError> {
        let in_flight = self.submitted.len() - self.yielded_chunks;
        if in_flight >= self.window {
            return Ok(());
        }
        let Some(input) = self.input.as_mut() else {
            return Ok(());
        };
        let chunks = self.pool.chunks(
            &self.job,
            self.target,
            self.next_index,
            input,
            Chunking {
                items: self.chunksize,
                cap_bytes: false,
            },
            self.window - in_flight,
        )?;
        if chunks.is_empty() {
            self.input = None;
            return Ok(());
        }
        self.next_index += chunks.len();
        self.submitted.extend(chunks.iter().map(|(_, n)| *n));
        self.pool.shared.submit(chunks.into_iter().map(|(c, _)| c))
    }
}

impl<O: Wire, I: Wire, It: Iterator<Item = I>> Iterator for IMap<'_, O, It> {
    type Item = Result<O, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if let Err(e) = self.fill() {
                self.input = None;
                return Some(Err(TaskError::PoolBroken(e.to_string())));
            }
            if self.yielded_chunks >= self.submitted.len() {
                return None;
            }
            let (index, outcome) = {
                let want = self.yielded_chunks;
                let ordered = self.ordered;
                let want = if ordered {
                    Wake::Index(want)
                } else {
                    Wake::Any
                };
                let (mut state, _) = self.job.wait_until(None, want);
                let index = if ordered {
                    let want = self.yielded_chunks;
                    state.completed.retain(|&i| i != want);
                    want
                } else {
                    state
                        .completed
                        .pop_front()
                        .expect("waited for a completed chunk")
                };
                let outcome = state
                    .outcomes
                    .remove(&index)
                    .expect("completed chunks have outcomes");
                (index, outcome)
            };
            let mut out = Vec::with_capacity(self.submitted[index]);
            decode_outputs::<O>(&outcome, self.submitted[index], &mut out);
            self.ready.extend(out);
            self.yielded_chunks += 1;
        }
    }
}
