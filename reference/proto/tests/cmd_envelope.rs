//! Envelope rules of the command protocol (`CMD-1`..`CMD-11`), from literal bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use serde_json::json;
use tether_proto::cmd::{
    ClientRequest, CommandError, ErrorResponse, Id, Message, Notification, Request, Response, codes,
};
use tether_proto::limits::{MAX_JSON_DEPTH, MAX_TRANSPORT_PLAINTEXT_LEN};

fn err(bytes: &[u8]) -> CommandError {
    Message::parse(bytes).unwrap_err()
}

#[test]
fn cmd_9_classifies_the_four_kinds() {
    let m =
        Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).unwrap();
    assert_eq!(m.kind(), "request");
    assert_eq!(m.id(), Some(&Id::Number(1)));
    assert_eq!(m.method(), Some("initialize"));

    let m = Message::parse(br#"{"jsonrpc":"2.0","method":"initialized"}"#).unwrap();
    assert_eq!(
        m,
        Message::Notification(Notification::new("initialized", None))
    );

    let m = Message::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
    assert_eq!(
        m,
        Message::Response(Response {
            id: Id::from("a"),
            result: json!({})
        })
    );

    let m = Message::parse(
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
    )
    .unwrap();
    let Message::Error(e) = m else { panic!() };
    assert_eq!(e.id, None);
    assert_eq!(e.error.code, codes::PARSE_ERROR);
    assert_eq!(e.error.code_name(), Some("PARSE_ERROR"));
}

#[test]
fn cmd_3_hex_bom_and_invalid_utf8() {
    // EF BB BF then {"jsonrpc":"2.0","method":"initialized"}
    let with_bom = hex::decode(
        "efbbbf7b226a736f6e727063223a22322e30222c226d6574686f64223a22696e697469616c697a6564227d",
    )
    .unwrap();
    assert_eq!(err(&with_bom), CommandError::Bom);
    assert!(Message::parse(&with_bom[3..]).is_ok());
    // {"jsonrpc":"2.0","method":"<C3 28>"}: a broken two-byte sequence.
    let bad_utf8 =
        hex::decode("7b226a736f6e727063223a22322e30222c226d6574686f64223a22c328227d").unwrap();
    assert_eq!(err(&bad_utf8), CommandError::InvalidUtf8);
    assert_eq!(err(&bad_utf8).rpc_code(), -32700);
    assert_eq!(err(&bad_utf8).requirement(), "CMD-3");
}

#[test]
fn cmd_3_exactly_one_value() {
    for bad in [
        &br#"{"jsonrpc":"2.0","method":"initialized"} {}"#[..],
        br#"{"jsonrpc":"2.0","method":"initialized"}x"#,
        br#"{"jsonrpc":"2.0","method":"initialized""#,
        b"",
        b"   ",
        br#"{"jsonrpc":"2.0","method":'x'}"#,
    ] {
        let e = err(bad);
        assert!(matches!(e, CommandError::Parse { .. }), "{e:?}");
        assert_eq!(e.rpc_code(), -32700);
    }
    // Whitespace around the value is allowed.
    assert!(Message::parse(b"\n {\"jsonrpc\":\"2.0\",\"method\":\"initialized\"} \r\n").is_ok());
}

#[test]
fn cmd_2_too_large() {
    let pad = " ".repeat(MAX_TRANSPORT_PLAINTEXT_LEN);
    let text = format!(r#"{{"jsonrpc":"2.0","method":"x"}}{pad}"#);
    assert_eq!(
        err(text.as_bytes()),
        CommandError::TooLarge { len: text.len() }
    );
    let text = format!(
        r#"{{"jsonrpc":"2.0","method":"x","params":{{"p":"{}"}}}}"#,
        "a".repeat(MAX_TRANSPORT_PLAINTEXT_LEN - 48)
    );
    assert_eq!(text.len(), MAX_TRANSPORT_PLAINTEXT_LEN);
    assert!(Message::parse(text.as_bytes()).is_ok());
}

fn nested_params(levels: usize) -> String {
    // The message object is level 1 and params level 2.
    let inner = format!("{}{}", "[".repeat(levels - 2), "]".repeat(levels - 2));
    format!(r#"{{"jsonrpc":"2.0","method":"x","params":{{"a":{inner}}}}}"#)
}

#[test]
fn cmd_4_depth_32_ok_33_rejected() {
    let ok = nested_params(MAX_JSON_DEPTH);
    assert!(Message::parse(ok.as_bytes()).is_ok());
    let deep = nested_params(MAX_JSON_DEPTH + 1);
    assert_eq!(err(deep.as_bytes()), CommandError::TooDeep);
    assert_eq!(CommandError::TooDeep.requirement(), "CMD-4");
    assert_eq!(CommandError::TooDeep.rpc_code(), -32700);
}

#[test]
fn cmd_5_duplicate_keys_anywhere() {
    let cases: &[(&[u8], &str)] = &[
        (
            br#"{"jsonrpc":"2.0","jsonrpc":"2.0","method":"x"}"#,
            "jsonrpc",
        ),
        (br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#, "id"),
        (
            br#"{"jsonrpc":"2.0","method":"x","params":{"a":1,"b":{"c":[{"d":1,"d":1}]}}}"#,
            "d",
        ),
        (
            br#"{"jsonrpc":"2.0","method":"x","params":{"threadId":"a","threadId":"b"}}"#,
            "threadId",
        ),
    ];
    for (bytes, key) in cases {
        let e = err(bytes);
        assert_eq!(e, CommandError::DuplicateKey { key: (*key).into() });
        assert_eq!(e.rpc_code(), -32700);
        assert_eq!(e.requirement(), "CMD-5");
    }
}

#[test]
fn cmd_6_batches_and_scalars() {
    assert_eq!(
        err(br#"[{"jsonrpc":"2.0","method":"initialized"}]"#),
        CommandError::Batch
    );
    assert_eq!(err(b"[]"), CommandError::Batch);
    assert_eq!(CommandError::Batch.rpc_code(), -32600);
    for s in [&b"1"[..], b"\"x\"", b"null", b"true"] {
        assert_eq!(err(s), CommandError::NotObject);
    }
}

#[test]
fn cmd_7_version() {
    // Absent is JSON-RPC 2.0, as Codex's app-server sends every message.
    assert!(matches!(
        Message::parse(br#"{"id":1,"method":"initialize"}"#),
        Ok(Message::Request(_))
    ));
    assert!(matches!(
        Message::parse(br#"{"method":"initialized"}"#),
        Ok(Message::Notification(_))
    ));
    assert!(matches!(
        Message::parse(br#"{"id":"a","result":{}}"#),
        Ok(Message::Response(_))
    ));
    assert_eq!(
        err(br#"{"jsonrpc":"1.0","id":1,"method":"initialize"}"#),
        CommandError::BadVersion
    );
    assert_eq!(
        err(br#"{"jsonrpc":2.0,"id":1,"method":"initialize"}"#),
        CommandError::BadVersion
    );
}

#[test]
fn cmd_8_ids() {
    for ok in [
        &br#"{"jsonrpc":"2.0","id":0,"method":"m"}"#[..],
        br#"{"jsonrpc":"2.0","id":9007199254740991,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":-9007199254740991,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":"","method":"m"}"#,
    ] {
        assert_eq!(Message::parse(ok).unwrap().kind(), "request");
    }
    let long = format!(
        r#"{{"jsonrpc":"2.0","id":"{}","method":"m"}}"#,
        "x".repeat(256)
    );
    assert!(Message::parse(long.as_bytes()).is_ok());
    let too_long = format!(
        r#"{{"jsonrpc":"2.0","id":"{}","method":"m"}}"#,
        "x".repeat(257)
    );
    assert_eq!(err(too_long.as_bytes()), CommandError::BadId);
    for bad in [
        &br#"{"jsonrpc":"2.0","id":null,"method":"m"}"#[..],
        br#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":1.0,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":1e3,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":true,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":[1],"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":{},"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":9007199254740992,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
    ] {
        let e = err(bad);
        assert_eq!(e, CommandError::BadId, "{}", String::from_utf8_lossy(bad));
        assert_eq!(e.rpc_code(), -32600);
    }
}

#[test]
fn cmd_9_and_10_shapes() {
    let invalid = |b: &[u8]| matches!(err(b), CommandError::InvalidRequest { .. });
    assert!(invalid(br#"{"jsonrpc":"2.0"}"#));
    assert!(invalid(br#"{"jsonrpc":"2.0","id":1}"#));
    assert!(invalid(br#"{"jsonrpc":"2.0","id":1,"method":5}"#));
    assert!(invalid(
        br#"{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}"#
    ));
    assert!(invalid(
        br#"{"jsonrpc":"2.0","id":1,"method":"m","params":null}"#
    ));
    assert!(invalid(
        br#"{"jsonrpc":"2.0","id":1,"method":"m","result":1}"#
    ));
    assert!(invalid(
        br#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":""}}"#
    ));
    let bad_error = |b: &[u8]| matches!(err(b), CommandError::BadErrorObject { .. });
    assert!(bad_error(br#"{"jsonrpc":"2.0","id":1,"error":"x"}"#));
    assert!(bad_error(
        br#"{"jsonrpc":"2.0","id":1,"error":{"message":"x"}}"#
    ));
    assert!(bad_error(
        br#"{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"x"}}"#
    ));
    assert!(bad_error(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1}}"#));
    // Unknown top-level members are ignored.
    assert!(Message::parse(br#"{"jsonrpc":"2.0","method":"m","x-extra":1}"#).is_ok());
}

#[test]
fn cmd_11_rejection_keeps_the_id() {
    let r = Message::parse_or_reject(br#"{"jsonrpc":"1.0","id":42,"method":"thread/list"}"#)
        .unwrap_err();
    assert_eq!(r.error, CommandError::BadVersion);
    let reply = r.reply().unwrap();
    assert_eq!(reply.id, Some(Id::Number(42)));
    assert_eq!(reply.error.code, -32600);
    assert_eq!(
        reply.error.data,
        Some(json!({"error": "BadVersion", "requirement": "CMD-7"}))
    );
    // The reply goes out as {"jsonrpc":"2.0","id":42,"error":{...}}.
    let out = String::from_utf8(Message::Error(reply).to_bytes()).unwrap();
    assert!(
        out.starts_with(r#"{"jsonrpc":"2.0","id":42,"error":{"code":-32600,"#),
        "{out}"
    );

    // Unreadable id: answered with null.
    let r = Message::parse_or_reject(b"{").unwrap_err();
    let reply = r.reply().unwrap();
    assert_eq!(reply.id, None);
    assert_eq!(reply.error.code, -32700);
    let out = String::from_utf8(Message::Error(reply).to_bytes()).unwrap();
    assert!(out.starts_with(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"#));

    // A malformed response is never answered.
    let r = Message::parse_or_reject(br#"{"jsonrpc":"2.0","id":3,"error":"x"}"#).unwrap_err();
    assert_eq!(r.id, Some(Id::Number(3)));
    assert!(r.reply().is_none());

    // A typed error on a good request: answer its id.
    let m = Message::parse(br#"{"jsonrpc":"2.0","id":"q","method":"thread/frobnicate"}"#).unwrap();
    let Message::Request(req) = m else { panic!() };
    let e = ClientRequest::from_request(&req).unwrap_err();
    assert_eq!(
        e,
        CommandError::MethodNotFound {
            method: "thread/frobnicate".into()
        }
    );
    assert_eq!(e.rpc_code(), -32601);
    let reply = ErrorResponse::new(Some(req.id.clone()), &e);
    assert_eq!(reply.id, Some(Id::from("q")));
}

#[test]
fn to_bytes_puts_jsonrpc_first() {
    let r = Request::new(7, "thread/read", Some(json!({"threadId": "t"})));
    assert_eq!(
        Message::Request(r).to_bytes(),
        br#"{"jsonrpc":"2.0","id":7,"method":"thread/read","params":{"threadId":"t"}}"#
    );
    let n = Notification::new("initialized", None);
    assert_eq!(
        Message::Notification(n).to_bytes(),
        br#"{"jsonrpc":"2.0","method":"initialized"}"#
    );
}

#[test]
fn cmd_13_params() {
    let parse = |b: &[u8]| {
        let Message::Request(r) = Message::parse(b).unwrap() else {
            panic!()
        };
        ClientRequest::from_request(&r)
    };
    // Missing member.
    let e = parse(br#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{}}"#).unwrap_err();
    assert!(
        matches!(&e, CommandError::InvalidParams { method, detail }
            if method == "thread/read" && detail.contains("threadId")),
        "{e:?}"
    );
    assert_eq!(e.rpc_code(), -32602);
    // Wrong type.
    let e = parse(br#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId":1}}"#)
        .unwrap_err();
    assert!(matches!(e, CommandError::InvalidParams { .. }));
    // Array params.
    let e =
        parse(br#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":["t"]}"#).unwrap_err();
    assert!(matches!(e, CommandError::InvalidParams { .. }));
    // Unknown enum value.
    let e =
        parse(br#"{"jsonrpc":"2.0","id":1,"method":"thread/start","params":{"sandbox":"none"}}"#)
            .unwrap_err();
    assert!(matches!(e, CommandError::InvalidParams { .. }));
    // Unknown members are ignored.
    let ok = parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"thread/read","params":{"threadId":"t","future":[1]}}"#,
    )
    .unwrap();
    assert_eq!(ok.method(), "thread/read");
    // Absent params count as {}.
    let ok = parse(br#"{"jsonrpc":"2.0","id":1,"method":"thread/list"}"#).unwrap();
    assert_eq!(ok.method(), "thread/list");
    // Range checks.
    for bad in [
        &br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":[],"cwd":"/","processId":"p"}}"#[..],
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"cwd":"/","processId":""}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"cwd":"/","processId":"p","timeoutMs":0}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"cwd":"/","processId":"p","streamStdoutStderr":true,"outputBytesCap":67108865}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"cwd":"/","outputBytesCap":8193}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"streamStdoutStderr":true}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"tty":true,"processId":"p"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"streamStdin":true,"processId":"p"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"env":{"A":"1"}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"timeoutMs":5,"disableTimeout":true}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"outputBytesCap":5,"disableOutputCap":true,"processId":"p","streamStdoutStderr":true}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"disableOutputCap":true}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"sandboxPolicy":{"type":"externalSandbox"}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"sandboxPolicy":{"type":"workspaceWrite","writableRoots":["/x"]}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"sandboxPolicy":{"type":"readOnly","networkAccess":true}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"command/exec","params":{"command":["ls"],"sandboxPolicy":"read-only"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"thread/list","params":{"limit":0}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"turn/start","params":{"threadId":"t","input":[]}}"#,
    ] {
        let e = parse(bad).unwrap_err();
        assert!(matches!(e, CommandError::InvalidParams { .. }), "{e:?}");
    }
}

/// CMD-34: `command/exec` takes Codex's params, with `null` for every absent optional
/// member; the sandbox policy maps onto a mode.
#[test]
fn cmd_34_command_exec_accepts_codex_params() {
    use tether_proto::cmd::types::SandboxMode;
    let parse = |b: &[u8]| {
        let Message::Request(r) = Message::parse(b).unwrap() else {
            panic!()
        };
        ClientRequest::from_request(&r)
    };
    let ok = parse(br#"{"id":1,"method":"command/exec","params":{"command":["ls"],"cwd":null,"processId":null,"streamStdoutStderr":null,"streamStdin":false,"tty":false,"size":null,"timeoutMs":null,"disableTimeout":false,"outputBytesCap":null,"disableOutputCap":false,"env":{},"sandboxPolicy":null}}"#).unwrap();
    assert_eq!(ok.method(), "command/exec");
    for (policy, mode) in [
        (r#"{"type":"readOnly"}"#, SandboxMode::ReadOnly),
        (
            r#"{"type":"readOnly","networkAccess":false}"#,
            SandboxMode::ReadOnly,
        ),
        (
            r#"{"type":"workspaceWrite","writableRoots":[],"networkAccess":false,"excludeTmpdirEnvVar":false,"excludeSlashTmp":false}"#,
            SandboxMode::WorkspaceWrite,
        ),
        (
            r#"{"type":"dangerFullAccess"}"#,
            SandboxMode::DangerFullAccess,
        ),
    ] {
        let text = format!(
            r#"{{"id":1,"method":"command/exec","params":{{"command":["ls"],"sandboxPolicy":{policy}}}}}"#
        );
        let Ok(ClientRequest::CommandExec(p)) = parse(text.as_bytes()) else {
            panic!("{policy} refused");
        };
        assert_eq!(p.sandbox_mode().unwrap(), Some(mode), "{policy}");
    }
}

#[test]
fn cmd_53_bad_bundle_is_its_own_code() {
    let Message::Request(r) = Message::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tether/thread/import","params":{"bundle":{"version":1,"cwdRelative":"../etc","sandbox":"read-only","approvalPolicy":"never","items":[],"exportedAt":0}}}"#,
    )
    .unwrap() else {
        panic!()
    };
    let e = ClientRequest::from_request(&r).unwrap_err();
    assert!(matches!(e, CommandError::InvalidBundle { .. }));
    assert_eq!(e.rpc_code(), -32017);
    assert_eq!(e.requirement(), "CMD-53");
}

#[test]
fn every_error_has_distinct_name_and_a_cmd_requirement() {
    let all = [
        CommandError::TooLarge { len: 0 },
        CommandError::Bom,
        CommandError::InvalidUtf8,
        CommandError::Parse {
            detail: String::new(),
        },
        CommandError::TooDeep,
        CommandError::DuplicateKey { key: String::new() },
        CommandError::Batch,
        CommandError::NotObject,
        CommandError::BadVersion,
        CommandError::BadId,
        CommandError::InvalidRequest {
            detail: String::new(),
        },
        CommandError::BadErrorObject {
            detail: String::new(),
        },
        CommandError::MethodNotFound {
            method: String::new(),
        },
        CommandError::InvalidParams {
            method: String::new(),
            detail: String::new(),
        },
        CommandError::BadResult {
            method: String::new(),
            detail: String::new(),
        },
        CommandError::NotInitialized,
        CommandError::AlreadyInitialized,
        CommandError::UnsupportedProtocolVersion {
            version: String::new(),
        },
        CommandError::ThreadNotFound {
            thread_id: String::new(),
        },
        CommandError::TurnAlreadyActive {
            thread_id: String::new(),
        },
        CommandError::TurnNotFound {
            turn_id: String::new(),
        },
        CommandError::ApprovalAlreadyResolved,
        CommandError::ProcessNotFound {
            process_id: String::new(),
        },
        CommandError::SandboxDenied {
            mode: String::new(),
        },
        CommandError::InvalidBundle {
            detail: String::new(),
        },
        CommandError::RemoteAccessDisabled,
        CommandError::NotAuthorized,
        CommandError::Cancelled,
        CommandError::Overloaded,
        CommandError::Internal {
            detail: String::new(),
        },
    ];
    let mut names = std::collections::BTreeSet::new();
    for e in &all {
        assert!(names.insert(e.name()), "duplicate name {}", e.name());
        assert!(e.requirement().starts_with("CMD-"));
        assert!(codes::name(e.rpc_code()).is_some(), "{e:?}");
        assert!(!e.to_string().is_empty());
    }
    // Every registered code is produced by some error.
    for code in codes::ALL {
        assert!(all.iter().any(|e| e.rpc_code() == *code), "{code}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Message::parse_or_reject(&bytes);
    }

    #[test]
    fn never_panics_on_json_like_text(text in r#"[\{\}\[\]":,0-9a-z\\. -]{0,128}"#) {
        if let Ok(Message::Request(r)) = Message::parse(text.as_bytes()) {
            let _ = ClientRequest::from_request(&r);
        }
    }

    #[test]
    fn cmd_5_duplicate_at_any_depth(depth in 0usize..=15, key in "[a-z]{1,8}") {
        let mut inner = format!(r#"{{"{key}":1,"{key}":2}}"#);
        for _ in 0..depth {
            inner = format!(r#"{{"w":[{inner}]}}"#);
        }
        // 1 (message) + 1 (params) + 2 per wrapping: at most 32 levels.
        prop_assert!(2 + 2 * depth <= MAX_JSON_DEPTH);
        let text = format!(r#"{{"jsonrpc":"2.0","method":"m","params":{inner}}}"#);
        prop_assert_eq!(
            Message::parse(text.as_bytes()),
            Err(CommandError::DuplicateKey { key })
        );
    }

    #[test]
    fn parsed_messages_reserialize_to_the_same_message(id in -1000i64..1000, s in "\\PC{0,20}") {
        let m = Message::Request(Request::new(id, s.clone(), Some(json!({"s": s}))));
        prop_assert_eq!(Message::parse(&m.to_bytes()).unwrap(), m);
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9+/=:. -]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    "[a-z]{1,6}".boxed(),
                    proptest::sample::select(vec![
                        "threadId",
                        "turnId",
                        "itemId",
                        "processId",
                        "command",
                        "cwd",
                        "sandbox",
                        "input",
                        "type",
                        "text",
                        "bundle",
                        "version",
                        "cwdRelative",
                        "items",
                        "decision",
                        "requestId",
                        "deltaBase64",
                        "stream",
                        "capReached",
                        "turn",
                        "item",
                        "limit",
                        "timeoutMs",
                        "outputBytesCap",
                        "streamStdoutStderr",
                        "sandboxPolicy",
                        "clientInfo",
                        "protocolVersion",
                        "tether",
                    ])
                    .prop_map(str::to_owned)
                    .boxed(),
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Typed decoders never panic, whatever structured params they get (`CMD-13`).
    #[test]
    fn typed_decoders_never_panic(params in arb_json(), pick in 0usize..64) {
        use tether_proto::cmd::{ClientNotification, ServerNotification, ServerRequest};
        use tether_proto::cmd::methods::check_result;
        let methods = [
            ClientRequest::METHODS,
            ClientNotification::METHODS,
            ServerRequest::METHODS,
            ServerNotification::METHODS,
        ]
        .concat();
        let method = methods[pick % methods.len()];
        let _ = ClientRequest::from_parts(method, Some(&params));
        let _ = ClientNotification::from_parts(method, Some(&params));
        let _ = ServerRequest::from_parts(method, Some(&params));
        let _ = ServerNotification::from_parts(method, Some(&params));
        let _ = check_result(method, &params);
    }
}
