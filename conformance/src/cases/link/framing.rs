//! Relay cases of the link's transport and frames (`spec/03` sections 3.1 to 3.3, 3.5,
//! 3.8.1): text messages, the WebSocket upgrade, versions, malformed and oversize frames,
//! the authentication deadline, frames in the wrong state (`LINK-1` to `LINK-8`), which
//! check wins (`LINK-40`, `LINK-41`), when the deadline starts (`LINK-44`) and what the
//! upgrade must not negotiate (`LINK-45`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::limits::MAX_FRAME_LEN;
use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::relay::{
    awaiting_proof, first_frame_gets, hello_bytes, pass, pattern, pipelined_open, ready_frame_gets,
    send_open, session_pair, wrong_credential_for, ws,
};
use crate::context::{Context, Credential};
use crate::link::{
    ANSWER_WAIT, ConnectOptions, HostKey, Link, controller, controller_hello, handshake_bytes,
    host, is_loopback_url, random_bytes, random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, ensure, fail};

/// The framing cases, in spec order.
pub const CASES: &[Case] = &[
    TEXT_AFTER_READY,
    TEXT_BEFORE_HELLO,
    PLAIN_WS_LOOPBACK,
    NO_SUBPROTOCOL_NEEDED,
    OFFERED_SUBPROTOCOL_NOT_SELECTED,
    NO_COMPRESSION,
    UNSUPPORTED_VERSION,
    VERSION_BEFORE_CREDENTIAL,
    EMPTY_MESSAGE,
    UNKNOWN_TYPE,
    TRUNCATED_FRAME,
    TRAILING_BYTES,
    OVERSIZE_FRAME,
    OVERSIZE_UNKNOWN_TYPE,
    FAR_OVERSIZE_FRAMES,
    OVERSIZE_BEFORE_READY,
    OVERSIZE_AWAITING_PROOF,
    LIMIT_IS_512,
    PIPELINED_AFTER_ACCEPTED_HELLO,
    AUTH_DEADLINE,
    DEADLINE_AWAITING_PROOF,
    FIRST_FRAME_NOT_HELLO,
    SECOND_HELLO,
    RELAY_ONLY_FRAMES,
    OPEN_FROM_HOST,
    PROOF_FROM_CONTROLLER,
    OTHER_AWAITING_PROOF,
    LONG_TEXT_BEFORE_HELLO,
    MALFORMED_BEFORE_UNEXPECTED,
    FUTURE_HELLO_LAYOUT,
    DEADLINE_FROM_UPGRADE,
];

// ----- LINK-1, LINK-2 --------------------------------------------------------------------

const TEXT_AFTER_READY: Case = case! {
    id: "LINK-1/text-message-after-ready",
    level: Must,
    timeout: 15 s,
    description: "a WebSocket text message on a READY link gets GOAWAY PROTOCOL_ERROR",
    relay: text_after_ready,
};
async fn text_after_ready(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut l = controller(&cx, "ctl", &ws(&cx)?).await?;
    l.send_text("{\"jsonrpc\":\"2.0\"}").await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

const TEXT_BEFORE_HELLO: Case = case! {
    id: "LINK-1/text-message-before-hello",
    level: Must,
    timeout: 15 s,
    description: "a WebSocket text message before HELLO gets GOAWAY PROTOCOL_ERROR",
    relay: text_before_hello,
};
async fn text_before_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut l = Link::connect(&cx, "client").await?;
    l.send_text("HELLO").await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

const PLAIN_WS_LOOPBACK: Case = case! {
    id: "LINK-2/plain-ws-only-on-loopback",
    level: Must,
    timeout: 5 s,
    description: "the relay is not reached over plain ws:// on a non-loopback address",
    relay: plain_ws_loopback,
};
async fn plain_ws_loopback(cx: Arc<Context>) -> CaseResult<Outcome> {
    let url = &cx.relay()?.url;
    if url.starts_with("ws://") && !is_loopback_url(url) {
        return fail(format!(
            "the relay serves plain ws:// on a non-loopback address ({url}); LINK-2 allows that only when its operator configured it explicitly — if so, disable this case with that reason"
        ));
    }
    pass()
}

// ----- LINK-45: the WebSocket upgrade ---------------------------------------------------

const NO_SUBPROTOCOL_NEEDED: Case = case! {
    id: "LINK-45/no-subprotocol-needed",
    level: Must,
    timeout: 15 s,
    description: "an upgrade request that offers no subprotocol and no extension is accepted, answered without Sec-WebSocket-Protocol, and reaches READY",
    relay: no_subprotocol_needed,
};
async fn no_subprotocol_needed(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut l = Link::connect(&cx, "ctl").await?;
    no_header(
        &l,
        "Sec-WebSocket-Protocol",
        "selected a subprotocol nobody offered",
    )?;
    l.send(&controller_hello(&ws(&cx)?)).await?;
    l.expect_frame(&RelayFrame::Ready, ANSWER_WAIT).await?;
    l.expect_alive().await?;
    pass()
}

/// Fails when the relay's answer to the upgrade of `l` carries header field `name`.
fn no_header(l: &Link, name: &str, what: &str) -> CaseResult<()> {
    match l.upgrade_header(name) {
        None => Ok(()),
        Some(v) => fail(format!(
            "{}: the relay {what}: its upgrade answer has {name}: {v} (LINK-45)",
            l.name()
        )),
    }
}

const OFFERED_SUBPROTOCOL_NOT_SELECTED: Case = case! {
    id: "LINK-45/offered-subprotocol-not-selected",
    level: Must,
    timeout: 15 s,
    description: "an upgrade request offering the subprotocols \"tether\" and \"tether.v1\" is answered without Sec-WebSocket-Protocol, and the link reaches READY",
    relay: offered_subprotocol_not_selected,
};
async fn offered_subprotocol_not_selected(cx: Arc<Context>) -> CaseResult<Outcome> {
    let opts = ConnectOptions {
        subprotocols: Some("tether, tether.v1"),
        ..ConnectOptions::default()
    };
    let mut l = Link::connect_with(&cx, "ctl", opts).await?;
    no_header(&l, "Sec-WebSocket-Protocol", "selected a subprotocol")?;
    l.send(&controller_hello(&ws(&cx)?)).await?;
    l.expect_frame(&RelayFrame::Ready, ANSWER_WAIT).await?;
    pass()
}

const NO_COMPRESSION: Case = case! {
    id: "LINK-45/no-compression",
    level: Must,
    timeout: 15 s,
    description: "an upgrade request offering permessage-deflate is answered without Sec-WebSocket-Extensions, and the link reaches READY uncompressed",
    relay: no_compression,
};
async fn no_compression(cx: Arc<Context>) -> CaseResult<Outcome> {
    let opts = ConnectOptions {
        extensions: Some("permessage-deflate; client_max_window_bits"),
        ..ConnectOptions::default()
    };
    let mut l = Link::connect_with(&cx, "ctl", opts).await?;
    no_header(
        &l,
        "Sec-WebSocket-Extensions",
        "accepted a WebSocket extension",
    )?;
    l.send(&controller_hello(&ws(&cx)?)).await?;
    l.expect_frame(&RelayFrame::Ready, ANSWER_WAIT).await?;
    l.expect_alive().await?;
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

const UNSUPPORTED_VERSION: Case = case! {
    id: "LINK-3/unsupported-version",
    level: Must,
    timeout: 15 s,
    description: "HELLO versions 0, 2 and 255 get GOAWAY UNSUPPORTED_VERSION",
    relay: unsupported_version,
};
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

const VERSION_BEFORE_CREDENTIAL: Case = case! {
    id: "LINK-3/version-checked-before-credential",
    level: Must,
    timeout: 15 s,
    description: "HELLO version 2 with a wrong credential gets UNSUPPORTED_VERSION, not AUTH_FAILED",
    relay: version_before_credential,
};
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

const EMPTY_MESSAGE: Case = case! {
    id: "LINK-4/empty-message",
    level: Must,
    timeout: 15 s,
    description: "an empty binary message gets GOAWAY PROTOCOL_ERROR",
    relay: empty_message,
};
async fn empty_message(cx: Arc<Context>) -> CaseResult<Outcome> {
    ready_frame_gets(&cx, "ctl", Vec::new(), CloseCode::PROTOCOL_ERROR).await?;
    first_frame_gets(&cx, "client", Vec::new(), CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

const UNKNOWN_TYPE: Case = case! {
    id: "LINK-4/unknown-type",
    level: Must,
    timeout: 15 s,
    description: "unassigned type bytes (0x40 after READY, 0xee before HELLO) get GOAWAY PROTOCOL_ERROR",
    relay: unknown_type,
};
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

const TRUNCATED_FRAME: Case = case! {
    id: "LINK-4/truncated-frame",
    level: Must,
    timeout: 15 s,
    description: "a CLOSE without its code and a cut HELLO get GOAWAY PROTOCOL_ERROR",
    relay: truncated_frame,
};
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

const TRAILING_BYTES: Case = case! {
    id: "LINK-4/trailing-bytes",
    level: Must,
    timeout: 15 s,
    description: "a PING with a ninth value byte gets GOAWAY PROTOCOL_ERROR",
    relay: trailing_bytes,
};
async fn trailing_bytes(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut ping = hello_bytes(&RelayFrame::Ping { value: 7 })?;
    ping.push(0);
    ready_frame_gets(&cx, "ctl", ping, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

// ----- LINK-5, LINK-6 --------------------------------------------------------------------

const OVERSIZE_FRAME: Case = case! {
    id: "LINK-5/oversize-frame",
    level: Must,
    timeout: 15 s,
    description: "a 65545-byte DATA frame after READY gets GOAWAY FRAME_TOO_LARGE",
    relay: oversize_frame,
};
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

const OVERSIZE_UNKNOWN_TYPE: Case = case! {
    id: "LINK-5/size-checked-first",
    level: Must,
    timeout: 15 s,
    description: "65545 bytes of an unassigned type get FRAME_TOO_LARGE, not PROTOCOL_ERROR",
    relay: oversize_unknown_type,
};
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

/// Far-oversize message lengths: just past 1 MiB and just past 16 MiB, the limits WebSocket
/// libraries commonly apply on their own (tungstenite's default frame limit is 16 MiB).
const FAR_OVERSIZE_LENS: [usize; 2] = [(1 << 20) + 1, (16 << 20) + 1];

const FAR_OVERSIZE_FRAMES: Case = case! {
    id: "LINK-5/far-oversize-frames",
    level: Must,
    timeout: 40 s,
    description: "DATA messages of 1 MiB + 1 and 16 MiB + 1 bytes after READY each get GOAWAY FRAME_TOO_LARGE, not silence or a bare close",
    relay: far_oversize_frames,
};
async fn far_oversize_frames(cx: Arc<Context>) -> CaseResult<Outcome> {
    for (i, len) in FAR_OVERSIZE_LENS.into_iter().enumerate() {
        // A session of its own, so the DATA's id is one the link owns: only its length is
        // wrong.
        let (_h, mut c, _k, s) = session_pair(&cx).await?;
        let mut f = vec![RelayFrame::DATA];
        f.extend_from_slice(&s.0);
        f.resize(len, 0x5a);
        c.send_oversize_expect_goaway(f, CloseCode::FRAME_TOO_LARGE, Duration::from_secs(15))
            .await
            .map_err(|e| CaseError(format!("message {} ({len} bytes): {}", i + 1, e.0)))?;
    }
    pass()
}

const OVERSIZE_BEFORE_READY: Case = case! {
    id: "LINK-6/oversize-before-ready",
    level: Must,
    timeout: 15 s,
    description: "a 513-byte first frame gets GOAWAY FRAME_TOO_LARGE without being decoded",
    relay: oversize_before_ready,
};
async fn oversize_before_ready(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut hello = hello_bytes(&controller_hello(&ws(&cx)?))?;
    hello.resize(513, 0);
    first_frame_gets(&cx, "client", hello, CloseCode::FRAME_TOO_LARGE).await?;
    first_frame_gets(&cx, "client-2", vec![0xee; 513], CloseCode::FRAME_TOO_LARGE).await?;
    pass()
}

const OVERSIZE_AWAITING_PROOF: Case = case! {
    id: "LINK-6/oversize-awaiting-proof",
    level: Must,
    timeout: 15 s,
    description: "a 513-byte frame while the relay waits for HOST_PROOF gets GOAWAY FRAME_TOO_LARGE",
    relay: oversize_awaiting_proof,
};
async fn oversize_awaiting_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut l = awaiting_proof(&cx, &cred, &key).await?;
    let mut proof = vec![RelayFrame::HOST_PROOF];
    proof.resize(513, 0x11);
    l.send_bytes(proof).await?;
    l.expect_goaway(CloseCode::FRAME_TOO_LARGE, ANSWER_WAIT)
        .await?;
    pass()
}

const LIMIT_IS_512: Case = case! {
    id: "LINK-6/limit-is-512",
    level: Must,
    timeout: 15 s,
    description: "a malformed 512-byte first frame is decoded: GOAWAY PROTOCOL_ERROR, not FRAME_TOO_LARGE",
    relay: limit_is_512,
};
async fn limit_is_512(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut hello = hello_bytes(&controller_hello(&ws(&cx)?))?;
    hello.resize(512, 0);
    first_frame_gets(&cx, "client", hello, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

const PIPELINED_AFTER_ACCEPTED_HELLO: Case = case! {
    id: "LINK-6/pipelined-frame-after-accepted-hello",
    level: Must,
    timeout: 15 s,
    description: "a 553-byte OPEN written together with an accepted HELLO is processed in READY: the session opens, no FRAME_TOO_LARGE",
    relay: pipelined_after_accepted_hello,
};
/// LINK-6 judges a frame by the state it is processed in (LINK-38), not by when it arrives:
/// an OPEN with a 512-byte handshake (553 bytes) that reaches the relay together with the
/// HELLO is processed after READY.
async fn pipelined_after_accepted_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut c, _h, _s) = pipelined_open(&cx, 6, 512).await?;
    c.expect_alive().await?;
    pass()
}

// ----- LINK-7 ----------------------------------------------------------------------------

fn check_deadline(start: Instant, lo: f64, hi: f64, what: &str) -> CaseResult<()> {
    let t = start.elapsed().as_secs_f64();
    ensure((lo..=hi).contains(&t), || {
        format!("{what} arrived {t:.1} s after the link opened; expected between {lo} and {hi} s")
    })
}

const AUTH_DEADLINE: Case = case! {
    id: "LINK-7/auth-deadline",
    level: Must,
    timeout: 30 s,
    slow: true,
    description: "a link that sends nothing gets GOAWAY AUTH_TIMEOUT 10 s after opening",
    relay: auth_deadline,
};
async fn auth_deadline(cx: Arc<Context>) -> CaseResult<Outcome> {
    let start = Instant::now();
    let mut l = Link::connect(&cx, "client").await?;
    l.expect_goaway(CloseCode::AUTH_TIMEOUT, Duration::from_secs(15))
        .await?;
    check_deadline(start, 9.0, 13.0, "GOAWAY AUTH_TIMEOUT")?;
    pass()
}

const DEADLINE_AWAITING_PROOF: Case = case! {
    id: "LINK-7/deadline-awaiting-proof",
    level: Must,
    timeout: 30 s,
    slow: true,
    description: "a host that never sends HOST_PROOF gets GOAWAY AUTH_TIMEOUT 10 s after opening",
    relay: deadline_awaiting_proof,
};
async fn deadline_awaiting_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let start = Instant::now();
    let mut l = awaiting_proof(&cx, &cred, &key).await?;
    l.expect_goaway(CloseCode::AUTH_TIMEOUT, Duration::from_secs(15))
        .await?;
    check_deadline(start, 9.0, 13.0, "GOAWAY AUTH_TIMEOUT")?;
    pass()
}

// ----- LINK-8 ----------------------------------------------------------------------------

const FIRST_FRAME_NOT_HELLO: Case = case! {
    id: "LINK-8/first-frame-not-hello",
    level: Must,
    timeout: 15 s,
    description: "PING as the first frame gets GOAWAY UNEXPECTED_FRAME",
    relay: first_frame_not_hello,
};
async fn first_frame_not_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let ping = hello_bytes(&RelayFrame::Ping { value: 1 })?;
    first_frame_gets(&cx, "client", ping, CloseCode::UNEXPECTED_FRAME).await?;
    pass()
}

const SECOND_HELLO: Case = case! {
    id: "LINK-8/second-hello",
    level: Must,
    timeout: 15 s,
    description: "a second HELLO on a READY link gets GOAWAY UNEXPECTED_FRAME",
    relay: second_hello,
};
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

const RELAY_ONLY_FRAMES: Case = case! {
    id: "LINK-8/relay-only-frames",
    level: Must,
    timeout: 20 s,
    description: "READY, HOST_CHALLENGE and INCOMING from a client get GOAWAY UNEXPECTED_FRAME",
    relay: relay_only_frames,
};
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

const OPEN_FROM_HOST: Case = case! {
    id: "LINK-8/open-from-host",
    level: Must,
    timeout: 15 s,
    description: "OPEN on a host link gets GOAWAY UNEXPECTED_FRAME",
    relay: open_from_host,
};
async fn open_from_host(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let other = HostKey::random();
    let mut h = host(&cx, "host", &cred, &HostKey::random()).await?;
    send_open(&mut h, random_session(), &other, handshake_bytes(48)).await?;
    h.expect_goaway(CloseCode::UNEXPECTED_FRAME, ANSWER_WAIT)
        .await?;
    pass()
}

const PROOF_FROM_CONTROLLER: Case = case! {
    id: "LINK-8/proof-from-controller",
    level: Must,
    timeout: 15 s,
    description: "HOST_PROOF on a READY controller link gets GOAWAY UNEXPECTED_FRAME",
    relay: proof_from_controller,
};
async fn proof_from_controller(cx: Arc<Context>) -> CaseResult<Outcome> {
    let proof = hello_bytes(&RelayFrame::HostProof {
        message: vec![0x33; 64],
    })?;
    ready_frame_gets(&cx, "ctl", proof, CloseCode::UNEXPECTED_FRAME).await?;
    pass()
}

const OTHER_AWAITING_PROOF: Case = case! {
    id: "LINK-8/other-frame-awaiting-proof",
    level: Must,
    timeout: 15 s,
    description: "PING while the relay waits for HOST_PROOF gets GOAWAY UNEXPECTED_FRAME",
    relay: other_awaiting_proof,
};
async fn other_awaiting_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut l = awaiting_proof(&cx, &cred, &key).await?;
    l.send(&RelayFrame::Ping { value: 9 }).await?;
    l.expect_goaway(CloseCode::UNEXPECTED_FRAME, ANSWER_WAIT)
        .await?;
    pass()
}

// ----- LINK-40, LINK-41: which check wins --------------------------------------------------

const LONG_TEXT_BEFORE_HELLO: Case = case! {
    id: "LINK-40/long-text-before-hello",
    level: Must,
    timeout: 15 s,
    description: "a 1000-byte WebSocket text message before HELLO gets GOAWAY PROTOCOL_ERROR (LINK-1), not FRAME_TOO_LARGE (LINK-6 is for frames)",
    relay: long_text_before_hello,
};
async fn long_text_before_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut l = Link::connect(&cx, "client").await?;
    l.send_text(&"x".repeat(1000)).await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

const MALFORMED_BEFORE_UNEXPECTED: Case = case! {
    id: "LINK-40/malformed-before-unexpected",
    level: Must,
    timeout: 20 s,
    description: "a malformed frame of a type the state does not allow (a cut PING before HELLO, a 10-byte HOST_CHALLENGE on a READY link, a cut OPEN awaiting the proof) gets PROTOCOL_ERROR, not UNEXPECTED_FRAME",
    relay: malformed_before_unexpected,
};
async fn malformed_before_unexpected(cx: Arc<Context>) -> CaseResult<Outcome> {
    // PING is not allowed before HELLO; this one lacks four of its value bytes.
    first_frame_gets(
        &cx,
        "client",
        vec![RelayFrame::PING, 0, 0, 0, 1],
        CloseCode::PROTOCOL_ERROR,
    )
    .await?;
    // HOST_CHALLENGE is never allowed from a client; this one has 10 bytes, not 48.
    let mut challenge = vec![RelayFrame::HOST_CHALLENGE];
    challenge.extend_from_slice(&[0x22; 10]);
    ready_frame_gets(&cx, "ctl", challenge, CloseCode::PROTOCOL_ERROR).await?;
    // OPEN is not allowed awaiting HOST_PROOF; this one ends inside its host key.
    let cred = ws(&cx)?;
    let mut l = awaiting_proof(&cx, &cred, &HostKey::random()).await?;
    let mut open = vec![RelayFrame::OPEN];
    open.extend_from_slice(&random_bytes::<8>());
    open.extend_from_slice(&[0x33; 20]);
    l.send_bytes(open).await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

const FUTURE_HELLO_LAYOUT: Case = case! {
    id: "LINK-41/future-hello-layout",
    level: Must,
    timeout: 20 s,
    description: "HELLOs of versions 2, 255 and 0 laid out as v1 cannot read (role 0x07; nothing after the version; 16 bytes too many; an upper-case workspace) get UNSUPPORTED_VERSION, not PROTOCOL_ERROR",
    relay: future_hello_layout,
};
async fn future_hello_layout(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let mut odd_role = vec![RelayFrame::HELLO, 2, 0x07];
    odd_role.extend_from_slice(&pattern(41, 40));
    let mut too_long = hello_bytes(&controller_hello(&cred))?;
    if let Some(v) = too_long.get_mut(1) {
        *v = 0xff;
    }
    too_long.extend_from_slice(&[0x5a; 16]);
    let mut upper = vec![RelayFrame::HELLO, 0, 0x02, 4];
    upper.extend_from_slice(b"ACME");
    upper.push(u8::try_from(cred.credential.len()).unwrap_or(16));
    upper.extend_from_slice(&cred.credential);
    for (name, bytes) in [
        ("v2-role-07", odd_role),
        ("v2-two-bytes", vec![RelayFrame::HELLO, 2]),
        ("v255-trailing", too_long),
        ("v0-upper-workspace", upper),
    ] {
        first_frame_gets(&cx, name, bytes, CloseCode::UNSUPPORTED_VERSION)
            .await
            .map_err(|e| CaseError(format!("{name}: {}", e.0)))?;
    }
    pass()
}

// ----- LINK-44: when timers start ----------------------------------------------------------

/// How long the runner waits between its TCP connection and the WebSocket upgrade.
const UPGRADE_DELAY: Duration = Duration::from_secs(4);

const DEADLINE_FROM_UPGRADE: Case = case! {
    id: "LINK-44/auth-deadline-from-upgrade",
    level: Must,
    timeout: 40 s,
    slow: true,
    description: "a client that upgrades 4 s after connecting, then sends nothing, gets GOAWAY AUTH_TIMEOUT 10 s after the upgrade (9 to 13 s), not 10 s after the TCP connection",
    relay: deadline_from_upgrade,
};
async fn deadline_from_upgrade(cx: Arc<Context>) -> CaseResult<Outcome> {
    let opts = ConnectOptions {
        upgrade_delay: Some(UPGRADE_DELAY),
        ..ConnectOptions::default()
    };
    let mut l = Link::connect_with(&cx, "client", opts).await?;
    let upgraded = Instant::now();
    l.expect_goaway(CloseCode::AUTH_TIMEOUT, Duration::from_secs(15))
        .await?;
    check_deadline(
        upgraded,
        9.0,
        13.0,
        "GOAWAY AUTH_TIMEOUT (measured from the upgrade)",
    )?;
    pass()
}
