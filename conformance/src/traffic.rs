//! The traffic log of a case: every WebSocket message sent and received, with the time since
//! the case started, in hex, and decoded where it is a relay frame.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_proto::link::{CloseCode, RelayFrame};

/// Bytes of each message kept in the log; longer messages are shown cut, with their length.
const KEPT_BYTES: usize = 96;
/// Entries kept per case; cases that push megabytes log a count of what they dropped.
const KEPT_ENTRIES: usize = 4000;

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the runner to the target.
    Sent,
    /// From the target to the runner.
    Received,
    /// A note from the case itself.
    Note,
}

/// One logged event.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Time since the case started.
    pub at: Duration,
    /// The runner's name of the link (`host`, `ctl`, `ctl-2`, …).
    pub link: String,
    /// Which way.
    pub direction: Direction,
    /// What kind of message: `binary`, `text`, `close`, or a note.
    pub kind: &'static str,
    /// The message's length in bytes.
    pub len: usize,
    /// The first bytes of the message (at most 96) in hex, with a `HELLO` credential
    /// replaced by `<credential>` (SEC-2: credentials stay out of traces).
    pub hex: String,
    /// A decoded summary, or the note's text.
    pub summary: String,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    entries: Vec<Entry>,
    dropped: usize,
}

/// A shared, append-only log of one case's traffic.
#[derive(Clone, Debug)]
pub struct TrafficLog {
    inner: Arc<Mutex<Inner>>,
}

impl Default for TrafficLog {
    fn default() -> Self {
        Self::new()
    }
}

impl TrafficLog {
    /// An empty log whose clock starts now.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                start: Instant::now(),
                entries: Vec::new(),
                dropped: 0,
            })),
        }
    }

    fn push(
        &self,
        link: &str,
        direction: Direction,
        kind: &'static str,
        bytes: &[u8],
        summary: String,
    ) {
        if let Ok(mut g) = self.inner.lock() {
            if g.entries.len() >= KEPT_ENTRIES {
                g.dropped += 1;
                return;
            }
            let at = g.start.elapsed();
            let hex = redacted_hex(bytes);
            g.entries.push(Entry {
                at,
                link: link.to_owned(),
                direction,
                kind,
                len: bytes.len(),
                hex,
                summary,
            });
        }
    }

    /// Logs a binary message (a relay frame, or bytes meant to be one).
    pub fn binary(&self, link: &str, direction: Direction, bytes: &[u8]) {
        self.push(link, direction, "binary", bytes, describe_frame(bytes));
    }

    /// Logs a text message.
    pub fn text(&self, link: &str, direction: Direction, text: &str) {
        self.push(
            link,
            direction,
            "text",
            text.as_bytes(),
            "WebSocket text message".to_owned(),
        );
    }

    /// Logs the end of a WebSocket (close frame, EOF or error).
    pub fn closed(&self, link: &str, direction: Direction, detail: &str) {
        self.push(link, direction, "close", &[], detail.to_owned());
    }

    /// Logs a note from the case.
    pub fn note(&self, link: &str, text: impl Into<String>) {
        self.push(link, Direction::Note, "note", &[], text.into());
    }

    /// The entries so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.inner
            .lock()
            .map(|g| g.entries.clone())
            .unwrap_or_default()
    }

    /// The log as text, one line per entry:
    /// `+   1.234s ctl      -> binary   45 B  HELLO controller acme  | 0101...`.
    pub fn render(&self) -> String {
        let Ok(g) = self.inner.lock() else {
            return String::from("(log unavailable)\n");
        };
        let mut out = String::new();
        for e in &g.entries {
            let arrow = match e.direction {
                Direction::Sent => "->",
                Direction::Received => "<-",
                Direction::Note => "==",
            };
            let _ = write!(
                out,
                "+{:>8.3}s {:<8} {} {:<6} {:>6} B  {}",
                e.at.as_secs_f64(),
                e.link,
                arrow,
                e.kind,
                e.len,
                e.summary
            );
            if !e.hex.is_empty() {
                let _ = write!(out, "  | {}", e.hex);
                if e.len > KEPT_BYTES {
                    let _ = write!(out, "… ({} more bytes)", e.len - KEPT_BYTES);
                }
            }
            out.push('\n');
        }
        if g.dropped > 0 {
            let _ = writeln!(out, "({} further entries not kept)", g.dropped);
        }
        out
    }
}

/// The first [`KEPT_BYTES`] of a message in hex; for a decodable `HELLO` the credential is
/// shown as `<credential>` (SEC-2).
fn redacted_hex(bytes: &[u8]) -> String {
    let head = bytes.get(..KEPT_BYTES).unwrap_or(bytes);
    if let Ok(RelayFrame::Hello {
        workspace,
        credential,
        ..
    }) = RelayFrame::decode(bytes)
    {
        let start = 5 + workspace.len();
        let end = start + credential.len();
        if let (Some(a), Some(b)) = (bytes.get(..start), bytes.get(end..)) {
            let b = b.get(..KEPT_BYTES.saturating_sub(start)).unwrap_or(b);
            return format!("{}<credential>{}", hex::encode(a), hex::encode(b));
        }
    }
    hex::encode(head)
}

/// A one-line description of a relay frame, or of why it does not decode.
pub fn describe_frame(bytes: &[u8]) -> String {
    match RelayFrame::decode(bytes) {
        Ok(f) => describe(&f),
        Err(e) => format!("(not a valid frame: {} [{}])", e.name(), e.requirement()),
    }
}

fn code(c: CloseCode) -> String {
    c.to_string()
}

/// A one-line description of a decoded frame.
pub fn describe(f: &RelayFrame) -> String {
    match f {
        RelayFrame::Hello {
            version,
            role,
            workspace,
            credential,
            registration,
        } => format!(
            "HELLO v{version} {role:?} workspace={workspace} credential={}B registration={}B",
            credential.len(),
            registration.len()
        ),
        RelayFrame::HostChallenge { message } => format!("HOST_CHALLENGE {}B", message.len()),
        RelayFrame::HostProof { message } => format!("HOST_PROOF {}B", message.len()),
        RelayFrame::Ready => "READY".to_owned(),
        RelayFrame::Open {
            session, handshake, ..
        } => format!("OPEN session={session} handshake={}B", handshake.len()),
        RelayFrame::Incoming { session, handshake } => {
            format!("INCOMING session={session} handshake={}B", handshake.len())
        }
        RelayFrame::Data { session, payload } => {
            format!("DATA session={session} payload={}B", payload.len())
        }
        RelayFrame::Close { session, code: c } => format!("CLOSE session={session} {}", code(*c)),
        RelayFrame::Ping { value } => format!("PING {value}"),
        RelayFrame::Pong { value } => format!("PONG {value}"),
        RelayFrame::GoAway { code: c, reason } => format!("GOAWAY {} {reason:?}", code(*c)),
    }
}
