//! The transport phase after a valid handshake (`CHAN-15`..`CHAN-21`).
//!
//! A controller and a host complete a real IK handshake (real or insecure primitives, as
//! the input chooses), start their counters at 0, just before a rekey (`CHAN-19`) or just
//! before `2^64 - 1` (`CHAN-20`), then an arbitrary sequence of sends, in-order deliveries,
//! drops, replays, bit flips and raw messages runs between them.
//!
//! Asserts, against a model of both directions:
//! - an honest message delivered in order decrypts to exactly what was sent, across rekeys;
//! - a replayed, reordered (after a drop) or — with real cryptography — modified or
//!   forged message fails, and the first failure closes the receiving side for good
//!   (`CHAN-17`, `CHAN-18`);
//! - nonces advance by one per message; a plaintext over 65519 bytes is refused without
//!   closing (`CHAN-16`); a direction whose nonce would reach `2^64 - 1` refuses and closes
//!   (`CHAN-20`); nothing is appended to the output on error.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_fuzz::*;
use tether_proto::channel::{
    ChannelError, HandshakePayload, Initiator, Prologue, Responder, Timestamp, Transport,
};
use tether_proto::keys::public_key;
use tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN;
use tether_proto::link::SessionId;
use tether_proto::time::UnixTime;

#[derive(Arbitrary, Debug)]
enum Start {
    Zero,
    BeforeRekey(u8),
    BeforeMax(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Send { from_host: bool, plaintext: Vec<u8> },
    SendTooLarge { from_host: bool },
    Deliver { to_host: bool },
    Drop { to_host: bool },
    Replay { to_host: bool },
    Flip { to_host: bool, at: u16, bit: u8 },
    Raw { to_host: bool, bytes: Vec<u8> },
    Close { host: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    insecure: bool,
    start: Start,
    ops: Vec<Op>,
}

#[derive(Default)]
struct Direction {
    /// (nonce, plaintext, ciphertext) sent and not yet delivered or dropped.
    queue: VecDeque<(u64, Vec<u8>, Vec<u8>)>,
    last_delivered: Option<Vec<u8>>,
}

fn expect_failure(rx: &mut Transport, message: &[u8]) {
    let mut out = vec![0xEE];
    let r = rx.decrypt(message, &mut out);
    assert!(r.is_err(), "must not decrypt");
    assert_eq!(out, [0xEE], "nothing appended on error");
    assert!(rx.is_closed(), "the first failure closes (CHAN-18)");
}

fuzz_target!(|input: Input| {
    begin(input.insecure);
    let host_key = public_key(&HOST_PRIVATE);
    let sid = SessionId(*b"fuzz-trn");
    let prologue = Prologue::new(WORKSPACE, &host_key, sid).expect("prologue");
    let payload = HandshakePayload::Session {
        timestamp: Timestamp::from_unix(UnixTime::from_secs(WALL0)),
    };
    let initiator =
        Initiator::new(&CONTROLLERS[0], &host_key, &prologue, &payload).expect("message 1");
    let pending = Responder::new(&HOST_PRIVATE, &prologue)
        .read_message1(initiator.message1())
        .expect("honest message 1 reads");
    assert_eq!(pending.confirmation_code(), initiator.confirmation_code());
    let mut msg2 = Vec::new();
    let mut host = pending
        .write_message2(&host_info(), &mut msg2)
        .expect("message 2");
    let (mut ctl, info) = initiator
        .read_message2(&msg2)
        .expect("honest message 2 reads");
    assert_eq!(info, host_info());
    assert_eq!(ctl.handshake_hash(), host.handshake_hash());

    let (a, b) = match input.start {
        Start::Zero => (0, 0),
        Start::BeforeRekey(k) => (
            65_536 - 1 - u64::from(k % 4),
            2 * 65_536 - 1 - u64::from(k / 64),
        ),
        Start::BeforeMax(k) => (
            u64::MAX - 1 - u64::from(k % 4),
            u64::MAX - 1 - u64::from(k / 64),
        ),
    };
    host.set_nonces_for_testing(a, b);
    ctl.set_nonces_for_testing(b, a);

    let mut to_host = Direction::default();
    let mut to_ctl = Direction::default();
    for op in input.ops.into_iter().take(64) {
        match op {
            Op::Send {
                from_host,
                plaintext,
            } => {
                let (tx, dir) = if from_host {
                    (&mut host, &mut to_ctl)
                } else {
                    (&mut ctl, &mut to_host)
                };
                let closed = tx.is_closed();
                let nonce = tx.sending_nonce();
                let mut out = vec![0xEE];
                match tx.encrypt(&plaintext, &mut out) {
                    Ok(n) => {
                        assert!(!closed);
                        assert_eq!(n, plaintext.len() + 16);
                        assert_eq!(out.len(), 1 + n);
                        assert_eq!(tx.sending_nonce(), nonce + 1, "CHAN-17");
                        dir.queue.push_back((nonce, plaintext, out[1..].to_vec()));
                    }
                    Err(ChannelError::Closed) => assert!(closed),
                    Err(ChannelError::NonceExhausted) => {
                        assert_eq!(nonce, u64::MAX, "CHAN-20");
                        assert!(tx.is_closed());
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
                if out.len() == 1 {
                    assert_eq!(out, [0xEE]);
                }
            }
            Op::SendTooLarge { from_host } => {
                let tx = if from_host { &mut host } else { &mut ctl };
                let closed = tx.is_closed();
                let nonce = tx.sending_nonce();
                let mut out = Vec::new();
                let r = tx.encrypt(&vec![0u8; MAX_TRANSPORT_PLAINTEXT_LEN + 1], &mut out);
                assert!(r.is_err() && out.is_empty());
                assert_eq!(tx.is_closed(), closed, "CHAN-16 does not close");
                assert_eq!(tx.sending_nonce(), nonce);
            }
            Op::Deliver { to_host: th } => {
                let (rx, dir) = if th {
                    (&mut host, &mut to_host)
                } else {
                    (&mut ctl, &mut to_ctl)
                };
                let Some((nonce, plaintext, ct)) = dir.queue.pop_front() else {
                    continue;
                };
                if rx.is_closed() {
                    assert_eq!(rx.decrypt(&ct, &mut Vec::new()), Err(ChannelError::Closed));
                } else if nonce == rx.receiving_nonce() && nonce != u64::MAX {
                    let mut out = vec![0xEE];
                    let n = rx
                        .decrypt(&ct, &mut out)
                        .expect("in-order honest message decrypts");
                    assert_eq!(n, plaintext.len());
                    assert_eq!(&out[1..], &plaintext[..]);
                    assert_eq!(rx.receiving_nonce(), nonce + 1);
                } else {
                    expect_failure(rx, &ct);
                }
                dir.last_delivered = Some(ct);
            }
            Op::Drop { to_host: th } => {
                let dir = if th { &mut to_host } else { &mut to_ctl };
                dir.queue.pop_front();
            }
            Op::Replay { to_host: th } => {
                let (rx, dir) = if th {
                    (&mut host, &mut to_host)
                } else {
                    (&mut ctl, &mut to_ctl)
                };
                if let Some(ct) = dir.last_delivered.clone() {
                    expect_failure(rx, &ct);
                }
            }
            Op::Flip {
                to_host: th,
                at,
                bit,
            } => {
                let (rx, dir) = if th {
                    (&mut host, &mut to_host)
                } else {
                    (&mut ctl, &mut to_ctl)
                };
                let Some((_, _, mut ct)) = dir.queue.pop_front() else {
                    continue;
                };
                let i = usize::from(at) % ct.len();
                ct[i] ^= 1 << (bit % 8);
                let tag_part = i + 16 >= ct.len();
                if !input.insecure || tag_part || rx.is_closed() {
                    expect_failure(rx, &ct);
                } else {
                    let _ = rx.decrypt(&ct, &mut Vec::new());
                }
                dir.last_delivered = Some(ct);
            }
            Op::Raw { to_host: th, bytes } => {
                let rx = if th { &mut host } else { &mut ctl };
                let nonce = rx.receiving_nonce();
                let was_closed = rx.is_closed();
                let mut out = Vec::new();
                match rx.decrypt(&bytes, &mut out) {
                    Ok(n) => {
                        assert!(
                            input.insecure,
                            "a forged message decrypted under real crypto"
                        );
                        assert!(!was_closed);
                        assert_eq!(n + 16, bytes.len());
                        assert_eq!(&out[..], &bytes[..n]);
                        assert_eq!(rx.receiving_nonce(), nonce + 1);
                    }
                    Err(_) => {
                        assert!(out.is_empty());
                        assert!(rx.is_closed());
                    }
                }
            }
            Op::Close { host: h } => {
                let t = if h { &mut host } else { &mut ctl };
                t.close();
                assert_eq!(t.encrypt(b"x", &mut Vec::new()), Err(ChannelError::Closed));
            }
        }
    }
});
