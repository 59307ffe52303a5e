//! The client end of the relay link (`LinkClient`, chapter 3) fed whatever a relay could
//! send: binary messages, text, oversized messages, the connection closing, timers, and the
//! caller's own sends.
//!
//! Asserts: no panic; every transmitted message is one valid frame, the first a `HELLO` of
//! the client's role; nothing but a `GOAWAY` is transmitted after the link ended, and only
//! in the same step that ended it (`LINK-27`); a `PING` is answered by a `PONG` with its value
//! (`LINK-25`); `poll_timeout` is `None` exactly when the link has ended; `Ended` is the last
//! event.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_fuzz::{HOST_PRIVATE, WORKSPACE};
use tether_proto::link::{
    ClientConfig, CloseCode, Incoming, LinkClient, LinkEvent, RelayFrame, Role, SessionId,
};

#[derive(Arbitrary, Debug)]
enum Step {
    Binary(Vec<u8>),
    /// A well-formed frame of a type chosen by the fuzzer (reaches deeper states).
    Frame(u8, u64, Vec<u8>),
    Text,
    TooLarge,
    Closed,
    Advance(u16),
    Open(u64, Vec<u8>),
    Send(u64, Vec<u8>),
    CloseSession(u64, u16),
    Close(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    host: bool,
    steps: Vec<Step>,
}

fn frame(kind: u8, n: u64, bytes: Vec<u8>) -> RelayFrame {
    let session = SessionId(n.to_be_bytes());
    match kind % 8 {
        0 => RelayFrame::Ready,
        1 => RelayFrame::HostChallenge { message: bytes },
        2 => RelayFrame::Incoming { session, handshake: bytes },
        3 => RelayFrame::Data { session, payload: bytes },
        4 => RelayFrame::Close { session, code: CloseCode(n as u16) },
        5 => RelayFrame::Ping { value: n },
        6 => RelayFrame::Pong { value: n },
        _ => RelayFrame::GoAway { code: CloseCode(n as u16), reason: String::new() },
    }
}

fuzz_target!(|input: Input| {
    let t0 = Instant::now();
    let mut now = t0;
    let config = ClientConfig::new(WORKSPACE, b"0123456789abcdef".to_vec());
    let (mut client, role) = if input.host {
        (LinkClient::host(config, &HOST_PRIVATE, now).expect("host client"), Role::Host)
    } else {
        (LinkClient::controller(config, now).expect("controller client"), Role::Controller)
    };
    let mut first = true;
    let mut ended = false;
    for step in input.steps.into_iter().take(64) {
        let was_ended = client.is_ended();
        let mut ping = None;
        match step {
            Step::Binary(b) => client.handle_message(Incoming::Binary(&b), now),
            Step::Frame(kind, n, bytes) => {
                let f = frame(kind, n, bytes);
                if let (RelayFrame::Ping { value }, true) = (&f, client.is_ready()) {
                    ping = Some(*value);
                }
                if let Ok(b) = f.to_bytes() {
                    client.handle_message(Incoming::Binary(&b), now);
                }
            }
            Step::Text => client.handle_message(Incoming::Text, now),
            Step::TooLarge => client.handle_message(Incoming::TooLarge, now),
            Step::Closed => client.handle_message(Incoming::Closed("closed"), now),
            Step::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms) * 10);
                client.handle_timeout(now);
            }
            Step::Open(n, h) => {
                let _ = client.open(SessionId(n.to_be_bytes()), [1; 32], h, now);
            }
            Step::Send(n, p) => {
                let _ = client.send(SessionId(n.to_be_bytes()), p, now);
            }
            Step::CloseSession(n, c) => {
                let _ = client.close_session(SessionId(n.to_be_bytes()), CloseCode(c), now);
            }
            Step::Close(c) => client.close(CloseCode(c), "bye", now),
        }
        let mut sent = Vec::new();
        while let Some(bytes) = client.poll_transmit() {
            let f = RelayFrame::decode(&bytes).expect("the client sends valid frames");
            if first {
                assert!(matches!(f, RelayFrame::Hello { role: r, .. } if r == role), "first frame is HELLO");
                first = false;
            }
            assert!(!was_ended, "sent {} after the link ended", f.type_name());
            sent.push(f);
        }
        if client.is_ended() {
            assert!(
                sent.iter().skip_while(|f| !matches!(f, RelayFrame::GoAway { .. })).count() <= 1,
                "nothing after GOAWAY"
            );
        }
        if let (Some(value), false) = (ping, client.is_ended()) {
            assert!(sent.contains(&RelayFrame::Pong { value }), "PING answered");
        }
        while let Some(event) = client.poll_event() {
            assert!(!ended, "an event after Ended");
            ended = matches!(event, LinkEvent::Ended(_));
        }
        assert_eq!(client.poll_timeout().is_none(), client.is_ended());
    }
});
