//! Approvals (`spec/05-command-protocol.md`, section 5.5): who is asked, which answer wins,
//! what the others are told, and when an approval runs out — for every thread of a host,
//! without I/O.
//!
//! ```text
//!            ask(thread, params, attached)                     attach(thread, session)
//!   (none) ───────────────────────────────► Pending ◄─────────── (the request goes to a
//!      ▲      requestApproval to each           │                 session attaching later,
//!      │      attached session (CMD-28)         │                 CMD-28, CMD-19)
//!      │                                        │ first success response with an
//!      │                                        │ ApprovalResult, from any session (CMD-30);
//!      │                                        │ deadline passed → decline (CMD-31);
//!      │                                        │ cancel(thread), the turn ended (CMD-33)
//!      │                                        ▼
//!      └────────────────────────────────── Resolved: serverRequest/resolved to every
//!                                           attached session asked, tether/cancelled
//!                                           to every other session asked; a late answer
//!                                           gets resolved again with rejectedAnswer (CMD-32)
//! ```
//!
//! The host calls [`Approvals::ask`] when its agent proposes a command that needs an
//! answer, passes every response of a controller to [`Approvals::handle_response`], calls
//! [`Approvals::handle_timeout`] at [`Approvals::poll_timeout`], and after each call sends
//! what [`Approvals::poll_outgoing`] gives (to the session named, in order) and acts on
//! what [`Approvals::poll_resolution`] gives (runs the command or not, `CMD-29`).
//!
//! Which sessions are attached to a thread is the host's to know; the calls that send to
//! them take the list. Whether a device may still answer is checked by the host before it
//! passes a response here (`CMD-75`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::envelope::{ErrorResponse, Id, Message};
use super::error::CommandError;
use super::methods::{
    ApprovalResult, CancelledParams, CommandExecutionRequestApprovalParams, RejectedAnswer,
    ResolvedTether, ServerNotification, ServerRequest, ServerRequestResolvedParams,
};
use super::types::ApprovalDecision;
use crate::link::frame::SessionId;

/// Late answers remembered per host, to tell a late answerer the approval was already
/// resolved (`CMD-32`); older ones are forgotten (then the answer is ignored, `CMD-14`).
pub const MAX_RESOLVED_REMEMBERED: usize = 1024;

/// How an approval ended, for the host to act on (`CMD-29`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The thread.
    pub thread_id: String,
    /// The decision.
    pub decision: ApprovalDecision,
    /// What was asked.
    pub params: CommandExecutionRequestApprovalParams,
    /// The session whose answer won, or `None` for the time limit or a cancelled turn.
    pub winner: Option<SessionId>,
}

/// A pending approval (`CMD-28`): at most one per thread.
#[derive(Debug)]
struct Pending {
    params: CommandExecutionRequestApprovalParams,
    /// `CMD-31`: the time limit from the first request.
    deadline: Instant,
    /// Every session the request went to, with the id it had there.
    sent: Vec<(SessionId, Id)>,
}

/// How an approval ended, for a late answer (`CMD-32`).
#[derive(Debug)]
struct Late {
    thread_id: String,
    decision: ApprovalDecision,
    resolved_by: Option<String>,
}

#[derive(Debug)]
struct SessionInfo {
    device: String,
    next_request: i64,
}

/// Every pending approval of a host. See the module documentation.
#[derive(Debug)]
pub struct Approvals {
    timeout: Duration,
    pending: HashMap<String, Pending>,
    sessions: HashMap<SessionId, SessionInfo>,
    /// Outstanding approval requests: (session, request id) -> thread id.
    requests: HashMap<(SessionId, Id), String>,
    late: HashMap<(SessionId, Id), Late>,
    late_order: VecDeque<(SessionId, Id)>,
    outgoing: VecDeque<(SessionId, Message)>,
    resolutions: VecDeque<Resolution>,
    notices: VecDeque<String>,
}

/// Why [`Approvals::ask`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyPending;

impl Approvals {
    /// No approvals; each one resolves as `decline` after `timeout` (`CMD-31`: 300 s).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            pending: HashMap::new(),
            sessions: HashMap::new(),
            requests: HashMap::new(),
            late: HashMap::new(),
            late_order: VecDeque::new(),
            outgoing: VecDeque::new(),
            resolutions: VecDeque::new(),
            notices: VecDeque::new(),
        }
    }

    /// A session was established by the device named `device` (its name goes into
    /// `resolvedBy`, `CMD-30`). Its approval requests are numbered from 1.
    pub fn session_opened(&mut self, session: SessionId, device: String) {
        self.sessions.insert(
            session,
            SessionInfo {
                device,
                next_request: 1,
            },
        );
    }

    /// A session ended: its outstanding requests and remembered late answers go with it.
    /// A pending approval stays pending (`CMD-33`).
    pub fn session_closed(&mut self, session: SessionId) {
        self.sessions.remove(&session);
        for pending in self.pending.values_mut() {
            pending.sent.retain(|(s, _)| *s != session);
        }
        self.requests.retain(|(s, _), _| *s != session);
        self.late.retain(|(s, _), _| *s != session);
        self.late_order.retain(|(s, _)| *s != session);
        self.outgoing.retain(|(s, _)| *s != session);
    }

    /// Whether `thread_id` has a pending approval.
    pub fn is_pending(&self, thread_id: &str) -> bool {
        self.pending.contains_key(thread_id)
    }

    /// Asks every session in `attached` (`CMD-28`), each with the next id of its
    /// host-to-controller id space; the time limit starts now (`CMD-31`).
    ///
    /// # Errors
    /// [`AlreadyPending`]: the thread has a pending approval (at most one per thread).
    pub fn ask(
        &mut self,
        thread_id: &str,
        params: CommandExecutionRequestApprovalParams,
        attached: &[SessionId],
        now: Instant,
    ) -> Result<(), AlreadyPending> {
        if self.pending.contains_key(thread_id) {
            return Err(AlreadyPending);
        }
        self.pending.insert(
            thread_id.to_owned(),
            Pending {
                params,
                deadline: now + self.timeout,
                sent: Vec::new(),
            },
        );
        for session in attached {
            self.attach(thread_id, *session);
        }
        Ok(())
    }

    /// `session` attached to `thread_id` (or was asked first): it gets the pending request,
    /// if there is one and it has not had it (`CMD-28`, `CMD-19`).
    pub fn attach(&mut self, thread_id: &str, session: SessionId) {
        let Some(pending) = self.pending.get_mut(thread_id) else {
            return;
        };
        if pending.sent.iter().any(|(s, _)| *s == session) {
            return;
        }
        let Some(info) = self.sessions.get_mut(&session) else {
            return;
        };
        let id = Id::Number(info.next_request);
        info.next_request += 1;
        pending.sent.push((session, id.clone()));
        let request = ServerRequest::CommandExecutionRequestApproval(pending.params.clone())
            .into_request(id.clone());
        self.requests.insert((session, id), thread_id.to_owned());
        self.outgoing
            .push_back((session, Message::Request(request)));
    }

    /// The turn of `thread_id` ended while its approval was pending: it resolves as
    /// `cancel` (`CMD-33`). `attached` are the sessions attached to the thread.
    pub fn cancel(&mut self, thread_id: &str, attached: &[SessionId]) {
        self.resolve(thread_id, ApprovalDecision::Cancel, None, attached);
    }

    /// A response of `session` (`CMD-30`, `CMD-32`, `CMD-14`). `attached` gives the
    /// sessions attached to a thread.
    pub fn handle_response(
        &mut self,
        session: SessionId,
        message: Message,
        attached: impl Fn(&str) -> Vec<SessionId>,
    ) {
        let (id, result) = match message {
            Message::Response(r) => (r.id, Some(r.result)),
            // CMD-30: an error response is not an answer; the approval stays pending.
            Message::Error(ErrorResponse { id: Some(id), .. }) => (id, None),
            _ => return,
        };
        let key = (session, id);
        if let Some(thread_id) = self.requests.get(&key).cloned() {
            let Some(result) = result else { return };
            match serde_json::from_value::<ApprovalResult>(result) {
                // CMD-29: a decision the host did not offer is not an answer either.
                Ok(r)
                    if !self
                        .pending
                        .get(&thread_id)
                        .is_some_and(|p| p.params.offers(&r.decision)) =>
                {
                    self.notices.push_back(format!(
                        "session {session}: approval answer ignored: decision {} was not offered",
                        r.decision.as_str()
                    ));
                }
                Ok(r) => {
                    self.requests.remove(&key);
                    let attached = attached(&thread_id);
                    self.resolve(&thread_id, r.decision, Some(session), &attached);
                }
                // CMD-13: not an answer either.
                Err(e) => self.notices.push_back(format!(
                    "session {session}: approval answer ignored (CMD-13 BadResult): {e}"
                )),
            }
            return;
        }
        if result.is_some()
            && let Some(late) = self.late.remove(&key)
        {
            // CMD-32: nothing changes; the late answerer is told.
            let e = CommandError::ApprovalAlreadyResolved;
            let n = ServerNotification::ServerRequestResolved(ServerRequestResolvedParams {
                thread_id: late.thread_id,
                request_id: key.1,
                tether: Some(ResolvedTether {
                    decision: late.decision,
                    resolved_by: late.resolved_by,
                    rejected_answer: Some(RejectedAnswer {
                        code: e.rpc_code(),
                        message: e.to_string(),
                    }),
                }),
            });
            self.outgoing
                .push_back((session, Message::Notification(n.to_notification())));
        }
        // CMD-14: any other response is ignored.
    }

    /// When [`Approvals::handle_timeout`] is due next (`CMD-31`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// `CMD-31`: approvals without an answer in time resolve as `decline`. `attached`
    /// gives the sessions attached to a thread.
    pub fn handle_timeout(&mut self, now: Instant, attached: impl Fn(&str) -> Vec<SessionId>) {
        let mut due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        due.sort();
        for thread_id in due {
            let attached = attached(&thread_id);
            self.resolve(&thread_id, ApprovalDecision::Decline, None, &attached);
        }
    }

    /// The next message to send, and the session to send it on.
    pub fn poll_outgoing(&mut self) -> Option<(SessionId, Message)> {
        self.outgoing.pop_front()
    }

    /// The next resolved approval, for the host to act on.
    pub fn poll_resolution(&mut self) -> Option<Resolution> {
        self.resolutions.pop_front()
    }

    /// Something worth a line in the host's log (an answer that was not one).
    pub fn take_notice(&mut self) -> Option<String> {
        self.notices.pop_front()
    }

    /// `CMD-30`, `CMD-31`, `CMD-33`: `serverRequest/resolved` to every attached session the
    /// request went to, `tether/cancelled` to every other session it went to; the
    /// answer is remembered for a late answerer (`CMD-32`).
    fn resolve(
        &mut self,
        thread_id: &str,
        decision: ApprovalDecision,
        winner: Option<SessionId>,
        attached: &[SessionId],
    ) {
        let Some(pending) = self.pending.remove(thread_id) else {
            return;
        };
        let resolved_by = winner.and_then(|s| self.sessions.get(&s).map(|i| i.device.clone()));
        for session in attached {
            let Some((_, id)) = pending.sent.iter().find(|(s, _)| s == session) else {
                continue;
            };
            let n = ServerNotification::ServerRequestResolved(ServerRequestResolvedParams {
                thread_id: thread_id.to_owned(),
                request_id: id.clone(),
                tether: Some(ResolvedTether {
                    decision: decision.clone(),
                    resolved_by: resolved_by.clone(),
                    rejected_answer: None,
                }),
            });
            self.outgoing
                .push_back((*session, Message::Notification(n.to_notification())));
        }
        for (session, id) in &pending.sent {
            self.requests.remove(&(*session, id.clone()));
            if Some(*session) != winner {
                let n = ServerNotification::Cancelled(CancelledParams {
                    request_id: id.clone(),
                    reason: Some("the approval was resolved".to_owned()),
                });
                self.outgoing
                    .push_back((*session, Message::Notification(n.to_notification())));
            }
            let key = (*session, id.clone());
            self.late.insert(
                key.clone(),
                Late {
                    thread_id: thread_id.to_owned(),
                    decision: decision.clone(),
                    resolved_by: resolved_by.clone(),
                },
            );
            self.late_order.push_back(key);
        }
        while self.late_order.len() > MAX_RESOLVED_REMEMBERED {
            if let Some(old) = self.late_order.pop_front() {
                self.late.remove(&old);
            }
        }
        self.resolutions.push_back(Resolution {
            thread_id: thread_id.to_owned(),
            decision,
            params: pending.params,
            winner,
        });
    }
}
