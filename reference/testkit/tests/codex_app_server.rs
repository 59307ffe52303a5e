//! The real Codex (`codex app-server`, JSON-RPC over JSON lines on stdio) driven offline
//! against the testkit's mock model: the wire flow a Tether host relays.
//!
//! Needs the Codex binary: `$TETHER_CODEX_BIN`, else `codex` on `PATH` (see
//! `tether_testkit::codex::codex_bin`); without it every test here fails saying so.
//! With `TETHER_CODEX_TRANSCRIPT=FILE` the approval test writes the lines it exchanged
//! with Codex to FILE, one JSON object a line: `{"dir": ">" or "<", "msg": LINE}` where
//! LINE is the message exactly as it went over stdio (the token-usage and rate-limit
//! notifications left out).
//!
//! Every wait is bounded by [`WAIT`]; a failure quotes the last lines of Codex's stderr
//! and what the mock model saw.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use tether_testkit::codex::{AppServer, CodexHome, Dir, codex_bin};
use tether_testkit::dirs::outside_tmp;
use tether_testkit::model::{MockModel, ModelTurn};

/// The bound of every wait on Codex (a turn takes well under a second here).
const WAIT: Duration = Duration::from_secs(30);

/// A Codex with a thread, against a mock model.
struct Run {
    model: MockModel,
    home: CodexHome,
    codex: AppServer,
    thread: String,
}

impl Run {
    /// Starts the mock with `script`, Codex, and a thread in the work directory with
    /// approval policy `untrusted` (every command asks) and sandbox `workspace-write`.
    async fn start(script: Vec<ModelTurn>) -> Self {
        let bin = codex_bin().unwrap_or_else(|e| panic!("{e}"));
        let model = MockModel::start(script).await.unwrap();
        let root = outside_tmp(env!("CARGO_TARGET_TMPDIR"));
        let home = CodexHome::new(&root, &model.base_url());
        let mut codex = AppServer::spawn(home.app_server(&bin))
            .unwrap_or_else(|e| panic!("cannot start {} app-server: {e}", bin.display()));
        let init = codex
            .initialize("tether-testkit", WAIT)
            .await
            .unwrap_or_else(|e| panic!("initialize: {e}"));
        assert!(init.get("userAgent").is_some(), "initialize result: {init}");
        let id = codex
            .request(
                "thread/start",
                json!({
                    "cwd": home.work(),
                    "approvalPolicy": "untrusted",
                    "sandbox": "workspace-write",
                }),
            )
            .await
            .unwrap();
        let result = codex
            .response(id, WAIT)
            .await
            .unwrap_or_else(|e| panic!("thread/start: {e}\n{}", model.summary()));
        let thread = result
            .pointer("/thread/id")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("thread/start result without thread.id: {result}"))
            .to_owned();
        Self {
            model,
            home,
            codex,
            thread,
        }
    }

    /// A failure message: `what`, the mock's account and Codex's stderr tail.
    fn fail(&self, what: &str) -> String {
        format!(
            "{what}\n{}\n{}",
            self.model.summary(),
            self.codex.failure("")
        )
    }

    /// Starts a turn with `text` and reads every message until `turn/completed`,
    /// answering each command approval with `decision`; returns the messages (the
    /// approval requests included, `turn/completed` last).
    async fn turn(&mut self, text: &str, decision: &str) -> Vec<Value> {
        let id = self
            .codex
            .request(
                "turn/start",
                json!({
                    "threadId": self.thread,
                    "input": [{"type": "text", "text": text, "text_elements": []}],
                }),
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = match self.codex.next(left).await {
                Ok(m) => m,
                Err(e) => panic!(
                    "{}",
                    self.fail(&format!("turn {text:?}: {e}; {} messages read", seen.len()))
                ),
            };
            if msg.get("id") == Some(&json!(id)) && msg.get("error").is_some() {
                panic!("{}", self.fail(&format!("turn/start failed: {msg}")));
            }
            let method = msg
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(req) = msg.get("id").filter(|_| !method.is_empty()) {
                assert_eq!(
                    method,
                    "item/commandExecution/requestApproval",
                    "{}",
                    self.fail(&format!("unexpected server request {msg}"))
                );
                self.codex
                    .respond(req.clone(), json!({ "decision": decision }))
                    .await
                    .unwrap();
            }
            if method == "error" {
                panic!("{}", self.fail(&format!("codex reported an error: {msg}")));
            }
            let done = method == "turn/completed";
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }

    async fn stop(self) {
        self.codex.shutdown(Duration::from_secs(5)).await;
    }
}

fn method(msg: &Value) -> &str {
    msg.get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The `params` of every message of `method`.
fn params<'a>(msgs: &'a [Value], name: &str) -> Vec<&'a Value> {
    msgs.iter()
        .filter(|m| method(m) == name)
        .filter_map(|m| m.get("params"))
        .collect()
}

/// The completed item of type `kind`, or a panic naming what was seen.
fn completed<'a>(msgs: &'a [Value], kind: &str) -> &'a Value {
    params(msgs, "item/completed")
        .into_iter()
        .filter_map(|p| p.get("item"))
        .find(|i| i.get("type").and_then(Value::as_str) == Some(kind))
        .unwrap_or_else(|| panic!("no completed {kind} item among {msgs:#?}"))
}

fn turn_status(msgs: &[Value]) -> &str {
    let last = msgs.last().unwrap();
    last.pointer("/params/turn/status")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("turn/completed without turn.status: {last}"))
}

/// Writes the transcript to `$TETHER_CODEX_TRANSCRIPT` if set.
fn write_transcript(codex: &AppServer) {
    let Some(path) = std::env::var_os("TETHER_CODEX_TRANSCRIPT") else {
        return;
    };
    let noise = ["thread/tokenUsage/updated", "account/rateLimits/updated"];
    let mut out = String::new();
    for (dir, line) in codex.transcript() {
        if noise
            .iter()
            .any(|n| line.contains(&format!("\"method\":\"{n}\"")))
        {
            continue;
        }
        let dir = if *dir == Dir::Sent { ">" } else { "<" };
        out.push_str(&format!("{{\"dir\":\"{dir}\",\"msg\":{line}}}\n"));
    }
    std::fs::write(&path, out).unwrap();
}

/// The model asks to run `echo hello-from-codex`; the test accepts; Codex runs it, shows
/// the output and completes the turn, and the command's output goes back to the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_command_runs_and_its_output_returns_to_the_model() {
    let mut run = Run::start(vec![
        ModelTurn::shell("echo hello-from-codex"),
        ModelTurn::text("The command printed hello-from-codex."),
    ])
    .await;
    let msgs = run.turn("say hello from codex", "accept").await;

    let approvals = params(&msgs, "item/commandExecution/requestApproval");
    assert_eq!(approvals.len(), 1, "{}", run.fail("one approval request"));
    let approval = approvals[0];
    let command = approval.get("command").and_then(Value::as_str).unwrap();
    assert!(command.contains("echo hello-from-codex"), "{approval}");
    assert_eq!(approval.get("threadId"), Some(&json!(run.thread)));
    let decisions = approval.get("availableDecisions").unwrap();
    assert!(
        decisions.as_array().unwrap().contains(&json!("accept")),
        "{approval}"
    );

    let item = completed(&msgs, "commandExecution");
    assert_eq!(item.get("status"), Some(&json!("completed")), "{item}");
    assert_eq!(item.get("exitCode"), Some(&json!(0)), "{item}");
    // A command this short may end before any delta is sent: then only the item's
    // aggregated output carries it.
    let deltas: String = params(&msgs, "item/commandExecution/outputDelta")
        .iter()
        .filter_map(|p| p.get("delta").and_then(Value::as_str))
        .collect();
    let aggregated = item
        .get("aggregatedOutput")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(
        deltas.contains("hello-from-codex") || aggregated.contains("hello-from-codex"),
        "no output: deltas {deltas:?}, aggregatedOutput {aggregated:?}"
    );
    assert_eq!(turn_status(&msgs), "completed");
    let message = completed(&msgs, "agentMessage");
    assert_eq!(
        message.get("text"),
        Some(&json!("The command printed hello-from-codex."))
    );

    let outputs = run.model.function_call_outputs();
    let call_id = item.get("id").and_then(Value::as_str).unwrap();
    assert!(
        outputs
            .iter()
            .any(|(id, out)| id == call_id && out.contains("hello-from-codex")),
        "the model did not get the command's output for {call_id}: {outputs:?}"
    );
    assert_eq!(run.model.requests().len(), 2, "{}", run.model.summary());
    assert!(run.model.errors().is_empty(), "{}", run.model.summary());
    write_transcript(&run.codex);
    run.stop().await;
}

/// A declined command is not run: its item ends `declined` and the file it would have
/// made is absent. The same thread then accepts the same kind of command, which does make
/// its file: the sandbox would have let the declined one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_command_does_not_run() {
    let mut run = Run::start(vec![
        ModelTurn::shell("touch declined-file"),
        ModelTurn::text("Not created."),
        ModelTurn::shell("touch accepted-file"),
        ModelTurn::text("Created."),
    ])
    .await;
    let declined = run.home.work().join("declined-file");
    let accepted = run.home.work().join("accepted-file");

    let msgs = run.turn("make a file", "decline").await;
    assert_eq!(
        params(&msgs, "item/commandExecution/requestApproval").len(),
        1,
        "{}",
        run.fail("one approval request")
    );
    let item = completed(&msgs, "commandExecution");
    assert_eq!(item.get("status"), Some(&json!("declined")), "{item}");
    assert!(
        params(&msgs, "item/commandExecution/outputDelta").is_empty(),
        "a declined command sent output"
    );
    assert_eq!(turn_status(&msgs), "completed");
    assert!(!declined.exists(), "the declined command ran");
    let call_id = item.get("id").and_then(Value::as_str).unwrap();
    assert!(
        run.model
            .function_call_outputs()
            .iter()
            .any(|(id, _)| id == call_id),
        "the model was not told of the declined call: {}",
        run.model.summary()
    );

    let msgs = run.turn("make another file", "accept").await;
    let item = completed(&msgs, "commandExecution");
    assert_eq!(item.get("status"), Some(&json!("completed")), "{item}");
    assert!(
        accepted.exists(),
        "{}",
        run.fail("the accepted command did not run")
    );
    assert!(!declined.exists(), "the declined command ran later");
    assert!(run.model.errors().is_empty(), "{}", run.model.summary());
    run.stop().await;
}

/// Text the model streams reaches the client as `item/agentMessage/delta`
/// notifications, in order, and the completed item holds the whole text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_text_arrives_as_agent_message_deltas() {
    let parts = ["Hello", ", ", "streamed ", "world", "."];
    let mut run = Run::start(vec![ModelTurn::streamed(parts)]).await;
    let msgs = run.turn("stream something", "accept").await;

    let message = completed(&msgs, "agentMessage");
    let item_id = message.get("id").unwrap();
    let deltas: Vec<&str> = params(&msgs, "item/agentMessage/delta")
        .iter()
        .filter(|p| p.get("itemId") == Some(item_id))
        .filter_map(|p| p.get("delta").and_then(Value::as_str))
        .collect();
    assert_eq!(deltas, parts, "{}", run.fail("the deltas, in order"));
    assert_eq!(message.get("text"), Some(&json!(parts.concat())));
    assert_eq!(turn_status(&msgs), "completed");
    assert!(run.model.errors().is_empty(), "{}", run.model.summary());
    run.stop().await;
}
