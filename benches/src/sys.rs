//! Process limits and memory (Linux).

use anyhow::{Context, Result};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft `RLIMIT_NOFILE` to `want` (or to the hard limit if that is lower);
/// returns the soft limit now in force. Children spawned afterwards inherit it.
///
/// # Errors
/// If the limit cannot be set.
pub fn raise_nofile(want: u64) -> Result<u64> {
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum;
    let target = hard.map_or(want, |h| want.min(h));
    if current.current.is_some_and(|c| c >= target) {
        return Ok(current.current.unwrap_or(target));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: hard,
        },
    )
    .context("setrlimit(RLIMIT_NOFILE)")?;
    Ok(target)
}

/// The hard `RLIMIT_NOFILE` (`None`: unlimited).
pub fn nofile_hard_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).maximum
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/PID/status`).
///
/// # Errors
/// If the file cannot be read or has no `VmRSS` line.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .context("no VmRSS in /proc/PID/status")
}

/// CPU time this process has used so far, all threads, user and system
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    std::time::Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}
