//! A thread being opened and its instruction files (`CMD-72`): what the manager hands to
//! the blocking pool and gets back as a [`TurnEventKind::Opened`](super::TurnEventKind).

use std::path::PathBuf;

use tether_proto::cmd::Id;
use tether_proto::cmd::methods::ThreadOpened;
use tether_proto::link::SessionId;

use crate::instructions;

/// A thread being opened (`thread/start`, `thread/resume`, `tether/thread/import`) whose
/// instruction files are still to be read (`CMD-72`);
/// [`ThreadManager::open_later`](super::ThreadManager::open_later) finishes it.
#[derive(Debug)]
pub struct Opening {
    pub(super) session: SessionId,
    pub(super) thread_id: String,
    pub(super) cwd: PathBuf,
    /// The session's message limit (`CMD-2`): a `thread/resume` answer carries turns.
    pub(super) max_len: usize,
    /// The answer, without its instruction files.
    pub(super) opened: ThreadOpened,
}

impl Opening {
    /// The answer is fitted to `max_len` bytes, the session's message limit (`CMD-2`).
    #[must_use]
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }
}

/// The instruction files of an [`Opening`] were read, or their time ran out.
#[derive(Debug)]
pub struct OpenDone {
    pub(super) id: Id,
    pub(super) opening: Opening,
    pub(super) found: Option<instructions::Instructions>,
}
