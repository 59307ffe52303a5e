//! `tether host run|pair|devices|revoke`: the reference host and its administration.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use tether_host::runtime::{HostOptions, RunEvent};
use tether_host::state::{Device, StateDir};
use tether_host::{CommandConfig, qr};
use tether_proto::time::UnixTime;

/// Subcommands of `tether host`.
#[derive(Subcommand)]
pub(crate) enum HostCommand {
    /// Connect to a relay and serve controllers (runs until Ctrl-C or SIGTERM).
    Run(RunArgs),
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
    /// Workspace credential (16 to 255 bytes).
    #[arg(long)]
    credential: String,
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
        HostCommand::Run(args) => run_host(args),
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

fn run_host(args: RunArgs) -> anyhow::Result<()> {
    let state = StateDir::open(&args.state)?;
    if let Some(switch) = args.remote_access {
        state.set_remote_access(matches!(switch, Switch::On))?;
    }
    if let Some(Age(secs)) = args.max_inactive {
        state.set_max_inactive(secs)?; // CHAN-9
    }
    let options = HostOptions {
        relay: args.relay,
        workspace: args.workspace,
        credential: args.credential,
        name: args.name.unwrap_or_else(default_name),
        confirm: args.confirm,
        commands: CommandConfig {
            allow_unsandboxed: args.allow_unsandboxed,
            // CMD-44: commands run under `tether sandbox-exec`, this very binary.
            sandbox: std::env::current_exe()
                .ok()
                .map(tether_host::commands::SandboxLauncher::probe),
            approval_timeout: args.approval_timeout_ms.map_or(
                tether_proto::limits::APPROVAL_TIMEOUT,
                Duration::from_millis,
            ),
            ..CommandConfig::default()
        },
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
