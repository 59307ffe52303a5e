//! Sharing the directory with other processes: the exclusive lock every read-modify-write
//! of `host.json` holds, and what tells a snapshot of `host.json` that the file changed.

use std::path::Path;
use std::time::{Duration, Instant};

use tether_store::FileLock;

use super::error::StateError;
use super::model::HostState;

/// The exclusive lock on `DIR/lock`, released on drop.
#[derive(Debug)]
pub struct StateLock {
    _lock: FileLock,
}

impl StateLock {
    /// Takes the exclusive lock on `path` (created with mode 0600), waiting for another
    /// holder.
    pub(super) fn take(path: &Path) -> Result<Self, StateError> {
        Ok(Self {
            _lock: FileLock::take(path)?,
        })
    }
}

/// What identifies one version of `host.json` on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FileStamp {
    Absent,
    Present {
        dev: u64,
        ino: u64,
        size: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
}

/// How long after its last modification a read of `host.json` is still trusted only for
/// the call that made it (see [`StateDir::read_fresh`](super::StateDir::read_fresh)):
/// well above the tick of file times.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// How long a snapshot of a recently modified `host.json` is trusted (see
/// [`StateDir::read_fresh`](super::StateDir::read_fresh)).
pub const RACY_RECHECK: Duration = Duration::from_millis(100);

/// The last `host.json` read by [`StateDir::read_fresh`](super::StateDir::read_fresh),
/// with what identifies it.
#[derive(Debug, Default)]
pub struct StateSnapshot {
    pub(super) stamp: Option<FileStamp>,
    /// When a snapshot of a file modified within [`RACY_WINDOW`] of its read (or just
    /// written) must be read again; `None` when the stamp alone decides.
    pub(super) recheck_at: Option<Instant>,
    pub(super) state: HostState,
}
