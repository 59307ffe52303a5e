//! `tether conformance` end to end: the reference relay passes every case; the exit status
//! follows the verdict (0 / 1 / 2); the list, JSON and JUnit outputs are what the README
//! documents.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::time::Duration;

mod support;

use support::Output;

/// `tether ARGS...`, run to completion (bounded: 240 s).
fn tether(args: &[&str]) -> Output {
    let mut c = support::tether();
    c.args(args);
    support::run(c, Duration::from_secs(240))
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

/// The cases of a JSON report that did not pass, each with its detail and the tail of its
/// log: what a CI log must show when the suite fails (the full table is too long to survive
/// truncation).
fn failures(report: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in report["cases"].as_array().into_iter().flatten() {
        if c["status"] != "fail" {
            continue;
        }
        out.push_str(&format!(
            "{} {}: {}\n",
            c["id"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("")
        ));
        if let Some(log) = c["log"]
            .as_str()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines.len().saturating_sub(40);
            out.push_str(&lines[tail..].join("\n"));
            out.push('\n');
        }
    }
    out
}

#[test]
fn list_json_is_the_catalogue() {
    let o = tether(&["conformance", "--list", "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["schema"], "tether-conformance-cases");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 60);
    for c in cases {
        let id = c["id"].as_str().unwrap();
        let req = c["requirement"].as_str().unwrap();
        assert!(id.starts_with(&format!("{req}/")), "{id}");
        assert!(["MUST", "SHOULD", "MAY"].contains(&c["level"].as_str().unwrap()));
    }
    let text = tether(&["conformance", "--list", "--only", "LINK-5/*"]);
    let out = text.stdout;
    assert!(out.contains("LINK-5/oversize-frame"));
    assert!(!out.contains("LINK-6/"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp.toml");
    std::fs::write(&exp, "[disabled]\n\"LINK-25/ping-pong\" = \"\"\n").unwrap();
    let o = tether(&[
        "conformance",
        "--only",
        "LINK-25/ping-pong",
        "--expectations",
        exp.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(o.stderr.contains("no reason"));

    let o = tether(&["conformance", "--only", "NO-SUCH/*"]);
    assert_eq!(code(&o), 2);

    let o = tether(&[
        "conformance",
        "relay",
        "ws://127.0.0.1:9/",
        "--workspace",
        "acme=short",
    ]);
    assert_eq!(code(&o), 2);

    // Every selected case disabled: no case ran.
    std::fs::write(
        &exp,
        "[disabled]\n\"LINK-25/ping-pong\" = \"checked elsewhere\"\n",
    )
    .unwrap();
    let o = tether(&[
        "conformance",
        "--only",
        "LINK-25/ping-pong",
        "--expectations",
        exp.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", o.stderr);
}

#[test]
fn an_unreachable_relay_fails_with_logs() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let logs = dir.path().join("logs");
    let url = format!("ws://127.0.0.1:{port}/");
    let o = tether(&[
        "conformance",
        "relay",
        &url,
        "--workspace",
        "acme=0123456789abcdef0123",
        "--only",
        "LINK-25/ping-pong,LINK-4/*",
        "--json",
        json.to_str().unwrap(),
        "--log-dir",
        logs.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exitCode"], 1);
    let c = &v["cases"][0];
    assert_eq!(c["status"], "fail");
    let log = c["log"].as_str().unwrap();
    assert!(Path::new(log).starts_with(&logs));
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("result: FAIL")
    );
}

#[test]
fn the_reference_relay_passes_every_case() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let junit = dir.path().join("r.xml");
    let o = tether(&[
        "conformance",
        "--jobs",
        "8",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let stdout = &o.stdout;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(code(&o), 0, "{}", failures(&v));
    assert!(stdout.contains("verdict: PASS"));
    assert_eq!(v["verdict"], "pass");
    let total = v["counts"]["total"].as_u64().unwrap();
    assert_eq!(v["counts"]["pass"].as_u64().unwrap(), total);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(xml.contains(&format!("tests=\"{total}\" failures=\"0\"")));
    assert_eq!(xml.matches("<testcase ").count() as u64, total);
}

#[test]
fn a_host_started_with_templates_passes_its_cases() {
    // The path a third-party host takes: the runner starts it from a command template,
    // serves the reference relay for it, and mints, revokes through more templates.
    let exe = env!("CARGO_BIN_EXE_tether");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let host_cmd = format!(
        "exec '{exe}' host run --state {{state}} --relay {{relay}} --workspace {{workspace}} --credential-file {{credential_file}} --name templated"
    );
    let pair_cmd = format!("'{exe}' host pair --state {{state}} --ttl {{ttl}}");
    let revoke_cmd = format!("'{exe}' host revoke --state {{state}} {{device}}");
    let o = tether(&[
        "conformance",
        "host",
        "--host-cmd",
        &host_cmd,
        "--pair-cmd",
        &pair_cmd,
        "--revoke-cmd",
        &revoke_cmd,
        "--only",
        "TOKEN-*,CHAN-9/*,CHAN-12/*,CMD-15/*,CMD-41/*,CMD-56/*,CMD-26/*,CHAN-26/*",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["target"]["kind"], "host");
    let cases = v["cases"].as_array().unwrap();
    let status = |id: &str| support::case_status(&v, id);
    assert_eq!(status("TOKEN-15/consumed-token-refused"), "pass");
    assert_eq!(status("CHAN-12/expired-token"), "pass");
    assert_eq!(status("CHAN-9/revoked-device"), "pass");
    assert_eq!(status("CMD-41/output-cap"), "pass");
    // No --remote-access-cmd: skipped, with the reason.
    assert_eq!(status("CHAN-26/remote-access-off"), "skip");
    assert!(cases.iter().all(|c| c["status"] != "fail"));

    // Usage errors.
    let o = tether(&["conformance", "host"]);
    assert_eq!(code(&o), 2);
    let o = tether(&[
        "conformance",
        "host",
        "--token",
        "TETHER:AAAA",
        "--credential",
        "0123456789abcdef",
    ]);
    assert_eq!(code(&o), 2);
}
