//! Property tests of the channel codecs: round trips, and decoders that never panic on
//! arbitrary bytes (`CHAN-3`, `CHAN-4`, `CHAN-6`, `CHAN-8`, `CHAN-18`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use tether_proto::channel::{
    HandshakePayload, HostInfo, Initiator, PathStyle, Prologue, Responder, Timestamp,
};
use tether_proto::link::SessionId;
use tether_proto::time::UnixTime;

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0u64..(1u64 << 62), 0u32..1_000_000_000)
        .prop_map(|(s, n)| Timestamp::from_unix(UnixTime::new(s, n)))
}

fn device_name() -> impl Strategy<Value = String> {
    "[^\\p{Cc}]{1,16}".prop_filter("1..=64 bytes", |s| !s.is_empty() && s.len() <= 64)
}

fn payload() -> impl Strategy<Value = HandshakePayload> {
    prop_oneof![
        timestamp().prop_map(|timestamp| HandshakePayload::Session { timestamp }),
        (
            timestamp(),
            any::<[u8; 16]>(),
            any::<[u8; 32]>(),
            device_name()
        )
            .prop_map(|(timestamp, token_id, token_secret, device_name)| {
                HandshakePayload::Pair {
                    timestamp,
                    token_id,
                    token_secret,
                    device_name,
                }
            }),
    ]
}

fn host_info() -> impl Strategy<Value = HostInfo> {
    (
        ".{0,40}",
        "[a-z]{1,10}",
        "[a-z0-9_]{1,10}",
        ".{0,10}",
        any::<bool>(),
        proptest::collection::vec("[a-z.]{1,20}", 0..8),
    )
        .prop_map(|(name, os, arch, shell, windows, capabilities)| HostInfo {
            name,
            os,
            arch,
            shell,
            path_style: if windows {
                PathStyle::Windows
            } else {
                PathStyle::Posix
            },
            capabilities,
            protocol: "tether/1".into(),
        })
}

proptest! {
    #[test]
    fn chan_4_timestamp_round_trip(t in timestamp()) {
        let bytes = t.to_bytes();
        prop_assert_eq!(Timestamp::from_bytes(&bytes).unwrap(), t);
        prop_assert_eq!(Timestamp::from_unix(t.to_unix()), t);
    }

    #[test]
    fn chan_4_timestamp_order_is_byte_order(a in timestamp(), b in timestamp()) {
        prop_assert_eq!(a.cmp(&b), a.to_bytes().cmp(&b.to_bytes()));
    }

    #[test]
    fn chan_3_payload_round_trip(p in payload()) {
        let bytes = p.encode().unwrap();
        prop_assert_eq!(HandshakePayload::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn chan_3_payload_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = HandshakePayload::decode(&bytes) {
            // Strict: whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(p.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn chan_4_timestamp_decoder_never_panics(bytes in any::<[u8; 12]>()) {
        if let Ok(t) = Timestamp::from_bytes(&bytes) {
            prop_assert_eq!(t.to_bytes(), bytes);
        }
    }

    #[test]
    fn chan_6_host_info_round_trip(info in host_info()) {
        let bytes = info.encode().unwrap();
        prop_assert_eq!(HostInfo::decode(&bytes).unwrap(), info);
    }

    #[test]
    fn chan_6_host_info_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = HostInfo::decode(&bytes);
        let mut json = vec![1u8];
        json.extend_from_slice(&bytes);
        let _ = HostInfo::decode(&json);
    }

    #[test]
    fn chan_8_handshake_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let prologue = Prologue::new("ws", &[9u8; 32], SessionId([0; 8])).unwrap();
        prop_assert!(Responder::new(&[3u8; 32], &prologue).read_message1(&bytes).is_err());
        let init = Initiator::new(
            &[4u8; 32],
            &[9u8; 32],
            &prologue,
            &HandshakePayload::Session { timestamp: Timestamp::from_unix(UnixTime::from_secs(1)) },
        ).unwrap();
        prop_assert!(init.read_message2(&bytes).is_err());
    }
}
