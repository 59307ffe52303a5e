//! `tether relay`: run the reference relay.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use tether_relay::{RelayControl, RelayError, RelayServer, RelayServerConfig};

/// Arguments of `tether relay`.
#[derive(Args)]
#[command(after_help = "\
Reconfiguring a running relay (LINK-37): on SIGHUP the relay re-reads its --config file and \
applies the differences at once: workspaces added, credentials changed, workspaces removed, \
remote access switched on or off. Changing or removing a workspace's credential ends its open \
links with GOAWAY AUTH_FAILED; switching its remote access off ends them with GOAWAY \
REMOTE_ACCESS_DISABLED; other workspaces' links are untouched. Each change is logged. A file \
that cannot be read or does not parse (or leaves no workspace) is reported and the running \
configuration is kept. Workspaces given with --workspace stay as given.\n\n\
Example:\n  tether relay --config relay.toml &\n  $EDITOR relay.toml && kill -HUP %1")]
pub(crate) struct RelayArgs {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7400")]
    listen: String,
    /// TOML file of workspaces: `[[workspace]] id = "acme"`, `credential_blake2s = "HEX"`
    /// (or `credential = "..."`), `remote_access = true`. Re-read on SIGHUP.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// A workspace and its credential (16 to 255 bytes); may be repeated. Only the
    /// credential's BLAKE2s-256 digest is kept.
    #[arg(long = "workspace", value_name = "NAME=CREDENTIAL")]
    workspaces: Vec<String>,
    /// TLS certificate chain (PEM): serve wss://.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow plain ws:// on an address that is not loopback (LINK-2).
    #[arg(long)]
    insecure: bool,
    /// Most connections open at once from one client address; more are closed on accept
    /// (SEC-17). 0: no bound.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_LINKS_PER_ADDRESS)]
    max_links_per_address: usize,
}

/// The default of `--max-links-per-address` (`SEC-17`).
const DEFAULT_MAX_LINKS_PER_ADDRESS: usize = 256;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn listen_addr(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .with_context(|| format!("--listen {text:?}: expected ADDR:PORT"))?
        .next()
        .with_context(|| format!("--listen {text:?} resolves to no address"))
}

/// The workspaces of `--config` and `--workspace` together.
fn workspaces(
    listen: SocketAddr,
    config_file: Option<&Path>,
    pairs: &[String],
) -> Result<RelayServerConfig, RelayError> {
    let mut config = RelayServerConfig::new(listen);
    if let Some(path) = config_file {
        config.add_toml_file(path)?;
    }
    for pair in pairs {
        config.add_workspace_pair(pair)?;
    }
    Ok(config)
}

pub(crate) fn run(args: RelayArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let listen = listen_addr(&args.listen)?;
    let mut config = workspaces(listen, args.config.as_deref(), &args.workspaces)?;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config = config.with_tls(cert, key);
    }
    config.insecure = args.insecure;
    config.max_links_per_address =
        (args.max_links_per_address > 0).then_some(args.max_links_per_address);
    if config.workspaces.is_empty() {
        bail!("no workspace configured: give --workspace NAME=CREDENTIAL or --config FILE.toml");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let reload = Reload {
        listen,
        config: args.config,
        pairs: args.workspaces,
    };
    runtime.block_on(async {
        // Listen for SIGHUP before the relay says it is up: until then the signal's
        // default action would end the process.
        let hangups = hangup_signal();
        let server = RelayServer::bind(config).await?;
        let control = server.control();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "tether relay listening on {}", server.url())?;
            out.flush()?;
        }
        tokio::select! {
            () = server.run(shutdown_signal()) => {}
            () = reload.on_hangup(hangups, control) => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What SIGHUP re-reads (`LINK-37`).
struct Reload {
    listen: SocketAddr,
    config: Option<PathBuf>,
    pairs: Vec<String>,
}

impl Reload {
    /// On every SIGHUP, re-reads the workspaces and applies the differences; never
    /// returns (unless SIGHUP cannot be listened for).
    async fn on_hangup(self, hangups: Option<Hangups>, control: RelayControl) {
        let Some(mut hangups) = hangups else {
            return std::future::pending().await;
        };
        while hangups.recv().await.is_some() {
            self.apply(&control).await;
        }
        std::future::pending().await
    }

    async fn apply(&self, control: &RelayControl) {
        let Some(path) = &self.config else {
            tracing::warn!("SIGHUP: no --config file to re-read; nothing changed");
            return;
        };
        tracing::info!(file = %path.display(), "SIGHUP: re-reading the configuration");
        // Bad input changes nothing: the new set is applied only once it is whole.
        let wanted = match workspaces(self.listen, Some(path), &self.pairs) {
            Ok(c) if c.workspaces.is_empty() => {
                tracing::error!(
                    "reload refused: the new configuration has no workspace; keeping the running configuration"
                );
                return;
            }
            Ok(c) => c.workspaces,
            Err(e) => {
                tracing::error!("reload refused: {e}; keeping the running configuration");
                return;
            }
        };
        match control.replace_workspaces(wanted).await {
            Ok(changes) if changes.is_empty() => {
                tracing::info!("reload: no workspace changed");
            }
            Ok(changes) => {
                for change in &changes {
                    tracing::info!("reload: {change}");
                }
            }
            Err(e) => tracing::error!("reload failed: {e}"),
        }
    }
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;

#[cfg(not(unix))]
type Hangups = tokio::sync::mpsc::Receiver<()>;

/// The SIGHUP stream, if the platform has one.
fn hangup_signal() -> Option<Hangups> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP (no live reconfiguration): {e}");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
