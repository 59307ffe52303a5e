//! The device the runner pairs once and shares between cases: pairing it with the host's
//! first token, opening its sessions in timestamp order, keeping it active on a host with
//! an inactivity age, and waiting for a host the runner started.

use std::sync::Arc;
use std::time::Duration;

use tether_proto::channel::{HandshakePayload, Timestamp};
use tether_proto::link::{RelayFrame, SessionId};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

use crate::context::{Context, Credential, HostTarget, RelayTarget, host_target};
use crate::host::channel::ChannelSession;
use crate::host::device::{Device, Identity, PairedDevice};
use crate::host::handshake::{Opened, open, open_with, pair_payload, send_message1};
use crate::link::{ANSWER_WAIT, Link, controller};
use crate::outcome::{Res, Stop, hfail, skip};
use crate::random::random_session;

/// A fresh token from the host (a skip when none is available).
///
/// # Errors
/// Skip when the host can mint no more; failure when minting fails or the token does not
/// decode.
pub async fn fresh_token(cx: &Context, ttl: Option<u64>) -> Res<(String, PairingToken)> {
    let host = host_target(cx)?;
    let text = match host.admin.mint_token(ttl).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return skip(
                "needs one more pairing token than the runner was given: repeat --token, or give --pair-cmd",
            );
        }
        Err(e) => return hfail(format!("minting a pairing token: {e}")),
    };
    cx.log.note("runner", "got a pairing token from the host");
    let token = PairingToken::from_text(&text).map_err(|e| {
        Stop::Fail(format!(
            "the host's pairing token does not decode: {} [{}]",
            e.name(),
            e.requirement()
        ))
    })?;
    Ok((text, token))
}

/// The shortest inactivity age the `CHAN-9` inactivity cases can test reliably: the
/// runner's own paired device must be kept active (below) with handshakes a third of the
/// age apart on a loaded machine, and `CHAN-9/active-within-age` reconnects 0.6 of the age
/// after the last handshake, leaving 0.4 of it for the handshake itself.
pub const MIN_TESTABLE_INACTIVE: Duration = Duration::from_secs(5);

/// The longest inactivity age the `CHAN-9` inactivity cases wait for (their time limits
/// are sized for it).
pub const MAX_TESTABLE_INACTIVE: Duration = Duration::from_secs(600);

/// Keeps the runner's shared paired device active on a host with an inactivity age
/// (`CHAN-9`): every eighth of the age, if the device's last accepted handshake is older
/// than a third of the age, opens a session with it and closes it. Without this a host
/// configured with a short age for testing would expire the device during a pause in the
/// run (`--jobs 1`, the relay's timer cases) and close its long sessions (`CHAN-19/rekey`
/// holds one for about 30 s; a host closes the sessions of a device that passes its age,
/// `SEC-13`). Only the shared device is kept active: the inactivity cases use devices of
/// their own. Handshakes refused meanwhile (remote access switched off by `CHAN-26` or
/// `CMD-55`, the rate limit spent by `CHAN-14`) are retried at the next tick. Ends when
/// the target is dropped (the run is over).
async fn keep_active(target: std::sync::Weak<crate::context::Target>, age: Duration) {
    let tick = (age / 8).max(Duration::from_millis(200));
    let stale = age / 3;
    loop {
        tokio::time::sleep(tick).await;
        let Some(target) = target.upgrade() else {
            return;
        };
        let crate::context::Target::Host(host) = target.as_ref() else {
            return;
        };
        // Held through the handshake, as for any session of the device (`CHAN-10`).
        let mut shared = host.shared.lock().await;
        let Some(p) = shared.as_mut() else {
            continue;
        };
        if p.last_accepted.elapsed() < stale {
            continue;
        }
        let cx = Context {
            case_id: "keep-active",
            target: Arc::clone(&target),
            log: crate::traffic::TrafficLog::new(),
        };
        let payload = HandshakePayload::Session {
            timestamp: p.device.next_timestamp(),
        };
        let sent = std::time::Instant::now();
        let opened = open_with(
            &cx,
            "keep-active",
            &p.identity,
            &p.device,
            &payload,
            random_session(),
        )
        .await;
        if let Ok((Opened::Established(s), _)) = opened {
            p.last_accepted = sent;
            s.close().await;
        }
    }
}

/// The shared paired device, pairing it with the host's first token on first use. On a
/// host with a known inactivity age ([`HostTarget::with_max_inactive`]) the runner keeps
/// it active from then on (`keep_active`).
///
/// # Errors
/// Skip without a token; failure when pairing fails.
pub async fn paired(cx: &Context) -> Res<PairedDevice> {
    let host = host_target(cx)?;
    let mut shared = host.shared.lock().await;
    if let Some(p) = shared.as_ref() {
        return Ok(p.clone());
    }
    let (text, token) = fresh_token(cx, None).await?;
    let identity = Identity {
        token_text: text,
        token,
        received_at: UnixTime::now(),
    };
    let mut device = Device::fresh("main");
    let ts = device.next_timestamp();
    let payload = pair_payload(&identity.token, &device, ts);
    let sent = std::time::Instant::now();
    match open(cx, "pairing", &identity, &device, &payload).await? {
        Opened::Established(s) => s.close().await,
        Opened::Refused(code, _) => {
            return hfail(format!(
                "pairing with the host's first token was refused with CLOSE {code} (CHAN-12)"
            ));
        }
    }
    let p = PairedDevice {
        identity,
        device,
        paired_with: ts,
        last_accepted: sent,
    };
    *shared = Some(p.clone());
    if let Some(age) = host.max_inactive {
        tokio::spawn(keep_active(Arc::downgrade(&cx.target), age));
    }
    Ok(p)
}

/// Opens a SESSION with the shared paired device (handshakes of the device are serialized
/// so that its timestamps reach the host in order, `CHAN-10`).
///
/// # Errors
/// As [`paired`]; failure when the host refuses the session.
pub async fn session(cx: &Context, name: &str) -> Res<ChannelSession> {
    match session_with(cx, name, None).await? {
        Opened::Established(s) => Ok(*s),
        Opened::Refused(code, _) => hfail(format!(
            "{name}: the paired device's session was refused with CLOSE {code}"
        )),
    }
}

/// Opens a SESSION with the shared paired device and the given timestamp (or the next one).
///
/// # Errors
/// As [`paired`].
pub async fn session_with(cx: &Context, name: &str, timestamp: Option<Timestamp>) -> Res<Opened> {
    session_capture(cx, name, timestamp, random_session())
        .await
        .map(|(o, _)| o)
}

/// [`session_with`] with a chosen session id; also returns message 1.
///
/// # Errors
/// As [`paired`].
pub async fn session_capture(
    cx: &Context,
    name: &str,
    timestamp: Option<Timestamp>,
    session: SessionId,
) -> Res<(Opened, Vec<u8>)> {
    paired(cx).await?;
    let host = host_target(cx)?;
    let mut shared = host.shared.lock().await;
    let Some(p) = shared.as_mut() else {
        return hfail("the paired device is gone");
    };
    let ts = match timestamp {
        Some(t) => t,
        None => p.device.next_timestamp(),
    };
    let identity = p.identity.clone();
    let device = p.device.clone();
    let sent = std::time::Instant::now();
    let opened = open_with(
        cx,
        name,
        &identity,
        &device,
        &HandshakePayload::Session { timestamp: ts },
        session,
    )
    .await?;
    if matches!(opened.0, Opened::Established(_)) {
        p.last_accepted = sent;
    }
    Ok(opened)
}

/// The last timestamp the shared device sent, and the timestamp of its pairing.
///
/// # Errors
/// As [`paired`].
pub async fn paired_timestamps(cx: &Context) -> Res<(Timestamp, Timestamp)> {
    let p = paired(cx).await?;
    let host = host_target(cx)?;
    let shared = host.shared.lock().await;
    let last = shared
        .as_ref()
        .and_then(|s| s.device.last)
        .unwrap_or(p.paired_with);
    Ok((last, p.paired_with))
}

/// A shared handle on a relay target of a host target, for [`Context::relay`].
pub fn relay_of(host: &HostTarget) -> &RelayTarget {
    &host.relay
}

/// The credential the runner connects with.
pub fn credential_of(host: &HostTarget) -> &Credential {
    &host.relay.workspace
}

/// Waits for a `CLOSE` of any session or nothing; used after a burst.
///
/// # Errors
/// The link fails.
pub async fn drain(link: &mut Link, dur: Duration) -> Res<Vec<RelayFrame>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(out);
        }
        match link.recv(left).await {
            Ok(f) => out.push(f),
            Err(_) => return Ok(out),
        }
    }
}

/// Default answer wait re-exported for cases.
pub const WAIT: Duration = ANSWER_WAIT;

/// Waits until the host with `host_key` answers through `relay`: sends `OPEN` with a
/// message 1 that cannot decrypt until the answer is a `CLOSE` from the host (an
/// end-to-end code, 32 and up) rather than from the relay (no such host yet). Used when
/// the runner started the host itself.
///
/// # Errors
/// The host did not answer within `within`.
pub async fn wait_for_host(
    relay: &RelayTarget,
    host_key: &[u8; 32],
    within: Duration,
) -> Result<(), String> {
    let target = Arc::new(crate::context::Target::Relay(relay.clone()));
    let cx = Context {
        case_id: "wait-for-host",
        target,
        log: crate::traffic::TrafficLog::new(),
    };
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::from("nothing tried");
    while tokio::time::Instant::now() < deadline {
        match controller(&cx, "probe", &relay.workspace).await {
            Ok(mut link) => {
                let session = random_session();
                let mut junk = vec![9u8; 32];
                junk.extend_from_slice(&[0u8; 78]);
                match send_message1(&mut link, session, host_key, junk).await {
                    Ok(Err(code)) if code.0 >= 32 => return Ok(()),
                    Ok(Err(code)) => last = format!("the relay answered CLOSE {code}"),
                    Ok(Ok(_)) => return Ok(()),
                    Err(Stop::Fail(e) | Stop::Skip(e)) => last = e,
                }
                link.close_websocket().await;
            }
            Err(e) => last = e.0,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the host did not answer through {} within {} s ({last})",
        relay.url,
        within.as_secs()
    ))
}
