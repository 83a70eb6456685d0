//! Python's `imap` and `imap_unordered`: lazy iterators of results with a
//! bounded number of chunks in flight.

use crate::error::{PoolError, TaskError};
use crate::job::{decode_outputs, Job, Wake};
use crate::pool::{Chunking, Pool, Target};
use multiproc_core::message::Message;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

impl Pool {
    /// Python's `imap`: a lazy, ordered iterator of results. Inputs are read
    /// from `items` only as results are consumed, with a bounded number of
    /// chunks in flight, so an endless input does not fill memory.
    ///
    /// # Errors
    /// [`PoolError::ZeroChunksize`] for a chunk size of 0; errors of submitting
    /// later chunks end the iterator (see [`IMap`]).
    pub fn imap<
        I: Message,
        O: Message,
        F: Fn(I) -> O + Copy + 'static,
        It: IntoIterator<Item = I>,
    >(
        &self,
        f: F,
        items: It,
        chunksize: usize,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        self.imap_impl(f, items, chunksize, true)
    }

    /// Python's `imap_unordered`: like [`imap`](Self::imap), results in the
    /// order they complete.
    ///
    /// # Errors
    /// As [`imap`](Self::imap).
    pub fn imap_unordered<
        I: Message,
        O: Message,
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

    fn imap_impl<
        I: Message,
        O: Message,
        F: Fn(I) -> O + Copy + 'static,
        It: IntoIterator<Item = I>,
    >(
        &self,
        f: F,
        items: It,
        chunksize: usize,
        ordered: bool,
    ) -> Result<IMap<'_, O, It::IntoIter>, PoolError> {
        let target = Target::map(f);
        self.imap_target(target, items, chunksize, ordered)
    }

    pub(crate) fn imap_target<I: Message, O: Message, It: IntoIterator<Item = I>>(
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

impl<O: Message, I: Message, It: Iterator<Item = I>> IMap<'_, O, It> {
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

impl<O: Message, I: Message, It: Iterator<Item = I>> Iterator for IMap<'_, O, It> {
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
