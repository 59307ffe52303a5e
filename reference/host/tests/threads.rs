//! Threads, turns, approvals and hand-off through the real host runtime: the reference
//! relay on 127.0.0.1 (plain `ws://`), `tether_host::run`, and controllers of
//! `tether-controller` paired with minted tokens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_controller::{
    Connection, ControllerState, LinkOptions, PairedHost, RpcError, SessionEvent, connect, pair,
};
use tether_host::CommandConfig;
use tether_host::state::StateDir;
use tether_proto::cmd::codes;
use tether_proto::cmd::methods::ThreadReadResult;
use tether_proto::cmd::types::{SandboxMode, ThreadItem, Turn};
use tether_proto::cmd::{Notification, Request};
use tether_proto::time::UnixTime;
use tether_relay::RelayHandle;
use tether_testkit::inproc;
use tokio::sync::mpsc;

const CREDENTIAL: &str = "threads-test-credential";
const WAIT: Duration = Duration::from_secs(20);

async fn relay() -> RelayHandle {
    inproc::relay(&[
        ("acme", CREDENTIAL.as_bytes()),
        ("beta", CREDENTIAL.as_bytes()),
    ])
    .await
}

/// An in-process host (`tether_host::run`) that reached `READY`.
struct TestHost {
    host: inproc::Host,
    state: StateDir,
}

impl TestHost {
    async fn start(url: &str, workspace: &str, state: &Path, commands: CommandConfig) -> Self {
        let state = StateDir::open(state).unwrap();
        let name = format!("{workspace}-box");
        let mut options = inproc::host_options(url, workspace, CREDENTIAL, &name);
        options.commands = commands;
        let mut host = inproc::Host::start(state.clone(), options);
        host.ready(WAIT).await.unwrap();
        Self { host, state }
    }

    async fn stop(self) {
        self.host.stop(WAIT).await.unwrap();
    }

    /// Pairs a controller whose state lives in `dir` as `device`.
    async fn pair(&self, dir: &Path, device: &str) -> (ControllerState, PairedHost) {
        let token = self
            .state
            .mint_token(Duration::from_secs(300), UnixTime::now())
            .unwrap();
        let state = ControllerState::open(dir).unwrap();
        let paired = pair(
            &state,
            &token.to_text(),
            CREDENTIAL,
            device,
            &LinkOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
        (state, paired.host)
    }
}

async fn open(state: &ControllerState, host: &PairedHost) -> Connection {
    let conn = connect(state, host, &LinkOptions::default()).await.unwrap();
    // CMD-16, CMD-59
    for cap in ["agent.test", "thread.handoff", "command.exec"] {
        assert!(
            conn.init.tether.capabilities.iter().any(|c| c == cap),
            "{cap}"
        );
    }
    conn
}

fn config(project: &Path) -> CommandConfig {
    CommandConfig {
        allow_unsandboxed: true,
        default_project: Some(project.to_owned()),
        ..CommandConfig::default()
    }
}

async fn call(conn: &Connection, method: &str, params: Value) -> Value {
    match conn.session.request(method, Some(params)).await {
        Ok(v) => v,
        Err(e) => panic!("{method}: {e}"),
    }
}

async fn call_err(conn: &Connection, method: &str, params: Value) -> i64 {
    match conn.session.request(method, Some(params)).await {
        Err(RpcError::Remote(e)) => e.code,
        other => panic!("{method}: expected an error, got {other:?}"),
    }
}

/// What a session received: notifications and requests, in order.
#[derive(Debug)]
enum Got {
    N(Notification),
    R(Request),
}

impl Got {
    fn method(&self) -> &str {
        match self {
            Self::N(n) => &n.method,
            Self::R(r) => &r.method,
        }
    }

    fn params(&self) -> Value {
        match self {
            Self::N(n) => n.params.clone().unwrap_or_default(),
            Self::R(r) => r.params.clone().unwrap_or_default(),
        }
    }
}

/// Receives until `stop` holds for the last message received.
async fn until(conn: &mut Connection, stop: impl Fn(&Got) -> bool) -> Vec<Got> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline.into(), conn.session.next_event())
            .await
            .expect("nothing in time")
            .expect("session ended");
        let g = match event {
            SessionEvent::Notification(n) => Got::N(n),
            SessionEvent::Request(r) => Got::R(r),
            SessionEvent::Ended(e) => panic!("session ended: {e:?}"),
            other => panic!("{other:?}"),
        };
        let done = stop(&g);
        got.push(g);
        if done {
            return got;
        }
    }
}

fn is(method: &'static str) -> impl Fn(&Got) -> bool {
    move |g| g.method() == method
}

fn final_turn(got: &[Got]) -> Turn {
    let last = got.last().unwrap();
    assert_eq!(last.method(), "turn/completed");
    serde_json::from_value(last.params()["turn"].clone()).unwrap()
}

fn command_status(turn: &Turn) -> String {
    match &turn.items[1] {
        ThreadItem::CommandExecution(c) => serde_json::to_value(c.status)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned(),
        other => panic!("{other:?}"),
    }
}

fn text(input: &str) -> Value {
    json!([{ "type": "text", "text": input, "text_elements": [] }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_17_to_26_threads_and_turns_survive_a_host_restart() {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let host_state = dir.path().join("host");
    let host = TestHost::start(relay.url(), "acme", &host_state, config(&project)).await;
    let (ctl, paired) = host.pair(&dir.path().join("ctl"), "ana-phone").await;
    let mut conn = open(&ctl, &paired).await;

    let opened = call(
        &conn,
        "thread/start",
        json!({"sandbox": "danger-full-access", "approvalPolicy": "never"}),
    )
    .await;
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["thread"]["cwd"], project.to_string_lossy().as_ref());
    assert_eq!(
        opened["tether"]["sandbox"]["enforced"],
        "danger-full-access"
    );
    // Section 5.3: Codex's ThreadStartResponse.
    assert_eq!(opened["sandbox"], json!({"type": "dangerFullAccess"}));
    assert_eq!(opened["approvalsReviewer"], "user");
    assert_eq!(opened["model"], "tether-test");
    assert_eq!(opened["thread"]["status"], json!({"type": "idle"}));
    assert_eq!(opened["thread"]["sessionId"], opened["thread"]["id"]);
    assert_eq!(opened["thread"]["preview"], "");
    assert!(opened["thread"]["projectId"].is_null());
    assert_eq!(opened["instructionSources"], json!([]));

    // CMD-22, CMD-24: the result, then the notifications in order.
    let started = call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("$ echo hello; exit 4")}),
    )
    .await;
    assert_eq!(started["turn"]["status"], "inProgress");
    assert_eq!(started["turn"]["items"], json!([]));
    let got = until(&mut conn, is("turn/completed")).await;
    let methods: Vec<&str> = got.iter().map(Got::method).collect();
    assert_eq!(
        methods,
        [
            "turn/started",
            "item/started",
            "item/completed",
            "item/started",
            "item/commandExecution/outputDelta",
            "item/completed",
            "turn/completed"
        ]
    );
    let turn = final_turn(&got);
    assert_eq!(turn.id, started["turn"]["id"].as_str().unwrap());
    match &turn.items[1] {
        ThreadItem::CommandExecution(c) => {
            assert_eq!(c.exit_code, Some(4));
            assert_eq!(c.aggregated_output.as_deref(), Some("hello\n"));
        }
        other => panic!("{other:?}"),
    }

    // CMD-20, CMD-21, CMD-18
    let list = call(&conn, "thread/list", json!({})).await;
    assert_eq!(list["data"][0]["id"], thread_id.as_str());
    assert_eq!(list["data"][0]["preview"], "$ echo hello; exit 4");
    // CMD-20: null on the last page.
    assert!(list["nextCursor"].is_null(), "{list}");
    assert_eq!(list["data"][0]["turns"], json!([]));
    let before: ThreadReadResult = serde_json::from_value(
        call(
            &conn,
            "thread/read",
            json!({"threadId": thread_id, "includeTurns": true}),
        )
        .await,
    )
    .unwrap();
    assert_eq!(before.thread.turns, vec![turn]);
    assert_eq!(
        call_err(&conn, "thread/read", json!({"threadId": "thr_0123"})).await,
        codes::THREAD_NOT_FOUND
    );
    assert_eq!(
        call_err(
            &conn,
            "turn/start",
            json!({"threadId": "thr_0123", "input": text("x")})
        )
        .await,
        codes::THREAD_NOT_FOUND
    );
    conn.close().await;
    host.stop().await;

    // A new host process on the same state directory.
    let host = TestHost::start(relay.url(), "acme", &host_state, config(&project)).await;
    let conn = open(&ctl, &paired).await;
    let after: ThreadReadResult = serde_json::from_value(
        call(
            &conn,
            "thread/read",
            json!({"threadId": thread_id, "includeTurns": true}),
        )
        .await,
    )
    .unwrap();
    assert_eq!(after, before, "no thread or history item lost");
    conn.close().await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_23_cmd_31_timeout_declines_and_interrupt_kills_the_command() {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let host = TestHost::start(
        relay.url(),
        "acme",
        &dir.path().join("host"),
        CommandConfig {
            approval_timeout: Duration::from_millis(500),
            ..config(&project)
        },
    )
    .await;
    let (ctl, paired) = host.pair(&dir.path().join("ctl"), "ana-phone").await;
    let mut conn = open(&ctl, &paired).await;
    let opened = call(
        &conn,
        "thread/start",
        json!({"sandbox": "danger-full-access", "approvalPolicy": "untrusted"}),
    )
    .await;
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    let asked = Instant::now();
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("$ echo unanswered")}),
    )
    .await;
    let got = until(&mut conn, is("turn/completed")).await;
    assert!(asked.elapsed() >= Duration::from_millis(500));
    let resolved = got
        .iter()
        .find(|g| g.method() == "serverRequest/resolved")
        .unwrap()
        .params();
    assert_eq!(resolved["tether"]["decision"], "decline");
    assert!(resolved["tether"].get("resolvedBy").is_none());
    assert!(got.iter().any(|g| g.method() == "tether/cancelled"));
    assert_eq!(command_status(&final_turn(&got)), "declined");

    // An interrupt while a pending approval waits: cancel (CMD-33).
    let turn = call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("$ sleep 100")}),
    )
    .await;
    let turn_id = turn["turn"]["id"].as_str().unwrap().to_owned();
    until(&mut conn, |g| matches!(g, Got::R(_))).await;
    // CMD-22: busy.
    assert_eq!(
        call_err(
            &conn,
            "turn/start",
            json!({"threadId": thread_id, "input": text("x")})
        )
        .await,
        codes::TURN_ALREADY_ACTIVE
    );
    call(
        &conn,
        "turn/interrupt",
        json!({"threadId": thread_id, "turnId": turn_id}),
    )
    .await;
    // CMD-23: turn/completed came before the answer.
    let mut seen = Vec::new();
    while let Some(SessionEvent::Notification(n)) = conn.session.try_next_event() {
        seen.push(n);
    }
    let last = seen.last().expect("turn/completed before the answer");
    assert_eq!(last.method, "turn/completed");
    let done: Turn = serde_json::from_value(last.params.clone().unwrap()["turn"].clone()).unwrap();
    assert_eq!(serde_json::to_value(done.status).unwrap(), "interrupted");
    assert_eq!(command_status(&done), "declined");
    assert!(seen.iter().any(|n| n.method == "serverRequest/resolved"
        && n.params.as_ref().unwrap()["tether"]["decision"] == "cancel"));
    conn.close().await;

    // A running command under `never`: its whole group is killed.
    let mut conn = open(&ctl, &paired).await;
    let opened = call(
        &conn,
        "thread/start",
        json!({"sandbox": "danger-full-access", "approvalPolicy": "never"}),
    )
    .await;
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    let turn = call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("$ sleep 100 & echo $!; sleep 100")}),
    )
    .await;
    let got = until(&mut conn, is("item/commandExecution/outputDelta")).await;
    let delta = got.last().unwrap().params();
    let bg: u32 = delta["delta"].as_str().unwrap().trim().parse().unwrap();
    assert!(Path::new(&format!("/proc/{bg}")).exists());
    call(
        &conn,
        "turn/interrupt",
        json!({"threadId": thread_id, "turnId": turn["turn"]["id"]}),
    )
    .await;
    let mut last = None;
    while let Some(SessionEvent::Notification(n)) = conn.session.try_next_event() {
        last = Some(n);
    }
    let last = last.unwrap();
    assert_eq!(last.method, "turn/completed");
    assert_eq!(last.params.unwrap()["turn"]["status"], "interrupted");
    let mut dead = false;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
        if stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('Z')
        {
            dead = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dead,
        "CMD-37: the background sleep {bg} survived the interrupt"
    );
    assert_eq!(
        call_err(
            &conn,
            "turn/interrupt",
            json!({"threadId": thread_id, "turnId": turn["turn"]["id"]})
        )
        .await,
        codes::TURN_NOT_FOUND
    );
    conn.close().await;
    host.stop().await;
}

fn checkout(root: &Path, agents: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("service")).unwrap();
    for (path, body) in agents {
        std::fs::write(root.join(path), body).unwrap();
    }
    root.join("service")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_52_to_54_handoff_between_two_hosts() {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let laptop = dir.path().join("laptop/acme");
    let builder = dir.path().join("builder/checkout");
    let cwd1 = checkout(&laptop, &[("AGENTS.md", "laptop\n")]);
    let cwd2 = checkout(
        &builder,
        &[
            ("AGENTS.md", "builder\n"),
            ("service/AGENTS.md", "service\n"),
        ],
    );
    let host1 = TestHost::start(relay.url(), "acme", &dir.path().join("h1"), config(&laptop)).await;
    let host2 = TestHost::start(
        relay.url(),
        "beta",
        &dir.path().join("h2"),
        config(dir.path()),
    )
    .await;
    let ctl_dir = dir.path().join("ctl");
    let (ctl, to1) = host1.pair(&ctl_dir, "ana-phone").await;
    drop(ctl);
    let (ctl, to2) = host2.pair(&ctl_dir, "ana-phone").await;
    let mut c1 = open(&ctl, &to1).await;
    let opened = call(
        &c1,
        "thread/start",
        json!({"cwd": cwd1, "sandbox": "danger-full-access", "approvalPolicy": "never"}),
    )
    .await;
    assert_eq!(
        opened["instructionSources"],
        json!([laptop.join("AGENTS.md")])
    );
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    call(
        &c1,
        "turn/start",
        json!({"threadId": thread_id, "input": text("$ echo on the laptop")}),
    )
    .await;
    until(&mut c1, is("turn/completed")).await;
    let bundle =
        call(&c1, "tether/thread/export", json!({"threadId": thread_id})).await["bundle"].clone();
    assert_eq!(bundle["version"], 1);
    assert_eq!(bundle["cwdRelative"], "service");
    assert_eq!(bundle["items"].as_array().unwrap().len(), 2);
    c1.close().await;

    let c2 = open(&ctl, &to2).await;
    // CMD-53, CMD-13
    let mut bad = bundle.clone();
    bad["version"] = 2.into();
    assert_eq!(
        call_err(&c2, "tether/thread/import", json!({"bundle": bad})).await,
        codes::INVALID_THREAD_BUNDLE
    );
    let mut bad = bundle.clone();
    bad["cwdRelative"] = "/etc".into();
    assert_eq!(
        call_err(&c2, "tether/thread/import", json!({"bundle": bad})).await,
        codes::INVALID_THREAD_BUNDLE
    );
    assert_eq!(
        call_err(&c2, "tether/thread/import", json!({"bundle": {"items": 5}})).await,
        codes::INVALID_PARAMS
    );
    let imported = call(
        &c2,
        "tether/thread/import",
        json!({"bundle": bundle, "projectRoot": builder}),
    )
    .await;
    let new_id = imported["thread"]["id"].as_str().unwrap();
    assert_ne!(new_id, thread_id, "CMD-54: a new id");
    assert_eq!(imported["thread"]["cwd"], cwd2.to_string_lossy().as_ref());
    assert_eq!(
        imported["instructionSources"],
        json!([builder.join("AGENTS.md"), builder.join("service/AGENTS.md")]),
        "AGENTS.md discovered again with this host's paths"
    );
    let read = call(
        &c2,
        "thread/read",
        json!({"threadId": new_id, "includeTurns": true}),
    )
    .await["thread"]
        .clone();
    let strip = |items: &Value| -> Vec<Value> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let mut i = i.clone();
                i.as_object_mut().unwrap().remove("id");
                i
            })
            .collect()
    };
    assert_eq!(strip(&read["turns"][0]["items"]), strip(&bundle["items"]));
    assert_eq!(read["turns"][0]["status"], "completed");
    c2.close().await;
    host1.stop().await;
    host2.stop().await;
}

/// The `tether` binary of this build, which provides `sandbox-exec` (built by
/// `cargo test --workspace`; absent when only this package was built).
fn tether_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("tether");
    path.is_file().then_some(path)
}

/// Runs one turn on `m` and returns its final state.
async fn run_turn(
    m: &mut tether_host::threads::ThreadManager,
    rx: &mut mpsc::UnboundedReceiver<tether_host::threads::TurnEvent>,
    session: tether_proto::link::SessionId,
    thread_id: &str,
    input: &str,
) -> Turn {
    m.turn_start(
        session,
        &serde_json::from_value(json!({"threadId": thread_id, "input": text(input)})).unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        while let Some((_, message)) = m.poll_outgoing() {
            if let tether_proto::cmd::Message::Notification(n) = message
                && n.method == "turn/completed"
            {
                return serde_json::from_value(n.params.unwrap()["turn"].clone()).unwrap();
            }
        }
        let event = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("turn did not complete in time")
            .unwrap();
        m.handle_event(event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_44_turn_commands_run_under_the_kernel_sandbox() {
    let Some(tether) = tether_binary() else {
        eprintln!("skipped: no tether binary next to this test (cargo test --workspace builds it)");
        return;
    };
    let launcher = tether_host::commands::SandboxLauncher::probe(tether, &[]);
    let state = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join(".git")).unwrap();
    // Outside both writable roots under workspace-write: the project and the commands'
    // own temporary directory (not the process's, which may hold this whole checkout).
    let commands_tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let outside = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let enforced: Vec<SandboxMode> = launcher.enforced.iter().map(|(m, _)| *m).collect();
    let config = std::sync::Arc::new(CommandConfig {
        sandbox: Some(launcher),
        default_project: Some(project.path().to_owned()),
        temp_dir: Some(commands_tmp.path().to_owned()),
        ..CommandConfig::default()
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut m = tether_host::threads::ThreadManager::new(state.path(), config, tx).unwrap();
    let s = tether_proto::link::SessionId([7; 8]);
    m.session_opened(s, "t".into());
    m.session_ready(s);
    for mode in [SandboxMode::WorkspaceWrite, SandboxMode::ReadOnly] {
        let start =
            serde_json::from_value(json!({"sandbox": mode.as_str(), "approvalPolicy": "never"}))
                .unwrap();
        if !enforced.contains(&mode) {
            // CMD-46: not enforced here and not configured to degrade.
            let e = m.thread_start(s, &start).unwrap_err();
            assert_eq!(e.rpc_code(), codes::SANDBOX_DENIED);
            eprintln!("{} is not enforced by this kernel: refused", mode.as_str());
            continue;
        }
        let opened = m.thread_start(s, &start).unwrap();
        assert_eq!(opened.report().unwrap().enforced, mode);
        assert!(!opened.report().unwrap().degraded);
        let inside = project.path().join(format!("inside-{}", mode.as_str()));
        let escaped = outside.path().join(format!("escaped-{}", mode.as_str()));
        let script = format!(
            "$ echo ok > {}; echo x > {}",
            inside.display(),
            escaped.display()
        );
        let turn = run_turn(&mut m, &mut rx, s, &opened.thread.id, &script).await;
        let ThreadItem::CommandExecution(c) = &turn.items[1] else {
            panic!("{turn:?}")
        };
        assert_ne!(c.exit_code, Some(0), "{c:?}");
        assert!(
            !escaped.exists(),
            "{} wrote outside the project",
            mode.as_str()
        );
        assert_eq!(
            inside.exists(),
            mode == SandboxMode::WorkspaceWrite,
            "{}: {c:?}",
            mode.as_str()
        );
        assert!(
            c.aggregated_output
                .as_deref()
                .unwrap_or_default()
                .contains("ermission denied")
                || c.aggregated_output
                    .as_deref()
                    .unwrap_or_default()
                    .contains("Read-only"),
            "{c:?}"
        );
    }
}

/// `CMD-75`, `SEC-13`: a device revoked a moment ago answers a pending approval with
/// `accept` before the revocation sweep closes its session. The answer is checked against
/// the state when it arrives: the command does not run, the session is closed
/// `NOT_AUTHORIZED`, and the approval stays pending for the devices still paired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_75_an_approval_answer_from_a_device_revoked_a_moment_ago_is_refused() {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let host = TestHost::start(
        relay.url(),
        "acme",
        &dir.path().join("host"),
        config(&project),
    )
    .await;
    let (bo, bo_host) = host.pair(&dir.path().join("bo"), "bo-laptop").await;
    let mut b = open(&bo, &bo_host).await;
    for round in 0..3 {
        let device = format!("phone-{round}");
        let (ctl, paired) = host.pair(&dir.path().join(&device), &device).await;
        let mut a = open(&ctl, &paired).await;
        let opened = call(
            &a,
            "thread/start",
            json!({"sandbox": "danger-full-access", "approvalPolicy": "untrusted"}),
        )
        .await;
        let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
        let marker = project.join(format!("ran-{round}"));
        call(
            &a,
            "turn/start",
            json!({"threadId": thread_id, "input": text(&format!("$ touch {}", marker.display()))}),
        )
        .await;
        let got = until(&mut a, |g| matches!(g, Got::R(_))).await;
        let Some(Got::R(ask)) = got.last() else {
            panic!()
        };
        // Revoked (as `tether host revoke` does, in another process), then answered at
        // once: well inside the one-second sweep.
        host.state.revoke(&device).unwrap();
        a.session
            .respond(ask.id.clone(), json!({"decision": "accept"}))
            .unwrap();
        let end = loop {
            match tokio::time::timeout(WAIT, a.session.next_event())
                .await
                .expect("the session was not closed")
            {
                Some(SessionEvent::Ended(end)) => break end,
                Some(_) => {}
                None => panic!("no end event"),
            }
        };
        match end {
            tether_controller::SessionEnd::Closed(info) => {
                assert_eq!(info.code, tether_proto::link::CloseCode::NOT_AUTHORIZED);
            }
            other => panic!("{other:?}"),
        }
        // Still pending: a device that is still paired gets it on resume (CMD-19) and
        // declines; the command never ran.
        call(&b, "thread/resume", json!({"threadId": thread_id})).await;
        let got = until(&mut b, |g| matches!(g, Got::R(_))).await;
        let Some(Got::R(ask)) = got.last() else {
            panic!()
        };
        b.session
            .respond(ask.id.clone(), json!({"decision": "decline"}))
            .unwrap();
        let rest = until(&mut b, is("turn/completed")).await;
        assert_eq!(command_status(&final_turn(&rest)), "declined");
        assert!(
            !marker.exists(),
            "round {round}: the revoked device's accept ran the command"
        );
    }
    b.close().await;
    host.stop().await;
}

/// SEC-15: a host restarted with lower caps refuses to resume or import a thread beyond
/// them (-32012, nothing created), and resumes one within them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_15_lowered_caps_refuse_resume_import_and_the_rerun() {
    let relay = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let host_state = dir.path().join("host");
    let host = TestHost::start(relay.url(), "acme", &host_state, config(&project)).await;
    let (ctl, paired) = host.pair(&dir.path().join("ctl"), "ana-phone").await;
    let conn = open(&ctl, &paired).await;
    let id = |v: Value| v["thread"]["id"].as_str().unwrap().to_owned();
    let wide = id(call(
        &conn,
        "thread/start",
        json!({"sandbox": "danger-full-access", "approvalPolicy": "never"}),
    )
    .await);
    let narrow = id(call(
        &conn,
        "thread/start",
        json!({"sandbox": "workspace-write", "approvalPolicy": "on-request"}),
    )
    .await);
    let bundle =
        call(&conn, "tether/thread/export", json!({"threadId": wide})).await["bundle"].clone();
    conn.close().await;
    host.stop().await;

    let capped = CommandConfig {
        max_sandbox: SandboxMode::WorkspaceWrite,
        max_approval_policy: tether_proto::cmd::types::ApprovalPolicy::OnRequest,
        ..config(&project)
    };
    let host = TestHost::start(relay.url(), "acme", &host_state, capped).await;
    let conn = open(&ctl, &paired).await;
    assert_eq!(
        call_err(&conn, "thread/resume", json!({"threadId": wide})).await,
        codes::SANDBOX_DENIED
    );
    assert_eq!(
        call_err(&conn, "tether/thread/import", json!({"bundle": bundle})).await,
        codes::SANDBOX_DENIED
    );
    let mut policy_beyond = bundle.clone();
    policy_beyond["sandbox"] = json!("workspace-write");
    assert_eq!(
        call_err(
            &conn,
            "tether/thread/import",
            json!({"bundle": policy_beyond})
        )
        .await,
        codes::SANDBOX_DENIED
    );
    let listed = call(&conn, "thread/list", json!({})).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");

    // Within the caps: resumed, as Codex's ThreadStartResponse (section 5.3).
    let resumed = call(&conn, "thread/resume", json!({"threadId": narrow})).await;
    assert_eq!(resumed["approvalPolicy"], "on-request");
    assert_eq!(
        resumed["tether"]["sandbox"]["requested"], "workspace-write",
        "{resumed}"
    );
    assert_eq!(resumed["thread"]["tether"]["sandbox"], "workspace-write");
    conn.close().await;
    host.stop().await;
}
