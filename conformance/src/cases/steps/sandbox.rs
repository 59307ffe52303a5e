//! Steps of the sandbox cases (`spec/05` section 5.7): running a probe under each restricted
//! mode and as the unconfined control, the `Probe` a case reads its verdict from, and the
//! listeners (TCP on loopback, a Unix socket) a command must not reach.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cases::steps::exec::{exec_ready, result_of, sh, with_sandbox};
use crate::context::Context;
use crate::host::{ChannelSession, ExecRun, Res, Stop, check, hfail, host_target, skip};

/// Runs `script` under `mode` in `cwd`; `None` when the host refuses the mode (-32012) or
/// runs it degraded (then nothing is enforced to check).
pub(crate) async fn sandboxed(
    s: &mut ChannelSession,
    mode: &str,
    script: &str,
    cwd: &str,
) -> Res<Option<ExecRun>> {
    confined(s, mode, script, cwd, json!({}), Duration::from_secs(30)).await
}

/// A script that connects to `127.0.0.1:port` with the first tool the host has (bash's
/// `/dev/tcp`, python3, nc, curl), and exits 97 when it has none.
pub(crate) fn connect_script(port: u16) -> String {
    format!(
        "if command -v bash >/dev/null 2>&1; then exec bash -c 'echo x > /dev/tcp/127.0.0.1/{port}'; \
         elif command -v python3 >/dev/null 2>&1; then exec python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)'; \
         elif command -v nc >/dev/null 2>&1; then echo x | exec nc -w 5 127.0.0.1 {port}; \
         elif command -v curl >/dev/null 2>&1; then exec curl -s -m 5 http://127.0.0.1:{port}/; \
         else exit 97; fi"
    )
}

/// A TCP listener on an ephemeral port of 127.0.0.1, and the port.
pub(crate) async fn loopback_listener() -> Res<(tokio::net::TcpListener, u16)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Stop::Fail(format!("binding a loopback listener: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Stop::Fail(format!("the loopback listener's address: {e}")))?
        .port();
    Ok((listener, port))
}

/// A listener of the runner's that the sandbox cases watch for connections from a
/// command: TCP on loopback, or a pathname Unix socket.
pub(crate) trait Acceptor {
    /// Accepts one connection and drops it.
    async fn accept_one(&self) -> std::io::Result<()>;
}

impl Acceptor for tokio::net::TcpListener {
    async fn accept_one(&self) -> std::io::Result<()> {
        self.accept().await.map(drop)
    }
}

impl Acceptor for tokio::net::UnixListener {
    async fn accept_one(&self) -> std::io::Result<()> {
        self.accept().await.map(drop)
    }
}

/// Runs `run` while accepting on `listener`; whether a connection arrived while it ran or
/// within a second after. `what` names the listener if it fails.
pub(crate) async fn accept_alongside<T>(
    listener: &impl Acceptor,
    what: &str,
    run: impl Future<Output = Res<T>>,
) -> Res<(T, bool)> {
    let accepted = std::sync::atomic::AtomicBool::new(false);
    let accept_loop = async {
        // Bounded by the caller's timeout around the whole.
        while listener.accept_one().await.is_ok() {
            accepted.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    tokio::pin!(accept_loop);
    let out = tokio::select! {
        out = run => out?,
        () = &mut accept_loop => return hfail(format!("{what} failed")),
    };
    // A connection the command started may land just after its answer.
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut accept_loop).await;
    Ok((out, accepted.load(std::sync::atomic::Ordering::SeqCst)))
}

/// The restricted modes every case tries.
pub(crate) const MODES: [&str; 2] = ["read-only", "workspace-write"];

/// The skip reason when the host enforces neither restricted mode.
pub(crate) const NOTHING_ENFORCED: &str = "the host refuses read-only and workspace-write or runs them degraded: nothing enforced to check";

/// The skip reason when the host does not enforce workspace-write, for the probes that need
/// a directory they may write.
pub(crate) const NO_WORKSPACE_WRITE: &str =
    "the host refuses workspace-write or runs it degraded: nothing enforced to check";

/// Sets the first tool found of `python3`, `/usr/bin/python3`, `/usr/local/bin/python3` as
/// `$PY` (empty when none runs).
pub(crate) const FIND_PYTHON: &str = "PY=; for p in python3 /usr/bin/python3 /usr/local/bin/python3; do \
     if \"$p\" -c '' >/dev/null 2>&1; then PY=$p; break; fi; done\n";

/// `text` as one single-quoted shell word.
pub(crate) fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The lines of a run's stdout.
pub(crate) fn lines(run: &ExecRun) -> Vec<String> {
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What a run printed, for failure messages: stdout and stderr, shortened.
pub(crate) fn printed(run: &ExecRun) -> String {
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
pub(crate) async fn confined(
    s: &mut ChannelSession,
    mode: &str,
    script: &str,
    cwd: &str,
    extra: Value,
    wait: Duration,
) -> Res<Option<ExecRun>> {
    let mut p = with_sandbox(sh(script, cwd), mode);
    if let (Some(o), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
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
pub(crate) async fn under(
    s: &mut ChannelSession,
    mode: &str,
    script: &str,
    cwd: &str,
) -> Res<Option<ExecRun>> {
    confined(s, mode, script, cwd, json!({}), Duration::from_secs(60)).await
}

/// Runs `script` unsandboxed (`danger-full-access`) in `cwd`.
pub(crate) async fn unconfined(s: &mut ChannelSession, script: &str, cwd: &str) -> Res<ExecRun> {
    let mut p = sh(script, cwd);
    if let Some(o) = p.as_object_mut() {
        o.insert("outputBytesCap".to_owned(), json!(16 * 1024 * 1024));
    }
    let run = s.exec(p, Duration::from_secs(60)).await?;
    result_of(&run, "an unsandboxed command/exec")?;
    Ok(run)
}

/// Runs `script` unsandboxed and fails unless it exits 0.
pub(crate) async fn prepare(s: &mut ChannelSession, script: &str, cwd: &str) -> Res<ExecRun> {
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
pub(crate) struct Probe {
    pub(crate) s: ChannelSession,
    pub(crate) dir: String,
    pub(crate) shared: bool,
}

impl Probe {
    pub(crate) async fn new(cx: &Context) -> Res<Self> {
        let (s, dir) = exec_ready(cx, "ctl").await?;
        let shared = Path::new(&dir).is_dir();
        Ok(Self { s, dir, shared })
    }

    /// `DIR/name`.
    pub(crate) fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// Makes `DIR/name` (a directory) and returns its path.
    pub(crate) async fn subdir(&mut self, name: &str) -> Res<String> {
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
    pub(crate) async fn inside_host_tmp(&mut self) -> Res<bool> {
        let dir = self.dir.clone();
        let run = unconfined(&mut self.s, "printf %s \"${TMPDIR:-/tmp}\"", &dir).await?;
        let tmp = String::from_utf8_lossy(&run.stdout)
            .trim_end_matches('/')
            .to_owned();
        Ok(!tmp.is_empty() && (dir == tmp || dir.starts_with(&format!("{tmp}/"))))
    }

    /// The size of `path`, `None` when it does not exist: read by the runner when it
    /// shares the host's file system, else with `wc -c` unsandboxed.
    pub(crate) async fn size(&mut self, path: &str) -> Res<Option<u64>> {
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
    pub(crate) async fn metadata(&mut self, path: &str) -> Res<String> {
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

    pub(crate) async fn close(self) {
        self.s.close().await;
    }
}

/// Each restricted mode with the directory its probe runs in: `dir` for `read-only`, `ww`
/// (a directory inside it) for `workspace-write`, whose `cwd` is its writable root.
pub(crate) fn restricted<'a>(dir: &'a str, ww: &'a str) -> [(&'static str, &'a str); 2] {
    let [read_only, workspace_write] = MODES;
    [(read_only, dir), (workspace_write, ww)]
}

impl Probe {
    /// Ends the probe's session; a skip when no restricted mode ran (`tried` is 0).
    pub(crate) async fn finish(self, tried: usize) -> Res<()> {
        self.close().await;
        if tried == 0 {
            return skip(NOTHING_ENFORCED);
        }
        Ok(())
    }
}

/// The host's state directory, which the runner knows only about a host it started
/// (`{state}`); a skip otherwise.
pub(crate) fn known_state_dir(cx: &Context) -> Res<String> {
    match host_target(cx)?.state_dir.clone() {
        Some(state) => Ok(state),
        None => skip(
            "the runner does not know the host's state directory (it did not start the host with {state})",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_quotes_one_shell_word() {
        assert_eq!(q("a b"), "'a b'");
        assert_eq!(q("it's"), "'it'\\''s'");
    }
}
