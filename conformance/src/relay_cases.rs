//! The relay cases (`spec/03-relay-link.md`): the runner plays hosts and controllers
//! through the relay under test, speaking raw frames, and asserts the exact close code the
//! spec names for each violation.
//!
//! Case ids are `REQUIREMENT/what`; a case checks the requirement in its id, and may check
//! others on the way (every `GOAWAY` the relay sends must be followed by the end of the
//! link, `LINK-27`; every frame it sends must decode strictly, `LINK-30`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::limits::{MAX_FRAME_LEN, PROTOCOL_VERSION};
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};

use crate::case::{Case, CaseError, CaseResult, Level, Outcome, TargetKind, ensure, fail};
use crate::context::{Context, Credential, RelayAdmin};
use crate::host::BoxFuture;
use crate::link::{
    ANSWER_WAIT, ConnectOptions, HostKey, Incoming, Link, controller, controller_hello,
    handshake_bytes, host, host_hello, host_with, is_loopback_url, open_session, random_bytes,
    random_session,
};
use crate::traffic::describe;

macro_rules! case {
    ($id:literal, $req:literal, $level:ident, $secs:expr, $desc:literal, $body:ident) => {
        slow_case!($id, $req, $level, $secs, false, $desc, $body)
    };
}

macro_rules! slow_case {
    ($id:literal, $req:literal, $level:ident, $secs:expr, $slow:expr, $desc:literal, $body:ident) => {
        Case {
            id: $id,
            requirement: $req,
            level: Level::$level,
            description: $desc,
            timeout: Duration::from_secs($secs),
            target: TargetKind::Relay,
            slow: $slow,
            exclusive: false,
            body: |cx| Box::pin($body(cx)),
        }
    };
}

/// Every relay case, in spec order.
pub fn catalogue() -> Vec<Case> {
    vec![
        case!(
            "LINK-1/text-message-after-ready",
            "LINK-1",
            Must,
            15,
            "a WebSocket text message on a READY link gets GOAWAY PROTOCOL_ERROR",
            text_after_ready
        ),
        case!(
            "LINK-1/text-message-before-hello",
            "LINK-1",
            Must,
            15,
            "a WebSocket text message before HELLO gets GOAWAY PROTOCOL_ERROR",
            text_before_hello
        ),
        case!(
            "LINK-2/plain-ws-only-on-loopback",
            "LINK-2",
            Must,
            5,
            "the relay is not reached over plain ws:// on a non-loopback address",
            plain_ws_loopback
        ),
        case!(
            "LINK-3/unsupported-version",
            "LINK-3",
            Must,
            15,
            "HELLO versions 0, 2 and 255 get GOAWAY UNSUPPORTED_VERSION",
            unsupported_version
        ),
        case!(
            "LINK-3/version-checked-before-credential",
            "LINK-3",
            Must,
            15,
            "HELLO version 2 with a wrong credential gets UNSUPPORTED_VERSION, not AUTH_FAILED",
            version_before_credential
        ),
        case!(
            "LINK-4/empty-message",
            "LINK-4",
            Must,
            15,
            "an empty binary message gets GOAWAY PROTOCOL_ERROR",
            empty_message
        ),
        case!(
            "LINK-4/unknown-type",
            "LINK-4",
            Must,
            15,
            "unassigned type bytes (0x40 after READY, 0xee before HELLO) get GOAWAY PROTOCOL_ERROR",
            unknown_type
        ),
        case!(
            "LINK-4/truncated-frame",
            "LINK-4",
            Must,
            15,
            "a CLOSE without its code and a cut HELLO get GOAWAY PROTOCOL_ERROR",
            truncated_frame
        ),
        case!(
            "LINK-4/trailing-bytes",
            "LINK-4",
            Must,
            15,
            "a PING with a ninth value byte gets GOAWAY PROTOCOL_ERROR",
            trailing_bytes
        ),
        case!(
            "LINK-5/oversize-frame",
            "LINK-5",
            Must,
            15,
            "a 65545-byte DATA frame after READY gets GOAWAY FRAME_TOO_LARGE",
            oversize_frame
        ),
        case!(
            "LINK-5/size-checked-first",
            "LINK-5",
            Must,
            15,
            "65545 bytes of an unassigned type get FRAME_TOO_LARGE, not PROTOCOL_ERROR",
            oversize_unknown_type
        ),
        case!(
            "LINK-6/oversize-before-ready",
            "LINK-6",
            Must,
            15,
            "a 513-byte first frame gets GOAWAY FRAME_TOO_LARGE without being decoded",
            oversize_before_ready
        ),
        case!(
            "LINK-6/oversize-awaiting-proof",
            "LINK-6",
            Must,
            15,
            "a 513-byte frame while the relay waits for HOST_PROOF gets GOAWAY FRAME_TOO_LARGE",
            oversize_awaiting_proof
        ),
        case!(
            "LINK-6/limit-is-512",
            "LINK-6",
            Must,
            15,
            "a malformed 512-byte first frame is decoded: GOAWAY PROTOCOL_ERROR, not FRAME_TOO_LARGE",
            limit_is_512
        ),
        slow_case!(
            "LINK-7/auth-deadline",
            "LINK-7",
            Must,
            30,
            true,
            "a link that sends nothing gets GOAWAY AUTH_TIMEOUT 10 s after opening",
            auth_deadline
        ),
        slow_case!(
            "LINK-7/deadline-awaiting-proof",
            "LINK-7",
            Must,
            30,
            true,
            "a host that never sends HOST_PROOF gets GOAWAY AUTH_TIMEOUT 10 s after opening",
            deadline_awaiting_proof
        ),
        case!(
            "LINK-8/first-frame-not-hello",
            "LINK-8",
            Must,
            15,
            "PING as the first frame gets GOAWAY UNEXPECTED_FRAME",
            first_frame_not_hello
        ),
        case!(
            "LINK-8/second-hello",
            "LINK-8",
            Must,
            15,
            "a second HELLO on a READY link gets GOAWAY UNEXPECTED_FRAME",
            second_hello
        ),
        case!(
            "LINK-8/relay-only-frames",
            "LINK-8",
            Must,
            20,
            "READY, HOST_CHALLENGE and INCOMING from a client get GOAWAY UNEXPECTED_FRAME",
            relay_only_frames
        ),
        case!(
            "LINK-8/open-from-host",
            "LINK-8",
            Must,
            15,
            "OPEN on a host link gets GOAWAY UNEXPECTED_FRAME",
            open_from_host
        ),
        case!(
            "LINK-8/proof-from-controller",
            "LINK-8",
            Must,
            15,
            "HOST_PROOF on a READY controller link gets GOAWAY UNEXPECTED_FRAME",
            proof_from_controller
        ),
        case!(
            "LINK-8/other-frame-awaiting-proof",
            "LINK-8",
            Must,
            15,
            "PING while the relay waits for HOST_PROOF gets GOAWAY UNEXPECTED_FRAME",
            other_awaiting_proof
        ),
        case!(
            "LINK-9/controller-hello-with-registration",
            "LINK-9",
            Must,
            15,
            "a controller HELLO carrying 32 registration bytes gets GOAWAY PROTOCOL_ERROR",
            controller_with_registration
        ),
        case!(
            "LINK-9/host-hello-without-registration",
            "LINK-9",
            Must,
            15,
            "a host HELLO without registration message 1 gets GOAWAY PROTOCOL_ERROR",
            host_without_registration
        ),
        case!(
            "LINK-10/wrong-credential",
            "LINK-10",
            Must,
            15,
            "a wrong credential gets GOAWAY AUTH_FAILED, for a controller and for a host",
            wrong_credential
        ),
        case!(
            "LINK-10/unknown-workspace-like-wrong-credential",
            "LINK-10",
            Must,
            15,
            "an unknown workspace gets the same GOAWAY AUTH_FAILED, byte for byte, as a wrong credential",
            unknown_workspace
        ),
        case!(
            "LINK-10/short-credential",
            "LINK-10",
            Must,
            15,
            "a 15-byte credential is malformed: GOAWAY PROTOCOL_ERROR",
            short_credential
        ),
        case!(
            "LINK-11/remote-access-off",
            "LINK-11",
            Must,
            15,
            "a valid HELLO for a workspace with remote access off gets GOAWAY REMOTE_ACCESS_DISABLED",
            remote_access_off
        ),
        case!(
            "LINK-12/registration-completes",
            "LINK-12",
            Must,
            15,
            "a host completes Noise_XN registration (TETHER-REG-V1 prologue) and gets READY",
            registration_completes
        ),
        case!(
            "LINK-12/bad-proof",
            "LINK-12",
            Must,
            15,
            "a HOST_PROOF with one flipped byte gets GOAWAY REGISTRATION_FAILED",
            bad_proof
        ),
        case!(
            "LINK-12/proof-wrong-length",
            "LINK-12",
            Must,
            15,
            "a 63-byte HOST_PROOF is malformed: GOAWAY PROTOCOL_ERROR",
            proof_wrong_length
        ),
        case!(
            "LINK-13/fresh-challenge",
            "LINK-13",
            Must,
            15,
            "the same registration message 1 on two links gets two different HOST_CHALLENGEs",
            fresh_challenge
        ),
        case!(
            "LINK-13/replayed-proof",
            "LINK-13",
            Must,
            15,
            "a proof recorded on one link, replayed on a new link, gets GOAWAY REGISTRATION_FAILED",
            replayed_proof
        ),
        case!(
            "LINK-14/second-registration-replaces",
            "LINK-14",
            Must,
            15,
            "a second registration of a host key: GOAWAY REPLACED on the old link, CLOSE PEER_GONE for its sessions",
            replaces
        ),
        case!(
            "LINK-15/empty-handshake",
            "LINK-15",
            Must,
            15,
            "an OPEN with an empty handshake gets GOAWAY PROTOCOL_ERROR",
            empty_handshake
        ),
        case!(
            "LINK-15/oversize-handshake",
            "LINK-15",
            Must,
            15,
            "an OPEN with a 513-byte handshake gets GOAWAY PROTOCOL_ERROR",
            oversize_handshake
        ),
        case!(
            "LINK-16/id-in-use-on-controller-link",
            "LINK-16",
            Must,
            15,
            "re-using an open session id on the controller link gets CLOSE SESSION_ID_IN_USE; the session lives on",
            id_in_use_controller
        ),
        case!(
            "LINK-16/id-in-use-on-host-link",
            "LINK-16",
            Must,
            15,
            "a second controller opening an id open on the host gets CLOSE SESSION_ID_IN_USE",
            id_in_use_host
        ),
        case!(
            "LINK-17/offline-host",
            "LINK-17",
            Must,
            15,
            "OPEN to a key no host registered gets CLOSE HOST_UNREACHABLE; the link stays up",
            offline_host
        ),
        case!(
            "LINK-17/host-gone",
            "LINK-17",
            Must,
            15,
            "OPEN to a host whose link has ended gets CLOSE HOST_UNREACHABLE",
            host_gone
        ),
        case!(
            "LINK-17/cross-workspace",
            "LINK-17",
            Must,
            15,
            "OPEN to a host registered in another workspace gets CLOSE HOST_UNREACHABLE and reaches nobody",
            cross_workspace
        ),
        case!(
            "LINK-18/forward-both-ways",
            "LINK-18",
            Must,
            20,
            "INCOMING carries the OPEN's id and 512-byte handshake; DATA up to 65535 bytes crosses both ways intact",
            forward_both_ways
        ),
        case!(
            "LINK-19/unknown-session",
            "LINK-19",
            Must,
            15,
            "DATA for an id the link does not own gets CLOSE UNKNOWN_SESSION with that id; the link stays up",
            unknown_session
        ),
        case!(
            "LINK-19/session-of-another-controller",
            "LINK-19",
            Must,
            15,
            "DATA naming another controller's session gets CLOSE UNKNOWN_SESSION and reaches nobody",
            other_controllers_session
        ),
        case!(
            "LINK-19/close-unknown-ignored",
            "LINK-19",
            Must,
            15,
            "CLOSE for an unknown session id is ignored: no answer, link up",
            close_unknown_ignored
        ),
        case!(
            "LINK-20/controller-session-limit",
            "LINK-20",
            Must,
            20,
            "the 17th session of a controller link gets CLOSE SESSION_LIMIT",
            controller_limit
        ),
        case!(
            "LINK-20/host-session-limit",
            "LINK-20",
            Must,
            30,
            "the 65th session of a host link gets CLOSE SESSION_LIMIT",
            host_limit
        ),
        case!(
            "LINK-21/close-forwarded",
            "LINK-21",
            Must,
            15,
            "CLOSE is forwarded with its id and code both ways, then the session is forgotten",
            close_forwarded
        ),
        case!(
            "LINK-21/peer-gone-on-link-loss",
            "LINK-21",
            Must,
            15,
            "when a link drops, the other end of each of its sessions gets CLOSE PEER_GONE",
            peer_gone_on_loss
        ),
        case!(
            "LINK-21/peer-gone-on-goaway",
            "LINK-21",
            Must,
            15,
            "when a host sends GOAWAY, its sessions' controllers get CLOSE PEER_GONE",
            peer_gone_on_goaway
        ),
        case!(
            "LINK-22/slow-reader",
            "LINK-22",
            Must,
            60,
            "a session whose host stops reading gets CLOSE SLOW_READER at both ends; the links stay up",
            slow_reader
        ),
        case!(
            "LINK-23/link-slow-reader",
            "LINK-23",
            Must,
            90,
            "a host link that stops reading is closed once 4 MiB wait for it; every session gets CLOSE PEER_GONE",
            link_slow_reader
        ),
        slow_case!(
            "LINK-24/idle-timeout",
            "LINK-24",
            Must,
            90,
            true,
            "a READY link that sends nothing gets GOAWAY IDLE_TIMEOUT after 60 s",
            idle_timeout
        ),
        case!(
            "LINK-25/ping-pong",
            "LINK-25",
            Must,
            15,
            "PING gets PONG with the same value, on controller and host links",
            ping_pong
        ),
        slow_case!(
            "LINK-25/relay-sends-ping",
            "LINK-25",
            Must,
            40,
            true,
            "the relay sends PING on a READY link it has sent nothing to for 20 s",
            relay_sends_ping
        ),
        case!(
            "LINK-26/order-and-integrity",
            "LINK-26",
            Must,
            30,
            "600 DATA frames of varied sizes arrive complete, unmodified and in order, with nothing injected",
            order_and_integrity
        ),
        case!(
            "LINK-27/relay-goaway-is-last",
            "LINK-27",
            Must,
            15,
            "after its GOAWAY the relay answers nothing more and closes the WebSocket",
            relay_goaway_is_last
        ),
        case!(
            "LINK-27/nothing-accepted-after-goaway",
            "LINK-27",
            Must,
            15,
            "frames a client sends after its GOAWAY are not forwarded, and the relay closes without a frame",
            nothing_after_client_goaway
        ),
        case!(
            "LINK-30/relay-frames-well-formed",
            "LINK-30",
            Must,
            20,
            "every frame of a registration, session and keepalive re-encodes to the exact bytes received",
            frames_well_formed
        ),
        case!(
            "LINK-31/bad-role",
            "LINK-31",
            Must,
            15,
            "a HELLO with role 0x03 gets GOAWAY PROTOCOL_ERROR",
            bad_role
        ),
        case!(
            "LINK-32/bad-workspace",
            "LINK-32",
            Must,
            15,
            "HELLO workspace ids \"Acme\" and \"\" get GOAWAY PROTOCOL_ERROR",
            bad_workspace
        ),
        case!(
            "LINK-33/empty-data-payload",
            "LINK-33",
            Must,
            15,
            "a DATA frame with no payload gets GOAWAY PROTOCOL_ERROR",
            empty_data
        ),
        case!(
            "LINK-34/goaway-reason-not-utf8",
            "LINK-34",
            Must,
            15,
            "a client GOAWAY whose reason is not UTF-8 gets GOAWAY PROTOCOL_ERROR",
            goaway_bad_utf8
        ),
        case!(
            "LINK-37/credential-changed",
            "LINK-37",
            Must,
            30,
            "changing a workspace's credential ends its host, controller and authenticating links with GOAWAY AUTH_FAILED; the old credential is refused, the new one accepted",
            link37_credential_changed
        ),
        case!(
            "LINK-37/remote-access-off",
            "LINK-37",
            Must,
            30,
            "switching remote access off ends the workspace's links with GOAWAY REMOTE_ACCESS_DISABLED and refuses new HELLOs; switched on, they are accepted again",
            link37_remote_access_off
        ),
        case!(
            "LINK-37/workspace-removed",
            "LINK-37",
            Must,
            30,
            "removing a workspace ends its links with GOAWAY AUTH_FAILED and its credential is refused",
            link37_workspace_removed
        ),
        case!(
            "LINK-37/other-workspaces-untouched",
            "LINK-37",
            Must,
            30,
            "changing, switching off and removing one workspace leaves the sessions of the others passing DATA",
            link37_others_untouched
        ),
        case!(
            "LINK-37/unchanged-keeps-links",
            "LINK-37",
            Must,
            30,
            "setting a workspace to the credential and remote access it already has ends no link",
            link37_unchanged
        ),
        case!(
            "REG-1/unknown-close-code-forwarded",
            "REG-1",
            Must,
            15,
            "a CLOSE with unregistered code 999 is forwarded unchanged",
            unknown_close_code
        ),
        case!(
            "REG-1/unknown-goaway-code",
            "REG-1",
            Must,
            15,
            "a client GOAWAY with unregistered code 999 ends the link like any GOAWAY",
            unknown_goaway_code
        ),
        case!(
            "REG-2/relay-codes-registered",
            "REG-2",
            Must,
            20,
            "the codes the relay sends are registered, in GOAWAY from 0-15 and in CLOSE from 16-31 or 12",
            relay_codes_registered
        ),
        case!(
            "SEC-8/low-order-registration-key",
            "SEC-8",
            Must,
            15,
            "registration message 1 with an all-zero ephemeral gets GOAWAY REGISTRATION_FAILED",
            low_order_registration
        ),
        case!(
            "LINK-38/open-before-ready",
            "LINK-38",
            Must,
            15,
            "a controller's OPEN sent right after its HELLO, before READY arrives, opens the session",
            open_before_ready
        ),
        case!(
            "LINK-38/open-after-refused-hello",
            "LINK-38",
            Must,
            15,
            "an OPEN sent right after a HELLO with a wrong credential reaches no host",
            open_after_refused_hello
        ),
    ]
}

// ----- helpers ---------------------------------------------------------------------------

fn ws(cx: &Context) -> CaseResult<Credential> {
    Ok(cx.relay()?.workspace.clone())
}

fn pass() -> CaseResult<Outcome> {
    Ok(Outcome::Pass)
}

/// A credential that is certainly wrong for `cred`'s workspace.
fn wrong_credential_for(cred: &Credential) -> Credential {
    let mut c = hex::encode(random_bytes::<16>()).into_bytes();
    if c == cred.credential {
        c.push(b'x');
    }
    Credential {
        workspace: cred.workspace.clone(),
        credential: c,
    }
}

fn hello_bytes(frame: &RelayFrame) -> CaseResult<Vec<u8>> {
    frame
        .to_bytes()
        .map_err(|e| CaseError(format!("encoding {}: {e}", describe(frame))))
}

/// Connects, sends `bytes` as the first message, expects `GOAWAY code`.
async fn first_frame_gets(
    cx: &Context,
    name: &str,
    bytes: Vec<u8>,
    code: CloseCode,
) -> CaseResult<()> {
    let mut l = Link::connect(cx, name).await?;
    l.send_bytes(bytes).await?;
    l.expect_goaway(code, ANSWER_WAIT).await.map(|_| ())
}

/// A READY controller link sends `bytes`, expects `GOAWAY code`.
async fn ready_frame_gets(
    cx: &Context,
    name: &str,
    bytes: Vec<u8>,
    code: CloseCode,
) -> CaseResult<()> {
    let mut l = controller(cx, name, &ws(cx)?).await?;
    l.send_bytes(bytes).await?;
    l.expect_goaway(code, ANSWER_WAIT).await.map(|_| ())
}

/// A host, a controller, and one open session between them.
async fn session_pair(cx: &Context) -> CaseResult<(Link, Link, HostKey, SessionId)> {
    let cred = ws(cx)?;
    let key = HostKey::random();
    let mut h = host(cx, "host", &cred, &key).await?;
    let mut c = controller(cx, "ctl", &cred).await?;
    let s = random_session();
    open_session(&mut c, &mut h, &key, s).await?;
    Ok((h, c, key, s))
}

fn data(session: SessionId, payload: Vec<u8>) -> RelayFrame {
    RelayFrame::Data { session, payload }
}

/// Sends DATA one way and checks it arrives unchanged.
async fn data_crosses(
    from: &mut Link,
    to: &mut Link,
    s: SessionId,
    payload: Vec<u8>,
) -> CaseResult<()> {
    let f = data(s, payload);
    from.send(&f).await?;
    to.expect_frame(&f, ANSWER_WAIT).await
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect()
}

// ----- LINK-1, LINK-2 --------------------------------------------------------------------

async fn text_after_ready(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut l = controller(&cx, "ctl", &ws(&cx)?).await?;
    l.send_text("{\"jsonrpc\":\"2.0\"}").await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

async fn text_before_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut l = Link::connect(&cx, "client").await?;
    l.send_text("HELLO").await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

async fn plain_ws_loopback(cx: Arc<Context>) -> CaseResult<Outcome> {
    let url = &cx.relay()?.url;
    if url.starts_with("ws://") && !is_loopback_url(url) {
        return fail(format!(
            "the relay serves plain ws:// on a non-loopback address ({url}); LINK-2 allows that only when its operator configured it explicitly — if so, disable this case with that reason"
        ));
    }
    pass()
}

// ----- LINK-3 ----------------------------------------------------------------------------

fn with_version(cred: &Credential, version: u8) -> CaseResult<Vec<u8>> {
    let mut f = controller_hello(cred);
    if let RelayFrame::Hello { version: v, .. } = &mut f {
        *v = version;
    }
    hello_bytes(&f)
}

async fn unsupported_version(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    for v in [0u8, 2, 255] {
        first_frame_gets(
            &cx,
            &format!("ctl-v{v}"),
            with_version(&cred, v)?,
            CloseCode::UNSUPPORTED_VERSION,
        )
        .await?;
    }
    pass()
}

async fn version_before_credential(cx: Arc<Context>) -> CaseResult<Outcome> {
    let bad = wrong_credential_for(&ws(&cx)?);
    first_frame_gets(
        &cx,
        "ctl",
        with_version(&bad, 2)?,
        CloseCode::UNSUPPORTED_VERSION,
    )
    .await?;
    pass()
}

// ----- LINK-4 ----------------------------------------------------------------------------

async fn empty_message(cx: Arc<Context>) -> CaseResult<Outcome> {
    ready_frame_gets(&cx, "ctl", Vec::new(), CloseCode::PROTOCOL_ERROR).await?;
    first_frame_gets(&cx, "client", Vec::new(), CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn unknown_type(cx: Arc<Context>) -> CaseResult<Outcome> {
    ready_frame_gets(&cx, "ctl", vec![0x40], CloseCode::PROTOCOL_ERROR).await?;
    ready_frame_gets(&cx, "ctl-2", vec![0x05; 9], CloseCode::PROTOCOL_ERROR).await?;
    first_frame_gets(
        &cx,
        "client",
        vec![0xee, 0x01, 0x02],
        CloseCode::PROTOCOL_ERROR,
    )
    .await?;
    pass()
}

async fn truncated_frame(cx: Arc<Context>) -> CaseResult<Outcome> {
    // CLOSE: type, 8-byte session id, then the 2-byte code is missing.
    let mut close = vec![RelayFrame::CLOSE];
    close.extend_from_slice(&random_bytes::<8>());
    ready_frame_gets(&cx, "ctl", close, CloseCode::PROTOCOL_ERROR).await?;
    // HELLO cut inside the workspace id.
    let hello = hello_bytes(&controller_hello(&ws(&cx)?))?;
    let cut = hello.get(..6).unwrap_or(&hello).to_vec();
    first_frame_gets(&cx, "client", cut, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn trailing_bytes(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut ping = hello_bytes(&RelayFrame::Ping { value: 7 })?;
    ping.push(0);
    ready_frame_gets(&cx, "ctl", ping, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

// ----- LINK-5, LINK-6 --------------------------------------------------------------------

async fn oversize_frame(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (_h, mut c, _k, s) = session_pair(&cx).await?;
    let mut f = vec![RelayFrame::DATA];
    f.extend_from_slice(&s.0);
    f.resize(MAX_FRAME_LEN + 1, 0x5a);
    c.send_bytes(f).await?;
    c.expect_goaway(CloseCode::FRAME_TOO_LARGE, ANSWER_WAIT)
        .await?;
    pass()
}

async fn oversize_unknown_type(cx: Arc<Context>) -> CaseResult<Outcome> {
    ready_frame_gets(
        &cx,
        "ctl",
        vec![0xee; MAX_FRAME_LEN + 1],
        CloseCode::FRAME_TOO_LARGE,
    )
    .await?;
    pass()
}

async fn oversize_before_ready(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut hello = hello_bytes(&controller_hello(&ws(&cx)?))?;
    hello.resize(513, 0);
    first_frame_gets(&cx, "client", hello, CloseCode::FRAME_TOO_LARGE).await?;
    first_frame_gets(&cx, "client-2", vec![0xee; 513], CloseCode::FRAME_TOO_LARGE).await?;
    pass()
}

async fn oversize_awaiting_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut l = Link::connect(&cx, "host").await?;
    let (_reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    l.send(&host_hello(&cred, &msg1)).await?;
    match l.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { .. } => {}
        other => return fail(format!("expected HOST_CHALLENGE, got {}", describe(&other))),
    }
    let mut proof = vec![RelayFrame::HOST_PROOF];
    proof.resize(513, 0x11);
    l.send_bytes(proof).await?;
    l.expect_goaway(CloseCode::FRAME_TOO_LARGE, ANSWER_WAIT)
        .await?;
    pass()
}

async fn limit_is_512(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut hello = hello_bytes(&controller_hello(&ws(&cx)?))?;
    hello.resize(512, 0);
    first_frame_gets(&cx, "client", hello, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

// ----- LINK-7 ----------------------------------------------------------------------------

fn check_deadline(start: Instant, lo: f64, hi: f64, what: &str) -> CaseResult<()> {
    let t = start.elapsed().as_secs_f64();
    ensure((lo..=hi).contains(&t), || {
        format!("{what} arrived {t:.1} s after the link opened; expected between {lo} and {hi} s")
    })
}

async fn auth_deadline(cx: Arc<Context>) -> CaseResult<Outcome> {
    let start = Instant::now();
    let mut l = Link::connect(&cx, "client").await?;
    l.expect_goaway(CloseCode::AUTH_TIMEOUT, Duration::from_secs(15))
        .await?;
    check_deadline(start, 9.0, 13.0, "GOAWAY AUTH_TIMEOUT")?;
    pass()
}

async fn deadline_awaiting_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let start = Instant::now();
    let mut l = Link::connect(&cx, "host").await?;
    let (_reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    l.send(&host_hello(&cred, &msg1)).await?;
    match l.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { .. } => {}
        other => return fail(format!("expected HOST_CHALLENGE, got {}", describe(&other))),
    }
    l.expect_goaway(CloseCode::AUTH_TIMEOUT, Duration::from_secs(15))
        .await?;
    check_deadline(start, 9.0, 13.0, "GOAWAY AUTH_TIMEOUT")?;
    pass()
}

// ----- LINK-8 ----------------------------------------------------------------------------

async fn first_frame_not_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let ping = hello_bytes(&RelayFrame::Ping { value: 1 })?;
    first_frame_gets(&cx, "client", ping, CloseCode::UNEXPECTED_FRAME).await?;
    pass()
}

async fn second_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    ready_frame_gets(
        &cx,
        "ctl",
        hello_bytes(&controller_hello(&cred))?,
        CloseCode::UNEXPECTED_FRAME,
    )
    .await?;
    pass()
}

async fn relay_only_frames(cx: Arc<Context>) -> CaseResult<Outcome> {
    let frames = [
        RelayFrame::Ready,
        RelayFrame::HostChallenge {
            message: vec![0x22; 48],
        },
        RelayFrame::Incoming {
            session: random_session(),
            handshake: handshake_bytes(48),
        },
    ];
    for (i, f) in frames.iter().enumerate() {
        ready_frame_gets(
            &cx,
            &format!("ctl-{i}"),
            hello_bytes(f)?,
            CloseCode::UNEXPECTED_FRAME,
        )
        .await?;
    }
    // And from a READY host.
    let cred = ws(&cx)?;
    let mut h = host(&cx, "host", &cred, &HostKey::random()).await?;
    h.send(&RelayFrame::Incoming {
        session: random_session(),
        handshake: handshake_bytes(48),
    })
    .await?;
    h.expect_goaway(CloseCode::UNEXPECTED_FRAME, ANSWER_WAIT)
        .await?;
    pass()
}

async fn open_from_host(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let other = HostKey::random();
    let mut h = host(&cx, "host", &cred, &HostKey::random()).await?;
    h.send(&RelayFrame::Open {
        session: random_session(),
        host_key: other.public,
        handshake: handshake_bytes(48),
    })
    .await?;
    h.expect_goaway(CloseCode::UNEXPECTED_FRAME, ANSWER_WAIT)
        .await?;
    pass()
}

async fn proof_from_controller(cx: Arc<Context>) -> CaseResult<Outcome> {
    let proof = hello_bytes(&RelayFrame::HostProof {
        message: vec![0x33; 64],
    })?;
    ready_frame_gets(&cx, "ctl", proof, CloseCode::UNEXPECTED_FRAME).await?;
    pass()
}

async fn other_awaiting_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut l = Link::connect(&cx, "host").await?;
    let (_reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    l.send(&host_hello(&cred, &msg1)).await?;
    match l.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { .. } => {}
        other => return fail(format!("expected HOST_CHALLENGE, got {}", describe(&other))),
    }
    l.send(&RelayFrame::Ping { value: 9 }).await?;
    l.expect_goaway(CloseCode::UNEXPECTED_FRAME, ANSWER_WAIT)
        .await?;
    pass()
}

// ----- LINK-9, LINK-10, LINK-11 ----------------------------------------------------------

async fn controller_with_registration(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = hello_bytes(&controller_hello(&ws(&cx)?))?;
    b.extend_from_slice(&[0x44; 32]);
    first_frame_gets(&cx, "ctl", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn host_without_registration(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = hello_bytes(&controller_hello(&ws(&cx)?))?;
    if let Some(role) = b.get_mut(2) {
        *role = 0x01;
    }
    first_frame_gets(&cx, "host", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn auth_failed_bytes(cx: &Context, name: &str, hello: &RelayFrame) -> CaseResult<Vec<u8>> {
    let mut l = Link::connect(cx, name).await?;
    l.send(hello).await?;
    let got = match l.next(ANSWER_WAIT).await? {
        Incoming::Binary(b) => b,
        other => {
            return fail(format!(
                "{name}: expected GOAWAY AUTH_FAILED, got {other:?}"
            ));
        }
    };
    match RelayFrame::decode(&got) {
        Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::AUTH_FAILED => {}
        Ok(f) => {
            return fail(format!(
                "{name}: expected GOAWAY AUTH_FAILED, got {}",
                describe(&f)
            ));
        }
        Err(e) => {
            return fail(format!(
                "{name}: expected GOAWAY AUTH_FAILED, got undecodable bytes ({})",
                e.name()
            ));
        }
    }
    l.expect_end_after_goaway().await?;
    Ok(got)
}

async fn wrong_credential(cx: Arc<Context>) -> CaseResult<Outcome> {
    let bad = wrong_credential_for(&ws(&cx)?);
    auth_failed_bytes(&cx, "ctl", &controller_hello(&bad)).await?;
    let key = HostKey::random();
    let (_reg, msg1) = HostRegistration::start(&key.private, &bad.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    auth_failed_bytes(&cx, "host", &host_hello(&bad, &msg1)).await?;
    pass()
}

async fn unknown_workspace(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let wrong = auth_failed_bytes(
        &cx,
        "ctl-wrong-cred",
        &controller_hello(&wrong_credential_for(&cred)),
    )
    .await?;
    let unknown = Credential {
        workspace: format!("conf-{}", hex::encode(random_bytes::<6>())),
        credential: cred.credential.clone(),
    };
    let unknown_bytes =
        auth_failed_bytes(&cx, "ctl-unknown-ws", &controller_hello(&unknown)).await?;
    ensure(wrong == unknown_bytes, || {
        format!(
            "unknown workspace and wrong credential are answered differently ({} vs {}): the answer reveals which workspaces exist",
            hex::encode(&unknown_bytes),
            hex::encode(&wrong)
        )
    })?;
    pass()
}

async fn short_credential(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let mut b = vec![RelayFrame::HELLO, PROTOCOL_VERSION, 0x02];
    let w = cred.workspace.as_bytes();
    b.push(u8::try_from(w.len()).unwrap_or(0));
    b.extend_from_slice(w);
    b.push(15);
    b.extend_from_slice(cred.credential.get(..15).unwrap_or(&[0x61; 15]));
    first_frame_gets(&cx, "ctl", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn remote_access_off(cx: Arc<Context>) -> CaseResult<Outcome> {
    let Some(off) = cx.relay()?.remote_access_off.clone() else {
        return Ok(Outcome::Skip(
            "no workspace with remote access off was given (--remote-access-off-workspace NAME=CREDENTIAL)".to_owned(),
        ));
    };
    first_frame_gets(
        &cx,
        "ctl",
        hello_bytes(&controller_hello(&off))?,
        CloseCode::REMOTE_ACCESS_DISABLED,
    )
    .await?;
    let key = HostKey::random();
    let (_reg, msg1) = HostRegistration::start(&key.private, &off.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    first_frame_gets(
        &cx,
        "host",
        hello_bytes(&host_hello(&off, &msg1))?,
        CloseCode::REMOTE_ACCESS_DISABLED,
    )
    .await?;
    // The credential is checked first (spec/03 section 3.5 order).
    let bad = wrong_credential_for(&off);
    first_frame_gets(
        &cx,
        "ctl-bad",
        hello_bytes(&controller_hello(&bad))?,
        CloseCode::AUTH_FAILED,
    )
    .await?;
    pass()
}

// ----- LINK-37 ---------------------------------------------------------------------------

/// The `LINK-37` bound: a reconfiguration ends the links it revokes within 1 s.
const LINK37_BOUND: Duration = Duration::from_secs(1);

/// How long the runner waits for those `GOAWAY`s: the bound plus 2 s for scheduling on a
/// loaded test machine. Slower answers fail; answers past the bound are noted in the log.
const LINK37_WAIT: Duration = Duration::from_secs(3);

/// A workspace of the case's own on the relay under test (`LINK-37`), so that changing it
/// disturbs nothing else. [`Scratch::remove`] takes it away at the end of the case; if the
/// case ends another way (a failure, its time limit), dropping it removes it in the
/// background.
struct Scratch {
    admin: Arc<dyn RelayAdmin>,
    cred: Credential,
    present: bool,
}

impl Scratch {
    /// Adds a fresh workspace with remote access on. `Ok(None)`: the target gave no way to
    /// reconfigure the relay.
    async fn add(cx: &Context) -> CaseResult<Option<Self>> {
        let Some(admin) = cx.relay()?.admin.clone() else {
            return Ok(None);
        };
        let cred = Credential {
            workspace: format!("tether-conf-{}", hex::encode(random_bytes::<6>())),
            credential: fresh_credential(),
        };
        let mut scratch = Self {
            admin,
            cred,
            present: true,
        };
        let c = scratch.cred.credential.clone();
        scratch.set(cx, Some(c), true).await?;
        Ok(Some(scratch))
    }

    /// Sets the workspace's credential (`None`: removes it) and remote access, and returns
    /// when the relay says it has applied the change.
    async fn set(
        &mut self,
        cx: &Context,
        credential: Option<Vec<u8>>,
        remote_access: bool,
    ) -> CaseResult<Instant> {
        let what = match &credential {
            Some(c) if *c == self.cred.credential => {
                format!(
                    "credential unchanged, remote access {}",
                    on_off(remote_access)
                )
            }
            Some(_) => format!("a new credential, remote access {}", on_off(remote_access)),
            None => "removed".to_owned(),
        };
        cx.log.note(
            "runner",
            format!("reconfiguring workspace {:?}: {what}", self.cred.workspace),
        );
        self.admin
            .set_workspace(&self.cred.workspace, credential.as_deref(), remote_access)
            .await
            .map_err(|e| CaseError(format!("reconfiguring the relay failed: {e}")))?;
        let applied = Instant::now();
        match credential {
            Some(c) => {
                self.cred.credential = c;
                self.present = true;
            }
            None => self.present = false,
        }
        Ok(applied)
    }

    /// Removes the workspace (if it is still there).
    async fn remove(mut self, cx: &Context) -> CaseResult<()> {
        if self.present {
            self.set(cx, None, false).await?;
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.present {
            return;
        }
        let admin = self.admin.clone();
        let workspace = self.cred.workspace.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = admin.set_workspace(&workspace, None, false).await;
            });
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// 32 hex digits: a credential (`LINK-10`) that needs no shell quoting.
fn fresh_credential() -> Vec<u8> {
    hex::encode(random_bytes::<16>()).into_bytes()
}

fn no_admin() -> CaseResult<Outcome> {
    Ok(Outcome::Skip(
        "needs a way to reconfigure the relay while it runs: give --reconfigure-cmd".to_owned(),
    ))
}

/// Runs `body` with a scratch workspace, then removes it, whatever the body returned.
async fn with_scratch<F>(cx: Arc<Context>, body: F) -> CaseResult<Outcome>
where
    F: for<'a> FnOnce(&'a Context, &'a mut Scratch) -> BoxFuture<'a, CaseResult<()>>,
{
    let Some(mut scratch) = Scratch::add(&cx).await? else {
        return no_admin();
    };
    let result = body(&cx, &mut scratch).await;
    let removed = scratch.remove(&cx).await;
    result?;
    removed?;
    pass()
}

/// After a reconfiguration applied at `applied`: the link gets `GOAWAY code` within the
/// `LINK-37` bound and ends (`LINK-27`). A `CLOSE PEER_GONE` for `session` may come first
/// (the session's other link may have been ended first, `LINK-21`).
async fn expect_revoked(
    cx: &Context,
    l: &mut Link,
    code: CloseCode,
    session: Option<SessionId>,
    applied: Instant,
) -> CaseResult<()> {
    let deadline = applied + LINK37_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match l.recv(left).await {
            Ok(f) => f,
            Err(e) => {
                return fail(format!(
                    "{}: expected GOAWAY {code} within {} s of the reconfiguration (LINK-37); {e}",
                    l.name(),
                    LINK37_BOUND.as_secs()
                ));
            }
        };
        match frame {
            RelayFrame::Close {
                session: s,
                code: c,
            } if Some(s) == session && c == CloseCode::PEER_GONE => {}
            RelayFrame::GoAway { code: got, .. } if got == code => break,
            other => {
                return fail(format!(
                    "{}: expected GOAWAY {code} after the reconfiguration (LINK-37), got {}",
                    l.name(),
                    describe(&other)
                ));
            }
        }
    }
    let took = applied.elapsed();
    cx.log.note(
        l.name(),
        format!(
            "GOAWAY {code} {:.0} ms after the reconfiguration",
            took.as_secs_f64() * 1000.0
        ),
    );
    if took > LINK37_BOUND {
        cx.log.note(
            l.name(),
            format!(
                "that is past the {} s bound of LINK-37",
                LINK37_BOUND.as_secs()
            ),
        );
    }
    l.expect_end_after_goaway().await
}

/// The links a reconfiguration must end: a host and a controller of `cred` with a session
/// open between them (DATA checked both ways), and a host still authenticating (its
/// `HOST_CHALLENGE` received, no `HOST_PROOF` sent).
struct Victims {
    host: Link,
    ctl: Link,
    authenticating: Link,
    session: SessionId,
}

async fn victims(cx: &Context, cred: &Credential) -> CaseResult<Victims> {
    let key = HostKey::random();
    let mut host = host(cx, "host", cred, &key).await?;
    let mut ctl = controller(cx, "ctl", cred).await?;
    let session = random_session();
    open_session(&mut ctl, &mut host, &key, session).await?;
    data_crosses(&mut ctl, &mut host, session, pattern(1, 300)).await?;
    data_crosses(&mut host, &mut ctl, session, pattern(2, 300)).await?;
    let (authenticating, _reg, _msg2) =
        start_registration(cx, "host-authenticating", cred, &HostKey::random()).await?;
    Ok(Victims {
        host,
        ctl,
        authenticating,
        session,
    })
}

impl Victims {
    async fn expect_all_revoked(
        mut self,
        cx: &Context,
        code: CloseCode,
        applied: Instant,
    ) -> CaseResult<()> {
        let s = Some(self.session);
        expect_revoked(cx, &mut self.host, code, s, applied).await?;
        expect_revoked(cx, &mut self.ctl, code, s, applied).await?;
        expect_revoked(cx, &mut self.authenticating, code, None, applied).await
    }
}

/// A controller and a host `HELLO` with `cred` both get `GOAWAY code`.
async fn hellos_get(cx: &Context, cred: &Credential, code: CloseCode) -> CaseResult<()> {
    first_frame_gets(cx, "ctl-new", hello_bytes(&controller_hello(cred))?, code).await?;
    let key = HostKey::random();
    let (_reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    first_frame_gets(cx, "host-new", hello_bytes(&host_hello(cred, &msg1))?, code).await
}

/// A host and a controller of `cred` reach `READY` and a session passes DATA.
async fn workspace_works(cx: &Context, cred: &Credential) -> CaseResult<()> {
    let key = HostKey::random();
    let mut h = host(cx, "host-after", cred, &key).await?;
    let mut c = controller(cx, "ctl-after", cred).await?;
    let s = random_session();
    open_session(&mut c, &mut h, &key, s).await?;
    data_crosses(&mut c, &mut h, s, pattern(3, 64)).await
}

async fn link37_credential_changed(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let old = scratch.cred.clone();
            let v = victims(cx, &old).await?;
            let applied = scratch.set(cx, Some(fresh_credential()), true).await?;
            v.expect_all_revoked(cx, CloseCode::AUTH_FAILED, applied)
                .await?;
            // The old credential is now simply wrong (LINK-10); the new one works.
            hellos_get(cx, &old, CloseCode::AUTH_FAILED).await?;
            workspace_works(cx, &scratch.cred).await
        })
    })
    .await
}

async fn link37_remote_access_off(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let cred = scratch.cred.clone();
            let v = victims(cx, &cred).await?;
            let applied = scratch
                .set(cx, Some(cred.credential.clone()), false)
                .await?;
            v.expect_all_revoked(cx, CloseCode::REMOTE_ACCESS_DISABLED, applied)
                .await?;
            // LINK-11 for new links, until the switch is back on.
            hellos_get(cx, &cred, CloseCode::REMOTE_ACCESS_DISABLED).await?;
            scratch.set(cx, Some(cred.credential.clone()), true).await?;
            workspace_works(cx, &cred).await
        })
    })
    .await
}

async fn link37_workspace_removed(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let cred = scratch.cred.clone();
            let v = victims(cx, &cred).await?;
            let applied = scratch.set(cx, None, false).await?;
            v.expect_all_revoked(cx, CloseCode::AUTH_FAILED, applied)
                .await?;
            hellos_get(cx, &cred, CloseCode::AUTH_FAILED).await
        })
    })
    .await
}

/// A session in another workspace, to watch while the scratch workspace changes.
struct Bystander {
    host: Link,
    ctl: Link,
    session: SessionId,
    seed: u32,
}

async fn bystander(
    cx: &Context,
    cred: &Credential,
    name: &str,
    seed: u32,
) -> CaseResult<Bystander> {
    let key = HostKey::random();
    let mut host = host(cx, &format!("host-{name}"), cred, &key).await?;
    let mut ctl = controller(cx, &format!("ctl-{name}"), cred).await?;
    let session = random_session();
    open_session(&mut ctl, &mut host, &key, session).await?;
    Ok(Bystander {
        host,
        ctl,
        session,
        seed,
    })
}

impl Bystander {
    /// Nothing arrived on either link, and DATA still crosses both ways.
    async fn check(&mut self) -> CaseResult<()> {
        self.host.expect_quiet(Duration::from_millis(200)).await?;
        self.ctl.expect_quiet(Duration::from_millis(200)).await?;
        self.seed += 2;
        data_crosses(
            &mut self.ctl,
            &mut self.host,
            self.session,
            pattern(self.seed, 200),
        )
        .await?;
        data_crosses(
            &mut self.host,
            &mut self.ctl,
            self.session,
            pattern(self.seed + 1, 200),
        )
        .await
    }
}

async fn link37_others_untouched(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let relay = cx.relay()?;
            let mut watched = vec![bystander(cx, &relay.workspace, "main", 10).await?];
            if let Some(other) = &relay.other_workspace {
                watched.push(bystander(cx, other, "other", 20).await?);
            }
            // Each change ends the scratch workspace's controller, and nothing else.
            let mut ctl = controller(cx, "ctl-changed", &scratch.cred).await?;
            let applied = scratch.set(cx, Some(fresh_credential()), true).await?;
            expect_revoked(cx, &mut ctl, CloseCode::AUTH_FAILED, None, applied).await?;
            for b in &mut watched {
                b.check().await?;
            }
            let mut ctl = controller(cx, "ctl-switched-off", &scratch.cred).await?;
            let c = scratch.cred.credential.clone();
            let applied = scratch.set(cx, Some(c), false).await?;
            expect_revoked(
                cx,
                &mut ctl,
                CloseCode::REMOTE_ACCESS_DISABLED,
                None,
                applied,
            )
            .await?;
            for b in &mut watched {
                b.check().await?;
            }
            let c = scratch.cred.credential.clone();
            scratch.set(cx, Some(c), true).await?;
            let mut ctl = controller(cx, "ctl-removed", &scratch.cred).await?;
            let applied = scratch.set(cx, None, false).await?;
            expect_revoked(cx, &mut ctl, CloseCode::AUTH_FAILED, None, applied).await?;
            for b in &mut watched {
                b.check().await?;
            }
            Ok(())
        })
    })
    .await
}

async fn link37_unchanged(cx: Arc<Context>) -> CaseResult<Outcome> {
    with_scratch(cx, |cx, scratch| {
        Box::pin(async move {
            let cred = scratch.cred.clone();
            let mut v = victims(cx, &cred).await?;
            scratch.set(cx, Some(cred.credential.clone()), true).await?;
            let wait = LINK37_BOUND + Duration::from_millis(500);
            v.host.expect_quiet(wait).await?;
            v.ctl.expect_quiet(Duration::from_millis(100)).await?;
            v.authenticating
                .expect_quiet(Duration::from_millis(100))
                .await?;
            data_crosses(&mut v.ctl, &mut v.host, v.session, pattern(4, 100)).await?;
            data_crosses(&mut v.host, &mut v.ctl, v.session, pattern(5, 100)).await
        })
    })
    .await
}

// ----- LINK-12, LINK-13, LINK-14, SEC-8 --------------------------------------------------

async fn registration_completes(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut h = host(&cx, "host", &ws(&cx)?, &HostKey::random()).await?;
    h.expect_alive().await?;
    pass()
}

async fn start_registration(
    cx: &Context,
    name: &str,
    cred: &Credential,
    key: &HostKey,
) -> CaseResult<(Link, HostRegistration, Vec<u8>)> {
    let mut l = Link::connect(cx, name).await?;
    let (reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    l.send(&host_hello(cred, &msg1)).await?;
    let msg2 = match l.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { message } => message,
        other => {
            return fail(format!(
                "{name}: expected HOST_CHALLENGE, got {}",
                describe(&other)
            ));
        }
    };
    Ok((l, reg, msg2))
}

async fn bad_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    for (name, at) in [("host-static", 0usize), ("host-tag", 63)] {
        let key = HostKey::random();
        let (mut l, reg, msg2) = start_registration(&cx, name, &cred, &key).await?;
        let mut msg3 = reg
            .respond(&msg2)
            .map_err(|e| CaseError(format!("HOST_CHALLENGE does not verify (LINK-12): {e}")))?;
        if let Some(b) = msg3.get_mut(at) {
            *b ^= 0x01;
        }
        l.send(&RelayFrame::HostProof {
            message: msg3.to_vec(),
        })
        .await?;
        l.expect_goaway(CloseCode::REGISTRATION_FAILED, ANSWER_WAIT)
            .await?;
    }
    pass()
}

async fn proof_wrong_length(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let (mut l, reg, msg2) = start_registration(&cx, "host", &cred, &key).await?;
    let msg3 = reg
        .respond(&msg2)
        .map_err(|e| CaseError(format!("HOST_CHALLENGE does not verify (LINK-12): {e}")))?;
    let mut b = vec![RelayFrame::HOST_PROOF];
    b.extend_from_slice(msg3.get(..63).unwrap_or(&msg3));
    l.send_bytes(b).await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

async fn fresh_challenge(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let eph = random_bytes::<32>();
    let mut challenges = Vec::new();
    for name in ["host-a", "host-b"] {
        let mut l = Link::connect(&cx, name).await?;
        let (_reg, msg1) =
            HostRegistration::start_with_ephemeral(&key.private, &cred.workspace, eph)
                .map_err(|e| CaseError(format!("registration: {e}")))?;
        l.send(&host_hello(&cred, &msg1)).await?;
        match l.recv(ANSWER_WAIT).await? {
            RelayFrame::HostChallenge { message } => challenges.push(message),
            other => {
                return fail(format!(
                    "{name}: expected HOST_CHALLENGE, got {}",
                    describe(&other)
                ));
            }
        }
        l.goaway(CloseCode::NORMAL).await?;
    }
    ensure(challenges.first() != challenges.get(1), || {
        "two registrations with the same message 1 got the same HOST_CHALLENGE: the relay re-used its ephemeral key".to_owned()
    })?;
    pass()
}

async fn replayed_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let (mut first, rec) = host_with(&cx, "host", &cred, &key, ConnectOptions::default()).await?;
    let mut replay = Link::connect(&cx, "replayer").await?;
    replay.send(&host_hello(&cred, &rec.msg1)).await?;
    match replay.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { .. } => {}
        other => {
            return fail(format!(
                "replayer: expected HOST_CHALLENGE, got {}",
                describe(&other)
            ));
        }
    }
    replay
        .send(&RelayFrame::HostProof {
            message: rec.msg3.clone(),
        })
        .await?;
    replay
        .expect_goaway(CloseCode::REGISTRATION_FAILED, ANSWER_WAIT)
        .await?;
    // The genuine host is still the one sessions reach.
    let mut c = controller(&cx, "ctl", &cred).await?;
    open_session(&mut c, &mut first, &key, random_session()).await?;
    pass()
}

async fn replaces(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut old = host(&cx, "host-old", &cred, &key).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    let s = random_session();
    open_session(&mut c, &mut old, &key, s).await?;
    let mut new = host(&cx, "host-new", &cred, &key).await?;
    old.expect_goaway(CloseCode::REPLACED, ANSWER_WAIT).await?;
    c.expect_close(s, CloseCode::PEER_GONE, ANSWER_WAIT).await?;
    open_session(&mut c, &mut new, &key, random_session()).await?;
    pass()
}

async fn low_order_registration(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let mut l = Link::connect(&cx, "host").await?;
    l.send(&host_hello(&cred, &[0u8; 32])).await?;
    match l.recv(ANSWER_WAIT).await {
        Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::REGISTRATION_FAILED => {
            l.expect_end_after_goaway().await?;
            pass()
        }
        Ok(RelayFrame::HostChallenge { .. }) => {
            // Some relays compute `ee` only when checking the proof; then any proof fails.
            l.send(&RelayFrame::HostProof {
                message: vec![0u8; 64],
            })
            .await?;
            l.expect_goaway(CloseCode::REGISTRATION_FAILED, ANSWER_WAIT)
                .await?;
            pass()
        }
        Ok(other) => fail(format!(
            "expected GOAWAY REGISTRATION_FAILED, got {}",
            describe(&other)
        )),
        Err(e) => fail(format!("expected GOAWAY REGISTRATION_FAILED; {e}")),
    }
}

// ----- LINK-15, LINK-16, LINK-17 ---------------------------------------------------------

async fn empty_handshake(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = vec![RelayFrame::OPEN];
    b.extend_from_slice(&random_bytes::<8>());
    b.extend_from_slice(&HostKey::random().public);
    ready_frame_gets(&cx, "ctl", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn oversize_handshake(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (_h, mut c, key, _s) = session_pair(&cx).await?;
    let mut b = vec![RelayFrame::OPEN];
    b.extend_from_slice(&random_bytes::<8>());
    b.extend_from_slice(&key.public);
    b.extend_from_slice(&handshake_bytes(513));
    c.send_bytes(b).await?;
    c.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

async fn id_in_use_controller(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, key, s) = session_pair(&cx).await?;
    c.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake_bytes(64),
    })
    .await?;
    c.expect_close(s, CloseCode::SESSION_ID_IN_USE, ANSWER_WAIT)
        .await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    data_crosses(&mut c, &mut h, s, b"still here".to_vec()).await?;
    data_crosses(&mut h, &mut c, s, b"and back".to_vec()).await?;
    pass()
}

async fn id_in_use_host(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, key, s) = session_pair(&cx).await?;
    let cred = ws(&cx)?;
    let mut c2 = controller(&cx, "ctl-2", &cred).await?;
    c2.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake_bytes(64),
    })
    .await?;
    c2.expect_close(s, CloseCode::SESSION_ID_IN_USE, ANSWER_WAIT)
        .await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    data_crosses(&mut c, &mut h, s, b"first controller".to_vec()).await?;
    data_crosses(&mut h, &mut c, s, b"reply".to_vec()).await?;
    pass()
}

async fn expect_unreachable(c: &mut Link, key: &HostKey) -> CaseResult<()> {
    let s = random_session();
    c.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake_bytes(64),
    })
    .await?;
    c.expect_close(s, CloseCode::HOST_UNREACHABLE, ANSWER_WAIT)
        .await
}

async fn offline_host(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut c = controller(&cx, "ctl", &ws(&cx)?).await?;
    expect_unreachable(&mut c, &HostKey::random()).await?;
    c.expect_alive().await?;
    pass()
}

async fn host_gone(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let h = host(&cx, "host", &cred, &key).await?;
    h.goaway(CloseCode::NORMAL).await?;
    // Give the relay time to process the host's GOAWAY (another link).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = controller(&cx, "ctl", &cred).await?;
    expect_unreachable(&mut c, &key).await?;
    pass()
}

async fn cross_workspace(cx: Arc<Context>) -> CaseResult<Outcome> {
    let Some(other) = cx.relay()?.other_workspace.clone() else {
        return Ok(Outcome::Skip(
            "needs a second workspace of the same relay (--other-workspace NAME=CREDENTIAL)"
                .to_owned(),
        ));
    };
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host-other-ws", &other, &key).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    expect_unreachable(&mut c, &key).await?;
    // The reverse direction too.
    let key2 = HostKey::random();
    let mut h2 = host(&cx, "host", &cred, &key2).await?;
    let mut c2 = controller(&cx, "ctl-other-ws", &other).await?;
    expect_unreachable(&mut c2, &key2).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    h2.expect_quiet(Duration::from_millis(100)).await?;
    pass()
}

// ----- LINK-18, LINK-19, LINK-20 ---------------------------------------------------------

async fn forward_both_ways(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host", &cred, &key).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    let s = random_session();
    let handshake = pattern(1, 512);
    c.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake.clone(),
    })
    .await?;
    h.expect_frame(
        &RelayFrame::Incoming {
            session: s,
            handshake,
        },
        ANSWER_WAIT,
    )
    .await?;
    for (i, len) in [1usize, 100, 65_535].into_iter().enumerate() {
        let seed = u32::try_from(i).unwrap_or(0);
        data_crosses(&mut c, &mut h, s, pattern(seed + 10, len)).await?;
        data_crosses(&mut h, &mut c, s, pattern(seed + 20, len)).await?;
    }
    pass()
}

async fn unknown_session(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, _key, _s) = session_pair(&cx).await?;
    let x = random_session();
    c.send(&data(x, b"nobody".to_vec())).await?;
    c.expect_close(x, CloseCode::UNKNOWN_SESSION, ANSWER_WAIT)
        .await?;
    c.expect_alive().await?;
    let y = random_session();
    h.send(&data(y, b"nobody".to_vec())).await?;
    h.expect_close(y, CloseCode::UNKNOWN_SESSION, ANSWER_WAIT)
        .await?;
    h.expect_alive().await?;
    pass()
}

async fn other_controllers_session(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, _key, s) = session_pair(&cx).await?;
    let mut c2 = controller(&cx, "ctl-2", &ws(&cx)?).await?;
    c2.send(&data(s, b"hijack".to_vec())).await?;
    c2.expect_close(s, CloseCode::UNKNOWN_SESSION, ANSWER_WAIT)
        .await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    data_crosses(&mut c, &mut h, s, b"owner".to_vec()).await?;
    pass()
}

async fn close_unknown_ignored(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut c = controller(&cx, "ctl", &ws(&cx)?).await?;
    c.send(&RelayFrame::Close {
        session: random_session(),
        code: CloseCode::NORMAL,
    })
    .await?;
    c.expect_quiet(Duration::from_millis(300)).await?;
    c.expect_alive().await?;
    pass()
}

async fn controller_limit(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host", &cred, &key).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    for _ in 0..16 {
        open_session(&mut c, &mut h, &key, random_session()).await?;
    }
    let s = random_session();
    c.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake_bytes(64),
    })
    .await?;
    c.expect_close(s, CloseCode::SESSION_LIMIT, ANSWER_WAIT)
        .await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    pass()
}

async fn host_limit(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host", &cred, &key).await?;
    let mut ctls = Vec::new();
    for i in 0..4 {
        let mut c = controller(&cx, &format!("ctl-{i}"), &cred).await?;
        for _ in 0..16 {
            open_session(&mut c, &mut h, &key, random_session()).await?;
        }
        ctls.push(c);
    }
    let mut c = controller(&cx, "ctl-4", &cred).await?;
    let s = random_session();
    c.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake_bytes(64),
    })
    .await?;
    c.expect_close(s, CloseCode::SESSION_LIMIT, ANSWER_WAIT)
        .await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    pass()
}

// ----- LINK-21, LINK-22 ------------------------------------------------------------------

async fn close_forwarded(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, key, s) = session_pair(&cx).await?;
    let f = RelayFrame::Close {
        session: s,
        code: CloseCode::REPLAYED,
    };
    c.send(&f).await?;
    h.expect_frame(&f, ANSWER_WAIT).await?;
    // The session is forgotten at both ends.
    c.send(&data(s, b"late".to_vec())).await?;
    c.expect_close(s, CloseCode::UNKNOWN_SESSION, ANSWER_WAIT)
        .await?;
    h.send(&data(s, b"late".to_vec())).await?;
    h.expect_close(s, CloseCode::UNKNOWN_SESSION, ANSWER_WAIT)
        .await?;
    // Host to controller, with another end-to-end code.
    let s2 = random_session();
    open_session(&mut c, &mut h, &key, s2).await?;
    let f2 = RelayFrame::Close {
        session: s2,
        code: CloseCode::COMMAND_PROTOCOL_ERROR,
    };
    h.send(&f2).await?;
    c.expect_frame(&f2, ANSWER_WAIT).await?;
    pass()
}

async fn peer_gone_on_loss(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (h, mut c, _key, s) = session_pair(&cx).await?;
    h.drop_connection().await;
    c.expect_close(s, CloseCode::PEER_GONE, ANSWER_WAIT).await?;
    let (mut h2, c2, _key2, s2) = session_pair(&cx).await?;
    c2.close_websocket().await;
    h2.expect_close(s2, CloseCode::PEER_GONE, ANSWER_WAIT)
        .await?;
    pass()
}

async fn peer_gone_on_goaway(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (h, mut c, _key, s) = session_pair(&cx).await?;
    h.goaway(CloseCode::GOING_AWAY).await?;
    c.expect_close(s, CloseCode::PEER_GONE, ANSWER_WAIT).await?;
    c.expect_alive().await?;
    pass()
}

/// Most payload bytes the slow-reader case pushes before giving up.
const SLOW_READER_MAX_PUSH: usize = 32 * 1024 * 1024;

async fn slow_reader(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let opts = ConnectOptions {
        recv_buffer: Some(4096),
    };
    let (mut h, _) = host_with(&cx, "host", &cred, &key, opts).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    let s = random_session();
    open_session(&mut c, &mut h, &key, s).await?;
    // The host stops reading; the controller pushes until the relay closes the session.
    let chunk = pattern(5, 65_535);
    let pushed = c
        .push_until(s, &chunk, SLOW_READER_MAX_PUSH, CloseCode::SLOW_READER)
        .await?;
    cx.log.note(
        "ctl",
        format!("CLOSE SLOW_READER after {pushed} bytes pushed"),
    );
    // The controller link stays up: it may still get UNKNOWN_SESSION for DATA in flight.
    c.expect_alive_ignoring(s).await?;
    // The host, reading again, gets what was already on its way, then CLOSE SLOW_READER.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.recv(left).await {
            Ok(RelayFrame::Data { session, .. }) if session == s => continue,
            Ok(RelayFrame::Close { session, code })
                if session == s && code == CloseCode::SLOW_READER =>
            {
                break;
            }
            Ok(other) => {
                return fail(format!(
                    "host: expected DATA then CLOSE SLOW_READER, got {}",
                    describe(&other)
                ));
            }
            Err(e) => return fail(format!("host: expected CLOSE SLOW_READER; {e}")),
        }
    }
    h.expect_alive().await?;
    pass()
}

async fn link_slow_reader(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let opts = ConnectOptions {
        recv_buffer: Some(4096),
    };
    let (mut h, _) = host_with(&cx, "host", &cred, &key, opts).await?;
    // 4 controllers x 16 sessions: the host link's 64 sessions.
    let mut ctls = Vec::new();
    for i in 0..4 {
        let mut c = controller(&cx, &format!("ctl-{i}"), &cred).await?;
        let mut sessions = Vec::new();
        for _ in 0..16 {
            let s = random_session();
            open_session(&mut c, &mut h, &key, s).await?;
            sessions.push(s);
        }
        ctls.push((c, sessions));
    }
    // The host stops reading. Each session gets 4 x 60000 bytes, under the per-session
    // bound of LINK-22 (262144), 15.36 MB in all for the host link: far past 4 MiB even
    // after the kernel's socket buffers.
    let chunk = pattern(9, 60_000);
    let pushes = ctls.into_iter().map(|(mut c, sessions)| {
        let chunk = chunk.clone();
        async move {
            let mut frames = Vec::new();
            for _ in 0..4 {
                for s in &sessions {
                    frames.push(hello_bytes(&data(*s, chunk.clone()))?);
                }
            }
            let mut gone: std::collections::HashSet<SessionId> = std::collections::HashSet::new();
            let name = c.name().to_owned();
            let mut on_frame = |f: RelayFrame| -> CaseResult<bool> {
                match f {
                    RelayFrame::Close { session, code }
                        if sessions.contains(&session) && code == CloseCode::PEER_GONE =>
                    {
                        gone.insert(session);
                    }
                    RelayFrame::Close { session, code }
                        if gone.contains(&session) && code == CloseCode::UNKNOWN_SESSION => {}
                    other => {
                        return fail(format!(
                            "{name}: expected CLOSE PEER_GONE for its sessions, got {}",
                            describe(&other)
                        ));
                    }
                }
                Ok(gone.len() == sessions.len())
            };
            c.send_all_reading(&frames, Duration::from_secs(20), &mut on_frame)
                .await
                .map_err(|e| {
                    CaseError(format!(
                        "{e} (a relay holding more than 4 MiB for one link must close it, LINK-23)"
                    ))
                })
        }
    });
    for r in futures_util::future::join_all(pushes).await {
        r?;
    }
    // The host, reading again: what was already on its way, perhaps GOAWAY SLOW_READER,
    // then the end of the link.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.next(left).await {
            Ok(Incoming::Closed(_)) => break,
            Ok(Incoming::Binary(b)) => match RelayFrame::decode(&b) {
                Ok(RelayFrame::Data { .. }) => {}
                Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::SLOW_READER => {
                    h.expect_end_after_goaway().await?;
                    break;
                }
                Ok(other) => {
                    return fail(format!(
                        "host: expected DATA, GOAWAY SLOW_READER or the end of the link, got {}",
                        describe(&other)
                    ));
                }
                Err(e) => return fail(format!("host: undecodable frame ({})", e.name())),
            },
            Ok(Incoming::Text(_)) => return fail("host: got a text message"),
            Err(e) => return fail(format!("host: the link was not closed: {e}")),
        }
    }
    pass()
}

// ----- LINK-24, LINK-25, LINK-26, LINK-27 ------------------------------------------------

async fn idle_timeout(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut c = controller(&cx, "ctl", &ws(&cx)?).await?;
    let ready = Instant::now();
    // Send nothing, not even PONG: the relay's PINGs are seen and left unanswered.
    loop {
        match c.recv_any(Duration::from_secs(75)).await {
            Ok(RelayFrame::Ping { .. }) => continue,
            Ok(RelayFrame::GoAway { code, reason }) => {
                if code != CloseCode::IDLE_TIMEOUT {
                    return fail(format!(
                        "expected GOAWAY IDLE_TIMEOUT, got GOAWAY {code} {reason:?}"
                    ));
                }
                break;
            }
            Ok(other) => {
                return fail(format!(
                    "expected GOAWAY IDLE_TIMEOUT, got {}",
                    describe(&other)
                ));
            }
            Err(e) => return fail(format!("expected GOAWAY IDLE_TIMEOUT; {e}")),
        }
    }
    c.expect_end_after_goaway().await?;
    let t = ready.elapsed().as_secs_f64();
    ensure((59.0..=66.0).contains(&t), || {
        format!("GOAWAY IDLE_TIMEOUT came {t:.1} s after the last frame sent; expected 60 s")
    })?;
    pass()
}

async fn ping_pong(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, _key, _s) = session_pair(&cx).await?;
    for l in [&mut c, &mut h] {
        for value in [0u64, 1, u64::MAX, u64::from_be_bytes(random_bytes::<8>())] {
            l.send(&RelayFrame::Ping { value }).await?;
        }
        for value in [0u64, 1, u64::MAX] {
            l.expect_frame(&RelayFrame::Pong { value }, ANSWER_WAIT)
                .await?;
        }
        match l.recv(ANSWER_WAIT).await? {
            RelayFrame::Pong { .. } => {}
            other => {
                return fail(format!(
                    "expected the fourth PONG, got {}",
                    describe(&other)
                ));
            }
        }
    }
    pass()
}

async fn relay_sends_ping(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut c = controller(&cx, "ctl", &ws(&cx)?).await?;
    let ready = Instant::now();
    match c.recv_any(Duration::from_secs(30)).await {
        Ok(RelayFrame::Ping { value }) => {
            let t = ready.elapsed().as_secs_f64();
            ensure((19.0..=25.0).contains(&t), || {
                format!("PING came {t:.1} s after READY; expected 20 s")
            })?;
            c.send(&RelayFrame::Pong { value }).await?;
            c.expect_alive().await?;
            pass()
        }
        Ok(other) => fail(format!("expected PING, got {}", describe(&other))),
        Err(e) => fail(format!("expected PING within 30 s of READY; {e}")),
    }
}

async fn order_and_integrity(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, _key, s) = session_pair(&cx).await?;
    let frames: Vec<RelayFrame> = (0u32..300)
        .map(|i| {
            let len = 1 + usize::try_from((i * 7919) % 1500).unwrap_or(0);
            let mut p = pattern(i, len);
            if let Some(first) = p.first_mut() {
                *first = u8::try_from(i % 256).unwrap_or(0);
            }
            data(s, p)
        })
        .collect();
    stream_one_way(&mut c, &mut h, &frames, "controller to host").await?;
    stream_one_way(&mut h, &mut c, &frames, "host to controller").await?;
    c.expect_quiet(Duration::from_millis(300)).await?;
    h.expect_quiet(Duration::from_millis(100)).await?;
    pass()
}

/// Sends `frames` on `from` while reading them on `to`, checking each arrives intact and in
/// order (`LINK-18`, `LINK-26`).
async fn stream_one_way(
    from: &mut Link,
    to: &mut Link,
    frames: &[RelayFrame],
    label: &str,
) -> CaseResult<()> {
    let send = async {
        for f in frames {
            from.send(f).await?;
        }
        Ok::<(), CaseError>(())
    };
    let recv = async {
        for (i, f) in frames.iter().enumerate() {
            let got = to.recv(ANSWER_WAIT).await?;
            if &got != f {
                return fail(format!(
                    "{label}: frame {i}: expected {}, got {}",
                    describe(f),
                    describe(&got)
                ));
            }
        }
        Ok(())
    };
    let (a, b) = tokio::join!(send, recv);
    a?;
    b
}

async fn relay_goaway_is_last(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut c = controller(&cx, "ctl", &ws(&cx)?).await?;
    c.send_bytes(vec![RelayFrame::READY]).await?;
    for value in 1..=3u64 {
        // These may or may not reach the relay before it closes; none may be answered.
        if c.send(&RelayFrame::Ping { value }).await.is_err() {
            break;
        }
    }
    c.expect_goaway(CloseCode::UNEXPECTED_FRAME, ANSWER_WAIT)
        .await?;
    pass()
}

async fn nothing_after_client_goaway(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, _key, s) = session_pair(&cx).await?;
    h.send(&RelayFrame::GoAway {
        code: CloseCode::NORMAL,
        reason: "leaving".to_owned(),
    })
    .await?;
    h.send(&data(s, b"after goaway".to_vec())).await?;
    c.expect_close(s, CloseCode::PEER_GONE, ANSWER_WAIT).await?;
    c.expect_quiet(Duration::from_millis(300)).await?;
    match h.next(Duration::from_secs(5)).await {
        Ok(Incoming::Closed(_)) => pass(),
        Ok(Incoming::Binary(b)) => fail(format!(
            "host: the relay sent a frame after the client's GOAWAY (LINK-27): {}",
            crate::traffic::describe_frame(&b)
        )),
        Ok(Incoming::Text(_)) => {
            fail("host: the relay sent a text message after the client's GOAWAY")
        }
        Err(_) => fail(
            "host: the relay did not close the link within 5 s of the client's GOAWAY (LINK-27)",
        ),
    }
}

// ----- LINK-30 .. LINK-34, REG -----------------------------------------------------------

async fn well_formed(l: &mut Link) -> CaseResult<RelayFrame> {
    match l.next(ANSWER_WAIT).await? {
        Incoming::Binary(b) => {
            let f = RelayFrame::decode(&b).map_err(|e| {
                CaseError(format!(
                    "{}: bytes {} do not decode: {} [{}]",
                    l.name(),
                    hex::encode(&b),
                    e.name(),
                    e.requirement()
                ))
            })?;
            let again = hello_bytes(&f)?;
            ensure(again == b, || {
                format!(
                    "{}: {} does not re-encode to the bytes received",
                    l.name(),
                    describe(&f)
                )
            })?;
            Ok(f)
        }
        other => fail(format!("{}: expected a frame, got {other:?}", l.name())),
    }
}

async fn frames_well_formed(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = Link::connect(&cx, "host").await?;
    let (reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    h.send(&host_hello(&cred, &msg1)).await?;
    let RelayFrame::HostChallenge { message } = well_formed(&mut h).await? else {
        return fail("expected HOST_CHALLENGE");
    };
    let msg3 = reg
        .respond(&message)
        .map_err(|e| CaseError(format!("HOST_CHALLENGE: {e}")))?;
    h.send(&RelayFrame::HostProof {
        message: msg3.to_vec(),
    })
    .await?;
    ensure(well_formed(&mut h).await? == RelayFrame::Ready, || {
        "expected READY".to_owned()
    })?;
    let mut c = Link::connect(&cx, "ctl").await?;
    c.send(&controller_hello(&cred)).await?;
    ensure(well_formed(&mut c).await? == RelayFrame::Ready, || {
        "expected READY".to_owned()
    })?;
    let s = random_session();
    c.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake_bytes(200),
    })
    .await?;
    well_formed(&mut h).await?;
    h.send(&data(s, pattern(3, 1000))).await?;
    well_formed(&mut c).await?;
    c.send(&RelayFrame::Ping { value: 42 }).await?;
    well_formed(&mut c).await?;
    c.send(&RelayFrame::Close {
        session: s,
        code: CloseCode::NORMAL,
    })
    .await?;
    well_formed(&mut h).await?;
    c.send(&data(s, b"x".to_vec())).await?;
    well_formed(&mut c).await?;
    c.send_bytes(vec![0x40]).await?;
    well_formed(&mut c).await?;
    pass()
}

async fn bad_role(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = hello_bytes(&controller_hello(&ws(&cx)?))?;
    if let Some(role) = b.get_mut(2) {
        *role = 0x03;
    }
    first_frame_gets(&cx, "client", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn bad_workspace(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    for (name, w) in [("upper", &b"Acme"[..]), ("empty", &b""[..])] {
        let mut b = vec![
            RelayFrame::HELLO,
            PROTOCOL_VERSION,
            0x02,
            u8::try_from(w.len()).unwrap_or(0),
        ];
        b.extend_from_slice(w);
        b.push(u8::try_from(cred.credential.len()).unwrap_or(0));
        b.extend_from_slice(&cred.credential);
        first_frame_gets(&cx, name, b, CloseCode::PROTOCOL_ERROR).await?;
    }
    pass()
}

async fn empty_data(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (_h, mut c, _key, s) = session_pair(&cx).await?;
    let mut b = vec![RelayFrame::DATA];
    b.extend_from_slice(&s.0);
    c.send_bytes(b).await?;
    c.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

async fn goaway_bad_utf8(cx: Arc<Context>) -> CaseResult<Outcome> {
    ready_frame_gets(
        &cx,
        "ctl",
        vec![RelayFrame::GOAWAY, 0x00, 0x00, 0x02, 0xff, 0xfe],
        CloseCode::PROTOCOL_ERROR,
    )
    .await?;
    pass()
}

async fn unknown_close_code(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, _key, s) = session_pair(&cx).await?;
    let f = RelayFrame::Close {
        session: s,
        code: CloseCode(999),
    };
    c.send(&f).await?;
    h.expect_frame(&f, ANSWER_WAIT).await?;
    c.expect_alive().await?;
    pass()
}

async fn unknown_goaway_code(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, _key, s) = session_pair(&cx).await?;
    h.send(&RelayFrame::GoAway {
        code: CloseCode(999),
        reason: String::new(),
    })
    .await?;
    c.expect_close(s, CloseCode::PEER_GONE, ANSWER_WAIT).await?;
    match h.next(Duration::from_secs(5)).await {
        Ok(Incoming::Closed(_)) => pass(),
        Ok(Incoming::Binary(b)) => fail(format!(
            "host: a GOAWAY with code 999 was answered with {} (REG-1: it is well formed)",
            crate::traffic::describe_frame(&b)
        )),
        Ok(Incoming::Text(_)) => fail("host: got a text message"),
        Err(_) => fail("host: the relay did not close the link within 5 s of the client's GOAWAY"),
    }
}

fn code_ok(frame: &RelayFrame) -> Result<(), String> {
    match frame {
        RelayFrame::GoAway { code, .. } if code.name().is_none() || code.0 > 15 => Err(format!(
            "GOAWAY carries {code}, not a registered link-level code (0-15)"
        )),
        RelayFrame::Close { code, .. }
            if code.name().is_none()
                || !((16..=31).contains(&code.0) || *code == CloseCode::SLOW_READER) =>
        {
            Err(format!(
                "relay-originated CLOSE carries {code}, not a registered session code"
            ))
        }
        _ => Ok(()),
    }
}

async fn relay_codes_registered(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let mut seen = Vec::new();
    // Link-level: AUTH_FAILED, UNEXPECTED_FRAME, PROTOCOL_ERROR, FRAME_TOO_LARGE.
    let triggers: [(&str, Vec<u8>); 4] = [
        (
            "auth",
            hello_bytes(&controller_hello(&wrong_credential_for(&cred)))?,
        ),
        ("unexpected", hello_bytes(&RelayFrame::Ping { value: 0 })?),
        ("malformed", vec![0x40]),
        ("oversize", vec![0xee; 600]),
    ];
    for (name, bytes) in triggers {
        let mut l = Link::connect(&cx, name).await?;
        l.send_bytes(bytes).await?;
        let f = l.recv(ANSWER_WAIT).await?;
        code_ok(&f).map_err(|e| CaseError(format!("{name}: {e}")))?;
        seen.push(describe(&f));
    }
    // Session-level: HOST_UNREACHABLE, UNKNOWN_SESSION.
    let mut c = controller(&cx, "ctl", &cred).await?;
    c.send(&RelayFrame::Open {
        session: random_session(),
        host_key: HostKey::random().public,
        handshake: handshake_bytes(32),
    })
    .await?;
    let f = c.recv(ANSWER_WAIT).await?;
    code_ok(&f).map_err(CaseError)?;
    c.send(&data(random_session(), b"?".to_vec())).await?;
    let g = c.recv(ANSWER_WAIT).await?;
    code_ok(&g).map_err(CaseError)?;
    cx.log.note(
        "ctl",
        format!("codes seen: {seen:?}, {}, {}", describe(&f), describe(&g)),
    );
    pass()
}

// ----- LINK-38 ------------------------------------------------------------------------

/// HELLO and OPEN written back to back: the relay processes the OPEN in READY.
async fn open_before_ready(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host", &cred, &key).await?;
    let mut c = Link::connect(&cx, "ctl").await?;
    let s = random_session();
    let handshake = pattern(38, 128);
    c.send(&controller_hello(&cred)).await?;
    c.send(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake.clone(),
    })
    .await?;
    c.expect_frame(&RelayFrame::Ready, ANSWER_WAIT).await?;
    h.expect_frame(
        &RelayFrame::Incoming {
            session: s,
            handshake,
        },
        ANSWER_WAIT,
    )
    .await?;
    data_crosses(&mut h, &mut c, s, pattern(39, 200)).await?;
    data_crosses(&mut c, &mut h, s, pattern(40, 200)).await?;
    pass()
}

/// HELLO with a wrong credential and OPEN back to back: GOAWAY AUTH_FAILED, and the OPEN
/// never reaches the workspace's host.
async fn open_after_refused_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host", &cred, &key).await?;
    let mut c = Link::connect(&cx, "ctl").await?;
    let wrong = wrong_credential_for(&cred);
    c.send(&controller_hello(&wrong)).await?;
    c.send(&RelayFrame::Open {
        session: random_session(),
        host_key: key.public,
        handshake: pattern(41, 128),
    })
    .await?;
    c.expect_goaway(CloseCode::AUTH_FAILED, ANSWER_WAIT).await?;
    c.expect_end_after_goaway().await?;
    h.expect_quiet(Duration::from_millis(500)).await?;
    pass()
}
