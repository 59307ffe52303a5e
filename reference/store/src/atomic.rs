//! Atomic replace: temporary file, fsync, rename, fsync of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::fault;

/// A new file content written to a temporary file and fsynced, not yet in place.
/// [`Staged::commit`] renames it over the target; dropping it without committing (a
/// failure before the rename) removes the temporary file and leaves the target as it was.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    committed: bool,
}

/// Writes `bytes` to a new temporary file next to `target` (`.NAME.RANDOM.tmp`, created
/// with `mode`) and fsyncs it.
///
/// # Errors
/// [`StoreError::Io`] naming the temporary file; [`StoreError::Random`] if no random
/// name could be drawn.
pub fn stage(target: &Path, bytes: &[u8], mode: u32) -> Result<Staged, StoreError> {
    let dir = target
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(StoreError::Random)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(StoreError::io("creating", &tmp))?;
    let staged = Staged {
        tmp,
        target: target.to_owned(),
        dir,
        committed: false,
    };
    fault::crash_at(fault::BEFORE_TEMP_WRITE, target);
    if fault::hit(fault::MID_TEMP_WRITE, target) {
        // A torn temporary file: half the bytes, then the crash.
        let _ = file.write_all(bytes.get(..bytes.len() / 2).unwrap_or_default());
        let _ = file.sync_all();
        fault::crash(fault::MID_TEMP_WRITE, target);
    }
    if fault::hit(fault::ENOSPC, target) {
        // The file system is full: the write fails as the kernel would fail it.
        return Err(StoreError::Io {
            what: "writing",
            path: staged.tmp.clone(),
            source: io::Error::from(rustix::io::Errno::NOSPC),
        });
    }
    file.write_all(bytes)
        .map_err(StoreError::io("writing", &staged.tmp))?;
    fault::crash_at(fault::AFTER_TEMP_WRITE, target);
    file.sync_all()
        .map_err(StoreError::io("syncing", &staged.tmp))?;
    fault::crash_at(fault::AFTER_FSYNC, target);
    Ok(staged)
}

impl Staged {
    /// The temporary file.
    pub fn temporary(&self) -> &Path {
        &self.tmp
    }

    /// Renames the temporary file over the target and fsyncs the directory.
    ///
    /// # Errors
    /// [`StoreError::Io`] naming the target (rename) or the directory (fsync).
    pub fn commit(mut self) -> Result<(), StoreError> {
        fs::rename(&self.tmp, &self.target).map_err(StoreError::io("renaming", &self.target))?;
        self.committed = true;
        fault::crash_at(fault::AFTER_RENAME, &self.target);
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::io("syncing", &self.dir))?;
        fault::crash_at(fault::AFTER_DIR_FSYNC, &self.target);
        Ok(())
    }

    /// Leaves the temporary file behind as a crash would (tests).
    #[doc(hidden)]
    pub fn abandon_for_testing(mut self) {
        self.committed = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Atomic replace of `target` with `bytes`: a temporary file in the same directory
/// (created with `mode`), fsync, rename over `target`, fsync of the directory. A crash at
/// any point leaves either the old or the new file; a failure before the rename removes
/// the temporary file and leaves the old one.
///
/// # Errors
/// As [`stage`] and [`Staged::commit`].
pub fn write_atomic(target: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    stage(target, bytes, mode)?.commit()
}
