//! End-to-end fixtures on loopback, in one tokio runtime.
//!
//! - [`TetherStack`]: the reference relay (`tether-relay`), reference hosts
//!   (`tether_host::run`, paired) and the reference controller (`tether-controller`).
//! - [`SnowWsServer`]: the `e2e/connect-baseline` peer: a WebSocket server answering a bare
//!   snow IK handshake (snow's default resolver, empty payloads).
//! - [`TcpForwarder`] and [`TcpSink`]: the `e2e/stream-baseline` path: the same bytes through
//!   a plain TCP forwarder to a counting sink.
//!
//! State directories go to `/dev/shm` when it exists (or `$TETHER_BENCH_STATE_DIR`): the
//! host and controller fsync their state on every handshake (`CHAN-5`, `CHAN-10`), and
//! what an fsync costs depends on the disk, not on Tether.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tether_controller::{
    Connection, ControllerState, LinkOptions, PairedHost, RpcError, connect, pair,
};
use tether_host::state::StateDir;
use tether_proto::cmd::{Message, Notification};
use tether_proto::limits::{HANDSHAKE_RATE_PER_SEC, MAX_TRANSPORT_PLAINTEXT_LEN};
use tether_proto::time::UnixTime;
use tether_relay::RelayHandle;
use tether_testkit::inproc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as Ws;

/// The workspace of the benchmark relay.
pub const WORKSPACE: &str = "bench";
/// Its credential.
pub const CREDENTIAL: &str = "bench-workspace-credential-0123456789";
/// Longest wait for any one step of setting up a fixture.
const SETUP_WAIT: Duration = Duration::from_secs(30);

/// Where fixture state directories go.
pub(crate) fn state_root() -> Result<tempfile::TempDir> {
    let base = std::env::var_os("TETHER_BENCH_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            shm.is_dir().then_some(shm)
        })
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("tether-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a state directory in {}", base.display()))
}

/// The reference relay, `hosts` reference hosts paired with one reference controller.
///
/// A host takes at most 50 handshakes a second (`CHAN-14`); [`TetherStack::pace`] spreads
/// new connections over the hosts and waits (outside any timed section) so that none is
/// refused.
pub struct TetherStack {
    relay: Option<RelayHandle>,
    hosts: Vec<inproc::Host>,
    controller: ControllerState,
    paired: Vec<PairedHost>,
    last_handshake: Vec<Option<Instant>>,
    next: usize,
    options: LinkOptions,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TetherStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TetherStack")
            .field("hosts", &self.hosts.len())
            .finish_non_exhaustive()
    }
}

impl TetherStack {
    /// Starts the relay and `hosts` hosts, and pairs the controller with each.
    ///
    /// # Errors
    /// Any set-up failure (binding, registration, pairing).
    pub async fn start(hosts: usize) -> Result<Self> {
        let dir = state_root()?;
        let relay = inproc::relay(&[(WORKSPACE, CREDENTIAL.as_bytes())]).await;
        let url = relay.url().to_owned();
        let controller = ControllerState::open(&dir.path().join("controller"))?;
        let options = LinkOptions::default();
        let mut running = Vec::new();
        let mut paired = Vec::new();
        for i in 0..hosts.max(1) {
            let state = StateDir::open(dir.path().join(format!("host{i}")))?;
            let name = format!("bench-host-{i}");
            let host_options = inproc::host_options(&url, WORKSPACE, CREDENTIAL, &name);
            let mut host = inproc::Host::start(state.clone(), host_options);
            host.ready(SETUP_WAIT)
                .await
                .with_context(|| format!("host {i}"))?;
            running.push(host);
            let token = state.mint_token(Duration::from_secs(300), UnixTime::now())?;
            let done = tokio::time::timeout(
                SETUP_WAIT,
                pair(
                    &controller,
                    &token.to_text(),
                    CREDENTIAL,
                    "bench",
                    &options,
                    |_| {},
                ),
            )
            .await
            .map_err(|_| anyhow!("pairing with host {i} timed out"))??;
            paired.push(done.host);
        }
        let n = paired.len();
        Ok(Self {
            relay: Some(relay),
            hosts: running,
            controller,
            paired,
            last_handshake: vec![Some(Instant::now()); n],
            next: 0,
            options,
            _dir: dir,
        })
    }

    /// Picks the next host and waits until a handshake to it stays within its rate limit
    /// (`CHAN-14`, 50 a second); returns its index for [`TetherStack::connect_to`]. Call
    /// it outside the timed section.
    pub async fn pace(&mut self) -> usize {
        let i = self.next % self.paired.len().max(1);
        self.next = self.next.wrapping_add(1);
        // 25 % slack over the bucket's refill interval.
        let interval = Duration::from_secs(1) / HANDSHAKE_RATE_PER_SEC * 5 / 4;
        if let Some(Some(last)) = self.last_handshake.get(i) {
            let since = last.elapsed();
            if since < interval {
                tokio::time::sleep(interval - since).await;
            }
        }
        if let Some(slot) = self.last_handshake.get_mut(i) {
            *slot = Some(Instant::now());
        }
        i
    }

    /// `e2e/connect`: a new relay link, the IK handshake to host `i` and `initialize`,
    /// until its response (then `initialized` is sent).
    ///
    /// # Errors
    /// The controller's.
    pub async fn connect_to(&self, i: usize) -> Result<Connection> {
        let host = self.paired.get(i).context("no such host")?;
        Ok(connect(&self.controller, host, &self.options).await?)
    }

    /// Stops the hosts and the relay.
    pub async fn shutdown(mut self) {
        for h in self.hosts.drain(..) {
            let _ = h.stop(Duration::from_secs(5)).await;
        }
        if let Some(relay) = self.relay.take() {
            relay.shutdown().await;
        }
    }
}

/// `e2e/request-rtt`: one request the reference host serves and answers at once
/// (`command/exec/terminate` of a process that does not exist: `CMD-38`'s error
/// response), awaited.
///
/// # Errors
/// If the answer is not that error response.
pub async fn request_rtt(conn: &Connection) -> Result<()> {
    match conn
        .session
        .request(
            "command/exec/terminate",
            Some(json!({"processId": "no-such-process"})),
        )
        .await
    {
        Err(RpcError::Remote(_)) => Ok(()),
        Ok(v) => bail!("unexpected result {v}"),
        Err(RpcError::Ended(e)) => bail!("session ended: {e:?}"),
    }
}

/// The `e2e/stream-64k` message: a notification the host ignores (`CMD-12`) whose
/// encoding fills one transport message (65519 bytes of plaintext, `CHAN-16`).
///
/// # Errors
/// Only if the sizing fails (a bug).
pub fn stream_message() -> Result<(Message, usize)> {
    let make = |data: String| {
        Message::Notification(Notification::new(
            "bench/stream",
            Some(json!({ "data": data })),
        ))
    };
    let overhead = make(String::new()).to_bytes().len();
    let fill = MAX_TRANSPORT_PLAINTEXT_LEN
        .checked_sub(overhead)
        .context("notification overhead")?;
    let message = make("x".repeat(fill));
    let len = message.to_bytes().len();
    if len != MAX_TRANSPORT_PLAINTEXT_LEN {
        bail!("stream message is {len} bytes");
    }
    Ok((message, len))
}

/// Messages of [`stream_message`] in flight at once in [`stream`]: the relay holds at most
/// 256 KiB of undelivered `DATA` per session and direction and closes a session that
/// exceeds it with `SLOW_READER` (`LINK-22`), so a sender keeps its window below that
/// (3 x 65535 bytes of ciphertext plus the requests).
pub const STREAM_WINDOW: usize = 3;

/// `e2e/stream-64k`: sends `count` copies of `message` on the session, each followed by
/// a request the host answers at once, keeping at most [`STREAM_WINDOW`] unanswered; returns
/// when every answer is in. The host handles a session's messages in order, so an answer
/// means its copy went through the relay and was decrypted and parsed by the host.
///
/// # Errors
/// If the session fails.
pub async fn stream(conn: &Connection, message: &Message, count: u64) -> Result<()> {
    let mut pending = std::collections::VecDeque::with_capacity(STREAM_WINDOW);
    let params = json!({"processId": "no-such-process"});
    let check = |r: Result<serde_json::Value, RpcError>| match r {
        Err(RpcError::Remote(_)) => Ok(()),
        Ok(v) => Err(anyhow!("unexpected result {v}")),
        Err(RpcError::Ended(e)) => Err(anyhow!("session ended: {e:?}")),
    };
    for _ in 0..count {
        if pending.len() >= STREAM_WINDOW
            && let Some(oldest) = pending.pop_front()
        {
            check(oldest.await)?;
        }
        conn.session.send(message.clone())?;
        pending.push_back(
            conn.session
                .start_request("command/exec/terminate", Some(params.clone())),
        );
    }
    for reply in pending {
        check(reply.await)?;
    }
    Ok(())
}

/// The `e2e/connect-baseline` peer: a WebSocket server that answers one bare snow IK
/// handshake (snow's default resolver, empty payloads) per connection.
#[derive(Debug)]
pub struct SnowWsServer {
    addr: SocketAddr,
    /// The responder's static public key.
    pub public: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl SnowWsServer {
    /// Binds on loopback and serves in the background.
    ///
    /// # Errors
    /// If binding fails.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let private = vec![0x23u8; 32];
        let public = tether_proto::keys::public_key(&[0x23; 32]).to_vec();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let private = private.clone();
                tokio::spawn(async move {
                    let _ = serve_snow(tcp, &private).await;
                });
            }
        });
        Ok(Self { addr, public, task })
    }

    /// `e2e/connect-baseline`: TCP connect, WebSocket upgrade, bare snow IK (message 1 in
    /// a binary message, message 2 back), until the transport is split.
    ///
    /// # Errors
    /// If any step fails.
    pub async fn connect(
        &self,
        initiator_static: &[u8],
    ) -> Result<(WsClient, snow::TransportState)> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let (mut ws, _) =
            tokio_tungstenite::client_async(format!("ws://{}/", self.addr), tcp).await?;
        let mut hs = snow::Builder::new(tether_proto::channel::ik_params()?)
            .local_private_key(initiator_static)
            .and_then(|b| b.remote_public_key(&self.public))
            .and_then(|b| b.build_initiator())
            .map_err(|e| anyhow!("snow: {e}"))?;
        let mut buf = [0u8; 256];
        let n = hs
            .write_message(&[], &mut buf)
            .map_err(|e| anyhow!("message 1: {e}"))?;
        ws.send(Ws::binary(buf.get(..n).context("len")?.to_vec()))
            .await?;
        let reply = loop {
            match ws.next().await {
                Some(Ok(Ws::Binary(b))) => break b,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before message 2"),
            }
        };
        hs.read_message(&reply, &mut buf)
            .map_err(|e| anyhow!("message 2: {e}"))?;
        let transport = hs
            .into_transport_mode()
            .map_err(|e| anyhow!("split: {e}"))?;
        Ok((ws, transport))
    }
}

impl Drop for SnowWsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A baseline WebSocket client.
pub type WsClient = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn serve_snow(tcp: TcpStream, private: &[u8]) -> Result<()> {
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    let mut hs = snow::Builder::new(tether_proto::channel::ik_params()?)
        .local_private_key(private)
        .and_then(|b| b.build_responder())
        .map_err(|e| anyhow!("snow: {e}"))?;
    let message1 = loop {
        match ws.next().await {
            Some(Ok(Ws::Binary(b))) => break b,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(()),
        }
    };
    let mut buf = [0u8; 256];
    hs.read_message(&message1, &mut buf)
        .map_err(|e| anyhow!("message 1: {e}"))?;
    let n = hs
        .write_message(&[], &mut buf)
        .map_err(|e| anyhow!("message 2: {e}"))?;
    ws.send(Ws::binary(buf.get(..n).context("len")?.to_vec()))
        .await?;
    // Hold the connection until the client goes.
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

/// The `e2e/stream-baseline` receiver: reads an 8-byte big-endian length, then that many
/// bytes, then answers one byte; per connection, repeatedly.
#[derive(Debug)]
pub struct TcpSink {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TcpSink {
    /// Binds on loopback and serves in the background.
    ///
    /// # Errors
    /// If binding fails.
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let Ok(total) = tcp.read_u64().await else {
                            return;
                        };
                        let mut left = total;
                        while left > 0 {
                            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                            let Some(chunk) = buf.get_mut(..want) else {
                                return;
                            };
                            match tcp.read(chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => left = left.saturating_sub(n as u64),
                            }
                        }
                        if tcp.write_all(&[1]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for TcpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain TCP forwarder: every accepted connection is joined to a new connection to
/// `target`, bytes copied both ways.
#[derive(Debug)]
pub struct TcpForwarder {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TcpForwarder {
    /// Binds on loopback and forwards to `target` in the background.
    ///
    /// # Errors
    /// If binding fails.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for TcpForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `e2e/stream-baseline`: sends `count` messages of `len` bytes through the forwarder to
/// the sink (one length prefix for the lot), and waits for its one-byte answer.
///
/// # Errors
/// If the connection fails.
pub async fn stream_baseline(tcp: &mut TcpStream, chunk: &[u8], count: u64) -> Result<()> {
    tcp.write_u64(chunk.len() as u64 * count).await?;
    for _ in 0..count {
        tcp.write_all(chunk).await?;
    }
    let mut ack = [0u8; 1];
    tcp.read_exact(&mut ack).await?;
    Ok(())
}
