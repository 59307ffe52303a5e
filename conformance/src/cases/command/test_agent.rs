//! Host case of the deterministic test agent (`spec/05` section 5.11, `CMD-59`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::threads::{
    command_item, final_item, start_thread, start_turn, threads_ready, until_completed,
};
use crate::context::Context;
use crate::host::{Res, check};

/// The test-agent case.
pub const CASES: &[Case] = &[TEST_AGENT];

const TEST_AGENT: Case = case! {
    id: "CMD-59/test-agent",
    level: Must,
    timeout: 60 s,
    description: "the test agent echoes text and proposes \"$ \" commands unchanged, run with sh -c",
    host: test_agent,
};
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
            && items.first().and_then(|i| i.pointer("/content/0/text"))
                == Some(&json!("just words"))
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
            && item.get("exitCode") == Some(&json!(0))
            && item.get("commandActions")
                == Some(
                    &json!([{"type": "unknown", "command": "printf '%s|' a b; echo $((6*7))"}]),
                ),
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
