//! End to end (issue 17): `tether host run --agent codex` with the real pinned Codex
//! (0.169.0), offline against the testkit's mock model in a private `CODEX_HOME`
//! (`--codex-home`), driven by the unchanged `tether thread` and `tether turn` commands
//! through a real `tether relay` on 127.0.0.1 (spec 5.14).
//!
//! The Codex binary comes from `$TETHER_CODEX_BIN` (`export
//! TETHER_CODEX_BIN="$(ci/codex-install)"`) or `codex` on `PATH`; without one the test
//! fails saying so. Codex never runs in the system temporary directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tether_testkit::codex::{CodexHome, codex_bin};
use tether_testkit::model::{MockModel, ModelTurn};

mod support;
use support::*;

/// `tether ARGS... --state CTL`, run to its end.
fn tctl(ctl: &Path, args: &[&str]) -> Output {
    let mut c = tether();
    c.args(args).arg("--state").arg(ctl);
    run(c, LIMIT)
}

fn turn(ctl: &Path, thread: &str, decision: &str, text: &str) -> Output {
    let mut c: Command = tether();
    c.args(["turn", "--thread", thread, "--decision", decision, text])
        .arg("--state")
        .arg(ctl);
    run(c, LIMIT)
}

#[test]
fn thread_and_turn_commands_drive_a_codex_host() {
    let bin = codex_bin().unwrap_or_else(|e| panic!("{e}"));
    // The mock model serves from this runtime's worker thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let model = rt
        .block_on(MockModel::start([
            ModelTurn::shell("echo made-by-codex; touch accepted-file"),
            ModelTurn::text("Created the file."),
            ModelTurn::shell("touch declined-file"),
            ModelTurn::text("Not created."),
        ]))
        .unwrap();
    let home = CodexHome::new(&outside_tmp(), &model.base_url());
    let work = std::fs::canonicalize(home.work()).unwrap();
    let workdir = work.display().to_string();

    let relay = start_relay("127.0.0.1:0");
    let host_state = TempDir::new("host");
    let ctl_state = TempDir::new("ctl");
    let mut c = host_run(&host_state.0, &relay.url);
    c.args([
        "--name",
        "codex-box",
        "--allow-unsandboxed",
        "--agent",
        "codex",
    ])
    .arg("--codex-bin")
    .arg(&bin)
    .arg("--codex-home")
    .arg(home.codex_home())
    .arg("--project")
    .arg(&work);
    let host = Proc::quiet(c);
    let token = mint_token(&host_state.0, 300);
    let out = TETHER.pair_when_up(&ctl_state.0, &token, CRED, "laptop");
    assert_eq!(out.code(), Some(0), "{out:?}");

    let out = tctl(
        &ctl_state.0,
        &[
            "thread",
            "start",
            "--cwd",
            &workdir,
            "--sandbox",
            "workspace-write",
            "--approval-policy",
            "untrusted",
        ],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    let id = out.stdout.trim().to_owned();
    // Spec 5.14: the sandbox is Codex's.
    assert!(out.stderr.contains("codex"), "{out:?}");

    // Accepted: the command's output and the agent's message; the file exists.
    let out = turn(&ctl_state.0, &id, "accept", "make the file");
    assert_eq!(out.code(), Some(0), "{out:?}\n{}", model.summary());
    assert!(out.stdout.contains("made-by-codex"), "{out:?}");
    assert!(out.stdout.contains("Created the file."), "{out:?}");
    assert!(
        work.join("accepted-file").exists(),
        "the command did not run"
    );

    // Declined: nothing runs; the turn goes on to the agent's answer.
    let out = turn(&ctl_state.0, &id, "decline", "make another file");
    assert!(out.stderr.contains("declined"), "{out:?}");
    assert!(out.stdout.contains("Not created."), "{out:?}");
    assert!(
        !work.join("declined-file").exists(),
        "a declined command ran"
    );

    // The history, as the host keeps it (CMD-21).
    let out = tctl(&ctl_state.0, &["thread", "show", "--json", &id]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let read: Value = serde_json::from_str(&out.stdout).unwrap();
    let turns = read["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "{read}");
    assert_eq!(read["thread"]["modelProvider"], "codex", "{read}");
    let out = tctl(&ctl_state.0, &["thread", "show", &id]);
    for needle in ["made-by-codex", "declined", "Created the file."] {
        assert!(out.stdout.contains(needle), "{needle:?} in {out:?}");
    }
    assert!(model.errors().is_empty(), "{}", model.summary());
    drop(host);
}
