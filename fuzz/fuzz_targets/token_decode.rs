//! Pairing token decoders (`TOKEN-*`): `PairingToken::from_text` and `decode_binary`.
//!
//! Asserts: no panic; an accepted binary form is canonical (re-encodes to the same bytes);
//! decode(encode(t)) == t for both forms; an accepted text is at most 1024 characters
//! (`TOKEN-12`); the text and binary forms of one token agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::limits::TOKEN_MAX_TEXT_LEN;
use tether_proto::token::PairingToken;

fn check(token: &PairingToken) {
    let binary = token.encode_binary();
    let again = PairingToken::decode_binary(&binary).expect("encode_binary output decodes");
    assert_eq!(&again, token, "decode_binary(encode_binary(t)) == t");
    let text = token.to_text();
    assert!(text.len() <= TOKEN_MAX_TEXT_LEN || PairingToken::from_text(&text).is_err());
    if let Ok(again) = PairingToken::from_text(&text) {
        assert_eq!(&again, token, "from_text(to_text(t)) == t");
        assert_eq!(again.to_text(), text, "to_text is deterministic");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(token) = PairingToken::from_text(text) {
            assert!(text.chars().count() <= TOKEN_MAX_TEXT_LEN, "TOKEN-12");
            check(&token);
        }
    } else if let Ok(token) = PairingToken::decode_binary(rest) {
        assert_eq!(token.encode_binary(), rest, "the binary form is canonical");
        check(&token);
    }
});
