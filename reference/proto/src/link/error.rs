//! [`LinkError`]: a broken rule of the relay link, and the close code that reports it.

use std::fmt;

use super::codes::CloseCode;

/// A relay-link peer broke a rule of the link's state machine, or host registration
/// failed (`spec/03`).
///
/// Link-level variants end the whole link with `GOAWAY` ([`LinkError::is_session_level`] is
/// false); session-level variants end one session with `CLOSE` and the link stays up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError {
    /// A frame type arrived that the link's state does not allow (`LINK-8`).
    UnexpectedFrame {
        /// The frame type byte.
        frame_type: u8,
    },
    /// `HELLO` carried a protocol version other than 1 (`LINK-3`).
    UnsupportedVersion {
        /// The version received.
        version: u8,
    },
    /// A frame was larger than 65544 bytes (`LINK-5`).
    FrameTooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// A frame larger than 512 bytes arrived before the link was authenticated (`LINK-6`).
    PreAuthFrameTooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// `HELLO`'s registration message does not fit the role: a host's must be exactly 32
    /// bytes, a controller's empty (`LINK-9`).
    BadHelloRegistration,
    /// Unknown workspace or wrong credential; the two are not told apart (`LINK-10`).
    AuthFailed,
    /// The workspace has remote access switched off (`LINK-11`).
    RemoteAccessDisabled,
    /// Host registration failed: a message had the wrong length, did not decrypt or gave an
    /// all-zero DH output (`LINK-12`).
    RegistrationFailed,
    /// The link was not authenticated within the auth deadline (`LINK-7`).
    AuthTimeout,
    /// Nothing was received on the link within the idle timeout (`LINK-24`).
    IdleTimeout,
    /// A newer registration of the same host key in the same workspace replaced this link
    /// (`LINK-14`).
    Replaced,
    /// More than the per-link bound of undelivered bytes was queued for the link
    /// (`LINK-23`).
    LinkSlowReader,
    /// `OPEN` or `INCOMING` carried a handshake outside 1..=512 bytes (`LINK-15`).
    BadHandshakeLength {
        /// Its length in bytes.
        len: usize,
    },
    /// `OPEN` named a session id already in use on the controller's link or on the target
    /// host (`LINK-16`). Session level.
    SessionIdInUse,
    /// No host with that key is registered in the controller's workspace (`LINK-17`).
    /// Session level.
    HostUnreachable,
    /// A frame named a session that the link does not own (`LINK-19`). Session level.
    UnknownSession,
    /// The host or the controller link already has its maximum number of sessions
    /// (`LINK-20`). Session level.
    SessionLimit,
    /// More than the per-session bound of undelivered `DATA` was queued in one direction
    /// (`LINK-22`). Session level.
    SessionSlowReader,
}

impl LinkError {
    /// The requirement this error enforces.
    pub fn requirement(&self) -> &'static str {
        match self {
            Self::UnexpectedFrame { .. } => "LINK-8",
            Self::UnsupportedVersion { .. } => "LINK-3",
            Self::FrameTooLarge { .. } => "LINK-5",
            Self::PreAuthFrameTooLarge { .. } => "LINK-6",
            Self::BadHelloRegistration => "LINK-9",
            Self::AuthFailed => "LINK-10",
            Self::RemoteAccessDisabled => "LINK-11",
            Self::RegistrationFailed => "LINK-12",
            Self::AuthTimeout => "LINK-7",
            Self::IdleTimeout => "LINK-24",
            Self::Replaced => "LINK-14",
            Self::LinkSlowReader => "LINK-23",
            Self::BadHandshakeLength { .. } => "LINK-15",
            Self::SessionIdInUse => "LINK-16",
            Self::HostUnreachable => "LINK-17",
            Self::UnknownSession => "LINK-19",
            Self::SessionLimit => "LINK-20",
            Self::SessionSlowReader => "LINK-22",
        }
    }

    /// The close code that reports it.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::UnexpectedFrame { .. } => CloseCode::UNEXPECTED_FRAME,
            Self::UnsupportedVersion { .. } => CloseCode::UNSUPPORTED_VERSION,
            Self::FrameTooLarge { .. } | Self::PreAuthFrameTooLarge { .. } => {
                CloseCode::FRAME_TOO_LARGE
            }
            Self::BadHelloRegistration | Self::BadHandshakeLength { .. } => {
                CloseCode::PROTOCOL_ERROR
            }
            Self::AuthFailed => CloseCode::AUTH_FAILED,
            Self::RemoteAccessDisabled => CloseCode::REMOTE_ACCESS_DISABLED,
            Self::RegistrationFailed => CloseCode::REGISTRATION_FAILED,
            Self::AuthTimeout => CloseCode::AUTH_TIMEOUT,
            Self::IdleTimeout => CloseCode::IDLE_TIMEOUT,
            Self::Replaced => CloseCode::REPLACED,
            Self::LinkSlowReader | Self::SessionSlowReader => CloseCode::SLOW_READER,
            Self::SessionIdInUse => CloseCode::SESSION_ID_IN_USE,
            Self::HostUnreachable => CloseCode::HOST_UNREACHABLE,
            Self::UnknownSession => CloseCode::UNKNOWN_SESSION,
            Self::SessionLimit => CloseCode::SESSION_LIMIT,
        }
    }

    /// Whether the error ends one session (`CLOSE`) rather than the whole link (`GOAWAY`).
    pub fn is_session_level(&self) -> bool {
        matches!(
            self,
            Self::SessionIdInUse
                | Self::HostUnreachable
                | Self::UnknownSession
                | Self::SessionLimit
                | Self::SessionSlowReader
        )
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedFrame { frame_type } => {
                write!(f, "frame type 0x{frame_type:02x} not allowed in this state")
            }
            Self::UnsupportedVersion { version } => {
                write!(f, "unsupported protocol version {version}")
            }
            Self::FrameTooLarge { len } => write!(f, "frame of {len} bytes is too large"),
            Self::PreAuthFrameTooLarge { len } => {
                write!(f, "frame of {len} bytes before authentication")
            }
            Self::BadHelloRegistration => {
                f.write_str("HELLO registration message does not match the role")
            }
            Self::AuthFailed => f.write_str("authentication failed"),
            Self::RemoteAccessDisabled => f.write_str("remote access disabled"),
            Self::RegistrationFailed => f.write_str("host registration failed"),
            Self::AuthTimeout => f.write_str("authentication deadline passed"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::Replaced => f.write_str("replaced by a newer registration"),
            Self::LinkSlowReader => f.write_str("link queue bound reached"),
            Self::BadHandshakeLength { len } => {
                write!(f, "handshake of {len} bytes outside 1..=512")
            }
            Self::SessionIdInUse => f.write_str("session id in use"),
            Self::HostUnreachable => f.write_str("host unreachable"),
            Self::UnknownSession => f.write_str("unknown session"),
            Self::SessionLimit => f.write_str("session limit reached"),
            Self::SessionSlowReader => f.write_str("session queue bound reached"),
        }
    }
}
