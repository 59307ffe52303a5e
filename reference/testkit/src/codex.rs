//! Running a real Codex (`codex app-server`, JSON-RPC over JSON lines on stdio) offline
//! in tests, against a [`MockModel`](crate::model::MockModel).
//!
//! - [`codex_bin`] finds the binary: `$TETHER_CODEX_BIN`, else `codex` on `PATH`, else an
//!   error naming both (a test that needs Codex fails; it is never skipped in silence).
//! - [`CodexHome`] is a private scratch tree: `HOME`, `CODEX_HOME` with an offline
//!   `config.toml` ([`offline_config`]), `TMPDIR` and a work directory for threads;
//!   [`CodexHome::app_server`] builds the `tokio::process::Command` that runs there with
//!   no other environment than `PATH` and a UTF-8 locale.
//! - [`AppServer`] is a small client: send requests, notifications and responses, wait
//!   (bounded) for the message a test expects, keep the last lines of Codex's stderr for
//!   failure messages, and record every line exchanged.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::dirs::TempDir;

/// The environment variable that names the Codex binary.
pub const CODEX_BIN_ENV: &str = "TETHER_CODEX_BIN";

/// The longest line read from Codex's stdout or stderr.
pub const MAX_LINE: usize = 16 << 20;

/// How many of Codex's last stderr lines are kept.
pub const STDERR_LINES: usize = 200;

/// The Codex binary: `$TETHER_CODEX_BIN` if set (it must exist), else the first `codex`
/// on `PATH`; the error names both.
pub fn codex_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os(CODEX_BIN_ENV).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "{CODEX_BIN_ENV}={} is not a file; set {CODEX_BIN_ENV} to a codex binary \
                 (npm install @openai/codex) or put codex on PATH",
                bin.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("codex");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!(
        "no Codex binary: {CODEX_BIN_ENV} is not set and there is no `codex` on PATH; \
         install it (npm install --prefix DIR @openai/codex@0.169.0) and set \
         {CODEX_BIN_ENV}=DIR/node_modules/.bin/codex"
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `config.toml` that makes Codex use the model service at `base_url` (for instance
/// [`MockModel::base_url`](crate::model::MockModel::base_url)) with no account, no retry,
/// no analytics, no plugin look-up and no update check, so that it reaches nothing else.
pub fn offline_config(base_url: &str) -> String {
    format!(
        r#"# Written by tether-testkit: Codex offline against a local mock model.
model_provider = "tether-mock"
model = "mock-model"
check_for_update_on_startup = false

[model_providers.tether-mock]
name = "Tether mock model"
base_url = "{base_url}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
"#
    )
}

/// A private tree for one Codex process: `home/`, `codex-home/` (with the offline
/// `config.toml`), `tmp/` and `work/` (a thread's working directory); removed on drop.
#[derive(Debug)]
pub struct CodexHome {
    dir: TempDir,
}

impl CodexHome {
    /// Makes the tree in a fresh directory under `root` and writes the configuration for
    /// `base_url`. Pick a `root` outside the system temporary directory
    /// ([`outside_tmp`](crate::dirs::outside_tmp)): Codex declines to set up its helper
    /// links in a `CODEX_HOME` under it.
    pub fn new(root: &Path, base_url: &str) -> Self {
        let dir = TempDir::new_in(root, "codex");
        for sub in ["home", "codex-home", "tmp", "work"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        }
        let config = dir.join("codex-home").join("config.toml");
        std::fs::write(&config, offline_config(base_url))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        Self { dir }
    }

    /// `HOME` of the process.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// `CODEX_HOME` of the process (holds `config.toml`, sessions, state).
    pub fn codex_home(&self) -> PathBuf {
        self.dir.join("codex-home")
    }

    /// `TMPDIR` of the process.
    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// A working directory for threads (empty at first).
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// `codex app-server` from `bin`, in [`CodexHome::work`], with an environment of
    /// `PATH`, `LANG`, `HOME`, `CODEX_HOME` and `TMPDIR` only (so no API key or user
    /// configuration leaks in), stdio piped and the child killed on drop. (Codex 0.169.0
    /// still creates an empty `/tmp/codex-daemon-UID/`, its daemon's socket directory,
    /// whatever `TMPDIR` says.)
    pub fn app_server(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        cmd.arg("app-server")
            .current_dir(self.work())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C.UTF-8")
            .env("HOME", self.home())
            .env("CODEX_HOME", self.codex_home())
            .env("TMPDIR", self.tmp())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

/// Which way a recorded line went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the test to Codex.
    Sent,
    /// From Codex to the test.
    Received,
}

/// A JSON-RPC client of a running `codex app-server`.
#[derive(Debug)]
pub struct AppServer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Result<(String, Value), String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    transcript: Vec<(Dir, String)>,
    next_id: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads `from` line by line (each at most [`MAX_LINE`] bytes) until it ends, a line is
/// too long, or `each` returns false.
async fn read_lines(
    from: impl AsyncRead + Unpin,
    mut each: impl FnMut(Result<String, String>) -> bool,
) {
    let mut from = BufReader::new(from);
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
        match (&mut from).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if line.last() != Some(&b'\n') && line.len() >= MAX_LINE => {
                each(Err(format!("a line over {MAX_LINE} bytes")));
                return;
            }
            Ok(_) => {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if !each(Ok(text)) {
                    return;
                }
            }
        }
    }
}

impl AppServer {
    /// Spawns `cmd` (from [`CodexHome::app_server`]) and starts reading its stdout and
    /// stderr.
    pub fn spawn(mut cmd: Command) -> std::io::Result<Self> {
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("codex app-server needs piped stdio"));
        };
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(read_lines(stdout, move |line| {
            let msg = line.and_then(|l| match serde_json::from_str::<Value>(&l) {
                Ok(v) => Ok((l, v)),
                Err(e) => Err(format!("not JSON ({e}): {l}")),
            });
            tx.send(msg).is_ok()
        }));
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = Arc::clone(&tail);
        tokio::spawn(read_lines(stderr, move |line| {
            let mut tail = lock(&keep);
            if tail.len() == STDERR_LINES {
                tail.pop_front();
            }
            tail.push_back(line.unwrap_or_else(|e| e));
            true
        }));
        Ok(Self {
            child,
            stdin,
            lines,
            stderr: tail,
            transcript: Vec::new(),
            next_id: 1,
        })
    }

    /// Writes one message as a line.
    pub async fn send(&mut self, msg: Value) -> std::io::Result<()> {
        let mut line = msg.to_string();
        self.transcript.push((Dir::Sent, line.clone()));
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await
    }

    /// Sends request `method` with `params` and returns its id (ids count from 1).
    pub async fn request(&mut self, method: &str, params: Value) -> std::io::Result<i64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await?;
        Ok(id)
    }

    /// Sends notification `method` (no `params` member when `params` is null).
    pub async fn notify(&mut self, method: &str, params: Value) -> std::io::Result<()> {
        let msg = if params.is_null() {
            json!({ "method": method })
        } else {
            json!({ "method": method, "params": params })
        };
        self.send(msg).await
    }

    /// Answers the server request `id` with `result`.
    pub async fn respond(&mut self, id: Value, result: Value) -> std::io::Result<()> {
        self.send(json!({"id": id, "result": result})).await
    }

    /// The next message from Codex, waiting at most `limit`; the error says what
    /// happened (time-out, end of stdout, a line that is not JSON) and quotes Codex's
    /// last stderr lines.
    pub async fn next(&mut self, limit: Duration) -> Result<Value, String> {
        match tokio::time::timeout(limit, self.lines.recv()).await {
            Ok(Some(Ok((line, msg)))) => {
                self.transcript.push((Dir::Received, line));
                Ok(msg)
            }
            Ok(Some(Err(e))) => Err(self.failure(&e)),
            Ok(None) => Err(self.failure("codex closed its stdout")),
            Err(_) => Err(self.failure(&format!("no message within {limit:?}"))),
        }
    }

    /// Reads messages until one satisfies `pred`, for at most `limit` in all; returns it
    /// and every message read before it. The error names `what`.
    pub async fn until(
        &mut self,
        limit: Duration,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<(Value, Vec<Value>), String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.next(left).await.map_err(|e| {
                format!(
                    "waiting for {what}: {e}\nlast messages: {}",
                    tail_of(&before, 5)
                )
            })?;
            if pred(&msg) {
                return Ok((msg, before));
            }
            before.push(msg);
        }
    }

    /// Reads messages until the response to request `id`; returns its `result`, or an
    /// error with its `error` member.
    pub async fn response(&mut self, id: i64, limit: Duration) -> Result<Value, String> {
        let what = format!("the response to request {id}");
        let (msg, _) = self
            .until(limit, &what, |m| {
                m.get("id") == Some(&json!(id)) && m.get("method").is_none()
            })
            .await?;
        match msg.get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(self.failure(&format!("request {id} failed: {msg}"))),
        }
    }

    /// `initialize` (as client `name`) and the `initialized` notification; returns the
    /// `initialize` result.
    pub async fn initialize(&mut self, name: &str, limit: Duration) -> Result<Value, String> {
        let id = self
            .request(
                "initialize",
                json!({"clientInfo": {"name": name, "title": null, "version": "0.0.0"}}),
            )
            .await
            .map_err(|e| self.failure(&format!("cannot write to codex: {e}")))?;
        let result = self.response(id, limit).await?;
        self.notify("initialized", Value::Null)
            .await
            .map_err(|e| self.failure(&format!("cannot write to codex: {e}")))?;
        Ok(result)
    }

    /// Codex's last stderr lines (at most `n`), joined.
    pub fn stderr_tail(&self, n: usize) -> String {
        let tail = lock(&self.stderr);
        let skip = tail.len().saturating_sub(n);
        tail.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `what`, followed by Codex's last 30 stderr lines.
    pub fn failure(&self, what: &str) -> String {
        format!(
            "{what}\n--- last lines of codex stderr\n{}",
            self.stderr_tail(30)
        )
    }

    /// Every line exchanged so far, in order, exactly as written (without the newline).
    pub fn transcript(&self) -> &[(Dir, String)] {
        &self.transcript
    }

    /// Closes stdin and waits up to `limit` for Codex to exit; kills it otherwise.
    pub async fn shutdown(mut self, limit: Duration) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        if tokio::time::timeout(limit, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn tail_of(msgs: &[Value], n: usize) -> String {
    let skip = msgs.len().saturating_sub(n);
    msgs.iter()
        .skip(skip)
        .map(|m| {
            let s = m.to_string();
            if s.len() > 300 {
                format!("{}…", s.chars().take(300).collect::<String>())
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
