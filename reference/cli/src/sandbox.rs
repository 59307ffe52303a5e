//! `tether sandbox-exec`: restrict this process with the kernel sandbox, then become the
//! program (`spec/05`, "Sandbox").
//!
//! The host runs every command as `tether sandbox-exec --mode MODE [--writable DIR]... --
//! PROGRAM ARGS...`: this process is single-threaded when it restricts itself, and `exec`
//! hands the restrictions to the program and all its children. If the kernel cannot
//! enforce everything the mode asks for, the program is not run (exit 125) unless
//! `--allow-degraded` is given (`CMD-46`).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::Args;
use tether_proto::cmd::types::SandboxMode;
use tether_sandbox::{Policy, restrict_self};

/// Exit status when the sandbox could not be set up or is incomplete.
const EXIT_SANDBOX: u8 = 125;
/// Exit status when the program could not be executed.
const EXIT_EXEC: u8 = 127;

/// Arguments of `tether sandbox-exec`.
#[derive(Args)]
pub(crate) struct SandboxExecArgs {
    /// `read-only`, `workspace-write` or `danger-full-access`.
    #[arg(long, value_parser = parse_mode)]
    mode: SandboxMode,
    /// A directory `workspace-write` may write under (repeatable).
    #[arg(long = "writable", value_name = "DIR")]
    writable: Vec<PathBuf>,
    /// Run the program even if the kernel enforces less than the mode asks for.
    #[arg(long)]
    allow_degraded: bool,
    /// Print what the kernel enforces, as one JSON line on stdout, and run nothing.
    #[arg(long, conflicts_with = "program")]
    probe: bool,
    /// The program and its arguments.
    #[arg(last = true, value_name = "PROGRAM")]
    program: Vec<String>,
}

fn parse_mode(s: &str) -> Result<SandboxMode, String> {
    SandboxMode::ALL
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| {
            format!("unknown sandbox mode {s:?} (read-only, workspace-write, danger-full-access)")
        })
}

pub(crate) fn run(args: SandboxExecArgs) -> anyhow::Result<ExitCode> {
    if !args.probe && args.program.is_empty() {
        anyhow::bail!(
            "sandbox-exec: no program given (usage: tether sandbox-exec --mode MODE -- PROGRAM ARGS...)"
        );
    }
    let policy = Policy {
        mode: args.mode,
        writable_roots: args.writable,
    };
    let enforcement = match restrict_self(&policy) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tether sandbox-exec: {e}");
            return Ok(ExitCode::from(EXIT_SANDBOX));
        }
    };
    if args.probe {
        println!(
            "{}",
            serde_json::to_string(&enforcement).context("serializing the enforcement report")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !enforcement.is_complete() && !args.allow_degraded {
        eprintln!(
            "tether sandbox-exec: the kernel cannot fully enforce {} (file system: {}, network: {:?}); \
             refusing to run the program (CMD-46)",
            policy.mode.as_str(),
            if enforcement.filesystem {
                "enforced"
            } else {
                "not enforced"
            },
            enforcement.network,
        );
        return Ok(ExitCode::from(EXIT_SANDBOX));
    }
    let (program, rest) = args
        .program
        .split_first()
        .context("sandbox-exec: no program given")?;
    let error = Command::new(program).args(rest).exec();
    eprintln!("tether sandbox-exec: cannot run {program}: {error}");
    Ok(ExitCode::from(EXIT_EXEC))
}
