//! The host's session state machine (`Host`, `spec/04` host procedure) driven by an
//! arbitrary sequence of events: honest controllers pairing and resuming, raw message 1s
//! and `DATA` from the fuzzer (insecure primitives, so they get past the AEAD), replays,
//! bit flips, confirmations, timeouts and a lost relay link.
//!
//! Asserts after every event:
//! - no command message (`Message`/`Rejected`) on a session before it is established, and
//!   no `DATA` from the host on a session that never got message 2 (`CHAN-15`);
//! - a consumed token never pairs twice: pairings never outnumber consumed tokens
//!   (`CHAN-12`); the same message 1 is never accepted twice (`CHAN-10`);
//! - the host's frames are only `DATA` and `CLOSE`; sessions stay within 64 (`LINK-20`);
//!   every queue is drained, so memory stays bounded;
//! - honest controllers see no plaintext before message 2 and establish at most once.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_fuzz::*;
use tether_proto::channel::Timestamp;
use tether_proto::keys::public_key;
use tether_proto::limits::MAX_SESSIONS_PER_HOST;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::session::{
    Controller, ControllerConfig, ControllerEvent, Host, HostEvent, Purpose,
};
use tether_proto::time::UnixTime;

#[derive(Arbitrary, Debug)]
enum Ev {
    Connect {
        key: u8,
        pair: Option<(u8, bool)>,
        skew: i16,
    },
    ToHost {
        c: u8,
        flip: Option<u16>,
    },
    ToControllers,
    Replay {
        c: u8,
        sid: u8,
    },
    RawIncoming {
        sid: u8,
        msg1: Vec<u8>,
    },
    RawData {
        sid: u8,
        bytes: Vec<u8>,
    },
    RawClose {
        sid: u8,
        code: u16,
    },
    ControllerSend {
        c: u8,
        plaintext: Vec<u8>,
    },
    HostSend {
        sid: u8,
        plaintext: Vec<u8>,
    },
    Confirm {
        sid: u8,
        accept: bool,
    },
    Wait {
        secs: u16,
    },
    LinkLost,
}

#[derive(Arbitrary, Debug)]
struct Input {
    confirm: bool,
    events: Vec<Ev>,
}

fn raw_sid(n: u8) -> SessionId {
    SessionId([0xF0, n % 8, 0, 0, 0, 0, 0, 0])
}

struct Ctl {
    c: Controller,
    msg1: Vec<u8>,
    established: bool,
}

fuzz_target!(|input: Input| {
    begin(true);
    let mut now = start();
    let mut wall = UnixTime::from_secs(WALL0);
    let mut store = host_store();
    let mut host = Host::new(host_config(input.confirm));
    let host_key = public_key(&HOST_PRIVATE);
    let mut ctls: Vec<Ctl> = Vec::new();
    let mut last_ts: HashMap<u8, Timestamp> = HashMap::new();
    let mut msg1_of: HashMap<SessionId, Vec<u8>> = HashMap::new();
    let mut accepted: HashSet<Vec<u8>> = HashSet::new();
    let mut established: HashSet<SessionId> = HashSet::new();
    let mut ever_established: HashSet<SessionId> = HashSet::new();
    let mut awaiting: Vec<SessionId> = Vec::new();
    let mut pairings = 0usize;

    for ev in input.events.into_iter().take(48) {
        let mut to_host_frames: Vec<RelayFrame> = Vec::new();
        match ev {
            Ev::Connect { key, pair, skew } => {
                if ctls.len() >= 8 {
                    continue;
                }
                let key = key % 3;
                let d = Duration::from_secs(u64::from(skew.unsigned_abs()));
                let clock = if skew >= 0 {
                    wall.saturating_add(d)
                } else {
                    wall.saturating_sub(d)
                };
                let ts = Timestamp::next_after(last_ts.get(&key).copied(), clock);
                last_ts.insert(key, ts);
                let session = SessionId([0xC0, ctls.len() as u8, 0, 0, 0, 0, 0, 0]);
                let purpose = match pair {
                    None => Purpose::Resume,
                    Some((i, good)) => {
                        let (id, secret) = TOKENS[usize::from(i % 2)];
                        Purpose::Pair {
                            token_id: id,
                            token_secret: if good { secret } else { [0; 32] },
                            device_name: format!("d{key}"),
                        }
                    }
                };
                let c = Controller::connect(
                    ControllerConfig {
                        static_private: CONTROLLERS[usize::from(key)],
                        host_key,
                        workspace: WORKSPACE.into(),
                        session,
                        timestamp: ts,
                        handshake_timeout: ControllerConfig::default_timeout(&purpose),
                        purpose,
                    },
                    now,
                )
                .expect("honest controller connects");
                ctls.push(Ctl {
                    c,
                    msg1: Vec::new(),
                    established: false,
                });
            }
            Ev::ToHost { c, flip } => {
                let Some(ctl) = ctls.get_mut(usize::from(c) % 8) else {
                    continue;
                };
                let Some(mut frame) = ctl.c.poll_transmit() else {
                    continue;
                };
                match &mut frame {
                    RelayFrame::Open { handshake, .. } => ctl.msg1 = handshake.clone(),
                    RelayFrame::Data { .. } | RelayFrame::Close { .. } => {}
                    other => panic!("a controller sent {other:?}"),
                }
                if let Some(bit) = flip {
                    let bytes = match &mut frame {
                        RelayFrame::Open { handshake, .. } => handshake,
                        RelayFrame::Data { payload, .. } => payload,
                        _ => continue,
                    };
                    if !bytes.is_empty() {
                        let i = usize::from(bit / 8) % bytes.len();
                        bytes[i] ^= 1 << (bit % 8);
                    }
                }
                to_host_frames.push(frame);
            }
            Ev::ToControllers => {
                while let Some(frame) = host.poll_transmit() {
                    let (session, data, close) = match frame {
                        RelayFrame::Data { session, payload } => (session, Some(payload), None),
                        RelayFrame::Close { session, code } => (session, None, Some(code)),
                        other => panic!("the host sent {other:?}"),
                    };
                    for ctl in ctls.iter_mut().filter(|c| c.c.session() == session) {
                        if let Some(d) = &data {
                            ctl.c.handle_data(d);
                        }
                        if let Some(code) = close {
                            ctl.c.handle_close(code);
                        }
                    }
                }
            }
            Ev::Replay { c, sid } => {
                if let Some(ctl) = ctls.get(usize::from(c) % 8)
                    && !ctl.msg1.is_empty()
                {
                    to_host_frames.push(RelayFrame::Incoming {
                        session: raw_sid(sid),
                        handshake: ctl.msg1.clone(),
                    });
                }
            }
            Ev::RawIncoming { sid, msg1 } => {
                to_host_frames.push(RelayFrame::Incoming {
                    session: raw_sid(sid),
                    handshake: msg1,
                });
            }
            Ev::RawData { sid, bytes } => {
                let session = if sid & 0x80 == 0 {
                    raw_sid(sid)
                } else {
                    SessionId([0xC0, sid % 8, 0, 0, 0, 0, 0, 0])
                };
                to_host_frames.push(RelayFrame::Data {
                    session,
                    payload: bytes,
                });
            }
            Ev::RawClose { sid, code } => {
                to_host_frames.push(RelayFrame::Close {
                    session: raw_sid(sid),
                    code: CloseCode(code),
                });
            }
            Ev::ControllerSend { c, plaintext } => {
                if let Some(ctl) = ctls.get_mut(usize::from(c) % 8) {
                    let r = ctl.c.send_plaintext(&plaintext);
                    if !ctl.established {
                        assert!(r.is_err(), "CHAN-15: no send before message 2");
                    }
                }
            }
            Ev::HostSend { sid, plaintext } => {
                let session = if sid & 0x80 == 0 {
                    raw_sid(sid)
                } else {
                    SessionId([0xC0, sid % 8, 0, 0, 0, 0, 0, 0])
                };
                let r = host.send_plaintext(session, &plaintext);
                if !established.contains(&session) {
                    assert!(
                        r.is_err(),
                        "CHAN-15: host sends only on established sessions"
                    );
                }
            }
            Ev::Confirm { sid, accept } => {
                if let Some(s) = awaiting
                    .get(usize::from(sid) % awaiting.len().max(1))
                    .copied()
                {
                    host.confirm_pairing(s, accept, wall, &mut store);
                }
            }
            Ev::Wait { secs } => {
                let d = Duration::from_secs(u64::from(secs % 120));
                now += d;
                wall = wall.saturating_add(d);
                host.handle_timeout(now);
                for ctl in &mut ctls {
                    ctl.c.handle_timeout(now);
                }
            }
            Ev::LinkLost => {
                host.handle_link_lost();
                for ctl in &mut ctls {
                    ctl.c.handle_close(CloseCode::PEER_GONE);
                }
            }
        }
        for frame in to_host_frames {
            match frame {
                RelayFrame::Open {
                    session, handshake, ..
                }
                | RelayFrame::Incoming { session, handshake } => {
                    msg1_of.insert(session, handshake.clone());
                    host.handle_incoming(session, &handshake, now, wall, &mut store);
                }
                RelayFrame::Data { session, payload } => host.handle_data(session, &payload),
                RelayFrame::Close { session, code } => host.handle_close(session, code),
                _ => {}
            }
        }

        // Host events.
        while let Some(ev) = host.poll_event() {
            match ev {
                HostEvent::Established {
                    session, paired, ..
                } => {
                    assert!(established.insert(session), "established twice");
                    ever_established.insert(session);
                    awaiting.retain(|s| *s != session);
                    if paired.is_some() {
                        pairings += 1;
                    }
                    let m = msg1_of
                        .get(&session)
                        .expect("message 1 of an established session");
                    assert!(
                        accepted.insert(m.clone()),
                        "message 1 accepted twice (CHAN-10, CHAN-12)"
                    );
                }
                HostEvent::ConfirmationRequested { session, code, .. } => {
                    assert_eq!(code.len(), 6);
                    assert!(!established.contains(&session));
                    awaiting.push(session);
                }
                HostEvent::Message { session, .. } | HostEvent::Rejected { session, .. } => {
                    assert!(
                        established.contains(&session),
                        "CHAN-15: command before handshake"
                    );
                }
                HostEvent::Closed { session, .. } | HostEvent::Refused { session, .. } => {
                    established.remove(&session);
                    awaiting.retain(|s| *s != session);
                }
                _ => {}
            }
        }
        let consumed = TOKENS
            .iter()
            .filter(|(id, _)| store.token_consumed(id) == Some(true))
            .count();
        assert!(
            pairings <= consumed,
            "a token paired twice (CHAN-12): {pairings} > {consumed}"
        );
        assert!(host.session_count() <= MAX_SESSIONS_PER_HOST);
        // Frames the host has queued: DATA only on sessions that got message 2.
        let mut pending = Vec::new();
        while let Some(f) = host.poll_transmit() {
            match &f {
                RelayFrame::Data { session, .. } => {
                    assert!(
                        ever_established.contains(session),
                        "CHAN-15: DATA before message 2"
                    );
                }
                RelayFrame::Close { .. } => {}
                other => panic!("the host sent {other:?}"),
            }
            pending.push(f);
        }
        // Deliver them straight away (the fuzzer still orders controller frames).
        for f in pending {
            let (session, data, close) = match f {
                RelayFrame::Data { session, payload } => (session, Some(payload), None),
                RelayFrame::Close { session, code } => (session, None, Some(code)),
                _ => unreachable!(),
            };
            for ctl in ctls.iter_mut().filter(|c| c.c.session() == session) {
                if let Some(d) = &data {
                    ctl.c.handle_data(d);
                }
                if let Some(code) = close {
                    ctl.c.handle_close(code);
                }
            }
        }
        for ctl in &mut ctls {
            while let Some(ev) = ctl.c.poll_event() {
                match ev {
                    ControllerEvent::Established { .. } => {
                        assert!(!ctl.established, "controller established twice");
                        ctl.established = true;
                    }
                    ControllerEvent::Message(_) | ControllerEvent::Rejected(_) => {
                        assert!(ctl.established, "controller: plaintext before message 2");
                    }
                    _ => {}
                }
            }
            if !ctl.established {
                assert!(!ctl.c.is_established());
            }
        }
    }
});
