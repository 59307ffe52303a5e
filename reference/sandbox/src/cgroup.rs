//! A `pids` cgroup for one sandboxed command (`CMD-69`), where the host may create one.
//!
//! `RLIMIT_NPROC` bounds the processes of a command counted in its own user namespace, but
//! the kernel exempts user id 0 of the initial namespace: a host running as root needs a
//! cgroup instead. The launcher creates `tether-sandbox/<pid>` under the `pids` hierarchy
//! (cgroup v1 `/sys/fs/cgroup/pids`, or the launcher's own cgroup v2 directory when the
//! `pids` controller is delegated to its children), sets `pids.max`, and moves itself in
//! before it starts the sandbox; its children inherit it. Empty leftovers of launchers
//! that were killed are removed the next time (only those of launchers no longer alive,
//! and `rmdir` refuses a cgroup that still has processes).

use std::path::{Path, PathBuf};

/// A cgroup this process moved into; removed on drop (after the command ended).
#[derive(Debug)]
pub struct PidsCgroup {
    dir: PathBuf,
    max: u32,
}

impl PidsCgroup {
    /// Creates a cgroup limited to `max` processes and moves the calling process into it.
    /// `None` when no `pids` hierarchy is writable here.
    pub fn enter(max: u32) -> Option<Self> {
        let parent = Self::parent()?;
        std::fs::create_dir_all(&parent).ok()?;
        sweep(&parent);
        let me = std::process::id();
        let dir = parent.join(me.to_string());
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).ok()?;
        let set = std::fs::write(dir.join("pids.max"), max.to_string())
            .and_then(|()| std::fs::write(dir.join("cgroup.procs"), me.to_string()));
        // Measured, not assumed: read the limit back.
        let read = std::fs::read_to_string(dir.join("pids.max")).unwrap_or_default();
        if set.is_err() || read.trim() != max.to_string() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self { dir, max })
    }

    /// The bound in force.
    pub fn max(&self) -> u32 {
        self.max
    }

    fn parent() -> Option<PathBuf> {
        let v1 = Path::new("/sys/fs/cgroup/pids");
        if v1.join("cgroup.procs").exists() {
            return Some(v1.join("tether-sandbox"));
        }
        // cgroup v2: our own cgroup, when it delegates `pids` to children. (A process
        // cannot stay in a cgroup whose children have controllers, so only a launcher
        // already in a leaf it may split can use this; otherwise `enter` fails.)
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
        let delegated = std::fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
        delegated
            .split_whitespace()
            .any(|c| c == "pids")
            .then(|| dir.join("tether-sandbox"))
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Move back out first, or the directory is busy with this very process.
        if let Some(parent) = self.dir.parent().and_then(Path::parent) {
            let _ = std::fs::write(parent.join("cgroup.procs"), std::process::id().to_string());
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Removes the empty cgroups of launchers that were killed before they could.
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten().take(4096) {
        let path = e.path();
        // A launcher that is still alive may be between creating its cgroup and moving
        // into it: only the cgroups of launchers that are gone are removed.
        let alive = e
            .file_name()
            .to_str()
            .is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if alive {
            continue;
        }
        let empty = std::fs::read_to_string(path.join("cgroup.procs"))
            .is_ok_and(|procs| procs.trim().is_empty());
        if empty {
            let _ = std::fs::remove_dir(&path);
        }
    }
}
