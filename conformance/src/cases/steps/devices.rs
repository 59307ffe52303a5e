//! Steps of the cases that need a device of their own: pairing one with a fresh token,
//! revoking it, opening its sessions, waiting out an inactivity age, switching the host's
//! remote access.

use std::time::Duration;

use tether_proto::channel::HandshakePayload;
use tether_proto::token::PairingToken;

use crate::context::Context;
use crate::host::{
    ChannelSession, Device, Identity, Opened, Res, fresh_token, hfail, host_target, open,
    pair_payload, paired, skip,
};

/// Revokes `device` through the host's operator; a skip without `--revoke-cmd`.
pub(crate) async fn revoke(cx: &Context, device: &Device) -> Res<()> {
    let host = host_target(cx)?;
    match host.admin.revoke(&device.name).await {
        Ok(true) => {
            cx.log.note("runner", format!("revoked {}", device.name));
            Ok(())
        }
        Ok(false) => skip("needs a way to revoke a device: give --revoke-cmd"),
        Err(e) => hfail(format!("revoking {}: {e}", device.name)),
    }
}

/// Pairs a fresh device with a token of its own (skips if the runner cannot revoke, before
/// spending the token).
pub(crate) async fn pair_for_revocation(cx: &Context) -> Res<(Device, ChannelSession)> {
    let host = host_target(cx)?;
    if !host.admin.can_revoke() {
        return skip("needs a way to revoke a device: give --revoke-cmd");
    }
    let (_, token) = fresh_token(cx, None).await?;
    let (device, opened) = pair_fresh(cx, &token, "revoke").await?;
    match opened {
        Opened::Established(s) => Ok((device, *s)),
        Opened::Refused(code, _) => hfail(format!("pairing a fresh device got CLOSE {code}")),
    }
}

/// The established session of `opened`, or a failure naming `what`.
pub(crate) async fn established(opened: Opened, what: &str) -> Res<ChannelSession> {
    match opened {
        Opened::Established(s) => Ok(*s),
        Opened::Refused(code, _) => hfail(format!("{what}: got CLOSE {code}")),
    }
}

/// Opens a SESSION of `device` (the next timestamp).
pub(crate) async fn device_session(
    cx: &Context,
    name: &str,
    identity: &Identity,
    device: &mut Device,
) -> Res<Opened> {
    let ts = device.next_timestamp();
    open(
        cx,
        name,
        identity,
        device,
        &HandshakePayload::Session { timestamp: ts },
    )
    .await
}

/// Waits `dur`, saying so in the log.
pub(crate) async fn idle(cx: &Context, dur: Duration, why: &str) {
    cx.log.note(
        "runner",
        format!("idle for {:.1} s: {why}", dur.as_secs_f64()),
    );
    tokio::time::sleep(dur).await;
}

/// Switches the host's remote access on or off through its operator; a skip without
/// `--remote-access-cmd`.
pub(crate) async fn set_remote(cx: &Context, on: bool) -> Res<()> {
    let host = host_target(cx)?;
    match host.admin.set_remote_access(on).await {
        Ok(true) => {
            cx.log.note(
                "runner",
                format!("remote access switched {}", if on { "on" } else { "off" }),
            );
            Ok(())
        }
        Ok(false) => {
            skip("needs a way to switch the host's remote access: give --remote-access-cmd")
        }
        Err(e) => hfail(format!("switching remote access: {e}")),
    }
}

/// Pairs `device` with `token`: a `PAIR` handshake with the device's next timestamp.
pub(crate) async fn pair_device(
    cx: &Context,
    name: &str,
    identity: &Identity,
    device: &mut Device,
    token: &PairingToken,
) -> Res<Opened> {
    let ts = device.next_timestamp();
    open(cx, name, identity, device, &pair_payload(token, device, ts)).await
}

/// Pairs a fresh device named after `what` with `token`, as the shared device's host knows
/// it.
pub(crate) async fn pair_fresh(
    cx: &Context,
    token: &PairingToken,
    what: &str,
) -> Res<(Device, Opened)> {
    let identity = paired(cx).await?.identity;
    let mut device = Device::fresh(what);
    let opened = pair_device(cx, what, &identity, &mut device, token).await?;
    Ok((device, opened))
}
