//! The host's `codex` agent backend (spec 5.14) end to end: the reference relay on
//! 127.0.0.1, `tether_host::run` with [`AgentBackend::Codex`], and a controller of
//! `tether-controller`; the real pinned Codex (0.169.0) plays the agent, offline against
//! the testkit's mock model, in a private `CODEX_HOME`.
//!
//! The Codex binary comes from `$TETHER_CODEX_BIN` (`export
//! TETHER_CODEX_BIN="$(ci/codex-install)"`) or `codex` on `PATH`; without one the test
//! fails saying so. Codex never runs in the system temporary directory: its home and the
//! thread's directory are under the target directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_controller::{
    Connection, ControllerState, LinkOptions, PairedHost, SessionEvent, connect, pair,
};
use tether_host::codex::CodexConfig;
use tether_host::state::StateDir;
use tether_host::{AgentBackend, CommandConfig};
use tether_proto::cmd::types::{ThreadItem, Turn, TurnStatus};
use tether_proto::cmd::{Notification, Request};
use tether_proto::time::UnixTime;
use tether_testkit::codex::{CodexHome, codex_bin};
use tether_testkit::dirs::outside_tmp;
use tether_testkit::inproc;
use tether_testkit::model::{MockModel, ModelTurn};

const CREDENTIAL: &str = "codex-agent-test-credential";
const WAIT: Duration = Duration::from_secs(60);

/// An in-process host whose agent is Codex.
struct TestHost {
    host: inproc::Host,
    state: StateDir,
}

impl TestHost {
    async fn start(url: &str, state: &Path, commands: CommandConfig) -> Self {
        let state = StateDir::open(state).unwrap();
        let mut options = inproc::host_options(url, "acme", CREDENTIAL, "codex-box");
        options.commands = commands;
        let mut host = inproc::Host::start(state.clone(), options);
        host.ready(WAIT).await.unwrap();
        Self { host, state }
    }

    async fn stop(self) {
        self.host.stop(WAIT).await.unwrap();
    }

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

/// What a session received, in order.
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

async fn call(conn: &Connection, method: &str, params: Value) -> Value {
    match conn.session.request(method, Some(params)).await {
        Ok(v) => v,
        Err(e) => panic!("{method}: {e}"),
    }
}

/// Receives until `stop` holds for the last message received.
async fn until(conn: &mut Connection, model: &MockModel, stop: impl Fn(&Got) -> bool) -> Vec<Got> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline.into(), conn.session.next_event())
            .await
            .unwrap_or_else(|_| panic!("nothing in time; got {got:#?}\n{}", model.summary()))
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

fn text(input: &str) -> Value {
    json!([{ "type": "text", "text": input, "text_elements": [] }])
}

/// The one `commandExecution` item of a turn.
fn command_item(turn: &Turn) -> &tether_proto::cmd::types::CommandExecutionItem {
    let commands: Vec<_> = turn
        .items
        .iter()
        .filter_map(|i| match i {
            ThreadItem::CommandExecution(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(commands.len(), 1, "{turn:#?}");
    commands[0]
}

fn methods(got: &[Got]) -> Vec<&str> {
    got.iter().map(Got::method).collect()
}

/// Position of the first message with `method` whose params satisfy `pred`.
fn position(got: &[Got], method: &str, pred: impl Fn(&Value) -> bool) -> usize {
    got.iter()
        .position(|g| g.method() == method && pred(&g.params()))
        .unwrap_or_else(|| panic!("no {method} among {:?}", methods(got)))
}

/// A turn whose command approval is accepted (it runs and makes a file), one whose
/// approval is declined (it does not run), a host restart (the Codex thread is resumed
/// from the thread's record), and a turn interrupted while its approval is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_plays_the_agent_of_tether_threads() {
    let bin = codex_bin().unwrap_or_else(|e| panic!("{e}"));
    let model = MockModel::start([
        ModelTurn::shell("echo start-output; sleep 1; touch accepted-file; echo end-output"),
        ModelTurn::text("Created the file."),
        ModelTurn::shell("touch declined-file"),
        ModelTurn::text("Not created."),
    ])
    .await
    .unwrap();
    let home = CodexHome::new(&outside_tmp(env!("CARGO_TARGET_TMPDIR")), &model.base_url());
    let work = std::fs::canonicalize(home.work()).unwrap();
    let mut codex =
        CodexConfig::new(&work)
            .bin(&bin)
            .private_home(home.home(), home.codex_home(), home.tmp());
    codex.request_timeout = WAIT;
    codex.handshake_timeout = WAIT;
    let commands = CommandConfig {
        allow_unsandboxed: true,
        default_project: Some(work.clone()),
        agent: AgentBackend::Codex(codex),
        ..CommandConfig::default()
    };
    let relay = inproc::relay(&[("acme", CREDENTIAL.as_bytes())]).await;
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(relay.url(), &dir.path().join("host"), commands.clone()).await;
    let (ctl, paired) = host.pair(&dir.path().join("ctl"), "ana-phone").await;
    let mut conn = connect(&ctl, &paired, &LinkOptions::default())
        .await
        .unwrap();
    // Spec 5.14: not the test agent.
    let caps = &conn.init.tether.capabilities;
    assert!(!caps.iter().any(|c| c == "agent.test"), "{caps:?}");
    assert!(caps.iter().any(|c| c == "thread.handoff"), "{caps:?}");

    let opened = call(
        &conn,
        "thread/start",
        json!({"cwd": work, "sandbox": "workspace-write", "approvalPolicy": "untrusted"}),
    )
    .await;
    assert_eq!(opened["model"], "codex", "{opened}");
    assert_eq!(opened["thread"]["modelProvider"], "codex", "{opened}");
    assert_eq!(
        opened["tether"]["sandbox"]["mechanism"], "codex",
        "{opened}"
    );
    assert_eq!(
        opened["tether"]["sandbox"]["enforced"], "workspace-write",
        "{opened}"
    );
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();

    // 1. Accepted: the controller sees the item start, the approval request, its
    //    resolution, the output, the item complete and the turn complete; the command ran.
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("make the file")}),
    )
    .await;
    let mut got = until(&mut conn, &model, |g| matches!(g, Got::R(_))).await;
    let Some(Got::R(ask)) = got.last() else {
        panic!()
    };
    assert_eq!(ask.method, "item/commandExecution/requestApproval");
    let asked = ask.params.clone().unwrap();
    assert_eq!(asked["threadId"], thread_id.as_str());
    assert!(
        asked["command"]
            .as_str()
            .unwrap()
            .contains("touch accepted-file"),
        "{asked}"
    );
    assert_eq!(
        asked["availableDecisions"],
        json!(["accept", "acceptForSession", "decline", "cancel"])
    );
    let item_id = asked["itemId"].as_str().unwrap().to_owned();
    assert!(item_id.starts_with("item_"), "{asked}");
    // CMD-28: the item started before the request.
    position(&got, "item/started", |p| {
        p["item"]["id"] == item_id.as_str()
    });
    conn.session
        .respond(ask.id.clone(), json!({"decision": "accept"}))
        .unwrap();
    got.extend(until(&mut conn, &model, is("turn/completed")).await);
    let resolved = position(&got, "serverRequest/resolved", |p| {
        p["tether"]["decision"] == "accept" && p["tether"]["resolvedBy"] == "ana-phone"
    });
    let output = position(&got, "item/commandExecution/outputDelta", |p| {
        p["itemId"] == item_id.as_str()
    });
    let done = position(&got, "item/completed", |p| {
        p["item"]["id"] == item_id.as_str()
    });
    assert!(resolved < output && output < done, "{:?}", methods(&got));
    let deltas: String = got
        .iter()
        .filter(|g| g.method() == "item/commandExecution/outputDelta")
        .map(|g| g.params()["delta"].as_str().unwrap().to_owned())
        .collect();
    // Codex streams what a command prints after its first moments (the rest is in the
    // completed item's aggregatedOutput, the authoritative output).
    assert!(deltas.contains("end-output"), "{deltas:?}");
    let turn = final_turn(&got);
    assert_eq!(turn.status, TurnStatus::Completed, "{turn:#?}");
    let command = command_item(&turn);
    assert_eq!(command.id, item_id);
    assert_eq!(command.exit_code, Some(0), "{command:#?}");
    assert!(
        command
            .aggregated_output
            .as_deref()
            .unwrap_or_default()
            .contains("start-output\nend-output"),
        "{command:#?}"
    );
    assert!(matches!(&turn.items[0], ThreadItem::UserMessage(_)));
    assert!(
        turn.items.iter().any(|i| matches!(i,
            ThreadItem::AgentMessage(m) if m.text == "Created the file.")),
        "{turn:#?}"
    );
    assert!(
        work.join("accepted-file").exists(),
        "the command did not run"
    );

    // 2. Declined: the command does not run, the turn goes on.
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("make another file")}),
    )
    .await;
    let got = until(&mut conn, &model, |g| matches!(g, Got::R(_))).await;
    let Some(Got::R(ask)) = got.last() else {
        panic!()
    };
    let declined_item = ask.params.as_ref().unwrap()["itemId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(declined_item, item_id, "CMD-25: a new item id");
    conn.session
        .respond(ask.id.clone(), json!({"decision": "decline"}))
        .unwrap();
    let got = until(&mut conn, &model, is("turn/completed")).await;
    position(&got, "serverRequest/resolved", |p| {
        p["tether"]["decision"] == "decline"
    });
    let turn = final_turn(&got);
    assert_eq!(turn.status, TurnStatus::Completed, "{turn:#?}");
    let status = serde_json::to_value(command_item(&turn).status).unwrap();
    assert_eq!(status, "declined", "{turn:#?}");
    assert!(
        !work.join("declined-file").exists(),
        "the declined command ran"
    );

    // The Codex thread is kept with the thread (spec 5.14).
    let file = dir
        .path()
        .join("host")
        .join("threads")
        .join(format!("{thread_id}.json"));
    let record: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let codex_thread = record["codexThreadId"].as_str().unwrap().to_owned();
    assert!(!codex_thread.is_empty());

    // 3. A restarted host resumes the Codex thread: the next turn goes on in it.
    drop(conn);
    host.stop().await;
    model.push([ModelTurn::text("Hello again.")]);
    let host = TestHost::start(relay.url(), &dir.path().join("host"), commands).await;
    let mut conn = connect(&ctl, &paired, &LinkOptions::default())
        .await
        .unwrap();
    call(&conn, "thread/resume", json!({"threadId": thread_id})).await;
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("hello")}),
    )
    .await;
    let got = until(&mut conn, &model, is("turn/completed")).await;
    let turn = final_turn(&got);
    assert_eq!(turn.status, TurnStatus::Completed, "{turn:#?}");
    assert!(
        turn.items.iter().any(|i| matches!(i,
            ThreadItem::AgentMessage(m) if m.text == "Hello again.")),
        "{turn:#?}"
    );
    let record: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(record["codexThreadId"], codex_thread.as_str(), "resumed");
    // The model saw the earlier turns: Codex resumed its thread.
    let last = model.requests().last().unwrap().body.to_string();
    assert!(last.contains("make the file"), "{last}");

    // 4. Interrupted while the approval is pending: cancel, the turn ends interrupted,
    //    the command never ran.
    model.push([
        ModelTurn::shell("touch interrupted-file"),
        ModelTurn::text("unused"),
    ]);
    let started = call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("one more")}),
    )
    .await;
    let turn_id = started["turn"]["id"].as_str().unwrap().to_owned();
    until(&mut conn, &model, |g| matches!(g, Got::R(_))).await;
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
    let turn: Turn = serde_json::from_value(last.params.clone().unwrap()["turn"].clone()).unwrap();
    assert_eq!(turn.status, TurnStatus::Interrupted, "{turn:#?}");
    assert!(seen.iter().any(|n| n.method == "serverRequest/resolved"
        && n.params.as_ref().unwrap()["tether"]["decision"] == "cancel"));
    assert!(!work.join("interrupted-file").exists());
    assert!(model.errors().is_empty(), "{}", model.summary());
    drop(conn);
    host.stop().await;
}

/// A stand-in for Codex (run as `/bin/sh app-server` in its directory): answers
/// `initialize`, `thread/start` and `thread/resume` (noting the latter in `resumed.log`),
/// answers `turn/start`, then exits with status 7 in the middle of the turn.
const EXITS_MID_TURN: &str = r#"
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*)
      echo "{\"id\":$id,\"result\":{\"userAgent\":\"stand-in/0\",\"codexHome\":\"/nonexistent\",\"platformFamily\":\"unix\",\"platformOs\":\"linux\"}}";;
    *'"method":"thread/start"'*)
      echo "{\"id\":$id,\"result\":{\"thread\":{\"id\":\"cx-thread\"}}}";;
    *'"method":"thread/resume"'*)
      echo resumed >> resumed.log
      echo "{\"id\":$id,\"result\":{\"thread\":{\"id\":\"cx-thread\"}}}";;
    *'"method":"turn/start"'*)
      echo "{\"id\":$id,\"result\":{\"turn\":{\"id\":\"cx-turn\"}}}"
      sleep 0.2
      echo "stand-in: gone" >&2
      exit 7;;
  esac
done
"#;

/// Codex exiting in the middle of a turn fails the turn with an item saying so; the next
/// turn starts Codex again, which resumes the thread's Codex thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exiting_mid_turn_fails_the_turn_and_the_next_turn_respawns_it() {
    let dir = tether_testkit::dirs::TempDir::new_in(
        &outside_tmp(env!("CARGO_TARGET_TMPDIR")),
        "codex-stand-in",
    );
    let work = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(work.join("app-server"), EXITS_MID_TURN).unwrap();
    let mut codex = CodexConfig::new(&work)
        .bin("/bin/sh")
        .private_home(&work, &work, &work);
    codex.handshake_timeout = Duration::from_secs(10);
    codex.request_timeout = Duration::from_secs(10);
    let commands = CommandConfig {
        allow_unsandboxed: true,
        default_project: Some(work.clone()),
        agent: AgentBackend::Codex(codex),
        ..CommandConfig::default()
    };
    let model = MockModel::start(Vec::new()).await.unwrap(); // only for `until`'s messages
    let relay = inproc::relay(&[("acme", CREDENTIAL.as_bytes())]).await;
    let state = tempfile::tempdir().unwrap();
    let host = TestHost::start(relay.url(), &state.path().join("host"), commands).await;
    let (ctl, paired) = host.pair(&state.path().join("ctl"), "ana-phone").await;
    let mut conn = connect(&ctl, &paired, &LinkOptions::default())
        .await
        .unwrap();
    let opened = call(
        &conn,
        "thread/start",
        json!({"cwd": work, "sandbox": "workspace-write", "approvalPolicy": "never"}),
    )
    .await;
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    for round in 0..2 {
        call(
            &conn,
            "turn/start",
            json!({"threadId": thread_id, "input": text("hello")}),
        )
        .await;
        let got = until(&mut conn, &model, is("turn/completed")).await;
        let turn = final_turn(&got);
        assert_eq!(turn.status, TurnStatus::Failed, "round {round}: {turn:#?}");
        let said = turn
            .items
            .iter()
            .find_map(|i| match i {
                ThreadItem::AgentMessage(m) => Some(m.text.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no item says why: {turn:#?}"));
        assert!(
            said.contains("codex app-server exited mid-turn") && said.contains('7'),
            "{said}"
        );
        // The stderr tail stays in the host's log.
        assert!(!said.contains("stand-in: gone"), "{said}");
    }
    let resumed = std::fs::read_to_string(work.join("resumed.log")).unwrap_or_default();
    assert_eq!(
        resumed.lines().count(),
        1,
        "the second turn resumed the Codex thread"
    );
    drop(conn);
    host.stop().await;
}

/// Spec 5.14: Codex enforces a `read-only` thread's sandbox on the commands it runs
/// without asking (policy `never`: the write fails); a command it asks approval for would
/// run outside its sandbox, so the approval request names `danger-full-access` (CMD-47).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_enforces_a_read_only_thread() {
    let bin = codex_bin().unwrap_or_else(|e| panic!("{e}"));
    let model = MockModel::start([
        ModelTurn::shell("touch read-only-file"),
        ModelTurn::text("Tried."),
        ModelTurn::shell("touch approved-file"),
        ModelTurn::text("Declined."),
    ])
    .await
    .unwrap();
    let home = CodexHome::new(&outside_tmp(env!("CARGO_TARGET_TMPDIR")), &model.base_url());
    let work = std::fs::canonicalize(home.work()).unwrap();
    let mut codex =
        CodexConfig::new(&work)
            .bin(&bin)
            .private_home(home.home(), home.codex_home(), home.tmp());
    codex.request_timeout = WAIT;
    codex.handshake_timeout = WAIT;
    let commands = CommandConfig {
        allow_unsandboxed: true,
        default_project: Some(work.clone()),
        agent: AgentBackend::Codex(codex),
        ..CommandConfig::default()
    };
    let relay = inproc::relay(&[("acme", CREDENTIAL.as_bytes())]).await;
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(relay.url(), &dir.path().join("host"), commands).await;
    let (ctl, paired) = host.pair(&dir.path().join("ctl"), "ana-phone").await;
    let mut conn = connect(&ctl, &paired, &LinkOptions::default())
        .await
        .unwrap();

    // Policy never: Codex runs the command in its sandbox without asking; it cannot write.
    let opened = call(
        &conn,
        "thread/start",
        json!({"cwd": work, "sandbox": "read-only", "approvalPolicy": "never"}),
    )
    .await;
    assert_eq!(opened["tether"]["sandbox"]["enforced"], "read-only");
    assert_eq!(opened["tether"]["sandbox"]["mechanism"], "codex");
    assert_eq!(opened["tether"]["sandbox"]["network"], "denied");
    assert_eq!(opened["sandbox"]["type"], "readOnly");
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("try to write")}),
    )
    .await;
    let got = until(&mut conn, &model, |g| {
        matches!(g, Got::R(_)) || g.method() == "turn/completed"
    })
    .await;
    let turn = final_turn(&got);
    assert_eq!(turn.status, TurnStatus::Completed, "{turn:#?}");
    // Codex 0.169.0 reports a command its sandbox stopped under policy `never` to the
    // model only (no commandExecution item); what the model got says why it failed.
    let outputs = model.function_call_outputs();
    assert!(
        outputs
            .iter()
            .any(|(_, out)| out.contains("Read-only file system")),
        "{outputs:?}"
    );
    assert!(
        !work.join("read-only-file").exists(),
        "a read-only thread's command wrote: {turn:#?}"
    );

    // Policy untrusted: the approval request says the command would run unsandboxed.
    let opened = call(
        &conn,
        "thread/start",
        json!({"cwd": work, "sandbox": "read-only", "approvalPolicy": "untrusted"}),
    )
    .await;
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("write, asking first")}),
    )
    .await;
    let got = until(&mut conn, &model, |g| matches!(g, Got::R(_))).await;
    let Some(Got::R(ask)) = got.last() else {
        panic!()
    };
    let asked = ask.params.clone().unwrap();
    assert_eq!(asked["tether"]["sandbox"], "danger-full-access", "{asked}");
    conn.session
        .respond(ask.id.clone(), json!({"decision": "decline"}))
        .unwrap();
    let got = until(&mut conn, &model, is("turn/completed")).await;
    let turn = final_turn(&got);
    let status = serde_json::to_value(command_item(&turn).status).unwrap();
    assert_eq!(status, "declined", "{turn:#?}");
    assert!(!work.join("approved-file").exists());
    assert!(model.errors().is_empty(), "{}", model.summary());
    drop(conn);
    host.stop().await;
}

/// CMD-23 and CMD-29 with Codex: `turn/interrupt` while an accepted command runs stops it
/// (the turn ends `interrupted`, the command never finishes); a `cancel` decision ends the
/// turn `interrupted` without running the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_turns_interrupted_while_running_and_by_cancel() {
    let bin = codex_bin().unwrap_or_else(|e| panic!("{e}"));
    let model = MockModel::start([
        ModelTurn::shell("sleep 3; touch late-file"),
        ModelTurn::shell("touch cancelled-file"),
    ])
    .await
    .unwrap();
    let home = CodexHome::new(&outside_tmp(env!("CARGO_TARGET_TMPDIR")), &model.base_url());
    let work = std::fs::canonicalize(home.work()).unwrap();
    let mut codex =
        CodexConfig::new(&work)
            .bin(&bin)
            .private_home(home.home(), home.codex_home(), home.tmp());
    codex.request_timeout = WAIT;
    codex.handshake_timeout = WAIT;
    let commands = CommandConfig {
        allow_unsandboxed: true,
        default_project: Some(work.clone()),
        agent: AgentBackend::Codex(codex),
        ..CommandConfig::default()
    };
    let relay = inproc::relay(&[("acme", CREDENTIAL.as_bytes())]).await;
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(relay.url(), &dir.path().join("host"), commands).await;
    let (ctl, paired) = host.pair(&dir.path().join("ctl"), "ana-phone").await;
    let mut conn = connect(&ctl, &paired, &LinkOptions::default())
        .await
        .unwrap();
    let opened = call(
        &conn,
        "thread/start",
        json!({"cwd": work, "sandbox": "workspace-write", "approvalPolicy": "untrusted"}),
    )
    .await;
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();

    // Interrupted while the accepted command runs.
    let started = call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("sleep, then write")}),
    )
    .await;
    let turn_id = started["turn"]["id"].as_str().unwrap().to_owned();
    let got = until(&mut conn, &model, |g| matches!(g, Got::R(_))).await;
    let Some(Got::R(ask)) = got.last() else {
        panic!()
    };
    conn.session
        .respond(ask.id.clone(), json!({"decision": "accept"}))
        .unwrap();
    until(&mut conn, &model, is("serverRequest/resolved")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let asked = Instant::now();
    call(
        &conn,
        "turn/interrupt",
        json!({"threadId": thread_id, "turnId": turn_id}),
    )
    .await;
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let mut seen = Vec::new();
    while let Some(SessionEvent::Notification(n)) = conn.session.try_next_event() {
        seen.push(n);
    }
    let last = seen
        .last()
        .expect("turn/completed before the answer (CMD-23)");
    assert_eq!(last.method, "turn/completed");
    let turn: Turn = serde_json::from_value(last.params.clone().unwrap()["turn"].clone()).unwrap();
    assert_eq!(turn.status, TurnStatus::Interrupted, "{turn:#?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !work.join("late-file").exists(),
        "the interrupted command went on"
    );

    // Cancel: the command does not run; the turn ends interrupted.
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("write, or cancel")}),
    )
    .await;
    let got = until(&mut conn, &model, |g| matches!(g, Got::R(_))).await;
    let Some(Got::R(ask)) = got.last() else {
        panic!()
    };
    conn.session
        .respond(ask.id.clone(), json!({"decision": "cancel"}))
        .unwrap();
    let got = until(&mut conn, &model, is("turn/completed")).await;
    let turn = final_turn(&got);
    assert_eq!(turn.status, TurnStatus::Interrupted, "{turn:#?}");
    assert!(
        !work.join("cancelled-file").exists(),
        "a cancelled command ran"
    );
    assert!(model.errors().is_empty(), "{}", model.summary());
    drop(conn);
    host.stop().await;
}

/// A Codex that cannot be started fails the turn with an item saying so (not where it
/// was looked for: host paths stay in the host's log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_that_cannot_start_fails_the_turn_saying_so() {
    let dir = tether_testkit::dirs::TempDir::new_in(
        &outside_tmp(env!("CARGO_TARGET_TMPDIR")),
        "codex-missing",
    );
    let work = std::fs::canonicalize(dir.path()).unwrap();
    let codex = CodexConfig::new(&work).bin(work.join("no-such-codex"));
    let commands = CommandConfig {
        allow_unsandboxed: true,
        default_project: Some(work.clone()),
        agent: AgentBackend::Codex(codex),
        ..CommandConfig::default()
    };
    let model = MockModel::start(Vec::new()).await.unwrap(); // only for `until`'s messages
    let relay = inproc::relay(&[("acme", CREDENTIAL.as_bytes())]).await;
    let state = tempfile::tempdir().unwrap();
    let host = TestHost::start(relay.url(), &state.path().join("host"), commands).await;
    let (ctl, paired) = host.pair(&state.path().join("ctl"), "ana-phone").await;
    let mut conn = connect(&ctl, &paired, &LinkOptions::default())
        .await
        .unwrap();
    let opened = call(&conn, "thread/start", json!({"approvalPolicy": "never"})).await;
    let thread_id = opened["thread"]["id"].as_str().unwrap().to_owned();
    call(
        &conn,
        "turn/start",
        json!({"threadId": thread_id, "input": text("hello")}),
    )
    .await;
    let got = until(&mut conn, &model, is("turn/completed")).await;
    let turn = final_turn(&got);
    assert_eq!(turn.status, TurnStatus::Failed, "{turn:#?}");
    let said = turn
        .items
        .iter()
        .find_map(|i| match i {
            ThreadItem::AgentMessage(m) => Some(m.text.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no item says why: {turn:#?}"));
    assert!(said.contains("cannot be started"), "{said}");
    assert!(!said.contains("no-such-codex"), "{said}");
    drop(conn);
    host.stop().await;
}
