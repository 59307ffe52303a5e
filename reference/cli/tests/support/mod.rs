//! What the end-to-end tests share: the `tether-testkit` pieces bound to this crate's
//! `tether` binary and to the workspaces the tests use (acme, other).
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) use tether_testkit::LIMIT;
pub(crate) use tether_testkit::cli::{Relay, Tether};
pub(crate) use tether_testkit::dirs::TempDir;
pub(crate) use tether_testkit::proc::{Output, Proc, run};
pub(crate) use tether_testkit::wait::eventually;

pub(crate) const CRED: &str = "acme-credential-0123456789";
pub(crate) const OTHER_CRED: &str = "other-credential-0123456789";

/// This crate's `tether` binary.
pub(crate) const TETHER: Tether = Tether::new(env!("CARGO_BIN_EXE_tether"));

/// `tether` without the environment the tests control.
pub(crate) fn tether() -> Command {
    TETHER.command()
}

/// `tether host run --state STATE --relay URL --workspace acme`, the credential in
/// `TETHER_CREDENTIAL` (`SEC-23`), `TMPDIR` beside the state directory (`SEC-22`).
pub(crate) fn host_run(state: &Path, relay_url: &str) -> Command {
    TETHER.host_run(state, relay_url, "acme", CRED)
}

/// `tether relay --listen ADDR` with workspaces acme and other, started.
pub(crate) fn start_relay(listen: &str) -> Relay {
    Relay::start(TETHER.relay_command(listen, &[("acme", CRED), ("other", OTHER_CRED)]))
}

/// `tether host pair` → the token text (retried until `host run` has written run.json).
pub(crate) fn mint_token(host_state: &Path, ttl: u64) -> String {
    TETHER.mint_token(host_state, ttl)
}

/// The status (`"pass"`, `"fail"`, `"skip"`, …) of case `id` in a `tether conformance --json`
/// report; panics if the report has no such case.
pub(crate) fn case_status(report: &serde_json::Value, id: &str) -> String {
    report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == id)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no case {id} in the report"))
        .to_owned()
}

/// A relay, a host registered with it, and a controller paired with the host.
pub(crate) struct World {
    pub(crate) relay: Relay,
    pub(crate) host: Proc,
    pub(crate) host_state: TempDir,
    pub(crate) ctl_state: TempDir,
}

/// A directory for files a sandboxed command must see (see
/// [`tether_testkit::dirs::outside_tmp`]).
pub(crate) fn outside_tmp() -> PathBuf {
    tether_testkit::dirs::outside_tmp(env!("CARGO_TARGET_TMPDIR"))
}
