//! The pool: a builder, the operations of Python's `multiprocessing.Pool`,
//! and the handles they return.

use crate::error::{PoolError, TaskError};
use crate::job::{decode_outputs, Job, JobState};
use crate::protocol::{self, Args, Frame};
use crate::results::{AsyncResult, MapResult};
use crate::supervisor::{Chunk, Progress, Shared};
use crate::worker::{self, Runner};
use multiproc_core::entry::{EntryDescriptor, EntryRef};
use multiproc_core::message::Message;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A function to run in the workers: the descriptor of the runner made for
/// the user's function and its argument and result types, and (for an
/// `FnPool`'s closure only) the closure's address.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    pub(crate) runner: &'static EntryDescriptor<Runner>,
    pub(crate) func: usize,
}

impl Target {
    pub(crate) fn map<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(_: F) -> Target {
        Target {
            runner: worker::MapOf::<I, O, F>::DESC,
            func: 0,
        }
    }
}

/// How many inputs go into a chunk, and whether it also closes when its
/// encoding reaches half a ring message (the default chunk size does).
#[derive(Clone, Copy)]
pub(crate) struct Chunking {
    pub(crate) items: usize,
    pub(crate) cap_bytes: bool,
}

/// A pool of worker processes. See the [crate docs](crate).
///
/// Dropping it terminates and reaps every worker; workers also die with the
/// parent process.
pub struct Pool {
    pub(crate) shared: Arc<Shared>,
    pub(crate) supervisor: Option<std::thread::JoinHandle<()>>,
    pub(crate) workers: usize,
    pub(crate) max_message: usize,
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
    (len / per + usize::from(!len.is_multiple_of(per))).max(1)
}

impl Pool {
    /// A pool of `workers` spawned workers, all else default.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`](crate::PoolBuilder::build).
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
    pub(crate) fn chunks<I: Message>(
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
            let header = Frame::task_header(0, 0, 0, 0, 0);
            let mut message = Vec::with_capacity(header.len() + guess);
            message.extend_from_slice(&header);
            let mut count = 0u32;
            for x in (&mut *items).take(chunksize) {
                protocol::put_value(&x, &mut message).map_err(PoolError::Encode)?;
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
            let header = Frame::task_header(id, runner_off, func_off, tag, count);
            message[..header.len()].copy_from_slice(&header);
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

    fn submit_all<I: Message>(
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
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::Task`] with the index and [`TaskError`](crate::TaskError)
    /// of the first input that failed.
    pub fn apply<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        x: I,
    ) -> Result<O, PoolError> {
        self.apply_async(f, x)?.get()
    }

    /// Runs `f(x)` in a worker; returns at once with a handle to the result.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    pub fn apply_async<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
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
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    pub fn apply_async_with<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
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
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::Task`] with the index and [`TaskError`](crate::TaskError)
    /// of the first input that failed.
    pub fn map<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
    ) -> Result<Vec<O>, PoolError> {
        self.map_async(f, items, None)?.get()
    }

    /// [`map`](Self::map) with an explicit chunk size.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::Task`] with the index and [`TaskError`](crate::TaskError)
    /// of the first input that failed. [`PoolError::ZeroChunksize`] for a chunk
    /// size of 0.
    pub fn map_chunked<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
        chunksize: usize,
    ) -> Result<Vec<O>, PoolError> {
        self.map_async(f, items, Some(chunksize))?.get()
    }

    /// Like [`map`](Self::map), but every input gets its own result: a
    /// panic, a dead worker or a timeout fails only the inputs it touched.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::ZeroChunksize`] for a chunk size of 0 (failed inputs are in
    /// the results, not errors).
    pub fn map_results<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
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
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::ZeroChunksize`] for a chunk size of 0.
    pub fn map_async<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<O>, PoolError> {
        self.map_async_target(Target::map(f), items, chunksize)
    }

    pub(crate) fn map_async_target<I: Message, O: Message>(
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
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::Task`] with the index and [`TaskError`](crate::TaskError)
    /// of the first input that failed.
    pub fn starmap<A: Message, B: Message, O: Message, F: Fn(A, B) -> O + Copy + 'static>(
        &self,
        _f: F,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<O>, PoolError> {
        let items: Vec<Args<(A, B)>> = items.into_iter().map(Args).collect();
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
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::Task`] with the index and [`TaskError`](crate::TaskError)
    /// of the first input that failed.
    pub fn starmap3<
        A: Message,
        B: Message,
        C: Message,
        O: Message,
        F: Fn(A, B, C) -> O + Copy + 'static,
    >(
        &self,
        _f: F,
        items: impl IntoIterator<Item = (A, B, C)>,
    ) -> Result<Vec<O>, PoolError> {
        let items: Vec<Args<(A, B, C)>> = items.into_iter().map(Args).collect();
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
