//! A controller's link to a relay (`spec/03-relay-link.md`).
//!
//! ```text
//!  connect (TCP, TLS for wss://, WebSocket) ──► HELLO(controller) ──► READY ──► ready
//!                                 GOAWAY(code) before READY ──► ControllerError::GoAway
//! ```
//!
//! One tokio task owns the WebSocket and drives a [`LinkClient`], which holds the link's
//! rules (`HELLO`, `READY`, keepalive `LINK-25`, idle `LINK-36`, frames the state does not
//! allow `LINK-35`, text and malformed messages `LINK-1`/`LINK-4`). The task routes `DATA`
//! and `CLOSE` to the session registered under their session id, and ends every session
//! when the link ends (`GOAWAY` either way or the connection dropping). [`Link`] is a cheap handle to that task; the link ends with
//! `GOAWAY NORMAL` when the last handle (and every session on it) is dropped, or at
//! [`Link::close`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tether_proto::channel::CreditLedger;
use tether_proto::limits::{
    AUTH_DEADLINE, KEEPALIVE_INTERVAL, LINK_IDLE_TIMEOUT, MAX_SESSIONS_PER_CONTROLLER_LINK,
};
use tether_proto::link::{
    ClientConfig, ClientError, CloseCode, LinkClient, LinkEvent, RelayFrame, RelayUrl, SessionId,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

pub use tether_proto::link::LinkEnd;

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

/// What the link task delivers to one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionInput {
    /// A `DATA` frame's payload.
    Data(Vec<u8>),
    /// The relay delivered `CLOSE` (the session is unregistered, except for
    /// `SESSION_ID_IN_USE`, which never ends an established session, `LINK-43`).
    Close(CloseCode),
    /// The link ended; the session is gone with it.
    LinkEnded(LinkEnd),
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
            LinkEnd::Closed { .. } => ControllerError::LinkLost {
                detail: "the link was closed by this controller".to_owned(),
            },
            other => ControllerError::LinkLost {
                detail: other.to_string(),
            },
        }
    }
}

enum LinkCommand {
    Frame(RelayFrame),
    GoAway(CloseCode),
}

type Ws = tether_link::LinkSocket;

type Routes = Arc<Mutex<HashMap<SessionId, mpsc::UnboundedSender<SessionInput>>>>;

/// A `READY` link to a relay. Clones share the link.
#[derive(Clone, Debug)]
pub struct Link {
    commands: mpsc::UnboundedSender<LinkCommand>,
    routes: Routes,
    /// The credit the link's sessions grant their hosts, 2 MiB together (`CHAN-35`).
    credit: Arc<Mutex<CreditLedger>>,
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
            Ok(Ok(Err(LinkEnd::Closed { .. })) | Err(_)) => {
                Err(connect_error(&self.url, &"connection closed before READY"))
            }
            Ok(Ok(Err(end))) => Err(connect_error(&self.url, &format!("{end} (before READY)"))),
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
        let parsed = RelayUrl::parse(url).map_err(|e| ControllerError::BadUrl {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
        // LINK-2
        if parsed.check_transport(options.insecure).is_err() {
            return Err(ControllerError::InsecureUrl {
                url: url.to_owned(),
            });
        }
        let mut config = ClientConfig::new(workspace, credential.as_bytes());
        config.keepalive = options.keepalive;
        config.idle_timeout = options.idle_timeout;
        config.ready_timeout = options.connect_timeout;
        config
            .check()
            .map_err(|e| ControllerError::Protocol(e.into()))?;
        let tls = if parsed.is_tls() {
            Some(tls_config(options)?)
        } else {
            None
        };
        let connecting = tether_link::connect(&parsed, tls.as_ref());
        let ws = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| ControllerError::Connect {
                url: url.to_owned(),
                detail: format!(
                    "no connection within {} s",
                    options.connect_timeout.as_secs()
                ),
            })?
            .map_err(|e| connect_error(url, &e))?;
        // The READY deadline runs from here, with the connection open.
        let client =
            LinkClient::controller(config, Instant::now().into_std()).map_err(|e| match e {
                ClientError::Frame(e) => ControllerError::Protocol(e.into()),
                other => ControllerError::Usage(other.to_string()),
            })?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
        let (ended_tx, ended) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = Driver {
            ws,
            client,
            commands: command_rx,
            routes: routes.clone(),
            ended: ended_tx,
            ready: Some(ready_tx),
        };
        tokio::spawn(driver.run());
        let link = Self {
            commands,
            routes,
            credit: Arc::new(Mutex::new(CreditLedger::for_link(
                MAX_SESSIONS_PER_CONTROLLER_LINK,
            ))),
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

    /// The credit ledger the link's sessions share (`CHAN-35`).
    pub fn credit_ledger(&self) -> Arc<Mutex<CreditLedger>> {
        Arc::clone(&self.credit)
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
                    .unwrap_or_else(|| LinkEnd::lost("link task ended"));
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

/// The rustls client configuration: webpki roots plus the `ca_cert` file.
///
/// # Errors
/// [`ControllerError::Tls`].
pub fn tls_config(options: &LinkOptions) -> Result<Arc<rustls::ClientConfig>, ControllerError> {
    tether_link::tls_config(options.ca_cert.as_deref())
        .map_err(|e| ControllerError::Tls(e.to_string()))
}

/// The link task: pumps the [`LinkClient`] (messages in, transmits out, timers).
struct Driver {
    ws: Ws,
    client: LinkClient,
    commands: mpsc::UnboundedReceiver<LinkCommand>,
    routes: Routes,
    ended: watch::Sender<Option<LinkEnd>>,
    /// Until `READY` arrives: where to report it (or the link's end).
    ready: Option<oneshot::Sender<Result<(), LinkEnd>>>,
}

impl Driver {
    async fn run(mut self) {
        let end = self.serve().await;
        tracing::debug!(%end, "relay link ended");
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

    async fn serve(&mut self) -> LinkEnd {
        loop {
            tether_link::flush(&mut self.ws, &mut self.client).await;
            while let Some(event) = self.client.poll_event() {
                match event {
                    LinkEvent::Ready => {
                        if let Some(ready) = self.ready.take() {
                            let _ = ready.send(Ok(()));
                        }
                    }
                    LinkEvent::Data { session, payload } => {
                        self.route(session, SessionInput::Data(payload), false);
                    }
                    LinkEvent::Close { session, code } => {
                        // LINK-43: SESSION_ID_IN_USE refuses an OPEN and never ends an
                        // existing session; the session decides (an established one
                        // ignores it) and unregisters itself when it ends.
                        let remove = code != CloseCode::SESSION_ID_IN_USE;
                        self.route(session, SessionInput::Close(code), remove);
                    }
                    // Its GOAWAY, if it sent one, went out with the flush above.
                    LinkEvent::Ended(end) => return end,
                    // A controller's client yields no INCOMING.
                    _ => {}
                }
            }
            let wake = self.client.poll_timeout().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                Instant::from_std,
            );
            tokio::select! {
                command = self.commands.recv() => {
                    let now = Instant::now().into_std();
                    match command {
                        Some(LinkCommand::Frame(frame)) => {
                            let sent = match frame {
                                RelayFrame::Open { session, host_key, handshake } => {
                                    self.client.open(session, host_key, handshake, now)
                                }
                                RelayFrame::Data { session, payload } => {
                                    self.client.send(session, payload, now)
                                }
                                RelayFrame::Close { session, code } => {
                                    self.client.close_session(session, code, now)
                                }
                                other => self.client.send_unchecked(&other, now),
                            };
                            if let Err(e) = sent {
                                // A frame this controller built that the link cannot take:
                                // drop it, keep the link.
                                tracing::warn!(error = %e, "frame not sent");
                            }
                        }
                        Some(LinkCommand::GoAway(code)) => self.client.close(code, "", now),
                        // Every handle is gone: leave normally (LINK-27).
                        None => self.client.close(CloseCode::NORMAL, "", now),
                    }
                }
                message = self.ws.next() => tether_link::deliver(message, &mut self.client, Instant::now().into_std()),
                () = tokio::time::sleep_until(wake) => self.client.handle_timeout(Instant::now().into_std()),
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
