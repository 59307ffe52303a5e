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
//!                run in the thread's sandbox      outputDelta* (text, CMD-40)
//!              item/completed
//! otherwise    agentMessage (echo) item/started, item/completed
//! finished     completed | interrupted (cancel, turn/interrupt)
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_proto::cmd::methods::{ApprovalTether, CommandExecutionRequestApprovalParams};
use tether_proto::cmd::types::{
    AgentMessageItem, ApprovalDecision, ApprovalPolicy, CommandAction, CommandExecutionItem,
    CommandExecutionStatus, SandboxMode, ThreadItem, TurnStatus, UserInput, UserMessageItem,
};
use tether_proto::limits::{DEFAULT_EXEC_TIMEOUT, DEFAULT_OUTPUT_CAP, MAX_OUTPUT_CHUNK};
use tokio::sync::{mpsc, oneshot, watch};

use super::clock::now_ms;
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
    /// A piece of a command's output (`item/commandExecution/outputDelta`).
    Output {
        /// The `commandExecution` item.
        item_id: String,
        /// The text, at most 16 384 bytes of UTF-8 (`CMD-40`).
        delta: String,
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
    Finished {
        /// Its final state.
        status: TurnStatus,
        /// How long it ran.
        duration: Duration,
    },
    /// Not a turn's event (its `turn_id` is empty): the instruction files of a thread
    /// being opened were read, or their time ran out (`CMD-72`); the manager sends the
    /// deferred `thread/start`, `thread/resume` or `tether/thread/import` answer.
    Opened(Box<OpenDone>),
    /// The `codex` agent started a Codex thread for this thread (spec 5.14): its id is
    /// stored in the thread's record.
    CodexThread(String),
}

/// One turn of the test agent.
pub(crate) struct TurnJob {
    pub thread_id: String,
    pub turn_id: String,
    /// The text of the first `text` input element.
    pub text: String,
    /// The whole input, for the `userMessage` item.
    pub input: Vec<UserInput>,
    /// When the turn started.
    pub started: Instant,
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
fn accepted(d: &ApprovalDecision) -> bool {
    matches!(
        d,
        ApprovalDecision::Accept | ApprovalDecision::AcceptForSession
    )
}

/// Decodes a command's output as UTF-8 incrementally (section 5.4): a sequence split
/// across two reads is held for the next one; an invalid sequence becomes U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    held: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `chunk` (after what was held), holding an incomplete sequence at its
    /// end for the next call.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> String {
        self.held.extend_from_slice(chunk);
        let mut out = String::new();
        let mut rest: &[u8] = &self.held;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        // Invalid: replaced, and decoding goes on after it.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = bad.get(n..).unwrap_or_default();
                        }
                        // Incomplete at the end: held for the next chunk.
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        self.held = rest.to_vec();
        out
    }

    /// What is still held at the end of the output, replaced by U+FFFD.
    pub(crate) fn finish(&mut self) -> String {
        if self.held.is_empty() {
            String::new()
        } else {
            self.held.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

/// Splits `text` into pieces of at most `max` bytes, on character boundaries (`CMD-40`).
pub(crate) fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        out.push(piece.to_owned());
        rest = tail;
    }
    out
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
        let at = now_ms();
        let user = ThreadItem::UserMessage(UserMessageItem {
            id: item_id(),
            content: self.input.clone(),
            started_at_ms: Some(at),
            completed_at_ms: Some(at),
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
                let at = now_ms();
                let reply = ThreadItem::AgentMessage(AgentMessageItem {
                    id: item_id(),
                    text: self.text.clone(),
                    started_at_ms: Some(at),
                    completed_at_ms: Some(at),
                });
                self.send(TurnEventKind::ItemStarted(reply.clone()));
                self.send(TurnEventKind::ItemCompleted(reply));
            }
        }
        // 4.
        if self.interrupted() {
            status = TurnStatus::Interrupted;
        }
        self.send(TurnEventKind::Finished {
            status,
            duration: self.started.elapsed(),
        });
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
                started_at_ms: now_ms(),
                command: item.command.clone(),
                cwd: item.cwd.clone(),
                command_actions: item.command_actions.clone(),
                reason: Some(reason.to_owned()),
                // CMD-29: the four decisions the host takes.
                available_decisions: Some(ApprovalDecision::STANDARD.to_vec()),
                tether: Some(ApprovalTether { sandbox }),
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
            command_actions: CommandAction::unknown(command),
            exit_code: None,
            aggregated_output: None,
            duration_ms: None,
            started_at_ms: Some(now_ms()),
            completed_at_ms: None,
        };
        // CMD-28: the item starts before any approval request.
        self.send(TurnEventKind::ItemStarted(ThreadItem::CommandExecution(
            item.clone(),
        )));
        // CMD-27: `untrusted` asks before the run; `on-request` and `never` do not (the
        // test agent never asks to leave the sandbox, CMD-59).
        if self.policy == ApprovalPolicy::Untrusted {
            let decision = self.ask(&item, self.sandbox, "policy untrusted").await;
            if !accepted(&decision) {
                // CMD-29: decline and cancel do not run it.
                item.status = CommandExecutionStatus::Declined;
                item.completed_at_ms = Some(now_ms());
                self.send(TurnEventKind::ItemCompleted(ThreadItem::CommandExecution(
                    item,
                )));
                return decision == ApprovalDecision::Cancel || self.interrupted();
            }
        }
        let run = self.run_once(&item, self.sandbox).await;
        item.status = if run.succeeded() {
            CommandExecutionStatus::Completed
        } else {
            CommandExecutionStatus::Failed
        };
        item.exit_code = run.exit_code;
        item.aggregated_output = Some(String::from_utf8_lossy(&run.output).into_owned());
        item.duration_ms = Some(u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX));
        item.completed_at_ms = Some(now_ms());
        self.send(TurnEventKind::ItemCompleted(ThreadItem::CommandExecution(
            item,
        )));
        self.interrupted()
    }

    /// `item/commandExecution/outputDelta`s for `text`, in pieces of at most 16 384 bytes
    /// (`CMD-40`); nothing for no text.
    fn send_output(&self, item_id: &str, text: &str) {
        for delta in split_text(text, MAX_OUTPUT_CHUNK) {
            self.send(TurnEventKind::Output {
                item_id: item_id.to_owned(),
                delta,
            });
        }
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
        // Section 5.4: stdout and stderr merged in the order read, as text.
        let mut text = Utf8Stream::default();
        let outcome = supervise(
            child,
            pid,
            DEFAULT_OUTPUT_CAP,
            DEFAULT_EXEC_TIMEOUT,
            self.kill.clone(),
            |_stream, chunk, _cap_reached| {
                output.extend_from_slice(chunk);
                self.send_output(&item.id, &text.push(chunk));
            },
        )
        .await;
        self.send_output(&item.id, &text.finish());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 5.4: a sequence split across reads is held; an invalid one becomes U+FFFD;
    /// an incomplete one at the end too.
    #[test]
    fn output_is_decoded_incrementally() {
        let mut d = Utf8Stream::default();
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(d.push(&[b'a', euro[0]]), "a");
        assert_eq!(d.push(&euro[1..2]), "");
        assert_eq!(d.push(&[euro[2], b'b']), "€b");
        assert_eq!(d.push(&[0xFF, b'c']), "\u{FFFD}c");
        assert_eq!(d.push(&[0xE2, 0x82]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
        assert_eq!(d.finish(), "");
    }

    /// CMD-40: pieces of at most the limit, on character boundaries.
    #[test]
    fn text_is_split_on_character_boundaries() {
        let text = "é".repeat(10); // 20 bytes
        let pieces = split_text(&text, 5);
        assert!(pieces.iter().all(|p| p.len() <= 5), "{pieces:?}");
        assert_eq!(pieces.concat(), text);
        assert!(split_text("", 5).is_empty());
    }
}
