//! Third-party vectors through the channel's crypto: the cacophony
//! `Noise_IK_25519_ChaChaPoly_BLAKE2s` vector, replayed through [`TetherResolver`] + snow
//! and [`Transport`], byte for byte (`CHAN-1`, `CHAN-17`, `CHAN-21`).
//!
//! The vectors live outside the repository, in `shared/third-party-vectors` beside it
//! (`$CARGO_MANIFEST_DIR/../../../shared/third-party-vectors`), or where
//! `TETHER_THIRD_PARTY_VECTORS` points. If they are missing the test fails: it does not
//! skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod third_party;

use third_party::load;

use serde_json::Value;
use tether_proto::channel::{IK_PROTOCOL_NAME, Transport, ik_params, noise_builder};

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().unwrap_or_else(|| panic!("field {name}"))).unwrap()
}

#[test]
fn cacophony_ik_vector_through_tether_resolver_and_transport() {
    let file = load("cacophony-noise-ik-25519-chachapoly-blake2s.json");
    let vectors = file["vectors"].as_array().unwrap();
    let mut replayed = 0;
    for v in vectors {
        assert_eq!(v["protocol_name"].as_str().unwrap(), IK_PROTOCOL_NAME);
        let (init_s, init_e, init_rs) = (
            hex_field(v, "init_static"),
            hex_field(v, "init_ephemeral"),
            hex_field(v, "init_remote_static"),
        );
        let (resp_s, resp_e) = (hex_field(v, "resp_static"), hex_field(v, "resp_ephemeral"));
        let (init_p, resp_p) = (hex_field(v, "init_prologue"), hex_field(v, "resp_prologue"));
        let mut init = noise_builder(ik_params().unwrap())
            .local_private_key(&init_s)
            .unwrap()
            .remote_public_key(&init_rs)
            .unwrap()
            .prologue(&init_p)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(&init_e)
            .build_initiator()
            .unwrap();
        let mut resp = noise_builder(ik_params().unwrap())
            .local_private_key(&resp_s)
            .unwrap()
            .prologue(&resp_p)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(&resp_e)
            .build_responder()
            .unwrap();
        let messages = v["messages"].as_array().unwrap();
        assert!(messages.len() >= 4, "a handshake and transport messages");
        let mut buf = vec![0u8; 65_535];
        let mut out = vec![0u8; 65_535];
        // Handshake: message 1 initiator -> responder, message 2 responder -> initiator.
        for (i, m) in messages[..2].iter().enumerate() {
            let (payload, ciphertext) = (hex_field(m, "payload"), hex_field(m, "ciphertext"));
            let (w, r) = if i == 0 {
                (&mut init, &mut resp)
            } else {
                (&mut resp, &mut init)
            };
            let n = w.write_message(&payload, &mut buf).unwrap();
            assert_eq!(
                hex::encode(&buf[..n]),
                hex::encode(&ciphertext),
                "message {i}"
            );
            let n = r.read_message(&ciphertext, &mut out).unwrap();
            assert_eq!(&out[..n], &payload[..], "message {i}");
        }
        assert_eq!(
            hex::encode(init.get_handshake_hash()),
            v["handshake_hash"].as_str().unwrap()
        );
        let mut init_t = Transport::from_finished_handshake(init).unwrap();
        let mut resp_t = Transport::from_finished_handshake(resp).unwrap();
        assert_eq!(
            hex::encode(init_t.handshake_hash()),
            v["handshake_hash"].as_str().unwrap()
        );
        // Transport: alternating, initiator first.
        for (i, m) in messages[2..].iter().enumerate() {
            let (payload, ciphertext) = (hex_field(m, "payload"), hex_field(m, "ciphertext"));
            let (w, r) = if i % 2 == 0 {
                (&mut init_t, &mut resp_t)
            } else {
                (&mut resp_t, &mut init_t)
            };
            let mut wire = Vec::new();
            w.encrypt(&payload, &mut wire).unwrap();
            assert_eq!(
                hex::encode(&wire),
                hex::encode(&ciphertext),
                "transport {i}"
            );
            let mut plain = Vec::new();
            r.decrypt(&ciphertext, &mut plain).unwrap();
            assert_eq!(plain, payload, "transport {i}");
            replayed += 1;
        }
        // CHAN-17: each side counted its own direction.
        let each = (messages.len() - 2) as u64;
        assert_eq!(init_t.sending_nonce(), each.div_ceil(2));
        assert_eq!(resp_t.sending_nonce(), each / 2);
    }
    println!(
        "cacophony: {} IK vector(s), {replayed} transport messages replayed byte for byte",
        vectors.len()
    );
    assert!(!vectors.is_empty() && replayed >= 4);
}
