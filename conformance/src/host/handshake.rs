//! Message 1 and the host's answer: a correct handshake from a device and a payload, or
//! any bytes a misbehaving controller would send ([`raw_message1`]).

use std::time::Duration;

use tether_proto::channel::{
    HandshakePayload, Initiator, Prologue, Timestamp, ik_params, noise_builder,
};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::token::PairingToken;

use crate::context::{Context, host_target};
use crate::host::channel::ChannelSession;
use crate::host::device::{Device, Identity};
use crate::link::{Link, controller};
use crate::outcome::{Res, Stop, hfail};
use crate::random::random_session;
use crate::traffic::describe;

/// A PAIR payload for `token`.
pub fn pair_payload(token: &PairingToken, device: &Device, ts: Timestamp) -> HandshakePayload {
    HandshakePayload::Pair {
        timestamp: ts,
        token_id: *token.token_id(),
        token_secret: *token.token_secret(),
        device_name: device.name.clone(),
    }
}

/// The result of sending message 1.
#[derive(Debug)]
pub enum Opened {
    /// Message 2 arrived and read correctly.
    Established(Box<ChannelSession>),
    /// The host (or relay) closed the session with this code instead.
    Refused(CloseCode, Link),
}

impl Opened {
    /// The refusal code, or a failure naming what was expected.
    ///
    /// # Errors
    /// The session was established.
    pub async fn refused(self, expected: &str) -> Res<CloseCode> {
        match self {
            Self::Refused(code, _) => Ok(code),
            Self::Established(s) => {
                s.close().await;
                hfail(format!("expected {expected}, but the host sent message 2"))
            }
        }
    }
}

/// Opens a session with a correct message 1 built from `payload`.
///
/// # Errors
/// Failure of the link, or a message 2 that does not read (`CHAN-6`, `CHAN-7`, `CHAN-8`,
/// `CHAN-25`).
pub async fn open(
    cx: &Context,
    name: &str,
    identity: &Identity,
    device: &Device,
    payload: &HandshakePayload,
) -> Res<Opened> {
    open_with(cx, name, identity, device, payload, random_session())
        .await
        .map(|(o, _)| o)
}

/// [`open`] with a chosen session id; also returns message 1 (for replay cases).
///
/// # Errors
/// As [`open`].
pub async fn open_with(
    cx: &Context,
    name: &str,
    identity: &Identity,
    device: &Device,
    payload: &HandshakePayload,
    session: SessionId,
) -> Res<(Opened, Vec<u8>)> {
    let host_key = identity.host_key();
    let prologue = Prologue::new(identity.workspace(), &host_key, session)
        .map_err(|e| Stop::Fail(format!("prologue: {e}")))?;
    let initiator = Initiator::new(&device.private, &host_key, &prologue, payload)
        .map_err(|e| Stop::Fail(format!("writing message 1: {e}")))?;
    let msg1 = initiator.message1().to_vec();
    let host = host_target(cx)?;
    let mut link = controller(cx, name, &host.relay.workspace).await?;
    match send_message1(&mut link, session, &host_key, msg1.clone()).await? {
        Err(code) => Ok((Opened::Refused(code, link), msg1)),
        Ok(msg2) => {
            let (transport, info) = initiator.read_message2(&msg2).map_err(|e| {
                Stop::Fail(format!(
                    "{name}: message 2 does not read: {e} [{}]",
                    e.requirement()
                ))
            })?;
            cx.log.note(
                name,
                format!(
                    "handshake complete; host info: name={:?} os={} capabilities={:?}",
                    info.name, info.os, info.capabilities
                ),
            );
            Ok((
                Opened::Established(Box::new(ChannelSession::new(
                    cx, name, link, session, transport, info,
                ))),
                msg1,
            ))
        }
    }
}

/// Sends `OPEN` with `msg1` and waits for the host's answer: the first `DATA` of the
/// session (message 2, `CHAN-28`) or its `CLOSE`.
///
/// # Errors
/// Another frame, or nothing within 15 s.
pub async fn send_message1(
    link: &mut Link,
    session: SessionId,
    host_key: &[u8; 32],
    msg1: Vec<u8>,
) -> Res<Result<Vec<u8>, CloseCode>> {
    link.send(&RelayFrame::Open {
        session,
        host_key: *host_key,
        handshake: msg1,
    })
    .await?;
    match link.recv(Duration::from_secs(15)).await {
        Ok(RelayFrame::Data {
            session: s,
            payload,
        }) if s == session => Ok(Ok(payload)),
        Ok(RelayFrame::Close { session: s, code }) if s == session => Ok(Err(code)),
        Ok(other) => hfail(format!(
            "{}: expected message 2 or CLOSE for session {session}, got {}",
            link.name(),
            describe(&other)
        )),
        Err(e) => hfail(format!(
            "no answer to message 1 within 15 s (expected message 2 or CLOSE): {e}"
        )),
    }
}

/// Message 1 with any payload bytes and any prologue bytes: `-> e, es, s, ss` of
/// `Noise_IK_25519_ChaChaPoly_BLAKE2s` written by snow, for cases that send what a correct
/// controller would not.
///
/// # Errors
/// Noise refuses the inputs (a case bug).
pub fn raw_message1(
    local_static: &[u8; 32],
    host_key: &[u8; 32],
    prologue: &[u8],
    payload: &[u8],
) -> Res<Vec<u8>> {
    let params = ik_params().map_err(|e| Stop::Fail(format!("noise params: {e}")))?;
    let mut hs = noise_builder(params)
        .local_private_key(local_static)
        .and_then(|b| b.remote_public_key(host_key))
        .and_then(|b| b.prologue(prologue))
        .and_then(|b| b.build_initiator())
        .map_err(|e| Stop::Fail(format!("noise set-up: {e}")))?;
    let mut out = vec![0u8; 96 + payload.len() + 16];
    let n = hs
        .write_message(payload, &mut out)
        .map_err(|e| Stop::Fail(format!("writing message 1: {e}")))?;
    out.truncate(n);
    Ok(out)
}
