//! The client side of the relay link: one state machine for hosts and controllers
//! (`spec/03-relay-link.md`), without I/O.
//!
//! ```text
//!   LinkClient::host ──► HELLO(host, msg 1) ── AwaitChallenge ── HOST_CHALLENGE ──►
//!                        HOST_PROOF(msg 3) ─┐
//!   LinkClient::controller ──► HELLO ───────┴─► AwaitReady ── READY ──► Ready
//!                                                                        │
//!       GOAWAY received, GOAWAY sent (a rule broken, or close), transport │
//!       closed, no READY in time, nothing received for 60 s (LINK-36)     ▼
//!                                                                      Ended
//! ```
//!
//! A driver owns the WebSocket and calls, in any order:
//!
//! - [`LinkClient::handle_message`] with every WebSocket message (binary, text, one that
//!   was too large for the socket's limit, or the connection's end);
//! - [`LinkClient::handle_timeout`] when [`LinkClient::poll_timeout`]'s instant passes;
//! - [`LinkClient::open`], [`LinkClient::send`], [`LinkClient::close_session`] and
//!   [`LinkClient::close`] to send;
//!
//! and after each call drains [`LinkClient::poll_transmit`] (binary messages to write, in
//! order) and [`LinkClient::poll_event`]. Once [`LinkEvent::Ended`] has been returned the
//! client sends nothing more (`LINK-27`): the driver writes what `poll_transmit` still
//! holds (a `GOAWAY`, at most) and closes the connection.
//!
//! The client owns the rules of the client's end: frames as binary messages (`LINK-1`),
//! malformed and oversized frames (`LINK-4`, `LINK-5`), the `HELLO` → `HOST_CHALLENGE` →
//! `HOST_PROOF` → `READY` exchange (`LINK-8`, `LINK-9`, `LINK-12`), frames its state does
//! not allow (`LINK-35`), keepalive (`LINK-25`), `GOAWAY` either way (`LINK-27`), a link
//! gone quiet (`LINK-36`) and pipelining after `HELLO` (`LINK-38`). Sessions are the
//! caller's: the client passes `INCOMING`, `DATA` and `CLOSE` up without judging their ids.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::codes::CloseCode;
use super::error::LinkError;
use super::frame::{FrameError, RelayFrame, Role, SessionId};
use super::registration::HostRegistration;
use crate::limits::{AUTH_DEADLINE, KEEPALIVE_INTERVAL, LINK_IDLE_TIMEOUT, PROTOCOL_VERSION};

/// What a client needs to say `HELLO`, and its timers.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The workspace id (`LINK-32`).
    pub workspace: String,
    /// The workspace credential, 16 to 255 bytes (`LINK-10`).
    pub credential: Vec<u8>,
    /// Send `PING` after this long without sending (`LINK-25`; 20 s).
    pub keepalive: Duration,
    /// Treat the link as lost after this long without receiving (`LINK-36`; 60 s).
    pub idle_timeout: Duration,
    /// Give up when `READY` has not arrived this long after the client was created — create
    /// it once the connection is open (the relay's own deadline is 10 s from then,
    /// `LINK-7`).
    pub ready_timeout: Duration,
}

impl ClientConfig {
    /// Checks the workspace id and the credential against the `HELLO` field rules
    /// (`LINK-32`, `LINK-10`), without creating a client: a driver checks before it
    /// connects, and creates the client once the connection is open (the `READY` deadline
    /// runs from the client's creation).
    ///
    /// # Errors
    /// [`FrameError`] naming the field.
    pub fn check(&self) -> Result<(), FrameError> {
        self.hello(Role::Controller, Vec::new()).validate()
    }

    /// The `HELLO` of this configuration for `role`, with `registration` (message 1 for a
    /// host, empty for a controller).
    fn hello(&self, role: Role, registration: Vec<u8>) -> RelayFrame {
        RelayFrame::Hello {
            version: PROTOCOL_VERSION,
            role,
            workspace: self.workspace.clone(),
            credential: self.credential.clone(),
            registration,
        }
    }

    /// A configuration with the spec's timers.
    pub fn new(workspace: impl Into<String>, credential: impl Into<Vec<u8>>) -> Self {
        Self {
            workspace: workspace.into(),
            credential: credential.into(),
            keepalive: KEEPALIVE_INTERVAL,
            idle_timeout: LINK_IDLE_TIMEOUT,
            ready_timeout: AUTH_DEADLINE + Duration::from_secs(5),
        }
    }
}

/// One WebSocket message, or the connection's end, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A binary message: one relay frame (`LINK-1`).
    Binary(&'a [u8]),
    /// A text message, which no peer may send (`LINK-1`).
    Text,
    /// A message the socket refused because it was larger than the frame limit
    /// (`LINK-5`). Drivers set the socket's limit to [`crate::limits::MAX_FRAME_LEN`] and
    /// report the refusal this way.
    TooLarge,
    /// The connection closed or failed; the text says how.
    Closed(&'a str),
}

/// What the client tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// The relay sent `READY`: the link is authenticated (and a host registered).
    Ready,
    /// `INCOMING` (a host's link only): a controller opens a session.
    Incoming {
        /// The session.
        session: SessionId,
        /// Handshake message 1.
        handshake: Vec<u8>,
    },
    /// `DATA` for a session.
    Data {
        /// The session.
        session: SessionId,
        /// The payload.
        payload: Vec<u8>,
    },
    /// `CLOSE` for a session.
    Close {
        /// The session.
        session: SessionId,
        /// The close code.
        code: CloseCode,
    },
    /// The link ended; every session on it is gone (`LINK-21`). The last event.
    Ended(LinkEnd),
}

/// How a link ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEnd {
    /// The relay sent `GOAWAY`.
    GoAway {
        /// Its code.
        code: CloseCode,
        /// Its reason text.
        reason: String,
    },
    /// The relay broke a rule; this client sent `GOAWAY` with `code` and ended the link.
    Violation {
        /// The code sent.
        code: CloseCode,
        /// The requirement the relay broke.
        requirement: &'static str,
        /// What it did.
        detail: String,
    },
    /// This client ended the link with `GOAWAY` (`LINK-27`).
    Closed {
        /// The code sent.
        code: CloseCode,
    },
    /// The connection closed or failed, registration failed, `READY` did not come in
    /// time, or nothing was received for the idle timeout (`LINK-36`).
    Lost {
        /// Why.
        reason: String,
        /// The requirement behind it, where one applies.
        requirement: Option<&'static str>,
    },
}

impl LinkEnd {
    /// [`LinkEnd::Lost`] with no requirement behind it.
    pub fn lost(reason: impl Into<String>) -> Self {
        Self::Lost {
            reason: reason.into(),
            requirement: None,
        }
    }

    /// Whether a client should reconnect after this end by itself (`LINK-28`): not after
    /// `GOAWAY` `AUTH_FAILED`, `REMOTE_ACCESS_DISABLED`, `REPLACED` or
    /// `UNSUPPORTED_VERSION`, nor after closing the link itself.
    pub fn should_reconnect(&self) -> bool {
        match self {
            Self::GoAway { code, .. } => ![
                CloseCode::AUTH_FAILED,
                CloseCode::REMOTE_ACCESS_DISABLED,
                CloseCode::REPLACED,
                CloseCode::UNSUPPORTED_VERSION,
            ]
            .contains(code),
            Self::Closed { .. } => false,
            Self::Violation { .. } | Self::Lost { .. } => true,
        }
    }
}

impl fmt::Display for LinkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GoAway { code, reason } => {
                write!(f, "relay sent GOAWAY {code}")?;
                match (code.description(), reason.is_empty()) {
                    (Some(d), true) => write!(f, ": {d}"),
                    (Some(d), false) => write!(f, ": {d}: {reason}"),
                    (None, false) => write!(f, ": {reason}"),
                    (None, true) => Ok(()),
                }
            }
            Self::Violation {
                code,
                requirement,
                detail,
            } => write!(f, "{detail}; sent GOAWAY {code} ({requirement})"),
            Self::Closed { code } => write!(f, "closed by this client with GOAWAY {code}"),
            Self::Lost {
                reason,
                requirement: Some(r),
            } => write!(f, "{reason} ({r})"),
            Self::Lost {
                reason,
                requirement: None,
            } => f.write_str(reason),
        }
    }
}

/// Why the client refused to send.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The frame breaks a field rule and cannot be encoded.
    Frame(FrameError),
    /// Host registration could not start (`LINK-12`).
    Registration(LinkError),
    /// The link is not `READY`, and the frame may not be pipelined after `HELLO`: only a
    /// controller's frames may (`LINK-38`); the relay processes them in `READY`, so
    /// `LINK-6`'s 512-byte bound does not apply to them.
    NotReady,
    /// A host's link does not send `OPEN` (`LINK-8`).
    HostCannotOpen,
    /// The link has ended.
    Ended,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => write!(f, "frame cannot be encoded: {e} ({})", e.requirement()),
            Self::Registration(e) => write!(f, "registration: {e} ({})", e.requirement()),
            Self::NotReady => f.write_str(
                "the link is not READY yet (only a controller's frames may follow HELLO before READY, LINK-38)",
            ),
            Self::HostCannotOpen => f.write_str("a host's link does not send OPEN (LINK-8)"),
            Self::Ended => f.write_str("the link has ended"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

enum State {
    /// A host waits for `HOST_CHALLENGE` (the registration's handshake state is large).
    AwaitChallenge(Box<HostRegistration>),
    /// Waiting for `READY`.
    AwaitReady,
    Ready,
    Ended,
}

/// The client end of one relay link. See the module documentation for the call order.
pub struct LinkClient {
    role: Role,
    state: State,
    config: ClientConfig,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    ready_deadline: Instant,
    last_sent: Instant,
    last_received: Instant,
    next_ping: u64,
}

impl fmt::Debug for LinkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::AwaitChallenge(_) => "AwaitChallenge",
            State::AwaitReady => "AwaitReady",
            State::Ready => "Ready",
            State::Ended => "Ended",
        };
        f.debug_struct("LinkClient")
            .field("role", &self.role)
            .field("state", &state)
            .field("workspace", &self.config.workspace)
            .finish_non_exhaustive()
    }
}

impl LinkClient {
    /// A host's link: queues `HELLO` with registration message 1 for `static_private`
    /// (`LINK-9`, `LINK-12`).
    ///
    /// # Errors
    /// [`ClientError::Frame`] for a workspace or credential that breaks its rule
    /// (`LINK-32`, `LINK-10`), [`ClientError::Registration`] if registration cannot start.
    pub fn host(
        config: ClientConfig,
        static_private: &[u8; 32],
        now: Instant,
    ) -> Result<Self, ClientError> {
        let (registration, msg1) = HostRegistration::start(static_private, &config.workspace)
            .map_err(ClientError::Registration)?;
        Self::start(
            Role::Host,
            State::AwaitChallenge(Box::new(registration)),
            msg1.to_vec(),
            config,
            now,
        )
    }

    /// A controller's link: queues `HELLO`.
    ///
    /// # Errors
    /// [`ClientError::Frame`] for a workspace or credential that breaks its rule.
    pub fn controller(config: ClientConfig, now: Instant) -> Result<Self, ClientError> {
        Self::start(Role::Controller, State::AwaitReady, Vec::new(), config, now)
    }

    fn start(
        role: Role,
        state: State,
        registration: Vec<u8>,
        config: ClientConfig,
        now: Instant,
    ) -> Result<Self, ClientError> {
        // LINK-8: the first frame is HELLO.
        let hello = config.hello(role, registration).to_bytes()?;
        Ok(Self {
            role,
            state,
            ready_deadline: now + config.ready_timeout,
            config,
            transmits: VecDeque::from([hello]),
            events: VecDeque::new(),
            last_sent: now,
            last_received: now,
            next_ping: 0,
        })
    }

    /// The role the link authenticates as.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The workspace the link authenticates in.
    pub fn workspace(&self) -> &str {
        &self.config.workspace
    }

    /// Whether the relay has sent `READY` and the link has not ended.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready)
    }

    /// Whether the link has ended (the driver closes the connection once
    /// [`LinkClient::poll_transmit`] is empty).
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// Takes in one WebSocket message, or the connection's end.
    pub fn handle_message(&mut self, message: Incoming<'_>, now: Instant) {
        if self.is_ended() {
            return;
        }
        self.last_received = now;
        let bytes = match message {
            Incoming::Binary(bytes) => bytes,
            // LINK-1
            Incoming::Text => {
                return self.violation(
                    CloseCode::PROTOCOL_ERROR,
                    "LINK-1",
                    "relay sent a WebSocket text message".to_owned(),
                );
            }
            // LINK-5: refused before its contents are looked at.
            Incoming::TooLarge => {
                return self.violation(
                    CloseCode::FRAME_TOO_LARGE,
                    "LINK-5",
                    "relay sent a message larger than 65544 bytes".to_owned(),
                );
            }
            Incoming::Closed(reason) => {
                return self.end(LinkEnd::Lost {
                    reason: reason.to_owned(),
                    requirement: None,
                });
            }
        };
        let frame = match RelayFrame::decode(bytes) {
            Ok(frame) => frame,
            // LINK-4, LINK-5
            Err(e) => {
                return self.violation(
                    e.close_code(),
                    e.requirement(),
                    format!("relay sent a malformed frame: {e}"),
                );
            }
        };
        self.handle_frame(frame, now);
    }

    fn handle_frame(&mut self, frame: RelayFrame, now: Instant) {
        // LINK-27: a GOAWAY ends the link in every state; nothing is sent after it.
        if let RelayFrame::GoAway { code, reason } = frame {
            return self.end(LinkEnd::GoAway { code, reason });
        }
        match (&self.state, frame) {
            (State::AwaitChallenge(_), RelayFrame::HostChallenge { message }) => {
                let State::AwaitChallenge(registration) =
                    std::mem::replace(&mut self.state, State::AwaitReady)
                else {
                    unreachable!("matched above")
                };
                match registration.respond(&message) {
                    Ok(proof) => self.queue(
                        &RelayFrame::HostProof {
                            message: proof.to_vec(),
                        },
                        now,
                    ),
                    Err(e) => self.end(LinkEnd::Lost {
                        reason: format!("registration with the relay failed: {e}"),
                        requirement: Some("LINK-12"),
                    }),
                }
            }
            (State::AwaitReady, RelayFrame::Ready) => {
                self.state = State::Ready;
                self.events.push_back(LinkEvent::Ready);
            }
            (State::Ready, RelayFrame::Incoming { session, handshake })
                if self.role == Role::Host =>
            {
                self.events
                    .push_back(LinkEvent::Incoming { session, handshake });
            }
            (State::Ready, RelayFrame::Data { session, payload }) => {
                self.events.push_back(LinkEvent::Data { session, payload });
            }
            (State::Ready, RelayFrame::Close { session, code }) => {
                self.events.push_back(LinkEvent::Close { session, code });
            }
            // LINK-25
            (State::Ready, RelayFrame::Ping { value }) => {
                self.queue(&RelayFrame::Pong { value }, now);
            }
            (State::Ready, RelayFrame::Pong { .. }) => {}
            // LINK-35: anything else is a frame this state does not allow.
            (state, other) => {
                let when = match state {
                    State::AwaitChallenge(_) => "before HOST_CHALLENGE",
                    State::AwaitReady => "before READY",
                    _ => "on a READY link",
                };
                self.violation(
                    CloseCode::UNEXPECTED_FRAME,
                    "LINK-35",
                    format!("relay sent {} {when}", other.type_name()),
                );
            }
        }
    }

    /// Fires the timers due at `now`: no `READY` in time, the idle timeout (`LINK-36`), the
    /// keepalive `PING` (`LINK-25`).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Ended => {}
            State::AwaitChallenge(_) | State::AwaitReady => {
                if now >= self.ready_deadline {
                    self.end(LinkEnd::Lost {
                        reason: format!(
                            "no READY from the relay within {} s",
                            self.config.ready_timeout.as_secs()
                        ),
                        requirement: Some("LINK-7"),
                    });
                }
            }
            State::Ready => {
                if now >= self.last_received + self.config.idle_timeout {
                    // LINK-36: lost; the connection is closed without a GOAWAY.
                    self.end(LinkEnd::Lost {
                        reason: format!(
                            "nothing received from the relay for {} s",
                            self.config.idle_timeout.as_secs()
                        ),
                        requirement: Some("LINK-36"),
                    });
                } else if now >= self.last_sent + self.config.keepalive {
                    // LINK-25
                    let value = self.next_ping;
                    self.next_ping = self.next_ping.wrapping_add(1);
                    self.queue(&RelayFrame::Ping { value }, now);
                }
            }
        }
    }

    /// When [`LinkClient::handle_timeout`] is next due, or `None` once the link has ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Ended => None,
            State::AwaitChallenge(_) | State::AwaitReady => Some(self.ready_deadline),
            State::Ready => Some(
                (self.last_sent + self.config.keepalive)
                    .min(self.last_received + self.config.idle_timeout),
            ),
        }
    }

    /// The next binary message to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// A controller opens a session: `OPEN` (`LINK-15`, `LINK-16`). Allowed right after
    /// `HELLO`, before `READY` (`LINK-38`).
    ///
    /// # Errors
    /// [`ClientError::HostCannotOpen`], [`ClientError::Frame`], [`ClientError::NotReady`],
    /// [`ClientError::Ended`].
    pub fn open(
        &mut self,
        session: SessionId,
        host_key: [u8; 32],
        handshake: Vec<u8>,
        now: Instant,
    ) -> Result<(), ClientError> {
        if self.role == Role::Host {
            return Err(ClientError::HostCannotOpen);
        }
        self.send_checked(
            &RelayFrame::Open {
                session,
                host_key,
                handshake,
            },
            now,
        )
    }

    /// `DATA` for a session.
    ///
    /// # Errors
    /// [`ClientError::Frame`] (an empty payload breaks `LINK-33`), [`ClientError::NotReady`],
    /// [`ClientError::Ended`].
    pub fn send(
        &mut self,
        session: SessionId,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), ClientError> {
        self.send_checked(&RelayFrame::Data { session, payload }, now)
    }

    /// `CLOSE` for a session.
    ///
    /// # Errors
    /// [`ClientError::NotReady`], [`ClientError::Ended`].
    pub fn close_session(
        &mut self,
        session: SessionId,
        code: CloseCode,
        now: Instant,
    ) -> Result<(), ClientError> {
        self.send_checked(&RelayFrame::Close { session, code }, now)
    }

    /// Queues any frame, whatever the state allows: for conformance tests that make a
    /// client misbehave on purpose. A `GOAWAY` sent this way ends the link like
    /// [`LinkClient::close`].
    ///
    /// # Errors
    /// [`ClientError::Frame`], [`ClientError::Ended`].
    pub fn send_unchecked(&mut self, frame: &RelayFrame, now: Instant) -> Result<(), ClientError> {
        if self.is_ended() {
            return Err(ClientError::Ended);
        }
        if let RelayFrame::GoAway { code, reason } = frame {
            self.close(*code, reason, now);
            return Ok(());
        }
        let bytes = frame.to_bytes()?;
        self.transmits.push_back(bytes);
        self.last_sent = now;
        Ok(())
    }

    /// Ends the link with `GOAWAY` (`NORMAL` when leaving normally, `GOING_AWAY` when
    /// shutting down; `LINK-27`). `reason` is cut to 255 bytes at a character boundary.
    /// Does nothing once the link has ended.
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) {
        if self.is_ended() {
            return;
        }
        self.queue(
            &RelayFrame::GoAway {
                code,
                reason: truncate(reason, 255).to_owned(),
            },
            now,
        );
        self.end(LinkEnd::Closed { code });
    }

    fn send_checked(&mut self, frame: &RelayFrame, now: Instant) -> Result<(), ClientError> {
        let bytes = frame.to_bytes()?;
        match self.state {
            State::Ended => return Err(ClientError::Ended),
            State::Ready => {}
            // LINK-38: a controller's frames may follow its HELLO; the relay processes them
            // in READY, so LINK-6's 512-byte bound does not apply to them (LINK-6, LINK-40).
            State::AwaitReady if self.role == Role::Controller => {}
            State::AwaitChallenge(_) | State::AwaitReady => return Err(ClientError::NotReady),
        }
        self.transmits.push_back(bytes);
        self.last_sent = now;
        Ok(())
    }

    /// Queues a frame this client built itself (it always encodes).
    fn queue(&mut self, frame: &RelayFrame, now: Instant) {
        if let Ok(bytes) = frame.to_bytes() {
            self.transmits.push_back(bytes);
            self.last_sent = now;
        }
    }

    /// The relay broke `requirement`: `GOAWAY code`, and the link ends.
    fn violation(&mut self, code: CloseCode, requirement: &'static str, detail: String) {
        self.queue(
            &RelayFrame::GoAway {
                code,
                reason: String::new(),
            },
            self.last_received,
        );
        self.end(LinkEnd::Violation {
            code,
            requirement,
            detail,
        });
    }

    fn end(&mut self, end: LinkEnd) {
        self.state = State::Ended;
        self.events.push_back(LinkEvent::Ended(end));
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
