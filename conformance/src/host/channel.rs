//! The controller end of an established session: it encrypts and sends JSON-RPC, reads
//! the host's messages and checks each against the envelope rules as it passes, and runs
//! `command/exec` collecting its output.
//!
//! A session is a version 1 session (one JSON-RPC message per transport message, sections
//! 4.9 and 5.1) unless the case opts in to records ([`ChannelSession::start_records`],
//! `CHAN-31`): then every message goes out as `PART` and `MESSAGE` records within the
//! window the host granted, every plaintext of the host is checked as a record, within the
//! credit the runner granted, and reassembled, and the runner grants credit back as it
//! consumes unless the case stops it ([`ChannelSession::set_granting`]). The accounting is
//! the runner's own ([`Records`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use tether_proto::channel::{HostInfo, Transport};
use tether_proto::cmd::Message;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};

use crate::codex_schema::{CodexSchema, Sender, Verdict};
use crate::context::{Context, host_target};
use crate::host::records::{
    DEFAULT_CREDIT, INITIAL_WINDOW, MAX_MESSAGE_LEN, Record, Records, Taken,
};
use crate::link::Link;
use crate::outcome::{Res, Stop, check, hfail, skip};
use crate::random::random_bytes;
use crate::traffic::describe;

/// One host message as the runner received it.
#[derive(Clone, Debug)]
pub struct HostMessage {
    /// The JSON value.
    pub value: Value,
}

impl HostMessage {
    /// `method`, if any.
    pub fn method(&self) -> Option<&str> {
        self.value.get("method").and_then(Value::as_str)
    }

    /// `params`, or `null`.
    pub fn params(&self) -> &Value {
        self.value.get("params").unwrap_or(&Value::Null)
    }
}

/// How long message helpers wait for the host.
pub const HOST_WAIT: Duration = Duration::from_secs(10);

/// The controller end of an established session.
pub struct ChannelSession {
    name: String,
    log: crate::traffic::TrafficLog,
    /// The relay link carrying the session.
    pub link: Link,
    /// The session id.
    pub id: SessionId,
    /// The transport (public so cases can misuse it).
    pub transport: Transport,
    /// Message 2's host info.
    pub info: HostInfo,
    next_id: i64,
    /// Messages received while waiting for something else, oldest first.
    pub backlog: VecDeque<HostMessage>,
    finished: HashSet<String>,
    /// The method of each request the runner sent and the host has not answered, by the
    /// id's JSON text: the schema of an answer is its request's (`CMD-79`).
    asked: HashMap<String, String>,
    /// How many host messages validated against the Codex schema (`CMD-79`).
    codex_checked: usize,
    /// The `initialize` result, once initialized.
    pub init: Option<Value>,
    /// The accounting of a session with records; `None` for version 1.
    records: Option<Records>,
    /// Messages the host sent while the runner waited for credit, oldest first: the next
    /// to be received.
    inbound: VecDeque<HostMessage>,
}

impl fmt::Debug for ChannelSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSession")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// At most this many bytes of a plaintext go into the log.
const LOGGED_PLAINTEXT: usize = 300;

/// A record plaintext the runner sends, for the log.
fn describe_record(plaintext: &[u8]) -> String {
    match Record::decode(plaintext) {
        Ok(Record::Message(body)) => format!("MESSAGE of {} bytes: {}", body.len(), preview(body)),
        Ok(Record::Part(body)) => format!("PART of {} bytes", body.len()),
        Ok(Record::Window(increment)) => format!("WINDOW {increment}"),
        Ok(Record::Output {
            process_id, data, ..
        }) => format!("OUTPUT of {} bytes for {process_id:?}", data.len()),
        Err(e) => format!(
            "{e}: {}",
            hex::encode(plaintext.get(..32).unwrap_or(plaintext))
        ),
    }
}

fn preview(bytes: &[u8]) -> String {
    let cut = bytes.get(..LOGGED_PLAINTEXT).unwrap_or(bytes);
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > LOGGED_PLAINTEXT {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

impl ChannelSession {
    pub(crate) fn new(
        cx: &Context,
        name: &str,
        link: Link,
        id: SessionId,
        transport: Transport,
        info: HostInfo,
    ) -> Self {
        Self {
            name: name.to_owned(),
            log: cx.log.clone(),
            link,
            id,
            transport,
            info,
            next_id: 1,
            backlog: VecDeque::new(),
            finished: HashSet::new(),
            asked: HashMap::new(),
            codex_checked: 0,
            init: None,
            records: None,
            inbound: VecDeque::new(),
        }
    }

    /// Encrypts `plaintext` (whatever it is) as the next transport message and sends it.
    /// In a session with records it is a record plaintext, sent as it is, whatever the
    /// window: its size is counted as sent when it is a `MESSAGE` or `PART`, its increment
    /// as granted when it is a well-formed `WINDOW`.
    ///
    /// # Errors
    /// The transport refuses (over 65519 bytes) or the link fails.
    pub async fn send_plain(&mut self, plaintext: &[u8]) -> Res<()> {
        match self.records.as_mut() {
            Some(r) => r.count_sent(plaintext),
            None => self.note_request(plaintext),
        }
        self.send_uncounted(plaintext).await
    }

    /// Encrypts and sends `plaintext` without counting it in the records' accounting.
    async fn send_uncounted(&mut self, plaintext: &[u8]) -> Res<()> {
        let mut payload = Vec::new();
        self.transport
            .encrypt(plaintext, &mut payload)
            .map_err(|e| Stop::Fail(format!("{}: encrypting: {e}", self.name)))?;
        let nonce = self.transport.sending_nonce().saturating_sub(1);
        let note = match &self.records {
            None => format!("plaintext -> (nonce {nonce}): {}", preview(plaintext)),
            Some(r) => format!(
                "record -> (nonce {nonce}): {} (runner's window {}, credit {})",
                describe_record(plaintext),
                r.window(),
                r.credit()
            ),
        };
        self.log.note(&self.name, note);
        self.send_ciphertext(payload).await
    }

    /// Sends `payload` as a `DATA` frame of the session, as is.
    ///
    /// # Errors
    /// The link fails.
    pub async fn send_ciphertext(&mut self, payload: Vec<u8>) -> Res<()> {
        self.link
            .send(&RelayFrame::Data {
                session: self.id,
                payload,
            })
            .await
            .map_err(Stop::from)
    }

    /// Sends a JSON value ([`ChannelSession::send_message`]).
    ///
    /// # Errors
    /// As [`ChannelSession::send_message`].
    pub async fn send_json(&mut self, value: &Value) -> Res<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Stop::Fail(format!("json: {e}")))?;
        self.send_message(&bytes).await
    }

    /// Sends one command-protocol message: in version 1 as one transport message; with
    /// records as `PART` records and a `MESSAGE` record, each within the runner's window
    /// (`CHAN-32`, `CHAN-34`), waiting for the host's `WINDOW` records when the window is
    /// spent. Host messages that arrive meanwhile are received next.
    ///
    /// # Errors
    /// The link fails, or the host grants no credit for [`HOST_WAIT`] while the runner
    /// waits for it (`CHAN-36`).
    pub async fn send_message(&mut self, bytes: &[u8]) -> Res<()> {
        if self.records.is_none() {
            return self.send_plain(bytes).await;
        }
        self.note_request(bytes);
        let mut offset = 0usize;
        loop {
            let rest = bytes.get(offset..).unwrap_or_default();
            let piece = self.records.as_ref().and_then(|r| r.next_piece(rest.len()));
            match piece {
                Some((true, _)) => return self.send_plain(&Record::Message(rest).to_vec()).await,
                Some((false, len)) => {
                    let body = rest.get(..len).unwrap_or_default();
                    self.send_plain(&Record::Part(body).to_vec()).await?;
                    offset += len;
                }
                None => self.await_credit(offset, bytes.len()).await?,
            }
        }
    }

    /// Reads the host's records until its `WINDOW` records open the runner's window;
    /// messages go to the inbound queue.
    async fn await_credit(&mut self, offset: usize, len: usize) -> Res<()> {
        let before = self.window();
        if !self.window_reaches(before + 1, HOST_WAIT).await? {
            return hfail(format!(
                "{}: the host granted no credit for {} s while the runner's window was {before} bytes and it had {} of a {len}-byte message left to send: the host did not restore its credit to 8192 bytes after consuming (CHAN-36)",
                self.name,
                HOST_WAIT.as_secs(),
                len - offset
            ));
        }
        Ok(())
    }

    /// Keeps the method of a request the runner sends, for the schema of its answer.
    fn note_request(&mut self, bytes: &[u8]) {
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(bytes) else {
            return;
        };
        if let (Some(id), Some(Value::String(method))) = (o.get("id"), o.get("method")) {
            self.asked.insert(id.to_string(), method.clone());
        }
    }

    /// `CMD-79`: a host message of a method the command protocol shares with Codex
    /// validates against the pinned Codex schema of its method and kind (an answer: against
    /// the result type of the request it answers).
    fn check_codex_schema(&mut self, msg: &HostMessage) -> Res<()> {
        let answered = match (msg.method(), msg.value.get("id")) {
            (None, Some(id)) => self.asked.remove(&id.to_string()),
            _ => None,
        };
        let verdict = CodexSchema::pinned().check(Sender::Host, &msg.value, answered.as_deref());
        if verdict == Verdict::Valid {
            self.codex_checked += 1;
        }
        if let Verdict::Invalid(errors) = verdict {
            let what = match (msg.method(), &answered) {
                (Some(m), _) => m.to_owned(),
                (None, Some(m)) => format!("the answer to {m}"),
                (None, None) => "an answer".to_owned(),
            };
            return hfail(format!(
                "{}: {what} does not validate against Codex {}'s app-server schema (CMD-79): {} — message: {}",
                self.name,
                crate::codex_schema::CODEX_VERSION,
                errors.join("; "),
                preview(msg.value.to_string().as_bytes())
            ));
        }
        Ok(())
    }

    /// How many of the host's messages on this session were messages of methods shared
    /// with Codex and validated against the pinned schema (`CMD-79`).
    pub fn codex_checked(&self) -> usize {
        self.codex_checked
    }

    /// A fresh request id.
    pub fn fresh_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The next `DATA` of the session, or `Err(code)` for its `CLOSE`.
    ///
    /// # Errors
    /// Another frame or nothing within `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Res<Result<Vec<u8>, CloseCode>> {
        match self.link.recv(wait).await? {
            RelayFrame::Data { session, payload } if session == self.id => Ok(Ok(payload)),
            RelayFrame::Close { session, code } if session == self.id => Ok(Err(code)),
            other => hfail(format!(
                "{}: expected DATA or CLOSE of session {}, got {}",
                self.name,
                self.id,
                describe(&other)
            )),
        }
    }

    /// The next message of the host, decrypted and checked against the envelope rules
    /// (`CMD-1`..`CMD-10`; `CHAN-16`: one message per transport message, or with records
    /// the records of `CHAN-32`, each checked as it arrives). Output deltas are checked as
    /// they pass (`CMD-36`, `CMD-40`).
    ///
    /// # Errors
    /// The session closed, nothing arrived, or the message breaks a rule.
    pub async fn recv(&mut self, wait: Duration) -> Res<HostMessage> {
        if let Some(m) = self.inbound.pop_front() {
            return Ok(m);
        }
        if self.records.is_some() {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Some(m) = self.read_record(left).await? {
                    return Ok(m);
                }
            }
        }
        let payload = self.next_data(wait).await?;
        let plain = self.decrypt(&payload)?;
        self.log.note(
            &self.name,
            format!(
                "plaintext <- (nonce {}): {}",
                self.transport.receiving_nonce().saturating_sub(1),
                preview(&plain)
            ),
        );
        self.host_message(&plain, tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN)
    }

    /// The next `DATA` payload of the session; a `CLOSE` fails.
    async fn next_data(&mut self, wait: Duration) -> Res<Vec<u8>> {
        match self.next_frame(wait).await? {
            Ok(p) => Ok(p),
            Err(code) => hfail(format!(
                "{}: the host closed the session with CLOSE {code}",
                self.name
            )),
        }
    }

    /// Decrypts one transport message of the host.
    fn decrypt(&mut self, payload: &[u8]) -> Res<Vec<u8>> {
        let mut plain = Vec::new();
        self.transport.decrypt(payload, &mut plain).map_err(|e| {
            Stop::Fail(format!(
                "{}: a transport message from the host does not decrypt: {e} (CHAN-17, CHAN-21)",
                self.name
            ))
        })?;
        Ok(plain)
    }

    /// Reads one transport message of a session with records and takes its record
    /// (`CHAN-32` to `CHAN-35`): the message it completes, if any. The runner consumes what
    /// it reads and grants credit back when that is due and granting is on (`CHAN-36`).
    ///
    /// # Errors
    /// Nothing within `wait`, the session closed, or a record or message breaks a rule.
    pub async fn read_record(&mut self, wait: Duration) -> Res<Option<HostMessage>> {
        let payload = self.next_data(wait).await?;
        let plain = self.decrypt(&payload)?;
        let nonce = self.transport.receiving_nonce().saturating_sub(1);
        let Some(records) = self.records.as_mut() else {
            return hfail("read_record on a version 1 session (a case bug)");
        };
        let taken = match records.take(&plain) {
            Ok(t) => t,
            Err(reason) => {
                self.log.note(
                    &self.name,
                    format!("record <- (nonce {nonce}): {}", preview(&plain)),
                );
                return hfail(format!("{}: {reason}", self.name));
            }
        };
        let (note, message) = match taken {
            Taken::Window(increment) => (
                format!(
                    "record <- (nonce {nonce}): WINDOW {increment} (runner's window {})",
                    records.window()
                ),
                None,
            ),
            Taken::Part(size) => {
                records.consume(size);
                (
                    format!(
                        "record <- (nonce {nonce}): PART of {} bytes (granted {}, received {})",
                        plain.len() - 1,
                        records.granted(),
                        records.received
                    ),
                    None,
                )
            }
            Taken::Output { value, size } => {
                records.consume(size);
                let pid = value
                    .pointer("/params/processId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if self.finished.contains(pid) {
                    return hfail(format!(
                        "the host sent an OUTPUT record for process {pid:?} after answering its command/exec (CMD-36, CMD-76)"
                    ));
                }
                self.log.note(
                    &self.name,
                    format!(
                        "record <- (nonce {nonce}): OUTPUT of {} bytes: {}",
                        plain.len() - 1,
                        preview(value.to_string().as_bytes())
                    ),
                );
                self.grant_due().await?;
                return Ok(Some(HostMessage { value }));
            }
            Taken::Message { bytes, size } => {
                records.consume(size);
                (
                    format!(
                        "record <- (nonce {nonce}): MESSAGE, message of {} bytes: {}",
                        bytes.len(),
                        preview(&bytes)
                    ),
                    Some(bytes),
                )
            }
        };
        self.log.note(&self.name, note);
        self.grant_due().await?;
        match message {
            Some(bytes) => self.host_message(&bytes, MAX_MESSAGE_LEN).map(Some),
            None => Ok(None),
        }
    }

    /// Checks one message of the host against the envelope rules (`max_len`: the session's
    /// limit, `CMD-2`) and its output deltas (`CMD-36`, `CMD-40`).
    fn host_message(&mut self, bytes: &[u8], max_len: usize) -> Res<HostMessage> {
        if let Err(r) = Message::parse_or_reject_within(bytes, max_len) {
            return hfail(format!(
                "{}: the host sent a message that breaks the envelope rules: {} [{}]",
                self.name,
                r.error.name(),
                r.error.requirement()
            ));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Stop::Fail(format!("{}: host message: {e}", self.name)))?;
        let msg = HostMessage { value };
        self.check_codex_schema(&msg)?;
        if msg.method() == Some("command/exec/outputDelta") {
            if self.records.is_some() {
                return hfail(format!(
                    "{}: the host sent command/exec output as a JSON outputDelta in a session \
                     with records, where it goes in OUTPUT records (CMD-76)",
                    self.name
                ));
            }
            check_delta(msg.params())?;
            if let Some(pid) = msg.params().get("processId").and_then(Value::as_str)
                && self.finished.contains(pid)
            {
                return hfail(format!(
                    "the host sent an output delta for process {pid:?} after answering its command/exec (CMD-36)"
                ));
            }
        }
        Ok(msg)
    }

    /// Sends a request and returns the whole answer (response or error response);
    /// notifications that arrive first go to the backlog.
    ///
    /// # Errors
    /// No answer within `wait`, the session ends, or a message breaks a rule.
    pub async fn call_wait(&mut self, method: &str, params: Value, wait: Duration) -> Res<Value> {
        let id = self.fresh_id();
        let mut req = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null()
            && let Some(o) = req.as_object_mut()
        {
            o.insert("params".to_owned(), params);
        }
        self.send_json(&req).await?;
        self.answer_to(&json!(id), wait).await
    }

    /// [`ChannelSession::call_wait`] with [`HOST_WAIT`].
    ///
    /// # Errors
    /// As [`ChannelSession::call_wait`].
    pub async fn call(&mut self, method: &str, params: Value) -> Res<Value> {
        self.call_wait(method, params, HOST_WAIT).await
    }

    /// Waits for the answer to the request with `id`; other messages go to the backlog.
    ///
    /// # Errors
    /// As [`ChannelSession::call_wait`].
    pub async fn answer_to(&mut self, id: &Value, wait: Duration) -> Res<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.recv(left).await.map_err(|e| match e {
                Stop::Fail(r) => Stop::Fail(format!("waiting for the answer to request {id}: {r}")),
                s @ Stop::Skip(_) => s,
            })?;
            if msg.method().is_none() && msg.value.get("id") == Some(id) {
                return Ok(msg.value);
            }
            self.backlog.push_back(msg);
        }
    }

    /// Sends a request and returns its `result`.
    ///
    /// # Errors
    /// An error response, or as [`ChannelSession::call`].
    pub async fn call_ok(&mut self, method: &str, params: Value) -> Res<Value> {
        let answer = self.call(method, params).await?;
        match answer.get("result") {
            Some(r) => Ok(r.clone()),
            None => hfail(format!(
                "{method}: expected a result, got the error {}",
                answer.get("error").unwrap_or(&Value::Null)
            )),
        }
    }

    /// `initialize` (`CMD-15`) and `initialized`; returns the result.
    ///
    /// # Errors
    /// The host refuses.
    pub async fn initialize(&mut self) -> Res<Value> {
        let result = self
            .call_ok(
                "initialize",
                json!({"clientInfo": {"name": "tether-conformance", "version": env!("CARGO_PKG_VERSION")}, "tether": {"protocolVersion": "tether/2"}}),
            )
            .await?;
        self.send_json(&json!({"jsonrpc": "2.0", "method": "initialized"}))
            .await?;
        self.init = Some(result.clone());
        Ok(result)
    }

    /// Whether the host listed `capability` in the `initialize` result's `tether.capabilities` (or, before it, in message 2).
    pub fn has_capability(&self, capability: &str) -> bool {
        match &self.init {
            Some(init) => init
                .pointer("/tether/capabilities")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|c| c.as_str() == Some(capability))),
            None => self.info.has_capability(capability),
        }
    }

    /// Expects the host to send nothing on the session for `dur`.
    ///
    /// # Errors
    /// Something arrived.
    pub async fn expect_silence(&mut self, dur: Duration) -> Res<()> {
        match self.recv(dur).await {
            Ok(m) => hfail(format!(
                "{}: expected nothing from the host, got {}",
                self.name, m.value
            )),
            Err(Stop::Fail(r)) if r.contains("nothing received") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Expects `CLOSE code` for the session, allowing `DATA` before it (decrypted and
    /// dropped) when `allow_data`.
    ///
    /// # Errors
    /// Another code, another frame, or nothing.
    pub async fn expect_close(&mut self, code: CloseCode, allow_data: bool) -> Res<()> {
        loop {
            match self.next_frame(HOST_WAIT).await {
                Ok(Err(c)) if c == code => return Ok(()),
                Ok(Err(c)) => {
                    return hfail(format!(
                        "{}: expected CLOSE {code}, got CLOSE {c}",
                        self.name
                    ));
                }
                Ok(Ok(_)) if allow_data => {}
                Ok(Ok(p)) => {
                    return hfail(format!(
                        "{}: expected CLOSE {code}, got DATA ({} bytes)",
                        self.name,
                        p.len()
                    ));
                }
                Err(Stop::Fail(r)) => {
                    return hfail(format!("expected CLOSE {code}: {r}"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks a process as answered (its deltas must have ended, `CMD-36`).
    pub fn finished(&mut self, process_id: &str) {
        self.finished.insert(process_id.to_owned());
    }

    /// Ends the session with `CLOSE NORMAL` and the link with it.
    pub async fn close(mut self) {
        let _ = self
            .link
            .send(&RelayFrame::Close {
                session: self.id,
                code: CloseCode::NORMAL,
            })
            .await;
        self.link.close_websocket().await;
    }
}

impl ChannelSession {
    /// Opts in to records (`CHAN-31`): sends a `WINDOW` of `increment` as the first
    /// transport message of the session (plaintext `02` and the increment, big-endian), so
    /// that the host may send `16384 + increment` bytes. With `granting` the runner grants
    /// credit back up to [`DEFAULT_CREDIT`] (or `16384 + increment`, if more) as it
    /// consumes; without, it grants nothing until [`ChannelSession::set_granting`].
    ///
    /// # Errors
    /// Skip when message 2 does not list `channel.flow`; the link fails.
    pub async fn start_records(&mut self, increment: u32, granting: bool) -> Res<()> {
        if !self
            .info
            .has_capability(tether_proto::cmd::capability::CHANNEL_FLOW)
        {
            return skip(
                "the host does not list channel.flow in message 2: it does not carry records (CHAN-31)",
            );
        }
        let target = DEFAULT_CREDIT.max(INITIAL_WINDOW + u64::from(increment));
        self.log.note(
            &self.name,
            format!(
                "opting in to records: WINDOW {increment} (the host may send {} bytes); granting {}",
                INITIAL_WINDOW + u64::from(increment),
                if granting { "on" } else { "off" }
            ),
        );
        // The accounting counts this increment from the start.
        self.records = Some(Records::new(increment, target, granting));
        self.send_uncounted(&Record::Window(increment).to_vec())
            .await
    }

    /// The runner's accounting of the session's records; `None` for version 1.
    pub fn records(&self) -> Option<&Records> {
        self.records.as_ref()
    }

    /// Bytes the runner may still send (`CHAN-34`); 0 for a version 1 session.
    pub fn window(&self) -> u64 {
        self.records.as_ref().map_or(0, Records::window)
    }

    /// Stops (false) or resumes (true) granting credit back as the runner consumes;
    /// resuming grants what is due at once.
    ///
    /// # Errors
    /// The link fails.
    pub async fn set_granting(&mut self, on: bool) -> Res<()> {
        if let Some(r) = self.records.as_mut() {
            r.set_granting(on);
            self.log.note(
                &self.name,
                format!(
                    "granting {} (credit {})",
                    if on { "resumed" } else { "stopped" },
                    r.credit()
                ),
            );
        }
        self.grant_due().await
    }

    /// Sets the credit the runner grants back up to (16384 to 258048).
    pub fn set_credit_target(&mut self, target: u64) {
        if let Some(r) = self.records.as_mut() {
            r.set_target(target);
        }
    }

    /// Sends the `WINDOW` record that is due, if any (`CHAN-36`).
    async fn grant_due(&mut self) -> Res<()> {
        let due = self.records.as_mut().and_then(Records::due_grant);
        match due {
            Some(increment) => {
                // due_grant counted it as granted already.
                self.send_uncounted(&Record::Window(increment).to_vec())
                    .await
            }
            None => Ok(()),
        }
    }

    /// Reads the host's records until the runner's window is at least `bytes`; messages
    /// go to the inbound queue.
    ///
    /// # Errors
    /// Not within `wait`, or a rule broken on the way.
    pub async fn wait_window(&mut self, bytes: u64, wait: Duration) -> Res<()> {
        if !self.window_reaches(bytes, wait).await? {
            return hfail(format!(
                "{}: the runner's window stayed at {} bytes for {:.1} s; expected at least {bytes}",
                self.name,
                self.window(),
                wait.as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Reads the host's records (messages to the inbound queue) until the runner's window
    /// is at least `bytes`: true, or false when nothing more arrived within `wait`.
    async fn window_reaches(&mut self, bytes: u64, wait: Duration) -> Res<bool> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.window() < bytes {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_record(left).await {
                Ok(Some(m)) => self.inbound.push_back(m),
                Ok(None) => {}
                Err(Stop::Fail(r)) if r.contains("nothing received") => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads the host's records until nothing arrives for `quiet` (for `first` before the
    /// first record); messages go to the inbound queue. Returns how many transport
    /// messages were read.
    ///
    /// # Errors
    /// Something keeps arriving for `max`, or a rule broken on the way.
    pub async fn read_until_quiet(
        &mut self,
        first: Duration,
        quiet: Duration,
        max: Duration,
    ) -> Res<u64> {
        let deadline = tokio::time::Instant::now() + max;
        let mut read = 0u64;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return hfail(format!(
                    "{}: the host kept sending for {:.1} s ({read} transport messages)",
                    self.name,
                    max.as_secs_f64()
                ));
            }
            let wait = if read == 0 { first } else { quiet };
            match self.read_record(wait).await {
                Ok(Some(m)) => self.inbound.push_back(m),
                Ok(None) => {}
                Err(Stop::Fail(r)) if r.contains("nothing received") => return Ok(read),
                Err(e) => return Err(e),
            }
            read += 1;
        }
    }

    /// Messages received and not yet taken by [`ChannelSession::recv`].
    pub fn inbound(&self) -> &VecDeque<HostMessage> {
        &self.inbound
    }
}

/// `CMD-40`: a delta's chunk is standard padded base64 of 1..=16384 bytes (empty only with
/// `capReached`).
fn check_delta(params: &Value) -> Res<()> {
    let Some(b64) = params.get("deltaBase64").and_then(Value::as_str) else {
        return hfail(format!(
            "an output delta without a deltaBase64 string: {params}"
        ));
    };
    let raw = tether_proto::cmd::methods::decode_delta(b64).map_err(|e| {
        Stop::Fail(format!(
            "an output delta whose deltaBase64 is not standard padded base64: {e} (CMD-40)"
        ))
    })?;
    let cap = params.get("capReached").and_then(Value::as_bool);
    check(cap.is_some(), || {
        format!("an output delta without the boolean capReached: {params} (CMD-40)")
    })?;
    check(raw.len() <= tether_proto::limits::MAX_OUTPUT_CHUNK, || {
        format!(
            "an output delta of {} raw bytes; at most 16384 are allowed (CMD-40)",
            raw.len()
        )
    })?;
    check(!raw.is_empty() || cap == Some(true), || {
        "an empty output delta without capReached (CMD-40)".to_owned()
    })
}

/// What one `command/exec` produced.
#[derive(Clone, Debug, Default)]
pub struct ExecRun {
    /// The answer (response or error response).
    pub answer: Value,
    /// Stdout bytes, in delta order.
    pub stdout: Vec<u8>,
    /// Stderr bytes, in delta order.
    pub stderr: Vec<u8>,
    /// Every delta's params, in order.
    pub deltas: Vec<Value>,
}

impl ExecRun {
    /// The `result`, if the answer is a success.
    pub fn result(&self) -> Option<&Value> {
        self.answer.get("result")
    }

    /// The error code, if the answer is an error.
    pub fn error_code(&self) -> Option<i64> {
        self.answer
            .get("error")
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64)
    }

    /// Tether's report of the result, its `tether` member (`CMD-39`).
    pub fn report(&self) -> Option<&Value> {
        self.result().and_then(|r| r.get("tether"))
    }

    /// `result.tether.exitCode`: the exit status, `None` when a signal ended the process
    /// (`CMD-39`).
    pub fn exit_code(&self) -> Option<i64> {
        self.report()
            .and_then(|r| r.get("exitCode"))
            .and_then(Value::as_i64)
    }
}

impl ChannelSession {
    /// Runs `command/exec` with `params` (`streamStdoutStderr: true` and a `processId` are
    /// added if absent) and collects its deltas until the answer (`CMD-35`, `CMD-36`).
    /// With `streamStdoutStderr: false` in `params` the output is the result's `stdout`
    /// and `stderr` instead.
    ///
    /// # Errors
    /// No answer within `wait`, or a rule broken on the way.
    pub async fn exec(&mut self, mut params: Value, wait: Duration) -> Res<ExecRun> {
        // CMD-35: streamed unless the params ask for the output in the result.
        let buffered = params.get("streamStdoutStderr") == Some(&json!(false));
        let pid = match params.get("processId").and_then(Value::as_str) {
            Some(p) => p.to_owned(),
            None if buffered => String::new(),
            None => {
                let p = format!("p{}", hex::encode(random_bytes::<4>()));
                if let Some(o) = params.as_object_mut() {
                    o.insert("processId".to_owned(), json!(p));
                }
                p
            }
        };
        if !buffered && let Some(o) = params.as_object_mut() {
            o.insert("streamStdoutStderr".to_owned(), json!(true));
        }
        let id = self.fresh_id();
        self.send_json(
            &json!({"jsonrpc": "2.0", "id": id, "method": "command/exec", "params": params}),
        )
        .await?;
        let mut run = self.collect_exec(&json!(id), &pid, wait).await?;
        if buffered && let Some(r) = run.answer.get("result") {
            let text = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .as_bytes()
                    .to_vec()
            };
            run.stdout = text("stdout");
            run.stderr = text("stderr");
        }
        Ok(run)
    }

    /// Collects the deltas of `pid` until the answer to request `id`.
    ///
    /// # Errors
    /// As [`ChannelSession::exec`].
    pub async fn collect_exec(&mut self, id: &Value, pid: &str, wait: Duration) -> Res<ExecRun> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut run = ExecRun::default();
        let mut pending: Vec<HostMessage> = self.backlog.drain(..).collect();
        pending.reverse();
        loop {
            let msg = match pending.pop() {
                Some(m) => m,
                None => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.recv(left).await.map_err(|e| match e {
                        Stop::Fail(r) => {
                            Stop::Fail(format!("waiting for command/exec {pid:?} to end: {r}"))
                        }
                        s @ Stop::Skip(_) => s,
                    })?
                }
            };
            if msg.method() == Some("command/exec/outputDelta")
                && msg.params().get("processId").and_then(Value::as_str) == Some(pid)
            {
                let raw = msg
                    .params()
                    .get("deltaBase64")
                    .and_then(Value::as_str)
                    .and_then(|b| tether_proto::cmd::methods::decode_delta(b).ok())
                    .unwrap_or_default();
                match msg.params().get("stream").and_then(Value::as_str) {
                    Some("stdout") => run.stdout.extend_from_slice(&raw),
                    Some("stderr") => run.stderr.extend_from_slice(&raw),
                    other => {
                        return hfail(format!(
                            "an output delta with stream {other:?}; expected \"stdout\" or \"stderr\""
                        ));
                    }
                }
                run.deltas.push(msg.params().clone());
                continue;
            }
            if msg.method().is_none() && msg.value.get("id") == Some(id) {
                run.answer = msg.value;
                self.finished(pid);
                return Ok(run);
            }
            self.backlog.push_back(msg);
        }
    }

    /// A directory on the host for `command/exec` cases.
    ///
    /// # Errors
    /// Skip for a host whose path style the runner has no default for.
    pub fn work_dir(&self, cx: &Context) -> Res<String> {
        let host = host_target(cx)?;
        if let Some(d) = &host.work_dir {
            return Ok(d.clone());
        }
        match self.info.path_style {
            tether_proto::channel::PathStyle::Posix => Ok("/tmp".to_owned()),
            _ => skip("no directory on this host for command/exec cases: give --work-dir"),
        }
    }

    /// Skips unless the host offers `command/exec` (`CMD-16`).
    ///
    /// # Errors
    /// Skip.
    pub fn need_exec(&self) -> Res<()> {
        if self.has_capability(tether_proto::cmd::capability::COMMAND_EXEC) {
            Ok(())
        } else {
            skip("the host does not offer command.exec (CMD-16)")
        }
    }
}

impl ChannelSession {
    /// Reads host messages (the backlog first) until one satisfies `pred`; returns every
    /// message read, the matching one last.
    ///
    /// # Errors
    /// Nothing matching within `wait`, or a rule broken on the way.
    pub async fn read_until(
        &mut self,
        wait: Duration,
        what: &str,
        pred: impl Fn(&HostMessage) -> bool,
    ) -> Res<Vec<HostMessage>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let msg = match self.backlog.pop_front() {
                Some(m) => m,
                None => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.recv(left).await.map_err(|e| match e {
                        Stop::Fail(r) => Stop::Fail(format!("waiting for {what}: {r}")),
                        s @ Stop::Skip(_) => s,
                    })?
                }
            };
            let done = pred(&msg);
            seen.push(msg);
            if done {
                return Ok(seen);
            }
        }
    }

    /// Sends the answer `result` to the host's request `id`.
    ///
    /// # Errors
    /// The link fails.
    pub async fn answer(&mut self, id: &Value, result: Value) -> Res<()> {
        self.send_json(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
            .await
    }
}
