//! Process limits, memory and CPU time (Linux).

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

/// Clock ticks of `/proc/PID/stat`'s time fields (`USER_HZ`), as nanoseconds.
fn tick_ns() -> u64 {
    1_000_000_000 / rustix::param::clock_ticks_per_second().max(1)
}

/// CPU time of one process at one moment, from `/proc` (Linux): what [`CpuSample::since`]
/// turns into the CPU a process used between two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSample {
    /// The sum over its live threads of `/proc/PID/task/TID/schedstat`'s first field: time
    /// on a CPU, user and kernel, in nanoseconds. Precise, but a thread that has ended is
    /// no longer in it.
    pub threads_ns: u64,
    /// `utime + stime` of `/proc/PID/stat` (every thread, ended ones included), in
    /// nanoseconds at the resolution of a clock tick (10 ms).
    pub own_ns: u64,
    /// `cutime + cstime`: the children it has waited for, the same way.
    pub children_ns: u64,
}

impl CpuSample {
    /// The CPU time used between `earlier` and `self`, the process's own and that of the
    /// children it waited for in between: its threads' precise figure, unless the tick
    /// counters grew by more than two ticks beyond it (a thread ended in between, and its
    /// time left the sum of the live threads), then theirs.
    pub fn since(&self, earlier: &Self) -> std::time::Duration {
        let ticks = self.own_ns.saturating_sub(earlier.own_ns);
        let threads = self.threads_ns.saturating_sub(earlier.threads_ns);
        let own = if ticks > threads + 2 * tick_ns() {
            ticks
        } else {
            threads
        };
        std::time::Duration::from_nanos(own + self.children_ns.saturating_sub(earlier.children_ns))
    }
}

/// The four time fields of `/proc/PID/stat` (`utime stime cutime cstime`), in ticks.
fn stat_times(pid: u32) -> Result<[u64; 4]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the
    // last ')'. Field 3 (state) is then the first; utime is field 14.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut out = [0u64; 4];
    for (slot, i) in out.iter_mut().zip(11..15) {
        *slot = fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .context("malformed /proc/PID/stat")?;
    }
    Ok(out)
}

/// A [`CpuSample`] of process `pid` (a zombie too: its `stat` keeps its totals until it
/// is reaped).
///
/// # Errors
/// If `/proc/PID/stat` cannot be read (no such process).
pub fn cpu_sample(pid: u32) -> Result<CpuSample> {
    let [utime, stime, cutime, cstime] = stat_times(pid)?;
    let mut threads_ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = text
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
            {
                threads_ns += ns;
            }
        }
    }
    let tick = tick_ns();
    Ok(CpuSample {
        threads_ns,
        own_ns: (utime + stime) * tick,
        children_ns: (cutime + cstime) * tick,
    })
}

/// CPU time the calling thread has used so far, user and system
/// (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Waits until child `child` has ended without reaping it, so that its `/proc/PID/stat`
/// can still be read ([`cpu_sample`] of a zombie); reap it afterwards with `wait`.
///
/// # Errors
/// If `waitid` fails.
pub fn wait_ended(child: &std::process::Child) -> Result<()> {
    use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};
    loop {
        match waitid(
            WaitId::Pid(Pid::from_child(child)),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("waitid"),
        }
    }
}
