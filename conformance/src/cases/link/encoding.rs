//! Relay cases of the frames the relay itself writes and the fields it checks
//! (`spec/03` section 3.2): strict encoding, roles, workspace ids, empty `DATA`, `GOAWAY`
//! reasons (`LINK-30` to `LINK-34`).

use std::sync::Arc;

use tether_proto::limits::PROTOCOL_VERSION;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::relay::{
    data, first_frame_gets, hello_bytes, pass, pattern, ready_frame_gets, send_open, session_pair,
    ws,
};
use crate::context::Context;
use crate::link::{
    ANSWER_WAIT, HostKey, Incoming, Link, controller_hello, handshake_bytes, host_hello,
    random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, ensure, fail};
use crate::traffic::describe;

/// The encoding cases, in spec order.
pub const CASES: &[Case] = &[
    FRAMES_WELL_FORMED,
    BAD_ROLE,
    BAD_WORKSPACE,
    EMPTY_DATA,
    GOAWAY_BAD_UTF8,
];

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

const FRAMES_WELL_FORMED: Case = case! {
    id: "LINK-30/relay-frames-well-formed",
    level: Must,
    timeout: 20 s,
    description: "every frame of a registration, session and keepalive re-encodes to the exact bytes received",
    relay: frames_well_formed,
};
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
    send_open(&mut c, s, &key, handshake_bytes(200)).await?;
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

const BAD_ROLE: Case = case! {
    id: "LINK-31/bad-role",
    level: Must,
    timeout: 15 s,
    description: "a HELLO with role 0x03 gets GOAWAY PROTOCOL_ERROR",
    relay: bad_role,
};
async fn bad_role(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = hello_bytes(&controller_hello(&ws(&cx)?))?;
    if let Some(role) = b.get_mut(2) {
        *role = 0x03;
    }
    first_frame_gets(&cx, "client", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

const BAD_WORKSPACE: Case = case! {
    id: "LINK-32/bad-workspace",
    level: Must,
    timeout: 15 s,
    description: "HELLO workspace ids \"Acme\" and \"\" get GOAWAY PROTOCOL_ERROR",
    relay: bad_workspace,
};
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

const EMPTY_DATA: Case = case! {
    id: "LINK-33/empty-data-payload",
    level: Must,
    timeout: 15 s,
    description: "a DATA frame with no payload gets GOAWAY PROTOCOL_ERROR",
    relay: empty_data,
};
async fn empty_data(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (_h, mut c, _key, s) = session_pair(&cx).await?;
    let mut b = vec![RelayFrame::DATA];
    b.extend_from_slice(&s.0);
    c.send_bytes(b).await?;
    c.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

const GOAWAY_BAD_UTF8: Case = case! {
    id: "LINK-34/goaway-reason-not-utf8",
    level: Must,
    timeout: 15 s,
    description: "a client GOAWAY whose reason is not UTF-8 gets GOAWAY PROTOCOL_ERROR",
    relay: goaway_bad_utf8,
};
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
