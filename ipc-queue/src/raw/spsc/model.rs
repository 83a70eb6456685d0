//! The words of an SPSC ring, for the loom model's memory.

use super::{
    Config, ConfigError, Side, BYTES, CAPACITY, DATA, FIXED_LEN, FULL, HEAD, HOLDERS, MAGIC,
    MESSAGES, TAIL,
};

/// The words a ring of `cfg` uses, for a loom model's memory.
///
/// # Errors
/// As [`memory_size`](super::memory_size).
pub fn model_layout(cfg: &Config) -> Result<crate::raw::model::Layout, ConfigError> {
    let cap = cfg.data_size()?;
    let mut l = crate::raw::model::Layout::new(DATA + cap);
    for off in [MAGIC, CAPACITY, FIXED_LEN, TAIL, HEAD] {
        l = l.u64(off);
    }
    for side in [Side::Producer, Side::Consumer] {
        l = l
            .u64(side.owner())
            .u32(side.closed())
            .u32(side.spins())
            .u32(side.attaches())
            .u64(side.line() + MESSAGES)
            .u64(side.line() + BYTES)
            .u64(side.line() + FULL);
        for i in 0..HOLDERS {
            l = l.u64(side.holders() + 8 * i);
        }
    }
    Ok(l.payload(DATA..DATA + cap, true))
}
