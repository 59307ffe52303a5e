//! Host cases of `spec/07` on sessions: revocation ends a device's sessions (`SEC-13`,
//! section 7.9), a relay with an untrusted certificate is refused (`SEC-19`, section 7.13), and
//! a transport message is authenticated before anything acts on it (`SEC-21`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::link::CloseCode;

use crate::case::{Case, case};
use crate::cases::channel::transport::expect_decrypt_failed;
use crate::cases::steps::devices::{pair_for_revocation, revoke};
use crate::cases::steps::exec::{exec_ready, exists};
use crate::cases::steps::handshake::close_is;
use crate::cases::steps::rpc::{expect_error, ready};
use crate::cases::steps::sandbox::loopback_listener;
use crate::context::Context;
use crate::host::{HOST_WAIT, Res, Stop, check, hfail, host_target, skip};
use crate::link::random_bytes;

/// The host security cases of sessions and relays, in spec order.
pub const CASES: &[Case] = &[
    SEC_REVOKED,
    SEC_REVOKED_IDLE,
    SEC_UNTRUSTED_CERT,
    SEC_TAG_FIRST,
];

// ---------------------------------------------------------------------------------------
// SEC

/// SEC-13's bound on closing a revoked device's sessions.
const SEC13_CLOSE_WITHIN: Duration = Duration::from_secs(5);

const SEC_REVOKED_IDLE: Case = case! {
    id: "SEC-13/revocation-closes-idle-session",
    level: Must,
    timeout: 60 s,
    description: "after revocation the device's open session is closed NOT_AUTHORIZED within 5 s though it sends nothing",
    host: sec_revoked_idle,
};
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

const SEC_REVOKED: Case = case! {
    id: "SEC-13/revocation-ends-sessions",
    level: Must,
    timeout: 60 s,
    description: "after revocation the device's open session is closed NOT_AUTHORIZED and its request not run",
    host: sec_revoked,
};
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
            {"command": ["touch", m], "cwd": dir, "sandboxPolicy": {"type": "dangerFullAccess"}, "processId": "after-revoke"}}),
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

const SEC_TAG_FIRST: Case = case! {
    id: "SEC-21/tag-before-acting",
    level: Must,
    timeout: 60 s,
    description: "a command/exec whose tag does not verify is not run",
    host: sec_tag_first,
};
async fn sec_tag_first(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let marker = format!("{dir}/ran-before-tag");
    let req = json!({"jsonrpc":"2.0","id":99,"method":"command/exec","params":
        {"command": ["touch", marker], "cwd": dir, "sandboxPolicy": {"type": "dangerFullAccess"}, "processId": "tag"}});
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

const SEC_UNTRUSTED_CERT: Case = case! {
    id: "SEC-19/untrusted-relay-certificate",
    level: Must,
    timeout: 60 s,
    description: "a host told to join a wss:// relay with an untrusted certificate does not complete TLS",
    host: sec_untrusted_cert,
};
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
