//! Threads, turns and approvals of the controller library against an in-process relay and
//! a scripted host (`tether_proto::session::Host`) that follows `spec/05` 5.3..5.5 for one
//! command per turn: the notification order of `CMD-24`, approval requests to every
//! attached session (`CMD-28`), first answer wins and `serverRequest/resolved` to all
//! (`CMD-30`), late answers rejected (`CMD-32`), `turn/interrupt` resolving a pending
//! approval as `cancel` (`CMD-23`, `CMD-33`). The real host is tested end to end in
//! `reference/cli/tests/e2e_threads.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use tether_controller::threads::{EXIT_DECLINED, EXIT_INTERRUPTED};
use tether_controller::{
    ApprovalRequest, Connection, ControllerState, DecisionFuture, FixedDecision, LinkOptions,
    SessionEvent, SessionOptions, TurnEvent, connect, connect_session, initialize_params, pair,
    run_turn, run_turn_until, thread_list, thread_start,
};
use tether_proto::channel::{HostInfo, PathStyle};
use tether_proto::cmd::methods::ThreadStartParams;
use tether_proto::cmd::types::{ApprovalDecision, ThreadItem, TurnStatus};
use tether_proto::cmd::{
    ClientRequest, CommandError, ErrorResponse, Id, Message, Notification, Request, Response, codes,
};
use tether_proto::keys::public_key;
use tether_proto::link::{RelayFrame, SessionId};
use tether_proto::session::{Host, HostConfig, HostEvent, MemoryHostStore};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;
use tether_relay::client;
use tether_testkit::inproc;
use tokio::sync::mpsc;

mod support;
use support::*;

// ---------------------------------------------------------------------------------------
// The scripted host.

struct PendingApproval {
    thread: String,
    turn: String,
    item: String,
    command: String,
    /// The request as sent to each session, with that session's id.
    sent: Vec<(SessionId, Id)>,
}

#[derive(Default)]
struct Fake {
    next: u64,
    names: HashMap<SessionId, String>,
    attached: HashMap<String, Vec<SessionId>>,
    next_request_id: HashMap<SessionId, i64>,
    pending: Option<PendingApproval>,
    /// Approvals already resolved: (session, id as sent to it) -> (thread, decision).
    resolved: HashMap<(SessionId, Id), (String, &'static str)>,
    out: Vec<(SessionId, Message)>,
    /// Every error response a controller sent the host (CMD-12, CMD-13 checks).
    errors_received: Arc<Mutex<Vec<ErrorResponse>>>,
}

fn thread_json(id: &str) -> Value {
    json!({"id": id, "sessionId": id, "cwd": "/w", "createdAt": 1, "updatedAt": 2,
        "status": {"type": "idle"}, "preview": "", "turns": [], "ephemeral": false,
        "cliVersion": "0", "modelProvider": "tether-test", "source": "appServer",
        "projectId": null,
        "tether": {"sandbox": "workspace-write", "approvalPolicy": "untrusted"}})
}

fn opened(id: &str) -> Value {
    json!({"thread": thread_json(id), "approvalPolicy": "untrusted",
        "approvalsReviewer": "user", "cwd": "/w", "model": "tether-test",
        "modelProvider": "tether-test",
        "sandbox": {"type": "workspaceWrite", "writableRoots": ["/w"], "networkAccess": false},
        "instructionSources": ["/w/AGENTS.md"],
        "tether": {"sandbox": {"requested": "workspace-write",
        "enforced": "workspace-write", "network": "denied", "degraded": false,
        "mechanism": "landlock"}}})
}

impl Fake {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{}", self.next)
    }

    fn send(&mut self, s: SessionId, m: Message) {
        self.out.push((s, m));
    }

    fn notify(&mut self, s: SessionId, method: &str, params: Value) {
        self.send(
            s,
            Message::Notification(Notification::new(method, Some(params))),
        );
    }

    fn broadcast(&mut self, thread: &str, method: &str, params: Value) {
        for s in self.attached.get(thread).cloned().unwrap_or_default() {
            self.notify(s, method, params.clone());
        }
    }

    fn attach(&mut self, thread: &str, s: SessionId) {
        let list = self.attached.entry(thread.to_owned()).or_default();
        if !list.contains(&s) {
            list.push(s);
        }
    }

    fn reply(&mut self, s: SessionId, id: Id, result: Value) {
        self.send(s, Message::Response(Response::new(id, &result).unwrap()));
    }

    fn ask(&mut self, s: SessionId) {
        let Some(p) = &self.pending else { return };
        let n = self.next_request_id.entry(s).or_insert(100);
        *n += 1;
        let id = Id::from(*n);
        let params = json!({"threadId": p.thread, "turnId": p.turn, "itemId": p.item,
            "startedAtMs": 1, "command": p.command, "cwd": "/w",
            "commandActions": [{"type": "unknown", "command": p.command}],
            "reason": "policy untrusted",
            "availableDecisions": ["accept", "acceptForSession", "decline", "cancel"],
            "tether": {"sandbox": "workspace-write"}});
        let request = Request::new(
            id.clone(),
            "item/commandExecution/requestApproval",
            Some(params),
        );
        if let Some(p) = self.pending.as_mut() {
            p.sent.push((s, id));
        }
        self.send(s, Message::Request(request));
    }

    fn request(&mut self, s: SessionId, req: Request) {
        match ClientRequest::from_request(&req) {
            Ok(ClientRequest::Initialize(_)) => {
                let n = self.names.len() + 1;
                self.names.insert(s, format!("controller-{n}"));
                let result = json!({
                    "serverInfo": {"name": "test-host", "version": "0"},
                    "protocolVersion": "tether/1",
                    "capabilities": ["agent.test", "thread.handoff"],
                    "sandbox": {"modes": ["read-only", "workspace-write", "danger-full-access"],
                        "mechanism": "landlock", "degrade": false},
                    "platform": {"os": "linux", "arch": "x86_64", "pathStyle": "posix"}
                });
                self.reply(s, req.id, result);
            }
            Ok(ClientRequest::ThreadStart(_)) => {
                let id = self.id("thr");
                self.attach(&id, s);
                self.reply(s, req.id, opened(&id));
            }
            Ok(ClientRequest::ThreadResume(p)) => {
                self.attach(&p.thread_id, s);
                self.reply(s, req.id, opened(&p.thread_id));
                // CMD-19: a pending approval goes to the session that attaches.
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|a| a.thread == p.thread_id)
                {
                    self.ask(s);
                }
            }
            Ok(ClientRequest::ThreadList(p)) if p.cursor.is_some() => {
                // CMD-20: the second and last page.
                assert_eq!(p.cursor.as_deref(), Some("page-2"));
                self.reply(
                    s,
                    req.id,
                    json!({"data": [thread_json("thr_y")], "nextCursor": null}),
                );
            }
            Ok(ClientRequest::ThreadList(p)) if p.limit == Some(1000) => {
                self.reply(
                    s,
                    req.id,
                    json!({"data": [thread_json("thr_x")], "nextCursor": "page-2"}),
                );
            }
            Ok(ClientRequest::ThreadExport(p)) => {
                let bundle = json!({"version": 1, "cwdRelative": "service",
                    "sandbox": "workspace-write", "approvalPolicy": "untrusted",
                    "items": [{"type": "userMessage", "id": "item_1",
                        "content": [{"type": "text", "text": format!("from {}", p.thread_id)}]}],
                    "exportedAt": 1});
                self.reply(s, req.id, json!({ "bundle": bundle }));
            }
            Ok(ClientRequest::ThreadImport(p)) => {
                let id = self.id("thr");
                self.attach(&id, s);
                let mut o = opened(&id);
                o["thread"]["cwd"] = json!(format!(
                    "{}/{}",
                    p.project_root.unwrap_or_default(),
                    p.bundle.cwd_relative
                ));
                self.reply(s, req.id, o);
            }
            Ok(ClientRequest::ThreadList(_)) => {
                // CMD-12, CMD-13: the controller must answer these itself.
                let bogus = Request::new(Id::from(7), "bogus/method", None);
                self.send(s, Message::Request(bogus));
                let bad = Request::new(
                    Id::from(8),
                    "item/commandExecution/requestApproval",
                    Some(json!({"threadId": 5})),
                );
                self.send(s, Message::Request(bad));
                self.reply(s, req.id, json!({"data": [thread_json("thr_x")]}));
            }
            Ok(ClientRequest::TurnStart(p)) => self.turn_start(s, req.id, &p.thread_id, &p.input),
            Ok(ClientRequest::TurnInterrupt(p)) => {
                let matches = self
                    .pending
                    .as_ref()
                    .is_some_and(|a| a.turn == p.turn_id && a.thread == p.thread_id);
                if matches {
                    // CMD-23, CMD-33: the pending approval resolves as cancel, no
                    // resolvedBy; turn/completed comes before the answer.
                    self.resolve(None, "cancel");
                    self.reply(s, req.id, json!({}));
                } else {
                    let e = CommandError::TurnNotFound { turn_id: p.turn_id };
                    self.send(s, Message::Error(ErrorResponse::new(Some(req.id), &e)));
                }
            }
            Ok(_) | Err(_) => {
                let e = CommandError::MethodNotFound {
                    method: req.method.clone(),
                };
                self.send(s, Message::Error(ErrorResponse::new(Some(req.id), &e)));
            }
        }
    }

    fn turn_start(
        &mut self,
        s: SessionId,
        id: Id,
        thread: &str,
        input: &[tether_proto::cmd::types::UserInput],
    ) {
        self.attach(thread, s);
        let turn = self.id("turn");
        let text = input[0].as_text().unwrap_or_default().to_owned();
        let text = &text;
        self.reply(
            s,
            id,
            json!({"turn": {"id": turn, "status": "inProgress", "items": []}}),
        );
        let (started_at, completed_at) = (json!({"startedAtMs": 1}), json!({"completedAtMs": 2}));
        let with = |mut v: Value, extra: &Value| {
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        let t = |extra: Value| {
            let mut v = json!({"threadId": thread, "turnId": turn});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        self.broadcast(
            thread,
            "turn/started",
            json!({"threadId": thread, "turn": {"id": turn, "status": "inProgress", "items": []}}),
        );
        let user = json!({"type": "userMessage", "id": self.id("item"),
            "content": [{"type": "text", "text": text, "text_elements": []}]});
        self.broadcast(
            thread,
            "item/started",
            with(t(json!({"item": user})), &started_at),
        );
        self.broadcast(
            thread,
            "item/completed",
            with(t(json!({"item": user})), &completed_at),
        );
        // An item type this controller does not know: kept, not refused (CMD-78).
        let other = json!({"type": "reasoning", "id": self.id("item"), "summary": []});
        self.broadcast(
            thread,
            "item/started",
            with(t(json!({"item": other})), &started_at),
        );
        let Some(command) = text.strip_prefix("$ ") else {
            let agent = json!({"type": "agentMessage", "id": self.id("item"), "text": text});
            self.broadcast(
                thread,
                "item/started",
                with(t(json!({"item": agent})), &started_at),
            );
            self.broadcast(
                thread,
                "item/completed",
                with(t(json!({"item": agent})), &completed_at),
            );
            self.broadcast(
                thread,
                "turn/completed",
                json!({"threadId": thread, "turn": {"id": turn, "status": "completed",
                    "items": [user, agent]}}),
            );
            return;
        };
        let item = self.id("item");
        let started = json!({"type": "commandExecution", "id": item, "command": command,
            "cwd": "/w", "status": "inProgress",
            "commandActions": [{"type": "unknown", "command": command}]});
        self.broadcast(
            thread,
            "item/started",
            with(t(json!({"item": started})), &started_at),
        );
        self.pending = Some(PendingApproval {
            thread: thread.to_owned(),
            turn: turn.clone(),
            item,
            command: command.to_owned(),
            sent: Vec::new(),
        });
        for s in self.attached.get(thread).cloned().unwrap_or_default() {
            self.ask(s);
        }
        let _ = user;
    }

    /// Resolves the pending approval: serverRequest/resolved to every attached session,
    /// notifications/cancelled to the others asked, then the rest of the turn.
    fn resolve(&mut self, by: Option<SessionId>, decision: &'static str) {
        let Some(p) = self.pending.take() else { return };
        let resolved_by = by.and_then(|s| self.names.get(&s).cloned());
        for (s, id) in &p.sent {
            let mut params = json!({"threadId": p.thread, "requestId": id.to_value(),
                "tether": {"decision": decision}});
            if let Some(name) = &resolved_by {
                params["tether"]["resolvedBy"] = json!(name);
            }
            self.notify(*s, "serverRequest/resolved", params);
            if Some(*s) != by {
                self.notify(
                    *s,
                    "notifications/cancelled",
                    json!({"requestId": id.to_value()}),
                );
            }
            self.resolved
                .insert((*s, id.clone()), (p.thread.clone(), decision));
        }
        let t = json!({"threadId": p.thread, "turnId": p.turn});
        let with = |extra: Value| {
            let mut v = t.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        let (item, status) = match decision {
            "accept" | "acceptForSession" => {
                let code: i32 = p
                    .command
                    .strip_prefix("exit ")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                for text in ["ran\n", "warn\n"] {
                    self.broadcast(
                        &p.thread,
                        "item/commandExecution/outputDelta",
                        with(json!({"itemId": p.item, "delta": text})),
                    );
                }
                let status = if code == 0 { "completed" } else { "failed" };
                (
                    json!({"type": "commandExecution", "id": p.item, "command": p.command,
                        "cwd": "/w", "status": status, "exitCode": code, "commandActions": [],
                        "aggregatedOutput": "ran\nwarn\n", "durationMs": 5}),
                    "completed",
                )
            }
            "decline" => (
                json!({"type": "commandExecution", "id": p.item, "command": p.command,
                    "cwd": "/w", "status": "declined", "commandActions": []}),
                "completed",
            ),
            _ => (
                json!({"type": "commandExecution", "id": p.item, "command": p.command,
                    "cwd": "/w", "status": "declined", "commandActions": []}),
                "interrupted",
            ),
        };
        self.broadcast(
            &p.thread,
            "item/completed",
            with(json!({"item": item, "completedAtMs": 3})),
        );
        self.broadcast(
            &p.thread,
            "turn/completed",
            json!({"threadId": p.thread, "turn": {"id": p.turn, "status": status,
                "items": [item]}}),
        );
    }

    fn response(&mut self, s: SessionId, r: Response) {
        let decision = r
            .result
            .get("decision")
            .and_then(Value::as_str)
            .and_then(|d| match d {
                "accept" => Some("accept"),
                "acceptForSession" => Some("acceptForSession"),
                "decline" => Some("decline"),
                "cancel" => Some("cancel"),
                _ => None,
            });
        let ours = self
            .pending
            .as_ref()
            .is_some_and(|p| p.sent.contains(&(s, r.id.clone())));
        if ours {
            if let Some(d) = decision {
                self.resolve(Some(s), d);
            }
        } else if let Some((thread, d)) = self.resolved.get(&(s, r.id.clone())).cloned() {
            // CMD-32: a late answer changes nothing and is told so.
            self.notify(
                s,
                "serverRequest/resolved",
                json!({"threadId": thread, "requestId": r.id.to_value(), "tether": {"decision": d,
                    "rejectedAnswer": {"code": codes::APPROVAL_ALREADY_RESOLVED,
                        "message": "approval already resolved"}}}),
            );
        }
    }

    fn handle(&mut self, s: SessionId, m: Message) {
        match m {
            Message::Request(r) => self.request(s, r),
            Message::Response(r) => self.response(s, r),
            Message::Error(e) => self.errors_received.lock().unwrap().push(e),
            Message::Notification(_) => {}
        }
    }
}

struct TestHost {
    key: [u8; 32],
    store: Arc<Mutex<MemoryHostStore>>,
    errors_received: Arc<Mutex<Vec<ErrorResponse>>>,
}

async fn start_host(url: &str) -> TestHost {
    let private = rng();
    let key = public_key(&private);
    let store = Arc::new(Mutex::new(MemoryHostStore::new()));
    let mut link = inproc::host_link(url, &private, "acme", CREDENTIAL.as_bytes())
        .await
        .unwrap();
    let mut host = Host::new(HostConfig {
        static_private: private,
        workspace: "acme".into(),
        host_info: HostInfo {
            name: "build-box".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            shell: "sh".into(),
            path_style: PathStyle::Posix,
            capabilities: vec!["agent.test".into()],
            protocol: "tether/1".into(),
        },
        remote_access: true,
        confirm_pairing: false,
    });
    let errors_received: Arc<Mutex<Vec<ErrorResponse>>> = Arc::default();
    let mut fake = Fake {
        errors_received: errors_received.clone(),
        ..Fake::default()
    };
    let store2 = store.clone();
    tokio::spawn(async move {
        while let Ok(Some(frame)) = client::recv_frame(&mut link).await {
            match frame {
                RelayFrame::Incoming { session, handshake } => {
                    let mut s = store2.lock().unwrap();
                    host.handle_incoming(
                        session,
                        &handshake,
                        Instant::now(),
                        UnixTime::now(),
                        &mut *s,
                    );
                }
                RelayFrame::Data { session, payload } => host.handle_data(session, &payload),
                RelayFrame::Close { session, code } => host.handle_close(session, code),
                RelayFrame::Ping { value } => {
                    let _ = client::send_frame(&mut link, &RelayFrame::Pong { value }).await;
                }
                _ => {}
            }
            while let Some(ev) = host.poll_event() {
                if let HostEvent::Message { session, message } = ev {
                    fake.handle(session, message);
                }
            }
            for (s, m) in std::mem::take(&mut fake.out) {
                let _ = host.send(s, &m);
            }
            while let Some(f) = host.poll_transmit() {
                let _ = client::send_frame(&mut link, &f).await;
            }
        }
    });
    TestHost {
        key,
        store,
        errors_received,
    }
}

fn token(host: &TestHost, url: &str) -> String {
    let id = rng()[..16].try_into().unwrap();
    let secret = rng();
    let expires = UnixTime::now().as_secs() + 300;
    host.store.lock().unwrap().add_token(id, &secret, expires);
    PairingToken::new(
        host.key,
        id,
        secret,
        expires,
        "acme",
        url,
        Some("build-box".into()),
    )
    .unwrap()
    .to_text()
}

/// A paired controller, connected.
async fn controller(
    relay: &TestRelay,
    host: &TestHost,
    name: &str,
) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let state = ControllerState::open(dir.path()).unwrap();
    let opts = LinkOptions::default();
    pair(
        &state,
        &token(host, &relay.url),
        CREDENTIAL,
        name,
        &opts,
        |_| {},
    )
    .await
    .unwrap();
    let stored = state.find_host(None).unwrap();
    let conn = connect(&state, &stored, &opts).await.unwrap();
    (dir, conn)
}

/// A short label per event, to check the order.
fn label(e: &TurnEvent) -> String {
    match e {
        TurnEvent::Started(_) => "turn/started".into(),
        TurnEvent::ItemStarted(i) => format!("item/started {}", kind(i)),
        TurnEvent::ItemCompleted(i) => format!("item/completed {}", kind(i)),
        TurnEvent::Output { text, .. } => format!("output {text:?}"),
        TurnEvent::ApprovalRequested(_) => "requestApproval".into(),
        TurnEvent::ApprovalAnswered { decision, .. } => format!("answered {decision:?}"),
        TurnEvent::Resolved(r) => {
            let t = r.tether.as_ref().unwrap();
            format!(
                "resolved {:?} by {}",
                t.decision,
                t.resolved_by.as_deref().unwrap_or("host")
            )
        }
        TurnEvent::ApprovalWithdrawn { .. } => "withdrawn".into(),
        TurnEvent::InterruptSent => "interrupt".into(),
        TurnEvent::Completed(t) => format!("turn/completed {:?}", t.status),
        _ => "other".into(),
    }
}

fn kind(i: &ThreadItem) -> &'static str {
    match i {
        ThreadItem::UserMessage(_) => "user",
        ThreadItem::AgentMessage(_) => "agent",
        ThreadItem::CommandExecution(_) => "command",
        ThreadItem::Other(o) => {
            assert_eq!(o.kind, "reasoning");
            "other"
        }
    }
}

#[tokio::test]
async fn cmd_24_cmd_29_turns_with_each_decision() {
    bounded(async {
        let relay = start_relay().await;
        let host = start_host(&relay.url).await;
        let (_dir, mut conn) = controller(&relay, &host, "laptop").await;
        let opened = thread_start(&conn.session, &ThreadStartParams::default())
            .await
            .unwrap();
        let thread = opened.thread.id;

        // accept: the order of CMD-24, output decoded, the command's exit status.
        let mut events = Vec::new();
        let mut output = Vec::new();
        let outcome = run_turn(
            &mut conn.session,
            &thread,
            "$ exit 3",
            &mut FixedDecision(Some(ApprovalDecision::Accept)),
            |e| {
                if let TurnEvent::Output { text, .. } = e {
                    output.extend_from_slice(text.as_bytes());
                }
                events.push(label(e));
            },
        )
        .await
        .unwrap();
        assert_eq!(
            events,
            [
                "turn/started",
                "item/started user",
                "item/completed user",
                "item/started other",
                "item/started command",
                "requestApproval",
                "answered Accept",
                "resolved Accept by controller-1",
                "output \"ran\\n\"",
                "output \"warn\\n\"",
                "item/completed command",
                "turn/completed Completed",
            ]
        );
        assert_eq!(output, b"ran\nwarn\n");
        assert_eq!(outcome.exit_status(), 3);
        assert_eq!(outcome.last_command().unwrap().exit_code, Some(3));
        assert!(outcome.rejected_answers.is_empty());

        // decline: nothing ran, the turn completes.
        let mut output = 0;
        let outcome = run_turn(
            &mut conn.session,
            &thread,
            "$ touch x",
            &mut FixedDecision(Some(ApprovalDecision::Decline)),
            |e| output += usize::from(matches!(e, TurnEvent::Output { .. })),
        )
        .await
        .unwrap();
        assert_eq!(output, 0);
        assert_eq!(outcome.turn.status, TurnStatus::Completed);
        assert_eq!(outcome.exit_status(), EXIT_DECLINED);

        // cancel: nothing ran, the turn is interrupted.
        let outcome = run_turn(
            &mut conn.session,
            &thread,
            "$ touch x",
            &mut FixedDecision(Some(ApprovalDecision::Cancel)),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(outcome.turn.status, TurnStatus::Interrupted);
        assert_eq!(outcome.exit_status(), EXIT_INTERRUPTED);
        assert!(!outcome.interrupted_here);

        // No command: the agent's message, exit 0.
        let mut events = Vec::new();
        let outcome = run_turn(
            &mut conn.session,
            &thread,
            "hello",
            &mut FixedDecision(None),
            |e| events.push(label(e)),
        )
        .await
        .unwrap();
        assert_eq!(outcome.exit_status(), 0);
        assert!(events.contains(&"item/completed agent".to_owned()));
        conn.close().await;
    })
    .await;
}

#[tokio::test]
async fn cmd_23_cmd_33_interrupt_while_an_approval_is_pending() {
    bounded(async {
        let relay = start_relay().await;
        let host = start_host(&relay.url).await;
        let (_dir, mut conn) = controller(&relay, &host, "laptop").await;
        let thread = thread_start(&conn.session, &ThreadStartParams::default())
            .await
            .unwrap()
            .thread
            .id;
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        // Never answers: the prompt is abandoned when the host resolves it.
        let mut approver = |r: &ApprovalRequest| -> DecisionFuture {
            let _ = seen_tx.send(r.params.command.clone());
            Box::pin(std::future::pending())
        };
        let interrupt = async move {
            let _ = seen_rx.recv().await;
        };
        let mut events = Vec::new();
        let outcome = run_turn_until(
            &mut conn.session,
            &thread,
            "$ sleep 100",
            &mut approver,
            interrupt,
            |e| events.push(label(e)),
        )
        .await
        .unwrap();
        assert!(outcome.interrupted_here);
        assert_eq!(outcome.turn.status, TurnStatus::Interrupted);
        assert_eq!(outcome.exit_status(), EXIT_INTERRUPTED);
        let tail: Vec<_> = events.iter().skip(5).cloned().collect();
        assert_eq!(
            tail,
            [
                "requestApproval",
                "interrupt",
                "resolved Cancel by host",
                "item/completed command",
                "turn/completed Interrupted",
            ]
        );
        conn.close().await;
    })
    .await;
}

/// CMD-12, CMD-13: a server request of an unknown method, or with bad params, is answered
/// by the session with the typed error and never reaches the application.
#[tokio::test]
async fn cmd_12_cmd_13_unknown_server_requests_are_answered() {
    bounded(async {
        let relay = start_relay().await;
        let host = start_host(&relay.url).await;
        let (_dir, mut conn) = controller(&relay, &host, "laptop").await;
        let list = thread_list(&conn.session, None, None).await.unwrap();
        assert_eq!(list.data.len(), 1);
        // The answers travel back; a second round trip makes sure they arrived.
        thread_list(&conn.session, None, None).await.unwrap();
        let errors = host.errors_received.lock().unwrap().clone();
        let by_id = |id: i64| {
            errors
                .iter()
                .find(|e| e.id == Some(Id::from(id)))
                .map(|e| e.error.code)
        };
        assert_eq!(by_id(7), Some(codes::METHOD_NOT_FOUND), "{errors:?}");
        assert_eq!(by_id(8), Some(codes::INVALID_PARAMS), "{errors:?}");
        while let Some(e) = conn.session.try_next_event() {
            assert!(!matches!(e, SessionEvent::Request(_)), "{e:?}");
        }
        conn.close().await;
    })
    .await;
}

/// A session opened with `SessionOptions::pass_through` (a bridge's, `tether connect`)
/// hands the same two server requests to the application unanswered: its client answers
/// them. Requests the bridge forwards raw are answered as unmatched responses.
#[tokio::test]
async fn pass_through_sessions_hand_every_server_request_to_the_application() {
    bounded(async {
        let relay = start_relay().await;
        let host = start_host(&relay.url).await;
        let (dir, conn) = controller(&relay, &host, "laptop").await;
        conn.close().await;
        let state = ControllerState::open(dir.path()).unwrap();
        let stored = state.find_host(None).unwrap();
        let (link, mut session) = connect_session(
            &state,
            &stored,
            &LinkOptions::default(),
            SessionOptions::pass_through(),
        )
        .await
        .unwrap();
        assert_eq!(
            session.max_message_len(),
            if session.has_records() {
                tether_proto::limits::MAX_MESSAGE_LEN
            } else {
                tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN
            }
        );
        // As a bridge does: the client's bytes, unchanged, and the answer as an event.
        let init = serde_json::to_vec(&json!({"id": 41, "method": "initialize",
            "params": serde_json::to_value(initialize_params()).unwrap()}))
        .unwrap();
        session.send_plaintext(init).unwrap();
        session
            .send_plaintext(br#"{"method":"initialized"}"#.to_vec())
            .unwrap();
        session
            .send_plaintext(br#"{"id":42,"method":"thread/list","params":{}}"#.to_vec())
            .unwrap();
        let mut requests = Vec::new();
        let mut answered = Vec::new();
        while answered.len() < 2 || requests.len() < 2 {
            match session.next_event().await.unwrap() {
                SessionEvent::Request(r) => requests.push(r.method),
                SessionEvent::UnmatchedResponse(Message::Response(r)) => answered.push(r.id),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(answered, vec![Id::from(41), Id::from(42)]);
        assert_eq!(
            requests,
            vec!["bogus/method", "item/commandExecution/requestApproval"]
        );
        // Nothing was answered on the client's behalf.
        session
            .send_plaintext(br#"{"id":43,"method":"thread/list","params":{"limit":1000}}"#.to_vec())
            .unwrap();
        loop {
            if let SessionEvent::UnmatchedResponse(Message::Response(r)) =
                session.next_event().await.unwrap()
            {
                assert_eq!(r.id, Id::from(43));
                break;
            }
        }
        let errors = host.errors_received.lock().unwrap().clone();
        assert!(errors.is_empty(), "{errors:?}");
        session.close(tether_proto::link::CloseCode::NORMAL).await;
        link.close(tether_proto::link::CloseCode::NORMAL).await;
    })
    .await;
}

/// Paging (CMD-20) and hand-off (CMD-52..CMD-54) through the library.
#[tokio::test]
async fn thread_list_pages_and_handoff() {
    bounded(async {
        let relay = start_relay().await;
        let host = start_host(&relay.url).await;
        let (_da, mut a) = controller(&relay, &host, "laptop").await;
        let (_db, b) = controller(&relay, &host, "phone").await;
        let all = tether_controller::thread_list_all(&a.session, 10)
            .await
            .unwrap();
        let ids: Vec<_> = all.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["thr_x", "thr_y"]);

        let moved = tether_controller::handoff(&a, &b, "thr_7", Some("/srv/acme".into()))
            .await
            .unwrap();
        assert_eq!(moved.bundle.cwd_relative, "service");
        assert_eq!(moved.opened.thread.cwd, "/srv/acme/service");
        assert_ne!(moved.opened.thread.id, "thr_7");

        // CMD-16: without thread.handoff on the source, nothing is sent.
        a.init.capabilities.clear();
        let err = tether_controller::handoff(&a, &b, "thr_7", None)
            .await
            .unwrap_err();
        assert_eq!(err.step, tether_controller::HandoffStep::Export);
        assert!(err.to_string().contains("thread.handoff"), "{err}");
        a.close().await;
        b.close().await;
    })
    .await;
}
