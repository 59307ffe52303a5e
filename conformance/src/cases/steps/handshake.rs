//! Steps of the channel cases that send message 1 and expect a refusal: the `CLOSE` code
//! the host answers with, message-1 timestamps the runner makes up.

use std::time::Duration;

use tether_proto::channel::{HandshakePayload, Prologue, Timestamp};
use tether_proto::link::{CloseCode, SessionId};
use tether_proto::time::UnixTime;

use crate::context::Context;
use crate::host::{
    Device, Identity, Res, Stop, check, hfail, host_target, paired, raw_message1, send_message1,
};
use crate::link::{controller, random_bytes, random_session};

/// Fails unless `code` is `want`; `what` names what was sent.
pub(crate) fn close_is(code: CloseCode, want: CloseCode, what: &str) -> Res<()> {
    check(code == want, || {
        format!("{what}: expected CLOSE {want}, got CLOSE {code}")
    })
}

/// Opens a link, sends `msg1` in `OPEN` and returns the `CLOSE` code, failing if the host
/// answers with message 2.
pub(crate) async fn refused_raw(
    cx: &Context,
    name: &str,
    session: SessionId,
    msg1: Vec<u8>,
) -> Res<CloseCode> {
    let host = host_target(cx)?;
    let identity = paired(cx).await?.identity;
    let mut link = controller(cx, name, &host.relay.workspace).await?;
    let r = send_message1(&mut link, session, &identity.host_key(), msg1).await?;
    link.close_websocket().await;
    match r {
        Err(code) => Ok(code),
        Ok(_) => hfail(format!("{name}: the host answered with message 2")),
    }
}

/// Sends `msg1` on a fresh session and expects `CLOSE want`.
pub(crate) async fn expect_refused_raw(
    cx: &Context,
    name: &str,
    msg1: Vec<u8>,
    want: CloseCode,
) -> Res<()> {
    let code = refused_raw(cx, name, random_session(), msg1).await?;
    close_is(code, want, name)
}

/// A message-1 timestamp `secs` seconds ahead of the runner's clock (`CHAN-11`).
pub(crate) fn future_ts(secs: u64) -> Timestamp {
    Timestamp::from_unix(UnixTime::now().saturating_add(Duration::from_secs(secs)))
}

/// The 12 bytes of a timestamp: the seconds label, big-endian, then the nanoseconds
/// (`CHAN-4`), any values.
pub(crate) fn ts_bytes(secs_label: u64, nanos: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    let (s, n) = b.split_at_mut(8);
    s.copy_from_slice(&secs_label.to_be_bytes());
    n.copy_from_slice(&nanos.to_be_bytes());
    b
}

/// The prologue of a session (`CHAN-2`), as bytes.
pub(crate) fn prologue_bytes(workspace: &str, key: &[u8; 32], session: SessionId) -> Res<Vec<u8>> {
    Prologue::new(workspace, key, session)
        .map(|p| p.as_bytes().to_vec())
        .map_err(|e| Stop::Fail(format!("prologue: {e}")))
}

/// Sends message 1 from `device` with any `payload` bytes, under a correct prologue for a
/// fresh session, and expects `CLOSE want`; `what` names the payload in a failure.
pub(crate) async fn payload_refused(
    cx: &Context,
    identity: &Identity,
    device: &Device,
    payload: &[u8],
    want: CloseCode,
    what: &str,
) -> Res<()> {
    let key = identity.host_key();
    let session = random_session();
    let msg1 = raw_message1(
        &device.private,
        &key,
        &prologue_bytes(identity.workspace(), &key, session)?,
        payload,
    )?;
    let code = refused_raw(cx, "ctl", session, msg1).await?;
    close_is(code, want, what)
}

/// A `PAIR` payload from `device` with a token the host never minted (random id and
/// secret).
pub(crate) fn unknown_token_payload(device: &Device, timestamp: Timestamp) -> HandshakePayload {
    HandshakePayload::Pair {
        timestamp,
        token_id: random_bytes::<16>(),
        token_secret: random_bytes::<32>(),
        device_name: device.name.clone(),
    }
}
