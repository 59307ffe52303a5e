//! The one place that picks Tether's Noise primitives: [`TetherResolver`].
//!
//! Every Noise state Tether builds — the IK channel (`CHAN-1`) and the relay registration
//! (`LINK-12`, `Noise_XN_25519_ChaChaPoly_BLAKE2s`) — is built through [`noise_builder`], so
//! every backend behaves the same on the one point where X25519 implementations differ:
//! a Diffie-Hellman whose output is all zeros (a low-order peer key) is an error
//! (`CHAN-7`), never a key.
//!
//! Two backends compute the same functions (every vector gives the same bytes with both):
//!
//! | primitive | feature `aws-lc` (default) | without it (`--no-default-features`) |
//! |---|---|---|
//! | X25519 | aws-lc-rs | curve25519-dalek (through snow) |
//! | ChaCha20-Poly1305 | aws-lc-rs | RustCrypto `chacha20poly1305` (through snow) |
//! | BLAKE2s | RustCrypto `blake2` (through snow) | the same |
//! | random numbers | the operating system (`getrandom`, through snow) | the same |
//!
//! [`BACKEND`] names the one compiled in. A fuzzing build (`cfg(fuzzing)`) can still swap
//! in its insecure primitives first, whichever backend is compiled (`crate::fuzzing`).

use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use subtle::ConstantTimeEq;

use super::error::ChannelError;

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

/// The crypto backend compiled in: `"aws-lc"` (the default feature `aws-lc`: X25519 and
/// ChaCha20-Poly1305 from aws-lc-rs) or `"rust"` (snow's pure-Rust primitives).
#[cfg(feature = "aws-lc")]
pub const BACKEND: &str = "aws-lc";
/// The crypto backend compiled in: `"aws-lc"` (the default feature `aws-lc`: X25519 and
/// ChaCha20-Poly1305 from aws-lc-rs) or `"rust"` (snow's pure-Rust primitives).
#[cfg(not(feature = "aws-lc"))]
pub const BACKEND: &str = "rust";

/// The crypto resolver of every Tether Noise state.
///
/// X25519 and ChaCha20-Poly1305 come from the backend compiled in ([`BACKEND`]); BLAKE2s
/// and random numbers from snow's [`DefaultResolver`] (RustCrypto's BLAKE2s, the operating
/// system's CSPRNG). The Diffie-Hellman function is wrapped so that an all-zero output is
/// refused (`CHAN-7`) whatever the backend.
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
        let inner = backend_dh(choice)?;
        Some(Box::new(NonZeroDh { inner }))
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        if let Some(cipher) = crate::fuzzing::resolve_cipher(choice) {
            return Some(cipher);
        }
        backend_cipher(choice)
    }
}

#[cfg(feature = "aws-lc")]
fn backend_dh(choice: &DHChoice) -> Option<Box<dyn Dh>> {
    match choice {
        DHChoice::Curve25519 => Some(Box::<super::aws_lc::AwsLcDh>::default()),
        _ => DefaultResolver.resolve_dh(choice),
    }
}

#[cfg(not(feature = "aws-lc"))]
fn backend_dh(choice: &DHChoice) -> Option<Box<dyn Dh>> {
    DefaultResolver.resolve_dh(choice)
}

#[cfg(feature = "aws-lc")]
fn backend_cipher(choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
    match choice {
        CipherChoice::ChaChaPoly => Some(Box::<super::aws_lc::AwsLcChaChaPoly>::default()),
        _ => DefaultResolver.resolve_cipher(choice),
    }
}

#[cfg(not(feature = "aws-lc"))]
fn backend_cipher(choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
    DefaultResolver.resolve_cipher(choice)
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

    /// Both backends compute the same X25519 and ChaCha20-Poly1305: the compiled one
    /// against snow's pure-Rust primitives, on keys, shared secrets, ciphertexts and a
    /// rekey (`CHAN-7`, `CHAN-19`, `CHAN-21`).
    #[test]
    fn backend_agrees_with_snow_default_primitives() {
        let resolver = TetherResolver::default();
        for seed in 1u8..=16 {
            let a_priv = [seed; 32];
            let b_priv: [u8; 32] =
                std::array::from_fn(|i| seed.wrapping_mul(31) ^ u8::try_from(i).unwrap());
            let mut ours = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            let mut theirs = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            ours.set(&a_priv);
            theirs.set(&a_priv);
            assert_eq!(ours.pubkey(), theirs.pubkey());
            assert_eq!(ours.privkey(), &a_priv);
            let mut peer = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            peer.set(&b_priv);
            let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
            ours.dh(peer.pubkey(), &mut x).unwrap();
            theirs.dh(peer.pubkey(), &mut y).unwrap();
            assert_eq!(x, y);

            let mut c1 = resolver.resolve_cipher(&CipherChoice::ChaChaPoly).unwrap();
            let mut c2 = DefaultResolver
                .resolve_cipher(&CipherChoice::ChaChaPoly)
                .unwrap();
            c1.set(&x);
            c2.set(&x);
            let plaintext: Vec<u8> = (0..(usize::from(seed) * 97))
                .map(|i| u8::try_from(i % 251).unwrap())
                .collect();
            let ad = [seed; 7];
            let nonce = u64::from(seed) << 40 | 5;
            let mut e1 = vec![0u8; plaintext.len() + 16];
            let mut e2 = vec![0u8; plaintext.len() + 16];
            assert_eq!(c1.encrypt(nonce, &ad, &plaintext, &mut e1), e1.len());
            c2.encrypt(nonce, &ad, &plaintext, &mut e2);
            assert_eq!(e1, e2);
            let mut d = vec![0u8; plaintext.len()];
            assert_eq!(
                c1.decrypt(nonce, &ad, &e2, &mut d).unwrap(),
                plaintext.len()
            );
            assert_eq!(d, plaintext);
            // A wrong nonce, a flipped bit or a short message fails and leaves no plaintext.
            assert!(c1.decrypt(nonce + 1, &ad, &e2, &mut d).is_err());
            let mut flipped = e2.clone();
            flipped[0] ^= 1;
            assert!(c1.decrypt(nonce, &ad, &flipped, &mut d).is_err());
            if cfg!(feature = "aws-lc") {
                // aws-lc's cipher also wipes a failed plaintext and refuses a message
                // shorter than a tag (snow's own checks the length before its cipher).
                assert!(d.iter().all(|b| *b == 0));
                assert!(c1.decrypt(nonce, &ad, &[0u8; 15], &mut d).is_err());
            }
            c1.rekey();
            c2.rekey();
            c1.encrypt(1, &[], &plaintext, &mut e1);
            c2.encrypt(1, &[], &plaintext, &mut e2);
            assert_eq!(e1, e2);
        }
    }

    /// Alternating static keys (the backend remembers the last one set) still give each
    /// key's own public key and shared secrets.
    #[test]
    fn alternating_static_keys_stay_distinct() {
        let resolver = TetherResolver::default();
        let reference = |k: &[u8; 32]| {
            let mut d = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            d.set(k);
            d
        };
        let peer = reference(&[0x99; 32]);
        for round in 0..4u8 {
            for k in [[0x01u8; 32], [0x02; 32], [round.wrapping_add(3); 32]] {
                let mut ours = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
                ours.set(&k);
                let theirs = reference(&k);
                assert_eq!(ours.pubkey(), theirs.pubkey());
                assert_eq!(ours.privkey(), &k);
                let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
                ours.dh(peer.pubkey(), &mut x).unwrap();
                theirs.dh(peer.pubkey(), &mut y).unwrap();
                assert_eq!(x, y);
            }
        }
    }

    #[test]
    fn backend_is_named() {
        assert_eq!(
            BACKEND,
            if cfg!(feature = "aws-lc") {
                "aws-lc"
            } else {
                "rust"
            }
        );
    }

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
