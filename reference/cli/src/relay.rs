//! `tether relay` (skeleton: the relay crate's author fills this in).

use std::process::ExitCode;

use clap::Args;

/// Arguments of `tether relay`.
#[derive(Args)]
pub(crate) struct RelayArgs {}

pub(crate) fn run(_args: RelayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tether relay is not built yet")
}
