//! One session to a host over a [`Link`]: the Noise handshake, then JSON-RPC with id
//! correlation (`spec/04`, `spec/05`).
//!
//! [`Session::open`] drives `tether_proto::session::Controller` through the handshake:
//! a random session id (`LINK-16`), `OPEN` with message 1, then message 2 or a `CLOSE`
//! whose code becomes a typed error, or the `CHAN-13` timeout. After that a task owns the
//! state machine; the [`Session`] handle sends requests ([`Session::request`], answered by
//! id), notifications and answers to server requests, and yields what the host sends on
//! its own ([`Session::next_event`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tether_proto::channel::HostInfo;
use tether_proto::channel::{Framing, OutputChunk};
use tether_proto::cmd::{
    ErrorObject, ErrorResponse, Id, Message, Notification, Rejection, Request, RequestParams,
    Response, ServerRequest,
};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::session::{Controller, ControllerConfig, ControllerEvent};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::{CloseInfo, ControllerError};
use crate::link::{Link, LinkEnd, SessionInput};

/// A fresh session id: 64 bits from the operating system's CSPRNG (`LINK-16`).
///
/// # Errors
/// [`ControllerError::Io`] if the random number generator fails.
pub fn random_session_id() -> Result<SessionId, ControllerError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id)
        .map_err(|e| ControllerError::io("reading the random number generator", e.into()))?;
    Ok(SessionId(id))
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// `CLOSE` from the host or relay, or sent by this controller.
    Closed(CloseInfo),
    /// The link ended under the session.
    Link(LinkEnd),
}

impl From<SessionEnd> for ControllerError {
    fn from(end: SessionEnd) -> Self {
        match end {
            SessionEnd::Closed(info) => ControllerError::Closed(info),
            SessionEnd::Link(end) => end.into(),
        }
    }
}

/// Why a request got no result.
#[derive(Clone, Debug, PartialEq)]
pub enum RpcError {
    /// The host answered with an error response.
    Remote(ErrorObject),
    /// The session ended before the answer.
    Ended(SessionEnd),
}

impl RpcError {
    /// As a [`ControllerError`] naming the request's method.
    pub fn into_error(self, method: &str) -> ControllerError {
        match self {
            Self::Remote(error) => ControllerError::Rpc {
                method: method.to_owned(),
                error,
            },
            Self::Ended(end) => end.into(),
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Remote(e) => write!(f, "error {}: {}", e.code, e.message),
            Self::Ended(end) => write!(f, "{}", ControllerError::from(end.clone())),
        }
    }
}

impl std::error::Error for RpcError {}

/// Something the host sent that is not an answer to one of this session's requests.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A notification.
    Notification(Notification),
    /// A chunk of a `command/exec` process's output, from an `OUTPUT` record of a session
    /// with records (`CMD-76`); a version 1 session sends `command/exec/outputDelta`
    /// notifications instead.
    Output(OutputChunk),
    /// A server request (an approval), already checked to be of a method this controller
    /// implements with well-formed params (others are answered -32601 or -32602 by the
    /// session, `CMD-12`, `CMD-13`): answer with [`Session::respond`] or
    /// [`Session::respond_error`].
    Request(Request),
    /// A response whose id matches no outstanding request.
    UnmatchedResponse(Message),
    /// A message that broke the envelope rules; its error response was sent (`CMD-11`).
    Rejected(Rejection),
    /// The session ended; no event follows.
    Ended(SessionEnd),
}

/// How a [`Session`] treats what the host sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Hand every server request to the application as [`SessionEvent::Request`]
    /// unchecked, instead of answering those of a method this controller does not
    /// implement (-32601) or with malformed params (-32602) itself (`CMD-12`, `CMD-13`):
    /// for a bridge whose own client checks and answers them (`tether connect`).
    pub pass_through_requests: bool,
}

impl SessionOptions {
    /// Options that hand every server request to the application unchecked.
    pub fn pass_through() -> Self {
        Self {
            pass_through_requests: true,
        }
    }
}

/// The answer to one request, to be awaited. Dropping it discards the answer.
#[derive(Debug)]
pub struct PendingReply {
    rx: oneshot::Receiver<Result<Value, RpcError>>,
}

impl Future for PendingReply {
    type Output = Result<Value, RpcError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(RpcError::Ended(SessionEnd::Link(LinkEnd::lost(
                    "session task ended".to_owned(),
                ))))
            })
        })
    }
}

enum Command {
    Request {
        request: Request,
        reply: oneshot::Sender<Result<Value, RpcError>>,
    },
    Send(Message),
    Plaintext {
        bytes: Vec<u8>,
        sent: Option<oneshot::Sender<Result<(), ControllerError>>>,
    },
    Close(CloseCode),
}

/// Record bytes the application has taken off the event queue, for the driver to hand
/// back as credit (`CHAN-36`).
#[derive(Debug, Default)]
struct Consumed {
    bytes: AtomicU64,
    notify: Notify,
}

impl Consumed {
    fn add(&self, size: u64) {
        if size > 0 {
            self.bytes.fetch_add(size, Ordering::Relaxed);
            self.notify.notify_one();
        }
    }
}

/// An established session. Dropping it closes the session with `NORMAL`.
#[derive(Debug)]
pub struct Session {
    commands: mpsc::UnboundedSender<Command>,
    /// Events with the record bytes they hold; taking one hands its credit back.
    events: mpsc::UnboundedReceiver<(SessionEvent, u64)>,
    consumed: Arc<Consumed>,
    records: bool,
    done: Option<oneshot::Receiver<()>>,
    host_info: HostInfo,
    session: SessionId,
    message1: Vec<u8>,
    confirmation_code: String,
    next_id: AtomicI64,
    link: Link,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request { request, .. } => write!(f, "Request({})", request.method),
            Self::Send(m) => write!(f, "Send({})", m.kind()),
            Self::Plaintext { bytes, .. } => write!(f, "Plaintext({} bytes)", bytes.len()),
            Self::Close(c) => write!(f, "Close({c})"),
        }
    }
}

impl Session {
    /// Opens a session on `link`: sends `OPEN` with message 1 and waits for message 2.
    /// `on_code` is called with the confirmation code (`CHAN-23`) right after `OPEN` is
    /// queued, before waiting, so that a user can compare it with the host's.
    ///
    /// The caller sets `config.session` (see [`random_session_id`]), `config.timestamp`
    /// (see [`crate::ControllerState::next_timestamp`], `CHAN-5`) and
    /// `config.handshake_timeout` (`CHAN-13`).
    ///
    /// # Errors
    /// [`ControllerError::Closed`] with the host's or relay's code (`NOT_AUTHORIZED`,
    /// `TOKEN_REJECTED`, `HOST_UNREACHABLE`, ...), [`ControllerError::HandshakeTimeout`]
    /// (`CHAN-13`), the link's end, or [`ControllerError::Protocol`].
    pub async fn open(
        link: &Link,
        config: ControllerConfig,
        on_code: impl FnOnce(&str),
    ) -> Result<Self, ControllerError> {
        Self::open_with(link, config, SessionOptions::default(), on_code).await
    }

    /// [`Session::open`] with [`SessionOptions`].
    ///
    /// # Errors
    /// As [`Session::open`].
    pub async fn open_with(
        link: &Link,
        config: ControllerConfig,
        options: SessionOptions,
        on_code: impl FnOnce(&str),
    ) -> Result<Self, ControllerError> {
        let timeout = config.handshake_timeout;
        let session = config.session;
        let mut controller = Controller::connect(config, std::time::Instant::now())?;
        // CHAN-36: the host sends no faster than the application takes events.
        controller.set_manual_consume(true);
        // CHAN-35: up to 252 KiB of credit while the link's 2 MiB have room.
        controller.set_shared_ledger(link.credit_ledger());
        controller.set_credit_cap(tether_proto::limits::MAX_SESSION_CREDIT);
        let mut inputs = link.register(session)?;
        let mut message1 = Vec::new();
        let result = async {
            flush(&mut controller, link, Some(&mut message1))?;
            on_code(controller.confirmation_code());
            loop {
                let deadline = controller
                    .poll_timeout()
                    .map(tokio::time::Instant::from_std);
                tokio::select! {
                    input = inputs.recv() => match input {
                        Some(SessionInput::Data(p)) => controller.handle_data(&p),
                        Some(SessionInput::Close(code)) => controller.handle_close(code),
                        Some(SessionInput::LinkEnded(end)) => return Err(end.into()),
                        None => return Err(LinkEnd::lost("link task ended").into()),
                    },
                    () = sleep_until_opt(deadline) => {
                        controller.handle_timeout(std::time::Instant::now());
                    }
                }
                flush(&mut controller, link, None)?;
                while let Some(event) = controller.poll_event() {
                    match event {
                        ControllerEvent::Established { host_info } => return Ok(host_info),
                        ControllerEvent::Closed { code, by_peer } => {
                            if !by_peer && code == CloseCode::NORMAL {
                                // CHAN-13: we gave up waiting for message 2.
                                return Err(ControllerError::HandshakeTimeout {
                                    secs: timeout.as_secs(),
                                });
                            }
                            return Err(ControllerError::Closed(CloseInfo {
                                code,
                                by_peer,
                                link_level: false,
                            }));
                        }
                        _ => {}
                    }
                }
            }
        }
        .await;
        let host_info = match result {
            Ok(info) => info,
            Err(e) => {
                link.unregister(session);
                return Err(e);
            }
        };
        let confirmation_code = controller.confirmation_code().to_owned();
        let records = controller.framing() == Some(Framing::Records);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let (done_tx, done) = oneshot::channel();
        let consumed = Arc::new(Consumed::default());
        let driver = Driver {
            controller,
            link: link.clone(),
            inputs,
            commands: command_rx,
            events: event_tx,
            pending: HashMap::new(),
            consumed: Arc::clone(&consumed),
            options,
        };
        tokio::spawn(async move {
            driver.run().await;
            let _ = done_tx.send(());
        });
        Ok(Self {
            commands,
            events,
            consumed,
            records,
            done: Some(done),
            host_info,
            session,
            message1,
            confirmation_code,
            next_id: AtomicI64::new(1),
            link: link.clone(),
        })
    }

    /// The host's description from message 2 (`CHAN-6`).
    pub fn host_info(&self) -> &HostInfo {
        &self.host_info
    }

    /// Whether the session carries records: flow control and messages of up to 16 MiB
    /// (`CHAN-31`).
    pub fn has_records(&self) -> bool {
        self.records
    }

    /// The longest command-protocol message the session carries, in bytes: 16 MiB with
    /// records, one transport message's plaintext without (`CHAN-31`, `CMD-2`).
    pub fn max_message_len(&self) -> usize {
        if self.records {
            tether_proto::limits::MAX_MESSAGE_LEN
        } else {
            tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN
        }
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.session
    }

    /// The Noise message 1 this session sent in its `OPEN` (for replay tests).
    pub fn message1(&self) -> &[u8] {
        &self.message1
    }

    /// The confirmation code of the handshake (`CHAN-23`).
    pub fn confirmation_code(&self) -> &str {
        &self.confirmation_code
    }

    /// The link the session runs on.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Sends a request and returns its answer, to be awaited. Ids are integers counting
    /// from 1.
    pub fn start_request(&self, method: &str, params: Option<Value>) -> PendingReply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let request = Request::new(id, method, params);
        if let Err(mpsc::error::SendError(Command::Request { reply, .. })) =
            self.commands.send(Command::Request { request, reply })
        {
            let _ = reply.send(Err(RpcError::Ended(SessionEnd::Link(LinkEnd::lost(
                "session ended".to_owned(),
            )))));
        }
        PendingReply { rx }
    }

    /// Sends a request and waits for its result.
    ///
    /// # Errors
    /// [`RpcError::Remote`] for an error response, [`RpcError::Ended`] if the session ends
    /// first.
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        self.start_request(method, params).await
    }

    /// Sends a typed request and decodes its typed result.
    ///
    /// # Errors
    /// [`ControllerError::Rpc`], [`ControllerError::BadResult`] (`CMD-13`), or the
    /// session's end.
    pub async fn call<P: RequestParams>(&self, params: &P) -> Result<P::Result, ControllerError> {
        let value = self
            .request(P::METHOD, Some(params.to_params()))
            .await
            .map_err(|e| e.into_error(P::METHOD))?;
        P::decode_result(&value).map_err(|e| ControllerError::BadResult {
            method: P::METHOD.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Sends a notification.
    ///
    /// # Errors
    /// [`ControllerError::LinkLost`] if the session has ended.
    pub fn notify(&self, method: &str, params: Option<Value>) -> Result<(), ControllerError> {
        self.send(Message::Notification(Notification::new(method, params)))
    }

    /// Answers a server request with a result.
    ///
    /// # Errors
    /// [`ControllerError::LinkLost`] if the session has ended.
    pub fn respond(&self, id: Id, result: Value) -> Result<(), ControllerError> {
        self.send(Message::Response(Response { id, result }))
    }

    /// Answers a server request with an error.
    ///
    /// # Errors
    /// [`ControllerError::LinkLost`] if the session has ended.
    pub fn respond_error(&self, id: Id, error: ErrorObject) -> Result<(), ControllerError> {
        self.send(Message::Error(ErrorResponse {
            id: Some(id),
            error,
        }))
    }

    /// Sends any message, unchecked.
    ///
    /// # Errors
    /// [`ControllerError::LinkLost`] if the session has ended.
    pub fn send(&self, message: Message) -> Result<(), ControllerError> {
        self.command(Command::Send(message))
    }

    /// Sends bytes as one command-protocol message without checking that they are
    /// JSON-RPC: for conformance tests, and for a bridge that forwards its client's
    /// messages unchanged (the host checks them, `CMD-11`). Bytes longer than
    /// [`Session::max_message_len`] are dropped.
    ///
    /// # Errors
    /// [`ControllerError::LinkLost`] if the session has ended.
    pub fn send_plaintext(&self, plaintext: Vec<u8>) -> Result<(), ControllerError> {
        self.command(Command::Plaintext {
            bytes: plaintext,
            sent: None,
        })
    }

    /// Sends bytes as one transport message, unchecked, and reports whether the channel
    /// took them: a test escape hatch for malformed JSON-RPC over a real session.
    ///
    /// # Errors
    /// [`ControllerError::Protocol`] when the channel refuses the bytes (longer than a
    /// transport message, `CHAN-16`); [`ControllerError::LinkLost`] if the session ended.
    #[doc(hidden)]
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<(), ControllerError> {
        let (sent, rx) = oneshot::channel();
        self.command(Command::Plaintext {
            bytes,
            sent: Some(sent),
        })?;
        rx.await.unwrap_or_else(|_| {
            Err(ControllerError::LinkLost {
                detail: "session ended".to_owned(),
            })
        })
    }

    fn command(&self, command: Command) -> Result<(), ControllerError> {
        self.commands
            .send(command)
            .map_err(|_| ControllerError::LinkLost {
                detail: "session ended".to_owned(),
            })
    }

    /// The next thing the host sent on its own; `None` after [`SessionEvent::Ended`].
    /// Taking an event hands its bytes back to the host as credit (`CHAN-36`): a caller
    /// that stops taking events stops the host.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        let (event, size) = self.events.recv().await?;
        self.consumed.add(size);
        Some(event)
    }

    /// An event already received, without waiting.
    pub fn try_next_event(&mut self) -> Option<SessionEvent> {
        let (event, size) = self.events.try_recv().ok()?;
        self.consumed.add(size);
        Some(event)
    }

    /// Closes the session with `code` and waits (at most 5 s) until the `CLOSE` has been
    /// handed to the link.
    pub async fn close(mut self, code: CloseCode) {
        let _ = self.commands.send(Command::Close(code));
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Hands the state machine's queued frames to the link; records the `OPEN`'s message 1.
fn flush(
    controller: &mut Controller,
    link: &Link,
    mut message1: Option<&mut Vec<u8>>,
) -> Result<(), ControllerError> {
    while let Some(frame) = controller.poll_transmit() {
        if let (RelayFrame::Open { handshake, .. }, Some(m1)) = (&frame, message1.as_deref_mut()) {
            m1.clone_from(handshake);
        }
        link.send_frame(frame)?;
    }
    Ok(())
}

struct Driver {
    controller: Controller,
    link: Link,
    inputs: mpsc::UnboundedReceiver<SessionInput>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<(SessionEvent, u64)>,
    pending: HashMap<Id, oneshot::Sender<Result<Value, RpcError>>>,
    consumed: Arc<Consumed>,
    options: SessionOptions,
}

impl Driver {
    async fn run(mut self) {
        let end = loop {
            let mut link_end = None;
            tokio::select! {
                input = self.inputs.recv() => match input {
                    Some(SessionInput::Data(p)) => self.controller.handle_data(&p),
                    Some(SessionInput::Close(code)) => self.controller.handle_close(code),
                    Some(SessionInput::LinkEnded(end)) => link_end = Some(end),
                    None => link_end = Some(LinkEnd::lost("link task ended")),
                },
                command = self.commands.recv() => match command {
                    Some(Command::Request { request, reply }) => {
                        let id = request.id.clone();
                        match self.controller.send(&Message::Request(request)) {
                            Ok(()) => {
                                self.pending.insert(id, reply);
                            }
                            Err(e) => {
                                let _ = reply.send(Err(RpcError::Ended(SessionEnd::Link(
                                    LinkEnd::lost(format!("{e} ({})", e.requirement())),
                                ))));
                            }
                        }
                    }
                    Some(Command::Send(m)) => {
                        let _ = self.controller.send(&m);
                    }
                    Some(Command::Plaintext { bytes, sent }) => {
                        let r = self.controller.send_plaintext(&bytes);
                        if let Some(sent) = sent {
                            let _ = sent.send(r.map_err(ControllerError::from));
                        }
                    }
                    Some(Command::Close(code)) => self.controller.close(code),
                    // The handle was dropped: leave normally.
                    None => self.controller.close(CloseCode::NORMAL),
                },
                () = self.consumed.notify.notified() => {
                    let bytes = self.consumed.bytes.swap(0, Ordering::Relaxed);
                    self.controller.consume(bytes);
                }
            }
            while let Some(frame) = self.controller.poll_transmit() {
                let _ = self.link.send_frame(frame);
            }
            if let Some(end) = link_end {
                break SessionEnd::Link(end);
            }
            if let Some(end) = self.drain_events() {
                break end;
            }
            // Answers queued while draining (CMD-12, CMD-13).
            while let Some(frame) = self.controller.poll_transmit() {
                let _ = self.link.send_frame(frame);
            }
        };
        self.link.unregister(self.controller.session());
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(RpcError::Ended(end.clone())));
        }
        let _ = self.events.send((SessionEvent::Ended(end), 0));
    }

    /// Sends an event to the application with the record bytes it holds.
    fn emit(&mut self, event: SessionEvent, size: u64) {
        if self.events.send((event, size)).is_err() {
            // Nobody takes events any more: do not hold their credit.
            self.controller.consume(size);
        }
    }

    fn drain_events(&mut self) -> Option<SessionEnd> {
        while let Some(event) = self.controller.poll_event() {
            let size = match &event {
                ControllerEvent::Message(_) | ControllerEvent::Output(_) => {
                    self.controller.take_delivered_size()
                }
                _ => 0,
            };
            match event {
                ControllerEvent::Message(Message::Response(r)) => {
                    match self.pending.remove(&r.id) {
                        Some(reply) => {
                            self.controller.consume(size);
                            let _ = reply.send(Ok(r.result));
                        }
                        None => {
                            self.emit(SessionEvent::UnmatchedResponse(Message::Response(r)), size);
                        }
                    }
                }
                ControllerEvent::Message(Message::Error(e)) => {
                    match e.id.as_ref().and_then(|id| self.pending.remove(id)) {
                        Some(reply) => {
                            self.controller.consume(size);
                            let _ = reply.send(Err(RpcError::Remote(e.error)));
                        }
                        None => {
                            self.emit(SessionEvent::UnmatchedResponse(Message::Error(e)), size);
                        }
                    }
                }
                ControllerEvent::Message(Message::Notification(n)) => {
                    self.emit(SessionEvent::Notification(n), size);
                }
                ControllerEvent::Message(Message::Request(r))
                    if self.options.pass_through_requests =>
                {
                    self.emit(SessionEvent::Request(r), size);
                }
                ControllerEvent::Message(Message::Request(r)) => {
                    // CMD-12, CMD-13: a request of a method this controller does not
                    // implement, or with bad params, is answered here; only well-formed
                    // server requests (approvals) reach the application.
                    match ServerRequest::from_request(&r) {
                        Ok(_) => self.emit(SessionEvent::Request(r), size),
                        Err(e) => {
                            self.controller.consume(size);
                            let answer = Message::Error(ErrorResponse::new(Some(r.id), &e));
                            let _ = self.controller.send(&answer);
                        }
                    }
                }
                ControllerEvent::Output(chunk) => self.emit(SessionEvent::Output(chunk), size),
                ControllerEvent::Rejected(r) => self.emit(SessionEvent::Rejected(r), 0),
                ControllerEvent::Closed { code, by_peer } => {
                    while let Some(frame) = self.controller.poll_transmit() {
                        let _ = self.link.send_frame(frame);
                    }
                    return Some(SessionEnd::Closed(CloseInfo {
                        code,
                        by_peer,
                        link_level: false,
                    }));
                }
                _ => {}
            }
        }
        None
    }
}
