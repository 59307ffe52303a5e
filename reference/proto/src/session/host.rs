//! The host's side of its sessions (`spec/04-secure-channel.md`, "Host procedure").
//!
//! One [`Host`] serves every session that reaches the host through its relay link. The
//! driver hands it the session frames the relay delivers (`INCOMING`, `DATA`, `CLOSE`),
//! and sends whatever [`Host::poll_transmit`] yields. Call order, on every wake-up:
//!
//! 1. `handle_incoming` / `handle_data` / `handle_close` for each frame received, and
//!    `handle_timeout` when the instant from `poll_timeout` has passed;
//! 2. `confirm_pairing`, `send`, `close` as the application decides;
//! 3. drain `poll_transmit` (frames for the relay) and `poll_event` (what happened).
//!
//! Per session:
//!
//! ```text
//!   INCOMING ─┬─ read budget empty (before any DH) ───────► refused RATE_LIMITED
//!             ├─ remote access off ─────────────────────────► refused REMOTE_ACCESS_DISABLED
//!             ├─ es: claimed key → its bucket empty ────────► refused RATE_LIMITED
//!             │  (a paired device's own, else the shared)
//!             ├─ msg1 fails (DH, decrypt, payload) ─────────► refused HANDSHAKE_FAILED
//!             ├─ timestamp > now + 600 s ───────────────────► refused CLOCK_SKEW
//!             ├─ SESSION: store.admit ─── refused ──────────► NOT_AUTHORIZED / REPLAYED
//!             │                      └── ok ─────────────┐
//!             └─ PAIR: store.redeem_token ── refused ───► TOKEN_REJECTED
//!                         │ ok (token consumed)          │
//!                         ├─ confirm off: record_device ─┤
//!                         └─ confirm on ─► AWAIT_CONFIRM │
//!                              ├─ accepted: record_device┤
//!                              └─ refused / 60 s ──────► CONFIRMATION_REJECTED
//!                                                        ▼
//!                                         msg2 sent ─► ESTABLISHED ─► closed
//! ```
//!
//! A refused session costs one `CLOSE` frame and leaves nothing behind.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::ratelimit::{HandshakeLimiter, TokenBucket};
use super::store::{HostStore, Refusal};
use crate::channel::{
    ChannelError, CreditLedger, Flow, Framing, HandshakePayload, HostInfo, PendingResponder,
    Prologue, Received, Responder, Timestamp, Transport,
};
use crate::cmd::{CommandError, Message, Rejection, capability};
use crate::error::Error;
use crate::limits::{CONFIRM_TIMEOUT, MAX_CLOCK_SKEW, MAX_SESSIONS_PER_HOST};
use crate::link::{CloseCode, RelayFrame, SessionId};
use crate::time::UnixTime;

/// How a host runs its sessions.
#[derive(Clone)]
pub struct HostConfig {
    /// The host's static X25519 private key (its IK key and its relay registration key).
    pub static_private: [u8; 32],
    /// The workspace the host is registered in (bound into every prologue, `CHAN-2`).
    pub workspace: String,
    /// What message 2 tells controllers (`CHAN-6`).
    pub host_info: HostInfo,
    /// With remote access off every session is refused (`CHAN-26`).
    pub remote_access: bool,
    /// Ask the host's user to confirm the pairing code before accepting a pairing
    /// (`CHAN-24`).
    pub confirm_pairing: bool,
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig")
            .field("workspace", &self.workspace)
            .field("remote_access", &self.remote_access)
            .field("confirm_pairing", &self.confirm_pairing)
            .finish_non_exhaustive()
    }
}

/// What happened on the host's sessions.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum HostEvent {
    /// Message 2 was sent: the session carries commands from now on.
    Established {
        /// The session.
        session: SessionId,
        /// The controller's static key.
        device: [u8; 32],
        /// `Some(name)` when this session paired the device.
        paired: Option<String>,
    },
    /// A pairing waits for the host's user to compare this code with the controller's
    /// screen; answer with [`Host::confirm_pairing`] within 60 s (`CHAN-24`).
    ConfirmationRequested {
        /// The session.
        session: SessionId,
        /// Six digits (`CHAN-23`).
        code: String,
        /// The name the controller gave.
        device_name: String,
    },
    /// A command-protocol message arrived.
    Message {
        /// The session.
        session: SessionId,
        /// The message, already checked against the envelope rules of `spec/05`.
        message: Message,
    },
    /// A transport message decrypted but broke the command envelope rules; its error
    /// response (if it is answerable) has already been queued.
    Rejected {
        /// The session.
        session: SessionId,
        /// What was wrong.
        rejection: Rejection,
    },
    /// A session was refused before message 2; a `CLOSE` with its code was queued.
    Refused {
        /// The session.
        session: SessionId,
        /// Why.
        refusal: RefusalReason,
    },
    /// An established or confirming session ended.
    Closed {
        /// The session.
        session: SessionId,
        /// The code sent or received.
        code: CloseCode,
        /// True if the controller (or relay) closed it.
        by_peer: bool,
    },
}

/// Why a session was refused: a store refusal or a failed handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// Refused by rule (`CHAN-9` … `CHAN-26`).
    Refusal(Refusal),
    /// Message 1 did not decrypt or was malformed (`CHAN-7`, `CHAN-8`, `CHAN-3`).
    Handshake(ChannelError),
}

impl RefusalReason {
    /// The `CLOSE` code sent.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::Refusal(r) => r.close_code(),
            Self::Handshake(e) => e.close_code(),
        }
    }
}

enum SessionState {
    AwaitingConfirmation {
        pending: Box<PendingResponder>,
        device_name: String,
        timestamp: Timestamp,
        deadline: Instant,
    },
    Established {
        transport: Transport,
        flow: Box<Flow>,
    },
}

/// The host's session state machine. See the module documentation for the call order.
pub struct Host {
    config: HostConfig,
    host_key: [u8; 32],
    limiter: HandshakeLimiter,
    sessions: HashMap<SessionId, SessionState>,
    transmits: VecDeque<RelayFrame>,
    events: VecDeque<HostEvent>,
    scratch: Vec<u8>,
    fixed_ephemeral: Option<[u8; 32]>,
    /// The host offered `channel.flow` in message 2 (`CHAN-31`).
    records: bool,
    /// Credit granted over all sessions of the link (`CHAN-35`).
    ledger: CreditLedger,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("workspace", &self.config.workspace)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host with no sessions, and the handshake budget of `CHAN-14` and `CHAN-30`.
    pub fn new(config: HostConfig) -> Self {
        let host_key = crate::keys::public_key(&config.static_private);
        let records = config
            .host_info
            .capabilities
            .iter()
            .any(|c| c == capability::CHANNEL_FLOW);
        Self {
            records,
            ledger: CreditLedger::for_link(MAX_SESSIONS_PER_HOST),
            config,
            host_key,
            limiter: HandshakeLimiter::default(),
            sessions: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            fixed_ephemeral: None,
        }
    }

    /// Makes every later handshake use this ephemeral key. Only for test vectors: a reused
    /// ephemeral destroys the handshake's security.
    #[doc(hidden)]
    pub fn set_fixed_ephemeral_for_testing(&mut self, ephemeral: [u8; 32]) {
        self.fixed_ephemeral = Some(ephemeral);
    }

    /// Replaces the shared bucket of senders that are not paired devices (`CHAN-14`;
    /// tests and benchmarks).
    pub fn with_bucket(mut self, bucket: TokenBucket) -> Self {
        self.limiter.set_shared(bucket);
        self
    }

    /// Replaces the whole message-1 budget (`CHAN-14`, `CHAN-30`; tests and benchmarks).
    pub fn with_limiter(mut self, limiter: HandshakeLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// The host's static public key.
    pub fn host_key(&self) -> &[u8; 32] {
        &self.host_key
    }

    /// Number of sessions established or awaiting confirmation.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `session` is established.
    pub fn is_established(&self, session: SessionId) -> bool {
        matches!(
            self.sessions.get(&session),
            Some(SessionState::Established { .. })
        )
    }

    fn refuse(&mut self, session: SessionId, refusal: RefusalReason) {
        self.transmits.push_back(RelayFrame::Close {
            session,
            code: refusal.close_code(),
        });
        self.events
            .push_back(HostEvent::Refused { session, refusal });
    }

    /// A controller opened a session: `INCOMING` with its message 1. The checks run in the
    /// order of `spec/04` section 4.7, and the first that fails decides the one `CLOSE`
    /// code sent (`CHAN-29`).
    ///
    /// `now` drives the rate limit and the confirmation deadline; `wall` is the host's
    /// wall clock for timestamps and token expiry.
    pub fn handle_incoming(
        &mut self,
        session: SessionId,
        message1: &[u8],
        now: Instant,
        wall: UnixTime,
        store: &mut dyn HostStore,
    ) {
        if self.sessions.contains_key(&session) {
            // The relay keeps ids unique per host (LINK-16); a duplicate is not ours to
            // serve, and the existing session is left alone.
            self.transmits.push_back(RelayFrame::Close {
                session,
                code: CloseCode::SESSION_ID_IN_USE,
            });
            return;
        }
        // CHAN-14: the read budget is taken before any Diffie-Hellman work.
        if !self.limiter.try_read(now) {
            return self.refuse(session, RefusalReason::Refusal(Refusal::RateLimited));
        }
        // CHAN-26
        if !self.config.remote_access {
            return self.refuse(
                session,
                RefusalReason::Refusal(Refusal::RemoteAccessDisabled),
            );
        }
        if self.sessions.len() >= MAX_SESSIONS_PER_HOST {
            return self.refuse(session, RefusalReason::Refusal(Refusal::SessionLimit));
        }
        let prologue = match Prologue::new(&self.config.workspace, &self.host_key, session) {
            Ok(p) => p,
            Err(e) => return self.refuse(session, RefusalReason::Handshake(e)),
        };
        // CHAN-7, CHAN-8, CHAN-3
        let mut responder = Responder::new(&self.config.static_private, &prologue);
        if let Some(e) = &self.fixed_ephemeral {
            responder = responder.with_fixed_ephemeral_for_testing(e);
        }
        // CHAN-14, CHAN-30: one DH (es) tells the static key the sender claims; a paired,
        // unrevoked, active device pays from its own bucket first, any other sender (or a
        // message whose key does not decrypt) from the shared one.
        let claimed = responder
            .claimed_static(message1)
            .filter(|key| store.is_active_device(key, wall));
        if self.limiter.try_sender(claimed.as_ref(), now).is_none() {
            return self.refuse(session, RefusalReason::Refusal(Refusal::RateLimited));
        }
        let pending = match responder.read_message1(message1) {
            Ok(p) => p,
            Err(e) => return self.refuse(session, RefusalReason::Handshake(e)),
        };
        let timestamp = pending.payload().timestamp();
        // CHAN-11
        if timestamp.to_unix() > wall.saturating_add(MAX_CLOCK_SKEW) {
            return self.refuse(session, RefusalReason::Refusal(Refusal::ClockSkew));
        }
        let device = *pending.remote_static();
        match pending.payload().clone() {
            HandshakePayload::Session { .. } => {
                // CHAN-9, CHAN-10: checked and recorded durably before message 2.
                if let Err(r) = store.admit(&device, timestamp, wall) {
                    return self.refuse(session, RefusalReason::Refusal(r));
                }
                self.accept(session, pending, None);
            }
            HandshakePayload::Pair {
                token_id,
                token_secret,
                device_name,
                ..
            } => {
                // CHAN-12, TOKEN-15: the token is consumed durably before any answer.
                if let Err(r) = store.redeem_token(&token_id, &token_secret, wall) {
                    return self.refuse(session, RefusalReason::Refusal(r));
                }
                if self.config.confirm_pairing {
                    // CHAN-23, CHAN-24
                    let code = pending.confirmation_code();
                    self.sessions.insert(
                        session,
                        SessionState::AwaitingConfirmation {
                            pending: Box::new(pending),
                            device_name: device_name.clone(),
                            timestamp,
                            deadline: now + CONFIRM_TIMEOUT,
                        },
                    );
                    self.events.push_back(HostEvent::ConfirmationRequested {
                        session,
                        code,
                        device_name,
                    });
                } else {
                    // CHAN-27
                    if let Err(r) = store.record_device(&device, &device_name, timestamp, wall) {
                        return self.refuse(session, RefusalReason::Refusal(r));
                    }
                    self.accept(session, pending, Some(device_name));
                }
            }
        }
    }

    fn accept(&mut self, session: SessionId, pending: PendingResponder, paired: Option<String>) {
        let device = *pending.remote_static();
        let mut message2 = Vec::new();
        match pending.write_message2(&self.config.host_info, &mut message2) {
            Ok(transport) => {
                // CHAN-28: message 2 is the session's first DATA frame from the host.
                self.transmits.push_back(RelayFrame::Data {
                    session,
                    payload: message2,
                });
                let flow = Box::new(Flow::host(self.records));
                self.sessions
                    .insert(session, SessionState::Established { transport, flow });
                self.events.push_back(HostEvent::Established {
                    session,
                    device,
                    paired,
                });
            }
            Err(e) => self.refuse(session, RefusalReason::Handshake(e)),
        }
    }

    /// The host's user compared the code: `accept` or not (`CHAN-24`). Does nothing for a
    /// session that is not awaiting confirmation.
    pub fn confirm_pairing(
        &mut self,
        session: SessionId,
        accept: bool,
        wall: UnixTime,
        store: &mut dyn HostStore,
    ) {
        let Some(SessionState::AwaitingConfirmation { .. }) = self.sessions.get(&session) else {
            return;
        };
        let Some(SessionState::AwaitingConfirmation {
            pending,
            device_name,
            timestamp,
            ..
        }) = self.sessions.remove(&session)
        else {
            return;
        };
        if !accept {
            return self.refuse(
                session,
                RefusalReason::Refusal(Refusal::ConfirmationRejected),
            );
        }
        if let Err(r) = store.record_device(pending.remote_static(), &device_name, timestamp, wall)
        {
            return self.refuse(session, RefusalReason::Refusal(r));
        }
        self.accept(session, *pending, Some(device_name));
    }

    /// The relay delivered a `DATA` frame of `session`.
    pub fn handle_data(&mut self, session: SessionId, payload: &[u8]) {
        let received = match self.sessions.get_mut(&session) {
            Some(SessionState::Established { transport, flow }) => {
                self.scratch.clear();
                match transport.decrypt(payload, &mut self.scratch) {
                    // CHAN-31 .. CHAN-36: a version 1 message, or a record.
                    Ok(_) => match flow.receive(&self.scratch, &mut self.ledger) {
                        Ok(Received::Message { bytes, size }) => {
                            // The host acts on a message as it arrives: consumed now.
                            flow.consume(size, &mut self.ledger);
                            Ok(Some(Message::parse_or_reject_within(
                                &bytes,
                                flow.max_message_len(),
                            )))
                        }
                        // CHAN-33, CMD-2: answered as TooLarge, the session goes on.
                        Ok(Received::TooLarge { len }) => {
                            Ok(Some(Err(Rejection::bare(CommandError::TooLarge { len }))))
                        }
                        Ok(Received::Nothing) => Ok(None),
                        // The flow of a host refuses OUTPUT records (CHAN-32).
                        Ok(Received::Output { .. }) => Err(CloseCode::FLOW_CONTROL_ERROR),
                        Err(e) => Err(e.close_code()),
                    },
                    // CHAN-18: the first failure ends the session.
                    Err(e) => Err(e.close_code()),
                }
            }
            // CHAN-15: nothing may arrive before message 2 has been sent.
            Some(SessionState::AwaitingConfirmation { .. }) => Err(CloseCode::HANDSHAKE_FAILED),
            // LINK-19: a session this host does not have.
            None => {
                self.transmits.push_back(RelayFrame::Close {
                    session,
                    code: CloseCode::UNKNOWN_SESSION,
                });
                return;
            }
        };
        match received {
            Ok(Some(Ok(message))) => self
                .events
                .push_back(HostEvent::Message { session, message }),
            Ok(Some(Err(rejection))) => {
                if let Some(reply) = rejection.reply() {
                    let _ = self.send(session, &Message::Error(reply));
                }
                self.events
                    .push_back(HostEvent::Rejected { session, rejection });
            }
            Ok(None) => {}
            Err(code) => return self.end(session, code, false),
        }
        // CHAN-36: credit back for what was consumed; a WINDOW may also have opened the
        // host's own window (CHAN-34).
        if let Some(SessionState::Established { flow, .. }) = self.sessions.get_mut(&session) {
            flow.grant(&mut self.ledger);
        }
        self.pump(session);
    }

    /// Encrypts and queues whatever the session's flow lets go now (`CHAN-34`).
    fn pump(&mut self, session: SessionId) {
        let Some(SessionState::Established { transport, flow }) = self.sessions.get_mut(&session)
        else {
            return;
        };
        if let Err(code) = super::send::pump(transport, flow, session, &mut self.transmits) {
            self.end(session, code, false);
        }
    }

    /// The relay delivered a `CLOSE` for `session`.
    pub fn handle_close(&mut self, session: SessionId, code: CloseCode) {
        if let Some(state) = self.sessions.remove(&session) {
            self.release(state);
            self.events.push_back(HostEvent::Closed {
                session,
                code,
                by_peer: true,
            });
        }
    }

    /// The relay link was lost: every session is gone (`LINK-21`).
    pub fn handle_link_lost(&mut self) {
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.sort();
        for session in ids {
            self.handle_close(session, CloseCode::PEER_GONE);
        }
        self.transmits.clear();
    }

    /// Queues `message` for `session` and sends what its window lets go (`CHAN-34`);
    /// returns the message's number in the session, to compare with
    /// [`Host::released`].
    ///
    /// # Errors
    /// [`ChannelError::Closed`] if the session is not established;
    /// [`ChannelError::MessageTooLarge`] for a message over the session's limit (65519
    /// bytes in version 1, 16 MiB with records; `CMD-2`).
    pub fn send(&mut self, session: SessionId, message: &Message) -> Result<u64, Error> {
        let Some(SessionState::Established { flow, .. }) = self.sessions.get_mut(&session) else {
            return Err(ChannelError::Closed.into());
        };
        let n = flow.push(message.to_bytes())?;
        self.pump(session);
        Ok(n)
    }

    /// Queues a chunk of a `command/exec` process's output for `OUTPUT` records
    /// (`CMD-76`) and sends what the window lets go; returns its number, as
    /// [`Host::send`] does.
    ///
    /// # Errors
    /// [`ChannelError::Closed`] if the session is not established or does not carry
    /// records (send a `command/exec/outputDelta` then); [`ChannelError::BadRecord`] for a
    /// process id that is not 1..=64 bytes.
    pub fn send_output(
        &mut self,
        session: SessionId,
        stderr: bool,
        cap_reached: bool,
        process_id: &str,
        data: Vec<u8>,
    ) -> Result<u64, Error> {
        let Some(SessionState::Established { flow, .. }) = self.sessions.get_mut(&session) else {
            return Err(ChannelError::Closed.into());
        };
        let n = flow.push_output(stderr, cap_reached, process_id, data)?;
        self.pump(session);
        Ok(n)
    }

    /// How many messages of `session` have left whole ([`Host::send`] numbers them from
    /// 1); `None` for a session that is not established.
    pub fn released(&self, session: SessionId) -> Option<u64> {
        match self.sessions.get(&session) {
            Some(SessionState::Established { flow, .. }) => Some(flow.released()),
            _ => None,
        }
    }

    /// How `session` carries messages (`CHAN-31`); `None` if it is not established.
    pub fn framing(&self, session: SessionId) -> Option<Framing> {
        match self.sessions.get(&session) {
            Some(SessionState::Established { flow, .. }) => Some(flow.framing()),
            _ => None,
        }
    }

    /// Encrypts `plaintext` as one transport message of `session` without checking that
    /// it is a valid command message: for conformance runners that play a faulty host.
    ///
    /// # Errors
    /// As [`Host::send`].
    pub fn send_plaintext(&mut self, session: SessionId, plaintext: &[u8]) -> Result<(), Error> {
        let Some(SessionState::Established { transport, .. }) = self.sessions.get_mut(&session)
        else {
            return Err(ChannelError::Closed.into());
        };
        let mut payload = Vec::new();
        match transport.encrypt(plaintext, &mut payload) {
            Ok(_) => {
                self.transmits
                    .push_back(RelayFrame::Data { session, payload });
                Ok(())
            }
            Err(e) => {
                if transport.is_closed() {
                    self.end(session, e.close_code(), false);
                }
                Err(e.into())
            }
        }
    }

    /// Ends `session` with `code`, telling the controller.
    pub fn close(&mut self, session: SessionId, code: CloseCode) {
        self.end(session, code, false);
    }

    fn release(&mut self, state: SessionState) {
        if let SessionState::Established { mut flow, .. } = state {
            flow.close(&mut self.ledger);
        }
    }

    fn end(&mut self, session: SessionId, code: CloseCode, by_peer: bool) {
        if let Some(state) = self.sessions.remove(&session) {
            self.release(state);
            if !by_peer {
                self.transmits
                    .push_back(RelayFrame::Close { session, code });
            }
            self.events.push_back(HostEvent::Closed {
                session,
                code,
                by_peer,
            });
        }
    }

    /// Expires pairings whose confirmation was not answered in time (`CHAN-24`).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| match s {
                SessionState::AwaitingConfirmation { deadline, .. } if *deadline <= now => {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        expired.sort();
        for session in expired {
            self.sessions.remove(&session);
            self.refuse(
                session,
                RefusalReason::Refusal(Refusal::ConfirmationRejected),
            );
        }
    }

    /// The next instant at which [`Host::handle_timeout`] has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| match s {
                SessionState::AwaitingConfirmation { deadline, .. } => Some(*deadline),
                SessionState::Established { .. } => None,
            })
            .min()
    }

    /// The next frame to send to the relay.
    pub fn poll_transmit(&mut self) -> Option<RelayFrame> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }
}
