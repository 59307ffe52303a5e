//! The two handshake roles: [`Initiator`] (controller) and [`Responder`] (host).

use std::fmt;

use super::confirm::confirmation_code;
use super::crypto::{IK_PROTOCOL_NAME, TetherResolver, ik_params, noise_builder};
use super::error::ChannelError;
use super::payload::{HandshakePayload, HostInfo, MAX_HOST_INFO_LEN};
use super::prologue::Prologue;
use super::transport::Transport;
use crate::limits::MAX_HANDSHAKE_LEN;

/// Length of an X25519 public key, and of the BLAKE2s handshake hash.
const KEY_LEN: usize = 32;
/// AEAD tag length.
const TAG_LEN: usize = 16;

/// Maps a snow failure during a handshake to the channel's error.
fn handshake_error(e: snow::Error) -> ChannelError {
    match e {
        // CHAN-7: the only DH failure TetherResolver produces is an all-zero output.
        snow::Error::Dh => ChannelError::LowOrderKey,
        snow::Error::Decrypt => ChannelError::HandshakeFailed {
            reason: "message did not decrypt",
        },
        snow::Error::Input => ChannelError::HandshakeFailed {
            reason: "message too short or too long",
        },
        snow::Error::Rng => ChannelError::Crypto {
            reason: "random number generator failed",
        },
        _ => ChannelError::HandshakeFailed {
            reason: "noise state error",
        },
    }
}

fn hash_of(hs: &snow::HandshakeState) -> Result<[u8; 32], ChannelError> {
    hs.get_handshake_hash()
        .try_into()
        .map_err(|_| ChannelError::Crypto {
            reason: "handshake hash is not 32 bytes",
        })
}

/// The controller's side of the IK handshake (`CHAN-1`: initiator).
///
/// ```text
///   Initiator::new ──► [msg1 written] ──read_message2(ok)──► Transport
///                           │
///                           └──read_message2(err) / timeout (CHAN-13)──► gone
/// ```
///
/// `new` runs `-> e, es, s, ss` with the payload; send [`Initiator::message1`] in `OPEN`,
/// then hand the host's message 2 to [`Initiator::read_message2`]. Nothing may be sent on
/// the session before message 2 is read (`CHAN-15`).
pub struct Initiator {
    hs: snow::HandshakeState,
    message1: Vec<u8>,
    h1: [u8; 32],
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("message1_len", &self.message1.len())
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake to the host whose static key is `host_key`, and writes message 1.
    ///
    /// # Errors
    /// [`ChannelError::LowOrderKey`] if `host_key` is a low-order point (`CHAN-7`);
    /// [`ChannelError::BadPayload`] if the payload does not encode (`CHAN-3`);
    /// [`ChannelError::Crypto`] if the random number generator fails.
    pub fn new(
        local_static: &[u8; 32],
        host_key: &[u8; 32],
        prologue: &Prologue,
        payload: &HandshakePayload,
    ) -> Result<Self, ChannelError> {
        Self::build(local_static, host_key, prologue, payload, None)
    }

    /// [`Initiator::new`] with a fixed ephemeral private key. Only for test vectors: a
    /// reused ephemeral destroys the handshake's security.
    ///
    /// # Errors
    /// As [`Initiator::new`].
    #[doc(hidden)]
    pub fn new_with_fixed_ephemeral_for_testing(
        local_static: &[u8; 32],
        host_key: &[u8; 32],
        prologue: &Prologue,
        payload: &HandshakePayload,
        ephemeral: &[u8; 32],
    ) -> Result<Self, ChannelError> {
        Self::build(local_static, host_key, prologue, payload, Some(ephemeral))
    }

    fn build(
        local_static: &[u8; 32],
        host_key: &[u8; 32],
        prologue: &Prologue,
        payload: &HandshakePayload,
        ephemeral: Option<&[u8; 32]>,
    ) -> Result<Self, ChannelError> {
        let payload = payload.encode()?;
        let mut builder = noise_builder(ik_params()?)
            .local_private_key(local_static)
            .and_then(|b| b.remote_public_key(host_key))
            .and_then(|b| b.prologue(prologue.as_bytes()))
            .map_err(handshake_error)?;
        if let Some(e) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let mut hs = builder.build_initiator().map_err(handshake_error)?;
        let mut message1 = vec![0u8; KEY_LEN + KEY_LEN + TAG_LEN + payload.len() + TAG_LEN];
        let n = hs
            .write_message(&payload, &mut message1)
            .map_err(handshake_error)?;
        message1.truncate(n);
        let h1 = hash_of(&hs)?;
        Ok(Self { hs, message1, h1 })
    }

    /// Message 1, as it goes into `OPEN`.
    pub fn message1(&self) -> &[u8] {
        &self.message1
    }

    /// Appends message 1 to `out`; returns the number of bytes appended.
    pub fn write_message1(&self, out: &mut Vec<u8>) -> usize {
        out.extend_from_slice(&self.message1);
        self.message1.len()
    }

    /// The handshake hash after message 1, from which the confirmation code is derived
    /// (`CHAN-23`).
    pub fn handshake_hash_after_msg1(&self) -> [u8; 32] {
        self.h1
    }

    /// The 6-digit confirmation code of this handshake (`CHAN-23`).
    pub fn confirmation_code(&self) -> String {
        confirmation_code(&self.h1)
    }

    /// Reads the host's message 2 (`<- e, ee, se`) and its host-info payload, and splits
    /// the transport (`CHAN-15`).
    ///
    /// # Errors
    /// [`ChannelError::LowOrderKey`] for a low-order host ephemeral (`CHAN-7`);
    /// [`ChannelError::HandshakeFailed`] if the message does not decrypt (`CHAN-8`);
    /// [`ChannelError::HostInfoTooLarge`] or [`ChannelError::BadHostInfo`] for a bad payload
    /// (`CHAN-25`, `CHAN-6`). The handshake is over in every case.
    pub fn read_message2(mut self, message: &[u8]) -> Result<(Transport, HostInfo), ChannelError> {
        if message.len() > KEY_LEN + TAG_LEN + MAX_HOST_INFO_LEN {
            return Err(ChannelError::HostInfoTooLarge {
                len: message.len().saturating_sub(KEY_LEN + TAG_LEN),
            });
        }
        let mut payload = vec![0u8; message.len()];
        let n = self
            .hs
            .read_message(message, &mut payload)
            .map_err(handshake_error)?;
        payload.truncate(n);
        let info = HostInfo::decode(&payload)?;
        let transport = Transport::from_handshake(self.hs)?;
        Ok((transport, info))
    }
}

/// The host's side of the IK handshake before message 1 (`CHAN-1`: responder).
///
/// ```text
///   Responder::new ──read_message1(ok)──► PendingResponder ──write_message2──► Transport
///        │                                      │
///        └──read_message1(err)──► gone          └──dropped (host refused: CLOSE code) ──► gone
/// ```
///
/// The host's checks that need its store (rate limit `CHAN-14`, remote access `CHAN-26`
/// before; pairing, replay and token checks `CHAN-9`..`CHAN-12` between message 1 and
/// message 2) are the caller's; this type only does the cryptography.
pub struct Responder {
    local_static: [u8; 32],
    prologue: Prologue,
    ephemeral: Option<[u8; 32]>,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("prologue", &self.prologue)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// A responder with the host's static private key and the session's prologue.
    pub fn new(local_static: &[u8; 32], prologue: &Prologue) -> Self {
        Self {
            local_static: *local_static,
            prologue: prologue.clone(),
            ephemeral: None,
        }
    }

    /// Uses a fixed ephemeral private key for message 2. Only for test vectors.
    #[doc(hidden)]
    pub fn with_fixed_ephemeral_for_testing(mut self, ephemeral: &[u8; 32]) -> Self {
        self.ephemeral = Some(*ephemeral);
        self
    }

    /// The static key message 1 claims, read with one Diffie-Hellman (`-> e, es, s`, not
    /// `ss`): what the host needs to pick the sender's rate-limit bucket (`CHAN-30`)
    /// before it spends the rest of the handshake on it. `None` when the key does not
    /// decrypt, the message is too short or too long, or `es` is all zeros (`CHAN-7`):
    /// [`Responder::read_message1`] fails on every such message.
    ///
    /// The key is not authenticated yet: anyone can claim any key they know. The same
    /// primitives as the handshake's are used ([`TetherResolver`]), so this agrees with
    /// [`Responder::read_message1`] on every message that reads.
    pub fn claimed_static(&self, message: &[u8]) -> Option<[u8; KEY_LEN]> {
        use snow::params::{CipherChoice, DHChoice, HashChoice};
        use snow::resolvers::CryptoResolver;

        if message.len() > MAX_HANDSHAKE_LEN {
            return None;
        }
        let ephemeral = message.get(..KEY_LEN)?;
        let encrypted_static = message.get(KEY_LEN..KEY_LEN + KEY_LEN + TAG_LEN)?;
        let resolver = TetherResolver::default();
        let mut hash = resolver.resolve_hash(&HashChoice::Blake2s)?;
        let mut dh = resolver.resolve_dh(&DHChoice::Curve25519)?;
        let mut cipher = resolver.resolve_cipher(&CipherChoice::ChaChaPoly)?;
        let hash = hash.as_mut();
        // MixHash(data): h = HASH(h || data).
        let mix_hash = |hash: &mut dyn snow::types::Hash, h: &mut [u8; KEY_LEN], data: &[u8]| {
            hash.reset();
            hash.input(h.as_slice());
            hash.input(data);
            hash.result(h.as_mut_slice());
        };
        // Noise section 5.2, InitializeSymmetric: the name is longer than HASHLEN, so
        // h = HASH(name); ck = h.
        let mut h = [0u8; KEY_LEN];
        let name = IK_PROTOCOL_NAME.as_bytes();
        if let Some(prefix) = h.get_mut(..name.len()) {
            prefix.copy_from_slice(name);
        } else {
            hash.reset();
            hash.input(name);
            hash.result(&mut h);
        }
        let chaining_key = h;
        mix_hash(hash, &mut h, self.prologue.as_bytes());
        // The pre-message `<- s`: the responder's own static public key.
        dh.set(&self.local_static);
        mix_hash(hash, &mut h, dh.pubkey());
        // `e`
        mix_hash(hash, &mut h, ephemeral);
        // `es`: MixKey(DH(s, re)); CHAN-7 refuses an all-zero output.
        let mut shared = [0u8; KEY_LEN];
        dh.dh(ephemeral, &mut shared).ok()?;
        let (mut next_ck, mut key) = ([0u8; 64], [0u8; 64]);
        hash.hkdf(&chaining_key, &shared, 2, &mut next_ck, &mut key, &mut []);
        let key: [u8; KEY_LEN] = key.get(..KEY_LEN)?.try_into().ok()?;
        cipher.set(&key);
        // `s`: DecryptAndHash with nonce 0 and the hash so far as associated data.
        let mut claimed = [0u8; KEY_LEN];
        cipher.decrypt(0, &h, encrypted_static, &mut claimed).ok()?;
        Some(claimed)
    }

    /// Reads message 1 (`-> e, es, s, ss`) and decodes its payload.
    ///
    /// # Errors
    /// [`ChannelError::HandshakeFailed`] if the message is longer than 512 bytes
    /// (`LINK-15`), too short, or does not decrypt — which is what a wrong prologue, host
    /// key or a modified message gives (`CHAN-2`, `CHAN-8`);
    /// [`ChannelError::LowOrderKey`] for a low-order ephemeral or static key (`CHAN-7`);
    /// [`ChannelError::BadPayload`] / [`ChannelError::BadTimestamp`] for a payload that
    /// decrypts but breaks its layout (`CHAN-3`, `CHAN-4`).
    pub fn read_message1(self, message: &[u8]) -> Result<PendingResponder, ChannelError> {
        if message.len() > MAX_HANDSHAKE_LEN {
            return Err(ChannelError::HandshakeFailed {
                reason: "message 1 longer than 512 bytes",
            });
        }
        let mut builder = noise_builder(ik_params()?)
            .local_private_key(&self.local_static)
            .and_then(|b| b.prologue(self.prologue.as_bytes()))
            .map_err(handshake_error)?;
        if let Some(e) = &self.ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let mut hs = builder.build_responder().map_err(handshake_error)?;
        let mut payload = vec![0u8; message.len()];
        let n = hs
            .read_message(message, &mut payload)
            .map_err(handshake_error)?;
        payload.truncate(n);
        let payload = HandshakePayload::decode(&payload)?;
        let remote_static: [u8; 32] = hs
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or(ChannelError::HandshakeFailed {
                reason: "no remote static key",
            })?;
        let h1 = hash_of(&hs)?;
        Ok(PendingResponder {
            hs,
            remote_static,
            payload,
            h1,
        })
    }
}

/// The host's side after a valid message 1, while the host decides (`spec/04`, host
/// decision procedure). Drop it to refuse; call [`PendingResponder::write_message2`] to
/// accept, only after every durable write the decision needs (`CHAN-10`, `CHAN-12`,
/// `CHAN-27`).
pub struct PendingResponder {
    hs: snow::HandshakeState,
    remote_static: [u8; 32],
    payload: HandshakePayload,
    h1: [u8; 32],
}

impl fmt::Debug for PendingResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponder")
            .field("remote_static", &hex::encode(self.remote_static))
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl PendingResponder {
    /// The controller's static public key, authenticated by message 1.
    pub fn remote_static(&self) -> &[u8; 32] {
        &self.remote_static
    }

    /// The decoded message-1 payload.
    pub fn payload(&self) -> &HandshakePayload {
        &self.payload
    }

    /// The handshake hash after message 1 (`CHAN-23`).
    pub fn handshake_hash_after_msg1(&self) -> [u8; 32] {
        self.h1
    }

    /// The 6-digit confirmation code of this handshake (`CHAN-23`).
    pub fn confirmation_code(&self) -> String {
        confirmation_code(&self.h1)
    }

    /// Accepts: writes message 2 (`<- e, ee, se`) carrying `host_info`, appends it to
    /// `out`, and returns the transport (`CHAN-15`).
    ///
    /// # Errors
    /// [`ChannelError::HostInfoTooLarge`] / [`ChannelError::BadHostInfo`] if `host_info`
    /// does not encode (`CHAN-25`, `CHAN-6`); [`ChannelError::Crypto`] if the random number
    /// generator fails. Nothing is appended to `out` on error.
    pub fn write_message2(
        mut self,
        host_info: &HostInfo,
        out: &mut Vec<u8>,
    ) -> Result<Transport, ChannelError> {
        let payload = host_info.encode()?;
        let mut message = vec![0u8; KEY_LEN + payload.len() + TAG_LEN];
        let n = self
            .hs
            .write_message(&payload, &mut message)
            .map_err(handshake_error)?;
        message.truncate(n);
        let transport = Transport::from_handshake(self.hs)?;
        out.extend_from_slice(&message);
        Ok(transport)
    }
}
