//! The cases, one module per chapter of `spec/`: each case's id, level, description and
//! time limit are declared with [`case!`](crate::case) right above its body, and each
//! module lists its cases, in spec order, in a `CASES` constant.
//!
//! | module | chapter | target |
//! |---|---|---|
//! | [`token`] | `spec/02`, the pairing token | host |
//! | [`link`] | `spec/03`, the relay link | relay |
//! | [`channel`] | `spec/04`, the secure channel | host |
//! | [`command`] | `spec/05`, the command protocol: envelope, `command/exec`, sandbox, threads, approvals, instructions, hand-off | host |
//! | [`registries`] | `spec/06`, the registries | relay |
//! | [`security`] | `spec/07`, security considerations | relay and host |
//!
//! The steps cases share (register a host, open a session, expect a `GOAWAY`, pair a
//! device, run a command under a sandbox mode) are in the private `steps` module.
//!
//! Relay cases use [`CaseResult`](crate::CaseResult) (`Err` fails); host cases use
//! [`Res`](crate::host::Res), whose [`Stop`](crate::host::Stop) fails or skips.

pub mod channel;
pub mod command;
pub mod link;
pub mod registries;
pub mod security;
mod steps;
pub mod token;

use crate::case::Case;

/// Every case the runner knows, relay cases first, then host cases, in spec order.
pub fn catalogue() -> Vec<Case> {
    [
        // The relay (spec/03, with the REG and SEC cases a relay answers for).
        link::framing::CASES,
        link::auth::CASES,
        link::sessions::CASES,
        link::liveness::CASES,
        link::encoding::CASES,
        link::reconfigure::CASES,
        registries::CASES,
        security::relay::CASES,
        link::pipelining::CASES,
        // The host.
        token::CASES,
        channel::handshake::CASES,
        channel::decision::CASES,
        channel::transport::CASES,
        channel::admission::CASES,
        command::envelope::CASES,
        command::host_info::CASES,
        command::exec::CASES,
        command::sandbox::modes::CASES,
        command::control::CASES,
        security::sessions::CASES,
        command::sandbox::confinement::CASES,
        command::sandbox::containment::CASES,
        channel::flood::CASES,
        channel::records::CASES,
        command::untrusted_input::CASES,
        security::host_state::CASES,
        command::threads::CASES,
        command::approvals::CASES,
        command::instructions::CASES,
        command::handoff::CASES,
        command::test_agent::CASES,
        command::codex_schema::CASES,
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn ids_name_their_requirement_and_are_unique() {
        let cases = catalogue();
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        for c in &cases {
            assert!(c.id.starts_with(&format!("{}/", c.requirement)), "{}", c.id);
            assert!(!c.description.is_empty());
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), cases.len());
    }
}
