//! `pids` and `memory` cgroups for one sandboxed command (`CMD-69`), where the host may
//! create them.
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
pub struct LimitCgroup {
    dir: PathBuf,
    max: u64,
}

/// The `pids` cgroup of [`LimitCgroup::pids`] (the name the launcher used first).
pub type PidsCgroup = LimitCgroup;

impl LimitCgroup {
    /// Creates a cgroup limited to `max` processes and moves the calling process into it
    /// (`CMD-69`). `None` when no `pids` hierarchy is writable here.
    pub fn enter(max: u32) -> Option<Self> {
        Self::pids(max)
    }

    /// As [`LimitCgroup::enter`].
    pub fn pids(max: u32) -> Option<Self> {
        Self::create("pids", "pids.max", "pids.max", u64::from(max))
    }

    /// Creates a cgroup whose memory (resident and page cache, swap aside) is limited to
    /// `bytes`, rounded down to whole MiB, and moves the calling process into it; the
    /// kernel's OOM killer then acts inside the command only (`CMD-69`). `None` when no
    /// `memory` hierarchy is writable here.
    pub fn memory(bytes: u64) -> Option<Self> {
        let bytes = bytes / (1 << 20) * (1 << 20);
        Self::create("memory", "memory.limit_in_bytes", "memory.max", bytes)
    }

    fn create(controller: &str, v1_file: &str, v2_file: &str, value: u64) -> Option<Self> {
        if value == 0 {
            return None;
        }
        let (parent, file) = Self::parent(controller, v1_file, v2_file)?;
        std::fs::create_dir_all(&parent).ok()?;
        sweep(&parent);
        let me = std::process::id();
        let dir = parent.join(me.to_string());
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).ok()?;
        let set = std::fs::write(dir.join(&file), value.to_string())
            .and_then(|()| std::fs::write(dir.join("cgroup.procs"), me.to_string()));
        // Measured, not assumed: read the limit back.
        let read = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        if set.is_err() || read.trim() != value.to_string() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self { dir, max: value })
    }

    /// The bound in force.
    pub fn max(&self) -> u32 {
        u32::try_from(self.max).unwrap_or(u32::MAX)
    }

    /// The bound in force, as set.
    pub fn limit(&self) -> u64 {
        self.max
    }

    /// Where to create the command's cgroup, and the file that holds the limit.
    fn parent(controller: &str, v1_file: &str, v2_file: &str) -> Option<(PathBuf, String)> {
        let v1 = Path::new("/sys/fs/cgroup").join(controller);
        if v1.join("cgroup.procs").exists() {
            return Some((v1.join("tether-sandbox"), v1_file.to_owned()));
        }
        // cgroup v2: our own cgroup, when it delegates the controller to children. (A
        // process cannot stay in a cgroup whose children have controllers, so only a
        // launcher already in a leaf it may split can use this; otherwise `create` fails.)
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
        let delegated = std::fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
        delegated
            .split_whitespace()
            .any(|c| c == controller)
            .then(|| (dir.join("tether-sandbox"), v2_file.to_owned()))
    }
}

impl Drop for LimitCgroup {
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
