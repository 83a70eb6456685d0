//! Benchmarks of the ipc workspace (work in progress).
