//! Chapter 5's session rules in the core: the gate (`cmd::gate`, `CMD-15`, `CMD-16`,
//! `CMD-55`, `CMD-56`, `CMD-58`, `CMD-61`, `CMD-75`) and the approvals (`cmd::approvals`,
//! `CMD-28`..`CMD-33`). These are the rules' tests; the host's and the end-to-end tests
//! check that the host drives them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::cmd::approvals::{AlreadyPending, Approvals, Resolution};
use tether_proto::cmd::gate::{Access, Inbound, SessionGate};
use tether_proto::cmd::methods::{
    ApprovalTether, ClientRequest, CommandExecutionRequestApprovalParams,
};
use tether_proto::cmd::types::{ApprovalDecision, CommandAction, SandboxMode};
use tether_proto::cmd::{Id, MAX_IN_FLIGHT_REQUESTS, Message};
use tether_proto::link::{CloseCode, SessionId};

fn msg(v: Value) -> Message {
    Message::parse(v.to_string().as_bytes()).unwrap()
}

fn request(id: i64, method: &str, params: Value) -> Message {
    msg(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

fn initialize(id: i64, version: &str) -> Message {
    request(
        id,
        "initialize",
        json!({"clientInfo": {"name": "t", "version": "1"}, "capabilities": {}, "tether": {"protocolVersion": version, "capabilities": []}}),
    )
}

fn error_code(inbound: &Inbound) -> (i64, Option<CloseCode>) {
    match inbound {
        Inbound::Refused {
            reply: Message::Error(e),
            close,
        } => (e.error.code, *close),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn serves_exec(method: &str) -> bool {
    method == "command/exec"
}

const EXEC: fn() -> Message = || {
    request(
        2,
        "command/exec",
        json!({"command": ["true"], "cwd": "/", "processId": "p1"}),
    )
};

fn initialized_gate() -> SessionGate {
    let mut gate = SessionGate::new();
    let inbound = gate.handle(initialize(1, "tether/2"), Access::Allowed, 0, serves_exec);
    assert!(matches!(inbound, Inbound::Initialize { .. }), "{inbound:?}");
    gate
}

/// CMD-15: an `initialize` without `tether` is a plain app-server client's, served as a
/// `tether/2` session; its Codex `capabilities` object is accepted, a list of names is not.
#[test]
fn cmd_15_initialize_without_tether_member() {
    let mut gate = SessionGate::new();
    let plain = request(
        1,
        "initialize",
        json!({"clientInfo": {"name": "codex_vscode", "title": null, "version": "0.169.0"}, "capabilities": {"experimentalApi": true}}),
    );
    let inbound = gate.handle(plain, Access::Allowed, 0, serves_exec);
    assert!(matches!(inbound, Inbound::Initialize { .. }), "{inbound:?}");
    let mut gate = SessionGate::new();
    let listed = request(
        1,
        "initialize",
        json!({"clientInfo": {"name": "t", "version": "1"}, "capabilities": ["command.exec"]}),
    );
    assert_eq!(
        error_code(&gate.handle(listed, Access::Allowed, 0, serves_exec)),
        (-32602, None)
    );
    assert!(!gate.is_initialized());
}

/// CMD-15: before `initialize` every other request gets NotInitialized and notifications
/// are ignored; a wrong version leaves the session uninitialized; a second `initialize` is
/// AlreadyInitialized; `initialized` makes the session ready.
#[test]
fn cmd_15_initialize_first() {
    let mut gate = SessionGate::new();
    assert_eq!(
        error_code(&gate.handle(EXEC(), Access::Allowed, 0, serves_exec)),
        (-32002, None)
    );
    let initialized = msg(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    assert_eq!(
        gate.handle(initialized.clone(), Access::Allowed, 0, serves_exec),
        Inbound::Ignored
    );
    assert!(!gate.is_ready());
    assert_eq!(
        error_code(&gate.handle(initialize(1, "tether/1"), Access::Allowed, 0, serves_exec)),
        (-32602, None)
    );
    assert!(!gate.is_initialized());
    let mut gate = initialized_gate();
    assert_eq!(
        error_code(&gate.handle(initialize(3, "tether/2"), Access::Allowed, 0, serves_exec)),
        (-32600, None)
    );
    assert_eq!(
        gate.handle(initialized, Access::Allowed, 0, serves_exec),
        Inbound::Ready
    );
    assert!(gate.is_ready());
    let Inbound::Request { id, request } = gate.handle(EXEC(), Access::Allowed, 0, serves_exec)
    else {
        panic!("command/exec not admitted");
    };
    assert_eq!(id, Id::Number(2));
    assert!(matches!(request, ClientRequest::CommandExec(_)));
}

/// CMD-61: access before the in-flight limit before initialization before the method
/// before the params; the first rule broken decides.
#[test]
fn cmd_61_order_of_checks() {
    let bad_params = request(5, "command/exec", json!({"command": 7}));
    let unknown = request(6, "thread/start", json!({}));
    let full = MAX_IN_FLIGHT_REQUESTS;
    let mut fresh = SessionGate::new();
    // Refused device, overloaded, uninitialized, unknown method: access wins (CMD-55/56).
    assert_eq!(
        error_code(&fresh.handle(unknown.clone(), Access::NotAuthorized, full, serves_exec)),
        (-32011, Some(CloseCode::NOT_AUTHORIZED))
    );
    assert_eq!(
        error_code(&fresh.handle(
            unknown.clone(),
            Access::RemoteAccessDisabled,
            full,
            serves_exec
        )),
        (-32010, Some(CloseCode::REMOTE_ACCESS_DISABLED))
    );
    // Overloaded beats uninitialized (CMD-58 before CMD-15).
    assert_eq!(
        error_code(&fresh.handle(unknown.clone(), Access::Allowed, full, serves_exec)),
        (-32001, None)
    );
    // Uninitialized beats the method (CMD-15 before CMD-12).
    assert_eq!(
        error_code(&fresh.handle(unknown.clone(), Access::Allowed, 0, serves_exec)),
        (-32002, None)
    );
    let mut gate = initialized_gate();
    // The method before its params (CMD-16 before CMD-13): not served, not looked at.
    assert_eq!(
        error_code(&gate.handle(unknown, Access::Allowed, 0, serves_exec)),
        (-32601, None)
    );
    assert_eq!(
        error_code(&gate.handle(
            request(7, "thread/start", json!({"bogus": 1})),
            Access::Allowed,
            0,
            serves_exec
        )),
        (-32601, None)
    );
    assert_eq!(
        error_code(&gate.handle(bad_params, Access::Allowed, 0, serves_exec)),
        (-32602, None)
    );
    // One below the limit is admitted.
    assert!(matches!(
        gate.handle(EXEC(), Access::Allowed, full - 1, serves_exec),
        Inbound::Request { .. }
    ));
}

/// CMD-75: a refused device's response is not acted on and closes the session; its
/// notifications are ignored; CMD-14: an allowed device's response goes to the approvals.
#[test]
fn cmd_75_refused_devices_responses_and_notifications() {
    let mut gate = initialized_gate();
    let answer = msg(json!({"jsonrpc": "2.0", "id": 1, "result": {"decision": "accept"}}));
    assert_eq!(
        gate.handle(answer.clone(), Access::NotAuthorized, 0, serves_exec),
        Inbound::Close(CloseCode::NOT_AUTHORIZED)
    );
    assert_eq!(
        gate.handle(answer.clone(), Access::RemoteAccessDisabled, 0, serves_exec),
        Inbound::Close(CloseCode::REMOTE_ACCESS_DISABLED)
    );
    let cancel =
        msg(json!({"jsonrpc": "2.0", "method": "tether/cancelled", "params": {"requestId": 2}}));
    assert_eq!(
        gate.handle(cancel.clone(), Access::NotAuthorized, 0, serves_exec),
        Inbound::Ignored
    );
    assert_eq!(
        gate.handle(cancel, Access::Allowed, 0, serves_exec),
        Inbound::Cancel {
            request_id: Id::Number(2)
        }
    );
    assert_eq!(
        gate.handle(answer.clone(), Access::Allowed, 0, serves_exec),
        Inbound::Response(answer)
    );
    // CMD-12: an unknown notification is ignored.
    let other = msg(json!({"jsonrpc": "2.0", "method": "x/y", "params": {}}));
    assert_eq!(
        gate.handle(other, Access::Allowed, 0, serves_exec),
        Inbound::Ignored
    );
}

// --- approvals ---

const A: SessionId = SessionId([1; 8]);
const B: SessionId = SessionId([2; 8]);
const C: SessionId = SessionId([3; 8]);
const THREAD: &str = "thr_1";
const TIMEOUT: Duration = Duration::from_secs(300);

fn params() -> CommandExecutionRequestApprovalParams {
    CommandExecutionRequestApprovalParams {
        thread_id: THREAD.into(),
        turn_id: "turn_1".into(),
        item_id: "item_1".into(),
        started_at_ms: 1_798_761_600_000,
        command: "make test".into(),
        cwd: "/work".into(),
        command_actions: CommandAction::unknown("make test"),
        reason: None,
        available_decisions: Some(ApprovalDecision::STANDARD.to_vec()),
        tether: Some(ApprovalTether {
            sandbox: SandboxMode::WorkspaceWrite,
        }),
    }
}

fn approvals(sessions: &[(SessionId, &str)]) -> Approvals {
    let mut a = Approvals::new(TIMEOUT);
    for (s, name) in sessions {
        a.session_opened(*s, (*name).into());
    }
    a
}

/// Everything queued, as (session, JSON) pairs.
fn outgoing(a: &mut Approvals) -> Vec<(SessionId, Value)> {
    std::iter::from_fn(|| a.poll_outgoing())
        .map(|(s, m)| (s, serde_json::from_slice(&m.to_bytes()).unwrap()))
        .collect()
}

fn answer(id: i64, decision: &str) -> Message {
    msg(json!({"jsonrpc": "2.0", "id": id, "result": {"decision": decision}}))
}

fn all(_: &str) -> Vec<SessionId> {
    vec![A, B]
}

/// CMD-28: the request goes to every attached session with an id of its own id space, and
/// to a session that attaches later; at most one approval per thread.
#[test]
fn cmd_28_every_attached_session_is_asked() {
    let now = Instant::now();
    let mut a = approvals(&[(A, "phone"), (B, "laptop"), (C, "tablet")]);
    a.ask(THREAD, params(), &[A, B], now).unwrap();
    let sent = outgoing(&mut a);
    assert_eq!(sent.len(), 2);
    for (i, session) in [A, B].iter().enumerate() {
        assert_eq!(sent[i].0, *session);
        assert_eq!(sent[i].1["method"], "item/commandExecution/requestApproval");
        assert_eq!(sent[i].1["id"], 1);
        assert_eq!(sent[i].1["params"]["command"], "make test");
    }
    assert_eq!(a.ask(THREAD, params(), &[A], now), Err(AlreadyPending));
    a.attach(THREAD, C);
    a.attach(THREAD, C);
    let later = outgoing(&mut a);
    assert_eq!(later.len(), 1, "asked once: {later:?}");
    assert_eq!(later[0].0, C);
    // A second thread's approval takes the next id in A's space.
    a.ask("thr_2", params(), &[A], now).unwrap();
    assert_eq!(outgoing(&mut a)[0].1["id"], 2);
}

/// CMD-30: the first valid answer wins; every attached session asked hears
/// serverRequest/resolved with resolvedBy, every other session asked hears
/// tether/cancelled; an error response or an invalid result is not an answer.
#[test]
fn cmd_30_first_answer_wins() {
    let now = Instant::now();
    let mut a = approvals(&[(A, "phone"), (B, "laptop")]);
    a.ask(THREAD, params(), &[A, B], now).unwrap();
    let _ = outgoing(&mut a);
    let error = msg(json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "no"}}));
    a.handle_response(B, error, all);
    a.handle_response(
        B,
        msg(json!({"jsonrpc": "2.0", "id": 1, "result": {"decision": "maybe"}})),
        all,
    );
    assert!(a.poll_resolution().is_none() && a.is_pending(THREAD));
    assert!(a.take_notice().unwrap().contains("CMD-13"));
    // CMD-29: a Codex object decision decodes, but was not offered: not an answer.
    a.handle_response(
        B,
        msg(json!({"jsonrpc": "2.0", "id": 1, "result": {"decision":
            {"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["make"]}}}})),
        all,
    );
    assert!(a.poll_resolution().is_none() && a.is_pending(THREAD));
    assert!(a.take_notice().unwrap().contains("not offered"));
    a.handle_response(B, answer(1, "decline"), all);
    a.handle_response(A, answer(1, "accept"), all);
    assert_eq!(
        a.poll_resolution(),
        Some(Resolution {
            thread_id: THREAD.into(),
            decision: ApprovalDecision::Decline,
            params: params(),
            winner: Some(B),
        })
    );
    assert!(
        a.poll_resolution().is_none(),
        "the second answer changed something"
    );
    let sent = outgoing(&mut a);
    let resolved: Vec<_> = sent
        .iter()
        .filter(|(_, m)| {
            m["method"] == "serverRequest/resolved"
                && m["params"]["tether"].get("rejectedAnswer").is_none()
        })
        .collect();
    assert_eq!(resolved.len(), 2);
    for (_, m) in &resolved {
        assert_eq!(m["params"]["tether"]["decision"], "decline");
        assert_eq!(m["params"]["tether"]["resolvedBy"], "laptop");
        assert_eq!(m["params"]["requestId"], 1);
    }
    let cancelled: Vec<_> = sent
        .iter()
        .filter(|(_, m)| m["method"] == "tether/cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].0, A);
    // CMD-32: A's late answer changes nothing; A is told, with rejectedAnswer.
    let late: Vec<_> = sent
        .iter()
        .filter(|(_, m)| m["params"]["tether"].get("rejectedAnswer").is_some())
        .collect();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, A);
    assert_eq!(
        late[0].1["params"]["tether"]["rejectedAnswer"]["code"],
        -32015
    );
    assert_eq!(late[0].1["params"]["tether"]["decision"], "decline");
    // A second late answer from A: forgotten, ignored (CMD-14).
    a.handle_response(A, answer(1, "accept"), all);
    assert!(outgoing(&mut a).is_empty());
}

/// CMD-31: no answer in 300 s resolves as decline, without resolvedBy, with
/// tether/cancelled to every session asked.
#[test]
fn cmd_31_time_limit() {
    let t0 = Instant::now();
    let mut a = approvals(&[(A, "phone"), (B, "laptop")]);
    a.ask(THREAD, params(), &[A, B], t0).unwrap();
    let _ = outgoing(&mut a);
    assert_eq!(a.poll_timeout(), Some(t0 + TIMEOUT));
    a.handle_timeout(t0 + TIMEOUT - Duration::from_millis(1), all);
    assert!(a.poll_resolution().is_none());
    a.handle_timeout(t0 + TIMEOUT, all);
    let r = a.poll_resolution().unwrap();
    assert_eq!((r.decision, r.winner), (ApprovalDecision::Decline, None));
    let sent = outgoing(&mut a);
    assert_eq!(
        sent.iter()
            .filter(|(_, m)| m["method"] == "tether/cancelled")
            .count(),
        2
    );
    for (_, m) in sent
        .iter()
        .filter(|(_, m)| m["method"] == "serverRequest/resolved")
    {
        assert!(m["params"]["tether"].get("resolvedBy").is_none(), "{m}");
    }
    assert_eq!(a.poll_timeout(), None);
}

/// CMD-33: the turn ends while the approval is pending: it resolves as cancel; a session
/// that ended takes its outstanding request with it, and the approval stays pending.
#[test]
fn cmd_33_turn_ended_and_sessions_gone() {
    let now = Instant::now();
    let mut a = approvals(&[(A, "phone"), (B, "laptop")]);
    a.ask(THREAD, params(), &[A, B], now).unwrap();
    let _ = outgoing(&mut a);
    a.session_closed(A);
    assert!(a.is_pending(THREAD));
    // A's answer after its session ended is not an answer.
    a.handle_response(A, answer(1, "accept"), all);
    assert!(a.poll_resolution().is_none());
    a.cancel(THREAD, &[B]);
    let r = a.poll_resolution().unwrap();
    assert_eq!((r.decision, r.winner), (ApprovalDecision::Cancel, None));
    let sent = outgoing(&mut a);
    assert!(sent.iter().all(|(s, _)| *s == B), "{sent:?}");
    assert_eq!(sent.len(), 2, "resolved and cancelled to B: {sent:?}");
}
