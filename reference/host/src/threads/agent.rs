//! The deterministic test agent (`CMD-59`), one tokio task per turn.
//!
//! It reports what it does as [`TurnEvent`]s on the channel the runtime drains; the
//! [`ThreadManager`](super::ThreadManager) persists them and fans them out to the attached
//! sessions. To run a command it asks the manager for an approval when the thread's policy
//! says so (the manager decides whether the command is trusted or granted, `CMD-27`), then
//! runs `sh -c <command>` under the thread's sandbox like `command/exec` does (`CMD-44`),
//! with the default output cap and time limit (`CMD-41`, `CMD-42`).
//!
//! ```text
//! userMessage  item/started, item/completed
//! "$ cmd"      commandExecution item/started
//!                [untrusted: approval]            decline/cancel -> declined
//!                run in the thread's sandbox      outputDelta*
//!                [on-failure, failed: approval for danger-full-access, re-run]
//!              item/completed
//! otherwise    agentMessage (echo) item/started, item/completed
//! finished     completed | interrupted (cancel, turn/interrupt)
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::cmd::methods::CommandExecutionRequestApprovalParams;
use tether_proto::cmd::types::{
    AgentMessageItem, ApprovalDecision, ApprovalPolicy, CommandExecutionItem,
    CommandExecutionStatus, OutputStream, SandboxMode, ThreadItem, TurnStatus, UserMessageItem,
};
use tether_proto::limits::{DEFAULT_EXEC_TIMEOUT, DEFAULT_OUTPUT_CAP};
use tokio::sync::{mpsc, oneshot, watch};

use super::opening::OpenDone;
use crate::exec::{CommandConfig, KillReason, kill_group, supervise};

/// What a turn reports to the runtime.
#[derive(Debug)]
pub struct TurnEvent {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// What happened.
    pub kind: TurnEventKind,
}

/// What happened in a turn.
#[derive(Debug)]
#[non_exhaustive]
pub enum TurnEventKind {
    /// An item started (`item/started`).
    ItemStarted(ThreadItem),
    /// A chunk of a command's output (`item/commandExecution/outputDelta`).
    Output {
        /// The `commandExecution` item.
        item_id: String,
        /// Which stream.
        stream: OutputStream,
        /// At most 16 KiB of raw output (`CMD-40`).
        chunk: Vec<u8>,
        /// The chunk reaches the output cap (`CMD-41`).
        cap_reached: bool,
    },
    /// An item completed, in its final state (`item/completed`).
    ItemCompleted(ThreadItem),
    /// The agent needs an approval before it runs a command (`CMD-27`); the manager
    /// answers on `reply` (at once when the command is trusted or granted).
    Approval {
        /// The request to send, without its id.
        params: CommandExecutionRequestApprovalParams,
        /// Where the decision goes.
        reply: oneshot::Sender<ApprovalDecision>,
    },
    /// The turn is over (`turn/completed`); nothing about it follows.
    Finished(TurnStatus),
    /// Not a turn's event (its `turn_id` is empty): the instruction files of a thread
    /// being opened were read, or their time ran out (`CMD-72`); the manager sends the
    /// deferred `thread/start`, `thread/resume` or `tether/thread/import` answer.
    Opened(Box<OpenDone>),
}

/// One turn of the test agent.
pub(crate) struct TurnJob {
    pub thread_id: String,
    pub turn_id: String,
    /// The text of the first `text` input element.
    pub text: String,
    pub cwd: String,
    pub sandbox: SandboxMode,
    pub policy: ApprovalPolicy,
    /// The number of the first item id this turn may use (`item_<n>`, two are reserved).
    pub first_item: u64,
    pub config: Arc<CommandConfig>,
    pub events: mpsc::UnboundedSender<TurnEvent>,
    /// `Terminate` when the turn is interrupted (`CMD-23`); dropped when the host stops.
    pub kill: watch::Receiver<KillReason>,
}

/// The outcome of one run of a command.
struct Run {
    exit_code: Option<i32>,
    output: Vec<u8>,
    duration: Duration,
}

impl Run {
    fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Kills a process group when dropped (a turn task dropped with its runtime, `CMD-37`).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            kill_group(pid);
        }
    }
}

/// Whether a decision lets the command run (`CMD-29`).
fn accepted(d: ApprovalDecision) -> bool {
    matches!(
        d,
        ApprovalDecision::Accept | ApprovalDecision::AcceptForSession
    )
}

impl TurnJob {
    fn send(&self, kind: TurnEventKind) {
        let _ = self.events.send(TurnEvent {
            thread_id: self.thread_id.clone(),
            turn_id: self.turn_id.clone(),
            kind,
        });
    }

    fn interrupted(&self) -> bool {
        *self.kill.borrow() != KillReason::Running || self.events.is_closed()
    }

    /// Runs the turn to its end (`CMD-59`).
    pub(crate) async fn run(self) {
        let mut next = self.first_item;
        let mut item_id = || {
            let id = format!("item_{next}");
            next += 1;
            id
        };
        // 1. The user's message.
        let user = ThreadItem::UserMessage(UserMessageItem {
            id: item_id(),
            text: self.text.clone(),
        });
        self.send(TurnEventKind::ItemStarted(user.clone()));
        self.send(TurnEventKind::ItemCompleted(user));
        let mut status = TurnStatus::Completed;
        match self.text.strip_prefix("$ ").filter(|rest| !rest.is_empty()) {
            // 2. A proposed command.
            Some(command) => {
                if self.command(item_id(), command).await {
                    status = TurnStatus::Interrupted;
                }
            }
            // 3. An echo.
            None => {
                let reply = ThreadItem::AgentMessage(AgentMessageItem {
                    id: item_id(),
                    text: self.text.clone(),
                });
                self.send(TurnEventKind::ItemStarted(reply.clone()));
                self.send(TurnEventKind::ItemCompleted(reply));
            }
        }
        // 4.
        if self.interrupted() {
            status = TurnStatus::Interrupted;
        }
        self.send(TurnEventKind::Finished(status));
    }

    async fn ask(
        &self,
        item: &CommandExecutionItem,
        sandbox: SandboxMode,
        reason: &str,
    ) -> ApprovalDecision {
        let (reply, decision) = oneshot::channel();
        self.send(TurnEventKind::Approval {
            params: CommandExecutionRequestApprovalParams {
                thread_id: self.thread_id.clone(),
                turn_id: self.turn_id.clone(),
                item_id: item.id.clone(),
                command: item.command.clone(),
                cwd: item.cwd.clone(),
                sandbox,
                reason: Some(reason.to_owned()),
            },
            reply,
        });
        // The manager is gone (the host stops): nothing runs.
        decision.await.unwrap_or(ApprovalDecision::Cancel)
    }

    /// Proposes, approves and runs one command; returns whether the turn was interrupted
    /// (a `cancel` decision or `turn/interrupt`).
    async fn command(&self, id: String, command: &str) -> bool {
        let mut item = CommandExecutionItem {
            id,
            command: command.to_owned(),
            cwd: self.cwd.clone(),
            status: CommandExecutionStatus::InProgress,
            exit_code: None,
            aggregated_output: None,
            duration_ms: None,
        };
        // CMD-28: the item starts before any approval request.
        self.send(TurnEventKind::ItemStarted(ThreadItem::CommandExecution(
            item.clone(),
        )));
        // CMD-27: `untrusted` asks before the first run; `on-failure`, `on-request` and
        // `never` do not (the test agent never asks to leave the sandbox, CMD-59).
        if self.policy == ApprovalPolicy::Untrusted {
            let decision = self.ask(&item, self.sandbox, "policy untrusted").await;
            if !accepted(decision) {
                // CMD-29: decline and cancel do not run it.
                item.status = CommandExecutionStatus::Declined;
                self.send(TurnEventKind::ItemCompleted(ThreadItem::CommandExecution(
                    item,
                )));
                return decision == ApprovalDecision::Cancel || self.interrupted();
            }
        }
        let mut run = self.run_once(&item, self.sandbox).await;
        let mut cancelled = false;
        // CMD-27: under on-failure, a failed run in a sandbox may be re-run once without
        // it, after an approval that names danger-full-access (CMD-47).
        if self.policy == ApprovalPolicy::OnFailure
            && !run.succeeded()
            && self.sandbox != SandboxMode::DangerFullAccess
            && !self.interrupted()
        {
            let decision = self
                .ask(
                    &item,
                    SandboxMode::DangerFullAccess,
                    "the command failed in the sandbox; run it again without it?",
                )
                .await;
            if accepted(decision) && !self.interrupted() {
                run = self.run_once(&item, SandboxMode::DangerFullAccess).await;
            } else {
                cancelled = decision == ApprovalDecision::Cancel;
            }
        }
        item.status = if run.succeeded() {
            CommandExecutionStatus::Completed
        } else {
            CommandExecutionStatus::Failed
        };
        item.exit_code = run.exit_code;
        item.aggregated_output = Some(String::from_utf8_lossy(&run.output).into_owned());
        item.duration_ms = Some(u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX));
        self.send(TurnEventKind::ItemCompleted(ThreadItem::CommandExecution(
            item,
        )));
        cancelled || self.interrupted()
    }

    /// One run of `sh -c <command>` under `mode` (`CMD-44`, `CMD-46`).
    async fn run_once(&self, item: &CommandExecutionItem, mode: SandboxMode) -> Run {
        let started = Instant::now();
        let failed = |text: String| Run {
            exit_code: None,
            output: text.into_bytes(),
            duration: started.elapsed(),
        };
        if self.interrupted() {
            return failed("interrupted before it ran\n".to_owned());
        }
        // The host may have lost a mechanism since the thread started (CMD-46): then the
        // command is refused by the sandbox and the item fails.
        let report = match self.config.sandbox_for(mode) {
            Ok(r) => r,
            Err(e) => return failed(format!("{e}\n")),
        };
        let cwd = PathBuf::from(&item.cwd);
        let args = ["-c".to_owned(), item.command.clone()];
        // CMD-44, CMD-48: a turn's commands may write under the thread's project root.
        let root = tether_sandbox::project_root(&cwd);
        let mut command =
            match self
                .config
                .sandboxed_command(report.enforced, "sh", &args, &cwd, &root)
            {
                Ok(c) => c,
                Err(e) => return failed(format!("{e}\n")),
            };
        command
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0) // CMD-37: its own process group
            .kill_on_drop(true);
        let child = match command.spawn() {
            Ok(c) => c,
            Err(e) => return failed(format!("cannot start sh: {e}\n")),
        };
        let pid = child.id();
        let mut guard = GroupGuard(pid);
        let mut output = Vec::new();
        let outcome = supervise(
            child,
            pid,
            DEFAULT_OUTPUT_CAP,
            DEFAULT_EXEC_TIMEOUT,
            self.kill.clone(),
            |stream, chunk, cap_reached| {
                output.extend_from_slice(chunk);
                self.send(TurnEventKind::Output {
                    item_id: item.id.clone(),
                    stream,
                    chunk: chunk.to_vec(),
                    cap_reached,
                });
            },
        )
        .await;
        // The group is dead (supervise kills it when the child exits).
        guard.0 = None;
        Run {
            exit_code: match outcome.status {
                Some(Ok(s)) => s.code(),
                _ => None,
            },
            output,
            duration: started.elapsed(),
        }
    }
}
