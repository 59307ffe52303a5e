//! `tether pair`, `tether exec`, `tether status` (skeleton: the controller crate's author
//! fills this in).

use std::process::ExitCode;

use clap::Args;

/// Arguments of `tether pair`.
#[derive(Args)]
pub(crate) struct PairArgs {}

/// Arguments of `tether exec`.
#[derive(Args)]
pub(crate) struct ExecArgs {}

/// Arguments of `tether status`.
#[derive(Args)]
pub(crate) struct StatusArgs {}

pub(crate) fn pair(_args: PairArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tether pair is not built yet")
}

pub(crate) fn exec(_args: ExecArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tether exec is not built yet")
}

pub(crate) fn status(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("tether status is not built yet")
}
