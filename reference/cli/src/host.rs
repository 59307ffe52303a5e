//! `tether host run|pair|devices|revoke`: the reference host and its administration.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use tether_host::commands::{approval_rank, sandbox_rank};
use tether_host::runtime::{HostOptions, RunEvent};
use tether_host::state::{CREDENTIAL_ENV, Device, StateDir};
use tether_host::{CommandConfig, qr};
use tether_proto::cmd::types::{ApprovalPolicy, SandboxMode};
use tether_proto::time::UnixTime;

use crate::controller::Sandbox;
use crate::threads::Policy;

/// Subcommands of `tether host`.
#[derive(Subcommand)]
pub(crate) enum HostCommand {
    /// Connect to a relay and serve controllers (runs until Ctrl-C or SIGTERM).
    Run(Box<RunArgs>),
    /// Mint a one-time pairing token: its text on stdout, its QR code on stderr.
    Pair(PairArgs),
    /// List the devices paired with this host.
    Devices(DevicesArgs),
    /// Revoke a paired device: its sessions are refused from now on.
    Revoke(RevokeArgs),
}

/// On or off.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// Arguments of `tether host run`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// State directory (host key, paired devices, tokens); created if missing.
    #[arg(long)]
    state: PathBuf,
    /// Relay URL: wss://..., or ws://... on a loopback address.
    #[arg(long)]
    relay: String,
    /// Workspace to register in.
    #[arg(long)]
    workspace: String,
    /// File holding the workspace credential (16 to 255 bytes) on one line, readable by
    /// this account only (mode 0600) [default: the environment variable
    /// TETHER_CREDENTIAL]. Never on the command line, where other processes read it
    /// (SEC-23).
    #[arg(long, value_name = "FILE")]
    credential_file: Option<PathBuf>,
    /// Refused: the credential does not belong on the command line (SEC-23).
    #[arg(long, hide = true, value_name = "CREDENTIAL")]
    credential: Option<String>,
    /// Default working directory of threads and commands that name none (CMD-17, CMD-71)
    /// [default: the current directory]. Its project root must not contain the state
    /// directory (SEC-22).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The most permissive sandbox mode controllers may ask for; beyond it a command or
    /// thread is refused with -32012 (SEC-15).
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value = "danger-full-access"
    )]
    max_sandbox: Sandbox,
    /// The most permissive approval policy a thread may have (untrusted < on-request <
    /// never); beyond it a thread is refused with -32012 (SEC-15).
    #[arg(long, value_enum, value_name = "POLICY", default_value = "never")]
    max_approval_policy: Policy,
    /// Name shown to controllers and put into pairing tokens [default: the system host
    /// name, else "tether-host"].
    #[arg(long)]
    name: Option<String>,
    /// Ask on this terminal to confirm each pairing's code before accepting it.
    #[arg(long)]
    confirm: bool,
    /// Run read-only / workspace-write commands without a sandbox (reported as degraded)
    /// instead of refusing them.
    #[arg(long)]
    allow_unsandboxed: bool,
    /// Extra CA certificate (PEM) to trust for wss://.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Allow plain ws:// to a relay that is not on a loopback address.
    #[arg(long)]
    insecure: bool,
    /// Switch remote access on or off (stored in the state directory).
    #[arg(long, value_enum)]
    remote_access: Option<Switch>,
    /// Devices whose last handshake is older than AGE must pair again (CHAN-9): a number
    /// with a unit, s, m, h or d (90s, 15m, 12h, 30d; a bare number is seconds), or `off`
    /// for no limit. Stored in the state directory.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    max_inactive: Option<Age>,
    /// Approval time limit in milliseconds instead of 300 s (CMD-31); for tests.
    #[arg(long, hide = true, value_name = "MS")]
    approval_timeout_ms: Option<u64>,
    /// For conformance fixtures: run commands through PATH sandbox-exec instead of this
    /// binary.
    #[arg(long, hide = true, value_name = "PATH")]
    sandbox_launcher: Option<PathBuf>,
    /// The agent of the host's threads: `test`, the deterministic test agent (CMD-59), or
    /// `codex`, a real Codex (`codex app-server`, started on the first turn) using the
    /// account and configuration of your own `codex login`; Codex runs the agent's
    /// commands under its own sandbox (spec 5.14).
    #[arg(long, value_enum, value_name = "AGENT", default_value = "test")]
    agent: AgentKind,
    /// The Codex binary of `--agent codex` [default: the environment variable
    /// TETHER_CODEX_BIN, else `codex` on PATH].
    #[arg(long, value_name = "PATH")]
    codex_bin: Option<PathBuf>,
    /// Run Codex (`--agent codex`) with CODEX_HOME=DIR (its config.toml, login and
    /// sessions) instead of the one of your environment (~/.codex); for a separate
    /// Codex configuration, or tests.
    #[arg(long, value_name = "DIR")]
    codex_home: Option<PathBuf>,
}

/// The agent of `tether host run --agent`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AgentKind {
    /// The deterministic test agent.
    Test,
    /// A real Codex (`codex app-server`).
    Codex,
}

/// An inactivity age given on the command line: seconds, or no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Age(Option<u64>);

/// Parses `--max-inactive`: `off`, or a positive number with an optional unit (`s`, `m`,
/// `h`, `d`; none is seconds).
fn parse_age(text: &str) -> Result<Age, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(Age(None));
    }
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: expected a number with a unit s, m, h or d (90s, 12h, 30d), or off"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number before the unit (90s, 12h, 30d)"))?;
    if n == 0 {
        return Err(format!(
            "{text:?}: the age must be at least 1 s; use off for no limit"
        ));
    }
    n.checked_mul(scale)
        .map(|secs| Age(Some(secs)))
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// Arguments of `tether host pair`.
#[derive(Args)]
pub(crate) struct PairArgs {
    /// State directory of a host that has run at least once.
    #[arg(long)]
    state: PathBuf,
    /// Lifetime of the token in seconds (at most 600).
    #[arg(long, default_value_t = 300)]
    ttl: u64,
    /// Also write the QR code as a PNG file.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
}

/// Arguments of `tether host devices`.
#[derive(Args)]
pub(crate) struct DevicesArgs {
    /// State directory.
    #[arg(long)]
    state: PathBuf,
}

/// Arguments of `tether host revoke`.
#[derive(Args)]
pub(crate) struct RevokeArgs {
    /// State directory.
    #[arg(long)]
    state: PathBuf,
    /// The device: its name, or a prefix of its fingerprint.
    device: String,
}

pub(crate) fn run(command: HostCommand) -> anyhow::Result<ExitCode> {
    let result = match command {
        HostCommand::Run(args) => run_host(*args),
        HostCommand::Pair(args) => pair(args),
        HostCommand::Devices(args) => devices(args),
        HostCommand::Revoke(args) => revoke(args),
    };
    // Every failure: one line, exit 1.
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e:#}");
            ExitCode::FAILURE
        }
    })
}

fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .unwrap_or_else(|| "tether-host".to_owned())
}

/// The workspace credential and the file it came from (`SEC-23`): `--credential-file`,
/// else the environment variable `TETHER_CREDENTIAL`.
fn credential(args: &RunArgs) -> anyhow::Result<(String, Option<PathBuf>)> {
    if args.credential.is_some() {
        anyhow::bail!(
            "--credential puts the workspace credential on the command line, where every \
             process of this machine can read it (SEC-23); write it to a file of mode 0600 \
             and give --credential-file FILE, or set {CREDENTIAL_ENV}"
        );
    }
    if let Some(path) = &args.credential_file {
        let credential = tether_host::state::read_credential_file(path)?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        return Ok((credential, Some(canonical)));
    }
    match std::env::var(CREDENTIAL_ENV) {
        Ok(c) if !c.is_empty() => Ok((c, None)),
        _ => anyhow::bail!(
            "no workspace credential: give --credential-file FILE (mode 0600) or set \
             {CREDENTIAL_ENV} (SEC-23)"
        ),
    }
}

/// Refuses a state directory, or credential file, inside a directory that sandboxed
/// commands may write: their temporary directory and the default project's root
/// (`SEC-22`). Every path compared canonicalized.
fn check_placement(
    state: &std::path::Path,
    credential_file: Option<&std::path::Path>,
    commands: &CommandConfig,
) -> anyhow::Result<()> {
    let mut writable = vec![("the commands' temporary directory", commands.temp_dir())];
    match commands.default_dir() {
        Some(dir) => writable.push((
            "the default project (--project, else the current directory's project root)",
            tether_sandbox::project_root(&std::fs::canonicalize(&dir).unwrap_or(dir)),
        )),
        None => {
            anyhow::bail!("the current directory is gone; give --project DIR (the default project)")
        }
    }
    tether_host::state::check_state_placement(state, &writable)?;
    if let Some(file) = credential_file {
        for (role, root) in &writable {
            if tether_host::state::state_dir_exposed(file, std::slice::from_ref(root)) {
                anyhow::bail!(
                    "{}: the credential file lies inside {role} {}, which sandboxed commands \
                     may write; keep it outside, for example in the state directory (SEC-23)",
                    file.display(),
                    root.display()
                );
            }
        }
    }
    Ok(())
}

/// The `codex` agent of `--agent codex` (spec 5.14): the binary checked now, so that a
/// host without one stops at once; Codex runs in the default project (never the
/// temporary directory) with the host's environment.
fn codex_agent(
    args: &RunArgs,
    project: Option<&std::path::Path>,
) -> anyhow::Result<tether_host::AgentBackend> {
    let cwd = match project {
        Some(p) => p.to_owned(),
        None => std::env::current_dir().context("the current directory")?,
    };
    let mut config = tether_host::codex::CodexConfig::new(cwd);
    if let Some(bin) = &args.codex_bin {
        config = config.bin(bin);
    }
    if let Some(home) = &args.codex_home {
        let home = std::fs::canonicalize(home)
            .with_context(|| format!("--codex-home {}", home.display()))?;
        config = config.env_var("CODEX_HOME", home);
    }
    let bin = config.resolve_bin()?;
    config.check_cwd().map_err(|e| {
        anyhow::anyhow!("{e}; give --project DIR (Codex runs in the default project)")
    })?;
    eprintln!(
        "tether: the agent of threads is Codex ({}); it runs the agent's commands under its own sandbox",
        bin.display()
    );
    Ok(tether_host::AgentBackend::Codex(config.bin(bin)))
}

fn run_host(args: RunArgs) -> anyhow::Result<()> {
    let (credential, credential_file) = credential(&args)?;
    // CMD-17, CMD-71: the default project, absolute, so that threads and commands that
    // name no directory get it as it was meant.
    let project = match &args.project {
        Some(p) if p.is_dir() => {
            Some(std::fs::canonicalize(p).with_context(|| format!("--project {}", p.display()))?)
        }
        Some(p) => anyhow::bail!("--project {}: not a directory", p.display()),
        None => None,
    };
    let max_sandbox = SandboxMode::from(args.max_sandbox);
    let max_approval_policy = ApprovalPolicy::from(args.max_approval_policy);
    let defaults = CommandConfig::default();
    let mut commands = CommandConfig {
        allow_unsandboxed: args.allow_unsandboxed,
        // Probed below, once the paths it must hide are known.
        sandbox: None,
        approval_timeout: args.approval_timeout_ms.map_or(
            tether_proto::limits::APPROVAL_TIMEOUT,
            Duration::from_millis,
        ),
        default_project: project,
        // SEC-15: the caps. A default above a cap comes down to it: that is the
        // operator's own setting, not a controller's request.
        max_sandbox,
        default_sandbox: if sandbox_rank(defaults.default_sandbox) > sandbox_rank(max_sandbox) {
            max_sandbox
        } else {
            defaults.default_sandbox
        },
        max_approval_policy,
        default_approval_policy: if approval_rank(defaults.default_approval_policy)
            > approval_rank(max_approval_policy)
        {
            max_approval_policy
        } else {
            defaults.default_approval_policy
        },
        ..defaults
    };
    if let AgentKind::Codex = args.agent {
        commands.agent = codex_agent(&args, commands.default_project.as_deref())?;
    } else if args.codex_bin.is_some() || args.codex_home.is_some() {
        anyhow::bail!("--codex-bin and --codex-home go with --agent codex");
    }
    let state = StateDir::open(&args.state)?;
    for (path, mode) in state.tightened() {
        // SEC-22
        let now = if path.is_dir() { 0o700 } else { 0o600 };
        eprintln!(
            "tether: {} had mode {mode:o}; it is now {now:o} (SEC-22)",
            path.display()
        );
    }
    let state_path = std::fs::canonicalize(state.path())
        .with_context(|| format!("--state {}", state.path().display()))?;
    check_placement(&state_path, credential_file.as_deref(), &commands)?;
    // SEC-22, SEC-23: what commands must never see.
    commands.secret_paths = std::iter::once(state_path).chain(credential_file).collect();
    // CMD-44, CMD-45: commands run under `tether sandbox-exec`, this very binary; the
    // probe runs the whole sandbox once per mode and says what held.
    commands.sandbox = args
        .sandbox_launcher
        .or_else(|| std::env::current_exe().ok())
        .map(|program| {
            tether_host::commands::SandboxLauncher::probe(program, &commands.secret_paths)
        });
    if let Some(launcher) = &commands.sandbox {
        for (mode, missing) in &launcher.missing {
            eprintln!(
                "tether: {} is not enforced here ({missing}); such commands are {} (CMD-46)",
                mode.as_str(),
                if commands.allow_unsandboxed {
                    "run unsandboxed and reported degraded"
                } else {
                    "refused"
                }
            );
        }
    }
    if let Some(switch) = args.remote_access {
        state.set_remote_access(matches!(switch, Switch::On))?;
    }
    if let Some(Age(secs)) = args.max_inactive {
        state.set_max_inactive(secs)?; // CHAN-9
    }
    let options = HostOptions {
        relay: args.relay,
        workspace: args.workspace,
        credential,
        name: args.name.unwrap_or_else(default_name),
        confirm: args.confirm,
        commands,
        ca_cert: args.ca_cert,
        insecure: args.insecure,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        };
        tether_host::run(state, options, shutdown, print_event).await
    })?;
    Ok(())
}

fn print_event(event: RunEvent) {
    match event {
        RunEvent::Ready { fingerprint, relay } => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "tether host ready: {fingerprint} on {relay}");
            let _ = out.flush();
        }
        RunEvent::LinkLost { reason, retry_in } => eprintln!(
            "tether: link to the relay lost ({reason}); reconnecting in {:.1} s",
            retry_in.as_secs_f64()
        ),
        RunEvent::SessionOpened {
            session,
            device,
            paired,
        } => {
            if paired {
                eprintln!("tether: paired device {device:?} (session {session})");
            } else {
                eprintln!("tether: session {session} opened by {device:?}");
            }
        }
        RunEvent::SessionRefused { session, reason } => {
            eprintln!("tether: session {session} refused: {reason}");
        }
        RunEvent::SessionClosed { session, code } => {
            eprintln!("tether: session {session} closed: {code}");
        }
        RunEvent::Notice(text) => eprintln!("tether: {text}"),
        _ => {}
    }
}

fn pair(args: PairArgs) -> anyhow::Result<()> {
    if args.ttl == 0 || args.ttl > 600 {
        anyhow::bail!(
            "--ttl {}: a pairing token lives 1 to 600 seconds (TOKEN-9)",
            args.ttl
        );
    }
    let state = StateDir::open(&args.state)?;
    let token = state.mint_token(Duration::from_secs(args.ttl), UnixTime::now())?;
    let text = token.to_text();
    let code = qr::encode(&text).map_err(|e| anyhow::anyhow!("QR code: {e}"))?;
    if let Some(path) = &args.png {
        qr::write_png(&code, path)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    eprintln!("{}", qr::to_terminal(&code));
    eprintln!(
        "Scan this code or pass the token below to `tether pair`; it works once and expires in {} s.",
        args.ttl
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SSZ` of Unix seconds (proleptic Gregorian, UTC).
fn utc(secs: u64) -> String {
    UnixTime::from_secs(secs).rfc3339().replacen('T', " ", 1)
}

fn print_device(out: &mut impl Write, d: &Device, inactive: bool) -> std::io::Result<()> {
    let status = if d.revoked {
        "revoked"
    } else if inactive {
        "inactive (must pair again)"
    } else {
        "active"
    };
    writeln!(
        out,
        "{:<24} {}  paired {}  last seen {}  {status}",
        d.name,
        d.fingerprint(),
        utc(d.paired_at),
        utc(d.last_seen),
    )
}

fn devices(args: DevicesArgs) -> anyhow::Result<()> {
    let state = StateDir::open(&args.state)?;
    let host = state.read()?;
    let mut out = std::io::stdout().lock();
    if host.devices.is_empty() {
        writeln!(out, "no paired devices")?;
    }
    let now = UnixTime::now();
    for d in &host.devices {
        print_device(&mut out, d, host.inactive(d, now))?;
    }
    Ok(())
}

fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let state = StateDir::open(&args.state)?;
    let device = state.revoke(&args.device)?;
    let mut out = std::io::stdout().lock();
    write!(out, "revoked ")?;
    print_device(&mut out, &device, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Age, parse_age, utc};

    #[test]
    fn max_inactive_ages() {
        assert_eq!(parse_age("90s"), Ok(Age(Some(90))));
        assert_eq!(parse_age("90"), Ok(Age(Some(90))));
        assert_eq!(parse_age("15m"), Ok(Age(Some(900))));
        assert_eq!(parse_age("12h"), Ok(Age(Some(43_200))));
        assert_eq!(parse_age("30d"), Ok(Age(Some(2_592_000))));
        assert_eq!(parse_age("off"), Ok(Age(None)));
        for bad in [
            "",
            "0s",
            "0",
            "s",
            "5w",
            "1.5h",
            "-1s",
            "12 h",
            "99999999999999999999d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20Z");
    }
}
