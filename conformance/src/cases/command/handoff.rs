//! Host cases of hand-off between hosts (`spec/05` section 5.9): `tether/thread/export`, invalid
//! bundles, and `tether/thread/import` (`CMD-52` to `CMD-54`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::rpc::call_refused;
use crate::cases::steps::threads::{
    mkdirs, start_thread, start_turn, threads_ready, until_completed,
};
use crate::context::Context;
use crate::host::{ChannelSession, Res, check, skip};

/// The hand-off cases, in spec order.
pub const CASES: &[Case] = &[EXPORT_BUNDLE, IMPORT_INVALID, IMPORT_BUNDLE];

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
        .call_ok("tether/thread/export", json!({"threadId": thread}))
        .await?;
    let bundle = r.get("bundle").cloned().unwrap_or(Value::Null);
    Ok((thread, bundle))
}

const EXPORT_BUNDLE: Case = case! {
    id: "CMD-52/export",
    level: Must,
    timeout: 60 s,
    description: "tether/thread/export gives a version-1 bundle with cwdRelative and every item",
    host: export_bundle,
};
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
        .call_ok("tether/thread/export", json!({"threadId": thread}))
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

const IMPORT_INVALID: Case = case! {
    id: "CMD-53/invalid-bundle",
    level: Must,
    timeout: 60 s,
    description: "bundles of version 2 or with cwdRelative .., absolute, empty names, \\ or : get -32017",
    host: import_invalid,
};
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
        call_refused(
            &mut s,
            "tether/thread/import",
            json!({"bundle": b, "projectRoot": dir}),
            -32017,
            &format!("a bundle with {what}"),
        )
        .await?;
    }
    call_refused(
        &mut s,
        "tether/thread/import",
        json!({"bundle": 5, "projectRoot": dir}),
        -32602,
        "a bundle that is not an object",
    )
    .await?;
    s.close().await;
    Ok(())
}

const IMPORT_BUNDLE: Case = case! {
    id: "CMD-54/import",
    level: Must,
    timeout: 60 s,
    description: "tether/thread/import creates a new thread under projectRoot with the items as one completed turn",
    host: import_bundle,
};
async fn import_bundle(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = handoff_ready(&cx).await?;
    let (old, bundle) = exported(&mut s, &dir).await?;
    let target = format!("{dir}/elsewhere");
    mkdirs(&mut s, &[&target], &dir).await?;
    let r = s
        .call_ok(
            "tether/thread/import",
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
    let read = s
        .call_ok("thread/read", json!({"threadId": id, "includeTurns": true}))
        .await?;
    let turns = read
        .pointer("/thread/turns")
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
    call_refused(
        &mut s,
        "tether/thread/import",
        json!({"bundle": b, "projectRoot": target}),
        -32602,
        "a bundle whose cwd does not exist under projectRoot",
    )
    .await?;
    s.close().await;
    Ok(())
}
