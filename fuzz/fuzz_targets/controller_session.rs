//! The controller's session state machine (`Controller`) driven by an arbitrary sequence
//! of events: an honest host answering (or not), raw `DATA` from the fuzzer as message 2 or
//! transport messages (insecure primitives, so a forged message 2 gets past the AEAD), bit
//! flips, `CLOSE`s, timeouts and sends on both sides.
//!
//! Asserts after every event:
//! - the controller's first frame is `OPEN`; it sends no `DATA` and `send` fails before
//!   message 2 is read (`CHAN-15`);
//! - `Established` at most once, command messages only after it, nothing at all after
//!   `Closed`; a closed controller sends nothing more;
//! - a timeout closes only a session still waiting for message 2 (`CHAN-13`);
//! - its queues are drained every step, so memory stays bounded.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_fuzz::*;
use tether_proto::channel::Timestamp;
use tether_proto::keys::public_key;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::session::{
    Controller, ControllerConfig, ControllerEvent, Host, HostEvent, Purpose,
};
use tether_proto::time::UnixTime;

#[derive(Arbitrary, Debug)]
enum Ev {
    /// Deliver the controller's next frame to the honest host.
    ToHost {
        flip: Option<u16>,
    },
    /// Deliver the host's next frame to the controller.
    ToController {
        flip: Option<u16>,
    },
    RawData(Vec<u8>),
    RawClose(u16),
    Wait(u16),
    ControllerSend(Vec<u8>),
    HostSend(Vec<u8>),
    Close(u16),
    Confirm(bool),
}

#[derive(Arbitrary, Debug)]
struct Input {
    pair: bool,
    confirm: bool,
    events: Vec<Ev>,
}

fn flip(bytes: &mut [u8], bit: Option<u16>) {
    if let Some(bit) = bit
        && !bytes.is_empty()
    {
        let i = usize::from(bit / 8) % bytes.len();
        bytes[i] ^= 1 << (bit % 8);
    }
}

fuzz_target!(|input: Input| {
    begin(true);
    let mut now = start();
    let wall = UnixTime::from_secs(WALL0);
    let session = SessionId(*b"fuzz-ctl");
    let purpose = if input.pair {
        Purpose::Pair {
            token_id: TOKENS[0].0,
            token_secret: TOKENS[0].1,
            device_name: "phone".into(),
        }
    } else {
        Purpose::Resume
    };
    let mut ctl = Controller::connect(
        ControllerConfig {
            static_private: CONTROLLERS[0],
            host_key: public_key(&HOST_PRIVATE),
            workspace: WORKSPACE.into(),
            session,
            timestamp: Timestamp::from_unix(wall),
            handshake_timeout: ControllerConfig::default_timeout(&purpose),
            purpose,
        },
        now,
    )
    .expect("connect");
    let mut store = host_store();
    let mut host = Host::new(host_config(input.confirm));

    let mut to_host: Vec<RelayFrame> = Vec::new();
    let mut to_ctl: Vec<RelayFrame> = Vec::new();
    let mut first = true;
    let mut established = false;
    let mut closed = false;

    for ev in input.events.into_iter().take(48) {
        match ev {
            Ev::ToHost { flip: bit } => {
                if to_host.is_empty() {
                    continue;
                }
                match to_host.remove(0) {
                    RelayFrame::Open {
                        session,
                        mut handshake,
                        ..
                    } => {
                        flip(&mut handshake, bit);
                        host.handle_incoming(session, &handshake, now, wall, &mut store);
                    }
                    RelayFrame::Data {
                        session,
                        mut payload,
                    } => {
                        flip(&mut payload, bit);
                        host.handle_data(session, &payload);
                    }
                    RelayFrame::Close { session, code } => host.handle_close(session, code),
                    other => panic!("controller sent {other:?}"),
                }
            }
            Ev::ToController { flip: bit } => {
                if to_ctl.is_empty() {
                    continue;
                }
                match to_ctl.remove(0) {
                    RelayFrame::Data { mut payload, .. } => {
                        flip(&mut payload, bit);
                        ctl.handle_data(&payload);
                    }
                    RelayFrame::Close { code, .. } => ctl.handle_close(code),
                    other => panic!("host sent {other:?}"),
                }
            }
            Ev::RawData(bytes) => ctl.handle_data(&bytes),
            Ev::RawClose(code) => ctl.handle_close(CloseCode(code)),
            Ev::Wait(secs) => {
                now += Duration::from_secs(u64::from(secs % 200));
                let waiting = ctl.poll_timeout().is_some_and(|t| t <= now);
                let was_closed = ctl.is_closed();
                ctl.handle_timeout(now);
                host.handle_timeout(now);
                assert_eq!(ctl.is_closed(), was_closed || waiting, "CHAN-13");
            }
            Ev::ControllerSend(p) => {
                let r = ctl.send_plaintext(&p);
                if !established || closed {
                    assert!(r.is_err(), "CHAN-15: send before message 2 or after close");
                }
            }
            Ev::HostSend(p) => {
                let _ = host.send_plaintext(session, &p);
            }
            Ev::Close(code) => ctl.close(CloseCode(code)),
            Ev::Confirm(accept) => host.confirm_pairing(session, accept, wall, &mut store),
        }
        while let Some(f) = ctl.poll_transmit() {
            if first {
                assert!(matches!(f, RelayFrame::Open { .. }), "first frame is OPEN");
                first = false;
            } else {
                assert!(
                    !closed || matches!(f, RelayFrame::Close { .. }),
                    "nothing after close"
                );
                if let RelayFrame::Data { .. } = f {
                    assert!(
                        ctl.is_established() || established,
                        "CHAN-15: DATA before message 2"
                    );
                }
            }
            assert!(!matches!(f, RelayFrame::Open { .. }) || to_host.is_empty());
            to_host.push(f);
        }
        while let Some(f) = host.poll_transmit() {
            to_ctl.push(f);
        }
        while let Some(ev) = host.poll_event() {
            if let HostEvent::Message { session: s, .. } = ev {
                assert_eq!(s, session);
            }
        }
        while let Some(ev) = ctl.poll_event() {
            assert!(!closed, "event after Closed: {ev:?}");
            match ev {
                ControllerEvent::Established { host_info } => {
                    assert!(!established, "established twice");
                    established = true;
                    assert!(host_info.encode().is_ok(), "CHAN-6");
                }
                ControllerEvent::Message(_) | ControllerEvent::Rejected(_) => {
                    assert!(established, "CHAN-15: plaintext before message 2");
                }
                ControllerEvent::Closed { .. } => closed = true,
                _ => {}
            }
        }
        assert_eq!(ctl.is_closed(), closed);
        assert_eq!(ctl.is_established(), established && !closed);
        to_host.truncate(64);
        to_ctl.truncate(64);
    }
});
