//! Helpers shared by the integration tests of this crate.

/// A tiny xorshift generator: deterministic for a seed, fast, and good
/// enough to pick schedules and scribble values. The seed must not be 0.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
