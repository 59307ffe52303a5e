//! Pairing tokens (`spec/02-pairing-token.md`, requirements `TOKEN-*`).
//!
//! STUB: replaced by the codec.

use std::fmt;

/// A pairing token could not be decoded or may not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Placeholder until the codec lands.
    Malformed,
}

impl TokenError {
    /// The requirement this error enforces.
    pub fn requirement(&self) -> &'static str {
        "TOKEN-1"
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed token")
    }
}
