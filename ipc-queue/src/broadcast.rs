//! `broadcast` (work in progress).
