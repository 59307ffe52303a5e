//! Host cases of threads and turns (`spec/05` sections 5.3, 5.4): start, resume, list and
//! read threads; one active turn, interrupts, notification order, ids and final states,
//! fan-out to every attached session (`CMD-17` to `CMD-26`). Turn cases need the
//! deterministic test agent (`agent.test`, `CMD-59`) and are skipped on a host without it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::rpc::{call_refused, error_code};
use crate::cases::steps::threads::{
    check_order, final_item, of_thread, second, shared_thread, start_thread, start_turn,
    threads_ready, turn_status, until_approval, until_completed,
};
use crate::context::Context;
use crate::host::{HostMessage, Res, check, hfail, session};

/// The thread and turn cases, in spec order.
pub const CASES: &[Case] = &[
    THREAD_START,
    THREAD_NOT_FOUND,
    THREAD_RESUME,
    THREAD_LIST,
    THREAD_READ,
    TURN_ACTIVE,
    TURN_INTERRUPT,
    TURN_ORDER,
    TURN_IDS,
    TURN_FANOUT,
    ITEM_DELTAS,
];

// ---------------------------------------------------------------------------------------
// threads

const THREAD_START: Case = case! {
    id: "CMD-17/thread-start",
    level: Must,
    timeout: 30 s,
    description: "thread/start creates a thread in cwd, answered as Codex's ThreadStartResponse; a missing or relative cwd, ephemeral true or on-failure gets -32602",
    host: thread_start,
};
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
    check(t.get("status") == Some(&json!({"type": "idle"})), || {
        format!("a new thread's status: {:?}", t.get("status"))
    })?;
    check(
        t.pointer("/tether/approvalPolicy") == Some(&json!("never"))
            && t.pointer("/tether/sandbox") == Some(&json!("danger-full-access")),
        || format!("the thread's policy and sandbox (thread.tether): {t}"),
    )?;
    // Section 5.3: Codex's required Thread members.
    check(
        t.get("sessionId").is_some_and(Value::is_string)
            && t.get("preview").is_some_and(Value::is_string)
            && t.get("turns") == Some(&json!([]))
            && t.get("ephemeral") == Some(&json!(false))
            && t.get("cliVersion").is_some_and(Value::is_string)
            && t.get("modelProvider").is_some_and(Value::is_string)
            && t.get("source").is_some()
            && t.get("projectId").is_some(),
        || format!("a Thread without Codex's required members: {t}"),
    )?;
    check(
        r.get("approvalPolicy") == Some(&json!("never"))
            && r.get("approvalsReviewer") == Some(&json!("user"))
            && r.get("cwd") == Some(&json!(dir))
            && r.get("model").is_some_and(Value::is_string)
            && r.pointer("/sandbox/type").is_some_and(Value::is_string)
            && r.pointer("/tether/sandbox/enforced").is_some(),
        || format!("thread/start result is not a ThreadStartResponse with tether.sandbox: {r}"),
    )?;
    for m in ["createdAt", "updatedAt"] {
        check(t.get(m).is_some_and(Value::is_u64), || {
            format!("thread.{m} is not Unix seconds: {t}")
        })?;
    }
    check(
        r.get("instructionSources").is_some_and(Value::is_array),
        || format!("thread/start result without instructionSources: {r}"),
    )?;
    let (other, _) = start_thread(&mut s, &dir, "never").await?;
    check(other != id, || {
        "two threads got the same id (CMD-25)".to_owned()
    })?;
    for (what, params) in [
        (
            "a missing directory",
            json!({"cwd": format!("{dir}/missing"), "sandbox": "danger-full-access"}),
        ),
        (
            "a relative path",
            json!({"cwd": "relative/dir", "sandbox": "danger-full-access"}),
        ),
        // CMD-17: threads are durable; on-failure is no policy of tether/2.
        (
            "ephemeral true",
            json!({"cwd": dir, "sandbox": "danger-full-access", "ephemeral": true}),
        ),
        (
            "approvalPolicy on-failure",
            json!({"cwd": dir, "sandbox": "danger-full-access", "approvalPolicy": "on-failure"}),
        ),
    ] {
        call_refused(
            &mut s,
            "thread/start",
            params,
            -32602,
            &format!("thread/start with {what}"),
        )
        .await?;
    }
    s.close().await;
    Ok(())
}

const THREAD_NOT_FOUND: Case = case! {
    id: "CMD-18/thread-not-found",
    level: Must,
    timeout: 30 s,
    description: "thread/read, thread/resume, turn/start and tether/thread/export of an unknown thread get -32013",
    host: thread_not_found,
};
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
        call_refused(&mut s, m, p, -32013, &format!("{m} of an unknown thread")).await?;
    }
    if s.has_capability(tether_proto::cmd::capability::THREAD_HANDOFF) {
        call_refused(
            &mut s,
            "tether/thread/export",
            json!({"threadId": missing}),
            -32013,
            "tether/thread/export of an unknown thread",
        )
        .await?;
    }
    s.close().await;
    Ok(())
}

const THREAD_RESUME: Case = case! {
    id: "CMD-19/resume-attaches",
    level: Must,
    timeout: 60 s,
    description: "a session that resumes a thread gets its pending approval and its next notifications",
    host: thread_resume,
};
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
    // CMD-19: the turns come with the thread; an override is refused.
    check(
        r.pointer("/thread/turns")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty()),
        || format!("thread/resume result without the thread's turns: {r}"),
    )?;
    call_refused(
        &mut b,
        "thread/resume",
        json!({"threadId": thread, "sandbox": "read-only"}),
        -32602,
        "thread/resume with a sandbox override",
    )
    .await?;
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

const THREAD_LIST: Case = case! {
    id: "CMD-20/list-order-and-pages",
    level: Must,
    timeout: 60 s,
    description: "thread/list is most recent first, pages with nextCursor (null on the last page), and refuses bad cursors, limits and other orders",
    host: thread_list,
};
async fn thread_list(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(start_thread(&mut s, &dir, "never").await?.0);
    }
    let r = s.call_ok("thread/list", json!({"limit": 1000})).await?;
    check(r.get("nextCursor") == Some(&Value::Null), || {
        format!("thread/list's last page without nextCursor null (CMD-20): {r}")
    })?;
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
        ("sortDirection asc", json!({"sortDirection": "asc"})),
    ] {
        call_refused(
            &mut s,
            "thread/list",
            params,
            -32602,
            &format!("thread/list with {what}"),
        )
        .await?;
    }
    s.close().await;
    Ok(())
}

const THREAD_READ: Case = case! {
    id: "CMD-21/read",
    level: Must,
    timeout: 60 s,
    description: "thread/read returns the thread, with its turns and their items in thread.turns only with includeTurns",
    host: thread_read,
};
async fn thread_read(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    let turn = start_turn(&mut s, &thread, "hello there").await?;
    let msgs = until_completed(&mut s, &thread).await?;
    let bare = s
        .call_ok("thread/read", json!({"threadId": thread}))
        .await?;
    check(bare.pointer("/thread/turns") == Some(&json!([])), || {
        format!("thread/read without includeTurns carries turns (CMD-21): {bare}")
    })?;
    let r = s
        .call_ok(
            "thread/read",
            json!({"threadId": thread, "includeTurns": true}),
        )
        .await?;
    check(r.pointer("/thread/id") == Some(&json!(thread)), || {
        format!("thread/read: {r}")
    })?;
    let turns = r
        .pointer("/thread/turns")
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

const TURN_ACTIVE: Case = case! {
    id: "CMD-22/turn-already-active",
    level: Must,
    timeout: 60 s,
    description: "turn/start answers inProgress with no items; a second turn/start meanwhile gets -32018",
    host: turn_active,
};
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
    call_refused(
        &mut s,
        "turn/start",
        json!({"threadId": thread, "input": [{"type": "text", "text": "again"}]}),
        -32018,
        "turn/start while a turn is in progress",
    )
    .await?;
    let a = s
        .call("turn/start", json!({"threadId": thread, "input": []}))
        .await?;
    check(matches!(error_code(&a), Some(-32602 | -32018)), || {
        format!("turn/start with no input: {a}")
    })?;
    s.answer(&id, json!({"decision": "decline"})).await?;
    until_completed(&mut s, &thread).await?;
    call_refused(
        &mut s,
        "turn/start",
        json!({"threadId": thread, "input": []}),
        -32602,
        "turn/start with an empty input on an idle thread",
    )
    .await?;
    s.close().await;
    Ok(())
}

const TURN_INTERRUPT: Case = case! {
    id: "CMD-23/interrupt",
    level: Must,
    timeout: 60 s,
    description: "turn/interrupt of an unknown turn gets -32014; of the running one, turn/completed interrupted comes first",
    host: turn_interrupt,
};
async fn turn_interrupt(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    call_refused(
        &mut s,
        "turn/interrupt",
        json!({"threadId": thread, "turnId": "turn_nothing"}),
        -32014,
        "turn/interrupt of an unknown turn",
    )
    .await?;
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
    call_refused(
        &mut s,
        "turn/interrupt",
        json!({"threadId": thread, "turnId": turn}),
        -32014,
        "turn/interrupt of a finished turn",
    )
    .await?;
    s.close().await;
    Ok(())
}

const TURN_ORDER: Case = case! {
    id: "CMD-24/notification-order",
    level: Must,
    timeout: 60 s,
    description: "a turn's notifications come in the order of CMD-24, items never overlapping",
    host: turn_order,
};
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

const TURN_IDS: Case = case! {
    id: "CMD-25/unique-ids-final-states",
    level: Must,
    timeout: 60 s,
    description: "turn and item ids are unique; turn/completed carries every item in its final state",
    host: turn_ids,
};
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

const TURN_FANOUT: Case = case! {
    id: "CMD-26/every-attached-session",
    level: Must,
    timeout: 60 s,
    description: "two attached sessions get the same notifications in the same order, an unattached one none",
    host: turn_fanout,
};
async fn turn_fanout(cx: Arc<Context>) -> Res<()> {
    let (mut a, mut b, thread) = shared_thread(&cx, "never").await?;
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

const ITEM_DELTAS: Case = case! {
    id: "CMD-40/item-deltas-are-text",
    level: Must,
    timeout: 60 s,
    description: "a turn's output deltas are UTF-8 text; a character split across two reads arrives whole",
    host: item_deltas,
};
async fn item_deltas(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    let (thread, _) = start_thread(&mut s, &dir, "never").await?;
    // "€" is E2 82 AC: two bytes, a pause (so two reads), the last byte.
    start_turn(
        &mut s,
        &thread,
        "$ printf '\\342\\202'; sleep 0.5; printf '\\254\\n'",
    )
    .await?;
    let msgs = until_completed(&mut s, &thread).await?;
    let mut text = String::new();
    for m in msgs
        .iter()
        .filter(|m| m.method() == Some("item/commandExecution/outputDelta"))
    {
        let Some(d) = m.params().get("delta").and_then(Value::as_str) else {
            return hfail(format!(
                "an item output delta without a text delta (section 5.4): {}",
                m.params()
            ));
        };
        check(!d.is_empty() && d.len() <= 16_384, || {
            format!("an item output delta of {} bytes (CMD-40)", d.len())
        })?;
        text.push_str(d);
    }
    check(text == "\u{20ac}\n", || {
        format!("the deltas of a split character give {text:?}, not \"\u{20ac}\\n\" (section 5.4)")
    })?;
    let item = crate::cases::steps::threads::command_item(&msgs).unwrap_or(Value::Null);
    check(
        item.get("aggregatedOutput") == Some(&json!("\u{20ac}\n")),
        || format!("the command's aggregatedOutput: {item}"),
    )?;
    s.close().await;
    Ok(())
}
