//! Cross-process synchronization primitives in shared memory (work in progress).
