//! Session state machines: controller, host and relay routing.
//!
//! STUB: replaced by the state machines.
