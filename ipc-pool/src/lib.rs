//! A process pool over shared-memory rings (work in progress).

mod control;
pub mod error;
mod job;
mod link;
mod pool;
mod protocol;
mod supervisor;
pub mod wire;
mod worker;

pub use error::{PoolError, TaskError};
pub use pool::{
    default_chunksize, AsyncResult, IMap, MapResult, Pool, PoolBuilder, DEFAULT_RING_BYTES,
};
pub use supervisor::{DeathPolicy, Progress};
pub use wire::{Pod, Wire};
