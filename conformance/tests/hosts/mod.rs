//! A small host for the runner's own tests: the reference session state machine
//! (`tether_proto::session::Host`) and command layer (`tether_host::CommandSession`)
//! behind a WebSocket driver, with a store and a command layer that can misbehave in one
//! way each. The faults live here, around the reference pieces, not in them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tether_conformance::host::{BoxFuture, HostAdmin, HostTarget, Instance};
use tether_conformance::{Credential, RelayTarget, Target, TlsOptions};
use tether_host::commands::OutputCredit;
use tether_host::state::Access;
use tether_host::threads::{ThreadManager, TurnEvent};
use tether_host::{CommandConfig, CommandSession, ExecEvent};
use tether_proto::channel::records::MAX_RECORD_BODY;
use tether_proto::channel::{Framing, HostInfo, Output, PathStyle, Record, Timestamp};
use tether_proto::cmd::types::SandboxMode;
use tether_proto::cmd::{CommandError, ErrorResponse, Id, Message, Request};
use tether_proto::keys::public_key;
use tether_proto::limits::PROTOCOL_VERSION;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};
use tether_proto::session::{Host, HostConfig, HostEvent, HostStore, MemoryHostStore, Refusal};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How the host misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFault {
    /// None: the reference pieces, correctly driven.
    None,
    /// The store never marks a token consumed (TOKEN-15, CHAN-12).
    AcceptsConsumedToken,
    /// The store's replay check always passes (CHAN-10).
    NoReplayCheck,
    /// Every session counts as initialized from the start (CMD-15).
    AnswersBeforeInitialize,
    /// Refuses an `initialize` without `tether` (a plain app-server client) as one of an
    /// unsupported version (CMD-15).
    RequiresTetherMember,
    /// `command/exec` runs with the default output cap whatever the request says (CMD-41).
    IgnoresOutputCap,
    /// `command/exec` streams its output whatever the request says, also without
    /// `streamStdoutStderr` (CMD-35).
    AlwaysStreams,
    /// The store accepts any secret for a known token id (CHAN-12).
    AnySecret,
    /// The store does not check token expiry (CHAN-12).
    IgnoresExpiry,
    /// Revoked devices keep being admitted (CHAN-9).
    IgnoresRevocation,
    /// Joins a wss:// relay whatever its certificate (SEC-19).
    AcceptsAnyCertificate,
    /// Configured with an inactivity age (the runner is told it) that its store never
    /// applies (CHAN-9).
    IgnoresInactivity,
    /// Reports `read-only` and `workspace-write` as enforced, network denied, and runs
    /// commands without any sandbox (CMD-44, CMD-45).
    ClaimsUnenforcedSandbox,
    /// Every message 1 pays from the one shared bucket of CHAN-14: the store cannot tell a
    /// paired device (`is_active_device` answers `false`, the trait's default), so one
    /// sender's flood locks the paired devices out too, as in v1 (CHAN-30).
    SharedHandshakeBucket,
    /// Checks the device when a request arrives and in a sweep of the open sessions once a
    /// second, not when an approval answer arrives: an `accept` sent just after the
    /// revocation runs the command, as in v1 (CMD-75).
    ActsOnAnswersOfRevokedDevices,
    /// `tether/thread/import` follows a symlink of `cwdRelative` out of the project root and opens
    /// the thread there, as in v1 (CMD-73).
    ImportFollowsLinksOut,
    /// Reads the instruction files of a thread it starts as in v1: `std::fs`
    /// reads, symlinks followed, whatever the file is, on the task that serves every
    /// session, and lists what it found (CMD-72). Two bounds keep the test machine whole,
    /// which the host it imitates lacked: it gives up on a file after 20 s (it waited for
    /// ever on a FIFO) and reads at most 16 MiB of one (it read `/dev/zero` until 2 GB).
    ReadsInstructionsBlocking,
    /// In a session with records, sends every message at once in records of its own,
    /// whatever the controller's window (CHAN-34); its commands' output is never held
    /// back (CMD-74).
    IgnoresWindow,
    /// Answers every message longer than a version 1 message (65519 bytes) with TooLarge,
    /// id null, as if records did not raise the limit to 16 MiB (CHAN-33).
    RefusesBigMessages,
    /// Grants a session 258048 bytes more as soon as it switches to records, on top of
    /// what the reference grants: the controller's window passes 258048 (CHAN-35).
    GrantsBeyondCap,
    /// Sends a version 1 controller its messages in MESSAGE records (CHAN-31).
    RecordsToVersion1Controller,
    /// Accepts `outputCap: null` in a version 1 session too (CMD-43).
    UncappedInVersion1,
    /// Leaves `agent.test` out of message 2's capabilities while its `initialize` result
    /// lists it, as a host that builds the two lists in two places can (CMD-16).
    CapabilityListsDisagree,
    /// Reports `/` as `defaultCwd` in `tether/host/info`, not the directory it uses
    /// (CMD-77).
    MisreportsDefaultCwd,
    /// Reports a `defaultApprovalPolicy` other than the one its threads get (CMD-77).
    MisreportsDefaultPolicy,
    /// Sends threads in the tether/1 shape: `status` a string, the sandbox and policy
    /// beside the other members, not in `thread.tether` (CMD-17, section 5.3).
    SendsV1Threads,
    /// Sends `item/started` and `item/completed` without `startedAtMs`/`completedAtMs`, as
    /// tether/1 did (CMD-24, section 5.4).
    OmitsItemTimes,
    /// Takes an approval answer with a Codex object decision it did not offer in
    /// `availableDecisions` as `accept` (CMD-29, CMD-30).
    TakesUnofferedDecisions,
    /// Leaves `nextCursor` out of the last page of `thread/list`, as tether/1 did (CMD-20).
    OmitsNullCursor,
    /// Sends a turn's output as tether/1 did: `stream` and `deltaBase64`, no text `delta`
    /// (CMD-40, section 5.4).
    SendsBase64ItemDeltas,
    /// Leaves out of its threads the members Codex requires that no other rule of
    /// chapter 5 reads (`cliVersion`, `source`, `ephemeral`): only the shared-schema check
    /// sees it (CMD-79).
    OmitsCodexThreadMembers,
}

/// What [`HostFault::SendsV1Threads`], [`HostFault::OmitsItemTimes`],
/// [`HostFault::OmitsNullCursor`] and the other reshaping faults make of an outgoing message.
fn reshaped(fault: HostFault, message: &Message) -> Option<Message> {
    fn v1_thread(t: &mut Value) {
        let Some(o) = t.as_object_mut() else { return };
        let status = match o.get("status").and_then(|s| s.get("type")) {
            Some(Value::String(s)) => s.clone(),
            _ => return,
        };
        o.insert("status".to_owned(), Value::from(status));
        if let Some(Value::Object(tether)) = o.remove("tether") {
            o.extend(tether);
        }
    }
    let mut m = message.clone();
    let changed = match (fault, &mut m) {
        (HostFault::SendsV1Threads, Message::Response(r)) => {
            if let Some(t) = r.result.get_mut("thread") {
                v1_thread(t);
            }
            if let Some(Value::Array(data)) = r.result.get_mut("data") {
                data.iter_mut().for_each(v1_thread);
            }
            true
        }
        (HostFault::OmitsItemTimes, Message::Notification(n))
            if n.method == "item/started" || n.method == "item/completed" =>
        {
            if let Some(Value::Object(p)) = n.params.as_mut() {
                p.remove("startedAtMs");
                p.remove("completedAtMs");
            }
            true
        }
        (HostFault::SendsBase64ItemDeltas, Message::Notification(n))
            if n.method == "item/commandExecution/outputDelta" =>
        {
            if let Some(Value::Object(p)) = n.params.as_mut()
                && let Some(Value::String(d)) = p.remove("delta")
            {
                p.insert("stream".to_owned(), Value::from("stdout"));
                p.insert(
                    "deltaBase64".to_owned(),
                    Value::from(tether_proto::cmd::methods::encode_delta(d.as_bytes())),
                );
                p.insert("capReached".to_owned(), Value::from(false));
            }
            true
        }
        (HostFault::OmitsCodexThreadMembers, Message::Response(r)) => {
            let strip = |t: &mut Value| {
                if let Some(o) = t.as_object_mut() {
                    for k in ["cliVersion", "source", "ephemeral"] {
                        o.remove(k);
                    }
                }
            };
            if let Some(t) = r.result.get_mut("thread") {
                strip(t);
            }
            if let Some(Value::Array(data)) = r.result.get_mut("data") {
                data.iter_mut().for_each(strip);
            }
            true
        }
        (HostFault::OmitsNullCursor, Message::Response(r)) => {
            match r.result.as_object_mut() {
                Some(o) if o.get("nextCursor") == Some(&Value::Null) && o.contains_key("data") => {
                    o.remove("nextCursor");
                }
                _ => {}
            }
            true
        }
        _ => false,
    };
    changed.then_some(m)
}

/// The `sandbox-exec` of [`HostFault::ClaimsUnenforcedSandbox`]: skips its options and
/// runs the program unconfined.
const FAKE_SANDBOX_EXEC: &str = "#!/bin/sh\nwhile [ \"$#\" -gt 0 ] && [ \"$1\" != \"--\" ]; do shift; done\nshift\nexec \"$@\"\n";

/// A launcher that claims both restricted modes and enforces neither, in `dir`.
fn fake_sandbox(dir: &Path) -> tether_host::commands::SandboxLauncher {
    use std::os::unix::fs::PermissionsExt;
    let program = dir.join("fake-sandbox-exec");
    std::fs::write(&program, FAKE_SANDBOX_EXEC).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    tether_host::commands::SandboxLauncher {
        program,
        enforced: vec![
            (SandboxMode::ReadOnly, "none (a faulty host)".to_owned()),
            (
                SandboxMode::WorkspaceWrite,
                "none (a faulty host)".to_owned(),
            ),
        ],
        missing: Vec::new(),
    }
}

/// The inactivity age of the test host (CHAN-9), given to the runner too. Ten seconds:
/// `CHAN-9/inactive-device` and `CHAN-9/active-within-age` wait 12 s each, at the start of
/// the run and alongside the other cases, so the run grows by a few seconds only. No other
/// case lets a device idle that long: the runner keeps its shared paired device active
/// (a handshake when the last is a third of the age old, checked every eighth, which
/// leaves over 5 s for that handshake on a loaded two-core machine), and the devices the
/// revocation and pairing cases pair are used within a second of their last handshake.
pub const TEST_HOST_MAX_INACTIVE: Duration = Duration::from_secs(10);

/// The store: the reference `MemoryHostStore`, wrapped with the fault.
struct FaultyStore {
    inner: MemoryHostStore,
    fault: HostFault,
    names: HashMap<String, [u8; 32]>,
    secrets: HashMap<[u8; 16], u64>,
}

impl HostStore for FaultyStore {
    fn admit(
        &mut self,
        device: &[u8; 32],
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        match (self.fault, self.inner.admit(device, timestamp, now)) {
            (HostFault::NoReplayCheck, Err(Refusal::Replayed)) => Ok(()),
            (HostFault::IgnoresRevocation, Err(Refusal::NotAuthorized))
                if self.inner.device(device).is_some() =>
            {
                Ok(())
            }
            (_, r) => r,
        }
    }

    fn redeem_token(
        &mut self,
        token_id: &[u8; 16],
        token_secret: &[u8; 32],
        now: UnixTime,
    ) -> Result<(), Refusal> {
        match self.fault {
            // Checks on a copy, so the real record is never marked consumed.
            HostFault::AcceptsConsumedToken => {
                self.inner.clone().redeem_token(token_id, token_secret, now)
            }
            HostFault::AnySecret if self.inner.token_consumed(token_id) == Some(false) => {
                self.inner.add_token(*token_id, &[0; 32], u64::MAX);
                self.inner.redeem_token(token_id, &[0; 32], now)
            }
            HostFault::IgnoresExpiry if self.inner.token_consumed(token_id) == Some(false) => self
                .inner
                .redeem_token(token_id, token_secret, UnixTime::from_secs(0)),
            _ => self.inner.redeem_token(token_id, token_secret, now),
        }
    }

    fn record_device(
        &mut self,
        device: &[u8; 32],
        name: &str,
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        self.names.insert(name.to_owned(), *device);
        self.inner.record_device(device, name, timestamp, now)
    }

    fn is_active_device(&mut self, device: &[u8; 32], now: UnixTime) -> bool {
        self.fault != HostFault::SharedHandshakeBucket && self.inner.is_active_device(device, now)
    }
}

/// A running test host.
pub struct TestHost {
    pub host_key: [u8; 32],
    fault: HostFault,
    store: Arc<Mutex<FaultyStore>>,
    relay_url: String,
    workspace: String,
    task: tokio::task::JoinHandle<()>,
    work: tempfile::TempDir,
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Admin {
    fault: HostFault,
    store: Arc<Mutex<FaultyStore>>,
    host_key: [u8; 32],
    relay_url: String,
    workspace: String,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({:?})", self.fault)
    }
}

impl HostAdmin for Admin {
    fn mint_token(&self, ttl: Option<u64>) -> BoxFuture<'_, Result<Option<String>, String>> {
        let mut id = [0u8; 16];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id).unwrap();
        getrandom::fill(&mut secret).unwrap();
        // TOKEN-9: at most 600 s.
        let ttl = ttl.unwrap_or(300);
        if ttl > 600 {
            return Box::pin(async move {
                Err(format!(
                    "a pairing token lives at most 600 s, not {ttl} (TOKEN-9)"
                ))
            });
        }
        let expires = UnixTime::now().as_secs() + ttl;
        let token = PairingToken::new(
            self.host_key,
            id,
            secret,
            expires,
            self.workspace.clone(),
            self.relay_url.clone(),
            Some("test-host".to_owned()),
        )
        .unwrap();
        {
            let mut s = self.store.lock().unwrap();
            s.inner.add_token(id, &secret, expires);
            s.secrets.insert(id, expires);
        }
        let text = token.to_text();
        Box::pin(async move { Ok(Some(text)) })
    }

    fn can_set_ttl(&self) -> bool {
        true
    }

    fn can_revoke(&self) -> bool {
        true
    }

    fn can_start_instance(&self) -> bool {
        true
    }

    /// The second instance only connects to the relay and does the TLS handshake: with the
    /// web PKI roots, or (the fault) accepting any certificate.
    fn start_instance(&self, relay_url: &str) -> BoxFuture<'_, Result<Instance, String>> {
        let addr = relay_url
            .trim_start_matches("wss://")
            .trim_end_matches('/')
            .to_owned();
        let any = self.fault == HostFault::AcceptsAnyCertificate;
        let task = tokio::spawn(async move {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap();
            let config = if any {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAny(
                        provider.signature_verification_algorithms,
                    )))
                    .with_no_client_auth()
            } else {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                builder.with_root_certificates(roots).with_no_client_auth()
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            for _ in 0..10 {
                if let Ok(tcp) = tokio::net::TcpStream::connect(&addr).await {
                    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                    let _ = connector.connect(name, tcp).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Box::pin(async move { Ok(Instance::from_task(task)) })
    }

    fn revoke(&self, device_name: &str) -> BoxFuture<'_, Result<bool, String>> {
        let mut s = self.store.lock().unwrap();
        let r = match s.names.get(device_name).copied() {
            Some(key) => {
                s.inner.revoke(&key);
                Ok(true)
            }
            None => Err(format!("no device named {device_name:?}")),
        };
        Box::pin(async move { r })
    }
}

impl TestHost {
    /// The conformance target: this host through `relay_url` in `workspace`.
    pub fn target(&self, credential: &str) -> Arc<Target> {
        let relay = RelayTarget {
            url: self.relay_url.clone(),
            workspace: format!("{}={credential}", self.workspace)
                .parse::<Credential>()
                .unwrap(),
            other_workspace: None,
            remote_access_off: None,
            tls: TlsOptions::default(),
            admin: None,
        };
        let admin = Admin {
            fault: self.fault,
            store: Arc::clone(&self.store),
            host_key: self.host_key,
            relay_url: self.relay_url.clone(),
            workspace: self.workspace.clone(),
        };
        let host = HostTarget::new(relay, Arc::new(admin), "test host".to_owned())
            .with_work_dir(self.work.path().display().to_string())
            .with_approval_timeout(Duration::from_secs(3))
            .with_max_inactive(TEST_HOST_MAX_INACTIVE);
        Arc::new(Target::Host(Arc::new(host)))
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, frame: &RelayFrame) {
    let _ = ws.send(WsMessage::binary(frame.to_bytes().unwrap())).await;
}

async fn next(ws: &mut Ws) -> Option<RelayFrame> {
    loop {
        match ws.next().await? {
            Ok(WsMessage::Binary(b)) => return RelayFrame::decode(&b).ok(),
            Ok(WsMessage::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Registers with the relay at `relay_url` in `workspace` and serves sessions with `fault`.
pub async fn start(
    relay_url: &str,
    workspace: &str,
    credential: &str,
    fault: HostFault,
) -> TestHost {
    let mut private = [0u8; 32];
    getrandom::fill(&mut private).unwrap();
    let host_key = public_key(&private);
    let inner = match fault {
        // The age is configured (the target says so) but the store never applies it.
        HostFault::IgnoresInactivity => MemoryHostStore::new(),
        _ => MemoryHostStore::new().with_max_inactive(TEST_HOST_MAX_INACTIVE),
    };
    let store = Arc::new(Mutex::new(FaultyStore {
        inner,
        fault,
        names: HashMap::new(),
        secrets: HashMap::new(),
    }));
    let (mut ws, _) = tokio_tungstenite::connect_async(relay_url).await.unwrap();
    let (reg, msg1) = HostRegistration::start(&private, workspace).unwrap();
    send(
        &mut ws,
        &RelayFrame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Host,
            workspace: workspace.to_owned(),
            credential: credential.as_bytes().to_vec(),
            registration: msg1.to_vec(),
        },
    )
    .await;
    let Some(RelayFrame::HostChallenge { message }) = next(&mut ws).await else {
        panic!("no HOST_CHALLENGE")
    };
    let proof = reg.respond(&message).unwrap();
    send(
        &mut ws,
        &RelayFrame::HostProof {
            message: proof.to_vec(),
        },
    )
    .await;
    assert_eq!(next(&mut ws).await, Some(RelayFrame::Ready));

    let host = Host::new(HostConfig {
        static_private: private,
        workspace: workspace.to_owned(),
        host_info: HostInfo {
            name: "test-host".to_owned(),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            shell: "sh".to_owned(),
            path_style: PathStyle::Posix,
            capabilities: if fault == HostFault::CapabilityListsDisagree {
                vec![
                    "command.exec".to_owned(),
                    "thread.handoff".to_owned(),
                    "channel.flow".to_owned(),
                ]
            } else {
                vec![
                    "command.exec".to_owned(),
                    "agent.test".to_owned(),
                    "thread.handoff".to_owned(),
                    "channel.flow".to_owned(),
                ]
            },
            protocol: "tether/1".to_owned(),
        },
        remote_access: true,
        confirm_pairing: false,
    });
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let task = tokio::spawn(serve(ws, host, Arc::clone(&store), fault, state));
    TestHost {
        host_key,
        fault,
        store,
        relay_url: relay_url.to_owned(),
        workspace: workspace.to_owned(),
        task,
        work,
    }
}

struct Ctx {
    device: [u8; 32],
    commands: CommandSession,
    /// Output credit of chunks whose messages have not left the session's window yet,
    /// with their message numbers (CMD-74), as the reference runtime keeps them.
    held: std::collections::VecDeque<(u64, OutputCredit)>,
    /// The session has switched to records and [`HostFault::GrantsBeyondCap`] has granted.
    over_granted: bool,
}

/// Sends `message` on `session` as `fault` has it; returns its number in the session's
/// flow ([`Host::released`]) when it went through the flow.
fn send_message(
    host: &mut Host,
    fault: HostFault,
    session: SessionId,
    message: &Message,
) -> Option<u64> {
    let reshaped = reshaped(fault, message);
    let message = reshaped.as_ref().unwrap_or(message);
    match (fault, host.framing(session)?) {
        (HostFault::IgnoresWindow, Framing::Records) => {
            let bytes = message.to_bytes();
            let mut rest = bytes.as_slice();
            while rest.len() > MAX_RECORD_BODY {
                let (part, tail) = rest.split_at(MAX_RECORD_BODY);
                let _ = host.send_plaintext(session, &Record::Part(part).to_vec());
                rest = tail;
            }
            let _ = host.send_plaintext(session, &Record::Message(rest).to_vec());
            None
        }
        (HostFault::RecordsToVersion1Controller, Framing::V1) => {
            let _ = host.send_plaintext(session, &Record::Message(&message.to_bytes()).to_vec());
            None
        }
        _ => host.send(session, message).ok(),
    }
}

/// [`send_message`] for a chunk of output in `OUTPUT` records (`CMD-76`): with
/// [`HostFault::IgnoresWindow`], in records as long as they go, whatever the window.
fn send_output(
    host: &mut Host,
    fault: HostFault,
    session: SessionId,
    process_id: &str,
    stderr: bool,
    cap_reached: bool,
    data: Vec<u8>,
) -> Option<u64> {
    if fault == HostFault::IgnoresWindow {
        let room = MAX_RECORD_BODY - 3 - process_id.len();
        let mut chunks = data.chunks(room).peekable();
        while let Some(chunk) = chunks.next() {
            let record = Record::Output(Output {
                stderr,
                cap_reached: cap_reached && chunks.peek().is_none(),
                process_id,
                data: chunk,
            });
            let _ = host.send_plaintext(session, &record.to_vec());
        }
        return None;
    }
    host.send_output(session, stderr, cap_reached, process_id, data)
        .ok()
}

/// How long [`HostFault::ReadsInstructionsBlocking`] waits for one instruction file.
const LEGACY_READ_GIVES_UP: Duration = Duration::from_secs(20);

/// How much of one instruction file [`HostFault::ReadsInstructionsBlocking`] reads at most.
const LEGACY_READ_MAX: u64 = 16 << 20;

/// The instruction files of a thread in `cwd` as the host found them in v1
/// ([`HostFault::ReadsInstructionsBlocking`]): from the project root down, the first of
/// `AGENTS.override.md` and `AGENTS.md` that reads as not empty, whatever it is.
fn legacy_instruction_sources(cwd: &Path) -> Vec<String> {
    let root = tether_host::instructions::project_root(cwd);
    let mut dirs: Vec<&Path> = cwd
        .ancestors()
        .take_while(|d| d.starts_with(&root))
        .collect();
    dirs.reverse();
    let mut found = Vec::new();
    for dir in dirs {
        if let Some(path) = ["AGENTS.override.md", "AGENTS.md"]
            .iter()
            .map(|name| dir.join(name))
            .find(|path| legacy_read(path).is_some_and(|bytes| !bytes.is_empty()))
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// `path` read as `std::fs::read` reads it (opened blocking, symlinks followed, any kind
/// of file), up to [`LEGACY_READ_MAX`] bytes. The read runs on a thread of its own so that
/// the test can end: the caller waits for it, up to [`LEGACY_READ_GIVES_UP`], then opens
/// the file for writing without blocking, which lets an open of a FIFO return.
fn legacy_read(path: &Path) -> Option<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_owned();
    std::thread::spawn(move || {
        let read = std::fs::File::open(&owned).and_then(|f| {
            let mut bytes = Vec::new();
            f.take(LEGACY_READ_MAX)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        });
        let _ = tx.send(read.ok());
    });
    match rx.recv_timeout(LEGACY_READ_GIVES_UP) {
        Ok(read) => read,
        Err(_) => {
            let _ = rustix::fs::open(
                path,
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
                rustix::fs::Mode::empty(),
            );
            None
        }
    }
}

/// [`HostFault::ImportFollowsLinksOut`]: a `tether/thread/import` whose `cwdRelative` resolves
/// outside its project root is rewritten to open the thread where the links lead (the
/// joined path as its own project root), so the reference's CMD-73 check has nothing to
/// refuse. Every other import is left as it is.
fn follow_links_out(params: &mut serde_json::Map<String, Value>) {
    let root = params.get("projectRoot").and_then(Value::as_str);
    let relative = params
        .get("bundle")
        .and_then(|b| b.get("cwdRelative"))
        .and_then(Value::as_str);
    let (Some(root), Some(relative)) = (root, relative) else {
        return;
    };
    // Only names CMD-53 lets through: the fault is the missing CMD-73 check alone.
    let names_only = relative.split('/').all(|name| {
        !name.is_empty() && name != "." && name != ".." && !name.contains(['\\', ':', '\0'])
    });
    if relative == "." || !names_only {
        return;
    }
    let joined = Path::new(root).join(relative);
    let outside = match (std::fs::canonicalize(root), std::fs::canonicalize(&joined)) {
        (Ok(real_root), Ok(real)) => !real.starts_with(real_root),
        _ => false,
    };
    if outside {
        params.insert(
            "projectRoot".to_owned(),
            Value::String(joined.display().to_string()),
        );
        if let Some(b) = params.get_mut("bundle").and_then(Value::as_object_mut) {
            b.insert("cwdRelative".to_owned(), Value::String(".".to_owned()));
        }
    }
}

/// [`HostFault::ReadsInstructionsBlocking`]: the answer to a `thread/start` lists what the
/// legacy read found for it instead of what the reference found.
fn patched(
    patches: &mut HashMap<(SessionId, Id), Vec<String>>,
    session: SessionId,
    mut message: Message,
) -> Message {
    if let Message::Response(r) = &mut message
        && let Some(found) = patches.remove(&(session, r.id.clone()))
        && let Some(o) = r.result.as_object_mut()
    {
        o.insert("instructionSources".to_owned(), serde_json::json!(found));
    }
    message
}

fn initialize_request() -> Message {
    Message::Request(Request::new(
        -1i64,
        "initialize",
        Some(
            serde_json::json!({"clientInfo": {"name": "fault", "version": "0"}, "tether": {"protocolVersion": "tether/2"}}),
        ),
    ))
}

async fn serve(
    mut ws: Ws,
    mut host: Host,
    store: Arc<Mutex<FaultyStore>>,
    fault: HostFault,
    state: tempfile::TempDir,
) {
    let config = Arc::new(CommandConfig {
        approval_timeout: Duration::from_secs(3),
        sandbox: (fault == HostFault::ClaimsUnenforcedSandbox).then(|| fake_sandbox(state.path())),
        ..CommandConfig::default()
    });
    let (turn_tx, mut turn_rx) = mpsc::unbounded_channel::<TurnEvent>();
    let mut threads = ThreadManager::new(state.path(), Arc::clone(&config), turn_tx).unwrap();
    let (exec_tx, mut exec_rx) = mpsc::unbounded_channel::<ExecEvent>();
    let mut sessions: HashMap<SessionId, Ctx> = HashMap::new();
    let mut patches: HashMap<(SessionId, Id), Vec<String>> = HashMap::new();
    // ActsOnAnswersOfRevokedDevices re-checks open sessions once a second, as the host
    // in v1 did; the others every 200 ms when idle.
    let sweep_every = if fault == HostFault::ActsOnAnswersOfRevokedDevices {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let mut last_sweep = Instant::now();
    loop {
        let mut out = Vec::new();
        tokio::select! {
            frame = next(&mut ws) => {
                let Some(frame) = frame else { return };
                match frame {
                    RelayFrame::Incoming { session, handshake } => {
                        let mut s = store.lock().unwrap();
                        host.handle_incoming(session, &handshake, Instant::now(), UnixTime::now(), &mut *s);
                    }
                    RelayFrame::Data { session, payload } => host.handle_data(session, &payload),
                    RelayFrame::Close { session, code } => host.handle_close(session, code),
                    RelayFrame::Ping { value } => out.push(RelayFrame::Pong { value }),
                    _ => {}
                }
            }
            Some(event) = exec_rx.recv() => {
                // CMD-74: a chunk's credit is held until its message (or its OUTPUT
                // records, CMD-76) has left within the window (CHAN-34), as the reference
                // runtime does.
                let (session, sent, credit) = match event {
                    ExecEvent::Output { session, message, credit } => {
                        (session, send_message(&mut host, fault, session, &message), credit)
                    }
                    ExecEvent::Chunk { session, process_id, stderr, cap_reached, data, credit } => {
                        let sent = send_output(&mut host, fault, session, &process_id, stderr, cap_reached, data);
                        (session, sent, credit)
                    }
                    ExecEvent::Finished { session, process_id, message } => {
                        if let Some(ctx) = sessions.get_mut(&session) {
                            ctx.commands.finished(&process_id);
                            send_message(&mut host, fault, session, &message);
                        }
                        continue;
                    }
                };
                if let (Some(n), Some(ctx)) = (sent, sessions.get_mut(&session))
                    && host.released(session).is_some_and(|r| r < n)
                {
                    ctx.held.push_back((n, credit));
                }
            }
            Some(event) = turn_rx.recv() => threads.handle_event(event),
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                threads.handle_timeout(Instant::now());
                // SEC-13: sessions of a revoked device are closed without waiting for
                // their next request (unless revocation is the fault).
                if fault != HostFault::IgnoresRevocation && last_sweep.elapsed() >= sweep_every {
                    last_sweep = Instant::now();
                    let s = store.lock().unwrap();
                    for (session, ctx) in &sessions {
                        if s.inner.device(&ctx.device).is_none_or(|d| d.revoked) {
                            host.close(*session, CloseCode::NOT_AUTHORIZED);
                        }
                    }
                }
            }
        }
        while let Some(event) = host.poll_event() {
            match event {
                HostEvent::Established {
                    session, device, ..
                } => {
                    let name = {
                        let s = store.lock().unwrap();
                        s.inner
                            .device(&device)
                            .map(|d| d.name.clone())
                            .unwrap_or_default()
                    };
                    threads.session_opened(session, name);
                    let mut commands =
                        CommandSession::new(session, Arc::clone(&config), exec_tx.clone());
                    if fault == HostFault::AnswersBeforeInitialize {
                        let _ = commands.handle_with(
                            initialize_request(),
                            Access::Allowed,
                            Some(&mut threads),
                        );
                    }
                    sessions.insert(
                        session,
                        Ctx {
                            device,
                            commands,
                            held: std::collections::VecDeque::new(),
                            over_granted: false,
                        },
                    );
                }
                HostEvent::Message {
                    session,
                    mut message,
                } => {
                    let Some(ctx) = sessions.get_mut(&session) else {
                        continue;
                    };
                    // CMD-56: a revoked device, or one past the inactivity age (CHAN-9), is
                    // refused in its open sessions too.
                    let mut access = match store.lock().unwrap().inner.device(&ctx.device) {
                        Some(d)
                            if (!d.revoked || fault == HostFault::IgnoresRevocation)
                                && (fault == HostFault::IgnoresInactivity
                                    || UnixTime::now()
                                        <= d.last_seen.saturating_add(TEST_HOST_MAX_INACTIVE)) =>
                        {
                            Access::Allowed
                        }
                        _ => Access::NotAuthorized,
                    };
                    if fault == HostFault::ActsOnAnswersOfRevokedDevices
                        && matches!(message, Message::Response(_) | Message::Error(_))
                    {
                        access = Access::Allowed;
                    }
                    if fault == HostFault::RequiresTetherMember
                        && let Message::Request(r) = &mut message
                        && r.method == "initialize"
                        && let Some(p) = r.params.as_mut().and_then(|p| p.as_object_mut())
                    {
                        p.entry("tether").or_insert_with(
                            || serde_json::json!({"protocolVersion": "none given"}),
                        );
                    }
                    if fault == HostFault::TakesUnofferedDecisions
                        && let Message::Response(r) = &mut message
                        && r.result.get("decision").is_some_and(Value::is_object)
                    {
                        r.result = serde_json::json!({"decision": "accept"});
                    }
                    if fault == HostFault::ImportFollowsLinksOut
                        && let Message::Request(r) = &mut message
                        && r.method == "tether/thread/import"
                        && let Some(p) = r.params.as_mut().and_then(|p| p.as_object_mut())
                    {
                        follow_links_out(p);
                    }
                    if fault == HostFault::ReadsInstructionsBlocking
                        && let Message::Request(r) = &message
                        && r.method == "thread/start"
                        && let Some(cwd) = r
                            .params
                            .as_ref()
                            .and_then(|p| p.get("cwd"))
                            .and_then(Value::as_str)
                    {
                        // On this task, which serves every session; block_in_place only
                        // keeps the rest of the test's runtime (relay, runner) going.
                        let found = tokio::task::block_in_place(|| {
                            legacy_instruction_sources(Path::new(cwd))
                        });
                        patches.insert((session, r.id.clone()), found);
                    }
                    // CMD-43: outputCap null only where records keep the output at the
                    // reader's pace.
                    ctx.commands.set_records(
                        fault == HostFault::UncappedInVersion1
                            || host.framing(session) == Some(Framing::Records),
                    );
                    if fault == HostFault::RefusesBigMessages {
                        let len = message.to_bytes().len();
                        if len > tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN {
                            let refusal = Message::Error(ErrorResponse::new(
                                None,
                                &CommandError::TooLarge { len },
                            ));
                            send_message(&mut host, fault, session, &refusal);
                            continue;
                        }
                    }
                    if fault == HostFault::IgnoresOutputCap
                        && let Message::Request(r) = &mut message
                        && r.method == "command/exec"
                        && let Some(p) = r.params.as_mut().and_then(|p| p.as_object_mut())
                    {
                        p.remove("outputBytesCap");
                    }
                    if fault == HostFault::AlwaysStreams
                        && let Message::Request(r) = &mut message
                        && r.method == "command/exec"
                        && let Some(p) = r.params.as_mut().and_then(|p| p.as_object_mut())
                    {
                        p.insert("streamStdoutStderr".to_owned(), serde_json::json!(true));
                        p.entry("processId")
                            .or_insert_with(|| serde_json::json!("always-streamed"));
                    }
                    let host_info = matches!(&message, Message::Request(r)
                        if r.method == "tether/host/info");
                    let reply = ctx
                        .commands
                        .handle_with(message, access, Some(&mut threads));
                    for m in reply.messages {
                        let m = patched(&mut patches, session, m);
                        let m = if host_info { misreported(fault, m) } else { m };
                        send_message(&mut host, fault, session, &m);
                    }
                    while let Some((s, m)) = threads.poll_outgoing() {
                        let m = patched(&mut patches, s, m);
                        send_message(&mut host, fault, s, &m);
                    }
                    if let Some(code) = reply.close {
                        host.close(session, code);
                    }
                }
                HostEvent::Closed { session, .. } => {
                    sessions.remove(&session);
                    patches.retain(|(s, _), _| *s != session);
                    threads.session_closed(session);
                }
                _ => {}
            }
        }
        while let Some((s, m)) = threads.poll_outgoing() {
            let m = patched(&mut patches, s, m);
            send_message(&mut host, fault, s, &m);
        }
        if fault == HostFault::GrantsBeyondCap {
            for (session, ctx) in &mut sessions {
                if !ctx.over_granted && host.framing(*session) == Some(Framing::Records) {
                    ctx.over_granted = true;
                    let _ = host.send_plaintext(*session, &Record::Window(258_048).to_vec());
                }
            }
        }
        while let Some(f) = host.poll_transmit() {
            out.push(f);
        }
        // CMD-74: the credit of chunks whose messages have left goes back to their
        // processes.
        for (session, ctx) in &mut sessions {
            let released = host.released(*session).unwrap_or(u64::MAX);
            while ctx.held.front().is_some_and(|(n, _)| *n <= released) {
                ctx.held.pop_front();
            }
        }
        for f in &out {
            send(&mut ws, f).await;
        }
    }
}

/// A certificate verifier that accepts anything: the fault of `AcceptsAnyCertificate`.
#[derive(Debug)]
struct AcceptAny(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The `tether/host/info` answer of a host with one of the `Misreports*` faults (CMD-77).
fn misreported(fault: HostFault, m: Message) -> Message {
    let Message::Response(mut r) = m else {
        return m;
    };
    let Some(result) = r.result.as_object_mut() else {
        return Message::Response(r);
    };
    match fault {
        HostFault::MisreportsDefaultCwd => {
            result.insert("defaultCwd".to_owned(), Value::from("/"));
        }
        HostFault::MisreportsDefaultPolicy => {
            let other = if result.get("defaultApprovalPolicy") == Some(&Value::from("never")) {
                "untrusted"
            } else {
                "never"
            };
            result.insert("defaultApprovalPolicy".to_owned(), Value::from(other));
        }
        _ => {}
    }
    Message::Response(r)
}
