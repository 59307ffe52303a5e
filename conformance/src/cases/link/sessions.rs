//! Relay cases of routing (`spec/03` sections 3.6, 3.7): opening sessions, the order of the
//! `OPEN` checks, forwarding `DATA` and `CLOSE`, session limits, and slow readers (`LINK-15`
//! to `LINK-23`, `LINK-39`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::link::{CloseCode, RelayFrame, SessionId};

use crate::case::{Case, case};
use crate::cases::steps::relay::{
    data, data_crosses, hello_bytes, open_refused, pass, pattern, ready_frame_gets,
    registered_host, send_open, session_pair, ws,
};
use crate::context::{Context, Credential};
use crate::link::{
    ANSWER_WAIT, ConnectOptions, HostKey, Incoming, Link, controller, handshake_bytes, host,
    host_with, open_session, random_bytes, random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, fail};
use crate::traffic::describe;

/// The routing cases, in spec order.
pub const CASES: &[Case] = &[
    EMPTY_HANDSHAKE,
    OVERSIZE_HANDSHAKE,
    ID_IN_USE_CONTROLLER,
    ID_IN_USE_HOST,
    OFFLINE_HOST,
    HOST_GONE,
    CROSS_WORKSPACE,
    CONTROLLER_CHECKED_FIRST,
    FOREIGN_HOST_ID_IN_USE,
    FOREIGN_HOST_AT_LIMIT,
    FORWARD_BOTH_WAYS,
    UNKNOWN_SESSION,
    OTHER_CONTROLLERS_SESSION,
    CLOSE_UNKNOWN_IGNORED,
    CONTROLLER_LIMIT,
    HOST_LIMIT,
    CLOSE_FORWARDED,
    PEER_GONE_ON_LOSS,
    PEER_GONE_ON_GOAWAY,
    SLOW_READER,
    LINK_SLOW_READER,
];

// ----- LINK-15, LINK-16, LINK-17 ---------------------------------------------------------

const EMPTY_HANDSHAKE: Case = case! {
    id: "LINK-15/empty-handshake",
    level: Must,
    timeout: 15 s,
    description: "an OPEN with an empty handshake gets GOAWAY PROTOCOL_ERROR",
    relay: empty_handshake,
};
async fn empty_handshake(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = vec![RelayFrame::OPEN];
    b.extend_from_slice(&random_bytes::<8>());
    b.extend_from_slice(&HostKey::random().public);
    ready_frame_gets(&cx, "ctl", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

const OVERSIZE_HANDSHAKE: Case = case! {
    id: "LINK-15/oversize-handshake",
    level: Must,
    timeout: 15 s,
    description: "an OPEN with a 513-byte handshake gets GOAWAY PROTOCOL_ERROR",
    relay: oversize_handshake,
};
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

const ID_IN_USE_CONTROLLER: Case = case! {
    id: "LINK-16/id-in-use-on-controller-link",
    level: Must,
    timeout: 15 s,
    description: "re-using an open session id on the controller link gets CLOSE SESSION_ID_IN_USE; the session lives on",
    relay: id_in_use_controller,
};
async fn id_in_use_controller(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, key, s) = session_pair(&cx).await?;
    open_refused(&mut c, s, &key, CloseCode::SESSION_ID_IN_USE).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    data_crosses(&mut c, &mut h, s, b"still here".to_vec()).await?;
    data_crosses(&mut h, &mut c, s, b"and back".to_vec()).await?;
    pass()
}

const ID_IN_USE_HOST: Case = case! {
    id: "LINK-16/id-in-use-on-host-link",
    level: Must,
    timeout: 15 s,
    description: "a second controller opening an id open on the host gets CLOSE SESSION_ID_IN_USE",
    relay: id_in_use_host,
};
async fn id_in_use_host(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut h, mut c, key, s) = session_pair(&cx).await?;
    let cred = ws(&cx)?;
    let mut c2 = controller(&cx, "ctl-2", &cred).await?;
    open_refused(&mut c2, s, &key, CloseCode::SESSION_ID_IN_USE).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    data_crosses(&mut c, &mut h, s, b"first controller".to_vec()).await?;
    data_crosses(&mut h, &mut c, s, b"reply".to_vec()).await?;
    pass()
}

async fn expect_unreachable(c: &mut Link, key: &HostKey) -> CaseResult<()> {
    open_refused(c, random_session(), key, CloseCode::HOST_UNREACHABLE).await
}

const OFFLINE_HOST: Case = case! {
    id: "LINK-17/offline-host",
    level: Must,
    timeout: 15 s,
    description: "OPEN to a key no host registered gets CLOSE HOST_UNREACHABLE; the link stays up",
    relay: offline_host,
};
async fn offline_host(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut c = controller(&cx, "ctl", &ws(&cx)?).await?;
    expect_unreachable(&mut c, &HostKey::random()).await?;
    c.expect_alive().await?;
    pass()
}

const HOST_GONE: Case = case! {
    id: "LINK-17/host-gone",
    level: Must,
    timeout: 15 s,
    description: "OPEN to a host whose link has ended gets CLOSE HOST_UNREACHABLE",
    relay: host_gone,
};
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

const CROSS_WORKSPACE: Case = case! {
    id: "LINK-17/cross-workspace",
    level: Must,
    timeout: 15 s,
    description: "OPEN to a host registered in another workspace gets CLOSE HOST_UNREACHABLE and reaches nobody",
    relay: cross_workspace,
};
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

// ----- LINK-39: the order of the OPEN checks ---------------------------------------------

const CONTROLLER_CHECKED_FIRST: Case = case! {
    id: "LINK-39/controller-link-checked-first",
    level: Must,
    timeout: 20 s,
    description: "an OPEN to a key no host registered, with an id open on the link or past 16 sessions, gets SESSION_ID_IN_USE or SESSION_LIMIT (steps 1, 2), not HOST_UNREACHABLE (step 3)",
    relay: controller_checked_first,
};
async fn controller_checked_first(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (cred, key, mut h) = registered_host(&cx).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    let mut open = Vec::new();
    for _ in 0..16 {
        let s = random_session();
        open_session(&mut c, &mut h, &key, s).await?;
        open.push(s);
    }
    let unknown = HostKey::random();
    // Step 1: an id open on the controller's link, to a key no host registered.
    let first = open.first().copied().unwrap_or_else(random_session);
    open_refused(&mut c, first, &unknown, CloseCode::SESSION_ID_IN_USE).await?;
    // Step 2: a 17th session, to a key no host registered.
    open_refused(&mut c, random_session(), &unknown, CloseCode::SESSION_LIMIT).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    pass()
}

/// The second workspace of the target, or the reason to skip without it.
fn other_workspace(cx: &Context) -> CaseResult<Result<Credential, Outcome>> {
    Ok(match cx.relay()?.other_workspace.clone() {
        Some(other) => Ok(other),
        None => Err(Outcome::Skip(
            "needs a second workspace of the same relay (--other-workspace NAME=CREDENTIAL)"
                .to_owned(),
        )),
    })
}

const FOREIGN_HOST_ID_IN_USE: Case = case! {
    id: "LINK-39/foreign-host-id-in-use",
    level: Must,
    timeout: 15 s,
    description: "an OPEN whose id is open on a host of another workspace with that key gets HOST_UNREACHABLE, not SESSION_ID_IN_USE",
    relay: foreign_host_id_in_use,
};
async fn foreign_host_id_in_use(cx: Arc<Context>) -> CaseResult<Outcome> {
    let other = match other_workspace(&cx)? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host-other-ws", &other, &key).await?;
    let mut c_other = controller(&cx, "ctl-other-ws", &other).await?;
    let s = random_session();
    open_session(&mut c_other, &mut h, &key, s).await?;
    // The same id and key from the controller's own workspace: no host with that key is
    // registered there (step 3), whatever the foreign host's link holds (step 4).
    let mut c = controller(&cx, "ctl", &cred).await?;
    open_refused(&mut c, s, &key, CloseCode::HOST_UNREACHABLE).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    data_crosses(&mut c_other, &mut h, s, b"untouched".to_vec()).await?;
    pass()
}

const FOREIGN_HOST_AT_LIMIT: Case = case! {
    id: "LINK-39/foreign-host-at-limit",
    level: Must,
    timeout: 30 s,
    description: "an OPEN to the key of a host of another workspace that holds 64 sessions gets HOST_UNREACHABLE, not SESSION_LIMIT",
    relay: foreign_host_at_limit,
};
async fn foreign_host_at_limit(cx: Arc<Context>) -> CaseResult<Outcome> {
    let other = match other_workspace(&cx)? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut h = host(&cx, "host-other-ws", &other, &key).await?;
    let _ctls = fill_host(&cx, "ctl-other-ws", &other, &mut h, &key).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    open_refused(&mut c, random_session(), &key, CloseCode::HOST_UNREACHABLE).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    pass()
}

// ----- LINK-18, LINK-19, LINK-20 ---------------------------------------------------------

const FORWARD_BOTH_WAYS: Case = case! {
    id: "LINK-18/forward-both-ways",
    level: Must,
    timeout: 20 s,
    description: "INCOMING carries the OPEN's id and 512-byte handshake; DATA up to 65535 bytes crosses both ways intact",
    relay: forward_both_ways,
};
async fn forward_both_ways(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (cred, key, mut h) = registered_host(&cx).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    let s = random_session();
    let handshake = pattern(1, 512);
    send_open(&mut c, s, &key, handshake.clone()).await?;
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

const UNKNOWN_SESSION: Case = case! {
    id: "LINK-19/unknown-session",
    level: Must,
    timeout: 15 s,
    description: "DATA for an id the link does not own gets CLOSE UNKNOWN_SESSION with that id; the link stays up",
    relay: unknown_session,
};
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

const OTHER_CONTROLLERS_SESSION: Case = case! {
    id: "LINK-19/session-of-another-controller",
    level: Must,
    timeout: 15 s,
    description: "DATA naming another controller's session gets CLOSE UNKNOWN_SESSION and reaches nobody",
    relay: other_controllers_session,
};
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

const CLOSE_UNKNOWN_IGNORED: Case = case! {
    id: "LINK-19/close-unknown-ignored",
    level: Must,
    timeout: 15 s,
    description: "CLOSE for an unknown session id is ignored: no answer, link up",
    relay: close_unknown_ignored,
};
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

const CONTROLLER_LIMIT: Case = case! {
    id: "LINK-20/controller-session-limit",
    level: Must,
    timeout: 20 s,
    description: "the 17th session of a controller link gets CLOSE SESSION_LIMIT",
    relay: controller_limit,
};
async fn controller_limit(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (cred, key, mut h) = registered_host(&cx).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    for _ in 0..16 {
        open_session(&mut c, &mut h, &key, random_session()).await?;
    }
    open_refused(&mut c, random_session(), &key, CloseCode::SESSION_LIMIT).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    pass()
}

const HOST_LIMIT: Case = case! {
    id: "LINK-20/host-session-limit",
    level: Must,
    timeout: 30 s,
    description: "the 65th session of a host link gets CLOSE SESSION_LIMIT",
    relay: host_limit,
};
async fn host_limit(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (cred, key, mut h) = registered_host(&cx).await?;
    let _ctls = fill_host(&cx, "ctl", &cred, &mut h, &key).await?;
    let mut c = controller(&cx, "ctl-4", &cred).await?;
    open_refused(&mut c, random_session(), &key, CloseCode::SESSION_LIMIT).await?;
    h.expect_quiet(Duration::from_millis(300)).await?;
    pass()
}

// ----- LINK-21, LINK-22 ------------------------------------------------------------------

const CLOSE_FORWARDED: Case = case! {
    id: "LINK-21/close-forwarded",
    level: Must,
    timeout: 15 s,
    description: "CLOSE is forwarded with its id and code both ways, then the session is forgotten",
    relay: close_forwarded,
};
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

const PEER_GONE_ON_LOSS: Case = case! {
    id: "LINK-21/peer-gone-on-link-loss",
    level: Must,
    timeout: 15 s,
    description: "when a link drops, the other end of each of its sessions gets CLOSE PEER_GONE",
    relay: peer_gone_on_loss,
};
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

const PEER_GONE_ON_GOAWAY: Case = case! {
    id: "LINK-21/peer-gone-on-goaway",
    level: Must,
    timeout: 15 s,
    description: "when a host sends GOAWAY, its sessions' controllers get CLOSE PEER_GONE",
    relay: peer_gone_on_goaway,
};
async fn peer_gone_on_goaway(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (h, mut c, _key, s) = session_pair(&cx).await?;
    h.goaway(CloseCode::GOING_AWAY).await?;
    c.expect_close(s, CloseCode::PEER_GONE, ANSWER_WAIT).await?;
    c.expect_alive().await?;
    pass()
}

/// Most payload bytes the slow-reader case pushes before giving up.
const SLOW_READER_MAX_PUSH: usize = 32 * 1024 * 1024;

const SLOW_READER: Case = case! {
    id: "LINK-22/slow-reader",
    level: Must,
    timeout: 60 s,
    description: "a session whose host stops reading gets CLOSE SLOW_READER at both ends and ends both ways: the host's DATA on it then gets UNKNOWN_SESSION and reaches nobody; the links stay up",
    relay: slow_reader,
};
async fn slow_reader(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let opts = ConnectOptions {
        recv_buffer: Some(4096),
        ..ConnectOptions::default()
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
    // The whole session has ended, not only the direction that overflowed: DATA from the
    // host on it is refused and reaches nobody.
    h.send(&data(s, b"after SLOW_READER".to_vec())).await?;
    h.expect_close(s, CloseCode::UNKNOWN_SESSION, ANSWER_WAIT)
        .await?;
    h.expect_alive().await?;
    c.expect_alive_ignoring(s).await?;
    pass()
}

const LINK_SLOW_READER: Case = case! {
    id: "LINK-23/link-slow-reader",
    level: Must,
    timeout: 90 s,
    description: "a host link that stops reading is closed once 4 MiB wait for it; every session gets CLOSE PEER_GONE",
    relay: link_slow_reader,
};
async fn link_slow_reader(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let opts = ConnectOptions {
        recv_buffer: Some(4096),
        ..ConnectOptions::default()
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

/// Opens 64 sessions to the host of `h` (its limit, `LINK-20`) from four controllers of
/// workspace `cred`, 16 each (the controller limit), named `label-0` .. `label-3`; returns
/// the controllers, whose links must stay open for the sessions to last.
async fn fill_host(
    cx: &Arc<Context>,
    label: &str,
    cred: &Credential,
    h: &mut Link,
    key: &HostKey,
) -> CaseResult<Vec<Link>> {
    let mut ctls = Vec::new();
    for i in 0..4 {
        let mut c = controller(cx, &format!("{label}-{i}"), cred).await?;
        for _ in 0..16 {
            open_session(&mut c, h, key, random_session()).await?;
        }
        ctls.push(c);
    }
    Ok(ctls)
}
