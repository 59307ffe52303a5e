//! The host's relay link: connect, register, serve sessions, keep alive, reconnect.
//!
//! ```text
//!   connect (ws:// loopback only, else wss://, LINK-2)
//!     │ HELLO role host + registration msg 1 (LINK-9, LINK-12)
//!     ▼
//!   HOST_CHALLENGE ──► HOST_PROOF ──► READY ──► serving: INCOMING / DATA / CLOSE in,
//!     │                                          Host::poll_transmit out, PING after
//!     │                                          20 s of silence (LINK-25), link lost
//!     │                                          after 60 s without a frame (LINK-36)
//!     ▼ link lost (any reason but the fatal ones)
//!   every session gone (LINK-21), wait 50–100 % of min(60 s, 1 s × 2^n) (LINK-28),
//!   connect again; GOAWAY AUTH_FAILED / REMOTE_ACCESS_DISABLED / REPLACED stop the host.
//! ```
//!
//! One task owns the WebSocket, the [`Host`] state machine, the [`DiskHostStore`] and the
//! host-wide [`ThreadManager`]; `command/exec` processes and turns run in their own tasks
//! and report through channels.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether_proto::channel::{Framing, HostInfo, PathStyle};
use tether_proto::cmd::capability;
use tether_proto::link::frame::{MAX_CREDENTIAL_LEN, MIN_CREDENTIAL_LEN};
use tether_proto::link::{
    ClientConfig, CloseCode, LinkClient, LinkEvent, RelayFrame, RelayUrl, SessionId,
};
use tether_proto::session::{Host, HostConfig, HostEvent};
use tether_proto::time::UnixTime;
use tokio::sync::mpsc;

use crate::commands::{CommandConfig, CommandSession, ExecEvent, OutputCredit};
use crate::state::{Access, DiskHostStore, RunInfo, StateDir, StateError};
use crate::threads::{ThreadManager, TurnEvent};

/// Longest host name (it goes into pairing tokens, `TOKEN-8`).
pub const MAX_HOST_NAME_LEN: usize = 64;
/// Time allowed from TCP connect to `READY`.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Shortest wait before reconnecting (`LINK-28`).
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait before reconnecting (`LINK-28`).
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How `tether host run` runs.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// `ws://` or `wss://` URL of the relay.
    pub relay: String,
    /// The workspace to register in.
    pub workspace: String,
    /// The workspace credential (its UTF-8 bytes go in `HELLO`, 16..=255 bytes).
    pub credential: String,
    /// Name shown to controllers and put into pairing tokens.
    pub name: String,
    /// Ask on the terminal before accepting a pairing (`CHAN-24`).
    pub confirm: bool,
    /// The command protocol's settings.
    pub commands: CommandConfig,
    /// An extra CA certificate (PEM) to trust for `wss://`, besides the web PKI roots.
    pub ca_cert: Option<PathBuf>,
    /// Allow `ws://` to a relay that is not on a loopback address (`LINK-2`).
    pub insecure: bool,
}

/// What the host reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEvent {
    /// The link reached `READY`.
    Ready {
        /// Fingerprint of the host key.
        fingerprint: String,
        /// The relay URL.
        relay: String,
    },
    /// The link was lost; the host reconnects after `retry_in`.
    LinkLost {
        /// Why.
        reason: String,
        /// The backoff wait (`LINK-28`).
        retry_in: Duration,
    },
    /// A session was established.
    SessionOpened {
        /// The session.
        session: SessionId,
        /// The controller's device name.
        device: String,
        /// Whether this session paired the device.
        paired: bool,
    },
    /// A session was refused before message 2.
    SessionRefused {
        /// The session.
        session: SessionId,
        /// Why (close code and requirement).
        reason: String,
    },
    /// A session ended.
    SessionClosed {
        /// The session.
        session: SessionId,
        /// The close code.
        code: CloseCode,
    },
    /// Something worth a line in the host's log.
    Notice(String),
}

/// Why the host stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The options are unusable.
    #[error("{0}")]
    Config(String),
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The relay refused the host for good (`LINK-28`: no automatic retry).
    #[error("relay refused the host: {code}: {reason}")]
    Refused {
        /// The `GOAWAY` code.
        code: CloseCode,
        /// Its description and the relay's reason.
        reason: String,
    },
}

/// Where the host connects.
#[derive(Clone, Debug)]
struct Target {
    url: RelayUrl,
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn config_error(msg: impl Into<String>) -> RunError {
    RunError::Config(msg.into())
}

fn target(options: &HostOptions) -> Result<Target, RunError> {
    let url = RelayUrl::parse(&options.relay)
        .map_err(|e| config_error(format!("relay URL {:?}: {e}", options.relay)))?;
    // LINK-2
    url.check_transport(options.insecure)
        .map_err(|e| config_error(format!("relay URL {:?}: {e} (--insecure)", options.relay)))?;
    let tls = if url.is_tls() {
        let config = tether_link::tls_config(options.ca_cert.as_deref())
            .map_err(|e| config_error(format!("--ca-cert {e}")))?;
        Some(config)
    } else {
        None
    };
    Ok(Target { url, tls })
}

fn check_options(options: &HostOptions) -> Result<(), RunError> {
    if !tether_proto::token::validate_workspace(&options.workspace) {
        return Err(config_error(format!(
            "workspace {:?}: must be 1-64 bytes of a-z 0-9 . _ - (LINK-32)",
            options.workspace
        )));
    }
    let len = options.credential.len();
    if !(MIN_CREDENTIAL_LEN..=MAX_CREDENTIAL_LEN).contains(&len) {
        return Err(config_error(format!(
            "the credential must be {MIN_CREDENTIAL_LEN} to {MAX_CREDENTIAL_LEN} bytes, not {len} (LINK-10)"
        )));
    }
    if options.name.is_empty()
        || options.name.len() > MAX_HOST_NAME_LEN
        || options.name.chars().any(char::is_control)
    {
        return Err(config_error(format!(
            "host name {:?}: must be 1-64 bytes without control characters (TOKEN-8)",
            options.name
        )));
    }
    Ok(())
}

/// The wait after the `n`-th consecutive failed attempt: uniform in 50–100 % of
/// min(60 s, 1 s × 2^n) (`LINK-28`). `random` is a uniform `u32`.
pub fn backoff(n: u32, random: u32) -> Duration {
    let base = BACKOFF_MIN
        .checked_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX);
    let half = base / 2;
    half + half.mul_f64(f64::from(random) / f64::from(u32::MAX))
}

enum LinkEnd {
    /// Try again after a backoff; `ready` tells whether the link had reached `READY`.
    Lost { reason: String, ready: bool },
    /// Stop the host.
    Fatal(RunError),
    /// The shutdown signal fired.
    Shutdown,
}

struct SessionCtx {
    device: [u8; 32],
    commands: CommandSession,
    /// Output chunks handed to the session and not yet sent whole, with the number
    /// [`Host::send`] gave their message: their process reads no more output until the
    /// window lets them go (`CMD-74`, `CHAN-34`).
    held: VecDeque<(u64, OutputCredit)>,
}

/// The receiving ends the serving loop drains.
struct Inputs {
    exec: mpsc::UnboundedReceiver<ExecEvent>,
    turns: mpsc::UnboundedReceiver<TurnEvent>,
    confirm: mpsc::UnboundedReceiver<(SessionId, bool)>,
}

/// The longest the serving loop sleeps when nothing else is due.
const LINK_WAIT_MAX: Duration = Duration::from_secs(3600);

/// How often a host re-checks the devices of its open sessions against its state
/// (`SEC-13`: a revocation closes them within 5 s, whether or not they send anything).
const ACCESS_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

struct Runner {
    host: Host,
    store: DiskHostStore,
    options: HostOptions,
    commands: Arc<CommandConfig>,
    sessions: HashMap<SessionId, SessionCtx>,
    threads: ThreadManager,
    exec_tx: mpsc::UnboundedSender<ExecEvent>,
    confirm_tx: mpsc::UnboundedSender<(SessionId, bool)>,
    on_event: Box<dyn FnMut(RunEvent) + Send>,
    fingerprint: String,
    /// The static private key: the registration proves the same key the sessions use
    /// (LINK-12).
    key: [u8; 32],
}

/// Runs the host until `shutdown` completes or the relay refuses it for good.
///
/// Creates the static key on first use, writes `run.json`, then connects, registers
/// and serves, reconnecting with backoff (`LINK-28`). `on_event` hears about `READY`,
/// sessions and lost links.
///
/// # Errors
/// [`RunError::Config`] for unusable options, [`RunError::State`] for a state directory
/// that cannot be used, [`RunError::Refused`] for `GOAWAY` `AUTH_FAILED`,
/// `REMOTE_ACCESS_DISABLED` or `REPLACED`.
pub async fn run(
    state: StateDir,
    options: HostOptions,
    shutdown: impl Future<Output = ()>,
    on_event: impl FnMut(RunEvent) + Send + 'static,
) -> Result<(), RunError> {
    check_options(&options)?;
    let target = target(&options)?;
    let key = state.load_or_create_key()?;
    // Surface a corrupt host.json now rather than at the first session.
    let settings = state.read()?.config;
    state.write_run_info(&RunInfo {
        version: 1,
        relay: options.relay.clone(),
        workspace: options.workspace.clone(),
        host_name: options.name.clone(),
    })?;
    // CMD-16: the command-protocol names from the list the initialize result is built
    // from (this host serves threads), then those of the channel.
    let mut capabilities = options.commands.capabilities(true);
    // CHAN-31: records, windows and messages of up to 16 MiB.
    capabilities.push(capability::CHANNEL_FLOW.to_owned());
    if options.confirm {
        capabilities.push(capability::PAIRING_CONFIRM.to_owned());
    }
    let host = Host::new(HostConfig {
        static_private: key,
        workspace: options.workspace.clone(),
        host_info: HostInfo {
            name: options.name.clone(),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            shell: "sh".to_owned(),
            path_style: PathStyle::Posix,
            capabilities,
            protocol: "tether/1".to_owned(),
        },
        // The store refuses with REMOTE_ACCESS_DISABLED when host.json switches it off
        // later (CHAN-26); the state machine's own check covers the start.
        remote_access: settings.remote_access,
        confirm_pairing: options.confirm,
    });
    let fingerprint = tether_proto::keys::fingerprint(host.host_key());
    let (exec_tx, exec_rx) = mpsc::unbounded_channel();
    let (confirm_tx, confirm_rx) = mpsc::unbounded_channel();
    let (turn_tx, turn_rx) = mpsc::unbounded_channel();
    let commands = Arc::new(options.commands.clone());
    // CMD-17: the host's threads, loaded from the state directory.
    let threads = ThreadManager::new(state.path(), Arc::clone(&commands), turn_tx)?;
    let mut inputs = Inputs {
        exec: exec_rx,
        turns: turn_rx,
        confirm: confirm_rx,
    };
    let mut runner = Runner {
        host,
        store: DiskHostStore::new(state),
        commands,
        options,
        sessions: HashMap::new(),
        threads,
        exec_tx,
        confirm_tx,
        on_event: Box::new(on_event),
        fingerprint,
        key,
    };
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    loop {
        runner.drain_notices();
        let end = runner.link(&target, &mut inputs, &mut shutdown).await;
        // LINK-21: every session of the link is gone.
        runner.host.handle_link_lost();
        runner.drain_events();
        for (session, _) in runner.sessions.drain() {
            runner.threads.session_closed(session);
        }
        match end {
            LinkEnd::Shutdown => return Ok(()),
            LinkEnd::Fatal(e) => return Err(e),
            LinkEnd::Lost { reason, ready } => {
                if ready {
                    failures = 0;
                }
                let mut r = [0u8; 4];
                let _ = getrandom::fill(&mut r);
                let wait = backoff(failures, u32::from_le_bytes(r));
                failures = failures.saturating_add(1);
                (runner.on_event)(RunEvent::LinkLost {
                    reason,
                    retry_in: wait,
                });
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = &mut shutdown => return Ok(()),
                }
            }
        }
    }
}

/// What the host does after its link client ended: stop for good after the refusals of
/// `LINK-28`, otherwise reconnect.
fn link_end(end: &tether_proto::link::LinkEnd, ready: bool) -> LinkEnd {
    match end {
        tether_proto::link::LinkEnd::GoAway { code, reason } if !end.should_reconnect() => {
            let text = match code.description() {
                Some(d) if reason.is_empty() => d.to_owned(),
                Some(d) => format!("{d}: {reason}"),
                None => reason.clone(),
            };
            LinkEnd::Fatal(RunError::Refused {
                code: *code,
                reason: text,
            })
        }
        other => LinkEnd::Lost {
            reason: other.to_string(),
            ready,
        },
    }
}

impl Runner {
    fn notice(&mut self, text: String) {
        (self.on_event)(RunEvent::Notice(text));
    }

    /// Connects, registers and serves one link: the WebSocket's messages go to the
    /// [`LinkClient`], its events to the [`Host`] state machine, and what both queue goes
    /// out in order.
    async fn link(
        &mut self,
        target: &Target,
        inputs: &mut Inputs,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> LinkEnd {
        let connected = tokio::select! {
            r = tokio::time::timeout(REGISTRATION_TIMEOUT, tether_link::connect(&target.url, target.tls.as_ref())) => match r {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("no connection to the relay in time".to_owned()),
            },
            () = &mut *shutdown => return LinkEnd::Shutdown,
        };
        let mut ws = match connected {
            Ok(ws) => ws,
            Err(reason) => {
                return LinkEnd::Lost {
                    reason,
                    ready: false,
                };
            }
        };
        let mut config = ClientConfig::new(
            self.options.workspace.clone(),
            self.options.credential.as_bytes(),
        );
        config.ready_timeout = REGISTRATION_TIMEOUT;
        // LINK-9, LINK-12: HELLO carries registration message 1 of the host's static key.
        let mut client = match LinkClient::host(config, &self.key, Instant::now()) {
            Ok(client) => client,
            Err(e) => return LinkEnd::Fatal(config_error(format!("registration: {e}"))),
        };
        let mut ready = false;
        let mut next_sweep = Instant::now() + ACCESS_SWEEP_INTERVAL;
        loop {
            while let Some(event) = client.poll_event() {
                match event {
                    LinkEvent::Ready => {
                        ready = true;
                        (self.on_event)(RunEvent::Ready {
                            fingerprint: self.fingerprint.clone(),
                            relay: self.options.relay.clone(),
                        });
                    }
                    LinkEvent::Incoming { session, handshake } => {
                        self.host.handle_incoming(
                            session,
                            &handshake,
                            Instant::now(),
                            UnixTime::now(),
                            &mut self.store,
                        );
                    }
                    LinkEvent::Data { session, payload } => {
                        self.host.handle_data(session, &payload)
                    }
                    LinkEvent::Close { session, code } => self.host.handle_close(session, code),
                    LinkEvent::Ended(end) => {
                        // LINK-27: the client's GOAWAY, if it sent one, then nothing.
                        tether_link::finish(&mut ws, &mut client).await;
                        return link_end(&end, ready);
                    }
                    _ => {}
                }
            }
            self.drain_events();
            self.drain_threads();
            if let Some(e) = self.store.take_error() {
                self.notice(format!("state store failed: {e}"));
            }
            let now = Instant::now();
            while let Some(frame) = self.host.poll_transmit() {
                let sent = match frame {
                    RelayFrame::Data { session, payload } => client.send(session, payload, now),
                    RelayFrame::Close { session, code } => client.close_session(session, code, now),
                    other => client.send_unchecked(&other, now),
                };
                if let Err(e) = sent {
                    self.notice(format!("frame not sent to the relay: {e}"));
                }
            }
            self.release_credits();
            tether_link::flush(&mut ws, &mut client).await;
            if client.is_ended() {
                continue;
            }
            let mut wake = client.poll_timeout().unwrap_or(now + LINK_WAIT_MAX);
            // SEC-13: revocations by another process reach open sessions within a sweep.
            if !self.sessions.is_empty() {
                wake = wake.min(next_sweep);
            }
            if let Some(t) = self.host.poll_timeout() {
                wake = wake.min(t);
            }
            // CMD-31: approval time limits.
            if let Some(t) = self.threads.poll_timeout() {
                wake = wake.min(t);
            }
            tokio::select! {
                message = ws.next() => tether_link::deliver(message, &mut client, Instant::now()),
                Some(event) = inputs.exec.recv() => self.exec_event(event),
                Some(event) = inputs.turns.recv() => self.threads.handle_event(event),
                Some((session, accept)) = inputs.confirm.recv() => {
                    self.host.confirm_pairing(session, accept, UnixTime::now(), &mut self.store);
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    // LINK-25 keepalive, LINK-36 idle link, no READY in time.
                    client.handle_timeout(now);
                    self.host.handle_timeout(now);
                    self.threads.handle_timeout(now);
                    if now >= next_sweep {
                        next_sweep = now + ACCESS_SWEEP_INTERVAL;
                        self.sweep_access();
                    }
                }
                () = &mut *shutdown => {
                    client.close(CloseCode::GOING_AWAY, "host shutting down", Instant::now());
                    tether_link::finish(&mut ws, &mut client).await;
                    return LinkEnd::Shutdown;
                }
            }
        }
    }

    fn exec_event(&mut self, event: ExecEvent) {
        // CMD-74: a chunk's credit is released once its notification (or its OUTPUT
        // records, CMD-76) has left whole within the session's window (CHAN-34), or with a
        // session that is gone. Until then its process reads no more output; this loop
        // never waits on a process.
        let (session, sent, credit) = match event {
            ExecEvent::Output {
                session,
                message,
                credit,
            } => (session, self.host.send(session, &message), credit),
            ExecEvent::Chunk {
                session,
                process_id,
                stderr,
                cap_reached,
                data,
                credit,
            } => {
                let sent = self
                    .host
                    .send_output(session, stderr, cap_reached, &process_id, data);
                (session, sent, credit)
            }
            ExecEvent::Finished {
                session,
                process_id,
                message,
            } => {
                let Some(ctx) = self.sessions.get_mut(&session) else {
                    return; // the session is gone; its processes were killed
                };
                ctx.commands.finished(&process_id);
                let _ = self.host.send(session, &message);
                return;
            }
        };
        if let Ok(n) = sent
            && self.host.released(session).is_some_and(|r| r < n)
            && let Some(ctx) = self.sessions.get_mut(&session)
        {
            ctx.held.push_back((n, credit));
        }
    }

    /// Releases the credit of output chunks whose messages have left (`CMD-74`).
    fn release_credits(&mut self) {
        for (session, ctx) in &mut self.sessions {
            let released = self.host.released(*session).unwrap_or(u64::MAX);
            while ctx.held.front().is_some_and(|(n, _)| *n <= released) {
                ctx.held.pop_front();
            }
        }
    }

    /// Sends what the thread manager queued, in order (`CMD-24`, `CMD-26`).
    fn drain_threads(&mut self) {
        while let Some((session, message)) = self.threads.poll_outgoing() {
            let _ = self.host.send(session, &message);
        }
        self.drain_notices();
    }

    fn drain_notices(&mut self) {
        while let Some(n) = self.threads.take_notice() {
            self.notice(n);
        }
    }

    /// SEC-13: closes with `NOT_AUTHORIZED` every open session whose device has been
    /// revoked (by `tether host revoke`, possibly in another process) or has passed the
    /// inactivity age (`CHAN-9`) since it was established. One read of the state for all
    /// sessions; a state that cannot be read closes nothing (the next request is refused
    /// by [`Runner::access`] instead).
    fn sweep_access(&mut self) {
        if self.sessions.is_empty() {
            return;
        }
        let state = match self.store.current() {
            Ok(state) => state,
            Err(e) => {
                self.notice(format!(
                    "cannot read the state to re-check open sessions: {e}"
                ));
                return;
            }
        };
        let now = UnixTime::now();
        let ended: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, ctx)| state.access(&ctx.device, now) == Access::NotAuthorized)
            .map(|(session, _)| *session)
            .collect();
        for session in ended {
            self.notice(format!(
                "session {session}: its device is no longer authorized; closing it (SEC-13)"
            ));
            self.host.close(session, CloseCode::NOT_AUTHORIZED);
        }
    }

    fn access(&mut self, device: &[u8; 32]) -> Access {
        match self.store.current() {
            Ok(state) => state.access(device, UnixTime::now()),
            Err(e) => {
                self.notice(format!("cannot read the state to authorize a request: {e}"));
                Access::NotAuthorized
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.host.poll_event() {
            match event {
                HostEvent::Established {
                    session,
                    device,
                    paired,
                } => {
                    let name = match &paired {
                        Some(n) => n.clone(),
                        None => self
                            .store
                            .current()
                            .ok()
                            .and_then(|s| s.device(&device).map(|d| d.name.clone()))
                            .unwrap_or_default(),
                    };
                    self.threads.session_opened(session, name.clone());
                    self.sessions.insert(
                        session,
                        SessionCtx {
                            device,
                            commands: CommandSession::new(
                                session,
                                Arc::clone(&self.commands),
                                self.exec_tx.clone(),
                            ),
                            held: VecDeque::new(),
                        },
                    );
                    (self.on_event)(RunEvent::SessionOpened {
                        session,
                        device: name,
                        paired: paired.is_some(),
                    });
                }
                HostEvent::ConfirmationRequested {
                    session,
                    code,
                    device_name,
                } => self.ask_confirmation(session, code, device_name),
                HostEvent::Message { session, message } => {
                    let Some(device) = self.sessions.get(&session).map(|c| c.device) else {
                        continue;
                    };
                    // CMD-55, CMD-56, CMD-75: every message is checked against the state
                    // as it arrives — an approval answer from a device revoked a moment
                    // ago, before the sweep closed its session (SEC-13), is not acted on.
                    let access = self.access(&device);
                    let records = self.host.framing(session) == Some(Framing::Records);
                    let Some(ctx) = self.sessions.get_mut(&session) else {
                        continue;
                    };
                    ctx.commands.set_records(records);
                    let reply = ctx
                        .commands
                        .handle_with(message, access, Some(&mut self.threads));
                    for m in &reply.messages {
                        let _ = self.host.send(session, m);
                    }
                    // After the reply: turn/started after the turn/start result,
                    // pending approvals after the thread/resume result (CMD-19, CMD-24).
                    self.drain_threads();
                    if let Some(code) = reply.close {
                        self.host.close(session, code);
                    }
                }
                HostEvent::Rejected { session, rejection } => {
                    self.notice(format!(
                        "session {session}: message rejected: {}",
                        rejection.error
                    ));
                }
                HostEvent::Refused { session, refusal } => {
                    let code = refusal.close_code();
                    (self.on_event)(RunEvent::SessionRefused {
                        session,
                        reason: format!("{code}"),
                    });
                }
                HostEvent::Closed { session, code, .. } => {
                    // CMD-37: dropping the session kills its processes' groups.
                    drop(self.sessions.remove(&session));
                    self.threads.session_closed(session);
                    (self.on_event)(RunEvent::SessionClosed { session, code });
                }
                _ => {}
            }
        }
    }

    /// `CHAN-24`: shows the code and device name on the host's terminal and asks y/n;
    /// without a terminal the pairing is refused.
    fn ask_confirmation(&mut self, session: SessionId, code: String, device_name: String) {
        let tx = self.confirm_tx.clone();
        tokio::task::spawn_blocking(move || {
            let accept = if std::io::stdin().is_terminal() {
                eprint!(
                    "tether: pairing request from {device_name:?}, confirmation code {code}. \
                     Does the device show the same code? Accept? [y/N] "
                );
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(_) => matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"),
                    Err(_) => false,
                }
            } else {
                eprintln!(
                    "tether: pairing request from {device_name:?} (code {code}) refused: --confirm needs a terminal to ask on"
                );
                false
            };
            let _ = tx.send((session, accept));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_28_backoff_bounds() {
        assert_eq!(backoff(0, 0), Duration::from_millis(500));
        assert_eq!(backoff(0, u32::MAX), Duration::from_secs(1));
        assert_eq!(backoff(3, u32::MAX), Duration::from_secs(8));
        assert_eq!(backoff(6, 0), Duration::from_secs(30));
        assert_eq!(backoff(6, u32::MAX), Duration::from_secs(60));
        assert_eq!(backoff(40, u32::MAX), Duration::from_secs(60));
        let mid = backoff(2, u32::MAX / 2);
        assert!(mid > Duration::from_secs(2) && mid < Duration::from_secs(4));
    }

    fn options(relay: &str) -> HostOptions {
        HostOptions {
            relay: relay.to_owned(),
            workspace: "acme".to_owned(),
            credential: "0123456789abcdef".to_owned(),
            name: "box".to_owned(),
            confirm: false,
            commands: CommandConfig::default(),
            ca_cert: None,
            insecure: false,
        }
    }

    #[test]
    fn link_2_plain_ws_only_on_loopback() {
        assert!(target(&options("ws://127.0.0.1:7400/")).is_ok());
        let e = target(&options("ws://10.1.2.3:7400/")).unwrap_err();
        assert!(e.to_string().contains("LINK-2"), "{e}");
        let mut o = options("ws://10.1.2.3:7400/");
        o.insecure = true;
        assert!(target(&o).is_ok());
        assert!(target(&options("wss://relay.example/t")).is_ok());
        assert!(target(&options("http://127.0.0.1/")).is_err());
    }

    #[test]
    fn options_are_checked() {
        let mut o = options("ws://127.0.0.1:1/");
        o.credential = "short".to_owned();
        assert!(
            check_options(&o)
                .unwrap_err()
                .to_string()
                .contains("LINK-10")
        );
        let mut o = options("ws://127.0.0.1:1/");
        o.workspace = "Acme".to_owned();
        assert!(check_options(&o).is_err());
        assert!(check_options(&options("ws://127.0.0.1:1/")).is_ok());
    }
}
