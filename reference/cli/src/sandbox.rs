//! `tether sandbox-exec`: run a program under the sandbox of a mode (`spec/05`, section
//! 5.7; the layers are described in `tether-sandbox`).
//!
//! The host runs every command as `tether sandbox-exec --mode MODE [--writable DIR]...
//! [--hide PATH]... -- PROGRAM ARGS...`, in the command's working directory. For
//! `read-only` and `workspace-write` three processes take part:
//!
//! ```text
//! host ── tether sandbox-exec (launcher: pids cgroup, waits, relays the status)
//!           └─ bwrap (namespaces, the view, no capabilities, new session)
//!                └─ bwrap's init, PID 1 of the command's PID namespace
//!                     └─ tether sandbox-exec --inner (rlimits, Landlock, seccomp;
//!                          │                    measures what holds; waits)
//!                          └─ PROGRAM ARGS...
//! ```
//!
//! The launcher stays in the host's process group, so the host's `SIGKILL` to the group
//! (`CMD-37`) reaches it and, through bubblewrap's `--die-with-parent`, the sandbox's init:
//! the kernel then kills every process of the PID namespace (`CMD-68`). The inner stage
//! reports how the program ended on a pipe, so that a program killed by a signal is
//! reported with that signal (`CMD-39`) although bubblewrap itself only exits with codes.
//!
//! If the layers cannot enforce everything the mode asks for, the program is not run
//! (exit 125) unless `--allow-degraded` is given (`CMD-46`).

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use clap::Args;
use tether_proto::cmd::types::SandboxMode;
use tether_sandbox::{Enforcement, MAX_PROCESSES, Policy, ProcessLimit, SelfView, restrict_self};

/// Exit status when the sandbox could not be set up or is incomplete.
const EXIT_SANDBOX: u8 = 125;
/// Exit status when the program could not be executed.
const EXIT_EXEC: u8 = 127;

/// Arguments of `tether sandbox-exec`.
#[derive(Args)]
pub(crate) struct SandboxExecArgs {
    /// `read-only`, `workspace-write` or `danger-full-access`.
    #[arg(long, value_parser = parse_mode)]
    mode: SandboxMode,
    /// A directory `workspace-write` may write under (repeatable).
    #[arg(long = "writable", value_name = "DIR")]
    writable: Vec<PathBuf>,
    /// A path the command must not see at all: the host's state directory, its
    /// credential file (repeatable).
    #[arg(long = "hide", value_name = "PATH")]
    hide: Vec<PathBuf>,
    /// Run the program even if the sandbox enforces less than the mode asks for.
    #[arg(long)]
    allow_degraded: bool,
    /// Print what the sandbox enforces, measured from inside it, as one JSON line on
    /// stdout, and run nothing.
    #[arg(long, conflicts_with = "program")]
    probe: bool,
    /// Internal: the stage inside the namespaces.
    #[arg(long, hide = true)]
    inner: bool,
    /// Internal: the descriptor the inner stage reports the program's end on.
    #[arg(long, hide = true)]
    status_fd: Option<u32>,
    /// Internal: the launcher's namespaces, to compare with.
    #[arg(long, hide = true, value_delimiter = ',')]
    outer_ns: Vec<String>,
    /// Internal: the pids cgroup limit the launcher put the sandbox under.
    #[arg(long, hide = true)]
    cgroup_limit: Option<u32>,
    /// The command's memory bound in bytes, where a memory cgroup can be created (a host
    /// running as root) [default: half the machine's memory]; 0 for none.
    #[arg(long, value_name = "BYTES")]
    memory_max: Option<u64>,
    /// Internal: the memory cgroup limit the launcher put the sandbox under.
    #[arg(long, hide = true)]
    memory_limit: Option<u64>,
    /// The program and its arguments.
    #[arg(last = true, value_name = "PROGRAM")]
    program: Vec<String>,
}

fn parse_mode(s: &str) -> Result<SandboxMode, String> {
    SandboxMode::ALL
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| {
            format!("unknown sandbox mode {s:?} (read-only, workspace-write, danger-full-access)")
        })
}

pub(crate) fn run(args: SandboxExecArgs) -> anyhow::Result<ExitCode> {
    if !args.probe && args.program.is_empty() {
        anyhow::bail!(
            "sandbox-exec: no program given (usage: tether sandbox-exec --mode MODE -- PROGRAM ARGS...)"
        );
    }
    if args.inner {
        return Ok(inner(args));
    }
    if args.mode == SandboxMode::DangerFullAccess {
        let policy = Policy {
            mode: args.mode,
            writable_roots: Vec::new(),
            hidden: Vec::new(),
        };
        if args.probe {
            return print_probe(&danger(&policy));
        }
        return Ok(exec_plain(&args.program));
    }
    launch(&args, true)
}

fn danger(policy: &Policy) -> Enforcement {
    // danger-full-access has nothing to enforce: restrict_self does nothing for it.
    restrict_self(policy).unwrap_or_else(|_| Enforcement::full_access())
}

fn print_probe(e: &Enforcement) -> anyhow::Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string(e).context("serializing the enforcement report")?
    );
    Ok(ExitCode::SUCCESS)
}

fn exec_plain(program: &[String]) -> ExitCode {
    let Some((program, rest)) = program.split_first() else {
        return ExitCode::from(EXIT_EXEC);
    };
    let error = Command::new(program).args(rest).exec();
    eprintln!("tether sandbox-exec: cannot run {program}: {error}");
    ExitCode::from(EXIT_EXEC)
}

/// bubblewrap, from `PATH` or its usual place.
fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
}

/// The launcher: sets up the cgroup and the status pipe, starts bubblewrap with the inner
/// stage, waits, cleans up and ends the way the program ended.
///
/// `use_bwrap: false` runs the inner layer alone: for a probe or `--allow-degraded` on a
/// machine where bubblewrap is missing or cannot build the namespaces.
fn launch(args: &SandboxExecArgs, use_bwrap: bool) -> anyhow::Result<ExitCode> {
    let policy = Policy {
        mode: args.mode,
        writable_roots: args.writable.clone(),
        hidden: args.hide.clone(),
    };
    let cwd = std::env::current_dir().context("sandbox-exec: the working directory")?;
    let exe = std::env::current_exe().context("sandbox-exec: locating this program")?;
    let bwrap = if use_bwrap { find_bwrap() } else { None };
    let view = match bwrap
        .as_ref()
        .map(|_| tether_sandbox::view::bwrap_args(&policy, &cwd))
    {
        Some(Err(e)) => {
            eprintln!("tether sandbox-exec: {e}");
            return Ok(ExitCode::from(EXIT_SANDBOX));
        }
        Some(Ok(view)) => Some(view),
        None => None,
    };
    if view.is_none() && !args.allow_degraded && !args.probe {
        eprintln!(
            "tether sandbox-exec: bubblewrap (bwrap) is not installed: the namespaces and the \
             file-system view of {} cannot be built; refusing to run the program (CMD-46)",
            args.mode.as_str()
        );
        return Ok(ExitCode::from(EXIT_SANDBOX));
    }
    // CMD-69: a host running as root is exempt from RLIMIT_NPROC; a cgroup bounds it.
    #[cfg(target_os = "linux")]
    let cgroup = if rustix::process::geteuid().is_root() {
        tether_sandbox::cgroup::PidsCgroup::enter(MAX_PROCESSES)
    } else {
        None
    };
    #[cfg(target_os = "linux")]
    let cgroup_limit = cgroup.as_ref().map(tether_sandbox::cgroup::PidsCgroup::max);
    #[cfg(not(target_os = "linux"))]
    let cgroup_limit: Option<u32> = None;
    // CMD-69 (SHOULD): memory, where a cgroup can bound it.
    #[cfg(target_os = "linux")]
    let memory = if rustix::process::geteuid().is_root() {
        args.memory_max
            .or_else(tether_sandbox::default_memory_limit)
            .and_then(tether_sandbox::cgroup::LimitCgroup::memory)
    } else {
        None
    };
    #[cfg(target_os = "linux")]
    let memory_limit = memory
        .as_ref()
        .map(tether_sandbox::cgroup::LimitCgroup::limit);
    #[cfg(not(target_os = "linux"))]
    let memory_limit: Option<u64> = None;

    // The inner stage is this program, handed over as standard input (the program itself
    // gets an empty one, CMD-34): the view need not contain the path it was started from.
    let exe_file = std::fs::File::open(&exe).context("sandbox-exec: opening this program")?;
    let (status_r, status_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty())
        .context("sandbox-exec: a status pipe")?;
    rustix::io::fcntl_setfd(&status_r, rustix::io::FdFlags::CLOEXEC)
        .context("sandbox-exec: a status pipe")?;
    let status_fd = {
        use std::os::fd::AsRawFd;
        status_w.as_raw_fd()
    };
    let outer = SelfView::read();

    let mut inner_args: Vec<std::ffi::OsString> = vec![
        "sandbox-exec".into(),
        "--inner".into(),
        "--mode".into(),
        args.mode.as_str().into(),
        "--status-fd".into(),
        status_fd.to_string().into(),
        "--outer-ns".into(),
        outer.namespaces.join(",").into(),
    ];
    for w in &args.writable {
        inner_args.push("--writable".into());
        inner_args.push(w.into());
    }
    for h in &args.hide {
        inner_args.push("--hide".into());
        inner_args.push(h.into());
    }
    if let Some(limit) = cgroup_limit {
        inner_args.push("--cgroup-limit".into());
        inner_args.push(limit.to_string().into());
    }
    if let Some(limit) = memory_limit {
        inner_args.push("--memory-limit".into());
        inner_args.push(limit.to_string().into());
    }
    if args.allow_degraded {
        inner_args.push("--allow-degraded".into());
    }
    if args.probe {
        inner_args.push("--probe".into());
    } else {
        inner_args.push("--".into());
        inner_args.extend(args.program.iter().map(Into::into));
    }
    let mut command = match (&bwrap, &view) {
        (Some(bwrap), Some(view)) => {
            let mut c = Command::new(bwrap);
            c.args(view)
                .arg("--")
                .arg("/proc/self/fd/0")
                .args(&inner_args);
            c.stdin(exe_file);
            c
        }
        _ => {
            // Degraded (allowed) or probing without bubblewrap: the inner layer alone.
            let mut c = Command::new(&exe);
            c.args(&inner_args).stdin(Stdio::null());
            c
        }
    };
    if args.probe {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let child = command.spawn();
    drop(status_w);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tether sandbox-exec: cannot start the sandbox: {e}");
            return Ok(ExitCode::from(EXIT_SANDBOX));
        }
    };
    if args.probe {
        let out = child
            .wait_with_output()
            .context("sandbox-exec: waiting for the probe")?;
        let report = serde_json::from_slice::<Enforcement>(&out.stdout).unwrap_or_else(|_| {
            let mut e = Enforcement::nothing(args.mode);
            // The cause first and alone: nothing was measured, so nothing else is known.
            e.missing = vec![format!(
                "the sandbox did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )];
            e
        });
        return print_probe(&report);
    }
    let waited = child.wait();
    let mut status = String::new();
    let _ = std::fs::File::from(status_r).read_to_string(&mut status);
    #[cfg(target_os = "linux")]
    drop((cgroup, memory));
    let bwrap_status = waited.context("sandbox-exec: waiting for the sandbox")?;
    let started = status.lines().any(|l| l == STARTED);
    if !started && args.allow_degraded && bwrap.is_some() && bwrap_status.signal().is_none() {
        // bubblewrap could not build the sandbox and the program never ran: degraded on
        // request, it runs with the inner layer alone (CMD-46).
        eprintln!(
            "tether sandbox-exec: bubblewrap could not build the sandbox (its message is \
             above); running {} with Landlock and seccomp only (--allow-degraded)",
            args.mode.as_str()
        );
        return launch(args, false);
    }
    Ok(match parse_status(&status) {
        Some(Ended::Exit(code)) => ExitCode::from(code),
        Some(Ended::Signal(sig)) => die_by(sig),
        // The inner stage never reported: the sandbox could not be set up (bubblewrap
        // printed why), or it was killed.
        None => match bwrap_status.signal() {
            Some(sig) => die_by(sig),
            None => ExitCode::from(EXIT_SANDBOX),
        },
    })
}

/// The inner stage's report that it is starting the program.
const STARTED: &str = "started";

/// How the program ended, as the inner stage reports it.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Exit(u8),
    Signal(i32),
}

/// The last complete report on the status pipe.
fn parse_status(text: &str) -> Option<Ended> {
    text.lines().rev().find_map(|line| {
        let (kind, n) = line.split_once(' ')?;
        match kind {
            "exit" => n.parse().ok().map(Ended::Exit),
            "signal" => n.parse().ok().map(Ended::Signal),
            _ => None,
        }
    })
}

/// Ends this process with signal `sig` (no core file), so that the host sees the
/// program's own end (`CMD-39`); 128 + `sig` when the signal does not end it.
fn die_by(sig: i32) -> ExitCode {
    use rustix::process::{Resource, Rlimit, Signal, getpid, kill_process, setrlimit};
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    if let Some(signal) = Signal::from_named_raw(sig) {
        // The Rust runtime handles SIGSEGV and SIGBUS (stack-overflow detection): its
        // handler restores the default action for a fault it does not own and returns,
        // so the second one ends the process.
        let _ = kill_process(getpid(), signal);
        let _ = kill_process(getpid(), signal);
    }
    ExitCode::from(u8::try_from(128 + sig.clamp(0, 127)).unwrap_or(EXIT_SANDBOX))
}

/// The inner stage: restricts itself, measures what holds, then runs the program and
/// reports how it ended.
fn inner(args: SandboxExecArgs) -> ExitCode {
    // A new descriptor for the status pipe (this one closes on exec; the inherited one
    // cannot be closed without `unsafe`, and a program writing to it can only lie about
    // its own exit, which it decides anyway).
    let mut status = args.status_fd.and_then(|fd| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"))
            .ok()
    });
    let mut report = |ended: &str| {
        if let Some(f) = status.as_mut() {
            use std::io::Write;
            let _ = writeln!(f, "{ended}");
        }
    };
    let policy = Policy {
        mode: args.mode,
        writable_roots: args.writable.clone(),
        hidden: args.hide.clone(),
    };
    let mut enforcement = match restrict_self(&policy) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tether sandbox-exec: {e}");
            report(&format!("exit {EXIT_SANDBOX}"));
            return ExitCode::from(EXIT_SANDBOX);
        }
    };
    // Measured from inside: fresh namespaces with the hidden paths absent (CMD-62,
    // CMD-63), no privileges (CMD-66), no terminal (CMD-65), the process limit (CMD-69).
    let me = SelfView::read();
    enforcement.namespaces = me.all_fresh_from(&args.outer_ns)
        && args.hide.iter().all(|h| h.symlink_metadata().is_err());
    enforcement.privileges_dropped = me.no_capabilities && me.no_new_privs;
    enforcement.no_terminal = me.no_terminal;
    if enforcement.process_limit.is_none() {
        enforcement.process_limit = args.cgroup_limit.map(|max| ProcessLimit {
            max,
            by: "cgroup".to_owned(),
        });
    }
    enforcement.memory_limit = args.memory_limit;
    if enforcement.namespaces {
        enforcement.mechanism = format!("bubblewrap+{}", enforcement.mechanism);
    }
    enforcement.assess();
    if args.probe {
        return match serde_json::to_string(&enforcement) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(_) => ExitCode::from(EXIT_SANDBOX),
        };
    }
    if !enforcement.is_complete() && !args.allow_degraded {
        eprintln!(
            "tether sandbox-exec: {} is not fully enforced here (missing: {}); refusing to \
             run the program (CMD-46)",
            policy.mode.as_str(),
            enforcement.missing.join("; "),
        );
        report(&format!("exit {EXIT_SANDBOX}"));
        return ExitCode::from(EXIT_SANDBOX);
    }
    let Some((program, rest)) = args.program.split_first() else {
        report(&format!("exit {EXIT_EXEC}"));
        return ExitCode::from(EXIT_EXEC);
    };
    report(STARTED);
    // CMD-34: an empty standard input (this stage's own is the launcher's program file).
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .spawn();
    let status_of = match child.and_then(|mut c| c.wait()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tether sandbox-exec: cannot run {program}: {e}");
            report(&format!("exit {EXIT_EXEC}"));
            return ExitCode::from(EXIT_EXEC);
        }
    };
    match (status_of.code(), status_of.signal()) {
        (Some(code), _) => {
            let code = u8::try_from(code).unwrap_or(u8::MAX);
            report(&format!("exit {code}"));
            ExitCode::from(code)
        }
        (None, Some(sig)) => {
            report(&format!("signal {sig}"));
            ExitCode::from(u8::try_from(128 + sig.clamp(0, 127)).unwrap_or(EXIT_SANDBOX))
        }
        (None, None) => {
            report(&format!("exit {EXIT_SANDBOX}"));
            ExitCode::from(EXIT_SANDBOX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_report_wins_and_junk_is_ignored() {
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("exit 3\n"), Some(Ended::Exit(3)));
        assert_eq!(parse_status("signal 11\n"), Some(Ended::Signal(11)));
        assert_eq!(
            parse_status("exit 0\nsignal 9\nnonsense\n"),
            Some(Ended::Signal(9))
        );
        assert_eq!(parse_status("exit 300\n"), None);
    }
}
