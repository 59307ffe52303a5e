//! The relay's routing state machine (`spec/03-relay-link.md`).
//!
//! STUB.
