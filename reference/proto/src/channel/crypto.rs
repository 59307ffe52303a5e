//! The one place that picks Tether's Noise primitives: [`TetherResolver`].
//!
//! Every Noise state Tether builds — the IK channel (`CHAN-1`) and the relay registration
//! (`LINK-12`, `Noise_XN_25519_ChaChaPoly_BLAKE2s`) — is built through [`noise_builder`], so
//! every backend behaves the same on the one point where X25519 implementations differ:
//! a Diffie-Hellman whose output is all zeros (a low-order peer key) is an error
//! (`CHAN-7`), never a key. A faster backend is plugged in here and nowhere else.

use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use subtle::ConstantTimeEq;

use super::ChannelError;

/// The Noise protocol name of the secure channel (`CHAN-1`).
pub const IK_PROTOCOL_NAME: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";

/// The parsed [`IK_PROTOCOL_NAME`].
///
/// # Errors
/// [`ChannelError::Crypto`] only if the linked snow cannot parse the name (it always can
/// with the default features this crate enables).
pub fn ik_params() -> Result<NoiseParams, ChannelError> {
    IK_PROTOCOL_NAME.parse().map_err(|_| ChannelError::Crypto {
        reason: "snow does not support Noise_IK_25519_ChaChaPoly_BLAKE2s",
    })
}

/// A snow [`Builder`](snow::Builder) that resolves every primitive through
/// [`TetherResolver`]. Use it for every Tether Noise state.
pub fn noise_builder<'a>(params: NoiseParams) -> snow::Builder<'a> {
    snow::Builder::with_resolver(params, Box::new(TetherResolver::default()))
}

/// The crypto resolver of every Tether Noise state.
///
/// Hash, cipher and random numbers come from snow's [`DefaultResolver`] (BLAKE2s,
/// ChaCha20-Poly1305, the operating system's CSPRNG); the Diffie-Hellman function is
/// snow's X25519 wrapped so that an all-zero output is refused (`CHAN-7`).
#[derive(Debug, Default)]
pub struct TetherResolver {
    _private: (),
}

impl CryptoResolver for TetherResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        if let Some(rng) = crate::fuzzing::resolve_rng() {
            return Some(rng);
        }
        DefaultResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        if let Some(inner) = crate::fuzzing::resolve_dh(choice) {
            return Some(Box::new(NonZeroDh { inner }));
        }
        let inner = DefaultResolver.resolve_dh(choice)?;
        Some(Box::new(NonZeroDh { inner }))
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        if let Some(cipher) = crate::fuzzing::resolve_cipher(choice) {
            return Some(cipher);
        }
        DefaultResolver.resolve_cipher(choice)
    }
}

/// A DH function that refuses an all-zero shared secret (`CHAN-7`).
///
/// X25519 with a public key of small order (or one of the points that reduce to it) gives
/// the all-zero output whatever the private key; accepting it would let a peer force a
/// known "shared" secret into the handshake.
struct NonZeroDh {
    inner: Box<dyn Dh>,
}

impl Dh for NonZeroDh {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn pub_len(&self) -> usize {
        self.inner.pub_len()
    }

    fn priv_len(&self) -> usize {
        self.inner.priv_len()
    }

    fn set(&mut self, privkey: &[u8]) {
        self.inner.set(privkey);
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        self.inner.generate(rng)
    }

    fn pubkey(&self) -> &[u8] {
        self.inner.pubkey()
    }

    fn privkey(&self) -> &[u8] {
        self.inner.privkey()
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        self.inner.dh(pubkey, out)?;
        let len = self.inner.dh_len().min(out.len());
        let produced = out.get(..len).ok_or(snow::Error::Dh)?;
        // CHAN-7: constant-time comparison with zero, so the check leaks nothing about
        // a legitimate shared secret.
        let zero = [0u8; 64];
        let zero = zero.get(..len).ok_or(snow::Error::Dh)?;
        if bool::from(produced.ct_eq(zero)) {
            out.iter_mut().for_each(|b| *b = 0);
            return Err(snow::Error::Dh);
        }
        Ok(())
    }

    fn dh_len(&self) -> usize {
        self.inner.dh_len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn chan_1_protocol_name_parses() {
        let params = ik_params().unwrap();
        assert_eq!(params.name, "Noise_IK_25519_ChaChaPoly_BLAKE2s");
    }

    #[test]
    fn chan_7_dh_with_low_order_point_is_refused() {
        let mut dh = TetherResolver::default()
            .resolve_dh(&DHChoice::Curve25519)
            .unwrap();
        dh.set(&[0x42; 32]);
        let mut out = [0u8; 32];
        // u = 0 and u = 1 are points of small order.
        for point in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(dh.dh(&point, &mut out), Err(snow::Error::Dh));
            assert_eq!(out, [0u8; 32]);
        }
    }

    #[test]
    fn chan_7_ordinary_dh_is_unchanged() {
        // RFC 7748 section 6.1: Alice's private key and Bob's public key.
        let mut dh = TetherResolver::default()
            .resolve_dh(&DHChoice::Curve25519)
            .unwrap();
        dh.set(
            &hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap(),
        );
        assert_eq!(
            hex::encode(dh.pubkey()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let mut out = [0u8; 32];
        dh.dh(
            &hex::decode("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
                .unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            hex::encode(out),
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        );
    }
}
