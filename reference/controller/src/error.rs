//! [`ControllerError`]: every way a controller operation fails, each naming what failed and,
//! where the protocol has one, the close code and the requirement behind it.

use std::fmt;
use std::path::PathBuf;

use tether_proto::cmd::ErrorObject;
use tether_proto::link::CloseCode;
use tether_proto::token::TokenError;

/// How a session or link ended with a close code: the code, who sent it and on which level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code carried by `CLOSE` or `GOAWAY`.
    pub code: CloseCode,
    /// True if the host or relay sent it, false if this controller did.
    pub by_peer: bool,
    /// True for a `GOAWAY` (the whole link), false for a `CLOSE` (one session).
    pub link_level: bool,
}

impl CloseInfo {
    /// The requirement that calls for the code on this level, if any (for example
    /// `CHAN-12` for `TOKEN_REJECTED`).
    pub fn requirement(&self) -> Option<&'static str> {
        if self.link_level {
            self.code.goaway_requirement()
        } else {
            self.code.close_requirement()
        }
    }
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(d) = self.code.description() {
            write!(f, ": {d}")?;
        }
        if let Some(r) = self.requirement() {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// Any failure of the controller library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// A file of the state directory could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A state file is malformed, of an unknown version, or inconsistent.
    #[error("state file {}: {detail}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The pairing token does not decode or has expired.
    #[error("pairing token: {0} ({req})", req = .0.requirement())]
    Token(TokenError),
    /// The relay URL is not a `ws://` or `wss://` URL this controller can reach.
    #[error("relay URL {url}: {detail}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// Plain `ws://` to a non-loopback address without `--insecure` (`LINK-2`).
    #[error(
        "relay URL {url}: plain ws:// is allowed only to loopback addresses; use wss:// or allow it explicitly (LINK-2)"
    )]
    InsecureUrl {
        /// The URL.
        url: String,
    },
    /// TLS configuration failed (bad CA file, no usable roots).
    #[error("TLS: {0}")]
    Tls(String),
    /// The TCP, TLS or WebSocket connection to the relay failed.
    #[error("cannot connect to relay {url}: {detail}")]
    Connect {
        /// The relay URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The relay ended the link with `GOAWAY`.
    #[error("relay ended the link: {info}{}", if reason.is_empty() { String::new() } else { format!(" [{reason}]") })]
    GoAway {
        /// The code.
        info: CloseInfo,
        /// The relay's reason text.
        reason: String,
    },
    /// The link to the relay was lost (connection closed, I/O error, nothing received for
    /// 60 s, `LINK-36`).
    #[error("relay link lost: {detail}")]
    LinkLost {
        /// What happened.
        detail: String,
    },
    /// The session ended with a `CLOSE`.
    #[error("session closed: {0}")]
    Closed(CloseInfo),
    /// Message 2 did not arrive in time (`CHAN-13`).
    #[error("no answer from the host within {secs} s (CHAN-13)")]
    HandshakeTimeout {
        /// The timeout in seconds.
        secs: u64,
    },
    /// The protocol core refused something.
    #[error("{0} ({req})", req = .0.requirement())]
    Protocol(tether_proto::Error),
    /// The host answered a request with an error response.
    #[error("{method} failed: {code}{name}: {message}", code = error.code, name = error.code_name().map(|n| format!(" {n}")).unwrap_or_default(), message = error.message)]
    Rpc {
        /// The request's method.
        method: String,
        /// The error object.
        error: ErrorObject,
    },
    /// The host's answer did not have the shape of the method's result (`CMD-13`).
    #[error("bad result of {method}: {detail}")]
    BadResult {
        /// The request's method.
        method: String,
        /// What is wrong.
        detail: String,
    },
    /// No paired host matches, or several do.
    #[error("{0}")]
    Host(String),
    /// A bad argument (device name, argument vector).
    #[error("{0}")]
    Usage(String),
}

impl ControllerError {
    /// The close code behind the error, if it is a `CLOSE` or `GOAWAY`.
    pub fn close_info(&self) -> Option<CloseInfo> {
        match self {
            Self::Closed(info) | Self::GoAway { info, .. } => Some(*info),
            _ => None,
        }
    }

    /// The close code behind the error, if it is a `CLOSE` or `GOAWAY`.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.close_info().map(|i| i.code)
    }

    /// The host's error object, if the error is an error response to a request.
    pub fn rpc_error(&self) -> Option<&ErrorObject> {
        match self {
            Self::Rpc { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The JSON-RPC code of an error response, if the error is one (`spec/05` 5.12).
    pub fn rpc_code(&self) -> Option<i64> {
        self.rpc_error().map(|e| e.code)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The name of a host's error (`ThreadNotFound`): `data.error` when the host sent one
/// (`CMD-10`; letters and digits only, at most 40), else the registry name of the code.
pub fn error_name(error: &ErrorObject) -> Option<String> {
    let from_data = error
        .data
        .as_ref()
        .and_then(|d| d.get("error"))
        .and_then(|v| v.as_str())
        .filter(|n| !n.is_empty() && n.len() <= 40 && n.chars().all(|c| c.is_ascii_alphanumeric()));
    from_data
        .map(str::to_owned)
        .or_else(|| tether_proto::cmd::codes::name(error.code).map(str::to_owned))
}

/// One plain sentence for a host's error response, with its code and name:
/// `remote access is switched off on the host (-32010 RemoteAccessDisabled)`.
///
/// The well-known refusals get a fixed text; otherwise the host's message is shown, cut to
/// 200 characters and stripped of control characters.
pub fn describe_rpc_error(error: &ErrorObject) -> String {
    use tether_proto::cmd::codes;
    let fixed = match error.code {
        codes::REMOTE_ACCESS_DISABLED => Some("remote access is switched off on the host"),
        codes::NOT_AUTHORIZED => Some("this device is no longer authorized on the host"),
        codes::APPROVAL_ALREADY_RESOLVED => Some("the approval was already answered"),
        codes::OVERLOADED => Some("the host is overloaded; try again later"),
        _ => None,
    };
    let text = match fixed {
        Some(t) => t.to_owned(),
        None => {
            let clean: String = error
                .message
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            if clean.is_empty() {
                codes::description(error.code).unwrap_or("error").to_owned()
            } else {
                clean
            }
        }
    };
    match error_name(error) {
        Some(name) => format!("{text} ({} {name})", error.code),
        None => format!("{text} ({})", error.code),
    }
}

impl From<tether_proto::Error> for ControllerError {
    fn from(e: tether_proto::Error) -> Self {
        Self::Protocol(e)
    }
}

impl From<TokenError> for ControllerError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_info_names_code_and_requirement() {
        let info = CloseInfo {
            code: CloseCode::TOKEN_REJECTED,
            by_peer: true,
            link_level: false,
        };
        assert_eq!(
            info.to_string(),
            "TOKEN_REJECTED (34): pairing token rejected (CHAN-12)"
        );
        let goaway = CloseInfo {
            code: CloseCode::REMOTE_ACCESS_DISABLED,
            by_peer: true,
            link_level: true,
        };
        assert_eq!(goaway.requirement(), Some("LINK-11"));
        let close = CloseInfo {
            link_level: false,
            ..goaway
        };
        assert_eq!(close.requirement(), Some("CHAN-26"));
    }

    #[test]
    fn cmd_55_rpc_errors_are_described_with_code_and_name() {
        let e = ErrorObject::from(&tether_proto::cmd::CommandError::RemoteAccessDisabled);
        assert_eq!(
            describe_rpc_error(&e),
            "remote access is switched off on the host (-32010 RemoteAccessDisabled)"
        );
        let e = ErrorObject::from(&tether_proto::cmd::CommandError::ThreadNotFound {
            thread_id: "thr_x".to_owned(),
        });
        let text = describe_rpc_error(&e);
        assert!(text.contains("thr_x"), "{text}");
        assert!(text.ends_with("(-32013 ThreadNotFound)"), "{text}");
        // Without data, the registry name; control characters never reach the terminal.
        let bare = ErrorObject {
            code: -32013,
            message: "no\u{1b}[31m thread".to_owned(),
            data: Some(serde_json::json!({"error": "not a name!"})),
        };
        let text = describe_rpc_error(&bare);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.ends_with("(-32013 THREAD_NOT_FOUND)"), "{text}");
        let unknown = ErrorObject {
            code: -1,
            message: String::new(),
            data: None,
        };
        assert_eq!(describe_rpc_error(&unknown), "error (-1)");
    }
}
