//! [`CommandError`]: every way a command-protocol message can be malformed or refused.

use std::fmt;

use super::codes;

/// A command-protocol message was malformed or refused.
///
/// Each variant names the requirement it enforces ([`CommandError::requirement`]) and the
/// JSON-RPC error code that reports it ([`CommandError::rpc_code`]). Envelope errors come
/// out of [`Message::parse`](super::Message::parse), typed errors out of the `from_*`
/// decoders in [`methods`](super::methods); the rest are raised by a host while it serves
/// a request, and carried here so that every Tether error code has one variant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The message is longer than a transport message can carry (`CMD-2`).
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// The message starts with a UTF-8 byte-order mark (`CMD-3`).
    Bom,
    /// The message is not valid UTF-8 (`CMD-3`).
    InvalidUtf8,
    /// The message is not exactly one JSON value (`CMD-3`).
    Parse {
        /// What the JSON parser reported.
        detail: String,
    },
    /// Arrays and objects nest deeper than 32 levels (`CMD-4`).
    TooDeep,
    /// An object holds the same member name twice (`CMD-5`).
    DuplicateKey {
        /// The repeated name.
        key: String,
    },
    /// The message is a JSON array: batches are not allowed (`CMD-6`).
    Batch,
    /// The message is a JSON value other than an object or array (`CMD-6`).
    NotObject,
    /// The `jsonrpc` member is not the string `"2.0"` (`CMD-7`).
    BadVersion,
    /// The `id` member is not an integer within ±(2^53-1) or a string of at most 64
    /// bytes (`CMD-8`).
    BadId,
    /// The object is not a well-formed request, notification or response (`CMD-9`).
    InvalidRequest {
        /// Which rule it broke.
        detail: String,
    },
    /// The `error` member of an error response is malformed (`CMD-10`).
    BadErrorObject {
        /// Which rule it broke.
        detail: String,
    },
    /// No method of that name (`CMD-12`).
    MethodNotFound {
        /// The method name received.
        method: String,
    },
    /// The params of a known method are missing members, of the wrong type, or out of
    /// range (`CMD-13`).
    InvalidParams {
        /// The method.
        method: String,
        /// What is wrong with them.
        detail: String,
    },
    /// A result does not have the shape its method defines (`CMD-13`).
    BadResult {
        /// The method whose result it is.
        method: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A request other than `initialize` arrived before `initialize` succeeded (`CMD-15`).
    NotInitialized,
    /// `initialize` arrived a second time on the session (`CMD-15`).
    AlreadyInitialized,
    /// `initialize` asked for a protocol version the receiver does not speak (`CMD-15`).
    UnsupportedProtocolVersion {
        /// The version asked for.
        version: String,
    },
    /// A thread id that the host does not know (`CMD-18`).
    ThreadNotFound {
        /// The id received.
        thread_id: String,
    },
    /// `turn/start` on a thread that already has a running turn (`CMD-22`).
    TurnAlreadyActive {
        /// The thread.
        thread_id: String,
    },
    /// A turn id that does not name the running turn of the thread (`CMD-23`).
    TurnNotFound {
        /// The id received.
        turn_id: String,
    },
    /// An approval answer arrived after the approval was resolved (`CMD-32`).
    ApprovalAlreadyResolved,
    /// A process id that names no running `command/exec` process of the session (`CMD-38`).
    ProcessNotFound {
        /// The id received.
        process_id: String,
    },
    /// The host cannot enforce the requested sandbox mode and is not configured to
    /// degrade (`CMD-46`).
    SandboxDenied {
        /// The mode requested.
        mode: String,
    },
    /// A hand-off bundle that may not be imported (`CMD-53`).
    InvalidBundle {
        /// What is wrong with it.
        detail: String,
    },
    /// Remote access is switched off on the host (`CMD-55`).
    RemoteAccessDisabled,
    /// The controller's device was revoked or expired during the session (`CMD-56`).
    NotAuthorized,
    /// The request was cancelled before it finished (`CMD-57`).
    Cancelled,
    /// The session already has 64 requests in flight (`CMD-58`).
    Overloaded,
    /// The receiver failed while serving the request (`CMD-60`).
    Internal {
        /// What failed, without secrets.
        detail: String,
    },
}

impl CommandError {
    /// The id of the requirement this error enforces, for example `"CMD-5"`.
    pub fn requirement(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "CMD-2",
            Self::Bom | Self::InvalidUtf8 | Self::Parse { .. } => "CMD-3",
            Self::TooDeep => "CMD-4",
            Self::DuplicateKey { .. } => "CMD-5",
            Self::Batch | Self::NotObject => "CMD-6",
            Self::BadVersion => "CMD-7",
            Self::BadId => "CMD-8",
            Self::InvalidRequest { .. } => "CMD-9",
            Self::BadErrorObject { .. } => "CMD-10",
            Self::MethodNotFound { .. } => "CMD-12",
            Self::InvalidParams { .. } | Self::BadResult { .. } => "CMD-13",
            Self::NotInitialized
            | Self::AlreadyInitialized
            | Self::UnsupportedProtocolVersion { .. } => "CMD-15",
            Self::ThreadNotFound { .. } => "CMD-18",
            Self::TurnAlreadyActive { .. } => "CMD-22",
            Self::TurnNotFound { .. } => "CMD-23",
            Self::ApprovalAlreadyResolved => "CMD-32",
            Self::ProcessNotFound { .. } => "CMD-38",
            Self::SandboxDenied { .. } => "CMD-46",
            Self::InvalidBundle { .. } => "CMD-53",
            Self::RemoteAccessDisabled => "CMD-55",
            Self::NotAuthorized => "CMD-56",
            Self::Cancelled => "CMD-57",
            Self::Overloaded => "CMD-58",
            Self::Internal { .. } => "CMD-60",
        }
    }

    /// The JSON-RPC error code that reports this error (see [`codes`]).
    pub fn rpc_code(&self) -> i64 {
        match self {
            Self::TooLarge { .. }
            | Self::Bom
            | Self::InvalidUtf8
            | Self::Parse { .. }
            | Self::TooDeep
            | Self::DuplicateKey { .. } => codes::PARSE_ERROR,
            Self::Batch
            | Self::NotObject
            | Self::BadVersion
            | Self::BadId
            | Self::InvalidRequest { .. }
            | Self::BadErrorObject { .. }
            | Self::AlreadyInitialized => codes::INVALID_REQUEST,
            Self::MethodNotFound { .. } => codes::METHOD_NOT_FOUND,
            Self::InvalidParams { .. } | Self::UnsupportedProtocolVersion { .. } => {
                codes::INVALID_PARAMS
            }
            Self::BadResult { .. } | Self::Internal { .. } => codes::INTERNAL_ERROR,
            Self::NotInitialized => codes::NOT_INITIALIZED,
            Self::ThreadNotFound { .. } => codes::THREAD_NOT_FOUND,
            Self::TurnAlreadyActive { .. } => codes::TURN_ALREADY_ACTIVE,
            Self::TurnNotFound { .. } => codes::TURN_NOT_FOUND,
            Self::ApprovalAlreadyResolved => codes::APPROVAL_ALREADY_RESOLVED,
            Self::ProcessNotFound { .. } => codes::PROCESS_NOT_FOUND,
            Self::SandboxDenied { .. } => codes::SANDBOX_DENIED,
            Self::InvalidBundle { .. } => codes::INVALID_THREAD_BUNDLE,
            Self::RemoteAccessDisabled => codes::REMOTE_ACCESS_DISABLED,
            Self::NotAuthorized => codes::NOT_AUTHORIZED,
            Self::Cancelled => codes::REQUEST_CANCELLED,
            Self::Overloaded => codes::OVERLOADED,
        }
    }

    /// The variant's name, as used in vector files (`"DuplicateKey"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "TooLarge",
            Self::Bom => "Bom",
            Self::InvalidUtf8 => "InvalidUtf8",
            Self::Parse { .. } => "Parse",
            Self::TooDeep => "TooDeep",
            Self::DuplicateKey { .. } => "DuplicateKey",
            Self::Batch => "Batch",
            Self::NotObject => "NotObject",
            Self::BadVersion => "BadVersion",
            Self::BadId => "BadId",
            Self::InvalidRequest { .. } => "InvalidRequest",
            Self::BadErrorObject { .. } => "BadErrorObject",
            Self::MethodNotFound { .. } => "MethodNotFound",
            Self::InvalidParams { .. } => "InvalidParams",
            Self::BadResult { .. } => "BadResult",
            Self::NotInitialized => "NotInitialized",
            Self::AlreadyInitialized => "AlreadyInitialized",
            Self::UnsupportedProtocolVersion { .. } => "UnsupportedProtocolVersion",
            Self::ThreadNotFound { .. } => "ThreadNotFound",
            Self::TurnAlreadyActive { .. } => "TurnAlreadyActive",
            Self::TurnNotFound { .. } => "TurnNotFound",
            Self::ApprovalAlreadyResolved => "ApprovalAlreadyResolved",
            Self::ProcessNotFound { .. } => "ProcessNotFound",
            Self::SandboxDenied { .. } => "SandboxDenied",
            Self::InvalidBundle { .. } => "InvalidBundle",
            Self::RemoteAccessDisabled => "RemoteAccessDisabled",
            Self::NotAuthorized => "NotAuthorized",
            Self::Cancelled => "Cancelled",
            Self::Overloaded => "Overloaded",
            Self::Internal { .. } => "Internal",
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => write!(
                f,
                "message of {len} bytes exceeds the session's limit ({} bytes, {} with records)",
                crate::limits::MAX_TRANSPORT_PLAINTEXT_LEN,
                crate::limits::MAX_MESSAGE_LEN
            ),
            Self::Bom => f.write_str("message starts with a byte-order mark"),
            Self::InvalidUtf8 => f.write_str("message is not valid UTF-8"),
            Self::Parse { detail } => write!(f, "parse error: {detail}"),
            Self::TooDeep => write!(
                f,
                "JSON nests deeper than {} levels",
                crate::limits::MAX_JSON_DEPTH
            ),
            Self::DuplicateKey { key } => write!(f, "duplicate object member {key:?}"),
            Self::Batch => f.write_str("batches are not supported"),
            Self::NotObject => f.write_str("message is not a JSON object"),
            Self::BadVersion => f.write_str("\"jsonrpc\" must be \"2.0\""),
            Self::BadId => f.write_str(
                "\"id\" must be an integer within +-(2^53-1) or a string of at most 256 bytes",
            ),
            Self::InvalidRequest { detail } => write!(f, "invalid request: {detail}"),
            Self::BadErrorObject { detail } => write!(f, "invalid error object: {detail}"),
            Self::MethodNotFound { method } => write!(f, "method not found: {method}"),
            Self::InvalidParams { method, detail } => {
                write!(f, "invalid params for {method}: {detail}")
            }
            Self::BadResult { method, detail } => {
                write!(f, "invalid result of {method}: {detail}")
            }
            Self::NotInitialized => f.write_str("session not initialized"),
            Self::AlreadyInitialized => f.write_str("session already initialized"),
            Self::UnsupportedProtocolVersion { version } => {
                write!(f, "unsupported protocol version {version:?}")
            }
            Self::ThreadNotFound { thread_id } => write!(f, "thread not found: {thread_id}"),
            Self::TurnAlreadyActive { thread_id } => {
                write!(f, "thread {thread_id} already has a running turn")
            }
            Self::TurnNotFound { turn_id } => write!(f, "turn not found: {turn_id}"),
            Self::ApprovalAlreadyResolved => f.write_str("approval already resolved"),
            Self::ProcessNotFound { process_id } => {
                write!(f, "process not found: {process_id}")
            }
            Self::SandboxDenied { mode } => write!(f, "sandbox mode {mode} cannot be enforced"),
            Self::InvalidBundle { detail } => write!(f, "invalid thread bundle: {detail}"),
            Self::RemoteAccessDisabled => f.write_str("remote access disabled"),
            Self::NotAuthorized => f.write_str("device not authorized"),
            Self::Cancelled => f.write_str("request cancelled"),
            Self::Overloaded => f.write_str("too many requests in flight"),
            Self::Internal { detail } => write!(f, "internal error: {detail}"),
        }
    }
}

impl std::error::Error for CommandError {}
