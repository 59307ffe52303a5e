//! `tether-link`: the tokio side of a client's relay link (`spec/03-relay-link.md`).
//!
//! The link's rules live in [`tether_proto::link::LinkClient`], which does no I/O. This
//! crate gives a driver the three things it needs around it:
//!
//! - [`connect`]: TCP, then TLS for `wss://` (the web PKI roots plus an optional extra CA,
//!   [`tls_config`]), then the WebSocket upgrade, with the socket refusing any message over
//!   the frame limit before buffering it (`LINK-5`);
//! - [`deliver`]: one WebSocket read handed to the client (binary, text, too large, closed);
//! - [`flush`]: every binary message the client queued, written in order.
//!
//! A driver loop is then: `select!` over `socket.next()` (→ [`deliver`]), its own inputs and
//! `sleep_until(client.poll_timeout())` (→ `handle_timeout`); after each, drain
//! `poll_event` and [`flush`]. The reference host (`tether-host`) and controller
//! (`tether-controller`) are both written this way.
//!
//! It is not a relay (that is `tether-relay`) and holds no protocol state of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::SinkExt;
use tether_proto::limits::MAX_FRAME_LEN;
use tether_proto::link::{Incoming, LinkClient, RelayUrl};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A byte stream a WebSocket runs over (TCP, or TLS over TCP).
pub trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> LinkIo for T {}

/// A client's WebSocket to a relay.
pub type LinkSocket = WebSocketStream<Box<dyn LinkIo>>;

/// Why a connection to a relay could not be made. Each text names the URL or file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TLS configuration could not be built (an unreadable or empty CA file).
    Tls(String),
    /// TCP, the TLS handshake or the WebSocket upgrade failed.
    Connect(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tls(s) | Self::Connect(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ConnectError {}

/// The WebSocket settings of a relay link: messages and frames larger than
/// `max_frame_len` are refused before they are buffered (`LINK-5`).
pub fn websocket_config(max_frame_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_frame_len))
        .max_frame_size(Some(max_frame_len))
}

/// A rustls client configuration trusting the web PKI roots and, when given, the
/// certificates of the PEM file `extra_ca` (a relay with a private certificate).
///
/// # Errors
/// [`ConnectError::Tls`] if the file cannot be read or holds no certificate.
pub fn tls_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let bad = |e: &dyn std::fmt::Display| ConnectError::Tls(format!("{}: {e}", path.display()));
        let mut added = 0usize;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(&"no certificate found"));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens a WebSocket to `url`: TCP (no Nagle delay), TLS with `tls` for `wss://` (the web
/// PKI roots when `None`), the upgrade, and the frame limit of [`websocket_config`].
///
/// It does not apply `LINK-2`; callers check [`RelayUrl::check_transport`] first.
///
/// # Errors
/// [`ConnectError::Connect`] naming the step that failed, [`ConnectError::Tls`] when the
/// default TLS configuration cannot be built.
pub async fn connect(
    url: &RelayUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<LinkSocket, ConnectError> {
    let (host, port) = (url.host(), url.port());
    let fail =
        |what: &str, e: &dyn std::fmt::Display| ConnectError::Connect(format!("{what}: {e}"));
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| fail(&format!("connecting to {host}:{port}"), &e))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn LinkIo> = if url.is_tls() {
        let config = match tls {
            Some(config) => Arc::clone(config),
            None => tls_config(None)?,
        };
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| fail(&format!("TLS server name {host:?}"), &e))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| fail(&format!("TLS handshake with {host}"), &e))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (socket, _response) = tokio_tungstenite::client_async_with_config(
        url.as_str(),
        stream,
        Some(websocket_config(MAX_FRAME_LEN)),
    )
    .await
    .map_err(|e| fail(&format!("WebSocket handshake with {url}"), &e))?;
    Ok(socket)
}

/// Hands one WebSocket read (`socket.next()`'s output) to the client: a binary message as
/// a frame, a text message (`LINK-1`), a message the socket refused as too large
/// (`LINK-5`), or the connection's end. WebSocket ping and pong carry no meaning
/// (section 3.1) and are dropped.
pub fn deliver(message: Option<Result<Message, WsError>>, client: &mut LinkClient, now: Instant) {
    match message {
        Some(Ok(Message::Binary(bytes))) => client.handle_message(Incoming::Binary(&bytes), now),
        Some(Ok(Message::Text(_))) => client.handle_message(Incoming::Text, now),
        Some(Ok(Message::Close(_))) | None => {
            client.handle_message(Incoming::Closed("the relay closed the connection"), now);
        }
        Some(Ok(_)) => {}
        Some(Err(WsError::Capacity(_))) => client.handle_message(Incoming::TooLarge, now),
        Some(Err(e)) => client.handle_message(Incoming::Closed(&format!("WebSocket: {e}")), now),
    }
}

/// Writes every message the client queued, in order, with one flush for all of them (a
/// burst of records costs one write, not one per message). A write that fails ends the
/// link (the client reports [`tether_proto::link::LinkEnd::Lost`]); what is still queued
/// then is dropped.
pub async fn flush(socket: &mut LinkSocket, client: &mut LinkClient) {
    let mut fed = false;
    while let Some(bytes) = client.poll_transmit() {
        if let Err(e) = socket.feed(Message::binary(bytes)).await {
            lost(client, &e);
            return;
        }
        fed = true;
    }
    if fed && let Err(e) = socket.flush().await {
        lost(client, &e);
    }
}

fn lost(client: &mut LinkClient, e: &WsError) {
    client.handle_message(
        Incoming::Closed(&format!("sending to the relay: {e}")),
        Instant::now(),
    );
    while client.poll_transmit().is_some() {}
}

/// Writes what the client still queued after it ended (its `GOAWAY`, `LINK-27`), then
/// closes the WebSocket.
pub async fn finish(socket: &mut LinkSocket, client: &mut LinkClient) {
    flush(socket, client).await;
    let _ = socket.close(None).await;
}
