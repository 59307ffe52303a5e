//! `session.json`: one whole session, every byte — a pairing token, the host's and the
//! controller's relay links (registration included), the IK handshake with pairing, and a
//! JSON-RPC conversation with one approved command — produced by running the reference
//! state machines ([`tether_proto::link::router::Relay`], [`tether_proto::session::Host`],
//! [`tether_proto::session::Controller`]) against each other with fixed keys.
//!
//! The checker reads the inputs (keys, ephemerals, clock, plaintexts) back from the file,
//! runs the same machines, and requires every recorded byte to come out again; each
//! plaintext must also decode as the typed command-protocol message it claims to be.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_proto::channel::{HostInfo, PathStyle, Timestamp};
use tether_proto::cmd::methods::{
    ClientNotification, ClientRequest, ServerNotification, ServerRequest, check_result,
};
use tether_proto::cmd::{Id, Message};
use tether_proto::keys::public_key;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::router::{LinkId, Relay, RelayConfig, WorkspaceConfig};
use tether_proto::link::{RelayFrame, Role, SessionId};
use tether_proto::session::{
    Controller, ControllerConfig, ControllerEvent, Host, HostConfig, HostEvent, MemoryHostStore,
    Purpose,
};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

use crate::format::{VectorFile, det_array, det_bytes, to_json};
use crate::noise::{HandshakeKeys, NoiseHandshake, prologue_bytes, record_handshake};

/// The vector files this module generates and checks.
pub const FILES: &[VectorFile] = &[VectorFile {
    name: "session.json",
    generate,
    check,
}];

/// Fixed inputs of the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inputs {
    /// Unix seconds on every clock during the session.
    now: u64,
    workspace: String,
    relay_url: String,
    /// Workspace credential, hex.
    credential: String,
    host_static: String,
    controller_static: String,
    host_registration_ephemeral: String,
    relay_registration_ephemeral: String,
    controller_ephemeral: String,
    host_ephemeral: String,
    token_id: String,
    token_secret: String,
    session_id: String,
    device_name: String,
    host_info: HostInfo,
}

/// One relay frame on one link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FrameRecord {
    /// `host` or `controller`: whose link.
    link: String,
    /// `toRelay` or `fromRelay`.
    direction: String,
    /// Frame type name.
    r#type: String,
    /// The frame, hex.
    hex: String,
}

/// One transport message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransportRecord {
    /// `controller` or `host`.
    from: String,
    /// The sender's nonce.
    nonce: u64,
    /// The JSON-RPC message, as text.
    plaintext: String,
    /// The Noise transport message, hex.
    ciphertext: String,
}

/// The whole recorded session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionTest {
    tc_id: u32,
    comment: String,
    flags: Vec<String>,
    result: String,
    inputs: Inputs,
    /// The pairing token as the QR code carries it, and its binary form in hex.
    token_text: String,
    token_binary: String,
    host_static_public: String,
    controller_static_public: String,
    /// Six digits both screens show (`CHAN-23`).
    confirmation_code: String,
    /// Every relay frame, in the order the relay handled or emitted it.
    frames: Vec<FrameRecord>,
    /// The IK handshake in the cacophony format (messages 1 and 2).
    noise: NoiseHandshake,
    /// The transport messages, in the order they were sent.
    transport: Vec<TransportRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionFile {
    vectors: String,
    spec_version: u32,
    description: String,
    notes: std::collections::BTreeMap<String, String>,
    number_of_tests: usize,
    tests: Vec<SessionTest>,
}

/// Who sends what after the handshake: (sender, JSON-RPC text).
fn conversation() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "controller",
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"tether-phone","version":"1.0.0"},"tether":{"capabilities":["agent.test","command.exec"],"protocolVersion":"tether/2"}}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","id":1,"result":{"codexHome":"/home/dev/.local/state/tether-host","platformFamily":"unix","platformOs":"linux","tether":{"capabilities":["agent.test","command.exec","thread.handoff","pairing.confirm","sandbox.landlock"],"platform":{"arch":"x86_64","os":"linux","pathStyle":"posix"},"protocolVersion":"tether/2","sandbox":{"degrade":false,"mechanism":"landlock","modes":["read-only","workspace-write","danger-full-access"]},"serverInfo":{"name":"tether-host","version":"0.1.0"}},"userAgent":"tether-host/0.1.0 (linux; x86_64)"}}"#,
        ),
        ("controller", r#"{"jsonrpc":"2.0","method":"initialized"}"#),
        (
            "controller",
            r#"{"id":2,"jsonrpc":"2.0","method":"thread/start","params":{"approvalPolicy":"untrusted","cwd":"/home/dev/acme/service","sandbox":"workspace-write"}}"#,
        ),
        (
            "host",
            r#"{"id":2,"jsonrpc":"2.0","result":{"approvalPolicy":"untrusted","approvalsReviewer":"user","cwd":"/home/dev/acme/service","instructionSources":["/home/dev/acme/AGENTS.md"],"model":"tether-test","modelProvider":"tether-test","sandbox":{"excludeSlashTmp":false,"excludeTmpdirEnvVar":false,"networkAccess":false,"type":"workspaceWrite","writableRoots":["/home/dev/acme","/tmp"]},"tether":{"sandbox":{"degraded":false,"enforced":"workspace-write","mechanism":"landlock","network":"denied","requested":"workspace-write"}},"thread":{"cliVersion":"0.1.0","createdAt":1798761600,"cwd":"/home/dev/acme/service","ephemeral":false,"id":"thr_8346c65416f03e42","modelProvider":"tether-test","preview":"","projectId":null,"sessionId":"thr_8346c65416f03e42","source":"appServer","status":{"type":"idle"},"tether":{"approvalPolicy":"untrusted","sandbox":"workspace-write"},"turns":[],"updatedAt":1798761600}}}"#,
        ),
        (
            "controller",
            r#"{"id":3,"jsonrpc":"2.0","method":"turn/start","params":{"input":[{"text":"$ cargo test","text_elements":[],"type":"text"}],"threadId":"thr_8346c65416f03e42"}}"#,
        ),
        (
            "host",
            r#"{"id":3,"jsonrpc":"2.0","result":{"turn":{"id":"turn_27863707814d2015","items":[],"itemsView":"full","startedAt":1798761600,"status":"inProgress"}}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"turn/started","params":{"threadId":"thr_8346c65416f03e42","turn":{"id":"turn_27863707814d2015","items":[],"itemsView":"full","startedAt":1798761600,"status":"inProgress"}}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"item/started","params":{"item":{"completedAtMs":1798761600000,"content":[{"text":"$ cargo test","text_elements":[],"type":"text"}],"id":"item_5c1d0e6a8f3b2947","startedAtMs":1798761600000,"type":"userMessage"},"startedAtMs":1798761600000,"threadId":"thr_8346c65416f03e42","turnId":"turn_27863707814d2015"}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"item/completed","params":{"completedAtMs":1798761600000,"item":{"completedAtMs":1798761600000,"content":[{"text":"$ cargo test","text_elements":[],"type":"text"}],"id":"item_5c1d0e6a8f3b2947","startedAtMs":1798761600000,"type":"userMessage"},"threadId":"thr_8346c65416f03e42","turnId":"turn_27863707814d2015"}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"item/started","params":{"item":{"command":"cargo test","commandActions":[{"command":"cargo test","type":"unknown"}],"cwd":"/home/dev/acme/service","id":"item_0090c3292cd45f2e","startedAtMs":1798761600001,"status":"inProgress","type":"commandExecution"},"startedAtMs":1798761600001,"threadId":"thr_8346c65416f03e42","turnId":"turn_27863707814d2015"}}"#,
        ),
        (
            "host",
            r#"{"id":1,"jsonrpc":"2.0","method":"item/commandExecution/requestApproval","params":{"availableDecisions":["accept","acceptForSession","decline","cancel"],"command":"cargo test","commandActions":[{"command":"cargo test","type":"unknown"}],"cwd":"/home/dev/acme/service","itemId":"item_0090c3292cd45f2e","reason":"policy untrusted","startedAtMs":1798761600001,"tether":{"sandbox":"workspace-write"},"threadId":"thr_8346c65416f03e42","turnId":"turn_27863707814d2015"}}"#,
        ),
        (
            "controller",
            r#"{"id":1,"jsonrpc":"2.0","result":{"decision":"accept"}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"serverRequest/resolved","params":{"requestId":1,"tether":{"decision":"accept","resolvedBy":"Ana's phone"},"threadId":"thr_8346c65416f03e42"}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"item/commandExecution/outputDelta","params":{"delta":"test result: ok. 3 passed\n","itemId":"item_0090c3292cd45f2e","threadId":"thr_8346c65416f03e42","turnId":"turn_27863707814d2015"}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"item/completed","params":{"completedAtMs":1798761601521,"item":{"aggregatedOutput":"test result: ok. 3 passed\n","command":"cargo test","commandActions":[{"command":"cargo test","type":"unknown"}],"completedAtMs":1798761601521,"cwd":"/home/dev/acme/service","durationMs":1520,"exitCode":0,"id":"item_0090c3292cd45f2e","startedAtMs":1798761600001,"status":"completed","type":"commandExecution"},"threadId":"thr_8346c65416f03e42","turnId":"turn_27863707814d2015"}}"#,
        ),
        (
            "host",
            r#"{"jsonrpc":"2.0","method":"turn/completed","params":{"threadId":"thr_8346c65416f03e42","turn":{"completedAt":1798761601,"durationMs":1530,"id":"turn_27863707814d2015","items":[{"completedAtMs":1798761600000,"content":[{"text":"$ cargo test","text_elements":[],"type":"text"}],"id":"item_5c1d0e6a8f3b2947","startedAtMs":1798761600000,"type":"userMessage"},{"aggregatedOutput":"test result: ok. 3 passed\n","command":"cargo test","commandActions":[{"command":"cargo test","type":"unknown"}],"completedAtMs":1798761601521,"cwd":"/home/dev/acme/service","durationMs":1520,"exitCode":0,"id":"item_0090c3292cd45f2e","startedAtMs":1798761600001,"status":"completed","type":"commandExecution"}],"itemsView":"full","startedAt":1798761600,"status":"completed"}}}"#,
        ),
    ]
}

fn default_inputs() -> Inputs {
    Inputs {
        now: 1_798_761_600,
        workspace: "acme".into(),
        relay_url: "wss://relay.example.net/tether".into(),
        credential: hex::encode(det_bytes("session/credential", 32)),
        host_static: hex::encode(det_bytes("session/host-static", 32)),
        controller_static: hex::encode(det_bytes("session/controller-static", 32)),
        host_registration_ephemeral: hex::encode(det_bytes("session/host-reg-ephemeral", 32)),
        relay_registration_ephemeral: hex::encode(det_bytes("session/relay-reg-ephemeral", 32)),
        controller_ephemeral: hex::encode(det_bytes("session/controller-ephemeral", 32)),
        host_ephemeral: hex::encode(det_bytes("session/host-ephemeral", 32)),
        token_id: hex::encode(det_array::<16>("session/token-id")),
        token_secret: hex::encode(det_array::<32>("session/token-secret")),
        session_id: hex::encode(det_array::<8>("session/session-id")),
        device_name: "Ana's phone".into(),
        host_info: HostInfo {
            name: "build-box".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            shell: "bash".into(),
            path_style: PathStyle::Posix,
            capabilities: vec![
                "agent.test".into(),
                "command.exec".into(),
                "thread.handoff".into(),
                "pairing.confirm".into(),
                "sandbox.landlock".into(),
            ],
            protocol: "tether/1".into(),
        },
    }
}

fn arr<const N: usize>(hex_str: &str, what: &str) -> Result<[u8; N], String> {
    let v = hex::decode(hex_str).map_err(|e| format!("{what}: {e}"))?;
    v.try_into()
        .map_err(|_| format!("{what}: expected {N} bytes"))
}

/// Frames the relay emitted for `link`, recorded in order.
fn drain(
    relay: &mut Relay,
    link: LinkId,
    name: &str,
    frames: &mut Vec<FrameRecord>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(bytes) = relay.poll_transmit(link) {
        frames.push(record(name, "fromRelay", &bytes));
        out.push(bytes);
    }
    out
}

fn record(link: &str, direction: &str, bytes: &[u8]) -> FrameRecord {
    let ty = RelayFrame::decode(bytes)
        .map(|f| f.type_name().to_owned())
        .unwrap_or_else(|_| "MALFORMED".into());
    FrameRecord {
        link: link.into(),
        direction: direction.into(),
        r#type: ty,
        hex: hex::encode(bytes),
    }
}

fn encode(frame: &RelayFrame) -> Result<Vec<u8>, String> {
    frame
        .to_bytes()
        .map_err(|e| format!("encoding {}: {e}", frame.type_name()))
}

fn single(frames: Vec<Vec<u8>>, what: &str) -> Result<RelayFrame, String> {
    match frames.as_slice() {
        [one] => RelayFrame::decode(one).map_err(|e| format!("{what}: {e}")),
        _ => Err(format!("{what}: expected one frame, got {}", frames.len())),
    }
}

/// Runs the session from its inputs and records everything.
fn run(inputs: &Inputs) -> Result<SessionTest, String> {
    let host_static = arr::<32>(&inputs.host_static, "hostStatic")?;
    let controller_static = arr::<32>(&inputs.controller_static, "controllerStatic")?;
    let host_reg_e = arr::<32>(
        &inputs.host_registration_ephemeral,
        "hostRegistrationEphemeral",
    )?;
    let relay_reg_e = arr::<32>(
        &inputs.relay_registration_ephemeral,
        "relayRegistrationEphemeral",
    )?;
    let controller_e = arr::<32>(&inputs.controller_ephemeral, "controllerEphemeral")?;
    let host_e = arr::<32>(&inputs.host_ephemeral, "hostEphemeral")?;
    let token_id = arr::<16>(&inputs.token_id, "tokenId")?;
    let token_secret = arr::<32>(&inputs.token_secret, "tokenSecret")?;
    let session = SessionId(arr::<8>(&inputs.session_id, "sessionId")?);
    let credential = hex::decode(&inputs.credential).map_err(|e| format!("credential: {e}"))?;
    let host_key = public_key(&host_static);
    let wall = UnixTime::from_secs(inputs.now);
    let now = Instant::now();
    let mut frames = Vec::new();

    // The token the host shows as a QR code.
    let token = PairingToken::new(
        host_key,
        token_id,
        token_secret,
        inputs.now + 300,
        inputs.workspace.clone(),
        inputs.relay_url.clone(),
        Some(inputs.host_info.name.clone()),
    )
    .map_err(|e| format!("token: {e}"))?;
    let token_text = token.to_text();
    let scanned = PairingToken::from_text(&token_text).map_err(|e| format!("token: {e}"))?;
    scanned
        .check_expiry(wall)
        .map_err(|e| format!("token: {e}"))?;

    // The relay, and the host's registration (LINK-12).
    let mut relay = Relay::new(
        RelayConfig::default()
            .with_workspace(&inputs.workspace, WorkspaceConfig::new(&credential, true)),
    );
    let mut rng = || relay_reg_e;
    let host_link = relay.handle_link_opened(now);
    let (registration, msg1) =
        HostRegistration::start_with_ephemeral(&host_static, &inputs.workspace, host_reg_e)
            .map_err(|e| format!("registration: {e}"))?;
    let hello = encode(&RelayFrame::Hello {
        version: 1,
        role: Role::Host,
        workspace: inputs.workspace.clone(),
        credential: credential.clone(),
        registration: msg1.to_vec(),
    })?;
    frames.push(record("host", "toRelay", &hello));
    relay.handle_frame(host_link, &hello, now, &mut rng);
    let RelayFrame::HostChallenge { message } = single(
        drain(&mut relay, host_link, "host", &mut frames),
        "challenge",
    )?
    else {
        return Err("relay did not send HOST_CHALLENGE".into());
    };
    let proof = registration
        .respond(&message)
        .map_err(|e| format!("registration: {e}"))?;
    let proof = encode(&RelayFrame::HostProof {
        message: proof.to_vec(),
    })?;
    frames.push(record("host", "toRelay", &proof));
    relay.handle_frame(host_link, &proof, now, &mut rng);
    if single(drain(&mut relay, host_link, "host", &mut frames), "ready")? != RelayFrame::Ready {
        return Err("relay did not send READY to the host".into());
    }

    // The controller's link.
    let controller_link = relay.handle_link_opened(now);
    let hello = encode(&RelayFrame::Hello {
        version: 1,
        role: Role::Controller,
        workspace: scanned.workspace().to_owned(),
        credential,
        registration: Vec::new(),
    })?;
    frames.push(record("controller", "toRelay", &hello));
    relay.handle_frame(controller_link, &hello, now, &mut rng);
    if single(
        drain(&mut relay, controller_link, "controller", &mut frames),
        "ready",
    )? != RelayFrame::Ready
    {
        return Err("relay did not send READY to the controller".into());
    }

    // The IK handshake with pairing.
    let mut store = MemoryHostStore::new();
    store.add_token(token_id, &token_secret, token.expires_at());
    let mut host = Host::new(HostConfig {
        static_private: host_static,
        workspace: inputs.workspace.clone(),
        host_info: inputs.host_info.clone(),
        remote_access: true,
        confirm_pairing: true,
    });
    host.set_fixed_ephemeral_for_testing(host_e);
    let purpose = Purpose::Pair {
        token_id: *scanned.token_id(),
        token_secret: *scanned.token_secret(),
        device_name: inputs.device_name.clone(),
    };
    let config = ControllerConfig {
        static_private: controller_static,
        host_key: *scanned.host_key(),
        workspace: scanned.workspace().to_owned(),
        session,
        timestamp: Timestamp::next_after(None, wall),
        handshake_timeout: ControllerConfig::default_timeout(&purpose),
        purpose,
    };
    let mut controller =
        Controller::connect_with_fixed_ephemeral_for_testing(config.clone(), now, &controller_e)
            .map_err(|e| format!("controller: {e}"))?;

    let mut plaintexts: Vec<Vec<u8>> = Vec::new();
    // Moves frames controller -> relay -> host and back until quiet; records all.
    let mut pump = |controller: &mut Controller,
                    host: &mut Host,
                    relay: &mut Relay,
                    store: &mut MemoryHostStore,
                    frames: &mut Vec<FrameRecord>|
     -> Result<(), String> {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(f) = controller.poll_transmit() {
                moved = true;
                let bytes = encode(&f)?;
                frames.push(record("controller", "toRelay", &bytes));
                relay.handle_frame(controller_link, &bytes, now, &mut rng);
            }
            while let Some(f) = host.poll_transmit() {
                moved = true;
                let bytes = encode(&f)?;
                frames.push(record("host", "toRelay", &bytes));
                relay.handle_frame(host_link, &bytes, now, &mut rng);
            }
            for bytes in drain(relay, host_link, "host", frames) {
                moved = true;
                match RelayFrame::decode(&bytes).map_err(|e| e.to_string())? {
                    RelayFrame::Incoming { session, handshake } => {
                        host.handle_incoming(session, &handshake, now, wall, store)
                    }
                    RelayFrame::Data { session, payload } => host.handle_data(session, &payload),
                    other => return Err(format!("host got {}", other.type_name())),
                }
            }
            for bytes in drain(relay, controller_link, "controller", frames) {
                moved = true;
                match RelayFrame::decode(&bytes).map_err(|e| e.to_string())? {
                    RelayFrame::Data { payload, .. } => controller.handle_data(&payload),
                    other => return Err(format!("controller got {}", other.type_name())),
                }
            }
            if !moved {
                return Ok(());
            }
        }
        Err("session did not go quiet".into())
    };

    pump(
        &mut controller,
        &mut host,
        &mut relay,
        &mut store,
        &mut frames,
    )?;
    let Some(HostEvent::ConfirmationRequested { code, .. }) = host.poll_event() else {
        return Err("host did not ask for confirmation".into());
    };
    if code != controller.confirmation_code() {
        return Err("confirmation codes differ".into());
    }
    host.confirm_pairing(session, true, wall, &mut store);
    pump(
        &mut controller,
        &mut host,
        &mut relay,
        &mut store,
        &mut frames,
    )?;
    if !controller.is_established() || !host.is_established(session) {
        return Err("handshake did not complete".into());
    }
    while host.poll_event().is_some() {}
    while controller.poll_event().is_some() {}

    // The conversation.
    let mut transport = Vec::new();
    let (mut c_nonce, mut h_nonce) = (0u64, 0u64);
    for (from, text) in conversation() {
        let message = Message::parse(text.as_bytes()).map_err(|e| format!("{text}: {e}"))?;
        let before = frames.len();
        if from == "controller" {
            controller.send(&message).map_err(|e| e.to_string())?;
        } else {
            host.send(session, &message).map_err(|e| e.to_string())?;
        }
        pump(
            &mut controller,
            &mut host,
            &mut relay,
            &mut store,
            &mut frames,
        )?;
        let delivered = if from == "controller" {
            match host.poll_event() {
                Some(HostEvent::Message { message, .. }) => message,
                other => return Err(format!("host: {other:?}")),
            }
        } else {
            match controller.poll_event() {
                Some(ControllerEvent::Message(message)) => message,
                other => return Err(format!("controller: {other:?}")),
            }
        };
        if delivered != message {
            return Err(format!("{text}: delivered differently"));
        }
        // The DATA frame the sender handed the relay carries the ciphertext.
        let sent = frames.get(before).ok_or("no frame recorded")?.hex.clone();
        let Ok(RelayFrame::Data { payload, .. }) =
            RelayFrame::decode(&hex::decode(&sent).unwrap_or_default())
        else {
            return Err("sender did not emit DATA".into());
        };
        let nonce = if from == "controller" {
            c_nonce += 1;
            c_nonce - 1
        } else {
            h_nonce += 1;
            h_nonce - 1
        };
        plaintexts.push(message.to_bytes());
        transport.push(TransportRecord {
            from: from.into(),
            nonce,
            plaintext: String::from_utf8(message.to_bytes()).map_err(|e| e.to_string())?,
            ciphertext: hex::encode(payload),
        });
    }

    // The handshake alone, in the cacophony format, recorded with bare snow from the same
    // inputs; the frames above must carry exactly these messages.
    let payload1 = tether_proto::channel::HandshakePayload::Pair {
        timestamp: config.timestamp,
        token_id,
        token_secret,
        device_name: inputs.device_name.clone(),
    }
    .encode()
    .map_err(|e| e.to_string())?;
    let payload2 = inputs.host_info.encode().map_err(|e| e.to_string())?;
    let prologue = prologue_bytes(&inputs.workspace, &host_key, &session.0);
    let noise = record_handshake(
        &HandshakeKeys {
            init_static: controller_static,
            init_ephemeral: controller_e,
            init_remote_static: host_key,
            init_prologue: prologue.clone(),
            resp_static: host_static,
            resp_ephemeral: host_e,
            resp_prologue: prologue,
        },
        &[payload1, payload2],
    )
    .ok_or("snow refused the handshake")?;
    let carried: Vec<String> = frames
        .iter()
        .filter_map(
            |f| match RelayFrame::decode(&hex::decode(&f.hex).ok()?).ok()? {
                RelayFrame::Open { handshake, .. } if f.direction == "toRelay" => {
                    Some(hex::encode(handshake))
                }
                _ => None,
            },
        )
        .collect();
    if carried.first() != noise.messages.first().map(|m| &m.ciphertext) {
        return Err("OPEN does not carry the recorded message 1".into());
    }
    let message2 =
        frames.iter().find_map(
            |f| match RelayFrame::decode(&hex::decode(&f.hex).ok()?).ok()? {
                RelayFrame::Data { payload, .. }
                    if f.link == "host" && f.direction == "toRelay" =>
                {
                    Some(hex::encode(payload))
                }
                _ => None,
            },
        );
    if message2.as_ref() != noise.messages.get(1).map(|m| &m.ciphertext) {
        return Err("the host's first DATA does not carry the recorded message 2".into());
    }

    Ok(SessionTest {
        tc_id: 1,
        comment: "a phone pairs with a host through a relay (with confirmation), starts a \
                  thread and approves one command"
            .into(),
        flags: vec!["Pairing".into(), "Confirmation".into()],
        result: "valid".into(),
        inputs: inputs.clone(),
        token_text,
        token_binary: hex::encode(token.encode_binary()),
        host_static_public: hex::encode(host_key),
        controller_static_public: hex::encode(public_key(&controller_static)),
        confirmation_code: code,
        frames,
        noise,
        transport,
    })
}

fn file(tests: Vec<SessionTest>) -> SessionFile {
    let mut notes = std::collections::BTreeMap::new();
    notes.insert(
        "Pairing".into(),
        "message 1 is of kind PAIR and carries the token id and secret (spec/04, CHAN-12)".into(),
    );
    notes.insert(
        "Confirmation".into(),
        "the host asks its user to compare the confirmation code before it sends message 2 \
         (CHAN-23, CHAN-24)"
            .into(),
    );
    SessionFile {
        vectors: "session".into(),
        spec_version: 1,
        description: "One whole Tether session, every byte: the pairing token, both relay \
                      links with the host's registration, the IK handshake, and the \
                      JSON-RPC conversation. `frames` lists every relay frame in the order \
                      the relay handled or emitted it; `noise` repeats the handshake in the \
                      cacophony format; `transport` lists the transport messages in sending \
                      order with each sender's nonce."
            .into(),
        notes,
        number_of_tests: tests.len(),
        tests,
    }
}

fn generate() -> String {
    match run(&default_inputs()) {
        Ok(test) => to_json(&file(vec![test])),
        Err(e) => format!("session vector generation failed: {e}\n"),
    }
}

/// Checks that each plaintext is the typed message it claims to be (spec/05).
fn check_typed(transport: &[TransportRecord]) -> Result<(), String> {
    // Methods of requests still unanswered, per direction of the request.
    let mut pending: HashMap<(String, Id), String> = HashMap::new();
    for t in transport {
        let message = Message::parse(t.plaintext.as_bytes()).map_err(|e| e.to_string())?;
        let from_controller = t.from == "controller";
        let typed = match &message {
            Message::Request(r) if from_controller => {
                pending.insert(("controller".into(), r.id.clone()), r.method.clone());
                ClientRequest::from_request(r).map(drop)
            }
            Message::Request(r) => {
                pending.insert(("host".into(), r.id.clone()), r.method.clone());
                ServerRequest::from_request(r).map(drop)
            }
            Message::Notification(n) if from_controller => {
                ClientNotification::from_notification(n).map(drop)
            }
            Message::Notification(n) => ServerNotification::from_notification(n).map(drop),
            Message::Response(r) => {
                let asker = if from_controller {
                    "host"
                } else {
                    "controller"
                };
                let method = pending
                    .remove(&(asker.to_owned(), r.id.clone()))
                    .ok_or_else(|| format!("response to unknown id {:?}", r.id))?;
                check_result(&method, &r.result)
            }
            Message::Error(_) => Ok(()),
        };
        typed.map_err(|e| format!("{}: {e}", t.plaintext))?;
    }
    Ok(())
}

fn check(text: &str) -> Result<usize, String> {
    let parsed: SessionFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    for test in &parsed.tests {
        let again = run(&test.inputs).map_err(|e| format!("tcId {}: {e}", test.tc_id))?;
        let (a, b) = (
            serde_json::to_value(&again).unwrap_or(Value::Null),
            serde_json::to_value(test).unwrap_or(Value::Null),
        );
        if a != b {
            return Err(format!(
                "tcId {}: running the session from its inputs does not reproduce it",
                test.tc_id
            ));
        }
        check_typed(&test.transport).map_err(|e| format!("tcId {}: {e}", test.tc_id))?;
    }
    Ok(parsed.tests.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_session_fails_its_check() {
        let text = generate();
        assert_eq!(check(&text), Ok(1));
        let mut file: SessionFile = serde_json::from_str(&text).unwrap();
        let t = &mut file.tests[0].transport[3];
        t.ciphertext.replace_range(
            0..2,
            if t.ciphertext.starts_with("00") {
                "01"
            } else {
                "00"
            },
        );
        assert!(check(&to_json(&file)).is_err());
        let mut file: SessionFile = serde_json::from_str(&text).unwrap();
        file.tests[0].transport[0].plaintext =
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#.into();
        assert!(check(&to_json(&file)).is_err());
    }
}
