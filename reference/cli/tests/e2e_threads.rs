//! End to end (issue 4): threads, turns, approvals, hand-off, admin policy and malformed
//! JSON-RPC through real `tether relay`, `tether host run` and controller processes over
//! 127.0.0.1. Every wait is bounded and every child is killed on drop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use tether_controller::{
    ApprovalRequest, Connection, ControllerState, DecisionFuture, ExecRequest, FixedDecision,
    LinkOptions, RpcError, SessionEvent, TurnEvent, connect, describe_rpc_error, error_name,
    exec_on, follow_turn, run_turn, thread_resume, thread_start,
};
use tether_proto::cmd::methods::ThreadStartParams;
use tether_proto::cmd::types::{ApprovalDecision, ApprovalPolicy, SandboxMode, TurnStatus};
use tether_proto::cmd::{Message, codes};

mod support;
use support::*;
use tether_testkit::inproc::runtime;

fn start_host(state: &Path, relay_url: &str, name: &str, extra: &[&str]) -> Proc {
    // The host's temporary directory (writable under workspace-write) is its own, beside
    // its state directory (SEC-22), so that the sandbox test can name a directory outside
    // every writable root wherever the repository and the system temporary directory are.
    let mut c = host_run(state, relay_url);
    c.args(["--name", name, "--allow-unsandboxed"]).args(extra);
    Proc::quiet(c)
}

fn pair_cmd(ctl: &Path, token: &str, name: &str) -> Output {
    TETHER.pair(ctl, token, CRED, name)
}

/// Pairs, retrying while the host is not registered yet.
fn pair_when_up(ctl: &Path, token: &str, name: &str) {
    eventually(LIMIT, "tether pair", || {
        let out = pair_cmd(ctl, token, name);
        if out.code() == Some(0) {
            Ok(())
        } else if out.stderr.contains("HOST_UNREACHABLE") {
            Err(format!("{out:?}"))
        } else {
            panic!("pairing failed: {out:?}");
        }
    });
}

/// `tether ARGS... --state CTL`.
fn ctl_cmd(ctl: &Path, args: &[&str]) -> Command {
    let mut c = tether();
    c.args(args).arg("--state").arg(ctl);
    c
}

fn tctl(ctl: &Path, args: &[&str]) -> Output {
    run(ctl_cmd(ctl, args), LIMIT)
}

fn world_with(extra: &[&str]) -> World {
    let relay = start_relay("127.0.0.1:0");
    let host_state = TempDir::new("host");
    let ctl_state = TempDir::new("ctl");
    let host = start_host(&host_state.0, &relay.url, "build-box", extra);
    let token = mint_token(&host_state.0, 300);
    pair_when_up(&ctl_state.0, &token, "laptop");
    World {
        relay,
        host,
        host_state,
        ctl_state,
    }
}

fn world() -> World {
    world_with(&[])
}

/// A project directory: `.git`, an AGENTS.md at the root and `service/` below it.
fn project(label: &str, agents: &str) -> TempDir {
    let p = TempDir::new(label);
    std::fs::create_dir_all(p.join(".git")).unwrap();
    std::fs::create_dir_all(p.join("service")).unwrap();
    std::fs::write(p.join("AGENTS.md"), agents).unwrap();
    p
}

/// `tether thread start`, retried until the host is up; the id from stdout.
fn start_thread(ctl: &Path, host: Option<&str>, args: &[&str]) -> (String, Output) {
    eventually(LIMIT, "tether thread start", || {
        let mut c = ctl_cmd(ctl, &["thread", "start"]);
        if let Some(h) = host {
            c.args(["--host", h]);
        }
        c.args(args);
        let out = run(c, LIMIT);
        if out.code() == Some(0) {
            Ok((out.stdout.trim().to_owned(), out))
        } else if out.stderr.contains("HOST_UNREACHABLE") {
            Err(format!("{out:?}"))
        } else {
            panic!("thread start failed: {out:?}");
        }
    })
}

fn turn_cmd(ctl: &Path, thread: &str, decision: Option<&str>, text: &str) -> Command {
    let mut c = ctl_cmd(ctl, &["turn", "--thread", thread]);
    if let Some(d) = decision {
        c.args(["--decision", d]);
    }
    c.arg(text);
    c
}

async fn lib_connect(ctl: &Path, host: Option<&str>) -> Connection {
    let state = ControllerState::open(ctl).unwrap();
    let host = state.find_host(host).unwrap();
    connect(&state, &host, &LinkOptions::default())
        .await
        .unwrap()
}

/// Whether the kernel enforces `mode` here (`tether sandbox-exec --probe`).
fn sandbox_enforced(mode: &str) -> bool {
    let mut c = tether();
    c.args(["sandbox-exec", "--probe", "--mode", mode]);
    let probe = run(c, LIMIT);
    probe.stdout.contains("\"filesystem\":true")
}

fn wait_reachable(ctl: &Path) {
    eventually(LIMIT, "tether status", || {
        let out = tctl(ctl, &["status"]);
        if out.code() == Some(0) {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
}

/// Waits until the thread has a turn running (its command started); fails at once, with
/// its output, if `turn` (the `tether turn` that should be running it) has exited.
fn wait_active(ctl: &Path, thread: &str, turn: &mut Proc) {
    eventually(LIMIT, "a running turn", || {
        if let Ok(Some(status)) = turn.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = turn.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("`tether turn` exited ({status}) before its turn ran: {err}");
        }
        let out = tctl(ctl, &["thread", "show", "--json", thread]);
        let read: Value = serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {out:?}"))?;
        let running = read["thread"]["turns"]
            .as_array()
            .and_then(|t| t.last())
            .is_some_and(|t| {
                t["status"] == "inProgress" && t["items"].to_string().contains("commandExecution")
            });
        if running {
            Ok(())
        } else {
            Err(read.to_string())
        }
    });
    // The command itself has started by now or very soon; a moment more for the shell.
    thread::sleep(Duration::from_millis(300));
}

/// Whether util-linux `script` (a pseudo-terminal for the prompt tests) is installed.
fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------

/// CMD-2..CMD-14 over a real session: every malformed message gets its typed error (with
/// a `null` id when the id cannot be read, CMD-11), and the session goes on.
#[test]
fn malformed_json_rpc_gets_typed_errors_and_the_session_survives() {
    let w = world();
    wait_reachable(&w.ctl_state.0);
    runtime().block_on(async {
        tokio::time::timeout(LIMIT, async {
            let mut conn = lib_connect(&w.ctl_state.0, None).await;
            let s = &conn.session;
            let raw = |text: &str| text.as_bytes().to_vec();
            // CMD-3: not JSON.
            s.send_raw(raw(r#"{"jsonrpc":"2.0","id":900,"#)).await.unwrap();
            // CMD-12: unknown method.
            s.send_raw(raw(r#"{"jsonrpc":"2.0","id":901,"method":"no/such/method"}"#))
                .await
                .unwrap();
            // CMD-13: wrong params (command must be an array).
            s.send_raw(raw(
                r#"{"jsonrpc":"2.0","id":902,"method":"command/exec","params":{"command":"ls","cwd":"/"}}"#,
            ))
            .await
            .unwrap();
            // CMD-5: a duplicate member name; the id is never read (CMD-11).
            s.send_raw(raw(
                r#"{"jsonrpc":"2.0","id":903,"id":904,"method":"command/exec/terminate","params":{"processId":"p"}}"#,
            ))
            .await
            .unwrap();
            // CMD-14: the same id twice; each request is answered once, with that id.
            for _ in 0..2 {
                s.send_raw(raw(
                    r#"{"jsonrpc":"2.0","id":905,"method":"command/exec/terminate","params":{"processId":"nope"}}"#,
                ))
                .await
                .unwrap();
            }
            // CMD-2, CHAN-33: the session carries records (the reference host offers
            // channel.flow, CHAN-31), so a message of exactly 16 MiB is read, in PART
            // records within the host's window; one byte more cannot even leave the
            // controller, so the host never sees it.
            assert!(s.has_records(), "the reference pair negotiates records");
            let head = r#"{"jsonrpc":"2.0","id":906,"method":"command/exec/terminate","params":{"processId":"nope","pad":""#;
            let tail = r#""}}"#;
            let pad = tether_proto::limits::MAX_MESSAGE_LEN - head.len() - tail.len();
            let max = format!("{head}{}{tail}", "x".repeat(pad));
            assert_eq!(max.len(), 16 * 1024 * 1024);
            s.send_raw(max.into_bytes()).await.unwrap();
            let over = format!("{head}{}{tail}", "x".repeat(pad + 1));
            let refused = s.send_raw(over.into_bytes()).await;
            assert!(refused.is_err(), "an oversize message was sent");

            let mut got = Vec::new();
            while got.len() < 7 {
                match conn.session.next_event().await.unwrap() {
                    SessionEvent::UnmatchedResponse(Message::Error(e)) => {
                        let id = e.id.map(|i| i.to_value()).unwrap_or(Value::Null);
                        got.push((id.to_string(), e.error.code, error_name(&e.error).unwrap()));
                    }
                    SessionEvent::Ended(end) => panic!("session ended: {end:?}"),
                    _ => {}
                }
            }
            got.sort();
            let mut want = vec![
                ("null".to_owned(), codes::PARSE_ERROR, "Parse".to_owned()),
                ("901".to_owned(), codes::METHOD_NOT_FOUND, "MethodNotFound".to_owned()),
                ("902".to_owned(), codes::INVALID_PARAMS, "InvalidParams".to_owned()),
                ("null".to_owned(), codes::PARSE_ERROR, "DuplicateKey".to_owned()),
                ("905".to_owned(), codes::PROCESS_NOT_FOUND, "ProcessNotFound".to_owned()),
                ("905".to_owned(), codes::PROCESS_NOT_FOUND, "ProcessNotFound".to_owned()),
                ("906".to_owned(), codes::PROCESS_NOT_FOUND, "ProcessNotFound".to_owned()),
            ];
            want.sort();
            assert_eq!(got, want);

            // The session survives.
            let request = ExecRequest {
                argv: vec!["echo".into(), "alive".into()],
                cwd: None,
                sandbox: None,
                timeout: None,
                output_cap: None,
            };
            let mut out = Vec::new();
            let outcome = exec_on(&mut conn, &request, |_, b| out.extend_from_slice(b))
                .await
                .unwrap();
            assert_eq!(outcome.exit_status(), 0);
            assert_eq!(out, b"alive\n");
            conn.close().await;
        })
        .await
        .expect("timed out");
    });
    drop(w.host);
}

/// CMD-55: with remote access switched off, a session already open gets
/// RemoteAccessDisabled (-32010) for its requests, and `tether` says so plainly; a new
/// session is refused at the handshake (CHAN-26).
#[test]
fn remote_access_off_is_a_typed_error_printed_plainly() {
    let w = world();
    wait_reachable(&w.ctl_state.0);
    runtime().block_on(async {
        tokio::time::timeout(LIMIT, async {
            let conn = lib_connect(&w.ctl_state.0, None).await;
            tether_host::state::StateDir::open(&w.host_state.0)
                .unwrap()
                .set_remote_access(false)
                .unwrap();
            let err = conn
                .session
                .request("command/exec/terminate", Some(json!({"processId": "nope"})))
                .await
                .unwrap_err();
            let RpcError::Remote(e) = err else {
                panic!("not an error response: {err:?}")
            };
            assert_eq!(e.code, codes::REMOTE_ACCESS_DISABLED);
            assert_eq!(
                describe_rpc_error(&e),
                "remote access is switched off on the host (-32010 RemoteAccessDisabled)"
            );
            conn.close().await;
        })
        .await
        .expect("timed out");
    });
    let mut exec = ctl_cmd(&w.ctl_state.0, &["exec"]);
    exec.args(["--", "true"]);
    for c in [ctl_cmd(&w.ctl_state.0, &["thread", "list"]), exec] {
        let out = run(c, LIMIT);
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(out.stderr.contains("host build-box"), "{out:?}");
        assert!(out.stderr.contains("refused"), "{out:?}");
        assert!(
            out.stderr.contains("refused: REMOTE_ACCESS_DISABLED ("),
            "{out:?}"
        );
        assert!(out.stderr.contains("(CHAN-26)"), "{out:?}");
    }
    drop(w.relay.proc);
}

/// `tether thread start|list|show` and `tether turn` with each scripted decision
/// (CMD-17, CMD-20..CMD-24, CMD-29), and the one-line typed errors.
#[test]
fn threads_and_turns_through_the_cli() {
    let w = world();
    let p = project("project", "Run the tests before committing.\n");
    let cwd = p.0.display().to_string();
    let (id, out) = start_thread(
        &w.ctl_state.0,
        None,
        &[
            "--cwd",
            &cwd,
            "--sandbox",
            "workspace-write",
            "--approval-policy",
            "untrusted",
        ],
    );
    // The id alone on stdout; the sandbox and the instructions on stderr.
    assert_eq!(out.stdout, format!("{id}\n"), "{out:?}");
    assert!(!id.is_empty() && id.len() <= 64, "{out:?}");
    assert!(out.stderr.contains("sandbox: "), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("instructions: {cwd}/AGENTS.md")),
        "{out:?}"
    );

    let out = tctl(&w.ctl_state.0, &["thread", "list"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains(&id), "{out:?}");
    let out = tctl(&w.ctl_state.0, &["thread", "list", "--json"]);
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str()),
        "{out:?}"
    );

    // accept: the output live, the command's exit status.
    let out = run(
        turn_cmd(
            &w.ctl_state.0,
            &id,
            Some("accept"),
            "$ echo hello; echo oops >&2; exit 3",
        ),
        LIMIT,
    );
    assert_eq!(out.code(), Some(3), "{out:?}");
    // Section 5.4: stdout and stderr come merged, as text, in the order read.
    assert!(out.stdout.contains("hello\n"), "{out:?}");
    assert!(out.stdout.contains("oops\n"), "{out:?}");

    // decline: nothing runs (CMD-29), exit 125.
    let marker = p.join("declined-file");
    let out = run(
        turn_cmd(
            &w.ctl_state.0,
            &id,
            Some("decline"),
            &format!("$ touch {}", marker.display()),
        ),
        LIMIT,
    );
    assert_eq!(out.code(), Some(125), "{out:?}");
    assert!(!marker.exists(), "a declined command ran");
    assert!(out.stderr.contains("declined"), "{out:?}");

    // No command: the agent's message on stdout (CMD-59).
    let out = run(
        turn_cmd(&w.ctl_state.0, &id, Some("accept"), "just words"),
        LIMIT,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "just words\n", "{out:?}");

    // No terminal and no --decision: refused before connecting.
    let out = run(turn_cmd(&w.ctl_state.0, &id, None, "$ true"), LIMIT);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--decision"), "{out:?}");

    // The history (CMD-21).
    let out = tctl(&w.ctl_state.0, &["thread", "show", &id]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    for needle in [
        "$ echo hello; echo oops >&2; exit 3",
        "exit 3",
        "| hello",
        "declined",
        "agent: just words",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} in {out:?}");
    }
    let out = tctl(&w.ctl_state.0, &["thread", "show", "--json", &id]);
    let read: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(read["thread"]["id"], id.as_str());
    assert_eq!(
        read["thread"]["turns"].as_array().unwrap().len(),
        3,
        "{read}"
    );

    // Typed errors: one line, host, thread, code and name (CMD-18).
    let out = tctl(&w.ctl_state.0, &["thread", "show", "thr_nope"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("tether: thread show thr_nope: host build-box ("),
        "{out:?}"
    );
    assert!(out.stderr.contains("(-32013 ThreadNotFound)"), "{out:?}");
    let out = run(
        turn_cmd(&w.ctl_state.0, "thr_nope", Some("accept"), "$ true"),
        LIMIT,
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("turn on thread thr_nope"), "{out:?}");
    assert!(out.stderr.contains("(-32013 ThreadNotFound)"), "{out:?}");
    drop(w.host);
}

/// A thread's sandbox holds for its commands (CMD-44): under read-only an accepted write
/// does not happen.
#[test]
fn a_read_only_thread_cannot_write() {
    let enforced = sandbox_enforced("read-only");
    let w = world();
    let p = project("ro-project", "x\n");
    let cwd = p.0.display().to_string();
    let (id, out) = start_thread(
        &w.ctl_state.0,
        None,
        &["--cwd", &cwd, "--sandbox", "read-only"],
    );
    if enforced {
        assert!(
            out.stderr.contains("sandbox: read-only enforced"),
            "{out:?}"
        );
    }
    let file = p.join("written");
    let out = run(
        turn_cmd(
            &w.ctl_state.0,
            &id,
            Some("accept"),
            &format!("$ echo x > {}", file.display()),
        ),
        LIMIT,
    );
    if enforced {
        assert_ne!(out.code(), Some(0), "{out:?}");
        assert!(!file.exists(), "a file appeared under read-only: {out:?}");
    }
    drop(w.host);
}

/// Ctrl-C sends turn/interrupt (CMD-23): exit 130 and the turn is interrupted. With remote
/// access switched off meanwhile, the interrupt is refused and `tether` prints the typed
/// error plainly (CMD-55).
#[test]
fn ctrl_c_interrupts_a_turn_and_the_admin_refusal_is_printed() {
    let w = world();
    let p = project("int-project", "x\n");
    let cwd = p.0.display().to_string();
    let (id, _) = start_thread(
        &w.ctl_state.0,
        None,
        &["--cwd", &cwd, "--approval-policy", "never"],
    );
    let mut child = Proc::piped(turn_cmd(&w.ctl_state.0, &id, Some("accept"), "$ sleep 20"));
    wait_active(&w.ctl_state.0, &id, &mut child);
    child.signal("INT");
    let out = child.finish(LIMIT);
    assert_eq!(out.code(), Some(130), "{out:?}");
    assert!(out.stderr.contains("interrupting the turn"), "{out:?}");
    let out = tctl(&w.ctl_state.0, &["thread", "show", "--json", &id]);
    let read: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        read["thread"]["turns"][0]["status"], "interrupted",
        "{read}"
    );

    let mut child = Proc::piped(turn_cmd(&w.ctl_state.0, &id, Some("accept"), "$ sleep 20"));
    wait_active(&w.ctl_state.0, &id, &mut child);
    tether_host::state::StateDir::open(&w.host_state.0)
        .unwrap()
        .set_remote_access(false)
        .unwrap();
    child.signal("INT");
    let out = child.finish(LIMIT);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("refused"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        line.starts_with(&format!("tether: turn on thread {id}: host build-box (")),
        "{line}"
    );
    assert!(
        line.ends_with(
            "refused: remote access is switched off on the host (-32010 RemoteAccessDisabled)"
        ),
        "{line}"
    );
    drop(w.relay.proc);
}

fn label(e: &TurnEvent) -> String {
    match e {
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
        TurnEvent::Output { .. } => "output".into(),
        TurnEvent::Completed(t) => format!("turn/completed {:?}", t.status),
        _ => "other".into(),
    }
}

/// Two controllers attached to one thread (CMD-26, CMD-28): the first answer wins, both
/// see serverRequest/resolved naming the winner (CMD-30), and the loser's late answer is
/// refused with ApprovalAlreadyResolved (CMD-32).
#[test]
fn two_controllers_race_to_answer_one_approval() {
    let w = world();
    let phone = TempDir::new("phone");
    let token = mint_token(&w.host_state.0, 300);
    pair_when_up(&phone.0, &token, "phone");
    let p = project("race-project", "x\n");
    let cwd = p.0.display().to_string();
    runtime().block_on(async {
        tokio::time::timeout(LIMIT, async {
            let mut a = lib_connect(&w.ctl_state.0, None).await;
            let mut b = lib_connect(&phone.0, None).await;
            let thread = thread_start(
                &a.session,
                &ThreadStartParams {
                    cwd: Some(cwd.clone()),
                    sandbox: Some(SandboxMode::WorkspaceWrite),
                    approval_policy: Some(ApprovalPolicy::Untrusted),
                    ..ThreadStartParams::default()
                },
            )
            .await
            .unwrap()
            .thread
            .id;
            thread_resume(&b.session, &thread).await.unwrap();

            // The laptop never answers; the phone accepts.
            let (req_tx, mut req_rx) = tokio::sync::mpsc::unbounded_channel();
            let mut silent = move |r: &ApprovalRequest| -> DecisionFuture {
                let _ = req_tx.send(r.request_id.clone());
                Box::pin(std::future::pending())
            };
            let thread2 = thread.clone();
            let phone_side = async move {
                let mut events = Vec::new();
                let outcome = follow_turn(
                    &mut b.session,
                    &thread2,
                    None,
                    &mut FixedDecision(Some(ApprovalDecision::Accept)),
                    std::future::pending(),
                    |e| events.push(label(e)),
                )
                .await
                .unwrap();
                (b, outcome, events)
            };
            let mut a_events = Vec::new();
            let laptop_side = run_turn(&mut a.session, &thread, "$ echo raced", &mut silent, |e| {
                a_events.push(label(e))
            });
            let (a_outcome, (b, b_outcome, b_events)) = tokio::join!(laptop_side, phone_side);
            let a_outcome = a_outcome.unwrap();
            assert_eq!(a_outcome.turn.status, TurnStatus::Completed);
            assert_eq!(a_outcome.turn, b_outcome.turn);
            assert_eq!(a_outcome.exit_status(), 0);
            assert!(
                a_events.contains(&"resolved Accept by phone".to_owned()),
                "{a_events:?}"
            );
            assert!(a_events.contains(&"output".to_owned()), "{a_events:?}");
            assert!(
                b_events.contains(&"answered Accept".to_owned()),
                "{b_events:?}"
            );
            assert!(
                b_events.contains(&"resolved Accept by phone".to_owned()),
                "{b_events:?}"
            );

            // The laptop answers now: too late (CMD-32).
            let late = req_rx.recv().await.unwrap();
            a.session
                .respond(late.clone(), json!({"decision": "decline"}))
                .unwrap();
            let resolved = loop {
                match a.session.next_event().await.unwrap() {
                    SessionEvent::Notification(n) if n.method == "serverRequest/resolved" => {
                        let p = n.params.unwrap();
                        if p["tether"].get("rejectedAnswer").is_some() {
                            break p;
                        }
                    }
                    SessionEvent::Ended(e) => panic!("session ended: {e:?}"),
                    _ => {}
                }
            };
            assert_eq!(resolved["requestId"], late.to_value());
            assert_eq!(resolved["tether"]["decision"], "accept");
            assert_eq!(
                resolved["tether"]["rejectedAnswer"]["code"],
                codes::APPROVAL_ALREADY_RESOLVED
            );
            a.close().await;
            b.close().await;
        })
        .await
        .expect("timed out");
    });
    drop(w.host);
}

/// Hand-off (CMD-52..CMD-54): the history moves, the new thread has a new id on the other
/// host, and AGENTS.md is discovered again there with that host's paths.
#[test]
fn handoff_between_two_hosts_keeps_history_and_rediscovers_agents_md() {
    let w = world();
    let other_state = TempDir::new("host2");
    let _other = start_host(&other_state.0, &w.relay.url, "other-box", &[]);
    let token = mint_token(&other_state.0, 300);
    pair_when_up(&w.ctl_state.0, &token, "laptop");
    let p1 = project("p1", "first host\n");
    let p2 = project("p2", "second host\n");
    std::fs::write(p2.join("service").join("AGENTS.md"), "service rules\n").unwrap();
    let cwd1 = p1.join("service").display().to_string();
    let (id, _) = start_thread(
        &w.ctl_state.0,
        Some("build-box"),
        &["--cwd", &cwd1, "--approval-policy", "untrusted"],
    );
    let mut c = turn_cmd(&w.ctl_state.0, &id, Some("accept"), "$ echo handoff-marker");
    c.args(["--host", "build-box"]);
    let out = run(c, LIMIT);
    assert_eq!(out.code(), Some(0), "{out:?}");

    let mut c = ctl_cmd(
        &w.ctl_state.0,
        &[
            "thread",
            "handoff",
            "--from",
            "build-box",
            "--to",
            "other-box",
        ],
    );
    c.arg("--project-root").arg(&p2.0).arg(&id);
    let out = run(c, LIMIT);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let new_id = out.stdout.trim().to_owned();
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    let p2s = p2.0.display().to_string();
    assert!(
        out.stderr
            .contains(&format!("instructions: {p2s}/AGENTS.md")),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("instructions: {p2s}/service/AGENTS.md")),
        "{out:?}"
    );
    assert!(!out.stderr.contains(&p1.0.display().to_string()), "{out:?}");

    let out = tctl(
        &w.ctl_state.0,
        &["thread", "show", "--json", "--host", "other-box", &new_id],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    let read: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(read["thread"]["cwd"], format!("{p2s}/service"));
    let text = read["thread"]["turns"].to_string();
    assert!(text.contains("handoff-marker"), "{read}");
    assert!(text.contains("$ echo handoff-marker"), "{read}");
    // The source thread is still there.
    let out = tctl(
        &w.ctl_state.0,
        &["thread", "show", "--host", "build-box", &id],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");

    // Unknown thread: the export step fails, named.
    let c = ctl_cmd(
        &w.ctl_state.0,
        &[
            "thread",
            "handoff",
            "--from",
            "build-box",
            "--to",
            "other-box",
            "thr_nope",
        ],
    );
    let out = run(c, LIMIT);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("export: host build-box"), "{out:?}");
    assert!(out.stderr.contains("(-32013 ThreadNotFound)"), "{out:?}");
    drop(w.host);
}

/// Runs `tether turn` on a pseudo-terminal (util-linux `script`), answering each approval
/// prompt with the next of `answers` once it appears. Returns the exit status and
/// everything the terminal showed.
fn pty_turn(ctl: &Path, thread: &str, text: &str, answers: &[&str]) -> (Option<i32>, String) {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    let line = format!(
        "{} turn --state {} --thread {} '{}'",
        env!("CARGO_BIN_EXE_tether"),
        ctl.display(),
        thread,
        text
    );
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let child = Proc(child);
    let shown: Arc<Mutex<String>> = Arc::default();
    let shown2 = shown.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown2
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    for (i, answer) in answers.iter().enumerate() {
        eventually(LIMIT, "the approval prompt", || {
            let s = shown.lock().unwrap();
            if s.matches("[y]es/[n]o/[a]lways/[c]ancel").count() > i {
                Ok(())
            } else {
                Err(s.clone())
            }
        });
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let mut child = child;
    let status = child
        .wait_exit(LIMIT)
        .unwrap_or_else(|| panic!("turn did not finish: {}", shown.lock().unwrap()));
    drop(stdin);
    thread::sleep(Duration::from_millis(200));
    let text = shown.lock().unwrap().clone();
    (status.code(), text)
}

/// The terminal prompt: y runs the command, a (acceptForSession) runs it and the same
/// command later without asking (CMD-29), c cancels the turn.
#[test]
fn approvals_asked_on_a_terminal() {
    if !have_script() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let w = world();
    let p = project("tty-project", "x\n");
    let cwd = p.0.display().to_string();
    let (id, _) = start_thread(
        &w.ctl_state.0,
        None,
        &["--cwd", &cwd, "--approval-policy", "untrusted"],
    );
    let (code, shown) = pty_turn(&w.ctl_state.0, &id, "$ echo yes-ran", &["y"]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains(&format!(
            "Run `echo yes-ran` in {cwd}? [y]es/[n]o/[a]lways/[c]ancel"
        )),
        "{shown}"
    );
    assert!(shown.contains("yes-ran\r\n"), "{shown}");

    let (code, shown) = pty_turn(&w.ctl_state.0, &id, "$ echo always-ran", &["a"]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("always-ran\r\n"), "{shown}");
    // Same command, same directory: no question this time.
    let (code, shown) = pty_turn(&w.ctl_state.0, &id, "$ echo always-ran", &[]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("[c]ancel"), "{shown}");
    assert!(shown.contains("always-ran\r\n"), "{shown}");

    let marker = p.join("cancelled");
    let (code, shown) = pty_turn(
        &w.ctl_state.0,
        &id,
        &format!("$ touch {}", marker.display()),
        &["what", "c"],
    );
    assert_eq!(code, Some(130), "{shown}");
    assert!(shown.contains("please answer y, n, a or c"), "{shown}");
    assert!(!marker.exists(), "a cancelled command ran");
    drop(w.host);
}

/// CMD-31: no answer within the time limit counts as decline, decided by the host (no
/// `resolvedBy`), and the prompt still waiting is dropped unanswered (CMD-57). The host
/// runs with a 700 ms limit instead of 300 s.
#[test]
fn an_unanswered_approval_is_declined_by_the_host() {
    let w = world_with(&["--approval-timeout-ms", "700"]);
    let p = project("timeout-project", "x\n");
    let cwd = p.0.display().to_string();
    let marker = p.join("timed-out");
    wait_reachable(&w.ctl_state.0);
    runtime().block_on(async {
        tokio::time::timeout(LIMIT, async {
            let mut conn = lib_connect(&w.ctl_state.0, None).await;
            let thread = thread_start(
                &conn.session,
                &ThreadStartParams {
                    cwd: Some(cwd.clone()),
                    sandbox: None,
                    approval_policy: Some(ApprovalPolicy::Untrusted),
                    ..ThreadStartParams::default()
                },
            )
            .await
            .unwrap()
            .thread
            .id;
            let mut events = Vec::new();
            let outcome = run_turn(
                &mut conn.session,
                &thread,
                &format!("$ touch {}", marker.display()),
                &mut FixedDecision(None),
                |e| events.push(label(e)),
            )
            .await
            .unwrap();
            assert!(
                events.contains(&"resolved Decline by host".to_owned()),
                "{events:?}"
            );
            assert!(
                !events.iter().any(|e| e.starts_with("answered")),
                "{events:?}"
            );
            assert_eq!(outcome.turn.status, TurnStatus::Completed);
            assert_eq!(
                outcome.exit_status(),
                tether_controller::threads::EXIT_DECLINED
            );
            conn.close().await;
        })
        .await
        .expect("timed out");
    });
    assert!(!marker.exists(), "a command that got no answer ran");
    drop(w.host);
}

/// A second device answers from the command line: `tether thread attach --decision accept`
/// on the phone while the laptop's `tether turn` asks on its terminal. The phone's answer
/// wins (CMD-30); the laptop's prompt is dropped and says who answered, and both show the
/// command's output.
#[test]
fn a_second_device_answers_with_thread_attach() {
    if !have_script() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let w = world();
    let phone = TempDir::new("attach-phone");
    let token = mint_token(&w.host_state.0, 300);
    pair_when_up(&phone.0, &token, "phone");
    let p = project("attach-project", "x\n");
    let cwd = p.0.display().to_string();
    let (id, _) = start_thread(
        &w.ctl_state.0,
        None,
        &["--cwd", &cwd, "--approval-policy", "untrusted"],
    );
    let mut c = ctl_cmd(&phone.0, &["thread", "attach", "--decision", "accept"]);
    c.arg(&id);
    let mut attached = Proc::piped(c);
    // Wait for "attached" on its stderr before starting the turn.
    let err = attached.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("attached to thread") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(LIMIT)
        .expect("thread attach did not attach");
    let (code, shown) = pty_turn(&w.ctl_state.0, &id, "$ echo from-laptop-turn", &[]);
    assert_eq!(code, Some(0), "{shown}");
    // The laptop shows its prompt unless the phone's answer came first; a prompt shown
    // is closed with who answered.
    if shown.contains("[c]ancel") {
        assert!(shown.contains("answered by phone: accept"), "{shown}");
    }
    assert!(shown.contains("from-laptop-turn\r\n"), "{shown}");
    let mut stdout = String::new();
    attached
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = attached.wait_exit(LIMIT).expect("attached turn ended");
    assert_eq!(status.code(), Some(0));
    assert_eq!(stdout, "from-laptop-turn\n");
    drop(w.host);
}

/// SEC-15 through the CLI: a host started with `--max-sandbox workspace-write
/// --max-approval-policy on-request` refuses a command or thread beyond either cap with
/// -32012 (one plain line; nothing runs) and serves those within. CMD-71: with
/// `--project`, `tether exec` without `--cwd` runs in that project, the directory a thread
/// started without `--cwd` gets.
#[test]
fn sec_15_caps_and_cmd_71_default_project_through_the_cli() {
    let p = project("capped-project", "x\n");
    let project_dir = std::fs::canonicalize(&p.0).unwrap();
    let project_text = project_dir.to_str().unwrap().to_owned();
    let w = world_with(&[
        "--max-sandbox",
        "workspace-write",
        "--max-approval-policy",
        "on-request",
        "--project",
        &project_text,
    ]);
    wait_reachable(&w.ctl_state.0);
    let refused = |out: &Output, what: &str| {
        assert_eq!(out.code(), Some(1), "{what}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{what}: {out:?}");
        assert!(
            out.stderr.contains("(-32012 SandboxDenied)"),
            "{what}: {out:?}"
        );
        assert!(out.stderr.contains("SEC-15"), "{what}: {out:?}");
    };

    // command/exec beyond the sandbox cap: refused, and it did not run.
    let marker = p.join("ran");
    let mut c = ctl_cmd(&w.ctl_state.0, &["exec"]);
    c.args(["--sandbox", "danger-full-access", "--", "touch"])
        .arg(&marker);
    refused(&run(c, LIMIT), "exec danger-full-access");
    assert!(!marker.exists());
    // Within the cap, and without --cwd: in the default project (CMD-71).
    let mut c = ctl_cmd(&w.ctl_state.0, &["exec"]);
    c.args(["--sandbox", "read-only", "--", "sh", "-c", "pwd -P"]);
    let out = run(c, LIMIT);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("{project_text}\n"), "{out:?}");

    // thread/start beyond either cap.
    for (what, args) in [
        (
            "sandbox",
            [
                "--sandbox",
                "danger-full-access",
                "--approval-policy",
                "untrusted",
            ],
        ),
        (
            "policy",
            ["--sandbox", "read-only", "--approval-policy", "never"],
        ),
    ] {
        let mut c = ctl_cmd(&w.ctl_state.0, &["thread", "start"]);
        c.args(args);
        refused(&run(c, LIMIT), what);
    }
    let list = tctl(&w.ctl_state.0, &["thread", "list"]);
    assert!(
        list.stdout.starts_with("no threads on host "),
        "a refused thread was created: {list:?}"
    );
    // Within both caps, without --cwd: the thread gets the default project.
    let (id, _) = start_thread(
        &w.ctl_state.0,
        None,
        &[
            "--sandbox",
            "workspace-write",
            "--approval-policy",
            "on-request",
        ],
    );
    let show = tctl(&w.ctl_state.0, &["thread", "show", &id]);
    assert_eq!(show.code(), Some(0), "{show:?}");
    assert!(
        show.stdout.contains(&format!("cwd:      {project_text}\n")),
        "{show:?}"
    );
    drop(w.host);
}
