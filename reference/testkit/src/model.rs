//! A scriptable stand-in for a model service's Responses API, for tests that run a real
//! agent (Codex's `codex app-server`) with no network and no account.
//!
//! [`MockModel::start`] listens on `127.0.0.1:0` and speaks just enough HTTP/1.1 for one
//! endpoint: `POST /v1/responses` with a `Content-Length` or chunked JSON body, answered
//! with a `text/event-stream` of Server-Sent Events and the connection closed. Anything
//! else gets `404`. Each request takes the next [`ModelTurn`] of the script:
//!
//! - [`ModelTurn::shell`]: a `function_call` to the shell tool the request advertises. The
//!   tool and its argument shape are read from the request's `tools`: a function tool whose
//!   name has `exec` or `shell` in it and whose parameters take the command line as a
//!   string (`cmd` or `command`) or as an argument vector (`command`, filled with
//!   `["bash", "-lc", LINE]`). If none fits, the request is answered `500` and the reason
//!   is kept in [`MockModel::errors`] (and printed), so that the test fails saying why.
//! - [`ModelTurn::text`]: an assistant message; [`ModelTurn::streamed`] sends its parts
//!   as `response.output_text.delta` events first, so that the agent streams them.
//!
//! A request that finds the script empty is answered `500` and noted in the errors too.
//! Every request body is recorded ([`MockModel::requests`]), so that a test can check what
//! the agent sent back, for instance the `function_call_output` of a command
//! ([`MockModel::function_call_outputs`]).
//!
//! Bounds: a request's head is at most [`MAX_HEAD`] bytes and its body at most
//! [`MAX_BODY`]; a request must arrive within [`READ_LIMIT`]; one connection carries one
//! request; the listener accepts at most [`MAX_CONNECTIONS`] connections and stops when
//! the [`MockModel`] is dropped.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The most bytes of a request line and headers together.
pub const MAX_HEAD: usize = 64 << 10;
/// The most bytes of a request body (after de-chunking).
pub const MAX_BODY: usize = 32 << 20;
/// The longest a whole request (head and body) may take to arrive.
pub const READ_LIMIT: Duration = Duration::from_secs(10);
/// The most connections one [`MockModel`] accepts in its life.
pub const MAX_CONNECTIONS: usize = 10_000;
/// The most header lines of one request, and the most chunks of a chunked body.
const MAX_LINES: usize = 1_000;

/// One answer of the model, taken by one request in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelTurn {
    /// Call the advertised shell tool with this command line.
    Shell {
        /// The command line (one string, as a user would type it).
        command: String,
    },
    /// Answer with an assistant message.
    Text {
        /// The parts of the message, in order; the message is their concatenation.
        parts: Vec<String>,
        /// Whether each part is first sent as a `response.output_text.delta` event.
        streamed: bool,
    },
}

impl ModelTurn {
    /// Call the shell tool with `command`.
    pub fn shell(command: impl Into<String>) -> Self {
        Self::Shell {
            command: command.into(),
        }
    }

    /// Answer `text` in one piece (no delta events).
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            parts: vec![text.into()],
            streamed: false,
        }
    }

    /// Answer the concatenation of `parts`, each sent first as a delta event.
    pub fn streamed<S: Into<String>>(parts: impl IntoIterator<Item = S>) -> Self {
        Self::Text {
            parts: parts.into_iter().map(Into::into).collect(),
            streamed: true,
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The request target, for instance `/v1/responses`.
    pub path: String,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` if it did not parse: see [`MockModel::errors`]).
    pub body: Value,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<ModelTurn>,
    requests: Vec<RecordedRequest>,
    errors: Vec<String>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    ids: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves nothing half-done worth refusing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, what: String) {
        eprintln!("mock model: {what}");
        self.lock().errors.push(what);
    }
}

/// The running mock; the listener stops when this is dropped.
#[derive(Debug)]
pub struct MockModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl MockModel {
    /// Starts listening on `127.0.0.1:0` with `script` as the queue of answers.
    pub async fn start(script: impl IntoIterator<Item = ModelTurn>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        shared.lock().script.extend(script);
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(Self { addr, shared, task })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a client is configured with: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Appends answers to the script.
    pub fn push(&self, turns: impl IntoIterator<Item = ModelTurn>) {
        self.shared.lock().script.extend(turns);
    }

    /// How many answers are still queued.
    pub fn pending(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// What went wrong so far: requests the mock could not answer as scripted, bodies that
    /// were not JSON, malformed HTTP. Empty in a run that went as planned.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// The `function_call_output` items of every request body, as `(call_id, output)`;
    /// an output given as a list of content items is the concatenation of their texts.
    pub fn function_call_outputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for request in self.requests() {
            let Some(input) = request.body.get("input").and_then(Value::as_array) else {
                continue;
            };
            for item in input {
                if item.get("type").and_then(Value::as_str) != Some("function_call_output") {
                    continue;
                }
                let call_id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let pair = (call_id, output_text(item.get("output")));
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
        out
    }

    /// A one-line account for a failure message: requests seen, answers left, errors.
    pub fn summary(&self) -> String {
        let state = self.shared.lock();
        format!(
            "mock model: {} request(s), {} answer(s) left, errors: {:?}",
            state.requests.len(),
            state.script.len(),
            state.errors
        )
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn output_text(output: Option<&Value>) -> String {
    match output {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.get("text").and_then(Value::as_str))
            .collect(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    for _ in 0..MAX_CONNECTIONS {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(stream, Arc::clone(&shared)));
    }
    shared.error(format!(
        "stopped accepting after {MAX_CONNECTIONS} connections"
    ));
}

/// A request as read off the wire.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let request = match tokio::time::timeout(READ_LIMIT, read_request(&mut read)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            shared.error(format!("bad request: {e}"));
            let _ = respond(&mut write, "400 Bad Request", "text/plain", e.as_bytes()).await;
            return;
        }
        Err(_) => {
            shared.error(format!("request not read within {READ_LIMIT:?}"));
            return;
        }
    };
    let route = request.path.split('?').next().unwrap_or_default();
    if request.method != "POST" || route != "/v1/responses" {
        let _ = respond(&mut write, "404 Not Found", "text/plain", b"not found").await;
        return;
    }
    let reply = answer(&shared, request);
    let _ = match reply {
        Ok(events) => stream_events(&mut write, &events).await,
        Err(e) => {
            shared.error(e.clone());
            let body = json!({"error": {"type": "server_error", "message": e}}).to_string();
            respond(
                &mut write,
                "500 Internal Server Error",
                "application/json",
                body.as_bytes(),
            )
            .await
        }
    };
}

/// Reads one request: its line, headers and body, within the size bounds.
async fn read_request(read: &mut (impl AsyncBufRead + Unpin)) -> Result<Request, String> {
    let mut budget = MAX_HEAD;
    let line = read_line(read, &mut budget).await?;
    let mut words = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Err(format!("malformed request line {line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version {version:?}"));
    }
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    for _ in 0..MAX_LINES {
        let line = read_line(read, &mut budget).await?;
        if line.is_empty() {
            let body = read_body(read, &headers).await?;
            return Ok(Request {
                method,
                path,
                headers,
                body,
            });
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Err(format!("more than {MAX_LINES} header lines"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

async fn read_body(
    read: &mut (impl AsyncBufRead + Unpin),
    headers: &[(String, String)],
) -> Result<Vec<u8>, String> {
    if let Some(encoding) = header(headers, "content-encoding")
        && !encoding.eq_ignore_ascii_case("identity")
    {
        return Err(format!("unsupported content-encoding {encoding:?}"));
    }
    let chunked = header(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return read_chunked(read).await;
    }
    let length: usize = match header(headers, "content-length") {
        Some(v) => v.parse().map_err(|_| format!("bad content-length {v:?}"))?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(format!("body of {length} bytes is over {MAX_BODY}"));
    }
    let mut body = vec![0; length];
    read.read_exact(&mut body)
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(body)
}

async fn read_chunked(read: &mut (impl AsyncBufRead + Unpin)) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    for _ in 0..MAX_LINES * 100 {
        let line = read_line(read, &mut budget).await?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            for _ in 0..MAX_LINES {
                if read_line(read, &mut budget).await?.is_empty() {
                    return Ok(body);
                }
            }
            return Err("too many trailer lines".into());
        }
        if body.len() + size > MAX_BODY {
            return Err(format!("chunked body over {MAX_BODY} bytes"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        read.read_exact(body.get_mut(start..).unwrap_or_default())
            .await
            .map_err(|e| format!("chunk: {e}"))?;
        if !read_line(read, &mut budget).await?.is_empty() {
            return Err("chunk not followed by CRLF".into());
        }
    }
    Err("too many chunks".into())
}

/// Reads one CRLF- (or LF-) terminated line, charging its length to `budget`.
async fn read_line(
    read: &mut (impl AsyncBufRead + Unpin),
    budget: &mut usize,
) -> Result<String, String> {
    let mut line = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX);
    let n = (&mut *read)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed mid-request".into());
    }
    if line.last() != Some(&b'\n') {
        return Err(format!("request head over {MAX_HEAD} bytes"));
    }
    *budget -= n;
    let text = String::from_utf8(line).map_err(|_| "head is not UTF-8".to_owned())?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Records `request` and builds the events of the next scripted answer.
fn answer(shared: &Shared, request: Request) -> Result<Vec<Value>, String> {
    let body = match serde_json::from_slice::<Value>(&request.body) {
        Ok(v) => v,
        Err(e) => {
            shared.lock().requests.push(RecordedRequest {
                path: request.path,
                headers: request.headers,
                body: Value::Null,
            });
            return Err(format!("request body is not JSON: {e}"));
        }
    };
    let turn = {
        let mut state = shared.lock();
        state.requests.push(RecordedRequest {
            path: request.path,
            headers: request.headers,
            body: body.clone(),
        });
        let n = state.requests.len();
        state
            .script
            .pop_front()
            .ok_or_else(|| format!("request {n} found the script empty"))?
    };
    let n = shared.ids.fetch_add(1, Ordering::Relaxed);
    let response_id = format!("resp_mock_{n}");
    let mut events = vec![json!({
        "type": "response.created",
        "response": {"id": response_id, "status": "in_progress", "output": []},
    })];
    let item = match turn {
        ModelTurn::Shell { command } => {
            let (name, arguments) = shell_call(&body, &command)?;
            json!({
                "type": "function_call",
                "id": format!("fc_mock_{n}"),
                "call_id": format!("call_mock_{n}"),
                "name": name,
                "arguments": arguments.to_string(),
                "status": "completed",
            })
        }
        ModelTurn::Text { parts, streamed } => {
            let id = format!("msg_mock_{n}");
            if streamed {
                events.push(json!({
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": {"type": "message", "id": id, "role": "assistant",
                             "status": "in_progress", "content": []},
                }));
                for part in &parts {
                    events.push(json!({
                        "type": "response.output_text.delta",
                        "item_id": id, "output_index": 0, "content_index": 0, "delta": part,
                    }));
                }
            }
            json!({
                "type": "message",
                "id": id,
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": parts.concat(), "annotations": []}],
            })
        }
    };
    events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    events.push(json!({
        "type": "response.completed",
        "response": {
            "id": response_id,
            "status": "completed",
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        },
    }));
    Ok(events)
}

/// How a parameter takes the command line.
enum Shape {
    Line(&'static str),
    Argv(&'static str),
}

/// Finds the shell tool among the request's `tools` and builds its arguments for
/// `command`; the error lists every tool and why none fits.
pub fn shell_call(body: &Value, command: &str) -> Result<(String, Value), String> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Err("the request has no `tools`: no shell tool to call".into());
    };
    let mut seen = Vec::new();
    for tool in tools {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("?");
        let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
        seen.push(format!("{kind}:{name}"));
        if kind != "function" || !(name.contains("exec") || name.contains("shell")) {
            continue;
        }
        let params = tool.get("parameters").unwrap_or(&Value::Null);
        let props = params.get("properties").and_then(Value::as_object);
        let Some(props) = props else { continue };
        let shape = ["cmd", "command"].into_iter().find_map(|key| {
            let p = props.get(key)?;
            match p.get("type").and_then(Value::as_str)? {
                "string" => Some(Shape::Line(key)),
                "array" if p.pointer("/items/type").and_then(Value::as_str) == Some("string") => {
                    Some(Shape::Argv(key))
                }
                _ => None,
            }
        });
        let Some(shape) = shape else { continue };
        let (key, value) = match shape {
            Shape::Line(key) => (key, json!(command)),
            Shape::Argv(key) => (key, json!(["bash", "-lc", command])),
        };
        let required = params.get("required").and_then(Value::as_array);
        let unmet: Vec<&str> = required
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|r| *r != key)
            .collect();
        if !unmet.is_empty() {
            seen.push(format!("({name} also requires {unmet:?})"));
            continue;
        }
        return Ok((name.to_owned(), json!({ key: value })));
    }
    Err(format!(
        "no shell tool fits: want a function tool named like exec/shell taking `cmd` or \
         `command` (string or string array); the request offers {}",
        seen.join(", ")
    ))
}

async fn respond(
    write: &mut (impl AsyncWriteExt + Unpin),
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    write.write_all(body).await?;
    write.shutdown().await
}

/// Sends `events` as a Server-Sent Events stream, one write each, the body ending when
/// the connection closes.
async fn stream_events(
    write: &mut (impl AsyncWriteExt + Unpin),
    events: &[Value],
) -> std::io::Result<()> {
    write
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
              connection: close\r\n\r\n",
        )
        .await?;
    for event in events {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        let mut frame = String::new();
        let _ = write!(frame, "event: {kind}\ndata: {event}\n\n");
        write.write_all(frame.as_bytes()).await?;
        write.flush().await?;
    }
    write.shutdown().await
}
