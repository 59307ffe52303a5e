//! Relay frames (`spec/03-relay-link.md`, "Frames").
//!
//! STUB: the codec is written against this data model; see the frame table in the spec.

use std::fmt;

use super::CloseCode;

/// A session id: 8 bytes the controller picks at random (`LINK-16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 8]);

/// The role a client claims in `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A host (`0x01`); its `HELLO` carries registration message 1.
    Host,
    /// A controller (`0x02`).
    Controller,
}

/// One relay frame: what one WebSocket binary message carries (`LINK-1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayFrame {
    /// `0x01` client → relay: version, role, workspace, credential, and for a host the
    /// 32-byte registration message 1.
    Hello {
        /// Protocol version, [`crate::limits::PROTOCOL_VERSION`].
        version: u8,
        /// Host or controller.
        role: Role,
        /// Workspace id, 1–64 bytes of `[a-z0-9._-]`.
        workspace: String,
        /// Workspace credential, 16–255 bytes.
        credential: Vec<u8>,
        /// Registration message 1 (`Noise_XN` `-> e`), exactly 32 bytes for a host, empty
        /// for a controller.
        registration: Vec<u8>,
    },
    /// `0x02` relay → host: registration message 2 (`<- e, ee`), 48 bytes.
    HostChallenge {
        /// The Noise message.
        message: Vec<u8>,
    },
    /// `0x03` host → relay: registration message 3 (`-> s, se`), 64 bytes.
    HostProof {
        /// The Noise message.
        message: Vec<u8>,
    },
    /// `0x04` relay → client: the link is authenticated.
    Ready,
    /// `0x10` controller → relay: open a session to a host, carrying Noise message 1.
    Open {
        /// Chosen at random by the controller.
        session: SessionId,
        /// The host's static public key.
        host_key: [u8; 32],
        /// Noise IK message 1, 1–512 bytes.
        handshake: Vec<u8>,
    },
    /// `0x11` relay → host: a controller opened a session.
    Incoming {
        /// The controller's session id.
        session: SessionId,
        /// Noise IK message 1, 1–512 bytes.
        handshake: Vec<u8>,
    },
    /// `0x12` both ways: one Noise message of a session.
    Data {
        /// The session.
        session: SessionId,
        /// The Noise message, 1–65535 bytes.
        payload: Vec<u8>,
    },
    /// `0x13` both ways: the session ends.
    Close {
        /// The session.
        session: SessionId,
        /// Why.
        code: CloseCode,
    },
    /// `0x20` both ways: keepalive.
    Ping {
        /// Echoed in `PONG`.
        value: u64,
    },
    /// `0x21` both ways: answer to `PING`.
    Pong {
        /// The `PING`'s value.
        value: u64,
    },
    /// `0x30` both ways: the link ends.
    GoAway {
        /// Why.
        code: CloseCode,
        /// Human-readable detail, at most 255 bytes of UTF-8.
        reason: String,
    },
}

/// A relay frame could not be decoded (`LINK-4`, `LINK-5`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Placeholder until the codec lands.
    Malformed,
}

impl FrameError {
    /// The requirement this error enforces.
    pub fn requirement(&self) -> &'static str {
        "LINK-4"
    }

    /// The close code that reports it.
    pub fn close_code(&self) -> CloseCode {
        CloseCode::PROTOCOL_ERROR
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed frame")
    }
}
