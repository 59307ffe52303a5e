//! The values of the Codex connection: request ids, the `initialize` result, events
//! and errors.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The id of a request on the Codex connection (`RequestId = string | int64` in Codex's
/// schema). Codex numbers its own requests with integers from 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id.
    Integer(i64),
    /// A string id.
    String(String),
}

impl From<i64> for RequestId {
    fn from(id: i64) -> Self {
        Self::Integer(id)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Integer(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// Codex's `initialize` result (`InitializeResponse`): what the host can report about
/// the Codex it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// Codex's user agent, e.g. `tether-host/0.169.0 (Debian 12.0.0; x86_64) …`.
    pub user_agent: String,
    /// The absolute path of Codex's `CODEX_HOME` (a host path: not for controllers).
    pub codex_home: String,
    /// `unix` or `windows`.
    pub platform_family: String,
    /// `linux`, `macos` or `windows`.
    pub platform_os: String,
    /// Members a later Codex may add.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// What is wrong with a line Codex wrote to stdout ([`CodexEvent::Malformed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedKind {
    /// Longer than the line limit ([`CodexConfig::max_line`](super::CodexConfig::max_line)); its bytes were skipped.
    TooLong,
    /// Not JSON (or not UTF-8).
    NotJson,
    /// JSON, but neither a request, a notification nor a response.
    NotMessage,
    /// A response whose id is no request waiting for one (for instance one that timed
    /// out).
    UnknownResponse,
}

/// Something Codex did, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum CodexEvent {
    /// A notification: `{method, params?}` (such as `turn/started`, `item/completed`).
    Notification {
        /// The method name.
        method: String,
        /// Its `params` (`Null` when absent).
        params: Value,
        /// The top-level `emittedAtMs` Codex puts on its notifications (Unix ms), if any.
        emitted_at_ms: Option<i64>,
    },
    /// A request Codex makes of the host (such as
    /// `item/commandExecution/requestApproval`); answer it with
    /// [`CodexAppServer::respond`](super::CodexAppServer::respond) or
    /// [`CodexAppServer::respond_error`](super::CodexAppServer::respond_error).
    Request {
        /// Its id, to answer with.
        id: RequestId,
        /// The method name.
        method: String,
        /// Its `params` (`Null` when absent).
        params: Value,
    },
    /// A line on stdout that is no JSON-RPC message the host can use; it was skipped.
    Malformed {
        /// What is wrong with it.
        kind: MalformedKind,
        /// Details (the parse error, the line's length).
        detail: String,
        /// The start of the line (at most 200 characters, lossy UTF-8).
        excerpt: String,
    },
    /// The process ended (sent once, last). Every request that was waiting has failed
    /// with [`CodexError::Exited`] before this is sent.
    Exited {
        /// How it ended (`None`: it could not be waited for).
        status: Option<ExitStatus>,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
}

/// Why starting Codex or talking to it failed.
///
/// The stderr tails quoted here (and in [`CodexEvent::Exited`]) are for the host's own
/// log and its operator: they can hold host paths and Codex's diagnostics, so a host
/// does not forward them to controllers as they are.
#[derive(Debug, thiserror::Error)]
pub enum CodexError {
    /// No usable Codex binary; `detail` names where it was looked for.
    #[error("no Codex binary: {detail}")]
    NoBinary {
        /// Where it was looked for and what was found.
        detail: String,
    },
    /// The configured working directory cannot be used.
    #[error("cannot run Codex in {}: {reason}", cwd.display())]
    BadWorkDir {
        /// The directory.
        cwd: PathBuf,
        /// Why not.
        reason: &'static str,
    },
    /// The process could not be started.
    #[error("cannot start {} app-server: {source}", bin.display())]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Codex did not answer `initialize` in time.
    #[error(
        "codex app-server did not answer initialize within {after:?}{}",
        quote(stderr_tail)
    )]
    HandshakeTimeout {
        /// The limit.
        after: Duration,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// Codex answered the request with a JSON-RPC error.
    #[error("codex refused {method}: {message} (code {code})")]
    Rpc {
        /// The method of the request.
        method: String,
        /// The error's `code` (Codex uses -32600 for nearly everything).
        code: i64,
        /// The error's `message`.
        message: String,
        /// The error's `data`, if any.
        data: Option<Value>,
    },
    /// The process ended (before or while the request was waiting).
    #[error("codex app-server exited ({}){}", describe_status(status.as_ref()), quote(stderr_tail))]
    Exited {
        /// How it ended (`None`: it could not be waited for).
        status: Option<ExitStatus>,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// No response within the request's time limit.
    #[error("codex app-server did not answer {method} within {after:?}")]
    Timeout {
        /// The method of the request.
        method: String,
        /// The limit.
        after: Duration,
    },
    /// Writing to or reading from the process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The host closed the connection ([`CodexAppServer::shutdown`](super::CodexAppServer::shutdown)).
    #[error("the connection to codex app-server is closed")]
    Closed,
    /// Codex sent something the host cannot use as the answer (an `initialize` result
    /// without its members, an error object without `code`/`message`).
    #[error("unexpected answer from codex app-server: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
}

/// `exit status: N`, `signal: N …`, or `status unknown`.
fn describe_status(status: Option<&ExitStatus>) -> String {
    status.map_or_else(|| "status unknown".to_owned(), ToString::to_string)
}

/// `stderr` quoted after a newline, or nothing when empty.
fn quote(stderr: &str) -> String {
    if stderr.is_empty() {
        "; its stderr was empty".to_owned()
    } else {
        format!("; last lines of its stderr:\n{stderr}")
    }
}
