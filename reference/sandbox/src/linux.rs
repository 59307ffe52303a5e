//! The inner layer on Linux: resource limits, Landlock (file system and device ioctls)
//! and seccomp (sockets, terminal injection, kernel attack surface).

use std::collections::BTreeMap;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, LandlockStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use tether_proto::cmd::types::{NetworkAccess, SandboxMode};

use crate::policy::{Enforcement, MAX_PROCESSES, Policy, ProcessLimit, SandboxError};

/// The file-system rights the sandbox handles: those of ABI 5 (every write right,
/// `Refer`, `Truncate` and `IoctlDev` included). Kernels with an older ABI enforce less,
/// which [`RulesetStatus::PartiallyEnforced`] reports and the caller reports on.
const FS_ABI: ABI = ABI::V5;

fn kernel(detail: impl ToString) -> SandboxError {
    SandboxError::Kernel {
        detail: detail.to_string(),
    }
}

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

fn restrict_filesystem(policy: &Policy) -> Result<(bool, u8), SandboxError> {
    for root in &policy.writable_roots {
        if let Err(e) = std::fs::metadata(root) {
            return Err(SandboxError::BadRoot {
                path: root.clone(),
                detail: e.to_string(),
            });
        }
    }
    let read = AccessFs::from_read(FS_ABI);
    let all = AccessFs::from_all(FS_ABI);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(kernel)?
        // A sandboxed command may not signal or reach abstract sockets outside it (ABI 6;
        // dropped on older kernels, where the namespaces still separate them).
        .scope(Scope::from_all(ABI::V6))
        .map_err(kernel)?
        .create()
        .map_err(kernel)?
        .add_rules(path_beneath_rules(["/"], read))
        .map_err(kernel)?
        .add_rules(path_beneath_rules(
            ["/dev/null"],
            AccessFs::WriteFile | AccessFs::ReadFile,
        ))
        .map_err(kernel)?;
    if policy.mode == SandboxMode::WorkspaceWrite {
        // CMD-44: the writable roots, and the private /tmp the view gives the command.
        // Device ioctls stay refused everywhere (CMD-65).
        let write = all & !AccessFs::IoctlDev;
        ruleset = ruleset
            .add_rules(path_beneath_rules(&policy.writable_roots, write))
            .map_err(kernel)?;
        if std::path::Path::new("/tmp").is_dir() {
            ruleset = ruleset
                .add_rules(path_beneath_rules(["/tmp"], write))
                .map_err(kernel)?;
        }
    }
    let status = ruleset.restrict_self().map_err(kernel)?;
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

fn target_arch() -> Option<TargetArch> {
    match std::env::consts::ARCH {
        "x86_64" => Some(TargetArch::x86_64),
        "aarch64" => Some(TargetArch::aarch64),
        "riscv64" => Some(TargetArch::riscv64),
        _ => None,
    }
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(vec![
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(kernel)?,
    ])
    .map_err(kernel)
}

/// The seccomp filter of the sandboxed modes: every listed call fails with `EACCES`.
fn filter(arch: TargetArch) -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // CMD-67: no socket of any family (IP, Unix, netlink, packet, vsock …): a command
    // cannot reach a listener, the host's Unix sockets included. Connected pairs stay.
    rules.insert(libc::SYS_socket, vec![]);
    let unix = u64::try_from(libc::AF_UNIX).map_err(kernel)?;
    rules.insert(
        libc::SYS_socketpair,
        vec![condition(0, SeccompCmpOp::Ne, unix)?],
    );
    // io_uring can create sockets without socket(2).
    for call in [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ] {
        rules.insert(call, vec![]);
    }
    // CMD-65: pushing input into a terminal, whatever terminal the command gets hold of.
    rules.insert(
        libc::SYS_ioctl,
        vec![
            condition(1, SeccompCmpOp::Eq, libc::TIOCSTI)?,
            condition(1, SeccompCmpOp::Eq, libc::TIOCLINUX)?,
        ],
    );
    // CMD-66: the user's kernel keyrings, namespaces, mounts, and kernel interfaces a
    // build or test has no need of.
    for call in [
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
    ] {
        rules.insert(call, vec![]);
    }
    let eacces = u32::try_from(libc::EACCES).map_err(kernel)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(eacces),
        arch,
    )
    .map_err(kernel)?;
    BpfProgram::try_from(filter).map_err(kernel)
}

fn restrict_syscalls() -> Result<NetworkAccess, SandboxError> {
    let Some(arch) = target_arch() else {
        return Ok(NetworkAccess::Unenforced);
    };
    let program = filter(arch)?;
    match seccompiler::apply_filter(&program) {
        Ok(()) => Ok(NetworkAccess::Denied),
        Err(_) => Ok(NetworkAccess::Unenforced),
    }
}

/// CMD-69: `RLIMIT_NPROC` (counted per user in the command's own user namespace; the
/// kernel exempts user 0 of the initial namespace, for which the launcher uses a cgroup)
/// and no core files. The limit is read back, not assumed.
fn restrict_resources() -> Option<ProcessLimit> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let max = u64::from(MAX_PROCESSES);
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let set = setrlimit(
        Resource::Nproc,
        Rlimit {
            current: Some(max),
            maximum: Some(max),
        },
    );
    let now = getrlimit(Resource::Nproc);
    let effective = set.is_ok()
        && now.current.is_some_and(|c| c <= max)
        // uid 0 inside is uid 0 outside (bubblewrap maps the caller's own id): exempt.
        && !rustix::process::getuid().is_root();
    effective.then(|| ProcessLimit {
        max: MAX_PROCESSES,
        by: "rlimit".to_owned(),
    })
}

pub(crate) fn restrict_self(policy: &Policy) -> Result<Enforcement, SandboxError> {
    let process_limit = restrict_resources();
    let (filesystem, landlock_abi) = restrict_filesystem(policy)?;
    let network = restrict_syscalls()?;
    let mechanism = match (filesystem, network == NetworkAccess::Denied) {
        (true, true) => "landlock+seccomp",
        (true, false) => "landlock",
        (false, true) => "seccomp",
        (false, false) => "none",
    };
    let mut e = Enforcement {
        filesystem,
        network,
        landlock_abi,
        process_limit,
        mechanism: mechanism.into(),
        ..Enforcement::nothing(policy.mode)
    };
    e.assess();
    Ok(e)
}
