//! Every valid command vector of a method the command protocol shares with Codex validates
//! against the pinned Codex app-server schema (`CMD-79`), and the check can fail.

#![allow(clippy::indexing_slicing, clippy::panic)]

use serde_json::{Value, json};
use tether_conformance::codex_schema::{CODEX_VERSION, CodexSchema, Sender, Verdict};

fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/command.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    file["tests"].as_array().cloned().unwrap_or_default()
}

/// Flags of vectors whose message a Tether receiver accepts but no sender writes: the
/// leniencies of `CMD-7` (no `jsonrpc`) and `CMD-13` (no `params`) on the receiving side.
/// Codex's schema describes what a sender writes; these are left out, by flag, here.
const RECEIVER_LENIENCY: &[&str] = &["NoParams"];

#[test]
fn every_valid_shared_vector_validates() {
    let schema = CodexSchema::pinned();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in vectors() {
        if case["result"] != "valid" {
            continue;
        }
        let flags: Vec<&str> = case["flags"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if flags.iter().any(|f| RECEIVER_LENIENCY.contains(f)) {
            continue;
        }
        let bytes = hex::decode(case["msg"].as_str().unwrap_or_default()).unwrap_or_default();
        let Ok(message) = serde_json::from_slice::<Value>(&bytes) else {
            failures.push(format!("tcId {}: not JSON", case["tcId"]));
            continue;
        };
        let sender = match case["direction"].as_str() {
            Some("hostToController") => Sender::Host,
            _ => Sender::Controller,
        };
        let answered = case["expected"]["resultOf"].as_str();
        match schema.check(sender, &message, answered) {
            Verdict::Valid => checked += 1,
            Verdict::NotShared(_) => {}
            Verdict::Invalid(errors) => failures.push(format!(
                "tcId {} ({}): {}",
                case["tcId"],
                case["comment"].as_str().unwrap_or_default(),
                errors.join("; ")
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} valid command vectors do not validate against Codex {CODEX_VERSION}'s schema:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The vectors hold requests, results, notifications and an approval of shared methods:
    // if fewer than this validate, the check has stopped checking them.
    assert!(checked >= 20, "only {checked} vectors were checked");
}

#[test]
fn the_check_refuses_what_codex_refuses() {
    let schema = CodexSchema::pinned();
    // Tether 1's initialize: capabilities as an array where Codex has an object.
    let v1 = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "clientInfo": {"name": "x", "version": "1"}, "capabilities": ["command.exec"]}});
    assert!(matches!(
        schema.check(Sender::Controller, &v1, None),
        Verdict::Invalid(_)
    ));
    // An approval decision Codex does not know.
    let answer = json!({"id": 3, "result": {"decision": "maybe"}});
    assert!(matches!(
        schema.check(
            Sender::Controller,
            &answer,
            Some("item/commandExecution/requestApproval")
        ),
        Verdict::Invalid(_)
    ));
    let accept = json!({"id": 3, "result": {"decision": "accept"}});
    assert_eq!(
        schema.check(
            Sender::Controller,
            &accept,
            Some("item/commandExecution/requestApproval")
        ),
        Verdict::Valid
    );
    // A result of the wrong shape: thread/start without its thread.
    let started = json!({"id": 2, "result": {"cwd": "/"}});
    assert!(matches!(
        schema.check(Sender::Host, &started, Some("thread/start")),
        Verdict::Invalid(_)
    ));
    // Error responses: Codex's error object.
    let error = json!({"id": 2, "error": {"code": -32013, "message": "thread not found"}});
    assert_eq!(
        schema.check(Sender::Host, &error, Some("thread/start")),
        Verdict::Valid
    );
    let bad_error = json!({"id": 2, "error": {"code": "x"}});
    assert!(matches!(
        schema.check(Sender::Host, &bad_error, None),
        Verdict::Invalid(_)
    ));
    // Tether's own methods are not Codex's to judge; nor is a method sent the wrong way.
    let info = json!({"id": 4, "method": "tether/host/info"});
    assert!(matches!(
        schema.check(Sender::Controller, &info, None),
        Verdict::NotShared(_)
    ));
    let wrong_way = json!({"method": "turn/started", "params": {}});
    assert!(matches!(
        schema.check(Sender::Controller, &wrong_way, None),
        Verdict::NotShared(_)
    ));
    assert!(schema.defines(Sender::Host, "item/commandExecution/requestApproval"));
    assert!(!schema.defines(Sender::Controller, "item/commandExecution/requestApproval"));
}
