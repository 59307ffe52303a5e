//! A conformance fixture, not a sandbox to use: the `tether sandbox-exec` of the reference
//! host in v1 (Landlock ABI 3 for the file system, a seccomp filter refusing only
//! `AF_INET`/`AF_INET6` sockets and `io_uring_setup`, no namespaces, no dropped
//! capabilities, the host's controlling terminal kept), kept so that a host running its
//! commands through it fails the sandbox cases `CMD-44/exec-writes-only-cwd` and `CMD-62`
//! … `CMD-70` (`spec/05`, section 5.7), each failure naming its case.
//!
//! `tether host run --sandbox-launcher PATH` runs commands through it. It speaks the same
//! command line as `tether sandbox-exec`:
//!
//! ```text
//! legacy_sandbox_exec sandbox-exec --probe --mode MODE [--writable DIR]...
//! legacy_sandbox_exec sandbox-exec --mode MODE [--writable DIR]... [--allow-degraded] -- PROGRAM ARGS...
//! ```
//!
//! and accepts, and ignores, options a later host adds (`--hide PATH`, …); `--chdir DIR`
//! is honoured. Each writable root is widened to its project root (the nearest directory
//! above it holding `.git`), as the host of the time chose a `command/exec`'s roots. Its probe reports what the kernel confirmed for Landlock and seccomp, as
//! it did then, and claims the layers it lacks (namespaces, dropped privileges, no
//! terminal, a process limit), so that a host that checks those fields still enforces the
//! modes with it: a host that reports more than it enforces, which the cases must catch
//! from outside.

use std::process::ExitCode;

/// Exit status when the sandbox could not be set up or is incomplete.
const EXIT_SANDBOX: u8 = 125;
/// Exit status when the program could not be executed.
const EXIT_EXEC: u8 = 127;

/// The command line, read leniently.
#[derive(Debug, Default)]
struct Args {
    mode: String,
    writable: Vec<std::path::PathBuf>,
    chdir: Option<std::path::PathBuf>,
    allow_degraded: bool,
    probe: bool,
    program: Vec<String>,
}

/// Parses `[sandbox-exec] OPTIONS [-- PROGRAM ARGS...]`. An unknown option `--x=v` is
/// skipped; an unknown `--x` takes the next argument as its value unless it is an option
/// itself.
fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    let mut pending: Option<String> = argv.next();
    if pending.as_deref() == Some("sandbox-exec") {
        pending = argv.next();
    }
    let mut argv = pending.into_iter().chain(argv).peekable();
    while let Some(a) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--" => {
                args.program = argv.by_ref().collect();
                break;
            }
            "--probe" => args.probe = true,
            "--allow-degraded" => args.allow_degraded = true,
            "--mode" => args.mode = value("--mode")?,
            "--writable" => args.writable.push(value("--writable")?.into()),
            "--chdir" => args.chdir = Some(value("--chdir")?.into()),
            other if other.starts_with("--") => {
                if !other.contains('=') && argv.peek().is_some_and(|n| !n.starts_with("--")) {
                    argv.next();
                }
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    // The host of the time gave a command/exec its project root, not its cwd.
    args.writable = args.writable.iter().map(|r| project_root(r)).collect();
    if !["read-only", "workspace-write", "danger-full-access"].contains(&args.mode.as_str()) {
        return Err(format!(
            "unknown sandbox mode {:?} (read-only, workspace-write, danger-full-access)",
            args.mode
        ));
    }
    Ok(args)
}

/// The nearest directory, from `dir` upwards, holding an entry named `.git`; else `dir`.
fn project_root(dir: &std::path::Path) -> std::path::PathBuf {
    dir.ancestors()
        .find(|d| d.join(".git").symlink_metadata().is_ok())
        .unwrap_or(dir)
        .to_path_buf()
}

/// What the kernel confirmed (the report of the time, plus the claimed layers).
#[derive(Debug)]
struct Enforcement {
    filesystem: bool,
    network_denied: bool,
    landlock_abi: u8,
}

impl Enforcement {
    fn is_complete(&self, mode: &str) -> bool {
        mode == "danger-full-access" || (self.filesystem && self.network_denied)
    }

    fn report(&self, mode: &str) -> serde_json::Value {
        let restricted = mode != "danger-full-access";
        let network = if !restricted {
            "allowed"
        } else if self.network_denied {
            "denied"
        } else {
            "unenforced"
        };
        let mechanism = match (restricted, self.filesystem, self.network_denied) {
            (false, _, _) | (true, false, false) => "none",
            (true, true, true) => "landlock+seccomp",
            (true, true, false) => "landlock",
            (true, false, true) => "seccomp",
        };
        serde_json::json!({
            "requested": mode,
            "filesystem": self.filesystem,
            "network": network,
            "landlockAbi": self.landlock_abi,
            // Claimed, not enforced: see the crate documentation.
            "namespaces": restricted,
            "privilegesDropped": restricted,
            "noTerminal": restricted,
            "processLimit": if restricted {
                serde_json::json!({"max": 1024, "by": "rlimit"})
            } else {
                serde_json::Value::Null
            },
            "mechanism": mechanism,
            "missing": [],
        })
    }
}

#[cfg(target_os = "linux")]
mod legacy {
    //! The Landlock and seccomp code of `tether-sandbox` in v1.

    use std::collections::BTreeMap;

    use landlock::{
        ABI, Access, AccessFs, CompatLevel, Compatible, LandlockStatus, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
    };
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    use super::{Args, Enforcement};

    /// The file-system rights handled: those of ABI 3.
    const FS_ABI: ABI = ABI::V3;

    fn abi_number(status: &LandlockStatus) -> u8 {
        match status {
            LandlockStatus::Available {
                effective_abi,
                kernel_abi,
            } => kernel_abi
                .and_then(|k| u8::try_from(k).ok())
                .unwrap_or(*effective_abi as u8),
            _ => 0,
        }
    }

    fn restrict_filesystem(args: &Args) -> Result<(bool, u8), String> {
        for root in &args.writable {
            std::fs::metadata(root)
                .map_err(|e| format!("writable root {}: {e}", root.display()))?;
        }
        let read = AccessFs::from_read(FS_ABI);
        let all = AccessFs::from_all(FS_ABI);
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(all)
            .map_err(|e| e.to_string())?
            .scope(Scope::from_all(ABI::V6))
            .map_err(|e| e.to_string())?
            .create()
            .map_err(|e| e.to_string())?
            .add_rules(path_beneath_rules(["/"], read))
            .map_err(|e| e.to_string())?
            .add_rules(path_beneath_rules(
                ["/dev/null"],
                AccessFs::WriteFile | AccessFs::ReadFile,
            ))
            .map_err(|e| e.to_string())?;
        if args.mode == "workspace-write" {
            ruleset = ruleset
                .add_rules(path_beneath_rules(&args.writable, all))
                .map_err(|e| e.to_string())?;
        }
        let status = ruleset.restrict_self().map_err(|e| e.to_string())?;
        let fs_enforced = status.ruleset == RulesetStatus::FullyEnforced
            || (status.ruleset == RulesetStatus::PartiallyEnforced
                && matches!(
                    status.landlock,
                    LandlockStatus::Available { effective_abi, .. } if effective_abi >= FS_ABI
                ));
        Ok((
            fs_enforced && status.no_new_privs,
            abi_number(&status.landlock),
        ))
    }

    fn network_filter(arch: TargetArch) -> Result<BpfProgram, String> {
        let family = |af: i32| -> Result<SeccompRule, String> {
            let af = u64::try_from(af).map_err(|e| e.to_string())?;
            SeccompRule::new(vec![
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, af)
                    .map_err(|e| e.to_string())?,
            ])
            .map_err(|e| e.to_string())
        };
        let mut rules = BTreeMap::new();
        rules.insert(
            libc::SYS_socket,
            vec![family(libc::AF_INET)?, family(libc::AF_INET6)?],
        );
        rules.insert(libc::SYS_io_uring_setup, vec![]);
        let eacces = u32::try_from(libc::EACCES).map_err(|e| e.to_string())?;
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(eacces),
            arch,
        )
        .map_err(|e| e.to_string())?;
        BpfProgram::try_from(filter).map_err(|e| e.to_string())
    }

    fn restrict_network() -> Result<bool, String> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => TargetArch::x86_64,
            "aarch64" => TargetArch::aarch64,
            "riscv64" => TargetArch::riscv64,
            _ => return Ok(false),
        };
        let program = network_filter(arch)?;
        Ok(seccompiler::apply_filter(&program).is_ok())
    }

    /// Restricts this thread as the reference host's sandbox did in v1.
    pub(super) fn restrict_self(args: &Args) -> Result<Enforcement, String> {
        if args.mode == "danger-full-access" {
            return Ok(Enforcement {
                filesystem: true,
                network_denied: false,
                landlock_abi: 0,
            });
        }
        let (filesystem, landlock_abi) = restrict_filesystem(args)?;
        let network_denied = restrict_network()?;
        Ok(Enforcement {
            filesystem,
            network_denied,
            landlock_abi,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod legacy {
    use super::{Args, Enforcement};

    pub(super) fn restrict_self(args: &Args) -> Result<Enforcement, String> {
        Ok(Enforcement {
            filesystem: args.mode == "danger-full-access",
            network_denied: false,
            landlock_abi: 0,
        })
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("legacy sandbox-exec: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.probe && args.program.is_empty() {
        eprintln!("legacy sandbox-exec: no program given");
        return ExitCode::from(2);
    }
    let enforcement = match legacy::restrict_self(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("legacy sandbox-exec: kernel refused the sandbox: {e}");
            return ExitCode::from(EXIT_SANDBOX);
        }
    };
    if args.probe {
        println!("{}", enforcement.report(&args.mode));
        return ExitCode::SUCCESS;
    }
    if !enforcement.is_complete(&args.mode) && !args.allow_degraded {
        eprintln!(
            "legacy sandbox-exec: the kernel cannot fully enforce {}; refusing to run the program",
            args.mode
        );
        return ExitCode::from(EXIT_SANDBOX);
    }
    let Some((program, rest)) = args.program.split_first() else {
        return ExitCode::from(2);
    };
    let mut command = std::process::Command::new(program);
    command.args(rest);
    if let Some(dir) = &args.chdir {
        command.current_dir(dir);
    }
    let error = std::os::unix::process::CommandExt::exec(&mut command);
    eprintln!("legacy sandbox-exec: cannot run {program}: {error}");
    ExitCode::from(EXIT_EXEC)
}
