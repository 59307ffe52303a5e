//! Steps of the JSON-RPC cases: an initialized session, the error code of an answer, a
//! message that must be refused with a given error, a session that must still answer.

use serde_json::Value;

use crate::context::Context;
use crate::host::{ChannelSession, HOST_WAIT, Res, Stop, check, session};

/// A session of the paired device, initialized.
pub(crate) async fn ready(cx: &Context, name: &str) -> Res<ChannelSession> {
    let mut s = session(cx, name).await?;
    s.initialize().await?;
    Ok(s)
}

/// The `error.code` of an answer, if it is an error response.
pub(crate) fn error_code(answer: &Value) -> Option<i64> {
    answer
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
}

/// Fails unless `answer` is an error response with `code`; `what` names the request.
pub(crate) fn expect_error(answer: &Value, code: i64, what: &str) -> Res<()> {
    check(error_code(answer) == Some(code), || {
        format!("{what}: expected error {code}, got {answer}")
    })
}

/// Sends `bytes` and expects an error response `code` whose id is `id`.
pub(crate) async fn refuse(
    s: &mut ChannelSession,
    bytes: &[u8],
    code: i64,
    id: Value,
    what: &str,
) -> Res<()> {
    s.send_plain(bytes).await?;
    let answer = s.answer_to(&id, HOST_WAIT).await.map_err(|e| match e {
        Stop::Fail(r) => Stop::Fail(format!("{what}: {r}")),
        other => other,
    })?;
    expect_error(&answer, code, what)
}

/// The session is still usable: an unknown method gets an answer (any).
pub(crate) async fn still_answers(s: &mut ChannelSession, what: &str) -> Res<()> {
    let a = s
        .call("tether-conformance/probe", Value::Null)
        .await
        .map_err(|e| match e {
            Stop::Fail(r) => Stop::Fail(format!(
                "after {what} the session stopped answering (CMD-11): {r}"
            )),
            other => other,
        })?;
    check(a.get("error").is_some(), || {
        format!("an unknown method got a result: {a}")
    })
}

/// Sends a request and expects the error response `code` (`what` names the request in a
/// failure); returns the whole answer.
pub(crate) async fn call_refused(
    s: &mut ChannelSession,
    method: &str,
    params: Value,
    code: i64,
    what: &str,
) -> Res<Value> {
    let a = s.call(method, params).await?;
    expect_error(&a, code, what)?;
    Ok(a)
}
