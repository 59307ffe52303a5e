//! Threads, turns, approvals and hand-off on the host (`spec/05` sections 5.3 to 5.5, 5.8,
//! 5.9, 5.11).
//!
//! One [`ThreadManager`] serves the whole host: threads belong to the host, not to a
//! session (5.3). It lives in the runtime task next to the session state machine, so it
//! needs no locks:
//!
//! ```text
//!   session requests ──► CommandSession::handle_with ──► ThreadManager::begin_thread_start, …
//!   controller answers to approval requests ───────────► ThreadManager::handle_response
//!   turn tasks (agent.rs) ── TurnEvent channel ────────► ThreadManager::handle_event
//!   AGENTS.md reads (blocking pool, CMD-72, open_later) ► ThreadManager::handle_event
//!   approval time limits ── poll_timeout/handle_timeout ┘
//!                                                        │ persist (store.rs), then
//!                                                        ▼
//!                     poll_outgoing(): (session, message) for every attached session
//! ```
//!
//! A session is attached to a thread by `thread/start`, `thread/resume`, `tether/thread/import`
//! and `turn/start` until it ends; every notification of a thread goes to every attached
//! session in the same order (`CMD-26`).

pub mod agent;
mod clock;
pub mod codex_agent;
mod opening;
pub mod store;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tether_proto::cmd::approvals::Approvals;
use tether_proto::cmd::methods::{
    CommandExecutionOutputDeltaParams, CommandExecutionRequestApprovalParams,
    DEFAULT_THREAD_LIST_LIMIT, EmptyResult, ItemCompletedParams, ItemStartedParams,
    ThreadExportParams, ThreadExportResult, ThreadImportParams, ThreadListParams, ThreadListResult,
    ThreadOpened, ThreadOpenedTether, ThreadReadParams, ThreadReadResult, ThreadResumeParams,
    ThreadStartParams, TurnCompletedParams, TurnInterruptParams, TurnStartParams, TurnStartResult,
    TurnStartedParams,
};
use tether_proto::cmd::types::{
    ApprovalDecision, BUNDLE_VERSION, SandboxReport, Thread, ThreadBundle, ThreadItem, Turn,
    TurnItemsView, TurnStatus, UserInput,
};
use tether_proto::cmd::{CommandError, Id, Message, Params, Response, ServerNotification};
use tether_proto::link::SessionId;
use tether_proto::time::UnixTime;
use tokio::sync::{mpsc, oneshot, watch};

pub use agent::{TurnEvent, TurnEventKind};
pub use clock::TEST_MODEL;
use clock::now_ms;
pub use opening::{OpenDone, Opening};
use store::{THREAD_FILE_VERSION, ThreadRecord, ThreadStore};

use crate::answer::answer;
pub use crate::answer::fit;
use crate::exec::{AgentBackend, CommandConfig, KillReason};
use crate::instructions;
use crate::state::{StateError, random_bytes};

/// Instruction-file reads that may still run on the blocking pool at once (`CMD-72`):
/// reads past their time limit keep their thread until the file system answers, so a
/// hanging file system holds at most this many; further threads open without their
/// files.
const MAX_DISCOVERIES: usize = 8;

/// The turn in progress of a thread.
struct Running {
    turn_id: String,
    kill: watch::Sender<KillReason>,
    /// Where the decision of the turn's pending approval goes (the approval itself is in
    /// [`Approvals`]).
    approval: Option<oneshot::Sender<ApprovalDecision>>,
    /// `turn/interrupt` requests answered after `turn/completed` (`CMD-23`).
    interrupters: Vec<(SessionId, Id)>,
}

struct Entry {
    record: ThreadRecord,
    /// Attached sessions, in the order they attached.
    attached: Vec<SessionId>,
    running: Option<Running>,
    /// `acceptForSession` grants: (command, cwd), kept until the host stops (`CMD-29`).
    grants: HashSet<(String, String)>,
}

impl Entry {
    fn attach(&mut self, session: SessionId) {
        if !self.attached.contains(&session) {
            self.attached.push(session);
        }
    }
}

#[derive(Default)]
struct SessionInfo {
    /// `initialized` was received (`CMD-15`): until then requests and notifications wait
    /// in `held`.
    ready: bool,
    held: Vec<Message>,
    /// Threads being opened for it, answered once their instruction files are read
    /// (`CMD-72`): requests in flight (`CMD-58`).
    opening: usize,
}

/// Every thread of the host, and which session sees which.
pub struct ThreadManager {
    config: Arc<CommandConfig>,
    store: ThreadStore,
    default_project: PathBuf,
    threads: HashMap<String, Entry>,
    sessions: HashMap<SessionId, SessionInfo>,
    /// Who is asked, which answer wins, the time limit (`CMD-28`..`CMD-33`): the core's.
    approvals: Approvals,
    events: mpsc::UnboundedSender<TurnEvent>,
    outbox: VecDeque<(SessionId, Message)>,
    notices: VecDeque<String>,
    /// Instruction-file reads running on the blocking pool (`CMD-72`).
    discoveries: Arc<AtomicUsize>,
    /// The Codex that plays the agent, with [`AgentBackend::Codex`] (spec 5.14).
    codex: Option<Arc<codex_agent::CodexBackend>>,
}

impl std::fmt::Debug for ThreadManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadManager")
            .field("threads", &self.threads.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

fn not_found(thread_id: &str) -> CommandError {
    CommandError::ThreadNotFound {
        thread_id: thread_id.to_owned(),
    }
}

fn invalid(method: &str, detail: String) -> CommandError {
    CommandError::InvalidParams {
        method: method.to_owned(),
        detail,
    }
}

fn internal(e: &StateError) -> CommandError {
    CommandError::Internal {
        detail: format!("cannot store the thread: {e}"),
    }
}

fn notification(n: ServerNotification) -> Message {
    Message::Notification(n.to_notification())
}

/// The sessions attached to a thread, in the order they attached.
fn attached(threads: &HashMap<String, Entry>, thread_id: &str) -> Vec<SessionId> {
    threads
        .get(thread_id)
        .map(|e| e.attached.clone())
        .unwrap_or_default()
}

/// `thread/list` cursor: the sort key of the last thread of a page (`CMD-20`).
fn cursor(thread: &Thread) -> String {
    format!("{}/{}", thread.updated_at, thread.id)
}

fn read_cursor(cursor: &str) -> Option<(u64, String)> {
    let (at, id) = cursor.split_once('/')?;
    let at = at.parse().ok()?;
    store::is_thread_id(id).then(|| (at, id.to_owned()))
}

impl ThreadManager {
    /// Loads the threads of `state_dir` (`STATE/threads`). A turn that was running when
    /// the host stopped is completed as `failed` and stored again (restart note of 5.3).
    /// Files that cannot be read are reported by [`ThreadManager::take_notice`] and left
    /// as they are. Turns report on `events`, which the caller drains into
    /// [`ThreadManager::handle_event`].
    ///
    /// # Errors
    /// [`StateError::Io`] when the thread directory cannot be created.
    pub fn new(
        state_dir: &Path,
        config: Arc<CommandConfig>,
        events: mpsc::UnboundedSender<TurnEvent>,
    ) -> Result<Self, StateError> {
        let store = ThreadStore::open(state_dir)?;
        let (records, problems) = store.load_all();
        let mut notices: VecDeque<String> = problems
            .iter()
            .map(|e| format!("thread file skipped: {e}"))
            .collect();
        let mut threads = HashMap::new();
        for mut record in records {
            if record.recover()
                && let Err(e) = store.save(&record)
            {
                notices.push_back(format!("thread {}: {e}", record.id));
            }
            threads.insert(
                record.id.clone(),
                Entry {
                    record,
                    attached: Vec::new(),
                    running: None,
                    grants: HashSet::new(),
                },
            );
        }
        let default_project = config
            .default_project
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        let approval_timeout = config.approval_timeout;
        let codex = match &config.agent {
            AgentBackend::Test => None,
            AgentBackend::Codex(c) => Some(Arc::new(codex_agent::CodexBackend::new(c.clone()))),
        };
        Ok(Self {
            config,
            store,
            default_project,
            threads,
            sessions: HashMap::new(),
            approvals: Approvals::new(approval_timeout),
            events,
            outbox: VecDeque::new(),
            notices,
            discoveries: Arc::new(AtomicUsize::new(0)),
            codex,
        })
    }

    /// The number of threads.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether the host has no thread.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// A session was established; `device` is its controller's device name (for
    /// `resolvedBy`, `CMD-30`).
    pub fn session_opened(&mut self, session: SessionId, device: String) {
        self.approvals.session_opened(session, device);
        self.sessions.insert(
            session,
            SessionInfo {
                ready: false,
                held: Vec::new(),
                opening: 0,
            },
        );
    }

    /// The session sent `initialized` (`CMD-15`): what was held for it is sent now.
    pub fn session_ready(&mut self, session: SessionId) {
        if let Some(info) = self.sessions.get_mut(&session) {
            info.ready = true;
            for m in std::mem::take(&mut info.held) {
                self.outbox.push_back((session, m));
            }
        }
    }

    /// Queues `message` for `session`, holding requests and notifications until the
    /// session is ready (`CMD-15`). Messages holding items are fitted to one transport
    /// message ([`fit`], `CMD-2`).
    fn push(&mut self, session: SessionId, message: Message) {
        let message = fit(message);
        match self.sessions.get_mut(&session) {
            Some(info)
                if !info.ready
                    && matches!(message, Message::Request(_) | Message::Notification(_)) =>
            {
                info.held.push(message);
            }
            _ => self.outbox.push_back((session, message)),
        }
    }

    /// A session ended: its attachments, its outstanding approval requests and its
    /// deferred answers end with it. Pending approvals stay pending (`CMD-33`).
    pub fn session_closed(&mut self, session: SessionId) {
        self.sessions.remove(&session);
        for entry in self.threads.values_mut() {
            entry.attached.retain(|s| *s != session);
            if let Some(running) = &mut entry.running {
                running.interrupters.retain(|(s, _)| *s != session);
            }
        }
        self.approvals.session_closed(session);
        self.outbox.retain(|(s, _)| *s != session);
    }

    /// Requests of `session` received and not answered yet (deferred `turn/interrupt`
    /// answers), for the in-flight limit (`CMD-58`).
    pub fn in_flight(&self, session: SessionId) -> usize {
        let opening = self.sessions.get(&session).map_or(0, |i| i.opening);
        self.threads
            .values()
            .filter_map(|e| e.running.as_ref())
            .map(|r| r.interrupters.iter().filter(|(s, _)| *s == session).count())
            .sum::<usize>()
            + opening
    }

    /// The next message to send, in order.
    pub fn poll_outgoing(&mut self) -> Option<(SessionId, Message)> {
        self.outbox.pop_front()
    }

    /// Something for the host's log (a store failure, a skipped file).
    pub fn take_notice(&mut self) -> Option<String> {
        self.notices.pop_front()
    }

    /// When [`ThreadManager::handle_timeout`] must be called next (`CMD-31`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.approvals.poll_timeout()
    }

    /// `CMD-31`: approvals without an answer in time resolve as `decline`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let threads = &self.threads;
        self.approvals.handle_timeout(now, |t| attached(threads, t));
        self.drain_approvals();
    }

    fn send_to_attached(&mut self, thread_id: &str, message: &Message) {
        let attached = self
            .threads
            .get(thread_id)
            .map(|e| e.attached.clone())
            .unwrap_or_default();
        for s in attached {
            self.push(s, message.clone());
        }
    }

    fn save(&mut self, thread_id: &str) {
        if let Some(entry) = self.threads.get(thread_id)
            && let Err(e) = self.store.save(&entry.record)
        {
            self.notices
                .push_back(format!("thread {thread_id}: cannot store it: {e}"));
        }
    }

    fn new_id(&self, prefix: &str, taken: impl Fn(&str) -> bool) -> Result<String, CommandError> {
        for _ in 0..16 {
            let bytes = random_bytes::<8>().map_err(|e| CommandError::Internal {
                detail: e.to_string(),
            })?;
            let id = format!("{prefix}{}", hex::encode(bytes));
            if !taken(&id) {
                return Ok(id);
            }
        }
        Err(CommandError::Internal {
            detail: "no free id".to_owned(),
        })
    }

    fn new_thread_id(&self) -> Result<String, CommandError> {
        // CMD-25: unique on the host, also against files this host could not read.
        self.new_id("thr_", |id| {
            self.threads.contains_key(id) || self.store.path(id).exists()
        })
    }

    /// `CMD-73`: `cwd` (`root` joined with `relative`), with every symlink resolved, must
    /// lie inside `root`, resolved too; the resolved path is the one the thread keeps, so
    /// a link changed later cannot move it either.
    fn inside_project(
        method: &str,
        root: &Path,
        cwd: &Path,
        relative: &str,
    ) -> Result<PathBuf, CommandError> {
        let resolve = |p: &Path| {
            std::fs::canonicalize(p)
                .map_err(|e| invalid(method, format!("{p:?} cannot be resolved: {e}")))
        };
        let (real_root, real_cwd) = (resolve(root)?, resolve(cwd)?);
        if real_cwd.starts_with(&real_root) {
            Ok(real_cwd)
        } else {
            Err(invalid(
                method,
                format!(
                    "cwdRelative {relative:?} resolves to {real_cwd:?}, outside the project root {real_root:?}: a symlink leads out of it (CMD-73)"
                ),
            ))
        }
    }

    /// `CMD-17`: `cwd` must be a host-native absolute path of an existing directory.
    fn check_dir(method: &str, path: &str) -> Result<PathBuf, CommandError> {
        let p = Path::new(path);
        if p.is_absolute() && p.is_dir() {
            Ok(p.to_owned())
        } else {
            Err(invalid(
                method,
                format!("{path:?} is not an absolute path of an existing directory"),
            ))
        }
    }

    /// The answer for a thread being opened, its instruction files not read yet
    /// (`CMD-51`: they are read when the thread starts, resumes or is imported, by
    /// [`ThreadManager::open_later`] or the blocking methods).
    fn opening(
        &self,
        session: SessionId,
        thread: Thread,
        record: &ThreadRecord,
        sandbox: SandboxReport,
    ) -> Opening {
        Opening {
            session,
            thread_id: record.id.clone(),
            cwd: PathBuf::from(&record.cwd),
            max_len: tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN,
            opened: ThreadOpened {
                thread,
                approval_policy: record.approval_policy,
                approvals_reviewer: "user".to_owned(),
                cwd: record.cwd.clone(),
                model: self.model().to_owned(),
                model_provider: self.model().to_owned(),
                // Section 5.3: the enforced mode as Codex's SandboxPolicy.
                sandbox: self
                    .config
                    .thread_sandbox_policy(sandbox.enforced, &record.cwd),
                instruction_sources: Vec::new(),
                tether: Some(ThreadOpenedTether { sandbox }),
            },
        }
    }

    /// The wire form of a thread (section 5.3): `waitingOnApproval` while its approval is
    /// pending (`CMD-28`); no turns.
    fn wire_thread(&self, record: &ThreadRecord) -> Thread {
        let mut thread = record.thread(self.approvals.is_pending(&record.id));
        thread.model_provider = self.model().to_owned();
        thread
    }

    /// The `model` and `modelProvider` of the threads: the test agent's (`CMD-59`), or
    /// `"codex"` (spec 5.14).
    fn model(&self) -> &'static str {
        if self.codex.is_some() {
            codex_agent::CODEX_MODEL
        } else {
            TEST_MODEL
        }
    }

    /// Stores a new thread; `session` is attached when the opening finishes.
    fn create(
        &mut self,
        session: SessionId,
        record: ThreadRecord,
        report: SandboxReport,
    ) -> Result<Opening, CommandError> {
        self.store.save(&record).map_err(|e| internal(&e))?;
        let opening = self.opening(session, self.wire_thread(&record), &record, report);
        let entry = Entry {
            record,
            attached: Vec::new(),
            running: None,
            grants: HashSet::new(),
        };
        self.threads.insert(entry.record.id.clone(), entry);
        Ok(opening)
    }

    /// Finishes opening a thread with the instruction files `found` (`CMD-51`): attaches
    /// the session and returns the answer, and whether the thread's pending approval is
    /// to be sent to the session after it (`CMD-19`, `CMD-28`).
    fn finish_open(
        &mut self,
        opening: Opening,
        found: &instructions::Instructions,
    ) -> (ThreadOpened, bool) {
        let Opening {
            session,
            thread_id,
            mut opened,
            ..
        } = opening;
        opened.instruction_sources = found
            .sources
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let mut attach_new = false;
        if let Some(entry) = self.threads.get_mut(&thread_id) {
            attach_new = !entry.attached.contains(&session);
            entry.attach(session);
        }
        (opened, attach_new)
    }

    /// Opens a thread on the calling thread: reads its instruction files there (blocking,
    /// `CMD-72`: not for the runtime's task) and attaches the session; a pending approval
    /// goes to the outbox after the answer.
    fn open_now(&mut self, opening: Opening) -> ThreadOpened {
        let (session, thread_id) = (opening.session, opening.thread_id.clone());
        let found = instructions::discover(&opening.cwd);
        let (opened, attach_new) = self.finish_open(opening, &found);
        if attach_new {
            self.approvals.attach(&thread_id, session);
            self.drain_approvals();
        }
        opened
    }

    /// Serves the opening of a thread (`thread/start`, `thread/resume`, `tether/thread/import`)
    /// without blocking the caller (`CMD-72`): the instruction files are read on the
    /// blocking pool, within [`instructions::DISCOVERY_TIMEOUT`] (the thread opens without
    /// them after that), and the answer to request `id` is queued in the outbox when they
    /// are, followed by the thread's pending approval. Until then the request counts as in
    /// flight (`CMD-58`). Must be called inside a tokio runtime.
    pub fn open_later(&mut self, id: Id, opening: Opening) {
        let session = opening.session;
        match self.sessions.get_mut(&session) {
            Some(info) => info.opening += 1,
            None => return, // the session is gone: nobody to answer
        }
        if self.discoveries.load(Ordering::Acquire) >= MAX_DISCOVERIES {
            // Earlier reads still hang (their time ran out, the file system did not
            // answer): do not tie up another blocking thread.
            self.complete_open(id, opening, None);
            return;
        }
        let events = self.events.clone();
        let running = Arc::clone(&self.discoveries);
        running.fetch_add(1, Ordering::AcqRel);
        let cwd = opening.cwd.clone();
        tokio::spawn(async move {
            let read = tokio::task::spawn_blocking(move || {
                let found = instructions::discover(&cwd);
                running.fetch_sub(1, Ordering::AcqRel);
                found
            });
            let found = match tokio::time::timeout(instructions::DISCOVERY_TIMEOUT, read).await {
                Ok(Ok(found)) => Some(found),
                _ => None,
            };
            let _ = events.send(TurnEvent {
                thread_id: opening.thread_id.clone(),
                turn_id: String::new(),
                kind: TurnEventKind::Opened(Box::new(OpenDone { id, opening, found })),
            });
        });
    }

    /// The instruction files of an opening were read (`found`), or not in time (`None`):
    /// the answer, then the pending approval (`CMD-19`).
    fn complete_open(
        &mut self,
        id: Id,
        opening: Opening,
        found: Option<instructions::Instructions>,
    ) {
        let session = opening.session;
        let thread_id = opening.thread_id.clone();
        let opening_max_len = opening.max_len;
        match self.sessions.get_mut(&session) {
            Some(info) => info.opening = info.opening.saturating_sub(1),
            None => return, // the session ended meanwhile
        }
        let found = found.unwrap_or_else(|| {
            self.notices.push_back(format!(
                "thread {thread_id}: its instruction files could not be read in {} s; opened without them (CMD-72)",
                instructions::DISCOVERY_TIMEOUT.as_secs()
            ));
            instructions::Instructions::default()
        });
        let (opened, attach_new) = self.finish_open(opening, &found);
        // A ThreadOpened holds items only in thread/resume: long outputs are cut to the
        // session's message limit (CMD-2).
        let max_len = opening_max_len;
        self.push(session, answer(id, Ok(opened), max_len));
        if attach_new {
            self.approvals.attach(&thread_id, session);
            self.drain_approvals();
        }
    }

    /// `thread/start` (`CMD-17`), reading the instruction files on the calling thread
    /// (blocking: the runtime uses [`ThreadManager::begin_thread_start`] and
    /// [`ThreadManager::open_later`] instead, `CMD-72`).
    ///
    /// # Errors
    /// As [`ThreadManager::begin_thread_start`].
    pub fn thread_start(
        &mut self,
        session: SessionId,
        params: &ThreadStartParams,
    ) -> Result<ThreadOpened, CommandError> {
        let opening = self.begin_thread_start(session, params)?;
        Ok(self.open_now(opening))
    }

    /// `thread/start` (`CMD-17`) up to its instruction files: the thread is created and
    /// stored; [`ThreadManager::open_later`] finishes it.
    ///
    /// # Errors
    /// -32602 for a bad `cwd`, -32012 (`CMD-46`), -32603 when it cannot be stored.
    pub fn begin_thread_start(
        &mut self,
        session: SessionId,
        params: &ThreadStartParams,
    ) -> Result<Opening, CommandError> {
        let cwd = match &params.cwd {
            Some(c) => Self::check_dir(ThreadStartParams::METHOD, c)?,
            None => Self::check_dir(
                ThreadStartParams::METHOD,
                &self.default_project.to_string_lossy(),
            )?,
        };
        // CMD-46, CMD-47, SEC-15: checked before the thread is created.
        let sandbox = params.sandbox.unwrap_or(self.config.default_sandbox);
        let report = self.config.thread_sandbox_for(sandbox)?;
        let approval_policy = params
            .approval_policy
            .unwrap_or(self.config.default_approval_policy);
        self.config.check_approval_policy(approval_policy)?;
        let now = UnixTime::now().as_secs();
        let record = ThreadRecord {
            version: THREAD_FILE_VERSION,
            id: self.new_thread_id()?,
            cwd: cwd.to_string_lossy().into_owned(),
            sandbox,
            approval_policy,
            created_at: now,
            updated_at: now,
            goal: None,
            preview: None,
            next_item: 1,
            turns: Vec::new(),
            codex_thread_id: None,
        };
        self.create(session, record, report)
    }

    /// `thread/resume` (`CMD-19`): attaches `session`; a pending approval is sent to it
    /// after the answer (through the outbox, which the caller drains after the reply).
    /// Reads the instruction files on the calling thread (blocking: the runtime uses
    /// [`ThreadManager::begin_thread_resume`] and [`ThreadManager::open_later`], `CMD-72`).
    ///
    /// # Errors
    /// As [`ThreadManager::begin_thread_resume`].
    pub fn thread_resume(
        &mut self,
        session: SessionId,
        params: &ThreadResumeParams,
    ) -> Result<ThreadOpened, CommandError> {
        let opening = self.begin_thread_resume(session, params)?;
        Ok(self.open_now(opening))
    }

    /// `thread/resume` (`CMD-19`) up to its instruction files; [`ThreadManager::open_later`]
    /// attaches the session and sends it the pending approval after the answer.
    ///
    /// # Errors
    /// -32013, -32012.
    pub fn begin_thread_resume(
        &mut self,
        session: SessionId,
        params: &ThreadResumeParams,
    ) -> Result<Opening, CommandError> {
        let entry = self
            .threads
            .get(&params.thread_id)
            .ok_or_else(|| not_found(&params.thread_id))?;
        // CMD-19, CMD-46, SEC-15: the host may have changed since the thread was created
        // (a lower cap, a mechanism lost).
        let report = self.config.thread_sandbox_for(entry.record.sandbox)?;
        self.config
            .check_approval_policy(entry.record.approval_policy)?;
        // CMD-19: the turns, unless excludeTurns.
        let mut thread = self.wire_thread(&entry.record);
        if params.exclude_turns != Some(true) {
            thread.turns = entry.record.turns.clone();
        }
        // CMD-19, CMD-28: attached, and given the pending approval, when it finishes.
        Ok(self.opening(session, thread, &entry.record, report))
    }

    /// `thread/list` (`CMD-20`): most recently updated first, ties by id; does not attach.
    ///
    /// # Errors
    /// -32602 for a cursor this host did not make.
    pub fn thread_list(&self, params: &ThreadListParams) -> Result<ThreadListResult, CommandError> {
        let limit = usize::try_from(params.limit.unwrap_or(DEFAULT_THREAD_LIST_LIMIT))
            .unwrap_or(usize::MAX);
        let after = match &params.cursor {
            Some(c) => Some(read_cursor(c).ok_or_else(|| {
                invalid(
                    ThreadListParams::METHOD,
                    format!("cursor {c:?} is not readable"),
                )
            })?),
            None => None,
        };
        let mut all: Vec<_> = self
            .threads
            .values()
            .map(|e| self.wire_thread(&e.record))
            .collect();
        all.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut rest: Vec<_> = all
            .into_iter()
            .filter(|t| match &after {
                None => true,
                Some((at, id)) => t.updated_at < *at || (t.updated_at == *at && t.id > *id),
            })
            .collect();
        let next_cursor = if rest.len() > limit {
            rest.truncate(limit);
            rest.last().map(cursor)
        } else {
            None
        };
        Ok(ThreadListResult {
            data: rest,
            next_cursor,
        })
    }

    /// `thread/read` (`CMD-21`): does not attach.
    ///
    /// # Errors
    /// -32013.
    pub fn thread_read(&self, params: &ThreadReadParams) -> Result<ThreadReadResult, CommandError> {
        let entry = self
            .threads
            .get(&params.thread_id)
            .ok_or_else(|| not_found(&params.thread_id))?;
        let mut thread = self.wire_thread(&entry.record);
        // CMD-21: the turns only with includeTurns.
        if params.include_turns == Some(true) {
            thread.turns = entry.record.turns.clone();
        }
        Ok(ThreadReadResult { thread })
    }

    /// `turn/start` (`CMD-22`): attaches `session`, stores the new turn, queues
    /// `turn/started` for every attached session and starts the test agent (`CMD-59`).
    ///
    /// # Errors
    /// -32013, -32018.
    pub fn turn_start(
        &mut self,
        session: SessionId,
        params: &TurnStartParams,
    ) -> Result<TurnStartResult, CommandError> {
        let entry = self
            .threads
            .get(&params.thread_id)
            .ok_or_else(|| not_found(&params.thread_id))?;
        if entry.running.is_some() {
            return Err(CommandError::TurnAlreadyActive {
                thread_id: params.thread_id.clone(),
            });
        }
        let turn_id = self.new_id("turn_", |id| entry.record.turns.iter().any(|t| t.id == id))?;
        // CMD-59: the text of the first `text` element (turn/start takes only text, its
        // params refuse the other input types).
        let text = params
            .input
            .iter()
            .find_map(UserInput::as_text)
            .unwrap_or_default()
            .to_owned();
        let (kill, kill_rx) = watch::channel(KillReason::Running);
        let turn = Turn {
            id: turn_id.clone(),
            status: TurnStatus::InProgress,
            items: Vec::new(),
            items_view: Some(TurnItemsView::Full),
            started_at: Some(UnixTime::now().as_secs()),
            completed_at: None,
            duration_ms: None,
        };
        let Some(entry) = self.threads.get_mut(&params.thread_id) else {
            return Err(not_found(&params.thread_id));
        };
        let first_item = entry.record.next_item;
        // Two ids at most per turn (CMD-59); never reused (CMD-25).
        entry.record.next_item += 2;
        entry.record.updated_at = UnixTime::now().as_secs();
        if entry.record.preview.is_none() {
            entry.record.preview = Some(store::preview(&text));
        }
        let started = Instant::now();
        entry.record.turns.push(turn.clone());
        entry.attach(session);
        entry.running = Some(Running {
            turn_id: turn_id.clone(),
            kill,
            approval: None,
            interrupters: Vec::new(),
        });
        // CMD-17: the turn is durable before it runs; if it cannot be stored, it does not
        // start.
        if let Err(e) = self.store.save(&entry.record) {
            entry.record.turns.pop();
            entry.running = None;
            return Err(internal(&e));
        }
        let codex_thread = entry.record.codex_thread_id.clone();
        let job = agent::TurnJob {
            thread_id: params.thread_id.clone(),
            turn_id,
            text,
            input: params.input.clone(),
            started,
            cwd: entry.record.cwd.clone(),
            sandbox: entry.record.sandbox,
            policy: entry.record.approval_policy,
            first_item,
            config: Arc::clone(&self.config),
            events: self.events.clone(),
            kill: kill_rx,
        };
        // CMD-24: after the result (the caller sends the reply before the outbox).
        self.send_to_attached(
            &params.thread_id,
            &notification(ServerNotification::TurnStarted(TurnStartedParams {
                thread_id: params.thread_id.clone(),
                turn: turn.clone(),
            })),
        );
        match &self.codex {
            // Spec 5.14: Codex plays the agent.
            Some(backend) => {
                let sandbox_policy =
                    codex_agent::sandbox_policy(&job.config, job.sandbox, &job.cwd);
                let job = codex_agent::CodexTurnJob {
                    backend: Arc::clone(backend),
                    thread_id: job.thread_id,
                    turn_id: job.turn_id,
                    input: job.input,
                    started: job.started,
                    cwd: job.cwd,
                    sandbox: job.sandbox,
                    policy: job.policy,
                    sandbox_policy,
                    may_leave_sandbox: self.config.max_sandbox
                        == tether_proto::cmd::types::SandboxMode::DangerFullAccess,
                    codex_thread,
                    first_item: job.first_item,
                    events: job.events,
                    kill: job.kill,
                };
                tokio::spawn(job.run());
            }
            None => {
                tokio::spawn(job.run());
            }
        }
        Ok(TurnStartResult { turn })
    }

    /// `turn/interrupt` (`CMD-23`): stops the agent, kills a running command's group,
    /// resolves a pending approval as `cancel`; the answer `{}` is queued after
    /// `turn/completed`.
    ///
    /// # Errors
    /// -32013, -32014.
    pub fn turn_interrupt(
        &mut self,
        session: SessionId,
        id: Id,
        params: &TurnInterruptParams,
    ) -> Result<(), CommandError> {
        let entry = self
            .threads
            .get_mut(&params.thread_id)
            .ok_or_else(|| not_found(&params.thread_id))?;
        let Some(running) = entry
            .running
            .as_mut()
            .filter(|r| r.turn_id == params.turn_id)
        else {
            return Err(CommandError::TurnNotFound {
                turn_id: params.turn_id.clone(),
            });
        };
        running.interrupters.push((session, id));
        let _ = running.kill.send(KillReason::Terminate);
        if running.approval.is_some() {
            // CMD-33
            let attached = entry.attached.clone();
            self.approvals.cancel(&params.thread_id, &attached);
            self.drain_approvals();
        }
        Ok(())
    }

    /// `tether/thread/export` (`CMD-52`).
    ///
    /// # Errors
    /// -32013.
    pub fn thread_export(
        &self,
        params: &ThreadExportParams,
    ) -> Result<ThreadExportResult, CommandError> {
        let entry = self
            .threads
            .get(&params.thread_id)
            .ok_or_else(|| not_found(&params.thread_id))?;
        let record = &entry.record;
        let cwd = Path::new(&record.cwd);
        let root = instructions::project_root(cwd);
        // CMD-52: `/` whatever the host's path style; "." for the root itself.
        let names: Vec<String> = cwd
            .strip_prefix(&root)
            .map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let cwd_relative = if names.is_empty() {
            ".".to_owned()
        } else {
            names.join("/")
        };
        Ok(ThreadExportResult {
            bundle: ThreadBundle {
                version: BUNDLE_VERSION,
                goal: record.goal.clone(),
                cwd_relative,
                sandbox: record.sandbox,
                approval_policy: record.approval_policy,
                // With a turn in progress: the items so far. No grants (CMD-52).
                items: record.items().cloned().collect(),
                exported_at: UnixTime::now().as_secs(),
            },
        })
    }

    /// `tether/thread/import` (`CMD-53`, `CMD-54`), reading the instruction files on the calling
    /// thread (blocking: the runtime uses [`ThreadManager::begin_thread_import`] and
    /// [`ThreadManager::open_later`], `CMD-72`).
    ///
    /// # Errors
    /// As [`ThreadManager::begin_thread_import`].
    pub fn thread_import(
        &mut self,
        session: SessionId,
        params: &ThreadImportParams,
    ) -> Result<ThreadOpened, CommandError> {
        let opening = self.begin_thread_import(session, params)?;
        Ok(self.open_now(opening))
    }

    /// `tether/thread/import` (`CMD-53`, `CMD-54`, `CMD-73`) up to its instruction files: a new
    /// thread with a new id; the bundle's items form one completed turn, with ids of this
    /// thread; AGENTS.md is discovered again with this host's paths when
    /// [`ThreadManager::open_later`] finishes it. `params.bundle` was validated when it
    /// was decoded (`CMD-53`).
    ///
    /// # Errors
    /// -32602 for a project root or cwd that is not a directory, or a cwd that resolves
    /// outside the project root (`CMD-73`), -32012, -32603.
    pub fn begin_thread_import(
        &mut self,
        session: SessionId,
        params: &ThreadImportParams,
    ) -> Result<Opening, CommandError> {
        let bundle = &params.bundle;
        bundle.validate()?;
        let method = ThreadImportParams::METHOD;
        let root = match &params.project_root {
            Some(r) => Self::check_dir(method, r)?,
            None => Self::check_dir(method, &self.default_project.to_string_lossy())?,
        };
        let mut cwd = root.clone();
        if bundle.cwd_relative != "." {
            for name in bundle.cwd_relative.split('/') {
                cwd.push(name);
            }
        }
        let cwd = Self::check_dir(method, &cwd.to_string_lossy())?;
        let cwd = Self::inside_project(method, &root, &cwd, &bundle.cwd_relative)?;
        let report = self.config.thread_sandbox_for(bundle.sandbox)?;
        self.config.check_approval_policy(bundle.approval_policy)?; // SEC-15
        let id = self.new_thread_id()?;
        // Items get ids of the new thread (CMD-25); an item still in progress in the
        // exported thread did not finish here either.
        let mut next_item = 1u64;
        let items: Vec<ThreadItem> = bundle
            .items
            .iter()
            .cloned()
            .map(|mut item| {
                let id = format!("item_{next_item}");
                next_item += 1;
                match &mut item {
                    ThreadItem::UserMessage(i) => i.id = id,
                    ThreadItem::AgentMessage(i) => i.id = id,
                    ThreadItem::CommandExecution(i) => i.id = id,
                    ThreadItem::Other(i) => {
                        if let Some(obj) = i.raw.as_object_mut() {
                            obj.insert("id".to_owned(), id.clone().into());
                        }
                        i.id = id;
                    }
                }
                store::fail_in_progress(&mut item);
                item
            })
            .collect();
        let preview = items.iter().find_map(|i| match i {
            ThreadItem::UserMessage(u) => Some(store::preview(&u.text())),
            _ => None,
        });
        let now = UnixTime::now().as_secs();
        let turns = if items.is_empty() {
            Vec::new()
        } else {
            vec![Turn {
                id: self.new_id("turn_", |_| false)?,
                status: TurnStatus::Completed,
                items,
                items_view: Some(TurnItemsView::Full),
                started_at: Some(now),
                completed_at: Some(now),
                duration_ms: Some(0),
            }]
        };
        let record = ThreadRecord {
            version: THREAD_FILE_VERSION,
            id,
            cwd: cwd.to_string_lossy().into_owned(),
            sandbox: bundle.sandbox,
            approval_policy: bundle.approval_policy,
            created_at: now,
            updated_at: now,
            goal: bundle.goal.clone(),
            preview,
            next_item,
            turns,
            // Spec 5.14: Codex starts a thread of its own on the first turn here.
            codex_thread_id: None,
        };
        self.create(session, record, report)
    }

    /// An event of a turn task: stored, then sent to every attached session (`CMD-24`,
    /// `CMD-26`).
    pub fn handle_event(&mut self, event: TurnEvent) {
        let TurnEvent {
            thread_id,
            turn_id,
            kind,
        } = event;
        let kind = match kind {
            // Not a turn's: a thread being opened has its instruction files (CMD-72).
            TurnEventKind::Opened(done) => {
                let OpenDone { id, opening, found } = *done;
                return self.complete_open(id, opening, found);
            }
            kind => kind,
        };
        let Some(entry) = self.threads.get_mut(&thread_id) else {
            return;
        };
        if entry.running.as_ref().map(|r| r.turn_id.as_str()) != Some(turn_id.as_str()) {
            return; // a turn that is over: nothing names it after turn/completed
        }
        let now = UnixTime::now().as_secs();
        let at_ms = now_ms();
        match kind {
            TurnEventKind::ItemStarted(item) => {
                // CMD-25: an agent that uses more ids than the turn reserved (Codex) moves
                // the thread's counter past them, so that none is used again.
                if let Some(n) = item
                    .id()
                    .strip_prefix("item_")
                    .and_then(|n| n.parse::<u64>().ok())
                    && n >= entry.record.next_item
                {
                    entry.record.next_item = n.saturating_add(1);
                }
                if let Some(turn) = entry.record.turns.last_mut() {
                    turn.items.push(item.clone());
                }
                entry.record.updated_at = now;
                self.save(&thread_id);
                self.send_to_attached(
                    &thread_id,
                    &notification(ServerNotification::ItemStarted(ItemStartedParams {
                        thread_id: thread_id.clone(),
                        turn_id,
                        started_at_ms: item_started_at(&item).unwrap_or(at_ms),
                        item,
                    })),
                );
            }
            TurnEventKind::ItemCompleted(item) => {
                if let Some(slot) = entry
                    .record
                    .turns
                    .last_mut()
                    .and_then(|t| t.items.iter_mut().find(|i| i.id() == item.id()))
                {
                    *slot = item.clone();
                }
                entry.record.updated_at = now;
                self.save(&thread_id);
                self.send_to_attached(
                    &thread_id,
                    &notification(ServerNotification::ItemCompleted(ItemCompletedParams {
                        thread_id: thread_id.clone(),
                        turn_id,
                        completed_at_ms: item_completed_at(&item).unwrap_or(at_ms),
                        item,
                    })),
                );
            }
            TurnEventKind::Output { item_id, delta } => {
                let delta = CommandExecutionOutputDeltaParams {
                    thread_id: thread_id.clone(),
                    turn_id,
                    item_id,
                    delta,
                };
                self.send_to_attached(
                    &thread_id,
                    &notification(ServerNotification::CommandExecutionOutputDelta(delta)),
                );
            }
            TurnEventKind::Approval { params, reply } => self.ask(&thread_id, params, reply),
            TurnEventKind::Opened(_) => {} // handled above
            TurnEventKind::CodexThread(codex_thread) => {
                // Spec 5.14: kept, so that a restarted host resumes it.
                entry.record.codex_thread_id = Some(codex_thread);
                self.save(&thread_id);
            }
            TurnEventKind::Finished { status, duration } => {
                let running = entry.running.take();
                if self.approvals.is_pending(&thread_id) {
                    // CMD-33: the turn ended while its approval was pending.
                    let attached = entry.attached.clone();
                    self.approvals.cancel(&thread_id, &attached);
                    self.drain_approvals();
                }
                let Some(entry) = self.threads.get_mut(&thread_id) else {
                    return;
                };
                let mut final_turn = None;
                if let Some(turn) = entry.record.turns.last_mut() {
                    turn.status = status;
                    turn.completed_at = Some(now);
                    turn.duration_ms =
                        Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
                    for item in &mut turn.items {
                        store::fail_in_progress(item);
                    }
                    final_turn = Some(turn.clone());
                }
                entry.record.updated_at = now;
                self.save(&thread_id);
                if let Some(turn) = final_turn {
                    self.send_to_attached(
                        &thread_id,
                        &notification(ServerNotification::TurnCompleted(TurnCompletedParams {
                            thread_id: thread_id.clone(),
                            turn,
                        })),
                    );
                }
                // CMD-23: the interrupting sessions get their answer after turn/completed.
                for (session, id) in running.map(|r| r.interrupters).unwrap_or_default() {
                    if let Ok(r) = Response::new(id, &EmptyResult {}) {
                        self.push(session, Message::Response(r));
                    }
                }
            }
        }
    }

    /// `CMD-27`, `CMD-28`: asks every attached session, unless the command is trusted or
    /// granted for this thread.
    fn ask(
        &mut self,
        thread_id: &str,
        params: CommandExecutionRequestApprovalParams,
        reply: oneshot::Sender<ApprovalDecision>,
    ) {
        let Some(entry) = self.threads.get_mut(thread_id) else {
            let _ = reply.send(ApprovalDecision::Cancel);
            return;
        };
        let Some(running) = entry.running.as_mut() else {
            let _ = reply.send(ApprovalDecision::Cancel);
            return;
        };
        if *running.kill.borrow() != KillReason::Running {
            // Interrupted before the request went out (CMD-33).
            let _ = reply.send(ApprovalDecision::Cancel);
            return;
        }
        let key = (params.command.clone(), params.cwd.clone());
        if entry.grants.contains(&key) || self.config.trusted_commands.contains(&params.command) {
            // CMD-27, CMD-29: trusted, or accepted for the session earlier.
            let _ = reply.send(ApprovalDecision::Accept);
            return;
        }
        let attached = entry.attached.clone();
        match self
            .approvals
            .ask(thread_id, params, &attached, Instant::now())
        {
            Ok(()) => running.approval = Some(reply),
            // CMD-28: at most one approval per thread (a turn asks one at a time); the
            // pending one keeps its place.
            Err(_) => {
                let _ = reply.send(ApprovalDecision::Cancel);
            }
        }
        self.drain_approvals();
    }

    /// Sends what the approvals queued (through [`ThreadManager::push`], which holds it
    /// for a session not yet ready) and acts on the resolved ones: the decision goes to the
    /// turn; `acceptForSession` is remembered for the thread, in memory only (`CMD-29`).
    fn drain_approvals(&mut self) {
        while let Some((session, message)) = self.approvals.poll_outgoing() {
            self.push(session, message);
        }
        while let Some(notice) = self.approvals.take_notice() {
            self.notices.push_back(notice);
        }
        while let Some(resolution) = self.approvals.poll_resolution() {
            let Some(entry) = self.threads.get_mut(&resolution.thread_id) else {
                continue;
            };
            if resolution.decision == ApprovalDecision::AcceptForSession {
                entry.grants.insert((
                    resolution.params.command.clone(),
                    resolution.params.cwd.clone(),
                ));
            }
            if let Some(reply) = entry.running.as_mut().and_then(|r| r.approval.take()) {
                let _ = reply.send(resolution.decision);
            }
        }
    }

    /// A response of `session` (`CMD-30`, `CMD-32`, `CMD-14`).
    pub fn handle_response(&mut self, session: SessionId, message: Message) {
        let threads = &self.threads;
        self.approvals
            .handle_response(session, message, |t| attached(threads, t));
        self.drain_approvals();
    }
}

/// `startedAtMs` of an item the agent made.
fn item_started_at(item: &ThreadItem) -> Option<u64> {
    match item {
        ThreadItem::UserMessage(i) => i.started_at_ms,
        ThreadItem::AgentMessage(i) => i.started_at_ms,
        ThreadItem::CommandExecution(i) => i.started_at_ms,
        ThreadItem::Other(_) => None,
    }
}

/// `completedAtMs` of an item the agent made.
fn item_completed_at(item: &ThreadItem) -> Option<u64> {
    match item {
        ThreadItem::UserMessage(i) => i.completed_at_ms,
        ThreadItem::AgentMessage(i) => i.completed_at_ms,
        ThreadItem::CommandExecution(i) => i.completed_at_ms,
        ThreadItem::Other(_) => None,
    }
}

#[cfg(test)]
mod tests;
