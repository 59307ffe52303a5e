//! `tether-proto`: the sans-IO core of the Tether protocol.
//!
//! This crate holds everything about Tether that is bytes and rules, and nothing that is
//! sockets, files, threads or clocks:
//!
//! | module | layer | spec chapter |
//! |---|---|---|
//! | [`token`] | the pairing token carried by a QR code | `spec/02-pairing-token.md` (`TOKEN-*`) |
//! | [`link`] | relay frames, close codes, host registration, relay routing | `spec/03-relay-link.md` (`LINK-*`) |
//! | [`channel`] | `Noise_IK_25519_ChaChaPoly_BLAKE2s` between controller and host | `spec/04-secure-channel.md` (`CHAN-*`) |
//! | [`cmd`] | the JSON-RPC 2.0 command protocol | `spec/05-command-protocol.md` (`CMD-*`) |
//! | [`session`] | controller and host session state machines | chapters 4 and 5 |
//!
//! It is not a relay, a host or a controller: the tokio crates `tether-relay`,
//! `tether-host` and `tether-controller` drive the state machines here. Inputs go in through
//! `handle_*` methods, outputs come out through `poll_*` methods, and the caller passes the
//! current time in; no type in this crate reads a clock or touches the network.
//!
//! Every error is one variant of [`Error`], which names the requirement it enforces
//! ([`Error::requirement`]) and maps to the code that goes on the wire.

pub mod channel;
pub mod cmd;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod limits;
pub mod link;
pub mod session;
pub mod time;
pub mod token;

pub use error::Error;
