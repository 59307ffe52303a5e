//! The sandbox escape cases (`spec/05`, section 5.7: `CMD-44` for `command/exec`'s roots,
//! `CMD-62` … `CMD-70`): one case per way a hostile command got out of a host's
//! `read-only` or `workspace-write` sandbox. `danger-full-access` has no
//! sandbox and is used only as the control.
//!
//! Each case asks the host, through `command/exec`, to run probe commands under the
//! restricted modes and judges the outcome from outside the sandbox: files the runner
//! inspects itself when it shares the host's file system (else through an unsandboxed
//! `command/exec`), exit codes and output, timing with wide margins, and a Unix socket the
//! runner listens on. Where a probe needs a baseline (which namespaces the host's commands
//! are in, whether the host has a controlling terminal), the same probe runs first under
//! `danger-full-access`.
//!
//! A case is skipped, with the reason, when the host refuses both restricted modes or
//! reports them degraded (nothing enforced to check), when the host lacks a tool the probe
//! needs (`python3` for the socket and terminal probes), or when what it checks is absent
//! on the host (no controlling terminal, a state directory the runner was not told).
//!
//! | escape | case |
//! |---|---|
//! | host processes and namespaces shared | `CMD-62/fresh-namespaces-and-view` |
//! | state directory, keys, credential readable | `CMD-63/state-dir-invisible`, `CMD-63/credential-invisible` |
//! | chmod/chown/utime/setxattr outside the roots | `CMD-64/metadata-writes-refused` |
//! | TIOCSTI into the host's terminal | `CMD-65/no-controlling-terminal` |
//! | capabilities kept, user namespaces | `CMD-66/no-privileges` |
//! | AF_PACKET, netlink, vsock, Unix sockets | `CMD-67/no-sockets` |
//! | `setsid` children outliving the command | `CMD-68/no-survivor-after-exit`, `CMD-68/no-survivor-after-kill`, `CMD-68/no-survivor-after-revocation`, `CMD-68/answer-despite-held-output` |
//! | no process-count limit | `CMD-69/process-limit` |
//! | `.git/hooks` writable | `CMD-70/git-read-only` |
//! | `command/exec` writes its project root, not only `cwd` | `CMD-44/exec-writes-only-cwd` |

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::case::{Case, CaseResult, Level, Outcome, TargetKind};
use crate::context::Context;
use crate::host::{ChannelSession, ExecRun, HOST_WAIT, Res, Stop, check, hfail, host_target, skip};
use crate::host_cases::{
    accept_alongside, exec_ready, exists, pair_for_revocation, result_of, revoke, sh,
};

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

macro_rules! scase {
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

/// The sandbox escape cases, in spec order.
pub fn catalogue() -> Vec<Case> {
    vec![
        scase!(
            "CMD-44/exec-writes-only-cwd",
            "CMD-44",
            60,
            "under workspace-write a command/exec writes inside its cwd, not in the project root above it",
            exec_writes_only_cwd
        ),
        scase!(
            "CMD-62/fresh-namespaces-and-view",
            "CMD-62",
            120,
            "a sandboxed command is in fresh user, mount, PID, IPC, UTS and network namespaces and sees none of the host's processes",
            fresh_namespaces
        ),
        scase!(
            "CMD-63/state-dir-invisible",
            "CMD-63",
            60,
            "the host's state directory and every file in it do not exist for a sandboxed command",
            state_dir_invisible
        ),
        scase!(
            "CMD-63/credential-invisible",
            "CMD-63",
            90,
            "no process a sandboxed command can see has the workspace credential in its command line or environment",
            credential_invisible
        ),
        scase!(
            "CMD-64/metadata-writes-refused",
            "CMD-64",
            60,
            "chmod, chown, utime and setxattr of a file outside the writable roots change nothing",
            metadata_writes_refused
        ),
        scase!(
            "CMD-65/no-controlling-terminal",
            "CMD-65",
            60,
            "a sandboxed command cannot open the host's controlling terminal nor push input into it with TIOCSTI",
            no_controlling_terminal
        ),
        scase!(
            "CMD-66/no-privileges",
            "CMD-66",
            60,
            "a sandboxed command has every capability set empty, no_new_privs set, and cannot create a user namespace",
            no_privileges
        ),
        scase!(
            "CMD-67/no-sockets",
            "CMD-67",
            90,
            "with network denied, socket(2) fails for every family and the runner's Unix socket gets no connection; socketpair works",
            no_sockets
        ),
        scase!(
            "CMD-68/no-survivor-after-exit",
            "CMD-68",
            60,
            "under workspace-write a setsid background process is gone once the command/exec is answered",
            no_survivor_after_exit
        ),
        scase!(
            "CMD-68/no-survivor-after-kill",
            "CMD-68",
            90,
            "under workspace-write a setsid background process is gone once the command is ended by its time limit, command/exec/terminate or cancellation",
            no_survivor_after_kill
        ),
        scase!(
            "CMD-68/no-survivor-after-revocation",
            "CMD-68",
            90,
            "under workspace-write a setsid background process of a device's command is gone once the device's revocation closes its session",
            no_survivor_after_revocation
        ),
        scase!(
            "CMD-68/answer-despite-held-output",
            "CMD-68",
            60,
            "a setsid background process holding stdout open neither keeps a command/exec with timeoutMs 3000 unanswered nor outlives its answer",
            answer_despite_held_output
        ),
        scase!(
            "CMD-69/process-limit",
            "CMD-69",
            150,
            "a sandboxed command cannot run more than 1024 processes at once",
            process_limit
        ),
        scase!(
            "CMD-70/git-read-only",
            "CMD-70",
            60,
            "under workspace-write the .git directory of the writable root is read-only",
            git_read_only
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// helpers

/// The restricted modes every case tries.
const MODES: [&str; 2] = ["read-only", "workspace-write"];

/// The skip reason when the host enforces neither restricted mode.
const NOTHING_ENFORCED: &str = "the host refuses read-only and workspace-write or runs them degraded: nothing enforced to check";

/// Sets the first tool found of `python3`, `/usr/bin/python3`, `/usr/local/bin/python3` as
/// `$PY` (empty when none runs).
const FIND_PYTHON: &str = "PY=; for p in python3 /usr/bin/python3 /usr/local/bin/python3; do \
     if \"$p\" -c '' >/dev/null 2>&1; then PY=$p; break; fi; done\n";

/// `text` as one single-quoted shell word.
fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The lines of a run's stdout.
fn lines(run: &ExecRun) -> Vec<String> {
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What a run printed, for failure messages: stdout and stderr, shortened.
fn printed(run: &ExecRun) -> String {
    let mut out = String::from_utf8_lossy(&run.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&run.stderr));
    if out.len() > 600 {
        let mut cut = 600;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(" …");
    }
    format!("exit {:?}, output {out:?}", run.exit_code())
}

/// Runs `script` under `mode` in `cwd` with `extra` members added to the params; `None`
/// when the host refuses the mode (-32012) or runs it degraded (nothing enforced to
/// check).
async fn confined(
    s: &mut ChannelSession,
    mode: &str,
    script: &str,
    cwd: &str,
    extra: Value,
    wait: Duration,
) -> Res<Option<ExecRun>> {
    let mut p = sh(script, cwd);
    if let Some(o) = p.as_object_mut() {
        o.insert("sandbox".to_owned(), json!(mode));
        if let Some(extra) = extra.as_object() {
            o.extend(extra.clone());
        }
    }
    let run = s.exec(p, wait).await?;
    if run.error_code() == Some(-32012) {
        return Ok(None);
    }
    let r = result_of(&run, mode)?;
    let report = r.get("sandbox").cloned().unwrap_or(Value::Null);
    if report.get("degraded") == Some(&json!(true)) {
        return Ok(None);
    }
    check(report.get("enforced") == Some(&json!(mode)), || {
        format!(
            "{mode}: not degraded, but enforced is {:?}",
            report.get("enforced")
        )
    })?;
    Ok(Some(run))
}

/// [`confined`] with the default limits.
async fn under(
    s: &mut ChannelSession,
    mode: &str,
    script: &str,
    cwd: &str,
) -> Res<Option<ExecRun>> {
    confined(s, mode, script, cwd, json!({}), Duration::from_secs(60)).await
}

/// Runs `script` unsandboxed (`danger-full-access`) in `cwd`.
async fn unconfined(s: &mut ChannelSession, script: &str, cwd: &str) -> Res<ExecRun> {
    let mut p = sh(script, cwd);
    if let Some(o) = p.as_object_mut() {
        o.insert("outputCap".to_owned(), json!(16 * 1024 * 1024));
    }
    let run = s.exec(p, Duration::from_secs(60)).await?;
    result_of(&run, "an unsandboxed command/exec")?;
    Ok(run)
}

/// Runs `script` unsandboxed and fails unless it exits 0.
async fn prepare(s: &mut ChannelSession, script: &str, cwd: &str) -> Res<ExecRun> {
    let run = unconfined(s, script, cwd).await?;
    check(run.exit_code() == Some(0), || {
        format!(
            "preparing on the host (`{script}`) failed: {}",
            printed(&run)
        )
    })?;
    Ok(run)
}

/// A fresh directory on the host for one probe, and whether the runner sees the host's
/// file system (the directory, named at random, exists for the runner too).
struct Probe {
    s: ChannelSession,
    dir: String,
    shared: bool,
}

impl Probe {
    async fn new(cx: &Context) -> Res<Self> {
        let (s, dir) = exec_ready(cx, "ctl").await?;
        let shared = Path::new(&dir).is_dir();
        Ok(Self { s, dir, shared })
    }

    /// `DIR/name`.
    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// Makes `DIR/name` (a directory) and returns its path.
    async fn subdir(&mut self, name: &str) -> Res<String> {
        let path = self.path(name);
        prepare(
            &mut self.s,
            &format!("mkdir -p {}", q(&path)),
            &self.dir.clone(),
        )
        .await?;
        Ok(path)
    }

    /// Whether `DIR` lies inside the host's temporary directory, where workspace-write may
    /// write (so a file there is not "outside the writable roots").
    async fn inside_host_tmp(&mut self) -> Res<bool> {
        let dir = self.dir.clone();
        let run = unconfined(&mut self.s, "printf %s \"${TMPDIR:-/tmp}\"", &dir).await?;
        let tmp = String::from_utf8_lossy(&run.stdout)
            .trim_end_matches('/')
            .to_owned();
        Ok(!tmp.is_empty() && (dir == tmp || dir.starts_with(&format!("{tmp}/"))))
    }

    /// The size of `path`, `None` when it does not exist: read by the runner when it
    /// shares the host's file system, else with `wc -c` unsandboxed.
    async fn size(&mut self, path: &str) -> Res<Option<u64>> {
        if self.shared {
            return Ok(std::fs::metadata(path).ok().map(|m| m.len()));
        }
        let dir = self.dir.clone();
        let run = unconfined(
            &mut self.s,
            &format!(
                "if [ -e {p} ]; then wc -c < {p}; else echo none; fi",
                p = q(path)
            ),
            &dir,
        )
        .await?;
        let text = String::from_utf8_lossy(&run.stdout).trim().to_owned();
        if text == "none" {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| Stop::Fail(format!("wc -c {path} on the host printed {text:?}")))
    }

    /// The mode, owner, group and modification time of `path`, as text to compare: from
    /// the runner's own `stat` when it shares the host's file system, else `ls -ln`.
    async fn metadata(&mut self, path: &str) -> Res<String> {
        if self.shared {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(path).map_err(|e| Stop::Fail(format!("stat {path}: {e}")))?;
            return Ok(format!(
                "mode {:o}, owner {}:{}, mtime {}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime()
            ));
        }
        let dir = self.dir.clone();
        let run = unconfined(&mut self.s, &format!("ls -ln {}", q(path)), &dir).await?;
        Ok(String::from_utf8_lossy(&run.stdout).trim().to_owned())
    }

    async fn close(self) {
        self.s.close().await;
    }
}

// ---------------------------------------------------------------------------------------
// CMD-44: command/exec writes inside its cwd only

async fn exec_writes_only_cwd(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    if p.inside_host_tmp().await? {
        p.close().await;
        return skip(
            "the work directory is inside the host's temporary directory, where workspace-write may write: give --work-dir elsewhere",
        );
    }
    // The project root of DIR/inner is DIR (it holds .git); command/exec may write only
    // inside its cwd (spec 5.7).
    p.subdir(".git").await?;
    let inner = p.subdir("inner").await?;
    let inside = format!("{inner}/inside");
    let outside = p.path("outside");
    let script = format!("echo x > {}; echo y > {}", q(&inside), q(&outside));
    let Some(run) = under(&mut p.s, "workspace-write", &script, &inner).await? else {
        p.close().await;
        return skip(
            "the host refuses workspace-write or runs it degraded: nothing enforced to check",
        );
    };
    let dir = p.dir.clone();
    check(exists(&mut p.s, &inside, &dir).await?, || {
        format!(
            "under workspace-write a write inside cwd did not happen: {}",
            printed(&run)
        )
    })?;
    check(!exists(&mut p.s, &outside, &dir).await?, || {
        format!(
            "under workspace-write a command/exec in {inner} wrote {outside}, in the project root above its cwd (CMD-44: its writable root is cwd)"
        )
    })?;
    p.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-62: fresh namespaces, none of the host's processes

const NAMESPACES: [&str; 6] = ["user", "mnt", "pid", "ipc", "uts", "net"];

/// Prints `ns KIND ID` for each namespace, `proc PID CMDLINE` for every process visible,
/// `parent PID PPID` up the probe's ancestry, `signalled PID` for each of `pids` that
/// `kill -0` reaches, the marker file's text and `end`.
fn view_script(marker: &str, pids: &[u32]) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!(
        "for n in {ns}; do echo \"ns $n $(readlink /proc/self/ns/$n 2>/dev/null)\"; done\n\
         for d in /proc/[0-9]*; do [ -r \"$d/cmdline\" ] || continue; printf 'proc %s ' \"${{d#/proc/}}\"; \
         tr '\\0' ' ' < \"$d/cmdline\" 2>/dev/null; echo; done\n\
         p=$$; while [ \"$p\" -gt 1 ] 2>/dev/null; do \
         pp=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status 2>/dev/null); [ -n \"$pp\" ] || break; \
         echo \"parent $p $pp\"; p=$pp; done\n\
         for p in {pids}; do if kill -0 \"$p\" 2>/dev/null; then echo \"signalled $p\"; fi; done\n\
         printf 'marker %s\\n' \"$(cat {marker} 2>/dev/null)\"\n\
         echo end\n",
        ns = NAMESPACES.join(" "),
        pids = pids.join(" "),
        marker = q(marker),
    )
}

/// What [`view_script`] printed.
#[derive(Debug, Default)]
struct View {
    namespaces: Vec<(String, String)>,
    processes: Vec<(u32, String)>,
    parents: Vec<u32>,
    signalled: Vec<u32>,
    marker: String,
    complete: bool,
}

impl View {
    fn read(run: &ExecRun) -> Self {
        let mut v = Self::default();
        for line in lines(run) {
            if let Some(rest) = line.strip_prefix("ns ") {
                let (kind, id) = rest.split_once(' ').unwrap_or((rest, ""));
                v.namespaces.push((kind.to_owned(), id.trim().to_owned()));
            } else if let Some(rest) = line.strip_prefix("proc ") {
                let (pid, cmdline) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Ok(pid) = pid.parse() {
                    v.processes.push((pid, cmdline.trim_end().to_owned()));
                }
            } else if let Some(rest) = line.strip_prefix("parent ") {
                if let Some(pp) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                    v.parents.push(pp);
                }
            } else if let Some(pid) = line.strip_prefix("signalled ") {
                v.signalled.extend(pid.trim().parse::<u32>().ok());
            } else if let Some(rest) = line.strip_prefix("marker ") {
                rest.clone_into(&mut v.marker);
            } else if line == "end" {
                v.complete = true;
            }
        }
        v
    }

    fn namespace(&self, kind: &str) -> Option<&str> {
        self.namespaces
            .iter()
            .find(|(k, id)| k == kind && !id.is_empty())
            .map(|(_, id)| id.as_str())
    }
}

/// The runner's own process as a probe lists it: its pid and its command line with NULs
/// turned into spaces.
fn runner_process() -> Option<(u32, String)> {
    let raw = std::fs::read("/proc/self/cmdline").ok()?;
    let text: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some((std::process::id(), text.trim_end().to_owned()))
}

async fn fresh_namespaces(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let token = hex::encode(crate::link::random_bytes::<8>());
    for cwd in [&dir, &ww] {
        prepare(&mut p.s, &format!("printf %s {} > marker", q(&token)), cwd).await?;
    }
    // The control: the namespaces of the host's commands and the processes above them
    // (the host, its parents, the system's init), as an unsandboxed command sees them.
    let control = View::read(&unconfined(&mut p.s, &view_script("marker", &[]), &dir).await?);
    let outer: Vec<(&str, &str)> = NAMESPACES
        .iter()
        .filter_map(|k| control.namespace(k).map(|id| (*k, id)))
        .collect();
    if !control.complete || outer.len() != NAMESPACES.len() {
        p.close().await;
        return skip(
            "an unsandboxed command cannot read its namespaces in /proc/self/ns (not Linux?): nothing to compare",
        );
    }
    let mut host_side: Vec<(u32, String)> = control
        .processes
        .iter()
        .filter(|(pid, cmd)| control.parents.contains(pid) && !cmd.is_empty())
        .cloned()
        .collect();
    if let Some(me) = runner_process()
        && control.processes.contains(&me)
    {
        host_side.push(me);
    }
    // The processes outside the sandbox that it must not be able to signal either (other
    // than init, whose number a PID namespace reuses for its own).
    let outside: Vec<u32> = host_side
        .iter()
        .map(|(pid, _)| *pid)
        .filter(|pid| *pid > 1)
        .collect();
    let mut tried = 0;
    for mode in MODES {
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let Some(run) = under(&mut p.s, mode, &view_script("marker", &outside), cwd).await? else {
            continue;
        };
        tried += 1;
        let view = View::read(&run);
        check(view.complete, || {
            format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            )
        })?;
        check(view.marker == token, || {
            format!(
                "under {mode} the command could not read a file in its cwd ({cwd}/marker): {}",
                printed(&run)
            )
        })?;
        for (kind, id) in &outer {
            check(view.namespace(kind) != Some(id), || {
                format!(
                    "under {mode} the command is in the host's {kind} namespace ({id}); a sandboxed command gets a fresh one (CMD-62)"
                )
            })?;
        }
        if let Some((pid, cmd)) = view.processes.iter().find(|p| host_side.contains(p)) {
            return hfail(format!(
                "under {mode} the command sees a process outside its sandbox: {pid} `{cmd}` (CMD-62)"
            ));
        }
        // A process it can signal is one of its own, so it must be in its own view.
        if let Some(pid) = view
            .signalled
            .iter()
            .find(|pid| !view.processes.iter().any(|(p, _)| p == *pid))
        {
            return hfail(format!(
                "under {mode} the command can signal process {pid}, which is not one of its own (CMD-62)"
            ));
        }
    }
    p.close().await;
    if tried == 0 {
        return skip(NOTHING_ENFORCED);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-63: the state directory and the credential out of sight

async fn state_dir_invisible(cx: Arc<Context>) -> Res<()> {
    let Some(state) = host_target(&cx)?.state_dir.clone() else {
        return skip(
            "the runner does not know the host's state directory (it did not start the host with {state})",
        );
    };
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let listing = unconfined(&mut p.s, &format!("cd {} && ls -A", q(&state)), &dir).await?;
    if listing.exit_code() != Some(0) {
        p.close().await;
        return skip(format!(
            "the state directory {state} does not exist for an unsandboxed command: nothing to hide"
        ));
    }
    let mut paths = vec![state.clone()];
    paths.extend(lines(&listing).iter().map(|e| format!("{state}/{e}")));
    let script: String = paths
        .iter()
        .map(|path| {
            format!(
                "if [ -e {p} ] || [ -L {p} ]; then echo visible {p}; fi\n",
                p = q(path)
            )
        })
        .chain(std::iter::once(format!(
            "if ls -A {s} >/dev/null 2>&1; then echo \"listed {state}\"; fi\necho end\n",
            s = q(&state)
        )))
        .collect();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for mode in MODES {
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let Some(run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let out = lines(&run);
        check(out.iter().any(|l| l == "end"), || {
            format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            )
        })?;
        if let Some(seen) = out
            .iter()
            .find(|l| l.starts_with("visible ") || l.starts_with("listed "))
        {
            return hfail(format!(
                "under {mode} the host's state directory is in sight: {seen} (CMD-63: it must not exist for the command)"
            ));
        }
    }
    p.close().await;
    if tried == 0 {
        return skip(NOTHING_ENFORCED);
    }
    Ok(())
}

async fn credential_invisible(cx: Arc<Context>) -> Res<()> {
    let credential = host_target(&cx)?.relay.workspace.credential.clone();
    let Ok(credential) = String::from_utf8(credential) else {
        return skip(
            "the workspace credential is not UTF-8 text: a shell probe cannot search for it",
        );
    };
    if credential.contains(['\0', '\n']) || credential.len() < 2 {
        return skip(
            "the workspace credential holds NUL or newline: a shell probe cannot search for it",
        );
    }
    // The probe must not carry the credential in its own command line: it is put together
    // from two halves inside the shell (printf is a builtin).
    let mut half = credential.len() / 2;
    while !credential.is_char_boundary(half) {
        half -= 1;
    }
    let (a, b) = credential.split_at(half);
    let script = format!(
        "c=\"$(printf %s {a} {b})\"\nn=0\n\
         for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do \
         v=$(tr '\\0' '\\n' < \"$f\" 2>/dev/null) || continue; n=$((n+1)); \
         case $v in *\"$c\"*) echo \"found $f\";; esac; done\n\
         echo \"scanned $n\"\n",
        a = q(a),
        b = q(b)
    );
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for mode in MODES {
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let Some(run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let out = lines(&run);
        check(out.iter().any(|l| l.starts_with("scanned ")), || {
            format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            )
        })?;
        if let Some(found) = out.iter().find(|l| l.starts_with("found ")) {
            return hfail(format!(
                "under {mode} the command reads the workspace credential from {} (CMD-63)",
                found.trim_start_matches("found ")
            ));
        }
    }
    p.close().await;
    if tried == 0 {
        return skip(NOTHING_ENFORCED);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-64: metadata writes outside the writable roots

/// Prints `xattrs NAME...`: the extended attributes of the file named by its argument.
const LIST_XATTRS_PY: &str = r#"import os, sys
print("xattrs", " ".join(os.listxattr(sys.argv[1])))
"#;

async fn metadata_writes_refused(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let outside_tmp = !p.inside_host_tmp().await?;
    let target = p.path("target");
    prepare(
        &mut p.s,
        &format!(
            "printf x > {t} && chmod 644 {t} && touch -m -t 201001010000 {t}",
            t = q(&target)
        ),
        &dir,
    )
    .await?;
    // The extended attributes, read unsandboxed (python3's os.listxattr), if the host has
    // the tool.
    let list_xattrs = format!(
        "{FIND_PYTHON}if [ -n \"$PY\" ]; then \"$PY\" -c {} {}; fi\n",
        q(LIST_XATTRS_PY),
        q(&target)
    );
    let script = format!(
        "{FIND_PYTHON}chmod 600 {t}; chmod 777 {t}; touch -c -m -t 200001010000 {t}; \
         chown 12345:12345 {t}; chgrp 12345 {t}\n\
         if [ -n \"$PY\" ]; then \"$PY\" -c 'import os, sys; os.setxattr(sys.argv[1], \"user.tether\", b\"1\")' {t}; fi\n\
         echo end\n",
        t = q(&target)
    );
    let mut tried = 0;
    for mode in MODES {
        // Under workspace-write the file must lie outside the writable roots: outside cwd
        // and outside the host's temporary directory.
        if mode == "workspace-write" && !outside_tmp {
            continue;
        }
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let before = p.metadata(&target).await?;
        let Some(_run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let after = p.metadata(&target).await?;
        check(after == before, || {
            format!(
                "under {mode} chmod/chown/touch of {target}, outside the writable roots, changed it: {before} became {after} (CMD-64)"
            )
        })?;
        let xattrs = lines(&unconfined(&mut p.s, &list_xattrs, &dir).await?);
        check(
            !xattrs
                .iter()
                .any(|l| l.starts_with("xattrs ") && l.contains("user.tether")),
            || {
                format!(
                    "under {mode} setxattr of {target}, outside the writable roots, added user.tether (CMD-64)"
                )
            },
        )?;
    }
    p.close().await;
    if tried == 0 {
        return skip(NOTHING_ENFORCED);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-65: no controlling terminal

/// Prints `tty-open` when `/dev/tty` opens (the command has a controlling terminal),
/// else `tty-none`.
const TTY_SCRIPT: &str =
    "if (: </dev/tty) 2>/dev/null; then echo tty-open; else echo tty-none; fi\n";

/// Prints `pts PATH` for the device of the process's controlling terminal.
const FIND_TERMINAL_PY: &str = r#"import os
f = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
n = int(f[4])
if n:
    dev = os.makedev((n >> 8) & 0xfff, (n & 0xff) | ((n >> 12) & 0xfff00))
    names = [os.path.join("/dev/pts", e) for e in os.listdir("/dev/pts")]
    names += [os.path.join("/dev", e) for e in os.listdir("/dev") if e.startswith("tty") and e != "tty"]
    for p in names:
        try:
            if os.stat(p).st_rdev == dev:
                print("pts", p)
        except OSError:
            pass
"#;

/// For each path argument: opens it (for reading: enough for `TIOCSTI`, and what a
/// read-only view allows) and pushes one character into its input with `TIOCSTI`, then the terminal's erase character (so that nothing is left typed); prints
/// `sti-done PATH` when that worked.
const TIOCSTI_PY: &str = r##"import fcntl, os, sys, termios
for p in sys.argv[1:]:
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOCTTY)
    except OSError as e:
        print("open-refused", p, e.errno)
        continue
    try:
        erase = termios.tcgetattr(fd)[6][termios.VERASE]
    except Exception:
        erase = b"\x7f"
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"#")
    except OSError as e:
        print("sti-refused", p, e.errno)
        continue
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, erase)
    except OSError:
        pass
    print("sti-done", p)
"##;

async fn no_controlling_terminal(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let control_script = format!(
        "{TTY_SCRIPT}{FIND_PYTHON}if [ -n \"$PY\" ]; then echo python; \"$PY\" -c {}; fi\n",
        q(FIND_TERMINAL_PY)
    );
    let control = lines(&unconfined(&mut p.s, &control_script, &dir).await?);
    if !control.iter().any(|l| l == "tty-open") {
        p.close().await;
        return skip(
            "the host has no controlling terminal (run it from a terminal or under script(1))",
        );
    }
    let python = control.iter().any(|l| l == "python");
    let mut terminals = vec!["/dev/tty".to_owned()];
    terminals.extend(
        control
            .iter()
            .filter_map(|l| l.strip_prefix("pts "))
            .map(str::to_owned),
    );
    let mut script = format!("{TTY_SCRIPT}{FIND_PYTHON}");
    if python {
        script.push_str(&format!(
            "if [ -n \"$PY\" ]; then \"$PY\" -c {} {}; fi\n",
            q(TIOCSTI_PY),
            terminals.iter().map(|t| q(t)).collect::<Vec<_>>().join(" ")
        ));
    }
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for mode in MODES {
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let Some(run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let out = lines(&run);
        check(out.iter().any(|l| l == "tty-none"), || {
            format!(
                "under {mode} the command opened /dev/tty: it has the host's controlling terminal (CMD-65): {}",
                printed(&run)
            )
        })?;
        if let Some(done) = out.iter().find(|l| l.starts_with("sti-done ")) {
            return hfail(format!(
                "under {mode} TIOCSTI on {} worked: the command can type into the host's terminal (CMD-65)",
                done.trim_start_matches("sti-done ")
            ));
        }
    }
    p.close().await;
    if tried == 0 {
        return skip(NOTHING_ENFORCED);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-66: no privileges

const PRIVILEGE_SCRIPT: &str = "while IFS= read -r l; do case $l in Cap*|NoNewPrivs*) echo \"$l\";; esac; done < /proc/self/status\n\
     if command -v unshare >/dev/null 2>&1; then \
     if unshare -Ur true >/dev/null 2>&1; then echo unshare-worked; else echo unshare-refused; fi; \
     fi\necho end\n";

async fn no_privileges(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for mode in MODES {
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let Some(run) = under(&mut p.s, mode, PRIVILEGE_SCRIPT, cwd).await? else {
            continue;
        };
        let out = lines(&run);
        let field = |name: &str| {
            out.iter()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        if field("CapEff:").is_none() {
            if out.iter().any(|l| l == "end") {
                continue; // no capability sets in /proc/self/status: not Linux
            }
            return hfail(format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            ));
        }
        tried += 1;
        for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            let value = field(set).unwrap_or_default();
            check(
                !value.is_empty() && value.bytes().all(|b| b == b'0'),
                || {
                    format!(
                        "under {mode} the command's {} set is {value:?}, not empty (CMD-66)",
                        set.trim_end_matches(':')
                    )
                },
            )?;
        }
        check(field("NoNewPrivs:").as_deref() == Some("1"), || {
            format!(
                "under {mode} the command runs without no_new_privs (NoNewPrivs: {:?}) (CMD-66)",
                field("NoNewPrivs:")
            )
        })?;
        check(!out.iter().any(|l| l == "unshare-worked"), || {
            format!("under {mode} `unshare -Ur true` created a user namespace (CMD-66)")
        })?;
    }
    p.close().await;
    if tried == 0 {
        return skip(
            "the host enforces neither read-only nor workspace-write, or its commands have no capability sets in /proc/self/status (not Linux)",
        );
    }
    Ok(())
}

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
    for mode in MODES {
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let (run, reached) = accept_unix_alongside(
            listener.as_ref(),
            under(&mut p.s, mode, &script(target), cwd),
        )
        .await?;
        let Some(run) = run else {
            continue;
        };
        if run.result().and_then(|r| r.pointer("/sandbox/network")) != Some(&json!("denied")) {
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

/// The skip reason when the host does not enforce workspace-write (the containment probes
/// need a directory they may write).
const NO_WORKSPACE_WRITE: &str =
    "the host refuses workspace-write or runs it degraded: nothing enforced to check";

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
        run.result().and_then(|r| r.get("timedOut")) == Some(&json!(true)),
        || {
            format!(
                "under {mode} a command past its 1500 ms limit: {}",
                run.answer
            )
        },
    )?;
    p.beacon_stays_still(&cwd, &format!("under {mode}, after the time limit"))
        .await?;

    // command/exec/terminate, and notifications/cancelled (CMD-57).
    for how in ["terminate", "cancel"] {
        let cwd = p.subdir(how).await?;
        let pid = format!("beacon-{how}");
        let mut params = sh(&script, &cwd);
        if let Some(o) = params.as_object_mut() {
            o.insert("sandbox".to_owned(), json!(mode));
            o.insert("processId".to_owned(), json!(pid));
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
            p.s.send_json(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id}}))
                .await?;
            "notifications/cancelled"
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
        o.insert("sandbox".to_owned(), json!(mode));
        o.insert("processId".to_owned(), json!("beacon-revoked"));
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
const FORK_SCRIPT: &str = "( i=0; while [ $i -lt 1500 ]; do sleep 30 </dev/null >/dev/null 2>&1 & echo \"$!\"; i=$((i+1)); done; echo all ) 2>/dev/null | {\n\
     n=0; pids=; all=\n\
     while read -r p; do case $p in all) all=1;; *) n=$((n+1)); pids=\"$pids $p\";; esac; done\n\
     kill $pids 2>/dev/null\n\
     echo \"started $n\"; if [ -n \"$all\" ]; then echo \"reached 1500\"; fi\n\
     }\n";

async fn process_limit(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for mode in MODES {
        let cwd = if mode == "read-only" { &dir } else { &ww };
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
    p.close().await;
    if tried == 0 {
        return skip(NOTHING_ENFORCED);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-70: .git read-only

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
        return skip(
            "the host refuses workspace-write or runs it degraded: nothing enforced to check",
        );
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

    use super::*;

    #[test]
    fn ids_name_their_requirement_and_are_unique() {
        let cases = catalogue();
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        for c in &cases {
            assert!(c.id.starts_with(&format!("{}/", c.requirement)), "{}", c.id);
            assert!(!c.description.is_empty());
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), cases.len());
    }

    #[test]
    fn q_quotes_one_shell_word() {
        assert_eq!(q("a b"), "'a b'");
        assert_eq!(q("it's"), "'it'\\''s'");
    }

    #[test]
    fn the_probe_scripts_run_here_as_the_cases_read_them() {
        // Unsandboxed on the machine running the tests: the scripts parse and print what
        // the cases look for (a failure here is a broken probe, not a broken host).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("marker"), "m1").unwrap();
        let run = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(dir.path())
                .output()
                .unwrap();
            ExecRun {
                answer: json!({"result": {"exitCode": out.status.code()}}),
                stdout: out.stdout,
                stderr: out.stderr,
                deltas: Vec::new(),
            }
        };
        if Path::new("/proc/self/ns/pid").exists() {
            let v = View::read(&run(&view_script("marker", &[std::process::id()])));
            assert!(v.complete);
            assert_eq!(v.marker, "m1");
            for ns in NAMESPACES {
                assert!(v.namespace(ns).unwrap().starts_with(ns), "{ns}: {v:?}");
            }
            // This process is visible, with its command line as the runner reads it.
            assert!(v.processes.contains(&runner_process().unwrap()), "{v:?}");
            assert!(!v.parents.is_empty());
            assert_eq!(v.signalled, [std::process::id()]);
        }
        let out = lines(&run(PRIVILEGE_SCRIPT));
        assert!(out.iter().any(|l| l == "end"), "{out:?}");
        assert!(out.iter().any(|l| l.starts_with("CapEff:")), "{out:?}");
        let out = lines(&run(FORK_SCRIPT.replace("1500", "20").as_str()));
        assert!(out.contains(&"started 20".to_owned()), "{out:?}");
        assert!(out.contains(&"reached 20".to_owned()), "{out:?}");
    }
}
