//! Sandbox escape cases of what a confined command can reach and leave behind
//! (`spec/05` section 5.7): sockets, processes that outlive the command, a process limit,
//! `.git` kept read-only (`CMD-67` to `CMD-70`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::case::{Case, case};
use crate::cases::steps::devices::{pair_for_revocation, revoke};
use crate::cases::steps::exec::{exists, policy, sh};
use crate::cases::steps::sandbox::{
    FIND_PYTHON, NO_WORKSPACE_WRITE, Probe, accept_alongside, confined, lines, printed, q,
    restricted, unconfined, under,
};
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, Stop, check, hfail, skip};

/// The containment cases, in spec order.
pub const CASES: &[Case] = &[
    NO_SOCKETS,
    NO_SURVIVOR_AFTER_EXIT,
    NO_SURVIVOR_AFTER_KILL,
    NO_SURVIVOR_AFTER_REVOCATION,
    ANSWER_DESPITE_HELD_OUTPUT,
    PROCESS_LIMIT,
    GIT_READ_ONLY,
];

// ---------------------------------------------------------------------------------------
// CMD-67: no sockets

/// Tries `socket(2)` for each family, `socketpair(AF_UNIX)`, and a connection to the Unix
/// socket named by its argument (if any); prints what opened.
const SOCKETS_PY: &str = r#"import socket, sys
for name, family, kind in [("AF_INET", 2, socket.SOCK_STREAM), ("AF_INET6", 10, socket.SOCK_DGRAM),
        ("AF_UNIX", 1, socket.SOCK_STREAM), ("AF_NETLINK", 16, socket.SOCK_RAW),
        ("AF_PACKET", 17, socket.SOCK_RAW), ("AF_VSOCK", 40, socket.SOCK_STREAM)]:
    try:
        s = socket.socket(family, kind, 0)
    except OSError as e:
        print("refused", name, e.errno)
    else:
        print("opened", name)
        s.close()
try:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.send(b"x")
    print("socketpair", b.recv(1).decode())
except OSError as e:
    print("socketpair-refused", e.errno)
if len(sys.argv) > 1:
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect(sys.argv[1])
        c.send(b"x")
        print("connected")
    except OSError as e:
        print("connect-failed", e.errno)
print("end")
"#;

/// [`accept_alongside`] on the runner's Unix socket, when it has one.
async fn accept_unix_alongside<T>(
    listener: Option<&tokio::net::UnixListener>,
    run: impl Future<Output = Res<T>>,
) -> Res<(T, bool)> {
    match listener {
        Some(l) => accept_alongside(l, "the runner's Unix socket", run).await,
        None => Ok((run.await?, false)),
    }
}

const NO_SOCKETS: Case = case! {
    id: "CMD-67/no-sockets",
    level: Must,
    timeout: 90 s,
    description: "with network denied, socket(2) fails for every family and the runner's Unix socket gets no connection; socketpair works",
    host: no_sockets,
};
async fn no_sockets(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    // A Unix socket of the runner's, in the read-only run's cwd (readable there) — only
    // when the runner shares the host's file system and the path fits sun_path.
    let socket_path = p.path("runner.sock");
    let listener = if p.shared && socket_path.len() < 100 {
        tokio::net::UnixListener::bind(&socket_path).ok()
    } else {
        None
    };
    let script = |target: Option<&str>| {
        format!(
            "{FIND_PYTHON}if [ -z \"$PY\" ]; then echo no-python; exit 0; fi\n\"$PY\" -c {} {}\n",
            q(SOCKETS_PY),
            target.map(q).unwrap_or_default()
        )
    };
    let target = listener.as_ref().map(|_| socket_path.as_str());
    let (control, reached) = accept_unix_alongside(
        listener.as_ref(),
        unconfined(&mut p.s, &script(target), &dir),
    )
    .await?;
    if lines(&control).iter().any(|l| l == "no-python") {
        p.close().await;
        return skip("the host has no python3 to call socket(2) with");
    }
    // Without a sandbox the connection must arrive, or the host cannot reach the runner's
    // socket anyway: then only the families are checked.
    let listener = listener.filter(|_| reached);
    let target = listener.as_ref().map(|_| socket_path.as_str());
    let mut tried = 0;
    let mut no_python = Vec::new();
    for (mode, cwd) in restricted(&dir, &ww) {
        let (run, reached) = accept_unix_alongside(
            listener.as_ref(),
            under(&mut p.s, mode, &script(target), cwd),
        )
        .await?;
        let Some(run) = run else {
            continue;
        };
        if run.report().and_then(|r| r.pointer("/sandbox/network")) != Some(&json!("denied")) {
            continue;
        }
        let out = lines(&run);
        if out.iter().any(|l| l == "no-python") {
            no_python.push(mode);
            continue;
        }
        tried += 1;
        check(out.iter().any(|l| l == "end"), || {
            format!(
                "the socket probe did not run to its end under {mode}: {}",
                printed(&run)
            )
        })?;
        let opened: Vec<&str> = out
            .iter()
            .filter_map(|l| l.strip_prefix("opened "))
            .collect();
        check(opened.is_empty(), || {
            format!(
                "under {mode} with network denied, socket(2) opened {} (CMD-67: every family is refused)",
                opened.join(", ")
            )
        })?;
        check(!reached && !out.iter().any(|l| l == "connected"), || {
            format!(
                "under {mode} with network denied, the command connected to the runner's Unix socket {socket_path} (CMD-67)"
            )
        })?;
        check(out.iter().any(|l| l == "socketpair x"), || {
            format!(
                "under {mode} socketpair(AF_UNIX) did not work; it is not network access (CMD-67): {}",
                printed(&run)
            )
        })?;
    }
    drop(listener);
    let _ = std::fs::remove_file(&socket_path);
    p.close().await;
    if tried == 0 {
        if !no_python.is_empty() {
            return skip(format!(
                "python3 runs unsandboxed but not under {}: no tool to call socket(2) with",
                no_python.join(", ")
            ));
        }
        return skip("the host enforces neither read-only nor workspace-write with network denied");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-68: nothing survives the command

/// Starts, in a new session, a loop that appends a line to `beacon` (in cwd) every 0.1 s
/// until `stop` exists (at most 60 s), and waits until it wrote once. With
/// `hold_output`, the loop keeps the command's stdout open (it writes nothing there).
fn beacon_script(hold_output: bool) -> String {
    let output = if hold_output { "" } else { ">/dev/null" };
    format!(
        "loop='i=0; while [ $i -lt 600 ] && [ ! -e stop ]; do echo x >> beacon; i=$((i+1)); sleep 0.1; done'\n\
         if command -v setsid >/dev/null 2>&1; then setsid sh -c \"$loop\" </dev/null {output} 2>&1 &\n\
         else sh -c \"$loop\" </dev/null {output} 2>&1 & fi\n\
         j=0; while [ ! -s beacon ] && [ $j -lt 50 ]; do sleep 0.1; j=$((j+1)); done\n\
         echo started\n"
    )
}

impl Probe {
    /// After a command that ran [`beacon_script`] in `cwd` was answered: waits 1 s, then
    /// fails if the beacon grows over the next 1.5 s (or was never written). Stops the
    /// loop either way.
    async fn beacon_stays_still(&mut self, cwd: &str, how: &str) -> Res<()> {
        let beacon = format!("{cwd}/beacon");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let first = self.size(&beacon).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let second = self.size(&beacon).await?;
        // Stop a survivor, whatever the verdict.
        let _ = unconfined(&mut self.s, "touch stop", cwd).await;
        check(first.is_some_and(|n| n > 0), || {
            format!("{how}: the probe's background process never wrote {beacon}: it did not start")
        })?;
        check(first == second, || {
            format!(
                "{how}: a background process in a new session outlived the command and kept writing ({} then {} bytes) (CMD-68)",
                first.unwrap_or(0),
                second.unwrap_or(0)
            )
        })
    }
}

const NO_SURVIVOR_AFTER_EXIT: Case = case! {
    id: "CMD-68/no-survivor-after-exit",
    level: Must,
    timeout: 60 s,
    description: "under workspace-write a setsid background process is gone once the command/exec is answered",
    host: no_survivor_after_exit,
};
async fn no_survivor_after_exit(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let cwd = p.subdir("exit").await?;
    let script = format!("{}exit 0\n", beacon_script(false));
    if under(&mut p.s, "workspace-write", &script, &cwd)
        .await?
        .is_none()
    {
        p.close().await;
        return skip(NO_WORKSPACE_WRITE);
    }
    p.beacon_stays_still(&cwd, "under workspace-write, after the command exited")
        .await?;
    p.close().await;
    Ok(())
}

const NO_SURVIVOR_AFTER_KILL: Case = case! {
    id: "CMD-68/no-survivor-after-kill",
    level: Must,
    timeout: 90 s,
    description: "under workspace-write a setsid background process is gone once the command is ended by its time limit, command/exec/terminate or cancellation",
    host: no_survivor_after_kill,
};
async fn no_survivor_after_kill(cx: Arc<Context>) -> Res<()> {
    let mode = "workspace-write";
    let mut p = Probe::new(&cx).await?;
    let script = format!("{}sleep 1000\n", beacon_script(false));

    // The time limit.
    let cwd = p.subdir("limit").await?;
    let Some(run) = confined(
        &mut p.s,
        mode,
        &script,
        &cwd,
        json!({"timeoutMs": 1500}),
        Duration::from_secs(30),
    )
    .await?
    else {
        p.close().await;
        return skip(NO_WORKSPACE_WRITE);
    };
    check(
        run.report().and_then(|r| r.get("timedOut")) == Some(&json!(true)),
        || {
            format!(
                "under {mode} a command past its 1500 ms limit: {}",
                run.answer
            )
        },
    )?;
    p.beacon_stays_still(&cwd, &format!("under {mode}, after the time limit"))
        .await?;

    // command/exec/terminate, and tether/cancelled (CMD-57).
    for how in ["terminate", "cancel"] {
        let cwd = p.subdir(how).await?;
        let pid = format!("beacon-{how}");
        let mut params = sh(&script, &cwd);
        if let Some(o) = params.as_object_mut() {
            o.insert("sandboxPolicy".to_owned(), policy(mode));
            o.insert("processId".to_owned(), json!(pid));
            o.insert("streamStdoutStderr".to_owned(), json!(true));
        }
        let id = p.s.fresh_id();
        p.s.send_json(
            &json!({"jsonrpc": "2.0", "id": id, "method": "command/exec", "params": params}),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let what = if how == "terminate" {
            let t =
                p.s.call("command/exec/terminate", json!({"processId": pid}))
                    .await?;
            check(t.get("result").is_some(), || {
                format!("under {mode} command/exec/terminate of a running command: {t}")
            })?;
            "command/exec/terminate"
        } else {
            p.s.send_json(&json!({"jsonrpc": "2.0", "method": "tether/cancelled", "params": {"requestId": id}}))
                .await?;
            "tether/cancelled"
        };
        p.s.collect_exec(&json!(id), &pid, HOST_WAIT).await?;
        p.beacon_stays_still(&cwd, &format!("under {mode}, after {what}"))
            .await?;
    }
    p.close().await;
    Ok(())
}

/// The revoked device's session must be closed by then (`SEC-13`: 5 s, and a second of
/// slack for a loaded machine).
const REVOKED_CLOSED_WITHIN: Duration = Duration::from_secs(6);

const NO_SURVIVOR_AFTER_REVOCATION: Case = case! {
    id: "CMD-68/no-survivor-after-revocation",
    level: Must,
    timeout: 90 s,
    description: "under workspace-write a setsid background process of a device's command is gone once the device's revocation closes its session",
    host: no_survivor_after_revocation,
};
async fn no_survivor_after_revocation(cx: Arc<Context>) -> Res<()> {
    let mode = "workspace-write";
    let mut p = Probe::new(&cx).await?;
    let cwd = p.subdir("revoked").await?;
    // Before a token is spent: the mode must be enforced, and the runner able to revoke.
    if under(&mut p.s, mode, "true", &cwd).await?.is_none() {
        p.close().await;
        return skip(NO_WORKSPACE_WRITE);
    }
    let (device, mut r) = pair_for_revocation(&cx).await?;
    r.initialize().await?;
    let mut params = sh(&format!("{}sleep 1000\n", beacon_script(false)), &cwd);
    if let Some(o) = params.as_object_mut() {
        o.insert("sandboxPolicy".to_owned(), policy(mode));
        o.insert("processId".to_owned(), json!("beacon-revoked"));
        o.insert("streamStdoutStderr".to_owned(), json!(true));
    }
    let id = r.fresh_id();
    r.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "command/exec", "params": params}))
        .await?;
    // Revoked once the beacon writes.
    let beacon = format!("{cwd}/beacon");
    let started = Instant::now();
    while p.size(&beacon).await?.unwrap_or(0) == 0 {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = unconfined(&mut p.s, "touch stop", &cwd).await;
            return hfail(format!(
                "under {mode} the probe's background process never wrote {beacon}: it did not start"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    revoke(&cx, &device).await?;
    let revoked = Instant::now();
    let mut closed = false;
    while revoked.elapsed() < REVOKED_CLOSED_WITHIN {
        match r
            .next_frame(REVOKED_CLOSED_WITHIN.saturating_sub(revoked.elapsed()))
            .await
        {
            Ok(Err(_)) => {
                closed = true;
                break;
            }
            // Output and the answer of the killed command may come first.
            Ok(Ok(_)) => {}
            Err(_) => break,
        }
    }
    cx.log.note(
        "runner",
        if closed {
            format!(
                "the revoked device's session was closed {:.1} s after the revocation",
                revoked.elapsed().as_secs_f64()
            )
        } else {
            "the revoked device's session was not closed within 6 s (SEC-13)".to_owned()
        },
    );
    p.beacon_stays_still(
        &cwd,
        &format!("under {mode}, after the device that ran the command was revoked"),
    )
    .await?;
    p.close().await;
    Ok(())
}

const ANSWER_DESPITE_HELD_OUTPUT: Case = case! {
    id: "CMD-68/answer-despite-held-output",
    level: Must,
    timeout: 60 s,
    description: "a setsid background process holding stdout open neither keeps a command/exec with timeoutMs 3000 unanswered nor outlives its answer",
    host: answer_despite_held_output,
};
async fn answer_despite_held_output(cx: Arc<Context>) -> Res<()> {
    let mode = "workspace-write";
    let mut p = Probe::new(&cx).await?;
    let cwd = p.subdir("held").await?;
    // The background loop keeps the command's stdout open for up to 60 s.
    let script = format!("{}exit 0\n", beacon_script(true));
    let start = Instant::now();
    let run = confined(
        &mut p.s,
        mode,
        &script,
        &cwd,
        json!({"timeoutMs": 3000}),
        Duration::from_secs(15),
    )
    .await;
    let run = match run {
        Ok(run) => run,
        Err(Stop::Fail(r)) => {
            let _ = unconfined(&mut p.s, "touch stop", &cwd).await;
            return hfail(format!(
                "under {mode} with timeoutMs 3000, a background process holding stdout kept the command/exec unanswered for 15 s (CMD-68): {r}"
            ));
        }
        Err(skip) => return Err(skip),
    };
    let Some(run) = run else {
        p.close().await;
        return skip(NO_WORKSPACE_WRITE);
    };
    let took = start.elapsed();
    check(lines(&run).iter().any(|l| l == "started"), || {
        format!("under {mode} the probe did not run: {}", printed(&run))
    })?;
    check(took < Duration::from_secs(15), || {
        format!(
            "under {mode} the answer came after {:.1} s (CMD-68)",
            took.as_secs_f64()
        )
    })?;
    p.beacon_stays_still(
        &cwd,
        &format!(
            "under {mode}, after the answer to a command whose background process held stdout"
        ),
    )
    .await?;
    p.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-69: a process limit

/// The most processes a sandboxed command may run at once (`CMD-69`).
const MAX_PROCESSES: u64 = 1024;

/// Starts up to 1500 `sleep 30` in a subshell, which dies at the first fork that fails;
/// the reader counts them, kills them and prints `started N` (and `reached 1500`).
pub(crate) const FORK_SCRIPT: &str = "( i=0; while [ $i -lt 1500 ]; do sleep 30 </dev/null >/dev/null 2>&1 & echo \"$!\"; i=$((i+1)); done; echo all ) 2>/dev/null | {\n\
     n=0; pids=; all=\n\
     while read -r p; do case $p in all) all=1;; *) n=$((n+1)); pids=\"$pids $p\";; esac; done\n\
     kill $pids 2>/dev/null\n\
     echo \"started $n\"; if [ -n \"$all\" ]; then echo \"reached 1500\"; fi\n\
     }\n";

const PROCESS_LIMIT: Case = case! {
    id: "CMD-69/process-limit",
    level: Must,
    timeout: 150 s,
    description: "a sandboxed command cannot run more than 1024 processes at once",
    host: process_limit,
};
async fn process_limit(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for (mode, cwd) in restricted(&dir, &ww) {
        let Some(run) = confined(
            &mut p.s,
            mode,
            FORK_SCRIPT,
            cwd,
            json!({"timeoutMs": 60_000}),
            Duration::from_secs(70),
        )
        .await?
        else {
            continue;
        };
        tried += 1;
        let started: Option<u64> = lines(&run)
            .iter()
            .find_map(|l| l.strip_prefix("started "))
            .and_then(|n| n.trim().parse().ok());
        let Some(started) = started else {
            return hfail(format!(
                "the process-count probe did not report under {mode}: {}",
                printed(&run)
            ));
        };
        check(started >= 10, || {
            format!(
                "under {mode} the command could start only {started} processes: the probe did not run as meant"
            )
        })?;
        check(started <= MAX_PROCESSES, || {
            format!(
                "under {mode} the command ran {started} processes at once; at most {MAX_PROCESSES} are allowed (CMD-69)"
            )
        })?;
    }
    p.finish(tried).await
}

// ---------------------------------------------------------------------------------------
// CMD-70: .git read-only

const GIT_READ_ONLY: Case = case! {
    id: "CMD-70/git-read-only",
    level: Must,
    timeout: 60 s,
    description: "under workspace-write the .git directory of the writable root is read-only",
    host: git_read_only,
};
async fn git_read_only(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    if p.inside_host_tmp().await? {
        p.close().await;
        return skip(
            "the work directory is inside the host's temporary directory, where workspace-write may write: give --work-dir elsewhere",
        );
    }
    let dir = p.dir.clone();
    p.subdir(".git/hooks").await?;
    let hook = p.path(".git/hooks/post-commit");
    let config = p.path(".git/tether-probe");
    let other = p.path("other");
    let script = "echo 'touch pwned' > .git/hooks/post-commit; chmod +x .git/hooks/post-commit; \
                  echo x > .git/tether-probe; echo y > other\n";
    let Some(run) = under(&mut p.s, "workspace-write", script, &dir).await? else {
        p.close().await;
        return skip(NO_WORKSPACE_WRITE);
    };
    check(exists(&mut p.s, &other, &dir).await?, || {
        format!(
            "under workspace-write a write inside cwd did not happen: {}",
            printed(&run)
        )
    })?;
    for written in [&hook, &config] {
        check(!exists(&mut p.s, written, &dir).await?, || {
            format!(
                "under workspace-write the command wrote {written}: .git must stay read-only (CMD-70)"
            )
        })?;
    }
    p.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::json;

    use crate::host::ExecRun;

    use super::*;

    #[test]
    fn the_fork_probe_runs_here_as_the_case_reads_it() {
        // Unsandboxed on the machine running the tests: the script parses and prints what
        // the case looks for (a failure here is a broken probe, not a broken host).
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(FORK_SCRIPT.replace("1500", "20"))
            .output()
            .unwrap();
        let run = ExecRun {
            answer: json!({"result": {"exitCode": out.status.code(), "tether": {"exitCode": out.status.code()}}}),
            stdout: out.stdout,
            stderr: out.stderr,
            deltas: Vec::new(),
        };
        let out = lines(&run);
        assert!(out.contains(&"started 20".to_owned()), "{out:?}");
        assert!(out.contains(&"reached 20".to_owned()), "{out:?}");
    }
}
