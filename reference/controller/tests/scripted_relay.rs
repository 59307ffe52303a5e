//! The controller's link against a relay scripted frame by frame: frames a conforming
//! relay sends only in races (the tail of a session that already ended) must not disturb
//! the link.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use futures_util::{SinkExt, StreamExt};
use tether_controller::{Link, LinkOptions};
use tether_proto::link::{CloseCode, RelayFrame, SessionId};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::*;

type Ws = WebSocketStream<tokio::net::TcpStream>;

async fn send(ws: &mut Ws, frame: &RelayFrame) {
    let mut bytes = Vec::new();
    frame.encode(&mut bytes).unwrap();
    ws.send(Message::binary(bytes)).await.unwrap();
}

async fn next(ws: &mut Ws) -> RelayFrame {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return RelayFrame::decode(&b).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a frame from the controller, got {other:?}"),
        }
    }
}

/// CHAN-38: `DATA` and `CLOSE` for session ids the controller does not have are ignored:
/// no answer, and the link stays up (the controller's next frame is the `PONG` to the
/// relay's next `PING`, and sessions opened afterwards still work at the link level).
#[tokio::test]
async fn chan_38_data_and_close_for_unknown_sessions_are_ignored() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let relay = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            assert!(matches!(next(&mut ws).await, RelayFrame::Hello { .. }));
            send(&mut ws, &RelayFrame::Ready).await;
            let stray = SessionId([7; 8]);
            send(
                &mut ws,
                &RelayFrame::Data {
                    session: stray,
                    payload: b"the tail of a session that ended".to_vec(),
                },
            )
            .await;
            send(
                &mut ws,
                &RelayFrame::Close {
                    session: SessionId([9; 8]),
                    code: CloseCode::PEER_GONE,
                },
            )
            .await;
            send(&mut ws, &RelayFrame::Ping { value: 0x3737 }).await;
            // The first frame back: the PONG, not a CLOSE about the stray session nor a
            // GOAWAY.
            assert_eq!(next(&mut ws).await, RelayFrame::Pong { value: 0x3737 });
            ws
        });
        let link = Link::connect(&url, "acme", CREDENTIAL, &LinkOptions::default())
            .await
            .unwrap();
        let ws = relay.await.unwrap();
        assert_eq!(link.end(), None, "the link ended");
        drop(ws);
    })
    .await;
}
