//! The security-considerations cases (`spec/07-security-considerations.md`) that can be
//! checked from outside: of the relay ([`relay`]), of a host's sessions and relays
//! ([`sessions`]), and of where a host keeps its own state ([`host_state`]).

pub mod host_state;
pub mod relay;
pub mod sessions;
