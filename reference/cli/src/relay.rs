//! `tether relay`: run the reference relay.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use tether_relay::{RelayServer, RelayServerConfig};

/// Arguments of `tether relay`.
#[derive(Args)]
pub(crate) struct RelayArgs {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7400")]
    listen: String,
    /// TOML file of workspaces: `[[workspace]] id = "acme"`, `credential_blake2s = "HEX"`
    /// (or `credential = "..."`), `remote_access = true`.
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

pub(crate) fn run(args: RelayArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let mut config = RelayServerConfig::new(listen_addr(&args.listen)?);
    if let Some(path) = &args.config {
        config.add_toml_file(path)?;
    }
    for pair in &args.workspaces {
        config.add_workspace_pair(pair)?;
    }
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
    runtime.block_on(async {
        let server = RelayServer::bind(config).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "tether relay listening on {}", server.url())?;
            out.flush()?;
        }
        server.run(shutdown_signal()).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
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
