//! `tether-sandbox`: the sandbox a Tether host runs commands in (`spec/05`, section 5.7,
//! `CMD-44` … `CMD-47` and `CMD-62` … `CMD-70`).
//!
//! What it is: the two layers that confine a `read-only` or `workspace-write` command on
//! Linux, and the measurement of what they enforce. What it is not: a policy engine that
//! reads command text, or a sandbox for `danger-full-access` (which has none).
//!
//! **Outer layer: namespaces and a file-system view** ([`view::bwrap_args`], run by
//! bubblewrap). The command gets fresh user, mount, PID, IPC, UTS and network namespaces
//! (and a cgroup namespace where the kernel allows);
//! a view in which the system is mounted read-only (so metadata writes fail too, `CMD-64`),
//! the writable roots read-write with their `.git` read-only (`CMD-70`), a private `/tmp`,
//! a fresh `/dev` and `/proc`; and in which the paths the host hides (its state directory,
//! keys, credential file) do not exist at all (`CMD-63`). It runs in a new session with no
//! controlling terminal (`CMD-65`), with every capability dropped and no way to create
//! user namespaces (`CMD-66`), and it is PID 2 of its own PID namespace, which the kernel
//! empties when the sandbox's init ends: no descendant outlives the command (`CMD-68`).
//!
//! **Inner layer: the process restricts itself** ([`restrict_self`]) just before it
//! starts the program: resource limits (`CMD-69`; the launcher adds `pids` and `memory`
//! cgroups where it may create them, [`cgroup`]), Landlock file-system rules (ABI 5:
//! writes and device ioctls) and, from ABI 6, scopes that keep signals and abstract Unix
//! sockets inside the sandbox, and a seccomp filter that refuses `socket(2)` of every
//! family, `socketpair(2)` but `AF_UNIX`, io_uring, `TIOCSTI`/`TIOCLINUX`, keyrings and
//! namespace, mount, BPF and perf calls (`CMD-65`, `CMD-67`).
//!
//! Why bubblewrap and not namespaces set up here: it is the audited setuid-free tool that
//! Flatpak and Codex build on, it gets the subtle parts right (PID 1 that reaps, locked
//! read-only remounts of every submount, death with its parent, `--disable-userns`), and
//! it keeps `unsafe` (`fork` without `exec`, `pivot_root`) out of this code base. The
//! price is a dependency the host probes for: without it the namespace layer is missing
//! and the host refuses the sandboxed modes (`CMD-46`).
//!
//! What is enforced is measured, not assumed: the probe runs the whole chain and the
//! innermost process reports what it sees ([`Enforcement`]); the host reports exactly that
//! (`CMD-45`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_proto::cmd::types::SandboxMode;

pub mod view;

#[cfg(target_os = "linux")]
pub mod cgroup;
#[cfg(target_os = "linux")]
mod linux;
mod policy;

pub use policy::{Enforcement, MAX_PROCESSES, Policy, ProcessLimit, SandboxError};

/// The memory bound of one sandboxed command when none is configured: half the machine's
/// memory (`CMD-69`), so that one command cannot take the host down with it. `None` when
/// the machine's memory cannot be read.
pub fn default_memory_limit() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024 / 2)
}

/// The project root of a working directory (`CMD-48`): the nearest directory, from `cwd`
/// upwards, holding an entry named `.git`; else `cwd` itself. `workspace-write` lets a
/// thread's commands write under it.
pub fn project_root(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join(".git").symlink_metadata().is_ok())
        .unwrap_or(cwd)
        .to_path_buf()
}

/// Restricts the calling thread — and every process it `exec`s or forks afterwards — with
/// the inner layer: resource limits, Landlock and seccomp. Returns what the kernel
/// confirmed for those; the namespace fields are left for the caller (which knows whether
/// it runs inside the outer layer) to fill.
///
/// Call it in a single-threaded process just before starting the program (other threads
/// are not restricted). It cannot be undone.
///
/// # Errors
/// [`SandboxError`] when a root cannot be opened or the kernel refuses a rule that it
/// reported it supports. A kernel without Landlock or seccomp is not an error: the
/// returned [`Enforcement`] says what is missing.
pub fn restrict_self(policy: &Policy) -> Result<Enforcement, SandboxError> {
    if policy.mode == SandboxMode::DangerFullAccess {
        return Ok(Enforcement::full_access());
    }
    imp::restrict_self(policy)
}

/// What the calling process sees of its own confinement, read from `/proc/self`: the
/// namespaces it is in (`"pid:[4026531836]"` …), its capability sets and `no_new_privs`,
/// and whether it has a controlling terminal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfView {
    /// `readlink /proc/self/ns/{user,mnt,pid,ipc,uts,net}`, in that order.
    pub namespaces: Vec<String>,
    /// Every capability set (`CapInh`, `CapPrm`, `CapEff`, `CapBnd`, `CapAmb`) is empty.
    pub no_capabilities: bool,
    /// `NoNewPrivs: 1`.
    pub no_new_privs: bool,
    /// `/dev/tty` cannot be opened (no controlling terminal).
    pub no_terminal: bool,
}

/// The namespaces [`SelfView::namespaces`] lists.
pub const NAMESPACES: [&str; 6] = ["user", "mnt", "pid", "ipc", "uts", "net"];

impl SelfView {
    /// Reads the calling process's view of itself.
    pub fn read() -> Self {
        let namespaces = NAMESPACES
            .iter()
            .map(|ns| {
                std::fs::read_link(format!("/proc/self/ns/{ns}"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let no_capabilities = ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"]
            .iter()
            .all(|f| field(f).is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b == b'0')));
        let no_new_privs = field("NoNewPrivs:") == Some("1");
        let no_terminal = std::fs::OpenOptions::new()
            .read(true)
            .open("/dev/tty")
            .is_err();
        Self {
            namespaces,
            no_capabilities,
            no_new_privs,
            no_terminal,
        }
    }

    /// Whether every namespace differs from `outer`'s (a fresh one of each kind).
    pub fn all_fresh_from(&self, outer: &[String]) -> bool {
        self.namespaces.len() == NAMESPACES.len()
            && outer.len() == NAMESPACES.len()
            && self
                .namespaces
                .iter()
                .zip(outer)
                .all(|(a, b)| !a.is_empty() && !b.is_empty() && a != b)
    }
}

#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(crate) fn restrict_self(policy: &Policy) -> Result<Enforcement, SandboxError> {
        let mut e = Enforcement::nothing(policy.mode);
        e.assess();
        Ok(e)
    }
}
