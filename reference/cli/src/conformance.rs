//! `tether conformance`: run the conformance suite against a relay (or, with no target,
//! against the reference relay started in-process).
//!
//! Exit status: 0 when every counted case passed (MUST, and SHOULD with `--strict`), 1 when
//! one failed, 2 for a usage error or when no case ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use tether_conformance::report::{junit, list_json, list_text, run_json, summary};
use tether_conformance::{
    Case, CaseReport, Credential, Expectations, RelayTarget, RunOptions, Status, Target,
    TargetKind, TlsOptions,
};
use tether_relay::{RelayServer, RelayServerConfig};

/// Arguments of `tether conformance`.
#[derive(Args)]
#[command(after_help = "\
With no target, starts the reference relay in-process on 127.0.0.1 and runs every case \
against it.\n\nExit status: 0 every counted case passed; 1 a counted case failed; 2 usage \
error or no case ran.\n\nExamples:\n  tether conformance\n  tether conformance relay \
wss://relay.example.com/ --workspace acme=SECRET --other-workspace beta=SECRET2 --junit out.xml\n  \
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
    /// No progress lines, only the summary.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Test a relay: the runner plays hosts and controllers through it.
    Relay(Box<RelayTargetArgs>),
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
        Some(TargetCommand::Relay(_)) | None => TargetKind::Relay,
    };
    let selected: Vec<&Case> = tether_conformance::select(&catalogue, &args.only, &args.skip)
        .into_iter()
        .filter(|c| args.list || c.target == kind)
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
        // The target: the one given, or the reference relay in-process.
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
                };
                (target, None)
            }
            None => {
                let (target, handle) = start_reference_relay().await?;
                eprintln!(
                    "tether conformance: reference relay started at {}",
                    target.url
                );
                (target, Some(handle))
            }
        };
        let target = Arc::new(Target::Relay(target));
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
    };
    Ok((target, handle))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
