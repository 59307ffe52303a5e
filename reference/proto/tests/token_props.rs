//! Property tests of the pairing token codec (`TOKEN-1`, `TOKEN-3`, `TOKEN-12`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use tether_proto::token::PairingToken;

fn host_name() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[^\\p{Cc}]{1,40}".prop_filter("at most 64 bytes", |s| s.len() <= 64))
}

prop_compose! {
    fn token()(
        host_key in any::<[u8; 32]>(),
        token_id in any::<[u8; 16]>(),
        token_secret in any::<[u8; 32]>(),
        expires_at in any::<u64>(),
        workspace in "[a-z0-9._-]{1,64}",
        relay_url in "wss?://[!-~]{1,249}",
        host_name in host_name(),
    ) -> PairingToken {
        PairingToken::new(host_key, token_id, token_secret, expires_at, workspace, relay_url, host_name)
            .unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// TOKEN-1: decode(encode(t)) == t.
    #[test]
    fn token_1_binary_round_trip(t in token()) {
        let bytes = t.encode_binary();
        prop_assert_eq!(PairingToken::decode_binary(&bytes).unwrap(), t);
    }

    /// TOKEN-3, TOKEN-12, TOKEN-14: the text form round-trips, stays within 1024 characters
    /// and uses only the QR alphanumeric set.
    #[test]
    fn token_3_text_round_trip(t in token()) {
        let text = t.to_text();
        prop_assert!(text.len() <= 1024);
        prop_assert!(text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b':'));
        prop_assert_eq!(PairingToken::from_text(&text).unwrap(), t);
    }

    /// TOKEN-4: flipping any bit of a valid token is detected (the version byte reports
    /// UnknownVersion, everything else BadChecksum).
    #[test]
    fn token_4_any_bit_flip_is_rejected(t in token(), bit in any::<prop::sample::Index>()) {
        let mut bytes = t.encode_binary();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let e = PairingToken::decode_binary(&bytes).unwrap_err();
        let expected = if i < 8 { "UnknownVersion" } else { "BadChecksum" };
        prop_assert_eq!(e.name(), expected);
    }

    /// Decoders never panic on arbitrary bytes.
    #[test]
    fn token_decode_binary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = PairingToken::decode_binary(&bytes);
    }

    /// Arbitrary bytes that start with version 1 and carry a correct checksum reach the
    /// field checks without panicking, and anything accepted re-encodes identically.
    #[test]
    fn token_decode_sealed_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 95..400)) {
        use blake2::{Blake2s256, Digest};
        let mut bytes = body;
        bytes[0] = 1;
        let mut h = Blake2s256::new();
        h.update(b"TETHER-TOKEN-CHECKSUM-V1");
        h.update(&bytes);
        let sum = h.finalize();
        bytes.extend_from_slice(&sum[..4]);
        if let Ok(t) = PairingToken::decode_binary(&bytes) {
            prop_assert_eq!(t.encode_binary(), bytes);
        }
    }

    /// Decoders never panic on arbitrary text, with or without the prefix.
    #[test]
    fn token_from_text_never_panics(s in "\\PC{0,1100}", b32 in "[A-Z2-7=a-z ]{0,900}") {
        let _ = PairingToken::from_text(&s);
        let _ = PairingToken::from_text(&format!("TETHER:{b32}"));
    }
}
