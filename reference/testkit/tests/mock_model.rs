//! The testkit's mock model over raw HTTP/1.1: what it answers, what it refuses, and
//! that a script it cannot follow fails with a reason. Needs no Codex.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tether_testkit::model::{MAX_BODY, MAX_HEAD, MockModel, ModelTurn, shell_call};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// Sends `raw` and reads until the server closes; returns (status line, body).
async fn exchange(model: &MockModel, raw: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(model.addr()).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut reply))
        .await
        .expect("the mock did not close the connection")
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The `data:` payloads of an event stream.
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.get("type").and_then(Value::as_str).unwrap())
        .collect()
}

fn exec_tool() -> Value {
    json!({"type": "function", "name": "exec_command", "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
        "required": ["cmd"],
    }})
}

#[tokio::test]
async fn shell_turn_calls_the_advertised_tool() {
    let model = MockModel::start([ModelTurn::shell("echo hi")])
        .await
        .unwrap();
    let request = json!({"model": "m", "tools": [
        {"type": "function", "name": "view_image", "parameters": {"type": "object",
         "properties": {"path": {"type": "string"}}}},
        exec_tool(),
    ]});
    let (status, body) = exchange(&model, &post(&request.to_string())).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let events = events(&body);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let item = &events[1]["item"];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "exec_command");
    let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"cmd": "echo hi"}));
    assert!(body.contains("event: response.completed\n"));
    assert_eq!(model.requests().len(), 1);
    assert_eq!(model.requests()[0].body, request);
    assert!(model.errors().is_empty(), "{}", model.summary());
}

#[test]
fn shell_call_fits_an_argument_vector() {
    let body = json!({"tools": [{"type": "function", "name": "shell", "parameters": {
        "type": "object",
        "properties": {"command": {"type": "array", "items": {"type": "string"}}},
        "required": ["command"],
    }}]});
    let (name, args) = shell_call(&body, "ls -l").unwrap();
    assert_eq!(name, "shell");
    assert_eq!(args, json!({"command": ["bash", "-lc", "ls -l"]}));
}

#[test]
fn shell_call_refuses_a_tool_with_other_required_members() {
    let body = json!({"tools": [{"type": "function", "name": "exec_command", "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "session": {"type": "number"}},
        "required": ["cmd", "session"],
    }}]});
    let err = shell_call(&body, "ls").unwrap_err();
    assert!(err.contains("also requires [\"session\"]"), "{err}");
}

#[tokio::test]
async fn streamed_text_sends_deltas_then_the_message() {
    let model = MockModel::start([ModelTurn::streamed(["Hel", "lo"])])
        .await
        .unwrap();
    let (_, body) = exchange(&model, &post("{}")).await;
    let events = events(&body);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.output_item.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(events[2]["delta"], "Hel");
    assert_eq!(events[3]["delta"], "lo");
    assert_eq!(events[2]["item_id"], events[4]["item"]["id"]);
    assert_eq!(events[4]["item"]["content"][0]["text"], "Hello");
}

#[tokio::test]
async fn chunked_body_is_read_and_recorded() {
    let model = MockModel::start([ModelTurn::text("ok")]).await.unwrap();
    let body = r#"{"input":[{"type":"function_call_output","call_id":"c1","output":"out"}]}"#;
    let (a, b) = body.split_at(10);
    let raw = format!(
        "POST /v1/responses HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let (status, reply) = exchange(&model, raw.as_bytes()).await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{reply}");
    assert_eq!(
        model.function_call_outputs(),
        [("c1".to_owned(), "out".to_owned())]
    );
    let message = &events(&reply)[1]["item"];
    assert_eq!(message["content"][0]["text"], "ok");
}

#[tokio::test]
async fn other_routes_get_404() {
    let model = MockModel::start([ModelTurn::text("unused")]).await.unwrap();
    let (status, _) = exchange(&model, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let raw = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    let (status, _) = exchange(&model, raw).await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(model.pending(), 1, "a 404 took a scripted answer");
}

#[tokio::test]
async fn unfit_script_fails_loudly() {
    let model = MockModel::start([ModelTurn::shell("ls")]).await.unwrap();
    let request = json!({"tools": [{"type": "function", "name": "view_image",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]});
    let (status, body) = exchange(&model, &post(&request.to_string())).await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(body.contains("no shell tool fits"), "{body}");
    let (status, _) = exchange(&model, &post("{}")).await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    let errors = model.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("function:view_image"), "{errors:?}");
    assert!(errors[1].contains("script empty"), "{errors:?}");
}

#[tokio::test]
async fn oversized_or_malformed_requests_are_refused() {
    let model = MockModel::start([ModelTurn::text("unused")]).await.unwrap();
    let raw = format!(
        "POST /v1/responses HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    let (status, _) = exchange(&model, raw.as_bytes()).await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let (status, _) = exchange(&model, b"NONSENSE\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let raw = b"POST /v1/responses HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}";
    let (status, body) = exchange(&model, raw).await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(body.contains("not JSON"), "{body}");
    // Exactly MAX_HEAD bytes with no end of line: all read, then refused (nothing is
    // left unread, so the close is clean).
    let mut head = b"POST /v1/responses HTTP/1.1\r\nX: ".to_vec();
    head.resize(MAX_HEAD, b'a');
    let (status, _) = exchange(&model, &head).await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(model.errors().len(), 4, "{}", model.summary());
    assert_eq!(model.pending(), 1);
}
