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
use tether_conformance::cases::security::relay::LOW_ORDER_POINTS_CANONICAL;
use tether_conformance::host::BoxFuture;
use tether_conformance::{Credential, RelayAdmin, RelayTarget, Target, TlsOptions};
use tether_proto::link::router::{Relay, RelayConfig, RelayEvent, RelayLimits, WorkspaceConfig};
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};
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
    /// Accepts the credential of any of its workspaces in a HELLO naming another one:
    /// nothing ties a credential to its workspace (LINK-10).
    CredentialOfAnyWorkspace,
    /// Compares only the first 16 bytes of a credential (LINK-10).
    ComparesFirst16Bytes,
    /// Compares a credential only over the length presented: a prefix (of 16 bytes or
    /// more) of the right credential passes (LINK-10).
    AcceptsCredentialPrefix,
    /// Compares a credential only over the right credential's length: the right one with
    /// bytes appended passes (LINK-10).
    AcceptsCredentialSuffix,
    /// Checks the OPEN's id against the sessions of the host with the OPEN's key before
    /// routing, whatever that host's workspace: a foreign host's session id answers
    /// SESSION_ID_IN_USE (LINK-39, LINK-17).
    ForeignHostIdChecked,
    /// Checks the session limit of the host with the OPEN's key before routing, whatever
    /// that host's workspace: a foreign host at 64 sessions answers SESSION_LIMIT (LINK-39,
    /// LINK-17).
    ForeignHostLimitChecked,
    /// Routes first: an OPEN to a key with no host in the workspace gets HOST_UNREACHABLE
    /// before the controller link's own checks (LINK-39).
    RoutesBeforeLinkChecks,
    /// Refuses only the all-zero registration ephemeral; carries on with any other
    /// low-order point, checking no DH output (SEC-8).
    RejectsOnlyZeroKey,
    /// Refuses registration ephemerals found, byte for byte, in the list of the seven
    /// canonical low-order encodings; the same points with bit 255 set pass (SEC-8).
    LowOrderBlocklist,
    /// Checks the registration's `ee` (message 1) but not its `se` (message 3): a proof
    /// carrying a low-order static key passes (SEC-8). It runs every host registration
    /// itself, so the links it lets through are READY on its side only (their frames are
    /// ignored): every host case fails with it, the named one on the low-order key.
    ChecksOnlyEphemeralDh,
    /// Its WebSocket library stops at 1 MiB: a longer message is swallowed, unanswered, and
    /// the link stays open (LINK-5).
    SwallowsHugeMessages,
    /// Its WebSocket library stops at 16 MiB: a longer message ends the connection without
    /// GOAWAY (LINK-5).
    DropsLinkOnHugeMessage,
    /// Answers a PING before HELLO with PONG (LINK-8).
    PingBeforeHello,
    /// Checks the credential before the version: a HELLO with both wrong gets AUTH_FAILED
    /// (LINK-3).
    CredentialBeforeVersion,
    /// Ignores a malformed frame of up to 512 bytes instead of ending the link (LINK-4).
    IgnoresMalformed,
    /// Before READY, decodes a frame longer than 512 bytes instead of refusing it on its
    /// length: a malformed one gets PROTOCOL_ERROR (LINK-6).
    DecodesLongFrameBeforeReady,
    /// Never closes the WebSocket after its own GOAWAY (LINK-27).
    NoCloseAfterGoaway,
    /// No session limit per host link; the controller limit holds (LINK-20).
    NoHostSessionLimit,
    /// Never sends CLOSE PEER_GONE (LINK-21).
    NoPeerGone,
    /// Never answers DATA for a session the link does not own (LINK-19).
    SilentUnknownSession,
    /// No per-session bound on undelivered DATA; the per-link bound holds (LINK-22).
    NoSessionQueueBound,
    /// No per-link bound on undelivered bytes; the per-session bound holds (LINK-23).
    NoLinkQueueBound,
    /// Never closes an idle link (LINK-24).
    NoIdleTimeout,
    /// Never sends a keepalive PING (LINK-25).
    NoKeepalivePing,
}

/// Whether X25519 with `point` gives the all-zero output (a low-order point).
fn low_order(point: &[u8]) -> bool {
    use snow::resolvers::CryptoResolver;
    let mut dh = snow::resolvers::DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .unwrap();
    dh.set(&[0x42; 32]);
    let mut out = [0xffu8; 32];
    point.len() == 32 && dh.dh(point, &mut out).is_ok() && out == [0u8; 32]
}

/// Whether `fault` refuses the low-order registration ephemeral `point` (a relay that
/// checks no DH output, only its own idea of a bad key).
fn fault_refuses_key(fault: Fault, point: &[u8]) -> bool {
    match fault {
        Fault::RejectsOnlyZeroKey => point.iter().all(|b| *b == 0),
        // The seven canonical encodings, compared byte for byte.
        Fault::LowOrderBlocklist => LOW_ORDER_POINTS_CANONICAL
            .iter()
            .any(|h| hex::decode(h).unwrap() == point),
        _ => true,
    }
}

/// The credential a faulty relay takes a HELLO's `credential` for in `workspace`, when its
/// fault makes it accept a wrong one (LINK-10); `None` when it judges it as the core does.
fn credential_accepted_as(
    fault: Fault,
    workspace: &str,
    credential: &[u8],
) -> Option<&'static str> {
    let right = match workspace {
        WORKSPACE => CREDENTIAL,
        OTHER_WORKSPACE => OTHER_CREDENTIAL,
        OFF_WORKSPACE => OFF_CREDENTIAL,
        _ => return None,
    };
    let r = right.as_bytes();
    if credential == r {
        return None;
    }
    let accepted = match fault {
        Fault::CredentialOfAnyWorkspace => [CREDENTIAL, OTHER_CREDENTIAL, OFF_CREDENTIAL]
            .iter()
            .any(|c| c.as_bytes() == credential),
        Fault::ComparesFirst16Bytes => credential.get(..16) == r.get(..16),
        Fault::AcceptsCredentialPrefix => credential.len() >= 16 && r.starts_with(credential),
        Fault::AcceptsCredentialSuffix => credential.starts_with(r),
        _ => false,
    };
    accepted.then_some(right)
}

/// A registration a [`Fault::RejectsOnlyZeroKey`] or [`Fault::LowOrderBlocklist`] relay
/// runs itself, with snow's X25519 and no check of any DH output (SEC-8).
fn unchecked_registration(workspace: &str, msg1: &[u8]) -> Option<(snow::HandshakeState, Vec<u8>)> {
    let params = tether_proto::link::registration::REGISTRATION_PROTOCOL
        .parse()
        .ok()?;
    let prologue = tether_proto::link::registration::registration_prologue(workspace).ok()?;
    let mut state = snow::Builder::new(params)
        .prologue(&prologue)
        .ok()?
        .build_responder()
        .ok()?;
    let mut buf = [0u8; 128];
    state.read_message(msg1, &mut buf).ok()?;
    let n = state.write_message(&[], &mut buf).ok()?;
    Some((state, buf.get(..n)?.to_vec()))
}

pub const WORKSPACE: &str = "conf-main";
pub const CREDENTIAL: &str = "conformance-main-credential-0001";
pub const OTHER_WORKSPACE: &str = "conf-other";
pub const OTHER_CREDENTIAL: &str = "conformance-other-credential-002";
pub const OFF_WORKSPACE: &str = "conf-off";
pub const OFF_CREDENTIAL: &str = "conformance-off-credential-00003";

enum Ev {
    /// A message past the WebSocket's size limit, not read (LINK-5).
    Oversize(u64),
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
        Fault::NoHostSessionLimit => limits.max_sessions_per_host = 10_000,
        Fault::NoSessionQueueBound => limits.session_queue_bytes = usize::MAX / 4,
        Fault::NoLinkQueueBound => limits.link_queue_bytes = usize::MAX / 4,
        Fault::NoIdleTimeout => limits.idle_timeout = Duration::from_secs(3600),
        Fault::NoKeepalivePing => limits.keepalive_interval = Duration::from_secs(3600),
        _ => {}
    }
    let max_message = match fault {
        Fault::SwallowsHugeMessages => 1 << 20,
        Fault::DropsLinkOnHugeMessage => 16 << 20,
        _ => tether_proto::limits::MAX_FRAME_LEN,
    };
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
            tokio::spawn(serve(tcp, id, ev, fault, max_message));
        }
    });
    let task = tokio::spawn(async move {
        drive(Relay::new(config), ev_rx, fault).await;
        accept.abort();
    });
    TestRelay { url, task, admin }
}

async fn serve(
    tcp: tokio::net::TcpStream,
    id: u64,
    ev: mpsc::UnboundedSender<Ev>,
    fault: Fault,
    max_message: usize,
) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(1);
    if ev.send(Ev::Opened(id, out_tx)).is_err() {
        return;
    }
    let wev = ev.clone();
    let mut writer = tokio::spawn(async move {
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
            // LINK-5: the library refused a message before buffering it. The reference
            // answers GOAWAY FRAME_TOO_LARGE and waits for its writer to close; the faults
            // swallow it or drop the connection.
            Err(tokio_tungstenite::tungstenite::Error::Capacity(_)) => match fault {
                Fault::SwallowsHugeMessages => std::future::pending::<()>().await,
                Fault::DropsLinkOnHugeMessage => break,
                _ => {
                    let _ = ev.send(Ev::Oversize(id));
                    let _ = (&mut writer).await;
                    break;
                }
            },
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = ev.send(Ev::Closed(id));
    // The writer ends when the driver drops its sender.
    drop(writer);
}

/// Sends `frames` (then a close, with `close`) on link `id` past the core: a faulty relay's
/// own answer.
fn send_direct(links: &HashMap<u64, LinkIo>, id: u64, frames: Vec<RelayFrame>, close: bool) {
    if let Some(io) = links.get(&id) {
        let tx = io.tx.clone();
        tokio::spawn(async move {
            for f in frames {
                let _ = tx.send(Out::Frame(f.to_bytes().unwrap())).await;
            }
            if close {
                let _ = tx.send(Out::Close).await;
            }
        });
    }
}

fn goaway(code: CloseCode) -> RelayFrame {
    RelayFrame::GoAway {
        code,
        reason: String::new(),
    }
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
    let mut controllers: std::collections::HashSet<u64> = std::collections::HashSet::new();
    // Session ids delivered (INCOMING) to each host link.
    let mut host_sessions: HashMap<u64, std::collections::HashSet<SessionId>> = HashMap::new();
    // Registrations a SEC-8 fault runs itself, and the links they left READY behind the
    // core's back (their frames are ignored).
    let mut shadow: HashMap<u64, snow::HandshakeState> = HashMap::new();
    let mut dead: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut ready: std::collections::HashSet<u64> = std::collections::HashSet::new();
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
                RelayEvent::LinkReady { link, .. } => {
                    if let Some(id) = by_link.get(&link) {
                        ready.insert(*id);
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
                        if fault == Fault::NoCloseAfterGoaway {
                            break;
                        }
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
                match RelayFrame::decode(&bytes) {
                    Ok(RelayFrame::Incoming { session, .. }) => {
                        host_sessions.entry(id).or_default().insert(session);
                    }
                    Ok(RelayFrame::Close { session, .. }) => {
                        if let Some(set) = host_sessions.get_mut(&id) {
                            set.remove(&session);
                        }
                    }
                    _ => {}
                }
                if let Ok(RelayFrame::Close { code, .. }) = RelayFrame::decode(&bytes) {
                    if (fault == Fault::NoPeerGone && code == CloseCode::PEER_GONE)
                        || (fault == Fault::SilentUnknownSession
                            && code == CloseCode::UNKNOWN_SESSION)
                    {
                        drop(permit);
                        continue;
                    }
                }
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
                    Ev::Oversize(id) => {
                        // As the reference relay: the core refuses a too-long frame on its
                        // length alone (LINK-5).
                        if let Some(io) = links.get(&id) {
                            let too_long = vec![0u8; tether_proto::limits::MAX_FRAME_LEN + 1];
                            relay.handle_frame(io.link, &too_long, now, &mut || [0u8; 32]);
                        }
                    }
                    Ev::Frame(id, mut bytes) => {
                        let Some(io) = links.get(&id) else { continue };
                        let link = io.link;
                        if dead.contains(&id) {
                            continue;
                        }
                        if fault == Fault::DecodesLongFrameBeforeReady
                            && !ready.contains(&id)
                            && bytes.len() > 512
                            && RelayFrame::decode(&bytes).is_err()
                        {
                            dead.insert(id);
                            send_direct(&links, id, vec![goaway(CloseCode::PROTOCOL_ERROR)], true);
                            continue;
                        }
                        if fault == Fault::IgnoresMalformed
                            && bytes.len() <= 512
                            && RelayFrame::decode(&bytes).is_err()
                        {
                            continue;
                        }
                        if let Some(mut state) = shadow.remove(&id) {
                            // SEC-8 faults: the proof of a registration they carried on.
                            let reply = match RelayFrame::decode(&bytes) {
                                Ok(RelayFrame::HostProof { message }) => {
                                    let mut b = [0u8; 128];
                                    if state.read_message(&message, &mut b).is_ok() {
                                        dead.insert(id);
                                        vec![RelayFrame::Ready]
                                    } else {
                                        vec![goaway(CloseCode::REGISTRATION_FAILED)]
                                    }
                                }
                                _ => vec![goaway(CloseCode::UNEXPECTED_FRAME)],
                            };
                            let close = !dead.contains(&id);
                            dead.insert(id);
                            send_direct(&links, id, reply, close);
                            continue;
                        }
                        if let Ok(frame) = RelayFrame::decode(&bytes) {
                            match &frame {
                                RelayFrame::Hello { version, role, workspace, credential, registration } => {
                                    hello_ws.insert(id, workspace.clone());
                                    if *role == Role::Controller {
                                        controllers.insert(id);
                                    }
                                    let right = match workspace.as_str() {
                                        WORKSPACE => Some(CREDENTIAL),
                                        OTHER_WORKSPACE => Some(OTHER_CREDENTIAL),
                                        OFF_WORKSPACE => Some(OFF_CREDENTIAL),
                                        _ => None,
                                    };
                                    if fault == Fault::CredentialBeforeVersion
                                        && *version != 1
                                        && right.is_none_or(|r| r.as_bytes() != credential.as_slice())
                                    {
                                        dead.insert(id);
                                        send_direct(&links, id, vec![goaway(CloseCode::AUTH_FAILED)], true);
                                        continue;
                                    }
                                    if fault == Fault::AnyVersion {
                                        if let Some(v) = bytes.get_mut(1) {
                                            *v = 1;
                                        }
                                    }
                                    if let Some(right) = credential_accepted_as(fault, workspace, credential) {
                                        bytes = RelayFrame::Hello {
                                            version: *version,
                                            role: *role,
                                            workspace: workspace.clone(),
                                            credential: right.as_bytes().to_vec(),
                                            registration: registration.clone(),
                                        }
                                        .to_bytes()
                                        .unwrap();
                                    }
                                    let shadowed = match fault {
                                        Fault::RejectsOnlyZeroKey | Fault::LowOrderBlocklist => {
                                            low_order(registration)
                                                && !fault_refuses_key(fault, registration)
                                        }
                                        // `ee` is checked (by the core); `se` never is.
                                        Fault::ChecksOnlyEphemeralDh => !low_order(registration),
                                        _ => false,
                                    };
                                    // The credential and remote-access checks come first
                                    // (the core's, for a HELLO it refuses).
                                    let admitted = right.is_some_and(|r| r.as_bytes() == credential.as_slice())
                                        && workspace != OFF_WORKSPACE;
                                    if *role == Role::Host && admitted && shadowed {
                                        match unchecked_registration(workspace, registration) {
                                            Some((state, msg2)) => {
                                                shadow.insert(id, state);
                                                send_direct(&links, id, vec![RelayFrame::HostChallenge { message: msg2 }], false);
                                            }
                                            None => {
                                                dead.insert(id);
                                                send_direct(&links, id, vec![goaway(CloseCode::REGISTRATION_FAILED)], true);
                                            }
                                        }
                                        continue;
                                    }
                                }
                                RelayFrame::Open { session, host_key, handshake } => {
                                    opens.insert(*session, (id, handshake.clone(), *host_key));
                                    // LINK-39 faults: host checks before routing, or routing
                                    // before the controller link's checks.
                                    let own = hello_ws.get(&id).cloned().unwrap_or_default();
                                    let foreign = hosts
                                        .get(host_key)
                                        .filter(|(_, w)| *w != own)
                                        .and_then(|(h, _)| host_sessions.get(h));
                                    let answer = match fault {
                                        _ if !controllers.contains(&id) => None,
                                        Fault::ForeignHostIdChecked => foreign
                                            .filter(|set| set.contains(session))
                                            .map(|_| CloseCode::SESSION_ID_IN_USE),
                                        Fault::ForeignHostLimitChecked => foreign
                                            .filter(|set| set.len() >= 64)
                                            .map(|_| CloseCode::SESSION_LIMIT),
                                        Fault::RoutesBeforeLinkChecks => {
                                            let routed = hosts.get(host_key).is_some_and(|(_, w)| *w == own);
                                            (!routed).then_some(CloseCode::HOST_UNREACHABLE)
                                        }
                                        _ => None,
                                    };
                                    if let Some(code) = answer {
                                        let close = RelayFrame::Close { session: *session, code };
                                        send_direct(&links, id, vec![close], false);
                                        continue;
                                    }
                                }
                                RelayFrame::Close { .. } if fault == Fault::DropsClose => continue,
                                RelayFrame::Ping { value }
                                    if fault == Fault::PingBeforeHello && !hello_ws.contains_key(&id) =>
                                {
                                    send_direct(&links, id, vec![RelayFrame::Pong { value: *value }], false);
                                    continue;
                                }
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
