//! The relay the controller tests share: the reference relay in-process
//! (`tether_testkit::inproc`) with workspaces acme and other, reached through a
//! recording tap (`tether_testkit::tap`) that keeps every byte it forwards.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_relay::RelayHandle;
use tether_testkit::inproc;
use tether_testkit::tap::Tap;
use tether_testkit::wait::within;

pub(crate) const CREDENTIAL: &str = "acme-credential-0123456789";
pub(crate) const OTHER_CREDENTIAL: &str = "other-credential-0123456789";

pub(crate) fn rng() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

pub(crate) struct TestRelay {
    /// The tap's URL: hosts and controllers reach the relay through it.
    pub(crate) url: String,
    /// Every byte between the relay and its links, both ways.
    pub(crate) tap: Arc<Mutex<Vec<u8>>>,
    pub(crate) relay: RelayHandle,
}

pub(crate) async fn start_relay() -> TestRelay {
    let relay = inproc::relay(&[
        ("acme", CREDENTIAL.as_bytes()),
        ("other", OTHER_CREDENTIAL.as_bytes()),
    ])
    .await;
    let tap = Tap::start(&relay.local_addr().to_string());
    TestRelay {
        url: format!("ws://{}/", tap.addr),
        tap: tap.seen,
        relay,
    }
}

/// Runs a test body within 20 s.
pub(crate) async fn bounded<T>(f: impl Future<Output = T>) -> T {
    within(Duration::from_secs(20), "the test", f).await
}
