//! The Tether reference relay: a tokio driver around the sans-IO routing core
//! [`tether_proto::link::router::Relay`] (`spec/03-relay-link.md`).
//!
//! One actor task owns the [`Relay`](tether_proto::link::router::Relay); every WebSocket
//! connection has a reader task that hands its binary messages to the actor and a writer
//! task fed by the actor through a small bounded channel. The actor takes a frame from
//! [`Relay::poll_transmit`](tether_proto::link::router::Relay::poll_transmit) only when the
//! link's writer has room, so the core's queue bounds (`LINK-22`, `LINK-23`) are the real
//! backpressure.
//!
//! The operator can add, change and remove workspaces while the relay runs
//! ([`RelayControl`], from [`RelayServer::control`] or [`RelayHandle::control`]); a change
//! applies to the links already open (`LINK-37`): changing or removing a credential ends
//! the workspace's links with `GOAWAY AUTH_FAILED`, switching remote access off ends them
//! with `GOAWAY REMOTE_ACCESS_DISABLED`.
//!
//! The files are layered, each referring only to those below it: `server` above the
//! `actor`, the connections (`conn`) and the control handle (`control`), above `input`
//! (what they tell the actor), above `change` (what a reconfiguration did), with
//! `client`, `config`, `stats` and `error` at the bottom.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether_relay::RelayError> {
//! use tether_relay::{RelayServer, RelayServerConfig};
//!
//! let config = RelayServerConfig::new("127.0.0.1:0".parse().map_err(|_| {
//!     tether_relay::RelayError::Config("bad address".into())
//! })?)
//! .with_workspace("acme", b"a workspace credential", true)?;
//! let relay = RelayServer::bind(config).await?.spawn();
//! println!("relay at {}", relay.url());
//! relay.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod actor;
mod change;
pub mod client;
mod config;
mod conn;
mod control;
mod error;
mod input;
mod server;
mod stats;

pub use change::{ChangeKind, WorkspaceChange};
pub use config::{RelayServerConfig, TlsFiles};
pub use control::RelayControl;
pub use error::RelayError;
pub use server::{RelayHandle, RelayServer};
pub use stats::RelayStats;
pub use tether_proto::link::router::{RelayLimits, WorkspaceConfig};
