//! [`StoreError`].

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong with a durable file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory could not be created, written, synced, renamed or locked.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done: `"writing"`, `"renaming"`, `"syncing"`, `"opening"`,
        /// `"locking"`, `"creating"`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The operating system's random number generator failed (naming a temporary file).
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

impl StoreError {
    pub(crate) fn io<'a>(
        what: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}
