//! [`ChannelError`]: every way the secure channel fails or refuses.

use std::fmt;

use crate::link::codes::CloseCode;

/// The Noise channel failed or was refused (`spec/04-secure-channel.md`).
///
/// Each variant names the requirement it enforces ([`ChannelError::requirement`]) and the
/// close code that reports it on the relay link ([`ChannelError::close_code`]). Handshake
/// failures all map to `HANDSHAKE_FAILED` (`CHAN-8`), transport failures to
/// `DECRYPT_FAILED` (`CHAN-18`). The store decisions a host makes between message 1 and
/// message 2 (`NOT_AUTHORIZED`, `REPLAYED`, `TOKEN_REJECTED`, ...) are not errors of this
/// layer: the host's session state machine sends those codes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelError {
    /// A handshake message did not decrypt or was not a well-formed Noise message
    /// (`CHAN-8`). `reason` is for logs only; it never goes on the wire.
    HandshakeFailed {
        /// What went wrong, for logs.
        reason: &'static str,
    },
    /// A Diffie-Hellman output was all zeros: the peer sent a low-order public key
    /// (`CHAN-7`).
    LowOrderKey,
    /// The message-1 payload broke its layout: unknown version or kind, wrong length,
    /// bad device name or trailing bytes (`CHAN-3`).
    BadPayload {
        /// Which rule was broken, for logs.
        reason: &'static str,
    },
    /// The message-1 timestamp is not a valid TAI64N label: nanoseconds of 10^9 or more,
    /// or seconds outside `[2^62, 2^63)` (`CHAN-4`).
    BadTimestamp,
    /// The message-2 payload is not a well-formed host-info object (`CHAN-6`).
    BadHostInfo {
        /// Which rule was broken, for logs.
        reason: &'static str,
    },
    /// The message-2 payload is larger than 4096 bytes (`CHAN-25`).
    HostInfoTooLarge {
        /// The payload length.
        len: usize,
    },
    /// The workspace id given for the prologue is not 1–64 bytes of `[a-z0-9._-]` (`CHAN-2`).
    BadWorkspace,
    /// A transport message failed to decrypt; the transport is now closed (`CHAN-18`).
    DecryptFailed,
    /// The transport was closed by an earlier failure and refuses every call (`CHAN-18`).
    Closed,
    /// A transport plaintext longer than 65519 bytes, or a received message longer than
    /// 65535 bytes (`CHAN-16`).
    MessageTooLarge {
        /// The offending length.
        len: usize,
    },
    /// The nonce of a direction would reach 2^64-1: the session must end (`CHAN-20`).
    NonceExhausted,
    /// A record broke its layout: empty, unknown type, empty `PART`, or a `WINDOW` that
    /// is not 5 bytes or grants outside 4096..=258048 (`CHAN-32`).
    BadRecord {
        /// Which rule was broken, for logs.
        reason: &'static str,
    },
    /// The peer sent more than the window this side granted (`CHAN-34`).
    WindowExceeded {
        /// Record bytes received in the session.
        received: u64,
        /// Initial window plus every increment granted.
        granted: u64,
    },
    /// A `WINDOW` record made this side's window larger than 258048 (`CHAN-35`).
    WindowOverflow {
        /// The window it would have made.
        window: u64,
    },
    /// The crypto backend failed (for example the random number generator); nothing a peer
    /// did (`CHAN-1`).
    Crypto {
        /// What failed, for logs.
        reason: &'static str,
    },
}

impl ChannelError {
    /// The id of the requirement this error enforces, for example `"CHAN-7"`.
    pub fn requirement(&self) -> &'static str {
        match self {
            Self::HandshakeFailed { .. } => "CHAN-8",
            Self::LowOrderKey => "CHAN-7",
            Self::BadPayload { .. } => "CHAN-3",
            Self::BadTimestamp => "CHAN-4",
            Self::BadHostInfo { .. } => "CHAN-6",
            Self::HostInfoTooLarge { .. } => "CHAN-25",
            Self::BadWorkspace => "CHAN-2",
            Self::DecryptFailed | Self::Closed => "CHAN-18",
            Self::MessageTooLarge { .. } => "CHAN-16",
            Self::NonceExhausted => "CHAN-20",
            Self::BadRecord { .. } => "CHAN-32",
            Self::WindowExceeded { .. } => "CHAN-34",
            Self::WindowOverflow { .. } => "CHAN-35",
            Self::Crypto { .. } => "CHAN-1",
        }
    }

    /// The close code that reports this error in a `CLOSE` frame.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::HandshakeFailed { .. }
            | Self::LowOrderKey
            | Self::BadPayload { .. }
            | Self::BadTimestamp
            | Self::BadHostInfo { .. }
            | Self::HostInfoTooLarge { .. }
            | Self::BadWorkspace
            | Self::Crypto { .. } => CloseCode::HANDSHAKE_FAILED,
            Self::DecryptFailed | Self::Closed | Self::MessageTooLarge { .. } => {
                CloseCode::DECRYPT_FAILED
            }
            Self::NonceExhausted => CloseCode::NORMAL,
            Self::BadRecord { .. } | Self::WindowExceeded { .. } | Self::WindowOverflow { .. } => {
                CloseCode::FLOW_CONTROL_ERROR
            }
        }
    }

    /// The variant's name, as test vectors spell it (`"LowOrderKey"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::HandshakeFailed { .. } => "HandshakeFailed",
            Self::LowOrderKey => "LowOrderKey",
            Self::BadPayload { .. } => "BadPayload",
            Self::BadTimestamp => "BadTimestamp",
            Self::BadHostInfo { .. } => "BadHostInfo",
            Self::HostInfoTooLarge { .. } => "HostInfoTooLarge",
            Self::BadWorkspace => "BadWorkspace",
            Self::DecryptFailed => "DecryptFailed",
            Self::Closed => "Closed",
            Self::MessageTooLarge { .. } => "MessageTooLarge",
            Self::NonceExhausted => "NonceExhausted",
            Self::BadRecord { .. } => "BadRecord",
            Self::WindowExceeded { .. } => "WindowExceeded",
            Self::WindowOverflow { .. } => "WindowOverflow",
            Self::Crypto { .. } => "Crypto",
        }
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HandshakeFailed { reason } => write!(f, "handshake failed: {reason}"),
            Self::LowOrderKey => f.write_str("peer sent a low-order public key (all-zero DH)"),
            Self::BadPayload { reason } => write!(f, "malformed message-1 payload: {reason}"),
            Self::BadTimestamp => f.write_str("malformed TAI64N timestamp"),
            Self::BadHostInfo { reason } => write!(f, "malformed message-2 host info: {reason}"),
            Self::HostInfoTooLarge { len } => {
                write!(f, "message-2 payload of {len} bytes exceeds 4096")
            }
            Self::BadWorkspace => f.write_str("workspace id is not 1-64 bytes of [a-z0-9._-]"),
            Self::DecryptFailed => f.write_str("transport message failed to decrypt"),
            Self::Closed => f.write_str("transport closed after an earlier failure"),
            Self::MessageTooLarge { len } => {
                write!(f, "transport message of {len} bytes exceeds the limit")
            }
            Self::NonceExhausted => f.write_str("transport nonce exhausted"),
            Self::BadRecord { reason } => write!(f, "malformed record: {reason}"),
            Self::WindowExceeded { received, granted } => write!(
                f,
                "peer sent {received} bytes of records against {granted} granted"
            ),
            Self::WindowOverflow { window } => {
                write!(f, "WINDOW makes the window {window} bytes, over 258048")
            }
            Self::Crypto { reason } => write!(f, "crypto backend failed: {reason}"),
        }
    }
}

impl std::error::Error for ChannelError {}
