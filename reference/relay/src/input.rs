//! What the connections and the control handle tell the actor, and the ends of a link's
//! writer the actor holds.
//!
//! Below both senders (`conn`, `control`) and the actor (`actor`), so that none of them
//! refers to another for the messages they exchange.

use std::collections::BTreeMap;
use std::time::Duration;

use tether_proto::link::router::{LinkId, WorkspaceConfig};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Bytes;

use crate::change::WorkspaceChange;

/// What a connection tells the actor.
pub(crate) enum Input {
    /// The WebSocket is up; the actor answers with the link's id.
    Opened {
        writer: LinkWriter,
        reply: oneshot::Sender<LinkId>,
    },
    /// A binary message: one relay frame (`LINK-1`).
    Frame(LinkId, Bytes),
    /// A text message (`LINK-1`).
    Text(LinkId),
    /// A message larger than the frame limit was refused before being buffered (`LINK-5`).
    Oversize(LinkId),
    /// The connection is gone.
    Closed(LinkId),
    /// TLS or the WebSocket upgrade failed or timed out.
    HandshakeFailed,
    /// The operator reconfigures the workspaces (`LINK-37`); the actor answers with what
    /// changed.
    Reconfigure {
        update: Update,
        reply: oneshot::Sender<Vec<WorkspaceChange>>,
    },
}

/// The actor's ends of a link's writer.
pub(crate) struct LinkWriter {
    /// Frames to send, bounded: the actor fills it only when it has room.
    pub(crate) frames: mpsc::Sender<Vec<u8>>,
    /// The link's last words; once sent, the writer closes the WebSocket.
    pub(crate) finish: oneshot::Sender<Finish>,
}

/// How a link ends.
pub(crate) struct Finish {
    /// Frames to send after those already handed over (the last is the `GOAWAY`).
    pub(crate) frames: Vec<Vec<u8>>,
    /// Drop what is still queued instead of sending it (after the client's `GOAWAY`,
    /// nothing more may be sent, `LINK-27`).
    pub(crate) discard_queued: bool,
    /// Bound on flushing and closing.
    pub(crate) timeout: Duration,
}

/// What the actor is asked to apply.
pub(crate) enum Update {
    /// Set (`Some`) or remove (`None`) one workspace.
    One(String, Option<WorkspaceConfig>),
    /// Make the set of workspaces exactly this one: add, change and remove what differs.
    Replace(BTreeMap<String, WorkspaceConfig>),
}
