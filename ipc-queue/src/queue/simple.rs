//! [`SimpleQueue`]: Python's smallest queue, a [`Queue`] with four methods.

use super::{Queue, SIMPLE_QUEUE_MAXSIZE};
use crate::error::{RecvError, SendError};
use multiproc_core::message::Message;
use multiproc_core::object::ObjectError;

/// Python's `SimpleQueue`: `put`, `get`, `empty` and `close`, nothing
/// else. Every queue here is bounded, this one to [`SIMPLE_QUEUE_MAXSIZE`]
/// items of up to [`DEFAULT_MAX_BYTES`](super::DEFAULT_MAX_BYTES) (a fixed-size type: its size); a
/// put waits while it is full. Build a [`Queue`] for other bounds.
///
/// ```
/// use multiproc_queue::queue::SimpleQueue;
/// let q = SimpleQueue::<String>::new()?;
/// q.put("task".to_string())?;
/// assert!(!q.empty());
/// assert_eq!(q.get()?, "task");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SimpleQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue { q: self.q.clone() }
    }
}

#[cfg(feature = "serde")]
impl<T> serde::Serialize for SimpleQueue<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

#[cfg(feature = "serde")]
impl<'de, T: Message> serde::Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SimpleQueue {
            q: Queue::deserialize(d)?,
        })
    }
}

impl<T: Message> SimpleQueue<T> {
    /// An anonymous simple queue, for this process and its children.
    ///
    /// # Errors
    /// As [`QueueBuilder::create`](super::QueueBuilder::create).
    pub fn new() -> Result<SimpleQueue<T>, ObjectError> {
        Ok(SimpleQueue {
            q: Queue::new(SIMPLE_QUEUE_MAXSIZE)?,
        })
    }

    /// Puts `item`, waiting for room.
    ///
    /// # Errors
    /// As [`Queue::put`]; the item is handed back.
    pub fn put(&self, item: T) -> Result<(), SendError<T>> {
        self.q.put(item)
    }

    /// Takes an item, waiting for one.
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T, RecvError> {
        self.q.get()
    }

    /// Whether the queue looked empty.
    pub fn empty(&self) -> bool {
        self.q.empty()
    }

    /// Closes the queue for every process (as [`Queue::close`]).
    pub fn close(&self) {
        self.q.close();
    }

    /// The queue under it, for everything else.
    pub fn queue(&self) -> &Queue<T> {
        &self.q
    }
}
