//! `error` (work in progress).
