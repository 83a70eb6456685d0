//! Baselines implemented inside the harness: what a program would use
//! without this workspace, measured the same way as the workspace's own
//! types.

pub mod fdio;
pub mod locks;
pub mod python;
pub mod rtt;
pub mod throughput;
