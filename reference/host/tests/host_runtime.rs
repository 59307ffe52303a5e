//! The host runtime against the real relay over `wss://` on 127.0.0.1 (self-signed
//! certificate, `--ca-cert`), with a controller driven by `tether_proto::session::Controller`:
//! pair with a minted token, initialize, `command/exec`, resume, replay of a token, revoke.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_host::run;
use tether_host::runtime::{HostOptions, RunEvent};
use tether_host::state::StateDir;
use tether_proto::channel::Timestamp;
use tether_proto::cmd::methods::{CommandExecResult, decode_delta};
use tether_proto::cmd::{Message, Notification, Request, ServerNotification};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tether_proto::session::{Controller, ControllerConfig, ControllerEvent, Purpose};
use tether_proto::time::UnixTime;
use tether_relay::client::{self, ClientLink};
use tether_testkit::inproc;

const CREDENTIAL: &str = "runtime-test-credential";
const WAIT: Duration = Duration::from_secs(20);

async fn controller_link(url: &str, tls: Arc<rustls::ClientConfig>) -> ClientLink {
    inproc::controller_link(url, Some(tls), "acme", CREDENTIAL.as_bytes())
        .await
        .unwrap()
}

fn random_session() -> SessionId {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).unwrap();
    SessionId(id)
}

async fn flush(link: &mut ClientLink, c: &mut Controller) {
    while let Some(frame) = c.poll_transmit() {
        client::send_frame(link, &frame).await.unwrap();
    }
}

/// Pumps frames into `c` until an event arrives.
async fn next_event(link: &mut ClientLink, c: &mut Controller) -> ControllerEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        flush(link, c).await;
        if let Some(e) = c.poll_event() {
            return e;
        }
        let frame = tokio::time::timeout_at(deadline.into(), client::recv_frame(link))
            .await
            .expect("no frame in time")
            .unwrap()
            .expect("relay closed the link");
        match frame {
            RelayFrame::Data { session, payload } if session == c.session() => {
                c.handle_data(&payload);
            }
            RelayFrame::Close { session, code } if session == c.session() => c.handle_close(code),
            RelayFrame::Ping { value } => {
                client::send_frame(link, &RelayFrame::Pong { value })
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
}

fn config(
    key: [u8; 32],
    host_key: [u8; 32],
    last: &mut Option<Timestamp>,
    purpose: Purpose,
) -> ControllerConfig {
    let timestamp = Timestamp::next_after(*last, UnixTime::now());
    *last = Some(timestamp);
    ControllerConfig {
        static_private: key,
        host_key,
        workspace: "acme".into(),
        session: random_session(),
        timestamp,
        handshake_timeout: ControllerConfig::default_timeout(&purpose),
        purpose,
    }
}

async fn request(
    link: &mut ClientLink,
    c: &mut Controller,
    id: i64,
    method: &str,
    params: serde_json::Value,
) {
    c.send(&Message::Request(Request::new(id, method, Some(params))))
        .unwrap();
    flush(link, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_exec_resume_revoke_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, cert) = inproc::tls_relay(&[("acme", CREDENTIAL.as_bytes())]).await;
    let url = format!("wss://localhost:{}/tether", relay.local_addr().port());

    // The host.
    let state = StateDir::open(dir.path().join("host")).unwrap();
    let mut options = inproc::host_options(&url, "acme", CREDENTIAL, "build-box");
    options.ca_cert = Some(cert.cert.clone());
    let mut host = inproc::Host::start(state.clone(), options);
    let (fingerprint, reported) = host.ready(WAIT).await.unwrap();
    assert_eq!(reported, url);
    let host_key = tether_proto::keys::public_key(&state.read_key().unwrap());
    assert_eq!(fingerprint, tether_proto::keys::fingerprint(&host_key));

    // `tether host pair`.
    let token = state
        .mint_token(Duration::from_secs(300), UnixTime::now())
        .unwrap();
    let host_key = *token.host_key();
    let tls = cert.client_tls();
    let mut link = controller_link(&url, tls.clone()).await;
    let device_key = [0x42u8; 32];
    let mut last = None;
    let purpose = Purpose::Pair {
        token_id: *token.token_id(),
        token_secret: *token.token_secret(),
        device_name: "ana-phone".into(),
    };
    let mut c = Controller::connect(
        config(device_key, host_key, &mut last, purpose.clone()),
        Instant::now(),
    )
    .unwrap();
    match next_event(&mut link, &mut c).await {
        ControllerEvent::Established { host_info } => {
            assert_eq!(host_info.name, "build-box");
            assert!(host_info.has_capability("command.exec"));
        }
        other => panic!("{other:?}"),
    }
    // CHAN-27: recorded durably.
    let recorded = state.read().unwrap();
    let device_pub = tether_proto::keys::public_key(&device_key);
    assert_eq!(recorded.device(&device_pub).unwrap().name, "ana-phone");
    assert!(recorded.tokens.iter().all(|t| t.consumed));

    // CMD-15 then command/exec.
    request(
        &mut link,
        &mut c,
        1,
        "command/exec",
        json!({"command": ["true"], "cwd": "/", "processId": "p"}),
    )
    .await;
    match next_event(&mut link, &mut c).await {
        ControllerEvent::Message(Message::Error(e)) => assert_eq!(e.error.code, -32002),
        other => panic!("{other:?}"),
    }
    request(
        &mut link,
        &mut c,
        2,
        "initialize",
        json!({"clientInfo": {"name": "t", "version": "0"}, "tether": {"protocolVersion": "tether/2"}}),
    )
    .await;
    assert!(matches!(
        next_event(&mut link, &mut c).await,
        ControllerEvent::Message(Message::Response(_))
    ));
    c.send(&Message::Notification(Notification::new(
        "initialized",
        None,
    )))
    .unwrap();
    request(
        &mut link,
        &mut c,
        3,
        "command/exec",
        json!({"command": ["sh", "-c", "echo hello; echo oops >&2; exit 4"], "cwd": "/", "processId": "p", "streamStdoutStderr": true, "sandboxPolicy": {"type": "dangerFullAccess"}}),
    )
    .await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result: CommandExecResult = loop {
        match next_event(&mut link, &mut c).await {
            ControllerEvent::Message(Message::Notification(n)) => {
                let ServerNotification::CommandExecOutputDelta(d) =
                    ServerNotification::from_notification(&n).unwrap()
                else {
                    panic!("{n:?}")
                };
                let raw = decode_delta(&d.delta_base64).unwrap();
                match d.stream {
                    tether_proto::cmd::types::OutputStream::Stdout => out.extend(raw),
                    tether_proto::cmd::types::OutputStream::Stderr => err.extend(raw),
                }
            }
            // CMD-76: the reference pair negotiates records, so output comes in OUTPUT
            // records.
            ControllerEvent::Output(o) => {
                assert_eq!(o.process_id, "p");
                if o.stderr {
                    err.extend(o.data);
                } else {
                    out.extend(o.data);
                }
            }
            ControllerEvent::Message(Message::Response(r)) => {
                break serde_json::from_value(r.result).unwrap();
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(out, b"hello\n");
    assert_eq!(err, b"oops\n");
    assert_eq!(result.exit_code, 4);
    assert_eq!(result.tether.exit_code, Some(4));
    assert_eq!(
        (&*result.stdout, &*result.stderr),
        ("", ""),
        "streamed (CMD-35)"
    );

    // CHAN-12: the token works once.
    let mut again = Controller::connect(
        config([0x43u8; 32], host_key, &mut None, purpose),
        Instant::now(),
    )
    .unwrap();
    match next_event(&mut link, &mut again).await {
        ControllerEvent::Closed { code, .. } => assert_eq!(code, CloseCode::TOKEN_REJECTED),
        other => panic!("{other:?}"),
    }

    // Resume as the paired device.
    let mut r = Controller::connect(
        config(device_key, host_key, &mut last, Purpose::Resume),
        Instant::now(),
    )
    .unwrap();
    assert!(matches!(
        next_event(&mut link, &mut r).await,
        ControllerEvent::Established { .. }
    ));

    // Revoked in "another process": the open session's next request is refused
    // (CMD-56) and a new one is not admitted (CHAN-9).
    state.revoke("ana-phone").unwrap();
    request(
        &mut link,
        &mut r,
        1,
        "initialize",
        json!({"clientInfo": {"name": "t", "version": "0"}, "tether": {"protocolVersion": "tether/2"}}),
    )
    .await;
    match next_event(&mut link, &mut r).await {
        ControllerEvent::Message(Message::Error(e)) => assert_eq!(e.error.code, -32011),
        other => panic!("{other:?}"),
    }
    match next_event(&mut link, &mut r).await {
        ControllerEvent::Closed { code, .. } => assert_eq!(code, CloseCode::NOT_AUTHORIZED),
        other => panic!("{other:?}"),
    }
    let mut refused = Controller::connect(
        config(device_key, host_key, &mut last, Purpose::Resume),
        Instant::now(),
    )
    .unwrap();
    match next_event(&mut link, &mut refused).await {
        ControllerEvent::Closed { code, .. } => assert_eq!(code, CloseCode::NOT_AUTHORIZED),
        other => panic!("{other:?}"),
    }

    host.stop(WAIT).await.unwrap();
    relay.shutdown().await;
}

fn plain_options(url: &str, credential: &str) -> HostOptions {
    inproc::host_options(url, "acme", credential, "build-box")
}

async fn plain_relay(addr: &str) -> tether_relay::RelayHandle {
    inproc::spawn_relay(inproc::relay_config(
        addr.parse().unwrap(),
        &[("acme", CREDENTIAL.as_bytes())],
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_28_reconnects_after_the_relay_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let relay = plain_relay("127.0.0.1:0").await;
    let addr = relay.local_addr();
    let url = format!("ws://{addr}/");
    let state = StateDir::open(dir.path().join("host")).unwrap();
    let mut host = inproc::Host::start(state, plain_options(&url, CREDENTIAL));
    let mut next = async || host.next_event(WAIT).await;
    while !matches!(next().await, RunEvent::Ready { .. }) {}
    relay.shutdown().await;
    loop {
        if let RunEvent::LinkLost { reason, retry_in } = next().await {
            assert!(reason.contains("GOING_AWAY"), "{reason}");
            // LINK-28: the first wait is 50-100 % of 1 s.
            assert!(retry_in >= Duration::from_millis(500) && retry_in <= Duration::from_secs(1));
            break;
        }
    }
    let relay = plain_relay(&addr.to_string()).await;
    loop {
        match next().await {
            RunEvent::Ready { .. } => break,
            RunEvent::LinkLost { .. } | RunEvent::Notice(_) => {}
            other => panic!("{other:?}"),
        }
    }
    host.stop(WAIT).await.unwrap();
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_28_auth_failed_stops_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let relay = plain_relay("127.0.0.1:0").await;
    let url = format!("ws://{}/", relay.local_addr());
    let state = StateDir::open(dir.path().join("host")).unwrap();
    let result = tokio::time::timeout(
        WAIT,
        run(
            state,
            plain_options(&url, "not-the-workspace-credential"),
            std::future::pending(),
            |_| {},
        ),
    )
    .await
    .unwrap();
    match result {
        Err(tether_host::RunError::Refused { code, .. }) => {
            assert_eq!(code, CloseCode::AUTH_FAILED)
        }
        other => panic!("{other:?}"),
    }
    relay.shutdown().await;
}

/// `CHAN-30`: the disk store tells the host which claimed keys are paired, unrevoked and
/// active devices (their own rate-limit bucket), from `host.json` as it is now: a
/// revocation or an inactivity age set by another process counts at once.
#[test]
fn chan_30_the_disk_store_knows_active_devices() {
    use tether_host::state::DiskHostStore;
    use tether_proto::session::HostStore;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path().join("state")).unwrap();
    let mut store = DiskHostStore::new(state.clone());
    let (phone, laptop) = ([7u8; 32], [8u8; 32]);
    let now = UnixTime::now();
    let ts = Timestamp::from_unix(now);
    store.record_device(&phone, "phone", ts, now).unwrap();
    store.record_device(&laptop, "laptop", ts, now).unwrap();
    assert!(store.is_active_device(&phone, now));
    assert!(store.is_active_device(&laptop, now));
    assert!(!store.is_active_device(&[9u8; 32], now), "never paired");
    // Revoked by another process (`tether host revoke`).
    StateDir::open(dir.path().join("state"))
        .unwrap()
        .revoke("phone")
        .unwrap();
    assert!(!store.is_active_device(&phone, now));
    assert!(store.is_active_device(&laptop, now));
    // Inactive past an age set later.
    state.set_max_inactive(Some(60)).unwrap();
    let later = now.saturating_add(Duration::from_secs(61));
    assert!(!store.is_active_device(&laptop, later));
    assert!(store.is_active_device(&laptop, now));
}
