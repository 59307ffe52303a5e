//! Counters a relay exposes to its operator (`LINK-29`).

use std::collections::BTreeMap;

use tether_proto::link::CloseCode;

/// A snapshot of the relay's counters (`LINK-29`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// WebSocket connections accepted since start.
    pub links_accepted: u64,
    /// Links open now.
    pub links_open: usize,
    /// Sessions open now.
    pub sessions_open: usize,
    /// Hosts that completed registration since start (`LINK-12`).
    pub hosts_registered: u64,
    /// `GOAWAY`s the relay sent and `CLOSE`s it originated, by close code (`LINK-29`):
    /// refused links, ended sessions, dropped data (`SLOW_READER`). Includes the
    /// `GOING_AWAY` of a shutdown.
    pub refused_by_code: BTreeMap<CloseCode, u64>,
    /// The same refusals by the requirement enforced (`LINK-10`, `LINK-22`, …).
    pub refused_by_requirement: BTreeMap<&'static str, u64>,
    /// `GOAWAY`s received from clients, by code.
    pub peer_goaway_by_code: BTreeMap<CloseCode, u64>,
    /// Connections that failed before the WebSocket was up (TLS or HTTP upgrade).
    pub handshakes_failed: u64,
    /// Connections closed on accept because their address already had the most links
    /// allowed (`SEC-17`).
    pub refused_per_address: u64,
}

impl RelayStats {
    /// How many refusals carried `code`.
    pub fn refused(&self, code: CloseCode) -> u64 {
        self.refused_by_code.get(&code).copied().unwrap_or(0)
    }

    pub(crate) fn count_refusal(&mut self, code: CloseCode, requirement: &'static str) {
        *self.refused_by_code.entry(code).or_insert(0) += 1;
        *self.refused_by_requirement.entry(requirement).or_insert(0) += 1;
    }
}
