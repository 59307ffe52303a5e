//! Every case of `vectors/pairing-token.json` through `tether-proto`'s token codec, in this
//! crate's own tests (`tether vectors verify` and the `tether-vectors` crate check the same
//! file; this copy keeps the decoder's refusals next to the decoder, `TOKEN-1`..`TOKEN-17`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/pairing-token.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Decodes the text (and the binary form when the case has one, which must agree), then
/// checks expiry at the case's `now`.
fn outcome(t: &Value) -> Result<PairingToken, (&'static str, &'static str)> {
    let err = |e: tether_proto::token::TokenError| (e.name(), e.requirement());
    let from_text = PairingToken::from_text(t["text"].as_str().unwrap());
    if let Some(bin) = t["binary"].as_str() {
        let from_binary = PairingToken::decode_binary(&hex::decode(bin).unwrap());
        assert_eq!(
            from_text.as_ref().map_err(|e| e.name()).err(),
            from_binary.as_ref().map_err(|e| e.name()).err(),
            "tcId {}: text and binary decode differently",
            t["tcId"]
        );
    }
    let token = from_text.map_err(err)?;
    token
        .check_expiry(UnixTime::from_secs(t["now"].as_u64().unwrap()))
        .map_err(err)?;
    Ok(token)
}

#[test]
fn every_token_vector() {
    let file = vectors();
    let tests = file["tests"].as_array().unwrap();
    assert_eq!(tests.len() as u64, file["numberOfTests"].as_u64().unwrap());
    let (mut valid, mut invalid) = (0, 0);
    for t in tests {
        let id = &t["tcId"];
        match t["result"].as_str().unwrap() {
            "valid" => {
                let tok = outcome(t).unwrap_or_else(|e| panic!("tcId {id}: {e:?}"));
                let f = &t["token"];
                assert_eq!(hex::encode(tok.host_key()), f["hostKey"], "tcId {id}");
                assert_eq!(hex::encode(tok.token_id()), f["tokenId"], "tcId {id}");
                assert_eq!(
                    hex::encode(tok.token_secret()),
                    f["tokenSecret"],
                    "tcId {id}"
                );
                assert_eq!(tok.expires_at(), f["expiresAt"], "tcId {id}");
                assert_eq!(tok.workspace(), f["workspace"], "tcId {id}");
                assert_eq!(tok.relay_url(), f["relayUrl"], "tcId {id}");
                assert_eq!(tok.host_name(), f["hostName"].as_str(), "tcId {id}");
                // TOKEN-1, TOKEN-3: re-encoding gives the same bytes and text.
                assert_eq!(hex::encode(tok.encode_binary()), t["binary"], "tcId {id}");
                assert_eq!(tok.to_text(), t["text"], "tcId {id}");
                // The fields re-built into a token encode to the same bytes.
                let again = PairingToken::new(
                    *tok.host_key(),
                    *tok.token_id(),
                    *tok.token_secret(),
                    tok.expires_at(),
                    tok.workspace(),
                    tok.relay_url(),
                    tok.host_name().map(str::to_owned),
                )
                .unwrap();
                assert_eq!(again.to_text(), t["text"], "tcId {id}");
                valid += 1;
            }
            _ => {
                let (name, requirement) = outcome(t)
                    .err()
                    .unwrap_or_else(|| panic!("tcId {id} decodes, expected an error"));
                assert_eq!(name, t["error"]["name"], "tcId {id}");
                assert_eq!(requirement, t["error"]["requirement"], "tcId {id}");
                invalid += 1;
            }
        }
    }
    assert!(valid > 0 && invalid > 0, "{valid} valid, {invalid} invalid");
}
