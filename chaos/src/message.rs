//! Sequenced, self-checking messages: a torn, shifted or stale message is
//! told apart from a good one by its contents alone.
//!
//! Layout (little-endian): `seq: u64`, `len: u32` (the whole message),
//! `reserved: u32`, a payload derived from `seq`, and an FNV-1a checksum
//! (`u64`) of everything before it. The payload length also derives from
//! `seq`, so a reader needs nothing but the bytes to check a message.

use crate::rng::mix;

/// Bytes of a message that are not payload (seq, len, reserved, checksum).
pub const OVERHEAD: usize = 24;

/// Why a message failed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Shorter than the fixed part.
    TooShort(usize),
    /// The recorded length is not the length received.
    Length {
        /// The length field.
        recorded: u32,
        /// The bytes received.
        received: usize,
    },
    /// The checksum does not match the bytes.
    Checksum,
    /// The checksum matches but the payload is not the one `seq` gives.
    Payload,
}

/// FNV-1a over `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The length of message `seq` when messages may be at most `max` bytes
/// (`max >= OVERHEAD`).
pub fn len_for(seq: u64, max: usize) -> usize {
    let room = max.saturating_sub(OVERHEAD);
    OVERHEAD
        + if room == 0 {
            0
        } else {
            (mix(seq ^ 0x5eed) % (room as u64 + 1)) as usize
        }
}

fn payload_byte(seq: u64, i: usize) -> u8 {
    (mix(seq.wrapping_mul(0x1_0000_0001).wrapping_add((i / 8) as u64)) >> ((i % 8) * 8)) as u8
}

/// Writes message `seq` into `buf` (which must hold `len_for(seq, max)`
/// bytes); returns its length.
///
/// # Panics
/// If `buf` is shorter than the message.
pub fn encode(seq: u64, max: usize, buf: &mut [u8]) -> usize {
    let len = len_for(seq, max);
    let buf = &mut buf[..len];
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    buf[12..16].copy_from_slice(&0u32.to_le_bytes());
    for (i, b) in buf[16..len - 8].iter_mut().enumerate() {
        *b = payload_byte(seq, i);
    }
    let sum = fnv1a(&buf[..len - 8]);
    buf[len - 8..].copy_from_slice(&sum.to_le_bytes());
    len
}

/// Checks a received message; returns its sequence number.
///
/// # Errors
/// What is wrong with it.
pub fn verify(msg: &[u8]) -> Result<u64, Damage> {
    if msg.len() < OVERHEAD {
        return Err(Damage::TooShort(msg.len()));
    }
    let word = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().unwrap_or([0; 8]));
    let seq = word(0);
    let recorded = u32::from_le_bytes(msg[8..12].try_into().unwrap_or([0; 4]));
    if recorded as usize != msg.len() {
        return Err(Damage::Length {
            recorded,
            received: msg.len(),
        });
    }
    let end = msg.len() - 8;
    if fnv1a(&msg[..end]) != word(end) {
        return Err(Damage::Checksum);
    }
    if (16..end).any(|i| msg[i] != payload_byte(seq, i - 16)) {
        return Err(Damage::Payload);
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_single_byte_flip_is_caught() {
        let mut buf = [0u8; 256];
        for seq in [0u64, 1, 77, u64::MAX, 1 << 40] {
            let n = encode(seq, 256, &mut buf);
            assert_eq!(verify(&buf[..n]), Ok(seq));
            for i in 0..n {
                let mut bad = buf;
                bad[i] ^= 0x20;
                assert!(verify(&bad[..n]).is_err(), "flip at {i} of {n} passed");
            }
            assert!(verify(&buf[..n - 1]).is_err());
        }
    }

    #[test]
    fn lengths_vary_within_bounds() {
        let lens: std::collections::HashSet<usize> = (0..200).map(|s| len_for(s, 100)).collect();
        assert!(lens.len() > 20);
        assert!(lens.iter().all(|&l| (OVERHEAD..=100).contains(&l)));
        assert_eq!(len_for(5, OVERHEAD), OVERHEAD);
    }
}
