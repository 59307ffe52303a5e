//! The pairing confirmation code (`CHAN-23`).

use blake2::{Blake2s256, Digest};

/// Domain-separation label of the confirmation code.
pub const CONFIRM_LABEL: &[u8] = b"TETHER-CONFIRM-V1";

/// The 6-digit code both screens show when pairing with confirmation (`CHAN-23`):
/// `u32_be(BLAKE2s-256("TETHER-CONFIRM-V1" || h1)[0..4]) mod 1_000_000`, zero-padded,
/// where `h1` is the Noise handshake hash after message 1.
pub fn confirmation_code(handshake_hash: &[u8; 32]) -> String {
    let mut h = Blake2s256::new();
    h.update(CONFIRM_LABEL);
    h.update(handshake_hash);
    let digest = h.finalize();
    let mut first = [0u8; 4];
    first.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    format!("{:06}", u32::from_be_bytes(first) % 1_000_000)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn chan_23_confirmation_code() {
        // Pinned with Python's hashlib: BLAKE2s-256("TETHER-CONFIRM-V1" || 00*32) starts
        // a1be69e5; 0xa1be69e5 = 2713610725, mod 10^6 = 610725.
        assert_eq!(confirmation_code(&[0u8; 32]), "610725");
        // 0x1b1aa5e3 = 454731235 -> 731235.
        assert_eq!(confirmation_code(&[1u8; 32]), "731235");
    }
}
