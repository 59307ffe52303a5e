//! Host cases of transport messages (`spec/04` section 4.9): one message per frame,
//! reordered, replayed, reflected, tampered and short messages, rekeying and nonces
//! (`CHAN-16` to `CHAN-21`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::exec::exec_params;
use crate::cases::steps::handshake::close_is;
use crate::cases::steps::rpc::{ready, still_answers};
use crate::context::Context;
use crate::host::{ChannelSession, HOST_WAIT, Res, Stop, check, hfail, session};
use crate::link::random_bytes;

/// The transport cases, in spec order.
pub const CASES: &[Case] = &[
    CHAN_ONE_MESSAGE,
    CHAN_REORDERED,
    CHAN_REPLAYED_TRANSPORT,
    CHAN_REFLECTED,
    CHAN_TAMPERED,
    CHAN_SHORT,
    CHAN_REKEY,
    CHAN_NONCES,
];

const CHAN_ONE_MESSAGE: Case = case! {
    id: "CHAN-16/one-message-per-frame",
    level: Must,
    timeout: 60 s,
    description: "every DATA from the host is one transport message of one command message",
    host: chan_one_message,
};
async fn chan_one_message(cx: Arc<Context>) -> Res<()> {
    // recv() decrypts each DATA as one transport message and parses exactly one JSON-RPC
    // message from it; a large output gives many frames.
    let mut s = ready(&cx, "ctl").await?;
    for _ in 0..5 {
        still_answers(&mut s, "a request").await?;
    }
    if s.has_capability(tether_proto::cmd::capability::COMMAND_EXEC) {
        let dir = s.work_dir(&cx)?;
        let run = s
            .exec(
                exec_params(&["head", "-c", "100000", "/dev/zero"], &dir),
                Duration::from_secs(30),
            )
            .await?;
        check(run.stdout.len() == 100_000, || {
            format!("100000 bytes of output arrived as {}", run.stdout.len())
        })?;
    }
    s.close().await;
    Ok(())
}

pub(crate) async fn expect_decrypt_failed(s: &mut ChannelSession, what: &str) -> Res<()> {
    loop {
        match s.next_frame(HOST_WAIT).await {
            Ok(Err(code)) => return close_is(code, CloseCode::DECRYPT_FAILED, what),
            // Answers to what came before are fine.
            Ok(Ok(_)) => {}
            Err(Stop::Fail(r)) => {
                return hfail(format!("{what}: expected CLOSE DECRYPT_FAILED: {r}"));
            }
            Err(e) => return Err(e),
        }
    }
}

const CHAN_REORDERED: Case = case! {
    id: "CHAN-17/reordered",
    level: Must,
    timeout: 30 s,
    description: "transport message 1 sent before message 0 gets DECRYPT_FAILED",
    host: chan_reordered,
};
async fn chan_reordered(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let mut first = Vec::new();
    let mut second = Vec::new();
    let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"c","version":"1"},"tether":{"protocolVersion":"tether/2"}}}"#;
    s.transport
        .encrypt(init, &mut first)
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    s.transport
        .encrypt(br#"{"jsonrpc":"2.0","method":"initialized"}"#, &mut second)
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    s.send_ciphertext(second).await?;
    expect_decrypt_failed(&mut s, "transport nonce 1 before nonce 0").await
}

const CHAN_REPLAYED_TRANSPORT: Case = case! {
    id: "CHAN-17/replayed",
    level: Must,
    timeout: 30 s,
    description: "a transport message sent twice gets DECRYPT_FAILED",
    host: chan_replayed_transport,
};
async fn chan_replayed_transport(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let mut first = Vec::new();
    let probe = br#"{"jsonrpc":"2.0","id":1,"method":"tether-conformance/probe"}"#;
    s.transport
        .encrypt(probe, &mut first)
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    s.send_ciphertext(first.clone()).await?;
    s.answer_to(&json!(1), HOST_WAIT).await?;
    s.send_ciphertext(first).await?;
    expect_decrypt_failed(&mut s, "transport message 0 sent twice").await
}

const CHAN_REFLECTED: Case = case! {
    id: "CHAN-17/reflected",
    level: Must,
    timeout: 30 s,
    description: "the host's own transport message sent back gets DECRYPT_FAILED",
    host: chan_reflected,
};
async fn chan_reflected(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":1,"method":"tether-conformance/probe"}"#)
        .await?;
    let answer = match s.next_frame(HOST_WAIT).await? {
        Ok(p) => p,
        Err(code) => return hfail(format!("the host closed the session: {code}")),
    };
    // The runner's receive counter moves on; the host must not accept its own message.
    let mut plain = Vec::new();
    let _ = s.transport.decrypt(&answer, &mut plain);
    s.send_ciphertext(answer).await?;
    expect_decrypt_failed(&mut s, "the host's own message sent back").await
}

const CHAN_TAMPERED: Case = case! {
    id: "CHAN-18/tampered-ciphertext",
    level: Must,
    timeout: 30 s,
    description: "a flipped tag byte gets DECRYPT_FAILED and the session processes nothing more",
    host: chan_tampered,
};
async fn chan_tampered(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let mut c = Vec::new();
    s.transport
        .encrypt(
            br#"{"jsonrpc":"2.0","id":1,"method":"tether-conformance/probe"}"#,
            &mut c,
        )
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    if let Some(b) = c.last_mut() {
        *b ^= 0x01;
    }
    s.send_ciphertext(c).await?;
    expect_decrypt_failed(&mut s, "a flipped tag byte").await?;
    // Nothing more is processed: a valid next message gets no DATA back.
    s.send_plain(br#"{"jsonrpc":"2.0","id":2,"method":"tether-conformance/probe"}"#)
        .await?;
    match s.next_frame(Duration::from_secs(2)).await {
        Ok(Ok(p)) => hfail(format!(
            "after DECRYPT_FAILED the host still sent DATA ({} bytes) on the session",
            p.len()
        )),
        _ => Ok(()),
    }
}

const CHAN_SHORT: Case = case! {
    id: "CHAN-18/short-message",
    level: Must,
    timeout: 30 s,
    description: "a 15-byte transport message gets DECRYPT_FAILED",
    host: chan_short,
};
async fn chan_short(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    s.send_ciphertext(random_bytes::<15>().to_vec()).await?;
    expect_decrypt_failed(&mut s, "a 15-byte transport message").await
}

const CHAN_REKEY: Case = case! {
    id: "CHAN-19/rekey",
    level: Must,
    timeout: 300 s,
    slow: true,
    description: "both directions rekey after nonce 65535: 65540 requests are all answered",
    host: chan_rekey,
};
async fn chan_rekey(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    const TOTAL: i64 = 65_540;
    const WINDOW: i64 = 32;
    let mut sent = 0i64;
    let mut answered = 0i64;
    let start = Instant::now();
    while answered < TOTAL {
        while sent < TOTAL && sent - answered < WINDOW {
            sent += 1;
            let req =
                format!(r#"{{"jsonrpc":"2.0","id":{sent},"method":"tether-conformance/probe"}}"#);
            let mut c = Vec::new();
            s.transport
                .encrypt(req.as_bytes(), &mut c)
                .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
            s.link
                .send(&RelayFrame::Data {
                    session: s.id,
                    payload: c,
                })
                .await?;
        }
        let payload = match s.next_frame(HOST_WAIT).await? {
            Ok(p) => p,
            Err(code) => {
                return hfail(format!(
                    "the host closed the session with CLOSE {code} after {answered} answers (nonce {})",
                    s.transport.sending_nonce()
                ));
            }
        };
        let mut plain = Vec::new();
        s.transport.decrypt(&payload, &mut plain).map_err(|e| {
            Stop::Fail(format!(
                "the host's transport message with nonce {} does not decrypt: {e} (did it rekey after 65535? CHAN-19)",
                s.transport.receiving_nonce()
            ))
        })?;
        let v: Value = serde_json::from_slice(&plain)
            .map_err(|e| Stop::Fail(format!("answer {answered}: {e}")))?;
        answered += 1;
        check(v.get("id") == Some(&json!(answered)), || {
            format!("answer {answered} carries id {:?}", v.get("id"))
        })?;
    }
    cx.log.note(
        "ctl",
        format!(
            "{TOTAL} requests answered in {:.1} s; both nonces past 65536",
            start.elapsed().as_secs_f64()
        ),
    );
    s.close().await;
    Ok(())
}

const CHAN_NONCES: Case = case! {
    id: "CHAN-21/nonce-encoding",
    level: Must,
    timeout: 30 s,
    description: "transport messages with nonces 0..5 decrypt both ways (little-endian counter)",
    host: chan_nonces,
};
async fn chan_nonces(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for _ in 0..4 {
        still_answers(&mut s, "a request").await?;
    }
    check(
        s.transport.receiving_nonce() >= 5 && s.transport.sending_nonce() >= 5,
        || "fewer than 5 messages each way".to_owned(),
    )?;
    s.close().await;
    Ok(())
}
