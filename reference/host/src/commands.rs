//! The command protocol of one session, host side (`spec/05-command-protocol.md`):
//! `initialize`, `initialized`, `command/exec` with streamed `command/exec/outputDelta`,
//! `command/exec/terminate` and `tether/cancelled`.
//!
//! A [`CommandSession`] takes the session's decrypted messages ([`CommandSession::handle`])
//! and returns the answers to send at once. A `command/exec` runs in a tokio task that
//! reports its deltas and its final answer as [`ExecEvent`]s on a channel the runtime
//! drains; the answer is the last event of its process (`CMD-36`).
//!
//! Requests are checked in the order of `CMD-61` by the core's
//! [`SessionGate`]: remote access and authorization
//! (`CMD-55`, `CMD-56`), the in-flight limit (`CMD-58`), initialization (`CMD-15`), the
//! method (`CMD-12`, `CMD-16`), the params (`CMD-13`, `CMD-43`); then the method's rules,
//! here.
//!
//! This module is the dispatcher, above [`crate::threads`]: it routes a request to the
//! process table of the session or to the [`ThreadManager`]. Starting and supervising a
//! process (the sandbox, streamed output, limits) is below both, in `exec`; its public
//! items are re-exported here ([`CommandConfig`], [`SandboxLauncher`], [`ExecEvent`],
//! [`kill_group`] …), so `tether_host::commands::…` paths stay as they were.

use std::collections::HashMap;
use std::sync::Arc;

use tether_proto::cmd::gate::{Inbound, SessionGate};
use tether_proto::cmd::methods::{CommandExecParams, CommandExecTerminateParams, EmptyResult};
use tether_proto::cmd::{ClientRequest, CommandError, Id, Message, Params};
use tether_proto::link::{CloseCode, SessionId};
use tokio::sync::mpsc;

use crate::answer::{answer, error, message_limit, response};
pub use crate::exec::{
    AgentBackend, CommandConfig, EXEC_OUTPUT_CREDIT, ExecEvent, OutputCredit, SandboxLauncher,
    approval_rank, kill_group, sandbox_rank, signal_name,
};
use crate::exec::{KillReason, ProcessHandle, Reporting, start};
use crate::state::Access;
use crate::threads::{Opening, ThreadManager};

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
    gate: SessionGate,
    processes: HashMap<String, ProcessHandle>,
    events: mpsc::UnboundedSender<ExecEvent>,
    /// The session carries records (`CHAN-31`): `outputCap` may be `null` (`CMD-43`).
    records: bool,
}

impl std::fmt::Debug for CommandSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSession")
            .field("session", &self.session)
            .field("initialized", &self.gate.is_initialized())
            .field("processes", &self.processes.len())
            .finish()
    }
}

/// A thread method that opens a thread (`CMD-72`): an error now, or the answer later
/// through the manager's outbox.
fn open_later(
    threads: &mut ThreadManager,
    id: Id,
    opening: Result<Opening, CommandError>,
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
            gate: SessionGate::new(),
            processes: HashMap::new(),
            events,
            records: false,
        }
    }

    /// Tells the session whether it carries records (`CHAN-31`), which it learns with
    /// the controller's first transport message: then `outputCap` may be `null`
    /// (`CMD-41`, `CMD-43`).
    pub fn set_records(&mut self, records: bool) {
        self.records = records;
    }

    /// Requests received and not yet answered (`CMD-58`).
    pub fn in_flight(&self) -> usize {
        self.processes.len()
    }

    /// Whether `initialize` succeeded.
    pub fn is_initialized(&self) -> bool {
        self.gate.is_initialized()
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
        mut threads: Option<&mut ThreadManager>,
    ) -> Reply {
        let one = |m| Reply {
            messages: vec![m],
            close: None,
        };
        // CMD-58: running processes and deferred `turn/interrupt` answers.
        let deferred = threads.as_deref().map_or(0, |t| t.in_flight(self.session));
        let with_threads = threads.is_some();
        // CMD-12, CMD-16: methods this host does not offer are not found, before their
        // params are looked at.
        let serves = |method: &str| {
            SERVED_METHODS.contains(&method) || (with_threads && THREAD_METHODS.contains(&method))
        };
        // CMD-61's order, CMD-15, CMD-55, CMD-56, CMD-75: the core's gate.
        match self
            .gate
            .handle(message, access, self.in_flight() + deferred, serves)
        {
            Inbound::Refused { reply, close } => Reply {
                messages: vec![reply],
                close,
            },
            Inbound::Close(code) => Reply {
                messages: Vec::new(),
                close: Some(code),
            },
            Inbound::Initialize { id, .. } => one(response(
                id,
                &self.config.initialize_result_for(with_threads),
            )),
            // CMD-15: the controller is ready for the host's requests and notifications.
            Inbound::Ready => {
                if let Some(threads) = threads {
                    threads.session_ready(self.session);
                }
                Reply::default()
            }
            Inbound::Cancel { request_id } => {
                self.cancel(&request_id);
                Reply::default()
            }
            // CMD-30, CMD-32: answers to approval requests; CMD-14: any other response is
            // ignored.
            Inbound::Response(response) => {
                if let Some(threads) = threads.as_deref_mut() {
                    threads.handle_response(self.session, response);
                }
                Reply::default()
            }
            Inbound::Request { id, request } => self.dispatch(id, request, threads),
            _ => Reply::default(),
        }
    }

    /// A request past the gate: its method's own rules.
    fn dispatch(
        &mut self,
        id: Id,
        request: ClientRequest,
        threads: Option<&mut ThreadManager>,
    ) -> Reply {
        let one = |m| Reply {
            messages: vec![m],
            close: None,
        };
        let session = self.session;
        let max = message_limit(self.records);
        match (request, threads) {
            // A started process answers later, from its task (CMD-36).
            (ClientRequest::CommandExec(p), _) => Reply {
                messages: self.exec(id, p).into_iter().collect(),
                close: None,
            },
            (ClientRequest::CommandExecTerminate(p), _) => one(self.terminate(id, &p)),
            // CMD-77
            (ClientRequest::HostInfo(_), _) => one(response(id, &self.config.host_info())),
            // CMD-72: answered once the thread's instruction files are read off this
            // task, through the manager's outbox.
            (ClientRequest::ThreadStart(p), Some(t)) => {
                let opening = t.begin_thread_start(session, &p);
                open_later(t, id, opening)
            }
            (ClientRequest::ThreadResume(p), Some(t)) => {
                // CMD-19: the answer carries the turns, fitted to this session (CMD-2).
                let opening = t
                    .begin_thread_resume(session, &p)
                    .map(|o| o.with_max_len(max));
                open_later(t, id, opening)
            }
            (ClientRequest::ThreadList(p), Some(t)) => one(answer(id, t.thread_list(&p), max)),
            (ClientRequest::ThreadRead(p), Some(t)) => one(answer(id, t.thread_read(&p), max)),
            (ClientRequest::TurnStart(p), Some(t)) => {
                one(answer(id, t.turn_start(session, &p), max))
            }
            // CMD-23: answered after `turn/completed`, through the manager's outbox.
            (ClientRequest::TurnInterrupt(p), Some(t)) => {
                match t.turn_interrupt(session, id.clone(), &p) {
                    Ok(()) => Reply::default(),
                    Err(e) => one(error(id, &e)),
                }
            }
            (ClientRequest::ThreadExport(p), Some(t)) => one(answer(id, t.thread_export(&p), max)),
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
        // CMD-43: no cap only where the window keeps the output at the reader's pace.
        if params.disable_output_cap && !self.records {
            return Some(error(
                id,
                &CommandError::InvalidParams {
                    method: <CommandExecParams as Params>::METHOD.to_owned(),
                    detail: "disableOutputCap needs a session with records (channel.flow, CMD-43)"
                        .to_owned(),
                },
            ));
        }
        // CMD-34: process ids are unique among the session's running processes. A
        // process without one (its output goes in the result) is kept under a name no
        // controller sends in practice, unique by its request id (CMD-58).
        let process_id = params
            .process_id
            .clone()
            .unwrap_or_else(|| format!("\0request {}", id.to_value()));
        if self.processes.contains_key(&process_id) {
            return Some(error(
                id,
                &CommandError::InvalidParams {
                    method: <CommandExecParams as Params>::METHOD.to_owned(),
                    detail: format!("processId {process_id:?} is already running"),
                },
            ));
        }
        // CMD-46, CMD-47
        let requested = match params.sandbox_mode() {
            Ok(mode) => mode.unwrap_or(self.config.default_sandbox),
            Err(e) => return Some(error(id, &e)),
        };
        let report = match self.config.sandbox_for(requested) {
            Ok(r) => r,
            Err(e) => return Some(error(id, &e)),
        };
        // CMD-34, CMD-35: spawned in its own group; its task streams and answers.
        let to = Reporting {
            session: self.session,
            events: &self.events,
            records: self.records,
        };
        match start(
            &self.config,
            to,
            id.clone(),
            &params,
            process_id.clone(),
            cwd,
            report,
        ) {
            Ok(handle) => {
                self.processes.insert(process_id, handle);
                None
            }
            Err(e) => Some(error(id, &e)),
        }
    }
}

/// The methods every host serves (`CMD-16`: `command.exec` is offered).
const SERVED_METHODS: &[&str] = &[
    "initialize",
    "command/exec",
    "command/exec/terminate",
    "tether/host/info",
];

/// The methods a host with a [`ThreadManager`] serves too (`agent.test`,
/// `thread.handoff`).
const THREAD_METHODS: &[&str] = &[
    "thread/start",
    "thread/resume",
    "thread/list",
    "thread/read",
    "turn/start",
    "turn/interrupt",
    "tether/thread/export",
    "tether/thread/import",
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};
    use tether_proto::cmd::methods::{
        CommandExecOutputDeltaParams, CommandExecReport, CommandExecResult, decode_delta,
    };
    use tether_proto::cmd::types::{ApprovalPolicy, OutputStream, SandboxMode};
    use tether_proto::cmd::{ErrorResponse, Response, ServerNotification, codes};
    use tether_proto::limits::MAX_OUTPUT_CHUNK;

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
        Message::Request(tether_proto::cmd::Request::new(id, method, Some(params)))
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
                json!({"clientInfo":{"name":"t","version":"1"},"tether":{"protocolVersion":"tether/2"}}),
            ),
        )
        .unwrap();
        let Message::Response(r) = r else {
            panic!("{r:?}")
        };
        assert_eq!(r.result["tether"]["capabilities"], json!(["command.exec"]));
        s.handle(
            Message::Notification(tether_proto::cmd::Notification::new("initialized", None)),
            Access::Allowed,
        );
    }

    fn exec(id: i64, pid: &str, command: &[&str], extra: Value) -> Message {
        let mut p = json!({"command": command, "cwd": "/", "processId": pid, "streamStdoutStderr": true, "sandboxPolicy": {"type": "dangerFullAccess"}});
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
                // These sessions carry no records (CMD-76).
                ExecEvent::Chunk { .. } => panic!("an OUTPUT chunk in a version 1 session"),
            }
        }
    }

    /// The `tether` report of a `command/exec` result (`CMD-39`).
    fn result(m: &Message) -> CommandExecReport {
        full_result(m).tether
    }

    fn full_result(m: &Message) -> CommandExecResult {
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
                json!({"clientInfo":{"name":"t","version":"1"},"tether":{"protocolVersion":"tether/1"}}),
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
                json!({"clientInfo":{"name":"t","version":"1"},"tether":{"protocolVersion":"tether/2"}}),
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
            "tether/cancelled",
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
        // CMD-35: streamed, so not repeated in the result.
        let full = full_result(&out.answer);
        assert_eq!((full.exit_code, &*full.stdout, &*full.stderr), (3, "", ""));
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

    /// CMD-35, CMD-39, CMD-41: without streamStdoutStderr (and without a processId) the
    /// output comes in the result as text, not as deltas, capped at 8 192 bytes over both
    /// streams by default.
    #[tokio::test]
    async fn cmd_35_buffered_output_in_the_result() {
        let (mut s, mut rx) = session(false);
        init(&mut s);
        let m = request(
            2,
            "command/exec",
            json!({"command": ["sh", "-c", "printf 'out\\377'; printf err >&2; exit 3"], "cwd": "/", "sandboxPolicy": {"type": "dangerFullAccess"}}),
        );
        assert!(one(&mut s, m).is_none(), "started");
        let out = collect(&mut s, &mut rx).await;
        assert!(
            out.deltas.is_empty(),
            "no deltas without streamStdoutStderr"
        );
        let r = full_result(&out.answer);
        assert_eq!(r.exit_code, 3);
        assert_eq!(r.stdout, "out\u{FFFD}");
        assert_eq!(r.stderr, "err");
        assert_eq!(r.tether.exit_code, Some(3));
        assert!(!r.tether.cap_reached);
        // The buffered default cap: 8 192 bytes, then the group is killed.
        let m = request(
            3,
            "command/exec",
            json!({"command": ["seq", "1", "100000"], "cwd": "/", "sandboxPolicy": {"type": "dangerFullAccess"}}),
        );
        assert!(one(&mut s, m).is_none(), "started");
        let out = collect(&mut s, &mut rx).await;
        assert!(out.deltas.is_empty());
        let r = full_result(&out.answer);
        assert_eq!(r.stdout.len() + r.stderr.len(), 8192);
        assert!(r.tether.cap_reached);
        assert_eq!(r.exit_code, 137);
        // A buffered cap above 8 192 is refused (CMD-43), as is streaming without a
        // processId (CMD-34).
        for params in [
            json!({"command": ["true"], "cwd": "/", "outputBytesCap": 8193}),
            json!({"command": ["true"], "cwd": "/", "streamStdoutStderr": true}),
            json!({"command": ["true"], "cwd": "/", "processId": "p", "streamStdoutStderr": true, "disableOutputCap": true}),
        ] {
            let m = one(&mut s, request(4, "command/exec", params.clone())).unwrap();
            assert_eq!(err_code(&m), codes::INVALID_PARAMS, "{params}");
        }
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
                    json!({"outputBytesCap": 10})
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
        // CMD-39: Codex's exitCode for SIGKILL.
        assert_eq!(full_result(&out.answer).exit_code, 137);

        // Output of exactly the cap is not "reached".
        assert!(
            one(
                &mut s,
                exec(3, "q", &["printf", "12345"], json!({"outputBytesCap": 5}))
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
                "tether/cancelled",
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
        for mode in ["readOnly", "workspaceWrite"] {
            let m = one(
                &mut s,
                exec(2, "p", &["true"], json!({"sandboxPolicy": {"type": mode}})),
            )
            .unwrap();
            assert_eq!(err_code(&m), codes::SANDBOX_DENIED);
        }
        // CMD-47: the default mode (workspace-write) applies when none is named.
        let mut p = json!({"command": ["true"], "cwd": "/", "processId": "p"});
        p.as_object_mut().unwrap().remove("sandboxPolicy");
        let m = one(&mut s, request(3, "command/exec", p)).unwrap();
        assert_eq!(err_code(&m), codes::SANDBOX_DENIED);

        let (mut s, mut rx) = session(true);
        init(&mut s);
        assert!(
            one(
                &mut s,
                exec(
                    2,
                    "p",
                    &["true"],
                    json!({"sandboxPolicy": {"type": "readOnly"}})
                )
            )
            .is_none()
        );
        let out = collect(&mut s, &mut rx).await;
        let r = result(&out.answer);
        let Message::Response(resp) = &out.answer else {
            panic!()
        };
        assert_eq!(
            resp.result["tether"]["sandbox"],
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
                    json!({"outputBytesCap": 16 << 20})
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
        assert_eq!(full_result(&out.answer).exit_code, 124, "CMD-39");
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
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
            json!({"command": ["sh", "-c", "pwd -P"], "processId": "p", "streamStdoutStderr": true, "sandboxPolicy": {"type": "dangerFullAccess"}}),
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
            max_approval_policy: ApprovalPolicy::OnRequest,
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
        for ok in [ApprovalPolicy::Untrusted, ApprovalPolicy::OnRequest] {
            capped.check_approval_policy(ok).unwrap();
        }
        let e = capped
            .check_approval_policy(ApprovalPolicy::Never)
            .unwrap_err();
        assert_eq!(e.rpc_code(), codes::SANDBOX_DENIED);
        assert!(e.to_string().contains("SEC-15"), "{e}");
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
                json!({"sandboxPolicy": {"type": "dangerFullAccess"}}),
            ),
        )
        .unwrap();
        assert_eq!(err_code(&m), codes::SANDBOX_DENIED);
        assert!(!marker.exists());
        assert!(rx.try_recv().is_err(), "nothing started");
    }
}
