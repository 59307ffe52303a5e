//! What a sandbox must enforce ([`Policy`]), what its layers confirmed they enforce
//! ([`Enforcement`]), and why one could not be set up ([`SandboxError`]).
//!
//! Below the layers that use them (`linux`, `view`) and the crate root, which calls into
//! those layers; it refers to none of them.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tether_proto::cmd::types::{NetworkAccess, SandboxMode};

/// At most this many processes run at once in one sandboxed command (`CMD-69`).
pub const MAX_PROCESSES: u32 = 1024;

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
