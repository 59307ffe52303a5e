//! Every typed message survives `to_bytes` -> `Message::parse` -> typed decode unchanged
//! (`CMD-1`..`CMD-13`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tether_proto::cmd::methods::*;
use tether_proto::cmd::types::*;
use tether_proto::cmd::{
    ClientNotification, ClientRequest, Id, MAX_SAFE_INTEGER, Message, RequestParams, Response,
    ServerNotification, ServerRequest,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9 /._$-]{0,16}", "\\PC{0,8}"]
}

fn time() -> impl Strategy<Value = u64> {
    0..=MAX_SAFE_INTEGER.unsigned_abs()
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Id::Number),
        "\\PC{0,16}"
            .prop_filter("<= 64 bytes", |s| s.len() <= 64)
            .prop_map(Id::String),
    ]
}

fn sandbox() -> impl Strategy<Value = SandboxMode> {
    prop_oneof![
        Just(SandboxMode::ReadOnly),
        Just(SandboxMode::WorkspaceWrite),
        Just(SandboxMode::DangerFullAccess)
    ]
}

fn policy() -> impl Strategy<Value = ApprovalPolicy> {
    prop_oneof![
        Just(ApprovalPolicy::Untrusted),
        Just(ApprovalPolicy::OnRequest),
        Just(ApprovalPolicy::Never)
    ]
}

fn decision() -> impl Strategy<Value = ApprovalDecision> {
    prop_oneof![
        Just(ApprovalDecision::Accept),
        Just(ApprovalDecision::AcceptForSession),
        Just(ApprovalDecision::Decline),
        Just(ApprovalDecision::Cancel),
        vec(text(), 0..3).prop_map(|execpolicy_amendment| {
            ApprovalDecision::AcceptWithExecpolicyAmendment {
                execpolicy_amendment,
            }
        }),
        (text(), text()).prop_map(|(host, action)| {
            ApprovalDecision::ApplyNetworkPolicyAmendment {
                network_policy_amendment: NetworkPolicyAmendment { host, action },
            }
        }),
    ]
}

fn at_ms() -> impl Strategy<Value = Option<u64>> {
    option::of(time())
}

fn stream() -> impl Strategy<Value = OutputStream> {
    prop_oneof![Just(OutputStream::Stdout), Just(OutputStream::Stderr)]
}

fn report() -> impl Strategy<Value = SandboxReport> {
    (
        sandbox(),
        sandbox(),
        prop_oneof![
            Just(NetworkAccess::Denied),
            Just(NetworkAccess::Allowed),
            Just(NetworkAccess::Unenforced)
        ],
        any::<bool>(),
        text(),
    )
        .prop_map(
            |(requested, enforced, network, degraded, mechanism)| SandboxReport {
                requested,
                enforced,
                network,
                degraded,
                mechanism,
            },
        )
}

fn thread() -> impl Strategy<Value = Thread> {
    (
        text(),
        text(),
        sandbox(),
        policy(),
        time(),
        time(),
        prop_oneof![
            Just(ThreadStatus::Idle),
            any::<bool>().prop_map(ThreadStatus::active),
            Just(ThreadStatus::NotLoaded),
            Just(ThreadStatus::SystemError)
        ],
        text(),
        vec(turn(), 0..2),
    )
        .prop_map(
            |(
                id,
                cwd,
                sandbox,
                approval_policy,
                created_at,
                updated_at,
                status,
                preview,
                turns,
            )| {
                Thread {
                    session_id: id.clone(),
                    id,
                    cwd,
                    created_at,
                    updated_at,
                    status,
                    preview,
                    turns,
                    ephemeral: false,
                    cli_version: "0.1.0".to_owned(),
                    model_provider: "tether-test".to_owned(),
                    source: "appServer".into(),
                    project_id: None,
                    tether: Some(ThreadTether {
                        sandbox,
                        approval_policy,
                    }),
                }
            },
        )
}

fn item() -> impl Strategy<Value = ThreadItem> {
    prop_oneof![
        (text(), vec(text(), 1..3), at_ms(), at_ms()).prop_map(
            |(id, texts, started_at_ms, completed_at_ms)| {
                ThreadItem::UserMessage(UserMessageItem {
                    id,
                    content: texts.into_iter().map(UserInput::text).collect(),
                    started_at_ms,
                    completed_at_ms,
                })
            }
        ),
        (text(), text(), at_ms(), at_ms()).prop_map(
            |(id, text, started_at_ms, completed_at_ms)| {
                ThreadItem::AgentMessage(AgentMessageItem {
                    id,
                    text,
                    started_at_ms,
                    completed_at_ms,
                })
            }
        ),
        (text(), text()).prop_map(|(id, summary)| {
            // A Codex item type this crate does not model (section 5.4).
            let raw = serde_json::json!({"type": "reasoning", "id": id, "summary": [summary]});
            ThreadItem::Other(OtherItem {
                kind: "reasoning".to_owned(),
                id,
                raw,
            })
        }),
        (
            text(),
            text(),
            text(),
            prop_oneof![
                Just(CommandExecutionStatus::InProgress),
                Just(CommandExecutionStatus::Completed),
                Just(CommandExecutionStatus::Failed),
                Just(CommandExecutionStatus::Declined)
            ],
            option::of(any::<i32>()),
            option::of(text()),
            option::of(time()),
            (at_ms(), at_ms()),
        )
            .prop_map(
                |(
                    id,
                    command,
                    cwd,
                    status,
                    exit_code,
                    aggregated_output,
                    duration_ms,
                    (started_at_ms, completed_at_ms),
                )| {
                    ThreadItem::CommandExecution(CommandExecutionItem {
                        command_actions: CommandAction::unknown(&command),
                        id,
                        command,
                        cwd,
                        status,
                        exit_code,
                        aggregated_output,
                        duration_ms,
                        started_at_ms,
                        completed_at_ms,
                    })
                }
            ),
    ]
}

fn turn() -> impl Strategy<Value = Turn> {
    (
        text(),
        prop_oneof![
            Just(TurnStatus::InProgress),
            Just(TurnStatus::Completed),
            Just(TurnStatus::Interrupted),
            Just(TurnStatus::Failed)
        ],
        vec(item(), 0..4),
        at_ms(),
        at_ms(),
    )
        .prop_map(|(id, status, items, started_at, completed_at)| Turn {
            id,
            status,
            items,
            items_view: Some(TurnItemsView::Full),
            started_at,
            completed_at,
            duration_ms: completed_at.map(|_| 1),
        })
}

fn cwd_relative() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(".".to_owned()),
        vec("[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,6}", 1..4).prop_map(|v| v.join("/")),
    ]
}

fn bundle() -> impl Strategy<Value = ThreadBundle> {
    (
        option::of(text()),
        cwd_relative(),
        sandbox(),
        policy(),
        vec(item(), 0..4),
        time(),
    )
        .prop_map(
            |(goal, cwd_relative, sandbox, approval_policy, items, exported_at)| ThreadBundle {
                version: 1,
                goal,
                cwd_relative,
                sandbox,
                approval_policy,
                items,
                exported_at,
            },
        )
}

fn implementation() -> impl Strategy<Value = Implementation> {
    (text(), text()).prop_map(|(name, version)| Implementation { name, version })
}

fn delta() -> impl Strategy<Value = String> {
    vec(any::<u8>(), 0..64).prop_map(|b| encode_delta(&b))
}

fn client_request() -> impl Strategy<Value = ClientRequest> {
    prop_oneof![
        (
            implementation(),
            option::of(text()),
            option::of((text(), option::of(vec(text(), 0..3))))
        )
            .prop_map(|(info, title, tether)| InitializeParams {
                client_info: ClientInfo {
                    name: info.name,
                    title,
                    version: info.version,
                },
                capabilities: None,
                tether: tether.map(|(protocol_version, capabilities)| TetherInitializeParams {
                    protocol_version,
                    capabilities,
                }),
            }
            .into()),
        (
            option::of(text()),
            option::of(sandbox()),
            option::of(policy())
        )
            .prop_map(|(cwd, sandbox, approval_policy)| ThreadStartParams {
                cwd,
                sandbox,
                approval_policy,
                approvals_reviewer: Some("user".to_owned()),
                ephemeral: Some(false),
            }
            .into()),
        (text(), option::of(any::<bool>())).prop_map(|(thread_id, exclude_turns)| {
            let mut p = ThreadResumeParams::new(thread_id);
            p.exclude_turns = exclude_turns;
            p.into()
        }),
        (option::of(text()), option::of(1u32..=1000)).prop_map(|(cursor, limit)| {
            ThreadListParams {
                cursor,
                limit,
                ..ThreadListParams::default()
            }
            .into()
        }),
        (text(), option::of(any::<bool>())).prop_map(|(thread_id, include_turns)| {
            ThreadReadParams {
                thread_id,
                include_turns,
            }
            .into()
        }),
        (text(), vec(text().prop_map(UserInput::text), 1..3))
            .prop_map(|(thread_id, input)| TurnStartParams::new(thread_id, input).into()),
        (text(), text()).prop_map(|(thread_id, turn_id)| TurnInterruptParams {
            thread_id,
            turn_id
        }
        .into()),
        (
            vec(text(), 1..4),
            option::of(text()),
            option::of(sandbox()),
            option::of(1u64..=MAX_EXEC_TIMEOUT_MS),
            prop_oneof![
                Just((None, false)),
                Just((None, true)),
                (0u64..=MAX_OUTPUT_CAP).prop_map(|c| (Some(c), false)),
            ],
            "[a-z0-9-]{1,64}",
        )
            .prop_map(
                |(
                    command,
                    cwd,
                    sandbox,
                    timeout_ms,
                    (output_bytes_cap, disable_output_cap),
                    process_id,
                )| CommandExecParams {
                    command,
                    cwd,
                    sandbox_policy: sandbox.map(SandboxPolicy::for_mode),
                    timeout_ms,
                    output_bytes_cap,
                    disable_output_cap,
                    stream_stdout_stderr: true,
                    process_id: Some(process_id),
                    ..CommandExecParams::default()
                }
                .into()
            ),
        (
            vec(text(), 1..4),
            option::of("[a-z0-9-]{1,64}"),
            0u64..=tether_proto::limits::MAX_BUFFERED_OUTPUT,
            any::<bool>(),
        )
            .prop_map(
                |(command, process_id, cap, disable_timeout)| CommandExecParams {
                    command,
                    process_id,
                    output_bytes_cap: Some(cap),
                    disable_timeout,
                    ..CommandExecParams::default()
                }
                .into()
            ),
        text().prop_map(|process_id| CommandExecTerminateParams { process_id }.into()),
        text().prop_map(|thread_id| ThreadExportParams { thread_id }.into()),
        (bundle(), option::of(text())).prop_map(|(bundle, project_root)| ThreadImportParams {
            bundle,
            project_root
        }
        .into()),
    ]
}

fn cancelled() -> impl Strategy<Value = CancelledParams> {
    (id(), option::of(text()))
        .prop_map(|(request_id, reason)| CancelledParams { request_id, reason })
}

fn client_notification() -> impl Strategy<Value = ClientNotification> {
    prop_oneof![
        Just(ClientNotification::Initialized(InitializedParams {})),
        cancelled().prop_map(ClientNotification::Cancelled),
    ]
}

fn server_notification() -> impl Strategy<Value = ServerNotification> {
    prop_oneof![
        (text(), turn()).prop_map(|(thread_id, turn)| TurnStartedParams { thread_id, turn }.into()),
        (text(), turn())
            .prop_map(|(thread_id, turn)| TurnCompletedParams { thread_id, turn }.into()),
        (text(), text(), item(), time()).prop_map(|(thread_id, turn_id, item, started_at_ms)| {
            ItemStartedParams {
                thread_id,
                turn_id,
                item,
                started_at_ms,
            }
            .into()
        }),
        (text(), text(), item(), time()).prop_map(|(thread_id, turn_id, item, completed_at_ms)| {
            ItemCompletedParams {
                thread_id,
                turn_id,
                item,
                completed_at_ms,
            }
            .into()
        }),
        (text(), text(), text(), text()).prop_map(|(thread_id, turn_id, item_id, delta)| {
            CommandExecutionOutputDeltaParams {
                thread_id,
                turn_id,
                item_id,
                delta,
            }
            .into()
        }),
        (text(), stream(), delta(), any::<bool>()).prop_map(
            |(process_id, stream, delta_base64, cap_reached)| CommandExecOutputDeltaParams {
                process_id,
                stream,
                delta_base64,
                cap_reached
            }
            .into()
        ),
        (
            text(),
            id(),
            decision(),
            option::of(text()),
            option::of(text().prop_map(|message| RejectedAnswer {
                code: -32015,
                message
            }))
        )
            .prop_map(
                |(thread_id, request_id, decision, resolved_by, rejected_answer)| {
                    ServerRequestResolvedParams {
                        thread_id,
                        request_id,
                        tether: Some(ResolvedTether {
                            decision,
                            resolved_by,
                            rejected_answer,
                        }),
                    }
                    .into()
                }
            ),
        cancelled().prop_map(ServerNotification::Cancelled),
    ]
}

fn server_request() -> impl Strategy<Value = ServerRequest> {
    (
        text(),
        text(),
        text(),
        text(),
        text(),
        sandbox(),
        option::of(text()),
        time(),
    )
        .prop_map(
            |(thread_id, turn_id, item_id, command, cwd, sandbox, reason, started_at_ms)| {
                CommandExecutionRequestApprovalParams {
                    thread_id,
                    turn_id,
                    item_id,
                    started_at_ms,
                    command_actions: CommandAction::unknown(&command),
                    command,
                    cwd,
                    reason,
                    available_decisions: Some(ApprovalDecision::STANDARD.to_vec()),
                    tether: Some(ApprovalTether { sandbox }),
                }
                .into()
            },
        )
}

fn reparse(m: Message) -> Message {
    let bytes = m.to_bytes();
    let back = Message::parse(&bytes).unwrap();
    assert_eq!(back, m);
    back
}

fn result_roundtrip<P: RequestParams>(id: Id, result: &P::Result)
where
    P::Result: PartialEq + std::fmt::Debug,
{
    let m = reparse(Message::Response(Response::new(id, result).unwrap()));
    let Message::Response(r) = m else { panic!() };
    assert_eq!(&P::decode_result(&r.result).unwrap(), result);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn client_requests_round_trip(req in client_request(), id in id()) {
        let m = reparse(Message::Request(req.clone().into_request(id.clone())));
        let Message::Request(r) = m else { panic!() };
        prop_assert_eq!(&r.id, &id);
        prop_assert_eq!(ClientRequest::from_request(&r).unwrap(), req);
    }

    #[test]
    fn server_requests_round_trip(req in server_request(), id in id()) {
        let m = reparse(Message::Request(req.clone().into_request(id)));
        let Message::Request(r) = m else { panic!() };
        prop_assert_eq!(ServerRequest::from_request(&r).unwrap(), req);
    }

    #[test]
    fn client_notifications_round_trip(n in client_notification()) {
        let Message::Notification(back) = reparse(Message::Notification(n.to_notification()))
        else { panic!() };
        prop_assert_eq!(ClientNotification::from_notification(&back).unwrap(), n);
    }

    #[test]
    fn server_notifications_round_trip(n in server_notification()) {
        let Message::Notification(back) = reparse(Message::Notification(n.to_notification()))
        else { panic!() };
        prop_assert_eq!(ServerNotification::from_notification(&back).unwrap(), n);
    }

    #[test]
    fn results_round_trip(
        id in id(),
        server_info in implementation(),
        thread in thread(),
        threads in vec(thread(), 0..3),
        turns in vec(turn(), 0..3),
        turn in turn(),
        report in report(),
        bundle in bundle(),
        sources in vec(text(), 0..3),
        cursor in option::of(text()),
        exit in (option::of(any::<i32>()), option::of(text()), any::<bool>(), any::<bool>()),
        decision in decision(),
        modes in vec(sandbox(), 0..3),
    ) {
        result_roundtrip::<InitializeParams>(id.clone(), &InitializeResult {
            user_agent: "tether-host/0.1.0 (linux; x86_64)".into(),
            codex_home: "/var/lib/tether".into(),
            platform_family: "unix".into(),
            platform_os: "linux".into(),
            tether: TetherInitializeResult {
                server_info,
                protocol_version: "tether/2".into(),
                capabilities: sources.clone(),
                sandbox: SandboxSupport { modes, mechanism: "landlock".into(), degrade: exit.2 },
                platform: Platform {
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    path_style: PathStyle::Posix,
                },
            },
        });
        let opened = ThreadOpened {
            approval_policy: ApprovalPolicy::Never,
            approvals_reviewer: "user".into(),
            cwd: thread.cwd.clone(),
            model: "tether-test".into(),
            model_provider: "tether-test".into(),
            sandbox: SandboxPolicy::from_mode(report.enforced, sources.clone()),
            thread: thread.clone(),
            instruction_sources: sources,
            tether: Some(ThreadOpenedTether { sandbox: report.clone() }),
        };
        result_roundtrip::<ThreadStartParams>(id.clone(), &opened);
        result_roundtrip::<ThreadResumeParams>(id.clone(), &opened);
        result_roundtrip::<ThreadImportParams>(id.clone(), &opened);
        result_roundtrip::<ThreadListParams>(id.clone(), &ThreadListResult {
            data: threads,
            next_cursor: cursor.clone(),
        });
        let mut with_turns = thread;
        with_turns.turns = turns;
        result_roundtrip::<ThreadReadParams>(id.clone(), &ThreadReadResult {
            thread: with_turns,
        });
        result_roundtrip::<TurnStartParams>(id.clone(), &TurnStartResult { turn });
        result_roundtrip::<TurnInterruptParams>(id.clone(), &EmptyResult {});
        result_roundtrip::<CommandExecTerminateParams>(id.clone(), &EmptyResult {});
        result_roundtrip::<CommandExecParams>(id.clone(), &CommandExecResult {
            exit_code: exit.0.unwrap_or(137),
            stdout: cursor.clone().unwrap_or_default(),
            stderr: String::new(),
            tether: CommandExecReport {
                exit_code: exit.0,
                signal: exit.1,
                timed_out: exit.2,
                cap_reached: exit.3,
                sandbox: report,
            },
        });
        result_roundtrip::<ThreadExportParams>(id.clone(), &ThreadExportResult { bundle });
        result_roundtrip::<CommandExecutionRequestApprovalParams>(id, &ApprovalResult {
            decision,
        });
    }
}

#[test]
fn cmd_39_exit_code_and_signal_are_required_even_when_null() {
    let ok = serde_json::json!({"exitCode": 124, "stdout": "", "stderr": "", "tether": {
        "exitCode": null, "signal": "SIGKILL", "timedOut": true, "capReached": false,
        "sandbox": {"requested": "read-only", "enforced": "read-only", "network": "denied",
                    "degraded": false, "mechanism": "landlock"}
    }});
    let r = CommandExecParams::decode_result(&ok).unwrap();
    assert_eq!(r.exit_code, 124);
    assert_eq!(r.tether.exit_code, None);
    assert_eq!(r.tether.signal.as_deref(), Some("SIGKILL"));
    let mut missing = ok.clone();
    missing["tether"]
        .as_object_mut()
        .unwrap()
        .remove("exitCode");
    assert!(CommandExecParams::decode_result(&missing).is_err());
    // Codex's own result (no tether member) is not a Tether host's.
    let codex = serde_json::json!({"exitCode": 137, "stdout": "", "stderr": ""});
    assert!(CommandExecParams::decode_result(&codex).is_err());
    let mut null_exit = ok.clone();
    null_exit["exitCode"] = serde_json::Value::Null;
    assert!(CommandExecParams::decode_result(&null_exit).is_err());
    assert!(check_result("command/exec", &ok).is_ok());
    assert!(check_result("command/exec", &missing).is_err());
    assert!(check_result("no/such", &ok).is_err());
}

#[test]
fn cmd_40_delta_chunk_limit() {
    let n = |len: usize| {
        serde_json::json!({
            "processId": "p", "stream": "stdout",
            "deltaBase64": encode_delta(&vec![0u8; len]), "capReached": false
        })
    };
    assert!(CommandExecOutputDeltaParams::from_params(Some(&n(16 * 1024))).is_ok());
    assert!(CommandExecOutputDeltaParams::from_params(Some(&n(16 * 1024 + 1))).is_err());
    let bad = serde_json::json!({
        "processId": "p", "stream": "stdout", "deltaBase64": "not base64!", "capReached": false
    });
    assert!(CommandExecOutputDeltaParams::from_params(Some(&bad)).is_err());
}

#[test]
fn method_sets_cover_every_method_once() {
    let all: Vec<&str> = [
        ClientRequest::METHODS,
        ClientNotification::METHODS,
        ServerRequest::METHODS,
        ServerNotification::METHODS,
    ]
    .concat();
    assert_eq!(all.len(), 12 + 2 + 1 + 8);
    for m in [
        "initialize",
        "thread/start",
        "thread/resume",
        "thread/list",
        "thread/read",
        "turn/start",
        "turn/interrupt",
        "command/exec",
        "command/exec/terminate",
        "tether/thread/export",
        "tether/thread/import",
        "tether/host/info",
    ] {
        assert!(ClientRequest::METHODS.contains(&m), "{m}");
    }
}

/// Section 5.4, CMD-78: an item of a type the receiver does not know is kept, not refused; a
/// known type with a bad shape is still refused (CMD-13).
#[test]
fn unknown_item_types_are_kept() {
    let n = serde_json::json!({
        "threadId": "t", "turnId": "u", "startedAtMs": 1,
        "item": {"type": "fileChange", "id": "item_9", "changes": [], "status": "completed"}
    });
    let p: ItemStartedParams = serde_json::from_value(n.clone()).unwrap();
    let ThreadItem::Other(o) = &p.item else {
        panic!("{p:?}")
    };
    assert_eq!((o.kind.as_str(), o.id.as_str()), ("fileChange", "item_9"));
    assert_eq!(serde_json::to_value(&p).unwrap(), n);
    let bad = serde_json::json!({"threadId": "t", "turnId": "u", "startedAtMs": 1,
        "item": {"type": "userMessage", "id": "i", "text": "v1 shape"}});
    assert!(serde_json::from_value::<ItemStartedParams>(bad).is_err());
}

/// Section 5.5: Codex's object decisions decode; the reference host does not offer them.
#[test]
fn object_decisions_decode() {
    let r: ApprovalResult = serde_json::from_value(serde_json::json!(
        {"decision": {"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["ls"]}}}
    ))
    .unwrap();
    assert_eq!(
        r.decision,
        ApprovalDecision::AcceptWithExecpolicyAmendment {
            execpolicy_amendment: vec!["ls".into()]
        }
    );
    let r: ApprovalResult = serde_json::from_value(serde_json::json!(
        {"decision": {"applyNetworkPolicyAmendment":
            {"network_policy_amendment": {"host": "example.org", "action": "allow"}}}}
    ))
    .unwrap();
    assert_eq!(r.decision.as_str(), "applyNetworkPolicyAmendment");
    assert!(
        serde_json::from_value::<ApprovalResult>(serde_json::json!({"decision": "bogus"})).is_err()
    );
}

/// Section 5.3: overrides of thread/resume and turn/start given non-null are refused,
/// `null` ones and unknown members accepted; `ephemeral: true`, a reviewer other than
/// `user` and another sort order are refused.
#[test]
fn codex_params_tether_does_not_apply() {
    let ok = |m: &str, p: serde_json::Value| ClientRequest::from_parts(m, Some(&p)).is_ok();
    assert!(ok(
        "thread/resume",
        serde_json::json!({"threadId": "t", "model": null, "x": 1})
    ));
    assert!(!ok(
        "thread/resume",
        serde_json::json!({"threadId": "t", "sandbox": "read-only"})
    ));
    assert!(ok(
        "turn/start",
        serde_json::json!({"threadId": "t",
        "input": [{"type": "text", "text": "a", "text_elements": []}], "effort": null,
        "clientUserMessageId": "m"})
    ));
    assert!(!ok(
        "turn/start",
        serde_json::json!({"threadId": "t",
        "input": [{"type": "text", "text": "a"}], "model": "gpt"})
    ));
    assert!(ok(
        "thread/start",
        serde_json::json!({"model": "gpt", "ephemeral": false,
        "approvalsReviewer": "user", "cwd": null})
    ));
    assert!(!ok("thread/start", serde_json::json!({"ephemeral": true})));
    assert!(!ok(
        "thread/start",
        serde_json::json!({"approvalsReviewer": "auto_review"})
    ));
    assert!(!ok(
        "thread/start",
        serde_json::json!({"approvalPolicy": "on-failure"})
    ));
    assert!(!ok(
        "thread/start",
        serde_json::json!({"approvalPolicy": {"granular": {}}})
    ));
    assert!(ok(
        "thread/list",
        serde_json::json!({"sortKey": "updated_at", "sortDirection": "desc"})
    ));
    assert!(!ok(
        "thread/list",
        serde_json::json!({"sortKey": "created_at"})
    ));
    assert!(!ok(
        "thread/list",
        serde_json::json!({"sortDirection": "asc"})
    ));
    // An image input: refused in turn/start, kept in a userMessage item.
    assert!(!ok(
        "turn/start",
        serde_json::json!({"threadId": "t",
        "input": [{"type": "image", "url": "u"}]})
    ));
    let item: ThreadItem = serde_json::from_value(serde_json::json!({"type": "userMessage",
        "id": "i", "content": [{"type": "text", "text": "see"}, {"type": "image", "url": "u"}]}))
    .unwrap();
    let ThreadItem::UserMessage(m) = item else {
        panic!()
    };
    assert_eq!((m.content[1].kind(), m.text().as_str()), ("image", "see"));
}
