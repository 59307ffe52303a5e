//! Relay cases of the registries (`spec/06`): unknown close and `GOAWAY` codes are forwarded,
//! and every code the relay sends is registered (`REG-1`, `REG-2`).

use std::sync::Arc;
use std::time::Duration;

use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::relay::{data, hello_bytes, pass, session_pair, wrong_credential_for, ws};
use crate::context::Context;
use crate::link::{
    ANSWER_WAIT, HostKey, Incoming, Link, controller, controller_hello, handshake_bytes,
    random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, fail};
use crate::traffic::describe;

/// The registry cases, in spec order.
pub const CASES: &[Case] = &[
    UNKNOWN_CLOSE_CODE,
    UNKNOWN_GOAWAY_CODE,
    RELAY_CODES_REGISTERED,
];

const UNKNOWN_CLOSE_CODE: Case = case! {
    id: "REG-1/unknown-close-code-forwarded",
    level: Must,
    timeout: 15 s,
    description: "a CLOSE with unregistered code 999 is forwarded unchanged",
    relay: unknown_close_code,
};
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

const UNKNOWN_GOAWAY_CODE: Case = case! {
    id: "REG-1/unknown-goaway-code",
    level: Must,
    timeout: 15 s,
    description: "a client GOAWAY with unregistered code 999 ends the link like any GOAWAY",
    relay: unknown_goaway_code,
};
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

const RELAY_CODES_REGISTERED: Case = case! {
    id: "REG-2/relay-codes-registered",
    level: Must,
    timeout: 20 s,
    description: "the codes the relay sends are registered, in GOAWAY from 0-15 and in CLOSE from 16-31 or 12",
    relay: relay_codes_registered,
};
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
