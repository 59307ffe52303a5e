//! Relay cases of keepalive and closing (`spec/03` sections 3.8, 3.9): the idle timeout,
//! pings, order and integrity of a stream, `GOAWAY` as the last frame (`LINK-24` to
//! `LINK-27`), and queued `DATA` when a link ends (`LINK-42`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use tether_proto::link::SessionId;

use crate::cases::steps::relay::{data, pass, pattern, registered_host, session_pair, ws};
use crate::context::Context;
use crate::link::{
    ANSWER_WAIT, ConnectOptions, Incoming, Link, controller, controller_with, open_session,
    random_bytes, random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, ensure, fail};
use crate::traffic::describe;

/// The keepalive and closing cases, in spec order.
pub const CASES: &[Case] = &[
    IDLE_TIMEOUT,
    PING_PONG,
    RELAY_SENDS_PING,
    ORDER_AND_INTEGRITY,
    RELAY_GOAWAY_IS_LAST,
    NOTHING_AFTER_CLIENT_GOAWAY,
    FLUSHED_BEFORE_GOAWAY,
    DELIVERED_BEFORE_PEER_GONE,
];

// ----- LINK-24, LINK-25, LINK-26, LINK-27 ------------------------------------------------

const IDLE_TIMEOUT: Case = case! {
    id: "LINK-24/idle-timeout",
    level: Must,
    timeout: 90 s,
    slow: true,
    description: "a READY link that sends nothing gets GOAWAY IDLE_TIMEOUT after 60 s",
    relay: idle_timeout,
};
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
    // LINK-44: 1 s before to 3 s after the period.
    ensure((59.0..=63.0).contains(&t), || {
        format!(
            "GOAWAY IDLE_TIMEOUT came {t:.1} s after the last frame sent; expected 60 s (59 to 63 s, LINK-44)"
        )
    })?;
    pass()
}

const PING_PONG: Case = case! {
    id: "LINK-25/ping-pong",
    level: Must,
    timeout: 15 s,
    description: "PING gets PONG with the same value, on controller and host links",
    relay: ping_pong,
};
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

const RELAY_SENDS_PING: Case = case! {
    id: "LINK-25/relay-sends-ping",
    level: Must,
    timeout: 40 s,
    slow: true,
    description: "the relay sends PING on a READY link it has sent nothing to for 20 s",
    relay: relay_sends_ping,
};
async fn relay_sends_ping(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut c = controller(&cx, "ctl", &ws(&cx)?).await?;
    let ready = Instant::now();
    match c.recv_any(Duration::from_secs(30)).await {
        Ok(RelayFrame::Ping { value }) => {
            let t = ready.elapsed().as_secs_f64();
            // LINK-44: 1 s before to 3 s after the period.
            ensure((19.0..=23.0).contains(&t), || {
                format!("PING came {t:.1} s after READY; expected 20 s (19 to 23 s, LINK-44)")
            })?;
            c.send(&RelayFrame::Pong { value }).await?;
            c.expect_alive().await?;
            pass()
        }
        Ok(other) => fail(format!("expected PING, got {}", describe(&other))),
        Err(e) => fail(format!("expected PING within 30 s of READY; {e}")),
    }
}

const ORDER_AND_INTEGRITY: Case = case! {
    id: "LINK-26/order-and-integrity",
    level: Must,
    timeout: 30 s,
    description: "600 DATA frames of varied sizes arrive complete, unmodified and in order, with nothing injected",
    relay: order_and_integrity,
};
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

const RELAY_GOAWAY_IS_LAST: Case = case! {
    id: "LINK-27/relay-goaway-is-last",
    level: Must,
    timeout: 15 s,
    description: "after its GOAWAY the relay answers nothing more and closes the WebSocket",
    relay: relay_goaway_is_last,
};
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

const NOTHING_AFTER_CLIENT_GOAWAY: Case = case! {
    id: "LINK-27/nothing-accepted-after-goaway",
    level: Must,
    timeout: 15 s,
    description: "frames a client sends after its GOAWAY are not forwarded, and the relay closes without a frame",
    relay: nothing_after_client_goaway,
};
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

// ----- LINK-42: what a link's end does to queued DATA ----------------------------------------

/// Sessions, `DATA` frames per session and payload bytes per frame of the `LINK-42` cases:
/// 15 x 4 x 60000 bytes, 3.6 MB toward a controller that does not read. That is under the
/// bounds of `LINK-22` (240000 of 262144 bytes per session) and `LINK-23` (3600540 of
/// 4194304 bytes of frames).
const BACKLOG_SESSIONS: usize = 15;
const BACKLOG_FRAMES: usize = 4;
const BACKLOG_LEN: usize = 60_000;

/// Most bytes pushed on the session that fills the socket buffers.
const FILL_MAX_PUSH: usize = 32 * 1024 * 1024;

/// A controller that reads nothing (a 4 KiB receive buffer), a host, and 16 sessions.
///
/// First the host pushes `DATA` on one session, in steps, until the relay closes it with
/// `SLOW_READER` (`LINK-22`, [`fill_buffers`]): the socket buffers between the relay and the
/// controller are then full, and the relay has dropped what it still held of that session. Then the host sends each of the
/// 15 other sessions four 60000-byte `DATA` frames, and `PING`; the `PONG` says the relay
/// has taken all of it in (`LINK-38`), and, the buffers being full, holds all of it for the
/// controller. Returns the host, the controller, the filling session, the 15 others and
/// their frames in the order sent.
async fn backlog(
    cx: &Context,
) -> CaseResult<(Link, Link, SessionId, Vec<SessionId>, Vec<RelayFrame>)> {
    let (cred, key, mut h) = registered_host(cx).await?;
    let opts = ConnectOptions {
        recv_buffer: Some(4096),
        ..ConnectOptions::default()
    };
    let mut c = controller_with(cx, "ctl", &cred, opts).await?;
    let fill = random_session();
    open_session(&mut c, &mut h, &key, fill).await?;
    let mut sessions = Vec::new();
    for _ in 0..BACKLOG_SESSIONS {
        let s = random_session();
        open_session(&mut c, &mut h, &key, s).await?;
        sessions.push(s);
    }
    let pushed = fill_buffers(&mut h, fill).await?;
    cx.log.note(
        "host",
        format!("the buffers toward ctl took {pushed} bytes before CLOSE SLOW_READER"),
    );
    let mut frames = Vec::new();
    for round in 0..BACKLOG_FRAMES {
        for (i, s) in sessions.iter().enumerate() {
            let seed = u32::try_from(round * BACKLOG_SESSIONS + i).unwrap_or(0);
            frames.push(data(*s, pattern(4200 + seed, BACKLOG_LEN)));
        }
    }
    for f in &frames {
        h.send(f).await?;
    }
    h.expect_alive().await?;
    Ok((h, c, fill, sessions, frames))
}

/// Sends `DATA` on session `fill` in steps of three 65535-byte frames, each followed by a
/// `PING` round trip and a pause, until the relay closes the session with `SLOW_READER`
/// (`LINK-22`). Sent in steps, the relay's queue grows only once the socket buffers toward
/// the reader stop taking more (they grow as they fill), so when the `CLOSE` comes they are
/// full. Returns the payload bytes sent.
async fn fill_buffers(h: &mut Link, fill: SessionId) -> CaseResult<usize> {
    let chunk = data(fill, pattern(4199, 65_535));
    let mut pushed = 0usize;
    loop {
        for _ in 0..3 {
            h.send(&chunk).await?;
            pushed += 65_535;
        }
        let value = u64::from_be_bytes(random_bytes::<8>());
        h.send(&RelayFrame::Ping { value }).await?;
        let mut closed = false;
        loop {
            match h.recv(ANSWER_WAIT).await? {
                RelayFrame::Pong { value: v } if v == value => break,
                RelayFrame::Close { session, code }
                    if session == fill && code == CloseCode::SLOW_READER =>
                {
                    closed = true;
                }
                RelayFrame::Close { session, code }
                    if session == fill && closed && code == CloseCode::UNKNOWN_SESSION => {}
                other => {
                    return fail(format!(
                        "host: expected PONG {value} while filling the buffers, got {}",
                        describe(&other)
                    ));
                }
            }
        }
        if closed {
            return Ok(pushed);
        }
        if pushed > FILL_MAX_PUSH {
            return fail(format!(
                "host: pushed {pushed} bytes of DATA toward a controller that does not read and got no CLOSE SLOW_READER (LINK-22)"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads from `c`: what the socket buffers held of session `fill`, its `CLOSE SLOW_READER`,
/// then `frames`, in order and unchanged.
async fn expect_backlog(
    c: &mut Link,
    fill: SessionId,
    frames: &[RelayFrame],
    after: &str,
) -> CaseResult<()> {
    loop {
        match c.recv(ANSWER_WAIT).await? {
            RelayFrame::Data { session, .. } if session == fill => {}
            RelayFrame::Close { session, code }
                if session == fill && code == CloseCode::SLOW_READER =>
            {
                break;
            }
            other => {
                return fail(format!(
                    "{}: expected DATA, then CLOSE SLOW_READER, of session {fill}, got {}",
                    c.name(),
                    describe(&other)
                ));
            }
        }
    }
    for (i, want) in frames.iter().enumerate() {
        let got = c.recv(ANSWER_WAIT).await.map_err(|e| {
            CaseError(format!(
                "expected DATA frame {} of {} {after}; {}",
                i + 1,
                frames.len(),
                e.0
            ))
        })?;
        if &got != want {
            return fail(format!(
                "{}: DATA frame {} of {} queued for it {after}: expected {}, got {} (LINK-42: queued DATA is delivered, not dropped)",
                c.name(),
                i + 1,
                frames.len(),
                describe(want),
                describe(&got)
            ));
        }
    }
    Ok(())
}

const FLUSHED_BEFORE_GOAWAY: Case = case! {
    id: "LINK-42/data-flushed-before-goaway",
    level: Must,
    timeout: 60 s,
    description: "a controller that stops reading, with its socket buffers full and 3.6 MB of DATA queued at the relay, then sends a malformed frame, gets all of that DATA, in order, before GOAWAY PROTOCOL_ERROR",
    relay: flushed_before_goaway,
};
async fn flushed_before_goaway(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (_h, mut c, fill, _sessions, frames) = backlog(&cx).await?;
    // An unassigned type: the relay ends the controller's link (LINK-4).
    c.send_bytes(vec![0x40]).await?;
    expect_backlog(&mut c, fill, &frames, "before the relay's GOAWAY").await?;
    c.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

const DELIVERED_BEFORE_PEER_GONE: Case = case! {
    id: "LINK-42/data-delivered-before-peer-gone",
    level: Must,
    timeout: 60 s,
    description: "when a host leaves with 3.6 MB of its DATA queued at the relay for a controller that stops reading (socket buffers full), the controller gets all of it, in order, before CLOSE PEER_GONE for each session",
    relay: delivered_before_peer_gone,
};
async fn delivered_before_peer_gone(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (h, mut c, fill, sessions, frames) = backlog(&cx).await?;
    h.goaway(CloseCode::NORMAL).await?;
    expect_backlog(&mut c, fill, &frames, "before CLOSE PEER_GONE").await?;
    let mut gone = std::collections::HashSet::new();
    while gone.len() < sessions.len() {
        match c.recv(ANSWER_WAIT).await? {
            RelayFrame::Close { session, code }
                if code == CloseCode::PEER_GONE && sessions.contains(&session) =>
            {
                gone.insert(session);
            }
            other => {
                return fail(format!(
                    "ctl: expected CLOSE PEER_GONE for each of its {} sessions, got {}",
                    sessions.len(),
                    describe(&other)
                ));
            }
        }
    }
    c.expect_alive().await?;
    pass()
}
