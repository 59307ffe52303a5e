//! Host cases of the sandbox modes themselves (`spec/05` section 5.7): `read-only` and
//! `workspace-write` deny what they must (writes, the network), the sandbox report, and a
//! mode the host cannot enforce (`CMD-44` to `CMD-46`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::exec::{exec_params, exec_ready, exists, result_of, sh, with_sandbox};
use crate::cases::steps::sandbox::{
    NO_WORKSPACE_WRITE, accept_alongside, connect_script, loopback_listener, sandboxed,
};
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, check, hfail, skip};

/// The sandbox-mode cases, in spec order.
pub const CASES: &[Case] = &[
    CMD_READ_ONLY,
    CMD_WORKSPACE_WRITE,
    CMD_NETWORK_DENIED,
    CMD_SANDBOX_REPORT,
    CMD_UNENFORCEABLE,
];

const CMD_READ_ONLY: Case = case! {
    id: "CMD-44/read-only-write-denied",
    level: Must,
    timeout: 60 s,
    description: "a write under an enforced read-only sandbox does not happen",
    host: cmd_read_only,
};
async fn cmd_read_only(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let target = format!("{dir}/written-under-read-only");
    let Some(_run) = sandboxed(&mut s, "read-only", &format!("echo x > '{target}'"), &dir).await?
    else {
        s.close().await;
        return skip("the host refuses read-only or runs it degraded: nothing enforced to check");
    };
    check(!exists(&mut s, &target, &dir).await?, || {
        "a write under a read-only sandbox reported as enforced happened (CMD-44, CMD-45)"
            .to_owned()
    })?;
    s.close().await;
    Ok(())
}

const CMD_WORKSPACE_WRITE: Case = case! {
    id: "CMD-44/workspace-write-outside-denied",
    level: Must,
    timeout: 60 s,
    description: "under workspace-write a write inside cwd happens and one outside does not",
    host: cmd_workspace_write,
};
async fn cmd_workspace_write(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    // workspace-write may write the host's temporary directory too: the "outside" file
    // must be outside it.
    let tmp = s
        .exec(sh("printf %s \"${TMPDIR:-/tmp}\"", &dir), HOST_WAIT)
        .await?;
    let tmp = String::from_utf8_lossy(&tmp.stdout)
        .trim_end_matches('/')
        .to_owned();
    if !tmp.is_empty() && (dir == tmp || dir.starts_with(&format!("{tmp}/"))) {
        s.close().await;
        return skip(format!(
            "the work directory {dir} is inside the host's temporary directory {tmp}, where workspace-write may write: give --work-dir elsewhere"
        ));
    }
    let inner = format!("{dir}/inner");
    s.exec(exec_params(&["mkdir", "-p", &inner], &dir), HOST_WAIT)
        .await?;
    let inside = format!("{inner}/inside");
    let outside = format!("{dir}/outside");
    let script = format!("echo x > '{inside}'; echo y > '{outside}'");
    let Some(_run) = sandboxed(&mut s, "workspace-write", &script, &inner).await? else {
        s.close().await;
        return skip(NO_WORKSPACE_WRITE);
    };
    check(exists(&mut s, &inside, &dir).await?, || {
        "under workspace-write a write inside cwd did not happen".to_owned()
    })?;
    check(!exists(&mut s, &outside, &dir).await?, || {
        "under an enforced workspace-write sandbox a write outside cwd happened (CMD-44)".to_owned()
    })?;
    s.close().await;
    Ok(())
}

const CMD_NETWORK_DENIED: Case = case! {
    id: "CMD-44/network-denied",
    level: Must,
    timeout: 90 s,
    description: "under an enforced read-only or workspace-write sandbox with network denied, a connection to the runner's loopback listener does not happen",
    host: cmd_network_denied,
};
async fn cmd_network_denied(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let (listener, port) = loopback_listener().await?;
    let script = connect_script(port);
    // The control: without a sandbox the connection must arrive, or this host cannot
    // reach the runner's loopback (it runs elsewhere, or has no tool to connect with).
    let control = async { s.exec(sh(&script, &dir), Duration::from_secs(30)).await };
    let (run, reached) = match tokio::time::timeout(
        Duration::from_secs(30),
        accept_alongside(&listener, "the loopback listener", control),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => return hfail("the control connection run took more than 30 s".to_owned()),
    };
    if run.exit_code() == Some(97) || !reached {
        s.close().await;
        return skip(format!(
            "the host cannot reach the runner's listener on 127.0.0.1:{port} without a sandbox (it runs on another machine, or has none of bash, python3, nc, curl): nothing to compare"
        ));
    }
    let mut tried = 0;
    for mode in ["read-only", "workspace-write"] {
        let (run, reached) = match tokio::time::timeout(
            Duration::from_secs(40),
            accept_alongside(
                &listener,
                "the loopback listener",
                sandboxed(&mut s, mode, &script, &dir),
            ),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return hfail(format!("the {mode} run took more than 40 s")),
        };
        let Some(run) = run else {
            continue; // refused or degraded: nothing enforced to check
        };
        let net = run
            .report()
            .and_then(|r| r.pointer("/sandbox/network"))
            .cloned()
            .unwrap_or(Value::Null);
        if net != json!("denied") {
            continue;
        }
        tried += 1;
        check(!reached, || {
            format!(
                "under {mode} with network reported denied, the command connected to 127.0.0.1:{port} (CMD-44, CMD-45): {}",
                run.answer
            )
        })?;
    }
    s.close().await;
    if tried == 0 {
        return skip("the host enforces neither read-only nor workspace-write with network denied");
    }
    Ok(())
}

const CMD_SANDBOX_REPORT: Case = case! {
    id: "CMD-45/sandbox-report",
    level: Must,
    timeout: 60 s,
    description: "the sandbox report of command/exec is complete and consistent with initialize",
    host: cmd_sandbox_report,
};
async fn cmd_sandbox_report(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let modes: Vec<Value> = s
        .init
        .as_ref()
        .and_then(|i| i.pointer("/tether/sandbox/modes"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for mode in ["read-only", "workspace-write", "danger-full-access"] {
        let p = with_sandbox(exec_params(&["true"], &dir), mode);
        let run = s.exec(p, HOST_WAIT).await?;
        if run.error_code() == Some(-32012) {
            check(!modes.contains(&json!(mode)), || {
                format!("initialize lists {mode} as enforced, but command/exec refuses it")
            })?;
            continue;
        }
        let r = result_of(&run, mode)?;
        let rep = r.get("sandbox").cloned().unwrap_or(Value::Null);
        for m in ["requested", "enforced", "network", "degraded", "mechanism"] {
            check(rep.get(m).is_some(), || {
                format!("{mode}: the sandbox report lacks {m}: {rep}")
            })?;
        }
        check(rep.get("requested") == Some(&json!(mode)), || {
            format!("{mode}: requested is {:?}", rep.get("requested"))
        })?;
        let degraded = rep.get("degraded") == Some(&json!(true));
        let net = rep.get("network").and_then(Value::as_str).unwrap_or("");
        if mode != "danger-full-access" {
            check(
                degraded == (rep.get("enforced") != Some(&json!(mode)) || net == "unenforced"),
                || format!("{mode}: degraded does not match enforced/network: {rep}"),
            )?;
            if !degraded {
                check(net == "denied", || {
                    format!("{mode} enforced with network {net:?}")
                })?;
            }
        }
    }
    s.close().await;
    Ok(())
}

const CMD_UNENFORCEABLE: Case = case! {
    id: "CMD-46/unenforceable-mode",
    level: Must,
    timeout: 60 s,
    description: "a mode the host cannot enforce gets -32012 unless it degrades; danger-full-access never does",
    host: cmd_unenforceable,
};
async fn cmd_unenforceable(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let init = s.init.clone().unwrap_or(Value::Null);
    let modes = init
        .pointer("/tether/sandbox/modes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let degrade = init.pointer("/tether/sandbox/degrade") == Some(&json!(true));
    for mode in ["read-only", "workspace-write", "danger-full-access"] {
        let p = with_sandbox(exec_params(&["true"], &dir), mode);
        let run = s.exec(p, HOST_WAIT).await?;
        let enforceable = modes.contains(&json!(mode)) || mode == "danger-full-access";
        match run.error_code() {
            Some(-32012) => check(!enforceable && !degrade, || {
                format!("{mode} refused with -32012 though initialize lists it (or degrade is on)")
            })?,
            Some(c) => return hfail(format!("{mode}: error {c}: {}", run.answer)),
            None => {
                let deg =
                    run.report().and_then(|r| r.pointer("/sandbox/degraded")) == Some(&json!(true));
                check(enforceable || (degrade && deg), || {
                    format!(
                        "{mode} ran though initialize does not list it and the host does not degrade: {}",
                        run.answer
                    )
                })?;
            }
        }
    }
    s.close().await;
    Ok(())
}
