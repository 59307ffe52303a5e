//! A deterministic harness for the relay state machine, in the style of quinn's `Pair`:
//! in-memory clients, virtual time, `drive()` until quiet. No tokio.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use curve25519_dalek::MontgomeryPoint;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::router::{LinkId, Relay, RelayConfig, RelayEvent, WorkspaceConfig};
use tether_proto::link::{
    ClientConfig, CloseCode, Incoming, LinkClient, LinkEvent, RelayFrame, Role, SessionId,
};

/// One client as the harness sees it: what the relay delivered to it, in order.
#[derive(Debug, Default)]
pub struct Client {
    /// Every frame delivered, raw.
    pub received: Vec<Vec<u8>>,
    /// Frames not yet looked at by the test ([`Net::take`]).
    pub inbox: Vec<RelayFrame>,
    /// Whether the harness takes frames for this client (false = a slow reader).
    pub reading: bool,
    /// The WebSocket was closed (after the relay's CloseLink / PeerGoingAway).
    pub closed: bool,
}

/// The relay, its clients and a virtual clock.
pub struct Net {
    pub relay: Relay,
    pub now: Instant,
    pub clients: BTreeMap<LinkId, Client>,
    pub events: Vec<RelayEvent>,
    rng_counter: u64,
    /// Every ephemeral handed to the relay, in order (LINK-13 checks).
    pub ephemerals: Vec<[u8; 32]>,
}

pub const CRED_A: &[u8] = b"credential-of-workspace-a";
pub const CRED_B: &[u8] = b"credential-of-workspace-b";
pub const CRED_OFF: &[u8] = b"credential-of-workspace-off";

pub fn config() -> RelayConfig {
    RelayConfig::default()
        .with_workspace("ws-a", WorkspaceConfig::new(CRED_A, true))
        .with_workspace("ws-b", WorkspaceConfig::new(CRED_B, true))
        .with_workspace("ws-off", WorkspaceConfig::new(CRED_OFF, false))
}

pub fn host_public(private: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(*private).to_bytes()
}

pub fn sid(n: u64) -> SessionId {
    SessionId(n.to_be_bytes())
}

pub fn hello(role: Role, workspace: &str, credential: &[u8], registration: &[u8]) -> RelayFrame {
    RelayFrame::Hello {
        version: 1,
        role,
        workspace: workspace.to_owned(),
        credential: credential.to_vec(),
        registration: registration.to_vec(),
    }
}

impl Net {
    pub fn new(config: RelayConfig) -> Self {
        Self {
            relay: Relay::new(config),
            now: Instant::now(),
            clients: BTreeMap::new(),
            events: Vec::new(),
            rng_counter: 0,
            ephemerals: Vec::new(),
        }
    }

    pub fn open(&mut self) -> LinkId {
        let id = self.relay.handle_link_opened(self.now);
        self.clients.insert(
            id,
            Client {
                reading: true,
                ..Client::default()
            },
        );
        id
    }

    pub fn send(&mut self, link: LinkId, frame: &RelayFrame) {
        let bytes = frame.to_bytes().unwrap();
        self.send_raw(link, &bytes);
    }

    pub fn send_raw(&mut self, link: LinkId, bytes: &[u8]) {
        let mut counter = self.rng_counter;
        let mut handed = Vec::new();
        let mut rng = || {
            counter += 1;
            let mut e = [0x5a; 32];
            // Bytes 8..16: clamping touches only bytes 0 and 31.
            e[8..16].copy_from_slice(&counter.to_le_bytes());
            handed.push(e);
            e
        };
        self.relay.handle_frame(link, bytes, self.now, &mut rng);
        self.rng_counter = counter;
        self.ephemerals.extend(handed);
        self.drive();
    }

    /// Delivers queued frames to reading clients and acts on events until nothing moves.
    pub fn drive(&mut self) {
        loop {
            let mut progress = false;
            while let Some(ev) = self.relay.poll_event() {
                progress = true;
                match &ev {
                    RelayEvent::CloseLink { link, .. } | RelayEvent::PeerGoingAway { link, .. } => {
                        // LINK-27: flush (the GOAWAY is last), then close.
                        self.flush(*link);
                        if let Some(c) = self.clients.get_mut(link) {
                            c.closed = true;
                        }
                        self.relay.handle_link_closed(*link, self.now);
                    }
                    _ => {}
                }
                self.events.push(ev);
            }
            for link in self.relay.links_with_pending() {
                if self
                    .clients
                    .get(&link)
                    .is_some_and(|c| c.reading && !c.closed)
                {
                    progress |= self.flush(link);
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn flush(&mut self, link: LinkId) -> bool {
        let mut any = false;
        while let Some(bytes) = self.relay.poll_transmit(link) {
            any = true;
            let frame = RelayFrame::decode(&bytes).expect("the relay sends only valid frames");
            let c = self
                .clients
                .get_mut(&link)
                .expect("frame for an unknown client");
            assert!(!c.closed, "frame after close on {link}");
            c.received.push(bytes);
            c.inbox.push(frame);
        }
        any
    }

    pub fn set_reading(&mut self, link: LinkId, reading: bool) {
        self.clients.get_mut(&link).unwrap().reading = reading;
        self.drive();
    }

    /// Advances virtual time by `d`, running every timer due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.relay.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.relay.handle_timeout(self.now);
            self.drive();
        }
        self.now = end;
        self.relay.handle_timeout(self.now);
        self.drive();
    }

    /// Takes the frames delivered to `link` since the last call.
    pub fn take(&mut self, link: LinkId) -> Vec<RelayFrame> {
        std::mem::take(&mut self.clients.get_mut(&link).unwrap().inbox)
    }

    pub fn is_closed(&self, link: LinkId) -> bool {
        self.clients[&link].closed
    }

    /// Opens a link and authenticates a controller with a real [`LinkClient`]; asserts
    /// READY. From then on the link is driven with raw frames.
    pub fn controller(&mut self, workspace: &str, credential: &[u8]) -> LinkId {
        let client =
            LinkClient::controller(ClientConfig::new(workspace, credential), self.now).unwrap();
        self.authenticate(client)
    }

    /// Opens a link and registers a host (the full XN exchange) with a real
    /// [`LinkClient`]; asserts READY.
    pub fn host(
        &mut self,
        workspace: &str,
        credential: &[u8],
        static_private: &[u8; 32],
    ) -> LinkId {
        let config = ClientConfig::new(workspace, credential);
        let client = LinkClient::host(config, static_private, self.now).unwrap();
        self.authenticate(client)
    }

    /// Pumps a link client's frames into the relay and the relay's into it until it is
    /// READY, recording the relay's frames like any other.
    fn authenticate(&mut self, mut client: LinkClient) -> LinkId {
        let link = self.open();
        for _ in 0..4 {
            while let Some(bytes) = client.poll_transmit() {
                self.send_raw(link, &bytes);
            }
            for frame in self.take(link) {
                client.handle_message(Incoming::Binary(&frame.to_bytes().unwrap()), self.now);
            }
            if client.is_ready() {
                assert_eq!(client.poll_event(), Some(LinkEvent::Ready));
                return link;
            }
        }
        panic!(
            "{:?} did not reach READY: {:?}",
            client.role(),
            client.poll_event()
        );
    }

    /// Sends a host HELLO, reads the challenge and returns the proof (not sent).
    pub fn register(
        &mut self,
        link: LinkId,
        workspace: &str,
        credential: &[u8],
        static_private: &[u8; 32],
    ) -> [u8; 64] {
        let (reg, msg1) = HostRegistration::start(static_private, workspace).unwrap();
        self.send(link, &hello(Role::Host, workspace, credential, &msg1));
        let frames = self.take(link);
        let [RelayFrame::HostChallenge { message }] = frames.as_slice() else {
            panic!("expected HOST_CHALLENGE, got {frames:?}");
        };
        reg.respond(message).unwrap()
    }

    /// The GOAWAY code a closed link got, if its last frame was a GOAWAY.
    pub fn goaway_code(&self, link: LinkId) -> Option<CloseCode> {
        let last = self.clients[&link].received.last()?;
        match RelayFrame::decode(last).ok()? {
            RelayFrame::GoAway { code, .. } => Some(code),
            _ => None,
        }
    }
}
