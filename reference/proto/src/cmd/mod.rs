//! The command protocol (`spec/05-command-protocol.md`, requirements `CMD-*`).
//!
//! JSON-RPC 2.0 over the secure channel: one message per transport message, in a strict
//! profile of JSON (UTF-8 without BOM, no duplicate member names, nesting at most 32).
//! The method names and camelCase members follow the Codex app-server protocol.
//!
//! Two steps turn bytes into a typed message:
//!
//! 1. [`Message::parse`] (or [`Message::parse_or_reject`], which keeps the id to answer)
//!    applies the envelope rules `CMD-1`..`CMD-10` and classifies the message as a
//!    [`Request`], [`Notification`], [`Response`] or [`ErrorResponse`];
//! 2. [`ClientRequest::from_request`], [`ClientNotification::from_notification`],
//!    [`ServerRequest::from_request`] or [`ServerNotification::from_notification`]
//!    decode the method and its params (`CMD-12`, `CMD-13`), and
//!    [`RequestParams::decode_result`] decodes a result.
//!
//! The other way, `into_request(id)` / `to_notification()` / [`Response::new`] /
//! [`ErrorResponse::new`] build messages and [`Message::to_bytes`] writes them.
//!
//! ```
//! use tether_proto::cmd::{ClientRequest, Message};
//!
//! let bytes = br#"{"jsonrpc":"2.0","id":7,"method":"thread/read","params":{"threadId":"t1"}}"#;
//! let Message::Request(request) = Message::parse(bytes)? else { unreachable!() };
//! let ClientRequest::ThreadRead(params) = ClientRequest::from_request(&request)? else {
//!     unreachable!()
//! };
//! assert_eq!(params.thread_id, "t1");
//! # Ok::<(), tether_proto::cmd::CommandError>(())
//! ```
//!
//! The session rules a host applies before a method runs — initialize first, the in-flight
//! limit, a refused device, methods not offered (`CMD-61`'s order) — are [`gate`]'s; who is
//! asked to approve a command, which answer wins and when an approval runs out are
//! [`approvals`]'. Both are sans-IO state machines the host drives; what a method does
//! (running a command, a thread's turns) is the host's.

pub mod approvals;
pub mod codes;
mod envelope;
mod error;
pub mod gate;
pub mod methods;
pub mod strict;
pub mod types;

pub use envelope::{
    ErrorObject, ErrorResponse, Id, JSONRPC_VERSION, MAX_ID_LEN, MAX_SAFE_INTEGER, Message,
    Notification, Rejection, Request, Response,
};
pub use error::CommandError;
pub use methods::{
    ClientNotification, ClientRequest, PROTOCOL_NAME, Params, RequestParams, ServerNotification,
    ServerRequest,
};

/// Most requests a host serves at once for one session; more are refused with
/// `-32001` (`CMD-58`).
pub const MAX_IN_FLIGHT_REQUESTS: usize = 64;

/// Capability names (`spec/06-registries.md`, "Capabilities"; `CMD-16`).
pub mod capability {
    /// The deterministic test agent (`CMD-59`).
    pub const AGENT_TEST: &str = "agent.test";
    /// `command/exec` and `command/exec/terminate`.
    pub const COMMAND_EXEC: &str = "command.exec";
    /// `tether/thread/export` and `tether/thread/import`.
    pub const THREAD_HANDOFF: &str = "thread.handoff";
    /// Confirmation codes at pairing (`CHAN-23`, `CHAN-24`).
    pub const PAIRING_CONFIRM: &str = "pairing.confirm";
    /// Records: flow-control windows and messages of up to 16 MiB (`CHAN-31`; message 2
    /// only).
    pub const CHANNEL_FLOW: &str = "channel.flow";
    /// Kernel sandbox on Linux (Landlock).
    pub const SANDBOX_LANDLOCK: &str = "sandbox.landlock";
    /// Every registered name.
    pub const ALL: &[&str] = &[
        AGENT_TEST,
        COMMAND_EXEC,
        THREAD_HANDOFF,
        PAIRING_CONFIRM,
        SANDBOX_LANDLOCK,
        CHANNEL_FLOW,
    ];
}
