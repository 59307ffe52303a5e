//! The `codex app-server` process: starting it, the handshake, requests and their
//! responses, the event stream, its end.

use std::collections::{HashMap, VecDeque};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::config::{CodexConfig, CodexEnv};
use super::lines::{Line, LineReader};
use super::types::{CodexError, CodexEvent, InitializeResult, MalformedKind, RequestId};

/// The `clientInfo.name` the host gives Codex in `initialize`.
pub const CLIENT_NAME: &str = "tether-host";

/// The receiver of a Codex connection's events ([`CodexAppServer::spawn`]).
pub type CodexEvents = mpsc::Receiver<CodexEvent>;

/// How many stderr lines are kept.
const STDERR_LINES: usize = 200;
/// The longest stderr line kept whole (longer ones are cut).
const STDERR_LINE_MAX: usize = 4096;
/// How many stderr lines an error quotes.
const STDERR_QUOTE: usize = 40;
/// How long to wait, once the process ended, for its stdout and stderr to be read to
/// their end (a grandchild may hold them open); also how long to wait for the exit
/// after stdout ended.
const GRACE: Duration = Duration::from_secs(2);
/// How long [`CodexAppServer::shutdown`] waits after killing the group.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The smallest event channel (the handshake's response must get past the events
/// Codex sends before it).
const MIN_EVENTS: usize = 64;
/// The longest excerpt of a malformed line.
const EXCERPT: usize = 200;

type Reply = oneshot::Sender<Result<Value, CodexError>>;

/// How the process ended, as recorded once.
#[derive(Debug, Clone)]
struct ExitRecord {
    status: Option<ExitStatus>,
    stderr_tail: String,
}

impl ExitRecord {
    fn error(&self) -> CodexError {
        CodexError::Exited {
            status: self.status,
            stderr_tail: self.stderr_tail.clone(),
        }
    }
}

/// Requests waiting for their response, and whether the process has ended (then no
/// more are accepted).
#[derive(Default)]
struct Pending {
    waiting: HashMap<i64, (String, Reply)>,
    exited: Option<ExitRecord>,
}

/// What the connection's tasks and handle share.
struct Shared {
    pending: Mutex<Pending>,
    stderr: Mutex<VecDeque<String>>,
    exit: watch::Sender<Option<ExitRecord>>,
    /// The process group (the child's pid), `None` if unknown.
    pgid: Option<u32>,
    /// Set once the child has been waited for and its group cleaned up: its pid may be
    /// reused, so the group is no longer killed.
    reaped: AtomicBool,
    /// Set while the stdout reader waits for room in the event channel.
    delivering: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn new(pgid: Option<u32>) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            stderr: Mutex::new(VecDeque::new()),
            exit: watch::channel(None).0,
            pgid,
            reaped: AtomicBool::new(false),
            delivering: AtomicBool::new(false),
        }
    }

    /// The last `n` stderr lines, joined with newlines.
    fn stderr_tail(&self, n: usize) -> String {
        let tail = lock(&self.stderr);
        let skip = tail.len().saturating_sub(n);
        tail.iter()
            .skip(skip)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `SIGKILL` to the whole process group, unless the child was reaped.
    fn kill_group(&self) {
        if self.reaped.load(Ordering::Acquire) {
            return;
        }
        if let Some(pid) = self
            .pgid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // ESRCH (the group is gone already) is fine.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }

    fn exit_record(&self) -> Option<ExitRecord> {
        self.exit.borrow().clone()
    }

    /// The error for a request that finds the process gone or the connection closed.
    fn closed_error(&self) -> CodexError {
        self.exit_record().map_or(CodexError::Closed, |e| e.error())
    }

    /// The error for a failed write: the exit, if the process ends within [`GRACE`]
    /// (a broken pipe usually means it did), else the I/O error.
    async fn write_error(&self, what: String, source: std::io::Error) -> CodexError {
        let mut exit = self.exit.subscribe();
        match tokio::time::timeout(GRACE, exit.wait_for(Option::is_some)).await {
            Ok(Ok(record)) => record
                .as_ref()
                .map_or(CodexError::Closed, ExitRecord::error),
            _ => CodexError::Io { what, source },
        }
    }
}

/// Removes a request from [`Pending`] when its caller stops waiting (answered, timed
/// out, or the future dropped).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: i64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).waiting.remove(&self.id);
    }
}

/// A running `codex app-server` after the `initialize` handshake: send requests,
/// notifications and responses; its events arrive on the [`CodexEvents`] that
/// [`spawn`](CodexAppServer::spawn) returned.
///
/// Dropping it kills the process's whole group (`SIGKILL`); [`shutdown`](CodexAppServer::shutdown)
/// first asks it to end by closing its stdin. All methods take `&self`: share it with
/// an `Arc` to use it from several tasks.
pub struct CodexAppServer {
    shared: Arc<Shared>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    next_id: AtomicI64,
    request_timeout: Duration,
    init: InitializeResult,
}

impl std::fmt::Debug for CodexAppServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodexAppServer")
            .field("pid", &self.shared.pgid)
            .field("init", &self.init)
            .finish_non_exhaustive()
    }
}

impl Drop for CodexAppServer {
    fn drop(&mut self) {
        self.shared.kill_group();
    }
}

impl CodexAppServer {
    /// Starts `BIN app-server ARGS…` as [`config`](CodexConfig) says, in its own process
    /// group with stdin and stdout piped and the last lines of stderr kept; sends
    /// `initialize` (`clientInfo {name: "tether-host", title: null, version: <this
    /// crate's version>}`, `capabilities {experimentalApi: false}`), waits for its result
    /// at most [`handshake_timeout`](CodexConfig::handshake_timeout), and sends
    /// `initialized`.
    ///
    /// Returns the connection, whose [`initialize_result`](CodexAppServer::initialize_result)
    /// is Codex's answer, and the receiver of its events (those Codex sent during the
    /// handshake included). On failure the process group is killed; a
    /// [`CodexError::HandshakeTimeout`] or [`CodexError::Exited`] quotes the end of its
    /// stderr.
    pub async fn spawn(config: CodexConfig) -> Result<(Self, CodexEvents), CodexError> {
        let bin = config.resolve_bin()?;
        config.check_cwd()?;
        let mut cmd = Command::new(&bin);
        cmd.arg("app-server")
            .args(&config.args)
            .current_dir(&config.cwd);
        if config.env == CodexEnv::Isolated {
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("LANG", "C.UTF-8");
        }
        cmd.envs(config.env_vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| CodexError::Spawn {
            bin: bin.clone(),
            source,
        })?;
        let shared = Arc::new(Shared::new(child.id()));
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            shared.kill_group();
            return Err(CodexError::Io {
                what: "starting codex app-server".to_owned(),
                source: std::io::Error::other("its stdio is not piped"),
            });
        };
        let (events, rx) = mpsc::channel(config.event_capacity.max(MIN_EVENTS));
        let stderr_task = tokio::spawn(read_stderr(stderr, Arc::clone(&shared)));
        let stdout_task = tokio::spawn(read_stdout(
            stdout,
            config.max_line,
            Arc::clone(&shared),
            events.clone(),
        ));
        tokio::spawn(supervise(
            child,
            stdout_task,
            stderr_task,
            Arc::clone(&shared),
            events,
        ));
        let mut server = Self {
            shared,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            next_id: AtomicI64::new(1),
            request_timeout: config.request_timeout,
            init: InitializeResult {
                user_agent: String::new(),
                codex_home: String::new(),
                platform_family: String::new(),
                platform_os: String::new(),
                extra: Map::new(),
            },
        };
        server.init = server.handshake(config.handshake_timeout).await?;
        Ok((server, rx))
    }

    /// `initialize` and `initialized`, together bounded by `limit`.
    async fn handshake(&self, limit: Duration) -> Result<InitializeResult, CodexError> {
        let params = json!({
            "clientInfo": {
                "name": CLIENT_NAME,
                "title": null,
                "version": env!("CARGO_PKG_VERSION"),
            },
            "capabilities": {"experimentalApi": false},
        });
        let handshake = async {
            let result = self.request_within("initialize", params, limit).await?;
            let init = serde_json::from_value::<InitializeResult>(result.clone()).map_err(|e| {
                CodexError::Protocol {
                    detail: format!("initialize result {result}: {e}"),
                }
            })?;
            self.notify_within("initialized", Value::Null, limit)
                .await?;
            Ok(init)
        };
        match tokio::time::timeout(limit, handshake).await {
            Ok(Err(CodexError::Timeout { .. })) | Err(_) => Err(CodexError::HandshakeTimeout {
                after: limit,
                stderr_tail: self.shared.stderr_tail(STDERR_QUOTE),
            }),
            Ok(other) => other,
        }
    }

    /// Codex's `initialize` result.
    pub fn initialize_result(&self) -> &InitializeResult {
        &self.init
    }

    /// The process id of `codex app-server` (also its process group), if known.
    pub fn pid(&self) -> Option<u32> {
        self.shared.pgid
    }

    /// The last `n` lines Codex wrote to stderr (of the last 200 kept), joined.
    pub fn stderr_tail(&self, n: usize) -> String {
        self.shared.stderr_tail(n)
    }

    /// How the process ended, once it has: its status (`None` if it could not be waited
    /// for). `None` while it runs.
    pub fn exit_status(&self) -> Option<Option<ExitStatus>> {
        self.shared.exit_record().map(|e| e.status)
    }

    /// Waits until the process has ended and returns its status (`None` if it could not
    /// be waited for). Does not end it: see [`shutdown`](CodexAppServer::shutdown).
    pub async fn wait(&self) -> Option<ExitStatus> {
        let mut exit = self.shared.exit.subscribe();
        match exit.wait_for(Option::is_some).await {
            Ok(record) => record.as_ref().and_then(|e| e.status),
            Err(_) => None,
        }
    }

    /// Sends request `method` with `params` (no `params` member when `Null`) and waits
    /// for its response, at most [`request_timeout`](CodexConfig::request_timeout).
    ///
    /// Returns the response's `result`; [`CodexError::Rpc`] for a JSON-RPC error
    /// response; [`CodexError::Exited`] if the process ends first (or had ended);
    /// [`CodexError::Timeout`]; [`CodexError::Io`] if it cannot be written.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, CodexError> {
        self.request_within(method, params, self.request_timeout)
            .await
    }

    /// [`request`](CodexAppServer::request) with its own time limit.
    pub async fn request_within(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, CodexError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if let Some(exit) = &pending.exited {
                return Err(exit.error());
            }
            pending.waiting.insert(id, (method.to_owned(), reply));
        }
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let mut msg = Map::new();
        msg.insert("id".to_owned(), Value::from(id));
        msg.insert("method".to_owned(), Value::from(method));
        if !params.is_null() {
            msg.insert("params".to_owned(), params);
        }
        let exchange = async {
            self.write(&Value::Object(msg), method).await?;
            match answer.await {
                Ok(result) => result,
                Err(_) => Err(self.shared.closed_error()),
            }
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CodexError::Timeout {
                method: method.to_owned(),
                after: limit,
            }),
        }
    }

    /// Sends notification `method` (no `params` member when `params` is `Null`), bounded
    /// by [`request_timeout`](CodexConfig::request_timeout).
    pub async fn notify(&self, method: &str, params: Value) -> Result<(), CodexError> {
        self.notify_within(method, params, self.request_timeout)
            .await
    }

    async fn notify_within(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<(), CodexError> {
        let mut msg = Map::new();
        msg.insert("method".to_owned(), Value::from(method));
        if !params.is_null() {
            msg.insert("params".to_owned(), params);
        }
        self.write_within(&Value::Object(msg), method, limit).await
    }

    /// Answers Codex's request `id` with `result` (for an approval request, e.g.
    /// `{"decision": "accept"}`).
    pub async fn respond(&self, id: &RequestId, result: Value) -> Result<(), CodexError> {
        let msg = json!({"id": id, "result": result});
        self.write_within(&msg, "a response", self.request_timeout)
            .await
    }

    /// Answers Codex's request `id` with a JSON-RPC error. (Codex resolves an approval
    /// answered so as failed: the item fails, the turn goes on.)
    pub async fn respond_error(
        &self,
        id: &RequestId,
        code: i64,
        message: &str,
    ) -> Result<(), CodexError> {
        let msg = json!({"id": id, "error": {"code": code, "message": message}});
        self.write_within(&msg, "an error response", self.request_timeout)
            .await
    }

    async fn write_within(
        &self,
        msg: &Value,
        what: &str,
        limit: Duration,
    ) -> Result<(), CodexError> {
        match tokio::time::timeout(limit, self.write(msg, what)).await {
            Ok(r) => r,
            Err(_) => Err(CodexError::Timeout {
                method: what.to_owned(),
                after: limit,
            }),
        }
    }

    /// Writes `msg` as one line to Codex's stdin.
    async fn write(&self, msg: &Value, what: &str) -> Result<(), CodexError> {
        let mut line = serde_json::to_vec(msg).map_err(|e| CodexError::Io {
            what: format!("encoding {what}"),
            source: e.into(),
        })?;
        line.push(b'\n');
        tracing::trace!(target: "tether_host::codex", "> {}", String::from_utf8_lossy(&line).trim_end());
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err(self.shared.closed_error());
        };
        let written = match pipe.write_all(&line).await {
            Ok(()) => pipe.flush().await,
            Err(e) => Err(e),
        };
        drop(stdin);
        match written {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .shared
                .write_error(format!("writing {what} to codex app-server"), e)
                .await),
        }
    }

    /// Ends the process: closes its stdin (Codex exits at the end of its input), waits
    /// at most `limit` for it to exit, then kills its process group. Returns its status
    /// (`None` if it could not be waited for). Later requests fail with
    /// [`CodexError::Exited`].
    pub async fn shutdown(&self, limit: Duration) -> Option<ExitStatus> {
        let mut exit = self.shared.exit.subscribe();
        let ended = async {
            // A write stuck on a full pipe holds the lock: then the limit ends this.
            drop(self.stdin.lock().await.take());
            let _ = exit.wait_for(Option::is_some).await;
        };
        if tokio::time::timeout(limit, ended).await.is_err() {
            self.shared.kill_group();
            let _ = tokio::time::timeout(KILL_WAIT, exit.wait_for(Option::is_some)).await;
        }
        self.shared.exit_record().and_then(|e| e.status)
    }
}

/// Reads Codex's stderr into the ring of its last lines (and the `trace` log).
async fn read_stderr(stderr: impl AsyncRead + Unpin, shared: Arc<Shared>) {
    let mut lines = LineReader::new(stderr, STDERR_LINE_MAX);
    while let Ok(Some(line)) = lines.next().await {
        let text = match line {
            Line::Text(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Line::TooLong { len, head } => {
                format!(
                    "{}… [a line of {len} bytes, cut]",
                    String::from_utf8_lossy(&head)
                )
            }
        };
        tracing::debug!(target: "tether_host::codex::stderr", "{text}");
        let mut tail = lock(&shared.stderr);
        if tail.len() >= STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    }
}

/// Reads Codex's stdout: responses go to the requests waiting for them, everything else
/// becomes an event (waiting for room in the channel: nothing is dropped).
async fn read_stdout(
    stdout: impl AsyncRead + Unpin,
    max_line: usize,
    shared: Arc<Shared>,
    events: mpsc::Sender<CodexEvent>,
) {
    let mut lines = LineReader::new(stdout, max_line);
    loop {
        let event = match lines.next().await {
            Ok(Some(Line::Text(bytes))) => dispatch(&shared, &bytes),
            Ok(Some(Line::TooLong { len, head })) => Some(CodexEvent::Malformed {
                kind: MalformedKind::TooLong,
                detail: format!("a line of {len} bytes or more, over the limit of {max_line}"),
                excerpt: excerpt(&head),
            }),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(target: "tether_host::codex", "reading codex app-server's stdout: {e}");
                return;
            }
        };
        let Some(event) = event else { continue };
        if let CodexEvent::Malformed { kind, detail, .. } = &event {
            tracing::warn!(target: "tether_host::codex", "codex app-server wrote a line that is skipped ({kind:?}): {detail}");
        }
        shared.delivering.store(true, Ordering::Release);
        let sent = events.send(event).await;
        shared.delivering.store(false, Ordering::Release);
        if sent.is_err() {
            tracing::trace!(target: "tether_host::codex", "codex event dropped: nobody takes events");
        }
    }
}

/// The first [`EXCERPT`] characters of `bytes`, lossy.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(EXCERPT)
        .collect()
}

/// One line of stdout: a response is handed to its request (`None`); anything else is
/// the event to report.
fn dispatch(shared: &Shared, bytes: &[u8]) -> Option<CodexEvent> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    tracing::trace!(target: "tether_host::codex", "< {}", String::from_utf8_lossy(bytes));
    let malformed = |kind, detail: String| {
        Some(CodexEvent::Malformed {
            kind,
            detail,
            excerpt: excerpt(bytes),
        })
    };
    let msg = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(msg)) => msg,
        Ok(other) => {
            return malformed(
                MalformedKind::NotMessage,
                format!("a JSON {} instead of an object", json_kind(&other)),
            );
        }
        Err(e) => return malformed(MalformedKind::NotJson, e.to_string()),
    };
    let params = || msg.get("params").cloned().unwrap_or(Value::Null);
    match (msg.get("method"), msg.get("id")) {
        (Some(Value::String(method)), None) => Some(CodexEvent::Notification {
            method: method.clone(),
            params: params(),
            emitted_at_ms: msg.get("emittedAtMs").and_then(Value::as_i64),
        }),
        (Some(Value::String(method)), Some(id)) => match request_id(id) {
            Some(id) => Some(CodexEvent::Request {
                id,
                method: method.clone(),
                params: params(),
            }),
            None => malformed(
                MalformedKind::NotMessage,
                format!("a request whose id {id} is neither an integer nor a string"),
            ),
        },
        (Some(other), _) => malformed(
            MalformedKind::NotMessage,
            format!("a method that is a JSON {}", json_kind(other)),
        ),
        (None, Some(id)) => {
            let answer = match (msg.get("result"), msg.get("error")) {
                (Some(result), None) => Ok(result.clone()),
                (None, Some(error)) => Err(error),
                _ => {
                    return malformed(
                        MalformedKind::NotMessage,
                        "a response needs exactly one of result and error".to_owned(),
                    );
                }
            };
            let waiting = id
                .as_i64()
                .and_then(|id| lock(&shared.pending).waiting.remove(&id));
            let Some((method, reply)) = waiting else {
                return malformed(
                    MalformedKind::UnknownResponse,
                    format!("a response to id {id}, which no request waits for"),
                );
            };
            let answer = answer.map_err(|error| rpc_error(&method, error));
            // The requester may have stopped waiting just now: nothing to do then.
            let _ = reply.send(answer);
            None
        }
        (None, None) => malformed(
            MalformedKind::NotMessage,
            "an object with neither method nor id".to_owned(),
        ),
    }
}

/// A JSON-RPC `error` object as [`CodexError::Rpc`] (or [`CodexError::Protocol`] when
/// it lacks an integer `code` or a string `message`).
fn rpc_error(method: &str, error: &Value) -> CodexError {
    match (
        error.get("code").and_then(Value::as_i64),
        error.get("message").and_then(Value::as_str),
    ) {
        (Some(code), Some(message)) => CodexError::Rpc {
            method: method.to_owned(),
            code,
            message: message.to_owned(),
            data: error.get("data").cloned(),
        },
        _ => CodexError::Protocol {
            detail: format!("the error answering {method} is no JSON-RPC error: {error}"),
        },
    }
}

fn request_id(id: &Value) -> Option<RequestId> {
    match id {
        Value::Number(n) => n.as_i64().map(RequestId::Integer),
        Value::String(s) => Some(RequestId::String(s.clone())),
        _ => None,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Waits for the process to end (or its stdout to close, then for it to end), lets its
/// output be read to the end, kills what is left of its group, then fails every pending
/// request with the exit and sends [`CodexEvent::Exited`] once.
async fn supervise(
    mut child: Child,
    mut stdout_task: JoinHandle<()>,
    mut stderr_task: JoinHandle<()>,
    shared: Arc<Shared>,
    events: mpsc::Sender<CodexEvent>,
) {
    enum First {
        Exit(std::io::Result<ExitStatus>),
        StdoutEnd,
    }
    let first = tokio::select! {
        status = child.wait() => First::Exit(status),
        _ = &mut stdout_task => First::StdoutEnd,
    };
    let status = match first {
        First::Exit(status) => {
            // Read what is left on stdout. A grandchild may hold it open: kill the group
            // then. While the reader waits for room in the event channel it is the
            // host's to take the events; only a reader stuck on reading is stopped.
            let mut killed = false;
            while tokio::time::timeout(GRACE, &mut stdout_task).await.is_err() {
                if !killed {
                    shared.kill_group();
                    killed = true;
                } else if !shared.delivering.load(Ordering::Acquire) {
                    stdout_task.abort();
                    break;
                }
            }
            status
        }
        First::StdoutEnd => match tokio::time::timeout(GRACE, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                // A Codex that closed its stdout can answer nothing more.
                shared.kill_group();
                child.wait().await
            }
        },
    };
    let status = match status {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(target: "tether_host::codex", "cannot wait for codex app-server: {e}");
            None
        }
    };
    if tokio::time::timeout(GRACE, &mut stderr_task).await.is_err() {
        shared.kill_group();
        if tokio::time::timeout(GRACE, &mut stderr_task).await.is_err() {
            stderr_task.abort();
        }
    }
    // What is left of the group (helpers Codex started) goes with it.
    shared.kill_group();
    shared.reaped.store(true, Ordering::Release);
    let record = ExitRecord {
        status,
        stderr_tail: shared.stderr_tail(STDERR_QUOTE),
    };
    tracing::debug!(target: "tether_host::codex", "codex app-server ended: {:?}", record.status);
    let waiting = {
        let mut pending = lock(&shared.pending);
        pending.exited = Some(record.clone());
        std::mem::take(&mut pending.waiting)
    };
    for (_, (_, reply)) in waiting {
        let _ = reply.send(Err(record.error()));
    }
    shared.exit.send_replace(Some(record.clone()));
    let _ = events
        .send(CodexEvent::Exited {
            status: record.status,
            stderr_tail: record.stderr_tail,
        })
        .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn kind(shared: &Shared, line: &[u8]) -> MalformedKind {
        match dispatch(shared, line) {
            Some(CodexEvent::Malformed { kind, .. }) => kind,
            other => panic!(
                "{:?}: not malformed: {other:?}",
                String::from_utf8_lossy(line)
            ),
        }
    }

    #[test]
    fn lines_that_are_no_message_are_malformed() {
        let shared = Shared::new(None);
        for line in [&b"\xff\xfe"[..], b"{", b"nul", b"{\"method\":\"a\"} x"] {
            assert_eq!(kind(&shared, line), MalformedKind::NotJson);
        }
        for line in [
            &b"null"[..],
            b"[{\"method\":\"a\"}]",
            b"{}",
            b"{\"method\":7}",
            b"{\"id\":1.5,\"method\":\"a\"}",
            b"{\"id\":null,\"method\":\"a\"}",
            b"{\"id\":true,\"method\":\"a\"}",
            b"{\"id\":4}",
            b"{\"id\":4,\"result\":1,\"error\":{}}",
        ] {
            assert_eq!(kind(&shared, line), MalformedKind::NotMessage);
        }
        for line in [
            &b"{\"id\":4,\"result\":1}"[..],
            b"{\"id\":\"4\",\"result\":1}",
        ] {
            assert_eq!(kind(&shared, line), MalformedKind::UnknownResponse);
        }
        assert_eq!(dispatch(&shared, b"  "), None);
    }

    #[test]
    fn messages_become_events() {
        let shared = Shared::new(None);
        assert_eq!(
            dispatch(&shared, b"{\"method\":\"n\"}"),
            Some(CodexEvent::Notification {
                method: "n".to_owned(),
                params: Value::Null,
                emitted_at_ms: None,
            })
        );
        assert_eq!(
            dispatch(
                &shared,
                b"{\"id\":\"x\",\"method\":\"r\",\"params\":[1],\"jsonrpc\":\"2.0\"}"
            ),
            Some(CodexEvent::Request {
                id: RequestId::String("x".to_owned()),
                method: "r".to_owned(),
                params: json!([1]),
            })
        );
    }

    #[test]
    fn responses_reach_their_request() {
        let shared = Shared::new(None);
        let mut answers = Vec::new();
        for id in [7, 8, 9] {
            let (tx, rx) = oneshot::channel();
            lock(&shared.pending)
                .waiting
                .insert(id, (format!("m{id}"), tx));
            answers.push(rx);
        }
        for line in [
            &b"{\"id\":9,\"error\":{\"message\":\"no code\"}}"[..],
            b"{\"id\":8,\"error\":{\"code\":-32001,\"message\":\"busy\"}}",
            b"{\"id\":7,\"result\":null}",
        ] {
            assert_eq!(dispatch(&shared, line), None);
        }
        let mut answers = answers.into_iter().map(|mut rx| rx.try_recv().unwrap());
        assert_eq!(answers.next().unwrap().unwrap(), Value::Null);
        match answers.next().unwrap() {
            Err(CodexError::Rpc {
                method,
                code,
                message,
                data,
            }) => {
                assert_eq!(
                    (method.as_str(), code, message.as_str(), data),
                    ("m8", -32001, "busy", None)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            answers.next().unwrap(),
            Err(CodexError::Protocol { .. })
        ));
        assert!(lock(&shared.pending).waiting.is_empty());
    }
}
