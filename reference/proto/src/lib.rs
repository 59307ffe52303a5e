//! `tether-proto`: the sans-IO core of the Tether protocol.
//!
//! This crate holds everything about Tether that is bytes and rules, and nothing that is
//! sockets, files, threads or clocks:
//!
//! | module | layer | spec chapter |
//! |---|---|---|
//! | [`token`] | the pairing token carried by a QR code | `spec/02-pairing-token.md` (`TOKEN-*`) |
//! | [`link`] | relay frames, close codes, relay URLs, the client end of a link ([`link::LinkClient`]), host registration, relay routing | `spec/03-relay-link.md` (`LINK-*`) |
//! | [`channel`] | `Noise_IK_25519_ChaChaPoly_BLAKE2s` between controller and host | `spec/04-secure-channel.md` (`CHAN-*`) |
//! | [`cmd`] | the JSON-RPC 2.0 command protocol, a session's gate and the approvals | `spec/05-command-protocol.md` (`CMD-*`) |
//! | [`session`] | controller and host session state machines | chapters 4 and 5 |
//! | [`keys`] | X25519 keys and fingerprints | chapters 2 and 4 |
//! | [`limits`] | every number the spec fixes | all |
//! | [`time`] | UNIX time in seconds, as the handshake carries it | `spec/04` |
//! | [`error`] | the one error tree | all |
//!
//! It is not a relay, a host or a controller: the tokio crates `tether-relay`,
//! `tether-host`, `tether-controller` (and `tether-link` for a client's socket) drive the
//! state machines here. Inputs go in through `handle_*` methods, outputs come out through
//! `poll_*` methods, and the caller passes the current time in: the state machines never
//! read a clock (`time::UnixTime::now` is for drivers, which pass the time in), and nothing
//! here touches the network.
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
