//! Shared pieces of the reliability tests: real `tether` processes over 127.0.0.1, every
//! wait bounded, every child killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// The process harness is the one the end-to-end tests use (`tests/support`); each test
// file that uses this module declares `mod support;` too.
#[allow(unused_imports)] // not every test file uses every piece
pub(crate) use crate::support::{
    CRED, LIMIT, Output, Proc, TempDir, eventually, host_run, listening_url, mint_token, run,
    tether,
};

/// A `tether relay` child process; its stderr log lines are kept.
pub struct Relay {
    pub proc: Proc,
    pub url: String,
    pub addr: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    /// Waits until a log line containing `needle` has appeared `n` times.
    pub fn wait_log(&self, needle: &str, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let count = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if count >= n {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.proc.pid(), "VmRSS").unwrap_or(0)
    }

    pub fn hwm_kib(&self) -> u64 {
        proc_status_kib(self.proc.pid(), "VmHWM").unwrap_or(0)
    }
}

/// `tether relay --listen ADDR --workspace acme=CRED EXTRA...`, logging at info to a
/// kept buffer; waits for its "listening on" line.
pub fn start_relay(listen: &str, extra: &[&str]) -> Relay {
    let mut child = tether()
        .env("RUST_LOG", "info")
        .args(["relay", "--listen", listen])
        .args(["--workspace", &format!("acme={CRED}")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let proc = Proc(child);
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let log2 = log.clone();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let mut log = log2.lock().unwrap();
            // Keep the memory of the test bounded whatever the relay logs.
            if log.len() < 100_000 {
                log.push(line);
            }
        }
    });
    let (url, addr) = listening_url(stdout);
    Relay {
        proc,
        url,
        addr,
        log,
    }
}

/// `tether host run` on `state`, with `fault` as `TETHER_FAULT` if given.
pub fn start_host(state: &Path, relay_url: &str, fault: Option<&str>) -> Proc {
    let mut c = host_run(state, relay_url);
    c.args(["--name", "build-box", "--allow-unsandboxed"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(f) = fault {
        c.env("TETHER_FAULT", f);
    }
    Proc(c.spawn().unwrap())
}

pub fn pair_cmd(ctl: &Path, token: &str) -> Output {
    let mut c = tether();
    c.args(["pair", token, "--state"])
        .arg(ctl)
        .args(["--credential", CRED, "--name", "laptop"]);
    run(c, Duration::from_secs(90))
}

/// Pairs, retrying while the host is not registered yet (HOST_UNREACHABLE leaves the
/// token unused); returns the first answer that is not HOST_UNREACHABLE.
pub fn pair_when_up(ctl: &Path, token: &str) -> Output {
    eventually(LIMIT, "tether pair", || {
        let out = pair_cmd(ctl, token);
        if out.stderr.contains("HOST_UNREACHABLE") {
            Err(format!("{out:?}"))
        } else {
            Ok(out)
        }
    })
}

pub fn exec_cmd(ctl: &Path, argv: &[&str]) -> Output {
    let mut c = tether();
    c.args(["exec", "--state"]).arg(ctl).arg("--").args(argv);
    run(c, LIMIT)
}

/// Runs `argv` until the host answers (any exit but a transport failure).
pub fn exec_when_up(ctl: &Path, argv: &[&str]) -> Output {
    eventually(LIMIT, "tether exec", || {
        let out = exec_cmd(ctl, argv);
        if out.stderr.starts_with("tether:") {
            Err(format!("{out:?}"))
        } else {
            Ok(out)
        }
    })
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
