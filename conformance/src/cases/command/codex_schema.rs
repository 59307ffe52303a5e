//! Host case of the messages shared with Codex's app-server protocol (`spec/05` section
//! 5.1.4, `CMD-79`).
//!
//! The runner checks every host message of every case against the pinned Codex schema as
//! it arrives ([`crate::codex_schema`]); this case makes sure a session goes through each
//! shared method and kind at least once — threads, a turn with an approval, an interrupt,
//! the thread reads, `command/exec` streamed, buffered and terminated — so that a host
//! whose messages stray from Codex's shapes fails here by name.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::case::{Case, case};
use crate::cases::steps::exec::exec_params;
use crate::cases::steps::threads::{
    start_thread, start_turn, threads_ready, until_approval, until_completed,
};
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, check};

/// The shared-schema case.
pub const CASES: &[Case] = &[SHARED_MESSAGES];

const SHARED_MESSAGES: Case = case! {
    id: "CMD-79/shared-messages",
    level: Must,
    timeout: 90 s,
    description: "every message of a method shared with Codex validates against the pinned Codex 0.169.0 schema: initialize, threads, a turn with an approval and an interrupt, command/exec",
    host: shared_messages,
};
async fn shared_messages(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    // A turn whose command asks first: item/started, the approval request, its answer,
    // serverRequest/resolved, the output delta, item/completed, turn/completed.
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    start_turn(&mut s, &thread, "$ echo shared-schema").await?;
    let (id, _, _) = until_approval(&mut s, &thread).await?;
    s.answer(&id, json!({"decision": "accept"})).await?;
    let msgs = until_completed(&mut s, &thread).await?;
    check(
        msgs.iter()
            .any(|m| m.method() == Some("serverRequest/resolved"))
            && msgs
                .iter()
                .any(|m| m.method() == Some("item/commandExecution/outputDelta")),
        || {
            "the accepted command's turn sent no serverRequest/resolved or no output delta"
                .to_owned()
        },
    )?;
    // A turn interrupted while its approval is pending.
    let turn = start_turn(&mut s, &thread, "$ echo never-run").await?;
    until_approval(&mut s, &thread).await?;
    s.call_ok(
        "turn/interrupt",
        json!({"threadId": thread, "turnId": turn}),
    )
    .await?;
    until_completed(&mut s, &thread).await?;
    // The thread's reads.
    s.call_ok("thread/list", json!({"limit": 1})).await?;
    s.call_ok(
        "thread/read",
        json!({"threadId": thread, "includeTurns": true}),
    )
    .await?;
    s.call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    // command/exec: streamed, buffered, and terminated.
    let streamed = s
        .exec(exec_params(&["echo", "streamed"], &dir), HOST_WAIT)
        .await?;
    check(streamed.exit_code() == Some(0), || {
        format!("a streamed command/exec: {}", streamed.answer)
    })?;
    let mut buffered = exec_params(&["echo", "buffered"], &dir);
    if let Some(o) = buffered.as_object_mut() {
        o.insert("streamStdoutStderr".to_owned(), json!(false));
    }
    let buffered = s.exec(buffered, HOST_WAIT).await?;
    check(
        buffered.answer.pointer("/result/stdout") == Some(&json!("buffered\n")),
        || {
            format!(
                "a command/exec with its output in the result: {}",
                buffered.answer
            )
        },
    )?;
    let id = s.fresh_id();
    let mut long = exec_params(&["sleep", "30"], &dir);
    if let Some(o) = long.as_object_mut() {
        o.insert("processId".to_owned(), json!("shared-schema-sleep"));
        o.insert("streamStdoutStderr".to_owned(), json!(true));
    }
    s.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "command/exec", "params": long}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.call_ok(
        "command/exec/terminate",
        json!({"processId": "shared-schema-sleep"}),
    )
    .await?;
    let killed = s.answer_to(&json!(id), HOST_WAIT).await?;
    check(
        killed.pointer("/result/exitCode") == Some(&json!(137)),
        || format!("the terminated command/exec: {killed}"),
    )?;
    // Every message above was checked as it arrived; a session that checked none would
    // mean the check itself is off.
    let checked = s.codex_checked();
    check(checked >= 20, || {
        format!("only {checked} host messages were checked against the Codex schema")
    })?;
    s.close().await;
    Ok(())
}
