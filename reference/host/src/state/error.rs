//! The names of the state directory's files, and what can go wrong with them.

use std::io;
use std::path::{Path, PathBuf};

use tether_proto::token::TokenError;
use tether_store::StoreError;

/// The version of `host.json` this host writes.
pub const STATE_VERSION: u64 = 1;
/// File name of the static key.
pub const KEY_FILE: &str = "host.key";
/// File name of the devices, tokens and settings.
pub const STATE_FILE: &str = "host.json";
/// File name of the run information `tether host pair` reads.
pub const RUN_FILE: &str = "run.json";
/// File name of the lock file.
pub const LOCK_FILE: &str = "lock";

/// What went wrong with the state directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file could not be read, written or locked.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file exists but its content is not what this host writes. It is left as it is.
    #[error("{}: corrupt state file ({detail}); it was left untouched", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// `host.json` names a version newer than this host understands.
    #[error(
        "{}: state file version {version} is not supported (this host reads versions 0 to {STATE_VERSION}); use a newer tether",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it names.
        version: u64,
    },
    /// The directory has no `host.key` yet (`tether host run` creates it).
    #[error("{}: no host key yet; run `tether host run --state {}` first", path.display(), dir.display())]
    NoKey {
        /// The key file.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
    },
    /// The directory has no `run.json` yet.
    #[error("{}: not found; run `tether host run --state {}` first so that pairing tokens name its relay and workspace", path.display(), dir.display())]
    NotRunYet {
        /// The run file.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
    },
    /// No device matches the name or fingerprint prefix given.
    #[error("no paired device matches {query:?}")]
    NoSuchDevice {
        /// What was asked for.
        query: String,
    },
    /// More than one device matches.
    #[error("{query:?} matches several devices: {matches}; give more of the fingerprint")]
    AmbiguousDevice {
        /// What was asked for.
        query: String,
        /// The matching devices, `name (fingerprint)`, comma-separated.
        matches: String,
    },
    /// A pairing token could not be minted (`TOKEN-7`, `TOKEN-8`, `TOKEN-9`).
    #[error("cannot mint a pairing token: {0}")]
    Token(TokenError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// The directory can be changed by other accounts, or belongs to one (`SEC-22`): what
    /// is in it cannot be trusted, so it is not used.
    #[error("{}: {detail}; the host's state directory must be its owner's alone (SEC-22)", path.display())]
    Insecure {
        /// The state directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// The directory lies inside, or contains, a directory that sandboxed commands may
    /// write (`SEC-22`).
    #[error(
        "{}: the state directory overlaps {role} {}, which sandboxed commands may write; choose a state directory outside it (SEC-22)",
        path.display(),
        root.display()
    )]
    Exposed {
        /// The state directory.
        path: PathBuf,
        /// The writable directory.
        root: PathBuf,
        /// What that directory is ("the commands' temporary directory").
        role: String,
    },
}

impl From<StoreError> for StateError {
    /// A failed atomic write or lock: the file and the operating system's error.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { path, source, .. } => Self::Io { path, source },
            StoreError::Random(e) => Self::Random(e.to_string()),
            other => Self::Io {
                path: PathBuf::new(),
                source: io::Error::other(other),
            },
        }
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Errors
/// [`StateError::Random`].
pub fn random_bytes<const N: usize>() -> Result<[u8; N], StateError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| StateError::Random(e.to_string()))?;
    Ok(buf)
}
