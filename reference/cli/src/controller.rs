//! `tether pair`, `tether exec`, `tether status`: the controller side, on the
//! `tether-controller` library.
//!
//! Every failure is one line on stderr naming what failed (which token, which host, which
//! close code and requirement) and exit status 1; usage errors exit 2.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tether_controller::{
    ControllerError, ControllerState, ExecRequest, LinkOptions, PairedHost, exec_into as run_exec,
    pair as run_pair, status as run_status,
};
use tether_proto::cmd::types::SandboxMode;
use tether_proto::keys::fingerprint;
use tether_proto::token::PairingToken;

/// How to reach the relay (shared by the three commands).
#[derive(Args)]
pub(crate) struct RelayOptions {
    /// Extra CA certificate (PEM) to trust for `wss://` relays, e.g. a test relay's
    /// self-signed certificate.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Allow plain `ws://` to a relay that is not on a loopback address (LINK-2).
    #[arg(long)]
    insecure: bool,
}

impl RelayOptions {
    pub(crate) fn link_options(&self) -> LinkOptions {
        LinkOptions {
            ca_cert: self.ca_cert.clone(),
            insecure: self.insecure,
            ..LinkOptions::default()
        }
    }
}

/// Arguments of `tether pair`.
#[derive(Args)]
pub(crate) struct PairArgs {
    /// The pairing token shown by `tether host pair` (`TETHER:...`).
    token: String,
    /// The controller's state directory (key and paired hosts).
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The workspace credential to present to the relay.
    #[arg(
        long,
        required_unless_present = "credential_file",
        conflicts_with = "credential_file"
    )]
    credential: Option<String>,
    /// A file holding the workspace credential on one line, readable by this account only
    /// (mode 0600): keeps it off the command line.
    #[arg(long, value_name = "FILE")]
    credential_file: Option<PathBuf>,
    /// The name the host records for this device.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    relay: RelayOptions,
}

/// Sandbox modes as `--sandbox` spells them.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Sandbox {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

impl From<Sandbox> for SandboxMode {
    fn from(s: Sandbox) -> Self {
        match s {
            Sandbox::ReadOnly => Self::ReadOnly,
            Sandbox::WorkspaceWrite => Self::WorkspaceWrite,
            Sandbox::DangerFullAccess => Self::DangerFullAccess,
        }
    }
}

/// Arguments of `tether exec`.
#[derive(Args)]
pub(crate) struct ExecArgs {
    /// The controller's state directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The paired host: its name or a prefix of its key or fingerprint (needed when
    /// several hosts are paired).
    #[arg(long)]
    host: Option<String>,
    /// Sandbox mode to ask for.
    #[arg(long, value_enum, default_value = "danger-full-access")]
    sandbox: Sandbox,
    /// Time limit in seconds (the host's default, 600 s, when absent).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: Option<u64>,
    /// Working directory on the host (default: the host's default project, the directory
    /// a thread started without --cwd gets; CMD-71).
    #[arg(long)]
    cwd: Option<String>,
    /// Stop the command after this many bytes of output, stdout and stderr together
    /// (at most 67108864; CMD-41). Without it all of the output streams, at the pace this
    /// terminal or pipe takes it (a host without flow control caps it at 1 MiB).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(0..=67_108_864))]
    output_cap: Option<u64>,
    #[command(flatten)]
    relay: RelayOptions,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    command: Vec<String>,
}

/// Arguments of `tether status`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The controller's state directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    #[command(flatten)]
    relay: RelayOptions,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Prints the one error line and picks the exit status: 2 for usage errors, 1 otherwise.
pub(crate) fn fail(what: &str, e: &ControllerError) -> ExitCode {
    eprintln!("tether: {what}: {}", describe(e));
    if matches!(e, ControllerError::Usage(_)) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The error text without a redundant "session closed:" prefix for refusals.
pub(crate) fn describe(e: &ControllerError) -> String {
    match e {
        ControllerError::Closed(info) => info.to_string(),
        // spec/05 5.12: the typed error's code and name, e.g. -32010 RemoteAccessDisabled.
        ControllerError::Rpc { method, error } => {
            format!(
                "{method} refused: {}",
                tether_controller::describe_rpc_error(error)
            )
        }
        other => other.to_string(),
    }
}

pub(crate) fn open_state(dir: &std::path::Path) -> Result<ControllerState, ExitCode> {
    ControllerState::open(dir).map_err(|e| fail("state directory", &e))
}

pub(crate) fn pair(args: PairArgs) -> anyhow::Result<ExitCode> {
    let state = match open_state(&args.state) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // Name the host in errors as the token does (or by fingerprint).
    let host_label = match PairingToken::from_text(args.token.trim()) {
        Ok(t) => t
            .host_name()
            .map(str::to_owned)
            .unwrap_or_else(|| fingerprint(t.host_key())),
        Err(e) => {
            eprintln!(
                "tether: pairing token {}: {e} ({})",
                abbreviate(&args.token),
                e.requirement()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let credential = match (&args.credential, &args.credential_file) {
        (_, Some(path)) => match tether_host::state::read_credential_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tether: --credential-file: {e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        (Some(c), None) => c.clone(),
        // clap requires one of them.
        (None, None) => {
            eprintln!("tether: give --credential or --credential-file");
            return Ok(ExitCode::FAILURE);
        }
    };
    let options = args.relay.link_options();
    let rt = runtime()?;
    let result = rt.block_on(run_pair(
        &state,
        &args.token,
        &credential,
        &args.name,
        &options,
        |code| {
            // CHAN-23: shown before waiting, so the user can compare it with the host's.
            println!("confirmation code: {code}");
            let _ = std::io::stdout().flush();
        },
    ));
    match result {
        Ok(paired) => {
            println!(
                "paired with {} ({})",
                paired.host_info.name,
                paired.fingerprint()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ ControllerError::Token(_)) => Ok(fail(
            &format!("pairing token {}", abbreviate(&args.token)),
            &e,
        )),
        Err(e @ ControllerError::Closed(_)) => {
            Ok(fail(&format!("pairing refused by host {host_label}"), &e))
        }
        Err(e) => Ok(fail(&format!("pairing with host {host_label}"), &e)),
    }
}

/// The start of a token, for error messages (never the whole secret-bearing text).
fn abbreviate(token: &str) -> String {
    let t = token.trim();
    match t.get(..16) {
        Some(head) if t.len() > 16 => format!("{head}..."),
        _ => t.to_owned(),
    }
}

pub(crate) fn host_label(host: &PairedHost) -> String {
    format!("{} ({})", host.name, host.fingerprint())
}

pub(crate) fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let state = match open_state(&args.state) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let host = match state.find_host(args.host.as_deref()) {
        Ok(h) => h,
        Err(e) => return Ok(fail("exec", &e)),
    };
    let request = ExecRequest {
        argv: args.command,
        cwd: args.cwd,
        sandbox: Some(args.sandbox.into()),
        timeout: args.timeout.map(Duration::from_secs),
        output_cap: args.output_cap,
    };
    let options = args.relay.link_options();
    let rt = runtime()?;
    let run = run_exec(
        &state,
        &host,
        &request,
        &options,
        crate::sink::StdioSink::default(),
    );
    // Ctrl-C ends the session; the host then kills the command's process group (CMD-37).
    let result = rt.block_on(async {
        tokio::select! {
            r = run => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(result) = result else {
        eprintln!(
            "tether: interrupted; the session to host {} is closed",
            host_label(&host)
        );
        return Ok(ExitCode::from(130));
    };
    match result {
        Ok(outcome) => {
            let r = &outcome.result.tether;
            // SEC-18: a command that ran with less than it asked for is never silent.
            if r.sandbox.degraded {
                eprintln!(
                    "tether: warning: host {} ran the command degraded: {} was asked for, {} \
                     enforced, network {} (mechanism {}; CMD-46)",
                    host_label(&host),
                    r.sandbox.requested.as_str(),
                    r.sandbox.enforced.as_str(),
                    format!("{:?}", r.sandbox.network).to_lowercase(),
                    r.sandbox.mechanism,
                );
            }
            if r.timed_out {
                eprintln!(
                    "tether: the command reached its time limit on host {} (CMD-42)",
                    host_label(&host)
                );
            }
            if r.cap_reached {
                eprintln!(
                    "tether: the command reached its output cap on host {} (CMD-41)",
                    host_label(&host)
                );
            }
            let status = outcome.exit_status();
            Ok(ExitCode::from(u8::try_from(status & 0xff).unwrap_or(1)))
        }
        // The reader of our output went away (`tether exec -- cat big | head`): stop quietly,
        // as a program killed by SIGPIPE would; the session is closed, so the host kills the
        // command (CMD-37).
        Err(ControllerError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(ExitCode::from(141))
        }
        Err(e @ (ControllerError::Closed(_) | ControllerError::GoAway { .. })) => Ok(fail(
            &format!("exec on host {} refused", host_label(&host)),
            &e,
        )),
        Err(e) => Ok(fail(&format!("exec on host {}", host_label(&host)), &e)),
    }
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let state = match open_state(&args.state) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let options = args.relay.link_options();
    let rt = runtime()?;
    let statuses = match rt.block_on(run_status(&state, &options)) {
        Ok(s) => s,
        Err(e) => return Ok(fail("status", &e)),
    };
    if statuses.is_empty() {
        println!("no paired hosts (run `tether pair` first)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut all_ok = true;
    for s in &statuses {
        match &s.result {
            Ok(r) => {
                println!(
                    "{}  {}  {}  reachable  {} ms  {} {} {}/{}",
                    s.host.name,
                    s.host.fingerprint(),
                    s.host.relay,
                    r.latency.as_millis(),
                    r.init.tether.server_info.name,
                    r.init.tether.server_info.version,
                    r.init.tether.platform.os,
                    r.init.tether.platform.arch,
                );
                // CMD-77: what a request without cwd, sandbox or policy gets there.
                if let Some(d) = &r.defaults {
                    let path = |p: &Option<String>| p.clone().unwrap_or_else(|| "none".into());
                    println!(
                        "  home {}  default cwd {}  sandbox {} (at most {})  approval {} \
                         (at most {})",
                        path(&d.home),
                        path(&d.default_cwd),
                        d.default_sandbox.as_str(),
                        d.max_sandbox.as_str(),
                        d.default_approval_policy.as_str(),
                        d.max_approval_policy.as_str(),
                    );
                }
            }
            Err(e) => {
                all_ok = false;
                println!(
                    "{}  {}  {}  unreachable: {}",
                    s.host.name,
                    s.host.fingerprint(),
                    s.host.relay,
                    describe(e)
                );
            }
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
