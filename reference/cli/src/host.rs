//! `tether host ...` (skeleton: the host crate's author fills this in).

use std::process::ExitCode;

use clap::Subcommand;

/// Subcommands of `tether host`.
#[derive(Subcommand)]
pub(crate) enum HostCommand {
    /// Connect to a relay and serve controllers.
    Run,
}

pub(crate) fn run(_command: HostCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tether host is not built yet")
}
