//! Scratch directories for tests. A [`TempDir`] is `BASE/LABEL` in a fresh `BASE`, removed
//! with `BASE` on drop, so that a host state directory made there has room beside it for
//! the host's own temporary directory ([`beside`], `SEC-22`).
//!
//! A sandboxed command does not see the system temporary directory: the sandbox gives it
//! a private `/tmp`. Files such a command must see go under [`outside_tmp`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory `BASE/LABEL`, removed with its `BASE` on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh `BASE/LABEL` in the system temporary directory.
    pub fn new(label: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), label)
    }

    /// A fresh `BASE/LABEL` in `root` (created if missing).
    pub fn new_in(root: &Path, label: &str) -> Self {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let base = root.join(format!("tether-test-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let p = base.join(label);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        Self(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `self/name`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(base) = self.0.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

/// `DIR-SUFFIX` beside `dir` (never inside it or around it), created: a host's temporary
/// directory beside its state directory (`SEC-22`), or a credential file's directory.
pub fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let p = dir.with_file_name(format!("{name}-{suffix}"));
    std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
    p
}

/// A directory for files a sandboxed command must see: outside the system temporary
/// directory, which the sandbox replaces with a private one. `target_tmpdir` (a test's
/// `env!("CARGO_TARGET_TMPDIR")`), unless it lies under `/tmp` (a checkout under `/tmp`);
/// then `/var/tmp`.
pub fn outside_tmp(target_tmpdir: &str) -> PathBuf {
    let target =
        std::fs::canonicalize(target_tmpdir).unwrap_or_else(|_| PathBuf::from(target_tmpdir));
    if target.starts_with("/tmp") {
        PathBuf::from("/var/tmp")
    } else {
        target
    }
}

/// Writes `text` to `path` with mode 0600 (a credential file, `SEC-23`).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
