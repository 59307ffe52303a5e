//! The close-code registry (`spec/06-registries.md`, "Close codes").
//!
//! One 16-bit space serves `GOAWAY` (a whole link) and `CLOSE` (one session):
//!
//! | range | meaning |
//! |---|---|
//! | 0–15 | link level: sent by a relay in `GOAWAY`, or by a client leaving |
//! | 16–31 | session level, sent in `CLOSE` by the relay (and by a host for `SESSION_LIMIT`, `SESSION_ID_IN_USE`, `UNKNOWN_SESSION`) |
//! | 32–63 | end to end, sent by a host or controller in `CLOSE` (the relay forwards them) |
//! | 64–65535 | reserved; a receiver treats an unknown code as [`CloseCode::PROTOCOL_ERROR`] for display only |

use std::fmt;

/// A close code of the relay link, carried in `GOAWAY` and `CLOSE` frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl CloseCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// Every registered code, in numeric order.
            pub const ALL: &'static [CloseCode] = &[$(Self::$name),*];

            /// The registry name (`"AUTH_FAILED"`), or `None` for an unregistered code.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// A short human description, or `None` for an unregistered code.
            pub fn description(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// Orderly close, nothing wrong.
    NORMAL = 0, "closed normally";
    /// A frame could not be decoded (`LINK-4`).
    PROTOCOL_ERROR = 1, "malformed frame";
    /// The `HELLO` version is not supported (`LINK-3`).
    UNSUPPORTED_VERSION = 2, "unsupported protocol version";
    /// A frame exceeded the size limit in force (`LINK-5`, `LINK-6`).
    FRAME_TOO_LARGE = 3, "frame too large";
    /// A frame type arrived that the link state does not allow (`LINK-8`).
    UNEXPECTED_FRAME = 4, "unexpected frame";
    /// Unknown workspace or wrong credential (`LINK-10`).
    AUTH_FAILED = 5, "authentication failed";
    /// `READY` not reached within the auth deadline (`LINK-7`).
    AUTH_TIMEOUT = 6, "authentication deadline passed";
    /// The host's registration proof did not verify (`LINK-12`).
    REGISTRATION_FAILED = 7, "host registration proof failed";
    /// Remote access is switched off for the workspace or the host (`LINK-11`, `CHAN-26`).
    REMOTE_ACCESS_DISABLED = 8, "remote access disabled";
    /// Nothing received within the idle timeout (`LINK-24`).
    IDLE_TIMEOUT = 9, "idle timeout";
    /// Another link registered the same host key (`LINK-14`).
    REPLACED = 10, "replaced by a newer registration";
    /// The sender is shutting down.
    GOING_AWAY = 11, "going away";
    /// The peer stopped reading and the queue bound was reached (`LINK-22`, `LINK-23`).
    SLOW_READER = 12, "slow reader";
    /// No host with that key is registered in the controller's workspace (`LINK-17`).
    HOST_UNREACHABLE = 16, "host unreachable";
    /// The host or controller link has its maximum number of sessions (`LINK-20`).
    SESSION_LIMIT = 17, "session limit reached";
    /// The session id is already in use on that host (`LINK-16`).
    SESSION_ID_IN_USE = 18, "session id in use";
    /// A frame named a session that does not exist on this link (`LINK-19`).
    UNKNOWN_SESSION = 19, "unknown session";
    /// The link of the other end closed (`LINK-21`).
    PEER_GONE = 20, "peer gone";
    /// The controller's static key is not paired with the host, or was revoked or has
    /// expired through inactivity (`CHAN-9`).
    NOT_AUTHORIZED = 32, "device not authorized";
    /// Message 1 carried a timestamp not newer than the last one accepted (`CHAN-10`).
    REPLAYED = 33, "message 1 replayed";
    /// The pairing token is unknown, used, expired or its secret is wrong (`CHAN-12`).
    TOKEN_REJECTED = 34, "pairing token rejected";
    /// The handshake failed: a message did not decrypt or its payload was malformed (`CHAN-8`).
    HANDSHAKE_FAILED = 35, "handshake failed";
    /// A transport message failed to decrypt (`CHAN-18`).
    DECRYPT_FAILED = 36, "decryption failed";
    /// The host is refusing handshakes faster than its rate limit (`CHAN-14`).
    RATE_LIMITED = 37, "rate limited";
    /// The host's user refused the pairing confirmation code, or did not answer (`CHAN-24`).
    CONFIRMATION_REJECTED = 38, "pairing confirmation rejected";
    /// Message 1's timestamp is too far ahead of the host's clock (`CHAN-11`).
    CLOCK_SKEW = 39, "clock skew too large";
    /// The peer sent a command-protocol message that breaks the rules of `spec/05`.
    COMMAND_PROTOCOL_ERROR = 40, "command protocol error";
    /// The host failed internally (for example its store could not make a required write
    /// durable) and refuses rather than answer without it (`CHAN-10`, `CHAN-12`).
    HOST_ERROR = 41, "host internal error";
    /// The peer broke a record or window rule of a session with records (`CHAN-32`,
    /// `CHAN-34`, `CHAN-35`).
    FLOW_CONTROL_ERROR = 42, "record or window rule broken";
}

impl CloseCode {
    /// The requirement behind this code when it arrives in a session's `CLOSE` (`spec/03`,
    /// `spec/04`), or `None` where no requirement calls for it.
    pub fn close_requirement(self) -> Option<&'static str> {
        Some(match self {
            Self::HOST_UNREACHABLE => "LINK-17",
            Self::SESSION_LIMIT => "LINK-20",
            Self::SESSION_ID_IN_USE => "LINK-16",
            Self::UNKNOWN_SESSION => "LINK-19",
            Self::PEER_GONE => "LINK-21",
            Self::SLOW_READER => "LINK-22",
            Self::NOT_AUTHORIZED => "CHAN-9",
            Self::REPLAYED => "CHAN-10",
            Self::CLOCK_SKEW => "CHAN-11",
            Self::TOKEN_REJECTED | Self::HOST_ERROR => "CHAN-12",
            Self::HANDSHAKE_FAILED => "CHAN-8",
            Self::DECRYPT_FAILED => "CHAN-18",
            Self::RATE_LIMITED => "CHAN-14",
            Self::CONFIRMATION_REJECTED => "CHAN-24",
            Self::REMOTE_ACCESS_DISABLED => "CHAN-26",
            Self::FLOW_CONTROL_ERROR => "CHAN-34",
            _ => return None,
        })
    }

    /// The requirement behind this code when it arrives in a link's `GOAWAY` (`spec/03`),
    /// or `None` where no requirement calls for it.
    pub fn goaway_requirement(self) -> Option<&'static str> {
        Some(match self {
            Self::PROTOCOL_ERROR => "LINK-4",
            Self::UNSUPPORTED_VERSION => "LINK-3",
            Self::FRAME_TOO_LARGE => "LINK-5",
            Self::UNEXPECTED_FRAME => "LINK-8",
            Self::AUTH_FAILED => "LINK-10",
            Self::AUTH_TIMEOUT => "LINK-7",
            Self::REGISTRATION_FAILED => "LINK-12",
            Self::REMOTE_ACCESS_DISABLED => "LINK-11",
            Self::IDLE_TIMEOUT => "LINK-24",
            Self::REPLACED => "LINK-14",
            Self::SLOW_READER => "LINK-23",
            _ => return None,
        })
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unregistered code {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_to_end_code_has_a_requirement() {
        for code in CloseCode::ALL {
            if (32..=39).contains(&code.0) || code.0 == 41 || code.0 == 42 {
                assert!(code.close_requirement().is_some(), "{code}");
            }
        }
    }

    #[test]
    fn a_code_can_mean_two_requirements() {
        let code = CloseCode::REMOTE_ACCESS_DISABLED;
        assert_eq!(code.goaway_requirement(), Some("LINK-11"));
        assert_eq!(code.close_requirement(), Some("CHAN-26"));
        assert_eq!(CloseCode::SLOW_READER.goaway_requirement(), Some("LINK-23"));
        assert_eq!(CloseCode::SLOW_READER.close_requirement(), Some("LINK-22"));
        assert_eq!(CloseCode(999).goaway_requirement(), None);
    }
}
