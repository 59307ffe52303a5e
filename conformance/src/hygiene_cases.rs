//! The host hygiene cases: where a host keeps what a command must not reach,
//! where a command runs when it names no directory, what it reads from a project its
//! commands can write, and whose messages it acts on.
//!
//! | requirement | case | what the runner checks |
//! |---|---|---|
//! | `CHAN-30` | `CHAN-30/flood-does-not-lock-out-paired-devices` | while unknown keys (and a revoked device, where the runner can revoke) flood the host with message 1s, ten sessions of the paired device are all accepted |
//! | `CMD-71` | `CMD-71/exec-without-cwd` | a `command/exec` without `cwd` runs in the directory a `thread/start` without `cwd` gets, never in `/` |
//! | `CMD-72` | `CMD-72/fifo-not-waited-on` | an `AGENTS.md` that is a FIFO is not listed, the `thread/start` is answered, and another session is answered meanwhile |
//! | `CMD-72` | `CMD-72/device-not-read` | an `AGENTS.md` that is a link to `/dev/zero` is not listed and the `thread/start` is answered |
//! | `CMD-72` | `CMD-72/link-out-of-project` | an `AGENTS.md` that is a link to a file outside the project is not listed |
//! | `CMD-73` | `CMD-73/import-through-link-out` | a `thread/import` whose `cwdRelative` leads out of the project through a symlink gets -32602 and creates no thread; one whose link stays inside keeps the resolved `cwd` |
//! | `CMD-75` | `CMD-75/answer-after-revocation` | an `accept` sent by a device just after its revocation does not run the command, and its session is closed |
//! | `SEC-22` | `SEC-22/state-dir-not-a-writable-root` | a `workspace-write` command whose `cwd` is the host's state directory, or a directory around it, is refused and writes nothing there |
//! | `SEC-23` | `SEC-23/credential-not-on-a-command-line` | no process a `danger-full-access` command can see has the workspace credential on its command line, and the command's environment does not hold it |
//!
//! The SEC cases need what the runner knows only about a host it started: the state
//! directory (`{state}`) for `SEC-22`; they are skipped, with the reason, otherwise. The
//! `CMD-72` and `CMD-73` cases need threads (and `CMD-73` `thread.handoff`), `CMD-75` the
//! test agent (`agent.test`) and a way to revoke a device; each is skipped, with the
//! reason, on a host without. Every file they make lies in a fresh directory under the
//! runner's work directory (`--work-dir`), made with `danger-full-access` commands.
//! `CHAN-30` runs alone, like `CHAN-14`: its flood spends the shared message-1 bucket
//! every pairing depends on.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::channel::{HandshakePayload, Initiator, Prologue, Timestamp};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::time::UnixTime;

use crate::case::{Case, CaseResult, Level, Outcome, TargetKind};
use crate::context::Context;
use crate::host::{
    ChannelSession, Device, HOST_WAIT, Opened, Res, Stop, check, credential_of, hfail, host_target,
    paired, session_with, skip,
};
use crate::host_cases::{exec_ready, exists, pair_for_revocation, revoke, sh};
use crate::host_thread_cases::{
    mkdirs, run_sh, second, sources, start_thread, start_turn, threads_ready, until_approval,
    write_files,
};
use crate::link::{Link, controller, random_session};
use crate::traffic::describe;

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
        hcase!(@ $id, $req, $secs, false, $desc, $body)
    };
    (alone $id:literal, $req:literal, $secs:expr, $desc:literal, $body:ident) => {
        hcase!(@ $id, $req, $secs, true, $desc, $body)
    };
    (@ $id:literal, $req:literal, $secs:expr, $alone:expr, $desc:literal, $body:ident) => {
        Case {
            id: $id,
            requirement: $req,
            level: Level::Must,
            description: $desc,
            timeout: Duration::from_secs($secs),
            target: TargetKind::Host,
            slow: false,
            exclusive: $alone,
            body: |cx| Box::pin(wrap(cx, $body)),
        }
    };
}

/// The hygiene cases, in spec order.
pub fn catalogue() -> Vec<Case> {
    vec![
        hcase!(alone
            "CHAN-30/flood-does-not-lock-out-paired-devices",
            "CHAN-30",
            60,
            "while unknown and revoked keys flood the host with message 1s, every session the paired device opens is accepted",
            flood_does_not_lock_out
        ),
        hcase!(
            "CMD-71/exec-without-cwd",
            "CMD-71",
            60,
            "command/exec without cwd runs in the host's default working directory (the one thread/start without cwd gets), never in /",
            exec_without_cwd
        ),
        hcase!(
            "CMD-72/fifo-not-waited-on",
            "CMD-72",
            60,
            "a FIFO named AGENTS.md is not listed; thread/start is answered, and another session's request meanwhile",
            fifo_not_waited_on
        ),
        hcase!(
            "CMD-72/device-not-read",
            "CMD-72",
            60,
            "an AGENTS.md linked to /dev/zero is not listed and thread/start is answered",
            device_not_read
        ),
        hcase!(
            "CMD-72/link-out-of-project",
            "CMD-72",
            60,
            "an AGENTS.md linked to a file outside the project root is not listed",
            link_out_of_project
        ),
        hcase!(
            "CMD-73/import-through-link-out",
            "CMD-73",
            60,
            "thread/import whose cwdRelative leads out of the project through a symlink gets -32602 and creates no thread",
            import_through_link_out
        ),
        hcase!(
            "CMD-75/answer-after-revocation",
            "CMD-75",
            60,
            "an accept a device sends just after it was revoked does not run the command, and its session is closed",
            answer_after_revocation
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

// ---------------------------------------------------------------------------------------
// CHAN-30: one sender's flood does not lock out the paired devices

/// Controller links of the flood, and the message 1s each may have unanswered: below the
/// relay's 16 sessions per controller link, and 45 in all below its 64 per host link
/// (`LINK-20`), with room for the paired device's own session.
const FLOOD_LINKS: usize = 3;
const FLOOD_IN_FLIGHT_PER_LINK: usize = 15;

/// One message 1 every millisecond at most: a steady stream (a burst now and then would
/// leave the shared bucket, 50 a second, tokens to give between bursts), twenty times the
/// shared bucket's refill and a fifth of the read budget (5 000 a second, `CHAN-14`), which
/// a faster flood would spend for everyone. Over a slow link the unanswered ones bound it
/// lower (45 per round trip).
const FLOOD_STEP: Duration = Duration::from_millis(1);

/// The flood's bounds, whatever happens to the paired device's sessions.
const FLOOD_MAX_TIME: Duration = Duration::from_secs(5);
const FLOOD_MAX_MESSAGES: usize = 5_000;

/// Sessions the paired device opens during the flood, one after another: as many as its
/// own bucket holds (`CHAN-30`: capacity 10, 5 a second).
const PAIRED_SESSIONS: usize = 10;

/// What the flood got back.
#[derive(Debug, Default)]
struct FloodTally {
    sent: usize,
    rate_limited: usize,
    refused: usize,
}

impl FloodTally {
    fn count(&mut self, frame: &RelayFrame) -> Res<()> {
        match frame {
            RelayFrame::Close { code, .. } if *code == CloseCode::RATE_LIMITED => {
                self.rate_limited += 1;
            }
            RelayFrame::Close { .. } => self.refused += 1,
            other => {
                return hfail(format!(
                    "a message 1 of the flood was answered with {}",
                    describe(other)
                ));
            }
        }
        Ok(())
    }
}

/// `n` correct message 1s (`SESSION` payloads) from `senders` in turn, each for a fresh
/// session id: the host reads the claimed key of each (section 4.7, step 4.1), so every
/// one is charged to its sender's bucket.
fn flood_messages(
    senders: &[[u8; 32]],
    host_key: &[u8; 32],
    workspace: &str,
    n: usize,
) -> Result<Vec<(SessionId, Vec<u8>)>, String> {
    senders
        .iter()
        .cycle()
        .take(n)
        .map(|private| {
            let session = random_session();
            let prologue = Prologue::new(workspace, host_key, session)
                .map_err(|e| format!("prologue: {e}"))?;
            let payload = HandshakePayload::Session {
                timestamp: Timestamp::next_after(None, UnixTime::now()),
            };
            let init = Initiator::new(private, host_key, &prologue, &payload)
                .map_err(|e| format!("message 1: {e}"))?;
            Ok((session, init.message1().to_vec()))
        })
        .collect()
}

/// Floods the host from `senders`, one message 1 per [`FLOOD_STEP`] on the links in turn,
/// until `done` (the paired device's sessions are over) or the flood's bounds; then waits
/// for every answer. The message 1s are written on a blocking thread ahead of the flood.
async fn flood(
    links: Vec<Link>,
    senders: Vec<[u8; 32]>,
    host_key: [u8; 32],
    workspace: String,
    done: &AtomicBool,
) -> Res<FloodTally> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(SessionId, Vec<u8>)>(256);
    let writer = tokio::task::spawn_blocking(move || {
        let mut written = 0;
        while written < FLOOD_MAX_MESSAGES {
            for m in flood_messages(&senders, &host_key, &workspace, 16)? {
                if tx.blocking_send(m).is_err() {
                    return Ok(());
                }
                written += 1;
            }
        }
        Ok::<(), String>(())
    });
    // Each link with the number of its message 1s not answered yet.
    let mut links: Vec<(Link, usize)> = links.into_iter().map(|l| (l, 0)).collect();
    let mut tally = FloodTally::default();
    let mut tick = tokio::time::interval(FLOOD_STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut turn = 0usize;
    while !done.load(Ordering::Relaxed)
        && start.elapsed() < FLOOD_MAX_TIME
        && tally.sent < FLOOD_MAX_MESSAGES
    {
        tick.tick().await;
        turn = turn.wrapping_add(1);
        let count = links.len().max(1);
        if let Some((link, unanswered)) = links.get_mut(turn % count)
            && *unanswered < FLOOD_IN_FLIGHT_PER_LINK
        {
            let Some((session, handshake)) = rx.recv().await else {
                break;
            };
            link.send(&RelayFrame::Open {
                session,
                host_key,
                handshake,
            })
            .await?;
            *unanswered += 1;
            tally.sent += 1;
        }
        // The answers already there.
        for (link, unanswered) in &mut links {
            while *unanswered > 0 {
                let Ok(frame) = link.recv(Duration::ZERO).await else {
                    break;
                };
                *unanswered -= 1;
                tally.count(&frame)?;
            }
        }
    }
    drop(rx);
    for (mut link, unanswered) in links {
        for _ in 0..unanswered {
            let frame = link.recv(Duration::from_secs(10)).await?;
            tally.count(&frame)?;
        }
        link.close_websocket().await;
    }
    writer
        .await
        .map_err(|e| Stop::Fail(format!("writing the flood's message 1s: {e}")))?
        .map_err(|e| Stop::Fail(format!("writing the flood's message 1s: {e}")))?;
    Ok(tally)
}

/// The paired device opens [`PAIRED_SESSIONS`] sessions one after another (after the flood
/// has had half a second to empty the shared bucket); returns the refusals.
async fn paired_sessions(cx: &Context) -> Res<Vec<String>> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refusals = Vec::new();
    for i in 1..=PAIRED_SESSIONS {
        match session_with(cx, &format!("paired-{i}"), None).await? {
            Opened::Established(s) => s.close().await,
            Opened::Refused(code, _) => refusals.push(format!("session {i}: CLOSE {code}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(refusals)
}

async fn flood_does_not_lock_out(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let host = host_target(&cx)?;
    // The flood's senders: a key never paired, and a device paired and then revoked where
    // the runner can revoke one and has a token to spare.
    let mut senders = vec![Device::fresh("flood-unknown").private];
    let mut who = "a key never paired".to_owned();
    if host.admin.can_revoke() {
        match pair_for_revocation(&cx).await {
            Ok((device, s)) => {
                s.close().await;
                revoke(&cx, &device).await?;
                senders.push(device.private);
                who.push_str(" and a revoked device");
            }
            Err(Stop::Skip(why)) => cx
                .log
                .note("runner", format!("the flood has no revoked sender: {why}")),
            Err(e) => return Err(e),
        }
    }
    let mut links = Vec::new();
    for i in 0..FLOOD_LINKS {
        links.push(controller(&cx, &format!("flood-{i}"), &host.relay.workspace).await?);
    }
    // The paired device's own bucket fills (capacity 10 at 5 a second) while nothing
    // happens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = AtomicBool::new(false);
    let flooding = flood(
        links,
        senders,
        identity.host_key(),
        identity.workspace().to_owned(),
        &done,
    );
    let opening = async {
        let r = paired_sessions(&cx).await;
        done.store(true, Ordering::Relaxed);
        r
    };
    let start = Instant::now();
    let (tally, refusals) = tokio::join!(flooding, opening);
    let secs = start.elapsed().as_secs_f64();
    // Let the shared bucket fill again for the cases that follow (pairings use it).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (tally, refusals) = (tally?, refusals?);
    cx.log.note(
        "runner",
        format!(
            "flood from {who}: {} message 1s in {secs:.2} s, {} rate-limited, {} refused otherwise",
            tally.sent, tally.rate_limited, tally.refused
        ),
    );
    check(refusals.is_empty(), || {
        format!(
            "{} of {PAIRED_SESSIONS} sessions of the paired device were refused while {who} flooded the host with message 1s ({}); a paired device pays from its own bucket, which no other key's message 1 may spend (CHAN-30)",
            refusals.len(),
            refusals.join(", ")
        )
    })?;
    check(tally.rate_limited > 0, || {
        format!(
            "{} message 1s from {who} in {secs:.2} s were all processed: every sender but a paired device shares one bucket of 50 a second (CHAN-30, CHAN-14)",
            tally.sent
        )
    })
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

async fn device_not_read(cx: Arc<Context>) -> Res<()> {
    linked_agents_md(&cx, Some("/dev/zero"), "a link to /dev/zero").await
}

async fn link_out_of_project(cx: Arc<Context>) -> Res<()> {
    linked_agents_md(&cx, None, "a link to a file outside the project").await
}

// ---------------------------------------------------------------------------------------
// CMD-73: an imported thread stays inside its project

/// A bundle of no items whose `cwdRelative` is `relative`.
fn bundle(relative: &str) -> Value {
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
async fn resolved(s: &mut ChannelSession, path: &str) -> Res<String> {
    let run = s.exec(sh("pwd -P", path), HOST_WAIT).await?;
    let out = String::from_utf8_lossy(&run.stdout).trim_end().to_owned();
    check(run.exit_code() == Some(0) && !out.is_empty(), || {
        format!("pwd -P in {path} on the host: {}", run.answer)
    })?;
    Ok(out)
}

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
            "thread/import",
            json!({"bundle": bundle("inlink"), "projectRoot": proj}),
        )
        .await?;
    let Some(r) = a.get("result") else {
        return hfail(format!(
            "thread/import with cwdRelative \"inlink\", a symlink to {proj}/real inside the project root: {a}"
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
            "thread/import",
            json!({"bundle": bundle("link/inside"), "projectRoot": proj}),
        )
        .await?;
    check(
        a.pointer("/error/code").and_then(Value::as_i64) == Some(-32602),
        || {
            format!(
                "thread/import with cwdRelative \"link/inside\", where link is a symlink to {outside} outside the project root {proj}: expected -32602 (CMD-73), got {a}"
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
