//! The actor: the one task that owns the routing core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tether_proto::link::CloseCode;
use tether_proto::link::RelayFrame;
use tether_proto::link::router::{LinkId, Relay, RelayEvent, WorkspaceConfig};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, error, info};

use crate::change::{ChangeKind, WorkspaceChange};
use crate::input::{Finish, Input, Update};
use crate::stats::RelayStats;

/// How long a `GOAWAY SLOW_READER` may wait for the socket: the reader is not reading, so
/// the `GOAWAY` is sent only if the WebSocket takes it at once (`LINK-23`).
const SLOW_READER_FLUSH: Duration = Duration::from_millis(100);

/// Extra time, past the flush timeout, that a shutdown waits for connections to report.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How long a computed next-timer deadline is reused, and the shortest gap between two
/// timer runs. `Relay::poll_timeout` and `Relay::handle_timeout` scan every link; done
/// after every frame, they made each frame cost O(links) (with 10,000 idle links the
/// aggregate throughput fell to a quarter, `relay-capacity` in `BENCHMARKS.md`). Timers
/// fire at most this much late; their periods are seconds (`LINK-7`, `LINK-24`,
/// `LINK-25`).
const TIMER_REFRESH: Duration = Duration::from_millis(100);

pub(crate) struct Actor {
    relay: Relay,
    links: HashMap<LinkId, LinkEnd>,
    inputs: mpsc::Receiver<Input>,
    notify: Arc<Notify>,
    stats: Arc<Mutex<RelayStats>>,
    flush_timeout: Duration,
    shutting_down: bool,
}

/// The actor's handle on a link's writer; `finish` is taken when the link starts closing.
struct LinkEnd {
    frames: mpsc::Sender<Vec<u8>>,
    finish: Option<oneshot::Sender<Finish>>,
}

impl Actor {
    pub(crate) fn new(
        relay: Relay,
        inputs: mpsc::Receiver<Input>,
        notify: Arc<Notify>,
        stats: Arc<Mutex<RelayStats>>,
        flush_timeout: Duration,
    ) -> Self {
        Self {
            relay,
            links: HashMap::new(),
            inputs,
            notify,
            stats,
            flush_timeout,
            shutting_down: false,
        }
    }

    /// Runs until `shutdown` resolves and every link has closed (or the grace period
    /// passed).
    pub(crate) async fn run(mut self, shutdown: oneshot::Receiver<()>) {
        let mut shutdown = shutdown;
        let mut shutdown_deadline: Option<tokio::time::Instant> = None;
        let mut timer: Option<Instant> = None;
        let mut timer_computed: Option<Instant> = None;
        let mut last_timer_run: Option<Instant> = None;
        // Whether anything happened since the deadline was computed.
        let mut dirty = true;
        loop {
            self.pump();
            self.publish_gauges();
            if self.shutting_down && self.links.is_empty() {
                break;
            }
            let now = Instant::now();
            if timer_computed.is_none_or(|at| dirty && now.duration_since(at) >= TIMER_REFRESH) {
                timer = self.relay.poll_timeout();
                timer_computed = Some(now);
                dirty = false;
            }
            // Coalesce: at most one timer run per TIMER_REFRESH.
            let due = match (
                timer,
                last_timer_run.and_then(|t| t.checked_add(TIMER_REFRESH)),
            ) {
                (Some(t), Some(earliest)) => Some(t.max(earliest)),
                (t, _) => t,
            };
            // After activity, look again once the refresh period is over (a new link's
            // deadline may be the next one).
            let refresh = if dirty {
                timer_computed.and_then(|t| t.checked_add(TIMER_REFRESH))
            } else {
                None
            };
            let wake = match (due, refresh) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wake_at = wake.map_or_else(far_future, tokio::time::Instant::from_std);
            let stop_at = shutdown_deadline.unwrap_or_else(far_future);
            tokio::select! {
                biased;
                _ = &mut shutdown, if !self.shutting_down => {
                    self.begin_shutdown();
                    shutdown_deadline =
                        Some(tokio::time::Instant::now() + self.flush_timeout + SHUTDOWN_GRACE);
                }
                input = self.inputs.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => break,
                },
                () = self.notify.notified() => {}
                () = tokio::time::sleep_until(wake_at), if wake.is_some() && !self.shutting_down => {
                    let now = Instant::now();
                    if due.is_some_and(|d| d <= now) {
                        self.relay.handle_timeout(now);
                        last_timer_run = Some(now);
                        timer_computed = None;
                    }
                }
                () = tokio::time::sleep_until(stop_at), if shutdown_deadline.is_some() => break,
            }
            dirty = true;
            let _ = self.drain_events();
        }
        self.publish_gauges();
        info!("relay stopped");
    }

    fn stats(&self) -> MutexGuard<'_, RelayStats> {
        // A poisoned lock only means a panic elsewhere; the counters are still usable.
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_gauges(&self) {
        let (links, sessions) = (self.relay.link_count(), self.relay.session_count());
        let mut stats = self.stats();
        stats.links_open = links;
        stats.sessions_open = sessions;
    }

    /// Whether inputs from `link` still go to the core: not once it is closing.
    fn accepts(&self, link: LinkId) -> bool {
        !self.shutting_down && self.links.get(&link).is_some_and(|w| w.finish.is_some())
    }

    fn on_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Opened { writer, reply } => {
                let link = self.relay.handle_link_opened(now);
                self.stats().links_accepted += 1;
                if reply.send(link).is_err() {
                    self.relay.handle_link_closed(link, now);
                    return;
                }
                self.links.insert(
                    link,
                    LinkEnd {
                        frames: writer.frames,
                        finish: Some(writer.finish),
                    },
                );
                if self.shutting_down {
                    self.finish_going_away(link);
                }
            }
            Input::Frame(link, bytes) => {
                if !self.accepts(link) {
                    return;
                }
                // LINK-13: a fresh ephemeral for every registration, drawn only when the
                // core asks (after the credential checks, SPEC decision 9).
                let mut rng_failed = false;
                let mut rng = || {
                    let mut key = [0u8; 32];
                    if getrandom::fill(&mut key).is_err() {
                        rng_failed = true;
                    }
                    key
                };
                self.relay.handle_frame(link, &bytes, now, &mut rng);
                if rng_failed {
                    error!(%link, "the operating system's random number generator failed; dropping the link");
                    self.abort(link);
                }
            }
            Input::Text(link) => {
                if self.accepts(link) {
                    // LINK-1
                    self.relay.handle_text_message(link, now);
                }
            }
            Input::Oversize(link) => {
                if self.accepts(link) {
                    // LINK-5: tungstenite refused the message without buffering it; the
                    // core has no call for "a message too large to read", so it is shown a
                    // zeroed frame of the first refused length, which it refuses on length
                    // alone with GOAWAY FRAME_TOO_LARGE.
                    let too_long = vec![0u8; self.relay.config().limits.max_frame_len + 1];
                    self.relay
                        .handle_frame(link, &too_long, now, &mut || [0u8; 32]);
                }
            }
            Input::Closed(link) => {
                self.links.remove(&link);
                self.relay.handle_link_closed(link, now);
            }
            Input::HandshakeFailed => self.stats().handshakes_failed += 1,
            Input::Reconfigure { update, reply } => {
                let changes = self.reconfigure(update, now);
                let _ = reply.send(changes);
            }
        }
    }

    /// Applies the operator's workspace changes through the core, one workspace at a time,
    /// and ends the links each one revokes at once (`LINK-37`: the core queues their
    /// `GOAWAY`s, [`Self::drain_events`] hands them to the writers).
    fn reconfigure(&mut self, update: Update, now: Instant) -> Vec<WorkspaceChange> {
        let current = &self.relay.config().workspaces;
        let steps: Vec<(String, Option<WorkspaceConfig>)> = match update {
            // Applied even when unchanged: the core decides what that ends (nothing).
            Update::One(id, workspace) => vec![(id, workspace)],
            Update::Replace(wanted) => {
                let mut steps: Vec<(String, Option<WorkspaceConfig>)> = current
                    .keys()
                    .filter(|id| !wanted.contains_key(*id))
                    .map(|id| (id.clone(), None))
                    .collect();
                steps.sort_by(|a, b| a.0.cmp(&b.0));
                steps.extend(
                    wanted
                        .into_iter()
                        .filter(|(id, ws)| current.get(id) != Some(ws))
                        .map(|(id, ws)| (id, Some(ws))),
                );
                steps
            }
        };
        let mut changes = Vec::with_capacity(steps.len());
        for (id, workspace) in steps {
            let kind =
                ChangeKind::between(self.relay.config().workspaces.get(&id), workspace.as_ref());
            self.relay.set_workspace(&id, workspace, now);
            let links_ended = self.drain_events();
            let change = WorkspaceChange::new(id, kind, links_ended);
            info!(%change, "workspace reconfigured (LINK-37)");
            changes.push(change);
        }
        changes
    }

    /// Hands frames to every writer with room (step 4 of the core's call order): a frame
    /// leaves the core's bounded queues only when the socket side can take it.
    fn pump(&mut self) {
        for link in self.relay.links_with_pending() {
            let Some(writer) = self.links.get(&link) else {
                // Not (or no longer) a connection: nothing can be delivered.
                while self.relay.poll_transmit(link).is_some() {}
                continue;
            };
            if writer.finish.is_none() {
                continue;
            }
            while let Ok(permit) = writer.frames.try_reserve() {
                match self.relay.poll_transmit(link) {
                    Some(bytes) => permit.send(bytes),
                    None => break,
                }
            }
        }
    }

    /// Handles the core's events; returns how many links it closed.
    fn drain_events(&mut self) -> usize {
        let mut closed = 0;
        while let Some(event) = self.relay.poll_event() {
            match event {
                RelayEvent::LinkReady {
                    link,
                    role,
                    workspace,
                } => info!(%link, ?role, %workspace, "link ready"),
                RelayEvent::HostRegistered {
                    link,
                    workspace,
                    host_key,
                } => {
                    self.stats().hosts_registered += 1;
                    let fingerprint = host_key.get(..8).map(hex::encode).unwrap_or_default();
                    info!(%link, %workspace, host = %fingerprint, "host registered");
                }
                RelayEvent::CloseLink { link, code } => {
                    info!(%link, %code, "closing link");
                    self.finish(link, code);
                    closed += 1;
                }
                RelayEvent::PeerGoingAway { link, code } => {
                    info!(%link, %code, "client going away");
                    *self.stats().peer_goaway_by_code.entry(code).or_insert(0) += 1;
                    // LINK-27: nothing more is sent after the client's GOAWAY.
                    while self.relay.poll_transmit(link).is_some() {}
                    self.send_finish(link, Vec::new(), true, self.flush_timeout);
                }
                RelayEvent::Refused {
                    link,
                    session,
                    code,
                    requirement,
                } => {
                    debug!(%link, session = ?session.map(|s| hex::encode(s.0)), %code, requirement, "refused");
                    self.stats().count_refusal(code, requirement);
                }
                _ => {}
            }
        }
        closed
    }

    /// The core queued the link's `GOAWAY`: send everything still queued, then close.
    fn finish(&mut self, link: LinkId, code: CloseCode) {
        let mut frames = Vec::new();
        while let Some(bytes) = self.relay.poll_transmit(link) {
            frames.push(bytes);
        }
        let timeout = if code == CloseCode::SLOW_READER {
            SLOW_READER_FLUSH.min(self.flush_timeout)
        } else {
            self.flush_timeout
        };
        self.send_finish(link, frames, false, timeout);
    }

    /// Shutdown: what is queued, then `GOAWAY GOING_AWAY` (spec/03 3.9).
    fn finish_going_away(&mut self, link: LinkId) {
        let mut frames = Vec::new();
        while let Some(bytes) = self.relay.poll_transmit(link) {
            frames.push(bytes);
        }
        let goaway = RelayFrame::GoAway {
            code: CloseCode::GOING_AWAY,
            reason: "relay shutting down".into(),
        };
        if let Ok(bytes) = goaway.to_bytes() {
            frames.push(bytes);
        }
        *self
            .stats()
            .refused_by_code
            .entry(CloseCode::GOING_AWAY)
            .or_insert(0) += 1;
        self.send_finish(link, frames, false, self.flush_timeout);
    }

    /// Drops the link without a word (nothing queued for it may be sent).
    fn abort(&mut self, link: LinkId) {
        while self.relay.poll_transmit(link).is_some() {}
        self.send_finish(link, Vec::new(), true, Duration::ZERO);
    }

    fn send_finish(
        &mut self,
        link: LinkId,
        frames: Vec<Vec<u8>>,
        discard_queued: bool,
        timeout: Duration,
    ) {
        if let Some(finish) = self.links.get_mut(&link).and_then(|w| w.finish.take()) {
            let _ = finish.send(Finish {
                frames,
                discard_queued,
                timeout,
            });
        }
    }

    fn begin_shutdown(&mut self) {
        info!(links = self.links.len(), "relay shutting down");
        self.shutting_down = true;
        let open: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, w)| w.finish.is_some())
            .map(|(l, _)| *l)
            .collect();
        for link in open {
            self.finish_going_away(link);
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
