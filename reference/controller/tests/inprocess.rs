//! The controller library against an in-process relay (`tether_proto::link::router::Relay`
//! behind tokio-tungstenite) and an in-process host (`tether_proto::session::Host` with a
//! `MemoryHostStore`, answering `initialize` and a scripted `command/exec`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use tether_controller::{
    ControllerError, ControllerState, ExecRequest, Link, LinkOptions, SessionEvent, exec, pair,
    status,
};
use tether_proto::channel::{HostInfo, PathStyle};
use tether_proto::cmd::methods::{CommandExecParams, encode_delta};
use tether_proto::cmd::types::OutputStream;
use tether_proto::cmd::{ClientRequest, Message, Params, Response};
use tether_proto::keys::public_key;
use tether_proto::link::{CloseCode, RelayFrame};
use tether_proto::session::{Host, HostConfig, HostEvent, MemoryHostStore};
use tether_proto::time::UnixTime;
use tether_proto::token::PairingToken;
use tether_relay::client;
use tether_testkit::inproc;

mod support;
use support::*;

struct TestHost {
    key: [u8; 32],
    store: Arc<Mutex<MemoryHostStore>>,
}

/// A host that registers in `acme` and answers `initialize` and `command/exec` (stdout
/// `hello <argv...>\n`, stderr `warn\n`, exit code 3).
async fn start_host(url: &str) -> TestHost {
    let private = rng();
    let key = public_key(&private);
    let store = Arc::new(Mutex::new(MemoryHostStore::new()));
    let mut link = inproc::host_link(url, &private, "acme", CREDENTIAL.as_bytes())
        .await
        .unwrap();
    let mut host = Host::new(HostConfig {
        static_private: private,
        workspace: "acme".into(),
        host_info: HostInfo {
            name: "build-box".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            shell: "sh".into(),
            path_style: PathStyle::Posix,
            capabilities: vec!["command.exec".into()],
            protocol: "tether/1".into(),
        },
        remote_access: true,
        confirm_pairing: false,
    });
    let store2 = store.clone();
    tokio::spawn(async move {
        while let Ok(Some(frame)) = client::recv_frame(&mut link).await {
            match frame {
                RelayFrame::Incoming { session, handshake } => {
                    let mut s = store2.lock().unwrap();
                    host.handle_incoming(
                        session,
                        &handshake,
                        Instant::now(),
                        UnixTime::now(),
                        &mut *s,
                    );
                }
                RelayFrame::Data { session, payload } => host.handle_data(session, &payload),
                RelayFrame::Close { session, code } => host.handle_close(session, code),
                RelayFrame::Ping { value } => {
                    let _ = client::send_frame(&mut link, &RelayFrame::Pong { value }).await;
                }
                _ => {}
            }
            while let Some(ev) = host.poll_event() {
                if let HostEvent::Message {
                    session,
                    message: Message::Request(req),
                } = ev
                {
                    match ClientRequest::from_request(&req) {
                        Ok(ClientRequest::Initialize(_)) => {
                            let result = json!({
                                "userAgent": "test-host/0", "codexHome": "/", "platformFamily": "unix",
                                "platformOs": "linux",
                                "tether": {
                                    "serverInfo": {"name": "test-host", "version": "0"},
                                    "protocolVersion": "tether/2",
                                    "capabilities": ["command.exec"],
                                    "sandbox": {"modes": [], "mechanism": "none", "degrade": true},
                                    "platform": {"os": "linux", "arch": "x86_64", "pathStyle": "posix"}
                                }
                            });
                            let r = Response::new(req.id.clone(), &result).unwrap();
                            host.send(session, &Message::Response(r)).unwrap();
                        }
                        Ok(ClientRequest::CommandExec(p)) => {
                            let out = format!("hello {}\n", p.command.join(" "));
                            for (stream, bytes) in
                                [("stdout", out.as_bytes()), ("stderr", b"warn\n".as_slice())]
                            {
                                let n = tether_proto::cmd::Notification::new(
                                    "command/exec/outputDelta",
                                    Some(
                                        json!({"processId": p.process_id.clone().unwrap_or_default(), "stream": stream,
                                        "deltaBase64": encode_delta(bytes), "capReached": false}),
                                    ),
                                );
                                host.send(session, &Message::Notification(n)).unwrap();
                            }
                            let result = json!({"exitCode": 3, "stdout": "", "stderr": "",
                                "tether": {"exitCode": 3, "signal": null, "timedOut": false,
                                "capReached": false, "sandbox": {"requested": "danger-full-access",
                                "enforced": "danger-full-access", "network": "allowed",
                                "degraded": false, "mechanism": "none"}}});
                            let r = Response::new(req.id.clone(), &result).unwrap();
                            host.send(session, &Message::Response(r)).unwrap();
                        }
                        // Anything else, `tether/host/info` among it: a host of an earlier
                        // revision (CMD-12).
                        _ => {
                            let e = tether_proto::cmd::ErrorResponse::new(
                                Some(req.id.clone()),
                                &tether_proto::cmd::CommandError::MethodNotFound {
                                    method: req.method.clone(),
                                },
                            );
                            host.send(session, &Message::Error(e)).unwrap();
                        }
                    }
                }
            }
            while let Some(f) = host.poll_transmit() {
                let _ = client::send_frame(&mut link, &f).await;
            }
        }
    });
    TestHost { key, store }
}

fn token(host: &TestHost, url: &str, ttl: u64) -> String {
    let id = rng()[..16].try_into().unwrap();
    let secret = rng();
    let expires = UnixTime::now().as_secs() + ttl;
    host.store.lock().unwrap().add_token(id, &secret, expires);
    PairingToken::new(
        host.key,
        id,
        secret,
        expires,
        "acme",
        url,
        Some("build-box".into()),
    )
    .unwrap()
    .to_text()
}

#[tokio::test]
async fn pair_exec_status_and_refusals() {
    bounded(async {
        let relay = start_relay().await;
        let host = start_host(&relay.url).await;
        let dir = tempfile::tempdir().unwrap();
        let state = ControllerState::open(dir.path()).unwrap();
        let opts = LinkOptions::default();

        let text = token(&host, &relay.url, 300);
        let mut code = String::new();
        let paired = pair(&state, &text, CREDENTIAL, "laptop", &opts, |c| {
            code = c.to_owned()
        })
        .await
        .unwrap();
        assert_eq!(code.len(), 6);
        assert_eq!(paired.host_info.name, "build-box");
        assert_eq!(state.hosts().unwrap().len(), 1);

        // CHAN-12: the token is consumed.
        let err = pair(&state, &text, CREDENTIAL, "laptop", &opts, |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::TOKEN_REJECTED), "{err}");
        assert!(err.to_string().contains("(CHAN-12)"), "{err}");

        // TOKEN-10: an expired token is refused before connecting.
        let expired = token(&host, &relay.url, 0);
        let err = pair(&state, &expired, CREDENTIAL, "laptop", &opts, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, ControllerError::Token(_)), "{err}");
        assert!(err.to_string().contains("TOKEN-10"), "{err}");

        // exec: output streamed in order, exit status returned, relay sees no plaintext.
        let stored = state.find_host(None).unwrap();
        let mut out = Vec::new();
        let mut errs = Vec::new();
        let req = ExecRequest {
            argv: vec!["MARKER-7f3a".into(), "x".into()],
            cwd: None,
            sandbox: None,
            timeout: None,
            output_cap: Default::default(),
        };
        let outcome = exec(&state, &stored, &req, &opts, |s, b| match s {
            OutputStream::Stdout => out.extend_from_slice(b),
            OutputStream::Stderr => errs.extend_from_slice(b),
        })
        .await
        .unwrap();
        assert_eq!(outcome.exit_status(), 3);
        assert_eq!(out, b"hello MARKER-7f3a x\n");
        assert_eq!(errs, b"warn\n");
        let tap = relay.tap.lock().unwrap().clone();
        assert!(!tap.windows(11).any(|w| w == b"MARKER-7f3a"));
        assert!(!tap.windows(10).any(|w| w == b"command/ex"));

        // status: reachable.
        let st = status(&state, &opts).await.unwrap();
        assert_eq!(st.len(), 1);
        assert!(st[0].result.is_ok());

        // CHAN-10: message 1 replayed under the same session id is refused.
        let link = Link::connect(&relay.url, "acme", CREDENTIAL, &opts)
            .await
            .unwrap();
        let session = tether_controller::open_session(&state, &link, &stored)
            .await
            .unwrap();
        let id = session.id();
        let m1 = session.message1().to_vec();
        session.close(CloseCode::NORMAL).await;
        let mut rx = link.register(id).unwrap();
        link.send_frame(RelayFrame::Open {
            session: id,
            host_key: host.key,
            handshake: m1,
        })
        .unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(
            got,
            tether_controller::SessionInput::Close(CloseCode::REPLAYED)
        );
        link.close(CloseCode::NORMAL).await;

        // CHAN-9: a revoked device is refused.
        host.store.lock().unwrap().revoke(state.keypair().public());
        let err = exec(&state, &stored, &req, &opts, |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::NOT_AUTHORIZED), "{err}");

        // LINK-17: another workspace cannot reach the host.
        let mut other = stored.clone();
        other.workspace = "other".into();
        other.credential = OTHER_CREDENTIAL.into();
        let link = Link::connect(&relay.url, "other", OTHER_CREDENTIAL, &opts)
            .await
            .unwrap();
        let err = tether_controller::open_session(&state, &link, &other)
            .await
            .unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::HOST_UNREACHABLE), "{err}");
        assert!(err.to_string().contains("LINK-17"), "{err}");

        // LINK-10: a wrong credential is refused with GOAWAY AUTH_FAILED.
        let err = Link::connect(&relay.url, "acme", "wrong-credential-000", &opts)
            .await
            .unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::AUTH_FAILED), "{err}");
        assert!(err.to_string().contains("LINK-10"), "{err}");

        // LINK-38: `connect` sends OPEN right after HELLO; when the relay refuses the
        // HELLO, the error is the relay's refusal, not the session's end.
        let mut wrong = stored.clone();
        wrong.credential = "wrong-credential-000".into();
        let err = tether_controller::connect(&state, &wrong, &opts)
            .await
            .unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::AUTH_FAILED), "{err}");
        assert!(err.to_string().contains("LINK-10"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn requests_and_notifications_are_correlated() {
    bounded(async {
        let relay = start_relay().await;
        let host = start_host(&relay.url).await;
        let dir = tempfile::tempdir().unwrap();
        let state = ControllerState::open(dir.path()).unwrap();
        let opts = LinkOptions::default();
        let text = token(&host, &relay.url, 300);
        pair(&state, &text, CREDENTIAL, "laptop", &opts, |_| {})
            .await
            .unwrap();
        let stored = state.find_host(None).unwrap();
        let mut conn = tether_controller::connect(&state, &stored, &opts)
            .await
            .unwrap();
        assert_eq!(
            conn.init.tether.capabilities,
            vec!["command.exec".to_owned()]
        );
        let params = CommandExecParams {
            command: vec!["a".into()],
            cwd: Some("/".into()),
            process_id: Some("p1".into()),
            stream_stdout_stderr: true,
            ..CommandExecParams::default()
        };
        let value: Value = conn
            .session
            .request(CommandExecParams::METHOD, Some(params.to_params()))
            .await
            .unwrap();
        assert_eq!(value["exitCode"], 3);
        let mut deltas = 0;
        while let Some(SessionEvent::Notification(n)) = conn.session.try_next_event() {
            assert_eq!(n.method, "command/exec/outputDelta");
            deltas += 1;
        }
        assert_eq!(deltas, 2);
        conn.close().await;
    })
    .await;
}

/// LINK-2 over TLS: `wss://` with the relay's self-signed certificate trusted through
/// `ca_cert`; without it the certificate is refused.
#[tokio::test]
async fn wss_with_an_extra_ca_certificate() {
    bounded(async {
        let (relay, cert) = inproc::tls_relay(&[("acme", CREDENTIAL.as_bytes())]).await;
        let url = format!("wss://localhost:{}/", relay.local_addr().port());
        let err = Link::connect(&url, "acme", CREDENTIAL, &LinkOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ControllerError::Connect { .. }), "{err}");
        let opts = LinkOptions {
            ca_cert: Some(cert.cert.clone()),
            ..LinkOptions::default()
        };
        let link = Link::connect(&url, "acme", CREDENTIAL, &opts)
            .await
            .unwrap();
        assert!(link.end().is_none());
        link.close(CloseCode::NORMAL).await;
        assert_eq!(
            link.end(),
            Some(tether_controller::LinkEnd::Closed {
                code: CloseCode::NORMAL
            })
        );
    })
    .await;
}
