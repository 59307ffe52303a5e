//! The controller's side of one session (`spec/04-secure-channel.md`).
//!
//! ```text
//!  connect ──► OPEN(msg1) queued ──► AWAIT_MSG2 ──DATA(msg2) ok──► ESTABLISHED ──► CLOSED
//!                                      │  CLOSE(code) / bad msg2 / timeout        ▲
//!                                      └──────────────────────────────────────────┘
//! ```
//!
//! Call order, on every wake-up: `handle_data` / `handle_close` for each frame of this
//! session the relay delivered, `handle_timeout` when `poll_timeout` has passed, then
//! `send` / `close` as the application decides, then drain `poll_transmit` and
//! `poll_event`. Nothing is sent on the session before message 2 is read (`CHAN-15`).

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::channel::{
    ChannelError, CreditLedger, Flow, Framing, HandshakePayload, HostInfo, Initiator, OutputChunk,
    Prologue, Received, Timestamp, Transport,
};
use crate::cmd::{CommandError, Message, Rejection, capability};
use crate::error::Error;
use crate::limits::{
    CONFIRM_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_LINK_CREDIT, MAX_SESSIONS_PER_CONTROLLER_LINK,
};

/// The credit a controller session grants its host by default: 2 MiB shared by the 16
/// sessions a controller link may carry (`CHAN-35`, `LINK-20`), so that no count across
/// sessions is needed.
pub const DEFAULT_CONTROLLER_CREDIT: u64 =
    MAX_LINK_CREDIT / MAX_SESSIONS_PER_CONTROLLER_LINK as u64;
use crate::link::{CloseCode, RelayFrame, SessionId};

/// Why the controller opens the session.
#[derive(Clone, PartialEq, Eq)]
pub enum Purpose {
    /// The controller is paired with the host already.
    Resume,
    /// The controller pairs, presenting a token's id and secret (`CHAN-12`).
    Pair {
        /// From the pairing token.
        token_id: [u8; 16],
        /// From the pairing token.
        token_secret: [u8; 32],
        /// The name the host will record.
        device_name: String,
    },
}

impl std::fmt::Debug for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resume => f.write_str("Resume"),
            Self::Pair { device_name, .. } => f
                .debug_struct("Pair")
                .field("device_name", device_name)
                .finish_non_exhaustive(),
        }
    }
}

/// Everything a controller needs to open one session.
#[derive(Clone)]
pub struct ControllerConfig {
    /// The controller's static X25519 private key.
    pub static_private: [u8; 32],
    /// The host's static public key, from the pairing token or the paired-host record.
    pub host_key: [u8; 32],
    /// The workspace of host and controller (`CHAN-2`).
    pub workspace: String,
    /// Chosen uniformly at random by the caller (`LINK-16`).
    pub session: SessionId,
    /// Strictly greater than any timestamp sent to this host before (`CHAN-5`): use
    /// [`Timestamp::next_after`].
    pub timestamp: Timestamp,
    /// Resume or pair.
    pub purpose: Purpose,
    /// How long to wait for message 2 (`CHAN-13`); see [`ControllerConfig::default_timeout`].
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for ControllerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerConfig")
            .field("workspace", &self.workspace)
            .field("session", &self.session)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl ControllerConfig {
    /// The handshake timeout of `CHAN-13`: 15 s, or 75 s when pairing, since the host may
    /// be waiting for its user to confirm a code (`CHAN-24`).
    pub fn default_timeout(purpose: &Purpose) -> Duration {
        if matches!(purpose, Purpose::Pair { .. }) {
            HANDSHAKE_TIMEOUT + CONFIRM_TIMEOUT
        } else {
            HANDSHAKE_TIMEOUT
        }
    }
}

/// What happened on the session.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ControllerEvent {
    /// Message 2 was read: the host proved its key and described itself.
    Established {
        /// From message 2 (`CHAN-6`).
        host_info: HostInfo,
    },
    /// A command-protocol message arrived.
    Message(Message),
    /// A chunk of a `command/exec` process's output arrived in an `OUTPUT` record
    /// (`CMD-76`): what a `command/exec/outputDelta` carries in a version 1 session.
    Output(OutputChunk),
    /// A transport message decrypted but broke the command envelope rules; its error
    /// response (if answerable) has been queued.
    Rejected(Rejection),
    /// The session ended.
    Closed {
        /// The code sent or received.
        code: CloseCode,
        /// True if the host or relay closed it.
        by_peer: bool,
    },
}

enum State {
    AwaitMessage2 {
        initiator: Box<Initiator>,
        deadline: Instant,
    },
    Established {
        transport: Transport,
        flow: Box<Flow>,
    },
    Closed,
}

impl Drop for Controller {
    fn drop(&mut self) {
        // A shared ledger outlives the session: its credit goes back (CHAN-35).
        self.release();
    }
}

/// The credit ledger a session grants against: its own, or its link's (`CHAN-35`).
enum Ledger {
    Own(CreditLedger),
    Shared(Arc<Mutex<CreditLedger>>),
}

enum LedgerGuard<'a> {
    Own(&'a mut CreditLedger),
    Shared(MutexGuard<'a, CreditLedger>),
}

impl Ledger {
    fn lock(&mut self) -> LedgerGuard<'_> {
        match self {
            Self::Own(l) => LedgerGuard::Own(l),
            // A poisoned ledger still holds valid counts: every update is one statement.
            Self::Shared(l) => LedgerGuard::Shared(l.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

impl Deref for LedgerGuard<'_> {
    type Target = CreditLedger;
    fn deref(&self) -> &CreditLedger {
        match self {
            Self::Own(l) => l,
            Self::Shared(g) => g,
        }
    }
}

impl DerefMut for LedgerGuard<'_> {
    fn deref_mut(&mut self) -> &mut CreditLedger {
        match self {
            Self::Own(l) => l,
            Self::Shared(g) => g,
        }
    }
}

/// One session from a controller to a host. See the module documentation.
pub struct Controller {
    session: SessionId,
    state: State,
    confirmation_code: String,
    transmits: VecDeque<RelayFrame>,
    events: VecDeque<ControllerEvent>,
    scratch: Vec<u8>,
    /// Take part in records when the host offers `channel.flow` (`CHAN-31`).
    records: bool,
    /// The session's own credit ledger (`CHAN-35`).
    ledger: Ledger,
    credit_cap: u64,
    /// Sizes of the messages delivered and not yet consumed, when the application
    /// reports consumption itself ([`Controller::set_manual_consume`]).
    delivered: Option<VecDeque<u64>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::AwaitMessage2 { .. } => "await-message-2",
            State::Established { .. } => "established",
            State::Closed => "closed",
        };
        f.debug_struct("Controller")
            .field("session", &self.session)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Writes message 1 and queues it in an `OPEN` frame.
    ///
    /// # Errors
    /// [`ChannelError`] if the workspace is invalid (`CHAN-2`), the host key is a
    /// low-order point (`CHAN-7`) or the payload does not encode (`CHAN-3`).
    pub fn connect(config: ControllerConfig, now: Instant) -> Result<Self, Error> {
        Self::build(config, now, None)
    }

    /// [`Controller::connect`] with a fixed ephemeral key: only for test vectors.
    ///
    /// # Errors
    /// As [`Controller::connect`].
    #[doc(hidden)]
    pub fn connect_with_fixed_ephemeral_for_testing(
        config: ControllerConfig,
        now: Instant,
        ephemeral: &[u8; 32],
    ) -> Result<Self, Error> {
        Self::build(config, now, Some(ephemeral))
    }

    fn build(
        config: ControllerConfig,
        now: Instant,
        ephemeral: Option<&[u8; 32]>,
    ) -> Result<Self, Error> {
        let prologue = Prologue::new(&config.workspace, &config.host_key, config.session)?;
        let payload = match config.purpose {
            Purpose::Resume => HandshakePayload::Session {
                timestamp: config.timestamp,
            },
            Purpose::Pair {
                token_id,
                token_secret,
                device_name,
            } => HandshakePayload::Pair {
                timestamp: config.timestamp,
                token_id,
                token_secret,
                device_name,
            },
        };
        let initiator = match ephemeral {
            None => Initiator::new(
                &config.static_private,
                &config.host_key,
                &prologue,
                &payload,
            )?,
            Some(e) => Initiator::new_with_fixed_ephemeral_for_testing(
                &config.static_private,
                &config.host_key,
                &prologue,
                &payload,
                e,
            )?,
        };
        let mut transmits = VecDeque::new();
        transmits.push_back(RelayFrame::Open {
            session: config.session,
            host_key: config.host_key,
            handshake: initiator.message1().to_vec(),
        });
        Ok(Self {
            session: config.session,
            confirmation_code: initiator.confirmation_code(),
            state: State::AwaitMessage2 {
                initiator: Box::new(initiator),
                deadline: now + config.handshake_timeout,
            },
            transmits,
            events: VecDeque::new(),
            scratch: Vec::new(),
            records: true,
            ledger: Ledger::Own(CreditLedger::for_session(DEFAULT_CONTROLLER_CREDIT)),
            credit_cap: DEFAULT_CONTROLLER_CREDIT,
            delivered: None,
        })
    }

    /// Whether to take part in records when the host offers `channel.flow` (default
    /// true). Set before message 2 arrives; a controller that does not is served as a
    /// version 1 peer (`CHAN-31`).
    pub fn set_records(&mut self, records: bool) {
        self.records = records;
    }

    /// The most credit this session grants its host (default
    /// [`DEFAULT_CONTROLLER_CREDIT`], at most 258048, `CHAN-35`). A driver that carries
    /// fewer sessions on its link may grant more. Set before message 2 arrives.
    pub fn set_credit_cap(&mut self, cap: u64) {
        self.credit_cap = cap;
        if let Ledger::Own(_) = self.ledger {
            self.ledger = Ledger::Own(CreditLedger::for_session(cap));
        }
    }

    /// Shares `ledger` with the other sessions of this controller's relay link, so that
    /// their credit stays within 2 MiB together (`CHAN-35`; make it with
    /// [`CreditLedger::for_link`] of 16 sessions, `LINK-20`): a session may then grant up
    /// to its cap ([`Controller::set_credit_cap`], up to 258048) while the link has room.
    /// Set before message 2 arrives.
    pub fn set_shared_ledger(&mut self, ledger: Arc<Mutex<CreditLedger>>) {
        self.ledger = Ledger::Shared(ledger);
    }

    /// With `manual`, a delivered message keeps its credit until the application reports
    /// it consumed ([`Controller::consume`]): the host then sends no faster than the
    /// application takes messages (`CHAN-36`). Without (the default) a message is
    /// consumed when it becomes an event.
    pub fn set_manual_consume(&mut self, manual: bool) {
        self.delivered = manual.then(VecDeque::new);
    }

    /// In manual mode, the size to report to [`Controller::consume`] for the oldest
    /// [`ControllerEvent::Message`] or [`ControllerEvent::Output`] taken from
    /// [`Controller::poll_event`] and not asked about yet: call it once after each such
    /// event (0 in a version 1 session).
    pub fn take_delivered_size(&mut self) -> u64 {
        self.delivered
            .as_mut()
            .and_then(VecDeque::pop_front)
            .unwrap_or(0)
    }

    /// The application no longer holds messages of `size` bytes (sums of
    /// [`Controller::take_delivered_size`]): their credit goes back to the host
    /// (`CHAN-36`).
    pub fn consume(&mut self, size: u64) {
        let State::Established { flow, .. } = &mut self.state else {
            return;
        };
        flow.consume(size, &mut self.ledger.lock());
        flow.grant(&mut self.ledger.lock());
        self.pump();
    }

    /// How the session carries messages (`CHAN-31`); `None` before message 2.
    pub fn framing(&self) -> Option<Framing> {
        match &self.state {
            State::Established { flow, .. } => Some(flow.framing()),
            _ => None,
        }
    }

    /// Message bytes waiting for the host's window (`CHAN-34`).
    pub fn queued_bytes(&self) -> usize {
        match &self.state {
            State::Established { flow, .. } => flow.queued_bytes(),
            _ => 0,
        }
    }

    /// The session id.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The six-digit code to show while a host asks its user to confirm (`CHAN-23`).
    pub fn confirmation_code(&self) -> &str {
        &self.confirmation_code
    }

    /// Whether message 2 has been read and the session is open.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The relay delivered a `DATA` frame of this session.
    pub fn handle_data(&mut self, payload: &[u8]) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::AwaitMessage2 { initiator, .. } => match initiator.read_message2(payload) {
                Ok((transport, host_info)) => {
                    // CHAN-31: records when the host offers them and this side takes part;
                    // the first transport message is then this side's WINDOW.
                    let records = self.records
                        && host_info
                            .capabilities
                            .iter()
                            .any(|c| c == capability::CHANNEL_FLOW);
                    let flow = Box::new(Flow::controller(
                        records,
                        self.credit_cap,
                        &mut self.ledger.lock(),
                    ));
                    self.state = State::Established { transport, flow };
                    self.events
                        .push_back(ControllerEvent::Established { host_info });
                    self.pump();
                }
                // CHAN-6, CHAN-7, CHAN-8
                Err(e) => self.finish(e.close_code(), false),
            },
            State::Established {
                mut transport,
                mut flow,
            } => {
                self.scratch.clear();
                let decrypted = transport.decrypt(payload, &mut self.scratch);
                let outcome = match decrypted {
                    Ok(_) => flow.receive(&self.scratch, &mut self.ledger.lock()),
                    Err(e) => Err(e),
                };
                // In manual mode a delivered message or output keeps its credit until the
                // application consumes it; otherwise it is consumed now.
                let mut hold = |flow: &mut Flow, size: u64| match self.delivered.as_mut() {
                    Some(delivered) => delivered.push_back(size),
                    None => flow.consume(size, &mut self.ledger.lock()),
                };
                let received = match outcome {
                    Ok(Received::Message { bytes, size }) => {
                        match Message::parse_or_reject_within(&bytes, flow.max_message_len()) {
                            Ok(m) => {
                                hold(&mut flow, size);
                                Some(Ok(ControllerEvent::Message(m)))
                            }
                            Err(rejection) => {
                                flow.consume(size, &mut self.ledger.lock());
                                Some(Err(rejection))
                            }
                        }
                    }
                    Ok(Received::Output { chunk, size }) => {
                        hold(&mut flow, size);
                        Some(Ok(ControllerEvent::Output(chunk)))
                    }
                    // CHAN-33, CMD-2
                    Ok(Received::TooLarge { len }) => {
                        Some(Err(Rejection::bare(CommandError::TooLarge { len })))
                    }
                    Ok(Received::Nothing) => None,
                    // CHAN-18; CHAN-32, CHAN-34, CHAN-35. The state goes back first, so
                    // that finishing returns the session's credit to its ledger.
                    Err(e) => {
                        self.state = State::Established { transport, flow };
                        return self.finish(e.close_code(), false);
                    }
                };
                flow.grant(&mut self.ledger.lock());
                self.state = State::Established { transport, flow };
                match received {
                    Some(Ok(event)) => self.events.push_back(event),
                    Some(Err(rejection)) => {
                        if let Some(reply) = rejection.reply() {
                            let _ = self.send(&Message::Error(reply));
                        }
                        self.events.push_back(ControllerEvent::Rejected(rejection));
                    }
                    None => {}
                }
                self.pump();
            }
            State::Closed => {}
        }
    }

    /// Encrypts and queues whatever the flow lets go now (`CHAN-34`).
    fn pump(&mut self) {
        let State::Established { transport, flow } = &mut self.state else {
            return;
        };
        if let Err(code) = super::send::pump(transport, flow, self.session, &mut self.transmits) {
            self.finish(code, false);
        }
    }

    /// The relay delivered a `CLOSE` of this session.
    ///
    /// `SESSION_ID_IN_USE` refuses an `OPEN` and never ends a session that exists
    /// (`LINK-43`): before message 2 it ends this session's handshake (its `OPEN` was
    /// refused); once message 2 has been read it is ignored, because the relay and the host
    /// keep the established session it names (`LINK-16`).
    pub fn handle_close(&mut self, code: CloseCode) {
        if code == CloseCode::SESSION_ID_IN_USE && matches!(self.state, State::Established { .. }) {
            return;
        }
        if !self.is_closed() {
            self.release();
            self.state = State::Closed;
            self.events.push_back(ControllerEvent::Closed {
                code,
                by_peer: true,
            });
        }
    }

    /// Gives up on a handshake that has not completed in time, closing with `NORMAL`
    /// (`CHAN-13`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::AwaitMessage2 { deadline, .. } = self.state
            && deadline <= now
        {
            self.finish(CloseCode::NORMAL, false);
        }
    }

    /// When [`Controller::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitMessage2 { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// Queues `message` and sends what the host's window lets go (`CHAN-34`).
    ///
    /// # Errors
    /// [`ChannelError::Closed`] before message 2 (`CHAN-15`) or after the session ended;
    /// [`ChannelError::MessageTooLarge`] over the session's limit (`CMD-2`); the
    /// transport's own errors (`CHAN-20`).
    pub fn send(&mut self, message: &Message) -> Result<(), Error> {
        let State::Established { flow, .. } = &mut self.state else {
            return Err(ChannelError::Closed.into());
        };
        flow.push(message.to_bytes())?;
        self.pump();
        if self.is_closed() {
            return Err(ChannelError::Closed.into());
        }
        Ok(())
    }

    /// Sends `bytes` as a message without checking that it is a valid command message:
    /// one transport message in version 1, `PART` and `MESSAGE` records within the window
    /// with records. [`Controller::send`] is the normal path; this one exists for
    /// conformance runners and tests, which must be able to send a host malformed
    /// JSON-RPC.
    ///
    /// # Errors
    /// As [`Controller::send`].
    pub fn send_plaintext(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let State::Established { flow, .. } = &mut self.state else {
            return Err(ChannelError::Closed.into());
        };
        flow.push(bytes.to_vec())?;
        self.pump();
        if self.is_closed() {
            return Err(ChannelError::Closed.into());
        }
        Ok(())
    }

    /// Ends the session, telling the host.
    pub fn close(&mut self, code: CloseCode) {
        if !self.is_closed() {
            self.finish(code, false);
        }
    }

    /// Gives the session's credit back to the ledger (a shared one outlives it).
    fn release(&mut self) {
        if let State::Established { flow, .. } = &mut self.state {
            flow.close(&mut self.ledger.lock());
        }
    }

    fn finish(&mut self, code: CloseCode, by_peer: bool) {
        self.release();
        self.state = State::Closed;
        if !by_peer {
            self.transmits.push_back(RelayFrame::Close {
                session: self.session,
                code,
            });
        }
        self.events
            .push_back(ControllerEvent::Closed { code, by_peer });
    }

    /// The next frame to send to the relay.
    pub fn poll_transmit(&mut self) -> Option<RelayFrame> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ControllerEvent> {
        self.events.pop_front()
    }
}
