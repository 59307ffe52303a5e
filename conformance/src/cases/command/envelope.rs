//! Host cases of the JSON-RPC envelope and the session lifecycle (`spec/05` sections 5.1,
//! 5.2): batches, sizes, text, nesting, duplicate members, ids, error objects, unknown
//! methods, invalid params, `initialize` and capabilities (`CMD-1` to `CMD-16`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::rpc::{
    call_refused, error_code, expect_error, ready, refuse, still_answers,
};
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, Stop, check, session};

/// The envelope and lifecycle cases, in spec order.
pub const CASES: &[Case] = &[
    CMD_BATCH,
    CMD_LARGEST,
    CMD_BAD_TEXT,
    CMD_NESTING,
    CMD_DUPLICATE,
    CMD_NOT_OBJECT,
    CMD_VERSION,
    CMD_BAD_ID,
    CMD_INVALID_REQUEST,
    CMD_BAD_ERROR_OBJECT,
    CMD_ANSWERS,
    CMD_UNKNOWN_METHOD,
    CMD_INVALID_PARAMS,
    CMD_ANSWERED_ONCE,
    CMD_INITIALIZE,
    CMD_CAPABILITIES,
];

// ---------------------------------------------------------------------------------------
// CMD: envelope

const CMD_BATCH: Case = case! {
    id: "CMD-1/batch-refused",
    level: Must,
    timeout: 30 s,
    description: "a JSON-RPC batch gets -32600 and none of its requests runs",
    host: cmd_batch,
};
async fn cmd_batch(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"c","version":"1"},"tether":{"protocolVersion":"tether/2"}}}]"#;
    refuse(
        &mut s,
        batch,
        -32600,
        Value::Null,
        "a batch of one initialize",
    )
    .await?;
    // The initialize inside did not run: the session is still uninitialized.
    call_refused(
        &mut s,
        "tether-conformance/probe",
        Value::Null,
        -32002,
        "a request after the refused batch (was its initialize run?)",
    )
    .await?;
    s.close().await;
    Ok(())
}

const CMD_LARGEST: Case = case! {
    id: "CMD-2/largest-message",
    level: Must,
    timeout: 30 s,
    description: "a 65519-byte request is read and answered, not refused as too large",
    host: cmd_largest,
};
async fn cmd_largest(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let head = br#"{"jsonrpc":"2.0","id":77,"method":"tether-conformance/probe"}"#;
    let mut msg = Vec::with_capacity(65_519);
    msg.extend_from_slice(head);
    msg.resize(65_519, b' ');
    s.send_plain(&msg).await?;
    let a = s.answer_to(&json!(77), HOST_WAIT).await?;
    expect_error(&a, -32601, "a 65519-byte request for an unknown method")?;
    s.close().await;
    Ok(())
}

const CMD_BAD_TEXT: Case = case! {
    id: "CMD-3/bad-text",
    level: Must,
    timeout: 30 s,
    description: "a BOM, invalid UTF-8 and text that is not one JSON value get -32700 with id null",
    host: cmd_bad_text,
};
async fn cmd_bad_text(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a byte-order mark",
            b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}".to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}".to_vec(),
        ),
        (
            "an overlong UTF-8 form",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc0\xaf\"}".to_vec(),
        ),
        ("empty input", Vec::new()),
        ("truncated JSON", br#"{"jsonrpc":"2.0","id":1,"#.to_vec()),
        (
            "a second value",
            br#"{"jsonrpc":"2.0","id":1,"method":"x"} {}"#.to_vec(),
        ),
        (
            "NaN",
            br#"{"jsonrpc":"2.0","id":NaN,"method":"x"}"#.to_vec(),
        ),
        (
            "a comment",
            b"{\"jsonrpc\":\"2.0\",/* c */\"id\":1,\"method\":\"x\"}".to_vec(),
        ),
        (
            "a trailing comma",
            br#"{"jsonrpc":"2.0","id":1,"method":"x",}"#.to_vec(),
        ),
        (
            "single quotes",
            br#"{'jsonrpc':'2.0','id':1,'method':'x'}"#.to_vec(),
        ),
        (
            "a lone surrogate escape",
            br#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#.to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        refuse(&mut s, &bytes, -32700, Value::Null, what).await?;
    }
    still_answers(&mut s, "eleven parse errors").await?;
    s.close().await;
    Ok(())
}

fn nested(levels: usize) -> Vec<u8> {
    // The message object is level 1; params adds one level, each array one more.
    let inner = levels.saturating_sub(2);
    let mut p = String::from(
        r#"{"jsonrpc":"2.0","id":5,"method":"tether-conformance/probe","params":{"a":"#,
    );
    p.push_str(&"[".repeat(inner));
    p.push_str(&"]".repeat(inner));
    p.push_str("}}");
    p.into_bytes()
}

const CMD_NESTING: Case = case! {
    id: "CMD-4/nesting",
    level: Must,
    timeout: 30 s,
    description: "33 levels of nesting get -32700; 32 levels are read",
    host: cmd_nesting,
};
async fn cmd_nesting(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    refuse(
        &mut s,
        &nested(33),
        -32700,
        Value::Null,
        "33 levels of nesting",
    )
    .await?;
    s.send_plain(&nested(32)).await?;
    let a = s.answer_to(&json!(5), HOST_WAIT).await?;
    check(error_code(&a) != Some(-32700), || {
        format!("32 levels of nesting were refused as a parse error: {a}")
    })?;
    s.close().await;
    Ok(())
}

const CMD_DUPLICATE: Case = case! {
    id: "CMD-5/duplicate-member",
    level: Must,
    timeout: 30 s,
    description: "duplicate member names, also escaped and nested, get -32700",
    host: cmd_duplicate,
};
async fn cmd_duplicate(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for (what, bytes) in [
        (
            "two ids",
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#.as_slice(),
        ),
        (
            "an escaped duplicate",
            br#"{"jsonrpc":"2.0","id":1,"method":"x","\u006dethod":"y"}"#.as_slice(),
        ),
        (
            "a nested duplicate",
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":{"b":1,"b":2}}}"#.as_slice(),
        ),
    ] {
        refuse(&mut s, bytes, -32700, Value::Null, what).await?;
    }
    still_answers(&mut s, "duplicate names").await?;
    s.close().await;
    Ok(())
}

const CMD_NOT_OBJECT: Case = case! {
    id: "CMD-6/not-an-object",
    level: Must,
    timeout: 30 s,
    description: "an array, a number and a string message get -32600",
    host: cmd_not_object,
};
async fn cmd_not_object(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for (what, bytes) in [
        ("an array", br#"[1,2]"#.as_slice()),
        ("an empty array", b"[]".as_slice()),
        ("a number", b"42".as_slice()),
        ("a string", br#""x""#.as_slice()),
    ] {
        refuse(&mut s, bytes, -32600, Value::Null, what).await?;
    }
    s.close().await;
    Ok(())
}

const CMD_VERSION: Case = case! {
    id: "CMD-7/jsonrpc-version",
    level: Must,
    timeout: 30 s,
    description: "a request without jsonrpc is served (as Codex's app-server sends it); jsonrpc \"1.0\" and the number 2.0 get -32600 with the id echoed",
    host: cmd_version,
};
async fn cmd_version(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    // Served: an unknown method gets -32601 (CMD-12), not the envelope's -32600.
    refuse(
        &mut s,
        br#"{"id":5,"method":"tether-conformance/probe"}"#,
        -32601,
        json!(5),
        "a request without jsonrpc (absent is JSON-RPC 2.0)",
    )
    .await?;
    for (what, bytes) in [
        (
            "jsonrpc 1.0",
            br#"{"jsonrpc":"1.0","id":5,"method":"x"}"#.as_slice(),
        ),
        (
            "jsonrpc the number 2.0",
            br#"{"jsonrpc":2.0,"id":5,"method":"x"}"#.as_slice(),
        ),
    ] {
        refuse(&mut s, bytes, -32600, json!(5), what).await?;
    }
    s.close().await;
    Ok(())
}

const CMD_BAD_ID: Case = case! {
    id: "CMD-8/bad-id",
    level: Must,
    timeout: 30 s,
    description: "ids null, true, 1.5, 1e2, 2^53, an array and a 257-byte string get -32600 with id null",
    host: cmd_bad_id,
};
async fn cmd_bad_id(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let long = "a".repeat(257);
    for (what, id) in [
        ("null", "null".to_owned()),
        ("true", "true".to_owned()),
        ("1.5", "1.5".to_owned()),
        ("1.0", "1.0".to_owned()),
        ("1e2", "1e2".to_owned()),
        ("2^53", "9007199254740992".to_owned()),
        ("an array", "[1]".to_owned()),
        ("a 257-byte string", format!("\"{long}\"")),
    ] {
        let msg = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tether-conformance/probe"}}"#);
        refuse(
            &mut s,
            msg.as_bytes(),
            -32600,
            Value::Null,
            &format!("id {what}"),
        )
        .await?;
    }
    // The largest valid ids are fine.
    for id in [
        json!(9_007_199_254_740_991i64),
        json!(-9_007_199_254_740_991i64),
        json!("b".repeat(256)),
    ] {
        s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tether-conformance/probe"}))
            .await?;
        let a = s.answer_to(&id, HOST_WAIT).await?;
        expect_error(&a, -32601, &format!("a valid id {id}"))?;
    }
    s.close().await;
    Ok(())
}

const CMD_INVALID_REQUEST: Case = case! {
    id: "CMD-9/invalid-request",
    level: Must,
    timeout: 30 s,
    description: "a non-string method, method with result, string params, and no method nor id get -32600",
    host: cmd_invalid_request,
};
async fn cmd_invalid_request(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for (what, bytes, id) in [
        (
            "method 5",
            br#"{"jsonrpc":"2.0","id":6,"method":5}"#.as_slice(),
            json!(6),
        ),
        (
            "method and result",
            br#"{"jsonrpc":"2.0","id":6,"method":"x","result":{}}"#.as_slice(),
            json!(6),
        ),
        (
            "string params",
            br#"{"jsonrpc":"2.0","id":6,"method":"x","params":"p"}"#.as_slice(),
            json!(6),
        ),
        (
            "neither method nor id",
            br#"{"jsonrpc":"2.0"}"#.as_slice(),
            Value::Null,
        ),
    ] {
        refuse(&mut s, bytes, -32600, id, what).await?;
    }
    s.close().await;
    Ok(())
}

const CMD_BAD_ERROR_OBJECT: Case = case! {
    id: "CMD-10/bad-error-object-dropped",
    level: Must,
    timeout: 30 s,
    description: "an error response with a malformed error object is refused without an answer",
    host: cmd_bad_error_object,
};
async fn cmd_bad_error_object(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":5,"error":{"code":"x"}}"#)
        .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":6,"error":{"message":"no code"}}"#)
        .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":7,"result":{},"error":{"code":1,"message":"m"}}"#)
        .await?;
    // The next message from the host must be the answer to this probe, nothing for the three.
    s.send_plain(br#"{"jsonrpc":"2.0","id":8,"method":"tether-conformance/probe"}"#)
        .await?;
    let m = s.recv(HOST_WAIT).await?;
    check(m.value.get("id") == Some(&json!(8)), || {
        format!(
            "the host answered a response (responses are never answered, CMD-11): {}",
            m.value
        )
    })?;
    s.close().await;
    Ok(())
}

const CMD_ANSWERS: Case = case! {
    id: "CMD-11/answers-and-continues",
    level: Must,
    timeout: 30 s,
    description: "refusals carry the readable id, responses are not answered, and the session goes on",
    host: cmd_answers,
};
async fn cmd_answers(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    refuse(
        &mut s,
        br#"{"jsonrpc":"1.0","id":"abc","method":"x"}"#,
        -32600,
        json!("abc"),
        "jsonrpc 1.0 with id \"abc\"",
    )
    .await?;
    refuse(&mut s, b"{]", -32700, Value::Null, "not JSON").await?;
    // A response to nothing is dropped, not answered.
    s.send_plain(br#"{"jsonrpc":"2.0","id":999,"result":{}}"#)
        .await?;
    s.initialize().await.map_err(|e| match e {
        Stop::Fail(r) => Stop::Fail(format!(
            "after refusals, initialize failed (the session must continue): {r}"
        )),
        other => other,
    })?;
    s.close().await;
    Ok(())
}

const CMD_UNKNOWN_METHOD: Case = case! {
    id: "CMD-12/unknown-method",
    level: Must,
    timeout: 30 s,
    description: "unknown and wrong-direction methods get -32601; unknown notifications are ignored",
    host: cmd_unknown_method,
};
async fn cmd_unknown_method(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for m in [
        "tether-conformance/nope",
        "INITIALIZE",
        "Command/exec",
        "item/commandExecution/requestApproval",
    ] {
        call_refused(&mut s, m, json!({}), -32601, &format!("method {m:?}")).await?;
    }
    s.send_json(&json!({"jsonrpc":"2.0","method":"tether-conformance/notify"}))
        .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":"after","method":"tether-conformance/probe"}"#)
        .await?;
    let m = s.recv(HOST_WAIT).await?;
    check(m.value.get("id") == Some(&json!("after")), || {
        format!("the host answered an unknown notification: {}", m.value)
    })?;
    s.close().await;
    Ok(())
}

const CMD_INVALID_PARAMS: Case = case! {
    id: "CMD-13/invalid-params",
    level: Must,
    timeout: 30 s,
    description: "array params, a missing or mistyped member get -32602; bad notifications are ignored",
    host: cmd_invalid_params,
};
async fn cmd_invalid_params(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    call_refused(
        &mut s,
        "initialize",
        json!([]),
        -32602,
        "initialize with array params",
    )
    .await?;
    let a = call_refused(
        &mut s,
        "initialize",
        json!({"tether": {"protocolVersion": "tether/2"}}),
        -32602,
        "initialize without clientInfo",
    )
    .await?;
    let msg = a
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    check(msg.contains("clientInfo"), || {
        format!("the -32602 message {msg:?} does not name the member clientInfo")
    })?;
    call_refused(
        &mut s,
        "initialize",
        json!({"clientInfo": {"name": "c", "version": "1"}, "tether": {"protocolVersion": 1}}),
        -32602,
        "initialize with a numeric tether.protocolVersion",
    )
    .await?;
    call_refused(
        &mut s,
        "initialize",
        json!({"clientInfo": {"name": "c", "version": "1"}, "capabilities": ["command.exec"]}),
        -32602,
        "initialize with capabilities as a list of names (not Codex's object)",
    )
    .await?;
    s.initialize().await?;
    // A notification with bad params is ignored, not answered.
    s.send_json(&json!({"jsonrpc":"2.0","method":"tether/cancelled","params":{"requestId":[1]}}))
        .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":"after","method":"tether-conformance/probe"}"#)
        .await?;
    let m = s.recv(HOST_WAIT).await?;
    check(m.value.get("id") == Some(&json!("after")), || {
        format!(
            "the host answered a notification with bad params: {}",
            m.value
        )
    })?;
    if s.has_capability(tether_proto::cmd::capability::COMMAND_EXEC) {
        call_refused(
            &mut s,
            "command/exec",
            json!({"command": "ls", "cwd": "/", "processId": "p"}),
            -32602,
            "command/exec with a string command",
        )
        .await?;
        call_refused(
            &mut s,
            "command/exec",
            json!({"command": [], "cwd": "/", "processId": "p"}),
            -32602,
            "command/exec with an empty command",
        )
        .await?;
        call_refused(
            &mut s,
            "command/exec",
            json!({"command": ["true"], "cwd": "/", "processId": "p", "sandboxPolicy": {"type": "everything"}}),
            -32602,
            "command/exec with an unknown sandbox mode",
        )
        .await?;
    }
    s.close().await;
    Ok(())
}

const CMD_ANSWERED_ONCE: Case = case! {
    id: "CMD-14/each-request-answered-once",
    level: Must,
    timeout: 30 s,
    description: "twelve requests with integer and string ids get one answer each, with their ids",
    host: cmd_answered_once,
};
async fn cmd_answered_once(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let ids = [
        json!(0),
        json!(-1),
        json!(42),
        json!("x"),
        json!(""),
        json!("id-7"),
        json!(9_007_199_254_740_991i64),
        json!(3),
        json!("3"),
        json!(-42),
        json!("é"),
        json!(10),
    ];
    for id in &ids {
        s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tether-conformance/probe"}))
            .await?;
    }
    s.send_plain(br#"{"jsonrpc":"2.0","id":12345,"result":{}}"#)
        .await?;
    let mut seen: Vec<Value> = Vec::new();
    while seen.len() < ids.len() {
        let m = s.recv(HOST_WAIT).await?;
        let id = m.value.get("id").cloned().unwrap_or(Value::Null);
        check(ids.contains(&id), || {
            format!("an answer with an id the runner never sent: {}", m.value)
        })?;
        check(!seen.contains(&id), || {
            format!("request {id} was answered twice")
        })?;
        seen.push(id);
    }
    s.expect_silence(Duration::from_millis(500)).await?;
    s.close().await;
    Ok(())
}

const CMD_INITIALIZE: Case = case! {
    id: "CMD-15/initialize-first",
    level: Must,
    timeout: 30 s,
    description: "requests before initialize get -32002; a bad version -32602; a second initialize -32600; an initialize without tether is served",
    host: cmd_initialize,
};
async fn cmd_initialize(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    call_refused(
        &mut s,
        "tether-conformance/probe",
        Value::Null,
        -32002,
        "a request before initialize",
    )
    .await?;
    call_refused(
        &mut s,
        "command/exec",
        json!({"command": ["true"], "cwd": "/", "processId": "p"}),
        -32002,
        "command/exec before initialize",
    )
    .await?;
    s.send_json(&json!({"jsonrpc":"2.0","method":"initialized"}))
        .await?;
    call_refused(
        &mut s,
        "initialize",
        json!({"clientInfo": {"name": "c", "version": "1"}, "tether": {"protocolVersion": "tether/1"}}),
        -32602,
        "initialize with tether.protocolVersion tether/1",
    )
    .await?;
    call_refused(
        &mut s,
        "tether-conformance/probe",
        Value::Null,
        -32002,
        "a request after a refused initialize",
    )
    .await?;
    let result = s
        .call_ok(
            "initialize",
            json!({"clientInfo": {"name": "c", "version": "1"}, "tether": {"protocolVersion": "tether/2"}}),
        )
        .await?;
    check(
        result.pointer("/tether/protocolVersion") == Some(&json!("tether/2")),
        || format!("initialize result without tether.protocolVersion tether/2: {result}"),
    )?;
    for member in ["userAgent", "codexHome", "platformFamily", "platformOs"] {
        check(result.get(member).is_some_and(Value::is_string), || {
            format!("initialize result without the string {member}: {result}")
        })?;
    }
    for member in ["serverInfo", "capabilities", "sandbox", "platform"] {
        check(
            result.pointer(&format!("/tether/{member}")).is_some(),
            || format!("initialize result without tether.{member}: {result}"),
        )?;
    }
    // Nothing from the host before `initialized`.
    s.expect_silence(Duration::from_millis(500)).await?;
    s.send_json(&json!({"jsonrpc":"2.0","method":"initialized"}))
        .await?;
    call_refused(
        &mut s,
        "initialize",
        json!({"clientInfo": {"name": "c", "version": "1"}, "tether": {"protocolVersion": "tether/2"}}),
        -32600,
        "a second initialize",
    )
    .await?;
    s.close().await;
    // CMD-15: a plain app-server client (no `tether` member, Codex's capabilities object)
    // is served as a tether/2 session.
    let mut s = session(&cx, "ctl").await?;
    let result = s
        .call_ok(
            "initialize",
            json!({"clientInfo": {"name": "codex_vscode", "title": null, "version": "0.169.0"}, "capabilities": {"experimentalApi": true}}),
        )
        .await?;
    check(
        result.pointer("/tether/protocolVersion") == Some(&json!("tether/2")),
        || {
            format!(
                "initialize without a tether member: result without tether.protocolVersion tether/2: {result}"
            )
        },
    )?;
    s.close().await;
    Ok(())
}

/// The capability names both lists carry (chapter 6, "listed in: both"; `CMD-16`).
const BOTH_LISTS: [&str; 4] = [
    tether_proto::cmd::capability::AGENT_TEST,
    tether_proto::cmd::capability::COMMAND_EXEC,
    tether_proto::cmd::capability::THREAD_HANDOFF,
    tether_proto::cmd::capability::SANDBOX_LANDLOCK,
];

const CMD_CAPABILITIES: Case = case! {
    id: "CMD-16/capabilities",
    level: Must,
    timeout: 30 s,
    description: "the initialize result lists a command-protocol capability exactly when \
        message 2 does, and methods of capabilities the host does not list get -32601",
    host: cmd_capabilities,
};
async fn cmd_capabilities(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let caps = s
        .init
        .as_ref()
        .and_then(|i| i.pointer("/tether/capabilities"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check(caps.iter().all(Value::is_string), || {
        format!("capabilities are not all strings: {caps:?}")
    })?;
    let has = |c: &str| caps.iter().any(|v| v.as_str() == Some(c));
    // CMD-16: the command-protocol names (registry "both") agree with message 2's list.
    for name in BOTH_LISTS {
        let in_message2 = s.info.capabilities.iter().any(|c| c == name);
        check(has(name) == in_message2, || {
            format!(
                "{name} is {} message 2's capabilities ({:?}) but {} the initialize \
                 result's ({caps:?}); the two lists must agree on it (CMD-16)",
                if in_message2 { "in" } else { "not in" },
                s.info.capabilities,
                if has(name) { "in" } else { "not in" },
            )
        })?;
    }
    if !has(tether_proto::cmd::capability::COMMAND_EXEC) {
        for m in ["command/exec", "command/exec/terminate"] {
            call_refused(
                &mut s,
                m,
                json!({}),
                -32601,
                &format!("{m} on a host without command.exec"),
            )
            .await?;
        }
    }
    if !has(tether_proto::cmd::capability::THREAD_HANDOFF) {
        for m in ["tether/thread/export", "tether/thread/import"] {
            call_refused(
                &mut s,
                m,
                json!({}),
                -32601,
                &format!("{m} on a host without thread.handoff"),
            )
            .await?;
        }
    }
    s.close().await;
    Ok(())
}
