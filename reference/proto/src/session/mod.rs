//! Session state machines: the controller's and the host's side of one session.
//!
//! The relay's routing state machine lives in [`crate::link::router`].

pub mod ratelimit;

pub use ratelimit::TokenBucket;
