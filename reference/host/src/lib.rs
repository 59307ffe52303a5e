//! The Tether reference host: a tokio driver around the host session state machine of
//! `tether-proto`.
//!
//! - [`state`]: the state directory (`--state DIR`): static key, paired devices, pairing
//!   tokens, settings, written atomically under a lock; [`state::DiskHostStore`] is the
//!   durable [`tether_proto::session::HostStore`].
//! - [`runtime`]: the relay link, driving `tether_proto::link::LinkClient` (registration
//!   `LINK-12`, keepalive `LINK-25`, `LINK-36`, the client's rules of chapter 3) over
//!   `tether-link`'s socket, and the sessions on it; reconnects with jittered backoff
//!   (`LINK-28`).
//! - [`commands`]: the command protocol of a session: its messages pass the core's gate
//!   (`tether_proto::cmd::gate`, the `CMD-61` checks); then `command/exec` with streamed
//!   output (sandboxed modes through the `sandbox-exec` launcher, `tether-sandbox`),
//!   `command/exec/terminate`, `tether/cancelled`, and the thread methods it hands
//!   to [`threads`] (`spec/05`).
//! - [`threads`]: threads, turns with the deterministic test agent, and hand-off,
//!   host-wide and durable (`spec/05` 5.3 to 5.5, 5.9, 5.11); who is asked to approve and
//!   which answer wins is the core's (`tether_proto::cmd::approvals`).
//! - [`instructions`]: AGENTS.md discovery and safe reading (`spec/05` 5.8, `CMD-48` …
//!   `CMD-51`, `CMD-72`).
//! - [`qr`]: the pairing token as a QR code, for a terminal or as a PNG (`TOKEN-14`).
//!
//! The modules are layered, each referring only to those below it: [`runtime`] above
//! [`commands`] (the dispatcher), above [`threads`], above `exec` (starting and
//! supervising a process, sandbox and limits; its public items are re-exported by
//! [`commands`]), above `answer` (responses fitted to one message), [`state`],
//! [`instructions`] and [`qr`].

mod answer;
pub mod codex;
pub mod commands;
mod exec;
pub mod instructions;
pub mod qr;
pub mod runtime;
pub mod state;
pub mod threads;

pub use commands::{AgentBackend, CommandConfig, CommandSession, ExecEvent};
pub use runtime::{HostOptions, RunError, RunEvent, run};
pub use state::{DiskHostStore, StateDir, StateError};
