//! A controller's link to a relay (`spec/03-relay-link.md`).
//!
//! ```text
//!  connect (TCP, TLS for wss://, WebSocket) ──► HELLO(controller) ──► READY ──► ready
//!                                 GOAWAY(code) before READY ──► ControllerError::GoAway
//! ```
//!
//! Once `READY`, one tokio task owns the WebSocket: it routes `DATA` and `CLOSE` frames to
//! the session registered under their session id, answers `PING` with `PONG`, sends `PING`
//! after 20 s without sending (`LINK-25`), treats 60 s without receiving as a lost link
//! (`LINK-36`), and ends every session when the link ends (`GOAWAY` either way or the
//! connection dropping). [`Link`] is a cheap handle to that task; the link ends with
//! `GOAWAY NORMAL` when the last handle (and every session on it) is dropped, or at
//! [`Link::close`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_proto::limits::{
    AUTH_DEADLINE, KEEPALIVE_INTERVAL, LINK_IDLE_TIMEOUT, MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{CloseInfo, ControllerError};

/// How to reach relays.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// An extra CA certificate file (PEM) to trust for `wss://`, besides the webpki roots
    /// (test relays with self-signed certificates).
    pub ca_cert: Option<PathBuf>,
    /// Allow plain `ws://` to a non-loopback address (`LINK-2`).
    pub insecure: bool,
    /// Time allowed for TCP, TLS and WebSocket set-up, and then again for `READY`.
    pub connect_timeout: Duration,
    /// Send `PING` after this long without sending (`LINK-25`).
    pub keepalive: Duration,
    /// Treat the link as lost after this long without receiving (`LINK-36`).
    pub idle_timeout: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            ca_cert: None,
            insecure: false,
            connect_timeout: AUTH_DEADLINE,
            keepalive: KEEPALIVE_INTERVAL,
            idle_timeout: LINK_IDLE_TIMEOUT,
        }
    }
}

/// A parsed relay URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayUrl {
    /// The URL as given.
    pub url: String,
    /// `wss://`.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 or 443).
    pub port: u16,
}

impl RelayUrl {
    /// Parses a `ws://` or `wss://` URL.
    ///
    /// # Errors
    /// [`ControllerError::BadUrl`].
    pub fn parse(url: &str) -> Result<Self, ControllerError> {
        let bad = |detail: &str| ControllerError::BadUrl {
            url: url.to_owned(),
            detail: detail.to_owned(),
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(bad("must start with ws:// or wss://"));
        };
        let authority = rest
            .split(['/', '?', '#'])
            .next()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("no host"))?;
        if authority.contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("bad port"))?),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        };
        Ok(Self {
            url: url.to_owned(),
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// Whether the host is a loopback address: `localhost`, `127.0.0.0/8` or `::1`
    /// (`LINK-2`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// What the link task delivers to one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionInput {
    /// A `DATA` frame's payload.
    Data(Vec<u8>),
    /// The relay delivered `CLOSE` (the session is unregistered).
    Close(CloseCode),
    /// The link ended; the session is gone with it.
    LinkEnded(LinkEnd),
}

/// How a link ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// The relay sent `GOAWAY`.
    GoAway {
        /// Its code.
        code: CloseCode,
        /// Its reason text.
        reason: String,
    },
    /// This controller closed it.
    Closed,
    /// The connection dropped, failed, or went quiet for the idle timeout (`LINK-36`).
    Lost(String),
}

impl From<LinkEnd> for ControllerError {
    fn from(end: LinkEnd) -> Self {
        match end {
            LinkEnd::GoAway { code, reason } => ControllerError::GoAway {
                info: CloseInfo {
                    code,
                    by_peer: true,
                    link_level: true,
                },
                reason,
            },
            LinkEnd::Closed => ControllerError::LinkLost {
                detail: "the link was closed by this controller".to_owned(),
            },
            LinkEnd::Lost(detail) => ControllerError::LinkLost { detail },
        }
    }
}

enum LinkCommand {
    Frame(RelayFrame),
    GoAway(CloseCode),
}

type Routes = Arc<Mutex<HashMap<SessionId, mpsc::UnboundedSender<SessionInput>>>>;

/// A `READY` link to a relay. Clones share the link.
#[derive(Clone, Debug)]
pub struct Link {
    commands: mpsc::UnboundedSender<LinkCommand>,
    routes: Routes,
    ended: watch::Receiver<Option<LinkEnd>>,
    url: String,
    workspace: String,
}

/// The relay's answer to a link's `HELLO` (`READY`, or `GOAWAY` with its code), from
/// [`Link::start`].
#[derive(Debug)]
pub struct PendingReady {
    rx: oneshot::Receiver<Result<(), LinkEnd>>,
    url: String,
    timeout: Duration,
}

impl PendingReady {
    /// Waits for `READY`, at most the link's connect timeout (the relay's auth deadline,
    /// `LINK-7`).
    ///
    /// # Errors
    /// [`ControllerError::GoAway`] when the relay refused the `HELLO` (for example
    /// `AUTH_FAILED`, `LINK-10`), [`ControllerError::Connect`] when the connection ended or
    /// no `READY` came in time.
    pub async fn wait(self) -> Result<(), ControllerError> {
        match tokio::time::timeout(self.timeout, self.rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(LinkEnd::GoAway { code, reason }))) => {
                Err(LinkEnd::GoAway { code, reason }.into())
            }
            Ok(Ok(Err(LinkEnd::Lost(detail)))) => Err(connect_error(
                &self.url,
                &format!("{detail} (before READY)"),
            )),
            Ok(Ok(Err(LinkEnd::Closed)) | Err(_)) => {
                Err(connect_error(&self.url, &"connection closed before READY"))
            }
            Err(_) => Err(connect_error(
                &self.url,
                &format!("no READY within {} s (LINK-7)", self.timeout.as_secs()),
            )),
        }
    }
}

impl std::fmt::Debug for LinkCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Frame(frame) => write!(f, "Frame({})", frame.type_name()),
            Self::GoAway(code) => write!(f, "GoAway({code})"),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Ws = WebSocketStream<Box<dyn Io>>;

impl Link {
    /// Connects to the relay at `url` and authenticates as a controller of `workspace`
    /// with `credential` (its UTF-8 bytes, 16 to 255 of them), waiting for `READY`.
    ///
    /// # Errors
    /// [`ControllerError::BadUrl`], [`ControllerError::InsecureUrl`] (`LINK-2`),
    /// [`ControllerError::Tls`], [`ControllerError::Connect`], [`ControllerError::GoAway`]
    /// (for example `AUTH_FAILED`, `LINK-10`), [`ControllerError::Protocol`] for a bad
    /// workspace or credential length.
    pub async fn connect(
        url: &str,
        workspace: &str,
        credential: &str,
        options: &LinkOptions,
    ) -> Result<Self, ControllerError> {
        let (link, ready) = Self::start(url, workspace, credential, options).await?;
        ready.wait().await?;
        Ok(link)
    }

    /// Like [`Link::connect`], but returns as soon as `HELLO` is written: the relay's
    /// answer is awaited with [`PendingReady::wait`]. Frames queued on the link in the
    /// meantime go out at once, after the `HELLO`; the relay processes a link's frames in
    /// order, so a controller's `OPEN` sent this way reaches it in `READY` (`LINK-38`) and
    /// a connection saves the round trip to the relay. Queue only frames of at most 512
    /// bytes before `READY` arrives (`LINK-6`).
    ///
    /// # Errors
    /// As [`Link::connect`], except the relay's refusal, which [`PendingReady::wait`]
    /// returns.
    pub async fn start(
        url: &str,
        workspace: &str,
        credential: &str,
        options: &LinkOptions,
    ) -> Result<(Self, PendingReady), ControllerError> {
        let parsed = RelayUrl::parse(url)?;
        // LINK-2
        if !parsed.tls && !parsed.is_loopback() && !options.insecure {
            return Err(ControllerError::InsecureUrl {
                url: url.to_owned(),
            });
        }
        let hello = RelayFrame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Controller,
            workspace: workspace.to_owned(),
            credential: credential.as_bytes().to_vec(),
            registration: Vec::new(),
        }
        .to_bytes()
        .map_err(tether_proto::Error::from)?;
        let mut ws =
            tokio::time::timeout(options.connect_timeout, open_websocket(&parsed, options))
                .await
                .map_err(|_| ControllerError::Connect {
                    url: url.to_owned(),
                    detail: format!(
                        "no connection within {} s",
                        options.connect_timeout.as_secs()
                    ),
                })??;
        ws.send(WsMessage::binary(hello))
            .await
            .map_err(|e| connect_error(url, &e))?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
        let (ended_tx, ended) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = Driver {
            ws,
            commands: command_rx,
            routes: routes.clone(),
            ended: ended_tx,
            ready: Some(ready_tx),
            keepalive: options.keepalive,
            idle_timeout: options.idle_timeout,
            next_ping: 0,
        };
        tokio::spawn(driver.run());
        let link = Self {
            commands,
            routes,
            ended,
            url: url.to_owned(),
            workspace: workspace.to_owned(),
        };
        let ready = PendingReady {
            rx: ready_rx,
            url: url.to_owned(),
            timeout: options.connect_timeout,
        };
        Ok((link, ready))
    }

    /// The relay URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The workspace the link authenticated in.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// Registers a session id so that the link delivers that session's `DATA` and `CLOSE`
    /// to the returned receiver. The caller then sends `OPEN` itself.
    ///
    /// # Errors
    /// [`ControllerError::Usage`] if the id is already registered on this link (`LINK-16`),
    /// or the link's end if it has ended.
    pub fn register(
        &self,
        session: SessionId,
    ) -> Result<mpsc::UnboundedReceiver<SessionInput>, ControllerError> {
        if let Some(end) = self.end() {
            return Err(end.into());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.contains_key(&session) {
            return Err(ControllerError::Usage(format!(
                "session id {session} is already open on this link (LINK-16)"
            )));
        }
        routes.insert(session, tx);
        Ok(rx)
    }

    /// Forgets a session id (after its `CLOSE` either way).
    pub fn unregister(&self, session: SessionId) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session);
    }

    /// Queues one frame for the relay, unchecked: any frame a controller may send, and for
    /// conformance tests any it may not.
    ///
    /// # Errors
    /// The link's end if it has ended.
    pub fn send_frame(&self, frame: RelayFrame) -> Result<(), ControllerError> {
        if let Some(end) = self.end() {
            return Err(end.into());
        }
        self.commands
            .send(LinkCommand::Frame(frame))
            .map_err(|_| ControllerError::LinkLost {
                detail: "link task ended".to_owned(),
            })
    }

    /// How the link ended, or `None` while it is up.
    pub fn end(&self) -> Option<LinkEnd> {
        self.ended.borrow().clone()
    }

    /// Waits until the link ends and says how.
    pub async fn ended(&self) -> LinkEnd {
        let mut rx = self.ended.clone();
        loop {
            if let Some(end) = rx.borrow_and_update().clone() {
                return end;
            }
            if rx.changed().await.is_err() {
                return rx
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| LinkEnd::Lost("link task ended".to_owned()));
            }
        }
    }

    /// Ends the link with `GOAWAY(code)` (`NORMAL` when leaving normally, `LINK-27`) and
    /// waits, at most 5 s, until the frames queued before it have been written.
    pub async fn close(&self, code: CloseCode) {
        if self.commands.send(LinkCommand::GoAway(code)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.ended()).await;
        }
    }
}

fn connect_error(url: &str, e: &dyn std::fmt::Display) -> ControllerError {
    ControllerError::Connect {
        url: url.to_owned(),
        detail: e.to_string(),
    }
}

async fn open_websocket(url: &RelayUrl, options: &LinkOptions) -> Result<Ws, ControllerError> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| connect_error(&url.url, &e))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if url.tls {
        let config = tls_config(options)?;
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| connect_error(&url.url, &e))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| connect_error(&url.url, &e))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    // LINK-5: refuse larger messages before buffering them.
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_LEN))
        .max_frame_size(Some(MAX_FRAME_LEN));
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(url.url.as_str(), stream, Some(config))
            .await
            .map_err(|e| connect_error(&url.url, &e))?;
    Ok(ws)
}

/// The rustls client configuration: webpki roots plus the `ca_cert` file.
///
/// # Errors
/// [`ControllerError::Tls`].
pub fn tls_config(options: &LinkOptions) -> Result<Arc<rustls::ClientConfig>, ControllerError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &options.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| ControllerError::Tls(format!("reading {}: {e}", path.display())))?;
        let mut added = 0usize;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| ControllerError::Tls(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| ControllerError::Tls(format!("{}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(ControllerError::Tls(format!(
                "{}: no certificate found",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ControllerError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

struct Driver {
    ws: Ws,
    commands: mpsc::UnboundedReceiver<LinkCommand>,
    routes: Routes,
    ended: watch::Sender<Option<LinkEnd>>,
    /// Until `READY` arrives: where to report it (or the link's end).
    ready: Option<oneshot::Sender<Result<(), LinkEnd>>>,
    keepalive: Duration,
    idle_timeout: Duration,
    next_ping: u64,
}

impl Driver {
    async fn run(mut self) {
        let end = self.serve().await;
        tracing::debug!(?end, "relay link ended");
        let _ = self.ws.close(None).await;
        let routes: Vec<_> = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, tx) in routes {
            let _ = tx.send(SessionInput::LinkEnded(end.clone()));
        }
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(end.clone()));
        }
        let _ = self.ended.send(Some(end));
    }

    async fn send(&mut self, frame: &RelayFrame) -> Result<(), LinkEnd> {
        let bytes = match frame.to_bytes() {
            Ok(b) => b,
            Err(e) => {
                // A frame this controller built breaks a field rule: drop it, keep the link.
                tracing::warn!(error = %e, "not sending an invalid {} frame", frame.type_name());
                return Ok(());
            }
        };
        self.ws
            .send(WsMessage::binary(bytes))
            .await
            .map_err(|e| LinkEnd::Lost(e.to_string()))
    }

    async fn serve(&mut self) -> LinkEnd {
        let mut last_sent = Instant::now();
        let mut last_received = Instant::now();
        loop {
            let ping_at = last_sent + self.keepalive;
            let idle_at = last_received + self.idle_timeout;
            tokio::select! {
                command = self.commands.recv() => {
                    let (frame, last) = match command {
                        Some(LinkCommand::Frame(f)) => (f, false),
                        Some(LinkCommand::GoAway(code)) => (RelayFrame::GoAway { code, reason: String::new() }, true),
                        // Every handle is gone: leave normally (LINK-27).
                        None => (RelayFrame::GoAway { code: CloseCode::NORMAL, reason: String::new() }, true),
                    };
                    if let Err(end) = self.send(&frame).await {
                        return end;
                    }
                    last_sent = Instant::now();
                    if last {
                        // LINK-27: nothing after our GOAWAY.
                        return LinkEnd::Closed;
                    }
                }
                message = self.ws.next() => {
                    last_received = Instant::now();
                    let bytes = match message {
                        None => return LinkEnd::Lost("connection closed by the relay".to_owned()),
                        Some(Err(e)) => return LinkEnd::Lost(e.to_string()),
                        Some(Ok(WsMessage::Binary(b))) => b,
                        Some(Ok(WsMessage::Close(_))) => {
                            return LinkEnd::Lost("WebSocket closed by the relay".to_owned());
                        }
                        Some(Ok(_)) => continue,
                    };
                    let frame = match RelayFrame::decode(&bytes) {
                        Ok(f) => f,
                        Err(e) => {
                            // LINK-4: a malformed frame ends the link.
                            let _ = self.send(&RelayFrame::GoAway { code: e.close_code(), reason: String::new() }).await;
                            return LinkEnd::Lost(format!("relay sent a malformed frame: {e} ({})", e.requirement()));
                        }
                    };
                    if self.ready.is_some() {
                        // Before READY the relay may send READY or GOAWAY (and this
                        // controller answers a PING); anything else breaks LINK-8.
                        match frame {
                            RelayFrame::Ready => {
                                if let Some(ready) = self.ready.take() {
                                    let _ = ready.send(Ok(()));
                                }
                                continue;
                            }
                            RelayFrame::GoAway { .. } | RelayFrame::Ping { .. } => {}
                            other => {
                                let _ = self.send(&RelayFrame::GoAway { code: CloseCode::UNEXPECTED_FRAME, reason: String::new() }).await;
                                return LinkEnd::Lost(format!("relay sent {} before READY (LINK-8)", other.type_name()));
                            }
                        }
                    }
                    match frame {
                        RelayFrame::Data { session, payload } => {
                            self.route(session, SessionInput::Data(payload), false);
                        }
                        RelayFrame::Close { session, code } => {
                            self.route(session, SessionInput::Close(code), true);
                        }
                        RelayFrame::Ping { value } => {
                            // LINK-25
                            if let Err(end) = self.send(&RelayFrame::Pong { value }).await {
                                return end;
                            }
                            last_sent = Instant::now();
                        }
                        RelayFrame::Pong { .. } => {}
                        RelayFrame::GoAway { code, reason } => {
                            // LINK-27: send nothing more.
                            return LinkEnd::GoAway { code, reason };
                        }
                        other => {
                            // LINK-8: frames a controller never receives.
                            let _ = self.send(&RelayFrame::GoAway { code: CloseCode::UNEXPECTED_FRAME, reason: String::new() }).await;
                            return LinkEnd::Lost(format!("relay sent an unexpected {} frame (LINK-8)", other.type_name()));
                        }
                    }
                }
                () = tokio::time::sleep_until(ping_at) => {
                    // LINK-25
                    let value = self.next_ping;
                    self.next_ping = self.next_ping.wrapping_add(1);
                    if let Err(end) = self.send(&RelayFrame::Ping { value }).await {
                        return end;
                    }
                    last_sent = Instant::now();
                }
                () = tokio::time::sleep_until(idle_at) => {
                    // LINK-36
                    return LinkEnd::Lost(format!(
                        "nothing received for {} s (LINK-36)",
                        self.idle_timeout.as_secs()
                    ));
                }
            }
        }
    }

    fn route(&self, session: SessionId, input: SessionInput, remove: bool) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let tx = if remove {
            routes.remove(&session)
        } else {
            routes.get(&session).cloned()
        };
        match tx {
            Some(tx) => {
                let _ = tx.send(input);
            }
            None => tracing::debug!(%session, "frame for a session this link does not know"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_urls() {
        let u = RelayUrl::parse("ws://127.0.0.1:7400/tether").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 7400));
        assert!(u.is_loopback());
        let u = RelayUrl::parse("wss://relay.example").unwrap();
        assert_eq!((u.tls, u.port), (true, 443));
        assert!(!u.is_loopback());
        let u = RelayUrl::parse("ws://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert!(u.is_loopback());
        assert!(RelayUrl::parse("http://x").is_err());
        assert!(RelayUrl::parse("ws://").is_err());
        assert!(RelayUrl::parse("ws://a@b").is_err());
        assert!(RelayUrl::parse("ws://a:99999").is_err());
    }

    /// LINK-2: plain ws:// only to loopback unless allowed.
    #[tokio::test]
    async fn plain_ws_to_non_loopback_is_refused_link_2() {
        let err = Link::connect(
            "ws://192.0.2.1:7400/",
            "acme",
            "0123456789abcdef",
            &LinkOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ControllerError::InsecureUrl { .. }), "{err}");
    }
}
