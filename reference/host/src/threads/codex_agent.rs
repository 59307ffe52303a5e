//! The `codex` agent backend (spec 5.14): a real Codex plays the agent of the host's
//! threads, one tokio task per turn, as the test agent does (`agent.rs`).
//!
//! The host stays the source of truth: the [`ThreadManager`](super::ThreadManager) keeps
//! the threads, their turns and items, attachment and order (`CMD-24`, `CMD-26`), the
//! durable store and the approval rules (`CMD-27` … `CMD-33`). Codex only produces what
//! a turn does, which a Codex turn job translates into [`TurnEvent`]s:
//!
//! ```text
//! first turn of a thread   thread/start {cwd, sandbox, approvalPolicy,
//!                          approvalsReviewer:"user"}   -> the Codex thread id is stored
//! later turns, new process thread/resume {threadId, …}  (a new thread if that fails)
//! turn/start {threadId, input}
//!   item/started, item/completed          -> ItemStarted / ItemCompleted (Tether ids)
//!   item/commandExecution/outputDelta     -> Output (in pieces of 16 384 bytes, CMD-40)
//!   item/commandExecution/requestApproval -> Approval; the decision in force goes back
//!                                            to Codex ("accept", "acceptForSession",
//!                                            "decline" or "cancel")
//!   turn/completed                        -> Finished with Codex's status
//! turn/interrupt from a controller        -> Codex turn/interrupt
//! Codex exits mid-turn                    -> an agentMessage saying so; Finished failed
//! ```
//!
//! One `codex app-server` serves the whole host ([`CodexBackend`]), started on the first
//! turn that needs it and again on the first turn after it exited. One task drains its
//! events and routes them by Codex thread id to the turn running on that thread. Codex's
//! other requests (file-change approvals, user input, tool calls, …) are answered at once:
//! `item/fileChange/requestApproval` with `decline`, the others with an error; each is
//! logged (`tracing`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_proto::cmd::methods::{ApprovalTether, CommandExecutionRequestApprovalParams};
use tether_proto::cmd::types::{
    AgentMessageItem, ApprovalDecision, ApprovalPolicy, CommandAction, SandboxMode, ThreadItem,
    TurnStatus, UserInput, UserMessageItem,
};
use tether_proto::limits::MAX_OUTPUT_CHUNK;
use tokio::sync::{mpsc, oneshot, watch};

use super::agent::{TurnEvent, TurnEventKind, split_text};
use super::clock::now_ms;
use crate::codex::{CodexAppServer, CodexConfig, CodexError, CodexEvent, CodexEvents, RequestId};
use crate::exec::{CommandConfig, KillReason};

/// The `model` and `modelProvider` a host with the `codex` agent reports for its
/// threads (spec 5.14): which model Codex uses is Codex's configuration.
pub const CODEX_MODEL: &str = "codex";

/// The sandbox policy a turn gives Codex (`turn/start` `sandboxPolicy`): the one the host
/// reports for the thread ([`CommandConfig::thread_sandbox_policy`]), so that Codex
/// enforces what the host says.
pub(crate) fn sandbox_policy(config: &CommandConfig, mode: SandboxMode, cwd: &str) -> Value {
    serde_json::to_value(config.thread_sandbox_policy(mode, cwd)).unwrap_or(Value::Null)
}

/// How long a turn waits for Codex's `turn/completed` after asking it to interrupt the
/// turn, before the turn ends as interrupted anyway.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);

/// What the router hands a turn: Codex's messages about the turn's Codex thread.
#[derive(Debug)]
enum Routed {
    Notification {
        method: String,
        params: Value,
    },
    Request {
        id: RequestId,
        params: Value,
    },
    /// The process ended (its exit status, for controllers).
    Exited(String),
}

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Routed>>>>;

/// The live process: the connection, the routes of its events, the Codex threads it has
/// loaded.
#[derive(Clone)]
struct Live {
    server: Arc<CodexAppServer>,
    routes: Routes,
    loaded: Arc<Mutex<HashSet<String>>>,
    exited: Arc<AtomicBool>,
}

/// The one `codex app-server` of the host, started lazily (spec 5.14).
pub struct CodexBackend {
    config: CodexConfig,
    live: tokio::sync::Mutex<Option<Live>>,
}

impl std::fmt::Debug for CodexBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodexBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CodexBackend {
    /// A backend that starts Codex as `config` says when a turn first needs it.
    pub fn new(config: CodexConfig) -> Self {
        Self {
            config,
            live: tokio::sync::Mutex::new(None),
        }
    }

    /// The running process, started (again) if there is none or it exited.
    async fn live(&self) -> Result<Live, CodexError> {
        let mut slot = self.live.lock().await;
        if let Some(live) = slot.as_ref()
            && !live.exited.load(Ordering::Acquire)
            && live.server.exit_status().is_none()
        {
            return Ok(live.clone());
        }
        let (server, events) = CodexAppServer::spawn(self.config.clone()).await?;
        tracing::info!(
            user_agent = %server.initialize_result().user_agent,
            "codex app-server started for the host's agent"
        );
        let live = Live {
            server: Arc::new(server),
            routes: Arc::default(),
            loaded: Arc::default(),
            exited: Arc::new(AtomicBool::new(false)),
        };
        tokio::spawn(route(
            Arc::downgrade(&live.server),
            events,
            Arc::clone(&live.routes),
            Arc::clone(&live.exited),
        ));
        *slot = Some(live.clone());
        Ok(live)
    }
}

/// The Codex thread a message is about (`params.threadId`).
fn thread_of(params: &Value) -> Option<&str> {
    params.get("threadId").and_then(Value::as_str)
}

/// Drains Codex's events for as long as the process runs, routing them by Codex thread
/// id; answers the requests no turn takes.
async fn route(
    server: Weak<CodexAppServer>,
    mut events: CodexEvents,
    routes: Routes,
    exited: Arc<AtomicBool>,
) {
    while let Some(event) = events.recv().await {
        match event {
            CodexEvent::Notification { method, params, .. } => {
                let target = thread_of(&params).and_then(|t| lock(&routes).get(t).cloned());
                match target {
                    Some(tx) => {
                        let _ = tx.send(Routed::Notification { method, params });
                    }
                    None => tracing::trace!(%method, "codex notification for no running turn"),
                }
            }
            CodexEvent::Request { id, method, params } => {
                let target = (method == "item/commandExecution/requestApproval")
                    .then(|| thread_of(&params).and_then(|t| lock(&routes).get(t).cloned()))
                    .flatten();
                if let Some(tx) = target {
                    let _ = tx.send(Routed::Request { id, params });
                    continue;
                }
                refuse(server.upgrade(), id, &method);
            }
            CodexEvent::Malformed { kind, detail, .. } => {
                tracing::warn!(?kind, %detail, "codex app-server wrote a line that is no message");
            }
            CodexEvent::Exited {
                status,
                stderr_tail,
            } => {
                exited.store(true, Ordering::Release);
                let status = status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string());
                // The stderr tail is for the host's log only (host paths).
                tracing::warn!(%status, %stderr_tail, "codex app-server exited");
                for (_, tx) in lock(&routes).drain() {
                    let _ = tx.send(Routed::Exited(status.clone()));
                }
                break;
            }
        }
    }
}

/// Answers a request of Codex no turn takes: a file-change approval is declined, any
/// other request refused with an error (spec 5.14).
fn refuse(server: Option<Arc<CodexAppServer>>, id: RequestId, method: &str) {
    let Some(server) = server else { return };
    tracing::info!(%method, %id, "codex request the tether host does not serve; declined");
    let method = method.to_owned();
    tokio::spawn(async move {
        let sent = match method.as_str() {
            "item/fileChange/requestApproval" | "item/commandExecution/requestApproval" => {
                server.respond(&id, json!({"decision": "decline"})).await
            }
            _ => {
                server
                    .respond_error(&id, -32601, "not supported by the tether host")
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(%method, "cannot answer codex: {e}");
        }
    });
}

/// Kills the commands of an interrupted turn that Codex left running (`CMD-23`): each
/// process descending from Codex (`codex_pid`) that is a shell running one of `commands`
/// (its script is in the command line Codex reported, its directory the command's), with
/// its process group when that group is not Codex's, else with its descendants.
fn stop_commands<'a>(codex_pid: Option<u32>, commands: impl Iterator<Item = &'a (String, String)>) {
    let commands: Vec<&(String, String)> = commands.collect();
    let Some(root) = codex_pid else { return };
    if commands.is_empty() {
        return;
    }
    let procs = proc_table();
    let codex_group = procs.get(&root).map(|p| p.pgid);
    let children = |pid: u32| -> Vec<u32> {
        procs
            .iter()
            .filter(|(_, p)| p.ppid == pid)
            .map(|(c, _)| *c)
            .collect()
    };
    // Every descendant of Codex.
    let mut descendants = Vec::new();
    let mut stack = children(root);
    while let Some(pid) = stack.pop() {
        if descendants.len() > 10_000 {
            break;
        }
        descendants.push(pid);
        stack.extend(children(pid));
    }
    for pid in descendants {
        let Some(p) = procs.get(&pid) else { continue };
        let shell = p
            .argv
            .first()
            .is_some_and(|a| a.ends_with("sh") || a.ends_with("bash") || a.ends_with("zsh"));
        let script = p.argv.last().filter(|_| p.argv.len() >= 3);
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        let hit = shell
            && commands.iter().any(|(command, dir)| {
                script.is_some_and(|s| !s.is_empty() && command.contains(s.as_str()))
                    && cwd.as_deref() == Some(std::path::Path::new(dir))
            });
        if !hit {
            continue;
        }
        tracing::info!(
            pid,
            "stopping a command codex left running after an interrupt"
        );
        let own_group = rustix::process::getpgrp().as_raw_nonzero().get();
        let own_group = u32::try_from(own_group).unwrap_or(0);
        if Some(p.pgid) != codex_group && p.pgid > 1 && p.pgid != own_group {
            crate::exec::kill_group(p.pgid);
        } else {
            let mut stack = vec![pid];
            while let Some(victim) = stack.pop() {
                stack.extend(children(victim));
                kill_one(victim);
            }
        }
    }
}

fn kill_one(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// A process as `/proc` shows it.
struct ProcInfo {
    ppid: u32,
    pgid: u32,
    argv: Vec<String>,
}

/// Every process of `/proc` (Linux; empty elsewhere).
fn proc_table() -> HashMap<u32, ProcInfo> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`: comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace().skip(1);
        let (Some(ppid), Some(pgid)) = (
            fields.next().and_then(|f| f.parse().ok()),
            fields.next().and_then(|f| f.parse().ok()),
        ) else {
            continue;
        };
        let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.insert(pid, ProcInfo { ppid, pgid, argv });
    }
    out
}

/// Removes the turn's route when the turn ends.
struct RouteGuard {
    routes: Routes,
    thread: String,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        lock(&self.routes).remove(&self.thread);
    }
}

/// Why a turn ended without Codex's `turn/completed`.
enum Stop {
    /// The host is stopping, or the turn was interrupted and Codex did not end it in time.
    Interrupted,
    /// Codex could not be started or used, or it exited (the text says so, for
    /// controllers).
    Failed(String),
}

/// One turn played by Codex.
pub(crate) struct CodexTurnJob {
    pub backend: Arc<CodexBackend>,
    pub thread_id: String,
    pub turn_id: String,
    /// The user's input, as given to `turn/start`.
    pub input: Vec<UserInput>,
    pub started: Instant,
    pub cwd: String,
    pub sandbox: SandboxMode,
    pub policy: ApprovalPolicy,
    /// The `sandboxPolicy` of each `turn/start` ([`sandbox_policy`]).
    pub sandbox_policy: Value,
    /// Whether the operator's cap allows `danger-full-access` (`SEC-15`): Codex runs a
    /// command it asked approval for outside its sandbox, so without it every such
    /// request is declined without asking.
    pub may_leave_sandbox: bool,
    /// The Codex thread of this thread, if one was started before.
    pub codex_thread: Option<String>,
    /// The number of the first item id this turn may use (`item_<n>`); the manager moves
    /// the thread's counter past every id a turn uses (`CMD-25`).
    pub first_item: u64,
    pub events: mpsc::UnboundedSender<TurnEvent>,
    /// `Terminate` when the turn is interrupted (`CMD-23`); dropped when the host stops.
    pub kill: watch::Receiver<KillReason>,
}

/// A Codex approval request the manager has not decided yet.
struct Asking {
    id: RequestId,
    decision: oneshot::Receiver<ApprovalDecision>,
}

/// The state of one turn's translation.
struct Turn {
    /// Codex item id -> Tether item id.
    ids: HashMap<String, String>,
    /// Tether item ids that were started.
    started: HashSet<String>,
    next_item: u64,
    asking: Option<Asking>,
    /// Approval requests waiting for the one being asked (`CMD-28`: one at a time).
    queued: VecDeque<(RequestId, Value)>,
    /// Commands Codex started and has not completed: Tether item id -> (command, cwd).
    running: HashMap<String, (String, String)>,
}

impl Turn {
    fn tether_id(&mut self, codex_id: &str) -> String {
        if let Some(id) = self.ids.get(codex_id) {
            return id.clone();
        }
        let id = format!("item_{}", self.next_item);
        self.next_item += 1;
        self.ids.insert(codex_id.to_owned(), id.clone());
        id
    }
}

/// The wire string of a decision Codex accepts for a command approval: the four
/// standard decisions as they are; any other form is not offered by the host and
/// counts as `decline`.
fn codex_decision(d: &ApprovalDecision) -> &'static str {
    match d {
        ApprovalDecision::Accept => "accept",
        ApprovalDecision::AcceptForSession => "acceptForSession",
        ApprovalDecision::Cancel => "cancel",
        _ => "decline",
    }
}

/// Codex's turn status as Tether's.
fn turn_status(s: Option<&str>) -> TurnStatus {
    match s {
        Some("completed") => TurnStatus::Completed,
        Some("interrupted") => TurnStatus::Interrupted,
        _ => TurnStatus::Failed,
    }
}

/// Waits for the decision being asked, or forever when none is.
async fn decided(asking: &mut Option<Asking>) -> ApprovalDecision {
    match asking {
        // The manager is gone (the host stops): nothing runs.
        Some(a) => (&mut a.decision).await.unwrap_or(ApprovalDecision::Cancel),
        None => std::future::pending().await,
    }
}

impl CodexTurnJob {
    fn send(&self, kind: TurnEventKind) {
        let _ = self.events.send(TurnEvent {
            thread_id: self.thread_id.clone(),
            turn_id: self.turn_id.clone(),
            kind,
        });
    }

    /// Runs the turn to its end.
    pub(crate) async fn run(self) {
        let mut turn = Turn {
            ids: HashMap::new(),
            started: HashSet::new(),
            next_item: self.first_item,
            asking: None,
            queued: VecDeque::new(),
            running: HashMap::new(),
        };
        let status = match self.drive(&mut turn).await {
            Ok(status) => status,
            Err(Stop::Interrupted) => TurnStatus::Interrupted,
            Err(Stop::Failed(text)) => {
                // Visible to the controllers: a turn that fails says why.
                let at = now_ms();
                let item = ThreadItem::AgentMessage(AgentMessageItem {
                    id: format!("item_{}", turn.next_item),
                    text: format!("tether-host: {text}"),
                    started_at_ms: Some(at),
                    completed_at_ms: Some(at),
                });
                self.send(TurnEventKind::ItemStarted(item.clone()));
                self.send(TurnEventKind::ItemCompleted(item));
                TurnStatus::Failed
            }
        };
        self.send(TurnEventKind::Finished {
            status,
            duration: self.started.elapsed(),
        });
    }

    /// The Codex thread of this thread, loaded in `live`'s process: resumed when it was
    /// started before (by this process or an earlier one), else started.
    async fn codex_thread(&self, live: &Live) -> Result<String, CodexError> {
        let settings = json!({
            "cwd": self.cwd,
            "sandbox": self.sandbox,
            "approvalPolicy": self.policy,
            "approvalsReviewer": "user",
        });
        if let Some(id) = &self.codex_thread {
            if lock(&live.loaded).contains(id) {
                return Ok(id.clone());
            }
            let mut params = settings.clone();
            if let Some(obj) = params.as_object_mut() {
                obj.insert("threadId".to_owned(), json!(id));
            }
            match live.server.request("thread/resume", params).await {
                Ok(_) => {
                    lock(&live.loaded).insert(id.clone());
                    return Ok(id.clone());
                }
                Err(e @ (CodexError::Exited { .. } | CodexError::Closed)) => return Err(e),
                Err(e) => tracing::warn!(
                    thread = %self.thread_id,
                    "cannot resume codex thread {id} ({e}); starting a new one"
                ),
            }
        }
        let started = live.server.request("thread/start", settings).await?;
        let id = started
            .pointer("/thread/id")
            .and_then(Value::as_str)
            .ok_or_else(|| CodexError::Protocol {
                detail: "thread/start result without thread.id".to_owned(),
            })?
            .to_owned();
        lock(&live.loaded).insert(id.clone());
        self.send(TurnEventKind::CodexThread(id.clone()));
        Ok(id)
    }

    async fn drive(&self, turn: &mut Turn) -> Result<TurnStatus, Stop> {
        let failed = |e: CodexError| {
            tracing::warn!(thread = %self.thread_id, "codex agent: {e}");
            Stop::Failed(match e {
                CodexError::Exited { status, .. } => format!(
                    "codex app-server exited ({}); the turn failed",
                    status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string())
                ),
                CodexError::NoBinary { .. } | CodexError::Spawn { .. } => {
                    "codex app-server cannot be started on this host; the turn failed".to_owned()
                }
                other => format!("codex app-server failed: {other}"),
            })
        };
        let live = self.backend.live().await.map_err(failed)?;
        let codex_thread = self.codex_thread(&live).await.map_err(failed)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&live.routes).insert(codex_thread.clone(), tx);
        let _guard = RouteGuard {
            routes: Arc::clone(&live.routes),
            thread: codex_thread.clone(),
        };
        let started = live
            .server
            .request(
                "turn/start",
                json!({
                    "threadId": codex_thread,
                    "input": self.input,
                    "sandboxPolicy": self.sandbox_policy,
                }),
            )
            .await
            .map_err(failed)?;
        let codex_turn = started
            .pointer("/turn/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut kill = self.kill.clone();
        let mut interrupt_deadline: Option<tokio::time::Instant> = None;
        loop {
            let grace = async move {
                match interrupt_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                routed = rx.recv() => match routed {
                    Some(Routed::Notification { method, params }) => {
                        if let Some(status) = self.notification(turn, &codex_turn, &method, &params) {
                            if interrupt_deadline.is_some() || status == TurnStatus::Interrupted {
                                // CMD-23: Codex 0.169.0 ends the turn but lets a command
                                // it runs go on; the host kills it.
                                stop_commands(live.server.pid(), turn.running.values());
                            }
                            return Ok(status);
                        }
                    }
                    Some(Routed::Request { id, params }) => {
                        turn.queued.push_back((id, params));
                        self.ask_next(turn);
                    }
                    Some(Routed::Exited(status)) => {
                        tracing::warn!(thread = %self.thread_id, "codex app-server exited mid-turn");
                        return Err(Stop::Failed(format!(
                            "codex app-server exited mid-turn ({status}); the turn failed"
                        )));
                    }
                    None => return Err(Stop::Failed("codex app-server is gone".to_owned())),
                },
                decision = decided(&mut turn.asking) => {
                    if let Some(asking) = turn.asking.take() {
                        let answer = json!({"decision": codex_decision(&decision)});
                        if let Err(e) = live.server.respond(&asking.id, answer).await {
                            tracing::warn!(thread = %self.thread_id, "cannot answer codex: {e}");
                        }
                    }
                    self.ask_next(turn);
                }
                changed = kill.changed(), if interrupt_deadline.is_none() => {
                    // CMD-23: interrupted (or the host stops: the sender is dropped).
                    if changed.is_ok() && *kill.borrow() == KillReason::Running {
                        continue;
                    }
                    let params = json!({"threadId": codex_thread, "turnId": codex_turn});
                    if let Err(e) = live.server.request("turn/interrupt", params).await {
                        tracing::warn!(thread = %self.thread_id, "codex turn/interrupt: {e}");
                        return Err(Stop::Interrupted);
                    }
                    interrupt_deadline = Some(tokio::time::Instant::now() + INTERRUPT_GRACE);
                }
                () = grace => {
                    stop_commands(live.server.pid(), turn.running.values());
                    return Err(Stop::Interrupted);
                }
            }
        }
    }

    /// Sends the next queued approval to the manager, if none is being asked.
    fn ask_next(&self, turn: &mut Turn) {
        if turn.asking.is_some() {
            return;
        }
        let Some((id, params)) = turn.queued.pop_front() else {
            return;
        };
        let codex_item = params
            .get("itemId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let item_id = turn.tether_id(codex_item);
        let command = params
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let cwd = params
            .get("cwd")
            .and_then(Value::as_str)
            .map_or_else(|| self.cwd.clone(), str::to_owned);
        let command_actions = params
            .get("commandActions")
            .cloned()
            .and_then(|v| serde_json::from_value::<Vec<CommandAction>>(v).ok())
            .unwrap_or_else(|| CommandAction::unknown(&command));
        // CMD-28: the item starts before its approval request.
        if !turn.started.contains(&item_id) {
            let item = json!({
                "type": "commandExecution", "id": item_id, "command": command, "cwd": cwd,
                "status": "inProgress", "commandActions": command_actions,
                "startedAtMs": now_ms(),
            });
            if let Ok(item) = serde_json::from_value::<ThreadItem>(item) {
                turn.started.insert(item_id.clone());
                self.send(TurnEventKind::ItemStarted(item));
            }
        }
        let (reply, decision) = oneshot::channel();
        if !self.may_leave_sandbox {
            // SEC-15: the command would run outside the sandbox, beyond the host's cap.
            tracing::info!(
                thread = %self.thread_id,
                "codex asked to run a command outside its sandbox, above this host's cap; declined"
            );
            let _ = reply.send(ApprovalDecision::Decline);
            turn.asking = Some(Asking { id, decision });
            return;
        }
        self.send(TurnEventKind::Approval {
            params: CommandExecutionRequestApprovalParams {
                thread_id: self.thread_id.clone(),
                turn_id: self.turn_id.clone(),
                item_id,
                started_at_ms: now_ms(),
                command,
                cwd,
                command_actions,
                reason: params
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                // CMD-29: the four decisions Codex takes.
                available_decisions: Some(ApprovalDecision::STANDARD.to_vec()),
                // CMD-47, spec 5.14: Codex (0.169.0, measured) runs a command it asked
                // approval for outside its sandbox, whatever the thread's mode.
                tether: Some(ApprovalTether {
                    sandbox: SandboxMode::DangerFullAccess,
                }),
            },
            reply,
        });
        turn.asking = Some(Asking { id, decision });
    }

    /// Translates one notification of the turn; `Some(status)` at `turn/completed`.
    fn notification(
        &self,
        turn: &mut Turn,
        codex_turn: &str,
        method: &str,
        params: &Value,
    ) -> Option<TurnStatus> {
        let of_turn = params.get("turnId").and_then(Value::as_str);
        match method {
            "item/started" | "item/completed" if of_turn.is_none_or(|t| t == codex_turn) => {
                let completed = method == "item/completed";
                let item = self.item(turn, params, completed)?;
                let id = item.id().to_owned();
                if let ThreadItem::CommandExecution(c) = &item {
                    if completed {
                        turn.running.remove(&id);
                    } else {
                        turn.running
                            .insert(id.clone(), (c.command.clone(), c.cwd.clone()));
                    }
                }
                if completed {
                    if turn.started.insert(id) {
                        // Never started (a declined command): started, then completed.
                        self.send(TurnEventKind::ItemStarted(item.clone()));
                    }
                    self.send(TurnEventKind::ItemCompleted(item));
                } else if turn.started.insert(id) {
                    self.send(TurnEventKind::ItemStarted(item));
                }
            }
            "item/commandExecution/outputDelta" if of_turn.is_none_or(|t| t == codex_turn) => {
                let (Some(codex_item), Some(delta)) = (
                    params.get("itemId").and_then(Value::as_str),
                    params.get("delta").and_then(Value::as_str),
                ) else {
                    return None;
                };
                let item_id = turn.tether_id(codex_item);
                for delta in split_text(delta, MAX_OUTPUT_CHUNK) {
                    self.send(TurnEventKind::Output {
                        item_id: item_id.clone(),
                        delta,
                    });
                }
            }
            "turn/completed" => {
                let t = params.get("turn")?;
                if t.get("id").and_then(Value::as_str) != Some(codex_turn) {
                    return None;
                }
                if let Some(error) = t.get("error").filter(|e| !e.is_null()) {
                    tracing::warn!(thread = %self.thread_id, %error, "codex turn error");
                }
                return Some(turn_status(t.get("status").and_then(Value::as_str)));
            }
            "error" => {
                tracing::warn!(thread = %self.thread_id, %params, "codex reported an error");
            }
            _ => tracing::trace!(%method, "codex notification not translated"),
        }
        None
    }

    /// The Tether item of an `item/started` or `item/completed`: Codex's item with a
    /// Tether id, its times, and (for `userMessage`) the input as given. `None`, logged,
    /// for an item that cannot be read.
    fn item(&self, turn: &mut Turn, params: &Value, completed: bool) -> Option<ThreadItem> {
        let raw = params.get("item")?;
        let codex_id = raw.get("id").and_then(Value::as_str).unwrap_or_default();
        let id = turn.tether_id(codex_id);
        let at = params
            .get(if completed {
                "completedAtMs"
            } else {
                "startedAtMs"
            })
            .and_then(Value::as_u64)
            .unwrap_or_else(now_ms);
        let mut obj = raw.as_object()?.clone();
        obj.insert("id".to_owned(), json!(id));
        let key = if completed {
            "completedAtMs"
        } else {
            "startedAtMs"
        };
        if obj.get(key).is_none_or(Value::is_null) {
            obj.insert(key.to_owned(), json!(at));
        }
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind == "userMessage" {
            return Some(ThreadItem::UserMessage(UserMessageItem {
                id,
                content: self.input.clone(),
                started_at_ms: Some(at),
                completed_at_ms: Some(at),
            }));
        }
        match serde_json::from_value::<ThreadItem>(Value::Object(obj.clone())) {
            Ok(item) => Some(item),
            Err(first) => {
                // A command action this host does not model: kept as `unknown`.
                if kind == "commandExecution" {
                    let command = obj.get("command").cloned().unwrap_or_default();
                    obj.insert(
                        "commandActions".to_owned(),
                        json!([{"type": "unknown", "command": command}]),
                    );
                    if let Ok(item) = serde_json::from_value::<ThreadItem>(Value::Object(obj)) {
                        return Some(item);
                    }
                }
                tracing::trace!(%kind, "codex item skipped: {first}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_codex_accepts() {
        assert_eq!(codex_decision(&ApprovalDecision::Accept), "accept");
        assert_eq!(
            codex_decision(&ApprovalDecision::AcceptForSession),
            "acceptForSession"
        );
        assert_eq!(codex_decision(&ApprovalDecision::Decline), "decline");
        assert_eq!(codex_decision(&ApprovalDecision::Cancel), "cancel");
        assert_eq!(
            codex_decision(&ApprovalDecision::AcceptWithExecpolicyAmendment {
                execpolicy_amendment: vec!["ls".to_owned()]
            }),
            "decline"
        );
        assert_eq!(turn_status(Some("completed")), TurnStatus::Completed);
        assert_eq!(turn_status(Some("interrupted")), TurnStatus::Interrupted);
        assert_eq!(turn_status(Some("inProgress")), TurnStatus::Failed);
        assert_eq!(turn_status(None), TurnStatus::Failed);
    }
}
