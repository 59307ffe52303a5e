//! A minimal relay-link connector: opens a WebSocket to a relay URL with the frame size
//! limit in force, over TLS for `wss://`. Meant for tests and tools; it does not speak the
//! relay protocol itself (see `tether_proto::link`).

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tether_proto::limits::MAX_FRAME_LEN;
use tether_proto::link::{RelayFrame, RelayUrl};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::RelayError;

/// A byte stream a WebSocket can run over (TCP, or TLS over TCP).
pub trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> LinkIo for T {}

/// A client's WebSocket to a relay.
pub type ClientLink = WebSocketStream<Box<dyn LinkIo>>;

/// The WebSocket settings of a relay link: messages and frames larger than `max_frame_len`
/// are refused before they are buffered (`LINK-5`).
pub fn websocket_config(max_frame_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_frame_len))
        .max_frame_size(Some(max_frame_len))
}

/// Bytes a relay-side WebSocket reads from its socket at a time.
///
/// tungstenite zero-fills its read buffer up to this size before every read, so with its
/// default (128 KiB) every connection kept about 140 KiB resident even when idle. With
/// 4 KiB an idle link with one session costs the relay about 11 KiB (`relay-capacity`,
/// `BENCHMARKS.md`); a larger frame is still read whole (the buffer grows to the frame's
/// length, bounded by `LINK-5`), in 4 KiB reads, with no measurable loss of throughput.
pub const RELAY_READ_BUFFER: usize = 4 * 1024;

/// The relay side's WebSocket settings: [`websocket_config`] with a read buffer of
/// [`RELAY_READ_BUFFER`], so that idle links cost little memory.
pub fn relay_websocket_config(max_frame_len: usize) -> WebSocketConfig {
    websocket_config(max_frame_len).read_buffer_size(RELAY_READ_BUFFER)
}

/// A rustls client configuration trusting only the certificates of the PEM file `ca_pem`
/// (for a relay with a private or self-signed certificate).
///
/// # Errors
/// [`RelayError::Io`] if the file cannot be read, [`RelayError::Tls`] if it holds no usable
/// certificate.
pub fn tls_config_with_ca(ca_pem: &Path) -> Result<Arc<rustls::ClientConfig>, RelayError> {
    let file = std::fs::File::open(ca_pem)
        .map_err(|e| RelayError::io(format!("opening {}", ca_pem.display()), e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
        let cert = cert.map_err(|e| RelayError::io(format!("reading {}", ca_pem.display()), e))?;
        roots
            .add(cert)
            .map_err(|e| RelayError::Tls(format!("{}: {e}", ca_pem.display())))?;
    }
    if roots.is_empty() {
        return Err(RelayError::Tls(format!(
            "no certificate in {}",
            ca_pem.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens a WebSocket to the relay at `url` (`ws://` or `wss://`, any path).
///
/// `wss://` needs `tls`; plain `ws://` is refused unless the host is a loopback address
/// (`localhost`, `127.0.0.0/8`, `::1`) (`LINK-2`).
///
/// # Errors
/// [`RelayError::Config`] for a bad URL or a refused scheme, [`RelayError::Io`] if the TCP
/// connection fails, [`RelayError::Tls`] if the TLS handshake fails,
/// [`RelayError::Link`] if the WebSocket upgrade fails.
pub async fn connect(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<ClientLink, RelayError> {
    let parsed =
        RelayUrl::parse(url).map_err(|e| RelayError::Config(format!("relay URL {url:?}: {e}")))?;
    // LINK-2
    parsed
        .check_transport(false)
        .map_err(|e| RelayError::Config(format!("relay URL {url:?}: {e}")))?;
    let (secure, host, port) = (parsed.is_tls(), parsed.host().to_owned(), parsed.port());
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| RelayError::io(format!("connecting to {host}:{port}"), e))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn LinkIo> = if secure {
        let tls = tls.ok_or_else(|| {
            RelayError::Tls(format!(
                "relay URL {url:?} is wss:// but no TLS roots were given"
            ))
        })?;
        let name = ServerName::try_from(host.clone())
            .map_err(|e| RelayError::Tls(format!("server name {host:?}: {e}")))?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| RelayError::Tls(format!("TLS handshake with {host}:{port}: {e}")))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (ws, _response) = tokio_tungstenite::client_async_with_config(
        parsed.as_str(),
        io,
        Some(websocket_config(MAX_FRAME_LEN)),
    )
    .await
    .map_err(|e| RelayError::Link(format!("WebSocket upgrade at {url}: {e}")))?;
    Ok(ws)
}

/// Sends one relay frame as one binary message (`LINK-1`).
///
/// # Errors
/// [`RelayError::Link`] if the frame does not encode or the WebSocket fails.
pub async fn send_frame(link: &mut ClientLink, frame: &RelayFrame) -> Result<(), RelayError> {
    let bytes = frame
        .to_bytes()
        .map_err(|e| RelayError::Link(format!("encoding {}: {e}", frame.type_name())))?;
    link.send(Message::Binary(bytes.into()))
        .await
        .map_err(|e| RelayError::Link(format!("sending {}: {e}", frame.type_name())))
}

/// Receives the next relay frame; `None` once the WebSocket has closed. WebSocket pings
/// and pongs are skipped (they carry no meaning on the relay link).
///
/// # Errors
/// [`RelayError::Link`] if the WebSocket fails, a text message arrives (`LINK-1`) or a
/// frame does not decode (`LINK-4`).
pub async fn recv_frame(link: &mut ClientLink) -> Result<Option<RelayFrame>, RelayError> {
    loop {
        let Some(message) = link.next().await else {
            return Ok(None);
        };
        match message {
            Ok(Message::Binary(bytes)) => {
                return RelayFrame::decode(&bytes)
                    .map(Some)
                    .map_err(|e| RelayError::Link(format!("relay frame: {e}")));
            }
            Ok(Message::Close(_)) => return Ok(None),
            Ok(Message::Text(_)) => {
                return Err(RelayError::Link(
                    "relay sent a text message (LINK-1)".into(),
                ));
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(
                tokio_tungstenite::tungstenite::Error::ConnectionClosed
                | tokio_tungstenite::tungstenite::Error::AlreadyClosed,
            ) => return Ok(None),
            Err(e) => return Err(RelayError::Link(format!("receiving: {e}"))),
        }
    }
}
