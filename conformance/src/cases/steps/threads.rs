//! Steps of the thread, turn, approval, instruction and hand-off cases: a session ready
//! for threads, starting threads and turns with the test agent, reading until a turn
//! completes or asks for approval, the order rules of a turn, project files.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cases::steps::exec::fresh_dir_under;
use crate::context::Context;
use crate::host::{ChannelSession, HOST_WAIT, HostMessage, Res, check, hfail, session, skip};

/// An initialized session of the paired device, with a fresh directory on the host.
pub(crate) async fn threads_ready(
    cx: &Context,
    name: &str,
    agent: bool,
) -> Res<(ChannelSession, String)> {
    let mut s = session(cx, name).await?;
    s.initialize().await?;
    if agent && !s.has_capability(tether_proto::cmd::capability::AGENT_TEST) {
        s.close().await;
        return skip("the host does not offer the test agent (agent.test, CMD-59)");
    }
    if !s.has_capability(tether_proto::cmd::capability::COMMAND_EXEC) {
        s.close().await;
        return skip(
            "thread cases prepare directories with command/exec, which the host does not offer",
        );
    }
    let base = s.work_dir(cx)?;
    let dir = fresh_dir_under(&base);
    mkdirs(&mut s, &[&dir], &base).await?;
    Ok((s, dir))
}

/// Another initialized session of the paired device.
pub(crate) async fn second(cx: &Context, name: &str) -> Res<ChannelSession> {
    let mut s = session(cx, name).await?;
    s.initialize().await?;
    Ok(s)
}

/// Runs `sh -c script` in `cwd`, unsandboxed, and fails unless it exits 0.
pub(crate) async fn run_sh(s: &mut ChannelSession, script: &str, cwd: &str) -> Res<()> {
    let run = s
        .exec(
            json!({"command": ["sh", "-c", script], "cwd": cwd, "sandboxPolicy": {"type": "dangerFullAccess"}, "timeoutMs": 30000}),
            HOST_WAIT,
        )
        .await?;
    check(run.exit_code() == Some(0), || {
        format!("preparing the host with `{script}`: {}", run.answer)
    })
}

/// Makes `dirs` (`mkdir -p`) on the host.
pub(crate) async fn mkdirs(s: &mut ChannelSession, dirs: &[&str], cwd: &str) -> Res<()> {
    let mut script = String::from("mkdir -p");
    for d in dirs {
        script.push_str(&format!(" '{d}'"));
    }
    run_sh(s, &script, cwd).await
}

/// `thread/start` in `cwd` with `policy` (danger-full-access, so any host can enforce it);
/// returns the thread id and the result.
pub(crate) async fn start_thread(
    s: &mut ChannelSession,
    cwd: &str,
    policy: &str,
) -> Res<(String, Value)> {
    let r = s
        .call_ok(
            "thread/start",
            json!({"cwd": cwd, "sandbox": "danger-full-access", "approvalPolicy": policy}),
        )
        .await?;
    let id = r
        .pointer("/thread/id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            crate::host::Stop::Fail(format!("thread/start result without thread.id: {r}"))
        })?
        .to_owned();
    Ok((id, r))
}

/// `turn/start` with one text input; returns the turn id.
pub(crate) async fn start_turn(s: &mut ChannelSession, thread: &str, text: &str) -> Res<String> {
    let r = s
        .call_ok(
            "turn/start",
            json!({"threadId": thread, "input": [{"type": "text", "text": text, "text_elements": []}]}),
        )
        .await?;
    r.pointer("/turn/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| crate::host::Stop::Fail(format!("turn/start result without turn.id: {r}")))
}

/// Whether `m` is about `thread` (its `params.threadId`).
pub(crate) fn of_thread(m: &HostMessage, thread: &str) -> bool {
    m.params().get("threadId").and_then(Value::as_str) == Some(thread)
}

/// Reads until `turn/completed` of `thread`; returns the messages of that thread.
pub(crate) async fn until_completed(s: &mut ChannelSession, thread: &str) -> Res<Vec<HostMessage>> {
    let t = thread.to_owned();
    let msgs = s
        .read_until(Duration::from_secs(30), "turn/completed", move |m| {
            m.method() == Some("turn/completed") && of_thread(m, &t)
        })
        .await?;
    Ok(msgs.into_iter().filter(|m| of_thread(m, thread)).collect())
}

/// Reads until the approval request of `thread`; returns its id and params.
pub(crate) async fn until_approval(
    s: &mut ChannelSession,
    thread: &str,
) -> Res<(Value, Value, Vec<HostMessage>)> {
    let t = thread.to_owned();
    let msgs = s
        .read_until(
            Duration::from_secs(30),
            "item/commandExecution/requestApproval",
            move |m| {
                m.method() == Some("item/commandExecution/requestApproval") && of_thread(m, &t)
            },
        )
        .await?;
    let last = msgs
        .last()
        .cloned()
        .ok_or_else(|| crate::host::Stop::Fail("no message".to_owned()))?;
    let id = last.value.get("id").cloned().unwrap_or(Value::Null);
    check(!id.is_null(), || {
        format!("an approval request without id: {}", last.value)
    })?;
    Ok((id, last.params().clone(), msgs))
}

/// Reads until `serverRequest/resolved` of `thread`; returns it.
pub(crate) async fn until_resolved(s: &mut ChannelSession, thread: &str) -> Res<HostMessage> {
    let t = thread.to_owned();
    let msgs = s
        .read_until(
            Duration::from_secs(30),
            "serverRequest/resolved",
            move |m| m.method() == Some("serverRequest/resolved") && of_thread(m, &t),
        )
        .await?;
    msgs.last()
        .cloned()
        .ok_or_else(|| crate::host::Stop::Fail("no message".to_owned()))
}

/// The items of the last `turn/completed` among `msgs`.
pub(crate) fn final_item(msgs: &[HostMessage]) -> Option<&Value> {
    msgs.iter()
        .rev()
        .find(|m| m.method() == Some("turn/completed"))
        .and_then(|m| m.params().pointer("/turn/items"))
}

/// The `commandExecution` item of the last completed turn among `msgs`.
pub(crate) fn command_item(msgs: &[HostMessage]) -> Option<Value> {
    final_item(msgs)
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .find(|i| i.get("type") == Some(&json!("commandExecution")))
                .cloned()
        })
}

/// The status of the last `turn/completed` among `msgs`.
pub(crate) fn turn_status(msgs: &[HostMessage]) -> Option<String> {
    msgs.iter()
        .rev()
        .find(|m| m.method() == Some("turn/completed"))
        .and_then(|m| m.params().pointer("/turn/status"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Checks the order rules of CMD-24 on the messages of one turn (starting after the
/// `turn/start` answer, ending with `turn/completed`).
pub(crate) fn check_order(msgs: &[HostMessage], turn: &str) -> Res<()> {
    let mut started = false;
    let mut open: Option<String> = None;
    let mut items_done: Vec<Value> = Vec::new();
    let mut first_item = true;
    for (i, m) in msgs.iter().enumerate() {
        let method = m.method().unwrap_or("(answer)");
        let p = m.params();
        if method == "turn/started" {
            check(!started && i == 0, || {
                format!("turn/started at position {i} (CMD-24)")
            })?;
            check(p.pointer("/turn/id") == Some(&json!(turn)), || {
                format!("turn/started of another turn: {p}")
            })?;
            started = true;
            continue;
        }
        check(started, || format!("{method} before turn/started (CMD-24)"))?;
        match method {
            "item/started" => {
                check(open.is_none(), || {
                    format!("item/started while item {open:?} is not completed (CMD-24)")
                })?;
                let item = p.get("item").cloned().unwrap_or(Value::Null);
                // Section 5.4: Codex's item/started carries startedAtMs.
                check(p.get("startedAtMs").is_some_and(Value::is_u64), || {
                    format!("item/started without startedAtMs: {p}")
                })?;
                if first_item {
                    check(item.get("type") == Some(&json!("userMessage")), || {
                        format!("the first item is not the userMessage: {item}")
                    })?;
                    first_item = false;
                }
                open = item.get("id").and_then(Value::as_str).map(str::to_owned);
            }
            "item/commandExecution/outputDelta" => {
                // Section 5.4, CMD-40: a text delta of at most 16 384 bytes.
                check(
                    p.get("delta")
                        .and_then(Value::as_str)
                        .is_some_and(|d| d.len() <= 16_384),
                    || format!("an output delta without a text delta of <= 16384 bytes: {p}"),
                )?;
                let id = p.get("itemId").and_then(Value::as_str);
                check(open.is_some() && id == open.as_deref(), || {
                    format!(
                        "an output delta for item {id:?} while {open:?} is the started item (CMD-24)"
                    )
                })?;
            }
            "item/commandExecution/requestApproval" | "serverRequest/resolved" => {
                check(open.is_some(), || {
                    format!("{method} outside a started item (CMD-24)")
                })?;
            }
            "item/completed" => {
                check(p.get("completedAtMs").is_some_and(Value::is_u64), || {
                    format!("item/completed without completedAtMs: {p}")
                })?;
                let item = p.get("item").cloned().unwrap_or(Value::Null);
                let id = item.get("id").and_then(Value::as_str);
                check(open.is_some() && id == open.as_deref(), || {
                    format!("item/completed of {id:?} while {open:?} is the started item (CMD-24)")
                })?;
                items_done.push(item);
                open = None;
            }
            "turn/completed" => {
                check(i + 1 == msgs.len(), || {
                    "a message of the turn after turn/completed (CMD-24)".to_owned()
                })?;
                check(open.is_none(), || {
                    "turn/completed with an item still started".to_owned()
                })?;
                let items = p.pointer("/turn/items").cloned().unwrap_or(Value::Null);
                check(items == Value::Array(items_done.clone()), || {
                    format!(
                        "turn/completed items {items} differ from the item/completed ones (CMD-25)"
                    )
                })?;
            }
            "tether/cancelled" => {}
            other => return hfail(format!("unexpected {other} during the turn")),
        }
    }
    check(!msgs.is_empty(), || {
        "no notification of the turn".to_owned()
    })
}

/// Writes `files` (path, content) on the host.
pub(crate) async fn write_files(
    s: &mut ChannelSession,
    files: &[(String, String)],
    cwd: &str,
) -> Res<()> {
    for (path, content) in files {
        let run = s
            .exec(
                json!({"command": ["sh", "-c", "printf %s \"$1\" > \"$2\"", "sh", content, path], "cwd": cwd, "sandboxPolicy": {"type": "dangerFullAccess"}}),
                HOST_WAIT,
            )
            .await?;
        check(run.exit_code() == Some(0), || {
            format!("writing {path} on the host: {}", run.answer)
        })?;
    }
    Ok(())
}

/// The `instructionSources` of a `thread/start` or `thread/resume` result.
pub(crate) fn sources(r: &Value) -> Vec<String> {
    r.get("instructionSources")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A thread that session `ctl-a` started under `policy`, and a second session `ctl-b`
/// attached to it with `thread/resume` (`CMD-19`).
pub(crate) async fn shared_thread(
    cx: &Context,
    policy: &str,
) -> Res<(ChannelSession, ChannelSession, String)> {
    let (mut a, dir) = threads_ready(cx, "ctl-a", true).await?;
    let (thread, _) = start_thread(&mut a, &dir, policy).await?;
    let mut b = second(cx, "ctl-b").await?;
    b.call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    Ok((a, b, thread))
}
