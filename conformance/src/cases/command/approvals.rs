//! Host cases of approvals (`spec/05` section 5.5): policies, the approval request, the
//! decisions, the first answer winning, the time limit, late answers, and interrupts
//! (`CMD-27` to `CMD-33`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::threads::{
    command_item, of_thread, second, shared_thread, start_thread, start_turn, threads_ready,
    turn_status, until_approval, until_completed, until_resolved,
};
use crate::context::Context;
use crate::host::{ChannelSession, HOST_WAIT, HostMessage, Res, check, hfail, host_target, paired};

/// The approval cases, in spec order.
pub const CASES: &[Case] = &[
    APPROVAL_POLICIES,
    APPROVAL_REQUEST,
    APPROVAL_DECISIONS,
    APPROVAL_FIRST_WINS,
    APPROVAL_TIMEOUT,
    APPROVAL_LATE,
    APPROVAL_INTERRUPTED,
];

// ---------------------------------------------------------------------------------------
// approvals

const APPROVAL_POLICIES: Case = case! {
    id: "CMD-27/policies",
    level: Must,
    timeout: 60 s,
    description: "untrusted asks before running, never does not ask, and nothing runs before an accept",
    host: approval_policies,
};
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
        .exec(json!({"command": ["test", "-e", format!("{marker}-untrusted")], "cwd": dir, "sandboxPolicy": {"type": "dangerFullAccess"}}), HOST_WAIT)
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

const APPROVAL_REQUEST: Case = case! {
    id: "CMD-28/approval-request",
    level: Must,
    timeout: 60 s,
    description: "the approval request follows item/started and names the thread, turn, item, command, cwd and sandbox",
    host: approval_request,
};
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
    check(
        p.pointer("/tether/sandbox")
            .and_then(Value::as_str)
            .is_some(),
        || format!("approval params without tether.sandbox: {p}"),
    )?;
    // Section 5.5: Codex's params: startedAtMs, commandActions, availableDecisions.
    check(
        p.get("startedAtMs").is_some_and(Value::is_u64)
            && p.get("commandActions").is_some_and(Value::is_array),
        || format!("approval params without startedAtMs or commandActions: {p}"),
    )?;
    let offered = p
        .get("availableDecisions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check(offered.contains(&json!("decline")), || {
        format!("approval params whose availableDecisions lack decline: {p}")
    })?;
    // CMD-29, CMD-30: a Codex object decision the host did not offer is not an answer.
    if !offered
        .iter()
        .any(|d| d.get("acceptWithExecpolicyAmendment").is_some())
    {
        s.answer(
            &id,
            json!({"decision": {"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["echo"]}}}),
        )
        .await?;
        s.expect_silence(Duration::from_millis(500))
            .await
            .map_err(|e| match e {
                crate::host::Stop::Fail(r) => crate::host::Stop::Fail(format!(
                    "a decision not in availableDecisions resolved the approval (CMD-30): {r}"
                )),
                other => other,
            })?;
    }
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

const APPROVAL_DECISIONS: Case = case! {
    id: "CMD-29/decisions",
    level: Must,
    timeout: 90 s,
    description: "accept runs, decline skips and goes on, cancel interrupts, acceptForSession stops asking",
    host: approval_decisions,
};
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

pub(crate) async fn device_name(cx: &Context) -> Res<String> {
    Ok(paired(cx).await?.device.name)
}

const APPROVAL_FIRST_WINS: Case = case! {
    id: "CMD-30/first-answer-wins",
    level: Must,
    timeout: 60 s,
    description: "the first answer resolves for every session; an error response is not an answer",
    host: approval_first_wins,
};
async fn approval_first_wins(cx: Arc<Context>) -> Res<()> {
    let (mut a, mut b, thread) = shared_thread(&cx, "untrusted").await?;
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
            r.params().pointer("/tether/decision") == Some(&json!("accept"))
                && r.params().pointer("/tether/resolvedBy") == Some(&json!(name)),
            || format!("serverRequest/resolved to {who}: {}", r.params()),
        )?;
    }
    let t = thread.clone();
    let msgs = a
        .read_until(Duration::from_secs(20), "tether/cancelled", move |m| {
            m.method() == Some("tether/cancelled")
                || (m.method() == Some("turn/completed") && of_thread(m, &t))
        })
        .await?;
    let cancelled = msgs
        .last()
        .filter(|m| m.method() == Some("tether/cancelled"));
    check(
        cancelled.is_some_and(|m| m.params().get("requestId") == Some(&id_a)),
        || {
            "the session that did not win got no tether/cancelled for its request (CMD-30)"
                .to_owned()
        },
    )?;
    until_completed(&mut b, &thread).await?;
    a.close().await;
    b.close().await;
    Ok(())
}

const APPROVAL_TIMEOUT: Case = case! {
    id: "CMD-31/approval-time-limit",
    level: Must,
    timeout: 400 s,
    slow: true,
    description: "an unanswered approval resolves as decline after the host's time limit",
    host: approval_timeout,
};
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
        r.pointer("/tether/decision") == Some(&json!("decline"))
            && r.pointer("/tether/resolvedBy").is_none(),
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
            m.method() == Some("tether/cancelled") && m.params().get("requestId") == Some(&id)
        }),
        || "no tether/cancelled for the timed-out request (CMD-31)".to_owned(),
    )?;
    check(
        command_item(&rest).and_then(|i| i.get("status").cloned()) == Some(json!("declined")),
        || "the timed-out command is not declined".to_owned(),
    )?;
    s.close().await;
    Ok(())
}

const APPROVAL_LATE: Case = case! {
    id: "CMD-32/late-answer",
    level: Must,
    timeout: 60 s,
    description: "a late answer changes nothing and gets serverRequest/resolved with rejectedAnswer -32015",
    host: approval_late,
};
async fn approval_late(cx: Arc<Context>) -> Res<()> {
    let (mut a, mut b, thread) = shared_thread(&cx, "untrusted").await?;
    start_turn(&mut a, &thread, "$ echo late").await?;
    let (id_a, _, _) = until_approval(&mut a, &thread).await?;
    let (id_b, _, _) = until_approval(&mut b, &thread).await?;
    a.answer(&id_a, json!({"decision": "accept"})).await?;
    until_resolved(&mut b, &thread).await?;
    b.answer(&id_b, json!({"decision": "decline"})).await?;
    let r = until_resolved(&mut b, &thread).await?;
    check(
        r.params().pointer("/tether/decision") == Some(&json!("accept"))
            && r.params().pointer("/tether/rejectedAnswer/code") == Some(&json!(-32015)),
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

const APPROVAL_INTERRUPTED: Case = case! {
    id: "CMD-33/interrupt-cancels-approval",
    level: Must,
    timeout: 60 s,
    description: "turn/interrupt with an approval pending resolves it as cancel without resolvedBy",
    host: approval_interrupted,
};
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
            r.params().pointer("/tether/decision") == Some(&json!("cancel"))
                && r.params().pointer("/tether/resolvedBy").is_none()
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
            m.method() == Some("tether/cancelled") && m.params().get("requestId") == Some(&id)
        }),
        || "no tether/cancelled for the interrupted approval".to_owned(),
    )?;
    s.close().await;
    Ok(())
}
