//! Landlock (file system) and seccomp (network) on Linux.

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

use super::{Enforcement, Policy, SandboxError};

/// The file-system rights the sandbox handles: those of ABI 3 (every write right,
/// `Refer` and `Truncate` included). Kernels with ABI 1 or 2 enforce less, which
/// [`RulesetStatus::PartiallyEnforced`] reports and the caller reports on.
const FS_ABI: ABI = ABI::V3;

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
        // dropped on older kernels, which the file-system verdict does not depend on).
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
        ruleset = ruleset
            .add_rules(path_beneath_rules(&policy.writable_roots, all))
            .map_err(kernel)?;
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

fn network_filter(arch: TargetArch) -> Result<BpfProgram, SandboxError> {
    let family = |af: i32| -> Result<SeccompRule, SandboxError> {
        let af = u64::try_from(af).map_err(kernel)?;
        SeccompRule::new(vec![
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, af)
                .map_err(kernel)?,
        ])
        .map_err(kernel)
    };
    let mut rules = BTreeMap::new();
    rules.insert(
        libc::SYS_socket,
        vec![family(libc::AF_INET)?, family(libc::AF_INET6)?],
    );
    // io_uring can create sockets without socket(2).
    rules.insert(libc::SYS_io_uring_setup, vec![]);
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

fn restrict_network() -> Result<NetworkAccess, SandboxError> {
    let Some(arch) = target_arch() else {
        return Ok(NetworkAccess::Unenforced);
    };
    let program = network_filter(arch)?;
    match seccompiler::apply_filter(&program) {
        Ok(()) => Ok(NetworkAccess::Denied),
        Err(_) => Ok(NetworkAccess::Unenforced),
    }
}

pub(crate) fn restrict_self(policy: &Policy) -> Result<Enforcement, SandboxError> {
    let (filesystem, landlock_abi) = restrict_filesystem(policy)?;
    let network = restrict_network()?;
    let mechanism = match (filesystem, network == NetworkAccess::Denied) {
        (true, true) => "landlock+seccomp",
        (true, false) => "landlock",
        (false, true) => "seccomp",
        (false, false) => "none",
    };
    Ok(Enforcement {
        requested: policy.mode,
        filesystem,
        network,
        landlock_abi,
        mechanism: mechanism.into(),
    })
}
