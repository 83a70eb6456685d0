//! `spsc` (work in progress).
