//! Host cases of `spec/07` on the host's own state: the state directory is never a
//! writable root of a command (`SEC-22`), and the workspace credential is on no command line
//! (`SEC-23`). They need the state directory the runner knows only about a host it started
//! (`{state}`), and are skipped, with the reason, otherwise.

use std::sync::Arc;

use crate::case::{Case, case};
use crate::cases::steps::exec::{exec_ready, exists, sh, with_sandbox};
use crate::cases::steps::sandbox::{known_state_dir, q};
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, check, credential_of, host_target, skip};

/// The host-state cases, in spec order.
pub const CASES: &[Case] = &[
    STATE_DIR_NOT_A_WRITABLE_ROOT,
    CREDENTIAL_NOT_ON_A_COMMAND_LINE,
];

const STATE_DIR_NOT_A_WRITABLE_ROOT: Case = case! {
    id: "SEC-22/state-dir-not-a-writable-root",
    level: Must,
    timeout: 60 s,
    description: "a workspace-write command/exec whose cwd is the host's state directory or a directory around it is refused and writes nothing",
    host: state_dir_not_a_writable_root,
};
async fn state_dir_not_a_writable_root(cx: Arc<Context>) -> Res<()> {
    let state = known_state_dir(&cx)?;
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let around = match state.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent.to_owned(),
        _ => "/".to_owned(),
    };
    for (what, cwd) in [("the state directory", &state), ("its parent", &around)] {
        let marker = format!("{}/sec-22-planted", state.trim_end_matches('/'));
        let p = with_sandbox(
            sh(&format!("echo planted > {}", q(&marker)), cwd),
            "workspace-write",
        );
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

const CREDENTIAL_NOT_ON_A_COMMAND_LINE: Case = case! {
    id: "SEC-23/credential-not-on-a-command-line",
    level: Must,
    timeout: 60 s,
    description: "no process visible to a command has the workspace credential on its command line, nor does the command's environment",
    host: credential_not_on_a_command_line,
};
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
