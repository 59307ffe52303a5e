//! The in-process relay the controller tests share: `tether_proto::link::router::Relay`
//! behind tokio-tungstenite on 127.0.0.1, optionally behind TLS, recording every binary
//! message it forwards.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tether_proto::link::router::{LinkId, Relay, RelayConfig, RelayEvent, WorkspaceConfig};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

pub(crate) const CREDENTIAL: &str = "acme-credential-0123456789";
pub(crate) const OTHER_CREDENTIAL: &str = "other-credential-0123456789";

pub(crate) fn rng() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

pub(crate) type Writers = Arc<Mutex<HashMap<LinkId, mpsc::UnboundedSender<Option<Vec<u8>>>>>>;

pub(crate) struct TestRelay {
    pub(crate) url: String,
    /// Every binary message the relay forwarded, both ways.
    pub(crate) tap: Arc<Mutex<Vec<u8>>>,
}

pub(crate) async fn start_relay() -> TestRelay {
    start_relay_with(None).await
}

pub(crate) type Shared = (Arc<Mutex<Relay>>, Writers, Arc<Mutex<Vec<u8>>>);

pub(crate) async fn start_relay_with(tls: Option<tokio_rustls::TlsAcceptor>) -> TestRelay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = match tls {
        Some(_) => format!("wss://localhost:{port}/"),
        None => format!("ws://127.0.0.1:{port}/"),
    };
    let config = RelayConfig::default()
        .with_workspace("acme", WorkspaceConfig::new(CREDENTIAL.as_bytes(), true))
        .with_workspace(
            "other",
            WorkspaceConfig::new(OTHER_CREDENTIAL.as_bytes(), true),
        );
    let relay = Arc::new(Mutex::new(Relay::new(config)));
    let writers: Writers = Arc::default();
    let tap: Arc<Mutex<Vec<u8>>> = Arc::default();
    let shared: Shared = (relay, writers, tap.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let shared = shared.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve_link(stream, shared).await;
                        }
                    }
                    None => serve_link(tcp, shared).await,
                }
            });
        }
    });
    TestRelay { url, tap }
}

pub(crate) async fn serve_link<S>(stream: S, (relay, writers, tap): Shared)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
    let link = relay.lock().unwrap().handle_link_opened(Instant::now());
    writers.lock().unwrap().insert(link, tx);
    tokio::spawn(async move {
        while let Some(Some(bytes)) = rx.recv().await {
            if sink.send(Ws::binary(bytes)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let pump = |relay: &mut Relay| {
        let w = writers.lock().unwrap();
        for l in relay.links_with_pending() {
            while let Some(bytes) = relay.poll_transmit(l) {
                tap.lock().unwrap().extend_from_slice(&bytes);
                if let Some(tx) = w.get(&l) {
                    let _ = tx.send(Some(bytes));
                }
            }
        }
        while let Some(ev) = relay.poll_event() {
            if let RelayEvent::CloseLink { link, .. } = ev
                && let Some(tx) = w.get(&link)
            {
                let _ = tx.send(None);
            }
        }
    };
    while let Some(Ok(msg)) = stream.next().await {
        if let Ws::Binary(bytes) = msg {
            let mut r = relay.lock().unwrap();
            r.handle_frame(link, &bytes, Instant::now(), &mut rng);
            pump(&mut r);
        }
    }
    let mut r = relay.lock().unwrap();
    r.handle_link_closed(link, Instant::now());
    pump(&mut r);
    writers.lock().unwrap().remove(&link);
}
