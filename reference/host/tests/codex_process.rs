//! The host's connection to `codex app-server` (`tether_host::codex`).
//!
//! - Against the real pinned Codex (0.169.0), offline against the testkit's mock model:
//!   handshake, `thread/start`, a turn whose command approval is accepted and one whose
//!   approval is declined. The binary comes from `$TETHER_CODEX_BIN` (set it with
//!   `export TETHER_CODEX_BIN="$(ci/codex-install)"`) or `codex` on `PATH`; without one
//!   that test fails saying so.
//! - Against stand-ins for the process (small `sh` scripts): the exact handshake lines,
//!   a process that exits while a request waits, garbage and over-long lines, JSON-RPC
//!   errors, a request that times out, a slow taker of events (nothing dropped), a
//!   process that closes its stdout, one that exits before or never answers
//!   `initialize`, and the process group killed on drop and on a shutdown the process
//!   ignores.
//!
//! A stand-in is run as `/bin/sh app-server` in its private work directory, where the
//! script is the file `app-server` (so no freshly written file is executed, which can
//! fail with "text file busy" while other tests fork). Every wait is bounded.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tether_host::codex::{
    CLIENT_NAME, CodexAppServer, CodexConfig, CodexError, CodexEvent, CodexEvents, MalformedKind,
    RequestId,
};
use tether_testkit::codex::CodexHome;
use tether_testkit::dirs::{TempDir, outside_tmp};
use tether_testkit::model::{MockModel, ModelTurn};

/// The bound of each wait.
const WAIT: Duration = Duration::from_secs(30);

/// The next event, within `limit`.
async fn next_event(events: &mut CodexEvents, limit: Duration) -> CodexEvent {
    match tokio::time::timeout(limit, events.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("the event channel closed"),
        Err(_) => panic!("no event within {limit:?}"),
    }
}

/// Events until (and with) the first that `pred` accepts, within `limit` in all.
async fn events_until(
    events: &mut CodexEvents,
    limit: Duration,
    pred: impl Fn(&CodexEvent) -> bool,
) -> Vec<CodexEvent> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("the event channel closed; seen: {seen:#?}"),
            Err(_) => panic!("not within {limit:?}; seen: {seen:#?}"),
        };
        let done = pred(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

fn is_exited(ev: &CodexEvent) -> bool {
    matches!(ev, CodexEvent::Exited { .. })
}

/// Whether process `pid` exists and is no zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits (bounded) until `pid` is gone; false if it is still there.
async fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while alive(pid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Reads a pid a stand-in wrote to `file` (waiting for it, bounded).
async fn read_pid(file: &Path) -> u32 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} not written",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stand-in's directory: its work directory holds the script `app-server`.
struct StandIn {
    _dir: TempDir,
    work: PathBuf,
}

impl StandIn {
    /// `script` as the stand-in, after [`ANSWER_INIT`] if `answer_init`.
    fn new(script: &str, answer_init: bool) -> Self {
        let dir = TempDir::new_in(&outside_tmp(env!("CARGO_TARGET_TMPDIR")), "stand-in");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let prelude = if answer_init { ANSWER_INIT } else { "" };
        std::fs::write(work.join("app-server"), format!("{prelude}{script}")).unwrap();
        Self { _dir: dir, work }
    }

    /// `/bin/sh app-server` in the work directory, short time limits, a bare
    /// environment.
    fn config(&self) -> CodexConfig {
        let mut config = CodexConfig::new(&self.work)
            .bin("/bin/sh")
            .private_home(&self.work, &self.work, &self.work);
        config.handshake_timeout = Duration::from_secs(5);
        config.request_timeout = Duration::from_secs(10);
        config
    }

    fn file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// The lines the stand-in wrote to `name`, as JSON.
    fn json_lines(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.file(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }
}

/// The stand-in's handshake: logs the `initialize` request and the `initialized`
/// notification to `handshake.log` and answers `initialize` (id 1).
const ANSWER_INIT: &str = r#"
IFS= read -r line; printf '%s\n' "$line" > handshake.log
echo '{"id":1,"result":{"userAgent":"stand-in/0.0.0","codexHome":"/nonexistent/codex-home","platformFamily":"unix","platformOs":"linux","later":1}}'
IFS= read -r line; printf '%s\n' "$line" >> handshake.log
"#;

/// The handshake as the host writes it; a request that is waiting when the process
/// exits fails with the exit (status and stderr); `Exited` follows, once; later
/// requests fail the same way at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_fails_the_pending_request_and_is_reported_once() {
    let stand_in = StandIn::new(
        r#"
IFS= read -r line; printf '%s\n' "$line" > request.log
echo "stand-in: exiting with 3" >&2
exit 3
"#,
        true,
    );
    let (codex, mut events) = CodexAppServer::spawn(stand_in.config()).await.unwrap();
    let init = codex.initialize_result();
    assert_eq!(init.user_agent, "stand-in/0.0.0");
    assert_eq!(init.codex_home, "/nonexistent/codex-home");
    assert_eq!(
        (init.platform_family.as_str(), init.platform_os.as_str()),
        ("unix", "linux")
    );
    assert_eq!(init.extra.get("later"), Some(&json!(1)));

    let err = codex
        .request("slow/thing", json!({"x": 1}))
        .await
        .unwrap_err();
    match &err {
        CodexError::Exited {
            status,
            stderr_tail,
        } => {
            assert_eq!(status.and_then(|s| s.code()), Some(3), "{err}");
            assert!(stderr_tail.contains("stand-in: exiting with 3"), "{err}");
        }
        other => panic!("not Exited: {other}"),
    }
    assert!(err.to_string().contains("exiting with 3"), "{err}");
    // Ids count from 1: the request after initialize is 2; no "jsonrpc" member.
    assert_eq!(
        stand_in.json_lines("request.log"),
        vec![json!({"id": 2, "method": "slow/thing", "params": {"x": 1}})]
    );

    let handshake = stand_in.json_lines("handshake.log");
    assert_eq!(
        handshake,
        vec![
            json!({"id": 1, "method": "initialize", "params": {
                "clientInfo": {"name": CLIENT_NAME, "title": null,
                               "version": env!("CARGO_PKG_VERSION")},
                "capabilities": {"experimentalApi": false},
            }}),
            json!({"method": "initialized"}),
        ]
    );

    match next_event(&mut events, WAIT).await {
        CodexEvent::Exited {
            status,
            stderr_tail,
        } => {
            assert_eq!(status.and_then(|s| s.code()), Some(3));
            assert!(stderr_tail.contains("exiting with 3"), "{stderr_tail}");
        }
        other => panic!("not Exited: {other:?}"),
    }
    // Exited is the last event: the channel closes after it.
    assert_eq!(
        tokio::time::timeout(WAIT, events.recv()).await.unwrap(),
        None
    );
    assert_eq!(
        codex.exit_status().flatten().and_then(|s| s.code()),
        Some(3)
    );
    let again = tokio::time::timeout(WAIT, codex.request("again", Value::Null))
        .await
        .unwrap();
    assert!(matches!(again, Err(CodexError::Exited { .. })), "{again:?}");
    assert!(matches!(
        codex.notify("n", Value::Null).await,
        Err(CodexError::Exited { .. })
    ));
}

/// Lines that are no JSON-RPC message (not JSON, an array, an object with neither
/// method nor id, a line over 16 MiB, a response nobody waits for) are reported as
/// `Malformed` and skipped; the messages after them get through: a notification (with
/// its `emittedAtMs`), a server request (answered), the response to a waiting request,
/// a JSON-RPC error response. Closing stdin ends the stand-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lines_are_reported_and_skipped() {
    let stand_in = StandIn::new(
        r#"
IFS= read -r line
echo 'this is not json'
echo '[1,2,3]'
echo '{"foo":1}'
head -c 17000000 /dev/zero | tr '\000' 'a'; echo
echo '{"id":99,"result":{}}'
echo '{"method":"test/ping","params":{"n":1},"emittedAtMs":1765000000000}'
echo '{"id":0,"method":"item/commandExecution/requestApproval","params":{"command":"ls"}}'
IFS= read -r line; printf '%s\n' "$line" > answer.log
echo '{"id":2,"result":{"ok":true}}'
IFS= read -r line; printf '%s\n' "$line" >> answer.log
echo '{"id":3,"error":{"code":-32600,"message":"Invalid request: nope","data":{"reason":"r"}}}'
echo '{"id":1,"method":"item/commandExecution/requestApproval","params":{}}'
IFS= read -r line; printf '%s\n' "$line" >> answer.log
while IFS= read -r line; do :; done
echo "stand-in: stdin closed" >&2
"#,
        true,
    );
    let (codex, mut events) = CodexAppServer::spawn(stand_in.config()).await.unwrap();
    let codex = Arc::new(codex);
    let waiting = tokio::spawn({
        let codex = Arc::clone(&codex);
        async move { codex.request("test/wait", json!({})).await }
    });

    let seen = events_until(&mut events, WAIT, |ev| {
        matches!(ev, CodexEvent::Request { .. })
    })
    .await;
    let kinds: Vec<MalformedKind> = seen
        .iter()
        .filter_map(|ev| match ev {
            CodexEvent::Malformed { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            MalformedKind::NotJson,
            MalformedKind::NotMessage,
            MalformedKind::NotMessage,
            MalformedKind::TooLong,
            MalformedKind::UnknownResponse,
        ],
        "{seen:#?}"
    );
    let Some(CodexEvent::Malformed {
        detail, excerpt, ..
    }) = seen.get(3)
    else {
        panic!("{seen:#?}")
    };
    assert!(detail.contains("17000000"), "{detail}");
    assert_eq!(excerpt.len(), 200);
    assert_eq!(
        seen.get(5),
        Some(&CodexEvent::Notification {
            method: "test/ping".to_owned(),
            params: json!({"n": 1}),
            emitted_at_ms: Some(1_765_000_000_000),
        })
    );
    let Some(CodexEvent::Request { id, method, params }) = seen.get(6) else {
        panic!("{seen:#?}")
    };
    assert_eq!(
        (id, method.as_str(), params),
        (
            &RequestId::Integer(0),
            "item/commandExecution/requestApproval",
            &json!({"command": "ls"})
        )
    );
    codex
        .respond(id, json!({"decision": "accept"}))
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(answer.unwrap(), json!({"ok": true}));

    let err = codex
        .request("test/refused", Value::Null)
        .await
        .unwrap_err();
    match err {
        CodexError::Rpc {
            method,
            code,
            message,
            data,
        } => {
            assert_eq!(method, "test/refused");
            assert_eq!(code, -32600);
            assert_eq!(message, "Invalid request: nope");
            assert_eq!(data, Some(json!({"reason": "r"})));
        }
        other => panic!("not Rpc: {other}"),
    }
    let Some(CodexEvent::Request { id, .. }) = events_until(&mut events, WAIT, |ev| {
        matches!(ev, CodexEvent::Request { .. })
    })
    .await
    .pop() else {
        panic!("no second request")
    };
    codex
        .respond_error(&id, -32603, "not supported")
        .await
        .unwrap();

    let status = codex.shutdown(WAIT).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
    let rest = events_until(&mut events, WAIT, is_exited).await;
    let Some(CodexEvent::Exited { stderr_tail, .. }) = rest.last() else {
        panic!("{rest:#?}")
    };
    assert!(stderr_tail.contains("stdin closed"), "{stderr_tail}");
    assert_eq!(
        stand_in.json_lines("answer.log"),
        vec![
            json!({"id": 0, "result": {"decision": "accept"}}),
            json!({"id": 3, "method": "test/refused"}),
            json!({"id": 1, "error": {"code": -32603, "message": "not supported"}}),
        ]
    );
}

/// A stand-in that never answers `initialize`: `spawn` fails after the handshake limit
/// with the timeout error quoting its stderr, and the process is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_initialize_times_out_quoting_stderr() {
    let stand_in = StandIn::new(
        r#"
echo "stand-in: I will not answer" >&2
echo $$ > pid
exec sleep 1000
"#,
        false,
    );
    let mut config = stand_in.config();
    config.handshake_timeout = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    let err = CodexAppServer::spawn(config).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    match &err {
        CodexError::HandshakeTimeout { after, stderr_tail } => {
            assert_eq!(*after, Duration::from_secs(1));
            assert!(stderr_tail.contains("I will not answer"), "{err}");
        }
        other => panic!("not HandshakeTimeout: {other}"),
    }
    assert!(err.to_string().contains("I will not answer"), "{err}");
    let pid = read_pid(&stand_in.file("pid")).await;
    assert!(
        gone_within(pid, WAIT).await,
        "the stand-in {pid} still runs"
    );
}

/// A process that exits before answering `initialize` (a bad argument, say): `spawn`
/// fails with the exit, quoting its stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_before_initialize_fails_spawn_with_the_exit() {
    let stand_in = StandIn::new(
        r#"
echo "error: unexpected argument '--bogus'" >&2
exit 2
"#,
        false,
    );
    let err = CodexAppServer::spawn(stand_in.config().arg("--bogus"))
        .await
        .unwrap_err();
    match &err {
        CodexError::Exited {
            status,
            stderr_tail,
        } => {
            assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
            assert!(stderr_tail.contains("--bogus"), "{err}");
        }
        other => panic!("not Exited: {other}"),
    }
}

/// Dropping the connection kills the whole process group: the stand-in and the
/// `sleep` it started in the background. `Exited` still arrives (killed by SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_kills_the_process_group() {
    let stand_in = StandIn::new(
        r#"
sleep 1000 &
echo $! > grandchild
echo $$ > pid
while IFS= read -r line; do :; done
"#,
        true,
    );
    let (codex, mut events) = CodexAppServer::spawn(stand_in.config()).await.unwrap();
    let grandchild = read_pid(&stand_in.file("grandchild")).await;
    let pid = read_pid(&stand_in.file("pid")).await;
    assert_eq!(codex.pid(), Some(pid));
    assert!(alive(grandchild) && alive(pid));
    drop(codex);
    assert!(
        gone_within(grandchild, WAIT).await,
        "the grandchild {grandchild} still runs"
    );
    assert!(
        gone_within(pid, WAIT).await,
        "the stand-in {pid} still runs"
    );
    match next_event(&mut events, WAIT).await {
        CodexEvent::Exited { status, .. } => {
            assert_eq!(status.and_then(|s| s.signal()), Some(9), "{status:?}");
        }
        other => panic!("not Exited: {other:?}"),
    }
}

/// A process that does not end when its stdin closes is killed, with its group, when
/// the shutdown limit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_a_process_that_ignores_end_of_input() {
    let stand_in = StandIn::new(
        r#"
sleep 1000 &
echo $! > grandchild
exec sleep 1000
"#,
        true,
    );
    let (codex, mut events) = CodexAppServer::spawn(stand_in.config()).await.unwrap();
    let grandchild = read_pid(&stand_in.file("grandchild")).await;
    let started = tokio::time::Instant::now();
    let status = codex.shutdown(Duration::from_millis(500)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.signal()), Some(9), "{status:?}");
    assert!(
        gone_within(grandchild, WAIT).await,
        "{grandchild} still runs"
    );
    assert!(is_exited(&next_event(&mut events, WAIT).await));
    let later = codex.request("late", Value::Null).await;
    assert!(matches!(later, Err(CodexError::Exited { .. })), "{later:?}");
}

/// A request nobody answers times out; the answer that comes later is reported as a
/// response nobody waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_request_times_out() {
    let stand_in = StandIn::new(
        r#"
IFS= read -r line
IFS= read -r line
echo '{"id":2,"result":"late"}'
while IFS= read -r line; do :; done
"#,
        true,
    );
    let (codex, mut events) = CodexAppServer::spawn(stand_in.config()).await.unwrap();
    let err = codex
        .request_within("test/never", Value::Null, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CodexError::Timeout { method, after }
            if method == "test/never" && *after == Duration::from_millis(300)),
        "{err}"
    );
    codex.notify("test/go", Value::Null).await.unwrap();
    match next_event(&mut events, WAIT).await {
        CodexEvent::Malformed { kind, .. } => assert_eq!(kind, MalformedKind::UnknownResponse),
        other => panic!("{other:?}"),
    }
    assert_eq!(codex.shutdown(WAIT).await.and_then(|s| s.code()), Some(0));
}

/// A slow taker of events loses none: with the smallest channel (64), 1000
/// notifications written at once all arrive, in order, after the host waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_event_channel_holds_codex_back_and_drops_nothing() {
    let stand_in = StandIn::new(
        r#"
i=0
while [ $i -lt 1000 ]; do echo "{\"method\":\"test/n\",\"params\":$i}"; i=$((i+1)); done
IFS= read -r line
echo '{"id":2,"result":"after"}'
while IFS= read -r line; do :; done
"#,
        true,
    );
    let mut config = stand_in.config();
    config.event_capacity = 1;
    let (codex, mut events) = CodexAppServer::spawn(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..1000 {
        match next_event(&mut events, WAIT).await {
            CodexEvent::Notification { method, params, .. } => {
                assert_eq!((method.as_str(), params), ("test/n", json!(n)));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        codex.request("test/r", Value::Null).await.unwrap(),
        json!("after")
    );
    assert_eq!(codex.shutdown(WAIT).await.and_then(|s| s.code()), Some(0));
}

/// A process that closes its stdout but keeps running can answer nothing more: it is
/// killed, and the waiting request fails with the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stdout_ends_the_connection() {
    let stand_in = StandIn::new(
        r#"
IFS= read -r line
echo "stand-in: closing stdout" >&2
exec 1>&-
exec sleep 1000
"#,
        true,
    );
    let (codex, mut events) = CodexAppServer::spawn(stand_in.config()).await.unwrap();
    let err = codex.request("test/x", Value::Null).await.unwrap_err();
    match &err {
        CodexError::Exited {
            status,
            stderr_tail,
        } => {
            assert_eq!(status.and_then(|s| s.signal()), Some(9), "{err}");
            assert!(stderr_tail.contains("closing stdout"), "{err}");
        }
        other => panic!("not Exited: {other}"),
    }
    assert!(is_exited(&next_event(&mut events, WAIT).await));
}

/// The real Codex, offline against the mock model: handshake, a thread in a private
/// work directory (approval policy `untrusted`), a turn whose command is approved (its
/// approval request is an event; the answer lets it run), then one whose command is
/// declined (not run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_codex_turn_with_accepted_and_declined_approvals() {
    let model = MockModel::start([
        ModelTurn::shell("echo hello-from-codex"),
        ModelTurn::text("The command printed hello-from-codex."),
        ModelTurn::shell("touch declined-file"),
        ModelTurn::text("Not created."),
    ])
    .await
    .unwrap();
    let home = CodexHome::new(&outside_tmp(env!("CARGO_TARGET_TMPDIR")), &model.base_url());
    let mut config =
        CodexConfig::new(home.work()).private_home(home.home(), home.codex_home(), home.tmp());
    config.request_timeout = WAIT;
    config.handshake_timeout = WAIT;
    let (codex, mut events) = CodexAppServer::spawn(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let init = codex.initialize_result().clone();
    assert!(init.user_agent.contains("0.169.0"), "{init:?}");
    assert!(
        Path::new(&init.codex_home).ends_with("codex-home"),
        "{init:?}"
    );
    assert_eq!(init.platform_family, "unix");

    let started = codex
        .request(
            "thread/start",
            json!({
                "cwd": home.work(),
                "approvalPolicy": "untrusted",
                "sandbox": "workspace-write",
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("thread/start: {e}\n{}", model.summary()));
    let thread = started
        .pointer("/thread/id")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no thread id: {started}"))
        .to_owned();

    let turn = |text: &'static str| {
        json!({
            "threadId": thread,
            "input": [{"type": "text", "text": text, "text_elements": []}],
        })
    };

    // Accepted.
    let msgs = run_turn(&codex, &mut events, turn("say hello"), "accept", &model).await;
    let approvals = requests(&msgs);
    assert_eq!(approvals.len(), 1, "{msgs:#?}");
    let (id, params) = approvals[0];
    assert_eq!(
        id,
        &RequestId::Integer(0),
        "Codex's request ids count from 0"
    );
    assert!(
        params
            .get("command")
            .and_then(Value::as_str)
            .is_some_and(|c| c.contains("echo hello-from-codex")),
        "{params}"
    );
    assert_eq!(params.get("threadId"), Some(&json!(thread)));
    let item = completed(&msgs, "commandExecution");
    assert_eq!(item.get("status"), Some(&json!("completed")), "{item}");
    assert_eq!(item.get("exitCode"), Some(&json!(0)), "{item}");
    assert_eq!(turn_status(&msgs), "completed");
    assert!(
        msgs.iter().all(|ev| !matches!(
            ev,
            CodexEvent::Notification {
                emitted_at_ms: None,
                ..
            }
        )),
        "a notification without emittedAtMs"
    );
    assert!(
        msgs.iter()
            .all(|ev| !matches!(ev, CodexEvent::Malformed { .. })),
        "{msgs:#?}"
    );

    // Declined.
    let msgs = run_turn(&codex, &mut events, turn("make a file"), "decline", &model).await;
    let approvals = requests(&msgs);
    assert_eq!(approvals.len(), 1, "{msgs:#?}");
    assert_eq!(approvals[0].0, &RequestId::Integer(1));
    let item = completed(&msgs, "commandExecution");
    assert_eq!(item.get("status"), Some(&json!("declined")), "{item}");
    assert_eq!(turn_status(&msgs), "completed");
    assert!(!home.work().join("declined-file").exists(), "it ran");
    assert!(model.errors().is_empty(), "{}", model.summary());

    let status = codex.shutdown(WAIT).await;
    assert!(status.is_some(), "{}", codex.stderr_tail(40));
    let rest = events_until(&mut events, WAIT, is_exited).await;
    assert!(is_exited(rest.last().unwrap()));
    assert!(codex.exit_status().is_some());
}

/// Starts a turn and takes events until `turn/completed`, answering every command
/// approval with `decision`; returns the events.
async fn run_turn(
    codex: &CodexAppServer,
    events: &mut CodexEvents,
    params: Value,
    decision: &str,
    model: &MockModel,
) -> Vec<CodexEvent> {
    let result = codex
        .request("turn/start", params)
        .await
        .unwrap_or_else(|e| panic!("turn/start: {e}\n{}", model.summary()));
    assert!(result.pointer("/turn/id").is_some(), "{result}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) => ev,
            other => panic!(
                "turn: {other:?} after {} events\n{}\n{}",
                seen.len(),
                model.summary(),
                codex.stderr_tail(40)
            ),
        };
        match &ev {
            CodexEvent::Request { id, method, .. } => {
                assert_eq!(method, "item/commandExecution/requestApproval", "{ev:?}");
                codex
                    .respond(id, json!({ "decision": decision }))
                    .await
                    .unwrap();
            }
            CodexEvent::Notification { method, params, .. } if method == "error" => {
                panic!("codex reported an error: {params}\n{}", model.summary())
            }
            CodexEvent::Exited { .. } => panic!("codex exited: {ev:?}"),
            _ => {}
        }
        let done =
            matches!(&ev, CodexEvent::Notification { method, .. } if method == "turn/completed");
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

fn requests(events: &[CodexEvent]) -> Vec<(&RequestId, &Value)> {
    events
        .iter()
        .filter_map(|ev| match ev {
            CodexEvent::Request { id, params, .. } => Some((id, params)),
            _ => None,
        })
        .collect()
}

/// The completed item of type `kind`.
fn completed<'a>(events: &'a [CodexEvent], kind: &str) -> &'a Value {
    events
        .iter()
        .filter_map(|ev| match ev {
            CodexEvent::Notification { method, params, .. } if method == "item/completed" => {
                params.get("item")
            }
            _ => None,
        })
        .find(|item| item.get("type").and_then(Value::as_str) == Some(kind))
        .unwrap_or_else(|| panic!("no completed {kind} item among {events:#?}"))
}

fn turn_status(events: &[CodexEvent]) -> &str {
    match events.last() {
        Some(CodexEvent::Notification { params, .. }) => params
            .pointer("/turn/status")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("turn/completed without turn.status: {params}")),
        other => panic!("{other:?}"),
    }
}
