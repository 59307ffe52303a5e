//! Host case of `tether/host/info` (`spec/05` section 5.2, `CMD-77`): the defaults the host
//! reports are the ones it applies, checked against a `command/exec` and a `thread/start`
//! that name no `cwd`, `sandbox` or approval policy.

use std::sync::Arc;

use serde_json::{Value, json};
use tether_proto::cmd::Params;
use tether_proto::cmd::methods::{HostInfoParams, HostInfoResult, check_result};

use crate::case::{Case, case};
use crate::cases::steps::exec::exec_ready;
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, check, hfail};

/// The host-info cases.
pub const CASES: &[Case] = &[HOST_INFO];

const HOST_INFO: Case = case! {
    id: "CMD-77/host-info",
    level: Must,
    timeout: 60 s,
    description: "tether/host/info reports the defaults the host applies: a command/exec without cwd runs in defaultCwd under defaultSandbox, a thread/start without cwd, sandbox or policy gets defaultCwd, defaultSandbox and defaultApprovalPolicy",
    host: host_info,
};
async fn host_info(cx: Arc<Context>) -> Res<()> {
    let (mut s, _dir) = exec_ready(&cx, "ctl").await?;
    let answer = s.call(HostInfoParams::METHOD, Value::Null).await?;
    let Some(result) = answer.get("result") else {
        return hfail(format!("tether/host/info: expected a result, got {answer}"));
    };
    check_result(HostInfoParams::METHOD, result)
        .or_else(|e| hfail(format!("tether/host/info result {result}: {e}")))?;
    let info: HostInfoResult = serde_json::from_value(result.clone())
        .or_else(|e| hfail(format!("tether/host/info result {result}: {e}")))?;
    let default_sandbox = json!(info.default_sandbox);

    // A command/exec that names neither cwd nor sandbox; where the default mode cannot be
    // enforced here (-32012, CMD-46), one that names only the sandbox, so that the
    // default cwd is checked all the same.
    let pwd = json!({"command": ["sh", "-c", "pwd -P"], "timeoutMs": 60000});
    let mut run = s.exec(pwd, HOST_WAIT).await?;
    let mut sandbox_named = false;
    if run.error_code() == Some(-32012) {
        let explicit = json!({"command": ["sh", "-c", "pwd -P"], "timeoutMs": 60000,
                              "sandboxPolicy": {"type": "dangerFullAccess"}});
        run = s.exec(explicit, HOST_WAIT).await?;
        sandbox_named = true;
    }
    match (&info.default_cwd, run.error_code()) {
        // Not even an unconfined command may run here (SEC-15): nothing to compare.
        (_, Some(-32012)) => {}
        (None, code) => check(code == Some(-32602), || {
            format!(
                "defaultCwd is null, yet command/exec without cwd was not refused with \
                 -32602: {}",
                run.answer
            )
        })?,
        (Some(cwd), _) => {
            let ran_in = String::from_utf8_lossy(&run.stdout).into_owned();
            let want = s
                .exec(
                    json!({"command": ["sh", "-c", "pwd -P"], "cwd": cwd,
                           "sandboxPolicy": {"type": "dangerFullAccess"}, "timeoutMs": 60000}),
                    HOST_WAIT,
                )
                .await?;
            check(
                run.exit_code() == Some(0) && !want.stdout.is_empty() && run.stdout == want.stdout,
                || {
                    format!(
                        "defaultCwd is {cwd:?}, yet command/exec without cwd ran in {ran_in:?} \
                         ({})",
                        run.answer
                    )
                },
            )?;
            let requested = run
                .answer
                .pointer("/result/tether/sandbox/requested")
                .cloned();
            check(
                sandbox_named || requested.as_ref() == Some(&default_sandbox),
                || {
                    format!(
                        "defaultSandbox is {default_sandbox}, yet command/exec without sandbox \
                     ran with {requested:?} requested ({})",
                        run.answer
                    )
                },
            )?;
        }
    }

    // A thread/start that names nothing, where the host has threads.
    if s.has_capability(tether_proto::cmd::capability::AGENT_TEST) {
        let mut a = s.call("thread/start", json!({})).await?;
        let mut sandbox_named = false;
        if a.pointer("/error/code").and_then(Value::as_i64) == Some(-32012) {
            // As above: the default mode cannot be enforced; the other defaults still can.
            a = s
                .call("thread/start", json!({"sandbox": "danger-full-access"}))
                .await?;
            sandbox_named = true;
        }
        if let Some(thread) = a.pointer("/result/thread") {
            // Section 5.3: the thread's sandbox and policy are in `thread.tether`.
            let got = |k: &str| {
                thread
                    .get(k)
                    .or_else(|| thread.get("tether").and_then(|t| t.get(k)))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let mut want = vec![
                ("cwd", json!(info.default_cwd)),
                ("approvalPolicy", json!(info.default_approval_policy)),
            ];
            if !sandbox_named {
                want.push(("sandbox", default_sandbox.clone()));
            }
            for (member, value) in want {
                check(got(member) == value, || {
                    format!(
                        "tether/host/info says {value} for a thread/start without {member}, \
                         the thread got {}",
                        got(member)
                    )
                })?;
            }
        } else {
            // Refused: only for a default the host cannot enforce (CMD-46) or no cwd.
            let code = a.pointer("/error/code").and_then(Value::as_i64);
            check(
                code == Some(-32012) || (info.default_cwd.is_none() && code == Some(-32602)),
                || format!("thread/start without params: {a}"),
            )?;
        }
    }
    s.close().await;
    Ok(())
}
