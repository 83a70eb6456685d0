//! The handles of submitted work: [`MapResult`] and [`AsyncResult`].

use crate::error::{PoolError, TaskError};
use crate::job::{decode_outputs, Job, Wake};
use multiproc_core::message::Message;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The handle of [`Pool::map_async`](crate::Pool::map_async).
pub struct MapResult<O> {
    pub(crate) job: Arc<Job>,
    pub(crate) sizes: Vec<usize>,
    pub(crate) _out: PhantomData<fn() -> O>,
}

impl<O: Message> MapResult<O> {
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
    ///
    /// # Errors
    /// [`PoolError::Task`] with the index and error of the first input that
    /// failed.
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
    ///
    /// # Errors
    /// [`PoolError::Timeout`] if the results are not all in within `timeout`;
    /// [`PoolError::Task`] as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<O>, PoolError> {
        if !self.wait_timeout(timeout) {
            return Err(PoolError::Timeout);
        }
        self.get()
    }
}

/// The handle of [`Pool::apply_async`](crate::Pool::apply_async).
pub struct AsyncResult<O> {
    pub(crate) inner: MapResult<O>,
}

impl<O> From<MapResult<O>> for AsyncResult<O> {
    fn from(inner: MapResult<O>) -> Self {
        AsyncResult { inner }
    }
}

impl<O: Message> AsyncResult<O> {
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
    ///
    /// # Errors
    /// [`PoolError::Task`] with the index and error of the first input that
    /// failed.
    pub fn get(&self) -> Result<O, PoolError> {
        self.inner.get()?.pop().ok_or(PoolError::Task {
            index: 0,
            error: TaskError::Terminated,
        })
    }

    /// [`get`](Self::get) waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] if the results are not all in within `timeout`;
    /// [`PoolError::Task`] as [`get`](Self::get).
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
