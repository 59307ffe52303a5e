//! The host hygiene cases (issue 14): where a host keeps what a command must not reach,
//! and where a command runs when it names no directory.
//!
//! | requirement | case | what the runner checks |
//! |---|---|---|
//! | `CMD-71` | `CMD-71/exec-without-cwd` | a `command/exec` without `cwd` runs in the directory a `thread/start` without `cwd` gets, never in `/` |
//! | `SEC-22` | `SEC-22/state-dir-not-a-writable-root` | a `workspace-write` command whose `cwd` is the host's state directory, or a directory around it, is refused and writes nothing there |
//! | `SEC-23` | `SEC-23/credential-not-on-a-command-line` | no process a `danger-full-access` command can see has the workspace credential on its command line, and the command's environment does not hold it |
//!
//! The SEC cases need what the runner knows only about a host it started: the state
//! directory (`{state}`) for `SEC-22`; they are skipped, with the reason, otherwise.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::case::{Case, CaseResult, Level, Outcome, TargetKind};
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, check, credential_of, host_target, skip};
use crate::host_cases::{exec_ready, exists, sh};

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

macro_rules! hcase {
    ($id:literal, $req:literal, $secs:expr, $desc:literal, $body:ident) => {
        Case {
            id: $id,
            requirement: $req,
            level: Level::Must,
            description: $desc,
            timeout: Duration::from_secs($secs),
            target: TargetKind::Host,
            slow: false,
            exclusive: false,
            body: |cx| Box::pin(wrap(cx, $body)),
        }
    };
}

/// The hygiene cases, in spec order.
pub fn catalogue() -> Vec<Case> {
    vec![
        hcase!(
            "CMD-71/exec-without-cwd",
            "CMD-71",
            60,
            "command/exec without cwd runs in the host's default working directory (the one thread/start without cwd gets), never in /",
            exec_without_cwd
        ),
        hcase!(
            "SEC-22/state-dir-not-a-writable-root",
            "SEC-22",
            60,
            "a workspace-write command/exec whose cwd is the host's state directory or a directory around it is refused and writes nothing",
            state_dir_not_a_writable_root
        ),
        hcase!(
            "SEC-23/credential-not-on-a-command-line",
            "SEC-23",
            60,
            "no process visible to a command has the workspace credential on its command line, nor does the command's environment",
            credential_not_on_a_command_line
        ),
    ]
}

/// `text` quoted for `sh`.
fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `pwd -P` without `cwd`, unsandboxed.
fn pwd_without_cwd() -> Value {
    json!({"command": ["sh", "-c", "pwd -P"], "sandbox": "danger-full-access", "timeoutMs": 60000})
}

async fn exec_without_cwd(cx: Arc<Context>) -> Res<()> {
    let (mut s, _dir) = exec_ready(&cx, "ctl").await?;
    let run = s.exec(pwd_without_cwd(), HOST_WAIT).await?;
    let ran_in = String::from_utf8_lossy(&run.stdout).into_owned();
    // The host's default project, where it has one: the thread's cwd (CMD-17).
    let default = if s.has_capability(tether_proto::cmd::capability::AGENT_TEST) {
        let a = s
            .call(
                "thread/start",
                json!({"sandbox": "danger-full-access", "approvalPolicy": "never"}),
            )
            .await?;
        a.pointer("/result/thread/cwd")
            .and_then(Value::as_str)
            .map(str::to_owned)
    } else {
        None
    };
    match default {
        Some(cwd) => {
            let want = s.exec(sh("pwd -P", &cwd), HOST_WAIT).await?;
            check(
                run.exit_code() == Some(0) && !want.stdout.is_empty() && run.stdout == want.stdout,
                || {
                    format!(
                        "without cwd the command ran in {ran_in:?} ({}), not in the default project {cwd:?} a thread/start without cwd gets",
                        run.answer
                    )
                },
            )?;
        }
        // No default to compare with: -32602 (no default working directory), or a run
        // anywhere but the file-system root.
        None => check(
            run.error_code() == Some(-32602)
                || (run.exit_code() == Some(0) && !run.stdout.is_empty() && ran_in != "/\n"),
            || format!("without cwd: {} (ran in {ran_in:?})", run.answer),
        )?,
    }
    s.close().await;
    Ok(())
}

async fn state_dir_not_a_writable_root(cx: Arc<Context>) -> Res<()> {
    let Some(state) = host_target(&cx)?.state_dir.clone() else {
        return skip(
            "the runner does not know the host's state directory (it did not start the host with {state})",
        );
    };
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let around = match state.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent.to_owned(),
        _ => "/".to_owned(),
    };
    for (what, cwd) in [("the state directory", &state), ("its parent", &around)] {
        let marker = format!("{}/sec-22-planted", state.trim_end_matches('/'));
        let mut p = sh(&format!("echo planted > {}", q(&marker)), cwd);
        if let Some(o) = p.as_object_mut() {
            o.insert("sandbox".to_owned(), json!("workspace-write"));
        }
        let run = s.exec(p, HOST_WAIT).await?;
        let planted = exists(&mut s, &marker, &dir).await?;
        check(!planted, || {
            format!(
                "a workspace-write command in {what} ({cwd}) wrote into the state directory: {}",
                run.answer
            )
        })?;
        check(matches!(run.error_code(), Some(-32602 | -32012)), || {
            format!(
                "a workspace-write command/exec in {what} ({cwd}) was not refused: {}",
                run.answer
            )
        })?;
    }
    s.close().await;
    Ok(())
}

async fn credential_not_on_a_command_line(cx: Arc<Context>) -> Res<()> {
    let credential =
        String::from_utf8_lossy(&credential_of(host_target(&cx)?).credential).into_owned();
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let script = "for p in /proc/[0-9]*; do \
                    printf '%s ' \"${p#/proc/}\"; tr '\\0' ' ' < \"$p/cmdline\" 2>/dev/null; echo; \
                  done; echo ENVIRONMENT; env";
    let run = s.exec(sh(script, &dir), HOST_WAIT).await?;
    if run.exit_code() != Some(0) {
        return skip(format!(
            "the host did not run the probe unsandboxed: {}",
            run.answer
        ));
    }
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    let (procs, env) = out.split_once("\nENVIRONMENT\n").unwrap_or((&out, ""));
    check(procs.lines().count() > 1, || {
        format!("the probe listed no process: {out:?}")
    })?;
    // The runner itself may hold it (`tether conformance host --credential`) when it runs
    // beside the host.
    let me = std::process::id().to_string();
    let holders: Vec<&str> = procs
        .lines()
        .filter(|l| l.contains(&credential))
        .filter(|l| l.split(' ').next() != Some(me.as_str()))
        .map(|l| l.split(' ').next().unwrap_or("?"))
        .collect();
    check(holders.is_empty(), || {
        format!(
            "the workspace credential is on the command line of process(es) {} (SEC-23)",
            holders.join(", ")
        )
    })?;
    check(!env.contains(&credential), || {
        "the command's environment holds the workspace credential (SEC-23)".to_owned()
    })?;
    s.close().await;
    Ok(())
}
