//! The data types that methods carry: threads, turns, items, sandbox modes and reports,
//! hand-off bundles (`spec/05-command-protocol.md`, "Types").
//!
//! Member names are camelCase on the wire. Decoders ignore members they do not know
//! (`CMD-13`), so later versions can add optional members.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

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

/// Deserializes a member that a Codex peer may send as `null`: `null` (and, with
/// `#[serde(default)]`, absence) gives the type's default.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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

/// The sandbox policy a thread runs under, in Codex's `SandboxPolicy` form: the
/// `sandbox` member of the `thread/start`, `thread/resume` and `tether/thread/import`
/// results (section 5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SandboxPolicy {
    /// No sandbox.
    #[serde(rename_all = "camelCase")]
    DangerFullAccess {},
    /// Read anything, write nothing.
    #[serde(rename_all = "camelCase")]
    ReadOnly {
        /// Whether network access is allowed (Tether: always `false`).
        #[serde(default, deserialize_with = "null_default")]
        network_access: bool,
    },
    /// Sandboxing done outside the agent (Codex only; a Tether host never sends it).
    #[serde(rename_all = "camelCase")]
    ExternalSandbox {
        /// Codex's `NetworkAccess` (`"restricted"` or `"enabled"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_access: Option<Value>,
    },
    /// Read anything, write inside the writable roots.
    #[serde(rename_all = "camelCase")]
    WorkspaceWrite {
        /// The directories commands may write to, host-native absolute paths.
        #[serde(default, deserialize_with = "null_default")]
        writable_roots: Vec<String>,
        /// Whether network access is allowed (Tether: always `false`).
        #[serde(default, deserialize_with = "null_default")]
        network_access: bool,
        /// Whether `$TMPDIR` is left out of the writable roots.
        #[serde(default, deserialize_with = "null_default")]
        exclude_tmpdir_env_var: bool,
        /// Whether `/tmp` is left out of the writable roots.
        #[serde(default, deserialize_with = "null_default")]
        exclude_slash_tmp: bool,
    },
}

impl SandboxPolicy {
    /// The policy a Tether host reports for the enforced `mode`, with `writable_roots`
    /// for `workspace-write` (section 5.3).
    pub fn from_mode(mode: SandboxMode, writable_roots: Vec<String>) -> Self {
        match mode {
            SandboxMode::ReadOnly => Self::ReadOnly {
                network_access: false,
            },
            SandboxMode::WorkspaceWrite => Self::WorkspaceWrite {
                writable_roots,
                network_access: false,
                exclude_tmpdir_env_var: false,
                exclude_slash_tmp: false,
            },
            SandboxMode::DangerFullAccess => Self::DangerFullAccess {},
        }
    }

    /// The policy a controller names for `mode` in a `command/exec` (5.6): no writable
    /// roots of its own (the host decides them, `CMD-48`), no network.
    pub fn for_mode(mode: SandboxMode) -> Self {
        Self::from_mode(mode, Vec::new())
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
            Self::DangerFullAccess {} => Ok(SandboxMode::DangerFullAccess),
            Self::ReadOnly {
                network_access: true,
            }
            | Self::WorkspaceWrite {
                network_access: true,
                ..
            } => Err(
                "sandboxPolicy with networkAccess true is not offered (the network is denied under read-only and workspace-write)",
            ),
            Self::ReadOnly { .. } => Ok(SandboxMode::ReadOnly),
            Self::WorkspaceWrite { writable_roots, .. } if !writable_roots.is_empty() => Err(
                "sandboxPolicy writableRoots must be empty (the host decides the writable roots)",
            ),
            Self::WorkspaceWrite { .. } => Ok(SandboxMode::WorkspaceWrite),
            Self::ExternalSandbox { .. } => Err("sandboxPolicy externalSandbox is not offered"),
        }
    }
}

/// A flag of an `active` thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ThreadActiveFlag {
    /// An approval of the thread is pending (`CMD-28`).
    WaitingOnApproval,
    /// The agent waits for user input (Codex only).
    WaitingOnUserInput,
    /// A flag this crate does not know.
    #[serde(other)]
    Other,
}

/// What a thread is doing (Codex's `ThreadStatus`), tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ThreadStatus {
    /// Not loaded by the server (Codex only).
    NotLoaded,
    /// No turn is running.
    Idle,
    /// The server failed on this thread (Codex only).
    SystemError,
    /// A turn is running.
    #[serde(rename_all = "camelCase")]
    Active {
        /// `["waitingOnApproval"]` while an approval is pending, else empty.
        #[serde(default, deserialize_with = "null_default")]
        active_flags: Vec<ThreadActiveFlag>,
    },
}

impl ThreadStatus {
    /// Whether a turn runs.
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active { .. })
    }

    /// `{"type":"active","activeFlags":[]}`, with `waitingOnApproval` when `waiting`.
    pub fn active(waiting: bool) -> Self {
        Self::Active {
            active_flags: if waiting {
                vec![ThreadActiveFlag::WaitingOnApproval]
            } else {
                Vec::new()
            },
        }
    }

    /// A short word for people: `idle`, `active`, `waiting` (for approval), `notLoaded`,
    /// `systemError`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotLoaded => "notLoaded",
            Self::Idle => "idle",
            Self::SystemError => "systemError",
            Self::Active { active_flags } => {
                if active_flags.contains(&ThreadActiveFlag::WaitingOnApproval) {
                    "waiting"
                } else {
                    "active"
                }
            }
        }
    }
}

/// The Tether-only members of a Thread (`thread.tether`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTether {
    /// The thread's sandbox mode.
    pub sandbox: SandboxMode,
    /// The thread's approval policy.
    pub approval_policy: ApprovalPolicy,
}

/// A thread (Codex's `Thread`): one conversation with the agent in one working
/// directory (`CMD-17`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    /// Host-chosen id, unique on the host.
    pub id: String,
    /// The agent session id; the reference host sends the thread id.
    pub session_id: String,
    /// The working directory, an absolute path in the host's native form.
    pub cwd: String,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Time of the last change, Unix seconds.
    pub updated_at: u64,
    /// What the thread is doing.
    pub status: ThreadStatus,
    /// The start of the first user message, for lists; `""` when none.
    #[serde(default, deserialize_with = "null_default")]
    pub preview: String,
    /// Its turns: empty except in `thread/resume` (unless `excludeTurns`) and
    /// `thread/read` with `includeTurns`.
    #[serde(default, deserialize_with = "null_default")]
    pub turns: Vec<Turn>,
    /// Whether the thread is kept only in memory; always `false` from a Tether host.
    #[serde(default)]
    pub ephemeral: bool,
    /// The host software's version.
    #[serde(default, deserialize_with = "null_default")]
    pub cli_version: String,
    /// The model provider (test agent: `"tether-test"`).
    #[serde(default, deserialize_with = "null_default")]
    pub model_provider: String,
    /// Codex's `SessionSource`; a Tether host sends `"appServer"`.
    #[serde(default)]
    pub source: Value,
    /// Codex's project id; always `null` from a Tether host.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The Tether-only members; absent from a Codex server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tether: Option<ThreadTether>,
}

impl Thread {
    /// The thread's sandbox mode, when the sender is a Tether host.
    pub fn sandbox(&self) -> Option<SandboxMode> {
        self.tether.as_ref().map(|t| t.sandbox)
    }

    /// The thread's approval policy, when the sender is a Tether host.
    pub fn approval_policy(&self) -> Option<ApprovalPolicy> {
        self.tether.as_ref().map(|t| t.approval_policy)
    }
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
    /// Which items `items` holds; a Tether host sends `"full"` (`CMD-25`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_view: Option<TurnItemsView>,
    /// Start time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// End time, Unix seconds, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// Run time in milliseconds, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Turn {
    /// A turn with every item (`itemsView: "full"`) and no times.
    pub fn new(id: impl Into<String>, status: TurnStatus, items: Vec<ThreadItem>) -> Self {
        Self {
            id: id.into(),
            status,
            items,
            items_view: Some(TurnItemsView::Full),
            started_at: None,
            completed_at: None,
            duration_ms: None,
        }
    }
}

/// Which items a Turn's `items` holds (Codex's `TurnItemsView`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnItemsView {
    /// None were loaded.
    NotLoaded,
    /// A display summary (Codex).
    Summary,
    /// Every item.
    Full,
}

/// One piece of user input (Codex's `UserInput`): in `turn/start` and in a
/// `userMessage` item's `content`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserInput {
    /// `{"type":"text","text":…,"text_elements":[…]}`.
    Text {
        /// The text.
        text: String,
        /// Codex's UI spans within `text` (`TextElement[]`), kept as sent; a Tether
        /// sender sends `[]`.
        text_elements: Vec<Value>,
    },
    /// Another input type (`image`, `localImage`, …), kept as its JSON object. The test
    /// agent refuses these in `turn/start` (-32602).
    Other(Value),
}

impl UserInput {
    /// A text input without text elements.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            text_elements: Vec::new(),
        }
    }

    /// The text of a `text` input.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text { text, .. } => Some(text),
            Self::Other(_) => None,
        }
    }

    /// The `type` member.
    pub fn kind(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or_default(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct TextInputWire {
    text: String,
    #[serde(default, deserialize_with = "null_default")]
    text_elements: Vec<Value>,
}

impl Serialize for UserInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text {
                text,
                text_elements,
            } => serde_json::json!({"type": "text", "text": text, "text_elements": text_elements})
                .serialize(s),
            Self::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for UserInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        match v.get("type") {
            Some(Value::String(t)) if t == "text" => {
                let w = TextInputWire::deserialize(&v).map_err(D::Error::custom)?;
                Ok(Self::Text {
                    text: w.text,
                    text_elements: w.text_elements,
                })
            }
            Some(Value::String(_)) => Ok(Self::Other(v)),
            _ => Err(D::Error::custom("user input without a string `type`")),
        }
    }
}

/// One item of a turn (Codex's `ThreadItem`, `CMD-24`), tagged by `type`.
///
/// A receiver keeps an item of a type it does not know as [`ThreadItem::Other`]; it
/// never makes the message undecodable (section 5.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadItem {
    /// What the user sent.
    UserMessage(UserMessageItem),
    /// What the agent answered.
    AgentMessage(AgentMessageItem),
    /// A command the agent ran or proposed.
    CommandExecution(CommandExecutionItem),
    /// An item of another type (Codex has 19), kept as its JSON object.
    Other(OtherItem),
}

/// An item of a type this crate does not model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherItem {
    /// Its `type`.
    pub kind: String,
    /// Its `id`, or `""`.
    pub id: String,
    /// The whole object as received.
    pub raw: Value,
}

impl ThreadItem {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            Self::UserMessage(i) => &i.id,
            Self::AgentMessage(i) => &i.id,
            Self::CommandExecution(i) => &i.id,
            Self::Other(i) => &i.id,
        }
    }

    /// The `type` member.
    pub fn kind(&self) -> &str {
        match self {
            Self::UserMessage(_) => "userMessage",
            Self::AgentMessage(_) => "agentMessage",
            Self::CommandExecution(_) => "commandExecution",
            Self::Other(i) => &i.kind,
        }
    }
}

impl Serialize for ThreadItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let (kind, value) = match self {
            Self::UserMessage(i) => ("userMessage", serde_json::to_value(i)),
            Self::AgentMessage(i) => ("agentMessage", serde_json::to_value(i)),
            Self::CommandExecution(i) => ("commandExecution", serde_json::to_value(i)),
            Self::Other(i) => return i.raw.serialize(s),
        };
        let mut value = value.map_err(S::Error::custom)?;
        if let Value::Object(map) = &mut value {
            map.insert("type".to_owned(), Value::String(kind.to_owned()));
        }
        value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ThreadItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        let Some(Value::String(kind)) = v.get("type") else {
            return Err(D::Error::custom("item without a string `type`"));
        };
        let e = |e: serde_json::Error| D::Error::custom(format!("{kind} item: {e}"));
        // CMD-78: an unknown type is kept as `Other`, never refused.
        Ok(match kind.as_str() {
            "userMessage" => Self::UserMessage(UserMessageItem::deserialize(&v).map_err(e)?),
            "agentMessage" => Self::AgentMessage(AgentMessageItem::deserialize(&v).map_err(e)?),
            "commandExecution" => {
                Self::CommandExecution(CommandExecutionItem::deserialize(&v).map_err(e)?)
            }
            _ => Self::Other(OtherItem {
                kind: kind.clone(),
                id: v
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                raw: v.clone(),
            }),
        })
    }
}

/// `{"type":"userMessage"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMessageItem {
    /// Item id, unique in the thread.
    pub id: String,
    /// The input, as given to `turn/start`.
    pub content: Vec<UserInput>,
    /// Start time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// End time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
}

impl UserMessageItem {
    /// An item holding one text input, without times.
    pub fn from_text(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            content: vec![UserInput::text(text)],
            started_at_ms: None,
            completed_at_ms: None,
        }
    }

    /// The text inputs joined by newlines (other inputs left out).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(UserInput::as_text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `{"type":"agentMessage"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessageItem {
    /// Item id, unique in the thread.
    pub id: String,
    /// The text.
    pub text: String,
    /// Start time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// End time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
}

impl AgentMessageItem {
    /// An item with `text`, without times.
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            text: text.into(),
            started_at_ms: None,
            completed_at_ms: None,
        }
    }
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
    /// What the command does, parsed for display; the reference host sends
    /// `[{"type":"unknown","command":…}]`.
    #[serde(default, deserialize_with = "null_default")]
    pub command_actions: Vec<CommandAction>,
    /// Exit status, once it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Its output (stdout and stderr in arrival order, lossy UTF-8), once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregated_output: Option<String>,
    /// Run time in milliseconds, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Start time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// End time, Unix milliseconds, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
}

/// What a command does, parsed for display (Codex's `CommandAction`), tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CommandAction {
    /// Reads a file.
    Read {
        /// The part of the command line.
        command: String,
        /// The file's name.
        name: String,
        /// The file's path.
        path: String,
    },
    /// Lists files.
    #[serde(rename_all = "camelCase")]
    ListFiles {
        /// The part of the command line.
        command: String,
        /// The directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Searches.
    Search {
        /// The part of the command line.
        command: String,
        /// Where.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// What.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    },
    /// Anything else; what the reference host sends.
    Unknown {
        /// The command line.
        command: String,
    },
}

impl CommandExecutionItem {
    /// An item for `command` as the reference host makes it (one `unknown` action), with
    /// no outcome and no times.
    pub fn new(
        id: impl Into<String>,
        command: impl Into<String>,
        cwd: impl Into<String>,
        status: CommandExecutionStatus,
    ) -> Self {
        let command = command.into();
        Self {
            id: id.into(),
            command_actions: CommandAction::unknown(&command),
            command,
            cwd: cwd.into(),
            status,
            exit_code: None,
            aggregated_output: None,
            duration_ms: None,
            started_at_ms: None,
            completed_at_ms: None,
        }
    }
}

impl CommandAction {
    /// The reference host's actions for `command`: one `unknown` action.
    pub fn unknown(command: &str) -> Vec<Self> {
        vec![Self::Unknown {
            command: command.to_owned(),
        }]
    }
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

/// A controller's answer to an approval request (Codex's
/// `CommandExecutionApprovalDecision`, `CMD-29`): one of four strings, or one of Codex's
/// two object forms, which decode without failing and which the reference host never
/// offers in `availableDecisions`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Codex: accept and add an exec-policy rule.
    AcceptWithExecpolicyAmendment {
        /// The command prefix to allow.
        execpolicy_amendment: Vec<String>,
    },
    /// Codex: a persistent network rule.
    ApplyNetworkPolicyAmendment {
        /// The rule.
        network_policy_amendment: NetworkPolicyAmendment,
    },
}

impl ApprovalDecision {
    /// The four decisions a Tether host offers, in `availableDecisions` order.
    pub const STANDARD: [Self; 4] = [
        Self::Accept,
        Self::AcceptForSession,
        Self::Decline,
        Self::Cancel,
    ];

    /// The wire name (`"acceptForSession"`), or the object form's member name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::AcceptForSession => "acceptForSession",
            Self::Decline => "decline",
            Self::Cancel => "cancel",
            Self::AcceptWithExecpolicyAmendment { .. } => "acceptWithExecpolicyAmendment",
            Self::ApplyNetworkPolicyAmendment { .. } => "applyNetworkPolicyAmendment",
        }
    }
}

/// Codex's `NetworkPolicyAmendment`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetworkPolicyAmendment {
    /// The host name.
    pub host: String,
    /// `"allow"` or `"deny"`.
    pub action: String,
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
        let v = serde_json::to_value(ApprovalPolicy::OnRequest).unwrap();
        assert_eq!(v, "on-request");
        // Codex 0.169.0 refuses on-failure; so does tether/2.
        assert!(serde_json::from_value::<ApprovalPolicy>("on-failure".into()).is_err());
        let v = serde_json::to_value(ApprovalDecision::AcceptForSession).unwrap();
        assert_eq!(v, "acceptForSession");
        let v = serde_json::to_value(TurnStatus::InProgress).unwrap();
        assert_eq!(v, "inProgress");
        for m in SandboxMode::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }
}
