//! The client end of the relay link (`tether_proto::link::LinkClient`), without I/O: first
//! against a scripted relay (bytes in, bytes out), then host and controller clients against
//! the real relay state machine (`link::router::Relay`) in virtual time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use tether_proto::limits::{KEEPALIVE_INTERVAL, LINK_IDLE_TIMEOUT};
use tether_proto::link::registration::RelayRegistration;
use tether_proto::link::router::{LinkId, Relay, RelayConfig, RelayEvent, WorkspaceConfig};
use tether_proto::link::{
    ClientConfig, ClientError, CloseCode, Incoming, LinkClient, LinkEnd, LinkEvent, RelayFrame,
    Role, SessionId,
};

const WORKSPACE: &str = "acme";
const CREDENTIAL: &[u8] = b"0123456789abcdef";
const HOST_KEY: [u8; 32] = [0x11; 32];

fn config() -> ClientConfig {
    ClientConfig::new(WORKSPACE, CREDENTIAL)
}

fn transmits(client: &mut LinkClient) -> Vec<RelayFrame> {
    std::iter::from_fn(|| client.poll_transmit())
        .map(|b| RelayFrame::decode(&b).unwrap())
        .collect()
}

fn events(client: &mut LinkClient) -> Vec<LinkEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn bytes(frame: &RelayFrame) -> Vec<u8> {
    frame.to_bytes().unwrap()
}

/// A controller whose HELLO has been taken and that has received READY.
fn ready_controller(now: Instant) -> LinkClient {
    let mut c = LinkClient::controller(config(), now).unwrap();
    assert!(matches!(
        transmits(&mut c)[..],
        [RelayFrame::Hello {
            role: Role::Controller,
            ..
        }]
    ));
    c.handle_message(Incoming::Binary(&[0x04]), now); // READY
    assert_eq!(events(&mut c), [LinkEvent::Ready]);
    c
}

/// A host that has answered HOST_CHALLENGE and received READY.
fn ready_host(now: Instant) -> LinkClient {
    let mut h = LinkClient::host(config(), &HOST_KEY, now).unwrap();
    let [
        RelayFrame::Hello {
            role: Role::Host,
            registration,
            ..
        },
    ] = &transmits(&mut h)[..]
    else {
        panic!("no HELLO");
    };
    let mut relay = RelayRegistration::new(WORKSPACE, [0x22; 32]).unwrap();
    let msg2 = relay.read_hello(registration).unwrap();
    h.handle_message(
        Incoming::Binary(&bytes(&RelayFrame::HostChallenge {
            message: msg2.to_vec(),
        })),
        now,
    );
    let [RelayFrame::HostProof { message }] = &transmits(&mut h)[..] else {
        panic!("no HOST_PROOF");
    };
    // LINK-12: the proof carries the host's static key.
    let key = relay.read_proof(message).unwrap();
    assert_eq!(key, x25519_public(&HOST_KEY));
    h.handle_message(Incoming::Binary(&[0x04]), now);
    assert_eq!(events(&mut h), [LinkEvent::Ready]);
    h
}

fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*private).to_bytes()
}

/// The client ended with a GOAWAY of `code` citing `requirement`, and sends nothing after.
fn assert_violation(client: &mut LinkClient, code: CloseCode, requirement: &str) {
    assert_eq!(
        transmits(client),
        [RelayFrame::GoAway {
            code,
            reason: String::new()
        }],
        "GOAWAY {code} expected"
    );
    match &events(client)[..] {
        [
            LinkEvent::Ended(LinkEnd::Violation {
                code: c,
                requirement: r,
                ..
            }),
        ] => {
            assert_eq!((*c, *r), (code, requirement));
        }
        other => panic!("expected the link to end ({requirement}), got {other:?}"),
    }
    assert!(client.is_ended());
    assert_eq!(client.poll_timeout(), None);
    // LINK-27: nothing after the GOAWAY, whatever arrives or is asked.
    client.handle_message(
        Incoming::Binary(&bytes(&RelayFrame::Ping { value: 1 })),
        Instant::now(),
    );
    assert_eq!(
        client.send(SessionId([1; 8]), vec![1], Instant::now()),
        Err(ClientError::Ended)
    );
    assert!(client.poll_transmit().is_none());
    assert!(client.poll_event().is_none());
}

/// LINK-1: a text message from the relay gets GOAWAY PROTOCOL_ERROR, for both roles and in
/// every state.
#[test]
fn link_1_text_message_gets_goaway_protocol_error() {
    let now = Instant::now();
    for mut client in [
        ready_controller(now),
        ready_host(now),
        LinkClient::host(config(), &HOST_KEY, now).unwrap(),
        LinkClient::controller(config(), now).unwrap(),
    ] {
        let _ = transmits(&mut client);
        client.handle_message(Incoming::Text, now);
        assert_violation(&mut client, CloseCode::PROTOCOL_ERROR, "LINK-1");
    }
}

/// LINK-4: malformed frames (empty, unassigned type, truncated, trailing bytes) get GOAWAY
/// PROTOCOL_ERROR.
#[test]
fn link_4_malformed_frame_gets_goaway_protocol_error() {
    let now = Instant::now();
    for malformed in [
        &[][..],
        &[0xee][..],
        &[0x20, 0x00, 0x01][..],                   // PING, truncated
        &[0x04, 0x00][..],                         // READY with a trailing byte
        &[0x13, 0, 0, 0, 0, 0, 0, 0, 1, 0x00][..], // CLOSE, code truncated
    ] {
        for mut client in [ready_controller(now), ready_host(now)] {
            client.handle_message(Incoming::Binary(malformed), now);
            let role = client.role();
            let sent = transmits(&mut client);
            assert_eq!(
                sent,
                [RelayFrame::GoAway {
                    code: CloseCode::PROTOCOL_ERROR,
                    reason: String::new()
                }],
                "{role:?} {malformed:02x?}"
            );
            assert!(matches!(
                &events(&mut client)[..],
                [LinkEvent::Ended(LinkEnd::Violation {
                    code: CloseCode::PROTOCOL_ERROR,
                    ..
                })]
            ));
        }
    }
}

/// LINK-5: a message over 65544 bytes gets GOAWAY FRAME_TOO_LARGE, whether the socket
/// refused it or handed it over.
#[test]
fn link_5_oversized_message_gets_goaway_frame_too_large() {
    let now = Instant::now();
    let mut c = ready_controller(now);
    c.handle_message(Incoming::TooLarge, now);
    assert_violation(&mut c, CloseCode::FRAME_TOO_LARGE, "LINK-5");
    let mut h = ready_host(now);
    h.handle_message(Incoming::Binary(&vec![0x12; 65_545]), now);
    assert_violation(&mut h, CloseCode::FRAME_TOO_LARGE, "LINK-5");
}

/// LINK-35: a frame the client's state does not allow gets GOAWAY UNEXPECTED_FRAME
/// (section 3.5's table of what a relay may send).
#[test]
fn link_35_frames_the_state_does_not_allow() {
    let now = Instant::now();
    let session = SessionId([7; 8]);
    let incoming = RelayFrame::Incoming {
        session,
        handshake: vec![1],
    };
    let data = RelayFrame::Data {
        session,
        payload: vec![1],
    };
    let hello = RelayFrame::Hello {
        version: 1,
        role: Role::Controller,
        workspace: WORKSPACE.into(),
        credential: CREDENTIAL.to_vec(),
        registration: Vec::new(),
    };
    let challenge = RelayFrame::HostChallenge {
        message: vec![0; 48],
    };
    let open = RelayFrame::Open {
        session,
        host_key: [0; 32],
        handshake: vec![1],
    };
    let ping = RelayFrame::Ping { value: 3 };
    type Make = fn(Instant) -> LinkClient;
    let fresh_host: Make = |now| {
        let mut h = LinkClient::host(config(), &HOST_KEY, now).unwrap();
        let _ = transmits(&mut h);
        h
    };
    let fresh_controller: Make = |now| {
        let mut c = LinkClient::controller(config(), now).unwrap();
        let _ = transmits(&mut c);
        c
    };
    let cases: Vec<(&str, Make, RelayFrame)> = vec![
        // A host before HOST_CHALLENGE: READY, DATA, PING are not allowed.
        (
            "host awaiting challenge, READY",
            fresh_host,
            RelayFrame::Ready,
        ),
        ("host awaiting challenge, DATA", fresh_host, data.clone()),
        ("host awaiting challenge, PING", fresh_host, ping.clone()),
        // A controller before READY: only READY and GOAWAY.
        (
            "controller awaiting READY, HOST_CHALLENGE",
            fresh_controller,
            challenge.clone(),
        ),
        (
            "controller awaiting READY, DATA",
            fresh_controller,
            data.clone(),
        ),
        ("controller awaiting READY, PING", fresh_controller, ping),
        // READY links.
        ("controller, INCOMING", ready_controller, incoming),
        (
            "controller, second READY",
            ready_controller,
            RelayFrame::Ready,
        ),
        ("controller, HELLO", ready_controller, hello.clone()),
        ("host, OPEN", ready_host, open),
        ("host, HOST_CHALLENGE after READY", ready_host, challenge),
        ("host, HELLO", ready_host, hello),
    ];
    for (name, make, frame) in cases {
        let mut client = make(now);
        client.handle_message(Incoming::Binary(&bytes(&frame)), now);
        let sent = transmits(&mut client);
        assert_eq!(
            sent,
            [RelayFrame::GoAway {
                code: CloseCode::UNEXPECTED_FRAME,
                reason: String::new()
            }],
            "{name}"
        );
        match &events(&mut client)[..] {
            [
                LinkEvent::Ended(LinkEnd::Violation {
                    requirement: "LINK-35",
                    ..
                }),
            ] => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// A host answers a second HOST_CHALLENGE (after its proof) with UNEXPECTED_FRAME, and a
/// challenge that does not authenticate ends the link (LINK-12).
#[test]
fn link_12_registration_ends_on_a_bad_or_repeated_challenge() {
    let now = Instant::now();
    let mut h = LinkClient::host(config(), &HOST_KEY, now).unwrap();
    let _ = transmits(&mut h);
    h.handle_message(
        Incoming::Binary(&bytes(&RelayFrame::HostChallenge {
            message: vec![0x42; 48],
        })),
        now,
    );
    assert!(transmits(&mut h).is_empty());
    match &events(&mut h)[..] {
        [
            LinkEvent::Ended(LinkEnd::Lost {
                requirement: Some("LINK-12"),
                ..
            }),
        ] => {}
        other => panic!("{other:?}"),
    }
}

/// LINK-25: after 20 s without sending a READY client sends PING, and it answers a PING
/// with a PONG of the same value. LINK-36: 60 s without receiving ends the link, without a
/// GOAWAY.
#[test]
fn link_25_keepalive_and_link_36_idle() {
    let t0 = Instant::now();
    let mut c = ready_controller(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + KEEPALIVE_INTERVAL));
    c.handle_timeout(t0 + KEEPALIVE_INTERVAL - Duration::from_millis(1));
    assert!(transmits(&mut c).is_empty());
    c.handle_timeout(t0 + KEEPALIVE_INTERVAL);
    assert!(matches!(transmits(&mut c)[..], [RelayFrame::Ping { .. }]));
    let t1 = t0 + Duration::from_secs(30);
    c.handle_message(
        Incoming::Binary(&bytes(&RelayFrame::Ping { value: 0xfeed })),
        t1,
    );
    assert_eq!(transmits(&mut c), [RelayFrame::Pong { value: 0xfeed }]);
    // Sending resets the keepalive timer; receiving the idle timer.
    assert_eq!(c.poll_timeout(), Some(t1 + KEEPALIVE_INTERVAL));
    // Only PINGs go out from now on: the idle timer runs from t1.
    let mut t = t1;
    while !c.is_ended() {
        t = c.poll_timeout().unwrap();
        c.handle_timeout(t);
        for frame in transmits(&mut c) {
            assert!(matches!(frame, RelayFrame::Ping { .. }), "{frame:?}");
        }
        assert!(t <= t1 + LINK_IDLE_TIMEOUT, "idle timer not fired");
    }
    assert_eq!(t, t1 + LINK_IDLE_TIMEOUT);
    match &events(&mut c)[..] {
        [
            LinkEvent::Ended(
                end @ LinkEnd::Lost {
                    requirement: Some("LINK-36"),
                    ..
                },
            ),
        ] => {
            assert!(end.should_reconnect());
        }
        other => panic!("{other:?}"),
    }
}

/// No READY within the configured time ends the link.
#[test]
fn ready_deadline() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.ready_timeout = Duration::from_secs(5);
    let mut h = LinkClient::host(cfg, &HOST_KEY, t0).unwrap();
    assert_eq!(h.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    h.handle_timeout(t0 + Duration::from_secs(5));
    assert!(matches!(
        &events(&mut h)[..],
        [LinkEvent::Ended(LinkEnd::Lost { .. })]
    ));
}

/// LINK-27: after a GOAWAY either way the client sends nothing; LINK-28: which ends call
/// for an automatic reconnection.
#[test]
fn link_27_goaway_either_way_and_link_28_reconnect() {
    let now = Instant::now();
    let mut c = ready_controller(now);
    c.handle_message(
        Incoming::Binary(&bytes(&RelayFrame::GoAway {
            code: CloseCode::REPLACED,
            reason: "x".into(),
        })),
        now,
    );
    let ev = events(&mut c);
    let [LinkEvent::Ended(end)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(!end.should_reconnect());
    assert!(transmits(&mut c).is_empty());
    for code in [
        CloseCode::AUTH_FAILED,
        CloseCode::REMOTE_ACCESS_DISABLED,
        CloseCode::UNSUPPORTED_VERSION,
    ] {
        assert!(
            !LinkEnd::GoAway {
                code,
                reason: String::new()
            }
            .should_reconnect()
        );
    }
    assert!(
        LinkEnd::GoAway {
            code: CloseCode::GOING_AWAY,
            reason: String::new()
        }
        .should_reconnect()
    );

    let mut h = ready_host(now);
    let long = "é".repeat(200);
    h.close(CloseCode::GOING_AWAY, &long, now);
    let [RelayFrame::GoAway { code, reason }] = &transmits(&mut h)[..] else {
        panic!()
    };
    assert_eq!(*code, CloseCode::GOING_AWAY);
    assert!(reason.len() <= 255 && long.starts_with(reason.as_str()));
    assert_eq!(
        events(&mut h),
        [LinkEvent::Ended(LinkEnd::Closed {
            code: CloseCode::GOING_AWAY
        })]
    );
    h.close(CloseCode::NORMAL, "", now);
    h.handle_timeout(now + Duration::from_secs(100));
    assert!(transmits(&mut h).is_empty());
}

/// LINK-38: a controller may send OPEN right after HELLO, also one longer than 512 bytes
/// (the relay processes it in READY, LINK-6); a host sends nothing before READY but its
/// registration.
#[test]
fn link_38_pipelining_after_hello() {
    let now = Instant::now();
    let session = SessionId([1; 8]);
    let mut c = LinkClient::controller(config(), now).unwrap();
    c.open(session, [3; 32], vec![0; 400], now).unwrap();
    c.open(SessionId([2; 8]), [3; 32], vec![0; 512], now)
        .unwrap();
    let sent = transmits(&mut c);
    assert!(matches!(
        sent[..],
        [
            RelayFrame::Hello { .. },
            RelayFrame::Open { .. },
            RelayFrame::Open { .. }
        ]
    ));
    let mut h = LinkClient::host(config(), &HOST_KEY, now).unwrap();
    assert_eq!(h.send(session, vec![1], now), Err(ClientError::NotReady));
    assert_eq!(
        h.open(session, [3; 32], vec![1], now),
        Err(ClientError::HostCannotOpen)
    );
    // LINK-33: an empty DATA payload cannot be encoded.
    let mut c = ready_controller(now);
    assert!(matches!(
        c.send(session, Vec::new(), now),
        Err(ClientError::Frame(_))
    ));
}

/// The transport closing ends the link as lost, with nothing sent.
#[test]
fn transport_closed() {
    let now = Instant::now();
    let mut h = ready_host(now);
    h.handle_message(Incoming::Closed("reset"), now);
    assert!(transmits(&mut h).is_empty());
    assert_eq!(events(&mut h), [LinkEvent::Ended(LinkEnd::lost("reset"))]);
}

// --- host and controller clients against the real relay state machine, virtual time ---

struct Peer {
    link: LinkId,
    client: LinkClient,
    events: Vec<LinkEvent>,
}

struct Pair {
    relay: Relay,
    now: Instant,
    host: Peer,
    controller: Peer,
    rng: u8,
}

impl Pair {
    fn new() -> Self {
        let now = Instant::now();
        let mut relay = Relay::new(
            RelayConfig::default()
                .with_workspace(WORKSPACE, WorkspaceConfig::new(CREDENTIAL, true)),
        );
        let host = Peer {
            link: relay.handle_link_opened(now),
            client: LinkClient::host(config(), &HOST_KEY, now).unwrap(),
            events: Vec::new(),
        };
        let controller = Peer {
            link: relay.handle_link_opened(now),
            client: LinkClient::controller(config(), now).unwrap(),
            events: Vec::new(),
        };
        let mut pair = Self {
            relay,
            now,
            host,
            controller,
            rng: 0,
        };
        pair.drive();
        pair
    }

    /// Moves bytes both ways until nothing moves.
    fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for peer in [&mut self.host, &mut self.controller] {
                while let Some(bytes) = peer.client.poll_transmit() {
                    moved = true;
                    let rng = &mut self.rng;
                    self.relay
                        .handle_frame(peer.link, &bytes, self.now, &mut || {
                            *rng += 1;
                            [*rng; 32]
                        });
                }
                while let Some(bytes) = self.relay.poll_transmit(peer.link) {
                    moved = true;
                    peer.client
                        .handle_message(Incoming::Binary(&bytes), self.now);
                }
                peer.events
                    .extend(std::iter::from_fn(|| peer.client.poll_event()));
            }
            while let Some(event) = self.relay.poll_event() {
                if let RelayEvent::CloseLink { link, .. } | RelayEvent::PeerGoingAway { link, .. } =
                    event
                {
                    for peer in [&mut self.host, &mut self.controller] {
                        if peer.link == link {
                            while let Some(bytes) = self.relay.poll_transmit(link) {
                                peer.client
                                    .handle_message(Incoming::Binary(&bytes), self.now);
                            }
                            peer.client
                                .handle_message(Incoming::Closed("closed"), self.now);
                            peer.events
                                .extend(std::iter::from_fn(|| peer.client.poll_event()));
                        }
                    }
                    self.relay.handle_link_closed(link, self.now);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// Advances virtual time to the next timer of any of the three, fires it, drives.
    fn step(&mut self, until: Instant) -> bool {
        let next = [
            self.relay.poll_timeout(),
            self.host.client.poll_timeout(),
            self.controller.client.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) if t <= until => {
                self.now = t.max(self.now);
                self.relay.handle_timeout(self.now);
                self.host.client.handle_timeout(self.now);
                self.controller.client.handle_timeout(self.now);
                self.drive();
                true
            }
            _ => {
                self.now = until;
                false
            }
        }
    }
}

/// A host registers (LINK-12), a controller opens a session to it, DATA crosses both ways,
/// both keep the link alive through ten minutes of silence (LINK-25 against the relay's
/// LINK-24), and a CLOSE reaches the other end.
#[test]
fn host_and_controller_clients_through_the_relay_state_machine() {
    let mut p = Pair::new();
    assert_eq!(std::mem::take(&mut p.host.events), [LinkEvent::Ready]);
    assert_eq!(std::mem::take(&mut p.controller.events), [LinkEvent::Ready]);
    let session = SessionId([9; 8]);
    let now = p.now;
    p.controller
        .client
        .open(session, x25519_public(&HOST_KEY), b"msg1".to_vec(), now)
        .unwrap();
    p.drive();
    assert_eq!(
        p.host.events.pop(),
        Some(LinkEvent::Incoming {
            session,
            handshake: b"msg1".to_vec()
        })
    );
    p.host
        .client
        .send(session, b"to controller".to_vec(), now)
        .unwrap();
    p.controller
        .client
        .send(session, b"to host".to_vec(), now)
        .unwrap();
    p.drive();
    assert_eq!(
        p.controller.events.pop(),
        Some(LinkEvent::Data {
            session,
            payload: b"to controller".to_vec()
        })
    );
    assert_eq!(
        p.host.events.pop(),
        Some(LinkEvent::Data {
            session,
            payload: b"to host".to_vec()
        })
    );

    let end = p.now + Duration::from_secs(600);
    let mut steps = 0;
    while p.step(end) {
        steps += 1;
        assert!(steps < 10_000, "timers never settle");
    }
    assert!(
        p.host.client.is_ready() && p.controller.client.is_ready(),
        "a link dropped while idle"
    );
    assert!(
        p.host.events.is_empty() && p.controller.events.is_empty(),
        "{:?} {:?}",
        p.host.events,
        p.controller.events
    );

    let now = p.now;
    p.host
        .client
        .close_session(session, CloseCode::NORMAL, now)
        .unwrap();
    p.drive();
    assert_eq!(
        p.controller.events.pop(),
        Some(LinkEvent::Close {
            session,
            code: CloseCode::NORMAL
        })
    );

    // The host leaves; the controller's link stays up.
    p.host.client.close(CloseCode::GOING_AWAY, "", now);
    p.drive();
    assert_eq!(
        p.host.events.pop(),
        Some(LinkEvent::Ended(LinkEnd::Closed {
            code: CloseCode::GOING_AWAY
        }))
    );
    assert!(p.controller.client.is_ready());
}

/// A wrong credential: the relay's GOAWAY AUTH_FAILED reaches the client as an end that is
/// not retried (LINK-10, LINK-28).
#[test]
fn wrong_credential_is_final() {
    let now = Instant::now();
    let mut relay = Relay::new(RelayConfig::default().with_workspace(
        WORKSPACE,
        WorkspaceConfig::new(b"another-credential-0", true),
    ));
    let link = relay.handle_link_opened(now);
    let mut c = LinkClient::controller(config(), now).unwrap();
    while let Some(b) = c.poll_transmit() {
        relay.handle_frame(link, &b, now, &mut || [7; 32]);
    }
    while let Some(b) = relay.poll_transmit(link) {
        c.handle_message(Incoming::Binary(&b), now);
    }
    let ev = events(&mut c);
    let [
        LinkEvent::Ended(
            end @ LinkEnd::GoAway {
                code: CloseCode::AUTH_FAILED,
                ..
            },
        ),
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert!(!end.should_reconnect());
}
