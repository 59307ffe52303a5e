//! `tether conformance`: run the conformance suite against a relay or a host (or, with no
//! target, against the reference relay started in-process and the reference host joined to
//! it).
//!
//! Exit status: 0 when every counted case passed (MUST, and SHOULD with `--strict`), 1 when
//! one failed, 2 for a usage error or when no case ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use tether_conformance::host::{
    BoxFuture, CommandAdmin, GivenTokens, HostAdmin, HostTarget, fill_template, wait_for_host,
};
use tether_conformance::report::{junit, list_json, list_text, run_json, summary};
use tether_conformance::{
    Case, CaseReport, CommandRelayAdmin, Credential, Expectations, RelayAdmin, RelayTarget,
    RunOptions, Status, Target, TargetKind, TlsOptions,
};
use tether_relay::{RelayServer, RelayServerConfig};

/// Arguments of `tether conformance`.
#[derive(Args)]
#[command(after_help = "\
With no target, starts the reference relay in-process on 127.0.0.1 and the reference host \
(this binary, `tether host run`) joined to it, and runs every case against them.\n\nExit status: 0 every counted case passed; 1 a counted case failed; 2 usage \
error or no case ran.\n\nExamples:\n  tether conformance\n  tether conformance relay \
wss://relay.example.com/ --workspace acme=SECRET --other-workspace beta=SECRET2 --junit out.xml\n  \
tether conformance relay ws://127.0.0.1:7400/ --workspace acme=SECRET \
--reconfigure-cmd 'my-relay-admin {action} {workspace} {credential_blake2s} {remote_access}'\n  \
tether conformance host --token TETHER:... --credential SECRET\n  \
tether conformance host --host-cmd 'my-host --relay {relay} --state {state} --workspace {workspace} \
--credential-file {credential_file}' --pair-cmd 'my-host pair --state {state}'\n  \
tether conformance --list --json")]
pub(crate) struct ConformanceArgs {
    #[command(subcommand)]
    target: Option<TargetCommand>,
    #[command(flatten)]
    opts: Box<RunArgs>,
}

/// The options every form of `tether conformance` takes.
#[derive(Args)]
struct RunArgs {
    /// List the cases (id, level, target, description) and exit; with --json, as JSON.
    #[arg(long, global = true)]
    list: bool,
    /// Run only cases whose id matches one of these glob patterns (`*`, `?`), e.g. 'LINK-5/*'.
    #[arg(long, global = true, value_name = "PATTERN", value_delimiter = ',')]
    only: Vec<String>,
    /// Do not run cases whose id matches one of these glob patterns.
    #[arg(long, global = true, value_name = "PATTERN", value_delimiter = ',')]
    skip: Vec<String>,
    /// Count SHOULD failures in the verdict too.
    #[arg(long, global = true)]
    strict: bool,
    /// TOML file of disabled cases, each with a written reason:
    /// `[disabled]` then `"LINK-7/auth-deadline" = "why"`.
    #[arg(long, global = true, value_name = "FILE")]
    expectations: Option<PathBuf>,
    /// Directory for the traffic logs of failing cases (default: a new temporary directory,
    /// printed at the end).
    #[arg(long, global = true, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Write the results (or with --list, the case list) as JSON to FILE; `-` or no value is
    /// standard output. Give it after the target, or as --json=FILE.
    #[arg(long, global = true, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
    /// Write the results as JUnit XML to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Cases run at once.
    #[arg(long, global = true, value_name = "N", default_value_t = 4)]
    jobs: usize,
    /// No progress lines: only failures and the summary.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Test a relay: the runner plays hosts and controllers through it.
    Relay(Box<RelayTargetArgs>),
    /// Test a host: the runner plays controllers through the relay the host joined.
    Host(Box<HostTargetArgs>),
}

#[derive(Args)]
struct HostTargetArgs {
    /// A pairing token minted by the running host (repeatable: cases that consume a token
    /// of their own are skipped when none is left). Used before --pair-cmd.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// The workspace credential the host registered with (the runner connects as a
    /// controller of the token's workspace).
    #[arg(long, value_name = "CREDENTIAL")]
    credential: Option<String>,
    /// The relay: with --token, where to reach the host (default: the token's relay URL);
    /// with --host-cmd, the relay the host is told to join (default: the reference relay,
    /// started in-process).
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// The workspace for --host-cmd with --relay (default: "conformance").
    #[arg(long, value_name = "NAME")]
    workspace: Option<String>,
    /// Start the host under test: a shell command with {relay}, {state}, {workspace} and
    /// {credential_file} (a file of mode 0600 holding the workspace credential; SEC-23
    /// keeps it off a host's command line; {credential} is the credential itself), run
    /// with `sh -c` and killed (its process group) at the end.
    #[arg(long, value_name = "CMD")]
    host_cmd: Option<String>,
    /// Mint a token: a shell command with {state} (and optionally {ttl}, seconds) that
    /// prints the token on a line of its standard output.
    #[arg(long, value_name = "CMD")]
    pair_cmd: Option<String>,
    /// Revoke a device: a shell command with {state} and {device} (its name).
    #[arg(long, value_name = "CMD")]
    revoke_cmd: Option<String>,
    /// Switch remote access: a shell command with {state} and {value} (on or off).
    #[arg(long, value_name = "CMD")]
    remote_access_cmd: Option<String>,
    /// A directory on the host (host-native, outside its temporary directory) where
    /// command/exec cases may create files (default: a fresh directory with --host-cmd,
    /// else /tmp).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<String>,
    /// The host's approval time limit in seconds, if it was configured shorter than the
    /// 300 s of CMD-31 for testing (the CMD-31 case waits this long).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    approval_timeout: u64,
    /// The inactivity age the host was configured with, in seconds (CHAN-9: a device whose
    /// last handshake is older must pair again). Runs CHAN-9/inactive-device and
    /// CHAN-9/active-within-age, which wait about 1.2 times the age; 5 to 600, 10 or more
    /// recommended. The runner keeps its own paired device active meanwhile.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(5..=600))]
    max_inactive: Option<u64>,
    /// Extra CA certificate (PEM) to trust for wss://.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Accept any TLS certificate, and plain ws:// to a non-loopback address. Test set-ups only.
    #[arg(long)]
    insecure: bool,
}

#[derive(Args)]
struct RelayTargetArgs {
    /// The relay's URL (ws:// on loopback, else wss://).
    url: String,
    /// A workspace of the relay with remote access on, and its credential.
    #[arg(long, value_name = "NAME=CREDENTIAL")]
    workspace: Credential,
    /// A second workspace of the same relay, for the cross-workspace cases (LINK-17).
    #[arg(long, value_name = "NAME=CREDENTIAL")]
    other_workspace: Option<Credential>,
    /// A workspace with remote access switched off, for LINK-11.
    #[arg(long, value_name = "NAME=CREDENTIAL")]
    remote_access_off_workspace: Option<Credential>,
    /// Reconfigure the running relay, for the LINK-37 cases: a shell command with
    /// {action} (set or remove), {workspace}, {credential}, {credential_blake2s} (64 hex
    /// digits) and {remote_access} (true or false), that exits 0 once the relay has applied
    /// the change. The cases add workspaces named tether-conf-HEX and remove them at their
    /// end; without this option they are skipped.
    #[arg(long, value_name = "CMD")]
    reconfigure_cmd: Option<String>,
    /// Extra CA certificate (PEM) to trust for wss://.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Accept any TLS certificate, and plain ws:// to a non-loopback address. Test set-ups only.
    #[arg(long)]
    insecure: bool,
}

/// A usage error: reported on stderr, exit 2.
fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("tether conformance: {msg}");
    Ok(ExitCode::from(2))
}

fn write_out(path: &Path, text: &str) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    } else {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

fn progress_line(r: &CaseReport, done: usize, total: usize) -> String {
    let w = total.to_string().len();
    let mut line = format!(
        "[{done:>w$}/{total}] {:<8} {:<6} {} ({:.2} s)",
        r.status.as_str().to_uppercase(),
        r.level.as_str(),
        r.id,
        r.duration.as_secs_f64()
    );
    if let Some(reason) = &r.reason {
        line.push_str("\n           ");
        line.push_str(reason);
    }
    if let Some(log) = &r.log_file {
        line.push_str(&format!("\n           log: {}", log.display()));
    }
    line
}

pub(crate) fn run(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let ConformanceArgs { target, opts: args } = args;
    let args = *args;
    let catalogue = tether_conformance::catalogue();
    let kind = match &target {
        Some(TargetCommand::Relay(_)) => Some(TargetKind::Relay),
        Some(TargetCommand::Host(_)) => Some(TargetKind::Host),
        None => None,
    };
    let selected: Vec<&Case> = tether_conformance::select(&catalogue, &args.only, &args.skip)
        .into_iter()
        .filter(|c| args.list || kind.is_none_or(|k| c.target == k))
        .collect();
    if args.list {
        match &args.json {
            Some(path) => {
                let text = serde_json::to_string_pretty(&list_json(&selected))? + "\n";
                write_out(path, &text)?;
            }
            None => print!("{}", list_text(&selected)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let expectations = match &args.expectations {
        Some(path) => match Expectations::load(path, &catalogue) {
            Ok(e) => e,
            Err(e) => return usage(e),
        },
        None => Expectations::default(),
    };
    if selected.is_empty() {
        return usage("no case selected (check --only / --skip against --list)");
    }
    if args.jobs == 0 {
        return usage("--jobs must be at least 1");
    }
    let log_dir = args.log_dir.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        std::env::temp_dir().join(format!("tether-conformance-{stamp}-{}", std::process::id()))
    });
    let opts = RunOptions {
        strict: args.strict,
        expectations,
        log_dir,
        jobs: args.jobs,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // The target: the one given, or the reference relay and host in-process.
        let mut host_process: Option<HostProcess> = None;
        let (target, relay) = match target {
            Some(TargetCommand::Relay(r)) => {
                let mut tls = TlsOptions {
                    insecure: r.insecure,
                    ..TlsOptions::default()
                };
                if let Some(ca) = &r.ca_cert {
                    tls = match tls.with_ca_file(ca) {
                        Ok(t) => t,
                        Err(e) => return usage(e),
                    };
                }
                let url = r.url.clone();
                if let Err(e) = tether_conformance::link::parse_url(&url) {
                    return usage(e);
                }
                let r = *r;
                let target = RelayTarget {
                    url,
                    workspace: r.workspace,
                    other_workspace: r.other_workspace,
                    remote_access_off: r.remote_access_off_workspace,
                    tls,
                    admin: r.reconfigure_cmd.map(|reconfigure_cmd| {
                        Arc::new(CommandRelayAdmin { reconfigure_cmd }) as Arc<dyn RelayAdmin>
                    }),
                };
                (Target::Relay(target), None)
            }
            Some(TargetCommand::Host(h)) => {
                match host_target(*h, &opts.log_dir, &mut host_process).await? {
                    Ok(pair) => pair,
                    Err(msg) => return usage(msg),
                }
            }
            None => {
                let (target, handle) = start_reference_relay().await?;
                eprintln!(
                    "tether conformance: reference relay started at {}",
                    target.url
                );
                let host = start_reference_host(target, &opts.log_dir, &mut host_process).await?;
                (Target::Host(Arc::new(host)), Some(handle))
            }
        };
        let target = Arc::new(target);
        if !args.quiet {
            eprintln!(
                "tether conformance: {} cases against {}",
                selected.len(),
                target.describe()
            );
        }
        let quiet = args.quiet;
        let report = tether_conformance::run(&selected, target, &opts, |r, done, total| {
            if !quiet || r.status == Status::Fail {
                eprintln!("{}", progress_line(r, done, total));
            }
        })
        .await;
        if let Some(p) = host_process.take() {
            p.stop();
        }
        if let Some(relay) = relay {
            relay.shutdown().await;
        }
        let text = summary(&report);
        if args.json.as_deref() == Some(Path::new("-")) {
            // Keep standard output for the JSON document.
            eprint!("\n{text}");
        } else {
            print!("\n{text}");
        }
        if let Some(path) = &args.json {
            write_out(
                path,
                &(serde_json::to_string_pretty(&run_json(&report))? + "\n"),
            )?;
        }
        if let Some(path) = &args.junit {
            write_out(path, &junit(&report))?;
        }
        if report.cases.iter().any(|c| c.log_file.is_some()) {
            eprintln!("logs of failing cases: {}", report.log_dir.display());
        }
        Ok(ExitCode::from(report.verdict().exit_code()))
    })
}

/// Starts the reference relay on 127.0.0.1:0 with a main workspace, a second one and one
/// with remote access off, each with a fresh random credential.
async fn start_reference_relay() -> anyhow::Result<(RelayTarget, tether_relay::RelayHandle)> {
    let fresh = |name: &str| -> anyhow::Result<Credential> {
        let secret = hex_string(&tether_conformance::link::random_bytes::<16>());
        format!("{name}={secret}")
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))
    };
    let main = fresh("conformance")?;
    let other = fresh("conformance-other")?;
    let off = fresh("conformance-off")?;
    let addr = "127.0.0.1:0".parse().context("listen address")?;
    let config = RelayServerConfig::new(addr)
        .with_workspace(&main.workspace, &main.credential, true)?
        .with_workspace(&other.workspace, &other.credential, true)?
        .with_workspace(&off.workspace, &off.credential, false)?;
    let handle = RelayServer::bind(config).await?.spawn();
    let target = RelayTarget {
        url: handle.url().to_owned(),
        workspace: main,
        other_workspace: Some(other),
        remote_access_off: Some(off),
        tls: TlsOptions::default(),
        admin: Some(Arc::new(EmbeddedRelayAdmin {
            control: handle.control(),
        })),
    };
    Ok((target, handle))
}

/// The in-process reference relay's operator hook (`LINK-37`): workspace changes go
/// straight to the running relay.
#[derive(Debug)]
struct EmbeddedRelayAdmin {
    control: tether_relay::RelayControl,
}

impl RelayAdmin for EmbeddedRelayAdmin {
    fn set_workspace(
        &self,
        workspace: &str,
        credential: Option<&[u8]>,
        remote_access: bool,
    ) -> BoxFuture<'_, Result<(), String>> {
        let workspace = workspace.to_owned();
        let config = credential.map(|c| tether_relay::WorkspaceConfig::new(c, remote_access));
        Box::pin(async move {
            self.control
                .set_workspace(&workspace, config)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host under test, when the runner started it: killed with its process group at the
/// end (also when dropped).
struct HostProcess {
    child: tokio::process::Child,
    _state: Option<tempfile::TempDir>,
}

impl HostProcess {
    fn stop(mut self) {
        self.kill_all();
        let _ = self.child.start_kill();
    }

    /// `SIGKILL` to the host's process group and to every process below it: a host run
    /// under `script(1)` is in a session of its own, outside the group.
    fn kill_all(&self) {
        if let Some(pid) = self.child.id() {
            let below = descendants(pid);
            tether_host::commands::kill_group(pid);
            for p in below {
                if let Some(p) = i32::try_from(p)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Every process below `pid`, from `/proc/*/stat` (none where there is no `/proc`).
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while let Some(&parent) = found.get(i) {
        found.extend(
            parents
                .iter()
                .filter(|(p, pp)| *pp == parent && !found.contains(p))
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    found.split_off(1)
}

/// `command` run with a controlling terminal of its own: a pseudo-terminal of util-linux
/// `script(1)`, as when a developer starts the host from a terminal. The `CMD-65` case
/// needs one to check that sandboxed commands do not get it. `command` itself where
/// `script` is missing or is not util-linux's.
fn with_terminal(command: &str) -> String {
    let works = std::process::Command::new("script")
        .args(["-qefc", "true", "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        format!(
            "SHELL=/bin/sh exec script -qefc '{}' /dev/null",
            command.replace('\'', "'\\''")
        )
    } else {
        command.to_owned()
    }
}

/// Starts `sh -c COMMAND` in its own process group, output to `log`, with `TMPDIR` set.
fn spawn_host(command: &str, log: &Path, tmpdir: &Path) -> anyhow::Result<tokio::process::Child> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("TMPDIR", tmpdir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the host: {command}"))?;
    Ok(child)
}

/// Mints the first token (retrying while the host starts), then waits until the host
/// answers through the relay. Returns the token.
async fn first_token(admin: &dyn HostAdmin, relay: &RelayTarget) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let token = loop {
        match admin.mint_token(None).await {
            Ok(Some(t)) => break t,
            Ok(None) => {
                anyhow::bail!("the host gave no pairing token (give --token or --pair-cmd)")
            }
            Err(e) if std::time::Instant::now() > deadline => {
                anyhow::bail!("minting the first pairing token: {e}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    };
    let decoded = tether_proto::token::PairingToken::from_text(&token)
        .map_err(|e| anyhow::anyhow!("the host's token does not decode: {e}"))?;
    wait_for_host(
        relay,
        decoded.host_key(),
        std::time::Duration::from_secs(30),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok(token)
}

/// The `host` target: a running host (--token) or one the runner starts (--host-cmd).
/// `Ok(Err(msg))` is a usage error.
async fn host_target(
    h: HostTargetArgs,
    log_dir: &Path,
    process: &mut Option<HostProcess>,
) -> anyhow::Result<Result<(Target, Option<tether_relay::RelayHandle>), String>> {
    let mut tls = TlsOptions {
        insecure: h.insecure,
        ..TlsOptions::default()
    };
    if let Some(ca) = &h.ca_cert {
        tls = match tls.with_ca_file(ca) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
    }
    let Some(host_cmd) = h.host_cmd.clone() else {
        // A running host.
        let Some(first) = h.tokens.first() else {
            return Ok(Err(
                "host: give --token TOKEN (a running host) or --host-cmd CMD".to_owned(),
            ));
        };
        let token = match tether_proto::token::PairingToken::from_text(first) {
            Ok(t) => t,
            Err(e) => return Ok(Err(format!("--token does not decode: {e}"))),
        };
        let Some(credential) = h.credential.clone() else {
            return Ok(Err("host: --credential is required with --token".to_owned()));
        };
        let cred: Credential = match format!("{}={credential}", token.workspace()).parse() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let url = h
            .relay
            .clone()
            .unwrap_or_else(|| token.relay_url().to_owned());
        if let Err(e) = tether_conformance::link::parse_url(&url) {
            return Ok(Err(e));
        }
        let relay = RelayTarget {
            url,
            workspace: cred,
            other_workspace: None,
            remote_access_off: None,
            tls,
            admin: None,
        };
        let admin = CommandAdmin {
            state: PathBuf::new(),
            pair_cmd: h.pair_cmd,
            revoke_cmd: h.revoke_cmd,
            remote_access_cmd: h.remote_access_cmd,
            given: GivenTokens::new(h.tokens.clone()),
            host_cmd: None,
        };
        let description = format!(
            "host {} via {}",
            tether_proto::keys::fingerprint(token.host_key()),
            relay.url
        );
        let mut target = HostTarget::new(relay, Arc::new(admin), description)
            .with_approval_timeout(std::time::Duration::from_secs(h.approval_timeout));
        if let Some(d) = h.work_dir {
            target = target.with_work_dir(d);
        }
        if let Some(secs) = h.max_inactive {
            target = target.with_max_inactive(std::time::Duration::from_secs(secs));
        }
        return Ok(Ok((Target::Host(Arc::new(target)), None)));
    };
    // The runner starts the host.
    if h.pair_cmd.is_none() && h.tokens.is_empty() {
        return Ok(Err(
            "host --host-cmd needs --pair-cmd to mint tokens".to_owned()
        ));
    }
    let (relay, handle) = match &h.relay {
        Some(url) => {
            let Some(credential) = h.credential.clone() else {
                return Ok(Err("host --relay needs --credential".to_owned()));
            };
            let ws = h
                .workspace
                .clone()
                .unwrap_or_else(|| "conformance".to_owned());
            let cred: Credential = match format!("{ws}={credential}").parse() {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let relay = RelayTarget {
                url: url.clone(),
                workspace: cred,
                other_workspace: None,
                remote_access_off: None,
                tls,
                admin: None,
            };
            (relay, None)
        }
        None => {
            let (relay, handle) = start_reference_relay().await?;
            (relay, Some(handle))
        }
    };
    let state = tempfile::Builder::new()
        .prefix("tether-conformance-host-")
        .tempdir()?;
    let state_dir = state.path().join("state");
    let work = state.path().join("work");
    let tmp = state.path().join("tmp");
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&tmp)?;
    std::fs::create_dir_all(log_dir)?;
    let credential = String::from_utf8_lossy(&relay.workspace.credential).into_owned();
    let state_text = state_dir.display().to_string();
    // SEC-23: beside the state directory, mode 0600.
    let credential_file = state.path().join("credential");
    tether_conformance::host::write_credential_file(&credential_file, &credential)
        .map_err(|e| anyhow::anyhow!(e))?;
    let credential_file = credential_file.display().to_string();
    let command = fill_template(
        &host_cmd,
        &[
            ("relay", &relay.url),
            ("state", &state_text),
            ("workspace", &relay.workspace.workspace),
            ("credential_file", &credential_file),
            ("credential", &credential),
        ],
    );
    let child = spawn_host(&command, &log_dir.join("host-under-test.log"), &tmp)?;
    *process = Some(HostProcess {
        child,
        _state: None,
    });
    let probe = CommandAdmin {
        state: state_dir.clone(),
        pair_cmd: h.pair_cmd.clone(),
        revoke_cmd: None,
        remote_access_cmd: None,
        given: GivenTokens::new(h.tokens.clone()),
        host_cmd: None,
    };
    let first = first_token(&probe, &relay).await?;
    let mut tokens = vec![first];
    tokens.extend(h.tokens.iter().skip(1).cloned());
    let admin = CommandAdmin {
        state: state_dir,
        pair_cmd: h.pair_cmd,
        revoke_cmd: h.revoke_cmd,
        remote_access_cmd: h.remote_access_cmd,
        given: GivenTokens::new(tokens),
        host_cmd: Some((
            host_cmd.clone(),
            relay.workspace.workspace.clone(),
            credential.clone(),
        )),
    };
    let description = format!("host started with `{host_cmd}` via {}", relay.url);
    let work_dir = h.work_dir.unwrap_or_else(|| work.display().to_string());
    let mut target = HostTarget::new(relay, Arc::new(admin), description)
        .with_work_dir(work_dir)
        .with_state_dir(state_text)
        .with_approval_timeout(std::time::Duration::from_secs(h.approval_timeout));
    if let Some(secs) = h.max_inactive {
        target = target.with_max_inactive(std::time::Duration::from_secs(secs));
    }
    if let Some(p) = process.as_mut() {
        p._state = Some(state);
    }
    Ok(Ok((Target::Host(Arc::new(target)), handle)))
}

/// Administration of the reference host through its state directory, in-process: tokens
/// of any lifetime, revocation and the remote-access switch (`tether host pair` and
/// `tether host revoke` do the same from the command line).
#[derive(Debug)]
struct ReferenceAdmin {
    state: tether_host::StateDir,
    first: std::sync::Mutex<Option<String>>,
    /// `tether host run` with `{relay}` and `{state}` left to fill, for a second instance.
    instance_cmd: String,
}

impl HostAdmin for ReferenceAdmin {
    fn mint_token(&self, ttl: Option<u64>) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            if ttl.is_none()
                && let Some(t) = self.first.lock().ok().and_then(|mut f| f.take())
            {
                return Ok(Some(t));
            }
            let ttl = std::time::Duration::from_secs(ttl.unwrap_or(300));
            self.state
                .mint_token(ttl, tether_proto::time::UnixTime::now())
                .map(|t| Some(t.to_text()))
                .map_err(|e| e.to_string())
        })
    }

    fn can_set_ttl(&self) -> bool {
        true
    }

    fn can_revoke(&self) -> bool {
        true
    }

    fn can_switch_remote_access(&self) -> bool {
        true
    }

    fn can_start_instance(&self) -> bool {
        true
    }

    fn start_instance(
        &self,
        relay_url: &str,
    ) -> BoxFuture<'_, Result<tether_conformance::host::Instance, String>> {
        let url = relay_url.to_owned();
        Box::pin(async move {
            let dir = tempfile::Builder::new()
                .prefix("tether-conformance-instance-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            let state = dir.path().join("state").display().to_string();
            let cmd = fill_template(&self.instance_cmd, &[("relay", &url), ("state", &state)]);
            // SEC-22: the temporary directory beside the state directory, not around it.
            let tmp = dir.path().join("tmp");
            std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            tether_conformance::host::Instance::spawn(&cmd, None, Some(&tmp), Some(dir))
        })
    }

    fn revoke(&self, device_name: &str) -> BoxFuture<'_, Result<bool, String>> {
        let r = self
            .state
            .revoke(device_name)
            .map(|_| true)
            .map_err(|e| e.to_string());
        Box::pin(async move { r })
    }

    fn set_remote_access(&self, on: bool) -> BoxFuture<'_, Result<bool, String>> {
        let r = self
            .state
            .set_remote_access(on)
            .map(|()| true)
            .map_err(|e| e.to_string());
        Box::pin(async move { r })
    }
}

/// The approval time limit the in-process run gives the reference host, so that the
/// `CMD-31` case waits seconds, not the 300 s of the specification.
const REFERENCE_APPROVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The inactivity age the in-process run gives the reference host (`CHAN-9`), so that the
/// inactivity cases wait seconds, not days. Ten seconds: `CHAN-9/inactive-device` waits
/// 12 s and `CHAN-9/active-within-age` 12 s, both alongside the relay's 60-s idle-timeout
/// case, so the run takes no longer; and the runner keeps its own paired device active with
/// a handshake whenever its last one is 3.3 s old (checked every 1.25 s), which leaves more
/// than 5 s for that handshake on a loaded machine before the device would expire. Every
/// other device a case pairs (revocation, pairing cases) is used for well under a second
/// after its last handshake; `CHAN-19/rekey`'s 30-s session belongs to the paired device,
/// whose handshakes keep it open (`SEC-13`).
const REFERENCE_MAX_INACTIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the reference host (`tether host run`, this binary) joined to `relay`, in a
/// fresh state directory, and waits until it answers.
async fn start_reference_host(
    relay: RelayTarget,
    log_dir: &Path,
    process: &mut Option<HostProcess>,
) -> anyhow::Result<HostTarget> {
    let exe = std::env::current_exe().context("finding the tether binary")?;
    let root = tempfile::Builder::new()
        .prefix("tether-conformance-host-")
        .tempdir()?;
    let state_dir = root.path().join("state");
    let work = root.path().join("work");
    let tmp = root.path().join("tmp");
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&tmp)?;
    std::fs::create_dir_all(log_dir)?;
    let credential = String::from_utf8_lossy(&relay.workspace.credential).into_owned();
    // SEC-23: the credential from a file of mode 0600, not the command line; SEC-22: the
    // state directory beside the commands' temporary directory and the default project
    // (`--project`, so that the runner's own directory does not matter).
    let credential_file = root.path().join("credential");
    tether_conformance::host::write_credential_file(&credential_file, &credential)
        .map_err(|e| anyhow::anyhow!(e))?;
    let command = format!(
        "exec '{}' host run --state '{}' --relay '{}' --workspace '{}' --credential-file '{}' --project '{}' --name conformance-host --approval-timeout-ms {} --max-inactive {}s",
        exe.display(),
        state_dir.display(),
        relay.url,
        relay.workspace.workspace,
        credential_file.display(),
        work.display(),
        REFERENCE_APPROVAL_TIMEOUT.as_millis(),
        REFERENCE_MAX_INACTIVE.as_secs()
    );
    let log = log_dir.join("host-under-test.log");
    let child = spawn_host(&with_terminal(&command), &log, &tmp)?;
    *process = Some(HostProcess {
        child,
        _state: Some(root),
    });
    let admin = ReferenceAdmin {
        state: tether_host::StateDir::open(&state_dir)?,
        first: std::sync::Mutex::new(None),
        instance_cmd: format!(
            "exec '{}' host run --state {{state}} --relay {{relay}} --workspace '{}' --credential-file '{}' --project '{}' --name conformance-instance",
            exe.display(),
            relay.workspace.workspace,
            credential_file.display(),
            work.display()
        ),
    };
    let first = first_token(&admin, &relay).await?;
    if let Ok(mut f) = admin.first.lock() {
        *f = Some(first);
    }
    eprintln!(
        "tether conformance: reference host started (log: {})",
        log.display()
    );
    let description = format!("reference relay {} and reference host", relay.url);
    Ok(HostTarget::new(relay, Arc::new(admin), description)
        .with_work_dir(work.display().to_string())
        .with_state_dir(state_dir.display().to_string())
        .with_approval_timeout(REFERENCE_APPROVAL_TIMEOUT)
        .with_max_inactive(REFERENCE_MAX_INACTIVE))
}
