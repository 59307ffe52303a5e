//! The command protocol of one session, host side (`spec/05-command-protocol.md`):
//! `initialize`, `initialized`, `command/exec` with streamed `command/exec/outputDelta`,
//! `command/exec/terminate` and `notifications/cancelled`.
//!
//! A [`CommandSession`] takes the session's decrypted messages ([`CommandSession::handle`])
//! and returns the answers to send at once. A `command/exec` runs in a tokio task that
//! reports its deltas and its final answer as [`ExecEvent`]s on a channel the runtime
//! drains; the answer is the last event of its process (`CMD-36`).
//!
//! Requests are checked in the order of `CMD-61`: remote access and authorization
//! (`CMD-55`, `CMD-56`), the in-flight limit (`CMD-58`), initialization (`CMD-15`), the
//! method (`CMD-12`, `CMD-16`), the params (`CMD-13`, `CMD-43`), then the method's rules.
//!
//! Sandboxing (`CMD-44` … `CMD-47`): when the host knows a `sandbox-exec` launcher
//! ([`CommandConfig::sandbox`], the `tether` binary itself) whose probe showed that the
//! kernel fully enforces a mode, commands of that mode run under it (Landlock and seccomp,
//! see `tether-sandbox`) and are reported as enforced. A mode that is not enforced is
//! refused with -32012 (`CMD-46`) unless the host was started with `--allow-unsandboxed`;
//! then it runs unsandboxed and is reported `degraded: true`.

use std::collections::HashMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tether_proto::cmd::methods::{
    CommandExecOutputDeltaParams, CommandExecParams, CommandExecResult, CommandExecTerminateParams,
    EmptyResult, InitializeParams, InitializeResult, encode_delta,
};
use tether_proto::cmd::types::{
    ApprovalPolicy, Implementation, NetworkAccess, OutputStream, PathStyle, Platform, SandboxMode,
    SandboxReport, SandboxSupport,
};
use tether_proto::cmd::{
    ClientNotification, ClientRequest, CommandError, ErrorResponse, Id, MAX_IN_FLIGHT_REQUESTS,
    Message, PROTOCOL_NAME, Params, Request, Response, ServerNotification, capability,
};
use tether_proto::limits::MAX_OUTPUT_CHUNK;
use tether_proto::link::{CloseCode, SessionId};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::state::Access;
use crate::threads::ThreadManager;

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
    /// root of a `thread/import` that names none (`CMD-17`, `CMD-54`); `None`: the host
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
    /// approved re-run beyond it is refused with -32012, never run with another mode.
    /// Default `danger-full-access`: no cap.
    pub max_sandbox: SandboxMode,
    /// The most permissive approval policy a thread may have (`SEC-15`), in the order
    /// `untrusted` < `on-failure` < `on-request` < `never` (each asks the user about fewer
    /// commands than the one before); beyond it, -32012. Default `never`: no cap.
    pub max_approval_policy: ApprovalPolicy,
    /// Paths no command may see or write (`SEC-22`, `SEC-23`): the host's state directory
    /// and the file it read its workspace credential from, as `tether host run` found them
    /// (canonical). A command whose writable roots would reach one of them is refused
    /// ([`crate::state::state_dir_exposed`]).
    pub secret_paths: Vec<std::path::PathBuf>,
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
/// user is asked about (`CMD-27`), `untrusted` 0 to `never` 3.
pub fn approval_rank(policy: ApprovalPolicy) -> u8 {
    match policy {
        ApprovalPolicy::Untrusted => 0,
        ApprovalPolicy::OnFailure => 1,
        ApprovalPolicy::OnRequest => 2,
        ApprovalPolicy::Never => 3,
    }
}

fn approval_str(policy: ApprovalPolicy) -> &'static str {
    match policy {
        ApprovalPolicy::Untrusted => "untrusted",
        ApprovalPolicy::OnFailure => "on-failure",
        ApprovalPolicy::OnRequest => "on-request",
        ApprovalPolicy::Never => "never",
    }
}

impl CommandConfig {
    /// The temporary directory commands get ([`CommandConfig::temp_dir`]).
    pub fn temp_dir(&self) -> std::path::PathBuf {
        self.temp_dir.clone().unwrap_or_else(std::env::temp_dir)
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

    /// The `initialize` result; `threads`: the host also serves threads with the test
    /// agent and hand-off (`agent.test`, `thread.handoff`, `CMD-16`, `CMD-59`).
    pub fn initialize_result_for(&self, threads: bool) -> InitializeResult {
        let mut capabilities = vec![capability::COMMAND_EXEC.to_owned()];
        if threads {
            capabilities.push(capability::AGENT_TEST.to_owned());
            capabilities.push(capability::THREAD_HANDOFF.to_owned());
        }
        InitializeResult {
            server_info: Implementation {
                name: "tether-host".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            protocol_version: PROTOCOL_NAME.to_owned(),
            capabilities,
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
        }
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
    /// `notifications/cancelled` (`CMD-57`).
    Cancel,
}

struct ProcessHandle {
    request_id: Id,
    pid: Option<u32>,
    kill: watch::Sender<KillReason>,
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

/// The result of [`CommandSession::handle`].
#[derive(Debug, Default)]
pub struct Reply {
    /// Messages to send now, in order.
    pub messages: Vec<Message>,
    /// Close the session with this code after sending them (`CMD-55`, `CMD-56`).
    pub close: Option<CloseCode>,
}

/// The command-protocol state of one session.
pub struct CommandSession {
    session: SessionId,
    config: Arc<CommandConfig>,
    initialized: bool,
    processes: HashMap<String, ProcessHandle>,
    events: mpsc::UnboundedSender<ExecEvent>,
}

impl std::fmt::Debug for CommandSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSession")
            .field("session", &self.session)
            .field("initialized", &self.initialized)
            .field("processes", &self.processes.len())
            .finish()
    }
}

fn error(id: Id, e: &CommandError) -> Message {
    Message::Error(ErrorResponse::new(Some(id), e))
}

fn response<R: serde::Serialize>(id: Id, result: &R) -> Message {
    match Response::new(id.clone(), result) {
        Ok(r) => Message::Response(r),
        Err(e) => error(id, &e), // CMD-60
    }
}

/// The answer to a thread method, fitted to one transport message (`CMD-2`): long command
/// outputs are cut ([`crate::threads::fit`]); a result that still does not fit is
/// answered with `Internal` (`CMD-60`).
pub(crate) fn answer<R: serde::Serialize>(id: Id, result: Result<R, CommandError>) -> Message {
    let message = match result {
        Ok(r) => crate::threads::fit(response(id.clone(), &r)),
        Err(e) => return error(id, &e),
    };
    let len = message.to_bytes().len();
    if len > tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN {
        return error(
            id,
            &CommandError::Internal {
                detail: format!("the result takes {len} bytes, more than one message carries"),
            },
        );
    }
    message
}

/// A thread method that opens a thread (`CMD-72`): an error now, or the answer later
/// through the manager's outbox.
fn open_later(
    threads: &mut ThreadManager,
    id: Id,
    opening: Result<crate::threads::Opening, CommandError>,
) -> Reply {
    match opening {
        Ok(opening) => {
            threads.open_later(id, opening);
            Reply::default()
        }
        Err(e) => Reply {
            messages: vec![error(id, &e)],
            close: None,
        },
    }
}

impl CommandSession {
    /// A session that has not seen `initialize` yet. Its processes report on `events`.
    pub fn new(
        session: SessionId,
        config: Arc<CommandConfig>,
        events: mpsc::UnboundedSender<ExecEvent>,
    ) -> Self {
        Self {
            session,
            config,
            initialized: false,
            processes: HashMap::new(),
            events,
        }
    }

    /// Requests received and not yet answered (`CMD-58`).
    pub fn in_flight(&self) -> usize {
        self.processes.len()
    }

    /// Whether `initialize` succeeded.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Handles one message of the controller on a host that serves `command/exec` only
    /// (thread methods are not found, `CMD-16`). See [`CommandSession::handle_with`].
    pub fn handle(&mut self, message: Message, access: Access) -> Reply {
        self.handle_with(message, access, None)
    }

    /// Handles one message of the controller. `access` is whether the device may still
    /// use the session (`CMD-55`, `CMD-56`), checked by the caller against the store when
    /// the message arrived, whatever its kind (`CMD-75`): a refused device's requests are
    /// answered with the error and its responses (approval answers included) ignored, and
    /// the session is to be closed ([`Reply::close`]); its notifications are ignored
    /// (`CMD-55`), and the next request or the re-check of open sessions (`SEC-13`)
    /// closes it.
    /// With `threads`, the host also serves the thread, turn and hand-off methods and takes
    /// the controller's answers to approval requests (`CMD-30`); what the manager queues
    /// for other sessions (and for this one, after the reply) is in its outbox
    /// ([`ThreadManager::poll_outgoing`]), to be sent after [`Reply::messages`].
    /// Must be called inside a tokio runtime (a `command/exec` or a turn spawns a task).
    pub fn handle_with(
        &mut self,
        message: Message,
        access: Access,
        threads: Option<&mut ThreadManager>,
    ) -> Reply {
        let refused = match access {
            Access::Allowed => None,
            Access::RemoteAccessDisabled => Some(CloseCode::REMOTE_ACCESS_DISABLED),
            Access::NotAuthorized => Some(CloseCode::NOT_AUTHORIZED),
        };
        match message {
            Message::Request(request) => self.handle_request(request, access, threads),
            // CMD-75: a response of a refused device is ignored — an approval answer
            // included: the command it would accept does not run — and the session is
            // closed as for a request (CMD-55, CMD-56).
            Message::Response(_) | Message::Error(_) if refused.is_some() => Reply {
                messages: Vec::new(),
                close: refused,
            },
            Message::Notification(n) => {
                // CMD-55, CMD-56, CMD-75: notifications of a refused device are ignored;
                // CMD-15: so are notifications before initialize.
                if refused.is_none() && self.initialized {
                    match ClientNotification::from_notification(&n) {
                        Ok(ClientNotification::Cancelled(p)) => self.cancel(&p.request_id),
                        // CMD-15: the controller is ready for the host's requests and
                        // notifications.
                        Ok(ClientNotification::Initialized(_)) => {
                            if let Some(threads) = threads {
                                threads.session_ready(self.session);
                            }
                        }
                        // CMD-12, CMD-13: unknown or malformed notifications are ignored.
                        Err(_) => {}
                    }
                }
                Reply::default()
            }
            // CMD-30, CMD-32: answers to approval requests; CMD-14: any other response is
            // ignored.
            response @ (Message::Response(_) | Message::Error(_)) => {
                if let Some(threads) = threads {
                    threads.handle_response(self.session, response);
                }
                Reply::default()
            }
        }
    }

    fn handle_request(
        &mut self,
        request: Request,
        access: Access,
        threads: Option<&mut ThreadManager>,
    ) -> Reply {
        let id = request.id.clone();
        // CMD-61 order. CMD-55, CMD-56:
        let refusal = match access {
            Access::Allowed => None,
            Access::RemoteAccessDisabled => Some((
                CommandError::RemoteAccessDisabled,
                CloseCode::REMOTE_ACCESS_DISABLED,
            )),
            Access::NotAuthorized => Some((CommandError::NotAuthorized, CloseCode::NOT_AUTHORIZED)),
        };
        if let Some((e, code)) = refusal {
            return Reply {
                messages: vec![error(id, &e)],
                close: Some(code),
            };
        }
        let one = |m| Reply {
            messages: vec![m],
            close: None,
        };
        // CMD-58: running processes and deferred `turn/interrupt` answers.
        let deferred = threads.as_deref().map_or(0, |t| t.in_flight(self.session));
        if self.in_flight() + deferred >= MAX_IN_FLIGHT_REQUESTS {
            return one(error(id, &CommandError::Overloaded));
        }
        // CMD-15
        if !self.initialized && request.method != <InitializeParams as Params>::METHOD {
            return one(error(id, &CommandError::NotInitialized));
        }
        // CMD-12, CMD-16: methods this host does not offer are not found, before their
        // params are looked at.
        let served = SERVED_METHODS.contains(&request.method.as_str())
            || (threads.is_some() && THREAD_METHODS.contains(&request.method.as_str()));
        if !served {
            return one(error(
                id,
                &CommandError::MethodNotFound {
                    method: request.method.clone(),
                },
            ));
        }
        // CMD-13, CMD-43, CMD-53
        let parsed = match ClientRequest::from_request(&request) {
            Ok(p) => p,
            Err(e) => return one(error(id, &e)),
        };
        let session = self.session;
        match (parsed, threads) {
            (ClientRequest::Initialize(p), t) => one(self.initialize(id, &p, t.is_some())),
            // A started process answers later, from its task (CMD-36).
            (ClientRequest::CommandExec(p), _) => Reply {
                messages: self.exec(id, p).into_iter().collect(),
                close: None,
            },
            (ClientRequest::CommandExecTerminate(p), _) => one(self.terminate(id, &p)),
            // CMD-72: answered once the thread's instruction files are read off this
            // task, through the manager's outbox.
            (ClientRequest::ThreadStart(p), Some(t)) => {
                let opening = t.begin_thread_start(session, &p);
                open_later(t, id, opening)
            }
            (ClientRequest::ThreadResume(p), Some(t)) => {
                let opening = t.begin_thread_resume(session, &p);
                open_later(t, id, opening)
            }
            (ClientRequest::ThreadList(p), Some(t)) => one(answer(id, t.thread_list(&p))),
            (ClientRequest::ThreadRead(p), Some(t)) => one(answer(id, t.thread_read(&p))),
            (ClientRequest::TurnStart(p), Some(t)) => one(answer(id, t.turn_start(session, &p))),
            // CMD-23: answered after `turn/completed`, through the manager's outbox.
            (ClientRequest::TurnInterrupt(p), Some(t)) => {
                match t.turn_interrupt(session, id.clone(), &p) {
                    Ok(()) => Reply::default(),
                    Err(e) => one(error(id, &e)),
                }
            }
            (ClientRequest::ThreadExport(p), Some(t)) => one(answer(id, t.thread_export(&p))),
            (ClientRequest::ThreadImport(p), Some(t)) => {
                let opening = t.begin_thread_import(session, &p);
                open_later(t, id, opening)
            }
            (other, _) => one(error(
                id,
                &CommandError::MethodNotFound {
                    method: other.method().to_owned(),
                },
            )),
        }
    }

    fn initialize(&mut self, id: Id, params: &InitializeParams, threads: bool) -> Message {
        if self.initialized {
            return error(id, &CommandError::AlreadyInitialized);
        }
        if let Err(e) = params.check_version() {
            return error(id, &e);
        }
        self.initialized = true;
        response(id, &self.config.initialize_result_for(threads))
    }

    fn terminate(&mut self, id: Id, params: &CommandExecTerminateParams) -> Message {
        match self.processes.get(&params.process_id) {
            // CMD-38
            None => error(
                id,
                &CommandError::ProcessNotFound {
                    process_id: params.process_id.clone(),
                },
            ),
            Some(handle) => {
                // CMD-37: the task kills the group and then answers the command/exec.
                let _ = handle.kill.send(KillReason::Terminate);
                response(id, &EmptyResult {})
            }
        }
    }

    fn cancel(&mut self, request_id: &Id) {
        // CMD-57: a cancellation naming no unanswered request is ignored.
        if let Some(handle) = self
            .processes
            .values()
            .find(|h| &h.request_id == request_id)
        {
            let _ = handle.kill.send(KillReason::Cancel);
        }
    }

    /// The process's answer was sent: forget it (its group is already dead).
    pub fn finished(&mut self, process_id: &str) {
        if let Some(mut handle) = self.processes.remove(process_id) {
            handle.pid = None;
        }
    }

    fn exec(&mut self, id: Id, params: CommandExecParams) -> Option<Message> {
        // CMD-34: cwd must be an absolute path of an existing directory; CMD-71: absent, the
        // host's default working directory, never `/` unless configured so.
        let cwd = match self.config.exec_cwd(params.cwd.as_deref()) {
            Ok(c) => c,
            Err(e) => return Some(error(id, &e)),
        };
        let cwd = cwd.as_path();
        // CMD-34: process ids are unique among the session's running processes.
        if self.processes.contains_key(&params.process_id) {
            return Some(error(
                id,
                &CommandError::InvalidParams {
                    method: <CommandExecParams as Params>::METHOD.to_owned(),
                    detail: format!("processId {:?} is already running", params.process_id),
                },
            ));
        }
        // CMD-46, CMD-47
        let requested = params.sandbox.unwrap_or(self.config.default_sandbox);
        let report = match self.config.sandbox_for(requested) {
            Ok(r) => r,
            Err(e) => return Some(error(id, &e)),
        };
        let Some((program, args)) = params.command.split_first() else {
            // CMD-13: `from_request` already refused an empty command.
            return Some(error(
                id,
                &CommandError::InvalidParams {
                    method: <CommandExecParams as Params>::METHOD.to_owned(),
                    detail: "command must have at least one element".to_owned(),
                },
            ));
        };
        // 5.7: `command/exec` under workspace-write writes inside `cwd`.
        let mut command =
            match self
                .config
                .sandboxed_command(report.enforced, program, args, cwd, cwd)
            {
                Ok(c) => c,
                Err(e) => return Some(error(id, &e)),
            };
        command
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0) // CMD-34: its own process group
            .kill_on_drop(true);
        let child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Some(error(
                    id,
                    &CommandError::Internal {
                        detail: format!("cannot start {program:?}: {e}"),
                    },
                ));
            }
        };
        let pid = child.id();
        let (kill, kill_rx) = watch::channel(KillReason::Running);
        self.processes.insert(
            params.process_id.clone(),
            ProcessHandle {
                request_id: id.clone(),
                pid,
                kill,
            },
        );
        let job = Job {
            session: self.session,
            request_id: id,
            process_id: params.process_id.clone(),
            cap: params.effective_output_cap(),
            timeout: Duration::from_millis(params.effective_timeout_ms()),
            report,
            events: self.events.clone(),
        };
        tokio::spawn(job.run(child, pid, kill_rx));
        None
    }
}

/// The methods every host serves (`CMD-16`: `command.exec` is offered).
const SERVED_METHODS: &[&str] = &["initialize", "command/exec", "command/exec/terminate"];

/// The methods a host with a [`ThreadManager`] serves too (`agent.test`,
/// `thread.handoff`).
const THREAD_METHODS: &[&str] = &[
    "thread/start",
    "thread/resume",
    "thread/list",
    "thread/read",
    "turn/start",
    "turn/interrupt",
    "thread/export",
    "thread/import",
];

struct Job {
    session: SessionId,
    request_id: Id,
    process_id: String,
    cap: u64,
    timeout: Duration,
    report: SandboxReport,
    events: mpsc::UnboundedSender<ExecEvent>,
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
        let outcome = supervise_with_credit(
            child,
            pid,
            self.cap,
            self.timeout,
            kill_rx,
            Some(credit),
            |s, c, r, permit| {
                if let Some(permit) = permit {
                    self.send_delta(s, c, r, permit);
                }
            },
        )
        .await;
        let message = match outcome.status {
            Some(Ok(status)) if outcome.cancelled && status.code().is_none() => {
                error(self.request_id.clone(), &CommandError::Cancelled)
            }
            Some(Ok(status)) => {
                use std::os::unix::process::ExitStatusExt;
                // CMD-39
                let result = CommandExecResult {
                    exit_code: status.code(),
                    signal: status.signal().map(signal_name),
                    timed_out: outcome.timed_out && status.code().is_none(),
                    cap_reached: outcome.cap_reached,
                    sandbox: self.report.clone(),
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

/// [`supervise`], with backpressure (`CMD-74`): with `credit`, a chunk is read from the
/// pipes only once a permit of `credit` is in hand, and `on_chunk` gets the permit with
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
    credit: Option<Arc<Semaphore>>,
    mut on_chunk: impl FnMut(OutputStream, &[u8], bool, Option<OwnedSemaphorePermit>),
) -> RunOutcome {
    let kill = || {
        if let Some(pid) = pid {
            kill_group(pid);
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut obuf = vec![0u8; MAX_OUTPUT_CHUNK];
    let mut ebuf = vec![0u8; MAX_OUTPUT_CHUNK];
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
    use serde_json::{Value, json};
    use tether_proto::cmd::methods::decode_delta;
    use tether_proto::cmd::{ErrorResponse, codes};

    use super::*;

    const SID: SessionId = SessionId([1; 8]);

    fn session(allow: bool) -> (CommandSession, mpsc::UnboundedReceiver<ExecEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = CommandConfig {
            allow_unsandboxed: allow,
            ..CommandConfig::default()
        };
        (CommandSession::new(SID, Arc::new(config), tx), rx)
    }

    fn request(id: i64, method: &str, params: Value) -> Message {
        Message::Request(Request::new(id, method, Some(params)))
    }

    fn one(s: &mut CommandSession, m: Message) -> Option<Message> {
        let mut r = s.handle(m, Access::Allowed);
        assert!(r.close.is_none());
        assert!(r.messages.len() <= 1);
        r.messages.pop()
    }

    fn err_code(m: &Message) -> i64 {
        match m {
            Message::Error(ErrorResponse { error, .. }) => error.code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn init(s: &mut CommandSession) {
        let r = one(
            s,
            request(
                1,
                "initialize",
                json!({"clientInfo":{"name":"t","version":"1"},"protocolVersion":"tether/1"}),
            ),
        )
        .unwrap();
        let Message::Response(r) = r else {
            panic!("{r:?}")
        };
        assert_eq!(r.result["capabilities"], json!(["command.exec"]));
        s.handle(
            Message::Notification(tether_proto::cmd::Notification::new("initialized", None)),
            Access::Allowed,
        );
    }

    fn exec(id: i64, pid: &str, command: &[&str], extra: Value) -> Message {
        let mut p = json!({"command": command, "cwd": "/", "processId": pid, "sandbox": "danger-full-access"});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                p.insert(k.clone(), v.clone());
            }
        }
        request(id, "command/exec", p)
    }

    struct Outcome {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        deltas: Vec<CommandExecOutputDeltaParams>,
        answer: Message,
    }

    async fn collect(
        s: &mut CommandSession,
        rx: &mut mpsc::UnboundedReceiver<ExecEvent>,
    ) -> Outcome {
        let mut out = Outcome {
            stdout: Vec::new(),
            stderr: Vec::new(),
            deltas: Vec::new(),
            answer: Message::Notification(tether_proto::cmd::Notification::new("none", None)),
        };
        loop {
            let event = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("no event in 20 s")
                .expect("channel closed");
            match event {
                ExecEvent::Output {
                    session, message, ..
                } => {
                    assert_eq!(session, SID);
                    let Message::Notification(n) = message else {
                        panic!()
                    };
                    let ServerNotification::CommandExecOutputDelta(d) =
                        ServerNotification::from_notification(&n).unwrap()
                    else {
                        panic!()
                    };
                    let raw = decode_delta(&d.delta_base64).unwrap();
                    // CMD-40
                    assert!(raw.len() <= MAX_OUTPUT_CHUNK);
                    assert!(!raw.is_empty() || d.cap_reached);
                    match d.stream {
                        OutputStream::Stdout => out.stdout.extend(&raw),
                        OutputStream::Stderr => out.stderr.extend(&raw),
                    }
                    out.deltas.push(d);
                }
                ExecEvent::Finished {
                    process_id,
                    message,
                    ..
                } => {
                    s.finished(&process_id);
                    out.answer = message;
                    return out;
                }
            }
        }
    }

    fn result(m: &Message) -> CommandExecResult {
        let Message::Response(r) = m else {
            panic!("{m:?}")
        };
        serde_json::from_value(r.result.clone()).unwrap()
    }

    /// Whether a process is gone (or a zombie waiting to be reaped by init).
    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    async fn wait_gone(pid: u32) -> bool {
        for _ in 0..100 {
            if gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn cmd_15_initialize_first_and_once() {
        let (mut s, _rx) = session(false);
        let m = one(&mut s, exec(1, "p", &["true"], json!({}))).unwrap();
        assert_eq!(err_code(&m), codes::NOT_INITIALIZED);
        let m = one(
            &mut s,
            request(
                2,
                "initialize",
                json!({"clientInfo":{"name":"t","version":"1"},"protocolVersion":"tether/2"}),
            ),
        )
        .unwrap();
        assert_eq!(err_code(&m), codes::INVALID_PARAMS);
        assert!(!s.is_initialized());
        init(&mut s);
        let m = one(
            &mut s,
            request(
                3,
                "initialize",
                json!({"clientInfo":{"name":"t","version":"1"},"protocolVersion":"tether/1"}),
            ),
        )
        .unwrap();
        assert_eq!(err_code(&m), codes::INVALID_REQUEST);
        // CMD-16: thread methods are not offered, whatever their params.
        let m = one(&mut s, request(4, "thread/start", json!({"cwd": 5}))).unwrap();
        assert_eq!(err_code(&m), codes::METHOD_NOT_FOUND);
        let m = one(&mut s, request(5, "no/such", json!({}))).unwrap();
        assert_eq!(err_code(&m), codes::METHOD_NOT_FOUND);
        // CMD-43
        let m = one(&mut s, exec(6, "p", &["true"], json!({"timeoutMs": 0}))).unwrap();
        assert_eq!(err_code(&m), codes::INVALID_PARAMS);
        // CMD-34: cwd must be an absolute directory.
        let m = one(&mut s, exec(7, "p", &["true"], json!({"cwd": "relative"}))).unwrap();
        assert_eq!(err_code(&m), codes::INVALID_PARAMS);
    }

    #[tokio::test]
    async fn cmd_55_cmd_56_refused_devices_get_errors_and_close() {
        let (mut s, _rx) = session(false);
        init(&mut s);
        let r = s.handle(exec(1, "p", &["true"], json!({})), Access::NotAuthorized);
        assert_eq!(err_code(&r.messages[0]), codes::NOT_AUTHORIZED);
        assert_eq!(r.close, Some(CloseCode::NOT_AUTHORIZED));
        let r = s.handle(
            exec(2, "p", &["true"], json!({})),
            Access::RemoteAccessDisabled,
        );
        assert_eq!(err_code(&r.messages[0]), codes::REMOTE_ACCESS_DISABLED);
        assert_eq!(r.close, Some(CloseCode::REMOTE_ACCESS_DISABLED));
    }

    #[tokio::test]
    async fn cmd_75_refused_devices_notifications_and_answers_are_ignored() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        assert!(one(&mut s, exec(9, "p", &["sleep", "100"], json!({}))).is_none());
        // A cancellation from a device revoked a moment ago: not acted on (CMD-55: a
        // notification is only ignored).
        let cancel = Message::Notification(tether_proto::cmd::Notification::new(
            "notifications/cancelled",
            Some(json!({"requestId": 9})),
        ));
        for access in [Access::NotAuthorized, Access::RemoteAccessDisabled] {
            let r = s.handle(cancel.clone(), access);
            assert!(r.messages.is_empty());
            assert!(r.close.is_none());
        }
        assert_eq!(s.in_flight(), 1, "the process was not cancelled");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv())
                .await
                .is_err(),
            "nothing was reported"
        );
        // A response (an approval answer) likewise.
        let answer = Message::Response(Response {
            id: Id::Number(1),
            result: json!({"decision": "accept"}),
        });
        let r = s.handle(answer.clone(), Access::NotAuthorized);
        assert!(r.messages.is_empty());
        assert_eq!(r.close, Some(CloseCode::NOT_AUTHORIZED));
        let r = s.handle(answer, Access::RemoteAccessDisabled);
        assert_eq!(r.close, Some(CloseCode::REMOTE_ACCESS_DISABLED));
        // The same cancellation from a device still allowed is acted on.
        assert!(s.handle(cancel, Access::Allowed).close.is_none());
        let out = collect(&mut s, &mut rx).await;
        assert_eq!(err_code(&out.answer), codes::REQUEST_CANCELLED);
    }

    #[tokio::test]
    async fn cmd_35_cmd_39_output_in_order_and_exit_status() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        assert!(
            one(
                &mut s,
                exec(
                    2,
                    "p1",
                    &[
                        "sh",
                        "-c",
                        "printf abc; printf err >&2; seq 1 30000; exit 3"
                    ],
                    json!({})
                )
            )
            .is_none()
        );
        let out = collect(&mut s, &mut rx).await;
        let mut expected = b"abc".to_vec();
        for i in 1..=30000 {
            expected.extend(format!("{i}\n").as_bytes());
        }
        assert_eq!(out.stdout, expected);
        assert_eq!(out.stderr, b"err");
        assert!(out.deltas.len() > 2, "more than one chunk");
        let r = result(&out.answer);
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.signal, None);
        assert!(!r.timed_out && !r.cap_reached);
        assert_eq!(r.sandbox.enforced, SandboxMode::DangerFullAccess);
        assert!(!r.sandbox.degraded);
        let Message::Response(resp) = &out.answer else {
            panic!()
        };
        assert_eq!(resp.id, Id::Number(2));
        assert_eq!(s.in_flight(), 0);
    }

    #[tokio::test]
    async fn cmd_41_cap_forwards_exactly_the_first_bytes() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        assert!(
            one(
                &mut s,
                exec(
                    2,
                    "p",
                    &["sh", "-c", "printf 0123456789ABCDEF; sleep 100"],
                    json!({"outputCap": 10})
                )
            )
            .is_none()
        );
        let out = collect(&mut s, &mut rx).await;
        assert_eq!(out.stdout, b"0123456789");
        assert!(out.deltas.last().unwrap().cap_reached);
        assert_eq!(out.deltas.iter().filter(|d| d.cap_reached).count(), 1);
        let r = result(&out.answer);
        assert!(r.cap_reached);
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
        assert_eq!(r.exit_code, None);

        // Output of exactly the cap is not "reached".
        assert!(
            one(
                &mut s,
                exec(3, "q", &["printf", "12345"], json!({"outputCap": 5}))
            )
            .is_none()
        );
        let out = collect(&mut s, &mut rx).await;
        assert_eq!(out.stdout, b"12345");
        assert!(!result(&out.answer).cap_reached);
        assert_eq!(result(&out.answer).exit_code, Some(0));
    }

    #[tokio::test]
    async fn cmd_42_timeout_kills_the_whole_group() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        assert!(
            one(
                &mut s,
                exec(
                    2,
                    "p",
                    &["sh", "-c", "sleep 100 & echo $!; sleep 100"],
                    json!({"timeoutMs": 500})
                )
            )
            .is_none()
        );
        let out = collect(&mut s, &mut rx).await;
        let r = result(&out.answer);
        assert!(r.timed_out);
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
        let bg: u32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(wait_gone(bg).await, "background sleep {bg} survived");
    }

    #[tokio::test]
    async fn cmd_38_terminate_and_unknown_process() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        let m = one(
            &mut s,
            request(2, "command/exec/terminate", json!({"processId": "nope"})),
        )
        .unwrap();
        assert_eq!(err_code(&m), codes::PROCESS_NOT_FOUND);
        assert!(one(&mut s, exec(3, "p", &["sleep", "100"], json!({}))).is_none());
        // CMD-34: a running process id cannot be reused.
        let m = one(&mut s, exec(4, "p", &["true"], json!({}))).unwrap();
        assert_eq!(err_code(&m), codes::INVALID_PARAMS);
        let m = one(
            &mut s,
            request(5, "command/exec/terminate", json!({"processId": "p"})),
        )
        .unwrap();
        assert!(matches!(m, Message::Response(_)));
        let out = collect(&mut s, &mut rx).await;
        let r = result(&out.answer);
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
        assert!(!r.timed_out);
    }

    #[tokio::test]
    async fn cmd_57_cancel_answers_cancelled() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        assert!(one(&mut s, exec(9, "p", &["sleep", "100"], json!({}))).is_none());
        s.handle(
            Message::Notification(tether_proto::cmd::Notification::new(
                "notifications/cancelled",
                Some(json!({"requestId": 9})),
            )),
            Access::Allowed,
        );
        let out = collect(&mut s, &mut rx).await;
        assert_eq!(err_code(&out.answer), codes::REQUEST_CANCELLED);
    }

    #[tokio::test]
    async fn cmd_37_session_end_kills_the_group() {
        let (mut s, _rx) = session(false);
        init(&mut s);
        let marker = tempfile::tempdir().unwrap();
        let pidfile = marker.path().join("pid");
        let script = format!("sleep 100 & echo $! > {}; sleep 100", pidfile.display());
        assert!(one(&mut s, exec(2, "p", &["sh", "-c", &script], json!({}))).is_none());
        let mut bg = None;
        for _ in 0..100 {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                bg = Some(pid);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bg = bg.expect("background pid");
        assert!(!gone(bg));
        drop(s);
        assert!(
            wait_gone(bg).await,
            "background sleep {bg} survived the session"
        );
    }

    #[tokio::test]
    async fn cmd_46_sandbox_refused_or_degraded() {
        let (mut s, _rx) = session(false);
        init(&mut s);
        for mode in ["read-only", "workspace-write"] {
            let m = one(&mut s, exec(2, "p", &["true"], json!({"sandbox": mode}))).unwrap();
            assert_eq!(err_code(&m), codes::SANDBOX_DENIED);
        }
        // CMD-47: the default mode (workspace-write) applies when none is named.
        let mut p = json!({"command": ["true"], "cwd": "/", "processId": "p"});
        p.as_object_mut().unwrap().remove("sandbox");
        let m = one(&mut s, request(3, "command/exec", p)).unwrap();
        assert_eq!(err_code(&m), codes::SANDBOX_DENIED);

        let (mut s, mut rx) = session(true);
        init(&mut s);
        assert!(
            one(
                &mut s,
                exec(2, "p", &["true"], json!({"sandbox": "read-only"}))
            )
            .is_none()
        );
        let out = collect(&mut s, &mut rx).await;
        let r = result(&out.answer);
        let Message::Response(resp) = &out.answer else {
            panic!()
        };
        assert_eq!(
            resp.result["sandbox"],
            json!({"requested": "read-only", "enforced": "danger-full-access", "network": "allowed", "degraded": true, "mechanism": "none"})
        );
        assert_eq!(r.exit_code, Some(0));
    }

    #[tokio::test]
    async fn cmd_58_at_most_64_in_flight() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        for i in 0..64 {
            assert!(
                one(
                    &mut s,
                    exec(100 + i, &format!("p{i}"), &["sleep", "100"], json!({}))
                )
                .is_none()
            );
        }
        let m = one(&mut s, exec(1000, "extra", &["true"], json!({}))).unwrap();
        assert_eq!(err_code(&m), codes::OVERLOADED);
        let m = one(
            &mut s,
            request(1001, "command/exec/terminate", json!({"processId": "p0"})),
        )
        .unwrap();
        assert_eq!(
            err_code(&m),
            codes::OVERLOADED,
            "CMD-61: the limit comes before the method"
        );
        drop(s);
        // Every task reports its end once its group is killed.
        let mut finished = 0;
        while finished < 64 {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .unwrap()
            {
                Some(ExecEvent::Finished { .. }) => finished += 1,
                Some(_) => {}
                None => break,
            }
        }
        assert_eq!(finished, 64);
    }

    /// Raw output bytes of the `command/exec/outputDelta` events among `events`.
    fn delta_bytes(events: &[ExecEvent]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            if let ExecEvent::Output {
                message: Message::Notification(n),
                ..
            } = e
            {
                let ServerNotification::CommandExecOutputDelta(d) =
                    ServerNotification::from_notification(n).unwrap()
                else {
                    panic!()
                };
                out.extend(decode_delta(&d.delta_base64).unwrap());
            }
        }
        out
    }

    /// CMD-74: a command writing 8 MiB to a session that does not take its output: the
    /// host holds at most EXEC_OUTPUT_CREDIT chunks of it and stops reading, the command
    /// waits in write(2); once the output is taken, every byte arrives, in order.
    #[tokio::test]
    async fn cmd_74_output_waits_for_the_session_and_nothing_is_lost() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        // 1..=1_200_000, one a line: 8 288 895 bytes.
        let mut expected: Vec<u8> = Vec::new();
        for i in 1..=1_200_000u32 {
            expected.extend(format!("{i}\n").as_bytes());
        }
        assert!(expected.len() > 8 << 20);
        assert!(
            one(
                &mut s,
                exec(
                    2,
                    "p",
                    &["seq", "1", "1200000"],
                    json!({"outputCap": 16 << 20})
                )
            )
            .is_none()
        );
        // The runtime stalls (its link's writes wait): it takes events but sends none, so
        // their credit is held. Give the command ample time to write everything.
        let mut held = Vec::new();
        let stalled_until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(e)) = tokio::time::timeout_at(stalled_until, rx.recv()).await {
            assert!(
                !matches!(e, ExecEvent::Finished { .. }),
                "the command finished: its output was not held back"
            );
            held.push(e);
        }
        let queued = delta_bytes(&held).len();
        assert!(queued > 0);
        assert!(
            queued <= EXEC_OUTPUT_CREDIT * MAX_OUTPUT_CHUNK,
            "{queued} bytes queued, bound {}",
            EXEC_OUTPUT_CREDIT * MAX_OUTPUT_CHUNK
        );
        assert_eq!(held.len(), EXEC_OUTPUT_CREDIT, "the credit is all out");
        assert_eq!(s.in_flight(), 1, "still running, waiting to write");
        // The runtime catches up: every byte, in order, then the answer.
        let mut got = delta_bytes(&held);
        drop(held);
        let out = collect(&mut s, &mut rx).await;
        got.extend(out.stdout);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes lost or out of order");
        let r = result(&out.answer);
        assert_eq!(r.exit_code, Some(0));
        assert!(!r.cap_reached);
    }

    /// CMD-74 with CMD-42: a command held back by a session that takes no output still
    /// ends at its time limit, and the answer still comes after its last delta.
    #[tokio::test]
    async fn cmd_74_held_back_output_does_not_stop_the_time_limit() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        assert!(
            one(
                &mut s,
                exec(
                    2,
                    "p",
                    &[
                        "sh",
                        "-c",
                        "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"
                    ],
                    json!({"timeoutMs": 700})
                )
            )
            .is_none()
        );
        let mut held = Vec::new();
        while held.len() < EXEC_OUTPUT_CREDIT {
            held.push(
                tokio::time::timeout(Duration::from_secs(20), rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        // Past the time limit, with the credit still held: the group is killed meanwhile.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(held);
        let out = collect(&mut s, &mut rx).await;
        let r = result(&out.answer);
        assert!(r.timed_out, "{r:?}");
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(200), "SIG200");
    }

    /// CMD-71: a `command/exec` without `cwd` runs in the host's default project, not in
    /// `/`; CMD-34: a given `cwd` is still checked.
    #[tokio::test]
    async fn cmd_71_absent_cwd_is_the_default_project() {
        let project = tempfile::tempdir().unwrap();
        let project_path = std::fs::canonicalize(project.path()).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = CommandConfig {
            default_project: Some(project_path.clone()),
            ..CommandConfig::default()
        };
        let mut s = CommandSession::new(SID, Arc::new(config), tx);
        init(&mut s);
        let m = request(
            2,
            "command/exec",
            json!({"command": ["sh", "-c", "pwd -P"], "processId": "p", "sandbox": "danger-full-access"}),
        );
        assert!(one(&mut s, m).is_none(), "started");
        let out = collect(&mut s, &mut rx).await;
        assert_eq!(result(&out.answer).exit_code, Some(0));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n", project_path.display())
        );

        // Without a configured project: the host's own directory.
        let plain = CommandConfig::default();
        assert_eq!(
            plain.exec_cwd(None).unwrap(),
            std::env::current_dir().unwrap()
        );
        assert_eq!(
            plain.exec_cwd(Some("/")).unwrap(),
            std::path::PathBuf::from("/")
        );
        for bad in ["relative", "/no/such/directory/at/all"] {
            let e = plain.exec_cwd(Some(bad)).unwrap_err();
            assert_eq!(e.rpc_code(), codes::INVALID_PARAMS, "{bad}");
        }
        // A default project that is gone is refused, not replaced by `/`.
        let gone = CommandConfig {
            default_project: Some(project_path.join("gone")),
            ..CommandConfig::default()
        };
        assert_eq!(
            gone.exec_cwd(None).unwrap_err().rpc_code(),
            codes::INVALID_PARAMS
        );
    }

    /// SEC-15: a mode or policy beyond the operator's cap is refused with -32012, never
    /// run with another one.
    #[tokio::test]
    async fn sec_15_caps_refuse_what_is_beyond_them() {
        let capped = CommandConfig {
            allow_unsandboxed: true,
            max_sandbox: SandboxMode::ReadOnly,
            max_approval_policy: ApprovalPolicy::OnFailure,
            ..CommandConfig::default()
        };
        for mode in [SandboxMode::WorkspaceWrite, SandboxMode::DangerFullAccess] {
            let e = capped.sandbox_for(mode).unwrap_err();
            assert_eq!(e.rpc_code(), codes::SANDBOX_DENIED, "{mode:?}");
            assert!(e.to_string().contains("SEC-15"), "{e}");
            assert!(e.to_string().contains(mode.as_str()), "{e}");
        }
        // Within the cap: as without one (here degraded, as --allow-unsandboxed says).
        let report = capped.sandbox_for(SandboxMode::ReadOnly).unwrap();
        assert_eq!(report.requested, SandboxMode::ReadOnly);
        assert!(report.degraded);
        for ok in [ApprovalPolicy::Untrusted, ApprovalPolicy::OnFailure] {
            capped.check_approval_policy(ok).unwrap();
        }
        for beyond in [ApprovalPolicy::OnRequest, ApprovalPolicy::Never] {
            let e = capped.check_approval_policy(beyond).unwrap_err();
            assert_eq!(e.rpc_code(), codes::SANDBOX_DENIED, "{beyond:?}");
            assert!(e.to_string().contains("SEC-15"), "{e}");
        }
        // No cap by default.
        let open = CommandConfig::default();
        open.sandbox_for(SandboxMode::DangerFullAccess).unwrap();
        open.check_approval_policy(ApprovalPolicy::Never).unwrap();

        // Through command/exec: refused before anything runs.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut s = CommandSession::new(SID, Arc::new(capped), tx);
        init(&mut s);
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let m = one(
            &mut s,
            exec(
                2,
                "p",
                &["touch", &marker.to_string_lossy()],
                json!({"sandbox": "danger-full-access"}),
            ),
        )
        .unwrap();
        assert_eq!(err_code(&m), codes::SANDBOX_DENIED);
        assert!(!marker.exists());
        assert!(rx.try_recv().is_err(), "nothing started");
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
