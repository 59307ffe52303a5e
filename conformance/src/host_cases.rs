//! The host cases (`spec/02`, `spec/04`, `spec/05`, `spec/07`): the runner plays
//! controllers through the relay the host joined, pairs with the host's tokens, and sends
//! correct and broken handshakes, transport messages and JSON-RPC, checking the exact
//! `CLOSE` code or JSON-RPC error the spec names.
//!
//! Most cases use one device the runner pairs once with the first token ([`host::paired`]);
//! cases that need a token of their own (consumed, wrong secret, expired, revoked) take one
//! more and are skipped, with the reason, when the runner has none left.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::channel::{HandshakePayload, Initiator, Prologue, Timestamp};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;

use crate::case::{Case, CaseResult, Level, Outcome, TargetKind};
use crate::context::Context;
use crate::host::{
    self, ChannelSession, Device, ExecRun, HOST_WAIT, Identity, Opened, Res, Stop, check,
    fresh_token, hfail, host_target, open, pair_payload, paired, raw_message1, send_message1,
    session, session_capture, session_with, skip,
};
use crate::link::{controller, random_bytes, random_session};
use crate::token_check::{self, RawToken};
use crate::traffic::describe;

async fn wrap<F, Fut>(cx: Arc<Context>, f: F) -> CaseResult<Outcome>
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: Future<Output = Res<()>>,
{
    match f(cx).await {
        Ok(()) => Ok(Outcome::Pass),
        Err(stop) => stop.outcome(),
    }
}

macro_rules! hcase {
    ($id:literal, $req:literal, $level:ident, $secs:expr, $desc:literal, $body:ident) => {
        hcase!(@ $id, $req, $level, $secs, false, false, $desc, $body)
    };
    (slow $id:literal, $req:literal, $level:ident, $secs:expr, $desc:literal, $body:ident) => {
        hcase!(@ $id, $req, $level, $secs, true, false, $desc, $body)
    };
    (alone $id:literal, $req:literal, $level:ident, $secs:expr, $desc:literal, $body:ident) => {
        hcase!(@ $id, $req, $level, $secs, false, true, $desc, $body)
    };
    (@ $id:literal, $req:literal, $level:ident, $secs:expr, $slow:expr, $alone:expr, $desc:literal, $body:ident) => {
        Case {
            id: $id,
            requirement: $req,
            level: Level::$level,
            description: $desc,
            timeout: Duration::from_secs($secs),
            target: TargetKind::Host,
            slow: $slow,
            exclusive: $alone,
            body: |cx| Box::pin(wrap(cx, $body)),
        }
    };
}

/// Every host case, in spec order.
pub fn catalogue() -> Vec<Case> {
    vec![
        // ---- chapter 2: the host's tokens ----
        hcase!(
            "TOKEN-1/canonical-layout",
            "TOKEN-1",
            Must,
            30,
            "the host's token reads by the spec's layout (the runner's own decoder) with the fields the runner paired with",
            token_layout
        ),
        hcase!(
            "TOKEN-2/version-1",
            "TOKEN-2",
            Must,
            30,
            "the host's token has version byte 0x01",
            token_version
        ),
        hcase!(
            "TOKEN-3/text-form",
            "TOKEN-3",
            Must,
            30,
            "the host's token text is TETHER: and canonical upper-case unpadded base32",
            token_text
        ),
        hcase!(
            "TOKEN-4/checksum",
            "TOKEN-4",
            Must,
            30,
            "the host's token carries the BLAKE2s checksum of its bytes",
            token_checksum
        ),
        hcase!(
            "TOKEN-6/reserved-flags-zero",
            "TOKEN-6",
            Must,
            30,
            "the host's token has flag bits 1 to 7 clear",
            token_flags
        ),
        hcase!(
            "TOKEN-7/workspace",
            "TOKEN-7",
            Must,
            30,
            "the host's token names a valid workspace, the one the host registered in",
            token_workspace
        ),
        hcase!(
            "TOKEN-8/relay-url-and-host-name",
            "TOKEN-8",
            Must,
            30,
            "the host's token has a ws:// or wss:// relay URL and a valid host name",
            token_url
        ),
        hcase!(
            "TOKEN-9/lifetime-at-most-600s",
            "TOKEN-9",
            Must,
            30,
            "the host's token expires at most 600 s after it was minted, also when asked for 3600 s",
            token_lifetime
        ),
        hcase!(
            "TOKEN-13/key-length",
            "TOKEN-13",
            Must,
            30,
            "the host's token has key length 32 and the key the host handshakes with",
            token_key
        ),
        hcase!(
            "TOKEN-15/consumed-token-refused",
            "TOKEN-15",
            Must,
            60,
            "a token that paired once gets CLOSE TOKEN_REJECTED on a second pairing",
            token_consumed
        ),
        // ---- chapter 4: the secure channel ----
        hcase!(
            "CHAN-1/ik-handshake",
            "CHAN-1",
            Must,
            30,
            "a controller completes Noise_IK_25519_ChaChaPoly_BLAKE2s as initiator and talks",
            chan_ik
        ),
        hcase!(
            "CHAN-2/wrong-prologue",
            "CHAN-2",
            Must,
            30,
            "message 1 made for another session id, workspace or host key gets HANDSHAKE_FAILED",
            chan_prologue
        ),
        hcase!(
            "CHAN-3/malformed-payload",
            "CHAN-3",
            Must,
            30,
            "message-1 payloads with a bad version, kind, length, name or trailing byte get HANDSHAKE_FAILED",
            chan_payload
        ),
        hcase!(
            "CHAN-4/malformed-timestamp",
            "CHAN-4",
            Must,
            30,
            "timestamps with nanoseconds >= 10^9 or a label outside [2^62, 2^63) get HANDSHAKE_FAILED",
            chan_timestamp
        ),
        hcase!(
            "CHAN-6/host-info",
            "CHAN-6",
            Must,
            30,
            "message 2 carries 0x01 and a host-info object with every member",
            chan_host_info
        ),
        hcase!(
            "CHAN-7/low-order-ephemeral",
            "CHAN-7",
            Must,
            30,
            "message 1 with a low-order ephemeral key gets HANDSHAKE_FAILED",
            chan_low_order
        ),
        hcase!(
            "CHAN-8/tampered-message-1",
            "CHAN-8",
            Must,
            30,
            "a flipped bit or a cut in message 1 gets HANDSHAKE_FAILED and changes no state",
            chan_tampered_msg1
        ),
        hcase!(
            "CHAN-9/unpaired-device",
            "CHAN-9",
            Must,
            30,
            "a SESSION from a key that never paired gets NOT_AUTHORIZED",
            chan_unpaired
        ),
        hcase!(
            "CHAN-9/revoked-device",
            "CHAN-9",
            Must,
            60,
            "a SESSION from a revoked device gets NOT_AUTHORIZED",
            chan_revoked
        ),
        // Time limits sized for the longest age the runner tests
        // (host::MAX_TESTABLE_INACTIVE, 600 s): the age plus the margin, then a minute.
        hcase!(
            slow "CHAN-9/inactive-device",
            "CHAN-9",
            Must,
            670,
            "a device idle longer than the host's inactivity age gets NOT_AUTHORIZED, and pairs again with a fresh token",
            chan_inactive
        ),
        hcase!(
            slow "CHAN-9/active-within-age",
            "CHAN-9",
            Must,
            780,
            "a device that reconnects within the inactivity age of its last handshake, twice, is accepted",
            chan_active_within_age
        ),
        hcase!(
            "CHAN-10/replayed-message-1",
            "CHAN-10",
            Must,
            30,
            "the same OPEN sent again after its session ended gets REPLAYED",
            chan_replayed
        ),
        hcase!(
            "CHAN-10/timestamp-not-newer",
            "CHAN-10",
            Must,
            30,
            "message 1 with the last accepted timestamp, or an older one, gets REPLAYED",
            chan_not_newer
        ),
        hcase!(
            "CHAN-11/future-timestamp",
            "CHAN-11",
            Must,
            30,
            "a timestamp 1000 s ahead gets CLOCK_SKEW and is not recorded",
            chan_clock_skew
        ),
        hcase!(
            "CHAN-12/unknown-token",
            "CHAN-12",
            Must,
            30,
            "a PAIR with a token id the host never minted gets TOKEN_REJECTED",
            chan_unknown_token
        ),
        hcase!(
            "CHAN-12/wrong-secret",
            "CHAN-12",
            Must,
            60,
            "a PAIR with a wrong secret gets TOKEN_REJECTED and does not consume the token",
            chan_wrong_secret
        ),
        hcase!(slow "CHAN-12/expired-token", "CHAN-12", Must, 60,
            "a PAIR with an expired token gets TOKEN_REJECTED", chan_expired_token),
        hcase!(alone "CHAN-14/handshake-rate-limit", "CHAN-14", Must, 60,
            "a burst of message 1s beyond 100 plus 50 per second gets RATE_LIMITED", chan_rate_limit),
        hcase!(
            "CHAN-16/one-message-per-frame",
            "CHAN-16",
            Must,
            60,
            "every DATA from the host is one transport message of one command message",
            chan_one_message
        ),
        hcase!(
            "CHAN-17/reordered",
            "CHAN-17",
            Must,
            30,
            "transport message 1 sent before message 0 gets DECRYPT_FAILED",
            chan_reordered
        ),
        hcase!(
            "CHAN-17/replayed",
            "CHAN-17",
            Must,
            30,
            "a transport message sent twice gets DECRYPT_FAILED",
            chan_replayed_transport
        ),
        hcase!(
            "CHAN-17/reflected",
            "CHAN-17",
            Must,
            30,
            "the host's own transport message sent back gets DECRYPT_FAILED",
            chan_reflected
        ),
        hcase!(
            "CHAN-18/tampered-ciphertext",
            "CHAN-18",
            Must,
            30,
            "a flipped tag byte gets DECRYPT_FAILED and the session processes nothing more",
            chan_tampered
        ),
        hcase!(
            "CHAN-18/short-message",
            "CHAN-18",
            Must,
            30,
            "a 15-byte transport message gets DECRYPT_FAILED",
            chan_short
        ),
        hcase!(slow "CHAN-19/rekey", "CHAN-19", Must, 300,
            "both directions rekey after nonce 65535: 65540 requests are all answered", chan_rekey),
        hcase!(
            "CHAN-21/nonce-encoding",
            "CHAN-21",
            Must,
            30,
            "transport messages with nonces 0..5 decrypt both ways (little-endian counter)",
            chan_nonces
        ),
        hcase!(
            "CHAN-25/host-info-size",
            "CHAN-25",
            Must,
            30,
            "the host-info payload of message 2 is at most 4096 bytes",
            chan_host_info_size
        ),
        hcase!(alone "CHAN-26/remote-access-off", "CHAN-26", Must, 60,
            "with remote access off, message 1 gets REMOTE_ACCESS_DISABLED", chan_remote_off),
        hcase!(
            "CHAN-27/device-recorded",
            "CHAN-27",
            Must,
            30,
            "a paired device can open sessions, and its pairing timestamp counts as accepted",
            chan_recorded
        ),
        hcase!(
            "CHAN-28/message-2-first",
            "CHAN-28",
            Must,
            30,
            "the first DATA of a session is message 2",
            chan_msg2_first
        ),
        hcase!(
            "CHAN-29/clock-before-authorization",
            "CHAN-29",
            Must,
            30,
            "an unpaired key with a future timestamp gets CLOCK_SKEW, not NOT_AUTHORIZED",
            chan_order_clock
        ),
        hcase!(
            "CHAN-29/clock-before-token",
            "CHAN-29",
            Must,
            30,
            "a PAIR with an unknown token and a future timestamp gets CLOCK_SKEW",
            chan_order_token
        ),
        hcase!(
            "CHAN-29/noise-before-clock",
            "CHAN-29",
            Must,
            30,
            "a wrong prologue with a future timestamp gets HANDSHAKE_FAILED",
            chan_order_noise
        ),
        // ---- chapter 5: the command protocol ----
        hcase!(
            "CMD-1/batch-refused",
            "CMD-1",
            Must,
            30,
            "a JSON-RPC batch gets -32600 and none of its requests runs",
            cmd_batch
        ),
        hcase!(
            "CMD-2/largest-message",
            "CMD-2",
            Must,
            30,
            "a 65519-byte request is read and answered, not refused as too large",
            cmd_largest
        ),
        hcase!(
            "CMD-3/bad-text",
            "CMD-3",
            Must,
            30,
            "a BOM, invalid UTF-8 and text that is not one JSON value get -32700 with id null",
            cmd_bad_text
        ),
        hcase!(
            "CMD-4/nesting",
            "CMD-4",
            Must,
            30,
            "33 levels of nesting get -32700; 32 levels are read",
            cmd_nesting
        ),
        hcase!(
            "CMD-5/duplicate-member",
            "CMD-5",
            Must,
            30,
            "duplicate member names, also escaped and nested, get -32700",
            cmd_duplicate
        ),
        hcase!(
            "CMD-6/not-an-object",
            "CMD-6",
            Must,
            30,
            "an array, a number and a string message get -32600",
            cmd_not_object
        ),
        hcase!(
            "CMD-7/jsonrpc-version",
            "CMD-7",
            Must,
            30,
            "a missing jsonrpc, \"1.0\" and the number 2.0 get -32600 with the id echoed",
            cmd_version
        ),
        hcase!(
            "CMD-8/bad-id",
            "CMD-8",
            Must,
            30,
            "ids null, true, 1.5, 1e2, 2^53, an array and a 65-byte string get -32600 with id null",
            cmd_bad_id
        ),
        hcase!(
            "CMD-9/invalid-request",
            "CMD-9",
            Must,
            30,
            "a non-string method, method with result, string params, and no method nor id get -32600",
            cmd_invalid_request
        ),
        hcase!(
            "CMD-10/bad-error-object-dropped",
            "CMD-10",
            Must,
            30,
            "an error response with a malformed error object is refused without an answer",
            cmd_bad_error_object
        ),
        hcase!(
            "CMD-11/answers-and-continues",
            "CMD-11",
            Must,
            30,
            "refusals carry the readable id, responses are not answered, and the session goes on",
            cmd_answers
        ),
        hcase!(
            "CMD-12/unknown-method",
            "CMD-12",
            Must,
            30,
            "unknown and wrong-direction methods get -32601; unknown notifications are ignored",
            cmd_unknown_method
        ),
        hcase!(
            "CMD-13/invalid-params",
            "CMD-13",
            Must,
            30,
            "array params, a missing or mistyped member get -32602; bad notifications are ignored",
            cmd_invalid_params
        ),
        hcase!(
            "CMD-14/each-request-answered-once",
            "CMD-14",
            Must,
            30,
            "twelve requests with integer and string ids get one answer each, with their ids",
            cmd_answered_once
        ),
        hcase!(
            "CMD-15/initialize-first",
            "CMD-15",
            Must,
            30,
            "requests before initialize get -32002; a bad version -32602; a second initialize -32600",
            cmd_initialize
        ),
        hcase!(
            "CMD-16/capabilities",
            "CMD-16",
            Must,
            30,
            "methods of capabilities the host does not list get -32601",
            cmd_capabilities
        ),
        hcase!(
            "CMD-34/argv-cwd-stdin",
            "CMD-34",
            Must,
            60,
            "command/exec runs an argument vector without a shell, in cwd, with stdin at EOF; bad cwd -32602",
            cmd_exec_basics
        ),
        hcase!(
            "CMD-34/process-id-in-use",
            "CMD-34",
            Must,
            60,
            "a second command/exec with a running process's id gets -32602",
            cmd_exec_pid_in_use
        ),
        hcase!(
            "CMD-35/output-in-order",
            "CMD-35",
            Must,
            60,
            "stdout and stderr arrive as deltas in the order written",
            cmd_output_order
        ),
        hcase!(
            "CMD-36/answer-is-last",
            "CMD-36",
            Must,
            60,
            "the command/exec answer comes after every delta of its process",
            cmd_answer_last
        ),
        hcase!(
            "CMD-37/terminate-kills-group",
            "CMD-37",
            Must,
            60,
            "command/exec/terminate kills the whole process group, children that ignore SIGTERM included",
            cmd_kill_group
        ),
        hcase!(
            "CMD-38/terminate",
            "CMD-38",
            Must,
            60,
            "terminate of an unknown process gets -32016; of a running one {} then SIGKILL",
            cmd_terminate
        ),
        hcase!(
            "CMD-39/exit-status",
            "CMD-39",
            Must,
            60,
            "exit 3 gives exitCode 3 and signal null; kill -9 gives exitCode null and SIGKILL",
            cmd_exit_status
        ),
        hcase!(
            "CMD-40/delta-chunks",
            "CMD-40",
            Must,
            60,
            "100000 bytes of output arrive in base64 deltas of 1 to 16384 bytes",
            cmd_chunks
        ),
        hcase!(
            "CMD-41/output-cap",
            "CMD-41",
            Must,
            60,
            "with outputCap 1000 exactly 1000 bytes are forwarded, capReached, and the process ends",
            cmd_output_cap
        ),
        hcase!(
            "CMD-42/time-limit",
            "CMD-42",
            Must,
            60,
            "with timeoutMs 500 a sleeping process is killed and reported timedOut",
            cmd_time_limit
        ),
        hcase!(
            "CMD-43/limit-ranges",
            "CMD-43",
            Must,
            30,
            "timeoutMs 0 or 86400001 and outputCap 67108865 or -1 get -32602",
            cmd_limit_ranges
        ),
        hcase!(
            "CMD-44/read-only-write-denied",
            "CMD-44",
            Must,
            60,
            "a write under an enforced read-only sandbox does not happen",
            cmd_read_only
        ),
        hcase!(
            "CMD-44/workspace-write-outside-denied",
            "CMD-44",
            Must,
            60,
            "under workspace-write a write inside cwd happens and one outside does not",
            cmd_workspace_write
        ),
        hcase!(
            "CMD-44/network-denied",
            "CMD-44",
            Must,
            90,
            "under an enforced read-only or workspace-write sandbox with network denied, a connection to the runner's loopback listener does not happen",
            cmd_network_denied
        ),
        hcase!(
            "CMD-45/sandbox-report",
            "CMD-45",
            Must,
            60,
            "the sandbox report of command/exec is complete and consistent with initialize",
            cmd_sandbox_report
        ),
        hcase!(
            "CMD-46/unenforceable-mode",
            "CMD-46",
            Must,
            60,
            "a mode the host cannot enforce gets -32012 unless it degrades; danger-full-access never does",
            cmd_unenforceable
        ),
        hcase!(alone "CMD-55/remote-access-off-in-session", "CMD-55", Must, 60,
            "after remote access is switched off, a request of an open session gets -32010", cmd_remote_off),
        hcase!(
            "CMD-56/revoked-in-session",
            "CMD-56",
            Must,
            60,
            "after the device is revoked, a request of its open session gets -32011",
            cmd_revoked
        ),
        hcase!(
            "CMD-57/cancel-exec",
            "CMD-57",
            Should,
            60,
            "notifications/cancelled for a running command/exec gets it answered at once",
            cmd_cancel
        ),
        hcase!(
            "CMD-58/in-flight-limit",
            "CMD-58",
            Must,
            90,
            "with 64 requests in flight, the 65th gets -32001 at once",
            cmd_in_flight
        ),
        hcase!(
            "CMD-61/check-order",
            "CMD-61",
            Must,
            30,
            "envelope before initialization, initialization before method, method before params",
            cmd_order
        ),
        // ---- chapter 7 ----
        hcase!(
            "SEC-13/revocation-ends-sessions",
            "SEC-13",
            Must,
            60,
            "after revocation the device's open session is closed NOT_AUTHORIZED and its request not run",
            sec_revoked
        ),
        hcase!(
            "SEC-13/revocation-closes-idle-session",
            "SEC-13",
            Must,
            60,
            "after revocation the device's open session is closed NOT_AUTHORIZED within 5 s though it sends nothing",
            sec_revoked_idle
        ),
        hcase!(
            "SEC-19/untrusted-relay-certificate",
            "SEC-19",
            Must,
            60,
            "a host told to join a wss:// relay with an untrusted certificate does not complete TLS",
            sec_untrusted_cert
        ),
        hcase!(
            "SEC-21/tag-before-acting",
            "SEC-21",
            Must,
            60,
            "a command/exec whose tag does not verify is not run",
            sec_tag_first
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// helpers

fn close_is(code: CloseCode, want: CloseCode, what: &str) -> Res<()> {
    check(code == want, || {
        format!("{what}: expected CLOSE {want}, got CLOSE {code}")
    })
}

/// Opens a link, sends `msg1` in `OPEN` and returns the `CLOSE` code, failing if the host
/// answers with message 2.
async fn refused_raw(
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

async fn expect_refused_raw(cx: &Context, name: &str, msg1: Vec<u8>, want: CloseCode) -> Res<()> {
    let code = refused_raw(cx, name, random_session(), msg1).await?;
    close_is(code, want, name)
}

fn future_ts(secs: u64) -> Timestamp {
    Timestamp::from_unix(UnixTime::now().saturating_add(Duration::from_secs(secs)))
}

fn ts_bytes(secs_label: u64, nanos: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    let (s, n) = b.split_at_mut(8);
    s.copy_from_slice(&secs_label.to_be_bytes());
    n.copy_from_slice(&nanos.to_be_bytes());
    b
}

/// A session of the paired device, initialized.
async fn ready(cx: &Context, name: &str) -> Res<ChannelSession> {
    let mut s = session(cx, name).await?;
    s.initialize().await?;
    Ok(s)
}

fn error_code(answer: &Value) -> Option<i64> {
    answer
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
}

fn expect_error(answer: &Value, code: i64, what: &str) -> Res<()> {
    check(error_code(answer) == Some(code), || {
        format!("{what}: expected error {code}, got {answer}")
    })
}

/// Sends `bytes` and expects an error response `code` whose id is `id`.
async fn refuse(s: &mut ChannelSession, bytes: &[u8], code: i64, id: Value, what: &str) -> Res<()> {
    s.send_plain(bytes).await?;
    let answer = s.answer_to(&id, HOST_WAIT).await.map_err(|e| match e {
        Stop::Fail(r) => Stop::Fail(format!("{what}: {r}")),
        other => other,
    })?;
    expect_error(&answer, code, what)
}

/// The session is still usable: an unknown method gets an answer (any).
async fn still_answers(s: &mut ChannelSession, what: &str) -> Res<()> {
    let a = s
        .call("tether-conformance/probe", Value::Null)
        .await
        .map_err(|e| match e {
            Stop::Fail(r) => Stop::Fail(format!(
                "after {what} the session stopped answering (CMD-11): {r}"
            )),
            other => other,
        })?;
    check(a.get("error").is_some(), || {
        format!("an unknown method got a result: {a}")
    })
}

fn exec_params(cmd: &[&str], cwd: &str) -> Value {
    json!({"command": cmd, "cwd": cwd, "sandbox": "danger-full-access", "timeoutMs": 60000})
}

pub(crate) fn sh(script: &str, cwd: &str) -> Value {
    exec_params(&["sh", "-c", script], cwd)
}

pub(crate) fn result_of<'a>(run: &'a ExecRun, what: &str) -> Res<&'a Value> {
    run.result()
        .ok_or_else(|| Stop::Fail(format!("{what}: command/exec failed: {}", run.answer)))
}

/// A session ready for `command/exec`, with a fresh directory on the host.
pub(crate) async fn exec_ready(cx: &Context, name: &str) -> Res<(ChannelSession, String)> {
    let mut s = ready(cx, name).await?;
    s.need_exec()?;
    let base = s.work_dir(cx)?;
    let dir = format!(
        "{}/tether-conf-{}",
        base.trim_end_matches('/'),
        hex::encode(random_bytes::<6>())
    );
    let run = s
        .exec(exec_params(&["mkdir", "-p", &dir], &base), HOST_WAIT)
        .await?;
    check(run.exit_code() == Some(0), || {
        format!("mkdir -p {dir} on the host failed: {}", run.answer)
    })?;
    Ok((s, dir))
}

/// Whether `path` exists on the host (asked with `test -e`, unsandboxed).
pub(crate) async fn exists(s: &mut ChannelSession, path: &str, cwd: &str) -> Res<bool> {
    let run = s
        .exec(exec_params(&["test", "-e", path], cwd), HOST_WAIT)
        .await?;
    match run.exit_code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => hfail(format!("test -e {path} on the host: {}", run.answer)),
    }
}

// ---------------------------------------------------------------------------------------
// TOKEN

/// The host's token read by the runner's own decoder ([`token_check`]), not by the
/// `tether-proto` decoder the runner pairs with: a fault shared by an encoder and a decoder
/// from one code base does not cancel out. A structural fault fails every `TOKEN-*` case
/// with its spec error name and requirement.
async fn host_token(cx: &Context) -> Res<(Identity, RawToken)> {
    let id = paired(cx).await?.identity;
    match token_check::read(&id.token_text) {
        Ok(raw) => Ok((id, raw)),
        Err(f) => hfail(format!("the host's token is not well-formed: {f}")),
    }
}

async fn token_layout(cx: Arc<Context>) -> Res<()> {
    let (id, raw) = host_token(&cx).await?;
    // The two readings agree field by field: the layout is unambiguous (TOKEN-1).
    let t = &id.token;
    let fields = [
        ("host key", raw.host_key.as_slice() == t.host_key()),
        ("token id", raw.token_id.as_slice() == t.token_id()),
        (
            "token secret",
            raw.token_secret.as_slice() == t.token_secret(),
        ),
        ("expiry", raw.expires_at == t.expires_at()),
        ("workspace", raw.workspace == t.workspace().as_bytes()),
        ("relay URL", raw.relay_url == t.relay_url().as_bytes()),
        (
            "host name",
            raw.host_name.as_deref() == t.host_name().map(str::as_bytes),
        ),
    ];
    for (what, same) in fields {
        check(same, || {
            format!("the {what} read by the spec's layout differs from the decoded token (TOKEN-1)")
        })?;
    }
    check(t.encode_binary() == raw.binary, || {
        "the token does not re-encode to the bytes the host wrote (TOKEN-1)".to_owned()
    })
}

async fn token_version(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    check(raw.version == 1, || {
        format!("version byte {:#04x}, expected 0x01", raw.version)
    })
}

async fn token_text(cx: Arc<Context>) -> Res<()> {
    let (id, raw) = host_token(&cx).await?;
    let canonical = format!("TETHER:{}", token_check::base32_encode(&raw.binary));
    check(canonical == id.token_text, || {
        "the text is not TETHER: and the canonical base32 of its bytes (TOKEN-3)".to_owned()
    })
}

async fn token_checksum(cx: Arc<Context>) -> Res<()> {
    // `read` verified the checksum over every byte before it (TOKEN-4); check the stored
    // bytes once more against the label and the body, independently of the read.
    let (_, raw) = host_token(&cx).await?;
    let body = raw
        .binary
        .get(..raw.binary.len().saturating_sub(4))
        .unwrap_or(&[]);
    check(token_check::checksum(body) == raw.checksum, || {
        format!(
            "checksum {} is not BLAKE2s of the label and the token's bytes",
            hex::encode(raw.checksum)
        )
    })
}

async fn token_flags(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    check(raw.flags & 0xfe == 0, || {
        format!("flags byte {:#04x} has reserved bits set", raw.flags)
    })?;
    check((raw.flags & 1 == 1) == raw.host_name.is_some(), || {
        "flag bit 0 disagrees with the presence of a host name".to_owned()
    })
}

async fn token_workspace(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    let host = host_target(&cx)?;
    if let Some(why) = token_check::workspace_fault(&raw.workspace) {
        return hfail(format!("{why} (TOKEN-7)"));
    }
    check(
        raw.workspace == host.relay.workspace.workspace.as_bytes(),
        || {
            format!(
                "the token names workspace {:?}, the host is reached in {:?}",
                String::from_utf8_lossy(&raw.workspace),
                host.relay.workspace.workspace
            )
        },
    )
}

async fn token_url(cx: Arc<Context>) -> Res<()> {
    let (_, raw) = host_token(&cx).await?;
    if let Some(why) = token_check::relay_url_fault(&raw.relay_url) {
        return hfail(format!("{why} (TOKEN-8)"));
    }
    if let Some(why) = raw
        .host_name
        .as_deref()
        .and_then(token_check::host_name_fault)
    {
        return hfail(format!("{why} (TOKEN-8)"));
    }
    Ok(())
}

async fn token_lifetime(cx: Arc<Context>) -> Res<()> {
    let (id, raw) = host_token(&cx).await?;
    let received = id.received_at.as_secs();
    check(raw.expires_at <= received + 600 + 2, || {
        format!(
            "the token expires {} s after the runner received it; at most 600 s are allowed",
            raw.expires_at.saturating_sub(received)
        )
    })?;
    check(raw.expires_at > received, || {
        format!(
            "the token expired {} s before the runner received it",
            received - raw.expires_at
        )
    })?;
    // Asked for an hour, the host refuses or mints at most 600 s (TOKEN-9).
    let host = host_target(&cx)?;
    if !host.admin.can_set_ttl() {
        return Ok(());
    }
    let asked = UnixTime::now().as_secs();
    match host.admin.mint_token(Some(3600)).await {
        Err(e) => {
            cx.log
                .note("runner", format!("a 3600 s token was refused: {e}"));
            Ok(())
        }
        Ok(None) => Ok(()),
        Ok(Some(text)) => {
            let long = token_check::read(&text).map_err(|f| {
                Stop::Fail(format!(
                    "the token minted for 3600 s is not well-formed: {f}"
                ))
            })?;
            check(long.expires_at <= asked + 600 + 2, || {
                format!(
                    "asked for a 3600 s token, the host minted one that expires {} s later (at most 600 s)",
                    long.expires_at.saturating_sub(asked)
                )
            })
        }
    }
}

async fn token_key(cx: Arc<Context>) -> Res<()> {
    // The pairing with this key completed (IK: the host proved it holds the private key),
    // so the key is the one the host handshakes with; here its length byte and bytes.
    let (id, raw) = host_token(&cx).await?;
    check(raw.key_len == 0x20, || {
        format!("key length byte {}, expected 0x20", raw.key_len)
    })?;
    check(raw.host_key == id.host_key(), || {
        "the host key in the token is not the key the runner paired with".to_owned()
    })
}

async fn pair_fresh(cx: &Context, token: &PairingToken, what: &str) -> Res<(Device, Opened)> {
    let identity = paired(cx).await?.identity;
    let mut device = Device::fresh(what);
    let ts = device.next_timestamp();
    let opened = open(
        cx,
        what,
        &identity,
        &device,
        &pair_payload(token, &device, ts),
    )
    .await?;
    Ok((device, opened))
}

async fn token_consumed(cx: Arc<Context>) -> Res<()> {
    paired(&cx).await?;
    let (_, token) = fresh_token(&cx, None).await?;
    let (_, first) = pair_fresh(&cx, &token, "first").await?;
    match first {
        Opened::Established(s) => s.close().await,
        Opened::Refused(code, _) => {
            return hfail(format!(
                "the first pairing with a fresh token got CLOSE {code}"
            ));
        }
    }
    let (_, second) = pair_fresh(&cx, &token, "second").await?;
    let code = second
        .refused("CLOSE TOKEN_REJECTED for a consumed token")
        .await?;
    close_is(
        code,
        CloseCode::TOKEN_REJECTED,
        "second pairing with one token",
    )
}

// ---------------------------------------------------------------------------------------
// CHAN

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

fn prologue_bytes(workspace: &str, key: &[u8; 32], session: SessionId) -> Res<Vec<u8>> {
    Prologue::new(workspace, key, session)
        .map(|p| p.as_bytes().to_vec())
        .map_err(|e| Stop::Fail(format!("prologue: {e}")))
}

async fn chan_payload(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let key = identity.host_key();
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
        let session = random_session();
        let msg1 = raw_message1(
            &device.private,
            &key,
            &prologue_bytes(identity.workspace(), &key, session)?,
            &payload,
        )?;
        let code = refused_raw(&cx, "ctl", session, msg1).await?;
        close_is(
            code,
            CloseCode::HANDSHAKE_FAILED,
            &format!("payload with {what}"),
        )?;
    }
    Ok(())
}

async fn chan_timestamp(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let key = identity.host_key();
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
        let session = random_session();
        let mut payload = vec![1u8, 0];
        payload.extend_from_slice(&t);
        let msg1 = raw_message1(
            &device.private,
            &key,
            &prologue_bytes(identity.workspace(), &key, session)?,
            &payload,
        )?;
        let code = refused_raw(&cx, "ctl", session, msg1).await?;
        close_is(
            code,
            CloseCode::HANDSHAKE_FAILED,
            &format!("timestamp with {what}"),
        )?;
    }
    Ok(())
}

async fn chan_host_info(cx: Arc<Context>) -> Res<()> {
    // Message 2 was read by the strict decoder (CHAN-6): version byte, one JSON object,
    // every member of the table with its type, no repeats.
    let s = session(&cx, "ctl").await?;
    let ok = s.info.protocol == "tether/1" && !s.info.name.is_empty() && !s.info.os.is_empty();
    let info = format!("{:?}", s.info);
    s.close().await;
    check(ok, || format!("host info {info} is not complete"))
}

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

async fn chan_unpaired(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let mut device = Device::fresh("unpaired");
    let ts = device.next_timestamp();
    let opened = open(
        &cx,
        "ctl",
        &identity,
        &device,
        &HandshakePayload::Session { timestamp: ts },
    )
    .await?;
    let code = opened
        .refused("CLOSE NOT_AUTHORIZED for a key that never paired")
        .await?;
    close_is(code, CloseCode::NOT_AUTHORIZED, "unpaired key")
}

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

async fn chan_revoked(cx: Arc<Context>) -> Res<()> {
    let (mut device, s) = pair_for_revocation(&cx).await?;
    s.close().await;
    revoke(&cx, &device).await?;
    let identity = paired(&cx).await?.identity;
    let ts = device.next_timestamp();
    let opened = open(
        &cx,
        "ctl",
        &identity,
        &device,
        &HandshakePayload::Session { timestamp: ts },
    )
    .await?;
    let code = opened
        .refused("CLOSE NOT_AUTHORIZED for a revoked device")
        .await?;
    close_is(code, CloseCode::NOT_AUTHORIZED, "revoked device")
}

/// How much longer than the host's inactivity age `CHAN-9/inactive-device` stays idle: the
/// host may count the age in whole seconds (the reference host does) and records the
/// last-seen time when it reads message 1, before the runner has message 2; two seconds
/// cover both.
const INACTIVE_MARGIN: Duration = Duration::from_secs(2);

/// The host's inactivity age, or a skip naming the option (`CHAN-9`).
fn max_inactive(cx: &Context) -> Res<Duration> {
    let host = host_target(cx)?;
    let Some(age) = host.max_inactive else {
        return skip(
            "needs the host's inactivity age: configure the host with a short one and give --max-inactive SECONDS",
        );
    };
    if age < host::MIN_TESTABLE_INACTIVE || age > host::MAX_TESTABLE_INACTIVE {
        return skip(format!(
            "the inactivity age {} s is outside what a run can test ({} to {} s)",
            age.as_secs_f64(),
            host::MIN_TESTABLE_INACTIVE.as_secs(),
            host::MAX_TESTABLE_INACTIVE.as_secs()
        ));
    }
    Ok(age)
}

/// The established session of `opened`, or a failure naming `what`.
async fn established(opened: Opened, what: &str) -> Res<ChannelSession> {
    match opened {
        Opened::Established(s) => Ok(*s),
        Opened::Refused(code, _) => hfail(format!("{what}: got CLOSE {code}")),
    }
}

/// Opens a SESSION of `device` (the next timestamp).
async fn device_session(
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
async fn idle(cx: &Context, dur: Duration, why: &str) {
    cx.log.note(
        "runner",
        format!("idle for {:.1} s: {why}", dur.as_secs_f64()),
    );
    tokio::time::sleep(dur).await;
}

async fn chan_inactive(cx: Arc<Context>) -> Res<()> {
    let age = max_inactive(&cx)?;
    let identity = paired(&cx).await?.identity;
    let (_, token) = fresh_token(&cx, None).await?;
    let (mut device, opened) = pair_fresh(&cx, &token, "inactive").await?;
    established(opened, "pairing a fresh device")
        .await?
        .close()
        .await;
    // The pairing is the device's last handshake; the age runs from it.
    idle(
        &cx,
        age + INACTIVE_MARGIN,
        "longer than the host's inactivity age",
    )
    .await;
    let code = device_session(&cx, "after-idle", &identity, &mut device)
        .await?
        .refused("CLOSE NOT_AUTHORIZED for a device idle longer than the inactivity age")
        .await?;
    close_is(
        code,
        CloseCode::NOT_AUTHORIZED,
        "a device idle longer than the inactivity age",
    )?;
    // Expired, not lost: it pairs again with a fresh token and opens sessions again.
    let (_, token) = fresh_token(&cx, None).await?;
    let ts = device.next_timestamp();
    let opened = open(
        &cx,
        "pair-again",
        &identity,
        &device,
        &pair_payload(&token, &device, ts),
    )
    .await?;
    established(
        opened,
        "pairing the expired device again with a fresh token",
    )
    .await?
    .close()
    .await;
    let opened = device_session(&cx, "after-pairing-again", &identity, &mut device).await?;
    established(opened, "a session after pairing again")
        .await?
        .close()
        .await;
    Ok(())
}

async fn chan_active_within_age(cx: Arc<Context>) -> Res<()> {
    let age = max_inactive(&cx)?;
    let identity = paired(&cx).await?.identity;
    let (_, token) = fresh_token(&cx, None).await?;
    let (mut device, opened) = pair_fresh(&cx, &token, "active").await?;
    established(opened, "pairing a fresh device")
        .await?
        .close()
        .await;
    // Two sessions, each 0.6 of the age after the device's last handshake. The 0.4 of the
    // age left before expiry covers the handshake on a loaded machine (4 s for an age of
    // 10 s). The second comes 1.2 ages after the pairing, so a host that counts the age
    // from the pairing instead of from the last handshake refuses it (clearly so from an
    // age of 10 s, 2 s past it, on).
    let step = age.mul_f64(0.6);
    for (i, what) in ["first", "second"].into_iter().enumerate() {
        idle(&cx, step, "well within the host's inactivity age").await;
        let opened = device_session(&cx, what, &identity, &mut device).await?;
        let after = if i == 0 {
            "the pairing"
        } else {
            "the last session"
        };
        let mut s = established(
            opened,
            &format!(
                "a session {:.1} s after {after}, within the inactivity age of {:.1} s",
                step.as_secs_f64(),
                age.as_secs_f64()
            ),
        )
        .await?;
        still_answers(&mut s, "a session within the inactivity age").await?;
        s.close().await;
    }
    Ok(())
}

async fn chan_replayed(cx: Arc<Context>) -> Res<()> {
    let session_id = random_session();
    let (opened, msg1) = session_capture(&cx, "first", None, session_id).await?;
    match opened {
        Opened::Established(s) => s.close().await,
        Opened::Refused(code, _) => return hfail(format!("the session was refused: {code}")),
    }
    // Let the relay forget the session id before it is used again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let code = refused_raw(&cx, "replay", session_id, msg1).await?;
    close_is(code, CloseCode::REPLAYED, "the same OPEN again")
}

async fn chan_not_newer(cx: Arc<Context>) -> Res<()> {
    session(&cx, "fresh").await?.close().await;
    let (last, _) = host::paired_timestamps(&cx).await?;
    let code = session_with(&cx, "same", Some(last))
        .await?
        .refused("CLOSE REPLAYED for the last accepted timestamp")
        .await?;
    close_is(
        code,
        CloseCode::REPLAYED,
        "the last accepted timestamp again",
    )?;
    let older = Timestamp::from_unix(last.to_unix().saturating_sub(Duration::from_secs(5)));
    let code = session_with(&cx, "older", Some(older))
        .await?
        .refused("CLOSE REPLAYED for an older timestamp")
        .await?;
    close_is(code, CloseCode::REPLAYED, "a timestamp 5 s older")?;
    session(&cx, "newer").await?.close().await;
    Ok(())
}

async fn chan_clock_skew(cx: Arc<Context>) -> Res<()> {
    let code = session_with(&cx, "future", Some(future_ts(1000)))
        .await?
        .refused("CLOSE CLOCK_SKEW for a timestamp 1000 s ahead")
        .await?;
    close_is(code, CloseCode::CLOCK_SKEW, "a timestamp 1000 s ahead")?;
    // Not recorded: a timestamp of now is still newer than the last accepted one.
    session(&cx, "now")
        .await
        .map_err(|e| match e {
            Stop::Fail(r) => Stop::Fail(format!(
                "after the refused future timestamp, {r} (was it recorded? CHAN-11)"
            )),
            other => other,
        })?
        .close()
        .await;
    Ok(())
}

async fn chan_unknown_token(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let mut device = Device::fresh("unknown-token");
    let ts = device.next_timestamp();
    let payload = HandshakePayload::Pair {
        timestamp: ts,
        token_id: random_bytes::<16>(),
        token_secret: random_bytes::<32>(),
        device_name: device.name.clone(),
    };
    let code = open(&cx, "ctl", &identity, &device, &payload)
        .await?
        .refused("CLOSE TOKEN_REJECTED for an unknown token")
        .await?;
    close_is(code, CloseCode::TOKEN_REJECTED, "unknown token id")
}

async fn chan_wrong_secret(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let (_, token) = fresh_token(&cx, None).await?;
    let mut device = Device::fresh("wrong-secret");
    let ts = device.next_timestamp();
    let mut secret = *token.token_secret();
    if let Some(b) = secret.get_mut(31) {
        *b ^= 0x80;
    }
    let payload = HandshakePayload::Pair {
        timestamp: ts,
        token_id: *token.token_id(),
        token_secret: secret,
        device_name: device.name.clone(),
    };
    let code = open(&cx, "wrong", &identity, &device, &payload)
        .await?
        .refused("CLOSE TOKEN_REJECTED for a wrong secret")
        .await?;
    close_is(code, CloseCode::TOKEN_REJECTED, "wrong secret")?;
    let ts = device.next_timestamp();
    match open(
        &cx,
        "right",
        &identity,
        &device,
        &pair_payload(&token, &device, ts),
    )
    .await?
    {
        Opened::Established(s) => {
            s.close().await;
            Ok(())
        }
        Opened::Refused(code, _) => hfail(format!(
            "after a wrong secret, the right secret got CLOSE {code}: the failed attempt consumed the token"
        )),
    }
}

async fn chan_expired_token(cx: Arc<Context>) -> Res<()> {
    let host = host_target(&cx)?;
    if !host.admin.can_set_ttl() {
        return skip("needs a token with a short lifetime: give a --pair-cmd with {ttl}");
    }
    let identity = paired(&cx).await?.identity;
    let (_, token) = fresh_token(&cx, Some(1)).await?;
    let wait = token
        .expires_at()
        .saturating_sub(UnixTime::now().as_secs())
        .saturating_add(1);
    check(wait <= 30, || {
        format!("the 1-second token expires in {wait} s")
    })?;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let mut device = Device::fresh("expired");
    let ts = device.next_timestamp();
    let code = open(
        &cx,
        "ctl",
        &identity,
        &device,
        &pair_payload(&token, &device, ts),
    )
    .await?
    .refused("CLOSE TOKEN_REJECTED for an expired token")
    .await?;
    close_is(code, CloseCode::TOKEN_REJECTED, "expired token")
}

/// Sessions `CHAN-14/handshake-rate-limit` opens per controller link and wave.
const BURST_PER_LINK: usize = 15;

async fn chan_rate_limit(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let host = host_target(&cx)?;
    let key = identity.host_key();
    // Four controller links, 15 sessions each: below the relay's 16 per controller link
    // and, at 60, below its 64 per host link (LINK-20) with room for sessions other cases
    // have not finished closing.
    let mut links = Vec::new();
    for i in 0..4 {
        links.push(controller(&cx, &format!("ctl-{i}"), &host.relay.workspace).await?);
    }
    let junk = |n: usize| -> Vec<u8> {
        let mut m = vec![9u8; 32];
        m.extend((0..n).map(|i| u8::try_from(i % 256).unwrap_or(0)));
        m
    };
    let start = Instant::now();
    let (mut limited, mut failed) = (0usize, 0usize);
    for _wave in 0..6 {
        for link in &mut links {
            for _ in 0..BURST_PER_LINK {
                link.send(&RelayFrame::Open {
                    session: random_session(),
                    host_key: key,
                    handshake: junk(78),
                })
                .await?;
            }
        }
        for link in &mut links {
            for _ in 0..BURST_PER_LINK {
                match link.recv(Duration::from_secs(10)).await? {
                    RelayFrame::Close { code, .. } if code == CloseCode::RATE_LIMITED => {
                        limited += 1
                    }
                    RelayFrame::Close { code, .. } if code == CloseCode::HANDSHAKE_FAILED => {
                        failed += 1
                    }
                    other => return hfail(format!("during the burst: {}", describe(&other))),
                }
            }
        }
        if limited > 0 {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Let the bucket fill again for the cases that follow.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cx.log.note(
        "runner",
        format!("{failed} handshakes processed, {limited} rate-limited in {secs:.2} s"),
    );
    check(limited > 0, || {
        format!(
            "{failed} message 1s in {secs:.2} s were all processed; the budget is 100 plus 50 per second"
        )
    })?;
    // 100 at once, 50 per second after; the runner's own pairing and a few other
    // handshakes may have spent some.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let allowed = 100 + (50.0 * secs).ceil() as usize + 5;
    check(failed <= allowed, || {
        format!("{failed} message 1s were processed in {secs:.2} s; at most {allowed} are allowed")
    })
}

async fn chan_one_message(cx: Arc<Context>) -> Res<()> {
    // recv() decrypts each DATA as one transport message and parses exactly one JSON-RPC
    // message from it; a large output gives many frames.
    let mut s = ready(&cx, "ctl").await?;
    for _ in 0..5 {
        still_answers(&mut s, "a request").await?;
    }
    if s.has_capability(tether_proto::cmd::capability::COMMAND_EXEC) {
        let dir = s.work_dir(&cx)?;
        let run = s
            .exec(
                exec_params(&["head", "-c", "100000", "/dev/zero"], &dir),
                Duration::from_secs(30),
            )
            .await?;
        check(run.stdout.len() == 100_000, || {
            format!("100000 bytes of output arrived as {}", run.stdout.len())
        })?;
    }
    s.close().await;
    Ok(())
}

async fn expect_decrypt_failed(s: &mut ChannelSession, what: &str) -> Res<()> {
    loop {
        match s.next_frame(HOST_WAIT).await {
            Ok(Err(code)) => return close_is(code, CloseCode::DECRYPT_FAILED, what),
            // Answers to what came before are fine.
            Ok(Ok(_)) => {}
            Err(Stop::Fail(r)) => {
                return hfail(format!("{what}: expected CLOSE DECRYPT_FAILED: {r}"));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn chan_reordered(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let mut first = Vec::new();
    let mut second = Vec::new();
    let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"c","version":"1"},"protocolVersion":"tether/1"}}"#;
    s.transport
        .encrypt(init, &mut first)
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    s.transport
        .encrypt(br#"{"jsonrpc":"2.0","method":"initialized"}"#, &mut second)
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    s.send_ciphertext(second).await?;
    expect_decrypt_failed(&mut s, "transport nonce 1 before nonce 0").await
}

async fn chan_replayed_transport(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let mut first = Vec::new();
    let probe = br#"{"jsonrpc":"2.0","id":1,"method":"tether-conformance/probe"}"#;
    s.transport
        .encrypt(probe, &mut first)
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    s.send_ciphertext(first.clone()).await?;
    s.answer_to(&json!(1), HOST_WAIT).await?;
    s.send_ciphertext(first).await?;
    expect_decrypt_failed(&mut s, "transport message 0 sent twice").await
}

async fn chan_reflected(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":1,"method":"tether-conformance/probe"}"#)
        .await?;
    let answer = match s.next_frame(HOST_WAIT).await? {
        Ok(p) => p,
        Err(code) => return hfail(format!("the host closed the session: {code}")),
    };
    // The runner's receive counter moves on; the host must not accept its own message.
    let mut plain = Vec::new();
    let _ = s.transport.decrypt(&answer, &mut plain);
    s.send_ciphertext(answer).await?;
    expect_decrypt_failed(&mut s, "the host's own message sent back").await
}

async fn chan_tampered(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let mut c = Vec::new();
    s.transport
        .encrypt(
            br#"{"jsonrpc":"2.0","id":1,"method":"tether-conformance/probe"}"#,
            &mut c,
        )
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    if let Some(b) = c.last_mut() {
        *b ^= 0x01;
    }
    s.send_ciphertext(c).await?;
    expect_decrypt_failed(&mut s, "a flipped tag byte").await?;
    // Nothing more is processed: a valid next message gets no DATA back.
    s.send_plain(br#"{"jsonrpc":"2.0","id":2,"method":"tether-conformance/probe"}"#)
        .await?;
    match s.next_frame(Duration::from_secs(2)).await {
        Ok(Ok(p)) => hfail(format!(
            "after DECRYPT_FAILED the host still sent DATA ({} bytes) on the session",
            p.len()
        )),
        _ => Ok(()),
    }
}

async fn chan_short(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    s.send_ciphertext(random_bytes::<15>().to_vec()).await?;
    expect_decrypt_failed(&mut s, "a 15-byte transport message").await
}

async fn chan_rekey(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    const TOTAL: i64 = 65_540;
    const WINDOW: i64 = 32;
    let mut sent = 0i64;
    let mut answered = 0i64;
    let start = Instant::now();
    while answered < TOTAL {
        while sent < TOTAL && sent - answered < WINDOW {
            sent += 1;
            let req =
                format!(r#"{{"jsonrpc":"2.0","id":{sent},"method":"tether-conformance/probe"}}"#);
            let mut c = Vec::new();
            s.transport
                .encrypt(req.as_bytes(), &mut c)
                .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
            s.link
                .send(&RelayFrame::Data {
                    session: s.id,
                    payload: c,
                })
                .await?;
        }
        let payload = match s.next_frame(HOST_WAIT).await? {
            Ok(p) => p,
            Err(code) => {
                return hfail(format!(
                    "the host closed the session with CLOSE {code} after {answered} answers (nonce {})",
                    s.transport.sending_nonce()
                ));
            }
        };
        let mut plain = Vec::new();
        s.transport.decrypt(&payload, &mut plain).map_err(|e| {
            Stop::Fail(format!(
                "the host's transport message with nonce {} does not decrypt: {e} (did it rekey after 65535? CHAN-19)",
                s.transport.receiving_nonce()
            ))
        })?;
        let v: Value = serde_json::from_slice(&plain)
            .map_err(|e| Stop::Fail(format!("answer {answered}: {e}")))?;
        answered += 1;
        check(v.get("id") == Some(&json!(answered)), || {
            format!("answer {answered} carries id {:?}", v.get("id"))
        })?;
    }
    cx.log.note(
        "ctl",
        format!(
            "{TOTAL} requests answered in {:.1} s; both nonces past 65536",
            start.elapsed().as_secs_f64()
        ),
    );
    s.close().await;
    Ok(())
}

async fn chan_nonces(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for _ in 0..4 {
        still_answers(&mut s, "a request").await?;
    }
    check(
        s.transport.receiving_nonce() >= 5 && s.transport.sending_nonce() >= 5,
        || "fewer than 5 messages each way".to_owned(),
    )?;
    s.close().await;
    Ok(())
}

async fn chan_host_info_size(cx: Arc<Context>) -> Res<()> {
    let s = session(&cx, "ctl").await?;
    let len = s.info.encode().map(|b| b.len()).unwrap_or(usize::MAX);
    s.close().await;
    check(len <= 4096, || format!("host info of {len} bytes"))
}

async fn set_remote(cx: &Context, on: bool) -> Res<()> {
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

async fn chan_msg2_first(cx: Arc<Context>) -> Res<()> {
    // open() takes the first DATA of the session as message 2 and fails if it does not read.
    session(&cx, "ctl").await?.close().await;
    Ok(())
}

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

async fn chan_order_token(cx: Arc<Context>) -> Res<()> {
    let identity = paired(&cx).await?.identity;
    let device = Device::fresh("skewed-pair");
    let payload = HandshakePayload::Pair {
        timestamp: future_ts(1000),
        token_id: random_bytes::<16>(),
        token_secret: random_bytes::<32>(),
        device_name: device.name.clone(),
    };
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

// ---------------------------------------------------------------------------------------
// CMD: envelope

async fn cmd_batch(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"c","version":"1"},"protocolVersion":"tether/1"}}]"#;
    refuse(
        &mut s,
        batch,
        -32600,
        Value::Null,
        "a batch of one initialize",
    )
    .await?;
    // The initialize inside did not run: the session is still uninitialized.
    let a = s.call("tether-conformance/probe", Value::Null).await?;
    expect_error(
        &a,
        -32002,
        "a request after the refused batch (was its initialize run?)",
    )?;
    s.close().await;
    Ok(())
}

async fn cmd_largest(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let head = br#"{"jsonrpc":"2.0","id":77,"method":"tether-conformance/probe"}"#;
    let mut msg = Vec::with_capacity(65_519);
    msg.extend_from_slice(head);
    msg.resize(65_519, b' ');
    s.send_plain(&msg).await?;
    let a = s.answer_to(&json!(77), HOST_WAIT).await?;
    expect_error(&a, -32601, "a 65519-byte request for an unknown method")?;
    s.close().await;
    Ok(())
}

async fn cmd_bad_text(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a byte-order mark",
            b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}".to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}".to_vec(),
        ),
        (
            "an overlong UTF-8 form",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc0\xaf\"}".to_vec(),
        ),
        ("empty input", Vec::new()),
        ("truncated JSON", br#"{"jsonrpc":"2.0","id":1,"#.to_vec()),
        (
            "a second value",
            br#"{"jsonrpc":"2.0","id":1,"method":"x"} {}"#.to_vec(),
        ),
        (
            "NaN",
            br#"{"jsonrpc":"2.0","id":NaN,"method":"x"}"#.to_vec(),
        ),
        (
            "a comment",
            b"{\"jsonrpc\":\"2.0\",/* c */\"id\":1,\"method\":\"x\"}".to_vec(),
        ),
        (
            "a trailing comma",
            br#"{"jsonrpc":"2.0","id":1,"method":"x",}"#.to_vec(),
        ),
        (
            "single quotes",
            br#"{'jsonrpc':'2.0','id':1,'method':'x'}"#.to_vec(),
        ),
        (
            "a lone surrogate escape",
            br#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#.to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        refuse(&mut s, &bytes, -32700, Value::Null, what).await?;
    }
    still_answers(&mut s, "eleven parse errors").await?;
    s.close().await;
    Ok(())
}

fn nested(levels: usize) -> Vec<u8> {
    // The message object is level 1; params adds one level, each array one more.
    let inner = levels.saturating_sub(2);
    let mut p = String::from(
        r#"{"jsonrpc":"2.0","id":5,"method":"tether-conformance/probe","params":{"a":"#,
    );
    p.push_str(&"[".repeat(inner));
    p.push_str(&"]".repeat(inner));
    p.push_str("}}");
    p.into_bytes()
}

async fn cmd_nesting(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    refuse(
        &mut s,
        &nested(33),
        -32700,
        Value::Null,
        "33 levels of nesting",
    )
    .await?;
    s.send_plain(&nested(32)).await?;
    let a = s.answer_to(&json!(5), HOST_WAIT).await?;
    check(error_code(&a) != Some(-32700), || {
        format!("32 levels of nesting were refused as a parse error: {a}")
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_duplicate(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for (what, bytes) in [
        (
            "two ids",
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#.as_slice(),
        ),
        (
            "an escaped duplicate",
            br#"{"jsonrpc":"2.0","id":1,"method":"x","\u006dethod":"y"}"#.as_slice(),
        ),
        (
            "a nested duplicate",
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":{"b":1,"b":2}}}"#.as_slice(),
        ),
    ] {
        refuse(&mut s, bytes, -32700, Value::Null, what).await?;
    }
    still_answers(&mut s, "duplicate names").await?;
    s.close().await;
    Ok(())
}

async fn cmd_not_object(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for (what, bytes) in [
        ("an array", br#"[1,2]"#.as_slice()),
        ("an empty array", b"[]".as_slice()),
        ("a number", b"42".as_slice()),
        ("a string", br#""x""#.as_slice()),
    ] {
        refuse(&mut s, bytes, -32600, Value::Null, what).await?;
    }
    s.close().await;
    Ok(())
}

async fn cmd_version(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for (what, bytes) in [
        ("no jsonrpc", br#"{"id":5,"method":"x"}"#.as_slice()),
        (
            "jsonrpc 1.0",
            br#"{"jsonrpc":"1.0","id":5,"method":"x"}"#.as_slice(),
        ),
        (
            "jsonrpc the number 2.0",
            br#"{"jsonrpc":2.0,"id":5,"method":"x"}"#.as_slice(),
        ),
    ] {
        refuse(&mut s, bytes, -32600, json!(5), what).await?;
    }
    s.close().await;
    Ok(())
}

async fn cmd_bad_id(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let long = "a".repeat(65);
    for (what, id) in [
        ("null", "null".to_owned()),
        ("true", "true".to_owned()),
        ("1.5", "1.5".to_owned()),
        ("1.0", "1.0".to_owned()),
        ("1e2", "1e2".to_owned()),
        ("2^53", "9007199254740992".to_owned()),
        ("an array", "[1]".to_owned()),
        ("a 65-byte string", format!("\"{long}\"")),
    ] {
        let msg = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tether-conformance/probe"}}"#);
        refuse(
            &mut s,
            msg.as_bytes(),
            -32600,
            Value::Null,
            &format!("id {what}"),
        )
        .await?;
    }
    // The largest valid ids are fine.
    for id in [
        json!(9_007_199_254_740_991i64),
        json!(-9_007_199_254_740_991i64),
        json!("b".repeat(64)),
    ] {
        s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tether-conformance/probe"}))
            .await?;
        let a = s.answer_to(&id, HOST_WAIT).await?;
        expect_error(&a, -32601, &format!("a valid id {id}"))?;
    }
    s.close().await;
    Ok(())
}

async fn cmd_invalid_request(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for (what, bytes, id) in [
        (
            "method 5",
            br#"{"jsonrpc":"2.0","id":6,"method":5}"#.as_slice(),
            json!(6),
        ),
        (
            "method and result",
            br#"{"jsonrpc":"2.0","id":6,"method":"x","result":{}}"#.as_slice(),
            json!(6),
        ),
        (
            "string params",
            br#"{"jsonrpc":"2.0","id":6,"method":"x","params":"p"}"#.as_slice(),
            json!(6),
        ),
        (
            "neither method nor id",
            br#"{"jsonrpc":"2.0"}"#.as_slice(),
            Value::Null,
        ),
    ] {
        refuse(&mut s, bytes, -32600, id, what).await?;
    }
    s.close().await;
    Ok(())
}

async fn cmd_bad_error_object(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":5,"error":{"code":"x"}}"#)
        .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":6,"error":{"message":"no code"}}"#)
        .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":7,"result":{},"error":{"code":1,"message":"m"}}"#)
        .await?;
    // The next message from the host must be the answer to this probe, nothing for the three.
    s.send_plain(br#"{"jsonrpc":"2.0","id":8,"method":"tether-conformance/probe"}"#)
        .await?;
    let m = s.recv(HOST_WAIT).await?;
    check(m.value.get("id") == Some(&json!(8)), || {
        format!(
            "the host answered a response (responses are never answered, CMD-11): {}",
            m.value
        )
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_answers(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    refuse(
        &mut s,
        br#"{"jsonrpc":"1.0","id":"abc","method":"x"}"#,
        -32600,
        json!("abc"),
        "jsonrpc 1.0 with id \"abc\"",
    )
    .await?;
    refuse(&mut s, b"{]", -32700, Value::Null, "not JSON").await?;
    // A response to nothing is dropped, not answered.
    s.send_plain(br#"{"jsonrpc":"2.0","id":999,"result":{}}"#)
        .await?;
    s.initialize().await.map_err(|e| match e {
        Stop::Fail(r) => Stop::Fail(format!(
            "after refusals, initialize failed (the session must continue): {r}"
        )),
        other => other,
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_unknown_method(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    for m in [
        "tether-conformance/nope",
        "INITIALIZE",
        "Command/exec",
        "item/commandExecution/requestApproval",
    ] {
        let a = s.call(m, json!({})).await?;
        expect_error(&a, -32601, &format!("method {m:?}"))?;
    }
    s.send_json(&json!({"jsonrpc":"2.0","method":"tether-conformance/notify"}))
        .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":"after","method":"tether-conformance/probe"}"#)
        .await?;
    let m = s.recv(HOST_WAIT).await?;
    check(m.value.get("id") == Some(&json!("after")), || {
        format!("the host answered an unknown notification: {}", m.value)
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_invalid_params(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let a = s.call("initialize", json!([])).await?;
    expect_error(&a, -32602, "initialize with array params")?;
    let a = s
        .call("initialize", json!({"protocolVersion": "tether/1"}))
        .await?;
    expect_error(&a, -32602, "initialize without clientInfo")?;
    let msg = a
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    check(msg.contains("clientInfo"), || {
        format!("the -32602 message {msg:?} does not name the member clientInfo")
    })?;
    let a = s
        .call(
            "initialize",
            json!({"clientInfo": {"name": "c", "version": "1"}, "protocolVersion": 1}),
        )
        .await?;
    expect_error(&a, -32602, "initialize with a numeric protocolVersion")?;
    s.initialize().await?;
    // A notification with bad params is ignored, not answered.
    s.send_json(
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":[1]}}),
    )
    .await?;
    s.send_plain(br#"{"jsonrpc":"2.0","id":"after","method":"tether-conformance/probe"}"#)
        .await?;
    let m = s.recv(HOST_WAIT).await?;
    check(m.value.get("id") == Some(&json!("after")), || {
        format!(
            "the host answered a notification with bad params: {}",
            m.value
        )
    })?;
    if s.has_capability(tether_proto::cmd::capability::COMMAND_EXEC) {
        let a = s
            .call(
                "command/exec",
                json!({"command": "ls", "cwd": "/", "processId": "p"}),
            )
            .await?;
        expect_error(&a, -32602, "command/exec with a string command")?;
        let a = s
            .call(
                "command/exec",
                json!({"command": [], "cwd": "/", "processId": "p"}),
            )
            .await?;
        expect_error(&a, -32602, "command/exec with an empty command")?;
        let a = s
            .call(
                "command/exec",
                json!({"command": ["true"], "cwd": "/", "processId": "p", "sandbox": "everything"}),
            )
            .await?;
        expect_error(&a, -32602, "command/exec with an unknown sandbox mode")?;
    }
    s.close().await;
    Ok(())
}

async fn cmd_answered_once(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let ids = [
        json!(0),
        json!(-1),
        json!(42),
        json!("x"),
        json!(""),
        json!("id-7"),
        json!(9_007_199_254_740_991i64),
        json!(3),
        json!("3"),
        json!(-42),
        json!("é"),
        json!(10),
    ];
    for id in &ids {
        s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tether-conformance/probe"}))
            .await?;
    }
    s.send_plain(br#"{"jsonrpc":"2.0","id":12345,"result":{}}"#)
        .await?;
    let mut seen: Vec<Value> = Vec::new();
    while seen.len() < ids.len() {
        let m = s.recv(HOST_WAIT).await?;
        let id = m.value.get("id").cloned().unwrap_or(Value::Null);
        check(ids.contains(&id), || {
            format!("an answer with an id the runner never sent: {}", m.value)
        })?;
        check(!seen.contains(&id), || {
            format!("request {id} was answered twice")
        })?;
        seen.push(id);
    }
    s.expect_silence(Duration::from_millis(500)).await?;
    s.close().await;
    Ok(())
}

async fn cmd_initialize(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    let a = s.call("tether-conformance/probe", Value::Null).await?;
    expect_error(&a, -32002, "a request before initialize")?;
    let a = s
        .call(
            "command/exec",
            json!({"command": ["true"], "cwd": "/", "processId": "p"}),
        )
        .await?;
    expect_error(&a, -32002, "command/exec before initialize")?;
    s.send_json(&json!({"jsonrpc":"2.0","method":"initialized"}))
        .await?;
    let a = s
        .call(
            "initialize",
            json!({"clientInfo": {"name": "c", "version": "1"}, "protocolVersion": "tether/2"}),
        )
        .await?;
    expect_error(&a, -32602, "initialize with protocolVersion tether/2")?;
    let a = s.call("tether-conformance/probe", Value::Null).await?;
    expect_error(&a, -32002, "a request after a refused initialize")?;
    let result = s
        .call_ok(
            "initialize",
            json!({"clientInfo": {"name": "c", "version": "1"}, "protocolVersion": "tether/1"}),
        )
        .await?;
    check(
        result.get("protocolVersion") == Some(&json!("tether/1")),
        || format!("initialize result without protocolVersion tether/1: {result}"),
    )?;
    for member in ["serverInfo", "capabilities", "sandbox", "platform"] {
        check(result.get(member).is_some(), || {
            format!("initialize result without {member}: {result}")
        })?;
    }
    // Nothing from the host before `initialized`.
    s.expect_silence(Duration::from_millis(500)).await?;
    s.send_json(&json!({"jsonrpc":"2.0","method":"initialized"}))
        .await?;
    let a = s
        .call(
            "initialize",
            json!({"clientInfo": {"name": "c", "version": "1"}, "protocolVersion": "tether/1"}),
        )
        .await?;
    expect_error(&a, -32600, "a second initialize")?;
    s.close().await;
    Ok(())
}

async fn cmd_capabilities(cx: Arc<Context>) -> Res<()> {
    let mut s = ready(&cx, "ctl").await?;
    let caps = s
        .init
        .as_ref()
        .and_then(|i| i.get("capabilities"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check(caps.iter().all(Value::is_string), || {
        format!("capabilities are not all strings: {caps:?}")
    })?;
    let has = |c: &str| caps.iter().any(|v| v.as_str() == Some(c));
    if !has(tether_proto::cmd::capability::COMMAND_EXEC) {
        for m in ["command/exec", "command/exec/terminate"] {
            let a = s.call(m, json!({})).await?;
            expect_error(&a, -32601, &format!("{m} on a host without command.exec"))?;
        }
    }
    if !has(tether_proto::cmd::capability::THREAD_HANDOFF) {
        for m in ["thread/export", "thread/import"] {
            let a = s.call(m, json!({})).await?;
            expect_error(&a, -32601, &format!("{m} on a host without thread.handoff"))?;
        }
    }
    s.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD: command/exec

async fn cmd_exec_basics(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let run = s
        .exec(exec_params(&["echo", "a;b $HOME |c"], &dir), HOST_WAIT)
        .await?;
    check(run.stdout == b"a;b $HOME |c\n", || {
        format!(
            "echo of one argument printed {:?}: was a shell involved?",
            String::from_utf8_lossy(&run.stdout)
        )
    })?;
    let here = s
        .exec(exec_params(&["sh", "-c", "pwd -P"], &dir), HOST_WAIT)
        .await?;
    let want = s
        .exec(
            exec_params(&["sh", "-c", &format!("cd '{dir}' && pwd -P")], "/"),
            HOST_WAIT,
        )
        .await?;
    check(
        !here.stdout.is_empty() && here.stdout == want.stdout,
        || {
            format!(
                "the process ran in {:?}, not in cwd {:?}",
                String::from_utf8_lossy(&here.stdout),
                String::from_utf8_lossy(&want.stdout)
            )
        },
    )?;
    // A host that leaves stdin open makes `cat` wait for input until the 30 s time limit
    // kills it. The margin is wide: a loaded host may take seconds to answer.
    let start = Instant::now();
    let mut cat = exec_params(&["cat"], &dir);
    if let Some(o) = cat.as_object_mut() {
        o.insert("timeoutMs".to_owned(), json!(30_000));
    }
    let run = s.exec(cat, Duration::from_secs(40)).await?;
    check(
        run.exit_code() == Some(0)
            && run.stdout.is_empty()
            && run.result().and_then(|r| r.get("timedOut")) == Some(&json!(false))
            && start.elapsed() < Duration::from_secs(20),
        || {
            format!(
                "cat with empty stdin: {} after {:?}",
                run.answer,
                start.elapsed()
            )
        },
    )?;
    for (what, cwd) in [
        ("a missing directory", format!("{dir}/missing")),
        ("a relative path", "tmp".to_owned()),
    ] {
        let run = s.exec(exec_params(&["true"], &cwd), HOST_WAIT).await?;
        check(run.error_code() == Some(-32602), || {
            format!("cwd {what}: expected -32602, got {}", run.answer)
        })?;
    }
    s.close().await;
    Ok(())
}

async fn cmd_exec_pid_in_use(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let mut p = exec_params(&["sleep", "30"], &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("processId".to_owned(), json!("same"));
    }
    let first = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":first,"method":"command/exec","params":p}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = s.call("command/exec", p.clone()).await?;
    expect_error(&a, -32602, "a second command/exec with a running processId")?;
    let t = s
        .call("command/exec/terminate", json!({"processId": "same"}))
        .await?;
    check(t.get("result").is_some(), || format!("terminate: {t}"))?;
    s.collect_exec(&json!(first), "same", HOST_WAIT).await?;
    s.close().await;
    Ok(())
}

async fn cmd_output_order(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let script = "i=0; while [ $i -lt 3000 ]; do echo line$i; echo err$i >&2; i=$((i+1)); done";
    let run = s.exec(sh(script, &dir), Duration::from_secs(30)).await?;
    let mut out = String::new();
    let mut err = String::new();
    for i in 0..3000 {
        out.push_str(&format!("line{i}\n"));
        err.push_str(&format!("err{i}\n"));
    }
    check(run.stdout == out.as_bytes(), || {
        format!(
            "stdout arrived out of order or incomplete ({} of {} bytes)",
            run.stdout.len(),
            out.len()
        )
    })?;
    check(run.stderr == err.as_bytes(), || {
        format!(
            "stderr arrived out of order or incomplete ({} of {} bytes)",
            run.stderr.len(),
            err.len()
        )
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_answer_last(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    for _ in 0..3 {
        let run = s
            .exec(
                sh("head -c 100000 /dev/zero; echo done >&2", &dir),
                Duration::from_secs(30),
            )
            .await?;
        check(
            run.stdout.len() == 100_000 && run.stderr == b"done\n",
            || {
                format!(
                    "the answer came before all output: {} + {} bytes",
                    run.stdout.len(),
                    run.stderr.len()
                )
            },
        )?;
    }
    // A delta after its answer would fail here (recv checks, CMD-36).
    still_answers(&mut s, "three runs").await?;
    s.expect_silence(Duration::from_millis(500)).await?;
    s.close().await;
    Ok(())
}

async fn cmd_kill_group(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let marker = format!("{dir}/child-survived");
    // Every process of the group ignores SIGTERM (ignored signals survive exec): only
    // SIGKILL to the whole group (CMD-37) stops the child before it writes its file.
    let mut p = sh(
        &format!("trap '' TERM; (sleep 2; touch '{marker}') & sleep 60"),
        &dir,
    );
    if let Some(o) = p.as_object_mut() {
        o.insert("processId".to_owned(), json!("group"));
    }
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":p}))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = s
        .call("command/exec/terminate", json!({"processId": "group"}))
        .await?;
    check(t.get("result").is_some(), || format!("terminate: {t}"))?;
    s.collect_exec(&json!(id), "group", HOST_WAIT).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    check(!exists(&mut s, &marker, &dir).await?, || {
        "a child of the terminated process lived on and wrote its file: the group was not killed"
            .to_owned()
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_terminate(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let a = s
        .call(
            "command/exec/terminate",
            json!({"processId": "nothing-runs"}),
        )
        .await?;
    expect_error(&a, -32016, "terminate of an unknown process")?;
    let mut p = exec_params(&["sleep", "30"], &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("processId".to_owned(), json!("sleeper"));
    }
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":p}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = s
        .call("command/exec/terminate", json!({"processId": "sleeper"}))
        .await?;
    check(t.get("result") == Some(&json!({})), || {
        format!("terminate of a running process: {t}")
    })?;
    let run = s.collect_exec(&json!(id), "sleeper", HOST_WAIT).await?;
    let r = result_of(&run, "the terminated command/exec")?;
    check(
        r.get("signal") == Some(&json!("SIGKILL")) && r.get("exitCode") == Some(&Value::Null),
        || format!("the terminated process's answer: {r}"),
    )?;
    s.close().await;
    Ok(())
}

async fn cmd_exit_status(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let run = s.exec(sh("exit 3", &dir), HOST_WAIT).await?;
    let r = result_of(&run, "exit 3")?;
    check(
        r.get("exitCode") == Some(&json!(3))
            && r.get("signal") == Some(&Value::Null)
            && r.get("timedOut") == Some(&json!(false))
            && r.get("capReached") == Some(&json!(false)),
        || format!("exit 3: {r}"),
    )?;
    let run = s.exec(sh("kill -9 $$", &dir), HOST_WAIT).await?;
    let r = result_of(&run, "kill -9 $$")?;
    check(
        r.get("exitCode") == Some(&Value::Null) && r.get("signal") == Some(&json!("SIGKILL")),
        || format!("a process killed by SIGKILL: {r}"),
    )?;
    s.close().await;
    Ok(())
}

async fn cmd_chunks(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let run = s
        .exec(
            exec_params(&["head", "-c", "100000", "/dev/zero"], &dir),
            Duration::from_secs(30),
        )
        .await?;
    check(
        run.stdout.len() == 100_000 && run.stdout.iter().all(|&b| b == 0),
        || format!("expected 100000 zero bytes, got {}", run.stdout.len()),
    )?;
    check(run.deltas.len() >= 7, || {
        format!(
            "100000 bytes in {} deltas: some delta carries more than 16384",
            run.deltas.len()
        )
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_output_cap(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let mut p = sh("while :; do echo 0123456789; echo abc >&2; done", &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("outputCap".to_owned(), json!(1000));
        o.insert("timeoutMs".to_owned(), json!(20000));
    }
    let start = Instant::now();
    let run = s.exec(p, Duration::from_secs(30)).await?;
    let total = run.stdout.len() + run.stderr.len();
    check(total == 1000, || {
        format!("with outputCap 1000, {total} bytes were forwarded")
    })?;
    let last_cap = run
        .deltas
        .last()
        .and_then(|d| d.get("capReached"))
        .and_then(Value::as_bool);
    check(last_cap == Some(true), || {
        "the last delta does not carry capReached: true".to_owned()
    })?;
    let early = run
        .deltas
        .iter()
        .rev()
        .skip(1)
        .any(|d| d.get("capReached") == Some(&json!(true)));
    check(!early, || {
        "a delta followed the one with capReached".to_owned()
    })?;
    let r = result_of(&run, "the capped command")?;
    check(r.get("capReached") == Some(&json!(true)), || {
        format!("result without capReached: {r}")
    })?;
    check(
        start.elapsed() < Duration::from_secs(15) && r.get("timedOut") == Some(&json!(false)),
        || {
            format!(
                "the capped process was not killed at the cap: {r} after {:?}",
                start.elapsed()
            )
        },
    )?;
    s.close().await;
    Ok(())
}

async fn cmd_time_limit(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let mut p = exec_params(&["sleep", "30"], &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("timeoutMs".to_owned(), json!(500));
    }
    let start = Instant::now();
    let run = s.exec(p, Duration::from_secs(20)).await?;
    let r = result_of(&run, "sleep 30 with timeoutMs 500")?;
    check(r.get("timedOut") == Some(&json!(true)), || {
        format!("result: {r}")
    })?;
    check(start.elapsed() < Duration::from_secs(10), || {
        format!("the answer came after {:?}", start.elapsed())
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_limit_ranges(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    for (what, member, value) in [
        ("timeoutMs 0", "timeoutMs", json!(0)),
        ("timeoutMs 86400001", "timeoutMs", json!(86_400_001u64)),
        ("outputCap 67108865", "outputCap", json!(67_108_865u64)),
        ("outputCap -1", "outputCap", json!(-1)),
    ] {
        let mut p = exec_params(&["true"], &dir);
        if let Some(o) = p.as_object_mut() {
            o.insert(member.to_owned(), value);
        }
        let run = s.exec(p, HOST_WAIT).await?;
        check(run.error_code() == Some(-32602), || {
            format!("{what}: expected -32602, got {}", run.answer)
        })?;
    }
    s.close().await;
    Ok(())
}

/// Runs `script` under `mode` in `cwd`; `None` when the host refuses the mode (-32012) or
/// runs it degraded (then nothing is enforced to check).
async fn sandboxed(
    s: &mut ChannelSession,
    mode: &str,
    script: &str,
    cwd: &str,
) -> Res<Option<ExecRun>> {
    let mut p = sh(script, cwd);
    if let Some(o) = p.as_object_mut() {
        o.insert("sandbox".to_owned(), json!(mode));
    }
    let run = s.exec(p, Duration::from_secs(30)).await?;
    if run.error_code() == Some(-32012) {
        return Ok(None);
    }
    let r = result_of(&run, mode)?;
    let report = r.get("sandbox").cloned().unwrap_or(Value::Null);
    if report.get("degraded") == Some(&json!(true)) {
        return Ok(None);
    }
    check(report.get("enforced") == Some(&json!(mode)), || {
        format!(
            "{mode}: not degraded, but enforced is {:?}",
            report.get("enforced")
        )
    })?;
    Ok(Some(run))
}

async fn cmd_read_only(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let target = format!("{dir}/written-under-read-only");
    let Some(_run) = sandboxed(&mut s, "read-only", &format!("echo x > '{target}'"), &dir).await?
    else {
        s.close().await;
        return skip("the host refuses read-only or runs it degraded: nothing enforced to check");
    };
    check(!exists(&mut s, &target, &dir).await?, || {
        "a write under a read-only sandbox reported as enforced happened (CMD-44, CMD-45)"
            .to_owned()
    })?;
    s.close().await;
    Ok(())
}

async fn cmd_workspace_write(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    // workspace-write may write the host's temporary directory too: the "outside" file
    // must be outside it.
    let tmp = s
        .exec(sh("printf %s \"${TMPDIR:-/tmp}\"", &dir), HOST_WAIT)
        .await?;
    let tmp = String::from_utf8_lossy(&tmp.stdout)
        .trim_end_matches('/')
        .to_owned();
    if !tmp.is_empty() && (dir == tmp || dir.starts_with(&format!("{tmp}/"))) {
        s.close().await;
        return skip(format!(
            "the work directory {dir} is inside the host's temporary directory {tmp}, where workspace-write may write: give --work-dir elsewhere"
        ));
    }
    let inner = format!("{dir}/inner");
    s.exec(exec_params(&["mkdir", "-p", &inner], &dir), HOST_WAIT)
        .await?;
    let inside = format!("{inner}/inside");
    let outside = format!("{dir}/outside");
    let script = format!("echo x > '{inside}'; echo y > '{outside}'");
    let Some(_run) = sandboxed(&mut s, "workspace-write", &script, &inner).await? else {
        s.close().await;
        return skip(
            "the host refuses workspace-write or runs it degraded: nothing enforced to check",
        );
    };
    check(exists(&mut s, &inside, &dir).await?, || {
        "under workspace-write a write inside cwd did not happen".to_owned()
    })?;
    check(!exists(&mut s, &outside, &dir).await?, || {
        "under an enforced workspace-write sandbox a write outside cwd happened (CMD-44)".to_owned()
    })?;
    s.close().await;
    Ok(())
}

/// A script that connects to `127.0.0.1:port` with the first tool the host has (bash's
/// `/dev/tcp`, python3, nc, curl), and exits 97 when it has none.
fn connect_script(port: u16) -> String {
    format!(
        "if command -v bash >/dev/null 2>&1; then exec bash -c 'echo x > /dev/tcp/127.0.0.1/{port}'; \
         elif command -v python3 >/dev/null 2>&1; then exec python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)'; \
         elif command -v nc >/dev/null 2>&1; then echo x | exec nc -w 5 127.0.0.1 {port}; \
         elif command -v curl >/dev/null 2>&1; then exec curl -s -m 5 http://127.0.0.1:{port}/; \
         else exit 97; fi"
    )
}

/// A TCP listener on an ephemeral port of 127.0.0.1, and the port.
async fn loopback_listener() -> Res<(tokio::net::TcpListener, u16)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Stop::Fail(format!("binding a loopback listener: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Stop::Fail(format!("the loopback listener's address: {e}")))?
        .port();
    Ok((listener, port))
}

async fn cmd_network_denied(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let (listener, port) = loopback_listener().await?;
    let script = connect_script(port);
    // The control: without a sandbox the connection must arrive, or this host cannot
    // reach the runner's loopback (it runs elsewhere, or has no tool to connect with).
    let control = async { s.exec(sh(&script, &dir), Duration::from_secs(30)).await };
    let (run, reached) = match tokio::time::timeout(
        Duration::from_secs(30),
        accept_alongside(&listener, "the loopback listener", control),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => return hfail("the control connection run took more than 30 s".to_owned()),
    };
    if run.exit_code() == Some(97) || !reached {
        s.close().await;
        return skip(format!(
            "the host cannot reach the runner's listener on 127.0.0.1:{port} without a sandbox (it runs on another machine, or has none of bash, python3, nc, curl): nothing to compare"
        ));
    }
    let mut tried = 0;
    for mode in ["read-only", "workspace-write"] {
        let (run, reached) = match tokio::time::timeout(
            Duration::from_secs(40),
            accept_alongside(
                &listener,
                "the loopback listener",
                sandboxed(&mut s, mode, &script, &dir),
            ),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return hfail(format!("the {mode} run took more than 40 s")),
        };
        let Some(run) = run else {
            continue; // refused or degraded: nothing enforced to check
        };
        let net = run
            .result()
            .and_then(|r| r.pointer("/sandbox/network"))
            .cloned()
            .unwrap_or(Value::Null);
        if net != json!("denied") {
            continue;
        }
        tried += 1;
        check(!reached, || {
            format!(
                "under {mode} with network reported denied, the command connected to 127.0.0.1:{port} (CMD-44, CMD-45): {}",
                run.answer
            )
        })?;
    }
    s.close().await;
    if tried == 0 {
        return skip("the host enforces neither read-only nor workspace-write with network denied");
    }
    Ok(())
}

/// A listener of the runner's that the sandbox cases watch for connections from a
/// command: TCP on loopback, or a pathname Unix socket.
pub(crate) trait Acceptor {
    /// Accepts one connection and drops it.
    async fn accept_one(&self) -> std::io::Result<()>;
}

impl Acceptor for tokio::net::TcpListener {
    async fn accept_one(&self) -> std::io::Result<()> {
        self.accept().await.map(drop)
    }
}

impl Acceptor for tokio::net::UnixListener {
    async fn accept_one(&self) -> std::io::Result<()> {
        self.accept().await.map(drop)
    }
}

/// Runs `run` while accepting on `listener`; whether a connection arrived while it ran or
/// within a second after. `what` names the listener if it fails.
pub(crate) async fn accept_alongside<T>(
    listener: &impl Acceptor,
    what: &str,
    run: impl Future<Output = Res<T>>,
) -> Res<(T, bool)> {
    let accepted = std::sync::atomic::AtomicBool::new(false);
    let accept_loop = async {
        // Bounded by the caller's timeout around the whole.
        while listener.accept_one().await.is_ok() {
            accepted.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    tokio::pin!(accept_loop);
    let out = tokio::select! {
        out = run => out?,
        () = &mut accept_loop => return hfail(format!("{what} failed")),
    };
    // A connection the command started may land just after its answer.
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut accept_loop).await;
    Ok((out, accepted.load(std::sync::atomic::Ordering::SeqCst)))
}

async fn cmd_sandbox_report(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let modes: Vec<Value> = s
        .init
        .as_ref()
        .and_then(|i| i.pointer("/sandbox/modes"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for mode in ["read-only", "workspace-write", "danger-full-access"] {
        let mut p = exec_params(&["true"], &dir);
        if let Some(o) = p.as_object_mut() {
            o.insert("sandbox".to_owned(), json!(mode));
        }
        let run = s.exec(p, HOST_WAIT).await?;
        if run.error_code() == Some(-32012) {
            check(!modes.contains(&json!(mode)), || {
                format!("initialize lists {mode} as enforced, but command/exec refuses it")
            })?;
            continue;
        }
        let r = result_of(&run, mode)?;
        let rep = r.get("sandbox").cloned().unwrap_or(Value::Null);
        for m in ["requested", "enforced", "network", "degraded", "mechanism"] {
            check(rep.get(m).is_some(), || {
                format!("{mode}: the sandbox report lacks {m}: {rep}")
            })?;
        }
        check(rep.get("requested") == Some(&json!(mode)), || {
            format!("{mode}: requested is {:?}", rep.get("requested"))
        })?;
        let degraded = rep.get("degraded") == Some(&json!(true));
        let net = rep.get("network").and_then(Value::as_str).unwrap_or("");
        if mode != "danger-full-access" {
            check(
                degraded == (rep.get("enforced") != Some(&json!(mode)) || net == "unenforced"),
                || format!("{mode}: degraded does not match enforced/network: {rep}"),
            )?;
            if !degraded {
                check(net == "denied", || {
                    format!("{mode} enforced with network {net:?}")
                })?;
            }
        }
    }
    s.close().await;
    Ok(())
}

async fn cmd_unenforceable(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let init = s.init.clone().unwrap_or(Value::Null);
    let modes = init
        .pointer("/sandbox/modes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let degrade = init.pointer("/sandbox/degrade") == Some(&json!(true));
    for mode in ["read-only", "workspace-write", "danger-full-access"] {
        let mut p = exec_params(&["true"], &dir);
        if let Some(o) = p.as_object_mut() {
            o.insert("sandbox".to_owned(), json!(mode));
        }
        let run = s.exec(p, HOST_WAIT).await?;
        let enforceable = modes.contains(&json!(mode)) || mode == "danger-full-access";
        match run.error_code() {
            Some(-32012) => check(!enforceable && !degrade, || {
                format!("{mode} refused with -32012 though initialize lists it (or degrade is on)")
            })?,
            Some(c) => return hfail(format!("{mode}: error {c}: {}", run.answer)),
            None => {
                let deg =
                    run.result().and_then(|r| r.pointer("/sandbox/degraded")) == Some(&json!(true));
                check(enforceable || (degrade && deg), || {
                    format!(
                        "{mode} ran though initialize does not list it and the host does not degrade: {}",
                        run.answer
                    )
                })?;
            }
        }
    }
    s.close().await;
    Ok(())
}

async fn cmd_remote_off(cx: Arc<Context>) -> Res<()> {
    if !host_target(&cx)?.admin.can_switch_remote_access() {
        return skip("needs a way to switch the host's remote access: give --remote-access-cmd");
    }
    let mut s = ready(&cx, "ctl").await?;
    set_remote(&cx, false).await?;
    let a = s.call("tether-conformance/probe", Value::Null).await;
    let back = set_remote(&cx, true).await;
    let a = a?;
    back?;
    expect_error(&a, -32010, "a request after remote access was switched off")
}

async fn cmd_revoked(cx: Arc<Context>) -> Res<()> {
    let (device, mut s) = pair_for_revocation(&cx).await?;
    s.initialize().await?;
    revoke(&cx, &device).await?;
    let a = s.call("tether-conformance/probe", Value::Null).await?;
    expect_error(&a, -32011, "a request after the device was revoked")
}

async fn cmd_cancel(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":{
        "command": ["sleep", "30"], "cwd": dir, "sandbox": "danger-full-access", "processId": "cancel-me"}}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    s.send_json(
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": id}}),
    )
    .await?;
    let run = s.collect_exec(&json!(id), "cancel-me", HOST_WAIT).await?;
    // Uncancelled, `sleep 30` answers after 30 s; the margin allows for a loaded host.
    check(start.elapsed() < Duration::from_secs(20), || {
        format!(
            "the cancelled command/exec was answered after {:?}",
            start.elapsed()
        )
    })?;
    check(
        run.error_code() == Some(-32800) || run.result().is_some(),
        || format!("the cancelled command/exec: {}", run.answer),
    )?;
    s.close().await;
    Ok(())
}

async fn cmd_in_flight(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    for i in 0..64 {
        let id = s.fresh_id();
        s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":{
            "command": ["sleep", "60"], "cwd": dir, "sandbox": "danger-full-access", "processId": format!("busy-{i}")}}))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let a = s.call("tether-conformance/probe", Value::Null).await?;
    expect_error(&a, -32001, "a 65th request with 64 in flight")?;
    // A host that queued it instead would answer when a `sleep 60` ends.
    check(start.elapsed() < Duration::from_secs(20), || {
        format!("the -32001 answer took {:?}", start.elapsed())
    })?;
    // Ending the session kills every process (CMD-37).
    s.close().await;
    Ok(())
}

async fn cmd_order(cx: Arc<Context>) -> Res<()> {
    let mut s = session(&cx, "ctl").await?;
    refuse(
        &mut s,
        br#"{"jsonrpc":"1.0","id":1,"method":"tether-conformance/probe"}"#,
        -32600,
        json!(1),
        "a bad jsonrpc version before initialize (envelope first)",
    )
    .await?;
    let a = s.call("tether-conformance/probe", Value::Null).await?;
    expect_error(
        &a,
        -32002,
        "an unknown method before initialize (initialization before method)",
    )?;
    let a = s.call("command/exec", json!({"command": 5})).await?;
    expect_error(
        &a,
        -32002,
        "bad params before initialize (initialization before params)",
    )?;
    s.initialize().await?;
    let a = s
        .call("tether-conformance/probe", json!({"x": [1, 2]}))
        .await?;
    expect_error(
        &a,
        -32601,
        "an unknown method with params (method before params)",
    )?;
    s.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// SEC

/// SEC-13's bound on closing a revoked device's sessions.
const SEC13_CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// The revoked device's session sends nothing after the revocation: the host must close it
/// on its own, within SEC-13's 5 s (plus the time the revocation command takes, measured
/// from its end, and a second of slack for a loaded machine).
async fn sec_revoked_idle(cx: Arc<Context>) -> Res<()> {
    let (device, mut s) = pair_for_revocation(&cx).await?;
    s.initialize().await?;
    revoke(&cx, &device).await?;
    let revoked = Instant::now();
    let deadline = revoked + SEC13_CLOSE_WITHIN + Duration::from_secs(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return hfail(format!(
                "the revoked device's session was still open {} s after the revocation (SEC-13: at most 5 s)",
                revoked.elapsed().as_secs()
            ));
        }
        match s.next_frame(left).await {
            Ok(Err(code)) => {
                return close_is(
                    code,
                    CloseCode::NOT_AUTHORIZED,
                    "the revoked device's idle session",
                );
            }
            // Notifications the host had queued before the revocation may still arrive.
            Ok(Ok(_)) => {}
            Err(Stop::Fail(e)) => {
                return hfail(format!(
                    "no CLOSE NOT_AUTHORIZED {} s after the revocation (SEC-13: at most 5 s): {e}",
                    revoked.elapsed().as_secs()
                ));
            }
            Err(stop) => return Err(stop),
        }
    }
}

async fn sec_revoked(cx: Arc<Context>) -> Res<()> {
    let (device, mut s) = pair_for_revocation(&cx).await?;
    s.initialize().await?;
    let exec = s.has_capability(tether_proto::cmd::capability::COMMAND_EXEC);
    revoke(&cx, &device).await?;
    // The host closes the session at once, or at the latest refuses the next request
    // and closes it: either way the request must not run.
    let (dir, marker) = match s.work_dir(&cx) {
        Ok(d) if exec => {
            let m = format!(
                "{}/tether-conf-revoked-{}",
                d.trim_end_matches('/'),
                hex::encode(random_bytes::<6>())
            );
            (d, Some(m))
        }
        _ => (String::new(), None),
    };
    let id = s.fresh_id();
    let req = match &marker {
        Some(m) => json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":
            {"command": ["touch", m], "cwd": dir, "sandbox": "danger-full-access", "processId": "after-revoke"}}),
        None => json!({"jsonrpc":"2.0","id":id,"method":"tether-conformance/probe"}),
    };
    let _ = s.send_json(&req).await;
    let mut closed = false;
    let deadline = Instant::now() + HOST_WAIT;
    while Instant::now() < deadline {
        match s.next_frame(HOST_WAIT).await {
            Ok(Err(code)) => {
                close_is(
                    code,
                    CloseCode::NOT_AUTHORIZED,
                    "the revoked device's session",
                )?;
                closed = true;
                break;
            }
            Ok(Ok(p)) => {
                let mut plain = Vec::new();
                if s.transport.decrypt(&p, &mut plain).is_ok() {
                    let v: Value = serde_json::from_slice(&plain).unwrap_or(Value::Null);
                    if v.get("id") == Some(&json!(id)) {
                        expect_error(&v, -32011, "the revoked device's request")?;
                    }
                }
            }
            Err(_) => break,
        }
    }
    check(closed, || {
        "the revoked device's session was not closed with NOT_AUTHORIZED".to_owned()
    })?;
    if let Some(m) = marker {
        let mut check_s = ready(&cx, "check").await?;
        let ran = exists(&mut check_s, &m, &dir).await?;
        check_s.close().await;
        check(!ran, || "the revoked device's command/exec ran".to_owned())?;
    }
    Ok(())
}

async fn sec_tag_first(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let marker = format!("{dir}/ran-before-tag");
    let req = json!({"jsonrpc":"2.0","id":99,"method":"command/exec","params":
        {"command": ["touch", marker], "cwd": dir, "sandbox": "danger-full-access", "processId": "tag"}});
    let bytes = serde_json::to_vec(&req).map_err(|e| Stop::Fail(e.to_string()))?;
    let mut c = Vec::new();
    s.transport
        .encrypt(&bytes, &mut c)
        .map_err(|e| Stop::Fail(format!("encrypt: {e}")))?;
    if let Some(b) = c.last_mut() {
        *b ^= 0x80; // the tag only: the plaintext is intact
    }
    s.send_ciphertext(c).await?;
    expect_decrypt_failed(&mut s, "a request with a flipped tag byte").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut check_s = ready(&cx, "check").await?;
    let ran = exists(&mut check_s, &marker, &dir).await?;
    check_s.close().await;
    check(!ran, || {
        "the host ran a command/exec whose tag did not verify".to_owned()
    })
}

async fn sec_untrusted_cert(cx: Arc<Context>) -> Res<()> {
    let host = host_target(&cx)?;
    if !host.admin.can_start_instance() {
        return skip("needs to start a second instance of the host: give --host-cmd");
    }
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|e| Stop::Fail(format!("certificate: {e}")))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(vec![cert.cert.der().clone()], key)
        })
        .map_err(|e| Stop::Fail(format!("TLS set-up: {e}")))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (listener, port) = loopback_listener().await?;
    let url = format!("wss://127.0.0.1:{port}/");
    cx.log.note(
        "runner",
        format!("a relay with a self-signed certificate at {url}"),
    );
    let _instance = host
        .admin
        .start_instance(&url)
        .await
        .map_err(|e| Stop::Fail(format!("starting a second host instance: {e}")))?;
    let mut refused = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut settle: Option<tokio::time::Instant> = None;
    loop {
        let until = settle.unwrap_or(deadline).min(deadline);
        let accepted = tokio::time::timeout_at(until, listener.accept()).await;
        let Ok(Ok((tcp, _))) = accepted else { break };
        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
            Ok(Ok(_)) => {
                return hfail(
                    "the host completed a TLS handshake with a relay whose certificate no trusted authority signed",
                );
            }
            Ok(Err(e)) => {
                cx.log
                    .note("runner", format!("the host aborted the TLS handshake: {e}"));
                refused += 1;
                settle.get_or_insert(tokio::time::Instant::now() + Duration::from_secs(3));
            }
            Err(_) => {
                cx.log
                    .note("runner", "the host left the TLS handshake hanging");
                refused += 1;
                settle.get_or_insert(tokio::time::Instant::now() + Duration::from_secs(3));
            }
        }
    }
    check(refused > 0, || {
        format!("the second host instance never connected to {url} within 20 s")
    })
}
