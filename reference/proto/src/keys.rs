//! Static X25519 keys of hosts and controllers.

use std::fmt;

use curve25519_dalek::montgomery::MontgomeryPoint;

/// The X25519 public key of a private key (RFC 7748: the private key is clamped).
pub fn public_key(private: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(*private).to_bytes()
}

/// A static key pair. `Debug` never prints the private half.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeypair {
    private: [u8; 32],
    public: [u8; 32],
}

impl StaticKeypair {
    /// The key pair of a private key.
    pub fn from_private(private: [u8; 32]) -> Self {
        Self {
            public: public_key(&private),
            private,
        }
    }

    /// The private key.
    pub fn private(&self) -> &[u8; 32] {
        &self.private
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

/// A short fingerprint of a public key for people to compare: the first 8 bytes of
/// BLAKE2s-256 of the key, as 4 groups of 4 hex digits.
pub fn fingerprint(public: &[u8; 32]) -> String {
    use blake2::{Blake2s256, Digest};
    let digest = Blake2s256::digest(public);
    let hex = hex::encode(digest.get(..8).unwrap_or_default());
    let mut out = String::with_capacity(19);
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7748_section_6_1_alice() {
        let private: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            hex::encode(public_key(&private)),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn fingerprint_shape() {
        let fp = fingerprint(&[7u8; 32]);
        assert_eq!(fp.len(), 19);
        assert_eq!(fp.matches('-').count(), 3);
    }
}
