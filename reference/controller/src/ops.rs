//! What a controller does: pair with a host, run a command on it, check that it answers.

use std::time::{Duration, Instant};

use serde_json::Value;
use tether_proto::channel::{HostInfo, Timestamp};
use tether_proto::cmd::methods::{
    CommandExecParams, CommandExecResult, HostInfoParams, HostInfoResult, InitializeParams,
    InitializeResult, InitializedParams, OutputCap, decode_delta,
};
use tether_proto::cmd::types::{Implementation, OutputStream, SandboxMode};
use tether_proto::cmd::{PROTOCOL_NAME, Params, ServerNotification, capability};
use tether_proto::keys::fingerprint;
use tether_proto::link::CloseCode;
use tether_proto::session::{ControllerConfig, Purpose};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

use crate::error::ControllerError;
use crate::link::{Link, LinkOptions};
use crate::session::{Session, SessionEvent, SessionOptions, random_session_id};
use crate::state::{ControllerState, PairedHost};

/// The longest device name a PAIR payload carries, in bytes (`CHAN-3`).
pub const MAX_DEVICE_NAME_LEN: usize = 64;

/// The outcome of a successful pairing.
#[derive(Clone, Debug)]
pub struct Paired {
    /// The record now stored in `controller.json`.
    pub host: PairedHost,
    /// What the host said about itself in message 2.
    pub host_info: HostInfo,
}

impl Paired {
    /// The fingerprint of the host key.
    pub fn fingerprint(&self) -> String {
        self.host.fingerprint()
    }
}

/// Pairs with the host of `token_text` (`spec/02`, `spec/04` PAIR handshake).
///
/// Decodes the token and checks its expiry (`TOKEN-10`) before connecting; presents
/// `credential` to the token's relay and workspace; calls `on_code` with the confirmation
/// code (`CHAN-23`) before waiting for the host (up to 75 s, `CHAN-13`); stores the host only
/// after message 2 was read (`CHAN-22`); then closes the session with `NORMAL`.
///
/// # Errors
/// [`ControllerError::Token`] (`TOKEN-*`), [`ControllerError::Usage`] for a bad device name,
/// the link's errors, [`ControllerError::Closed`] with the host's refusal
/// (`TOKEN_REJECTED`, `CONFIRMATION_REJECTED`, ...), [`ControllerError::HandshakeTimeout`].
pub async fn pair(
    state: &ControllerState,
    token_text: &str,
    credential: &str,
    device_name: &str,
    options: &LinkOptions,
    on_code: impl FnOnce(&str),
) -> Result<Paired, ControllerError> {
    let token = PairingToken::from_text(token_text.trim())?;
    // TOKEN-10: an expired token is refused before anything is sent.
    token.check_expiry(UnixTime::now())?;
    check_device_name(device_name)?;
    let host_key = *token.host_key();
    let link = Link::connect(token.relay_url(), token.workspace(), credential, options).await?;
    let purpose = Purpose::Pair {
        token_id: *token.token_id(),
        token_secret: *token.token_secret(),
        device_name: device_name.to_owned(),
    };
    let timestamp = state.next_timestamp(&host_key, UnixTime::now())?;
    let config = ControllerConfig {
        static_private: *state.keypair().private(),
        host_key,
        workspace: token.workspace().to_owned(),
        session: random_session_id()?,
        timestamp,
        handshake_timeout: ControllerConfig::default_timeout(&purpose),
        purpose,
    };
    let opened = Session::open(&link, config, on_code).await;
    let session = match opened {
        Ok(s) => s,
        Err(e) => {
            link.close(CloseCode::NORMAL).await;
            return Err(e);
        }
    };
    let host_info = session.host_info().clone();
    // CHAN-22: the host key is kept only now that message 2 has been read.
    let host = PairedHost {
        name: host_info.name.clone(),
        host_key: hex::encode(host_key),
        relay: token.relay_url().to_owned(),
        workspace: token.workspace().to_owned(),
        credential: credential.to_owned(),
        paired_at: UnixTime::now().as_secs(),
        last_timestamp: hex::encode(timestamp.to_bytes()),
    };
    let stored = state.add_host(host.clone());
    session.close(CloseCode::NORMAL).await;
    link.close(CloseCode::NORMAL).await;
    stored?;
    Ok(Paired { host, host_info })
}

/// `CHAN-3`: 1 to 64 bytes of UTF-8 without control characters.
fn check_device_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() || name.len() > MAX_DEVICE_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ControllerError::Usage(format!(
            "device name {name:?} must be 1 to {MAX_DEVICE_NAME_LEN} bytes without control characters (CHAN-3)"
        )));
    }
    Ok(())
}

/// A session to a paired host, initialized (`CMD-14`, `CMD-15`).
#[derive(Debug)]
pub struct Connection {
    /// The link to the relay.
    pub link: Link,
    /// The established session.
    pub session: Session,
    /// The host's answer to `initialize`.
    pub init: InitializeResult,
}

impl Connection {
    /// Closes the session and the link normally.
    pub async fn close(self) {
        self.session.close(CloseCode::NORMAL).await;
        self.link.close(CloseCode::NORMAL).await;
    }
}

/// The `initialize` params this crate sends.
pub fn initialize_params() -> InitializeParams {
    InitializeParams {
        client_info: Implementation {
            name: "tether-controller".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        protocol_version: PROTOCOL_NAME.to_owned(),
        capabilities: Some(vec![
            capability::COMMAND_EXEC.to_owned(),
            capability::THREAD_HANDOFF.to_owned(),
        ]),
    }
}

/// Opens an established session to a paired host on `link` (`Purpose::Resume`), with the
/// next timestamp stored first (`CHAN-5`).
///
/// # Errors
/// As [`Session::open`].
pub async fn open_session(
    state: &ControllerState,
    link: &Link,
    host: &PairedHost,
) -> Result<Session, ControllerError> {
    let host_key = host.host_key_bytes()?;
    let timestamp = state.next_timestamp(&host_key, UnixTime::now())?;
    open_session_at(
        state,
        link,
        host,
        host_key,
        timestamp,
        SessionOptions::default(),
    )
    .await
}

/// [`open_session`] with the message-1 timestamp already taken (and persisted, `CHAN-5`).
async fn open_session_at(
    state: &ControllerState,
    link: &Link,
    host: &PairedHost,
    host_key: [u8; 32],
    timestamp: Timestamp,
    options: SessionOptions,
) -> Result<Session, ControllerError> {
    let purpose = Purpose::Resume;
    let config = ControllerConfig {
        static_private: *state.keypair().private(),
        host_key,
        workspace: host.workspace.clone(),
        session: random_session_id()?,
        timestamp,
        handshake_timeout: ControllerConfig::default_timeout(&purpose),
        purpose,
    };
    Session::open_with(link, config, options, |_| {}).await
}

/// Connects to a paired host: link, handshake, `initialize`, `initialized`.
///
/// # Errors
/// The link's, the handshake's or `initialize`'s errors.
pub async fn connect(
    state: &ControllerState,
    host: &PairedHost,
    options: &LinkOptions,
) -> Result<Connection, ControllerError> {
    let (link, session) = connect_session(state, host, options, SessionOptions::default()).await?;
    let result = async {
        let init = session.call(&initialize_params()).await?;
        session.notify(
            InitializedParams::METHOD,
            Some(Value::Object(serde_json::Map::new())),
        )?;
        Ok::<_, ControllerError>(init)
    }
    .await;
    match result {
        Ok(init) => Ok(Connection {
            link,
            session,
            init,
        }),
        Err(e) => {
            session.close(CloseCode::NORMAL).await;
            link.close(CloseCode::NORMAL).await;
            Err(e)
        }
    }
}

/// Connects to a paired host up to an established session, before `initialize`: a link
/// of its own to the host's relay and the handshake (`Purpose::Resume`) on it. The caller
/// speaks the command protocol itself (`tether connect` forwards its client's messages)
/// and closes both when done.
///
/// # Errors
/// The link's or the handshake's errors (the relay's refusal of the `HELLO` first).
pub async fn connect_session(
    state: &ControllerState,
    host: &PairedHost,
    options: &LinkOptions,
    session_options: SessionOptions,
) -> Result<(Link, Session), ControllerError> {
    let host_key = host.host_key_bytes()?;
    // The timestamp is persisted (CHAN-5) while the link comes up: the write runs when the
    // link's first step waits for the network, not after the link is up.
    let (started, timestamp) = tokio::join!(
        Link::start(&host.relay, &host.workspace, &host.credential, options),
        async { state.next_timestamp(&host_key, UnixTime::now()) },
    );
    let (link, ready) = started?;
    let timestamp = match timestamp {
        Ok(t) => t,
        Err(e) => {
            link.close(CloseCode::NORMAL).await;
            return Err(e);
        }
    };
    // LINK-38: OPEN follows HELLO without waiting for READY (the relay processes it in
    // READY, LINK-6), which saves a round trip to the relay.
    let (ready, session) = tokio::join!(
        ready.wait(),
        open_session_at(state, &link, host, host_key, timestamp, session_options)
    );
    // The relay's refusal of the HELLO explains a failed open better than the open.
    let result = match (ready, session) {
        (Err(e), Ok(session)) => {
            session.close(CloseCode::NORMAL).await;
            Err(e)
        }
        (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(session)) => Ok(session),
    };
    match result {
        Ok(session) => Ok((link, session)),
        Err(e) => {
            link.close(CloseCode::NORMAL).await;
            Err(e)
        }
    }
}

/// What to run with [`exec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments (`CMD-34`).
    pub argv: Vec<String>,
    /// Working directory on the host; `None` for the host's default working directory
    /// (`CMD-71`: its default project).
    pub cwd: Option<String>,
    /// Sandbox mode; `None` for the host's default.
    pub sandbox: Option<SandboxMode>,
    /// Time limit (`CMD-42`); `None` for the host's default.
    pub timeout: Option<Duration>,
    /// Output cap in bytes (`CMD-41`); `None` for all of the output when the session has
    /// records (`outputCap: null`), else the host's default cap (1 MiB).
    pub output_cap: Option<u64>,
}

/// How a remote command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The host's `command/exec` result (`CMD-39`).
    pub result: CommandExecResult,
}

impl ExecOutcome {
    /// The status a local shell would report: the exit code, or 128 + the signal number
    /// when a signal ended the process (1 for a signal this crate cannot number).
    pub fn exit_status(&self) -> i32 {
        match (&self.result.exit_code, &self.result.signal) {
            (Some(code), _) => *code,
            (None, Some(signal)) => signal_number(signal).map_or(1, |n| 128 + n),
            (None, None) => 1,
        }
    }
}

/// The POSIX number of a signal name, for the signals Linux and macOS number alike.
pub fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGHUP" => 1,
        "SIGINT" => 2,
        "SIGQUIT" => 3,
        "SIGILL" => 4,
        "SIGTRAP" => 5,
        "SIGABRT" => 6,
        "SIGFPE" => 8,
        "SIGKILL" => 9,
        "SIGSEGV" => 11,
        "SIGPIPE" => 13,
        "SIGALRM" => 14,
        "SIGTERM" => 15,
        _ => return None,
    })
}

/// Where [`exec_on`] puts a command's output, chunk by chunk, in order (`CMD-35`).
///
/// The next chunk is not taken from the session until `write` has finished, so a sink
/// that writes slowly (a terminal that scrolls, a pipe nobody reads) holds the host back
/// through the session's window (`CHAN-36`) and the command waits in its own writes
/// (`CMD-74`). A closure `FnMut(OutputStream, &[u8])` is a sink that never fails.
pub trait OutputSink {
    /// Writes one chunk of `stream`.
    ///
    /// # Errors
    /// An I/O error ends the command: [`exec_on`] returns it and the session closes, so
    /// the host kills the command (`CMD-37`).
    fn write(
        &mut self,
        stream: OutputStream,
        bytes: &[u8],
    ) -> impl Future<Output = std::io::Result<()>>;

    /// Called once after the last chunk, before [`exec_to`] returns: a sink that queues
    /// writes finishes them here, so that nothing is left unwritten when the command's
    /// result is reported. The default does nothing.
    ///
    /// # Errors
    /// The first write that failed, as for [`OutputSink::write`].
    fn finish(&mut self) -> impl Future<Output = std::io::Result<()>> {
        async { Ok(()) }
    }
}

impl<F: FnMut(OutputStream, &[u8])> OutputSink for F {
    async fn write(&mut self, stream: OutputStream, bytes: &[u8]) -> std::io::Result<()> {
        self(stream, bytes);
        Ok(())
    }
}

/// Runs `request` on an initialized connection with `command/exec` (`CMD-34`..`CMD-42`),
/// calling `on_output` with each chunk of stdout or stderr as it arrives, in order
/// (`CMD-35`); returns when the host answers, after the last chunk (`CMD-36`).
///
/// # Errors
/// [`ControllerError::Usage`] for an empty argument vector, [`ControllerError::Rpc`]
/// (for example -32012 when the host cannot enforce the sandbox, `CMD-46`), or the
/// session's end.
pub async fn exec_on(
    conn: &mut Connection,
    request: &ExecRequest,
    on_output: impl FnMut(OutputStream, &[u8]),
) -> Result<ExecOutcome, ControllerError> {
    exec_to(conn, request, on_output).await
}

/// [`exec_on`], writing the output to an [`OutputSink`] that may wait: the next chunk is
/// taken from the session only once the sink has written the last one.
///
/// # Errors
/// As [`exec_on`], and [`ControllerError::Io`] when `sink` fails.
pub async fn exec_to(
    conn: &mut Connection,
    request: &ExecRequest,
    mut sink: impl OutputSink,
) -> Result<ExecOutcome, ControllerError> {
    if request.argv.is_empty() {
        return Err(ControllerError::Usage("no command to run".to_owned()));
    }
    if !conn
        .init
        .capabilities
        .iter()
        .any(|c| c == capability::COMMAND_EXEC)
    {
        return Err(ControllerError::Host(format!(
            "host {} does not offer command.exec",
            conn.session.host_info().name
        )));
    }
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|e| ControllerError::io("reading the random number generator", e.into()))?;
    let process_id = format!("exec-{}", hex::encode(suffix));
    // CMD-71: no cwd means the host's default working directory, never `/`.
    let params = CommandExecParams {
        command: request.argv.clone(),
        cwd: request.cwd.clone(),
        sandbox: request.sandbox,
        timeout_ms: request
            .timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)),
        // CMD-41, CMD-43: no cap needs a session with records, where the window keeps
        // the output at the reader's pace (CHAN-34).
        output_cap: match request.output_cap {
            Some(cap) => OutputCap::Bytes(cap),
            None if conn.session.has_records() => OutputCap::Unlimited,
            None => OutputCap::Default,
        },
        process_id: process_id.clone(),
    };
    let reply = conn
        .session
        .start_request(CommandExecParams::METHOD, Some(params.to_params()));
    tokio::pin!(reply);
    // CMD-40: a delta that is not valid base64 of at most 16 KiB is ignored.
    let chunk = |event: SessionEvent| -> Option<(OutputStream, Vec<u8>)> {
        // CMD-76: in a session with records the output comes in OUTPUT records.
        if let SessionEvent::Output(o) = &event {
            if o.process_id != process_id {
                return None;
            }
            let stream = if o.stderr {
                OutputStream::Stderr
            } else {
                OutputStream::Stdout
            };
            return match event {
                SessionEvent::Output(o) => Some((stream, o.data)),
                _ => None,
            };
        }
        if let SessionEvent::Notification(n) = event
            && let Ok(ServerNotification::CommandExecOutputDelta(delta)) =
                ServerNotification::from_notification(&n)
            && delta.process_id == process_id
        {
            match decode_delta(&delta.delta_base64) {
                Ok(bytes) if bytes.len() <= tether_proto::limits::MAX_OUTPUT_CHUNK => {
                    return Some((delta.stream, bytes));
                }
                _ => tracing::warn!("ignoring a malformed outputDelta (CMD-40)"),
            }
        }
        None
    };
    let write_error = |e: std::io::Error| ControllerError::io("writing the command's output", e);
    let answer = loop {
        tokio::select! {
            biased;
            event = conn.session.next_event() => match event {
                Some(event) => {
                    if let Some((stream, bytes)) = chunk(event) {
                        sink.write(stream, &bytes).await.map_err(write_error)?;
                    }
                }
                // The session is over: its task has answered every pending request.
                None => break (&mut reply).await,
            },
            answer = &mut reply => break answer,
        }
    };
    // Deltas queued before the answer are delivered before it (CMD-36).
    while let Some(event) = conn.session.try_next_event() {
        if let Some((stream, bytes)) = chunk(event) {
            sink.write(stream, &bytes).await.map_err(write_error)?;
        }
    }
    sink.finish().await.map_err(write_error)?;
    let value = answer.map_err(|e| e.into_error(CommandExecParams::METHOD))?;
    let result = <CommandExecParams as tether_proto::cmd::RequestParams>::decode_result(&value)
        .map_err(|e| ControllerError::BadResult {
            method: CommandExecParams::METHOD.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(ExecOutcome { result })
}

/// Connects to `host`, runs `request` ([`exec_on`]) and closes the session.
///
/// # Errors
/// As [`connect`] and [`exec_on`].
pub async fn exec(
    state: &ControllerState,
    host: &PairedHost,
    request: &ExecRequest,
    options: &LinkOptions,
    on_output: impl FnMut(OutputStream, &[u8]),
) -> Result<ExecOutcome, ControllerError> {
    exec_into(state, host, request, options, on_output).await
}

/// [`exec`], writing the output to an [`OutputSink`] ([`exec_to`]).
///
/// # Errors
/// As [`connect`] and [`exec_to`].
pub async fn exec_into(
    state: &ControllerState,
    host: &PairedHost,
    request: &ExecRequest,
    options: &LinkOptions,
    sink: impl OutputSink,
) -> Result<ExecOutcome, ControllerError> {
    let mut conn = connect(state, host, options).await?;
    let outcome = exec_to(&mut conn, request, sink).await;
    conn.close().await;
    outcome
}

/// One paired host, and whether it answered.
#[derive(Debug)]
pub struct HostStatus {
    /// The stored record.
    pub host: PairedHost,
    /// The host's `initialize` answer and the time from connecting until it arrived, or
    /// why the host could not be reached.
    pub result: Result<Reachable, ControllerError>,
}

/// A host that answered `initialize`.
#[derive(Clone, Debug)]
pub struct Reachable {
    /// Message 2's host info.
    pub host_info: HostInfo,
    /// The `initialize` result.
    pub init: InitializeResult,
    /// Link, handshake and `initialize`, end to end.
    pub latency: Duration,
    /// The host's defaults and limits (`tether/host/info`, `CMD-77`); `None` when the
    /// host does not answer it (an earlier revision answers -32601).
    pub defaults: Option<HostInfoResult>,
}

/// How long [`status`] waits for a host's `tether/host/info` answer (`CMD-77`).
const HOST_INFO_WAIT: Duration = Duration::from_secs(5);

/// For each paired host: connect, handshake, `initialize`; report how long it took or the
/// refusal.
///
/// # Errors
/// Only errors reading the state directory; each host's failure is in its [`HostStatus`].
pub async fn status(
    state: &ControllerState,
    options: &LinkOptions,
) -> Result<Vec<HostStatus>, ControllerError> {
    let mut out = Vec::new();
    for host in state.hosts()? {
        let start = Instant::now();
        let result = match connect(state, &host, options).await {
            Ok(conn) => {
                let latency = start.elapsed();
                // A host that never answers must not hold the status up: it is then
                // reported without its defaults.
                let defaults =
                    tokio::time::timeout(HOST_INFO_WAIT, conn.session.call(&HostInfoParams {}))
                        .await
                        .ok()
                        .and_then(Result::ok);
                let reachable = Reachable {
                    host_info: conn.session.host_info().clone(),
                    init: conn.init.clone(),
                    latency,
                    defaults,
                };
                conn.close().await;
                Ok(reachable)
            }
            Err(e) => Err(e),
        };
        out.push(HostStatus { host, result });
    }
    Ok(out)
}

/// The fingerprint of a host key, as `tether` prints it.
pub fn host_fingerprint(key: &[u8; 32]) -> String {
    fingerprint(key)
}
