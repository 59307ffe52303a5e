//! The manager driven directly: sessions are ids, messages are read from its outbox.

use std::time::Duration;

use serde_json::{Value, json};
use tether_proto::cmd::types::{ApprovalPolicy, CommandExecutionStatus, SandboxMode, ThreadStatus};
use tether_proto::cmd::{ErrorResponse, codes};
use tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN;

use super::*;

const A: SessionId = SessionId([1; 8]);
const B: SessionId = SessionId([2; 8]);
const WAIT: Duration = Duration::from_secs(20);

struct H {
    m: ThreadManager,
    rx: mpsc::UnboundedReceiver<TurnEvent>,
    state: tempfile::TempDir,
    project: tempfile::TempDir,
    config: Arc<CommandConfig>,
    /// Everything sent so far.
    log: Vec<(SessionId, Message)>,
}

fn config() -> CommandConfig {
    CommandConfig {
        allow_unsandboxed: true,
        default_sandbox: SandboxMode::DangerFullAccess,
        ..CommandConfig::default()
    }
}

fn harness(config: CommandConfig) -> H {
    let state = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let mut config = config;
    config.default_project = Some(project.path().to_owned());
    let config = Arc::new(config);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut m = ThreadManager::new(state.path(), Arc::clone(&config), tx).unwrap();
    m.session_opened(A, "ana-phone".into());
    m.session_opened(B, "bo-laptop".into());
    m.session_ready(A);
    m.session_ready(B);
    H {
        m,
        rx,
        state,
        project,
        config,
        log: Vec::new(),
    }
}

impl H {
    fn drain(&mut self) {
        while let Some(x) = self.m.poll_outgoing() {
            self.log.push(x);
        }
    }

    /// Feeds turn events and time limits to the manager until `done` holds for the log.
    async fn until(&mut self, done: impl Fn(&[(SessionId, Message)]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.drain();
            if done(&self.log) {
                return;
            }
            let wake = self
                .m
                .poll_timeout()
                .map_or(deadline, tokio::time::Instant::from_std)
                .min(deadline);
            tokio::select! {
                e = self.rx.recv() => self.m.handle_event(e.unwrap()),
                () = tokio::time::sleep_until(wake) => {
                    assert!(tokio::time::Instant::now() < deadline, "timed out; log: {:#?}", methods(&self.log, A));
                    self.m.handle_timeout(Instant::now());
                }
            }
        }
    }

    fn start(
        &mut self,
        session: SessionId,
        policy: ApprovalPolicy,
        sandbox: SandboxMode,
    ) -> String {
        let opened = self
            .m
            .thread_start(
                session,
                &ThreadStartParams {
                    cwd: None,
                    sandbox: Some(sandbox),
                    approval_policy: Some(policy),
                    ..ThreadStartParams::default()
                },
            )
            .unwrap();
        opened.thread.id
    }

    fn turn(&mut self, session: SessionId, thread: &str, text: &str) -> Result<Turn, CommandError> {
        self.m
            .turn_start(
                session,
                &TurnStartParams {
                    thread_id: thread.to_owned(),
                    input: vec![UserInput::text(text.to_owned())],
                    ..TurnStartParams::default()
                },
            )
            .map(|r| r.turn)
    }

    /// The approval requests `session` got: (id, params).
    fn requests(&self, session: SessionId) -> Vec<(Id, Value)> {
        self.log
            .iter()
            .filter(|(s, _)| *s == session)
            .filter_map(|(_, m)| match m {
                Message::Request(r) => Some((r.id.clone(), r.params.clone().unwrap_or_default())),
                _ => None,
            })
            .collect()
    }

    fn answer(&mut self, session: SessionId, id: Id, decision: &str) {
        self.m.handle_response(
            session,
            Message::Response(Response {
                id,
                result: json!({ "decision": decision }),
            }),
        );
        self.drain();
    }
}

/// The methods `session` got, in order (`"result"` for a response).
fn methods(log: &[(SessionId, Message)], session: SessionId) -> Vec<String> {
    log.iter()
        .filter(|(s, _)| *s == session)
        .map(|(_, m)| match m {
            Message::Notification(n) => n.method.clone(),
            Message::Request(r) => r.method.clone(),
            Message::Response(_) => "result".to_owned(),
            Message::Error(_) => "error".to_owned(),
        })
        .collect()
}

fn notifications<'a>(
    log: &'a [(SessionId, Message)],
    session: SessionId,
    method: &'a str,
) -> impl Iterator<Item = Value> + 'a {
    log.iter().filter_map(move |(s, m)| match m {
        Message::Notification(n) if *s == session && n.method == method => {
            Some(n.params.clone().unwrap_or_default())
        }
        _ => None,
    })
}

fn turn_done(session: SessionId) -> impl Fn(&[(SessionId, Message)]) -> bool {
    move |log| {
        notifications(log, session, "turn/completed")
            .next()
            .is_some()
    }
}

fn has_request(session: SessionId) -> impl Fn(&[(SessionId, Message)]) -> bool {
    move |log| {
        log.iter()
            .any(|(s, m)| *s == session && matches!(m, Message::Request(_)))
    }
}

fn final_turn(log: &[(SessionId, Message)], session: SessionId) -> Turn {
    let p = notifications(log, session, "turn/completed")
        .last()
        .unwrap();
    serde_json::from_value(p["turn"].clone()).unwrap()
}

fn command_item(turn: &Turn) -> tether_proto::cmd::types::CommandExecutionItem {
    match turn.items.get(1) {
        Some(ThreadItem::CommandExecution(c)) => c.clone(),
        other => panic!("{other:?}"),
    }
}

fn code(e: &CommandError) -> i64 {
    e.rpc_code()
}

#[tokio::test]
async fn cmd_17_to_21_start_list_read_and_paging() {
    let mut h = harness(config());
    // CMD-17: a cwd that is not an absolute directory is -32602.
    for cwd in ["relative", "/no/such/dir"] {
        let e =
            h.m.thread_start(
                A,
                &ThreadStartParams {
                    cwd: Some(cwd.into()),
                    ..ThreadStartParams::default()
                },
            )
            .unwrap_err();
        assert_eq!(code(&e), codes::INVALID_PARAMS);
    }
    let opened = h.m.thread_start(A, &ThreadStartParams::default()).unwrap();
    // Defaults: the configured project, sandbox and policy (CMD-47).
    assert_eq!(opened.thread.cwd, h.project.path().to_string_lossy());
    assert_eq!(
        opened.thread.sandbox().unwrap(),
        SandboxMode::DangerFullAccess
    );
    assert_eq!(
        opened.thread.approval_policy().unwrap(),
        ApprovalPolicy::Untrusted
    );
    assert_eq!(opened.thread.status, ThreadStatus::Idle);
    assert!(opened.thread.id.len() <= 64);
    assert!(
        h.state
            .path()
            .join("threads")
            .join(format!("{}.json", opened.thread.id))
            .exists()
    );
    let mut ids = vec![opened.thread.id.clone()];
    for _ in 0..4 {
        ids.push(h.start(A, ApprovalPolicy::Never, SandboxMode::DangerFullAccess));
    }
    // CMD-18
    let e =
        h.m.thread_read(&ThreadReadParams {
            thread_id: "thr_0000".into(),
            include_turns: Some(true),
        })
        .unwrap_err();
    assert_eq!(code(&e), codes::THREAD_NOT_FOUND);
    // CMD-20: pages of 2 cover every thread once, most recent first, ties by id.
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page =
            h.m.thread_list(&ThreadListParams {
                cursor: cursor.clone(),
                limit: Some(2),
                ..ThreadListParams::default()
            })
            .unwrap();
        assert!(page.data.len() <= 2);
        seen.extend(page.data);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 5);
    for w in seen.windows(2) {
        assert!(
            w[0].updated_at > w[1].updated_at
                || (w[0].updated_at == w[1].updated_at && w[0].id < w[1].id)
        );
    }
    let mut listed: Vec<String> = seen.iter().map(|t| t.id.clone()).collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    let e =
        h.m.thread_list(&ThreadListParams {
            cursor: Some("garbage".into()),
            limit: None,
            ..ThreadListParams::default()
        })
        .unwrap_err();
    assert_eq!(code(&e), codes::INVALID_PARAMS);
    // Starting a thread sends nothing.
    h.drain();
    assert!(h.log.is_empty());
}

#[tokio::test]
async fn cmd_46_thread_start_refused_when_the_mode_is_not_enforced() {
    let mut h = harness(CommandConfig::default());
    let e =
        h.m.thread_start(
            A,
            &ThreadStartParams {
                sandbox: Some(SandboxMode::ReadOnly),
                ..ThreadStartParams::default()
            },
        )
        .unwrap_err();
    assert_eq!(code(&e), codes::SANDBOX_DENIED);
    assert!(h.m.is_empty(), "nothing was created");
    // Degrading hosts say so.
    let mut h = harness(config());
    let opened =
        h.m.thread_start(
            A,
            &ThreadStartParams {
                sandbox: Some(SandboxMode::ReadOnly),
                ..ThreadStartParams::default()
            },
        )
        .unwrap();
    assert!(opened.report().unwrap().degraded);
    assert_eq!(opened.report().unwrap().requested, SandboxMode::ReadOnly);
}

#[tokio::test]
async fn cmd_24_cmd_59_turn_order_policy_never() {
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Never, SandboxMode::DangerFullAccess);
    let turn = h
        .turn(A, &t, "$ printf hi; printf err >&2; exit 3")
        .unwrap();
    assert_eq!(turn.status, TurnStatus::InProgress);
    assert!(turn.items.is_empty());
    // CMD-22
    let e = h.turn(A, &t, "again").unwrap_err();
    assert_eq!(code(&e), codes::TURN_ALREADY_ACTIVE);
    h.until(turn_done(A)).await;
    let seq = methods(&h.log, A);
    let deltas = seq
        .iter()
        .filter(|m| *m == "item/commandExecution/outputDelta")
        .count();
    assert!(deltas >= 1);
    let mut expected = vec![
        "turn/started",
        "item/started",
        "item/completed",
        "item/started",
    ];
    expected.extend(std::iter::repeat_n(
        "item/commandExecution/outputDelta",
        deltas,
    ));
    expected.extend(["item/completed", "turn/completed"]);
    assert_eq!(seq, expected);
    let mut out = Vec::new();
    for d in notifications(&h.log, A, "item/commandExecution/outputDelta") {
        out.extend(d["delta"].as_str().unwrap().bytes());
    }
    out.sort_unstable();
    let mut want = b"hierr".to_vec();
    want.sort_unstable();
    assert_eq!(out, want);
    let done = final_turn(&h.log, A);
    assert_eq!(
        done.status,
        TurnStatus::Completed,
        "failures go back to the agent"
    );
    assert_eq!(done.id, turn.id);
    let ThreadItem::UserMessage(u) = &done.items[0] else {
        panic!()
    };
    assert_eq!(u.text(), "$ printf hi; printf err >&2; exit 3");
    // Section 5.3: startedAtMs/completedAtMs on items, times on the turn.
    assert!(u.started_at_ms.is_some() && u.completed_at_ms.is_some());
    assert!(done.started_at.is_some() && done.completed_at.is_some());
    assert!(done.duration_ms.is_some());
    let c = command_item(&done);
    assert_eq!(c.command, "printf hi; printf err >&2; exit 3");
    assert_eq!(c.cwd, h.project.path().to_string_lossy());
    assert_eq!(c.status, CommandExecutionStatus::Failed);
    assert_eq!(c.exit_code, Some(3));
    assert_eq!(c.aggregated_output.as_deref().map(str::len), Some(5));
    assert!(c.duration_ms.is_some());
    // CMD-21: the same turn, stored.
    let read =
        h.m.thread_read(&ThreadReadParams {
            thread_id: t.clone(),
            include_turns: Some(true),
        })
        .unwrap();
    assert_eq!(read.thread.turns, vec![done.clone()]);
    assert_eq!(read.thread.preview, "$ printf hi; printf err >&2; exit 3");
    // CMD-21: without includeTurns, no turns.
    let bare =
        h.m.thread_read(&ThreadReadParams {
            thread_id: t.clone(),
            include_turns: None,
        })
        .unwrap();
    assert!(bare.thread.turns.is_empty());
    // An echo turn: an agentMessage. Item ids are unique in the thread (CMD-25).
    h.log.clear();
    h.turn(A, &t, "hello").unwrap();
    h.until(turn_done(A)).await;
    let second = final_turn(&h.log, A);
    let ThreadItem::AgentMessage(a) = &second.items[1] else {
        panic!("{second:?}")
    };
    assert_eq!(a.text, "hello");
    let mut ids: Vec<&str> = done
        .items
        .iter()
        .chain(&second.items)
        .map(ThreadItem::id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    // CMD-26: B is not attached and got nothing.
    assert!(methods(&h.log, B).is_empty());
}

#[tokio::test]
async fn cmd_27_policies_ask_exactly_when_the_table_says() {
    // (policy, thread mode, command, asks, asked mode)
    let cases = [
        (
            ApprovalPolicy::Never,
            SandboxMode::WorkspaceWrite,
            "exit 1",
            false,
            None,
        ),
        (
            ApprovalPolicy::OnRequest,
            SandboxMode::WorkspaceWrite,
            "exit 1",
            false,
            None,
        ),
        (
            ApprovalPolicy::Untrusted,
            SandboxMode::WorkspaceWrite,
            "true",
            true,
            Some("workspace-write"),
        ),
        (
            ApprovalPolicy::Untrusted,
            SandboxMode::DangerFullAccess,
            "true",
            true,
            Some("danger-full-access"),
        ),
    ];
    for (policy, mode, command, asks, asked_mode) in cases {
        let mut h = harness(config());
        let t = h.start(A, policy, mode);
        h.turn(A, &t, &format!("$ {command}")).unwrap();
        h.until(|log| turn_done(A)(log) || has_request(A)(log))
            .await;
        let requests = h.requests(A);
        assert_eq!(!requests.is_empty(), asks, "{policy:?} {mode:?} {command}");
        if let Some((id, params)) = requests.first() {
            assert_eq!(params["tether"]["sandbox"], asked_mode.unwrap());
            assert_eq!(
                params["availableDecisions"],
                serde_json::json!(["accept", "acceptForSession", "decline", "cancel"])
            );
            assert_eq!(params["commandActions"][0]["type"], "unknown");
            assert!(params["startedAtMs"].is_u64());
            assert_eq!(params["threadId"], t.as_str());
            assert_eq!(params["command"], command);
            h.answer(A, id.clone(), "decline");
            h.until(turn_done(A)).await;
        }
        let c = command_item(&final_turn(&h.log, A));
        let expected = match (command, asks, policy) {
            ("true", true, _) => CommandExecutionStatus::Declined,
            ("true", false, _) => CommandExecutionStatus::Completed,
            _ => CommandExecutionStatus::Failed,
        };
        assert_eq!(c.status, expected, "{policy:?} {mode:?} {command}");
    }
    // The trusted list (CMD-27): untrusted runs it without asking.
    let mut h = harness(CommandConfig {
        trusted_commands: vec!["true".into()],
        ..config()
    });
    let t = h.start(A, ApprovalPolicy::Untrusted, SandboxMode::WorkspaceWrite);
    h.turn(A, &t, "$ true").unwrap();
    h.until(turn_done(A)).await;
    assert!(h.requests(A).is_empty());
    assert_eq!(
        command_item(&final_turn(&h.log, A)).status,
        CommandExecutionStatus::Completed
    );
}

#[tokio::test]
async fn cmd_29_cmd_30_cmd_32_decisions_race_and_late_answers() {
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Untrusted, SandboxMode::DangerFullAccess);
    h.m.thread_resume(
        B,
        &ThreadResumeParams {
            thread_id: t.clone(),
            ..ThreadResumeParams::default()
        },
    )
    .unwrap();
    h.turn(A, &t, "$ echo ran").unwrap();
    h.until(|log| has_request(A)(log) && has_request(B)(log))
        .await;
    let (a_id, a_params) = h.requests(A)[0].clone();
    let (b_id, b_params) = h.requests(B)[0].clone();
    assert_eq!(a_params, b_params);
    // CMD-30: an error response is not an answer.
    h.m.handle_response(
        B,
        Message::Error(ErrorResponse::new(
            Some(b_id.clone()),
            &CommandError::Internal { detail: "x".into() },
        )),
    );
    h.answer(B, b_id.clone(), "acceptForSession");
    h.answer(A, a_id.clone(), "decline"); // too late
    h.until(turn_done(A)).await;
    let c = command_item(&final_turn(&h.log, A));
    assert_eq!(
        c.status,
        CommandExecutionStatus::Completed,
        "B's accept won"
    );
    assert_eq!(c.aggregated_output.as_deref(), Some("ran\n"));
    for (s, id) in [(A, &a_id), (B, &b_id)] {
        let resolved: Vec<Value> = notifications(&h.log, s, "serverRequest/resolved").collect();
        assert_eq!(resolved[0]["requestId"], serde_json::to_value(id).unwrap());
        assert_eq!(resolved[0]["tether"]["decision"], "acceptForSession");
        assert_eq!(resolved[0]["tether"]["resolvedBy"], "bo-laptop");
        assert!(resolved[0]["tether"].get("rejectedAnswer").is_none());
    }
    // The loser: cancelled, then its late answer is refused with -32015.
    let cancelled: Vec<Value> = notifications(&h.log, A, "tether/cancelled").collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(
        cancelled[0]["requestId"],
        serde_json::to_value(&a_id).unwrap()
    );
    assert_eq!(notifications(&h.log, B, "tether/cancelled").count(), 0);
    let late: Vec<Value> = notifications(&h.log, A, "serverRequest/resolved").collect();
    assert_eq!(late.len(), 2);
    assert_eq!(
        late[1]["tether"]["rejectedAnswer"]["code"],
        codes::APPROVAL_ALREADY_RESOLVED
    );
    assert_eq!(late[1]["tether"]["decision"], "acceptForSession");
    // acceptForSession: the same command in the same cwd runs without asking.
    h.log.clear();
    h.turn(A, &t, "$ echo ran").unwrap();
    h.until(turn_done(A)).await;
    assert!(h.requests(A).is_empty() && h.requests(B).is_empty());
    // ... another command still asks; cancel interrupts the turn.
    h.log.clear();
    h.turn(A, &t, "$ echo other").unwrap();
    h.until(has_request(A)).await;
    let (id, _) = h.requests(A)[0].clone();
    h.answer(A, id, "cancel");
    h.until(turn_done(A)).await;
    let done = final_turn(&h.log, A);
    assert_eq!(done.status, TurnStatus::Interrupted);
    let c = command_item(&done);
    assert_eq!(c.status, CommandExecutionStatus::Declined);
    assert!(c.exit_code.is_none());
    // decline: declined, the turn goes on and completes.
    h.log.clear();
    h.turn(A, &t, "$ echo other").unwrap();
    h.until(has_request(A)).await;
    let (id, _) = h.requests(A)[0].clone();
    h.answer(A, id, "decline");
    h.until(turn_done(A)).await;
    let done = final_turn(&h.log, A);
    assert_eq!(done.status, TurnStatus::Completed);
    assert_eq!(command_item(&done).status, CommandExecutionStatus::Declined);
}

#[tokio::test]
async fn cmd_31_no_answer_in_time_declines() {
    let mut h = harness(CommandConfig {
        approval_timeout: Duration::from_millis(300),
        ..config()
    });
    let t = h.start(A, ApprovalPolicy::Untrusted, SandboxMode::DangerFullAccess);
    h.m.thread_resume(
        B,
        &ThreadResumeParams {
            thread_id: t.clone(),
            ..ThreadResumeParams::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    h.turn(A, &t, "$ echo never").unwrap();
    h.until(turn_done(A)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let done = final_turn(&h.log, A);
    assert_eq!(done.status, TurnStatus::Completed);
    assert_eq!(command_item(&done).status, CommandExecutionStatus::Declined);
    for s in [A, B] {
        let r: Vec<Value> = notifications(&h.log, s, "serverRequest/resolved").collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["tether"]["decision"], "decline");
        assert!(r[0]["tether"].get("resolvedBy").is_none());
        assert_eq!(notifications(&h.log, s, "tether/cancelled").count(), 1);
    }
}

/// Whether a process is gone (or a zombie).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn cmd_23_interrupt_a_running_command_and_a_pending_approval() {
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Never, SandboxMode::DangerFullAccess);
    let turn = h.turn(A, &t, "$ sleep 100 & echo $!; sleep 100").unwrap();
    h.until(|log| {
        notifications(log, A, "item/commandExecution/outputDelta")
            .next()
            .is_some()
    })
    .await;
    let d = notifications(&h.log, A, "item/commandExecution/outputDelta")
        .next()
        .unwrap();
    let bg: u32 = d["delta"].as_str().unwrap().trim().parse().unwrap();
    assert!(!gone(bg));
    // CMD-23: unknown turn.
    let e =
        h.m.turn_interrupt(
            A,
            Id::Number(8),
            &TurnInterruptParams {
                thread_id: t.clone(),
                turn_id: "turn_x".into(),
            },
        )
        .unwrap_err();
    assert_eq!(code(&e), codes::TURN_NOT_FOUND);
    h.m.turn_interrupt(
        A,
        Id::Number(9),
        &TurnInterruptParams {
            thread_id: t.clone(),
            turn_id: turn.id.clone(),
        },
    )
    .unwrap();
    assert_eq!(h.m.in_flight(A), 1);
    h.until(|log| methods(log, A).last().is_some_and(|m| m == "result"))
        .await;
    let seq = methods(&h.log, A);
    assert_eq!(
        &seq[seq.len() - 2..],
        ["turn/completed", "result"],
        "turn/completed before the answer"
    );
    let done = final_turn(&h.log, A);
    assert_eq!(done.status, TurnStatus::Interrupted);
    assert_eq!(command_item(&done).status, CommandExecutionStatus::Failed);
    for _ in 0..100 {
        if gone(bg) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone(bg), "CMD-37: the whole group is killed");
    // Again: the turn is over.
    let e =
        h.m.turn_interrupt(
            A,
            Id::Number(10),
            &TurnInterruptParams {
                thread_id: t.clone(),
                turn_id: turn.id,
            },
        )
        .unwrap_err();
    assert_eq!(code(&e), codes::TURN_NOT_FOUND);

    // While an approval is pending: it resolves as cancel (CMD-33).
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Untrusted, SandboxMode::DangerFullAccess);
    let turn = h.turn(A, &t, "$ echo no").unwrap();
    h.until(has_request(A)).await;
    h.m.turn_interrupt(
        A,
        Id::Number(9),
        &TurnInterruptParams {
            thread_id: t.clone(),
            turn_id: turn.id,
        },
    )
    .unwrap();
    h.until(|log| methods(log, A).last().is_some_and(|m| m == "result"))
        .await;
    let r: Vec<Value> = notifications(&h.log, A, "serverRequest/resolved").collect();
    assert_eq!(r[0]["tether"]["decision"], "cancel");
    assert!(r[0]["tether"].get("resolvedBy").is_none());
    let done = final_turn(&h.log, A);
    assert_eq!(done.status, TurnStatus::Interrupted);
    assert_eq!(command_item(&done).status, CommandExecutionStatus::Declined);
}

#[tokio::test]
async fn cmd_19_cmd_33_resume_gets_the_pending_approval_and_it_survives_session_ends() {
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Untrusted, SandboxMode::DangerFullAccess);
    h.turn(A, &t, "$ echo later").unwrap();
    h.until(has_request(A)).await;
    // CMD-33: every attached session ends; the approval stays pending.
    h.m.session_closed(A);
    assert!(h.m.poll_timeout().is_some());
    let c = SessionId([3; 8]);
    h.m.session_opened(c, "cy".into());
    h.m.session_ready(c);
    h.m.thread_resume(
        c,
        &ThreadResumeParams {
            thread_id: t.clone(),
            ..ThreadResumeParams::default()
        },
    )
    .unwrap();
    h.drain();
    let (id, params) = h.requests(c)[0].clone();
    assert_eq!(params["command"], "echo later");
    h.answer(c, id, "accept");
    h.until(turn_done(c)).await;
    assert_eq!(
        command_item(&final_turn(&h.log, c)).status,
        CommandExecutionStatus::Completed
    );
    // CMD-26: nothing after its end for A.
    let a_after: Vec<_> = h
        .log
        .iter()
        .skip_while(|(s, _)| *s == A)
        .filter(|(s, _)| *s == A)
        .collect();
    assert!(a_after.is_empty());
}

#[tokio::test]
async fn cmd_17_restart_keeps_history_and_fails_the_running_turn() {
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Untrusted, SandboxMode::DangerFullAccess);
    h.turn(A, &t, "$ echo pending").unwrap();
    h.until(has_request(A)).await;
    let before =
        h.m.thread_read(&ThreadReadParams {
            thread_id: t.clone(),
            include_turns: Some(true),
        })
        .unwrap();
    // Section 5.3: waitingOnApproval while the approval is pending.
    assert_eq!(before.thread.status, ThreadStatus::active(true));
    assert_eq!(before.thread.turns[0].items.len(), 2);
    // The host stops with the approval pending.
    let (tx, _rx) = mpsc::unbounded_channel();
    drop(std::mem::replace(
        &mut h.m,
        ThreadManager::new(h.state.path(), Arc::clone(&h.config), tx).unwrap(),
    ));
    let after =
        h.m.thread_read(&ThreadReadParams {
            thread_id: t.clone(),
            include_turns: Some(true),
        })
        .unwrap();
    assert_eq!(after.thread.status, ThreadStatus::Idle);
    assert_eq!(after.thread.turns[0].status, TurnStatus::Failed);
    assert_eq!(
        after.thread.turns[0].items[0],
        before.thread.turns[0].items[0]
    );
    assert_eq!(
        command_item(&after.thread.turns[0]).status,
        CommandExecutionStatus::Failed
    );
    // And a new turn works, with fresh item ids (CMD-25).
    h.m.session_opened(A, "ana".into());
    h.m.session_ready(A);
    let (tx, rx) = mpsc::unbounded_channel();
    h.m.events = tx;
    h.rx = rx;
    h.m.thread_resume(
        A,
        &ThreadResumeParams {
            thread_id: t.clone(),
            ..ThreadResumeParams::default()
        },
    )
    .unwrap();
    h.log.clear();
    h.turn(A, &t, "hi").unwrap();
    h.until(turn_done(A)).await;
    let read =
        h.m.thread_read(&ThreadReadParams {
            thread_id: t,
            include_turns: Some(true),
        })
        .unwrap();
    let mut ids: Vec<&str> = read
        .thread
        .turns
        .iter()
        .flat_map(|t| &t.items)
        .map(ThreadItem::id)
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[tokio::test]
async fn cmd_52_to_54_export_import_rediscovers_agents_md() {
    let mut h = harness(config());
    let root = h.project.path().to_owned();
    let root = root.as_path();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("service")).unwrap();
    std::fs::write(root.join("AGENTS.md"), "root rules\n").unwrap();
    let opened =
        h.m.thread_start(
            A,
            &ThreadStartParams {
                cwd: Some(root.join("service").to_string_lossy().into_owned()),
                sandbox: Some(SandboxMode::WorkspaceWrite),
                approval_policy: Some(ApprovalPolicy::Never),
                ..ThreadStartParams::default()
            },
        )
        .unwrap();
    assert_eq!(
        opened.instruction_sources,
        vec![root.join("AGENTS.md").to_string_lossy().into_owned()]
    );
    let t = opened.thread.id;
    h.turn(A, &t, "$ echo built").unwrap();
    h.until(turn_done(A)).await;
    let bundle =
        h.m.thread_export(&ThreadExportParams {
            thread_id: t.clone(),
        })
        .unwrap()
        .bundle;
    assert_eq!(bundle.cwd_relative, "service");
    assert_eq!(bundle.items.len(), 2);
    assert_eq!(bundle.sandbox, SandboxMode::WorkspaceWrite);
    // No host path but the commandExecution cwd (CMD-52).
    let text = serde_json::to_string(&bundle).unwrap();
    assert_eq!(text.matches(&*root.to_string_lossy()).count(), 1, "{text}");

    // Another host, another checkout.
    let mut other = harness(config());
    let root2 = other.project.path().to_owned();
    std::fs::create_dir_all(root2.join(".git")).unwrap();
    std::fs::create_dir_all(root2.join("service")).unwrap();
    std::fs::write(root2.join("AGENTS.md"), "other root\n").unwrap();
    std::fs::write(root2.join("service/AGENTS.override.md"), "service\n").unwrap();
    let imported = other
        .m
        .thread_import(
            A,
            &ThreadImportParams {
                bundle: bundle.clone(),
                project_root: None,
            },
        )
        .unwrap();
    assert_ne!(imported.thread.id, t);
    assert_eq!(imported.thread.cwd, root2.join("service").to_string_lossy());
    assert_eq!(
        imported.instruction_sources,
        vec![
            root2.join("AGENTS.md").to_string_lossy().into_owned(),
            root2
                .join("service/AGENTS.override.md")
                .to_string_lossy()
                .into_owned()
        ]
    );
    let read = other
        .m
        .thread_read(&ThreadReadParams {
            thread_id: imported.thread.id.clone(),
            include_turns: Some(true),
        })
        .unwrap();
    assert_eq!(read.thread.turns.len(), 1);
    assert_eq!(read.thread.turns[0].status, TurnStatus::Completed);
    let strip = |items: &[ThreadItem]| -> Vec<Value> {
        items
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap();
                v.as_object_mut().unwrap().remove("id");
                v
            })
            .collect()
    };
    assert_eq!(
        strip(&read.thread.turns[0].items),
        strip(&bundle.items),
        "history kept"
    );
    // The session is attached: a turn on the imported thread runs in the new cwd.
    other.turn(A, &imported.thread.id, "$ pwd").unwrap();
    other.until(turn_done(A)).await;
    let c = command_item(&final_turn(&other.log, A));
    assert_eq!(
        c.aggregated_output.unwrap().trim_end(),
        root2.join("service").to_string_lossy()
    );

    // CMD-53: bad bundles; CMD-54: a cwd that does not exist here.
    let mut bad = bundle.clone();
    bad.version = 2;
    let e = other
        .m
        .thread_import(
            A,
            &ThreadImportParams {
                bundle: bad,
                project_root: None,
            },
        )
        .unwrap_err();
    assert_eq!(code(&e), codes::INVALID_THREAD_BUNDLE);
    let mut bad = bundle.clone();
    bad.cwd_relative = "../etc".into();
    let e = other
        .m
        .thread_import(
            A,
            &ThreadImportParams {
                bundle: bad,
                project_root: None,
            },
        )
        .unwrap_err();
    assert_eq!(code(&e), codes::INVALID_THREAD_BUNDLE);
    let mut missing = bundle;
    missing.cwd_relative = "nope".into();
    let e = other
        .m
        .thread_import(
            A,
            &ThreadImportParams {
                bundle: missing,
                project_root: None,
            },
        )
        .unwrap_err();
    assert_eq!(code(&e), codes::INVALID_PARAMS);
    // CMD-18 for export.
    let e = other
        .m
        .thread_export(&ThreadExportParams {
            thread_id: "thr_00".into(),
        })
        .unwrap_err();
    assert_eq!(code(&e), codes::THREAD_NOT_FOUND);
}

#[tokio::test]
async fn cmd_15_nothing_is_sent_before_initialized() {
    let mut h = harness(config());
    let c = SessionId([3; 8]);
    h.m.session_opened(c, "cy".into());
    let t = h.start(c, ApprovalPolicy::Untrusted, SandboxMode::DangerFullAccess);
    h.turn(c, &t, "$ true").unwrap();
    // The turn runs up to its approval request meanwhile.
    let _ = tokio::time::timeout(Duration::from_millis(500), h.until(|_| false)).await;
    assert!(methods(&h.log, c).is_empty(), "held until initialized");
    h.m.session_ready(c);
    h.drain();
    assert_eq!(
        methods(&h.log, c),
        [
            "turn/started",
            "item/started",
            "item/completed",
            "item/started",
            "item/commandExecution/requestApproval"
        ]
    );
}

#[test]
fn cmd_2_long_outputs_are_cut_to_fit_one_message() {
    use tether_proto::cmd::types::CommandExecutionItem;
    let big = format!("{}\u{1}end", "é".repeat(200_000));
    let item = ThreadItem::CommandExecution(CommandExecutionItem {
        exit_code: Some(0),
        aggregated_output: Some(big.clone()),
        duration_ms: Some(1),
        ..CommandExecutionItem::new("item_2", "x", "/", CommandExecutionStatus::Completed)
    });
    let n = notification(ServerNotification::ItemCompleted(ItemCompletedParams {
        thread_id: "thr_1".into(),
        turn_id: "turn_1".into(),
        item: item.clone(),
        completed_at_ms: 1,
    }));
    assert!(n.to_bytes().len() > MAX_TRANSPORT_PLAINTEXT_LEN);
    let fitted = fit(n);
    let len = fitted.to_bytes().len();
    assert!(len <= MAX_TRANSPORT_PLAINTEXT_LEN, "{len}");
    assert!(
        len > MAX_TRANSPORT_PLAINTEXT_LEN / 4,
        "keeps as much as it can: {len}"
    );
    let Message::Notification(n) = fitted else {
        panic!()
    };
    let out = n.params.unwrap()["item"]["aggregatedOutput"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(out.starts_with('['), "{}", &out[..40]);
    assert!(out.ends_with("\u{1}end"));
    // Small messages are left alone.
    drop(item);
    let small = notification(ServerNotification::ItemStarted(ItemStartedParams {
        thread_id: "thr_1".into(),
        turn_id: "turn_1".into(),
        item: ThreadItem::UserMessage(tether_proto::cmd::types::UserMessageItem::from_text(
            "item_1", "hi",
        )),
        started_at_ms: 1,
    }));
    assert_eq!(fit(small.clone()), small);
}

/// The response to request `id` of `session` in the log, if it came.
fn response_to(log: &[(SessionId, Message)], session: SessionId, id: i64) -> Option<Value> {
    log.iter().find_map(|(s, m)| match m {
        Message::Response(r) if *s == session && r.id == Id::Number(id) => Some(r.result.clone()),
        _ => None,
    })
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
}

/// `CMD-72`: the runtime's way to open a thread reads its instruction files off the
/// caller's task and answers through the outbox; a FIFO among them neither blocks it nor
/// is read.
#[tokio::test]
async fn cmd_72_threads_open_after_their_files_are_read_off_the_task() {
    let mut h = harness(config());
    let root = h.project.path().to_owned();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    mkfifo(&root.join("AGENTS.md"));
    std::fs::write(root.join("sub/AGENTS.md"), "sub rules\n").unwrap();
    let opening =
        h.m.begin_thread_start(
            A,
            &ThreadStartParams {
                cwd: Some(root.join("sub").to_string_lossy().into_owned()),
                sandbox: None,
                approval_policy: None,
                ..ThreadStartParams::default()
            },
        )
        .unwrap();
    h.m.open_later(Id::Number(7), opening);
    // Answered later, and in flight until then (CMD-58).
    assert_eq!(h.m.in_flight(A), 1);
    h.drain();
    assert!(response_to(&h.log, A, 7).is_none());
    // The manager answers other requests meanwhile.
    assert_eq!(
        h.m.thread_list(&ThreadListParams::default())
            .unwrap()
            .data
            .len(),
        1
    );
    h.until(|log| response_to(log, A, 7).is_some()).await;
    let opened: ThreadOpened = serde_json::from_value(response_to(&h.log, A, 7).unwrap()).unwrap();
    assert_eq!(
        opened.instruction_sources,
        vec![root.join("sub/AGENTS.md").to_string_lossy().into_owned()]
    );
    assert_eq!(h.m.in_flight(A), 0);
    // The session is attached once answered: a turn's notifications reach it.
    h.turn(B, &opened.thread.id, "hello").unwrap();
    h.until(turn_done(A)).await;
}

/// `CMD-72`, `CMD-19`: a deferred `thread/resume` answer comes before the pending approval.
#[tokio::test]
async fn cmd_72_resume_answer_comes_before_the_pending_approval() {
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Untrusted, SandboxMode::DangerFullAccess);
    h.turn(A, &t, "$ echo later").unwrap();
    h.until(has_request(A)).await;
    let opening =
        h.m.begin_thread_resume(
            B,
            &ThreadResumeParams {
                thread_id: t.clone(),
                ..ThreadResumeParams::default()
            },
        )
        .unwrap();
    h.m.open_later(Id::Number(3), opening);
    h.drain();
    assert!(h.requests(B).is_empty(), "not before the answer");
    h.until(|log| {
        log.iter()
            .any(|(s, m)| *s == B && matches!(m, Message::Request(_)))
    })
    .await;
    let b: Vec<&Message> = h
        .log
        .iter()
        .filter(|(s, _)| *s == B)
        .map(|(_, m)| m)
        .collect();
    assert!(
        matches!(b[0], Message::Response(r) if r.id == Id::Number(3)),
        "{b:?}"
    );
    assert!(matches!(b[1], Message::Request(_)), "{b:?}");
}

/// `CMD-72`: while earlier reads still hang, a thread opens at once without its files,
/// and the host's log says so.
#[tokio::test]
async fn cmd_72_hanging_reads_tie_up_a_bounded_number_of_threads() {
    let mut h = harness(config());
    std::fs::write(h.project.path().join("AGENTS.md"), "rules\n").unwrap();
    h.m.discoveries.store(MAX_DISCOVERIES, Ordering::Release);
    let opening =
        h.m.begin_thread_start(A, &ThreadStartParams::default())
            .unwrap();
    h.m.open_later(Id::Number(5), opening);
    h.drain();
    let opened: ThreadOpened = serde_json::from_value(response_to(&h.log, A, 5).unwrap()).unwrap();
    assert!(opened.instruction_sources.is_empty());
    assert!(h.m.take_notice().unwrap().contains("CMD-72"));
    assert_eq!(h.m.in_flight(A), 0);
    // Once they are done, threads get their files again.
    h.m.discoveries.store(0, Ordering::Release);
    let opening =
        h.m.begin_thread_start(A, &ThreadStartParams::default())
            .unwrap();
    h.m.open_later(Id::Number(6), opening);
    h.until(|log| response_to(log, A, 6).is_some()).await;
    let opened: ThreadOpened = serde_json::from_value(response_to(&h.log, A, 6).unwrap()).unwrap();
    assert_eq!(opened.instruction_sources.len(), 1);
}

/// `CMD-73`: an imported thread's `cwdRelative` that passes through a symlink out of the
/// project root is refused; one through a symlink that stays inside is resolved.
#[tokio::test]
async fn cmd_73_import_through_a_symlink_out_of_the_project_is_refused() {
    let mut h = harness(config());
    let t = h.start(A, ApprovalPolicy::Never, SandboxMode::DangerFullAccess);
    let bundle =
        h.m.thread_export(&ThreadExportParams { thread_id: t })
            .unwrap()
            .bundle;
    let root = h.project.path().to_owned();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
    std::fs::create_dir_all(root.join("real/dir")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("inner")).unwrap();
    // A relative link inside the project that leads to the link out of it.
    std::os::unix::fs::symlink("../link", root.join("real/hop")).unwrap();
    let import = |m: &mut ThreadManager, rel: &str| {
        let mut b = bundle.clone();
        rel.clone_into(&mut b.cwd_relative);
        m.begin_thread_import(
            A,
            &ThreadImportParams {
                bundle: b,
                project_root: Some(root.to_string_lossy().into_owned()),
            },
        )
    };
    let before = h.m.len();
    for rel in ["link", "real/hop", "inner/hop"] {
        let e = import(&mut h.m, rel).unwrap_err();
        assert_eq!(code(&e), codes::INVALID_PARAMS, "{rel}");
        assert!(e.to_string().contains("outside the project root"), "{e}");
    }
    // No thread was created for the refused imports.
    assert_eq!(h.m.len(), before);
    // Through a symlink inside the project: the thread keeps the resolved directory.
    let opening = import(&mut h.m, "inner/dir").unwrap();
    h.m.open_later(Id::Number(9), opening);
    h.until(|log| response_to(log, A, 9).is_some()).await;
    let opened: ThreadOpened = serde_json::from_value(response_to(&h.log, A, 9).unwrap()).unwrap();
    let real = std::fs::canonicalize(root.join("real/dir")).unwrap();
    assert_eq!(opened.thread.cwd, real.to_string_lossy());
}
