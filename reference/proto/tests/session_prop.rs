//! Property test: arbitrary interleavings of controllers pairing, resuming, replaying,
//! tampering and timing out against one host keep the invariants of `spec/04`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tether_proto::channel::{HostInfo, PathStyle, Timestamp};
use tether_proto::cmd::{Message, Request};
use tether_proto::keys::public_key;
use tether_proto::link::{RelayFrame, SessionId};
use tether_proto::session::{
    Controller, ControllerConfig, ControllerEvent, Host, HostConfig, HostEvent, MemoryHostStore,
    Purpose,
};
use tether_proto::time::UnixTime;

const HOST_PRIVATE: [u8; 32] = [0x11; 32];
const WALL0: u64 = 1_800_000_000;

#[derive(Clone, Debug)]
enum Op {
    /// Controller `key` opens a session; `token` = Some(i) pairs with token i
    /// (`good` = right secret), `skew` seconds added to its clock.
    Connect {
        key: u8,
        token: Option<(u8, bool)>,
        skew: i16,
    },
    /// Deliver the next queued frame of controller `c` to the host, flipping bit `flip`
    /// of its payload if given.
    ToHost { c: u8, flip: Option<u16> },
    /// Deliver everything the host has queued.
    ToControllers,
    /// Replay the message 1 of controller `c` under session id `sid`.
    Replay { c: u8, sid: u8 },
    /// Send a request from controller `c`.
    Send { c: u8 },
    /// Answer a pending confirmation.
    Confirm { accept: bool },
    /// Let time pass.
    Wait { secs: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0u8..3,
            proptest::option::of((0u8..2, any::<bool>())),
            -5i16..700
        )
            .prop_map(|(key, token, skew)| Op::Connect { key, token, skew }),
        (0u8..8, proptest::option::of(0u16..800)).prop_map(|(c, flip)| Op::ToHost { c, flip }),
        Just(Op::ToControllers),
        (0u8..8, 0u8..8).prop_map(|(c, sid)| Op::Replay { c, sid }),
        (0u8..8).prop_map(|c| Op::Send { c }),
        any::<bool>().prop_map(|accept| Op::Confirm { accept }),
        (0u16..120).prop_map(|secs| Op::Wait { secs }),
    ]
}

struct World {
    host: Host,
    store: MemoryHostStore,
    controllers: Vec<(Controller, Vec<u8>, bool)>, // controller, its message 1, established seen
    now: Instant,
    wall: UnixTime,
    established: HashSet<SessionId>,
    pairings_by_token: HashMap<[u8; 16], usize>,
    accepted_msg1: HashSet<Vec<u8>>,
    last_ts: HashMap<u8, Timestamp>,
    next_sid: u8,
}

fn token_id(i: u8) -> [u8; 16] {
    [0x40 + i; 16]
}

impl World {
    fn new(confirm: bool) -> Self {
        let mut store = MemoryHostStore::new();
        for i in 0..2 {
            store.add_token(token_id(i), &[0x50 + i; 32], WALL0 + 300);
        }
        Self {
            host: Host::new(HostConfig {
                static_private: HOST_PRIVATE,
                workspace: "acme".into(),
                host_info: HostInfo {
                    name: "h".into(),
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    shell: "sh".into(),
                    path_style: PathStyle::Posix,
                    capabilities: vec![],
                    protocol: "tether/1".into(),
                },
                remote_access: true,
                confirm_pairing: confirm,
            }),
            store,
            controllers: Vec::new(),
            now: Instant::now(),
            wall: UnixTime::from_secs(WALL0),
            established: HashSet::new(),
            pairings_by_token: HashMap::new(),
            accepted_msg1: HashSet::new(),
            last_ts: HashMap::new(),
            next_sid: 0,
        }
    }

    /// Host events, checked against the invariants as they come.
    fn drain_host(&mut self, pending_pair: &HashMap<SessionId, ([u8; 16], Vec<u8>)>) {
        while let Some(ev) = self.host.poll_event() {
            match ev {
                HostEvent::Established {
                    session, paired, ..
                } => {
                    assert!(self.established.insert(session), "established twice");
                    if paired.is_some() {
                        let (token, _) = pending_pair.get(&session).expect("pairing session");
                        let n = self.pairings_by_token.entry(*token).or_default();
                        *n += 1;
                        // A consumed token never pairs twice (CHAN-12).
                        assert_eq!(*n, 1, "token paired twice");
                    }
                }
                HostEvent::Message { session, .. } | HostEvent::Rejected { session, .. } => {
                    // No plaintext before the handshake completes (CHAN-15).
                    assert!(self.established.contains(&session));
                }
                HostEvent::Closed { session, .. } => {
                    self.established.remove(&session);
                }
                _ => {}
            }
        }
    }
}

fn run(ops: Vec<Op>, confirm: bool) {
    let mut w = World::new(confirm);
    let mut pending_pair: HashMap<SessionId, ([u8; 16], Vec<u8>)> = HashMap::new();
    for op in ops {
        match op {
            Op::Connect { key, token, skew } => {
                if w.controllers.len() >= 8 {
                    continue;
                }
                let private = [0x20 + key; 32];
                let clock = if skew >= 0 {
                    w.wall
                        .saturating_add(Duration::from_secs(skew.unsigned_abs().into()))
                } else {
                    w.wall
                        .saturating_sub(Duration::from_secs(skew.unsigned_abs().into()))
                };
                let ts = Timestamp::next_after(w.last_ts.get(&key).copied(), clock);
                w.last_ts.insert(key, ts);
                let sid = SessionId([w.next_sid; 8]);
                w.next_sid += 1;
                let purpose = match token {
                    None => Purpose::Resume,
                    Some((i, good)) => {
                        pending_pair.insert(sid, (token_id(i), vec![key]));
                        Purpose::Pair {
                            token_id: token_id(i),
                            token_secret: if good { [0x50 + i; 32] } else { [0; 32] },
                            device_name: format!("d{key}"),
                        }
                    }
                };
                let c = Controller::connect(
                    ControllerConfig {
                        static_private: private,
                        host_key: public_key(&HOST_PRIVATE),
                        workspace: "acme".into(),
                        session: sid,
                        timestamp: ts,
                        purpose,
                        handshake_timeout: Duration::from_secs(75),
                    },
                    w.now,
                )
                .unwrap();
                w.controllers.push((c, Vec::new(), false));
            }
            Op::ToHost { c, flip } => {
                let Some((ctl, msg1, _)) = w.controllers.get_mut(usize::from(c)) else {
                    continue;
                };
                let Some(frame) = ctl.poll_transmit() else {
                    continue;
                };
                match frame {
                    RelayFrame::Open {
                        session, handshake, ..
                    } => {
                        let mut hs = handshake.clone();
                        if let Some(bit) = flip {
                            let i = usize::from(bit / 8) % hs.len();
                            hs[i] ^= 1 << (bit % 8);
                        }
                        *msg1 = handshake;
                        w.host
                            .handle_incoming(session, &hs, w.now, w.wall, &mut w.store);
                    }
                    RelayFrame::Data {
                        session,
                        mut payload,
                    } => {
                        if let Some(bit) = flip {
                            let i = usize::from(bit / 8) % payload.len();
                            payload[i] ^= 1 << (bit % 8);
                        }
                        w.host.handle_data(session, &payload);
                    }
                    RelayFrame::Close { session, code } => w.host.handle_close(session, code),
                    other => panic!("{other:?}"),
                }
            }
            Op::ToControllers => {
                while let Some(frame) = w.host.poll_transmit() {
                    let (session, data, close) = match frame {
                        RelayFrame::Data { session, payload } => (session, Some(payload), None),
                        RelayFrame::Close { session, code } => (session, None, Some(code)),
                        other => panic!("host sent {other:?}"),
                    };
                    for (ctl, _, _) in &mut w.controllers {
                        if ctl.session() == session {
                            if let Some(d) = &data {
                                ctl.handle_data(d);
                            }
                            if let Some(code) = close {
                                ctl.handle_close(code);
                            }
                        }
                    }
                }
            }
            Op::Replay { c, sid } => {
                if let Some((_, msg1, _)) = w.controllers.get(usize::from(c))
                    && !msg1.is_empty()
                {
                    let m = msg1.clone();
                    w.host
                        .handle_incoming(SessionId([sid; 8]), &m, w.now, w.wall, &mut w.store);
                }
            }
            Op::Send { c } => {
                if let Some((ctl, _, _)) = w.controllers.get_mut(usize::from(c)) {
                    let r = ctl.send(&Message::Request(Request::new(1, "thread/list", None)));
                    assert_eq!(r.is_ok(), ctl.is_established());
                }
            }
            Op::Confirm { accept } => {
                let waiting: Vec<SessionId> = pending_pair.keys().copied().collect();
                for s in waiting {
                    w.host.confirm_pairing(s, accept, w.wall, &mut w.store);
                }
            }
            Op::Wait { secs } => {
                w.now += Duration::from_secs(secs.into());
                w.wall = w.wall.saturating_add(Duration::from_secs(secs.into()));
                w.host.handle_timeout(w.now);
                for (ctl, _, _) in &mut w.controllers {
                    ctl.handle_timeout(w.now);
                }
            }
        }
        w.drain_host(&pending_pair);
        // Each accepted message 1 is accepted once only (CHAN-10, CHAN-12).
        for (ctl, msg1, seen) in &mut w.controllers {
            while let Some(ev) = ctl.poll_event() {
                match ev {
                    ControllerEvent::Established { .. } => {
                        assert!(!*seen);
                        *seen = true;
                        assert!(
                            w.accepted_msg1.insert(msg1.clone()),
                            "message 1 accepted twice"
                        );
                    }
                    ControllerEvent::Message(_) | ControllerEvent::Rejected(_) => {
                        assert!(*seen, "plaintext before message 2");
                    }
                    ControllerEvent::Closed { .. } => {}
                    _ => {}
                }
            }
        }
        assert!(w.host.session_count() <= 64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sessions_keep_their_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, false);
    }

    #[test]
    fn sessions_with_confirmation_keep_their_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, true);
    }
}
