//! `queue` (work in progress).
