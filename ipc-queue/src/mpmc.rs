//! `mpmc` (work in progress).
