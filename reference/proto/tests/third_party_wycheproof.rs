//! Wycheproof X25519 and ChaCha20-Poly1305 cases through the primitives
//! [`TetherResolver`] returns (`CHAN-7`, `CHAN-21`).
//!
//! X25519: `valid` cases must give the stated shared secret; every case whose shared
//! secret is all zeros (`ZeroSharedSecret`, with `LowOrderPublic`) must be refused
//! (`CHAN-7`), and its public key must make message 1 fail with `LowOrderKey`; every other
//! `acceptable` case (`Twist`, `NonCanonicalPublic`, edge cases) is accepted and must give
//! the stated shared secret, as RFC 7748 computes it — Tether rejects only the all-zero
//! output.
//!
//! ChaCha20-Poly1305: Noise's nonce is 32 zero bits then a 64-bit little-endian counter
//! (`CHAN-21`), so only 96-bit-nonce cases whose first 4 nonce bytes are zero can be run;
//! the others are counted and reported as skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod third_party;

use third_party::load;

use serde_json::Value;
use snow::params::{CipherChoice, DHChoice};
use snow::resolvers::CryptoResolver;
use tether_proto::channel::{
    ChannelError, HandshakePayload, Initiator, Prologue, Responder, TetherResolver, Timestamp,
};
use tether_proto::link::SessionId;
use tether_proto::time::UnixTime;

fn tests_of(file: &Value) -> Vec<(Value, Value)> {
    file["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g["tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (g.clone(), t.clone()))
        })
        .collect()
}

fn hex_of(t: &Value, name: &str) -> Vec<u8> {
    hex::decode(t[name].as_str().unwrap()).unwrap()
}

fn flags(t: &Value) -> Vec<String> {
    t["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn wycheproof_x25519_through_tether_dh() {
    let file = load("wycheproof-x25519_test.json");
    let resolver = TetherResolver::default();
    let (mut valid, mut refused_zero, mut acceptable_same, mut skipped) = (0, 0, 0, 0);
    let mut low_order_publics = Vec::new();
    for (_, t) in tests_of(&file) {
        let id = t["tcId"].as_u64().unwrap();
        let (public, private, shared) = (
            hex_of(&t, "public"),
            hex_of(&t, "private"),
            hex_of(&t, "shared"),
        );
        if public.len() != 32 || private.len() != 32 {
            skipped += 1;
            continue;
        }
        let mut dh = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        dh.set(&private);
        let mut out = [0u8; 32];
        let got = dh.dh(&public, &mut out);
        let zero = shared.iter().all(|&b| b == 0);
        let result = t["result"].as_str().unwrap();
        if zero {
            // CHAN-7: whatever Wycheproof calls it, an all-zero output is refused.
            assert_eq!(
                got,
                Err(snow::Error::Dh),
                "tcId {id}: zero shared secret accepted"
            );
            assert!(
                flags(&t).iter().any(|f| f == "ZeroSharedSecret"),
                "tcId {id}"
            );
            refused_zero += 1;
            if flags(&t).iter().any(|f| f == "LowOrderPublic") {
                low_order_publics.push((id, public.clone()));
            }
            continue;
        }
        match result {
            "valid" => {
                got.unwrap_or_else(|e| panic!("tcId {id}: valid case refused: {e:?}"));
                assert_eq!(hex::encode(out), hex::encode(&shared), "tcId {id}");
                valid += 1;
            }
            "acceptable" => {
                // Documented choice: accepted, same output as RFC 7748.
                got.unwrap_or_else(|e| panic!("tcId {id}: acceptable case refused: {e:?}"));
                assert_eq!(hex::encode(out), hex::encode(&shared), "tcId {id}");
                acceptable_same += 1;
            }
            other => {
                assert!(got.is_err(), "tcId {id}: {other} case accepted");
            }
        }
    }
    println!(
        "wycheproof x25519: {valid} valid ok, {acceptable_same} acceptable accepted with the \
         stated secret, {refused_zero} zero-shared-secret refused (CHAN-7), {skipped} skipped \
         (key length != 32)"
    );
    assert_eq!(skipped, 0);
    assert!(valid >= 200 && acceptable_same >= 100 && refused_zero >= 30);

    // The low-order public keys, used as the ephemeral of message 1, fail the handshake
    // with LowOrderKey at the host.
    let host_private = [0x48u8; 32];
    let mut dh = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
    dh.set(&host_private);
    let host_public: [u8; 32] = dh.pubkey().try_into().unwrap();
    let prologue = Prologue::new("acme", &host_public, SessionId([7; 8])).unwrap();
    let msg1 = Initiator::new(
        &[0x21u8; 32],
        &host_public,
        &prologue,
        &HandshakePayload::Session {
            timestamp: Timestamp::from_unix(UnixTime::from_secs(1_800_000_000)),
        },
    )
    .unwrap()
    .message1()
    .to_vec();
    let mut distinct = low_order_publics.clone();
    distinct.sort_by(|a, b| a.1.cmp(&b.1));
    distinct.dedup_by(|a, b| a.1 == b.1);
    for (id, public) in &distinct {
        let mut bad = msg1.clone();
        bad[..32].copy_from_slice(public);
        assert_eq!(
            Responder::new(&host_private, &prologue)
                .read_message1(&bad)
                .unwrap_err(),
            ChannelError::LowOrderKey,
            "tcId {id}"
        );
        // And as the host key a controller was given.
        let p = Prologue::new(
            "acme",
            &public.clone().try_into().unwrap(),
            SessionId([7; 8]),
        )
        .unwrap();
        let err = Initiator::new(
            &[0x21u8; 32],
            &public.clone().try_into().unwrap(),
            &p,
            &HandshakePayload::Session {
                timestamp: Timestamp::from_unix(UnixTime::from_secs(1)),
            },
        )
        .unwrap_err();
        assert_eq!(err, ChannelError::LowOrderKey, "tcId {id}");
    }
    println!(
        "wycheproof x25519: {} distinct low-order public keys refused in message 1 and as host key",
        distinct.len()
    );
    assert!(distinct.len() >= 10);
}

#[test]
fn wycheproof_chacha20_poly1305_through_tether_cipher() {
    let file = load("wycheproof-chacha20_poly1305_test.json");
    let resolver = TetherResolver::default();
    let (mut ran_valid, mut ran_invalid) = (0, 0);
    let (mut skipped_nonce_size, mut skipped_nonce_prefix) = (0, 0);
    for (group, t) in tests_of(&file) {
        let id = t["tcId"].as_u64().unwrap();
        let iv = hex_of(&t, "iv");
        if group["ivSize"].as_u64() != Some(96) || iv.len() != 12 {
            skipped_nonce_size += 1;
            continue;
        }
        if iv[..4] != [0, 0, 0, 0] {
            skipped_nonce_prefix += 1;
            continue;
        }
        // CHAN-21: 32 zero bits, then the counter little-endian.
        let nonce = u64::from_le_bytes(iv[4..].try_into().unwrap());
        let key: [u8; 32] = hex_of(&t, "key").try_into().unwrap();
        let (aad, msg, ct, tag) = (
            hex_of(&t, "aad"),
            hex_of(&t, "msg"),
            hex_of(&t, "ct"),
            hex_of(&t, "tag"),
        );
        let mut cipher = resolver.resolve_cipher(&CipherChoice::ChaChaPoly).unwrap();
        cipher.set(&key);
        let mut sealed = ct.clone();
        sealed.extend_from_slice(&tag);
        let mut plain = vec![0u8; sealed.len()];
        let opened = cipher.decrypt(nonce, &aad, &sealed, &mut plain);
        match t["result"].as_str().unwrap() {
            "valid" => {
                let mut out = vec![0u8; msg.len() + 16];
                let n = cipher.encrypt(nonce, &aad, &msg, &mut out);
                assert_eq!(hex::encode(&out[..n]), hex::encode(&sealed), "tcId {id}");
                let n = opened.unwrap_or_else(|e| panic!("tcId {id}: {e:?}"));
                assert_eq!(&plain[..n], &msg[..], "tcId {id}");
                // Any flipped tag bit must be refused as well.
                for bit in 0..128 {
                    let mut bad = sealed.clone();
                    let at = sealed.len() - 16 + bit / 8;
                    bad[at] ^= 1 << (bit % 8);
                    assert!(
                        cipher.decrypt(nonce, &aad, &bad, &mut plain).is_err(),
                        "tcId {id}"
                    );
                }
                ran_valid += 1;
            }
            _ => {
                assert!(opened.is_err(), "tcId {id}: invalid case opened");
                ran_invalid += 1;
            }
        }
    }
    println!(
        "wycheproof chacha20-poly1305: ran {ran_valid} valid + {ran_invalid} invalid; skipped \
         {skipped_nonce_prefix} (96-bit nonce not starting with 32 zero bits: not a Noise \
         nonce) and {skipped_nonce_size} (nonce not 96 bits)"
    );
    assert!(
        ran_valid + ran_invalid >= 10,
        "too few Wycheproof AEAD cases ran"
    );
}
