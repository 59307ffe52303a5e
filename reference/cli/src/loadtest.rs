//! `tether loadtest`: a soak test of a relay (`spec/03-relay-link.md`).
//!
//! The tool plays both ends of N sessions through one relay: hosts that register with
//! real `Noise_XN` proofs (`LINK-12`) and controllers that `OPEN` sessions to them
//! (`LINK-18`). The sessions then carry `DATA` both ways, of random sizes, for a bounded
//! time, and every message is checked where it arrives.
//!
//! What it is not: the session payloads are not Noise messages. After `OPEN` the relay
//! forwards `DATA` payloads as opaque bytes (`LINK-26`), so the load carries test
//! messages instead of a Noise channel; the handshake bytes of `OPEN` carry the session's
//! tag. The secure channel and the command protocol are exercised elsewhere (the
//! end-to-end and conformance tests); this tool measures the relay's routing, queues and
//! memory under load.
//!
//! Every `DATA` payload is a test message:
//!
//! ```text
//! offset  size  field
//! 0       8     tag: the session's random 63-bit tag, top bit = direction (1: to the controller)
//! 8       8     sequence number in that direction, from 0
//! 16      8     checksum: the first 8 bytes of BLAKE2s-256 over bytes 0..16 and 24..
//! 24      8     (payloads of 32 bytes or more) send time, microseconds since the run began
//! 32      rest  pseudo-random body
//! ```
//!
//! Both ends live in this process, so the send time gives each delivered message's
//! latency through the relay.
//!
//! At the receiving end a message is **delivered** (tag and checksum right, the next
//! sequence number), **corrupted** (the checksum fails), **misrouted** (intact but
//! another session's or direction's tag, or on a session id the link does not have) or
//! **reordered** (intact, right tag, unexpected sequence number). Messages sent and never
//! received are **lost**. A sender keeps at most `--window` messages in flight per
//! direction, so the tool itself never drives the relay into its queue bounds
//! (`LINK-22`, `LINK-23`): a `CLOSE SLOW_READER` is a failure too.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use blake2::{Blake2s256, Digest};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tether_proto::limits::{MAX_NOISE_MESSAGE_LEN, PROTOCOL_VERSION};
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame, Role, SessionId};
use tether_relay::client::{self, ClientLink};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

/// Bytes of a test message before its body.
pub(crate) const HEADER_LEN: usize = 24;
/// The direction bit of a tag.
const DIR_BIT: u64 = 1 << 63;
/// Links connecting and authenticating at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Frames a link's writer holds.
const WRITER_QUEUE: usize = 64;

/// Arguments of `tether loadtest`.
#[derive(Args)]
pub(crate) struct LoadtestArgs {
    /// Relay URL (`ws://` on loopback, or `wss://`). Without it the tool starts `tether
    /// relay` on 127.0.0.1 as a child process and measures its memory.
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// The workspace to use, as NAME=CREDENTIAL (needed with --relay).
    #[arg(long, value_name = "NAME=CREDENTIAL")]
    workspace: Option<String>,
    /// PID of the relay given by --relay, to read its resident memory from
    /// /proc/PID/status.
    #[arg(long, value_name = "PID")]
    relay_pid: Option<u32>,
    /// CA certificate (PEM) to trust for a `wss://` relay.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Seconds of traffic, after every session is open.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    duration: u64,
    /// Smallest message payload in bytes (at least 24, the test header).
    #[arg(long, default_value_t = 64)]
    min_size: usize,
    /// Largest message payload in bytes (at most 65535, LINK-33).
    #[arg(long, default_value_t = 16384)]
    max_size: usize,
    /// Messages per second each session sends in each direction (0: as fast as the window
    /// allows).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Messages a session may have in flight in each direction.
    #[arg(long, default_value_t = 4)]
    window: u64,
    /// Sessions per host link (1 to 64, LINK-20).
    #[arg(long, default_value_t = 50)]
    sessions_per_host: usize,
    /// Sessions per controller link (1 to 16, LINK-20).
    #[arg(long, default_value_t = 1)]
    sessions_per_controller: usize,
    /// Seconds allowed, after sending stops, for messages still in flight.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    drain: u64,
    /// Seconds allowed for connecting every link and opening every session.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    setup_timeout: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

// ---------------------------------------------------------------------------------------
// test messages

/// Which way a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToHost,
    ToController,
}

/// The tag a session's messages carry in one direction.
fn dir_tag(tag: u64, dir: Dir) -> u64 {
    match dir {
        Dir::ToHost => tag & !DIR_BIT,
        Dir::ToController => tag | DIR_BIT,
    }
}

/// A small fast generator for message sizes and bodies (not for keys).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Never zero (a fixed point of xorshift).
        Self(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-enough in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = hi.saturating_sub(lo).saturating_add(1) as u64;
        let pick = self.next_u64() % span.max(1);
        lo.saturating_add(usize::try_from(pick).unwrap_or(0))
    }
}

fn checksum(head: &[u8], body: &[u8]) -> [u8; 8] {
    let mut hasher = Blake2s256::new();
    hasher.update(head);
    hasher.update(body);
    let digest = hasher.finalize();
    let mut out = [0u8; 8];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

/// The whole `DATA` frame of test message `seq` of `session` with tag `tag`, its payload
/// `len` bytes long (at least [`HEADER_LEN`]), stamped with `sent_us` when it has room.
pub(crate) fn data_frame(
    session: SessionId,
    tag: u64,
    seq: u64,
    len: usize,
    sent_us: u64,
) -> Vec<u8> {
    let len = len.max(HEADER_LEN);
    let mut frame = Vec::with_capacity(9 + len);
    frame.push(RelayFrame::DATA);
    frame.extend_from_slice(&session.0);
    let start = frame.len();
    frame.extend_from_slice(&tag.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&[0u8; 8]);
    if len >= HEADER_LEN + 8 {
        frame.extend_from_slice(&sent_us.to_be_bytes());
    }
    let mut rng = XorShift::new(tag ^ seq.rotate_left(29));
    while frame.len() < start + len {
        let word = rng.next_u64().to_le_bytes();
        let n = (start + len - frame.len()).min(8);
        frame.extend_from_slice(word.get(..n).unwrap_or_default());
    }
    let sum = checksum(
        frame.get(start..start + 16).unwrap_or_default(),
        frame.get(start + HEADER_LEN..).unwrap_or_default(),
    );
    if let Some(slot) = frame.get_mut(start + 16..start + HEADER_LEN) {
        slot.copy_from_slice(&sum);
    }
    frame
}

/// What became of a message at its receiving end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Intact, the right session and direction, the next sequence number.
    Delivered,
    /// The checksum fails (or the payload is shorter than the header).
    Corrupted,
    /// Intact, but another session's or direction's message.
    Misrouted,
    /// Intact and the right session, but not the next sequence number.
    Reordered {
        /// The sequence number it carried.
        got: u64,
    },
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at + 8)?;
    Some(u64::from_be_bytes(slice.try_into().ok()?))
}

/// Checks one received payload against the tag and sequence number expected.
pub(crate) fn verify(payload: &[u8], expect_tag: u64, expect_seq: u64) -> Verdict {
    let (Some(head), Some(sum), Some(body)) = (
        payload.get(..16),
        payload.get(16..HEADER_LEN),
        payload.get(HEADER_LEN..),
    ) else {
        return Verdict::Corrupted;
    };
    if checksum(head, body) != sum {
        return Verdict::Corrupted;
    }
    let (Some(tag), Some(seq)) = (u64_at(payload, 0), u64_at(payload, 8)) else {
        return Verdict::Corrupted;
    };
    if tag != expect_tag {
        Verdict::Misrouted
    } else if seq != expect_seq {
        Verdict::Reordered { got: seq }
    } else {
        Verdict::Delivered
    }
}

// ---------------------------------------------------------------------------------------
// shared state

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    bytes_sent: AtomicU64,
    delivered: AtomicU64,
    bytes_delivered: AtomicU64,
    corrupted: AtomicU64,
    misrouted: AtomicU64,
    reordered: AtomicU64,
    sessions_opened: AtomicU64,
    sessions_closed: AtomicU64,
    link_failures: AtomicU64,
    close_codes: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<Vec<String>>,
    /// Latencies of delivered, stamped messages, in microseconds.
    latencies_us: Mutex<Vec<u64>>,
}

impl Stats {
    fn count_close(&self, code: CloseCode) {
        self.sessions_closed.fetch_add(1, Ordering::Relaxed);
        let mut codes = self
            .close_codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *codes.entry(code.to_string()).or_insert(0) += 1;
    }

    fn fail(&self, what: String) {
        self.link_failures.fetch_add(1, Ordering::Relaxed);
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() < 20 {
            failures.push(what);
        }
    }
}

/// One direction of one session.
#[derive(Default)]
struct DirState {
    sent: AtomicU64,
    /// Arrivals carrying this direction's tag (whatever their verdict).
    received: AtomicU64,
    /// The sequence number the receiver expects next.
    next_seq: AtomicU64,
    /// The receiver signals the sender that the window moved.
    window: Notify,
}

struct SessionShared {
    id: SessionId,
    tag: u64,
    host: usize,
    host_opened: AtomicBool,
    closed: AtomicBool,
    to_host: DirState,
    to_controller: DirState,
}

impl SessionShared {
    fn dir(&self, dir: Dir) -> &DirState {
        match dir {
            Dir::ToHost => &self.to_host,
            Dir::ToController => &self.to_controller,
        }
    }
}

/// Everything the link tasks share.
struct Plan {
    url: String,
    workspace: String,
    credential: Vec<u8>,
    tls: Option<Arc<rustls::ClientConfig>>,
    sessions: Vec<Arc<SessionShared>>,
    /// Session tag → index.
    tags: HashMap<u64, usize>,
    host_keys: Vec<([u8; 32], [u8; 32])>,
    min_size: usize,
    max_size: usize,
    rate: f64,
    window: u64,
    stats: Stats,
    opened: Notify,
    /// When the run began: the zero of the send stamps.
    epoch: Instant,
}

impl Plan {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

fn random_u64() -> anyhow::Result<u64> {
    Ok(u64::from_le_bytes(tether_host::state::random_bytes::<8>()?))
}

// ---------------------------------------------------------------------------------------
// links

async fn recv_timeout(link: &mut ClientLink, what: &str) -> anyhow::Result<RelayFrame> {
    match tokio::time::timeout(Duration::from_secs(30), client::recv_frame(link)).await {
        Ok(Ok(Some(frame))) => Ok(frame),
        Ok(Ok(None)) => bail!("{what}: the relay closed the link"),
        Ok(Err(e)) => bail!("{what}: {e}"),
        Err(_) => bail!("{what}: no answer within 30 s"),
    }
}

/// Connects and registers a host (`LINK-9`, `LINK-12`).
async fn connect_host(plan: &Plan, private: &[u8; 32]) -> anyhow::Result<ClientLink> {
    let mut link = client::connect(&plan.url, plan.tls.clone()).await?;
    let (registration, msg1) = HostRegistration::start(private, &plan.workspace)
        .map_err(|e| anyhow::anyhow!("host registration: {e}"))?;
    client::send_frame(
        &mut link,
        &RelayFrame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Host,
            workspace: plan.workspace.clone(),
            credential: plan.credential.clone(),
            registration: msg1.to_vec(),
        },
    )
    .await?;
    let challenge = match recv_timeout(&mut link, "host registration").await? {
        RelayFrame::HostChallenge { message } => message,
        other => bail!("host registration: relay sent {other:?}"),
    };
    let proof = registration
        .respond(&challenge)
        .map_err(|e| anyhow::anyhow!("host registration: {e}"))?;
    client::send_frame(
        &mut link,
        &RelayFrame::HostProof {
            message: proof.to_vec(),
        },
    )
    .await?;
    match recv_timeout(&mut link, "host registration").await? {
        RelayFrame::Ready => Ok(link),
        other => bail!("host registration: relay sent {other:?}"),
    }
}

/// Connects a controller link (`LINK-10`).
async fn connect_controller(plan: &Plan) -> anyhow::Result<ClientLink> {
    let mut link = client::connect(&plan.url, plan.tls.clone()).await?;
    client::send_frame(
        &mut link,
        &RelayFrame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Controller,
            workspace: plan.workspace.clone(),
            credential: plan.credential.clone(),
            registration: Vec::new(),
        },
    )
    .await?;
    match recv_timeout(&mut link, "controller HELLO").await? {
        RelayFrame::Ready => Ok(link),
        other => bail!("controller HELLO: relay sent {other:?}"),
    }
}

/// Sends what the channel gives until it closes or `stop`, then `GOAWAY NORMAL`.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<ClientLink, Message>,
    mut frames: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(bytes) = frames.recv().await {
        if sink.send(Message::Binary(bytes.into())).await.is_err() {
            return;
        }
    }
    let goaway = RelayFrame::GoAway {
        code: CloseCode::NORMAL,
        reason: String::new(),
    };
    if let Ok(bytes) = goaway.to_bytes() {
        let _ = sink.send(Message::Binary(bytes.into())).await;
    }
    let _ = sink.close().await;
}

/// Handles one arriving `DATA` of session `index` in direction `dir`.
fn on_data(plan: &Plan, index: usize, dir: Dir, payload: &[u8]) {
    let stats = &plan.stats;
    let Some(s) = plan.sessions.get(index) else {
        stats.misrouted.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let d = s.dir(dir);
    let expected = d.next_seq.load(Ordering::Relaxed);
    match verify(payload, dir_tag(s.tag, dir), expected) {
        Verdict::Delivered => {
            if let Some(sent) = u64_at(payload, HEADER_LEN) {
                let latency = plan.now_us().saturating_sub(sent);
                stats
                    .latencies_us
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(latency);
            }
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            stats
                .bytes_delivered
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
            d.next_seq.store(expected + 1, Ordering::Relaxed);
        }
        Verdict::Corrupted => {
            stats.corrupted.fetch_add(1, Ordering::Relaxed);
            d.next_seq.store(expected + 1, Ordering::Relaxed);
        }
        Verdict::Misrouted => {
            stats.misrouted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Verdict::Reordered { got } => {
            stats.reordered.fetch_add(1, Ordering::Relaxed);
            d.next_seq.store(got.saturating_add(1), Ordering::Relaxed);
        }
    }
    d.received.fetch_add(1, Ordering::Relaxed);
    d.window.notify_one();
}

/// One session's sender in one direction: waits for the start, then sends until `stop`.
async fn send_loop(
    plan: Arc<Plan>,
    index: usize,
    dir: Dir,
    tx: mpsc::Sender<Vec<u8>>,
    mut start: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(s) = plan.sessions.get(index).cloned() else {
        return;
    };
    if start.wait_for(|go| *go).await.is_err() {
        return;
    }
    let d = s.dir(dir);
    let tag = dir_tag(s.tag, dir);
    let mut rng = XorShift::new(tag);
    let period = (plan.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.rate));
    // Spread the sessions' first messages over one period.
    let mut next = tokio::time::Instant::now()
        + period.map_or(Duration::ZERO, |p| {
            p.mul_f64(f64::from(u32::try_from(rng.range(0, 1000)).unwrap_or(0)) / 1000.0)
        });
    loop {
        // The window (and the stop) first.
        loop {
            if *stop.borrow() || s.closed.load(Ordering::Relaxed) {
                return;
            }
            let in_flight = d
                .sent
                .load(Ordering::Relaxed)
                .saturating_sub(d.received.load(Ordering::Relaxed));
            if in_flight < plan.window {
                break;
            }
            tokio::select! {
                () = d.window.notified() => {}
                _ = stop.changed() => return,
            }
        }
        if let Some(p) = period {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = stop.changed() => return,
            }
            next += p;
            let now = tokio::time::Instant::now();
            if next < now {
                next = now;
            }
        }
        if *stop.borrow() {
            return;
        }
        let seq = d.sent.load(Ordering::Relaxed);
        let len = rng.range(plan.min_size, plan.max_size);
        let frame = data_frame(s.id, tag, seq, len, plan.now_us());
        if tx.send(frame).await.is_err() {
            return;
        }
        d.sent.fetch_add(1, Ordering::Relaxed);
        plan.stats.sent.fetch_add(1, Ordering::Relaxed);
        plan.stats
            .bytes_sent
            .fetch_add(len as u64, Ordering::Relaxed);
    }
}

/// Serves a host link: `INCOMING` starts the session's sender to the controller, `DATA` is
/// checked.
async fn host_link(
    plan: Arc<Plan>,
    host: usize,
    link: ClientLink,
    start: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let (sink, mut stream) = link.split();
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    let writer = tokio::spawn(write_loop(sink, rx));
    let mut mine: HashMap<SessionId, usize> = HashMap::new();
    let stats = &plan.stats;
    let mut end = format!("host link {host}: the relay closed it");
    while let Some(message) = stream.next().await {
        let bytes = match message {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                end = format!("host link {host}: {e}");
                break;
            }
        };
        match RelayFrame::decode(&bytes) {
            Ok(RelayFrame::Incoming { session, handshake }) => {
                let tag = u64_at(&handshake, 0).unwrap_or(0);
                let index = plan.tags.get(&tag).copied();
                match index.and_then(|i| plan.sessions.get(i).map(|s| (i, s))) {
                    Some((i, s)) if s.host == host && s.id == session => {
                        mine.insert(session, i);
                        s.host_opened.store(true, Ordering::Relaxed);
                        stats.sessions_opened.fetch_add(1, Ordering::Relaxed);
                        plan.opened.notify_one();
                        tokio::spawn(send_loop(
                            plan.clone(),
                            i,
                            Dir::ToController,
                            tx.clone(),
                            start.clone(),
                            stop.clone(),
                        ));
                    }
                    _ => {
                        stats.misrouted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(frame) => {
                if let Err(e) = common_frame(frame, Dir::ToHost, &plan, &mine, &tx).await {
                    end = format!("host link {host}: {e}");
                    break;
                }
            }
            Err(e) => {
                end = format!("host link {host}: undecodable frame: {e}");
                break;
            }
        }
    }
    // Links end only when the run does.
    if !*stop.borrow() {
        stats.fail(end);
    }
    drop(tx);
    let _ = writer.await;
}

/// The frames host and controller links treat alike: `DATA` of one of the link's
/// sessions (`mine`) is checked as travelling in `dir`, `DATA` of another is misrouted;
/// `CLOSE` ends a session (and wakes the set-up's count); `PING` is answered. `GOAWAY` and
/// any other frame end the link: the error says why.
async fn common_frame(
    frame: RelayFrame,
    dir: Dir,
    plan: &Plan,
    mine: &HashMap<SessionId, usize>,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<(), String> {
    let stats = &plan.stats;
    match frame {
        RelayFrame::Data { session, payload } => match mine.get(&session) {
            Some(&i) => on_data(plan, i, dir, &payload),
            None => {
                stats.misrouted.fetch_add(1, Ordering::Relaxed);
            }
        },
        RelayFrame::Close { session, code } => {
            if let Some(s) = mine.get(&session).and_then(|&i| plan.sessions.get(i)) {
                s.closed.store(true, Ordering::Relaxed);
            }
            stats.count_close(code);
            plan.opened.notify_one();
        }
        RelayFrame::Ping { value } => {
            if let Ok(b) = (RelayFrame::Pong { value }).to_bytes() {
                let _ = tx.send(b).await;
            }
        }
        RelayFrame::Pong { .. } => {}
        RelayFrame::GoAway { code, .. } => return Err(format!("relay sent GOAWAY {code}")),
        other => return Err(format!("unexpected {}", other.type_name())),
    }
    Ok(())
}

/// Serves a controller link: `OPEN`s its sessions, then checks what arrives.
async fn controller_link(
    plan: Arc<Plan>,
    sessions: Vec<usize>,
    link: ClientLink,
    start: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let (sink, mut stream) = link.split();
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    let writer = tokio::spawn(write_loop(sink, rx));
    let stats = &plan.stats;
    let mut mine: HashMap<SessionId, usize> = HashMap::new();
    for &i in &sessions {
        let Some(s) = plan.sessions.get(i) else {
            continue;
        };
        let Some((_, host_key)) = plan.host_keys.get(s.host) else {
            continue;
        };
        // The handshake bytes carry the tag (the relay forwards them as they are).
        let mut handshake = s.tag.to_be_bytes().to_vec();
        handshake.resize(32, 0);
        let open = RelayFrame::Open {
            session: s.id,
            host_key: *host_key,
            handshake,
        };
        if let Ok(bytes) = open.to_bytes() {
            let _ = tx.send(bytes).await;
        }
        mine.insert(s.id, i);
        tokio::spawn(send_loop(
            plan.clone(),
            i,
            Dir::ToHost,
            tx.clone(),
            start.clone(),
            stop.clone(),
        ));
    }
    let mut end = "controller link: the relay closed it".to_owned();
    while let Some(message) = stream.next().await {
        let bytes = match message {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                end = format!("controller link: {e}");
                break;
            }
        };
        match RelayFrame::decode(&bytes) {
            Ok(frame) => {
                if let Err(e) = common_frame(frame, Dir::ToController, &plan, &mine, &tx).await {
                    end = format!("controller link: {e}");
                    break;
                }
            }
            Err(e) => {
                end = format!("controller link: undecodable frame: {e}");
                break;
            }
        }
    }
    if !*stop.borrow() {
        stats.fail(end);
    }
    drop(tx);
    let _ = writer.await;
}

// ---------------------------------------------------------------------------------------
// the relay's memory

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit now.
fn raise_nofile() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current
}

/// `tether relay` as a child process, killed on drop.
struct ChildRelay {
    child: Child,
    url: String,
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_child_relay(workspace: &str, credential: &str) -> anyhow::Result<ChildRelay> {
    let exe = std::env::current_exe().context("locating the tether executable")?;
    let mut child = Command::new(exe)
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--max-links-per-address",
            "0",
        ])
        .arg("--workspace")
        .arg(format!("{workspace}={credential}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tether relay")?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let mut relay = ChildRelay {
        child,
        url: String::new(),
    };
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .context("the relay printed no listening line within 30 s")?;
    relay.url = line
        .strip_prefix("tether relay listening on ")
        .with_context(|| format!("unexpected relay output {line:?}"))?
        .trim()
        .to_owned();
    Ok(relay)
}

// ---------------------------------------------------------------------------------------
// the run

struct Summary(serde_json::Value, bool);

pub(crate) fn run(args: LoadtestArgs) -> anyhow::Result<ExitCode> {
    if args.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    if args.min_size < HEADER_LEN || args.max_size > MAX_NOISE_MESSAGE_LEN {
        bail!(
            "message sizes must lie in {HEADER_LEN}..={MAX_NOISE_MESSAGE_LEN} (the test header; LINK-33)"
        );
    }
    if args.min_size > args.max_size {
        bail!("--min-size is larger than --max-size");
    }
    if !(1..=64).contains(&args.sessions_per_host)
        || !(1..=16).contains(&args.sessions_per_controller)
    {
        bail!("--sessions-per-host must be 1..=64 and --sessions-per-controller 1..=16 (LINK-20)");
    }
    if args.window == 0 || !args.rate.is_finite() || args.rate < 0.0 {
        bail!("--window must be at least 1 and --rate a non-negative number");
    }
    let nofile = raise_nofile();
    let hosts = args.sessions.div_ceil(args.sessions_per_host);
    let controllers = args.sessions.div_ceil(args.sessions_per_controller);
    let links = (hosts + controllers) as u64;
    // Our sockets, and the child relay's (it inherits the limit).
    if let Some(limit) = nofile
        && limit < links + 64
    {
        bail!("{links} links need more open files than the limit of {limit}; raise it (ulimit -n)");
    }

    let (child, url, workspace, credential) = match &args.relay {
        Some(url) => {
            let pair = args
                .workspace
                .as_deref()
                .context("--relay needs --workspace NAME=CREDENTIAL")?;
            let (name, credential) = pair
                .split_once('=')
                .context("--workspace must be NAME=CREDENTIAL")?;
            (None, url.clone(), name.to_owned(), credential.to_owned())
        }
        None => {
            let credential: String = tether_host::state::random_bytes::<16>()?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let relay = start_child_relay("loadtest", &credential)?;
            let url = relay.url.clone();
            (Some(relay), url, "loadtest".to_owned(), credential)
        }
    };
    let relay_pid = child.as_ref().map(|c| c.child.id()).or(args.relay_pid);
    let tls = match &args.ca_cert {
        Some(pem) => Some(client::tls_config_with_ca(pem)?),
        None => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(drive(
        &args,
        url,
        workspace,
        credential.into_bytes(),
        tls,
        relay_pid,
    ))?;
    drop(child);
    let Summary(value, ok) = summary;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    }
    out.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn drive(
    args: &LoadtestArgs,
    url: String,
    workspace: String,
    credential: Vec<u8>,
    tls: Option<Arc<rustls::ClientConfig>>,
    relay_pid: Option<u32>,
) -> anyhow::Result<Summary> {
    let setup_started = Instant::now();
    let hosts = args.sessions.div_ceil(args.sessions_per_host);
    let mut host_keys = Vec::with_capacity(hosts);
    for _ in 0..hosts {
        let private = tether_host::state::random_bytes::<32>()?;
        host_keys.push((private, tether_proto::keys::public_key(&private)));
    }
    let mut sessions = Vec::with_capacity(args.sessions);
    let mut tags = HashMap::with_capacity(args.sessions);
    for i in 0..args.sessions {
        let mut tag = random_u64()? & !DIR_BIT;
        while tag == 0 || tags.contains_key(&tag) {
            tag = random_u64()? & !DIR_BIT;
        }
        tags.insert(tag, i);
        sessions.push(Arc::new(SessionShared {
            id: SessionId(tether_host::state::random_bytes::<8>()?),
            tag,
            host: i / args.sessions_per_host,
            host_opened: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            to_host: DirState::default(),
            to_controller: DirState::default(),
        }));
    }
    let plan = Arc::new(Plan {
        url,
        workspace,
        credential,
        tls,
        sessions,
        tags,
        host_keys,
        min_size: args.min_size,
        max_size: args.max_size,
        rate: args.rate,
        window: args.window,
        stats: Stats::default(),
        opened: Notify::new(),
        epoch: Instant::now(),
    });
    let rss_before = relay_pid.and_then(|p| proc_status_kib(p, "VmRSS"));
    let (start_tx, start_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let setup_deadline = tokio::time::Instant::now() + Duration::from_secs(args.setup_timeout);
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::new();

    // Hosts first: every one READY before a controller opens a session (LINK-17).
    let mut connecting = Vec::new();
    for h in 0..hosts {
        let plan = plan.clone();
        let gate = gate.clone();
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let private = plan.host_keys.get(h).map(|k| k.0).unwrap_or_default();
            connect_host(&plan, &private).await
        }));
    }
    for (h, pending) in connecting.into_iter().enumerate() {
        let link = tokio::time::timeout_at(setup_deadline, pending)
            .await
            .context("setup timed out registering hosts")?
            .context("host task")?
            .with_context(|| format!("host link {h}"))?;
        tasks.push(tokio::spawn(host_link(
            plan.clone(),
            h,
            link,
            start_rx.clone(),
            stop_rx.clone(),
        )));
    }
    let mut connecting = Vec::new();
    let indices: Vec<usize> = (0..args.sessions).collect();
    for chunk in indices.chunks(args.sessions_per_controller) {
        let plan = plan.clone();
        let gate = gate.clone();
        let chunk = chunk.to_vec();
        let (start_rx, stop_rx) = (start_rx.clone(), stop_rx.clone());
        connecting.push(tokio::spawn(async move {
            let link = {
                let _permit = gate.acquire().await;
                connect_controller(&plan).await?
            };
            Ok::<_, anyhow::Error>(tokio::spawn(controller_link(
                plan, chunk, link, start_rx, stop_rx,
            )))
        }));
    }
    for pending in connecting {
        let task = tokio::time::timeout_at(setup_deadline, pending)
            .await
            .context("setup timed out connecting controllers")?
            .context("controller task")?
            .context("controller link")?;
        tasks.push(task);
    }
    // Every session open at its host, or refused.
    loop {
        let opened = plan.stats.sessions_opened.load(Ordering::Relaxed);
        let closed = plan.stats.sessions_closed.load(Ordering::Relaxed);
        if opened + closed >= args.sessions as u64 {
            break;
        }
        if tokio::time::timeout_at(setup_deadline, plan.opened.notified())
            .await
            .is_err()
        {
            bail!(
                "setup timed out: {opened} of {} sessions open, {closed} refused",
                args.sessions
            );
        }
    }
    let setup = setup_started.elapsed();
    if plan.stats.sessions_closed.load(Ordering::Relaxed) > 0 {
        plan.stats.fail("sessions were refused at OPEN".to_owned());
    }

    // Traffic.
    let (rss_max_tx, mut rss_max_rx) = watch::channel(rss_before.unwrap_or(0));
    let sampler = relay_pid.map(|pid| {
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut max = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                if let Some(rss) = proc_status_kib(pid, "VmRSS") {
                    max = rss.max(max);
                    let _ = rss_max_tx.send(max);
                }
                if *stop.borrow() {
                    return;
                }
            }
        })
    });
    let started = Instant::now();
    let _ = start_tx.send(true);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let _ = stop_tx.send(true);
    let sending = started.elapsed();

    // Drain: wait for what is in flight.
    let drain_started = Instant::now();
    let drain_deadline = drain_started + Duration::from_secs(args.drain);
    let in_flight = |plan: &Plan| -> u64 {
        plan.sessions
            .iter()
            .map(|s| {
                [&s.to_host, &s.to_controller]
                    .iter()
                    .map(|d| {
                        d.sent
                            .load(Ordering::Relaxed)
                            .saturating_sub(d.received.load(Ordering::Relaxed))
                    })
                    .sum::<u64>()
            })
            .sum()
    };
    // Let the senders see the stop before counting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    while in_flight(&plan) > plan.stats.misrouted.load(Ordering::Relaxed)
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain = drain_started.elapsed();
    let relay_hwm = relay_pid.and_then(|p| proc_status_kib(p, "VmHWM"));
    let rss_end = relay_pid.and_then(|p| proc_status_kib(p, "VmRSS"));
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let rss_sampled = *rss_max_rx.borrow_and_update();

    let stats = &plan.stats;
    let sent = stats.sent.load(Ordering::Relaxed);
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let corrupted = stats.corrupted.load(Ordering::Relaxed);
    let misrouted = stats.misrouted.load(Ordering::Relaxed);
    let reordered = stats.reordered.load(Ordering::Relaxed);
    let lost = in_flight(&plan).saturating_sub(misrouted);
    let closed = stats.sessions_closed.load(Ordering::Relaxed);
    let link_failures = stats.link_failures.load(Ordering::Relaxed);
    let bytes = stats.bytes_delivered.load(Ordering::Relaxed);
    let secs = sending.as_secs_f64().max(1e-9);
    let ok = sent > 0
        && lost == 0
        && corrupted == 0
        && misrouted == 0
        && reordered == 0
        && closed == 0
        && link_failures == 0;

    // Close every link (GOAWAY NORMAL) before the relay goes.
    for t in &tasks {
        t.abort();
    }
    let latency_ms = {
        let mut l = stats
            .latencies_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        l.sort_unstable();
        let at = |p: f64| -> Option<f64> {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let i = ((l.len().saturating_sub(1)) as f64 * p).round() as usize;
            #[allow(clippy::cast_precision_loss)]
            l.get(i).map(|us| round3(*us as f64 / 1000.0))
        };
        json!({"p50": at(0.5), "p99": at(0.99), "max": at(1.0), "samples": l.len()})
    };
    let close_codes = stats
        .close_codes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let failures = stats
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    #[allow(clippy::cast_precision_loss)]
    let value = json!({
        "sessions": args.sessions,
        "sessionsOpened": stats.sessions_opened.load(Ordering::Relaxed),
        "hostLinks": hosts,
        "controllerLinks": args.sessions.div_ceil(args.sessions_per_controller),
        "durationS": round3(secs),
        "setupS": round3(setup.as_secs_f64()),
        "drainS": round3(drain.as_secs_f64()),
        "minSize": args.min_size,
        "maxSize": args.max_size,
        "rate": args.rate,
        "window": args.window,
        "messagesSent": sent,
        "delivered": delivered,
        "lost": lost,
        "corrupted": corrupted,
        "misrouted": misrouted,
        "reordered": reordered,
        "latencyMs": latency_ms,
        "sessionsClosed": closed,
        "closeCodes": close_codes,
        "linkFailures": link_failures,
        "failures": failures,
        "bytes": bytes,
        "bytesSent": stats.bytes_sent.load(Ordering::Relaxed),
        "messagesPerS": round3(delivered as f64 / secs),
        "mibPerS": round3(bytes as f64 / secs / 1_048_576.0),
        "relayPid": relay_pid,
        "relayRssBeforeKiB": rss_before,
        "relayRssMaxSampledKiB": relay_pid.map(|_| rss_sampled),
        "relayRssEndKiB": rss_end,
        "relayPeakRssKiB": relay_hwm.map(|h| h.max(rss_sampled)),
        "ok": ok,
    });
    Ok(Summary(value, ok))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn payload(frame: &[u8]) -> Vec<u8> {
        match RelayFrame::decode(frame).unwrap() {
            RelayFrame::Data { payload, .. } => payload,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frames_decode_and_verify() {
        let id = SessionId([1, 2, 3, 4, 5, 6, 7, 8]);
        for len in [24, 25, 31, 32, 1000, 65_535] {
            let frame = data_frame(id, 0x1234, 7, len, 99);
            assert_eq!(frame.len(), 9 + len);
            let p = payload(&frame);
            assert_eq!(verify(&p, 0x1234, 7), Verdict::Delivered);
        }
        // Deterministic: the same message twice is the same bytes.
        assert_eq!(data_frame(id, 9, 1, 100, 5), data_frame(id, 9, 1, 100, 5));
        // The stamp is covered by the checksum, and read back.
        let p = payload(&data_frame(id, 9, 1, 100, 123_456));
        assert_eq!(u64_at(&p, HEADER_LEN), Some(123_456));
    }

    #[test]
    fn every_fault_is_told_apart() {
        let id = SessionId([0; 8]);
        let tag = dir_tag(0x0abc_def0, Dir::ToHost);
        let good = payload(&data_frame(id, tag, 3, 500, 1));
        // One flipped bit anywhere: corrupted.
        for at in [0, 8, 16, 23, 24, 300, 499] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert_eq!(verify(&bad, tag, 3), Verdict::Corrupted, "byte {at}");
        }
        // Truncated.
        assert_eq!(verify(&good[..499], tag, 3), Verdict::Corrupted);
        assert_eq!(verify(&good[..10], tag, 3), Verdict::Corrupted);
        // The other direction of the same session, or another session: misrouted.
        let back = dir_tag(0x0abc_def0, Dir::ToController);
        assert_eq!(verify(&good, back, 3), Verdict::Misrouted);
        assert_eq!(verify(&good, tag ^ 1, 3), Verdict::Misrouted);
        // A gap or a repeat: reordered.
        assert_eq!(verify(&good, tag, 2), Verdict::Reordered { got: 3 });
        assert_eq!(verify(&good, tag, 4), Verdict::Reordered { got: 3 });
    }

    #[test]
    fn sizes_stay_in_range() {
        let mut rng = XorShift::new(42);
        for _ in 0..10_000 {
            let n = rng.range(64, 100);
            assert!((64..=100).contains(&n));
        }
        assert_eq!(rng.range(5, 5), 5);
    }
}
