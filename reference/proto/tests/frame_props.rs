//! Property tests of the relay frame codec (`LINK-4`, `LINK-5`, `LINK-30`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::collection::vec;
use proptest::prelude::*;
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};

fn session() -> impl Strategy<Value = SessionId> {
    any::<[u8; 8]>().prop_map(SessionId)
}

fn hello() -> impl Strategy<Value = RelayFrame> {
    (
        any::<u8>(),
        any::<bool>(),
        "[a-z0-9._-]{1,64}",
        vec(any::<u8>(), 16..=255),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(version, host, workspace, credential, reg)| RelayFrame::Hello {
                version,
                role: if host { Role::Host } else { Role::Controller },
                workspace,
                credential,
                registration: if host { reg.to_vec() } else { Vec::new() },
            },
        )
}

fn frame() -> impl Strategy<Value = RelayFrame> {
    prop_oneof![
        hello(),
        vec(any::<u8>(), 48).prop_map(|message| RelayFrame::HostChallenge { message }),
        vec(any::<u8>(), 64).prop_map(|message| RelayFrame::HostProof { message }),
        Just(RelayFrame::Ready),
        (session(), any::<[u8; 32]>(), vec(any::<u8>(), 1..=512)).prop_map(
            |(session, host_key, handshake)| RelayFrame::Open {
                session,
                host_key,
                handshake
            }
        ),
        (session(), vec(any::<u8>(), 1..=512))
            .prop_map(|(session, handshake)| RelayFrame::Incoming { session, handshake }),
        (session(), vec(any::<u8>(), 1..=2048))
            .prop_map(|(session, payload)| RelayFrame::Data { session, payload }),
        (session(), any::<u16>()).prop_map(|(session, code)| RelayFrame::Close {
            session,
            code: CloseCode(code)
        }),
        any::<u64>().prop_map(|value| RelayFrame::Ping { value }),
        any::<u64>().prop_map(|value| RelayFrame::Pong { value }),
        (any::<u16>(), "\\PC{0,60}")
            .prop_filter("reason fits 255 bytes", |(_, r)| r.len() <= 255)
            .prop_map(|(code, reason)| RelayFrame::GoAway {
                code: CloseCode(code),
                reason
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// LINK-30: decode(encode(f)) == f for every valid frame.
    #[test]
    fn link_30_round_trip(f in frame()) {
        let bytes = f.to_bytes().unwrap();
        prop_assert_eq!(bytes[0], f.frame_type());
        prop_assert_eq!(RelayFrame::decode(&bytes).unwrap(), f);
    }

    /// LINK-4: any byte appended to a frame without a "rest" field is TrailingBytes, and
    /// any proper prefix of a frame is rejected.
    #[test]
    fn link_4_prefixes_and_extensions(f in frame(), extra in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let bytes = f.to_bytes().unwrap();
        let n = cut.index(bytes.len());
        let prefix_ok = RelayFrame::decode(&bytes[..n]);
        // A proper prefix may still decode only where the last field is "rest" and
        // variable (DATA payload, OPEN/INCOMING handshake): then it is a different frame.
        if let Ok(g) = prefix_ok {
            prop_assert_ne!(g, f.clone());
        }
        let mut longer = bytes.clone();
        longer.push(extra);
        let fixed_end = matches!(
            f,
            RelayFrame::Ready
                | RelayFrame::Close { .. }
                | RelayFrame::Ping { .. }
                | RelayFrame::Pong { .. }
                | RelayFrame::GoAway { .. }
        );
        match RelayFrame::decode(&longer) {
            Ok(g) => {
                prop_assert!(!fixed_end);
                prop_assert_ne!(g, f);
            }
            Err(e) if fixed_end => prop_assert_eq!(e.name(), "TrailingBytes"),
            Err(e) => {
                let allowed = ["BadRegistrationLength", "BadHandshakeLength"].contains(&e.name());
                prop_assert!(allowed, "unexpected error {:?}", e);
            }
        }
    }

    /// Decoders never panic on arbitrary bytes, and anything accepted re-encodes to the
    /// same bytes (decoding is canonical).
    #[test]
    fn frame_decode_never_panics(bytes in vec(any::<u8>(), 0..1200)) {
        if let Ok(f) = RelayFrame::decode(&bytes) {
            prop_assert_eq!(f.to_bytes().unwrap(), bytes);
        }
    }

    /// The same with a valid type byte forced, so bodies are exercised for every type.
    #[test]
    fn frame_decode_typed_never_panics(
        ty in prop::sample::select(vec![0x01u8, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x30]),
        body in vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = vec![ty];
        bytes.extend_from_slice(&body);
        if let Ok(f) = RelayFrame::decode(&bytes) {
            prop_assert_eq!(f.to_bytes().unwrap(), bytes);
        }
    }
}
