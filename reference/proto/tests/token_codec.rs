//! Pairing token codec: exact bytes, decode order and every error (`spec/02`, `TOKEN-*`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use blake2::{Blake2s256, Digest};
use tether_proto::time::UnixTime;
use tether_proto::token::{PairingToken, TokenError, secret_digest, validate_workspace};

/// Fields of the sample token: key 0x11.., id 0x22.., secret 0x33.., expiry 0x6553f100.
fn sample(host_name: Option<&str>) -> PairingToken {
    PairingToken::new(
        [0x11; 32],
        [0x22; 16],
        [0x33; 32],
        1_700_000_000,
        "acme",
        "wss://r.example",
        host_name.map(str::to_owned),
    )
    .unwrap()
}

/// The sample token's bytes without the checksum (`TOKEN-1` layout), host name "dev".
const SAMPLE_BODY_HEX: &str = concat!(
    "01",                                                               // version
    "01",                                                               // flags: host name
    "20",                                                               // key length 32
    "1111111111111111111111111111111111111111111111111111111111111111", // host key
    "22222222222222222222222222222222",                                 // token id
    "3333333333333333333333333333333333333333333333333333333333333333", // token secret
    "000000006553f100",                                                 // expires 1700000000
    "04",
    "61636d65", // "acme"
    "0f",
    "7773733a2f2f722e6578616d706c65", // "wss://r.example"
    "03",
    "646576", // "dev"
);
const SAMPLE_CHECKSUM_HEX: &str = "8036db67";
const SAMPLE_TEXT: &str = "TETHER:AEASAEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIREIRCEIRCEIRCEIRCEIRCEIRCEIZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTGAAAAAAGKU7RAACGCY3NMUHXO43THIXS64ROMV4GC3LQNRSQGZDFO2ADNW3H";

/// `body || checksum(body)`: a binary token with a correct checksum (`TOKEN-4`).
fn seal(body: &[u8]) -> Vec<u8> {
    let mut h = Blake2s256::new();
    h.update(b"TETHER-TOKEN-CHECKSUM-V1");
    h.update(body);
    let mut out = body.to_vec();
    out.extend_from_slice(&h.finalize()[..4]);
    out
}

fn body() -> Vec<u8> {
    hex::decode(SAMPLE_BODY_HEX).unwrap()
}

fn decode_err(bytes: &[u8]) -> TokenError {
    PairingToken::decode_binary(bytes).unwrap_err()
}

#[test]
fn token_1_encodes_the_exact_layout() {
    let bytes = sample(Some("dev")).encode_binary();
    assert_eq!(
        hex::encode(&bytes),
        format!("{SAMPLE_BODY_HEX}{SAMPLE_CHECKSUM_HEX}")
    );
    assert_eq!(seal(&body()), bytes);
}

#[test]
fn token_1_decodes_the_exact_layout() {
    let bytes = hex::decode(format!("{SAMPLE_BODY_HEX}{SAMPLE_CHECKSUM_HEX}")).unwrap();
    let t = PairingToken::decode_binary(&bytes).unwrap();
    assert_eq!(t.host_key(), &[0x11; 32]);
    assert_eq!(t.token_id(), &[0x22; 16]);
    assert_eq!(t.token_secret(), &[0x33; 32]);
    assert_eq!(t.expires_at(), 1_700_000_000);
    assert_eq!(t.workspace(), "acme");
    assert_eq!(t.relay_url(), "wss://r.example");
    assert_eq!(t.host_name(), Some("dev"));
    assert_eq!(t, sample(Some("dev")));
}

#[test]
fn token_1_without_host_name_has_flag_zero_and_no_name_field() {
    let t = sample(None);
    let bytes = t.encode_binary();
    assert_eq!(bytes[1], 0x00);
    assert_eq!(bytes.len(), 99 + 3 + 14);
    let mut expected = body();
    expected[1] = 0x00;
    expected.truncate(expected.len() - 4); // drop "03646576"
    assert_eq!(bytes, seal(&expected));
    assert_eq!(PairingToken::decode_binary(&bytes).unwrap(), t);
}

#[test]
fn token_3_text_form_is_prefix_and_upper_case_base32() {
    let t = sample(Some("dev"));
    assert_eq!(t.to_text(), SAMPLE_TEXT);
    assert_eq!(PairingToken::from_text(SAMPLE_TEXT).unwrap(), t);
    // TOKEN-14: every character is in the QR alphanumeric set.
    assert!(
        SAMPLE_TEXT
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ':')
    );
}

#[test]
fn token_12_text_over_1024_chars_is_too_long() {
    let at_limit = format!("TETHER:{}", "A".repeat(1024 - 7));
    assert_eq!(at_limit.chars().count(), 1024);
    // 1024 characters pass the length check and fail later.
    assert_ne!(
        PairingToken::from_text(&at_limit).unwrap_err(),
        TokenError::TooLong
    );
    let over = format!("{at_limit}A");
    let e = PairingToken::from_text(&over).unwrap_err();
    assert_eq!(e, TokenError::TooLong);
    assert_eq!(e.requirement(), "TOKEN-12");
    // Checked before the prefix.
    assert_eq!(
        PairingToken::from_text(&"x".repeat(2000)).unwrap_err(),
        TokenError::TooLong
    );
    // Counted in characters, not bytes: 1000 two-byte characters are not too long.
    assert_eq!(
        PairingToken::from_text(&"é".repeat(1000)).unwrap_err(),
        TokenError::BadPrefix
    );
}

#[test]
fn token_3_other_prefix_is_bad_prefix() {
    let body = &SAMPLE_TEXT[7..];
    for text in [
        body.to_owned(),
        format!("tether:{body}"),
        format!("TETHER-{body}"),
        format!(" TETHER:{body}"),
        String::new(),
    ] {
        let e = PairingToken::from_text(&text).unwrap_err();
        assert_eq!(e, TokenError::BadPrefix, "{text}");
        assert_eq!(e.requirement(), "TOKEN-3");
    }
}

#[test]
fn token_3_characters_outside_the_alphabet_are_bad_encoding() {
    let lower = format!("TETHER:{}", SAMPLE_TEXT[7..].to_ascii_lowercase());
    let padded = format!("{SAMPLE_TEXT}===");
    let spaced = format!("TETHER:{} {}", &SAMPLE_TEXT[7..20], &SAMPLE_TEXT[20..]);
    let newline = format!("{SAMPLE_TEXT}\n");
    let digits = SAMPLE_TEXT.replacen('A', "0", 1);
    for text in [lower, padded, spaced, newline, digits] {
        let e = PairingToken::from_text(&text).unwrap_err();
        assert_eq!(e, TokenError::BadEncoding, "{text}");
        assert_eq!(e.requirement(), "TOKEN-3");
    }
}

#[test]
fn token_3_non_canonical_tail_bits_are_bad_encoding() {
    // Without a host name the token is 116 bytes: the last byte is carried by two
    // characters (10 bits), whose two unused low bits must be zero.
    let text = sample(None).to_text();
    let last = text.chars().last().unwrap();
    let value = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(last).unwrap();
    assert_eq!(value & 0b11, 0);
    for flip in [1, 2, 3] {
        let mut bad = text.clone();
        bad.pop();
        bad.push(char::from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[value | flip],
        ));
        assert_eq!(
            PairingToken::from_text(&bad).unwrap_err(),
            TokenError::BadEncoding,
            "{bad}"
        );
    }
}

#[test]
fn token_3_impossible_base32_length_is_bad_encoding() {
    // One base32 character cannot encode a whole byte.
    assert_eq!(
        PairingToken::from_text("TETHER:A").unwrap_err(),
        TokenError::BadEncoding
    );
}

#[test]
fn token_5_empty_token_is_truncated() {
    assert_eq!(
        PairingToken::from_text("TETHER:").unwrap_err(),
        TokenError::Truncated
    );
    assert_eq!(decode_err(&[]), TokenError::Truncated);
}

#[test]
fn token_2_unknown_version_is_checked_before_length_and_checksum() {
    for v in [0x00, 0x02, 0xff] {
        let e = decode_err(&[v]);
        assert_eq!(e, TokenError::UnknownVersion { version: v });
        assert_eq!(e.requirement(), "TOKEN-2");
        let mut b = body();
        b[0] = v;
        assert_eq!(
            decode_err(&seal(&b)),
            TokenError::UnknownVersion { version: v }
        );
        // A wrong checksum does not hide the version.
        let mut bad = seal(&b);
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(decode_err(&bad), TokenError::UnknownVersion { version: v });
    }
}

#[test]
fn token_5_shorter_than_minimum_is_truncated() {
    let full = sample(None).encode_binary();
    for len in 1..99 {
        assert_eq!(decode_err(&full[..len]), TokenError::Truncated, "{len}");
    }
}

#[test]
fn token_4_checksum_mismatch_is_bad_checksum() {
    let mut b = sample(Some("dev")).encode_binary();
    let n = b.len();
    b[n - 1] ^= 0x80;
    let e = decode_err(&b);
    assert_eq!(e, TokenError::BadChecksum);
    assert_eq!(e.requirement(), "TOKEN-4");
    // A changed field under the old checksum.
    let mut b = sample(Some("dev")).encode_binary();
    b[40] ^= 1;
    assert_eq!(decode_err(&b), TokenError::BadChecksum);
    // Checked before fields: a reserved flag under a stale checksum is a checksum error.
    let mut b = sample(Some("dev")).encode_binary();
    b[1] = 0x81;
    assert_eq!(decode_err(&b), TokenError::BadChecksum);
}

#[test]
fn token_6_reserved_flag_bits_are_rejected() {
    for flags in [0x02u8, 0x03, 0x80, 0xff] {
        let mut b = body();
        b[1] = flags;
        let e = decode_err(&seal(&b));
        assert_eq!(e, TokenError::ReservedFlags { flags });
        assert_eq!(e.requirement(), "TOKEN-6");
    }
}

#[test]
fn token_13_key_length_other_than_32_is_rejected() {
    for len in [0u8, 31, 33, 0xff] {
        let mut b = body();
        b[2] = len;
        let e = decode_err(&seal(&b));
        assert_eq!(e, TokenError::BadKeyLength { len });
        assert_eq!(e.requirement(), "TOKEN-13");
    }
}

#[test]
fn token_5_length_running_into_the_checksum_is_truncated() {
    // Workspace length 0xff: runs past the end of the body.
    let mut b = body();
    b[91] = 0xff;
    let e = decode_err(&seal(&b));
    assert_eq!(e, TokenError::Truncated);
    assert_eq!(e.requirement(), "TOKEN-5");
    // Host name flag set but no host name field.
    let mut b = body();
    b.truncate(b.len() - 4);
    assert_eq!(decode_err(&seal(&b)), TokenError::Truncated);
    // Host name length one more than the bytes present.
    let mut b = body();
    let n = b.len();
    b[n - 4] = 0x04;
    assert_eq!(decode_err(&seal(&b)), TokenError::Truncated);
}

#[test]
fn token_5_bytes_before_the_checksum_are_trailing() {
    let mut b = body();
    b.push(0x00);
    let e = decode_err(&seal(&b));
    assert_eq!(e, TokenError::TrailingBytes);
    assert_eq!(e.requirement(), "TOKEN-5");
    // A host name present while flag bit 0 is clear.
    let mut b = body();
    b[1] = 0x00;
    assert_eq!(decode_err(&seal(&b)), TokenError::TrailingBytes);
}

/// The sample body with one length-prefixed field replaced.
fn with_fields(workspace: &[u8], url: &[u8], name: Option<&[u8]>) -> Vec<u8> {
    let mut b = body()[..91].to_vec();
    b[1] = u8::from(name.is_some());
    for f in [Some(workspace), Some(url), name].into_iter().flatten() {
        b.push(u8::try_from(f.len()).unwrap());
        b.extend_from_slice(f);
    }
    seal(&b)
}

#[test]
fn token_7_bad_workspace_ids_are_rejected() {
    let long = [b'a'; 65];
    for ws in [
        &b""[..],
        b"Acme",
        b"ac me",
        b"acme/1",
        b"\xff",
        b"caf\xc3\xa9",
        &long[..],
    ] {
        let e = decode_err(&with_fields(ws, b"wss://r.example", None));
        assert_eq!(e, TokenError::BadWorkspace, "{ws:?}");
        assert_eq!(e.requirement(), "TOKEN-7");
    }
    let ok = [b'z'; 64];
    for ws in [&b"a"[..], b"a.b_c-9", &ok[..]] {
        assert!(
            PairingToken::decode_binary(&with_fields(ws, b"ws://x", None)).is_ok(),
            "{ws:?}"
        );
    }
    assert!(validate_workspace("team-1.prod_x"));
    assert!(!validate_workspace(""));
    assert!(!validate_workspace("Team"));
}

#[test]
fn token_8_bad_relay_urls_are_rejected() {
    let long = format!("wss://{}", "a".repeat(250));
    assert_eq!(long.len(), 256);
    for url in [
        "",
        "https://r.example",
        "WSS://r.example",
        "wss://",
        "ws://",
        "wss://r.example/a b",
        "wss://r\u{7f}",
        "wss://caf\u{e9}",
        "wss:/r.example",
    ] {
        let e = decode_err(&with_fields(b"acme", url.as_bytes(), None));
        assert_eq!(e, TokenError::BadRelayUrl, "{url:?}");
        assert_eq!(e.requirement(), "TOKEN-8");
    }
    // 256 bytes do not fit the length byte: the constructor refuses them.
    assert_eq!(
        PairingToken::new([0; 32], [0; 16], [0; 32], 1, "a", long, None).unwrap_err(),
        TokenError::BadRelayUrl
    );
    let max = format!("wss://{}", "~".repeat(249));
    assert!(PairingToken::decode_binary(&with_fields(b"a", max.as_bytes(), None)).is_ok());
}

#[test]
fn token_8_bad_host_names_are_rejected() {
    let long = "n".repeat(65);
    for name in [
        &b""[..],
        b"a\nb",
        b"tab\there",
        b"del\x7f",
        b"c1\xc2\x85",
        b"\xff\xfe",
        long.as_bytes(),
    ] {
        let e = decode_err(&with_fields(b"acme", b"wss://r", Some(name)));
        assert_eq!(e, TokenError::BadHostName, "{name:?}");
        assert_eq!(e.requirement(), "TOKEN-8");
    }
    let max = "é".repeat(32);
    let t = PairingToken::decode_binary(&with_fields(b"acme", b"wss://r", Some(max.as_bytes())))
        .unwrap();
    assert_eq!(t.host_name(), Some(max.as_str()));
}

#[test]
fn token_field_errors_follow_the_spec_order() {
    // Workspace, URL and host name all bad: the workspace is reported.
    assert_eq!(
        decode_err(&with_fields(b"A", b"http://", Some(b""))),
        TokenError::BadWorkspace
    );
    assert_eq!(
        decode_err(&with_fields(b"a", b"http://", Some(b""))),
        TokenError::BadRelayUrl
    );
    // Trailing bytes come before content checks.
    let mut b = with_fields(b"A", b"wss://r", None);
    b.truncate(b.len() - 4);
    b.push(0);
    assert_eq!(decode_err(&seal(&b)), TokenError::TrailingBytes);
}

#[test]
fn token_10_expiry_is_checked_against_the_given_clock() {
    let t = sample(None);
    assert_eq!(
        t.check_expiry(UnixTime::new(1_699_999_999, 999_999_999)),
        Ok(())
    );
    let e = t
        .check_expiry(UnixTime::from_secs(1_700_000_000))
        .unwrap_err();
    assert_eq!(e, TokenError::Expired);
    assert_eq!(e.requirement(), "TOKEN-10");
    assert_eq!(
        t.check_expiry(UnixTime::from_secs(u64::MAX)),
        Err(TokenError::Expired)
    );
}

#[test]
fn token_9_lifetime_above_600_s_is_refused() {
    let now = UnixTime::new(1_000, 500);
    assert_eq!(
        PairingToken::expiry_after(now, Duration::from_secs(300)),
        Ok(1_300)
    );
    assert_eq!(
        PairingToken::expiry_after(now, Duration::from_secs(600)),
        Ok(1_600)
    );
    let e = PairingToken::expiry_after(now, Duration::from_millis(600_001)).unwrap_err();
    assert_eq!(e, TokenError::LifetimeTooLong);
    assert_eq!(e.requirement(), "TOKEN-9");
}

#[test]
fn token_constructor_refuses_invalid_fields() {
    let new = |ws: &str, url: &str, name: Option<&str>| {
        PairingToken::new(
            [0; 32],
            [0; 16],
            [0; 32],
            0,
            ws,
            url,
            name.map(str::to_owned),
        )
    };
    assert_eq!(
        new("", "wss://r", None).unwrap_err(),
        TokenError::BadWorkspace
    );
    assert_eq!(
        new("a", "http://r", None).unwrap_err(),
        TokenError::BadRelayUrl
    );
    assert_eq!(
        new("a", "wss://r", Some("")).unwrap_err(),
        TokenError::BadHostName
    );
    assert_eq!(
        new("a", "wss://r", Some("bell\u{7}")).unwrap_err(),
        TokenError::BadHostName
    );
    assert!(new("a", "wss://r", Some("Laptop ☕")).is_ok());
}

#[test]
fn token_16_debug_does_not_print_the_secret() {
    let t = PairingToken::new([0x11; 32], [0x22; 16], [0xab; 32], 1, "a", "wss://r", None).unwrap();
    let debug = format!("{t:?}");
    assert!(!debug.contains("abab"), "{debug}");
    assert!(!debug.contains("171"), "{debug}");
    assert!(debug.contains("<redacted>"));
    assert!(debug.contains(&"22".repeat(16)));
}

#[test]
fn token_error_names_and_requirements() {
    let cases = [
        (TokenError::TooLong, "TooLong", "TOKEN-12"),
        (TokenError::BadPrefix, "BadPrefix", "TOKEN-3"),
        (TokenError::BadEncoding, "BadEncoding", "TOKEN-3"),
        (TokenError::Truncated, "Truncated", "TOKEN-5"),
        (
            TokenError::UnknownVersion { version: 2 },
            "UnknownVersion",
            "TOKEN-2",
        ),
        (TokenError::BadChecksum, "BadChecksum", "TOKEN-4"),
        (
            TokenError::ReservedFlags { flags: 2 },
            "ReservedFlags",
            "TOKEN-6",
        ),
        (
            TokenError::BadKeyLength { len: 31 },
            "BadKeyLength",
            "TOKEN-13",
        ),
        (TokenError::TrailingBytes, "TrailingBytes", "TOKEN-5"),
        (TokenError::BadWorkspace, "BadWorkspace", "TOKEN-7"),
        (TokenError::BadRelayUrl, "BadRelayUrl", "TOKEN-8"),
        (TokenError::BadHostName, "BadHostName", "TOKEN-8"),
        (TokenError::Expired, "Expired", "TOKEN-10"),
        (TokenError::LifetimeTooLong, "LifetimeTooLong", "TOKEN-9"),
    ];
    for (e, name, req) in cases {
        assert_eq!(e.name(), name);
        assert_eq!(e.requirement(), req);
        assert!(!e.to_string().is_empty());
        let wrapped = tether_proto::Error::from(e);
        assert_eq!(wrapped.requirement(), req);
    }
}

#[test]
fn token_11_secret_digest_is_blake2s_of_the_secret() {
    // BLAKE2s-256 of 32 zero bytes.
    assert_eq!(
        hex::encode(secret_digest(&[0; 32])),
        "320b5ea99e653bc2b593db4130d10a4efd3a0b4cc2e1a6672b678d71dfbd33ad"
    );
}
