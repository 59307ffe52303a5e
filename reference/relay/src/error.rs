//! Errors of the relay server.

use std::net::SocketAddr;

/// Why the relay could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The configuration (TOML file, `NAME=CREDENTIAL` pair, limits) is invalid.
    #[error("invalid relay configuration: {0}")]
    Config(String),
    /// Plain `ws://` was asked for on an address that is not loopback, without the
    /// operator's explicit `insecure` (`LINK-2`).
    #[error(
        "refusing plain ws:// on non-loopback address {0}: give a TLS certificate and key \
         (wss://), or set insecure to allow it explicitly (LINK-2)"
    )]
    PlainNonLoopback(SocketAddr),
    /// A file or socket operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A client's WebSocket link to a relay failed (set-up, send, receive or a frame that
    /// does not decode).
    #[error("{0}")]
    Link(String),
    /// The TLS certificate or key could not be loaded or used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The relay is no longer running (a reconfiguration came too late).
    #[error("the relay has stopped")]
    Stopped,
}

impl RelayError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
