//! Threads, turns, approvals and hand-off, from the controller's side (`spec/05` 5.3, 5.4,
//! 5.5, 5.9).
//!
//! | function | what |
//! |---|---|
//! | [`thread_start`], [`thread_resume`], [`thread_import`] | open a thread; the session is attached to it (`CMD-17`, `CMD-19`, `CMD-54`) |
//! | [`thread_list`], [`thread_list_all`], [`thread_read`] | look, without attaching (`CMD-20`, `CMD-21`) |
//! | [`thread_export`], [`handoff`] | move a thread to another host (`CMD-52`..`CMD-54`) |
//! | [`run_turn`], [`run_turn_until`] | start a turn and follow it to `turn/completed`, answering approvals (`CMD-22`..`CMD-33`) |
//! | [`follow_turn`] | follow a turn another controller started, answering its approvals |
//!
//! A turn is followed by reading the session's events in order: the host sends them in
//! the order of `CMD-24`, and each is handed to `on_event` as a [`TurnEvent`] as it
//! arrives. Approval requests go to an [`Approver`], whose answer may take as long as it
//! likes: the events keep flowing meanwhile, and a request that another controller
//! answered first (`serverRequest/resolved`, `CMD-30`) or that the host withdrew
//! (`tether/cancelled`, `CMD-31`, `CMD-33`) is dropped unanswered (`CMD-57`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::FutureExt;
use tether_proto::cmd::methods::{
    ApprovalResult, CommandExecutionRequestApprovalParams, ServerRequestResolvedParams,
    ThreadExportParams, ThreadImportParams, ThreadListParams, ThreadListResult, ThreadOpened,
    ThreadReadParams, ThreadReadResult, ThreadResumeParams, ThreadStartParams, TurnInterruptParams,
    TurnStartParams, TurnStartResult,
};
use tether_proto::cmd::types::{
    ApprovalDecision, CommandExecutionItem, CommandExecutionStatus, Thread, ThreadBundle,
    ThreadItem, Turn, TurnStatus, UserInput,
};
use tether_proto::cmd::{
    Id, Params, RequestParams, ServerNotification, ServerRequest, capability, codes,
};

use crate::error::ControllerError;
use crate::ops::Connection;
use crate::session::{PendingReply, Session, SessionEvent};

/// `thread/start` (`CMD-17`): creates a thread and attaches the session to it.
///
/// # Errors
/// [`ControllerError::Rpc`] (-32602 for a bad `cwd`, -32012 `SandboxDenied`, `CMD-46`),
/// [`ControllerError::BadResult`], or the session's end.
pub async fn thread_start(
    session: &Session,
    params: &ThreadStartParams,
) -> Result<ThreadOpened, ControllerError> {
    session.call(params).await
}

/// `thread/resume` (`CMD-19`): attaches the session to a thread; pending approvals of the
/// thread follow as requests.
///
/// # Errors
/// As [`thread_start`]; -32013 `ThreadNotFound` (`CMD-18`).
pub async fn thread_resume(
    session: &Session,
    thread_id: &str,
) -> Result<ThreadOpened, ControllerError> {
    session.call(&ThreadResumeParams::new(thread_id)).await
}

/// One page of `thread/list` (`CMD-20`).
///
/// # Errors
/// [`ControllerError::Rpc`] (-32602 for a cursor the host cannot read), or the session's
/// end.
pub async fn thread_list(
    session: &Session,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<ThreadListResult, ControllerError> {
    session
        .call(&ThreadListParams {
            cursor,
            limit,
            ..ThreadListParams::default()
        })
        .await
}

/// Every thread of the host, most recently updated first, following `nextCursor` for at
/// most `max_pages` pages of 1000.
///
/// # Errors
/// As [`thread_list`]; [`ControllerError::BadResult`] when the host repeats a cursor.
pub async fn thread_list_all(
    session: &Session,
    max_pages: usize,
) -> Result<Vec<Thread>, ControllerError> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages {
        let page = thread_list(session, cursor.clone(), Some(1000)).await?;
        all.extend(page.data);
        match page.next_cursor {
            Some(next) if Some(&next) == cursor.as_ref() => {
                return Err(ControllerError::BadResult {
                    method: ThreadListParams::METHOD.to_owned(),
                    detail: "the host returned the same cursor twice".to_owned(),
                });
            }
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(all)
}

/// `thread/read` (`CMD-21`): the thread with every turn and item (`includeTurns`), in
/// `thread.turns`.
///
/// # Errors
/// -32013 `ThreadNotFound` (`CMD-18`), [`ControllerError::BadResult`], the session's end.
pub async fn thread_read(
    session: &Session,
    thread_id: &str,
) -> Result<ThreadReadResult, ControllerError> {
    session
        .call(&ThreadReadParams {
            thread_id: thread_id.to_owned(),
            include_turns: Some(true),
        })
        .await
}

/// `tether/thread/export` (`CMD-52`): the thread as a hand-off bundle.
///
/// # Errors
/// As [`thread_read`]; -32601 when the host does not offer `thread.handoff` (`CMD-16`).
pub async fn thread_export(
    session: &Session,
    thread_id: &str,
) -> Result<ThreadBundle, ControllerError> {
    let result = session
        .call(&ThreadExportParams {
            thread_id: thread_id.to_owned(),
        })
        .await?;
    Ok(result.bundle)
}

/// `tether/thread/import` (`CMD-54`): a new thread from a bundle, with `cwdRelative` resolved
/// against `project_root` (the host's default project when `None`). The session is
/// attached to it.
///
/// # Errors
/// [`ControllerError::Rpc`]: -32017 `InvalidBundle` (`CMD-53`), -32602 (no such
/// directory), -32012 (`CMD-46`); or the session's end.
pub async fn thread_import(
    session: &Session,
    bundle: ThreadBundle,
    project_root: Option<String>,
) -> Result<ThreadOpened, ControllerError> {
    session
        .call(&ThreadImportParams {
            bundle,
            project_root,
        })
        .await
}

/// Which half of a hand-off failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffStep {
    /// `tether/thread/export` on the source host.
    Export,
    /// `tether/thread/import` on the target host.
    Import,
}

impl std::fmt::Display for HandoffStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Export => "export",
            Self::Import => "import",
        })
    }
}

/// A hand-off that failed, with the step and the host it failed on.
#[derive(Debug, thiserror::Error)]
#[error("{step} on host {host}: {source}")]
pub struct HandoffError {
    /// Export or import.
    pub step: HandoffStep,
    /// The name of the host it failed on (from message 2).
    pub host: String,
    /// What failed.
    #[source]
    pub source: ControllerError,
}

/// A finished hand-off.
#[derive(Clone, Debug)]
pub struct Handoff {
    /// The bundle that moved (`CMD-52`).
    pub bundle: ThreadBundle,
    /// The new thread on the target host (`CMD-54`).
    pub opened: ThreadOpened,
}

/// Moves thread `thread_id` from `from` to `to`: `tether/thread/export` on one, `tether/thread/import`
/// on the other (`CMD-52`..`CMD-54`). The source thread stays where it is; the target
/// thread has a new id, the same history, and instructions discovered again with the
/// target host's paths (`CMD-51`). Both hosts must offer `thread.handoff` (`CMD-16`).
///
/// # Errors
/// [`HandoffError`] naming the step and the host.
pub async fn handoff(
    from: &Connection,
    to: &Connection,
    thread_id: &str,
    project_root: Option<String>,
) -> Result<Handoff, HandoffError> {
    let fail = |step, conn: &Connection, source| HandoffError {
        step,
        host: conn.session.host_info().name.clone(),
        source,
    };
    for (step, conn) in [(HandoffStep::Export, from), (HandoffStep::Import, to)] {
        if !conn
            .init
            .tether
            .capabilities
            .iter()
            .any(|c| c == capability::THREAD_HANDOFF)
        {
            return Err(fail(
                step,
                conn,
                ControllerError::Host(format!(
                    "host {} does not offer thread.handoff (CMD-16)",
                    conn.session.host_info().name
                )),
            ));
        }
    }
    let bundle = thread_export(&from.session, thread_id)
        .await
        .map_err(|e| fail(HandoffStep::Export, from, e))?;
    let opened = thread_import(&to.session, bundle.clone(), project_root)
        .await
        .map_err(|e| fail(HandoffStep::Import, to, e))?;
    Ok(Handoff { bundle, opened })
}

/// An approval request as a controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The request's id in this session's host-to-controller id space.
    pub request_id: Id,
    /// What the host asks (`CMD-28`).
    pub params: CommandExecutionRequestApprovalParams,
}

/// The future of an approval decision; `None` leaves the request unanswered (the host
/// decides `decline` after its time limit, `CMD-31`).
pub type DecisionFuture = Pin<Box<dyn Future<Output = Option<ApprovalDecision>> + Send>>;

/// Answers approval requests (`CMD-29`).
pub trait Approver {
    /// Decides on one request. The future is dropped, unanswered, when the request is
    /// resolved elsewhere or withdrawn before it completes.
    fn decide(&mut self, request: &ApprovalRequest) -> DecisionFuture;
}

/// Always the same answer (or never an answer), for scripts and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedDecision(pub Option<ApprovalDecision>);

impl Approver for FixedDecision {
    fn decide(&mut self, _request: &ApprovalRequest) -> DecisionFuture {
        let d = self.0.clone();
        Box::pin(async move { d })
    }
}

impl<F> Approver for F
where
    F: FnMut(&ApprovalRequest) -> DecisionFuture,
{
    fn decide(&mut self, request: &ApprovalRequest) -> DecisionFuture {
        self(request)
    }
}

/// Something that happened in a turn, in the order the host sent it (`CMD-24`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnEvent {
    /// `turn/started`.
    Started(Turn),
    /// `item/started`.
    ItemStarted(ThreadItem),
    /// `item/commandExecution/outputDelta` (`CMD-40`): the next piece of the command's
    /// output as text, stdout and stderr merged in the order the host read them.
    Output {
        /// The `commandExecution` item.
        item_id: String,
        /// The text.
        text: String,
    },
    /// `item/completed`.
    ItemCompleted(ThreadItem),
    /// `item/commandExecution/requestApproval` arrived; it went to the [`Approver`].
    ApprovalRequested(ApprovalRequest),
    /// This controller answered a request.
    ApprovalAnswered {
        /// The request.
        request_id: Id,
        /// The answer sent.
        decision: ApprovalDecision,
    },
    /// `serverRequest/resolved` (`CMD-30`..`CMD-33`): who decided, or (with
    /// `tether.rejectedAnswer`) that this controller's answer came too late (`CMD-32`).
    Resolved(ServerRequestResolvedParams),
    /// `tether/cancelled` for an approval request: the host withdrew it before this
    /// controller answered (`CMD-57`); it is not answered.
    ApprovalWithdrawn {
        /// The request.
        request_id: Id,
    },
    /// This controller sent `turn/interrupt` (`CMD-23`).
    InterruptSent,
    /// `turn/completed`: the last event of the turn.
    Completed(Turn),
}

/// How a turn ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnOutcome {
    /// The thread.
    pub thread_id: String,
    /// The turn in its final state, with every item (`CMD-25`).
    pub turn: Turn,
    /// True when this controller sent `turn/interrupt`.
    pub interrupted_here: bool,
    /// This controller's answers that came after the approval was resolved (`CMD-32`).
    pub rejected_answers: Vec<ServerRequestResolvedParams>,
}

/// Exit status when the turn's command was declined, by a person or by the host's time
/// limit (`CMD-29`, `CMD-31`): nothing ran.
pub const EXIT_DECLINED: i32 = 125;
/// Exit status when the turn's command ended without an exit code (killed, time limit,
/// output cap, refused by the sandbox).
pub const EXIT_NO_STATUS: i32 = 126;
/// Exit status when the turn was interrupted (`turn/interrupt` or a `cancel` decision).
pub const EXIT_INTERRUPTED: i32 = 130;

impl TurnOutcome {
    /// The last `commandExecution` item of the turn.
    pub fn last_command(&self) -> Option<&CommandExecutionItem> {
        self.turn.items.iter().rev().find_map(|i| match i {
            ThreadItem::CommandExecution(c) => Some(c),
            _ => None,
        })
    }

    /// The status a shell would report for the turn:
    ///
    /// | status | when |
    /// |---|---|
    /// | [`EXIT_INTERRUPTED`] (130) | the turn was interrupted (`turn/interrupt`, a `cancel` decision) |
    /// | the command's exit code | the last command ran and exited |
    /// | [`EXIT_DECLINED`] (125) | the last command was declined, nothing ran |
    /// | [`EXIT_NO_STATUS`] (126) | the last command ended without an exit code |
    /// | 1 | the turn failed without a command status |
    /// | 0 | the turn completed without a command |
    pub fn exit_status(&self) -> i32 {
        if self.turn.status == TurnStatus::Interrupted {
            return EXIT_INTERRUPTED;
        }
        match self.last_command() {
            Some(c) => match (c.status, c.exit_code) {
                (CommandExecutionStatus::Declined, _) => EXIT_DECLINED,
                (_, Some(code)) => code,
                (CommandExecutionStatus::Completed, None) => 0,
                (_, None) => EXIT_NO_STATUS,
            },
            None if self.turn.status == TurnStatus::Failed => 1,
            None => 0,
        }
    }
}

/// [`run_turn_until`] without an interrupt.
///
/// # Errors
/// As [`run_turn_until`].
pub async fn run_turn(
    session: &mut Session,
    thread_id: &str,
    text: &str,
    approver: &mut (dyn Approver + Send),
    on_event: impl FnMut(&TurnEvent),
) -> Result<TurnOutcome, ControllerError> {
    run_turn_until(
        session,
        thread_id,
        text,
        approver,
        std::future::pending(),
        on_event,
    )
    .await
}

/// Starts a turn on `thread_id` with `text` (`turn/start`, `CMD-22`) and follows it to
/// `turn/completed` ([`follow_turn`]). When `interrupt` completes, sends `turn/interrupt`
/// once (`CMD-23`) and keeps following until the host completes the turn.
///
/// # Errors
/// [`ControllerError::Rpc`] for a refused `turn/start` (-32013, -32018 `TurnAlreadyActive`,
/// -32010 `RemoteAccessDisabled`, ...) or a refused `turn/interrupt` other than -32014 (the
/// turn had ended), [`ControllerError::BadResult`], or the session's end.
pub async fn run_turn_until(
    session: &mut Session,
    thread_id: &str,
    text: &str,
    approver: &mut (dyn Approver + Send),
    interrupt: impl Future<Output = ()>,
    mut on_event: impl FnMut(&TurnEvent),
) -> Result<TurnOutcome, ControllerError> {
    let params = TurnStartParams::new(thread_id, vec![UserInput::text(text)]);
    let reply = session.start_request(TurnStartParams::METHOD, Some(params.to_params()));
    tokio::pin!(reply);
    tokio::pin!(interrupt);
    let mut interrupt_wanted = false;
    // Events that come before the answer wait for the turn id (CMD-24: on this session
    // the answer comes first, but the two travel different queues in this crate).
    let mut early = Vec::new();
    let answer = loop {
        tokio::select! {
            biased;
            answer = &mut reply => break answer,
            event = session.next_event() => match event {
                Some(event) => early.push(event),
                // The session is over: its task has answered every pending request.
                None => break (&mut reply).await,
            },
            () = &mut interrupt, if !interrupt_wanted => interrupt_wanted = true,
        }
    };
    let value = answer.map_err(|e| e.into_error(TurnStartParams::METHOD))?;
    let started =
        TurnStartParams::decode_result(&value).map_err(|e| ControllerError::BadResult {
            method: TurnStartParams::METHOD.to_owned(),
            detail: e.to_string(),
        })?;
    let TurnStartResult { turn } = started;
    let mut follower = Follower::new(thread_id, Some(turn.id.clone()));
    for event in early {
        if let Some(done) = follower.handle(approver, event, &mut on_event)? {
            return Ok(done);
        }
    }
    follower
        .run(
            session,
            approver,
            interrupt,
            interrupt_wanted,
            &mut on_event,
        )
        .await
}

/// Follows the next turn of `thread_id` (or the turn `turn_id`) on a session attached to
/// the thread (`CMD-26`) until `turn/completed`, handing every event to `on_event` and
/// every approval request to `approver` (`CMD-28`..`CMD-33`). When `interrupt` completes,
/// sends `turn/interrupt` once the turn id is known.
///
/// # Errors
/// A refused `turn/interrupt` other than -32014, or the session's end.
pub async fn follow_turn(
    session: &mut Session,
    thread_id: &str,
    turn_id: Option<&str>,
    approver: &mut (dyn Approver + Send),
    interrupt: impl Future<Output = ()>,
    mut on_event: impl FnMut(&TurnEvent),
) -> Result<TurnOutcome, ControllerError> {
    let follower = Follower::new(thread_id, turn_id.map(str::to_owned));
    tokio::pin!(interrupt);
    follower
        .run(session, approver, interrupt, false, &mut on_event)
        .await
}

struct Follower {
    thread_id: String,
    turn_id: Option<String>,
    pending: HashMap<Id, DecisionFuture>,
    interrupt_sent: bool,
    rejected: Vec<ServerRequestResolvedParams>,
}

impl Follower {
    fn new(thread_id: &str, turn_id: Option<String>) -> Self {
        Self {
            thread_id: thread_id.to_owned(),
            turn_id,
            pending: HashMap::new(),
            interrupt_sent: false,
            rejected: Vec::new(),
        }
    }

    async fn run(
        mut self,
        session: &mut Session,
        approver: &mut (dyn Approver + Send),
        mut interrupt: Pin<&mut impl Future<Output = ()>>,
        mut interrupt_wanted: bool,
        on_event: &mut impl FnMut(&TurnEvent),
    ) -> Result<TurnOutcome, ControllerError> {
        let mut interrupt_reply: Option<PendingReply> = None;
        loop {
            if interrupt_wanted
                && !self.interrupt_sent
                && let Some(turn_id) = self.turn_id.clone()
            {
                let params = TurnInterruptParams {
                    thread_id: self.thread_id.clone(),
                    turn_id,
                };
                interrupt_reply = Some(
                    session.start_request(TurnInterruptParams::METHOD, Some(params.to_params())),
                );
                self.interrupt_sent = true;
                on_event(&TurnEvent::InterruptSent);
            }
            tokio::select! {
                biased;
                event = session.next_event() => {
                    let Some(event) = event else {
                        return Err(ControllerError::LinkLost { detail: "session ended".to_owned() });
                    };
                    if let SessionEvent::Ended(end) = &event {
                        // CMD-55, CMD-56: a host that refuses the interrupt may close the
                        // session right after; the refusal says more than the close.
                        if let Some(Err(e)) = interrupt_reply.take().and_then(FutureExt::now_or_never) {
                            let e = e.into_error(TurnInterruptParams::METHOD);
                            if e.rpc_code().is_some_and(|c| c != codes::TURN_NOT_FOUND) {
                                return Err(e);
                            }
                        }
                        return Err(end.clone().into());
                    }
                    if let Some(done) = self.handle(approver, event, on_event)? {
                        return Ok(done);
                    }
                }
                (id, decision) = poll_pending(&mut self.pending), if !self.pending.is_empty() => {
                    if let Some(decision) = decision {
                        let result = serde_json::to_value(ApprovalResult { decision: decision.clone() })
                            .unwrap_or_default();
                        session.respond(id.clone(), result)?;
                        on_event(&TurnEvent::ApprovalAnswered { request_id: id, decision });
                    }
                }
                answer = async { match interrupt_reply.as_mut() {
                    Some(r) => r.await,
                    None => std::future::pending().await,
                } } => {
                    interrupt_reply = None;
                    if let Err(e) = answer {
                        let e = e.into_error(TurnInterruptParams::METHOD);
                        // CMD-23: -32014 means the turn had already ended; its
                        // turn/completed is on its way.
                        if e.rpc_code() != Some(codes::TURN_NOT_FOUND) {
                            return Err(e);
                        }
                    }
                }
                () = interrupt.as_mut(), if !interrupt_wanted => interrupt_wanted = true,
            }
        }
    }

    fn ours(&self, thread_id: &str, turn_id: &str) -> bool {
        thread_id == self.thread_id && self.turn_id.as_deref().is_none_or(|t| t == turn_id)
    }

    /// Handles one event; `Some` when the turn completed.
    fn handle(
        &mut self,
        approver: &mut (dyn Approver + Send),
        event: SessionEvent,
        on_event: &mut impl FnMut(&TurnEvent),
    ) -> Result<Option<TurnOutcome>, ControllerError> {
        match event {
            SessionEvent::Ended(end) => Err(end.into()),
            SessionEvent::Request(request) => {
                // The session answered every other method itself (CMD-12, CMD-13).
                if let Ok(ServerRequest::CommandExecutionRequestApproval(params)) =
                    ServerRequest::from_request(&request)
                {
                    if params.thread_id == self.thread_id && self.turn_id.is_none() {
                        self.turn_id = Some(params.turn_id.clone());
                    }
                    let request = ApprovalRequest {
                        request_id: request.id,
                        params,
                    };
                    on_event(&TurnEvent::ApprovalRequested(request.clone()));
                    let decision = approver.decide(&request);
                    self.pending.insert(request.request_id, decision);
                }
                Ok(None)
            }
            SessionEvent::Notification(n) => {
                // CMD-12, CMD-13: unknown notifications and bad params are ignored.
                let Ok(n) = ServerNotification::from_notification(&n) else {
                    tracing::debug!(method = %n.method, "ignoring a notification");
                    return Ok(None);
                };
                self.notification(n, on_event)
            }
            SessionEvent::UnmatchedResponse(_)
            | SessionEvent::Rejected(_)
            | SessionEvent::Output(_) => Ok(None),
        }
    }

    fn notification(
        &mut self,
        n: ServerNotification,
        on_event: &mut impl FnMut(&TurnEvent),
    ) -> Result<Option<TurnOutcome>, ControllerError> {
        match n {
            ServerNotification::TurnStarted(p) => {
                if p.thread_id == self.thread_id && self.turn_id.is_none() {
                    self.turn_id = Some(p.turn.id.clone());
                }
                if self.ours(&p.thread_id, &p.turn.id) {
                    on_event(&TurnEvent::Started(p.turn));
                }
            }
            ServerNotification::ItemStarted(p) => {
                self.adopt(&p.thread_id, &p.turn_id);
                if self.ours(&p.thread_id, &p.turn_id) {
                    on_event(&TurnEvent::ItemStarted(p.item));
                }
            }
            ServerNotification::ItemCompleted(p) => {
                self.adopt(&p.thread_id, &p.turn_id);
                if self.ours(&p.thread_id, &p.turn_id) {
                    on_event(&TurnEvent::ItemCompleted(p.item));
                }
            }
            ServerNotification::CommandExecutionOutputDelta(p) => {
                self.adopt(&p.thread_id, &p.turn_id);
                if self.ours(&p.thread_id, &p.turn_id) {
                    // CMD-40: checked by the decoder; a delta too long was ignored there.
                    on_event(&TurnEvent::Output {
                        item_id: p.item_id,
                        text: p.delta,
                    });
                }
            }
            ServerNotification::ServerRequestResolved(p) => {
                // CMD-30..CMD-33: resolved, by another controller or by the host; a
                // request still waiting for our approver is dropped unanswered.
                self.pending.remove(&p.request_id);
                if p.tether
                    .as_ref()
                    .is_some_and(|t| t.rejected_answer.is_some())
                {
                    self.rejected.push(p.clone());
                }
                if p.thread_id == self.thread_id {
                    on_event(&TurnEvent::Resolved(p));
                }
            }
            ServerNotification::Cancelled(p) => {
                // CMD-57: a withdrawn approval request is not answered.
                if self.pending.remove(&p.request_id).is_some() {
                    on_event(&TurnEvent::ApprovalWithdrawn {
                        request_id: p.request_id,
                    });
                }
            }
            ServerNotification::TurnCompleted(p) => {
                if p.thread_id == self.thread_id && self.turn_id.is_none() {
                    self.turn_id = Some(p.turn.id.clone());
                }
                if self.ours(&p.thread_id, &p.turn.id) {
                    on_event(&TurnEvent::Completed(p.turn.clone()));
                    return Ok(Some(TurnOutcome {
                        thread_id: p.thread_id,
                        turn: p.turn,
                        interrupted_here: self.interrupt_sent,
                        rejected_answers: std::mem::take(&mut self.rejected),
                    }));
                }
            }
            ServerNotification::CommandExecOutputDelta(_) => {}
        }
        Ok(None)
    }

    fn adopt(&mut self, thread_id: &str, turn_id: &str) {
        if thread_id == self.thread_id && self.turn_id.is_none() {
            self.turn_id = Some(turn_id.to_owned());
        }
    }
}

/// Completes with the first of the pending decisions to complete, removing it.
async fn poll_pending(pending: &mut HashMap<Id, DecisionFuture>) -> (Id, Option<ApprovalDecision>) {
    std::future::poll_fn(|cx| {
        let mut done = None;
        for (id, fut) in pending.iter_mut() {
            if let Poll::Ready(d) = fut.as_mut().poll(cx) {
                done = Some((id.clone(), d));
                break;
            }
        }
        match done {
            Some((id, d)) => {
                pending.remove(&id);
                Poll::Ready((id, d))
            }
            None => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::cmd::types::{AgentMessageItem, UserMessageItem};

    fn outcome(status: TurnStatus, items: Vec<ThreadItem>) -> TurnOutcome {
        TurnOutcome {
            thread_id: "thr_1".to_owned(),
            turn: Turn::new("turn_1", status, items),
            interrupted_here: false,
            rejected_answers: Vec::new(),
        }
    }

    fn command(status: CommandExecutionStatus, exit_code: Option<i32>) -> ThreadItem {
        ThreadItem::CommandExecution(CommandExecutionItem {
            exit_code,
            ..CommandExecutionItem::new("item_2", "cargo test", "/w", status)
        })
    }

    #[test]
    fn exit_status_mapping() {
        let user = ThreadItem::UserMessage(UserMessageItem::from_text("item_1", "hi"));
        let agent = ThreadItem::AgentMessage(AgentMessageItem::new("item_2", "hi"));
        use CommandExecutionStatus as C;
        use TurnStatus as T;
        let cases = [
            (outcome(T::Completed, vec![user.clone(), agent]), 0),
            (
                outcome(
                    T::Completed,
                    vec![user.clone(), command(C::Completed, Some(0))],
                ),
                0,
            ),
            (
                outcome(
                    T::Completed,
                    vec![user.clone(), command(C::Failed, Some(3))],
                ),
                3,
            ),
            (
                outcome(T::Completed, vec![user.clone(), command(C::Failed, None)]),
                EXIT_NO_STATUS,
            ),
            (
                outcome(T::Completed, vec![user.clone(), command(C::Declined, None)]),
                EXIT_DECLINED,
            ),
            (
                outcome(
                    T::Interrupted,
                    vec![user.clone(), command(C::Declined, None)],
                ),
                EXIT_INTERRUPTED,
            ),
            (
                outcome(T::Interrupted, vec![user.clone()]),
                EXIT_INTERRUPTED,
            ),
            (outcome(T::Failed, vec![user]), 1),
        ];
        for (o, want) in cases {
            assert_eq!(o.exit_status(), want, "{:?}", o.turn);
        }
    }

    #[tokio::test]
    async fn fixed_and_closure_approvers() {
        let request = ApprovalRequest {
            request_id: Id::from(3),
            params: CommandExecutionRequestApprovalParams {
                thread_id: "thr_1".to_owned(),
                turn_id: "turn_1".to_owned(),
                item_id: "item_2".to_owned(),
                started_at_ms: 1,
                command: "cargo test".to_owned(),
                cwd: "/w".to_owned(),
                command_actions: Vec::new(),
                reason: None,
                available_decisions: None,
                tether: None,
            },
        };
        let mut fixed = FixedDecision(Some(ApprovalDecision::Decline));
        assert_eq!(
            fixed.decide(&request).await,
            Some(ApprovalDecision::Decline)
        );
        let mut seen = Vec::new();
        let mut closure = |r: &ApprovalRequest| -> DecisionFuture {
            seen.push(r.params.command.clone());
            Box::pin(async { Some(ApprovalDecision::AcceptForSession) })
        };
        assert_eq!(
            Approver::decide(&mut closure, &request).await,
            Some(ApprovalDecision::AcceptForSession)
        );
        assert_eq!(seen, ["cargo test"]);
    }

    #[tokio::test]
    async fn poll_pending_yields_the_first_ready_decision() {
        let mut pending: HashMap<Id, DecisionFuture> = HashMap::new();
        pending.insert(Id::from(1), Box::pin(std::future::pending()));
        pending.insert(
            Id::from(2),
            Box::pin(async { Some(ApprovalDecision::Accept) }),
        );
        let (id, d) = poll_pending(&mut pending).await;
        assert_eq!((id, d), (Id::from(2), Some(ApprovalDecision::Accept)));
        assert_eq!(pending.len(), 1);
    }
}
