//! Running the command of a `command/exec` or of a turn: the host's command
//! configuration, the sandbox it is started in, its output streamed in chunks under a
//! budget, and its limits (`spec/05` 5.6, 5.7).
//!
//! Sandboxing (`CMD-44` … `CMD-47`): when the host knows a `sandbox-exec` launcher
//! ([`CommandConfig::sandbox`], the `tether` binary itself) whose probe showed that the
//! kernel fully enforces a mode, commands of that mode run under it (Landlock and seccomp,
//! see `tether-sandbox`) and are reported as enforced. A mode that is not enforced is
//! refused with -32012 (`CMD-46`) unless the host was started with `--allow-unsandboxed`;
//! then it runs unsandboxed and is reported `degraded: true`.
//!
//! This module is below both users: the dispatcher (`commands`) starts processes of
//! `command/exec` here, and a turn of the test agent (`threads::agent`) runs its commands
//! through [`supervise`]. It refers to neither.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tether_proto::cmd::methods::{
    CommandExecOutputDeltaParams, CommandExecParams, CommandExecReport, CommandExecResult,
    HostInfoResult, InitializeResult, TetherInitializeResult, encode_delta,
};
use tether_proto::cmd::types::{
    ApprovalPolicy, Implementation, NetworkAccess, OutputStream, PathStyle, Platform, SandboxMode,
    SandboxPolicy, SandboxReport, SandboxSupport,
};
use tether_proto::cmd::{
    CommandError, Id, Message, PROTOCOL_NAME, Params, ServerNotification, capability,
};
use tether_proto::limits::MAX_OUTPUT_CHUNK;
use tether_proto::link::SessionId;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::answer::{error, response};
use crate::codex::CodexConfig;

/// Which agent answers the turns of the host's threads.
#[derive(Clone, Debug, Default)]
pub enum AgentBackend {
    /// The deterministic test agent (`CMD-59`, capability `agent.test`). The default.
    #[default]
    Test,
    /// A real Codex: one `codex app-server`, started as the configuration says on the
    /// first turn that needs it, plays the agent of every thread (spec 5.14). Codex runs
    /// the agent's commands under its own sandbox.
    Codex(CodexConfig),
}

/// How the host serves commands.
#[derive(Clone, Debug)]
pub struct CommandConfig {
    /// Run `read-only` / `workspace-write` commands without a sandbox, reporting
    /// `degraded: true`, instead of refusing them with -32012 (`CMD-46`).
    pub allow_unsandboxed: bool,
    /// The mode used when a request names none (`CMD-47`).
    pub default_sandbox: SandboxMode,
    /// The kernel sandbox available to commands, if any.
    pub sandbox: Option<SandboxLauncher>,
    /// The working directory of a thread whose `thread/start` names none, and the project
    /// root of a `tether/thread/import` that names none (`CMD-17`, `CMD-54`); `None`: the host
    /// process's current directory.
    pub default_project: Option<std::path::PathBuf>,
    /// The policy of a thread whose `thread/start` names none.
    pub default_approval_policy: ApprovalPolicy,
    /// How long an approval waits for an answer before it counts as `decline` (`CMD-31`,
    /// 300 s; shorter only for tests).
    pub approval_timeout: Duration,
    /// Commands (exact command lines) the `untrusted` policy runs without asking
    /// (`CMD-27`); empty unless the operator fills it.
    pub trusted_commands: Vec<String>,
    /// The temporary directory of commands: writable under `workspace-write` besides the
    /// project (`CMD-44`) and given to them as `TMPDIR`; `None`: the host process's
    /// temporary directory (`TMPDIR`, else `/tmp`).
    pub temp_dir: Option<std::path::PathBuf>,
    /// The most permissive sandbox mode a controller may ask for (`SEC-15`), in the order
    /// `read-only` < `workspace-write` < `danger-full-access`: a `command/exec`, thread or
    /// beyond it is refused with -32012, never run with another mode.
    /// Default `danger-full-access`: no cap.
    pub max_sandbox: SandboxMode,
    /// The most permissive approval policy a thread may have (`SEC-15`), in the order
    /// `untrusted` < `on-request` < `never` (each asks the user about fewer commands than
    /// the one before); beyond it, -32012. Default `never`: no cap.
    pub max_approval_policy: ApprovalPolicy,
    /// Paths no command may see or write (`SEC-22`, `SEC-23`): the host's state directory
    /// and the file it read its workspace credential from, as `tether host run` found them
    /// (canonical). A command whose writable roots would reach one of them is refused
    /// ([`crate::state::state_dir_exposed`]).
    pub secret_paths: Vec<std::path::PathBuf>,
    /// The agent of the host's threads ([`AgentBackend::Test`] by default).
    pub agent: AgentBackend,
}

/// How many times [`SandboxLauncher::probe`] runs a probe that failed to run.
const PROBE_ATTEMPTS: usize = 3;

/// A program providing `sandbox-exec` (the `tether` binary), and the modes its probe
/// showed enforced fully, measured from inside the sandbox.
#[derive(Clone, Debug)]
pub struct SandboxLauncher {
    /// The program; commands run as `PROGRAM sandbox-exec --mode M … -- COMMAND`.
    pub program: std::path::PathBuf,
    /// The modes enforced fully, with what enforces them.
    pub enforced: Vec<(SandboxMode, String)>,
    /// For each mode not enforced, what is missing (for the host's log).
    pub missing: Vec<(SandboxMode, String)>,
}

impl SandboxLauncher {
    /// Probes `program sandbox-exec --probe` for each restricted mode, hiding `hidden`,
    /// and keeps the modes whose every layer held (`CMD-45`, `CMD-62` … `CMD-69`): the
    /// probe runs the whole chain and reports what the innermost process saw.
    pub fn probe(program: std::path::PathBuf, hidden: &[std::path::PathBuf]) -> Self {
        let mut enforced = Vec::new();
        let mut missing = Vec::new();
        for mode in [SandboxMode::ReadOnly, SandboxMode::WorkspaceWrite] {
            let run = || {
                let mut c = std::process::Command::new(&program);
                c.args(["sandbox-exec", "--probe", "--mode", mode.as_str()]);
                // In `/`, not the host's own working directory: bubblewrap enters the
                // command's, and a host started from one its account cannot enter
                // (`sudo -u` from root's home) would otherwise find every layer missing and
                // refuse both modes for good.
                c.current_dir("/");
                for h in hidden {
                    c.arg("--hide").arg(h);
                }
                c.stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", program.display()))
                    .and_then(|out| {
                        if !out.status.success() {
                            return Err(format!(
                                "the probe failed ({}): {}",
                                out.status,
                                String::from_utf8_lossy(&out.stderr).trim()
                            ));
                        }
                        serde_json::from_slice::<tether_sandbox::Enforcement>(&out.stdout)
                            .map_err(|e| format!("the probe's report does not parse: {e}"))
                    })
            };
            // A probe that could not run, or whose sandbox did not start, is tried again
            // (three times in all): a busy machine (no process slot, memory) must not turn
            // into a host that runs every command of a mode degraded, or refuses it, for
            // its whole life. A probe that ran and measured a missing layer is final.
            let mut report = run();
            for _ in 1..PROBE_ATTEMPTS {
                let transient = match &report {
                    Err(_) => true,
                    Ok(e) => e.missing.iter().any(|m| m.contains("did not start")),
                };
                if !transient {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
                report = run();
            }
            match report {
                Ok(e) if e.is_complete() && e.requested == mode => {
                    enforced.push((mode, e.mechanism));
                }
                Ok(e) => missing.push((mode, e.missing.join("; "))),
                Err(why) => missing.push((mode, why)),
            }
        }
        Self {
            program,
            enforced,
            missing,
        }
    }

    fn mechanism(&self, mode: SandboxMode) -> Option<&str> {
        self.enforced
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, mech)| mech.as_str())
    }
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            allow_unsandboxed: false,
            default_sandbox: SandboxMode::WorkspaceWrite,
            sandbox: None,
            default_project: None,
            default_approval_policy: ApprovalPolicy::Untrusted,
            approval_timeout: tether_proto::limits::APPROVAL_TIMEOUT,
            trusted_commands: Vec::new(),
            temp_dir: None,
            max_sandbox: SandboxMode::DangerFullAccess,
            max_approval_policy: ApprovalPolicy::Never,
            secret_paths: Vec::new(),
            agent: AgentBackend::Test,
        }
    }
}

/// How permissive a sandbox mode is (`SEC-15`): `read-only` 0, `workspace-write` 1,
/// `danger-full-access` 2.
pub fn sandbox_rank(mode: SandboxMode) -> u8 {
    match mode {
        SandboxMode::ReadOnly => 0,
        SandboxMode::WorkspaceWrite => 1,
        SandboxMode::DangerFullAccess => 2,
    }
}

/// How permissive an approval policy is (`SEC-15`): how few of the agent's commands the
/// user is asked about (`CMD-27`), `untrusted` 0 to `never` 2.
pub fn approval_rank(policy: ApprovalPolicy) -> u8 {
    match policy {
        ApprovalPolicy::Untrusted => 0,
        ApprovalPolicy::OnRequest => 1,
        ApprovalPolicy::Never => 2,
    }
}

fn approval_str(policy: ApprovalPolicy) -> &'static str {
    match policy {
        ApprovalPolicy::Untrusted => "untrusted",
        ApprovalPolicy::OnRequest => "on-request",
        ApprovalPolicy::Never => "never",
    }
}

impl CommandConfig {
    /// The temporary directory commands get ([`CommandConfig::temp_dir`]).
    pub fn temp_dir(&self) -> std::path::PathBuf {
        self.temp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// A thread's sandbox `mode` in Codex's `SandboxPolicy` form (section 5.3): for
    /// `workspace-write`, writes under the project root of `cwd` and the temporary
    /// directory (`CMD-44`, `CMD-48`), no network. The `thread/start` result reports it,
    /// and a Codex turn is given the same (spec 5.14), so that both say one thing.
    pub fn thread_sandbox_policy(&self, mode: SandboxMode, cwd: &str) -> SandboxPolicy {
        let roots = vec![
            tether_sandbox::project_root(Path::new(cwd))
                .to_string_lossy()
                .into_owned(),
            self.temp_dir().to_string_lossy().into_owned(),
        ];
        SandboxPolicy::from_mode(mode, roots)
    }

    /// Whether a thread may have `policy` on this host (`SEC-15`).
    ///
    /// # Errors
    /// [`CommandError::SandboxDenied`] (-32012) for a policy beyond
    /// [`CommandConfig::max_approval_policy`].
    pub fn check_approval_policy(&self, policy: ApprovalPolicy) -> Result<(), CommandError> {
        // SEC-15
        if approval_rank(policy) > approval_rank(self.max_approval_policy) {
            return Err(CommandError::SandboxDenied {
                mode: format!(
                    "with approval policy {}, above this host's limit {} (SEC-15),",
                    approval_str(policy),
                    approval_str(self.max_approval_policy)
                ),
            });
        }
        Ok(())
    }

    /// The host's default working directory (`CMD-17`, `CMD-71`): the configured default
    /// project, else the host process's current directory; `None` when neither is known.
    pub fn default_dir(&self) -> Option<std::path::PathBuf> {
        self.default_project
            .clone()
            .or_else(|| std::env::current_dir().ok())
    }

    /// The working directory of a `command/exec` (`CMD-34`): `cwd` when given, which must
    /// be an absolute path of an existing directory; when absent, the host's default
    /// working directory (`CMD-71`), never the file-system root unless that is the
    /// configured default.
    ///
    /// # Errors
    /// [`CommandError::InvalidParams`] for a `cwd` that is not an absolute path of a
    /// directory, or when the host has no default working directory.
    pub fn exec_cwd(&self, cwd: Option<&str>) -> Result<std::path::PathBuf, CommandError> {
        let invalid = |detail: String| CommandError::InvalidParams {
            method: <CommandExecParams as Params>::METHOD.to_owned(),
            detail,
        };
        let path = match cwd {
            Some(c) => std::path::PathBuf::from(c),
            // CMD-71
            None => self.default_dir().ok_or_else(|| {
                invalid("no cwd given and the host has no default working directory".to_owned())
            })?,
        };
        // CMD-34
        if !path.is_absolute() || !path.is_dir() {
            return Err(invalid(format!(
                "cwd {:?} is not an absolute path of a directory",
                path.to_string_lossy()
            )));
        }
        Ok(path)
    }

    /// What the host enforces for `requested`, or `SandboxDenied` (`CMD-45`, `CMD-46`,
    /// `SEC-15`).
    ///
    /// # Errors
    /// [`CommandError::SandboxDenied`] for a mode beyond [`CommandConfig::max_sandbox`],
    /// or one this host cannot enforce when it is not configured to degrade.
    pub fn sandbox_for(&self, requested: SandboxMode) -> Result<SandboxReport, CommandError> {
        // SEC-15: beyond the operator's cap, refused; never narrowed or widened silently.
        if sandbox_rank(requested) > sandbox_rank(self.max_sandbox) {
            return Err(CommandError::SandboxDenied {
                mode: format!(
                    "{}, above this host's limit {} (SEC-15),",
                    requested.as_str(),
                    self.max_sandbox.as_str()
                ),
            });
        }
        match requested {
            // CMD-46: danger-full-access needs no enforcement.
            SandboxMode::DangerFullAccess => Ok(SandboxReport {
                requested,
                enforced: SandboxMode::DangerFullAccess,
                network: NetworkAccess::Allowed,
                degraded: false,
                mechanism: "none".to_owned(),
            }),
            // CMD-44, CMD-45: the kernel enforces this mode.
            _ if let Some(mechanism) =
                self.sandbox.as_ref().and_then(|s| s.mechanism(requested)) =>
            {
                Ok(SandboxReport {
                    requested,
                    enforced: requested,
                    network: NetworkAccess::Denied,
                    degraded: false,
                    mechanism: mechanism.to_owned(),
                })
            }
            _ if self.allow_unsandboxed => Ok(SandboxReport {
                requested,
                enforced: SandboxMode::DangerFullAccess,
                network: NetworkAccess::Allowed,
                degraded: true,
                mechanism: "none".to_owned(),
            }),
            _ => Err(CommandError::SandboxDenied {
                mode: requested.as_str().to_owned(),
            }),
        }
    }

    /// What enforces `requested` for the commands of a thread's turns: as
    /// [`CommandConfig::sandbox_for`] with the test agent; with [`AgentBackend::Codex`],
    /// Codex runs the agent's commands under its own sandbox, so a restricted mode is
    /// reported enforced by mechanism `"codex"`, network denied (spec 5.14). The cap
    /// (`SEC-15`) applies to both.
    ///
    /// # Errors
    /// As [`CommandConfig::sandbox_for`]; with Codex only for a mode beyond the cap.
    pub fn thread_sandbox_for(
        &self,
        requested: SandboxMode,
    ) -> Result<SandboxReport, CommandError> {
        if !matches!(self.agent, AgentBackend::Codex(_))
            || requested == SandboxMode::DangerFullAccess
        {
            return self.sandbox_for(requested);
        }
        if sandbox_rank(requested) > sandbox_rank(self.max_sandbox) {
            // SEC-15: the same refusal as sandbox_for's.
            return self.sandbox_for(requested);
        }
        Ok(SandboxReport {
            requested,
            enforced: requested,
            network: NetworkAccess::Denied,
            degraded: false,
            mechanism: "codex".to_owned(),
        })
    }

    /// A command running `program` with `args` in `cwd` under `enforced`, which
    /// [`CommandConfig::sandbox_for`] reported (`CMD-44`): through the `sandbox-exec`
    /// launcher for `read-only` and `workspace-write`, directly otherwise. `writable` is
    /// the directory `workspace-write` may write: `cwd` for `command/exec` (5.7), the
    /// thread's project root (`CMD-48`) for a turn. The host's secret paths are hidden
    /// from the command (`CMD-63`) and its credential is not in its environment
    /// (`SEC-23`). The caller sets up stdio and the process group.
    ///
    /// # Errors
    /// `InvalidParams` when, under `workspace-write`, `writable` or `cwd` would let the
    /// command reach one of the host's secret paths (`SEC-22`).
    pub fn sandboxed_command(
        &self,
        enforced: SandboxMode,
        program: &str,
        args: &[String],
        cwd: &Path,
        writable: &Path,
    ) -> Result<tokio::process::Command, CommandError> {
        // SEC-22: a writable root never reaches the host's secrets. (Under `read-only` the
        // view hides them wherever `cwd` is, CMD-63; `danger-full-access` reaches
        // everything the host user can by definition.)
        let roots = [writable.to_path_buf(), cwd.to_path_buf()];
        if enforced == SandboxMode::WorkspaceWrite
            && let Some(secret) = self
                .secret_paths
                .iter()
                .find(|s| crate::state::state_dir_exposed(s, &roots))
        {
            return Err(CommandError::InvalidParams {
                method: <CommandExecParams as Params>::METHOD.to_owned(),
                detail: format!(
                    "the working directory {} is inside or around the host's state {}, which commands may not reach (SEC-22)",
                    cwd.display(),
                    secret.display()
                ),
            });
        }
        let mut c = match (&self.sandbox, enforced) {
            (Some(launcher), SandboxMode::ReadOnly | SandboxMode::WorkspaceWrite) => {
                // CMD-44, CMD-62: the launcher builds the namespaces and the view, the
                // inner stage restricts itself, then starts the program.
                let mut c = tokio::process::Command::new(&launcher.program);
                c.args(["sandbox-exec", "--mode", enforced.as_str()]);
                if enforced == SandboxMode::WorkspaceWrite {
                    c.arg("--writable").arg(writable);
                }
                // CMD-63
                for secret in &self.secret_paths {
                    c.arg("--hide").arg(secret);
                }
                c.arg("--").arg(program).args(args);
                c
            }
            _ => {
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                if let Some(dir) = &self.temp_dir {
                    c.env("TMPDIR", dir);
                }
                c
            }
        };
        // SEC-23
        c.env_remove(crate::state::CREDENTIAL_ENV);
        Ok(c)
    }

    /// The `initialize` result of a host that serves `command/exec` only (`CMD-15`,
    /// `CMD-16`, `CMD-45`).
    pub fn initialize_result(&self) -> InitializeResult {
        self.initialize_result_for(false)
    }

    /// The `tether/host/info` result (`CMD-77`): the defaults this configuration applies
    /// when a request names none, and its limits (`SEC-15`). Paths that are not UTF-8
    /// are reported as `null`.
    pub fn host_info(&self) -> HostInfoResult {
        let text = |p: std::path::PathBuf| p.to_str().map(str::to_owned);
        HostInfoResult {
            home: std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .filter(|p| p.is_absolute())
                .and_then(text),
            // As a thread/start without cwd gets it (CMD-17): symlinks resolved.
            default_cwd: self
                .default_dir()
                .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
                .and_then(text),
            default_sandbox: self.default_sandbox,
            max_sandbox: self.max_sandbox,
            default_approval_policy: self.default_approval_policy,
            max_approval_policy: self.max_approval_policy,
        }
    }

    /// The command-protocol capabilities this configuration offers (the registry's names
    /// listed in both message 2 and the `initialize` result, `CMD-16`); `threads`: the
    /// host also serves threads with the test agent and hand-off. The one list both are
    /// built from.
    pub fn capabilities(&self, threads: bool) -> Vec<String> {
        let mut capabilities = vec![capability::COMMAND_EXEC.to_owned()];
        if threads {
            // Spec 5.14: a host whose agent is Codex does not list `agent.test`.
            if matches!(self.agent, AgentBackend::Test) {
                capabilities.push(capability::AGENT_TEST.to_owned());
            }
            capabilities.push(capability::THREAD_HANDOFF.to_owned());
        }
        if self.enforces_with_landlock() {
            capabilities.push(capability::SANDBOX_LANDLOCK.to_owned());
        }
        capabilities
    }

    /// Whether Landlock is among the mechanisms that enforce a sandbox mode here: the
    /// capability `sandbox.landlock`, listed in message 2 and in the `initialize` result
    /// alike (`CMD-16`, chapter 6).
    fn enforces_with_landlock(&self) -> bool {
        self.sandbox.iter().any(|s| {
            s.enforced
                .iter()
                .any(|(_, mechanism)| mechanism.split('+').any(|m| m == "landlock"))
        })
    }

    /// The `initialize` result; `threads`: the host also serves threads with the test
    /// agent and hand-off (`agent.test`, `thread.handoff`, `CMD-16`, `CMD-59`).
    pub fn initialize_result_for(&self, threads: bool) -> InitializeResult {
        let version = env!("CARGO_PKG_VERSION");
        InitializeResult {
            user_agent: format!(
                "tether-host/{version} ({}; {})",
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
            codex_home: self.agent_home(),
            platform_family: if cfg!(windows) { "windows" } else { "unix" }.to_owned(),
            platform_os: std::env::consts::OS.to_owned(),
            tether: TetherInitializeResult {
                server_info: Implementation {
                    name: "tether-host".to_owned(),
                    version: version.to_owned(),
                },
                protocol_version: PROTOCOL_NAME.to_owned(),
                capabilities: self.capabilities(threads),
                sandbox: {
                    let mut modes: Vec<SandboxMode> = self
                        .sandbox
                        .iter()
                        .flat_map(|s| s.enforced.iter().map(|(m, _)| *m))
                        .collect();
                    modes.push(SandboxMode::DangerFullAccess);
                    let mechanism = self
                        .sandbox
                        .as_ref()
                        .and_then(|s| s.enforced.first())
                        .map_or("none", |(_, m)| m.as_str())
                        .to_owned();
                    SandboxSupport {
                        modes,
                        mechanism,
                        degrade: self.allow_unsandboxed,
                    }
                },
                platform: Platform {
                    os: std::env::consts::OS.to_owned(),
                    arch: std::env::consts::ARCH.to_owned(),
                    path_style: PathStyle::Posix,
                },
            },
        }
    }

    /// The agent's home, the `codexHome` of the `initialize` result: for the test agent
    /// the host's state directory (the first of [`Self::secret_paths`]), else the default
    /// working directory, else `/`; absolute and host-native.
    fn agent_home(&self) -> String {
        self.secret_paths
            .first()
            .cloned()
            .or_else(|| self.default_dir())
            .and_then(|p| p.to_str().map(str::to_owned))
            .filter(|p| Path::new(p).is_absolute())
            .unwrap_or_else(|| "/".to_owned())
    }
}

/// Chunks of one process's output the host holds unsent at most (`CMD-74`): 8 chunks of
/// at most 16 KiB (`CMD-40`), 128 KiB. While they wait, the process's pipes are not read,
/// so the process waits in `write(2)`; nothing is dropped.
pub const EXEC_OUTPUT_CREDIT: usize = 8;

/// One chunk's share of its process's output budget (`CMD-74`): the process may read
/// another chunk once this is dropped, which the runtime does when it has handed the
/// chunk to the session (or dropped it with a session that is gone).
#[derive(Debug)]
pub struct OutputCredit {
    _permit: OwnedSemaphorePermit,
}

/// What a running process reports to the runtime.
#[derive(Debug)]
pub enum ExecEvent {
    /// A `command/exec/outputDelta` notification to send.
    Output {
        /// The session.
        session: SessionId,
        /// The notification.
        message: Message,
        /// Held until the notification is sent (`CMD-74`).
        credit: OutputCredit,
    },
    /// A chunk of output for `OUTPUT` records (`CMD-76`: the session carries records).
    Chunk {
        /// The session.
        session: SessionId,
        /// The process id.
        process_id: String,
        /// Standard error (else standard output).
        stderr: bool,
        /// The chunk reaches the output cap (`CMD-41`).
        cap_reached: bool,
        /// The bytes.
        data: Vec<u8>,
        /// Held until the chunk is sent (`CMD-74`).
        credit: OutputCredit,
    },
    /// The process ended: its `command/exec` answer, the last message of the process.
    Finished {
        /// The session.
        session: SessionId,
        /// The process id.
        process_id: String,
        /// The response or error response.
        message: Message,
    },
}

/// Why the runtime asks a process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KillReason {
    /// Keep running.
    Running,
    /// `command/exec/terminate`, or the turn was interrupted.
    Terminate,
    /// `tether/cancelled` (`CMD-57`).
    Cancel,
}

/// A running `command/exec` process of a session: what the dispatcher needs to stop it.
pub(crate) struct ProcessHandle {
    /// The `command/exec` request it answers (`CMD-57`).
    pub(crate) request_id: Id,
    /// Its process group; `None` once its answer was sent.
    pub(crate) pid: Option<u32>,
    /// Asks its task to kill it (`CMD-37`, `CMD-38`, `CMD-57`).
    pub(crate) kill: watch::Sender<KillReason>,
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        // CMD-37: a process whose session ends is killed with its whole group. The task
        // also sees the closed channel, but the runtime may be shutting down.
        if let Some(pid) = self.pid.take() {
            kill_group(pid);
        }
    }
}

/// `SIGKILL` to the process group `pid` leads (`CMD-37`). Errors (the group is gone) are
/// ignored.
pub fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Where a process reports: its session, the runtime's channel, and whether the session
/// carries records (`CMD-76`).
#[derive(Clone, Copy)]
pub(crate) struct Reporting<'a> {
    pub(crate) session: SessionId,
    pub(crate) events: &'a mpsc::UnboundedSender<ExecEvent>,
    pub(crate) records: bool,
}

/// Starts a `command/exec` whose checks passed (`CMD-34`, `CMD-46`, `CMD-47`): its
/// command, in `cwd`, under the sandbox of `report` (5.7: under `workspace-write` it
/// writes inside `cwd`), in its own process group, and the task that answers it on
/// `events` (`CMD-35` … `CMD-42`, `CMD-74`). With `streamStdoutStderr` the task streams
/// the output as `OUTPUT` records when `records` (`CMD-76`), else as
/// `command/exec/outputDelta` notifications, naming the process `process_id`; without
/// it, the output goes in the result. The handle kills the group when dropped
/// (`CMD-37`).
///
/// # Errors
/// The error to answer with: an empty command (`CMD-13`), a sandbox that cannot be set
/// up, a program that cannot be started.
pub(crate) fn start(
    config: &CommandConfig,
    to: Reporting<'_>,
    id: Id,
    params: &CommandExecParams,
    process_id: String,
    cwd: &Path,
    report: SandboxReport,
) -> Result<ProcessHandle, CommandError> {
    let Reporting {
        session,
        events,
        records,
    } = to;
    let Some((program, args)) = params.command.split_first() else {
        // CMD-13: `from_request` already refused an empty command.
        return Err(CommandError::InvalidParams {
            method: <CommandExecParams as Params>::METHOD.to_owned(),
            detail: "command must have at least one element".to_owned(),
        });
    };
    // 5.7: `command/exec` under workspace-write writes inside `cwd`.
    let mut command = config.sandboxed_command(report.enforced, program, args, cwd, cwd)?;
    command
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0) // CMD-34: its own process group
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| CommandError::Internal {
        detail: format!("cannot start {program:?}: {e}"),
    })?;
    let pid = child.id();
    let (kill, kill_rx) = watch::channel(KillReason::Running);
    let job = Job {
        session,
        request_id: id.clone(),
        process_id,
        stream: params.stream_stdout_stderr,
        cap: params.effective_output_cap(),
        timeout: Duration::from_millis(params.effective_timeout_ms()),
        report,
        events: events.clone(),
        records,
    };
    tokio::spawn(job.run(child, pid, kill_rx));
    Ok(ProcessHandle {
        request_id: id,
        pid,
        kill,
    })
}

struct Job {
    session: SessionId,
    request_id: Id,
    process_id: String,
    /// `streamStdoutStderr`: output as deltas or records, else in the result (`CMD-35`).
    stream: bool,
    cap: u64,
    timeout: Duration,
    report: SandboxReport,
    events: mpsc::UnboundedSender<ExecEvent>,
    records: bool,
}

impl Job {
    /// Sends one chunk as a `command/exec/outputDelta` (`CMD-35`), with its share of the
    /// process's output budget (`CMD-74`).
    fn send_delta(
        &self,
        stream: OutputStream,
        chunk: &[u8],
        cap_reached: bool,
        credit: OwnedSemaphorePermit,
    ) {
        if self.records {
            // CMD-76: raw bytes in OUTPUT records.
            let _ = self.events.send(ExecEvent::Chunk {
                session: self.session,
                process_id: self.process_id.clone(),
                stderr: stream == OutputStream::Stderr,
                cap_reached,
                data: chunk.to_vec(),
                credit: OutputCredit { _permit: credit },
            });
            return;
        }
        let delta = CommandExecOutputDeltaParams {
            process_id: self.process_id.clone(),
            stream,
            delta_base64: encode_delta(chunk),
            cap_reached,
        };
        let message = Message::Notification(
            ServerNotification::CommandExecOutputDelta(delta).to_notification(),
        );
        let _ = self.events.send(ExecEvent::Output {
            session: self.session,
            message,
            credit: OutputCredit { _permit: credit },
        });
    }

    async fn run(
        self,
        child: tokio::process::Child,
        pid: Option<u32>,
        kill_rx: watch::Receiver<KillReason>,
    ) {
        // CMD-74: at most EXEC_OUTPUT_CREDIT chunks of this process wait unsent.
        let credit = Arc::new(Semaphore::new(EXEC_OUTPUT_CREDIT));
        let chunk = if self.records {
            // CMD-76: what one OUTPUT record carries for this process id (just under a
            // pipe's 64 KiB), so that a full read travels as one record, not two.
            tether_proto::channel::records::max_output_per_record(self.process_id.len())
        } else {
            MAX_OUTPUT_CHUNK
        };
        // CMD-35: without streamStdoutStderr the output (at most the buffered cap,
        // CMD-43) is kept for the result.
        let mut kept: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let outcome = supervise_with_credit(
            child,
            pid,
            self.cap,
            self.timeout,
            kill_rx,
            self.stream.then_some((credit, chunk)),
            |s, c, r, permit| {
                if !self.stream {
                    let i = usize::from(s == OutputStream::Stderr);
                    if let Some(buf) = kept.get_mut(i) {
                        buf.extend_from_slice(c);
                    }
                } else if let Some(permit) = permit {
                    self.send_delta(s, c, r, permit);
                }
            },
        )
        .await;
        let [stdout, stderr] = kept;
        let message = match outcome.status {
            Some(Ok(status)) if outcome.cancelled && status.code().is_none() => {
                error(self.request_id.clone(), &CommandError::Cancelled)
            }
            Some(Ok(status)) => {
                use std::os::unix::process::ExitStatusExt;
                // CMD-39
                let timed_out = outcome.timed_out && status.code().is_none();
                let result = CommandExecResult {
                    exit_code: codex_exit_code(status.code(), status.signal(), timed_out),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                    tether: CommandExecReport {
                        exit_code: status.code(),
                        signal: status.signal().map(signal_name),
                        timed_out,
                        cap_reached: outcome.cap_reached,
                        sandbox: self.report.clone(),
                    },
                };
                response(self.request_id.clone(), &result)
            }
            Some(Err(e)) => error(
                self.request_id.clone(),
                &CommandError::Internal {
                    detail: format!("waiting for the process: {e}"),
                },
            ),
            None => error(
                self.request_id.clone(),
                &CommandError::Internal {
                    detail: "process state lost".to_owned(),
                },
            ),
        };
        let _ = self.events.send(ExecEvent::Finished {
            session: self.session,
            process_id: self.process_id,
            message,
        });
    }
}

/// The `exitCode` of a `command/exec` result as Codex reports it (`CMD-39`): 124 when
/// the time limit ended the process, else its exit status, else 128 + the signal number.
pub(crate) fn codex_exit_code(code: Option<i32>, signal: Option<i32>, timed_out: bool) -> i32 {
    match (timed_out, code, signal) {
        (true, _, _) => 124,
        (false, Some(code), _) => code,
        (false, None, Some(signal)) => 128 + signal,
        (false, None, None) => 1,
    }
}

/// How a supervised process ended.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    /// Its exit status (`None` only if it was lost).
    pub status: Option<std::io::Result<ExitStatus>>,
    /// The time limit killed it (`CMD-42`).
    pub timed_out: bool,
    /// The output cap was reached (`CMD-41`).
    pub cap_reached: bool,
    /// A cancellation killed it (`CMD-57`).
    pub cancelled: bool,
}

/// Applies the output cap to one chunk read (`CMD-41`): the part to forward and whether
/// it reaches the cap; `None` when nothing is to be sent.
fn capped<'a>(total: &mut u64, cap: u64, data: &'a [u8]) -> Option<(&'a [u8], bool)> {
    if data.is_empty() {
        return None;
    }
    let room = cap.saturating_sub(*total);
    let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let (chunk, reached) = if len > room {
        // CMD-41: exactly the first `cap` bytes; capReached on this chunk (empty when the
        // cap fell on a chunk boundary, CMD-40).
        let n = usize::try_from(room).unwrap_or(usize::MAX);
        (data.get(..n).unwrap_or(data), true)
    } else {
        (data, false)
    };
    *total += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
    Some((chunk, reached))
}

/// Runs a spawned process (its own group, `pid`) to its end: forwards its output in
/// chunks of at most 16 KiB (`CMD-40`) to `on_chunk` (stream, chunk, capReached) up to
/// `cap` bytes (`CMD-41`), and kills the whole group (`CMD-37`) when the cap is reached,
/// when `timeout` passes (`CMD-42`), when `kill_rx` changes or its sender is dropped, and
/// when the direct child exits (what it left running in its group does not outlive it).
pub(crate) async fn supervise(
    child: tokio::process::Child,
    pid: Option<u32>,
    cap: u64,
    timeout: Duration,
    kill_rx: watch::Receiver<KillReason>,
    mut on_chunk: impl FnMut(OutputStream, &[u8], bool),
) -> RunOutcome {
    supervise_with_credit(child, pid, cap, timeout, kill_rx, None, |s, c, r, _| {
        on_chunk(s, c, r);
    })
    .await
}

/// [`supervise`], with backpressure (`CMD-74`): with `credit` (a semaphore and the chunk
/// size to read, at most 16 KiB for deltas, `CMD-40`), a chunk is read from the pipes only
/// once a permit of the semaphore is in hand, and `on_chunk` gets the permit with
/// the chunk, to hold until the chunk is sent. While every permit is out, the pipes are
/// not read and the process waits in `write(2)`; the time limit, kills and the cap still
/// apply (`CMD-37`, `CMD-41`, `CMD-42`). Output past the cap is read and dropped without
/// permits, to drain the pipes.
pub(crate) async fn supervise_with_credit(
    mut child: tokio::process::Child,
    pid: Option<u32>,
    cap: u64,
    timeout: Duration,
    mut kill_rx: watch::Receiver<KillReason>,
    credit: Option<(Arc<Semaphore>, usize)>,
    mut on_chunk: impl FnMut(OutputStream, &[u8], bool, Option<OwnedSemaphorePermit>),
) -> RunOutcome {
    let (credit, chunk_len) = match credit {
        Some((c, len)) => (Some(c), len.max(1)),
        None => (None, MAX_OUTPUT_CHUNK),
    };
    let kill = || {
        if let Some(pid) = pid {
            kill_group(pid);
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut obuf = vec![0u8; chunk_len];
    let mut ebuf = vec![0u8; chunk_len];
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut total = 0u64;
    let mut cap_reached = false;
    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let mut killed = false;
    let mut timed_out = false;
    let mut cancelled = false;
    // CMD-74: the permit the next chunk will travel with.
    let mut permit: Option<OwnedSemaphorePermit> = None;
    // A kill asked for before the process was even supervised.
    if *kill_rx.borrow_and_update() != KillReason::Running {
        cancelled = *kill_rx.borrow() == KillReason::Cancel;
        killed = true;
        kill();
    }
    loop {
        if status.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        let wants_credit = credit.is_some() && permit.is_none() && !cap_reached;
        let read = tokio::select! {
            p = take_credit(credit.as_ref()), if wants_credit => {
                permit = p;
                None
            }
            n = read_some(&mut stdout, &mut obuf), if !wants_credit => match n {
                Some(n) if n > 0 => Some((OutputStream::Stdout, n)),
                _ => { stdout = None; None }
            },
            n = read_some(&mut stderr, &mut ebuf), if !wants_credit => match n {
                Some(n) if n > 0 => Some((OutputStream::Stderr, n)),
                _ => { stderr = None; None }
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                // The direct child is gone: what it left running in its group does not
                // outlive it, and cannot hold the output pipes open.
                kill();
                None
            }
            () = &mut deadline, if !killed && status.is_none() => {
                // CMD-42
                timed_out = true;
                killed = true;
                kill();
                None
            }
            changed = kill_rx.changed(), if !killed => {
                // CMD-37: terminate, cancel (CMD-57), an interrupted turn, or the owner
                // is gone (the sender was dropped).
                if changed.is_ok() && *kill_rx.borrow() == KillReason::Cancel {
                    cancelled = true;
                }
                killed = true;
                kill();
                None
            }
        };
        let Some((stream, n)) = read else { continue };
        if cap_reached {
            continue;
        }
        let buf = match stream {
            OutputStream::Stdout => &obuf,
            OutputStream::Stderr => &ebuf,
        };
        let data = buf.get(..n).unwrap_or_default();
        if let Some((chunk, reached)) = capped(&mut total, cap, data) {
            on_chunk(stream, chunk, reached, permit.take());
            if reached {
                cap_reached = true;
                if !killed {
                    killed = true;
                    kill();
                }
            }
        }
    }
    RunOutcome {
        status,
        timed_out,
        cap_reached,
        cancelled,
    }
}

/// A permit of `credit` (`CMD-74`); pends forever without one (the semaphore is never
/// closed).
async fn take_credit(credit: Option<&Arc<Semaphore>>) -> Option<OwnedSemaphorePermit> {
    match credit {
        Some(c) => match Arc::clone(c).acquire_owned().await {
            Ok(p) => Some(p),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Reads from an optional pipe; pends forever once it is `None` (closed).
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        Some(p) => p.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}

/// The name of a POSIX signal (`CMD-39`): `"SIGKILL"`, or `"SIG<n>"` for one without a
/// name here.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("SIG{signal}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(200), "SIG200");
    }

    /// A launcher whose probe fails the first `fail_first` times it runs (a busy machine),
    /// then reports every layer held.
    fn flaky_launcher(dir: &Path, fail_first: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let count = dir.join("runs");
        let script = dir.join("launcher");
        let report = r#"{"requested":"%s","filesystem":true,"network":"denied","landlockAbi":7,"namespaces":true,"privilegesDropped":true,"noTerminal":true,"processLimit":{"max":1024,"by":"rlimit"},"mechanism":"bubblewrap+landlock+seccomp","missing":[]}"#;
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
                 [ $n -le {fail_first} ] && exit 137\nprintf '{report}\\n' \"$4\"\n",
                c = count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn cmd_45_a_probe_that_failed_to_run_is_tried_again() {
        // Killed once (as on a machine out of process slots), then fine: both modes are
        // enforced, nothing is degraded for the host's whole life.
        let dir = tempfile::tempdir().unwrap();
        let launcher = SandboxLauncher::probe(flaky_launcher(dir.path(), 1), &[]);
        assert_eq!(
            launcher
                .enforced
                .iter()
                .map(|(m, _)| *m)
                .collect::<Vec<_>>(),
            [SandboxMode::ReadOnly, SandboxMode::WorkspaceWrite],
            "{launcher:?}"
        );
        assert!(launcher.missing.is_empty(), "{launcher:?}");
        // Always killed: each mode is missing, with the reason, after three attempts.
        let dir = tempfile::tempdir().unwrap();
        let launcher = SandboxLauncher::probe(flaky_launcher(dir.path(), 1000), &[]);
        assert!(launcher.enforced.is_empty(), "{launcher:?}");
        assert_eq!(launcher.missing.len(), 2, "{launcher:?}");
        assert!(
            launcher.missing[0].1.contains("the probe failed"),
            "{launcher:?}"
        );
        let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
        assert_eq!(runs.trim(), (2 * PROBE_ATTEMPTS).to_string());
    }
}
