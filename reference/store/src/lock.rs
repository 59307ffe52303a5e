//! The lock file and the owner-only directory.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::StoreError;

/// An exclusive lock (`flock(2)`) on a lock file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the exclusive lock on `path`, waiting for another holder; the file is
    /// created (mode 0600) if it does not exist, and never truncated.
    ///
    /// # Errors
    /// [`StoreError::Io`]: `"opening"` or `"locking"` the file.
    pub fn take(path: &Path) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(StoreError::io("opening", path))?;
        fs4::FileExt::lock(&file).map_err(StoreError::io("locking", path))?;
        Ok(Self { _file: file })
    }
}

/// Creates `dir` and its missing parents with mode 0700 (`SEC-1`); an existing directory
/// is left as it is.
///
/// # Errors
/// [`StoreError::Io`] (`"creating"`).
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(StoreError::io("creating", dir))
}
