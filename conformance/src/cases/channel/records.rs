//! Host cases of records and flow control (`spec/04` section 4.13, `channel.flow`):
//! negotiation, malformed records, windows in both directions, credit bounds and credit
//! restored, and messages longer than a transport message (`CHAN-31` to `CHAN-36`).
//!
//! The runner counts both windows itself ([`Records`](crate::host::Records)): every
//! plaintext of the host in a session with records is checked as a record, against the
//! credit the runner granted, as it arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::link::CloseCode;

use crate::case::{Case, case};
use crate::cases::steps::records::{
    DEFAULT_INCREMENT, context, counting, delta_of, first_difference, padded_request,
    records_ready, records_session, settled_records_session, start_exec, with,
};
use crate::cases::steps::rpc::{expect_error, still_answers};
use crate::context::Context;
use crate::host::records::{
    MAX_LINK_CREDIT, MAX_MESSAGE_LEN, MAX_RECORD_BODY, MAX_SESSION_CREDIT, MIN_CREDIT, TAG_LEN,
};
use crate::host::{ChannelSession, HOST_WAIT, Record, Res, Stop, check, hfail, session, skip};

/// The records cases, in spec order.
pub const CASES: &[Case] = &[
    RECORDS_NEGOTIATED,
    VERSION_1_CONTROLLER,
    EMPTY_RECORD,
    UNKNOWN_RECORD_TYPE,
    EMPTY_PART,
    BAD_WINDOW,
    LARGE_REQUEST,
    OVER_16_MIB,
    HOST_STAYS_WITHIN_WINDOW,
    READER_PAUSES,
    CONTROLLER_IGNORES_WINDOW,
    HOST_CREDIT_BOUNDED,
    LINK_CREDIT_BOUNDED,
    CREDIT_RESTORED,
];

/// Skips, closing `s`, unless message 2 lists `channel.flow`.
async fn need_flow(s: ChannelSession) -> Res<ChannelSession> {
    if s.info
        .has_capability(tether_proto::cmd::capability::CHANNEL_FLOW)
    {
        Ok(s)
    } else {
        s.close().await;
        skip(
            "the host does not list channel.flow in message 2: it does not carry records (CHAN-31)",
        )
    }
}

/// The answer to request `id`, or an error response with id null (a refusal of a message
/// whose id the host did not read: a host that refuses long messages, CMD-11), which then
/// fails naming it.
async fn answer_or_refusal(s: &mut ChannelSession, id: i64, wait: Duration) -> Res<Value> {
    let want = json!(id);
    let seen = s
        .read_until(wait, &format!("the answer to request {id}"), |m| {
            m.method().is_none()
                && matches!(m.value.get("id"), Some(i) if *i == want || i.is_null())
        })
        .await?;
    let Some(a) = seen.last().map(|m| m.value.clone()) else {
        return hfail("read_until returned nothing (a case bug)");
    };
    if a.get("id") == Some(&Value::Null) {
        return hfail(format!(
            "request {id} was refused with an error of id null: {a}"
        ));
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// CHAN-31: negotiation

const RECORDS_NEGOTIATED: Case = case! {
    id: "CHAN-31/records-negotiated",
    level: Must,
    timeout: 60 s,
    description: "a controller's first WINDOW switches the session to records: the host sends nothing first, initialize round-trips in MESSAGE records, a message in PART records is reassembled",
    host: records_negotiated,
};
async fn records_negotiated(cx: Arc<Context>) -> Res<()> {
    let mut s = need_flow(session(&cx, "ctl").await?).await?;
    // The host has nothing to send before the controller's first message (CHAN-31, CMD-15).
    match s.next_frame(Duration::from_secs(1)).await {
        Ok(Ok(p)) => {
            return hfail(format!(
                "the host sent a transport message ({} bytes) before the controller's first one (CHAN-31)",
                p.len()
            ));
        }
        Ok(Err(code)) => return hfail(format!("the host closed the session: CLOSE {code}")),
        Err(_) => {}
    }
    s.start_records(DEFAULT_INCREMENT, true).await?;
    context(s.initialize().await, "initialize in MESSAGE records").map(|_| ())?;
    // A request of 150000 bytes: three records, PART, PART, MESSAGE (CHAN-32, CHAN-33).
    let id = s.fresh_id();
    s.send_message(&padded_request(id, "tether-conformance/probe", 150_000))
        .await?;
    let a = answer_or_refusal(&mut s, id, HOST_WAIT).await?;
    expect_error(
        &a,
        -32601,
        "a 150000-byte request for an unknown method, in PART and MESSAGE records",
    )?;
    still_answers(&mut s, "a request in three records").await?;
    let r = s.records().cloned();
    check(r.as_ref().is_some_and(|r| r.host_messages >= 3), || {
        format!("the host's answers did not arrive as records: {r:?}")
    })?;
    s.close().await;
    Ok(())
}

const VERSION_1_CONTROLLER: Case = case! {
    id: "CHAN-31/version-1-controller",
    level: Must,
    timeout: 30 s,
    description: "a controller whose first message is a JSON-RPC initialize gets a version 1 session: plain JSON back, never a record",
    host: version_1_controller,
};
async fn version_1_controller(cx: Arc<Context>) -> Res<()> {
    let mut s = need_flow(session(&cx, "ctl").await?).await?;
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {"clientInfo": {"name": "tether-conformance", "version": env!("CARGO_PKG_VERSION")}, "tether": {"protocolVersion": "tether/2"}}}))
        .await?;
    let payload = match s.next_frame(HOST_WAIT).await? {
        Ok(p) => p,
        Err(code) => return hfail(format!("the host closed the session: CLOSE {code}")),
    };
    let mut plain = Vec::new();
    s.transport
        .decrypt(&payload, &mut plain)
        .map_err(|e| Stop::Fail(format!("the host's answer does not decrypt: {e}")))?;
    cx.log.note(
        "ctl",
        format!(
            "first plaintext of the host: {}",
            String::from_utf8_lossy(plain.get(..200).unwrap_or(&plain))
        ),
    );
    if let Some(&t @ 0..=2) = plain.first() {
        return hfail(format!(
            "the host answered a controller that did not opt in with a record (type 0x{t:02x}): a version 1 session carries plain JSON-RPC (CHAN-31)"
        ));
    }
    let v: Value = serde_json::from_slice(&plain).map_err(|e| {
        Stop::Fail(format!(
            "the host's answer to initialize is not one JSON value: {e} (CHAN-31, CMD-1)"
        ))
    })?;
    check(
        v.get("id") == Some(&json!(id)) && v.get("result").is_some(),
        || format!("the answer to initialize: {v}"),
    )?;
    s.send_json(&json!({"jsonrpc": "2.0", "method": "initialized"}))
        .await?;
    // The rest of the session is version 1 too: recv reads one JSON message per transport
    // message.
    still_answers(&mut s, "initialize in a version 1 session").await?;
    s.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CHAN-32: malformed records

/// Opts in, sends `bad` as one record plaintext and expects `CLOSE FLOW_CONTROL_ERROR`.
async fn refused_record(cx: &Context, bad: &[u8], what: &str) -> Res<()> {
    let mut s = records_session(cx, "ctl", DEFAULT_INCREMENT, true).await?;
    s.send_plain(bad).await?;
    context(
        s.expect_close(CloseCode::FLOW_CONTROL_ERROR, true).await,
        &format!("{what} after the controller's WINDOW (CHAN-32)"),
    )
}

const EMPTY_RECORD: Case = case! {
    id: "CHAN-32/empty-record",
    level: Must,
    timeout: 30 s,
    description: "an empty record plaintext gets CLOSE FLOW_CONTROL_ERROR",
    host: empty_record,
};
async fn empty_record(cx: Arc<Context>) -> Res<()> {
    refused_record(&cx, &[], "an empty plaintext").await
}

const UNKNOWN_RECORD_TYPE: Case = case! {
    id: "CHAN-32/unknown-record-type",
    level: Must,
    timeout: 30 s,
    description: "a record of type 0x03 gets CLOSE FLOW_CONTROL_ERROR",
    host: unknown_record_type,
};
async fn unknown_record_type(cx: Arc<Context>) -> Res<()> {
    refused_record(&cx, b"\x03{}", "a record of type 0x03").await
}

const EMPTY_PART: Case = case! {
    id: "CHAN-32/empty-part",
    level: Must,
    timeout: 30 s,
    description: "a PART record with an empty body gets CLOSE FLOW_CONTROL_ERROR",
    host: empty_part,
};
async fn empty_part(cx: Arc<Context>) -> Res<()> {
    refused_record(&cx, &[0x01], "a PART with an empty body").await
}

const BAD_WINDOW: Case = case! {
    id: "CHAN-32/bad-window",
    level: Must,
    timeout: 60 s,
    description: "WINDOW records with increment 4095 or 258049, or a body of 3 or 5 bytes, get CLOSE FLOW_CONTROL_ERROR",
    host: bad_window,
};
async fn bad_window(cx: Arc<Context>) -> Res<()> {
    for (what, bad) in [
        ("a WINDOW of 4095", &[0x02, 0x00, 0x00, 0x0f, 0xff][..]),
        ("a WINDOW of 258049", &[0x02, 0x00, 0x03, 0xf0, 0x01][..]),
        ("a WINDOW with a 3-byte body", &[0x02, 0x00, 0x10, 0x00][..]),
        (
            "a WINDOW with a 5-byte body",
            &[0x02, 0x00, 0x00, 0x10, 0x00, 0x00][..],
        ),
    ] {
        refused_record(&cx, bad, what).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CHAN-33: long messages

const LARGE_REQUEST: Case = case! {
    id: "CHAN-33/large-request",
    level: Must,
    timeout: 180 s,
    description: "a 10 MiB request in PART records is reassembled and answered with its id; the host grants credit to let it through (CHAN-36)",
    host: large_request,
};
async fn large_request(cx: Arc<Context>) -> Res<()> {
    let mut s = records_ready(&cx, "ctl").await?;
    let id = s.fresh_id();
    let start = Instant::now();
    context(
        s.send_message(&padded_request(id, "tether-conformance/probe", 10 << 20))
            .await,
        "sending a 10 MiB request",
    )?;
    let a = context(
        answer_or_refusal(&mut s, id, Duration::from_secs(60)).await,
        "a 10 MiB request (CHAN-33: up to 16 MiB must be accepted)",
    )?;
    expect_error(&a, -32601, "a 10 MiB request for an unknown method")?;
    let r = s.records().cloned();
    cx.log.note(
        "ctl",
        format!(
            "10 MiB crossed in {:.1} s; the host granted {} times",
            start.elapsed().as_secs_f64(),
            r.as_ref().map_or(0, |r| r.host_increments.len())
        ),
    );
    still_answers(&mut s, "a 10 MiB request").await?;
    s.close().await;
    Ok(())
}

const OVER_16_MIB: Case = case! {
    id: "CHAN-33/over-16-mib",
    level: Must,
    timeout: 240 s,
    description: "a message of 16777217 bytes gets a TooLarge (-32700) error with id null and the session goes on",
    host: over_16_mib,
};
async fn over_16_mib(cx: Arc<Context>) -> Res<()> {
    let mut s = records_ready(&cx, "ctl").await?;
    let id = s.fresh_id();
    let msg = padded_request(id, "tether-conformance/probe", MAX_MESSAGE_LEN + 1);
    check(msg.len() == MAX_MESSAGE_LEN + 1, || {
        format!("the padded request is {} bytes (a case bug)", msg.len())
    })?;
    context(
        s.send_message(&msg).await,
        "sending a message of 16777217 bytes",
    )?;
    let a = context(
        s.answer_to(&Value::Null, Duration::from_secs(60)).await,
        "a message of 16777217 bytes (CHAN-33: answered as TooLarge, id null)",
    )?;
    expect_error(&a, -32700, "a message of 16777217 bytes")?;
    let name = a.pointer("/error/data/error").and_then(Value::as_str);
    check(name.is_none_or(|n| n == "TooLarge"), || {
        format!("a message of 16777217 bytes: expected the error TooLarge (CMD-2), got {a}")
    })?;
    still_answers(&mut s, "a message of 16777217 bytes").await?;
    s.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CHAN-34: windows

const HOST_STAYS_WITHIN_WINDOW: Case = case! {
    id: "CHAN-34/host-stays-within-window",
    level: Must,
    timeout: 120 s,
    description: "granted only 20480 bytes, a host streaming 1 MiB of command output stops within them and sends nothing more until granted; then all of it arrives, byte-exact, the answer last",
    host: host_stays_within_window,
};
async fn host_stays_within_window(cx: Arc<Context>) -> Res<()> {
    // 16384 + 4096: the least a controller can grant.
    let mut s = records_session(&cx, "ctl", 4096, false).await?;
    s.initialize().await?;
    if let Err(e) = s.need_exec() {
        s.close().await;
        return Err(e);
    }
    let dir = s.work_dir(&cx)?;
    let (params, expected) = counting(131_072, &dir);
    let (id, pid) = start_exec(&mut s, with(params, "outputBytesCap", json!(4 << 20))).await?;
    // Every record is checked against the 20480 bytes granted as it arrives (CHAN-34).
    // The command's first output may take a while; after it, 2 s of nothing.
    s.read_until_quiet(
        Duration::from_secs(10),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await?;
    let r = s.records().cloned();
    cx.log
        .note("ctl", format!("quiet for 2 s with granting off: {r:?}"));
    let answered = s
        .inbound()
        .iter()
        .any(|m| m.method().is_none() && m.value.get("id") == Some(&id));
    check(!answered, || {
        "the command/exec answer arrived within 20480 bytes of credit: 1 MiB of output cannot have been sent".to_owned()
    })?;
    // Grant again, and read to the end.
    s.set_credit_target(crate::host::records::DEFAULT_CREDIT);
    s.set_granting(true).await?;
    let run = s.collect_exec(&id, &pid, Duration::from_secs(60)).await?;
    check(run.stdout == expected && run.stderr.is_empty(), || {
        format!(
            "after the pause the output is not byte-exact: stdout {} (stderr {} bytes)",
            first_difference(&run.stdout, &expected),
            run.stderr.len()
        )
    })?;
    check(run.exit_code() == Some(0), || {
        format!("the command/exec answer: {}", run.answer)
    })?;
    // A delta after the answer fails here (CMD-36).
    still_answers(&mut s, "1 MiB streamed at the window's pace").await?;
    s.close().await;
    Ok(())
}

const READER_PAUSES: Case = case! {
    id: "CHAN-34/reader-pauses-10s",
    level: Must,
    timeout: 120 s,
    slow: true,
    description: "a controller that stops reading and granting for 10 s in the middle of 4 MiB of output (disableOutputCap): what the host sent meanwhile stays within the credit, nothing is lost and the session stays up (no SLOW_READER)",
    host: reader_pauses,
};
async fn reader_pauses(cx: Arc<Context>) -> Res<()> {
    let mut s = records_ready(&cx, "ctl").await?;
    s.need_exec()?;
    let dir = s.work_dir(&cx)?;
    let (params, expected) = counting(524_288, &dir);
    let (id, pid) = start_exec(&mut s, with(params, "disableOutputCap", json!(true))).await?;
    let mut stdout = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Read until 512 KiB arrived, then pause.
    while stdout.len() < 512 << 10 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = context(s.recv(left).await, "before the pause")?;
        if let Some(raw) = delta_of(&m, &pid) {
            stdout.extend_from_slice(&raw);
        } else if m.method().is_none() && m.value.get("id") == Some(&id) {
            return hfail(format!(
                "the command/exec answered after {} bytes of 4 MiB: {}",
                stdout.len(),
                m.value
            ));
        }
    }
    s.set_granting(false).await?;
    cx.log.note(
        "ctl",
        format!(
            "pausing for 10 s after {} bytes: no reading, no credit",
            stdout.len()
        ),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    // What the host sent meanwhile is read with granting still off: all of it must lie
    // within the credit granted before the pause (CHAN-34).
    context(
        s.read_until_quiet(
            Duration::from_secs(2),
            Duration::from_secs(1),
            Duration::from_secs(30),
        )
        .await,
        "reading what the host sent during a 10 s pause (LINK-22: a host within its window never fills the relay's queue)",
    )?;
    s.set_granting(true).await?;
    let run = context(
        s.collect_exec(&id, &pid, Duration::from_secs(60)).await,
        "after a 10 s pause (LINK-22: a host within its window never fills the relay's queue)",
    )?;
    stdout.extend_from_slice(&run.stdout);
    check(stdout == expected, || {
        format!(
            "after the pause the output is not byte-exact: stdout {}",
            first_difference(&stdout, &expected)
        )
    })?;
    let r = run.report().cloned().unwrap_or(Value::Null);
    check(
        r.get("exitCode") == Some(&json!(0)) && r.get("capReached") == Some(&json!(false)),
        || format!("the command/exec answer: {}", run.answer),
    )?;
    still_answers(&mut s, "a 10 s pause").await?;
    s.close().await;
    Ok(())
}

const CONTROLLER_IGNORES_WINDOW: Case = case! {
    id: "CHAN-34/controller-ignores-window",
    level: Must,
    timeout: 120 s,
    exclusive: true,
    description: "a record larger than the host's remaining credit gets CLOSE FLOW_CONTROL_ERROR (sessions are opened until one has less than 64 KiB of credit, which CHAN-35 guarantees by the 33rd)",
    host: controller_ignores_window,
};
async fn controller_ignores_window(cx: Arc<Context>) -> Res<()> {
    // A host that consumes as records arrive and keeps its credit topped up can always take
    // the largest record (65535 bytes). Its link-wide bound (CHAN-35: 2 MiB) keeps the
    // credit of some session below 63551 bytes once 33 are open; the runner's window of a
    // settled session is that session's credit.
    let mut open: Vec<ChannelSession> = Vec::new();
    let mut outcome: Res<()> = hfail(
        "33 sessions with records were open and each still had more than 65518 bytes of credit: together more than 2 MiB (CHAN-35)",
    );
    for n in 0..33 {
        let mut s = match settled_records_session(&cx, &format!("ctl-{n}")).await {
            Ok(s) => s,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        if s.window() <= MAX_RECORD_BODY as u64 {
            // A round trip first: a WINDOW the host sent for the runner's first record
            // comes before the answer to a later request (CHAN-32: records in order).
            let settled = async {
                s.initialize().await?;
                s.read_until_quiet(
                    Duration::from_millis(500),
                    Duration::from_millis(500),
                    Duration::from_secs(10),
                )
                .await
            }
            .await;
            if let Err(e) = settled {
                outcome = Err(e);
                s.close().await;
                break;
            }
        }
        let window = s.window();
        if window > MAX_RECORD_BODY as u64 {
            open.push(s);
            continue;
        }
        // One MESSAGE record one byte larger than the credit.
        let plain_len = usize::try_from((window + 1).saturating_sub(TAG_LEN))
            .unwrap_or(0)
            .max(120);
        let body = padded_request(s.fresh_id(), "tether-conformance/probe", plain_len - 1);
        cx.log.note(
            &format!("ctl-{n}"),
            format!(
                "the host's credit is {window} bytes; sending one record of {} bytes",
                body.len() as u64 + 1 + TAG_LEN
            ),
        );
        outcome = async {
            s.send_plain(&Record::Message(&body).to_vec()).await?;
            context(
                s.expect_close(CloseCode::FLOW_CONTROL_ERROR, true).await,
                &format!(
                    "a record of {} bytes where the host had granted {window} (CHAN-34)",
                    body.len() as u64 + 1 + TAG_LEN
                ),
            )
        }
        .await;
        s.close().await;
        break;
    }
    for s in open {
        s.close().await;
    }
    outcome
}

// ---------------------------------------------------------------------------------------
// CHAN-35: credit bounds

const HOST_CREDIT_BOUNDED: Case = case! {
    id: "CHAN-35/host-credit-bounded",
    level: Must,
    timeout: 120 s,
    description: "across a 4 MiB request the host's WINDOW increments are 4096 to 258048 and its credit never passes 258048",
    host: host_credit_bounded,
};
async fn host_credit_bounded(cx: Arc<Context>) -> Res<()> {
    let mut s = records_ready(&cx, "ctl").await?;
    let id = s.fresh_id();
    // Every WINDOW is checked as it arrives: the increment (CHAN-32) and the runner's
    // window, a lower bound of the host's credit, against 258048 (CHAN-35).
    s.send_message(&padded_request(id, "tether-conformance/probe", 4 << 20))
        .await?;
    let a = answer_or_refusal(&mut s, id, Duration::from_secs(60)).await?;
    expect_error(&a, -32601, "a 4 MiB request for an unknown method")?;
    let r = s.records().cloned();
    cx.log.note("ctl", format!("{r:?}"));
    let Some(r) = r else {
        return hfail("the session lost its records (a case bug)");
    };
    check(r.host_increments.len() >= 4, || {
        format!(
            "4 MiB crossed with only {} WINDOW records of the host: {:?}",
            r.host_increments.len(),
            r.host_increments
        )
    })?;
    check(r.max_window <= MAX_SESSION_CREDIT, || {
        format!("the runner's window reached {} (CHAN-35)", r.max_window)
    })?;
    s.close().await;
    Ok(())
}

const LINK_CREDIT_BOUNDED: Case = case! {
    id: "CHAN-35/link-credit-bounded",
    level: Must,
    timeout: 90 s,
    exclusive: true,
    description: "over 9 sessions with records the host's credits add up to at most 2 MiB",
    host: link_credit_bounded,
};
async fn link_credit_bounded(cx: Arc<Context>) -> Res<()> {
    // 9 sessions at 258048 would be 2322432 bytes: a host that gives each session the
    // most it may is caught.
    let mut open: Vec<ChannelSession> = Vec::new();
    let mut outcome = Ok(());
    for n in 0..9 {
        match settled_records_session(&cx, &format!("ctl-{n}")).await {
            Ok(s) => open.push(s),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if outcome.is_ok() {
        let windows: Vec<u64> = open.iter().map(ChannelSession::window).collect();
        let total: u64 = windows.iter().sum();
        cx.log.note(
            "runner",
            format!("settled windows {windows:?}, {total} bytes in all"),
        );
        outcome = check(total <= MAX_LINK_CREDIT, || {
            format!(
                "9 sessions of one link hold {total} bytes of the host's credit ({windows:?}), more than 2097152 (CHAN-35)"
            )
        });
    }
    for s in open {
        s.close().await;
    }
    outcome
}

// ---------------------------------------------------------------------------------------
// CHAN-36: credit restored

const CREDIT_RESTORED: Case = case! {
    id: "CHAN-36/credit-restored",
    level: Must,
    timeout: 60 s,
    description: "once a request spends all but 100 bytes of the host's credit and is answered, the host's WINDOW brings the credit back to 8192 or more",
    host: credit_restored,
};
async fn credit_restored(cx: Arc<Context>) -> Res<()> {
    let mut s = records_ready(&cx, "ctl").await?;
    s.read_until_quiet(
        Duration::from_millis(500),
        Duration::from_millis(500),
        Duration::from_secs(10),
    )
    .await?;
    let w = s.window();
    check(w >= MIN_CREDIT, || {
        format!(
            "after initialize the runner's window is {w} bytes: the host did not restore its credit to 8192 (CHAN-36)"
        )
    })?;
    // One message whose records take all but 100 bytes of the window.
    let per_record = MAX_RECORD_BODY as u64 + 1 + TAG_LEN;
    let records = (w - 100).div_ceil(per_record);
    let len = usize::try_from(w - 100 - records * (1 + TAG_LEN)).unwrap_or(0);
    let id = s.fresh_id();
    s.send_message(&padded_request(id, "tether-conformance/probe", len))
        .await?;
    let left = s.window();
    cx.log.note(
        "ctl",
        format!("sent {len} bytes in records; the runner's window is {left} bytes"),
    );
    check(left < MIN_CREDIT, || {
        format!("the message left a window of {left} bytes (a case bug)")
    })?;
    let a = answer_or_refusal(&mut s, id, HOST_WAIT).await?;
    expect_error(&a, -32601, "a request for an unknown method")?;
    context(
        s.wait_window(MIN_CREDIT, Duration::from_secs(5)).await,
        "the host consumed the request and answered it, but did not bring its credit back to 8192 bytes (CHAN-36)",
    )?;
    s.close().await;
    Ok(())
}
