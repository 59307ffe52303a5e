//! End to end: `tether connect`, the loopback WebSocket bridge an app-server client
//! (`codex --remote ws://127.0.0.1:PORT`) drives a paired host through, with real
//! `tether relay`, `tether host run` and `tether connect` processes over 127.0.0.1 and a
//! tokio-tungstenite client playing the app-server client. The client speaks as Codex's
//! does: no `"jsonrpc"` member, one message per text frame, no Tether version in
//! `initialize` (the bridge adds it). Assertions are on ids, method names and the
//! presence of `result`, not on result shapes. Every wait is bounded; every child is
//! killed on drop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod support;
use support::*;
use tether_testkit::inproc::runtime;
use tether_testkit::proc::start_until;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn world() -> World {
    let relay = start_relay("127.0.0.1:0");
    let host_state = TempDir::new("host");
    let ctl_state = TempDir::new("ctl");
    let mut c = host_run(&host_state.0, &relay.url);
    c.args(["--name", "build-box", "--allow-unsandboxed"]);
    let host = Proc::quiet(c);
    let token = mint_token(&host_state.0, 300);
    let out = TETHER.pair_when_up(&ctl_state.0, &token, CRED, "laptop");
    assert_eq!(out.code(), Some(0), "{out:?}");
    World {
        relay,
        host,
        host_state,
        ctl_state,
    }
}

/// Waits until `tether status` reaches the host.
fn wait_reachable(ctl: &Path) {
    eventually(LIMIT, "tether status", || {
        let mut c = tether();
        c.args(["status", "--state"]).arg(ctl);
        let out = run(c, LIMIT);
        if out.code() == Some(0) {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
}

/// `tether connect --state CTL ARGS...`, started: the process and the `ws://` URL it
/// printed on stdout.
fn start_connect(ctl: &Path, args: &[&str]) -> (Proc, String) {
    let mut c = tether();
    c.arg("connect").arg("--state").arg(ctl).args(args);
    c.stderr(std::process::Stdio::null());
    let (proc, line) = start_until(c, "ws://", LIMIT);
    let url = line.trim().to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    (proc, url)
}

async fn client(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("WebSocket handshake in time")
        .expect("WebSocket handshake");
    ws
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(WsMessage::text(message.to_string())).await.unwrap();
}

/// What the bridge sent: a message (one text frame, parsed), or the close frame's code
/// and reason, or the end of the stream.
#[derive(Debug)]
enum Got {
    Message(Value),
    Close(Option<(CloseCode, String)>),
    End(#[expect(dead_code, reason = "shown in failure messages")] String),
}

async fn next(ws: &mut Ws) -> Got {
    loop {
        let frame = tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("a frame from the bridge in time");
        match frame {
            Some(Ok(WsMessage::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("not one JSON message per frame: {e}: {t}"));
                return Got::Message(v);
            }
            Some(Ok(WsMessage::Binary(b))) => panic!("the bridge sent a binary frame: {b:?}"),
            Some(Ok(WsMessage::Close(c))) => {
                return Got::Close(c.map(|c| (c.code, c.reason.as_str().to_owned())));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Got::End(e.to_string()),
            None => return Got::End("stream ended".to_owned()),
        }
    }
}

async fn next_message(ws: &mut Ws) -> Value {
    match next(ws).await {
        Got::Message(v) => v,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The answer to request `id`, skipping notifications and other messages (returned in
/// `skipped`).
async fn answer(ws: &mut Ws, id: i64, skipped: &mut Vec<Value>) -> Value {
    loop {
        let m = next_message(ws).await;
        if m.get("method").is_none() && m["id"] == id {
            return m;
        }
        skipped.push(m);
    }
}

/// `initialize` as an app-server client sends it (no Tether version: the bridge adds it),
/// its answer, and `initialized`.
async fn initialize(ws: &mut Ws, id: i64) -> Value {
    send(
        ws,
        json!({"id": id, "method": "initialize", "params": {
            "clientInfo": {"name": "codex-tui-test", "title": null, "version": "0.0.0"}
        }}),
    )
    .await;
    let answer = answer(ws, id, &mut Vec::new()).await;
    assert!(answer.get("result").is_some(), "initialize: {answer}");
    send(ws, json!({"method": "initialized"})).await;
    answer
}

async fn expect_close(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        match next(ws).await {
            Got::Message(_) => {}
            Got::Close(Some(c)) => return c,
            other => panic!("expected a close frame with a reason, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------

/// The whole path: initialize, thread/start, turn/start with a command that needs
/// approval (test agent `$ `, CMD-59, policy untrusted), the approval request reaching
/// the WebSocket client and its answer reaching the host, then `turn/completed`.
#[test]
fn a_websocket_client_runs_a_turn_and_answers_its_approval_through_the_bridge() {
    let w = world();
    wait_reachable(&w.ctl_state.0);
    let (_bridge, url) = start_connect(&w.ctl_state.0, &[]);
    runtime().block_on(async {
        let mut ws = client(&url).await;
        let init = initialize(&mut ws, 1).await;
        // The host's own result, passed through (no "jsonrpc" needed from the client,
        // CMD-7; whatever the host sends is forwarded as is).
        assert!(init["result"].is_object(), "{init}");

        send(
            &mut ws,
            json!({"id": 2, "method": "thread/start", "params": {"approvalPolicy": "untrusted"}}),
        )
        .await;
        let started = answer(&mut ws, 2, &mut Vec::new()).await;
        let thread = started["result"]["thread"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("thread/start: {started}"))
            .to_owned();

        send(
            &mut ws,
            json!({"id": 3, "method": "turn/start", "params": {
                "threadId": thread,
                "input": [{"type": "text", "text": "$ echo bridged-hi"}]
            }}),
        )
        .await;
        let mut methods = Vec::new();
        let mut turn_answered = false;
        let mut approval_seen = None;
        let completed = loop {
            let m = next_message(&mut ws).await;
            if m.get("method").is_none() {
                assert_eq!(m["id"], 3, "only turn/start is outstanding: {m}");
                assert!(m.get("result").is_some(), "turn/start: {m}");
                turn_answered = true;
                continue;
            }
            let method = m["method"].as_str().unwrap().to_owned();
            methods.push(method.clone());
            if method == "item/commandExecution/requestApproval" {
                // A server request: it has an id, and its command is ours.
                let id = m["id"].clone();
                assert!(!id.is_null(), "{m}");
                assert_eq!(m["params"]["threadId"], thread.as_str());
                assert!(m.to_string().contains("echo bridged-hi"), "{m}");
                approval_seen = Some(id.clone());
                send(&mut ws, json!({"id": id, "result": {"decision": "accept"}})).await;
            }
            if method == "turn/completed" {
                break m;
            }
        };
        assert!(
            turn_answered,
            "turn/start was answered before turn/completed"
        );
        assert!(
            approval_seen.is_some(),
            "an approval request reached the client: {methods:?}"
        );
        assert_eq!(completed["params"]["threadId"], thread.as_str());
        assert_eq!(
            completed["params"]["turn"]["status"], "completed",
            "{completed}"
        );
        // The command ran after the approval: its item completed, and the host told the
        // client the request was resolved.
        for wanted in ["turn/started", "item/completed", "serverRequest/resolved"] {
            assert!(methods.iter().any(|m| m == wanted), "{wanted}: {methods:?}");
        }
        ws.close(None).await.unwrap();
    });
}

/// Two WebSocket clients at once get two sessions: each initializes (a shared session
/// would answer the second `initialize` with AlreadyInitialized, CMD-15), ids of one never
/// reach the other, and one closing leaves the other working. Then Ctrl-C (SIGINT) closes
/// the remaining connection with a reason and the bridge exits 0.
#[test]
fn two_clients_get_independent_sessions_and_ctrl_c_closes_them() {
    let w = world();
    wait_reachable(&w.ctl_state.0);
    let (mut bridge, url) = start_connect(&w.ctl_state.0, &[]);
    runtime().block_on(async {
        let mut a = client(&url).await;
        let mut b = client(&url).await;
        initialize(&mut a, 1).await;
        initialize(&mut b, 1).await;

        // Same id on both: each gets its own answer, once.
        send(
            &mut a,
            json!({"id": 7, "method": "thread/list", "params": {}}),
        )
        .await;
        send(
            &mut b,
            json!({"id": 7, "method": "thread/start", "params": {}}),
        )
        .await;
        let list = answer(&mut a, 7, &mut Vec::new()).await;
        assert!(list["result"]["data"].is_array(), "{list}");
        let started = answer(&mut b, 7, &mut Vec::new()).await;
        assert!(started["result"]["thread"]["id"].is_string(), "{started}");

        // A second initialize on a's session is refused: it is a's own session.
        send(
            &mut a,
            json!({"id": 8, "method": "initialize", "params": {
                "clientInfo": {"name": "again", "version": "0"}}}),
        )
        .await;
        let again = answer(&mut a, 8, &mut Vec::new()).await;
        assert_eq!(again["error"]["code"], -32600, "{again}");

        a.close(None).await.unwrap();
        send(
            &mut b,
            json!({"id": 9, "method": "thread/list", "params": {}}),
        )
        .await;
        let list = answer(&mut b, 9, &mut Vec::new()).await;
        assert!(list["result"]["data"].is_array(), "{list}");
        // b sees the thread it started: the host served b as one session throughout.
        assert!(
            list.to_string()
                .contains(started["result"]["thread"]["id"].as_str().unwrap())
        );

        bridge.signal("INT");
        let (code, reason) = expect_close(&mut b).await;
        assert_eq!(code, CloseCode::Away, "{reason}");
        assert!(reason.contains("stopping"), "{reason}");
    });
    let status = bridge
        .wait_exit(LIMIT)
        .expect("tether connect exits after Ctrl-C");
    assert!(status.success(), "{status}");
}

/// A binary frame and a message longer than the session carries each close the connection
/// with a reason (1003, 1009); a browser's handshake (with an Origin header) is refused;
/// the bridge keeps serving new connections after each.
#[test]
fn binary_frames_oversize_messages_and_browsers_are_refused() {
    let w = world();
    wait_reachable(&w.ctl_state.0);
    let (_bridge, url) = start_connect(&w.ctl_state.0, &[]);
    runtime().block_on(async {
        let mut ws = client(&url).await;
        initialize(&mut ws, 1).await;
        ws.send(WsMessage::binary(b"{\"id\":2}".to_vec()))
            .await
            .unwrap();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, CloseCode::Unsupported, "{reason}");
        assert!(reason.contains("text frame"), "{reason}");

        // 16 MiB (the most a session with records carries, CHAN-31) plus one byte.
        let mut ws = client(&url).await;
        initialize(&mut ws, 1).await;
        let big = format!(
            "{{\"id\":2,\"method\":\"thread/list\",\"params\":{{\"cursor\":\"{}\"}}}}",
            "x".repeat(16 * 1024 * 1024)
        );
        ws.send(WsMessage::text(big)).await.unwrap();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, CloseCode::Size, "{reason}");
        assert!(reason.contains("at most"), "{reason}");

        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", "https://example.com".parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
            Err(e) => panic!("expected HTTP 403, got {e}"),
            Ok(_) => panic!("a handshake with an Origin header was accepted"),
        }

        // Still serving.
        let mut ws = client(&url).await;
        initialize(&mut ws, 1).await;
    });
}

/// The host going away ends the session: the bridge closes the WebSocket with 1001 and a
/// reason naming the host; a connection made while the host is down is closed with the
/// reason it cannot be reached.
#[test]
fn killing_the_host_closes_the_websocket_with_a_reason() {
    let mut w = world();
    wait_reachable(&w.ctl_state.0);
    let (_bridge, url) = start_connect(&w.ctl_state.0, &[]);
    runtime().block_on(async {
        let mut ws = client(&url).await;
        initialize(&mut ws, 1).await;
        w.host.kill();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, CloseCode::Away, "{reason}");
        assert!(reason.contains("build-box"), "{reason}");
        assert!(reason.contains("ended"), "{reason}");

        let mut ws = client(&url).await;
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, CloseCode::Error, "{reason}");
        assert!(reason.contains("cannot reach host build-box"), "{reason}");
    });
}

/// The relay going away ends the link under the session: the WebSocket is closed with
/// 1001 and a reason, and the bridge itself keeps running until Ctrl-C (SIGINT), which it
/// handles from the moment its URL is printed.
#[test]
fn losing_the_relay_closes_the_websocket_with_a_reason_and_ctrl_c_stops_the_bridge() {
    let mut w = world();
    wait_reachable(&w.ctl_state.0);
    let (mut bridge, url) = start_connect(&w.ctl_state.0, &[]);
    runtime().block_on(async {
        let mut ws = client(&url).await;
        initialize(&mut ws, 1).await;
        w.relay.proc.kill();
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, CloseCode::Away, "{reason}");
        assert!(reason.contains("build-box"), "{reason}");
    });
    assert!(
        bridge.0.try_wait().unwrap().is_none(),
        "tether connect is still running"
    );
    // Ctrl-C with no connection, and Ctrl-C the moment the URL is out: a clean exit.
    bridge.signal("INT");
    let status = bridge.wait_exit(LIMIT).expect("exits after Ctrl-C");
    assert!(status.success(), "{status}");
    let (mut early, _) = start_connect(&w.ctl_state.0, &[]);
    early.signal("INT");
    let status = early.wait_exit(LIMIT).expect("exits after Ctrl-C");
    assert!(status.success(), "{status}");
}

/// `--listen` on an address that is not loopback is refused (usage error, exit 2) before
/// anything else; `--allow-non-loopback` lifts exactly that check.
#[test]
fn a_non_loopback_listen_address_is_refused() {
    let ctl = TempDir::new("ctl");
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        let mut c = tether();
        c.args(["connect", "--listen", addr, "--state"]).arg(&ctl.0);
        let out = run(c, LIMIT);
        assert_eq!(out.code(), Some(2), "{addr}: {out:?}");
        assert!(
            out.stderr.contains("is not a loopback address"),
            "{addr}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{addr}: {out:?}");
    }
    // With the flag the loopback check passes; with no paired host it fails on that.
    let mut c = tether();
    c.args([
        "connect",
        "--listen",
        "0.0.0.0:0",
        "--allow-non-loopback",
        "--state",
    ])
    .arg(&ctl.0);
    let out = run(c, LIMIT);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(!out.stderr.contains("loopback"), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}
