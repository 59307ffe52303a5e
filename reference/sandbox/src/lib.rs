//! `tether-sandbox`: the kernel sandbox a Tether host runs commands in (`spec/05`,
//! "Sandbox", `CMD-44` … `CMD-47`).
//!
//! A sandbox is applied by the process that is about to become the command: it restricts
//! itself with [`restrict_self`] and then `exec`s the program, so the command and every
//! child it starts inherit the rules. The reference host does this through the hidden
//! `tether sandbox-exec` subcommand, which keeps `unsafe` (a `pre_exec` hook) out of the
//! code base. Nothing here inspects command text: the kernel enforces the rules.
//!
//! On Linux:
//!
//! | mode | file system (Landlock) | network (seccomp) |
//! |---|---|---|
//! | `read-only` | read and execute anywhere; write nowhere but `/dev/null` | no IP sockets |
//! | `workspace-write` | as `read-only`, plus every right under the writable roots (the thread's project root and the temporary directory) | no IP sockets |
//! | `danger-full-access` | unrestricted | unrestricted |
//!
//! Network denial is a seccomp filter that fails `socket(2)` for `AF_INET` and `AF_INET6`
//! (TCP, UDP and raw alike) and `io_uring_setup(2)` (whose socket operations would bypass
//! it) with `EACCES`; Unix-domain sockets stay available. Landlock's own network rules
//! cover TCP only before ABI 10, so they alone could not make the report truthful.
//!
//! What is enforced is measured, not assumed: [`restrict_self`] returns the
//! [`Enforcement`] the kernel confirmed, and a host reports exactly that (`CMD-45`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tether_proto::cmd::types::{NetworkAccess, SandboxMode};

#[cfg(target_os = "linux")]
mod linux;

/// What a sandbox must enforce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// The mode.
    pub mode: SandboxMode,
    /// Directories under which `workspace-write` allows writing (ignored by other modes).
    pub writable_roots: Vec<PathBuf>,
}

/// What the kernel confirmed it enforces for a [`Policy`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enforcement {
    /// The mode asked for.
    pub requested: SandboxMode,
    /// Whether the file-system rules of the mode are fully enforced.
    pub filesystem: bool,
    /// Network access in force.
    pub network: NetworkAccess,
    /// The Landlock ABI the kernel offers (0 when Landlock is unavailable).
    pub landlock_abi: u8,
    /// What enforces it: `"landlock+seccomp"`, or `"none"`.
    pub mechanism: String,
}

impl Enforcement {
    /// Whether everything the mode asks for is enforced (`CMD-46`).
    pub fn is_complete(&self) -> bool {
        match self.requested {
            SandboxMode::DangerFullAccess => true,
            SandboxMode::ReadOnly | SandboxMode::WorkspaceWrite => {
                self.filesystem && self.network == NetworkAccess::Denied
            }
        }
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
    /// A writable root does not exist or cannot be opened.
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
/// command write under it.
pub fn project_root(cwd: &std::path::Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join(".git").symlink_metadata().is_ok())
        .unwrap_or(cwd)
        .to_path_buf()
}

/// Restricts the calling thread — and every process it `exec`s or forks afterwards — to
/// `policy`, and returns what the kernel confirmed.
///
/// Call it in a single-threaded process just before `exec` (other threads are not
/// restricted). It cannot be undone.
///
/// # Errors
/// [`SandboxError`] when a root cannot be opened or the kernel refuses a rule that it
/// reported it supports. A kernel without Landlock or seccomp is not an error: the
/// returned [`Enforcement`] says what is missing.
pub fn restrict_self(policy: &Policy) -> Result<Enforcement, SandboxError> {
    if policy.mode == SandboxMode::DangerFullAccess {
        return Ok(Enforcement {
            requested: policy.mode,
            filesystem: true,
            network: NetworkAccess::Allowed,
            landlock_abi: 0,
            mechanism: "none".into(),
        });
    }
    imp::restrict_self(policy)
}

#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(crate) fn restrict_self(policy: &Policy) -> Result<Enforcement, SandboxError> {
        Ok(Enforcement {
            requested: policy.mode,
            filesystem: false,
            network: NetworkAccess::Unenforced,
            landlock_abi: 0,
            mechanism: "none".into(),
        })
    }
}
