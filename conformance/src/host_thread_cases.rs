//! Host cases for threads, turns, approvals, instructions and hand-off (`spec/05`
//! sections 5.3 to 5.5, 5.8, 5.9, 5.11). Turn cases need the deterministic test agent
//! (`agent.test`, `CMD-59`) and are skipped on a host without it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::case::{Case, CaseResult, Level, Outcome, TargetKind};
use crate::context::Context;
use crate::host::{
    ChannelSession, HOST_WAIT, HostMessage, Res, check, hfail, host_target, paired, session, skip,
};
use crate::link::random_bytes;

async fn wrap<F, Fut>(cx: Arc<Context>, f: F) -> CaseResult<Outcome>
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: Future<Output = Res<()>>,
{
    match f(cx).await {
        Ok(()) => Ok(Outcome::Pass),
        Err(stop) => stop.outcome(),
    }
}

macro_rules! tcase {
    ($id:literal, $req:literal, $secs:expr, $desc:literal, $body:ident) => {
        tcase!(@ $id, $req, $secs, false, $desc, $body)
    };
    (slow $id:literal, $req:literal, $secs:expr, $desc:literal, $body:ident) => {
        tcase!(@ $id, $req, $secs, true, $desc, $body)
    };
    (@ $id:literal, $req:literal, $secs:expr, $slow:expr, $desc:literal, $body:ident) => {
        Case {
            id: $id,
            requirement: $req,
            level: Level::Must,
            description: $desc,
            timeout: Duration::from_secs($secs),
            target: TargetKind::Host,
            slow: $slow,
            exclusive: false,
            body: |cx| Box::pin(wrap(cx, $body)),
        }
    };
}

/// The thread, turn, approval, instruction and hand-off cases, in spec order.
pub fn catalogue() -> Vec<Case> {
    vec![
        tcase!(
            "CMD-17/thread-start",
            "CMD-17",
            30,
            "thread/start creates a thread in cwd; a missing or relative cwd gets -32602",
            thread_start
        ),
        tcase!(
            "CMD-18/thread-not-found",
            "CMD-18",
            30,
            "thread/read, thread/resume, turn/start and thread/export of an unknown thread get -32013",
            thread_not_found
        ),
        tcase!(
            "CMD-19/resume-attaches",
            "CMD-19",
            60,
            "a session that resumes a thread gets its pending approval and its next notifications",
            thread_resume
        ),
        tcase!(
            "CMD-20/list-order-and-pages",
            "CMD-20",
            60,
            "thread/list is most recent first, pages with nextCursor, and refuses bad cursors and limits",
            thread_list
        ),
        tcase!(
            "CMD-21/read",
            "CMD-21",
            60,
            "thread/read returns the thread with its turns and their items",
            thread_read
        ),
        tcase!(
            "CMD-22/turn-already-active",
            "CMD-22",
            60,
            "turn/start answers inProgress with no items; a second turn/start meanwhile gets -32018",
            turn_active
        ),
        tcase!(
            "CMD-23/interrupt",
            "CMD-23",
            60,
            "turn/interrupt of an unknown turn gets -32014; of the running one, turn/completed interrupted comes first",
            turn_interrupt
        ),
        tcase!(
            "CMD-24/notification-order",
            "CMD-24",
            60,
            "a turn's notifications come in the order of CMD-24, items never overlapping",
            turn_order
        ),
        tcase!(
            "CMD-25/unique-ids-final-states",
            "CMD-25",
            60,
            "turn and item ids are unique; turn/completed carries every item in its final state",
            turn_ids
        ),
        tcase!(
            "CMD-26/every-attached-session",
            "CMD-26",
            60,
            "two attached sessions get the same notifications in the same order, an unattached one none",
            turn_fanout
        ),
        tcase!(
            "CMD-27/policies",
            "CMD-27",
            60,
            "untrusted asks before running, never does not ask, and nothing runs before an accept",
            approval_policies
        ),
        tcase!(
            "CMD-28/approval-request",
            "CMD-28",
            60,
            "the approval request follows item/started and names the thread, turn, item, command, cwd and sandbox",
            approval_request
        ),
        tcase!(
            "CMD-29/decisions",
            "CMD-29",
            90,
            "accept runs, decline skips and goes on, cancel interrupts, acceptForSession stops asking",
            approval_decisions
        ),
        tcase!(
            "CMD-30/first-answer-wins",
            "CMD-30",
            60,
            "the first answer resolves for every session; an error response is not an answer",
            approval_first_wins
        ),
        tcase!(slow "CMD-31/approval-time-limit", "CMD-31", 400,
            "an unanswered approval resolves as decline after the host's time limit", approval_timeout),
        tcase!(
            "CMD-32/late-answer",
            "CMD-32",
            60,
            "a late answer changes nothing and gets serverRequest/resolved with rejectedAnswer -32015",
            approval_late
        ),
        tcase!(
            "CMD-33/interrupt-cancels-approval",
            "CMD-33",
            60,
            "turn/interrupt with an approval pending resolves it as cancel without resolvedBy",
            approval_interrupted
        ),
        tcase!(
            "CMD-48/project-root",
            "CMD-48",
            60,
            "the project root is the nearest ancestor of cwd holding .git",
            agents_root
        ),
        tcase!(
            "CMD-49/instruction-order",
            "CMD-49",
            60,
            "AGENTS.override.md wins over AGENTS.md, empty files are skipped, root first",
            agents_order
        ),
        tcase!(
            "CMD-50/instruction-cap",
            "CMD-50",
            60,
            "files past the 32768-byte cap are left out",
            agents_cap
        ),
        tcase!(
            "CMD-51/instruction-sources",
            "CMD-51",
            60,
            "instructionSources are absolute host paths, also after thread/resume",
            agents_sources
        ),
        tcase!(
            "CMD-52/export",
            "CMD-52",
            60,
            "thread/export gives a version-1 bundle with cwdRelative and every item",
            export_bundle
        ),
        tcase!(
            "CMD-53/invalid-bundle",
            "CMD-53",
            60,
            "bundles of version 2 or with cwdRelative .., absolute, empty names, \\ or : get -32017",
            import_invalid
        ),
        tcase!(
            "CMD-54/import",
            "CMD-54",
            60,
            "thread/import creates a new thread under projectRoot with the items as one completed turn",
            import_bundle
        ),
        tcase!(
            "CMD-59/test-agent",
            "CMD-59",
            60,
            "the test agent echoes text and proposes \"$ \" commands unchanged, run with sh -c",
            test_agent
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// helpers

fn error_code(answer: &Value) -> Option<i64> {
    answer.pointer("/error/code").and_then(Value::as_i64)
}

fn expect_error(answer: &Value, code: i64, what: &str) -> Res<()> {
    check(error_code(answer) == Some(code), || {
        format!("{what}: expected error {code}, got {answer}")
    })
}

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
    let dir = format!(
        "{}/tether-conf-{}",
        base.trim_end_matches('/'),
        hex::encode(random_bytes::<6>())
    );
    mkdirs(&mut s, &[&dir], &base).await?;
    Ok((s, dir))
}

/// Another initialized session of the paired device.
pub(crate) async fn second(cx: &Context, name: &str) -> Res<ChannelSession> {
    let mut s = session(cx, name).await?;
    s.initialize().await?;
    Ok(s)
}

pub(crate) async fn run_sh(s: &mut ChannelSession, script: &str, cwd: &str) -> Res<()> {
    let run = s
        .exec(
            json!({"command": ["sh", "-c", script], "cwd": cwd, "sandbox": "danger-full-access", "timeoutMs": 30000}),
            HOST_WAIT,
        )
        .await?;
    check(run.exit_code() == Some(0), || {
        format!("preparing the host with `{script}`: {}", run.answer)
    })
}

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
            json!({"threadId": thread, "input": [{"type": "text", "text": text}]}),
        )
        .await?;
    r.pointer("/turn/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| crate::host::Stop::Fail(format!("turn/start result without turn.id: {r}")))
}

fn of_thread(m: &HostMessage, thread: &str) -> bool {
    m.params().get("threadId").and_then(Value::as_str) == Some(thread)
}

/// Reads until `turn/completed` of `thread`; returns the messages of that thread.
async fn until_completed(s: &mut ChannelSession, thread: &str) -> Res<Vec<HostMessage>> {
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

async fn until_resolved(s: &mut ChannelSession, thread: &str) -> Res<HostMessage> {
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

fn final_item(msgs: &[HostMessage]) -> Option<&Value> {
    msgs.iter()
        .rev()
        .find(|m| m.method() == Some("turn/completed"))
        .and_then(|m| m.params().pointer("/turn/items"))
}

fn command_item(msgs: &[HostMessage]) -> Option<Value> {
    final_item(msgs)
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .find(|i| i.get("type") == Some(&json!("commandExecution")))
                .cloned()
        })
}

fn turn_status(msgs: &[HostMessage]) -> Option<String> {
    msgs.iter()
        .rev()
        .find(|m| m.method() == Some("turn/completed"))
        .and_then(|m| m.params().pointer("/turn/status"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Checks the order rules of CMD-24 on the messages of one turn (starting after the
/// `turn/start` answer, ending with `turn/completed`).
fn check_order(msgs: &[HostMessage], turn: &str) -> Res<()> {
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
                if first_item {
                    check(item.get("type") == Some(&json!("userMessage")), || {
                        format!("the first item is not the userMessage: {item}")
                    })?;
                    first_item = false;
                }
                open = item.get("id").and_then(Value::as_str).map(str::to_owned);
            }
            "item/commandExecution/outputDelta" => {
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
            "notifications/cancelled" => {}
            other => return hfail(format!("unexpected {other} during the turn")),
        }
    }
    check(!msgs.is_empty(), || {
        "no notification of the turn".to_owned()
    })
}

// ---------------------------------------------------------------------------------------
// threads

async fn thread_start(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let (id, r) = start_thread(&mut s, &dir, "never").await?;
    check(id.len() <= 64 && !id.is_empty(), || {
        format!("thread id {id:?} is not 1-64 bytes")
    })?;
    let t = r.get("thread").cloned().unwrap_or(Value::Null);
    check(t.get("cwd") == Some(&json!(dir)), || {
        format!("thread cwd {:?}, asked {dir:?}", t.get("cwd"))
    })?;
    check(t.get("status") == Some(&json!("idle")), || {
        format!("a new thread's status: {:?}", t.get("status"))
    })?;
    check(
        t.get("approvalPolicy") == Some(&json!("never"))
            && t.get("sandbox") == Some(&json!("danger-full-access")),
        || format!("the thread's policy and sandbox: {t}"),
    )?;
    for m in ["createdAt", "updatedAt"] {
        check(t.get(m).is_some_and(Value::is_u64), || {
            format!("thread.{m} is not Unix seconds: {t}")
        })?;
    }
    check(
        r.get("sandbox").is_some() && r.get("instructionSources").is_some_and(Value::is_array),
        || format!("thread/start result without sandbox or instructionSources: {r}"),
    )?;
    let (other, _) = start_thread(&mut s, &dir, "never").await?;
    check(other != id, || {
        "two threads got the same id (CMD-25)".to_owned()
    })?;
    for (what, cwd) in [
        ("a missing directory", format!("{dir}/missing")),
        ("a relative path", "relative/dir".to_owned()),
    ] {
        let a = s
            .call(
                "thread/start",
                json!({"cwd": cwd, "sandbox": "danger-full-access"}),
            )
            .await?;
        expect_error(&a, -32602, &format!("thread/start with {what}"))?;
    }
    s.close().await;
    Ok(())
}

async fn thread_not_found(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    s.initialize().await?;
    let missing = "thr_does_not_exist_0000";
    for (m, p) in [
        ("thread/read", json!({"threadId": missing})),
        ("thread/resume", json!({"threadId": missing})),
        (
            "turn/start",
            json!({"threadId": missing, "input": [{"type": "text", "text": "hi"}]}),
        ),
    ] {
        let a = s.call(m, p).await?;
        expect_error(&a, -32013, &format!("{m} of an unknown thread"))?;
    }
    if s.has_capability(tether_proto::cmd::capability::THREAD_HANDOFF) {
        let a = s
            .call("thread/export", json!({"threadId": missing}))
            .await?;
        expect_error(&a, -32013, "thread/export of an unknown thread")?;
    }
    s.close().await;
    Ok(())
}

async fn thread_resume(cx: Arc<Context>) -> Res<()> {
    let (mut a, dir) = threads_ready(&cx, "ctl-a", true).await?;
    let (thread, _) = start_thread(&mut a, &dir, "untrusted").await?;
    start_turn(&mut a, &thread, "$ echo resumed").await?;
    let _ = until_approval(&mut a, &thread).await?;
    let mut b = second(&cx, "ctl-b").await?;
    let r = b
        .call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    check(r.pointer("/thread/id") == Some(&json!(thread)), || {
        format!("thread/resume result: {r}")
    })?;
    // CMD-19, CMD-28: the pending approval is sent to the session that attached.
    let (id_b, params, _) = until_approval(&mut b, &thread).await?;
    check(
        params.get("command") == Some(&json!("echo resumed")),
        || format!("approval sent on resume: {params}"),
    )?;
    b.answer(&id_b, json!({"decision": "accept"})).await?;
    let msgs = until_completed(&mut b, &thread).await?;
    check(turn_status(&msgs).as_deref() == Some("completed"), || {
        "the turn did not complete after the resumer's accept".to_owned()
    })?;
    a.close().await;
    b.close().await;
    Ok(())
}

async fn thread_list(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(start_thread(&mut s, &dir, "never").await?.0);
    }
    let r = s.call_ok("thread/list", json!({"limit": 1000})).await?;
    let data = r
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in &mine {
        check(data.iter().any(|d| d.get("id") == Some(&json!(t))), || {
            format!("thread {t} missing from thread/list")
        })?;
    }
    for w in data.windows(2) {
        let (Some(a), Some(b)) = (w.first(), w.get(1)) else {
            continue;
        };
        let (ua, ub) = (
            a.get("updatedAt").and_then(Value::as_u64),
            b.get("updatedAt").and_then(Value::as_u64),
        );
        let (ia, ib) = (
            a.get("id").and_then(Value::as_str),
            b.get("id").and_then(Value::as_str),
        );
        check(ua > ub || (ua == ub && ia < ib), || {
            format!(
                "thread/list order: {ia:?} ({ua:?}) before {ib:?} ({ub:?}); most recent first, ties by id"
            )
        })?;
    }
    // Paging: limit 1, then the cursor.
    let p1 = s.call_ok("thread/list", json!({"limit": 1})).await?;
    let c = p1
        .get("nextCursor")
        .and_then(Value::as_str)
        .map(str::to_owned);
    check(
        p1.get("data")
            .and_then(Value::as_array)
            .is_some_and(|d| d.len() == 1)
            && c.is_some(),
        || format!("thread/list with limit 1 of several threads: {p1}"),
    )?;
    let p2 = s
        .call_ok("thread/list", json!({"limit": 1, "cursor": c}))
        .await?;
    check(p2.pointer("/data/0/id") != p1.pointer("/data/0/id"), || {
        "the second page repeats the first".to_owned()
    })?;
    for (what, params) in [
        (
            "a cursor the host never gave",
            json!({"cursor": "not-a-cursor-\u{1}"}),
        ),
        ("limit 0", json!({"limit": 0})),
        ("limit 1001", json!({"limit": 1001})),
    ] {
        let a = s.call("thread/list", params).await?;
        expect_error(&a, -32602, &format!("thread/list with {what}"))?;
    }
    s.close().await;
    Ok(())
}

async fn thread_read(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    let turn = start_turn(&mut s, &thread, "hello there").await?;
    let msgs = until_completed(&mut s, &thread).await?;
    let r = s
        .call_ok("thread/read", json!({"threadId": thread}))
        .await?;
    check(r.pointer("/thread/id") == Some(&json!(thread)), || {
        format!("thread/read: {r}")
    })?;
    let turns = r
        .get("turns")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let last = turns.last().cloned().unwrap_or(Value::Null);
    check(last.get("id") == Some(&json!(turn)), || {
        format!("thread/read turns: {turns:?}")
    })?;
    check(last.get("items") == final_item(&msgs), || {
        format!(
            "thread/read items {:?} differ from turn/completed's",
            last.get("items")
        )
    })?;
    s.close().await;
    Ok(())
}

async fn turn_active(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    let r = s
        .call_ok(
            "turn/start",
            json!({"threadId": thread, "input": [{"type": "text", "text": "$ echo busy"}]}),
        )
        .await?;
    check(
        r.pointer("/turn/status") == Some(&json!("inProgress"))
            && r.pointer("/turn/items") == Some(&json!([])),
        || format!("turn/start result: {r}"),
    )?;
    let (id, _, _) = until_approval(&mut s, &thread).await?;
    let a = s
        .call(
            "turn/start",
            json!({"threadId": thread, "input": [{"type": "text", "text": "again"}]}),
        )
        .await?;
    expect_error(&a, -32018, "turn/start while a turn is in progress")?;
    let a = s
        .call("turn/start", json!({"threadId": thread, "input": []}))
        .await?;
    check(matches!(error_code(&a), Some(-32602 | -32018)), || {
        format!("turn/start with no input: {a}")
    })?;
    s.answer(&id, json!({"decision": "decline"})).await?;
    until_completed(&mut s, &thread).await?;
    let a = s
        .call("turn/start", json!({"threadId": thread, "input": []}))
        .await?;
    expect_error(
        &a,
        -32602,
        "turn/start with an empty input on an idle thread",
    )?;
    s.close().await;
    Ok(())
}

async fn turn_interrupt(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    let a = s
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": "turn_nothing"}),
        )
        .await?;
    expect_error(&a, -32014, "turn/interrupt of an unknown turn")?;
    let turn = start_turn(&mut s, &thread, "$ sleep 30").await?;
    let t = thread.clone();
    s.read_until(
        Duration::from_secs(20),
        "the command's item/started",
        move |m| {
            m.method() == Some("item/started")
                && of_thread(m, &t)
                && m.params().pointer("/item/type") == Some(&json!("commandExecution"))
        },
    )
    .await?;
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"turn/interrupt","params":{"threadId": thread, "turnId": turn}}))
        .await?;
    let msgs = s
        .read_until(Duration::from_secs(15), "the turn/interrupt answer", |m| {
            m.method().is_none() && m.value.get("id") == Some(&json!(id))
        })
        .await?;
    let answer = msgs.last().map(|m| m.value.clone()).unwrap_or(Value::Null);
    check(answer.get("result") == Some(&json!({})), || {
        format!("turn/interrupt answer: {answer}")
    })?;
    let completed = msgs
        .iter()
        .find(|m| m.method() == Some("turn/completed") && of_thread(m, &thread));
    let Some(c) = completed else {
        return hfail("turn/interrupt was answered before turn/completed (CMD-23)");
    };
    check(
        c.params().pointer("/turn/status") == Some(&json!("interrupted")),
        || {
            format!(
                "the interrupted turn completed as {:?}",
                c.params().pointer("/turn/status")
            )
        },
    )?;
    let a = s
        .call(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
        )
        .await?;
    expect_error(&a, -32014, "turn/interrupt of a finished turn")?;
    s.close().await;
    Ok(())
}

async fn turn_order(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    for text in ["plain words", "$ echo one; echo two >&2"] {
        let turn = start_turn(&mut s, &thread, text).await?;
        let msgs = until_completed(&mut s, &thread).await?;
        check_order(&msgs, &turn)?;
    }
    // With an approval inside the item.
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    let turn = start_turn(&mut s, &thread, "$ echo approved").await?;
    let (id, _, mut before) = until_approval(&mut s, &thread).await?;
    s.answer(&id, json!({"decision": "accept"})).await?;
    before.retain(|m| of_thread(m, &thread));
    let mut all = before;
    all.extend(until_completed(&mut s, &thread).await?);
    check_order(&all, &turn)?;
    s.close().await;
    Ok(())
}

async fn turn_ids(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    let mut turns = Vec::new();
    let mut items: Vec<String> = Vec::new();
    for text in ["first", "$ echo second"] {
        turns.push(start_turn(&mut s, &thread, text).await?);
        let msgs = until_completed(&mut s, &thread).await?;
        for item in final_item(&msgs)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            check(!items.contains(&id), || {
                format!("item id {id:?} used twice in one thread")
            })?;
            items.push(id);
            if item.get("type") == Some(&json!("commandExecution")) {
                check(
                    item.get("status") == Some(&json!("completed"))
                        && item.get("exitCode") == Some(&json!(0)),
                    || format!("the command item's final state: {item}"),
                )?;
            }
        }
    }
    check(turns.first() != turns.get(1), || {
        "two turns got the same id".to_owned()
    })?;
    s.close().await;
    Ok(())
}

async fn turn_fanout(cx: Arc<Context>) -> Res<()> {
    let (mut a, dir) = threads_ready(&cx, "ctl-a", true).await?;
    let (thread, _) = start_thread(&mut a, &dir, "never").await?;
    let mut b = second(&cx, "ctl-b").await?;
    b.call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    let mut c = second(&cx, "ctl-c").await?;
    c.call_ok("thread/list", json!({})).await?;
    start_turn(&mut a, &thread, "$ echo fan out").await?;
    let ma = until_completed(&mut a, &thread).await?;
    let mb = until_completed(&mut b, &thread).await?;
    let notes = |v: &[HostMessage]| -> Vec<Value> {
        v.iter()
            .filter(|m| m.value.get("id").is_none())
            .map(|m| m.value.clone())
            .collect()
    };
    check(notes(&ma) == notes(&mb), || {
        "the two attached sessions got different notifications or orders (CMD-26)".to_owned()
    })?;
    c.expect_silence(Duration::from_millis(500))
        .await
        .map_err(|e| match e {
            crate::host::Stop::Fail(r) => crate::host::Stop::Fail(format!(
                "an unattached session got a thread's notification: {r}"
            )),
            other => other,
        })?;
    a.close().await;
    b.close().await;
    c.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// approvals

async fn approval_policies(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let marker = format!("{dir}/ran");
    // never: runs without asking.
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    start_turn(&mut s, &thread, &format!("$ touch '{marker}-never'")).await?;
    let msgs = until_completed(&mut s, &thread).await?;
    check(
        !msgs
            .iter()
            .any(|m| m.method() == Some("item/commandExecution/requestApproval")),
        || "policy never asked for approval".to_owned(),
    )?;
    check(
        command_item(&msgs).and_then(|i| i.get("status").cloned()) == Some(json!("completed")),
        || "under never the command did not run".to_owned(),
    )?;
    // untrusted: asks, and nothing runs before the answer.
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    start_turn(&mut s, &thread, &format!("$ touch '{marker}-untrusted'")).await?;
    let (id, _, _) = until_approval(&mut s, &thread).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut probe = second(&cx, "probe").await?;
    let ran = probe
        .exec(json!({"command": ["test", "-e", format!("{marker}-untrusted")], "cwd": dir, "sandbox": "danger-full-access"}), HOST_WAIT)
        .await?;
    probe.close().await;
    check(ran.exit_code() == Some(1), || {
        "under untrusted the command ran before the approval was answered".to_owned()
    })?;
    s.answer(&id, json!({"decision": "decline"})).await?;
    let msgs = until_completed(&mut s, &thread).await?;
    check(
        command_item(&msgs).and_then(|i| i.get("status").cloned()) == Some(json!("declined")),
        || "a declined command did not end declined".to_owned(),
    )?;
    s.close().await;
    Ok(())
}

async fn approval_request(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    let turn = start_turn(&mut s, &thread, "$ echo ask me").await?;
    let (id, p, before) = until_approval(&mut s, &thread).await?;
    let started = before.iter().find(|m| {
        m.method() == Some("item/started")
            && m.params().pointer("/item/type") == Some(&json!("commandExecution"))
    });
    let Some(started) = started else {
        return hfail("the approval request came before the command's item/started (CMD-28)");
    };
    check(
        started.params().pointer("/item/status") == Some(&json!("inProgress")),
        || {
            format!(
                "the command item started as {:?}",
                started.params().pointer("/item/status")
            )
        },
    )?;
    let item_id = started.params().pointer("/item/id").cloned();
    check(
        p.get("turnId") == Some(&json!(turn)) && p.get("itemId").cloned() == item_id,
        || format!("approval params {p} do not name turn {turn} and item {item_id:?}"),
    )?;
    check(
        p.get("command") == Some(&json!("echo ask me")) && p.get("cwd") == Some(&json!(dir)),
        || format!("approval params command/cwd: {p}"),
    )?;
    check(p.get("sandbox").and_then(Value::as_str).is_some(), || {
        format!("approval params without sandbox: {p}")
    })?;
    s.answer(&id, json!({"decision": "decline"})).await?;
    until_completed(&mut s, &thread).await?;
    s.close().await;
    Ok(())
}

async fn decide(
    s: &mut ChannelSession,
    thread: &str,
    text: &str,
    decision: &str,
) -> Res<Vec<HostMessage>> {
    start_turn(s, thread, text).await?;
    let (id, _, _) = until_approval(s, thread).await?;
    s.answer(&id, json!({"decision": decision})).await?;
    until_completed(s, thread).await
}

async fn approval_decisions(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    let msgs = decide(&mut s, &thread, "$ echo accepted", "accept").await?;
    let item = command_item(&msgs).unwrap_or(Value::Null);
    check(
        item.get("status") == Some(&json!("completed"))
            && item.get("aggregatedOutput") == Some(&json!("accepted\n")),
        || format!("after accept: {item}"),
    )?;
    let msgs = decide(&mut s, &thread, "$ echo declined", "decline").await?;
    check(
        command_item(&msgs).and_then(|i| i.get("status").cloned()) == Some(json!("declined"))
            && turn_status(&msgs).as_deref() == Some("completed"),
        || {
            "after decline the item is not declined or the turn did not go on to completed"
                .to_owned()
        },
    )?;
    let msgs = decide(&mut s, &thread, "$ echo cancelled", "cancel").await?;
    check(
        command_item(&msgs).and_then(|i| i.get("status").cloned()) == Some(json!("declined"))
            && turn_status(&msgs).as_deref() == Some("interrupted"),
        || "after cancel the item is not declined or the turn is not interrupted".to_owned(),
    )?;
    decide(&mut s, &thread, "$ echo trusted", "acceptForSession").await?;
    start_turn(&mut s, &thread, "$ echo trusted").await?;
    let msgs = until_completed(&mut s, &thread).await?;
    check(
        !msgs
            .iter()
            .any(|m| m.method() == Some("item/commandExecution/requestApproval")),
        || "after acceptForSession the same command was asked about again".to_owned(),
    )?;
    check(
        command_item(&msgs).and_then(|i| i.get("status").cloned()) == Some(json!("completed")),
        || "after acceptForSession the same command did not run".to_owned(),
    )?;
    s.close().await;
    Ok(())
}

async fn device_name(cx: &Context) -> Res<String> {
    Ok(paired(cx).await?.device.name)
}

async fn approval_first_wins(cx: Arc<Context>) -> Res<()> {
    let (mut a, dir) = threads_ready(&cx, "ctl-a", true).await?;
    let (thread, _) = start_thread(&mut a, &dir, "untrusted").await?;
    let mut b = second(&cx, "ctl-b").await?;
    b.call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    start_turn(&mut a, &thread, "$ echo race").await?;
    let (id_a, _, _) = until_approval(&mut a, &thread).await?;
    let (id_b, _, _) = until_approval(&mut b, &thread).await?;
    // An error response is not an answer.
    a.send_json(&json!({"jsonrpc":"2.0","id":id_a,"error":{"code":-32603,"message":"not now"}}))
        .await?;
    a.expect_silence(Duration::from_millis(500))
        .await
        .map_err(|e| match e {
            crate::host::Stop::Fail(r) => crate::host::Stop::Fail(format!(
                "after an error response the approval moved on (CMD-30): {r}"
            )),
            other => other,
        })?;
    b.answer(&id_b, json!({"decision": "accept"})).await?;
    let name = device_name(&cx).await?;
    for (s, who) in [
        (&mut a, "the other session"),
        (&mut b, "the answering session"),
    ] {
        let r = until_resolved(s, &thread).await?;
        check(
            r.params().get("decision") == Some(&json!("accept"))
                && r.params().get("resolvedBy") == Some(&json!(name)),
            || format!("serverRequest/resolved to {who}: {}", r.params()),
        )?;
    }
    let t = thread.clone();
    let msgs = a
        .read_until(
            Duration::from_secs(20),
            "notifications/cancelled",
            move |m| {
                m.method() == Some("notifications/cancelled")
                    || (m.method() == Some("turn/completed") && of_thread(m, &t))
            },
        )
        .await?;
    let cancelled = msgs
        .last()
        .filter(|m| m.method() == Some("notifications/cancelled"));
    check(
        cancelled.is_some_and(|m| m.params().get("requestId") == Some(&id_a)),
        || {
            "the session that did not win got no notifications/cancelled for its request (CMD-30)"
                .to_owned()
        },
    )?;
    until_completed(&mut b, &thread).await?;
    a.close().await;
    b.close().await;
    Ok(())
}

async fn approval_timeout(cx: Arc<Context>) -> Res<()> {
    let limit = host_target(&cx)?.approval_timeout;
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    start_turn(&mut s, &thread, "$ echo too late").await?;
    let (id, _, _) = until_approval(&mut s, &thread).await?;
    let t = thread.clone();
    let msgs = s
        .read_until(
            limit + Duration::from_secs(30),
            "serverRequest/resolved",
            move |m| m.method() == Some("serverRequest/resolved") && of_thread(m, &t),
        )
        .await?;
    let r = msgs
        .last()
        .map(|m| m.params().clone())
        .unwrap_or(Value::Null);
    check(
        r.get("decision") == Some(&json!("decline")) && r.get("resolvedBy").is_none(),
        || format!("the timed-out approval resolved as {r}"),
    )?;
    let t = thread.clone();
    let rest = s
        .read_until(Duration::from_secs(30), "turn/completed", move |m| {
            m.method() == Some("turn/completed") && of_thread(m, &t)
        })
        .await?;
    let all: Vec<&HostMessage> = msgs.iter().chain(rest.iter()).collect();
    check(
        all.iter().any(|m| {
            m.method() == Some("notifications/cancelled")
                && m.params().get("requestId") == Some(&id)
        }),
        || "no notifications/cancelled for the timed-out request (CMD-31)".to_owned(),
    )?;
    check(
        command_item(&rest).and_then(|i| i.get("status").cloned()) == Some(json!("declined")),
        || "the timed-out command is not declined".to_owned(),
    )?;
    s.close().await;
    Ok(())
}

async fn approval_late(cx: Arc<Context>) -> Res<()> {
    let (mut a, dir) = threads_ready(&cx, "ctl-a", true).await?;
    let (thread, _) = start_thread(&mut a, &dir, "untrusted").await?;
    let mut b = second(&cx, "ctl-b").await?;
    b.call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    start_turn(&mut a, &thread, "$ echo late").await?;
    let (id_a, _, _) = until_approval(&mut a, &thread).await?;
    let (id_b, _, _) = until_approval(&mut b, &thread).await?;
    a.answer(&id_a, json!({"decision": "accept"})).await?;
    until_resolved(&mut b, &thread).await?;
    b.answer(&id_b, json!({"decision": "decline"})).await?;
    let r = until_resolved(&mut b, &thread).await?;
    check(
        r.params().get("decision") == Some(&json!("accept"))
            && r.params().pointer("/rejectedAnswer/code") == Some(&json!(-32015)),
        || format!("the late answerer's serverRequest/resolved: {}", r.params()),
    )?;
    let msgs = until_completed(&mut a, &thread).await?;
    check(
        command_item(&msgs).and_then(|i| i.get("status").cloned()) == Some(json!("completed")),
        || "the late decline changed the outcome".to_owned(),
    )?;
    a.close().await;
    b.close().await;
    Ok(())
}

async fn approval_interrupted(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "untrusted").await?;
    let turn = start_turn(&mut s, &thread, "$ echo never runs").await?;
    let (id, _, _) = until_approval(&mut s, &thread).await?;
    let iid = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":iid,"method":"turn/interrupt","params":{"threadId": thread, "turnId": turn}}))
        .await?;
    let msgs = s
        .read_until(Duration::from_secs(15), "the turn/interrupt answer", |m| {
            m.method().is_none() && m.value.get("id") == Some(&json!(iid))
        })
        .await?;
    let resolved = msgs
        .iter()
        .find(|m| m.method() == Some("serverRequest/resolved"));
    check(
        resolved.is_some_and(|r| {
            r.params().get("decision") == Some(&json!("cancel"))
                && r.params().get("resolvedBy").is_none()
        }),
        || {
            format!(
                "serverRequest/resolved after the interrupt: {:?}",
                resolved.map(|r| r.params().clone())
            )
        },
    )?;
    check(
        msgs.iter().any(|m| {
            m.method() == Some("notifications/cancelled")
                && m.params().get("requestId") == Some(&id)
        }),
        || "no notifications/cancelled for the interrupted approval".to_owned(),
    )?;
    s.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// AGENTS.md

/// Writes `files` (path, content) on the host.
pub(crate) async fn write_files(
    s: &mut ChannelSession,
    files: &[(String, String)],
    cwd: &str,
) -> Res<()> {
    for (path, content) in files {
        let run = s
            .exec(
                json!({"command": ["sh", "-c", "printf %s \"$1\" > \"$2\"", "sh", content, path], "cwd": cwd, "sandbox": "danger-full-access"}),
                HOST_WAIT,
            )
            .await?;
        check(run.exit_code() == Some(0), || {
            format!("writing {path} on the host: {}", run.answer)
        })?;
    }
    Ok(())
}

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

async fn agents_root(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let root = format!("{dir}/repo");
    let deep = format!("{root}/a/b");
    mkdirs(&mut s, &[&deep, &format!("{root}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[
            (format!("{dir}/AGENTS.md"), "above the root".to_owned()),
            (format!("{root}/AGENTS.md"), "root".to_owned()),
            (format!("{root}/a/b/AGENTS.md"), "deep".to_owned()),
        ],
        &dir,
    )
    .await?;
    let (_, r) = start_thread(&mut s, &deep, "never").await?;
    let got = sources(&r);
    let want = vec![format!("{root}/AGENTS.md"), format!("{root}/a/b/AGENTS.md")];
    check(got == want, || {
        format!("instructionSources {got:?}; with .git in {root} expected {want:?}")
    })?;
    s.close().await;
    Ok(())
}

async fn agents_order(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let root = format!("{dir}/repo");
    let mid = format!("{root}/mid");
    let leaf = format!("{mid}/leaf");
    mkdirs(&mut s, &[&leaf, &format!("{root}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[
            (format!("{root}/AGENTS.md"), "root".to_owned()),
            (format!("{mid}/AGENTS.md"), "mid".to_owned()),
            (
                format!("{mid}/AGENTS.override.md"),
                "mid override".to_owned(),
            ),
            (format!("{leaf}/AGENTS.override.md"), String::new()),
            (format!("{leaf}/AGENTS.md"), "leaf".to_owned()),
        ],
        &dir,
    )
    .await?;
    let (_, r) = start_thread(&mut s, &leaf, "never").await?;
    let got = sources(&r);
    let want = vec![
        format!("{root}/AGENTS.md"),
        format!("{mid}/AGENTS.override.md"),
        format!("{leaf}/AGENTS.md"),
    ];
    check(got == want, || {
        format!("instructionSources {got:?}, expected {want:?}")
    })?;
    s.close().await;
    Ok(())
}

async fn agents_cap(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let root = format!("{dir}/repo");
    let sub = format!("{root}/sub");
    let subsub = format!("{sub}/deeper");
    mkdirs(&mut s, &[&subsub, &format!("{root}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[
            (format!("{root}/AGENTS.md"), "r".repeat(20_000)),
            (format!("{sub}/AGENTS.md"), "s".repeat(20_000)),
            (format!("{subsub}/AGENTS.md"), "d".repeat(10)),
        ],
        &dir,
    )
    .await?;
    let (_, r) = start_thread(&mut s, &subsub, "never").await?;
    let got = sources(&r);
    let want = vec![format!("{root}/AGENTS.md"), format!("{sub}/AGENTS.md")];
    check(got == want, || {
        format!(
            "instructionSources {got:?}; the second file is cut at the cap and the third left out, expected {want:?}"
        )
    })?;
    s.close().await;
    Ok(())
}

async fn agents_sources(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    mkdirs(&mut s, &[&format!("{dir}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[(format!("{dir}/AGENTS.md"), "x".to_owned())],
        &dir,
    )
    .await?;
    let (thread, r) = start_thread(&mut s, &dir, "never").await?;
    let posix = s.info.path_style == tether_proto::channel::PathStyle::Posix;
    for src in sources(&r) {
        check(!posix || src.starts_with('/'), || {
            format!("instruction source {src:?} is not absolute")
        })?;
    }
    // Read again when the thread is resumed.
    write_files(
        &mut s,
        &[(format!("{dir}/AGENTS.override.md"), "y".to_owned())],
        &dir,
    )
    .await?;
    let r = s
        .call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    let got = sources(&r);
    check(got == vec![format!("{dir}/AGENTS.override.md")], || {
        format!("after adding AGENTS.override.md, thread/resume lists {got:?}")
    })?;
    s.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// hand-off

async fn handoff_ready(cx: &Context) -> Res<(ChannelSession, String)> {
    let (s, dir) = threads_ready(cx, "ctl", true).await?;
    if !s.has_capability(tether_proto::cmd::capability::THREAD_HANDOFF) {
        s.close().await;
        return skip("the host does not offer thread.handoff (CMD-16)");
    }
    Ok((s, dir))
}

async fn exported(s: &mut ChannelSession, dir: &str) -> Res<(String, Value)> {
    let (thread, _) = start_thread(s, dir, "never").await?;
    start_turn(s, &thread, "$ echo exported").await?;
    until_completed(s, &thread).await?;
    let r = s
        .call_ok("thread/export", json!({"threadId": thread}))
        .await?;
    let bundle = r.get("bundle").cloned().unwrap_or(Value::Null);
    Ok((thread, bundle))
}

async fn export_bundle(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = handoff_ready(&cx).await?;
    mkdirs(
        &mut s,
        &[&format!("{dir}/.git"), &format!("{dir}/svc")],
        &dir,
    )
    .await?;
    let (thread, _) = start_thread(&mut s, &format!("{dir}/svc"), "never").await?;
    start_turn(&mut s, &thread, "$ echo exported").await?;
    until_completed(&mut s, &thread).await?;
    let r = s
        .call_ok("thread/export", json!({"threadId": thread}))
        .await?;
    let b = r.get("bundle").cloned().unwrap_or(Value::Null);
    check(
        b.get("version") == Some(&json!(1)) && b.get("cwdRelative") == Some(&json!("svc")),
        || format!("bundle version/cwdRelative: {b}"),
    )?;
    let items = b
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check(
        items
            .iter()
            .any(|i| i.get("type") == Some(&json!("commandExecution"))),
        || format!("the bundle lacks the turn's items: {b}"),
    )?;
    // No host path but the commands' cwd.
    let mut stripped = b.clone();
    if let Some(items) = stripped.get_mut("items").and_then(Value::as_array_mut) {
        for i in items {
            if let Some(o) = i.as_object_mut() {
                o.remove("cwd");
            }
        }
    }
    check(!stripped.to_string().contains(&dir), || {
        format!("the bundle carries a host path: {b}")
    })?;
    s.close().await;
    Ok(())
}

async fn import_invalid(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = handoff_ready(&cx).await?;
    let (_, bundle) = exported(&mut s, &dir).await?;
    let with = |k: &str, v: Value| {
        let mut b = bundle.clone();
        if let Some(o) = b.as_object_mut() {
            o.insert(k.to_owned(), v);
        }
        b
    };
    for (what, b) in [
        ("version 2", with("version", json!(2))),
        ("cwdRelative ..", with("cwdRelative", json!("../x"))),
        (
            "an absolute cwdRelative",
            with("cwdRelative", json!("/etc")),
        ),
        ("an empty name", with("cwdRelative", json!("a//b"))),
        ("a name .", with("cwdRelative", json!("a/./b"))),
        ("a backslash", with("cwdRelative", json!("a\\b"))),
        ("a colon", with("cwdRelative", json!("C:x"))),
        ("an empty cwdRelative", with("cwdRelative", json!(""))),
    ] {
        let a = s
            .call("thread/import", json!({"bundle": b, "projectRoot": dir}))
            .await?;
        expect_error(&a, -32017, &format!("a bundle with {what}"))?;
    }
    let a = s
        .call("thread/import", json!({"bundle": 5, "projectRoot": dir}))
        .await?;
    expect_error(&a, -32602, "a bundle that is not an object")?;
    s.close().await;
    Ok(())
}

async fn import_bundle(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = handoff_ready(&cx).await?;
    let (old, bundle) = exported(&mut s, &dir).await?;
    let target = format!("{dir}/elsewhere");
    mkdirs(&mut s, &[&target], &dir).await?;
    let r = s
        .call_ok(
            "thread/import",
            json!({"bundle": bundle, "projectRoot": target}),
        )
        .await?;
    let id = r
        .pointer("/thread/id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    check(!id.is_empty() && id != old, || {
        format!("the imported thread's id {id:?} (exported {old:?})")
    })?;
    check(r.pointer("/thread/cwd") == Some(&json!(target)), || {
        format!(
            "imported cwd {:?}, expected {target}",
            r.pointer("/thread/cwd")
        )
    })?;
    let read = s.call_ok("thread/read", json!({"threadId": id})).await?;
    let turns = read
        .get("turns")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check(
        turns.len() == 1
            && turns.first().and_then(|t| t.get("status")) == Some(&json!("completed")),
        || format!("the imported items are not one completed turn: {turns:?}"),
    )?;
    check(
        turns.first().and_then(|t| t.get("items")) == bundle.get("items"),
        || "the imported items differ from the bundle's".to_owned(),
    )?;
    let mut b = bundle.clone();
    if let Some(o) = b.as_object_mut() {
        o.insert("cwdRelative".to_owned(), json!("no-such-dir"));
    }
    let a = s
        .call("thread/import", json!({"bundle": b, "projectRoot": target}))
        .await?;
    expect_error(
        &a,
        -32602,
        "a bundle whose cwd does not exist under projectRoot",
    )?;
    s.close().await;
    Ok(())
}

async fn test_agent(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    start_turn(&mut s, &thread, "just words").await?;
    let msgs = until_completed(&mut s, &thread).await?;
    let items = final_item(&msgs)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check(
        items.len() == 2
            && items.first().and_then(|i| i.get("text")) == Some(&json!("just words"))
            && items.get(1).and_then(|i| i.get("type")) == Some(&json!("agentMessage"))
            && items.get(1).and_then(|i| i.get("text")) == Some(&json!("just words")),
        || format!("text input: items {items:?}"),
    )?;
    start_turn(&mut s, &thread, "$ printf '%s|' a b; echo $((6*7))").await?;
    let msgs = until_completed(&mut s, &thread).await?;
    let item = command_item(&msgs).unwrap_or(Value::Null);
    check(
        item.get("command") == Some(&json!("printf '%s|' a b; echo $((6*7))"))
            && item.get("cwd") == Some(&json!(dir))
            && item.get("aggregatedOutput") == Some(&json!("a|b|42\n"))
            && item.get("exitCode") == Some(&json!(0)),
        || format!("a \"$ \" input: {item}"),
    )?;
    start_turn(&mut s, &thread, "$ exit 4").await?;
    let msgs = until_completed(&mut s, &thread).await?;
    let item = command_item(&msgs).unwrap_or(Value::Null);
    check(
        item.get("status") == Some(&json!("failed")) && item.get("exitCode") == Some(&json!(4)),
        || format!("a failing command: {item}"),
    )?;
    s.close().await;
    Ok(())
}
