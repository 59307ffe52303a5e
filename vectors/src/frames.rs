//! `relay-frames.json`: every relay frame type and every way to malform one (`spec/03`,
//! `LINK-*`).
//!
//! The generator writes the bytes by hand from the frame table; the checker decodes each
//! case with `tether-proto`, compares the decoded fields (valid) or the error name,
//! requirement and close code (invalid), and re-encodes valid frames.

use serde_json::{Value, json};
use tether_proto::link::{CloseCode, FrameError, RelayFrame, Role, SessionId};

use crate::format::{VectorFile, det_array, det_bytes, field, to_json};

/// The vector files this module generates and checks.
pub const FILES: &[VectorFile] = &[VectorFile {
    name: "relay-frames.json",
    generate,
    check,
}];

struct Builder {
    tests: Vec<Value>,
}

fn error(e: &FrameError) -> Value {
    json!({
        "name": e.name(),
        "requirement": e.requirement(),
        "closeCode": e.close_code().name(),
    })
}

impl Builder {
    fn push(&mut self, comment: &str, flags: &[&str], result: &str, mut v: Value) {
        if let Some(obj) = v.as_object_mut() {
            obj.insert("tcId".into(), json!(self.tests.len() + 1));
            obj.insert("comment".into(), json!(comment));
            obj.insert("flags".into(), json!(flags));
            obj.insert("result".into(), json!(result));
        }
        self.tests.push(v);
    }

    fn valid(&mut self, comment: &str, flags: &[&str], frame: &[u8], decoded: Value) {
        let v = json!({ "frame": hex::encode(frame), "decoded": decoded });
        self.push(comment, flags, "valid", v);
    }

    fn invalid(&mut self, comment: &str, flags: &[&str], frame: &[u8], e: &FrameError) {
        let v = json!({ "frame": hex::encode(frame), "error": error(e) });
        self.push(comment, flags, "invalid", v);
    }

    /// Adds the relay's answer to the last case, where it is not the decoder's result: a
    /// `HELLO` whose version byte is not 1 (`LINK-41`).
    fn relay_answer(&mut self) {
        if let Some(obj) = self.tests.last_mut().and_then(Value::as_object_mut) {
            obj.insert("relayAnswer".into(), unsupported_version());
        }
    }
}

/// What a relay answers a `HELLO` whose version byte is not 1, before decoding the rest
/// (`LINK-41`, `LINK-3`).
fn unsupported_version() -> Value {
    json!({
        "closeCode": CloseCode::UNSUPPORTED_VERSION.name(),
        "requirement": "LINK-41",
    })
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn u8_len(b: &[u8]) -> u8 {
    u8::try_from(b.len()).unwrap_or(u8::MAX)
}

fn hello_bytes(version: u8, role: u8, ws: &[u8], cred: &[u8], reg: &[u8]) -> Vec<u8> {
    cat(&[
        &[0x01, version, role, u8_len(ws)],
        ws,
        &[u8_len(cred)],
        cred,
        reg,
    ])
}

fn generate() -> String {
    let mut b = Builder { tests: Vec::new() };
    let sid: [u8; 8] = det_array("relay-frames/session-id");
    let host_key: [u8; 32] = det_array("relay-frames/host-key");
    let cred = det_bytes("relay-frames/credential", 32);
    let reg1 = det_bytes("relay-frames/registration-msg1", 32);
    let reg2 = det_bytes("relay-frames/registration-msg2", 48);
    let reg3 = det_bytes("relay-frames/registration-msg3", 64);
    let ik1 = det_bytes("relay-frames/ik-msg1", 110);
    let data = det_bytes("relay-frames/data", 64);
    let ws = b"acme-dev";

    // ---------------------------------------------------------------- valid
    let hello = |version: u8, role: &str, ws: &[u8], cred: &[u8], reg: &[u8]| {
        json!({
            "type": "HELLO",
            "version": version,
            "role": role,
            "workspace": String::from_utf8_lossy(ws),
            "credential": hex::encode(cred),
            "registration": hex::encode(reg),
        })
    };
    b.valid(
        "HELLO of a host with registration message 1",
        &["Hello"],
        &hello_bytes(1, 0x01, ws, &cred, &reg1),
        hello(1, "host", ws, &cred, &reg1),
    );
    b.valid(
        "HELLO of a controller: no registration message",
        &["Hello"],
        &hello_bytes(1, 0x02, ws, &cred, &[]),
        hello(1, "controller", ws, &cred, &[]),
    );
    b.valid(
        "HELLO with version 2 decodes; the relay refuses it with UNSUPPORTED_VERSION (LINK-3)",
        &["Hello", "VersionNotChecked", "VersionFirst"],
        &hello_bytes(2, 0x02, ws, &cred, &[]),
        hello(2, "controller", ws, &cred, &[]),
    );
    b.relay_answer();
    let ws64: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz0123456789._-"
        .iter()
        .copied()
        .cycle()
        .take(64)
        .collect();
    let cred255 = det_bytes("relay-frames/credential-255", 255);
    b.valid(
        "HELLO with the longest workspace (64) and credential (255)",
        &["Hello", "MaxLength"],
        &hello_bytes(1, 0x01, &ws64, &cred255, &reg1),
        hello(1, "host", &ws64, &cred255, &reg1),
    );
    let cred16 = det_bytes("relay-frames/credential-16", 16);
    b.valid(
        "HELLO with the shortest workspace (1) and credential (16)",
        &["Hello", "MinLength"],
        &hello_bytes(1, 0x02, b"a", &cred16, &[]),
        hello(1, "controller", b"a", &cred16, &[]),
    );
    b.valid(
        "HOST_CHALLENGE: registration message 2, 48 bytes",
        &["Registration"],
        &cat(&[&[0x02], &reg2]),
        json!({ "type": "HOST_CHALLENGE", "message": hex::encode(&reg2) }),
    );
    b.valid(
        "HOST_PROOF: registration message 3, 64 bytes",
        &["Registration"],
        &cat(&[&[0x03], &reg3]),
        json!({ "type": "HOST_PROOF", "message": hex::encode(&reg3) }),
    );
    b.valid("READY", &["Ready"], &[0x04], json!({ "type": "READY" }));
    let open = |hs: &[u8]| {
        json!({
            "type": "OPEN",
            "session": hex::encode(sid),
            "hostKey": hex::encode(host_key),
            "handshake": hex::encode(hs),
        })
    };
    b.valid(
        "OPEN with a 110-byte IK message 1 (a SESSION handshake)",
        &["Session"],
        &cat(&[&[0x10], &sid, &host_key, &ik1]),
        open(&ik1),
    );
    b.valid(
        "OPEN with a 1-byte handshake (the codec does not interpret it)",
        &["Session", "MinLength"],
        &cat(&[&[0x10], &sid, &host_key, &[0x00]]),
        open(&[0x00]),
    );
    let hs512 = det_bytes("relay-frames/handshake-512", 512);
    b.valid(
        "OPEN with the longest handshake (512)",
        &["Session", "MaxLength"],
        &cat(&[&[0x10], &sid, &host_key, &hs512]),
        open(&hs512),
    );
    b.valid(
        "INCOMING with a 110-byte IK message 1",
        &["Session"],
        &cat(&[&[0x11], &sid, &ik1]),
        json!({ "type": "INCOMING", "session": hex::encode(sid), "handshake": hex::encode(&ik1) }),
    );
    b.valid(
        "DATA with a 64-byte payload",
        &["Data"],
        &cat(&[&[0x12], &sid, &data]),
        json!({ "type": "DATA", "session": hex::encode(sid), "payload": hex::encode(&data) }),
    );
    b.valid(
        "DATA with a 1-byte payload",
        &["Data", "MinLength"],
        &cat(&[&[0x12], &sid, &[0xff]]),
        json!({ "type": "DATA", "session": hex::encode(sid), "payload": "ff" }),
    );
    let v = json!({
        "frame": hex::encode(cat(&[&[0x12], &sid])),
        "frameRepeat": { "hex": "a5", "count": 65_535 },
        "decoded": {
            "type": "DATA",
            "session": hex::encode(sid),
            "payload": "",
            "payloadRepeat": { "hex": "a5", "count": 65_535 },
        },
    });
    b.push(
        "largest frame: DATA with a 65535-byte payload, 65544 bytes in all",
        &["Data", "MaxLength", "Repeat"],
        "valid",
        v,
    );
    b.valid(
        "CLOSE with PEER_GONE (20)",
        &["Close"],
        &cat(&[&[0x13], &sid, &[0x00, 0x14]]),
        json!({ "type": "CLOSE", "session": hex::encode(sid), "code": 20 }),
    );
    b.valid(
        "CLOSE with an unregistered code decodes",
        &["Close"],
        &cat(&[&[0x13], &sid, &[0xff, 0xff]]),
        json!({ "type": "CLOSE", "session": hex::encode(sid), "code": 65_535 }),
    );
    b.valid(
        "PING with value 0",
        &["Keepalive"],
        &[0x20, 0, 0, 0, 0, 0, 0, 0, 0],
        json!({ "type": "PING", "value": "0" }),
    );
    let ping: [u8; 8] = det_array("relay-frames/ping");
    b.valid(
        "PING with a random value",
        &["Keepalive"],
        &cat(&[&[0x20], &ping]),
        json!({ "type": "PING", "value": u64::from_be_bytes(ping).to_string() }),
    );
    b.valid(
        "PONG with the largest value",
        &["Keepalive"],
        &[0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        json!({ "type": "PONG", "value": u64::MAX.to_string() }),
    );
    b.valid(
        "GOAWAY with an empty reason",
        &["GoAway"],
        &[0x30, 0x00, 0x00, 0x00],
        json!({ "type": "GOAWAY", "code": 0, "reason": "" }),
    );
    let reason = "slow reader — 4 MiB queued";
    b.valid(
        "GOAWAY SLOW_READER with a UTF-8 reason",
        &["GoAway"],
        &cat(&[
            &[0x30, 0x00, 0x0c, u8_len(reason.as_bytes())],
            reason.as_bytes(),
        ]),
        json!({ "type": "GOAWAY", "code": 12, "reason": reason }),
    );
    let long_reason = "é".repeat(127) + "!";
    b.valid(
        "GOAWAY with the longest reason (255 bytes)",
        &["GoAway", "MaxLength"],
        &cat(&[&[0x30, 0x00, 0x01, 0xff], long_reason.as_bytes()]),
        json!({ "type": "GOAWAY", "code": 1, "reason": long_reason }),
    );

    // ---------------------------------------------------------------- invalid
    b.invalid("empty frame", &["Truncated"], &[], &FrameError::Truncated);
    for ty in [0x00u8, 0x05, 0x0f, 0x14, 0x22, 0x31, 0xff] {
        b.invalid(
            &format!("unknown type 0x{ty:02x}"),
            &["UnknownType"],
            &cat(&[&[ty], &sid]),
            &FrameError::UnknownType { ty },
        );
    }
    b.invalid(
        "unknown type with no body",
        &["UnknownType"],
        &[0x40],
        &FrameError::UnknownType { ty: 0x40 },
    );
    let full_hello = hello_bytes(1, 0x02, ws, &cred, &[]);
    for (comment, n) in [
        ("HELLO: type byte only", 1usize),
        ("HELLO: no role", 2),
        ("HELLO: no workspace length", 3),
        ("HELLO: workspace runs out", 3 + 1 + 4),
        ("HELLO: no credential length", 3 + 1 + 8),
        ("HELLO: credential runs out", 3 + 1 + 8 + 1 + 31),
    ] {
        b.invalid(
            comment,
            &["Truncated", "Hello"],
            full_hello.get(..n).unwrap_or_default(),
            &FrameError::Truncated,
        );
    }
    for (comment, bytes) in [
        ("OPEN: session id runs out", cat(&[&[0x10], &sid[..4]])),
        (
            "OPEN: host key runs out",
            cat(&[&[0x10], &sid, &host_key[..31]]),
        ),
        ("INCOMING: session id runs out", cat(&[&[0x11], &sid[..7]])),
        ("DATA: type byte only", vec![0x12]),
        ("CLOSE: code runs out", cat(&[&[0x13], &sid, &[0x00]])),
        ("CLOSE: no code", cat(&[&[0x13], &sid])),
        ("PING: 7-byte value", cat(&[&[0x20], &ping[..7]])),
        ("PONG: type byte only", vec![0x21]),
        ("GOAWAY: code runs out", vec![0x30, 0x00]),
        ("GOAWAY: no reason length", vec![0x30, 0x00, 0x01]),
        (
            "GOAWAY: reason runs out",
            vec![0x30, 0x00, 0x01, 0x05, 0x61, 0x62],
        ),
    ] {
        b.invalid(comment, &["Truncated"], &bytes, &FrameError::Truncated);
    }
    for (comment, bytes) in [
        ("READY with a body byte", vec![0x04, 0x00]),
        (
            "CLOSE with a byte after the code",
            cat(&[&[0x13], &sid, &[0x00, 0x14, 0x00]]),
        ),
        ("PING with a ninth byte", cat(&[&[0x20], &ping, &[0x00]])),
        ("PONG with a ninth byte", cat(&[&[0x21], &ping, &[0x00]])),
        (
            "GOAWAY with a byte after the reason",
            vec![0x30, 0x00, 0x01, 0x01, 0x61, 0x62],
        ),
    ] {
        b.invalid(
            comment,
            &["TrailingBytes"],
            &bytes,
            &FrameError::TrailingBytes,
        );
    }
    let v = json!({
        "frame": hex::encode(cat(&[&[0x12], &sid])),
        "frameRepeat": { "hex": "a5", "count": 65_536 },
        "error": error(&FrameError::TooLarge { len: 65_545 }),
    });
    b.push(
        "DATA of 65545 bytes: one over the limit",
        &["TooLarge", "Repeat"],
        "invalid",
        v,
    );
    let v = json!({
        "frame": "ee",
        "frameRepeat": { "hex": "00", "count": 65_544 },
        "error": error(&FrameError::TooLarge { len: 65_545 }),
    });
    b.push(
        "65545 bytes of an unknown type: size is checked before the type",
        &["TooLarge", "Repeat", "DecodeOrder"],
        "invalid",
        v,
    );
    for role in [0x00u8, 0x03, 0xff] {
        b.invalid(
            &format!("HELLO with role 0x{role:02x}"),
            &["Hello", "BadRole"],
            &hello_bytes(1, role, ws, &cred, &[]),
            &FrameError::BadRole { role },
        );
    }
    b.invalid(
        "HELLO with a bad role and a bad workspace: the role is reported",
        &["Hello", "BadRole", "DecodeOrder"],
        &hello_bytes(1, 0x07, b"ACME", &cred, &[]),
        &FrameError::BadRole { role: 0x07 },
    );
    for (comment, w) in [
        ("HELLO with an upper-case workspace", b"Acme".to_vec()),
        ("HELLO with an empty workspace", Vec::new()),
        ("HELLO with a 65-byte workspace", vec![b'a'; 65]),
        ("HELLO with a workspace that is not UTF-8", vec![0xc3, 0x28]),
        ("HELLO with a space in the workspace", b"acme dev".to_vec()),
    ] {
        b.invalid(
            comment,
            &["Hello", "BadWorkspace"],
            &hello_bytes(1, 0x02, &w, &cred, &[]),
            &FrameError::BadWorkspace,
        );
    }
    for len in [0usize, 15] {
        b.invalid(
            &format!("HELLO with a {len}-byte credential"),
            &["Hello", "BadCredentialLength"],
            &hello_bytes(1, 0x02, ws, cred.get(..len).unwrap_or_default(), &[]),
            &FrameError::BadCredentialLength { len },
        );
    }
    for (comment, role, len) in [
        (
            "HELLO of a host without registration message",
            0x01u8,
            0usize,
        ),
        (
            "HELLO of a host with a 31-byte registration message",
            0x01,
            31,
        ),
        (
            "HELLO of a host with a 33-byte registration message",
            0x01,
            33,
        ),
        (
            "HELLO of a controller with a registration message",
            0x02,
            32,
        ),
    ] {
        let reg = det_bytes("relay-frames/registration-msg1", len);
        b.invalid(
            comment,
            &["Hello", "BadRegistrationLength"],
            &hello_bytes(1, role, ws, &cred, &reg),
            &FrameError::BadRegistrationLength {
                frame_type: 0x01,
                len,
            },
        );
    }
    for (comment, ty, len) in [
        ("HOST_CHALLENGE: type byte only", 0x02u8, 0usize),
        ("HOST_CHALLENGE of 47 bytes", 0x02, 47),
        ("HOST_CHALLENGE of 49 bytes", 0x02, 49),
        ("HOST_PROOF: type byte only", 0x03, 0),
        ("HOST_PROOF of 63 bytes", 0x03, 63),
        ("HOST_PROOF of 65 bytes", 0x03, 65),
    ] {
        let msg = det_bytes("relay-frames/registration-msg3", len);
        b.invalid(
            comment,
            &["Registration", "BadRegistrationLength"],
            &cat(&[&[ty], &msg]),
            &FrameError::BadRegistrationLength {
                frame_type: ty,
                len,
            },
        );
    }
    let hs513 = det_bytes("relay-frames/handshake-512", 513);
    for (comment, bytes, len) in [
        (
            "OPEN without handshake",
            cat(&[&[0x10], &sid, &host_key]),
            0usize,
        ),
        (
            "OPEN with a 513-byte handshake",
            cat(&[&[0x10], &sid, &host_key, &hs513]),
            513,
        ),
        ("INCOMING without handshake", cat(&[&[0x11], &sid]), 0),
        (
            "INCOMING with a 513-byte handshake",
            cat(&[&[0x11], &sid, &hs513]),
            513,
        ),
    ] {
        b.invalid(
            comment,
            &["Session", "BadHandshakeLength"],
            &bytes,
            &FrameError::BadHandshakeLength { len },
        );
    }
    b.invalid(
        "DATA without payload",
        &["Data", "EmptyPayload"],
        &cat(&[&[0x12], &sid]),
        &FrameError::EmptyPayload,
    );
    for (comment, r) in [
        ("GOAWAY reason byte 0xff", vec![0xff]),
        ("GOAWAY reason with a truncated sequence", vec![0x61, 0xc3]),
        (
            "GOAWAY reason with an overlong encoding of '/'",
            vec![0xc0, 0xaf],
        ),
        (
            "GOAWAY reason with a UTF-16 surrogate",
            vec![0xed, 0xa0, 0x80],
        ),
    ] {
        b.invalid(
            comment,
            &["GoAway", "BadUtf8"],
            &cat(&[&[0x30, 0x00, 0x01, u8_len(&r)], &r]),
            &FrameError::BadUtf8,
        );
    }
    // A length-prefixed string is one field: its length byte and its bytes are read
    // (step 4) before its constraint is checked (step 5).
    b.invalid(
        "HELLO whose workspace length byte is 65 with one byte after it: Truncated, not BadWorkspace",
        &["Hello", "Truncated", "DecodeOrder"],
        &[0x01, 0x01, 0x02, 65, b'a'],
        &FrameError::Truncated,
    );
    b.invalid(
        "HELLO whose credential length byte is 8 with four bytes after it: Truncated, not BadCredentialLength",
        &["Hello", "Truncated", "DecodeOrder"],
        &cat(&[&[0x01, 0x01, 0x02, 0x04], b"acme", &[8], cred.get(..4).unwrap_or_default()]),
        &FrameError::Truncated,
    );

    // LINK-41: a later version may lay HELLO out differently after its version byte. The
    // codec reports what v1's layout makes of the bytes; a relay reads the version first
    // and answers UNSUPPORTED_VERSION whatever follows.
    b.invalid(
        "HELLO of version 2 whose next byte is no v1 role: the codec says BadRole; a relay reads the version first and answers UNSUPPORTED_VERSION (LINK-41)",
        &["Hello", "BadRole", "VersionFirst"],
        &cat(&[&[0x01, 0x02, 0x07], &det_bytes("relay-frames/hello-v2-body", 40)]),
        &FrameError::BadRole { role: 0x07 },
    );
    b.relay_answer();
    b.invalid(
        "HELLO of version 2 and nothing after the version: the codec says Truncated; a relay answers UNSUPPORTED_VERSION (LINK-41)",
        &["Hello", "Truncated", "VersionFirst"],
        &[0x01, 0x02],
        &FrameError::Truncated,
    );
    b.relay_answer();
    b.invalid(
        "HELLO of version 255 with a v1 controller body and 16 bytes more: the codec says BadRegistrationLength; a relay answers UNSUPPORTED_VERSION (LINK-41)",
        &["Hello", "BadRegistrationLength", "VersionFirst"],
        &hello_bytes(0xff, 0x02, ws, &cred, &[0x5a; 16]),
        &FrameError::BadRegistrationLength {
            frame_type: 0x01,
            len: 16,
        },
    );
    b.relay_answer();
    b.invalid(
        "HELLO of version 0 with a workspace of upper-case letters: the codec says BadWorkspace; a relay answers UNSUPPORTED_VERSION (LINK-41)",
        &["Hello", "BadWorkspace", "VersionFirst"],
        &hello_bytes(0x00, 0x02, b"ACME", &cred, &[]),
        &FrameError::BadWorkspace,
    );
    b.relay_answer();

    let n = b.tests.len();
    to_json(&json!({
        "vectors": "relay-frames",
        "specVersion": 1,
        "description": "Relay frames (spec/03-relay-link.md): one frame per WebSocket binary message. \
            Valid cases give the frame (hex) and its decoded fields; a decoder must produce those \
            fields and an encoder given them must produce exactly the frame. Invalid cases give the \
            frame and the error a decoder must report (the first failure in the spec's decode order), \
            with the requirement it enforces and the GOAWAY close code that reports it.",
        "notes": {
            "Hello": "HELLO frame (0x01)",
            "Registration": "HOST_CHALLENGE (0x02) or HOST_PROOF (0x03)",
            "Ready": "READY frame (0x04)",
            "Session": "OPEN (0x10) or INCOMING (0x11)",
            "Data": "DATA frame (0x12)",
            "Close": "CLOSE frame (0x13)",
            "Keepalive": "PING (0x20) or PONG (0x21)",
            "GoAway": "GOAWAY frame (0x30)",
            "MinLength": "fields at their shortest length",
            "MaxLength": "fields at their longest length",
            "VersionNotChecked": "the codec decodes any HELLO version; the relay's state machine rejects it (LINK-3)",
            "VersionFirst": "a HELLO whose version byte is not 1: a relay reads bytes 0 and 1 before anything else and answers UNSUPPORTED_VERSION whatever follows (LINK-41); `relayAnswer` says so, while `decoded` or `error` is what the codec makes of the bytes",
            "Repeat": "the frame is too long to write out: it is `frame` followed by `frameRepeat.count` copies of the byte(s) `frameRepeat.hex`; a decoded payload likewise is `payload` followed by `payloadRepeat.count` copies of `payloadRepeat.hex`",
            "Truncated": "the frame ends before a field does, or is empty (LINK-4)",
            "TrailingBytes": "bytes after the frame's last field (LINK-4)",
            "UnknownType": "type byte not in the frame table (LINK-4)",
            "TooLarge": "frame longer than 65544 bytes (LINK-5), close code FRAME_TOO_LARGE",
            "BadRole": "HELLO role byte neither 0x01 nor 0x02 (LINK-31)",
            "BadWorkspace": "HELLO workspace id breaks the workspace rule (LINK-32)",
            "BadCredentialLength": "HELLO credential shorter than 16 bytes (LINK-10)",
            "BadRegistrationLength": "registration message of the wrong length (LINK-9 in HELLO, LINK-12 in HOST_CHALLENGE / HOST_PROOF)",
            "BadHandshakeLength": "OPEN / INCOMING handshake empty or longer than 512 bytes (LINK-15)",
            "EmptyPayload": "DATA without payload (LINK-33)",
            "BadUtf8": "GOAWAY reason not UTF-8 (LINK-34)",
            "DecodeOrder": "more than one thing is wrong; the error is the first in the spec's decode order",
        },
        "schema": {
            "frame": "the frame bytes (hex), type byte first",
            "frameRepeat": "optional, see the Repeat flag",
            "decoded": "type (the frame's name) and its fields: byte fields in hex; version, code as numbers; role as \"host\" or \"controller\"; workspace and reason as strings; PING/PONG value as a decimal string (u64)",
            "error": "name: the error variant; requirement: the requirement id; closeCode: the close code of the GOAWAY that reports it",
            "relayAnswer": "optional: closeCode and requirement of the GOAWAY a relay answers the frame with, where that is not the decoder's result (see the VersionFirst flag); present exactly when byte 0 is 0x01 and byte 1 exists and is not 0x01",
        },
        "numberOfTests": n,
        "tests": b.tests,
    }))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    field(v, key)?
        .as_str()
        .ok_or_else(|| format!("{key} is not a string"))
}

fn hex_field(v: &Value, key: &str) -> Result<Vec<u8>, String> {
    hex::decode(str_field(v, key)?).map_err(|e| format!("{key}: {e}"))
}

/// `key` in hex, followed by the repetition in `repeat_key` if there is one.
fn repeated(v: &Value, key: &str, repeat_key: &str) -> Result<Vec<u8>, String> {
    let mut out = hex_field(v, key)?;
    if let Some(r) = v.get(repeat_key) {
        let unit = hex_field(r, "hex")?;
        let count = field(r, "count")?.as_u64().ok_or("count is not a number")?;
        for _ in 0..count {
            out.extend_from_slice(&unit);
        }
    }
    Ok(out)
}

fn sid(v: &Value) -> Result<SessionId, String> {
    Ok(SessionId(
        hex_field(v, "session")?
            .try_into()
            .map_err(|_| "session is not 8 bytes")?,
    ))
}

fn code(v: &Value) -> Result<CloseCode, String> {
    let c = field(v, "code")?.as_u64().ok_or("code is not a number")?;
    Ok(CloseCode(u16::try_from(c).map_err(|e| e.to_string())?))
}

fn value(v: &Value) -> Result<u64, String> {
    str_field(v, "value")?
        .parse()
        .map_err(|e| format!("value: {e}"))
}

/// The frame the decoded fields describe.
fn expected(d: &Value) -> Result<RelayFrame, String> {
    Ok(match str_field(d, "type")? {
        "HELLO" => RelayFrame::Hello {
            version: u8::try_from(field(d, "version")?.as_u64().ok_or("version")?)
                .map_err(|e| e.to_string())?,
            role: match str_field(d, "role")? {
                "host" => Role::Host,
                "controller" => Role::Controller,
                other => return Err(format!("role {other:?}")),
            },
            workspace: str_field(d, "workspace")?.to_owned(),
            credential: hex_field(d, "credential")?,
            registration: hex_field(d, "registration")?,
        },
        "HOST_CHALLENGE" => RelayFrame::HostChallenge {
            message: hex_field(d, "message")?,
        },
        "HOST_PROOF" => RelayFrame::HostProof {
            message: hex_field(d, "message")?,
        },
        "READY" => RelayFrame::Ready,
        "OPEN" => RelayFrame::Open {
            session: sid(d)?,
            host_key: hex_field(d, "hostKey")?
                .try_into()
                .map_err(|_| "hostKey is not 32 bytes")?,
            handshake: hex_field(d, "handshake")?,
        },
        "INCOMING" => RelayFrame::Incoming {
            session: sid(d)?,
            handshake: hex_field(d, "handshake")?,
        },
        "DATA" => RelayFrame::Data {
            session: sid(d)?,
            payload: repeated(d, "payload", "payloadRepeat")?,
        },
        "CLOSE" => RelayFrame::Close {
            session: sid(d)?,
            code: code(d)?,
        },
        "PING" => RelayFrame::Ping { value: value(d)? },
        "PONG" => RelayFrame::Pong { value: value(d)? },
        "GOAWAY" => RelayFrame::GoAway {
            code: code(d)?,
            reason: str_field(d, "reason")?.to_owned(),
        },
        other => return Err(format!("unknown type {other:?}")),
    })
}

fn check_case(case: &Value) -> Result<(), String> {
    let bytes = repeated(case, "frame", "frameRepeat")?;
    check_relay_answer(case, &bytes)?;
    let decoded = RelayFrame::decode(&bytes);
    match str_field(case, "result")? {
        "valid" => {
            let want = expected(field(case, "decoded")?)?;
            let got = decoded.map_err(|e| format!("decode failed: {e:?}"))?;
            if got != want {
                return Err("decoded fields differ".into());
            }
            if got.type_name() != str_field(field(case, "decoded")?, "type")? {
                return Err("type name differs".into());
            }
            if want
                .to_bytes()
                .map_err(|e| format!("encode failed: {e:?}"))?
                != bytes
            {
                return Err("re-encoded bytes differ".into());
            }
            Ok(())
        }
        "invalid" => {
            let e = field(case, "error")?;
            let (name, req) = (str_field(e, "name")?, str_field(e, "requirement")?);
            let close = str_field(e, "closeCode")?;
            match decoded {
                Err(got)
                    if got.name() == name
                        && got.requirement() == req
                        && got.close_code().name() == Some(close) =>
                {
                    Ok(())
                }
                got => Err(format!("expected {name} ({req}, {close}), got {got:?}")),
            }
        }
        other => Err(format!("result {other:?}")),
    }
}

/// `relayAnswer` is present exactly for a `HELLO` whose version byte is not 1, and says
/// `UNSUPPORTED_VERSION` (`LINK-41`).
fn check_relay_answer(case: &Value, bytes: &[u8]) -> Result<(), String> {
    let other_version = RelayFrame::peek_hello_version(bytes)
        .is_some_and(|v| v != tether_proto::limits::PROTOCOL_VERSION);
    match (case.get("relayAnswer"), other_version) {
        (None, false) => Ok(()),
        (Some(answer), true) if *answer == unsupported_version() => Ok(()),
        (Some(answer), true) => Err(format!(
            "relayAnswer {answer} is not UNSUPPORTED_VERSION (LINK-41)"
        )),
        (Some(_), false) => {
            Err("relayAnswer on a frame that is not a HELLO of another version".into())
        }
        (None, true) => Err("a HELLO of another version without relayAnswer (LINK-41)".into()),
    }
}

fn check(contents: &str) -> Result<usize, String> {
    crate::format::check_cases(contents, check_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker is not a rubber stamp: changing any stated outcome makes it fail.
    #[test]
    fn check_rejects_altered_cases() {
        let good = generate();
        assert!(check(&good).is_ok());
        let file: Value = serde_json::from_str(&good).unwrap();
        let n = file["tests"].as_array().unwrap().len();
        for i in 0..n {
            let mut altered = file.clone();
            let case = &mut altered["tests"][i];
            if case.get("error").is_some() {
                let name = case["error"]["name"].as_str().unwrap().to_owned();
                let other = if name == "Truncated" {
                    "TrailingBytes"
                } else {
                    "Truncated"
                };
                case["error"]["name"] = json!(other);
            } else {
                case["decoded"]["type"] = json!(if case["decoded"]["type"] == "PONG" {
                    "PING"
                } else {
                    "PONG"
                });
            }
            assert!(check(&altered.to_string()).is_err(), "case {}", i + 1);
        }
    }

    /// Every decode error that a frame can produce appears in the file.
    #[test]
    fn every_decode_error_has_a_vector() {
        let text = generate();
        for name in [
            "UnknownType",
            "Truncated",
            "TrailingBytes",
            "TooLarge",
            "BadRole",
            "BadWorkspace",
            "BadCredentialLength",
            "BadRegistrationLength",
            "BadHandshakeLength",
            "EmptyPayload",
            "BadUtf8",
        ] {
            assert!(text.contains(&format!("\"name\": \"{name}\"")), "{name}");
        }
    }
}
