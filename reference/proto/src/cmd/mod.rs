//! The command protocol (`spec/05-command-protocol.md`, requirements `CMD-*`).
//!
//! STUB: replaced by the JSON-RPC types.

use std::fmt;

/// A command-protocol message was malformed or refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// Placeholder until the command layer lands.
    Parse,
}

impl CommandError {
    /// The requirement this error enforces.
    pub fn requirement(&self) -> &'static str {
        "CMD-3"
    }

    /// The JSON-RPC error code that reports it.
    pub fn rpc_code(&self) -> i64 {
        -32700
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parse error")
    }
}
