//! Relay frames (`spec/03-relay-link.md`, "Frames").
//!
//! One [`RelayFrame`] travels in each WebSocket binary message (`LINK-1`): a type byte and
//! a body whose layout the type fixes (`LINK-30`). Integers are big-endian; a string is a
//! one-byte length and that many bytes; a field marked "rest" runs to the end of the frame.
//!
//! | type | frame | body |
//! |---|---|---|
//! | `0x01` | `HELLO` | version u8, role u8, workspace (u8 len), credential (u8 len), registration (rest) |
//! | `0x02` | `HOST_CHALLENGE` | registration message 2 (rest, 48 bytes) |
//! | `0x03` | `HOST_PROOF` | registration message 3 (rest, 64 bytes) |
//! | `0x04` | `READY` | empty |
//! | `0x10` | `OPEN` | session id (8), host key (32), handshake (rest, 1–512) |
//! | `0x11` | `INCOMING` | session id (8), handshake (rest, 1–512) |
//! | `0x12` | `DATA` | session id (8), payload (rest, 1–65535) |
//! | `0x13` | `CLOSE` | session id (8), code u16 |
//! | `0x20` | `PING` | value u64 |
//! | `0x21` | `PONG` | value u64 |
//! | `0x30` | `GOAWAY` | code u16, reason (u8 len, UTF-8) |
//!
//! Decoding is strict: [`RelayFrame::decode`] accepts exactly the bytes
//! [`RelayFrame::encode`] produces, and reports the first failure in a fixed order (size,
//! then type, then each field in order; see `spec/03` section "Decoding").
//!
//! The variants have public fields, so a value can break a field constraint; encoding
//! therefore validates and returns a `Result`: [`RelayFrame::encode`] never writes bytes
//! that [`RelayFrame::decode`] would reject.

use std::fmt;

use super::codes::CloseCode;
use crate::limits::{MAX_FRAME_LEN, MAX_HANDSHAKE_LEN, MAX_NOISE_MESSAGE_LEN};
use crate::token::validate_workspace;

/// Length of registration message 1 (`Noise_XN` `-> e`) in a host's `HELLO` (`LINK-9`).
pub const REGISTRATION_MSG1_LEN: usize = 32;
/// Length of registration message 2 (`<- e, ee`) in `HOST_CHALLENGE` (`LINK-12`).
pub const REGISTRATION_MSG2_LEN: usize = 48;
/// Length of registration message 3 (`-> s, se`) in `HOST_PROOF` (`LINK-12`).
pub const REGISTRATION_MSG3_LEN: usize = 64;
/// Shortest credential in `HELLO`, in bytes (`LINK-10`).
pub const MIN_CREDENTIAL_LEN: usize = 16;
/// Longest credential in `HELLO`, in bytes (`LINK-10`).
pub const MAX_CREDENTIAL_LEN: usize = 255;
/// Longest `GOAWAY` reason, in bytes of UTF-8 (`LINK-27`).
pub const MAX_REASON_LEN: usize = 255;

/// A session id: 8 bytes the controller picks at random (`LINK-16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 8]);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The role a client claims in `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A host (`0x01`); its `HELLO` carries registration message 1.
    Host,
    /// A controller (`0x02`).
    Controller,
}

impl Role {
    /// The role byte of `HELLO` (`LINK-31`).
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Host => 0x01,
            Self::Controller => 0x02,
        }
    }

    /// The role a `HELLO` role byte names, or `None` for an unassigned byte (`LINK-31`).
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(Self::Host),
            0x02 => Some(Self::Controller),
            _ => None,
        }
    }
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

impl RelayFrame {
    /// Type byte of `HELLO`.
    pub const HELLO: u8 = 0x01;
    /// Type byte of `HOST_CHALLENGE`.
    pub const HOST_CHALLENGE: u8 = 0x02;
    /// Type byte of `HOST_PROOF`.
    pub const HOST_PROOF: u8 = 0x03;
    /// Type byte of `READY`.
    pub const READY: u8 = 0x04;
    /// Type byte of `OPEN`.
    pub const OPEN: u8 = 0x10;
    /// Type byte of `INCOMING`.
    pub const INCOMING: u8 = 0x11;
    /// Type byte of `DATA`.
    pub const DATA: u8 = 0x12;
    /// Type byte of `CLOSE`.
    pub const CLOSE: u8 = 0x13;
    /// Type byte of `PING`.
    pub const PING: u8 = 0x20;
    /// Type byte of `PONG`.
    pub const PONG: u8 = 0x21;
    /// Type byte of `GOAWAY`.
    pub const GOAWAY: u8 = 0x30;

    /// The frame's type byte.
    pub fn frame_type(&self) -> u8 {
        match self {
            Self::Hello { .. } => Self::HELLO,
            Self::HostChallenge { .. } => Self::HOST_CHALLENGE,
            Self::HostProof { .. } => Self::HOST_PROOF,
            Self::Ready => Self::READY,
            Self::Open { .. } => Self::OPEN,
            Self::Incoming { .. } => Self::INCOMING,
            Self::Data { .. } => Self::DATA,
            Self::Close { .. } => Self::CLOSE,
            Self::Ping { .. } => Self::PING,
            Self::Pong { .. } => Self::PONG,
            Self::GoAway { .. } => Self::GOAWAY,
        }
    }

    /// The frame's name as the spec spells it, for example `"HOST_CHALLENGE"`.
    pub fn type_name(&self) -> &'static str {
        type_name(self.frame_type()).unwrap_or("UNKNOWN")
    }

    /// Checks every field constraint of the frame table; `Ok` means [`RelayFrame::encode`]
    /// succeeds and [`RelayFrame::decode`] gives the frame back.
    ///
    /// # Errors
    /// The [`FrameError`] that [`RelayFrame::decode`] would report for the encoded bytes.
    pub fn validate(&self) -> Result<(), FrameError> {
        match self {
            Self::Hello {
                version: _,
                role,
                workspace,
                credential,
                registration,
            } => {
                if !validate_workspace(workspace) {
                    return Err(FrameError::BadWorkspace);
                }
                if !(MIN_CREDENTIAL_LEN..=MAX_CREDENTIAL_LEN).contains(&credential.len()) {
                    return Err(FrameError::BadCredentialLength {
                        len: credential.len(),
                    });
                }
                check_registration(Self::HELLO, registration_len(*role), registration.len())
            }
            Self::HostChallenge { message } => {
                check_registration(Self::HOST_CHALLENGE, REGISTRATION_MSG2_LEN, message.len())
            }
            Self::HostProof { message } => {
                check_registration(Self::HOST_PROOF, REGISTRATION_MSG3_LEN, message.len())
            }
            Self::Open { handshake, .. } | Self::Incoming { handshake, .. } => {
                check_handshake(handshake.len())
            }
            Self::Data { payload, .. } => {
                if payload.is_empty() {
                    return Err(FrameError::EmptyPayload);
                }
                if payload.len() > MAX_NOISE_MESSAGE_LEN {
                    return Err(FrameError::TooLarge {
                        len: 1 + 8 + payload.len(),
                    });
                }
                Ok(())
            }
            Self::GoAway { reason, .. } => {
                if reason.len() > MAX_REASON_LEN {
                    return Err(FrameError::BadReasonLength { len: reason.len() });
                }
                Ok(())
            }
            Self::Ready | Self::Close { .. } | Self::Ping { .. } | Self::Pong { .. } => Ok(()),
        }
    }

    /// Appends the frame's bytes to `out` (`LINK-30`). On error `out` is left unchanged.
    ///
    /// # Errors
    /// The first field that breaks its constraint, as [`RelayFrame::validate`] reports it.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.validate()?;
        out.push(self.frame_type());
        match self {
            Self::Hello {
                version,
                role,
                workspace,
                credential,
                registration,
            } => {
                out.push(*version);
                out.push(role.to_byte());
                push_prefixed(out, workspace.as_bytes());
                push_prefixed(out, credential);
                out.extend_from_slice(registration);
            }
            Self::HostChallenge { message } | Self::HostProof { message } => {
                out.extend_from_slice(message);
            }
            Self::Ready => {}
            Self::Open {
                session,
                host_key,
                handshake,
            } => {
                out.extend_from_slice(&session.0);
                out.extend_from_slice(host_key);
                out.extend_from_slice(handshake);
            }
            Self::Incoming { session, handshake } => {
                out.extend_from_slice(&session.0);
                out.extend_from_slice(handshake);
            }
            Self::Data { session, payload } => {
                out.extend_from_slice(&session.0);
                out.extend_from_slice(payload);
            }
            Self::Close { session, code } => {
                out.extend_from_slice(&session.0);
                out.extend_from_slice(&code.0.to_be_bytes());
            }
            Self::Ping { value } | Self::Pong { value } => {
                out.extend_from_slice(&value.to_be_bytes());
            }
            Self::GoAway { code, reason } => {
                out.extend_from_slice(&code.0.to_be_bytes());
                push_prefixed(out, reason.as_bytes());
            }
        }
        Ok(())
    }

    /// The frame's bytes in a new vector.
    ///
    /// # Errors
    /// As [`RelayFrame::encode`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// The version byte of a `HELLO`, read without decoding anything else (`LINK-41`):
    /// `Some(version)` when `bytes` begins with the `HELLO` type byte and has a second
    /// byte, whatever follows; `None` otherwise.
    ///
    /// A relay refuses a version other than 1 on this alone, before [`RelayFrame::decode`],
    /// so that the `HELLO` of a later version, whose layout after the version byte may
    /// differ, is reported as `UNSUPPORTED_VERSION` and never misread as a malformed v1
    /// frame (`LINK-40` step 4).
    pub fn peek_hello_version(bytes: &[u8]) -> Option<u8> {
        match bytes {
            [Self::HELLO, version, ..] => Some(*version),
            _ => None,
        }
    }

    /// Decodes one frame, the whole of one WebSocket binary message (`LINK-4`, `LINK-5`).
    ///
    /// Checks, in order: size (`TooLarge`), non-empty (`Truncated`), type byte
    /// (`UnknownType`), then the body's fields in order. The `HELLO` version is not checked
    /// here (the relay's state machine does, `LINK-3`).
    ///
    /// # Errors
    /// The first [`FrameError`] met in that order.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        // LINK-5: refuse to look at an oversized frame at all.
        if bytes.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge { len: bytes.len() });
        }
        // LINK-4: an empty message has no type byte.
        let (&ty, body) = bytes.split_first().ok_or(FrameError::Truncated)?;
        let mut rest = body;
        let frame = match ty {
            Self::HELLO => {
                let version = take_u8(&mut rest)?;
                let role_byte = take_u8(&mut rest)?;
                // LINK-31
                let role =
                    Role::from_byte(role_byte).ok_or(FrameError::BadRole { role: role_byte })?;
                let workspace = take_prefixed(&mut rest)?;
                // LINK-32 (the TOKEN-7 rule)
                let workspace = std::str::from_utf8(workspace)
                    .ok()
                    .filter(|w| validate_workspace(w))
                    .ok_or(FrameError::BadWorkspace)?
                    .to_owned();
                let credential = take_prefixed(&mut rest)?;
                // LINK-10
                if credential.len() < MIN_CREDENTIAL_LEN {
                    return Err(FrameError::BadCredentialLength {
                        len: credential.len(),
                    });
                }
                // LINK-9: the rest of the frame is the registration message.
                check_registration(Self::HELLO, registration_len(role), rest.len())?;
                Self::Hello {
                    version,
                    role,
                    workspace,
                    credential: credential.to_vec(),
                    registration: std::mem::take(&mut rest).to_vec(),
                }
            }
            Self::HOST_CHALLENGE => {
                // LINK-12
                check_registration(ty, REGISTRATION_MSG2_LEN, rest.len())?;
                Self::HostChallenge {
                    message: std::mem::take(&mut rest).to_vec(),
                }
            }
            Self::HOST_PROOF => {
                // LINK-12
                check_registration(ty, REGISTRATION_MSG3_LEN, rest.len())?;
                Self::HostProof {
                    message: std::mem::take(&mut rest).to_vec(),
                }
            }
            Self::READY => Self::Ready,
            Self::OPEN => {
                let session = SessionId(take_array(&mut rest)?);
                let host_key = take_array(&mut rest)?;
                // LINK-15
                check_handshake(rest.len())?;
                Self::Open {
                    session,
                    host_key,
                    handshake: std::mem::take(&mut rest).to_vec(),
                }
            }
            Self::INCOMING => {
                let session = SessionId(take_array(&mut rest)?);
                // LINK-15
                check_handshake(rest.len())?;
                Self::Incoming {
                    session,
                    handshake: std::mem::take(&mut rest).to_vec(),
                }
            }
            Self::DATA => {
                let session = SessionId(take_array(&mut rest)?);
                // LINK-33 (at most 65535 bytes follows from the LINK-5 size check)
                if rest.is_empty() {
                    return Err(FrameError::EmptyPayload);
                }
                Self::Data {
                    session,
                    payload: std::mem::take(&mut rest).to_vec(),
                }
            }
            Self::CLOSE => {
                let session = SessionId(take_array(&mut rest)?);
                let code = CloseCode(u16::from_be_bytes(take_array(&mut rest)?));
                Self::Close { session, code }
            }
            Self::PING => Self::Ping {
                value: u64::from_be_bytes(take_array(&mut rest)?),
            },
            Self::PONG => Self::Pong {
                value: u64::from_be_bytes(take_array(&mut rest)?),
            },
            Self::GOAWAY => {
                let code = CloseCode(u16::from_be_bytes(take_array(&mut rest)?));
                let reason = take_prefixed(&mut rest)?;
                // LINK-34
                let reason = std::str::from_utf8(reason)
                    .map_err(|_| FrameError::BadUtf8)?
                    .to_owned();
                Self::GoAway { code, reason }
            }
            _ => return Err(FrameError::UnknownType { ty }),
        };
        // LINK-4: no frame has bytes after its last field.
        if !rest.is_empty() {
            return Err(FrameError::TrailingBytes);
        }
        Ok(frame)
    }
}

/// The spec's name of a frame type byte, or `None` for an unassigned byte.
pub fn type_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        RelayFrame::HELLO => "HELLO",
        RelayFrame::HOST_CHALLENGE => "HOST_CHALLENGE",
        RelayFrame::HOST_PROOF => "HOST_PROOF",
        RelayFrame::READY => "READY",
        RelayFrame::OPEN => "OPEN",
        RelayFrame::INCOMING => "INCOMING",
        RelayFrame::DATA => "DATA",
        RelayFrame::CLOSE => "CLOSE",
        RelayFrame::PING => "PING",
        RelayFrame::PONG => "PONG",
        RelayFrame::GOAWAY => "GOAWAY",
        _ => return None,
    })
}

fn registration_len(role: Role) -> usize {
    match role {
        Role::Host => REGISTRATION_MSG1_LEN,
        Role::Controller => 0,
    }
}

fn check_registration(frame_type: u8, expected: usize, len: usize) -> Result<(), FrameError> {
    if len == expected {
        Ok(())
    } else {
        Err(FrameError::BadRegistrationLength { frame_type, len })
    }
}

fn check_handshake(len: usize) -> Result<(), FrameError> {
    if (1..=MAX_HANDSHAKE_LEN).contains(&len) {
        Ok(())
    } else {
        Err(FrameError::BadHandshakeLength { len })
    }
}

/// Appends a u8 length and the bytes; callers have checked that the length fits.
fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

fn take_u8(rest: &mut &[u8]) -> Result<u8, FrameError> {
    let (&b, tail) = rest.split_first().ok_or(FrameError::Truncated)?;
    *rest = tail;
    Ok(b)
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    let (head, tail) = rest.split_at_checked(n).ok_or(FrameError::Truncated)?;
    *rest = tail;
    Ok(head)
}

fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], FrameError> {
    take(rest, N)?.try_into().map_err(|_| FrameError::Truncated)
}

fn take_prefixed<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], FrameError> {
    let len = take_u8(rest)?;
    take(rest, usize::from(len))
}

/// A relay frame could not be decoded or encoded (`LINK-4`, `LINK-5`).
///
/// Every variant closes the link with `GOAWAY` [`CloseCode::PROTOCOL_ERROR`] except
/// [`FrameError::TooLarge`], which uses [`CloseCode::FRAME_TOO_LARGE`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The type byte is not in the frame table (`LINK-4`).
    UnknownType {
        /// The type byte found.
        ty: u8,
    },
    /// The frame ends before a field does, or is empty (`LINK-4`).
    Truncated,
    /// Bytes follow the frame's last field (`LINK-4`).
    TrailingBytes,
    /// The frame is longer than 65544 bytes (`LINK-5`).
    TooLarge {
        /// The frame's length.
        len: usize,
    },
    /// The `HELLO` role byte is neither `0x01` nor `0x02` (`LINK-31`).
    BadRole {
        /// The role byte found.
        role: u8,
    },
    /// The `HELLO` workspace id breaks the workspace rule (`LINK-32`).
    BadWorkspace,
    /// The `HELLO` credential is shorter than 16 bytes (or, encoding, longer than 255)
    /// (`LINK-10`).
    BadCredentialLength {
        /// The credential's length.
        len: usize,
    },
    /// A registration message has the wrong length: `HELLO` (`LINK-9`: 32 bytes for a host,
    /// none for a controller), `HOST_CHALLENGE` (48) or `HOST_PROOF` (64) (`LINK-12`).
    BadRegistrationLength {
        /// The type byte of the frame that carried it.
        frame_type: u8,
        /// The length found.
        len: usize,
    },
    /// The `OPEN` / `INCOMING` handshake is empty or longer than 512 bytes (`LINK-15`).
    BadHandshakeLength {
        /// The handshake's length.
        len: usize,
    },
    /// A `DATA` frame carries no payload (`LINK-33`).
    EmptyPayload,
    /// The `GOAWAY` reason is not UTF-8 (`LINK-34`).
    BadUtf8,
    /// Encoding only: the `GOAWAY` reason is longer than 255 bytes (`LINK-27`).
    BadReasonLength {
        /// The reason's length in bytes.
        len: usize,
    },
}

impl FrameError {
    /// The requirement this error enforces, for example `"LINK-4"`.
    pub fn requirement(&self) -> &'static str {
        match self {
            Self::UnknownType { .. } | Self::Truncated | Self::TrailingBytes => "LINK-4",
            Self::TooLarge { .. } => "LINK-5",
            Self::BadRole { .. } => "LINK-31",
            Self::BadWorkspace => "LINK-32",
            Self::BadCredentialLength { .. } => "LINK-10",
            Self::BadRegistrationLength { frame_type, .. } => {
                if *frame_type == RelayFrame::HELLO {
                    "LINK-9"
                } else {
                    "LINK-12"
                }
            }
            Self::BadHandshakeLength { .. } => "LINK-15",
            Self::EmptyPayload => "LINK-33",
            Self::BadUtf8 => "LINK-34",
            Self::BadReasonLength { .. } => "LINK-27",
        }
    }

    /// The close code of the `GOAWAY` that reports it.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::TooLarge { .. } => CloseCode::FRAME_TOO_LARGE,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The variant's name as the vector files spell it, for example `"TrailingBytes"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UnknownType { .. } => "UnknownType",
            Self::Truncated => "Truncated",
            Self::TrailingBytes => "TrailingBytes",
            Self::TooLarge { .. } => "TooLarge",
            Self::BadRole { .. } => "BadRole",
            Self::BadWorkspace => "BadWorkspace",
            Self::BadCredentialLength { .. } => "BadCredentialLength",
            Self::BadRegistrationLength { .. } => "BadRegistrationLength",
            Self::BadHandshakeLength { .. } => "BadHandshakeLength",
            Self::EmptyPayload => "EmptyPayload",
            Self::BadUtf8 => "BadUtf8",
            Self::BadReasonLength { .. } => "BadReasonLength",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownType { ty } => write!(f, "unknown frame type 0x{ty:02x}"),
            Self::Truncated => f.write_str("frame ends before a field does"),
            Self::TrailingBytes => f.write_str("bytes after the frame's last field"),
            Self::TooLarge { len } => {
                write!(f, "frame of {len} bytes exceeds {MAX_FRAME_LEN}")
            }
            Self::BadRole { role } => write!(f, "unknown role 0x{role:02x}"),
            Self::BadWorkspace => f.write_str("invalid workspace id"),
            Self::BadCredentialLength { len } => {
                write!(f, "credential of {len} bytes, expected 16 to 255")
            }
            Self::BadRegistrationLength { frame_type, len } => write!(
                f,
                "registration message of {len} bytes in {}",
                type_name(*frame_type).unwrap_or("frame")
            ),
            Self::BadHandshakeLength { len } => {
                write!(
                    f,
                    "handshake of {len} bytes, expected 1 to {MAX_HANDSHAKE_LEN}"
                )
            }
            Self::EmptyPayload => f.write_str("DATA frame without payload"),
            Self::BadUtf8 => f.write_str("GOAWAY reason is not UTF-8"),
            Self::BadReasonLength { len } => {
                write!(f, "GOAWAY reason of {len} bytes exceeds {MAX_REASON_LEN}")
            }
        }
    }
}

impl std::error::Error for FrameError {}
