//! Lock-free ring buffers between processes (work in progress).
