//! The listening relay: bind, run, spawn, shut down.

use std::collections::HashMap;
use std::future::Future;
use std::io::BufReader;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_proto::link::router::{Relay, RelayConfig, WorkspaceConfig};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::actor::Actor;
use crate::change::WorkspaceChange;
use crate::config::{RelayServerConfig, TlsFiles};
use crate::conn::{self, ConnContext};
use crate::control::RelayControl;
use crate::error::RelayError;
use crate::input::Input;
use crate::stats::RelayStats;

/// Inputs waiting for the actor, from all connections together. With frames of at most
/// 65 535 bytes (`LINK-5`) this holds at most 4 MiB: the queue is shared, so its bound is
/// part of the relay's fixed memory, not of any link's, and a reader that finds it full
/// waits (TCP pushes back on the sender) instead of growing it. The actor never waits on
/// a link (it drops or closes slow readers, `LINK-22`, `LINK-23`), so the queue drains at
/// the actor's pace.
const INPUT_QUEUE: usize = 64;

/// A bound relay, not yet serving.
pub struct RelayServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    relay: Relay,
    flush_timeout: Duration,
    max_links_per_address: Option<usize>,
    stats: Arc<Mutex<RelayStats>>,
    inputs: mpsc::Sender<Input>,
    input_rx: mpsc::Receiver<Input>,
}

impl std::fmt::Debug for RelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayServer")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl RelayServer {
    /// Checks `config`, loads the TLS files and binds the listening socket.
    ///
    /// # Errors
    /// [`RelayError::PlainNonLoopback`] for plain `ws://` on an address that is not
    /// loopback without `insecure` (`LINK-2`); [`RelayError::Tls`] or [`RelayError::Io`]
    /// if the certificate or key cannot be loaded; [`RelayError::Io`] if the address
    /// cannot be bound.
    pub async fn bind(config: RelayServerConfig) -> Result<Self, RelayError> {
        let tls = match &config.tls {
            Some(files) => Some(tls_acceptor(files)?),
            None => {
                // LINK-2: no plain ws:// on a non-loopback address unless asked for.
                if !config.listen.ip().is_loopback() && !config.insecure {
                    return Err(RelayError::PlainNonLoopback(config.listen));
                }
                None
            }
        };
        if config.workspaces.is_empty() {
            warn!("no workspaces configured: every HELLO will get AUTH_FAILED");
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| RelayError::io(format!("binding {}", config.listen), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| RelayError::io("reading the bound address", e))?;
        let core = RelayConfig {
            workspaces: config.workspaces.into_iter().collect(),
            limits: config.limits,
        };
        let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
        Ok(Self {
            listener,
            local_addr,
            tls,
            relay: Relay::new(core),
            flush_timeout: config.flush_timeout,
            max_links_per_address: config.max_links_per_address,
            stats: Arc::default(),
            inputs,
            input_rx,
        })
    }

    /// A handle that adds, changes and removes workspaces while the relay serves
    /// (`LINK-37`); take it before [`Self::run`]. Changes sent before the relay runs are
    /// applied when it starts.
    pub fn control(&self) -> RelayControl {
        RelayControl::new(self.inputs.clone())
    }

    /// The bound address (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to: `ws://ADDR` or `wss://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// A snapshot of the counters (`LINK-29`).
    pub fn stats(&self) -> RelayStats {
        snapshot(&self.stats)
    }

    /// Serves until `shutdown` resolves, then sends `GOAWAY GOING_AWAY` on every link,
    /// closes them (each bounded by the flush timeout) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (input_tx, input_rx) = (self.inputs, self.input_rx);
        let (stop_tx, stop_rx) = oneshot::channel();
        let notify = Arc::new(Notify::new());
        let ctx = ConnContext {
            actor: input_tx,
            notify: notify.clone(),
            tls: self.tls,
            handshake_timeout: self.relay.config().limits.auth_deadline,
            max_frame_len: self.relay.config().limits.max_frame_len,
        };
        let actor = Actor::new(
            self.relay,
            input_rx,
            notify,
            self.stats.clone(),
            self.flush_timeout,
        );
        let actor = tokio::spawn(actor.run(stop_rx));
        info!(addr = %self.local_addr, tls = ctx.tls.is_some(), "relay listening");
        let limiter = self
            .max_links_per_address
            .map(|max| Arc::new(AddressLimiter::new(max)));
        tokio::select! {
            () = shutdown => {}
            () = accept_loop(self.listener, ctx, limiter, self.stats.clone()) => {}
        }
        let _ = stop_tx.send(());
        let _ = actor.await;
    }

    /// Serves in a background task until [`RelayHandle::shutdown`] (or the handle is
    /// dropped).
    pub fn spawn(self) -> RelayHandle {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let url = self.url();
        let local_addr = self.local_addr;
        let stats = self.stats.clone();
        let control = self.control();
        let task = tokio::spawn(self.run(async {
            let _ = stop_rx.await;
        }));
        RelayHandle {
            url,
            local_addr,
            stats,
            stop: Some(stop_tx),
            task,
            control,
        }
    }
}

/// A relay serving in the background. Dropping it starts a graceful shutdown without
/// waiting for it.
#[derive(Debug)]
pub struct RelayHandle {
    url: String,
    local_addr: SocketAddr,
    stats: Arc<Mutex<RelayStats>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    control: RelayControl,
}

impl RelayHandle {
    /// The URL clients connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of the counters (`LINK-29`).
    pub fn stats(&self) -> RelayStats {
        snapshot(&self.stats)
    }

    /// A handle that reconfigures the running relay's workspaces (`LINK-37`).
    pub fn control(&self) -> RelayControl {
        self.control.clone()
    }

    /// Sets workspace `id` (`Some`, adding it if new) or removes it (`None`) while the
    /// relay runs, ending the links the change revokes (`LINK-37`); see
    /// [`RelayControl::set_workspace`].
    ///
    /// # Errors
    /// As [`RelayControl::set_workspace`].
    pub async fn set_workspace(
        &self,
        id: &str,
        workspace: Option<WorkspaceConfig>,
    ) -> Result<WorkspaceChange, RelayError> {
        self.control.set_workspace(id, workspace).await
    }

    /// Sends `GOAWAY GOING_AWAY` on every link, closes them and waits until the relay has
    /// stopped. Returns the final counters.
    pub async fn shutdown(mut self) -> RelayStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        snapshot(&self.stats)
    }
}

fn snapshot(stats: &Mutex<RelayStats>) -> RelayStats {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Connections open per client address (`SEC-17`).
struct AddressLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; released on drop.
struct AddressSlot {
    limiter: Arc<AddressLimiter>,
    ip: IpAddr,
}

impl AddressLimiter {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one more connection from `ip`, or `None` at the bound.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            limiter: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    ctx: ConnContext,
    limiter: Option<Arc<AddressLimiter>>,
    stats: Arc<Mutex<RelayStats>>,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                // SEC-17: a bound on the links of one client address, checked before any
                // TLS or WebSocket work; the connection is simply closed.
                let slot = match &limiter {
                    Some(limiter) => match limiter.acquire(peer.ip()) {
                        Some(slot) => Some(slot),
                        None => {
                            stats
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .refused_per_address += 1;
                            debug!(%peer, "too many links from this address (SEC-17)");
                            drop(tcp);
                            continue;
                        }
                    },
                    None => None,
                };
                let _ = tcp.set_nodelay(true);
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    conn::serve(tcp, peer, ctx).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // For example out of file descriptors: wait rather than spin.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, RelayError> {
    let open = |path: &std::path::Path| {
        std::fs::File::open(path)
            .map(BufReader::new)
            .map_err(|e| RelayError::io(format!("opening {}", path.display()), e))
    };
    let certs = rustls_pemfile::certs(&mut open(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RelayError::io(format!("reading {}", files.cert.display()), e))?;
    if certs.is_empty() {
        return Err(RelayError::Tls(format!(
            "no certificate in {}",
            files.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut open(&files.key)?)
        .map_err(|e| RelayError::io(format!("reading {}", files.key.display()), e))?
        .ok_or_else(|| RelayError::Tls(format!("no private key in {}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| RelayError::Tls(format!("certificate and key: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
