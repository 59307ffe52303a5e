//! Host cases of administration, cancellation and overload (`spec/05` section 5.10): remote
//! access switched off or a revoked device during a session, cancelling a command, the
//! in-flight limit, and the order of a request's checks (`CMD-55` to `CMD-61`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::devices::{pair_for_revocation, revoke, set_remote};
use crate::cases::steps::exec::exec_ready;
use crate::cases::steps::rpc::{call_refused, expect_error, ready, refuse};
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, check, host_target, session, skip};
use crate::outcome::Stop;

/// The administration and cancellation cases, in spec order.
pub const CASES: &[Case] = &[
    CMD_REMOTE_OFF,
    CMD_REVOKED,
    CMD_CANCEL,
    CMD_IN_FLIGHT,
    CMD_ORDER,
];

const CMD_REMOTE_OFF: Case = case! {
    id: "CMD-55/remote-access-off-in-session",
    level: Must,
    timeout: 60 s,
    exclusive: true,
    description: "after remote access is switched off, a request of an open session gets -32010",
    host: cmd_remote_off,
};
async fn cmd_remote_off(cx: Arc<Context>) -> Res<()> {
    if !host_target(&cx)?.admin.can_switch_remote_access() {
        return skip("needs a way to switch the host's remote access: give --remote-access-cmd");
    }
    let mut s = ready(&cx, "ctl").await?;
    set_remote(&cx, false).await?;
    let a = s.call("tether-conformance/probe", Value::Null).await;
    let back = set_remote(&cx, true).await;
    let a = a?;
    back?;
    expect_error(&a, -32010, "a request after remote access was switched off")
}

const CMD_REVOKED: Case = case! {
    id: "CMD-56/revoked-in-session",
    level: Must,
    timeout: 60 s,
    description: "after the device is revoked, a request of its open session gets -32011",
    host: cmd_revoked,
};
async fn cmd_revoked(cx: Arc<Context>) -> Res<()> {
    // A host also closes the sessions of a revoked device within 5 s on its own (SEC-13);
    // when that close wins the race with the request, the case tries again with a new
    // device: a host passes only once a request is seen answered -32011.
    let mut closed_first = 0;
    loop {
        let (device, mut s) = pair_for_revocation(&cx).await?;
        s.initialize().await?;
        revoke(&cx, &device).await?;
        match s.call("tether-conformance/probe", Value::Null).await {
            Ok(a) => return expect_error(&a, -32011, "a request after the device was revoked"),
            Err(Stop::Fail(e)) if e.contains("NOT_AUTHORIZED") && closed_first < 3 => {
                closed_first += 1;
                cx.log.note(
                    "runner",
                    format!(
                        "the host's revocation sweep closed the session first (SEC-13): {e}; again"
                    ),
                );
            }
            Err(e) => return Err(e),
        }
    }
}

const CMD_CANCEL: Case = case! {
    id: "CMD-57/cancel-exec",
    level: Should,
    timeout: 60 s,
    description: "tether/cancelled for a running command/exec gets it answered at once",
    host: cmd_cancel,
};
async fn cmd_cancel(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":{
        "command": ["sleep", "30"], "cwd": dir, "sandboxPolicy": {"type": "dangerFullAccess"}, "processId": "cancel-me"}}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    s.send_json(&json!({"jsonrpc":"2.0","method":"tether/cancelled","params":{"requestId": id}}))
        .await?;
    let run = s.collect_exec(&json!(id), "cancel-me", HOST_WAIT).await?;
    // Uncancelled, `sleep 30` answers after 30 s; the margin allows for a loaded host.
    check(start.elapsed() < Duration::from_secs(20), || {
        format!(
            "the cancelled command/exec was answered after {:?}",
            start.elapsed()
        )
    })?;
    check(
        run.error_code() == Some(-32800) || run.result().is_some(),
        || format!("the cancelled command/exec: {}", run.answer),
    )?;
    s.close().await;
    Ok(())
}

const CMD_IN_FLIGHT: Case = case! {
    id: "CMD-58/in-flight-limit",
    level: Must,
    timeout: 90 s,
    description: "with 64 requests in flight, the 65th gets -32001 at once",
    host: cmd_in_flight,
};
async fn cmd_in_flight(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    for i in 0..64 {
        let id = s.fresh_id();
        s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":{
            "command": ["sleep", "60"], "cwd": dir, "sandboxPolicy": {"type": "dangerFullAccess"}, "processId": format!("busy-{i}")}}))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    call_refused(
        &mut s,
        "tether-conformance/probe",
        Value::Null,
        -32001,
        "a 65th request with 64 in flight",
    )
    .await?;
    // A host that queued it instead would answer when a `sleep 60` ends.
    check(start.elapsed() < Duration::from_secs(20), || {
        format!("the -32001 answer took {:?}", start.elapsed())
    })?;
    // Ending the session kills every process (CMD-37).
    s.close().await;
    Ok(())
}

const CMD_ORDER: Case = case! {
    id: "CMD-61/check-order",
    level: Must,
    timeout: 30 s,
    description: "envelope before initialization, initialization before method, method before params",
    host: cmd_order,
};
async fn cmd_order(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    refuse(
        &mut s,
        br#"{"jsonrpc":"1.0","id":1,"method":"tether-conformance/probe"}"#,
        -32600,
        json!(1),
        "a bad jsonrpc version before initialize (envelope first)",
    )
    .await?;
    call_refused(
        &mut s,
        "tether-conformance/probe",
        Value::Null,
        -32002,
        "an unknown method before initialize (initialization before method)",
    )
    .await?;
    call_refused(
        &mut s,
        "command/exec",
        json!({"command": 5}),
        -32002,
        "bad params before initialize (initialization before params)",
    )
    .await?;
    s.initialize().await?;
    call_refused(
        &mut s,
        "tether-conformance/probe",
        json!({"x": [1, 2]}),
        -32601,
        "an unknown method with params (method before params)",
    )
    .await?;
    s.close().await;
    Ok(())
}
