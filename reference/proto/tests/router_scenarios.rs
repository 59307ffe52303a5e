//! The relay state machine, rule by rule (`spec/03`, `LINK-*`), through the deterministic
//! harness in `router_util`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod router_util;

use std::time::Duration;

use router_util::*;
use tether_proto::link::router::{RelayConfig, RelayEvent, RelayLimits, WorkspaceConfig};
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};

const HOST_1: [u8; 32] = [0x01; 32];
const HOST_2: [u8; 32] = [0x02; 32];

fn open_frame(session: SessionId, host: &[u8; 32], handshake: &[u8]) -> RelayFrame {
    RelayFrame::Open {
        session,
        host_key: host_public(host),
        handshake: handshake.to_vec(),
    }
}

fn data(session: SessionId, payload: &[u8]) -> RelayFrame {
    RelayFrame::Data {
        session,
        payload: payload.to_vec(),
    }
}

fn close(session: SessionId, code: CloseCode) -> RelayFrame {
    RelayFrame::Close { session, code }
}

/// A net with host HOST_1 in ws-a and one controller with session 7 open to it.
fn with_session() -> (
    Net,
    tether_proto::link::router::LinkId,
    tether_proto::link::router::LinkId,
) {
    let mut net = Net::new(config());
    let h = net.host("ws-a", CRED_A, &HOST_1);
    let c = net.controller("ws-a", CRED_A);
    net.send(c, &open_frame(sid(7), &HOST_1, &[0xaa; 48]));
    assert_eq!(
        net.take(h),
        vec![RelayFrame::Incoming {
            session: sid(7),
            handshake: vec![0xaa; 48]
        }]
    );
    (net, h, c)
}

fn assert_goaway(net: &Net, link: tether_proto::link::router::LinkId, code: CloseCode) {
    assert!(net.is_closed(link), "{link} not closed");
    assert_eq!(net.goaway_code(link), Some(code));
}

#[test]
fn link12_link18_register_open_and_data_both_ways_in_order() {
    let (mut net, h, c) = with_session();
    assert!(net.events.iter().any(|e| matches!(
        e,
        RelayEvent::HostRegistered { link, workspace, host_key }
            if *link == h && workspace == "ws-a" && *host_key == host_public(&HOST_1)
    )));
    // DATA both ways, interleaved, several frames each way.
    let mut sent_c = Vec::new();
    let mut sent_h = Vec::new();
    for i in 0..20u8 {
        let p: Vec<u8> = (0..(usize::from(i) * 37 + 1))
            .map(|j| u8::try_from(j % 256).unwrap() ^ i)
            .collect();
        net.send(c, &data(sid(7), &p));
        sent_c.push(data(sid(7), &p).to_bytes().unwrap());
        let q = vec![i; 1000 + i as usize];
        net.send(h, &data(sid(7), &q));
        sent_h.push(data(sid(7), &q).to_bytes().unwrap());
    }
    // LINK-26: byte-for-byte, in order, nothing injected.
    let got_h: Vec<Vec<u8>> = net.clients[&h].received[3..].to_vec(); // after HOST_CHALLENGE, READY, INCOMING
    assert_eq!(got_h, sent_c);
    let got_c: Vec<Vec<u8>> = net.clients[&c].received[1..].to_vec(); // after READY
    assert_eq!(got_c, sent_h);
    // A maximum-size DATA frame (65535-byte payload) passes too (LINK-5).
    net.send(c, &data(sid(7), &vec![0x42; 65_535]));
    let last = net.take(h).pop().unwrap();
    assert_eq!(last, data(sid(7), &vec![0x42; 65_535]));
}

#[test]
fn link12_ready_frame_bytes() {
    let mut net = Net::new(config());
    let c = net.controller("ws-a", CRED_A);
    assert_eq!(net.clients[&c].received, vec![hex::decode("04").unwrap()]);
}

#[test]
fn link3_unsupported_version() {
    let mut net = Net::new(config());
    let l = net.open();
    let mut frame = hello(Role::Controller, "ws-a", CRED_A, &[]);
    if let RelayFrame::Hello { version, .. } = &mut frame {
        *version = 2;
    }
    net.send(l, &frame);
    assert_goaway(&net, l, CloseCode::UNSUPPORTED_VERSION);
}

/// LINK-41: the version byte of a HELLO is read before the rest is decoded, so a later
/// version's layout is UNSUPPORTED_VERSION, never PROTOCOL_ERROR; the single byte 01 is
/// still Truncated.
#[test]
fn link41_version_read_before_the_rest() {
    let v1 = hello(Role::Controller, "ws-a", CRED_A, &[])
        .to_bytes()
        .unwrap();
    let mut too_long = v1.clone();
    too_long[1] = 0xff;
    too_long.extend_from_slice(&[0x5a; 16]);
    for bytes in [
        vec![0x01, 0x02],
        vec![0x01, 0x02, 0x07, 0x00, 0x00],
        too_long,
        hex::decode("01000204414340450f").unwrap(),
    ] {
        let mut net = Net::new(config());
        let l = net.open();
        net.send_raw(l, &bytes);
        assert_goaway(&net, l, CloseCode::UNSUPPORTED_VERSION);
        // In READY too: the version comes before the state (LINK-40).
        let c = net.controller("ws-a", CRED_A);
        net.send_raw(c, &bytes);
        assert_goaway(&net, c, CloseCode::UNSUPPORTED_VERSION);
    }
    let mut net = Net::new(config());
    let l = net.open();
    net.send_raw(l, &[0x01]);
    assert_goaway(&net, l, CloseCode::PROTOCOL_ERROR);
}

/// LINK-40: a malformed frame the state does not allow is PROTOCOL_ERROR, not
/// UNEXPECTED_FRAME; a text message before READY is PROTOCOL_ERROR whatever its length.
#[test]
fn link40_which_check_wins() {
    let mut net = Net::new(config());
    let l = net.open();
    net.send_raw(l, &[0x20, 0, 0, 0, 1]);
    assert_goaway(&net, l, CloseCode::PROTOCOL_ERROR);
    let c = net.controller("ws-a", CRED_A);
    let mut challenge = vec![0x02];
    challenge.extend_from_slice(&[0x22; 10]);
    net.send_raw(c, &challenge);
    assert_goaway(&net, c, CloseCode::PROTOCOL_ERROR);
    let l = net.open();
    net.relay.handle_text_message(l, net.now);
    net.drive();
    assert_goaway(&net, l, CloseCode::PROTOCOL_ERROR);
}

/// LINK-6: judged when processed. An OPEN of 553 bytes right after an accepted HELLO is
/// processed in READY.
#[test]
fn link6_pipelined_open_after_accepted_hello_is_not_capped() {
    let mut net = Net::new(config());
    let host_private = [0x42; 32];
    let h = net.host("ws-a", CRED_A, &host_private);
    let l = net.open();
    net.send(l, &hello(Role::Controller, "ws-a", CRED_A, &[]));
    let open = open_frame(sid(9), &host_private, &[0x33; 512]);
    assert_eq!(open.to_bytes().unwrap().len(), 553);
    net.send(l, &open);
    assert!(!net.is_closed(l));
    let (to_c, to_h) = (net.take(l), net.take(h));
    assert!(
        to_h.iter()
            .any(|f| matches!(f, RelayFrame::Incoming { session, .. } if *session == sid(9))),
        "{to_c:?} {to_h:?}"
    );
}

#[test]
fn link4_malformed_frames_give_protocol_error() {
    for bytes in [
        hex::decode("").unwrap(),                     // empty
        hex::decode("ff").unwrap(),                   // unknown type
        hex::decode("2000000000000000").unwrap(),     // PING truncated
        hex::decode("200000000000000000ff").unwrap(), // PING + trailing byte
    ] {
        let mut net = Net::new(config());
        let c = net.controller("ws-a", CRED_A);
        net.send_raw(c, &bytes);
        assert_goaway(&net, c, CloseCode::PROTOCOL_ERROR);
        let l = net.open();
        net.send_raw(l, &bytes);
        assert_goaway(&net, l, CloseCode::PROTOCOL_ERROR);
    }
}

#[test]
fn link1_text_message_gives_protocol_error() {
    let mut net = Net::new(config());
    let c = net.controller("ws-a", CRED_A);
    net.relay.handle_text_message(c, net.now);
    net.drive();
    assert_goaway(&net, c, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn link5_link6_frame_size_limits() {
    let mut net = Net::new(config());
    // LINK-6: 513 bytes before READY, even if otherwise garbage.
    let l = net.open();
    net.send_raw(l, &[0x20; 513]);
    assert_goaway(&net, l, CloseCode::FRAME_TOO_LARGE);
    // 512 bytes pre-auth is decoded (here: a malformed PING).
    let l = net.open();
    net.send_raw(l, &[0x20; 512]);
    assert_goaway(&net, l, CloseCode::PROTOCOL_ERROR);
    // LINK-5: 65545 bytes after READY.
    let (mut net, h, c) = with_session();
    let mut big = data(sid(7), &vec![1; 65_535]).to_bytes().unwrap();
    big.push(0);
    net.send_raw(c, &big);
    assert_goaway(&net, c, CloseCode::FRAME_TOO_LARGE);
    // ... and the host hears the session is gone (LINK-21).
    assert_eq!(net.take(h), vec![close(sid(7), CloseCode::PEER_GONE)]);
}

#[test]
fn link8_unexpected_frames() {
    let (mut net, h, c) = with_session();
    let _ = (h, c);
    let cases: Vec<(bool, RelayFrame)> = vec![
        // (needs READY controller?, frame)
        (false, RelayFrame::Ping { value: 1 }), // first frame not HELLO
        (false, RelayFrame::Ready),             // relay-only
        (
            false,
            RelayFrame::HostProof {
                message: vec![0; 64],
            },
        ), // proof before HELLO
        (true, RelayFrame::Ready),
        (
            true,
            RelayFrame::HostChallenge {
                message: vec![0; 48],
            },
        ),
        (
            true,
            RelayFrame::Incoming {
                session: sid(1),
                handshake: vec![1],
            },
        ),
        (true, hello(Role::Controller, "ws-a", CRED_A, &[])), // second HELLO
        (
            true,
            RelayFrame::HostProof {
                message: vec![0; 64],
            },
        ),
    ];
    for (ready, frame) in cases {
        let l = if ready {
            net.controller("ws-a", CRED_A)
        } else {
            net.open()
        };
        net.send(l, &frame);
        assert_goaway(&net, l, CloseCode::UNEXPECTED_FRAME);
    }
    // A host may not OPEN.
    let h2 = net.host("ws-a", CRED_A, &HOST_2);
    net.send(h2, &open_frame(sid(9), &HOST_1, &[1]));
    assert_goaway(&net, h2, CloseCode::UNEXPECTED_FRAME);
    // A host in AWAIT_PROOF may send only HOST_PROOF.
    let l = net.open();
    let _proof = net.register(l, "ws-a", CRED_A, &HOST_2);
    net.send(l, &RelayFrame::Ping { value: 3 });
    assert_goaway(&net, l, CloseCode::UNEXPECTED_FRAME);
}

#[test]
fn link10_unknown_workspace_and_wrong_credential_look_the_same() {
    let mut net = Net::new(config());
    let unknown = net.open();
    net.send(unknown, &hello(Role::Controller, "ws-zzz", CRED_A, &[]));
    let wrong = net.open();
    net.send(wrong, &hello(Role::Controller, "ws-a", CRED_B, &[]));
    let wrong_host = net.open();
    net.send(wrong_host, &hello(Role::Host, "ws-a", CRED_B, &[7; 32]));
    assert_goaway(&net, unknown, CloseCode::AUTH_FAILED);
    assert_goaway(&net, wrong, CloseCode::AUTH_FAILED);
    assert_goaway(&net, wrong_host, CloseCode::AUTH_FAILED);
    // Byte-identical answers.
    assert_eq!(net.clients[&unknown].received, net.clients[&wrong].received);
    assert_eq!(
        net.clients[&unknown].received,
        net.clients[&wrong_host].received
    );
    // A failed host HELLO draws no ephemeral (the DH work comes after authentication).
    assert!(net.ephemerals.is_empty());
}

#[test]
fn link11_remote_access_disabled_after_valid_credential() {
    let mut net = Net::new(config());
    let ok = net.open();
    net.send(ok, &hello(Role::Controller, "ws-off", CRED_OFF, &[]));
    assert_goaway(&net, ok, CloseCode::REMOTE_ACCESS_DISABLED);
    let bad = net.open();
    net.send(bad, &hello(Role::Controller, "ws-off", CRED_A, &[]));
    assert_goaway(&net, bad, CloseCode::AUTH_FAILED);
}

#[test]
fn link11_switching_remote_access_off_ends_the_workspace_links() {
    let (mut net, h, c) = with_session();
    let other = net.controller("ws-b", CRED_B);
    let now = net.now;
    net.relay
        .set_workspace("ws-a", Some(WorkspaceConfig::new(CRED_A, false)), now);
    net.drive();
    assert_goaway(&net, h, CloseCode::REMOTE_ACCESS_DISABLED);
    assert_goaway(&net, c, CloseCode::REMOTE_ACCESS_DISABLED);
    assert!(!net.is_closed(other));
    assert_eq!(net.relay.session_count(), 0);
}

#[test]
fn link12_bad_proof_gives_registration_failed() {
    let mut net = Net::new(config());
    let l = net.open();
    let mut proof = net.register(l, "ws-a", CRED_A, &HOST_1);
    proof[63] ^= 0x80;
    net.send(
        l,
        &RelayFrame::HostProof {
            message: proof.to_vec(),
        },
    );
    assert_goaway(&net, l, CloseCode::REGISTRATION_FAILED);
    assert_eq!(net.relay.host_link("ws-a", &host_public(&HOST_1)), None);
}

fn challenge_of(frames: Vec<RelayFrame>) -> [RelayFrame; 1] {
    frames.try_into().unwrap()
}

#[test]
fn link13_proof_replayed_on_another_link_fails() {
    use tether_proto::link::registration::HostRegistration;
    let mut net = Net::new(config());
    // The genuine host registers on l1; an attacker records its HELLO and HOST_PROOF.
    let l1 = net.open();
    let (reg, msg1) = HostRegistration::start(&HOST_1, "ws-a").unwrap();
    net.send(l1, &hello(Role::Host, "ws-a", CRED_A, &msg1));
    let [
        RelayFrame::HostChallenge {
            message: challenge1,
        },
    ] = challenge_of(net.take(l1))
    else {
        panic!("expected HOST_CHALLENGE");
    };
    let proof = reg.respond(&challenge1).unwrap();
    // The attacker (who has the workspace credential, not the host key) replays both on l2.
    let l2 = net.open();
    net.send(l2, &hello(Role::Host, "ws-a", CRED_A, &msg1));
    let [
        RelayFrame::HostChallenge {
            message: challenge2,
        },
    ] = challenge_of(net.take(l2))
    else {
        panic!("expected HOST_CHALLENGE");
    };
    // LINK-13: a fresh relay ephemeral per registration, so a fresh challenge.
    assert_ne!(challenge1, challenge2);
    assert_eq!(net.ephemerals.len(), 2);
    assert_ne!(net.ephemerals[0], net.ephemerals[1]);
    net.send(
        l2,
        &RelayFrame::HostProof {
            message: proof.to_vec(),
        },
    );
    assert_goaway(&net, l2, CloseCode::REGISTRATION_FAILED);
    assert_eq!(net.relay.host_link("ws-a", &host_public(&HOST_1)), None);
    // The genuine proof still completes l1.
    net.send(
        l1,
        &RelayFrame::HostProof {
            message: proof.to_vec(),
        },
    );
    assert_eq!(net.take(l1), vec![RelayFrame::Ready]);
    assert_eq!(net.relay.host_link("ws-a", &host_public(&HOST_1)), Some(l1));
}

#[test]
fn chan7_low_order_registration_ephemeral_fails() {
    let mut net = Net::new(config());
    let l = net.open();
    net.send(l, &hello(Role::Host, "ws-a", CRED_A, &[0; 32]));
    assert_goaway(&net, l, CloseCode::REGISTRATION_FAILED);
}

#[test]
fn link14_newer_registration_replaces_older() {
    let (mut net, h, c) = with_session();
    let h_new = net.host("ws-a", CRED_A, &HOST_1);
    assert_goaway(&net, h, CloseCode::REPLACED);
    assert_eq!(net.take(c), vec![close(sid(7), CloseCode::PEER_GONE)]);
    assert_eq!(
        net.relay.host_link("ws-a", &host_public(&HOST_1)),
        Some(h_new)
    );
    // New sessions go to the new link.
    net.send(c, &open_frame(sid(8), &HOST_1, &[1, 2, 3]));
    assert_eq!(
        net.take(h_new),
        vec![RelayFrame::Incoming {
            session: sid(8),
            handshake: vec![1, 2, 3]
        }]
    );
    // The same key in another workspace is a different registration (LINK-14 is per
    // workspace), and does not replace.
    let h_b = net.host("ws-b", CRED_B, &HOST_1);
    assert!(!net.is_closed(h_new));
    assert!(!net.is_closed(h_b));
}

#[test]
fn link15_handshake_length() {
    let (mut net, _h, c) = with_session();
    // OPEN with a 513-byte handshake, built by hand (the encoder refuses it).
    let mut bytes = vec![0x10];
    bytes.extend_from_slice(&sid(9).0);
    bytes.extend_from_slice(&host_public(&HOST_1));
    bytes.extend_from_slice(&[0; 513]);
    net.send_raw(c, &bytes);
    assert_goaway(&net, c, CloseCode::PROTOCOL_ERROR);
    // 512 is fine.
    let (mut net, h, c) = with_session();
    net.send(c, &open_frame(sid(9), &HOST_1, &[5; 512]));
    assert_eq!(
        net.take(h),
        vec![RelayFrame::Incoming {
            session: sid(9),
            handshake: vec![5; 512]
        }]
    );
}

#[test]
fn link16_session_id_in_use_on_host() {
    let (mut net, h, c1) = with_session();
    let c2 = net.controller("ws-a", CRED_A);
    net.send(c2, &open_frame(sid(7), &HOST_1, &[1]));
    assert_eq!(
        net.take(c2),
        vec![close(sid(7), CloseCode::SESSION_ID_IN_USE)]
    );
    assert_eq!(net.take(h), vec![]);
    // The first session is untouched.
    net.send(c1, &data(sid(7), b"still here"));
    assert_eq!(net.take(h), vec![data(sid(7), b"still here")]);
    // c2 does not own sid 7 (LINK-19).
    net.send(c2, &data(sid(7), b"hijack"));
    assert_eq!(
        net.take(c2),
        vec![close(sid(7), CloseCode::UNKNOWN_SESSION)]
    );
    assert_eq!(net.take(h), vec![]);
}

#[test]
fn link16_session_id_reused_on_own_link_leaves_the_session_untouched() {
    let (mut net, h, c) = with_session();
    net.send(c, &open_frame(sid(7), &HOST_1, &[1]));
    assert_eq!(
        net.take(c),
        vec![close(sid(7), CloseCode::SESSION_ID_IN_USE)]
    );
    assert_eq!(net.take(h), vec![]);
    assert_eq!(net.relay.session_count(), 1);
    net.send(c, &data(sid(7), b"same session"));
    assert_eq!(net.take(h), vec![data(sid(7), b"same session")]);
}

#[test]
fn link17_open_only_within_the_workspace() {
    let mut net = Net::new(config());
    let h = net.host("ws-a", CRED_A, &HOST_1);
    let cb = net.controller("ws-b", CRED_B);
    // Host in another workspace.
    net.send(cb, &open_frame(sid(1), &HOST_1, &[1]));
    // Host offline (never registered anywhere).
    net.send(cb, &open_frame(sid(2), &HOST_2, &[1]));
    let got = net.take(cb);
    assert_eq!(
        got,
        vec![
            close(sid(1), CloseCode::HOST_UNREACHABLE),
            close(sid(2), CloseCode::HOST_UNREACHABLE)
        ]
    );
    assert_eq!(net.take(h), vec![]);
    // Same session id, same bytes apart from the id: indistinguishable.
    net.send(cb, &open_frame(sid(3), &HOST_1, &[1]));
    net.send(cb, &open_frame(sid(3), &HOST_2, &[1]));
    let got = net.take(cb);
    assert_eq!(got[0], got[1]);
}

#[test]
fn link19_unknown_session_and_foreign_session() {
    let (mut net, h, c) = with_session();
    // DATA for a session nobody has.
    net.send(c, &data(sid(99), b"x"));
    assert_eq!(
        net.take(c),
        vec![close(sid(99), CloseCode::UNKNOWN_SESSION)]
    );
    // A host addresses only sessions delivered to it.
    net.send(h, &data(sid(98), b"x"));
    assert_eq!(
        net.take(h),
        vec![close(sid(98), CloseCode::UNKNOWN_SESSION)]
    );
    // CLOSE for an unknown session is ignored.
    net.send(c, &close(sid(99), CloseCode::NORMAL));
    assert_eq!(net.take(c), vec![]);
    assert_eq!(net.take(h), vec![]);
    // The link stays up and the real session works.
    assert!(!net.is_closed(c) && !net.is_closed(h));
    net.send(c, &data(sid(7), b"ok"));
    assert_eq!(net.take(h), vec![data(sid(7), b"ok")]);
}

#[test]
fn link20_session_limits() {
    // Controller link: 16 by default.
    let mut net = Net::new(config());
    let _h = net.host("ws-a", CRED_A, &HOST_1);
    let c = net.controller("ws-a", CRED_A);
    for i in 0..16 {
        net.send(c, &open_frame(sid(i), &HOST_1, &[1]));
    }
    assert_eq!(net.take(c), vec![]);
    net.send(c, &open_frame(sid(16), &HOST_1, &[1]));
    assert_eq!(net.take(c), vec![close(sid(16), CloseCode::SESSION_LIMIT)]);
    // Closing one frees a slot.
    net.send(c, &close(sid(0), CloseCode::NORMAL));
    net.send(c, &open_frame(sid(16), &HOST_1, &[1]));
    assert_eq!(net.take(c), vec![]);

    // Host: 64 by default, over several controllers.
    let mut net = Net::new(config());
    let _h = net.host("ws-a", CRED_A, &HOST_1);
    let controllers: Vec<_> = (0..5).map(|_| net.controller("ws-a", CRED_A)).collect();
    let mut n = 0;
    for c in &controllers {
        for _ in 0..13 {
            if n < 64 {
                net.send(*c, &open_frame(sid(n), &HOST_1, &[1]));
                n += 1;
            }
        }
    }
    assert_eq!(net.relay.session_count(), 64);
    let last = controllers[4];
    net.send(last, &open_frame(sid(1000), &HOST_1, &[1]));
    assert_eq!(
        net.take(last),
        vec![close(sid(1000), CloseCode::SESSION_LIMIT)]
    );
}

#[test]
fn link21_close_forwarded_and_peer_gone() {
    let (mut net, h, c) = with_session();
    net.send(h, &close(sid(7), CloseCode(33)));
    assert_eq!(net.take(c), vec![close(sid(7), CloseCode(33))]);
    assert_eq!(net.relay.session_count(), 0);
    // After the CLOSE the session is forgotten.
    net.send(c, &data(sid(7), b"late"));
    assert_eq!(net.take(c), vec![close(sid(7), CloseCode::UNKNOWN_SESSION)]);

    // A controller link dropping: the host gets PEER_GONE.
    let (mut net, h, c) = with_session();
    let now = net.now;
    net.relay.handle_link_closed(c, now);
    net.drive();
    assert_eq!(net.take(h), vec![close(sid(7), CloseCode::PEER_GONE)]);
    // A host link dropping: the controller gets PEER_GONE.
    let (mut net, h, c) = with_session();
    let now = net.now;
    net.relay.handle_link_closed(h, now);
    net.drive();
    assert_eq!(net.take(c), vec![close(sid(7), CloseCode::PEER_GONE)]);
    assert_eq!(net.relay.host_link("ws-a", &host_public(&HOST_1)), None);
}

#[test]
fn link21_data_before_close_is_delivered_first() {
    let (mut net, h, c) = with_session();
    net.set_reading(h, false);
    net.send(c, &data(sid(7), b"one"));
    net.send(c, &data(sid(7), b"two"));
    net.send(c, &close(sid(7), CloseCode::NORMAL));
    net.set_reading(h, true);
    assert_eq!(
        net.take(h),
        vec![
            data(sid(7), b"one"),
            data(sid(7), b"two"),
            close(sid(7), CloseCode::NORMAL)
        ]
    );
}

#[test]
fn link22_slow_reader_closes_the_session_and_drops_its_data() {
    let (mut net, h, c) = with_session();
    net.send(c, &open_frame(sid(8), &HOST_1, &[1]));
    net.take(h);
    net.set_reading(c, false);
    // 256 KiB exactly is still held.
    let chunk = vec![0x33; 32 * 1024];
    for _ in 0..8 {
        net.send(h, &data(sid(7), &chunk));
    }
    // A small frame on the other session, queued behind.
    net.send(h, &data(sid(8), b"other session"));
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, RelayEvent::Refused { .. }))
    );
    // One byte more: SLOW_READER to both ends.
    net.send(h, &data(sid(7), &[1]));
    assert_eq!(net.take(h), vec![close(sid(7), CloseCode::SLOW_READER)]);
    assert!(net.relay.queued_bytes(c) < 1024);
    net.set_reading(c, true);
    assert_eq!(
        net.take(c),
        vec![
            data(sid(8), b"other session"),
            close(sid(7), CloseCode::SLOW_READER)
        ]
    );
    // The other direction and the other session still work.
    net.send(h, &data(sid(8), b"more"));
    assert_eq!(net.take(c), vec![data(sid(8), b"more")]);
    assert!(net.events.iter().any(|e| matches!(
        e,
        RelayEvent::Refused {
            code: CloseCode::SLOW_READER,
            requirement: "LINK-22",
            ..
        }
    )));
}

#[test]
fn link22_taking_frames_frees_the_session_bound() {
    let (mut net, h, c) = with_session();
    let chunk = vec![0x33; 60 * 1024];
    // With the reader reading, far more than 256 KiB passes.
    for _ in 0..20 {
        net.send(h, &data(sid(7), &chunk));
    }
    assert_eq!(net.take(c).len(), 20);
}

#[test]
fn link23_link_bound_gives_goaway_slow_reader() {
    let limits = RelayLimits {
        session_queue_bytes: 4096,
        link_queue_bytes: 10_000,
        ..RelayLimits::default()
    };
    let mut net = Net::new(config().with_limits(limits));
    let h = net.host("ws-a", CRED_A, &HOST_1);
    let c1 = net.controller("ws-a", CRED_A);
    let c2 = net.controller("ws-a", CRED_A);
    for (c, s) in [(c1, 1), (c1, 2), (c2, 3)] {
        net.send(c, &open_frame(sid(s), &HOST_1, &[1]));
    }
    net.set_reading(h, false);
    // Each session stays under its 4096-byte bound; together they pass 10 000 bytes.
    for s in [1, 2] {
        net.send(c1, &data(sid(s), &[7; 3000]));
    }
    net.send(c2, &data(sid(3), &[7; 3000]));
    assert!(net.relay.queued_bytes(h) <= 10_000);
    assert!(!net.is_closed(h));
    net.send(c2, &data(sid(3), &[7; 1000]));
    assert_goaway(&net, h, CloseCode::SLOW_READER);
    // Only the GOAWAY was delivered: the held data was dropped by closing.
    let frames = net.take(h);
    assert!(matches!(
        frames.as_slice(),
        [
            ..,
            RelayFrame::GoAway {
                code: CloseCode::SLOW_READER,
                ..
            }
        ]
    ));
    assert!(!frames.iter().any(|f| matches!(f, RelayFrame::Data { .. })));
    // LINK-21: the controllers hear their sessions are gone (order across sessions is
    // not specified).
    let mut got = net.take(c1);
    got.sort_by_key(|f| match f {
        RelayFrame::Close { session, .. } => *session,
        _ => sid(u64::MAX),
    });
    assert_eq!(
        got,
        vec![
            close(sid(1), CloseCode::PEER_GONE),
            close(sid(2), CloseCode::PEER_GONE)
        ]
    );
    assert_eq!(net.take(c2), vec![close(sid(3), CloseCode::PEER_GONE)]);
}

#[test]
fn link7_auth_deadline() {
    let mut net = Net::new(config());
    let silent = net.open();
    let half = net.open();
    let _proof = net.register(half, "ws-a", CRED_A, &HOST_1);
    let ready = net.controller("ws-a", CRED_A);
    net.advance(Duration::from_millis(9_999));
    assert!(!net.is_closed(silent) && !net.is_closed(half));
    net.advance(Duration::from_millis(1));
    assert_goaway(&net, silent, CloseCode::AUTH_TIMEOUT);
    assert_goaway(&net, half, CloseCode::AUTH_TIMEOUT);
    assert!(!net.is_closed(ready));
}

#[test]
fn link24_link25_idle_timeout_and_keepalive() {
    let mut net = Net::new(config());
    let c = net.controller("ws-a", CRED_A);
    // LINK-25: the relay pings after 20 s without sending.
    net.advance(Duration::from_secs(20));
    let frames = net.take(c);
    assert_eq!(frames, vec![RelayFrame::Ping { value: 0 }]);
    net.advance(Duration::from_secs(20));
    assert_eq!(net.take(c), vec![RelayFrame::Ping { value: 1 }]);
    // Received PONG keeps the link alive.
    net.send(c, &RelayFrame::Pong { value: 1 });
    net.advance(Duration::from_secs(59));
    assert!(!net.is_closed(c));
    // LINK-24: 60 s with nothing received.
    net.advance(Duration::from_secs(1));
    assert_goaway(&net, c, CloseCode::IDLE_TIMEOUT);
}

#[test]
fn link25_ping_answered_with_pong() {
    let mut net = Net::new(config());
    let c = net.controller("ws-a", CRED_A);
    net.send_raw(c, &hex::decode("200123456789abcdef").unwrap());
    assert_eq!(
        net.clients[&c].received.last().unwrap(),
        &hex::decode("210123456789abcdef").unwrap()
    );
}

#[test]
fn link27_after_goaway_nothing_is_accepted() {
    let mut net = Net::new(config());
    let l = net.open();
    net.send_raw(l, &[0xff]);
    assert_goaway(&net, l, CloseCode::PROTOCOL_ERROR);
    // The harness closed it; the relay forgot it. A late frame does nothing.
    net.send(l, &hello(Role::Controller, "ws-a", CRED_A, &[]));
    assert_eq!(net.relay.link_count(), 0);

    // Without the driver closing yet: frames on a GOAWAY'd link are ignored.
    let mut net = Net::new(config());
    let l = net.relay.handle_link_opened(net.now);
    let now = net.now;
    net.relay.handle_frame(l, &[0xff], now, &mut || [1; 32]);
    net.relay.handle_frame(
        l,
        &RelayFrame::Ping { value: 1 }.to_bytes().unwrap(),
        now,
        &mut || [1; 32],
    );
    let mut frames = Vec::new();
    while let Some(f) = net.relay.poll_transmit(l) {
        frames.push(RelayFrame::decode(&f).unwrap());
    }
    assert_eq!(frames.len(), 1);
    assert!(matches!(
        frames[0],
        RelayFrame::GoAway {
            code: CloseCode::PROTOCOL_ERROR,
            ..
        }
    ));
}

#[test]
fn link27_client_goaway_ends_its_sessions() {
    let (mut net, h, c) = with_session();
    net.send(
        c,
        &RelayFrame::GoAway {
            code: CloseCode::GOING_AWAY,
            reason: String::new(),
        },
    );
    assert!(net.is_closed(c));
    assert!(net.events.iter().any(|e| matches!(
        e,
        RelayEvent::PeerGoingAway { link, code: CloseCode::GOING_AWAY } if *link == c
    )));
    assert_eq!(net.take(h), vec![close(sid(7), CloseCode::PEER_GONE)]);
}

#[test]
fn link29_refusals_are_reported_with_code_and_requirement() {
    let mut net = Net::new(config());
    let l = net.open();
    net.send(l, &hello(Role::Controller, "ws-a", CRED_B, &[]));
    assert!(net.events.iter().any(|e| matches!(
        e,
        RelayEvent::Refused {
            code: CloseCode::AUTH_FAILED,
            requirement: "LINK-10",
            session: None,
            ..
        }
    )));
}

#[test]
fn default_limits_are_the_protocol_limits() {
    let l = RelayLimits::default();
    assert_eq!(l.session_queue_bytes, 262_144);
    assert_eq!(l.link_queue_bytes, 4_194_304);
    assert_eq!(l.max_frame_len, 65_544);
    assert_eq!(l.pre_auth_max_frame_len, 512);
    assert_eq!(l.auth_deadline, Duration::from_secs(10));
    let _ = RelayConfig::default();
}

#[test]
fn relay_is_send_for_async_drivers() {
    fn assert_send<T: Send>() {}
    assert_send::<tether_proto::link::router::Relay>();
}

#[test]
fn link_errors_map_to_their_codes_and_requirements() {
    use tether_proto::link::LinkError as E;
    let table: Vec<(E, CloseCode, &str, bool)> = vec![
        (
            E::UnexpectedFrame { frame_type: 4 },
            CloseCode::UNEXPECTED_FRAME,
            "LINK-8",
            false,
        ),
        (
            E::UnsupportedVersion { version: 2 },
            CloseCode::UNSUPPORTED_VERSION,
            "LINK-3",
            false,
        ),
        (
            E::FrameTooLarge { len: 65_545 },
            CloseCode::FRAME_TOO_LARGE,
            "LINK-5",
            false,
        ),
        (
            E::PreAuthFrameTooLarge { len: 513 },
            CloseCode::FRAME_TOO_LARGE,
            "LINK-6",
            false,
        ),
        (
            E::BadHelloRegistration,
            CloseCode::PROTOCOL_ERROR,
            "LINK-9",
            false,
        ),
        (E::AuthFailed, CloseCode::AUTH_FAILED, "LINK-10", false),
        (
            E::RemoteAccessDisabled,
            CloseCode::REMOTE_ACCESS_DISABLED,
            "LINK-11",
            false,
        ),
        (
            E::RegistrationFailed,
            CloseCode::REGISTRATION_FAILED,
            "LINK-12",
            false,
        ),
        (E::AuthTimeout, CloseCode::AUTH_TIMEOUT, "LINK-7", false),
        (E::IdleTimeout, CloseCode::IDLE_TIMEOUT, "LINK-24", false),
        (E::Replaced, CloseCode::REPLACED, "LINK-14", false),
        (E::LinkSlowReader, CloseCode::SLOW_READER, "LINK-23", false),
        (
            E::BadHandshakeLength { len: 0 },
            CloseCode::PROTOCOL_ERROR,
            "LINK-15",
            false,
        ),
        (
            E::SessionIdInUse,
            CloseCode::SESSION_ID_IN_USE,
            "LINK-16",
            true,
        ),
        (
            E::HostUnreachable,
            CloseCode::HOST_UNREACHABLE,
            "LINK-17",
            true,
        ),
        (
            E::UnknownSession,
            CloseCode::UNKNOWN_SESSION,
            "LINK-19",
            true,
        ),
        (E::SessionLimit, CloseCode::SESSION_LIMIT, "LINK-20", true),
        (
            E::SessionSlowReader,
            CloseCode::SLOW_READER,
            "LINK-22",
            true,
        ),
    ];
    for (e, code, req, session) in table {
        assert_eq!(e.close_code(), code, "{e}");
        assert_eq!(e.requirement(), req, "{e}");
        assert_eq!(e.is_session_level(), session, "{e}");
        // Session-level codes are in the relay's session range (16-31) or SLOW_READER.
        if session && code != CloseCode::SLOW_READER {
            assert!((16..32).contains(&code.0), "{e}");
        }
        let wrapped = tether_proto::Error::from(e.clone());
        assert_eq!(wrapped.requirement(), req);
        assert_eq!(wrapped.close_code(), Some(code));
    }
}
