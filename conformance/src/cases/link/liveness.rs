//! Relay cases of keepalive and closing (`spec/03` sections 3.8, 3.9): the idle timeout,
//! pings, order and integrity of a stream, and `GOAWAY` as the last frame (`LINK-24` to
//! `LINK-27`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::relay::{data, pass, pattern, session_pair, ws};
use crate::context::Context;
use crate::link::{ANSWER_WAIT, Incoming, Link, controller, random_bytes};
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
    ensure((59.0..=66.0).contains(&t), || {
        format!("GOAWAY IDLE_TIMEOUT came {t:.1} s after the last frame sent; expected 60 s")
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
