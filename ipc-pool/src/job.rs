//! Bookkeeping of submitted work, shared by the caller's handles and the
//! supervisor thread. Type-agnostic: outputs stay encoded until a typed
//! handle decodes them in the caller's thread.

use crate::error::TaskError;
use crate::protocol::{take_value, ProtocolError, OUTPUT_PANIC, OUTPUT_VALUE};
use multiproc_core::message::Message;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// How one chunk ended.
#[derive(Clone, Debug)]
pub(crate) enum ChunkOutcome {
    /// The worker answered: per input, a status byte and an output or a
    /// panic message (see [`decode_outputs`]).
    Done(Vec<u8>),
    /// The chunk failed as a whole (worker death, timeout, ...).
    Failed(TaskError),
}

/// The state of one job (one `map`, `imap`, `apply_async`, ...).
#[derive(Default)]
pub(crate) struct JobState {
    /// Outcomes by chunk index, until a handle takes them.
    pub(crate) outcomes: BTreeMap<usize, ChunkOutcome>,
    /// Chunk indices in the order they completed.
    pub(crate) completed: VecDeque<usize>,
    /// How many chunks have completed in all.
    pub(crate) finished: usize,
    /// What the threads waiting on this job wait for; a completion wakes
    /// them only when one of these holds, so a job nobody waits on costs no
    /// wake-up syscall per chunk.
    waits: Vec<Wake>,
}

/// What a waiter waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// At least this many chunks completed.
    Finished(usize),
    /// The chunk with this index completed.
    Index(usize),
    /// Any chunk completed that no one has taken yet.
    Any,
}

impl JobState {
    fn satisfies(&self, w: Wake) -> bool {
        match w {
            Wake::Finished(n) => self.finished >= n,
            Wake::Index(i) => self.outcomes.contains_key(&i),
            Wake::Any => !self.completed.is_empty(),
        }
    }
}

type Callback = Box<dyn FnOnce(&JobState) + Send>;

/// A job: its state, a condition variable for waiters, an optional callback
/// run (on the supervisor thread) when `expected` chunks have completed.
pub(crate) struct Job {
    state: Mutex<JobState>,
    cond: Condvar,
    on_complete: Mutex<Option<(usize, Callback)>>,
}

impl Job {
    pub(crate) fn new() -> Arc<Job> {
        Arc::new(Job {
            state: Mutex::new(JobState::default()),
            cond: Condvar::new(),
            on_complete: Mutex::new(None),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` once `expected` chunks have completed (at once if they have).
    pub(crate) fn on_complete(&self, expected: usize, f: Callback) {
        let state = self.lock();
        if state.finished >= expected {
            f(&state);
        } else {
            *self.on_complete.lock().unwrap_or_else(|p| p.into_inner()) = Some((expected, f));
        }
    }

    /// Records the outcome of chunk `index` and wakes waiters.
    pub(crate) fn complete(&self, index: usize, outcome: ChunkOutcome) {
        let mut state = self.lock();
        if state.outcomes.insert(index, outcome).is_none() {
            state.completed.push_back(index);
            state.finished += 1;
        }
        let finished = state.finished;
        if state.waits.iter().any(|&w| state.satisfies(w)) {
            self.cond.notify_all();
        }
        let mut cb = self.on_complete.lock().unwrap_or_else(|p| p.into_inner());
        if cb
            .as_ref()
            .is_some_and(|(expected, _)| finished >= *expected)
        {
            if let Some((_, f)) = cb.take() {
                // A panicking callback must not take the supervisor with it.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&state))).is_err() {
                    log::warn!("a result callback panicked");
                }
            }
        }
    }

    /// Waits until `want` holds or `deadline` passes; returns the guard and
    /// whether it holds.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        want: Wake,
    ) -> (MutexGuard<'_, JobState>, bool) {
        let mut state = self.lock();
        if state.satisfies(want) {
            return (state, true);
        }
        state.waits.push(want);
        let holds = loop {
            match deadline {
                None => state = self.cond.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break false;
                    }
                    state = self
                        .cond
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
            if state.satisfies(want) {
                break true;
            }
        };
        if let Some(pos) = state.waits.iter().position(|&w| w == want) {
            state.waits.swap_remove(pos);
        }
        (state, holds)
    }
}

/// Decodes the outputs of a chunk of `count` inputs.
pub(crate) fn decode_outputs<O: Message>(
    outcome: &ChunkOutcome,
    count: usize,
    out: &mut Vec<Result<O, TaskError>>,
) {
    match outcome {
        ChunkOutcome::Failed(e) => out.extend((0..count).map(|_| Err(e.clone()))),
        ChunkOutcome::Done(bytes) => {
            let mut input = &bytes[..];
            let decode = |e: ProtocolError| TaskError::Decode(e.to_string());
            for i in 0..count {
                let r = match take_value::<u8>(&mut input) {
                    Ok(OUTPUT_VALUE) => take_value::<O>(&mut input).map_err(decode),
                    Ok(OUTPUT_PANIC) => match take_value::<String>(&mut input) {
                        Ok(message) => Err(TaskError::Panicked { message }),
                        Err(e) => Err(decode(e)),
                    },
                    Ok(b) => Err(TaskError::Decode(format!("status byte {b}"))),
                    Err(e) => Err(decode(e)),
                };
                if let Err(TaskError::Decode(e)) = &r {
                    // The rest cannot be framed any more.
                    let e = TaskError::Decode(e.clone());
                    out.extend((i..count).map(|_| Err(e.clone())));
                    return;
                }
                out.push(r);
            }
        }
    }
}
