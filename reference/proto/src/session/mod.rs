//! Session state machines: the controller's and the host's side of a session.
//!
//! - [`Controller`]: one session from a controller to a host (Noise initiator).
//! - [`Host`]: every session of a host (Noise responder), with the checks of `CHAN-9` …
//!   `CHAN-27` in the order `spec/04` gives, and a [`HostStore`] for what must be durable.
//!
//! The relay's routing state machine lives in [`crate::link::router`].

pub mod controller;
pub mod host;
pub mod ratelimit;
pub mod store;

pub use controller::{
    Controller, ControllerConfig, ControllerEvent, DEFAULT_CONTROLLER_CREDIT, Purpose,
};
pub use host::{Host, HostConfig, HostEvent, RefusalReason};
pub use ratelimit::{Budget, HandshakeLimiter, TokenBucket};
pub use store::{DeviceRecord, HostStore, MemoryHostStore, Refusal};

use std::collections::VecDeque;

use crate::channel::{Flow, Transport};
use crate::link::{CloseCode, RelayFrame, SessionId};

/// Encrypts whatever `flow` lets go now (`CHAN-34`) and queues each as a `DATA` frame of
/// `session`; the close code to end the session with if encryption failed (`CHAN-20`).
/// The one send path of both state machines.
fn pump(
    transport: &mut Transport,
    flow: &mut Flow,
    session: SessionId,
    transmits: &mut VecDeque<RelayFrame>,
) -> Result<(), CloseCode> {
    let mut plaintext = Vec::new();
    loop {
        plaintext.clear();
        if !flow.next_plaintext(&mut plaintext) {
            return Ok(());
        }
        let mut payload = Vec::new();
        transport
            .encrypt(&plaintext, &mut payload)
            .map_err(|e| e.close_code())?;
        transmits.push_back(RelayFrame::Data { session, payload });
    }
}
