//! The default crypto backend: X25519 and ChaCha20-Poly1305 from aws-lc-rs (feature
//! `aws-lc`, on by default).
//!
//! aws-lc is the formally verified (s2n-bignum, fiat-crypto) C and assembly library behind
//! AWS's TLS stack; its X25519 is about twice as fast as curve25519-dalek's and its
//! ChaCha20-Poly1305 about twice RustCrypto's on x86-64 (`BENCHMARKS.md`). It computes
//! exactly the same functions (RFC 7748, RFC 8439), so every vector gives the same bytes:
//!
//! - Key pairs: [`Dh::set`] takes the 32 private bytes as given and derives the public key
//!   with aws-lc; [`Dh::generate`] draws the 32 bytes from snow's [`Random`] (the resolver's
//!   generator, or the fixed test ephemeral snow substitutes) exactly as snow's own X25519
//!   does, so a fixed ephemeral gives the same handshake byte for byte.
//! - Shared secrets: aws-lc refuses an all-zero X25519 output itself; the resolver's
//!   `NonZeroDh` wrapper refuses it again in constant time, so the backends agree on
//!   `CHAN-7` whatever aws-lc does.
//! - ChaCha20-Poly1305 with Noise's nonce: 32 zero bits then the 64-bit counter,
//!   little-endian (`CHAN-21`).
//!
//! BLAKE2s and random numbers are not here: neither aws-lc nor ring has BLAKE2s, and the
//! operating system's generator is already what snow uses.

use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use snow::types::{Cipher, Dh, Random};
use subtle::ConstantTimeEq;

/// Length of an X25519 key (private, public or shared).
const KEY_LEN: usize = 32;
/// AEAD tag length.
const TAG_LEN: usize = 16;

/// An X25519 key pair backed by aws-lc.
#[derive(Default)]
pub(super) struct AwsLcDh {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
    key: Option<Arc<PrivateKey>>,
}

/// A key pair given to [`Dh::set`]: a host or controller sets its one static key for
/// every handshake, and deriving its public key costs an X25519 base-point multiplication,
/// so it is derived once. Only keys passed to `set` (static keys, and the fixed ephemerals
/// of test vectors) are kept; generated ephemerals never are. The process holds its static
/// keys anyway; this keeps one more copy of each.
struct SetKey {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
    key: Arc<PrivateKey>,
}

/// How many keys [`SET_KEYS`] keeps: one process may play both sides (a conformance
/// runner, a benchmark, a test) or hold a few identities; more keys than this evict the
/// least recently set.
const SET_KEYS_CAP: usize = 4;

/// The keys last given to [`Dh::set`], most recent first.
static SET_KEYS: Mutex<Vec<SetKey>> = Mutex::new(Vec::new());

/// The aws-lc key and public key of `private`; `None` if aws-lc refuses it.
fn derive(private: &[u8; KEY_LEN]) -> Option<(Arc<PrivateKey>, [u8; KEY_LEN])> {
    let key = PrivateKey::from_private_key(&X25519, private).ok()?;
    let public = <[u8; KEY_LEN]>::try_from(key.compute_public_key().ok()?.as_ref()).ok()?;
    Some((Arc::new(key), public))
}

/// [`derive`] through [`SET_KEYS`].
fn derive_cached(private: &[u8; KEY_LEN]) -> Option<(Arc<PrivateKey>, [u8; KEY_LEN])> {
    let mut keys = SET_KEYS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(i) = keys
        .iter()
        .position(|k| bool::from(k.private.ct_eq(private)))
    {
        let hit = keys.remove(i);
        let found = (hit.key.clone(), hit.public);
        keys.insert(0, hit);
        return Some(found);
    }
    let (key, public) = derive(private)?;
    keys.truncate(SET_KEYS_CAP - 1);
    keys.insert(
        0,
        SetKey {
            private: *private,
            public,
            key: key.clone(),
        },
    );
    Some((key, public))
}

impl AwsLcDh {
    fn install(
        &mut self,
        private: [u8; KEY_LEN],
        derived: Option<(Arc<PrivateKey>, [u8; KEY_LEN])>,
    ) {
        self.private = private;
        match derived {
            Some((key, public)) => {
                self.key = Some(key);
                self.public = public;
            }
            // aws-lc accepts every 32-byte X25519 private key; should it ever refuse one,
            // the key pair is unusable and every `dh` fails rather than using a wrong key.
            None => {
                self.key = None;
                self.public = [0u8; KEY_LEN];
            }
        }
    }
}

impl Dh for AwsLcDh {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        // snow hands over exactly `priv_len` bytes; copy what there is, as snow's own
        // X25519 does, and derive the public key.
        let mut private = [0u8; KEY_LEN];
        for (d, s) in private.iter_mut().zip(privkey.iter()) {
            *d = *s;
        }
        self.install(private, derive_cached(&private));
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = [0u8; KEY_LEN];
        rng.try_fill_bytes(&mut private)?;
        self.install(private, derive(&private));
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
        let peer = pubkey.get(..KEY_LEN).ok_or(snow::Error::Dh)?;
        let out = out.get_mut(..KEY_LEN).ok_or(snow::Error::Dh)?;
        let key = self.key.as_deref().ok_or(snow::Error::Dh)?;
        let agreed = agreement::agree(
            key,
            UnparsedPublicKey::new(&X25519, peer),
            snow::Error::Dh,
            |secret| {
                let secret = secret.get(..KEY_LEN).ok_or(snow::Error::Dh)?;
                out.copy_from_slice(secret);
                Ok(())
            },
        );
        if agreed.is_err() {
            // CHAN-7: aws-lc refuses an all-zero output; leave no partial secret behind.
            out.iter_mut().for_each(|b| *b = 0);
        }
        agreed
    }
}

/// Noise's 96-bit nonce: 32 zero bits, then the counter little-endian (`CHAN-21`).
fn noise_nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    if let Some(tail) = bytes.get_mut(4..) {
        tail.copy_from_slice(&n.to_le_bytes());
    }
    Nonce::assume_unique_for_key(bytes)
}

/// ChaCha20-Poly1305 backed by aws-lc.
#[derive(Default)]
pub(super) struct AwsLcChaChaPoly {
    key: Option<LessSafeKey>,
}

impl Cipher for AwsLcChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; 32]) {
        self.key = UnboundKey::new(&CHACHA20_POLY1305, key)
            .ok()
            .map(LessSafeKey::new);
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len();
        let sealed = (|| {
            let key = self.key.as_ref()?;
            let (body, rest) = out.split_at_mut_checked(len)?;
            let tag_out = rest.get_mut(..TAG_LEN)?;
            // Out of place: aws-lc reads the plaintext and writes the ciphertext, no copy.
            key.seal_out_of_place_scatter(
                noise_nonce(nonce),
                Aad::from(authtext),
                plaintext,
                body,
                &[],
                tag_out,
            )
            .ok()
        })();
        if sealed.is_none() {
            // snow's cipher interface cannot report an error. aws-lc fails only for
            // messages far beyond Noise's 65535 bytes, and snow sizes `out`; should it ever
            // happen, write no plaintext: zeros with a zero tag, which the peer refuses to
            // decrypt (CHAN-18), so the session ends instead of leaking anything.
            let end = (len + TAG_LEN).min(out.len());
            if let Some(written) = out.get_mut(..end) {
                written.iter_mut().for_each(|b| *b = 0);
            }
        }
        len + TAG_LEN
    }

    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Decrypt)?;
        let len = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(snow::Error::Decrypt)?;
        let (body, tag) = ciphertext.split_at(len);
        let plain = out.get_mut(..len).ok_or(snow::Error::Decrypt)?;
        if key
            .open_separate_gather(noise_nonce(nonce), Aad::from(authtext), body, tag, plain)
            .is_err()
        {
            // Nothing of a message that failed authentication is left in `out`.
            plain.iter_mut().for_each(|b| *b = 0);
            return Err(snow::Error::Decrypt);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys set in turn, more of them than the cache keeps, each keep their own public key
    /// and shared secrets: a hit never hands out another key's pair.
    #[test]
    fn set_keys_cache_returns_the_key_asked_for() {
        let privates: Vec<[u8; KEY_LEN]> =
            (1u8..=7).map(|i| [i.wrapping_mul(37); KEY_LEN]).collect();
        assert!(privates.len() > SET_KEYS_CAP);
        let peer = crate::keys::public_key(&[0x42; KEY_LEN]);
        for round in 0..3 {
            for (i, private) in privates.iter().enumerate() {
                // Alternate between a few keys and the whole set, to hit and to evict.
                if round == 1 && i % 2 == 1 {
                    continue;
                }
                let mut dh = AwsLcDh::default();
                dh.set(private);
                assert_eq!(dh.pubkey(), crate::keys::public_key(private), "key {i}");
                let mut ours = [0u8; KEY_LEN];
                dh.dh(&peer, &mut ours).unwrap();
                let mut other = AwsLcDh::default();
                other.set(&[0x42; KEY_LEN]);
                let mut theirs = [0u8; KEY_LEN];
                other.dh(dh.pubkey(), &mut theirs).unwrap();
                assert_eq!(ours, theirs, "key {i}");
            }
        }
        assert!(SET_KEYS.lock().unwrap().len() <= SET_KEYS_CAP);
    }
}
