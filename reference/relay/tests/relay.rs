//! The relay over real WebSockets on 127.0.0.1: a host registering with
//! `HostRegistration`, a controller opening sessions, and the relay's refusals.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tether_proto::keys::public_key;
use tether_proto::limits::MAX_FRAME_LEN;
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};
use tether_relay::client::{self, ClientLink};
use tether_relay::{
    ChangeKind, RelayError, RelayHandle, RelayLimits, RelayServer, RelayServerConfig,
    WorkspaceConfig,
};
use tether_testkit::inproc::{SelfSigned, controller_hello, hello, register_host};
use tether_testkit::wait::eventually_async;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const ACME: &[u8] = b"acme credential 0123";
const OTHER: &[u8] = b"other credential 456";
/// Every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

fn config() -> RelayServerConfig {
    RelayServerConfig::new("127.0.0.1:0".parse().unwrap())
        .with_workspace("acme", ACME, true)
        .unwrap()
        .with_workspace("other", OTHER, true)
        .unwrap()
}

async fn spawn(config: RelayServerConfig) -> RelayHandle {
    RelayServer::bind(config).await.unwrap().spawn()
}

async fn connect(relay: &RelayHandle) -> ClientLink {
    timeout(WAIT, client::connect(relay.url(), None))
        .await
        .unwrap()
        .unwrap()
}

async fn send(link: &mut ClientLink, frame: RelayFrame) {
    timeout(WAIT, client::send_frame(link, &frame))
        .await
        .unwrap()
        .unwrap();
}

async fn recv(link: &mut ClientLink) -> RelayFrame {
    timeout(WAIT, client::recv_frame(link))
        .await
        .expect("timed out waiting for a frame")
        .unwrap()
        .expect("link closed while waiting for a frame")
}

/// Asserts the next frame is `GOAWAY(code)` and that the relay then closes the link
/// (`LINK-27`).
async fn expect_goaway_and_close(link: &mut ClientLink, code: CloseCode) {
    match recv(link).await {
        RelayFrame::GoAway { code: got, .. } => assert_eq!(got, code),
        other => panic!("expected GOAWAY {code}, got {other:?}"),
    }
    let end = timeout(WAIT, client::recv_frame(link))
        .await
        .expect("relay did not close after GOAWAY");
    assert!(
        matches!(end, Ok(None) | Err(_)),
        "frame after GOAWAY: {end:?}"
    );
}

/// A host that registered (`LINK-12`) and got `READY`; returns its link and public key.
async fn host(relay: &RelayHandle, workspace: &str, credential: &[u8]) -> (ClientLink, [u8; 32]) {
    let mut private = [0u8; 32];
    getrandom::fill(&mut private).unwrap();
    let mut link = connect(relay).await;
    register_host(&mut link, &private, workspace, credential)
        .await
        .unwrap();
    (link, public_key(&private))
}

async fn controller(relay: &RelayHandle, workspace: &str, credential: &[u8]) -> ClientLink {
    let mut link = connect(relay).await;
    controller_hello(&mut link, workspace, credential)
        .await
        .unwrap();
    link
}

async fn eventually(
    relay: &RelayHandle,
    what: &str,
    check: impl Fn(&tether_relay::RelayStats) -> bool,
) {
    eventually_async(WAIT, what, || {
        let stats = relay.stats();
        check(&stats).then_some(()).ok_or(format!("{stats:?}"))
    })
    .await;
}

#[tokio::test]
async fn host_registers_and_a_session_carries_data_both_ways() {
    let relay = spawn(config()).await;
    let (mut host, host_key) = host(&relay, "acme", ACME).await;
    let mut ctl = controller(&relay, "acme", ACME).await;

    // LINK-18: OPEN becomes INCOMING at the host, with the same id and handshake.
    let session = SessionId(*b"\x01\x02\x03\x04\x05\x06\x07\x08");
    let handshake = vec![0xab; 96];
    send(
        &mut ctl,
        RelayFrame::Open {
            session,
            host_key,
            handshake: handshake.clone(),
        },
    )
    .await;
    assert_eq!(
        recv(&mut host).await,
        RelayFrame::Incoming { session, handshake }
    );

    // LINK-18, LINK-26: DATA forwarded unmodified and in order, both ways.
    for i in 0..3u8 {
        send(
            &mut host,
            RelayFrame::Data {
                session,
                payload: vec![i; 100],
            },
        )
        .await;
    }
    for i in 0..3u8 {
        assert_eq!(
            recv(&mut ctl).await,
            RelayFrame::Data {
                session,
                payload: vec![i; 100]
            }
        );
    }
    let big = vec![0x5a; 65_535];
    send(
        &mut ctl,
        RelayFrame::Data {
            session,
            payload: big.clone(),
        },
    )
    .await;
    assert_eq!(
        recv(&mut host).await,
        RelayFrame::Data {
            session,
            payload: big
        }
    );

    eventually(&relay, "two links, one session, one host", |s| {
        s.links_open == 2 && s.sessions_open == 1 && s.hosts_registered == 1
    })
    .await;

    // LINK-21: the controller's CLOSE is forwarded with its code.
    send(
        &mut ctl,
        RelayFrame::Close {
            session,
            code: CloseCode::NORMAL,
        },
    )
    .await;
    assert_eq!(
        recv(&mut host).await,
        RelayFrame::Close {
            session,
            code: CloseCode::NORMAL
        }
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn wrong_credential_gets_goaway_auth_failed() {
    let relay = spawn(config()).await;
    let mut link = connect(&relay).await;
    // LINK-10: the credential of another workspace.
    send(
        &mut link,
        hello(Role::Controller, "acme", OTHER, Vec::new()),
    )
    .await;
    expect_goaway_and_close(&mut link, CloseCode::AUTH_FAILED).await;
    eventually(&relay, "AUTH_FAILED counted under LINK-10", |s| {
        s.refused(CloseCode::AUTH_FAILED) == 1
            && s.refused_by_requirement.get("LINK-10") == Some(&1)
            && s.links_open == 0
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn open_to_a_host_of_another_workspace_is_host_unreachable() {
    let relay = spawn(config()).await;
    let (_host, host_key) = host(&relay, "acme", ACME).await;
    let mut ctl = controller(&relay, "other", OTHER).await;
    let session = SessionId([9; 8]);
    send(
        &mut ctl,
        RelayFrame::Open {
            session,
            host_key,
            handshake: vec![1; 32],
        },
    )
    .await;
    // LINK-17: routing stays inside the workspace; the link stays up.
    assert_eq!(
        recv(&mut ctl).await,
        RelayFrame::Close {
            session,
            code: CloseCode::HOST_UNREACHABLE
        }
    );
    send(&mut ctl, RelayFrame::Ping { value: 7 }).await;
    assert_eq!(recv(&mut ctl).await, RelayFrame::Pong { value: 7 });
    assert_eq!(relay.stats().refused(CloseCode::HOST_UNREACHABLE), 1);
    relay.shutdown().await;
}

#[tokio::test]
async fn oversize_websocket_message_gets_frame_too_large_and_closes_the_link() {
    let relay = spawn(config()).await;
    let mut ctl = controller(&relay, "acme", ACME).await;
    // LINK-5: one byte over the largest frame, refused by the WebSocket layer.
    let message = vec![RelayFrame::DATA; MAX_FRAME_LEN + 1];
    timeout(WAIT, ctl.send(Message::Binary(message.into())))
        .await
        .unwrap()
        .unwrap();
    expect_goaway_and_close(&mut ctl, CloseCode::FRAME_TOO_LARGE).await;
    eventually(&relay, "link closed under LINK-5", |s| {
        s.refused_by_requirement.get("LINK-5") == Some(&1) && s.links_open == 0
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn text_message_gets_protocol_error() {
    let relay = spawn(config()).await;
    let mut ctl = controller(&relay, "acme", ACME).await;
    timeout(WAIT, ctl.send(Message::Text("hello".into())))
        .await
        .unwrap()
        .unwrap();
    // LINK-1
    expect_goaway_and_close(&mut ctl, CloseCode::PROTOCOL_ERROR).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn silent_link_gets_auth_timeout_after_the_deadline() {
    let limits = RelayLimits {
        auth_deadline: Duration::from_millis(300),
        ..RelayLimits::default()
    };
    let relay = spawn(config().with_limits(limits)).await;
    let started = tokio::time::Instant::now();
    let mut link = connect(&relay).await;
    // LINK-7: no HELLO at all.
    expect_goaway_and_close(&mut link, CloseCode::AUTH_TIMEOUT).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "too late: {waited:?}");
    relay.shutdown().await;
}

#[tokio::test]
async fn shutdown_sends_goaway_going_away_on_every_link() {
    let relay = spawn(config()).await;
    let (mut host, _) = host(&relay, "acme", ACME).await;
    let mut ctl = controller(&relay, "acme", ACME).await;
    let stats = timeout(WAIT, relay.shutdown()).await.unwrap();
    expect_goaway_and_close(&mut host, CloseCode::GOING_AWAY).await;
    expect_goaway_and_close(&mut ctl, CloseCode::GOING_AWAY).await;
    assert_eq!(stats.refused(CloseCode::GOING_AWAY), 2);
    assert_eq!(stats.links_open, 0);
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate() {
    let cert = SelfSigned::localhost();
    let relay = spawn(config().with_tls(&cert.cert, &cert.key)).await;
    assert!(
        relay.url().starts_with("wss://127.0.0.1:"),
        "{}",
        relay.url()
    );
    let url = format!("wss://localhost:{}/tether", relay.local_addr().port());
    let tls = cert.client_tls();
    let mut link = timeout(WAIT, client::connect(&url, Some(Arc::clone(&tls))))
        .await
        .unwrap()
        .unwrap();
    send(&mut link, hello(Role::Controller, "acme", ACME, Vec::new())).await;
    assert_eq!(recv(&mut link).await, RelayFrame::Ready);

    // Plain ws:// to a TLS listener does not get a link.
    let plain = format!("ws://localhost:{}/", relay.local_addr().port());
    assert!(
        timeout(WAIT, client::connect(&plain, None))
            .await
            .unwrap()
            .is_err()
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn plain_ws_on_a_non_loopback_address_is_refused_without_insecure() {
    // LINK-2: refused before anything is bound.
    let config = RelayServerConfig::new("0.0.0.0:0".parse().unwrap())
        .with_workspace("acme", ACME, true)
        .unwrap();
    let err = RelayServer::bind(config).await.unwrap_err();
    assert!(matches!(err, RelayError::PlainNonLoopback(_)), "{err}");
    assert!(err.to_string().contains("LINK-2"));
}

#[tokio::test]
async fn client_refuses_plain_ws_to_a_non_loopback_host() {
    // LINK-2, the client side; nothing is connected to.
    let Err(err) = client::connect("ws://192.0.2.1:7400/", None).await else {
        panic!("connected over plain ws:// to a non-loopback host");
    };
    assert!(err.to_string().contains("LINK-2"), "{err}");
}

#[tokio::test]
async fn client_goaway_closes_its_link_and_its_sessions_get_peer_gone() {
    let relay = spawn(config()).await;
    let (mut host, host_key) = host(&relay, "acme", ACME).await;
    let mut ctl = controller(&relay, "acme", ACME).await;
    let session = SessionId([3; 8]);
    send(
        &mut ctl,
        RelayFrame::Open {
            session,
            host_key,
            handshake: vec![1; 48],
        },
    )
    .await;
    assert!(matches!(recv(&mut host).await, RelayFrame::Incoming { .. }));
    send(
        &mut ctl,
        RelayFrame::GoAway {
            code: CloseCode::NORMAL,
            reason: String::new(),
        },
    )
    .await;
    // LINK-27: nothing is sent after the client's GOAWAY; the relay closes the link.
    let end = timeout(WAIT, client::recv_frame(&mut ctl)).await.unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    // LINK-21: the other end of its session hears PEER_GONE.
    assert_eq!(
        recv(&mut host).await,
        RelayFrame::Close {
            session,
            code: CloseCode::PEER_GONE
        }
    );
    eventually(&relay, "client GOAWAY counted, link gone", |s| {
        s.peer_goaway_by_code.get(&CloseCode::NORMAL) == Some(&1)
            && s.links_open == 1
            && s.sessions_open == 0
    })
    .await;
    relay.shutdown().await;
}

// ----- LINK-37: reconfiguring a running relay ---------------------------------------------

#[tokio::test]
async fn changing_a_credential_ends_the_workspaces_links_and_no_others() {
    let relay = spawn(config()).await;
    let (mut host, _) = host(&relay, "acme", ACME).await;
    let mut ctl = controller(&relay, "acme", ACME).await;
    let mut other = controller(&relay, "other", OTHER).await;
    let new = b"acme credential rotated";
    let change = relay
        .set_workspace("acme", Some(WorkspaceConfig::new(new, true)))
        .await
        .unwrap();
    assert_eq!(
        change.kind,
        ChangeKind::Changed {
            credential: true,
            remote_access: None
        }
    );
    assert_eq!(change.links_ended, 2);
    expect_goaway_and_close(&mut host, CloseCode::AUTH_FAILED).await;
    expect_goaway_and_close(&mut ctl, CloseCode::AUTH_FAILED).await;
    // The other workspace's link is untouched.
    send(&mut other, RelayFrame::Ping { value: 9 }).await;
    assert_eq!(recv(&mut other).await, RelayFrame::Pong { value: 9 });
    // The old credential is now wrong; the new one works.
    let mut old = connect(&relay).await;
    send(&mut old, hello(Role::Controller, "acme", ACME, Vec::new())).await;
    expect_goaway_and_close(&mut old, CloseCode::AUTH_FAILED).await;
    drop(controller(&relay, "acme", new).await);
}

#[tokio::test]
async fn switching_remote_access_off_and_on_and_unchanged_settings() {
    let relay = spawn(config()).await;
    let mut ctl = controller(&relay, "acme", ACME).await;
    // Unchanged: nothing ends.
    let change = relay
        .set_workspace("acme", Some(WorkspaceConfig::new(ACME, true)))
        .await
        .unwrap();
    assert_eq!(
        (change.kind, change.links_ended),
        (ChangeKind::Unchanged, 0)
    );
    send(&mut ctl, RelayFrame::Ping { value: 1 }).await;
    assert_eq!(recv(&mut ctl).await, RelayFrame::Pong { value: 1 });
    // Off: GOAWAY REMOTE_ACCESS_DISABLED, and for new links too (LINK-11).
    let change = relay
        .set_workspace("acme", Some(WorkspaceConfig::new(ACME, false)))
        .await
        .unwrap();
    assert_eq!(change.links_ended, 1);
    expect_goaway_and_close(&mut ctl, CloseCode::REMOTE_ACCESS_DISABLED).await;
    let mut late = connect(&relay).await;
    send(&mut late, hello(Role::Controller, "acme", ACME, Vec::new())).await;
    expect_goaway_and_close(&mut late, CloseCode::REMOTE_ACCESS_DISABLED).await;
    // On again.
    relay
        .set_workspace("acme", Some(WorkspaceConfig::new(ACME, true)))
        .await
        .unwrap();
    drop(controller(&relay, "acme", ACME).await);
}

#[tokio::test]
async fn replacing_the_workspaces_applies_only_the_differences() {
    let relay = spawn(config()).await;
    let mut acme = controller(&relay, "acme", ACME).await;
    let mut other = controller(&relay, "other", OTHER).await;
    // A bad id: refused, nothing applied.
    let mut bad = std::collections::BTreeMap::new();
    bad.insert("Bad Id".to_owned(), WorkspaceConfig::new(ACME, true));
    assert!(matches!(
        relay.control().replace_workspaces(bad).await,
        Err(RelayError::Config(_))
    ));
    let mut wanted = std::collections::BTreeMap::new();
    wanted.insert("acme".to_owned(), WorkspaceConfig::new(ACME, true));
    wanted.insert("beta".to_owned(), WorkspaceConfig::new(OTHER, false));
    let changes = relay.control().replace_workspaces(wanted).await.unwrap();
    let summary: Vec<(String, ChangeKind, usize)> = changes
        .into_iter()
        .map(|c| (c.workspace, c.kind, c.links_ended))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("other".to_owned(), ChangeKind::Removed, 1),
            (
                "beta".to_owned(),
                ChangeKind::Added {
                    remote_access: false
                },
                0
            ),
        ]
    );
    expect_goaway_and_close(&mut other, CloseCode::AUTH_FAILED).await;
    send(&mut acme, RelayFrame::Ping { value: 2 }).await;
    assert_eq!(recv(&mut acme).await, RelayFrame::Pong { value: 2 });
}

#[tokio::test]
async fn reconfiguring_a_stopped_relay_is_an_error() {
    let relay = spawn(config()).await;
    let control = relay.control();
    timeout(WAIT, relay.shutdown()).await.unwrap();
    assert!(matches!(
        control.set_workspace("acme", None).await,
        Err(RelayError::Stopped)
    ));
}
