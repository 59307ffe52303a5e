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
    clippy::collapsible_if,
    clippy::result_large_err
)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether_conformance::cases::security::relay::LOW_ORDER_POINTS_CANONICAL;
use tether_conformance::host::BoxFuture;
use tether_conformance::{Credential, RelayAdmin, RelayTarget, Target, TlsOptions};
use tether_proto::link::router::{Relay, RelayConfig, RelayEvent, RelayLimits, WorkspaceConfig};
use tether_proto::link::{CloseCode, FrameError, RelayFrame, Role, SessionId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
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
    // ----- Items of the 2026-12-07 clarifications, one per new case ------------------
    /// Judges a text message before READY by the 512-byte frame bound: a long one gets
    /// FRAME_TOO_LARGE instead of PROTOCOL_ERROR (LINK-40, LINK-1).
    TextCountsAsFrame,
    /// Looks at a frame's type and the link's state before decoding the body: a
    /// malformed frame the state does not allow gets UNEXPECTED_FRAME (LINK-40).
    StateBeforeDecode,
    /// Decodes a HELLO whole before looking at its version: a later version's layout is
    /// PROTOCOL_ERROR (LINK-41).
    DecodesBeforeVersion,
    /// Applies the 512-byte bound to every frame that arrives before READY is written,
    /// even one processed after the HELLO was accepted (LINK-6).
    CapsPipelinedFrames,
    /// Drops the DATA queued for a link when it sends GOAWAY on it (LINK-42).
    DropsQueueOnGoaway,
    /// Drops the DATA of a link's sessions queued for their other ends when the link ends,
    /// sending CLOSE PEER_GONE without it (LINK-42).
    DropsDataOnPeerGone,
    /// Under LINK-22 ends only the direction that overflowed: the reader gets no CLOSE
    /// and its DATA still reaches the other end.
    SlowReaderOneDirection,
    /// Starts the authentication deadline when it accepts the TCP connection, not when
    /// the WebSocket upgrade completes (LINK-44, LINK-7).
    DeadlineFromAccept,
    /// Sends its keepalive PING 24 s after the last frame, past the 2 s tolerance
    /// (LINK-25, LINK-44).
    LatePing,
    /// Refuses an upgrade request that offers no subprotocol (LINK-45).
    RequiresSubprotocol,
    /// Selects the first subprotocol the client offers (LINK-45).
    SelectsOfferedSubprotocol,
    /// Accepts permessage-deflate when offered (it says so in its answer; LINK-45).
    NegotiatesDeflate,
    // ----- Chapter 3 MUSTs that had no faulty relay ---------------------------------------
    /// Accepts a controller HELLO that carries registration bytes, ignoring them (LINK-9).
    AcceptsControllerRegistration,
    /// Lets links of a workspace with remote access off reach READY (LINK-11).
    IgnoresRemoteAccess,
    /// Answers a HOST_PROOF that does not verify with READY (LINK-12).
    AcceptsBadProof,
    /// Replaces an older host link without telling it: no GOAWAY REPLACED, the WebSocket
    /// stays open (LINK-14).
    SilentReplace,
    /// Does not bound the OPEN handshake: an empty one is padded, a long one cut, and the
    /// OPEN is routed (LINK-15).
    NoHandshakeBound,
    /// Delivers an OPEN whose id is in use instead of refusing it: the host gets a second
    /// INCOMING (LINK-16).
    DuplicateIncoming,
    /// Sends every 50th DATA frame twice (LINK-26).
    DuplicatesData,
    /// Sends READY with a trailing zero byte (LINK-30).
    MalformedReady,
    /// Takes any unassigned HELLO role byte for a controller (LINK-31).
    AcceptsAnyRole,
    /// Lower-cases the HELLO workspace id before checking it (LINK-32).
    CaseFoldsWorkspace,
    /// Ignores a DATA frame without payload (LINK-33).
    IgnoresEmptyData,
    /// Takes a client GOAWAY whose reason is not UTF-8 as a normal GOAWAY (LINK-34).
    AcceptsBadUtf8Reason,
    /// Drops the frames a controller sends after its HELLO before READY is written
    /// (LINK-38).
    DropsPipelinedFrames,
    // ----- Second faulty relays for chapter 3 MUSTs that had one ----------------------------
    /// Closes the WebSocket on a text message without GOAWAY (LINK-1).
    TextClosesSilently,
    /// Answers a malformed frame with GOAWAY UNEXPECTED_FRAME instead of PROTOCOL_ERROR
    /// (LINK-4).
    MalformedIsUnexpected,
    /// Its authentication deadline is 5 s (LINK-7).
    ShortAuthDeadline,
    /// Ignores a second HELLO on a READY link (LINK-8).
    IgnoresSecondHello,
    /// Never answers an OPEN to a key no host registered (LINK-17).
    SilentOnUnreachable,
    /// Cuts the handshake of INCOMING to 256 bytes (LINK-18).
    TruncatesIncoming,
    /// Ends the link (GOAWAY PROTOCOL_ERROR) on DATA for a session it does not own,
    /// instead of CLOSE UNKNOWN_SESSION (LINK-19).
    UnknownSessionEndsLink,
    /// Its idle timeout is 30 s (LINK-24).
    ShortIdleTimeout,
    /// Reads the HELLO version only when a role byte follows it: `01 02` alone is
    /// PROTOCOL_ERROR (LINK-41).
    VersionNeedsThreeBytes,
    /// Holds back every 10th DATA frame of a link and sends it after the next one
    /// (LINK-26).
    ReordersData,
    /// Sends PONG with a trailing zero byte (LINK-30).
    MalformedPong,
    /// Ignores a client GOAWAY whose reason is not UTF-8 (LINK-34).
    IgnoresBadUtf8Goaway,
    /// Checks remote access before the credential: a wrong credential for a workspace
    /// with remote access off gets REMOTE_ACCESS_DISABLED (LINK-11).
    RemoteAccessBeforeCredential,
    /// Answers a HOST_PROOF of the wrong length with REGISTRATION_FAILED instead of
    /// PROTOCOL_ERROR (LINK-12).
    ProofLengthIsRegistrationFailed,
    /// Refuses an OPEN whose id is in use, but also sends CLOSE SESSION_ID_IN_USE for that
    /// id to the host that has the session (LINK-16).
    IdInUseTellsHost,
    /// Answers a controller's OPEN that arrives before READY is written with GOAWAY
    /// UNEXPECTED_FRAME (LINK-38).
    UnexpectedPipelinedOpen,
    /// Takes a host HELLO that ends after its credential (no registration message 1) for
    /// a controller HELLO: the role follows from the bytes present, and the link reaches
    /// READY (LINK-9).
    HostWithoutRegistrationIsController,
    /// Derives its registration ephemeral from the host's HELLO (a generator seeded with
    /// registration message 1) instead of drawing it fresh: the same message 1 gets the
    /// same HOST_CHALLENGE, and a recorded proof replays (LINK-13).
    EphemeralFromHello,
    /// Its handshake bound is off by one: a 513-byte OPEN handshake is taken (the host gets
    /// it cut to 512 bytes) and the OPEN is routed (LINK-15).
    HandshakeBoundOffByOne,
    /// Answers a HELLO whose role byte is unassigned with GOAWAY AUTH_FAILED, as if the
    /// role were a credential check, instead of PROTOCOL_ERROR (LINK-31).
    BadRoleIsAuthFailed,
    /// Does not check the HELLO workspace id's form, only looks it up: an id that breaks
    /// the rule is an unknown workspace, GOAWAY AUTH_FAILED instead of PROTOCOL_ERROR
    /// (LINK-32).
    LooksUpMalformedWorkspace,
    /// Answers a DATA frame without payload with CLOSE PROTOCOL_ERROR for its session,
    /// ending the session but not the link (LINK-33).
    EmptyDataClosesSession,
    /// Replaces an older host link (GOAWAY REPLACED, closed) but does not end its sessions
    /// at their controllers: no CLOSE PEER_GONE for them (LINK-14).
    ReplaceKeepsSessions,
    /// On a credential or remote-access change ends the workspace's READY links but not
    /// those still authenticating (AWAIT_PROOF): they get no GOAWAY and stay open (LINK-37).
    RevokesOnlyReadyLinks,
    /// Acts on its authentication deadline 4 s after the period has passed (a timer sweep
    /// that comes late): GOAWAY AUTH_TIMEOUT 14 s after the upgrade, past the 2 s allowed
    /// (LINK-44, LINK-7).
    LateAuthDeadline,
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
    /// A link, with the instant its TCP connection was accepted.
    Opened(u64, mpsc::Sender<Out>, Instant),
    /// A binary message, and whether it was read before the link's READY was written.
    Frame(u64, Vec<u8>, bool),
    /// A text message of this many bytes.
    Text(u64, usize),
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
        Fault::LatePing => limits.keepalive_interval = Duration::from_secs(24),
        Fault::ShortAuthDeadline => limits.auth_deadline = Duration::from_secs(5),
        Fault::LateAuthDeadline => limits.auth_deadline = Duration::from_secs(14),
        Fault::ShortIdleTimeout => limits.idle_timeout = Duration::from_secs(30),
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
            WorkspaceConfig::new(
                OFF_CREDENTIAL.as_bytes(),
                fault == Fault::IgnoresRemoteAccess,
            ),
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
    let accepted = Instant::now();
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(
        tcp,
        move |req: &Request, resp: Response| upgrade_answer(fault, req, resp),
        Some(config),
    )
    .await
    else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(1);
    if ev.send(Ev::Opened(id, out_tx, accepted)).is_err() {
        return;
    }
    // Set once READY has been written: frames read before are "early" (LINK-6, LINK-38).
    let ready_written = Arc::new(AtomicBool::new(false));
    let written = ready_written.clone();
    let wev = ev.clone();
    let mut writer = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Frame(b) => {
                    let is_ready = b.first() == Some(&RelayFrame::READY);
                    match tokio::time::timeout(
                        Duration::from_secs(30),
                        sink.send(Message::binary(b)),
                    )
                    .await
                    {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                    if is_ready {
                        written.store(true, Ordering::SeqCst);
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
                let early = !ready_written.load(Ordering::SeqCst);
                let _ = ev.send(Ev::Frame(id, b.to_vec(), early));
            }
            Ok(Message::Text(t)) => {
                let _ = ev.send(Ev::Text(id, t.len()));
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

/// The relay's answer to a WebSocket upgrade request: the reference's (no subprotocol, no
/// extension, LINK-45), or a fault's.
fn upgrade_answer(
    fault: Fault,
    req: &Request,
    mut resp: Response,
) -> Result<Response, ErrorResponse> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match fault {
        Fault::RequiresSubprotocol if header("sec-websocket-protocol").is_none() => {
            let mut refusal = ErrorResponse::new(Some("a subprotocol is required".to_owned()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        }
        Fault::SelectsOfferedSubprotocol => {
            if let Some(first) = header("sec-websocket-protocol")
                .and_then(|p| p.split(',').next().map(|s| s.trim().to_owned()))
                && let Ok(v) = HeaderValue::from_str(&first)
            {
                resp.headers_mut().insert("sec-websocket-protocol", v);
            }
        }
        Fault::NegotiatesDeflate
            if header("sec-websocket-extensions")
                .is_some_and(|x| x.contains("permessage-deflate")) =>
        {
            resp.headers_mut().insert(
                "sec-websocket-extensions",
                HeaderValue::from_static("permessage-deflate"),
            );
        }
        _ => {}
    }
    Ok(resp)
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

/// [`Fault::DropsDataOnPeerGone`]: takes the queues of the other ends of link `id`'s
/// sessions out of the core and drops their `DATA` of those sessions, so that the
/// `CLOSE PEER_GONE` the core queued behind it goes out alone (LINK-42).
fn drop_data_of_peers(
    relay: &mut Relay,
    held: &mut HashMap<u64, VecDeque<Vec<u8>>>,
    links: &HashMap<u64, LinkIo>,
    host_sessions: &HashMap<u64, std::collections::HashSet<SessionId>>,
    opens: &HashMap<SessionId, (u64, Vec<u8>, [u8; 32])>,
    hosts: &HashMap<[u8; 32], (u64, String)>,
    id: u64,
) {
    let mut peers: Vec<(u64, SessionId)> = Vec::new();
    if let Some(set) = host_sessions.get(&id) {
        for s in set {
            if let Some((ctl, _, _)) = opens.get(s) {
                peers.push((*ctl, *s));
            }
        }
    }
    for (s, (ctl, _, key)) in opens {
        if *ctl == id
            && let Some((h, _)) = hosts.get(key)
        {
            peers.push((*h, *s));
        }
    }
    for (other, session) in peers {
        let Some(io) = links.get(&other) else {
            continue;
        };
        let q = held.entry(other).or_default();
        while let Some(b) = relay.poll_transmit(io.link) {
            q.push_back(b);
        }
        q.retain(|b| {
            !matches!(RelayFrame::decode(b), Ok(RelayFrame::Data { session: s, .. }) if s == session)
        });
    }
}

/// What an input-side fault does with a binary message instead of handing it to the core.
enum Answer {
    /// Nothing: the message is dropped.
    Ignore,
    /// `GOAWAY code`, and the link ends.
    GoAway(CloseCode),
    /// This frame, and the link stays up.
    Reply(RelayFrame),
}

/// The input-side faults: answers a binary message the way the fault would, or rewrites
/// `bytes` (returning `None`) so that the core takes it as the fault would. `early`: read
/// before the link's READY was written; `hello_seen`, `ready`, `controller`: the link's
/// state as the driver knows it.
fn faulty_answer(
    fault: Fault,
    bytes: &mut Vec<u8>,
    early: bool,
    hello_seen: bool,
    ready: bool,
    controller: bool,
) -> Option<Answer> {
    let decoded = RelayFrame::decode(bytes);
    let ty = bytes.first().copied();
    match fault {
        Fault::StateBeforeDecode if decoded.is_err() => {
            let ty = ty?;
            tether_proto::link::frame::type_name(ty)?;
            let allowed: &[u8] = if !hello_seen {
                &[RelayFrame::HELLO, RelayFrame::GOAWAY]
            } else if !ready {
                &[RelayFrame::HOST_PROOF, RelayFrame::GOAWAY]
            } else if controller {
                &[
                    RelayFrame::OPEN,
                    RelayFrame::DATA,
                    RelayFrame::CLOSE,
                    RelayFrame::PING,
                    RelayFrame::PONG,
                    RelayFrame::GOAWAY,
                ]
            } else {
                &[
                    RelayFrame::DATA,
                    RelayFrame::CLOSE,
                    RelayFrame::PING,
                    RelayFrame::PONG,
                    RelayFrame::GOAWAY,
                ]
            };
            (!allowed.contains(&ty)).then_some(Answer::GoAway(CloseCode::UNEXPECTED_FRAME))
        }
        Fault::DecodesBeforeVersion
            if decoded.is_err()
                && bytes.len() <= 512
                && RelayFrame::peek_hello_version(bytes).is_some_and(|v| v != 1) =>
        {
            Some(Answer::GoAway(CloseCode::PROTOCOL_ERROR))
        }
        Fault::CapsPipelinedFrames if early && bytes.len() > 512 => {
            Some(Answer::GoAway(CloseCode::FRAME_TOO_LARGE))
        }
        Fault::DropsPipelinedFrames if early && hello_seen && controller => Some(Answer::Ignore),
        Fault::AcceptsControllerRegistration => {
            if ty == Some(RelayFrame::HELLO)
                && bytes.get(2) == Some(&0x02)
                && matches!(decoded, Err(FrameError::BadRegistrationLength { .. }))
            {
                let w = usize::from(*bytes.get(3)?);
                let c = usize::from(*bytes.get(4 + w)?);
                bytes.truncate(5 + w + c);
            }
            None
        }
        Fault::NoHandshakeBound => {
            if ty == Some(RelayFrame::OPEN)
                && matches!(decoded, Err(FrameError::BadHandshakeLength { .. }))
            {
                if bytes.len() == 41 {
                    bytes.push(0x01);
                } else {
                    bytes.truncate(41 + 512);
                }
            }
            None
        }
        Fault::AcceptsAnyRole => {
            if ty == Some(RelayFrame::HELLO) && matches!(decoded, Err(FrameError::BadRole { .. })) {
                bytes[2] = 0x02;
            }
            None
        }
        Fault::CaseFoldsWorkspace => {
            if ty == Some(RelayFrame::HELLO) && bytes.len() > 4 {
                let w = usize::from(bytes[3]);
                if let Some(ws) = bytes.get_mut(4..4 + w) {
                    ws.make_ascii_lowercase();
                }
            }
            None
        }
        Fault::IgnoresEmptyData if ty == Some(RelayFrame::DATA) && bytes.len() == 9 => {
            Some(Answer::Ignore)
        }
        Fault::EmptyDataClosesSession
            if ty == Some(RelayFrame::DATA) && matches!(decoded, Err(FrameError::EmptyPayload)) =>
        {
            let session = SessionId(bytes.get(1..9)?.try_into().ok()?);
            Some(Answer::Reply(RelayFrame::Close {
                session,
                code: CloseCode::PROTOCOL_ERROR,
            }))
        }
        Fault::HostWithoutRegistrationIsController => {
            if ty == Some(RelayFrame::HELLO)
                && bytes.get(2) == Some(&0x01)
                && matches!(decoded, Err(FrameError::BadRegistrationLength { .. }))
            {
                let w = usize::from(*bytes.get(3)?);
                let c = usize::from(*bytes.get(4 + w)?);
                if bytes.len() == 5 + w + c {
                    bytes[2] = 0x02;
                }
            }
            None
        }
        Fault::HandshakeBoundOffByOne => {
            if ty == Some(RelayFrame::OPEN)
                && matches!(decoded, Err(FrameError::BadHandshakeLength { .. }))
                && bytes.len() == 41 + 513
            {
                bytes.truncate(41 + 512);
            }
            None
        }
        Fault::BadRoleIsAuthFailed
            if ty == Some(RelayFrame::HELLO)
                && matches!(decoded, Err(FrameError::BadRole { .. })) =>
        {
            Some(Answer::GoAway(CloseCode::AUTH_FAILED))
        }
        Fault::LooksUpMalformedWorkspace
            if ty == Some(RelayFrame::HELLO)
                && matches!(decoded, Err(FrameError::BadWorkspace)) =>
        {
            Some(Answer::GoAway(CloseCode::AUTH_FAILED))
        }
        Fault::MalformedIsUnexpected
            if bytes.len() <= 512
                && decoded.is_err()
                && RelayFrame::peek_hello_version(bytes).is_none_or(|v| v == 1) =>
        {
            Some(Answer::GoAway(CloseCode::UNEXPECTED_FRAME))
        }
        Fault::IgnoresSecondHello if ready && matches!(decoded, Ok(RelayFrame::Hello { .. })) => {
            Some(Answer::Ignore)
        }
        Fault::VersionNeedsThreeBytes
            if bytes.len() == 2
                && RelayFrame::peek_hello_version(bytes).is_some_and(|v| v != 1) =>
        {
            Some(Answer::GoAway(CloseCode::PROTOCOL_ERROR))
        }
        Fault::IgnoresBadUtf8Goaway
            if ty == Some(RelayFrame::GOAWAY) && matches!(decoded, Err(FrameError::BadUtf8)) =>
        {
            Some(Answer::Ignore)
        }
        Fault::ProofLengthIsRegistrationFailed
            if ty == Some(RelayFrame::HOST_PROOF)
                && matches!(decoded, Err(FrameError::BadRegistrationLength { .. })) =>
        {
            Some(Answer::GoAway(CloseCode::REGISTRATION_FAILED))
        }
        Fault::UnexpectedPipelinedOpen
            if early && hello_seen && controller && ty == Some(RelayFrame::OPEN) =>
        {
            Some(Answer::GoAway(CloseCode::UNEXPECTED_FRAME))
        }
        Fault::RemoteAccessBeforeCredential => match decoded {
            Ok(RelayFrame::Hello {
                workspace,
                credential,
                ..
            }) if workspace == OFF_WORKSPACE && credential != OFF_CREDENTIAL.as_bytes() => {
                Some(Answer::GoAway(CloseCode::REMOTE_ACCESS_DISABLED))
            }
            _ => None,
        },
        Fault::AcceptsBadUtf8Reason => {
            if ty == Some(RelayFrame::GOAWAY) && matches!(decoded, Err(FrameError::BadUtf8)) {
                bytes.truncate(3);
                bytes.push(0);
            }
            None
        }
        _ => None,
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
    // Sessions of host links replaced, and links sent HOST_CHALLENGE.
    let mut replaced_sessions: std::collections::HashSet<SessionId> =
        std::collections::HashSet::new();
    let mut challenged: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut ready: std::collections::HashSet<u64> = std::collections::HashSet::new();
    // Frames a LINK-42 fault took out of the core's queue of a link, sent before the core's.
    let mut held: HashMap<u64, VecDeque<Vec<u8>>> = HashMap::new();
    // SlowReaderOneDirection: (reader link, session) -> the controller link its DATA still
    // reaches.
    let mut half_open: HashMap<(u64, SessionId), u64> = HashMap::new();
    let mut data_count = 0u64;
    // ReordersData: the DATA frame held back on each link.
    let mut stashed: HashMap<u64, Vec<u8>> = HashMap::new();
    let fixed = [7u8; 32];
    loop {
        // Events.
        while let Some(ev) = relay.poll_event() {
            match ev {
                RelayEvent::CloseLink { link, code } => {
                    if let Some(&id) = by_link.get(&link) {
                        if let Some(io) = links.get_mut(&id) {
                            io.closing = true;
                        }
                        // LINK-42: the DATA still queued for the link goes with its GOAWAY.
                        if fault == Fault::DropsQueueOnGoaway && code != CloseCode::SLOW_READER {
                            let q = held.entry(id).or_default();
                            while let Some(b) = relay.poll_transmit(link) {
                                q.push_back(b);
                            }
                            q.retain(|b| b.first() != Some(&RelayFrame::DATA));
                        }
                        if fault == Fault::DropsDataOnPeerGone {
                            drop_data_of_peers(
                                &mut relay,
                                &mut held,
                                &links,
                                &host_sessions,
                                &opens,
                                &hosts,
                                id,
                            );
                        }
                    }
                }
                RelayEvent::PeerGoingAway { link, .. } => {
                    if let Some(&id) = by_link.get(&link) {
                        if let Some(io) = links.get_mut(&id) {
                            io.closing = true;
                        }
                        if fault == Fault::DropsDataOnPeerGone {
                            drop_data_of_peers(
                                &mut relay,
                                &mut held,
                                &links,
                                &host_sessions,
                                &opens,
                                &hosts,
                                id,
                            );
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
                        if let Some((old, _)) = hosts.get(&host_key)
                            && old != id
                            && let Some(set) = host_sessions.get(old)
                        {
                            replaced_sessions.extend(set.iter().copied());
                        }
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
                let next = match held.get_mut(&id).and_then(VecDeque::pop_front) {
                    Some(b) => Some(b),
                    None => relay.poll_transmit(io.link),
                };
                let Some(mut bytes) = next else {
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
                match (fault, RelayFrame::decode(&bytes)) {
                    // LINK-22: the reader is not told; its direction stays open.
                    (Fault::SlowReaderOneDirection, Ok(RelayFrame::Close { session, code }))
                        if code == CloseCode::SLOW_READER && !controllers.contains(&id) =>
                    {
                        if let Some((ctl, _, _)) = opens.get(&session) {
                            half_open.insert((id, session), *ctl);
                        }
                        drop(permit);
                        continue;
                    }
                    // LINK-12: a failed proof is answered READY; the link is then ignored.
                    (Fault::AcceptsBadProof, Ok(RelayFrame::GoAway { code, .. }))
                        if code == CloseCode::REGISTRATION_FAILED =>
                    {
                        bytes = RelayFrame::Ready.to_bytes().unwrap();
                        io.close_sent = true;
                        dead.insert(id);
                    }
                    // LINK-14: the replaced link's sessions are not ended at their controllers.
                    (Fault::ReplaceKeepsSessions, Ok(RelayFrame::Close { session, code }))
                        if code == CloseCode::PEER_GONE && replaced_sessions.contains(&session) =>
                    {
                        drop(permit);
                        continue;
                    }
                    (Fault::RevokesOnlyReadyLinks, Ok(RelayFrame::HostChallenge { .. })) => {
                        challenged.insert(id);
                    }
                    // LINK-37: a link still authenticating is not told, and not closed.
                    (Fault::RevokesOnlyReadyLinks, Ok(RelayFrame::GoAway { code, .. }))
                        if (code == CloseCode::AUTH_FAILED
                            || code == CloseCode::REMOTE_ACCESS_DISABLED)
                            && challenged.contains(&id)
                            && !ready.contains(&id) =>
                    {
                        io.close_sent = true;
                        dead.insert(id);
                        drop(permit);
                        continue;
                    }
                    // LINK-14: the older link is not told, and not closed.
                    (Fault::SilentReplace, Ok(RelayFrame::GoAway { code, .. }))
                        if code == CloseCode::REPLACED =>
                    {
                        io.close_sent = true;
                        dead.insert(id);
                        drop(permit);
                        continue;
                    }
                    // LINK-16: the refused OPEN reaches the host after all.
                    (Fault::DuplicateIncoming, Ok(RelayFrame::Close { session, code }))
                        if code == CloseCode::SESSION_ID_IN_USE =>
                    {
                        if let Some((ctl, handshake, key)) = opens.get(&session).cloned()
                            && ctl == id
                            && let Some((host_id, _)) = hosts.get(&key)
                        {
                            let inc = RelayFrame::Incoming { session, handshake }
                                .to_bytes()
                                .unwrap();
                            inject.push((*host_id, inc));
                            drop(permit);
                            continue;
                        }
                    }
                    // LINK-26: every 50th DATA frame twice.
                    (Fault::DuplicatesData, Ok(RelayFrame::Data { .. })) => {
                        data_count += 1;
                        if data_count.is_multiple_of(50) {
                            inject.push((id, bytes.clone()));
                        }
                    }
                    // LINK-30: READY with a trailing byte.
                    (Fault::MalformedReady, Ok(RelayFrame::Ready)) => bytes.push(0),
                    (Fault::MalformedPong, Ok(RelayFrame::Pong { .. })) => bytes.push(0),
                    // LINK-26: every 10th DATA frame goes after the next one.
                    (Fault::ReordersData, Ok(RelayFrame::Data { .. })) => {
                        data_count += 1;
                        if let Some(late) = stashed.remove(&id) {
                            inject.push((id, late));
                        } else if data_count.is_multiple_of(10) {
                            stashed.insert(id, bytes);
                            drop(permit);
                            continue;
                        }
                    }
                    // LINK-16: the host hears of the refused OPEN too.
                    (Fault::IdInUseTellsHost, Ok(RelayFrame::Close { session, code }))
                        if code == CloseCode::SESSION_ID_IN_USE =>
                    {
                        if let Some((host_id, _)) =
                            host_sessions.iter().find(|(_, set)| set.contains(&session))
                        {
                            let close = RelayFrame::Close { session, code }.to_bytes().unwrap();
                            inject.push((*host_id, close));
                        }
                    }
                    // LINK-17: no answer for an unreachable host.
                    (Fault::SilentOnUnreachable, Ok(RelayFrame::Close { code, .. }))
                        if code == CloseCode::HOST_UNREACHABLE =>
                    {
                        drop(permit);
                        continue;
                    }
                    // LINK-18: the handshake cut to 256 bytes.
                    (Fault::TruncatesIncoming, Ok(RelayFrame::Incoming { session, handshake }))
                        if handshake.len() > 256 =>
                    {
                        bytes = RelayFrame::Incoming {
                            session,
                            handshake: handshake[..256].to_vec(),
                        }
                        .to_bytes()
                        .unwrap();
                    }
                    // LINK-19: the whole link ends instead.
                    (Fault::UnknownSessionEndsLink, Ok(RelayFrame::Close { code, .. }))
                        if code == CloseCode::UNKNOWN_SESSION =>
                    {
                        bytes = goaway(CloseCode::PROTOCOL_ERROR).to_bytes().unwrap();
                        io.closing = true;
                        dead.insert(id);
                    }
                    _ => {}
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
                    Ev::Opened(id, tx, accepted) => {
                        // LINK-44: the timers start when the upgrade completes (now), not
                        // when the TCP connection was accepted.
                        let start = if fault == Fault::DeadlineFromAccept { accepted } else { now };
                        let link = relay.handle_link_opened(start);
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
                    Ev::Frame(id, mut bytes, early) => {
                        let Some(io) = links.get(&id) else { continue };
                        let link = io.link;
                        if dead.contains(&id) {
                            continue;
                        }
                        if let Some(answer) = faulty_answer(
                            fault,
                            &mut bytes,
                            early,
                            hello_ws.contains_key(&id),
                            ready.contains(&id),
                            controllers.contains(&id),
                        ) {
                            match answer {
                                Answer::Ignore => {}
                                Answer::Reply(frame) => send_direct(&links, id, vec![frame], false),
                                Answer::GoAway(code) => {
                                    dead.insert(id);
                                    send_direct(&links, id, vec![goaway(code)], true);
                                }
                            }
                            continue;
                        }
                        if fault == Fault::SlowReaderOneDirection
                            && let Ok(RelayFrame::Data { session, .. }) = RelayFrame::decode(&bytes)
                            && let Some(ctl) = half_open.get(&(id, session))
                        {
                            let f = RelayFrame::decode(&bytes).unwrap();
                            send_direct(&links, *ctl, vec![f], false);
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
                            } else if fault == Fault::EphemeralFromHello
                                && bytes.first() == Some(&RelayFrame::HELLO)
                                && bytes.len() >= 32
                            {
                                let mut b = [0u8; 32];
                                b.copy_from_slice(&bytes[bytes.len() - 32..]);
                                for x in &mut b {
                                    *x ^= 0x5a;
                                }
                                b
                            } else {
                                let mut b = [0u8; 32];
                                getrandom::fill(&mut b).unwrap();
                                b
                            }
                        };
                        relay.handle_frame(link, &bytes, now, &mut rng);
                    }
                    Ev::Text(id, len) => {
                        if fault == Fault::IgnoreText {
                            continue;
                        }
                        if fault == Fault::TextClosesSilently {
                            dead.insert(id);
                            send_direct(&links, id, Vec::new(), true);
                            continue;
                        }
                        if fault == Fault::TextCountsAsFrame && !ready.contains(&id) && len > 512 {
                            dead.insert(id);
                            send_direct(&links, id, vec![goaway(CloseCode::FRAME_TOO_LARGE)], true);
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
