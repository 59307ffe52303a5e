//! The host's handshake given an arbitrary message 1 (`CHAN-1`..`CHAN-14`, `LINK-15`).
//!
//! Input: one mode byte, then message 1. Mode `% 8 == 0` uses real cryptography (only the
//! length and Diffie-Hellman checks are reachable); every other mode uses the insecure
//! fuzzing primitives, so message 1 is `e ‖ s ‖ 16 zero bytes ‖ payload ‖ 16 zero bytes`
//! and the fuzzer reaches the payload decoder and the host's decision procedure.
//!
//! Asserts:
//! - `Responder::read_message1` accepts only messages of at most 512 bytes, and an accepted
//!   payload re-encodes and decodes to itself (`CHAN-3`);
//! - `Host::handle_incoming` answers each `INCOMING` with exactly one frame: `DATA`
//!   (message 2, and then the session is established) or `CLOSE`; it never emits a
//!   command message before the handshake (`CHAN-15`);
//! - a pairing consumes its token, and the same message 1 delivered again under another
//!   session id is refused: a consumed token never pairs twice (`CHAN-12`), a timestamp is
//!   never accepted twice (`CHAN-10`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_fuzz::*;
use tether_proto::channel::{HandshakePayload, Prologue, Responder};
use tether_proto::keys::public_key;
use tether_proto::limits::MAX_HANDSHAKE_LEN;
use tether_proto::link::{RelayFrame, SessionId};
use tether_proto::session::{Host, HostEvent};
use tether_proto::time::UnixTime;

fn one_incoming(
    host: &mut Host,
    store: &mut tether_proto::session::MemoryHostStore,
    session: SessionId,
    msg1: &[u8],
    now: std::time::Instant,
) -> Option<Option<String>> {
    host.handle_incoming(session, msg1, now, UnixTime::from_secs(WALL0), store);
    let frames: Vec<RelayFrame> = std::iter::from_fn(|| host.poll_transmit()).collect();
    assert_eq!(frames.len(), 1, "one answer per INCOMING: {frames:?}");
    let mut established = None;
    while let Some(ev) = host.poll_event() {
        match ev {
            HostEvent::Established {
                session: s, paired, ..
            } => {
                assert_eq!(s, session);
                assert!(established.is_none());
                established = Some(paired);
            }
            HostEvent::Refused {
                session: s,
                refusal,
            } => {
                assert_eq!(s, session);
                assert!(
                    matches!(frames[0], RelayFrame::Close { code, .. } if code == refusal.close_code())
                );
            }
            HostEvent::ConfirmationRequested { .. } => unreachable!("confirmation is off"),
            other => panic!("no command traffic before the handshake: {other:?}"),
        }
    }
    match (&frames[0], &established) {
        (RelayFrame::Data { session: s, .. }, Some(_)) => assert_eq!(*s, session),
        (RelayFrame::Close { session: s, .. }, None) => assert_eq!(*s, session),
        (f, e) => panic!("frame {f:?} with established {e:?}"),
    }
    assert_eq!(host.is_established(session), established.is_some());
    established
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, msg1)) = data.split_first() else {
        return;
    };
    begin(mode % 8 != 0);
    let host_key = public_key(&HOST_PRIVATE);
    let sid = SessionId(*b"fuzz-s01");

    // The bare handshake.
    let prologue = Prologue::new(WORKSPACE, &host_key, sid).expect("valid prologue");
    if let Ok(pending) = Responder::new(&HOST_PRIVATE, &prologue).read_message1(msg1) {
        assert!(msg1.len() <= MAX_HANDSHAKE_LEN, "LINK-15");
        let p = pending.payload().clone();
        let bytes = p.encode().expect("a decoded payload encodes");
        assert_eq!(HandshakePayload::decode(&bytes).as_ref(), Ok(&p));
        let mut out = Vec::new();
        let transport = pending
            .write_message2(&host_info(), &mut out)
            .expect("message 2 writes");
        assert!(!transport.is_closed());
        assert!(!out.is_empty());
    }

    // The host's decision procedure, twice with the same message 1.
    let now = start();
    let mut store = host_store();
    let mut host = Host::new(host_config(false));
    let first = one_incoming(&mut host, &mut store, sid, msg1, now);
    if let Some(Some(_)) = &first {
        assert!(
            TOKENS
                .iter()
                .any(|(id, _)| store.token_consumed(id) == Some(true)),
            "a pairing consumes its token (CHAN-12)"
        );
    }
    let second = one_incoming(&mut host, &mut store, SessionId(*b"fuzz-s02"), msg1, now);
    if first.is_some() {
        assert!(
            second.is_none(),
            "message 1 accepted twice (CHAN-10, CHAN-12)"
        );
    }
    assert!(host.session_count() <= 2);
});
