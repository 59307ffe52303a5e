//! Shared pieces of the reliability tests: real `tether` processes over 127.0.0.1, every
//! wait bounded, every child killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

// The process harness is the one the end-to-end tests use (`tests/support`, bound to the
// kit); each test file that uses this module declares `mod support;` too.
#[allow(unused_imports)] // not every test file uses every piece
pub(crate) use crate::support::{
    CRED, LIMIT, Output, Proc, Relay, TETHER, TempDir, eventually, host_run, mint_token, run,
    tether,
};

/// `tether relay --listen ADDR --workspace acme=CRED EXTRA...`, logging at info to a
/// kept buffer ([`Relay::wait_log`]); waits for its "listening on" line.
pub fn start_relay(listen: &str, extra: &[&str]) -> Relay {
    let mut c = TETHER.relay_command(listen, &[("acme", CRED)]);
    c.args(extra);
    Relay::start_logged(c)
}

/// A relay process's memory, from `/proc/PID/status`.
pub trait RelayMemory {
    /// Resident set size in KiB.
    fn rss_kib(&self) -> u64;
    /// Peak resident set size in KiB.
    fn hwm_kib(&self) -> u64;
}

impl RelayMemory for Relay {
    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.proc.pid(), "VmRSS").unwrap_or(0)
    }

    fn hwm_kib(&self) -> u64 {
        proc_status_kib(self.proc.pid(), "VmHWM").unwrap_or(0)
    }
}

/// `tether host run` on `state`, with `fault` as `TETHER_FAULT` if given.
pub fn start_host(state: &Path, relay_url: &str, fault: Option<&str>) -> Proc {
    let mut c = host_run(state, relay_url);
    c.args(["--name", "build-box", "--allow-unsandboxed"]);
    if let Some(f) = fault {
        c.env("TETHER_FAULT", f);
    }
    Proc::quiet(c)
}

pub fn pair_cmd(ctl: &Path, token: &str) -> Output {
    TETHER.pair(ctl, token, CRED, "laptop")
}

/// Pairs, retrying while the host is not registered yet (HOST_UNREACHABLE leaves the
/// token unused); returns the first answer that is not HOST_UNREACHABLE.
pub fn pair_when_up(ctl: &Path, token: &str) -> Output {
    TETHER.pair_when_up(ctl, token, CRED, "laptop")
}

pub fn exec_cmd(ctl: &Path, argv: &[&str]) -> Output {
    TETHER.exec(ctl, argv)
}

/// Runs `argv` until the host answers (any exit but a transport failure).
pub fn exec_when_up(ctl: &Path, argv: &[&str]) -> Output {
    TETHER.exec_when_up(ctl, argv)
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of a process, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Prints a figure for RELIABILITY.md (visible with `--nocapture`).
pub fn figure(name: &str, value: impl std::fmt::Display) {
    eprintln!("FIGURE {name}: {value}");
}
