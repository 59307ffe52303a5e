//! The data types that methods carry: threads, turns, items, sandbox modes and reports,
//! hand-off bundles (`spec/05-command-protocol.md`, "Types").
//!
//! Member names are camelCase on the wire. Decoders ignore members they do not know
//! (`CMD-13`), so later versions can add optional members.

use serde::{Deserialize, Deserializer, Serialize};

use super::error::CommandError;

/// Deserializes a member that MUST be present but may be `null`: unlike a plain
/// `Option`, a missing member is an error.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// What a command may touch (`CMD-44`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Read anything, write nothing, no network.
    ReadOnly,
    /// Read anything, write inside the thread's project root and the temporary
    /// directory, no network.
    WorkspaceWrite,
    /// No sandbox.
    DangerFullAccess,
}

impl SandboxMode {
    /// Every mode, strictest first.
    pub const ALL: [Self; 3] = [Self::ReadOnly, Self::WorkspaceWrite, Self::DangerFullAccess];

    /// The wire name (`"read-only"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::WorkspaceWrite => "workspace-write",
            Self::DangerFullAccess => "danger-full-access",
        }
    }
}

/// When the host asks a controller before running a command the agent proposes (`CMD-27`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    /// Ask before every command not on the host's trusted list.
    Untrusted,
    /// Run in the sandbox without asking; ask before re-running a failed command
    /// without the sandbox.
    OnFailure,
    /// Run in the sandbox without asking; ask when the agent asks to leave the sandbox.
    OnRequest,
    /// Never ask.
    Never,
}

impl ApprovalPolicy {
    /// The wire name (`"on-request"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::OnFailure => "on-failure",
            Self::OnRequest => "on-request",
            Self::Never => "never",
        }
    }
}

/// Whether network access is blocked for a command (`CMD-45`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetworkAccess {
    /// Blocked by an enforced mechanism.
    Denied,
    /// Allowed (`danger-full-access`).
    Allowed,
    /// The mode forbids it but nothing enforces that.
    Unenforced,
}

/// What a host actually enforces for a thread or command (`CMD-45`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxReport {
    /// The mode asked for (or the default that applied).
    pub requested: SandboxMode,
    /// The mode in force.
    pub enforced: SandboxMode,
    /// Network access in force.
    pub network: NetworkAccess,
    /// True when less is enforced than requested (`CMD-46`).
    pub degraded: bool,
    /// What enforces it, for example `"landlock"`, or `"none"`.
    pub mechanism: String,
}

/// Whether a thread has a running turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ThreadStatus {
    /// No turn is running.
    Idle,
    /// A turn is running.
    Active,
}

/// A thread: one conversation with the agent in one working directory (`CMD-17`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    /// Host-chosen id, unique on the host.
    pub id: String,
    /// The working directory, an absolute path in the host's native form.
    pub cwd: String,
    /// The thread's sandbox mode.
    pub sandbox: SandboxMode,
    /// The thread's approval policy.
    pub approval_policy: ApprovalPolicy,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Time of the last change, Unix seconds.
    pub updated_at: u64,
    /// Whether a turn runs.
    pub status: ThreadStatus,
    /// The start of the first user message, for lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

/// The state of a turn (`CMD-24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnStatus {
    /// Running.
    InProgress,
    /// Finished normally.
    Completed,
    /// Stopped by `turn/interrupt` or a `cancel` decision.
    Interrupted,
    /// Stopped by an error.
    Failed,
}

/// A turn: one user input and everything the agent did in answer (`CMD-22`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Turn {
    /// Host-chosen id, unique in the thread.
    pub id: String,
    /// Its state.
    pub status: TurnStatus,
    /// Its items, in order. Empty in `turn/start` results and `turn/started`.
    pub items: Vec<ThreadItem>,
}

/// One piece of user input to `turn/start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserInput {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
}

/// One item of a turn (`CMD-24`), tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ThreadItem {
    /// What the user sent.
    UserMessage(UserMessageItem),
    /// What the agent answered.
    AgentMessage(AgentMessageItem),
    /// A command the agent ran or proposed.
    CommandExecution(CommandExecutionItem),
}

impl ThreadItem {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            Self::UserMessage(i) => &i.id,
            Self::AgentMessage(i) => &i.id,
            Self::CommandExecution(i) => &i.id,
        }
    }
}

/// `{"type":"userMessage"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMessageItem {
    /// Item id, unique in the thread.
    pub id: String,
    /// The text.
    pub text: String,
}

/// `{"type":"agentMessage"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessageItem {
    /// Item id, unique in the thread.
    pub id: String,
    /// The text.
    pub text: String,
}

/// The state of a command execution item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandExecutionStatus {
    /// Waiting for approval or running.
    InProgress,
    /// Ran and exited with status 0.
    Completed,
    /// Ran and failed: non-zero exit, signal, time limit, or sandbox refusal.
    Failed,
    /// Not run: the approval was declined or cancelled.
    Declined,
}

/// `{"type":"commandExecution"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecutionItem {
    /// Item id, unique in the thread.
    pub id: String,
    /// The command line, run as `sh -c <command>` (or the host's native shell).
    pub command: String,
    /// Its working directory, in the host's native form.
    pub cwd: String,
    /// Its state.
    pub status: CommandExecutionStatus,
    /// Exit status, once it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Its output (stdout and stderr in arrival order, lossy UTF-8), once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregated_output: Option<String>,
    /// Run time in milliseconds, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A controller's answer to an approval request (`CMD-29`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalDecision {
    /// Run the command once.
    Accept,
    /// Run it, and run the same command in the same directory of this thread without
    /// asking again while the host runs.
    AcceptForSession,
    /// Do not run it; the turn goes on.
    Decline,
    /// Do not run it; the turn is interrupted.
    Cancel,
}

/// Path conventions of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PathStyle {
    /// `/`-separated, rooted at `/`.
    Posix,
    /// `\`-separated, with drive letters.
    Windows,
}

/// The host's platform, from `initialize`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// Operating system, as Rust's `std::env::consts::OS` names it (`"linux"`).
    pub os: String,
    /// CPU architecture, as `std::env::consts::ARCH` names it (`"x86_64"`).
    pub arch: String,
    /// Path conventions.
    pub path_style: PathStyle,
}

/// What sandboxing a host offers, from `initialize` (`CMD-45`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSupport {
    /// The modes the host can enforce fully.
    pub modes: Vec<SandboxMode>,
    /// What enforces them (`"landlock"`, `"none"`).
    pub mechanism: String,
    /// Whether the host runs a mode it cannot enforce with less protection instead of
    /// refusing it (`CMD-46`).
    pub degrade: bool,
}

/// Name and version of a client or server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Implementation {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// The only version of a hand-off bundle (`CMD-53`).
pub const BUNDLE_VERSION: u32 = 1;

/// A thread packed for hand-off to another host (`CMD-52`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadBundle {
    /// Always 1.
    pub version: u32,
    /// What the thread is for, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// The thread's cwd relative to its project root: `.` or `/`-separated names.
    pub cwd_relative: String,
    /// The thread's sandbox mode.
    pub sandbox: SandboxMode,
    /// The thread's approval policy.
    pub approval_policy: ApprovalPolicy,
    /// Every item of every turn, in order.
    pub items: Vec<ThreadItem>,
    /// Export time, Unix seconds.
    pub exported_at: u64,
}

impl ThreadBundle {
    /// Checks the rules an importing host applies (`CMD-53`): version 1 and a portable
    /// relative `cwdRelative`.
    ///
    /// # Errors
    /// [`CommandError::InvalidBundle`] naming the rule broken.
    pub fn validate(&self) -> Result<(), CommandError> {
        if self.version != BUNDLE_VERSION {
            return Err(CommandError::InvalidBundle {
                detail: format!("unsupported bundle version {}", self.version),
            });
        }
        check_cwd_relative(&self.cwd_relative)
    }
}

/// `CMD-53`: `.` or one or more `/`-separated names; no empty name, no `.` or `..`, no
/// `\`, `:` or NUL, so the path can neither climb out of the project root nor be
/// absolute on any platform.
pub fn check_cwd_relative(path: &str) -> Result<(), CommandError> {
    if path == "." {
        return Ok(());
    }
    let bad = |why: &str| {
        Err(CommandError::InvalidBundle {
            detail: format!("cwdRelative {path:?} {why}"),
        })
    };
    if path.is_empty() {
        return bad("is empty");
    }
    if path.starts_with('/') {
        return bad("is absolute");
    }
    if path.contains(['\\', ':', '\0']) {
        return bad("contains '\\', ':' or NUL");
    }
    for name in path.split('/') {
        match name {
            "" => return bad("has an empty component"),
            "." | ".." => return bad("has a '.' or '..' component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_53_cwd_relative() {
        for ok in [".", "a", "a/b", "src/lib", "a.b/c-d", "..a/b.."] {
            assert_eq!(check_cwd_relative(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "/", "/a", "a/../b", "..", "a/..", "./a", "a//b", "a/", "C:", "c:\\x", "a\\b",
            "a\0",
        ] {
            assert!(
                matches!(
                    check_cwd_relative(bad),
                    Err(CommandError::InvalidBundle { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn enums_use_wire_names() {
        let v =
            serde_json::to_value([SandboxMode::ReadOnly, SandboxMode::DangerFullAccess]).unwrap();
        assert_eq!(v, serde_json::json!(["read-only", "danger-full-access"]));
        let v = serde_json::to_value(ApprovalPolicy::OnFailure).unwrap();
        assert_eq!(v, "on-failure");
        let v = serde_json::to_value(ApprovalDecision::AcceptForSession).unwrap();
        assert_eq!(v, "acceptForSession");
        let v = serde_json::to_value(TurnStatus::InProgress).unwrap();
        assert_eq!(v, "inProgress");
        for m in SandboxMode::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }
}

/// Codex's `SandboxPolicy`: what a command may touch, in the form of Codex app-server v2
/// (`command/exec` `sandboxPolicy`, 5.6). Tags are camelCase; members a sender leaves out
/// take Codex's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SandboxPolicy {
    /// No restriction: `danger-full-access`.
    DangerFullAccess,
    /// Read anything, write nothing: `read-only`.
    #[serde(rename_all = "camelCase")]
    ReadOnly {
        /// Whether the network is reachable (Codex's default `false`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_access: Option<bool>,
    },
    /// A sandbox outside the agent (Codex); a Tether host refuses it.
    #[serde(rename_all = "camelCase")]
    ExternalSandbox {
        /// `"restricted"` or `"enabled"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_access: Option<String>,
    },
    /// Write the workspace: `workspace-write`.
    #[serde(rename_all = "camelCase")]
    WorkspaceWrite {
        /// Directories writable besides the workspace (absolute).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        writable_roots: Option<Vec<String>>,
        /// Whether the network is reachable (Codex's default `false`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_access: Option<bool>,
        /// Whether `$TMPDIR` is left out of the writable roots.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exclude_tmpdir_env_var: Option<bool>,
        /// Whether `/tmp` is left out of the writable roots.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exclude_slash_tmp: Option<bool>,
    },
}

impl SandboxPolicy {
    /// The policy a Tether sender names for `mode`, with every optional member left out.
    pub fn for_mode(mode: SandboxMode) -> Self {
        match mode {
            SandboxMode::ReadOnly => Self::ReadOnly {
                network_access: None,
            },
            SandboxMode::WorkspaceWrite => Self::WorkspaceWrite {
                writable_roots: None,
                network_access: None,
                exclude_tmpdir_env_var: None,
                exclude_slash_tmp: None,
            },
            SandboxMode::DangerFullAccess => Self::DangerFullAccess,
        }
    }

    /// The mode a Tether host runs a `command/exec` with this policy under (5.6): an
    /// external sandbox, a read-only or workspace-write policy with network access, and a
    /// workspace-write policy naming writable roots are not Tether modes (the host decides
    /// the roots, `CMD-48`); for them, a description of what is refused.
    ///
    /// # Errors
    /// That description.
    pub fn mode(&self) -> Result<SandboxMode, &'static str> {
        match self {
            Self::DangerFullAccess => Ok(SandboxMode::DangerFullAccess),
            Self::ReadOnly {
                network_access: Some(true),
            }
            | Self::WorkspaceWrite {
                network_access: Some(true),
                ..
            } => Err(
                "sandboxPolicy with networkAccess true is not offered (the network is denied under read-only and workspace-write)",
            ),
            Self::ReadOnly { .. } => Ok(SandboxMode::ReadOnly),
            Self::WorkspaceWrite {
                writable_roots: Some(roots),
                ..
            } if !roots.is_empty() => Err(
                "sandboxPolicy writableRoots must be empty (the host decides the writable roots)",
            ),
            Self::WorkspaceWrite { .. } => Ok(SandboxMode::WorkspaceWrite),
            Self::ExternalSandbox { .. } => Err("sandboxPolicy externalSandbox is not offered"),
        }
    }
}
