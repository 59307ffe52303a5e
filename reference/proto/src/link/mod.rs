//! The relay link (`spec/03-relay-link.md`, requirements `LINK-*`).
//!
//! - [`frame`]: the [`RelayFrame`] codec, one frame per WebSocket binary message.
//! - [`codes`]: the [`CloseCode`] registry carried by `GOAWAY` and `CLOSE`.

pub mod codes;
pub mod frame;
pub mod registration;
pub mod router;

pub use codes::CloseCode;
pub use frame::{FrameError, RelayFrame, Role, SessionId};

use std::fmt;

/// A relay-link peer broke a rule of the link's state machine (`spec/03`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError {
    /// A frame type arrived that the link's state does not allow (`LINK-8`).
    UnexpectedFrame {
        /// The frame type byte.
        frame_type: u8,
    },
}

impl LinkError {
    /// The requirement this error enforces.
    pub fn requirement(&self) -> &'static str {
        match self {
            Self::UnexpectedFrame { .. } => "LINK-8",
        }
    }

    /// The close code that reports it.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::UnexpectedFrame { .. } => CloseCode::UNEXPECTED_FRAME,
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedFrame { frame_type } => {
                write!(f, "frame type 0x{frame_type:02x} not allowed in this state")
            }
        }
    }
}
