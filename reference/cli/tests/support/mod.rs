//! What the end-to-end tests share: the `tether` binary, child processes killed on drop,
//! temporary directories, bounded runs and waits, and a `tether relay` on loopback.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub(crate) const CRED: &str = "acme-credential-0123456789";
pub(crate) const OTHER_CRED: &str = "other-credential-0123456789";

pub(crate) fn tether() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tether"));
    c.env_remove("RUST_LOG")
        .env_remove("TETHER_FAULT")
        .env_remove("TETHER_CREDENTIAL");
    c
}

/// The temporary directory a test host gives its commands (`TMPDIR`): beside its state
/// directory, `STATE-tmp`, never inside it or around it (`SEC-22`); created.
pub(crate) fn host_tmp(state: &Path) -> PathBuf {
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = state.with_file_name(format!("{name}-tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    tmp
}

/// `tether host run --state STATE --relay URL --workspace acme` as the tests start it:
/// the host's temporary directory beside its state directory ([`host_tmp`], `SEC-22`) and
/// the workspace credential in `TETHER_CREDENTIAL`, never on the command line (`SEC-23`).
pub(crate) fn host_run(state: &Path, relay_url: &str) -> Command {
    let mut c = tether();
    c.env("TMPDIR", host_tmp(state))
        .env("TETHER_CREDENTIAL", CRED)
        .args(["host", "run", "--state"])
        .arg(state)
        .args(["--relay", relay_url, "--workspace", "acme"]);
    c
}

/// A child process killed (SIGKILL) and reaped on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Proc {
    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `limit` for the process to end by itself.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
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

/// A temporary directory, `BASE/LABEL` in a new `BASE` of the system's temporary
/// directory, removed with `BASE` on drop: a host state directory made here has room for
/// its own temporary directory beside it ([`host_tmp`]).
pub(crate) struct TempDir(pub(crate) PathBuf);

pub(crate) static DIRS: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    pub(crate) fn new(label: &str) -> Self {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("tether-e2e-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let p = base.join(label);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(base) = self.0.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    pub(crate) fn code(&self) -> Option<i32> {
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
pub(crate) fn run(mut cmd: Command, limit: Duration) -> Output {
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

pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// The status (`"pass"`, `"fail"`, `"skip"`, …) of case `id` in a `tether conformance --json`
/// report; panics if the report has no such case.
pub(crate) fn case_status(report: &serde_json::Value, id: &str) -> String {
    report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == id)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no case {id} in the report"))
        .to_owned()
}

/// Retries `f` every 200 ms until it returns `Ok` or `limit` passes.
pub(crate) fn eventually<T>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
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

pub(crate) struct Relay {
    pub(crate) proc: Proc,
    pub(crate) url: String,
    pub(crate) addr: String,
}

/// `tether relay --listen ADDR` with workspaces acme and other; waits for its
/// "listening on" line.
pub(crate) fn start_relay(listen: &str) -> Relay {
    let mut child = tether()
        .args(["relay", "--listen", listen])
        .args(["--workspace", &format!("acme={CRED}")])
        .args(["--workspace", &format!("other={OTHER_CRED}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let (url, addr) = listening_url(stdout);
    Relay { proc, url, addr }
}

/// Waits (at most [`LIMIT`]) for a starting relay's "listening on" line on `stdout` and
/// returns its URL (with a trailing `/`) and `HOST:PORT`; keeps draining `stdout` in the
/// background so that the relay never blocks on a full pipe.
pub(crate) fn listening_url(stdout: std::process::ChildStdout) -> (String, String) {
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
    (url, addr)
}

/// `tether host pair` → the token text (retried until `host run` has written run.json).
pub(crate) fn mint_token(host_state: &Path, ttl: u64) -> String {
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

/// A relay, a host registered with it, and a controller paired with the host.
pub(crate) struct World {
    pub(crate) relay: Relay,
    pub(crate) host: Proc,
    pub(crate) host_state: TempDir,
    pub(crate) ctl_state: TempDir,
}

/// A directory for files a sandboxed command must see: outside the system temporary
/// directory, which the sandbox replaces with a private one. `CARGO_TARGET_TMPDIR`, unless
/// the checkout itself lies under `/tmp`; then `/var/tmp`.
#[allow(dead_code)]
pub(crate) fn outside_tmp() -> PathBuf {
    let target = std::fs::canonicalize(env!("CARGO_TARGET_TMPDIR"))
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    if target.starts_with("/tmp") {
        PathBuf::from("/var/tmp")
    } else {
        target
    }
}
