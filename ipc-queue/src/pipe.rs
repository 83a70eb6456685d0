//! `pipe` (work in progress).
