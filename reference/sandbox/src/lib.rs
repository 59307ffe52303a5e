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

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_proto::cmd::types::{NetworkAccess, SandboxMode};

pub mod view;

#[cfg(target_os = "linux")]
pub mod cgroup;
#[cfg(target_os = "linux")]
mod linux;

/// At most this many processes run at once in one sandboxed command (`CMD-69`).
pub const MAX_PROCESSES: u32 = 1024;

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

/// What a sandbox must enforce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// The mode.
    pub mode: SandboxMode,
    /// Directories under which `workspace-write` allows writing (ignored by other modes).
    pub writable_roots: Vec<PathBuf>,
    /// Paths that must not exist in the command's view (the host's state directory,
    /// credential file, `CMD-63`).
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
}

/// What the layers confirmed they enforce for a [`Policy`], as measured from inside the
/// sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enforcement {
    /// The mode asked for.
    pub requested: SandboxMode,
    /// Whether the file-system rules of the mode are fully enforced (Landlock).
    pub filesystem: bool,
    /// Network access in force.
    pub network: NetworkAccess,
    /// The Landlock ABI the kernel offers (0 when Landlock is unavailable).
    pub landlock_abi: u8,
    /// Fresh user, mount, PID, IPC, UTS and network namespaces, and the built view with
    /// every hidden path absent (`CMD-62`, `CMD-63`).
    #[serde(default)]
    pub namespaces: bool,
    /// No capability in any set, `no_new_privs` set (`CMD-66`).
    #[serde(default)]
    pub privileges_dropped: bool,
    /// No controlling terminal (`CMD-65`).
    #[serde(default)]
    pub no_terminal: bool,
    /// The process limit in force and what enforces it (`CMD-69`), if any.
    #[serde(default)]
    pub process_limit: Option<ProcessLimit>,
    /// The memory bound in force, in bytes (a `memory` cgroup), if any: a SHOULD of
    /// `CMD-69`, so not part of [`Enforcement::is_complete`].
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// What enforces it, e.g. `"bubblewrap+landlock+seccomp"`, or `"none"`.
    pub mechanism: String,
    /// Why the mode is not complete, one entry per missing layer (empty when complete).
    #[serde(default)]
    pub missing: Vec<String>,
}

/// A bound on the number of processes of one command (`CMD-69`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessLimit {
    /// The bound.
    pub max: u32,
    /// `"rlimit"` (`RLIMIT_NPROC`, counted in the command's own user namespace) or
    /// `"cgroup"` (a `pids` controller).
    pub by: String,
}

impl Enforcement {
    /// `danger-full-access`: nothing to enforce, the network allowed.
    pub fn full_access() -> Self {
        Self {
            filesystem: true,
            network: NetworkAccess::Allowed,
            ..Self::nothing(SandboxMode::DangerFullAccess)
        }
    }

    /// Nothing enforced for `requested` (yet): every layer false, `missing` not assessed.
    pub fn nothing(requested: SandboxMode) -> Self {
        Self {
            requested,
            filesystem: false,
            network: NetworkAccess::Unenforced,
            landlock_abi: 0,
            namespaces: false,
            privileges_dropped: false,
            no_terminal: false,
            process_limit: None,
            memory_limit: None,
            mechanism: "none".into(),
            missing: Vec::new(),
        }
    }

    /// Whether everything the mode asks for is enforced (`CMD-46`).
    pub fn is_complete(&self) -> bool {
        match self.requested {
            SandboxMode::DangerFullAccess => true,
            SandboxMode::ReadOnly | SandboxMode::WorkspaceWrite => self.missing.is_empty(),
        }
    }

    /// Recomputes [`Enforcement::missing`] from the other fields.
    pub fn assess(&mut self) {
        let mut missing = Vec::new();
        if self.requested != SandboxMode::DangerFullAccess {
            if !self.filesystem {
                missing.push("Landlock file-system rules (ABI 5 or later)".to_owned());
            }
            if self.network != NetworkAccess::Denied {
                missing.push("the seccomp filter".to_owned());
            }
            if !self.namespaces {
                missing
                    .push("fresh namespaces and a built file-system view (bubblewrap)".to_owned());
            }
            if !self.privileges_dropped {
                missing.push("an empty capability set with no_new_privs".to_owned());
            }
            if !self.no_terminal {
                missing.push("a new session without a controlling terminal".to_owned());
            }
            if self.process_limit.is_none() {
                missing.push("a process-count limit".to_owned());
            }
        }
        self.missing = missing;
    }

    /// The mode actually in force: the requested one when complete, otherwise
    /// `danger-full-access` (a partly enforced mode is reported as not enforced, so that
    /// a host never reports more than it enforces, `CMD-46`).
    pub fn enforced_mode(&self) -> SandboxMode {
        if self.is_complete() {
            self.requested
        } else {
            SandboxMode::DangerFullAccess
        }
    }
}

/// Why a sandbox could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum SandboxError {
    /// A writable root does not exist, cannot be opened, or would expose the whole file
    /// system or a hidden path.
    BadRoot {
        /// The path.
        path: PathBuf,
        /// The error.
        detail: String,
    },
    /// The kernel refused the rules.
    Kernel {
        /// What failed.
        detail: String,
    },
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRoot { path, detail } => {
                write!(f, "writable root {}: {detail}", path.display())
            }
            Self::Kernel { detail } => write!(f, "kernel refused the sandbox: {detail}"),
        }
    }
}

impl std::error::Error for SandboxError {}

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
