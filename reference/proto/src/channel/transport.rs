//! The transport phase of the channel (`CHAN-15` .. `CHAN-21`).

use std::fmt;

use super::error::ChannelError;
use crate::limits::{MAX_NOISE_MESSAGE_LEN, MAX_TRANSPORT_PLAINTEXT_LEN, REKEY_INTERVAL};

/// AEAD tag length.
const TAG_LEN: usize = 16;

/// Both directions of an established channel.
///
/// ```text
///            encrypt / decrypt (nonce n → n+1; after n with (n+1) % 65536 == 0: REKEY)
///           ┌────┐
///           ▼    │
///   ──► OPEN ────┘ ──decrypt fails / nonce would reach 2^64-1 / close()──► CLOSED
///                                                                          (refuses all)
/// ```
///
/// - Nonces start at 0 in each direction and go up by one per message; the receiver uses
///   its own counter, so a reordered, replayed or dropped message fails (`CHAN-17`).
/// - The first message that fails to decrypt closes the transport and discards its keys;
///   every later call returns [`ChannelError::Closed`] (`CHAN-18`).
/// - After the message with nonce `n` where `(n + 1) % 65536 == 0`, that direction's
///   cipher is rekeyed (Noise `REKEY`) on both sides; nonces keep counting (`CHAN-19`).
/// - A direction whose next nonce would be `2^64 - 1` refuses and closes (`CHAN-20`).
/// - Plaintext is at most 65519 bytes, a message at most 65535 (`CHAN-16`).
/// - The nonce is encoded by ChaCha20-Poly1305 as 32 zero bits then the 64-bit counter,
///   little-endian (`CHAN-21`); snow does this.
pub struct Transport {
    state: Option<snow::StatelessTransportState>,
    initiator: bool,
    send_nonce: u64,
    recv_nonce: u64,
    handshake_hash: [u8; 32],
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("initiator", &self.initiator)
            .field("closed", &self.state.is_none())
            .field("send_nonce", &self.send_nonce)
            .field("recv_nonce", &self.recv_nonce)
            .finish_non_exhaustive()
    }
}

/// Whether a message with nonce `n` is the last one before its direction rekeys (`CHAN-19`).
fn rekey_after(n: u64) -> bool {
    (n % REKEY_INTERVAL) == REKEY_INTERVAL - 1
}

impl Transport {
    /// Wraps a finished snow handshake built with [`super::noise_builder`]. Tether code
    /// gets its transports from [`super::Initiator::read_message2`] and
    /// [`super::PendingResponder::write_message2`]; this is for replaying third-party
    /// vectors whose prologue and payloads are not Tether's.
    ///
    /// # Errors
    /// [`ChannelError::HandshakeFailed`] if the handshake is not finished.
    #[doc(hidden)]
    pub fn from_finished_handshake(hs: snow::HandshakeState) -> Result<Self, ChannelError> {
        Self::from_handshake(hs)
    }

    pub(super) fn from_handshake(hs: snow::HandshakeState) -> Result<Self, ChannelError> {
        let handshake_hash: [u8; 32] =
            hs.get_handshake_hash()
                .try_into()
                .map_err(|_| ChannelError::Crypto {
                    reason: "handshake hash is not 32 bytes",
                })?;
        let initiator = hs.is_initiator();
        let state =
            hs.into_stateless_transport_mode()
                .map_err(|_| ChannelError::HandshakeFailed {
                    reason: "handshake not finished",
                })?;
        Ok(Self {
            state: Some(state),
            initiator,
            send_nonce: 0,
            recv_nonce: 0,
            handshake_hash,
        })
    }

    /// Encrypts one transport message and appends it to `out`; returns its length
    /// (`plaintext.len() + 16`).
    ///
    /// # Errors
    /// [`ChannelError::Closed`] after an earlier failure; [`ChannelError::MessageTooLarge`]
    /// for a plaintext over 65519 bytes (`CHAN-16`; the transport stays open);
    /// [`ChannelError::NonceExhausted`] if the sending nonce would reach `2^64 - 1`
    /// (`CHAN-20`; the transport closes). Nothing is appended on error.
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<usize, ChannelError> {
        let Some(state) = self.state.as_mut() else {
            return Err(ChannelError::Closed);
        };
        if plaintext.len() > MAX_TRANSPORT_PLAINTEXT_LEN {
            return Err(ChannelError::MessageTooLarge {
                len: plaintext.len(),
            });
        }
        let nonce = self.send_nonce;
        if nonce == u64::MAX {
            // CHAN-20: 2^64-1 is never used as a transport nonce.
            self.close();
            return Err(ChannelError::NonceExhausted);
        }
        let start = out.len();
        out.resize(start + plaintext.len() + TAG_LEN, 0);
        let written = match out.get_mut(start..) {
            Some(buf) => state.write_message(nonce, plaintext, buf),
            None => Err(snow::Error::Input),
        };
        let n = match written {
            Ok(n) => n,
            Err(_) => {
                out.truncate(start);
                self.close();
                return Err(ChannelError::Crypto {
                    reason: "transport encryption failed",
                });
            }
        };
        out.truncate(start + n);
        if rekey_after(nonce) {
            state.rekey_outgoing(); // CHAN-19
        }
        self.send_nonce = nonce + 1;
        Ok(n)
    }

    /// Decrypts one transport message and appends its plaintext to `out`; returns the
    /// plaintext length.
    ///
    /// # Errors
    /// [`ChannelError::Closed`] after an earlier failure; [`ChannelError::DecryptFailed`] if
    /// the message does not decrypt under the expected nonce (`CHAN-17`, `CHAN-18`);
    /// [`ChannelError::MessageTooLarge`] above 65535 bytes (`CHAN-16`);
    /// [`ChannelError::NonceExhausted`] if the receiving nonce reached `2^64 - 1`
    /// (`CHAN-20`). Every error but `Closed` closes the transport; nothing is appended on
    /// error.
    pub fn decrypt(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<usize, ChannelError> {
        let Some(state) = self.state.as_mut() else {
            return Err(ChannelError::Closed);
        };
        let nonce = self.recv_nonce;
        if message.len() > MAX_NOISE_MESSAGE_LEN {
            self.close();
            return Err(ChannelError::MessageTooLarge { len: message.len() });
        }
        if nonce == u64::MAX {
            self.close();
            return Err(ChannelError::NonceExhausted);
        }
        if message.len() < TAG_LEN {
            self.close();
            return Err(ChannelError::DecryptFailed);
        }
        let start = out.len();
        out.resize(start + message.len() - TAG_LEN, 0);
        let read = match out.get_mut(start..) {
            Some(buf) => state.read_message(nonce, message, buf),
            None => Err(snow::Error::Input),
        };
        let n = match read {
            Ok(n) => n,
            Err(_) => {
                // CHAN-18: the first failure ends the session and discards the keys.
                out.truncate(start);
                self.close();
                return Err(ChannelError::DecryptFailed);
            }
        };
        out.truncate(start + n);
        if rekey_after(nonce) {
            state.rekey_incoming(); // CHAN-19
        }
        self.recv_nonce = nonce + 1;
        Ok(n)
    }

    /// Closes the transport and discards its keys; every later call returns
    /// [`ChannelError::Closed`].
    pub fn close(&mut self) {
        self.state = None;
    }

    /// Whether the transport is closed.
    pub fn is_closed(&self) -> bool {
        self.state.is_none()
    }

    /// Nonce of the next message this side sends.
    pub fn sending_nonce(&self) -> u64 {
        self.send_nonce
    }

    /// Nonce this side expects on the next message it receives.
    pub fn receiving_nonce(&self) -> u64 {
        self.recv_nonce
    }

    /// Whether this side was the handshake initiator (the controller).
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// The final handshake hash (channel binding).
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// Moves both counters without rekeying, to test behaviour near `2^64 - 1`. Only for
    /// tests: a real session never skips nonces.
    #[doc(hidden)]
    pub fn set_nonces_for_testing(&mut self, send: u64, receive: u64) {
        self.send_nonce = send;
        self.recv_nonce = receive;
    }
}
