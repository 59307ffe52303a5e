//! Host cases of input a host must not trust (`spec/05` sections 5.5, 5.6, 5.8, 5.9): where a
//! command without `cwd` runs (`CMD-71`), instruction files that are FIFOs, devices or links
//! out of the project (`CMD-72`), an imported thread whose `cwd` leads out of its project
//! (`CMD-73`), and an approval answer from a device revoked meanwhile (`CMD-75`).
//!
//! They need threads (and `CMD-73` `thread.handoff`, `CMD-75` the test agent and a way to
//! revoke a device); each is skipped, with the reason, on a host without. Every file they
//! make lies in a fresh directory under the runner's work directory (`--work-dir`), made
//! with `danger-full-access` commands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::link::CloseCode;
use tether_proto::time::UnixTime;

use crate::case::{Case, case};
use crate::cases::steps::devices::{pair_for_revocation, revoke};
use crate::cases::steps::exec::{exec_ready, exists, sh};
use crate::cases::steps::sandbox::q;
use crate::cases::steps::threads::{
    mkdirs, run_sh, second, sources, start_thread, start_turn, threads_ready, until_approval,
    write_files,
};
use crate::context::Context;
use crate::host::{ChannelSession, HOST_WAIT, Res, Stop, check, hfail, host_target, skip};

/// The untrusted-input cases, in spec order.
pub const CASES: &[Case] = &[
    EXEC_WITHOUT_CWD,
    FIFO_NOT_WAITED_ON,
    DEVICE_NOT_READ,
    LINK_OUT_OF_PROJECT,
    IMPORT_THROUGH_LINK_OUT,
    ANSWER_AFTER_REVOCATION,
];

/// `pwd -P` without `cwd`, unsandboxed.
fn pwd_without_cwd() -> Value {
    json!({"command": ["sh", "-c", "pwd -P"], "sandboxPolicy": {"type": "dangerFullAccess"}, "timeoutMs": 60000})
}

const EXEC_WITHOUT_CWD: Case = case! {
    id: "CMD-71/exec-without-cwd",
    level: Must,
    timeout: 60 s,
    description: "command/exec without cwd runs in the host's default working directory (the one thread/start without cwd gets), never in /",
    host: exec_without_cwd,
};
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

// ---------------------------------------------------------------------------------------
// CMD-72: instruction files are untrusted input

/// How long a `thread/start` in a project with a hostile `AGENTS.md` may take: the file
/// counts as absent at once, but a host may give up on slow files after a bound of its own.
const OPEN_WITHIN: Duration = Duration::from_secs(15);

/// How long another session's request may wait meanwhile.
const OTHER_SESSION_WITHIN: Duration = Duration::from_secs(10);

/// A project for the `CMD-72` cases: `DIR/proj` with `.git` and a `sub` directory whose
/// `AGENTS.md` is a regular file. Returns the project and `sub`.
async fn agents_project(s: &mut ChannelSession, dir: &str) -> Res<(String, String)> {
    let proj = format!("{dir}/proj");
    let sub = format!("{proj}/sub");
    mkdirs(s, &[&format!("{proj}/.git"), &sub], dir).await?;
    write_files(s, &[(format!("{sub}/AGENTS.md"), "sub".to_owned())], dir).await?;
    Ok((proj, sub))
}

/// The params of a `thread/start` in `cwd` (danger-full-access, never).
fn thread_start_params(cwd: &str) -> Value {
    json!({"cwd": cwd, "sandbox": "danger-full-access", "approvalPolicy": "never"})
}

/// The `instructionSources` of a `thread/start` answer; a skip for a host without threads.
fn opened_sources(answer: &Value, what: &str) -> Res<Vec<String>> {
    match answer.get("result") {
        Some(r) => Ok(sources(r)),
        None if answer.pointer("/error/code").and_then(Value::as_i64) == Some(-32601) => {
            skip("the host does not serve threads (thread/start: method not found)")
        }
        None => hfail(format!("{what}: thread/start got {answer}")),
    }
}

/// `CMD-72`: of the files under `proj`, only `sub/AGENTS.md` may be listed (or nothing, if
/// the host gave up on the files after its own time bound).
fn only_the_regular_file(got: &[String], sub: &str, what: &str) -> Res<()> {
    let allowed = format!("{sub}/AGENTS.md");
    check(got.iter().all(|g| *g == allowed), || {
        format!(
            "instructionSources {got:?}: the project's AGENTS.md is {what}, which counts as absent (CMD-72); only {allowed} may be listed"
        )
    })
}

const FIFO_NOT_WAITED_ON: Case = case! {
    id: "CMD-72/fifo-not-waited-on",
    level: Must,
    timeout: 60 s,
    description: "a FIFO named AGENTS.md is not listed; thread/start is answered, and another session's request meanwhile",
    host: fifo_not_waited_on,
};
async fn fifo_not_waited_on(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let (proj, sub) = agents_project(&mut s, &dir).await?;
    let fifo = s
        .exec(
            sh(
                "command -v mkfifo >/dev/null 2>&1 || exit 3; mkfifo AGENTS.md",
                &proj,
            ),
            HOST_WAIT,
        )
        .await?;
    match fifo.exit_code() {
        Some(0) => {}
        Some(3) => return skip("the host has no mkfifo to make a FIFO with"),
        _ => return hfail(format!("mkfifo AGENTS.md on the host: {}", fifo.answer)),
    }
    let mut other = second(&cx, "other").await?;
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "thread/start", "params": thread_start_params(&sub)}))
        .await?;
    let sent = Instant::now();
    // Another session is served meanwhile (any answer will do), once the host had time to
    // take up the thread/start, which may come to it through the relay after a request
    // sent later on another link.
    tokio::time::sleep(Duration::from_millis(500)).await;
    other
        .call_wait("thread/list", json!({"limit": 1}), OTHER_SESSION_WITHIN)
        .await
        .map_err(|e| match e {
            Stop::Fail(r) => Stop::Fail(format!(
                "while a thread/start read the project's AGENTS.md, a FIFO, another session's thread/list got no answer within {} s: the host waits on the FIFO where it serves its sessions (CMD-72): {r}",
                OTHER_SESSION_WITHIN.as_secs()
            )),
            skip => skip,
        })?;
    other.close().await;
    let answer = s
        .answer_to(&json!(id), OPEN_WITHIN.saturating_sub(sent.elapsed()))
        .await
        .map_err(|e| match e {
            Stop::Fail(r) => Stop::Fail(format!(
                "thread/start in a project whose AGENTS.md is a FIFO was not answered within {} s (CMD-72): {r}",
                OPEN_WITHIN.as_secs()
            )),
            skip => skip,
        })?;
    let got = opened_sources(&answer, "in a project whose AGENTS.md is a FIFO")?;
    only_the_regular_file(&got, &sub, "a FIFO")?;
    // A FIFO left in the work directory could hold some other program.
    let _ = s.exec(sh("rm -f AGENTS.md", &proj), HOST_WAIT).await;
    s.close().await;
    Ok(())
}

/// Links `proj/AGENTS.md` to `target`, starts a thread in `sub` and checks the listing.
async fn linked_agents_md(cx: &Context, target: Option<&str>, what: &str) -> Res<()> {
    let (mut s, dir) = threads_ready(cx, "ctl", false).await?;
    let (proj, sub) = agents_project(&mut s, &dir).await?;
    // Without a target: a file of the runner's directory, beside the project.
    let outside = format!("{dir}/outside-instructions.md");
    let target = match target {
        Some(t) => t.to_owned(),
        None => {
            write_files(
                &mut s,
                &[(outside.clone(), "instructions from outside".to_owned())],
                &dir,
            )
            .await?;
            outside
        }
    };
    run_sh(&mut s, &format!("ln -s {} AGENTS.md", q(&target)), &proj).await?;
    let answer = s
        .call_wait("thread/start", thread_start_params(&sub), OPEN_WITHIN)
        .await
        .map_err(|e| match e {
            Stop::Fail(r) => Stop::Fail(format!(
                "thread/start in a project whose AGENTS.md is {what} was not answered within {} s (CMD-72): {r}",
                OPEN_WITHIN.as_secs()
            )),
            skip => skip,
        })?;
    let got = opened_sources(&answer, &format!("in a project whose AGENTS.md is {what}"))?;
    only_the_regular_file(&got, &sub, what)?;
    s.close().await;
    Ok(())
}

const DEVICE_NOT_READ: Case = case! {
    id: "CMD-72/device-not-read",
    level: Must,
    timeout: 60 s,
    description: "an AGENTS.md linked to /dev/zero is not listed and thread/start is answered",
    host: device_not_read,
};
async fn device_not_read(cx: Arc<Context>) -> Res<()> {
    linked_agents_md(&cx, Some("/dev/zero"), "a link to /dev/zero").await
}

const LINK_OUT_OF_PROJECT: Case = case! {
    id: "CMD-72/link-out-of-project",
    level: Must,
    timeout: 60 s,
    description: "an AGENTS.md linked to a file outside the project root is not listed",
    host: link_out_of_project,
};
async fn link_out_of_project(cx: Arc<Context>) -> Res<()> {
    linked_agents_md(&cx, None, "a link to a file outside the project").await
}

// ---------------------------------------------------------------------------------------
// CMD-73: an imported thread stays inside its project

/// A bundle of no items whose `cwdRelative` is `relative`.
pub(crate) fn bundle(relative: &str) -> Value {
    json!({
        "version": 1,
        "cwdRelative": relative,
        "sandbox": "danger-full-access",
        "approvalPolicy": "never",
        "items": [],
        "exportedAt": UnixTime::now().as_secs(),
    })
}

/// `path` with every symlink resolved, as the host sees it (`pwd -P`).
pub(crate) async fn resolved(s: &mut ChannelSession, path: &str) -> Res<String> {
    let run = s.exec(sh("pwd -P", path), HOST_WAIT).await?;
    let out = String::from_utf8_lossy(&run.stdout).trim_end().to_owned();
    check(run.exit_code() == Some(0) && !out.is_empty(), || {
        format!("pwd -P in {path} on the host: {}", run.answer)
    })?;
    Ok(out)
}

const IMPORT_THROUGH_LINK_OUT: Case = case! {
    id: "CMD-73/import-through-link-out",
    level: Must,
    timeout: 60 s,
    description: "tether/thread/import whose cwdRelative leads out of the project through a symlink gets -32602 and creates no thread",
    host: import_through_link_out,
};
async fn import_through_link_out(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    if !s.has_capability(tether_proto::cmd::capability::THREAD_HANDOFF) {
        s.close().await;
        return skip("the host does not offer thread.handoff (CMD-16)");
    }
    // proj/link leads out of the project (to the runner's own directory beside it),
    // proj/inlink stays inside.
    let proj = format!("{dir}/proj");
    let outside = format!("{dir}/outside");
    mkdirs(
        &mut s,
        &[
            &format!("{proj}/.git"),
            &format!("{proj}/real"),
            &format!("{outside}/inside"),
        ],
        &dir,
    )
    .await?;
    run_sh(
        &mut s,
        &format!("ln -s {} link && ln -s real inlink", q(&outside)),
        &proj,
    )
    .await?;
    let real = resolved(&mut s, &format!("{proj}/real")).await?;
    let escaped = resolved(&mut s, &format!("{outside}/inside")).await?;

    // Through a link that stays inside: imported, with the resolved cwd.
    let a = s
        .call(
            "tether/thread/import",
            json!({"bundle": bundle("inlink"), "projectRoot": proj}),
        )
        .await?;
    let Some(r) = a.get("result") else {
        return hfail(format!(
            "tether/thread/import with cwdRelative \"inlink\", a symlink to {proj}/real inside the project root: {a}"
        ));
    };
    check(r.pointer("/thread/cwd") == Some(&json!(real)), || {
        format!(
            "the thread imported through the symlink inlink has cwd {:?}; it keeps the resolved cwd {real:?} (CMD-73)",
            r.pointer("/thread/cwd")
        )
    })?;

    // Through a link out of it: refused, and no thread.
    let a = s
        .call(
            "tether/thread/import",
            json!({"bundle": bundle("link/inside"), "projectRoot": proj}),
        )
        .await?;
    check(
        a.pointer("/error/code").and_then(Value::as_i64) == Some(-32602),
        || {
            format!(
                "tether/thread/import with cwdRelative \"link/inside\", where link is a symlink to {outside} outside the project root {proj}: expected -32602 (CMD-73), got {a}"
            )
        },
    )?;
    let list = s.call_ok("thread/list", json!({"limit": 1000})).await?;
    let unresolved = format!("{proj}/link/inside");
    let out: Vec<&str> = list
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("cwd").and_then(Value::as_str))
        .filter(|cwd| *cwd == escaped || *cwd == unresolved)
        .collect();
    check(out.is_empty(), || {
        format!(
            "the refused import created a thread anyway: thread/list shows a thread in {out:?} (CMD-73: it creates no thread)"
        )
    })?;
    s.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-75: an approval answer is checked when it arrives

/// What the revoked device's session saw after its answer: the `CLOSE` code, if one came
/// within `wait`, and whether the host announced the approval resolved as `accept`.
async fn after_answer(s: &mut ChannelSession, wait: Duration) -> (Option<CloseCode>, bool) {
    let deadline = Instant::now() + wait;
    let mut accepted = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (None, accepted);
        }
        match s.next_frame(left).await {
            Ok(Err(code)) => return (Some(code), accepted),
            Ok(Ok(payload)) => {
                let mut plain = Vec::new();
                if s.transport.decrypt(&payload, &mut plain).is_ok() {
                    let v: Value = serde_json::from_slice(&plain).unwrap_or(Value::Null);
                    if v.get("method") == Some(&json!("serverRequest/resolved"))
                        && v.pointer("/params/decision") == Some(&json!("accept"))
                    {
                        accepted = true;
                    }
                }
            }
            Err(_) => return (None, accepted),
        }
    }
}

const ANSWER_AFTER_REVOCATION: Case = case! {
    id: "CMD-75/answer-after-revocation",
    level: Must,
    timeout: 60 s,
    description: "an accept a device sends just after it was revoked does not run the command, and its session is closed",
    host: answer_after_revocation,
};
async fn answer_after_revocation(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", true).await?;
    if !host_target(&cx)?.admin.can_revoke() {
        s.close().await;
        return skip("needs a way to revoke a device: give --revoke-cmd");
    }
    let (device, mut r) = pair_for_revocation(&cx).await?;
    r.initialize().await?;
    let marker = format!("{dir}/cmd-75-ran");
    let (thread, _) = start_thread(&mut r, &dir, "untrusted").await?;
    start_turn(&mut r, &thread, &format!("$ touch {}", q(&marker))).await?;
    let (id, _, _) = until_approval(&mut r, &thread).await?;
    revoke(&cx, &device).await?;
    // At once: before a host that re-checks open sessions now and then gets to this one.
    let answered = Instant::now();
    let _ = r.answer(&id, json!({"decision": "accept"})).await;
    // SEC-13 closes the session within 5 s anyway; CMD-75 requires the answer not to act.
    let (closed, accepted) = after_answer(&mut r, Duration::from_secs(7)).await;
    // An accepted `touch` runs within moments.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(answered.elapsed())).await;
    let ran = exists(&mut s, &marker, &dir).await?;
    check(!ran, || {
        format!(
            "an accept sent just after the device was revoked ran the command ({marker} exists): the answer must be checked against the device's state when it arrives (CMD-75)"
        )
    })?;
    check(!accepted, || {
        "the host announced the revoked device's accept as resolving the approval (serverRequest/resolved, decision accept) (CMD-75)".to_owned()
    })?;
    match closed {
        Some(code) if code == CloseCode::NOT_AUTHORIZED => {}
        Some(code) => {
            return hfail(format!(
                "the revoked device's session was closed with CLOSE {code}; expected NOT_AUTHORIZED (CMD-75, CMD-56)"
            ));
        }
        None => {
            return hfail(
                "the session that answered after its device was revoked was not closed within 7 s (CMD-75: closed as for a request)",
            );
        }
    }
    s.close().await;
    Ok(())
}
