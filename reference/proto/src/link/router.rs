//! The relay's routing state machine (`spec/03-relay-link.md`).
//!
//! [`Relay`] is everything a Tether relay decides, with no sockets, tasks or clocks: it
//! authenticates links, registers hosts, routes sessions between controllers and hosts of
//! the same workspace, bounds every queue and runs the link timers. A driver (the tokio
//! crate `tether-relay`) owns the WebSockets and feeds the state machine.
//!
//! # Link states (relay view)
//!
//! ```text
//!                   handle_link_opened
//!                          │
//!                          ▼
//!                 ┌─────────────────┐  HELLO role=controller, version 1 (LINK-3),
//!                 │   AWAIT_HELLO   │  credential ok (LINK-10), remote access on
//!                 └─────────────────┘  (LINK-11) ─────────────── send READY ──────┐
//!                          │ HELLO role=host, same checks,                         │
//!                          │ registration msg 1 read with a fresh                  │
//!                          │ ephemeral (LINK-12, LINK-13)                          │
//!                          │ send HOST_CHALLENGE                                   │
//!                          ▼                                                       │
//!                 ┌─────────────────┐                                              │
//!                 │   AWAIT_PROOF   │  HOST_PROOF verifies (LINK-12): register the │
//!                 └─────────────────┘  host key, replacing an older link of the    │
//!                          │           same key (LINK-14); send READY              │
//!                          ▼                                                       │
//!                 ┌─────────────────┐ ◀────────────────────────────────────────────┘
//!                 │      READY      │  controller: OPEN DATA CLOSE PING PONG GOAWAY
//!                 └─────────────────┘  host:             DATA CLOSE PING PONG GOAWAY
//!                          │
//!   any violation, timer or queue bound, from any state above:
//!   send GOAWAY(code) as the last frame, emit CloseLink (LINK-27);
//!   the client's own GOAWAY: emit PeerGoingAway
//!                          ▼
//!                 ┌─────────────────┐  accepts nothing more (LINK-27); every session
//!                 │     CLOSED      │  on it gets CLOSE PEER_GONE at its other end
//!                 └─────────────────┘  (LINK-21); removed by handle_link_closed
//! ```
//!
//! Before `READY` only the frame named on the arrow is allowed (`LINK-8`): `HELLO` in
//! `AWAIT_HELLO`, `HOST_PROOF` in `AWAIT_PROOF`, and in either a client's `GOAWAY`.
//! Frames only a relay sends (`HOST_CHALLENGE`, `READY`, `INCOMING`) are unexpected from a
//! client in every state, as is a second `HELLO` and `OPEN` from a host.
//!
//! # Session states
//!
//! ```text
//!   controller OPEN ─ checks (LINK-15, 16, 20, 17, 16, 20) ─ fail ─▶ CLOSE(code) to the
//!        │                                                           controller only
//!        │ ok: INCOMING to the host (LINK-18)
//!        ▼
//!   ┌──────────┐  DATA either way, forwarded unmodified and in order (LINK-18, LINK-26)
//!   │   OPEN   │
//!   └──────────┘
//!        │ CLOSE from either end ─────────── forwarded with the same code (LINK-21)
//!        │ link of one end closes ────────── CLOSE PEER_GONE to the other end (LINK-21)
//!        │ > 256 KiB undelivered one way ─── CLOSE SLOW_READER to both ends, queued
//!        │                                   DATA of both directions dropped; the
//!        │                                   whole session ends (LINK-22)
//!        │ host replaced ─────────────────── CLOSE PEER_GONE to the controller (LINK-14)
//!        ▼
//!     (forgotten)
//! ```
//!
//! # Bounds
//!
//! Memory stays bounded whatever peers send: a frame is at most 65544 bytes (512 before
//! `READY`); the relay queues at most [`RelayLimits::session_queue_bytes`] of `DATA` per
//! session and direction and at most [`RelayLimits::link_queue_bytes`] of frames per link
//! (plus the one final `GOAWAY`, at most 259 bytes); sessions are bounded per link; events
//! wait in [`Relay::poll_event`] until the driver takes them.
//!
//! # Decisions where `spec/03` is silent or ambiguous
//!
//! Each is marked `SPEC:` at the point where the code makes it.
//!
//! 1. Allowed frames before `READY` (`LINK-8`): only `HELLO` (in `AWAIT_HELLO`) and
//!    `HOST_PROOF` (in `AWAIT_PROOF`), plus a client's `GOAWAY` in any state. `PING` before
//!    `READY` is unexpected: the auth deadline (10 s) is shorter than the keepalive (20 s).
//!    Which check wins when several apply is now `LINK-40`: size, text, size before
//!    `READY`, a `HELLO`'s version byte (`LINK-41`), decoding, then the state.
//! 2. Order of the `OPEN` checks (now `LINK-39`; no longer a decision of this code):
//!    handshake length (`LINK-15`), id in use on the controller's link (`LINK-16`),
//!    controller session limit (`LINK-20`), routing (`LINK-17`), id in use on the host
//!    (`LINK-16`), host session limit (`LINK-20`). Routing comes before every host-specific
//!    check, so that a controller cannot learn anything (a `SESSION_LIMIT`, a
//!    `SESSION_ID_IN_USE`) about a host outside its workspace.
//! 3. An `OPEN` reusing an id already open on the same controller link gets `CLOSE
//!    SESSION_ID_IN_USE` and the existing session is left untouched, as `spec/03` says.
//!    That `CLOSE` names the id of the open session; `LINK-43` now tells the controller to
//!    take it as the refusal of its new `OPEN` and keep the existing session, as the relay
//!    and the host do.
//! 4. `LINK-22` counts `DATA` payload bytes; `LINK-23` counts every queued frame's encoded
//!    bytes. The per-session check is made first. A `DATA` that would pass the bound is not
//!    queued: it triggers the close. Exactly the bound is still held.
//! 5. `GOAWAY SLOW_READER` (`LINK-23`) discards what the link has not taken, so the `GOAWAY`
//!    is not stuck behind 4 MiB. Other `GOAWAY`s go after what is already queued.
//! 6. `LINK-21` "when a link closes" is taken as "when the relay stops serving it": the other
//!    ends get `CLOSE PEER_GONE` as soon as `GOAWAY` is queued or the client's `GOAWAY`
//!    arrives, not when the WebSocket finally closes. `DATA` queued before that `CLOSE` is
//!    still delivered, in order, before it (now `LINK-42`), as are the frames queued
//!    before the relay's own `GOAWAY` on a link (except `SLOW_READER`, decision 5).
//! 7. `LINK-25` "sent" is "queued" here (the core does not see the socket). The relay pings
//!    only `READY` links; every frame counts as sending, `PING` and `PONG` included (now in
//!    `LINK-25`'s text). Timers start when the driver calls [`Relay::handle_link_opened`],
//!    which it does once the WebSocket upgrade has completed (`LINK-44`).
//! 8. `LINK-24` "received" is any frame, even one that is then refused at session level.
//! 9. The relay draws the registration ephemeral, and does any DH, only after the credential
//!    checks pass (`LINK-10`, `LINK-11`): an unauthenticated peer costs no DH.
//! 10. A client's `CLOSE` is forwarded with its code unchanged, whatever the code (including
//!     codes of the relay's own range); a client's `GOAWAY` is not answered.
//! 11. A host replaced under `LINK-14` is replaced only once the new registration's proof
//!     verified, never on a `HELLO` alone.
//! 12. Switching remote access off at run time ([`Relay::set_workspace`]) ends the
//!     workspace's links with `GOAWAY REMOTE_ACCESS_DISABLED`; changing or removing a
//!     credential ends them with `AUTH_FAILED`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};
use subtle::ConstantTimeEq;

use super::codes::CloseCode;
use super::error::LinkError;
use super::frame::{RelayFrame, Role, SessionId};
use super::registration::RelayRegistration;
use crate::limits;

/// A link (one WebSocket) as the relay numbers it; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// The limits a [`Relay`] enforces. [`Default`] gives the values of [`crate::limits`];
/// tests shrink them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// A link not `READY` this long after opening gets `GOAWAY AUTH_TIMEOUT` (`LINK-7`).
    pub auth_deadline: Duration,
    /// A link on which nothing arrived for this long gets `GOAWAY IDLE_TIMEOUT` (`LINK-24`).
    pub idle_timeout: Duration,
    /// The relay sends `PING` on a `READY` link it has sent nothing to for this long
    /// (`LINK-25`).
    pub keepalive_interval: Duration,
    /// Largest frame accepted before `READY` (`LINK-6`).
    pub pre_auth_max_frame_len: usize,
    /// Largest frame accepted at all (`LINK-5`).
    pub max_frame_len: usize,
    /// Sessions per registered host (`LINK-20`).
    pub max_sessions_per_host: usize,
    /// Sessions per controller link (`LINK-20`).
    pub max_sessions_per_controller_link: usize,
    /// Undelivered `DATA` payload bytes per session and direction (`LINK-22`).
    pub session_queue_bytes: usize,
    /// Undelivered frame bytes per link, all frames counted (`LINK-23`).
    pub link_queue_bytes: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            auth_deadline: limits::AUTH_DEADLINE,
            idle_timeout: limits::LINK_IDLE_TIMEOUT,
            keepalive_interval: limits::KEEPALIVE_INTERVAL,
            pre_auth_max_frame_len: limits::PRE_AUTH_MAX_FRAME_LEN,
            max_frame_len: limits::MAX_FRAME_LEN,
            max_sessions_per_host: limits::MAX_SESSIONS_PER_HOST,
            max_sessions_per_controller_link: limits::MAX_SESSIONS_PER_CONTROLLER_LINK,
            session_queue_bytes: limits::SESSION_QUEUE_BYTES,
            link_queue_bytes: limits::LINK_QUEUE_BYTES,
        }
    }
}

/// BLAKE2s-256 of a workspace credential: what a relay stores instead of the credential.
pub fn credential_digest(credential: &[u8]) -> [u8; 32] {
    Blake2s256::digest(credential).into()
}

/// One workspace the relay serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceConfig {
    /// BLAKE2s-256 of the workspace credential ([`credential_digest`]).
    pub credential_digest: [u8; 32],
    /// Whether links of this workspace may reach `READY` (`LINK-11`).
    pub remote_access: bool,
}

impl WorkspaceConfig {
    /// A workspace with the given credential (stored as its digest).
    pub fn new(credential: &[u8], remote_access: bool) -> Self {
        Self {
            credential_digest: credential_digest(credential),
            remote_access,
        }
    }
}

/// What a [`Relay`] serves and how strictly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayConfig {
    /// Workspace id → its configuration.
    pub workspaces: HashMap<String, WorkspaceConfig>,
    /// The limits in force.
    pub limits: RelayLimits,
}

impl RelayConfig {
    /// Adds (or replaces) a workspace.
    #[must_use]
    pub fn with_workspace(mut self, id: &str, workspace: WorkspaceConfig) -> Self {
        self.workspaces.insert(id.to_owned(), workspace);
        self
    }

    /// Replaces the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: RelayLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// Something the driver should act on or count (`LINK-29`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// A link reached `READY`.
    LinkReady {
        /// The link.
        link: LinkId,
        /// What it authenticated as.
        role: Role,
        /// Its workspace.
        workspace: String,
    },
    /// A host proved its key and is now reachable at `link` (`LINK-12`).
    HostRegistered {
        /// The host's link.
        link: LinkId,
        /// Its workspace.
        workspace: String,
        /// Its static public key.
        host_key: [u8; 32],
    },
    /// The relay queued `GOAWAY(code)` as the link's last frame. The driver sends what
    /// [`Relay::poll_transmit`] still gives for the link, closes the WebSocket (`LINK-27`)
    /// and then calls [`Relay::handle_link_closed`]. For `SLOW_READER` the queue holds only
    /// the `GOAWAY`, which the driver sends only if the WebSocket takes it without waiting
    /// (`LINK-23`); a driver should bound the flush of any closing link by a short timeout.
    CloseLink {
        /// The link.
        link: LinkId,
        /// The `GOAWAY` code.
        code: CloseCode,
    },
    /// The client sent `GOAWAY(code)`; the relay accepts nothing more from it. The driver
    /// closes the WebSocket (if the client has not) and calls [`Relay::handle_link_closed`].
    PeerGoingAway {
        /// The link.
        link: LinkId,
        /// The client's code.
        code: CloseCode,
    },
    /// The relay refused or dropped something, for counters by code (`LINK-29`): a
    /// `GOAWAY` it sent, or a `CLOSE` it originated for a session.
    Refused {
        /// The link that got the `GOAWAY` or `CLOSE`.
        link: LinkId,
        /// The session, for a `CLOSE`.
        session: Option<SessionId>,
        /// The code sent.
        code: CloseCode,
        /// The requirement enforced.
        requirement: &'static str,
    },
}

/// Direction of a session's `DATA`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToHost,
    ToController,
}

/// Internal, never reused, key of a session.
type SessionKey = u64;

struct Session {
    id: SessionId,
    controller: LinkId,
    host: LinkId,
    /// Undelivered `DATA` payload bytes, indexed by [`Dir`] (`LINK-22`).
    undelivered: [usize; 2],
}

impl Session {
    fn undelivered(&self, dir: Dir) -> usize {
        let [to_host, to_controller] = self.undelivered;
        match dir {
            Dir::ToHost => to_host,
            Dir::ToController => to_controller,
        }
    }

    fn undelivered_mut(&mut self, dir: Dir) -> &mut usize {
        let [to_host, to_controller] = &mut self.undelivered;
        match dir {
            Dir::ToHost => to_host,
            Dir::ToController => to_controller,
        }
    }
}

enum LinkState {
    AwaitHello,
    AwaitProof {
        workspace: String,
        registration: Box<RelayRegistration>,
    },
    Ready {
        workspace: String,
        /// `Some(key)` for a host, `None` for a controller.
        host_key: Option<[u8; 32]>,
    },
    Closed,
}

struct Queued {
    bytes: Vec<u8>,
    /// For `DATA`: the session, direction and payload length it counts against.
    data: Option<(SessionKey, Dir, usize)>,
}

struct Link {
    opened: Instant,
    last_received: Instant,
    last_sent: Instant,
    state: LinkState,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// Sessions on this link, by the id the link knows them by (`LINK-16`, `LINK-19`).
    sessions: HashMap<SessionId, SessionKey>,
    next_ping: u64,
}

impl Link {
    fn is_ready(&self) -> bool {
        matches!(self.state, LinkState::Ready { .. })
    }
}

/// The relay's routing state machine.
///
/// # Call order
///
/// A driver owns every WebSocket and one `Relay`, and for each turn of its loop:
///
/// 1. calls [`Relay::handle_link_opened`] when a WebSocket is accepted (keep the
///    [`LinkId`]), [`Relay::handle_frame`] for every binary message,
///    [`Relay::handle_text_message`] for a text message, and [`Relay::handle_link_closed`]
///    when a WebSocket is gone (whoever closed it);
/// 2. calls [`Relay::handle_timeout`] when the instant last given by
///    [`Relay::poll_timeout`] has passed;
/// 3. drains [`Relay::poll_event`] (close the links named by [`RelayEvent::CloseLink`] and
///    [`RelayEvent::PeerGoingAway`] after flushing them; count [`RelayEvent::Refused`]);
/// 4. for each link of [`Relay::links_with_pending`], sends the frames of
///    [`Relay::poll_transmit`] as binary messages, taking a frame only when the WebSocket
///    can accept it (taking it counts as delivered: it leaves the bounded queues);
/// 5. re-reads [`Relay::poll_timeout`] and sleeps until then or the next input.
///
/// Every input takes the current time; the relay never reads a clock. Randomness for
/// host registration (`LINK-13`) comes from the `rng` closure given to
/// [`Relay::handle_frame`].
pub struct Relay {
    config: RelayConfig,
    links: BTreeMap<LinkId, Link>,
    next_link: u64,
    sessions: HashMap<SessionKey, Session>,
    next_session: SessionKey,
    /// (workspace, host key) → the host's link (`LINK-14`, `LINK-17`).
    hosts: HashMap<(String, [u8; 32]), LinkId>,
    /// Links with frames queued.
    pending: BTreeSet<LinkId>,
    events: VecDeque<RelayEvent>,
    /// Links closed whose sessions still need `CLOSE PEER_GONE` at the other end.
    dead: Vec<LinkId>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("links", &self.links.len())
            .field("sessions", &self.sessions.len())
            .field("hosts", &self.hosts.len())
            .finish_non_exhaustive()
    }
}

/// Digest compared against when the workspace is unknown, so that an unknown workspace
/// costs the same as a wrong credential (`LINK-10`).
const NO_WORKSPACE_DIGEST: [u8; 32] = [0u8; 32];

impl Relay {
    /// A relay serving `config`.
    pub fn new(config: RelayConfig) -> Self {
        Self {
            config,
            links: BTreeMap::new(),
            next_link: 0,
            sessions: HashMap::new(),
            next_session: 0,
            hosts: HashMap::new(),
            pending: BTreeSet::new(),
            events: VecDeque::new(),
            dead: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Adds, changes or (with `None`) removes a workspace. Links of a removed workspace or
    /// one whose credential changed get `GOAWAY AUTH_FAILED` (`LINK-10`); links of a
    /// workspace whose remote access was switched off get `GOAWAY REMOTE_ACCESS_DISABLED`
    /// (`LINK-11`).
    pub fn set_workspace(&mut self, id: &str, workspace: Option<WorkspaceConfig>, now: Instant) {
        let old = match &workspace {
            Some(ws) => self.config.workspaces.insert(id.to_owned(), ws.clone()),
            None => self.config.workspaces.remove(id),
        };
        let error = match (&old, &workspace) {
            (Some(_), None) => Some(LinkError::AuthFailed),
            (Some(old), Some(new)) if old.credential_digest != new.credential_digest => {
                Some(LinkError::AuthFailed)
            }
            (_, Some(new)) if !new.remote_access => Some(LinkError::RemoteAccessDisabled),
            _ => None,
        };
        if let Some(error) = error {
            let affected: Vec<LinkId> = self
                .links
                .iter()
                .filter(|(_, l)| match &l.state {
                    LinkState::AwaitProof { workspace, .. }
                    | LinkState::Ready { workspace, .. } => workspace == id,
                    LinkState::AwaitHello | LinkState::Closed => false,
                })
                .map(|(id, _)| *id)
                .collect();
            for link in affected {
                self.goaway(link, &error, now);
            }
            self.settle(now);
        }
    }

    /// A WebSocket was accepted at `now`; returns its id. The auth deadline starts now
    /// (`LINK-7`).
    pub fn handle_link_opened(&mut self, now: Instant) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        self.links.insert(
            id,
            Link {
                opened: now,
                last_received: now,
                last_sent: now,
                state: LinkState::AwaitHello,
                queue: VecDeque::new(),
                queued_bytes: 0,
                sessions: HashMap::new(),
                next_ping: 0,
            },
        );
        id
    }

    /// A WebSocket text message arrived: `GOAWAY PROTOCOL_ERROR` (`LINK-1`), in every state
    /// and whatever its length; the 512-byte bound before `READY` is for frames only
    /// (`LINK-40` step 2, before `LINK-6`).
    pub fn handle_text_message(&mut self, link: LinkId, now: Instant) {
        self.goaway_code(
            link,
            CloseCode::PROTOCOL_ERROR,
            "LINK-1",
            "text message",
            now,
        );
        self.settle(now);
    }

    /// A binary message (one relay frame, `LINK-1`) arrived on `link` at `now`.
    ///
    /// Judged in the order of `LINK-40`: size (`LINK-5`), size before `READY` (`LINK-6`), a
    /// `HELLO`'s version byte (`LINK-41`), decoding (`LINK-4`), then the link's state
    /// (`LINK-8`). A text message is [`Relay::handle_text_message`], whatever its length.
    ///
    /// `rng` is called once per host `HELLO` that passes authentication, for the relay's
    /// registration ephemeral; it must return fresh CSPRNG output every time (`LINK-13`).
    pub fn handle_frame(
        &mut self,
        link: LinkId,
        bytes: &[u8],
        now: Instant,
        rng: &mut dyn FnMut() -> [u8; 32],
    ) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        // LINK-27: after GOAWAY (either way) the link accepts nothing more.
        if matches!(l.state, LinkState::Closed) {
            return;
        }
        // LINK-24: anything received resets the idle timer (SPEC: decision 8).
        l.last_received = now;
        let ready = l.is_ready();
        let limits = &self.config.limits;
        if bytes.len() > limits.max_frame_len {
            // LINK-5
            self.goaway(link, &LinkError::FrameTooLarge { len: bytes.len() }, now);
        } else if !ready && bytes.len() > limits.pre_auth_max_frame_len {
            // LINK-6: judged by the state the frame is processed in (LINK-38), so a frame
            // pipelined after an accepted HELLO is bound only by LINK-5.
            self.goaway(
                link,
                &LinkError::PreAuthFrameTooLarge { len: bytes.len() },
                now,
            );
        } else if let Some(version) = RelayFrame::peek_hello_version(bytes)
            && version != limits::PROTOCOL_VERSION
        {
            // LINK-41, LINK-3: the version byte is read before the rest of the frame, so a
            // later version's HELLO is never misread as a malformed v1 one (LINK-40 step 4).
            self.goaway(link, &LinkError::UnsupportedVersion { version }, now);
        } else {
            match RelayFrame::decode(bytes) {
                // LINK-4: a malformed frame ends the link.
                Err(e) => {
                    self.goaway_code(link, e.close_code(), e.requirement(), &e.to_string(), now)
                }
                Ok(frame) => self.on_frame(link, frame, bytes, now, rng),
            }
        }
        self.settle(now);
    }

    /// The WebSocket of `link` is gone. Every session on it gets `CLOSE PEER_GONE` at its
    /// other end (`LINK-21`); a host's registration ends. Unknown ids are ignored.
    pub fn handle_link_closed(&mut self, link: LinkId, now: Instant) {
        if let Some(l) = self.links.get_mut(&link) {
            let old = std::mem::replace(&mut l.state, LinkState::Closed);
            self.deregister(link, &old);
            self.dead.push(link);
            self.settle(now);
        }
        if let Some(l) = self.links.remove(&link) {
            debug_assert!(l.sessions.is_empty());
        }
        self.pending.remove(&link);
    }

    /// Runs the timers due at `now`: auth deadline (`LINK-7`), idle timeout (`LINK-24`),
    /// keepalive `PING` (`LINK-25`).
    pub fn handle_timeout(&mut self, now: Instant) {
        let limits = self.config.limits.clone();
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for link in ids {
            let Some(l) = self.links.get_mut(&link) else {
                continue;
            };
            if matches!(l.state, LinkState::Closed) {
                continue;
            }
            if !l.is_ready() && due(l.opened, limits.auth_deadline, now) {
                // LINK-7
                self.goaway(link, &LinkError::AuthTimeout, now);
            } else if due(l.last_received, limits.idle_timeout, now) {
                // LINK-24
                self.goaway(link, &LinkError::IdleTimeout, now);
            } else if l.is_ready() && due(l.last_sent, limits.keepalive_interval, now) {
                // LINK-25: the relay pings a link it has sent nothing to for 20 s.
                let value = l.next_ping;
                l.next_ping = l.next_ping.wrapping_add(1);
                self.push_frame(link, &RelayFrame::Ping { value }, now);
            }
        }
        self.settle(now);
    }

    /// The next instant at which [`Relay::handle_timeout`] has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let limits = &self.config.limits;
        self.links
            .values()
            .filter(|l| !matches!(l.state, LinkState::Closed))
            .flat_map(|l| {
                let auth = (!l.is_ready())
                    .then(|| l.opened.checked_add(limits.auth_deadline))
                    .flatten();
                let idle = l.last_received.checked_add(limits.idle_timeout);
                let keepalive = l
                    .is_ready()
                    .then(|| l.last_sent.checked_add(limits.keepalive_interval))
                    .flatten();
                [auth, idle, keepalive]
            })
            .flatten()
            .min()
    }

    /// The next frame to send on `link`, encoded. Taking it counts as delivering it: its
    /// bytes leave the link's and the session's bounds (`LINK-22`, `LINK-23`).
    pub fn poll_transmit(&mut self, link: LinkId) -> Option<Vec<u8>> {
        let l = self.links.get_mut(&link)?;
        let Some(q) = l.queue.pop_front() else {
            self.pending.remove(&link);
            return None;
        };
        l.queued_bytes = l.queued_bytes.saturating_sub(q.bytes.len());
        if l.queue.is_empty() {
            self.pending.remove(&link);
        }
        if let Some((key, dir, len)) = q.data
            && let Some(s) = self.sessions.get_mut(&key)
        {
            let n = s.undelivered_mut(dir);
            *n = n.saturating_sub(len);
        }
        Some(q.bytes)
    }

    /// The links that have frames waiting in [`Relay::poll_transmit`], in id order.
    pub fn links_with_pending(&self) -> Vec<LinkId> {
        self.pending.iter().copied().collect()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// Bytes queued for `link` and not yet taken by [`Relay::poll_transmit`].
    pub fn queued_bytes(&self, link: LinkId) -> usize {
        self.links.get(&link).map_or(0, |l| l.queued_bytes)
    }

    /// Links the relay knows (until [`Relay::handle_link_closed`]).
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The link of the host registered with `host_key` in `workspace`, if any.
    pub fn host_link(&self, workspace: &str, host_key: &[u8; 32]) -> Option<LinkId> {
        self.hosts.get(&(workspace.to_owned(), *host_key)).copied()
    }

    // ----- frame handling -------------------------------------------------------------

    fn on_frame(
        &mut self,
        link: LinkId,
        frame: RelayFrame,
        bytes: &[u8],
        now: Instant,
        rng: &mut dyn FnMut() -> [u8; 32],
    ) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let unexpected = LinkError::UnexpectedFrame {
            frame_type: frame.frame_type(),
        };
        match (&l.state, frame) {
            (LinkState::Closed, _) => {}
            // A client leaving (LINK-27): allowed in every state, not answered (SPEC: 1, 10).
            (_, RelayFrame::GoAway { code, .. }) => self.peer_going_away(link, code),
            (
                LinkState::AwaitHello,
                RelayFrame::Hello {
                    version,
                    role,
                    workspace,
                    credential,
                    registration,
                },
            ) => self.on_hello(
                link,
                version,
                role,
                workspace,
                &credential,
                &registration,
                now,
                rng,
            ),
            (LinkState::AwaitProof { .. }, RelayFrame::HostProof { message }) => {
                self.on_proof(link, &message, now);
            }
            (
                LinkState::Ready {
                    host_key: None,
                    workspace,
                },
                RelayFrame::Open {
                    session,
                    host_key,
                    handshake,
                },
            ) => {
                let workspace = workspace.clone();
                self.on_open(link, &workspace, session, host_key, handshake, now);
            }
            (LinkState::Ready { .. }, RelayFrame::Data { session, payload }) => {
                self.on_data(link, session, payload.len(), bytes, now);
            }
            (LinkState::Ready { .. }, RelayFrame::Close { session, code }) => {
                self.on_close(link, session, code, now);
            }
            (LinkState::Ready { .. }, RelayFrame::Ping { value }) => {
                // LINK-25: answer with the same value.
                self.push_frame(link, &RelayFrame::Pong { value }, now);
            }
            (LinkState::Ready { .. }, RelayFrame::Pong { .. }) => {}
            // LINK-8 (SPEC: decision 1): everything else, including a first frame other than
            // HELLO, PING before READY, frames only a relay sends, a second HELLO and OPEN
            // from a host.
            _ => self.goaway(link, &unexpected, now),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        link: LinkId,
        version: u8,
        role: Role,
        workspace: String,
        credential: &[u8],
        registration: &[u8],
        now: Instant,
        rng: &mut dyn FnMut() -> [u8; 32],
    ) {
        // LINK-3 (handle_frame has already refused a frame whose version byte is not 1,
        // LINK-41; a value built in code may still carry one).
        if version != limits::PROTOCOL_VERSION {
            self.goaway(link, &LinkError::UnsupportedVersion { version }, now);
            return;
        }
        // LINK-9 (the decoder checks this too; a value built in code may not).
        let registration_ok = match role {
            Role::Host => registration.len() == super::frame::REGISTRATION_MSG1_LEN,
            Role::Controller => registration.is_empty(),
        };
        if !registration_ok {
            self.goaway(link, &LinkError::BadHelloRegistration, now);
            return;
        }
        // LINK-10: hash the credential and compare digests in constant time; an unknown
        // workspace is compared against a fixed digest and fails the same way.
        let ws = self.config.workspaces.get(&workspace);
        let expected = ws.map_or(NO_WORKSPACE_DIGEST, |w| w.credential_digest);
        let digest = credential_digest(credential);
        let credential_ok: bool = digest.ct_eq(&expected).into();
        let Some(ws) = ws.filter(|_| credential_ok) else {
            self.goaway(link, &LinkError::AuthFailed, now);
            return;
        };
        // LINK-11: only after a valid credential.
        if !ws.remote_access {
            self.goaway(link, &LinkError::RemoteAccessDisabled, now);
            return;
        }
        match role {
            Role::Controller => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.state = LinkState::Ready {
                        workspace: workspace.clone(),
                        host_key: None,
                    };
                }
                self.push_frame(link, &RelayFrame::Ready, now);
                self.events.push_back(RelayEvent::LinkReady {
                    link,
                    role,
                    workspace,
                });
            }
            Role::Host => {
                // LINK-12, LINK-13: a fresh ephemeral for every registration, drawn only now
                // that the credential passed (SPEC: decision 9).
                let challenge = RelayRegistration::new(&workspace, rng()).and_then(|mut r| {
                    let msg2 = r.read_hello(registration)?;
                    Ok((r, msg2))
                });
                match challenge {
                    Err(e) => self.goaway(link, &e, now),
                    Ok((registration, msg2)) => {
                        if let Some(l) = self.links.get_mut(&link) {
                            l.state = LinkState::AwaitProof {
                                workspace,
                                registration: Box::new(registration),
                            };
                        }
                        self.push_frame(
                            link,
                            &RelayFrame::HostChallenge {
                                message: msg2.to_vec(),
                            },
                            now,
                        );
                    }
                }
            }
        }
    }

    fn on_proof(&mut self, link: LinkId, message: &[u8], now: Instant) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let LinkState::AwaitProof {
            workspace,
            registration,
        } = std::mem::replace(&mut l.state, LinkState::AwaitHello)
        else {
            return;
        };
        // LINK-12: the proof must verify against this link's challenge.
        let host_key = match registration.read_proof(message) {
            Ok(key) => key,
            Err(e) => {
                self.goaway(link, &e, now);
                return;
            }
        };
        if let Some(l) = self.links.get_mut(&link) {
            l.state = LinkState::Ready {
                workspace: workspace.clone(),
                host_key: Some(host_key),
            };
        }
        // LINK-14: one link per (workspace, host key); the newer registration wins, once
        // its proof verified (SPEC: decision 11).
        if let Some(&old) = self.hosts.get(&(workspace.clone(), host_key))
            && old != link
        {
            self.goaway(old, &LinkError::Replaced, now);
        }
        self.hosts.insert((workspace.clone(), host_key), link);
        self.push_frame(link, &RelayFrame::Ready, now);
        self.events.push_back(RelayEvent::LinkReady {
            link,
            role: Role::Host,
            workspace: workspace.clone(),
        });
        self.events.push_back(RelayEvent::HostRegistered {
            link,
            workspace,
            host_key,
        });
    }

    fn on_open(
        &mut self,
        controller: LinkId,
        workspace: &str,
        session: SessionId,
        host_key: [u8; 32],
        handshake: Vec<u8>,
        now: Instant,
    ) {
        // LINK-15 (the decoder checks this too).
        if handshake.is_empty() || handshake.len() > limits::MAX_HANDSHAKE_LEN {
            self.goaway(
                controller,
                &LinkError::BadHandshakeLength {
                    len: handshake.len(),
                },
                now,
            );
            return;
        }
        let Some(c) = self.links.get(&controller) else {
            return;
        };
        // LINK-39 step 1, LINK-16 (SPEC: decision 3): the id is in use on the controller's
        // own link; the existing session is left untouched.
        if c.sessions.contains_key(&session) {
            self.refuse_session(controller, session, &LinkError::SessionIdInUse, now);
            return;
        }
        // LINK-39 step 2, LINK-20: controller link limit.
        if c.sessions.len() >= self.config.limits.max_sessions_per_controller_link {
            self.refuse_session(controller, session, &LinkError::SessionLimit, now);
            return;
        }
        // LINK-39 step 3, LINK-17: only a host registered in the controller's own
        // workspace, checked before anything host-specific (steps 4 and 5 never look at a
        // host of another workspace); the same answer for a host that is offline and one
        // in another workspace.
        let Some(host) = self.hosts.get(&(workspace.to_owned(), host_key)).copied() else {
            self.refuse_session(controller, session, &LinkError::HostUnreachable, now);
            return;
        };
        let Some(h) = self.links.get(&host) else {
            self.refuse_session(controller, session, &LinkError::HostUnreachable, now);
            return;
        };
        // LINK-39 step 4, LINK-16: the id is in use on the host (opened by another
        // controller).
        if h.sessions.contains_key(&session) {
            self.refuse_session(controller, session, &LinkError::SessionIdInUse, now);
            return;
        }
        // LINK-39 step 5, LINK-20: host limit.
        if h.sessions.len() >= self.config.limits.max_sessions_per_host {
            self.refuse_session(controller, session, &LinkError::SessionLimit, now);
            return;
        }
        let key = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            key,
            Session {
                id: session,
                controller,
                host,
                undelivered: [0, 0],
            },
        );
        if let Some(c) = self.links.get_mut(&controller) {
            c.sessions.insert(session, key);
        }
        if let Some(h) = self.links.get_mut(&host) {
            h.sessions.insert(session, key);
        }
        // LINK-18: INCOMING with the same session id and handshake.
        self.push_frame(host, &RelayFrame::Incoming { session, handshake }, now);
    }

    fn on_data(
        &mut self,
        link: LinkId,
        session: SessionId,
        payload_len: usize,
        bytes: &[u8],
        now: Instant,
    ) {
        // LINK-19: a link addresses only sessions it owns.
        let Some(key) = self
            .links
            .get(&link)
            .and_then(|l| l.sessions.get(&session))
            .copied()
        else {
            self.refuse_session(link, session, &LinkError::UnknownSession, now);
            return;
        };
        let Some(s) = self.sessions.get(&key) else {
            return;
        };
        let (to, dir) = if s.controller == link {
            (s.host, Dir::ToHost)
        } else {
            (s.controller, Dir::ToController)
        };
        let held = s.undelivered(dir);
        // LINK-22: at most 256 KiB undelivered per session and direction (SPEC: decision 4).
        if held.saturating_add(payload_len) > self.config.limits.session_queue_bytes {
            self.end_session(key, LinkError::SessionSlowReader, now);
            return;
        }
        // LINK-18, LINK-26: the frame is forwarded byte for byte (DATA has one encoding,
        // so the received bytes are exactly the frame to send).
        if self.push(to, bytes.to_vec(), Some((key, dir, payload_len)), now)
            && let Some(s) = self.sessions.get_mut(&key)
        {
            *s.undelivered_mut(dir) += payload_len;
        }
    }

    fn on_close(&mut self, link: LinkId, session: SessionId, code: CloseCode, now: Instant) {
        // LINK-19: CLOSE for an unknown session is ignored.
        let Some(key) = self
            .links
            .get_mut(&link)
            .and_then(|l| l.sessions.remove(&session))
        else {
            return;
        };
        let Some(s) = self.sessions.remove(&key) else {
            return;
        };
        let other = if s.controller == link {
            s.host
        } else {
            s.controller
        };
        if let Some(o) = self.links.get_mut(&other) {
            o.sessions.remove(&s.id);
        }
        // LINK-21: forwarded with the same code (SPEC: decision 10); the relay forgets the
        // session.
        self.push_frame(other, &RelayFrame::Close { session, code }, now);
    }

    fn peer_going_away(&mut self, link: LinkId, code: CloseCode) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let old = std::mem::replace(&mut l.state, LinkState::Closed);
        self.deregister(link, &old);
        self.dead.push(link);
        self.events
            .push_back(RelayEvent::PeerGoingAway { link, code });
    }

    // ----- sessions -------------------------------------------------------------------

    /// Sends `CLOSE(error)` for `session` to `link` only (the session never existed there).
    fn refuse_session(
        &mut self,
        link: LinkId,
        session: SessionId,
        error: &LinkError,
        now: Instant,
    ) {
        let code = error.close_code();
        self.events.push_back(RelayEvent::Refused {
            link,
            session: Some(session),
            code,
            requirement: error.requirement(),
        });
        self.push_frame(link, &RelayFrame::Close { session, code }, now);
    }

    /// Ends an open session from the relay's side: `CLOSE(error)` to both ends. For
    /// `SLOW_READER` the session's queued `DATA` is dropped first (`LINK-22`).
    fn end_session(&mut self, key: SessionKey, error: LinkError, now: Instant) {
        let Some(s) = self.sessions.remove(&key) else {
            return;
        };
        for end in [s.controller, s.host] {
            if let Some(l) = self.links.get_mut(&end) {
                l.sessions.remove(&s.id);
                if error == LinkError::SessionSlowReader {
                    let mut dropped = 0;
                    l.queue.retain(|q| {
                        let keep = !matches!(q.data, Some((k, _, _)) if k == key);
                        if !keep {
                            dropped += q.bytes.len();
                        }
                        keep
                    });
                    l.queued_bytes = l.queued_bytes.saturating_sub(dropped);
                    if l.queue.is_empty() {
                        self.pending.remove(&end);
                    }
                }
            }
        }
        for end in [s.controller, s.host] {
            self.refuse_session(end, s.id, &error, now);
        }
    }

    // ----- links ----------------------------------------------------------------------

    fn goaway(&mut self, link: LinkId, error: &LinkError, now: Instant) {
        self.goaway_code(
            link,
            error.close_code(),
            error.requirement(),
            &error.to_string(),
            now,
        );
    }

    /// Queues `GOAWAY(code)` as the link's last frame and closes the link (`LINK-27`).
    fn goaway_code(
        &mut self,
        link: LinkId,
        code: CloseCode,
        requirement: &'static str,
        reason: &str,
        now: Instant,
    ) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if matches!(l.state, LinkState::Closed) {
            return;
        }
        let old = std::mem::replace(&mut l.state, LinkState::Closed);
        if code == CloseCode::SLOW_READER {
            // LINK-23 (SPEC: decision 5): the reader is not reading; what it has not taken is dropped (by
            // closing, LINK-26) so that the GOAWAY is not stuck behind it.
            l.queue.clear();
            l.queued_bytes = 0;
        }
        // LINK-27: reason at most 255 bytes; ours are short, cut at a char boundary anyway.
        let mut reason = reason.to_owned();
        while reason.len() > super::frame::MAX_REASON_LEN {
            reason.pop();
        }
        let frame = RelayFrame::GoAway { code, reason };
        if let Ok(bytes) = frame.to_bytes() {
            // The final GOAWAY bypasses the link bound (at most 259 bytes over it).
            l.queued_bytes += bytes.len();
            l.queue.push_back(Queued { bytes, data: None });
            l.last_sent = now;
            self.pending.insert(link);
        }
        self.deregister(link, &old);
        self.dead.push(link);
        self.events.push_back(RelayEvent::Refused {
            link,
            session: None,
            code,
            requirement,
        });
        self.events.push_back(RelayEvent::CloseLink { link, code });
    }

    /// Removes the host registration held by `link`, if it is still the registered one.
    fn deregister(&mut self, link: LinkId, old: &LinkState) {
        if let LinkState::Ready {
            workspace,
            host_key: Some(key),
        } = old
        {
            let entry = (workspace.clone(), *key);
            if self.hosts.get(&entry) == Some(&link) {
                self.hosts.remove(&entry);
            }
        }
    }

    /// Tears down the sessions of every closed link: `CLOSE PEER_GONE` to the other end
    /// (`LINK-21`, SPEC: decision 6). Runs until no link closes anymore (a `CLOSE` can overflow a link).
    fn settle(&mut self, now: Instant) {
        while let Some(link) = self.dead.pop() {
            let sessions: Vec<SessionKey> = self
                .links
                .get_mut(&link)
                .map(|l| l.sessions.drain().map(|(_, k)| k).collect())
                .unwrap_or_default();
            for key in sessions {
                let Some(s) = self.sessions.remove(&key) else {
                    continue;
                };
                let other = if s.controller == link {
                    s.host
                } else {
                    s.controller
                };
                if let Some(o) = self.links.get_mut(&other) {
                    o.sessions.remove(&s.id);
                }
                self.push_frame(
                    other,
                    &RelayFrame::Close {
                        session: s.id,
                        code: CloseCode::PEER_GONE,
                    },
                    now,
                );
            }
        }
    }

    fn push_frame(&mut self, link: LinkId, frame: &RelayFrame, now: Instant) -> bool {
        match frame.to_bytes() {
            Ok(bytes) => self.push(link, bytes, None, now),
            Err(_) => false,
        }
    }

    /// Queues a frame for `link`, unless the link is closed. Over the link bound the link
    /// gets `GOAWAY SLOW_READER` instead (`LINK-23`). Returns whether it was queued.
    fn push(
        &mut self,
        link: LinkId,
        bytes: Vec<u8>,
        data: Option<(SessionKey, Dir, usize)>,
        now: Instant,
    ) -> bool {
        let Some(l) = self.links.get_mut(&link) else {
            return false;
        };
        if matches!(l.state, LinkState::Closed) {
            return false;
        }
        // LINK-23: at most 4 MiB undelivered per link.
        if l.queued_bytes.saturating_add(bytes.len()) > self.config.limits.link_queue_bytes {
            self.goaway(link, &LinkError::LinkSlowReader, now);
            return false;
        }
        l.queued_bytes += bytes.len();
        l.queue.push_back(Queued { bytes, data });
        // LINK-25: queuing a frame counts as sending for the keepalive timer (SPEC: 7).
        l.last_sent = now;
        self.pending.insert(link);
        true
    }
}

/// Whether `start + period` is at or before `now` (never, if it overflows).
fn due(start: Instant, period: Duration, now: Instant) -> bool {
    start.checked_add(period).is_some_and(|t| t <= now)
}
