//! Configuring and starting a [`Pool`](crate::Pool).

use crate::control::Control;
use crate::error::PoolError;
use crate::pool::Pool;
use crate::protocol;
use crate::supervisor::{self, Config, DeathPolicy, Progress, Shared};
use crate::worker;
use multiproc_core::message::Message;
use multiproc_core::process::StartMethod;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes of each ring (one per direction per worker) unless set otherwise.
pub const DEFAULT_RING_BYTES: usize = 256 << 10;

/// Configures and starts a [`Pool`]. Obtained from [`Pool::builder`].
#[must_use]
pub struct PoolBuilder {
    cfg: Config,
}

impl PoolBuilder {
    /// Workers forked from the fork server
    /// ([`StartMethod::ForkServer`]): they start at fork speed, from a clean
    /// single-threaded image of the program, so this is safe whatever
    /// threads the program runs. Like spawned workers (the default), the
    /// functions a pool runs must be function items or closures that
    /// capture nothing, and `main` must call `multiproc_core::process::init()`
    /// first.
    pub fn forkserver_workers(mut self) -> Self {
        self.cfg.method = StartMethod::ForkServer;
        self
    }

    /// The number of worker processes (default: [`multiproc_core::cpu_count`]).
    pub fn workers(mut self, n: usize) -> Self {
        self.cfg.workers = n;
        self
    }

    /// Workers are forked copies of this process instead of spawned ones
    /// (the default re-executes the program, which needs
    /// `multiproc_core::process::init()` first thing in `main`; see
    /// [`multiproc_core::process`]). Forked workers start several times faster
    /// and need no `init`.
    ///
    /// # Safety
    /// Workers are forked from the pool's supervisor thread while the rest
    /// of the program runs, whenever one is started or replaced, so the
    /// rules of [`multiproc_core::process::Builder::fork_unchecked`] apply to
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
    /// [`TaskError::OutputTooLarge`](crate::TaskError::OutputTooLarge). A message may take the whole ring
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
    /// chunk fails with [`TaskError::Timeout`](crate::TaskError::Timeout).
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
    /// [`multiproc_core::process::Builder::exec_args`]); in a test binary,
    /// `multiproc_core::process::test_exec_args("the_test")`.
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
    /// let pool = unsafe { multiproc_pool::Pool::builder().workers(2).build_with(move |x: u64| x + offset) }?;
    /// assert_eq!(pool.map(0..3u64)?, vec![100, 101, 102]);
    /// # Ok::<(), multiproc_pool::PoolError>(())
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
        I: Message,
        O: Message,
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

impl Pool {
    /// A builder with the defaults.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            cfg: Config {
                workers: multiproc_core::cpu_count(),
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
}
