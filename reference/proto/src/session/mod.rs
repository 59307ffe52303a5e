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
mod send;
pub mod store;

pub use controller::{
    Controller, ControllerConfig, ControllerEvent, DEFAULT_CONTROLLER_CREDIT, Purpose,
};
pub use host::{Host, HostConfig, HostEvent, RefusalReason};
pub use ratelimit::{Budget, HandshakeLimiter, TokenBucket};
pub use store::{DeviceRecord, HostStore, MemoryHostStore, Refusal};
