//! The connection to a real Codex: `codex app-server`, a child process speaking JSON-RPC
//! as JSON lines on stdio (pinned release 0.169.0; schema in `spec/codex/0.169.0/`).
//!
//! This is the lower layer of the host's `codex` agent backend: it starts and supervises
//! the process and moves JSON-RPC messages; what they mean (threads, turns, items,
//! approvals) is the caller's.
//!
//! - [`CodexConfig`]: which binary (host configuration, else `$TETHER_CODEX_BIN`, else
//!   `codex` on `PATH`), arguments, environment (by default the host's, so the user's own
//!   `codex login` is used), working directory (never the system temporary directory),
//!   time limits.
//! - [`CodexAppServer::spawn`]: starts the process in its own process group (the whole
//!   group is killed when the [`CodexAppServer`] is dropped), performs the `initialize` /
//!   `initialized` handshake (client `tether-host`) and returns Codex's
//!   [`InitializeResult`] and the receiver of [`CodexEvent`]s.
//! - [`CodexAppServer::request`] (ids are integers counting from 1, each request bounded
//!   in time), [`CodexAppServer::notify`], and [`CodexAppServer::respond`] /
//!   [`CodexAppServer::respond_error`] for Codex's own requests (such as
//!   `item/commandExecution/requestApproval`; Codex's ids count from 0).
//! - The events: Codex's notifications and requests, lines that are not JSON-RPC
//!   messages ([`CodexEvent::Malformed`], skipped), and, once, the process's exit
//!   ([`CodexEvent::Exited`]), after every pending request has failed with
//!   [`CodexError::Exited`]. The channel is bounded: when it is full, reading Codex's
//!   stdout waits, and so does Codex; nothing is dropped. Responses to the host's
//!   requests do not go through it, but they are read after the events before them, so
//!   **keep taking events while awaiting a request** (from another task), or the request
//!   can time out behind a full channel. Once the receiver is dropped, events are
//!   discarded (responses still reach their requests).
//!
//! Wire facts this follows, as measured against Codex 0.169.0: Codex omits
//! `"jsonrpc"` and ignores it, so the host writes messages without it; a request whose
//! params type is not null needs a `params` member; notifications carry a top-level
//! `emittedAtMs` (Unix milliseconds, not in the schema); Codex answers requests it
//! cannot parse with nothing at all, so every request here has a time limit.

mod config;
mod lines;
mod process;
mod types;

pub use config::{CODEX_BIN_ENV, CodexConfig, CodexEnv, MAX_LINE};
pub use process::{CLIENT_NAME, CodexAppServer, CodexEvents};
pub use types::{CodexError, CodexEvent, InitializeResult, MalformedKind, RequestId};
