//! The secure channel (`spec/04-secure-channel.md`, requirements `CHAN-*`).
//!
//! STUB: replaced by the Noise channel.

use std::fmt;

use crate::link::CloseCode;

/// The Noise channel failed or was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelError {
    /// Placeholder until the channel lands.
    HandshakeFailed,
}

impl ChannelError {
    /// The requirement this error enforces.
    pub fn requirement(&self) -> &'static str {
        "CHAN-8"
    }

    /// The close code that reports it.
    pub fn close_code(&self) -> CloseCode {
        CloseCode::HANDSHAKE_FAILED
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("handshake failed")
    }
}
