//! The one error tree of `tether-proto`.
//!
//! Every way a peer can misbehave, every input this crate rejects, is one variant of a
//! layer's error enum, and every layer's enum is one variant of [`Error`]. Each variant
//! names the requirement it enforces ([`Error::requirement`], an id such as `TOKEN-4`
//! from `spec/`) and maps to what goes on the wire: a relay-link close code
//! ([`Error::close_code`]) or a JSON-RPC error code ([`Error::rpc_code`]).

use std::fmt;

use crate::channel::ChannelError;
use crate::cmd::CommandError;
use crate::link::{CloseCode, FrameError, LinkError};
use crate::token::TokenError;

/// Any error of the Tether protocol core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A pairing token could not be decoded or may not be used (`spec/02`).
    Token(TokenError),
    /// A relay frame could not be decoded (`spec/03`).
    Frame(FrameError),
    /// A relay-link peer broke the link's rules (`spec/03`).
    Link(LinkError),
    /// The Noise channel failed or was refused (`spec/04`).
    Channel(ChannelError),
    /// A command-protocol message was malformed or refused (`spec/05`).
    Command(CommandError),
}

impl Error {
    /// The id of the requirement this error enforces, for example `"TOKEN-4"`.
    pub fn requirement(&self) -> &'static str {
        match self {
            Self::Token(e) => e.requirement(),
            Self::Frame(e) => e.requirement(),
            Self::Link(e) => e.requirement(),
            Self::Channel(e) => e.requirement(),
            Self::Command(e) => e.requirement(),
        }
    }

    /// The relay-link close code that reports this error, where one does.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Token(_) => Some(CloseCode::TOKEN_REJECTED),
            Self::Frame(e) => Some(e.close_code()),
            Self::Link(e) => Some(e.close_code()),
            Self::Channel(e) => Some(e.close_code()),
            Self::Command(_) => None,
        }
    }

    /// The JSON-RPC error code that reports this error, where one does.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            Self::Command(e) => Some(e.rpc_code()),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(e) => write!(f, "pairing token: {e}"),
            Self::Frame(e) => write!(f, "relay frame: {e}"),
            Self::Link(e) => write!(f, "relay link: {e}"),
            Self::Channel(e) => write!(f, "secure channel: {e}"),
            Self::Command(e) => write!(f, "command protocol: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}
impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}
impl From<LinkError> for Error {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}
impl From<ChannelError> for Error {
    fn from(e: ChannelError) -> Self {
        Self::Channel(e)
    }
}
impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        Self::Command(e)
    }
}
