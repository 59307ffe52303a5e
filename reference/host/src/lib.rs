//! The Tether reference host: a tokio driver around the host session state machine of
//! `tether-proto`.
//!
//! - [`state`]: the state directory (`--state DIR`): static key, paired devices, pairing
//!   tokens, settings, written atomically under a lock; [`state::DiskHostStore`] is the
//!   durable [`tether_proto::session::HostStore`].
//! - [`runtime`]: the relay link: connect out (`ws://` on loopback, `wss://` otherwise,
//!   `LINK-2`), register (`LINK-12`), serve sessions, keepalive (`LINK-25`, `LINK-36`),
//!   reconnect with jittered backoff (`LINK-28`).
//! - [`commands`]: the command protocol of a session: `initialize`, `command/exec` with
//!   streamed output, `command/exec/terminate` (`spec/05`); the dispatcher of a session's
//!   requests, to its processes and to the threads.
//! - [`threads`]: threads, turns with the deterministic test agent, approvals and
//!   hand-off, host-wide and durable (`spec/05` 5.3 to 5.5, 5.9, 5.11).
//! - [`instructions`]: AGENTS.md discovery (`CMD-48` … `CMD-51`).
//! - [`qr`]: the pairing token as a QR code, for a terminal or as a PNG (`TOKEN-14`).
//!
//! The modules are layered, each referring only to those below it: [`runtime`] above
//! [`commands`] (the dispatcher), above [`threads`], above `exec` (starting and
//! supervising a process, sandbox and limits; its public items are re-exported by
//! [`commands`]), above `answer` (responses fitted to one message), [`state`],
//! [`instructions`] and [`qr`].

mod answer;
pub mod commands;
mod exec;
pub mod instructions;
pub mod qr;
pub mod runtime;
pub mod state;
pub mod threads;

pub use commands::{CommandConfig, CommandSession, ExecEvent};
pub use runtime::{HostOptions, RunError, RunEvent, run};
pub use state::{DiskHostStore, StateDir, StateError};
