//! The reference relay and host inside the test's own process: a `tether_relay` server on
//! 127.0.0.1 (optionally `wss://` with a self-signed certificate for `localhost`), a
//! `tether_host::run` with its event channel and stop handle, and raw relay links that
//! say `HELLO` as a controller or register as a host (`LINK-12`) for tests that drive
//! frames by hand.
//!
//! Waits are bounded by [`LIMIT`]; the async helpers run on the caller's tokio runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tether_host::runtime::{HostOptions, RunEvent};
use tether_host::state::StateDir;
use tether_host::{CommandConfig, RunError, run};
use tether_proto::limits::PROTOCOL_VERSION;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{RelayFrame, Role};
use tether_relay::client::{self, ClientLink};
use tether_relay::{RelayHandle, RelayServer, RelayServerConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::LIMIT;

/// A current-thread tokio runtime (I/O and timers on), for a synchronous test that
/// drives async clients with `block_on`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A relay configuration on `listen` with these workspaces (`ID`, plain credential),
/// remote access on; panics on an invalid workspace.
pub fn relay_config(listen: SocketAddr, workspaces: &[(&str, &[u8])]) -> RelayServerConfig {
    workspaces.iter().fold(
        RelayServerConfig::new(listen),
        |config, (id, credential)| {
            config
                .with_workspace(id, credential, true)
                .unwrap_or_else(|e| panic!("workspace {id}: {e}"))
        },
    )
}

/// 127.0.0.1 on a free port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Binds and spawns a relay with `config`; panics if it cannot bind.
pub async fn spawn_relay(config: RelayServerConfig) -> RelayHandle {
    RelayServer::bind(config)
        .await
        .unwrap_or_else(|e| panic!("relay: {e}"))
        .spawn()
}

/// A relay on 127.0.0.1 (free port) with these workspaces, plain `ws://`.
pub async fn relay(workspaces: &[(&str, &[u8])]) -> RelayHandle {
    spawn_relay(relay_config(loopback(), workspaces)).await
}

/// A self-signed certificate for `localhost` and its key, as PEM files in a directory
/// removed on drop.
pub struct SelfSigned {
    /// The directory of the two files.
    pub dir: tempfile::TempDir,
    /// The certificate (PEM): the relay's chain and the client's extra CA.
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

impl SelfSigned {
    /// A fresh certificate for `localhost`.
    pub fn localhost() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        Self { dir, cert, key }
    }

    /// A client TLS configuration trusting this certificate.
    pub fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        client::tls_config_with_ca(&self.cert).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A `wss://` relay on 127.0.0.1 with these workspaces and a fresh [`SelfSigned`]
/// certificate; its URL for clients is `wss://localhost:PORT/`.
pub async fn tls_relay(workspaces: &[(&str, &[u8])]) -> (RelayHandle, SelfSigned) {
    let cert = SelfSigned::localhost();
    let relay =
        spawn_relay(relay_config(loopback(), workspaces).with_tls(&cert.cert, &cert.key)).await;
    (relay, cert)
}

/// `HELLO` in `workspace` with `credential`.
pub fn hello(role: Role, workspace: &str, credential: &[u8], registration: Vec<u8>) -> RelayFrame {
    RelayFrame::Hello {
        version: PROTOCOL_VERSION,
        role,
        workspace: workspace.into(),
        credential: credential.to_vec(),
        registration,
    }
}

/// The next frame within [`LIMIT`].
async fn next_frame(link: &mut ClientLink) -> Result<RelayFrame> {
    tokio::time::timeout(LIMIT, client::recv_frame(link))
        .await
        .context("no frame from the relay in time")??
        .ok_or_else(|| anyhow!("the relay closed the link"))
}

/// Says `HELLO` as a controller on `link` and waits (at most [`LIMIT`]) for `READY`.
///
/// # Errors
/// If the link fails or the relay answers anything but `READY`.
pub async fn controller_hello(
    link: &mut ClientLink,
    workspace: &str,
    credential: &[u8],
) -> Result<()> {
    client::send_frame(
        link,
        &hello(Role::Controller, workspace, credential, Vec::new()),
    )
    .await?;
    match next_frame(link).await? {
        RelayFrame::Ready => Ok(()),
        other => bail!("expected READY, got {other:?}"),
    }
}

/// A controller link to `url` (TLS as `tls` says) that got `READY`.
///
/// # Errors
/// As [`client::connect`] and [`controller_hello`].
pub async fn controller_link(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    workspace: &str,
    credential: &[u8],
) -> Result<ClientLink> {
    let mut link = tokio::time::timeout(LIMIT, client::connect(url, tls))
        .await
        .context("connect timed out")??;
    controller_hello(&mut link, workspace, credential).await?;
    Ok(link)
}

/// Registers `link` as the host with key `private` (`LINK-12`): `HELLO` with message 1,
/// `HOST_CHALLENGE`, `HOST_PROOF`, then `READY` (each wait at most [`LIMIT`]).
///
/// # Errors
/// If the link fails or the relay answers out of turn.
pub async fn register_host(
    link: &mut ClientLink,
    private: &[u8; 32],
    workspace: &str,
    credential: &[u8],
) -> Result<()> {
    let (registration, msg1) =
        HostRegistration::start(private, workspace).map_err(|e| anyhow!("registration: {e:?}"))?;
    client::send_frame(
        link,
        &hello(Role::Host, workspace, credential, msg1.to_vec()),
    )
    .await?;
    let mut registration = Some(registration);
    loop {
        match next_frame(link).await? {
            RelayFrame::HostChallenge { message } => {
                let proof = registration
                    .take()
                    .context("a second HOST_CHALLENGE")?
                    .respond(&message)
                    .map_err(|e| anyhow!("registration: {e:?}"))?;
                let proof = RelayFrame::HostProof {
                    message: proof.to_vec(),
                };
                client::send_frame(link, &proof).await?;
            }
            RelayFrame::Ready => return Ok(()),
            other => bail!("host registration: unexpected {other:?}"),
        }
    }
}

/// A host link to `url` registered with key `private` (see [`register_host`]).
///
/// # Errors
/// As [`client::connect`] and [`register_host`].
pub async fn host_link(
    url: &str,
    private: &[u8; 32],
    workspace: &str,
    credential: &[u8],
) -> Result<ClientLink> {
    let mut link = tokio::time::timeout(LIMIT, client::connect(url, None))
        .await
        .context("connect timed out")??;
    register_host(&mut link, private, workspace, credential).await?;
    Ok(link)
}

/// [`HostOptions`] for a host named `name` in `workspace` on the relay at `url`, no
/// pairing confirmation, default commands, no extra CA.
pub fn host_options(url: &str, workspace: &str, credential: &str, name: &str) -> HostOptions {
    HostOptions {
        relay: url.to_owned(),
        workspace: workspace.to_owned(),
        credential: credential.to_owned(),
        name: name.to_owned(),
        confirm: false,
        commands: CommandConfig::default(),
        ca_cert: None,
        insecure: false,
    }
}

/// A `tether_host::run` on a tokio task: its events, and a handle that stops it.
pub struct Host {
    /// The host's state directory.
    pub state: StateDir,
    /// Every event the host reported, in order.
    pub events: mpsc::UnboundedReceiver<RunEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Host {
    /// Starts `run(state, options)` on a new task; does not wait for anything.
    pub fn start(state: StateDir, options: HostOptions) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(
            state.clone(),
            options,
            async {
                let _ = stopped.await;
            },
            move |e| {
                let _ = events_tx.send(e);
            },
        ));
        Self {
            state,
            events,
            stop: Some(stop),
            task,
        }
    }

    /// The next event, within `limit`; panics if none comes or the host stopped.
    pub async fn next_event(&mut self, limit: Duration) -> RunEvent {
        tokio::time::timeout(limit, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no host event within {limit:?}"))
            .unwrap_or_else(|| panic!("the host stopped"))
    }

    /// Waits (each event at most `limit`) for `READY`; returns the fingerprint and relay URL
    /// the host reported.
    ///
    /// # Errors
    /// If the host lost its link, stopped, or said nothing within `limit`.
    pub async fn ready(&mut self, limit: Duration) -> Result<(String, String)> {
        loop {
            match tokio::time::timeout(limit, self.events.recv())
                .await
                .map_err(|_| anyhow!("host not ready within {limit:?}"))?
            {
                Some(RunEvent::Ready { fingerprint, relay }) => return Ok((fingerprint, relay)),
                Some(RunEvent::LinkLost { reason, .. }) => bail!("link lost: {reason}"),
                Some(_) => {}
                None => bail!("host stopped: {:?}", (&mut self.task).await),
            }
        }
    }

    /// Asks the host to stop and waits (at most `limit`) for `run` to return.
    ///
    /// # Errors
    /// If it does not stop in time, or `run` failed.
    pub async fn stop(mut self, limit: Duration) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(limit, &mut self.task)
            .await
            .map_err(|_| anyhow!("host did not stop within {limit:?}"))??
            .map_err(|e| anyhow!("host run: {e}"))
    }
}
