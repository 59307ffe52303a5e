//! Steps of the records cases (`spec/04` section 4.13): a session that opted in to records,
//! one whose grants have settled, requests padded to an exact length, a command whose
//! output the runner can predict byte for byte.

use std::time::Duration;

use serde_json::{Value, json};
use tether_proto::link::CloseCode;

use crate::cases::steps::exec::exec_params;
use crate::context::Context;
use crate::host::records::{DEFAULT_CREDIT, INITIAL_WINDOW};
use crate::host::{ChannelSession, Opened, Res, Stop, hfail, session, session_with};

/// The increment of the runner's first `WINDOW` when it grants as the reference controller
/// does: up to [`DEFAULT_CREDIT`].
#[allow(
    clippy::cast_possible_truncation,
    reason = "131072 - 16384 = 114688 fits in a u32"
)]
pub(crate) const DEFAULT_INCREMENT: u32 = (DEFAULT_CREDIT - INITIAL_WINDOW) as u32;

/// A session of the paired device that opted in to records with a first `WINDOW` of
/// `increment` (`CHAN-31`), granting back as it consumes when `granting`; a skip, the
/// session closed, when message 2 does not list `channel.flow`.
pub(crate) async fn records_session(
    cx: &Context,
    name: &str,
    increment: u32,
    granting: bool,
) -> Res<ChannelSession> {
    let mut s = session(cx, name).await?;
    if let Err(e) = s.start_records(increment, granting).await {
        s.close().await;
        return Err(e);
    }
    Ok(s)
}

/// [`records_session`] with the default credit, initialized.
pub(crate) async fn records_ready(cx: &Context, name: &str) -> Res<ChannelSession> {
    let mut s = records_session(cx, name, DEFAULT_INCREMENT, true).await?;
    s.initialize().await?;
    Ok(s)
}

/// A session with records (default credit, not initialized) whose grants have settled:
/// the host has sent nothing for 500 ms after the runner's `WINDOW`, so the runner's
/// window is the host's credit for the session. A refusal with `RATE_LIMITED` (the
/// paired device's handshake budget, `CHAN-30`) is retried for up to 20 s.
pub(crate) async fn settled_records_session(cx: &Context, name: &str) -> Res<ChannelSession> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match session_with(cx, name, None).await? {
            Opened::Established(s) => break *s,
            Opened::Refused(CloseCode::RATE_LIMITED, link)
                if tokio::time::Instant::now() < deadline =>
            {
                link.close_websocket().await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            Opened::Refused(code, link) => {
                link.close_websocket().await;
                return hfail(format!(
                    "{name}: the paired device's session got CLOSE {code}"
                ));
            }
        }
    };
    if let Err(e) = s.start_records(DEFAULT_INCREMENT, true).await {
        s.close().await;
        return Err(e);
    }
    s.read_until_quiet(
        Duration::from_millis(500),
        Duration::from_millis(500),
        Duration::from_secs(10),
    )
    .await?;
    Ok(s)
}

/// A request for `method` with id `id` whose bytes are exactly `len` long (or as short as
/// it can be): `params` holds one member, `pad`, of `x` characters, which the host ignores
/// (`CMD-9`).
pub(crate) fn padded_request(id: i64, method: &str, len: usize) -> Vec<u8> {
    let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{"pad":""#);
    let tail = br#""}}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    let mut v = Vec::with_capacity(head.len() + pad + tail.len());
    v.extend_from_slice(head.as_bytes());
    v.resize(head.len() + pad, b'x');
    v.extend_from_slice(tail);
    v
}

/// The params of a `command/exec` in `cwd` that prints `lines` numbered lines of 8 bytes
/// each (`0000000\n`, `0000001\n`, …) with POSIX `awk`, and the output it must give.
pub(crate) fn counting(lines: u32, cwd: &str) -> (Value, Vec<u8>) {
    let script = format!("BEGIN {{ for (i = 0; i < {lines}; i++) printf \"%07d\\n\", i }}");
    let params = exec_params(&["awk", &script], cwd);
    let mut expected = Vec::with_capacity(lines as usize * 8);
    for i in 0..lines {
        expected.extend_from_slice(format!("{i:07}\n").as_bytes());
    }
    (params, expected)
}

/// `params` with `member` set to `value`.
pub(crate) fn with(mut params: Value, member: &str, value: Value) -> Value {
    if let Some(o) = params.as_object_mut() {
        o.insert(member.to_owned(), value);
    }
    params
}

/// Where two outputs first differ, for a failure message.
pub(crate) fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!(
            "{} bytes of {}; first difference at byte {i}",
            got.len(),
            want.len()
        ),
        None => format!("{} bytes of {}", got.len(), want.len()),
    }
}

/// Sends `command/exec` with `params` and returns its request id and process id.
pub(crate) async fn start_exec(s: &mut ChannelSession, params: Value) -> Res<(Value, String)> {
    let pid = format!("p{}", hex::encode(crate::link::random_bytes::<4>()));
    let params = with(
        with(params, "processId", json!(pid)),
        "streamStdoutStderr",
        json!(true),
    );
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "command/exec", "params": params}))
        .await?;
    Ok((json!(id), pid))
}

/// The raw output of a delta of `pid`, if `m` is one.
pub(crate) fn delta_of(m: &crate::host::HostMessage, pid: &str) -> Option<Vec<u8>> {
    if m.method() != Some("command/exec/outputDelta")
        || m.params().get("processId").and_then(Value::as_str) != Some(pid)
    {
        return None;
    }
    m.params()
        .get("deltaBase64")
        .and_then(Value::as_str)
        .and_then(|b| tether_proto::cmd::methods::decode_delta(b).ok())
}

/// Fails with `what` when `r` failed; a skip stays a skip.
pub(crate) fn context<T>(r: Res<T>, what: &str) -> Res<T> {
    r.map_err(|e| match e {
        Stop::Fail(reason) => Stop::Fail(format!("{what}: {reason}")),
        other => other,
    })
}
