//! `tether-controller`: the Tether reference controller, a tokio client library.
//!
//! It connects to a relay as a controller (`spec/03`), opens Noise sessions to hosts
//! (`spec/04`) and speaks the command protocol over them (`spec/05`). It is a thin driver:
//! every protocol rule lives in `tether-proto` (`tether_proto::session::Controller` for the
//! handshake and transport); this crate owns sockets, timers, files and tasks.
//!
//! | module | what |
//! |---|---|
//! | [`state`] | the state directory: static key, paired hosts, last timestamps (`CHAN-5`) |
//! | [`link`] | one link to a relay: a task driving `tether_proto::link::LinkClient` over `tether-link`'s socket, routing `DATA`/`CLOSE` to sessions |
//! | [`session`] | one session: handshake, requests by id, notifications, `CLOSE` |
//! | [`ops`] | pair, exec, status, a bare session for a bridge ([`connect_session`]) |
//! | [`threads`] | threads, turns with approvals, hand-off between hosts |
//! | [`backoff`] | reconnection with jittered exponential backoff (`LINK-28`) |
//!
//! The `tether pair`, `exec`, `status`, `thread`, `turn` and `connect` commands and the `e2e/*`
//! benchmarks are built on it; the conformance runner is not (it plays controllers with
//! `tether-proto`'s sans-IO pieces, so that it can misbehave). Every failure is a [`ControllerError`]; a `CLOSE` or `GOAWAY`
//! is reported with its code and the requirement behind it ([`CloseInfo`]).

pub mod backoff;
pub mod error;
pub mod link;
pub mod ops;
pub mod session;
pub mod state;
pub mod threads;

pub use backoff::{Backoff, connect_with_retry};
pub use error::{CloseInfo, ControllerError, describe_rpc_error, error_name};
pub use link::{Link, LinkEnd, LinkOptions, PendingReady, SessionInput};
pub use ops::{
    Connection, ExecOutcome, ExecRequest, HostStatus, OutputSink, Paired, Reachable, connect,
    connect_session, exec, exec_into, exec_on, exec_to, initialize_params, open_session, pair,
    status,
};
pub use session::{
    PendingReply, RpcError, Session, SessionEnd, SessionEvent, SessionOptions, random_session_id,
};
pub use state::{ControllerState, PairedHost};
pub use threads::{
    ApprovalRequest, Approver, DecisionFuture, FixedDecision, Handoff, HandoffError, HandoffStep,
    TurnEvent, TurnOutcome, follow_turn, handoff, run_turn, run_turn_until, thread_export,
    thread_import, thread_list, thread_list_all, thread_read, thread_resume, thread_start,
};
