//! Steps of the `command/exec` cases: the params of a command, its result, a session ready
//! to run commands in a fresh directory, whether a path exists on the host.

use serde_json::{Value, json};

use crate::cases::steps::rpc::ready;
use crate::context::Context;
use crate::host::{ChannelSession, ExecRun, HOST_WAIT, Res, Stop, check, hfail};
use crate::link::random_bytes;

/// The params of a `command/exec` of `cmd` in `cwd`, unsandboxed (`danger-full-access`),
/// with a 60 s time limit.
pub(crate) fn exec_params(cmd: &[&str], cwd: &str) -> Value {
    json!({"command": cmd, "cwd": cwd, "sandboxPolicy": policy("danger-full-access"), "timeoutMs": 60000})
}

/// The `sandboxPolicy` of a `command/exec` that names `mode` (CMD-34): Codex's
/// `SandboxPolicy` object.
pub(crate) fn policy(mode: &str) -> Value {
    match mode {
        "read-only" => json!({"type": "readOnly"}),
        "workspace-write" => json!({"type": "workspaceWrite"}),
        "danger-full-access" => json!({"type": "dangerFullAccess"}),
        other => json!({"type": other}),
    }
}

/// [`exec_params`] of `sh -c script`.
pub(crate) fn sh(script: &str, cwd: &str) -> Value {
    exec_params(&["sh", "-c", script], cwd)
}

/// Tether's report of a `command/exec` result (its `tether` member, `CMD-39`), or a
/// failure naming `what`.
pub(crate) fn result_of<'a>(run: &'a ExecRun, what: &str) -> Res<&'a Value> {
    run.report().ok_or_else(|| {
        Stop::Fail(format!(
            "{what}: command/exec failed or its result has no tether member: {}",
            run.answer
        ))
    })
}

/// A session ready for `command/exec`, with a fresh directory on the host.
pub(crate) async fn exec_ready(cx: &Context, name: &str) -> Res<(ChannelSession, String)> {
    let mut s = ready(cx, name).await?;
    s.need_exec()?;
    let base = s.work_dir(cx)?;
    let dir = fresh_dir_under(&base);
    let run = s
        .exec(exec_params(&["mkdir", "-p", &dir], &base), HOST_WAIT)
        .await?;
    check(run.exit_code() == Some(0), || {
        format!("mkdir -p {dir} on the host failed: {}", run.answer)
    })?;
    Ok((s, dir))
}

/// Whether `path` exists on the host (asked with `test -e`, unsandboxed).
pub(crate) async fn exists(s: &mut ChannelSession, path: &str, cwd: &str) -> Res<bool> {
    let run = s
        .exec(exec_params(&["test", "-e", path], cwd), HOST_WAIT)
        .await?;
    match run.exit_code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => hfail(format!("test -e {path} on the host: {}", run.answer)),
    }
}

/// A new directory name under `base` (`tether-conf-` and 12 hex digits), for a case's
/// files.
pub(crate) fn fresh_dir_under(base: &str) -> String {
    format!(
        "{}/tether-conf-{}",
        base.trim_end_matches('/'),
        hex::encode(random_bytes::<6>())
    )
}

/// `params` of a `command/exec` with its `sandboxPolicy` member naming `mode`.
pub(crate) fn with_sandbox(mut params: Value, mode: &str) -> Value {
    if let Some(o) = params.as_object_mut() {
        o.insert("sandboxPolicy".to_owned(), policy(mode));
    }
    params
}
