//! Shared pieces of the reliability tests: real `tether` processes over 127.0.0.1, every
//! wait bounded, every child killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

pub const CRED: &str = "acme-credential-0123456789";
pub const LIMIT: Duration = Duration::from_secs(30);

pub fn tether() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tether"));
    c.env_remove("RUST_LOG").env_remove("TETHER_FAULT");
    c
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `limit` for the process to end by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

static DIRS: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tether-rel-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a command to completion within `limit`, killing it if it overruns.
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Retries `f` every 200 ms until it returns `Ok` or `limit` passes.
pub fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() > deadline {
                    panic!("{what}: not within {limit:?}; last attempt: {last}");
                }
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

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
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(LIMIT)
        .expect("relay printed no listening line");
    let url = line
        .strip_prefix("tether relay listening on ")
        .unwrap_or_else(|| panic!("unexpected relay line {line:?}"))
        .trim()
        .to_owned();
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let url = if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    };
    Relay {
        proc,
        url,
        addr,
        log,
    }
}

/// `tether host run` on `state`, with `fault` as `TETHER_FAULT` if given.
pub fn start_host(state: &Path, relay_url: &str, fault: Option<&str>) -> Proc {
    let host_tmp = state.join("tmp");
    std::fs::create_dir_all(&host_tmp).unwrap();
    let mut c = tether();
    c.env("TMPDIR", &host_tmp)
        .args(["host", "run", "--state"])
        .arg(state)
        .args([
            "--relay",
            relay_url,
            "--workspace",
            "acme",
            "--credential",
            CRED,
        ])
        .args(["--name", "build-box", "--allow-unsandboxed"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(f) = fault {
        c.env("TETHER_FAULT", f);
    }
    Proc(c.spawn().unwrap())
}

/// `tether host pair` → the token text (retried until `host run` has written run.json).
pub fn mint_token(host_state: &Path, ttl: u64) -> String {
    eventually(LIMIT, "tether host pair", || {
        let mut c = tether();
        c.args(["host", "pair", "--state"])
            .arg(host_state)
            .args(["--ttl", &ttl.to_string()]);
        let out = run(c, LIMIT);
        let token = out
            .stdout
            .lines()
            .find(|l| l.starts_with("TETHER:"))
            .map(str::to_owned);
        match (out.code(), token) {
            (Some(0), Some(t)) => Ok(t),
            _ => Err(format!("{out:?}")),
        }
    })
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
