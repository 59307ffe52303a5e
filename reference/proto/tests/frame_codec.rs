//! Relay frame codec: exact bytes of every frame type and every error (`spec/03`, `LINK-*`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tether_proto::link::{CloseCode, FrameError, RelayFrame, Role, SessionId};

const SID: SessionId = SessionId([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]);

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// `frame` encodes to exactly `hex` and `hex` decodes to exactly `frame` (`LINK-30`).
fn both_ways(frame: &RelayFrame, hex: &str) {
    let bytes = h(hex);
    assert_eq!(hex::encode(frame.to_bytes().unwrap()), hex::encode(&bytes));
    assert_eq!(&RelayFrame::decode(&bytes).unwrap(), frame);
    assert_eq!(bytes[0], frame.frame_type());
}

fn err(hex: &str) -> FrameError {
    RelayFrame::decode(&h(hex)).unwrap_err()
}

#[test]
fn link_30_hello_host() {
    let f = RelayFrame::Hello {
        version: 1,
        role: Role::Host,
        workspace: "acme".into(),
        credential: vec![0xcc; 16],
        registration: vec![0xee; 32],
    };
    both_ways(
        &f,
        "01 01 01 04 61636d65 10 cccccccccccccccccccccccccccccccc \
         eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
    );
}

#[test]
fn link_30_hello_controller() {
    let f = RelayFrame::Hello {
        version: 1,
        role: Role::Controller,
        workspace: "a".into(),
        credential: (0u8..16).collect(),
        registration: vec![],
    };
    both_ways(&f, "01 01 02 01 61 10 000102030405060708090a0b0c0d0e0f");
}

#[test]
fn link_3_hello_version_is_decoded_not_checked() {
    let f = RelayFrame::decode(&h("01 07 02 01 61 10 000102030405060708090a0b0c0d0e0f")).unwrap();
    assert!(matches!(f, RelayFrame::Hello { version: 7, .. }));
}

#[test]
fn link_30_host_challenge_and_proof() {
    both_ways(
        &RelayFrame::HostChallenge {
            message: vec![0xab; 48],
        },
        &format!("02{}", "ab".repeat(48)),
    );
    both_ways(
        &RelayFrame::HostProof {
            message: vec![0xcd; 64],
        },
        &format!("03{}", "cd".repeat(64)),
    );
}

#[test]
fn link_30_ready() {
    both_ways(&RelayFrame::Ready, "04");
}

#[test]
fn link_30_open_incoming_data() {
    both_ways(
        &RelayFrame::Open {
            session: SID,
            host_key: [0x11; 32],
            handshake: vec![0xaa, 0xbb, 0xcc],
        },
        "10 0102030405060708 \
         1111111111111111111111111111111111111111111111111111111111111111 aabbcc",
    );
    both_ways(
        &RelayFrame::Incoming {
            session: SID,
            handshake: vec![0x5a],
        },
        "11 0102030405060708 5a",
    );
    both_ways(
        &RelayFrame::Data {
            session: SID,
            payload: b"hi".to_vec(),
        },
        "12 0102030405060708 6869",
    );
}

#[test]
fn link_30_close_ping_pong_goaway() {
    both_ways(
        &RelayFrame::Close {
            session: SID,
            code: CloseCode::PEER_GONE,
        },
        "13 0102030405060708 0014",
    );
    both_ways(
        &RelayFrame::Ping {
            value: 0x0102_0304_0506_0708,
        },
        "20 0102030405060708",
    );
    both_ways(&RelayFrame::Pong { value: u64::MAX }, "21 ffffffffffffffff");
    both_ways(
        &RelayFrame::GoAway {
            code: CloseCode::AUTH_FAILED,
            reason: "bye".into(),
        },
        "30 0005 03 627965",
    );
    both_ways(
        &RelayFrame::GoAway {
            code: CloseCode(0xffff),
            reason: String::new(),
        },
        "30 ffff 00",
    );
}

#[test]
fn link_5_largest_data_frame_decodes_and_one_more_byte_is_too_large() {
    let mut bytes = h("12 0102030405060708");
    bytes.resize(65_544, 0x77);
    let f = RelayFrame::decode(&bytes).unwrap();
    assert_eq!(f.to_bytes().unwrap(), bytes);
    bytes.push(0x77);
    let e = RelayFrame::decode(&bytes).unwrap_err();
    assert_eq!(e, FrameError::TooLarge { len: 65_545 });
    assert_eq!(e.requirement(), "LINK-5");
    assert_eq!(e.close_code(), CloseCode::FRAME_TOO_LARGE);
    // Size is checked before the type.
    bytes[0] = 0xee;
    assert_eq!(
        RelayFrame::decode(&bytes).unwrap_err(),
        FrameError::TooLarge { len: 65_545 }
    );
}

#[test]
fn link_4_empty_frame_is_truncated() {
    let e = RelayFrame::decode(&[]).unwrap_err();
    assert_eq!(e, FrameError::Truncated);
    assert_eq!(e.requirement(), "LINK-4");
    assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn link_4_unknown_types() {
    for ty in [0x00u8, 0x05, 0x0f, 0x14, 0x1f, 0x22, 0x31, 0xff] {
        let e = RelayFrame::decode(&[ty, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e, FrameError::UnknownType { ty });
        assert_eq!(e.requirement(), "LINK-4");
    }
}

#[test]
fn link_4_truncated_frames() {
    for hex in [
        "01",                           // HELLO without version
        "01 01",                        // without role
        "01 01 02",                     // without workspace length
        "01 01 02 04 6163",             // workspace runs out
        "01 01 02 01 61",               // without credential length
        "01 01 02 01 61 10 0001",       // credential runs out
        "10 0102030405060708 11111111", // OPEN: host key runs out
        "10 01020304",                  // OPEN: session id runs out
        "11 01020304050607",            // INCOMING: session id runs out
        "12",                           // DATA: no session id
        "13 0102030405060708 00",       // CLOSE: code runs out
        "20 01020304050607",            // PING
        "21",                           // PONG
        "30 00",                        // GOAWAY: code runs out
        "30 0001",                      // GOAWAY: no reason length
        "30 0001 05 6162",              // GOAWAY: reason runs out
    ] {
        assert_eq!(err(hex), FrameError::Truncated, "{hex}");
    }
}

#[test]
fn link_4_trailing_bytes() {
    for hex in [
        "04 00",
        "13 0102030405060708 0000 00",
        "20 0102030405060708 09",
        "21 0102030405060708 09",
        "30 0000 00 00",
    ] {
        let e = err(hex);
        assert_eq!(e, FrameError::TrailingBytes, "{hex}");
        assert_eq!(e.requirement(), "LINK-4");
    }
}

#[test]
fn link_31_bad_role() {
    for role in [0x00u8, 0x03, 0xff] {
        let e = err(&format!("01 01 {role:02x} 01 61 10 {}", "00".repeat(16)));
        assert_eq!(e, FrameError::BadRole { role });
        assert_eq!(e.requirement(), "LINK-31");
    }
}

#[test]
fn link_32_bad_workspace() {
    for ws in ["", "41", "61 2f", "ff", "61 20"] {
        let ws = h(ws);
        let hex = format!(
            "01 01 02 {:02x} {} 10 {}",
            ws.len(),
            hex::encode(&ws),
            "00".repeat(16)
        );
        let e = err(&hex);
        assert_eq!(e, FrameError::BadWorkspace, "{hex}");
        assert_eq!(e.requirement(), "LINK-32");
    }
    let long = format!("01 01 02 41 {} 10 {}", "61".repeat(65), "00".repeat(16));
    assert_eq!(err(&long), FrameError::BadWorkspace);
}

#[test]
fn link_10_short_credential() {
    for len in [0usize, 1, 15] {
        let e = err(&format!("01 01 02 01 61 {len:02x} {}", "00".repeat(len)));
        assert_eq!(e, FrameError::BadCredentialLength { len });
        assert_eq!(e.requirement(), "LINK-10");
    }
}

#[test]
fn link_9_registration_length_in_hello() {
    let hello = |role: u8, reg: usize| {
        format!(
            "01 01 {role:02x} 01 61 10 {} {}",
            "00".repeat(16),
            "ee".repeat(reg)
        )
    };
    for (role, len) in [(1u8, 0usize), (1, 31), (1, 33), (2, 1), (2, 32)] {
        let e = err(&hello(role, len));
        assert_eq!(
            e,
            FrameError::BadRegistrationLength {
                frame_type: 0x01,
                len
            }
        );
        assert_eq!(e.requirement(), "LINK-9");
    }
}

#[test]
fn link_12_registration_length_in_challenge_and_proof() {
    for (ty, len) in [
        (0x02u8, 0usize),
        (0x02, 47),
        (0x02, 49),
        (0x03, 63),
        (0x03, 65),
    ] {
        let e = err(&format!("{ty:02x}{}", "00".repeat(len)));
        assert_eq!(
            e,
            FrameError::BadRegistrationLength {
                frame_type: ty,
                len
            }
        );
        assert_eq!(e.requirement(), "LINK-12");
        assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
    }
}

#[test]
fn link_15_handshake_length() {
    let key = "11".repeat(32);
    assert_eq!(
        err(&format!("10 0102030405060708 {key}")),
        FrameError::BadHandshakeLength { len: 0 }
    );
    assert_eq!(
        err(&format!("10 0102030405060708 {key} {}", "00".repeat(513))),
        FrameError::BadHandshakeLength { len: 513 }
    );
    assert_eq!(
        err("11 0102030405060708"),
        FrameError::BadHandshakeLength { len: 0 }
    );
    let e = err(&format!("11 0102030405060708 {}", "00".repeat(513)));
    assert_eq!(e, FrameError::BadHandshakeLength { len: 513 });
    assert_eq!(e.requirement(), "LINK-15");
    assert!(RelayFrame::decode(&h(&format!("11 0102030405060708 {}", "00".repeat(512)))).is_ok());
}

#[test]
fn link_33_empty_data_payload() {
    let e = err("12 0102030405060708");
    assert_eq!(e, FrameError::EmptyPayload);
    assert_eq!(e.requirement(), "LINK-33");
}

#[test]
fn link_34_goaway_reason_must_be_utf8() {
    for reason in ["ff", "c3", "eda080", "c0af"] {
        let r = h(reason);
        let e = err(&format!("30 0001 {:02x} {reason}", r.len()));
        assert_eq!(e, FrameError::BadUtf8, "{reason}");
        assert_eq!(e.requirement(), "LINK-34");
    }
}

#[test]
fn link_30_encoding_refuses_what_decoding_would_reject() {
    let hello = |workspace: &str, credential: usize, role: Role, reg: usize| RelayFrame::Hello {
        version: 1,
        role,
        workspace: workspace.into(),
        credential: vec![0; credential],
        registration: vec![0; reg],
    };
    let cases = [
        (hello("A", 16, Role::Controller, 0), "BadWorkspace"),
        (hello("a", 15, Role::Controller, 0), "BadCredentialLength"),
        (hello("a", 256, Role::Controller, 0), "BadCredentialLength"),
        (
            hello("a", 16, Role::Controller, 32),
            "BadRegistrationLength",
        ),
        (hello("a", 16, Role::Host, 0), "BadRegistrationLength"),
        (
            RelayFrame::HostChallenge {
                message: vec![0; 64],
            },
            "BadRegistrationLength",
        ),
        (
            RelayFrame::HostProof {
                message: vec![0; 48],
            },
            "BadRegistrationLength",
        ),
        (
            RelayFrame::Open {
                session: SID,
                host_key: [0; 32],
                handshake: vec![],
            },
            "BadHandshakeLength",
        ),
        (
            RelayFrame::Incoming {
                session: SID,
                handshake: vec![0; 513],
            },
            "BadHandshakeLength",
        ),
        (
            RelayFrame::Data {
                session: SID,
                payload: vec![],
            },
            "EmptyPayload",
        ),
        (
            RelayFrame::Data {
                session: SID,
                payload: vec![0; 65_536],
            },
            "TooLarge",
        ),
        (
            RelayFrame::GoAway {
                code: CloseCode::NORMAL,
                reason: "x".repeat(256),
            },
            "BadReasonLength",
        ),
    ];
    for (frame, name) in cases {
        let mut out = vec![0x99];
        let e = frame.encode(&mut out).unwrap_err();
        assert_eq!(e.name(), name, "{frame:?}");
        assert_eq!(out, [0x99], "encode wrote bytes on error");
        assert_eq!(frame.validate().unwrap_err(), e);
    }
    let e = FrameError::BadReasonLength { len: 256 };
    assert_eq!(e.requirement(), "LINK-27");
}

#[test]
fn frame_error_names_requirements_and_close_codes() {
    let cases = [
        (FrameError::UnknownType { ty: 9 }, "UnknownType", "LINK-4"),
        (FrameError::Truncated, "Truncated", "LINK-4"),
        (FrameError::TrailingBytes, "TrailingBytes", "LINK-4"),
        (FrameError::TooLarge { len: 70_000 }, "TooLarge", "LINK-5"),
        (FrameError::BadRole { role: 3 }, "BadRole", "LINK-31"),
        (FrameError::BadWorkspace, "BadWorkspace", "LINK-32"),
        (
            FrameError::BadCredentialLength { len: 1 },
            "BadCredentialLength",
            "LINK-10",
        ),
        (
            FrameError::BadRegistrationLength {
                frame_type: 1,
                len: 0,
            },
            "BadRegistrationLength",
            "LINK-9",
        ),
        (
            FrameError::BadRegistrationLength {
                frame_type: 3,
                len: 0,
            },
            "BadRegistrationLength",
            "LINK-12",
        ),
        (
            FrameError::BadHandshakeLength { len: 0 },
            "BadHandshakeLength",
            "LINK-15",
        ),
        (FrameError::EmptyPayload, "EmptyPayload", "LINK-33"),
        (FrameError::BadUtf8, "BadUtf8", "LINK-34"),
        (
            FrameError::BadReasonLength { len: 300 },
            "BadReasonLength",
            "LINK-27",
        ),
    ];
    for (e, name, req) in cases {
        assert_eq!(e.name(), name);
        assert_eq!(e.requirement(), req);
        let expected = if name == "TooLarge" {
            CloseCode::FRAME_TOO_LARGE
        } else {
            CloseCode::PROTOCOL_ERROR
        };
        assert_eq!(e.close_code(), expected);
        assert!(!e.to_string().is_empty());
        let wrapped = tether_proto::Error::from(e);
        assert_eq!(wrapped.close_code(), Some(expected));
    }
}

#[test]
fn frame_type_constants_and_names() {
    let types = [
        (RelayFrame::HELLO, 0x01, "HELLO"),
        (RelayFrame::HOST_CHALLENGE, 0x02, "HOST_CHALLENGE"),
        (RelayFrame::HOST_PROOF, 0x03, "HOST_PROOF"),
        (RelayFrame::READY, 0x04, "READY"),
        (RelayFrame::OPEN, 0x10, "OPEN"),
        (RelayFrame::INCOMING, 0x11, "INCOMING"),
        (RelayFrame::DATA, 0x12, "DATA"),
        (RelayFrame::CLOSE, 0x13, "CLOSE"),
        (RelayFrame::PING, 0x20, "PING"),
        (RelayFrame::PONG, 0x21, "PONG"),
        (RelayFrame::GOAWAY, 0x30, "GOAWAY"),
    ];
    for (c, v, name) in types {
        assert_eq!(c, v);
        assert_eq!(tether_proto::link::frame::type_name(c), Some(name));
    }
    assert_eq!(tether_proto::link::frame::type_name(0x05), None);
    assert_eq!(Role::from_byte(0x01), Some(Role::Host));
    assert_eq!(Role::from_byte(0x02), Some(Role::Controller));
    assert_eq!(Role::from_byte(0x00), None);
    assert_eq!(SID.to_string(), "0102030405060708");
}
