//! Host cases of the handshake itself (`spec/04` sections 4.1 to 4.6): Noise IK as
//! initiator, the prologue, message-1 payloads and timestamps, message 2, low-order and
//! tampered keys (`CHAN-1` to `CHAN-8`).

use std::sync::Arc;

use tether_proto::channel::{HandshakePayload, Initiator, Prologue, Timestamp};
use tether_proto::link::CloseCode;
use tether_proto::time::UnixTime;

use crate::case::{Case, case};
use crate::cases::steps::handshake::{
    close_is, expect_refused_raw, future_ts, payload_refused, refused_raw, ts_bytes,
};
use crate::cases::steps::rpc::{ready, still_answers};
use crate::context::Context;
use crate::host::{Device, Res, Stop, check, paired, session};
use crate::link::{random_bytes, random_session};

/// The handshake cases, in spec order.
pub const CASES: &[Case] = &[
    CHAN_IK,
    CHAN_PROLOGUE,
    CHAN_PAYLOAD,
    CHAN_TIMESTAMP,
    CHAN_HOST_INFO,
    CHAN_LOW_ORDER,
    CHAN_TAMPERED_MSG1,
];

// ---------------------------------------------------------------------------------------
// CHAN

const CHAN_IK: Case = case! {
    id: "CHAN-1/ik-handshake",
    level: Must,
    timeout: 30 s,
    description: "a controller completes Noise_IK_25519_ChaChaPoly_BLAKE2s as initiator and talks",
    host: chan_ik,
};
async fn chan_ik(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    check(
        !s.transport.handshake_hash().iter().all(|&b| b == 0),
        || "all-zero handshake hash".to_owned(),
    )?;
    still_answers(&mut s, "initialize").await?;
    s.close().await;
    Ok(())
}

const CHAN_PROLOGUE: Case = case! {
    id: "CHAN-2/wrong-prologue",
    level: Must,
    timeout: 30 s,
    description: "message 1 made for another session id, workspace or host key gets HANDSHAKE_FAILED",
    host: chan_prologue,
};
async fn chan_prologue(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let device = Device::fresh("prologue");
    let key = identity.host_key();
    let payload = HandshakePayload::Session {
        timestamp: Timestamp::from_unix(UnixTime::now()),
    };
    let other_key = tether_proto::keys::public_key(&random_bytes::<32>());
    let other_ws = if identity.workspace() == "conformance-x" {
        "conformance-y"
    } else {
        "conformance-x"
    };
    for (what, ws, k, wrong_session) in [
        ("another session id", identity.workspace(), key, true),
        ("another workspace", other_ws, key, false),
        ("another host key", identity.workspace(), other_key, false),
    ] {
        let session = random_session();
        let prologue_session = if wrong_session {
            random_session()
        } else {
            session
        };
        let prologue = Prologue::new(ws, &k, prologue_session)
            .map_err(|e| Stop::Fail(format!("prologue: {e}")))?;
        let init = Initiator::new(&device.private, &key, &prologue, &payload)
            .map_err(|e| Stop::Fail(format!("message 1: {e}")))?;
        let code = refused_raw(&cx, "ctl", session, init.message1().to_vec()).await?;
        close_is(
            code,
            CloseCode::HANDSHAKE_FAILED,
            &format!("prologue with {what}"),
        )?;
    }
    Ok(())
}

const CHAN_PAYLOAD: Case = case! {
    id: "CHAN-3/malformed-payload",
    level: Must,
    timeout: 30 s,
    description: "message-1 payloads with a bad version, kind, length, name or trailing byte get HANDSHAKE_FAILED",
    host: chan_payload,
};
async fn chan_payload(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let _key = identity.host_key();
    let ts = Timestamp::from_unix(UnixTime::now()).to_bytes();
    let session_payload = |version: u8, kind: u8, extra: &[u8]| {
        let mut p = vec![version, kind];
        p.extend_from_slice(&ts);
        p.extend_from_slice(extra);
        p
    };
    let pair = |name: &[u8], len: u8| {
        let mut p = vec![1u8, 1];
        p.extend_from_slice(&ts);
        p.extend_from_slice(&random_bytes::<16>());
        p.extend_from_slice(&random_bytes::<32>());
        p.push(len);
        p.extend_from_slice(name);
        p
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("version 2", session_payload(2, 0, &[])),
        ("kind 2", session_payload(1, 2, &[])),
        (
            "a SESSION payload with a trailing byte",
            session_payload(1, 0, &[0]),
        ),
        (
            "a SESSION payload cut to 13 bytes",
            session_payload(1, 0, &[]).get(..13).unwrap_or(&[]).to_vec(),
        ),
        (
            "a PAIR payload without its name",
            pair(&[], 0).get(..62).unwrap_or(&[]).to_vec(),
        ),
        ("a device name of length 0", pair(&[], 0)),
        ("a device name of length 65", pair(&[b'a'; 65], 65)),
        ("a device name with a control character", pair(b"a\x07b", 3)),
        ("a device name that is not UTF-8", pair(&[0xc3, 0x28], 2)),
        ("a name length larger than the rest", pair(b"abc", 9)),
    ];
    for (what, payload) in cases {
        let device = Device::fresh("payload");
        payload_refused(
            &cx,
            &identity,
            &device,
            &payload,
            CloseCode::HANDSHAKE_FAILED,
            &format!("payload with {what}"),
        )
        .await?;
    }
    Ok(())
}

const CHAN_TIMESTAMP: Case = case! {
    id: "CHAN-4/malformed-timestamp",
    level: Must,
    timeout: 30 s,
    description: "timestamps with nanoseconds >= 10^9 or a label outside [2^62, 2^63) get HANDSHAKE_FAILED",
    host: chan_timestamp,
};
async fn chan_timestamp(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let _key = identity.host_key();
    let now = UnixTime::now().as_secs();
    for (what, t) in [
        (
            "nanoseconds 10^9",
            ts_bytes((1u64 << 62) + now, 1_000_000_000),
        ),
        ("a label below 2^62", ts_bytes((1u64 << 62) - 1, 0)),
        ("the label 2^63", ts_bytes(1u64 << 63, 0)),
    ] {
        let device = Device::fresh("timestamp");
        let mut payload = vec![1u8, 0];
        payload.extend_from_slice(&t);
        payload_refused(
            &cx,
            &identity,
            &device,
            &payload,
            CloseCode::HANDSHAKE_FAILED,
            &format!("timestamp with {what}"),
        )
        .await?;
    }
    Ok(())
}

const CHAN_HOST_INFO: Case = case! {
    id: "CHAN-6/host-info",
    level: Must,
    timeout: 30 s,
    description: "message 2 carries 0x01 and a host-info object with every member",
    host: chan_host_info,
};
async fn chan_host_info(cx: Arc<Context>) -> Res<()> {
    // Message 2 was read by the strict decoder (CHAN-6): version byte, one JSON object,
    // every member of the table with its type, no repeats.
    let s = session(&cx, "ctl").await?;
    let ok = s.info.protocol == "tether/1" && !s.info.name.is_empty() && !s.info.os.is_empty();
    let info = format!("{:?}", s.info);
    s.close().await;
    check(ok, || format!("host info {info} is not complete"))
}

const CHAN_LOW_ORDER: Case = case! {
    id: "CHAN-7/low-order-ephemeral",
    level: Must,
    timeout: 30 s,
    description: "message 1 with a low-order ephemeral key gets HANDSHAKE_FAILED",
    host: chan_low_order,
};
async fn chan_low_order(cx: Arc<Context>) -> Res<()> {
    let mut first = [0u8; 32];
    first[0] = 1; // u = 1: a point of order 4
    for (what, e) in [
        ("the all-zero point", [0u8; 32]),
        ("the point u = 1", first),
    ] {
        let mut msg1 = e.to_vec();
        msg1.extend_from_slice(&random_bytes::<32>());
        msg1.extend_from_slice(&random_bytes::<32>());
        msg1.extend_from_slice(&random_bytes::<14>());
        expect_refused_raw(&cx, what, msg1, CloseCode::HANDSHAKE_FAILED).await?;
    }
    Ok(())
}

const CHAN_TAMPERED_MSG1: Case = case! {
    id: "CHAN-8/tampered-message-1",
    level: Must,
    timeout: 30 s,
    description: "a flipped bit or a cut in message 1 gets HANDSHAKE_FAILED and changes no state",
    host: chan_tampered_msg1,
};
async fn chan_tampered_msg1(cx: Arc<Context>) -> Res<()> {
    let p = paired(&cx).await?;
    let key = p.identity.host_key();
    let sid = random_session();
    let prologue = Prologue::new(p.identity.workspace(), &key, sid)
        .map_err(|e| Stop::Fail(format!("prologue: {e}")))?;
    let payload = HandshakePayload::Session {
        timestamp: future_ts(1),
    };
    let init = Initiator::new(&p.device.private, &key, &prologue, &payload)
        .map_err(|e| Stop::Fail(format!("message 1: {e}")))?;
    let mut flipped = init.message1().to_vec();
    if let Some(b) = flipped.get_mut(40) {
        *b ^= 0x01;
    }
    let code = refused_raw(&cx, "flipped", sid, flipped).await?;
    close_is(
        code,
        CloseCode::HANDSHAKE_FAILED,
        "message 1 with a flipped bit",
    )?;
    let cut = init.message1().get(..95).unwrap_or(&[]).to_vec();
    expect_refused_raw(&cx, "cut", cut, CloseCode::HANDSHAKE_FAILED).await?;
    // Nothing changed: the device still opens a session.
    session(&cx, "after").await?.close().await;
    Ok(())
}
