//! Typed methods: params and results of every request and notification
//! (`spec/05-command-protocol.md`, "Methods").
//!
//! Four sets, by direction and kind:
//!
//! | set | direction | kind |
//! |---|---|---|
//! | [`ClientRequest`] | controller -> host | requests |
//! | [`ClientNotification`] | controller -> host | notifications |
//! | [`ServerRequest`] | host -> controller | requests |
//! | [`ServerNotification`] | host -> controller | notifications |
//!
//! Each params type implements [`Params`] (its method name, its decoder, its range
//! checks); each request params type also implements [`RequestParams`], naming its result
//! type. Decoding ignores members it does not know and refuses missing required members,
//! wrong types and out-of-range values with [`CommandError::InvalidParams`] (`CMD-13`); an
//! unknown method gives [`CommandError::MethodNotFound`] (`CMD-12`).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::envelope::{Id, Notification, Request};
use super::error::CommandError;
use super::types::{
    ApprovalDecision, ApprovalPolicy, CommandAction, Implementation, OutputStream, Platform,
    SandboxMode, SandboxPolicy, SandboxReport, SandboxSupport, Thread, ThreadBundle, ThreadItem,
    Turn, UserInput, null_default, nullable,
};
use crate::limits::MAX_OUTPUT_CHUNK;

/// The protocol version named in `initialize` (`CMD-15`).
pub const PROTOCOL_NAME: &str = "tether/2";

/// Largest `timeoutMs` of `command/exec`: 24 hours (`CMD-43`).
pub const MAX_EXEC_TIMEOUT_MS: u64 = 86_400_000;
/// Largest `outputBytesCap` of a streamed `command/exec`: 64 MiB (`CMD-43`).
pub const MAX_OUTPUT_CAP: u64 = 64 * 1024 * 1024;
/// Longest `processId`, in bytes (`CMD-34`).
pub const MAX_PROCESS_ID_LEN: usize = 64;
/// Largest `limit` of `thread/list` (`CMD-20`).
pub const MAX_THREAD_LIST_LIMIT: u32 = 1000;
/// `limit` of `thread/list` when absent (`CMD-20`).
pub const DEFAULT_THREAD_LIST_LIMIT: u32 = 50;

/// The params of one method.
pub trait Params: Serialize + DeserializeOwned {
    /// The method name on the wire.
    const METHOD: &'static str;

    /// Range and consistency checks beyond the JSON shape.
    ///
    /// # Errors
    /// [`CommandError::InvalidParams`] (or a more specific error) naming the rule broken.
    fn validate(&self) -> Result<(), CommandError> {
        Ok(())
    }

    /// Decodes the `params` member of a message of this method: absent counts as `{}`,
    /// anything but an object is refused (`CMD-13`).
    ///
    /// # Errors
    /// [`CommandError::InvalidParams`], or what [`Params::validate`] returns.
    fn from_params(params: Option<&Value>) -> Result<Self, CommandError> {
        let empty = Value::Object(Map::new());
        let value = match params {
            None => &empty,
            Some(v @ Value::Object(_)) => v,
            Some(_) => return Err(invalid_params(Self::METHOD, "params must be an object")),
        };
        let params =
            Self::deserialize(value).map_err(|e| invalid_params(Self::METHOD, &e.to_string()))?;
        params.validate()?;
        Ok(params)
    }

    /// The params as a JSON value.
    fn to_params(&self) -> Value {
        // Cannot fail: every map key in these types is a string.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The params of a request, which name the type of its result.
pub trait RequestParams: Params {
    /// What a successful response carries.
    type Result: Serialize + DeserializeOwned;

    /// Decodes a result of this method.
    ///
    /// # Errors
    /// [`CommandError::BadResult`].
    fn decode_result(result: &Value) -> Result<Self::Result, CommandError> {
        Self::Result::deserialize(result).map_err(|e| CommandError::BadResult {
            method: Self::METHOD.to_owned(),
            detail: e.to_string(),
        })
    }
}

fn invalid_params(method: &str, detail: &str) -> CommandError {
    CommandError::InvalidParams {
        method: method.to_owned(),
        detail: detail.to_owned(),
    }
}

macro_rules! params {
    ($ty:ty = $method:literal) => {
        impl Params for $ty {
            const METHOD: &'static str = $method;
        }
    };
    ($ty:ty = $method:literal, validate($this:ident) $body:block) => {
        impl Params for $ty {
            const METHOD: &'static str = $method;
            fn validate(&self) -> Result<(), CommandError> {
                let $this = self;
                $body
            }
        }
    };
}

macro_rules! request_result {
    ($($ty:ty => $result:ty;)*) => {
        $(impl RequestParams for $ty {
            type Result = $result;
        })*
    };
}

// ---------------------------------------------------------------------------------------
// Results shared by several methods.

/// The empty result `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyResult {}

/// Result of `thread/start`, `thread/resume` and `tether/thread/import` (Codex's
/// `ThreadStartResponse`, section 5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadOpened {
    /// The thread.
    pub thread: Thread,
    /// The thread's approval policy.
    pub approval_policy: ApprovalPolicy,
    /// Who answers approvals: always `"user"` from a Tether host.
    pub approvals_reviewer: String,
    /// The thread's working directory, host-native absolute.
    pub cwd: String,
    /// The model (test agent: `"tether-test"`).
    pub model: String,
    /// The model provider (test agent: `"tether-test"`).
    pub model_provider: String,
    /// The enforced sandbox as Codex's SandboxPolicy (section 5.3).
    pub sandbox: SandboxPolicy,
    /// The AGENTS.md files given to the agent, in the order read, as native absolute paths
    /// (`CMD-48`..`CMD-51`).
    #[serde(default, deserialize_with = "null_default")]
    pub instruction_sources: Vec<String>,
    /// The Tether-only members; absent from a Codex server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tether: Option<ThreadOpenedTether>,
}

impl ThreadOpened {
    /// The sandbox report (`tether.sandbox`, `CMD-45`), when a Tether host sent it.
    pub fn report(&self) -> Option<&SandboxReport> {
        self.tether.as_ref().map(|t| &t.sandbox)
    }
}

/// `tether` of a ThreadOpened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadOpenedTether {
    /// What the host enforces for the thread's commands (`CMD-45`).
    pub sandbox: SandboxReport,
}

/// Whether any of `names` is present and not `null` in `extra`: the Codex overrides a
/// Tether host does not apply.
fn non_null_override<'a>(extra: &Map<String, Value>, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .find(|n| extra.get(**n).is_some_and(|v| !v.is_null()))
        .copied()
}

// ---------------------------------------------------------------------------------------
// initialize / initialized

/// `initialize` params (`CMD-15`): Codex app-server v2's `InitializeParams`, with Tether's
/// own members in `tether`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// The controller software.
    pub client_info: ClientInfo,
    /// Codex's `InitializeCapabilities` object; a host accepts it and may ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Map<String, Value>>,
    /// Tether's members; absent from a plain app-server client, which the host serves as a
    /// `tether/2` session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tether: Option<TetherInitializeParams>,
}

/// The software on one end, as `initialize` params name the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// Name.
    pub name: String,
    /// Name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Version.
    pub version: String,
}

/// The `tether` member of `initialize` params (`CMD-15`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TetherInitializeParams {
    /// `"tether/2"`.
    pub protocol_version: String,
    /// Capability names the controller understands (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

impl InitializeParams {
    /// The params a Tether controller sends: `clientInfo` and `tether` with this crate's
    /// protocol version.
    pub fn tether(name: &str, version: &str, capabilities: Option<Vec<String>>) -> Self {
        Self {
            client_info: ClientInfo {
                name: name.to_owned(),
                title: None,
                version: version.to_owned(),
            },
            capabilities: None,
            tether: Some(TetherInitializeParams {
                protocol_version: PROTOCOL_NAME.to_owned(),
                capabilities,
            }),
        }
    }

    /// Checks that the controller asks for the version this crate speaks (`CMD-15`); params
    /// without `tether` (a plain app-server client) pass.
    ///
    /// # Errors
    /// [`CommandError::UnsupportedProtocolVersion`].
    pub fn check_version(&self) -> Result<(), CommandError> {
        match &self.tether {
            Some(t) if t.protocol_version != PROTOCOL_NAME => {
                Err(CommandError::UnsupportedProtocolVersion {
                    version: t.protocol_version.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// `initialize` result: Codex app-server v2's `InitializeResponse`, with Tether's own
/// members in `tether` (`CMD-15`, `CMD-16`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The host software and platform, for people (`"tether-host/0.1.0 (linux; x86_64)"`).
    pub user_agent: String,
    /// The agent's home directory, absolute and host-native.
    pub codex_home: String,
    /// `"unix"` or `"windows"`.
    pub platform_family: String,
    /// `"linux"`, `"macos"`, `"windows"` (Rust's `std::env::consts::OS` for others).
    pub platform_os: String,
    /// Tether's members.
    pub tether: TetherInitializeResult,
}

/// The `tether` member of the `initialize` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TetherInitializeResult {
    /// The host software.
    pub server_info: Implementation,
    /// `"tether/2"`.
    pub protocol_version: String,
    /// Capability names the host offers (`CMD-16`).
    pub capabilities: Vec<String>,
    /// What sandboxing the host offers.
    pub sandbox: SandboxSupport,
    /// The host's platform.
    pub platform: Platform,
}

/// `initialized` params: none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitializedParams {}

params!(InitializeParams = "initialize");
params!(InitializedParams = "initialized");

/// `tether/host/info` params: none (`CMD-77`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfoParams {}

/// `tether/host/info` result: the defaults and limits the host applies, so that a
/// controller can fill in a request without guessing host paths (`CMD-77`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostInfoResult {
    /// The home directory of the user the host runs commands as, absolute and
    /// host-native; `None` (`null`) when it has none.
    pub home: Option<String>,
    /// The working directory of a `command/exec` or `thread/start` that names none
    /// (`CMD-71`, `CMD-17`); `None` (`null`) when the host has none and refuses such
    /// requests.
    pub default_cwd: Option<String>,
    /// The mode of a `command/exec` or `thread/start` that names none (`CMD-47`).
    pub default_sandbox: SandboxMode,
    /// The most permissive mode the host allows (`SEC-15`).
    pub max_sandbox: SandboxMode,
    /// The policy of a `thread/start` that names none.
    pub default_approval_policy: ApprovalPolicy,
    /// The most permissive policy the host allows (`SEC-15`).
    pub max_approval_policy: ApprovalPolicy,
}

params!(HostInfoParams = "tether/host/info");

// ---------------------------------------------------------------------------------------
// threads

/// `thread/start` params (Codex's `ThreadStartParams`, `CMD-17`). Codex's other params
/// (`model`, `baseInstructions`, `config`, …) are accepted and ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStartParams {
    /// Working directory, absolute, host-native; the host's default project when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Sandbox mode; the host's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxMode>,
    /// Approval policy; the host's default when absent. Codex's `{granular: …}` form is
    /// refused (-32602).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<ApprovalPolicy>,
    /// Who answers approvals: only `"user"` (-32602 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_reviewer: Option<String>,
    /// `true` is refused (-32602): threads are durable (`CMD-17`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<bool>,
}

/// The Codex `thread/resume` params that would change a thread's settings; a Tether host
/// refuses any of them given non-null (-32602).
pub const THREAD_RESUME_OVERRIDES: &[&str] = &[
    "approvalPolicy",
    "approvalsReviewer",
    "baseInstructions",
    "config",
    "cwd",
    "developerInstructions",
    "model",
    "modelProvider",
    "personality",
    "sandbox",
    "serviceTier",
];

/// `thread/resume` params (`CMD-19`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResumeParams {
    /// The thread.
    pub thread_id: String,
    /// `true`: the result's `thread.turns` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_turns: Option<bool>,
    /// Every other member, kept to refuse Codex overrides ([`THREAD_RESUME_OVERRIDES`]).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ThreadResumeParams {
    /// Resume `thread_id`, with its turns.
    pub fn new(thread_id: impl Into<String>) -> Self {
        Self {
            thread_id: thread_id.into(),
            exclude_turns: None,
            extra: Map::new(),
        }
    }
}

/// `thread/read` params (`CMD-21`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadParams {
    /// The thread.
    pub thread_id: String,
    /// `true`: the result's `thread.turns` holds every turn; default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_turns: Option<bool>,
}

/// `tether/thread/export` params (`CMD-52`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadExportParams {
    /// The thread.
    pub thread_id: String,
}

/// `thread/list` params (`CMD-20`). Codex's filters (`archived`, `cwd`, `searchTerm`,
/// …) are accepted and ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadListParams {
    /// Where to continue: a `nextCursor` from an earlier page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1..=1000, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only `"updated_at"`, the order Tether defines (-32602 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<String>,
    /// Only `"desc"` (-32602 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_direction: Option<String>,
}

/// `thread/list` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadListResult {
    /// Threads, most recently updated first, each with `turns: []`.
    pub data: Vec<Thread>,
    /// Cursor of the next page; `null` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `thread/read` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadResult {
    /// The thread; its `turns` hold every turn with its items, oldest first, when
    /// `includeTurns` was `true`, else none.
    pub thread: Thread,
}

/// `tether/thread/export` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadExportResult {
    /// The bundle.
    pub bundle: ThreadBundle,
}

/// `tether/thread/import` params (`CMD-54`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadImportParams {
    /// The bundle from `tether/thread/export`.
    pub bundle: ThreadBundle,
    /// Absolute host-native path the bundle's `cwdRelative` is taken from; the host's
    /// default project when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_root: Option<String>,
}

params!(ThreadStartParams = "thread/start", validate(p) {
    if p.approvals_reviewer.as_deref().is_some_and(|r| r != "user") {
        return Err(invalid_params("thread/start", "approvalsReviewer must be \"user\""));
    }
    if p.ephemeral == Some(true) {
        return Err(invalid_params("thread/start", "threads are durable: ephemeral must not be true"));
    }
    Ok(())
});
params!(ThreadResumeParams = "thread/resume", validate(p) {
    match non_null_override(&p.extra, THREAD_RESUME_OVERRIDES) {
        Some(name) => Err(invalid_params(
            "thread/resume",
            &format!("thread/resume does not change a thread's settings ({name})"),
        )),
        None => Ok(()),
    }
});
params!(ThreadReadParams = "thread/read");
params!(ThreadExportParams = "tether/thread/export");
params!(ThreadListParams = "thread/list", validate(p) {
    if p.sort_key.as_deref().is_some_and(|k| k != "updated_at") {
        return Err(invalid_params("thread/list", "sortKey must be \"updated_at\""));
    }
    if p.sort_direction.as_deref().is_some_and(|d| d != "desc") {
        return Err(invalid_params("thread/list", "sortDirection must be \"desc\""));
    }
    match p.limit {
        Some(l) if l == 0 || l > MAX_THREAD_LIST_LIMIT => Err(invalid_params(
            "thread/list",
            &format!("limit must be 1..={MAX_THREAD_LIST_LIMIT}"),
        )),
        _ => Ok(()),
    }
});
params!(ThreadImportParams = "tether/thread/import", validate(p) {
    // CMD-53: a bad bundle is -32017, not -32602.
    p.bundle.validate()
});

// ---------------------------------------------------------------------------------------
// turns

/// The Codex `turn/start` params that would change a thread's settings; a Tether host
/// refuses any of them given non-null (-32602).
pub const TURN_START_OVERRIDES: &[&str] = &[
    "approvalPolicy",
    "approvalsReviewer",
    "cwd",
    "effort",
    "model",
    "personality",
    "sandboxPolicy",
    "serviceTier",
    "summary",
];

/// `turn/start` params (`CMD-22`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    /// The thread.
    pub thread_id: String,
    /// The user's input, at least one element.
    pub input: Vec<UserInput>,
    /// Every other member, kept to refuse Codex overrides ([`TURN_START_OVERRIDES`]).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TurnStartParams {
    /// A turn on `thread_id` with `input`.
    pub fn new(thread_id: impl Into<String>, input: Vec<UserInput>) -> Self {
        Self {
            thread_id: thread_id.into(),
            input,
            extra: Map::new(),
        }
    }
}

/// `turn/start` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartResult {
    /// The new turn, `inProgress`, no items yet.
    pub turn: Turn,
}

/// `turn/interrupt` params (`CMD-23`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnInterruptParams {
    /// The thread.
    pub thread_id: String,
    /// Its running turn.
    pub turn_id: String,
}

params!(TurnStartParams = "turn/start", validate(p) {
    if p.input.is_empty() {
        return Err(invalid_params("turn/start", "input must not be empty"));
    }
    // Section 5.4: Tether's turns take text; Codex's other input types are refused.
    if let Some(other) = p.input.iter().find(|i| i.as_text().is_none()) {
        return Err(invalid_params(
            "turn/start",
            &format!("input type {:?} is not supported (only \"text\")", other.kind()),
        ));
    }
    if let Some(name) = non_null_override(&p.extra, TURN_START_OVERRIDES) {
        return Err(invalid_params(
            "turn/start",
            &format!("turn/start does not change a thread's settings ({name})"),
        ));
    }
    Ok(())
});
params!(TurnInterruptParams = "turn/interrupt");

// ---------------------------------------------------------------------------------------
// command/exec

/// `command/exec` params (`CMD-34`): Codex app-server v2's `CommandExecParams`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecParams {
    /// Program and arguments, run without a shell; at least one element.
    pub command: Vec<String>,
    /// Working directory, absolute, host-native; when absent, the host's default working
    /// directory (`CMD-71`), the one a `thread/start` without `cwd` gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Controller-chosen name of the process, 1..=64 bytes, unique among the session's
    /// running processes; required with `streamStdoutStderr`, and to terminate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    /// Stream the output as `command/exec/outputDelta` (or `OUTPUT` records) instead of
    /// returning it in the result (`CMD-35`).
    #[serde(
        default,
        deserialize_with = "null_false",
        skip_serializing_if = "is_false"
    )]
    pub stream_stdout_stderr: bool,
    /// Standard input from `command/exec/write` (Codex); the reference host refuses it.
    #[serde(
        default,
        deserialize_with = "null_false",
        skip_serializing_if = "is_false"
    )]
    pub stream_stdin: bool,
    /// A pseudo-terminal (Codex); the reference host refuses it.
    #[serde(
        default,
        deserialize_with = "null_false",
        skip_serializing_if = "is_false"
    )]
    pub tty: bool,
    /// The pseudo-terminal's size, `{rows, cols}` (Codex; only with `tty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TerminalSize>,
    /// Time limit, 1..=86 400 000 ms; 600 000 when absent (`CMD-42`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The host's largest time limit, 86 400 000 ms, instead of `timeoutMs` (`CMD-42`).
    #[serde(
        default,
        deserialize_with = "null_false",
        skip_serializing_if = "is_false"
    )]
    pub disable_timeout: bool,
    /// Output cap in bytes, stdout and stderr together, 0..=64 MiB; 1 MiB when absent
    /// (`CMD-41`, `CMD-43`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes_cap: Option<u64>,
    /// No output cap: streamed, in a session with records only (`CMD-41`, `CMD-43`).
    #[serde(
        default,
        deserialize_with = "null_false",
        skip_serializing_if = "is_false"
    )]
    pub disable_output_cap: bool,
    /// Environment overrides (`null` unsets); the reference host refuses a non-empty map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, Option<String>>>,
    /// Sandbox policy; the host's default mode when absent (`CMD-47`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_policy: Option<SandboxPolicy>,
}

/// A pseudo-terminal's size in character cells (Codex `CommandExecTerminalSize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// An optional boolean that may be `null` (Codex sends `null` for absent members).
fn null_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

impl CommandExecParams {
    /// The time limit in force, in milliseconds (`CMD-42`): `timeoutMs`, the host's
    /// largest with `disableTimeout`, else the default.
    pub fn effective_timeout_ms(&self) -> u64 {
        if self.disable_timeout {
            return MAX_EXEC_TIMEOUT_MS;
        }
        self.timeout_ms.unwrap_or_else(|| {
            u64::try_from(crate::limits::DEFAULT_EXEC_TIMEOUT.as_millis()).unwrap_or(u64::MAX)
        })
    }

    /// The output cap in force, in bytes (`CMD-41`); `u64::MAX` for no cap. Without
    /// `streamStdoutStderr` the output is returned in the result and the cap is at most
    /// [`MAX_BUFFERED_OUTPUT`](crate::limits::MAX_BUFFERED_OUTPUT) (`CMD-43`).
    pub fn effective_output_cap(&self) -> u64 {
        if self.disable_output_cap {
            return u64::MAX;
        }
        match (self.output_bytes_cap, self.stream_stdout_stderr) {
            (Some(n), _) => n,
            (None, true) => crate::limits::DEFAULT_OUTPUT_CAP,
            (None, false) => crate::limits::MAX_BUFFERED_OUTPUT,
        }
    }

    /// The sandbox mode asked for (5.6, `CMD-47`): `None` without `sandboxPolicy`.
    ///
    /// # Errors
    /// [`CommandError::InvalidParams`] for a policy that is not a Tether mode
    /// ([`SandboxPolicy::mode`]).
    pub fn sandbox_mode(&self) -> Result<Option<SandboxMode>, CommandError> {
        self.sandbox_policy
            .as_ref()
            .map(|p| p.mode().map_err(|d| invalid_params("command/exec", d)))
            .transpose()
    }
}

/// `command/exec` result (`CMD-39`): Codex app-server v2's `CommandExecResponse`, with
/// Tether's report in `tether`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecResult {
    /// The exit status; 128 + the signal number when a signal ended the process; 124
    /// when the time limit ended it.
    pub exit_code: i32,
    /// Standard output as text (UTF-8, invalid sequences as U+FFFD); `""` when streamed.
    pub stdout: String,
    /// Standard error as text; `""` when streamed.
    pub stderr: String,
    /// Tether's report.
    pub tether: CommandExecReport,
}

/// The `tether` member of the `command/exec` result (`CMD-39`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecReport {
    /// Exit status, or `null` when the process ended by a signal.
    #[serde(deserialize_with = "nullable")]
    pub exit_code: Option<i32>,
    /// Name of the signal that ended it (`"SIGKILL"`), or `null`.
    #[serde(deserialize_with = "nullable")]
    pub signal: Option<String>,
    /// Whether the time limit ended it.
    pub timed_out: bool,
    /// Whether the output cap was reached.
    pub cap_reached: bool,
    /// What was enforced.
    pub sandbox: SandboxReport,
}

/// `command/exec/terminate` params (`CMD-38`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecTerminateParams {
    /// The process.
    pub process_id: String,
}

params!(CommandExecParams = "command/exec", validate(p) {
    let bad = |d: &str| Err(invalid_params("command/exec", d));
    if p.command.is_empty() {
        return bad("command must have at least one element");
    }
    if matches!(&p.process_id, Some(id) if id.is_empty() || id.len() > MAX_PROCESS_ID_LEN) {
        return bad("processId must be 1..=64 bytes");
    }
    if p.stream_stdout_stderr && p.process_id.is_none() {
        return bad("streamStdoutStderr needs a processId");
    }
    if p.tty || p.stream_stdin || p.size.is_some() {
        return bad("tty, streamStdin and size are not offered (standard input is empty)");
    }
    if p.env.as_ref().is_some_and(|e| !e.is_empty()) {
        return bad("env is not offered (commands get the host's environment)");
    }
    if p.disable_timeout && p.timeout_ms.is_some() {
        return bad("timeoutMs and disableTimeout exclude each other");
    }
    if matches!(p.timeout_ms, Some(t) if t == 0 || t > MAX_EXEC_TIMEOUT_MS) {
        return bad("timeoutMs must be 1..=86400000");
    }
    if p.disable_output_cap && p.output_bytes_cap.is_some() {
        return bad("outputBytesCap and disableOutputCap exclude each other");
    }
    let max_cap = if p.stream_stdout_stderr {
        MAX_OUTPUT_CAP
    } else {
        crate::limits::MAX_BUFFERED_OUTPUT
    };
    if matches!(p.output_bytes_cap, Some(c) if c > max_cap) {
        return Err(invalid_params(
            "command/exec",
            &format!("outputBytesCap must be at most {max_cap} (without streamStdoutStderr the output must fit in the result)"),
        ));
    }
    if p.disable_output_cap && !p.stream_stdout_stderr {
        return bad("disableOutputCap needs streamStdoutStderr");
    }
    p.sandbox_mode().map(drop)
});
params!(CommandExecTerminateParams = "command/exec/terminate");

// ---------------------------------------------------------------------------------------
// notifications

/// `tether/cancelled` params, both directions (`CMD-57`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledParams {
    /// The id of the request to cancel, as its sender gave it.
    pub request_id: Id,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `turn/started` params (`CMD-24`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartedParams {
    /// The thread.
    pub thread_id: String,
    /// The turn, `inProgress`.
    pub turn: Turn,
}

/// `turn/completed` params (`CMD-24`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnCompletedParams {
    /// The thread.
    pub thread_id: String,
    /// The turn in its final state, with every item.
    pub turn: Turn,
}

/// `item/started` params (`CMD-24`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemStartedParams {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The item as it starts.
    pub item: ThreadItem,
    /// When it started, Unix milliseconds.
    pub started_at_ms: u64,
}

/// `item/completed` params (`CMD-24`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCompletedParams {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The item in its final state.
    pub item: ThreadItem,
    /// When it completed, Unix milliseconds.
    pub completed_at_ms: u64,
}

/// `item/commandExecution/outputDelta` params (`CMD-24`, `CMD-40`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecutionOutputDeltaParams {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The `commandExecution` item.
    pub item_id: String,
    /// The next piece of output as text: stdout and stderr in the order read, decoded
    /// as UTF-8 incrementally; at most 16 384 bytes of UTF-8.
    pub delta: String,
}

/// `command/exec/outputDelta` params (`CMD-35`, `CMD-40`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecOutputDeltaParams {
    /// The process, as named in `command/exec`.
    pub process_id: String,
    /// Which stream.
    pub stream: OutputStream,
    /// The chunk: at most 16 KiB of raw output, standard base64 with padding.
    pub delta_base64: String,
    /// True on the chunk that reaches the output cap (then no more chunks follow).
    pub cap_reached: bool,
}

/// A late answer refused, in `serverRequest/resolved` (`CMD-32`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedAnswer {
    /// `-32015`.
    pub code: i64,
    /// A short description.
    pub message: String,
}

/// `serverRequest/resolved` params (`CMD-30`, `CMD-32`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRequestResolvedParams {
    /// The thread.
    pub thread_id: String,
    /// The id of the approval request, as the host sent it.
    pub request_id: Id,
    /// The Tether-only members; absent from a Codex server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tether: Option<ResolvedTether>,
}

/// `tether` of `serverRequest/resolved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedTether {
    /// The decision in force.
    pub decision: ApprovalDecision,
    /// Device name of the controller whose answer won; absent when the host decided
    /// (time limit, turn ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// Present only in the copy sent to a controller whose answer came too late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_answer: Option<RejectedAnswer>,
}

params!(CancelledParams = "tether/cancelled");
params!(TurnStartedParams = "turn/started");
params!(TurnCompletedParams = "turn/completed");
params!(ItemStartedParams = "item/started");
params!(ItemCompletedParams = "item/completed");
params!(CommandExecutionOutputDeltaParams = "item/commandExecution/outputDelta", validate(p) {
    // CMD-40: the bound applies to the UTF-8 length of the text.
    if p.delta.len() > MAX_OUTPUT_CHUNK {
        return Err(invalid_params(
            "item/commandExecution/outputDelta",
            &format!("delta is longer than {MAX_OUTPUT_CHUNK} bytes"),
        ));
    }
    Ok(())
});
params!(CommandExecOutputDeltaParams = "command/exec/outputDelta", validate(p) {
    check_delta("command/exec/outputDelta", &p.delta_base64)
});
params!(ServerRequestResolvedParams = "serverRequest/resolved");

/// `CMD-40`: standard padded base64 of at most 16 KiB.
fn check_delta(method: &str, delta: &str) -> Result<(), CommandError> {
    let raw =
        decode_delta(delta).map_err(|e| invalid_params(method, &format!("deltaBase64: {e}")))?;
    if raw.len() > MAX_OUTPUT_CHUNK {
        return Err(invalid_params(
            method,
            &format!("deltaBase64 carries more than {MAX_OUTPUT_CHUNK} bytes"),
        ));
    }
    Ok(())
}

/// Encodes an output chunk for `deltaBase64` (standard alphabet, padded).
pub fn encode_delta(raw: &[u8]) -> String {
    data_encoding::BASE64.encode(raw)
}

/// Decodes a `deltaBase64` value.
///
/// # Errors
/// The base64 decoder's error.
pub fn decode_delta(delta: &str) -> Result<Vec<u8>, data_encoding::DecodeError> {
    data_encoding::BASE64.decode(delta.as_bytes())
}

// ---------------------------------------------------------------------------------------
// approvals

/// `item/commandExecution/requestApproval` params, host -> controller (Codex's
/// `CommandExecutionRequestApprovalParams`, `CMD-27`, `CMD-28`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecutionRequestApprovalParams {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The `commandExecution` item, already started with status `inProgress`.
    pub item_id: String,
    /// When the approval request started, Unix milliseconds.
    pub started_at_ms: u64,
    /// The command line (`""` when a Codex server sends none).
    #[serde(default, deserialize_with = "null_default")]
    pub command: String,
    /// Its working directory, host-native (`""` when a Codex server sends none).
    #[serde(default, deserialize_with = "null_default")]
    pub cwd: String,
    /// What the command does, for display.
    #[serde(default, deserialize_with = "null_default")]
    pub command_actions: Vec<CommandAction>,
    /// Why the host asks, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The decisions the host takes; a Tether host offers the four strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_decisions: Option<Vec<ApprovalDecision>>,
    /// The Tether-only members; absent from a Codex server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tether: Option<ApprovalTether>,
}

impl CommandExecutionRequestApprovalParams {
    /// Whether `decision` is one the host offered: one of `availableDecisions`, or, when
    /// the request named none, one of the four strings.
    pub fn offers(&self, decision: &ApprovalDecision) -> bool {
        match &self.available_decisions {
            Some(list) => list.contains(decision),
            None => ApprovalDecision::STANDARD.contains(decision),
        }
    }

    /// The sandbox the command would run under, when a Tether host sent it.
    pub fn sandbox(&self) -> Option<SandboxMode> {
        self.tether.as_ref().map(|t| t.sandbox)
    }
}

/// `tether` of `item/commandExecution/requestApproval`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalTether {
    /// The sandbox it would run under if accepted.
    pub sandbox: SandboxMode,
}

/// `item/commandExecution/requestApproval` result (`CMD-29`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalResult {
    /// The decision.
    pub decision: ApprovalDecision,
}

params!(CommandExecutionRequestApprovalParams = "item/commandExecution/requestApproval");

request_result! {
    InitializeParams => InitializeResult;
    HostInfoParams => HostInfoResult;
    ThreadStartParams => ThreadOpened;
    ThreadResumeParams => ThreadOpened;
    ThreadListParams => ThreadListResult;
    ThreadReadParams => ThreadReadResult;
    TurnStartParams => TurnStartResult;
    TurnInterruptParams => EmptyResult;
    CommandExecParams => CommandExecResult;
    CommandExecTerminateParams => EmptyResult;
    ThreadExportParams => ThreadExportResult;
    ThreadImportParams => ThreadOpened;
    CommandExecutionRequestApprovalParams => ApprovalResult;
}

// ---------------------------------------------------------------------------------------
// the four method sets

macro_rules! method_set {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident($params:ty),)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vm])* $variant($params),)*
        }

        impl $name {
            /// Every method name of this set.
            pub const METHODS: &'static [&'static str] = &[$(<$params as Params>::METHOD),*];

            /// The method name on the wire.
            pub fn method(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$params as Params>::METHOD,)*
                }
            }

            /// Decodes a method name and its params.
            ///
            /// # Errors
            /// [`CommandError::MethodNotFound`] (`CMD-12`) for a name outside this set,
            /// [`CommandError::InvalidParams`] (`CMD-13`) or a more specific error for bad
            /// params.
            pub fn from_parts(method: &str, params: Option<&Value>) -> Result<Self, CommandError> {
                $(if method == <$params as Params>::METHOD {
                    return Ok(Self::$variant(<$params as Params>::from_params(params)?));
                })*
                Err(CommandError::MethodNotFound { method: method.to_owned() })
            }

            /// The params as a JSON value.
            pub fn to_params(&self) -> Value {
                match self {
                    $(Self::$variant(p) => p.to_params(),)*
                }
            }
        }

        $(impl From<$params> for $name {
            fn from(p: $params) -> Self {
                Self::$variant(p)
            }
        })*
    };
}

macro_rules! request_set {
    ($name:ident) => {
        impl $name {
            /// Decodes a parsed request.
            ///
            /// # Errors
            /// As [`Self::from_parts`]; answer with
            /// [`ErrorResponse::new`](super::ErrorResponse::new) and the request's id.
            pub fn from_request(request: &Request) -> Result<Self, CommandError> {
                Self::from_parts(&request.method, request.params.as_ref())
            }

            /// The request with this method and params.
            pub fn into_request(self, id: impl Into<Id>) -> Request {
                Request::new(id, self.method(), Some(self.to_params()))
            }
        }
    };
}

macro_rules! notification_set {
    ($name:ident) => {
        impl $name {
            /// Decodes a parsed notification. A receiver ignores a notification whose
            /// method it does not know (`CMD-12`) and one whose params are bad (`CMD-13`).
            ///
            /// # Errors
            /// As [`Self::from_parts`].
            pub fn from_notification(n: &Notification) -> Result<Self, CommandError> {
                Self::from_parts(&n.method, n.params.as_ref())
            }

            /// The notification with this method and params.
            pub fn to_notification(&self) -> Notification {
                Notification::new(self.method(), Some(self.to_params()))
            }
        }
    };
}

method_set! {
    /// A request from a controller to a host.
    pub enum ClientRequest {
        /// `initialize`
        Initialize(InitializeParams),
        /// `thread/start`
        ThreadStart(ThreadStartParams),
        /// `thread/resume`
        ThreadResume(ThreadResumeParams),
        /// `thread/list`
        ThreadList(ThreadListParams),
        /// `thread/read`
        ThreadRead(ThreadReadParams),
        /// `turn/start`
        TurnStart(TurnStartParams),
        /// `turn/interrupt`
        TurnInterrupt(TurnInterruptParams),
        /// `command/exec`
        CommandExec(CommandExecParams),
        /// `command/exec/terminate`
        CommandExecTerminate(CommandExecTerminateParams),
        /// `tether/thread/export`
        ThreadExport(ThreadExportParams),
        /// `tether/thread/import`
        ThreadImport(ThreadImportParams),
        /// `tether/host/info`
        HostInfo(HostInfoParams),
    }
}
request_set!(ClientRequest);

method_set! {
    /// A notification from a controller to a host.
    pub enum ClientNotification {
        /// `initialized`
        Initialized(InitializedParams),
        /// `tether/cancelled`
        Cancelled(CancelledParams),
    }
}
notification_set!(ClientNotification);

method_set! {
    /// A request from a host to a controller.
    pub enum ServerRequest {
        /// `item/commandExecution/requestApproval`
        CommandExecutionRequestApproval(CommandExecutionRequestApprovalParams),
    }
}
request_set!(ServerRequest);

method_set! {
    /// A notification from a host to a controller.
    pub enum ServerNotification {
        /// `turn/started`
        TurnStarted(TurnStartedParams),
        /// `turn/completed`
        TurnCompleted(TurnCompletedParams),
        /// `item/started`
        ItemStarted(ItemStartedParams),
        /// `item/completed`
        ItemCompleted(ItemCompletedParams),
        /// `item/commandExecution/outputDelta`
        CommandExecutionOutputDelta(CommandExecutionOutputDeltaParams),
        /// `command/exec/outputDelta`
        CommandExecOutputDelta(CommandExecOutputDeltaParams),
        /// `serverRequest/resolved`
        ServerRequestResolved(ServerRequestResolvedParams),
        /// `tether/cancelled`
        Cancelled(CancelledParams),
    }
}
notification_set!(ServerNotification);

/// Decodes the result of a request by method name, for either direction: checks that
/// `result` has the shape `method` defines (`CMD-13`).
///
/// # Errors
/// [`CommandError::BadResult`], or [`CommandError::MethodNotFound`] for an unknown method.
pub fn check_result(method: &str, result: &Value) -> Result<(), CommandError> {
    fn check<P: RequestParams>(result: &Value) -> Result<(), CommandError> {
        P::decode_result(result).map(drop)
    }
    type Check = fn(&Value) -> Result<(), CommandError>;
    let checks: [(&str, Check); 13] = [
        (InitializeParams::METHOD, check::<InitializeParams>),
        (HostInfoParams::METHOD, check::<HostInfoParams>),
        (ThreadStartParams::METHOD, check::<ThreadStartParams>),
        (ThreadResumeParams::METHOD, check::<ThreadResumeParams>),
        (ThreadListParams::METHOD, check::<ThreadListParams>),
        (ThreadReadParams::METHOD, check::<ThreadReadParams>),
        (TurnStartParams::METHOD, check::<TurnStartParams>),
        (TurnInterruptParams::METHOD, check::<TurnInterruptParams>),
        (CommandExecParams::METHOD, check::<CommandExecParams>),
        (
            CommandExecTerminateParams::METHOD,
            check::<CommandExecTerminateParams>,
        ),
        (ThreadExportParams::METHOD, check::<ThreadExportParams>),
        (ThreadImportParams::METHOD, check::<ThreadImportParams>),
        (
            CommandExecutionRequestApprovalParams::METHOD,
            check::<CommandExecutionRequestApprovalParams>,
        ),
    ];
    match checks.iter().find(|(m, _)| *m == method) {
        Some((_, f)) => f(result),
        None => Err(CommandError::MethodNotFound {
            method: method.to_owned(),
        }),
    }
}
