//! A pool bound to one capturing closure, with forked workers.

use crate::error::{PoolError, TaskError};
use crate::imap::IMap;
use crate::pool::{Pool, Target};
use crate::results::{AsyncResult, MapResult};
use crate::worker;
use multiproc_core::message::Message;
use std::marker::PhantomData;

/// A pool whose workers run one closure, given to
/// [`PoolBuilder::build_with`](crate::PoolBuilder::build_with). It offers
/// the operations of [`Pool`] without the function argument; [`pool`](Self::pool)
/// reaches the rest (`close`, `worker_pids`, `progress`, ...).
pub struct FnPool<I, O, F> {
    // Dropped first: the workers are gone before the closure is freed.
    pool: Pool,
    f: Box<F>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I: Message, O: Message, F: Fn(I) -> O + 'static> FnPool<I, O, F> {
    pub(crate) fn new(pool: Pool, f: Box<F>) -> Self {
        FnPool {
            pool,
            f,
            _types: PhantomData,
        }
    }

    fn target(&self) -> Target {
        Target {
            runner: worker::ClosureOf::<I, O, F>::DESC,
            func: &*self.f as *const F as usize,
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The underlying pool, for `join` and `terminate`.
    pub fn pool_mut(&mut self) -> &mut Pool {
        &mut self.pool
    }

    /// [`Pool::map`] with the closure.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::Task`] with the index and [`TaskError`](crate::TaskError)
    /// of the first input that failed.
    pub fn map(&self, items: impl IntoIterator<Item = I>) -> Result<Vec<O>, PoolError> {
        self.pool
            .map_async_target::<I, O>(self.target(), items, None)?
            .get()
    }

    /// [`Pool::map_results`] with the closure.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::ZeroChunksize`] for a chunk size of 0 (failed inputs are in
    /// the results, not errors).
    pub fn map_results(
        &self,
        items: impl IntoIterator<Item = I>,
        chunksize: Option<usize>,
    ) -> Result<Vec<Result<O, TaskError>>, PoolError> {
        Ok(self
            .pool
            .map_async_target::<I, O>(self.target(), items, chunksize)?
            .results())
    }

    /// [`Pool::map_async`] with the closure.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::ZeroChunksize`] for a chunk size of 0.
    pub fn map_async(
        &self,
        items: impl IntoIterator<Item = I>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<O>, PoolError> {
        self.pool.map_async_target(self.target(), items, chunksize)
    }

    /// [`Pool::apply_async`] with the closure.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    pub fn apply_async(&self, x: I) -> Result<AsyncResult<O>, PoolError> {
        Ok(AsyncResult::from(self.pool.map_async_target::<I, O>(
            self.target(),
            [x],
            Some(1),
        )?))
    }

    /// [`Pool::apply`] with the closure.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after `close` or `terminate`;
    /// [`PoolError::Broken`] (or [`PoolError::InitializerFailed`]) if the pool
    /// broke; [`PoolError::MessageTooLarge`] for a chunk larger than a ring
    /// message; [`PoolError::Encode`] for an input its serializer refuses.
    /// [`PoolError::Task`] with the index and [`TaskError`](crate::TaskError)
    /// of the first input that failed.
    pub fn apply(&self, x: I) -> Result<O, PoolError> {
        self.apply_async(x)?.get()
    }

    /// [`Pool::imap`] with the closure.
    ///
    /// # Errors
    /// [`PoolError::ZeroChunksize`] for a chunk size of 0; errors of submitting
    /// later chunks end the iterator (see [`IMap`]).
    pub fn imap<It: IntoIterator<Item = I>>(
        &self,
        items: It,
        chunksize: usize,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        self.pool.imap_target(self.target(), items, chunksize, true)
    }

    /// [`Pool::imap_unordered`] with the closure.
    ///
    /// # Errors
    /// As [`imap`](Self::imap).
    pub fn imap_unordered<It: IntoIterator<Item = I>>(
        &self,
        items: It,
        chunksize: usize,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        self.pool
            .imap_target(self.target(), items, chunksize, false)
    }
}
