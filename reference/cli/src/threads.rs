//! `tether thread start|list|show|handoff` and `tether turn`: threads, turns and approvals
//! on paired hosts (`spec/05` 5.3..5.5, 5.9), on the `tether-controller` library.
//!
//! Every failure is one line on stderr naming the host, the thread and, for a refusal, the
//! typed error's code and name (`-32013 ThreadNotFound`); exit status 1, usage errors 2.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Subcommand, ValueEnum};
use tether_controller::threads::EXIT_INTERRUPTED;
use tether_controller::{
    ApprovalRequest, Approver, Connection, ControllerError, ControllerState, DecisionFuture,
    FixedDecision, HandoffStep, PairedHost, TurnEvent, connect, describe_rpc_error, follow_turn,
    run_turn_until, thread_export, thread_import, thread_list_all, thread_read, thread_resume,
    thread_start,
};
use tether_proto::cmd::methods::{ThreadOpened, ThreadStartParams};
use tether_proto::cmd::types::{
    ApprovalDecision, ApprovalPolicy, CommandExecutionStatus, NetworkAccess, SandboxMode,
    SandboxReport, Thread, ThreadItem, ThreadStatus, TurnStatus,
};
use tether_proto::link::CloseCode;
use tether_proto::time::UnixTime;
use tokio::sync::{Mutex, mpsc, watch};

use crate::controller::{RelayOptions, Sandbox, describe, host_label, open_state, runtime};

/// Which paired host and how to reach it (shared by every thread command).
#[derive(Args)]
pub(crate) struct Target {
    /// The controller's state directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The paired host: its name or a prefix of its key or fingerprint (needed when
    /// several hosts are paired).
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    relay: RelayOptions,
}

/// Subcommands of `tether thread`.
#[derive(Subcommand)]
pub(crate) enum ThreadCommand {
    /// Start a thread on a host; prints its id alone on stdout, and on stderr the sandbox
    /// the host enforces and the instruction files (AGENTS.md) it found.
    Start(StartArgs),
    /// List the host's threads, most recently updated first.
    List(ListArgs),
    /// Show a thread's history: turns, items, commands with exit codes and output.
    Show(ShowArgs),
    /// Move a thread to another host (export, then import); prints the new thread id.
    Handoff(HandoffArgs),
    /// Attach to a thread and follow its running or next turn: stream its output and answer
    /// its approvals (for example from a second device). Exit status as for `tether turn`.
    #[command(after_help = TURN_EXIT_HELP)]
    Attach(AttachArgs),
}

/// Arguments of `tether thread attach`.
#[derive(Args)]
pub(crate) struct AttachArgs {
    #[command(flatten)]
    target: Target,
    /// Answer every approval request with this decision instead of asking on the terminal.
    #[arg(long, value_enum)]
    decision: Option<Decision>,
    /// The thread id.
    thread: String,
}

/// Approval policies as `--approval-policy` spells them.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Policy {
    /// Ask before every command not on the host's trusted list.
    Untrusted,
    /// Ask only when the agent asks to leave the sandbox.
    OnRequest,
    /// Never ask.
    Never,
}

impl From<Policy> for ApprovalPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Untrusted => Self::Untrusted,
            Policy::OnRequest => Self::OnRequest,
            Policy::Never => Self::Never,
        }
    }
}

/// Arguments of `tether thread start`.
#[derive(Args)]
pub(crate) struct StartArgs {
    #[command(flatten)]
    target: Target,
    /// Working directory on the host, absolute [default: the host's default project].
    #[arg(long)]
    cwd: Option<String>,
    /// Sandbox mode for the thread's commands [default: the host's].
    #[arg(long, value_enum)]
    sandbox: Option<Sandbox>,
    /// When the host asks before running a command [default: the host's].
    #[arg(long, value_enum)]
    approval_policy: Option<Policy>,
}

/// Arguments of `tether thread list`.
#[derive(Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// Print the threads as a JSON array (the host's Thread objects).
    #[arg(long)]
    json: bool,
}

/// Arguments of `tether thread show`.
#[derive(Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    target: Target,
    /// Print the host's `thread/read` result as JSON.
    #[arg(long)]
    json: bool,
    /// The thread id.
    thread: String,
}

/// Arguments of `tether thread handoff`.
#[derive(Args)]
pub(crate) struct HandoffArgs {
    /// The controller's state directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The host the thread is on (name or key/fingerprint prefix).
    #[arg(long)]
    from: String,
    /// The host to move it to.
    #[arg(long)]
    to: String,
    /// Project root on the target host the thread's directory is resolved against
    /// [default: the target host's default project].
    #[arg(long)]
    project_root: Option<String>,
    #[command(flatten)]
    relay: RelayOptions,
    /// The thread id on the source host.
    thread: String,
}

/// Decisions as `--decision` spells them.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Decision {
    /// Run the command once.
    Accept,
    /// Run it, and the same command in the same directory of this thread from now on
    /// without asking, until the host restarts.
    #[value(name = "acceptForSession")]
    AcceptForSession,
    /// Do not run it; the turn goes on.
    Decline,
    /// Do not run it, and interrupt the turn.
    Cancel,
}

impl From<Decision> for ApprovalDecision {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Accept => Self::Accept,
            Decision::AcceptForSession => Self::AcceptForSession,
            Decision::Decline => Self::Decline,
            Decision::Cancel => Self::Cancel,
        }
    }
}

/// The exit statuses of `tether turn`, for `--help`.
pub(crate) const TURN_EXIT_HELP: &str = "\
Approvals: for each command the host asks about, tether asks on the terminal
  Run `COMMAND` in DIR? [y]es/[n]o/[a]lways/[c]ancel
(y = accept, a = acceptForSession, n = decline, c = cancel). With --decision every
request gets that answer without asking; without a terminal, --decision is required.
Ctrl-C sends turn/interrupt; a second Ctrl-C quits at once.

Exit status:
  N    the turn's last command ran and exited with status N (0 when it succeeded)
  0    the turn completed without running a command
  125  the command was declined (by you, or by the host after 300 s without an answer)
  126  the command ended without an exit status (killed, time limit, output cap)
  130  the turn was interrupted (Ctrl-C or a cancel decision)
  1    tether failed, or the host refused (the error is printed on one line)
  2    usage error";

/// Arguments of `tether turn`.
#[derive(Args)]
pub(crate) struct TurnArgs {
    #[command(flatten)]
    target: Target,
    /// The thread to run the turn on.
    #[arg(long)]
    thread: String,
    /// Answer every approval request with this decision instead of asking on the terminal
    /// (for scripts).
    #[arg(long, value_enum)]
    decision: Option<Decision>,
    /// The input text (the test agent runs `$ COMMAND` as a command).
    text: String,
}

/// Runs a `tether thread` subcommand.
pub(crate) fn run_thread(command: ThreadCommand) -> anyhow::Result<ExitCode> {
    match command {
        ThreadCommand::Start(args) => start(args),
        ThreadCommand::List(args) => list(args),
        ThreadCommand::Show(args) => show(args),
        ThreadCommand::Handoff(args) => run_handoff(args),
        ThreadCommand::Attach(args) => attach(args),
    }
}

/// One line for a failure on `host` while doing `what`.
fn host_failure(what: &str, host: &PairedHost, e: &ControllerError) -> ExitCode {
    let label = host_label(host);
    match e {
        // CMD-55, CMD-56 and every other typed refusal: code and name (spec/05 5.12).
        ControllerError::Rpc { error, .. } => {
            eprintln!(
                "tether: {what}: host {label} refused: {}",
                describe_rpc_error(error)
            );
        }
        // The relay could not deliver the session (LINK-17, LINK-20, ...): not a refusal.
        ControllerError::Closed(info)
            if [
                CloseCode::HOST_UNREACHABLE,
                CloseCode::SESSION_LIMIT,
                CloseCode::PEER_GONE,
                CloseCode::SLOW_READER,
                CloseCode::UNKNOWN_SESSION,
                CloseCode::SESSION_ID_IN_USE,
            ]
            .contains(&info.code) =>
        {
            eprintln!("tether: {what}: cannot reach host {label}: {}", describe(e));
        }
        ControllerError::Closed(_) | ControllerError::GoAway { .. } => {
            eprintln!("tether: {what}: host {label} refused: {}", describe(e));
        }
        ControllerError::Usage(_) => {
            eprintln!("tether: {what}: {e}");
            return ExitCode::from(2);
        }
        _ => eprintln!("tether: {what} on host {label}: {}", describe(e)),
    }
    ExitCode::FAILURE
}

/// Opens the state and finds the host, or prints why not.
fn target_host(
    state_dir: &std::path::Path,
    host: Option<&str>,
    what: &str,
) -> Result<(ControllerState, PairedHost), ExitCode> {
    let state = open_state(state_dir)?;
    match state.find_host(host) {
        Ok(h) => Ok((state, h)),
        Err(e) => {
            eprintln!("tether: {what}: {}", describe(&e));
            Err(ExitCode::FAILURE)
        }
    }
}

fn sandbox_line(report: &SandboxReport) -> String {
    let network = match report.network {
        NetworkAccess::Denied => "denied",
        NetworkAccess::Allowed => "allowed",
        NetworkAccess::Unenforced => "NOT enforced",
    };
    let mut line = format!(
        "sandbox: {} enforced by {} (requested {}), network {network}",
        report.enforced.as_str(),
        report.mechanism,
        report.requested.as_str()
    );
    if report.degraded {
        line.push_str("; DEGRADED: the host enforces less than requested (CMD-46)");
    }
    line
}

/// The sandbox of a `thread/start`, `thread/resume` or `tether/thread/import` answer: the
/// report (`tether.sandbox`) when the host sent one, else Codex's policy type.
fn opened_sandbox_line(opened: &ThreadOpened) -> String {
    match opened.report() {
        Some(report) => sandbox_line(report),
        None => format!("sandbox: {:?} (no report from the host)", opened.sandbox),
    }
}

fn mode_str(m: Option<SandboxMode>) -> &'static str {
    m.map_or("?", SandboxMode::as_str)
}

fn policy_opt_str(p: Option<ApprovalPolicy>) -> &'static str {
    p.map_or("?", policy_str)
}

fn policy_str(p: ApprovalPolicy) -> &'static str {
    match p {
        ApprovalPolicy::Untrusted => "untrusted",
        ApprovalPolicy::OnRequest => "on-request",
        ApprovalPolicy::Never => "never",
    }
}

fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let (state, host) = match target_host(
        &args.target.state,
        args.target.host.as_deref(),
        "thread start",
    ) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let params = ThreadStartParams {
        cwd: args.cwd,
        sandbox: args.sandbox.map(Into::into),
        approval_policy: args.approval_policy.map(Into::into),
        ..ThreadStartParams::default()
    };
    let options = args.target.relay.link_options();
    let rt = runtime()?;
    let result = rt.block_on(async {
        let conn = connect(&state, &host, &options).await?;
        let opened = thread_start(&conn.session, &params).await;
        conn.close().await;
        opened
    });
    match result {
        Ok(opened) => {
            // The id alone on stdout, for scripts (CMD-17); the rest on stderr.
            println!("{}", opened.thread.id);
            eprintln!("{}", opened_sandbox_line(&opened));
            eprintln!(
                "cwd: {}; approval policy: {}",
                opened.thread.cwd,
                policy_str(opened.approval_policy)
            );
            for source in &opened.instruction_sources {
                eprintln!("instructions: {source}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(host_failure("thread start", &host, &e)),
    }
}

fn time(secs: u64) -> String {
    UnixTime::from_secs(secs).rfc3339()
}

/// Text from the host, made safe for a terminal: no control characters but newline and tab.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (state, host) = match target_host(
        &args.target.state,
        args.target.host.as_deref(),
        "thread list",
    ) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let options = args.target.relay.link_options();
    let rt = runtime()?;
    let result = rt.block_on(async {
        let conn = connect(&state, &host, &options).await?;
        let threads = thread_list_all(&conn.session, 100).await;
        conn.close().await;
        threads
    });
    let threads = match result {
        Ok(t) => t,
        Err(e) => return Ok(host_failure("thread list", &host, &e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&threads)?);
        return Ok(ExitCode::SUCCESS);
    }
    if threads.is_empty() {
        println!("no threads on host {}", host.name);
        return Ok(ExitCode::SUCCESS);
    }
    for t in &threads {
        println!("{}", list_line(t));
    }
    Ok(ExitCode::SUCCESS)
}

/// `idle`, `active`, `waiting` (an approval is pending), `notLoaded`, `systemError`.
fn thread_status(s: &ThreadStatus) -> &'static str {
    s.label()
}

fn list_line(t: &Thread) -> String {
    let status = thread_status(&t.status);
    let mut line = format!(
        "{}  {status:<7}  {}  {}  {}  {}",
        one_line(&t.id, 64),
        time(t.updated_at),
        mode_str(t.sandbox()),
        policy_opt_str(t.approval_policy()),
        one_line(&t.cwd, 200),
    );
    if !t.preview.is_empty() {
        line.push_str(&format!("  {:?}", one_line(&t.preview, 40)));
    }
    line
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let what = format!("thread show {}", one_line(&args.thread, 64));
    let (state, host) = match target_host(&args.target.state, args.target.host.as_deref(), &what) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let options = args.target.relay.link_options();
    let rt = runtime()?;
    let result = rt.block_on(async {
        let conn = connect(&state, &host, &options).await?;
        let read = thread_read(&conn.session, &args.thread).await;
        conn.close().await;
        read
    });
    let read = match result {
        Ok(r) => r,
        Err(e) => return Ok(host_failure(&what, &host, &e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&read)?);
        return Ok(ExitCode::SUCCESS);
    }
    let t = &read.thread;
    let mut out = String::new();
    out.push_str(&format!(
        "thread {}  {}\n",
        one_line(&t.id, 64),
        thread_status(&t.status)
    ));
    out.push_str(&format!("  cwd:      {}\n", one_line(&t.cwd, 400)));
    out.push_str(&format!(
        "  sandbox:  {}   approval policy: {}\n",
        mode_str(t.sandbox()),
        policy_opt_str(t.approval_policy())
    ));
    out.push_str(&format!(
        "  created:  {}   updated: {}\n",
        time(t.created_at),
        time(t.updated_at)
    ));
    for turn in &t.turns {
        let status = match turn.status {
            TurnStatus::InProgress => "in progress",
            TurnStatus::Completed => "completed",
            TurnStatus::Interrupted => "interrupted",
            TurnStatus::Failed => "failed",
        };
        out.push_str(&format!("turn {}  {status}\n", one_line(&turn.id, 64)));
        for item in &turn.items {
            out.push_str(&item_text(item));
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// An item as `thread show` prints it.
fn item_text(item: &ThreadItem) -> String {
    match item {
        ThreadItem::UserMessage(m) => format!("  > {}\n", one_line(&m.text(), 400)),
        // CMD-78: an item type this CLI does not know is shown by its type.
        ThreadItem::Other(o) => format!("  [{} item]\n", one_line(&o.kind, 64)),
        ThreadItem::AgentMessage(m) => format!("  agent: {}\n", clean(&m.text)),
        ThreadItem::CommandExecution(c) => {
            let status = match c.status {
                CommandExecutionStatus::InProgress => "in progress",
                CommandExecutionStatus::Completed => "completed",
                CommandExecutionStatus::Failed => "failed",
                CommandExecutionStatus::Declined => "declined",
            };
            let mut facts = vec![status.to_owned()];
            if let Some(code) = c.exit_code {
                facts.push(format!("exit {code}"));
            }
            if let Some(ms) = c.duration_ms {
                facts.push(format!("{ms} ms"));
            }
            let mut text = format!(
                "  $ {}   [{}] in {}\n",
                one_line(&c.command, 400),
                facts.join(", "),
                one_line(&c.cwd, 400)
            );
            if let Some(output) = &c.aggregated_output {
                for line in clean(output).lines() {
                    text.push_str(&format!("    | {line}\n"));
                }
            }
            text
        }
    }
}

fn run_handoff(args: HandoffArgs) -> anyhow::Result<ExitCode> {
    let what = format!("thread handoff {}", one_line(&args.thread, 64));
    let Ok(state) = open_state(&args.state) else {
        return Ok(ExitCode::FAILURE);
    };
    let (from, to) = match (
        state.find_host(Some(&args.from)),
        state.find_host(Some(&args.to)),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) => {
            eprintln!("tether: {what}: --from: {}", describe(&e));
            return Ok(ExitCode::FAILURE);
        }
        (_, Err(e)) => {
            eprintln!("tether: {what}: --to: {}", describe(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    let options = args.relay.link_options();
    let rt = runtime()?;
    let result: Result<_, (HandoffStep, ControllerError)> = rt.block_on(async {
        let from_conn = connect(&state, &from, &options)
            .await
            .map_err(|e| (HandoffStep::Export, e))?;
        let bundle = thread_export(&from_conn.session, &args.thread).await;
        from_conn.close().await;
        let bundle = bundle.map_err(|e| (HandoffStep::Export, e))?;
        let to_conn: Connection = connect(&state, &to, &options)
            .await
            .map_err(|e| (HandoffStep::Import, e))?;
        let opened =
            thread_import(&to_conn.session, bundle.clone(), args.project_root.clone()).await;
        to_conn.close().await;
        let opened = opened.map_err(|e| (HandoffStep::Import, e))?;
        Ok((bundle, opened))
    });
    match result {
        Ok((bundle, opened)) => {
            println!("{}", opened.thread.id);
            eprintln!(
                "thread {} on host {} is now thread {} on host {} ({} items, cwd {})",
                one_line(&args.thread, 64),
                from.name,
                one_line(&opened.thread.id, 64),
                to.name,
                bundle.items.len(),
                one_line(&opened.thread.cwd, 400),
            );
            eprintln!("{}", opened_sandbox_line(&opened));
            for source in &opened.instruction_sources {
                eprintln!("instructions: {source}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((HandoffStep::Export, e)) => Ok(host_failure(&format!("{what}: export"), &from, &e)),
        Err((HandoffStep::Import, e)) => Ok(host_failure(&format!("{what}: import"), &to, &e)),
    }
}

/// Asks on the terminal: lines of stdin come from a reader thread (which never keeps the
/// process from exiting) through a channel, so that a prompt can be abandoned when the
/// approval is resolved elsewhere.
struct TerminalApprover {
    lines: Arc<Mutex<mpsc::UnboundedReceiver<Option<String>>>>,
    prompting: Arc<AtomicBool>,
    /// Set when a prompt was abandoned: what was typed at it answers nothing.
    stale: Arc<AtomicBool>,
}

/// Marks the prompt abandoned unless it was answered.
struct AbandonGuard {
    stale: Arc<AtomicBool>,
    answered: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.answered {
            self.stale.store(true, Ordering::SeqCst);
        }
    }
}

impl TerminalApprover {
    fn new(prompting: Arc<AtomicBool>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            loop {
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(_) => {
                        if tx.send(Some(line)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Self {
            lines: Arc::new(Mutex::new(rx)),
            prompting,
            stale: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// y / n / a / c, as typed.
fn parse_answer(line: &str) -> Option<ApprovalDecision> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(ApprovalDecision::Accept),
        "a" | "always" => Some(ApprovalDecision::AcceptForSession),
        "n" | "no" => Some(ApprovalDecision::Decline),
        "c" | "cancel" => Some(ApprovalDecision::Cancel),
        _ => None,
    }
}

fn prompt_text(request: &ApprovalRequest) -> String {
    let p = &request.params;
    format!(
        "Run `{}` in {}? [y]es/[n]o/[a]lways/[c]ancel ",
        one_line(&p.command, 400),
        one_line(&p.cwd, 400)
    )
}

impl Approver for TerminalApprover {
    fn decide(&mut self, request: &ApprovalRequest) -> DecisionFuture {
        let lines = self.lines.clone();
        let prompting = self.prompting.clone();
        let stale = self.stale.clone();
        let prompt = prompt_text(request);
        let sandbox = mode_str(request.params.sandbox());
        let reason = request.params.reason.as_deref().map(|r| one_line(r, 200));
        Box::pin(async move {
            let mut lines = lines.lock().await;
            // Lines typed at an abandoned prompt are not answers to this one.
            if stale.swap(false, Ordering::SeqCst) {
                while lines.try_recv().is_ok() {}
            }
            let mut guard = AbandonGuard {
                stale,
                answered: false,
            };
            let mut err = std::io::stderr();
            let context = match reason {
                Some(r) => {
                    format!("tether: the host asks ({r}); the command would run under {sandbox}")
                }
                None => format!("tether: the command would run under {sandbox}"),
            };
            let _ = writeln!(err, "{context}");
            for _ in 0..100 {
                let _ = write!(err, "{prompt}");
                let _ = err.flush();
                prompting.store(true, Ordering::SeqCst);
                let line = lines.recv().await.flatten();
                prompting.store(false, Ordering::SeqCst);
                match line {
                    None => {
                        guard.answered = true;
                        let _ = writeln!(err, "\ntether: no more input; declining");
                        return Some(ApprovalDecision::Decline);
                    }
                    Some(l) => match parse_answer(&l) {
                        Some(d) => {
                            guard.answered = true;
                            return Some(d);
                        }
                        None => {
                            let _ = writeln!(err, "please answer y, n, a or c");
                        }
                    },
                }
            }
            guard.answered = true;
            Some(ApprovalDecision::Decline)
        })
    }
}

fn decision_str(d: &ApprovalDecision) -> &'static str {
    d.as_str()
}

/// A command's output as it comes (section 5.4: stdout and stderr merged, as text), to
/// stdout.
fn write_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints one turn event: command output (stdout and stderr merged, section 5.4) to stdout
/// as it comes, the agent's messages to stdout, everything about approvals on stderr.
///
/// `streamed` holds the command items whose output came as deltas: a command that sent
/// none has its `aggregatedOutput` printed when it completes (an external agent such as
/// Codex may not stream a short command's output at all, section 5.14).
fn print_event(
    event: &TurnEvent,
    prompting: &AtomicBool,
    scripted: bool,
    streamed: &RefCell<HashSet<String>>,
) {
    let abandon = || {
        if prompting.swap(false, Ordering::SeqCst) {
            eprintln!();
        }
    };
    match event {
        TurnEvent::Output { item_id, text } => {
            streamed.borrow_mut().insert(item_id.clone());
            write_out(text);
        }
        TurnEvent::ItemCompleted(ThreadItem::AgentMessage(m)) => println!("{}", clean(&m.text)),
        TurnEvent::ItemCompleted(ThreadItem::CommandExecution(c)) => match c.status {
            _ if !streamed.borrow().contains(&c.id)
                && c.aggregated_output.as_ref().is_some_and(|o| !o.is_empty()) =>
            {
                if let Some(output) = &c.aggregated_output {
                    write_out(output);
                }
                if c.status == CommandExecutionStatus::Failed && c.exit_code.is_none() {
                    eprintln!(
                        "tether: `{}` failed without an exit status (killed, time limit or sandbox)",
                        one_line(&c.command, 200)
                    );
                }
            }
            CommandExecutionStatus::Declined => {
                eprintln!(
                    "tether: `{}` was not run (declined)",
                    one_line(&c.command, 200)
                );
            }
            CommandExecutionStatus::Failed if c.exit_code.is_none() => {
                eprintln!(
                    "tether: `{}` failed without an exit status (killed, time limit or sandbox)",
                    one_line(&c.command, 200)
                );
            }
            _ => {}
        },
        TurnEvent::ApprovalRequested(r) if scripted => {
            eprintln!(
                "tether: the host asks to run `{}` in {} under {}",
                one_line(&r.params.command, 200),
                one_line(&r.params.cwd, 200),
                mode_str(r.params.sandbox())
            );
        }
        TurnEvent::ApprovalAnswered { decision, .. } if scripted => {
            eprintln!("tether: answered {} (--decision)", decision_str(decision));
        }
        TurnEvent::Resolved(r) => {
            // Section 5.5: Tether's members are in `tether`; a Codex host sends none.
            let Some(t) = &r.tether else {
                if prompting.load(Ordering::SeqCst) {
                    abandon();
                    eprintln!("tether: the approval was resolved");
                }
                return;
            };
            if let Some(rejected) = &t.rejected_answer {
                abandon();
                eprintln!(
                    "tether: our answer came too late: {} ({} ApprovalAlreadyResolved); {} is in force",
                    one_line(&rejected.message, 200),
                    rejected.code,
                    decision_str(&t.decision)
                );
            } else if prompting.load(Ordering::SeqCst) {
                abandon();
                match &t.resolved_by {
                    Some(by) => eprintln!(
                        "tether: answered by {}: {}",
                        one_line(by, 64),
                        decision_str(&t.decision)
                    ),
                    None => eprintln!(
                        "tether: the host decided: {} (no answer in time, or the turn ended)",
                        decision_str(&t.decision)
                    ),
                }
            }
        }
        TurnEvent::ApprovalWithdrawn { .. } => {
            abandon();
            eprintln!("tether: the host withdrew the approval request");
        }
        TurnEvent::InterruptSent => {
            abandon();
            eprintln!("tether: interrupting the turn (Ctrl-C again to quit now)");
        }
        _ => {}
    }
}

/// `tether turn`.
pub(crate) fn turn(args: TurnArgs) -> anyhow::Result<ExitCode> {
    let what = format!("turn on thread {}", one_line(&args.thread, 64));
    drive(
        &args.target,
        &args.thread,
        args.decision,
        &what,
        Some(&args.text),
    )
}

/// `tether thread attach`.
fn attach(args: AttachArgs) -> anyhow::Result<ExitCode> {
    let what = format!("attach to thread {}", one_line(&args.thread, 64));
    drive(&args.target, &args.thread, args.decision, &what, None)
}

/// Runs a turn (`text`) or follows the thread's running or next turn (`None`), streaming
/// its output and answering its approvals.
fn drive(
    target: &Target,
    thread: &str,
    decision: Option<Decision>,
    what: &str,
    text: Option<&str>,
) -> anyhow::Result<ExitCode> {
    // Approvals need someone to answer them: a terminal, or --decision.
    if decision.is_none() && !std::io::stdin().is_terminal() {
        eprintln!(
            "tether: {what}: no terminal to ask for approvals on; pass --decision accept|acceptForSession|decline|cancel"
        );
        return Ok(ExitCode::from(2));
    }
    let (state, host) = match target_host(&target.state, target.host.as_deref(), what) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let options = target.relay.link_options();
    let prompting = Arc::new(AtomicBool::new(false));
    let scripted = decision.is_some();
    let mut approver: Box<dyn Approver + Send> = match decision {
        Some(d) => Box::new(FixedDecision(Some(d.into()))),
        None => Box::new(TerminalApprover::new(prompting.clone())),
    };
    let rt = runtime()?;
    let result = rt.block_on(async {
        // Ctrl-C: the first sends turn/interrupt (CMD-23), the second quits at once.
        let (count_tx, count_rx) = watch::channel(0u32);
        tokio::spawn(async move {
            for n in 1..=2u32 {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                let _ = count_tx.send(n);
            }
        });
        let at_least = |n: u32| {
            let mut rx = count_rx.clone();
            async move {
                let _ = rx.wait_for(|c| *c >= n).await;
            }
        };
        let mut conn = connect(&state, &host, &options).await?;
        if *count_rx.borrow() > 0 {
            // Ctrl-C while connecting: no turn is started.
            conn.close().await;
            return Ok(None);
        }
        let streamed = RefCell::new(HashSet::new());
        let on_event = |event: &TurnEvent| print_event(event, &prompting, scripted, &streamed);
        let outcome = match text {
            Some(text) => {
                let run = run_turn_until(
                    &mut conn.session,
                    thread,
                    text,
                    approver.as_mut(),
                    at_least(1),
                    on_event,
                );
                tokio::select! {
                    r = run => Some(r),
                    () = at_least(2) => None,
                }
            }
            None => {
                // CMD-19: pending approvals of the thread follow the resume.
                if let Err(e) = thread_resume(&conn.session, thread).await {
                    conn.close().await;
                    return Err(e);
                }
                eprintln!(
                    "tether: attached to thread {} on host {}; following its turn (Ctrl-C to detach)",
                    one_line(thread, 64),
                    host.name
                );
                let run = follow_turn(
                    &mut conn.session,
                    thread,
                    None,
                    approver.as_mut(),
                    std::future::pending(),
                    on_event,
                );
                // Ctrl-C detaches: the turn is someone else's.
                tokio::select! {
                    r = run => Some(r),
                    () = at_least(1) => None,
                }
            }
        };
        conn.close().await;
        Ok::<_, ControllerError>(outcome)
    });
    match result {
        Ok(Some(Ok(outcome))) => {
            let status = outcome.exit_status();
            // Declined and status-less commands were reported as their items completed.
            if outcome.turn.status == TurnStatus::Interrupted {
                eprintln!("tether: the turn was interrupted (exit {EXIT_INTERRUPTED})");
            }
            let code = u8::try_from(status & 0xff).unwrap_or(1);
            Ok(ExitCode::from(if code == 0 && status != 0 {
                1
            } else {
                code
            }))
        }
        Ok(None) => {
            eprintln!(
                "tether: {what}: quit; the session to host {} is closed",
                host_label(&host)
            );
            Ok(ExitCode::from(130))
        }
        Ok(Some(Err(e))) | Err(e) => Ok(host_failure(what, &host, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_decisions() {
        assert_eq!(parse_answer("y\n"), Some(ApprovalDecision::Accept));
        assert_eq!(parse_answer(" Yes "), Some(ApprovalDecision::Accept));
        assert_eq!(parse_answer("a"), Some(ApprovalDecision::AcceptForSession));
        assert_eq!(parse_answer("n"), Some(ApprovalDecision::Decline));
        assert_eq!(parse_answer("c\r\n"), Some(ApprovalDecision::Cancel));
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("maybe"), None);
    }

    #[test]
    fn host_text_cannot_drive_the_terminal() {
        assert_eq!(clean("ok\x1b[2J\n\tx"), "ok[2J\n\tx");
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc...");
    }
}
