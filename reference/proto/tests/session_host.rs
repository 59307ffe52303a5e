//! The controller and host session state machines against each other, in memory, with
//! virtual time: pairing, resuming, and every refusal of `spec/04` (`CHAN-*`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_proto::channel::{CreditLedger, Framing, HostInfo, PathStyle, Timestamp};
use tether_proto::cmd::{Message, Request, Response};
use tether_proto::keys::public_key;
use tether_proto::limits::MAX_SESSION_CREDIT;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::session::{
    Controller, ControllerConfig, ControllerEvent, Host, HostConfig, HostEvent, HostStore,
    MemoryHostStore, Purpose, Refusal, RefusalReason, TokenBucket,
};
use tether_proto::time::UnixTime;

const HOST_PRIVATE: [u8; 32] = [0x11; 32];
const PHONE_PRIVATE: [u8; 32] = [0x22; 32];
const OTHER_PRIVATE: [u8; 32] = [0x33; 32];
const TOKEN_ID: [u8; 16] = [0x44; 16];
const TOKEN_SECRET: [u8; 32] = [0x55; 32];
const WALL: UnixTime = UnixTime::from_secs(1_800_000_000);

fn host_info() -> HostInfo {
    HostInfo {
        name: "build-box".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        shell: "bash".into(),
        path_style: PathStyle::Posix,
        capabilities: vec!["agent.test".into(), "command.exec".into()],
        protocol: "tether/1".into(),
    }
}

fn host(confirm: bool) -> Host {
    Host::new(HostConfig {
        static_private: HOST_PRIVATE,
        workspace: "acme".into(),
        host_info: host_info(),
        remote_access: true,
        confirm_pairing: confirm,
    })
}

fn store() -> MemoryHostStore {
    let mut s = MemoryHostStore::new();
    s.add_token(TOKEN_ID, &TOKEN_SECRET, WALL.as_secs() + 300);
    s
}

fn config(private: [u8; 32], sid: u8, ts: UnixTime, purpose: Purpose) -> ControllerConfig {
    ControllerConfig {
        static_private: private,
        host_key: public_key(&HOST_PRIVATE),
        workspace: "acme".into(),
        session: SessionId([sid; 8]),
        timestamp: Timestamp::from_unix(ts),
        purpose,
        handshake_timeout: ControllerConfig::default_timeout(&Purpose::Resume),
    }
}

fn pair_purpose() -> Purpose {
    Purpose::Pair {
        token_id: TOKEN_ID,
        token_secret: TOKEN_SECRET,
        device_name: "phone".into(),
    }
}

/// Moves every queued frame between the two until both are quiet, standing in for the
/// relay (`OPEN` becomes `INCOMING`, as `LINK-18` says). Returns the message 1 it carried.
fn drive(
    c: &mut Controller,
    h: &mut Host,
    store: &mut dyn HostStore,
    now: Instant,
    wall: UnixTime,
) -> Option<Vec<u8>> {
    let mut msg1 = None;
    for _ in 0..64 {
        let mut moved = false;
        while let Some(frame) = c.poll_transmit() {
            moved = true;
            match frame {
                RelayFrame::Open {
                    session, handshake, ..
                } => {
                    msg1 = Some(handshake.clone());
                    h.handle_incoming(session, &handshake, now, wall, store);
                }
                RelayFrame::Data { session, payload } => h.handle_data(session, &payload),
                RelayFrame::Close { session, code } => h.handle_close(session, code),
                other => panic!("controller sent {other:?}"),
            }
        }
        while let Some(frame) = h.poll_transmit() {
            moved = true;
            match frame {
                RelayFrame::Data { session, payload } if session == c.session() => {
                    c.handle_data(&payload)
                }
                RelayFrame::Close { session, code } if session == c.session() => {
                    c.handle_close(code)
                }
                _ => {}
            }
        }
        if !moved {
            return msg1;
        }
    }
    panic!("harness did not go quiet");
}

fn host_events(h: &mut Host) -> Vec<HostEvent> {
    std::iter::from_fn(|| h.poll_event()).collect()
}

fn controller_events(c: &mut Controller) -> Vec<ControllerEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn refused_with(events: &[HostEvent], refusal: Refusal) -> bool {
    events.iter().any(|e| {
        matches!(e, HostEvent::Refused { refusal: RefusalReason::Refusal(r), .. } if *r == refusal)
    })
}

fn closed_with(events: &[ControllerEvent], code: CloseCode) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ControllerEvent::Closed { code: c, by_peer: true } if *c == code))
}

fn pair(h: &mut Host, s: &mut MemoryHostStore, now: Instant) -> Controller {
    let mut c = Controller::connect(config(PHONE_PRIVATE, 1, WALL, pair_purpose()), now).unwrap();
    drive(&mut c, h, s, now, WALL);
    assert!(c.is_established());
    c
}

#[test]
fn pairing_then_resume_carries_json_rpc_both_ways() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    let mut c = pair(&mut h, &mut s, now);

    let ev = host_events(&mut h);
    assert!(matches!(
        &ev[..],
        [HostEvent::Established { paired: Some(name), device, .. }]
            if name == "phone" && *device == public_key(&PHONE_PRIVATE)
    ));
    assert!(matches!(
        &controller_events(&mut c)[..],
        [ControllerEvent::Established { host_info: i }] if *i == host_info()
    ));
    // CHAN-12, CHAN-27: token consumed, device recorded.
    assert_eq!(s.token_consumed(&TOKEN_ID), Some(true));
    assert_eq!(s.device(&public_key(&PHONE_PRIVATE)).unwrap().name, "phone");

    let request = Message::Request(Request::new(1, "thread/list", None));
    c.send(&request).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    let ev = host_events(&mut h);
    assert!(matches!(&ev[..], [HostEvent::Message { message, .. }] if *message == request));

    let response =
        Message::Response(Response::new(1.into(), &serde_json::json!({"threads": []})).unwrap());
    h.send(SessionId([1; 8]), &response).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert_eq!(
        controller_events(&mut c),
        vec![ControllerEvent::Message(response)]
    );

    // A later session of the paired device.
    let later = WALL.saturating_add(Duration::from_secs(5));
    let mut c2 =
        Controller::connect(config(PHONE_PRIVATE, 2, later, Purpose::Resume), now).unwrap();
    drive(&mut c2, &mut h, &mut s, now, later);
    assert!(c2.is_established());
    assert!(matches!(
        &host_events(&mut h)[..],
        [HostEvent::Established { paired: None, .. }]
    ));
}

/// LINK-43: `CLOSE SESSION_ID_IN_USE` refuses an `OPEN`; it never ends an established
/// session. Before message 2 it ends the handshake (the `OPEN` was refused); after it, the
/// session lives on and still carries messages.
#[test]
fn link_43_session_id_in_use_never_ends_an_established_session() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    let mut c = pair(&mut h, &mut s, now);
    let _ = controller_events(&mut c);
    let _ = host_events(&mut h);
    c.handle_close(CloseCode::SESSION_ID_IN_USE);
    assert!(c.is_established());
    assert!(controller_events(&mut c).is_empty());
    let request = Message::Request(Request::new(7, "thread/list", None));
    c.send(&request).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(matches!(
        &host_events(&mut h)[..],
        [HostEvent::Message { message, .. }] if *message == request
    ));
    // Any other code still ends it.
    c.handle_close(CloseCode::PEER_GONE);
    assert!(c.is_closed());
    assert!(closed_with(
        &controller_events(&mut c),
        CloseCode::PEER_GONE
    ));

    // Before message 2: the refusal of this session's OPEN.
    let mut pending =
        Controller::connect(config(PHONE_PRIVATE, 9, WALL, Purpose::Resume), now).unwrap();
    while pending.poll_transmit().is_some() {}
    pending.handle_close(CloseCode::SESSION_ID_IN_USE);
    assert!(pending.is_closed());
    assert!(closed_with(
        &controller_events(&mut pending),
        CloseCode::SESSION_ID_IN_USE
    ));
}

#[test]
fn chan_12_reused_token_is_refused() {
    // TOKEN-15: a token pairs once.
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    pair(&mut h, &mut s, now);
    host_events(&mut h);

    let ts = WALL.saturating_add(Duration::from_secs(1));
    let mut c = Controller::connect(config(OTHER_PRIVATE, 9, ts, pair_purpose()), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, ts);
    assert!(refused_with(&host_events(&mut h), Refusal::TokenRejected));
    assert!(closed_with(
        &controller_events(&mut c),
        CloseCode::TOKEN_REJECTED
    ));
    assert!(s.device(&public_key(&OTHER_PRIVATE)).is_none());
}

#[test]
fn chan_12_expired_and_wrong_secret_tokens_are_refused_and_not_consumed() {
    let now = Instant::now();
    let mut h = host(false);
    for (wall, secret) in [
        (WALL.saturating_add(Duration::from_secs(300)), TOKEN_SECRET), // expired
        (WALL, [0x56; 32]),                                            // wrong secret
    ] {
        let mut s = store();
        let purpose = Purpose::Pair {
            token_id: TOKEN_ID,
            token_secret: secret,
            device_name: "phone".into(),
        };
        let mut c = Controller::connect(config(PHONE_PRIVATE, 1, wall, purpose), now).unwrap();
        drive(&mut c, &mut h, &mut s, now, wall);
        assert!(refused_with(&host_events(&mut h), Refusal::TokenRejected));
        assert_eq!(s.token_consumed(&TOKEN_ID), Some(false));
    }
}

#[test]
fn chan_10_replayed_message1_is_refused() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    pair(&mut h, &mut s, now);
    let ts = WALL.saturating_add(Duration::from_secs(10));
    let mut c = Controller::connect(config(PHONE_PRIVATE, 7, ts, Purpose::Resume), now).unwrap();
    let msg1 = drive(&mut c, &mut h, &mut s, now, ts).unwrap();
    assert!(c.is_established());
    h.handle_close(SessionId([7; 8]), CloseCode::NORMAL);
    host_events(&mut h);

    // The same message 1 under the same session id, after the session ended.
    h.handle_incoming(SessionId([7; 8]), &msg1, now, ts, &mut s);
    assert!(refused_with(&host_events(&mut h), Refusal::Replayed));
    assert_eq!(
        h.poll_transmit(),
        Some(RelayFrame::Close {
            session: SessionId([7; 8]),
            code: CloseCode::REPLAYED
        })
    );
    // Under another session id the prologue differs (CHAN-2): the handshake fails.
    h.handle_incoming(SessionId([8; 8]), &msg1, now, ts, &mut s);
    assert!(matches!(
        &host_events(&mut h)[..],
        [HostEvent::Refused {
            refusal: RefusalReason::Handshake(_),
            ..
        }]
    ));
}

#[test]
fn chan_9_unpaired_and_revoked_devices_are_refused() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    let mut c = Controller::connect(config(OTHER_PRIVATE, 3, WALL, Purpose::Resume), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(refused_with(&host_events(&mut h), Refusal::NotAuthorized));
    assert!(closed_with(
        &controller_events(&mut c),
        CloseCode::NOT_AUTHORIZED
    ));

    pair(&mut h, &mut s, now);
    host_events(&mut h);
    assert!(s.revoke(&public_key(&PHONE_PRIVATE)));
    let ts = WALL.saturating_add(Duration::from_secs(1));
    let mut c = Controller::connect(config(PHONE_PRIVATE, 4, ts, Purpose::Resume), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, ts);
    assert!(refused_with(&host_events(&mut h), Refusal::NotAuthorized));
}

#[test]
fn chan_9_inactive_device_must_pair_again() {
    let now = Instant::now();
    let mut h = host(false);
    let mut s = store().with_max_inactive(Duration::from_secs(3600));
    pair(&mut h, &mut s, now);
    host_events(&mut h);
    let late = WALL.saturating_add(Duration::from_secs(3601));
    let mut c = Controller::connect(config(PHONE_PRIVATE, 5, late, Purpose::Resume), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, late);
    assert!(refused_with(&host_events(&mut h), Refusal::NotAuthorized));
}

#[test]
fn chan_11_timestamp_too_far_ahead_is_refused() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    let ahead = WALL.saturating_add(Duration::from_secs(601));
    let mut c = Controller::connect(config(PHONE_PRIVATE, 1, ahead, pair_purpose()), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(refused_with(&host_events(&mut h), Refusal::ClockSkew));
    // Refused before the token was looked at.
    assert_eq!(s.token_consumed(&TOKEN_ID), Some(false));
}

#[test]
fn chan_14_rate_limit_refuses_before_any_work() {
    let now = Instant::now();
    let mut h = host(false).with_bucket(TokenBucket::new(1, 1));
    let mut s = store();
    pair(&mut h, &mut s, now);
    host_events(&mut h);
    // Garbage message 1: refused for the rate, not for the garbage.
    h.handle_incoming(SessionId([9; 8]), &[0u8; 3], now, WALL, &mut s);
    assert!(refused_with(&host_events(&mut h), Refusal::RateLimited));
    // One second later the bucket has a token again; the garbage now fails the handshake.
    h.handle_incoming(
        SessionId([9; 8]),
        &[0u8; 3],
        now + Duration::from_secs(1),
        WALL,
        &mut s,
    );
    assert!(matches!(
        &host_events(&mut h)[..],
        [HostEvent::Refused {
            refusal: RefusalReason::Handshake(_),
            ..
        }]
    ));
}

#[test]
fn chan_26_remote_access_off_refuses_everything() {
    let now = Instant::now();
    let mut h = Host::new(HostConfig {
        static_private: HOST_PRIVATE,
        workspace: "acme".into(),
        host_info: host_info(),
        remote_access: false,
        confirm_pairing: false,
    });
    let mut s = store();
    let mut c = Controller::connect(config(PHONE_PRIVATE, 1, WALL, pair_purpose()), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(refused_with(
        &host_events(&mut h),
        Refusal::RemoteAccessDisabled
    ));
    assert!(closed_with(
        &controller_events(&mut c),
        CloseCode::REMOTE_ACCESS_DISABLED
    ));
    assert_eq!(s.token_consumed(&TOKEN_ID), Some(false));
}

#[test]
fn chan_24_confirmation_accept_reject_and_timeout() {
    let now = Instant::now();
    // Accepted: both screens show the same code.
    let (mut h, mut s) = (host(true), store());
    let mut c = Controller::connect(config(PHONE_PRIVATE, 1, WALL, pair_purpose()), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    let ev = host_events(&mut h);
    let [HostEvent::ConfirmationRequested { code, session, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(code, c.confirmation_code());
    assert_eq!(code.len(), 6);
    assert!(!c.is_established());
    assert_eq!(
        s.token_consumed(&TOKEN_ID),
        Some(true),
        "consumed before asking"
    );
    assert!(s.device(&public_key(&PHONE_PRIVATE)).is_none());
    h.confirm_pairing(*session, true, WALL, &mut s);
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(c.is_established());
    assert!(s.device(&public_key(&PHONE_PRIVATE)).is_some());

    // Rejected: token stays consumed, device not recorded.
    let (mut h, mut s) = (host(true), store());
    let mut c = Controller::connect(config(OTHER_PRIVATE, 2, WALL, pair_purpose()), now).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    host_events(&mut h);
    h.confirm_pairing(SessionId([2; 8]), false, WALL, &mut s);
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(closed_with(
        &controller_events(&mut c),
        CloseCode::CONFIRMATION_REJECTED
    ));
    assert_eq!(s.token_consumed(&TOKEN_ID), Some(true));
    assert!(s.device(&public_key(&OTHER_PRIVATE)).is_none());

    // Not answered within 60 s.
    let (mut h, mut s) = (host(true), store());
    let mut c = Controller::connect(
        ControllerConfig {
            handshake_timeout: ControllerConfig::default_timeout(&pair_purpose()),
            ..config(OTHER_PRIVATE, 3, WALL, pair_purpose())
        },
        now,
    )
    .unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert_eq!(h.poll_timeout(), Some(now + Duration::from_secs(60)));
    h.handle_timeout(now + Duration::from_secs(59));
    assert_eq!(h.session_count(), 1);
    h.handle_timeout(now + Duration::from_secs(60));
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(refused_with(
        &host_events(&mut h),
        Refusal::ConfirmationRejected
    ));
    assert!(closed_with(
        &controller_events(&mut c),
        CloseCode::CONFIRMATION_REJECTED
    ));
}

#[test]
fn chan_13_controller_gives_up_without_message2() {
    let now = Instant::now();
    let mut c = Controller::connect(config(PHONE_PRIVATE, 1, WALL, Purpose::Resume), now).unwrap();
    assert!(matches!(c.poll_transmit(), Some(RelayFrame::Open { .. })));
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(15)));
    c.handle_timeout(now + Duration::from_secs(14));
    assert!(!c.is_closed());
    c.handle_timeout(now + Duration::from_secs(15));
    assert!(c.is_closed());
    assert_eq!(
        c.poll_transmit(),
        Some(RelayFrame::Close {
            session: SessionId([1; 8]),
            code: CloseCode::NORMAL
        })
    );
    // CHAN-15: nothing can be sent on a session that never completed.
    assert!(
        c.send(&Message::Request(Request::new(1, "thread/list", None)))
            .is_err()
    );
}

#[test]
fn chan_18_a_flipped_bit_ends_the_session_and_delivers_nothing() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    let mut c = pair(&mut h, &mut s, now);
    host_events(&mut h);
    c.send(&Message::Request(Request::new(1, "thread/list", None)))
        .unwrap();
    let Some(RelayFrame::Data {
        session,
        mut payload,
    }) = c.poll_transmit()
    else {
        panic!()
    };
    payload[5] ^= 0x01;
    h.handle_data(session, &payload);
    let ev = host_events(&mut h);
    assert_eq!(
        ev,
        vec![HostEvent::Closed {
            session,
            code: CloseCode::DECRYPT_FAILED,
            by_peer: false
        }]
    );
    assert!(!h.is_established(session));
    assert!(
        h.send(session, &Message::Request(Request::new(2, "x", None)))
            .is_err()
    );
}

#[test]
fn cmd_envelope_violations_are_answered_not_delivered() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    let mut c = pair(&mut h, &mut s, now);
    host_events(&mut h);
    controller_events(&mut c);
    // A duplicate key (CMD rules): the host answers id 5 with a parse error and hands the
    // application nothing but the rejection.
    c.send_plaintext(br#"{"jsonrpc":"2.0","id":5,"method":"thread/list","method":"x"}"#)
        .unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    let ev = host_events(&mut h);
    assert!(
        matches!(&ev[..], [HostEvent::Rejected { rejection, .. }] if rejection.error.rpc_code() == -32700)
    );
    let ev = controller_events(&mut c);
    let [ControllerEvent::Message(Message::Error(e))] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(e.error.code, -32700);
    // A parse error cannot trust any member, the id included: JSON-RPC answers `null`.
    assert_eq!(e.id, None);
    // A malformed response (both `result` and `error`) is not answered: no reply loops.
    c.send_plaintext(br#"{"jsonrpc":"2.0","id":6,"result":1,"error":{"code":1,"message":"x"}}"#)
        .unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(matches!(
        &host_events(&mut h)[..],
        [HostEvent::Rejected { .. }]
    ));
    assert!(controller_events(&mut c).is_empty());
}

#[test]
fn unknown_session_data_gets_unknown_session() {
    let (mut h, _) = (host(false), store());
    h.handle_data(SessionId([0xee; 8]), &[1, 2, 3]);
    assert_eq!(
        h.poll_transmit(),
        Some(RelayFrame::Close {
            session: SessionId([0xee; 8]),
            code: CloseCode::UNKNOWN_SESSION
        })
    );
    assert!(h.poll_event().is_none());
}

#[test]
fn link_loss_closes_every_session() {
    let now = Instant::now();
    let (mut h, mut s) = (host(false), store());
    pair(&mut h, &mut s, now);
    host_events(&mut h);
    h.handle_link_lost();
    assert_eq!(h.session_count(), 0);
    assert!(matches!(
        &host_events(&mut h)[..],
        [HostEvent::Closed {
            code: CloseCode::PEER_GONE,
            by_peer: true,
            ..
        }]
    ));
}

/// CHAN-35: a controller session that the host ends with a record the controller refuses
/// (CHAN-32) gives its credit back to the ledger it shares with its link's other sessions.
#[test]
fn chan_35_a_session_ended_by_a_bad_record_returns_its_credit_to_the_link() {
    let now = Instant::now();
    let mut info = host_info();
    info.capabilities.push("channel.flow".into());
    let mut h = Host::new(HostConfig {
        static_private: HOST_PRIVATE,
        workspace: "acme".into(),
        host_info: info,
        remote_access: true,
        confirm_pairing: false,
    });
    let mut s = store();
    let ledger = Arc::new(Mutex::new(CreditLedger::for_link(16)));
    let mut c = Controller::connect(config(PHONE_PRIVATE, 1, WALL, pair_purpose()), now).unwrap();
    c.set_shared_ledger(Arc::clone(&ledger));
    c.set_credit_cap(MAX_SESSION_CREDIT);
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert_eq!(c.framing(), Some(Framing::Records));
    assert!(
        ledger.lock().unwrap().in_use() > 0,
        "the session took credit"
    );
    h.send_plaintext(c.session(), &[0x7f, 1, 2]).unwrap();
    drive(&mut c, &mut h, &mut s, now, WALL);
    assert!(c.is_closed());
    assert_eq!(ledger.lock().unwrap().in_use(), 0, "its credit is back");
}
