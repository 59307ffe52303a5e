//! Property tests of the relay state machine: arbitrary interleavings of link opens and
//! closes, valid and garbage frames from several workspaces, slow readers and timeouts.
//!
//! Invariants checked after every step:
//! - no `DATA` or `INCOMING` reaches a link of another workspace (`LINK-17`);
//! - `DATA` arrives unmodified, on the session id it was sent on, and what one receiver
//!   gets of one sender's session is a contiguous, in-order run of what was sent: nothing
//!   reordered, duplicated, injected or dropped from the middle (`LINK-18`, `LINK-26`);
//! - the bytes queued for any link never exceed the link bound plus one `GOAWAY`
//!   (`LINK-23`), and every frame the relay emits decodes and none follows a `GOAWAY`
//!   (`LINK-27`);
//! - nothing panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod router_util;

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use router_util::*;
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::router::{LinkId, RelayLimits};
use tether_proto::link::{CloseCode, RelayFrame, Role};

const WORKSPACES: [(&str, &[u8]); 3] = [("ws-a", CRED_A), ("ws-b", CRED_B), ("ws-off", CRED_OFF)];
const HOSTS: [[u8; 32]; 3] = [[0x10; 32], [0x20; 32], [0x30; 32]];
const LINK_BOUND: usize = 5_000;
const GOAWAY_MAX: usize = 1 + 2 + 1 + 255;
const TAG: u8 = 0xd7;

#[derive(Clone, Debug)]
enum Op {
    /// Opens a link and sends nothing.
    Open,
    /// Opens a link and sends a controller HELLO.
    Controller {
        ws: usize,
        good: bool,
    },
    /// Opens a link and registers a host (the proof corrupted, sometimes).
    Host {
        ws: usize,
        host: usize,
        corrupt: bool,
    },
    /// Sends a controller HELLO on an existing link (usually a violation).
    Hello {
        link: usize,
        ws: usize,
    },
    OpenSession {
        link: usize,
        host: usize,
        sid: u8,
    },
    Data {
        link: usize,
        sid: u8,
        len: u16,
    },
    Close {
        link: usize,
        sid: u8,
        code: u16,
    },
    Ping {
        link: usize,
        value: u64,
    },
    Frame {
        link: usize,
        kind: u8,
        n: u8,
    },
    Garbage {
        link: usize,
        bytes: Vec<u8>,
    },
    CloseLink {
        link: usize,
    },
    Reading {
        link: usize,
        on: bool,
    },
    Advance {
        ms: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let l = 0usize..8;
    prop_oneof![
        1 => Just(Op::Open),
        3 => (prop_oneof![4 => Just(0usize), 3 => Just(1), 1 => Just(2)], prop::bool::weighted(0.9))
            .prop_map(|(ws, good)| Op::Controller { ws, good }),
        2 => (prop_oneof![4 => Just(0usize), 3 => Just(1), 1 => Just(2)], 0usize..3, prop::bool::weighted(0.1))
            .prop_map(|(ws, host, corrupt)| Op::Host { ws, host, corrupt }),
        1 => (l.clone(), 0usize..3).prop_map(|(link, ws)| Op::Hello { link, ws }),
        3 => (l.clone(), 0usize..3, 0u8..6)
            .prop_map(|(link, host, sid)| Op::OpenSession { link, host, sid }),
        12 => (l.clone(), 0u8..6, 18u16..1500).prop_map(|(link, sid, len)| Op::Data { link, sid, len }),
        1 => (l.clone(), 0u8..6, prop_oneof![Just(0u16), Just(33), any::<u16>()])
            .prop_map(|(link, sid, code)| Op::Close { link, sid, code }),
        1 => (l.clone(), any::<u64>()).prop_map(|(link, value)| Op::Ping { link, value }),
        1 => (l.clone(), 0u8..10, any::<u8>()).prop_map(|(link, kind, n)| Op::Frame { link, kind, n }),
        1 => (l.clone(), prop::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(link, bytes)| Op::Garbage { link, bytes }),
        1 => l.clone().prop_map(|link| Op::CloseLink { link }),
        2 => (l.clone(), prop::bool::weighted(0.4)).prop_map(|(link, on)| Op::Reading { link, on }),
        1 => (0u32..25_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the test knows besides the relay.
#[derive(Default)]
struct Model {
    links: Vec<LinkId>,
    /// Workspace a link claimed in its last HELLO (and whether as host).
    claimed: HashMap<LinkId, usize>,
    /// Workspace of links that got READY.
    ready: HashMap<LinkId, usize>,
    /// Session ids each controller link has used (a controller never reuses one, LINK-16).
    used_sids: HashMap<LinkId, Vec<u8>>,
    /// Every DATA sent: seq → (sender, sid, payload).
    sent: Vec<(LinkId, u8, Vec<u8>)>,
    /// (sender, sid) → seqs sent on it, in order.
    streams: HashMap<(LinkId, u8), Vec<usize>>,
    /// (sender, sid, receiver) → position in `streams` of the last seq delivered.
    delivered_at: HashMap<(LinkId, u8, LinkId), usize>,
    /// Host links and the index of their key.
    hosts: HashMap<LinkId, usize>,
    /// Session ids each link believes open (OPEN sent / INCOMING received, until a CLOSE).
    open: HashMap<LinkId, Vec<u8>>,
    delivered: usize,
    closes: HashMap<u16, usize>,
    goaways: HashMap<u16, usize>,
}

/// Any link ever opened.
fn link_of(model: &Model, i: usize) -> Option<LinkId> {
    if model.links.is_empty() {
        None
    } else {
        Some(model.links[i % model.links.len()])
    }
}

/// A link still open at the harness, preferring those that reached READY.
fn live_link(net: &Net, model: &Model, i: usize) -> Option<LinkId> {
    let live: Vec<LinkId> = model
        .links
        .iter()
        .copied()
        .filter(|l| !net.clients[l].closed && model.claimed.contains_key(l))
        .collect();
    if live.is_empty() {
        link_of(model, i)
    } else {
        Some(live[i % live.len()])
    }
}

/// A session id the link believes open, else `s` itself.
fn known_sid(model: &Model, link: LinkId, s: u8) -> u8 {
    let known: Vec<u8> = model.open.get(&link).cloned().unwrap_or_default();
    if known.is_empty() || s == 5 {
        s
    } else {
        known[usize::from(s) % known.len()]
    }
}

fn payload(seq: usize, sender: LinkId, ws: u8, len: usize) -> Vec<u8> {
    let mut p = vec![TAG, ws];
    p.extend_from_slice(&(seq as u64).to_be_bytes());
    p.extend_from_slice(&sender.0.to_be_bytes());
    while p.len() < len {
        p.push((p.len() as u8).wrapping_mul(31) ^ (seq as u8));
    }
    p
}

fn parse_seq(p: &[u8]) -> usize {
    assert_eq!(p[0], TAG, "injected DATA");
    usize::try_from(u64::from_be_bytes(p[2..10].try_into().unwrap())).unwrap()
}

/// Drains every client's inbox and checks the invariants on what was delivered.
fn check(net: &mut Net, model: &mut Model) {
    let links: Vec<LinkId> = net.clients.keys().copied().collect();
    for link in links {
        for frame in net.take(link) {
            match frame {
                RelayFrame::Ready => {
                    let ws = model.claimed[&link];
                    model.ready.insert(link, ws);
                }
                RelayFrame::Close { code, session } => {
                    *model.closes.entry(code.0).or_default() += 1;
                    let s = u8::try_from(u64::from_be_bytes(session.0)).unwrap_or(255);
                    if let Some(open) = model.open.get_mut(&link) {
                        open.retain(|x| *x != s);
                    }
                }
                RelayFrame::GoAway { code, .. } => {
                    *model.goaways.entry(code.0).or_default() += 1;
                }
                RelayFrame::Data { session, payload } => {
                    let seq = parse_seq(&payload);
                    let (sender, s, sent) = model.sent[seq].clone();
                    // Unmodified, on its own session id (LINK-18, LINK-26).
                    assert_eq!(payload, sent, "DATA modified");
                    assert_eq!(session, sid(u64::from(s)), "DATA moved to another session");
                    // Same workspace (LINK-17).
                    // (A link's workspace is the one its first HELLO claimed; any later HELLO
                    // ends the link, LINK-8.)
                    let rx_ws = model.claimed.get(&link).copied();
                    assert_eq!(
                        rx_ws,
                        Some(usize::from(payload[1])),
                        "DATA crossed workspaces"
                    );
                    assert_eq!(model.claimed.get(&sender).copied(), rx_ws);
                    // Contiguous and in order per (sender, session, receiver).
                    let stream = &model.streams[&(sender, s)];
                    let pos = stream.iter().position(|s| *s == seq).unwrap();
                    if let Some(last) = model.delivered_at.get(&(sender, s, link)) {
                        assert_eq!(
                            pos,
                            last + 1,
                            "DATA reordered, duplicated or dropped mid-stream"
                        );
                    }
                    model.delivered_at.insert((sender, s, link), pos);
                    model.delivered += 1;
                }
                RelayFrame::Incoming { handshake, session } => {
                    let s = u8::try_from(u64::from_be_bytes(session.0)).unwrap();
                    model.open.entry(link).or_default().push(s);
                    // The controller's workspace is the first handshake byte.
                    assert_eq!(
                        model.claimed.get(&link).copied(),
                        Some(usize::from(handshake[0])),
                        "INCOMING crossed workspaces"
                    );
                }
                _ => {}
            }
        }
    }
    for link in &model.links {
        assert!(
            net.relay.queued_bytes(*link) <= LINK_BOUND + GOAWAY_MAX,
            "link queue over its bound"
        );
    }
}

fn step(net: &mut Net, model: &mut Model, op: Op) {
    match op {
        Op::Open => {
            let l = net.open();
            model.links.push(l);
        }
        Op::Hello { link, ws } => {
            let Some(l) = link_of(model, link) else {
                return;
            };
            let (name, cred) = WORKSPACES[ws];
            model.claimed.entry(l).or_insert(ws);
            net.send(l, &hello(Role::Controller, name, cred, &[]));
        }
        Op::Controller { ws, good } => {
            let l = net.open();
            model.links.push(l);
            let (name, cred) = WORKSPACES[ws];
            let cred = if good {
                cred
            } else {
                b"not-the-credential".as_slice()
            };
            model.claimed.entry(l).or_insert(ws);
            net.send(l, &hello(Role::Controller, name, cred, &[]));
        }
        Op::Host { ws, host, corrupt } => {
            let l = net.open();
            model.links.push(l);
            model.hosts.insert(l, host);
            let (name, cred) = WORKSPACES[ws];
            let (reg, msg1) = HostRegistration::start(&HOSTS[host], name).unwrap();
            model.claimed.entry(l).or_insert(ws);
            net.send(l, &hello(Role::Host, name, cred, &msg1));
            let challenge = match net.clients[&l].inbox.last() {
                Some(RelayFrame::HostChallenge { message }) => message.clone(),
                _ => return,
            };
            let mut proof = reg.respond(&challenge).unwrap();
            if corrupt {
                proof[5] ^= 1;
            }
            net.send(
                l,
                &RelayFrame::HostProof {
                    message: proof.to_vec(),
                },
            );
        }
        Op::OpenSession { link, host, sid: s } => {
            // Mostly from a live controller, to a host that registered (in any workspace).
            let controllers: Vec<LinkId> = model
                .links
                .iter()
                .copied()
                .filter(|l| {
                    !net.clients[l].closed
                        && model.claimed.contains_key(l)
                        && !model.hosts.contains_key(l)
                })
                .collect();
            let Some(l) = (if controllers.is_empty() || link == 7 {
                live_link(net, model, link)
            } else {
                Some(controllers[link % controllers.len()])
            }) else {
                return;
            };
            // Hosts of the controller's workspace first (some OPENs still go elsewhere).
            let ws = model.claimed.get(&l).copied();
            let live_hosts: Vec<usize> = model
                .hosts
                .iter()
                .filter(|(h, _)| {
                    !net.clients[h].closed && (s == 4 || model.claimed.get(h).copied() == ws)
                })
                .map(|(_, k)| *k)
                .collect();
            let host = if live_hosts.is_empty() || host == 2 {
                host
            } else {
                live_hosts[usize::from(s) % live_hosts.len()]
            };
            let used = model.used_sids.entry(l).or_default();
            if used.contains(&s) {
                return;
            }
            used.push(s);
            model.open.entry(l).or_default().push(s);
            let ws = model.claimed.get(&l).copied().unwrap_or(0);
            net.send(
                l,
                &RelayFrame::Open {
                    session: sid(u64::from(s)),
                    host_key: host_public(&HOSTS[host]),
                    handshake: vec![u8::try_from(ws).unwrap(), 1, 2, 3],
                },
            );
        }
        Op::Data { link, sid: s, len } => {
            // Mostly from a link with a session it believes open.
            let busy: Vec<LinkId> = model
                .links
                .iter()
                .copied()
                .filter(|l| {
                    !net.clients[l].closed && model.open.get(l).is_some_and(|o| !o.is_empty())
                })
                .collect();
            let Some(l) = (if busy.is_empty() || link == 7 {
                live_link(net, model, link)
            } else {
                Some(busy[link % busy.len()])
            }) else {
                return;
            };
            let s = known_sid(model, l, s);
            let seq = model.sent.len();
            let ws = model.claimed.get(&l).copied().unwrap_or(255);
            let p = payload(seq, l, u8::try_from(ws).unwrap_or(255), usize::from(len));
            model.sent.push((l, s, p.clone()));
            model.streams.entry((l, s)).or_default().push(seq);
            net.send(
                l,
                &RelayFrame::Data {
                    session: sid(u64::from(s)),
                    payload: p,
                },
            );
        }
        Op::Close { link, sid: s, code } => {
            let Some(l) = live_link(net, model, link) else {
                return;
            };
            let s = known_sid(model, l, s);
            if let Some(open) = model.open.get_mut(&l) {
                open.retain(|x| *x != s);
            }
            net.send(
                l,
                &RelayFrame::Close {
                    session: sid(u64::from(s)),
                    code: CloseCode(code),
                },
            );
        }
        Op::Ping { link, value } => {
            let Some(l) = live_link(net, model, link) else {
                return;
            };
            net.send(l, &RelayFrame::Ping { value });
        }
        Op::Frame { link, kind, n } => {
            let Some(l) = link_of(model, link) else {
                return;
            };
            let frame = match kind {
                0 => RelayFrame::Ready,
                1 => RelayFrame::HostChallenge {
                    message: vec![n; 48],
                },
                2 => RelayFrame::HostProof {
                    message: vec![n; 64],
                },
                3 => RelayFrame::Incoming {
                    session: sid(u64::from(n % 6)),
                    handshake: vec![n],
                },
                4 => RelayFrame::Pong {
                    value: u64::from(n),
                },
                5 => RelayFrame::GoAway {
                    code: CloseCode(u16::from(n)),
                    reason: "bye".into(),
                },
                6 => hello(Role::Host, "ws-a", CRED_A, &[n; 32]),
                7 => {
                    let mut f = hello(Role::Controller, "ws-a", CRED_A, &[]);
                    if let RelayFrame::Hello { version, .. } = &mut f {
                        *version = n;
                    }
                    f
                }
                8 => RelayFrame::Data {
                    session: sid(u64::from(n)),
                    payload: vec![n; 65_535],
                },
                _ => RelayFrame::Open {
                    session: sid(u64::from(n % 6)),
                    host_key: [n; 32],
                    handshake: vec![0; 512],
                },
            };
            net.send(l, &frame);
        }
        Op::Garbage { link, bytes } => {
            let Some(l) = link_of(model, link) else {
                return;
            };
            net.send_raw(l, &bytes);
        }
        Op::CloseLink { link } => {
            let Some(l) = link_of(model, link) else {
                return;
            };
            let now = net.now;
            net.relay.handle_link_closed(l, now);
            net.clients.get_mut(&l).unwrap().closed = true;
            net.drive();
        }
        Op::Reading { link, on } => {
            let Some(l) = live_link(net, model, link) else {
                return;
            };
            net.set_reading(l, on);
        }
        Op::Advance { ms } => net.advance(Duration::from_millis(u64::from(ms))),
    }
}

fn limits() -> RelayLimits {
    RelayLimits {
        session_queue_bytes: 3_000,
        link_queue_bytes: LINK_BOUND,
        max_sessions_per_host: 4,
        max_sessions_per_controller_link: 3,
        ..RelayLimits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn link17_link18_link23_link26_invariants_hold(ops in prop::collection::vec(op(), 10..150)) {
        let mut net = Net::new(config().with_limits(limits()));
        let mut model = Model::default();
        let trace = std::env::var("ROUTER_PROP_TRACE").is_ok();
        for op in ops {
            if trace {
                eprintln!("op {op:?}");
            }
            step(&mut net, &mut model, op);
            if trace {
                for (l, c) in &net.clients {
                    for f in &c.inbox {
                        eprintln!("  {l} <- {:?}", RelayFrame::type_name(f));
                        if let RelayFrame::Close { session, code } = f { eprintln!("      {session} {code}"); }
                    }
                }
            }
            check(&mut net, &mut model);
        }
        // Let every reader read, then check once more.
        let links = model.links.clone();
        for l in links {
            if !net.clients[&l].closed {
                net.set_reading(l, true);
            }
        }
        check(&mut net, &mut model);
        if std::env::var("ROUTER_PROP_STATS").is_ok() {
            eprintln!("delivered {} ready {} closes {:?} goaways {:?}", model.delivered, model.ready.len(), model.closes, model.goaways);
        }
        for l in &model.links {
            if !net.clients[l].closed {
                prop_assert_eq!(net.relay.queued_bytes(*l), 0);
            }
        }
    }
}

/// A fixed busy scenario, so that the property's code paths are known to be reached:
/// sessions in two workspaces with DATA delivered.
#[test]
fn property_harness_delivers_data() {
    let mut net = Net::new(config().with_limits(limits()));
    let mut model = Model::default();
    let ops = vec![
        Op::Host {
            ws: 0,
            host: 0,
            corrupt: false,
        },
        Op::Controller { ws: 0, good: true },
        Op::Host {
            ws: 1,
            host: 0,
            corrupt: false,
        },
        Op::Controller { ws: 1, good: true },
        Op::OpenSession {
            link: 0,
            host: 0,
            sid: 1,
        },
        Op::OpenSession {
            link: 1,
            host: 0,
            sid: 1,
        },
        Op::Data {
            link: 1,
            sid: 1,
            len: 100,
        },
        Op::Data {
            link: 0,
            sid: 1,
            len: 100,
        },
        Op::Data {
            link: 3,
            sid: 1,
            len: 100,
        },
        Op::Data {
            link: 2,
            sid: 1,
            len: 100,
        },
    ];
    for op in ops {
        step(&mut net, &mut model, op);
        check(&mut net, &mut model);
    }
    assert_eq!(model.delivered, 4);
}
