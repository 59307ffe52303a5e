//! Vectors of the secure channel (`spec/04-secure-channel.md`):
//!
//! - `noise-ik.json`: complete Tether IK handshakes (real prologues, real message-1 and
//!   message-2 payloads) followed by transport messages, and named invalid cases.
//! - `noise-rekey.json`: transport messages around the rekey boundary (nonces 0, 1, 65534,
//!   65535, 65536, 65537 in each direction).
//!
//! Every handshake is one [`NoiseHandshake`] object in the field names of the cacophony
//! vectors (`protocol_name`, `init_prologue`, ..., `messages`), so any Noise library can
//! replay it; `ci/crosscheck_noise.py` does, with the Python `noiseprotocol` package.
//! The generator runs bare snow with its default resolver; the checks run the same cases
//! through `tether_proto::channel`, so each side checks the other.

use serde::{Deserialize, Serialize};
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use tether_proto::channel::{
    ChannelError, HandshakePayload, HostInfo, IK_PROTOCOL_NAME, Initiator, PathStyle,
    PendingResponder, Prologue, Responder, Timestamp, Transport,
};
use tether_proto::limits::REKEY_INTERVAL;
use tether_proto::link::SessionId;
use tether_proto::time::UnixTime;

use crate::format::{VectorFile, det_array, to_json};

/// The vector files this module generates and checks.
pub const FILES: &[VectorFile] = &[
    VectorFile {
        name: "noise-ik.json",
        generate: generate_ik,
        check: check_ik,
    },
    VectorFile {
        name: "noise-rekey.json",
        generate: generate_rekey,
        check: check_rekey,
    },
];

/// A point of order 8 on Curve25519 (Wycheproof x25519: `LowOrderPublic`,
/// `ZeroSharedSecret`).
const LOW_ORDER_POINT: [u8; 32] = [
    0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
    0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
];

/// One message of a [`NoiseHandshake`]: what the writer encrypted and the bytes it wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseMessage {
    /// Plaintext payload, hex.
    pub payload: String,
    /// The Noise message, hex.
    pub ciphertext: String,
}

/// One handshake and its transport messages, in the cacophony vector format.
///
/// `messages[0]` is message 1 (initiator to responder), `messages[1]` message 2 (responder
/// to initiator); transport messages follow, alternating, initiator first.
/// `handshake_hash` is the final handshake hash (after message 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseHandshake {
    /// Always `Noise_IK_25519_ChaChaPoly_BLAKE2s`.
    pub protocol_name: String,
    /// Prologue the initiator used, hex.
    pub init_prologue: String,
    /// Initiator static private key, hex.
    pub init_static: String,
    /// Initiator ephemeral private key, hex.
    pub init_ephemeral: String,
    /// The responder static public key the initiator was given, hex.
    pub init_remote_static: String,
    /// Prologue the responder used, hex.
    pub resp_prologue: String,
    /// Responder static private key, hex.
    pub resp_static: String,
    /// Responder ephemeral private key, hex.
    pub resp_ephemeral: String,
    /// Handshake hash after the last handshake message, hex (empty if the handshake did
    /// not complete).
    pub handshake_hash: String,
    /// The messages, in order.
    pub messages: Vec<NoiseMessage>,
}

/// Private keys and prologues of one recorded handshake.
#[derive(Clone, Debug)]
pub struct HandshakeKeys {
    /// Initiator static private key.
    pub init_static: [u8; 32],
    /// Initiator ephemeral private key.
    pub init_ephemeral: [u8; 32],
    /// The responder public key the initiator targets.
    pub init_remote_static: [u8; 32],
    /// Initiator prologue.
    pub init_prologue: Vec<u8>,
    /// Responder static private key.
    pub resp_static: [u8; 32],
    /// Responder ephemeral private key.
    pub resp_ephemeral: [u8; 32],
    /// Responder prologue.
    pub resp_prologue: Vec<u8>,
}

/// The X25519 public key of a private key (snow's default resolver).
pub fn public_key(private: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Some(mut dh) = DefaultResolver.resolve_dh(&DHChoice::Curve25519) {
        dh.set(private);
        out.copy_from_slice(dh.pubkey());
    }
    out
}

/// The Tether IK prologue bytes, built independently of `tether_proto` (spec/04,
/// "Prologue").
pub fn prologue_bytes(workspace: &str, host_key: &[u8; 32], session: &[u8; 8]) -> Vec<u8> {
    let mut p = b"TETHER-IK-V1".to_vec();
    p.push(u8::try_from(workspace.len()).unwrap_or(0));
    p.extend_from_slice(workspace.as_bytes());
    p.extend_from_slice(host_key);
    p.extend_from_slice(session);
    p
}

/// Records a handshake with bare snow (default resolver): `payloads[0]` and `payloads[1]`
/// are the handshake payloads, the rest transport payloads, alternating from the
/// initiator. Stops after message 1 if `payloads` has one element. Returns `None` if snow
/// refuses (it never does for the inputs this module uses).
pub fn record_handshake(keys: &HandshakeKeys, payloads: &[Vec<u8>]) -> Option<NoiseHandshake> {
    let params = IK_PROTOCOL_NAME.parse().ok()?;
    let mut init = snow::Builder::new(params)
        .local_private_key(&keys.init_static)
        .ok()?
        .remote_public_key(&keys.init_remote_static)
        .ok()?
        .prologue(&keys.init_prologue)
        .ok()?
        .fixed_ephemeral_key_for_testing_only(&keys.init_ephemeral)
        .build_initiator()
        .ok()?;
    let params = IK_PROTOCOL_NAME.parse().ok()?;
    let mut resp = snow::Builder::new(params)
        .local_private_key(&keys.resp_static)
        .ok()?
        .prologue(&keys.resp_prologue)
        .ok()?
        .fixed_ephemeral_key_for_testing_only(&keys.resp_ephemeral)
        .build_responder()
        .ok()?;
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 65_535];
    let mut scratch = vec![0u8; 65_535];
    let (p1, rest) = payloads.split_first()?;
    let n = init.write_message(p1, &mut buf).ok()?;
    messages.push(message(p1, buf.get(..n)?));
    let mut handshake_hash = String::new();
    if let Some((p2, transport)) = rest.split_first() {
        resp.read_message(buf.get(..n)?, &mut scratch).ok()?;
        let n = resp.write_message(p2, &mut buf).ok()?;
        messages.push(message(p2, buf.get(..n)?));
        init.read_message(buf.get(..n)?, &mut scratch).ok()?;
        handshake_hash = hex::encode(init.get_handshake_hash());
        let mut init = init.into_transport_mode().ok()?;
        let mut resp = resp.into_transport_mode().ok()?;
        for (i, p) in transport.iter().enumerate() {
            let (w, r) = if i % 2 == 0 {
                (&mut init, &mut resp)
            } else {
                (&mut resp, &mut init)
            };
            let n = w.write_message(p, &mut buf).ok()?;
            messages.push(message(p, buf.get(..n)?));
            r.read_message(buf.get(..n)?, &mut scratch).ok()?;
        }
    }
    Some(NoiseHandshake {
        protocol_name: IK_PROTOCOL_NAME.to_owned(),
        init_prologue: hex::encode(&keys.init_prologue),
        init_static: hex::encode(keys.init_static),
        init_ephemeral: hex::encode(keys.init_ephemeral),
        init_remote_static: hex::encode(keys.init_remote_static),
        resp_prologue: hex::encode(&keys.resp_prologue),
        resp_static: hex::encode(keys.resp_static),
        resp_ephemeral: hex::encode(keys.resp_ephemeral),
        handshake_hash,
        messages,
    })
}

fn message(payload: &[u8], ciphertext: &[u8]) -> NoiseMessage {
    NoiseMessage {
        payload: hex::encode(payload),
        ciphertext: hex::encode(ciphertext),
    }
}

/// The inputs of one side's prologue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrologueInputs {
    /// Workspace id.
    pub workspace: String,
    /// Session id, hex (8 bytes).
    pub session_id: String,
    /// Host static public key as this side knows it, hex.
    pub host_key: String,
}

/// Both sides' prologue inputs (they differ only in the wrong-prologue cases).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrologueContext {
    /// The controller's.
    pub initiator: PrologueInputs,
    /// The host's.
    pub responder: PrologueInputs,
}

/// A message delivered out of the normal order, in an invalid case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `"initiator"` or `"responder"`: who receives `message`.
    pub to: String,
    /// How many of `noise.messages` both sides processed first.
    pub after_messages: usize,
    /// The message delivered, hex.
    pub message: String,
}

/// The expected error of an invalid case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedError {
    /// The `ChannelError` variant name.
    pub name: String,
    /// Its requirement id.
    pub requirement: String,
}

/// One case of `noise-ik.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IkTest {
    /// 1-based case id.
    pub tc_id: usize,
    /// What the case shows.
    pub comment: String,
    /// Flags, explained in the file's `notes`.
    pub flags: Vec<String>,
    /// `valid` or `invalid`.
    pub result: String,
    /// What each side fed into its prologue.
    pub prologue: PrologueContext,
    /// Handshake hash after message 1, hex (`CHAN-23`), where message 1 is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_hash_after_msg1: Option<String>,
    /// The confirmation code both screens show (`CHAN-23`), where message 1 is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_code: Option<String>,
    /// The handshake, in cacophony field names.
    pub noise: NoiseHandshake,
    /// Invalid cases: the bad message and who receives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<Delivery>,
    /// Invalid cases: what the receiver must fail with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExpectedError>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorFileJson<T> {
    vectors: String,
    spec_version: u32,
    description: String,
    notes: std::collections::BTreeMap<String, String>,
    number_of_tests: usize,
    tests: Vec<T>,
}

fn host_info(name: &str, windows: bool) -> HostInfo {
    HostInfo {
        name: name.to_owned(),
        os: if windows { "windows" } else { "linux" }.to_owned(),
        arch: if windows { "x86_64" } else { "aarch64" }.to_owned(),
        shell: if windows { "pwsh" } else { "bash" }.to_owned(),
        path_style: if windows {
            PathStyle::Windows
        } else {
            PathStyle::Posix
        },
        capabilities: vec![
            "agent.test".to_owned(),
            "command.exec".to_owned(),
            "pairing.confirm".to_owned(),
        ],
        protocol: "tether/1".to_owned(),
    }
}

fn transport_payloads() -> Vec<Vec<u8>> {
    [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"vectors","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"protocol":"tether/1"}}"#,
        r#"{"jsonrpc":"2.0","method":"initialized"}"#,
        r#"{"jsonrpc":"2.0","method":"turn/started","params":{"threadId":"t1"}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"thread/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":2,"result":{"data":[]}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Keys and context of a valid handshake labelled `label`.
struct Scenario {
    workspace: &'static str,
    session: [u8; 8],
    keys: HandshakeKeys,
}

fn scenario(label: &str, workspace: &'static str, session_label: &str) -> Scenario {
    // The controller and host keep their static keys across sessions; ephemerals and
    // session ids are per handshake.
    let init_static = det_array::<32>("noise-ik/controller/static");
    let resp_static = det_array::<32>("noise-ik/host/static");
    let host_key = public_key(&resp_static);
    let session = det_array::<8>(&format!("noise-ik/{session_label}/session-id"));
    let prologue = prologue_bytes(workspace, &host_key, &session);
    Scenario {
        workspace,
        session,
        keys: HandshakeKeys {
            init_static,
            init_ephemeral: det_array::<32>(&format!("noise-ik/{label}/init-ephemeral")),
            init_remote_static: host_key,
            init_prologue: prologue.clone(),
            resp_static,
            resp_ephemeral: det_array::<32>(&format!("noise-ik/{label}/resp-ephemeral")),
            resp_prologue: prologue,
        },
    }
}

fn inputs(workspace: &str, session: &[u8; 8], host_key: &[u8; 32]) -> PrologueInputs {
    PrologueInputs {
        workspace: workspace.to_owned(),
        session_id: hex::encode(session),
        host_key: hex::encode(host_key),
    }
}

fn same_context(s: &Scenario) -> PrologueContext {
    let i = inputs(s.workspace, &s.session, &s.keys.init_remote_static);
    PrologueContext {
        initiator: i.clone(),
        responder: i,
    }
}

fn session_payload(secs: u64, nanos: u32) -> Vec<u8> {
    HandshakePayload::Session {
        timestamp: Timestamp::from_unix(UnixTime::new(secs, nanos)),
    }
    .encode()
    .unwrap_or_default()
}

fn pair_payload() -> Vec<u8> {
    HandshakePayload::Pair {
        timestamp: Timestamp::from_unix(UnixTime::new(1_790_000_000, 250_000_000)),
        token_id: det_array::<16>("noise-ik/pair/token-id"),
        token_secret: det_array::<32>("noise-ik/pair/token-secret"),
        device_name: "Ada's phone".to_owned(),
    }
    .encode()
    .unwrap_or_default()
}

/// Handshake hash after message 1, computed with bare snow.
fn h1_of(keys: &HandshakeKeys, payload: &[u8]) -> Option<[u8; 32]> {
    let params = IK_PROTOCOL_NAME.parse().ok()?;
    let mut init = snow::Builder::new(params)
        .local_private_key(&keys.init_static)
        .ok()?
        .remote_public_key(&keys.init_remote_static)
        .ok()?
        .prologue(&keys.init_prologue)
        .ok()?
        .fixed_ephemeral_key_for_testing_only(&keys.init_ephemeral)
        .build_initiator()
        .ok()?;
    let mut buf = vec![0u8; 1024];
    init.write_message(payload, &mut buf).ok()?;
    init.get_handshake_hash().try_into().ok()
}

/// The confirmation code, computed independently of `tether_proto` (`CHAN-23`).
fn code_of(h1: &[u8; 32]) -> String {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new();
    h.update(b"TETHER-CONFIRM-V1");
    h.update(h1);
    let d = h.finalize();
    let mut first = [0u8; 4];
    first.copy_from_slice(d.get(..4).unwrap_or(&[0; 4]));
    format!("{:06}", u32::from_be_bytes(first) % 1_000_000)
}

fn valid_case(comment: &str, flags: &[&str], s: &Scenario, p1: Vec<u8>, info: &HostInfo) -> IkTest {
    let mut payloads = vec![p1.clone(), info.encode().unwrap_or_default()];
    payloads.extend(transport_payloads());
    let h1 = h1_of(&s.keys, &p1).unwrap_or_default();
    IkTest {
        tc_id: 0,
        comment: comment.to_owned(),
        flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        result: "valid".to_owned(),
        prologue: same_context(s),
        handshake_hash_after_msg1: Some(hex::encode(h1)),
        confirmation_code: Some(code_of(&h1)),
        noise: record_handshake(&s.keys, &payloads).unwrap_or_else(empty_handshake),
        deliver: None,
        error: None,
    }
}

fn empty_handshake() -> NoiseHandshake {
    NoiseHandshake {
        protocol_name: String::new(),
        init_prologue: String::new(),
        init_static: String::new(),
        init_ephemeral: String::new(),
        init_remote_static: String::new(),
        resp_prologue: String::new(),
        resp_static: String::new(),
        resp_ephemeral: String::new(),
        handshake_hash: String::new(),
        messages: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn invalid_case(
    comment: &str,
    flags: &[&str],
    prologue: PrologueContext,
    noise: NoiseHandshake,
    to: &str,
    after_messages: usize,
    message: Vec<u8>,
    error: (&str, &str),
) -> IkTest {
    IkTest {
        tc_id: 0,
        comment: comment.to_owned(),
        flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        result: "invalid".to_owned(),
        prologue,
        handshake_hash_after_msg1: None,
        confirmation_code: None,
        noise,
        deliver: Some(Delivery {
            to: to.to_owned(),
            after_messages,
            message: hex::encode(message),
        }),
        error: Some(ExpectedError {
            name: error.0.to_owned(),
            requirement: error.1.to_owned(),
        }),
    }
}

fn ciphertext(noise: &NoiseHandshake, i: usize) -> Vec<u8> {
    noise
        .messages
        .get(i)
        .and_then(|m| hex::decode(&m.ciphertext).ok())
        .unwrap_or_default()
}

fn ik_tests() -> Vec<IkTest> {
    let mut tests = Vec::new();
    let linux = host_info("build-box", false);
    let s1 = scenario("session-1", "acme", "session-1");
    let p1 = session_payload(1_790_000_000, 123_456_789);
    tests.push(valid_case(
        "SESSION handshake of a paired controller, then three transport messages each way",
        &["Session"],
        &s1,
        p1.clone(),
        &linux,
    ));
    let sp = scenario("pair", "acme", "pair");
    tests.push(valid_case(
        "PAIR handshake with token id, secret and device name, then three transport messages each way",
        &["Pair", "Confirmation"],
        &sp,
        pair_payload(),
        &linux,
    ));
    let s2 = scenario("session-2", "acme", "session-2");
    tests.push(valid_case(
        "a second SESSION of the same controller and host: new session id, ephemerals and a later timestamp",
        &["Session"],
        &s2,
        session_payload(1_790_000_060, 0),
        &linux,
    ));
    let sw = scenario("windows", "team.dev-2", "windows");
    tests.push(valid_case(
        "SESSION handshake in another workspace with a Windows host",
        &["Session"],
        &sw,
        session_payload(1_790_000_000, 999_999_999),
        &host_info("WIN-BOX", true),
    ));

    // Wrong prologues: the controller's prologue differs from the host's in one input.
    let host_key = s1.keys.init_remote_static;
    let other_session = det_array::<8>("noise-ik/wrong/session-id");
    let wrong: [(&str, PrologueInputs); 2] = [
        (
            "the host's prologue has another session id (message spliced into another session)",
            inputs("acme", &other_session, &host_key),
        ),
        (
            "the host's prologue has another workspace",
            inputs("other", &s1.session, &host_key),
        ),
    ];
    for (comment, resp_inputs) in wrong {
        let session: [u8; 8] = hex::decode(&resp_inputs.session_id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .unwrap_or_default();
        let mut keys = s1.keys.clone();
        keys.resp_prologue = prologue_bytes(&resp_inputs.workspace, &host_key, &session);
        let noise =
            record_handshake(&keys, std::slice::from_ref(&p1)).unwrap_or_else(empty_handshake);
        let msg1 = ciphertext(&noise, 0);
        tests.push(invalid_case(
            comment,
            &["WrongPrologue"],
            PrologueContext {
                initiator: inputs(s1.workspace, &s1.session, &host_key),
                responder: resp_inputs,
            },
            noise,
            "responder",
            0,
            msg1,
            ("HandshakeFailed", "CHAN-8"),
        ));
    }
    {
        // The controller believes in another host key: its prologue and its `es` differ.
        let other_host = public_key(&det_array::<32>("noise-ik/wrong/host-static"));
        let mut keys = s1.keys.clone();
        keys.init_remote_static = other_host;
        keys.init_prologue = prologue_bytes("acme", &other_host, &s1.session);
        let noise =
            record_handshake(&keys, std::slice::from_ref(&p1)).unwrap_or_else(empty_handshake);
        let msg1 = ciphertext(&noise, 0);
        tests.push(invalid_case(
            "message 1 made for another host key reaches this host",
            &["WrongPrologue", "WrongHostKey"],
            PrologueContext {
                initiator: inputs("acme", &s1.session, &other_host),
                responder: inputs("acme", &s1.session, &host_key),
            },
            noise,
            "responder",
            0,
            msg1,
            ("HandshakeFailed", "CHAN-8"),
        ));
    }
    let base1 =
        record_handshake(&s1.keys, std::slice::from_ref(&p1)).unwrap_or_else(empty_handshake);
    let msg1 = ciphertext(&base1, 0);
    for (byte, comment) in [
        (
            40usize,
            "message 1 with one bit flipped in the encrypted static key",
        ),
        (
            msg1.len().saturating_sub(1),
            "message 1 with one bit flipped in the payload tag",
        ),
    ] {
        let mut bad = msg1.clone();
        if let Some(b) = bad.get_mut(byte) {
            *b ^= 0x01;
        }
        tests.push(invalid_case(
            comment,
            &["BitFlip"],
            same_context(&s1),
            base1.clone(),
            "responder",
            0,
            bad,
            ("HandshakeFailed", "CHAN-8"),
        ));
    }
    {
        let mut bad = msg1.clone();
        if let Some(e) = bad.get_mut(..32) {
            e.copy_from_slice(&LOW_ORDER_POINT);
        }
        tests.push(invalid_case(
            "message 1 whose ephemeral is a point of order 8 (es is all zeros)",
            &["LowOrder"],
            same_context(&s1),
            base1.clone(),
            "responder",
            0,
            bad,
            ("LowOrderKey", "CHAN-7"),
        ));
    }
    {
        let two = record_handshake(&s1.keys, &[p1.clone(), linux.encode().unwrap_or_default()])
            .unwrap_or_else(empty_handshake);
        let mut bad = ciphertext(&two, 1);
        if let Some(e) = bad.get_mut(..32) {
            e.copy_from_slice(&LOW_ORDER_POINT);
        }
        tests.push(invalid_case(
            "message 2 whose ephemeral is a point of order 8 (ee is all zeros)",
            &["LowOrder"],
            same_context(&s1),
            two,
            "initiator",
            1,
            bad,
            ("LowOrderKey", "CHAN-7"),
        ));
    }
    {
        let mut payloads = vec![p1.clone(), linux.encode().unwrap_or_default()];
        payloads.extend(transport_payloads().into_iter().take(2));
        let full = record_handshake(&s1.keys, &payloads).unwrap_or_else(empty_handshake);
        let replay = ciphertext(&full, 2);
        tests.push(invalid_case(
            "the controller's first transport message (nonce 0) delivered again after the host read it",
            &["Replay"],
            same_context(&s1),
            full.clone(),
            "responder",
            4,
            replay,
            ("DecryptFailed", "CHAN-18"),
        ));
        let mut flipped = ciphertext(&full, 3);
        if let Some(b) = flipped.get_mut(0) {
            *b ^= 0x80;
        }
        tests.push(invalid_case(
            "the host's first transport message with one bit flipped",
            &["BitFlip"],
            same_context(&s1),
            full,
            "initiator",
            3,
            flipped,
            ("DecryptFailed", "CHAN-18"),
        ));
    }
    {
        /// (comment, flag, payload, expected error).
        type BadPayloadCase = (
            &'static str,
            &'static str,
            Vec<u8>,
            (&'static str, &'static str),
        );
        let bad_payloads: [BadPayloadCase; 3] = [
            (
                "message 1 decrypts but its payload version is 0x02",
                "BadPayload",
                {
                    let mut p = p1.clone();
                    if let Some(v) = p.get_mut(0) {
                        *v = 0x02;
                    }
                    p
                },
                ("BadPayload", "CHAN-3"),
            ),
            (
                "message 1 decrypts but its SESSION payload has a trailing byte",
                "BadPayload",
                {
                    let mut p = p1.clone();
                    p.push(0);
                    p
                },
                ("BadPayload", "CHAN-3"),
            ),
            (
                "message 1 decrypts but its timestamp has 10^9 nanoseconds",
                "BadTimestamp",
                {
                    let mut p = p1.clone();
                    if let Some(n) = p.get_mut(10..14) {
                        n.copy_from_slice(&1_000_000_000u32.to_be_bytes());
                    }
                    p
                },
                ("BadTimestamp", "CHAN-4"),
            ),
        ];
        for (comment, flag, payload, error) in bad_payloads {
            let noise = record_handshake(&s1.keys, &[payload]).unwrap_or_else(empty_handshake);
            let msg = ciphertext(&noise, 0);
            tests.push(invalid_case(
                comment,
                &[flag],
                same_context(&s1),
                noise,
                "responder",
                0,
                msg,
                error,
            ));
        }
        let bad_info = b"\x01{\"name\":\"x\",\"os\":\"linux\",\"arch\":\"x86_64\",\"shell\":\"sh\",\"pathStyle\":\"dos\",\"capabilities\":[],\"protocol\":\"tether/1\"}".to_vec();
        let noise =
            record_handshake(&s1.keys, &[p1.clone(), bad_info]).unwrap_or_else(empty_handshake);
        let msg = ciphertext(&noise, 1);
        tests.push(invalid_case(
            "message 2 decrypts but its host info has pathStyle \"dos\"",
            &["BadHostInfo"],
            same_context(&s1),
            noise,
            "initiator",
            1,
            msg,
            ("BadHostInfo", "CHAN-6"),
        ));
    }
    for (i, t) in tests.iter_mut().enumerate() {
        t.tc_id = i + 1;
    }
    tests
}

fn notes(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn generate_ik() -> String {
    let tests = ik_tests();
    to_json(&VectorFileJson {
        vectors: "noise-ik".to_owned(),
        spec_version: 1,
        description: "Tether secure-channel handshakes (Noise_IK_25519_ChaChaPoly_BLAKE2s) with real prologues and payloads, then transport messages alternating from the initiator; `noise` holds each handshake in the cacophony vector format. Invalid cases: both sides process `noise.messages[..deliver.afterMessages]`, then `deliver.message` reaches `deliver.to`, which must fail with `error`.".to_owned(),
        notes: notes(&[
            ("Session", "message 1 carries a SESSION payload (kind 0x00) of an already paired controller"),
            ("Pair", "message 1 carries a PAIR payload (kind 0x01): token id, token secret, device name"),
            ("Confirmation", "handshakeHashAfterMsg1 and confirmationCode show the CHAN-23 derivation"),
            ("WrongPrologue", "controller and host built different prologues (CHAN-2): message 1 does not decrypt"),
            ("WrongHostKey", "the controller encrypted to another host key"),
            ("BitFlip", "one bit of a message was flipped in transit"),
            ("LowOrder", "an ephemeral key was replaced by a point of order 8: the DH output is all zeros (CHAN-7)"),
            ("Replay", "a transport message delivered a second time (CHAN-17)"),
            ("BadPayload", "message 1 decrypts but its payload breaks the CHAN-3 layout"),
            ("BadTimestamp", "message 1 decrypts but its TAI64N timestamp is malformed (CHAN-4)"),
            ("BadHostInfo", "message 2 decrypts but its host info is malformed (CHAN-6)"),
        ]),
        number_of_tests: tests.len(),
        tests,
    })
}

// ---------------------------------------------------------------------------------------
// Checks: every case through tether_proto::channel.

fn unhex(s: &str, what: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("{what}: bad hex: {e}"))
}

fn unhex32(s: &str, what: &str) -> Result<[u8; 32], String> {
    unhex(s, what)?
        .try_into()
        .map_err(|_| format!("{what}: not 32 bytes"))
}

fn prologue_of(i: &PrologueInputs) -> Result<Prologue, String> {
    let session: [u8; 8] = unhex(&i.session_id, "sessionId")?
        .try_into()
        .map_err(|_| "sessionId: not 8 bytes".to_owned())?;
    Prologue::new(
        &i.workspace,
        &unhex32(&i.host_key, "hostKey")?,
        SessionId(session),
    )
    .map_err(|e| format!("prologue: {e}"))
}

/// Tether-side state while replaying a [`NoiseHandshake`].
struct Replay {
    initiator: Option<Initiator>,
    responder: Option<Responder>,
    pending: Option<PendingResponder>,
    init_t: Option<Transport>,
    resp_t: Option<Transport>,
}

fn expect_bytes(got: &[u8], want: &str, what: &str) -> Result<(), String> {
    if hex::encode(got) == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: bytes differ:\n  got  {}\n  want {want}",
            hex::encode(got)
        ))
    }
}

/// Replays `noise` through tether_proto: the writer of each message must produce its
/// bytes; the reader processes it if its index is below `read_limit`.
fn replay(
    noise: &NoiseHandshake,
    context: &PrologueContext,
    read_limit: usize,
) -> Result<Replay, String> {
    if noise.protocol_name != IK_PROTOCOL_NAME {
        return Err(format!("protocol_name {}", noise.protocol_name));
    }
    let ip = prologue_of(&context.initiator)?;
    let rp = prologue_of(&context.responder)?;
    expect_bytes(ip.as_bytes(), &noise.init_prologue, "init_prologue")?;
    expect_bytes(rp.as_bytes(), &noise.resp_prologue, "resp_prologue")?;
    let init_s = unhex32(&noise.init_static, "init_static")?;
    let init_e = unhex32(&noise.init_ephemeral, "init_ephemeral")?;
    let init_rs = unhex32(&noise.init_remote_static, "init_remote_static")?;
    let resp_s = unhex32(&noise.resp_static, "resp_static")?;
    let resp_e = unhex32(&noise.resp_ephemeral, "resp_ephemeral")?;
    let mut st = Replay {
        initiator: None,
        responder: Some(Responder::new(&resp_s, &rp).with_fixed_ephemeral_for_testing(&resp_e)),
        pending: None,
        init_t: None,
        resp_t: None,
    };
    for (i, m) in noise.messages.iter().enumerate() {
        let payload = unhex(&m.payload, "payload")?;
        let ct = unhex(&m.ciphertext, "ciphertext")?;
        let read = i < read_limit;
        match i {
            0 => {
                // A payload Tether would not send (the BadPayload cases) is written by the
                // generator's bare snow only.
                if let Ok(p) = HandshakePayload::decode(&payload) {
                    let init = Initiator::new_with_fixed_ephemeral_for_testing(
                        &init_s, &init_rs, &ip, &p, &init_e,
                    )
                    .map_err(|e| format!("message 1: initiator: {e}"))?;
                    expect_bytes(init.message1(), &m.ciphertext, "message 1")?;
                    st.initiator = Some(init);
                }
                if read {
                    let r = st.responder.take().ok_or("no responder")?;
                    let pending = r
                        .read_message1(&ct)
                        .map_err(|e| format!("message 1: responder: {e}"))?;
                    if pending.payload().encode().ok().as_deref() != Some(&payload[..]) {
                        return Err("message 1: decoded payload differs".to_owned());
                    }
                    if pending.remote_static()[..] != public_key(&init_s)[..] {
                        return Err("message 1: remote static differs".to_owned());
                    }
                    st.pending = Some(pending);
                }
            }
            1 => {
                if let Ok(info) = HostInfo::decode(&payload) {
                    let pending = st.pending.take().ok_or("message 2 before message 1")?;
                    let mut out = Vec::new();
                    let t = pending
                        .write_message2(&info, &mut out)
                        .map_err(|e| format!("message 2: responder: {e}"))?;
                    expect_bytes(&out, &m.ciphertext, "message 2")?;
                    st.resp_t = Some(t);
                }
                if read {
                    let init = st.initiator.take().ok_or("message 2 without initiator")?;
                    let (t, info) = init
                        .read_message2(&ct)
                        .map_err(|e| format!("message 2: initiator: {e}"))?;
                    if info.encode().ok().as_deref() != Some(&payload[..]) {
                        return Err("message 2: decoded host info differs".to_owned());
                    }
                    expect_bytes(t.handshake_hash(), &noise.handshake_hash, "handshake_hash")?;
                    st.init_t = Some(t);
                }
            }
            _ => {
                let from_initiator = i % 2 == 0;
                let (w, r) = if from_initiator {
                    (&mut st.init_t, &mut st.resp_t)
                } else {
                    (&mut st.resp_t, &mut st.init_t)
                };
                let w = w.as_mut().ok_or("transport before handshake")?;
                let mut out = Vec::new();
                w.encrypt(&payload, &mut out)
                    .map_err(|e| format!("transport {i}: {e}"))?;
                expect_bytes(&out, &m.ciphertext, &format!("transport message {i}"))?;
                if read {
                    let r = r.as_mut().ok_or("transport before handshake")?;
                    let mut plain = Vec::new();
                    r.decrypt(&ct, &mut plain)
                        .map_err(|e| format!("transport {i}: {e}"))?;
                    if plain != payload {
                        return Err(format!("transport {i}: plaintext differs"));
                    }
                }
            }
        }
    }
    Ok(st)
}

fn deliver(st: &mut Replay, d: &Delivery) -> Result<(), ChannelError> {
    let msg = hex::decode(&d.message).unwrap_or_default();
    let to_responder = d.to == "responder";
    match (d.after_messages, to_responder) {
        (0, true) => st
            .responder
            .take()
            .ok_or(ChannelError::Closed)?
            .read_message1(&msg)
            .map(|_| ()),
        (1, false) => st
            .initiator
            .take()
            .ok_or(ChannelError::Closed)?
            .read_message2(&msg)
            .map(|_| ()),
        (_, true) => st
            .resp_t
            .as_mut()
            .ok_or(ChannelError::Closed)?
            .decrypt(&msg, &mut Vec::new())
            .map(|_| ()),
        (_, false) => st
            .init_t
            .as_mut()
            .ok_or(ChannelError::Closed)?
            .decrypt(&msg, &mut Vec::new())
            .map(|_| ()),
    }
}

fn check_ik(text: &str) -> Result<usize, String> {
    let file: VectorFileJson<IkTest> =
        serde_json::from_str(text).map_err(|e| format!("parse: {e}"))?;
    if file.number_of_tests != file.tests.len() {
        return Err("numberOfTests does not match".to_owned());
    }
    for t in &file.tests {
        let id = t.tc_id;
        let fail = |e: String| format!("tcId {id} ({}): {e}", t.comment);
        match (t.result.as_str(), &t.deliver, &t.error) {
            ("valid", None, None) => {
                let st = replay(&t.noise, &t.prologue, usize::MAX).map_err(fail)?;
                let (Some(it), Some(rt)) = (&st.init_t, &st.resp_t) else {
                    return Err(fail("handshake did not complete".to_owned()));
                };
                if it.handshake_hash() != rt.handshake_hash() {
                    return Err(fail("handshake hashes differ".to_owned()));
                }
                // CHAN-23: recompute h1 and the code through tether_proto.
                let ip = prologue_of(&t.prologue.initiator).map_err(fail)?;
                let m0 = t
                    .noise
                    .messages
                    .first()
                    .ok_or_else(|| fail("no messages".into()))?;
                let p = HandshakePayload::decode(&unhex(&m0.payload, "payload").map_err(fail)?)
                    .map_err(|e| fail(e.to_string()))?;
                let init = Initiator::new_with_fixed_ephemeral_for_testing(
                    &unhex32(&t.noise.init_static, "s").map_err(fail)?,
                    &unhex32(&t.noise.init_remote_static, "rs").map_err(fail)?,
                    &ip,
                    &p,
                    &unhex32(&t.noise.init_ephemeral, "e").map_err(fail)?,
                )
                .map_err(|e| fail(e.to_string()))?;
                if t.handshake_hash_after_msg1.as_deref()
                    != Some(&hex::encode(init.handshake_hash_after_msg1())[..])
                    || t.confirmation_code.as_deref() != Some(&init.confirmation_code()[..])
                {
                    return Err(fail(
                        "handshake hash after message 1 or code differs".into(),
                    ));
                }
            }
            ("invalid", Some(d), Some(want)) => {
                let mut st = replay(&t.noise, &t.prologue, d.after_messages).map_err(fail)?;
                match deliver(&mut st, d) {
                    Ok(()) => return Err(fail("delivered message was accepted".to_owned())),
                    Err(e) if e.name() == want.name && e.requirement() == want.requirement => {}
                    Err(e) => {
                        return Err(fail(format!(
                            "got {} ({}), want {} ({})",
                            e.name(),
                            e.requirement(),
                            want.name,
                            want.requirement
                        )));
                    }
                }
            }
            _ => return Err(fail("inconsistent result/deliver/error".to_owned())),
        }
    }
    Ok(file.tests.len())
}

// ---------------------------------------------------------------------------------------
// noise-rekey.json

/// One transport message of `noise-rekey.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RekeyMessage {
    /// `initiatorToResponder` or `responderToInitiator`.
    pub direction: String,
    /// The message's nonce in its direction.
    pub nonce: u64,
    /// How many times this direction's cipher was rekeyed before this message
    /// (`nonce / 65536`).
    pub rekeyed_before: u64,
    /// Plaintext, hex.
    pub payload: String,
    /// The Noise transport message, hex.
    pub ciphertext: String,
}

/// One case of `noise-rekey.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RekeyTest {
    /// 1-based case id.
    pub tc_id: usize,
    /// What the case shows.
    pub comment: String,
    /// Flags.
    pub flags: Vec<String>,
    /// Always `valid`.
    pub result: String,
    /// Messages per direction between rekeys.
    pub rekey_interval: u64,
    /// Prologue inputs of both sides.
    pub prologue: PrologueContext,
    /// The handshake (two messages), in cacophony field names.
    pub noise: NoiseHandshake,
    /// Transport messages, in the order they were sent.
    pub transport: Vec<RekeyMessage>,
}

const REKEY_NONCES: [u64; 6] = [0, 1, 65_534, 65_535, 65_536, 65_537];

fn rekey_tests() -> Vec<RekeyTest> {
    let s = scenario("rekey", "acme", "rekey");
    let p1 = session_payload(1_790_000_100, 0);
    let info = host_info("build-box", false).encode().unwrap_or_default();
    let noise =
        record_handshake(&s.keys, &[p1.clone(), info.clone()]).unwrap_or_else(empty_handshake);
    let mut transport = Vec::new();
    if let Some(pair) = stateless_pair(&s.keys, &p1, &info) {
        let (mut init, mut resp) = pair;
        let mut rekeyed = [0u64; 2];
        for nonce in REKEY_NONCES {
            for (dir, name) in [
                (0usize, "initiatorToResponder"),
                (1, "responderToInitiator"),
            ] {
                let w = if dir == 0 { &mut init } else { &mut resp };
                let wanted = nonce / REKEY_INTERVAL;
                while rekeyed.get(dir).copied().unwrap_or(wanted) < wanted {
                    w.rekey_outgoing();
                    if let Some(r) = rekeyed.get_mut(dir) {
                        *r += 1;
                    }
                }
                let text = format!(
                    "{{\"jsonrpc\":\"2.0\",\"method\":\"tether/test\",\"params\":{{\"direction\":\"{name}\",\"nonce\":{nonce}}}}}"
                );
                let mut buf = vec![0u8; text.len() + 16];
                let n = w
                    .write_message(nonce, text.as_bytes(), &mut buf)
                    .unwrap_or(0);
                transport.push(RekeyMessage {
                    direction: name.to_owned(),
                    nonce,
                    rekeyed_before: wanted,
                    payload: hex::encode(text.as_bytes()),
                    ciphertext: hex::encode(buf.get(..n).unwrap_or_default()),
                });
            }
        }
    }
    vec![RekeyTest {
        tc_id: 1,
        comment: "SESSION handshake, then transport messages at nonces 0, 1, 65534, 65535, 65536 and 65537 in each direction; each direction is rekeyed once, after nonce 65535, and nonces keep counting".to_owned(),
        flags: vec!["Rekey".to_owned()],
        result: "valid".to_owned(),
        rekey_interval: REKEY_INTERVAL,
        prologue: same_context(&s),
        noise,
        transport,
    }]
}

/// The handshake of `keys` on bare snow, in stateless transport mode (nonces chosen by
/// the caller): (initiator, responder).
fn stateless_pair(
    keys: &HandshakeKeys,
    p1: &[u8],
    p2: &[u8],
) -> Option<(snow::StatelessTransportState, snow::StatelessTransportState)> {
    let mut init = snow::Builder::new(IK_PROTOCOL_NAME.parse().ok()?)
        .local_private_key(&keys.init_static)
        .ok()?
        .remote_public_key(&keys.init_remote_static)
        .ok()?
        .prologue(&keys.init_prologue)
        .ok()?
        .fixed_ephemeral_key_for_testing_only(&keys.init_ephemeral)
        .build_initiator()
        .ok()?;
    let mut resp = snow::Builder::new(IK_PROTOCOL_NAME.parse().ok()?)
        .local_private_key(&keys.resp_static)
        .ok()?
        .prologue(&keys.resp_prologue)
        .ok()?
        .fixed_ephemeral_key_for_testing_only(&keys.resp_ephemeral)
        .build_responder()
        .ok()?;
    let mut buf = vec![0u8; 8192];
    let mut scratch = vec![0u8; 8192];
    let n = init.write_message(p1, &mut buf).ok()?;
    resp.read_message(buf.get(..n)?, &mut scratch).ok()?;
    let n = resp.write_message(p2, &mut buf).ok()?;
    init.read_message(buf.get(..n)?, &mut scratch).ok()?;
    Some((
        init.into_stateless_transport_mode().ok()?,
        resp.into_stateless_transport_mode().ok()?,
    ))
}

fn generate_rekey() -> String {
    let tests = rekey_tests();
    to_json(&VectorFileJson {
        vectors: "noise-rekey".to_owned(),
        spec_version: 1,
        description: "Tether transport messages around the rekey boundary (CHAN-17, CHAN-19, CHAN-21): after the message with nonce n where (n + 1) % 65536 == 0, both sides apply Noise REKEY to that direction's cipher; nonces keep counting. `noise` holds the handshake in the cacophony vector format; `transport` the messages, each with its direction, nonce and how many rekeys preceded it.".to_owned(),
        notes: notes(&[(
            "Rekey",
            "messages skip from nonce 1 to 65534: a replayer sets its nonce counters (no rekey happens in between) and must rekey after 65535",
        )]),
        number_of_tests: tests.len(),
        tests,
    })
}

fn check_rekey(text: &str) -> Result<usize, String> {
    let file: VectorFileJson<RekeyTest> =
        serde_json::from_str(text).map_err(|e| format!("parse: {e}"))?;
    if file.number_of_tests != file.tests.len() {
        return Err("numberOfTests does not match".to_owned());
    }
    let mut count = 0;
    for t in &file.tests {
        let fail = |e: String| format!("tcId {}: {e}", t.tc_id);
        if t.rekey_interval != REKEY_INTERVAL {
            return Err(fail("rekeyInterval".to_owned()));
        }
        let mut st = replay(&t.noise, &t.prologue, usize::MAX).map_err(fail)?;
        let (Some(init_t), Some(resp_t)) = (st.init_t.as_mut(), st.resp_t.as_mut()) else {
            return Err(fail("handshake did not complete".to_owned()));
        };
        for m in &t.transport {
            let (w, r) = match m.direction.as_str() {
                "initiatorToResponder" => (&mut *init_t, &mut *resp_t),
                "responderToInitiator" => (&mut *resp_t, &mut *init_t),
                other => return Err(fail(format!("direction {other}"))),
            };
            if m.rekeyed_before != m.nonce / REKEY_INTERVAL {
                return Err(fail(format!("nonce {}: rekeyedBefore", m.nonce)));
            }
            if w.sending_nonce() != m.nonce {
                // Skip ahead without crossing a rekey boundary: the counters move, the
                // keys stay (the vector's note says so).
                if w.sending_nonce() / REKEY_INTERVAL != m.nonce / REKEY_INTERVAL
                    || w.sending_nonce() > m.nonce
                {
                    return Err(fail(format!(
                        "nonce {}: cannot skip across a rekey",
                        m.nonce
                    )));
                }
                let (ws, wr) = (w.sending_nonce(), w.receiving_nonce());
                w.set_nonces_for_testing(m.nonce, wr);
                let _ = ws;
                let rs = r.sending_nonce();
                r.set_nonces_for_testing(rs, m.nonce);
            }
            let payload = unhex(&m.payload, "payload").map_err(fail)?;
            let mut out = Vec::new();
            w.encrypt(&payload, &mut out)
                .map_err(|e| fail(format!("nonce {}: {e}", m.nonce)))?;
            expect_bytes(
                &out,
                &m.ciphertext,
                &format!("{} nonce {}", m.direction, m.nonce),
            )
            .map_err(fail)?;
            let mut plain = Vec::new();
            r.decrypt(&out, &mut plain)
                .map_err(|e| fail(format!("nonce {}: {e}", m.nonce)))?;
            if plain != payload {
                return Err(fail(format!("nonce {}: plaintext differs", m.nonce)));
            }
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn generated_files_check() {
        assert!(check_ik(&generate_ik()).unwrap() >= 10);
        assert_eq!(check_rekey(&generate_rekey()).unwrap(), 12);
    }

    #[test]
    fn a_tampered_vector_fails_its_check() {
        let text = generate_ik();
        let first_ct = ik_tests()[0].noise.messages[2].ciphertext.clone();
        let mut flipped = first_ct.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let bad = text.replacen(&first_ct, std::str::from_utf8(&flipped).unwrap(), 1);
        assert!(check_ik(&bad).is_err());
    }
}
