//! The secure channel (`spec/04-secure-channel.md`, requirements `CHAN-*`):
//! `Noise_IK_25519_ChaChaPoly_BLAKE2s` between a controller (initiator) and a host
//! (responder), over snow.
//!
//! This module is sans-IO: it turns bytes into bytes and never reads a clock. The order
//! of calls is:
//!
//! ```text
//!  controller                                           host
//!  ──────────                                           ────
//!  Prologue::new(workspace, host key, session id)       Prologue::new(...)   (CHAN-2)
//!  Initiator::new(s, host key, prologue, payload)
//!    .message1()  ───────── OPEN / INCOMING ─────────►  [rate limit CHAN-14, remote access CHAN-26]
//!                                                       Responder::new(s, prologue)
//!                                                         .read_message1(msg1) → PendingResponder
//!                                                       [store checks CHAN-9..12, durable writes,
//!                                                        confirmation CHAN-24]
//!                                                       .write_message2(host info, out) → Transport
//!  .read_message2(msg2) → (Transport, HostInfo) ◄────── DATA
//!  Transport::encrypt/decrypt ◄══════════ DATA ══════►  Transport::encrypt/decrypt
//! ```
//!
//! - [`Prologue`]: the bytes that bind a handshake to its routing context.
//! - [`HandshakePayload`], [`Timestamp`]: message 1's payload; [`HostInfo`]: message 2's.
//! - [`Initiator`], [`Responder`], [`PendingResponder`]: the handshake, as consuming
//!   type-states.
//! - [`Transport`]: strict-nonce transport with rekey every 65536 messages.
//! - [`Flow`], [`Record`]: what a transport message carries — a version 1 message, or a
//!   record of a session with windows and messages of up to 16 MiB (`channel.flow`,
//!   section 4.13).
//! - [`TetherResolver`], [`noise_builder`]: the one place that picks the primitives, and
//!   refuses all-zero Diffie-Hellman outputs (`CHAN-7`); the relay registration uses it too.
//!   X25519 and ChaCha20-Poly1305 come from aws-lc-rs by default (feature `aws-lc`), from
//!   snow's pure-Rust primitives without it ([`BACKEND`] says which).
//! - [`confirmation_code`]: the 6-digit pairing code (`CHAN-23`).

#[cfg(feature = "aws-lc")]
mod aws_lc;
mod confirm;
mod crypto;
mod error;
pub mod flow;
mod handshake;
mod payload;
mod prologue;
pub mod records;
mod transport;

pub use confirm::{CONFIRM_LABEL, confirmation_code};
pub use crypto::{BACKEND, IK_PROTOCOL_NAME, TetherResolver, ik_params, noise_builder};
pub use error::ChannelError;
pub use flow::{CreditLedger, Flow, Framing, OutputChunk, Received};
pub use handshake::{Initiator, PendingResponder, Responder};
pub use payload::{
    HOST_INFO_PROTOCOL, HandshakePayload, HostInfo, KIND_PAIR, KIND_SESSION, MAX_DEVICE_NAME_LEN,
    MAX_HOST_INFO_LEN, PAYLOAD_VERSION, PathStyle, Timestamp,
};
pub use prologue::{PROLOGUE_LABEL, Prologue};
pub use records::{Output, Record};
pub use transport::Transport;
