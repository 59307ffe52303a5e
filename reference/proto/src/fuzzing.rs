//! Helpers for fuzz targets. They exist only when the crate is built with `--cfg fuzzing`
//! (which `cargo fuzz` sets); in every other build this module holds nothing but the three
//! hooks `TetherResolver` calls, which return `None`, so no insecure code is ever built.
//!
//! The fuzz targets in `fuzz/` need to get past the AEAD: a fuzzer cannot forge a
//! ChaCha20-Poly1305 tag, so with real cryptography every mutated message 1 or transport
//! message dies at the first decryption and the code behind it is never reached. As in
//! rustls' fuzzing crypto provider, a fuzzing build can swap Tether's primitives for ones
//! with no security at all (`set_insecure_crypto`, on by default in a fuzzing build):
//!
//! | primitive | insecure replacement |
//! |---|---|
//! | random numbers | a counter-based generator, restarted by `reset_rng` |
//! | X25519 | public keys are real X25519 (so host keys, prologues and handshake hashes agree with a real build); the "shared secret" is `own public XOR peer public`, which both sides compute alike; an all-zero result is still refused (`CHAN-7`) |
//! | ChaCha20-Poly1305 | ciphertext = plaintext; the 16-byte tag is the nonce, little-endian, then 8 zero bytes; a wrong tag still fails to decrypt |
//! | BLAKE2s | unchanged |
//!
//! So a handshake message 1 a fuzzer writes is `e (32 bytes) ‖ s (32) ‖ 16 zero bytes ‖
//! payload ‖ 16 zero bytes`, and a transport message with nonce `n` is `plaintext ‖
//! n as u64 LE ‖ 8 zero bytes`. Reordered and replayed messages still fail (the tag
//! carries the nonce); modified ones do not.
//!
//! The switch is process-wide; fuzz targets run one input at a time.
#![allow(unexpected_cfgs)] // `cfg(fuzzing)` is set only by cargo-fuzz.

#[cfg(fuzzing)]
pub use imp::*;

/// Not a fuzzing build: Tether's resolver is never overridden.
#[cfg(not(fuzzing))]
mod imp {
    use snow::params::{CipherChoice, DHChoice};
    use snow::types::{Cipher, Dh, Random};

    #[inline(always)]
    pub(crate) fn resolve_rng() -> Option<Box<dyn Random>> {
        None
    }

    #[inline(always)]
    pub(crate) fn resolve_dh(_: &DHChoice) -> Option<Box<dyn Dh>> {
        None
    }

    #[inline(always)]
    pub(crate) fn resolve_cipher(_: &CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}

#[cfg(not(fuzzing))]
pub(crate) use imp::{resolve_cipher, resolve_dh, resolve_rng};

#[cfg(fuzzing)]
mod imp {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use snow::params::{CipherChoice, DHChoice};
    use snow::types::{Cipher, Dh, Random};

    static INSECURE: AtomicBool = AtomicBool::new(true);
    static RNG_STATE: AtomicU64 = AtomicU64::new(0);

    /// Whether Tether's resolver hands out the insecure primitives (default: yes).
    pub fn insecure_crypto() -> bool {
        INSECURE.load(Ordering::Relaxed)
    }

    /// Switches the insecure primitives on or off for every Noise state built from now on.
    pub fn set_insecure_crypto(on: bool) {
        INSECURE.store(on, Ordering::Relaxed);
    }

    /// Restarts the insecure random number generator, so that one input always gives the
    /// same ephemeral keys (libFuzzer needs reproducible runs).
    pub fn reset_rng() {
        RNG_STATE.store(0, Ordering::Relaxed);
    }

    /// Tag length of the AEAD.
    const TAG_LEN: usize = 16;

    fn tag(nonce: u64) -> [u8; TAG_LEN] {
        let mut t = [0u8; TAG_LEN];
        if let Some(head) = t.get_mut(..8) {
            head.copy_from_slice(&nonce.to_le_bytes());
        }
        t
    }

    /// A counter-based generator: splitmix64 over a process-wide counter.
    struct InsecureRng;

    impl Random for InsecureRng {
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
            for chunk in dest.chunks_mut(8) {
                let mut z = RNG_STATE
                    .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
                    .wrapping_add(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                let bytes = z.to_le_bytes();
                for (d, s) in chunk.iter_mut().zip(bytes.iter()) {
                    *d = *s;
                }
            }
            Ok(())
        }
    }

    /// X25519 key pairs with a symmetric, insecure "shared secret": own public XOR peer public.
    #[derive(Default)]
    struct InsecureDh {
        private: [u8; 32],
        public: [u8; 32],
    }

    impl Dh for InsecureDh {
        fn name(&self) -> &'static str {
            "25519"
        }

        fn pub_len(&self) -> usize {
            32
        }

        fn priv_len(&self) -> usize {
            32
        }

        fn set(&mut self, privkey: &[u8]) {
            let mut private = [0u8; 32];
            for (d, s) in private.iter_mut().zip(privkey.iter()) {
                *d = *s;
            }
            self.private = private;
            self.public = crate::keys::public_key(&private);
        }

        fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
            let mut private = [0u8; 32];
            rng.try_fill_bytes(&mut private)?;
            self.set(&private);
            Ok(())
        }

        fn pubkey(&self) -> &[u8] {
            &self.public
        }

        fn privkey(&self) -> &[u8] {
            &self.private
        }

        fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
            // snow hands over its whole key buffers; the key is the first 32 bytes.
            let peer = pubkey.get(..32).ok_or(snow::Error::Dh)?;
            let out = out.get_mut(..32).ok_or(snow::Error::Dh)?;
            for ((o, a), b) in out.iter_mut().zip(self.public.iter()).zip(peer.iter()) {
                *o = a ^ b;
            }
            Ok(())
        }
    }

    /// The identity "AEAD": ciphertext = plaintext, tag = the nonce.
    #[derive(Default)]
    struct InsecureCipher;

    impl Cipher for InsecureCipher {
        fn name(&self) -> &'static str {
            "ChaChaPoly"
        }

        fn set(&mut self, _key: &[u8; 32]) {}

        fn encrypt(&self, nonce: u64, _ad: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
            let n = plaintext.len();
            if let Some(body) = out.get_mut(..n) {
                body.copy_from_slice(plaintext);
            }
            if let Some(t) = out.get_mut(n..n + TAG_LEN) {
                t.copy_from_slice(&tag(nonce));
            }
            n + TAG_LEN
        }

        fn decrypt(
            &self,
            nonce: u64,
            _ad: &[u8],
            ciphertext: &[u8],
            out: &mut [u8],
        ) -> Result<usize, snow::Error> {
            let n = ciphertext
                .len()
                .checked_sub(TAG_LEN)
                .ok_or(snow::Error::Decrypt)?;
            let (body, t) = ciphertext.split_at(n);
            if t != tag(nonce) {
                return Err(snow::Error::Decrypt);
            }
            out.get_mut(..n)
                .ok_or(snow::Error::Decrypt)?
                .copy_from_slice(body);
            Ok(n)
        }
    }

    pub(crate) fn resolve_rng() -> Option<Box<dyn Random>> {
        insecure_crypto().then(|| Box::new(InsecureRng) as Box<dyn Random>)
    }

    pub(crate) fn resolve_dh(choice: &DHChoice) -> Option<Box<dyn Dh>> {
        (insecure_crypto() && matches!(choice, DHChoice::Curve25519))
            .then(|| Box::new(InsecureDh::default()) as Box<dyn Dh>)
    }

    pub(crate) fn resolve_cipher(choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        (insecure_crypto() && matches!(choice, CipherChoice::ChaChaPoly))
            .then(|| Box::new(InsecureCipher) as Box<dyn Cipher>)
    }
}
