//! Property test: arbitrary interleavings of controller, relay and host events together.
//!
//! Two workspaces, each with one host registered at one relay (real `Noise_XN`
//! registration), and controllers whose links authenticate in either workspace and open
//! sessions to either host, pairing with good or bad tokens or resuming. Every frame
//! crosses the real [`Relay`] as bytes; the test decides when each party's queue is pumped,
//! when links close and how time passes.
//!
//! Invariants checked after every step:
//! - no plaintext leaves a session before its handshake completes: a controller puts no
//!   `DATA` on the wire and emits no command message before message 2, and a host emits no
//!   command message for a session it has not established (`CHAN-15`);
//! - a consumed token never pairs twice: a host's pairings never outnumber its consumed
//!   tokens (`CHAN-12`);
//! - no cross-workspace delivery: every `INCOMING` a host receives comes from a controller
//!   link of the host's workspace, and every `DATA` or `CLOSE` a controller link receives
//!   names a session that link opened (`LINK-17`, `LINK-19`);
//! - bounded memory: the relay's queue for any link stays within the link bound plus one
//!   `GOAWAY` (`LINK-23`), sessions within the per-link and per-host limits (`LINK-20`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tether_proto::channel::{HostInfo, PathStyle, Timestamp};
use tether_proto::cmd::{Message, Request};
use tether_proto::keys::public_key;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::router::{
    LinkId, Relay, RelayConfig, RelayEvent, RelayLimits, WorkspaceConfig,
};
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};
use tether_proto::session::{
    Controller, ControllerConfig, ControllerEvent, Host, HostConfig, HostEvent, MemoryHostStore,
    Purpose,
};
use tether_proto::time::UnixTime;

const WS: [(&str, &[u8]); 2] = [
    ("ws-a", b"credential-of-workspace-a"),
    ("ws-b", b"credential-of-workspace-b"),
];
const HOST_PRIVATE: [[u8; 32]; 2] = [[0x11; 32], [0x12; 32]];
const WALL0: u64 = 1_800_000_000;
const LINK_BOUND: usize = 200_000;
const GOAWAY_MAX: usize = 1 + 2 + 1 + 255;

fn token(ws: usize, i: u8) -> ([u8; 16], [u8; 32]) {
    (
        [0x40 + i + 0x10 * ws as u8; 16],
        [0x60 + i + 0x10 * ws as u8; 32],
    )
}

#[derive(Clone, Debug)]
enum Op {
    /// A controller with key `key` authenticates in workspace `ws` and opens a session to
    /// host `target` (possibly of the other workspace), pairing with token `pair`.
    Connect {
        ws: usize,
        target: usize,
        key: u8,
        pair: Option<(u8, usize, bool)>,
    },
    /// Deliver controller `c`'s queued frames to the relay.
    PumpController { c: usize },
    /// Deliver host `h`'s queued frames to the relay.
    PumpHost { h: usize },
    /// Deliver everything the relay has queued for every link that reads.
    PumpRelay,
    /// Controller `c` sends a request.
    Send { c: usize },
    /// Host `h` answers on every session it has established.
    HostSend { h: usize },
    /// Host `h` answers every pending confirmation.
    Confirm { h: usize, accept: bool },
    /// Controller `c`'s link closes.
    CloseLink { c: usize },
    /// Controller `c`'s link stops or starts reading.
    Reading { c: usize, on: bool },
    /// Time passes.
    Wait { secs: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..2, 0usize..2, 0u8..3, proptest::option::of((0u8..2, 0usize..2, prop::bool::weighted(0.8))))
            .prop_map(|(ws, target, key, pair)| Op::Connect { ws, target, key, pair }),
        6 => (0usize..8).prop_map(|c| Op::PumpController { c }),
        4 => (0usize..2).prop_map(|h| Op::PumpHost { h }),
        6 => Just(Op::PumpRelay),
        3 => (0usize..8).prop_map(|c| Op::Send { c }),
        2 => (0usize..2).prop_map(|h| Op::HostSend { h }),
        1 => (0usize..2, any::<bool>()).prop_map(|(h, accept)| Op::Confirm { h, accept }),
        1 => (0usize..8).prop_map(|c| Op::CloseLink { c }),
        1 => (0usize..8, any::<bool>()).prop_map(|(c, on)| Op::Reading { c, on }),
        1 => (0u16..90).prop_map(|secs| Op::Wait { secs }),
    ]
}

struct HostSide {
    host: Host,
    store: MemoryHostStore,
    link: LinkId,
    ws: usize,
    established: HashSet<SessionId>,
    awaiting: Vec<SessionId>,
    pairings: usize,
    gone: bool,
}

struct ControllerSide {
    ctl: Controller,
    link: LinkId,
    ws: usize,
    established: bool,
    gone: bool,
}

struct World {
    relay: Relay,
    now: Instant,
    wall: UnixTime,
    rng: u64,
    hosts: Vec<HostSide>,
    ctls: Vec<ControllerSide>,
    /// Controller link → its workspace (links that reached READY).
    ctl_links: HashMap<LinkId, usize>,
    /// Relay output per link, not yet handed to its owner.
    inbox: BTreeMap<LinkId, Vec<RelayFrame>>,
    reading: HashMap<LinkId, bool>,
    closed: HashSet<LinkId>,
    last_ts: HashMap<u8, Timestamp>,
}

fn host_info() -> HostInfo {
    HostInfo {
        name: "h".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        shell: "sh".into(),
        path_style: PathStyle::Posix,
        capabilities: vec![],
        protocol: "tether/1".into(),
    }
}

impl World {
    fn new(confirm: bool) -> Self {
        let mut config = RelayConfig::default().with_limits(RelayLimits {
            link_queue_bytes: LINK_BOUND,
            ..RelayLimits::default()
        });
        for (name, cred) in WS {
            config = config.with_workspace(name, WorkspaceConfig::new(cred, true));
        }
        let mut w = Self {
            relay: Relay::new(config),
            now: Instant::now(),
            wall: UnixTime::from_secs(WALL0),
            rng: 0,
            hosts: Vec::new(),
            ctls: Vec::new(),
            ctl_links: HashMap::new(),
            inbox: BTreeMap::new(),
            reading: HashMap::new(),
            closed: HashSet::new(),
            last_ts: HashMap::new(),
        };
        for (ws, private) in HOST_PRIVATE.iter().enumerate() {
            let (name, cred) = WS[ws];
            let link = w.open_link();
            let (reg, msg1) = HostRegistration::start(private, name).unwrap();
            w.send(
                link,
                &RelayFrame::Hello {
                    version: 1,
                    role: Role::Host,
                    workspace: name.into(),
                    credential: cred.to_vec(),
                    registration: msg1.to_vec(),
                },
            );
            let challenge = match w.take(link).as_slice() {
                [RelayFrame::HostChallenge { message }] => message.clone(),
                other => panic!("expected HOST_CHALLENGE, got {other:?}"),
            };
            let proof = reg.respond(&challenge).unwrap();
            w.send(
                link,
                &RelayFrame::HostProof {
                    message: proof.to_vec(),
                },
            );
            assert_eq!(w.take(link), vec![RelayFrame::Ready]);
            let mut store = MemoryHostStore::new();
            for i in 0..2 {
                let (id, secret) = token(ws, i);
                store.add_token(id, &secret, WALL0 + 600);
            }
            w.hosts.push(HostSide {
                host: Host::new(HostConfig {
                    static_private: *private,
                    workspace: name.into(),
                    host_info: host_info(),
                    remote_access: true,
                    confirm_pairing: confirm,
                }),
                store,
                link,
                ws,
                established: HashSet::new(),
                awaiting: Vec::new(),
                pairings: 0,
                gone: false,
            });
        }
        w
    }

    fn open_link(&mut self) -> LinkId {
        let link = self.relay.handle_link_opened(self.now);
        self.reading.insert(link, true);
        link
    }

    fn send(&mut self, link: LinkId, frame: &RelayFrame) {
        let bytes = frame.to_bytes().unwrap();
        let mut counter = self.rng;
        let mut rng = || {
            counter += 1;
            let mut e = [0x5a; 32];
            e[8..16].copy_from_slice(&counter.to_le_bytes());
            e
        };
        self.relay.handle_frame(link, &bytes, self.now, &mut rng);
        self.rng = counter;
        self.drive();
    }

    fn take(&mut self, link: LinkId) -> Vec<RelayFrame> {
        self.inbox.remove(&link).unwrap_or_default()
    }

    /// Moves the relay's output into the inboxes of reading links and handles link ends.
    fn drive(&mut self) {
        loop {
            let mut progress = false;
            while let Some(ev) = self.relay.poll_event() {
                progress = true;
                if let RelayEvent::CloseLink { link, .. } | RelayEvent::PeerGoingAway { link, .. } =
                    ev
                {
                    self.flush(link);
                    self.closed.insert(link);
                    self.relay.handle_link_closed(link, self.now);
                }
            }
            for link in self.relay.links_with_pending() {
                if self.reading.get(&link) == Some(&true) && !self.closed.contains(&link) {
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
            let frame = RelayFrame::decode(&bytes).expect("the relay sends valid frames");
            self.inbox.entry(link).or_default().push(frame);
        }
        any
    }

    /// Hands every inbox to its owner and checks routing.
    fn deliver(&mut self) {
        let inbox = std::mem::take(&mut self.inbox);
        for (link, frames) in inbox {
            if let Some(h) = self.hosts.iter().position(|h| h.link == link) {
                let hs = &mut self.hosts[h];
                for f in frames {
                    match f {
                        RelayFrame::Incoming { session, handshake } => {
                            // LINK-17: the opener is a controller link of this workspace.
                            let opener = self
                                .ctls
                                .iter()
                                .find(|c| c.ctl.session() == session)
                                .expect("INCOMING for a session some controller opened");
                            assert_eq!(opener.ws, hs.ws, "LINK-17: cross-workspace INCOMING");
                            hs.host.handle_incoming(
                                session,
                                &handshake,
                                self.now,
                                self.wall,
                                &mut hs.store,
                            );
                        }
                        RelayFrame::Data { session, payload } => {
                            hs.host.handle_data(session, &payload);
                        }
                        RelayFrame::Close { session, code } => hs.host.handle_close(session, code),
                        RelayFrame::GoAway { .. } => {
                            hs.host.handle_link_lost();
                            hs.gone = true;
                        }
                        RelayFrame::Ping { .. } | RelayFrame::Pong { .. } => {}
                        other => panic!("host link got {other:?}"),
                    }
                }
                continue;
            }
            for f in frames {
                match f {
                    RelayFrame::Data { session, payload } => {
                        let c = self
                            .ctls
                            .iter_mut()
                            .find(|c| c.link == link && c.ctl.session() == session)
                            .expect("LINK-19: DATA for a session this link opened");
                        c.ctl.handle_data(&payload);
                    }
                    RelayFrame::Close { session, code } => {
                        let c = self
                            .ctls
                            .iter_mut()
                            .find(|c| c.link == link && c.ctl.session() == session)
                            .expect("LINK-19: CLOSE for a session this link opened");
                        c.ctl.handle_close(code);
                    }
                    RelayFrame::GoAway { .. } => {
                        for c in self.ctls.iter_mut().filter(|c| c.link == link) {
                            c.ctl.handle_close(CloseCode::PEER_GONE);
                            c.gone = true;
                        }
                    }
                    RelayFrame::Ready | RelayFrame::Ping { .. } | RelayFrame::Pong { .. } => {}
                    other => panic!("controller link got {other:?}"),
                }
            }
        }
    }

    /// Drains every party's events and checks the invariants.
    fn check(&mut self) {
        for hs in &mut self.hosts {
            while let Some(ev) = hs.host.poll_event() {
                match ev {
                    HostEvent::Established {
                        session, paired, ..
                    } => {
                        assert!(hs.established.insert(session));
                        hs.awaiting.retain(|s| *s != session);
                        if paired.is_some() {
                            hs.pairings += 1;
                        }
                    }
                    HostEvent::ConfirmationRequested { session, .. } => hs.awaiting.push(session),
                    HostEvent::Message { session, .. } | HostEvent::Rejected { session, .. } => {
                        assert!(
                            hs.established.contains(&session),
                            "CHAN-15: host got a command before the handshake"
                        );
                    }
                    HostEvent::Closed { session, .. } | HostEvent::Refused { session, .. } => {
                        hs.established.remove(&session);
                        hs.awaiting.retain(|s| *s != session);
                    }
                    _ => {}
                }
            }
            let consumed = (0..2)
                .filter(|i| hs.store.token_consumed(&token(hs.ws, *i).0) == Some(true))
                .count();
            assert!(hs.pairings <= consumed, "CHAN-12: a token paired twice");
            assert!(hs.host.session_count() <= 64);
        }
        for c in &mut self.ctls {
            while let Some(ev) = c.ctl.poll_event() {
                match ev {
                    ControllerEvent::Established { .. } => {
                        assert!(!c.established);
                        c.established = true;
                    }
                    ControllerEvent::Message(_) | ControllerEvent::Rejected(_) => {
                        assert!(c.established, "CHAN-15: controller plaintext before msg 2");
                    }
                    _ => {}
                }
            }
        }
        for link in self.reading.keys() {
            assert!(
                self.relay.queued_bytes(*link) <= LINK_BOUND + GOAWAY_MAX,
                "LINK-23"
            );
        }
        assert!(self.relay.session_count() <= 16 * self.ctl_links.len().max(1));
    }
}

impl World {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Connect {
                ws,
                target,
                key,
                pair,
            } => {
                if self.ctls.len() >= 8 {
                    return;
                }
                let (name, cred) = WS[ws];
                let link = self.open_link();
                self.send(
                    link,
                    &RelayFrame::Hello {
                        version: 1,
                        role: Role::Controller,
                        workspace: name.into(),
                        credential: cred.to_vec(),
                        registration: Vec::new(),
                    },
                );
                assert_eq!(self.take(link), vec![RelayFrame::Ready]);
                self.ctl_links.insert(link, ws);
                let ts = Timestamp::next_after(self.last_ts.get(&key).copied(), self.wall);
                self.last_ts.insert(key, ts);
                let purpose = match pair {
                    None => Purpose::Resume,
                    Some((i, tws, good)) => {
                        let (id, secret) = token(tws, i);
                        Purpose::Pair {
                            token_id: id,
                            token_secret: if good { secret } else { [0; 32] },
                            device_name: format!("d{key}"),
                        }
                    }
                };
                let ctl = Controller::connect(
                    ControllerConfig {
                        static_private: [0x20 + key; 32],
                        host_key: public_key(&HOST_PRIVATE[target]),
                        workspace: WS[target].0.into(),
                        session: SessionId([0xC0 + self.ctls.len() as u8; 8]),
                        timestamp: ts,
                        handshake_timeout: ControllerConfig::default_timeout(&purpose),
                        purpose,
                    },
                    self.now,
                )
                .unwrap();
                self.ctls.push(ControllerSide {
                    ctl,
                    link,
                    ws,
                    established: false,
                    gone: false,
                });
            }
            Op::PumpController { c } => {
                let Some(cs) = self.ctls.get_mut(c) else {
                    return;
                };
                let link = cs.link;
                let mut frames = Vec::new();
                while let Some(f) = cs.ctl.poll_transmit() {
                    if let RelayFrame::Data { .. } = f {
                        assert!(
                            cs.established || cs.ctl.is_established(),
                            "CHAN-15: DATA before message 2"
                        );
                    }
                    frames.push(f);
                }
                if cs.gone || self.closed.contains(&link) {
                    return;
                }
                for f in frames {
                    self.send(link, &f);
                }
            }
            Op::PumpHost { h } => {
                let hs = &mut self.hosts[h];
                let link = hs.link;
                let mut frames = Vec::new();
                while let Some(f) = hs.host.poll_transmit() {
                    frames.push(f);
                }
                if hs.gone || self.closed.contains(&link) {
                    return;
                }
                for f in frames {
                    self.send(link, &f);
                }
            }
            Op::PumpRelay => self.deliver(),
            Op::Send { c } => {
                if let Some(cs) = self.ctls.get_mut(c) {
                    let r = cs
                        .ctl
                        .send(&Message::Request(Request::new(1, "thread/list", None)));
                    assert_eq!(r.is_ok(), cs.ctl.is_established(), "CHAN-15");
                }
            }
            Op::HostSend { h } => {
                let hs = &mut self.hosts[h];
                let sessions: Vec<SessionId> = hs.established.iter().copied().collect();
                for s in sessions {
                    let _ = hs
                        .host
                        .send(s, &Message::Request(Request::new(7, "item/started", None)));
                }
            }
            Op::Confirm { h, accept } => {
                let hs = &mut self.hosts[h];
                for s in hs.awaiting.clone() {
                    hs.host.confirm_pairing(s, accept, self.wall, &mut hs.store);
                }
            }
            Op::CloseLink { c } => {
                if let Some(cs) = self.ctls.get(c) {
                    let link = cs.link;
                    if self.closed.insert(link) {
                        self.relay.handle_link_closed(link, self.now);
                        for cs in self.ctls.iter_mut().filter(|x| x.link == link) {
                            cs.ctl.handle_close(CloseCode::PEER_GONE);
                            cs.gone = true;
                        }
                        self.drive();
                    }
                }
            }
            Op::Reading { c, on } => {
                if let Some(cs) = self.ctls.get(c) {
                    self.reading.insert(cs.link, on);
                    self.drive();
                }
            }
            Op::Wait { secs } => {
                let d = Duration::from_secs(secs.into());
                self.now += d;
                self.wall = self.wall.saturating_add(d);
                self.relay.handle_timeout(self.now);
                self.drive();
                for hs in &mut self.hosts {
                    hs.host.handle_timeout(self.now);
                }
                for cs in &mut self.ctls {
                    cs.ctl.handle_timeout(self.now);
                }
            }
        }
    }
}

fn run(ops: Vec<Op>, confirm: bool) {
    let mut w = World::new(confirm);
    for op in ops {
        w.apply(op);
        w.check();
    }
    // Settle: pump everything a few rounds, then check once more.
    for _ in 0..4 {
        for c in 0..w.ctls.len() {
            let cs = &mut w.ctls[c];
            let link = cs.link;
            let frames: Vec<RelayFrame> = std::iter::from_fn(|| cs.ctl.poll_transmit()).collect();
            if !cs.gone && !w.closed.contains(&link) {
                for f in frames {
                    w.send(link, &f);
                }
            }
        }
        for h in 0..w.hosts.len() {
            let hs = &mut w.hosts[h];
            let link = hs.link;
            let frames: Vec<RelayFrame> = std::iter::from_fn(|| hs.host.poll_transmit()).collect();
            if !hs.gone && !w.closed.contains(&link) {
                for f in frames {
                    w.send(link, &f);
                }
            }
        }
        w.deliver();
        w.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn controller_relay_host_interleavings_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..50)
    ) {
        run(ops, false);
    }

    #[test]
    fn with_confirmation_the_invariants_hold_too(
        ops in proptest::collection::vec(op(), 1..50)
    ) {
        run(ops, true);
    }
}

/// The happy path the property explores around: pair through the relay, then exchange.
#[test]
fn pairing_through_the_relay_then_commands_both_ways() {
    let mut w = World::new(false);
    for op in [
        Op::Connect {
            ws: 0,
            target: 0,
            key: 0,
            pair: Some((0, 0, true)),
        },
        Op::PumpController { c: 0 },
        Op::PumpRelay,
        Op::PumpHost { h: 0 },
        Op::PumpRelay,
        Op::Send { c: 0 },
        Op::PumpController { c: 0 },
        Op::PumpRelay,
        Op::HostSend { h: 0 },
        Op::PumpHost { h: 0 },
        Op::PumpRelay,
    ] {
        w.apply(op);
        w.check();
    }
    assert!(w.ctls[0].established, "the controller read message 2");
    assert_eq!(w.hosts[0].pairings, 1);
    assert_eq!(w.hosts[0].store.token_consumed(&token(0, 0).0), Some(true));
    // A second controller presenting the same token through the relay is refused.
    for op in [
        Op::Connect {
            ws: 0,
            target: 0,
            key: 1,
            pair: Some((0, 0, true)),
        },
        Op::PumpController { c: 1 },
        Op::PumpRelay,
        Op::PumpHost { h: 0 },
        Op::PumpRelay,
    ] {
        w.apply(op);
        w.check();
    }
    assert!(!w.ctls[1].established);
    assert!(w.ctls[1].ctl.is_closed());
    assert_eq!(w.hosts[0].pairings, 1);
}

/// A controller authenticated in one workspace cannot reach the host of the other.
#[test]
fn a_controller_of_one_workspace_never_reaches_the_other_host() {
    let mut w = World::new(false);
    for op in [
        Op::Connect {
            ws: 1,
            target: 0,
            key: 0,
            pair: Some((0, 0, true)),
        },
        Op::PumpController { c: 0 },
        Op::PumpRelay,
    ] {
        w.apply(op);
        w.check();
    }
    assert!(w.ctls[0].ctl.is_closed(), "CLOSE HOST_UNREACHABLE");
    assert_eq!(w.hosts[0].host.session_count(), 0);
    assert_eq!(w.hosts[0].store.token_consumed(&token(0, 0).0), Some(false));
}
