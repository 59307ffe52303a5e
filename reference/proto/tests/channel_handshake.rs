//! The secure channel end to end: handshake, transport, tampering, replay, wrong
//! prologues, low-order keys, rekey and nonce exhaustion (`spec/04-secure-channel.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::atomic::{AtomicUsize, Ordering};

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use tether_proto::channel::{
    ChannelError, HandshakePayload, HostInfo, Initiator, PathStyle, Prologue, Responder, Timestamp,
    Transport, ik_params, noise_builder,
};
use tether_proto::limits::REKEY_INTERVAL;
use tether_proto::link::{CloseCode, SessionId};
use tether_proto::time::UnixTime;

const CONTROLLER_STATIC: &str = "58d4d5b2a8c1e0f3b7a69c21e2f2d9c6a4f3b8e1d0c9b7a6f5e4d3c2b1a09f8e";
const CONTROLLER_EPHEMERAL: &str =
    "18a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f40";
const HOST_STATIC: &str = "c8e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff00112233445566f";
const HOST_EPHEMERAL: &str = "a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e5f";
/// A point of order 8 on Curve25519 (Wycheproof x25519 `LowOrderPublic`,
/// `ZeroSharedSecret`).
const LOW_ORDER_POINT: &str = "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800";

fn key(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

fn public(private: &[u8; 32]) -> [u8; 32] {
    let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
    dh.set(private);
    dh.pubkey().try_into().unwrap()
}

fn session() -> SessionId {
    SessionId(hex::decode("0123456789abcdef").unwrap().try_into().unwrap())
}

fn prologue() -> Prologue {
    Prologue::new("acme", &public(&key(HOST_STATIC)), session()).unwrap()
}

fn payload() -> HandshakePayload {
    HandshakePayload::Session {
        timestamp: Timestamp::from_unix(UnixTime::new(1_800_000_000, 5)),
    }
}

fn host_info() -> HostInfo {
    HostInfo {
        name: "build-box".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        shell: "bash".into(),
        path_style: PathStyle::Posix,
        capabilities: vec!["agent.test".into(), "command.exec".into()],
        protocol: "tether/1".into(),
    }
}

fn initiator() -> Initiator {
    Initiator::new_with_fixed_ephemeral_for_testing(
        &key(CONTROLLER_STATIC),
        &public(&key(HOST_STATIC)),
        &prologue(),
        &payload(),
        &key(CONTROLLER_EPHEMERAL),
    )
    .unwrap()
}

fn responder(prologue: &Prologue) -> Responder {
    Responder::new(&key(HOST_STATIC), prologue)
        .with_fixed_ephemeral_for_testing(&key(HOST_EPHEMERAL))
}

/// A completed handshake: (controller transport, host transport).
fn pair() -> (Transport, Transport) {
    let init = initiator();
    let pending = responder(&prologue())
        .read_message1(init.message1())
        .unwrap();
    let mut msg2 = Vec::new();
    let host = pending.write_message2(&host_info(), &mut msg2).unwrap();
    let (controller, info) = init.read_message2(&msg2).unwrap();
    assert_eq!(info, host_info());
    (controller, host)
}

fn send(from: &mut Transport, to: &mut Transport, plaintext: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    from.encrypt(plaintext, &mut wire).unwrap();
    let mut out = Vec::new();
    to.decrypt(&wire, &mut out).unwrap();
    assert_eq!(out, plaintext);
    wire
}

#[test]
fn chan_1_full_handshake_and_transport_round_trip() {
    let init = initiator();
    let msg1 = init.message1().to_vec();
    // -> e (32), s encrypted (48), payload 14 + tag 16.
    assert_eq!(msg1.len(), 32 + 48 + 14 + 16);
    assert_eq!(&msg1[..32], &public(&key(CONTROLLER_EPHEMERAL)));
    let mut written = vec![0xff];
    assert_eq!(init.write_message1(&mut written), msg1.len());
    assert_eq!(&written[1..], &msg1[..]);

    let pending = responder(&prologue()).read_message1(&msg1).unwrap();
    assert_eq!(pending.remote_static(), &public(&key(CONTROLLER_STATIC)));
    assert_eq!(pending.payload(), &payload());
    // CHAN-23: both sides derive the same confirmation code from h1.
    assert_eq!(
        pending.handshake_hash_after_msg1(),
        init.handshake_hash_after_msg1()
    );
    assert_eq!(pending.confirmation_code(), init.confirmation_code());
    assert_eq!(init.confirmation_code().len(), 6);

    let mut msg2 = Vec::new();
    let mut host = pending.write_message2(&host_info(), &mut msg2).unwrap();
    assert_eq!(&msg2[..32], &public(&key(HOST_EPHEMERAL)));
    let (mut controller, info) = init.read_message2(&msg2).unwrap();
    assert_eq!(info, host_info());
    assert!(controller.is_initiator());
    assert!(!host.is_initiator());
    assert_eq!(controller.handshake_hash(), host.handshake_hash());

    // CHAN-17: nonces start at 0 per direction and count up by one.
    for i in 0..5u8 {
        let wire = send(&mut controller, &mut host, &[i; 3]);
        assert_eq!(wire.len(), 3 + 16);
        send(&mut host, &mut controller, b"{\"jsonrpc\":\"2.0\"}");
    }
    assert_eq!(controller.sending_nonce(), 5);
    assert_eq!(controller.receiving_nonce(), 5);
    assert_eq!(host.sending_nonce(), 5);
    assert_eq!(host.receiving_nonce(), 5);
    // An empty plaintext is a 16-byte message.
    assert_eq!(send(&mut controller, &mut host, b"").len(), 16);
}

#[test]
fn chan_1_pair_payload_round_trip() {
    let pair_payload = HandshakePayload::Pair {
        timestamp: Timestamp::from_unix(UnixTime::new(1_800_000_000, 0)),
        token_id: [0x5a; 16],
        token_secret: [0xa5; 32],
        device_name: "Ada's phone".into(),
    };
    let init = Initiator::new(
        &key(CONTROLLER_STATIC),
        &public(&key(HOST_STATIC)),
        &prologue(),
        &pair_payload,
    )
    .unwrap();
    let pending = Responder::new(&key(HOST_STATIC), &prologue())
        .read_message1(init.message1())
        .unwrap();
    assert_eq!(pending.payload(), &pair_payload);
    let mut msg2 = Vec::new();
    let mut host = pending.write_message2(&host_info(), &mut msg2).unwrap();
    let (mut controller, _) = init.read_message2(&msg2).unwrap();
    send(&mut controller, &mut host, b"hello");
    send(&mut host, &mut controller, b"world");
}

#[test]
fn chan_18_any_single_bit_flip_is_rejected_and_kills_the_transport() {
    let (mut controller, mut host) = pair();
    send(&mut controller, &mut host, b"warm-up");
    let mut wire = Vec::new();
    controller.encrypt(b"bit flips", &mut wire).unwrap();
    for bit in 0..wire.len() * 8 {
        let (_, mut host) = pair();
        // Bring the fresh host to the same receive nonce as the message (1).
        let (mut c2, _) = pair();
        let mut first = Vec::new();
        c2.encrypt(b"warm-up", &mut first).unwrap();
        host.decrypt(&first, &mut Vec::new()).unwrap();

        let mut bad = wire.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut out = Vec::new();
        assert_eq!(
            host.decrypt(&bad, &mut out),
            Err(ChannelError::DecryptFailed),
            "bit {bit}"
        );
        assert!(out.is_empty());
        assert!(host.is_closed());
        // The genuine message is refused afterwards too: the keys are gone.
        assert_eq!(host.decrypt(&wire, &mut out), Err(ChannelError::Closed));
        assert_eq!(host.encrypt(b"x", &mut out), Err(ChannelError::Closed));
    }
    // The untouched message still decrypts on an untouched transport.
    let mut out = Vec::new();
    host.decrypt(&wire, &mut out).unwrap();
    assert_eq!(out, b"bit flips");
    assert_eq!(
        ChannelError::DecryptFailed.close_code(),
        CloseCode::DECRYPT_FAILED
    );
}

#[test]
fn chan_17_replayed_message_is_rejected() {
    let (mut controller, mut host) = pair();
    let wire = send(&mut controller, &mut host, b"once");
    assert_eq!(
        host.decrypt(&wire, &mut Vec::new()),
        Err(ChannelError::DecryptFailed)
    );
    assert!(host.is_closed());
}

#[test]
fn chan_17_reordered_messages_are_rejected() {
    let (mut controller, mut host) = pair();
    let mut m0 = Vec::new();
    let mut m1 = Vec::new();
    controller.encrypt(b"zero", &mut m0).unwrap();
    controller.encrypt(b"one", &mut m1).unwrap();
    assert_eq!(
        host.decrypt(&m1, &mut Vec::new()),
        Err(ChannelError::DecryptFailed)
    );
    assert_eq!(
        host.decrypt(&m0, &mut Vec::new()),
        Err(ChannelError::Closed)
    );
}

#[test]
fn chan_17_message_from_the_other_direction_is_rejected() {
    let (mut controller, mut host) = pair();
    let mut m = Vec::new();
    controller.encrypt(b"reflect me", &mut m).unwrap();
    // Reflected back at the controller: wrong direction key.
    assert_eq!(
        controller.decrypt(&m, &mut Vec::new()),
        Err(ChannelError::DecryptFailed)
    );
    let _ = &mut host;
}

#[test]
fn chan_18_short_and_oversized_messages() {
    let (mut controller, mut host) = pair();
    assert_eq!(
        host.decrypt(&[0u8; 15], &mut Vec::new()),
        Err(ChannelError::DecryptFailed)
    );
    assert!(host.is_closed());
    let big = vec![0u8; 65_536];
    assert_eq!(
        controller.decrypt(&big, &mut Vec::new()),
        Err(ChannelError::MessageTooLarge { len: 65_536 })
    );
    assert!(controller.is_closed());
}

#[test]
fn chan_16_plaintext_limit() {
    let (mut controller, mut host) = pair();
    let mut out = Vec::new();
    assert_eq!(
        controller.encrypt(&vec![0u8; 65_520], &mut out),
        Err(ChannelError::MessageTooLarge { len: 65_520 })
    );
    assert!(out.is_empty());
    assert!(!controller.is_closed());
    assert_eq!(controller.sending_nonce(), 0);
    let wire = send(&mut controller, &mut host, &vec![7u8; 65_519]);
    assert_eq!(wire.len(), 65_535);
}

#[test]
fn chan_2_wrong_prologue_fails_message_1() {
    let host_pub = public(&key(HOST_STATIC));
    let msg1 = initiator().message1().to_vec();
    let wrong = [
        Prologue::new("acme", &host_pub, SessionId([0; 8])).unwrap(),
        Prologue::new("other", &host_pub, session()).unwrap(),
        Prologue::new("acme", &[9u8; 32], session()).unwrap(),
    ];
    for p in &wrong {
        let err = responder(p).read_message1(&msg1).unwrap_err();
        assert_eq!(err.name(), "HandshakeFailed", "{p:?}");
        assert_eq!(err.requirement(), "CHAN-8");
        assert_eq!(err.close_code(), CloseCode::HANDSHAKE_FAILED);
    }
    // Another host key (the message was made for this host's key): fails too.
    let err = Responder::new(&[0x77; 32], &prologue())
        .read_message1(&msg1)
        .unwrap_err();
    assert_eq!(err.name(), "HandshakeFailed");
}

#[test]
fn chan_8_any_bit_flip_in_message_1_fails() {
    let msg1 = initiator().message1().to_vec();
    for bit in 0..msg1.len() * 8 {
        let mut bad = msg1.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let err = responder(&prologue()).read_message1(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                ChannelError::HandshakeFailed { .. } | ChannelError::LowOrderKey
            ),
            "bit {bit}: {err:?}"
        );
    }
    for len in [0, 31, 32, 79, 80, 95] {
        let err = responder(&prologue())
            .read_message1(&msg1[..len])
            .unwrap_err();
        assert_eq!(err.name(), "HandshakeFailed", "len {len}");
    }
    let err = responder(&prologue())
        .read_message1(&[0u8; 513])
        .unwrap_err();
    assert_eq!(err.name(), "HandshakeFailed");
}

#[test]
fn chan_8_any_bit_flip_in_message_2_fails() {
    let init_msg1 = initiator().message1().to_vec();
    let pending = responder(&prologue()).read_message1(&init_msg1).unwrap();
    let mut msg2 = Vec::new();
    pending.write_message2(&host_info(), &mut msg2).unwrap();
    for bit in (0..msg2.len() * 8).step_by(7) {
        let mut bad = msg2.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let err = initiator().read_message2(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                ChannelError::HandshakeFailed { .. } | ChannelError::LowOrderKey
            ),
            "bit {bit}: {err:?}"
        );
    }
    assert!(initiator().read_message2(&msg2).is_ok());
}

#[test]
fn chan_7_low_order_ephemeral_in_message_1_is_rejected() {
    let mut msg1 = initiator().message1().to_vec();
    msg1[..32].copy_from_slice(&key(LOW_ORDER_POINT));
    let err = responder(&prologue()).read_message1(&msg1).unwrap_err();
    assert_eq!(err, ChannelError::LowOrderKey);
    assert_eq!(err.requirement(), "CHAN-7");
    assert_eq!(err.close_code(), CloseCode::HANDSHAKE_FAILED);
}

#[test]
fn chan_7_low_order_host_key_is_refused_by_the_controller() {
    let low = key(LOW_ORDER_POINT);
    let p = Prologue::new("acme", &low, session()).unwrap();
    let err = Initiator::new(&key(CONTROLLER_STATIC), &low, &p, &payload()).unwrap_err();
    assert_eq!(err, ChannelError::LowOrderKey);
}

#[test]
fn chan_7_low_order_ephemeral_in_message_2_is_rejected() {
    let init_msg1 = initiator().message1().to_vec();
    let pending = responder(&prologue()).read_message1(&init_msg1).unwrap();
    let mut msg2 = Vec::new();
    pending.write_message2(&host_info(), &mut msg2).unwrap();
    msg2[..32].copy_from_slice(&key(LOW_ORDER_POINT));
    assert_eq!(
        initiator().read_message2(&msg2).unwrap_err(),
        ChannelError::LowOrderKey
    );
}

/// A resolver whose first DH object (snow resolves the static key's first) claims a
/// low-order public key, so a controller can send a low-order static in message 1.
struct LowOrderStaticResolver {
    calls: AtomicUsize,
}

struct FakeStatic {
    public: [u8; 32],
}

impl Dh for FakeStatic {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, _: &[u8]) {}
    fn generate(&mut self, _: &mut dyn Random) -> Result<(), snow::Error> {
        Ok(())
    }
    fn pubkey(&self) -> &[u8] {
        &self.public
    }
    fn privkey(&self) -> &[u8] {
        &[1u8; 32]
    }
    fn dh(&self, _: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        out[..32].copy_from_slice(&[7u8; 32]);
        Ok(())
    }
}

impl CryptoResolver for LowOrderStaticResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Some(Box::new(FakeStatic {
                public: key(LOW_ORDER_POINT),
            }))
        } else {
            DefaultResolver.resolve_dh(choice)
        }
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

#[test]
fn chan_7_low_order_static_in_message_1_is_rejected() {
    let host_pub = public(&key(HOST_STATIC));
    let p = prologue();
    let mut hs = snow::Builder::with_resolver(
        ik_params().unwrap(),
        Box::new(LowOrderStaticResolver {
            calls: AtomicUsize::new(0),
        }),
    )
    .local_private_key(&[1u8; 32])
    .unwrap()
    .remote_public_key(&host_pub)
    .unwrap()
    .prologue(p.as_bytes())
    .unwrap()
    .build_initiator()
    .unwrap();
    let mut msg1 = vec![0u8; 256];
    let n = hs
        .write_message(&payload().encode().unwrap(), &mut msg1)
        .unwrap();
    msg1.truncate(n);
    assert_eq!(
        responder(&p).read_message1(&msg1).unwrap_err(),
        ChannelError::LowOrderKey
    );
}

#[test]
fn chan_3_host_rejects_a_malformed_payload_that_decrypts() {
    // A real IK message 1 whose payload breaks the layout: built with our resolver.
    let host_pub = public(&key(HOST_STATIC));
    let p = prologue();
    for (bad_payload, name) in [
        (
            hex::decode("02004000000067a6c7800000000005").unwrap(),
            "BadPayload",
        ),
        (hex::decode("010040000000").unwrap(), "BadPayload"),
        (
            hex::decode("0100400000006b49d2003b9aca00").unwrap(),
            "BadTimestamp",
        ),
    ] {
        let mut hs = noise_builder(ik_params().unwrap())
            .local_private_key(&key(CONTROLLER_STATIC))
            .unwrap()
            .remote_public_key(&host_pub)
            .unwrap()
            .prologue(p.as_bytes())
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut msg1 = vec![0u8; 256];
        let n = hs.write_message(&bad_payload, &mut msg1).unwrap();
        let err = responder(&p).read_message1(&msg1[..n]).unwrap_err();
        assert_eq!(err.name(), name);
        assert_eq!(err.close_code(), CloseCode::HANDSHAKE_FAILED);
    }
}

#[test]
fn chan_6_controller_rejects_malformed_host_info() {
    let host_pub = public(&key(HOST_STATIC));
    let p = prologue();
    let msg1 = initiator().message1().to_vec();
    let mut hs = noise_builder(ik_params().unwrap())
        .local_private_key(&key(HOST_STATIC))
        .unwrap()
        .prologue(p.as_bytes())
        .unwrap()
        .build_responder()
        .unwrap();
    let mut scratch = vec![0u8; 256];
    hs.read_message(&msg1, &mut scratch).unwrap();
    let mut msg2 = vec![0u8; 256];
    let n = hs.write_message(b"\x01[1,2,3]", &mut msg2).unwrap();
    let err = initiator().read_message2(&msg2[..n]).unwrap_err();
    assert_eq!(err.name(), "BadHostInfo");
    assert_eq!(err.close_code(), CloseCode::HANDSHAKE_FAILED);
    let _ = host_pub;
}

/// The same handshake as [`pair`], run on bare snow stateless transports (which never
/// rekey on their own): (initiator, responder).
fn raw_pair() -> (snow::StatelessTransportState, snow::StatelessTransportState) {
    let p = prologue();
    let (cs, ce, hs_, he) = (
        key(CONTROLLER_STATIC),
        key(CONTROLLER_EPHEMERAL),
        key(HOST_STATIC),
        key(HOST_EPHEMERAL),
    );
    let host_pub = public(&hs_);
    let mut i = noise_builder(ik_params().unwrap())
        .local_private_key(&cs)
        .unwrap()
        .remote_public_key(&host_pub)
        .unwrap()
        .prologue(p.as_bytes())
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&ce)
        .build_initiator()
        .unwrap();
    let mut r = noise_builder(ik_params().unwrap())
        .local_private_key(&hs_)
        .unwrap()
        .prologue(p.as_bytes())
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&he)
        .build_responder()
        .unwrap();
    let mut m = vec![0u8; 1024];
    let mut scratch = vec![0u8; 1024];
    let n = i
        .write_message(&payload().encode().unwrap(), &mut m)
        .unwrap();
    r.read_message(&m[..n], &mut scratch).unwrap();
    let n = r
        .write_message(&host_info().encode().unwrap(), &mut m)
        .unwrap();
    i.read_message(&m[..n], &mut scratch).unwrap();
    (
        i.into_stateless_transport_mode().unwrap(),
        r.into_stateless_transport_mode().unwrap(),
    )
}

#[test]
fn chan_19_rekey_every_65536_messages_both_ways() {
    let (mut controller, mut host) = pair();
    let mut wire = Vec::new();
    let mut out = Vec::new();
    // Messages at nonces 65535 and 65536, per direction (controller->host, host->controller).
    let mut around = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for n in 0..REKEY_INTERVAL + 2 {
        let text = n.to_be_bytes();
        #[allow(clippy::needless_range_loop)]
        for dir in 0..2 {
            let (from, to) = if dir == 0 {
                (&mut controller, &mut host)
            } else {
                (&mut host, &mut controller)
            };
            wire.clear();
            out.clear();
            assert_eq!(from.sending_nonce(), n);
            assert_eq!(to.receiving_nonce(), n);
            from.encrypt(&text, &mut wire).unwrap();
            to.decrypt(&wire, &mut out).unwrap();
            assert_eq!(out, text);
            if n == REKEY_INTERVAL - 1 {
                around[dir][0] = wire.clone();
            } else if n == REKEY_INTERVAL {
                around[dir][1] = wire.clone();
            }
        }
    }
    assert_eq!(controller.sending_nonce(), REKEY_INTERVAL + 2);
    assert_eq!(controller.receiving_nonce(), REKEY_INTERVAL + 2);
    assert_eq!(host.sending_nonce(), REKEY_INTERVAL + 2);
    assert_eq!(host.receiving_nonce(), REKEY_INTERVAL + 2);

    // Against bare snow: nonce 65535 is still under the first key; nonce 65536 is under
    // REKEY(k), and not under k (the nonce kept counting: no reset to 0).
    let (mut raw_i, mut raw_r) = raw_pair();
    for (dir, raw) in [(0usize, &mut raw_i), (1, &mut raw_r)] {
        let last = REKEY_INTERVAL - 1;
        let mut buf = vec![0u8; 64];
        let n = raw
            .write_message(last, &last.to_be_bytes(), &mut buf)
            .unwrap();
        assert_eq!(
            &buf[..n],
            &around[dir][0][..],
            "direction {dir}: nonce 65535"
        );
        let next = REKEY_INTERVAL;
        let n = raw
            .write_message(next, &next.to_be_bytes(), &mut buf)
            .unwrap();
        assert_ne!(
            &buf[..n],
            &around[dir][1][..],
            "direction {dir}: no rekey happened"
        );
        raw.rekey_outgoing();
        let n = raw
            .write_message(next, &next.to_be_bytes(), &mut buf)
            .unwrap();
        assert_eq!(
            &buf[..n],
            &around[dir][1][..],
            "direction {dir}: nonce 65536"
        );
        let n = raw.write_message(0, &next.to_be_bytes(), &mut buf).unwrap();
        assert_ne!(
            &buf[..n],
            &around[dir][1][..],
            "direction {dir}: nonce was reset"
        );
    }
}

#[test]
fn chan_20_nonce_exhaustion_closes_before_2_64_minus_1() {
    let (mut controller, mut host) = pair();
    controller.set_nonces_for_testing(u64::MAX - 1, 0);
    host.set_nonces_for_testing(0, u64::MAX - 1);
    // Nonce 2^64-2 is the last one used.
    send(&mut controller, &mut host, b"last");
    assert_eq!(controller.sending_nonce(), u64::MAX);
    let mut out = Vec::new();
    assert_eq!(
        controller.encrypt(b"one too many", &mut out),
        Err(ChannelError::NonceExhausted)
    );
    assert!(out.is_empty());
    assert!(controller.is_closed());
    assert_eq!(
        host.decrypt(&[0u8; 32], &mut out),
        Err(ChannelError::NonceExhausted)
    );
    assert!(host.is_closed());
    assert_eq!(ChannelError::NonceExhausted.requirement(), "CHAN-20");
}

/// `CHAN-30`: the host reads the claimed static key with one DH (`es`) to pick the
/// sender's rate-limit bucket. It agrees with the full read on every message that reads,
/// and gives nothing for a message whose key does not decrypt; the key it gives is not yet
/// authenticated (a flipped payload bit still yields it, the full read then fails).
#[test]
fn chan_30_claimed_static_agrees_with_the_full_read() {
    for seed in 1u8..=24 {
        let controller: [u8; 32] = std::array::from_fn(|i| {
            seed.wrapping_mul(97) ^ u8::try_from(i).unwrap().wrapping_mul(13)
        });
        let init = Initiator::new(
            &controller,
            &public(&key(HOST_STATIC)),
            &prologue(),
            &payload(),
        )
        .unwrap();
        let msg1 = init.message1();
        let r = responder(&prologue());
        let claimed = r.claimed_static(msg1);
        assert_eq!(claimed, Some(public(&controller)), "seed {seed}");
        let pending = r.read_message1(msg1).unwrap();
        assert_eq!(Some(*pending.remote_static()), claimed);
    }
    let msg1 = initiator().message1().to_vec();
    let r = responder(&prologue());
    assert_eq!(
        r.claimed_static(&msg1),
        Some(public(&key(CONTROLLER_STATIC)))
    );
    // Any flip in e or in the encrypted static key: no key.
    for byte in (0..80).step_by(7) {
        let mut bad = msg1.clone();
        bad[byte] ^= 0x10;
        assert_eq!(r.claimed_static(&bad), None, "byte {byte}");
    }
    // A flip in the payload: the claim reads, the handshake does not (ss is unchecked).
    let mut bad = msg1.clone();
    bad[85] ^= 1;
    assert_eq!(
        r.claimed_static(&bad),
        Some(public(&key(CONTROLLER_STATIC)))
    );
    assert!(responder(&prologue()).read_message1(&bad).is_err());
    // Another prologue, a low-order ephemeral (CHAN-7), too short, too long.
    let other = Prologue::new("other", &public(&key(HOST_STATIC)), session()).unwrap();
    assert_eq!(responder(&other).claimed_static(&msg1), None);
    let mut low = msg1.clone();
    low[..32].copy_from_slice(&key(LOW_ORDER_POINT));
    assert_eq!(r.claimed_static(&low), None);
    assert_eq!(r.claimed_static(&msg1[..79]), None);
    let mut long = msg1.clone();
    long.resize(513, 0);
    assert_eq!(r.claimed_static(&long), None);
}
