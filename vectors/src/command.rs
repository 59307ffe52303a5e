//! `command.json`: the JSON-RPC command protocol (`spec/05-command-protocol.md`, `CMD-*`).
//!
//! Valid cases hold one message of every method, notification and result, plus envelope
//! edge cases that must be accepted; invalid cases are named envelope violations and
//! typed-decode failures, each with the error, its requirement, the JSON-RPC code and
//! what the receiver answers.

use serde::Serialize;
use serde_json::{Value, json};
use tether_proto::cmd::methods::*;
use tether_proto::cmd::types::*;
use tether_proto::cmd::{
    ClientNotification, ClientRequest, CommandError, ErrorResponse, Id, Message, Notification,
    PROTOCOL_NAME, Params, Request, Response, ServerNotification, ServerRequest,
};

use crate::format::{VectorFile, det_bytes, field, to_json};

/// The vector files this module generates and checks.
pub const FILES: &[VectorFile] = &[VectorFile {
    name: "command.json",
    generate,
    check,
}];

const C2H: &str = "controllerToHost";
const H2C: &str = "hostToController";

// ---------------------------------------------------------------------------------------
// sample values

fn det_id(label: &str, prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(det_bytes(label, 8)))
}

fn thread_id() -> String {
    det_id("command/thread-id", "thr")
}

fn turn_id() -> String {
    det_id("command/turn-id", "turn")
}

fn item_id(n: u8) -> String {
    det_id(&format!("command/item-id/{n}"), "item")
}

const CREATED_AT: u64 = 1_798_761_600; // 2027-01-01T00:00:00Z
const CWD: &str = "/home/dev/acme/service";
const ROOT: &str = "/home/dev/acme";

fn report(mode: SandboxMode) -> SandboxReport {
    SandboxReport {
        requested: mode,
        enforced: mode,
        network: if mode == SandboxMode::DangerFullAccess {
            NetworkAccess::Allowed
        } else {
            NetworkAccess::Denied
        },
        degraded: false,
        mechanism: if mode == SandboxMode::DangerFullAccess {
            "none".into()
        } else {
            "landlock".into()
        },
    }
}

/// Unix milliseconds of the sample turn's events.
const T_MS: u64 = (CREATED_AT + 40) * 1000;

fn thread(status: ThreadStatus, turns: Vec<Turn>) -> Thread {
    Thread {
        id: thread_id(),
        session_id: thread_id(),
        cwd: CWD.into(),
        created_at: CREATED_AT,
        updated_at: CREATED_AT + 42,
        status,
        preview: "$ cargo test".into(),
        turns,
        ephemeral: false,
        cli_version: "0.1.0".into(),
        model_provider: "tether-test".into(),
        source: "appServer".into(),
        project_id: None,
        tether: Some(ThreadTether {
            sandbox: SandboxMode::WorkspaceWrite,
            approval_policy: ApprovalPolicy::Untrusted,
        }),
    }
}

fn command_item(status: CommandExecutionStatus) -> CommandExecutionItem {
    let done = status != CommandExecutionStatus::InProgress;
    CommandExecutionItem {
        id: item_id(2),
        command: "cargo test".into(),
        cwd: CWD.into(),
        status,
        command_actions: CommandAction::unknown("cargo test"),
        exit_code: done.then_some(0),
        aggregated_output: done.then(|| "test result: ok. 3 passed\n".into()),
        duration_ms: done.then_some(1520),
        started_at_ms: Some(T_MS + 5),
        completed_at_ms: done.then_some(T_MS + 1525),
    }
}

fn items() -> Vec<ThreadItem> {
    vec![
        ThreadItem::UserMessage(UserMessageItem {
            id: item_id(1),
            content: vec![UserInput::text("$ cargo test")],
            started_at_ms: Some(T_MS),
            completed_at_ms: Some(T_MS),
        }),
        ThreadItem::CommandExecution(command_item(CommandExecutionStatus::Completed)),
    ]
}

fn turn(status: TurnStatus, items: Vec<ThreadItem>) -> Turn {
    let done = status != TurnStatus::InProgress;
    Turn {
        id: turn_id(),
        status,
        items,
        items_view: Some(TurnItemsView::Full),
        started_at: Some(CREATED_AT + 40),
        completed_at: done.then_some(CREATED_AT + 42),
        duration_ms: done.then_some(1530),
    }
}

fn bundle() -> ThreadBundle {
    ThreadBundle {
        version: 1,
        goal: Some("make the tests pass".into()),
        cwd_relative: "service".into(),
        sandbox: SandboxMode::WorkspaceWrite,
        approval_policy: ApprovalPolicy::Untrusted,
        items: items(),
        exported_at: CREATED_AT + 600,
    }
}

fn opened(turns: Vec<Turn>) -> ThreadOpened {
    ThreadOpened {
        thread: thread(ThreadStatus::Idle, turns),
        approval_policy: ApprovalPolicy::Untrusted,
        approvals_reviewer: "user".into(),
        cwd: CWD.into(),
        model: "tether-test".into(),
        model_provider: "tether-test".into(),
        sandbox: SandboxPolicy::from_mode(
            SandboxMode::WorkspaceWrite,
            vec![ROOT.into(), "/tmp".into()],
        ),
        instruction_sources: vec![
            format!("{ROOT}/AGENTS.md"),
            format!("{CWD}/AGENTS.override.md"),
        ],
        tether: Some(ThreadOpenedTether {
            sandbox: report(SandboxMode::WorkspaceWrite),
        }),
    }
}

fn delta(label: &str, n: usize) -> String {
    encode_delta(&det_bytes(label, n))
}

fn set(v: &mut Value, key: &str, x: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_owned(), x);
    }
}

fn value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// cases

struct Case {
    comment: String,
    flags: Vec<&'static str>,
    direction: &'static str,
    msg: Vec<u8>,
    outcome: Outcome,
}

enum Outcome {
    /// Parses; `expected` summarises the message; typed decode succeeds.
    Valid { expected: Value },
    /// Refused by `Message::parse_or_reject` or by the typed decoder.
    Invalid {
        stage: &'static str,
        error: CommandError,
        reply: Option<Option<Id>>,
    },
}

fn valid(comment: &str, flags: &[&'static str], direction: &'static str, m: &Message) -> Case {
    valid_bytes(comment, flags, direction, m.to_bytes(), m, None)
}

fn valid_bytes(
    comment: &str,
    flags: &[&'static str],
    direction: &'static str,
    msg: Vec<u8>,
    m: &Message,
    result_of: Option<&str>,
) -> Case {
    let mut expected = json!({"kind": m.kind()});
    if let Some(method) = m.method() {
        set(&mut expected, "method", json!(method));
    }
    match m {
        Message::Request(_) | Message::Response(_) => {
            set(
                &mut expected,
                "id",
                m.id().map(Id::to_value).unwrap_or(Value::Null),
            );
        }
        Message::Error(e) => {
            set(
                &mut expected,
                "id",
                e.id.as_ref().map(Id::to_value).unwrap_or(Value::Null),
            );
            set(&mut expected, "code", json!(e.error.code));
        }
        Message::Notification(_) => {}
    }
    if let Some(method) = result_of {
        set(&mut expected, "resultOf", json!(method));
    }
    Case {
        comment: comment.into(),
        flags: flags.to_vec(),
        direction,
        msg,
        outcome: Outcome::Valid { expected },
    }
}

fn result<P: RequestParams>(id: i64, r: &P::Result) -> Case {
    let m = Message::Response(Response {
        id: Id::Number(id),
        result: value(r),
    });
    let direction = if P::METHOD == CommandExecutionRequestApprovalParams::METHOD {
        C2H
    } else {
        H2C
    };
    valid_bytes(
        &format!("result of {}", P::METHOD),
        &["Result"],
        direction,
        m.to_bytes(),
        &m,
        Some(P::METHOD),
    )
}

fn invalid(
    comment: &str,
    flags: &[&'static str],
    direction: &'static str,
    msg: impl Into<Vec<u8>>,
    stage: &'static str,
    error: CommandError,
    reply: Option<Option<Id>>,
) -> Case {
    Case {
        comment: comment.into(),
        flags: flags.to_vec(),
        direction,
        msg: msg.into(),
        outcome: Outcome::Invalid {
            stage,
            error,
            reply,
        },
    }
}

/// An envelope error; the reply carries `reply_id`.
fn bad_envelope(
    comment: &str,
    flags: &[&'static str],
    msg: impl Into<Vec<u8>>,
    error: CommandError,
    reply_id: Option<Id>,
) -> Case {
    invalid(comment, flags, C2H, msg, "envelope", error, Some(reply_id))
}

fn bad_params(comment: &str, method: &str, params: Value, detail: &str) -> Case {
    let m = Message::Request(Request::new(9, method, Some(params)));
    invalid(
        comment,
        &["InvalidParams"],
        C2H,
        m.to_bytes(),
        "typed",
        CommandError::InvalidParams {
            method: method.into(),
            detail: detail.into(),
        },
        Some(Some(Id::Number(9))),
    )
}

fn initialize_result() -> InitializeResult {
    InitializeResult {
        user_agent: "tether-host/0.1.0 (linux; x86_64)".into(),
        codex_home: "/home/dev/.local/state/tether-host".into(),
        platform_family: "unix".into(),
        platform_os: "linux".into(),
        tether: TetherInitializeResult {
            server_info: Implementation {
                name: "tether-host".into(),
                version: "0.1.0".into(),
            },
            protocol_version: PROTOCOL_NAME.into(),
            capabilities: vec![
                "agent.test".into(),
                "command.exec".into(),
                "thread.handoff".into(),
                "sandbox.landlock".into(),
            ],
            sandbox: SandboxSupport {
                modes: SandboxMode::ALL.to_vec(),
                mechanism: "landlock".into(),
                degrade: false,
            },
            platform: Platform {
                os: "linux".into(),
                arch: "x86_64".into(),
                path_style: PathStyle::Posix,
            },
        },
    }
}

fn valid_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let req = |r: ClientRequest, id: i64| Message::Request(r.into_request(id));

    // Client requests, one per method.
    let client_requests: Vec<ClientRequest> = vec![
        InitializeParams::tether(
            "tether-phone",
            "1.0.0",
            Some(vec!["agent.test".into(), "command.exec".into()]),
        )
        .into(),
        ThreadStartParams {
            cwd: Some(CWD.into()),
            sandbox: Some(SandboxMode::WorkspaceWrite),
            approval_policy: Some(ApprovalPolicy::Untrusted),
            ..ThreadStartParams::default()
        }
        .into(),
        ThreadResumeParams::new(thread_id()).into(),
        ThreadListParams {
            limit: Some(20),
            ..ThreadListParams::default()
        }
        .into(),
        ThreadReadParams {
            thread_id: thread_id(),
            include_turns: Some(true),
        }
        .into(),
        TurnStartParams::new(thread_id(), vec![UserInput::text("$ cargo test")]).into(),
        TurnInterruptParams {
            thread_id: thread_id(),
            turn_id: turn_id(),
        }
        .into(),
        CommandExecParams {
            command: vec!["git".into(), "status".into(), "--short".into()],
            cwd: Some(CWD.into()),
            process_id: Some("proc-1".into()),
            stream_stdout_stderr: true,
            sandbox_policy: Some(SandboxPolicy::for_mode(SandboxMode::ReadOnly)),
            timeout_ms: Some(30_000),
            output_bytes_cap: Some(65_536),
            ..CommandExecParams::default()
        }
        .into(),
        CommandExecTerminateParams {
            process_id: "proc-1".into(),
        }
        .into(),
        ThreadExportParams {
            thread_id: thread_id(),
        }
        .into(),
        ThreadImportParams {
            bundle: bundle(),
            project_root: Some("/srv/checkout/acme".into()),
        }
        .into(),
    ];
    for (i, r) in client_requests.into_iter().enumerate() {
        let comment = format!("{} request", r.method());
        let id = i64::try_from(i).unwrap_or(0) + 1;
        out.push(valid(&comment, &["Request"], C2H, &req(r, id)));
    }

    // Client notifications.
    out.push(valid(
        "initialized notification",
        &["Notification"],
        C2H,
        &Message::Notification(
            ClientNotification::Initialized(InitializedParams {}).to_notification(),
        ),
    ));
    out.push(valid(
        "initialized notification without params",
        &["Notification", "NoParams"],
        C2H,
        &Message::Notification(Notification::new("initialized", None)),
    ));
    out.push(valid(
        "tether/cancelled from the controller",
        &["Notification", "Cancellation"],
        C2H,
        &Message::Notification(
            ClientNotification::Cancelled(CancelledParams {
                request_id: Id::Number(8),
                reason: Some("user left the screen".into()),
            })
            .to_notification(),
        ),
    ));

    // Server notifications, in the order of one turn.
    let tid = thread_id();
    let server: Vec<ServerNotification> = vec![
        TurnStartedParams {
            thread_id: tid.clone(),
            turn: turn(TurnStatus::InProgress, vec![]),
        }
        .into(),
        ItemStartedParams {
            thread_id: tid.clone(),
            turn_id: turn_id(),
            item: ThreadItem::CommandExecution(command_item(CommandExecutionStatus::InProgress)),
            started_at_ms: T_MS + 5,
        }
        .into(),
        CommandExecutionOutputDeltaParams {
            thread_id: tid.clone(),
            turn_id: turn_id(),
            item_id: item_id(2),
            delta: "running 3 tests\ntest a ... ok\n".into(),
        }
        .into(),
        ItemCompletedParams {
            thread_id: tid.clone(),
            turn_id: turn_id(),
            item: ThreadItem::CommandExecution(command_item(CommandExecutionStatus::Completed)),
            completed_at_ms: T_MS + 1525,
        }
        .into(),
        TurnCompletedParams {
            thread_id: tid.clone(),
            turn: turn(TurnStatus::Completed, items()),
        }
        .into(),
        CommandExecOutputDeltaParams {
            process_id: "proc-1".into(),
            stream: OutputStream::Stderr,
            delta_base64: delta("command/exec-output", 33),
            cap_reached: true,
        }
        .into(),
        ServerRequestResolvedParams {
            thread_id: tid.clone(),
            request_id: Id::Number(3),
            tether: Some(ResolvedTether {
                decision: ApprovalDecision::AcceptForSession,
                resolved_by: Some("Ana's phone".into()),
                rejected_answer: None,
            }),
        }
        .into(),
        ServerRequestResolvedParams {
            thread_id: tid.clone(),
            request_id: Id::Number(3),
            tether: Some(ResolvedTether {
                decision: ApprovalDecision::AcceptForSession,
                resolved_by: Some("Ana's phone".into()),
                rejected_answer: Some(RejectedAnswer {
                    code: -32015,
                    message: "approval already resolved".into(),
                }),
            }),
        }
        .into(),
        ServerRequestResolvedParams {
            thread_id: tid.clone(),
            request_id: Id::Number(4),
            tether: Some(ResolvedTether {
                decision: ApprovalDecision::Decline,
                resolved_by: None,
                rejected_answer: None,
            }),
        }
        .into(),
        ServerNotification::Cancelled(CancelledParams {
            request_id: Id::Number(4),
            reason: Some("turn interrupted".into()),
        }),
    ];
    for n in server {
        let comment = format!("{} notification", n.method());
        out.push(valid(
            &comment,
            &["Notification"],
            H2C,
            &Message::Notification(n.to_notification()),
        ));
    }

    // Server request.
    let approval = ServerRequest::from(CommandExecutionRequestApprovalParams {
        thread_id: tid,
        turn_id: turn_id(),
        item_id: item_id(2),
        started_at_ms: T_MS + 5,
        command: "cargo test".into(),
        cwd: CWD.into(),
        command_actions: CommandAction::unknown("cargo test"),
        reason: Some("policy untrusted".into()),
        available_decisions: Some(ApprovalDecision::STANDARD.to_vec()),
        tether: Some(ApprovalTether {
            sandbox: SandboxMode::WorkspaceWrite,
        }),
    });
    out.push(valid(
        "item/commandExecution/requestApproval request",
        &["Request", "Approval"],
        H2C,
        &Message::Request(approval.into_request(3)),
    ));

    // Results.
    out.push(result::<InitializeParams>(1, &initialize_result()));
    out.push(result::<ThreadStartParams>(2, &opened(vec![])));
    out.push(result::<ThreadResumeParams>(
        3,
        &opened(vec![turn(TurnStatus::Completed, items())]),
    ));
    out.push(result::<ThreadListParams>(
        4,
        &ThreadListResult {
            data: vec![thread(ThreadStatus::active(true), vec![])],
            next_cursor: Some("c2".into()),
        },
    ));
    out.push(result::<ThreadReadParams>(
        5,
        &ThreadReadResult {
            thread: thread(
                ThreadStatus::Idle,
                vec![turn(TurnStatus::Completed, items())],
            ),
        },
    ));
    out.push(result::<TurnStartParams>(
        6,
        &TurnStartResult {
            turn: turn(TurnStatus::InProgress, vec![]),
        },
    ));
    out.push(result::<TurnInterruptParams>(7, &EmptyResult {}));
    out.push(result::<CommandExecParams>(
        8,
        &CommandExecResult {
            exit_code: 124,
            stdout: String::new(),
            stderr: String::new(),
            tether: CommandExecReport {
                exit_code: None,
                signal: Some("SIGKILL".into()),
                timed_out: true,
                cap_reached: false,
                sandbox: report(SandboxMode::ReadOnly),
            },
        },
    ));
    out.push(result::<CommandExecTerminateParams>(9, &EmptyResult {}));
    out.push(result::<ThreadExportParams>(
        10,
        &ThreadExportResult { bundle: bundle() },
    ));
    out.push(result::<ThreadImportParams>(11, &opened(vec![])));
    out.push(result::<CommandExecutionRequestApprovalParams>(
        3,
        &ApprovalResult {
            decision: ApprovalDecision::Accept,
        },
    ));

    // Error responses.
    for (id, e) in [
        (Some(Id::Number(2)), CommandError::NotInitialized),
        (
            Some(Id::from("req-7")),
            CommandError::ThreadNotFound {
                thread_id: "thr_unknown".into(),
            },
        ),
        (
            None,
            CommandError::Parse {
                detail: "EOF while parsing an object at line 1 column 1".into(),
            },
        ),
        (Some(Id::Number(12)), CommandError::Overloaded),
        (Some(Id::Number(13)), CommandError::Cancelled),
        (Some(Id::Number(14)), CommandError::RemoteAccessDisabled),
        (
            Some(Id::Number(15)),
            CommandError::SandboxDenied {
                mode: "workspace-write".into(),
            },
        ),
    ] {
        let m = Message::Error(ErrorResponse::new(id, &e));
        out.push(valid(
            &format!("error response {} ({})", e.rpc_code(), e.name()),
            &["ErrorResponse"],
            H2C,
            &m,
        ));
    }

    // Envelope edge cases that must be accepted.
    let edge = |comment: &str, flags: &[&'static str], text: &str| -> Case {
        // A generator bug (an edge case that does not parse) shows up as a failing case.
        let m = Message::parse(text.as_bytes())
            .unwrap_or_else(|_| Message::Notification(Notification::new("GENERATOR-BUG", None)));
        // A response answers a request of the other side: turn/interrupt is a controller's
        // request, so its response travels from the host.
        let (direction, result_of) = match &m {
            Message::Response(_) => (H2C, Some("turn/interrupt")),
            _ => (C2H, None),
        };
        valid_bytes(
            comment,
            flags,
            direction,
            text.as_bytes().to_vec(),
            &m,
            result_of,
        )
    };
    let max_string_id = "i".repeat(256);
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"thread/list","params":{{"x-future":{}{}}}}}"#,
        "[".repeat(30),
        "]".repeat(30)
    );
    let edges = [
        (
            "string id of 256 bytes",
            vec!["Id", "MaxLength"],
            format!(
                r#"{{"jsonrpc":"2.0","id":"{max_string_id}","method":"thread/list","params":{{}}}}"#
            ),
        ),
        (
            "largest integer id",
            vec!["Id", "MaxLength"],
            r#"{"jsonrpc":"2.0","id":9007199254740991,"method":"thread/list","params":{}}"#.into(),
        ),
        (
            "most negative integer id",
            vec!["Id"],
            r#"{"jsonrpc":"2.0","id":-9007199254740991,"method":"thread/list","params":{}}"#.into(),
        ),
        (
            "members in any order, whitespace around and inside",
            vec!["Whitespace"],
            " \t{ \"params\" : {\"limit\":1} , \"method\":\"thread/list\",\"id\":0,\"jsonrpc\":\"2.0\" }\r\n"
                .into(),
        ),
        (
            "unknown members at top level and in params are ignored",
            vec!["UnknownMember"],
            r#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId":"t","x-future":{"a":1}},"x-trace":"abc"}"#
                .into(),
        ),
        (
            "thread/list without params",
            vec!["NoParams"],
            r#"{"jsonrpc":"2.0","id":1,"method":"thread/list"}"#.into(),
        ),
        (
            "nesting exactly 32 deep (message object = level 1)",
            vec!["Depth"],
            deep,
        ),
        (
            "escaped member names that differ are not duplicates",
            vec!["Escapes"],
            r#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId":"t","thread\u0069d":"u"}}"#
                .into(),
        ),
        (
            "the same member name in sibling objects",
            vec!["Siblings"],
            r#"{"jsonrpc":"2.0","id":1,"method":"turn/start","params":{"threadId":"t","input":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}"#
                .into(),
        ),
        (
            "non-ASCII text in params",
            vec!["Utf8"],
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"turn/start\",\"params\":{\"threadId\":\"t\",\"input\":[{\"type\":\"text\",\"text\":\"Grüße, 世界 \u{1F680}\"}]}}"
                .into(),
        ),
        (
            "response to turn/interrupt with a string id",
            vec!["Result", "Id"],
            r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#.into(),
        ),
    ];
    for (comment, flags, text) in edges {
        out.push(edge(comment, &flags, &text));
    }
    out
}

fn invalid_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let dup = |key: &str| CommandError::DuplicateKey { key: key.into() };
    let parse = || CommandError::Parse {
        detail: String::new(),
    };
    let inv = || CommandError::InvalidRequest {
        detail: String::new(),
    };
    let bad_err = || CommandError::BadErrorObject {
        detail: String::new(),
    };
    let n = |v: i64| Some(Id::Number(v));

    out.push(bad_envelope(
        "duplicate key at top level (jsonrpc)",
        &["DuplicateKey"],
        r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"thread/list"}"#,
        dup("jsonrpc"),
        None,
    ));
    out.push(bad_envelope(
        "duplicate key at top level (id)",
        &["DuplicateKey"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/list","id":2}"#,
        dup("id"),
        None,
    ));
    out.push(bad_envelope(
        "duplicate key in params",
        &["DuplicateKey"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId":"a","threadId":"b"}}"#,
        dup("threadId"),
        None,
    ));
    out.push(bad_envelope(
        "duplicate key deep inside params",
        &["DuplicateKey"],
        r#"{"jsonrpc":"2.0","id":1,"method":"turn/start","params":{"threadId":"t","input":[{"type":"text","text":"a","text":"b"}]}}"#,
        dup("text"),
        None,
    ));
    out.push(bad_envelope(
        "duplicate key spelled with an escape",
        &["DuplicateKey", "Escapes"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId":"a","thread\u0049d":"b","threadId":"c"}}"#,
        dup("threadId"),
        None,
    ));
    // CMD-7: without `jsonrpc` a message is JSON-RPC 2.0 (this case, at its place in the
    // file, was refused with MissingVersion before Codex's wire format was followed).
    let bare = br#"{"id":1,"method":"thread/list"}"#;
    out.push(valid_bytes(
        "request without jsonrpc (as Codex's app-server sends it)",
        &["Request", "Version", "NoParams"],
        C2H,
        bare.to_vec(),
        // A generator bug (a text that does not parse) shows up as a failing case.
        &Message::parse(bare)
            .unwrap_or_else(|_| Message::Notification(Notification::new("GENERATOR-BUG", None))),
        None,
    ));
    out.push(bad_envelope(
        "jsonrpc \"1.0\"",
        &["Version"],
        r#"{"jsonrpc":"1.0","id":1,"method":"thread/list"}"#,
        CommandError::BadVersion,
        n(1),
    ));
    out.push(bad_envelope(
        "jsonrpc as a number",
        &["Version"],
        r#"{"jsonrpc":2.0,"id":"s","method":"thread/list"}"#,
        CommandError::BadVersion,
        Some(Id::from("s")),
    ));
    out.push(bad_envelope(
        "batch array",
        &["Batch"],
        r#"[{"jsonrpc":"2.0","id":1,"method":"thread/list"},{"jsonrpc":"2.0","id":2,"method":"thread/list"}]"#,
        CommandError::Batch,
        None,
    ));
    out.push(bad_envelope(
        "empty batch",
        &["Batch"],
        "[]",
        CommandError::Batch,
        None,
    ));
    out.push(bad_envelope(
        "a JSON string, not an object",
        &["NotObject"],
        r#""thread/list""#,
        CommandError::NotObject,
        None,
    ));
    out.push(bad_envelope(
        "null",
        &["NotObject"],
        "null",
        CommandError::NotObject,
        None,
    ));
    for (comment, id) in [
        ("null id on a request", "null"),
        ("fractional id", "1.5"),
        ("integer id written with a fraction", "1.0"),
        ("integer id written with an exponent", "1e2"),
        ("boolean id", "true"),
        ("array id", "[1]"),
        ("object id", "{}"),
        ("id 2^53, beyond the safe range", "9007199254740992"),
        ("id -2^53", "-9007199254740992"),
        ("id beyond 64 bits", "18446744073709551616"),
    ] {
        out.push(bad_envelope(
            comment,
            &["Id"],
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"thread/list"}}"#),
            CommandError::BadId,
            None,
        ));
    }
    out.push(bad_envelope(
        "string id of 257 bytes",
        &["Id"],
        format!(
            r#"{{"jsonrpc":"2.0","id":"{}","method":"thread/list"}}"#,
            "i".repeat(257)
        ),
        CommandError::BadId,
        None,
    ));
    out.push(bad_envelope(
        "nesting 33 deep",
        &["Depth"],
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":{}{}}}}}"#,
            "[".repeat(31),
            "]".repeat(31)
        ),
        CommandError::TooDeep,
        None,
    ));
    out.push(bad_envelope(
        "nesting 10000 deep",
        &["Depth"],
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        CommandError::TooDeep,
        None,
    ));
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(br#"{"jsonrpc":"2.0","id":1,"method":"thread/list"}"#);
    out.push(bad_envelope(
        "UTF-8 byte-order mark before the object",
        &["Bom"],
        bom,
        CommandError::Bom,
        None,
    ));
    out.push(bad_envelope(
        "invalid UTF-8 in a string",
        &["Utf8"],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/read\",\"params\":{\"threadId\":\"\xC3\x28\"}}".to_vec(),
        CommandError::InvalidUtf8,
        None,
    ));
    out.push(bad_envelope(
        "overlong UTF-8 encoding of '/'",
        &["Utf8"],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread\xC0\xAFlist\"}".to_vec(),
        CommandError::InvalidUtf8,
        None,
    ));
    out.push(bad_envelope(
        "UTF-16 encoded text",
        &["Utf8"],
        b"\xFF\xFE{\x00}\x00".to_vec(),
        CommandError::InvalidUtf8,
        None,
    ));
    out.push(bad_envelope(
        "lone surrogate escape",
        &["Parse"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId":"\ud800"}}"#,
        parse(),
        None,
    ));
    out.push(bad_envelope(
        "trailing garbage after the object",
        &["Parse", "Trailing"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/list"}x"#,
        parse(),
        None,
    ));
    out.push(bad_envelope(
        "two objects in one message",
        &["Parse", "Trailing"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/list"}{"jsonrpc":"2.0","id":2,"method":"thread/list"}"#,
        parse(),
        None,
    ));
    out.push(bad_envelope(
        "NUL after the object",
        &["Parse", "Trailing"],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"thread/list\"}\x00".to_vec(),
        parse(),
        None,
    ));
    out.push(bad_envelope("empty message", &["Parse"], "", parse(), None));
    out.push(bad_envelope(
        "truncated object",
        &["Parse"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/li"#,
        parse(),
        None,
    ));
    out.push(bad_envelope(
        "trailing comma",
        &["Parse"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/list",}"#,
        parse(),
        None,
    ));
    out.push(bad_envelope(
        "NaN is not JSON",
        &["Parse"],
        r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":NaN}}"#,
        parse(),
        None,
    ));
    out.push(bad_envelope(
        "method is not a string",
        &["Shape"],
        r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
        inv(),
        n(1),
    ));
    out.push(bad_envelope(
        "params is a string",
        &["Shape"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/list","params":"all"}"#,
        inv(),
        n(1),
    ));
    out.push(bad_envelope(
        "params is null",
        &["Shape"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/list","params":null}"#,
        inv(),
        n(1),
    ));
    out.push(bad_envelope(
        "request with a result member",
        &["Shape"],
        r#"{"jsonrpc":"2.0","id":1,"method":"thread/list","result":{}}"#,
        inv(),
        n(1),
    ));
    out.push(bad_envelope(
        "neither method nor id",
        &["Shape"],
        r#"{"jsonrpc":"2.0","params":{}}"#,
        inv(),
        None,
    ));
    out.push(invalid(
        "response with both result and error (not answered)",
        &["Shape", "NoReply"],
        H2C,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":-32603,"message":"x"}}"#,
        "envelope",
        inv(),
        None,
    ));
    out.push(bad_envelope(
        "id alone: neither result nor error",
        &["Shape"],
        r#"{"jsonrpc":"2.0","id":1}"#,
        inv(),
        n(1),
    ));
    out.push(invalid(
        "success response with a null id (not answered)",
        &["Id", "NoReply"],
        H2C,
        r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
        "envelope",
        CommandError::BadId,
        None,
    ));
    out.push(invalid(
        "error member is a string (not answered)",
        &["ErrorObject", "NoReply"],
        H2C,
        r#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
        "envelope",
        bad_err(),
        None,
    ));
    out.push(invalid(
        "error code is fractional (not answered)",
        &["ErrorObject", "NoReply"],
        H2C,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600.5,"message":"x"}}"#,
        "envelope",
        bad_err(),
        None,
    ));
    out.push(invalid(
        "error without message (not answered)",
        &["ErrorObject", "NoReply"],
        H2C,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600}}"#,
        "envelope",
        bad_err(),
        None,
    ));

    // Typed decode.
    out.push(invalid(
        "unknown method",
        &["MethodNotFound"],
        C2H,
        r#"{"jsonrpc":"2.0","id":5,"method":"thread/delete","params":{"threadId":"t"}}"#,
        "typed",
        CommandError::MethodNotFound {
            method: "thread/delete".into(),
        },
        Some(n(5)),
    ));
    out.push(invalid(
        "host-to-controller method sent to the host",
        &["MethodNotFound"],
        C2H,
        r#"{"jsonrpc":"2.0","id":"x","method":"item/commandExecution/requestApproval","params":{}}"#,
        "typed",
        CommandError::MethodNotFound {
            method: "item/commandExecution/requestApproval".into(),
        },
        Some(Some(Id::from("x"))),
    ));
    out.push(invalid(
        "method names are case-sensitive",
        &["MethodNotFound"],
        C2H,
        r#"{"jsonrpc":"2.0","id":6,"method":"Thread/List"}"#,
        "typed",
        CommandError::MethodNotFound {
            method: "Thread/List".into(),
        },
        Some(n(6)),
    ));
    out.push(invalid(
        "unknown notification (ignored, not answered)",
        &["MethodNotFound", "NoReply"],
        C2H,
        r#"{"jsonrpc":"2.0","method":"x/somethingNew","params":{}}"#,
        "typed",
        CommandError::MethodNotFound {
            method: "x/somethingNew".into(),
        },
        None,
    ));
    out.push(bad_params(
        "thread/read without threadId",
        "thread/read",
        json!({}),
        "missing field `threadId`",
    ));
    out.push(bad_params(
        "thread/read with a numeric threadId",
        "thread/read",
        json!({"threadId": 7}),
        "",
    ));
    out.push(bad_params(
        "params as an array",
        "thread/read",
        json!(["t"]),
        "params must be an object",
    ));
    out.push(bad_params(
        "initialize without clientInfo",
        "initialize",
        json!({"tether": {"protocolVersion": "tether/2"}}),
        "",
    ));
    out.push(bad_params(
        "thread/start with an unknown sandbox mode",
        "thread/start",
        json!({"sandbox": "none"}),
        "",
    ));
    out.push(bad_params(
        "thread/start with an unknown approval policy",
        "thread/start",
        json!({"approvalPolicy": "sometimes"}),
        "",
    ));
    out.push(bad_params(
        "thread/list limit 0",
        "thread/list",
        json!({"limit": 0}),
        "",
    ));
    out.push(bad_params(
        "thread/list limit 1001",
        "thread/list",
        json!({"limit": 1001}),
        "",
    ));
    out.push(bad_params(
        "turn/start with empty input",
        "turn/start",
        json!({"threadId": "t", "input": []}),
        "",
    ));
    out.push(bad_params(
        "turn/start with an image input (only text is taken)",
        "turn/start",
        json!({"threadId": "t", "input": [{"type": "image", "url": "x"}]}),
        "",
    ));
    let exec = |extra: Value| {
        let mut p =
            json!({"command": ["ls"], "cwd": CWD, "processId": "p1", "streamStdoutStderr": true});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                p.insert(k.clone(), v.clone());
            }
        }
        p
    };
    out.push(bad_params(
        "command/exec with an empty argv",
        "command/exec",
        exec(json!({"command": []})),
        "",
    ));
    out.push(bad_params(
        "command/exec with a string command",
        "command/exec",
        exec(json!({"command": "ls -l"})),
        "",
    ));
    out.push(bad_params(
        "command/exec with streamStdoutStderr but without processId",
        "command/exec",
        json!({"command": ["ls"], "cwd": CWD, "streamStdoutStderr": true}),
        "",
    ));
    out.push(bad_params(
        "command/exec with a processId of 65 bytes",
        "command/exec",
        exec(json!({"processId": "p".repeat(65)})),
        "",
    ));
    out.push(bad_params(
        "command/exec with timeoutMs 0",
        "command/exec",
        exec(json!({"timeoutMs": 0})),
        "",
    ));
    out.push(bad_params(
        "command/exec with timeoutMs above 24 h",
        "command/exec",
        exec(json!({"timeoutMs": 86_400_001})),
        "",
    ));
    out.push(bad_params(
        "command/exec with a negative timeoutMs",
        "command/exec",
        exec(json!({"timeoutMs": -1})),
        "",
    ));
    out.push(bad_params(
        "command/exec with outputBytesCap above 64 MiB",
        "command/exec",
        exec(json!({"outputBytesCap": 67_108_865})),
        "",
    ));
    let mut b = value(&bundle());
    set(&mut b, "cwdRelative", json!("../../etc"));
    out.push(invalid(
        "tether/thread/import with cwdRelative climbing out of the project",
        &["Bundle"],
        C2H,
        Message::Request(Request::new(
            10,
            "tether/thread/import",
            Some(json!({"bundle": b.clone()})),
        ))
        .to_bytes(),
        "typed",
        CommandError::InvalidBundle {
            detail: String::new(),
        },
        Some(n(10)),
    ));
    for (comment, field, v) in [
        (
            "tether/thread/import with an absolute cwdRelative",
            "cwdRelative",
            json!("/etc"),
        ),
        (
            "tether/thread/import with a Windows drive in cwdRelative",
            "cwdRelative",
            json!("C:\\Users"),
        ),
        (
            "tether/thread/import with an empty cwdRelative",
            "cwdRelative",
            json!(""),
        ),
        (
            "tether/thread/import with bundle version 2",
            "version",
            json!(2),
        ),
    ] {
        let mut b = value(&bundle());
        set(&mut b, field, v);
        out.push(invalid(
            comment,
            &["Bundle"],
            C2H,
            Message::Request(Request::new(
                11,
                "tether/thread/import",
                Some(json!({"bundle": b})),
            ))
            .to_bytes(),
            "typed",
            CommandError::InvalidBundle {
                detail: String::new(),
            },
            Some(n(11)),
        ));
    }
    let big = json!({
        "processId": "p1", "stream": "stdout",
        "deltaBase64": delta("command/too-big", 16 * 1024 + 1), "capReached": false
    });
    out.push(invalid(
        "command/exec/outputDelta carrying 16385 bytes",
        &["Chunk", "NoReply"],
        H2C,
        Message::Notification(Notification::new("command/exec/outputDelta", Some(big))).to_bytes(),
        "typed",
        CommandError::InvalidParams {
            method: "command/exec/outputDelta".into(),
            detail: String::new(),
        },
        None,
    ));
    out.push(invalid(
        "item/commandExecution/outputDelta with a base64 chunk instead of a text delta (tether/1 shape)",
        &["Chunk", "NoReply"],
        H2C,
        r#"{"jsonrpc":"2.0","method":"item/commandExecution/outputDelta","params":{"threadId":"t","turnId":"u","itemId":"i","stream":"stdout","deltaBase64":"aGk=","capReached":false}}"#,
        "typed",
        CommandError::InvalidParams {
            method: "item/commandExecution/outputDelta".into(),
            detail: String::new(),
        },
        None,
    ));
    out.push(invalid(
        "approval answer with an unknown decision (not answered)",
        &["Approval", "NoReply"],
        C2H,
        r#"{"jsonrpc":"2.0","id":3,"result":{"decision":"maybe"}}"#,
        "typed",
        CommandError::BadResult {
            method: "item/commandExecution/requestApproval".into(),
            detail: String::new(),
        },
        None,
    ));
    out.push(invalid(
        "command/exec result without tether.exitCode (null is required when absent)",
        &["Result", "NoReply"],
        H2C,
        r#"{"jsonrpc":"2.0","id":8,"result":{"exitCode":137,"stdout":"","stderr":"","tether":{"signal":"SIGKILL","timedOut":false,"capReached":false,"sandbox":{"requested":"read-only","enforced":"read-only","network":"denied","degraded":false,"mechanism":"landlock"}}}}"#,
        "typed",
        CommandError::BadResult {
            method: "command/exec".into(),
            detail: String::new(),
        },
        None,
    ));
    // Which error a text with several gets: the first reached, reading from the start
    // (the paragraph after CMD-5). A repeated name is reached at its closing quote, before
    // its `:`; a level-33 container at its opening bracket; a syntax error at the first
    // character that cannot continue the text (the end, for a truncated one).
    out.push(bad_envelope(
        "first error: a repeated name before a missing ':'",
        &["DuplicateKey", "Order"],
        r#"{"jsonrpc":"2.0","id":1,"id" 2}"#,
        dup("id"),
        None,
    ));
    out.push(bad_envelope(
        "first error: a repeated name at the end of a truncated text",
        &["DuplicateKey", "Order"],
        r#"{"jsonrpc":"2.0","id":1,"id""#,
        dup("id"),
        None,
    ));
    out.push(bad_envelope(
        "first error: a syntax error before a repeated name",
        &["Parse", "Order"],
        r#"{"jsonrpc":"2.0","id":1,,"id":2}"#,
        parse(),
        None,
    ));
    out.push(bad_envelope(
        "first error: a repeated name before a level-33 container in its value",
        &["DuplicateKey", "Order"],
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":1,"a":{}{}}}}}"#,
            "[".repeat(31),
            "]".repeat(31)
        ),
        dup("a"),
        None,
    ));
    out.push(bad_envelope(
        "first error: a level-33 container before the text ends",
        &["Depth", "Order"],
        format!(r#"{{"jsonrpc":"2.0","id":1,"params":{}"#, "[".repeat(32)),
        CommandError::TooDeep,
        None,
    ));
    out.push(bad_envelope(
        "first error: a syntax error inside level 32 before a level-33 container",
        &["Parse", "Order"],
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"params":{}x[{}"#,
            "[".repeat(30),
            "]".repeat(31)
        ),
        parse(),
        None,
    ));
    out
}

/// Cases of what was added to chapter 5 after its first publication: appended, so that
/// every earlier case keeps its `tcId`.
fn later_cases() -> Vec<Case> {
    // CMD-77: `tether/host/info`.
    let mut out = vec![valid(
        "request tether/host/info",
        &["Request", "NoParams"],
        C2H,
        &Message::Request(Request::new(12, HostInfoParams::METHOD, None)),
    )];
    out.push(result::<HostInfoParams>(
        12,
        &HostInfoResult {
            home: Some("/home/dev".into()),
            default_cwd: Some(CWD.into()),
            default_sandbox: SandboxMode::WorkspaceWrite,
            max_sandbox: SandboxMode::DangerFullAccess,
            default_approval_policy: ApprovalPolicy::Untrusted,
            max_approval_policy: ApprovalPolicy::Never,
        },
    ));
    out.push(result::<HostInfoParams>(
        13,
        &HostInfoResult {
            home: None,
            default_cwd: None,
            default_sandbox: SandboxMode::ReadOnly,
            max_sandbox: SandboxMode::WorkspaceWrite,
            default_approval_policy: ApprovalPolicy::Untrusted,
            max_approval_policy: ApprovalPolicy::OnRequest,
        },
    ));
    out.push(invalid(
        "tether/host/info result without maxSandbox",
        &["Result", "NoReply"],
        H2C,
        br#"{"jsonrpc":"2.0","id":12,"result":{"home":"/home/dev","defaultCwd":null,"defaultSandbox":"read-only","defaultApprovalPolicy":"untrusted","maxApprovalPolicy":"never"}}"#.to_vec(),
        "typed",
        CommandError::BadResult {
            method: HostInfoParams::METHOD.into(),
            detail: String::new(),
        },
        None,
    ));
    // CMD-7: the other kinds without `jsonrpc`.
    for (comment, text, result_of) in [
        (
            "notification without jsonrpc",
            r#"{"method":"initialized"}"#,
            None,
        ),
        (
            "response without jsonrpc",
            r#"{"id":7,"result":{}}"#,
            Some(TurnInterruptParams::METHOD),
        ),
        (
            "error response without jsonrpc",
            r#"{"id":7,"error":{"code":-32601,"message":"method not found"}}"#,
            None,
        ),
    ] {
        let direction = if result_of.is_some() { H2C } else { C2H };
        out.push(valid_bytes(
            comment,
            &["Version"],
            direction,
            text.as_bytes().to_vec(),
            &Message::parse(text.as_bytes()).unwrap_or_else(|_| {
                Message::Notification(Notification::new("GENERATOR-BUG", None))
            }),
            result_of,
        ));
    }
    out.extend(codex_shape_cases());
    out
}

/// Section 5.3-5.5 on Codex app-server v2's wire format (tether/2): what a receiver takes
/// from a Codex peer, and the Codex params a Tether host refuses.
fn codex_shape_cases() -> Vec<Case> {
    let tid = thread_id();
    let mut out = Vec::new();
    let h2c_text = |comment: &str, flags: &[&'static str], text: String, result_of| {
        let m = Message::parse(text.as_bytes())
            .unwrap_or_else(|_| Message::Notification(Notification::new("GENERATOR-BUG", None)));
        valid_bytes(comment, flags, H2C, text.into_bytes(), &m, result_of)
    };
    out.push(h2c_text(
        "item/completed with an item type the receiver does not know (kept, not refused)",
        &["Notification", "UnknownItem"],
        format!(
            r#"{{"method":"item/completed","params":{{"threadId":"{tid}","turnId":"t","completedAtMs":1798761642000,"item":{{"type":"fileChange","id":"item_7","changes":[],"status":"completed"}}}}}}"#
        ),
        None,
    ));
    out.push(h2c_text(
        "thread/read result from a Codex server (members Tether does not send, no tether, nulls)",
        &["Result", "Codex"],
        format!(
            r#"{{"id":5,"result":{{"thread":{{"id":"{tid}","sessionId":"{tid}","cwd":"{CWD}","createdAt":1,"updatedAt":2,"status":{{"type":"notLoaded"}},"preview":"","turns":[],"ephemeral":false,"cliVersion":"0.169.0","modelProvider":"openai","source":"vscode","projectId":null,"name":null,"gitInfo":null,"path":null}}}}}}"#
        ),
        Some(ThreadReadParams::METHOD),
    ));
    out.push(h2c_text(
        "thread/list result of the last page (nextCursor null)",
        &["Result"],
        r#"{"id":4,"result":{"data":[],"nextCursor":null}}"#.into(),
        Some(ThreadListParams::METHOD),
    ));
    let c2h = |comment: &str, flags: &[&'static str], text: &str, result_of| {
        let m = Message::parse(text.as_bytes())
            .unwrap_or_else(|_| Message::Notification(Notification::new("GENERATOR-BUG", None)));
        valid_bytes(comment, flags, C2H, text.as_bytes().to_vec(), &m, result_of)
    };
    out.push(c2h(
        "approval answer with a Codex object decision (decodes; the host did not offer it)",
        &["Approval", "Result"],
        r#"{"id":3,"result":{"decision":{"acceptWithExecpolicyAmendment":{"execpolicy_amendment":["cargo","test"]}}}}"#,
        Some(CommandExecutionRequestApprovalParams::METHOD),
    ));
    out.push(c2h(
        "thread/start with Codex params a host may ignore",
        &["Request", "Codex"],
        r#"{"id":2,"method":"thread/start","params":{"cwd":null,"model":"gpt-5","baseInstructions":null,"config":{"x":1},"ephemeral":false,"approvalsReviewer":"user","approvalPolicy":"on-request"}}"#,
        None,
    ));
    out.push(c2h(
        "thread/resume with null overrides and excludeTurns",
        &["Request", "Codex"],
        r#"{"id":3,"method":"thread/resume","params":{"threadId":"t","sandbox":null,"model":null,"excludeTurns":true}}"#,
        None,
    ));
    out.push(c2h(
        "turn/start with text_elements and a client message id",
        &["Request", "Codex"],
        r#"{"id":6,"method":"turn/start","params":{"threadId":"t","input":[{"type":"text","text":"hi","text_elements":[]}],"clientUserMessageId":"m1","effort":null}}"#,
        None,
    ));
    for (comment, method, params) in [
        (
            "thread/start with approval policy on-failure (Codex refuses it too)",
            "thread/start",
            json!({"approvalPolicy": "on-failure"}),
        ),
        (
            "thread/start with a granular approval policy",
            "thread/start",
            json!({"approvalPolicy": {"granular": {"sandbox_approval": true, "rules": true, "mcp_elicitations": false}}}),
        ),
        (
            "thread/start with an approvals reviewer other than user",
            "thread/start",
            json!({"approvalsReviewer": "auto_review"}),
        ),
        (
            "thread/start with ephemeral true (threads are durable)",
            "thread/start",
            json!({"ephemeral": true}),
        ),
        (
            "thread/resume with a sandbox override",
            "thread/resume",
            json!({"threadId": "t", "sandbox": "danger-full-access"}),
        ),
        (
            "turn/start with a model override",
            "turn/start",
            json!({"threadId": "t", "input": [{"type": "text", "text": "a"}], "model": "gpt-5"}),
        ),
        (
            "thread/list sorted ascending",
            "thread/list",
            json!({"sortDirection": "asc"}),
        ),
        (
            "thread/list sorted by creation time",
            "thread/list",
            json!({"sortKey": "created_at"}),
        ),
    ] {
        out.push(bad_params(comment, method, params, ""));
    }
    out.push(invalid(
        "item/commandExecution/outputDelta with a delta of 16385 bytes",
        &["Chunk", "NoReply"],
        H2C,
        Message::Notification(Notification::new(
            "item/commandExecution/outputDelta",
            Some(json!({"threadId": "t", "turnId": "u", "itemId": "i", "delta": "a".repeat(16 * 1024 + 1)})),
        ))
        .to_bytes(),
        "typed",
        CommandError::InvalidParams {
            method: "item/commandExecution/outputDelta".into(),
            detail: String::new(),
        },
        None,
    ));
    out.push(invalid(
        "item/started with a userMessage of the tether/1 shape (text, no content)",
        &["NoReply"],
        H2C,
        br#"{"method":"item/started","params":{"threadId":"t","turnId":"u","startedAtMs":1,"item":{"type":"userMessage","id":"i","text":"hi"}}}"#
            .to_vec(),
        "typed",
        CommandError::InvalidParams {
            method: "item/started".into(),
            detail: String::new(),
        },
        None,
    ));
    out
}

/// Cases of the session messages on Codex app-server v2's wire format (`initialize` with
/// Tether's members in `tether`): appended, so that every earlier case keeps its `tcId`.
fn wire_v2_session_cases() -> Vec<Case> {
    let plain = r#"{"id":1,"method":"initialize","params":{"clientInfo":{"name":"codex_vscode","title":"Codex VS Code","version":"0.169.0"},"capabilities":{"experimentalApi":true,"optOutNotificationMethods":null}}}"#;
    let mut out = vec![valid_bytes(
        "initialize from a plain app-server client (no tether member)",
        &["Request", "Version"],
        C2H,
        plain.as_bytes().to_vec(),
        &Message::parse(plain.as_bytes())
            .unwrap_or_else(|_| Message::Notification(Notification::new("GENERATOR-BUG", None))),
        None,
    )];
    out.push(bad_params(
        "initialize with capabilities as a list of names (tether/1's shape)",
        "initialize",
        json!({"clientInfo": {"name": "t", "version": "1"}, "protocolVersion": "tether/1", "capabilities": ["command.exec"]}),
        "",
    ));
    out.push(invalid(
        "initialize result without its tether member",
        &["Result", "NoReply"],
        H2C,
        br#"{"jsonrpc":"2.0","id":1,"result":{"userAgent":"x/1","codexHome":"/h","platformFamily":"unix","platformOs":"linux"}}"#.to_vec(),
        "typed",
        CommandError::BadResult {
            method: InitializeParams::METHOD.into(),
            detail: String::new(),
        },
        None,
    ));
    out
}

/// Cases of `command/exec` on Codex app-server v2's wire format (output in the result,
/// `sandboxPolicy`, Codex's members Tether refuses): appended.
fn wire_v2_exec_cases() -> Vec<Case> {
    let buffered = r#"{"id":14,"method":"command/exec","params":{"command":["git","status","--short"],"cwd":"/home/dev/acme/service","processId":null,"streamStdoutStderr":false,"tty":false,"size":null,"timeoutMs":null,"outputBytesCap":null,"env":null,"sandboxPolicy":{"type":"workspaceWrite","writableRoots":[],"networkAccess":false,"excludeTmpdirEnvVar":false,"excludeSlashTmp":false}}}"#;
    let mut out = vec![valid_bytes(
        "command/exec with the output in the result, no processId, Codex's nulls",
        &["Request"],
        C2H,
        buffered.as_bytes().to_vec(),
        &Message::parse(buffered.as_bytes())
            .unwrap_or_else(|_| Message::Notification(Notification::new("GENERATOR-BUG", None))),
        None,
    )];
    out.push(result::<CommandExecParams>(
        14,
        &CommandExecResult {
            exit_code: 0,
            stdout: " M src/lib.rs\n".into(),
            stderr: String::new(),
            tether: CommandExecReport {
                exit_code: Some(0),
                signal: None,
                timed_out: false,
                cap_reached: false,
                sandbox: report(SandboxMode::WorkspaceWrite),
            },
        },
    ));
    let exec = |extra: Value| {
        let mut p = json!({"command": ["ls"], "cwd": CWD});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                p.insert(k.clone(), v.clone());
            }
        }
        p
    };
    for (comment, extra) in [
        (
            "command/exec with the output in the result and outputBytesCap above 8 192",
            json!({"outputBytesCap": 8193}),
        ),
        (
            "command/exec with disableOutputCap but the output in the result",
            json!({"disableOutputCap": true}),
        ),
        (
            "command/exec with outputBytesCap and disableOutputCap",
            json!({"processId": "p1", "streamStdoutStderr": true, "outputBytesCap": 5, "disableOutputCap": true}),
        ),
        (
            "command/exec with timeoutMs and disableTimeout",
            json!({"timeoutMs": 1000, "disableTimeout": true}),
        ),
        (
            "command/exec with tty",
            json!({"processId": "p1", "tty": true}),
        ),
        (
            "command/exec with streamStdin",
            json!({"processId": "p1", "streamStdin": true}),
        ),
        (
            "command/exec with an environment override",
            json!({"env": {"RUST_LOG": "debug"}}),
        ),
        (
            "command/exec with an external sandbox",
            json!({"sandboxPolicy": {"type": "externalSandbox"}}),
        ),
        (
            "command/exec with writableRoots",
            json!({"sandboxPolicy": {"type": "workspaceWrite", "writableRoots": ["/etc"]}}),
        ),
        (
            "command/exec read-only with network access",
            json!({"sandboxPolicy": {"type": "readOnly", "networkAccess": true}}),
        ),
        (
            "command/exec with a sandbox mode string as sandboxPolicy",
            json!({"sandboxPolicy": "read-only"}),
        ),
    ] {
        out.push(bad_params(comment, "command/exec", exec(extra), ""));
    }
    out.push(invalid(
        "command/exec result in tether/1's shape (exitCode null, no tether member)",
        &["Result", "NoReply"],
        H2C,
        br#"{"jsonrpc":"2.0","id":8,"result":{"exitCode":null,"signal":"SIGKILL","timedOut":true,"capReached":false,"sandbox":{"degraded":false,"enforced":"read-only","mechanism":"landlock","network":"denied","requested":"read-only"}}}"#.to_vec(),
        "typed",
        CommandError::BadResult {
            method: CommandExecParams::METHOD.into(),
            detail: String::new(),
        },
        None,
    ));
    out
}

// ---------------------------------------------------------------------------------------
// file

fn case_json(id: usize, c: &Case) -> Value {
    let mut v = json!({
        "tcId": id,
        "comment": c.comment,
        "flags": c.flags,
        "direction": c.direction,
        "msg": hex::encode(&c.msg),
    });
    if let Ok(text) = std::str::from_utf8(&c.msg)
        && !c.msg.starts_with(b"\xEF\xBB\xBF")
        && c.msg.len() <= 4096
    {
        set(&mut v, "text", json!(text));
    }
    match &c.outcome {
        Outcome::Valid { expected } => {
            set(&mut v, "result", json!("valid"));
            set(&mut v, "expected", expected.clone());
        }
        Outcome::Invalid {
            stage,
            error,
            reply,
        } => {
            set(&mut v, "result", json!("invalid"));
            set(&mut v, "stage", json!(stage));
            set(
                &mut v,
                "error",
                json!({"name": error.name(), "requirement": error.requirement()}),
            );
            set(&mut v, "rpcCode", json!(error.rpc_code()));
            set(
                &mut v,
                "reply",
                match reply {
                    None => Value::Null,
                    Some(id) => json!({"id": id.as_ref().map(Id::to_value).unwrap_or(Value::Null)}),
                },
            );
            if let Some(method) = result_method(error) {
                set(&mut v, "resultOf", json!(method));
            }
        }
    }
    v
}

fn result_method(e: &CommandError) -> Option<&str> {
    match e {
        CommandError::BadResult { method, .. } => Some(method),
        _ => None,
    }
}

fn generate() -> String {
    let cases: Vec<Case> = valid_cases()
        .into_iter()
        .chain(invalid_cases())
        .chain(later_cases())
        .chain(wire_v2_session_cases())
        .chain(wire_v2_exec_cases())
        .collect();
    let tests: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| case_json(i + 1, c))
        .collect();
    to_json(&json!({
        "vectors": "command",
        "specVersion": 1,
        "description": "JSON-RPC command protocol (spec/05-command-protocol.md). Each case is \
            the plaintext of one transport message (msg, hex; text repeats it when it is \
            short UTF-8 without BOM). Valid cases must parse, match `expected`, and decode \
            as the typed message of their direction (a response: as the result of \
            `resultOf`). Invalid cases must fail at `stage` (envelope: the strict parser; \
            typed: the method/params/result decoder) with `error`, reported with JSON-RPC \
            code `rpcCode`; `reply` is the error response the receiver sends (its id), or \
            null when it sends none.",
        "notes": {
            "Approval": "approval request or answer (CMD-27..CMD-32)",
            "Batch": "JSON array: batches are refused (CMD-6)",
            "Bom": "UTF-8 byte-order mark (CMD-3)",
            "Bundle": "hand-off bundle that may not be imported (CMD-53), -32017",
            "Cancellation": "tether/cancelled (CMD-57)",
            "Chunk": "outputDelta chunk rules (CMD-40)",
            "Codex": "a Codex app-server v2 message shape a Tether receiver takes (section 5.3)",
            "Depth": "nesting depth limit 32 (CMD-4)",
            "DuplicateKey": "an object repeats a member name (CMD-5)",
            "ErrorObject": "malformed error member (CMD-10)",
            "ErrorResponse": "well-formed error response",
            "Escapes": "member names compared after unescaping",
            "Id": "id type and range rules (CMD-8)",
            "InvalidParams": "params of a known method are wrong (CMD-13), -32602",
            "MaxLength": "a value at its largest allowed size",
            "MethodNotFound": "unknown method (CMD-12), -32601",
            "NoParams": "params member absent (counts as {})",
            "NoReply": "the receiver sends no error response (a notification or a response)",
            "NotObject": "JSON value other than an object (CMD-6)",
            "Order": "a text with several errors: the first reached from the start decides (CMD-3..CMD-5)",
            "Notification": "notification of a registered method",
            "Parse": "not exactly one JSON value (CMD-3)",
            "Request": "request of a registered method",
            "Result": "success response, checked against the result type of resultOf",
            "Shape": "not a request, notification or response (CMD-9)",
            "Siblings": "equal member names in different objects are not duplicates",
            "Trailing": "bytes after the JSON value (CMD-3)",
            "UnknownItem": "an item type the receiver does not know is kept, not refused (section 5.4)",
            "UnknownMember": "members a receiver does not know are ignored (CMD-13)",
            "Utf8": "UTF-8 text rules (CMD-3)",
            "Version": "jsonrpc member absent (accepted) or not \"2.0\" (refused) (CMD-7)",
            "Whitespace": "JSON whitespace and member order do not matter"
        },
        "schema": {
            "direction": "controllerToHost or hostToController: which typed set decodes it",
            "msg": "the message bytes (hex)",
            "text": "the same bytes as a string, when short valid UTF-8",
            "expected": "valid: kind (request|notification|response|error), method, id (JSON value), code (error), resultOf (response)",
            "stage": "invalid: envelope or typed",
            "error": "invalid: name (CommandError variant) and requirement id",
            "rpcCode": "invalid: the JSON-RPC error code",
            "reply": "invalid: {id} of the error response the receiver sends, or null for none",
            "resultOf": "the method whose result a response carries"
        },
        "numberOfTests": tests.len(),
        "tests": tests,
    }))
}

// ---------------------------------------------------------------------------------------
// checker

fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, String> {
    field(v, name)?
        .as_str()
        .ok_or_else(|| format!("{name} is not a string"))
}

fn typed(direction: &str, m: &Message, result_of: Option<&str>) -> Result<(), CommandError> {
    match (m, direction) {
        (Message::Request(r), C2H) => ClientRequest::from_request(r).map(drop),
        (Message::Request(r), _) => ServerRequest::from_request(r).map(drop),
        (Message::Notification(n), C2H) => ClientNotification::from_notification(n).map(drop),
        (Message::Notification(n), _) => ServerNotification::from_notification(n).map(drop),
        (Message::Response(r), _) => match result_of {
            Some(method) => check_result(method, &r.result),
            None => Err(CommandError::Internal {
                detail: "response without resultOf".into(),
            }),
        },
        (Message::Error(_), _) => Ok(()),
    }
}

fn check_case(case: &Value) -> Result<(), String> {
    let msg = hex::decode(str_field(case, "msg")?).map_err(|e| format!("msg: {e}"))?;
    if let Some(text) = case.get("text")
        && text.as_str().map(str::as_bytes) != Some(msg.as_slice())
    {
        return Err("text differs from msg".into());
    }
    let direction = str_field(case, "direction")?;
    if direction != C2H && direction != H2C {
        return Err(format!("unknown direction {direction}"));
    }
    let result_of = case.get("resultOf").and_then(Value::as_str);
    let parsed = Message::parse_or_reject(&msg);
    match str_field(case, "result")? {
        "valid" => {
            let m = parsed.map_err(|r| format!("refused: {:?}", r.error))?;
            let expected = field(case, "expected")?;
            let result_of = expected.get("resultOf").and_then(Value::as_str);
            let mut got = json!({"kind": m.kind()});
            if let Some(method) = m.method() {
                set(&mut got, "method", json!(method));
            }
            match &m {
                Message::Request(_) | Message::Response(_) => {
                    set(
                        &mut got,
                        "id",
                        m.id().map(Id::to_value).unwrap_or(Value::Null),
                    );
                }
                Message::Error(e) => {
                    set(
                        &mut got,
                        "id",
                        e.id.as_ref().map(Id::to_value).unwrap_or(Value::Null),
                    );
                    set(&mut got, "code", json!(e.error.code));
                }
                Message::Notification(_) => {}
            }
            if let Some(r) = result_of {
                set(&mut got, "resultOf", json!(r));
            }
            if &got != expected {
                return Err(format!("parsed as {got}, expected {expected}"));
            }
            typed(direction, &m, result_of).map_err(|e| format!("typed decode failed: {e}"))
        }
        "invalid" => {
            let want = field(case, "error")?;
            let (name, req) = (str_field(want, "name")?, str_field(want, "requirement")?);
            let code = field(case, "rpcCode")?.as_i64().ok_or("rpcCode")?;
            let stage = str_field(case, "stage")?;
            let reply = field(case, "reply")?;
            let (error, got_reply) = match (stage, parsed) {
                ("envelope", Err(r)) => {
                    let got_reply = r
                        .reply()
                        .map(|e| json!({"id": e.id.as_ref().map(Id::to_value).unwrap_or(Value::Null)}))
                        .unwrap_or(Value::Null);
                    (r.error, got_reply)
                }
                ("typed", Ok(m)) => {
                    let e = match typed(direction, &m, result_of) {
                        Ok(()) => return Err("typed decode succeeded".into()),
                        Err(e) => e,
                    };
                    let got_reply = match &m {
                        Message::Request(r) => json!({"id": r.id.to_value()}),
                        _ => Value::Null,
                    };
                    (e, got_reply)
                }
                (_, got) => return Err(format!("stage {stage}: got {got:?}")),
            };
            if error.name() != name || error.requirement() != req || error.rpc_code() != code {
                return Err(format!("expected {name} ({req}, {code}), got {error:?}"));
            }
            if &got_reply != reply {
                return Err(format!("reply {got_reply}, expected {reply}"));
            }
            Ok(())
        }
        other => Err(format!("unknown result {other}")),
    }
}

fn check(contents: &str) -> Result<usize, String> {
    crate::format::check_cases(contents, check_case)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn generates_and_checks() {
        let text = generate();
        assert_eq!(text, generate());
        assert!(check(&text).unwrap() > 100);
    }

    /// The checker is not a rubber stamp: changing any stated outcome makes it fail.
    #[test]
    fn check_rejects_altered_cases() {
        let good = generate();
        let file: Value = serde_json::from_str(&good).unwrap();
        let n = file["tests"].as_array().unwrap().len();
        for i in 0..n {
            let mut altered = file.clone();
            let case = &mut altered["tests"][i];
            if case["result"] == "valid" {
                case["result"] = json!("invalid");
                case["error"] = json!({"name": "Parse", "requirement": "CMD-3"});
                case["rpcCode"] = json!(-32700);
                case["stage"] = json!("envelope");
                case["reply"] = json!({"id": null});
            } else {
                let code = case["rpcCode"].as_i64().unwrap();
                case["rpcCode"] = json!(code + 1);
            }
            let text = serde_json::to_string(&altered).unwrap();
            assert!(
                check(&text).is_err(),
                "altering tcId {} went unnoticed",
                i + 1
            );

            let mut altered = file.clone();
            let case = &mut altered["tests"][i];
            if case["result"] == "invalid" {
                case["reply"] = if case["reply"].is_null() {
                    json!({"id": 424242})
                } else {
                    Value::Null
                };
                let text = serde_json::to_string(&altered).unwrap();
                assert!(check(&text).is_err(), "altered reply of tcId {}", i + 1);
            }
        }
    }

    #[test]
    fn every_method_has_a_valid_case() {
        let file: Value = serde_json::from_str(&generate()).unwrap();
        let tests = file["tests"].as_array().unwrap();
        let methods: Vec<&str> = tests
            .iter()
            .filter(|t| t["result"] == "valid")
            .filter_map(|t| {
                t["expected"]
                    .get("method")
                    .or_else(|| t["expected"].get("resultOf"))
                    .and_then(Value::as_str)
            })
            .collect();
        for m in [
            ClientRequest::METHODS,
            ClientNotification::METHODS,
            ServerRequest::METHODS,
            ServerNotification::METHODS,
        ]
        .concat()
        {
            assert!(methods.contains(&m), "no valid case for {m}");
        }
        for m in [ClientRequest::METHODS, ServerRequest::METHODS].concat() {
            let has_result = tests.iter().any(|t| t["expected"]["resultOf"] == m);
            assert!(has_result, "no result case for {m}");
        }
    }
}
