//! The relay's routing state machine (`Relay`, `spec/03`) driven by an arbitrary sequence
//! of events: links opening and closing, controller and host `HELLO`s with good and bad
//! credentials, honest and forged registration proofs (insecure primitives: a forged proof
//! `host key ‖ 32 zero bytes` verifies, so the fuzzer can register any key), sessions,
//! `DATA`, `CLOSE`, `PING`, `GOAWAY`, raw bytes, text messages, slow readers and time.
//!
//! Asserts after every event:
//! - no `INCOMING` or `DATA` reaches a link that is not `READY` in the workspace the
//!   payload was sent from: every payload the harness sends carries its sender's workspace
//!   in its first byte (`LINK-17`);
//! - every frame the relay sends decodes; nothing follows a `GOAWAY` (`LINK-27`); before
//!   `READY` a link gets only `HOST_CHALLENGE`, `READY` or `GOAWAY` (`LINK-8`);
//! - memory stays bounded: bytes queued for a link never exceed the link bound plus one
//!   `GOAWAY` (`LINK-22`, `LINK-23`), sessions never exceed 16 per controller link
//!   (`LINK-20`), links are forgotten once closed.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_fuzz::begin;
use tether_proto::keys::public_key;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::router::{
    LinkId, Relay, RelayConfig, RelayEvent, RelayLimits, WorkspaceConfig,
};
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};

const WS: [(&str, &[u8], bool); 3] = [
    ("ws-a", b"credential-of-workspace-a", true),
    ("ws-b", b"credential-of-workspace-b", true),
    ("ws-off", b"credential-of-workspace-off", false),
];
const HOSTS: [[u8; 32]; 2] = [[0x10; 32], [0x20; 32]];
const LINK_BOUND: usize = 6_000;
const GOAWAY_MAX: usize = 1 + 2 + 1 + 255;

#[derive(Arbitrary, Debug)]
enum Ev {
    OpenLink,
    Hello {
        link: u8,
        host: Option<u8>,
        ws: u8,
        good: bool,
        version: u8,
    },
    Proof {
        link: u8,
        forged: Option<u8>,
    },
    OpenSession {
        link: u8,
        host: u8,
        sid: u8,
        len: u16,
    },
    Data {
        link: u8,
        sid: u8,
        len: u16,
    },
    Close {
        link: u8,
        sid: u8,
        code: u16,
    },
    Ping {
        link: u8,
        value: u64,
    },
    GoAway {
        link: u8,
        code: u16,
    },
    Raw {
        link: u8,
        bytes: Vec<u8>,
    },
    Text {
        link: u8,
    },
    CloseLink {
        link: u8,
    },
    Reading {
        link: u8,
        on: bool,
    },
    Advance {
        ms: u32,
    },
}

#[derive(Default)]
struct Client {
    hello_ws: Option<u8>,
    ready_ws: Option<u8>,
    registration: Option<(HostRegistration, u8)>,
    challenge: Option<Vec<u8>>,
    goaway: bool,
    closed: bool,
    reading: bool,
}

struct World {
    relay: Relay,
    now: Instant,
    links: Vec<LinkId>,
    clients: HashMap<LinkId, Client>,
    rng: u64,
}

impl World {
    fn link(&self, i: u8) -> Option<LinkId> {
        (!self.links.is_empty()).then(|| self.links[usize::from(i) % self.links.len()])
    }

    fn send(&mut self, link: LinkId, bytes: &[u8]) {
        let mut rng = self.rng;
        let mut next = || {
            rng = rng.wrapping_add(1);
            let mut e = [0x5a; 32];
            e[8..16].copy_from_slice(&rng.to_le_bytes());
            e
        };
        self.relay.handle_frame(link, bytes, self.now, &mut next);
        self.rng = rng;
    }

    fn frame(&mut self, link: LinkId, frame: &RelayFrame) {
        if let Ok(bytes) = frame.to_bytes() {
            self.send(link, &bytes);
        }
    }

    /// Tag byte of what `link` sends: its workspace once READY, else 0xFF.
    fn tag(&self, link: LinkId) -> u8 {
        self.clients
            .get(&link)
            .and_then(|c| c.ready_ws)
            .unwrap_or(0xFF)
    }

    fn deliver(&mut self, link: LinkId) {
        while let Some(bytes) = self.relay.poll_transmit(link) {
            let frame = RelayFrame::decode(&bytes).expect("the relay sends only valid frames");
            let c = self
                .clients
                .get_mut(&link)
                .expect("frame for a known client");
            assert!(
                !c.closed && !c.goaway,
                "LINK-27: frame after GOAWAY on {link}: {frame:?}"
            );
            match &frame {
                RelayFrame::Ready => {
                    assert!(c.ready_ws.is_none(), "READY twice");
                    c.ready_ws = c.hello_ws;
                }
                RelayFrame::HostChallenge { message } => {
                    assert!(c.ready_ws.is_none());
                    c.challenge = Some(message.clone());
                }
                RelayFrame::GoAway { .. } => c.goaway = true,
                RelayFrame::Incoming { handshake: p, .. } | RelayFrame::Data { payload: p, .. } => {
                    let ws = c.ready_ws.expect("LINK-8: session frame before READY");
                    assert_eq!(
                        p.first().copied(),
                        Some(ws),
                        "LINK-17: delivered across workspaces"
                    );
                }
                RelayFrame::Close { .. } | RelayFrame::Ping { .. } | RelayFrame::Pong { .. } => {
                    assert!(c.ready_ws.is_some(), "LINK-8: session frame before READY");
                }
                other => panic!("the relay sent {other:?}"),
            }
        }
    }

    fn drive(&mut self) {
        loop {
            let mut progress = false;
            while let Some(ev) = self.relay.poll_event() {
                progress = true;
                if let RelayEvent::CloseLink { link, .. } | RelayEvent::PeerGoingAway { link, .. } =
                    ev
                {
                    self.deliver(link);
                    if let Some(c) = self.clients.get_mut(&link) {
                        c.closed = true;
                    }
                    self.relay.handle_link_closed(link, self.now);
                }
            }
            for link in self.relay.links_with_pending() {
                if self
                    .clients
                    .get(&link)
                    .is_some_and(|c| c.reading && !c.closed)
                {
                    self.deliver(link);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        let controllers = self.clients.values().filter(|c| !c.closed).count();
        assert!(self.relay.session_count() <= controllers * 16, "LINK-20");
        for link in &self.links {
            assert!(
                self.relay.queued_bytes(*link) <= LINK_BOUND + GOAWAY_MAX,
                "LINK-23"
            );
        }
        assert!(self.relay.link_count() <= self.links.len());
    }
}

fn payload(tag: u8, len: u16) -> Vec<u8> {
    let mut p = vec![tag; usize::from(len % 3000) + 1];
    p[0] = tag;
    p
}

fuzz_target!(|events: Vec<Ev>| {
    begin(true);
    let mut config = RelayConfig::default().with_limits(RelayLimits {
        session_queue_bytes: 2_500,
        link_queue_bytes: LINK_BOUND,
        max_sessions_per_controller_link: 16,
        max_sessions_per_host: 8,
        ..RelayLimits::default()
    });
    for (id, cred, on) in WS {
        config = config.with_workspace(id, WorkspaceConfig::new(cred, on));
    }
    let mut w = World {
        relay: Relay::new(config),
        now: Instant::now(),
        links: Vec::new(),
        clients: HashMap::new(),
        rng: 0,
    };

    for ev in events.into_iter().take(64) {
        match ev {
            Ev::OpenLink => {
                if w.links.len() < 12 {
                    let id = w.relay.handle_link_opened(w.now);
                    w.links.push(id);
                    w.clients.insert(
                        id,
                        Client {
                            reading: true,
                            ..Client::default()
                        },
                    );
                }
            }
            Ev::Hello {
                link,
                host,
                ws,
                good,
                version,
            } => {
                let Some(l) = w.link(link) else { continue };
                let ws = ws % 3;
                let (name, cred, _) = WS[usize::from(ws)];
                let mut registration = Vec::new();
                let c = w.clients.get_mut(&l).expect("client");
                if c.hello_ws.is_none() {
                    c.hello_ws = Some(ws);
                }
                if let Some(h) = host {
                    let h = h % 2;
                    let Ok((reg, msg1)) = HostRegistration::start(&HOSTS[usize::from(h)], name)
                    else {
                        continue;
                    };
                    registration = msg1.to_vec();
                    c.registration = Some((reg, h));
                }
                let frame = RelayFrame::Hello {
                    version: if version < 250 { 1 } else { version },
                    role: if host.is_some() {
                        Role::Host
                    } else {
                        Role::Controller
                    },
                    workspace: name.into(),
                    credential: if good {
                        cred.to_vec()
                    } else {
                        b"not-the-credential-at-all".to_vec()
                    },
                    registration,
                };
                w.frame(l, &frame);
            }
            Ev::Proof { link, forged } => {
                let Some(l) = w.link(link) else { continue };
                let c = w.clients.get_mut(&l).expect("client");
                let message = match forged {
                    Some(h) => {
                        let mut m = public_key(&HOSTS[usize::from(h % 2)]).to_vec();
                        m.extend_from_slice(&[0u8; 32]);
                        m
                    }
                    None => {
                        let (Some((reg, _)), Some(ch)) =
                            (c.registration.take(), c.challenge.take())
                        else {
                            continue;
                        };
                        match reg.respond(&ch) {
                            Ok(p) => p.to_vec(),
                            Err(_) => continue,
                        }
                    }
                };
                w.frame(l, &RelayFrame::HostProof { message });
            }
            Ev::OpenSession {
                link,
                host,
                sid,
                len,
            } => {
                let Some(l) = w.link(link) else { continue };
                let tag = w.tag(l);
                let host_key = public_key(&HOSTS[usize::from(host % 2)]);
                let handshake = payload(tag, len % 400);
                w.frame(
                    l,
                    &RelayFrame::Open {
                        session: SessionId([sid % 8; 8]),
                        host_key,
                        handshake,
                    },
                );
            }
            Ev::Data { link, sid, len } => {
                let Some(l) = w.link(link) else { continue };
                let tag = w.tag(l);
                w.frame(
                    l,
                    &RelayFrame::Data {
                        session: SessionId([sid % 8; 8]),
                        payload: payload(tag, len),
                    },
                );
            }
            Ev::Close { link, sid, code } => {
                let Some(l) = w.link(link) else { continue };
                w.frame(
                    l,
                    &RelayFrame::Close {
                        session: SessionId([sid % 8; 8]),
                        code: CloseCode(code),
                    },
                );
            }
            Ev::Ping { link, value } => {
                let Some(l) = w.link(link) else { continue };
                w.frame(l, &RelayFrame::Ping { value });
            }
            Ev::GoAway { link, code } => {
                let Some(l) = w.link(link) else { continue };
                w.frame(
                    l,
                    &RelayFrame::GoAway {
                        code: CloseCode(code),
                        reason: String::new(),
                    },
                );
            }
            Ev::Raw { link, mut bytes } => {
                let Some(l) = w.link(link) else { continue };
                let tag = w.tag(l);
                // Keep the workspace tag of session payloads honest; everything else raw.
                if let Ok(mut f) = RelayFrame::decode(&bytes) {
                    if let RelayFrame::Open { handshake: p, .. }
                    | RelayFrame::Data { payload: p, .. }
                    | RelayFrame::Incoming { handshake: p, .. } = &mut f
                        && let Some(b) = p.first_mut()
                    {
                        *b = tag;
                    }
                    if let Ok(b) = f.to_bytes() {
                        bytes = b;
                    }
                }
                w.send(l, &bytes);
            }
            Ev::Text { link } => {
                let Some(l) = w.link(link) else { continue };
                w.relay.handle_text_message(l, w.now);
            }
            Ev::CloseLink { link } => {
                let Some(l) = w.link(link) else { continue };
                if let Some(c) = w.clients.get_mut(&l) {
                    c.closed = true;
                }
                w.relay.handle_link_closed(l, w.now);
            }
            Ev::Reading { link, on } => {
                let Some(l) = w.link(link) else { continue };
                if let Some(c) = w.clients.get_mut(&l) {
                    c.reading = on;
                }
            }
            Ev::Advance { ms } => {
                let end = w.now + Duration::from_millis(u64::from(ms % 90_000));
                while let Some(t) = w.relay.poll_timeout() {
                    if t > end {
                        break;
                    }
                    w.now = w.now.max(t);
                    w.relay.handle_timeout(w.now);
                    w.drive();
                }
                w.now = end;
                w.relay.handle_timeout(w.now);
            }
        }
        w.drive();
    }
});
