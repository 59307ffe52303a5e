//! Host cases of what goes with the decision (`spec/04` sections 4.5, 4.7): message 2's
//! size and place, remote access switched off, the device record, and the order in which the
//! checks run (`CHAN-25` to `CHAN-29`).

use std::sync::Arc;

use tether_proto::channel::HandshakePayload;
use tether_proto::link::CloseCode;

use crate::case::{Case, case};
use crate::cases::steps::devices::set_remote;
use crate::cases::steps::handshake::{
    close_is, future_ts, prologue_bytes, refused_raw, unknown_token_payload,
};
use crate::context::Context;
use crate::host::{
    self, Device, Res, check, host_target, open, paired, raw_message1, session, session_with, skip,
};
use crate::link::random_session;

/// The admission cases, in spec order.
pub const CASES: &[Case] = &[
    CHAN_HOST_INFO_SIZE,
    CHAN_REMOTE_OFF,
    CHAN_RECORDED,
    CHAN_MSG2_FIRST,
    CHAN_ORDER_CLOCK,
    CHAN_ORDER_TOKEN,
    CHAN_ORDER_NOISE,
];

const CHAN_HOST_INFO_SIZE: Case = case! {
    id: "CHAN-25/host-info-size",
    level: Must,
    timeout: 30 s,
    description: "the host-info payload of message 2 is at most 4096 bytes",
    host: chan_host_info_size,
};
async fn chan_host_info_size(cx: Arc<Context>) -> Res<()> {
    let s = session(&cx, "ctl").await?;
    let len = s.info.encode().map(|b| b.len()).unwrap_or(usize::MAX);
    s.close().await;
    check(len <= 4096, || format!("host info of {len} bytes"))
}

const CHAN_REMOTE_OFF: Case = case! {
    id: "CHAN-26/remote-access-off",
    level: Must,
    timeout: 60 s,
    exclusive: true,
    description: "with remote access off, message 1 gets REMOTE_ACCESS_DISABLED",
    host: chan_remote_off,
};
async fn chan_remote_off(cx: Arc<Context>) -> Res<()> {
    if !host_target(&cx)?.admin.can_switch_remote_access() {
        return skip("needs a way to switch the host's remote access: give --remote-access-cmd");
    }
    paired(&cx).await?;
    set_remote(&cx, false).await?;
    let r = session_with(&cx, "off", None).await;
    let back = set_remote(&cx, true).await;
    let code = r?.refused("CLOSE REMOTE_ACCESS_DISABLED").await?;
    back?;
    close_is(code, CloseCode::REMOTE_ACCESS_DISABLED, "remote access off")?;
    session(&cx, "on-again").await?.close().await;
    Ok(())
}

const CHAN_RECORDED: Case = case! {
    id: "CHAN-27/device-recorded",
    level: Must,
    timeout: 30 s,
    description: "a paired device can open sessions, and its pairing timestamp counts as accepted",
    host: chan_recorded,
};
async fn chan_recorded(cx: Arc<Context>) -> Res<()> {
    let (_, paired_with) = host::paired_timestamps(&cx).await?;
    let code = session_with(&cx, "pairing-ts", Some(paired_with))
        .await?
        .refused("CLOSE REPLAYED for the pairing handshake's timestamp")
        .await?;
    close_is(code, CloseCode::REPLAYED, "the pairing timestamp again")?;
    session(&cx, "ctl").await?.close().await;
    Ok(())
}

const CHAN_MSG2_FIRST: Case = case! {
    id: "CHAN-28/message-2-first",
    level: Must,
    timeout: 30 s,
    description: "the first DATA of a session is message 2",
    host: chan_msg2_first,
};
async fn chan_msg2_first(cx: Arc<Context>) -> Res<()> {
    // open() takes the first DATA of the session as message 2 and fails if it does not read.
    session(&cx, "ctl").await?.close().await;
    Ok(())
}

const CHAN_ORDER_CLOCK: Case = case! {
    id: "CHAN-29/clock-before-authorization",
    level: Must,
    timeout: 30 s,
    description: "an unpaired key with a future timestamp gets CLOCK_SKEW, not NOT_AUTHORIZED",
    host: chan_order_clock,
};
async fn chan_order_clock(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let device = Device::fresh("skewed");
    let code = open(
        &cx,
        "ctl",
        &identity,
        &device,
        &HandshakePayload::Session {
            timestamp: future_ts(1000),
        },
    )
    .await?
    .refused("CLOSE CLOCK_SKEW")
    .await?;
    close_is(
        code,
        CloseCode::CLOCK_SKEW,
        "unpaired key, timestamp 1000 s ahead",
    )
}

const CHAN_ORDER_TOKEN: Case = case! {
    id: "CHAN-29/clock-before-token",
    level: Must,
    timeout: 30 s,
    description: "a PAIR with an unknown token and a future timestamp gets CLOCK_SKEW",
    host: chan_order_token,
};
async fn chan_order_token(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let device = Device::fresh("skewed-pair");
    let payload = unknown_token_payload(&device, future_ts(1000));
    let code = open(&cx, "ctl", &identity, &device, &payload)
        .await?
        .refused("CLOSE CLOCK_SKEW")
        .await?;
    close_is(
        code,
        CloseCode::CLOCK_SKEW,
        "unknown token, timestamp 1000 s ahead",
    )
}

const CHAN_ORDER_NOISE: Case = case! {
    id: "CHAN-29/noise-before-clock",
    level: Must,
    timeout: 30 s,
    description: "a wrong prologue with a future timestamp gets HANDSHAKE_FAILED",
    host: chan_order_noise,
};
async fn chan_order_noise(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let key = identity.host_key();
    let device = Device::fresh("skewed-prologue");
    let session = random_session();
    let mut payload = vec![1u8, 0];
    payload.extend_from_slice(&future_ts(1000).to_bytes());
    let msg1 = raw_message1(
        &device.private,
        &key,
        &prologue_bytes(identity.workspace(), &key, random_session())?,
        &payload,
    )?;
    let code = refused_raw(&cx, "ctl", session, msg1).await?;
    close_is(
        code,
        CloseCode::HANDSHAKE_FAILED,
        "wrong prologue, timestamp 1000 s ahead",
    )
}
