//! A minimal WebSocket driver around the reference relay core
//! (`tether_proto::link::router::Relay`), with switchable faults: the faulty relays the
//! suite must reject, and (with no fault) a correct relay for the framework's own tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    unreachable_pub,
    clippy::collapsible_if
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether_conformance::host::BoxFuture;
use tether_conformance::{Credential, RelayAdmin, RelayTarget, Target, TlsOptions};
use tether_proto::link::router::{Relay, RelayConfig, RelayEvent, RelayLimits, WorkspaceConfig};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How the relay misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// None: the reference core, correctly driven.
    None,
    /// Flips the last byte of every DATA payload it forwards (LINK-18, LINK-26).
    FlipDataByte,
    /// Routes an OPEN to a host of another workspace when its own has none (LINK-17).
    CrossWorkspace,
    /// Never enforces the auth deadline (LINK-7).
    NoAuthDeadline,
    /// Treats every HELLO version as 1 (LINK-3).
    AnyVersion,
    /// Re-uses one registration ephemeral for every host (LINK-13).
    FixedEphemeral,
    /// Ignores WebSocket text messages (LINK-1).
    IgnoreText,
    /// No session limits (LINK-20).
    NoSessionLimit,
    /// No slow-reader bounds: queues without limit (LINK-22).
    UnboundedQueues,
    /// Sends a PING after its own GOAWAY (LINK-27).
    FrameAfterGoaway,
    /// Tells an unknown workspace apart from a wrong credential in the GOAWAY reason (LINK-10).
    RevealsWorkspace,
    /// Drops CLOSE frames from clients instead of forwarding them (LINK-21).
    DropsClose,
    /// Takes in new workspaces at run time but ignores every change to, or removal of, a
    /// workspace it has: the links stay up and the old credential keeps working (LINK-37).
    IgnoresReconfiguration,
}

pub const WORKSPACE: &str = "conf-main";
pub const CREDENTIAL: &str = "conformance-main-credential-0001";
pub const OTHER_WORKSPACE: &str = "conf-other";
pub const OTHER_CREDENTIAL: &str = "conformance-other-credential-002";
pub const OFF_WORKSPACE: &str = "conf-off";
pub const OFF_CREDENTIAL: &str = "conformance-off-credential-00003";

enum Ev {
    /// The operator sets (or removes) a workspace (LINK-37).
    SetWorkspace(String, Option<WorkspaceConfig>, oneshot::Sender<()>),
    Opened(u64, mpsc::Sender<Out>),
    Frame(u64, Vec<u8>),
    Text(u64),
    Closed(u64),
    Writable(u64),
}

enum Out {
    Frame(Vec<u8>),
    Close,
}

/// A running faulty (or correct) relay.
pub struct TestRelay {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
    admin: Arc<DriverAdmin>,
}

/// The driver's operator hook: reconfigures the core while it runs (LINK-37).
#[derive(Debug)]
pub struct DriverAdmin {
    events: mpsc::UnboundedSender<Ev>,
}

impl std::fmt::Debug for Ev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ev")
    }
}

impl RelayAdmin for DriverAdmin {
    fn set_workspace(
        &self,
        workspace: &str,
        credential: Option<&[u8]>,
        remote_access: bool,
    ) -> BoxFuture<'_, Result<(), String>> {
        let config = credential.map(|c| WorkspaceConfig::new(c, remote_access));
        let (tx, rx) = oneshot::channel();
        let sent = self
            .events
            .send(Ev::SetWorkspace(workspace.to_owned(), config, tx));
        Box::pin(async move {
            sent.map_err(|_| "the relay has stopped".to_owned())?;
            rx.await.map_err(|_| "the relay has stopped".to_owned())
        })
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestRelay {
    /// The conformance target for this relay, with all three workspaces.
    pub fn target(&self) -> Arc<Target> {
        Arc::new(Target::Relay(RelayTarget {
            url: self.url.clone(),
            workspace: cred(WORKSPACE, CREDENTIAL),
            other_workspace: Some(cred(OTHER_WORKSPACE, OTHER_CREDENTIAL)),
            remote_access_off: Some(cred(OFF_WORKSPACE, OFF_CREDENTIAL)),
            tls: TlsOptions::default(),
            admin: Some(self.admin.clone()),
        }))
    }
}

pub fn cred(w: &str, c: &str) -> Credential {
    format!("{w}={c}").parse().unwrap()
}

/// Starts a relay with `fault` on 127.0.0.1:0.
pub async fn start(fault: Fault) -> TestRelay {
    let mut limits = RelayLimits::default();
    match fault {
        Fault::NoAuthDeadline => limits.auth_deadline = Duration::from_secs(3600),
        Fault::NoSessionLimit => {
            limits.max_sessions_per_controller_link = 10_000;
            limits.max_sessions_per_host = 10_000;
        }
        Fault::UnboundedQueues => {
            limits.session_queue_bytes = usize::MAX / 4;
            limits.link_queue_bytes = usize::MAX / 4;
        }
        _ => {}
    }
    let config = RelayConfig::default()
        .with_workspace(WORKSPACE, WorkspaceConfig::new(CREDENTIAL.as_bytes(), true))
        .with_workspace(
            OTHER_WORKSPACE,
            WorkspaceConfig::new(OTHER_CREDENTIAL.as_bytes(), true),
        )
        .with_workspace(
            OFF_WORKSPACE,
            WorkspaceConfig::new(OFF_CREDENTIAL.as_bytes(), false),
        )
        .with_limits(limits);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let accept_tx = ev_tx.clone();
    let admin = Arc::new(DriverAdmin {
        events: ev_tx.clone(),
    });
    let accept = tokio::spawn(async move {
        let mut next = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            let id = next;
            next += 1;
            let ev = accept_tx.clone();
            tokio::spawn(serve(tcp, id, ev));
        }
    });
    let task = tokio::spawn(async move {
        drive(Relay::new(config), ev_rx, fault).await;
        accept.abort();
    });
    TestRelay { url, task, admin }
}

async fn serve(tcp: tokio::net::TcpStream, id: u64, ev: mpsc::UnboundedSender<Ev>) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(1);
    if ev.send(Ev::Opened(id, out_tx)).is_err() {
        return;
    }
    let wev = ev.clone();
    let writer = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Frame(b) => {
                    match tokio::time::timeout(
                        Duration::from_secs(30),
                        sink.send(Message::binary(b)),
                    )
                    .await
                    {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                    let _ = wev.send(Ev::Writable(id));
                }
                Out::Close => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                    break;
                }
            }
        }
        let _ = wev.send(Ev::Closed(id));
    });
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Binary(b)) => {
                let _ = ev.send(Ev::Frame(id, b.to_vec()));
            }
            Ok(Message::Text(_)) => {
                let _ = ev.send(Ev::Text(id));
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = ev.send(Ev::Closed(id));
    // The writer ends when the driver drops its sender.
    drop(writer);
}

struct LinkIo {
    link: tether_proto::link::router::LinkId,
    tx: mpsc::Sender<Out>,
    closing: bool,
    close_sent: bool,
    workspace: Option<String>,
}

async fn drive(mut relay: Relay, mut rx: mpsc::UnboundedReceiver<Ev>, fault: Fault) {
    let mut links: HashMap<u64, LinkIo> = HashMap::new();
    let mut by_link: HashMap<tether_proto::link::router::LinkId, u64> = HashMap::new();
    // Faults' own bookkeeping.
    let mut hosts: HashMap<[u8; 32], (u64, String)> = HashMap::new();
    let mut opens: HashMap<SessionId, (u64, Vec<u8>, [u8; 32])> = HashMap::new();
    let mut hello_ws: HashMap<u64, String> = HashMap::new();
    let fixed = [7u8; 32];
    loop {
        // Events.
        while let Some(ev) = relay.poll_event() {
            match ev {
                RelayEvent::CloseLink { link, .. } | RelayEvent::PeerGoingAway { link, .. } => {
                    if let Some(id) = by_link.get(&link) {
                        if let Some(io) = links.get_mut(id) {
                            io.closing = true;
                        }
                    }
                }
                RelayEvent::HostRegistered {
                    link,
                    workspace,
                    host_key,
                } => {
                    if let Some(id) = by_link.get(&link) {
                        hosts.insert(host_key, (*id, workspace));
                    }
                }
                _ => {}
            }
        }
        // Transmit.
        let mut inject: Vec<(u64, Vec<u8>)> = Vec::new();
        let ids: Vec<u64> = links.keys().copied().collect();
        for id in ids {
            let Some(io) = links.get_mut(&id) else {
                continue;
            };
            loop {
                let Ok(permit) = io.tx.try_reserve() else {
                    break;
                };
                let Some(mut bytes) = relay.poll_transmit(io.link) else {
                    drop(permit);
                    if io.closing && !io.close_sent {
                        io.close_sent = true;
                        if fault == Fault::FrameAfterGoaway {
                            let ping = RelayFrame::Ping { value: 1 }.to_bytes().unwrap();
                            let _ = io.tx.try_send(Out::Frame(ping));
                        }
                        let tx = io.tx.clone();
                        tokio::spawn(async move {
                            let _ = tx.send(Out::Close).await;
                        });
                    }
                    break;
                };
                match fault {
                    Fault::FlipDataByte
                        if bytes.first() == Some(&RelayFrame::DATA) && bytes.len() > 9 =>
                    {
                        if let Some(b) = bytes.last_mut() {
                            *b ^= 0x80;
                        }
                    }
                    Fault::CrossWorkspace => {
                        if let Ok(RelayFrame::Close { session, code }) = RelayFrame::decode(&bytes)
                        {
                            if code == CloseCode::HOST_UNREACHABLE {
                                if let Some((ctl, handshake, key)) = opens.get(&session).cloned() {
                                    if ctl == id {
                                        if let Some((host_id, _)) = hosts.get(&key) {
                                            let inc = RelayFrame::Incoming { session, handshake }
                                                .to_bytes()
                                                .unwrap();
                                            inject.push((*host_id, inc));
                                            drop(permit);
                                            continue;
                                        }
                                    }
                                }
                            }
                        }
                    }
                    Fault::RevealsWorkspace => {
                        if let Ok(RelayFrame::GoAway { code, .. }) = RelayFrame::decode(&bytes) {
                            if code == CloseCode::AUTH_FAILED {
                                let known = hello_ws.get(&id).is_some_and(|w| {
                                    [WORKSPACE, OTHER_WORKSPACE, OFF_WORKSPACE]
                                        .contains(&w.as_str())
                                });
                                let reason = if known {
                                    "wrong credential"
                                } else {
                                    "unknown workspace"
                                };
                                bytes = RelayFrame::GoAway {
                                    code,
                                    reason: reason.to_owned(),
                                }
                                .to_bytes()
                                .unwrap();
                            }
                        }
                    }
                    _ => {}
                }
                permit.send(Out::Frame(bytes));
            }
        }
        for (host_id, bytes) in inject {
            if let Some(h) = links.get(&host_id) {
                let tx = h.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Out::Frame(bytes)).await;
                });
            }
        }
        let now = Instant::now();
        let deadline = relay.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                let now = Instant::now();
                match ev {
                    Ev::SetWorkspace(workspace, config, done) => {
                        let known = relay.config().workspaces.contains_key(&workspace);
                        if fault != Fault::IgnoresReconfiguration || !known {
                            relay.set_workspace(&workspace, config, now);
                        }
                        let _ = done.send(());
                    }
                    Ev::Opened(id, tx) => {
                        let link = relay.handle_link_opened(now);
                        by_link.insert(link, id);
                        links.insert(id, LinkIo { link, tx, closing: false, close_sent: false, workspace: None });
                    }
                    Ev::Frame(id, mut bytes) => {
                        let Some(io) = links.get(&id) else { continue };
                        let link = io.link;
                        if let Ok(frame) = RelayFrame::decode(&bytes) {
                            match &frame {
                                RelayFrame::Hello { workspace, .. } => {
                                    hello_ws.insert(id, workspace.clone());
                                    if fault == Fault::AnyVersion {
                                        if let Some(v) = bytes.get_mut(1) {
                                            *v = 1;
                                        }
                                    }
                                }
                                RelayFrame::Open { session, host_key, handshake } => {
                                    opens.insert(*session, (id, handshake.clone(), *host_key));
                                }
                                RelayFrame::Close { .. } if fault == Fault::DropsClose => continue,
                                _ => {}
                            }
                        }
                        let mut rng = || {
                            if fault == Fault::FixedEphemeral {
                                fixed
                            } else {
                                let mut b = [0u8; 32];
                                getrandom::fill(&mut b).unwrap();
                                b
                            }
                        };
                        relay.handle_frame(link, &bytes, now, &mut rng);
                    }
                    Ev::Text(id) => {
                        if fault == Fault::IgnoreText {
                            continue;
                        }
                        if let Some(io) = links.get(&id) {
                            relay.handle_text_message(io.link, now);
                        }
                    }
                    Ev::Closed(id) => {
                        if let Some(io) = links.remove(&id) {
                            by_link.remove(&io.link);
                            relay.handle_link_closed(io.link, now);
                            hosts.retain(|_, (h, _)| *h != id);
                        }
                    }
                    Ev::Writable(_) => {}
                }
            }
            () = sleep => relay.handle_timeout(now.max(Instant::now())),
        }
    }
}
