//! Lock-free ring buffers between processes (work in progress).

pub mod broadcast;
pub mod error;
pub mod mpmc;
pub mod pipe;
pub mod queue;
pub mod spsc;
pub mod spsc_pod;
pub mod spsc_raw;
pub mod spsc_rkyv;
