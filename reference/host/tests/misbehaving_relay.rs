//! The reference host and controller against a relay that breaks the link's rules: a
//! scripted WebSocket server on 127.0.0.1 that takes a client to `READY` (with a real host
//! registration, `LINK-12`) and then sends a text message (`LINK-1`) or a malformed frame
//! (`LINK-4`) or a frame no client state allows (`LINK-35`). Both clients must answer the
//! same way: one binary `GOAWAY` (`PROTOCOL_ERROR`, or `UNEXPECTED_FRAME` for `LINK-35`),
//! then nothing, and the connection closed (`LINK-27`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_controller::{Link, LinkOptions};
use tether_host::runtime::RunEvent;
use tether_host::state::StateDir;
use tether_proto::link::registration::RelayRegistration;
use tether_proto::link::{CloseCode, LinkEnd, RelayFrame, Role};
use tether_testkit::inproc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

const CREDENTIAL: &str = "misbehaving-relay-credential";
const WAIT: Duration = Duration::from_secs(20);

/// What the relay does once the client is `READY`.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A WebSocket text message (`LINK-1`).
    Text,
    /// A binary message with an unassigned frame type (`LINK-4`).
    UnassignedType,
    /// A `PING` with a byte after its last field (`LINK-4`).
    TrailingBytes,
    /// A second `READY`, which no client state allows (`LINK-35`).
    SecondReady,
}

/// What the relay saw from the client after the fault: every message, and whether the
/// client closed the connection.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    role: Role,
    after_fault: Vec<RelayFrame>,
    closed_by_client: bool,
}

/// Serves one link: HELLO (and for a host the registration) → READY → the fault, then
/// records what the client sends until it closes.
async fn misbehaving_relay(fault: Fault) -> (String, oneshot::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut next_frame = async || loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => return RelayFrame::decode(&b).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("client sent {other:?}"),
            }
        };
        let RelayFrame::Hello {
            role,
            registration,
            workspace,
            ..
        } = next_frame().await
        else {
            panic!("first frame is not HELLO");
        };
        if role == Role::Host {
            let mut reg = RelayRegistration::new(&workspace, [0x5a; 32]).unwrap();
            let msg2 = reg.read_hello(&registration).unwrap();
            let challenge = RelayFrame::HostChallenge {
                message: msg2.to_vec(),
            };
            ws.send(Message::binary(challenge.to_bytes().unwrap()))
                .await
                .unwrap();
            let Some(Ok(Message::Binary(b))) = ws.next().await else {
                panic!("no proof")
            };
            let RelayFrame::HostProof { message } = RelayFrame::decode(&b).unwrap() else {
                panic!("not HOST_PROOF");
            };
            reg.read_proof(&message).unwrap();
        }
        ws.send(Message::binary(RelayFrame::Ready.to_bytes().unwrap()))
            .await
            .unwrap();
        let bad = match fault {
            Fault::Text => Message::text("hello"),
            Fault::UnassignedType => Message::binary(vec![0xee, 0x00]),
            Fault::TrailingBytes => Message::binary(vec![0x20, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]),
            Fault::SecondReady => Message::binary(vec![0x04]),
        };
        ws.send(bad).await.unwrap();
        let mut seen = Seen {
            role,
            after_fault: Vec::new(),
            closed_by_client: false,
        };
        loop {
            match tokio::time::timeout(WAIT, ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    seen.after_fault.push(RelayFrame::decode(&b).unwrap());
                }
                Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => {
                    seen.closed_by_client = true;
                    break;
                }
                Ok(Some(Ok(_))) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(seen);
    });
    (url, rx)
}

fn goaway(role: Role, code: CloseCode) -> Seen {
    Seen {
        role,
        after_fault: vec![RelayFrame::GoAway {
            code,
            reason: String::new(),
        }],
        closed_by_client: true,
    }
}

fn goaway_protocol_error(role: Role) -> Seen {
    goaway(role, CloseCode::PROTOCOL_ERROR)
}

/// The reference host against the faulty relay; returns what the relay saw and the reason
/// the host gave for losing the link.
async fn host_sees(fault: Fault) -> (Seen, String) {
    let (url, seen) = misbehaving_relay(fault).await;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path().join("host")).unwrap();
    let options = inproc::host_options(&url, "acme", CREDENTIAL, "box");
    let mut host = inproc::Host::start(state, options);
    let reason = loop {
        match host.next_event(WAIT).await {
            RunEvent::LinkLost { reason, .. } => break reason,
            RunEvent::Ready { .. } | RunEvent::Notice(_) => {}
            other => panic!("{other:?}"),
        }
    };
    let seen = tokio::time::timeout(WAIT, seen).await.unwrap().unwrap();
    host.stop(WAIT).await.unwrap();
    (seen, reason)
}

/// The reference controller against the faulty relay.
async fn controller_sees(fault: Fault) -> (Seen, LinkEnd) {
    let (url, seen) = misbehaving_relay(fault).await;
    let link = Link::connect(&url, "acme", CREDENTIAL, &LinkOptions::default())
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, link.ended()).await.unwrap();
    let seen = tokio::time::timeout(WAIT, seen).await.unwrap().unwrap();
    (seen, end)
}

/// LINK-1: a text message from the relay — host and controller both send GOAWAY
/// PROTOCOL_ERROR and close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_1_text_message_from_the_relay_gets_goaway_protocol_error() {
    let (seen, reason) = host_sees(Fault::Text).await;
    assert_eq!(seen, goaway_protocol_error(Role::Host));
    assert!(reason.contains("LINK-1"), "{reason}");
    let (seen, end) = controller_sees(Fault::Text).await;
    assert_eq!(seen, goaway_protocol_error(Role::Controller));
    assert!(
        matches!(
            end,
            LinkEnd::Violation {
                code: CloseCode::PROTOCOL_ERROR,
                requirement: "LINK-1",
                ..
            }
        ),
        "{end:?}"
    );
}

/// LINK-4: malformed frames from the relay (an unassigned type; bytes after the last
/// field) — host and controller both send GOAWAY PROTOCOL_ERROR and close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_4_malformed_frame_from_the_relay_gets_goaway_protocol_error() {
    for fault in [Fault::UnassignedType, Fault::TrailingBytes] {
        let (seen, reason) = host_sees(fault).await;
        assert_eq!(seen, goaway_protocol_error(Role::Host), "{fault:?}");
        assert!(reason.contains("LINK-4"), "{fault:?}: {reason}");
        let (seen, end) = controller_sees(fault).await;
        assert_eq!(seen, goaway_protocol_error(Role::Controller), "{fault:?}");
        assert!(
            matches!(
                end,
                LinkEnd::Violation {
                    code: CloseCode::PROTOCOL_ERROR,
                    requirement: "LINK-4",
                    ..
                }
            ),
            "{fault:?}: {end:?}"
        );
    }
}

/// LINK-35: a frame the client's state does not allow (a second `READY`) — host and
/// controller both send GOAWAY UNEXPECTED_FRAME and close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_35_unexpected_frame_from_the_relay_gets_goaway_unexpected_frame() {
    let (seen, reason) = host_sees(Fault::SecondReady).await;
    assert_eq!(seen, goaway(Role::Host, CloseCode::UNEXPECTED_FRAME));
    assert!(reason.contains("LINK-35"), "{reason}");
    let (seen, end) = controller_sees(Fault::SecondReady).await;
    assert_eq!(seen, goaway(Role::Controller, CloseCode::UNEXPECTED_FRAME));
    assert!(
        matches!(
            end,
            LinkEnd::Violation {
                code: CloseCode::UNEXPECTED_FRAME,
                requirement: "LINK-35",
                ..
            }
        ),
        "{end:?}"
    );
}
