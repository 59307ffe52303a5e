//! The runner's side of a relay link: a WebSocket that speaks raw relay frames and logs
//! every message, with the helpers cases use to play a host or a controller.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tether_proto::keys::public_key;
use tether_proto::limits::{MAX_FRAME_LEN, PROTOCOL_VERSION};
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame, RelayUrl, Role, SessionId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::context::{Context, Credential, RelayTarget, TlsOptions};
use crate::outcome::{CaseError, CaseResult, fail};
pub use crate::random::{random_bytes, random_session};
use crate::traffic::{Direction, TrafficLog, describe};

/// How long helpers wait for an answer the target should send at once.
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How long a link may take to end after the target sent `GOAWAY` (`LINK-27`).
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Anything a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// One WebSocket message from the target, or the end of the WebSocket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A binary message: the bytes of one relay frame (`LINK-1`).
    Binary(Vec<u8>),
    /// A text message (never allowed, `LINK-1`).
    Text(String),
    /// The WebSocket ended: a close frame, EOF or a transport error (the detail).
    Closed(String),
}

/// Options of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectOptions {
    /// `SO_RCVBUF` for the TCP socket: a small value makes a non-reading side fill up quickly
    /// (slow-reader cases).
    pub recv_buffer: Option<u32>,
    /// Wait this long between the TCP (and TLS) connection and the WebSocket upgrade: the
    /// relay's timers start when the upgrade completes (`LINK-44`).
    pub upgrade_delay: Option<Duration>,
    /// Offer these WebSocket subprotocols (`Sec-WebSocket-Protocol`) in the upgrade
    /// request; the relay must select none (`LINK-45`).
    pub subprotocols: Option<&'static str>,
    /// Offer these WebSocket extensions (`Sec-WebSocket-Extensions`) in the upgrade
    /// request; the relay must accept none (`LINK-45`).
    pub extensions: Option<&'static str>,
}

/// The runner's end of one relay link.
pub struct Link {
    name: String,
    log: TrafficLog,
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    ended: bool,
    /// The header fields of the relay's answer to the WebSocket upgrade, names in lower
    /// case.
    upgrade_headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The relay URL, parsed by the core's one parser ([`RelayUrl`], `LINK-2`).
///
/// # Errors
/// The URL is not a `ws://` or `wss://` URL the parser accepts.
pub fn parse_url(url: &str) -> Result<RelayUrl, String> {
    RelayUrl::parse(url).map_err(|e| format!("relay URL {url:?}: {e}"))
}

/// Whether the URL's host is a loopback address (`LINK-2`).
pub fn is_loopback_url(url: &str) -> bool {
    RelayUrl::parse(url).is_ok_and(|u| u.is_loopback())
}

mod insecure {
    //! A certificate verifier that accepts anything (`--insecure` only).
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{
        WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
    };
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub(super) struct AcceptAny(pub(super) WebPkiSupportedAlgorithms);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.0)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }
}

fn tls_config(tls: &TlsOptions) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    if tls.insecure {
        let verifier = insecure::AcceptAny(provider.signature_verification_algorithms);
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &tls.ca_certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("--ca-cert: {e}"))?;
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The header fields of an HTTP answer, names in lower case.
type Headers = Vec<(String, String)>;

async fn connect_ws(target: &RelayTarget, opts: ConnectOptions) -> Result<(Ws, Headers), String> {
    let url = parse_url(&target.url)?;
    // LINK-2: the runner is a client too.
    url.check_transport(target.tls.insecure)
        .map_err(|e| format!("relay URL {:?}: {e} (--insecure)", target.url))?;
    let (host, port, tls) = (url.host().to_owned(), url.port(), url.is_tls());
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(n) = opts.recv_buffer {
        socket
            .set_recv_buffer_size(n)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    let tcp: TcpStream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if tls {
        let config = tls_config(&target.tls)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("server name {host}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    if let Some(delay) = opts.upgrade_delay {
        tokio::time::sleep(delay).await;
    }
    // Accept more than the protocol allows, so that an oversize frame from the target is
    // reported by the case rather than hidden in a WebSocket error.
    let config = WebSocketConfig::default()
        .max_message_size(Some(4 * MAX_FRAME_LEN))
        .max_frame_size(Some(4 * MAX_FRAME_LEN));
    if opts.subprotocols.is_some() || opts.extensions.is_some() {
        return offering_upgrade(io, &url, &target.url, opts, config).await;
    }
    let (ws, resp) =
        tokio_tungstenite::client_async_with_config(target.url.as_str(), io, Some(config))
            .await
            .map_err(|e| format!("WebSocket handshake with {}: {e}", target.url))?;
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok((ws, headers))
}

/// The authority (`host[:port]`) and the resource name (path and query, `/` when empty) of
/// a relay URL the parser accepted (RFC 6455 section 3, `LINK-45`).
fn authority_and_resource(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('#').next().unwrap_or_default();
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, resource) = rest.split_at(cut);
    let resource = if resource.starts_with('/') {
        resource.to_owned()
    } else {
        format!("/{resource}")
    };
    (authority.to_owned(), resource)
}

/// The WebSocket upgrade written by hand, offering subprotocols or extensions: a WebSocket
/// library's client refuses an answer that selects no subprotocol when it offered one
/// (stricter than RFC 6455), which is exactly the answer `LINK-45` requires. Checks the
/// status and `Sec-WebSocket-Accept`, then speaks WebSocket on the stream without any
/// extension.
async fn offering_upgrade(
    mut io: Box<dyn Io>,
    url: &RelayUrl,
    url_text: &str,
    opts: ConnectOptions,
    config: WebSocketConfig,
) -> Result<(Ws, Headers), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let (authority, resource) = authority_and_resource(url.as_str());
    let mut request = format!(
        "GET {resource} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    if let Some(p) = opts.subprotocols {
        request.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    if let Some(x) = opts.extensions {
        request.push_str(&format!("Sec-WebSocket-Extensions: {x}\r\n"));
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("WebSocket upgrade request to {url_text}: {e}"))?;
    io.flush().await.map_err(|e| format!("flushing: {e}"))?;
    // The answer's head, byte by byte: nothing after it may be consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(format!(
                "the answer to the upgrade from {url_text} has no end"
            ));
        }
        let mut b = [0u8; 1];
        let n = io
            .read(&mut b)
            .await
            .map_err(|e| format!("reading the upgrade answer from {url_text}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "{url_text} closed the connection during the upgrade"
            ));
        }
        head.extend_from_slice(&b);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(format!(
            "WebSocket upgrade with {url_text} refused: {status}"
        ));
    }
    let headers: Headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if !headers
        .iter()
        .any(|(k, v)| k == "sec-websocket-accept" && *v == accept)
    {
        return Err(format!(
            "the upgrade answer from {url_text} has no valid Sec-WebSocket-Accept"
        ));
    }
    let ws = WebSocketStream::from_raw_socket(
        io,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        Some(config),
    )
    .await;
    Ok((ws, headers))
}

impl Link {
    /// Opens a WebSocket to the relay under test.
    ///
    /// # Errors
    /// The connection or the WebSocket handshake failed.
    pub async fn connect(cx: &Context, name: &str) -> CaseResult<Self> {
        Self::connect_with(cx, name, ConnectOptions::default()).await
    }

    /// Opens a WebSocket with options.
    ///
    /// # Errors
    /// The connection or the WebSocket handshake failed.
    pub async fn connect_with(cx: &Context, name: &str, opts: ConnectOptions) -> CaseResult<Self> {
        let target = cx.relay()?;
        let limit = Duration::from_secs(10) + opts.upgrade_delay.unwrap_or_default();
        let (ws, upgrade_headers) = tokio::time::timeout(limit, connect_ws(target, opts))
            .await
            .map_err(|_| {
                CaseError(format!(
                    "{name}: connecting took more than {} s",
                    limit.as_secs()
                ))
            })?
            .map_err(|e| CaseError(format!("{name}: {e}")))?;
        cx.log.note(name, format!("connected to {}", target.url));
        let (sink, stream) = ws.split();
        Ok(Self {
            name: name.to_owned(),
            log: cx.log.clone(),
            sink,
            stream,
            ended: false,
            upgrade_headers,
        })
    }

    /// The value of header field `name` (any case) in the relay's answer to the WebSocket
    /// upgrade, if it has one.
    pub fn upgrade_header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.upgrade_headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The runner's name of this link.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, what: impl std::fmt::Display) -> CaseError {
        CaseError(format!("{}: {what}", self.name))
    }

    /// Sends bytes as one binary message, whatever they are.
    ///
    /// # Errors
    /// The WebSocket refused the message.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> CaseResult<()> {
        self.log.binary(&self.name, Direction::Sent, &bytes);
        self.sink
            .send(Message::binary(bytes))
            .await
            .map_err(|e| self.err(format_args!("sending: {e}")))
    }

    /// Sends several messages in one write, as a client that pipelines them does
    /// (`LINK-38`): they reach the relay together.
    ///
    /// # Errors
    /// The WebSocket refused a message.
    pub async fn send_together(&mut self, messages: Vec<Vec<u8>>) -> CaseResult<()> {
        for bytes in messages {
            self.log.binary(&self.name, Direction::Sent, &bytes);
            self.sink
                .feed(Message::binary(bytes))
                .await
                .map_err(|e| self.err(format_args!("sending: {e}")))?;
        }
        self.sink
            .flush()
            .await
            .map_err(|e| self.err(format_args!("sending: {e}")))
    }

    /// Encodes and sends a frame.
    ///
    /// # Errors
    /// The frame does not encode (a case bug) or the WebSocket refused it.
    pub async fn send(&mut self, frame: &RelayFrame) -> CaseResult<()> {
        let bytes = frame
            .to_bytes()
            .map_err(|e| self.err(format_args!("encoding {}: {e}", describe(frame))))?;
        self.send_bytes(bytes).await
    }

    /// Sends a WebSocket text message.
    ///
    /// # Errors
    /// The WebSocket refused it.
    pub async fn send_text(&mut self, text: &str) -> CaseResult<()> {
        self.log.text(&self.name, Direction::Sent, text);
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| self.err(format_args!("sending text: {e}")))
    }

    /// Ends the link without `GOAWAY`: drops the TCP connection (link loss).
    pub async fn drop_connection(self) {
        self.log.closed(
            &self.name,
            Direction::Sent,
            "connection dropped without GOAWAY",
        );
        drop(self.sink);
        drop(self.stream);
    }

    /// Ends the link with a WebSocket close handshake, without `GOAWAY`.
    pub async fn close_websocket(mut self) {
        self.log
            .closed(&self.name, Direction::Sent, "WebSocket close");
        let _ = self.sink.close().await;
    }

    /// The next WebSocket message, or the end of the WebSocket, within `wait`.
    ///
    /// # Errors
    /// Nothing arrived within `wait`.
    pub async fn next(&mut self, wait: Duration) -> CaseResult<Incoming> {
        if self.ended {
            return Ok(Incoming::Closed("already closed".to_owned()));
        }
        loop {
            let item = match tokio::time::timeout(wait, self.stream.next()).await {
                Err(_) => {
                    return Err(self.err(format_args!(
                        "nothing received within {:.1} s",
                        wait.as_secs_f64()
                    )));
                }
                Ok(item) => item,
            };
            let incoming = match item {
                None => Incoming::Closed("EOF".to_owned()),
                Some(Err(e)) => Incoming::Closed(format!("transport error: {e}")),
                Some(Ok(Message::Binary(b))) => Incoming::Binary(b.to_vec()),
                Some(Ok(Message::Text(t))) => Incoming::Text(t.as_str().to_owned()),
                Some(Ok(Message::Close(c))) => Incoming::Closed(match c {
                    Some(c) => format!(
                        "WebSocket close {} {:?}",
                        u16::from(c.code),
                        c.reason.as_str()
                    ),
                    None => "WebSocket close".to_owned(),
                }),
                // WebSocket-level pings carry no meaning (spec/03 section 3.1).
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            };
            match &incoming {
                Incoming::Binary(b) => self.log.binary(&self.name, Direction::Received, b),
                Incoming::Text(t) => self.log.text(&self.name, Direction::Received, t),
                Incoming::Closed(d) => {
                    self.ended = true;
                    self.log.closed(&self.name, Direction::Received, d);
                }
            }
            return Ok(incoming);
        }
    }

    /// The next relay frame, strictly decoded (`LINK-30`). A `PING` from the target is
    /// answered with `PONG` and skipped (`LINK-25`).
    ///
    /// # Errors
    /// Nothing within `wait`, a text message, the end of the link, or bytes that do not
    /// decode.
    pub async fn recv(&mut self, wait: Duration) -> CaseResult<RelayFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.recv_any(left).await?;
            if let RelayFrame::Ping { value } = frame {
                self.send(&RelayFrame::Pong { value }).await?;
                continue;
            }
            return Ok(frame);
        }
    }

    /// Like [`Link::recv`], but `PING` is returned, not answered.
    ///
    /// # Errors
    /// As [`Link::recv`].
    pub async fn recv_any(&mut self, wait: Duration) -> CaseResult<RelayFrame> {
        match self.next(wait).await? {
            Incoming::Binary(b) => RelayFrame::decode(&b).map_err(|e| {
                self.err(format_args!(
                    "received bytes that are not a valid frame: {} [{}] (LINK-30)",
                    e.name(),
                    e.requirement()
                ))
            }),
            Incoming::Text(_) => Err(self.err("received a WebSocket text message (LINK-1)")),
            Incoming::Closed(d) => Err(self.err(format_args!("link ended ({d})"))),
        }
    }

    /// Expects `GOAWAY` with exactly `code` as the next frame, then the end of the WebSocket
    /// with nothing after it (`LINK-27`). `PING`s before the `GOAWAY` are answered.
    ///
    /// # Errors
    /// Another frame, another code, no `GOAWAY` within `wait`, a frame after the `GOAWAY`,
    /// or a link still open [`CLOSE_WAIT`] after it.
    pub async fn expect_goaway(&mut self, code: CloseCode, wait: Duration) -> CaseResult<String> {
        let frame = match self.recv(wait).await {
            Ok(f) => f,
            Err(e) => return fail(format!("expected GOAWAY {code}; {e}")),
        };
        let reason = match frame {
            RelayFrame::GoAway { code: got, reason } if got == code => reason,
            RelayFrame::GoAway { code: got, reason } => {
                return fail(format!(
                    "{}: expected GOAWAY {code}, got GOAWAY {got} {reason:?}",
                    self.name
                ));
            }
            other => {
                return fail(format!(
                    "{}: expected GOAWAY {code}, got {}",
                    self.name,
                    describe(&other)
                ));
            }
        };
        self.expect_end_after_goaway().await?;
        Ok(reason)
    }

    /// After a `GOAWAY` from the target: nothing more arrives and the WebSocket ends within
    /// [`CLOSE_WAIT`] (`LINK-27`).
    ///
    /// # Errors
    /// A message after the `GOAWAY`, or the link still open.
    pub async fn expect_end_after_goaway(&mut self) -> CaseResult<()> {
        match self.next(CLOSE_WAIT).await {
            Ok(Incoming::Closed(_)) => Ok(()),
            Ok(Incoming::Binary(b)) => fail(format!(
                "{}: the target sent a frame after its GOAWAY (LINK-27): {}",
                self.name,
                crate::traffic::describe_frame(&b)
            )),
            Ok(Incoming::Text(_)) => fail(format!(
                "{}: the target sent a text message after its GOAWAY (LINK-27)",
                self.name
            )),
            Err(_) => fail(format!(
                "{}: the target did not close the WebSocket within {} s of its GOAWAY (LINK-27)",
                self.name,
                CLOSE_WAIT.as_secs()
            )),
        }
    }

    /// Expects `CLOSE` for `session` with exactly `code` as the next frame.
    ///
    /// # Errors
    /// Anything else.
    pub async fn expect_close(
        &mut self,
        session: SessionId,
        code: CloseCode,
        wait: Duration,
    ) -> CaseResult<()> {
        let frame = match self.recv(wait).await {
            Ok(f) => f,
            Err(e) => return fail(format!("expected CLOSE session={session} {code}; {e}")),
        };
        match frame {
            RelayFrame::Close {
                session: s,
                code: c,
            } if s == session && c == code => Ok(()),
            other => fail(format!(
                "{}: expected CLOSE session={session} {code}, got {}",
                self.name,
                describe(&other)
            )),
        }
    }

    /// Expects `frame` exactly as the next frame.
    ///
    /// # Errors
    /// Anything else.
    pub async fn expect_frame(&mut self, want: &RelayFrame, wait: Duration) -> CaseResult<()> {
        let got = match self.recv(wait).await {
            Ok(f) => f,
            Err(e) => return fail(format!("expected {}; {e}", describe(want))),
        };
        if &got == want {
            Ok(())
        } else {
            fail(format!(
                "{}: expected {}, got {}",
                self.name,
                describe(want),
                describe(&got)
            ))
        }
    }

    /// Expects nothing but `PING`s (answered) for `dur`, and the link still open.
    ///
    /// # Errors
    /// A frame or the end of the link.
    pub async fn expect_quiet(&mut self, dur: Duration) -> CaseResult<()> {
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.next(left).await {
                Err(_) => return Ok(()),
                Ok(Incoming::Binary(b)) => match RelayFrame::decode(&b) {
                    Ok(RelayFrame::Ping { value }) => {
                        self.send(&RelayFrame::Pong { value }).await?;
                    }
                    _ => {
                        return fail(format!(
                            "{}: expected nothing, got {}",
                            self.name,
                            crate::traffic::describe_frame(&b)
                        ));
                    }
                },
                Ok(Incoming::Text(_)) => {
                    return fail(format!(
                        "{}: expected nothing, got a text message",
                        self.name
                    ));
                }
                Ok(Incoming::Closed(d)) => {
                    return fail(format!(
                        "{}: expected the link to stay up, it ended ({d})",
                        self.name
                    ));
                }
            }
        }
    }

    /// Checks the link is up and the target is answering: `PING` with a random value gets
    /// its `PONG` (`LINK-25`), with no other frame first.
    ///
    /// # Errors
    /// No `PONG`, or another frame first.
    pub async fn expect_alive(&mut self) -> CaseResult<()> {
        let value = u64::from_be_bytes(random_bytes::<8>());
        self.send(&RelayFrame::Ping { value }).await?;
        self.expect_frame(&RelayFrame::Pong { value }, ANSWER_WAIT)
            .await
    }

    /// Like [`Link::expect_alive`], tolerating `CLOSE UNKNOWN_SESSION` for `session` first
    /// (answers to `DATA` that was in flight when the relay closed the session).
    ///
    /// # Errors
    /// No `PONG`, or another frame first.
    pub async fn expect_alive_ignoring(&mut self, session: SessionId) -> CaseResult<()> {
        let value = u64::from_be_bytes(random_bytes::<8>());
        self.send(&RelayFrame::Ping { value }).await?;
        loop {
            match self.recv(ANSWER_WAIT).await? {
                RelayFrame::Pong { value: v } if v == value => return Ok(()),
                RelayFrame::Close { session: s, code }
                    if s == session && code == CloseCode::UNKNOWN_SESSION => {}
                other => {
                    return fail(format!(
                        "{}: expected PONG {value}, got {}",
                        self.name,
                        describe(&other)
                    ));
                }
            }
        }
    }

    /// Sends `DATA` for `session` with `chunk` as payload again and again, reading at the
    /// same time, until `CLOSE session code` arrives; returns the payload bytes pushed.
    /// `PING`s are answered. Gives up after `max` bytes (then waits 10 s more for the
    /// `CLOSE`).
    ///
    /// # Errors
    /// Another frame arrives, the link ends, the target stops reading for 10 s, or `max`
    /// bytes brought no `CLOSE`.
    pub async fn push_until(
        &mut self,
        session: SessionId,
        chunk: &[u8],
        max: usize,
        code: CloseCode,
    ) -> CaseResult<usize> {
        let bytes = RelayFrame::Data {
            session,
            payload: chunk.to_vec(),
        }
        .to_bytes()
        .map_err(|e| self.err(format_args!("encoding DATA: {e}")))?;
        let stall = Duration::from_secs(10);
        let mut pushed = 0usize;
        loop {
            let sending = pushed < max;
            tokio::select! {
                r = tokio::time::timeout(stall, self.sink.send(Message::binary(bytes.clone()))), if sending => {
                    match r {
                        Err(_) => {
                            return fail(format!(
                                "{}: the target stopped reading this link after {pushed} bytes of DATA, instead of closing the session",
                                self.name
                            ));
                        }
                        Ok(Err(e)) => return Err(self.err(format_args!("sending: {e}"))),
                        Ok(Ok(())) => {
                            self.log.binary(&self.name, Direction::Sent, &bytes);
                            pushed += chunk.len();
                        }
                    }
                }
                item = tokio::time::timeout(stall, self.stream.next()) => {
                    let msg = match item {
                        Err(_) if sending => continue,
                        Err(_) => {
                            return fail(format!(
                                "{}: pushed {pushed} bytes of DATA to a reader that does not read and got no CLOSE {code}",
                                self.name
                            ));
                        }
                        Ok(m) => m,
                    };
                    let b = match msg {
                        Some(Ok(Message::Binary(b))) => b.to_vec(),
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                        Some(Ok(Message::Text(_))) => {
                            return Err(self.err("received a WebSocket text message (LINK-1)"));
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => {
                            self.ended = true;
                            self.log.closed(&self.name, Direction::Received, "link ended");
                            return Err(self.err(format_args!(
                                "link ended after {pushed} bytes of DATA, expected CLOSE {code}"
                            )));
                        }
                    };
                    self.log.binary(&self.name, Direction::Received, &b);
                    match RelayFrame::decode(&b) {
                        Ok(RelayFrame::Close { session: s, code: c }) if s == session && c == code => {
                            return Ok(pushed);
                        }
                        Ok(RelayFrame::Ping { value }) => {
                            self.send(&RelayFrame::Pong { value }).await?;
                        }
                        Ok(other) => {
                            return fail(format!(
                                "{}: expected CLOSE session={session} {code} while pushing DATA, got {}",
                                self.name,
                                describe(&other)
                            ));
                        }
                        Err(e) => {
                            return Err(self.err(format_args!(
                                "received bytes that are not a valid frame: {} (LINK-30)",
                                e.name()
                            )));
                        }
                    }
                }
            }
        }
    }

    /// Sends every message of `frames` while reading; each frame received (other than
    /// `PING`, which is answered) goes to `on_frame`, and the call returns when `on_frame`
    /// says it has seen enough. Fails if the target reads nothing and sends nothing for
    /// `stall`, or the link ends.
    ///
    /// # Errors
    /// `on_frame`'s error, a stall, or the end of the link.
    pub async fn send_all_reading(
        &mut self,
        frames: &[Vec<u8>],
        stall: Duration,
        on_frame: &mut (dyn FnMut(RelayFrame) -> CaseResult<bool> + Send),
    ) -> CaseResult<()> {
        let mut next = 0usize;
        loop {
            let frame = frames.get(next);
            tokio::select! {
                r = async {
                    match frame {
                        Some(b) => tokio::time::timeout(stall, self.sink.send(Message::binary(b.clone()))).await,
                        None => std::future::pending().await,
                    }
                } => {
                    match r {
                        Err(_) => {
                            return fail(format!(
                                "{}: the target stopped reading after {next} of {} frames",
                                self.name,
                                frames.len()
                            ));
                        }
                        Ok(Err(e)) => return Err(self.err(format_args!("sending: {e}"))),
                        Ok(Ok(())) => {
                            if let Some(b) = frame {
                                self.log.binary(&self.name, Direction::Sent, b);
                            }
                            next += 1;
                        }
                    }
                }
                item = tokio::time::timeout(stall, self.stream.next()) => {
                    let b = match item {
                        Err(_) if next < frames.len() => continue,
                        Err(_) => {
                            return fail(format!(
                                "{}: nothing received for {} s",
                                self.name,
                                stall.as_secs()
                            ));
                        }
                        Ok(Some(Ok(Message::Binary(b)))) => b.to_vec(),
                        Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
                        Ok(Some(Ok(Message::Text(_)))) => {
                            return Err(self.err("received a WebSocket text message (LINK-1)"));
                        }
                        Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => {
                            self.ended = true;
                            self.log.closed(&self.name, Direction::Received, "link ended");
                            return Err(self.err("link ended"));
                        }
                    };
                    self.log.binary(&self.name, Direction::Received, &b);
                    let f = RelayFrame::decode(&b).map_err(|e| {
                        self.err(format_args!("received bytes that are not a valid frame: {} (LINK-30)", e.name()))
                    })?;
                    if let RelayFrame::Ping { value } = f {
                        self.send(&RelayFrame::Pong { value }).await?;
                        continue;
                    }
                    if on_frame(f)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Sends `bytes`, a message far longer than any frame, while reading, and expects
    /// `GOAWAY code` as the first frame back, then the end of the link (`LINK-5`,
    /// `LINK-27`). The target may answer, and close, before the whole message is sent: a send
    /// that fails after that is not an error. Only the message's length and first bytes go to
    /// the traffic log.
    ///
    /// # Errors
    /// Nothing within `wait`, the link ended without a `GOAWAY`, another frame or code, a
    /// text message, or a frame after the `GOAWAY`.
    pub async fn send_oversize_expect_goaway(
        &mut self,
        bytes: Vec<u8>,
        code: CloseCode,
        wait: Duration,
    ) -> CaseResult<()> {
        let len = bytes.len();
        let head = hex::encode(bytes.get(..16).unwrap_or(&bytes));
        self.log.note(
            &self.name,
            format!("sending one {len}-byte binary message ({head}...)"),
        );
        let first = {
            let mut send = std::pin::pin!(self.sink.send(Message::binary(bytes)));
            let mut sending = true;
            let timer = tokio::time::sleep(wait);
            let mut timer = std::pin::pin!(timer);
            loop {
                tokio::select! {
                    r = &mut send, if sending => {
                        sending = false;
                        let what = match r {
                            Ok(()) => "the whole message was sent".to_owned(),
                            Err(e) => format!("sending ended early: {e}"),
                        };
                        self.log.note(&self.name, what);
                    }
                    item = self.stream.next() => match item {
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        other => break Some(other),
                    },
                    () = &mut timer => break None,
                }
            }
        };
        let item = match first {
            None => {
                return fail(format!(
                    "{}: nothing received within {:.1} s of a {len}-byte message; expected GOAWAY {code}",
                    self.name,
                    wait.as_secs_f64()
                ));
            }
            Some(item) => item,
        };
        let b = match item {
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Text(_))) => {
                return fail(format!(
                    "{}: expected GOAWAY {code}, got a text message (LINK-1)",
                    self.name
                ));
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                self.ended = true;
                self.log
                    .closed(&self.name, Direction::Received, "link ended");
                return fail(format!(
                    "{}: the link ended without GOAWAY {code} after a {len}-byte message",
                    self.name
                ));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                return fail(format!("{}: unreachable control message", self.name));
            }
        };
        self.log.binary(&self.name, Direction::Received, &b);
        match RelayFrame::decode(&b) {
            Ok(RelayFrame::GoAway { code: got, .. }) if got == code => {}
            Ok(other) => {
                return fail(format!(
                    "{}: expected GOAWAY {code} after a {len}-byte message, got {}",
                    self.name,
                    describe(&other)
                ));
            }
            Err(e) => {
                return fail(format!(
                    "{}: expected GOAWAY {code}, got undecodable bytes ({})",
                    self.name,
                    e.name()
                ));
            }
        }
        self.expect_end_after_goaway().await
    }

    /// Sends `GOAWAY code` and closes the WebSocket (`LINK-27`).
    ///
    /// # Errors
    /// The WebSocket refused the frame.
    pub async fn goaway(mut self, code: CloseCode) -> CaseResult<()> {
        self.send(&RelayFrame::GoAway {
            code,
            reason: String::new(),
        })
        .await?;
        let _ = self.sink.close().await;
        Ok(())
    }
}

/// A host identity: a static X25519 key pair made for one case.
#[derive(Clone)]
pub struct HostKey {
    /// The private key.
    pub private: [u8; 32],
    /// The public key controllers address in `OPEN`.
    pub public: [u8; 32],
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({})", hex::encode(self.public))
    }
}

impl HostKey {
    /// A fresh random key pair.
    pub fn random() -> Self {
        let private = random_bytes::<32>();
        Self {
            private,
            public: public_key(&private),
        }
    }
}

/// A controller's `HELLO` for `cred`.
pub fn controller_hello(cred: &Credential) -> RelayFrame {
    RelayFrame::Hello {
        version: PROTOCOL_VERSION,
        role: Role::Controller,
        workspace: cred.workspace.clone(),
        credential: cred.credential.clone(),
        registration: Vec::new(),
    }
}

/// A host's `HELLO` for `cred` carrying registration message 1.
pub fn host_hello(cred: &Credential, msg1: &[u8]) -> RelayFrame {
    RelayFrame::Hello {
        version: PROTOCOL_VERSION,
        role: Role::Host,
        workspace: cred.workspace.clone(),
        credential: cred.credential.clone(),
        registration: msg1.to_vec(),
    }
}

/// Connects as a controller of `cred` and waits for `READY`.
///
/// # Errors
/// Any other answer.
pub async fn controller(cx: &Context, name: &str, cred: &Credential) -> CaseResult<Link> {
    controller_with(cx, name, cred, ConnectOptions::default()).await
}

/// [`controller`] with connection options.
///
/// # Errors
/// Any other answer.
pub async fn controller_with(
    cx: &Context,
    name: &str,
    cred: &Credential,
    opts: ConnectOptions,
) -> CaseResult<Link> {
    let mut link = Link::connect_with(cx, name, opts).await?;
    link.send(&controller_hello(cred)).await?;
    link.expect_frame(&RelayFrame::Ready, ANSWER_WAIT).await?;
    Ok(link)
}

/// The messages of one completed host registration, for replay cases.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Message 1 (in `HELLO`).
    pub msg1: Vec<u8>,
    /// Message 2 (the relay's `HOST_CHALLENGE`).
    pub msg2: Vec<u8>,
    /// Message 3 (the runner's `HOST_PROOF`).
    pub msg3: Vec<u8>,
}

/// Connects as a host of `cred` with `key`, registers (`LINK-12`) and waits for `READY`.
///
/// # Errors
/// Any other answer.
pub async fn host(cx: &Context, name: &str, cred: &Credential, key: &HostKey) -> CaseResult<Link> {
    host_with(cx, name, cred, key, ConnectOptions::default())
        .await
        .map(|(l, _)| l)
}

/// [`host`] with connection options; also returns the registration messages.
///
/// # Errors
/// Any other answer.
pub async fn host_with(
    cx: &Context,
    name: &str,
    cred: &Credential,
    key: &HostKey,
    opts: ConnectOptions,
) -> CaseResult<(Link, Registration)> {
    let mut link = Link::connect_with(cx, name, opts).await?;
    let (reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("{name}: registration start: {e}")))?;
    link.send(&host_hello(cred, &msg1)).await?;
    let msg2 = match link.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { message } => message,
        other => {
            return fail(format!(
                "{name}: expected HOST_CHALLENGE, got {}",
                describe(&other)
            ));
        }
    };
    let msg3 = reg.respond(&msg2).map_err(|e| {
        CaseError(format!(
            "{name}: HOST_CHALLENGE does not verify as Noise_XN message 2 with prologue TETHER-REG-V1 (LINK-12): {e}"
        ))
    })?;
    link.send(&RelayFrame::HostProof {
        message: msg3.to_vec(),
    })
    .await?;
    link.expect_frame(&RelayFrame::Ready, ANSWER_WAIT).await?;
    Ok((
        link,
        Registration {
            msg1: msg1.to_vec(),
            msg2,
            msg3: msg3.to_vec(),
        },
    ))
}

/// A Noise-message-1 stand-in for `OPEN`: the relay forwards it without reading it.
pub fn handshake_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            u8::try_from(i % 251)
                .unwrap_or(0)
                .wrapping_mul(31)
                .wrapping_add(7)
        })
        .collect()
}

/// The controller opens `session` to the host and the host receives the matching
/// `INCOMING` (`LINK-18`).
///
/// # Errors
/// The `INCOMING` does not arrive or does not match.
pub async fn open_session(
    ctl: &mut Link,
    host: &mut Link,
    host_key: &HostKey,
    session: SessionId,
) -> CaseResult<()> {
    let handshake = handshake_bytes(96);
    ctl.send(&RelayFrame::Open {
        session,
        host_key: host_key.public,
        handshake: handshake.clone(),
    })
    .await?;
    host.expect_frame(&RelayFrame::Incoming { session, handshake }, ANSWER_WAIT)
        .await
}
